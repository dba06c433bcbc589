/* The three senders of notify/ against real servers on 127.0.0.1, each checked from the
 * receiving end:
 *   - SNS (sns.c): fauxqs (S3IMGFS_TEST_SNS_ENDPOINT). A topic with an SQS subscription; the
 *     published notice is read back from the queue as the SNS envelope (subject, message
 *     attributes, the structured message).
 *   - webhook (webhook.c): scripts/servers/webhook-receiver.py (S3IMGFS_TEST_WEBHOOK_URL,
 *     S3IMGFS_TEST_WEBHOOK_DIR, S3IMGFS_TEST_WEBHOOK_SECRET), which stores every request as a
 *     JSON file and checks its signature itself, as docs/webhook.md tells receivers to.
 *   - e-mail (smtp.c): aiosmtpd with its Maildir handler (S3IMGFS_TEST_SMTP_URL,
 *     S3IMGFS_TEST_MAILDIR); the stored mail is parsed here (RFC 2047 subject,
 *     quoted-printable body).
 * The messages are built by hand: what render.c writes into them is not the subject here. */
#include "fauxqs_calls.h"
#include "json_path.h"
#include "notify.h"
#include "s3_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <ctype.h>
#include <curl/curl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- the messages ---- */

/* JSON with what form encoding and JSON escaping must carry: UTF-8 of 2, 3 and 4 bytes, the
 * form's delimiters, quotes, a backslash, an escaped line break. */
static char msg_json[] = "{\"event\":\"resized\",\"bucket\":\"photos-src\",\"key\":\"holiday/"
                         "r\xc3\xa9sum\xc3\xa9 a+b=c&d \\\"q\\\" \\\\ \xe2\x9c\x93 "
                         "\xf0\x9f\x8e\x89.jpg\",\"note\":\"line1\\nline2\",\"size\":12345}";
static char msg_subject[] = "s3imgfs: 1 file resized (holiday/r\xc3\xa9sum\xc3\xa9.jpg)";
static char msg_sms[] = "s3imgfs: resized holiday/r\xc3\xa9sum\xc3\xa9.jpg";
static char msg_text[] = "A file was resized.\n\nkey: holiday/r\xc3\xa9sum\xc3\xa9.jpg\n";
static char msg_status[] = "done";
static char msg_event[] = "resized";
static char msg_bucket[] = "photos-src";

static struct notify_message message(void)
{
    return (struct notify_message){.subject = msg_subject,
                                   .json = msg_json,
                                   .text = msg_text,
                                   .sms = msg_sms,
                                   .status = msg_status,
                                   .event = msg_event,
                                   .bucket = msg_bucket,
                                   .files = 1};
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct buf {
        char *data;
        size_t len;
    } b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        b.data = realloc(b.data, b.len + n + 1);
        assert_non_null(b.data);
        memcpy(b.data + b.len, chunk, n);
        b.len += n;
    }
    fclose(f);
    if (!b.data)
        b.data = calloc(1, 1);
    b.data[b.len] = '\0';
    return b.data;
}

/* A TCP port on 127.0.0.1 where nothing listens (bound, then released). */
static unsigned unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool is_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
            return false;
    return true;
}

/* ================================ SNS ================================ */

static struct {
    struct s3client *client;
    struct aws_credentials creds;
    const char *endpoint;
    char *topic_arn;
    char *queue_url;
    char *queue_arn;
    char *subscription_arn;
} sns;

static char *sns_ok(const char *action, const struct aws_header *params, size_t n, const char *want)
{
    return fauxqs_sns_ok(sns.client, sns.endpoint, action, params, n, want);
}

static char *sqs_ok(const char *action, const char *json)
{
    return fauxqs_sqs_ok(sns.client, sns.endpoint, action, json);
}

/* Member `key` of a JSON record as JSON text ("true", "false", "null"), "?" when missing. Static
 * storage: one comparison at a time. */
static const char *literal_of(const char *json, const char *key)
{
    static char out[16];
    char *v = json_path_text(json, key, NULL);
    snprintf(out, sizeof(out), "%s", v ? v : "?");
    free(v);
    return out;
}

/* Receives the next message of the queue (waiting up to 5 s), deletes it and returns its body
 * (the SNS envelope), malloc'd. */
static char *sqs_receive_envelope(void)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"QueueUrl\":\"%s\",\"MaxNumberOfMessages\":1,\"WaitTimeSeconds\":1,"
             "\"VisibilityTimeout\":30}",
             sns.queue_url);
    time_t start = time(NULL);
    char *body, *envelope;
    for (;;) {
        body = sqs_ok("ReceiveMessage", json);
        envelope = json_path_string(body, "Messages", "0", "Body", NULL);
        if (envelope)
            break;
        if (time(NULL) - start >= 5)
            fail_msg("no message in the queue after 5 s (last answer %s)", body);
        free(body);
    }
    char *receipt = json_path_string(body, "Messages", "0", "ReceiptHandle", NULL);
    assert_non_null(receipt);
    assert_null(strpbrk(receipt, "\"\\"));
    free(body);
    char del[2048];
    snprintf(del, sizeof(del), "{\"QueueUrl\":\"%s\",\"ReceiptHandle\":\"%s\"}", sns.queue_url,
             receipt);
    free(sqs_ok("DeleteMessage", del));
    free(receipt);
    return envelope;
}

