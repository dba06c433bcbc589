/* The client object: options, endpoint and addressing (path-style or virtual-hosted), and the
 * glue every S3 operation uses to build and run its request. */
#include "internal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

/* curl_global_init is not thread-safe: run it once, before any handle exists. */
static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int endpoint_split(const char *endpoint, const char **scheme, const char **host, size_t *host_len)
{
    if (strncmp(endpoint, "https://", 8) == 0)
        *scheme = "https", *host = endpoint + 8;
    else if (strncmp(endpoint, "http://", 7) == 0)
        *scheme = "http", *host = endpoint + 7;
    else
        return -1;
    *host_len = strcspn(*host, "/?#");
    return 0;
}

static int parse_endpoint(struct s3client *c, const char *endpoint, struct s3_error *err)
{
    const char *scheme, *host;
    size_t len;
    if (endpoint_split(endpoint, &scheme, &host, &len) != 0) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "endpoint '%s' must start with http:// or https://", endpoint);
        return -1;
    }
    if (len == 0 || (host[len] && strcmp(host + len, "/") != 0)) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "endpoint '%s' must be scheme://host[:port] with no path", endpoint);
        return -1;
    }
    c->scheme = strdup(scheme);
    c->hostport = strndup(host, len);
    return c->scheme && c->hostport ? 0 : -1;
}

#define DEFAULT(field, value)                                                                      \
    do {                                                                                           \
        if (!(field))                                                                              \
            (field) = (value);                                                                     \
    } while (0)

struct s3client *s3client_new(const struct s3client_options *o, struct s3_error *err)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        s3_error_set(err, 0, "InvalidArgument", false, "libcurl failed to initialise: %s",
                     curl_easy_strerror(global_rc));
        return NULL;
    }
    if (!o->region || !*o->region || !o->credentials) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "s3client needs a region and a credentials provider");
        return NULL;
    }
    struct s3client *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    char default_endpoint[256];
    snprintf(default_endpoint, sizeof(default_endpoint), "https://s3.%s.amazonaws.com", o->region);
    if (parse_endpoint(c, o->endpoint && *o->endpoint ? o->endpoint : default_endpoint, err)) {
        s3client_free(c);
        return NULL;
    }
    c->region = strdup(o->region);
    c->path_style = o->path_style;
    c->content_md5 = o->content_md5;
    c->max_send_speed = o->max_send_speed;
    c->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    c->credentials = o->credentials;
    c->credentials_ctx = o->credentials_ctx;
    c->max_attempts = o->max_attempts;
    c->retry_base_ms = o->retry_base_ms;
    c->retry_max_ms = o->retry_max_ms;
    c->connect_timeout_ms = o->connect_timeout_ms;
    c->low_speed_seconds = o->low_speed_seconds;
    c->multipart_threshold = o->multipart_threshold;
    c->multipart_part_size = o->multipart_part_size;
    c->multipart_parallel = o->multipart_parallel;
    DEFAULT(c->max_attempts, 5);
    DEFAULT(c->retry_base_ms, 100);
    DEFAULT(c->retry_max_ms, 20000);
    DEFAULT(c->connect_timeout_ms, 10000);
    DEFAULT(c->low_speed_seconds, 60);
    DEFAULT(c->multipart_threshold, 16u << 20);
    DEFAULT(c->multipart_part_size, 8u << 20);
    DEFAULT(c->multipart_parallel, 4);
    if (c->multipart_part_size < (5u << 20))
        c->multipart_part_size = 5u << 20;
    c->user_agent = strdup(o->user_agent ? o->user_agent : "s3imgfs/" S3IMGFS_VERSION);
    c->verbose = o->verbose;
    if (!c->region || !c->user_agent || (o->ca_file && !c->ca_file) || http_pool_init(c) != 0) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory creating the S3 client");
        s3client_free(c);
        return NULL;
    }
    return c;
}

void s3client_free(struct s3client *c)
{
    if (!c)
        return;
    if (c->share)
        http_pool_free(c);
    free(c->scheme);
    free(c->hostport);
    free(c->region);
    free(c->ca_file);
    free(c->user_agent);
    free(c);
}

const char *s3client_region(const struct s3client *c)
{
    return c->region;
}

/* A bucket name can be a host name label only if it is lowercase DNS-safe; with TLS, dots
 * would break the wildcard certificate, so such buckets fall back to path-style. */
static bool bucket_fits_host(const struct s3client *c, const char *bucket)
{
    size_t len = strlen(bucket);
    if (len < 3 || len > 63 || bucket[0] == '-' || bucket[len - 1] == '-')
        return false;
    for (const char *p = bucket; *p; p++) {
        if (*p == '.' && strcmp(c->scheme, "https") == 0)
            return false;
        if (!islower((unsigned char)*p) && !isdigit((unsigned char)*p) && *p != '-' && *p != '.')
            return false;
    }
    return true;
}

