/* The crash report: what a fatal signal leaves in the log (see log_report_crashes in log.h).
 * Everything here runs inside a signal handler, so it uses only async-signal-safe calls (write,
 * getpid, syscall, prctl, signal, alarm, raise, clock_gettime) and formats numbers and dates
 * itself. Two exceptions: backtrace(3), made safe enough by calling it once at install time (its
 * first call loads libgcc), and dladdr(3) for the frames of a JSON report, which looks up the
 * same tables backtrace_symbols_fd(3) does for a text one. Should either hang on a lock the
 * crashed thread held, the SIGALRM set first ends the process all the same.
 *
 * A text log gets a line and then one line per frame (backtrace_symbols_fd); a JSON log gets
 * one object, {"time", "level": "fatal", "msg", "stack": [frames]}, so that a consumer of JSON
 * lines sees the crash as an event like any other. stderr gets the text too, unless it is the
 * log itself. */
#include "log.h"
#include "log_internal.h"

#include <dlfcn.h>
#include <execinfo.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_HANDLES_CRASHES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_HANDLES_CRASHES 1
#endif
#endif

#ifdef SANITIZER_HANDLES_CRASHES

bool log_report_crashes(const char *note, const char *spare_file)
{
    (void)note;
    (void)spare_file;
    return false;
}

#else

#define MAX_FRAMES     64
#define REPORT_SECONDS 10
#define FATAL_PREFIX   "fatal: "

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
/* Copied at install: the handler must not follow a freed pointer. */
static char program_note[512];
static char spare_path[PATH_MAX];

/* Text built in a buffer of the caller's; what does not fit is cut. */
struct text {
    char *s;
    size_t cap;
    size_t len;
};

#define TEXT_ON(buffer) ((struct text){.s = (buffer), .cap = sizeof(buffer), .len = 0})

static void add(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (n > t->cap - t->len)
        n = t->cap - t->len;
    memcpy(t->s + t->len, s, n);
    t->len += n;
}

static void add_number(struct text *t, unsigned long v, unsigned base)
{
    char digits[32];
    size_t n = 0;
    do
        digits[n++] = "0123456789abcdef"[v % base];
    while ((v /= base) != 0 && n < sizeof(digits));
    char out[36] = "0x";
    size_t at = base == 16 ? 2 : 0;
    while (n > 0)
        out[at++] = digits[--n];
    out[at] = '\0';
    add(t, out);
}

static void write_all(int to, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(to, s, n);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

/* s inside a JSON string: quotes, backslashes and control characters escaped; bytes beyond
 * ASCII (a path in another encoding, perhaps) become '?', as invalid UTF-8 would make the line
 * unreadable to a JSON parser. */
static void add_json_bytes(struct text *t, const char *s, size_t n)
{
    for (const unsigned char *u = (const unsigned char *)s; u < (const unsigned char *)s + n; u++) {
        char one[7] = {(char)*u, '\0'};
        if (*u == '"' || *u == '\\') {
            one[0] = '\\';
            one[1] = (char)*u;
            one[2] = '\0';
        } else if (*u < 0x20) {
            memcpy(one, "\\u00", 4);
            one[4] = "0123456789abcdef"[*u >> 4];
            one[5] = "0123456789abcdef"[*u & 15];
            one[6] = '\0';
        } else if (*u >= 0x80) {
            one[0] = '?';
        }
        add(t, one);
    }
}

static void add_json_string(struct text *t, const char *s)
{
    add_json_bytes(t, s, strlen(s));
}

static void add_two_digits(struct text *t, unsigned v)
{
    char d[3] = {(char)('0' + v / 10 % 10), (char)('0' + v % 10), '\0'};
    add(t, d);
}

/* The time as the log's other lines give it, 2026-11-27T10:11:12.345Z, without gmtime_r (not
 * async-signal-safe): days since 1970 to a civil date (H. Hinnant's algorithm). */
static void add_utc_time(struct text *t)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long days = now.tv_sec / 86400, secs = now.tv_sec % 86400;
    long z = days + 719468, era = z / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    unsigned day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    unsigned month = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    add_number(t, (unsigned long)(yoe + era * 400 + (month <= 2)), 10);
    add(t, "-");
    add_two_digits(t, month);
    add(t, "-");
    add_two_digits(t, day);
    add(t, "T");
    add_two_digits(t, (unsigned)(secs / 3600));
    add(t, ":");
    add_two_digits(t, (unsigned)(secs / 60 % 60));
    add(t, ":");
    add_two_digits(t, (unsigned)(secs % 60));
    add(t, ".");
    unsigned ms = (unsigned)(now.tv_nsec / 1000000);
    add_number(t, ms / 100, 10);
    add_two_digits(t, ms % 100);
    add(t, "Z");
}

/* One frame as backtrace_symbols(3) writes it: module(function+0xoffset) [0xaddress], or
 * module(+0xoffset) when the function has no exported name. */
static void add_json_frame(struct text *t, void *address)
{
    Dl_info where;
    add(t, "\"");
    if (dladdr(address, &where) && where.dli_fname) {
        add_json_string(t, where.dli_fname);
        add(t, "(");
        if (where.dli_sname)
            add_json_string(t, where.dli_sname);
        char *base = where.dli_sname ? where.dli_saddr : where.dli_fbase;
        add(t, "+");
        add_number(t, (unsigned long)((char *)address - base), 16);
        add(t, ") ");
    }
    add(t, "[");
    add_number(t, (unsigned long)address, 16);
    add(t, "]\"");
}

