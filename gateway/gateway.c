/* The entries: which keys have local data, in which state, and who holds them. */
#include "gateway_internal.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define FINISHED_KEPT 10000 /* finished entries remembered for their status attribute */

/* ------------------------------------------------------------------------------------------ */
/* The table                                                                                    */

static size_t hash_key(const char *key, size_t size)
{
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h & (size - 1));
}

struct gw_entry *gw_find(struct gateway *gw, const char *key)
{
    for (struct gw_entry *e = gw->table[hash_key(key, gw->table_size)]; e; e = e->hash_next)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static void table_insert(struct gateway *gw, struct gw_entry *e)
{
    if (gw->entry_count + 1 > gw->table_size) {
        size_t size = gw->table_size * 2;
        struct gw_entry **t = calloc(size, sizeof(*t));
        if (t) {
            for (size_t i = 0; i < gw->table_size; i++)
                for (struct gw_entry *x = gw->table[i], *next; x; x = next) {
                    next = x->hash_next;
                    size_t h = hash_key(x->key, size);
                    x->hash_next = t[h];
                    t[h] = x;
                }
            free(gw->table);
            gw->table = t;
            gw->table_size = size;
        }
    }
    size_t h = hash_key(e->key, gw->table_size);
    e->hash_next = gw->table[h];
    gw->table[h] = e;
    gw->entry_count++;
}

static void table_remove(struct gateway *gw, struct gw_entry *e)
{
    for (struct gw_entry **p = &gw->table[hash_key(e->key, gw->table_size)]; *p;
         p = &(*p)->hash_next)
        if (*p == e) {
            *p = e->hash_next;
            gw->entry_count--;
            return;
        }
}

/* Folders with local data: for each folder prefix ("a/", "a/b/"), how many keys under it have
 * local data, so that "is this a folder?" costs a hash lookup, not a walk over every entry. */
struct dir_count {
    char *prefix;
    size_t n;
    struct dir_count *next;
};

static struct dir_count **dir_slot(struct gateway *gw, const char *prefix, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)prefix[i]) * 1099511628211ull;
    struct dir_count **p = &gw->dirs[h & (DIR_BUCKETS - 1)];
    while (*p && (strlen((*p)->prefix) != len || strncmp((*p)->prefix, prefix, len) != 0))
        p = &(*p)->next;
    return p;
}

static void dir_counts_adjust(struct gateway *gw, const char *key, int delta)
{
    for (const char *slash = strchr(key, '/'); slash; slash = strchr(slash + 1, '/')) {
        size_t len = (size_t)(slash - key + 1);
        struct dir_count **p = dir_slot(gw, key, len);
        if (!*p && delta > 0) {
            struct dir_count *d = calloc(1, sizeof(*d));
            if (!d || !(d->prefix = strndup(key, len))) {
                free(d);
                continue;
            }
            *p = d;
        }
        if (!*p)
            continue;
        if (delta > 0)
            (*p)->n++;
        else if (--(*p)->n == 0) {
            struct dir_count *d = *p;
            *p = d->next;
            free(d->prefix);
            free(d);
        }
    }
}

void gw_entry_set_data(struct gateway *gw, struct gw_entry *e, struct gw_data *d)
{
    bool had = e->data != NULL;
    if (e->data != d) { /* what was known of the bytes that go */
        e->etag[0] = '\0';
        e->await_since = 0, e->await_checks = 0, e->invoked = false;
    }
    e->data = d;
    if (had != (d != NULL))
        dir_counts_adjust(gw, e->key, d ? 1 : -1);
}

static void done_list_remove(struct gateway *gw, struct gw_entry *e)
{
    if (!e->in_done)
        return;
    if (e->done_prev)
        e->done_prev->done_next = e->done_next;
    else
        gw->done_head = e->done_next;
    if (e->done_next)
        e->done_next->done_prev = e->done_prev;
    else
        gw->done_tail = e->done_prev;
    e->done_next = e->done_prev = NULL;
    e->in_done = false;
    gw->done_count--;
}

static void entry_free(struct gw_entry *e)
{
    free(e->key);
    free(e->reason);
    free(e->format);
    free(e->renditions);
    free(e);
}

static bool entry_in_use(const struct gw_entry *e)
{
    return e->refs > 0 || e->busy || e->data || e->base;
}

/* Removes `e` from the table; it is freed now or by whoever holds it last. */
static void entry_unlink(struct gateway *gw, struct gw_entry *e)
{
    table_remove(gw, e);
    done_list_remove(gw, e);
    e->unlinked = true;
    if (!entry_in_use(e))
        entry_free(e);
}

void gw_entry_release(struct gateway *gw, struct gw_entry *e)
{
    e->refs--;
    if (e->unlinked && !entry_in_use(e))
        entry_free(e);
    (void)gw;
}

static struct gw_entry *entry_new(struct gateway *gw, const char *key, mode_t mode)
{
    struct gw_entry *e = calloc(1, sizeof(*e));
    if (!e || !(e->key = strdup(key))) {
        free(e);
        return NULL;
    }
    e->mode = mode & 07777;
    clock_gettime(CLOCK_REALTIME, &e->mtime);
    table_insert(gw, e);
    return e;
}

