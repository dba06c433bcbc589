#include "log.h"
#include "log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

_Static_assert(ATOMIC_BOOL_LOCK_FREE == 2, "log_reopen_request must be async-signal-safe");

/* The most a key and a request id take in a line, escaped: an S3 key has at most 1024 bytes, so
 * the message keeps well over half the line. */
#define KEY_MAX 1200
#define RID_MAX 160

#define ELLIPSIS     "\xe2\x80\xa6" /* marks a cut field */
#define REPLACEMENT  "\xef\xbf\xbd" /* U+FFFD, for invalid UTF-8 */
#define ELLIPSIS_LEN 3

/* Read on every call from every thread; written by log_open. */
static atomic_int min_level = LOG_LEVEL_INFO;
static atomic_bool reopen_wanted;

/* The destination and format: a reopen or log_open swaps them while other threads write. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool json;
static bool to_syslog;
static int fd = STDERR_FILENO;
static char path[PATH_MAX]; /* "" while fd is stderr */
static char ident[64];      /* openlog(3) keeps the pointer */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* A line being built: appends that do not fit are refused, never cut. */
struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (n <= b->cap - b->len) {
        memcpy(b->p + b->len, s, n);
        b->len += n;
    }
}

static void put_str(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at u, 0 if invalid (RFC 3629: no overlong forms, surrogates
 * or code points past U+10FFFF, which JSON parsers reject). The terminating NUL is not a
 * continuation byte, so no read goes past it. */
static size_t utf8_len(const unsigned char *u)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;
    if (u[0] < 0x80)
        return 1;
    if (u[0] >= 0xc2 && u[0] <= 0xdf) {
        n = 2;
    } else if (u[0] >= 0xe0 && u[0] <= 0xef) {
        n = 3;
        lo = u[0] == 0xe0 ? 0xa0 : lo;
        hi = u[0] == 0xed ? 0x9f : hi;
    } else if (u[0] >= 0xf0 && u[0] <= 0xf4) {
        n = 4;
        lo = u[0] == 0xf0 ? 0x90 : lo;
        hi = u[0] == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if (u[1] < lo || u[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((u[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* A control character in either format: file names may hold a newline that would otherwise
 * forge a second line. */
static size_t escape_control(char *out, unsigned char c, bool for_json)
{
    static const char shorts[] = {
        ['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
    bool has_short =
        c < sizeof(shorts) && shorts[c] && (for_json || c == '\n' || c == '\r' || c == '\t');
    if (has_short)
        return (size_t)sprintf(out, "\\%c", shorts[c]);
    return (size_t)sprintf(out, for_json ? "\\u%04x" : "\\x%02x", c);
}

/* The escaped form of the character at u: sets *piece and *n, returns the input bytes used. */
static size_t escape_one(const unsigned char *u, bool for_json, char esc[8], const char **piece,
                         size_t *n)
{
    size_t seq = utf8_len(u);
    *piece = esc;
    if (*u < 0x20 || *u == 0x7f) {
        *n = escape_control(esc, *u, for_json);
    } else if (for_json && (*u == '"' || *u == '\\')) {
        esc[0] = '\\';
        esc[1] = (char)*u;
        *n = 2;
    } else if (seq == 0) {
        *piece = REPLACEMENT;
        *n = 3;
        seq = 1;
    } else {
        *piece = (const char *)u;
        *n = seq;
    }
    return seq;
}

/* Appends s escaped, in at most `limit` bytes, stopping before the first character that does
 * not fit so that no escape or UTF-8 sequence is split. Returns whether all of s went in. */
static bool put_escaped(struct buf *b, const char *s, size_t limit, bool for_json)
{
    size_t end = b->cap - b->len < limit ? b->cap : b->len + limit;
    const unsigned char *u = (const unsigned char *)s;
    while (*u) {
        char esc[8];
        const char *piece;
        size_t n;
        size_t used = escape_one(u, for_json, esc, &piece, &n);
        if (n > end - b->len)
            return false;
        put(b, piece, n);
        u += used;
    }
    return true;
}

/* put_escaped, with an ellipsis where s was cut so that a reader knows there was more. */
static void put_cut(struct buf *b, const char *s, size_t limit, bool for_json)
{
    size_t start = b->len;
    if (limit < ELLIPSIS_LEN || put_escaped(b, s, limit, for_json))
        return;
    b->len = start;
    put_escaped(b, s, limit - ELLIPSIS_LEN, for_json);
    put(b, ELLIPSIS, ELLIPSIS_LEN);
}

static void timestamp(char *out, size_t size)
{
    struct timespec now;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000);
}

/* What comes after the message: built first, so that the message gets whatever room is left. */
static void json_tail(struct buf *t, const char *key, const char *rid, bool newline)
{
    put_str(t, "\"");
    if (key) {
        put_str(t, ",\"key\":\"");
        put_cut(t, key, KEY_MAX, true);
        put_str(t, "\"");
    }
    if (rid) {
        put_str(t, ",\"request_id\":\"");
        put_cut(t, rid, RID_MAX, true);
        put_str(t, "\"");
    }
    put_str(t, newline ? "}\n" : "}");
}

static void json_head(struct buf *b, enum log_level level)
{
    char ts[64];
    timestamp(ts, sizeof(ts));
    put_str(b, "{\"time\":\"");
    put_str(b, ts);
    put_str(b, "\",\"level\":\"");
    put_str(b, level_names[level]);
    put_str(b, "\",\"msg\":\"");
}

/* syslog(3) stamps time and priority itself and needs no newline. */
static void text_head(struct buf *b, enum log_level level, const char *key, bool for_syslog)
{
    if (!for_syslog) {
        char ts[64];
        timestamp(ts, sizeof(ts));
        put_str(b, ts);
        put_str(b, " ");
        put_str(b, level_names[level]);
        put_str(b, ": ");
    }
    if (key) {
        put_cut(b, key, KEY_MAX, false);
        put_str(b, ": ");
    }
}

static void text_tail(struct buf *t, const char *rid, bool newline)
{
    if (rid) {
        put_str(t, " [req ");
        put_cut(t, rid, RID_MAX, false);
        put_str(t, "]");
    }
    if (newline)
        put_str(t, "\n");
}

/* Builds one line of at most LOG_LINE_MAX bytes in `line`; returns its length. */
static size_t format_line(char *line, enum log_level level, const char *key, const char *rid,
                          const char *msg, bool as_json, bool for_syslog)
{
    struct buf b = {line, 0, LOG_LINE_MAX};
    char tail[KEY_MAX + RID_MAX + 64];
    struct buf t = {tail, 0, sizeof(tail)};
    if (as_json) {
        json_head(&b, level);
        json_tail(&t, key, rid, !for_syslog);
    } else {
        text_head(&b, level, key, for_syslog);
        text_tail(&t, rid, !for_syslog);
    }
    put_cut(&b, msg, b.cap - b.len - t.len, as_json);
    put(&b, tail, t.len);
    return b.len;
}

static int syslog_priority(enum log_level level)
{
    static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
    return prio[level];
}

/* Called with the lock held, which also keeps the rest of the line from mixing with another. */
static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* nowhere to report it */
        p += w;
        n -= (size_t)w;
    }
}

static void output_locked(enum log_level level, const char *line, size_t n)
{
    if (to_syslog)
        syslog(syslog_priority(level), "%.*s", (int)n, line);
    else
        write_all(line, n);
}

static int open_file(const char *file)
{
    return open(file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
}

static void warn_reopen_failed_locked(int e)
{
    if (!log_enabled(LOG_LEVEL_WARN))
        return;
    char eb[128];
    char msg[PATH_MAX + 256];
    char line[LOG_LINE_MAX];
    snprintf(msg, sizeof(msg),
             "cannot reopen the log file %s after SIGHUP: %s; still appending to the file it "
             "was renamed to: check the directory and its permissions, then send SIGHUP again",
             path, strerror_r(e, eb, sizeof(eb)));
    output_locked(LOG_LEVEL_WARN, line,
                  format_line(line, LOG_LEVEL_WARN, NULL, NULL, msg, json, to_syslog));
}

/* logrotate has moved the file away: follow the path, not the old inode. */
static void reopen_if_wanted_locked(void)
{
    if (!atomic_load_explicit(&reopen_wanted, memory_order_relaxed))
        return;
    if (!atomic_exchange(&reopen_wanted, false) || !path[0])
        return;
    int nfd = open_file(path);
    if (nfd < 0) {
        warn_reopen_failed_locked(errno);
        return;
    }
    close(fd);
    fd = nfd;
}

static void emit(enum log_level level, const char *key, const char *rid, const char *msg)
{
    char line[LOG_LINE_MAX];
    pthread_mutex_lock(&lock);
    reopen_if_wanted_locked();
    output_locked(level, line, format_line(line, level, key, rid, msg, json, to_syslog));
    pthread_mutex_unlock(&lock);
}

__attribute__((format(printf, 4, 0))) static void vlog(enum log_level level, const char *key,
                                                       const char *rid, const char *fmt, va_list ap)
{
    /* Escaping never shortens, so a longer message would be cut anyway. */
    char msg[LOG_LINE_MAX];
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        snprintf(msg, sizeof(msg), "(unformattable message: %s)", fmt);
    emit(level, key, rid, msg);
}

static void set_error(char *err, size_t errlen, const char *file, int e)
{
    char eb[128];
    if (err && errlen > 0)
        snprintf(err, errlen,
                 "cannot open the log file %s: %s; create its directory and let this user "
                 "write there, or set [log] file = \"\" to log to stderr or syslog",
                 file, strerror_r(e, eb, sizeof(eb)));
}

/* openlog(3) keeps the ident pointer, so it lives in a static buffer. */
static void set_syslog_locked(bool on, const char *id)
{
    if (to_syslog)
        closelog();
    to_syslog = on;
    if (on) {
        snprintf(ident, sizeof(ident), "%s", id ? id : "s3imgfs");
        openlog(ident, LOG_PID, LOG_DAEMON);
    }
}

int log_open(const struct log_options *o, char *err, size_t errlen)
{
    const char *file = o->file && o->file[0] ? o->file : NULL;
    int nfd = STDERR_FILENO;
    if (file && strlen(file) >= sizeof(path)) {
        set_error(err, errlen, file, ENAMETOOLONG);
        return -1;
    }
    if (file && (nfd = open_file(file)) < 0) {
        set_error(err, errlen, file, errno);
        return -1;
    }
    pthread_mutex_lock(&lock);
    int old = path[0] ? fd : -1;
    fd = nfd;
    memcpy(path, file ? file : "", file ? strlen(file) + 1 : 1);
    json = o->json;
    set_syslog_locked(!file && o->use_syslog, o->ident);
    atomic_store(&min_level, (int)o->level);
    atomic_store(&reopen_wanted, false); /* the file was just opened by its path */
    pthread_mutex_unlock(&lock);
    if (old >= 0)
        close(old);
    return 0;
}

void log_setup(enum log_level level, bool use_syslog, const char *id)
{
    struct log_options o = {.level = level, .use_syslog = use_syslog, .ident = id};
    log_open(&o, NULL, 0); /* cannot fail without a file */
}

void log_reopen_request(void)
{
    atomic_store(&reopen_wanted, true);
}

bool log_enabled(enum log_level level)
{
    return (int)level <= atomic_load_explicit(&min_level, memory_order_relaxed);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, NULL, NULL, fmt, ap);
    va_end(ap);
}

void log_key_msg(enum log_level level, const char *key, const char *request_id, const char *fmt,
                 ...)
{
    if (!log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, key, request_id, fmt, ap);
    va_end(ap);
}

void log_line_raw(const char *line)
{
    size_t n = strlen(line);
    bool has_newline = n > 0 && line[n - 1] == '\n';
    pthread_mutex_lock(&lock);
    reopen_if_wanted_locked();
    if (to_syslog) {
        syslog(LOG_INFO, "%.*s", (int)(has_newline ? n - 1 : n), line);
    } else {
        /* One system call, so the added newline cannot be separated from the line. */
        struct iovec iov[2] = {{(void *)line, n}, {(void *)"\n", has_newline ? 0 : 1}};
        ssize_t ignored;
        do
            ignored = writev(fd, iov, 2);
        while (ignored < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&lock);
}

int log_fd_for_crash(void)
{
    return fd; /* an int: read whole even while log_open swaps it */
}

bool log_json_for_crash(void)
{
    return json;
}

bool log_syslog_for_crash(void)
{
    return to_syslog;
}
