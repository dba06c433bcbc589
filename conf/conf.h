/* conf: the settings of s3imgfs, read once into one immutable `struct config`.
 *
 * Where settings come from (docs/config.md is the user's reference):
 *   - an INI file: an explicit path, else $XDG_CONFIG_HOME/s3imgfs/config.ini, else
 *     ~/.config/s3imgfs/config.ini (a missing default file means "all defaults");
 *   - overrides "section.key=value" (mount options -o), applied after the file;
 *   - the AWS environment variables and shared files (~/.aws/credentials, ~/.aws/config) for
 *     the region, endpoint, profile, CA bundle and credentials, in the order the AWS SDKs use,
 *     with the INI file and overrides winning over them (like an SDK's explicit client config).
 * No other module reads files or the environment for settings.
 *
 * Conventions:
 *   - conf_load returns a heap `struct config` that owns every string and array in it; it is
 *     read-only after load (share it between threads freely) and released with conf_free.
 *   - Strings are never NULL: "" means "not set".
 *   - Errors are returned as values in a `struct s3_error` (code "InvalidConfig",
 *     "NoCredentials", "LocalIOError" or "OutOfMemory"); the message names the file and line
 *     (or environment variable, or option), the key, the value and what is expected, e.g.
 *     "config.ini:12: [resize] quality = 120: expected an integer from 1 to 100".
 *     Secrets are never part of a message.
 */
#ifndef S3IMGFS_CONF_H
#define S3IMGFS_CONF_H

#include "s3client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* The configuration                                                                            */

enum conf_sse { CONF_SSE_NONE, CONF_SSE_AES256, CONF_SSE_KMS };
enum conf_resize_mode { CONF_RESIZE_LOCAL, CONF_RESIZE_LAMBDA, CONF_RESIZE_OFF };
enum conf_format {
    CONF_FORMAT_AUTO, /* keep the source's format where the encoder can write it */
    CONF_FORMAT_JPEG,
    CONF_FORMAT_WEBP,
    CONF_FORMAT_AVIF,
    CONF_FORMAT_PNG
};
enum conf_fit {
    CONF_FIT_INSIDE, /* "fit": scale to fit inside the box, keep the aspect ratio */
    CONF_FIT_COVER   /* "cover": scale to cover the box, then crop to it */
};
enum conf_crop { CONF_CROP_CENTRE, CONF_CROP_ATTENTION, CONF_CROP_ENTROPY };
enum conf_log_level { CONF_LOG_ERROR, CONF_LOG_WARN, CONF_LOG_INFO, CONF_LOG_DEBUG };
enum conf_log_format { CONF_LOG_TEXT, CONF_LOG_JSON };

#define CONF_MAX_SIZES     32
#define CONF_MAX_DIMENSION 16384

/* One output size of [resize] sizes: "name:WxH[:fit|cover[:attention|entropy|centre]]
 * [:FORMAT][:qQ]". */
struct conf_size {
    char name[33];       /* [a-z0-9_-]{1,32}, unique */
    unsigned width;      /* 1..16384, or 0 = unbounded ("x480") */
    unsigned height;     /* 1..16384, or 0 = unbounded ("640x") */
    enum conf_fit fit;   /* cover always has both width and height */
    enum conf_crop crop; /* where cover crops; CONF_CROP_CENTRE unless given */
    enum conf_format format;
    unsigned quality; /* 1..100 */
    bool format_set;  /* the entry named a format (else `format` is [resize] format) */
    bool quality_set; /* the entry named a quality (else `quality` is [resize] quality) */
};

struct conf_rgb {
    uint8_t r, g, b;
};

struct conf_credentials; /* the credentials provider (see conf_credentials_provider) */
struct conf_private;