/* ------------------------------------------------------------------------------------------ */
/* Data versions                                                                                */

static struct gw_data *data_new(struct gateway *gw, int *err)
{
    struct gw_data *d = calloc(1, sizeof(*d));
    if (!d) {
        *err = -ENOMEM;
        return NULL;
    }
    d->fd = spool_create(gw->spool, &d->id);
    if (d->fd < 0) {
        *err = d->fd;
        free(d);
        return NULL;
    }
    d->refs = 1;
    return d;
}

void gw_data_set_upload(struct gateway *gw, struct gw_data *d, const char *key,
                        const char *upload_id, uint64_t part_size)
{
    free(d->upload_key);
    free(d->upload_id);
    d->upload_key = upload_id ? strdup(key) : NULL;
    d->upload_id = upload_id ? strdup(upload_id) : NULL;
    d->part_size = part_size;
    int rc = spool_write_upload(gw->spool, d->id, key, upload_id, part_size);
    if (rc != 0)
        log_key_warn(key, NULL,
                     "cannot record its multipart upload in the journal (%s): after a restart "
                     "it is sent again",
                     strerror(-rc));
}

/* A multipart upload of bytes that are no longer wanted: aborted in the background (its parts
 * cost storage until then). With the lock held. */
static void abort_upload_later(struct gateway *gw, const char *key, const char *upload_id)
{
    gw_task_push_locked(gw, GW_TASK_ABORT_UPLOAD, key, upload_id);
}

void gw_data_put(struct gateway *gw, struct gw_data *d)
{
    if (!d || --d->refs > 0)
        return;
    if (d->obsolete)
        spool_remove(gw->spool, d->id);
    if (d->obsolete && d->upload_id)
        abort_upload_later(gw, d->upload_key, d->upload_id);
    free(d->upload_key);
    free(d->upload_id);
    gw_stream_free(d->stream);
    close(d->fd);
    free(d);
}

static void data_drop(struct gateway *gw, struct gw_data *d)
{
    if (!d)
        return;
    d->obsolete = true;
    gw_data_put(gw, d);
}

static int copy_data(int from, int to)
{
    struct stat st;
    if (fstat(from, &st) != 0)
        return -errno;
    loff_t in = 0, out = 0;
    while (in < st.st_size) {
        ssize_t n = copy_file_range(from, &in, to, &out, (size_t)(st.st_size - in), 0);
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* States                                                                                       */

void gw_changed(struct gateway *gw, const char *key, const struct gw_info *info)
{
    if (gw->on_changed)
        gw->on_changed(gw->on_changed_ctx, key, info);
}

void gw_record(struct gateway *gw, struct gw_entry *e)
{
    if (!e->data || !e->data->committed)
        return;
    struct spool_record rec = {.id = e->data->id,
                               .seq = e->seq,
                               .key = e->key,
                               .state = e->state,
                               .mode = e->mode,
                               .mtime = e->mtime};
    int rc = spool_write_record(gw->spool, &rec);
    if (rc != 0)
        log_key_warn(e->key, NULL, "cannot update the journal: %s", strerror(-rc));
}

static void keep_finished(struct gateway *gw, struct gw_entry *e)
{
    done_list_remove(gw, e);
    e->done_prev = gw->done_tail;
    if (gw->done_tail)
        gw->done_tail->done_next = e;
    else
        gw->done_head = e;
    gw->done_tail = e;
    e->in_done = true;
    gw->done_count++;
    while (gw->done_count > FINISHED_KEPT) {
        struct gw_entry *old = gw->done_head;
        done_list_remove(gw, old);
        if (!entry_in_use(old)) {
            table_remove(gw, old);
            entry_free(old);
        }
    }
}

void gw_finish(struct gateway *gw, struct gw_entry *e, enum gw_state final)
{
    e->state = final;
    e->mtime_set = false;
    gw->batch_done++;
    free(e->reason);
    e->reason = NULL;
    data_drop(gw, e->data);
    gw_entry_set_data(gw, e, NULL);
    keep_finished(gw, e);
}

void gw_set_failed(struct gateway *gw, struct gw_entry *e, const char *fmt, ...)
{
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    free(e->reason);
    e->reason = strdup(reason);
    e->state = GW_FAILED;
    gw->stats.failures++;
    gw->batch_done++;
    struct gw_failure *f = &gw->failures[gw->failure_next++ % GW_FAILURES_KEPT];
    free(f->key);
    free(f->reason);
    f->key = strdup(e->key);
    f->reason = strdup(reason);
    f->when = time(NULL);
    gw_record(gw, e);
}

/* ------------------------------------------------------------------------------------------ */
/* Life                                                                                         */

static void recover_orphan(void *ctx, const char *key, const char *upload_id)
{
    struct gateway *gw = ctx;
    log_key_info(key, NULL,
                 "aborting a multipart upload left by an earlier run for bytes no longer in the "
                 "spool");
    gw_task_push(gw, GW_TASK_ABORT_UPLOAD, key, upload_id);
}

static void recover_record(void *ctx, struct spool_record *rec, int fd)
{
    struct gateway *gw = ctx;
    struct gw_entry *e = gw_find(gw, rec->key);
    if (e && e->seq > rec->seq) { /* an older version of a key written again */
        close(fd);
        spool_remove(gw->spool, rec->id);
        if (rec->upload_id)
            recover_orphan(gw, rec->upload_key, rec->upload_id);
        return;
    }
    if (!e && !(e = entry_new(gw, rec->key, rec->mode))) {
        close(fd);
        return;
    }
    struct gw_data *d = calloc(1, sizeof(*d));
    if (!d) {
        close(fd);
        return;
    }
    *d = (struct gw_data){.id = rec->id, .fd = fd, .refs = 1, .committed = true};
    if (rec->upload_id) { /* resumed where it stopped */
        d->upload_key = strdup(rec->upload_key);
        d->upload_id = strdup(rec->upload_id);
        d->part_size = rec->part_size;
    }
    data_drop(gw, e->data);
    gw_entry_set_data(gw, e, d);
    e->seq = rec->seq;
    e->mode = rec->mode;
    e->mtime = rec->mtime;
    if (rec->seq >= gw->next_seq)
        gw->next_seq = rec->seq + 1;
    switch (rec->state) {
    case GW_UPLOADED:
    case GW_RESIZING:
        e->state = GW_UPLOADED;
        break;
    case GW_HELD:
        e->state = GW_HELD;
        e->hold_until = time(NULL) + (time_t)gw->cfg->gateway.temp_hold_seconds;
        break;
    default: /* pending, uploading, failed: try again */
        e->maybe_sent = rec->state == GW_UPLOADING;
        e->state = GW_PENDING;
        break;
    }
}

struct gateway *gateway_new(const struct gateway_options *opts, struct s3_error *err)
{
    struct gateway *gw = calloc(1, sizeof(*gw));
    if (!gw) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        return NULL;
    }
    gw->cfg = opts->cfg;
    gw->s3 = opts->s3;
    gw->on_changed = opts->on_changed;
    gw->on_changed_ctx = opts->on_changed_ctx;
    gw->notifier = opts->notifier;
    gw->metrics = opts->metrics;
    gw->next_seq = 1;
    gw->start_time = time(NULL);
    pthread_mutex_init(&gw->lock, NULL);
    pthread_cond_init(&gw->tasks_cond, NULL);
    pthread_cond_init(&gw->hold_cond, NULL);
    pthread_cond_init(&gw->state_cond, NULL);
    pthread_cond_init(&gw->parts_cond, NULL);
    pthread_cond_init(&gw->stream_cond, NULL);
    gw_queue_init(&gw->flush_q);
    gw_queue_init(&gw->upload_q);
    gw_queue_init(&gw->resize_q);
    gw->table_size = 4096;
    gw->table = calloc(gw->table_size, sizeof(*gw->table));
    if (!gw->table) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        gateway_free(gw);
        return NULL;
    }
    gw->spool = spool_open(opts->cfg->gateway.cache_dir, err);
    if (!gw->spool || spool_scan(gw->spool, recover_record, recover_orphan, gw, err) != 0) {
        gateway_free(gw);
        return NULL;
    }
    return gw;
}

