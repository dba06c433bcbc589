/* The generic signed AWS request of s3client (aws_query_call, aws_request_send) against fauxqs,
 * the local SNS/SQS emulator started by scripts/servers/fauxqs-start.sh
 * (S3IMGFS_TEST_SNS_ENDPOINT): SNS in the Query protocol (form-encoded POST), SQS in the JSON
 * protocol (the only one fauxqs 1.9.2 speaks for SQS). A message published to a topic goes
 * through an SQS subscription and is read back, so the form encoding of every parameter is
 * checked end to end; errors answered in XML (SNS) and JSON (SQS) are checked for their codes.
 * fauxqs checks no signatures: the signer is tested by the unit tests and against radosgw. */
#include "fauxqs_calls.h"
#include "json_path.h"
#include "s3_fixture.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* SNS's limit on a message: 256 KiB (262144 bytes) of UTF-8. */
#define SNS_MAX_MESSAGE 262144

/* Subject and message of the publish test. The message holds what form encoding must carry:
 * UTF-8 (2, 3 and 4 byte sequences), spaces, the form's own delimiters & = +, a literal %20 and
 * a lone %, CR LF and LF line ends, a tab, and characters JSON escapes (" \ /). */
static const char subject_text[] = "s3imgfs upload done: a+b=c & 100% ok";
static const char message_text[] = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xf0\x9f\x8e\x89\n"
                                   "key=a&b=c+d e%20f 100%\r\n"
                                   "\ttab \"quoted\" back\\slash /path?x=1#frag";

static struct {
    struct s3client *client;
    struct aws_credentials creds;
    const char *endpoint;
    char topic_name[80];
    char queue_name[80];
    char *topic_arn;
    char *queue_url;
    char *queue_arn;
    char *subscription_arn;
    char *message_id;
} t;

/* ---- requests ---- */

static struct aws_header param(const char *name, const char *value)
{
    return (struct aws_header){name, value};
}

static char *sns_ok(const char *action, const struct aws_header *params, size_t n, const char *want)
{
    return fauxqs_sns_ok(t.client, t.endpoint, action, params, n, want);
}

static char *sqs_ok(const char *action, const char *json)
{
    return fauxqs_sqs_ok(t.client, t.endpoint, action, json);
}

/* ---- setup ---- */

static int group_setup(void **state)
{
    (void)state;
    t.endpoint = getenv("S3IMGFS_TEST_SNS_ENDPOINT");
    snprintf(t.creds.access_key_id, sizeof(t.creds.access_key_id), "AKIDFAUXQSTEST");
    snprintf(t.creds.secret_access_key, sizeof(t.creds.secret_access_key), "fauxqs-secret");
    struct s3client_options o = {.region = "us-east-1",
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &t.creds,
                                 .max_attempts = 2};
    struct s3_error err;
    t.client = s3client_new(&o, &err);
    if (!t.client)
        fail_msg("s3client_new: %s", err.message);
    unsigned salt = (unsigned)time(NULL) % 100000;
    snprintf(t.topic_name, sizeof(t.topic_name), "s3imgfs-query-%d-%u", (int)getpid(), salt);
    snprintf(t.queue_name, sizeof(t.queue_name), "s3imgfs-query-q-%d-%u", (int)getpid(), salt);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    struct aws_response resp;
    struct s3_error err;
    if (t.subscription_arn) {
        struct aws_header p[] = {param("SubscriptionArn", t.subscription_arn)};
        if (aws_query_call(t.client, "sns", t.endpoint, "Unsubscribe", SNS_VERSION, p, 1, &resp,
                           &err) != 0)
            fprintf(stderr, "cleanup: %s\n", err.message);
        aws_response_clear(&resp);
    }
    if (t.topic_arn) {
        struct aws_header p[] = {param("TopicArn", t.topic_arn)};
        if (aws_query_call(t.client, "sns", t.endpoint, "DeleteTopic", SNS_VERSION, p, 1, &resp,
                           &err) != 0)
            fprintf(stderr, "cleanup: %s\n", err.message);
        aws_response_clear(&resp);
    }
    if (t.queue_url) {
        char json[512];
        snprintf(json, sizeof(json), "{\"QueueUrl\":\"%s\"}", t.queue_url);
        if (fauxqs_sqs_call(t.client, t.endpoint, "DeleteQueue", json, &resp, &err) != 0)
            fprintf(stderr, "cleanup: %s\n", err.message);
        aws_response_clear(&resp);
    }
    free(t.topic_arn);
    free(t.queue_url);
    free(t.queue_arn);
    free(t.subscription_arn);
    free(t.message_id);
    s3client_free(t.client);
    memset(&t, 0, sizeof(t));
    return 0;
}

