/* The crash report: what a fatal signal leaves in the log (see log_report_crashes in log.h).
 * Everything here runs inside a signal handler, so it uses only async-signal-safe calls (write,
 * getpid, syscall, prctl, signal, alarm, raise) and formats numbers itself; backtrace(3) is the one
 * exception, made safe enough by calling it once at install time (its first call loads libgcc). */
#include "log.h"
#include "log_internal.h"

#include <execinfo.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZER_HANDLES_CRASHES 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZER_HANDLES_CRASHES 1
#endif
#endif

#ifdef SANITIZER_HANDLES_CRASHES

bool log_report_crashes(const char *note)
{
    (void)note;
    return false;
}

#else

#define MAX_FRAMES     64
#define REPORT_SECONDS 10

static const int fatal_signals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
static char program_note[512]; /* copied at install: the handler must not follow a freed pointer */

struct text {
    char s[1024];
    size_t len;
};

static void add(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (n > sizeof(t->s) - t->len)
        n = sizeof(t->s) - t->len;
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

static void on_fatal_signal(int sig, siginfo_t *info, void *context)
{
    (void)context;
    /* Should the report itself hang (the crash left a lock of the loader or of the C library
     * held), the default action of SIGALRM ends the process all the same. */
    signal(SIGALRM, SIG_DFL);
    alarm(REPORT_SECONDS);
    char thread[17] = "?";
    prctl(PR_GET_NAME, thread, 0, 0, 0);
    struct text t = {.len = 0};
    add(&t, "fatal: crashed on ");
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
    add(&t, " The stack of that thread follows; please report it.\n");

    void *frames[MAX_FRAMES];
    int depth = backtrace(frames, MAX_FRAMES);
    int to = log_fd_for_crash();
    int targets[2] = {to, STDERR_FILENO};
    for (int i = 0; i < (to == STDERR_FILENO ? 1 : 2); i++) {
        write_all(targets[i], t.s, t.len);
        backtrace_symbols_fd(frames, depth, targets[i]);
    }
    /* The default action now (the handler was reset on entry): the process ends, with a core
     * dump where they are enabled. The signal is blocked until this handler returns. */
    raise(sig);
}

bool log_report_crashes(const char *note)
{
    size_t n = strlen(note);
    if (n >= sizeof(program_note))
        n = sizeof(program_note) - 1;
    memcpy(program_note, note, n);
    program_note[n] = '\0';
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