void gateway_set_notifier(struct gateway *gw, struct notifier *n)
{
    gw->notifier = n;
}

int gateway_start(struct gateway *gw, struct s3_error *err)
{
    pthread_mutex_lock(&gw->lock);
    size_t resumed = 0;
    for (size_t i = 0; i < gw->table_size; i++)
        for (struct gw_entry *e = gw->table[i]; e; e = e->hash_next) {
            if (e->state == GW_PENDING)
                gw_queue_push(&gw->upload_q, e);
            else if (e->state == GW_UPLOADED)
                gw_queue_push(&gw->resize_q, e);
            else
                continue;
            e->refs++;
            resumed++;
        }
    pthread_mutex_unlock(&gw->lock);
    if (resumed)
        log_info("resuming %zu file%s found in the spool", resumed, resumed == 1 ? "" : "s");
    return gw_workers_start(gw, err);
}

void gateway_free(struct gateway *gw)
{
    if (!gw)
        return;
    gw_workers_stop(gw);
    for (size_t i = 0; gw->table && i < gw->table_size; i++)
        for (struct gw_entry *e = gw->table[i], *next; e; e = next) {
            next = e->hash_next;
            if (e->data) {
                e->data->obsolete = !e->data->committed || e->state == GW_LOCAL_ONLY;
                gw_data_put(gw, e->data);
            }
            gw_data_put(gw, e->base);
            entry_free(e);
        }
    while (gw->tasks) {
        struct gw_task *t = gw->tasks;
        gw->tasks = t->next;
        free(t->from);
        free(t->to);
        free(t);
    }
    gw_queue_destroy(&gw->flush_q);
    gw_queue_destroy(&gw->upload_q);
    gw_queue_destroy(&gw->resize_q);
    free(gw->table);
    for (size_t i = 0; i < GW_FAILURES_KEPT; i++) {
        free(gw->failures[i].key);
        free(gw->failures[i].reason);
    }
    for (size_t i = 0; i < DIR_BUCKETS; i++)
        for (struct dir_count *d = gw->dirs[i], *next; d; d = next) {
            next = d->next;
            free(d->prefix);
            free(d);
        }
    spool_close(gw->spool);
    pthread_cond_destroy(&gw->tasks_cond);
    pthread_cond_destroy(&gw->hold_cond);
    pthread_cond_destroy(&gw->state_cond);
    pthread_cond_destroy(&gw->parts_cond);
    pthread_cond_destroy(&gw->stream_cond);
    pthread_mutex_destroy(&gw->lock);
    free(gw);
}

