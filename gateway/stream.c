/* stream: the parts of a big file go up while it is still being written, so that most of its
 * upload is done when it is closed.
 *
 * Only for files uploaded under their own name (not temporaries or junk), from
 * multipart_threshold_mb on, and only while the writes move forward: a write into a part
 * already queued makes the stream stale, and its upload is dropped when the file's upload job
 * starts (the file then goes up the ordinary way). The upload is a multipart upload like the
 * job's own: its id is in the journal ("M" line), so it is aborted at the next mount when the
 * file was never closed, and resumed when it was. Nothing becomes visible in S3 before the
 * job completes it, after close() made the file durable. */
#include "gateway_internal.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AHEAD_MAX 8 /* ranges written ahead of the in-order prefix that are remembered */

struct gw_stream {
    /* [0, done_end) is written: writes may arrive out of order (several FUSE threads), so a
     * part goes up only once everything before its end was written. Ranges written beyond it
     * wait in `ahead` until the gap is filled. */
    uint64_t done_end;
    uint64_t ahead_start[AHEAD_MAX], ahead_end[AHEAD_MAX];
    unsigned ahead_count;
    int eligible; /* 0 not known yet, 1 streamed, -1 not (a temporary name, ...) */
    uint64_t part_size;
    int queued;        /* parts 1..queued are queued, being sent or sent */
    unsigned inflight; /* of those, queued or being sent now */
    bool creating;     /* a thread is creating the multipart upload */
    bool stale;        /* a queued part was written again: the stream is dropped */
    bool broken;       /* the upload could not be created: no more parts */
    mode_t mode;       /* the mode the upload was created with (its metadata) */
};

struct gw_part_task {
    struct gw_data *d; /* a reference */
    char *key;
    int part;
    struct gw_part_task *next;
};

void gw_stream_free(struct gw_stream *s)
{
    free(s);
}

/* Queues the parts of d written in full, up to part_parallel at a time. With the lock. */
static void queue_parts(struct gateway *gw, const char *key, struct gw_data *d)
{
    const struct config *cfg = gw->cfg;
    struct gw_stream *s = d->stream;
    if (s->stale || s->broken || s->eligible < 0 ||
        s->done_end < (uint64_t)cfg->gateway.multipart_threshold_mb << 20)
        return;
    while (s->inflight < cfg->gateway.part_parallel &&
           (uint64_t)(s->queued + 1) * s->part_size <= s->done_end) {
        struct gw_part_task *t = calloc(1, sizeof(*t));
        if (!t || !(t->key = strdup(key))) {
            free(t);
            return;
        }
        t->d = d;
        t->part = ++s->queued;
        d->refs++;
        s->inflight++;
        if (gw->parts_tail)
            gw->parts_tail->next = t;
        else
            gw->parts = t;
        gw->parts_tail = t;
        pthread_cond_signal(&gw->parts_cond);
    }
}

/* Extends the in-order prefix by [offset, end), or remembers the range for later. */
static void note_written(struct gw_stream *s, uint64_t offset, uint64_t end)
{
    if (offset > s->done_end) {
        for (unsigned i = 0; i < s->ahead_count; i++)
            if (offset <= s->ahead_end[i] && end >= s->ahead_start[i]) { /* overlaps: merged */
                s->ahead_start[i] = offset < s->ahead_start[i] ? offset : s->ahead_start[i];
                s->ahead_end[i] = end > s->ahead_end[i] ? end : s->ahead_end[i];
                return;
            }
        if (s->ahead_count < AHEAD_MAX) { /* else forgotten: the prefix stops there (safe) */
            s->ahead_start[s->ahead_count] = offset;
            s->ahead_end[s->ahead_count++] = end;
        }
        return;
    }
    if (end > s->done_end)
        s->done_end = end;
    for (unsigned i = 0; i < s->ahead_count;) {
        if (s->ahead_start[i] > s->done_end) {
            i++;
            continue;
        }
        if (s->ahead_end[i] > s->done_end)
            s->done_end = s->ahead_end[i];
        s->ahead_start[i] = s->ahead_start[--s->ahead_count];
        s->ahead_end[i] = s->ahead_end[s->ahead_count];
        i = 0; /* the prefix grew: earlier ranges may join now */
    }
}

/* Truncated to `size`: nothing beyond it counts as written. */
static void note_truncated(struct gw_stream *s, uint64_t size)
{
    if (s->done_end > size)
        s->done_end = size;
    for (unsigned i = 0; i < s->ahead_count;) {
        if (s->ahead_start[i] >= size) {
            s->ahead_start[i] = s->ahead_start[--s->ahead_count];
            s->ahead_end[i] = s->ahead_end[s->ahead_count];
            continue;
        }
        if (s->ahead_end[i] > size)
            s->ahead_end[i] = size;
        i++;
    }
}

void gw_stream_wrote(struct gateway *gw, const struct gw_entry *e, struct gw_data *d,
                     uint64_t offset, uint64_t end)
{
    struct gw_stream *s = d->stream;
    if (!s) {
        if (!(s = calloc(1, sizeof(*s))))
            return;
        s->part_size = (uint64_t)gw->cfg->gateway.part_size_mb << 20;
        d->stream = s;
    }
    if (s->stale)
        return;
    if (offset < (uint64_t)s->queued * s->part_size) {
        log_key_debug(e->key, NULL,
                      "written again at %llu, where parts were sent: uploaded at close instead",
                      (unsigned long long)offset);
        s->stale = true;
        return;
    }
    if (end == 0) {
        note_truncated(s, offset);
        return;
    }
    note_written(s, offset, end);
    if (s->done_end < (uint64_t)(s->queued + 1) * s->part_size ||
        s->done_end < (uint64_t)gw->cfg->gateway.multipart_threshold_mb << 20)
        return;
    if (s->eligible == 0) { /* decided once per version, when it first could stream */
        s->eligible = gw_may_stream(gw, e, d) ? 1 : -1;
        s->mode = e->mode;
    }
    queue_parts(gw, e->key, d);
}

