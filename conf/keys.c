/* The key table: one row per setting drives parsing, defaults, the environment and AWS profile
 * fallbacks, conf_dump and (through conf_key_at) the documentation check. Adding a key is
 * adding a field to struct config and a row here (plus a parser if no existing one fits). */
#include "conf_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIELD    ((char *)L->cfg + r->offset)
#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -1)

/* ------------------------------------------------------------------------------------------ */
/* Value types                                                                                  */

static int set_string(struct conf_loader *L, const struct conf_row *r, const char *v, size_t n)
{
    char *copy = conf_strndup(v, n);
    if (!copy)
        return -2;
    const char **field = (const char **)FIELD;
    free((char *)*field);
    *field = copy;
    return 0;
}

static void fmt_string(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    fputs(*(const char *const *)((const char *)cfg + r->offset), out);
}

static int parse_bool(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                      size_t whylen)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (conf_str_ieq(v, yes[i]) || conf_str_ieq(v, no[i])) {
            *(bool *)FIELD = conf_str_ieq(v, yes[i]);
            return 0;
        }
    }
    return WHY("expected true or false (or yes/no, on/off, 1/0)");
}

static void fmt_bool(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    fputs(*(const bool *)((const char *)cfg + r->offset) ? "true" : "false", out);
}

_Static_assert(sizeof(enum conf_sse) == sizeof(int) && sizeof(enum conf_format) == sizeof(int) &&
                   sizeof(enum conf_resize_mode) == sizeof(int) &&
                   sizeof(enum conf_log_level) == sizeof(int),
               "enum fields are written as int");
_Static_assert(sizeof(enum conf_log_format) == sizeof(int), "enum fields are written as int");

/* arg: NULL-terminated names; the field is an enum whose values are the indexes. */
static int parse_enum(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                      size_t whylen)
{
    const char *const *names = r->arg;
    for (int i = 0; names[i]; i++) {
        if (conf_str_ieq(v, names[i])) {
            *(int *)FIELD = i;
            return 0;
        }
    }
    size_t off = (size_t)snprintf(why, whylen, "expected one of ");
    for (int i = 0; names[i] && off < whylen; i++)
        off += (size_t)snprintf(why + off, whylen - off, "%s%s", i ? ", " : "", names[i]);
    return -1;
}

static void fmt_enum(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    const char *const *names = r->arg;
    fputs(names[*(const int *)((const char *)cfg + r->offset)], out);
}

/* Digits only; false on anything else or overflow. */
static bool parse_digits(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]) || v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

struct range {
    unsigned min, max;
};

static int parse_uint(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                      size_t whylen)
{
    const struct range *rg = r->arg;
    uint64_t n;
    if (!parse_digits(v, strlen(v), &n) || n < rg->min || n > rg->max)
        return WHY("expected an integer from %u to %u", rg->min, rg->max);
    *(unsigned *)FIELD = (unsigned)n;
    return 0;
}

static void fmt_uint(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    fprintf(out, "%u", *(const unsigned *)((const char *)cfg + r->offset));
}

#define MAX_PIXELS_M 1000000u /* 10^12 pixels */

static int parse_pixels(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                        size_t whylen)
{
    size_t n = strlen(v);
    uint64_t mult = 1, px;
    if (n > 0 && (v[n - 1] == 'M' || v[n - 1] == 'm')) {
        mult = 1000000;
        n--;
    }
    if (!parse_digits(v, n, &px) || px == 0 || px > (uint64_t)MAX_PIXELS_M * 1000000 / mult)
        return WHY("expected a number of pixels from 1 to %uM, such as 100000000 or 100M "
                   "(M = million)",
                   MAX_PIXELS_M);
    *(uint64_t *)FIELD = px * mult;
    return 0;
}

static void fmt_u64(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    fprintf(out, "%" PRIu64, *(const uint64_t *)((const char *)cfg + r->offset));
}

static int parse_rgb(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                     size_t whylen)
{
    if (strlen(v) != 7 || v[0] != '#')
        return WHY("expected a colour as #rrggbb, such as #ffffff");
    unsigned rgb[3];
    for (int i = 0; i < 3; i++) {
        char hex[3] = {v[1 + 2 * i], v[2 + 2 * i], 0};
        if (!isxdigit((unsigned char)hex[0]) || !isxdigit((unsigned char)hex[1]))
            return WHY("expected a colour as #rrggbb, such as #ffffff");
        rgb[i] = (unsigned)strtoul(hex, NULL, 16);
    }
    struct conf_rgb *c = (struct conf_rgb *)FIELD;
    c->r = (uint8_t)rgb[0];
    c->g = (uint8_t)rgb[1];
    c->b = (uint8_t)rgb[2];
    return 0;
}

static void fmt_rgb(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    const struct conf_rgb *c = (const struct conf_rgb *)((const char *)cfg + r->offset);
    fprintf(out, "#%02x%02x%02x", c->r, c->g, c->b);
}

/* ------------------------------------------------------------------------------------------ */
/* [s3]                                                                                         */

static int parse_endpoint(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                          size_t whylen)
{
    static const char expected[] = "expected http://host[:port] or https://host[:port] with no "
                                   "path, such as https://minio.example.com:9000";
    const char *p;
    if (!*v)
        return set_string(L, r, "", 0); /* the AWS regional endpoint */
    if (strncmp(v, "https://", 8) == 0)
        p = v + 8;
    else if (strncmp(v, "http://", 7) == 0)
        p = v + 7;
    else
        return WHY("%s", expected);
    const char *host = p;
    if (*p == '[') { /* IPv6 literal */
        p++;
        while (isxdigit((unsigned char)*p) || *p == ':' || *p == '.')
            p++;
        if (*p != ']' || p == host + 1)
            return WHY("%s", expected);
        p++;
    } else {
        while (isalnum((unsigned char)*p) || *p == '.' || *p == '-')
            p++;
        if (p == host || *host == '.' || *host == '-')
            return WHY("%s", expected);
    }
    if (*p == ':') {
        const char *port = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        uint64_t n;
        if (!parse_digits(port, (size_t)(p - port), &n) || n < 1 || n > 65535)
            return WHY("%s", expected);
    }
    size_t len = (size_t)(p - v);
    if (p[0] == '/' && p[1] == '\0')
        p++; /* a trailing '/' is no path */
    if (*p)
        return WHY("%s", expected);
    return set_string(L, r, v, len);
}

