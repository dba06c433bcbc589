/* env: the function's configuration from S3IMGFS_* environment variables.
 *
 * A function has no INI file: every key of the conf table is read from S3IMGFS_<KEY> (upper
 * case). A key name several sections share keeps the plain name in the first section of the
 * table that has it and is S3IMGFS_<SECTION>_<KEY> in the others (computed from the table:
 * today "format" is in [resize] and [log], so S3IMGFS_FORMAT is [resize] format and
 * S3IMGFS_LOG_FORMAT is [log] format, as lambda.h documents). Empty variables count as not set.
 * The values become overrides "section.key=value" of conf_load (origin "env"), so they are
 * validated exactly as in the file; errors are rewritten to name the variable ("env
 * S3IMGFS_QUALITY ([resize] quality) = 120: expected ..."); conf_dump still shows such a value's
 * origin as "env resize.quality". No file is read: the home directory given to conf_load does
 * not exist and XDG_CONFIG_HOME is hidden from it. What conf reads from the environment itself
 * stays as it is: AWS_REGION, AWS_ENDPOINT_URL(_S3), AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
 * / AWS_SESSION_TOKEN (the function's role, set by Lambda), S3IMGFS_WEBHOOK_SECRET.
 *
 * Not read: secret keys (only from the AWS variables above), the [gateway] keys and [resize]
 * mode (the file system gateway's; the function always resizes itself). A variable that sets
 * one of them is refused, and so is any other unknown S3IMGFS_* variable (a typo such as
 * S3IMGFS_DESTINATON_BUCKET would otherwise be silently ignored): the error names it and the
 * valid names closest to it. That check enumerates environ(7), so it is only made when the
 * caller passes no getenv of its own.
 */
#include "lambda.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

#define PREFIX "S3IMGFS_"
/* The home directory conf_load is given: no ~/.config/s3imgfs/config.ini, no ~/.aws files. */
#define NO_HOME "/nonexistent"

struct env_ctx {
    conf_getenv_fn fn;
    void *ctx;
};

static const char *env_lookup(const struct env_ctx *e, const char *name)
{
    const char *v = e->fn ? e->fn(e->ctx, name) : getenv(name);
    return v && *v ? v : NULL;
}

/* What conf_load sees: the caller's environment, minus what would point it at a file. */
static const char *conf_env(void *ctx, const char *name)
{
    if (strcmp(name, "XDG_CONFIG_HOME") == 0)
        return NULL;
    return env_lookup(ctx, name);
}

/* One variable of the table. */
struct var {
    const struct conf_key_info *info;
    char name[96];
    bool used; /* read by the function (else refused when set) */
};

static bool not_used(const struct conf_key_info *k)
{
    return strcmp(k->section, "gateway") == 0 ||
           (strcmp(k->section, "resize") == 0 && strcmp(k->key, "mode") == 0);
}

static void upper(char *dst, size_t cap, const char *a, const char *b)
{
    size_t n = 0;
    for (const char *s = a; *s && n + 1 < cap; s++)
        dst[n++] = (char)toupper((unsigned char)*s);
    for (const char *s = b; s && *s && n + 1 < cap; s++)
        dst[n++] = (char)toupper((unsigned char)*s);
    dst[n] = '\0';
}

/* Every key's variable; secret keys have none. Returns the count, or SIZE_MAX on ENOMEM. */
static size_t table_vars(struct var **out)
{
    size_t n = 0;
    while (conf_key_at(n))
        n++;
    struct var *v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return SIZE_MAX;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const struct conf_key_info *info = conf_key_at(i);
        if (info->flags & CONF_KEY_SECRET)
            continue;
        bool earlier = false; /* an earlier section has a key of this name */
        for (size_t j = 0; j < i && !earlier; j++)
            earlier = strcmp(conf_key_at(j)->key, info->key) == 0 &&
                      strcmp(conf_key_at(j)->section, info->section) != 0;
        char sect[64] = "";
        if (earlier)
            snprintf(sect, sizeof(sect), "%s_", info->section);
        char tail[160];
        snprintf(tail, sizeof(tail), "%s%s", sect, info->key);
        v[k].info = info;
        snprintf(v[k].name, sizeof(v[k].name), PREFIX);
        upper(v[k].name + strlen(PREFIX), sizeof(v[k].name) - strlen(PREFIX), tail, NULL);
        v[k].used = !not_used(info);
        k++;
    }
    *out = v;
    return k;
}

