/* status: the queue as JSON, for MOUNTPOINT/.s3imgfs/status and `s3imgfs status`. */
#include "gateway_internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static json_t *failures_json(struct gateway *gw)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < GW_FAILURES_KEPT; i++) {
        /* newest first */
        const struct gw_failure *f =
            &gw->failures[(gw->failure_next + GW_FAILURES_KEPT - 1 - i) % GW_FAILURES_KEPT];
        if (!f->key)
            break;
        json_array_append_new(list,
                              json_pack("{s:s, s:s, s:I}", "key", f->key, "reason",
                                        f->reason ? f->reason : "", "time", (json_int_t)f->when));
    }
    return list;
}

#define IN_FLIGHT_SHOWN 20

/* The uploads running now: key, size, bytes sent. With the lock held. */
static json_t *in_flight_json(struct gateway *gw)
{
    json_t *list = json_array();
    for (size_t i = 0; list && i < gw->table_size; i++)
        for (struct gw_entry *e = gw->table[i]; e; e = e->hash_next) {
            struct stat st;
            if (e->state != GW_UPLOADING || !e->data || fstat(e->data->fd, &st) != 0)
                continue;
            if (json_array_size(list) == IN_FLIGHT_SHOWN)
                return list;
            json_array_append_new(
                list, json_pack("{s:s, s:I, s:I}", "key", e->key, "bytes", (json_int_t)st.st_size,
                                "sent", (json_int_t)__atomic_load_n(&e->sent, __ATOMIC_RELAXED)));
        }
    return list;
}

/* The notifier's counters; NULL (the key is left out) without notices. */
static json_t *notices_json(struct gateway *gw)
{
    if (!notifier_enabled(gw->notifier))
        return NULL;
    struct notifier_stats ns;
    notifier_get_stats(gw->notifier, &ns);
    return json_pack("{s:I, s:I, s:I, s:I, s:I}", "posted", (json_int_t)ns.posted, "sent",
                     (json_int_t)ns.sent, "pending", (json_int_t)ns.pending, "failed_attempts",
                     (json_int_t)ns.retries, "dropped", (json_int_t)ns.dropped);
}

char *gateway_status_json(struct gateway *gw)
{
    struct gw_stats st;
    gateway_stats(gw, &st);
    json_t *states = json_object();
    static const enum gw_state shown[] = {GW_PENDING,  GW_UPLOADING, GW_UPLOADED,
                                          GW_RESIZING, GW_DONE,      GW_FAILED};
    for (size_t i = 0; states && i < sizeof(shown) / sizeof(shown[0]); i++) {
        size_t n = st.count[shown[i]];
        if (shown[i] == GW_PENDING)
            n += st.count[GW_WRITING] + st.count[GW_HELD];
        if (shown[i] == GW_UPLOADED) /* "uploaded" is final; waiting images are "resizing" */
            n -= st.resize_waiting;
        if (shown[i] == GW_RESIZING)
            n += st.resize_waiting;
        json_object_set_new(states, gw_state_name(shown[i]), json_integer((json_int_t)n));
    }
    pthread_mutex_lock(&gw->lock);
    json_t *failures = failures_json(gw);
    json_t *in_flight = in_flight_json(gw);
    time_t started = gw->start_time;
    json_int_t batch_done = (json_int_t)gw->batch_done, requeued = (json_int_t)gw->requeued;
    json_int_t rate = (json_int_t)gw_upload_rate(gw);
    pthread_mutex_unlock(&gw->lock);
    json_t *root =
        json_pack("{s:o?, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o?, s:o?, s:o?}",
                  "files", states, "bytes_pending", (json_int_t)st.bytes_pending, "local_only",
                  (json_int_t)st.count[GW_LOCAL_ONLY], "uploads_done", (json_int_t)st.uploads_done,
                  "bytes_uploaded", (json_int_t)st.bytes_uploaded, "upload_rate", rate,
                  "renditions_done", (json_int_t)st.renditions_done, "retries",
                  (json_int_t)st.retries, "request_retries", (json_int_t)s3client_retries(gw->s3),
                  "requeued", requeued, "batch_done", batch_done, "started", (json_int_t)started,
                  "in_flight", in_flight, "last_failures", failures, "notices", notices_json(gw));
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (!text)
        return NULL;
    size_t len = strlen(text);
    char *out = realloc(text, len + 2); /* a final newline, for `cat` */
    if (!out) {
        free(text);
        return NULL;
    }
    out[len] = '\n';
    out[len + 1] = '\0';
    return out;
}

/* ------------------------------------------------------------------------------------------ */
/* Metrics: the counters of gw->metrics plus what only the gateway knows                        */

#define SAMPLE_MAX 16

/* Fills s[] with the queue's gauges and the clients' counters; returns how many. */
static size_t gateway_samples(struct gateway *gw, struct metrics_sample *s)
{
    struct gw_stats st;
    gateway_stats(gw, &st);
    static const char files_help[] = "files in the gateway's queue, by state";
    static const char *const state_names[] = {"pending", "uploading", "resizing", "failed"};
    double states[] = {
        (double)(st.count[GW_WRITING] + st.count[GW_HELD] + st.count[GW_PENDING]),
        (double)st.count[GW_UPLOADING],
        (double)(st.count[GW_RESIZING] + st.resize_waiting),
        (double)st.count[GW_FAILED],
    };
    size_t n = 0;
    for (size_t i = 0; i < 4; i++)
        s[n++] =
            (struct metrics_sample){"s3imgfs_queue_files", files_help, METRICS_TYPE_GAUGE, "state",
                                    state_names[i],        states[i]};
    s[n++] = (struct metrics_sample){
        "s3imgfs_queue_bytes",   "bytes not yet in S3", METRICS_TYPE_GAUGE, NULL, NULL,
        (double)st.bytes_pending};
    s[n++] = (struct metrics_sample){"s3imgfs_spool_bytes",
                                     "bytes in the local spool",
                                     METRICS_TYPE_GAUGE,
                                     NULL,
                                     NULL,
                                     (double)atomic_load(&gw->spool_bytes)};
    s[n++] = (struct metrics_sample){"s3imgfs_request_retries_total",
                                     "S3 requests sent again after a transient failure",
                                     METRICS_TYPE_COUNTER,
                                     NULL,
                                     NULL,
                                     (double)s3client_retries(gw->s3)};
    if (gw->notifier) {
        struct notifier_stats ns;
        notifier_get_stats(gw->notifier, &ns);
        s[n++] = (struct metrics_sample){"s3imgfs_notices_pending",
                                         "notices waiting to be delivered",
                                         METRICS_TYPE_GAUGE,
                                         NULL,
                                         NULL,
                                         (double)ns.pending};
    }
    return n;
}

char *gateway_metrics_text(struct gateway *gw)
{
    if (!gw->metrics)
        return strdup("");
    struct metrics_sample s[SAMPLE_MAX];
    size_t n = gateway_samples(gw, s);
    return metrics_prometheus(gw->metrics, s, n);
}

char *gw_metrics_emf(struct gateway *gw)
{
    struct metrics_sample s[SAMPLE_MAX];
    size_t n = gateway_samples(gw, s);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    return metrics_emf(gw->metrics, "s3imgfs", gw->cfg->s3.source_bucket, ms, s, n);
}
