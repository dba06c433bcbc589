/* Object operations: PUT, GET, HEAD, DELETE, DeleteObjects, CopyObject, and buckets. */
#include "internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static void put_result_from(const struct aws_response *resp, struct s3_put_result *result)
{
    if (!result)
        return;
    s3_copy_etag(result->etag, sizeof(result->etag), aws_response_header(resp, "etag"));
    const char *v = aws_response_header(resp, "x-amz-version-id");
    snprintf(result->version_id, sizeof(result->version_id), "%s", v ? v : "");
}

int s3_put_object(struct s3client *c, const char *bucket, const char *key,
                  const struct s3_body *body, const struct s3_put_options *opts,
                  struct s3_put_result *result, struct s3_error *err)
{
    char sha[65], md5[25];
    if (s3_body_digests(body, sha, c->content_md5 ? md5 : NULL, err) != 0)
        return -1;
    struct headers h = {0};
    if (c->content_md5)
        headers_add(&h, "content-md5", md5);
    if (!opts || !opts->content_type)
        headers_add(&h, "content-type", "application/octet-stream");
    struct s3_target t;
    int rc = -1;
    if (headers_add_put_options(&h, opts, true, err) != 0 ||
        s3_target_init(c, &t, "PUT", bucket, key, err) != 0) {
        headers_free(&h);
        return -1;
    }
    struct http_request req = {.method = "PUT",
                               .headers = h.list,
                               .header_count = h.count,
                               .body = body,
                               .payload_hash = sha,
                               .idempotent = true};
    struct aws_response resp;
    rc = s3_perform(c, &t, &req, &resp, err);
    if (rc == 0)
        put_result_from(&resp, result);
    aws_response_clear(&resp);
    s3_target_clear(&t);
    headers_free(&h);
    return rc;
}

int s3_get_object(struct s3client *c, const char *bucket, const char *key,
                  const struct s3_get_options *opts, s3_sink_fn sink, void *sink_ctx,
                  struct s3_object_info *info, struct s3_error *err)
{
    struct headers h = {0};
    char range[64];
    if (opts && opts->ranged) {
        if (opts->range_length)
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)opts->range_start,
                     (unsigned long long)(opts->range_start + opts->range_length - 1));
        else
            snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)opts->range_start);
        headers_add(&h, "range", range);
    }
    if (opts)
        headers_add(&h, "if-match", opts->if_match);
    struct s3_target t;
    if (s3_target_init(c, &t, "GET", bucket, key, err) != 0)
        return -1;
    struct http_request req = {.method = "GET",
                               .headers = h.list,
                               .header_count = h.count,
                               .idempotent = true,
                               .sink = sink,
                               .sink_ctx = sink_ctx};
    struct aws_response resp;
    int rc = s3_perform(c, &t, &req, &resp, err);
    if (rc == 0 && info && s3_info_from_headers(&resp, info) != 0) {
        s3_error_set(err, 0, "OutOfMemory", false, "%s: out of memory", t.what);
        rc = -1;
    }
    aws_response_clear(&resp);
    s3_target_clear(&t);
    return rc;
}

struct fd_sink {
    int fd;
    off_t base;
};

