/* renditions: resize one uploaded image from its spool file (one decode, every size) and put
 * each rendition in the destination bucket; delete or move the renditions of a key. */
#include "gateway_internal.h"
#include "log.h"
#include "resize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool contains(char **keys, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i], key) == 0)
            return true;
    return false;
}

/* With format NULL: every key any format could give (for deleting and moving). */
size_t gw_rendition_candidates(struct gateway *gw, const char *key, const char *format, char ***out)
{
    static const char *const all[] = {"jpg", "png", "webp", "avif"};
    const struct config *cfg = gw->cfg;
    size_t cap = cfg->resize.size_count * 4, n = 0;
    char **keys = calloc(cap, sizeof(*keys));
    for (size_t i = 0; keys && i < cfg->resize.size_count; i++) {
        const struct conf_size *size = &cfg->resize.sizes[i];
        for (size_t j = 0; j < 4; j++) {
            const char *ext = format ? resize_output_extension(size, format) : all[j];
            char *k = conf_rendition_key(cfg, size, key, ext);
            if (k && !contains(keys, n, k))
                keys[n++] = k;
            else
                free(k);
            if (format)
                break;
        }
    }
    *out = keys;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Making them                                                                                  */

struct put_ctx {
    struct gateway *gw;
    struct gw_job *job;
    char *reason;
    size_t reason_len;
    size_t made;
    char *keys; /* one per line */
    size_t keys_len;
    bool transient; /* a put failed for a reason that may pass */
    double put_ms;  /* time spent putting renditions (not resizing) */
};

/* Remembers a rendition for the notice (the key is taken over) and counts it. */
static void note_made(struct put_ctx *p, const struct rendition *r, char *key)
{
    struct gw_job *job = p->job;
    struct notify_rendition *made = realloc(job->made, (job->made_count + 1) * sizeof(*made));
    if (!made) {
        free(key);
        return;
    }
    job->made = made;
    made[job->made_count++] = (struct notify_rendition){
        .size = r->size->name,
        .key = key,
        .width = (unsigned)r->width,
        .height = (unsigned)r->height,
        .format = r->format,
        .bytes = r->len,
    };
    struct metrics *m = p->gw->metrics;
    if (m) {
        metrics_add(m, METRICS_RENDITIONS, 1);
        metrics_add(m, METRICS_RENDITION_BYTES, r->len);
        metrics_observe_resize(m, (size_t)(r->size - p->gw->cfg->resize.sizes), r->ms / 1e3);
    }
}

static int append_key(struct put_ctx *p, const char *key)
{
    size_t len = strlen(key);
    char *keys = realloc(p->keys, p->keys_len + len + 2);
    if (!keys)
        return -1;
    memcpy(keys + p->keys_len, key, len);
    p->keys_len += len;
    keys[p->keys_len++] = '\n';
    keys[p->keys_len] = '\0';
    p->keys = keys;
    return 0;
}

static int put_rendition(void *ctx, const struct rendition *r)
{
    struct put_ctx *p = ctx;
    const struct config *cfg = p->gw->cfg;
    char *key = conf_rendition_key(cfg, r->size, p->job->key, r->extension);
    if (!key) {
        snprintf(p->reason, p->reason_len, "out of memory");
        return -1;
    }
    /* Metadata must be printable ASCII: the key goes percent-encoded ('/' kept), as in URLs. */
    char *source_key = aws_uri_encode(p->job->key, strlen(p->job->key), true);
    if (!source_key) {
        free(key);
        snprintf(p->reason, p->reason_len, "out of memory");
        return -1;
    }
    struct aws_header meta[] = {{"source-etag", p->job->etag}, {"source-key", source_key}};
    struct s3_put_options put = {
        .content_type = r->mime,
        .metadata = meta,
        .metadata_count = 2,
        .sse = conf_sse_name(cfg->s3.sse),
        .sse_kms_key_id = cfg->s3.sse_kms_key_id[0] ? cfg->s3.sse_kms_key_id : NULL,
    };
    struct s3_body body = s3_body_mem(r->data, r->len);
    struct s3_error err = {0};
    double t0 = gw_now_ms();
    int rc = s3_put_object(p->gw->s3, cfg->s3.destination_bucket, key, &body, &put, NULL, &err);
    p->put_ms += gw_now_ms() - t0;
    free(source_key);
    if (rc != 0) {
        snprintf(p->reason, p->reason_len, "rendition %s: %s", r->size->name, err.message);
        p->transient = gw_is_transient(&err);
    } else {
        p->made++;
        append_key(p, key);
        log_key_debug(p->job->key, p->job->request_id, "rendition %s: %dx%d %s, %zu bytes", key,
                      r->width, r->height, r->format, r->len);
        note_made(p, r, key);
        key = NULL;
    }
    free(key);
    return rc;
}

/* The source's ETag when the journal did not have it (a resize resumed after a restart). */
void gw_fill_etag(struct gateway *gw, struct gw_job *job)
{
    if (job->etag[0])
        return;
    struct s3_object_info info = {0};
    struct s3_error err = {0};
    if (s3_head_object(gw->s3, gw->cfg->s3.source_bucket, job->key, &info, &err) == 0)
        snprintf(job->etag, sizeof(job->etag), "%s", info.etag);
    s3_object_info_clear(&info);
}

/* True when every rendition exists and was made from this very source (its source-etag): a
 * job repeated after a restart is then skipped. One HEAD when they do not (the usual case). */
bool gw_renditions_current(struct gateway *gw, struct gw_job *job)
{
    if (!job->etag[0] || !job->format)
        return false;
    char **keys = NULL;
    size_t n = gw_rendition_candidates(gw, job->key, job->format, &keys);
    bool current = n > 0;
    size_t len = 1;
    for (size_t i = 0; i < n && current; i++) {
        struct s3_object_info info = {0};
        struct s3_error err = {0};
        const char *etag = NULL;
        if (s3_head_object(gw->s3, gw->cfg->s3.destination_bucket, keys[i], &info, &err) == 0)
            etag = s3_object_info_meta(&info, "source-etag");
        current = etag && strcmp(etag, job->etag) == 0;
        s3_object_info_clear(&info);
        len += strlen(keys[i]) + 1;
    }
    if (current && (job->renditions = malloc(len)) != NULL) {
        char *p = job->renditions;
        for (size_t i = 0; i < n; i++)
            p += sprintf(p, "%s\n", keys[i]);
    }
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    return current;
}

int gw_make_renditions(struct gateway *gw, struct gw_job *job, char *reason, size_t reason_len,
                       bool *transient)
{
    *transient = false;
    const struct config *cfg = gw->cfg;
    gw_fill_etag(gw, job);
    struct stat st_src;
    if (fstat(job->data->fd, &st_src) == 0)
        job->size = (uint64_t)st_src.st_size;
    if (gw_renditions_current(gw, job)) {
        log_key_info(job->key, job->request_id,
                     "renditions already made from this version, skipped");
        return 0;
    }
    struct resize_options opts = {
        .sizes = cfg->resize.sizes,
        .size_count = cfg->resize.size_count,
        .max_pixels = cfg->resize.max_pixels,
        .max_file_bytes = (uint64_t)cfg->resize.max_file_mb << 20,
        .background = cfg->resize.background,
    };
    struct put_ctx p = {gw, job, reason, reason_len, 0, NULL, 0, false, 0};
    struct resize_error rerr = {{0}};
    struct resize_source_info info = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum resize_status st = resize_fd(job->data->fd, &opts, put_rendition, &p, &info, &rerr);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    job->width = info.width > 0 ? (unsigned)info.width : 0;
    job->height = info.height > 0 ? (unsigned)info.height : 0;
    if (st == RESIZE_OK) {
        double total_ms =
            (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        if (gw->metrics)
            metrics_observe_image(gw->metrics, (total_ms - p.put_ms) / 1e3);
        log_key_info(job->key, job->request_id, "resized (%dx%d %s): %zu renditions in %.0f ms",
                     info.width, info.height, info.format ? info.format : "?", p.made, total_ms);
        job->renditions = p.keys;
        return 0;
    }
    free(p.keys);
    if (st == RESIZE_NOT_IMAGE)
        return 0;
    if (!reason[0] || strcmp(rerr.reason, "stopped by the caller") != 0)
        snprintf(reason, reason_len, "%s", rerr.reason);
    *transient = p.transient;
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Deleting and moving them                                                                     */

static void delete_renditions(struct gateway *gw, const char *key)
{
    char **keys = NULL;
    size_t n = gw_rendition_candidates(gw, key, NULL, &keys);
    struct s3_error err = {0};
    size_t failed = 0;
    if (n && s3_delete_objects(gw->s3, gw->cfg->s3.destination_bucket, (const char *const *)keys, n,
                               &failed, &err) != 0)
        log_key_warn(key, NULL, "%zu rendition(s) could not be deleted: %s", failed, err.message);
    else if (n)
        log_key_debug(key, NULL, "renditions deleted");
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
}

static void move_renditions(struct gateway *gw, const char *from, const char *to)
{
    const char *bucket = gw->cfg->s3.destination_bucket;
    char **old = NULL, **new = NULL;
    size_t n = gw_rendition_candidates(gw, from, NULL, &old);
    size_t m = gw_rendition_candidates(gw, to, NULL, &new);
    for (size_t i = 0; i < n && i < m; i++) {
        struct s3_error err = {0};
        struct s3_object_info info = {0};
        if (s3_head_object(gw->s3, bucket, old[i], &info, &err) != 0) {
            s3_object_info_clear(&info);
            continue; /* that size/format was not made */
        }
        s3_object_info_clear(&info);
        if (s3_copy_object(gw->s3, bucket, old[i], bucket, new[i], NULL, NULL, &err) != 0 ||
            s3_delete_object(gw->s3, bucket, old[i], &err) != 0)
            log_warn("cannot move rendition %s to %s: %s", old[i], new[i], err.message);
    }
    for (size_t i = 0; i < n; i++)
        free(old[i]);
    for (size_t i = 0; i < m; i++)
        free(new[i]);
    free(old);
    free(new);
}

void gw_run_task(struct gateway *gw, const struct gw_task *task)
{
    if (task->kind == GW_TASK_DELETE_RENDITIONS)
        delete_renditions(gw, task->from);
    else
        move_renditions(gw, task->from, task->to);
}
