/* s3imgfs-resize: the resize engine of s3imgfs on local files.
 *
 * Every FILE is resized into every size of the configuration ([resize] sizes, or --sizes), as
 * s3imgfs would resize an upload, and each rendition is written to OUTDIR/<size>/<name>.<ext>.
 * Used for batches, to try a configuration before mounting, and for benchmarks.
 * docs/s3imgfs-resize.md and the man page s3imgfs-resize(1) are the user's reference.
 *
 * Output: one line per rendition on stdout, "input<TAB>size<TAB>WxH<TAB>format<TAB>bytes<TAB>ms".
 * Errors: one line per failed input on stderr, "s3imgfs-resize: FILE: reason". A file that is
 * not an image is reported ("not an image, skipped") but is not a failure: a folder of uploads
 * holds other files too, and s3imgfs itself leaves them alone.
 * Exit codes: 0 every input succeeded (or was skipped), 1 an input failed, 2 usage or
 * configuration error.
 *
 * Files are never left half-written: each rendition goes to a temporary file in its folder,
 * and the renditions of an input are renamed into place only when all of them were made.
 */
#include "conf.h"
#include "resize.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "schedule.h"

#define PROG "s3imgfs-resize"

#define MAX_JOBS         256
#define MAX_VIPS_THREADS 1024
#define REASON_MAX       512

/* ------------------------------------------------------------------------------------------ */
/* State                                                                                        */

/* The command line; every string is borrowed from argv. */
struct args {
    const char *config_path; /* -c; NULL = the default location */
    const char *sizes;       /* --sizes */
    const char *format;      /* --format */
    const char *quality;     /* --quality */
    const char *outdir;      /* -o */
    unsigned jobs;           /* -j */
    unsigned vips_threads;   /* --threads; 0 = CPUs / jobs, or VIPS_CONCURRENCY */
    char **files;
    size_t file_count;
};

/* One input file. */
struct input {
    const char *path;            /* as given */
    char *name;                  /* file name without folder and extension: the output's name */
    const struct input *same_as; /* an earlier input with the same output name, or NULL */
};

/* What the workers share; read-only while they run but for the counters and the locks. */
struct run {
    const struct config *cfg;
    struct resize_options ropts;
    const char *outdir;
    struct input *inputs;
    size_t input_count;
    mode_t file_mode;          /* 0666 & ~umask, read once before the threads start */
    struct schedule *schedule; /* with -j N > 1: which input next; NULL: in the order given */
    atomic_size_t next;
    atomic_bool failed;
    pthread_mutex_t out_lock; /* keeps the lines of one input together on stdout */
};

/* One rendition written to its temporary file, waiting for the rename. */
struct pending {
    char *tmp;
    char *path;
    const char *size; /* the size's name (owned by the config) */
    char format[16];
    int width, height;
    size_t len;
    double ms;
};

/* The work on one input (the callback's context). */
struct job {
    struct run *run;
    const struct input *in;
    struct pending out[CONF_MAX_SIZES];
    size_t count;
    char reason[REASON_MAX]; /* why the callback stopped the engine */
};

/* SIGINT, SIGTERM, SIGHUP or SIGPIPE received: stop taking inputs, remove temporary files,
 * then die of the signal. */
static volatile sig_atomic_t g_signal;

/* ------------------------------------------------------------------------------------------ */
/* Messages                                                                                     */

static void error_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error_line(const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    fprintf(stderr, PROG ": %s\n", line); /* one call: lines of threads do not mix */
}

#define usage_error(...) cli_usage_error(PROG, __VA_ARGS__)

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [OPTIONS] -o OUTDIR FILE...\n"
            "\n"
            "Resize each FILE into every configured size, as s3imgfs does, writing\n"
            "OUTDIR/SIZE/NAME.EXT (NAME: the file name without its extension). One line per\n"
            "rendition on stdout: input, size, WxH, format, bytes, milliseconds (tab-separated).\n"
            "\n"
            "Options:\n"
            "  -o, --output OUTDIR    where the renditions go (created if missing; required)\n"
            "  -c, --config CONFIG    the INI file (default ~/.config/s3imgfs/config.ini);\n"
            "                         its [resize] section gives sizes, format, quality, limits\n"
            "      --sizes SPEC       the sizes instead of [resize] sizes, e.g.\n"
            "                         'thumb:150x150:cover, medium:640x, tall:x1080:webp:q70'\n"
            "      --format F         output format of sizes that name none:\n"
            "                         auto (keep the source's), jpeg, webp, avif, png\n"
            "      --quality Q        encoder quality of sizes that name none, 1 to 100\n"
            "  -j, --jobs N           resize N files at once (1 to %d; default 1)\n"
            "      --threads T        libvips threads per image (1 to %d; default: the\n"
            "                         number of CPUs / N, at least 1, or VIPS_CONCURRENCY)\n"
            "  -h, --help             this text\n"
            "  -V, --version          the version\n"
            "\n"
            "A file that is not an image is reported on stderr and skipped; it is not an error.\n"
            "Exit status: 0 every file was resized or skipped, 1 a file failed, 2 usage or\n"
            "configuration error. See " PROG "(1).\n",
            MAX_JOBS, MAX_VIPS_THREADS);
}

