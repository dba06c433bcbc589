/* s3imgfs-lambda: the deployed function (a Lambda custom runtime), the same handler behind an
 * HTTP endpoint for radosgw and MinIO bucket notifications (--serve), or one event from a file
 * (--event). See docs/s3imgfs-lambda.md (and `s3imgfs-lambda --help`). */
#include "frontend.h"
#include "lambda.h"
#include "log.h"
#include "resize.h"

#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXIT_USAGE 2
/* --event: the largest event file read (Lambda's own limit is 6 MiB). */
#define MAX_EVENT_FILE (16u << 20)
/* Notices still queued at exit get this long to go out. */
#define DRAIN_MS 5000

enum mode { MODE_LAMBDA, MODE_SERVE, MODE_EVENT };

struct program {
    enum mode mode;
    const char *config_path; /* -c: an INI file instead of the environment */
    const char *listen;      /* --serve */
    const char *event_path;  /* --event */
    const char *api;         /* AWS_LAMBDA_RUNTIME_API */
    struct config *cfg;
    struct s3client *s3;
    struct metrics *metrics;
    struct notifier *notifier;
    struct lambda_handler *handler;
    bool resize_started;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: s3imgfs-lambda                               the Lambda function (custom\n"
            "                                                    runtime; needs "
            "AWS_LAMBDA_RUNTIME_API)\n"
            "       s3imgfs-lambda --serve ADDRESS:PORT [-c FILE] S3 event webhooks (radosgw, "
            "MinIO)\n"
            "       s3imgfs-lambda --event FILE|- [-c FILE]      one event; prints the response\n"
            "Resizes the images named by S3 event notifications into the destination bucket.\n"
            "The configuration comes from S3IMGFS_<KEY> environment variables (docs/config.md\n"
            "lists the keys) and the AWS ones; with -c, from an INI file instead.\n"
            "\n"
            "  --serve ADDRESS:PORT  answer POST / on that address (e.g. 127.0.0.1:8080) until\n"
            "                        SIGINT or SIGTERM\n"
            "  --event FILE          handle the event in FILE (- = standard input) and print the\n"
            "                        response; exit 0 when no record failed, 1 when one did or\n"
            "                        the event is not an S3 event, 2 on a usage or config error\n"
            "  -c, --config FILE     the configuration as an INI file (with --serve, --event)\n"
            "  -h, --help            this text\n"
            "  -V, --version         the version\n"
            "Documentation: docs/s3imgfs-lambda.md\n");
}

static int parse_args(struct program *p, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"serve", required_argument, NULL, 's'},
        {"event", required_argument, NULL, 'e'},  {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            p->config_path = optarg;
            break;
        case 's':
            p->listen = optarg;
            break;
        case 'e':
            p->event_path = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("s3imgfs-lambda %s (libcurl %s, libmicrohttpd %s)\n", S3IMGFS_VERSION,
                   curl_version_info(CURLVERSION_NOW)->version, MHD_get_version());
            return 0;
        case ':':
            fprintf(stderr, "s3imgfs-lambda: %s needs an argument (s3imgfs-lambda --help)\n",
                    argv[optind - 1]);
            return EXIT_USAGE;
        default:
            fprintf(stderr, "s3imgfs-lambda: unknown option %s (s3imgfs-lambda --help)\n",
                    argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "s3imgfs-lambda: unexpected argument %s (s3imgfs-lambda --help)\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (p->listen && p->event_path) {
        fprintf(stderr, "s3imgfs-lambda: --serve and --event do not go together\n");
        return EXIT_USAGE;
    }
    p->mode = p->listen ? MODE_SERVE : p->event_path ? MODE_EVENT : MODE_LAMBDA;
    if (p->mode == MODE_LAMBDA) {
        if (p->config_path) {
            fprintf(stderr, "s3imgfs-lambda: -c goes with --serve or --event; a function takes "
                            "its configuration from the environment\n");
            return EXIT_USAGE;
        }
        p->api = getenv("AWS_LAMBDA_RUNTIME_API");
        if (!p->api || !*p->api) {
            fprintf(stderr,
                    "s3imgfs-lambda: AWS_LAMBDA_RUNTIME_API is not set, so this is not Lambda: "
                    "use --serve or --event to run it elsewhere (s3imgfs-lambda --help)\n");
            return EXIT_USAGE;
        }
    }
    return -1; /* go on */
}

