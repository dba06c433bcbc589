/* Inside log/: what crash.c needs from log.c. */
#ifndef S3IMGFS_LOG_INTERNAL_H
#define S3IMGFS_LOG_INTERNAL_H

#include <stdbool.h>

/* The descriptor lines go to now (the log file, or stderr). Async-signal-safe. */
int log_fd_for_crash(void);
/* Whether lines are JSON objects (log_options.json). Async-signal-safe. */
bool log_json_for_crash(void);
/* Whether lines go to syslog(3), which a signal handler cannot call. Async-signal-safe. */
bool log_syslog_for_crash(void);

#endif
