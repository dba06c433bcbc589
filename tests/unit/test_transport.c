/* The transport against a scripted HTTP server on 127.0.0.1 that answers each request with the
 * next entry of a script (503 SlowDown, a dropped connection, ...) and records what it was sent.
 * The real-server side of every operation is in tests/integration; this covers what a real
 * server will not produce on demand (faults) or not show (headers it ignores). */
#include "s3client.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

enum action { ANSWER, DROP };

struct step {
    enum action action;
    int status;
    const char *extra_headers; /* "Name: value\r\n..." */
    const char *body;
};

struct server {
    int listen_fd;
    int port;
    pthread_t thread;
    const struct step *script;
    size_t steps;
    size_t served;      /* requests seen */
    char dates[16][32]; /* x-amz-date of each request */
    char methods[16][8];
    char heads[16][8192]; /* request line and headers, lowercased */
};

static bool read_request(int fd, struct server *s)
{
    char buf[65536];
    size_t len = 0;
    buf[0] = '\0';
    char *end = NULL;
    while (!(end = strstr(buf, "\r\n\r\n"))) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - len - 1);
        if (n <= 0)
            return false;
        len += (size_t)n;
        buf[len] = '\0';
    }
    size_t header_len = (size_t)(end + 4 - buf);
    const char *cl = strcasestr(buf, "\ncontent-length:");
    size_t body_len = cl ? strtoul(cl + 16, NULL, 10) : 0;
    /* The body is read and dropped (it may be larger than buf: multipart parts). */
    size_t body_seen = len - header_len;
    while (body_seen < body_len) {
        char sink[65536];
        size_t want = body_len - body_seen < sizeof(sink) ? body_len - body_seen : sizeof(sink);
        ssize_t n = read(fd, sink, want);
        if (n <= 0)
            return false;
        body_seen += (size_t)n;
    }
    size_t i = s->served < 16 ? s->served : 15;
    sscanf(buf, "%7s", s->methods[i]);
    snprintf(s->heads[i], sizeof(s->heads[i]), "%.*s", (int)header_len, buf);
    for (char *p = s->heads[i]; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    const char *date = strcasestr(buf, "\nx-amz-date:");
    if (date)
        sscanf(date + 12, " %31s", s->dates[i]);
    return true;
}

static void *serve(void *arg)
{
    struct server *s = arg;
    while (s->served < s->steps) {
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            break;
        /* One request per connection ("Connection: close"): this single-threaded server must
         * not sit on an idle keep-alive connection while the client opens another. */
        if (s->served < s->steps && read_request(fd, s)) {
            const struct step *st = &s->script[s->served++];
            if (st->action == DROP) {
                close(fd);
                continue;
            }
            char resp[4096];
            const char *body = st->body ? st->body : "";
            int n = snprintf(
                resp, sizeof(resp),
                "HTTP/1.1 %d X\r\nConnection: close\r\nContent-Length: %zu\r\n%s\r\n%s", st->status,
                strlen(body), st->extra_headers ? st->extra_headers : "", body);
            if (write(fd, resp, (size_t)n) != n)
                fprintf(stderr, "scripted server: short write\n");
        }
        close(fd);
    }
    return NULL;
}

static void server_start(struct server *s, const struct step *script, size_t steps)
{
    memset(s, 0, sizeof(*s));
    s->script = script;
    s->steps = steps;
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(s->listen_fd, 8), 0);
    socklen_t alen = sizeof(addr);
    getsockname(s->listen_fd, (struct sockaddr *)&addr, &alen);
    s->port = ntohs(addr.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, serve, s), 0);
}

static void server_stop(struct server *s)
{
    shutdown(s->listen_fd, SHUT_RDWR);
    close(s->listen_fd);
    pthread_join(s->thread, NULL);
}

static struct aws_credentials test_creds = {"AKIDEXAMPLE", "secret", "", 0};

static struct s3client *client_for(const struct server *s, unsigned attempts)
{
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s->port);
    struct s3client_options o = {.endpoint = endpoint,
                                 .region = "us-east-1",
                                 .path_style = true,
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &test_creds,
                                 .max_attempts = attempts,
                                 .retry_base_ms = 1,
                                 .retry_max_ms = 5};
    struct s3_error err;
    struct s3client *c = s3client_new(&o, &err);
    assert_non_null(c);
    return c;
}

