/* The transport: one signed HTTP exchange on libcurl, with a pool of reused handles (keep-alive
 * connections shared between threads), retries with backoff and full jitter, and errors turned
 * into s3_error values. */
#include "internal.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define POOL_MAX     64
#define BODY_MAX_DEF (64u * 1024 * 1024)
#define MAX_HEADERS  32

/* ---- handle pool and share ---- */

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *ctx)
{
    (void)h, (void)access;
    struct s3client *c = ctx;
    pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *ctx)
{
    (void)h;
    struct s3client *c = ctx;
    pthread_mutex_unlock(&c->share_locks[data]);
}

int http_pool_init(struct s3client *c)
{
    pthread_mutex_init(&c->pool_lock, NULL);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&c->share_locks[i], NULL);
    c->pool = calloc(POOL_MAX, sizeof(*c->pool));
    c->share = curl_share_init();
    if (!c->pool || !c->share)
        return -1;
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    /* Not CURL_LOCK_DATA_CONNECT: with libcurl 7.88 a shared connection cache let two threads
     * write on one connection at once (radosgw saw garbled headers under 8 threads). Each
     * pooled handle keeps its own live connections instead, which reuse covers as well. */
    return 0;
}

void http_pool_free(struct s3client *c)
{
    for (size_t i = 0; i < c->pool_count; i++)
        curl_easy_cleanup(c->pool[i]);
    free(c->pool);
    if (c->share)
        curl_share_cleanup(c->share);
    pthread_mutex_destroy(&c->pool_lock);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_destroy(&c->share_locks[i]);
}

static CURL *handle_get(struct s3client *c)
{
    CURL *h = NULL;
    pthread_mutex_lock(&c->pool_lock);
    if (c->pool_count)
        h = c->pool[--c->pool_count];
    pthread_mutex_unlock(&c->pool_lock);
    if (h)
        curl_easy_reset(h);
    else
        h = curl_easy_init();
    return h;
}

