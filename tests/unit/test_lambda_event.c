/* lambda: S3 event notifications as the function receives them (the AWS documentation's
 * examples, radosgw's and MinIO's webhook bodies, SNS, SQS and EventBridge wrappers,
 * s3:TestEvent), URL-decoding of keys, the skip rules and malformed documents; and the
 * configuration from S3IMGFS_* environment variables (lambda_config_from_env). */
#include "lambda.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------------------------------------ */
/* A fake environment for lambda_config_from_env                                                */

struct fake_env {
    const char *const *vars; /* "NAME=value", NULL-terminated */
};

static const char *fake_getenv(void *ctx, const char *name)
{
    const struct fake_env *e = ctx;
    size_t n = strlen(name);
    for (const char *const *v = e->vars; *v; v++)
        if (strncmp(*v, name, n) == 0 && (*v)[n] == '=')
            return *v + n + 1;
    return NULL;
}

#define CREDS                                                                                      \
    "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",                                                      \
        "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_REGION=us-east-1"

static struct config *cfg_of(const char *const *vars)
{
    struct fake_env e = {vars};
    struct s3_error err;
    struct config *cfg = lambda_config_from_env(fake_getenv, &e, &err);
    if (!cfg)
        fail_msg("lambda_config_from_env: %s [%s]", err.message, err.code);
    return cfg;
}

/* source bucket "src" (whole bucket), destination "dst" */
static struct config *cfg_plain(void)
{
    static const char *const vars[] = {CREDS, "S3IMGFS_SOURCE_BUCKET=src",
                                       "S3IMGFS_DESTINATION_BUCKET=dst", NULL};
    return cfg_of(vars);
}

/* any source bucket, destination "dst" */
static struct config *cfg_any_source(void)
{
    static const char *const vars[] = {CREDS, "S3IMGFS_DESTINATION_BUCKET=dst", NULL};
    return cfg_of(vars);
}

static void parse_ok(const struct config *cfg, const char *json, struct lambda_event *ev)
{
    struct s3_error err;
    if (lambda_event_parse(cfg, json, strlen(json), ev, &err) != 0)
        fail_msg("lambda_event_parse: %s [%s]", err.message, err.code);
}

static void parse_bad(const struct config *cfg, const char *json, const char *needle)
{
    struct lambda_event ev;
    struct s3_error err;
    s3_error_clear(&err);
    assert_int_equal(lambda_event_parse(cfg, json, strlen(json), &ev, &err), -1);
    assert_string_equal(err.code, "InvalidEvent");
    if (strncmp(err.message, "not an S3 event notification: ", 30) != 0 ||
        !strstr(err.message, needle))
        fail_msg("for %s: expected '%s' in: %s", json, needle, err.message);
    assert_int_equal(ev.count, 0);
    assert_null(ev.records);
}

/* ------------------------------------------------------------------------------------------ */
/* Real-world events                                                                            */

/* The example of the AWS Lambda documentation ("Example Amazon S3 notification event"). */
static const char aws_example[] =
    "{\"Records\":[{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\","
    "\"awsRegion\":\"us-east-2\",\"eventTime\":\"2019-09-03T19:37:27.192Z\","
    "\"eventName\":\"ObjectCreated:Put\","
    "\"userIdentity\":{\"principalId\":\"AWS:AIDAINPONIXQXHT3IKHL2\"},"
    "\"requestParameters\":{\"sourceIPAddress\":\"205.255.255.255\"},"
    "\"responseElements\":{\"x-amz-request-id\":\"D82B88E5F771F645\","
    "\"x-amz-id-2\":\"vlR7PnpV2Ce81l0PRw6jlUpck7Jo5ZsQjryTjKlc5aLWGVHPZLj5NeC6qMa0emYBDXOo6QBU0Wo="
    "\"},"
    "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"828aa6fc-f7b5-4305-8584-"
    "487c791949c1\","
    "\"bucket\":{\"name\":\"lambda-artifacts-deafc19498e3f2df\","
    "\"ownerIdentity\":{\"principalId\":\"A3I5XTEXAMAI3E\"},"
    "\"arn\":\"arn:aws:s3:::lambda-artifacts-deafc19498e3f2df\"},"
    "\"object\":{\"key\":\"b21b84d653bb07b05b1e6b33684dc11b\",\"size\":1305107,"
    "\"eTag\":\"b21b84d653bb07b05b1e6b33684dc11b\",\"sequencer\":\"0C0F6F405D6ED209E1\"}}}]}";

/* The Lambda console's "s3-put" template: the key is form-encoded ("test/key"). */
static const char aws_console_template[] =
    "{\"Records\":[{\"eventVersion\":\"2.0\",\"eventSource\":\"aws:s3\",\"awsRegion\":\"us-east-"
    "1\","
    "\"eventTime\":\"1970-01-01T00:00:00.000Z\",\"eventName\":\"ObjectCreated:Put\","
    "\"userIdentity\":{\"principalId\":\"EXAMPLE\"},"
    "\"requestParameters\":{\"sourceIPAddress\":\"127.0.0.1\"},"
    "\"responseElements\":{\"x-amz-request-id\":\"EXAMPLE123456789\","
    "\"x-amz-id-2\":\"EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH\"},"
    "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"testConfigRule\","
    "\"bucket\":{\"name\":\"example-bucket\",\"ownerIdentity\":{\"principalId\":\"EXAMPLE\"},"
    "\"arn\":\"arn:aws:s3:::example-bucket\"},"
    "\"object\":{\"key\":\"test%2Fkey\",\"size\":1024,"
    "\"eTag\":\"0123456789abcdef0123456789abcdef\",\"sequencer\":\"0A1B2C3D4E5F678901\"}}}]}";

