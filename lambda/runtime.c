/* The Lambda custom runtime: the Runtime API loop (next -> handle -> response or error) over one
 * libcurl handle, kept alive between calls. The wire format is in the AWS documentation (the
 * project's notes: aws-wire-formats.md); docs/s3imgfs-lambda.md tells users what they see. */
#include "frontend.h"
#include "lambda.h"
#include "log.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define API_VERSION "2018-06-01"
/* The largest event read: synchronous invocations carry at most 6 MiB, asynchronous ones
 * 256 KiB; anything longer is answered with an error without being parsed. */
#define MAX_EVENT (6u << 20)
/* The largest response Lambda takes (6 MB); a longer one is replaced by an error. */
#define MAX_RESPONSE 6000000u
/* errorMessage of a retryable failure: the per-record summary is cut to this. */
#define MAX_ERROR_MESSAGE 8192
/* Posting an answer: the Runtime API is local, but never hang on it forever. */
#define POST_TIMEOUT_S    30L
#define CONNECT_TIMEOUT_S 10L
/* Longest wait for queued notices before answering. */
#define FLUSH_MS_MAX 10000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------------ */
/* Shared with serve.c and main.c                                                               */

void lambda_frontend_write_emf(const struct lambda_frontend *f)
{
    if (!f || !f->metrics)
        return;
    char *lines =
        metrics_emf(f->metrics, "s3imgfs", f->service ? f->service : "", now_ms(), NULL, 0);
    for (char *line = lines, *end; line && *line; line = end + 1) {
        end = strchr(line, '\n');
        if (!end) {
            log_line_raw(line);
            break;
        }
        *end = '\0';
        log_line_raw(line);
    }
    free(lines);
}