/* Creates the multipart upload of a stream (content type from the first bytes; no mtime: it
 * is not known before close, and the object's Last-Modified stands for it). With the lock
 * held, released meanwhile. */
static bool create_upload(struct gateway *gw, const char *key, struct gw_data *d)
{
    struct gw_stream *s = d->stream;
    const struct config *cfg = gw->cfg;
    s->creating = true;
    pthread_mutex_unlock(&gw->lock);
    char *format = NULL, mode[16];
    snprintf(mode, sizeof(mode), "%o", (unsigned)s->mode);
    struct aws_header meta[] = {{"mode", mode}};
    struct s3_put_options put = {
        .content_type = gw_sniff(d->fd, key, &format),
        .metadata = meta,
        .metadata_count = 1,
        .sse = conf_sse_name(cfg->s3.sse),
        .sse_kms_key_id = cfg->s3.sse_kms_key_id[0] ? cfg->s3.sse_kms_key_id : NULL,
    };
    char *upload_id = NULL;
    struct s3_error err = {0};
    int rc = s3_multipart_create(gw->s3, cfg->s3.source_bucket, key, &put, &upload_id, &err);
    free(format);
    pthread_mutex_lock(&gw->lock);
    s->creating = false;
    pthread_cond_broadcast(&gw->stream_cond);
    if (rc != 0) {
        log_key_debug(key, NULL, "no parts sent while writing (%s)", err.message);
        s->broken = true;
        return false;
    }
    gw_data_set_upload(gw, d, key, upload_id, s->part_size);
    free(upload_id);
    return true;
}

/* Sends one part. With the lock held, released meanwhile. A part that fails is left to the
 * file's upload job (ListParts will not show it). */
static void send_part(struct gateway *gw, struct gw_part_task *t)
{
    struct gw_data *d = t->d;
    struct gw_stream *s = d->stream;
    while (s->creating)
        pthread_cond_wait(&gw->stream_cond, &gw->lock);
    bool go = !s->stale && !s->broken && !gw->stopping;
    if (go && !d->upload_id)
        go = create_upload(gw, t->key, d);
    if (go && d->upload_id && strcmp(d->upload_key, t->key) == 0) {
        char *upload_id = strdup(d->upload_id);
        uint64_t start = (uint64_t)(t->part - 1) * s->part_size;
        pthread_mutex_unlock(&gw->lock);
        struct s3_body body = s3_body_fd(d->fd, (off_t)start, s->part_size);
        struct s3_part part;
        struct s3_error err = {0};
        if (upload_id && s3_multipart_upload_part(gw->s3, gw->cfg->s3.source_bucket, t->key,
                                                  upload_id, t->part, &body, &part, &err) != 0)
            log_key_debug(t->key, NULL, "part %d not sent while writing (%s)", t->part,
                          err.message);
        free(upload_id);
        pthread_mutex_lock(&gw->lock);
    }
    s->inflight--;
    if (!d->committed && !d->committing && !d->obsolete)
        queue_parts(gw, t->key, d);
    pthread_cond_broadcast(&gw->stream_cond);
}

void *gw_stream_main(void *arg)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->lock);
    for (;;) {
        while (!gw->parts && !gw->stopping)
            pthread_cond_wait(&gw->parts_cond, &gw->lock);
        if (gw->stopping)
            break;
        struct gw_part_task *t = gw->parts;
        gw->parts = t->next;
        if (!gw->parts)
            gw->parts_tail = NULL;
        send_part(gw, t);
        gw_data_put(gw, t->d);
        free(t->key);
        free(t);
    }
    pthread_mutex_unlock(&gw->lock);
    return NULL;
}

void gw_stream_drop_tasks(struct gateway *gw)
{
    while (gw->parts) {
        struct gw_part_task *t = gw->parts;
        gw->parts = t->next;
        t->d->stream->inflight--;
        gw_data_put(gw, t->d);
        free(t->key);
        free(t);
    }
    gw->parts_tail = NULL;
}

int gw_stream_settle(struct gateway *gw, struct gw_data *d, const struct gw_job *job)
{
    struct gw_stream *s = d->stream;
    if (!s)
        return 0;
    while ((s->inflight > 0 || s->creating) && !gw->stopping)
        pthread_cond_wait(&gw->stream_cond, &gw->lock);
    if (s->inflight > 0 || s->creating)
        return 0; /* stopping: the stream stays for gw_data_put */
    bool usable = s->queued > 0 && !s->stale && !s->broken && !job->mtime_set &&
                  job->mode == s->mode && d->upload_id && strcmp(d->upload_key, job->key) == 0;
    if (!usable && d->upload_id && d->upload_key) {
        gw_task_push_locked(gw, GW_TASK_ABORT_UPLOAD, d->upload_key, d->upload_id);
        gw_data_set_upload(gw, d, d->upload_key, NULL, 0);
    }
    int parts = usable ? s->queued : 0;
    d->stream = NULL;
    gw_stream_free(s);
    return parts;
}