/* ------------------------------------------------------------------------------------------ */
/* Files                                                                                        */

static struct gw_file *file_new(struct gw_entry *e, struct gw_data *d, bool writer)
{
    struct gw_file *f = malloc(sizeof(*f));
    if (!f)
        return NULL;
    *f = (struct gw_file){.entry = e, .data = d, .writer = writer};
    e->refs++;
    d->refs++;
    if (writer)
        e->writers++;
    return f;
}

/* The object's current bytes into a new data file (unlocked: network). */
static int download_into(struct gateway *gw, const char *key, int fd, struct s3_error *err)
{
    if (s3_get_object_fd(gw->s3, gw->cfg->s3.source_bucket, key, NULL, fd, 0, NULL, err) == 0)
        return 0;
    if (strcmp(err->code, "NoSuchKey") == 0) {
        s3_error_clear(err);
        return ftruncate(fd, 0) == 0 ? 0 : -errno;
    }
    return -EIO;
}

/* A writable version of e's data: the one being written, or a new one (a copy of the committed
 * version unless truncating). Committed versions never change (a worker may be sending one);
 * the committed version stays in the spool as e->base until the new one commits, so a crash
 * meanwhile still has it. With the lock held. */
static int writable_data(struct gateway *gw, struct gw_entry *e, bool truncate)
{
    if (e->data && !e->data->committed && !e->data->committing) {
        if (truncate && e->data->stream)
            gw_stream_wrote(gw, e, e->data, 0, 0); /* its parts sent are no longer its bytes */
        return truncate && ftruncate(e->data->fd, 0) != 0 ? -errno : 0;
    }
    int rc = 0;
    struct gw_data *d = data_new(gw, &rc);
    if (!d)
        return rc;
    if (e->data && !truncate && (rc = copy_data(e->data->fd, d->fd)) != 0) {
        data_drop(gw, d);
        return rc;
    }
    if (e->data) {
        data_drop(gw, e->base);
        e->base = e->data;
    }
    gw_entry_set_data(gw, e, d);
    return 0;
}

/* For a writer that keeps the old bytes of a key with no local data: a new version holding the
 * object's bytes (empty when S3 has none). Downloaded before it becomes the entry's data, so a
 * failed download (S3 unreachable) leaves nothing behind that would be uploaded over the
 * object. With the lock held (released while downloading). */
static struct gw_data *fetched_version(struct gateway *gw, const char *key, int *rc,
                                       struct s3_error *err)
{
    struct gw_data *d = data_new(gw, rc);
    if (!d) {
        s3_error_set(err, 0, "LocalIOError", false, "cannot create a spool file: %s",
                     strerror(-*rc));
        return NULL;
    }
    pthread_mutex_unlock(&gw->lock);
    *rc = download_into(gw, key, d->fd, err);
    pthread_mutex_lock(&gw->lock);
    if (*rc != 0) {
        data_drop(gw, d);
        return NULL;
    }
    return d;
}

int gateway_open_write(struct gateway *gw, const char *key, bool truncate, mode_t mode,
                       struct gw_file **out, struct s3_error *err)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    struct gw_data *fetched = NULL;
    int rc = 0;
    if (!truncate && !(e && e->data)) {
        if (!(fetched = fetched_version(gw, key, &rc, err))) {
            pthread_mutex_unlock(&gw->lock);
            return rc;
        }
        e = gw_find(gw, key); /* the world may have changed while downloading */
    }
    if (!e)
        e = entry_new(gw, key, mode);
    if (e && fetched && !e->data)
        gw_entry_set_data(gw, e, fetched);
    else
        data_drop(gw, fetched); /* a writer came first: its bytes are the newer ones */
    rc = e ? writable_data(gw, e, truncate) : -ENOMEM;
    struct gw_file *f = rc == 0 ? file_new(e, e->data, true) : NULL;
    if (rc == 0 && !f)
        rc = -ENOMEM;
    if (f && e->state != GW_WRITING) {
        e->state = GW_WRITING;
        done_list_remove(gw, e);
    }
    pthread_mutex_unlock(&gw->lock);
    if (rc != 0) {
        s3_error_set(err, 0, "LocalIOError", false, "cannot create a spool file: %s",
                     strerror(-rc));
        return rc;
    }
    *out = f;
    return 0;
}

struct gw_file *gateway_open_read(struct gateway *gw, const char *key)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    struct gw_file *f = e && e->data ? file_new(e, e->data, false) : NULL;
    pthread_mutex_unlock(&gw->lock);
    return f;
}

int gateway_file_fd(const struct gw_file *f)
{
    return f->data->fd;
}

static enum gw_state state_after_close(struct gateway *gw, const char *key);

/* Parts of this version may go up before its close: the version is the entry's, still being
 * written, and its key is uploaded as it is. With the lock held. */
