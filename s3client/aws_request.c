/* Signed requests to AWS services other than S3: Query protocol (SNS, STS, SQS) and JSON/REST
 * (Lambda), so that notify/ and lambda/ share the signer, the connection pool and retries. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void aws_response_clear(struct aws_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    for (size_t i = 0; i < resp->header_count; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    free(resp->headers);
    memset(resp, 0, sizeof(*resp));
}

const char *aws_response_header(const struct aws_response *resp, const char *name)
{
    for (size_t i = 0; i < resp->header_count; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

int aws_request_send(struct s3client *c, const struct aws_request *r, struct aws_response *resp,
                     struct s3_error *err)
{
    char default_endpoint[256];
    snprintf(default_endpoint, sizeof(default_endpoint), "https://%s.%s.amazonaws.com", r->service,
             c->region);
    const char *endpoint = r->endpoint && *r->endpoint ? r->endpoint : default_endpoint;
    const char *scheme, *hostport;
    size_t len;
    char *host = NULL;
    memset(resp, 0, sizeof(*resp));
    if (endpoint_split(endpoint, &scheme, &hostport, &len) != 0 || len == 0 ||
        !(host = strndup(hostport, len))) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "%s endpoint '%s' must be http(s)://host[:port]", r->service, endpoint);
        return -1;
    }
    struct aws_header headers[HEADERS_MAX];
    size_t n = 0;
    if (r->header_count + 1 > HEADERS_MAX) {
        free(host);
        s3_error_set(err, 0, "InvalidArgument", false, "%s request: more than %d headers",
                     r->service, HEADERS_MAX - 1);
        return -1;
    }
    if (r->content_type)
        headers[n++] = (struct aws_header){"content-type", r->content_type};
    for (size_t i = 0; i < r->header_count; i++)
        headers[n++] = r->headers[i];
    char what[300];
    snprintf(what, sizeof(what), "%s %s%s", r->method, endpoint, r->path ? r->path : "/");
    struct s3_body body = s3_body_mem(r->body, r->body_len);
    struct http_request req = {.what = what,
                               .service = r->service,
                               .method = r->method,
                               .scheme = scheme,
                               .host = host,
                               .path = r->path ? r->path : "/",
                               .query = r->query,
                               .headers = headers,
                               .header_count = n,
                               .body = r->body ? &body : NULL,
                               .idempotent = r->idempotent};
    int rc = http_perform(c, &req, resp, err);
    free(host);
    return rc;
}

static void form_add(struct strbuf *b, const char *name, const char *value)
{
    char *n = aws_uri_encode(name, strlen(name), false);
    char *v = aws_uri_encode(value, strlen(value), false);
    if (!n || !v)
        b->failed = true;
    else
        strbuf_printf(b, "%s%s=%s", b->len ? "&" : "", n, v);
    free(n);
    free(v);
}

int aws_query_call(struct s3client *c, const char *service, const char *endpoint,
                   const char *action, const char *version, const struct aws_header *params,
                   size_t param_count, struct aws_response *resp, struct s3_error *err)
{
    struct strbuf body = {0};
    form_add(&body, "Action", action);
    form_add(&body, "Version", version);
    for (size_t i = 0; i < param_count; i++)
        form_add(&body, params[i].name, params[i].value);
    if (body.failed) {
        strbuf_free(&body);
        memset(resp, 0, sizeof(*resp));
        s3_error_set(err, 0, "OutOfMemory", false, "%s %s: out of memory", service, action);
        return -1;
    }
    struct aws_request r = {
        .service = service,
        .endpoint = endpoint,
        .method = "POST",
        .content_type = "application/x-www-form-urlencoded; charset=utf-8",
        .body = body.data,
        .body_len = body.len,
        /* Query actions such as Publish are not idempotent: repeat only unsent requests. */
        .idempotent = false,
    };
    int rc = aws_request_send(c, &r, resp, err);
    strbuf_free(&body);
    return rc;
}
