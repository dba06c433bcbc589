/* The webhook sink: one HTTPS POST of the message's JSON per notice, signed with HMAC-SHA256
 * when a secret is configured (docs/webhook.md tells receivers how to check it). A handle per
 * call: notices are rare, and a fresh connection keeps no state between them. */
#include "notify.h"

#include <curl/curl.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS 10000L
#define TOTAL_TIMEOUT_MS   30000L
/* Bytes of the answer's body quoted in an error message. */
#define BODY_QUOTE 200

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

/* curl_global_init is not thread-safe on every libcurl: once, before the first handle (it
 * counts its calls, so s3client's own call is no harm). */
static void curl_init(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The start of the answer's body, kept for the error message. */
struct answer {
    char head[BODY_QUOTE];
    size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx)
{
    struct answer *a = ctx;
    size_t n = size * nmemb, room = sizeof(a->head) - a->len;
    memcpy(a->head + a->len, data, n < room ? n : room);
    a->len += n < room ? n : room;
    return n; /* the rest is read and dropped */
}

/* url for messages: without user info, query and fragment (they may carry tokens). */
static void url_for_message(const char *url, char *out, size_t out_len)
{
    const char *scheme_end = strstr(url, "://");
    const char *host = scheme_end ? scheme_end + 3 : url;
    size_t authority = strcspn(host, "/?#");
    const char *at = memchr(host, '@', authority);
    size_t scheme_len = (size_t)(host - url);
    const char *rest = at ? at + 1 : host;
    snprintf(out, out_len, "%.*s%.*s", (int)scheme_len, url, (int)strcspn(rest, "?#"), rest);
}

/* The quoted body when it is printable ASCII text (": <text>", whitespace runs folded into
 * one space), else "". out_len: at least BODY_QUOTE + 3. */
static void quote_body(const struct answer *a, char *out, size_t out_len)
{
    char text[BODY_QUOTE + 1];
    size_t o = 0;
    bool space = false;
    for (size_t i = 0; i < a->len; i++) {
        unsigned char c = (unsigned char)a->head[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
            space = o > 0;
            continue;
        }
        if (c < 0x20 || c >= 0x7f) {
            out[0] = '\0';
            return;
        }
        if (space)
            text[o++] = ' ';
        space = false;
        text[o++] = (char)c; /* o <= i + 1: one input byte at least per output byte */
    }
    text[o] = '\0';
    snprintf(out, out_len, "%s%s", o ? ": " : "", text);
}

/* Header values come from the message; a line break would start another header. */
static void header_line(char *out, size_t out_len, const char *name, const char *value)
{
    int n = snprintf(out, out_len, "%s: ", name);
    size_t o = n > 0 ? (size_t)n : 0;
    for (const char *p = value ? value : ""; *p && o + 1 < out_len; p++)
        out[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
    out[o < out_len ? o : out_len - 1] = '\0';
}

static bool transport_retryable(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
        return false;
    default:
        return true;
    }
}

static const char *transport_hint(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
        return " (check the host name in [notify] webhook_url)";
    case CURLE_COULDNT_CONNECT:
        return " (is the receiver up, and [notify] webhook_url right?)";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
        return " (the receiver's certificate is not trusted: set [s3] ca_file to its CA "
               "bundle)";
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
        return " ([notify] webhook_url must be http:// or https://)";
    default:
        return "";
    }
}