bool gw_may_stream(struct gateway *gw, const struct gw_entry *e, const struct gw_data *d)
{
    return e->data == d && !d->committed && !d->committing && !e->unlinked &&
           state_after_close(gw, e->key) == GW_PENDING;
}

void gateway_file_wrote(struct gateway *gw, struct gw_file *f, uint64_t offset, uint64_t len)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = f->entry;
    clock_gettime(CLOCK_REALTIME, &e->mtime);
    f->data->writes++;
    if (e->data == f->data && !f->data->committed && !f->data->committing)
        gw_stream_wrote(gw, e, f->data, offset, len ? offset + len : 0);
    pthread_mutex_unlock(&gw->lock);
}

/* The "F" line of e's version d (being written), as it is now. With the lock held. */
static int record_flushed(struct gateway *gw, struct gw_entry *e, struct gw_data *d)
{
    struct stat st;
    enum gw_state state = state_after_close(gw, e->key);
    if (state == GW_LOCAL_ONLY || fstat(d->fd, &st) != 0)
        return 0; /* junk is never uploaded; without fstat the line could not be checked */
    struct spool_record rec = {.id = d->id,
                               .seq = gw->next_seq++,
                               .key = e->key,
                               .state = state,
                               .mode = e->mode,
                               .mtime = e->mtime};
    d->flushed = true;
    d->flushed_writes = d->writes;
    return spool_write_flushed(gw->spool, &rec, (uint64_t)st.st_size, &st.st_mtim);
}

int gateway_file_flushed(struct gateway *gw, struct gw_file *f)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = f->entry;
    struct gw_data *d = f->data;
    int rc = 0;
    if (f->writer && !f->closed_early && e->data == d && !d->committed && !d->committing &&
        !d->write_error && !e->unlinked && (!d->flushed || d->writes != d->flushed_writes))
        rc = record_flushed(gw, e, d);
    pthread_mutex_unlock(&gw->lock);
    if (rc != 0)
        log_key_warn(e->key, NULL, "cannot record the close in the journal: %s", strerror(-rc));
    return rc;
}

int gateway_file_sync(struct gw_file *f)
{
    return fdatasync(f->data->fd) == 0 ? 0 : -errno;
}

static bool is_temporary(struct gateway *gw, const char *key)
{
    return conf_glob_match(gw->cfg->gateway.temp_globs, gw->cfg->gateway.temp_glob_count, key);
}

static bool is_junk(struct gateway *gw, const char *key)
{
    return conf_glob_match(gw->cfg->gateway.junk_globs, gw->cfg->gateway.junk_glob_count, key);
}

/* Which state committed data of `key` goes to. */
static enum gw_state state_after_close(struct gateway *gw, const char *key)
{
    if (is_junk(gw, key))
        return GW_LOCAL_ONLY;
    return is_temporary(gw, key) ? GW_HELD : GW_PENDING;
}

/* The last writer closed data that changed: the version becomes the committed one and goes to
 * the flusher (made durable there, then queued). With the lock held. */
static void commit(struct gateway *gw, struct gw_entry *e, uint64_t seq)
{
    e->data->committed = true;
    data_drop(gw, e->base);
    e->base = NULL;
    e->seq = seq;
    e->state = state_after_close(gw, e->key);
    e->hold_until = time(NULL) + (time_t)gw->cfg->gateway.temp_hold_seconds;
    free(e->reason);
    e->reason = NULL;
    if (e->state == GW_LOCAL_ONLY)
        return;
    e->refs++;
    gw_queue_push(&gw->flush_q, e);
}

/* The close of the last writer, before the commit: the bytes are synced, then the version's
 * journal line is appended (not synced: the flusher syncs the journal for many files at
 * once). So once close() returns, the file survives the gateway being killed, and after a
 * power cut a journal line never points to bytes that were not on disk. Without the lock. */
static int make_close_durable(struct gateway *gw, const struct gw_data *d,
                              const struct spool_record *rec)
{
    if (fdatasync(d->fd) != 0)
        return -errno;
    return spool_write_record(gw->spool, rec);
}

/* The last writer is done with d: it is made durable and committed. With the lock held (and
 * released while syncing). Returns 0 or -errno (the data is committed either way); *seq gets
 * the version's commit number. */
static int close_version(struct gateway *gw, struct gw_entry *e, struct gw_data *d, uint64_t *seq)
{
    /* a writer opening meanwhile gets a copy (committing counts as committed) */
    d->committing = true;
    *seq = gw->next_seq++;
    enum gw_state state = state_after_close(gw, e->key);
    struct spool_record rec = {.id = d->id,
                               .seq = *seq,
                               .key = strdup(e->key),
                               .state = state,
                               .mode = e->mode,
                               .mtime = e->mtime};
    pthread_mutex_unlock(&gw->lock);
    int rc = 0;
    if (state != GW_LOCAL_ONLY)
        rc = rec.key ? make_close_durable(gw, d, &rec) : -ENOMEM;
    if (rc != 0)
        log_key_error(rec.key, NULL,
                      "cannot make the file durable in the spool (%s): it is kept and uploaded "
                      "anyway",
                      strerror(-rc));
    free(rec.key);
    pthread_mutex_lock(&gw->lock);
    d->committing = false;
    if (!e->unlinked && e->data == d)
        commit(gw, e, *seq);
    else if (e->base == d)
        d->committed = true; /* superseded while closing: the fallback version */
    return rc;
}

