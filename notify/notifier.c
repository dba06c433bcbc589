/* notifier: the queue between the pipeline and the sinks, and the thread that empties it.
 *
 * Posting never waits for the network: an event is rendered (or added to the open digest) and
 * queued. The sender thread delivers each message to every configured sink. A sink that fails
 * is paused with exponential backoff (1 s .. 5 min, jittered) while its messages stay queued,
 * so an SNS outage costs one failed attempt per backoff step rather than one per notice; a
 * message a sink refuses as malformed is given up for that sink after a few attempts. What is
 * still queued at the end is saved in state_dir and sent by the next run. */
#include "notify.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SINK_COUNT      3
#define QUEUE_MAX       10000
#define BAD_MESSAGE_MAX 5 /* attempts before a message a sink refuses is given up */
#define BACKOFF_MAX_MS  300000
#define PENDING_FILE    "notices.pending"

enum { SINK_SNS, SINK_WEBHOOK, SINK_SMTP };

struct pending {
    struct notify_message msg;
    unsigned todo;                /* bit per sink still to deliver to */
    unsigned refused[SINK_COUNT]; /* attempts the sink answered "bad message" */
    struct pending *next;
};

struct sink_state {
    int64_t paused_until_ms;
    unsigned failures; /* in a row */
    char last_error[512];
};

struct notifier {
    const struct config *cfg;
    struct metrics *metrics;
    unsigned sinks; /* bit per configured sink */
    struct s3client *sns;
    char *smtp_password;
    char *state_path; /* state_dir/notices.pending, or NULL */
    char *origin;

    pthread_mutex_t lock;
    pthread_cond_t cond;
    pthread_cond_t idle_cond; /* a message left the queue for good (notifier_flush) */
    pthread_t thread;
    bool started, stopping;
    int64_t drain_until_ms; /* while stopping: keep sending until then */
    struct pending *head, *tail;
    size_t count;
    bool busy; /* the thread is sending one message (not in the queue meanwhile) */
    struct notify_digest *digest;
    int64_t digest_start_ms;
    struct sink_state sink[SINK_COUNT];
    struct notifier_stats stats;
};

static const char *const sink_names[SINK_COUNT] = {"sns", "webhook", "smtp"};

