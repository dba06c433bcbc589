/* The credentials provider handed to the S3 client.
 *
 * Credentials from the environment never change. Credentials from a file (the INI file's [s3]
 * keys, or a profile of the AWS shared files) are checked on every call: a stat of the file(s),
 * compared with the identity (inode, size, mtime, ctime) they had when last read; when it
 * differs the file is read again. If the new contents cannot be used (being rewritten, no keys,
 * unreadable) the previous credentials stay in use, and that state of the file is not retried
 * until it changes again. */
#include "conf_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct conf_credentials {
    pthread_mutex_t lock;
    enum conf_cred_kind kind;
    struct aws_credentials creds;
    char *path[2];
    char *profile;
    struct conf_file_id id[2];     /* of the files the credentials were read from */
    struct conf_file_id failed[2]; /* of the files when a re-read last failed */
    bool has_failed;
};

static void destroy(struct conf_credentials *c)
{
    free(c->path[0]);
    free(c->path[1]);
    free(c->profile);
    explicit_bzero(&c->creds, sizeof(c->creds));
    free(c);
}

/* Paths are kept absolute: a daemon may change its working directory after loading. */
static char *absolute(const char *path)
{
    char cwd[4096];
    if (path[0] == '/' || path[0] == '\0' || !getcwd(cwd, sizeof(cwd)))
        return conf_strdup(path);
    return conf_asprintf("%s/%s", cwd, path);
}

struct conf_credentials *conf_credentials_new(enum conf_cred_kind kind,
                                              const struct aws_credentials *creds,
                                              const char *path1, const char *path2,
                                              const char *profile, const struct conf_file_id *id1,
                                              const struct conf_file_id *id2)
{
    struct conf_credentials *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->kind = kind;
    c->creds = *creds;
    const char *paths[2] = {path1, path2};
    const struct conf_file_id *ids[2] = {id1, id2};
    bool ok = !profile || (c->profile = conf_strdup(profile));
    for (int i = 0; i < 2; i++) {
        if (paths[i] && ok)
            ok = (c->path[i] = absolute(paths[i])) != NULL;
        if (ids[i])
            c->id[i] = *ids[i];
    }
    if (!ok || pthread_mutex_init(&c->lock, NULL) != 0) {
        destroy(c);
        return NULL;
    }
    return c;
}