void gateway_file_write_failed(struct gateway *gw, struct gw_file *f, int err)
{
    pthread_mutex_lock(&gw->lock);
    if (!f->data->write_error)
        f->data->write_error = err;
    pthread_mutex_unlock(&gw->lock);
}

/* The last writer of a version whose write failed: the version goes, the file keeps what it
 * had before (the committed version kept as base, re-queued; else what S3 has). With the lock
 * held. */
static void drop_failed_version(struct gateway *gw, struct gw_entry *e)
{
    const char *why = strerror(e->data->write_error);
    log_key_error(e->key, NULL,
                  "a write failed (%s): this version is not uploaded; the file keeps its "
                  "previous content (write it again)",
                  why);
    data_drop(gw, e->data);
    gw_entry_set_data(gw, e, NULL);
    if (e->base) { /* the version before this writer: it goes (on) up */
        gw_entry_set_data(gw, e, e->base);
        e->base = NULL;
        e->state = GW_PENDING;
        e->refs++;
        gw_queue_push(&gw->upload_q, e);
        return;
    }
    gw_finish(gw, e, GW_FAILED); /* kept a while for its status, like finished files */
    gw_set_failed(gw, e, "a write failed (%s): this version was not uploaded", why);
    gw_notify_failed(gw, e, NULL, "upload_failed",
                     "nothing was uploaded; the object keeps its previous content: free space "
                     "for the gateway's cache and write the file again");
}

int gateway_file_put(struct gateway *gw, struct gw_file *f)
{
    if (!f)
        return 0;
    int rc = 0;
    uint64_t seq;
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = f->entry;
    bool last =
        f->writer && --e->writers == 0 && !f->closed_early && !e->unlinked && e->data == f->data;
    if (last && f->data->write_error)
        drop_failed_version(gw, e);
    else if (last)
        rc = close_version(gw, e, f->data, &seq);
    gw_data_put(gw, f->data);
    gw_entry_release(gw, e);
    pthread_mutex_unlock(&gw->lock);
    free(f);
    return rc; /* the data is kept and still uploaded either way */
}

/* Still on its way up: waiting for the flusher or a worker (not for a retry or a rename). */
static bool upload_in_flight(const struct gateway *gw, const struct gw_entry *e, uint64_t seq)
{
    if (gw->stopping || e->unlinked || e->seq != seq)
        return false;
    return (e->state == GW_PENDING && !e->retry_at) || e->state == GW_UPLOADING;
}

int gateway_file_upload_now(struct gateway *gw, struct gw_file *f, struct s3_error *err)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = f->entry;
    int rc = 0;
    uint64_t seq;
    if (!f->writer || f->closed_early || e->writers != 1 || e->unlinked || e->data != f->data) {
        pthread_mutex_unlock(&gw->lock);
        return 0; /* another writer still has it open: its close uploads it */
    }
    f->closed_early = true;
    close_version(gw, e, f->data, &seq);
    while (upload_in_flight(gw, e, seq))
        pthread_cond_wait(&gw->state_cond, &gw->lock);
    if (gw->stopping && upload_in_flight(gw, e, seq)) {
        s3_error_set(err, 0, "LocalIOError", false,
                     "%s: unmounting before the upload ended (it resumes at the next mount)",
                     e->key);
        rc = -EIO;
    } else if (!e->unlinked && e->seq == seq && (e->state == GW_FAILED || e->retry_at)) {
        s3_error_set(err, 0, "UploadFailed", false, "%s: %s%s", e->key,
                     e->reason ? e->reason : "upload failed",
                     e->state == GW_FAILED ? "" : " (retried in the background)");
        rc = -EIO;
    }
    pthread_mutex_unlock(&gw->lock);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Queries                                                                                      */

static void info_of(const struct gw_entry *e, struct gw_info *info)
{
    struct stat st;
    info->size = e->data && fstat(e->data->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    info->mtime = e->mtime;
    info->mode = e->mode;
    info->state = e->state;
}

bool gateway_lookup(struct gateway *gw, const char *key, struct gw_info *info)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    bool found = e && e->data;
    if (found && info)
        info_of(e, info);
    pthread_mutex_unlock(&gw->lock);
    return found;
}

void gateway_list_local(struct gateway *gw, const char *dir_prefix, gw_list_fn fn, void *ctx)
{
    size_t plen = strlen(dir_prefix);
    pthread_mutex_lock(&gw->lock);
    for (size_t i = 0; i < gw->table_size; i++)
        for (struct gw_entry *e = gw->table[i]; e; e = e->hash_next) {
            if (!e->data || strncmp(e->key, dir_prefix, plen) != 0 || !e->key[plen])
                continue;
            const char *name = e->key + plen;
            const char *slash = strchr(name, '/');
            struct gw_info info;
            info_of(e, &info);
            int stop;
            if (slash) {
                char *sub = strndup(name, (size_t)(slash - name + 1));
                stop = sub ? fn(ctx, sub, &info) : 0;
                free(sub);
            } else {
                stop = fn(ctx, name, &info);
            }
            if (stop)
                goto out;
        }
out:
    pthread_mutex_unlock(&gw->lock);
}