static int parse_region(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                        size_t whylen)
{
    size_t n = strlen(v);
    bool ok = n >= 1 && n <= 63;
    for (size_t i = 0; ok && i < n; i++)
        ok = isalnum((unsigned char)v[i]) || v[i] == '-' || v[i] == '_';
    if (!ok)
        return WHY("expected a region name such as eu-west-1 (1 to 63 letters, digits, '-' "
                   "or '_')");
    return set_string(L, r, v, n);
}

static bool looks_like_ipv4(const char *v)
{
    int dots = 0;
    for (const char *p = v; *p; p++) {
        if (*p == '.')
            dots++;
        else if (!isdigit((unsigned char)*p))
            return false;
    }
    return dots == 3;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static int parse_bucket(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                        size_t whylen)
{
    size_t n = strlen(v);
    if (n == 0)
        return set_string(L, r, v, 0);
    if (n < 3 || n > 63)
        return WHY("expected a bucket name of 3 to 63 characters");
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)v[i]) && !isdigit((unsigned char)v[i]) && v[i] != '.' &&
            v[i] != '-')
            return WHY("a bucket name may only hold lowercase letters, digits, '.' and '-'");
    if (!isalnum((unsigned char)v[0]) || !isalnum((unsigned char)v[n - 1]))
        return WHY("a bucket name must begin and end with a letter or digit");
    if (strstr(v, ".."))
        return WHY("a bucket name must not contain '..'");
    if (looks_like_ipv4(v))
        return WHY("a bucket name must not look like an IP address");
    if (strncmp(v, "xn--", 4) == 0 || strncmp(v, "sthree-", 7) == 0 || ends_with(v, "-s3alias") ||
        ends_with(v, "--ol-s3"))
        return WHY("bucket names beginning with xn-- or sthree- or ending with -s3alias or "
                   "--ol-s3 are reserved by S3");
    return set_string(L, r, v, n);
}

/* "", or "a/b/": leading '/' removed, a trailing '/' added; no empty, "." or ".." segment. */
static int parse_prefix(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                        size_t whylen)
{
    while (*v == '/')
        v++;
    size_t n = strlen(v);
    if (n > 0 && v[n - 1] == '/')
        n--;
    if (n == 0)
        return set_string(L, r, "", 0);
    if (n > 1000)
        return WHY("expected a prefix of at most 1000 bytes");
    const char *seg = v;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == '/') {
            size_t len = (size_t)(v + i - seg);
            if (len == 0 || (len == 1 && seg[0] == '.') ||
                (len == 2 && seg[0] == '.' && seg[1] == '.'))
                return WHY("a prefix must not contain empty, '.' or '..' segments (such as "
                           "a//b or a/../b)");
            seg = v + i + 1;
        }
    }
    char *norm = conf_asprintf("%.*s/", (int)n, v);
    if (!norm)
        return -2;
    int rc = set_string(L, r, norm, n + 1);
    free(norm);
    return rc;
}

static int parse_profile(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                         size_t whylen)
{
    size_t n = strlen(v);
    bool ok = n >= 1 && n <= 128;
    for (size_t i = 0; ok && i < n; i++)
        ok = !isspace((unsigned char)v[i]) && v[i] != '[' && v[i] != ']';
    if (!ok)
        return WHY("expected a profile name (1 to 128 characters, no spaces or brackets)");
    return set_string(L, r, v, n);
}

static int parse_kms_key(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                         size_t whylen)
{
    size_t n = strlen(v);
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)v[i]))
            return WHY("expected a KMS key id, alias or ARN (no spaces)");
    if (n > 2048)
        return WHY("expected a KMS key id, alias or ARN of at most 2048 characters");
    return set_string(L, r, v, n);
}

static int parse_ca_file(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                         size_t whylen)
{
    if (!*v)
        return set_string(L, r, "", 0);
    char *joined = NULL;
    if (v[0] != '/' && L->basedir) {
        joined = conf_asprintf("%s/%s", L->basedir, v);
        if (!joined)
            return -2;
        v = joined;
    }
    char *abs = realpath(v, NULL);
    int rc = 0;
    if (!abs) {
        rc = WHY("cannot use the CA file %s: %s", v, strerror(errno));
        goto out;
    }
    struct stat st;
    int fd = open(abs, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = WHY("cannot read the CA file %s: %s", abs, strerror(errno));
        goto out;
    }
    bool regular = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!regular) {
        rc = WHY("the CA file %s is not a regular file", abs);
        goto out;
    }
    rc = set_string(L, r, abs, strlen(abs));
out:
    free(abs);
    free(joined);
    return rc;
}

/* The credential keys: kept in the loader (not in struct config) and only accepted from a file
 * that group and others cannot read. */
static int parse_secret(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                        size_t whylen)
{
    int i = r->cred - 1;
    static const size_t cap[CONF_CRED_COUNT] = {
        sizeof(((struct aws_credentials *)0)->access_key_id),
        sizeof(((struct aws_credentials *)0)->secret_access_key),
        sizeof(((struct aws_credentials *)0)->session_token),
    };
    if (L->kind == CONF_ORIGIN_OVERRIDE)
        return WHY("credentials are not accepted as options, since other users can read "
                   "command lines; put them in ~/.aws/credentials, the environment or a config "
                   "file only you can read");
    if (L->kind == CONF_ORIGIN_FILE && !L->file_is_private)
        return WHY("%s is readable by group or others, so it must not hold credentials: run "
                   "chmod 600 %s (or move them to ~/.aws/credentials)",
                   L->file_path, L->file_path);
    if (strlen(v) >= cap[i])
        return WHY("expected at most %zu characters", cap[i] - 1);
    char *copy = conf_strdup(v);
    if (!copy)
        return -2;
    conf_free_secret(L->ini_creds[i]);
    L->ini_creds[i] = copy;
    return 0;
}