/* The envelope's MessageAttributes.<name>.Value (and checks its Type is String), or NULL. */
static char *envelope_attribute(const char *envelope, const char *name)
{
    char *type = json_path_string(envelope, "MessageAttributes", name, "Type", NULL);
    if (!type)
        return NULL;
    assert_string_equal(type, "String");
    free(type);
    return json_path_string(envelope, "MessageAttributes", name, "Value", NULL);
}

static int sns_setup(void **state)
{
    (void)state;
    sns.endpoint = getenv("S3IMGFS_TEST_SNS_ENDPOINT");
    snprintf(sns.creds.access_key_id, sizeof(sns.creds.access_key_id), "AKIDFAUXQSTEST");
    snprintf(sns.creds.secret_access_key, sizeof(sns.creds.secret_access_key), "fauxqs-secret");
    struct s3client_options o = {.region = "us-east-1",
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &sns.creds,
                                 .max_attempts = 2};
    struct s3_error err;
    sns.client = s3client_new(&o, &err);
    if (!sns.client)
        fail_msg("s3client_new: %s", err.message);

    char topic[80], queue[80], json[512];
    unsigned salt = (unsigned)time(NULL) % 100000;
    snprintf(topic, sizeof(topic), "s3imgfs-notify-%d-%u", (int)getpid(), salt);
    snprintf(queue, sizeof(queue), "s3imgfs-notify-q-%d-%u", (int)getpid(), salt);
    struct aws_header ct[] = {{"Name", topic}};
    sns.topic_arn = sns_ok("CreateTopic", ct, 1, "TopicArn");

    snprintf(json, sizeof(json), "{\"QueueName\":\"%s\"}", queue);
    char *body = sqs_ok("CreateQueue", json);
    sns.queue_url = json_path_string(body, "QueueUrl", NULL);
    free(body);
    assert_non_null(sns.queue_url);
    assert_null(strpbrk(sns.queue_url, "\"\\"));
    snprintf(json, sizeof(json), "{\"QueueUrl\":\"%s\",\"AttributeNames\":[\"QueueArn\"]}",
             sns.queue_url);
    body = sqs_ok("GetQueueAttributes", json);
    sns.queue_arn = json_path_string(body, "Attributes", "QueueArn", NULL);
    free(body);
    assert_non_null(sns.queue_arn);

    /* Not raw: the queue receives the SNS envelope (Subject, MessageAttributes, Message). */
    struct aws_header sub[] = {{"TopicArn", sns.topic_arn},
                               {"Protocol", "sqs"},
                               {"Endpoint", sns.queue_arn},
                               {"ReturnSubscriptionArn", "true"},
                               {"Attributes.entry.1.key", "RawMessageDelivery"},
                               {"Attributes.entry.1.value", "false"}};
    sns.subscription_arn = sns_ok("Subscribe", sub, 6, "SubscriptionArn");
    return 0;
}

static int sns_teardown(void **state)
{
    (void)state;
    struct aws_response resp;
    struct s3_error err;
    if (sns.subscription_arn) {
        struct aws_header p[] = {{"SubscriptionArn", sns.subscription_arn}};
        aws_query_call(sns.client, "sns", sns.endpoint, "Unsubscribe", SNS_VERSION, p, 1, &resp,
                       &err);
        aws_response_clear(&resp);
    }
    if (sns.topic_arn) {
        struct aws_header p[] = {{"TopicArn", sns.topic_arn}};
        aws_query_call(sns.client, "sns", sns.endpoint, "DeleteTopic", SNS_VERSION, p, 1, &resp,
                       &err);
        aws_response_clear(&resp);
    }
    if (sns.queue_url) {
        char json[512];
        snprintf(json, sizeof(json), "{\"QueueUrl\":\"%s\"}", sns.queue_url);
        fauxqs_sqs_call(sns.client, sns.endpoint, "DeleteQueue", json, &resp, &err);
        aws_response_clear(&resp);
    }
    free(sns.topic_arn);
    free(sns.queue_url);
    free(sns.queue_arn);
    free(sns.subscription_arn);
    s3client_free(sns.client);
    memset(&sns, 0, sizeof(sns));
    return 0;
}

/* A notice published with MessageStructure=json arrives with its subject, the three message
 * attributes and the structured message.
 *
 * What the queue receives as Message: AWS SNS delivers, for MessageStructure=json, the
 * protocol's own value ("sqs", else "default") to an SQS subscriber. fauxqs 1.9.2 ignores
 * MessageStructure (its publish.js never reads it) and delivers the Message parameter as
 * sent: the whole {"default":...,"email":...,"sms":...} object as a string. Both are accepted
 * here: Message is either m->json itself (AWS) or JSON whose "default" is m->json (fauxqs). */