/* ---- the tests ---- */

/* 0. The JSON reader the checks rely on (tests/integration/json_path.c, jansson). */
static void test_json_reader(void **state)
{
    (void)state;
    const char *doc =
        "{\"a\":\"key\",\"key\" : \"v\\u00e9\\ud83c\\udf89\\n\\\"\\\\\\/\","
        "\"o\":{\"x\":{\"Type\":\"String\",\"Value\":\"done\"}},\"l\":[1,{\"b\":true}]}";
    char *v = json_path_string(doc, "key", NULL);
    assert_non_null(v);
    assert_string_equal(v, "v\xc3\xa9\xf0\x9f\x8e\x89\n\"\\/");
    free(v);
    v = json_path_string(doc, "o", "x", "Value", NULL);
    assert_non_null(v);
    assert_string_equal(v, "done");
    free(v);
    v = json_path_text(doc, "l", "1", "b", NULL);
    assert_non_null(v);
    assert_string_equal(v, "true");
    free(v);
    assert_null(json_path_string(doc, "missing", NULL));
    assert_null(json_path_string(doc, "o", NULL)); /* not a string */
    assert_null(json_path_string(doc, "l", "7", NULL));
    assert_null(json_path_string("{\"k\":\"\\x\"}", "k", NULL)); /* a bad escape: no document */
}

/* 1. SNS CreateTopic (Query protocol) answers the topic's ARN. */
static void test_sns_create_topic(void **state)
{
    (void)state;
    struct aws_header p[] = {param("Name", t.topic_name)};
    t.topic_arn = sns_ok("CreateTopic", p, 1, "TopicArn");
    char want[160];
    snprintf(want, sizeof(want), "arn:aws:sns:us-east-1:000000000000:%s", t.topic_name);
    assert_string_equal(t.topic_arn, want);

    /* CreateTopic is idempotent: the same name gives the same ARN. */
    char *again = sns_ok("CreateTopic", p, 1, "TopicArn");
    assert_string_equal(again, t.topic_arn);
    free(again);
}

/* 2. SQS CreateQueue and GetQueueAttributes (JSON protocol). */
static void test_sqs_create_queue(void **state)
{
    (void)state;
    char json[512];
    snprintf(json, sizeof(json), "{\"QueueName\":\"%s\"}", t.queue_name);
    char *body = sqs_ok("CreateQueue", json);
    t.queue_url = json_path_string(body, "QueueUrl", NULL);
    if (!t.queue_url)
        fail_msg("CreateQueue: no QueueUrl in %s", body);
    free(body);
    /* Used as returned (fauxqs names a host of its own, sqs.us-east-1.localhost). */
    size_t ul = strlen(t.queue_url), nl = strlen(t.queue_name);
    assert_true(strncmp(t.queue_url, "http", 4) == 0);
    assert_true(ul > nl + 1 && t.queue_url[ul - nl - 1] == '/');
    assert_string_equal(t.queue_url + ul - nl, t.queue_name);
    assert_null(strpbrk(t.queue_url, "\"\\")); /* pasted into JSON below as is */

    snprintf(json, sizeof(json), "{\"QueueUrl\":\"%s\",\"AttributeNames\":[\"QueueArn\"]}",
             t.queue_url);
    body = sqs_ok("GetQueueAttributes", json);
    t.queue_arn = json_path_string(body, "Attributes", "QueueArn", NULL);
    if (!t.queue_arn)
        fail_msg("GetQueueAttributes: no QueueArn in %s", body);
    free(body);
    char want[160];
    snprintf(want, sizeof(want), "arn:aws:sqs:us-east-1:000000000000:%s", t.queue_name);
    assert_string_equal(t.queue_arn, want);
}

