/* conf_load: defaults, then the INI file, then overrides; then, for what those left unset, the
 * environment and the AWS profile; then the credentials chain and the checks that involve
 * several keys. */
#include "conf_internal.h"

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ERR(L, code, ...) (s3_error_set((L)->err, 0, (code), false, __VA_ARGS__), -1)

static const char *default_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static const char *env_get(struct conf_loader *L, const char *name)
{
    const char *v = L->getenv(L->getenv_ctx, name);
    return v && *v ? v : NULL;
}

static int nomem(struct conf_loader *L)
{
    return ERR(L, "OutOfMemory", "out of memory while reading the configuration");
}

static struct conf_origin *origin_of(struct conf_loader *L, const char *section, const char *key)
{
    return &L->cfg->priv->origins[conf_row_index(conf_row_find(section, key))];
}

static bool env_backed(const struct conf_row *r)
{
    return r->info.env[0] || r->info.profile_key;
}

static void sections_text(char *buf, size_t len)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; conf_sections[i] && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s[%s]", i ? ", " : "", conf_sections[i]);
}

static int set_origin(struct conf_loader *L, const struct conf_row *r, enum conf_origin_kind kind,
                      const char *where, const char *label)
{
    struct conf_origin *o = &L->cfg->priv->origins[conf_row_index(r)];
    char *w = conf_strdup(where), *l = conf_strdup(label);
    if (!w || !l) {
        free(w);
        free(l);
        return nomem(L);
    }
    free(o->where);
    free(o->label);
    o->kind = kind;
    o->where = w;
    o->label = l;
    return 0;
}

/* Applies one value to a key. `label` names the setting in errors ("path:3: [s3] region",
 * "env AWS_REGION"), `where` is what conf_dump shows. */
static int apply(struct conf_loader *L, const struct conf_row *r, const char *value,
                 enum conf_origin_kind kind, const char *where, const char *label,
                 const char *basedir)
{
    char why[CONF_WHY_MAX] = "";
    L->kind = kind;
    L->basedir = basedir;
    int rc = r->parse(L, r, value, why, sizeof(why));
    if (rc == -2)
        return nomem(L);
    if (rc != 0) {
        bool secret = r->info.flags & CONF_KEY_SECRET;
        bool cut = strlen(value) > 100;
        return ERR(L, "InvalidConfig", "%s = %.*s%s: %s", label, 100, secret ? "(hidden)" : value,
                   cut && !secret ? "..." : "", why);
    }
    return set_origin(L, r, kind, where, label);
}

static int apply_default(struct conf_loader *L, const struct conf_row *r)
{
    char label[128];
    snprintf(label, sizeof(label), "[%s] %s (default)", r->info.section, r->info.key);
    if (r->cred) /* credentials live in the loader, not in struct config */
        return set_origin(L, r, CONF_ORIGIN_DEFAULT, "default", label);
    return apply(L, r, r->info.default_value, CONF_ORIGIN_DEFAULT, "default", label, NULL);
}

static int unknown_key(struct conf_loader *L, const char *where, const char *section,
                       const char *key)
{
    char keys[400];
    conf_section_keys(section, keys, sizeof(keys));
    if (!keys[0])
        return ERR(L, "InvalidConfig", "%s: unknown key '%s' in [%s] ([%s] has no keys yet)", where,
                   key, section, section);
    return ERR(L, "InvalidConfig", "%s: unknown key '%s' in [%s] (known keys: %s)", where, key,
               section, keys);
}

/* ------------------------------------------------------------------------------------------ */
/* The INI file                                                                                 */

static int ini_on_section(void *ctx, const char *section, int line)
{
    struct conf_loader *L = ctx;
    if (conf_section_known(section))
        return 0;
    char known[200];
    sections_text(known, sizeof(known));
    return ERR(L, "InvalidConfig", "%s:%d: unknown section [%s] (known sections: %s)", L->file_path,
               line, section, known);
}

