/* s3imgfs: mount the source bucket; files written to it are uploaded, resized and shown under
 * <resized_dir>/. See docs/s3imgfs.md (and `s3imgfs --help`). */
#include "commands.h"
#include "fs.h"

#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "resize.h"
#include <fuse_lowlevel.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_USAGE 2
/* In cache_dir: the crash report of a gateway that logged to syslog (log_report_crashes). */
#define CRASH_FILE "crash.log"

struct options {
    char *config;     /* malloc'd by fuse_opt_parse */
    char **overrides; /* malloc'd copies */
    size_t override_count;
    int help, version;
};

static const struct fuse_opt option_spec[] = {{"config=%s", offsetof(struct options, config), 0},
                                              {"-h", offsetof(struct options, help), 1},
                                              {"--help", offsetof(struct options, help), 1},
                                              {"-V", offsetof(struct options, version), 1},
                                              {"--version", offsetof(struct options, version), 1},
                                              FUSE_OPT_END};

/* "section.key=value" with a known section is ours (a config override); anything else goes to
 * FUSE (allow_other, ...). */
static int take_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
    (void)outargs;
    struct options *o = data;
    if (key != FUSE_OPT_KEY_OPT)
        return 1;
    const char *dot = strchr(arg, '.'), *eq = strchr(arg, '=');
    if (!dot || !eq || dot > eq)
        return 1;
    for (size_t i = 0; conf_section_at(i); i++) {
        const char *s = conf_section_at(i);
        if (strlen(s) == (size_t)(dot - arg) && strncmp(arg, s, (size_t)(dot - arg)) == 0) {
            char **list = realloc(o->overrides, (o->override_count + 1) * sizeof(*list));
            if (!list)
                return -1;
            o->overrides = list;
            /* a copy: fuse_opt hands out items of a split "-o a,b" in a scratch buffer */
            if (!(o->overrides[o->override_count] = strdup(arg)))
                return -1;
            o->override_count++;
            return 0;
        }
    }
    return 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: s3imgfs [options] MOUNTPOINT\n"
            "       s3imgfs status [-w] [--json] MOUNTPOINT   the upload queue\n"
            "       s3imgfs retry MOUNTPOINT [PATH...]        try failed uploads again\n"
            "Mounts the source bucket; files written are uploaded once closed, images are\n"
            "resized into the destination bucket, shown under MOUNTPOINT/resized/.\n"
            "Unmount with: fusermount3 -u MOUNTPOINT\n"
            "\n"
            "  -o config=FILE          the configuration (default ~/.config/s3imgfs/config.ini)\n"
            "  -o SECTION.KEY=VALUE    a setting of the configuration (docs/config.md), e.g.\n"
            "                          -o gateway.upload_workers=16,log.level=debug\n"
            "  -f                      stay in the foreground, log to stderr\n"
            "  -d                      debug: foreground, log level debug, FUSE requests\n"
            "  -s                      one FUSE thread\n"
            "  -o allow_other, ...     FUSE mount options (mount.fuse3(8))\n"
            "  -h, --help              this text\n"
            "  -V, --version           the version\n");
}

/* Two clients: the workers' (default retries and timeouts: a transfer may be slow) and the one
 * FUSE threads use for lookups, listings, reads and namespace changes, which a user waits on:
 * fewer attempts and a shorter stall limit, so a hung server gives EIO in under a minute
 * rather than after 5 x 60 s. */