/* What radosgw 16.2 POSTed to an HTTP push endpoint for a PUT of the key "dir a/my cat+é%41.jpg"
 * (captured on this machine): the key is NOT URL-encoded. */
static const char ceph_put[] =
    "{\"Records\":[{\"eventVersion\":\"2.2\",\"eventSource\":\"ceph:s3\",\"awsRegion\":\"\","
    "\"eventTime\":\"2026-11-27T00:04:13.318905Z\",\"eventName\":\"ObjectCreated:Put\","
    "\"userIdentity\":{\"principalId\":\"s3imgfs-test\"},"
    "\"requestParameters\":{\"sourceIPAddress\":\"\"},"
    "\"responseElements\":{\"x-amz-request-id\":"
    "\"2752c17e-39ba-4b5d-bf8e-fc1226615c18.4110.13766139618182774430\","
    "\"x-amz-id-2\":\"100e-default-default\"},"
    "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"n1\","
    "\"bucket\":{\"name\":\"src\",\"ownerIdentity\":{\"principalId\":\"s3imgfs-test\"},"
    "\"arn\":\"arn:aws:s3:::src\",\"id\":\"2752c17e-39ba-4b5d-bf8e-fc1226615c18.4112.7\"},"
    "\"object\":{\"key\":\"dir a/my cat+\xc3\xa9%41.jpg\",\"size\":3,"
    "\"eTag\":\"764efa883dda1e11db47671c4a3bbd9e\",\"versionId\":\"\","
    "\"sequencer\":\"FDC8086BE98A2B13\",\"metadata\":[{\"key\":\"x-amz-date\","
    "\"val\":\"20261127T000413Z\"}],\"tags\":[]}},"
    "\"eventId\":\"1795737853.321620.764efa883dda1e11db47671c4a3bbd9e\",\"opaqueData\":\"\"}]}";

/* MinIO's webhook body: "s3:" in eventName, the key escaped with Go's url.QueryEscape ('/' too),
 * top-level EventName and Key. */
static const char minio_put[] =
    "{\"EventName\":\"s3:ObjectCreated:Put\",\"Key\":\"src/photos/hello world.jpg\","
    "\"Records\":[{\"eventVersion\":\"2.0\",\"eventSource\":\"minio:s3\",\"awsRegion\":\"\","
    "\"eventTime\":\"2019-10-22T09:27:27Z\",\"eventName\":\"s3:ObjectCreated:Put\","
    "\"userIdentity\":{\"principalId\":\"AKIAIOSFODNN7EXAMPLE\"},"
    "\"requestParameters\":{\"region\":\"\",\"sourceIPAddress\":\"172.16.118.255\","
    "\"accessKey\":\"AKIAIOSFODNN7EXAMPLE\"},"
    "\"responseElements\":{\"x-amz-request-id\":\"15CFEDF8D4736ED9\","
    "\"x-minio-origin-endpoint\":\"http://172.17.0.2:9000\"},"
    "\"s3\":{\"s3SchemaVersion\":\"1.0\",\"configurationId\":\"Config\","
    "\"bucket\":{\"name\":\"src\",\"ownerIdentity\":{\"principalId\":\"AKIAIOSFODNN7EXAMPLE\"},"
    "\"arn\":\"arn:aws:s3:::src\"},"
    "\"object\":{\"key\":\"photos%2Fhello+world.jpg\",\"size\":224662,"
    "\"eTag\":\"5fc7298143efe1276d39a3466d4e255f-1\",\"contentType\":\"image/jpeg\","
    "\"userMetadata\":{\"content-type\":\"image/jpeg\"},\"versionId\":\"1\","
    "\"sequencer\":\"15CFEDF8D5304D1A\"}},"
    "\"source\":{\"host\":\"172.16.118.255\",\"port\":\"\",\"userAgent\":\"Mozilla/5.0\"}}]}";

/* The AWS documentation's EventBridge "Object Created" example. */
static const char eventbridge_created[] =
    "{\"version\":\"0\",\"id\":\"17793124-05d4-b198-2fde-7ededc63b103\","
    "\"detail-type\":\"Object Created\",\"source\":\"aws.s3\",\"account\":\"111122223333\","
    "\"time\":\"2021-11-12T00:00:00Z\",\"region\":\"ca-central-1\","
    "\"resources\":[\"arn:aws:s3:::src\"],"
    "\"detail\":{\"version\":\"0\",\"bucket\":{\"name\":\"src\"},"
    "\"object\":{\"key\":\"example+key%21.jpg\",\"size\":5,"
    "\"etag\":\"b1946ac92492d2347c6235b4d2611184\","
    "\"version-id\":\"IYV3p45BT0ac8hjHg1houSdS1a.Mro8e\",\"sequencer\":\"00617F08299329D189\"},"
    "\"request-id\":\"N4N7GDK58NMKJ12R\",\"requester\":\"123456789012\","
    "\"source-ip-address\":\"1.2.3.4\",\"reason\":\"CompleteMultipartUpload\"}}";

