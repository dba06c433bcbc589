/* s3imgfs-s3: a small S3 command on the project's own client and configuration.
 *
 * It checks a configuration and its credentials, and lists, uploads, downloads, inspects,
 * deletes and presigns objects of the source (or destination) bucket, with exactly the settings
 * s3imgfs itself would use. docs/s3imgfs-s3.md and the man page s3imgfs-s3(1) are the user's
 * reference.
 *
 * Exit codes: 0 success, 1 the operation failed, 2 usage or configuration error.
 * Errors are one line on stderr, "s3imgfs-s3: <message>". Secrets are never printed.
 */
#include "conf.h"
#include "s3client.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define PROG "s3imgfs-s3"

#define MAX_OVERRIDES   64
#define MAX_METADATA    32
#define PRESIGN_DEFAULT 3600u
#define PRESIGN_MAX     604800u /* 7 days, the SigV4 limit */
#define MAGIC_BYTES     64

/* ------------------------------------------------------------------------------------------ */
/* State                                                                                        */

/* Global options and what main builds from them; main owns cfg and client. */
struct cli {
    const char *config_path; /* -c; NULL = the default location */
    const char *overrides[MAX_OVERRIDES];
    size_t override_count;
    bool verbose;
    struct config *cfg;
    struct s3client *client;
};

/* The options and arguments of one command. Every string is borrowed from argv. */
struct cmd_args {
    const char *bucket;                   /* -b */
    bool dest;                            /* --dest */
    bool recursive;                       /* -r (ls) */
    const char *type;                     /* -t (put) */
    struct aws_header meta[MAX_METADATA]; /* -m (put); argv strings split at '=' */
    size_t meta_count;
    char **pos; /* positional arguments */
    int npos;
};

/* Where a command works: a bucket and the prefix that keys on the command line are under. */
struct target {
    const char *bucket;
    const char *prefix;
};

struct command {
    const char *name;
    const char *args;    /* for the usage text */
    const char *options; /* allowed per-command options: b = -b/--dest, r, t, m */
    int min_args;
    int max_args; /* -1 = any number */
    const char *help;
    int (*run)(struct cli *cli, struct cmd_args *a);
};

/* ------------------------------------------------------------------------------------------ */
/* Messages                                                                                     */

/* "s3imgfs-s3: <message><tail>" on stderr. */
static void vmessage(const char *fmt, va_list ap, const char *tail)
    __attribute__((format(printf, 1, 0)));
static void vmessage(const char *fmt, va_list ap, const char *tail)
{
    fputs(PROG ": ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(tail, stderr);
}

static void error_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void error_line(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmessage(fmt, ap, "\n");
    va_end(ap);
}

static int fail(const struct s3_error *err)
{
    error_line("%s", err->message[0] ? err->message : err->code);
    return EXIT_FAILED;
}

#define usage_error(...) cli_usage_error(PROG, __VA_ARGS__)

/* The configuration or the client could not be made. */
static int config_error(const struct s3_error *err)
{
    error_line("%s", err->message);
    return EXIT_USAGE;
}

static int local_error(const char *what, const char *path)
{
    error_line("%s %s: %s", what, path, strerror(errno));
    return EXIT_FAILED;
}

static void iso_date(time_t t, char out[21])
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 21, "-");
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* As conf_dump shows it: "****************abcd", nothing of a key of 8 characters or fewer. */
static void mask_key(const char *key, char *out, size_t outlen)
{
    size_t len = strlen(key);
    snprintf(out, outlen, "****************%s", len > 8 ? key + len - 4 : "");
}

/* ------------------------------------------------------------------------------------------ */
/* Targets and keys                                                                             */

