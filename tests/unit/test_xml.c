/* The XML layer of s3client: the path walker, DTD refusal, escaping, error answers. */
#include "internal.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct seen {
    char paths[16][64];
    char texts[16][64];
    int n;
};

static void record(void *ctx, const char *path, const char *text)
{
    struct seen *s = ctx;
    if (s->n < 16) {
        snprintf(s->paths[s->n], 64, "%s", path);
        snprintf(s->texts[s->n], 64, "%s", text);
        s->n++;
    }
}

static void walker_reports_paths_and_text(void **state)
{
    (void)state;
    const char *xml = "<?xml version=\"1.0\"?><A xmlns=\"urn:x\"><B>one &amp; two</B>"
                      "<C><D>deep</D></C><E/></A>";
    struct seen s = {0};
    assert_int_equal(xml_walk(xml, strlen(xml), record, &s), 0);
    assert_int_equal(s.n, 5);
    assert_string_equal(s.paths[0], "A/B");
    assert_string_equal(s.texts[0], "one & two");
    assert_string_equal(s.paths[1], "A/C/D");
    assert_string_equal(s.texts[1], "deep");
    assert_string_equal(s.paths[2], "A/C");
    assert_string_equal(s.paths[3], "A/E");
    assert_string_equal(s.texts[3], "");
    assert_string_equal(s.paths[4], "A");
}

static void walker_rejects_broken_and_dtd(void **state)
{
    (void)state;
    struct seen s = {0};
    assert_int_equal(xml_walk("<A><B></A>", 10, record, &s), -1);
    assert_int_equal(xml_walk("", 0, record, &s), -1);
    const char *dtd = "<!DOCTYPE A [<!ENTITY x \"y\">]><A>&x;</A>";
    assert_int_equal(xml_walk(dtd, strlen(dtd), record, &s), -1);
    char deep[4096] = "";
    for (int i = 0; i < 100; i++)
        strcat(deep, "<a>");
    for (int i = 0; i < 100; i++)
        strcat(deep, "</a>");
    assert_int_equal(xml_walk(deep, strlen(deep), record, &s), -1);
}

static void find_text(void **state)
{
    (void)state;
    const char *xml = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                      "<UploadId>2~abc</UploadId></InitiateMultipartUploadResult>";
    char *id = aws_xml_find_text(xml, strlen(xml), "UploadId");
    assert_string_equal(id, "2~abc");
    free(id);
    assert_null(aws_xml_find_text(xml, strlen(xml), "Missing"));
    assert_null(aws_xml_find_text("not xml", 7, "Key"));
}

static void escaping(void **state)
{
    (void)state;
    struct strbuf b = {0};
    strbuf_xml_escaped(&b, "a<b>&\"c'\n");
    assert_string_equal(b.data, "a&lt;b&gt;&amp;&quot;c&apos;&#10;");
    /* What we escape comes back intact through the parser. */
    struct strbuf doc = {0};
    strbuf_puts(&doc, "<K>");
    strbuf_xml_escaped(&doc, "x <&> \"y\" 'z'\tq");
    strbuf_puts(&doc, "</K>");
    char *back = aws_xml_find_text(doc.data, doc.len, "K");
    assert_string_equal(back, "x <&> \"y\" 'z'\tq");
    free(back);
    strbuf_free(&b);
    strbuf_free(&doc);
}

static void iso8601(void **state)
{
    (void)state;
    assert_int_equal(s3_parse_iso8601("2026-01-01T00:00:00.000Z"), 1767225600);
    assert_int_equal(s3_parse_iso8601("1970-01-01T00:00:01Z"), 1);
    assert_int_equal(s3_parse_iso8601("yesterday"), (time_t)-1);
}

static struct aws_response response(long status, const char *body)
{
    struct aws_response r = {
        .status = status, .body = (char *)body, .body_len = body ? strlen(body) : 0};
    return r;
}

static void error_answers(void **state)
{
    (void)state;
    struct s3_error err;
    /* radosgw: empty <Message/> */
    struct aws_response r = response(403, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error>"
                                          "<Code>SignatureDoesNotMatch</Code><Message></Message>"
                                          "<RequestId>tx0001</RequestId></Error>");
    s3_error_from_response(&r, "PUT s3://b/k", &err);
    assert_string_equal(err.code, "SignatureDoesNotMatch");
    assert_int_equal(err.http_status, 403);
    assert_string_equal(err.request_id, "tx0001");
    assert_false(err.retryable);
    assert_non_null(strstr(err.message, "PUT s3://b/k: the secret access key does not match"));

    r = response(503, "<Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>");
    s3_error_from_response(&r, "GET x", &err);
    assert_string_equal(err.code, "SlowDown");
    assert_true(err.retryable);
    assert_non_null(strstr(err.message, "Reduce your rate"));

    /* No body (HEAD): the status names the error. */
    r = response(404, NULL);
    s3_error_from_response(&r, "HEAD s3://b/k", &err);
    assert_string_equal(err.code, "NotFound");
    r = response(500, NULL);
    s3_error_from_response(&r, "HEAD s3://b/k", &err);
    assert_string_equal(err.code, "InternalError");
    assert_true(err.retryable);

    /* Query protocol (SNS) */
    r = response(404, "<ErrorResponse><Error><Type>Sender</Type><Code>NotFound</Code>"
                      "<Message>Topic does not exist</Message></Error><RequestId>r1</RequestId>"
                      "</ErrorResponse>");
    s3_error_from_response(&r, "POST sns", &err);
    assert_string_equal(err.code, "NotFound");
    assert_string_equal(err.request_id, "r1");
    assert_non_null(strstr(err.message, "Topic does not exist"));

    /* JSON (Lambda) */
    r = response(400, "{\"__type\":\"com.amazon#InvalidParameterValueException\","
                      "\"message\":\"bad payload\"}");
    s3_error_from_response(&r, "POST lambda", &err);
    assert_string_equal(err.code, "InvalidParameterValueException");
    assert_non_null(strstr(err.message, "bad payload"));

    /* JSON escapes in the message are decoded (quotes, backslash, \u, surrogate pairs). */
    r = response(400, "{\"__type\":\"com.amazonaws.sqs#InvalidAction\",\"message\":"
                      "\"Unknown action: Foo\\\"Bar\\\\Baz \\u00e9 \\ud83d\\udcf7\"}");
    s3_error_from_response(&r, "POST sqs", &err);
    assert_string_equal(err.code, "InvalidAction");
    assert_non_null(strstr(err.message, "Unknown action: Foo\"Bar\\Baz \xc3\xa9 \xf0\x9f\x93\xb7"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(walker_reports_paths_and_text),
        cmocka_unit_test(walker_rejects_broken_and_dtd),
        cmocka_unit_test(find_text),
        cmocka_unit_test(escaping),
        cmocka_unit_test(iso8601),
        cmocka_unit_test(error_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
