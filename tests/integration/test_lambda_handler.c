/* lambda: lambda_handle_event against the real radosgw (scripts/servers/rgw-start.sh) and, when
 * S3IMGFS_TEST_SNS_ENDPOINT is set, fauxqs (scripts/servers/fauxqs-start.sh): the notices are
 * read back from an SQS queue subscribed to the topic.
 *
 * The configuration comes from lambda_config_from_env (a fake environment holding what a
 * function's would). A JPEG with spaces, a '+' and UTF-8 in its key is put in a fresh source
 * bucket and announced with the event S3 would send (the key form-encoded); its renditions
 * must land in a versioned destination bucket with the right size, type and metadata. The
 * same event again puts nothing (still one version per rendition) and announces nothing. Then
 * a corrupt JPEG (permanent failure, notice), not an image, a key of the destination (never
 * recursed), an object deleted after its event, a deadline too close (not started, retry), an
 * object over max_file_mb, a bucket the function may not read (AccessDenied) and a server that
 * cannot be reached (transient: retry, no notice). */
#include "fauxqs_calls.h"
#include "lambda.h"
#include "resize.h"
#include "s3_fixture.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <vips/vips.h>

#define AWS_CLI "/usr/bin/aws"

static const char photo_key[] = "photos/summer 2026/my caf\xc3\xa9+x.jpg";

static struct {
    struct s3_fixture fx; /* the source bucket, and a client for checks */
    char dst[64];
    bool versioned;
    char env_src[128], env_dst[128], env_endpoint[300], env_topic[300], env_sns[300];
    char env_ak[200], env_sk[200];
    struct config *cfg;
    struct s3client *s3;
    struct notifier *notifier;
    struct metrics *metrics;
    struct lambda_handler *h;
    /* SNS -> SQS */
    const char *sns_endpoint;
    struct aws_credentials sns_creds;
    struct s3client *sqs;
    char *topic_arn, *queue_url, *queue_arn, *subscription_arn;
    /* the photo */
    char etag[128];
    uint64_t size;
    char versions[2][128];
    time_t modified[2];
} t;

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */

struct fake_env {
    const char *const *vars;
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The key as S3 writes it in an event: form-URL-encoded ('+' for a space, '/' kept). */
static char *form_encode(const char *key)
{
    char *pct = aws_uri_encode(key, strlen(key), true);
    assert_non_null(pct);
    char *out = malloc(strlen(pct) + 1), *o = out;
    assert_non_null(out);
    for (const char *p = pct; *p;) {
        if (strncmp(p, "%20", 3) == 0) {
            *o++ = '+';
            p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    free(pct);
    return out;
}

/* An S3 event as S3 sends it to Lambda, with the given records (bucket, key pairs). */
static char *s3_event(size_t n, const char *const *bucket_key, const char *etag, uint64_t size)
{
    json_t *records = json_array();
    for (size_t i = 0; i < n; i++) {
        char *enc = form_encode(bucket_key[2 * i + 1]);
        json_t *r = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:{s:s}, s:{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:I, s:s, "
            "s:s}}}",
            "eventVersion", "2.1", "eventSource", "aws:s3", "awsRegion", "us-east-1", "eventTime",
            "2026-11-27T00:00:00.000Z", "eventName", "ObjectCreated:Put", "userIdentity",
            "principalId", "EXAMPLE", "s3", "s3SchemaVersion", "1.0", "configurationId", "resize",
            "bucket", "name", bucket_key[2 * i], "arn", "arn:aws:s3:::x", "object", "key", enc,
            "size", (json_int_t)size, "eTag", etag, "sequencer", "0A1B2C3D4E5F678901");
        assert_non_null(r);
        json_array_append_new(records, r);
        free(enc);
    }
    json_t *doc = json_pack("{s:o}", "Records", records);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    assert_non_null(s);
    return s;
}

static char *one_event(const char *bucket, const char *key, const char *etag, uint64_t size)
{
    const char *bk[] = {bucket, key};
    return s3_event(1, bk, etag, size);
}

/* Handles the event; returns the parsed response (the caller decrefs). */
static json_t *handle_with(struct lambda_handler *h, const char *event, int64_t deadline,
                           bool *retry)
{
    struct s3_error err;
    s3_error_clear(&err);
    char *out = lambda_handle_event(h, event, strlen(event), deadline, retry, &err);
    if (!out)
        fail_msg("lambda_handle_event: %s [%s]", err.message, err.code);
    json_error_t jerr;
    json_t *doc = json_loads(out, 0, &jerr);
    if (!doc)
        fail_msg("the response is not JSON: %s (%s)", jerr.text, out);
    fprintf(stderr, "# response: %s\n", out);
    free(out);
    return doc;
}

static json_t *handle(const char *event, bool *retry)
{
    return handle_with(t.h, event, now_ms() + 120000, retry);
}

static json_t *record_at(json_t *resp, size_t i)
{
    json_t *r = json_array_get(json_object_get(resp, "records"), i);
    assert_non_null(r);
    return r;
}

static const char *str_of(json_t *obj, const char *name)
{
    const char *s = json_string_value(json_object_get(obj, name));
    if (!s)
        fail_msg("no string member %s", name);
    return s;
}

static long long int_of(json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!json_is_integer(v))
        fail_msg("no integer member %s", name);
    return json_integer_value(v);
}

static void expect_counts(json_t *resp, long long done, long long failed, long long skipped,
                          long long not_started)
{
    assert_int_equal(int_of(resp, "done"), done);
    assert_int_equal(int_of(resp, "failed"), failed);
    assert_int_equal(int_of(resp, "skipped"), skipped);
    assert_int_equal(int_of(resp, "not_started"), not_started);
}

static void expect_record(json_t *resp, size_t i, const char *status, const char *reason_part)
{
    json_t *r = record_at(resp, i);
    assert_string_equal(str_of(r, "status"), status);
    if (reason_part && !strstr(str_of(r, "reason"), reason_part))
        fail_msg("record %zu: reason '%s' lacks '%s'", i, str_of(r, "reason"), reason_part);
}

static void put_object(const char *bucket, const char *key, const void *data, size_t len,
                       const char *type, char *etag_out)
{
    struct s3_body body = s3_body_mem(data, len);
    struct s3_put_options po = {.content_type = type};
    struct s3_put_result res;
    struct s3_error err;
    if (s3_put_object(t.fx.client, bucket, key, &body, &po, &res, &err) != 0)
        fail_msg("PUT %s: %s", key, err.message);
    if (etag_out)
        snprintf(etag_out, 128, "%s", res.etag);
}

/* A w x h picture encoded as `suffix` says (".jpg[Q=85]", ".png"); g_free it. */
static unsigned char *make_image(int w, int h, const char *suffix, size_t *len)
{
    VipsImage *xyz = NULL, *cast = NULL, *out = NULL;
    assert_int_equal(vips_xyz(&xyz, w, h, NULL), 0);
    VipsImage *b[3] = {NULL, NULL, NULL};
    assert_int_equal(vips_extract_band(xyz, &b[0], 0, NULL), 0);
    assert_int_equal(vips_extract_band(xyz, &b[1], 1, NULL), 0);
    assert_int_equal(vips_extract_band(xyz, &b[2], 0, NULL), 0);
    VipsImage *joined = NULL;
    assert_int_equal(vips_bandjoin(b, &joined, 3, NULL), 0);
    assert_int_equal(vips_cast(joined, &cast, VIPS_FORMAT_UCHAR, NULL), 0);
    assert_int_equal(vips_copy(cast, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    void *buf = NULL;
    if (vips_image_write_to_buffer(out, suffix, &buf, len, NULL) != 0)
        fail_msg("save as %s: %s", suffix, vips_error_buffer());
    VipsImage *all[] = {xyz, b[0], b[1], b[2], joined, cast, out};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        g_object_unref(all[i]);
    return buf;
}

static unsigned char *make_jpeg(int w, int h, size_t *len)
{
    return make_image(w, h, ".jpg[Q=85]", len);
}

/* Width and height of an encoded image (what the resize engine reads from it). */
static void dimensions(const void *data, size_t len, int *w, int *h, const char **format)
{
    struct conf_size one = {.name = "x", .width = 1, .height = 1, .quality = 50};
    struct resize_options o = {.sizes = &one, .size_count = 1, .max_pixels = 100000000};
    struct resize_source_info info = {0};
    struct resize_error rerr;
    if (resize_buffer(data, len, &o, NULL, NULL, &info, &rerr) != RESIZE_OK)
        fail_msg("the rendition does not decode: %s", rerr.reason);
    *w = info.width;
    *h = info.height;
    *format = info.format;
}

/* Runs the aws CLI; returns its exit status, stdout in *out (may be NULL). */
static int aws_cli(char **out, const char *const *args)
{
    char *argv[32];
    size_t n = 0;
    argv[n++] = (char *)AWS_CLI;
    argv[n++] = (char *)"--endpoint-url";
    argv[n++] = t.fx.endpoint;
    for (size_t i = 0; args[i] && n < 30; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return fixture_run(&t.fx, argv, out);
}

/* Versions of `key` in the destination bucket (aws s3api list-object-versions). */
static size_t version_count(const char *key)
{
    const char *args[] = {
        "s3api", "list-object-versions", "--bucket", t.dst, "--prefix", key, "--output", "json",
        NULL};
    char *out = NULL;
    assert_int_equal(aws_cli(&out, args), 0);
    json_t *doc = json_loads(out ? out : "{}", 0, NULL);
    free(out);
    size_t n = 0;
    json_t *v = json_object_get(doc, "Versions");
    for (size_t i = 0; i < json_array_size(v); i++)
        if (strcmp(json_string_value(json_object_get(json_array_get(v, i), "Key")), key) == 0)
            n++;
    json_decref(doc);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* SNS -> SQS                                                                                   */

static json_t *sqs_ok(const char *action, json_t *request)
{
    char *body = json_dumps(request, JSON_COMPACT);
    json_decref(request);
    char *answer = fauxqs_sqs_ok(t.sqs, t.sns_endpoint, action, body);
    free(body);
    json_t *doc = json_loads(*answer ? answer : "{}", 0, NULL);
    free(answer);
    assert_non_null(doc);
    return doc;
}

static char *sns_ok(const char *action, const struct aws_header *params, size_t n, const char *want)
{
    return fauxqs_sns_ok(t.sqs, t.sns_endpoint, action, params, n, want);
}

static void sns_setup(void)
{
    t.sns_endpoint = getenv("S3IMGFS_TEST_SNS_ENDPOINT");
    if (!t.sns_endpoint || !*t.sns_endpoint) {
        t.sns_endpoint = NULL;
        fprintf(stderr, "# S3IMGFS_TEST_SNS_ENDPOINT is not set: notices are not checked\n");
        return;
    }
    snprintf(t.sns_creds.access_key_id, sizeof(t.sns_creds.access_key_id), "AKIDFAUXQSTEST");
    snprintf(t.sns_creds.secret_access_key, sizeof(t.sns_creds.secret_access_key), "fauxqs");
    struct s3client_options o = {.region = "us-east-1",
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &t.sns_creds,
                                 .max_attempts = 2};
    struct s3_error err;
    t.sqs = s3client_new(&o, &err);
    if (!t.sqs)
        fail_msg("s3client_new: %s", err.message);
    char topic[80], queue[80];
    snprintf(topic, sizeof(topic), "s3imgfs-lambda-%d-%ld", (int)getpid(), random() % 100000);
    snprintf(queue, sizeof(queue), "%.70s-q", topic);
    struct aws_header ct[] = {{"Name", topic}};
    t.topic_arn = sns_ok("CreateTopic", ct, 1, "TopicArn");
    json_t *r = sqs_ok("CreateQueue", json_pack("{s:s}", "QueueName", queue));
    t.queue_url = strdup(str_of(r, "QueueUrl"));
    json_decref(r);
    r = sqs_ok("GetQueueAttributes",
               json_pack("{s:s, s:[s]}", "QueueUrl", t.queue_url, "AttributeNames", "QueueArn"));
    t.queue_arn = strdup(str_of(json_object_get(r, "Attributes"), "QueueArn"));
    json_decref(r);
    struct aws_header sub[] = {{"TopicArn", t.topic_arn},
                               {"Protocol", "sqs"},
                               {"Endpoint", t.queue_arn},
                               {"ReturnSubscriptionArn", "true"}};
    t.subscription_arn = sns_ok("Subscribe", sub, 4, "SubscriptionArn");
}

static void sns_teardown(void)
{
    if (!t.sqs)
        return;
    struct aws_response resp;
    struct s3_error err;
    if (t.subscription_arn) {
        struct aws_header p[] = {{"SubscriptionArn", t.subscription_arn}};
        aws_query_call(t.sqs, "sns", t.sns_endpoint, "Unsubscribe", SNS_VERSION, p, 1, &resp, &err);
        aws_response_clear(&resp);
    }
    if (t.topic_arn) {
        struct aws_header p[] = {{"TopicArn", t.topic_arn}};
        aws_query_call(t.sqs, "sns", t.sns_endpoint, "DeleteTopic", SNS_VERSION, p, 1, &resp, &err);
        aws_response_clear(&resp);
    }
    if (t.queue_url) {
        char json[600];
        snprintf(json, sizeof(json), "{\"QueueUrl\":\"%s\"}", t.queue_url);
        fauxqs_sqs_call(t.sqs, t.sns_endpoint, "DeleteQueue", json, &resp, &err);
        aws_response_clear(&resp);
    }
    free(t.topic_arn);
    free(t.queue_url);
    free(t.queue_arn);
    free(t.subscription_arn);
    s3client_free(t.sqs);
}

/* Receives notices until `want` arrived or `seconds` passed (want 0: the whole time); each is
 * the notice's JSON (what the webhook would get). Returns how many arrived. */
static size_t receive(json_t **out, size_t want, int seconds)
{
    size_t got = 0;
    time_t end = time(NULL) + seconds;
    while (time(NULL) < end && (want == 0 || got < want)) {
        json_t *r =
            sqs_ok("ReceiveMessage", json_pack("{s:s, s:i, s:i}", "QueueUrl", t.queue_url,
                                               "MaxNumberOfMessages", 10, "WaitTimeSeconds", 1));
        json_t *msgs = json_object_get(r, "Messages");
        for (size_t i = 0; i < json_array_size(msgs); i++) {
            json_t *m = json_array_get(msgs, i);
            json_t *envelope = json_loads(str_of(m, "Body"), 0, NULL);
            assert_non_null(envelope);
            json_t *message = json_loads(str_of(envelope, "Message"), 0, NULL);
            assert_non_null(message);
            /* fauxqs delivers the structured message whole: its "default" is the notice */
            const char *def = json_string_value(json_object_get(message, "default"));
            json_t *notice = def ? json_loads(def, 0, NULL) : json_incref(message);
            assert_non_null(notice);
            fprintf(stderr, "# notice: %s\n", def ? def : str_of(envelope, "Message"));
            if (out && got < want)
                out[got] = notice;
            else
                json_decref(notice);
            got++;
            json_decref(message);
            json_decref(envelope);
            json_decref(
                sqs_ok("DeleteMessage", json_pack("{s:s, s:s}", "QueueUrl", t.queue_url,
                                                  "ReceiptHandle", str_of(m, "ReceiptHandle"))));
        }
        json_decref(r);
    }
    return got;
}

/* ------------------------------------------------------------------------------------------ */
/* Setup                                                                                        */

static struct config *config_with(const char *const *extra)
{
    const char *vars[32];
    size_t n = 0;
    vars[n++] = t.env_ak;
    vars[n++] = t.env_sk;
    vars[n++] = "AWS_REGION=us-east-1";
    vars[n++] = t.env_endpoint;
    vars[n++] = "S3IMGFS_PATH_STYLE=true";
    vars[n++] = t.env_dst;
    vars[n++] = "S3IMGFS_DESTINATION_PREFIX=out/";
    vars[n++] = "S3IMGFS_SIZES=thumbnail:150x150:cover, medium:640x640";
    if (t.sns_endpoint) {
        vars[n++] = t.env_topic;
        vars[n++] = t.env_sns;
    }
    for (size_t i = 0; extra[i] && n < 31; i++)
        vars[n++] = extra[i];
    vars[n] = NULL;
    struct fake_env e = {vars};
    struct s3_error err;
    struct config *cfg = lambda_config_from_env(fake_getenv, &e, &err);
    if (!cfg)
        fail_msg("lambda_config_from_env: %s", err.message);
    return cfg;
}

static struct s3client *client_for(const struct config *cfg, const char *endpoint)
{
    struct s3client_options o = {.endpoint = endpoint ? endpoint : cfg->s3.endpoint,
                                 .region = cfg->s3.region,
                                 .path_style = cfg->s3.path_style,
                                 .credentials = conf_credentials_provider,
                                 .credentials_ctx = cfg->credentials,
                                 .max_attempts = endpoint ? 1 : 0};
    struct s3_error err;
    struct s3client *c = s3client_new(&o, &err);
    if (!c)
        fail_msg("s3client_new: %s", err.message);
    return c;
}

static struct lambda_handler *handler_for(const struct config *cfg, struct s3client *s3)
{
    struct lambda_handler_options ho = {
        .cfg = cfg, .s3 = s3, .notifier = t.notifier, .metrics = t.metrics};
    struct s3_error err;
    struct lambda_handler *h = lambda_handler_new(&ho, &err);
    if (!h)
        fail_msg("lambda_handler_new: %s", err.message);
    return h;
}

static int group_setup(void **state)
{
    (void)state;
    struct resize_error rerr;
    if (resize_global_init(0, &rerr) != 0)
        fail_msg("resize_global_init: %s", rerr.reason);
    fixture_setup(&t.fx, "s3imgfs-lam");
    snprintf(t.dst, sizeof(t.dst), "%.50s-dst", t.fx.bucket);
    struct s3_error err;
    if (s3_create_bucket(t.fx.client, t.dst, &err) != 0)
        fail_msg("create bucket %s: %s", t.dst, err.message);
    if (access(AWS_CLI, X_OK) == 0) {
        const char *args[] = {"s3api", "put-bucket-versioning",      "--bucket",
                              t.dst,   "--versioning-configuration", "Status=Enabled",
                              NULL};
        t.versioned = aws_cli(NULL, args) == 0;
    }
    if (!t.versioned)
        fprintf(stderr, "# no versioning on %s (no aws CLI?): comparing Last-Modified instead\n",
                t.dst);
    sns_setup();

    snprintf(t.env_ak, sizeof(t.env_ak), "AWS_ACCESS_KEY_ID=%s", t.fx.creds.access_key_id);
    snprintf(t.env_sk, sizeof(t.env_sk), "AWS_SECRET_ACCESS_KEY=%s", t.fx.creds.secret_access_key);
    snprintf(t.env_endpoint, sizeof(t.env_endpoint), "S3IMGFS_ENDPOINT=%s", t.fx.endpoint);
    snprintf(t.env_src, sizeof(t.env_src), "S3IMGFS_SOURCE_BUCKET=%s", t.fx.bucket);
    snprintf(t.env_dst, sizeof(t.env_dst), "S3IMGFS_DESTINATION_BUCKET=%s", t.dst);
    if (t.sns_endpoint) {
        snprintf(t.env_topic, sizeof(t.env_topic), "S3IMGFS_SNS_TOPIC_ARN=%s", t.topic_arn);
        snprintf(t.env_sns, sizeof(t.env_sns), "S3IMGFS_SNS_ENDPOINT=%s", t.sns_endpoint);
    }
    const char *extra[] = {t.env_src, NULL};
    t.cfg = config_with(extra);
    t.s3 = client_for(t.cfg, NULL);
    const char *names[] = {"thumbnail", "medium"};
    t.metrics = metrics_new(names, 2);
    struct notifier_options no = {
        .cfg = t.cfg, .origin = "s3imgfs-lambda test", .metrics = t.metrics};
    t.notifier = notifier_new(&no, &err);
    if (!t.notifier || notifier_start(t.notifier, &err) != 0)
        fail_msg("notifier: %s", err.message);
    assert_int_equal(notifier_enabled(t.notifier), t.sns_endpoint != NULL);
    t.h = handler_for(t.cfg, t.s3);
    return 0;
}

static void delete_all_versions(void)
{
    const char *args[] = {"s3api", "list-object-versions", "--bucket", t.dst, "--output", "json",
                          NULL};
    char *out = NULL;
    if (aws_cli(&out, args) != 0) {
        free(out);
        return;
    }
    json_t *doc = json_loads(out ? out : "{}", 0, NULL);
    free(out);
    const char *kinds[] = {"Versions", "DeleteMarkers"};
    for (size_t k = 0; k < 2; k++) {
        json_t *list = json_object_get(doc, kinds[k]);
        for (size_t i = 0; i < json_array_size(list); i++) {
            json_t *v = json_array_get(list, i);
            const char *del[] = {"s3api",
                                 "delete-object",
                                 "--bucket",
                                 t.dst,
                                 "--key",
                                 json_string_value(json_object_get(v, "Key")),
                                 "--version-id",
                                 json_string_value(json_object_get(v, "VersionId")),
                                 NULL};
            char *o = NULL;
            if (aws_cli(&o, del) != 0)
                fprintf(stderr, "cleanup: cannot delete a version in %s\n", t.dst);
            free(o);
        }
    }
    json_decref(doc);
}

static int group_teardown(void **state)
{
    (void)state;
    lambda_handler_free(t.h);
    notifier_free(t.notifier, 2000);
    metrics_free(t.metrics);
    s3client_free(t.s3);
    conf_free(t.cfg);
    sns_teardown();
    if (t.versioned)
        delete_all_versions();
    fixture_empty_bucket(&t.fx, t.dst);
    struct s3_error err;
    if (s3_delete_bucket(t.fx.client, t.dst, &err) != 0)
        fprintf(stderr, "cleanup: delete bucket %s: %s\n", t.dst, err.message);
    fixture_teardown(&t.fx);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* The tests                                                                                    */

static char *rendition_key(const char *size)
{
    char *k = NULL;
    assert_true(asprintf(&k, "out/%s/%s", size, photo_key) > 0);
    return k;
}

/* 1. A JPEG with spaces, '+' and UTF-8 in its key: renditions, metadata, response, notice. */
static void test_resize_done(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpeg = make_jpeg(800, 600, &len);
    put_object(t.fx.bucket, photo_key, jpeg, len, "image/jpeg", t.etag);
    t.size = len;
    g_free(jpeg);

    char *event = one_event(t.fx.bucket, photo_key, t.etag, t.size);
    assert_non_null(strstr(event, "\"photos/summer+2026/my+caf%C3%A9%2Bx.jpg\""));
    bool retry = true; /* the handler must clear it */
    json_t *resp = handle(event, &retry);
    free(event);
    assert_false(retry);
    expect_counts(resp, 1, 0, 0, 0);
    json_t *rec = record_at(resp, 0);
    assert_string_equal(str_of(rec, "status"), "done");
    assert_string_equal(str_of(rec, "key"), photo_key);
    assert_string_equal(str_of(rec, "bucket"), t.fx.bucket);
    assert_int_equal(int_of(rec, "source_bytes_read"), (long long)len);
    json_t *list = json_object_get(rec, "renditions");
    assert_int_equal(json_array_size(list), 2);

    static const struct {
        const char *size;
        int w, h;
    } want[] = {{"thumbnail", 150, 150}, {"medium", 640, 480}};
    char *source_key = aws_uri_encode(photo_key, strlen(photo_key), true);
    for (size_t i = 0; i < 2; i++) {
        char *key = rendition_key(want[i].size);
        json_t *r = json_array_get(list, i);
        assert_string_equal(str_of(r, "size"), want[i].size);
        assert_string_equal(str_of(r, "key"), key);
        assert_int_equal(int_of(r, "width"), want[i].w);
        assert_int_equal(int_of(r, "height"), want[i].h);
        assert_string_equal(str_of(r, "format"), "jpeg");

        struct s3_object_info info = {0};
        struct s3_error err;
        if (s3_head_object(t.fx.client, t.dst, key, &info, &err) != 0)
            fail_msg("HEAD %s: %s", key, err.message);
        assert_string_equal(info.content_type, "image/jpeg");
        assert_int_equal(info.size, int_of(r, "bytes"));
        const char *etag = s3_object_info_meta(&info, "source-etag");
        const char *skey = s3_object_info_meta(&info, "source-key");
        assert_non_null(etag);
        assert_non_null(skey);
        assert_string_equal(etag, t.etag);
        assert_string_equal(skey, source_key);
        snprintf(t.versions[i], sizeof(t.versions[i]), "%s", info.version_id);
        t.modified[i] = info.last_modified;
        if (t.versioned)
            assert_true(info.version_id[0] != '\0');
        s3_object_info_clear(&info);

        void *data = NULL;
        size_t dlen = 0;
        if (s3_get_object_buf(t.fx.client, t.dst, key, NULL, 0, &data, &dlen, NULL, &err) != 0)
            fail_msg("GET %s: %s", key, err.message);
        int w, h;
        const char *format;
        dimensions(data, dlen, &w, &h, &format);
        assert_int_equal(w, want[i].w);
        assert_int_equal(h, want[i].h);
        assert_string_equal(format, "jpeg");
        free(data);
        free(key);
    }
    free(source_key);
    json_decref(resp);

    assert_int_equal(metrics_counter_value(t.metrics, METRICS_IMAGES), 1);
    assert_int_equal(metrics_counter_value(t.metrics, METRICS_RENDITIONS), 2);
    if (!t.sns_endpoint)
        return;
    json_t *notice = NULL;
    assert_int_equal(receive(&notice, 1, 15), 1);
    assert_string_equal(str_of(notice, "status"), "done");
    assert_string_equal(str_of(notice, "event"), "resized");
    assert_string_equal(str_of(notice, "key"), photo_key);
    assert_string_equal(str_of(notice, "bucket"), t.fx.bucket);
    assert_string_equal(str_of(notice, "etag"), t.etag);
    assert_string_equal(str_of(notice, "format"), "jpeg");
    assert_int_equal(int_of(notice, "width"), 800);
    assert_int_equal(int_of(notice, "height"), 600);
    assert_int_equal(int_of(notice, "size"), (long long)t.size);
    assert_int_equal(json_array_size(json_object_get(notice, "renditions")), 2);
    assert_true(strncmp(str_of(notice, "origin"), "s3imgfs-lambda", 14) == 0);
    json_decref(notice);
}

/* 2. The same event again (S3 delivers at least once): nothing is put, nothing announced. */
static void test_same_event_again(void **state)
{
    (void)state;
    if (!t.versioned)
        sleep(2); /* Last-Modified has whole seconds */
    char *event = one_event(t.fx.bucket, photo_key, t.etag, t.size);
    bool retry = true; /* the handler must clear it */
    json_t *resp = handle(event, &retry);
    free(event);
    assert_false(retry);
    expect_counts(resp, 0, 0, 1, 0);
    expect_record(resp, 0, "skipped", "renditions already made from this version");
    assert_int_equal(json_array_size(json_object_get(record_at(resp, 0), "renditions")), 2);
    /* the renditions were found without reading a byte of it */
    assert_int_equal(int_of(record_at(resp, 0), "source_bytes_read"), 0);
    json_decref(resp);

    const char *sizes[] = {"thumbnail", "medium"};
    for (size_t i = 0; i < 2; i++) {
        char *key = rendition_key(sizes[i]);
        struct s3_object_info info = {0};
        struct s3_error err;
        if (s3_head_object(t.fx.client, t.dst, key, &info, &err) != 0)
            fail_msg("HEAD %s: %s", key, err.message);
        assert_string_equal(info.version_id, t.versions[i]);
        assert_int_equal(info.last_modified, t.modified[i]);
        s3_object_info_clear(&info);
        if (t.versioned)
            assert_int_equal(version_count(key), 1);
        free(key);
    }
    assert_int_equal(metrics_counter_value(t.metrics, METRICS_IMAGES), 1);
    assert_int_equal(metrics_counter_value(t.metrics, METRICS_RENDITIONS), 2);
    if (t.sns_endpoint)
        assert_int_equal(receive(NULL, 0, 3), 0);
}

/* 3. A corrupt JPEG: failed for good (no retry), announced with the reason. */
static void test_corrupt_jpeg(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpeg = make_jpeg(400, 300, &len);
    char etag[128];
    put_object(t.fx.bucket, "photos/broken.jpg", jpeg, len / 2, "image/jpeg", etag);
    g_free(jpeg);
    char *event = one_event(t.fx.bucket, "photos/broken.jpg", etag, len / 2);
    bool retry = true; /* the handler must clear it */
    json_t *resp = handle(event, &retry);
    free(event);
    assert_false(retry);
    expect_counts(resp, 0, 1, 0, 0);
    expect_record(resp, 0, "failed", "JPEG");
    char *reason = strdup(str_of(record_at(resp, 0), "reason"));
    json_decref(resp);
    assert_int_equal(metrics_counter_value(t.metrics, METRICS_RESIZE_FAILURES), 1);

    struct s3_object_info info = {0};
    struct s3_error err;
    assert_int_equal(
        s3_head_object(t.fx.client, t.dst, "out/thumbnail/photos/broken.jpg", &info, &err), -1);
    assert_string_equal(err.code, "NoSuchKey");
    if (t.sns_endpoint) {
        json_t *notice = NULL;
        assert_int_equal(receive(&notice, 1, 15), 1);
        assert_string_equal(str_of(notice, "status"), "failed");
        assert_string_equal(str_of(notice, "event"), "resize_failed");
        assert_string_equal(str_of(notice, "key"), "photos/broken.jpg");
        assert_string_equal(str_of(notice, "reason"), reason);
        assert_non_null(strstr(str_of(notice, "action"), "original stays in the source bucket"));
        json_decref(notice);
    }
    free(reason);
}

/* 4. Not an image; a key of the destination; an object deleted after its event; the test
 * event: all skipped, none retried, none announced. */
static void test_skipped(void **state)
{
    (void)state;
    put_object(t.fx.bucket, "photos/notes.txt", "just text\n", 10, "text/plain", NULL);
    put_object(t.fx.bucket, "photos/gone.jpg", "x", 1, "image/jpeg", NULL);
    struct s3_error err;
    assert_int_equal(s3_delete_object(t.fx.client, t.fx.bucket, "photos/gone.jpg", &err), 0);
    char *own = rendition_key("thumbnail");
    const char *bk[] = {t.fx.bucket, "photos/notes.txt", t.dst,
                        own,         t.fx.bucket,        "photos/gone.jpg"};
    char *event = s3_event(3, bk, "0123", 10);
    bool retry = true; /* the handler must clear it */
    json_t *resp = handle(event, &retry);
    free(event);
    free(own);
    assert_false(retry);
    expect_counts(resp, 0, 0, 3, 0);
    expect_record(resp, 0, "skipped", "not an image");
    expect_record(resp, 1, "skipped", "destination");
    expect_record(resp, 2, "skipped", "the object is gone");
    json_decref(resp);

    static const char test_event[] =
        "{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\",\"Time\":\"2014-10-13T15:57:02Z\","
        "\"Bucket\":\"photos\",\"RequestId\":\"5582815E1AEA5ADF\",\"HostId\":\"x\"}";
    resp = handle(test_event, &retry);
    assert_false(retry);
    expect_counts(resp, 0, 0, 1, 0);
    expect_record(resp, 0, "skipped", "test event");
    json_decref(resp);

    /* not an S3 event at all: NULL, not worth a retry */
    retry = true;
    assert_null(lambda_handle_event(t.h, "{\"hello\":1}", 11, 0, &retry, &err));
    assert_false(retry);
    assert_string_equal(err.code, "InvalidEvent");
}

/* 4b. Judged from the first 256 KiB: a large non-image is skipped and a header over
 * max_pixels refused, the rest of either never downloaded; an image within the limits is read
 * whole by the same GET. */
static void test_judged_from_first_bytes(void **state)
{
    (void)state;
    size_t video_len = 5u << 20;
    char *video = malloc(video_len);
    assert_non_null(video);
    fixture_random_bytes(video, video_len, 11);
    memcpy(video + 4, "ftypisom", 8); /* an MP4 as far as anyone sniffing can tell */
    put_object(t.fx.bucket, "photos/clip.jpg", video, video_len, "image/jpeg", NULL);
    free(video);

    size_t jl, bomb_len = 4u << 20;
    unsigned char *jpeg = make_jpeg(64, 64, &jl);
    size_t i;
    for (i = 2; i + 9 < jl; i++)
        if (jpeg[i] == 0xFF && (jpeg[i + 1] == 0xC0 || jpeg[i + 1] == 0xC2))
            break;
    assert_true(i + 9 < jl);
    jpeg[i + 5] = 0xEA; /* height 60000 */
    jpeg[i + 6] = 0x60;
    jpeg[i + 7] = 0xEA; /* width 60000 */
    jpeg[i + 8] = 0x60;
    char *bomb = malloc(bomb_len);
    assert_non_null(bomb);
    memcpy(bomb, jpeg, jl);
    fixture_random_bytes(bomb + jl, bomb_len - jl, 12);
    g_free(jpeg);
    put_object(t.fx.bucket, "photos/bomb.jpg", bomb, bomb_len, "image/jpeg", NULL);
    free(bomb);

    const char *bk[] = {t.fx.bucket, "photos/clip.jpg", t.fx.bucket, "photos/bomb.jpg"};
    char *event = s3_event(2, bk, "0123", 10);
    bool retry = true; /* the handler must clear it */
    json_t *resp = handle(event, &retry);
    free(event);
    assert_false(retry);
    expect_counts(resp, 0, 1, 1, 0);
    expect_record(resp, 0, "skipped", "not an image");
    expect_record(resp, 1, "failed", "image is 60000x60000 (3600 MP), limit is 100 MP");
    long long clip_read = int_of(record_at(resp, 0), "source_bytes_read");
    long long bomb_read = int_of(record_at(resp, 1), "source_bytes_read");
    fprintf(stderr, "# read of a 5 MB non-image: %lld bytes; of a 4 MB pixel bomb: %lld bytes\n",
            clip_read, bomb_read);
    assert_true(clip_read >= 256 * 1024 && clip_read < 512 * 1024);
    assert_true(bomb_read >= 256 * 1024 && bomb_read < 512 * 1024);
    json_decref(resp);
    if (t.sns_endpoint) { /* the bomb is announced, the non-image is not */
        json_t *notice = NULL;
        assert_int_equal(receive(&notice, 1, 15), 1);
        assert_string_equal(str_of(notice, "status"), "failed");
        assert_string_equal(str_of(notice, "key"), "photos/bomb.jpg");
        assert_non_null(strstr(str_of(notice, "reason"), "limit is 100 MP"));
        json_decref(notice);
        assert_int_equal(receive(NULL, 0, 3), 0);
    }
}

/* 5. Too close to the deadline: nothing is started and a retry is asked for. */
static void test_deadline(void **state)
{
    (void)state;
    const char *bk[] = {t.fx.bucket, photo_key, t.fx.bucket, "photos/other.jpg"};
    char *event = s3_event(2, bk, t.etag, t.size);
    bool retry = false; /* the handler must set it */
    json_t *resp = handle_with(t.h, event, now_ms() + 1000, &retry);
    assert_true(retry);
    expect_counts(resp, 0, 0, 0, 2);
    expect_record(resp, 0, "not started", "deadline");
    expect_record(resp, 1, "not started", "deadline");
    json_decref(resp);
    /* a deadline already past */
    retry = false;
    resp = handle_with(t.h, event, now_ms() - 5000, &retry);
    assert_true(retry);
    expect_counts(resp, 0, 0, 0, 2);
    json_decref(resp);
    free(event);
}

/* 6. Over [resize] max_file_mb, and a bucket the function may not read: permanent failures,
 * announced. */
static void test_permanent_s3_failures(void **state)
{
    (void)state;
    const char *extra[] = {"S3IMGFS_MAX_FILE_MB=1", NULL}; /* and any source bucket */
    struct config *cfg = config_with(extra);
    struct s3client *s3 = client_for(cfg, NULL);
    struct lambda_handler *h = handler_for(cfg, s3);

    /* A JPEG of 3 MB: refused from its first bytes, the rest never downloaded. */
    size_t jl, big = (3u << 20) + 1000;
    unsigned char *jpeg = make_jpeg(64, 64, &jl);
    char *data = malloc(big);
    assert_non_null(data);
    memcpy(data, jpeg, jl);
    fixture_random_bytes(data + jl, big - jl, 7);
    g_free(jpeg);
    char etag[128];
    put_object(t.fx.bucket, "photos/big.jpg", data, big, "image/jpeg", etag);
    free(data);
    char *event = one_event(t.fx.bucket, "photos/big.jpg", etag, big);
    bool retry = true; /* the handler must clear it */
    json_t *resp = handle_with(h, event, 0, &retry);
    free(event);
    assert_false(retry);
    expect_counts(resp, 0, 1, 0, 0);
    expect_record(resp, 0, "failed", "file is 3.0 MB, limit is 1 MB");
    long long read = int_of(record_at(resp, 0), "source_bytes_read");
    fprintf(stderr, "# 3 MB JPEG over max_file_mb: %lld bytes read\n", read);
    assert_true(read >= 256 * 1024 && read < 512 * 1024);
    json_decref(resp);
    if (t.sns_endpoint) {
        json_t *notice = NULL;
        assert_int_equal(receive(&notice, 1, 15), 1);
        assert_string_equal(str_of(notice, "status"), "failed");
        assert_string_equal(str_of(notice, "key"), "photos/big.jpg");
        assert_non_null(strstr(str_of(notice, "reason"), "limit is 1 MB"));
        json_decref(notice);
    }

    const char *ak = getenv("S3IMGFS_TEST_OTHER_ACCESS_KEY");
    const char *sk = getenv("S3IMGFS_TEST_OTHER_SECRET_KEY");
    if (ak && *ak && sk && *sk) {
        struct aws_credentials other = {0};
        snprintf(other.access_key_id, sizeof(other.access_key_id), "%s", ak);
        snprintf(other.secret_access_key, sizeof(other.secret_access_key), "%s", sk);
        struct s3client_options o = {.endpoint = t.fx.endpoint,
                                     .region = t.fx.region,
                                     .path_style = true,
                                     .credentials = aws_credentials_static,
                                     .credentials_ctx = &other};
        struct s3_error err;
        struct s3client *oc = s3client_new(&o, &err);
        assert_non_null(oc);
        char bucket[80];
        snprintf(bucket, sizeof(bucket), "%s-other", t.fx.bucket);
        if (s3_create_bucket(oc, bucket, &err) != 0)
            fail_msg("create %s: %s", bucket, err.message);
        struct s3_body body = s3_body_mem("private", 7);
        assert_int_equal(s3_put_object(oc, bucket, "secret.jpg", &body, NULL, NULL, &err), 0);
        event = one_event(bucket, "secret.jpg", "x", 7);
        retry = true;
        resp = handle_with(h, event, 0, &retry);
        free(event);
        assert_false(retry);
        expect_counts(resp, 0, 1, 0, 0);
        expect_record(resp, 0, "failed", "cannot read (HEAD) the source");
        json_decref(resp);
        s3_delete_object(oc, bucket, "secret.jpg", &err);
        s3_delete_bucket(oc, bucket, &err);
        s3client_free(oc);
        if (t.sns_endpoint) {
            json_t *notice = NULL;
            assert_int_equal(receive(&notice, 1, 15), 1);
            assert_string_equal(str_of(notice, "status"), "failed");
            assert_string_equal(str_of(notice, "key"), "secret.jpg");
            json_decref(notice);
        }
    } else {
        fprintf(stderr, "# S3IMGFS_TEST_OTHER_ACCESS_KEY is not set: no AccessDenied case\n");
    }
    lambda_handler_free(h);
    s3client_free(s3);
    conf_free(cfg);
}

/* 7. A server that cannot be reached: failed, a retry asked for, nothing announced. */
static void test_transient_failure(void **state)
{
    (void)state;
    struct s3client *s3 = client_for(t.cfg, "http://127.0.0.1:1");
    struct lambda_handler *h = handler_for(t.cfg, s3);
    char *event = one_event(t.fx.bucket, photo_key, t.etag, t.size);
    bool retry = false; /* the handler must set it */
    json_t *resp = handle_with(h, event, 0, &retry);
    free(event);
    assert_true(retry);
    expect_counts(resp, 0, 1, 0, 0);
    expect_record(resp, 0, "failed", "cannot read (HEAD) the source");
    json_decref(resp);
    lambda_handler_free(h);
    s3client_free(s3);
    /* neither this nor the skipped records of test 4 were announced */
    if (t.sns_endpoint)
        assert_int_equal(receive(NULL, 0, 3), 0);
}

/* 9. A PNG stored as "image/jpeg", with renditions named after their format ({ext}): the label
 * sends the first look to the wrong names (.jpg), so the source is read, its bytes say PNG, and
 * the renditions are made (and found the second time) under the PNG's names. */
static void test_same_event_mislabelled(void **state)
{
    (void)state;
    const char *extra[] = {"S3IMGFS_KEY_TEMPLATE={size}/{dir}{base}.{ext}", NULL};
    struct config *cfg = config_with(extra);
    struct s3client *s3 = client_for(cfg, NULL);
    struct lambda_handler *h = handler_for(cfg, s3);
    const char *key = "photos/labelled-wrong";
    size_t len;
    unsigned char *png = make_image(300, 200, ".png", &len);
    char etag[128];
    put_object(t.fx.bucket, key, png, len, "image/jpeg", etag);
    g_free(png);
    const char *made[2] = {"out/thumbnail/photos/labelled-wrong.png",
                           "out/medium/photos/labelled-wrong.png"};
    for (int round = 0; round < 2; round++) {
        char *event = one_event(t.fx.bucket, key, etag, len);
        bool retry = true;
        json_t *resp = handle_with(h, event, 0, &retry);
        free(event);
        assert_false(retry);
        json_t *rec = record_at(resp, 0);
        assert_string_equal(str_of(rec, "status"), round == 0 ? "done" : "skipped");
        assert_int_equal(int_of(rec, "source_bytes_read"), (long long)len);
        json_t *list = json_object_get(rec, "renditions");
        assert_int_equal(json_array_size(list), 2);
        for (size_t i = 0; i < 2; i++)
            assert_string_equal(str_of(json_array_get(list, i), "key"), made[i]);
        json_decref(resp);
    }
    for (size_t i = 0; i < 2; i++) {
        struct s3_object_info info = {0};
        struct s3_error err;
        if (s3_head_object(t.fx.client, t.dst, made[i], &info, &err) != 0)
            fail_msg("HEAD %s: %s", made[i], err.message);
        assert_string_equal(s3_object_info_meta(&info, "source-etag"), etag);
        s3_object_info_clear(&info);
    }
    if (t.sns_endpoint) { /* one notice: the first round's */
        json_t *notice = NULL;
        assert_int_equal(receive(&notice, 1, 15), 1);
        assert_string_equal(str_of(notice, "key"), key);
        assert_string_equal(str_of(notice, "event"), "resized");
        json_decref(notice);
        assert_int_equal(receive(NULL, 0, 3), 0);
    }
    lambda_handler_free(h);
    s3client_free(s3);
    conf_free(cfg);
}

/* 10. A photo stored without a type of its own (binary/octet-stream, as SDKs store what they are
 * not told) under the default names ({size}/{key}, no {ext}): the repeat is found without
 * reading it either. */
static void test_same_event_unlabelled(void **state)
{
    (void)state;
    const char *key = "photos/unlabelled.jpg";
    size_t len;
    unsigned char *jpeg = make_jpeg(320, 240, &len);
    char etag[128];
    put_object(t.fx.bucket, key, jpeg, len, "binary/octet-stream", etag);
    g_free(jpeg);
    for (int round = 0; round < 2; round++) {
        char *event = one_event(t.fx.bucket, key, etag, len);
        bool retry = true;
        json_t *resp = handle(event, &retry);
        free(event);
        assert_false(retry);
        json_t *rec = record_at(resp, 0);
        assert_string_equal(str_of(rec, "status"), round == 0 ? "done" : "skipped");
        assert_int_equal(int_of(rec, "source_bytes_read"), round == 0 ? (long long)len : 0);
        json_t *list = json_object_get(rec, "renditions");
        assert_int_equal(json_array_size(list), 2);
        assert_string_equal(str_of(json_array_get(list, 0), "key"),
                            "out/thumbnail/photos/unlabelled.jpg");
        json_decref(resp);
    }
    if (t.sns_endpoint) { /* one notice: the first round's */
        json_t *notice = NULL;
        assert_int_equal(receive(&notice, 1, 15), 1);
        assert_string_equal(str_of(notice, "key"), key);
        json_decref(notice);
        assert_int_equal(receive(NULL, 0, 3), 0);
    }
}

int main(void)
{
    fixture_require("S3IMGFS_TEST_ENDPOINT");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resize_done),
        cmocka_unit_test(test_same_event_again),
        cmocka_unit_test(test_corrupt_jpeg),
        cmocka_unit_test(test_skipped),
        cmocka_unit_test(test_judged_from_first_bytes),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_permanent_s3_failures),
        cmocka_unit_test(test_transient_failure),
        cmocka_unit_test(test_same_event_mislabelled),
        cmocka_unit_test(test_same_event_unlabelled),
    };
    int rc = cmocka_run_group_tests(tests, group_setup, group_teardown);
    resize_global_shutdown();
    return rc;
}