static const char eventbridge_deleted[] =
    "{\"version\":\"0\",\"id\":\"2ee9cc15-d022-99ea-1fb8-1b1bac4850f9\","
    "\"detail-type\":\"Object Deleted\",\"source\":\"aws.s3\",\"account\":\"111122223333\","
    "\"time\":\"2021-11-12T00:00:00Z\",\"region\":\"ca-central-1\","
    "\"resources\":[\"arn:aws:s3:::src\"],"
    "\"detail\":{\"version\":\"0\",\"bucket\":{\"name\":\"src\"},"
    "\"object\":{\"key\":\"example-key\",\"sequencer\":\"00617F0A2A8CC3A8D8\"},"
    "\"request-id\":\"0BH729840619AG5K\",\"requester\":\"123456789012\","
    "\"source-ip-address\":\"1.2.3.4\",\"reason\":\"DeleteObject\","
    "\"deletion-type\":\"Delete Marker Created\"}}";

/* What S3 sends when a notification is configured (AWS documentation). */
static const char test_event[] =
    "{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Time\":\"2014-10-13T15:57:02.089Z\","
    "\"Bucket\":\"src\",\"RequestId\":\"5582815E1AEA5ADF\","
    "\"HostId\":\"8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE\"}";

static void aws_documentation_example(void **state)
{
    (void)state;
    struct config *cfg = cfg_any_source();
    struct lambda_event ev;
    parse_ok(cfg, aws_example, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].bucket, "lambda-artifacts-deafc19498e3f2df");
    assert_string_equal(ev.records[0].key, "b21b84d653bb07b05b1e6b33684dc11b");
    assert_int_equal(ev.records[0].size, 1305107);
    assert_string_equal(ev.records[0].etag, "b21b84d653bb07b05b1e6b33684dc11b");
    assert_string_equal(ev.records[0].event_name, "ObjectCreated:Put");
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    lambda_event_free(&ev);
    assert_int_equal(ev.count, 0);

    parse_ok(cfg, aws_console_template, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].bucket, "example-bucket");
    assert_string_equal(ev.records[0].key, "test/key");
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    lambda_event_free(&ev);
    conf_free(cfg);
}

static char *aws_event_for_key(const char *bucket, const char *encoded_key, const char *name)
{
    char *s = NULL;
    assert_true(asprintf(&s,
                         "{\"Records\":[{\"eventVersion\":\"2.1\",\"eventSource\":\"aws:s3\","
                         "\"eventName\":\"%s\",\"s3\":{\"bucket\":{\"name\":\"%s\"},"
                         "\"object\":{\"key\":\"%s\",\"size\":10,\"eTag\":\"abc\"}}}]}",
                         name, bucket, encoded_key) > 0);
    return s;
}

static void url_decoding(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    static const struct {
        const char *encoded, *key;
    } cases[] = {
        {"photos/my+cat%C3%A9.jpg", "photos/my caté.jpg"},
        {"a%2Bb+c.jpg", "a+b c.jpg"},
        {"red+flower.jpg", "red flower.jpg"},
        {"100%25+done%3F.png", "100% done?.png"},
        {"%E2%9C%93/%F0%9F%8E%89.webp", "\xe2\x9c\x93/\xf0\x9f\x8e\x89.webp"},
        {"plain/key.jpg", "plain/key.jpg"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *json = aws_event_for_key("src", cases[i].encoded, "ObjectCreated:Put");
        struct lambda_event ev;
        parse_ok(cfg, json, &ev);
        assert_int_equal(ev.count, 1);
        assert_string_equal(ev.records[0].key, cases[i].key);
        lambda_event_free(&ev);
        free(json);
    }
    /* malformed escapes and NUL are refused */
    static const char *const bad[] = {"a%zz.jpg", "a%4.jpg", "trailing%", "nul%00.jpg"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *json = aws_event_for_key("src", bad[i], "ObjectCreated:Put");
        parse_bad(cfg, json, "is not URL-encoded");
        free(json);
    }
    conf_free(cfg);
}

static void radosgw_event(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    struct lambda_event ev;
    parse_ok(cfg, ceph_put, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].bucket, "src");
    /* used as sent: radosgw does not encode keys */
    assert_string_equal(ev.records[0].key, "dir a/my cat+\xc3\xa9%41.jpg");
    assert_int_equal(ev.records[0].size, 3);
    assert_string_equal(ev.records[0].etag, "764efa883dda1e11db47671c4a3bbd9e");
    assert_string_equal(ev.records[0].event_name, "ObjectCreated:Put");
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    lambda_event_free(&ev);

    /* "s3:" before the event name, the older lowercase "etag", a lone '%' in the key */
    static const char older[] =
        "{\"Records\":[{\"eventVersion\":\"2.2\",\"eventSource\":\"ceph:s3\","
        "\"eventName\":\"s3:ObjectCreated:CompleteMultipartUpload\",\"s3\":{\"bucket\":"
        "{\"name\":\"src\"},\"object\":{\"key\":\"50% off.png\",\"size\":12345678,"
        "\"etag\":\"0123-2\"}}},"
        "{\"eventVersion\":\"2.2\",\"eventSource\":\"ceph:s3\",\"eventName\":"
        "\"ObjectRemoved:Delete\",\"s3\":{\"bucket\":{\"name\":\"src\"},\"object\":"
        "{\"key\":\"a.jpg\",\"size\":0,\"eTag\":\"\"}}}]}";
    parse_ok(cfg, older, &ev);
    assert_int_equal(ev.count, 2);
    assert_string_equal(ev.records[0].key, "50% off.png");
    assert_string_equal(ev.records[0].event_name, "ObjectCreated:CompleteMultipartUpload");
    assert_string_equal(ev.records[0].etag, "0123-2");
    assert_int_equal(ev.records[0].size, 12345678);
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    assert_string_equal(ev.records[1].event_name, "ObjectRemoved:Delete");
    assert_int_equal(ev.skip[1], LAMBDA_SKIP_NOT_CREATE);
    lambda_event_free(&ev);
    conf_free(cfg);
}

