/* Private to gateway/: the entries, the queues and the workers. */
#ifndef S3IMGFS_GATEWAY_INTERNAL_H
#define S3IMGFS_GATEWAY_INTERNAL_H

#include "gateway.h"
#include "metrics.h"
#include "notify.h"
#include "spool.h"

#include <pthread.h>
#include <stdatomic.h>

/* One version of a file's bytes in the spool. Reference-counted: the entry holds one, and so
 * does a worker sending it; the files go when the last reference goes and `obsolete` is set. */
struct gw_data {
    uint64_t id;
    int fd;
    unsigned refs;
    bool committed;  /* has a journal record; immutable from then on */
    bool committing; /* being synced at its last writer's close */
    bool obsolete;   /* superseded, uploaded and resized, or unlinked: remove when unused */
    /* A multipart upload of these bytes not completed yet (to resume after a failure or a
     * restart; aborted when the data goes): its key, id and part size. NULL when none. */
    char *upload_key, *upload_id;
    uint64_t part_size;
    struct gw_stream *stream; /* parts sent while it is written (stream.c); NULL: none */
    int write_error;          /* errno of a write that failed: the version is not uploaded */
    uint64_t writes;          /* writes and truncations so far */
    uint64_t flushed_writes;  /* `writes` at the last "F" line (spool_write_flushed) */
    bool flushed;             /* has an "F" line */
};

/* Everything the gateway knows about one key. Guarded by gateway.lock. */
struct gw_entry {
    char *key;
    struct gw_data *data; /* NULL once the spool no longer holds it */
    struct gw_data *base; /* the committed version while `data` is being written */
    enum gw_state state;
    mode_t mode;
    struct timespec mtime;
    uint64_t seq;      /* commit number of `data` */
    unsigned writers;  /* open writer references */
    unsigned refs;     /* open gw_file references (writers included) */
    bool busy;         /* a worker is sending or resizing it */
    bool unlinked;     /* removed from the table; freed when unused */
    bool requeue;      /* renamed or rewritten while busy: the worker redoes it */
    time_t hold_until; /* GW_HELD: when it is uploaded under its own name */
    time_t retry_at;   /* GW_PENDING after a transient failure: not before this */
    unsigned attempts; /* failed attempts of the current version */
    uint64_t sent;     /* GW_UPLOADING: bytes sent so far (atomic; see s3_body.progress) */
    bool mtime_set;    /* utimens gave the mtime (not the last write's): it must be uploaded */
    bool maybe_sent;   /* was being uploaded when the gateway stopped: S3 may have it already */
    char *reason;      /* GW_FAILED */
    char *format;      /* sniffed image format ("jpeg"), NULL for other files */
    char etag[128];    /* of the upload of `data` ("" = unknown): saves the resize a HEAD */
    char *renditions;  /* the keys the last resize wrote, one per line */
    /* mode = lambda: waiting for the function's renditions of `data` since (0: not yet), its
     * checks so far, and whether the gateway invoked it */
    time_t await_since;
    unsigned await_checks;
    bool invoked;
    struct gw_entry *hash_next;
    struct gw_entry *done_next, *done_prev; /* the FIFO of finished entries kept for their
                                               status */
    bool in_done;
};

struct gw_file {
    struct gw_entry *entry;
    struct gw_data *data; /* the version this reference reads or writes */
    bool writer;
    bool closed_early; /* committed by gateway_file_upload_now: not again when dropped */
};

/* A FIFO of entries for one pool of workers. */
struct gw_queue {
    struct gw_entry **items;
    size_t head, count, cap;
    pthread_cond_t cond;
};

enum gw_task_kind {
    GW_TASK_DELETE_RENDITIONS, /* from: the source key */
    GW_TASK_RENAME_RENDITIONS, /* from, to: source keys */
    GW_TASK_ABORT_UPLOAD,      /* from: the key, to: the multipart upload id */
    GW_TASK_PROBE              /* is S3 back? (files wait for a transient retry); from: "" */
};
struct gw_task {
    enum gw_task_kind kind;
    char *from, *to;
    struct gw_task *next;
};

#define DIR_BUCKETS      4096
#define GW_FAILURES_KEPT 10
struct dir_count;

struct gateway {
    const struct config *cfg;
    struct s3client *s3;
    struct notifier *notifier; /* may be NULL */
    struct metrics *metrics;   /* may be NULL */
    gw_changed_fn on_changed;
    void *on_changed_ctx;
    struct spool *spool;

