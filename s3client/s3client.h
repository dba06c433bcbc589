/* s3client: talking to S3 and to other AWS APIs (SNS, STS, Lambda).
 *
 * What it offers:
 *   - SigV4 signing as pure functions (header authorization and presigned URLs);
 *   - an S3 client: objects (put/get/head/delete/copy), listings, multipart uploads, buckets;
 *   - a generic signed request for Query-protocol (SNS, STS) and JSON (Lambda) services.
 *
 * Conventions:
 *   - Functions that can fail return 0 on success and -1 on failure, and fill the caller's
 *     `struct s3_error` (which may be NULL) with a code and a message a user can act on.
 *   - Strings passed in are borrowed for the duration of the call. Anything returned through an
 *     out-parameter is owned by the caller and released with the matching _clear or _free call.
 *   - One `struct s3client` is shared by any number of threads; it keeps a pool of connections.
 *   - The client knows nothing about files on disk beyond the file descriptors it is given.
 */
#ifndef S3IMGFS_S3CLIENT_H
#define S3IMGFS_S3CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------------------------ */
/* Errors                                                                                       */

struct s3_error {
    long http_status;  /* 0 when no HTTP answer came (connection, DNS, timeout, local I/O) */
    char code[64];     /* S3/AWS error code ("NoSuchKey", "SignatureDoesNotMatch", "SlowDown"),
                          or one of ours: "ConnectionFailed", "Timeout", "TLSError",
                          "LocalIOError", "InvalidArgument", "OutOfMemory", "BadResponse" */
    char message[512]; /* one line, says what happened and what to do about it */
    char request_id[128];
    bool retryable; /* a later attempt may succeed (5xx, throttling, network) */
};