static int ini_on_key(void *ctx, const char *section, const char *key, const char *value, int line)
{
    struct conf_loader *L = ctx;
    char *where = conf_asprintf("%s:%d", L->file_path, line);
    char *label = conf_asprintf("%s:%d: [%s] %s", L->file_path, line, section, key);
    int rc = 0;
    if (!where || !label) {
        rc = nomem(L);
        goto out;
    }
    if (!*section) {
        char known[200];
        sections_text(known, sizeof(known));
        rc = ERR(L, "InvalidConfig", "%s: key '%s' is outside any section; put it under one of %s",
                 where, key, known);
        goto out;
    }
    const struct conf_row *r = conf_row_find(section, key);
    if (!r) {
        rc = unknown_key(L, where, section, key);
        goto out;
    }
    size_t i = conf_row_index(r);
    if (L->file_lines[i]) {
        rc = ERR(L, "InvalidConfig", "%s: [%s] %s is set twice (first on line %d)", where, section,
                 key, L->file_lines[i]);
        goto out;
    }
    L->file_lines[i] = line;
    if (!*value && env_backed(r))
        goto out; /* empty: not set, so the environment and the profile apply */
    rc = apply(L, r, value, CONF_ORIGIN_FILE, where, label, L->file_dir);
out:
    free(where);
    free(label);
    return rc;
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return conf_strdup(".");
    if (slash == path)
        return conf_strdup("/");
    return conf_strndup(path, (size_t)(slash - path));
}

static int load_file(struct conf_loader *L, const char *path, bool explicit)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (!explicit && errno == ENOENT)
            return 0;
        return ERR(L, "LocalIOError", "cannot open the config file %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return ERR(L, "LocalIOError", "the config file %s is not a regular file", path);
    }
    conf_file_id_from_stat(&st, &L->file_id);
    L->file_is_private = (st.st_mode & (S_IRGRP | S_IROTH)) == 0;
    L->cfg->priv->config_path = conf_strdup(path);
    L->file_dir = dir_of(path);
    if (!L->cfg->priv->config_path || !L->file_dir) {
        fclose(f);
        return nomem(L);
    }
    L->file_path = L->cfg->priv->config_path;
    char buf[512] = "";
    int rc =
        conf_ini_parse(f, path, CONF_INI_STRICT, ini_on_section, ini_on_key, L, buf, sizeof(buf));
    fclose(f);
    if (rc != 0 && !L->err->code[0])
        s3_error_set(L->err, 0, "InvalidConfig", false, "%s", buf);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Overrides                                                                                    */

static char *dup_trim(const char *s, size_t n)
{
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return conf_strndup(s, n);
}

