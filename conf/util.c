/* Small helpers for conf/. */
#include "conf_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

char *conf_strdup(const char *s)
{
    return conf_strndup(s, strlen(s));
}

char *conf_strndup(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *conf_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = malloc((size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

void conf_free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

bool conf_str_ieq(const char *a, const char *b)
{
    return strcasecmp(a, b) == 0;
}

char *conf_path_absolute(const char *path, const char *basedir)
{
    char *cwd = NULL, *joined;
    if (path[0] == '/') {
        joined = conf_strdup(path);
    } else {
        bool base_abs = basedir && basedir[0] == '/';
        if (!base_abs && !(cwd = getcwd(NULL, 0)))
            return NULL;
        if (basedir && base_abs)
            joined = conf_asprintf("%s/%s", basedir, path);
        else if (basedir)
            joined = conf_asprintf("%s/%s/%s", cwd, basedir, path);
        else
            joined = conf_asprintf("%s/%s", cwd, path);
    }
    free(cwd);
    if (!joined) {
        errno = ENOMEM;
        return NULL;
    }
    /* Tidy in place, segment by segment. */
    char *out = joined;
    size_t o = 0;
    for (const char *p = joined; *p;) {
        while (*p == '/')
            p++;
        const char *seg = p;
        while (*p && *p != '/')
            p++;
        size_t n = (size_t)(p - seg);
        if (n == 0 || (n == 1 && seg[0] == '.'))
            continue;
        out[o++] = '/';
        memmove(out + o, seg, n);
        o += n;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

void conf_file_id_from_stat(const struct stat *st, struct conf_file_id *id)
{
    memset(id, 0, sizeof(*id));
    id->exists = true;
    id->dev = st->st_dev;
    id->ino = st->st_ino;
    id->size = st->st_size;
    id->mode = st->st_mode;
    id->mtime = st->st_mtim;
    id->ctime = st->st_ctim;
}

void conf_file_id_of_path(const char *path, struct conf_file_id *id)
{
    struct stat st;
    memset(id, 0, sizeof(*id));
    if (path && stat(path, &st) == 0)
        conf_file_id_from_stat(&st, id);
}

bool conf_file_id_equal(const struct conf_file_id *a, const struct conf_file_id *b)
{
    if (a->exists != b->exists)
        return false;
    if (!a->exists)
        return true;
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mode == b->mode &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}
