/* upload: one spooled file to the source bucket. */
#include "gateway_internal.h"
#include "log.h"
#include "resize.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* Content types of common files the image sniffer does not know, by extension. */
static const char *mime_by_extension(const char *key)
{
    static const char *const table[][2] = {
        {"txt", "text/plain"},      {"html", "text/html"},       {"htm", "text/html"},
        {"css", "text/css"},        {"js", "text/javascript"},   {"json", "application/json"},
        {"xml", "application/xml"}, {"csv", "text/csv"},         {"md", "text/markdown"},
        {"pdf", "application/pdf"}, {"zip", "application/zip"},  {"gz", "application/gzip"},
        {"mp4", "video/mp4"},       {"mov", "video/quicktime"},  {"mp3", "audio/mpeg"},
        {"svg", "image/svg+xml"},   {"wasm", "application/wasm"}};
    const char *slash = strrchr(key, '/');
    const char *dot = strrchr(slash ? slash : key, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
            if (strcasecmp(dot + 1, table[i][0]) == 0)
                return table[i][1];
    return "application/octet-stream";
}

const char *gw_sniff(int fd, const char *key, char **format)
{
    unsigned char head[4096];
    ssize_t n = pread(fd, head, sizeof(head), 0);
    if (n <= 0)
        return mime_by_extension(key);
    const char *f = resize_sniff_format(head, (size_t)n);
    *format = f && resize_is_image_format(f) ? strdup(f) : NULL;
    const char *mime = resize_sniff_mime(head, (size_t)n);
    return mime ? mime : mime_by_extension(key);
}

bool gw_is_transient(const struct s3_error *err)
{
    if (err->retryable || err->http_status >= 500 || err->http_status == 429)
        return true;
    /* no answer at all: the network or the server is down */
    return err->http_status == 0 && strcmp(err->code, "LocalIOError") != 0 &&
           strcmp(err->code, "InvalidArgument") != 0 && strcmp(err->code, "OutOfMemory") != 0;
}

/* ---- multipart uploads that survive failures and restarts ---- */

struct resume_ctx {
    struct gateway *gw;
    struct gw_job *job;
};

/* A new multipart upload: recorded in the journal before its first part, so a restart resumes
 * it (or aborts it when the bytes are gone). */
static void upload_created(void *ctx, const struct s3_resume *r)
{
    struct resume_ctx *c = ctx;
    pthread_mutex_lock(&c->gw->lock);
    if (c->job->data->upload_id) /* replaced (gone, or another part size): abort the old one */
        gw_task_push_locked(c->gw, GW_TASK_ABORT_UPLOAD, c->job->data->upload_key,
                            c->job->data->upload_id);
    gw_data_set_upload(c->gw, c->job->data, c->job->key, r->upload_id, r->part_size);
    pthread_mutex_unlock(&c->gw->lock);
}

/* The upload to resume: the version's own, if it went to this key. */
static void resume_from(struct gateway *gw, const struct gw_job *job, struct s3_resume *r)
{
    pthread_mutex_lock(&gw->lock);
    const struct gw_data *d = job->data;
    if (d->upload_id && strcmp(d->upload_key, job->key) == 0) {
        snprintf(r->upload_id, sizeof(r->upload_id), "%s", d->upload_id);
        r->part_size = d->part_size;
    }
    pthread_mutex_unlock(&gw->lock);
}

/* After the upload: done (forget it) or kept for the next attempt. */
static void resume_after(struct gateway *gw, const struct gw_job *job, const struct s3_resume *r)
{
    pthread_mutex_lock(&gw->lock);
    struct gw_data *d = job->data;
    if (d->upload_id && !r->upload_id[0] && strcmp(d->upload_key, job->key) == 0)
        gw_data_set_upload(gw, d, job->key, NULL, 0); /* completed (or dropped as unusable) */
    pthread_mutex_unlock(&gw->lock);
}

void gw_abort_upload(struct gateway *gw, const char *key, const char *upload_id)
{
    struct s3_error err = {0};
    if (s3_multipart_abort(gw->s3, gw->cfg->s3.source_bucket, key, upload_id, &err) == 0 ||
        strcmp(err.code, "NoSuchUpload") == 0)
        log_key_info(key, NULL, "unfinished multipart upload aborted");
    else
        log_key_warn(key, NULL,
                     "cannot abort the unfinished multipart upload %s (%s); a lifecycle rule "
                     "(AbortIncompleteMultipartUpload) or s3imgfs-s3 can remove it",
                     upload_id, err.message);
}

/* A file that was being uploaded when the gateway stopped: when S3 has exactly its bytes (the
 * PUT or the multipart upload completed, the journal did not learn of it), it is not sent
 * again. */
static bool already_sent(struct gateway *gw, struct gw_job *job, const struct s3_body *body)
{
    struct s3_object_info info = {0};
    struct s3_error err = {0};
    bool same = s3_object_has_content(gw->s3, gw->cfg->s3.source_bucket, job->key, body,
                                      job->data->part_size, &info, &err) == 1;
    if (same) {
        snprintf(job->etag, sizeof(job->etag), "%s", info.etag);
        job->size = body->length;
        log_key_info(job->key, job->request_id,
                     "already in S3 (sent before the gateway stopped): not sent again");
    }
    s3_object_info_clear(&info);
    return same;
}

int gw_upload(struct gateway *gw, struct gw_job *job, char *reason, size_t reason_len,
              bool *transient)
{
    const struct config *cfg = gw->cfg;
    struct stat st;
    if (fstat(job->data->fd, &st) != 0) {
        snprintf(reason, reason_len, "cannot read the spool file: %s", strerror(errno));
        return -1;
    }
    free(job->format);
    job->format = NULL;
    const char *mime = gw_sniff(job->data->fd, job->key, &job->format);
    char mtime[48], mode[16];
    snprintf(mtime, sizeof(mtime), "%lld.%09ld", (long long)job->mtime.tv_sec, job->mtime.tv_nsec);
    snprintf(mode, sizeof(mode), "%o", (unsigned)job->mode);
    struct aws_header meta[] = {{"mtime", mtime}, {"mode", mode}};
    struct s3_put_options put = {
        .content_type = mime,
        .metadata = meta,
        .metadata_count = 2,
        .sse = conf_sse_name(cfg->s3.sse),
        .sse_kms_key_id = cfg->s3.sse_kms_key_id[0] ? cfg->s3.sse_kms_key_id : NULL,
    };
    struct s3_body body = s3_body_fd(job->data->fd, 0, (uint64_t)st.st_size);
    body.progress = job->progress;
    if (job->maybe_sent && already_sent(gw, job, &body))
        return 0;
    struct s3_put_result result = {0};
    struct s3_error err = {0};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct resume_ctx rctx = {gw, job};
    struct s3_resume resume = {.on_created = upload_created, .ctx = &rctx};
    pthread_mutex_lock(&gw->lock);
    int streamed = gw_stream_settle(gw, job->data, job); /* parts sent while it was written */
    pthread_mutex_unlock(&gw->lock);
    resume_from(gw, job, &resume);
    int rc = s3_upload_resumable(gw->s3, cfg->s3.source_bucket, job->key, &body, &put, &resume,
                                 &result, &err);
    resume_after(gw, job, &resume);
    if (resume.parts_reused && !streamed)
        log_key_info(job->key, job->request_id,
                     "resumed a multipart upload, %u parts were already in S3",
                     resume.parts_reused);
    if (rc != 0) {
        snprintf(reason, reason_len, "%s", err.message);
        *transient = gw_is_transient(&err);
        return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    snprintf(job->etag, sizeof(job->etag), "%s", result.etag);
    job->size = (uint64_t)st.st_size;
    pthread_mutex_lock(&gw->lock);
    gw->stats.bytes_uploaded += (uint64_t)st.st_size;
    pthread_mutex_unlock(&gw->lock);
    double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    if (streamed)
        log_key_info(job->key, job->request_id,
                     "uploaded (%" PRIu64 " bytes, %s) in %.0f ms after close; %u parts went up "
                     "while it was written",
                     (uint64_t)st.st_size, mime, ms, resume.parts_reused);
    else
        log_key_info(job->key, job->request_id, "uploaded (%" PRIu64 " bytes, %s) in %.0f ms",
                     (uint64_t)st.st_size, mime, ms);
    return 0;
}