#define SLOWDOWN                                                                                   \
    {                                                                                              \
        ANSWER, 503, "Content-Type: application/xml\r\n",                                          \
            "<Error><Code>SlowDown</Code><Message>Please reduce your request "                     \
            "rate.</Message></Error>"                                                              \
    }
#define OK_EMPTY                                                                                   \
    {                                                                                              \
        ANSWER, 200, "ETag: \"abc\"\r\n", ""                                                       \
    }

static void slowdown_is_retried_until_success(void **state)
{
    (void)state;
    static const struct step script[] = {SLOWDOWN, SLOWDOWN, OK_EMPTY};
    struct server s;
    server_start(&s, script, 3);
    struct s3client *c = client_for(&s, 5);
    struct s3_body b = s3_body_mem("data", 4);
    struct s3_put_result pr;
    struct s3_error err;
    assert_int_equal(s3_put_object(c, "bucket", "key", &b, NULL, &pr, &err), 0);
    assert_string_equal(pr.etag, "abc");
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 3);
}

static void attempts_are_bounded(void **state)
{
    (void)state;
    static const struct step script[] = {SLOWDOWN, SLOWDOWN, SLOWDOWN, OK_EMPTY};
    struct server s;
    server_start(&s, script, 4);
    struct s3client *c = client_for(&s, 3);
    struct s3_error err;
    assert_int_equal(s3_head_object(c, "bucket", "key", NULL, &err), -1);
    assert_int_equal(err.http_status, 503);
    assert_true(err.retryable);
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 3);
}

static void access_denied_is_not_retried(void **state)
{
    (void)state;
    static const struct step script[] = {
        {ANSWER, 403, "x-amz-request-id: req-42\r\n",
         "<Error><Code>AccessDenied</Code><Message></Message><RequestId>req-42</RequestId>"
         "</Error>"},
        OK_EMPTY};
    struct server s;
    server_start(&s, script, 2);
    struct s3client *c = client_for(&s, 5);
    struct s3_body b = s3_body_mem("data", 4);
    struct s3_error err;
    assert_int_equal(s3_put_object(c, "bucket", "key", &b, NULL, NULL, &err), -1);
    assert_string_equal(err.code, "AccessDenied");
    assert_string_equal(err.request_id, "req-42");
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "PUT s3://bucket/key"));
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 1);
}

static void dropped_connection_is_retried(void **state)
{
    (void)state;
    static const struct step script[] = {{DROP, 0, NULL, NULL}, {DROP, 0, NULL, NULL}, OK_EMPTY};
    struct server s;
    server_start(&s, script, 3);
    struct s3client *c = client_for(&s, 5);
    struct s3_error err;
    assert_int_equal(s3_head_object(c, "bucket", "key", NULL, &err), 0);
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 3);
}

static void unsafe_request_is_not_repeated_after_sending(void **state)
{
    (void)state;
    /* A Query-protocol POST (e.g. SNS Publish) may have been acted on before the connection
     * dropped: it must not be sent twice. */
    static const struct step script[] = {{DROP, 0, NULL, NULL}, OK_EMPTY};
    struct server s;
    server_start(&s, script, 2);
    struct s3client *c = client_for(&s, 5);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    struct aws_header p[] = {{"Message", "hi"}};
    struct aws_response resp;
    struct s3_error err;
    assert_int_equal(aws_query_call(c, "sns", endpoint, "Publish", "2010-03-31", p, 1, &resp, &err),
                     -1);
    assert_int_equal(err.http_status, 0);
    aws_response_clear(&resp);
    s3client_free(c);
    /* Let the server finish its script so it can be stopped. */
    s.steps = 1;
    server_stop(&s);
    assert_int_equal(s.served, 1);
}