static void test_sns_publish(void **state)
{
    (void)state;
    struct notify_message m = message();
    char id[128] = "untouched";
    struct s3_error err;
    if (notify_sns_publish(sns.client, sns.endpoint, sns.topic_arn, &m, id, sizeof(id), &err) != 0)
        fail_msg("notify_sns_publish: %s [%s]", err.message, err.code);
    assert_true(strlen(id) >= 16);

    char *envelope = sqs_receive_envelope();
    char *type = json_path_string(envelope, "Type", NULL),
         *mid = json_path_string(envelope, "MessageId", NULL);
    char *topic = json_path_string(envelope, "TopicArn", NULL),
         *subject = json_path_string(envelope, "Subject", NULL);
    char *msg = json_path_string(envelope, "Message", NULL);
    char *status = envelope_attribute(envelope, "status");
    char *bucket = envelope_attribute(envelope, "bucket");
    char *event = envelope_attribute(envelope, "event");
    if (!type || !mid || !topic || !subject || !msg || !status || !bucket || !event)
        fail_msg("incomplete SNS envelope: %s", envelope);
    assert_string_equal(type, "Notification");
    assert_string_equal(mid, id);
    assert_string_equal(topic, sns.topic_arn);
    assert_string_equal(subject, m.subject);
    assert_string_equal(status, "done");
    assert_string_equal(bucket, "photos-src");
    assert_string_equal(event, "resized");

    if (strcmp(msg, m.json) != 0) {
        char *def = json_path_string(msg, "default", NULL);
        char *email = json_path_string(msg, "email", NULL);
        char *sms = json_path_string(msg, "sms", NULL);
        if (!def || !email || !sms)
            fail_msg("Message is neither m->json nor {default,email,sms}: %s", msg);
        assert_string_equal(def, m.json);
        free(def);
        free(email);
        free(sms);
    }
    free(type);
    free(mid);
    free(topic);
    free(subject);
    free(msg);
    free(status);
    free(bucket);
    free(event);
    free(envelope);
}

/* SNS rejects an empty attribute value: an empty bucket is left out, the others still go. */
static void test_sns_publish_empty_attribute(void **state)
{
    (void)state;
    struct notify_message m = message();
    char empty[] = "";
    m.bucket = empty;
    struct s3_error err;
    if (notify_sns_publish(sns.client, sns.endpoint, sns.topic_arn, &m, NULL, 0, &err) != 0)
        fail_msg("notify_sns_publish: %s [%s]", err.message, err.code);
    char *envelope = sqs_receive_envelope();
    char *status = envelope_attribute(envelope, "status");
    char *event = envelope_attribute(envelope, "event");
    char *bucket = envelope_attribute(envelope, "bucket");
    if (!status || !event || bucket)
        fail_msg("attributes: want status and event only: %s", envelope);
    assert_string_equal(status, "done");
    assert_string_equal(event, "resized");
    free(status);
    free(event);
    free(envelope);
}

/* A topic that does not exist: NotFound, and a message that names the topic and the setting. */
static void test_sns_missing_topic(void **state)
{
    (void)state;
    const char *arn = "arn:aws:sns:us-east-1:000000000000:s3imgfs-no-such-topic";
    struct notify_message m = message();
    char id[64] = "untouched";
    struct s3_error err;
    assert_int_equal(notify_sns_publish(sns.client, sns.endpoint, arn, &m, id, sizeof(id), &err),
                     -1);
    assert_string_equal(id, "");
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "NotFound");
    assert_int_equal(err.http_status, 404);
    assert_false(err.retryable);
    if (!strstr(err.message, arn) || !strstr(err.message, "does not exist") ||
        !strstr(err.message, "sns_topic_arn"))
        fail_msg("message does not name the topic and the setting: %s", err.message);
    assert_null(strstr(err.message, sns.creds.secret_access_key));
    assert_null(strstr(err.message, sns.creds.access_key_id));
}

/* No server: a transport error that still names the topic, and may be retried. */
static void test_sns_unreachable(void **state)
{
    (void)state;
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%u", unused_port());
    struct notify_message m = message();
    struct s3_error err;
    assert_int_equal(notify_sns_publish(sns.client, endpoint, sns.topic_arn, &m, NULL, 0, &err),
                     -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_int_equal(err.http_status, 0);
    assert_true(err.retryable);
    if (!strstr(err.message, sns.topic_arn))
        fail_msg("message does not name the topic: %s", err.message);
}

/* ================================ webhook ================================ */

static struct {
    const char *url;    /* http://127.0.0.1:PORT/hook */
    const char *dir;    /* where the receiver stores requests */
    const char *secret; /* the receiver's secret */
    char origin[128];   /* http://127.0.0.1:PORT */
} wh;

static unsigned count_requests(void)
{
    DIR *d = opendir(wh.dir);
    if (!d)
        fail_msg("cannot open %s", wh.dir);
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && strstr(e->d_name, ".json"))
            n++;
    closedir(d);
    return n;
}

/* The request the receiver stored as number n (its file is complete before it answers). */
static char *stored_request(unsigned n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%06u.json", wh.dir, n);
    char *json = read_file(path);
    if (!json)
        fail_msg("the receiver stored no %s", path);
    return json;
}

/* Posts m to url; returns the stored request (malloc'd) and fills err. */
static char *post(const char *url, const char *secret, const struct notify_message *m, int *rc,
                  struct s3_error *err)
{
    unsigned before = count_requests();
    *rc = notify_webhook_post(url, secret, "", m, err);
    unsigned after = count_requests();
    if (after != before + 1)
        fail_msg("%u requests stored, want %u (rc %d: %s)", after, before + 1, *rc, err->message);
    return stored_request(after);
}