static void handle_put(struct s3client *c, CURL *h)
{
    pthread_mutex_lock(&c->pool_lock);
    if (c->pool_count < POOL_MAX) {
        c->pool[c->pool_count++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->pool_lock);
    if (h)
        curl_easy_cleanup(h);
}

/* ---- one attempt ---- */

struct exchange {
    const struct http_request *req;
    struct aws_response *resp;
    CURL *curl;
    uint64_t sent;     /* body bytes handed to curl */
    uint64_t received; /* body bytes of this attempt */
    size_t max_body;
    bool sink_failed;
    bool too_large;
    int read_errno;
};

static size_t read_body(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct exchange *x = userdata;
    const struct s3_body *b = x->req->body;
    uint64_t left = b->length - x->sent;
    size_t n = size * nitems < left ? size * nitems : (size_t)left;
    if (n == 0)
        return 0;
    if (b->fd < 0) {
        memcpy(buf, (const char *)b->data + x->sent, n);
    } else {
        ssize_t got = pread(b->fd, buf, n, b->offset + (off_t)x->sent);
        if (got <= 0) {
            x->read_errno = got < 0 ? errno : EIO;
            return CURL_READFUNC_ABORT;
        }
        n = (size_t)got;
    }
    x->sent += n;
    if (b->progress)
        __atomic_add_fetch(b->progress, n, __ATOMIC_RELAXED);
    return n;
}

/* A failed or rewound attempt takes back what it had counted as sent. */
static void progress_take_back(const struct exchange *x, uint64_t bytes)
{
    if (x->req->body && x->req->body->progress && bytes)
        __atomic_sub_fetch(x->req->body->progress, bytes, __ATOMIC_RELAXED);
}

static int seek_body(void *userdata, curl_off_t offset, int origin)
{
    struct exchange *x = userdata;
    if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->req->body->length)
        return CURL_SEEKFUNC_CANTSEEK;
    if ((uint64_t)offset < x->sent)
        progress_take_back(x, x->sent - (uint64_t)offset);
    x->sent = (uint64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static void headers_clear(struct aws_response *resp)
{
    for (size_t i = 0; i < resp->header_count; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    resp->headers = NULL;
    resp->header_count = 0;
}

static size_t on_header(char *line, size_t size, size_t nitems, void *userdata)
{
    struct exchange *x = userdata;
    size_t len = size * nitems;
    /* A new status line starts a new response (after 100 Continue or a redirect). */
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        headers_clear(x->resp);
        return len;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    struct s3_kv *grown =
        realloc(x->resp->headers, (x->resp->header_count + 1) * sizeof(*x->resp->headers));
    if (!grown)
        return 0;
    x->resp->headers = grown;
    char *name = strndup(line, name_len), *value = strndup(v, (size_t)(end - v));
    if (!name || !value) {
        free(name);
        free(value);
        return 0;
    }
    for (char *p = name; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
    grown[x->resp->header_count++] = (struct s3_kv){name, value};
    return len;
}

static int buffer_append(struct aws_response *resp, const char *data, size_t len, size_t max)
{
    if (resp->body_len + len > max)
        return -1;
    char *p = realloc(resp->body, resp->body_len + len + 1);
    if (!p)
        return -1;
    memcpy(p + resp->body_len, data, len);
    resp->body = p;
    resp->body_len += len;
    p[resp->body_len] = '\0';
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nitems, void *userdata)
{
    struct exchange *x = userdata;
    size_t len = size * nitems;
    long status = 0;
    curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
    bool success = status >= 200 && status < 300;
    if (success && x->req->sink) {
        if (x->req->sink(x->req->sink_ctx, x->received, data, len) != 0) {
            x->sink_failed = true;
            return 0;
        }
    } else {
        size_t max = success ? x->max_body : S3_ERROR_BODY_MAX;
        if (buffer_append(x->resp, data, len, max) != 0) {
            x->too_large = success;
            return 0;
        }
    }
    x->received += len;
    return len;
}

/* libcurl's verbose output, without the signature and session token. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *userdata)
{
    (void)h, (void)userdata;
    if (type != CURLINFO_TEXT && type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
        return 0;
    const char *prefix = type == CURLINFO_HEADER_OUT  ? "> "
                         : type == CURLINFO_HEADER_IN ? "< "
                                                      : "* ";
    const char *p = data, *end = data + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (strncasecmp(p, "authorization:", 14) == 0 ||
            strncasecmp(p, "x-amz-security-token:", 21) == 0) {
            const char *colon = memchr(p, ':', n);
            fprintf(stderr, "s3client: %s%.*s: ***\n", prefix, (int)(colon - p), p);
        } else if (n) {
            fprintf(stderr, "s3client: %s%.*s\n", prefix, (int)n, p);
        }
        p = nl ? nl + 1 : end;
    }
    return 0;
}

struct signed_headers {
    struct aws_header list[MAX_HEADERS + 8];
    size_t count;
    char amz_date[17];
    char authorization_line[2048 + 64];
};

static int sign_request(struct s3client *c, const struct http_request *req,
                        const char *payload_hash, struct signed_headers *sh,
                        struct curl_slist **out, struct s3_error *err)
{
    struct aws_credentials creds;
    if (c->credentials(c->credentials_ctx, &creds, err) != 0)
        return -1;
    sigv4_format_date(time(NULL) + atomic_load(&c->clock_offset), sh->amz_date);

    sh->count = 0;
    sh->list[sh->count++] = (struct aws_header){"host", req->host};
    sh->list[sh->count++] = (struct aws_header){"x-amz-date", sh->amz_date};
    if (req->s3_signing)
        sh->list[sh->count++] = (struct aws_header){"x-amz-content-sha256", payload_hash};
    if (creds.session_token[0])
        sh->list[sh->count++] = (struct aws_header){"x-amz-security-token", creds.session_token};
    if (req->header_count > MAX_HEADERS) {
        s3_error_set(err, 0, "InvalidArgument", false, "%s: too many headers", req->what);
        return -1;
    }
    for (size_t i = 0; i < req->header_count; i++)
        sh->list[sh->count++] = req->headers[i];

    struct sigv4_request sreq = {req->method, req->path, req->query,
                                 sh->list,    sh->count, payload_hash};
    struct sigv4_scope scope = {c->region, req->service, sh->amz_date, !req->s3_signing,
                                !req->s3_signing};
    struct sigv4_signature sig = {0};
    if (sigv4_sign(&sreq, &scope, &creds, &sig, err) != 0)
        return -1;

    struct curl_slist *list = NULL;
    char line[8192];
    for (size_t i = 0; i < sh->count; i++) {
        snprintf(line, sizeof(line), "%s: %s", sh->list[i].name, sh->list[i].value);
        list = curl_slist_append(list, line);
    }
    snprintf(line, sizeof(line), "Authorization: %s", sig.authorization);
    list = curl_slist_append(list, line);
    list = curl_slist_append(list, "Expect:"); /* no 100-continue round trip */
    if (!req->body)
        list = curl_slist_append(list, "Content-Type:"); /* curl's POST default is unsigned */
    sigv4_signature_clear(&sig);
    explicit_bzero(&creds, sizeof(creds));
    if (!list) {
        s3_error_set(err, 0, "OutOfMemory", false, "%s: out of memory", req->what);
        return -1;
    }
    *out = list;
    return 0;
}

static void set_method(CURL *h, const struct http_request *req)
{
    bool has_body = req->body != NULL;
    if (req->head) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(req->method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(has_body ? req->body->length : 0));
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(has_body ? req->body->length : 0));
        if (!has_body)
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
    } else if (strcmp(req->method, "GET") == 0) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
    }
}

