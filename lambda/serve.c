/* s3imgfs-lambda --serve: the handler behind an HTTP endpoint for the S3 event webhooks of
 * radosgw (topic push-endpoint) and MinIO (notify_webhook), with libmicrohttpd.
 *
 *   POST /  {"Records":[...]}  -> 200 + the handler's JSON (every record done, skipped or failed
 *                                 for good), 500 + the JSON when a retry could help (radosgw
 *                                 retries a persistent topic's events on a non-2xx answer),
 *                                 400 + {"error":..} when the body is not an S3 event
 *   POST /2015-03-31/functions/NAME/invocations  the Lambda Invoke API, for the gateway's
 *                                 [resize] lambda_function + lambda_endpoint: handled, then 202
 *                                 (X-Amz-Invocation-Type: Event) or 200 + the JSON; an event
 *                                 worth retrying is 200 with X-Amz-Function-Error: Unhandled
 *   other methods: 405, other paths: 404, bodies over 1 MiB: 413
 *
 * One thread per connection (senders open few); at most SERVE_MAX_BUSY events are handled at
 * once (each decodes an image: memory, not threads, is the limit), others wait their turn.
 * The handler is thread-safe, so no lock is held around it beyond that gate.
 */
#include "frontend.h"
#include "lambda.h"
#include "log.h"
#include "resize.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY         (1u << 20)
#define SERVE_MAX_BUSY   4 /* at most; fewer with fewer CPUs */
#define CONNECTION_LIMIT 64
#define IDLE_TIMEOUT_S   60
#define HTTP_TOO_LARGE   413 /* its MHD name changed between versions */

struct server {
    struct lambda_handler *h;
    const struct lambda_frontend *f;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned busy, max_busy;
    pthread_mutex_t emf_lock; /* metrics_emf: one thread at a time; guards last_emf_ms */
    int64_t last_emf_ms;
};

/* One request's upload. */
struct request {
    char *data;
    size_t len, cap;
    bool too_large;
    bool invoke; /* the Invoke API's path, not / */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void gate_enter(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    while (s->busy >= s->max_busy)
        pthread_cond_wait(&s->cond, &s->lock);
    s->busy++;
    pthread_mutex_unlock(&s->lock);
}

static void gate_leave(struct server *s)
{
    pthread_mutex_lock(&s->lock);
    s->busy--;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

/* Queues a copy of body with Content-Type application/json. */
static enum MHD_Result answer(struct MHD_Connection *c, unsigned status, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "POST");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* {"error": message} */
static enum MHD_Result answer_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result answer_error(struct MHD_Connection *c, unsigned status, const char *fmt, ...)
{
    char msg[700];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s}", "error", msg);
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    enum MHD_Result ret = answer(c, status, body ? body : "{\"error\":\"out of memory\"}");
    free(body);
    return ret;
}

static const char *peer(struct MHD_Connection *c, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, len, "?");
    if (!ci || !ci->client_addr)
        return out;
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)len);
    else if (sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)len);
    return out;
}

/* POST /2015-03-31/functions/NAME/invocations (the Invoke API's path; NAME is not checked:
 * this server is one function). */
static bool is_invoke_path(const char *url)
{
    static const char prefix[] = "/2015-03-31/functions/", suffix[] = "/invocations";
    size_t n = strlen(url), p = sizeof(prefix) - 1, q = sizeof(suffix) - 1;
    return n > p + q && strncmp(url, prefix, p) == 0 && strcmp(url + n - q, suffix) == 0 &&
           !memchr(url + p, '/', n - p - q);
}

/* The Invoke API's answers: Event -> 202 (the sender does not wait for a result), else 200
 * with the JSON, and X-Amz-Function-Error when the function failed. */