static int apply_override(struct conf_loader *L, const char *origin, const char *s)
{
    const char *eq = strchr(s, '=');
    const char *dot = eq ? memchr(s, '.', (size_t)(eq - s)) : NULL;
    if (!dot)
        return ERR(L, "InvalidConfig",
                   "%s %s: expected section.key=value, such as s3.region=eu-west-1", origin, s);
    char *section = dup_trim(s, (size_t)(dot - s));
    char *key = dup_trim(dot + 1, (size_t)(eq - dot - 1));
    char *value = dup_trim(eq + 1, strlen(eq + 1));
    char *label = section && key ? conf_asprintf("%s %s.%s", origin, section, key) : NULL;
    int rc = 0;
    if (!section || !key || !value || !label) {
        rc = nomem(L);
        goto out;
    }
    if (!conf_section_known(section)) {
        char known[200];
        sections_text(known, sizeof(known));
        rc = ERR(L, "InvalidConfig", "%s: unknown section [%s] (known sections: %s)", label,
                 section, known);
        goto out;
    }
    const struct conf_row *r = conf_row_find(section, key);
    if (!r) {
        rc = unknown_key(L, label, section, key);
        goto out;
    }
    if (!*value && env_backed(r) && !r->cred)
        rc = apply_default(L, r); /* back to "not set" */
    else
        rc = apply(L, r, value, CONF_ORIGIN_OVERRIDE, label, label, NULL);
out:
    free(section);
    free(key);
    conf_free_secret(value);
    free(label);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Environment and AWS profile                                                                  */

static int resolve_from_env(struct conf_loader *L, const struct conf_row *r,
                            const struct conf_aws_profile *cfgp, const char *profile)
{
    if (L->cfg->priv->origins[conf_row_index(r)].kind != CONF_ORIGIN_DEFAULT)
        return 0; /* set in the file or by an option: explicit wins */
    for (int k = 0; k < 3 && r->info.env[k]; k++) {
        const char *v = env_get(L, r->info.env[k]);
        if (v) {
            char where[96];
            snprintf(where, sizeof(where), "env %s", r->info.env[k]);
            return apply(L, r, v, CONF_ORIGIN_ENV, where, where, NULL);
        }
    }
    const struct conf_kv *kv =
        r->info.profile_key && cfgp ? conf_aws_profile_get(cfgp, r->info.profile_key) : NULL;
    if (!kv)
        return 0;
    char sect[200];
    conf_aws_section_name(cfgp, profile, sect, sizeof(sect));
    char *where = conf_asprintf("%s:%d %s", cfgp->path, kv->line, sect);
    char *label = conf_asprintf("%s:%d: %s %s", cfgp->path, kv->line, sect, kv->key);
    int rc =
        where && label ? apply(L, r, kv->value, CONF_ORIGIN_PROFILE, where, label, NULL) : nomem(L);
    free(where);
    free(label);
    return rc;
}

static char *aws_file_path(struct conf_loader *L, const char *var, const char *name)
{
    const char *v = env_get(L, var);
    if (v && v[0] == '~' && v[1] == '/' && L->home)
        return conf_asprintf("%s%s", L->home, v + 1);
    if (v)
        return conf_strdup(v);
    if (!L->home)
        return conf_strdup(""); /* nowhere to look */
    return conf_asprintf("%s/.aws/%s", L->home, name);
}

static const char *const unsupported_keys[] = {
    "role_arn",       "credential_process",      "sso_session", "sso_start_url",
    "source_profile", "web_identity_token_file", NULL};

static void describe_profile(char *buf, size_t len, const struct conf_aws_profile *p,
                             const char *profile)
{
    char sect[200];
    conf_aws_section_name(p, profile, sect, sizeof(sect));
    const char *state = !p->file_exists ? "missing file"
                        : !p->found     ? "no such section"
                                        : "no aws_access_key_id";
    snprintf(buf, len, "%s in %s (%s)", sect, p->path[0] ? p->path : "(no home)", state);
}

static int no_credentials(struct conf_loader *L, const struct conf_aws_profile *credp,
                          const struct conf_aws_profile *cfgp, const char *profile)
{
    char msg[1024], a[400], b[400];
    describe_profile(a, sizeof(a), credp, profile);
    describe_profile(b, sizeof(b), cfgp, profile);
    const char *ini = L->cfg->priv->config_path;
    size_t off = (size_t)snprintf(msg, sizeof(msg),
                                  "no AWS credentials found: looked for [s3] access_key_id%s%s, "
                                  "env AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, %s, %s",
                                  ini ? " in " : " (no config file)", ini ? ini : "", a, b);
    const struct conf_aws_profile *ps[2] = {credp, cfgp};
    const struct conf_kv *kv = NULL;
    const struct conf_aws_profile *where = NULL;
    for (int i = 0; i < 2 && !kv; i++)
        for (int k = 0; unsupported_keys[k] && !kv; k++)
            if ((kv = conf_aws_profile_get(ps[i], unsupported_keys[k])))
                where = ps[i];
    if (kv && off < sizeof(msg)) {
        char sect[200];
        conf_aws_section_name(where, profile, sect, sizeof(sect));
        snprintf(msg + off, sizeof(msg) - off,
                 "; %s uses %s (line %d), which s3imgfs does not support: give the profile "
                 "static keys",
                 sect, kv->key, kv->line);
    }
    return ERR(L, "NoCredentials", "%s", msg);
}

static int copy_value(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return -1;
    memcpy(dst, v, n + 1);
    return 0;
}

/* The origins of the three credential keys, for conf_dump and conf_origin. */
static int credential_origins(struct conf_loader *L, const struct aws_credentials *c)
{
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN"};
    for (int i = 0; i < CONF_CRED_COUNT; i++) {
        const struct conf_row *r = NULL;
        for (size_t k = 0; k < conf_row_count; k++)
            if (conf_rows[k].cred == i + 1)
                r = &conf_rows[k];
        char where[700];
        if (i == CONF_CRED_TOKEN && !c->session_token[0])
            snprintf(where, sizeof(where), "not set");
        else if (!L->cred_source) /* the INI file: already recorded */
            continue;
        else if (strcmp(L->cred_source, "env") == 0)
            snprintf(where, sizeof(where), "env %s", vars[i]);
        else
            snprintf(where, sizeof(where), "%s", L->cred_source);
        if (set_origin(L, r, CONF_ORIGIN_DEFAULT, where, where) != 0)
            return -1;
    }
    return 0;
}

static int resolve_credentials(struct conf_loader *L, const struct conf_aws_profile *credp,
                               const struct conf_aws_profile *cfgp, const char *profile)
{
    struct aws_credentials c;
    memset(&c, 0, sizeof(c));
    struct config *cfg = L->cfg;
    int rc = 0;

    /* 1. [s3] access_key_id / secret_access_key / session_token in the INI file. */
    char **ini = L->ini_creds;
    if (ini[0] || ini[1] || ini[2]) {
        if (!ini[0] || !ini[1]) {
            const char *have = ini[0]   ? "access_key_id"
                               : ini[1] ? "secret_access_key"
                                        : "session_token";
            rc = ERR(L, "InvalidConfig",
                     "%s: [s3] %s is set but [s3] %s is not; set both access_key_id and "
                     "secret_access_key",
                     origin_of(L, "s3", have)->where, have,
                     ini[0] ? "secret_access_key" : "access_key_id");
            goto out;
        }
        copy_value(c.access_key_id, sizeof(c.access_key_id), ini[0]);
        copy_value(c.secret_access_key, sizeof(c.secret_access_key), ini[1]);
        if (ini[2])
            copy_value(c.session_token, sizeof(c.session_token), ini[2]);
        cfg->credentials = conf_credentials_new(CONF_CREDS_INI, &c, cfg->priv->config_path, NULL,
                                                NULL, &L->file_id, NULL);
        goto made;
    }

    /* 2. The environment. */
    const char *ak = env_get(L, "AWS_ACCESS_KEY_ID");
    const char *sk = env_get(L, "AWS_SECRET_ACCESS_KEY");
    const char *tok = env_get(L, "AWS_SESSION_TOKEN");
    if (ak || sk) {
        if (!ak || !sk) {
            rc = ERR(L, "InvalidConfig", "env %s is set but %s is not; set both (or neither)",
                     ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                     ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
            goto out;
        }
        if (copy_value(c.access_key_id, sizeof(c.access_key_id), ak) != 0 ||
            copy_value(c.secret_access_key, sizeof(c.secret_access_key), sk) != 0 ||
            (tok && copy_value(c.session_token, sizeof(c.session_token), tok) != 0)) {
            rc = ERR(L, "InvalidConfig",
                     "env AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN is too "
                     "long");
            goto out;
        }
        cfg->credentials =
            conf_credentials_new(CONF_CREDS_STATIC, &c, NULL, NULL, NULL, NULL, NULL);
        L->cred_source = "env";
        goto made;
    }

    /* 3. The profile in the credentials file, then in the config file. */
    const struct conf_aws_profile *ps[2] = {credp, cfgp};
    for (int i = 0; i < 2; i++) {
        char source[600], err[512];
        int found = conf_aws_profile_credentials(ps[i], profile, &c, source, sizeof(source), err,
                                                 sizeof(err));
        if (found < 0) {
            rc = ERR(L, "InvalidConfig", "%s", err);
            goto out;
        }
        if (found > 0) {
            cfg->credentials = conf_credentials_new(CONF_CREDS_AWS_FILES, &c, credp->path,
                                                    cfgp->path, profile, &credp->id, &cfgp->id);
            snprintf(L->cred_where, sizeof(L->cred_where), "%s", source);
            L->cred_source = L->cred_where;
            goto made;
        }
    }
    rc = no_credentials(L, credp, cfgp, profile);
    goto out;
made:
    if (!cfg->credentials) {
        rc = nomem(L);
        goto out;
    }
    rc = credential_origins(L, &c);
out:
    explicit_bzero(&c, sizeof(c));
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Checks across keys                                                                           */

static bool compatible(const char *a, const char *b)
{
    size_t n = strlen(a), m = strlen(b);
    return strncmp(a, b, n < m ? n : m) == 0;
}

static const char recursion[] = "resized images would be written into the watched source, picked "
                                "up as new images and resized again, forever";

/* Outputs go to destination_bucket/destination_prefix + key_template; none may land under
 * source_bucket/source_prefix. */
static int check_overlap(struct conf_loader *L)
{
    const struct config *c = L->cfg;
    const char *bucket = c->s3.source_bucket;
    if (!*bucket || strcmp(bucket, c->s3.destination_bucket) != 0)
        return 0;
    const char *P = c->s3.source_prefix, *Q = c->s3.destination_prefix;
    const char *pw = origin_of(L, "s3", "source_prefix")->where;
    const char *qw = origin_of(L, "s3", "destination_prefix")->where;
    if (strncmp(Q, P, strlen(P)) == 0)
        return ERR(L, "InvalidConfig",
                   "[s3] destination_prefix '%s' (%s) is inside [s3] source_prefix '%s'%s (%s) "
                   "of the same bucket '%s': %s; choose a destination_prefix outside the "
                   "source_prefix, or another destination_bucket",
                   Q, qw, P, *P ? "" : " (the whole bucket)", pw, bucket, recursion);
    if (strncmp(P, Q, strlen(Q)) != 0)
        return 0; /* disjoint */
    /* The source is inside the destination: it depends on how output keys begin. */
    const char *R = P + strlen(Q);
    const char *tpl = c->resize.key_template;
    const char *tw = origin_of(L, "resize", "key_template")->where;
    const char *brace = strchr(tpl, '{');
    size_t l0 = (size_t)(brace - tpl);
    if (strncmp(brace, "{size}", 6) != 0) {
        char *lit = conf_strndup(tpl, l0);
        if (!lit)
            return nomem(L);
        bool bad = compatible(lit, R);
        free(lit);
        if (bad)
            return ERR(L, "InvalidConfig",
                       "[resize] key_template '%s' (%s) can write keys under [s3] "
                       "destination_prefix '%s' (%s) that fall inside [s3] source_prefix '%s' "
                       "(%s) of the same bucket '%s': %s; begin the template with a folder "
                       "outside the source_prefix, or use another destination",
                       tpl, tw, Q, qw, P, pw, bucket, recursion);
        return 0;
    }
    const char *after = brace + 6;
    const char *next = strchr(after, '{');
    size_t l1 = next ? (size_t)(next - after) : strlen(after);
    for (size_t i = 0; i < c->resize.size_count; i++) {
        const char *name = c->resize.sizes[i].name;
        char *start = conf_asprintf("%.*s%s%.*s", (int)l0, tpl, name, (int)l1, after);
        if (!start)
            return nomem(L);
        bool bad = compatible(start, R);
        if (bad)
            s3_error_set(
                L->err, 0, "InvalidConfig", false,
                "size '%s' is written to keys beginning with '%s%s' ([resize] key_template "
                "'%s'), inside [s3] source_prefix '%s' (%s) of the same bucket '%s': %s; rename "
                "the size, change the key_template or use another destination",
                name, Q, start, tpl, P, pw, bucket, recursion);
        free(start);
        if (bad)
            return -1;
    }
    return 0;
}

/* Appends " (note)" to where conf_dump says the value of section.key came from; a default
 * becomes "default (note_default)". */
static int origin_note(struct conf_loader *L, const char *section, const char *key,
                       const char *note, const char *note_default)
{
    struct conf_origin *o = origin_of(L, section, key);
    char *w = o->kind == CONF_ORIGIN_DEFAULT ? conf_asprintf("default (%s)", note_default)
                                             : conf_asprintf("%s (%s)", o->where, note);
    if (!w)
        return nomem(L);
    free(o->where);
    o->where = w;
    return 0;
}

/* The mail keys go together: a server needs a sender and recipients, and they need a server. */
static int check_notify(struct conf_loader *L)
{
    const struct config *c = L->cfg;
    bool smtp = c->notify.smtp_url[0];
    const char *missing = !smtp                      ? NULL
                          : !c->notify.mail_from[0]  ? "mail_from"
                          : !c->notify.mail_to_count ? "mail_to"
                                                     : NULL;
    if (missing)
        return ERR(L, "InvalidConfig",
                   "[notify] smtp_url is set (%s) but [notify] %s is not: e-mail notices need a "
                   "sender (mail_from) and recipients (mail_to)",
                   origin_of(L, "notify", "smtp_url")->where, missing);
    static const char *const needs_server[] = {"mail_from", "mail_to", "smtp_user",
                                               "smtp_password_file"};
    for (size_t i = 0; !smtp && i < 4; i++) {
        const struct conf_origin *o = origin_of(L, "notify", needs_server[i]);
        if (o->kind != CONF_ORIGIN_DEFAULT)
            return ERR(L, "InvalidConfig",
                       "%s is set but [notify] smtp_url is not: set smtp_url to the mail server "
                       "(smtp://host:587) or remove %s",
                       o->label, needs_server[i]);
    }
    return 0;
}
static int finalize_gateway(struct conf_loader *L)
{
    struct config *c = L->cfg;
    if (c->gateway.resize_workers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        /* one more than the CPUs: a worker also waits for its renditions' uploads */
        c->gateway.resize_workers = n < 1 ? 2 : n >= 64 ? 64 : (unsigned)n + 1;
        if (origin_note(L, "gateway", "resize_workers", "0 = the online CPUs + 1",
                        "the online CPUs + 1") != 0)
            return -1;
    }
    if (!c->gateway.cache_dir[0]) {
        const char *xdg = env_get(L, "XDG_CACHE_HOME");
        const char *how;
        char *dir;
        if (xdg && xdg[0] == '/') { /* a relative one is ignored, as the XDG spec says */
            how = "$XDG_CACHE_HOME/s3imgfs";
            dir = conf_asprintf("%s/s3imgfs", xdg);
        } else if (L->home) {
            how = "~/.cache/s3imgfs";
            dir = conf_asprintf("%s/.cache/s3imgfs", L->home);
        } else {
            return ERR(L, "InvalidConfig",
                       "[gateway] cache_dir (%s) has no default here: neither XDG_CACHE_HOME nor "
                       "the home directory is known; set cache_dir to an absolute path",
                       origin_of(L, "gateway", "cache_dir")->where);
        }
        if (!dir)
            return nomem(L);
        char *abs = conf_path_absolute(dir, NULL);
        int e = errno;
        free(dir);
        if (!abs && e == ENOMEM)
            return nomem(L);
        if (!abs)
            return ERR(L, "InvalidConfig", "[gateway] cache_dir (%s): cannot make %s absolute: %s",
                       origin_of(L, "gateway", "cache_dir")->where, how, strerror(e));
        free((char *)c->gateway.cache_dir);
        c->gateway.cache_dir = abs;
        char note[64];
        snprintf(note, sizeof(note), "empty = %s", how);
        if (origin_note(L, "gateway", "cache_dir", note, how) != 0)
            return -1;
    }
    if (check_notify(L) != 0)
        return -1;
    if (c->gateway.part_size_mb > c->gateway.multipart_threshold_mb)
        return ERR(L, "InvalidConfig",
                   "%s = %u: a part must not be larger than the multipart threshold, but "
                   "[gateway] multipart_threshold_mb is %u (%s)",
                   origin_of(L, "gateway", "part_size_mb")->label, c->gateway.part_size_mb,
                   c->gateway.multipart_threshold_mb,
                   origin_of(L, "gateway", "multipart_threshold_mb")->where);
    return 0;
}

static int finalize(struct conf_loader *L)
{
    struct config *c = L->cfg;
    if (!c->s3.endpoint[0]) {
        bool china = strncmp(c->s3.region, "cn-", 3) == 0;
        char *e = conf_asprintf("https://s3.%s.amazonaws.com%s", c->s3.region, china ? ".cn" : "");
        char *w = conf_asprintf("default (for region %s)", c->s3.region);
        struct conf_origin *o = origin_of(L, "s3", "endpoint");
        if (!e || !w) {
            free(e);
            free(w);
            return nomem(L);
        }
        free((char *)c->s3.endpoint);
        c->s3.endpoint = e;
        free(o->where);
        o->where = w;
    }
    if (c->s3.sse_kms_key_id[0] && c->s3.sse != CONF_SSE_KMS)
        return ERR(L, "InvalidConfig",
                   "%s = %s: a KMS key is only used with sse = aws:kms, but [s3] sse is %s (%s)",
                   origin_of(L, "s3", "sse_kms_key_id")->label, c->s3.sse_kms_key_id,
                   conf_sse_name(c->s3.sse), origin_of(L, "s3", "sse")->where);
    struct conf_size *sizes = (struct conf_size *)c->resize.sizes;
    for (size_t i = 0; i < c->resize.size_count; i++) {
        if (!sizes[i].format_set)
            sizes[i].format = c->resize.format;
        if (!sizes[i].quality_set)
            sizes[i].quality = c->resize.quality;
    }
    if (finalize_gateway(L) != 0)
        return -1;
    return check_overlap(L);
}

/* ------------------------------------------------------------------------------------------ */

static char *find_home(struct conf_loader *L)
{
    if (L->opts->home)
        return conf_strdup(L->opts->home);
    const char *h = env_get(L, "HOME");
    if (h)
        return conf_strdup(h);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir)
        return conf_strdup(res->pw_dir);
    return NULL;
}

static int load_all(struct conf_loader *L)
{
    const struct conf_options *o = L->opts;
    for (size_t i = 0; i < conf_row_count; i++)
        if (apply_default(L, &conf_rows[i]) != 0)
            return -1;

    char *path = NULL;
    if (o->path) {
        path = conf_strdup(o->path);
    } else {
        const char *xdg = env_get(L, "XDG_CONFIG_HOME");
        if (xdg && xdg[0] == '/')
            path = conf_asprintf("%s/s3imgfs/config.ini", xdg);
        else if (L->home)
            path = conf_asprintf("%s/.config/s3imgfs/config.ini", L->home);
        else
            path = conf_strdup("");
    }
    if (!path)
        return nomem(L);
    int rc = path[0] || o->path ? load_file(L, path, o->path != NULL) : 0;
    free(path);
    if (rc != 0)
        return -1;

    const char *origin = o->override_origin ? o->override_origin : "option -o";
    for (size_t i = 0; i < o->override_count; i++)
        if (o->overrides[i] && apply_override(L, origin, o->overrides[i]) != 0)
            return -1;

    if (resolve_from_env(L, conf_row_find("s3", "profile"), NULL, NULL) != 0)
        return -1;
    const char *profile = L->cfg->s3.profile;

    struct conf_aws_profile credp, cfgp;
    memset(&credp, 0, sizeof(credp));
    memset(&cfgp, 0, sizeof(cfgp));
    char *cred_path = aws_file_path(L, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    char *cfg_path = aws_file_path(L, "AWS_CONFIG_FILE", "config");
    char err[512] = "";
    if (!cred_path || !cfg_path) {
        rc = nomem(L);
    } else if (conf_aws_profile_read(cred_path, false, profile, &credp, err, sizeof(err)) != 0 ||
               conf_aws_profile_read(cfg_path, true, profile, &cfgp, err, sizeof(err)) != 0) {
        rc = ERR(L, "InvalidConfig", "%s", err);
    } else if (strcmp(profile, "default") != 0 && !credp.found && !cfgp.found) {
        rc = ERR(L, "InvalidConfig", "the AWS profile '%s' (%s) is in neither %s nor %s", profile,
                 origin_of(L, "s3", "profile")->where, cred_path, cfg_path);
    }
    for (size_t i = 0; rc == 0 && i < conf_row_count; i++)
        if (!conf_rows[i].cred && env_backed(&conf_rows[i]))
            rc = resolve_from_env(L, &conf_rows[i], &cfgp, profile);
    if (rc == 0 && !o->no_credentials)
        rc = resolve_credentials(L, &credp, &cfgp, profile);
    conf_aws_profile_clear(&credp);
    conf_aws_profile_clear(&cfgp);
    free(cred_path);
    free(cfg_path);
    if (rc != 0)
        return -1;
    return finalize(L);
}

struct config *conf_load(const struct conf_options *opts, struct s3_error *err)
{
    static const struct conf_options none;
    struct s3_error e;
    s3_error_clear(&e);
    struct conf_loader L;
    memset(&L, 0, sizeof(L));
    L.opts = opts ? opts : &none;
    L.err = &e;
    L.getenv = L.opts->getenv ? L.opts->getenv : default_getenv;
    L.getenv_ctx = L.opts->getenv_ctx;

    int rc = -1;
    L.cfg = calloc(1, sizeof(*L.cfg));
    if (L.cfg)
        L.cfg->priv = calloc(1, sizeof(*L.cfg->priv));
    if (L.cfg && L.cfg->priv)
        L.cfg->priv->origins = calloc(conf_row_count, sizeof(struct conf_origin));
    L.file_lines = calloc(conf_row_count, sizeof(int));
    if (!L.cfg || !L.cfg->priv || !L.cfg->priv->origins || !L.file_lines) {
        nomem(&L);
    } else {
        L.home = find_home(&L);
        rc = load_all(&L);
    }

    for (int i = 0; i < CONF_CRED_COUNT; i++)
        conf_free_secret(L.ini_creds[i]);
    free(L.file_lines);
    free(L.home);
    free(L.file_dir);
    if (rc != 0) {
        conf_free(L.cfg);
        if (err)
            *err = e;
        return NULL;
    }
    return L.cfg;
}

void conf_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < conf_row_count; i++)
        if (conf_rows[i].kind == CONF_ROW_STRING || conf_rows[i].kind == CONF_ROW_GLOBS)
            free(*(void **)((char *)cfg + conf_rows[i].offset));
    free((void *)cfg->resize.sizes);
    if (cfg->priv) {
        if (cfg->priv->origins) {
            for (size_t i = 0; i < conf_row_count; i++) {
                free(cfg->priv->origins[i].where);
                free(cfg->priv->origins[i].label);
            }
        }
        free(cfg->priv->origins);
        free(cfg->priv->config_path);
        free(cfg->priv);
    }
    conf_credentials_free(cfg->credentials);
    free(cfg);
}

const char *conf_origin(const struct config *cfg, const char *section, const char *key)
{
    const struct conf_row *r = conf_row_find(section, key);
    if (!cfg || !r)
        return NULL;
    return cfg->priv->origins[conf_row_index(r)].where;
}
