/* Multipart uploads: the individual steps, and s3_upload, which sends a large body as parallel
 * parts (aborting the upload if it cannot be completed) and a small one as a single PUT. */
#include "internal.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 10000

static int upload_id_query(char **out, const char *upload_id, const char *prefix)
{
    char *enc = aws_uri_encode(upload_id, strlen(upload_id), false);
    int rc = enc ? asprintf(out, "%suploadId=%s", prefix, enc) : -1;
    free(enc);
    return rc < 0 ? -1 : 0;
}

static bool is_copy(const struct http_request *req)
{
    for (size_t i = 0; i < req->header_count; i++)
        if (strcmp(req->headers[i].name, "x-amz-copy-source") == 0)
            return true;
    return false;
}

/* Runs a request on bucket/key; resp is filled and must be cleared by the caller. */
static int run(struct s3client *c, const char *method, const char *bucket, const char *key,
               const char *what_op, struct http_request *req, struct aws_response *resp,
               struct s3_error *err)
{
    struct s3_target t;
    memset(resp, 0, sizeof(*resp));
    if (s3_target_init(c, &t, method, bucket, key, err) != 0)
        return -1;
    snprintf(t.what, sizeof(t.what), "%s s3://%s/%s", what_op, bucket, key ? key : "");
    req->method = method;
    int rc = s3_perform(c, &t, req, resp, err);
    /* radosgw answers 404 NoSuchKey where S3 says NoSuchUpload: callers resuming an upload
     * need to know that the upload is gone, whichever server they talk to. Not for
     * UploadPartCopy: there NoSuchKey is the source that is missing (radosgw says NoSuchUpload
     * itself for a missing upload there). */
    if (rc != 0 && err && err->http_status == 404 && strcmp(err->code, "NoSuchKey") == 0 &&
        req->query && strstr(req->query, "uploadId=") && !is_copy(req))
        s3_error_set(err, 404, "NoSuchUpload", false,
                     "%s: the multipart upload no longer exists (aborted or completed)", t.what);
    s3_target_clear(&t);
    return rc;
}

int s3_multipart_create(struct s3client *c, const char *bucket, const char *key,
                        const struct s3_put_options *opts, char **upload_id, struct s3_error *err)
{
    struct headers h = {0};
    if (!opts || !opts->content_type)
        headers_add(&h, "content-type", "application/octet-stream");
    /* A create-only condition belongs on Complete, not on Create. */
    struct s3_put_options create_opts = opts ? *opts : (struct s3_put_options){0};
    create_opts.if_none_match = NULL;
    if (headers_add_put_options(&h, &create_opts, true, err) != 0) {
        headers_free(&h);
        return -1;
    }
    struct http_request req = {
        .query = "uploads=", .headers = h.list, .header_count = h.count, .idempotent = true};
    struct aws_response resp;
    int rc = run(c, "POST", bucket, key, "CreateMultipartUpload", &req, &resp, err);
    if (rc == 0) {
        *upload_id = aws_xml_find_text(resp.body, resp.body_len, "UploadId");
        if (!*upload_id || !**upload_id) {
            free(*upload_id);
            *upload_id = NULL;
            s3_error_set(err, resp.status, "BadResponse", true,
                         "CreateMultipartUpload s3://%s/%s: no UploadId in the answer", bucket,
                         key);
            rc = -1;
        }
    }
    headers_free(&h);
    aws_response_clear(&resp);
    return rc;
}

int s3_multipart_upload_part(struct s3client *c, const char *bucket, const char *key,
                             const char *upload_id, int part_number, const struct s3_body *body,
                             struct s3_part *part, struct s3_error *err)
{
    char sha[65], md5[25], *query = NULL, prefix[32];
    if (s3_body_digests(body, sha, c->content_md5 ? md5 : NULL, err) != 0)
        return -1;
    snprintf(prefix, sizeof(prefix), "partNumber=%d&", part_number);
    if (upload_id_query(&query, upload_id, prefix) != 0) {
        s3_error_set(err, 0, "OutOfMemory", false, "UploadPart: out of memory");
        return -1;
    }
    struct aws_header h[] = {{"content-md5", md5}};
    struct http_request req = {.query = query,
                               .headers = h,
                               .header_count = c->content_md5 ? 1 : 0,
                               .body = body,
                               .payload_hash = sha,
                               .idempotent = true};
    struct aws_response resp;
    char what[48];
    snprintf(what, sizeof(what), "UploadPart %d of", part_number);
    int rc = run(c, "PUT", bucket, key, what, &req, &resp, err);
    if (rc == 0) {
        part->number = part_number;
        part->size = body->length;
        s3_copy_etag(part->etag, sizeof(part->etag), aws_response_header(&resp, "etag"));
    }
    aws_response_clear(&resp);
    free(query);
    return rc;
}