static struct s3client *make_client(const struct config *cfg, bool interactive,
                                    struct s3_error *err)
{
    struct s3client_options o = {
        .endpoint = cfg->s3.endpoint,
        .region = cfg->s3.region,
        .path_style = cfg->s3.path_style,
        .content_md5 = cfg->s3.content_md5,
        .ca_file = cfg->s3.ca_file[0] ? cfg->s3.ca_file : NULL,
        .credentials = conf_credentials_provider,
        .credentials_ctx = cfg->credentials,
        .multipart_threshold = (uint64_t)cfg->gateway.multipart_threshold_mb << 20,
        .multipart_part_size = (uint64_t)cfg->gateway.part_size_mb << 20,
        .multipart_parallel = cfg->gateway.part_parallel,
        .max_send_speed = (uint64_t)cfg->gateway.upload_kbps << 10,
        .max_attempts = interactive ? 3 : 0,
        .low_speed_seconds = interactive ? 15 : 0,
    };
    return s3client_new(&o, err);
}

/* The buckets must exist and the credentials work before anything is mounted. */
static int check_buckets(const struct config *cfg, struct s3client *s3)
{
    const char *buckets[] = {cfg->s3.source_bucket, cfg->s3.destination_bucket};
    const char *keys[] = {"source_bucket", "destination_bucket"};
    for (int i = 0; i < 2; i++) {
        if (i == 1 && cfg->resize.mode == CONF_RESIZE_OFF)
            break;
        if (!buckets[i][0]) {
            fprintf(stderr, "s3imgfs: [s3] %s is not set (docs/config.md)\n", keys[i]);
            return -1;
        }
        struct s3_error err = {0};
        if (s3_head_bucket(s3, buckets[i], &err) != 0) {
            fprintf(stderr, "s3imgfs: [s3] %s = %s: %s\n", keys[i], buckets[i], err.message);
            return -1;
        }
    }
    return 0;
}

struct program {
    struct options opts;
    struct fuse_cmdline_opts cmd;
    struct config *cfg;
    struct s3client *s3;    /* the workers' */
    struct s3client *s3_fs; /* the FUSE threads' */
    struct fs *fs;
    struct gateway *gw;
    struct metrics *metrics;
    struct notifier *notifier;
    struct fuse *fuse;
};

static struct metrics *make_metrics(const struct config *cfg)
{
    const char *names[CONF_MAX_SIZES];
    for (size_t i = 0; i < cfg->resize.size_count; i++)
        names[i] = cfg->resize.sizes[i].name;
    return metrics_new(names, cfg->resize.size_count);
}

/* Notices not delivered at unmount wait in the cache folder for the next mount. */
static struct notifier *make_notifier(struct program *p, struct s3_error *err)
{
    char host[256] = "", origin[300];
    gethostname(host, sizeof(host) - 1);
    snprintf(origin, sizeof(origin), "s3imgfs gateway on %s", host[0] ? host : "?");
    struct notifier_options no = {.cfg = p->cfg,
                                  .state_dir = p->cfg->gateway.cache_dir,
                                  .origin = origin,
                                  .metrics = p->metrics};
    return notifier_new(&no, err);
}

static int load_config(struct program *p)
{
    struct conf_options co = {.path = p->opts.config,
                              .overrides = (const char *const *)p->opts.overrides,
                              .override_count = p->opts.override_count};
    struct s3_error err = {0};
    p->cfg = conf_load(&co, &err);
    if (!p->cfg) {
        fprintf(stderr, "s3imgfs: %s\n", err.message);
        return -1;
    }
    return 0;
}

static int prepare(struct program *p)
{
    struct s3_error err = {0};
    p->s3 = make_client(p->cfg, false, &err);
    if (p->s3)
        p->s3_fs = make_client(p->cfg, true, &err);
    if (!p->s3 || !p->s3_fs) {
        fprintf(stderr, "s3imgfs: %s\n", err.message);
        return -1;
    }
    if (check_buckets(p->cfg, p->s3) != 0)
        return -1;
    p->fs = fs_new(p->cfg, p->s3_fs);
    p->metrics = make_metrics(p->cfg);
    if (!p->fs || !p->metrics) {
        fprintf(stderr, "s3imgfs: out of memory\n");
        return -1;
    }
    struct gateway_options go = {p->cfg, p->s3, fs_key_changed, p->fs, NULL, p->metrics};
    if (!(p->gw = gateway_new(&go, &err))) {
        fprintf(stderr, "s3imgfs: %s\n", err.message);
        return -1;
    }
    /* after gateway_new, which creates the cache folder and takes its lock */
    if (!(p->notifier = make_notifier(p, &err))) {
        fprintf(stderr, "s3imgfs: %s\n", err.message);
        return -1;
    }
    gateway_set_notifier(p->gw, p->notifier);
    fs_set_gateway(p->fs, p->gw);
    return 0;
}