void s3_error_clear(struct s3_error *err);
/* printf-style helper used by all modules that fill an s3_error. `err` may be NULL. */
void s3_error_set(struct s3_error *err, long http_status, const char *code, bool retryable,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ------------------------------------------------------------------------------------------ */
/* Credentials                                                                                  */

struct aws_credentials {
    char access_key_id[128];
    char secret_access_key[128];
    char session_token[4096]; /* empty when the credentials are long-term keys */
    time_t expiration;        /* 0 = does not expire */
};

/* A credentials provider: fills `out` with usable credentials (refreshing them if they expire).
 * Called before every signed request, from any thread, so it must be cheap and thread-safe. */
typedef int (*aws_credentials_fn)(void *ctx, struct aws_credentials *out, struct s3_error *err);

/* A provider that always returns the same credentials (ctx = struct aws_credentials *). */
int aws_credentials_static(void *ctx, struct aws_credentials *out, struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* SigV4 signing (pure: no clock, no I/O)                                                       */

struct aws_header {
    const char *name;
    const char *value;
};

struct sigv4_request {
    const char *method;               /* "GET", "PUT", ... */
    const char *path;                 /* as sent on the wire: percent-encoded, starts with '/' */
    const char *query;                /* as sent on the wire, without '?'; NULL or "" when none */
    const struct aws_header *headers; /* all headers to sign; must include "host" */
    size_t header_count;
    const char *payload_hash; /* lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
};

struct sigv4_scope {
    const char *region;   /* "us-east-1" */
    const char *service;  /* "s3", "sns", "lambda", ... */
    const char *amz_date; /* "20150830T123600Z" (UTC) */
    /* S3 wants both false: the wire path is signed exactly as sent. Other services (SNS, STS,
     * Lambda) want both true: "." and ".." segments and repeated '/' are removed, then every
     * segment is percent-encoded once more. */
    bool normalize_path;
    bool double_encode;
};

struct sigv4_signature {
    char *canonical_request; /* malloc'd */
    char *string_to_sign;    /* malloc'd */
    char *signed_headers;    /* malloc'd, "host;x-amz-date" */
    char signature[65];      /* lowercase hex */
    char *authorization;     /* malloc'd value of the Authorization header */
};

/* Signs for header authorization. On success the caller frees `out` with sigv4_signature_clear. */
int sigv4_sign(const struct sigv4_request *req, const struct sigv4_scope *scope,
               const struct aws_credentials *creds, struct sigv4_signature *out,
               struct s3_error *err);

/* Signs as a presigned URL: returns (malloc'd) the complete query string to send, i.e. the
 * request's query plus the X-Amz-* parameters and X-Amz-Signature. Only "host" (and any other
 * header in req->headers) is signed; the payload hash is normally "UNSIGNED-PAYLOAD".
 * `out` may be NULL; when given, it receives the intermediate strings (authorization = NULL). */
char *sigv4_presign_query(const struct sigv4_request *req, const struct sigv4_scope *scope,
                          const struct aws_credentials *creds, unsigned expires_seconds,
                          struct sigv4_signature *out, struct s3_error *err);

void sigv4_signature_clear(struct sigv4_signature *sig);

/* Formats t as an x-amz-date ("YYYYMMDDTHHMMSSZ", UTC) into out[17]. */
void sigv4_format_date(time_t t, char out[17]);

/* Percent-encoding as SigV4 and S3 want it: every byte except A-Z a-z 0-9 - _ . ~ becomes %XX
 * (uppercase hex); with keep_slash, '/' is kept. Returns malloc'd string (NULL on ENOMEM). */
char *aws_uri_encode(const char *s, size_t len, bool keep_slash);
/* Decodes %XX escapes (and, with plus_is_space, '+' as ' '). Returns malloc'd string, or NULL on
 * ENOMEM or a malformed escape. *out_len (may be NULL) receives the decoded length. */
char *aws_uri_decode(const char *s, size_t len, bool plus_is_space, size_t *out_len);

/* ------------------------------------------------------------------------------------------ */
/* The client                                                                                   */

struct s3client_options {
    /* "http(s)://host[:port]" with no path. NULL: https://s3.<region>.amazonaws.com */
    const char *endpoint;
    const char *region;  /* required */
    bool path_style;     /* true: http://host/bucket/key; false: http://bucket.host/key */
    const char *ca_file; /* PEM bundle to trust instead of the system store; NULL = system */
    aws_credentials_fn credentials; /* required */
    void *credentials_ctx;

    /* Retries of transient failures: exponential backoff with full jitter.
     * 0 means "use the default" for every number below. */
    unsigned max_attempts;   /* default 5 (1 = no retry) */
    unsigned retry_base_ms;  /* default 100 */
    unsigned retry_max_ms;   /* default 20000 */
    long connect_timeout_ms; /* default 10000 */
    long low_speed_seconds;  /* abort a transfer slower than 1 byte/s for this long; default 60 */

    uint64_t multipart_threshold; /* s3_upload switches to multipart from here; default 16 MiB */
    uint64_t multipart_part_size; /* default 8 MiB (minimum 5 MiB) */
    unsigned multipart_parallel;  /* parts in flight per upload; default 4 */

    /* Every body's SHA-256 is signed (x-amz-content-sha256) and checked by the server (AWS and
     * radosgw answer XAmzContentSHA256Mismatch, retried): that is the integrity check. With
     * content_md5 uploads also carry Content-MD5, for stores that do not check the SHA-256; it
     * costs more CPU than the SHA-256 itself on CPUs with SHA extensions. */
    bool content_md5;

    uint64_t max_send_speed; /* bytes/s of one request's body; 0 = no limit */

    const char *user_agent; /* default "s3imgfs/<version>" */
    bool verbose;           /* libcurl debug output to stderr (credentials are not printed) */
};

struct s3client;

/* Creates a client. Returns NULL (and fills err) when an option is invalid. */
struct s3client *s3client_new(const struct s3client_options *opts, struct s3_error *err);
void s3client_free(struct s3client *client);

/* Requests this client sent again after a transient failure (5xx, throttling, a dropped
 * connection), since it was made. */
uint64_t s3client_retries(const struct s3client *client);

/* Region the client signs for. */
const char *s3client_region(const struct s3client *client);

/* ------------------------------------------------------------------------------------------ */
/* Request bodies and response sinks                                                            */

/* A request body: either memory or a slice of a file descriptor (read with pread, so several
 * parts of one file can be sent at once). */
struct s3_body {
    const void *data; /* used when fd < 0 */
    int fd;
    off_t offset;
    uint64_t length;
    /* Optional (may be NULL): a counter the client adds the bytes it sends to, and takes them
     * back from when a request fails; so it reads "bytes sent in requests that succeeded or are
     * still running" (a multipart upload's parts all count into it). Updated atomically: other
     * threads may read it with __atomic_load_n while the upload runs. */
    uint64_t *progress;
};

static inline struct s3_body s3_body_mem(const void *data, size_t length)
{
    struct s3_body b = {data, -1, 0, length, NULL};
    return b;
}

static inline struct s3_body s3_body_fd(int fd, off_t offset, uint64_t length)
{
    struct s3_body b = {NULL, fd, offset, length, NULL};
    return b;
}

/* Where a GET's bytes go. `offset` counts from the first byte of the response body; after a
 * retry the same offsets are delivered again, so a sink must overwrite, not append. Return 0 to
 * go on, -1 to abort the transfer (reported as LocalIOError). */
typedef int (*s3_sink_fn)(void *ctx, uint64_t offset, const void *data, size_t len);

/* ------------------------------------------------------------------------------------------ */
/* Objects                                                                                      */

struct s3_kv {
    char *name;
    char *value;
};

struct s3_object_info {
    uint64_t size; /* bytes of the object (whole object, also for ranged GETs) */
    time_t last_modified;
    char etag[128]; /* without quotes */
    char content_type[256];
    char sse[32]; /* x-amz-server-side-encryption, "" when none reported */
    char version_id[128];
    struct s3_kv *metadata; /* user metadata, names lowercased without "x-amz-meta-" */
    size_t metadata_count;
};

void s3_object_info_clear(struct s3_object_info *info);
/* Value of user metadata `name` (lowercase, without prefix), or NULL. */
const char *s3_object_info_meta(const struct s3_object_info *info, const char *name);

struct s3_put_options {
    const char *content_type;          /* NULL: application/octet-stream */
    const struct aws_header *metadata; /* user metadata; names without "x-amz-meta-" */
    size_t metadata_count;
    const char *sse;            /* NULL, "", "none", "AES256" or "aws:kms" */
    const char *sse_kms_key_id; /* with "aws:kms"; NULL = the account's default key */
    const char *cache_control;
    const char *if_none_match; /* "*" = create only, where the server supports it (single PUT) */
};

struct s3_put_result {
    char etag[128]; /* without quotes */
    char version_id[128];
};

/* One PUT. The body's SHA-256 travels as x-amz-content-sha256 (and its MD5 as Content-MD5 with
 * the content_md5 option), so the server rejects a body damaged in transit. Limit 5 GiB; use
 * s3_upload for any size. */
int s3_put_object(struct s3client *c, const char *bucket, const char *key,
                  const struct s3_body *body, const struct s3_put_options *opts,
                  struct s3_put_result *result, struct s3_error *err);

/* A PUT for small bodies and a parallel multipart upload for large ones (see options); a
 * failed multipart upload is aborted. */
int s3_upload(struct s3client *c, const char *bucket, const char *key, const struct s3_body *body,
              const struct s3_put_options *opts, struct s3_put_result *result,
              struct s3_error *err);

/* A multipart upload that outlives the process (s3_upload_resumable). */
struct s3_resume {
    /* in: an upload started earlier for the same bytes ("" = none) and the part size it used;
     * out: the upload in use and its part size, kept when the call fails so that a later call
     * resumes it ("" once the object is complete). The caller aborts it (s3_multipart_abort)
     * when the bytes are no longer wanted. */
    char upload_id[512];
    uint64_t part_size;
    /* Called when a new upload was created, before its first part is sent: record it. May be
     * NULL. */
    void (*on_created)(void *ctx, const struct s3_resume *r);
    void *ctx;
    unsigned parts_reused; /* out: parts the server already had (not sent again) */
};

/* s3_upload for bytes that outlive the process (a spool file). Multipart: a failed upload is
 * not aborted, and a later call with the same `r` resumes it: the parts the server lists
 * (ListParts) with their full size are kept, the others sent. An upload the server no longer
 * has (NoSuchUpload) or cannot complete (InvalidPart) is started again. Below the multipart
 * threshold: s3_put_object, `r` untouched. */
int s3_upload_resumable(struct s3client *c, const char *bucket, const char *key,
                        const struct s3_body *body, const struct s3_put_options *opts,
                        struct s3_resume *r, struct s3_put_result *result, struct s3_error *err);

struct s3_get_options {
    bool ranged; /* with range_start/range_length */
    uint64_t range_start;
    uint64_t range_length; /* 0 = to the end */
    const char *if_match;  /* ETag the object must still have (else PreconditionFailed) */
};

/* GETs an object (or a range of it) into a sink. `info` (may be NULL) receives the headers. */
int s3_get_object(struct s3client *c, const char *bucket, const char *key,
                  const struct s3_get_options *opts, s3_sink_fn sink, void *sink_ctx,
                  struct s3_object_info *info, struct s3_error *err);

/* GETs into a file descriptor at fd_offset (pwrite). */
int s3_get_object_fd(struct s3client *c, const char *bucket, const char *key,
                     const struct s3_get_options *opts, int fd, off_t fd_offset,
                     struct s3_object_info *info, struct s3_error *err);

/* GETs into a malloc'd buffer (caller frees *data). Fails with "EntityTooLarge" when the body
 * exceeds max_len (0 = no limit). The buffer is NUL-terminated for convenience (not counted). */
int s3_get_object_buf(struct s3client *c, const char *bucket, const char *key,
                      const struct s3_get_options *opts, size_t max_len, void **data, size_t *len,
                      struct s3_object_info *info, struct s3_error *err);

/* HEAD. A missing object fails with code "NoSuchKey" and http_status 404. */
int s3_head_object(struct s3client *c, const char *bucket, const char *key,
                   struct s3_object_info *info, struct s3_error *err);

/* Is `body` already the object's content? 1 yes (same size, and its ETag is the MD5 of body
 * for a single PUT, or for a multipart upload the MD5 of its parts' MD5s and their count, with
 * parts of part_size bytes; 0 = the client's multipart_part_size), 0 no or cannot tell
 * (another size or part size, an SSE-KMS ETag, no such object), -1 on another error. Reads the
 * body once. For a process that may have been stopped between sending an object and recording
 * that it did. */
int s3_object_has_content(struct s3client *c, const char *bucket, const char *key,
                          const struct s3_body *body, uint64_t part_size,
                          struct s3_object_info *info, struct s3_error *err);

/* DELETE. Deleting a missing key succeeds (as in S3). */
int s3_delete_object(struct s3client *c, const char *bucket, const char *key, struct s3_error *err);

/* Deletes many keys (batches of 1000 per request). Returns -1 if any key could not be deleted;
 * *failed (may be NULL) receives how many, and err describes the first one. */
int s3_delete_objects(struct s3client *c, const char *bucket, const char *const *keys, size_t count,
                      size_t *failed, struct s3_error *err);

struct s3_copy_options {
    /* false: the copy keeps the source's metadata and content type (COPY);
     * true: they are replaced by `put`'s (REPLACE). SSE always comes from `put` when given. */
    bool replace_metadata;
    const struct s3_put_options *put;
    const char *if_match; /* copy only if the source still has this ETag */
    /* s3_copy only. multipart_threshold: copies of objects from this size use UploadPartCopy;
     * 0 = 5 GiB (larger objects always do). part_size: 0 = 512 MiB, minimum 5 MiB. */
    uint64_t multipart_threshold;
    uint64_t part_size;
};

/* Server-side copy (up to 5 GiB in one request). */
int s3_copy_object(struct s3client *c, const char *src_bucket, const char *src_key,
                   const char *dst_bucket, const char *dst_key, const struct s3_copy_options *opts,
                   struct s3_put_result *result, struct s3_error *err);

/* Server-side copy of any size. HEADs the source (size, ETag, content type, Cache-Control, user
 * metadata), fails with PreconditionFailed (412) at once if opts->if_match is given and differs,
 * then copies with one CopyObject below opts->multipart_threshold (at most 5 GiB) and otherwise
 * with a multipart upload whose parts are UploadPartCopy requests, client->multipart_parallel at
 * a time, aborting the upload on any failure. The multipart upload takes the source's content
 * type, Cache-Control and user metadata, or opts->put's with replace_metadata; SSE comes from
 * opts->put. Other headers of the source (Content-Encoding, Content-Disposition, tags, ACLs)
 * are not carried over on the multipart path. Every request carries the HEAD's ETag as
 * x-amz-copy-source-if-match, so a source that changes during the copy fails it instead of
 * mixing two versions (where the server honours that header). opts may be NULL. */
int s3_copy(struct s3client *c, const char *src_bucket, const char *src_key, const char *dst_bucket,
            const char *dst_key, const struct s3_copy_options *opts, struct s3_put_result *result,
            struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Listings                                                                                     */

struct s3_list_options {
    const char *prefix;    /* NULL = whole bucket */
    const char *delimiter; /* NULL = flat listing; "/" = one directory level */
    const char *start_after;
    const char *continuation_token; /* from a previous page's next_token */
    unsigned max_keys;              /* 0 = server default (1000) */
};

struct s3_list_object {
    char *key;
    uint64_t size;
    time_t last_modified;
    char etag[128];
};

struct s3_list_page {
    struct s3_list_object *objects;
    size_t object_count;
    char **common_prefixes;
    size_t prefix_count;
    bool truncated;
    char *next_token; /* NULL on the last page */
};

/* One ListObjectsV2 page. A page may hold fewer than max_keys entries even when truncated. */
int s3_list_page(struct s3client *c, const char *bucket, const struct s3_list_options *opts,
                 struct s3_list_page *page, struct s3_error *err);
void s3_list_page_clear(struct s3_list_page *page);

/* Called once per page; return non-zero to stop (s3_list_all then returns 0). */
typedef int (*s3_list_fn)(void *ctx, const struct s3_list_page *page);

/* Every page of a listing, following continuation tokens. */
int s3_list_all(struct s3client *c, const char *bucket, const struct s3_list_options *opts,
                s3_list_fn on_page, void *ctx, struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Multipart uploads (the steps; s3_upload does them all)                                      */

struct s3_part {
    int number; /* 1..10000 */
    char etag[128];
    uint64_t size;
};

int s3_multipart_create(struct s3client *c, const char *bucket, const char *key,
                        const struct s3_put_options *opts, char **upload_id, struct s3_error *err);
int s3_multipart_upload_part(struct s3client *c, const char *bucket, const char *key,
                             const char *upload_id, int part_number, const struct s3_body *body,
                             struct s3_part *part, struct s3_error *err);
/* UploadPartCopy: bytes first..last (inclusive) of src_bucket/src_key become part part_number.
 * if_match (may be NULL) is the ETag the source must still have (else PreconditionFailed). */
int s3_multipart_upload_part_copy(struct s3client *c, const char *bucket, const char *key,
                                  const char *upload_id, int part_number, const char *src_bucket,
                                  const char *src_key, uint64_t first, uint64_t last,
                                  const char *if_match, struct s3_part *part, struct s3_error *err);
int s3_multipart_complete(struct s3client *c, const char *bucket, const char *key,
                          const char *upload_id, const struct s3_part *parts, size_t count,
                          struct s3_put_result *result, struct s3_error *err);
int s3_multipart_abort(struct s3client *c, const char *bucket, const char *key,
                       const char *upload_id, struct s3_error *err);
/* Parts uploaded so far (all pages), sorted by number. Caller frees *parts. */
int s3_multipart_list_parts(struct s3client *c, const char *bucket, const char *key,
                            const char *upload_id, struct s3_part **parts, size_t *count,
                            struct s3_error *err);

struct s3_multipart_upload {
    char *key;
    char *upload_id;
    time_t initiated;
};
/* Multipart uploads in progress under prefix (all pages). Free with s3_multipart_uploads_free. */
int s3_multipart_list_uploads(struct s3client *c, const char *bucket, const char *prefix,
                              struct s3_multipart_upload **uploads, size_t *count,
                              struct s3_error *err);
void s3_multipart_uploads_free(struct s3_multipart_upload *uploads, size_t count);

/* ------------------------------------------------------------------------------------------ */
/* Buckets                                                                                      */

/* Succeeds when the bucket exists and the credentials may use it; fails with "NoSuchBucket"
 * (404) or "AccessDenied" (403) otherwise. */
int s3_head_bucket(struct s3client *c, const char *bucket, struct s3_error *err);
/* Creates a bucket in the client's region (succeeds if the caller already owns it). */
int s3_create_bucket(struct s3client *c, const char *bucket, struct s3_error *err);
int s3_delete_bucket(struct s3client *c, const char *bucket, struct s3_error *err);

/* A presigned GET URL valid for expires_seconds. Returns malloc'd URL or NULL. */
char *s3_presign_get(struct s3client *c, const char *bucket, const char *key,
                     unsigned expires_seconds, struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* Other AWS services                                                                           */

struct aws_request {
    const char *service; /* signing name: "sns", "sts", "lambda", "sqs" */
    const char
        *endpoint;      /* "https://host[:port]"; NULL = https://<service>.<region>.amazonaws.com */
    const char *method; /* "POST" */
    const char *path;   /* wire form, e.g. "/2015-03-31/functions/f/invocations"; NULL = "/" */
    const char *query;  /* wire form, or NULL */
    const char *content_type;
    const struct aws_header *headers; /* extra headers (signed) */
    size_t header_count;
    const void *body;
    size_t body_len;
    bool idempotent; /* may be repeated after a failure mid-request */
};

struct aws_response {
    long status;
    char *body; /* malloc'd, NUL-terminated */
    size_t body_len;
    struct s3_kv *headers; /* names lowercased */
    size_t header_count;
};

/* Sends a signed request. A non-2xx answer fails with the service's error code and message
 * (parsed from an XML <Error>, a JSON "__type"/"message" or the x-amzn-ErrorType header); the
 * response is filled in both cases. Free with aws_response_clear. */
int aws_request_send(struct s3client *c, const struct aws_request *req, struct aws_response *resp,
                     struct s3_error *err);
void aws_response_clear(struct aws_response *resp);
const char *aws_response_header(const struct aws_response *resp, const char *name);

/* A Query-protocol call (SNS, STS, SQS query): POSTs Action=...&Version=... plus params as an
 * application/x-www-form-urlencoded body. params: name/value pairs, encoded here. */
int aws_query_call(struct s3client *c, const char *service, const char *endpoint,
                   const char *action, const char *version, const struct aws_header *params,
                   size_t param_count, struct aws_response *resp, struct s3_error *err);

/* Text of the first element named `name` in an XML document (e.g. "MessageId"), malloc'd, or
 * NULL when absent or the document is not XML. */
char *aws_xml_find_text(const char *xml, size_t len, const char *name);

#ifdef __cplusplus
}
#endif

#endif