static void configure(struct s3client *c, struct exchange *x, const char *url,
                      struct curl_slist *headers)
{
    CURL *h = x->curl;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* keys may hold "./" and "../" */
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, c->user_agent);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->low_speed_seconds);
    curl_easy_setopt(h, CURLOPT_MAX_SEND_SPEED_LARGE, (curl_off_t)c->max_send_speed);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (c->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
    if (x->req->body) {
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_body);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_body);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
    }
    if (c->verbose) {
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
        curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    }
    set_method(h, x->req);
}

/* A transport failure: did the request possibly reach the server? */
static void error_from_curl(const struct http_request *req, CURLcode rc, const char *detail,
                            const struct exchange *x, struct s3_error *err, bool *maybe_sent)
{
    const char *code = "ConnectionFailed", *hint = "";
    bool retry = true;
    *maybe_sent = true;
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        hint = " (check the endpoint's host name and DNS)";
        *maybe_sent = false;
        break;
    case CURLE_COULDNT_CONNECT:
        hint = " (is the endpoint right and the server up?)";
        *maybe_sent = false;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        code = "Timeout";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ISSUER_ERROR:
        code = "TLSError";
        hint = " (the server's certificate is not trusted: set [s3] ca_file to its CA bundle)";
        retry = false;
        break;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_WRITE_ERROR:
    case CURLE_READ_ERROR:
        code = "LocalIOError";
        retry = false;
        break;
    case CURLE_OUT_OF_MEMORY:
        code = "OutOfMemory";
        retry = false;
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        code = "InvalidArgument";
        retry = false;
        break;
    default:
        break;
    }
    if (x->too_large) {
        s3_error_set(err, 0, "EntityTooLarge", false, "%s: the response is larger than %zu bytes",
                     req->what, x->max_body);
    } else if (x->sink_failed) {
        s3_error_set(err, 0, "LocalIOError", false, "%s: writing the data locally failed",
                     req->what);
    } else if (x->read_errno) {
        s3_error_set(err, 0, "LocalIOError", false, "%s: reading the local data failed: %s",
                     req->what, strerror(x->read_errno));
    } else {
        s3_error_set(err, 0, code, retry, "%s: %s%s", req->what,
                     detail[0] ? detail : curl_easy_strerror(rc), hint);
    }
}

static void learn_clock_offset(struct s3client *c, const struct aws_response *resp)
{
    const char *date = aws_response_header(resp, "date");
    time_t server = date ? curl_getdate(date, NULL) : (time_t)-1;
    if (server != (time_t)-1)
        atomic_store(&c->clock_offset, (long)(server - time(NULL)));
}

/* Returns 0 on a 2xx answer; -1 with err filled otherwise. *retry says whether to try again. */
static int attempt(struct s3client *c, const struct http_request *req, const char *payload_hash,
                   struct aws_response *resp, struct s3_error *err, bool *retry)
{
    *retry = false;
    CURL *h = handle_get(c);
    if (!h) {
        s3_error_set(err, 0, "OutOfMemory", false, "%s: cannot create an HTTP handle", req->what);
        return -1;
    }
    struct signed_headers sh;
    struct curl_slist *headers = NULL;
    if (sign_request(c, req, payload_hash, &sh, &headers, err) != 0) {
        handle_put(c, h);
        return -1;
    }
    struct strbuf url = {0};
    strbuf_printf(&url, "%s://%s%s%s%s", req->scheme, req->host, req->path,
                  req->query && *req->query ? "?" : "", req->query ? req->query : "");
    struct exchange x = {.req = req,
                         .resp = resp,
                         .curl = h,
                         .max_body = req->max_body ? req->max_body : BODY_MAX_DEF};
    char detail[CURL_ERROR_SIZE] = "";
    configure(c, &x, url.data, headers);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
    CURLcode rc = url.failed ? CURLE_OUT_OF_MEMORY : curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    curl_slist_free_all(headers);
    strbuf_free(&url);
    handle_put(c, h);

    if (rc != CURLE_OK || resp->status < 200 || resp->status >= 300)
        progress_take_back(&x, x.sent);
    if (rc != CURLE_OK) {
        bool maybe_sent;
        error_from_curl(req, rc, detail, &x, err, &maybe_sent);
        *retry = err && err->retryable && (req->idempotent || !maybe_sent);
        if (!err) /* caller does not want details; still decide on retries */
            *retry = req->idempotent && rc != CURLE_ABORTED_BY_CALLBACK;
        return -1;
    }
    if (resp->status >= 200 && resp->status < 300)
        return 0;