/* After daemonizing: threads may start now. */
static int start_workers(struct program *p)
{
    if (p->cfg->resize.mode == CONF_RESIZE_LOCAL) {
        struct resize_error rerr;
        unsigned cpus = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
        unsigned per = cpus / p->cfg->gateway.resize_workers;
        if (resize_global_init(per ? per : 1, &rerr) != 0) {
            log_error("cannot start the resize engine: %s", rerr.reason);
            return -1;
        }
    }
    struct s3_error err = {0};
    if (notifier_start(p->notifier, &err) != 0) {
        log_error("%s", err.message);
        return -1;
    }
    if (gateway_start(p->gw, &err) != 0) {
        log_error("cannot start the workers: %s", err.message);
        return -1;
    }
    return 0;
}

static void on_sighup(int sig)
{
    (void)sig;
    log_reopen_request();
}

/* The log as configured; SIGHUP (which libfuse would take as "unmount") reopens its file. */
static int open_log(struct program *p)
{
    const struct config *cfg = p->cfg;
    struct log_options lo = {
        .level = p->cmd.debug ? LOG_LEVEL_DEBUG : (enum log_level)cfg->log.level,
        .json = cfg->log.format == CONF_LOG_JSON,
        .file = cfg->log.file[0] ? cfg->log.file : NULL,
        .use_syslog = !p->cmd.foreground,
        .ident = "s3imgfs",
    };
    char why[512];
    if (log_open(&lo, why, sizeof(why)) != 0) {
        fprintf(stderr, "s3imgfs: [log] file: %s\n", why);
        return -1;
    }
    return 0;
}

/* A crash report the last run left in cache_dir (it logged to syslog, which a crashing process
 * cannot use): said once, loudly, then kept aside as CRASH_FILE.1 so that the next mount does
 * not say it again. Called once the cache_dir is ours (start_workers locks it). */
static void announce_previous_crash(const char *crash_file)
{
    struct stat st;
    if (lstat(crash_file, &st) != 0 || !S_ISREG(st.st_mode))
        return;
    char when[64] = "?", kept[PATH_MAX + 2];
    struct tm tm;
    if (gmtime_r(&st.st_mtime, &tm)) /* UTC, as the log's own times */
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(kept, sizeof(kept), "%s.1", crash_file);
    bool moved = rename(crash_file, kept) == 0;
    log_error("the last run of s3imgfs on this cache_dir crashed (%s): its report is in %s; "
              "please report it. Files closed before the crash are being uploaded now.",
              when, moved ? kept : crash_file);
}

/* Installed after libfuse's handlers, which would take SIGHUP as "unmount". */
static void on_sighup_reopen(void)
{
    struct sigaction sa = {.sa_handler = on_sighup};
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGHUP, &sa, NULL);
}