int s3_multipart_upload_part_copy(struct s3client *c, const char *bucket, const char *key,
                                  const char *upload_id, int part_number, const char *src_bucket,
                                  const char *src_key, uint64_t first, uint64_t last,
                                  const char *if_match, struct s3_part *part, struct s3_error *err)
{
    if (first > last) {
        s3_error_set(err, 0, "InvalidArgument", false, "UploadPartCopy: range %llu-%llu is empty",
                     (unsigned long long)first, (unsigned long long)last);
        return -1;
    }
    char *query = NULL, prefix[32], range[64];
    snprintf(prefix, sizeof(prefix), "partNumber=%d&", part_number);
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)first,
             (unsigned long long)last);
    char *source = s3_copy_source(src_bucket, src_key);
    if (!source || upload_id_query(&query, upload_id, prefix) != 0) {
        free(source);
        s3_error_set(err, 0, "OutOfMemory", false, "UploadPartCopy: out of memory");
        return -1;
    }
    struct headers h = {0};
    headers_add(&h, "x-amz-copy-source", source);
    headers_add(&h, "x-amz-copy-source-range", range);
    headers_add(&h, "x-amz-copy-source-if-match", if_match);
    struct http_request req = {
        .query = query, .headers = h.list, .header_count = h.count, .idempotent = true};
    struct aws_response resp;
    char what[600];
    snprintf(what, sizeof(what), "UploadPartCopy %d from s3://%s/%s to", part_number, src_bucket,
             src_key);
    int rc = run(c, "PUT", bucket, key, what, &req, &resp, err);
    if (rc == 0) {
        char full_what[600];
        snprintf(full_what, sizeof(full_what), "UploadPartCopy %d from s3://%s/%s to s3://%s/%s",
                 part_number, src_bucket, src_key, bucket, key);
        rc =
            s3_copy_answer(&resp, "CopyPartResult", full_what, part->etag, sizeof(part->etag), err);
        if (rc == 0 && !part->etag[0]) {
            s3_error_set(err, resp.status, "BadResponse", true, "%s: no ETag in the answer",
                         full_what);
            rc = -1;
        }
    }
    if (rc == 0) {
        part->number = part_number;
        part->size = last - first + 1;
    }
    aws_response_clear(&resp);
    headers_free(&h);
    free(query);
    free(source);
    return rc;
}

struct complete_result {
    char *etag;
    bool is_error;
};

static void complete_end(void *ctx, const char *path, const char *text)
{
    struct complete_result *r = ctx;
    if (strcmp(path, "CompleteMultipartUploadResult/ETag") == 0 && !r->etag)
        r->etag = strdup(text);
    else if (strcmp(path, "Error") == 0)
        r->is_error = true;
}

/* The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, "-", part count. */
static void multipart_etag(const struct s3_part *parts, size_t count, char *out, size_t out_size)
{
    EVP_MD_CTX *md5 = EVP_MD_CTX_new();
    unsigned char digest[16];
    if (!md5 || !EVP_DigestInit_ex(md5, EVP_md5(), NULL)) {
        EVP_MD_CTX_free(md5);
        out[0] = '\0';
        return;
    }
    for (size_t i = 0; i < count; i++) {
        unsigned char part_md5[16];
        for (int k = 0; k < 16; k++)
            if (sscanf(parts[i].etag + 2 * k, "%2hhx", &part_md5[k]) != 1)
                part_md5[k] = 0;
        EVP_DigestUpdate(md5, part_md5, 16);
    }
    EVP_DigestFinal_ex(md5, digest, NULL);
    EVP_MD_CTX_free(md5);
    size_t n = 0;
    for (int k = 0; k < 16 && n + 2 < out_size; k++)
        n += (size_t)snprintf(out + n, out_size - n, "%02x", digest[k]);
    snprintf(out + n, out_size - n, "-%zu", count);
}