static void fmt_secret(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    char masked[160];
    bool has_token;
    if (!cfg->credentials) /* loaded with no_credentials */
        return;
    conf_credentials_describe(cfg->credentials, masked, sizeof(masked), &has_token);
    if (r->cred - 1 == CONF_CRED_ACCESS_KEY)
        fputs(masked, out);
    else if (r->cred - 1 == CONF_CRED_SECRET_KEY || has_token)
        fputs("********", out);
}

/* ------------------------------------------------------------------------------------------ */
/* [resize]                                                                                     */

static int parse_sizes(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                       size_t whylen)
{
    (void)r;
    struct conf_size *sizes;
    size_t count;
    if (conf_sizes_parse(v, &sizes, &count, why, whylen) != 0)
        return -1;
    free((void *)L->cfg->resize.sizes);
    L->cfg->resize.sizes = sizes;
    L->cfg->resize.size_count = count;
    return 0;
}

static void fmt_sizes(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    (void)r;
    conf_sizes_format(cfg->resize.sizes, cfg->resize.size_count, out);
}

static const char *const placeholders[] = {"size", "key", "dir", "name", "base", "ext", NULL};

int conf_template_check(const char *tpl, char *why, size_t whylen)
{
    bool has_size = false, has_id = false;
    if (!*tpl)
        return WHY("expected a template such as {size}/{key}");
    if (strlen(tpl) > 512)
        return WHY("expected a template of at most 512 characters");
    if (tpl[0] == '/')
        return WHY("a template must not begin with '/' (keys are relative to "
                   "destination_prefix)");
    for (const char *p = tpl; *p; p++) {
        if (*p == '}')
            return WHY("'}' without an opening '{'");
        if (*p != '{')
            continue;
        const char *end = strchr(p, '}');
        if (!end)
            return WHY("'{' without a closing '}'");
        size_t n = (size_t)(end - p - 1);
        int found = -1;
        for (int i = 0; placeholders[i]; i++)
            if (strlen(placeholders[i]) == n && strncmp(p + 1, placeholders[i], n) == 0)
                found = i;
        if (found < 0)
            return WHY("unknown placeholder {%.*s} (known: {size}, {key}, {dir}, {name}, "
                       "{base}, {ext})",
                       (int)n, p + 1);
        has_size |= found == 0;
        has_id |= found == 1 || found == 3 || found == 4;
        p = end;
    }
    if (!has_size)
        return WHY("a template must contain {size}, or all sizes of an image would be written "
                   "to the same key");
    if (!has_id)
        return WHY("a template must contain {key}, {name} or {base}, or all images would be "
                   "written to the same key");
    return 0;
}

static int parse_template(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                          size_t whylen)
{
    if (conf_template_check(v, why, whylen) != 0)
        return -1;
    return set_string(L, r, v, strlen(v));
}

/* ------------------------------------------------------------------------------------------ */
/* [gateway]                                                                                    */

#define CACHE_DIR_MAX 2048

/* "" = the default, resolved at the end of loading (load.c); "~" and "~/..." = the home; a
 * relative path is relative to the config file's directory (the working directory for options
 * and the environment). Kept absolute and tidied; the folder need not exist yet. */
static int parse_cache_dir(struct conf_loader *L, const struct conf_row *r, const char *v,
                           char *why, size_t whylen)
{
    if (!*v)
        return set_string(L, r, "", 0);
    char *tilde = NULL;
    if (v[0] == '~') {
        if (v[1] != '\0' && v[1] != '/')
            return WHY("only ~/ is expanded (to your home directory); write ~/path or an "
                       "absolute path");
        if (!L->home)
            return WHY("the home directory is not known, so ~ cannot be expanded; write an "
                       "absolute path");
        tilde = conf_asprintf("%s/%s", L->home, v + 1);
        if (!tilde)
            return -2;
        v = tilde;
    }
    char *abs = conf_path_absolute(v, L->basedir);
    free(tilde);
    if (!abs)
        return errno == ENOMEM ? -2 : WHY("cannot make the path absolute: %s", strerror(errno));
    int rc;
    if (strcmp(abs, "/") == 0)
        rc = WHY("the cache folder must not be the root directory");
    else if (strlen(abs) > CACHE_DIR_MAX)
        rc = WHY("expected a path of at most %d bytes", CACHE_DIR_MAX);
    else
        rc = set_string(L, r, abs, strlen(abs));
    free(abs);
    return rc;
}

#define GLOB_MAX_LEN   255
#define GLOB_MAX_COUNT 64

/* Checks one entry of a list; returns 0, or -1 having written why. */
typedef int (*list_check_fn)(const char *a, size_t n, size_t index, char *why, size_t whylen);

/* A comma-separated list ("" = none), each entry trimmed and checked. The field becomes one
 * block: count + 1 pointers (NULL-terminated), then the strings. r->arg is the offset of the
 * count field. */