static void throttled_unsafe_request_is_retried(void **state)
{
    (void)state;
    /* 503/429 mean the server did not act: safe to repeat even for a POST. */
    static const struct step script[] = {
        {ANSWER, 400, NULL,
         "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate "
         "exceeded</Message></Error></ErrorResponse>"},
        {ANSWER, 429, NULL,
         "<ErrorResponse><Error><Code>Throttling</Code></Error></ErrorResponse>"},
        {ANSWER, 200, NULL,
         "<PublishResponse><PublishResult><MessageId>m-1</MessageId></PublishResult>"
         "</PublishResponse>"}};
    struct server s;
    server_start(&s, script, 3);
    struct s3client *c = client_for(&s, 5);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    struct aws_response resp;
    struct s3_error err;
    /* A 400 Throttling is not known to be unacted on: a POST stops there. */
    assert_int_equal(
        aws_query_call(c, "sns", endpoint, "Publish", "2010-03-31", NULL, 0, &resp, &err), -1);
    assert_string_equal(err.code, "Throttling");
    assert_non_null(strstr(err.message, "Rate exceeded"));
    aws_response_clear(&resp);
    assert_int_equal(
        aws_query_call(c, "sns", endpoint, "Publish", "2010-03-31", NULL, 0, &resp, &err), 0);
    char *id = aws_xml_find_text(resp.body, resp.body_len, "MessageId");
    assert_string_equal(id, "m-1");
    free(id);
    aws_response_clear(&resp);
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 3);
}

static void clock_skew_is_corrected(void **state)
{
    (void)state;
    static const struct step script[] = {
        {ANSWER, 403, "Date: Wed, 01 Jan 2031 00:00:00 GMT\r\n",
         "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request "
         "time and the current time is too large.</Message></Error>"},
        OK_EMPTY};
    struct server s;
    server_start(&s, script, 2);
    struct s3client *c = client_for(&s, 3);
    struct s3_error err;
    void *data = NULL;
    size_t len;
    assert_int_equal(s3_get_object_buf(c, "bucket", "key", NULL, 0, &data, &len, NULL, &err), 0);
    free(data);
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 2);
    assert_memory_equal(s.dates[1], "2031010", 7); /* signed with the server's clock */
    assert_memory_not_equal(s.dates[0], "2031", 4);
}

static void json_service_error_is_parsed(void **state)
{
    (void)state;
    static const struct step script[] = {
        {ANSWER, 404, "x-amzn-ErrorType: ResourceNotFoundException:http://internal\r\n",
         "{\"Type\":\"User\",\"message\":\"Function not found: arn:aws:lambda:f\"}"}};
    struct server s;
    server_start(&s, script, 1);
    struct s3client *c = client_for(&s, 3);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    struct aws_request r = {.service = "lambda",
                            .endpoint = endpoint,
                            .method = "POST",
                            .path = "/2015-03-31/functions/f/invocations",
                            .content_type = "application/json",
                            .body = "{}",
                            .body_len = 2};
    struct aws_response resp;
    struct s3_error err;
    assert_int_equal(aws_request_send(c, &r, &resp, &err), -1);
    assert_string_equal(err.code, "ResourceNotFoundException");
    assert_non_null(strstr(err.message, "Function not found"));
    assert_int_equal(resp.status, 404);
    aws_response_clear(&resp);
    s3client_free(c);
    server_stop(&s);
}

static void copy_error_after_200_is_an_error(void **state)
{
    (void)state;
    static const struct step script[] = {
        {ANSWER, 200, NULL,
         "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an "
         "internal error.</Message></Error>"},
        {ANSWER, 200, NULL,
         "<CopyObjectResult><ETag>\"0123\"</ETag><LastModified>2026-01-01T00:00:00.000Z"
         "</LastModified></CopyObjectResult>"}};
    struct server s;
    server_start(&s, script, 2);
    struct s3client *c = client_for(&s, 1);
    struct s3_put_result pr;
    struct s3_error err;
    assert_int_equal(s3_copy_object(c, "b", "src", "b", "dst", NULL, &pr, &err), -1);
    assert_string_equal(err.code, "InternalError");
    assert_true(err.retryable);
    assert_int_equal(s3_copy_object(c, "b", "src", "b", "dst", NULL, &pr, &err), 0);
    assert_string_equal(pr.etag, "0123");
    s3client_free(c);
    server_stop(&s);
}

static void hostile_xml_is_rejected(void **state)
{
    (void)state;
    static const struct step script[] = {
        {ANSWER, 200, NULL,
         "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 "
         "\"&lol;&lol;&lol;&lol;\">]><ListBucketResult><Contents><Key>&lol2;</Key></Contents>"
         "</ListBucketResult>"}};
    struct server s;
    server_start(&s, script, 1);
    struct s3client *c = client_for(&s, 1);
    struct s3_list_page page;
    struct s3_error err;
    assert_int_equal(s3_list_page(c, "b", NULL, &page, &err), -1);
    assert_string_equal(err.code, "BadResponse");
    s3client_free(c);
    server_stop(&s);
}