static char *header(const char *request, const char *name)
{
    return json_path_string(request, "headers", name, NULL);
}

static void assert_header(const char *request, const char *name, const char *want)
{
    char *v = header(request, name);
    if (!v || strcmp(v, want) != 0)
        fail_msg("header %s: got '%s', want '%s' in %s", name, v ? v : "(none)", want, request);
    free(v);
}

static int webhook_setup(void **state)
{
    (void)state;
    wh.url = getenv("S3IMGFS_TEST_WEBHOOK_URL");
    wh.dir = getenv("S3IMGFS_TEST_WEBHOOK_DIR");
    wh.secret = getenv("S3IMGFS_TEST_WEBHOOK_SECRET");
    if (!wh.secret || !*wh.secret)
        wh.secret = "s3imgfs-test-secret"; /* webhook-start.sh's default */
    const char *host = strstr(wh.url, "://");
    assert_non_null(host);
    size_t len = (size_t)(host + 3 - wh.url) + strcspn(host + 3, "/");
    snprintf(wh.origin, sizeof(wh.origin), "%.*s", (int)len, wh.url);
    return 0;
}

/* A signed POST: the receiver sees the body as sent, every header, and a valid signature. */
static void test_webhook_signed(void **state)
{
    (void)state;
    struct notify_message m = message();
    struct s3_error err;
    int rc;
    char *req = post(wh.url, wh.secret, &m, &rc, &err);
    if (rc != 0)
        fail_msg("notify_webhook_post: %s [%s]", err.message, err.code);
    char *path = json_path_string(req, "path", NULL),
         *method = json_path_string(req, "method", NULL);
    char *body = json_path_string(req, "body", NULL);
    assert_non_null(path);
    assert_non_null(strstr(wh.url, path)); /* the URL's path */
    assert_string_equal(method, "POST");
    assert_string_equal(body, m.json);
    assert_header(req, "content-type", "application/json");
    assert_header(req, "user-agent", "s3imgfs/" S3IMGFS_VERSION);
    assert_header(req, "x-s3imgfs-event", "resized");
    assert_header(req, "x-s3imgfs-status", "done");
    char *delivery = header(req, "x-s3imgfs-delivery");
    assert_non_null(delivery);
    if (!is_hex(delivery, 32))
        fail_msg("X-S3imgfs-Delivery is not 32 lowercase hex digits: %s", delivery);
    char *sig = header(req, "x-s3imgfs-signature");
    assert_non_null(sig);
    assert_true(strncmp(sig, "t=", 2) == 0);
    long long t = atoll(sig + 2);
    assert_true(llabs(t - (long long)time(NULL)) <= 5);
    assert_non_null(strstr(sig, ",v1="));
    char *expect = header(req, "expect");
    assert_null(expect); /* no 100-continue round trip */
    char *signature_ok = json_path_text(req, "signature_ok", NULL);
    if (!signature_ok || strcmp(signature_ok, "true") != 0)
        fail_msg("the receiver rejected the signature: %s", req);
    free(signature_ok);

    /* Every attempt has a delivery ID of its own. */
    char *again = post(wh.url, wh.secret, &m, &rc, &err);
    assert_int_equal(rc, 0);
    char *delivery2 = header(again, "x-s3imgfs-delivery");
    assert_non_null(delivery2);
    assert_string_not_equal(delivery, delivery2);
    assert_string_equal(literal_of(again, "signature_ok"), "true");
    free(delivery2);
    free(again);
    free(path);
    free(method);
    free(body);
    free(delivery);
    free(sig);
    free(req);
}

/* Signed with another secret: delivered (the sender cannot know), but the receiver's check
 * fails. */
static void test_webhook_wrong_secret(void **state)
{
    (void)state;
    struct notify_message m = message();
    struct s3_error err;
    int rc;
    char *req = post(wh.url, "not-the-receivers-secret", &m, &rc, &err);
    assert_int_equal(rc, 0);
    assert_string_equal(literal_of(req, "signature_ok"), "false");
    char *why = json_path_string(req, "signature_error", NULL);
    assert_non_null(why);
    assert_string_equal(why, "signature mismatch");
    free(why);
    free(req);
}

/* No secret: no signature header at all. */
static void test_webhook_unsigned(void **state)
{
    (void)state;
    struct notify_message m = message();
    struct s3_error err;
    int rc;
    char *req = post(wh.url, "", &m, &rc, &err);
    assert_int_equal(rc, 0);
    char *sig = header(req, "x-s3imgfs-signature");
    assert_null(sig);
    assert_string_equal(literal_of(req, "signature_ok"), "null");
    free(req);
}

/* The receiver's replay check (docs/webhook.md): a correct signature made 10 minutes ago is
 * refused. Sent with plain libcurl, since notify_webhook_post signs with the current time. */