bool gateway_has_local_under(struct gateway *gw, const char *prefix)
{
    size_t plen = strlen(prefix);
    if (plen == 0 || prefix[plen - 1] != '/')
        return false; /* folders only */
    pthread_mutex_lock(&gw->lock);
    bool found = *dir_slot(gw, prefix, plen) != NULL;
    pthread_mutex_unlock(&gw->lock);
    return found;
}

bool gateway_status(struct gateway *gw, const char *key, char *buf, size_t len)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    if (e) {
        if (e->state == GW_FAILED)
            snprintf(buf, len, "failed: %s", e->reason ? e->reason : "unknown");
        else if (e->state == GW_UPLOADED && e->await_since)
            snprintf(buf, len, "resizing"); /* by the function */
        else
            snprintf(buf, len, "%s", gw_state_name(e->state));
    }
    pthread_mutex_unlock(&gw->lock);
    return e != NULL;
}

bool gateway_set_mtime(struct gateway *gw, const char *key, const struct timespec *mtime)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    bool found = e && e->data;
    if (found) {
        e->mtime = *mtime;
        e->mtime_set = true;
        gw_record(gw, e);
    }
    pthread_mutex_unlock(&gw->lock);
    return found;
}

/* ------------------------------------------------------------------------------------------ */
/* Namespace changes                                                                            */

static void delete_source_object(struct gateway *gw, const char *key)
{
    struct s3_error err = {0};
    if (s3_delete_object(gw->s3, gw->cfg->s3.source_bucket, key, &err) != 0)
        log_key_warn(key, NULL, "cannot delete the old object after a rename: %s", err.message);
    gw_changed(gw, key, NULL);
}

int gateway_rename_local(struct gateway *gw, const char *from, const char *to)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, from);
    if (!e || !e->data) {
        pthread_mutex_unlock(&gw->lock);
        return -ENOENT;
    }
    char *key = strdup(to);
    if (!key) {
        pthread_mutex_unlock(&gw->lock);
        return -ENOMEM;
    }
    struct gw_entry *old = gw_find(gw, to);
    if (old)
        gateway_unlink_entry(gw, old);
    table_remove(gw, e);
    done_list_remove(gw, e);
    dir_counts_adjust(gw, e->key, -1);
    free(e->key);
    e->key = key;
    dir_counts_adjust(gw, e->key, 1);
    table_insert(gw, e);
    /* The object under `from` (an upload in flight, or an older version) must go; a busy worker
     * deletes it when its upload ends, else it goes now. */
    bool was_busy = e->busy;
    if (was_busy)
        e->requeue = true;
    if (!e->data->committed && e->data->flushed)
        record_flushed(gw, e, e->data); /* its "F" line names the new key */
    if (e->state == GW_HELD && !is_temporary(gw, to))
        e->hold_until = 0; /* the hold timer queues it at once */
    else if (e->state == GW_LOCAL_ONLY && !is_junk(gw, to))
        e->state = GW_HELD, e->hold_until = 0, e->refs++, gw_queue_push(&gw->flush_q, e);
    else if (e->state == GW_UPLOADED || e->state == GW_RESIZING || e->state == GW_DONE ||
             e->state == GW_FAILED) {
        e->state = GW_PENDING;
        if (!was_busy)
            e->refs++, gw_queue_push(&gw->upload_q, e);
    }
    gw_record(gw, e);
    pthread_cond_broadcast(&gw->hold_cond);
    pthread_mutex_unlock(&gw->lock);
    if (!was_busy)
        delete_source_object(gw, from);
    gateway_delete_renditions(gw, from);
    return 0;
}

void gateway_renamed(struct gateway *gw, const char *from, const char *to)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, from);
    struct gw_entry *old = gw_find(gw, to);
    char *key = strdup(to);
    if (key && e && !e->data && !e->busy && (!old || !old->data)) {
        if (old)
            entry_unlink(gw, old);
        table_remove(gw, e);
        free(e->key);
        e->key = key;
        key = NULL;
        free(e->renditions); /* they moved: recomputed from the new name */
        e->renditions = NULL;
        table_insert(gw, e);
    }
    free(key);
    pthread_mutex_unlock(&gw->lock);
}

/* Drops e's local data and takes it out of the table. With the lock held. */
void gateway_unlink_entry(struct gateway *gw, struct gw_entry *e)
{
    data_drop(gw, e->data);
    data_drop(gw, e->base);
    gw_entry_set_data(gw, e, NULL);
    e->base = NULL;
    entry_unlink(gw, e);
}

int gateway_unlink_local(struct gateway *gw, const char *key)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    int rc = e && e->data ? 0 : -ENOENT;
    if (e)
        gateway_unlink_entry(gw, e);
    pthread_mutex_unlock(&gw->lock);
    return rc;
}

static const char *format_by_extension(const char *key);

/* Could `key` have renditions? An image the gateway saw, or a name an image would have. */
static bool may_have_renditions(struct gateway *gw, const char *key)
{
    if (gw->cfg->resize.mode == CONF_RESIZE_OFF)
        return false;
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    bool image = e && e->format;
    pthread_mutex_unlock(&gw->lock);
    return image || format_by_extension(key);
}