static void minio_event(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    struct lambda_event ev;
    parse_ok(cfg, minio_put, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].bucket, "src");
    assert_string_equal(ev.records[0].key, "photos/hello world.jpg");
    assert_string_equal(ev.records[0].event_name, "ObjectCreated:Put");
    assert_string_equal(ev.records[0].etag, "5fc7298143efe1276d39a3466d4e255f-1");
    assert_int_equal(ev.records[0].size, 224662);
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    lambda_event_free(&ev);
    conf_free(cfg);
}

/* An SNS notification as Lambda delivers it (the Lambda documentation's example with an S3
 * event as its Message, quoted ETag and all). */
static char *sns_wrapped(const char *inner)
{
    json_t *doc = json_pack(
        "{s:[{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s}}]}", "Records", "EventSource",
        "aws:sns", "EventVersion", "1.0", "EventSubscriptionArn",
        "arn:aws:sns:us-east-1:123456789012:sns-lambda:21be56ed-a058-49f5-8c98-aedd2564c486", "Sns",
        "Type", "Notification", "MessageId", "95df01b4-ee98-5cb9-9903-4c221d41eb5e", "TopicArn",
        "arn:aws:sns:us-east-1:123456789012:sns-lambda", "Subject", "Amazon S3 Notification",
        "Message", inner, "Timestamp", "2019-01-02T12:45:07.000Z");
    assert_non_null(doc);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(s);
    return s;
}

static void sns_and_sqs_wrapped(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    char *inner = aws_event_for_key("src", "photos/my+cat%C3%A9.jpg", "ObjectCreated:Post");
    char *sns = sns_wrapped(inner);
    struct lambda_event ev;
    parse_ok(cfg, sns, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].key, "photos/my caté.jpg");
    assert_string_equal(ev.records[0].event_name, "ObjectCreated:Post");
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    lambda_event_free(&ev);

    /* SQS delivering the SNS envelope (no raw delivery) */
    json_t *envelope = json_pack("{s:s, s:s, s:s}", "Type", "Notification", "Message", inner,
                                 "TopicArn", "arn:aws:sns:us-east-1:123456789012:t");
    char *env_text = json_dumps(envelope, JSON_COMPACT);
    json_t *sqs = json_pack("{s:[{s:s, s:s, s:s}]}", "Records", "messageId", "m-1", "eventSource",
                            "aws:sqs", "body", env_text);
    char *sqs_text = json_dumps(sqs, JSON_COMPACT);
    parse_ok(cfg, sqs_text, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].key, "photos/my caté.jpg");
    lambda_event_free(&ev);

    /* the bare SNS envelope (an SNS HTTP subscription posting to --serve) */
    parse_ok(cfg, env_text, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].key, "photos/my caté.jpg");
    lambda_event_free(&ev);

    /* a test event through SNS */
    char *sns_test = sns_wrapped(test_event);
    parse_ok(cfg, sns_test, &ev);
    assert_int_equal(ev.count, 1);
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_TEST_EVENT);
    lambda_event_free(&ev);

    /* a Message that is not JSON */
    char *broken = sns_wrapped("hello");
    parse_bad(cfg, broken, "Records[0].Sns.Message is not JSON");

    free(broken);
    free(sns_test);
    free(sqs_text);
    json_decref(sqs);
    free(env_text);
    json_decref(envelope);
    free(sns);
    free(inner);
    conf_free(cfg);
}

static void eventbridge(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    struct lambda_event ev;
    parse_ok(cfg, eventbridge_created, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].bucket, "src");
    assert_string_equal(ev.records[0].key, "example key!.jpg");
    assert_int_equal(ev.records[0].size, 5);
    assert_string_equal(ev.records[0].etag, "b1946ac92492d2347c6235b4d2611184");
    assert_string_equal(ev.records[0].event_name, "ObjectCreated:CompleteMultipartUpload");
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    lambda_event_free(&ev);

    parse_ok(cfg, eventbridge_deleted, &ev);
    assert_int_equal(ev.count, 1);
    assert_string_equal(ev.records[0].event_name, "Object Deleted");
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NOT_CREATE);
    lambda_event_free(&ev);

    parse_bad(cfg,
              "{\"detail-type\":\"EC2 Instance State-change Notification\",\"source\":\"aws.ec2\","
              "\"detail\":{\"instance-id\":\"i-1\"}}",
              "not from aws.s3");
    parse_bad(cfg, "{\"detail-type\":\"Object Created\",\"source\":\"aws.s3\",\"detail\":{}}",
              "lacks bucket.name");
    conf_free(cfg);
}