static void test_webhook_stale_signature(void **state)
{
    (void)state;
    char sig[NOTIFY_SIGNATURE_MAX], line[NOTIFY_SIGNATURE_MAX + 32];
    assert_int_equal(notify_webhook_signature(wh.secret, (int64_t)time(NULL) - 600, msg_json,
                                              strlen(msg_json), sig, sizeof(sig)),
                     0);
    snprintf(line, sizeof(line), "X-S3imgfs-Signature: %s", sig);
    unsigned before = count_requests();
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *headers = curl_slist_append(NULL, line);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, wh.url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, msg_json);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    assert_int_equal(count_requests(), before + 1);
    char *req = stored_request(before + 1);
    assert_string_equal(literal_of(req, "signature_ok"), "false");
    char *why = json_path_string(req, "signature_error", NULL);
    assert_non_null(why);
    assert_non_null(strstr(why, "tolerance"));
    free(why);
    free(req);
}

/* An error answer: WebhookRejected naming the status and quoting the body; the URL's query
 * (which may hold a token) and the secret stay out of the message. */
static void test_webhook_rejected(void **state)
{
    (void)state;
    struct notify_message m = message();
    struct s3_error err;
    int rc;
    char url[256];
    snprintf(url, sizeof(url), "%s/status/500?token=hush-hush", wh.origin);
    free(post(url, wh.secret, &m, &rc, &err));
    assert_int_equal(rc, -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "WebhookRejected");
    assert_int_equal(err.http_status, 500);
    assert_true(err.retryable);
    char want[256];
    snprintf(want, sizeof(want), "webhook %s/status/500 answered HTTP 500", wh.origin);
    if (!strstr(err.message, want) || !strstr(err.message, "status 500 from the test receiver"))
        fail_msg("got '%s', want '%s: <body>'", err.message, want);
    assert_null(strstr(err.message, "hush-hush"));
    assert_null(strstr(err.message, wh.secret));

    /* A client error is not worth retrying; a redirect is not followed. */
    snprintf(url, sizeof(url), "%s/status/404", wh.origin);
    free(post(url, wh.secret, &m, &rc, &err));
    assert_int_equal(rc, -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "WebhookRejected");
    assert_int_equal(err.http_status, 404);
    assert_false(err.retryable);
    snprintf(url, sizeof(url), "%s/status/302", wh.origin);
    free(post(url, wh.secret, &m, &rc, &err));
    assert_int_equal(rc, -1);
    assert_int_equal(err.http_status, 302);
    if (!strstr(err.message, "HTTP 302") || !strstr(err.message, "redirects are not followed"))
        fail_msg("redirect: %s", err.message);
}

/* Nothing listens: WebhookUnreachable with curl's reason, retryable. Another scheme is refused
 * before any connection. */
static void test_webhook_unreachable(void **state)
{
    (void)state;
    struct notify_message m = message();
    struct s3_error err;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook?token=hush-hush", unused_port());
    assert_int_equal(notify_webhook_post(url, wh.secret, "", &m, &err), -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "WebhookUnreachable");
    assert_int_equal(err.http_status, 0);
    assert_true(err.retryable);
    if (!strstr(err.message, "127.0.0.1") || !strstr(err.message, "onnect"))
        fail_msg("no curl reason: %s", err.message);
    assert_null(strstr(err.message, "hush-hush"));

    assert_int_equal(notify_webhook_post("file:///etc/passwd", "", "", &m, &err), -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "WebhookUnreachable");
    assert_false(err.retryable);
}

/* ================================ e-mail ================================ */

static struct {
    const char *url;
    const char *maildir;
} mail;

/* Names in Maildir new/, one per line between newlines ("\nA\nB\n"), malloc'd. */
static char *maildir_names(void)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/new", mail.maildir);
    size_t cap = 4096, len = 1;
    char *out = malloc(cap);
    assert_non_null(out);
    strcpy(out, "\n");
    DIR *d = opendir(path);
    if (d) { /* created with the first mail */
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            size_t n = strlen(e->d_name);
            if (len + n + 2 > cap) {
                cap = 2 * (len + n + 2);
                out = realloc(out, cap);
                assert_non_null(out);
            }
            memcpy(out + len, e->d_name, n);
            out[len + n] = '\n';
            len += n + 1;
            out[len] = '\0';
        }
        closedir(d);
    }
    return out;
}

/* The one mail in new/ that is not in `before`, read whole (LF line ends, as stored). */
static char *new_mail(const char *before)
{
    char *now = maildir_names(), *found = NULL;
    for (char *p = now + 1; *p;) {
        char *nl = strchr(p, '\n');
        char key[300];
        snprintf(key, sizeof(key), "\n%.*s\n", (int)(nl - p), p);
        if (!strstr(before, key)) {
            if (found)
                fail_msg("more than one new mail in %s/new", mail.maildir);
            char path[800];
            snprintf(path, sizeof(path), "%s/new/%.*s", mail.maildir, (int)(nl - p), p);
            found = read_file(path);
            assert_non_null(found);
        }
        p = nl + 1;
    }
    free(now);
    if (!found)
        fail_msg("no new mail in %s/new", mail.maildir);
    return found;
}

/* The value of header `name` in the mail's head, unfolded (line breaks before white space
 * removed, as RFC 5322 says), malloc'd, or NULL. */