/* 3. Subscribe the queue to the topic, then Publish a message that needs form encoding. */
static void test_sns_subscribe_publish(void **state)
{
    (void)state;
    if (!t.topic_arn || !t.queue_arn)
        skip();
    struct aws_header sub[] = {
        param("TopicArn", t.topic_arn),
        param("Protocol", "sqs"),
        param("Endpoint", t.queue_arn),
        param("ReturnSubscriptionArn", "true"),
        param("Attributes.entry.1.key", "RawMessageDelivery"),
        param("Attributes.entry.1.value", "false"),
    };
    t.subscription_arn = sns_ok("Subscribe", sub, sizeof(sub) / sizeof(sub[0]), "SubscriptionArn");
    assert_true(strncmp(t.subscription_arn, t.topic_arn, strlen(t.topic_arn)) == 0);
    assert_int_equal(t.subscription_arn[strlen(t.topic_arn)], ':');

    struct aws_header pub[] = {
        param("TopicArn", t.topic_arn),
        param("Subject", subject_text),
        param("Message", message_text),
        param("MessageAttributes.entry.1.Name", "status"),
        param("MessageAttributes.entry.1.Value.DataType", "String"),
        param("MessageAttributes.entry.1.Value.StringValue", "done"),
    };
    t.message_id = sns_ok("Publish", pub, sizeof(pub) / sizeof(pub[0]), "MessageId");
    assert_true(strlen(t.message_id) >= 16);
}

/* 4. The notification arrives in the queue as the SNS envelope, every field intact. */
static void test_sqs_receive_envelope(void **state)
{
    (void)state;
    if (!t.queue_url || !t.message_id)
        skip();
    char json[512];
    snprintf(json, sizeof(json),
             "{\"QueueUrl\":\"%s\",\"MaxNumberOfMessages\":1,\"WaitTimeSeconds\":1,"
             "\"VisibilityTimeout\":30}",
             t.queue_url);
    char *body = NULL, *envelope = NULL;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        body = sqs_ok("ReceiveMessage", json);
        envelope = json_path_string(body, "Messages", "0", "Body", NULL);
        if (envelope)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= 5)
            fail_msg("no message in %s after 5 s (last answer %s)", t.queue_name, body);
        free(body);
    }

    char *receipt = json_path_string(body, "Messages", "0", "ReceiptHandle", NULL);
    assert_non_null(receipt);
    free(body);

    char *type = json_path_string(envelope, "Type", NULL);
    char *id = json_path_string(envelope, "MessageId", NULL);
    char *topic = json_path_string(envelope, "TopicArn", NULL);
    char *subject = json_path_string(envelope, "Subject", NULL);
    char *message = json_path_string(envelope, "Message", NULL);
    char *status = json_path_string(envelope, "MessageAttributes", "status", "Value", NULL);
    char *status_type = json_path_string(envelope, "MessageAttributes", "status", "Type", NULL);
    if (!type || !id || !topic || !subject || !message || !status || !status_type)
        fail_msg("incomplete SNS envelope: %s", envelope);
    assert_string_equal(type, "Notification");
    assert_string_equal(id, t.message_id);
    assert_string_equal(topic, t.topic_arn);
    assert_string_equal(subject, subject_text);
    assert_string_equal(message, message_text);
    assert_int_equal(strlen(message), strlen(message_text));
    assert_string_equal(status, "done");
    assert_string_equal(status_type, "String");
    free(type);
    free(id);
    free(topic);
    free(subject);
    free(message);
    free(status);
    free(status_type);
    free(envelope);

    /* Delete it, so the queue is empty again. */
    assert_null(strpbrk(receipt, "\"\\"));
    char del[2048];
    snprintf(del, sizeof(del), "{\"QueueUrl\":\"%s\",\"ReceiptHandle\":\"%s\"}", t.queue_url,
             receipt);
    free(sqs_ok("DeleteMessage", del));
    free(receipt);
}

/* 5a. Publish to a topic that does not exist: SNS's XML error, code and message parsed.
 * fauxqs answers like SNS does: 404, <Code>NotFound</Code>, "Topic does not exist". */
static void test_sns_publish_missing_topic(void **state)
{
    (void)state;
    struct aws_header p[] = {
        param("TopicArn", "arn:aws:sns:us-east-1:000000000000:s3imgfs-no-such-topic"),
        param("Message", "nobody listens"),
    };
    struct aws_response resp;
    struct s3_error err;
    int rc = aws_query_call(t.client, "sns", t.endpoint, "Publish", SNS_VERSION, p, 2, &resp, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.http_status, 404);
    assert_int_equal(resp.status, 404);
    assert_string_equal(err.code, "NotFound");
    assert_false(err.retryable);
    if (!strstr(err.message, "Topic does not exist"))
        fail_msg("server's message missing from: %s", err.message);
    assert_true(err.request_id[0] != '\0');
    assert_non_null(resp.body); /* the response is filled on failure too */
    assert_non_null(strstr(resp.body, "<Code>NotFound</Code>"));
    aws_response_clear(&resp);
}