void conf_credentials_free(struct conf_credentials *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    destroy(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Re-reading the INI file's credential keys                                                    */

struct ini_creds {
    char *v[CONF_CRED_COUNT];
    bool nomem;
};

static int ini_creds_key(void *ctx, const char *section, const char *key, const char *value,
                         int line)
{
    (void)line;
    static const char *const keys[] = {"access_key_id", "secret_access_key", "session_token"};
    struct ini_creds *ic = ctx;
    if (strcmp(section, "s3") != 0)
        return 0;
    for (int i = 0; i < CONF_CRED_COUNT; i++) {
        if (strcmp(key, keys[i]) == 0 && *value) {
            conf_free_secret(ic->v[i]);
            if (!(ic->v[i] = conf_strdup(value))) {
                ic->nomem = true;
                return -1;
            }
        }
    }
    return 0;
}

int conf_ini_credentials_read(const char *path, struct aws_credentials *out,
                              struct conf_file_id *id, char *err, size_t errlen)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (st.st_mode & (S_IRGRP | S_IROTH))) {
        snprintf(err, errlen, "%s is not a regular file that only its owner can read", path);
        fclose(f);
        return -1;
    }
    conf_file_id_from_stat(&st, id);
    struct ini_creds ic;
    memset(&ic, 0, sizeof(ic));
    int rc = conf_ini_parse(f, path, CONF_INI_STRICT, NULL, ini_creds_key, &ic, err, errlen);
    fclose(f);
    if (rc == 0) {
        struct aws_credentials c;
        memset(&c, 0, sizeof(c));
        const size_t caps[] = {sizeof(c.access_key_id), sizeof(c.secret_access_key),
                               sizeof(c.session_token)};
        char *dst[] = {c.access_key_id, c.secret_access_key, c.session_token};
        for (int i = 0; i < CONF_CRED_COUNT && rc == 0; i++) {
            if (ic.v[i] && strlen(ic.v[i]) >= caps[i])
                rc = -1;
            else if (ic.v[i])
                memcpy(dst[i], ic.v[i], strlen(ic.v[i]) + 1);
        }
        if (rc == 0 && ic.v[0] && ic.v[1]) {
            *out = c;
            rc = 1;
        } else {
            snprintf(err, errlen, "%s has no complete [s3] credentials", path);
            rc = rc ? rc : (ic.v[0] || ic.v[1] || ic.v[2] ? -1 : 0);
        }
        explicit_bzero(&c, sizeof(c));
    }
    for (int i = 0; i < CONF_CRED_COUNT; i++)
        conf_free_secret(ic.v[i]);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */

static int read_aws_files(struct conf_credentials *c, struct aws_credentials *out,
                          struct conf_file_id ids[2])
{
    struct conf_aws_profile p[2];
    char err[512], source[600];
    int rc = 0;
    memset(p, 0, sizeof(p));
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = conf_aws_profile_read(c->path[i], i == 1, c->profile, &p[i], err, sizeof(err));
    for (int i = 0; i < 2 && rc == 0; i++) {
        rc = conf_aws_profile_credentials(&p[i], c->profile, out, source, sizeof(source), err,
                                          sizeof(err));
        if (rc == 0)
            continue;
        break;
    }
    ids[0] = p[0].id;
    ids[1] = p[1].id;
    conf_aws_profile_clear(&p[0]);
    conf_aws_profile_clear(&p[1]);
    return rc;
}

/* Called with the lock held, when the files differ from what was read. */
static void reload(struct conf_credentials *c, const struct conf_file_id now[2])
{
    struct aws_credentials fresh;
    struct conf_file_id ids[2];
    char err[512];
    int rc;
    memset(&fresh, 0, sizeof(fresh));
    memset(ids, 0, sizeof(ids));
    if (c->kind == CONF_CREDS_INI)
        rc = conf_ini_credentials_read(c->path[0], &fresh, &ids[0], err, sizeof(err));
    else
        rc = read_aws_files(c, &fresh, ids);
    if (rc == 1) {
        c->creds = fresh;
        c->id[0] = ids[0];
        c->id[1] = ids[1];
        c->has_failed = false;
    } else {
        c->failed[0] = now[0];
        c->failed[1] = now[1];
        c->has_failed = true;
    }
    explicit_bzero(&fresh, sizeof(fresh));
}

int conf_credentials_provider(void *ctx, struct aws_credentials *out, struct s3_error *err)
{
    struct conf_credentials *c = ctx;
    if (!c || !out) {
        s3_error_set(err, 0, "InvalidArgument", false, "no credentials provider");
        return -1;
    }
    struct conf_file_id now[2];
    memset(now, 0, sizeof(now));
    int files = c->kind == CONF_CREDS_INI ? 1 : c->kind == CONF_CREDS_AWS_FILES ? 2 : 0;
    for (int i = 0; i < files; i++)
        conf_file_id_of_path(c->path[i], &now[i]);
    pthread_mutex_lock(&c->lock);
    if (files > 0) {
        bool same = conf_file_id_equal(&now[0], &c->id[0]) &&
                    (files < 2 || conf_file_id_equal(&now[1], &c->id[1]));
        bool known_bad = c->has_failed && conf_file_id_equal(&now[0], &c->failed[0]) &&
                         (files < 2 || conf_file_id_equal(&now[1], &c->failed[1]));
        if (!same && !known_bad)
            reload(c, now);
    }
    *out = c->creds;
    pthread_mutex_unlock(&c->lock);
    return 0;
}

void conf_credentials_describe(struct conf_credentials *c, char *masked_key, size_t mlen,
                               bool *has_token)
{
    pthread_mutex_lock(&c->lock);
    size_t n = strlen(c->creds.access_key_id);
    snprintf(masked_key, mlen, "****************%s", n > 8 ? c->creds.access_key_id + n - 4 : "");
    *has_token = c->creds.session_token[0] != '\0';
    pthread_mutex_unlock(&c->lock);
}