static enum MHD_Result answer_invoke(struct MHD_Connection *c, bool event, const char *body,
                                     bool failed)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        event ? 0 : strlen(body), event ? (void *)"" : (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (failed)
        MHD_add_response_header(r, "X-Amz-Function-Error", "Unhandled");
    enum MHD_Result ret = MHD_queue_response(c, event ? MHD_HTTP_ACCEPTED : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(struct server *s, struct MHD_Connection *c, struct request *rq)
{
    char from[64];
    peer(c, from, sizeof(from));
    if (rq->too_large) {
        log_warn("event from %s refused: the body is larger than %u bytes", from, MAX_BODY);
        return answer_error(c, HTTP_TOO_LARGE,
                            "the body is larger than %u bytes: not an S3 event notification",
                            MAX_BODY);
    }
    int64_t start = now_ms();
    bool retry = false;
    struct s3_error err = {0};
    gate_enter(s);
    char *response = lambda_handle_event(s->h, rq->data ? rq->data : "", rq->len, 0, &retry, &err);
    gate_leave(s);
    /* libvips keeps buffers per thread, and this connection's thread may end at any time */
    resize_thread_done();
    if (s->f && s->f->metrics) {
        pthread_mutex_lock(&s->emf_lock);
        int64_t now = now_ms();
        if (now - s->last_emf_ms >= (int64_t)s->f->emf_interval_ms) {
            lambda_frontend_write_emf(s->f);
            s->last_emf_ms = now;
        }
        pthread_mutex_unlock(&s->emf_lock);
    }
    double took = (double)(now_ms() - start);
    if (!response && retry) { /* out of memory, say: the sender should try again */
        log_error("event from %s failed (500) in %.0f ms: %s", from, took, err.message);
        return answer_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.message);
    }
    if (!response) {
        const char *why = err.message[0] ? err.message : "not an S3 event notification";
        log_warn("event from %s refused (400) in %.0f ms: %s", from, took, why);
        return answer_error(c, MHD_HTTP_BAD_REQUEST, "%s", why);
    }
    struct lambda_counts n;
    lambda_response_counts(response, &n);
    unsigned status = retry ? MHD_HTTP_INTERNAL_SERVER_ERROR : MHD_HTTP_OK;
    log_msg(retry ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
            "event from %s handled in %.0f ms (%u%s): %ld done, %ld failed, %ld skipped", from,
            took, status, retry ? ", a retry could help" : "", n.done, n.failed, n.skipped);
    enum MHD_Result ret;
    if (rq->invoke) {
        const char *type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Amz-Invocation-Type");
        ret = answer_invoke(c, type && strcmp(type, "Event") == 0, response, retry);
    } else {
        ret = answer(c, status, response);
    }
    free(response);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct server *s = cls;
    struct request *rq = *con_cls;
    if (!rq) {
        /* the headers only: refuse early what will not be handled */
        if (strcmp(method, MHD_HTTP_METHOD_POST) != 0)
            return answer_error(c, MHD_HTTP_METHOD_NOT_ALLOWED,
                                "%s is not allowed: POST an S3 event notification to /", method);
        bool invoke = is_invoke_path(url);
        if (strcmp(url, "/") != 0 && !invoke)
            return answer_error(c, MHD_HTTP_NOT_FOUND,
                                "no such path: POST S3 event notifications to / (or invoke "
                                "/2015-03-31/functions/NAME/invocations)");
        const char *length =
            MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (length && strtoull(length, NULL, 10) > MAX_BODY)
            return answer_error(c, HTTP_TOO_LARGE,
                                "the body is larger than %u bytes: not an S3 event notification",
                                MAX_BODY);
        if (!(rq = calloc(1, sizeof(*rq))))
            return MHD_NO;
        rq->invoke = invoke;
        *con_cls = rq;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (rq->too_large || rq->len + n > MAX_BODY) {
            rq->too_large = true; /* read on and drop, then answer 413 */
            return MHD_YES;
        }
        if (rq->len + n + 1 > rq->cap) {
            size_t cap = rq->cap ? rq->cap : 8192;
            while (cap < rq->len + n + 1)
                cap *= 2;
            char *p = realloc(rq->data, cap);
            if (!p)
                return MHD_NO;
            rq->data = p, rq->cap = cap;
        }
        memcpy(rq->data + rq->len, upload_data, n);
        rq->len += n;
        rq->data[rq->len] = '\0';
        return MHD_YES;
    }
    return handle(s, c, rq);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)cls, (void)c, (void)why;
    struct request *rq = *con_cls;
    if (rq) {
        free(rq->data);
        free(rq);
        *con_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    log_warn("http server: %s", msg);
}

/* "HOST:PORT" with a numeric host ("127.0.0.1", "[::1]") into an address. */
static int parse_listen(const char *listen, struct sockaddr_storage *out, socklen_t *out_len,
                        struct s3_error *err)
{
    char host[128];
    const char *colon = strrchr(listen, ':');
    const char *h = listen;
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
        h++, hl -= 2;
    if (!colon || hl == 0 || hl >= sizeof(host) || !colon[1]) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "--serve %s: expected ADDRESS:PORT, e.g. 127.0.0.1:8080", listen);
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port > 65535) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "--serve %s: the port must be a number from 0 to 65535", listen);
        return -1;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM},
                    *ai = NULL;
    char service[8];
    snprintf(service, sizeof(service), "%lu", port);
    int rc = getaddrinfo(host, service, &hints, &ai);
    if (rc != 0 || !ai) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "--serve %s: %s is not an IP address (give one, e.g. 127.0.0.1)", listen,
                     host);
        if (ai)
            freeaddrinfo(ai);
        return -1;
    }
    memcpy(out, ai->ai_addr, ai->ai_addrlen);
    *out_len = ai->ai_addrlen;
    freeaddrinfo(ai);
    return 0;
}