static int parse_list(struct conf_loader *L, const struct conf_row *r, const char *v,
                      list_check_fn check, size_t max_count, const char *noun, char *why,
                      size_t whylen)
{
    size_t *count_field = (size_t *)((char *)L->cfg + *(const size_t *)r->arg);
    size_t count = 0, bytes = 0;
    bool empty = true;
    for (const char *p = v; *p; p++)
        empty &= isspace((unsigned char)*p) != 0;
    /* Pass 1 checks and measures, pass 2 copies. */
    char **list = NULL;
    char *text = NULL;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (const char *p = v; !empty;) {
            const char *end = strchr(p, ',');
            if (!end)
                end = p + strlen(p);
            const char *a = p, *b = end;
            while (a < b && isspace((unsigned char)*a))
                a++;
            while (b > a && isspace((unsigned char)b[-1]))
                b--;
            size_t n = (size_t)(b - a);
            if (pass == 0) {
                if (n == 0)
                    return WHY("entry %zu is empty (a stray comma? %s go on one line)", k + 1,
                               noun);
                if (check(a, n, k + 1, why, whylen) != 0)
                    return -1;
                if (k + 1 > max_count)
                    return WHY("at most %zu %s are allowed", max_count, noun);
                bytes += n + 1;
            } else {
                memcpy(text, a, n);
                text[n] = '\0';
                list[k] = text;
                text += n + 1;
            }
            k++;
            if (!*end)
                break;
            p = end + 1;
        }
        if (pass == 0) {
            count = k;
            list = malloc((count + 1) * sizeof(char *) + bytes);
            if (!list)
                return -2;
            text = (char *)(list + count + 1);
        }
    }
    list[count] = NULL;
    const char *const **field = (const char *const **)FIELD;
    free((void *)*field);
    *field = (const char *const *)list;
    *count_field = count;
    return 0;
}

static int check_glob(const char *a, size_t n, size_t index, char *why, size_t whylen)
{
    if (n > GLOB_MAX_LEN)
        return WHY("entry %zu is longer than %d characters", index, GLOB_MAX_LEN);
    if (memchr(a, '/', n))
        return WHY("entry %zu, '%.*s', contains '/': globs are matched against a file's name, "
                   "not its path",
                   index, (int)n, a);
    return 0;
}

/* fnmatch(3) globs matched against base names. */
static int parse_globs(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                       size_t whylen)
{
    return parse_list(L, r, v, check_glob, GLOB_MAX_COUNT, "globs", why, whylen);
}

static void fmt_globs(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    const char *const *list = *(const char *const *const *)((const char *)cfg + r->offset);
    size_t count = *(const size_t *)((const char *)cfg + *(const size_t *)r->arg);
    for (size_t i = 0; i < count; i++)
        fprintf(out, "%s%s", i ? ", " : "", list[i]);
}

/* The name of the virtual folder of renditions: one path component. */
static int parse_dir_name(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                          size_t whylen)
{
    size_t n = strlen(v);
    if (n == 0 || n > 255)
        return WHY("expected a folder name of 1 to 255 bytes, such as resized");
    if (strchr(v, '/'))
        return WHY("expected one folder name, without '/'");
    if (strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
        return WHY("'.' and '..' are not folder names");
    if (strncmp(v, ".s3imgfs", 8) == 0)
        return WHY("names beginning with .s3imgfs are reserved for s3imgfs itself");
    return set_string(L, r, v, n);
}

/* ------------------------------------------------------------------------------------------ */
/* [notify] and [log]                                                                           */

/* A Lambda function: a name ([A-Za-z0-9_-]{1,64}), optionally with ":qualifier", or its ARN. */
static int parse_function(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                          size_t whylen)
{
    size_t n = strlen(v);
    if (n > 170)
        return WHY("expected a function name or ARN of at most 170 characters");
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)v[i]) && !strchr("-_:$.", v[i]))
            return WHY("expected a function name (letters, digits, '-', '_') or ARN, such as "
                       "s3imgfs-lambda or arn:aws:lambda:eu-west-1:123456789012:function:s3imgfs");
    return set_string(L, r, v, n);
}

/* arn:PARTITION:sns:REGION:ACCOUNT:TOPIC (the region and account may not be empty). */
static int parse_topic_arn(struct conf_loader *L, const struct conf_row *r, const char *v,
                           char *why, size_t whylen)
{
    static const char expected[] = "expected a topic ARN such as "
                                   "arn:aws:sns:eu-west-1:123456789012:image-notices";
    if (!*v)
        return set_string(L, r, "", 0);
    const char *f[6];
    size_t len[6], n = 0;
    for (const char *p = v; n < 6; n++) {
        const char *c = n < 5 ? strchr(p, ':') : p + strlen(p);
        if (!c)
            return WHY("%s", expected);
        f[n] = p;
        len[n] = (size_t)(c - p);
        p = c + 1;
    }
    if (len[0] != 3 || memcmp(f[0], "arn", 3) != 0 || len[2] != 3 || memcmp(f[2], "sns", 3) != 0)
        return WHY("%s", expected);
    for (size_t i = 1; i < 6; i++)
        if (i != 2 && len[i] == 0)
            return WHY("%s", expected);
    for (size_t i = 0; i < len[5]; i++) {
        char c = f[5][i];
        if (!isalnum((unsigned char)c) && c != '-' && c != '_' && c != '.')
            return WHY("%s (a topic name has letters, digits, '-', '_' and '.' only)", expected);
    }
    if (len[5] > 256)
        return WHY("a topic name has at most 256 characters");
    return set_string(L, r, v, strlen(v));
}

/* http(s)://host[:port]/anything-printable (a webhook). */
static int parse_url(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                     size_t whylen)
{
    if (!*v)
        return set_string(L, r, "", 0);
    const char *p = strncmp(v, "https://", 8) == 0  ? v + 8
                    : strncmp(v, "http://", 7) == 0 ? v + 7
                                                    : NULL;
    if (!p || !*p || *p == '/' || *p == ':')
        return WHY("expected an http:// or https:// URL such as "
                   "https://hooks.example.com/s3imgfs");
    for (const char *q = v; *q; q++)
        if ((unsigned char)*q <= ' ' || *q == 0x7f)
            return WHY("a URL has no spaces or control characters (write a space as %%20)");
    if (strlen(v) > 2048)
        return WHY("expected at most 2048 characters");
    return set_string(L, r, v, strlen(v));
}