static int pick_target(const struct cli *cli, const struct cmd_args *a, struct target *t)
{
    if (a->bucket && a->dest)
        return usage_error("-b and --dest cannot be used together");
    if (a->bucket) {
        *t = (struct target){a->bucket, ""};
        return EXIT_OK;
    }
    if (a->dest)
        *t = (struct target){cli->cfg->s3.destination_bucket, cli->cfg->s3.destination_prefix};
    else
        *t = (struct target){cli->cfg->s3.source_bucket, cli->cfg->s3.source_prefix};
    if (!*t->bucket) {
        error_line("no %s bucket is configured: set [s3] %s in the config file, or name a "
                   "bucket with -b BUCKET",
                   a->dest ? "destination" : "source",
                   a->dest ? "destination_bucket" : "source_bucket");
        return EXIT_USAGE;
    }
    return EXIT_OK;
}

/* The object key of a key given on the command line (malloc'd; NULL when out of memory). */
static char *full_key(const struct target *t, const char *key)
{
    char *out = NULL;
    if (asprintf(&out, "%s%s", t->prefix, key) < 0)
        return NULL;
    return out;
}

/* A key as the user names it: without the target's prefix. */
static const char *relative_key(const struct target *t, const char *key)
{
    size_t n = strlen(t->prefix);
    return strncmp(key, t->prefix, n) == 0 ? key + n : key;
}

static int check_key(const char *key)
{
    if (!*key)
        return usage_error("an empty key is not a valid object key");
    return EXIT_OK;
}

/* The target of a command and the object key of its key argument `arg` (malloc'd into *key;
 * `what` names the operation if that fails). Returns an exit code, with the error reported. */
static int target_key(const struct cli *cli, const struct cmd_args *a, const char *arg,
                      const char *what, struct target *t, char **key)
{
    int rc = pick_target(cli, a, t);
    if (rc != EXIT_OK || (rc = check_key(arg)) != EXIT_OK)
        return rc;
    *key = full_key(t, arg);
    return *key ? EXIT_OK : local_error(what, arg);
}

/* ------------------------------------------------------------------------------------------ */
/* Content types by magic bytes                                                                 */

struct magic {
    size_t offset;
    const char *bytes;
    size_t len;
    const char *type;
};

/* clang-format off */
static const struct magic magic_table[] = {
    {0, "\xff\xd8\xff", 3, "image/jpeg"},
    {0, "\x89PNG\r\n\x1a\n", 8, "image/png"},
    {0, "GIF87a", 6, "image/gif"},
    {0, "GIF89a", 6, "image/gif"},
    {8, "WEBP", 4, "image/webp"}, /* "RIFF", a length, "WEBP": RIFF is checked below */
    {0, "II*\0", 4, "image/tiff"},
    {0, "MM\0*", 4, "image/tiff"},
};
/* clang-format on */

/* ISO base media files (HEIF, AVIF): an "ftyp" box with a major brand and compatible brands. */
static const char *ftyp_type(const unsigned char *b, size_t len)
{
    if (len < 16 || memcmp(b + 4, "ftyp", 4) != 0)
        return NULL;
    size_t box = (size_t)b[0] << 24 | (size_t)b[1] << 16 | (size_t)b[2] << 8 | b[3];
    size_t end = box < len ? box : len;
    bool heic = false;
    for (size_t i = 8; i + 4 <= end; i += i == 8 ? 8 : 4) { /* skip the minor version */
        const char *brand = (const char *)b + i;
        if (memcmp(brand, "avif", 4) == 0 || memcmp(brand, "avis", 4) == 0)
            return "image/avif";
        if (memcmp(brand, "heic", 4) == 0 || memcmp(brand, "heix", 4) == 0 ||
            memcmp(brand, "heim", 4) == 0 || memcmp(brand, "heis", 4) == 0 ||
            memcmp(brand, "mif1", 4) == 0)
            heic = true;
    }
    return heic ? "image/heic" : NULL;
}

static const char *type_from_magic(const unsigned char *b, size_t len)
{
    for (size_t i = 0; i < sizeof(magic_table) / sizeof(magic_table[0]); i++) {
        const struct magic *m = &magic_table[i];
        if (len >= m->offset + m->len && memcmp(b + m->offset, m->bytes, m->len) == 0 &&
            (m->offset == 0 || memcmp(b, "RIFF", 4) == 0))
            return m->type;
    }
    const char *iso = ftyp_type(b, len);
    return iso ? iso : "application/octet-stream";
}