void gateway_delete_renditions(struct gateway *gw, const char *key)
{
    if (gw->cfg->gateway.delete_renditions && may_have_renditions(gw, key))
        gw_task_push(gw, GW_TASK_DELETE_RENDITIONS, key, NULL);
}

void gateway_rename_renditions(struct gateway *gw, const char *from, const char *to)
{
    if (may_have_renditions(gw, from))
        gw_task_push(gw, GW_TASK_RENAME_RENDITIONS, from, to);
}

/* For objects the gateway has not seen: the image format the name suggests, or NULL. */
static const char *format_by_extension(const char *key)
{
    static const char *const table[][2] = {{"jpg", "jpeg"},  {"jpeg", "jpeg"}, {"jpe", "jpeg"},
                                           {"png", "png"},   {"gif", "gif"},   {"webp", "webp"},
                                           {"tif", "tiff"},  {"tiff", "tiff"}, {"heic", "heif"},
                                           {"heif", "heif"}, {"avif", "avif"}};
    const char *slash = strrchr(key, '/');
    const char *dot = strrchr(slash ? slash : key, '.');
    for (size_t i = 0; dot && i < sizeof(table) / sizeof(table[0]); i++)
        if (strcasecmp(dot + 1, table[i][0]) == 0)
            return table[i][1];
    return NULL;
}

/* A file the gateway uploaded and found not to be an image has no renditions. */
static bool e_is_plain_file(struct gateway *gw, const char *key, const char *format)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    bool plain = e && !format && e->state >= GW_UPLOADED && e->state != GW_FAILED;
    pthread_mutex_unlock(&gw->lock);
    return plain || gw->cfg->resize.mode == CONF_RESIZE_OFF;
}

char *gateway_rendition_keys(struct gateway *gw, const char *key)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_entry *e = gw_find(gw, key);
    char *format = e && e->format ? strdup(e->format) : NULL;
    char *made = e && e->renditions ? strdup(e->renditions) : NULL;
    pthread_mutex_unlock(&gw->lock);
    if (made) {
        free(format);
        return made;
    }
    if (e_is_plain_file(gw, key, format)) {
        free(format);
        return NULL;
    }
    const char *guess = format ? format : format_by_extension(key);
    if (!guess) {
        free(format);
        return NULL;
    }
    char **keys = NULL;
    size_t n = gw_rendition_candidates(gw, key, guess, &keys);
    free(format);
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(keys[i]) + 1;
    char *text = n ? malloc(len) : NULL;
    char *p = text;
    for (size_t i = 0; i < n; i++) {
        if (p)
            p += sprintf(p, "%s\n", keys[i]);
        free(keys[i]);
    }
    free(keys);
    return text;
}

bool gateway_spool_full(struct gateway *gw)
{
    return gw->spool_full;
}

static bool retry_one(struct gateway *gw, struct gw_entry *e)
{
    bool failed = e->state == GW_FAILED && e->data;
    bool waiting = (e->state == GW_PENDING || e->state == GW_UPLOADED) && e->retry_at;
    if (!(failed || waiting) || e->busy || e->unlinked)
        return false;
    if (failed)
        e->state = GW_PENDING;
    e->retry_at = 0;
    e->attempts = 0;
    free(e->reason);
    e->reason = NULL;
    if (failed)
        gw_record(gw, e);
    e->refs++;
    gw_queue_push(e->state == GW_UPLOADED ? &gw->resize_q : &gw->upload_q, e);
    return true;
}

size_t gateway_retry(struct gateway *gw, const char *key, bool subtree)
{
    size_t n = 0, len = strlen(key);
    pthread_mutex_lock(&gw->lock);
    if (!subtree) {
        struct gw_entry *e = gw_find(gw, key);
        n = e && retry_one(gw, e);
    } else {
        for (size_t i = 0; i < gw->table_size; i++)
            for (struct gw_entry *e = gw->table[i]; e; e = e->hash_next)
                if (strncmp(e->key, key, len) == 0)
                    n += retry_one(gw, e);
    }
    gw->requeued += n;
    pthread_mutex_unlock(&gw->lock);
    if (n)
        log_info("retry: %zu file%s under '%s' queued again", n, n == 1 ? "" : "s", key);
    return n;
}

void gateway_stats(struct gateway *gw, struct gw_stats *out)
{
    pthread_mutex_lock(&gw->lock);
    *out = gw->stats;
    memset(out->count, 0, sizeof(out->count));
    out->bytes_pending = 0;
    for (size_t i = 0; i < gw->table_size; i++)
        for (struct gw_entry *e = gw->table[i]; e; e = e->hash_next) {
            out->count[e->state]++;
            out->resize_waiting += e->state == GW_UPLOADED && !e->in_done;
            struct stat st;
            if (e->data && e->state < GW_UPLOADED && e->state != GW_LOCAL_ONLY &&
                fstat(e->data->fd, &st) == 0)
                out->bytes_pending += (uint64_t)st.st_size;
        }
    pthread_mutex_unlock(&gw->lock);
}
