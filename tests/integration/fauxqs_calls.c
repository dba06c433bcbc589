/* fauxqs_calls: see fauxqs_calls.h. */
#include "fauxqs_calls.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fauxqs_sqs_call(struct s3client *c, const char *endpoint, const char *action, const char *json,
                    struct aws_response *resp, struct s3_error *err)
{
    char target[64];
    snprintf(target, sizeof(target), "AmazonSQS.%s", action);
    struct aws_header headers[] = {{"X-Amz-Target", target}};
    struct aws_request req = {
        .service = "sqs",
        .endpoint = endpoint,
        .method = "POST",
        .content_type = "application/x-amz-json-1.0",
        .headers = headers,
        .header_count = 1,
        .body = json,
        .body_len = strlen(json),
    };
    return aws_request_send(c, &req, resp, err);
}

char *fauxqs_sqs_ok(struct s3client *c, const char *endpoint, const char *action, const char *json)
{
    struct aws_response resp;
    struct s3_error err;
    if (fauxqs_sqs_call(c, endpoint, action, json, &resp, &err) != 0)
        fail_msg("SQS %s: %s [%s] %s", action, err.message, err.code, resp.body);
    assert_int_equal(resp.status, 200);
    const char *ct = aws_response_header(&resp, "content-type");
    assert_non_null(ct);
    assert_non_null(strstr(ct, "application/x-amz-json-1.0"));
    char *body = resp.body ? resp.body : strdup("");
    resp.body = NULL;
    aws_response_clear(&resp);
    return body;
}

char *fauxqs_sns_ok(struct s3client *c, const char *endpoint, const char *action,
                    const struct aws_header *params, size_t n, const char *want)
{
    struct aws_response resp;
    struct s3_error err;
    if (aws_query_call(c, "sns", endpoint, action, SNS_VERSION, params, n, &resp, &err) != 0)
        fail_msg("SNS %s: %s [%s]", action, err.message, err.code);
    assert_int_equal(resp.status, 200);
    char *text = want ? aws_xml_find_text(resp.body, resp.body_len, want) : NULL;
    if (want && !text)
        fail_msg("SNS %s: no <%s> in %s", action, want, resp.body);
    aws_response_clear(&resp);
    return text;
}