int s3_multipart_complete(struct s3client *c, const char *bucket, const char *key,
                          const char *upload_id, const struct s3_part *parts, size_t count,
                          struct s3_put_result *result, struct s3_error *err)
{
    struct strbuf body = {0};
    strbuf_puts(&body, "<CompleteMultipartUpload "
                       "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    for (size_t i = 0; i < count; i++)
        strbuf_printf(&body, "<Part><PartNumber>%d</PartNumber><ETag>\"%s\"</ETag></Part>",
                      parts[i].number, parts[i].etag);
    strbuf_puts(&body, "</CompleteMultipartUpload>");
    char *query = NULL;
    if (body.failed || upload_id_query(&query, upload_id, "") != 0) {
        strbuf_free(&body);
        s3_error_set(err, 0, "OutOfMemory", false, "CompleteMultipartUpload: out of memory");
        return -1;
    }
    struct s3_body b = s3_body_mem(body.data, body.len);
    struct aws_header h[] = {{"content-type", "application/xml"}};
    struct http_request req = {
        .query = query, .headers = h, .header_count = 1, .body = &b, .idempotent = true};
    struct aws_response resp;
    int rc = run(c, "POST", bucket, key, "CompleteMultipartUpload", &req, &resp, err);
    /* Like CopyObject, Complete can fail after a 200 status line. */
    struct complete_result r = {0};
    if (rc == 0 && (xml_walk(resp.body, resp.body_len, complete_end, &r) != 0 || r.is_error)) {
        if (r.is_error)
            s3_error_from_response(&resp, "CompleteMultipartUpload", err);
        else
            s3_error_set(err, resp.status, "BadResponse", true,
                         "CompleteMultipartUpload s3://%s/%s: the answer is not valid XML", bucket,
                         key);
        rc = -1;
    }
    if (rc == 0 && result) {
        s3_copy_etag(result->etag, sizeof(result->etag), r.etag);
        if (!result->etag[0]) /* radosgw leaves <ETag/> empty */
            multipart_etag(parts, count, result->etag, sizeof(result->etag));
        const char *v = aws_response_header(&resp, "x-amz-version-id");
        snprintf(result->version_id, sizeof(result->version_id), "%s", v ? v : "");
    }
    free(r.etag);
    aws_response_clear(&resp);
    strbuf_free(&body);
    free(query);
    return rc;
}

int s3_multipart_abort(struct s3client *c, const char *bucket, const char *key,
                       const char *upload_id, struct s3_error *err)
{
    char *query = NULL;
    if (upload_id_query(&query, upload_id, "") != 0) {
        s3_error_set(err, 0, "OutOfMemory", false, "AbortMultipartUpload: out of memory");
        return -1;
    }
    struct http_request req = {.query = query, .idempotent = true};
    struct aws_response resp;
    int rc = run(c, "DELETE", bucket, key, "AbortMultipartUpload", &req, &resp, err);
    aws_response_clear(&resp);
    free(query);
    return rc;
}

/* ---- ListParts ---- */

struct parts_parse {
    struct s3_part *parts;
    size_t count;
    struct s3_part cur;
    bool truncated;
    int next_marker;
    bool oom;
};

static void parts_end(void *ctx, const char *path, const char *text)
{
    struct parts_parse *p = ctx;
    if (strcmp(path, "ListPartsResult/Part/PartNumber") == 0) {
        p->cur.number = atoi(text);
    } else if (strcmp(path, "ListPartsResult/Part/ETag") == 0) {
        s3_copy_etag(p->cur.etag, sizeof(p->cur.etag), text);
    } else if (strcmp(path, "ListPartsResult/Part/Size") == 0) {
        p->cur.size = strtoull(text, NULL, 10);
    } else if (strcmp(path, "ListPartsResult/Part") == 0) {
        struct s3_part *grown = realloc(p->parts, (p->count + 1) * sizeof(*grown));
        if (!grown) {
            p->oom = true;
            return;
        }
        p->parts = grown;
        grown[p->count++] = p->cur;
        memset(&p->cur, 0, sizeof(p->cur));
    } else if (strcmp(path, "ListPartsResult/IsTruncated") == 0) {
        p->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(path, "ListPartsResult/NextPartNumberMarker") == 0) {
        p->next_marker = atoi(text);
    }
}

static int compare_parts(const void *a, const void *b)
{
    return ((const struct s3_part *)a)->number - ((const struct s3_part *)b)->number;
}

int s3_multipart_list_parts(struct s3client *c, const char *bucket, const char *key,
                            const char *upload_id, struct s3_part **parts, size_t *count,
                            struct s3_error *err)
{
    struct parts_parse p = {0};
    int marker = 0, rc = 0;
    do {
        char *query = NULL, prefix[48] = "";
        if (marker)
            snprintf(prefix, sizeof(prefix), "part-number-marker=%d&", marker);
        if (upload_id_query(&query, upload_id, prefix) != 0) {
            s3_error_set(err, 0, "OutOfMemory", false, "ListParts: out of memory");
            rc = -1;
            break;
        }
        struct http_request req = {.query = query, .idempotent = true};
        struct aws_response resp;
        p.truncated = false;
        rc = run(c, "GET", bucket, key, "ListParts", &req, &resp, err);
        if (rc == 0 && (xml_walk(resp.body, resp.body_len, parts_end, &p) != 0 || p.oom)) {
            s3_error_set(err, resp.status, "BadResponse", !p.oom,
                         "ListParts s3://%s/%s: the answer could not be read", bucket, key);
            rc = -1;
        }
        aws_response_clear(&resp);
        free(query);
        /* A marker that does not move on would loop forever. */
        if (rc == 0 && p.truncated && p.next_marker <= marker) {
            s3_error_set(err, 0, "BadResponse", false,
                         "ListParts s3://%s/%s: truncated page without a new marker", bucket, key);
            rc = -1;
        }
        marker = p.next_marker;
    } while (rc == 0 && p.truncated);
    if (rc != 0) {
        free(p.parts);
        return -1;
    }
    qsort(p.parts, p.count, sizeof(*p.parts), compare_parts);
    *parts = p.parts;
    *count = p.count;
    return 0;
}

/* ---- ListMultipartUploads ---- */

struct uploads_parse {
    struct s3_multipart_upload *list;
    size_t count;
    struct s3_multipart_upload cur;
    bool truncated;
    char *next_key;
    char *next_id;
    bool oom;
};

static void set_str(char **slot, const char *text, bool *oom)
{
    free(*slot);
    if (!(*slot = strdup(text)))
        *oom = true;
}

static void uploads_end(void *ctx, const char *path, const char *text)
{
    struct uploads_parse *p = ctx;
    static const char root[] = "ListMultipartUploadsResult/";
    if (strncmp(path, root, sizeof(root) - 1) != 0)
        return;
    path += sizeof(root) - 1;
    if (strcmp(path, "Upload/Key") == 0) {
        set_str(&p->cur.key, text, &p->oom);
    } else if (strcmp(path, "Upload/UploadId") == 0) {
        set_str(&p->cur.upload_id, text, &p->oom);
    } else if (strcmp(path, "Upload/Initiated") == 0) {
        p->cur.initiated = s3_parse_iso8601(text);
    } else if (strcmp(path, "Upload") == 0) {
        struct s3_multipart_upload *grown = realloc(p->list, (p->count + 1) * sizeof(*grown));
        if (grown)
            p->list = grown;
        if (!grown || !p->cur.key || !p->cur.upload_id) {
            p->oom = true;
            return;
        }
        p->list = grown;
        grown[p->count++] = p->cur;
        memset(&p->cur, 0, sizeof(p->cur));
    } else if (strcmp(path, "IsTruncated") == 0) {
        p->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(path, "NextKeyMarker") == 0) {
        set_str(&p->next_key, text, &p->oom);
    } else if (strcmp(path, "NextUploadIdMarker") == 0) {
        set_str(&p->next_id, text, &p->oom);
    }
}

static char *uploads_query(const char *prefix, const char *key_marker, const char *id_marker)
{
    struct strbuf q = {0};
    const char *names[] = {"key-marker", "prefix", "upload-id-marker"};
    const char *values[] = {key_marker, prefix, id_marker};
    for (size_t i = 0; i < 3; i++) {
        if (!values[i] || !*values[i])
            continue;
        char *enc = aws_uri_encode(values[i], strlen(values[i]), false);
        strbuf_printf(&q, "%s=%s&", names[i], enc ? enc : "");
        if (!enc)
            q.failed = true;
        free(enc);
    }
    strbuf_puts(&q, "uploads=");
    if (q.failed) {
        strbuf_free(&q);
        return NULL;
    }
    return q.data;
}

int s3_multipart_list_uploads(struct s3client *c, const char *bucket, const char *prefix,
                              struct s3_multipart_upload **uploads, size_t *count,
                              struct s3_error *err)
{
    struct uploads_parse p = {0};
    int rc = 0;
    do {
        char *query = uploads_query(prefix, p.next_key, p.next_id);
        if (!query) {
            s3_error_set(err, 0, "OutOfMemory", false, "ListMultipartUploads: out of memory");
            rc = -1;
            break;
        }
        char *prev_key = p.next_key ? strdup(p.next_key) : NULL;
        char *prev_id = p.next_id ? strdup(p.next_id) : NULL;
        struct http_request req = {.query = query, .idempotent = true};
        struct aws_response resp;
        p.truncated = false;
        rc = run(c, "GET", bucket, NULL, "ListMultipartUploads", &req, &resp, err);
        if (rc == 0 && (xml_walk(resp.body, resp.body_len, uploads_end, &p) != 0 || p.oom)) {
            s3_error_set(err, resp.status, "BadResponse", !p.oom,
                         "ListMultipartUploads s3://%s: the answer could not be read", bucket);
            rc = -1;
        }
        bool same = p.next_key && prev_key && strcmp(p.next_key, prev_key) == 0 && p.next_id &&
                    prev_id && strcmp(p.next_id, prev_id) == 0;
        if (rc == 0 && p.truncated && (!p.next_key || same)) {
            s3_error_set(err, 0, "BadResponse", false,
                         "ListMultipartUploads s3://%s: truncated page without a new marker",
                         bucket);
            rc = -1;
        }
        free(prev_key);
        free(prev_id);
        aws_response_clear(&resp);
        free(query);
    } while (rc == 0 && p.truncated);
    free(p.next_key);
    free(p.next_id);
    free(p.cur.key);
    free(p.cur.upload_id);
    if (rc != 0) {
        s3_multipart_uploads_free(p.list, p.count);
        return -1;
    }
    *uploads = p.list;
    *count = p.count;
    return 0;
}

void s3_multipart_uploads_free(struct s3_multipart_upload *uploads, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(uploads[i].key);
        free(uploads[i].upload_id);
    }
    free(uploads);
}