int s3_target_init(struct s3client *c, struct s3_target *t, const char *method, const char *bucket,
                   const char *key, struct s3_error *err)
{
    memset(t, 0, sizeof(*t));
    if (!bucket || !*bucket) {
        s3_error_set(err, 0, "InvalidArgument", false, "%s: no bucket name given", method);
        return -1;
    }
    char *encoded_key = key ? aws_uri_encode(key, strlen(key), true) : strdup("");
    struct strbuf host = {0}, path = {0};
    bool virtual_host = !c->path_style && bucket_fits_host(c, bucket);
    if (virtual_host) {
        strbuf_printf(&host, "%s.%s", bucket, c->hostport);
        strbuf_printf(&path, "/%s", encoded_key ? encoded_key : "");
    } else {
        char *encoded_bucket = aws_uri_encode(bucket, strlen(bucket), false);
        strbuf_puts(&host, c->hostport);
        strbuf_printf(&path, "/%s%s%s", encoded_bucket ? encoded_bucket : "", key ? "/" : "",
                      encoded_key ? encoded_key : "");
        free(encoded_bucket);
    }
    free(encoded_key);
    if (host.failed || path.failed || !encoded_key) {
        strbuf_free(&host);
        strbuf_free(&path);
        s3_error_set(err, 0, "OutOfMemory", false, "%s: out of memory", method);
        return -1;
    }
    t->host = host.data;
    t->path = path.data;
    snprintf(t->what, sizeof(t->what), "%s s3://%s/%s", method, bucket, key ? key : "");
    return 0;
}

void s3_target_clear(struct s3_target *t)
{
    free(t->host);
    free(t->path);
    t->host = t->path = NULL;
}

int s3_perform(struct s3client *c, const struct s3_target *t, struct http_request *req,
               struct aws_response *resp, struct s3_error *err)
{
    req->what = t->what;
    req->service = "s3";
    req->scheme = c->scheme;
    req->host = t->host;
    req->path = t->path;
    req->s3_signing = true;
    return http_perform(c, req, resp, err);
}

void s3_copy_etag(char *out, size_t out_size, const char *s)
{
    if (!s) {
        out[0] = '\0';
        return;
    }
    size_t len = strlen(s);
    if (len >= 2 && s[0] == '"' && s[len - 1] == '"') {
        s++;
        len -= 2;
    }
    snprintf(out, out_size, "%.*s", (int)len, s);
}

void s3_object_info_clear(struct s3_object_info *info)
{
    if (!info)
        return;
    for (size_t i = 0; i < info->metadata_count; i++) {
        free(info->metadata[i].name);
        free(info->metadata[i].value);
    }
    free(info->metadata);
    memset(info, 0, sizeof(*info));
}

const char *s3_object_info_meta(const struct s3_object_info *info, const char *name)
{
    for (size_t i = 0; i < info->metadata_count; i++)
        if (strcmp(info->metadata[i].name, name) == 0)
            return info->metadata[i].value;
    return NULL;
}

/* "bytes 0-99/1234" -> 1234 */
static bool total_from_content_range(const char *range, uint64_t *total)
{
    const char *slash = range ? strchr(range, '/') : NULL;
    if (!slash || slash[1] == '*')
        return false;
    *total = strtoull(slash + 1, NULL, 10);
    return true;
}

int s3_info_from_headers(const struct aws_response *resp, struct s3_object_info *info)
{
    s3_object_info_clear(info);
    const char *v;
    if (!total_from_content_range(aws_response_header(resp, "content-range"), &info->size) &&
        (v = aws_response_header(resp, "content-length")))
        info->size = strtoull(v, NULL, 10);
    if ((v = aws_response_header(resp, "last-modified")))
        info->last_modified = curl_getdate(v, NULL);
    s3_copy_etag(info->etag, sizeof(info->etag), aws_response_header(resp, "etag"));
    if ((v = aws_response_header(resp, "content-type")))
        snprintf(info->content_type, sizeof(info->content_type), "%s", v);
    if ((v = aws_response_header(resp, "x-amz-server-side-encryption")))
        snprintf(info->sse, sizeof(info->sse), "%s", v);
    if ((v = aws_response_header(resp, "x-amz-version-id")))
        snprintf(info->version_id, sizeof(info->version_id), "%s", v);

    static const char prefix[] = "x-amz-meta-";
    for (size_t i = 0; i < resp->header_count; i++) {
        if (strncmp(resp->headers[i].name, prefix, sizeof(prefix) - 1) != 0)
            continue;
        struct s3_kv *grown =
            realloc(info->metadata, (info->metadata_count + 1) * sizeof(*info->metadata));
        if (!grown)
            return -1;
        info->metadata = grown;
        struct s3_kv kv = {strdup(resp->headers[i].name + sizeof(prefix) - 1),
                           strdup(resp->headers[i].value)};
        if (!kv.name || !kv.value) {
            free(kv.name);
            free(kv.value);
            return -1;
        }
        info->metadata[info->metadata_count++] = kv;
    }
    return 0;
}

uint64_t s3client_retries(const struct s3client *client)
{
    return __atomic_load_n(&client->retries, __ATOMIC_RELAXED);
}
