/* XML in and out: a small path-based walker over expat for S3 answers, and escaping for the
 * request bodies we build (DeleteObjects, CompleteMultipartUpload). */
#include "internal.h"

#include <expat.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* S3 answers are shallow; a deeper document is not one of them. */
#define XML_MAX_DEPTH 32

struct walker {
    XML_Parser parser;
    xml_end_fn on_end;
    void *ctx;
    struct strbuf path;
    size_t path_ends[XML_MAX_DEPTH]; /* path length before each open element */
    int depth;
    struct strbuf text;
    bool failed;
};

static void XMLCALL on_start(void *data, const XML_Char *name, const XML_Char **attrs)
{
    (void)attrs;
    struct walker *w = data;
    if (w->depth >= XML_MAX_DEPTH) {
        w->failed = true;
        XML_StopParser(w->parser, XML_FALSE);
        return;
    }
    w->path_ends[w->depth++] = w->path.len;
    if (w->path.len)
        strbuf_append(&w->path, "/", 1);
    strbuf_puts(&w->path, name);
    w->text.len = 0;
}

static void XMLCALL on_end(void *data, const XML_Char *name)
{
    (void)name;
    struct walker *w = data;
    if (w->path.failed || w->text.failed) {
        w->failed = true;
        XML_StopParser(w->parser, XML_FALSE);
        return;
    }
    w->on_end(w->ctx, w->path.data, w->text.data ? w->text.data : "");
    w->text.len = 0;
    if (w->text.data)
        w->text.data[0] = '\0';
    w->path.len = w->path_ends[--w->depth];
    w->path.data[w->path.len] = '\0';
}

static void XMLCALL on_text(void *data, const XML_Char *s, int len)
{
    struct walker *w = data;
    strbuf_append(&w->text, s, (size_t)len);
}

/* Entity declarations are how "billion laughs" documents blow up: no S3 answer has a DTD. */
static void XMLCALL on_doctype(void *data, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
    struct walker *w = data;
    w->failed = true;
    XML_StopParser(w->parser, XML_FALSE);
}

int xml_walk(const char *xml, size_t len, xml_end_fn end_fn, void *ctx)
{
    struct walker w = {.on_end = end_fn, .ctx = ctx};
    w.parser = XML_ParserCreate("UTF-8");
    if (!w.parser)
        return -1;
    XML_SetUserData(w.parser, &w);
    XML_SetElementHandler(w.parser, on_start, on_end);
    XML_SetCharacterDataHandler(w.parser, on_text);
    XML_SetStartDoctypeDeclHandler(w.parser, on_doctype);
    strbuf_puts(&w.path, "");
    int ok = XML_Parse(w.parser, xml, (int)len, XML_TRUE) == XML_STATUS_OK;
    XML_ParserFree(w.parser);
    strbuf_free(&w.path);
    strbuf_free(&w.text);
    return ok && !w.failed ? 0 : -1;
}

struct find_ctx {
    const char *name;
    char *found;
};

static void find_end(void *ctx, const char *path, const char *text)
{
    struct find_ctx *f = ctx;
    if (f->found)
        return;
    const char *last = strrchr(path, '/');
    last = last ? last + 1 : path;
    if (strcmp(last, f->name) == 0)
        f->found = strdup(text);
}

char *aws_xml_find_text(const char *xml, size_t len, const char *name)
{
    struct find_ctx f = {.name = name};
    if (!xml || xml_walk(xml, len, find_end, &f) != 0) {
        free(f.found);
        return NULL;
    }
    return f.found;
}

/* ---- strbuf ---- */

static bool strbuf_reserve(struct strbuf *b, size_t extra)
{
    if (b->failed)
        return false;
    if (extra < b->cap - b->len)
        return true; /* room for extra bytes and the NUL */
    if (extra > SIZE_MAX / 2 - b->len - 1) {
        b->failed = true;
        return false;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->data = p;
    b->cap = cap;
    return true;
}

void strbuf_append(struct strbuf *b, const char *s, size_t len)
{
    if (!strbuf_reserve(b, len))
        return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void strbuf_puts(struct strbuf *b, const char *s)
{
    strbuf_append(b, s, strlen(s));
}

void strbuf_putc(struct strbuf *b, char c)
{
    strbuf_append(b, &c, 1);
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !strbuf_reserve(b, (size_t)n)) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void strbuf_xml_escaped(struct strbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            strbuf_puts(b, "&amp;");
            break;
        case '<':
            strbuf_puts(b, "&lt;");
            break;
        case '>':
            strbuf_puts(b, "&gt;");
            break;
        case '"':
            strbuf_puts(b, "&quot;");
            break;
        case '\'':
            strbuf_puts(b, "&apos;");
            break;
        case '\r':
            strbuf_puts(b, "&#13;");
            break;
        case '\n':
            strbuf_puts(b, "&#10;");
            break;
        case '\t':
            strbuf_puts(b, "&#9;");
            break;
        default:
            strbuf_append(b, s, 1);
        }
    }
}

void strbuf_free(struct strbuf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

char *strbuf_take(struct strbuf *b)
{
    if (!strbuf_reserve(b, 0)) {
        strbuf_free(b);
        return NULL;
    }
    b->data[b->len] = '\0';
    char *s = b->data;
    memset(b, 0, sizeof(*b));
    return s;
}

time_t s3_parse_iso8601(const char *s)
{
    struct tm tm = {0};
    int consumed = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, &consumed) != 6)
        return (time_t)-1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}