static int run(struct program *p, struct fuse_args *args)
{
    p->fuse = fuse_new(args, fs_operations(), sizeof(struct fuse_operations), p->fs);
    if (!p->fuse)
        return 1;
    if (fuse_mount(p->fuse, p->cmd.mountpoint) != 0)
        return 1;
    int rc = 1;
    struct fuse_session *se = fuse_get_session(p->fuse);
    if (open_log(p) != 0 || fuse_daemonize(p->cmd.foreground) != 0 ||
        fuse_set_signal_handlers(se) != 0)
        goto unmount;
    on_sighup_reopen();
    char crash_file[PATH_MAX];
    snprintf(crash_file, sizeof(crash_file), "%s/" CRASH_FILE, p->cfg->gateway.cache_dir);
    log_report_crashes("Files closed before the crash are kept in the spool and go up at the next "
                       "mount: run fusermount3 -u on the mountpoint, then mount again.",
                       crash_file);
    if (start_workers(p) != 0)
        goto signals;
    announce_previous_crash(crash_file);
    /* fuse_daemonize went to "/": work in the cache directory instead, so that a core dump
     * (where enabled, with the kernel's default core_pattern) lands beside the spool it concerns
     * rather than in the root directory. */
    if (chdir(p->cfg->gateway.cache_dir) != 0)
        log_debug("cannot enter %s: %s", p->cfg->gateway.cache_dir, strerror(errno));
    log_info("mounted s3://%s/%s on %s", p->cfg->s3.source_bucket, p->cfg->s3.source_prefix,
             p->cmd.mountpoint);
    if (p->cmd.singlethread) {
        rc = fuse_loop(p->fuse) == 0 ? 0 : 1;
    } else {
        struct fuse_loop_config *lc = fuse_loop_cfg_create();
        fuse_loop_cfg_set_clone_fd(lc, p->cmd.clone_fd);
        fuse_loop_cfg_set_max_threads(lc, 32);
        if (p->cmd.max_idle_threads <= 1000) /* else: not given */
            fuse_loop_cfg_set_idle_threads(lc, p->cmd.max_idle_threads);
        rc = fuse_loop_mt(p->fuse, lc) == 0 ? 0 : 1;
        fuse_loop_cfg_destroy(lc);
    }
    log_info("unmounting %s", p->cmd.mountpoint);
  signals:
    fuse_remove_signal_handlers(se);
unmount:
    fuse_unmount(p->fuse);
    return rc;
}

int main(int argc, char **argv)
{
    int command_rc = commands_main(argc, argv); /* status, retry: no resizing */
    if (command_rc >= 0)
        return command_rc;
    resize_exec_with_huge_pages(argv); /* before anything else: it may run us again */
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    struct program p = {0};
    int rc = EXIT_USAGE;
    if (fuse_opt_parse(&args, &p.opts, option_spec, take_option) != 0)
        goto out;
    if (p.opts.help || p.opts.version) {
        if (p.opts.help)
            usage(stdout);
        else
            printf("s3imgfs %s (libfuse %s)\n", S3IMGFS_VERSION, fuse_pkgversion());
        rc = 0;
        goto out;
    }
    if (fuse_parse_cmdline(&args, &p.cmd) != 0)
        goto out;
    if (!p.cmd.mountpoint) {
        fprintf(stderr, "s3imgfs: no mountpoint given (s3imgfs --help)\n");
        goto out;
    }
    if (p.cmd.debug) {
        p.cmd.foreground = 1;
        fuse_opt_add_arg(&args, "-d");
    }
    if (load_config(&p) != 0)
        goto out;
    rc = 1;
    if (prepare(&p) == 0)
        rc = run(&p, &args);
out:
    if (p.fuse)
        fuse_destroy(p.fuse);
    gateway_free(p.gw);
    notifier_free(p.notifier, 3000); /* after the gateway: its workers post until they stop */
    metrics_free(p.metrics);
    fs_free(p.fs);
    s3client_free(p.s3_fs);
    s3client_free(p.s3);
    if (p.cfg && p.cfg->resize.mode == CONF_RESIZE_LOCAL && rc != EXIT_USAGE)
        resize_global_shutdown();
    conf_free(p.cfg);
    free(p.cmd.mountpoint);
    for (size_t i = 0; i < p.opts.override_count; i++)
        free(p.opts.overrides[i]);
    free(p.opts.overrides);
    free(p.opts.config);
    fuse_opt_free_args(&args);
    return rc;
}