    struct s3_error local;
    struct s3_error *e = err ? err : &local;
    s3_error_from_response(resp, req->what, e);
    if (strcmp(e->code, "RequestTimeTooSkewed") == 0 || strcmp(e->code, "RequestExpired") == 0) {
        learn_clock_offset(c, resp);
        e->retryable = true;
    }
    /* A throttled or unavailable answer means the server did not act on the request. */
    bool not_acted = resp->status == 503 || resp->status == 429;
    *retry = e->retryable && (req->idempotent || not_acted);
    return -1;
}

static void response_reset(struct aws_response *resp)
{
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
    resp->status = 0;
    headers_clear(resp);
}

/* Full jitter: a random wait between 0 and min(cap, base * 2^attempt). */
static void backoff_sleep(const struct s3client *c, unsigned attempt_no)
{
    uint64_t ceiling = (uint64_t)c->retry_base_ms << (attempt_no < 20 ? attempt_no : 20);
    if (ceiling > c->retry_max_ms)
        ceiling = c->retry_max_ms;
    uint64_t ms = arc4random_uniform((uint32_t)ceiling + 1);
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int http_perform(struct s3client *c, const struct http_request *req, struct aws_response *resp,
                 struct s3_error *err)
{
    char hash[65];
    const char *payload_hash = req->payload_hash;
    if (!payload_hash && !req->body) {
        payload_hash = S3_EMPTY_SHA256;
    } else if (!payload_hash) {
        if (s3_body_digests(req->body, hash, NULL, err) != 0)
            return -1;
        payload_hash = hash;
    }
    memset(resp, 0, sizeof(*resp));
    for (unsigned n = 0;; n++) {
        bool retry;
        s3_error_clear(err);
        if (attempt(c, req, payload_hash, resp, err, &retry) == 0)
            return 0;
        if (!retry || n + 1 >= c->max_attempts)
            return -1;
        __atomic_add_fetch(&c->retries, 1, __ATOMIC_RELAXED);
        response_reset(resp);
        backoff_sleep(c, n);
    }
}

/* ---- digests ---- */

void s3_md5_base64(const void *data, size_t len, char out[25])
{
    unsigned char md[16];
    EVP_Digest(data, len, md, NULL, EVP_md5(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, 16);
}

int s3_body_digests(const struct s3_body *body, char sha256_hex[65], char md5_b64[25],
                    struct s3_error *err)
{
    EVP_MD_CTX *sha = EVP_MD_CTX_new(), *md5 = md5_b64 ? EVP_MD_CTX_new() : NULL;
    int rc = -1;
    char *buf = NULL;
    if (!sha || (md5_b64 && !md5) || !EVP_DigestInit_ex(sha, EVP_sha256(), NULL) ||
        (md5 && !EVP_DigestInit_ex(md5, EVP_md5(), NULL))) {
        s3_error_set(err, 0, "OutOfMemory", false, "cannot create digest contexts");
        goto out;
    }
    if (body->fd < 0) {
        EVP_DigestUpdate(sha, body->data, body->length);
        if (md5)
            EVP_DigestUpdate(md5, body->data, body->length);
    } else {
        enum { CHUNK = 256 * 1024 };
        buf = malloc(CHUNK);
        for (uint64_t done = 0; buf && done < body->length;) {
            size_t want = body->length - done < CHUNK ? (size_t)(body->length - done) : CHUNK;
            ssize_t got = pread(body->fd, buf, want, body->offset + (off_t)done);
            if (got <= 0) {
                s3_error_set(err, 0, "LocalIOError", false, "reading the data to upload failed: %s",
                             got < 0 ? strerror(errno) : "the file is shorter than expected");
                goto out;
            }
            EVP_DigestUpdate(sha, buf, (size_t)got);
            if (md5)
                EVP_DigestUpdate(md5, buf, (size_t)got);
            done += (uint64_t)got;
        }
        if (!buf) {
            s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
            goto out;
        }
    }
    unsigned char md[32];
    EVP_DigestFinal_ex(sha, md, NULL);
    hex_encode(md, 32, sha256_hex);
    if (md5) {
        EVP_DigestFinal_ex(md5, md, NULL);
        EVP_EncodeBlock((unsigned char *)md5_b64, md, 16);
    }
    rc = 0;
out:
    free(buf);
    EVP_MD_CTX_free(sha);
    EVP_MD_CTX_free(md5);
    return rc;
}