static void s3_test_event(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    struct lambda_event ev;
    parse_ok(cfg, test_event, &ev);
    assert_int_equal(ev.count, 1);
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_TEST_EVENT);
    assert_string_equal(ev.records[0].bucket, "src");
    assert_string_equal(ev.records[0].key, "");
    assert_string_equal(ev.records[0].event_name, "s3:TestEvent");
    assert_string_equal(lambda_skip_name(ev.skip[0]), "test event");
    lambda_event_free(&ev);

    /* an empty Records array: nothing to do, not an error */
    parse_ok(cfg, "{\"Records\":[]}", &ev);
    assert_int_equal(ev.count, 0);
    lambda_event_free(&ev);
    conf_free(cfg);
}

/* ------------------------------------------------------------------------------------------ */
/* Skip rules                                                                                   */

static enum lambda_skip skip_of(const struct config *cfg, const char *bucket, const char *key,
                                const char *name)
{
    char *json = aws_event_for_key(bucket, key, name);
    struct lambda_event ev;
    parse_ok(cfg, json, &ev);
    assert_int_equal(ev.count, 1);
    enum lambda_skip s = ev.skip[0];
    lambda_event_free(&ev);
    free(json);
    return s;
}

static void skip_rules(void **state)
{
    (void)state;
    /* separate buckets, source prefix */
    static const char *const sep[] = {CREDS,
                                      "S3IMGFS_SOURCE_BUCKET=src",
                                      "S3IMGFS_SOURCE_PREFIX=photos/",
                                      "S3IMGFS_DESTINATION_BUCKET=dst",
                                      "S3IMGFS_DESTINATION_PREFIX=resized/",
                                      NULL};
    struct config *cfg = cfg_of(sep);
    assert_int_equal(skip_of(cfg, "src", "photos/a.jpg", "ObjectCreated:Put"), LAMBDA_SKIP_NONE);
    assert_int_equal(skip_of(cfg, "src", "photos/a.jpg", "ObjectCreated:Copy"), LAMBDA_SKIP_NONE);
    assert_int_equal(skip_of(cfg, "src", "photos/a.jpg", "ObjectRemoved:Delete"),
                     LAMBDA_SKIP_NOT_CREATE);
    assert_int_equal(skip_of(cfg, "src", "photos/a.jpg", "ObjectRestore:Completed"),
                     LAMBDA_SKIP_NOT_CREATE);
    assert_int_equal(skip_of(cfg, "src", "other/a.jpg", "ObjectCreated:Put"), LAMBDA_SKIP_OUTSIDE);
    assert_int_equal(skip_of(cfg, "src", "photos", "ObjectCreated:Put"), LAMBDA_SKIP_OUTSIDE);
    assert_int_equal(skip_of(cfg, "elsewhere", "photos/a.jpg", "ObjectCreated:Put"),
                     LAMBDA_SKIP_OUTSIDE);
    assert_int_equal(skip_of(cfg, "dst", "resized/thumbnail/a.jpg", "ObjectCreated:Put"),
                     LAMBDA_SKIP_DESTINATION);
    assert_int_equal(skip_of(cfg, "dst", "photos/a.jpg", "ObjectCreated:Put"), LAMBDA_SKIP_OUTSIDE);
    conf_free(cfg);

    /* one bucket, two prefixes */
    static const char *const same[] = {CREDS,
                                       "S3IMGFS_SOURCE_BUCKET=pics",
                                       "S3IMGFS_SOURCE_PREFIX=photos/",
                                       "S3IMGFS_DESTINATION_BUCKET=pics",
                                       "S3IMGFS_DESTINATION_PREFIX=resized/",
                                       NULL};
    cfg = cfg_of(same);
    assert_int_equal(skip_of(cfg, "pics", "photos/a.jpg", "ObjectCreated:Put"), LAMBDA_SKIP_NONE);
    assert_int_equal(skip_of(cfg, "pics", "resized/medium/photos/a.jpg", "ObjectCreated:Put"),
                     LAMBDA_SKIP_DESTINATION);
    assert_int_equal(skip_of(cfg, "pics", "misc/a.jpg", "ObjectCreated:Put"), LAMBDA_SKIP_OUTSIDE);
    conf_free(cfg);

    /* one bucket, outputs at its root (template {size}/{key}), sources under photos/ */
    static const char *const root[] = {CREDS, "S3IMGFS_SOURCE_BUCKET=pics",
                                       "S3IMGFS_SOURCE_PREFIX=photos/",
                                       "S3IMGFS_DESTINATION_BUCKET=pics", NULL};
    cfg = cfg_of(root);
    assert_int_equal(skip_of(cfg, "pics", "photos/a.jpg", "ObjectCreated:Put"), LAMBDA_SKIP_NONE);
    assert_int_equal(skip_of(cfg, "pics", "thumbnail/a.jpg", "ObjectCreated:Put"),
                     LAMBDA_SKIP_DESTINATION);
    conf_free(cfg);

    /* no source bucket configured: any bucket, but never the destination */
    cfg = cfg_any_source();
    assert_int_equal(skip_of(cfg, "anything", "a.jpg", "ObjectCreated:Put"), LAMBDA_SKIP_NONE);
    assert_int_equal(skip_of(cfg, "dst", "thumbnail/a.jpg", "ObjectCreated:Put"),
                     LAMBDA_SKIP_DESTINATION);
    conf_free(cfg);

    assert_string_equal(lambda_skip_name(LAMBDA_SKIP_NONE), "none");
    assert_string_equal(lambda_skip_name(LAMBDA_SKIP_NOT_CREATE), "not a create");
    assert_string_equal(lambda_skip_name(LAMBDA_SKIP_DESTINATION), "destination");
    assert_string_equal(lambda_skip_name(LAMBDA_SKIP_OUTSIDE), "outside");
}