const char *notifier_sink_name(unsigned sink)
{
    return sink < SINK_COUNT ? sink_names[sink] : "?";
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------------------------ */
/* The queue (with the lock held)                                                               */

static void pending_free(struct pending *p)
{
    if (!p)
        return;
    notify_message_clear(&p->msg);
    free(p);
}

static void queue_push(struct notifier *n, struct pending *p)
{
    if (n->count >= QUEUE_MAX) { /* drop the oldest: recent results matter more */
        struct pending *old = n->head;
        n->head = old->next;
        if (!n->head)
            n->tail = NULL;
        n->count--;
        n->stats.dropped++;
        if (n->metrics)
            metrics_add(n->metrics, METRICS_NOTICES_DROPPED, 1);
        log_error("notices: queue full (%d); dropped the notice \"%s\"", QUEUE_MAX,
                  old->msg.subject);
        pending_free(old);
    }
    p->next = NULL;
    if (n->tail)
        n->tail->next = p;
    else
        n->head = p;
    n->tail = p;
    n->count++;
    pthread_cond_signal(&n->cond);
}

/* Takes ownership of *m (left cleared). */
static int queue_message(struct notifier *n, struct notify_message *m, unsigned todo)
{
    struct pending *p = calloc(1, sizeof(*p));
    if (!p) {
        log_error("notices: out of memory; dropped the notice \"%s\"", m->subject);
        notify_message_clear(m);
        return -1;
    }
    p->msg = *m;
    memset(m, 0, sizeof(*m));
    p->todo = todo;
    queue_push(n, p);
    return 0;
}

/* A sink may take p now. */
static bool sink_ready(const struct notifier *n, unsigned s, int64_t now)
{
    return n->sink[s].paused_until_ms <= now;
}

/* The first message with a ready sink, unlinked from the queue; NULL when none. *wake_ms: when
 * a paused sink is ready again (INT64_MAX: never). */
static struct pending *queue_take_due(struct notifier *n, int64_t now, int64_t *wake_ms)
{
    *wake_ms = INT64_MAX;
    for (unsigned s = 0; s < SINK_COUNT; s++)
        if (n->sink[s].paused_until_ms > now && n->sink[s].paused_until_ms < *wake_ms)
            *wake_ms = n->sink[s].paused_until_ms;
    struct pending *prev = NULL;
    for (struct pending *p = n->head; p; prev = p, p = p->next) {
        for (unsigned s = 0; s < SINK_COUNT; s++) {
            if (!(p->todo & (1u << s)) || !sink_ready(n, s, now))
                continue;
            if (prev)
                prev->next = p->next;
            else
                n->head = p->next;
            if (n->tail == p)
                n->tail = prev;
            n->count--;
            return p;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Sending                                                                                      */

/* A refusal of this message itself (sending it again cannot help), as opposed to a sink that
 * is down, throttling or misconfigured (worth waiting for: the user may fix it). */
static bool refuses_message(const struct s3_error *err)
{
    return strcmp(err->code, "InvalidParameter") == 0 ||
           strcmp(err->code, "InvalidParameterValue") == 0 ||
           (strcmp(err->code, "WebhookRejected") == 0 && err->http_status >= 400 &&
            err->http_status < 500 && err->http_status != 408 && err->http_status != 429 &&
            err->http_status != 401 && err->http_status != 403);
}

static int send_to(struct notifier *n, unsigned s, const struct notify_message *m,
                   struct s3_error *err)
{
    const struct config *cfg = n->cfg;
    const char *ca = cfg->s3.ca_file;
    switch (s) {
    case SINK_SNS:
        return notify_sns_publish(n->sns,
                                  cfg->notify.sns_endpoint[0] ? cfg->notify.sns_endpoint : NULL,
                                  cfg->notify.sns_topic_arn, m, NULL, 0, err);
    case SINK_WEBHOOK:
        return notify_webhook_post(cfg->notify.webhook_url, cfg->notify.webhook_secret, ca, m, err);
    default:
        return notify_smtp_send(cfg->notify.smtp_url, cfg->notify.smtp_user, n->smtp_password, ca,
                                cfg->notify.mail_from, cfg->notify.mail_to,
                                cfg->notify.mail_to_count, m, err);
    }
}

static int64_t backoff_ms(unsigned failures)
{
    unsigned shift = failures < 10 ? failures : 10;
    int64_t base = (int64_t)1000 << (shift ? shift - 1 : 0);
    if (base > BACKOFF_MAX_MS)
        base = BACKOFF_MAX_MS;
    return base / 2 + (int64_t)(random() % (base / 2 + 1)); /* the upper half, at random */
}

/* Records one attempt's outcome (lock held). */
static void sink_result(struct notifier *n, struct pending *p, unsigned s, int rc,
                        const struct s3_error *err)
{
    struct sink_state *st = &n->sink[s];
    if (rc == 0) {
        if (st->failures)
            log_info("notices: %s works again after %u failed attempt(s)", sink_names[s],
                     st->failures);
        st->failures = 0;
        st->paused_until_ms = 0;
        p->todo &= ~(1u << s);
        n->stats.sink_sent[s]++;
        return;
    }
    n->stats.sink_failed[s]++;
    n->stats.retries++;
    if (n->metrics)
        metrics_add(n->metrics, METRICS_NOTICE_FAILURES, 1);
    if (refuses_message(err) && ++p->refused[s] >= BAD_MESSAGE_MAX) {
        log_error("notices: %s refused \"%s\" %u times (%s); given up for %s", sink_names[s],
                  p->msg.subject, p->refused[s], err->message, sink_names[s]);
        p->todo &= ~(1u << s);
        return;
    }
    st->failures++;
    int64_t wait = backoff_ms(st->failures);
    st->paused_until_ms = now_ms() + wait;
    snprintf(st->last_error, sizeof(st->last_error), "%s", err->message);
    log_warn("notices: %s failed (%s); %zu notice(s) wait, next try in %.0f s", sink_names[s],
             err->message, n->count + 1, (double)wait / 1000);
}

/* Sends p to its ready sinks, without the lock; then requeues or frees it. */
static void deliver(struct notifier *n, struct pending *p)
{
    int64_t now = now_ms();
    for (unsigned s = 0; s < SINK_COUNT; s++) {
        if (!(p->todo & (1u << s)) || !sink_ready(n, s, now))
            continue;
        struct s3_error err = {0};
        pthread_mutex_unlock(&n->lock);
        int rc = send_to(n, s, &p->msg, &err);
        pthread_mutex_lock(&n->lock);
        sink_result(n, p, s, rc, &err);
        now = now_ms();
    }
    if (p->todo) {
        queue_push(n, p);
        return;
    }
    pthread_cond_broadcast(&n->idle_cond);
    n->stats.sent++;
    if (n->metrics)
        metrics_add(n->metrics, METRICS_NOTICES, 1);
    log_debug("notices: delivered \"%s\"", p->msg.subject);
    pending_free(p);
}

/* Queues the open digest when its window is over (or `force`). Lock held. */
static void close_digest(struct notifier *n, bool force)
{
    if (!n->digest || notify_digest_count(n->digest) == 0)
        return;
    int64_t now = now_ms();
    int64_t end = n->digest_start_ms + (int64_t)n->cfg->notify.digest_seconds * 1000;
    if (!force && now < end)
        return;
    struct notify_message m = {0};
    if (notify_message_from_digest(n->digest, n->digest_start_ms, now, &m) == 0)
        queue_message(n, &m, n->sinks);
    else
        log_error("notices: out of memory; a digest of %u file(s) was not sent",
                  notify_digest_count(n->digest));
    notify_digest_reset(n->digest);
}

static void wait_until_idle(struct notifier *n, int64_t deadline_ms)
{
    struct timespec ts = {.tv_sec = deadline_ms / 1000, .tv_nsec = (deadline_ms % 1000) * 1000000};
    pthread_cond_timedwait(&n->idle_cond, &n->lock, &ts);
}

static void wait_until(struct notifier *n, int64_t wake_ms)
{
    if (wake_ms == INT64_MAX) {
        pthread_cond_wait(&n->cond, &n->lock);
        return;
    }
    struct timespec ts = {.tv_sec = wake_ms / 1000, .tv_nsec = (wake_ms % 1000) * 1000000};
    pthread_cond_timedwait(&n->cond, &n->lock, &ts);
}

static void *sender_main(void *arg)
{
    struct notifier *n = arg;
    pthread_mutex_lock(&n->lock);
    for (;;) {
        int64_t now = now_ms();
        if (n->stopping && (now >= n->drain_until_ms || !n->head))
            break;
        close_digest(n, false);
        int64_t wake;
        struct pending *p = queue_take_due(n, now, &wake);
        if (p) {
            n->busy = true;
            deliver(n, p);
            n->busy = false;
            continue;
        }
        if (n->digest && notify_digest_count(n->digest)) {
            int64_t end = n->digest_start_ms + (int64_t)n->cfg->notify.digest_seconds * 1000;
            if (end < wake)
                wake = end;
        }
        if (n->stopping && n->drain_until_ms < wake)
            wake = n->drain_until_ms;
        wait_until(n, wake);
    }
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Saving what was not delivered                                                                */

static json_t *pending_json(const struct pending *p)
{
    const struct notify_message *m = &p->msg;
    return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i}", "todo", (int)p->todo,
                     "subject", m->subject, "json", m->json, "text", m->text, "sms", m->sms,
                     "status", m->status, "event", m->event, "bucket", m->bucket ? m->bucket : "",
                     "files", (int)m->files);
}

static void save_pending(struct notifier *n)
{
    if (!n->state_path || !n->head) {
        if (n->state_path)
            unlink(n->state_path);
        return;
    }
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", n->state_path);
    FILE *f = fopen(tmp, "we");
    size_t saved = 0;
    for (struct pending *p = n->head; f && p; p = p->next) {
        json_t *o = pending_json(p);
        char *line = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (line && fprintf(f, "%s\n", line) > 0)
            saved++;
        free(line);
        json_decref(o);
    }
    if (!f || fflush(f) != 0 || fsync(fileno(f)) != 0 || fclose(f) != 0 ||
        rename(tmp, n->state_path) != 0) {
        log_error("notices: cannot save %zu undelivered notice(s) to %s: %s", n->count,
                  n->state_path, strerror(errno));
        return;
    }
    log_warn("notices: %zu notice(s) not delivered yet were saved to %s; the next mount sends "
             "them",
             saved, n->state_path);
}

static char *dup_field(json_t *o, const char *name)
{
    const char *s = json_string_value(json_object_get(o, name));
    return strdup(s ? s : "");
}

static void load_pending(struct notifier *n)
{
    FILE *f = n->state_path ? fopen(n->state_path, "re") : NULL;
    if (!f)
        return;
    size_t loaded = 0;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_t *o = json_loads(line, 0, NULL);
        unsigned todo = (unsigned)json_integer_value(json_object_get(o, "todo")) & n->sinks;
        if (o && todo) {
            struct notify_message m = {
                .subject = dup_field(o, "subject"),
                .json = dup_field(o, "json"),
                .text = dup_field(o, "text"),
                .sms = dup_field(o, "sms"),
                .status = dup_field(o, "status"),
                .event = dup_field(o, "event"),
                .bucket = dup_field(o, "bucket"),
                .files = (unsigned)json_integer_value(json_object_get(o, "files")),
            };
            if (m.subject && m.json && m.text && m.sms && m.status && m.event && m.bucket &&
                queue_message(n, &m, todo) == 0)
                loaded++;
            notify_message_clear(&m);
        }
        json_decref(o);
    }
    free(line);
    fclose(f);
    unlink(n->state_path);
    if (loaded)
        log_info("notices: %zu notice(s) saved by the last run are queued again", loaded);
}

/* ------------------------------------------------------------------------------------------ */
/* Life cycle                                                                                   */

/* The region of "arn:aws:sns:REGION:ACCOUNT:NAME" into out. */
static void arn_region(const char *arn, char *out, size_t len)
{
    const char *p = arn;
    for (int i = 0; i < 3 && p; i++) {
        p = strchr(p, ':');
        if (p)
            p++;
    }
    const char *end = p ? strchr(p, ':') : NULL;
    snprintf(out, len, "%.*s", end ? (int)(end - p) : 0, p ? p : "");
}

static int read_password(struct notifier *n, struct s3_error *err)
{
    const char *path = n->cfg->notify.smtp_password_file;
    if (!path[0])
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        s3_error_set(err, 0, "InvalidConfig", false,
                     "[notify] smtp_password_file %s cannot be read: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (st.st_mode & (S_IRGRP | S_IROTH)) {
        close(fd);
        s3_error_set(err, 0, "InvalidConfig", false,
                     "[notify] smtp_password_file %s is readable by group or others: run chmod "
                     "600 %s",
                     path, path);
        return -1;
    }
    char buf[1024];
    ssize_t len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len < 0) {
        s3_error_set(err, 0, "InvalidConfig", false, "[notify] smtp_password_file %s: %s", path,
                     strerror(errno));
        return -1;
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--; /* the line end an editor adds */
    buf[len] = '\0';
    n->smtp_password = strdup(buf);
    memset(buf, 0, sizeof(buf));
    return n->smtp_password ? 0 : -1;
}

static int make_sns_client(struct notifier *n, struct s3_error *err)
{
    char region[64];
    arn_region(n->cfg->notify.sns_topic_arn, region, sizeof(region));
    struct s3client_options o = {
        .region = region,
        .ca_file = n->cfg->s3.ca_file[0] ? n->cfg->s3.ca_file : NULL,
        .credentials = conf_credentials_provider,
        .credentials_ctx = n->cfg->credentials,
        .max_attempts = 2, /* the notifier retries, with a much longer backoff */
        .retry_max_ms = 2000,
        .connect_timeout_ms = 5000,
        .low_speed_seconds = 30,
    };
    n->sns = s3client_new(&o, err);
    return n->sns ? 0 : -1;
}

struct notifier *notifier_new(const struct notifier_options *opts, struct s3_error *err)
{
    struct notifier *n = calloc(1, sizeof(*n));
    if (!n) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        return NULL;
    }
    const struct config *cfg = opts->cfg;
    n->cfg = cfg;
    n->metrics = opts->metrics;
    pthread_mutex_init(&n->lock, NULL);
    pthread_cond_init(&n->cond, NULL);
    pthread_cond_init(&n->idle_cond, NULL);
    n->sinks = (cfg->notify.sns_topic_arn[0] ? 1u << SINK_SNS : 0) |
               (cfg->notify.webhook_url[0] ? 1u << SINK_WEBHOOK : 0) |
               (cfg->notify.smtp_url[0] ? 1u << SINK_SMTP : 0);
    if (!cfg->notify.on_success && !cfg->notify.on_failure)
        n->sinks = 0;
    n->origin = strdup(opts->origin ? opts->origin : "s3imgfs");
    if (opts->state_dir)
        n->state_path = malloc(strlen(opts->state_dir) + sizeof(PENDING_FILE) + 1);
    if (n->state_path)
        sprintf(n->state_path, "%s/%s", opts->state_dir, PENDING_FILE);
    if (!n->origin || (opts->state_dir && !n->state_path)) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        notifier_free(n, 0);
        return NULL;
    }
    if (!n->sinks)
        return n;
    if (((n->sinks & (1u << SINK_SNS)) && make_sns_client(n, err) != 0) ||
        read_password(n, err) != 0) {
        notifier_free(n, 0);
        return NULL;
    }
    if (cfg->notify.digest_seconds && !(n->digest = notify_digest_new(cfg->notify.digest_keys))) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        notifier_free(n, 0);
        return NULL;
    }
    load_pending(n);
    return n;
}

