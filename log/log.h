/* log: one line per event, to stderr (foreground) or syslog (background), thread-safe.
 *
 * Messages are for people: say what happened to which file and what to do about it. Never pass
 * a secret. Lines never interleave (each is one write(2) or one syslog(3) call).
 */
#ifndef S3IMGFS_LOG_H
#define S3IMGFS_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* Sets where lines go and the least severe level written. Until called: stderr, info. `ident`
 * names the program in syslog. Call before starting threads. */
void log_setup(enum log_level level, bool use_syslog, const char *ident);

bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                                 \
    } while (0)

#endif