static void several_records(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    static const char json[] =
        "{\"Records\":["
        "{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":"
        "{\"name\":\"src\"},\"object\":{\"key\":\"a.jpg\",\"size\":1,\"eTag\":\"\\\"q\\\"\"}}},"
        "{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectRemoved:Delete\",\"s3\":{\"bucket\":"
        "{\"name\":\"src\"},\"object\":{\"key\":\"b.jpg\"}}},"
        "{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":"
        "{\"name\":\"dst\"},\"object\":{\"key\":\"thumbnail/a.jpg\",\"size\":2}}},"
        "{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":"
        "{\"name\":\"src\"},\"object\":{\"key\":\"c.png\",\"size\":3}}}]}";
    struct lambda_event ev;
    parse_ok(cfg, json, &ev);
    assert_int_equal(ev.count, 4);
    assert_string_equal(ev.records[0].etag, "q"); /* quotes dropped */
    assert_int_equal(ev.skip[0], LAMBDA_SKIP_NONE);
    assert_int_equal(ev.skip[1], LAMBDA_SKIP_NOT_CREATE);
    assert_int_equal(ev.records[1].size, 0);
    assert_string_equal(ev.records[1].etag, "");
    assert_int_equal(ev.skip[2], LAMBDA_SKIP_DESTINATION);
    assert_int_equal(ev.skip[3], LAMBDA_SKIP_NONE);
    assert_string_equal(ev.records[3].key, "c.png");
    lambda_event_free(&ev);
    lambda_event_free(&ev); /* twice is fine */
    conf_free(cfg);
}

static void malformed(void **state)
{
    (void)state;
    struct config *cfg = cfg_plain();
    parse_bad(cfg, "", "the body is not JSON");
    parse_bad(cfg, "hello", "the body is not JSON");
    parse_bad(cfg, "{\"Records\":[", "the body is not JSON");
    parse_bad(cfg, "[1,2]", "is not a JSON object");
    parse_bad(cfg, "{}", "has no Records, detail or Event member");
    parse_bad(cfg, "{\"Event\":\"s3:Other\"}", "has no Records, detail or Event member");
    parse_bad(cfg, "{\"Records\":{}}", "Records is not an array");
    parse_bad(cfg, "{\"Records\":[42]}", "Records[0] is not an object");
    parse_bad(cfg, "{\"Records\":[{\"s3\":{}}]}", "Records[0] has no eventSource");
    parse_bad(cfg, "{\"Records\":[{\"eventSource\":\"aws:dynamodb\"}]}",
              "eventSource 'aws:dynamodb'");
    parse_bad(cfg,
              "{\"Records\":[{\"eventSource\":\"aws:s3\",\"eventVersion\":\"3.0\","
              "\"eventName\":\"ObjectCreated:Put\",\"s3\":{\"bucket\":{\"name\":\"src\"},"
              "\"object\":{\"key\":\"a\"}}}]}",
              "eventVersion '3.0'");
    parse_bad(cfg,
              "{\"Records\":[{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectCreated:Put\","
              "\"s3\":{\"bucket\":{\"name\":\"src\"}}}]}",
              "Records[0] lacks s3.object.key");
    parse_bad(cfg,
              "{\"Records\":[{\"eventSource\":\"aws:s3\",\"s3\":{\"bucket\":{\"name\":\"src\"},"
              "\"object\":{\"key\":\"a\"}}}]}",
              "Records[0] lacks eventName");
    parse_bad(cfg, "{\"Records\":[{\"EventSource\":\"aws:sns\",\"Sns\":{}}]}",
              "without Sns.Message");
    parse_bad(cfg, "{\"Type\":\"SubscriptionConfirmation\",\"Message\":\"x\"}",
              "'SubscriptionConfirmation' message");
    /* a bad second record fails the whole document, naming it */
    parse_bad(cfg,
              "{\"Records\":[{\"eventSource\":\"aws:s3\",\"eventName\":\"ObjectCreated:Put\","
              "\"s3\":{\"bucket\":{\"name\":\"src\"},\"object\":{\"key\":\"a\"}}},{}]}",
              "Records[1] has no eventSource");
    /* wrappers nested without end */
    char *doc = strdup(test_event);
    for (int i = 0; i < 6; i++) {
        char *next = sns_wrapped(doc);
        free(doc);
        doc = next;
    }
    parse_bad(cfg, doc, "nested too deep");
    free(doc);
    conf_free(cfg);
}

/* ------------------------------------------------------------------------------------------ */
/* lambda_config_from_env with the real environment                                            */

/* Every S3IMGFS_* and AWS_* variable of the process is removed, then credentials are set. */
static int env_setup(void **state)
{
    (void)state;
    for (;;) {
        char name[256] = "";
        for (char **e = environ; *e && !name[0]; e++)
            if (strncmp(*e, "S3IMGFS_", 8) == 0 || strncmp(*e, "AWS_", 4) == 0 ||
                strncmp(*e, "XDG_CONFIG_HOME=", 16) == 0)
                snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
        if (!name[0])
            break;
        unsetenv(name);
    }
    setenv("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", 1);
    setenv("S3IMGFS_DESTINATION_BUCKET", "dst", 1);
    return 0;
}

