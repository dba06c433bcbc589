/* notify: a notice for every processed file, for people and for machines, delivered to SNS, a
 * webhook and e-mail without ever blocking the pipeline.
 *
 *   event (one file's result) -> [digest window] -> message (subject, JSON, text, SMS)
 *        -> sender thread -> sns.c | webhook.c | smtp.c (each retried with backoff)
 *
 * One `struct notify_event` describes a result; every sink renders the same `struct
 * notify_message` made from it (or from a digest of many events). The renderers and the
 * senders are public so that the deployed function (lambda/) and the tests can use them alone.
 *
 * Conventions: strings passed in are borrowed for the call; what is returned through an
 * out-parameter is owned by the caller and released with the matching _clear/_free. Functions
 * that can fail return 0 or -1 and fill a `struct s3_error` with a message a user can act on.
 */
#ifndef S3IMGFS_NOTIFY_H
#define S3IMGFS_NOTIFY_H

#include "conf.h"
#include "metrics.h"
#include "s3client.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------------------------------ */
/* The event                                                                                    */

enum notify_status { NOTIFY_DONE, NOTIFY_FAILED };

struct notify_rendition {
    const char *size; /* the size's name ("thumbnail") */
    const char *key;  /* destination key */
    unsigned width, height;
    const char *format; /* "jpeg", "png", "webp", "avif" */
    uint64_t bytes;
};

/* What happened to one file. Strings may be "" (unknown) but not NULL, except where noted. */
struct notify_event {
    enum notify_status status;
    /* "resized" (an image and its renditions), "uploaded" (not an image, or resizing is not
     * done here), "upload_failed", "resize_failed" */
    const char *event;
    const char *bucket; /* source bucket */
    const char *key;    /* source key */
    uint64_t size;      /* bytes of the source object */
    const char *etag;
    const char *format;     /* the source's image format ("jpeg"); "" when not an image */
    unsigned width, height; /* the source's pixels; 0 when unknown */
    const char *destination_bucket;
    const struct notify_rendition *renditions; /* NULL when rendition_count is 0 */
    size_t rendition_count;
    const char *reason;     /* NOTIFY_FAILED: why, for people ("truncated JPEG") */
    const char *action;     /* NOTIFY_FAILED: what happens to the file now ("kept in the
                               spool; fix the credentials and run s3imgfs retry") */
    const char *request_id; /* ties the notice to the log lines about the file */
    const char *origin;     /* who sends it: "s3imgfs gateway on HOST", "s3imgfs-lambda" */
    int64_t time_ms;        /* when the result happened, Unix time in ms */
    double elapsed_ms;      /* processing time; 0 when unknown */
};

/* ------------------------------------------------------------------------------------------ */
/* Messages: what the sinks send                                                                */

/* SNS's limit on a message (and so on every rendering of one notice). */
#define NOTIFY_MAX_MESSAGE 262144

struct notify_message {
    char *subject;  /* under 100 characters, no control characters (the e-mail subject) */
    char *json;     /* for machines: SNS "default", the webhook body (a JSON object) */
    char *text;     /* for people: the e-mail body (plain text, lines under 80 columns) */
    char *sms;      /* one line of at most 140 characters */
    char *status;   /* "done", or "failed" when any file failed */
    char *event;    /* the event's name, or "digest" */
    char *bucket;   /* the source bucket */
    unsigned files; /* events the message covers (1 unless a digest) */
};

/* Renders one event. Returns 0, or -1 when memory runs out. */
int notify_message_from_event(const struct notify_event *e, struct notify_message *out);
void notify_message_clear(struct notify_message *m);

/* A digest: many events summarised in one message (counts, failures, bytes, the first
 * `max_keys` keys with their results and the reasons of the first failures). */
struct notify_digest;
struct notify_digest *notify_digest_new(unsigned max_keys);
void notify_digest_add(struct notify_digest *d, const struct notify_event *e);
unsigned notify_digest_count(const struct notify_digest *d);
/* Renders the digest (window_start_ms..window_end_ms is the period it covers). -1 on ENOMEM. */
int notify_message_from_digest(const struct notify_digest *d, int64_t window_start_ms,
                               int64_t window_end_ms, struct notify_message *out);
/* Empties the digest for the next window. */
void notify_digest_reset(struct notify_digest *d);
void notify_digest_free(struct notify_digest *d);

/* The SNS Message of MessageStructure=json: {"default": json, "email": text, "sms": sms}, at
 * most max_bytes long (normally NOTIFY_MAX_MESSAGE): when too long, the JSON body becomes a
 * summary (what the subject says, the counts, no per-rendition detail) and the text is cut at
 * a line end with a note that it was shortened. malloc'd; NULL on ENOMEM. */
