/* control: the /.s3imgfs area, the gateway's own files.
 *   status  read-only: the queue as JSON (a new snapshot at each open).
 *   metrics read-only: counters, resize times and queue gauges as Prometheus text (idem).
 *   retry   write-only: each line names a path in the mount ("" or "/" for all) whose failed
 *           uploads are queued again (`s3imgfs retry`); the result shows in status
 *           ("requeued"). Lines are acted on at close, so close() reports a bad path. */
#include "fs_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define COMMAND_MAX 65536 /* bytes a retry file may be given per open */

static const char *const names[] = {"status", "retry", "metrics"};
enum control_name { CONTROL_STATUS, CONTROL_RETRY, CONTROL_METRICS, CONTROL_NONE };

/* A snapshot of a read-only file; malloc'd, NULL on ENOMEM. */
static char *snapshot(struct fs *fs, enum control_name name)
{
    if (!fs->gw)
        return strdup(name == CONTROL_STATUS ? "{}\n" : "");
    return name == CONTROL_STATUS ? gateway_status_json(fs->gw) : gateway_metrics_text(fs->gw);
}

struct control_file {
    enum control_name name;
    char *text; /* status: the snapshot; retry: what was written */
    size_t len;
};

static enum control_name name_of(const struct fs_path *p)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(p->key, names[i]) == 0)
            return (enum control_name)i;
    return CONTROL_NONE;
}

int control_lookup(struct fs *fs, const struct fs_path *p, struct fs_attr *a, mode_t *mode)
{
    clock_gettime(CLOCK_REALTIME, &a->mtime);
    a->exists = true;
    if (p->is_root) {
        a->is_dir = true;
        return 0;
    }
    switch (name_of(p)) {
    case CONTROL_STATUS:
    case CONTROL_METRICS: {
        char *text = snapshot(fs, name_of(p));
        a->size = text ? strlen(text) : 0;
        free(text);
        *mode = 0444;
        return 0;
    }
    case CONTROL_RETRY:
        a->size = 0;
        *mode = 0200;
        return 0;
    default:
        return -ENOENT;
    }
}

void control_list(void *buf, fuse_fill_dir_t filler)
{
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        filler(buf, names[i], NULL, 0, 0);
}

int control_open(struct fs *fs, const struct fs_path *p, bool write, struct control_file **out)
{
    if (p->is_root)
        return -EISDIR;
    enum control_name name = name_of(p);
    if (name == CONTROL_NONE)
        return -ENOENT;
    if (write != (name == CONTROL_RETRY))
        return -EACCES;
    struct control_file *f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->name = name;
    if (name != CONTROL_RETRY) {
        f->text = snapshot(fs, name);
        if (!f->text) {
            free(f);
            return -ENOMEM;
        }
        f->len = strlen(f->text);
    }
    *out = f;
    return 0;
}

int control_read(struct control_file *f, char *buf, size_t size, off_t offset)
{
    if (f->name == CONTROL_RETRY)
        return -EBADF;
    if ((uint64_t)offset >= f->len)
        return 0;
    size_t n = f->len - (size_t)offset < size ? f->len - (size_t)offset : size;
    memcpy(buf, f->text + offset, n);
    return (int)n;
}

int control_write(struct control_file *f, const char *buf, size_t size, off_t offset)
{
    (void)offset; /* a command is what was written, in order */
    if (f->name != CONTROL_RETRY)
        return -EBADF;
    if (f->len + size > COMMAND_MAX)
        return -EFBIG;
    char *text = realloc(f->text, f->len + size + 1);
    if (!text)
        return -ENOMEM;
    memcpy(text + f->len, buf, size);
    f->text = text;
    f->len += size;
    f->text[f->len] = '\0';
    return (int)size;
}

/* One line of the retry file: a path in the mount, with or without the leading '/'. */
static int retry_path(struct fs *fs, const char *line)
{
    char *path = NULL;
    if (asprintf(&path, "/%s", line[0] == '/' ? line + 1 : line) < 0)
        return -ENOMEM;
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        path[--len] = '\0';
    struct fs_path p;
    int rc = fs_path_parse(fs->cfg, path, &p);
    if (rc == 0 && p.area != AREA_SOURCE)
        rc = -EINVAL; /* renditions and the control files are never queued */
    if (rc == 0) {
        size_t n =
            p.is_root ? gateway_retry(fs->gw, p.prefix, true)
                      : gateway_retry(fs->gw, p.key, false) + gateway_retry(fs->gw, p.prefix, true);
        log_info("retry %s: %zu file%s queued again", path, n, n == 1 ? "" : "s");
        fs_path_clear(&p);
    } else {
        log_warn("retry %s: not a path in the source area (%s)", path, strerror(-rc));
    }
    free(path);
    return rc;
}

int control_flush(struct fs *fs, struct control_file *f)
{
    if (f->name != CONTROL_RETRY || !f->text || !fs->gw)
        return 0;
    int rc = 0;
    char *save = NULL;
    /* an empty write ("" = everything) has no line: strtok_r would find none */
    if (strspn(f->text, "\n") == f->len)
        rc = retry_path(fs, "");
    for (char *line = strtok_r(f->text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int r = retry_path(fs, line);
        if (r != 0)
            rc = r;
    }
    free(f->text);
    f->text = NULL; /* acted on once, also when close() follows a flush of a dup */
    f->len = 0;
    return rc;
}

void control_close(struct control_file *f)
{
    if (!f)
        return;
    free(f->text);
    free(f);
}