static const char *file_content_type(int fd)
{
    unsigned char b[MAGIC_BYTES];
    ssize_t n = pread(fd, b, sizeof(b), 0);
    return type_from_magic(b, n > 0 ? (size_t)n : 0);
}

/* ------------------------------------------------------------------------------------------ */
/* check                                                                                        */

static void check_line(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void check_line(bool ok, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%-4s  %-12s ", ok ? "OK" : "FAIL", what);
    vprintf(fmt, ap);
    putchar('\n');
    va_end(ap);
}

static bool check_credentials(const struct cli *cli)
{
    struct aws_credentials creds;
    struct s3_error err;
    s3_error_clear(&err);
    if (conf_credentials_provider(cli->cfg->credentials, &creds, &err) != 0) {
        check_line(false, "credentials", "%s", err.message);
        return false;
    }
    char masked[160];
    mask_key(creds.access_key_id, masked, sizeof(masked));
    const char *origin = conf_origin(cli->cfg, "s3", "access_key_id");
    check_line(true, "credentials", "access key %s%s (%s)", masked,
               creds.session_token[0] ? " with a session token" : "", origin ? origin : "?");
    explicit_bzero(&creds, sizeof(creds));
    return true;
}

/* A HEAD answer has no body, so its 403 cannot tell a wrong secret from a missing permission;
 * a one-key listing of the bucket gets the server's error code, and its advice. */
static int head_bucket_explained(struct s3client *c, const char *bucket, struct s3_error *err)
{
    if (s3_head_bucket(c, bucket, err) == 0)
        return 0;
    if (err->http_status != 403)
        return -1;
    struct s3_list_options o = {.max_keys = 1};
    struct s3_list_page page;
    struct s3_error detail;
    s3_error_clear(&detail);
    if (s3_list_page(c, bucket, &o, &page, &detail) == 0)
        s3_list_page_clear(&page);
    else if (detail.http_status == 403 && strcmp(detail.code, "AccessDenied") != 0)
        *err = detail;
    return -1;
}

static bool check_bucket(const struct cli *cli, const char *what, const char *bucket,
                         const char *prefix, const char *key_name)
{
    if (!*bucket) {
        check_line(false, what, "not configured: set [s3] %s in the config file", key_name);
        return false;
    }
    struct s3_error err;
    s3_error_clear(&err);
    if (head_bucket_explained(cli->client, bucket, &err) != 0) {
        check_line(false, what, "s3://%s/%s: %s", bucket, prefix, err.message);
        return false;
    }
    check_line(true, what, "s3://%s/%s", bucket, prefix);
    return true;
}

static int cmd_check(struct cli *cli, struct cmd_args *a)
{
    (void)a;
    const struct config *cfg = cli->cfg;
    check_line(true, "config", "endpoint %s, region %s%s", cfg->s3.endpoint, cfg->s3.region,
               cfg->s3.path_style ? ", path-style" : "");
    bool ok = check_credentials(cli);
    ok = check_bucket(cli, "source", cfg->s3.source_bucket, cfg->s3.source_prefix,
                      "source_bucket") &&
         ok;
    if (!*cfg->s3.destination_bucket && cfg->resize.mode == CONF_RESIZE_OFF)
        printf("%-4s  %-12s %s\n", "SKIP", "destination", "not configured ([resize] mode = off)");
    else
        ok = check_bucket(cli, "destination", cfg->s3.destination_bucket,
                          cfg->s3.destination_prefix, "destination_bucket") &&
             ok;
    return ok ? EXIT_OK : EXIT_FAILED;
}

/* ------------------------------------------------------------------------------------------ */
/* config                                                                                       */

static int cmd_config(struct cli *cli, struct cmd_args *a)
{
    (void)a;
    conf_dump(cli->cfg, stdout);
    return EXIT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* ls                                                                                           */

static int print_page(void *ctx, const struct s3_list_page *page)
{
    const struct target *t = ctx;
    for (size_t i = 0; i < page->prefix_count; i++)
        printf("%34s  %s\n", "PRE", relative_key(t, page->common_prefixes[i]));
    for (size_t i = 0; i < page->object_count; i++) {
        const struct s3_list_object *o = &page->objects[i];
        char date[21];
        iso_date(o->last_modified, date);
        printf("%12" PRIu64 "  %s  %s\n", o->size, date, relative_key(t, o->key));
    }
    return 0;
}

static int cmd_ls(struct cli *cli, struct cmd_args *a)
{
    struct target t = {0};
    int rc = pick_target(cli, a, &t);
    if (rc != EXIT_OK)
        return rc;
    char *prefix = full_key(&t, a->npos ? a->pos[0] : "");
    if (!prefix)
        return local_error("listing", t.bucket);
    struct s3_list_options o = {.prefix = *prefix ? prefix : NULL,
                                .delimiter = a->recursive ? NULL : "/"};
    struct s3_error err;
    s3_error_clear(&err);
    rc = s3_list_all(cli->client, t.bucket, &o, print_page, &t, &err) == 0 ? EXIT_OK : fail(&err);
    free(prefix);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* put                                                                                          */

static int upload_fd(struct cli *cli, const struct target *t, const char *key, int fd,
                     uint64_t size, const struct cmd_args *a)
{
    const struct config *cfg = cli->cfg;
    struct s3_put_options po = {
        .content_type = a->type ? a->type : file_content_type(fd),
        .metadata = a->meta,
        .metadata_count = a->meta_count,
        .sse = conf_sse_name(cfg->s3.sse),
        .sse_kms_key_id = *cfg->s3.sse_kms_key_id ? cfg->s3.sse_kms_key_id : NULL,
    };
    struct s3_body body = s3_body_fd(fd, 0, size);
    struct s3_put_result res;
    struct s3_error err;
    s3_error_clear(&err);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    if (s3_upload(cli->client, t->bucket, key, &body, &po, &res, &err) != 0)
        return fail(&err);
    printf("s3://%s/%s  %" PRIu64 " bytes  %s  ETag %s  %.2f s\n", t->bucket, key, size,
           po.content_type, res.etag, seconds_since(&start));
    return EXIT_OK;
}

static int not_regular(const char *path)
{
    error_line("%s is not a regular file: put uploads regular files only", path);
    return EXIT_FAILED;
}

static int cmd_put(struct cli *cli, struct cmd_args *a)
{
    struct target t = {0};
    int rc = pick_target(cli, a, &t);
    if (rc != EXIT_OK || (rc = check_key(a->pos[1])) != EXIT_OK)
        return rc;
    const char *path = a->pos[0];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return local_error("cannot open", path);
    struct stat st;
    char *key = NULL;
    if (fstat(fd, &st) != 0)
        rc = local_error("cannot stat", path);
    else if (!S_ISREG(st.st_mode))
        rc = not_regular(path);
    else if (!(key = full_key(&t, a->pos[1])))
        rc = local_error("uploading", path);
    else
        rc = upload_fd(cli, &t, key, fd, (uint64_t)st.st_size, a);
    free(key);
    close(fd);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* get                                                                                          */

/* A sink for pipes and terminals: they cannot seek, so bytes that a retry delivers again are
 * skipped (the client resends from offset 0). */
struct stream_sink {
    int fd;
    uint64_t written;
};

static int write_all(int fd, const char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int write_stream(void *ctx, uint64_t offset, const void *data, size_t len)
{
    struct stream_sink *s = ctx;
    if (offset + len <= s->written)
        return 0;
    if (offset > s->written)
        return -1; /* a gap: the client never skips bytes */
    size_t skip = (size_t)(s->written - offset);
    if (write_all(s->fd, (const char *)data + skip, len - skip) != 0)
        return -1;
    s->written += len - skip;
    return 0;
}

/* Each of the three returns an exit code, with the error reported. */
static int get_to_stream(struct cli *cli, const struct target *t, const char *key, int fd,
                         struct s3_object_info *info)
{
    struct stream_sink s = {fd, 0};
    struct s3_error err;
    s3_error_clear(&err);
    if (s3_get_object(cli->client, t->bucket, key, NULL, write_stream, &s, info, &err) != 0)
        return fail(&err);
    return EXIT_OK;
}

/* A regular file is written under a temporary name next to it and renamed when complete, so a
 * failed download leaves no partial file. */
static int get_to_file(struct cli *cli, const struct target *t, const char *key, const char *path,
                       struct s3_object_info *info)
{
    char *tmp = NULL;
    if (asprintf(&tmp, "%s.s3imgfs-XXXXXX", path) < 0)
        return local_error("cannot write", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return local_error("cannot create a file next to", path);
    }
    mode_t mask = umask(0);
    umask(mask);
    struct s3_error err;
    s3_error_clear(&err);
    int rc = EXIT_OK;
    if (fchmod(fd, 0666 & ~mask) != 0)
        rc = local_error("cannot set the mode of", tmp);
    else if (s3_get_object_fd(cli->client, t->bucket, key, NULL, fd, 0, info, &err) != 0)
        rc = fail(&err);
    if (close(fd) != 0 && rc == EXIT_OK)
        rc = local_error("cannot write", tmp);
    if (rc == EXIT_OK && rename(tmp, path) != 0)
        rc = local_error("cannot rename the download to", path);
    if (rc != EXIT_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* "-" is standard output; devices and pipes are written as streams. */
static int download(struct cli *cli, const struct target *t, const char *key, const char *path,
                    struct s3_object_info *info)
{
    if (strcmp(path, "-") == 0)
        return get_to_stream(cli, t, key, STDOUT_FILENO, info);
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode))
        return get_to_file(cli, t, key, path, info);
    if (S_ISDIR(st.st_mode)) {
        error_line("%s is a directory: name the file to write", path);
        return EXIT_FAILED;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return local_error("cannot open", path);
    int rc = get_to_stream(cli, t, key, fd, info);
    close(fd);
    return rc;
}

static int cmd_get(struct cli *cli, struct cmd_args *a)
{
    struct target t = {0};
    char *key = NULL;
    int rc = target_key(cli, a, a->pos[0], "downloading", &t, &key);
    if (rc != EXIT_OK)
        return rc;
    const char *path = a->pos[1];
    struct s3_object_info info = {0};
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    rc = download(cli, &t, key, path, &info);
    if (rc == EXIT_OK && strcmp(path, "-") != 0)
        printf("s3://%s/%s -> %s  %" PRIu64 " bytes  %.2f s\n", t.bucket, key, path, info.size,
               seconds_since(&start));
    s3_object_info_clear(&info);
    free(key);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* head                                                                                         */

static void print_info(const struct s3_object_info *info)
{
    char date[21];
    iso_date(info->last_modified, date);
    printf("size: %" PRIu64 "\n", info->size);
    printf("etag: %s\n", info->etag);
    printf("content-type: %s\n", info->content_type);
    printf("last-modified: %s\n", date);
    if (info->sse[0])
        printf("server-side-encryption: %s\n", info->sse);
    if (info->version_id[0])
        printf("version-id: %s\n", info->version_id);
    for (size_t i = 0; i < info->metadata_count; i++)
        printf("meta-%s: %s\n", info->metadata[i].name, info->metadata[i].value);
}

static int cmd_head(struct cli *cli, struct cmd_args *a)
{
    struct target t = {0};
    char *key = NULL;
    int rc = target_key(cli, a, a->pos[0], "inspecting", &t, &key);
    if (rc != EXIT_OK)
        return rc;
    struct s3_object_info info = {0};
    struct s3_error err;
    s3_error_clear(&err);
    if (s3_head_object(cli->client, t.bucket, key, &info, &err) != 0) {
        rc = fail(&err);
    } else {
        printf("key: s3://%s/%s\n", t.bucket, key);
        print_info(&info);
    }
    s3_object_info_clear(&info);
    free(key);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* rm                                                                                           */

static void free_keys(char **keys, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(keys[i]);
    free(keys);
}

static int delete_keys(struct cli *cli, const struct target *t, char **keys, size_t count)
{
    struct s3_error err;
    s3_error_clear(&err);
    size_t failed = 0;
    int rc = count == 1 ? s3_delete_object(cli->client, t->bucket, keys[0], &err)
                        : s3_delete_objects(cli->client, t->bucket, (const char *const *)keys,
                                            count, &failed, &err);
    if (rc != 0 && count > 1)
        error_line("%zu of %zu keys were not deleted", failed, count);
    if (rc != 0)
        return fail(&err);
    for (size_t i = 0; i < count; i++)
        printf("deleted s3://%s/%s\n", t->bucket, keys[i]);
    return EXIT_OK;
}

static int cmd_rm(struct cli *cli, struct cmd_args *a)
{
    struct target t = {0};
    int rc = pick_target(cli, a, &t);
    for (int i = 0; rc == EXIT_OK && i < a->npos; i++)
        rc = check_key(a->pos[i]);
    if (rc != EXIT_OK)
        return rc;
    size_t count = (size_t)a->npos;
    char **keys = calloc(count, sizeof(*keys));
    for (size_t i = 0; keys && i < count; i++)
        if (!(keys[i] = full_key(&t, a->pos[i])))
            rc = EXIT_FAILED;
    if (!keys || rc != EXIT_OK) {
        error_line("out of memory");
        rc = EXIT_FAILED;
    } else {
        rc = delete_keys(cli, &t, keys, count);
    }
    free_keys(keys, keys ? count : 0);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* mb                                                                                           */

static int make_bucket(struct cli *cli, const char *bucket)
{
    struct s3_error err;
    s3_error_clear(&err);
    if (s3_create_bucket(cli->client, bucket, &err) != 0)
        return fail(&err);
    printf("bucket s3://%s is ready\n", bucket);
    return EXIT_OK;
}

static int cmd_mb(struct cli *cli, struct cmd_args *a)
{
    const struct config *cfg = cli->cfg;
    if (a->npos && (a->bucket || a->dest))
        return usage_error("mb takes a BUCKET or -b/--dest, not both");
    if (a->npos)
        return make_bucket(cli, a->pos[0]);
    if (a->bucket || a->dest) {
        struct target t = {0};
        int rc = pick_target(cli, a, &t);
        return rc != EXIT_OK ? rc : make_bucket(cli, t.bucket);
    }
    const char *src = cfg->s3.source_bucket, *dst = cfg->s3.destination_bucket;
    if (!*src && !*dst) {
        error_line("no bucket is configured: set [s3] source_bucket and destination_bucket in "
                   "the config file, or name the bucket: mb BUCKET");
        return EXIT_USAGE;
    }
    int rc = *src ? make_bucket(cli, src) : EXIT_OK;
    if (rc == EXIT_OK && *dst && strcmp(src, dst) != 0)
        rc = make_bucket(cli, dst);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* presign                                                                                      */

static int parse_seconds(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < 1 || v > PRESIGN_MAX)
        return usage_error("SECONDS must be an integer from 1 to %u (7 days), not '%s'",
                           PRESIGN_MAX, s);
    *out = (unsigned)v;
    return EXIT_OK;
}

static int cmd_presign(struct cli *cli, struct cmd_args *a)
{
    struct target t = {0};
    char *key = NULL;
    unsigned seconds = PRESIGN_DEFAULT;
    int rc = target_key(cli, a, a->pos[0], "presigning", &t, &key);
    if (rc == EXIT_OK && a->npos > 1)
        rc = parse_seconds(a->pos[1], &seconds);
    if (rc != EXIT_OK) {
        free(key);
        return rc;
    }
    struct s3_error err;
    s3_error_clear(&err);
    char *url = s3_presign_get(cli->client, t.bucket, key, seconds, &err);
    if (url)
        printf("%s\n", url);
    else
        rc = fail(&err);
    free(url);
    free(key);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The command table and usage                                                                  */

static const struct command commands[] = {
    {"check", "", "", 0, 0, "check the config, credentials and both buckets", cmd_check},
    {"config", "", "", 0, 0, "print the effective config, secrets masked", cmd_config},
    {"ls", "[-r] [PREFIX]", "br", 0, 1, "list one level under PREFIX (everything with -r)", cmd_ls},
    {"put", "[-t TYPE] [-m NAME=VALUE]... FILE KEY", "btm", 2, 2, "upload FILE as KEY", cmd_put},
    {"get", "KEY FILE|-", "b", 2, 2, "download KEY into FILE (- = standard output)", cmd_get},
    {"head", "KEY", "b", 1, 1, "print size, ETag, type, date, metadata", cmd_head},
    {"rm", "KEY...", "b", 1, -1, "delete keys", cmd_rm},
    {"mb", "[BUCKET]", "b", 0, 1, "create the configured buckets (or BUCKET)", cmd_mb},
    {"presign", "KEY [SECONDS]", "b", 1, 2, "print a presigned GET URL (default 3600 s)",
     cmd_presign},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: " PROG " [-c CONFIG] [-o section.key=value]... [-v] COMMAND [ARGS]\n"
            "\n"
            "An S3 tool with the settings of s3imgfs: keys are relative to [s3] source_prefix\n"
            "(destination_prefix with --dest; none with -b).\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < COMMAND_COUNT; i++) {
        char head[64];
        snprintf(head, sizeof(head), "%s %s", commands[i].name, commands[i].args);
        if (strlen(head) > 24)
            fprintf(out, "  %s\n  %-24s  %s\n", head, "", commands[i].help);
        else
            fprintf(out, "  %-24s  %s\n", head, commands[i].help);
    }
    fprintf(out, "\n"
                 "Options:\n"
                 "  -c, --config CONFIG       the INI file (default ~/.config/s3imgfs/config.ini)\n"
                 "  -o section.key=value      override a config value (repeatable)\n"
                 "  -v, --verbose             print the HTTP exchanges on stderr (no secrets)\n"
                 "  -h, --help                this text\n"
                 "  -V, --version             the version\n"
                 "Command options (all but check and config):\n"
                 "  -b, --bucket BUCKET       work in BUCKET, keys without prefix\n"
                 "  -d, --dest                work in the destination bucket and prefix\n"
                 "  -r, --recursive           ls: every key under PREFIX, not one level\n"
                 "  -t, --type TYPE           put: Content-Type (default: from the file's bytes)\n"
                 "  -m, --meta NAME=VALUE     put: user metadata (repeatable)\n"
                 "\n"
                 "Exit status: 0 success, 1 the operation failed, 2 usage or configuration error.\n"
                 "See " PROG "(1).\n");
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Argument parsing                                                                             */

static int add_meta(struct cmd_args *a, char *arg)
{
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return usage_error("-m wants NAME=VALUE, not '%s'", arg);
    if (a->meta_count == MAX_METADATA)
        return usage_error("at most %d -m options", MAX_METADATA);
    *eq = '\0';
    a->meta[a->meta_count++] = (struct aws_header){arg, eq + 1};
    return EXIT_OK;
}

/* The command options given before the command ("-b BUCKET ls") get a hint. */
static int bad_global_option(int opt, char **argv)
{
    const char *text = argv[optind - 1];
    bool command_opt = (optopt && strchr("bdrtm", optopt)) || strcmp(text, "--dest") == 0 ||
                       strncmp(text, "--bucket", 8) == 0;
    if (opt == '?' && command_opt && optopt)
        return usage_error("-%c is an option of the command: put it after the command name",
                           optopt);
    if (opt == '?' && command_opt)
        return usage_error("%s is an option of the command: put it after the command name", text);
    return cli_bad_option(PROG, opt, argv);
}

static int command_option(const struct command *cmd, struct cmd_args *a, int opt, char *arg)
{
    char letter = opt == 'd' ? 'b' : (char)opt;
    if (!strchr(cmd->options, letter))
        return usage_error("%s does not take the option -%c", cmd->name, opt);
    switch (opt) {
    case 'b':
        a->bucket = arg;
        break;
    case 'd':
        a->dest = true;
        break;
    case 'r':
        a->recursive = true;
        break;
    case 't':
        a->type = arg;
        break;
    case 'm':
        return add_meta(a, arg);
    }
    return EXIT_OK;
}

static int parse_command(const struct command *cmd, int argc, char **argv, struct cmd_args *a)
{
    static const struct option longopts[] = {
        {"bucket", required_argument, NULL, 'b'}, {"dest", no_argument, NULL, 'd'},
        {"recursive", no_argument, NULL, 'r'},    {"type", required_argument, NULL, 't'},
        {"meta", required_argument, NULL, 'm'},   {NULL, 0, NULL, 0}};
    int opt, rc;
    optind = 0; /* GNU: start again, from argv[1] */
    while ((opt = getopt_long(argc, argv, ":b:drt:m:", longopts, NULL)) != -1) {
        if (opt == '?' || opt == ':')
            return cli_bad_option(PROG, opt, argv);
        if ((rc = command_option(cmd, a, opt, optarg)) != EXIT_OK)
            return rc;
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    if (a->npos < cmd->min_args || (cmd->max_args >= 0 && a->npos > cmd->max_args))
        return usage_error("usage: " PROG " %s %s", cmd->name, cmd->args);
    return EXIT_OK;
}

/* Returns -1 to go on, else the exit code. */
static int parse_global(int argc, char **argv, struct cli *cli)
{
    static const struct option longopts[] = {{"config", required_argument, NULL, 'c'},
                                             {"verbose", no_argument, NULL, 'v'},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, 'V'},
                                             {NULL, 0, NULL, 0}};
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "+:c:o:vhV", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            cli->config_path = optarg;
            break;
        case 'v':
            cli->verbose = true;
            break;
        case 'h':
            usage(stdout);
            return EXIT_OK;
        case 'V':
            printf(PROG " %s\n", S3IMGFS_VERSION);
            return EXIT_OK;
        case 'o':
            if (cli->override_count == MAX_OVERRIDES)
                return usage_error("at most %d -o options", MAX_OVERRIDES);
            cli->overrides[cli->override_count++] = optarg;
            break;
        default:
            return bad_global_option(opt, argv);
        }
    }
    if (optind >= argc)
        return usage_error("no command given");
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Setup                                                                                        */

static int load_config(struct cli *cli)
{
    struct conf_options o = {.path = cli->config_path,
                             .overrides = cli->overrides,
                             .override_count = cli->override_count};
    struct s3_error err;
    s3_error_clear(&err);
    cli->cfg = conf_load(&o, &err);
    return cli->cfg ? EXIT_OK : config_error(&err);
}

static int make_client(struct cli *cli)
{
    const struct config *cfg = cli->cfg;
    struct s3client_options o = {
        .endpoint = cfg->s3.endpoint,
        .region = cfg->s3.region,
        .path_style = cfg->s3.path_style,
        .content_md5 = cfg->s3.content_md5,
        .ca_file = *cfg->s3.ca_file ? cfg->s3.ca_file : NULL,
        .credentials = conf_credentials_provider,
        .credentials_ctx = cfg->credentials,
        .user_agent = "s3imgfs-s3/" S3IMGFS_VERSION,
        .verbose = cli->verbose,
    };
    struct s3_error err;
    s3_error_clear(&err);
    cli->client = s3client_new(&o, &err);
    return cli->client ? EXIT_OK : config_error(&err);
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    int rc = parse_global(argc, argv, &cli);
    if (rc >= 0)
        return rc;
    const struct command *cmd = find_command(argv[optind]);
    if (!cmd)
        return usage_error("unknown command '%s'", argv[optind]);
    struct cmd_args a = {0};
    rc = parse_command(cmd, argc - optind, argv + optind, &a);
    if (rc == EXIT_OK)
        rc = load_config(&cli);
    if (rc == EXIT_OK && cmd->run != cmd_config)
        rc = make_client(&cli);
    if (rc == EXIT_OK)
        rc = cmd->run(&cli, &a);
    if (fflush(stdout) != 0 && rc == EXIT_OK) {
        error_line("writing the output failed: %s", strerror(errno));
        rc = EXIT_FAILED;
    }
    s3client_free(cli.client);
    conf_free(cli.cfg);
    return rc;
}
