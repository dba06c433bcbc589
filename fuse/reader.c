/* reader: reads of an object not held locally. Sequential reads fetch a growing window ahead
 * (128 KiB doubling up to read_ahead_kb) with ranged GETs, so `cat` of a large file starts at
 * once and streams; random reads fetch what they need plus a little. One buffer per open file:
 * memory is bounded by read_ahead_kb per open file. */
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MIN_WINDOW (128u * 1024)

struct fs_reader {
    pthread_mutex_t lock;
    struct s3client *s3;
    char *bucket, *key;
    uint64_t size; /* as known at open; UINT64_MAX = unknown */
    char *buf;
    size_t cap, max_window, window;
    uint64_t buf_start;
    size_t buf_len;
    uint64_t next_sequential;
};

struct fs_reader *fs_reader_new(struct s3client *s3, const char *bucket, const char *key,
                                uint64_t size, size_t max_window)
{
    struct fs_reader *r = calloc(1, sizeof(*r));
    if (!r || !(r->bucket = strdup(bucket)) || !(r->key = strdup(key))) {
        fs_reader_free(r);
        return NULL;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->s3 = s3;
    r->size = size;
    r->max_window = max_window < MIN_WINDOW ? MIN_WINDOW : max_window;
    r->window = MIN_WINDOW;
    return r;
}

void fs_reader_free(struct fs_reader *r)
{
    if (!r)
        return;
    if (r->key)
        pthread_mutex_destroy(&r->lock);
    free(r->bucket);
    free(r->key);
    free(r->buf);
    free(r);
}

struct sink_ctx {
    struct fs_reader *r;
    size_t want;
};

static int to_buffer(void *ctx, uint64_t offset, const void *data, size_t len)
{
    struct sink_ctx *s = ctx;
    if (offset + len > s->want)
        return -1;
    memcpy(s->r->buf + offset, data, len);
    if (offset + len > s->r->buf_len)
        s->r->buf_len = (size_t)(offset + len);
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

/* Fills the buffer with [offset, offset + want). Returns 0 or -errno. */
static int fetch(struct fs_reader *r, uint64_t offset, size_t want)
{
    if (want > r->cap) {
        char *buf = realloc(r->buf, want);
        if (!buf)
            return -ENOMEM;
        r->buf = buf;
        r->cap = want;
    }
    r->buf_start = offset;
    r->buf_len = 0;
    struct sink_ctx s = {r, want};
    struct s3_get_options opts = {.ranged = true, .range_start = offset, .range_length = want};
    struct s3_error err = {0};
    struct s3_object_info info = {0};
    int rc = s3_get_object(r->s3, r->bucket, r->key, &opts, to_buffer, &s, &info, &err);
    if (rc == 0)
        r->size = info.size;
    s3_object_info_clear(&info);
    if (rc != 0 && strcmp(err.code, "InvalidRange") == 0) {
        r->size = offset; /* nothing at or after offset */
        return 0;
    }
    return rc == 0 ? 0 : errno_of(&err);
}

int fs_reader_read(struct fs_reader *r, char *buf, size_t len, uint64_t offset)
{
    pthread_mutex_lock(&r->lock);
    int rc = 0;
    if (offset >= r->size)
        goto out;
    bool hit = offset >= r->buf_start && offset + len <= r->buf_start + r->buf_len;
    bool at_end = offset >= r->buf_start && r->buf_start + r->buf_len >= r->size;
    if (!hit && !at_end) {
        if (offset == r->next_sequential)
            r->window = r->window * 2 > r->max_window ? r->max_window : r->window * 2;
        else
            r->window = MIN_WINDOW;
        size_t want = len > r->window ? len : r->window;
        if (r->size != UINT64_MAX && offset + want > r->size)
            want = (size_t)(r->size - offset);
        if ((rc = fetch(r, offset, want)) != 0)
            goto out;
    }
    if (offset < r->buf_start || offset >= r->buf_start + r->buf_len)
        goto out;
    size_t avail = (size_t)(r->buf_start + r->buf_len - offset);
    rc = (int)(len < avail ? len : avail);
    memcpy(buf, r->buf + (offset - r->buf_start), (size_t)rc);
    r->next_sequential = offset + (uint64_t)rc;
out:
    pthread_mutex_unlock(&r->lock);
    return rc;
}