char *notify_sns_structured(const struct notify_message *m, size_t max_bytes);

/* The webhook signature header value "t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
 * "<t>." + body)>" into out (at least NOTIFY_SIGNATURE_MAX bytes). Returns 0 or -1. */
#define NOTIFY_SIGNATURE_MAX 96
int notify_webhook_signature(const char *secret, int64_t timestamp, const char *body,
                             size_t body_len, char *out, size_t out_len);

/* ------------------------------------------------------------------------------------------ */
/* Senders: one attempt each (the caller retries); thread-safe                                  */

/* Publishes m to an SNS topic: Action=Publish with TopicArn, Subject, MessageStructure=json and
 * MessageAttributes status, bucket and event. `s3` is a client made for the topic's region
 * (its endpoint unused); endpoint NULL = https://sns.<region>.amazonaws.com. message_id
 * (may be NULL) receives SNS's MessageId. */
int notify_sns_publish(struct s3client *s3, const char *endpoint, const char *topic_arn,
                       const struct notify_message *m, char *message_id, size_t message_id_len,
                       struct s3_error *err);

/* POSTs m->json to url with Content-Type application/json, X-S3imgfs-Event, X-S3imgfs-Status
 * and (when secret is not "") X-S3imgfs-Signature. TLS verified (ca_file "" = system store).
 * A 2xx answer is success; any other is an error naming the status. */
int notify_webhook_post(const char *url, const char *secret, const char *ca_file,
                        const struct notify_message *m, struct s3_error *err);

/* Sends m as one e-mail (text/plain; charset=utf-8, quoted-printable, Subject encoded as
 * RFC 2047 when not ASCII) from `from` to every address of `to`. smtp:// uses STARTTLS when
 * the server offers it and requires it when `user` is set; smtps:// is TLS from the start.
 * password may be NULL. */
int notify_smtp_send(const char *url, const char *user, const char *password, const char *ca_file,
                     const char *from, const char *const *to, size_t to_count,
                     const struct notify_message *m, struct s3_error *err);

/* ------------------------------------------------------------------------------------------ */
/* The notifier: a queue and a sender thread                                                    */

struct notifier_options {
    const struct config *cfg; /* [notify] and [s3] ca_file; borrowed, must outlive it */
    /* Where notices not delivered at notifier_free are saved and read back by the next
     * notifier_new (one file); NULL = not saved. */
    const char *state_dir;
    const char *origin;      /* the events' origin when they have none; may be NULL */
    struct metrics *metrics; /* counts notices sent, failed and dropped; may be NULL */
};

struct notifier;

/* Reads the password file, makes the SNS client (region from the topic ARN) and loads notices
 * saved by the last run. With no sink configured it returns a notifier that drops every event.
 * Returns NULL with err filled on a problem the user must fix (unreadable password file). */
struct notifier *notifier_new(const struct notifier_options *opts, struct s3_error *err);

/* Starts the sender thread. */
int notifier_start(struct notifier *n, struct s3_error *err);

/* Queues a notice of e (copied; filtered by [notify] on). Never blocks on the network: when
 * the queue is full (10,000 notices) the oldest is dropped and counted. Thread-safe. */
void notifier_post(struct notifier *n, const struct notify_event *e);

/* True when at least one sink is configured. */
bool notifier_enabled(const struct notifier *n);

struct notifier_stats {
    uint64_t posted;                       /* events accepted */
    uint64_t sent;                         /* messages delivered to every sink */
    uint64_t retries;                      /* failed attempts that will be retried */
    uint64_t dropped;                      /* notices lost to a full queue */
    uint64_t pending;                      /* messages waiting for a sink */
    uint64_t sink_sent[3], sink_failed[3]; /* per sink: 0 sns, 1 webhook, 2 smtp */
};
void notifier_get_stats(struct notifier *n, struct notifier_stats *out);
const char *notifier_sink_name(unsigned sink); /* "sns", "webhook", "smtp" */

/* Waits until every queued notice is delivered (or given up) or timeout_ms passed; returns
 * how many are still pending. A function calls it before it answers (Lambda freezes the
 * process between invocations). The open digest is not sent early. */
size_t notifier_flush(struct notifier *n, unsigned timeout_ms);

/* Sends the open digest, tries to deliver what is queued for up to `drain_ms`, saves the rest
 * to state_dir, stops the thread and frees everything. NULL is fine. */
void notifier_free(struct notifier *n, unsigned drain_ms);

#endif