int notifier_start(struct notifier *n, struct s3_error *err)
{
    if (!n->sinks)
        return 0;
    int rc = pthread_create(&n->thread, NULL, sender_main, n);
    if (rc != 0) {
        s3_error_set(err, 0, "LocalIOError", false, "cannot start the notice thread: %s",
                     strerror(rc));
        return -1;
    }
    n->started = true;
    return 0;
}

bool notifier_enabled(const struct notifier *n)
{
    return n && n->sinks;
}

void notifier_post(struct notifier *n, const struct notify_event *e)
{
    if (!n || !n->sinks)
        return;
    bool ok = e->status == NOTIFY_DONE;
    if ((ok && !n->cfg->notify.on_success) || (!ok && !n->cfg->notify.on_failure))
        return;
    struct notify_event copy = *e;
    if (!copy.origin || !copy.origin[0])
        copy.origin = n->origin;
    if (n->digest) {
        pthread_mutex_lock(&n->lock);
        if (notify_digest_count(n->digest) == 0)
            n->digest_start_ms = now_ms();
        notify_digest_add(n->digest, &copy);
        n->stats.posted++;
        pthread_cond_signal(&n->cond);
        pthread_mutex_unlock(&n->lock);
        return;
    }
    struct notify_message m = {0};
    int rc = notify_message_from_event(&copy, &m);
    pthread_mutex_lock(&n->lock);
    n->stats.posted++;
    if (rc == 0)
        queue_message(n, &m, n->sinks);
    else
        log_error("notices: out of memory; no notice for %s", e->key);
    pthread_mutex_unlock(&n->lock);
}

