#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static enum log_level min_level = LOG_LEVEL_INFO;
static bool to_syslog;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_setup(enum log_level level, bool use_syslog, const char *ident)
{
    min_level = level;
    to_syslog = use_syslog;
    if (use_syslog)
        openlog(ident, LOG_PID, LOG_DAEMON);
}

bool log_enabled(enum log_level level)
{
    return level <= min_level;
}

static int syslog_priority(enum log_level level)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    return prio[level];
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (to_syslog) {
        syslog(syslog_priority(level), "%s", text);
        return;
    }
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    char line[2200];
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000, level_names[level], text);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }
    ssize_t ignored = write(STDERR_FILENO, line, (size_t)n);
    (void)ignored;
}
