/* ListObjectsV2: one page, or all pages following continuation tokens. Keys are requested
 * URL-encoded (encoding-type=url) so that keys holding characters XML 1.0 cannot carry still
 * list correctly; they are decoded here. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct list_parse {
    struct s3_list_page *page;
    struct s3_list_object cur;
    bool url_encoded; /* keys stay encoded until the whole page is read */
    bool oom;
};

static bool push_object(struct list_parse *p)
{
    struct s3_list_page *pg = p->page;
    struct s3_list_object *grown = realloc(pg->objects, (pg->object_count + 1) * sizeof(*grown));
    if (!grown)
        return false;
    pg->objects = grown;
    grown[pg->object_count++] = p->cur;
    memset(&p->cur, 0, sizeof(p->cur));
    return true;
}

static bool push_prefix(struct list_parse *p, const char *text)
{
    struct s3_list_page *pg = p->page;
    char **grown = realloc(pg->common_prefixes, (pg->prefix_count + 1) * sizeof(*grown));
    if (!grown)
        return false;
    pg->common_prefixes = grown;
    char *copy = strdup(text);
    if (!copy)
        return false;
    grown[pg->prefix_count++] = copy;
    return true;
}

static void list_end(void *ctx, const char *path, const char *text)
{
    struct list_parse *p = ctx;
    static const char root[] = "ListBucketResult/";
    if (strncmp(path, root, sizeof(root) - 1) != 0)
        return;
    path += sizeof(root) - 1;
    bool ok = true;
    if (strcmp(path, "Contents/Key") == 0) {
        free(p->cur.key);
        ok = (p->cur.key = strdup(text)) != NULL;
    } else if (strcmp(path, "Contents/Size") == 0) {
        p->cur.size = strtoull(text, NULL, 10);
    } else if (strcmp(path, "Contents/LastModified") == 0) {
        p->cur.last_modified = s3_parse_iso8601(text);
    } else if (strcmp(path, "Contents/ETag") == 0) {
        s3_copy_etag(p->cur.etag, sizeof(p->cur.etag), text);
    } else if (strcmp(path, "Contents") == 0) {
        ok = p->cur.key && push_object(p);
    } else if (strcmp(path, "CommonPrefixes/Prefix") == 0) {
        ok = push_prefix(p, text);
    } else if (strcmp(path, "IsTruncated") == 0) {
        p->page->truncated = strcmp(text, "true") == 0;
    } else if (strcmp(path, "NextContinuationToken") == 0) {
        free(p->page->next_token);
        ok = (p->page->next_token = strdup(text)) != NULL;
    } else if (strcmp(path, "EncodingType") == 0) {
        p->url_encoded = strcmp(text, "url") == 0;
    }
    if (!ok)
        p->oom = true;
}

static bool decode_in_place(char **s)
{
    char *decoded = aws_uri_decode(*s, strlen(*s), true, NULL);
    if (!decoded)
        return false;
    free(*s);
    *s = decoded;
    return true;
}

static bool decode_page(struct s3_list_page *pg)
{
    for (size_t i = 0; i < pg->object_count; i++)
        if (!decode_in_place(&pg->objects[i].key))
            return false;
    for (size_t i = 0; i < pg->prefix_count; i++)
        if (!decode_in_place(&pg->common_prefixes[i]))
            return false;
    return true;
}

static void query_add(struct strbuf *q, const char *name, const char *value)
{
    if (!value)
        return;
    char *enc = aws_uri_encode(value, strlen(value), false);
    if (!enc) {
        q->failed = true;
        return;
    }
    strbuf_printf(q, "%s%s=%s", q->len ? "&" : "", name, enc);
    free(enc);
}

/* Parameters in sorted order, as some servers want them signed that way. */
static char *list_query(const struct s3_list_options *o)
{
    struct strbuf q = {0};
    char max_keys[16];
    snprintf(max_keys, sizeof(max_keys), "%u", o->max_keys);
    query_add(&q, "continuation-token", o->continuation_token);
    query_add(&q, "delimiter", o->delimiter);
    query_add(&q, "encoding-type", "url");
    query_add(&q, "list-type", "2");
    query_add(&q, "max-keys", o->max_keys ? max_keys : NULL);
    query_add(&q, "prefix", o->prefix);
    query_add(&q, "start-after", o->start_after);
    if (q.failed) {
        strbuf_free(&q);
        return NULL;
    }
    return q.data;
}

int s3_list_page(struct s3client *c, const char *bucket, const struct s3_list_options *opts,
                 struct s3_list_page *page, struct s3_error *err)
{
    static const struct s3_list_options none = {0};
    memset(page, 0, sizeof(*page));
    char *query = list_query(opts ? opts : &none);
    struct s3_target t;
    if (!query || s3_target_init(c, &t, "GET", bucket, NULL, err) != 0) {
        if (!query)
            s3_error_set(err, 0, "OutOfMemory", false, "ListObjectsV2: out of memory");
        free(query);
        return -1;
    }
    snprintf(t.what, sizeof(t.what), "ListObjectsV2 s3://%s/%s", bucket,
             opts && opts->prefix ? opts->prefix : "");
    struct http_request req = {.method = "GET", .query = query, .idempotent = true};
    struct aws_response resp;
    int rc = s3_perform(c, &t, &req, &resp, err);
    if (rc == 0) {
        struct list_parse p = {.page = page};
        if (xml_walk(resp.body, resp.body_len, list_end, &p) != 0 || p.oom ||
            (p.url_encoded && !decode_page(page))) {
            s3_error_set(err, resp.status, p.oom ? "OutOfMemory" : "BadResponse", !p.oom,
                         "%s: the answer could not be read", t.what);
            rc = -1;
        }
        free(p.cur.key);
        /* The page is cut short but no token came: following it would loop forever. */
        if (rc == 0 && page->truncated && !page->next_token) {
            s3_error_set(err, resp.status, "BadResponse", false,
                         "%s: a truncated page came without a continuation token", t.what);
            rc = -1;
        }
    }
    if (rc != 0)
        s3_list_page_clear(page);
    aws_response_clear(&resp);
    s3_target_clear(&t);
    free(query);
    return rc;
}

void s3_list_page_clear(struct s3_list_page *page)
{
    for (size_t i = 0; i < page->object_count; i++)
        free(page->objects[i].key);
    free(page->objects);
    for (size_t i = 0; i < page->prefix_count; i++)
        free(page->common_prefixes[i]);
    free(page->common_prefixes);
    free(page->next_token);
    memset(page, 0, sizeof(*page));
}

int s3_list_all(struct s3client *c, const char *bucket, const struct s3_list_options *opts,
                s3_list_fn on_page, void *ctx, struct s3_error *err)
{
    struct s3_list_options o = opts ? *opts : (struct s3_list_options){0};
    char *token = o.continuation_token ? strdup(o.continuation_token) : NULL;
    for (;;) {
        struct s3_list_page page;
        o.continuation_token = token;
        if (s3_list_page(c, bucket, &o, &page, err) != 0) {
            free(token);
            return -1;
        }
        int stop = on_page(ctx, &page);
        free(token);
        token = page.truncated ? page.next_token : NULL;
        page.next_token = NULL;
        s3_list_page_clear(&page);
        if (stop || !token) {
            free(token);
            return 0;
        }
    }
}