struct config {
    struct {
        const char *endpoint; /* effective "http(s)://host[:port]"; the AWS regional endpoint
                                 "https://s3.<region>.amazonaws.com" when none is configured */
        const char *region;
        bool path_style;
        const char *source_bucket;      /* "" = not configured */
        const char *source_prefix;      /* "" or "a/b/": no leading '/', ends with '/' */
        const char *destination_bucket; /* "" = not configured */
        const char *destination_prefix; /* like source_prefix */
        const char *profile;            /* AWS profile used for the shared files */
        enum conf_sse sse;
        const char *sse_kms_key_id; /* "" = the account's default key (only with aws:kms) */
        const char *ca_file;        /* absolute path of a readable PEM file; "" = system store */
        bool content_md5;           /* uploads also carry Content-MD5 */
    } s3;
    struct {
        enum conf_resize_mode mode;
        const struct conf_size *sizes; /* 1..CONF_MAX_SIZES, format and quality resolved */
        size_t size_count;
        enum conf_format format;
        unsigned quality;           /* 1..100 */
        const char *key_template;   /* has {size} and one of {key}, {name}, {base} */
        uint64_t max_pixels;        /* largest input image accepted, in pixels */
        unsigned max_file_mb;       /* largest input file accepted, in MiB */
        struct conf_rgb background; /* alpha is flattened onto this for JPEG output */
        /* mode = lambda: the function makes the renditions */
        unsigned lambda_timeout_seconds; /* 10..86400, default 300: then the image is failed */
        const char *lambda_function;     /* name or ARN the gateway invokes itself; "" = none
                                            (the store triggers the function) */
        const char *lambda_endpoint;     /* "http(s)://host[:port]"; "" = the regional one */
    } resize;
    /* The file system gateway. The glob arrays are never NULL and end with a NULL pointer. */
    struct {
        const char *cache_dir;         /* absolute path of the spool; default
                                          $XDG_CACHE_HOME/s3imgfs, else <home>/.cache/s3imgfs */
        unsigned upload_workers;       /* 1..64, default 8 */
        unsigned resize_workers;       /* 1..64; the INI value 0 (default) means the number of
                                          online CPUs, resolved at load, so never 0 after load */
        const char *const *temp_globs; /* file-name globs of editor/download temporaries */
        size_t temp_glob_count;
        unsigned temp_hold_seconds;    /* 0..86400, default 30 */
        const char *const *junk_globs; /* desktop junk never uploaded */
        size_t junk_glob_count;
        const char *resized_dir; /* default "resized": one path component, no '/', not "." or
                                    "..", not starting with ".s3imgfs" */
        bool delete_renditions;  /* default true */
        unsigned attr_ttl;       /* seconds, 0..86400, default 10 */
        unsigned list_ttl;       /* seconds, 0..86400, default 10 */
        unsigned negative_ttl;   /* seconds, 0..86400, default 5 */
        bool sync_upload;        /* default false */
        unsigned cache_max_mb;   /* 64..16777216, default 10240 */
        unsigned multipart_threshold_mb; /* 5..5120, default 16 */
        unsigned part_size_mb;           /* 5..5120, default 8; at most multipart_threshold_mb */
        unsigned part_parallel;          /* 1..32, default 8 */
        unsigned upload_kbps;   /* per upload request, KiB/s, 0..10485760, default 0 = no limit */
        unsigned read_ahead_kb; /* 0..262144, default 8192 */
    } gateway;
    /* Notices of each processed file (notify/). Every sink is off while its key is "". The
     * mail_to array is never NULL and ends with a NULL pointer. */
    struct {
        const char *sns_topic_arn;  /* "arn:PARTITION:sns:REGION:ACCOUNT:NAME" */
        const char *sns_endpoint;   /* "http(s)://host[:port]"; "" = the regional AWS endpoint
                                       of the topic's region */
        const char *webhook_url;    /* "http(s)://host[:port]/path" */
        const char *webhook_secret; /* HMAC-SHA256 key; "" = unsigned; only from a private
                                       file or the environment */
        const char *smtp_url;       /* "smtp://host[:port]" (STARTTLS when offered; required
                                       when smtp_user is set) or "smtps://host[:port]" */
        const char *smtp_user;
        const char *smtp_password_file; /* absolute path; "" = no password */
        const char *mail_from;          /* required with smtp_url */
        const char *const *mail_to;     /* 1..64 addresses with smtp_url */
        size_t mail_to_count;
        unsigned digest_seconds; /* 0 = one notice per file; else one per window */
        unsigned digest_keys;    /* keys listed in a digest, 1..1000, default 20 */
        bool on_success;         /* "on" names success (default) */
        bool on_failure;         /* "on" names failure (default) */
    } notify;
    struct {
        enum conf_log_level level;
        enum conf_log_format format; /* text (default) or json (one object per line) */
        const char *file;            /* absolute path; "" = stderr or syslog */
        unsigned metrics_seconds;    /* CloudWatch EMF metric lines every N s; 0 = never */
    } log;

    /* The credentials provider: pass conf_credentials_provider as
     * s3client_options.credentials and this as credentials_ctx. Owned by the config. */
    struct conf_credentials *credentials;

    struct conf_private *priv; /* where each value came from; internal */
};

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                      */