/* ---- s3_upload and s3_copy: parallel parts ---- */

/* The parts of one multipart upload, sent by several threads: each takes the next part number
 * and sends that part with `send` (an upload from a body, or a copy from a source object). */
struct parts_job {
    struct s3client *c;
    const char *bucket;
    const char *key;
    const char *upload_id;
    uint64_t total; /* bytes of the whole object */
    uint64_t part_size;
    int part_count;
    struct s3_part *parts;
    int (*send)(struct parts_job *j, int number, uint64_t start, uint64_t len,
                struct s3_error *err);
    /* Called once every part is in, before Complete; NULL = nothing to check. */
    int (*check)(struct parts_job *j, struct s3_error *err);
    bool *done;                 /* parts already on the server (s3_upload_resumable); NULL = none */
    const struct s3_body *body; /* s3_upload */
    const char *src_bucket;     /* s3_copy */
    const char *src_key;
    const char *src_etag;

    pthread_mutex_t lock;
    int next_part; /* next part number to send */
    bool failed;
    struct s3_error first_error;
};

/* Part size and count for total bytes: at most MAX_PARTS parts, each at least part_size. */
static void plan_parts(struct parts_job *j, uint64_t total, uint64_t part_size)
{
    if ((total + part_size - 1) / part_size > MAX_PARTS)
        part_size = (total + MAX_PARTS - 1) / MAX_PARTS;
    j->total = total;
    j->part_size = part_size;
    j->part_count = (int)((total + part_size - 1) / part_size);
    j->next_part = 1;
}