/* 5b. A message of exactly 262144 bytes is accepted, one byte more is InvalidParameter (400). */
static void test_sns_publish_too_long(void **state)
{
    (void)state;
    if (!t.topic_arn)
        skip();
    /* A topic without subscribers, so nothing lands in the queue. */
    char name[100];
    snprintf(name, sizeof(name), "%s-big", t.topic_name);
    struct aws_header c[] = {param("Name", name)};
    char *arn = sns_ok("CreateTopic", c, 1, "TopicArn");

    char *big = malloc(SNS_MAX_MESSAGE + 2);
    assert_non_null(big);
    memset(big, 'x', SNS_MAX_MESSAGE + 1);
    big[SNS_MAX_MESSAGE] = '\0';
    struct aws_header p[] = {param("TopicArn", arn), param("Message", big)};
    char *id = sns_ok("Publish", p, 2, "MessageId");
    free(id);

    big[SNS_MAX_MESSAGE] = 'x';
    big[SNS_MAX_MESSAGE + 1] = '\0';
    struct aws_response resp;
    struct s3_error err;
    int rc = aws_query_call(t.client, "sns", t.endpoint, "Publish", SNS_VERSION, p, 2, &resp, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.http_status, 400);
    assert_string_equal(err.code, "InvalidParameter");
    assert_false(err.retryable);
    if (!strstr(err.message, "Message too long"))
        fail_msg("server's message missing from: %s", err.message);
    aws_response_clear(&resp);
    free(big);

    struct aws_header d[] = {param("TopicArn", arn)};
    sns_ok("DeleteTopic", d, 1, NULL);
    free(arn);
}

/* 5c. An SQS call on a missing queue: the JSON error's __type, after the '#', becomes the code.
 * fauxqs answers as SQS's JSON protocol does: 400,
 * {"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not
 * exist."} and x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender. */
static void test_sqs_missing_queue(void **state)
{
    (void)state;
    char json[512];
    const char *base = t.queue_url ? t.queue_url : "http://sqs.us-east-1.localhost/0/x";
    snprintf(json, sizeof(json), "{\"QueueUrl\":\"%s-missing\",\"AttributeNames\":[\"All\"]}",
             base);
    struct aws_response resp;
    struct s3_error err;
    assert_int_equal(fauxqs_sqs_call(t.client, t.endpoint, "GetQueueAttributes", json, &resp, &err),
                     -1);
    assert_int_equal(err.http_status, 400);
    assert_string_equal(err.code, "QueueDoesNotExist");
    assert_false(err.retryable);
    if (!strstr(err.message, "The specified queue does not exist."))
        fail_msg("server's message missing from: %s", err.message);
    assert_true(err.request_id[0] != '\0');
    const char *qe = aws_response_header(&resp, "x-amzn-query-error");
    assert_non_null(qe);
    assert_string_equal(qe, "AWS.SimpleQueueService.NonExistentQueue;Sender");
    aws_response_clear(&resp);
}

/* 5d. An SQS action the server does not know: the JSON error again, another code. */
static void test_sqs_unknown_action(void **state)
{
    (void)state;
    struct aws_response resp;
    struct s3_error err;
    assert_int_equal(fauxqs_sqs_call(t.client, t.endpoint, "NoSuchAction", "{}", &resp, &err), -1);
    assert_int_equal(err.http_status, 400);
    assert_string_equal(err.code, "InvalidAction");
    assert_non_null(strstr(err.message, "NoSuchAction"));
    aws_response_clear(&resp);
}

int main(void)
{
    fixture_require("S3IMGFS_TEST_SNS_ENDPOINT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_reader),
        cmocka_unit_test(test_sns_create_topic),
        cmocka_unit_test(test_sqs_create_queue),
        cmocka_unit_test(test_sns_subscribe_publish),
        cmocka_unit_test(test_sqs_receive_envelope),
        cmocka_unit_test(test_sns_publish_missing_topic),
        cmocka_unit_test(test_sns_publish_too_long),
        cmocka_unit_test(test_sqs_missing_queue),
        cmocka_unit_test(test_sqs_unknown_action),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