/* Until the configuration is read: stderr, info; JSON in Lambda (CloudWatch parses it). */
static void early_log(const struct program *p)
{
    struct log_options lo = {
        .level = LOG_LEVEL_INFO, .json = p->mode == MODE_LAMBDA, .ident = "s3imgfs-lambda"};
    char why[256];
    log_open(&lo, why, sizeof(why));
}

static int load_config(struct program *p, struct s3_error *err)
{
    if (p->config_path) {
        struct conf_options co = {.path = p->config_path};
        p->cfg = conf_load(&co, err);
    } else {
        p->cfg = lambda_config_from_env(NULL, NULL, err);
    }
    return p->cfg ? 0 : -1;
}

/* The log as configured; in Lambda always JSON on stderr (a file makes no sense there). */
static int open_log(const struct program *p, struct s3_error *err)
{
    const struct config *cfg = p->cfg;
    bool lambda = p->mode == MODE_LAMBDA;
    struct log_options lo = {
        .level = (enum log_level)cfg->log.level,
        .json = lambda || cfg->log.format == CONF_LOG_JSON,
        .file = !lambda && cfg->log.file[0] ? cfg->log.file : NULL,
        .ident = "s3imgfs-lambda",
    };
    char why[512];
    if (log_open(&lo, why, sizeof(why)) != 0) {
        s3_error_set(err, 0, "InvalidConfig", false, "[log] file: %s", why);
        return -1;
    }
    return 0;
}

static struct s3client *make_client(const struct config *cfg, struct s3_error *err)
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
    };
    return s3client_new(&o, err);
}

static struct metrics *make_metrics(const struct config *cfg)
{
    const char *names[CONF_MAX_SIZES];
    for (size_t i = 0; i < cfg->resize.size_count; i++)
        names[i] = cfg->resize.sizes[i].name;
    return metrics_new(names, cfg->resize.size_count);
}

static struct notifier *make_notifier(struct program *p, struct s3_error *err)
{
    char origin[300];
    if (p->mode == MODE_LAMBDA) {
        const char *fn = getenv("AWS_LAMBDA_FUNCTION_NAME");
        snprintf(origin, sizeof(origin), "s3imgfs-lambda%s%s", fn && *fn ? " " : "",
                 fn && *fn ? fn : "");
    } else {
        char host[256] = "";
        gethostname(host, sizeof(host) - 1);
        snprintf(origin, sizeof(origin), "s3imgfs-lambda on %s", host[0] ? host : "?");
    }
    /* no state folder: a function has none that lasts, and --serve answers 500 for what it
     * could not finish, so the sender retries */
    struct notifier_options no = {
        .cfg = p->cfg, .state_dir = NULL, .origin = origin, .metrics = p->metrics};
    return notifier_new(&no, err);
}

/* Everything up to the handler. Returns 0, or the exit status (err says why). The type of the
 * error for the Runtime API goes to *error_type. */
static int prepare(struct program *p, struct s3_error *err, const char **error_type)
{
    *error_type = "S3imgfs.InvalidConfig";
    if (load_config(p, err) != 0 || open_log(p, err) != 0)
        return EXIT_USAGE;
    log_report_crashes("The events of the invocation that was running get no response: the "
                       "caller's retry policy decides (Lambda retries asynchronous events twice, "
                       "then sends them to the dead-letter queue).",
                       NULL); /* its log is stdout/stderr, never syslog */
    if (!(p->s3 = make_client(p->cfg, err)))
        return EXIT_USAGE;
    if (!(p->metrics = make_metrics(p->cfg))) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        *error_type = "S3imgfs.InitFailed";
        return 1;
    }
    if (!(p->notifier = make_notifier(p, err)))
        return EXIT_USAGE;
    struct lambda_handler_options ho = {
        .cfg = p->cfg, .s3 = p->s3, .notifier = p->notifier, .metrics = p->metrics};
    if (!(p->handler = lambda_handler_new(&ho, err)))
        return EXIT_USAGE;

    /* the threads start only now: libvips', the notifier's */
    *error_type = "S3imgfs.InitFailed";
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct resize_error rerr;
    if (resize_global_init(cpus > 0 ? (unsigned)cpus : 1, &rerr) != 0) {
        s3_error_set(err, 0, "InitFailed", false, "cannot start the resize engine: %s",
                     rerr.reason);
        return 1;
    }
    p->resize_started = true;
    if (notifier_start(p->notifier, err) != 0)
        return 1;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* --event                                                                                      */