static int take_part(struct parts_job *j)
{
    pthread_mutex_lock(&j->lock);
    while (j->done && !j->failed && j->next_part <= j->part_count && j->done[j->next_part - 1])
        j->next_part++;
    int n = j->failed || j->next_part > j->part_count ? 0 : j->next_part++;
    pthread_mutex_unlock(&j->lock);
    return n;
}

static void *part_worker(void *arg)
{
    struct parts_job *j = arg;
    for (int n; (n = take_part(j)) != 0;) {
        uint64_t start = (uint64_t)(n - 1) * j->part_size;
        uint64_t len = j->total - start < j->part_size ? j->total - start : j->part_size;
        struct s3_error e;
        if (j->send(j, n, start, len, &e) != 0) {
            pthread_mutex_lock(&j->lock);
            if (!j->failed)
                j->first_error = e;
            j->failed = true;
            pthread_mutex_unlock(&j->lock);
        }
    }
    return NULL;
}

/* Sends every part (the calling thread works too). Returns 0, or -1 with err filled from the
 * first part that failed. */
static int send_parts(struct parts_job *j, unsigned parallel, struct s3_error *err)
{
    pthread_t threads[64];
    unsigned started = 0;
    if (parallel > 64)
        parallel = 64;
    if (parallel > (unsigned)j->part_count)
        parallel = (unsigned)j->part_count;
    for (unsigned i = 1; i < parallel; i++)
        if (pthread_create(&threads[started], NULL, part_worker, j) == 0)
            started++;
    part_worker(j);
    for (unsigned i = 0; i < started; i++)
        pthread_join(threads[i], NULL);
    if (j->failed && err)
        *err = j->first_error;
    return j->failed ? -1 : 0;
}