/* ------------------------------------------------------------------------------------------ */
/* Argument parsing                                                                             */

static int parse_count(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || *s == '+' || *s == ' ' || v < min || v > max)
        return usage_error("%s wants an integer from %u to %u, not '%s'", opt, min, max, s);
    *out = (unsigned)v;
    return EXIT_OK;
}

enum { OPT_SIZES = 256, OPT_FORMAT, OPT_QUALITY, OPT_THREADS };

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option longopts[] = {{"output", required_argument, NULL, 'o'},
                                             {"config", required_argument, NULL, 'c'},
                                             {"sizes", required_argument, NULL, OPT_SIZES},
                                             {"format", required_argument, NULL, OPT_FORMAT},
                                             {"quality", required_argument, NULL, OPT_QUALITY},
                                             {"jobs", required_argument, NULL, 'j'},
                                             {"threads", required_argument, NULL, OPT_THREADS},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int opt, rc;
    opterr = 0;
    a->jobs = 1;
    while ((opt = getopt_long(argc, argv, ":o:c:j:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            if (!*optarg)
                return usage_error("-o wants a folder, not an empty string");
            a->outdir = optarg;
            break;
        case 'c':
            a->config_path = optarg;
            break;
        case OPT_SIZES:
            a->sizes = optarg;
            break;
        case OPT_FORMAT:
            a->format = optarg;
            break;
        case OPT_QUALITY:
            a->quality = optarg;
            break;
        case 'j':
            if ((rc = parse_count("-j", optarg, 1, MAX_JOBS, &a->jobs)) != EXIT_OK)
                return rc;
            break;
        case OPT_THREADS:
            if ((rc = parse_count("--threads", optarg, 1, MAX_VIPS_THREADS, &a->vips_threads)) !=
                EXIT_OK)
                return rc;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf(PROG " %s\n", S3IMGFS_VERSION);
            return EXIT_OK;
        default:
            return cli_bad_option(PROG, opt, argv);
        }
    }
    if (!a->outdir)
        return usage_error("no output folder: give one with -o OUTDIR");
    if (optind >= argc)
        return usage_error("no input files");
    a->files = argv + optind;
    a->file_count = (size_t)(argc - optind);
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* The configuration                                                                            */

/* Errors about the options name the option ("--sizes foo: ...") rather than the key. */
static void config_error(const char *msg)
{
    static const struct {
        const char *prefix;
        const char *option;
    } map[] = {{"option resize.sizes = ", "--sizes "},
               {"option resize.format = ", "--format "},
               {"option resize.quality = ", "--quality "}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
        size_t n = strlen(map[i].prefix);
        if (strncmp(msg, map[i].prefix, n) == 0) {
            error_line("%s%s", map[i].option, msg + n);
            return;
        }
    }
    error_line("%s", msg);
}

static int load_config(const struct args *a, struct config **out)
{
    const char *keys[3] = {"resize.sizes=", "resize.format=", "resize.quality="};
    const char *values[3] = {a->sizes, a->format, a->quality};
    char *overrides[3] = {NULL, NULL, NULL};
    size_t count = 0;
    int rc = EXIT_OK;
    for (size_t i = 0; i < 3; i++) {
        if (!values[i])
            continue;
        if (asprintf(&overrides[count], "%s%s", keys[i], values[i]) < 0) {
            overrides[count] = NULL;
            error_line("out of memory");
            rc = EXIT_FAILED;
            goto out;
        }
        count++;
    }
    struct conf_options o = {.path = a->config_path,
                             .overrides = (const char *const *)overrides,
                             .override_count = count,
                             .override_origin = "option",
                             .no_credentials = true}; /* this tool never talks to S3 */
    struct s3_error err;
    s3_error_clear(&err);
    *out = conf_load(&o, &err);
    if (!*out) {
        config_error(err.message[0] ? err.message : err.code);
        rc = EXIT_USAGE;
    }
out:
    for (size_t i = 0; i < count; i++)
        free(overrides[i]);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Folders and files                                                                            */

/* mkdir that accepts an existing folder. */
static int make_dir(const char *path)
{
    struct stat st;
    if (mkdir(path, 0777) == 0)
        return 0;
    if (errno != EEXIST || stat(path, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

/* mkdir -p. Returns 0, or -1 with errno set and `failed` naming the folder that failed. */
static int make_dirs(const char *path, char *failed, size_t failed_len)
{
    size_t len = strlen(path);
    char *p = malloc(len + 1);
    if (!p)
        return -1;
    memcpy(p, path, len + 1);
    int rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if ((p[i] != '/' && p[i] != '\0') || p[i - 1] == '/')
            continue; /* inside a name, or "a//b" */
        char c = p[i];
        p[i] = '\0';
        rc = make_dir(p);
        if (rc != 0)
            snprintf(failed, failed_len, "%s", p);
        p[i] = c;
    }
    free(p);
    return rc;
}

/* OUTDIR and one folder per size, made before the workers start. */
static int make_output_dirs(const struct config *cfg, const char *outdir)
{
    for (size_t i = 0; i < cfg->resize.size_count; i++) {
        char *dir = NULL;
        if (asprintf(&dir, "%s/%s", outdir, cfg->resize.sizes[i].name) < 0) {
            error_line("out of memory");
            return EXIT_FAILED;
        }
        char failed[PATH_MAX] = "";
        int rc = make_dirs(dir, failed, sizeof(failed));
        if (rc != 0)
            error_line("cannot create the folder %s: %s", failed[0] ? failed : dir,
                       strerror(errno));
        free(dir);
        if (rc != 0)
            return EXIT_FAILED;
    }
    return EXIT_OK;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* "a/b/photo.v2.jpg" -> "photo.v2"; ".profile" and "README" stay as they are. */
static char *output_name(const char *path)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    const char *start = path;
    for (size_t i = 0; i < len; i++)
        if (path[i] == '/' && i + 1 < len)
            start = path + i + 1;
    size_t n = len - (size_t)(start - path);
    for (size_t i = n; i > 1; i--) {
        if (start[i - 1] == '.') {
            n = i - 1;
            break;
        }
    }
    char *name = malloc(n + 1);
    if (name) {
        memcpy(name, start, n);
        name[n] = '\0';
    }
    return name;
}

static int cmp_inputs(const void *a, const void *b)
{
    const struct input *x = *(const struct input *const *)a, *y = *(const struct input *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x < y ? -1 : x > y);
}

/* Two inputs with the same output name would overwrite each other's renditions: every one but
 * the first (in command-line order) is refused. */
static int find_duplicates(struct input *inputs, size_t count)
{
    const struct input **order = malloc(count * sizeof(*order));
    if (!order)
        return -1;
    for (size_t i = 0; i < count; i++)
        order[i] = &inputs[i];
    qsort(order, count, sizeof(*order), cmp_inputs);
    for (size_t i = 1; i < count; i++) {
        if (strcmp(order[i]->name, order[i - 1]->name) == 0) {
            const struct input *first =
                order[i - 1]->same_as ? order[i - 1]->same_as : order[i - 1];
            ((struct input *)order[i])->same_as = first;
        }
    }
    free(order);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* One input                                                                                    */

static int stop_job(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int stop_job(struct job *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->reason, sizeof(j->reason), fmt, ap);
    va_end(ap);
    return 1;
}

/* The engine's callback: the rendition goes to a new temporary file next to its final name. */
static int on_rendition(void *ctx, const struct rendition *r)
{
    struct job *j = ctx;
    const struct run *run = j->run;
    if (g_signal)
        return stop_job(j, "interrupted");
    if (j->count == CONF_MAX_SIZES)
        return stop_job(j, "more renditions than sizes");
    const char *ext = r->extension ? r->extension : resize_extension(r->format);
    const char *size = r->size->name;
    char *path = NULL, *tmp = NULL;
    if (asprintf(&path, "%s/%s/%s.%s", run->outdir, size, j->in->name, ext) < 0)
        path = NULL;
    if (!path || asprintf(&tmp, "%s/%s/.%s.%s.tmp-XXXXXX", run->outdir, size, j->in->name, ext) < 0)
        tmp = NULL;
    if (!path || !tmp) {
        free(path);
        free(tmp);
        return stop_job(j, "out of memory");
    }
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        stop_job(j, "cannot create a file in %s/%s: %s", run->outdir, size, strerror(errno));
        free(path);
        free(tmp);
        return 1;
    }
    struct pending *p = &j->out[j->count++]; /* from here on, the cleanup removes tmp */
    *p = (struct pending){.tmp = tmp,
                          .path = path,
                          .size = size,
                          .width = r->width,
                          .height = r->height,
                          .len = r->len,
                          .ms = r->ms};
    snprintf(p->format, sizeof(p->format), "%s", r->format ? r->format : ext);
    int rc = 0;
    if (fchmod(fd, run->file_mode) != 0)
        rc = stop_job(j, "cannot set the mode of %s: %s", tmp, strerror(errno));
    else if (write_all(fd, r->data, r->len) != 0)
        rc = stop_job(j, "cannot write %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0)
        rc = stop_job(j, "cannot write %s: %s", tmp, strerror(errno));
    return rc;
}

/* Renames the temporary files into place; on failure, removes the ones not renamed. */
static int commit_job(struct job *j)
{
    size_t i = 0;
    for (; i < j->count; i++) {
        if (rename(j->out[i].tmp, j->out[i].path) != 0) {
            stop_job(j, "cannot rename %s to %s: %s", j->out[i].tmp, j->out[i].path,
                     strerror(errno));
            break;
        }
        free(j->out[i].tmp);
        j->out[i].tmp = NULL;
    }
    return i == j->count ? 0 : -1;
}

static void print_job(struct job *j)
{
    pthread_mutex_t *lock = &j->run->out_lock;
    pthread_mutex_lock(lock);
    for (size_t i = 0; i < j->count; i++) {
        const struct pending *p = &j->out[i];
        printf("%s\t%s\t%dx%d\t%s\t%zu\t%.1f\n", j->in->path, p->size, p->width, p->height,
               p->format, p->len, p->ms);
    }
    fflush(stdout); /* one input at a time, for whoever watches a pipe; errors: see main */
    pthread_mutex_unlock(lock);
}

static void clear_job(struct job *j)
{
    for (size_t i = 0; i < j->count; i++) {
        if (j->out[i].tmp) {
            unlink(j->out[i].tmp);
            free(j->out[i].tmp);
        }
        free(j->out[i].path);
    }
    j->count = 0;
}

/* Returns true when the input succeeded or was skipped. */
static bool resize_one(struct run *run, const struct input *in)
{
    if (in->same_as) {
        error_line("%s: its renditions would overwrite those of %s (both are named %s)", in->path,
                   in->same_as->path, in->name);
        return false;
    }
    int fd = open(in->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block */
    if (fd < 0) {
        error_line("%s: %s", in->path, strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        error_line("%s: %s", in->path, strerror(errno));
        close(fd);
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        error_line("%s: %s", in->path, S_ISDIR(st.st_mode) ? "is a folder" : "not a regular file");
        close(fd);
        return false;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (!j) {
        error_line("%s: out of memory", in->path);
        close(fd);
        return false;
    }
    j->run = run;
    j->in = in;
    struct resize_error err;
    memset(&err, 0, sizeof(err));
    enum resize_status status = resize_fd(fd, &run->ropts, on_rendition, j, NULL, &err);
    close(fd); /* read-only: nothing to report */
    bool ok = false;
    switch (status) {
    case RESIZE_OK:
        if (commit_job(j) == 0) {
            print_job(j);
            ok = true;
        } else {
            error_line("%s: %s", in->path, j->reason);
        }
        break;
    case RESIZE_NOT_IMAGE:
        error_line("%s: not an image, skipped", in->path);
        ok = true;
        break;
    case RESIZE_REFUSED:
    case RESIZE_FAILED:
    default:
        error_line("%s: %s", in->path,
                   j->reason[0]    ? j->reason
                   : err.reason[0] ? err.reason
                                   : "resize failed");
        break;
    }
    clear_job(j);
    free(j);
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Workers                                                                                      */

static void *worker(void *arg)
{
    struct run *run = arg;
    for (;;) {
        if (g_signal)
            break;
        size_t i = run->schedule ? schedule_take(run->schedule) : atomic_fetch_add(&run->next, 1);
        if (i >= run->input_count)
            break;
        if (!resize_one(run, &run->inputs[i]))
            atomic_store(&run->failed, true);
        if (run->schedule)
            schedule_done(run->schedule, i);
    }
    resize_thread_done(); /* libvips' per-thread buffers */
    return NULL;
}

/* jobs - 1 threads and the main thread; fewer when threads cannot be made. */
static void run_workers(struct run *run, unsigned jobs)
{
    if (jobs > run->input_count)
        jobs = (unsigned)run->input_count;
    pthread_t *threads = jobs > 1 ? calloc(jobs - 1, sizeof(*threads)) : NULL;
    unsigned started = 0;
    for (unsigned i = 0; threads && i + 1 < jobs; i++) {
        int e = pthread_create(&threads[i], NULL, worker, run);
        if (e != 0) {
            error_line("cannot start more than %u threads (%s): going on with %u jobs", started,
                       strerror(e), started + 1);
            break;
        }
        started++;
    }
    if (jobs > 1 && !threads)
        error_line("out of memory for threads: going on with 1 job");
    worker(run);
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    free(threads);
}

/* ------------------------------------------------------------------------------------------ */

static void on_signal(int sig)
{
    g_signal = sig;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    sigaction(SIGPIPE, &sa, NULL); /* stdout closed (| head): stop, without half-written files */
}

static int resize_all(const struct args *a, const struct config *cfg)
{
    struct run run = {
        .cfg = cfg,
        .ropts = {.sizes = cfg->resize.sizes,
                  .size_count = cfg->resize.size_count,
                  .max_pixels = cfg->resize.max_pixels,
                  .max_file_bytes = (uint64_t)cfg->resize.max_file_mb << 20,
                  .background = cfg->resize.background},
        .outdir = a->outdir,
        .input_count = a->file_count,
    };
    atomic_init(&run.next, 0);
    atomic_init(&run.failed, false);
    int rc = EXIT_OK;
    if ((errno = pthread_mutex_init(&run.out_lock, NULL)) != 0) {
        error_line("cannot make a lock: %s", strerror(errno));
        return EXIT_FAILED;
    }
    run.inputs = calloc(a->file_count, sizeof(*run.inputs));
    for (size_t i = 0; run.inputs && i < a->file_count; i++) {
        run.inputs[i].path = a->files[i];
        if (!(run.inputs[i].name = output_name(a->files[i])))
            rc = EXIT_FAILED;
    }
    if (!run.inputs || rc != EXIT_OK || find_duplicates(run.inputs, a->file_count) != 0) {
        error_line("out of memory");
        rc = EXIT_FAILED;
        goto out;
    }
    mode_t mask = umask(0);
    umask(mask);
    run.file_mode = 0666 & ~mask;

    if ((rc = make_output_dirs(cfg, a->outdir)) != EXIT_OK)
        goto out;
    /* One at a time, the order given is kept (and the lines come out in it). */
    if (a->jobs > 1 && a->file_count > 1 &&
        !(run.schedule = schedule_new((const char *const *)a->files, a->file_count, &run.ropts)))
        error_line("out of memory for a schedule: taking the files in the order given");
    run_workers(&run, a->jobs);
    rc = atomic_load(&run.failed) ? EXIT_FAILED : EXIT_OK;
out:
    schedule_free(run.schedule);
    for (size_t i = 0; run.inputs && i < a->file_count; i++)
        free(run.inputs[i].name);
    free(run.inputs);
    pthread_mutex_destroy(&run.out_lock);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a;
    memset(&a, 0, sizeof(a));
    int rc = parse_args(argc, argv, &a); /* prints nothing unless it returns */
    if (rc >= 0)
        return rc;
    /* Huge pages saved about 100 ms of CPU a photo over the bench corpus; the exec costs one
     * more start of the program (about 90 ms: libvips' 105 shared libraries), so not for a
     * single file. */
    if (a.file_count > 1)
        resize_exec_with_huge_pages(argv);

    struct config *cfg = NULL;
    if ((rc = load_config(&a, &cfg)) != EXIT_OK)
        return rc;

    /* Without --threads (or VIPS_CONCURRENCY), the CPUs are shared among the jobs, at least
     * one thread each: with -j 2 on 2 CPUs, libvips' default of one thread per CPU for each
     * image would run four threads on two CPUs, and switching costs more than it brings. */
    unsigned threads = a.vips_threads;
    if (threads == 0 && !getenv("VIPS_CONCURRENCY")) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > (long)a.jobs ? (unsigned)(cpus / (long)a.jobs) : 1;
    }
    struct resize_error err;
    memset(&err, 0, sizeof(err));
    if (resize_global_init(threads, &err) != 0) {
        error_line("cannot start the resize engine: %s", err.reason[0] ? err.reason : "?");
        conf_free(cfg);
        return EXIT_FAILED;
    }
    catch_signals();
    rc = resize_all(&a, cfg);
    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && g_signal != SIGPIPE) {
        error_line("writing the output failed: %s", errno ? strerror(errno) : "I/O error");
        rc = EXIT_FAILED;
    }
    resize_global_shutdown();
    conf_free(cfg);
    if (g_signal) {
        if (g_signal != SIGPIPE)
            error_line("interrupted: the files not yet resized were left alone");
        signal(g_signal, SIG_DFL);
        raise(g_signal);
    }
    return rc;
}