void notifier_get_stats(struct notifier *n, struct notifier_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    *out = n->stats;
    out->pending =
        n->count + (n->busy ? 1 : 0) + (n->digest && notify_digest_count(n->digest) ? 1 : 0);
    pthread_mutex_unlock(&n->lock);
}

size_t notifier_flush(struct notifier *n, unsigned timeout_ms)
{
    if (!n || !n->started)
        return 0;
    int64_t deadline = now_ms() + timeout_ms;
    pthread_mutex_lock(&n->lock);
    while ((n->head || n->busy) && now_ms() < deadline) {
        pthread_cond_signal(&n->cond);
        wait_until_idle(n, deadline);
    }
    size_t left = n->count + (n->busy ? 1 : 0);
    pthread_mutex_unlock(&n->lock);
    return left;
}

void notifier_free(struct notifier *n, unsigned drain_ms)
{
    if (!n)
        return;
    pthread_mutex_lock(&n->lock);
    close_digest(n, true);
    n->stopping = true;
    n->drain_until_ms = now_ms() + drain_ms;
    pthread_cond_signal(&n->cond);
    pthread_mutex_unlock(&n->lock);
    if (n->started)
        pthread_join(n->thread, NULL);
    save_pending(n);
    while (n->head) {
        struct pending *p = n->head;
        n->head = p->next;
        pending_free(p);
    }
    notify_digest_free(n->digest);
    s3client_free(n->sns);
    if (n->smtp_password) {
        memset(n->smtp_password, 0, strlen(n->smtp_password));
        free(n->smtp_password);
    }
    free(n->state_path);
    free(n->origin);
    pthread_cond_destroy(&n->cond);
    pthread_cond_destroy(&n->idle_cond);
    pthread_mutex_destroy(&n->lock);
    free(n);
}