static int write_to_fd(void *ctx, uint64_t offset, const void *data, size_t len)
{
    struct fd_sink *s = ctx;
    const char *p = data;
    while (len) {
        ssize_t n = pwrite(s->fd, p, len, s->base + (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

int s3_get_object_fd(struct s3client *c, const char *bucket, const char *key,
                     const struct s3_get_options *opts, int fd, off_t fd_offset,
                     struct s3_object_info *info, struct s3_error *err)
{
    struct fd_sink s = {fd, fd_offset};
    return s3_get_object(c, bucket, key, opts, write_to_fd, &s, info, err);
}

struct buf_sink {
    char *data;
    size_t len; /* bytes valid: a retry starts again from offset 0 */
    size_t cap;
    size_t max;
    bool too_large;
};

static int write_to_buf(void *ctx, uint64_t offset, const void *data, size_t len)
{
    struct buf_sink *s = ctx;
    if (s->max && offset + len > s->max) {
        s->too_large = true;
        return -1;
    }
    size_t need = (size_t)offset + len + 1;
    if (need > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < need)
            cap *= 2;
        char *p = realloc(s->data, cap);
        if (!p)
            return -1;
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + offset, data, len);
    s->len = (size_t)offset + len;
    s->data[s->len] = '\0';
    return 0;
}

int s3_get_object_buf(struct s3client *c, const char *bucket, const char *key,
                      const struct s3_get_options *opts, size_t max_len, void **data, size_t *len,
                      struct s3_object_info *info, struct s3_error *err)
{
    struct buf_sink s = {.max = max_len};
    int rc = s3_get_object(c, bucket, key, opts, write_to_buf, &s, info, err);
    if (rc != 0 && s.too_large)
        s3_error_set(err, 0, "EntityTooLarge", false,
                     "GET s3://%s/%s: the object is larger than the limit of %zu bytes", bucket,
                     key, max_len);
    if (rc == 0 && !s.data)
        s.data = calloc(1, 1); /* empty object: still a valid, NUL-terminated buffer */
    if (rc != 0 || !s.data) {
        free(s.data);
        return -1;
    }
    *data = s.data;
    *len = s.len;
    return 0;
}

int s3_head_object_cc(struct s3client *c, const char *bucket, const char *key,
                      struct s3_object_info *info, char *cache_control, size_t cache_control_size,
                      struct s3_error *err)
{
    struct s3_target t;
    if (s3_target_init(c, &t, "HEAD", bucket, key, err) != 0)
        return -1;
    struct http_request req = {.method = "HEAD", .head = true, .idempotent = true};
    struct aws_response resp;
    int rc = s3_perform(c, &t, &req, &resp, err);
    if (rc != 0 && err && resp.status == 404 && strcmp(err->code, "NotFound") == 0)
        s3_error_set(err, 404, "NoSuchKey", false, "%s: the object does not exist", t.what);
    if (rc == 0 && info && s3_info_from_headers(&resp, info) != 0) {
        s3_error_set(err, 0, "OutOfMemory", false, "%s: out of memory", t.what);
        rc = -1;
    }
    if (rc == 0 && cache_control) {
        const char *v = aws_response_header(&resp, "cache-control");
        snprintf(cache_control, cache_control_size, "%s", v ? v : "");
    }
    aws_response_clear(&resp);
    s3_target_clear(&t);
    return rc;
}

int s3_head_object(struct s3client *c, const char *bucket, const char *key,
                   struct s3_object_info *info, struct s3_error *err)
{
    return s3_head_object_cc(c, bucket, key, info, NULL, 0, err);
}

/* A request with no body and nothing to read from the answer but success. */
static int simple_request(struct s3client *c, const char *method, const char *bucket,
                          const char *key, const char *query, struct s3_error *err)
{
    struct s3_target t;
    if (s3_target_init(c, &t, method, bucket, key, err) != 0)
        return -1;
    struct http_request req = {
        .method = method, .query = query, .idempotent = true, .head = strcmp(method, "HEAD") == 0};
    struct aws_response resp;
    int rc = s3_perform(c, &t, &req, &resp, err);
    aws_response_clear(&resp);
    s3_target_clear(&t);
    return rc;
}

int s3_delete_object(struct s3client *c, const char *bucket, const char *key, struct s3_error *err)
{
    struct s3_error local;
    struct s3_error *e = err ? err : &local;
    int rc = simple_request(c, "DELETE", bucket, key, NULL, e);
    if (rc != 0 && strcmp(e->code, "NoSuchKey") == 0) {
        s3_error_clear(err);
        return 0;
    }
    return rc;
}

/* ---- DeleteObjects ---- */

struct delete_result {
    size_t failed;
    char *first_key;
    char *first_code;
    char *first_message;
    char *key, *code, *message; /* of the <Error> being read */
};

static void delete_end(void *ctx, const char *path, const char *text)
{
    struct delete_result *r = ctx;
    char **slot = NULL;
    if (strcmp(path, "DeleteResult/Error/Key") == 0)
        slot = &r->key;
    else if (strcmp(path, "DeleteResult/Error/Code") == 0)
        slot = &r->code;
    else if (strcmp(path, "DeleteResult/Error/Message") == 0)
        slot = &r->message;
    if (slot) {
        free(*slot);
        *slot = strdup(text);
        return;
    }
    if (strcmp(path, "DeleteResult/Error") != 0)
        return;
    if (r->failed++ == 0) {
        r->first_key = r->key, r->first_code = r->code, r->first_message = r->message;
    } else {
        free(r->key), free(r->code), free(r->message);
    }
    r->key = r->code = r->message = NULL;
}

static int delete_batch(struct s3client *c, const char *bucket, const char *const *keys,
                        size_t count, struct delete_result *r, struct s3_error *err)
{
    struct strbuf body = {0};
    strbuf_puts(&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                       "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true"
                       "</Quiet>");
    for (size_t i = 0; i < count; i++) {
        strbuf_puts(&body, "<Object><Key>");
        strbuf_xml_escaped(&body, keys[i]);
        strbuf_puts(&body, "</Key></Object>");
    }
    strbuf_puts(&body, "</Delete>");
    if (body.failed) {
        strbuf_free(&body);
        s3_error_set(err, 0, "OutOfMemory", false, "DeleteObjects: out of memory");
        return -1;
    }
    char md5[25];
    s3_md5_base64(body.data, body.len, md5);
    struct aws_header h[] = {{"content-md5", md5}, {"content-type", "application/xml"}};
    struct s3_body b = s3_body_mem(body.data, body.len);
    struct s3_target t;
    int rc = s3_target_init(c, &t, "POST", bucket, NULL, err);
    if (rc == 0) {
        snprintf(t.what, sizeof(t.what), "DeleteObjects s3://%s (%zu keys)", bucket, count);
        struct http_request req = {.method = "POST",
                                   .query = "delete=",
                                   .headers = h,
                                   .header_count = 2,
                                   .body = &b,
                                   .idempotent = true};
        struct aws_response resp;
        rc = s3_perform(c, &t, &req, &resp, err);
        if (rc == 0 && xml_walk(resp.body, resp.body_len, delete_end, r) != 0) {
            s3_error_set(err, resp.status, "BadResponse", true, "%s: the answer is not valid XML",
                         t.what);
            rc = -1;
        }
        aws_response_clear(&resp);
        s3_target_clear(&t);
    }
    strbuf_free(&body);
    return rc;
}

int s3_delete_objects(struct s3client *c, const char *bucket, const char *const *keys, size_t count,
                      size_t *failed, struct s3_error *err)
{
    struct delete_result r = {0};
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i += 1000)
        rc = delete_batch(c, bucket, keys + i, count - i < 1000 ? count - i : 1000, &r, err);
    if (rc == 0 && r.failed) {
        s3_error_set(err, 0, r.first_code ? r.first_code : "InternalError", false,
                     "DeleteObjects s3://%s: %zu of %zu keys not deleted; first: '%s': %s", bucket,
                     r.failed, count, r.first_key ? r.first_key : "?",
                     r.first_message && *r.first_message ? r.first_message : r.first_code);
        rc = -1;
    }
    if (failed)
        *failed = rc == 0 ? 0 : (r.failed ? r.failed : count);
    free(r.first_key), free(r.first_code), free(r.first_message);
    free(r.key), free(r.code), free(r.message);
    return rc;
}

/* ---- CopyObject ---- */

char *s3_copy_source(const char *bucket, const char *key)
{
    char *enc_key = aws_uri_encode(key, strlen(key), true);
    char *source = NULL;
    if (!enc_key || asprintf(&source, "/%s/%s", bucket, enc_key) < 0)
        source = NULL;
    free(enc_key);
    return source;
}

struct copy_result {
    const char *etag_path;
    char *etag;
    bool is_error;
};

static void copy_end(void *ctx, const char *path, const char *text)
{
    struct copy_result *r = ctx;
    if (strcmp(path, r->etag_path) == 0 && !r->etag)
        r->etag = strdup(text);
    else if (strcmp(path, "Error") == 0)
        r->is_error = true;
}

int s3_copy_answer(const struct aws_response *resp, const char *root, const char *what, char *etag,
                   size_t etag_size, struct s3_error *err)
{
    char etag_path[64];
    snprintf(etag_path, sizeof(etag_path), "%s/ETag", root);
    struct copy_result r = {.etag_path = etag_path};
    int rc = 0;
    /* A copy can fail after the 200 status line: the error is then in the body. */
    if (xml_walk(resp->body, resp->body_len, copy_end, &r) != 0 || r.is_error) {
        s3_error_from_response(resp, what, err);
        if (err && !r.is_error)
            s3_error_set(err, resp->status, "BadResponse", true, "%s: the answer is not valid XML",
                         what);
        rc = -1;
    }
    if (rc == 0)
        s3_copy_etag(etag, etag_size, r.etag);
    free(r.etag);
    return rc;
}

int s3_copy_object(struct s3client *c, const char *src_bucket, const char *src_key,
                   const char *dst_bucket, const char *dst_key, const struct s3_copy_options *opts,
                   struct s3_put_result *result, struct s3_error *err)
{
    char *source = s3_copy_source(src_bucket, src_key);
    if (!source) {
        s3_error_set(err, 0, "OutOfMemory", false, "CopyObject: out of memory");
        return -1;
    }
    bool replace = opts && opts->replace_metadata;
    struct headers h = {0};
    headers_add(&h, "x-amz-copy-source", source);
    headers_add(&h, "x-amz-metadata-directive", replace ? "REPLACE" : "COPY");
    if (opts)
        headers_add(&h, "x-amz-copy-source-if-match", opts->if_match);
    struct s3_target t;
    int rc = -1;
    if (headers_add_put_options(&h, opts ? opts->put : NULL, replace, err) == 0 &&
        s3_target_init(c, &t, "PUT", dst_bucket, dst_key, err) == 0) {
        snprintf(t.what, sizeof(t.what), "CopyObject s3://%s/%s -> s3://%s/%s", src_bucket, src_key,
                 dst_bucket, dst_key);
        struct http_request req = {
            .method = "PUT", .headers = h.list, .header_count = h.count, .idempotent = true};
        struct aws_response resp;
        rc = s3_perform(c, &t, &req, &resp, err);
        char etag[128];
        if (rc == 0)
            rc = s3_copy_answer(&resp, "CopyObjectResult", t.what, etag, sizeof(etag), err);
        if (rc == 0 && result) {
            snprintf(result->etag, sizeof(result->etag), "%s", etag);
            const char *v = aws_response_header(&resp, "x-amz-version-id");
            snprintf(result->version_id, sizeof(result->version_id), "%s", v ? v : "");
        }
        aws_response_clear(&resp);
        s3_target_clear(&t);
    }
    headers_free(&h);
    free(source);
    return rc;
}

/* ---- Buckets ---- */

int s3_head_bucket(struct s3client *c, const char *bucket, struct s3_error *err)
{
    int rc = simple_request(c, "HEAD", bucket, NULL, NULL, err);
    if (rc != 0 && err && err->http_status == 404)
        s3_error_set(err, 404, "NoSuchBucket", false,
                     "HEAD s3://%s: the bucket does not exist (check the bucket name, the "
                     "endpoint and the region)",
                     bucket);
    else if (rc != 0 && err && err->http_status == 403)
        s3_error_set(err, 403, "AccessDenied", false,
                     "HEAD s3://%s: access denied (the credentials may not use this bucket, or "
                     "the signature is wrong)",
                     bucket);
    return rc;
}

int s3_create_bucket(struct s3client *c, const char *bucket, struct s3_error *err)
{
    struct s3_target t;
    if (s3_target_init(c, &t, "PUT", bucket, NULL, err) != 0)
        return -1;
    struct strbuf body = {0};
    if (strcmp(c->region, "us-east-1") != 0)
        strbuf_printf(
            &body,
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
            "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
            c->region);
    struct s3_body b = s3_body_mem(body.data, body.len);
    struct http_request req = {.method = "PUT", .body = body.len ? &b : NULL, .idempotent = true};
    struct aws_response resp;
    int rc = s3_perform(c, &t, &req, &resp, err);
    if (rc != 0 && err && strcmp(err->code, "BucketAlreadyOwnedByYou") == 0) {
        s3_error_clear(err);
        rc = 0;
    }
    aws_response_clear(&resp);
    strbuf_free(&body);
    s3_target_clear(&t);
    return rc;
}

int s3_delete_bucket(struct s3client *c, const char *bucket, struct s3_error *err)
{
    return simple_request(c, "DELETE", bucket, NULL, NULL, err);
}

char *s3_presign_get(struct s3client *c, const char *bucket, const char *key,
                     unsigned expires_seconds, struct s3_error *err)
{
    struct aws_credentials creds;
    struct s3_target t;
    if (c->credentials(c->credentials_ctx, &creds, err) != 0)
        return NULL;
    if (s3_target_init(c, &t, "GET", bucket, key, err) != 0)
        return NULL;
    char date[17];
    sigv4_format_date(time(NULL) + atomic_load(&c->clock_offset), date);
    struct aws_header host = {"host", t.host};
    struct sigv4_request req = {"GET", t.path, NULL, &host, 1, "UNSIGNED-PAYLOAD"};
    struct sigv4_scope scope = {c->region, "s3", date, false, false};
    char *query = sigv4_presign_query(&req, &scope, &creds, expires_seconds, NULL, err);
    char *url = NULL;
    if (query && asprintf(&url, "%s://%s%s?%s", c->scheme, t.host, t.path, query) < 0)
        url = NULL;
    free(query);
    s3_target_clear(&t);
    explicit_bzero(&creds, sizeof(creds));
    return url;
}

/* The raw MD5 of body's bytes [off, off + len). */
static int range_md5(const struct s3_body *body, uint64_t off, uint64_t len, unsigned char out[16],
                     struct s3_error *err)
{
    struct s3_body part = *body;
    part.data = body->data ? (const char *)body->data + off : NULL;
    part.offset = body->offset + (off_t)off;
    part.length = len;
    part.progress = NULL;
    char sha[65], md5_b64[25];
    if (s3_body_digests(&part, sha, md5_b64, err) != 0)
        return -1;
    unsigned char raw[18];
    if (EVP_DecodeBlock(raw, (const unsigned char *)md5_b64, 24) != 18) {
        s3_error_set(err, 0, "InvalidArgument", false, "bad MD5 encoding");
        return -1;
    }
    memcpy(out, raw, 16);
    return 0;
}

static void hex16(const unsigned char in[16], char out[33])
{
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", in[i]);
}

/* The ETag S3 gives body: "<md5>" for one PUT; "<md5 of the parts' md5s>-<parts>" for a
 * multipart upload in parts of part_size (parts > 0). */
static int expected_etag(const struct s3_body *body, uint64_t part_size, unsigned parts,
                         char out[48], struct s3_error *err)
{
    unsigned char md5[16];
    if (parts == 0) {
        if (range_md5(body, 0, body->length, md5, err) != 0)
            return -1;
        hex16(md5, out);
        return 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int rc = ctx && EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 ? 0 : -1;
    for (unsigned i = 0; i < parts && rc == 0; i++) {
        uint64_t off = (uint64_t)i * part_size;
        uint64_t len = body->length - off < part_size ? body->length - off : part_size;
        rc = range_md5(body, off, len, md5, err);
        if (rc == 0 && EVP_DigestUpdate(ctx, md5, 16) != 1)
            rc = -1;
    }
    if (rc == 0 && EVP_DigestFinal_ex(ctx, md5, NULL) != 1)
        rc = -1;
    EVP_MD_CTX_free(ctx);
    if (rc == 0) {
        hex16(md5, out);
        snprintf(out + 32, 16, "-%u", parts);
    }
    return rc;
}

int s3_object_has_content(struct s3client *c, const char *bucket, const char *key,
                          const struct s3_body *body, uint64_t part_size,
                          struct s3_object_info *info, struct s3_error *err)
{
    if (s3_head_object(c, bucket, key, info, err) != 0)
        return err && strcmp(err->code, "NoSuchKey") == 0 ? 0 : -1;
    if (info->size != body->length || strlen(info->etag) < 32)
        return 0;
    unsigned parts = 0;
    if (info->etag[32] == '-') { /* a multipart upload: the part size must give that count */
        if (!part_size)
            part_size = c->multipart_part_size;
        char *end;
        unsigned long n = strtoul(info->etag + 33, &end, 10);
        if (*end || !part_size || n == 0 || n > 10000 ||
            (body->length + part_size - 1) / part_size != n)
            return 0;
        parts = (unsigned)n;
    } else if (info->etag[32]) {
        return 0;
    }
    char want[48];
    if (expected_etag(body, part_size, parts, want, err) != 0)
        return -1;
    return strcasecmp(want, info->etag) == 0;
}
