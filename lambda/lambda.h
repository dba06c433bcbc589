/* lambda: the deployed function, s3imgfs-lambda, built from the same resize/, s3client/ and
 * notify/ code as the gateway.
 *
 *   S3 event (Lambda invocation, or radosgw/MinIO webhook POST)
 *     -> records (event.c) -> GET source -> resize (one decode) -> PUT renditions -> notice
 *        (handler.c)
 *   runtime.c: the Lambda Runtime API loop (custom runtime, provided.al2023)
 *   serve.c:   the same handler as an HTTP endpoint (s3imgfs-lambda --serve 127.0.0.1:PORT)
 *   env.c:     the configuration from S3IMGFS_* environment variables
 *
 * Conventions as elsewhere: 0 / -1 with a `struct s3_error` a user can act on; what is returned
 * through an out-parameter is owned by the caller and freed with the matching _free.
 */
#ifndef S3IMGFS_LAMBDA_H
#define S3IMGFS_LAMBDA_H

#include "conf.h"
#include "metrics.h"
#include "notify.h"
#include "s3client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* Configuration from the environment (env.c)                                                   */

/* Loads the configuration the way a function gets it: no INI file; each config key from the
 * environment variable S3IMGFS_<KEY> (upper case: S3IMGFS_DESTINATION_BUCKET, S3IMGFS_SIZES,
 * S3IMGFS_SNS_TOPIC_ARN; a key whose name two sections share is S3IMGFS_<SECTION>_<KEY>, e.g.
 * S3IMGFS_LOG_FORMAT vs S3IMGFS_FORMAT for [resize] format); region, credentials and endpoints
 * from the AWS variables Lambda sets. Errors name the variable. `getenv` NULL = getenv(3). */
struct config *lambda_config_from_env(conf_getenv_fn getenv, void *getenv_ctx,
                                      struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Events (event.c)                                                                             */

/* One S3 record worth looking at. */
struct lambda_record {
    char *bucket;
    char *key; /* URL-decoded ('+' is a space) */
    uint64_t size;
    char *etag;       /* "" when the event has none */
    char *event_name; /* "ObjectCreated:Put", "ObjectCreated:CompleteMultipartUpload", ... */
};

/* Why a record of the event is not processed (it is still reported). */
enum lambda_skip {
    LAMBDA_SKIP_NONE = 0,
    LAMBDA_SKIP_TEST_EVENT,  /* s3:TestEvent (sent when a notification is configured) */
    LAMBDA_SKIP_NOT_CREATE,  /* ObjectRemoved:*, ObjectRestore, ... */
    LAMBDA_SKIP_DESTINATION, /* a key the function writes itself: never recurse */
    LAMBDA_SKIP_OUTSIDE,     /* another bucket, or outside [s3] source_prefix */
};

struct lambda_event {
    struct lambda_record *records;
    enum lambda_skip *skip; /* one per record */
    size_t count;
};

/* Parses an S3 event notification: the AWS form ({"Records":[{"eventSource":"aws:s3",...}]}),
 * the one radosgw and MinIO POST ("eventSource":"ceph:s3" / "minio:s3"), an SNS- or
 * EventBridge-wrapped one, and s3:TestEvent; decides per record what is skipped and why
 * (against cfg's buckets and prefixes). A document that is not an S3 event is an error. */
int lambda_event_parse(const struct config *cfg, const char *json, size_t len,
                       struct lambda_event *out, struct s3_error *err);
void lambda_event_free(struct lambda_event *ev);
const char *lambda_skip_name(enum lambda_skip skip); /* "test event", "not a create", ... */

/* ------------------------------------------------------------------------------------------ */
/* Handling (handler.c)                                                                         */

struct lambda_handler;

struct lambda_handler_options {
    const struct config *cfg;  /* borrowed */
    struct s3client *s3;       /* borrowed */
    struct notifier *notifier; /* borrowed, may be NULL */
    struct metrics *metrics;   /* borrowed, may be NULL */
};
struct lambda_handler *lambda_handler_new(const struct lambda_handler_options *o,
                                          struct s3_error *err);
void lambda_handler_free(struct lambda_handler *h);

/* Handles a whole event: each record not skipped is fetched (HEAD first: size and content
 * limits before any download), resized with every size from one decode, its renditions put
 * (metadata source-etag and source-key) and a notice posted. A record whose renditions already
 * exist for the same source ETag does no work (idempotent under retried events). Records are
 * started only while now < deadline_ms - margin (a record not started is reported as such).
 * Returns a malloc'd JSON response ({"records":[{"key":..,"status":"done|skipped|failed|
 * not started","reason":..,"renditions":[..]}], "done":N, "failed":N, "skipped":N}) and sets
 * *retry to true when a retry of the whole event could help (a transient failure or records
 * not started), false otherwise (every failure permanent: bad image, access denied). NULL when
 * the event cannot be parsed (err says why; not worth a retry). deadline_ms: Unix ms; 0 = none. */
char *lambda_handle_event(struct lambda_handler *h, const char *json, size_t len,
                          int64_t deadline_ms, bool *retry, struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Front ends                                                                                   */

/* runtime.c: the Lambda custom runtime loop against http://$AWS_LAMBDA_RUNTIME_API: next ->
 * handle -> response or error; sets _X_AMZN_TRACE_ID from Lambda-Runtime-Trace-Id for each
 * invocation. Returns when the Runtime API answers 500 or cannot be reached (exit status 1),
 * never on a bad event. `api` is "host:port". */
int lambda_runtime_loop(struct lambda_handler *h, const char *api);
/* Reports a failed initialisation (POST /runtime/init/error) before exiting. */
void lambda_runtime_init_error(const char *api, const char *type, const char *message);

/* serve.c: POST / with an S3 event (the webhook radosgw and MinIO send) is handled and answered
 * with the JSON response (200, or 500 when a retry could help so the sender retries; 400 for a
 * body that is not an S3 event). `listen` is "127.0.0.1:PORT". Runs until SIGINT/SIGTERM. */
int lambda_serve(struct lambda_handler *h, const char *listen, struct s3_error *err);

#endif