/* S3IMGFS_* variables conf itself reads (S3IMGFS_WEBHOOK_SECRET), or the program as it starts
 * (S3IMGFS_HUGEPAGES: resize_exec_with_huge_pages). */
static bool conf_reads(const char *name)
{
    if (strcmp(name, "S3IMGFS_HUGEPAGES") == 0)
        return true;
    for (size_t i = 0; conf_key_at(i); i++)
        for (int j = 0; j < 3 && conf_key_at(i)->env[j]; j++)
            if (strcmp(conf_key_at(i)->env[j], name) == 0)
                return true;
    return false;
}

static size_t distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 95 || lb > 95)
        return SIZE_MAX;
    size_t row[96];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t best = diag + cost;
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* "S3IMGFS_X is not a setting of s3imgfs-lambda; did you mean ...?" */
static void unknown_variable(const char *name, const struct var *v, size_t n, struct s3_error *err)
{
    char list[400] = "";
    size_t off = 0, best = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t d = v[i].used ? distance(name, v[i].name) : SIZE_MAX;
        if (d < best)
            best = d;
    }
    /* S3IMGFS_<SECTION>_<KEY> for a key that has the plain name */
    for (size_t i = 0; i < n; i++) {
        char full[160];
        snprintf(full, sizeof(full), PREFIX);
        upper(full + strlen(PREFIX), sizeof(full) - strlen(PREFIX), v[i].info->section, "_");
        size_t l = strlen(full);
        upper(full + l, sizeof(full) - l, v[i].info->key, NULL);
        if (v[i].used && strcmp(full, name) == 0 && strcmp(full, v[i].name) != 0) {
            s3_error_set(err, 0, "InvalidConfig", false,
                         "environment variable %s is not a setting of s3imgfs-lambda: [%s] %s is "
                         "%s",
                         name, v[i].info->section, v[i].info->key, v[i].name);
            return;
        }
    }
    size_t tail = strlen(name) - strlen(PREFIX);
    size_t limit = tail / 4 ? tail / 4 : 1; /* a typo or so per four letters */
    if (best <= limit) {
        for (size_t i = 0; i < n && off < sizeof(list); i++)
            if (v[i].used && distance(name, v[i].name) == best)
                off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", off ? " or " : "",
                                        v[i].name);
        s3_error_set(err, 0, "InvalidConfig", false,
                     "environment variable %s is not a setting of s3imgfs-lambda: did you mean "
                     "%s?",
                     name, list);
        return;
    }
    char msg[2048];
    off = (size_t)snprintf(msg, sizeof(msg),
                           "environment variable %s is not a setting of s3imgfs-lambda "
                           "(S3IMGFS_ + one of: ",
                           name);
    for (size_t i = 0, first = 1; i < n && off < sizeof(msg); i++)
        if (v[i].used) {
            off += (size_t)snprintf(msg + off, sizeof(msg) - off, "%s%s", first ? "" : ", ",
                                    v[i].name + strlen(PREFIX));
            first = 0;
        }
    if (off + 1 < sizeof(msg))
        memcpy(msg + off, ")", 2);
    /* cut the list where the error message ends, at a name's end */
    size_t cap = err ? sizeof(err->message) - 1 : sizeof(msg) - 1;
    if (strlen(msg) > cap) {
        msg[cap - 6] = '\0';
        char *comma = strrchr(msg, ',');
        if (comma)
            memcpy(comma, ", ...)", 7);
    }
    s3_error_set(err, 0, "InvalidConfig", false, "%s", msg);
}

/* Every S3IMGFS_* variable of environ(7) must be one we know. */
static int check_environ(const struct var *v, size_t n, struct s3_error *err)
{
    for (char **e = environ; e && *e; e++) {
        if (strncmp(*e, PREFIX, strlen(PREFIX)) != 0)
            continue;
        const char *eq = strchr(*e, '=');
        size_t len = eq ? (size_t)(eq - *e) : strlen(*e);
        char name[128];
        if (len >= sizeof(name))
            len = sizeof(name) - 1;
        memcpy(name, *e, len);
        name[len] = '\0';
        bool known = conf_reads(name);
        for (size_t i = 0; i < n && !known; i++)
            known = strcmp(v[i].name, name) == 0;
        if (!known) {
            unknown_variable(name, v, n, err);
            return -1;
        }
    }
    return 0;
}