static char *mail_header(const char *msg, const char *name)
{
    size_t nl = strlen(name);
    const char *end = strstr(msg, "\n\n");
    assert_non_null(end);
    for (const char *p = msg; p && p < end; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncasecmp(p, name, nl) != 0 || p[nl] != ':')
            continue;
        const char *v = p + nl + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        char *out = malloc(strlen(v) + 1), *o = out;
        assert_non_null(out);
        for (; v < end + 1; v++) {
            if (*v == '\r')
                continue;
            if (*v == '\n') {
                if (v[1] == ' ' || v[1] == '\t')
                    continue;
                break;
            }
            *o++ = *v;
        }
        *o = '\0';
        return out;
    }
    return NULL;
}

/* The raw lines of header `name` as stored (folds kept), malloc'd. */
static char *mail_header_raw(const char *msg, const char *name)
{
    size_t nl = strlen(name);
    for (const char *p = msg; *p && *p != '\n'; p = strchr(p, '\n') + 1) {
        if (strncasecmp(p, name, nl) != 0 || p[nl] != ':')
            continue;
        const char *e = strchr(p, '\n');
        while (e[1] == ' ' || e[1] == '\t')
            e = strchr(e + 1, '\n');
        return strndup(p, (size_t)(e - p + 1));
    }
    return NULL;
}

/* Decodes RFC 2047 "=?charset?B|Q?...?=" words (UTF-8 only here); white space between two
 * encoded words is dropped, other text kept. */
static char *rfc2047_decode(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    assert_non_null(out);
    bool after_word = false;
    while (*s) {
        if (strncasecmp(s, "=?utf-8?", 8) == 0 &&
            (s[8] == 'B' || s[8] == 'b' || s[8] == 'Q' || s[8] == 'q') && s[9] == '?') {
            const char *text = s + 10, *end = strstr(text, "?=");
            assert_non_null(end);
            if (s[8] == 'B' || s[8] == 'b') {
                unsigned char dec[256];
                int len = (int)(end - text);
                assert_true(len % 4 == 0 && len / 4 * 3 < (int)sizeof(dec));
                int n = EVP_DecodeBlock(dec, (const unsigned char *)text, len);
                assert_true(n >= 0);
                for (const char *q = end - 1; q >= text && *q == '='; q--)
                    n--;
                memcpy(o, dec, (size_t)n);
                o += n;
            } else {
                for (const char *q = text; q < end; q++) {
                    if (*q == '_') {
                        *o++ = ' ';
                    } else if (*q == '=' && isxdigit((unsigned char)q[1]) &&
                               isxdigit((unsigned char)q[2])) {
                        char hex[3] = {q[1], q[2], 0};
                        *o++ = (char)strtol(hex, NULL, 16);
                        q += 2;
                    } else {
                        *o++ = *q;
                    }
                }
            }
            s = end + 2;
            after_word = true;
            continue;
        }
        if (after_word && (*s == ' ' || *s == '\t')) {
            size_t ws = strspn(s, " \t");
            if (strncasecmp(s + ws, "=?utf-8?", 8) == 0) {
                s += ws;
                continue;
            }
        }
        after_word = false;
        *o++ = *s++;
    }
    *o = '\0';
    return out;
}

/* Decodes a quoted-printable body (LF or CRLF line ends; soft breaks "=" at a line end) into
 * text with LF line ends. */
static char *qp_decode(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    assert_non_null(out);
    while (*s) {
        if (*s == '\r' && s[1] == '\n') {
            s++;
            continue;
        }
        if (*s == '=') {
            if (s[1] == '\n') {
                s += 2;
                continue;
            }
            if (s[1] == '\r' && s[2] == '\n') {
                s += 3;
                continue;
            }
            if (isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2])) {
                char hex[3] = {s[1], s[2], 0};
                *o++ = (char)strtol(hex, NULL, 16);
                s += 3;
                continue;
            }
            fail_msg("bad quoted-printable escape at: %.20s", s);
        }
        *o++ = *s++;
    }
    *o = '\0';
    return out;
}

/* text with CRLF turned into LF. */
static char *lf_only(const char *s)
{
    char *out = strdup(s), *o = out;
    assert_non_null(out);
    for (; *s; s++)
        if (!(*s == '\r' && s[1] == '\n'))
            *o++ = *s;
    *o = '\0';
    return out;
}

static int mail_setup(void **state)
{
    (void)state;
    mail.url = getenv("S3IMGFS_TEST_SMTP_URL");
    mail.maildir = getenv("S3IMGFS_TEST_MAILDIR");
    return 0;
}

/* One mail to two recipients, with a subject that needs RFC 2047 (two encoded words) and a
 * body that needs quoted-printable: non-ASCII, '=', a line that is only ".", lines starting
 * with '.', a 200-character line, trailing white space, a tab, a CRLF line end. */