/* "127.0.0.1:8080", "[::1]:8080" */
static void listen_text(const struct sockaddr_storage *addr, unsigned port, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (addr->ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)addr)->sin6_addr, host,
                  sizeof(host));
        snprintf(out, len, "[%s]:%u", host, port);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)addr)->sin_addr, host,
                  sizeof(host));
        snprintf(out, len, "%s:%u", host, port);
    }
}

int lambda_serve_with(struct lambda_handler *h, const char *listen, const struct lambda_frontend *f,
                      struct s3_error *err)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    if (parse_listen(listen, &addr, &addr_len, err) != 0)
        return -1;

    /* SIGINT and SIGTERM are taken by sigwait below: blocked in this thread and so in every
     * thread the daemon starts (main.c blocks them before its own threads start) */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    struct server s = {.h = h, .f = f};
    s.max_busy = cpus < 1 ? 1 : cpus > SERVE_MAX_BUSY ? SERVE_MAX_BUSY : (unsigned)cpus;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    pthread_mutex_init(&s.emf_lock, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | (addr.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    /* the port is only for MHD's messages: MHD_OPTION_SOCK_ADDR says where */
    uint16_t port = ntohs(addr.ss_family == AF_INET6
                              ? ((const struct sockaddr_in6 *)(const void *)&addr)->sin6_port
                              : ((const struct sockaddr_in *)(const void *)&addr)->sin_port);
    /* the logger first: MHD logs through it only from there on */
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, &s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
        NULL, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_END);
    int rc = -1;
    if (!d) {
        s3_error_set(err, 0, "LocalIOError", false,
                     "--serve %s: cannot listen there (address in use, or not one of this "
                     "machine's?)",
                     listen);
        goto out;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    char where[INET6_ADDRSTRLEN + 16];
    listen_text(&addr, di ? di->port : 0, where, sizeof(where));
    log_info("serving S3 event notifications on http://%s/ (%u handled at a time)", where,
             s.max_busy);

    for (;;) {
        int sig = 0;
        if (sigwait(&stop, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            log_reopen_request();
            continue;
        }
        log_info("%s: stopping (requests in progress finish first)",
                 sig == SIGINT ? "SIGINT" : "SIGTERM");
        break;
    }
    MHD_stop_daemon(d);
    lambda_frontend_write_emf(f); /* what the last interval had */
    log_info("stopped serving on %s", listen);
    rc = 0;
out:
    pthread_mutex_destroy(&s.emf_lock);
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    /* the signals stay blocked: a second SIGTERM during the stop must not kill the process
     * before main.c has freed and flushed everything */
    return rc;
}

int lambda_serve(struct lambda_handler *h, const char *listen, struct s3_error *err)
{
    return lambda_serve_with(h, listen, NULL, err);
}