/* Replaces every "env section.key" in the message by "env VARIABLE ([section] key)". */
static void name_variables(struct s3_error *err, const struct var *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char label[128], repl[200];
        snprintf(label, sizeof(label), "env %s.%s", v[i].info->section, v[i].info->key);
        snprintf(repl, sizeof(repl), "env %s ([%s] %s)", v[i].name, v[i].info->section,
                 v[i].info->key);
        size_t ll = strlen(label), rl = strlen(repl);
        char *p = err->message;
        while ((p = strstr(p, label)) != NULL) {
            char next = p[ll];
            if (isalnum((unsigned char)next) || next == '_') {
                p += ll;
                continue;
            }
            size_t tail = strlen(p + ll);
            size_t room = sizeof(err->message) - (size_t)(p - err->message) - 1;
            if (rl >= room)
                break;
            if (rl + tail > room)
                tail = room - rl;
            memmove(p + rl, p + ll, tail);
            p[rl + tail] = '\0';
            memcpy(p, repl, rl);
            p += rl;
        }
    }
}

struct config *lambda_config_from_env(conf_getenv_fn getenv_fn, void *getenv_ctx,
                                      struct s3_error *err)
{
    struct env_ctx e = {getenv_fn, getenv_ctx};
    struct var *v = NULL;
    size_t n = table_vars(&v);
    if (n == SIZE_MAX) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory while reading the environment");
        return NULL;
    }
    struct config *cfg = NULL;
    char **overrides = calloc(n ? n : 1, sizeof(*overrides));
    size_t count = 0;
    if (!overrides) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory while reading the environment");
        goto out;
    }
    if (!getenv_fn && check_environ(v, n, err) != 0)
        goto out;
    for (size_t i = 0; i < n; i++) {
        const char *value = env_lookup(&e, v[i].name);
        if (!value)
            continue;
        if (!v[i].used) {
            s3_error_set(err, 0, "InvalidConfig", false,
                         "environment variable %s sets [%s] %s, which s3imgfs-lambda does not "
                         "use (%s); remove the variable",
                         v[i].name, v[i].info->section, v[i].info->key,
                         strcmp(v[i].info->section, "gateway") == 0
                             ? "a setting of the file system gateway"
                             : "the function always resizes the images itself");
            goto out;
        }
        if (asprintf(&overrides[count], "%s.%s=%s", v[i].info->section, v[i].info->key, value) <
            0) {
            overrides[count] = NULL;
            s3_error_set(err, 0, "OutOfMemory", false,
                         "out of memory while reading the environment");
            goto out;
        }
        count++;
    }
    struct conf_options o = {
        .path = NULL,
        .home = NO_HOME,
        .overrides = (const char *const *)overrides,
        .override_count = count,
        .override_origin = "env",
        .getenv = conf_env,
        .getenv_ctx = &e,
    };
    struct s3_error cerr;
    s3_error_clear(&cerr);
    cfg = conf_load(&o, &cerr);
    if (!cfg) {
        if (strcmp(cerr.code, "NoCredentials") == 0)
            snprintf(cerr.message, sizeof(cerr.message),
                     "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and "
                     "AWS_SESSION_TOKEN for temporary ones); Lambda sets them from the "
                     "function's execution role");
        name_variables(&cerr, v, n);
        if (err)
            *err = cerr;
        goto out;
    }
    if (!cfg->s3.destination_bucket[0]) {
        s3_error_set(err, 0, "InvalidConfig", false,
                     "environment variable " PREFIX
                     "DESTINATION_BUCKET is not set: the function needs the bucket it writes the "
                     "resized images to");
        conf_free(cfg);
        cfg = NULL;
    }
out:
    for (size_t i = 0; overrides && i < count; i++)
        free(overrides[i]);
    free(overrides);
    free(v);
    return cfg;
}
