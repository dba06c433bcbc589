/* The worker threads: a flusher that makes committed files durable (batched fsyncs), a timer
 * for held temporaries and retries, upload workers, resize workers and a task worker for
 * rendition deletes and moves. Workers take entries from FIFOs under gateway.lock and never
 * hold the lock across disk syncs or network calls. */
#include "gateway_internal.h"
#include "log.h"
#include "resize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void gw_queue_init(struct gw_queue *q)
{
    memset(q, 0, sizeof(*q));
    pthread_cond_init(&q->cond, NULL);
}

void gw_queue_destroy(struct gw_queue *q)
{
    free(q->items);
    pthread_cond_destroy(&q->cond);
}

int gw_queue_push(struct gw_queue *q, struct gw_entry *e)
{
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct gw_entry **items = malloc(cap * sizeof(*items));
        if (!items)
            return -1; /* the entry stays pending in the journal; resumed at the next start */
        for (size_t i = 0; i < q->count; i++)
            items[i] = q->items[(q->head + i) % q->cap];
        free(q->items);
        q->items = items;
        q->cap = cap;
        q->head = 0;
    }
    q->items[(q->head + q->count++) % q->cap] = e;
    pthread_cond_signal(&q->cond);
    return 0;
}

/* Waits for an entry; NULL when stopping (with `drain`, once the queue is empty). With the lock
 * held. */