/* smtp://host[:port] or smtps://host[:port] (no user or path: smtp_user says who logs in). */
static int parse_smtp_url(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                          size_t whylen)
{
    static const char expected[] = "expected smtp://host[:port] (STARTTLS) or smtps://host[:port] "
                                   "(TLS from the start), such as smtp://mail.example.com:587";
    if (!*v)
        return set_string(L, r, "", 0);
    const char *p = strncmp(v, "smtps://", 8) == 0  ? v + 8
                    : strncmp(v, "smtp://", 7) == 0 ? v + 7
                                                    : NULL;
    if (!p)
        return WHY("%s", expected);
    const char *host = p;
    while (isalnum((unsigned char)*p) || *p == '.' || *p == '-')
        p++;
    if (p == host)
        return WHY("%s", expected);
    if (*p == ':') {
        const char *port = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        uint64_t n;
        if (!parse_digits(port, (size_t)(p - port), &n) || n < 1 || n > 65535)
            return WHY("%s", expected);
    }
    if (*p == '/' && p[1] == '\0')
        p++;
    if (*p)
        return WHY("%s", expected);
    return set_string(L, r, v, strlen(v));
}

/* A value that must not be visible to others: refused as an option (command lines are public)
 * and from a file that group or others can read. Printed masked. */
static int parse_private_string(struct conf_loader *L, const struct conf_row *r, const char *v,
                                char *why, size_t whylen)
{
    if (L->kind == CONF_ORIGIN_OVERRIDE && *v)
        return WHY("secrets are not accepted as options, since other users can read command "
                   "lines; put it in a config file only you can read");
    if (L->kind == CONF_ORIGIN_FILE && !L->file_is_private && *v)
        return WHY("%s is readable by group or others, so it must not hold secrets: run "
                   "chmod 600 %s",
                   L->file_path, L->file_path);
    if (strlen(v) > 4096)
        return WHY("expected at most 4096 characters");
    return set_string(L, r, v, strlen(v));
}

static void fmt_private_string(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    if (**(const char *const *)((const char *)cfg + r->offset))
        fputs("********", out);
}

/* An absolute path (a relative one is relative to the config file's folder); the file is read
 * when it is used, so it may not exist yet. */
static int parse_file_path(struct conf_loader *L, const struct conf_row *r, const char *v,
                           char *why, size_t whylen)
{
    if (!*v)
        return set_string(L, r, "", 0);
    char *abs = conf_path_absolute(v, L->basedir);
    if (!abs)
        return errno == ENOMEM ? -2 : WHY("cannot make %s absolute: %s", v, strerror(errno));
    if (abs[strlen(abs) - 1] == '/' || strlen(abs) > PATH_MAX) {
        free(abs);
        return WHY("expected the path of a file");
    }
    int rc = set_string(L, r, abs, strlen(abs));
    free(abs);
    return rc;
}

/* An SMTP user name: printable, at most 256 bytes. */
static int parse_mail_user(struct conf_loader *L, const struct conf_row *r, const char *v,
                           char *why, size_t whylen)
{
    for (const char *q = v; *q; q++)
        if ((unsigned char)*q < ' ' || *q == 0x7f)
            return WHY("a user name has no control characters");
    if (strlen(v) > 256)
        return WHY("expected at most 256 characters");
    return set_string(L, r, v, strlen(v));
}

/* A bare e-mail address: local@domain, printable, no spaces, angle brackets or quotes. index:
 * of a list entry (1..), or 0 for a lone address. */
static int check_mail(const char *a, size_t n, size_t index, char *why, size_t whylen)
{
    char entry[32] = "";
    if (index)
        snprintf(entry, sizeof(entry), "entry %zu, ", index);
    const char *at = memchr(a, '@', n);
    if (n > 254 || !at || at == a || at == a + n - 1 ||
        memchr(at + 1, '@', (size_t)(a + n - at - 1)))
        return WHY("%s'%.*s' is not an e-mail address such as ops@example.com", entry,
                   (int)(n > 80 ? 80 : n), a);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)a[i] <= ' ' || a[i] == 0x7f || strchr("<>\"(),;:\\[]", a[i]))
            return WHY("%swrite the bare address (ops@example.com), without a name, quotes, "
                       "brackets or spaces",
                       entry);
    return 0;
}

static int parse_mail(struct conf_loader *L, const struct conf_row *r, const char *v, char *why,
                      size_t whylen)
{
    if (!*v)
        return set_string(L, r, "", 0);
    if (check_mail(v, strlen(v), 0, why, whylen) != 0)
        return -1;
    return set_string(L, r, v, strlen(v));
}

static int parse_mail_list(struct conf_loader *L, const struct conf_row *r, const char *v,
                           char *why, size_t whylen)
{
    return parse_list(L, r, v, check_mail, 64, "addresses", why, whylen);
}

/* "success,failure", "failure", "success" or "none" (in any order, comma-separated). */
static int parse_notify_on(struct conf_loader *L, const struct conf_row *r, const char *v,
                           char *why, size_t whylen)
{
    (void)r;
    bool success = false, failure = false, none = false;
    for (const char *p = v;;) {
        while (isspace((unsigned char)*p))
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 7 && strncmp(p, "success", 7) == 0)
            success = true;
        else if (n == 7 && strncmp(p, "failure", 7) == 0)
            failure = true;
        else if (n == 4 && strncmp(p, "none", 4) == 0)
            none = true;
        else
            return WHY("expected success,failure or failure (or success, or none)");
        p += n;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (*p++ != ',')
            return WHY("expected success,failure or failure (or success, or none)");
    }
    if (none && (success || failure))
        return WHY("none cannot be combined with success or failure");
    L->cfg->notify.on_success = success;
    L->cfg->notify.on_failure = failure;
    return 0;
}

static void fmt_notify_on(const struct config *cfg, const struct conf_row *r, FILE *out)
{
    (void)r;
    bool s = cfg->notify.on_success, f = cfg->notify.on_failure;
    fputs(s && f ? "success,failure" : s ? "success" : f ? "failure" : "none", out);
}

/* ------------------------------------------------------------------------------------------ */
/* The table                                                                                    */