/* The headers of one delivery (NULL on ENOMEM; *why says which step failed). */
static struct curl_slist *delivery_headers(const char *secret, const struct notify_message *m,
                                           const char *body, size_t body_len, const char **why)
{
    unsigned char id[16];
    char delivery[2 * sizeof(id) + 1];
    if (RAND_bytes(id, sizeof(id)) != 1) {
        *why = "no random bytes for the delivery ID";
        return NULL;
    }
    for (size_t i = 0; i < sizeof(id); i++)
        snprintf(delivery + 2 * i, 3, "%02x", id[i]);
    char h_event[192], h_status[96], h_delivery[64], h_signature[32 + NOTIFY_SIGNATURE_MAX] = "";
    header_line(h_event, sizeof(h_event), "X-S3imgfs-Event", m->event);
    header_line(h_status, sizeof(h_status), "X-S3imgfs-Status", m->status);
    snprintf(h_delivery, sizeof(h_delivery), "X-S3imgfs-Delivery: %s", delivery);
    if (secret && *secret) {
        char sig[NOTIFY_SIGNATURE_MAX];
        if (notify_webhook_signature(secret, (int64_t)time(NULL), body, body_len, sig,
                                     sizeof(sig)) != 0) {
            *why = "the signature could not be computed";
            return NULL;
        }
        snprintf(h_signature, sizeof(h_signature), "X-S3imgfs-Signature: %s", sig);
    }
    const char *lines[] = {"Content-Type: application/json",
                           "Expect:", /* no 100-continue round trip */
                           h_event,
                           h_status,
                           h_delivery,
                           h_signature[0] ? h_signature : NULL};
    struct curl_slist *headers = NULL, *l;
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        if (!lines[i])
            continue;
        if (!(l = curl_slist_append(headers, lines[i]))) {
            curl_slist_free_all(headers);
            *why = "out of memory";
            return NULL;
        }
        headers = l;
    }
    return headers;
}

/* A POST that verifies TLS, follows no redirect and speaks HTTP(S) only. */
static void set_post_options(CURL *h, const char *url, const char *ca_file,
                             struct curl_slist *headers, const char *body, size_t body_len,
                             struct answer *answer, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85.0 */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file && *ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, TOTAL_TIMEOUT_MS);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "s3imgfs/" S3IMGFS_VERSION);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POST, 1L);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, answer);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
}

/* The outcome of a POST as 0 (a 2xx answer) or -1 with an error a user can act on. */
static int judge_answer(CURLcode rc, long status, const struct answer *answer, const char *errbuf,
                        const char *shown, struct s3_error *err)
{
    if (rc != CURLE_OK) {
        s3_error_set(err, 0, "WebhookUnreachable", transport_retryable(rc), "webhook %s: %s%s",
                     shown, errbuf[0] ? errbuf : curl_easy_strerror(rc), transport_hint(rc));
        return -1;
    }
    if (status >= 200 && status <= 299)
        return 0;
    char quoted[BODY_QUOTE + 4];
    quote_body(answer, quoted, sizeof(quoted));
    bool retry = status >= 500 || status == 429 || status == 408;
    s3_error_set(err, status, "WebhookRejected", retry, "webhook %s answered HTTP %ld%s%s", shown,
                 status, quoted,
                 status >= 300 && status < 400 ? " (redirects are not followed: set [notify] "
                                                 "webhook_url to the final URL)"
                                               : "");
    return -1;
}

int notify_webhook_post(const char *url, const char *secret, const char *ca_file,
                        const struct notify_message *m, struct s3_error *err)
{
    struct s3_error local;
    if (!err)
        err = &local;
    s3_error_clear(err);
    if (!url || !*url) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "webhook: no URL (set [notify] webhook_url)");
        return -1;
    }
    char shown[512];
    url_for_message(url, shown, sizeof(shown));
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK) {
        s3_error_set(err, 0, "WebhookUnreachable", false, "webhook %s: libcurl: %s", shown,
                     curl_easy_strerror(curl_init_rc));
        return -1;
    }
    const char *body = m->json ? m->json : "";
    size_t body_len = strlen(body);
    const char *why = "out of memory";
    struct curl_slist *headers = delivery_headers(secret, m, body, body_len, &why);
    CURL *h = headers ? curl_easy_init() : NULL;
    if (!h) {
        curl_slist_free_all(headers);
        s3_error_set(err, 0,
                     strcmp(why, "out of memory") == 0 ? "OutOfMemory" : "WebhookUnreachable", true,
                     "webhook %s: %s", shown, why);
        return -1;
    }
    struct answer answer = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    set_post_options(h, url, ca_file, headers, body, body_len, &answer, errbuf);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return judge_answer(rc, status, &answer, errbuf, shown, err);
}