    pthread_mutex_t lock;
    struct gw_entry **table;
    size_t table_size, entry_count;
    struct gw_entry *done_head, *done_tail;
    size_t done_count;
    struct dir_count *dirs[DIR_BUCKETS];
    uint64_t next_seq;

    struct gw_queue flush_q;  /* committed, to be made durable */
    struct gw_queue upload_q; /* durable, to be uploaded */
    struct gw_queue resize_q; /* uploaded images */
    struct gw_task *tasks, *tasks_tail;
    struct gw_part_task *parts, *parts_tail; /* parts of files being written (stream.c) */
    pthread_cond_t parts_cond;               /* a part was queued */
    pthread_cond_t stream_cond;              /* a stream's part or upload was done */
    pthread_cond_t tasks_cond;
    pthread_cond_t hold_cond;  /* wakes the hold timer */
    pthread_cond_t state_cond; /* an upload ended (for gateway_file_upload_now) */

    pthread_t *threads;
    size_t thread_count;
    bool stopping;

    struct gw_stats stats;
    struct gw_failure {
        char *key, *reason;
        time_t when;
    } failures[GW_FAILURES_KEPT]; /* a ring: the last failures, for the status file */
    size_t failure_next;
    time_t start_time;
    uint64_t batch_done; /* files finished since the queue was last seen empty */
    time_t last_probe;   /* when a GW_TASK_PROBE was last queued */
    time_t last_emf;     /* when the metrics were last written to the log */
    bool probing;        /* one is queued or running */
    uint64_t requeued;   /* files gateway_retry re-queued */
    /* bytes uploaded (in-flight ones included) at each of the timer's last RATE_SAMPLES
     * seconds: the upload rate */
#define RATE_SAMPLES 11
    uint64_t rate_bytes[RATE_SAMPLES];
    unsigned rate_next, rate_filled;
    _Atomic uint64_t spool_bytes; /* bytes in the spool, as of the timer's last look */
    _Atomic bool spool_full;      /* cache_max_mb reached, or the cache disk nearly full */
};

