/* log: one line per event, to a file, stderr (foreground) or syslog (background), thread-safe.
 *
 * Messages are for people: say what happened to which file and what to do about it. Never pass
 * a secret. Lines never interleave (each is one write(2) or one syslog(3) call) and are at most
 * LOG_LINE_MAX bytes, so they stay atomic even on a pipe; longer messages are cut.
 *
 * Formats ([log] format):
 *   text  2026-11-26T23:50:03.123Z info: <key>: message [req <id>]
 *   json  {"time":"2026-11-26T23:50:03.123Z","level":"info","msg":"message","key":"<key>",
 *          "request_id":"<id>"}
 * Key and request id appear only when given. Every line about a file goes through log_key_msg so
 * that its key and the request that touched it can be grepped for (file names are user input:
 * control characters are escaped and invalid UTF-8 becomes U+FFFD in both formats, so a name
 * cannot forge a line and every json line parses).
 *
 * Destination ([log] file): a file (appended to; wins over syslog), else syslog when running in
 * the background, else stderr. logrotate moves the file and sends SIGHUP: the handler calls
 * log_reopen_request() and the next line reopens the file by its path.
 */
#ifndef S3IMGFS_LOG_H
#define S3IMGFS_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_LEVEL_ERROR, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

/* PIPE_BUF on Linux: the longest write to a pipe that cannot be interleaved. */
#define LOG_LINE_MAX 4096

struct log_options {
    enum log_level level; /* least severe level written */
    bool json;            /* one JSON object per line instead of text */
    const char *file;     /* absolute path to append to; NULL or "" = syslog or stderr */
    bool use_syslog;      /* without a file: syslog(3) instead of stderr */
    const char *ident;    /* names the program in syslog (copied) */
};

/* Sets level, format and destination. Until called: stderr, text, info. May be called again
 * while other threads log: the new destination replaces the old one at once and the old file is
 * closed. On failure (the file cannot be opened) returns -1, leaves the previous settings as
 * they were and puts a message for the user in err. */
int log_open(const struct log_options *o, char *err, size_t errlen);

/* log_open without a file, in text format. */
void log_setup(enum log_level level, bool use_syslog, const char *ident);

/* Async-signal-safe (it only sets a flag): call it from the SIGHUP handler. The next line reopens
 * the log file by its path; if that fails the old file is kept and one warning line says why. */
void log_reopen_request(void);

bool log_enabled(enum log_level level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A line about one file: key (the S3 key or path) and request_id may be NULL. */
void log_key_msg(enum log_level level, const char *key, const char *request_id, const char *fmt,
                 ...) __attribute__((format(printf, 4, 5)));

/* Writes one already-formatted line (a CloudWatch EMF object, say) whatever the level and
 * format: to syslog at info when syslog is the destination. A missing '\n' is added; the line is
 * not cut, so it must not contain '\n' itself. */
void log_line_raw(const char *line);

/* Fatal signals (SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT) leave a report before the process
 * ends: one "fatal:" line naming the signal, the faulting address and the thread, then `note`
 * (what the user should know, e.g. what is kept and how to resume), then the stack of the thread
 * that crashed (function+offset per frame), written to the log file and to stderr. In a JSON
 * log the report is one JSON line: level "fatal", the same message, the frames in "stack". The
 * default action follows (a core dump where enabled). Call once, early. With syslog as the
 * destination (which a signal handler cannot use) the report goes to `spare_file` instead, and to
 * stderr: appended, the file created with mode 0600; NULL for stderr only. Not installed in
 * AddressSanitizer/ThreadSanitizer builds, whose own reports are better: then it returns false
 * (true when installed). `note` and `spare_file` are copied (up to 511 bytes and PATH_MAX). */
bool log_report_crashes(const char *note, const char *spare_file);

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                                 \
    } while (0)

#define log_key_error(key, rid, ...) log_key_msg(LOG_LEVEL_ERROR, key, rid, __VA_ARGS__)
#define log_key_warn(key, rid, ...)  log_key_msg(LOG_LEVEL_WARN, key, rid, __VA_ARGS__)
#define log_key_info(key, rid, ...)  log_key_msg(LOG_LEVEL_INFO, key, rid, __VA_ARGS__)
#define log_key_debug(key, rid, ...)                                                               \
    do {                                                                                           \
        if (log_enabled(LOG_LEVEL_DEBUG))                                                          \
            log_key_msg(LOG_LEVEL_DEBUG, key, rid, __VA_ARGS__);                                   \
    } while (0)

#endif