/* Creates the upload, sends the parts and completes it; aborts it on any failure. The caller
 * has planned the parts (plan_parts) and set send and its inputs. */
static int run_multipart(struct parts_job *j, const struct s3_put_options *opts,
                         struct s3_put_result *result, const char *what, struct s3_error *err)
{
    char *upload_id = NULL;
    if (s3_multipart_create(j->c, j->bucket, j->key, opts, &upload_id, err) != 0)
        return -1;
    j->upload_id = upload_id;
    j->parts = calloc((size_t)j->part_count, sizeof(*j->parts));
    pthread_mutex_init(&j->lock, NULL);
    int rc = -1;
    if (!j->parts)
        s3_error_set(err, 0, "OutOfMemory", false, "%s: out of memory", what);
    else if (send_parts(j, j->c->multipart_parallel, err) == 0 &&
             (!j->check || j->check(j, err) == 0))
        rc = s3_multipart_complete(j->c, j->bucket, j->key, upload_id, j->parts,
                                   (size_t)j->part_count, result, err);
    if (rc != 0) /* best effort: the upload's parts would otherwise cost storage */
        s3_multipart_abort(j->c, j->bucket, j->key, upload_id, NULL);
    pthread_mutex_destroy(&j->lock);
    free(j->parts);
    j->parts = NULL;
    free(upload_id);
    j->upload_id = NULL;
    return rc;
}

static int send_body_part(struct parts_job *j, int n, uint64_t start, uint64_t len,
                          struct s3_error *err)
{
    const struct s3_body *b = j->body;
    struct s3_body slice = b->fd >= 0 ? s3_body_fd(b->fd, b->offset + (off_t)start, len)
                                      : s3_body_mem((const char *)b->data + start, len);
    slice.progress = b->progress;
    return s3_multipart_upload_part(j->c, j->bucket, j->key, j->upload_id, n, &slice,
                                    &j->parts[n - 1], err);
}

/* ---- s3_upload_resumable ---- */

/* The parts of r's upload the server has in full: marked done, their ETags kept. Returns 0;
 * 1 when the upload is gone (start a new one); -1 on another error. */
static int reuse_parts(struct parts_job *j, struct s3_resume *r, struct s3_error *err)
{
    struct s3_part *listed = NULL;
    size_t count = 0;
    if (s3_multipart_list_parts(j->c, j->bucket, j->key, r->upload_id, &listed, &count, err) != 0)
        return strcmp(err->code, "NoSuchUpload") == 0 ? 1 : -1;
    for (size_t i = 0; i < count; i++) {
        int n = listed[i].number;
        if (n < 1 || n > j->part_count)
            continue;
        uint64_t start = (uint64_t)(n - 1) * j->part_size;
        uint64_t len = j->total - start < j->part_size ? j->total - start : j->part_size;
        if (listed[i].size != len)
            continue; /* not all of it arrived: sent again */
        j->parts[n - 1] = listed[i];
        j->done[n - 1] = true;
        r->parts_reused++;
    }
    free(listed);
    return 0;
}

/* Continues r's upload (its parts found, 0), or starts a new one and reports it. */
static int open_upload(struct parts_job *j, struct s3_resume *r, const struct s3_put_options *opts,
                       struct s3_error *err)
{
    if (r->upload_id[0]) {
        int rc = reuse_parts(j, r, err);
        if (rc <= 0)
            return rc;
        r->upload_id[0] = '\0'; /* gone: a new one */
        s3_error_clear(err);
    }
    char *upload_id = NULL;
    if (s3_multipart_create(j->c, j->bucket, j->key, opts, &upload_id, err) != 0)
        return -1;
    snprintf(r->upload_id, sizeof(r->upload_id), "%s", upload_id);
    free(upload_id);
    r->part_size = j->part_size;
    if (r->on_created)
        r->on_created(r->ctx, r);
    return 0;
}