static long json_count(json_t *root, const char *name)
{
    json_t *v = json_object_get(root, name);
    return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

void lambda_response_counts(const char *json, struct lambda_counts *out)
{
    memset(out, 0, sizeof(*out));
    json_t *root = json ? json_loads(json, 0, NULL) : NULL;
    if (!root)
        return;
    out->done = json_count(root, "done");
    out->failed = json_count(root, "failed");
    out->skipped = json_count(root, "skipped");
    json_t *records = json_object_get(root, "records"), *r;
    size_t i;
    json_array_foreach(records, i, r)
    {
        const char *status = json_string_value(json_object_get(r, "status"));
        if (status && strcmp(status, "not started") == 0)
            out->not_started++;
    }
    json_decref(root);
}

/* ------------------------------------------------------------------------------------------ */
/* The HTTP side                                                                                */

struct body {
    char *data;
    size_t len, cap;
    size_t limit;
    bool overflow; /* more than `limit` bytes came: the rest was dropped */
};

/* What the last answer said. */
struct invocation {
    char request_id[256];
    char trace_id[1024];
    char function_arn[512];
    int64_t deadline_ms; /* 0 = not given */
    bool has_trace;
};

struct runtime {
    CURL *curl;
    char base[512]; /* http://API/2018-06-01 */
    char curl_error[CURL_ERROR_SIZE];
    struct body body;
    struct invocation inv;
    const struct lambda_frontend *f;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct body *b = ctx;
    size_t n = size * nmemb;
    if (b->overflow || b->len + n > b->limit) {
        b->overflow = true;
        return n; /* read and dropped */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return 0; /* curl fails the transfer: CURLE_WRITE_ERROR */
        b->data = p, b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

/* Copies a header's value (trimmed) into out when `line` is "name: value". */
static bool header_value(const char *line, size_t len, const char *name, char *out, size_t out_len)
{
    size_t nl = strlen(name);
    if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0)
        return false;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t n = (size_t)(end - v);
    if (n >= out_len)
        n = out_len - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return true;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct invocation *inv = ctx;
    size_t n = size * nmemb;
    char deadline[32];
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        memset(inv, 0, sizeof(*inv)); /* a new answer (after a redirect or 100 Continue) */
    } else if (header_value(data, n, "Lambda-Runtime-Aws-Request-Id", inv->request_id,
                            sizeof(inv->request_id))) {
    } else if (header_value(data, n, "Lambda-Runtime-Trace-Id", inv->trace_id,
                            sizeof(inv->trace_id))) {
        inv->has_trace = inv->trace_id[0] != '\0';
    } else if (header_value(data, n, "Lambda-Runtime-Invoked-Function-Arn", inv->function_arn,
                            sizeof(inv->function_arn))) {
    } else if (header_value(data, n, "Lambda-Runtime-Deadline-Ms", deadline, sizeof(deadline))) {
        char *end;
        errno = 0;
        long long v = strtoll(deadline, &end, 10);
        inv->deadline_ms = (errno == 0 && end != deadline && *end == '\0' && v > 0) ? v : 0;
    }
    return n;
}

static const char *trace_for_log(const struct invocation *inv)
{
    return inv->has_trace ? inv->trace_id : "none";
}

/* GET /runtime/invocation/next: 0 with the event in rt->body and its headers in rt->inv, or -1
 * (logged) when the loop must end. */
static int next_invocation(struct runtime *rt)
{
    char url[600];
    snprintf(url, sizeof(url), "%s/runtime/invocation/next", rt->base);
    rt->body.len = 0, rt->body.overflow = false, rt->body.limit = MAX_EVENT;
    if (rt->body.data)
        rt->body.data[0] = '\0';
    memset(&rt->inv, 0, sizeof(rt->inv));
    curl_easy_setopt(rt->curl, CURLOPT_URL, url);
    curl_easy_setopt(rt->curl, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(rt->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(rt->curl, CURLOPT_TIMEOUT, 0L); /* waits as long as there is no event */
    curl_easy_setopt(rt->curl, CURLOPT_HEADERDATA, &rt->inv);
    rt->curl_error[0] = '\0';
    CURLcode rc = curl_easy_perform(rt->curl);
    if (rc != CURLE_OK) {
        log_error("cannot get the next invocation from the Runtime API at %s: %s%s", rt->base,
                  rt->curl_error[0] ? rt->curl_error : curl_easy_strerror(rc),
                  rc == CURLE_COULDNT_CONNECT ? " (is AWS_LAMBDA_RUNTIME_API right?)" : "");
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(rt->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        log_error("the Runtime API answered %ld to invocation/next%s: exiting", status,
                  status == 500 ? " (the execution environment is shutting down)" : "");
        return -1;
    }
    if (!rt->inv.request_id[0]) {
        log_error("the Runtime API sent an invocation without Lambda-Runtime-Aws-Request-Id: "
                  "cannot answer it, exiting");
        return -1;
    }
    return 0;
}

enum post_result { POST_OK, POST_REFUSED, POST_FATAL };

/* POSTs a JSON body to base + path. POST_FATAL (logged) when the loop must end: a 500, or no
 * answer at all; POST_REFUSED (logged) on another status than 202 (a 400 for an unknown
 * request id, a 413 for a body too large). */
static enum post_result post_json(struct runtime *rt, const char *path, const char *body,
                                  size_t len, const char *error_type)
{
    char url[1024];
    snprintf(url, sizeof(url), "%s%s", rt->base, path);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* the Runtime API answers at once: no 100-continue round trip */
    headers = curl_slist_append(headers, "Expect:");
    char type_header[300];
    if (error_type) {
        snprintf(type_header, sizeof(type_header), "Lambda-Runtime-Function-Error-Type: %s",
                 error_type);
        headers = curl_slist_append(headers, type_header);
    }
    if (!headers) {
        log_error("out of memory posting to %s", path);
        return POST_FATAL;
    }
    struct body answer = {.limit = 4096};
    struct invocation ignored;
    curl_easy_setopt(rt->curl, CURLOPT_URL, url);
    curl_easy_setopt(rt->curl, CURLOPT_POST, 1L);
    curl_easy_setopt(rt->curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(rt->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(rt->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(rt->curl, CURLOPT_TIMEOUT, POST_TIMEOUT_S);
    curl_easy_setopt(rt->curl, CURLOPT_WRITEDATA, &answer);
    curl_easy_setopt(rt->curl, CURLOPT_HEADERDATA, &ignored);
    rt->curl_error[0] = '\0';
    CURLcode rc = curl_easy_perform(rt->curl);
    long status = 0;
    curl_easy_getinfo(rt->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(rt->curl, CURLOPT_WRITEDATA, &rt->body);
    curl_easy_setopt(rt->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(rt->curl, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    enum post_result result = POST_OK;
    if (rc != CURLE_OK) {
        log_key_error(NULL, rt->inv.request_id, "cannot post to the Runtime API (%s): %s: exiting",
                      path, rt->curl_error[0] ? rt->curl_error : curl_easy_strerror(rc));
        result = POST_FATAL;
    } else if (status == 500) {
        log_key_error(NULL, rt->inv.request_id,
                      "the Runtime API answered 500 to %s: exiting as it asks", path);
        result = POST_FATAL;
    } else if (status < 200 || status > 299) {
        log_key_error(NULL, rt->inv.request_id, "the Runtime API refused %s with %ld: %.200s", path,
                      status, answer.data ? answer.data : "");
        result = POST_REFUSED;
    }
    free(answer.data);
    return result;
}

/* {"errorMessage": message, "errorType": type, "stackTrace": []}; malloc'd, NULL on ENOMEM. */
static char *error_body(const char *type, const char *message)
{
    json_t *o =
        json_pack("{s:s, s:s, s:[]}", "errorMessage", message, "errorType", type, "stackTrace");
    if (!o) /* message was not valid UTF-8: it came from our own code, so say less */
        o = json_pack("{s:s, s:s, s:[]}", "errorMessage", "(message not valid UTF-8)", "errorType",
                      type, "stackTrace");
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return s;
}

static enum post_result post_error(struct runtime *rt, const char *path, const char *type,
                                   const char *message)
{
    char *body = error_body(type, message);
    if (!body) {
        log_error("out of memory building an error for the Runtime API");
        return POST_FATAL;
    }
    enum post_result r = post_json(rt, path, body, strlen(body), type);
    free(body);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* The summary of a failed event                                                                */

struct text {
    char buf[MAX_ERROR_MESSAGE];
    size_t len;
    bool full;
};

static void text_add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_add(struct text *t, const char *fmt, ...)
{
    if (t->full)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, sizeof(t->buf) - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(t->buf) - t->len) {
        t->full = true;
        t->buf[t->len] = '\0'; /* drop the part that did not fit */
        return;
    }
    t->len += (size_t)n;
}

/* Cuts a string at a UTF-8 character boundary at most `max` bytes in. */
static int utf8_prefix(const char *s, int max)
{
    int n = (int)strlen(s);
    if (n <= max)
        return n;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* "event left for a retry (1 done, 1 failed, 0 skipped, 2 not started): a.jpg: failed: why;
 * b.jpg: not started; ... and 3 more records" — what Lambda's retries and the DLQ record. */
static void retry_summary(const char *response, struct text *t)
{
    struct lambda_counts c;
    lambda_response_counts(response, &c);
    text_add(t,
             "a retry of the event could help (%ld done, %ld failed, %ld skipped, %ld not "
             "started)",
             c.done, c.failed, c.skipped, c.not_started);
    json_t *root = json_loads(response, 0, NULL);
    json_t *records = json_object_get(root, "records"), *r;
    size_t i, listed = 0;
    /* leave room for the closing "... and N more records" */
    const size_t room = sizeof(t->buf) - 64;
    json_array_foreach(records, i, r)
    {
        const char *status = json_string_value(json_object_get(r, "status"));
        if (status && (strcmp(status, "done") == 0 || strcmp(status, "skipped") == 0))
            continue; /* the failures and what is left are what matter */
        const char *key = json_string_value(json_object_get(r, "key"));
        const char *reason = json_string_value(json_object_get(r, "reason"));
        if (!status)
            status = "?";
        if (!reason)
            reason = "";
        /* the handler's reasons may start with the status ("not started: too close ...") */
        size_t sl = strlen(status);
        if (strncmp(reason, status, sl) == 0 && reason[sl] == ':')
            reason += sl + 1 + (reason[sl + 1] == ' ');
        char one[1200];
        snprintf(one, sizeof(one), "%s %.*s: %s%s%.*s", listed ? ";" : ":",
                 utf8_prefix(key ? key : "?", 512), key ? key : "?", status, *reason ? ": " : "",
                 utf8_prefix(reason, 512), reason);
        if (t->len + strlen(one) > room)
            break;
        text_add(t, "%s", one);
        listed++;
    }
    size_t unlisted = 0;
    json_array_foreach(records, i, r)
    {
        const char *status = json_string_value(json_object_get(r, "status"));
        if (!(status && (strcmp(status, "done") == 0 || strcmp(status, "skipped") == 0)))
            unlisted++;
    }
    if (unlisted > listed)
        text_add(t, "; ... and %zu more record%s", unlisted - listed,
                 unlisted - listed == 1 ? "" : "s");
    json_decref(root);
}

/* ------------------------------------------------------------------------------------------ */
/* One invocation                                                                               */

static void set_trace_env(const struct invocation *inv)
{
    /* Only this thread writes the environment, between invocations. The notifier's thread
     * may still read it then (libcurl looks up proxy variables) if a notice outlived the last
     * invocation's flush: setenv is not formally safe against that, a risk every runtime that
     * follows the Lambda convention takes (the handler reads the variable on this thread). */
    if (inv->has_trace)
        setenv("_X_AMZN_TRACE_ID", inv->trace_id, 1);
    else
        unsetenv("_X_AMZN_TRACE_ID");
}

/* Handles the event in rt->body and answers. POST_FATAL ends the loop. */
static enum post_result invoke(struct runtime *rt, struct lambda_handler *h)
{
    struct invocation *inv = &rt->inv;
    char path[400];
    int64_t start = now_ms();
    set_trace_env(inv);
    log_key_info(NULL, inv->request_id,
                 "invocation: %zu bytes, trace %s, deadline in %" PRId64 " ms, function %s",
                 rt->body.len, trace_for_log(inv),
                 inv->deadline_ms ? inv->deadline_ms - start : (int64_t)-1,
                 inv->function_arn[0] ? inv->function_arn : "?");

    snprintf(path, sizeof(path), "/runtime/invocation/%s/error", inv->request_id);
    if (rt->body.overflow) {
        char msg[200];
        snprintf(msg, sizeof(msg),
                 "the event is larger than %u bytes: not an S3 event notification (it will not "
                 "parse on a retry either)",
                 MAX_EVENT);
        log_key_error(NULL, inv->request_id, "%s", msg);
        return post_error(rt, path, "S3imgfs.InvalidEvent", msg);
    }

    bool retry = false;
    struct s3_error err = {0};
    char *response = lambda_handle_event(h, rt->body.data ? rt->body.data : "", rt->body.len,
                                         inv->deadline_ms, &retry, &err);
    lambda_frontend_write_emf(rt->f);
    double took = (double)(now_ms() - start);

    enum post_result result;
    if (!response && retry) { /* out of memory, say: a retry could help */
        log_key_error(NULL, inv->request_id, "invocation failed in %.0f ms: %s", took, err.message);
        return post_error(rt, path, "S3imgfs.RetryableFailure", err.message);
    }
    if (!response) {
        char msg[700];
        snprintf(msg, sizeof(msg), "%s (it will not parse on a retry either)",
                 err.message[0] ? err.message : "not an S3 event notification");
        log_key_error(NULL, inv->request_id, "invocation failed in %.0f ms: %s", took, msg);
        return post_error(rt, path, "S3imgfs.InvalidEvent", msg);
    }
    struct lambda_counts c;
    lambda_response_counts(response, &c);
    size_t len = strlen(response);
    if (retry) {
        struct text t = {.len = 0};
        retry_summary(response, &t);
        log_key_warn(NULL, inv->request_id,
                     "invocation left for a retry in %.0f ms: %ld done, %ld failed, %ld "
                     "skipped, %ld not started",
                     took, c.done, c.failed, c.skipped, c.not_started);
        result = post_error(rt, path, "S3imgfs.RetryableFailure", t.buf);
    } else if (len > MAX_RESPONSE) {
        char msg[300];
        snprintf(msg, sizeof(msg),
                 "the response (%zu bytes) is larger than Lambda accepts: %ld done, %ld failed, "
                 "%ld skipped (the log lists each record)",
                 len, c.done, c.failed, c.skipped);
        log_key_warn(NULL, inv->request_id, "%s", msg);
        result = post_error(rt, path, "S3imgfs.ResponseTooLarge", msg);
    } else {
        log_key_info(NULL, inv->request_id,
                     "invocation done in %.0f ms: %ld done, %ld failed, %ld skipped", took, c.done,
                     c.failed, c.skipped);
        snprintf(path, sizeof(path), "/runtime/invocation/%s/response", inv->request_id);
        result = post_json(rt, path, response, len, NULL);
    }
    free(response);
    return result;
}

/* ------------------------------------------------------------------------------------------ */
/* The loop                                                                                     */

static CURL *new_handle(char *error_buf)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error_buf);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    /* the Runtime API is a local endpoint: a proxy set for the function's own calls must not
     * come in between */
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    return c;
}

int lambda_runtime_loop_with(struct lambda_handler *h, const char *api,
                             const struct lambda_frontend *f)
{
    if (!api || !*api) {
        log_error("AWS_LAMBDA_RUNTIME_API is not set: not running in Lambda");
        return 1;
    }
    /* curl_global_init already ran: the handler's S3 client did it before any thread */
    struct runtime rt = {.f = f};
    snprintf(rt.base, sizeof(rt.base), "http://%s/" API_VERSION, api);
    if (!(rt.curl = new_handle(rt.curl_error))) {
        log_error("cannot make an HTTP client (out of memory)");
        return 1;
    }
    curl_easy_setopt(rt.curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(rt.curl, CURLOPT_WRITEDATA, &rt.body);
    curl_easy_setopt(rt.curl, CURLOPT_HEADERFUNCTION, on_header);
    log_info("Lambda runtime ready: waiting for invocations from %s", api);
    while (next_invocation(&rt) == 0) {
        if (invoke(&rt, h) == POST_FATAL)
            break;
    }
    unsetenv("_X_AMZN_TRACE_ID");
    curl_easy_cleanup(rt.curl);
    free(rt.body.data);
    return 1;
}

int lambda_runtime_loop(struct lambda_handler *h, const char *api)
{
    return lambda_runtime_loop_with(h, api, NULL);
}

void lambda_runtime_init_error(const char *api, const char *type, const char *message)
{
    if (!api || !*api)
        return;
    /* may come before the S3 client exists, so before curl_global_init ran: no other thread
     * runs yet, so calling it here is safe */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct runtime rt = {0};
    snprintf(rt.base, sizeof(rt.base), "http://%s/" API_VERSION, api);
    snprintf(rt.inv.request_id, sizeof(rt.inv.request_id), "init");
    if ((rt.curl = new_handle(rt.curl_error))) {
        curl_easy_setopt(rt.curl, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(rt.curl, CURLOPT_HEADERFUNCTION, on_header);
        if (post_error(&rt, "/runtime/init/error", type ? type : "S3imgfs.InvalidConfig",
                       message ? message : "") == POST_OK)
            log_info("initialisation error reported to the Runtime API");
        curl_easy_cleanup(rt.curl);
    }
    curl_global_cleanup();
}