static char *read_event(const char *path, size_t *len, struct s3_error *err)
{
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (!f) {
        s3_error_set(err, 0, "LocalIOError", false, "--event %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 65536, n = 0;
    char *data = malloc(cap + 1);
    while (data) {
        if (n == cap) {
            if (cap >= MAX_EVENT_FILE) {
                s3_error_set(err, 0, "InvalidArgument", false,
                             "--event %s: larger than %u bytes: not an S3 event", path,
                             MAX_EVENT_FILE);
                free(data);
                data = NULL;
                break;
            }
            char *bigger = realloc(data, cap * 2 + 1);
            if (!bigger) {
                free(data);
                data = NULL;
                break;
            }
            data = bigger, cap *= 2;
        }
        size_t got = fread(data + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) {
                s3_error_set(err, 0, "LocalIOError", false, "--event %s: %s", path,
                             strerror(errno));
                free(data);
                data = NULL;
            }
            break;
        }
    }
    if (!data && !err->message[0])
        s3_error_set(err, 0, "OutOfMemory", false, "--event %s: out of memory", path);
    if (!is_stdin)
        fclose(f);
    if (data) {
        data[n] = '\0';
        *len = n;
    }
    return data;
}

static int run_event(struct program *p)
{
    struct s3_error err = {0};
    size_t len = 0;
    char *event = read_event(p->event_path, &len, &err);
    if (!event) {
        fprintf(stderr, "s3imgfs-lambda: %s\n", err.message);
        return EXIT_USAGE;
    }
    bool retry = false;
    char *response = lambda_handle_event(p->handler, event, len, 0, &retry, &err);
    free(event);
    if (!response) {
        fprintf(stderr, "s3imgfs-lambda: %s: %s\n", p->event_path, err.message);
        return 1;
    }
    printf("%s\n", response);
    fflush(stdout);
    struct lambda_counts c;
    lambda_response_counts(response, &c);
    free(response);
    return c.failed || c.not_started || retry ? 1 : 0;
}

/* ------------------------------------------------------------------------------------------ */

static void cleanup(struct program *p)
{
    lambda_handler_free(p->handler);
    notifier_free(p->notifier, DRAIN_MS);
    metrics_free(p->metrics);
    s3client_free(p->s3);
    if (p->resize_started)
        resize_global_shutdown();
    conf_free(p->cfg);
}

int main(int argc, char **argv)
{
    resize_exec_with_huge_pages(argv); /* before anything else: it may run us again */
    struct program p = {0};
    int rc = parse_args(&p, argc, argv);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    if (p.mode == MODE_SERVE) {
        /* taken by sigwait in lambda_serve: blocked before any thread starts, so that every
         * thread inherits the mask and none dies of them */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, NULL);
    }
    early_log(&p);

    struct s3_error err = {0};
    const char *error_type = NULL;
    rc = prepare(&p, &err, &error_type);
    if (rc != 0) {
        if (p.mode == MODE_LAMBDA) {
            log_error("cannot start: %s", err.message);
            lambda_runtime_init_error(p.api, error_type, err.message);
            rc = 1; /* Lambda shows the init error; the status only ends the process */
        } else {
            fprintf(stderr, "s3imgfs-lambda: %s\n", err.message);
        }
        cleanup(&p);
        return rc;
    }

    /* EMF lines: after every invocation in Lambda (CloudWatch turns them into metrics); with
     * --serve only when asked for ([log] metrics_seconds), at most that often */
    struct lambda_frontend fe = {.metrics = p.metrics, .service = p.cfg->s3.source_bucket};
    if (p.mode == MODE_SERVE) {
        fe.emf_interval_ms = p.cfg->log.metrics_seconds * 1000u;
        if (!p.cfg->log.metrics_seconds)
            fe.metrics = NULL;
    }
    switch (p.mode) {
    case MODE_LAMBDA:
        rc = lambda_runtime_loop_with(p.handler, p.api, &fe);
        break;
    case MODE_SERVE:
        if (lambda_serve_with(p.handler, p.listen, &fe, &err) != 0) {
            log_error("%s", err.message);
            rc = strcmp(err.code, "InvalidArgument") == 0 ? EXIT_USAGE : 1;
        } else {
            rc = 0;
        }
        break;
    case MODE_EVENT:
        rc = run_event(&p);
        break;
    }
    cleanup(&p);
    return rc;
}