/* Looks up an environment variable; returns NULL when it is not set. */
typedef const char *(*conf_getenv_fn)(void *ctx, const char *name);

struct conf_options {
    /* The INI file. NULL: the default location, where a missing file is fine. */
    const char *path;
    /* "section.key=value" settings applied after the file, with the same validation.
     * Credentials are refused here (command lines are visible to every user). */
    const char *const *overrides;
    size_t override_count;
    /* How errors name an override: "<override_origin> section.key". NULL = "option -o". */
    const char *override_origin;
    /* The environment. NULL = getenv(3). Empty values count as not set. */
    conf_getenv_fn getenv;
    void *getenv_ctx;
    /* Home directory for ~/.config and ~/.aws. NULL = $HOME, else the user's passwd entry. */
    const char *home;
    /* For programs that never sign a request (s3imgfs-resize): skip the credentials chain, so
     * a machine without credentials can still load the configuration. cfg->credentials is then
     * NULL. Credentials written in the file are still checked (file mode, lengths). */
    bool no_credentials;
};

/* Reads, validates and resolves everything. Returns NULL (and fills err) on any bad value,
 * unreadable file or when no credentials are found; never exits. `opts` may be NULL. */
struct config *conf_load(const struct conf_options *opts, struct s3_error *err);
void conf_free(struct config *cfg);

/* An aws_credentials_fn; ctx = cfg->credentials. Thread-safe. When the credentials came from a
 * file (the INI file or an AWS shared file) it checks the file on every call and re-reads it
 * when it changed (mtime, size, inode), so rotated keys are used without a restart; while a
 * changed file cannot be read or holds no valid credentials the previous ones stay in use. */
int conf_credentials_provider(void *ctx, struct aws_credentials *out, struct s3_error *err);

/* Prints the effective configuration as INI, each value followed by where it came from
 * ("; /path/config.ini:12", "; env AWS_REGION", "; /home/u/.aws/config:3 [profile x]",
 * "; option -o s3.region", "; default"). Secrets are masked. */
void conf_dump(const struct config *cfg, FILE *out);

/* Where the value of section.key came from, as in conf_dump; NULL for an unknown key. */
const char *conf_origin(const struct config *cfg, const char *section, const char *key);

/* ------------------------------------------------------------------------------------------ */
/* Introspection and names                                                                      */

#define CONF_KEY_SECRET 1u /* never printed; only in files not readable by group or others */

/* One row of the key table that drives parsing, defaults, conf_dump and the documentation. */
struct conf_key_info {
    const char *section;
    const char *key;
    const char *default_value; /* as it would be written in the file */
    const char *doc;           /* one line */
    const char *env[3];        /* environment variables consulted, in order (NULL-padded) */
    const char *profile_key;   /* key read from the AWS profile in ~/.aws/config, or NULL */
    unsigned flags;
};

/* The i-th key of the table, or NULL past the end. */
const struct conf_key_info *conf_key_at(size_t i);
/* The sections, in order ("s3", "resize", "notify", "gateway", "log"), NULL past the end. */
const char *conf_section_at(size_t i);

/* The destination key of one rendition: destination_prefix + key_template filled in for the
 * source object `source_key` (a full key, beginning with source_prefix) and `size`; `out_ext`
 * is the output file extension without the dot ("jpg", "webp", ...). Placeholders: {size} the
 * size name; {key} the source key without source_prefix ("trips/rome/a.heic"); {dir} its folder
 * with a trailing '/' or "" ("trips/rome/"); {name} its last component ("a.heic"); {base} {name}
 * without its last extension ("a"; ".profile" stays ".profile"); {ext} = out_ext. Returns a
 * malloc'd string (caller frees), or NULL when source_key is not under source_prefix or memory
 * runs out. */
char *conf_rendition_key(const struct config *cfg, const struct conf_size *size,
                         const char *source_key, const char *out_ext);
/* True when the base name of `path` (the part after the last '/') matches one of the globs. */
bool conf_glob_match(const char *const *globs, size_t count, const char *path);

const char *conf_format_name(enum conf_format format); /* "auto", "jpeg", ... */
const char *conf_fit_name(enum conf_fit fit);          /* "fit", "cover" */
const char *conf_crop_name(enum conf_crop crop);       /* "centre", "attention", "entropy" */
const char *conf_sse_name(enum conf_sse sse);          /* "none", "AES256", "aws:kms" */
const char *conf_log_level_name(enum conf_log_level level);
const char *conf_log_format_name(enum conf_log_format format); /* "text", "json" */

#ifdef __cplusplus
}
#endif

#endif