static struct gw_entry *queue_pop(struct gateway *gw, struct gw_queue *q, bool drain)
{
    while (q->count == 0 && !gw->stopping)
        pthread_cond_wait(&q->cond, &gw->lock);
    if (gw->stopping && (!drain || q->count == 0))
        return NULL;
    struct gw_entry *e = q->items[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    return e;
}

/* ------------------------------------------------------------------------------------------ */
/* Flusher: data, then records, then the folder; then the files go on to upload.                */

static void *flusher_main(void *arg)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->lock);
    for (;;) {
        struct gw_entry *first = queue_pop(gw, &gw->flush_q, true);
        if (!first)
            break;
        size_t n = 1 + gw->flush_q.count;
        struct gw_entry **batch = malloc(n * sizeof(*batch));
        struct gw_data **datas = malloc(n * sizeof(*datas));
        struct spool_record *recs = calloc(n, sizeof(*recs));
        if (!batch || !datas || !recs) {
            free(batch), free(datas), free(recs);
            gw_queue_push(&gw->flush_q, first);
            pthread_mutex_unlock(&gw->lock);
            sleep(1);
            pthread_mutex_lock(&gw->lock);
            continue;
        }
        batch[0] = first;
        for (size_t i = 1; i < n; i++)
            batch[i] = queue_pop(gw, &gw->flush_q, true);
        for (size_t i = 0; i < n; i++) {
            struct gw_entry *e = batch[i];
            datas[i] = e->data && !e->unlinked ? e->data : NULL;
            if (datas[i]) {
                datas[i]->refs++;
                recs[i] = (struct spool_record){.id = datas[i]->id,
                                                .seq = e->seq,
                                                .key = strdup(e->key),
                                                .state = e->state,
                                                .mode = e->mode,
                                                .mtime = e->mtime};
            }
        }
        pthread_mutex_unlock(&gw->lock);
        /* Group commit: the bytes were synced at close; the journal lines (written again
         * here with the latest key and state) are synced once for the whole batch. */
        for (size_t i = 0; i < n; i++) {
            if (!datas[i] || !recs[i].key)
                continue;
            int r = spool_write_record(gw->spool, &recs[i]);
            if (r != 0)
                log_error("%s: cannot write its journal line: %s", recs[i].key, strerror(-r));
        }
        int rc = spool_sync(gw->spool);
        if (rc != 0)
            log_error("cannot sync the spool journal: %s", strerror(-rc));
        pthread_mutex_lock(&gw->lock);
        for (size_t i = 0; i < n; i++) {
            struct gw_entry *e = batch[i];
            if (datas[i] && e->data == datas[i] && e->state == GW_PENDING && !e->busy) {
                e->refs++;
                gw_queue_push(&gw->upload_q, e);
            }
            if (e->state == GW_HELD)
                pthread_cond_broadcast(&gw->hold_cond);
            gw_data_put(gw, datas[i]);
            gw_entry_release(gw, e);
            free(recs[i].key);
        }
        free(batch), free(datas), free(recs);
    }
    pthread_mutex_unlock(&gw->lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Timer: held temporaries whose time ran out, and retries that are due.                       */

static uint64_t size_of(const struct gw_data *d)
{
    struct stat st;
    return d && fstat(d->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

/* What the timer learns from one pass over the table each second. */
struct table_scan {
    uint64_t spool_bytes; /* bytes of the local versions */
    uint64_t in_flight;   /* bytes sent so far by the running uploads */
    size_t active;        /* files queued, uploading or resizing */
    bool waiting;         /* some file waits for a transient retry */
};

/* The one pass: counts (see table_scan) and queues the files that are due (held temporaries
 * whose time is up, transient retries). With the lock held. */
static void scan_table(struct gateway *gw, time_t now, struct table_scan *out)
{
    *out = (struct table_scan){0};
    for (size_t i = 0; i < gw->table_size; i++)
        for (struct gw_entry *e = gw->table[i]; e; e = e->hash_next) {
            out->spool_bytes += size_of(e->data) + size_of(e->base);
            if (e->state == GW_UPLOADING)
                out->in_flight += __atomic_load_n(&e->sent, __ATOMIC_RELAXED);
            out->active += e->state >= GW_PENDING && e->state <= GW_RESIZING && !e->in_done;
            bool retrying = (e->state == GW_PENDING || e->state == GW_UPLOADED) && e->retry_at;
            out->waiting |= retrying && e->retry_at > now && !e->await_since;
            bool held_out = e->state == GW_HELD && e->hold_until <= now;
            if (!(held_out || (retrying && e->retry_at <= now)) || e->busy)
                continue;
            if (held_out)
                e->state = GW_PENDING;
            e->retry_at = 0;
            e->refs++;
            gw_queue_push(e->state == GW_UPLOADED ? &gw->resize_q : &gw->upload_q, e);
        }
}

/* Once a second: the bytes uploaded so far (for the rate), and the start of a new batch when
 * nothing is queued. With the lock held. */
static void sample_progress(struct gateway *gw, const struct table_scan *scan)
{
    if (scan->active == 0)
        gw->batch_done = 0;
    gw->rate_bytes[gw->rate_next] = gw->stats.bytes_uploaded + scan->in_flight;
    gw->rate_next = (gw->rate_next + 1) % RATE_SAMPLES;
    if (gw->rate_filled < RATE_SAMPLES)
        gw->rate_filled++;
}

uint64_t gw_upload_rate(const struct gateway *gw)
{
    if (gw->rate_filled < 2)
        return 0;
    unsigned newest = (gw->rate_next + RATE_SAMPLES - 1) % RATE_SAMPLES;
    unsigned oldest = gw->rate_filled < RATE_SAMPLES ? 0 : gw->rate_next;
    uint64_t delta = gw->rate_bytes[newest] - gw->rate_bytes[oldest];
    /* uploads that failed take their bytes back: the counter can go down */
    return gw->rate_bytes[newest] < gw->rate_bytes[oldest] ? 0 : delta / (gw->rate_filled - 1);
}

#define PROBE_SECONDS 5

/* While files wait for a transient retry, the task thread asks S3 (a HEAD of the source bucket)
 * every PROBE_SECONDS; once it answers, they are all due now, so the backlog of an outage starts
 * draining when S3 is back rather than at each file's next backoff step (up to 64 s later).
 * With the lock held. */
static void probe_if_waiting(struct gateway *gw, time_t now, bool waiting)
{
    if (!waiting || gw->probing || now - gw->last_probe < PROBE_SECONDS)
        return;
    gw->last_probe = now;
    gw->probing = true;
    gw_task_push_locked(gw, GW_TASK_PROBE, "", NULL);
}

/* The task thread's probe (without the lock). */
static void run_probe(struct gateway *gw)
{
    struct s3_error err = {0};
    bool back = s3_head_bucket(gw->s3, gw->cfg->s3.source_bucket, &err) == 0;
    pthread_mutex_lock(&gw->lock);
    gw->probing = false;
    size_t n = 0;
    time_t now = time(NULL);
    for (size_t i = 0; back && i < gw->table_size; i++)
        for (struct gw_entry *e = gw->table[i]; e; e = e->hash_next)
            if ((e->state == GW_PENDING || e->state == GW_UPLOADED) && e->retry_at > now &&
                !e->await_since) {
                e->retry_at = now;
                n++;
            }
    if (n)
        pthread_cond_broadcast(&gw->hold_cond); /* the timer queues them */
    pthread_mutex_unlock(&gw->lock);
    if (n)
        log_info("S3 answers again: %zu file%s waiting for a retry go now", n, n == 1 ? "" : "s");
}

static void write_emf(struct gateway *gw)
{
    char *lines = gw_metrics_emf(gw);
    for (char *line = lines, *end; line && *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end)
            break;
        *end = '\0';
        log_line_raw(line);
    }
    free(lines);
}

static void *timer_main(void *arg)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->lock);
    while (!gw->stopping) {
        time_t now = time(NULL);
        struct table_scan scan;
        scan_table(gw, now, &scan);
        bool full = scan.spool_bytes >= (uint64_t)gw->cfg->gateway.cache_max_mb << 20 ||
                    spool_disk_low(gw->spool);
        if (full && !gw->spool_full)
            log_warn("the spool is full (%llu MiB, [gateway] cache_max_mb = %u, or its disk has "
                     "under min(64 MiB, 1/16 of its size) free): writes fail with ENOSPC until "
                     "uploads drain it",
                     (unsigned long long)(scan.spool_bytes >> 20), gw->cfg->gateway.cache_max_mb);
        gw->spool_bytes = scan.spool_bytes;
        gw->spool_full = full;
        sample_progress(gw, &scan);
        probe_if_waiting(gw, now, scan.waiting);
        unsigned emf_every = gw->cfg->log.metrics_seconds;
        bool emf = gw->metrics && emf_every && now - gw->last_emf >= (time_t)emf_every;
        if (emf)
            gw->last_emf = now;
        pthread_mutex_unlock(&gw->lock); /* appends go on meanwhile (under the gateway lock) */
        if (emf)
            write_emf(gw);
        int rc = spool_compact(gw->spool, false);
        if (rc != 0)
            log_warn("cannot compact the spool's journal: %s (it keeps growing)", strerror(-rc));
        pthread_mutex_lock(&gw->lock);
        struct timespec wake;
        clock_gettime(CLOCK_REALTIME, &wake);
        wake.tv_sec += 1;
        pthread_cond_timedwait(&gw->hold_cond, &gw->lock, &wake);
    }
    pthread_mutex_unlock(&gw->lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Upload and resize workers                                                                    */

static void job_take(struct gw_entry *e, struct gw_job *job)
{
    *job = (struct gw_job){
        .key = strdup(e->key), .data = e->data, .seq = e->seq, .mode = e->mode, .mtime = e->mtime};
    job->format = e->format ? strdup(e->format) : NULL;
    job->progress = &e->sent;
    job->mtime_set = e->mtime_set;
    job->maybe_sent = e->maybe_sent;
    gw_request_id(e->data->id, job->request_id, sizeof(job->request_id));
    snprintf(job->etag, sizeof(job->etag), "%s", e->etag);
    job->started_ms = gw_now_ms();
    e->maybe_sent = false;
    e->sent = 0;
    e->data->refs++;
    e->busy = true;
}

static void job_release(struct gateway *gw, struct gw_job *job)
{
    gw_data_put(gw, job->data);
    free(job->key);
    free(job->format);
    free(job->renditions);
    for (size_t i = 0; i < job->made_count; i++)
        free((char *)job->made[i].key);
    free(job->made);
}

/* After a worker's step: was the entry renamed, rewritten or removed meanwhile? Then the
 * worker's result no longer applies (true), the object it wrote under job->key may have to go
 * (*delete_old), and a version waiting for this worker to finish is queued now. With the lock
 * held. */
static bool overtaken(struct gateway *gw, struct gw_entry *e, const struct gw_job *job,
                      bool *delete_old)
{
    *delete_old = false;
    if (e->unlinked) {
        *delete_old = true;
        return true;
    }
    bool renamed = e->requeue;
    e->requeue = false;
    if (renamed) {
        *delete_old = strcmp(e->key, job->key) != 0 && !gw_find(gw, job->key);
        if (e->data == job->data)
            e->state = GW_PENDING; /* the same bytes, to go up under the new name */
    }
    bool newer = e->data != job->data || e->seq != job->seq;
    if ((renamed || newer) && e->state == GW_PENDING && e->data && !e->retry_at) {
        e->refs++;
        gw_queue_push(&gw->upload_q, e);
    }
    return renamed || newer;
}

/* An uploaded image goes to the resize queue: resized here (local), or awaited (lambda). */
static bool wants_resize(struct gateway *gw, const struct gw_job *job)
{
    return gw->cfg->resize.mode != CONF_RESIZE_OFF && job->format &&
           resize_is_image_format(job->format);
}

/* A transient failure of the upload (e->state GW_PENDING) or of the renditions (GW_UPLOADED):
 * the timer queues it again after a backoff. */
static void retry_later(struct gateway *gw, struct gw_entry *e, const char *what,
                        const char *reason)
{
    e->attempts++;
    unsigned shift = e->attempts < 6 ? e->attempts : 6;
    /* 2 s .. 64 s, the upper half at random: files that failed together spread out */
    unsigned wait = (1u << shift) / 2 + (unsigned)random() % ((1u << shift) / 2 + 1);
    e->retry_at = time(NULL) + (time_t)wait;
    gw->stats.retries++;
    if (gw->metrics && strcmp(what, "upload") == 0)
        metrics_add(gw->metrics, METRICS_UPLOAD_RETRIES, 1);
    free(e->reason);
    e->reason = strdup(reason);
    char rid[24] = "";
    if (e->data)
        gw_request_id(e->data->id, rid, sizeof(rid));
    log_key_warn(e->key, rid, "%s failed (%s); retrying in %u s", what, reason, wait);
}

static void upload_one(struct gateway *gw, struct gw_entry *e)
{
    if (e->state != GW_PENDING || e->busy || !e->data || e->unlinked ||
        (e->retry_at && e->retry_at > time(NULL)))
        return;
    struct gw_job job;
    e->state = GW_UPLOADING;
    job_take(e, &job);
    gw_record(gw, e);
    pthread_mutex_unlock(&gw->lock);

    char reason[512] = "";
    bool transient = false;
    int rc = gw_upload(gw, &job, reason, sizeof(reason), &transient);
    pthread_mutex_lock(&gw->lock);
    e->busy = false;
    bool delete_old = false;
    if (rc == 0 && e->data == job.data) { /* what this version turned out to be */
        free(e->format);
        e->format = job.format ? strdup(job.format) : NULL;
        snprintf(e->etag, sizeof(e->etag), "%s", job.etag);
    }
    if (overtaken(gw, e, &job, &delete_old)) {
        if (delete_old && rc == 0) {
            pthread_mutex_unlock(&gw->lock);
            struct s3_error err = {0};
            s3_delete_object(gw->s3, gw->cfg->s3.source_bucket, job.key, &err);
            gw_changed(gw, job.key, NULL);
            pthread_mutex_lock(&gw->lock);
        }
    } else if (rc != 0 && transient) {
        e->state = GW_PENDING;
        retry_later(gw, e, "upload", reason);
    } else if (rc != 0) {
        gw_set_failed(gw, e, "%s", reason);
        log_key_error(e->key, job.request_id, "upload failed: %s (the file is kept in the spool)",
                      reason);
        if (gw->metrics)
            metrics_add(gw->metrics, METRICS_UPLOAD_FAILURES, 1);
        gw_notify_failed(gw, e, &job, "upload_failed",
                         "the file is kept in the gateway's spool; fix the cause, then run "
                         "'s3imgfs retry MOUNTPOINT' or touch the file");
    } else {
        e->attempts = 0;
        gw->stats.uploads_done++;
        if (gw->metrics) {
            metrics_add(gw->metrics, METRICS_UPLOADS, 1);
            metrics_add(gw->metrics, METRICS_UPLOAD_BYTES, job.size);
        }
        if (wants_resize(gw, &job)) {
            e->state = GW_UPLOADED;
            gw_record(gw, e);
            e->refs++;
            gw_queue_push(&gw->resize_q, e);
        } else {
            gw_finish(gw, e, GW_UPLOADED);
            gw_notify_done(gw, &job, "uploaded");
        }
    }
    if (rc == 0 && !e->unlinked && strcmp(e->key, job.key) == 0) {
        struct gw_info info = {
            .size = job.size, .mtime = job.mtime, .mode = job.mode, .state = e->state};
        gw_changed(gw, job.key, &info);
    }
    job_release(gw, &job);
    pthread_cond_broadcast(&gw->state_cond);
}

/* The renditions will not come: the image is failed; the upload itself succeeded, so its data
 * need not stay in the spool. With the lock held. */
static void renditions_failed(struct gateway *gw, struct gw_entry *e, const struct gw_job *job,
                              const char *reason)
{
    gw_set_failed(gw, e, "%s", reason);
    log_key_error(e->key, job->request_id, "%s", reason);
    if (gw->metrics)
        metrics_add(gw->metrics, METRICS_RESIZE_FAILURES, 1);
    gw_notify_failed(gw, e, job, "resize_failed",
                     "the original is in the source bucket; no renditions were made");
    e->data->obsolete = true;
    gw_data_put(gw, e->data);
    gw_entry_set_data(gw, e, NULL);
}

#define AWAIT_MAX_WAIT 30 /* seconds between two checks for the function's renditions */

/* mode = lambda: not there yet. Checked again after 1, 2, 4 ... 30 s, until the timeout. With
 * the lock held. */
static void await_later(struct gateway *gw, struct gw_entry *e, const struct gw_job *job)
{
    time_t now = time(NULL);
    unsigned limit = gw->cfg->resize.lambda_timeout_seconds;
    if (now - e->await_since >= (time_t)limit) {
        char reason[300];
        snprintf(reason, sizeof(reason),
                 "the function made no renditions within %u s ([resize] "
                 "lambda_timeout_seconds): see its log and dead-letter queue, and check that "
                 "the bucket triggers it (or set [resize] lambda_function)",
                 limit);
        renditions_failed(gw, e, job, reason);
        return;
    }
    unsigned wait = 1u << (e->await_checks < 5 ? e->await_checks : 5);
    if (wait > AWAIT_MAX_WAIT)
        wait = AWAIT_MAX_WAIT;
    if (now + (time_t)wait > e->await_since + (time_t)limit)
        wait = (unsigned)(e->await_since + (time_t)limit - now);
    e->await_checks++;
    e->state = GW_UPLOADED;
    e->retry_at = now + (time_t)(wait ? wait : 1);
}

/* An uploaded image: its renditions made here (mode = local) or awaited from the function
 * (mode = lambda, invoking it first when configured). */
static void resize_one(struct gateway *gw, struct gw_entry *e)
{
    if (e->state != GW_UPLOADED || e->busy || !e->data || e->unlinked ||
        (e->retry_at && e->retry_at > time(NULL)))
        return;
    bool lambda = gw->cfg->resize.mode == CONF_RESIZE_LAMBDA;
    bool invoke_first = lambda && !e->invoked;
    if (lambda && !e->await_since)
        e->await_since = time(NULL);
    struct gw_job job;
    e->state = GW_RESIZING;
    job_take(e, &job);
    pthread_mutex_unlock(&gw->lock);

    char reason[512] = "";
    bool transient = false;
    int rc = lambda
                 ? gw_await_renditions(gw, &job, invoke_first, reason, sizeof(reason), &transient)
                 : gw_make_renditions(gw, &job, reason, sizeof(reason), &transient);
    pthread_mutex_lock(&gw->lock);
    e->busy = false;
    if (rc >= 0 && invoke_first)
        e->invoked = true;
    bool delete_old = false;
    if (overtaken(gw, e, &job, &delete_old)) {
        if (delete_old) /* the lock is held: a plain gw_task_push would deadlock */
            gw_task_push_locked(gw, GW_TASK_DELETE_RENDITIONS, job.key, NULL);
    } else if (rc == 1) {
        await_later(gw, e, &job);
    } else if (rc != 0 && transient) {
        e->state = GW_UPLOADED; /* the timer queues it again */
        retry_later(gw, e, lambda ? "invoking the function" : "renditions", reason);
    } else if (rc != 0) {
        renditions_failed(gw, e, &job, reason);
    } else {
        free(e->renditions);
        e->renditions = job.renditions;
        job.renditions = NULL;
        gw->stats.renditions_done++;
        if (gw->metrics && !lambda)
            metrics_add(gw->metrics, METRICS_IMAGES, 1);
        gw_finish(gw, e, GW_DONE);
        if (!lambda) /* the function announces its own work */
            gw_notify_done(gw, &job, "resized");
    }
    job_release(gw, &job);
}

/* A pool worker: takes entries from its queue until the gateway stops. */
static void serve(struct gateway *gw, struct gw_queue *q,
                  void (*step)(struct gateway *, struct gw_entry *))
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e;
    while ((e = queue_pop(gw, q, false)) != NULL) {
        step(gw, e);
        gw_entry_release(gw, e);
    }
    pthread_mutex_unlock(&gw->lock);
}

static void *upload_main(void *arg)
{
    struct gateway *gw = arg;
    serve(gw, &gw->upload_q, upload_one);
    return NULL;
}

static void *resize_main(void *arg)
{
    struct gateway *gw = arg;
    serve(gw, &gw->resize_q, resize_one);
    resize_thread_done();
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Tasks                                                                                        */

void gw_task_push_locked(struct gateway *gw, enum gw_task_kind kind, const char *from,
                         const char *to)
{
    struct gw_task *t = calloc(1, sizeof(*t));
    if (!t || !(t->from = strdup(from)) || (to && !(t->to = strdup(to)))) {
        log_error("%s: out of memory queueing a background task", from);
        if (t)
            free(t->from);
        free(t);
        return;
    }
    t->kind = kind;
    if (gw->tasks_tail)
        gw->tasks_tail->next = t;
    else
        gw->tasks = t;
    gw->tasks_tail = t;
    pthread_cond_signal(&gw->tasks_cond);
}

void gw_task_push(struct gateway *gw, enum gw_task_kind kind, const char *from, const char *to)
{
    pthread_mutex_lock(&gw->lock);
    gw_task_push_locked(gw, kind, from, to);
    pthread_mutex_unlock(&gw->lock);
}

static void *task_main(void *arg)
{
    struct gateway *gw = arg;
    pthread_mutex_lock(&gw->lock);
    for (;;) {
        while (!gw->tasks && !gw->stopping)
            pthread_cond_wait(&gw->tasks_cond, &gw->lock);
        if (gw->stopping)
            break;
        struct gw_task *t = gw->tasks;
        gw->tasks = t->next;
        if (!gw->tasks)
            gw->tasks_tail = NULL;
        pthread_mutex_unlock(&gw->lock);
        if (t->kind == GW_TASK_ABORT_UPLOAD)
            gw_abort_upload(gw, t->from, t->to);
        else if (t->kind == GW_TASK_PROBE)
            run_probe(gw);
        else
            gw_run_task(gw, t);
        free(t->from);
        free(t->to);
        free(t);
        pthread_mutex_lock(&gw->lock);
    }
    pthread_mutex_unlock(&gw->lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */

static const char *thread_name(void *(*fn)(void *))
{
    return fn == flusher_main  ? "s3imgfs-flush"
           : fn == timer_main  ? "s3imgfs-timer"
           : fn == task_main   ? "s3imgfs-tasks"
           : fn == upload_main ? "s3imgfs-upload"
           : fn == resize_main ? "s3imgfs-resize"
                               : "s3imgfs-stream";
}

int gw_workers_start(struct gateway *gw, struct s3_error *err)
{
    const struct config *cfg = gw->cfg;
    size_t uploads = cfg->gateway.upload_workers;
    /* mode = lambda: a few threads check for the function's renditions (HEADs, no CPU) */
    size_t resizes = cfg->resize.mode == CONF_RESIZE_LOCAL    ? cfg->gateway.resize_workers
                     : cfg->resize.mode == CONF_RESIZE_LAMBDA ? 4
                                                              : 0;
    size_t streams = cfg->gateway.part_parallel;
    size_t total = 3 + uploads + resizes + streams;
    gw->threads = calloc(total, sizeof(*gw->threads));
    if (!gw->threads) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        return -1;
    }
    void *(*mains[])(void *) = {flusher_main, timer_main, task_main};
    for (size_t i = 0; i < total; i++) {
        void *(*fn)(void *) = i < 3                       ? mains[i]
                              : i < 3 + uploads           ? upload_main
                              : i < 3 + uploads + resizes ? resize_main
                                                          : gw_stream_main;
        int rc = pthread_create(&gw->threads[i], NULL, fn, gw);
        if (rc == 0) /* names show in top -H, gdb and the crash report */
            pthread_setname_np(gw->threads[i], thread_name(fn));
        if (rc != 0) {
            s3_error_set(err, 0, "LocalIOError", false, "cannot start a worker thread: %s",
                         strerror(rc));
            gw_workers_stop(gw);
            return -1;
        }
        gw->thread_count++;
    }
    return 0;
}

void gw_workers_stop(struct gateway *gw)
{
    pthread_mutex_lock(&gw->lock);
    gw->stopping = true;
    pthread_cond_broadcast(&gw->flush_q.cond);
    pthread_cond_broadcast(&gw->upload_q.cond);
    pthread_cond_broadcast(&gw->resize_q.cond);
    pthread_cond_broadcast(&gw->tasks_cond);
    pthread_cond_broadcast(&gw->hold_cond);
    pthread_cond_broadcast(&gw->state_cond);
    pthread_cond_broadcast(&gw->parts_cond);
    pthread_cond_broadcast(&gw->stream_cond);
    pthread_mutex_unlock(&gw->lock);
    for (size_t i = 0; i < gw->thread_count; i++)
        pthread_join(gw->threads[i], NULL);
    pthread_mutex_lock(&gw->lock);
    gw_stream_drop_tasks(gw);
    pthread_mutex_unlock(&gw->lock);
    free(gw->threads);
    gw->threads = NULL;
    gw->thread_count = 0;
    /* Entries still queued hold a reference each; drop them. */
    struct gw_queue *queues[] = {&gw->flush_q, &gw->upload_q, &gw->resize_q};
    for (size_t i = 0; i < 3; i++) {
        struct gw_queue *q = queues[i];
        for (; q->count; q->count--, q->head = (q->head + 1) % q->cap)
            gw_entry_release(gw, q->items[q->head]);
    }
}