static void write_text_report(int to, const struct text *what, void *const *frames, int depth)
{
    write_all(to, what->s, what->len);
    backtrace_symbols_fd(frames, depth, to);
}

static void write_json_report(int to, const struct text *what, void *const *frames, int depth)
{
    static char buffer[MAX_FRAMES * 320]; /* a few hundred bytes a frame; one report a process */
    struct text t = TEXT_ON(buffer);
    add(&t, "{\"time\":\"");
    add_utc_time(&t);
    add(&t, "\",\"level\":\"fatal\",\"msg\":\"");
    /* The text without its "fatal: " (the level says it) and its newline. */
    size_t skip =
        strncmp(what->s, FATAL_PREFIX, strlen(FATAL_PREFIX)) == 0 ? strlen(FATAL_PREFIX) : 0;
    size_t end = what->len > skip && what->s[what->len - 1] == '\n' ? what->len - 1 : what->len;
    add_json_bytes(&t, what->s + skip, end - skip);
    add(&t, "\",\"stack\":[");
    for (int i = 0; i < depth; i++) {
        char one[640];
        struct text frame = TEXT_ON(one);
        if (i)
            add(&frame, ",");
        add_json_frame(&frame, frames[i]);
        if (frame.len == frame.cap || t.len + frame.len + 3 > t.cap)
            break; /* a frame cut short would leave the line unreadable: stop before it */
        memcpy(t.s + t.len, one, frame.len);
        t.len += frame.len;
    }
    add(&t, "]}\n");
    write_all(to, t.s, t.len);
}

static void write_report(int to, const struct text *what, void *const *frames, int depth)
{
    if (log_json_for_crash())
        write_json_report(to, what, frames, depth);
    else
        write_text_report(to, what, frames, depth);
}

/* The log goes to syslog, which a signal handler cannot call: the report goes to the spare file
 * instead (open(2) is async-signal-safe). Appended, so that a report is never overwritten by
 * the next; private, as the stack names the program's insides. */
static void write_spare_report(const struct text *what, void *const *frames, int depth)
{
    int spare = open(spare_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (spare < 0)
        return;
    write_report(spare, what, frames, depth);
    close(spare);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGSEGV:
        return "SIGSEGV (invalid memory access)";
    case SIGBUS:
        return "SIGBUS (bus error: a mapped file shrank, or an unaligned access)";
    case SIGILL:
        return "SIGILL (illegal instruction)";
    case SIGFPE:
        return "SIGFPE (arithmetic error)";
    default:
        return "SIGABRT (aborted: an assertion or the C library found corrupted state)";
    }
}

static void on_fatal_signal(int sig, siginfo_t *info, void *context)
{
    (void)context;
    /* Should the report itself hang (the crash left a lock of the loader or of the C library
     * held), the default action of SIGALRM ends the process all the same. */
    signal(SIGALRM, SIG_DFL);
    alarm(REPORT_SECONDS);
    char thread[17] = "?";
    prctl(PR_GET_NAME, thread, 0, 0, 0);
    static char buffer[1024]; /* the handler runs once: SA_RESETHAND */
    struct text t = TEXT_ON(buffer);
    add(&t, FATAL_PREFIX "crashed on ");
    add(&t, signal_name(sig));
    if (sig != SIGABRT && info) {
        add(&t, " at address ");
        add_number(&t, (unsigned long)info->si_addr, 16);
    }
    add(&t, " in thread ");
    add_number(&t, (unsigned long)syscall(SYS_gettid), 10);
    add(&t, " (");
    add(&t, thread);
    add(&t, ") of process ");
    add_number(&t, (unsigned long)getpid(), 10);
    add(&t, ". ");
    add(&t, program_note);
    add(&t, " Please report it with the stack of that thread.\n");

    void *frames[MAX_FRAMES];
    int depth = backtrace(frames, MAX_FRAMES);
    int to = log_fd_for_crash();
    bool to_spare = log_syslog_for_crash() && spare_path[0];
    if (to_spare)
        write_spare_report(&t, frames, depth);
    else
        write_report(to, &t, frames, depth);
    if (to_spare || to != STDERR_FILENO)
        write_text_report(STDERR_FILENO, &t, frames, depth);
    /* The default action now (the handler was reset on entry): the process ends, with a core
     * dump where they are enabled. The signal is blocked until this handler returns. */
    raise(sig);
}

static void copy_cut(char *to, size_t size, const char *from)
{
    size_t n = from ? strlen(from) : 0;
    if (n >= size)
        n = size - 1;
    memcpy(to, from ? from : "", n);
    to[n] = '\0';
}

bool log_report_crashes(const char *note, const char *spare_file)
{
    copy_cut(program_note, sizeof(program_note), note);
    if (spare_file && strlen(spare_file) >= sizeof(spare_path))
        spare_file = NULL; /* cut, it would name another file */
    copy_cut(spare_path, sizeof(spare_path), spare_file);
    void *warm[1];
    backtrace(warm, 1);
    /* An own stack, so that a stack overflow of the main thread is reported too. */
    static char alt_stack[64 * 1024];
    stack_t ss = {.ss_sp = alt_stack, .ss_size = sizeof(alt_stack)};
    sigaltstack(&ss, NULL);
    for (size_t i = 0; i < sizeof(fatal_signals) / sizeof(fatal_signals[0]); i++) {
        struct sigaction sa = {.sa_sigaction = on_fatal_signal};
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_ONSTACK;
        sigaction(fatal_signals[i], &sa, NULL);
    }
    return true;
}

#endif