static void test_smtp_send(void **state)
{
    (void)state;
    char subject[] = "s3imgfs: 3 files resized \xe2\x80\x94 r\xc3\xa9sum\xc3\xa9 "
                     "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x8e\x89 photos/caf\xc3\xa9.jpg";
    char text[1024];
    char long_line[201];
    for (int i = 0; i < 200; i++)
        long_line[i] = (char)('a' + i % 26);
    long_line[200] = '\0';
    long_line[150] = '='; /* an escape near a soft break */
    snprintf(text, sizeof(text),
             "Files resized in photos-src:\n"
             "  caf\xc3\xa9.jpg \xe2\x9c\x93 (1024x768)\n"
             ".hidden starts with a dot\n"
             ".\n"
             "..two dots\n"
             "%s\n"
             "a=b == c =20 literal\n"
             "trailing spaces   \n"
             "tab\there and trailing tab\t\n"
             "crlf line\r\n"
             "\n"
             "last line \xf0\x9f\x8e\x89\n",
             long_line);
    struct notify_message m = message();
    m.subject = subject;
    m.text = text;
    const char *to[] = {"ops@example.com", "Dev Team <dev@example.org>"};
    char *before = maildir_names();
    struct s3_error err;
    if (notify_smtp_send(mail.url, "", NULL, "", "s3imgfs@example.com", to, 2, &m, &err) != 0)
        fail_msg("notify_smtp_send: %s [%s]", err.message, err.code);
    char *msg = new_mail(before);
    free(before);

    char *from = mail_header(msg, "From"), *rcpt_to = mail_header(msg, "To");
    char *x_rcpt = mail_header(msg, "X-RcptTo"), *x_from = mail_header(msg, "X-MailFrom");
    char *subj = mail_header(msg, "Subject"), *mid = mail_header(msg, "Message-ID");
    char *date = mail_header(msg, "Date"), *ct = mail_header(msg, "Content-Type");
    char *cte = mail_header(msg, "Content-Transfer-Encoding");
    char *mime = mail_header(msg, "MIME-Version");
    char *status = mail_header(msg, "X-S3imgfs-Status"),
         *event = mail_header(msg, "X-S3imgfs-Event");
    if (!from || !rcpt_to || !x_rcpt || !x_from || !subj || !mid || !date || !ct || !cte || !mime ||
        !status || !event)
        fail_msg("a header is missing in:\n%s", msg);
    assert_string_equal(from, "s3imgfs@example.com");
    assert_string_equal(rcpt_to, "ops@example.com, Dev Team <dev@example.org>");
    /* Both recipients were in the envelope (aiosmtpd stores one copy, with X-RcptTo). */
    assert_string_equal(x_rcpt, "ops@example.com, dev@example.org");
    assert_string_equal(x_from, "s3imgfs@example.com");
    assert_string_equal(mime, "1.0");
    assert_string_equal(ct, "text/plain; charset=utf-8");
    assert_string_equal(cte, "quoted-printable");
    assert_string_equal(status, "done");
    assert_string_equal(event, "resized");
    /* <32 hex digits@s3imgfs> */
    assert_int_equal(strlen(mid), 1 + 32 + strlen("@s3imgfs>"));
    assert_true(mid[0] == '<' && strcmp(mid + 33, "@s3imgfs>") == 0);
    /* RFC 5322 date, close to now. */
    time_t when = curl_getdate(date, NULL);
    assert_true(when != (time_t)-1);
    assert_true(llabs((long long)(when - time(NULL))) < 120);
    assert_non_null(strstr(date, "+0000"));

    /* The subject: encoded words only (7-bit), lines under 76, decoding to the original. */
    assert_true(strncmp(subj, "=?UTF-8?B?", 10) == 0);
    char *raw_subject = mail_header_raw(msg, "Subject");
    assert_non_null(strstr(raw_subject, "\n ")); /* folded: more than one word */
    for (char *line = raw_subject; *line;) {
        size_t n = strcspn(line, "\n");
        assert_true(n <= 76);
        line += n + (line[n] ? 1 : 0);
    }
    for (const unsigned char *p = (const unsigned char *)subj; *p; p++)
        assert_true(*p < 0x80);
    char *decoded_subject = rfc2047_decode(subj);
    assert_string_equal(decoded_subject, subject);

    /* The body: 7-bit lines of at most 76 characters, decoding to the text. */
    const char *body = strstr(msg, "\n\n") + 2;
    for (const char *line = body; *line;) {
        size_t n = strcspn(line, "\n");
        size_t len = n && line[n - 1] == '\r' ? n - 1 : n;
        if (len > 76)
            fail_msg("body line of %zu characters: %.*s", len, (int)n, line);
        for (size_t i = 0; i < len; i++)
            assert_true((unsigned char)line[i] < 0x80);
        if (len && (line[len - 1] == ' ' || line[len - 1] == '\t'))
            fail_msg("white space at a line end: %.*s", (int)n, line);
        line += n + (line[n] ? 1 : 0);
    }
    assert_non_null(strstr(body, "\n.hidden starts with a dot\n")); /* curl dot-stuffed it */
    assert_non_null(strstr(body, "\n.\n"));
    assert_non_null(strstr(body, "\n..two dots\n"));
    char *decoded = qp_decode(body), *want = lf_only(text);
    assert_string_equal(decoded, want);

    free(decoded);
    free(want);
    free(decoded_subject);
    free(raw_subject);
    free(from);
    free(rcpt_to);
    free(x_rcpt);
    free(x_from);
    free(subj);
    free(mid);
    free(date);
    free(ct);
    free(cte);
    free(mime);
    free(status);
    free(event);
    free(msg);
}