static void request_headers_carry_options(void **state)
{
    (void)state;
    static const struct step script[] = {
        OK_EMPTY,
        OK_EMPTY,
        OK_EMPTY,
        {ANSWER, 206, "Content-Range: bytes 10-19/100\r\n", "0123456789"}};
    struct server s;
    server_start(&s, script, 4);
    struct aws_credentials creds = {"AKIDEXAMPLE", "very-secret", "session-token-value", 0};
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    struct s3client_options o = {.endpoint = endpoint,
                                 .region = "eu-west-1",
                                 .path_style = true,
                                 .content_md5 = true,
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &creds};
    struct s3_error err;
    struct s3client *c = s3client_new(&o, &err);
    assert_non_null(c);

    struct aws_header meta[] = {{"mtime", "1767225600"}};
    struct s3_put_options po = {.content_type = "image/jpeg",
                                .sse = "aws:kms",
                                .sse_kms_key_id = "alias/photos",
                                .metadata = meta,
                                .metadata_count = 1};
    struct s3_body b = s3_body_mem("abc", 3);
    assert_int_equal(s3_put_object(c, "bkt", "dir/a b.jpg", &b, &po, NULL, &err), 0);
    const char *h = s.heads[0];
    assert_non_null(strstr(h, "put /bkt/dir/a%20b.jpg http/1.1"));
    assert_non_null(strstr(h, "\r\nx-amz-server-side-encryption: aws:kms\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-server-side-encryption-aws-kms-key-id: alias/photos\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-meta-mtime: 1767225600\r\n"));
    assert_non_null(strstr(h, "\r\ncontent-type: image/jpeg\r\n"));
    /* MD5("abc") and SHA-256("abc") */
    assert_non_null(strstr(h, "\r\ncontent-md5: kafqmdzst7dwlj99kof/cg==\r\n"));
    assert_non_null(strstr(h,
                           "\r\nx-amz-content-sha256: "
                           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-security-token: session-token-value\r\n"));
    assert_non_null(strstr(h, "credential=akidexample/"));
    assert_non_null(strstr(h, "/eu-west-1/s3/aws4_request"));
    assert_null(strstr(h, "very-secret"));
    assert_null(strstr(h, "expect:")); /* no 100-continue round trip */

    struct s3_copy_options co = {.if_match = "0123abcd"};
    assert_int_equal(s3_copy_object(c, "src", "a+b/c.jpg", "dst", "x.jpg", &co, NULL, &err), -1);
    h = s.heads[1];
    assert_non_null(strstr(h, "\r\nx-amz-copy-source: /src/a%2bb/c.jpg\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-copy-source-if-match: 0123abcd\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-metadata-directive: copy\r\n"));

    assert_int_equal(s3_delete_object(c, "bkt", "k", &err), 0);
    assert_non_null(strstr(s.heads[2], "delete /bkt/k http/1.1"));

    struct s3_get_options go = {.ranged = true, .range_start = 10, .range_length = 10};
    void *data;
    size_t len;
    struct s3_object_info info = {0};
    assert_int_equal(s3_get_object_buf(c, "bkt", "k", &go, 0, &data, &len, &info, &err), 0);
    assert_non_null(strstr(s.heads[3], "\r\nrange: bytes=10-19\r\n"));
    assert_int_equal(len, 10);
    assert_int_equal(info.size, 100);
    free(data);
    s3_object_info_clear(&info);
    s3client_free(c);
    server_stop(&s);
}

/* Without the content_md5 option a PUT carries the signed SHA-256 only (the server's check). */
static void put_without_content_md5(void **state)
{
    (void)state;
    static const struct step script[] = {OK_EMPTY};
    struct server s;
    server_start(&s, script, 1);
    struct s3client *c = client_for(&s, 1);
    struct s3_error err;
    struct s3_body b = s3_body_mem("abc", 3);
    assert_int_equal(s3_put_object(c, "bkt", "k", &b, NULL, NULL, &err), 0);
    assert_null(strstr(s.heads[0], "content-md5:"));
    assert_non_null(strstr(s.heads[0],
                           "\r\nx-amz-content-sha256: "
                           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\r\n"));
    s3client_free(c);
    server_stop(&s);
}

static void virtual_hosted_addressing(void **state)
{
    (void)state;
    static const struct step script[] = {OK_EMPTY, OK_EMPTY};
    struct server s;
    server_start(&s, script, 2);
    char endpoint[64];
    /* "localhost" resolves to 127.0.0.1 for bucket.localhost (curl does this itself). */
    snprintf(endpoint, sizeof(endpoint), "http://localhost:%d", s.port);
    struct s3client_options o = {.endpoint = endpoint,
                                 .region = "us-east-1",
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &test_creds};
    struct s3_error err;
    struct s3client *c = s3client_new(&o, &err);
    assert_non_null(c);
    if (s3_head_object(c, "photos", "a/b.jpg", NULL, &err) != 0)
        fail_msg("%s", err.message);
    char host[80];
    snprintf(host, sizeof(host), "\r\nhost: photos.localhost:%d\r\n", s.port);
    assert_non_null(strstr(s.heads[0], "head /a/b.jpg http/1.1"));
    assert_non_null(strstr(s.heads[0], host));
    /* A bucket name that is no DNS label goes path-style. */
    if (s3_head_object(c, "Upper_Case", "k", NULL, &err) != 0)
        fail_msg("%s", err.message);
    assert_non_null(strstr(s.heads[1], "head /upper_case/k http/1.1"));
    s3client_free(c);
    server_stop(&s);
}

static void bad_options_are_refused(void **state)
{
    (void)state;
    struct s3_error err;
    struct s3client_options o = {.endpoint = "ftp://example.com",
                                 .region = "us-east-1",
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &test_creds};
    assert_null(s3client_new(&o, &err));
    assert_non_null(strstr(err.message, "http:// or https://"));
    o.endpoint = "https://example.com/some/path";
    assert_null(s3client_new(&o, &err));
    assert_non_null(strstr(err.message, "no path"));
    /* Headers are never dropped silently. */
    o.endpoint = "http://127.0.0.1:1";
    struct s3client *c = s3client_new(&o, &err);
    assert_non_null(c);
    struct aws_header many[40];
    for (int i = 0; i < 40; i++)
        many[i] = (struct aws_header){"x-test", "v"};
    struct aws_request r = {.service = "sqs",
                            .endpoint = "http://127.0.0.1:1",
                            .method = "POST",
                            .headers = many,
                            .header_count = 40};
    struct aws_response resp;
    assert_int_equal(aws_request_send(c, &r, &resp, &err), -1);
    assert_string_equal(err.code, "InvalidArgument");
    s3client_free(c);

    o.endpoint = NULL;
    o.region = NULL;
    assert_null(s3client_new(&o, &err));
    assert_non_null(strstr(err.message, "region"));
}

static void failed_multipart_upload_is_aborted(void **state)
{
    (void)state;
    static const struct step script[] = {
        {ANSWER, 200, NULL,
         "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>big</Key>"
         "<UploadId>upload-7</UploadId></InitiateMultipartUploadResult>"},
        {ANSWER, 403, NULL, "<Error><Code>AccessDenied</Code><Message>no</Message></Error>"},
        {ANSWER, 204, NULL, NULL}};
    struct server s;
    server_start(&s, script, 3);
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s.port);
    struct s3client_options o = {.endpoint = endpoint,
                                 .region = "us-east-1",
                                 .path_style = true,
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &test_creds,
                                 .multipart_threshold = 5u << 20,
                                 .multipart_parallel = 1};
    struct s3_error err;
    struct s3client *c = s3client_new(&o, &err);
    assert_non_null(c);
    size_t len = (6u << 20) + 1;
    char *data = calloc(1, len);
    struct s3_body b = s3_body_mem(data, len);
    assert_int_equal(s3_upload(c, "b", "big", &b, NULL, NULL, &err), -1);
    assert_string_equal(err.code, "AccessDenied"); /* the part's error, not the abort's */
    s3client_free(c);
    free(data);
    server_stop(&s);
    assert_int_equal(s.served, 3);
    assert_non_null(strstr(s.heads[0], "post /b/big?uploads= http/1.1"));
    assert_non_null(strstr(s.heads[1], "put /b/big?partnumber=1&uploadid=upload-7 http/1.1"));
    assert_non_null(strstr(s.heads[2], "delete /b/big?uploadid=upload-7 http/1.1"));
}

/* s3_copy's multipart path against a scripted server: a 12 MiB + 1 source (the size comes
 * from Content-Range: the scripted server always sends Content-Length of its body) copied in
 * 5 MiB parts, one at a time. */
#define COPY_SOURCE_HEAD(etag)                                                                     \
    {                                                                                              \
        ANSWER, 200,                                                                               \
            "ETag: \"" etag "\"\r\nContent-Range: bytes 0-0/12582913\r\n"                          \
            "Content-Type: image/jpeg\r\nCache-Control: max-age=60\r\n"                            \
            "x-amz-meta-origin: camera\r\n",                                                       \
            NULL                                                                                   \
    }
#define COPY_CREATE                                                                                \
    {                                                                                              \
        ANSWER, 200, NULL,                                                                         \
            "<InitiateMultipartUploadResult><Bucket>dst</Bucket><Key>big copy</Key>"               \
            "<UploadId>u-1</UploadId></InitiateMultipartUploadResult>"                             \
    }
#define COPY_PART(etag)                                                                            \
    {                                                                                              \
        ANSWER, 200, NULL,                                                                         \
            "<CopyPartResult><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>" etag     \
            "</ETag></CopyPartResult>"                                                             \
    }

static struct s3client *copy_client(const struct server *s)
{
    char endpoint[64];
    snprintf(endpoint, sizeof(endpoint), "http://127.0.0.1:%d", s->port);
    struct s3client_options o = {.endpoint = endpoint,
                                 .region = "us-east-1",
                                 .path_style = true,
                                 .credentials = aws_credentials_static,
                                 .credentials_ctx = &test_creds,
                                 .max_attempts = 1,
                                 .multipart_parallel = 1};
    struct s3_error err;
    struct s3client *c = s3client_new(&o, &err);
    assert_non_null(c);
    return c;
}

static const struct s3_copy_options big_copy = {.multipart_threshold = 5u << 20,
                                                .part_size = 5u << 20};

static void s3_copy_parts_carry_range_and_if_match(void **state)
{
    (void)state;
    static const struct step script[] = {
        COPY_SOURCE_HEAD("aaa"),
        COPY_CREATE,
        COPY_PART("0123456789abcdef0123456789abcdef"), /* radosgw: no quotes */
        COPY_PART("\"00112233445566778899aabbccddeeff\""),
        COPY_PART("ffeeddccbbaa99887766554433221100"),
        COPY_SOURCE_HEAD("aaa"),
        {ANSWER, 200, NULL,
         "<CompleteMultipartUploadResult><Bucket>dst</Bucket><Key>big copy</Key><ETag></ETag>"
         "</CompleteMultipartUploadResult>"}};
    struct server s;
    server_start(&s, script, 7);
    struct s3client *c = copy_client(&s);
    struct s3_put_options po = {.sse = "AES256"}; /* only its SSE counts without REPLACE */
    struct s3_copy_options co = big_copy;
    co.put = &po;
    struct s3_put_result pr;
    struct s3_error err;
    if (s3_copy(c, "src", "a+b/c.jpg", "dst", "big copy", &co, &pr, &err) != 0)
        fail_msg("%s", err.message);
    /* Computed as S3 does, since the server left <ETag> empty. */
    assert_non_null(strstr(pr.etag, "-3"));
    assert_int_equal(strlen(pr.etag), 34);
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 7);

    assert_non_null(strstr(s.heads[0], "head /src/a%2bb/c.jpg http/1.1"));
    const char *h = s.heads[1];
    assert_non_null(strstr(h, "post /dst/big%20copy?uploads= http/1.1"));
    assert_non_null(strstr(h, "\r\ncontent-type: image/jpeg\r\n"));
    assert_non_null(strstr(h, "\r\ncache-control: max-age=60\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-meta-origin: camera\r\n"));
    assert_non_null(strstr(h, "\r\nx-amz-server-side-encryption: aes256\r\n"));
    static const char *ranges[] = {"bytes=0-5242879", "bytes=5242880-10485759",
                                   "bytes=10485760-12582912"};
    for (int i = 0; i < 3; i++) {
        h = s.heads[2 + i];
        char line[128];
        snprintf(line, sizeof(line), "put /dst/big%%20copy?partnumber=%d&uploadid=u-1 http/1.1",
                 i + 1);
        assert_non_null(strstr(h, line));
        assert_non_null(strstr(h, "\r\nx-amz-copy-source: /src/a%2bb/c.jpg\r\n"));
        snprintf(line, sizeof(line), "\r\nx-amz-copy-source-range: %s\r\n", ranges[i]);
        assert_non_null(strstr(h, line));
        assert_non_null(strstr(h, "\r\nx-amz-copy-source-if-match: aaa\r\n"));
    }
    assert_non_null(strstr(s.heads[5], "head /src/a%2bb/c.jpg http/1.1"));
    assert_non_null(strstr(s.heads[6], "post /dst/big%20copy?uploadid=u-1 http/1.1"));
}

static void s3_copy_source_changed_is_aborted(void **state)
{
    (void)state;
    static const struct step script[] = {COPY_SOURCE_HEAD("aaa"),
                                         COPY_CREATE,
                                         COPY_PART("0123456789abcdef0123456789abcdef"),
                                         COPY_PART("0123456789abcdef0123456789abcdef"),
                                         COPY_PART("0123456789abcdef0123456789abcdef"),
                                         COPY_SOURCE_HEAD("bbb"),
                                         {ANSWER, 204, NULL, NULL}};
    struct server s;
    server_start(&s, script, 7);
    struct s3client *c = copy_client(&s);
    struct s3_error err;
    assert_int_equal(s3_copy(c, "src", "k", "dst", "big copy", &big_copy, NULL, &err), -1);
    assert_int_equal(err.http_status, 412);
    assert_string_equal(err.code, "PreconditionFailed");
    assert_non_null(strstr(err.message, "changed"));
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 7);
    assert_non_null(strstr(s.heads[6], "delete /dst/big%20copy?uploadid=u-1 http/1.1"));
}

static void s3_copy_part_error_after_200_is_aborted(void **state)
{
    (void)state;
    static const struct step script[] = {
        COPY_SOURCE_HEAD("aaa"),
        COPY_CREATE,
        COPY_PART("0123456789abcdef0123456789abcdef"),
        {ANSWER, 200, NULL,
         "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an "
         "internal error.</Message></Error>"},
        {ANSWER, 204, NULL, NULL}};
    struct server s;
    server_start(&s, script, 5);
    struct s3client *c = copy_client(&s);
    struct s3_error err;
    assert_int_equal(s3_copy(c, "src", "k", "dst", "big copy", &big_copy, NULL, &err), -1);
    assert_string_equal(err.code, "InternalError"); /* the part's error, not the abort's */
    assert_true(err.retryable);
    assert_non_null(strstr(err.message, "UploadPartCopy 2"));
    s3client_free(c);
    server_stop(&s);
    assert_int_equal(s.served, 5);
    assert_non_null(strstr(s.heads[4], "delete /dst/big%20copy?uploadid=u-1 http/1.1"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slowdown_is_retried_until_success),
        cmocka_unit_test(attempts_are_bounded),
        cmocka_unit_test(access_denied_is_not_retried),
        cmocka_unit_test(dropped_connection_is_retried),
        cmocka_unit_test(unsafe_request_is_not_repeated_after_sending),
        cmocka_unit_test(throttled_unsafe_request_is_retried),
        cmocka_unit_test(clock_skew_is_corrected),
        cmocka_unit_test(json_service_error_is_parsed),
        cmocka_unit_test(copy_error_after_200_is_an_error),
        cmocka_unit_test(hostile_xml_is_rejected),
        cmocka_unit_test(put_without_content_md5),
        cmocka_unit_test(request_headers_carry_options),
        cmocka_unit_test(virtual_hosted_addressing),
        cmocka_unit_test(bad_options_are_refused),
        cmocka_unit_test(failed_multipart_upload_is_aborted),
        cmocka_unit_test(s3_copy_parts_carry_range_and_if_match),
        cmocka_unit_test(s3_copy_source_changed_is_aborted),
        cmocka_unit_test(s3_copy_part_error_after_200_is_aborted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