/* After a failed Complete: an upload that can never complete is dropped so that the next call
 * starts again; a transient failure keeps it. */
static void after_failed_complete(struct parts_job *j, struct s3_resume *r, struct s3_error *err)
{
    if (strcmp(err->code, "NoSuchUpload") != 0 && strcmp(err->code, "InvalidPart") != 0 &&
        strcmp(err->code, "InvalidPartOrder") != 0)
        return;
    s3_multipart_abort(j->c, j->bucket, j->key, r->upload_id, NULL);
    r->upload_id[0] = '\0';
    err->retryable = true;
}

int s3_upload_resumable(struct s3client *c, const char *bucket, const char *key,
                        const struct s3_body *body, const struct s3_put_options *opts,
                        struct s3_resume *r, struct s3_put_result *result, struct s3_error *err)
{
    if (body->length < c->multipart_threshold)
        return s3_put_object(c, bucket, key, body, opts, result, err);
    struct s3_error local;
    if (!err)
        err = &local;
    struct parts_job j = {.c = c,
                          .bucket = bucket,
                          .key = key,
                          .upload_id = r->upload_id, /* filled in by open_upload */
                          .send = send_body_part,
                          .body = body};
    uint64_t part_size = r->upload_id[0] && r->part_size ? r->part_size : c->multipart_part_size;
    plan_parts(&j, body->length, part_size);
    if (r->upload_id[0] && j.part_size != r->part_size)
        r->upload_id[0] = '\0'; /* its parts cannot be these: a new upload (on_created tells) */
    j.parts = calloc((size_t)j.part_count, sizeof(*j.parts));
    j.done = calloc((size_t)j.part_count, sizeof(*j.done));
    pthread_mutex_init(&j.lock, NULL);
    r->parts_reused = 0;
    int rc = -1;
    if (!j.parts || !j.done)
        s3_error_set(err, 0, "OutOfMemory", false, "s3_upload: out of memory");
    else if (open_upload(&j, r, opts, err) == 0 &&
             send_parts(&j, c->multipart_parallel, err) == 0) {
        rc = s3_multipart_complete(c, bucket, key, r->upload_id, j.parts, (size_t)j.part_count,
                                   result, err);
        if (rc == 0)
            r->upload_id[0] = '\0';
        else
            after_failed_complete(&j, r, err);
    }
    pthread_mutex_destroy(&j.lock);
    free(j.parts);
    free(j.done);
    return rc;
}

/* One upload path for bodies: s3_upload is a resumable upload that nobody resumes. */
int s3_upload(struct s3client *c, const char *bucket, const char *key, const struct s3_body *body,
              const struct s3_put_options *opts, struct s3_put_result *result, struct s3_error *err)
{
    struct s3_resume r = {0};
    int rc = s3_upload_resumable(c, bucket, key, body, opts, &r, result, err);
    if (rc != 0 && r.upload_id[0]) /* best effort: its parts would otherwise cost storage */
        s3_multipart_abort(c, bucket, key, r.upload_id, NULL);
    return rc;
}

/* ---- s3_copy ---- */

#define COPY_OBJECT_MAX   (5ull << 30) /* largest CopyObject, and largest part */
#define COPY_PART_DEFAULT (512ull << 20)
#define PART_MIN          (5ull << 20)

static int send_copy_part(struct parts_job *j, int n, uint64_t start, uint64_t len,
                          struct s3_error *err)
{
    return s3_multipart_upload_part_copy(j->c, j->bucket, j->key, j->upload_id, n, j->src_bucket,
                                         j->src_key, start, start + len - 1, j->src_etag,
                                         &j->parts[n - 1], err);
}

/* radosgw (16) ignores x-amz-copy-source-if-match on UploadPartCopy as on CopyObject: a source
 * replaced while its parts were being copied is caught here instead, by its ETag. */
static int check_source_unchanged(struct parts_job *j, struct s3_error *err)
{
    struct s3_object_info now = {0};
    if (s3_head_object(j->c, j->src_bucket, j->src_key, &now, err) != 0)
        return -1;
    int rc = 0;
    if (j->src_etag && strcmp(now.etag, j->src_etag) != 0) {
        s3_error_set(err, 412, "PreconditionFailed", false,
                     "copy s3://%s/%s: the source changed during the copy (ETag %s, was %s); "
                     "copy it again",
                     j->src_bucket, j->src_key, now.etag, j->src_etag);
        rc = -1;
    }
    s3_object_info_clear(&now);
    return rc;
}

