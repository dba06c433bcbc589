/* Error values shared by every s3client call (and reused by other modules). */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void s3_error_clear(struct s3_error *err)
{
    if (err)
        memset(err, 0, sizeof(*err));
}

void s3_error_set(struct s3_error *err, long http_status, const char *code, bool retryable,
                  const char *fmt, ...)
{
    if (!err)
        return;
    err->http_status = http_status;
    snprintf(err->code, sizeof(err->code), "%s", code ? code : "");
    err->retryable = retryable;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
}

/* ---- Errors answered by a server ---- */

struct error_fields {
    char *code;
    char *message;
    char *request_id;
};

static void error_end(void *ctx, const char *path, const char *text)
{
    struct error_fields *f = ctx;
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    char **slot = NULL;
    if (strcmp(last, "Code") == 0)
        slot = &f->code;
    else if (strcmp(last, "Message") == 0)
        slot = &f->message;
    else if (strcmp(last, "RequestId") == 0)
        slot = &f->request_id;
    if (slot && !*slot && *text)
        *slot = strdup(text);
}

/* Appends code point cp as UTF-8. */
static char *put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        *o++ = (char)cp;
    } else if (cp < 0x800) {
        *o++ = (char)(0xc0 | (cp >> 6));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *o++ = (char)(0xe0 | (cp >> 12));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *o++ = (char)(0xf0 | (cp >> 18));
        *o++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *o++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *o++ = (char)(0x80 | (cp & 0x3f));
    }
    return o;
}

/* Decodes the JSON string body at p (after the opening quote) up to the closing quote. */
static char *json_unescape(const char *p)
{
    char *out = malloc(strlen(p) * 3 + 1), *o = out; /* \u escapes grow by at most 3/6 */
    if (!out)
        return NULL;
    while (*p && *p != '"') {
        if (*p != '\\') {
            *o++ = *p++;
            continue;
        }
        char esc = p[1];
        p += esc ? 2 : 1;
        unsigned cp;
        switch (esc) {
        case 'n':
            *o++ = '\n';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'u':
            if (sscanf(p, "%4x", &cp) != 1)
                break;
            p += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
                unsigned low;
                if (sscanf(p + 2, "%4x", &low) == 1 && low >= 0xdc00 && low < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                    p += 6;
                }
            }
            o = put_utf8(o, cp);
            break;
        case '\0':
            break;
        default:
            *o++ = esc; /* \" \\ \/ */
        }
    }
    *o = '\0';
    return out;
}

/* JSON services (Lambda, SQS) answer {"__type":"...","message":"..."}; only those two strings
 * are needed, so a scan for the member names is enough. */
static char *json_string_member(const char *body, const char *name)
{
    char pattern[32];
    snprintf(pattern, sizeof(pattern), "\"%s\"", name);
    const char *p = body ? strstr(body, pattern) : NULL;
    if (!p)
        return NULL;
    p += strlen(pattern);
    while (*p == ' ' || *p == ':')
        p++;
    if (*p++ != '"')
        return NULL;
    return json_unescape(p);
}

static void parse_error_body(const struct aws_response *resp, struct error_fields *f)
{
    if (resp->body_len && resp->body[0] == '<')
        xml_walk(resp->body, resp->body_len, error_end, f);
    if (!f->code && resp->body_len && resp->body[0] == '{') {
        f->code = json_string_member(resp->body, "__type");
        if (!f->message)
            f->message = json_string_member(resp->body, "message");
        if (!f->message)
            f->message = json_string_member(resp->body, "Message");
    }
    const char *type = aws_response_header(resp, "x-amzn-errortype");
    if (!f->code && type)
        f->code = strndup(type, strcspn(type, ":"));
    /* "com.amazonaws...#ResourceNotFoundException" -> the part after '#' */
    if (f->code && strchr(f->code, '#')) {
        char *short_code = strdup(strchr(f->code, '#') + 1);
        free(f->code);
        f->code = short_code;
    }
}

/* HEAD answers and some proxies have no body: name the status the way S3 would. */
static const char *code_for_status(long status)
{
    switch (status) {
    case 301:
        return "PermanentRedirect";
    case 400:
        return "BadRequest";
    case 403:
        return "AccessDenied";
    case 404:
        return "NotFound";
    case 405:
        return "MethodNotAllowed";
    case 409:
        return "Conflict";
    case 412:
        return "PreconditionFailed";
    case 416:
        return "InvalidRange";
    case 429:
        return "TooManyRequests";
    case 500:
        return "InternalError";
    case 501:
        return "NotImplemented";
    case 503:
        return "ServiceUnavailable";
    default:
        return status >= 500 ? "InternalError" : "HTTPError";
    }
}

