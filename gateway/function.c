/* function: [resize] mode = lambda. The deployed function (s3imgfs-lambda) makes the renditions;
 * the gateway uploads, optionally invokes the function itself ([resize] lambda_function, for
 * stores that cannot trigger it), then waits until every rendition exists for the uploaded
 * ETag, checking with a backoff (1 s doubling to 30 s) rather than polling, up to
 * lambda_timeout_seconds. */
#include "gateway_internal.h"
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The S3 event the store would send for the upload (what s3imgfs-lambda reads). malloc'd. */
static char *s3_event_json(struct gateway *gw, const struct gw_job *job)
{
    const struct config *cfg = gw->cfg;
    char *key = aws_uri_encode(job->key, strlen(job->key), true);
    char arn[512], when[32];
    snprintf(arn, sizeof(arn), "arn:aws:s3:::%s", cfg->s3.source_bucket);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S.000Z", &tm);
    json_t *ev =
        key ? json_pack("{s:[{s:s, s:s, s:s, s:s, s:s, s:{s:s, s:{s:s, s:s}, s:{s:s, "
                        "s:I, s:s}}}]}",
                        "Records", "eventVersion", "2.1", "eventSource", "aws:s3", "awsRegion",
                        cfg->s3.region, "eventTime", when, "eventName", "ObjectCreated:Put", "s3",
                        "s3SchemaVersion", "1.0", "bucket", "name", cfg->s3.source_bucket, "arn",
                        arn, "object", "key", key, "size", (json_int_t)job->size, "eTag", job->etag)
            : NULL;
    char *text = ev ? json_dumps(ev, JSON_COMPACT) : NULL;
    json_decref(ev);
    free(key);
    return text;
}

/* Invokes the function asynchronously (Invocation-Type: Event) with the upload's S3 event.
 * Returns 0, or -1 with the reason and *transient. */
static int invoke(struct gateway *gw, const struct gw_job *job, char *reason, size_t reason_len,
                  bool *transient)
{
    const struct config *cfg = gw->cfg;
    char *body = s3_event_json(gw, job);
    char *name =
        aws_uri_encode(cfg->resize.lambda_function, strlen(cfg->resize.lambda_function), false);
    char path[600];
    snprintf(path, sizeof(path), "/2015-03-31/functions/%s/invocations", name ? name : "");
    struct aws_header type = {"x-amz-invocation-type", "Event"};
    struct aws_request req = {.service = "lambda",
                              .endpoint = cfg->resize.lambda_endpoint,
                              .method = "POST",
                              .path = path,
                              .content_type = "application/json",
                              .headers = &type,
                              .header_count = 1,
                              .body = body,
                              .body_len = body ? strlen(body) : 0,
                              .idempotent = true};
    struct aws_response resp;
    struct s3_error err = {0};
    int rc = body && name ? aws_request_send(gw->s3, &req, &resp, &err) : -1;
    if (rc != 0) {
        snprintf(reason, reason_len, "cannot invoke the function %s: %s",
                 cfg->resize.lambda_function, body && name ? err.message : "out of memory");
        *transient = !body || !name || gw_is_transient(&err);
    } else {
        log_key_info(job->key, job->request_id, "function %s invoked", cfg->resize.lambda_function);
        aws_response_clear(&resp);
    }
    free(body);
    free(name);
    return rc;
}

int gw_await_renditions(struct gateway *gw, struct gw_job *job, bool invoke_first, char *reason,
                        size_t reason_len, bool *transient)
{
    *transient = false;
    gw_fill_etag(gw, job);
    if (invoke_first && gw->cfg->resize.lambda_function[0] &&
        invoke(gw, job, reason, reason_len, transient) != 0)
        return -1;
    if (gw_renditions_current(gw, job)) {
        log_key_info(job->key, job->request_id, "the function made the renditions");
        return 0;
    }
    return 1;
}
