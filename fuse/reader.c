/* reader: reads of an object not held locally. Sequential reads fetch a growing window ahead
 * (128 KiB doubling up to read_ahead_kb) with ranged GETs, and once a read is sequential the
 * next window is fetched in the background while the current one is read, so `cat` of a large
 * file starts at once and streams at the network's speed. Random reads fetch what they need
 * plus a little. Memory: two windows per open file at most. */
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_WINDOW (128u * 1024)

struct window {
    char *buf;
    size_t cap;
    uint64_t start;
    size_t len;
};

struct fs_reader {
    pthread_mutex_t lock;
    struct s3client *s3;
    char *bucket, *key;
    uint64_t size; /* as known at open; UINT64_MAX = unknown */
    size_t max_window, window;
    uint64_t next_sequential;
    struct window cur;

    /* the background fetch of the window after cur */
    struct window ahead;
    pthread_t thread;
    uint64_t ahead_start; /* where it starts (set before the thread, read by the reader) */
    bool ahead_running;
    bool ahead_enabled;
    int ahead_rc;
};

struct fs_reader *fs_reader_new(struct s3client *s3, const char *bucket, const char *key,
                                uint64_t size, size_t max_window)
{
    struct fs_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    if (!(r->bucket = strdup(bucket)) || !(r->key = strdup(key))) {
        fs_reader_free(r);
        return NULL;
    }
    r->s3 = s3;
    r->size = size;
    r->ahead_enabled = max_window > 0; /* read_ahead_kb = 0: nothing fetched in the background */
    r->max_window = max_window < MIN_WINDOW ? MIN_WINDOW : max_window;
    r->window = MIN_WINDOW;
    return r;
}

static void join_ahead(struct fs_reader *r)
{
    if (r->ahead_running) {
        pthread_join(r->thread, NULL);
        r->ahead_running = false;
    }
}

void fs_reader_free(struct fs_reader *r)
{
    if (!r)
        return;
    join_ahead(r);
    pthread_mutex_destroy(&r->lock);
    free(r->bucket);
    free(r->key);
    free(r->cur.buf);
    free(r->ahead.buf);
    free(r);
}

struct sink_ctx {
    struct window *w;
    size_t want;
};

static int to_window(void *ctx, uint64_t offset, const void *data, size_t len)
{
    struct sink_ctx *s = ctx;
    if (offset + len > s->want)
        return -1;
    memcpy(s->w->buf + offset, data, len);
    if (offset + len > s->w->len)
        s->w->len = (size_t)(offset + len);
    return 0;
}

static int errno_of(const struct s3_error *err)
{
    if (strcmp(err->code, "NoSuchKey") == 0)
        return -ENOENT;
    if (strcmp(err->code, "AccessDenied") == 0)
        return -EACCES;
    return -EIO;
}

/* Fills w with [offset, offset + want): 0, or -errno. *size gets the object's size. */
static int fetch(struct s3client *s3, const char *bucket, const char *key, struct window *w,
                 uint64_t offset, size_t want, uint64_t *size)
{
    if (want > w->cap) {
        char *buf = realloc(w->buf, want);
        if (!buf)
            return -ENOMEM;
        w->buf = buf;
        w->cap = want;
    }
    w->start = offset;
    w->len = 0;
    struct sink_ctx s = {w, want};
    struct s3_get_options opts = {.ranged = true, .range_start = offset, .range_length = want};
    struct s3_error err = {0};
    struct s3_object_info info = {0};
    int rc = s3_get_object(s3, bucket, key, &opts, to_window, &s, &info, &err);
    if (rc == 0)
        *size = info.size;
    s3_object_info_clear(&info);
    if (rc != 0 && strcmp(err.code, "InvalidRange") == 0) {
        *size = offset; /* nothing at or after offset */
        return 0;
    }
    return rc == 0 ? 0 : errno_of(&err);
}

/* The background fetch touches only r->ahead and reads fields that do not change while it
 * runs (bucket, key, s3); the size it learns is kept in ahead_size. */
struct ahead_job {
    struct fs_reader *r;
    uint64_t offset;
    size_t want;
    uint64_t size;
};

static void *fetch_ahead(void *arg)
{
    struct ahead_job *j = arg;
    struct fs_reader *r = j->r;
    r->ahead_rc = fetch(r->s3, r->bucket, r->key, &r->ahead, j->offset, j->want, &j->size);
    free(j);
    return NULL;
}

static void start_ahead(struct fs_reader *r)
{
    uint64_t offset = r->cur.start + r->cur.len;
    if (!r->ahead_enabled || r->ahead_running || r->size == UINT64_MAX || offset >= r->size)
        return;
    size_t want = r->window;
    if (offset + want > r->size)
        want = (size_t)(r->size - offset);
    struct ahead_job *j = malloc(sizeof(*j));
    if (!j)
        return;
    *j = (struct ahead_job){r, offset, want, r->size};
    r->ahead_start = offset;
    if (pthread_create(&r->thread, NULL, fetch_ahead, j) != 0) {
        free(j);
        return;
    }
    r->ahead_running = true;
}

/* Makes cur hold `offset`: the background window when it starts there, else a new fetch. */
static int load(struct fs_reader *r, uint64_t offset, size_t len)
{
    bool sequential = offset == r->next_sequential;
    if (r->ahead_running && sequential && offset == r->ahead_start) {
        join_ahead(r);
        if (r->ahead_rc == 0) {
            struct window t = r->cur;
            r->cur = r->ahead;
            r->ahead = t;
            return 0;
        }
    }
    join_ahead(r); /* a random read: the window ahead is of no use */
    r->window =
        sequential ? (r->window * 2 > r->max_window ? r->max_window : r->window * 2) : MIN_WINDOW;
    size_t want = len > r->window ? len : r->window;
    if (r->size != UINT64_MAX && offset + want > r->size)
        want = (size_t)(r->size - offset);
    return fetch(r->s3, r->bucket, r->key, &r->cur, offset, want, &r->size);
}

int fs_reader_read(struct fs_reader *r, char *buf, size_t len, uint64_t offset)
{
    pthread_mutex_lock(&r->lock);
    int rc = 0;
    if (offset >= r->size)
        goto out;
    struct window *w = &r->cur;
    bool hit = offset >= w->start && offset + len <= w->start + w->len;
    bool at_end = offset >= w->start && offset < w->start + w->len && w->start + w->len >= r->size;
    if (!hit && !at_end && (rc = load(r, offset, len)) != 0)
        goto out;
    if (offset < w->start || offset >= w->start + w->len)
        goto out; /* past the end */
    size_t avail = (size_t)(w->start + w->len - offset);
    rc = (int)(len < avail ? len : avail);
    memcpy(buf, w->buf + (offset - w->start), (size_t)rc);
    if (offset == r->next_sequential && r->window == r->max_window)
        start_ahead(r);
    r->next_sequential = offset + (uint64_t)rc;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}