static const char *const sse_names[] = {"none", "AES256", "aws:kms", NULL};
static const char *const mode_names[] = {"local", "lambda", "off", NULL};
static const char *const format_names[] = {"auto", "jpeg", "webp", "avif", "png", NULL};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const log_format_names[] = {"text", "json", NULL};
static const struct range quality_range = {1, 100};
static const struct range file_mb_range = {1, 1048576};
static const struct range workers_range = {1, 64};
static const struct range resize_workers_range = {0, 64};
static const struct range seconds_range = {0, 86400};
static const struct range cache_mb_range = {64, 16777216};
static const struct range part_mb_range = {5, 5120};
static const struct range part_parallel_range = {1, 32};
static const struct range read_ahead_range = {0, 262144};
static const struct range kbps_range = {0, 10485760};
static const struct range digest_keys_range = {1, 1000};
static const struct range lambda_timeout_range = {10, 86400};
static const struct range metrics_seconds_range = {0, 3600};
static const size_t temp_count_offset = offsetof(struct config, gateway.temp_glob_count);
static const size_t junk_count_offset = offsetof(struct config, gateway.junk_glob_count);
static const size_t mail_to_count_offset = offsetof(struct config, notify.mail_to_count);

#define OFF(f)  .offset = offsetof(struct config, f)
#define STR(f)  OFF(f), .kind = CONF_ROW_STRING, .format = fmt_string
#define ENUM(f) OFF(f), .parse = parse_enum, .format = fmt_enum
#define UINT(f) OFF(f), .parse = parse_uint, .format = fmt_uint
#define BOOL(f) OFF(f), .parse = parse_bool, .format = fmt_bool
#define GLOBS(f, count_offset)                                                                     \
    OFF(f), .kind = CONF_ROW_GLOBS, .parse = parse_globs, .format = fmt_globs, .arg = &count_offset

const char *const conf_sections[] = {"s3", "resize", "notify", "gateway", "log", NULL};

