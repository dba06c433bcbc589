/* Request headers built from options: user metadata, SSE, content type, conditions. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void headers_add(struct headers *h, const char *name, const char *value)
{
    if (!value || !*value)
        return;
    if (h->count == HEADERS_MAX) {
        h->overflow = true;
        return;
    }
    h->list[h->count++] = (struct aws_header){name, value};
}

void headers_free(struct headers *h)
{
    for (size_t i = 0; i < h->owned_count; i++)
        free(h->owned[i]);
}

static bool header_text_ok(const char *s, bool is_name)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch > 0x7e || (is_name && (ch == ':' || ch == ' ')))
            return false;
    }
    return true;
}

int headers_add_put_options(struct headers *h, const struct s3_put_options *o, bool with_type,
                            struct s3_error *err)
{
    if (!o)
        return 0;
    if (with_type)
        headers_add(h, "content-type", o->content_type);
    headers_add(h, "cache-control", o->cache_control);
    headers_add(h, "if-none-match", o->if_none_match);
    if (o->sse && *o->sse && strcmp(o->sse, "none") != 0) {
        if (strcmp(o->sse, "AES256") != 0 && strcmp(o->sse, "aws:kms") != 0) {
            s3_error_set(err, 0, "InvalidArgument", false,
                         "sse '%s' is not one of none, AES256, aws:kms", o->sse);
            return -1;
        }
        headers_add(h, "x-amz-server-side-encryption", o->sse);
        if (strcmp(o->sse, "aws:kms") == 0)
            headers_add(h, "x-amz-server-side-encryption-aws-kms-key-id", o->sse_kms_key_id);
    }
    for (size_t i = 0; i < o->metadata_count; i++) {
        const struct aws_header *m = &o->metadata[i];
        if (!*m->name || !header_text_ok(m->name, true) || !header_text_ok(m->value, false)) {
            s3_error_set(err, 0, "InvalidArgument", false,
                         "metadata '%s' must be printable ASCII (name without spaces or ':')",
                         m->name);
            return -1;
        }
        char *name = NULL;
        if (asprintf(&name, "x-amz-meta-%s", m->name) < 0 || h->owned_count == HEADERS_MAX) {
            free(name);
            h->overflow = true;
            break;
        }
        h->owned[h->owned_count++] = name;
        headers_add(h, name, m->value);
    }
    if (h->overflow) {
        s3_error_set(err, 0, "InvalidArgument", false, "too many headers or metadata entries");
        return -1;
    }
    return 0;
}