/* The multipart path of s3_copy, for the source described by info (from its HEAD). */
static int copy_multipart(struct s3client *c, const char *src_bucket, const char *src_key,
                          const char *dst_bucket, const char *dst_key,
                          const struct s3_copy_options *opts, const struct s3_object_info *info,
                          const char *cache_control, struct s3_put_result *result,
                          struct s3_error *err)
{
    /* The new object's headers: the source's, or the caller's with replace_metadata. */
    struct s3_put_options create = {0};
    struct aws_header *meta = NULL;
    if (opts->replace_metadata) {
        if (opts->put)
            create = *opts->put;
    } else {
        meta = calloc(info->metadata_count + 1, sizeof(*meta));
        if (!meta) {
            s3_error_set(err, 0, "OutOfMemory", false, "copy: out of memory");
            return -1;
        }
        for (size_t i = 0; i < info->metadata_count; i++)
            meta[i] = (struct aws_header){info->metadata[i].name, info->metadata[i].value};
        create.content_type = info->content_type[0] ? info->content_type : NULL;
        create.cache_control = cache_control[0] ? cache_control : NULL;
        create.metadata = meta;
        create.metadata_count = info->metadata_count;
        if (opts->put) {
            create.sse = opts->put->sse;
            create.sse_kms_key_id = opts->put->sse_kms_key_id;
        }
    }

    uint64_t part_size = opts->part_size ? opts->part_size : COPY_PART_DEFAULT;
    if (part_size < PART_MIN)
        part_size = PART_MIN;
    if (part_size > COPY_OBJECT_MAX)
        part_size = COPY_OBJECT_MAX;
    struct parts_job j = {.c = c,
                          .bucket = dst_bucket,
                          .key = dst_key,
                          .send = send_copy_part,
                          .check = check_source_unchanged,
                          .src_bucket = src_bucket,
                          .src_key = src_key,
                          .src_etag = info->etag[0] ? info->etag : NULL};
    plan_parts(&j, info->size, part_size);
    int rc;
    if (j.part_size > COPY_OBJECT_MAX) {
        s3_error_set(err, 0, "EntityTooLarge", false,
                     "copy s3://%s/%s: %llu bytes do not fit in %d parts of at most 5 GiB",
                     src_bucket, src_key, (unsigned long long)info->size, MAX_PARTS);
        rc = -1;
    } else {
        rc = run_multipart(&j, &create, result, "copy", err);
    }
    free(meta);
    return rc;
}

int s3_copy(struct s3client *c, const char *src_bucket, const char *src_key, const char *dst_bucket,
            const char *dst_key, const struct s3_copy_options *opts, struct s3_put_result *result,
            struct s3_error *err)
{
    const struct s3_copy_options none = {0};
    if (!opts)
        opts = &none;
    struct s3_object_info info = {0};
    char cache_control[256];
    if (s3_head_object_cc(c, src_bucket, src_key, &info, cache_control, sizeof(cache_control),
                          err) != 0)
        return -1;
    char want[128] = "";
    if (opts->if_match)
        s3_copy_etag(want, sizeof(want), opts->if_match);
    uint64_t threshold = opts->multipart_threshold ? opts->multipart_threshold : COPY_OBJECT_MAX;
    int rc;
    if (want[0] && strcmp(want, info.etag) != 0) {
        s3_error_set(err, 412, "PreconditionFailed", false,
                     "copy s3://%s/%s: the source's ETag is %s, not %s (it has changed)",
                     src_bucket, src_key, info.etag, want);
        rc = -1;
    } else if (info.size == 0 || (info.size < threshold && info.size <= COPY_OBJECT_MAX)) {
        /* One request, bound to the version the HEAD saw. */
        struct s3_copy_options single = *opts;
        single.if_match = info.etag[0] ? info.etag : NULL;
        rc = s3_copy_object(c, src_bucket, src_key, dst_bucket, dst_key, &single, result, err);
    } else {
        rc = copy_multipart(c, src_bucket, src_key, dst_bucket, dst_key, opts, &info, cache_control,
                            result, err);
    }
    s3_object_info_clear(&info);
    return rc;
}