static bool code_is_retryable(const char *code, long status)
{
    static const char *const transient[] = {"SlowDown",
                                            "Throttling",
                                            "ThrottlingException",
                                            "ThrottledException",
                                            "RequestThrottled",
                                            "RequestThrottledException",
                                            "TooManyRequestsException",
                                            "ProvisionedThroughputExceededException",
                                            "TransactionInProgressException",
                                            "RequestLimitExceeded",
                                            "BandwidthLimitExceeded",
                                            "RequestTimeout",
                                            "RequestTimeoutException",
                                            "PriorRequestNotComplete",
                                            "InternalError",
                                            "ServiceUnavailable",
                                            "BadDigest",
                                            "XAmzContentSHA256Mismatch",
                                            "IDPCommunicationError",
                                            "EC2ThrottledException",
                                            "TooManyRequests",
                                            NULL};
    if (status >= 500 || status == 429)
        return true;
    for (size_t i = 0; transient[i]; i++)
        if (strcmp(code, transient[i]) == 0)
            return true;
    return false;
}

/* What the user should do, for the errors people actually hit. */
static const char *advice_for(const char *code)
{
    static const struct {
        const char *code;
        const char *advice;
    } table[] = {
        {"SignatureDoesNotMatch",
         "the secret access key does not match the access key ID (check secret_access_key, "
         "the credentials in the environment or ~/.aws/credentials, and the region)"},
        {"InvalidAccessKeyId", "the access key ID is not known to this server (check "
                               "access_key_id, AWS_ACCESS_KEY_ID or the profile)"},
        {"AccessDenied", "the credentials are not allowed to do this (check the IAM policy or "
                         "bucket policy; see deploy/ for the least-privilege policy)"},
        {"NoSuchBucket", "the bucket does not exist (check the bucket name, the endpoint and "
                         "the region)"},
        {"NoSuchKey", "the object does not exist"},
        {"NotFound", "not found"},
        {"ExpiredToken", "the session token has expired (refresh the credentials)"},
        {"InvalidToken", "the session token is malformed or invalid"},
        {"RequestTimeTooSkewed", "this machine's clock is too far from the server's (sync the "
                                 "clock, e.g. with NTP)"},
        {"PermanentRedirect", "the bucket is in another region or needs another endpoint (check "
                              "region and endpoint)"},
        {"AuthorizationHeaderMalformed", "the region used for signing is wrong for this bucket "
                                         "(check region)"},
        {"EntityTooLarge", "the object is larger than the server accepts"},
        {"EntityTooSmall", "a multipart part other than the last is smaller than 5 MiB"},
        {"NoSuchUpload", "the multipart upload no longer exists (aborted or completed)"},
        {"BadDigest", "the data changed in transit or on disk while it was sent (Content-MD5 "
                      "mismatch)"},
        {"XAmzContentSHA256Mismatch", "the data changed in transit or on disk while it was "
                                      "sent (SHA-256 mismatch)"},
        {"SlowDown", "the server asks to slow down"},
        {"InvalidRange", "the requested range is outside the object"},
        {"PreconditionFailed", "the object changed (its ETag no longer matches)"},
        {"KMS.NotFoundException", "the KMS key does not exist (check sse_kms_key_id)"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(code, table[i].code) == 0)
            return table[i].advice;
    return NULL;
}

void s3_error_from_response(const struct aws_response *resp, const char *what, struct s3_error *err)
{
    if (!err)
        return;
    struct error_fields f = {0};
    parse_error_body(resp, &f);
    const char *code = f.code ? f.code : code_for_status(resp->status);
    const char *advice = advice_for(code);
    const char *reqid = f.request_id ? f.request_id : aws_response_header(resp, "x-amz-request-id");
    if (!reqid)
        reqid = aws_response_header(resp, "x-amzn-requestid");

    s3_error_set(
        err, resp->status, code, code_is_retryable(code, resp->status), "%s: %s (HTTP %ld %s%s%s)",
        what, advice ? advice : (f.message && *f.message ? f.message : code), resp->status, code,
        f.message && *f.message && advice ? ": " : "", f.message && advice ? f.message : "");
    snprintf(err->request_id, sizeof(err->request_id), "%s", reqid ? reqid : "");
    free(f.code);
    free(f.message);
    free(f.request_id);
}
