/* The AWS shared files: ~/.aws/credentials ([NAME] sections) and ~/.aws/config
 * ([profile NAME] sections, except [default]), read with inih like our own file. Keys are
 * case-insensitive there (as in Python's configparser, which the AWS CLI uses). */
#include "conf_internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct aws_ctx {
    struct conf_aws_profile *p;
    const char *profile;
    bool nomem;
};

static bool section_matches(bool config_style, const char *section, const char *profile)
{
    if (!config_style)
        return strcmp(section, profile) == 0;
    if (strcmp(profile, "default") == 0 && strcmp(section, "default") == 0)
        return true;
    if (strncmp(section, "profile", 7) == 0 && isspace((unsigned char)section[7])) {
        const char *n = section + 7;
        while (isspace((unsigned char)*n))
            n++;
        return strcmp(n, profile) == 0;
    }
    return false;
}

static int on_section(void *vctx, const char *section, int line)
{
    struct aws_ctx *c = vctx;
    if (!c->p->found && section_matches(c->p->config_style, section, c->profile)) {
        c->p->found = true;
        c->p->section_line = line;
    }
    return 0;
}

static int on_key(void *vctx, const char *section, const char *key, const char *value, int line)
{
    struct aws_ctx *c = vctx;
    struct conf_aws_profile *p = c->p;
    if (!section_matches(p->config_style, section, c->profile))
        return 0;
    char *k = conf_strdup(key);
    char *v = conf_strdup(value);
    if (!k || !v) {
        free(k);
        free(v);
        c->nomem = true;
        return -1;
    }
    for (char *q = k; *q; q++)
        *q = (char)tolower((unsigned char)*q);
    for (size_t i = 0; i < p->count; i++) {
        if (strcmp(p->kv[i].key, k) == 0) { /* the last one wins */
            free(k);
            conf_free_secret(p->kv[i].value);
            p->kv[i].value = v;
            p->kv[i].line = line;
            return 0;
        }
    }
    struct conf_kv *kv = realloc(p->kv, (p->count + 1) * sizeof(*kv));
    if (!kv) {
        free(k);
        conf_free_secret(v);
        c->nomem = true;
        return -1;
    }
    p->kv = kv;
    p->kv[p->count++] = (struct conf_kv){k, v, line};
    return 0;
}

int conf_aws_profile_read(const char *path, bool config_style, const char *profile,
                          struct conf_aws_profile *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->config_style = config_style;
    out->path = conf_strdup(path);
    if (!out->path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file", path);
        fclose(f);
        return -1;
    }
    conf_file_id_from_stat(&st, &out->id);
    out->file_exists = true;
    struct aws_ctx c = {out, profile, false};
    int rc = conf_ini_parse(f, path, CONF_INI_AWS, on_section, on_key, &c, err, errlen);
    fclose(f);
    if (c.nomem) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return rc;
}

const struct conf_kv *conf_aws_profile_get(const struct conf_aws_profile *p, const char *key)
{
    for (size_t i = 0; i < p->count; i++)
        if (strcmp(p->kv[i].key, key) == 0 && p->kv[i].value[0])
            return &p->kv[i];
    return NULL;
}

void conf_aws_profile_clear(struct conf_aws_profile *p)
{
    for (size_t i = 0; i < p->count; i++) {
        free(p->kv[i].key);
        conf_free_secret(p->kv[i].value);
    }
    free(p->kv);
    free(p->path);
    memset(p, 0, sizeof(*p));
}

void conf_aws_section_name(const struct conf_aws_profile *p, const char *profile, char *buf,
                           size_t len)
{
    if (p->config_style && strcmp(profile, "default") != 0)
        snprintf(buf, len, "[profile %s]", profile);
    else
        snprintf(buf, len, "[%s]", profile);
}

static int copy_secret(char *dst, size_t cap, const struct conf_kv *kv,
                       const struct conf_aws_profile *p, char *err, size_t errlen)
{
    size_t n = strlen(kv->value);
    if (n >= cap) {
        snprintf(err, errlen, "%s:%d: %s is too long (at most %zu characters)", p->path, kv->line,
                 kv->key, cap - 1);
        return -1;
    }
    memcpy(dst, kv->value, n + 1);
    return 0;
}

int conf_aws_profile_credentials(const struct conf_aws_profile *p, const char *profile,
                                 struct aws_credentials *out, char *source, size_t slen, char *err,
                                 size_t errlen)
{
    const struct conf_kv *ak = conf_aws_profile_get(p, "aws_access_key_id");
    const struct conf_kv *sk = conf_aws_profile_get(p, "aws_secret_access_key");
    const struct conf_kv *tok = conf_aws_profile_get(p, "aws_session_token");
    if (!ak && !sk)
        return 0;
    char sect[300];
    conf_aws_section_name(p, profile, sect, sizeof(sect));
    if (!ak || !sk) {
        const struct conf_kv *have = ak ? ak : sk;
        snprintf(err, errlen, "%s:%d: %s has %s but no %s; set both", p->path, have->line, sect,
                 have->key, ak ? "aws_secret_access_key" : "aws_access_key_id");
        return -1;
    }
    struct aws_credentials c;
    memset(&c, 0, sizeof(c));
    if (copy_secret(c.access_key_id, sizeof(c.access_key_id), ak, p, err, errlen) != 0 ||
        copy_secret(c.secret_access_key, sizeof(c.secret_access_key), sk, p, err, errlen) != 0 ||
        (tok && copy_secret(c.session_token, sizeof(c.session_token), tok, p, err, errlen) != 0)) {
        explicit_bzero(&c, sizeof(c));
        return -1;
    }
    *out = c;
    explicit_bzero(&c, sizeof(c));
    snprintf(source, slen, "%s:%d %s", p->path, ak->line, sect);
    return 1;
}