/* clang-format off */
const struct conf_row conf_rows[] = {
    /* [s3] */
    {.info = {"s3", "endpoint", "",
              "S3 endpoint URL; empty = https://s3.<region>.amazonaws.com",
              {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"}, "endpoint_url", 0},
     .parse = parse_endpoint, STR(s3.endpoint)},
    {.info = {"s3", "region", "us-east-1", "AWS region to sign requests for",
              {"AWS_REGION", "AWS_DEFAULT_REGION"}, "region", 0},
     .parse = parse_region, STR(s3.region)},
    {.info = {"s3", "path_style", "false", "address buckets as http://host/bucket/key",
              {0}, NULL, 0},
     .parse = parse_bool, .format = fmt_bool, OFF(s3.path_style)},
    {.info = {"s3", "source_bucket", "", "bucket the file system shows", {0}, NULL, 0},
     .parse = parse_bucket, STR(s3.source_bucket)},
    {.info = {"s3", "source_prefix", "", "part of the source bucket shown (a folder)",
              {0}, NULL, 0},
     .parse = parse_prefix, STR(s3.source_prefix)},
    {.info = {"s3", "destination_bucket", "", "bucket the resized images go to", {0}, NULL, 0},
     .parse = parse_bucket, STR(s3.destination_bucket)},
    {.info = {"s3", "destination_prefix", "", "folder of the destination bucket", {0}, NULL, 0},
     .parse = parse_prefix, STR(s3.destination_prefix)},
    {.info = {"s3", "profile", "default", "AWS profile of ~/.aws/credentials and ~/.aws/config",
              {"AWS_PROFILE"}, NULL, 0},
     .parse = parse_profile, STR(s3.profile)},
    {.info = {"s3", "sse", "none", "server-side encryption of uploads: none, AES256, aws:kms",
              {0}, NULL, 0},
     ENUM(s3.sse), .arg = sse_names},
    {.info = {"s3", "sse_kms_key_id", "", "KMS key for sse = aws:kms; empty = account default",
              {0}, NULL, 0},
     .parse = parse_kms_key, STR(s3.sse_kms_key_id)},
    {.info = {"s3", "content_md5", "false",
              "also send Content-MD5 (for stores that do not check x-amz-content-sha256)", {0},
              NULL, 0},
     .parse = parse_bool, .format = fmt_bool, OFF(s3.content_md5)},
    {.info = {"s3", "ca_file", "", "PEM file of CAs to trust instead of the system's",
              {"AWS_CA_BUNDLE"}, "ca_bundle", 0},
     .parse = parse_ca_file, STR(s3.ca_file)},
    {.info = {"s3", "access_key_id", "", "access key (file must not be group/other-readable)",
              {"AWS_ACCESS_KEY_ID"}, "aws_access_key_id", CONF_KEY_SECRET},
     .parse = parse_secret, .format = fmt_secret, .cred = 1 + CONF_CRED_ACCESS_KEY},
    {.info = {"s3", "secret_access_key", "", "secret key (file must not be group/other-readable)",
              {"AWS_SECRET_ACCESS_KEY"}, "aws_secret_access_key", CONF_KEY_SECRET},
     .parse = parse_secret, .format = fmt_secret, .cred = 1 + CONF_CRED_SECRET_KEY},
    {.info = {"s3", "session_token", "", "session token of temporary credentials",
              {"AWS_SESSION_TOKEN"}, "aws_session_token", CONF_KEY_SECRET},
     .parse = parse_secret, .format = fmt_secret, .cred = 1 + CONF_CRED_TOKEN},

    /* [resize] */
    {.info = {"resize", "mode", "local", "where images are resized: local, lambda, off",
              {0}, NULL, 0},
     ENUM(resize.mode), .arg = mode_names},
    {.info = {"resize", "sizes", "thumbnail:150x150:cover, medium:640x640, large:1280x1280",
              "output sizes: name:WxH[:fit|cover][:FORMAT][:qQ], comma-separated",
              {0}, NULL, 0},
     .parse = parse_sizes, .format = fmt_sizes},
    {.info = {"resize", "format", "auto", "output format: auto, jpeg, webp, avif, png",
              {0}, NULL, 0},
     ENUM(resize.format), .arg = format_names},
    {.info = {"resize", "quality", "80", "encoder quality, 1 to 100", {0}, NULL, 0},
     .parse = parse_uint, .format = fmt_uint, OFF(resize.quality), .arg = &quality_range},
    {.info = {"resize", "key_template", "{size}/{key}", "destination key of each output",
              {0}, NULL, 0},
     .parse = parse_template, STR(resize.key_template)},
    {.info = {"resize", "max_pixels", "100000000", "largest input image in pixels (100M = 10^8)",
              {0}, NULL, 0},
     .parse = parse_pixels, .format = fmt_u64, OFF(resize.max_pixels)},
    {.info = {"resize", "max_file_mb", "100", "largest input file in MiB", {0}, NULL, 0},
     .parse = parse_uint, .format = fmt_uint, OFF(resize.max_file_mb), .arg = &file_mb_range},
    {.info = {"resize", "background", "#ffffff", "colour under transparency in JPEG outputs",
              {0}, NULL, 0},
     .parse = parse_rgb, .format = fmt_rgb, OFF(resize.background)},
    {.info = {"resize", "lambda_timeout_seconds", "300",
              "mode = lambda: seconds the function has to make the renditions", {0}, NULL, 0},
     UINT(resize.lambda_timeout_seconds), .arg = &lambda_timeout_range},
    {.info = {"resize", "lambda_function", "",
              "mode = lambda: function the gateway invokes itself; empty = the store triggers it",
              {0}, NULL, 0},
     .parse = parse_function, STR(resize.lambda_function)},
    {.info = {"resize", "lambda_endpoint", "",
              "Lambda endpoint URL; empty = https://lambda.<region>.amazonaws.com",
              {"AWS_ENDPOINT_URL_LAMBDA"}, NULL, 0},
     .parse = parse_endpoint, STR(resize.lambda_endpoint)},

    /* [notify] */
    {.info = {"notify", "on", "success,failure",
              "which results are announced: success,failure, failure, success or none",
              {0}, NULL, 0},
     .parse = parse_notify_on, .format = fmt_notify_on},
    {.info = {"notify", "digest_seconds", "0",
              "0 = one notice per file; N = one notice per N seconds summarising them",
              {0}, NULL, 0},
     UINT(notify.digest_seconds), .arg = &seconds_range},
    {.info = {"notify", "digest_keys", "20", "keys listed by name in a digest, 1 to 1000",
              {0}, NULL, 0},
     UINT(notify.digest_keys), .arg = &digest_keys_range},
    {.info = {"notify", "sns_topic_arn", "", "SNS topic notices are published to; empty = no SNS",
              {0}, NULL, 0},
     .parse = parse_topic_arn, STR(notify.sns_topic_arn)},
    {.info = {"notify", "sns_endpoint", "",
              "SNS endpoint URL; empty = https://sns.<topic region>.amazonaws.com",
              {"AWS_ENDPOINT_URL_SNS"}, NULL, 0},
     .parse = parse_endpoint, STR(notify.sns_endpoint)},
    {.info = {"notify", "webhook_url", "", "URL notices are POSTed to as JSON; empty = none",
              {0}, NULL, 0},
     .parse = parse_url, STR(notify.webhook_url)},
    {.info = {"notify", "webhook_secret", "",
              "HMAC-SHA256 key signing webhook bodies (file must not be group/other-readable)",
              {"S3IMGFS_WEBHOOK_SECRET"}, NULL, CONF_KEY_SECRET},
     .parse = parse_private_string, .format = fmt_private_string, OFF(notify.webhook_secret),
     .kind = CONF_ROW_STRING},
    {.info = {"notify", "smtp_url", "",
              "mail server: smtp://host[:port] (STARTTLS) or smtps://host[:port]; empty = no mail",
              {0}, NULL, 0},
     .parse = parse_smtp_url, STR(notify.smtp_url)},
    {.info = {"notify", "smtp_user", "", "user name for SMTP AUTH; empty = no login", {0}, NULL, 0},
     .parse = parse_mail_user, STR(notify.smtp_user)},
    {.info = {"notify", "smtp_password_file", "",
              "file holding the SMTP password (mode 600)", {0}, NULL, 0},
     .parse = parse_file_path, STR(notify.smtp_password_file)},
    {.info = {"notify", "mail_from", "", "sender address of notice e-mails", {0}, NULL, 0},
     .parse = parse_mail, STR(notify.mail_from)},
    {.info = {"notify", "mail_to", "", "recipients of notice e-mails, comma-separated",
              {0}, NULL, 0},
     OFF(notify.mail_to), .kind = CONF_ROW_GLOBS, .parse = parse_mail_list, .format = fmt_globs,
     .arg = &mail_to_count_offset},

    /* [gateway] */
    {.info = {"gateway", "cache_dir", "",
              "local spool folder; empty = $XDG_CACHE_HOME/s3imgfs or ~/.cache/s3imgfs",
              {0}, NULL, 0},
     .parse = parse_cache_dir, STR(gateway.cache_dir)},
    {.info = {"gateway", "upload_workers", "8", "uploads run at the same time, 1 to 64",
              {0}, NULL, 0},
     UINT(gateway.upload_workers), .arg = &workers_range},
    {.info = {"gateway", "resize_workers", "0",
              "images resized at the same time, 1 to 64; 0 = the online CPUs + 1",
              {0}, NULL, 0},
     UINT(gateway.resize_workers), .arg = &resize_workers_range},
    {.info = {"gateway", "temp_globs",
              ".goutputstream-*, *.swp, *.swx, *~, ~$*, .~lock.*#, *.part, *.crdownload, *.tmp, "
              ".*.??????",
              "names of temporary files, held back before upload (comma-separated globs)",
              {0}, NULL, 0},
     GLOBS(gateway.temp_globs, temp_count_offset)},
    {.info = {"gateway", "temp_hold_seconds", "30",
              "how long a closed temporary file waits for a rename or delete", {0}, NULL, 0},
     UINT(gateway.temp_hold_seconds), .arg = &seconds_range},
    {.info = {"gateway", "junk_globs", ".DS_Store, ._*, Thumbs.db, desktop.ini",
              "names of desktop junk, kept locally and never uploaded (comma-separated globs)",
              {0}, NULL, 0},
     GLOBS(gateway.junk_globs, junk_count_offset)},
    {.info = {"gateway", "resized_dir", "resized",
              "name of the virtual folder that shows the renditions", {0}, NULL, 0},
     .parse = parse_dir_name, STR(gateway.resized_dir)},
    {.info = {"gateway", "delete_renditions", "true",
              "deleting an image also deletes its renditions", {0}, NULL, 0},
     BOOL(gateway.delete_renditions)},
    {.info = {"gateway", "attr_ttl", "10", "seconds file attributes are cached", {0}, NULL, 0},
     UINT(gateway.attr_ttl), .arg = &seconds_range},
    {.info = {"gateway", "list_ttl", "10", "seconds folder listings are cached", {0}, NULL, 0},
     UINT(gateway.list_ttl), .arg = &seconds_range},
    {.info = {"gateway", "negative_ttl", "5", "seconds a missing name is remembered as missing",
              {0}, NULL, 0},
     UINT(gateway.negative_ttl), .arg = &seconds_range},
    {.info = {"gateway", "sync_upload", "false", "close() waits until the upload is done",
              {0}, NULL, 0},
     BOOL(gateway.sync_upload)},
    {.info = {"gateway", "cache_max_mb", "10240", "largest size of the local spool in MiB", {0}, NULL, 0},
     UINT(gateway.cache_max_mb), .arg = &cache_mb_range},
    {.info = {"gateway", "multipart_threshold_mb", "16",
              "files of at least this many MiB are uploaded in parts", {0}, NULL, 0},
     UINT(gateway.multipart_threshold_mb), .arg = &part_mb_range},
    {.info = {"gateway", "part_size_mb", "8", "size of each part of a multipart upload in MiB",
              {0}, NULL, 0},
     UINT(gateway.part_size_mb), .arg = &part_mb_range},
    {.info = {"gateway", "part_parallel", "8", "parts of one file uploaded at the same time",
              {0}, NULL, 0},
     UINT(gateway.part_parallel), .arg = &part_parallel_range},
    {.info = {"gateway", "upload_kbps", "0",
              "largest speed of one upload request (a PUT or a part) in KiB/s; 0 = no limit",
              {0}, NULL, 0},
     UINT(gateway.upload_kbps), .arg = &kbps_range},
    {.info = {"gateway", "read_ahead_kb", "8192",
              "KiB fetched ahead of sequential reads; 0 = no read-ahead", {0}, NULL, 0},
     UINT(gateway.read_ahead_kb), .arg = &read_ahead_range},

    /* [log] */
    {.info = {"log", "level", "info", "least severe messages logged: error, warn, info, debug",
              {0}, NULL, 0},
     ENUM(log.level), .arg = level_names},
    {.info = {"log", "format", "text", "text (for people) or json (one object per line)",
              {0}, NULL, 0},
     ENUM(log.format), .arg = log_format_names},
    {.info = {"log", "file", "",
              "file the log is appended to (reopened on SIGHUP); empty = stderr or syslog",
              {0}, NULL, 0},
     .parse = parse_file_path, STR(log.file)},
    {.info = {"log", "metrics_seconds", "0",
              "write CloudWatch EMF metric lines to the log every N seconds; 0 = never",
              {0}, NULL, 0},
     UINT(log.metrics_seconds), .arg = &metrics_seconds_range},
};
/* clang-format on */

const size_t conf_row_count = sizeof(conf_rows) / sizeof(conf_rows[0]);

const struct conf_row *conf_row_find(const char *section, const char *key)
{
    for (size_t i = 0; i < conf_row_count; i++)
        if (strcmp(conf_rows[i].info.section, section) == 0 &&
            strcmp(conf_rows[i].info.key, key) == 0)
            return &conf_rows[i];
    return NULL;
}

size_t conf_row_index(const struct conf_row *r)
{
    return (size_t)(r - conf_rows);
}

bool conf_section_known(const char *section)
{
    for (size_t i = 0; conf_sections[i]; i++)
        if (strcmp(conf_sections[i], section) == 0)
            return true;
    return false;
}

void conf_section_keys(const char *section, char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < conf_row_count && off < len; i++)
        if (strcmp(conf_rows[i].info.section, section) == 0)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "",
                                    conf_rows[i].info.key);
}

const struct conf_key_info *conf_key_at(size_t i)
{
    return i < conf_row_count ? &conf_rows[i].info : NULL;
}

const char *conf_section_at(size_t i)
{
    return i < sizeof(conf_sections) / sizeof(conf_sections[0]) - 1 ? conf_sections[i] : NULL;
}

const char *conf_format_name(enum conf_format format)
{
    return (unsigned)format < 5 ? format_names[format] : "?";
}

const char *conf_fit_name(enum conf_fit fit)
{
    return fit == CONF_FIT_COVER ? "cover" : "fit";
}

const char *conf_crop_name(enum conf_crop crop)
{
    static const char *const names[] = {"centre", "attention", "entropy"};
    return (unsigned)crop < 3 ? names[crop] : "?";
}

const char *conf_sse_name(enum conf_sse sse)
{
    return (unsigned)sse < 3 ? sse_names[sse] : "?";
}

const char *conf_log_format_name(enum conf_log_format format)
{
    return (unsigned)format < 2 ? log_format_names[format] : "?";
}

const char *conf_log_level_name(enum conf_log_level level)
{
    return (unsigned)level < 4 ? level_names[level] : "?";
}