/* An ASCII subject stays readable: not encoded, folded at a space when long. */
static void test_smtp_ascii_subject(void **state)
{
    (void)state;
    char subject[] = "s3imgfs: 120 files resized, 3 failed in photos-src between 10:00 and "
                     "10:05 (see the body)";
    struct notify_message m = message();
    m.subject = subject;
    const char *to[] = {"ops@example.com"};
    char *before = maildir_names();
    struct s3_error err;
    if (notify_smtp_send(mail.url, NULL, NULL, NULL, "s3imgfs@example.com", to, 1, &m, &err) != 0)
        fail_msg("notify_smtp_send: %s [%s]", err.message, err.code);
    char *msg = new_mail(before);
    free(before);
    char *raw = mail_header_raw(msg, "Subject");
    assert_non_null(strstr(raw, "\n ")); /* folded */
    for (char *line = raw; *line;) {
        size_t n = strcspn(line, "\n");
        assert_true(n <= 78);
        line += n + (line[n] ? 1 : 0);
    }
    char *subj = mail_header(msg, "Subject");
    assert_string_equal(subj, subject);
    char *to_header = mail_header(msg, "To");
    assert_string_equal(to_header, "ops@example.com");
    free(to_header);
    free(subj);
    free(raw);
    free(msg);
}

/* The server refuses a recipient: SmtpFailed with the server's reply, not retried (5xx), and
 * nothing delivered. */
static void test_smtp_rejected(void **state)
{
    (void)state;
    struct notify_message m = message();
    const char *to[] = {"x@@example.com"};
    char *before = maildir_names();
    struct s3_error err;
    assert_int_equal(
        notify_smtp_send(mail.url, NULL, NULL, NULL, "s3imgfs@example.com", to, 1, &m, &err), -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "SmtpFailed");
    assert_false(err.retryable);
    if (!strstr(err.message, "553") || !strstr(err.message, "malformed address"))
        fail_msg("no server reply in: %s", err.message);
    char *after = maildir_names();
    assert_string_equal(after, before);
    free(after);
    free(before);
}

/* With a user, TLS is required: this server offers no STARTTLS, so nothing is sent (and the
 * password never travels in clear or shows in the message). */
static void test_smtp_user_requires_tls(void **state)
{
    (void)state;
    struct notify_message m = message();
    const char *to[] = {"ops@example.com"};
    char *before = maildir_names();
    struct s3_error err;
    assert_int_equal(notify_smtp_send(mail.url, "mailer", "pa55-word-xyz", NULL,
                                      "s3imgfs@example.com", to, 1, &m, &err),
                     -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "SmtpFailed");
    assert_false(err.retryable);
    if (!strstr(err.message, "STARTTLS"))
        fail_msg("no STARTTLS hint in: %s", err.message);
    assert_null(strstr(err.message, "pa55-word-xyz"));
    char *after = maildir_names();
    assert_string_equal(after, before);
    free(after);
    free(before);
}

/* No server: SmtpFailed with curl's reason, retryable; a password in the URL is not shown. */
static void test_smtp_unreachable(void **state)
{
    (void)state;
    struct notify_message m = message();
    const char *to[] = {"ops@example.com"};
    char url[128];
    snprintf(url, sizeof(url), "smtp://u:pa55-word-xyz@127.0.0.1:%u", unused_port());
    struct s3_error err;
    assert_int_equal(
        notify_smtp_send(url, NULL, NULL, NULL, "s3imgfs@example.com", to, 1, &m, &err), -1);
    print_message("%s: %s\n", err.code, err.message);
    assert_string_equal(err.code, "SmtpFailed");
    assert_true(err.retryable);
    if (!strstr(err.message, "127.0.0.1") || !strstr(err.message, "onnect"))
        fail_msg("no curl reason: %s", err.message);
    assert_null(strstr(err.message, "pa55-word-xyz"));
}

int main(void)
{
    fixture_require("S3IMGFS_TEST_SNS_ENDPOINT");
    fixture_require("S3IMGFS_TEST_WEBHOOK_URL");
    fixture_require("S3IMGFS_TEST_WEBHOOK_DIR");
    fixture_require("S3IMGFS_TEST_SMTP_URL");
    fixture_require("S3IMGFS_TEST_MAILDIR");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest sns_tests[] = {
        cmocka_unit_test(test_sns_publish),
        cmocka_unit_test(test_sns_publish_empty_attribute),
        cmocka_unit_test(test_sns_missing_topic),
        cmocka_unit_test(test_sns_unreachable),
    };
    const struct CMUnitTest webhook_tests[] = {
        cmocka_unit_test(test_webhook_signed),   cmocka_unit_test(test_webhook_wrong_secret),
        cmocka_unit_test(test_webhook_unsigned), cmocka_unit_test(test_webhook_stale_signature),
        cmocka_unit_test(test_webhook_rejected), cmocka_unit_test(test_webhook_unreachable),
    };
    const struct CMUnitTest mail_tests[] = {
        cmocka_unit_test(test_smtp_send),        cmocka_unit_test(test_smtp_ascii_subject),
        cmocka_unit_test(test_smtp_rejected),    cmocka_unit_test(test_smtp_user_requires_tls),
        cmocka_unit_test(test_smtp_unreachable),
    };
    int failed = cmocka_run_group_tests_name("sns", sns_tests, sns_setup, sns_teardown);
    failed += cmocka_run_group_tests_name("webhook", webhook_tests, webhook_setup, NULL);
    failed += cmocka_run_group_tests_name("smtp", mail_tests, mail_setup, NULL);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
