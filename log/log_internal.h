/* Inside log/: what crash.c needs from log.c. */
#ifndef S3IMGFS_LOG_INTERNAL_H
#define S3IMGFS_LOG_INTERNAL_H

/* The descriptor lines go to now (the log file, or stderr). Async-signal-safe. */
int log_fd_for_crash(void);

#endif