/* gateway.c */
struct gw_entry *gw_find(struct gateway *gw, const char *key);
void gw_data_put(struct gateway *gw, struct gw_data *d);
void gw_entry_release(struct gateway *gw, struct gw_entry *e);
void gw_set_failed(struct gateway *gw, struct gw_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void gw_finish(struct gateway *gw, struct gw_entry *e, enum gw_state final);
/* Bytes per second uploaded over the last 10 s. With the lock held. */
uint64_t gw_upload_rate(const struct gateway *gw);
void gw_record(struct gateway *gw, struct gw_entry *e);
void gw_changed(struct gateway *gw, const char *key, const struct gw_info *info);
void gateway_unlink_entry(struct gateway *gw, struct gw_entry *e);
/* Sets e->data (NULL: no local data), keeping the folder counts right. With the lock held. */
void gw_entry_set_data(struct gateway *gw, struct gw_entry *e, struct gw_data *d);
/* Records (journal "M" line) the multipart upload d's bytes are going up in; upload_id NULL:
 * none any more. With the lock held. */
void gw_data_set_upload(struct gateway *gw, struct gw_data *d, const char *key,
                        const char *upload_id, uint64_t part_size);

struct gw_job;
/* notices.c: the notice of one file's result (lock held or not: nothing here takes it) */
void gw_notify_done(struct gateway *gw, const struct gw_job *job, const char *event);
/* e failed for good (e->reason): `event` "upload_failed" or "resize_failed"; `action` what
 * happens to the file now. With the lock held. */
void gw_notify_failed(struct gateway *gw, const struct gw_entry *e, const struct gw_job *job,
                      const char *event, const char *action);
/* "v<hex id>": names one version of a file in the log and in its notice. */
void gw_request_id(uint64_t data_id, char *out, size_t len);
double gw_now_ms(void);

/* status.c: the metrics as CloudWatch EMF lines, for the log ([log] metrics_seconds). Without
 * the lock. malloc'd. */
char *gw_metrics_emf(struct gateway *gw);

/* workers.c */
void gw_queue_init(struct gw_queue *q);
void gw_queue_destroy(struct gw_queue *q);
int gw_queue_push(struct gw_queue *q, struct gw_entry *e); /* with gw->lock held */
int gw_workers_start(struct gateway *gw, struct s3_error *err);
void gw_workers_stop(struct gateway *gw);
/* Queues work for the task thread (from: a key; to: a key or NULL). Without / with the lock. */
void gw_task_push(struct gateway *gw, enum gw_task_kind kind, const char *from, const char *to);
void gw_task_push_locked(struct gateway *gw, enum gw_task_kind kind, const char *from,
                         const char *to);

/* upload.c: sends one entry's data; called by an upload worker without the lock. */
struct gw_job {
    char *key;
    struct gw_data *data;
    uint64_t seq;
    mode_t mode;
    struct timespec mtime;
    char *format;     /* sniffed image format or NULL (set by gw_upload) */
    char etag[128];   /* the uploaded object's (set by gw_upload) */
    uint64_t size;    /* bytes uploaded (set by gw_upload) */
    char *renditions; /* the keys written, one per line (set by gw_make_renditions) */
    /* what gw_make_renditions made, for the notice (keys owned; NULL when the renditions were
     * already there) */
    struct notify_rendition *made;
    size_t made_count;
    unsigned width, height; /* the source image's (set by gw_make_renditions) */
    double started_ms;      /* CLOCK_MONOTONIC ms when the job began */
    char request_id[24];    /* the version's, for the log and the notice */
    uint64_t *progress;     /* bytes sent, for the status file (the entry's `sent`) */
    bool mtime_set;         /* the entry's */
    bool maybe_sent;        /* the entry's: check S3 before sending */
};
int gw_upload(struct gateway *gw, struct gw_job *job, char *reason, size_t reason_len,
              bool *transient);
/* A failure a later attempt may not have (5xx, throttling, no connection). */
bool gw_is_transient(const struct s3_error *err);
/* The Content-Type of a spool file from its first bytes (else its name); *format gets the image
 * format (malloc'd) or NULL. */
const char *gw_sniff(int fd, const char *key, char **format);

/* gateway.c: may parts of d (e's data) go up before its close? With the lock held. */
bool gw_may_stream(struct gateway *gw, const struct gw_entry *e, const struct gw_data *d);

/* stream.c: parts of big files sent while they are written */
struct gw_stream;
struct gw_part_task;
/* d (of e, not committed, to be uploaded under its name) was written in [offset, end) or
 * truncated to offset (end 0): a write behind the parts sent makes the stream stale; complete
 * parts are queued. With the lock held. */
void gw_stream_wrote(struct gateway *gw, const struct gw_entry *e, struct gw_data *d,
                     uint64_t offset, uint64_t end);
/* Before the upload job of d: waits for the parts in flight, then keeps d's multipart upload
 * when the stream can be completed (returns how many parts it sent) or aborts it (0). Frees
 * the stream. With the lock held (released while waiting). */
int gw_stream_settle(struct gateway *gw, struct gw_data *d, const struct gw_job *job);
void gw_stream_free(struct gw_stream *s);
void *gw_stream_main(void *gw);
/* After the threads stopped: drops the parts still queued. */
void gw_stream_drop_tasks(struct gateway *gw);

/* Aborts a multipart upload of the source bucket (the task thread), logging the outcome. */
void gw_abort_upload(struct gateway *gw, const char *key, const char *upload_id);

/* renditions.c */
/* Makes and puts every rendition. Returns 0, or -1 with the reason and *transient (a put failed
 * in a way a later attempt may not: the job is worth repeating). */
int gw_make_renditions(struct gateway *gw, struct gw_job *job, char *reason, size_t reason_len,
                       bool *transient);
void gw_run_task(struct gateway *gw, const struct gw_task *task);
size_t gw_rendition_candidates(struct gateway *gw, const char *key, const char *format,
                               char ***out);
/* job->etag from a HEAD of the source when it is not known (a job resumed after a restart). */
void gw_fill_etag(struct gateway *gw, struct gw_job *job);
/* True when every rendition of job's source exists and was made from job->etag (its metadata
 * source-etag); job->renditions then lists them. One HEAD per rendition. */
bool gw_renditions_current(struct gateway *gw, struct gw_job *job);

/* function.c ([resize] mode = lambda): invokes the function first when asked (and configured),
 * then checks for its renditions. Returns 0 (all there), 1 (not yet), or -1 with the reason
 * and *transient (the invocation failed). */
int gw_await_renditions(struct gateway *gw, struct gw_job *job, bool invoke_first, char *reason,
                        size_t reason_len, bool *transient);

#endif
