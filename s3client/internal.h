/* Private to s3client/: the pieces its .c files share. Not part of the public interface. */
#ifndef S3IMGFS_S3CLIENT_INTERNAL_H
#define S3IMGFS_S3CLIENT_INTERNAL_H

#include "s3client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>

#define S3_EMPTY_SHA256   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define S3_ERROR_BODY_MAX (1024 * 1024)

struct s3client {
    char *scheme;   /* "http" or "https" */
    char *hostport; /* "host[:port]" of the endpoint */
    char *region;
    bool path_style;
    bool content_md5;
    uint64_t max_send_speed;
    uint64_t retries; /* requests sent again after a transient failure (atomic) */
    char *ca_file;
    aws_credentials_fn credentials;
    void *credentials_ctx;

    unsigned max_attempts;
    unsigned retry_base_ms;
    unsigned retry_max_ms;
    long connect_timeout_ms;
    long low_speed_seconds;
    uint64_t multipart_threshold;
    uint64_t multipart_part_size;
    unsigned multipart_parallel;
    char *user_agent;
    bool verbose;

    /* Seconds to add to the local clock, learnt from a RequestTimeTooSkewed answer. */
    _Atomic long clock_offset;

    /* Idle easy handles; each keeps its connections alive for the next request. */
    pthread_mutex_t pool_lock;
    CURL **pool;
    size_t pool_count;
    /* DNS and TLS sessions are shared by all handles; connections live in each handle. */
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
};

/* Splits an endpoint "http[s]://host[:port]..." without copying: *scheme is "http" or "https",
 * and host[:port] is the *host_len bytes at *host (0 when missing); what follows it (a path,
 * query or fragment, or "") starts at *host + *host_len. Returns -1 for any other scheme. */
int endpoint_split(const char *endpoint, const char **scheme, const char **host, size_t *host_len);

/* One HTTP exchange, signed and retried by http_perform. */
struct http_request {
    const char *what;    /* for messages: "PUT s3://bucket/key" */
    const char *service; /* signing name */
    const char *method;
    const char *scheme;
    const char *host;                 /* host[:port], also the Host header */
    const char *path;                 /* wire form */
    const char *query;                /* wire form or NULL */
    const struct aws_header *headers; /* extra headers, all signed */
    size_t header_count;
    const struct s3_body *body; /* NULL: no body */
    const char *payload_hash;   /* NULL: computed from body */
    bool s3_signing;            /* S3 path rules and x-amz-content-sha256 */
    bool idempotent;
    bool head;       /* HEAD: no response body */
    s3_sink_fn sink; /* 2xx body goes here; NULL: buffered into the response */
    void *sink_ctx;
    size_t max_body; /* limit for a buffered body; 0 = 64 MiB */
};

int http_pool_init(struct s3client *c);
void http_pool_free(struct s3client *c);
int http_perform(struct s3client *c, const struct http_request *req, struct aws_response *resp,
                 struct s3_error *err);

/* An S3 request to bucket/key (key may be NULL for bucket-level requests). Fills scheme, host,
 * path for the client's addressing style. Strings are malloc'd into *to_free (free each). */
struct s3_target {
    char *host;
    char *path;
    char what[600];
};
int s3_target_init(struct s3client *c, struct s3_target *t, const char *method, const char *bucket,
                   const char *key, struct s3_error *err);
void s3_target_clear(struct s3_target *t);

/* Runs an S3 request against a target: fills the common http_request fields. */
int s3_perform(struct s3client *c, const struct s3_target *t, struct http_request *req,
               struct aws_response *resp, struct s3_error *err);

/* Headers of one request; names built here are owned and freed by headers_free. */
#define HEADERS_MAX 24
struct headers {
    struct aws_header list[HEADERS_MAX];
    char *owned[HEADERS_MAX];
    size_t count;
    size_t owned_count;
    bool overflow;
};
/* Adds name: value unless value is NULL or empty. */
void headers_add(struct headers *h, const char *name, const char *value);
/* Adds SSE, metadata, cache-control, if-none-match (and content-type when with_type). */
int headers_add_put_options(struct headers *h, const struct s3_put_options *o, bool with_type,
                            struct s3_error *err);
void headers_free(struct headers *h);

/* Reads object metadata from response headers. */
int s3_info_from_headers(const struct aws_response *resp, struct s3_object_info *info);

/* Content hashes of a body in one pass: lowercase hex SHA-256 and base64 MD5. */
/* SHA-256 (hex) and, when md5_b64 is not NULL, MD5 (base64) of a body, in one pass. */
int s3_body_digests(const struct s3_body *body, char sha256_hex[65], char md5_b64[25],
                    struct s3_error *err);
void s3_md5_base64(const void *data, size_t len, char out[25]);

/* Writes the n bytes at in as 2n lowercase hex digits and a NUL into out. */
void hex_encode(const unsigned char *in, size_t n, char *out);

/* Copies s without the surrounding quotes of an ETag into out. */
void s3_copy_etag(char *out, size_t out_size, const char *s);

/* HEAD that also reports the Cache-Control header (into cache_control, "" when none; it may be
 * NULL). s3_head_object is this without it. */
int s3_head_object_cc(struct s3client *c, const char *bucket, const char *key,
                      struct s3_object_info *info, char *cache_control, size_t cache_control_size,
                      struct s3_error *err);

/* The x-amz-copy-source value for bucket/key ("/bucket/key", key percent-encoded with '/'
 * kept), malloc'd; NULL on ENOMEM. */
char *s3_copy_source(const char *bucket, const char *key);

/* Reads the answer of a 2xx CopyObject or UploadPartCopy: the ETag of <root>/ETag (without
 * quotes, "" when absent) into etag. A copy can fail after the 200 status line, with an <Error>
 * document as the body: then (or when the body is not XML) err is filled and -1 returned. */
int s3_copy_answer(const struct aws_response *resp, const char *root, const char *what, char *etag,
                   size_t etag_size, struct s3_error *err);

/* ---- XML (expat) ---- */

/* Called at the end of every element with its path from the root ("A/B/C") and its text
 * (the character data directly inside it; "" when none). */
typedef void (*xml_end_fn)(void *ctx, const char *path, const char *text);
/* Parses a whole document; rejects DTDs (no entity tricks). Returns 0 or -1 if not well formed. */
int xml_walk(const char *xml, size_t len, xml_end_fn on_end, void *ctx);

/* A growing string (zero-initialise it; it grows geometrically, so appends stay linear).
 * Appends after an allocation failure are ignored and the failure is remembered, so builders
 * append freely and check `failed` once at the end. data is NUL-terminated once non-empty. */
struct strbuf {
    char *data;
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; data is unusable */
};
void strbuf_append(struct strbuf *b, const char *s, size_t len);
void strbuf_puts(struct strbuf *b, const char *s);
void strbuf_putc(struct strbuf *b, char c);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s with &<>"' (and CR, LF, tab) escaped. */
void strbuf_xml_escaped(struct strbuf *b, const char *s);
void strbuf_free(struct strbuf *b);
/* Hands the string over to the caller (an empty buffer yields ""), or NULL after a failure;
 * the buffer is left empty either way. */
char *strbuf_take(struct strbuf *b);

/* Parses "2026-01-01T00:00:00.000Z". Returns (time_t)-1 when malformed. */
time_t s3_parse_iso8601(const char *s);

/* Fills err from an error answer (XML/JSON body or header), with a user-facing message. */
void s3_error_from_response(const struct aws_response *resp, const char *what,
                            struct s3_error *err);

#endif