static struct config *env_load(void)
{
    struct s3_error err;
    struct config *cfg = lambda_config_from_env(NULL, NULL, &err);
    if (!cfg)
        fail_msg("lambda_config_from_env: %s [%s]", err.message, err.code);
    return cfg;
}

static void env_error(const char *needle1, const char *needle2)
{
    struct s3_error err;
    s3_error_clear(&err);
    struct config *cfg = lambda_config_from_env(NULL, NULL, &err);
    if (cfg) {
        conf_free(cfg);
        fail_msg("expected an error with '%s'", needle1);
    }
    assert_string_equal(err.code, "InvalidConfig");
    if (!strstr(err.message, needle1) || (needle2 && !strstr(err.message, needle2)))
        fail_msg("expected '%s' and '%s' in: %s", needle1, needle2 ? needle2 : "", err.message);
}

static void env_sizes_and_defaults(void **state)
{
    (void)state;
    struct config *cfg = env_load();
    assert_string_equal(cfg->s3.destination_bucket, "dst");
    assert_string_equal(cfg->s3.source_bucket, "");
    assert_int_equal(cfg->resize.size_count, 3); /* the default sizes */
    assert_string_equal(conf_origin(cfg, "resize", "sizes"), "default");
    conf_free(cfg);

    setenv("S3IMGFS_SIZES", "small:200x200:cover, big:2000x", 1);
    setenv("S3IMGFS_SOURCE_BUCKET", "src", 1);
    setenv("S3IMGFS_SOURCE_PREFIX", "in/", 1);
    setenv("S3IMGFS_QUALITY", "70", 1);
    setenv("S3IMGFS_SNS_TOPIC_ARN", "", 1); /* empty = not set */
    setenv("AWS_REGION", "eu-west-3", 1);
    cfg = env_load();
    assert_int_equal(cfg->resize.size_count, 2);
    assert_string_equal(cfg->resize.sizes[0].name, "small");
    assert_int_equal(cfg->resize.sizes[0].width, 200);
    assert_int_equal(cfg->resize.sizes[0].fit, CONF_FIT_COVER);
    assert_string_equal(cfg->resize.sizes[1].name, "big");
    assert_int_equal(cfg->resize.sizes[1].width, 2000);
    assert_int_equal(cfg->resize.sizes[1].height, 0);
    assert_int_equal(cfg->resize.sizes[1].quality, 70);
    assert_string_equal(cfg->s3.source_bucket, "src");
    assert_string_equal(cfg->s3.source_prefix, "in/");
    assert_string_equal(cfg->notify.sns_topic_arn, "");
    assert_string_equal(cfg->s3.region, "eu-west-3");
    assert_string_equal(cfg->s3.endpoint, "https://s3.eu-west-3.amazonaws.com");
    conf_free(cfg);
}

static void env_format_keys(void **state)
{
    (void)state;
    setenv("S3IMGFS_LOG_FORMAT", "json", 1);
    struct config *cfg = env_load();
    assert_int_equal(cfg->log.format, CONF_LOG_JSON);
    assert_int_equal(cfg->resize.format, CONF_FORMAT_AUTO);
    conf_free(cfg);

    setenv("S3IMGFS_FORMAT", "webp", 1);
    unsetenv("S3IMGFS_LOG_FORMAT");
    cfg = env_load();
    assert_int_equal(cfg->log.format, CONF_LOG_TEXT);
    assert_int_equal(cfg->resize.format, CONF_FORMAT_WEBP);
    assert_int_equal(cfg->resize.sizes[0].format, CONF_FORMAT_WEBP);
    conf_free(cfg);

    /* the section-qualified name of the key that has the plain one */
    unsetenv("S3IMGFS_FORMAT");
    setenv("S3IMGFS_RESIZE_FORMAT", "webp", 1);
    env_error("S3IMGFS_RESIZE_FORMAT", "[resize] format is S3IMGFS_FORMAT");
}

static void env_typo_is_an_error(void **state)
{
    (void)state;
    setenv("S3IMGFS_DESTINATON_BUCKET", "typo", 1);
    env_error("environment variable S3IMGFS_DESTINATON_BUCKET is not a setting",
              "did you mean S3IMGFS_DESTINATION_BUCKET?");
    unsetenv("S3IMGFS_DESTINATON_BUCKET");

    setenv("S3IMGFS_SIZE", "small:10x10", 1);
    env_error("S3IMGFS_SIZE is not a setting", "S3IMGFS_SIZES");
    unsetenv("S3IMGFS_SIZE");

    /* nothing close: the list of settings */
    setenv("S3IMGFS_WHATEVER_THIS_IS", "1", 1);
    env_error("S3IMGFS_WHATEVER_THIS_IS is not a setting", "DESTINATION_BUCKET");
    unsetenv("S3IMGFS_WHATEVER_THIS_IS");

    /* secrets come only from the AWS variables */
    setenv("S3IMGFS_SECRET_ACCESS_KEY", "x", 1);
    env_error("S3IMGFS_SECRET_ACCESS_KEY is not a setting", NULL);
    unsetenv("S3IMGFS_SECRET_ACCESS_KEY");

    /* settings of the gateway, and [resize] mode, are refused */
    setenv("S3IMGFS_UPLOAD_WORKERS", "4", 1);
    env_error("S3IMGFS_UPLOAD_WORKERS sets [gateway] upload_workers, which s3imgfs-lambda does "
              "not use",
              NULL);
    unsetenv("S3IMGFS_UPLOAD_WORKERS");
    setenv("S3IMGFS_MODE", "lambda", 1);
    env_error("S3IMGFS_MODE sets [resize] mode", "always resizes the images itself");
    unsetenv("S3IMGFS_MODE");

    /* S3IMGFS_WEBHOOK_SECRET is conf's own */
    setenv("S3IMGFS_WEBHOOK_SECRET", "0123456789abcdef", 1);
    setenv("S3IMGFS_WEBHOOK_URL", "http://127.0.0.1:9/hook", 1);
    struct config *cfg = env_load();
    assert_string_equal(cfg->notify.webhook_secret, "0123456789abcdef");
    assert_string_equal(cfg->notify.webhook_url, "http://127.0.0.1:9/hook");
    conf_free(cfg);
    /* and S3IMGFS_HUGEPAGES the program's, read before main does anything else */
    setenv("S3IMGFS_HUGEPAGES", "0", 1);
    conf_free(env_load());
    unsetenv("S3IMGFS_HUGEPAGES");

    /* with a getenv of its own the caller's environ is not checked */
    setenv("S3IMGFS_DESTINATON_BUCKET", "typo", 1);
    static const char *const vars[] = {CREDS, "S3IMGFS_DESTINATION_BUCKET=dst", NULL};
    cfg = cfg_of(vars);
    conf_free(cfg);
}

static void env_bad_value_names_the_variable(void **state)
{
    (void)state;
    setenv("S3IMGFS_SIZES", "tiny:0x0", 1);
    env_error("env S3IMGFS_SIZES ([resize] sizes) = tiny:0x0", NULL);
    unsetenv("S3IMGFS_SIZES");

    setenv("S3IMGFS_QUALITY", "120", 1);
    env_error("env S3IMGFS_QUALITY ([resize] quality) = 120: expected an integer from 1 to 100",
              NULL);
    unsetenv("S3IMGFS_QUALITY");

    setenv("S3IMGFS_LOG_FORMAT", "xml", 1);
    env_error("env S3IMGFS_LOG_FORMAT ([log] format) = xml", NULL);
    unsetenv("S3IMGFS_LOG_FORMAT");

    /* a check across keys names both variables */
    setenv("S3IMGFS_SOURCE_BUCKET", "dst", 1);
    setenv("S3IMGFS_DESTINATION_PREFIX", "a/", 1);
    setenv("S3IMGFS_SOURCE_PREFIX", "", 1);
    env_error("env S3IMGFS_DESTINATION_PREFIX ([s3] destination_prefix)", NULL);
    unsetenv("S3IMGFS_SOURCE_BUCKET");
    unsetenv("S3IMGFS_DESTINATION_PREFIX");

    unsetenv("S3IMGFS_DESTINATION_BUCKET");
    env_error("S3IMGFS_DESTINATION_BUCKET is not set", NULL);
}

static void env_no_file_and_credentials(void **state)
{
    (void)state;
    /* a config file in XDG_CONFIG_HOME is not read */
    char dir[] = "/tmp/s3imgfs-lambda-env-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[300], path[320];
    snprintf(sub, sizeof(sub), "%s/s3imgfs", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(path, sizeof(path), "%s/config.ini", sub);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[s3]\ndestination_bucket = fromfile\n[resize]\nquality = 11\n", f);
    fclose(f);
    chmod(path, 0600);
    setenv("XDG_CONFIG_HOME", dir, 1);
    struct config *cfg = env_load();
    assert_string_equal(cfg->s3.destination_bucket, "dst");
    assert_int_equal(cfg->resize.quality, 80);
    conf_free(cfg);
    unsetenv("XDG_CONFIG_HOME");
    unlink(path);
    rmdir(sub);
    rmdir(dir);

    /* no credentials: the AWS variables are named */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    struct s3_error err;
    assert_null(lambda_config_from_env(NULL, NULL, &err));
    assert_string_equal(err.code, "NoCredentials");
    assert_non_null(strstr(err.message, "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));

    setenv("AWS_ACCESS_KEY_ID", "ASIAEXAMPLE", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    setenv("AWS_SESSION_TOKEN", "token", 1);
    cfg = env_load();
    assert_non_null(cfg->credentials);
    struct aws_credentials c;
    assert_int_equal(conf_credentials_provider(cfg->credentials, &c, &err), 0);
    assert_string_equal(c.access_key_id, "ASIAEXAMPLE");
    assert_string_equal(c.session_token, "token");
    conf_free(cfg);
}

int main(void)
{
#define ENV_TEST(f) cmocka_unit_test_setup(f, env_setup)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(aws_documentation_example),
        cmocka_unit_test(url_decoding),
        cmocka_unit_test(radosgw_event),
        cmocka_unit_test(minio_event),
        cmocka_unit_test(sns_and_sqs_wrapped),
        cmocka_unit_test(eventbridge),
        cmocka_unit_test(s3_test_event),
        cmocka_unit_test(skip_rules),
        cmocka_unit_test(several_records),
        cmocka_unit_test(malformed),
        ENV_TEST(env_sizes_and_defaults),
        ENV_TEST(env_format_keys),
        ENV_TEST(env_typo_is_an_error),
        ENV_TEST(env_bad_value_names_the_variable),
        ENV_TEST(env_no_file_and_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
