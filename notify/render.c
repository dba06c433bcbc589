/* render: one event, or a digest of many, as the four renderings every sink sends (subject,
 * JSON, text, SMS), the SNS structured message made of them, and the webhook signature.
 *
 * Everything here is pure (no I/O, no clock, no locks): the notifier, the lambda and the tests
 * call it alone. Two kinds of output are made from the same strings:
 *   - for machines (json): the values as given, only made valid UTF-8 (jansson refuses
 *     anything else), control characters escaped by jansson;
 *   - for people (subject, text, sms): every value "cleaned" first, so that a key holding a
 *     newline cannot forge a line of the e-mail (or a header: the subject and the event go
 *     into headers), and a bidi override cannot disguise a file name.
 * Lengths are counted in bytes (stricter than characters) and cuts fall on UTF-8 character
 * boundaries only.
 */
#include "notify.h"
#include "textbuf.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define SUBJECT_MAX 99 /* "under 100 characters", counted in bytes */
#define SMS_MAX     140
#define TEXT_WIDTH  79 /* lines under 80 columns */
#define LABEL_WIDTH 12 /* "  Label       value": values start at column 14 */
/* Room for a digest's list of files in its JSON and in its text: each rendering must stay
 * under SNS's limit, with space left for the counts and the other fields. */
#define LIST_BUDGET        (NOTIFY_MAX_MESSAGE - 16384)
#define JSON_FLAGS         (JSON_COMPACT | JSON_PRESERVE_ORDER)
#define SNS_SHORTENED_NOTE "(shortened: the full notice was too long for SNS)\n"

/* ------------------------------------------------------------------------------------------ */
/* UTF-8 */

static const char *str(const char *s)
{
    return s ? s : "";
}

/* The length of the valid UTF-8 sequence at s (n bytes available) with its code point, or 0
 * when there is none (the rules jansson applies: no overlong forms, surrogates or values past
 * U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, min = 0x80, *cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, min = 0x800, *cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, min = 0x10000, *cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

/* Characters that change how the text around them reads: C0 and C1 controls, DEL, and the
 * bidi embeddings, overrides and isolates ("cat\u202egpj.exe" shows as "catexe.jpg"). */
static bool is_control(uint32_t cp)
{
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
           (cp >= 0x2066 && cp <= 0x2069);
}

/* A copy of s as valid UTF-8 (each invalid byte becomes U+FFFD); for people (`line`) control
 * characters also become spaces. NULL on ENOMEM. */
static char *clean(const char *s, bool line)
{
    const unsigned char *u = (const unsigned char *)str(s);
    size_t n = strlen((const char *)u);
    struct textbuf b = {0};
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        size_t len = utf8_seq(u + i, n - i, &cp);
        if (len == 0)
            textbuf_str(&b, "\xef\xbf\xbd");
        else if (line && is_control(cp))
            textbuf_add(&b, " ", 1);
        else
            textbuf_add(&b, (const char *)u + i, len);
        i += len ? len : 1;
    }
    return textbuf_take(&b);
}

/* Columns a clean string takes (its characters: wide characters are not measured). */
static size_t columns(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

/* The largest n' <= n at which a valid UTF-8 string s can be cut (n <= strlen(s)). */
static size_t utf8_floor(const char *s, size_t n)
{
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

/* Copies clean s into out, cut at a character boundary when it does not fit (short labels). */
static void copy_cut(char *out, size_t out_size, const char *s)
{
    size_t n = strlen(s);
    if (n >= out_size)
        n = utf8_floor(s, out_size - 1);
    memcpy(out, s, n);
    out[n] = '\0';
}

/* Appends clean s in at most max bytes, cut at its end with "..." when too long. */
static void add_cut_end(struct textbuf *b, const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max) {
        textbuf_add(b, s, len);
    } else if (max < 3) {
        textbuf_add(b, s, utf8_floor(s, max));
    } else {
        textbuf_add(b, s, utf8_floor(s, max - 3));
        textbuf_str(b, "...");
    }
}

/* Appends clean s in at most max bytes, cut in its middle when too long: the end of a key (the
 * file name) is what people recognise, its start (the folder) tells where it is. */
static void add_cut_middle(struct textbuf *b, const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len <= max || max < 8) {
        add_cut_end(b, s, max);
        return;
    }
    size_t keep = max - 3, head = utf8_floor(s, keep * 2 / 5), tail = len - (keep - head);
    while (tail < len && ((unsigned char)s[tail] & 0xc0) == 0x80)
        tail++;
    textbuf_add(b, s, head);
    textbuf_str(b, "...");
    textbuf_add(b, s + tail, len - tail);
}

/* prefix + key + sep + tail in at most max bytes (prefix and sep are short constants; key and
 * tail are clean). The key is cut in its middle; a cuttable tail (a reason) at its end, and it
 * keeps at least a third of the room when both are long; a fixed tail ("(3 sizes)") is kept. */
static char *fit_line(const char *prefix, const char *key, const char *sep, const char *tail,
                      bool tail_cuttable, size_t max)
{
    struct textbuf b = {0};
    textbuf_str(&b, prefix);
    size_t fixed = strlen(prefix) + strlen(sep), klen = strlen(key), tlen = strlen(tail);
    size_t avail = max > fixed ? max - fixed : 0;
    size_t t = tlen;
    if (tail_cuttable && klen + tlen > avail) {
        /* the tail gets what the key leaves, but never less than a third */
        size_t left = avail > klen ? avail - klen : 0, least = avail / 3;
        t = left > least ? left : least;
        t = t < tlen ? t : tlen;
    }
    size_t k = avail > t ? avail - t : 0;
    add_cut_middle(&b, key, k);
    textbuf_str(&b, sep);
    if (tail_cuttable)
        add_cut_end(&b, tail, t);
    else
        textbuf_str(&b, tail);
    if (!b.failed && b.len > max) /* only when prefix and fixed tail alone are too long */
        b.data[b.len = utf8_floor(b.data, max)] = '\0';
    return textbuf_take(&b);
}

/* ------------------------------------------------------------------------------------------ */
/* Numbers and times for people and machines */

/* "512 B", "5.1 kB", "2.4 MB", "245 MB" (SI units, as file managers show them). */
static void human_bytes(uint64_t n, char out[32])
{
    static const char *const units[] = {"kB", "MB", "GB", "TB", "PB", "EB"};
    if (n < 1000) {
        snprintf(out, 32, "%" PRIu64 " B", n);
        return;
    }
    double v = (double)n / 1000;
    size_t u = 0;
    /* 999.6 kB would print as "1000 kB": it is "1.0 MB" */
    while (v >= 999.5 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        u++;
    }
    snprintf(out, 32, v < 99.95 ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void human_ms(double ms, char out[32])
{
    if (ms < 1000)
        snprintf(out, 32, "%.0f ms", ms);
    else if (ms < 60000)
        snprintf(out, 32, "%.1f s", ms / 1000);
    else
        snprintf(out, 32, "%.0f s", ms / 1000);
}

static void split_time(int64_t ms, struct tm *tm, int *millis)
{
    int64_t s = ms / 1000, r = ms % 1000;
    if (r < 0) { /* before 1970: / and % round towards zero */
        r += 1000;
        s--;
    }
    time_t t = (time_t)s;
    if (!gmtime_r(&t, tm))
        *tm = (struct tm){.tm_year = 70, .tm_mday = 1};
    *millis = (int)r;
}

/* "2026-11-26T23:50:03.123Z" */
static void iso_time(int64_t ms, char out[40])
{
    struct tm tm;
    int millis;
    split_time(ms, &tm, &millis);
    size_t n = strftime(out, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 40 - n, ".%03dZ", millis);
}

/* strftime of a time in ms, UTC */
static void utc_time(int64_t ms, const char *fmt, char out[40])
{
    struct tm tm;
    int millis;
    split_time(ms, &tm, &millis);
    if (strftime(out, 40, fmt, &tm) == 0)
        out[0] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* JSON helpers: each returns 0 or -1, so that a builder ORs them and checks once. A NULL value
 * (an allocation that failed) makes json_object_set_new fail too. */

/* A JSON string of s; invalid UTF-8 (a file name from a FUSE client need not be UTF-8) is
 * replaced rather than making the whole notice fail. */
static json_t *jstr(const char *s)
{
    json_t *j = json_string(str(s));
    if (j)
        return j;
    char *c = clean(s, false);
    j = c ? json_string(c) : NULL;
    free(c);
    return j;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return json_object_set_new(o, k, jstr(v));
}

/* Optional strings are left out when empty: "" would claim a value is known. */
static int set_opt(json_t *o, const char *k, const char *v)
{
    return v && *v ? set_str(o, k, v) : 0;
}

static int set_int(json_t *o, const char *k, uint64_t v)
{
    return json_object_set_new(o, k, json_integer((json_int_t)v));
}

static int set_time(json_t *o, const char *k, int64_t ms)
{
    char iso[40];
    iso_time(ms, iso);
    return set_str(o, k, iso);
}

/* o dumped compactly (NULL on ENOMEM); o is released in every case. */
static char *dump_and_free(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_FLAGS) : NULL;
    json_decref(o);
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Text helpers */

/* "  Label       value" */
static void add_field(struct textbuf *b, const char *label, const char *value)
{
    if (!value || !*value)
        return;
    textbuf_printf(b, "  %-*s%s\n", LABEL_WIDTH, label, value);
}

/* A field whose value is prose (a reason, an action): wrapped at spaces under TEXT_WIDTH,
 * continuation lines under the value. A word too long for a line (a key) stays whole. */
static void add_wrapped(struct textbuf *b, const char *label, const char *value, size_t indent)
{
    if (!value || !*value)
        return;
    if (label)
        textbuf_printf(b, "  %-*s", LABEL_WIDTH, label);
    else
        textbuf_spaces(b, indent);
    size_t col = indent, start = indent;
    const char *p = value;
    while (*p) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == 0)
            break;
        size_t w = 0;
        for (size_t i = 0; i < n; i++)
            w += ((unsigned char)p[i] & 0xc0) != 0x80;
        if (col > start && col + 1 + w > TEXT_WIDTH) {
            textbuf_add(b, "\n", 1);
            textbuf_spaces(b, indent);
            col = indent;
        } else if (col > start) {
            textbuf_add(b, " ", 1);
            col++;
        }
        textbuf_add(b, p, n);
        col += w;
        p += n;
    }
    textbuf_add(b, "\n", 1);
}

/* Appends s, clean, padded with spaces to `width` columns. */
static void add_padded(struct textbuf *b, const char *s, size_t width)
{
    textbuf_str(b, s);
    size_t w = columns(s);
    textbuf_spaces(b, width > w ? width - w : 0);
}

/* ------------------------------------------------------------------------------------------ */
/* One event */

static const char *status_name(enum notify_status s)
{
    return s == NOTIFY_FAILED ? "failed" : "done";
}

/* The event's strings cleaned for people, made once for the subject, the text and the SMS. */
struct people {
    char *event, *bucket, *key, *etag, *format, *destination, *reason, *action, *request_id,
        *origin;
};

static void people_free(struct people *p)
{
    char **f[] = {&p->event,       &p->bucket, &p->key,    &p->etag,       &p->format,
                  &p->destination, &p->reason, &p->action, &p->request_id, &p->origin};
    for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        free(*f[i]);
        *f[i] = NULL;
    }
}

/* A failure without a reason still needs words for the subject and the SMS. */
static const char *default_reason(const char *event)
{
    if (strcmp(event, "upload_failed") == 0)
        return "upload failed";
    if (strcmp(event, "resize_failed") == 0)
        return "resize failed";
    return "unknown error";
}

static int people_make(const struct notify_event *e, struct people *p)
{
    *p = (struct people){
        .event = clean(e->event, true),
        .bucket = clean(e->bucket, true),
        .key = clean(e->key, true),
        .etag = clean(e->etag, true),
        .format = clean(e->format, true),
        .destination = clean(e->destination_bucket, true),
        .reason = clean(e->reason, true),
        .action = clean(e->action, true),
        .request_id = clean(e->request_id, true),
        .origin = clean(e->origin, true),
    };
    if (p->reason && !*p->reason && e->status == NOTIFY_FAILED && p->event) {
        free(p->reason);
        p->reason = strdup(default_reason(p->event));
    }
    if (!p->event || !p->bucket || !p->key || !p->etag || !p->format || !p->destination ||
        !p->reason || !p->action || !p->request_id || !p->origin) {
        people_free(p);
        return -1;
    }
    return 0;
}

/* 0 is "unknown"; NaN, infinities and centuries are nonsense (and cannot be converted). */
static bool elapsed_known(const struct notify_event *e)
{
    return e->elapsed_ms > 0 && e->elapsed_ms < 1e13;
}

static json_t *rendition_json(const struct notify_rendition *r)
{
    json_t *o = json_object();
    int rc = set_str(o, "size", r->size);
    rc |= set_str(o, "key", r->key);
    rc |= set_int(o, "width", r->width);
    rc |= set_int(o, "height", r->height);
    rc |= set_opt(o, "format", r->format);
    rc |= set_int(o, "bytes", r->bytes);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static char *event_json(const struct notify_event *e)
{
    json_t *o = json_object();
    int rc = set_int(o, "version", 1);
    rc |= set_str(o, "status", status_name(e->status));
    rc |= set_str(o, "event", e->event);
    rc |= set_str(o, "bucket", e->bucket);
    rc |= set_str(o, "key", e->key);
    rc |= set_int(o, "size", e->size);
    rc |= set_opt(o, "etag", e->etag);
    rc |= set_opt(o, "format", e->format);
    if (e->width && e->height) {
        rc |= set_int(o, "width", e->width);
        rc |= set_int(o, "height", e->height);
    }
    rc |= set_opt(o, "destination_bucket", e->destination_bucket);
    if (e->rendition_count && e->renditions) {
        json_t *list = json_array();
        for (size_t i = 0; i < e->rendition_count; i++)
            rc |= json_array_append_new(list, rendition_json(&e->renditions[i]));
        rc |= json_object_set_new(o, "renditions", list);
    }
    if (e->status == NOTIFY_FAILED) {
        rc |= set_opt(o, "reason", e->reason);
        rc |= set_opt(o, "action", e->action);
    }
    rc |= set_opt(o, "request_id", e->request_id);
    rc |= set_opt(o, "origin", e->origin);
    rc |= set_time(o, "time", e->time_ms);
    if (elapsed_known(e)) /* whole ms: a double would print as 1234.5000000000002 */
        rc |= set_int(o, "elapsed_ms", (uint64_t)(e->elapsed_ms + 0.5));
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return dump_and_free(o);
}

static size_t renditions_of(const struct notify_event *e)
{
    return e->renditions ? e->rendition_count : 0;
}

static char *event_subject(const struct notify_event *e, const struct people *p)
{
    if (e->status == NOTIFY_FAILED)
        return fit_line("s3imgfs: FAILED ", p->key, ": ", p->reason, true, SUBJECT_MAX);
    size_t n = renditions_of(e);
    if (strcmp(p->event, "resized") == 0 && n > 0) {
        char tail[48];
        snprintf(tail, sizeof(tail), " (%zu size%s)", n, n == 1 ? "" : "s");
        return fit_line("s3imgfs: resized ", p->key, "", tail, false, SUBJECT_MAX);
    }
    /* other events ("uploaded", or a name this file does not know yet) read as verbs */
    char verb[25], prefix[48];
    copy_cut(verb, sizeof(verb), *p->event ? p->event : "done");
    snprintf(prefix, sizeof(prefix), "s3imgfs: %s ", verb);
    return fit_line(prefix, p->key, "", "", false, SUBJECT_MAX);
}

static char *event_sms(const struct notify_event *e, const struct people *p)
{
    if (e->status == NOTIFY_FAILED)
        return fit_line("s3imgfs FAILED: ", p->key, ": ", p->reason, true, SMS_MAX);
    size_t n = renditions_of(e);
    char verb[25], tail[48] = "";
    copy_cut(verb, sizeof(verb), p->event);
    if (strcmp(p->event, "resized") == 0 && n > 0)
        snprintf(tail, sizeof(tail), " -> %zu size%s", n, n == 1 ? "" : "s");
    else if (*verb)
        snprintf(tail, sizeof(tail), " (%s)", verb);
    return fit_line("s3imgfs done: ", p->key, "", tail, false, SMS_MAX);
}

static void add_headline(struct textbuf *b, const struct notify_event *e, const struct people *p)
{
    size_t n = renditions_of(e);
    char verb[41];
    copy_cut(verb, sizeof(verb), p->event);
    if (e->status == NOTIFY_FAILED) {
        if (strcmp(verb, "upload_failed") == 0)
            textbuf_str(b, "s3imgfs FAILED to upload a file.\n");
        else if (strcmp(verb, "resize_failed") == 0)
            textbuf_str(b, "s3imgfs FAILED to resize an image.\n");
        else
            textbuf_printf(b, "s3imgfs FAILED to process a file (%s).\n", *verb ? verb : "error");
    } else if (strcmp(verb, "resized") == 0 && n > 0) {
        textbuf_printf(b, "s3imgfs resized an image into %zu size%s.\n", n, n == 1 ? "" : "s");
    } else if (strcmp(verb, "resized") == 0) {
        textbuf_str(b, "s3imgfs resized an image.\n");
    } else if (strcmp(verb, "uploaded") == 0) {
        textbuf_str(b, "s3imgfs uploaded a file.\n");
    } else {
        textbuf_printf(b, "s3imgfs processed a file (%s).\n", *verb ? verb : "done");
    }
    textbuf_add(b, "\n", 1);
}

static void add_source(struct textbuf *b, const struct notify_event *e, const struct people *p)
{
    bool in_bucket = *p->bucket != '\0';
    textbuf_printf(b, "  %-*s%s%s%s%s\n", LABEL_WIDTH, "File", in_bucket ? "s3://" : "", p->bucket,
                   in_bucket ? "/" : "", p->key);
    char h[32];
    human_bytes(e->size, h);
    if (e->size < 1000)
        textbuf_printf(b, "  %-*s%s\n", LABEL_WIDTH, "Size", h);
    else
        textbuf_printf(b, "  %-*s%s (%" PRIu64 " bytes)\n", LABEL_WIDTH, "Size", h, e->size);
    bool dims = e->width && e->height;
    if (*p->format || dims) {
        textbuf_printf(b, "  %-*s%s", LABEL_WIDTH, "Image", p->format);
        if (dims)
            textbuf_printf(b, "%s%ux%u", *p->format ? ", " : "", e->width, e->height);
        textbuf_add(b, "\n", 1);
    }
    add_field(b, "ETag", p->etag);
}

/* One rendition's columns, cleaned for people. */
struct rendition_line {
    char *name, *format, *key;
    char dims[32], bytes[32];
};

/* "  thumbnail  150x150  jpeg  5.1 kB  photos/cat_150.jpg", columns aligned. */
static void add_renditions(struct textbuf *b, const struct notify_event *e, const struct people *p)
{
    size_t n = renditions_of(e);
    if (n == 0)
        return;
    struct rendition_line *l = calloc(n, sizeof(*l));
    if (!l) {
        b->failed = true;
        return;
    }
    size_t w[4] = {0};
    for (size_t i = 0; i < n; i++) {
        const struct notify_rendition *r = &e->renditions[i];
        l[i].name = clean(r->size, true);
        l[i].format = clean(r->format, true);
        l[i].key = clean(r->key, true);
        if (!l[i].name || !l[i].format || !l[i].key)
            b->failed = true;
        snprintf(l[i].dims, sizeof(l[i].dims), "%ux%u", r->width, r->height);
        human_bytes(r->bytes, l[i].bytes);
        const char *col[4] = {str(l[i].name), l[i].dims, str(l[i].format), l[i].bytes};
        for (size_t c = 0; c < 4; c++)
            w[c] = columns(col[c]) > w[c] ? columns(col[c]) : w[c];
    }
    textbuf_str(b, "\nRenditions");
    if (*p->destination)
        textbuf_printf(b, " in s3://%s", p->destination);
    textbuf_str(b, ":\n");
    for (size_t i = 0; i < n && !b->failed; i++) {
        const char *col[4] = {l[i].name, l[i].dims, l[i].format, l[i].bytes};
        textbuf_str(b, "  ");
        for (size_t c = 0; c < 4; c++) {
            add_padded(b, col[c], w[c]);
            textbuf_str(b, "  ");
        }
        textbuf_str(b, l[i].key);
        textbuf_add(b, "\n", 1);
    }
    for (size_t i = 0; i < n; i++) {
        free(l[i].name);
        free(l[i].format);
        free(l[i].key);
    }
    free(l);
}

static void add_provenance(struct textbuf *b, const struct notify_event *e, const struct people *p)
{
    char when[40];
    utc_time(e->time_ms, "%Y-%m-%d %H:%M:%S", when);
    struct tm tm;
    int millis;
    split_time(e->time_ms, &tm, &millis);
    textbuf_printf(b, "\n  %-*s%s.%03d UTC", LABEL_WIDTH, "When", when, millis);
    if (elapsed_known(e)) {
        char took[32];
        human_ms(e->elapsed_ms, took);
        textbuf_printf(b, " (took %s)", took);
    }
    textbuf_add(b, "\n", 1);
    add_field(b, "Request ID", p->request_id);
    add_field(b, "Origin", p->origin);
}

static char *event_text(const struct notify_event *e, const struct people *p)
{
    struct textbuf b = {0};
    add_headline(&b, e, p);
    if (e->status == NOTIFY_FAILED) {
        add_wrapped(&b, "Reason", p->reason, 2 + LABEL_WIDTH);
        add_wrapped(&b, "Action", p->action, 2 + LABEL_WIDTH);
    }
    add_source(&b, e, p);
    add_renditions(&b, e, p);
    add_provenance(&b, e, p);
    return textbuf_take(&b);
}

/* Hands m to out when every part of it was made; otherwise frees it (ENOMEM). */
static int message_finish(struct notify_message *m, struct notify_message *out)
{
    if (!m->subject || !m->json || !m->text || !m->sms || !m->status || !m->event || !m->bucket) {
        notify_message_clear(m);
        errno = ENOMEM;
        return -1;
    }
    *out = *m;
    return 0;
}

int notify_message_from_event(const struct notify_event *e, struct notify_message *out)
{
    if (!out || !e) {
        errno = EINVAL;
        return -1;
    }
    *out = (struct notify_message){0};
    struct people p;
    if (people_make(e, &p) != 0) {
        errno = ENOMEM;
        return -1;
    }
    struct notify_message m = {
        .subject = event_subject(e, &p),
        .json = event_json(e),
        .text = event_text(e, &p),
        .sms = event_sms(e, &p),
        .status = strdup(status_name(e->status)),
        .event = strdup(p.event),
        .bucket = strdup(p.bucket),
        .files = 1,
    };
    people_free(&p);
    return message_finish(&m, out);
}

void notify_message_clear(struct notify_message *m)
{
    if (!m)
        return;
    free(m->subject);
    free(m->json);
    free(m->text);
    free(m->sms);
    free(m->status);
    free(m->event);
    free(m->bucket);
    *m = (struct notify_message){0};
}

/* ------------------------------------------------------------------------------------------ */
/* The digest */

struct digest_entry {
    char *key, *event;
    char *reason; /* NULL unless failed */
    enum notify_status status;
};

struct notify_digest {
    unsigned max_keys;
    unsigned count, done, failed;
    uint64_t renditions, source_bytes, rendition_bytes;
    char *bucket, *origin; /* copies from the first event that has them */
    /* The files listed: the first max_keys, except that a failure takes the place of the last
     * file done when the list is full (people read a digest for its failures). In the order
     * they came. */
    struct digest_entry *entries;
    unsigned n, cap, done_kept;
};

struct notify_digest *notify_digest_new(unsigned max_keys)
{
    struct notify_digest *d = calloc(1, sizeof(*d));
    if (d)
        d->max_keys = max_keys;
    return d;
}

static void entry_free(struct digest_entry *x)
{
    free(x->key);
    free(x->event);
    free(x->reason);
    *x = (struct digest_entry){0};
}

/* Removes the last file done from the list, to make room for a failure. */
static void drop_last_done(struct notify_digest *d)
{
    for (unsigned i = d->n; i-- > 0;) {
        if (d->entries[i].status == NOTIFY_FAILED)
            continue;
        entry_free(&d->entries[i]);
        memmove(&d->entries[i], &d->entries[i + 1], (d->n - i - 1) * sizeof(d->entries[0]));
        d->n--;
        d->done_kept--;
        return;
    }
}

/* Lists e when there is room; a copy that cannot be made leaves e among the "more". */
static void digest_keep(struct notify_digest *d, const struct notify_event *e)
{
    bool failed = e->status == NOTIFY_FAILED;
    if (d->n >= d->max_keys) {
        if (!failed || d->done_kept == 0)
            return;
        drop_last_done(d);
    }
    if (d->n == d->cap) {
        unsigned cap = d->cap < 8 ? 8 : d->cap > d->max_keys / 2 ? d->max_keys : d->cap * 2;
        struct digest_entry *v = realloc(d->entries, (size_t)cap * sizeof(*v));
        if (!v)
            return;
        d->entries = v;
        d->cap = cap;
    }
    struct digest_entry x = {
        .key = strdup(str(e->key)),
        .event = strdup(str(e->event)),
        .reason = failed ? strdup(str(e->reason)) : NULL,
        .status = failed ? NOTIFY_FAILED : NOTIFY_DONE,
    };
    if (!x.key || !x.event || (failed && !x.reason)) {
        entry_free(&x);
        return;
    }
    d->entries[d->n++] = x;
    d->done_kept += !failed;
}

void notify_digest_add(struct notify_digest *d, const struct notify_event *e)
{
    if (!d || !e)
        return;
    d->count++;
    if (e->status == NOTIFY_FAILED)
        d->failed++;
    else
        d->done++;
    d->source_bytes += e->size;
    for (size_t i = 0; i < renditions_of(e); i++)
        d->rendition_bytes += e->renditions[i].bytes;
    d->renditions += renditions_of(e);
    if (!d->bucket && e->bucket && *e->bucket)
        d->bucket = strdup(e->bucket);
    if (!d->origin && e->origin && *e->origin)
        d->origin = strdup(e->origin);
    digest_keep(d, e);
}

unsigned notify_digest_count(const struct notify_digest *d)
{
    return d ? d->count : 0;
}

void notify_digest_reset(struct notify_digest *d)
{
    if (!d)
        return;
    for (unsigned i = 0; i < d->n; i++)
        entry_free(&d->entries[i]);
    free(d->bucket);
    free(d->origin);
    struct digest_entry *entries = d->entries;
    unsigned cap = d->cap, max_keys = d->max_keys;
    *d = (struct notify_digest){.max_keys = max_keys, .entries = entries, .cap = cap};
}

void notify_digest_free(struct notify_digest *d)
{
    if (!d)
        return;
    notify_digest_reset(d);
    free(d->entries);
    free(d);
}

/* Bytes s takes in JSON at most (jansson writes \uXXXX for controls, \" and \\). */
static size_t json_cost(const char *s)
{
    size_t n = 2;
    for (; s && *s; s++)
        n += (unsigned char)*s < 0x20 ? 6 : (*s == '"' || *s == '\\') ? 2 : 1;
    return n;
}

/* {"key","status","event","reason"?} and, in *cost, an upper bound of its JSON length. */
static json_t *entry_json(const struct digest_entry *x, size_t *cost)
{
    json_t *o = json_object();
    int rc = set_str(o, "key", x->key);
    rc |= set_str(o, "status", status_name(x->status));
    rc |= set_str(o, "event", x->event);
    rc |= set_opt(o, "reason", x->reason);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    *cost = 48;
    const char *fields[] = {"key", "event", "reason"};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        *cost += json_cost(json_string_value(json_object_get(o, fields[i])));
    return o;
}

static char *digest_json(const struct notify_digest *d, int64_t start_ms, int64_t end_ms)
{
    json_t *o = json_object();
    int rc = set_int(o, "version", 1);
    rc |= set_str(o, "status", d->failed ? "failed" : "done");
    rc |= set_str(o, "event", "digest");
    rc |= set_str(o, "bucket", d->bucket);
    rc |= set_int(o, "count", d->count);
    rc |= set_int(o, "done", d->done);
    rc |= set_int(o, "failed", d->failed);
    rc |= set_int(o, "size", d->source_bytes);
    rc |= set_int(o, "rendition_count", d->renditions);
    rc |= set_int(o, "rendition_bytes", d->rendition_bytes);
    rc |= set_time(o, "window_start", start_ms);
    rc |= set_time(o, "window_end", end_ms);
    rc |= set_time(o, "time", end_ms);
    rc |= set_opt(o, "origin", d->origin);
    json_t *list = json_array();
    size_t cost = 0;
    unsigned listed = 0;
    for (unsigned i = 0; i < d->n && !rc; i++) {
        size_t c;
        json_t *f = entry_json(&d->entries[i], &c);
        if (!f) {
            rc = -1;
        } else if (cost + c > LIST_BUDGET) {
            json_decref(f);
            break;
        } else {
            cost += c;
            rc |= json_array_append_new(list, f);
            listed++;
        }
    }
    rc |= json_object_set_new(o, "files", list);
    rc |= set_int(o, "more", d->count - listed);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return dump_and_free(o);
}

/* "12:00-12:01 UTC" */
static void window_short(int64_t start_ms, int64_t end_ms, char out[96])
{
    char a[40], b[40];
    utc_time(start_ms, "%H:%M", a);
    utc_time(end_ms, "%H:%M", b);
    snprintf(out, 96, "%s-%s UTC", a, b);
}

static char *digest_line(const struct notify_digest *d, int64_t start_ms, int64_t end_ms, bool sms)
{
    char win[96];
    window_short(start_ms, end_ms, win);
    const char *files = d->count == 1 ? "file" : "files";
    struct textbuf b = {0};
    if (d->count == 0)
        textbuf_printf(&b, "s3imgfs: no files (%s)", win);
    else if (d->failed == 0)
        textbuf_printf(&b, "s3imgfs: %u %s done (%s)", d->count, files, win);
    else if (sms)
        textbuf_printf(&b, "s3imgfs: %u done, %u FAILED of %u %s (%s)", d->done, d->failed,
                       d->count, files, win);
    else
        textbuf_printf(&b, "s3imgfs: %u %s done, %u FAILED (%s)", d->done,
                       d->done == 1 ? "file" : "files", d->failed, win);
    char *line = textbuf_take(&b);
    if (line) /* ASCII and short, but the limits are promises */
        line[strnlen(line, sms ? SMS_MAX : SUBJECT_MAX)] = '\0';
    return line;
}

/* The listed files of one status; returns how many were written. */
static unsigned add_entries(struct textbuf *b, const struct notify_digest *d, bool failed)
{
    unsigned listed = 0;
    for (unsigned i = 0; i < d->n; i++) {
        const struct digest_entry *x = &d->entries[i];
        if ((x->status == NOTIFY_FAILED) != failed)
            continue;
        /* at most what the entry takes (U+FFFD for a bad byte, wrapping), checked first: a reason
         * can be long */
        size_t size = 3 * (strlen(x->key) + strlen(x->event) + strlen(str(x->reason))) + 32;
        if (b->len + size > LIST_BUDGET)
            break;
        char *key = clean(x->key, true), *event = clean(x->event, true);
        char *reason = clean(x->reason, true);
        if (!key || !event || !reason) {
            b->failed = true;
        } else if (failed) {
            textbuf_printf(b, "  %s\n", key);
            struct textbuf why = {0};
            textbuf_str(&why, *reason ? reason : default_reason(event));
            textbuf_printf(&why, " (%s)", event);
            char *w = textbuf_take(&why);
            if (w)
                add_wrapped(b, NULL, w, 6);
            else
                b->failed = true;
            free(w);
        } else {
            textbuf_printf(b, "  %-9s %s\n", event, key);
        }
        free(key);
        free(event);
        free(reason);
        listed++;
    }
    return listed;
}

static char *digest_text(const struct notify_digest *d, int64_t start_ms, int64_t end_ms,
                         const char *bucket, const char *origin)
{
    struct textbuf b = {0};
    const char *files = d->count == 1 ? "file" : "files";
    if (d->count == 0)
        textbuf_str(&b, "s3imgfs processed no files.\n\n");
    else if (d->failed)
        textbuf_printf(&b, "s3imgfs processed %u %s: %u done, %u FAILED.\n\n", d->count, files,
                       d->done, d->failed);
    else
        textbuf_printf(&b, "s3imgfs processed %u %s, all done.\n\n", d->count, files);
    char from[40], to[40], h[32];
    utc_time(start_ms, "%Y-%m-%d %H:%M:%S", from);
    utc_time(end_ms, "%Y-%m-%d %H:%M:%S", to);
    textbuf_printf(&b, "  %-*s%s to %s UTC\n", LABEL_WIDTH, "Period", from, to);
    add_field(&b, "Bucket", bucket);
    human_bytes(d->source_bytes, h);
    textbuf_printf(&b, "  %-*s%u %s, %s\n", LABEL_WIDTH, "Sources", d->count, files, h);
    human_bytes(d->rendition_bytes, h);
    if (d->renditions)
        textbuf_printf(&b, "  %-*s%" PRIu64 ", %s\n", LABEL_WIDTH, "Renditions", d->renditions, h);
    add_field(&b, "Origin", origin);
    unsigned listed = 0;
    if (d->n > d->done_kept) {
        textbuf_str(&b, "\nFAILED:\n");
        listed += add_entries(&b, d, true);
    }
    if (d->done_kept) {
        textbuf_str(&b, "\nDone:\n");
        listed += add_entries(&b, d, false);
    }
    if (d->count > listed)
        textbuf_printf(&b, "%s  ... and %u more\n", listed ? "" : "\n", d->count - listed);
    return textbuf_take(&b);
}

int notify_message_from_digest(const struct notify_digest *d, int64_t window_start_ms,
                               int64_t window_end_ms, struct notify_message *out)
{
    if (!out || !d) {
        errno = EINVAL;
        return -1;
    }
    *out = (struct notify_message){0};
    char *origin = clean(d->origin, true);
    struct notify_message m = {
        .subject = digest_line(d, window_start_ms, window_end_ms, false),
        .json = digest_json(d, window_start_ms, window_end_ms),
        .sms = digest_line(d, window_start_ms, window_end_ms, true),
        .status = strdup(d->failed ? "failed" : "done"),
        .event = strdup("digest"),
        .bucket = clean(d->bucket, true),
        .files = d->count,
    };
    if (m.bucket && origin)
        m.text = digest_text(d, window_start_ms, window_end_ms, m.bucket, origin);
    free(origin);
    return message_finish(&m, out);
}

/* ------------------------------------------------------------------------------------------ */
/* The SNS structured message */

/* {"default":..,"email":..,"sms":..}, or NULL on ENOMEM. */
static char *sns_dump(const char *def, const char *email, const char *sms)
{
    json_t *o = json_object();
    int rc = set_str(o, "default", def);
    rc |= set_str(o, "email", email);
    rc |= set_str(o, "sms", sms);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return dump_and_free(o);
}

/* 1 with *out set when the message fits in max bytes, 0 when not, -1 on ENOMEM. */
static int sns_try(const char *def, const char *email, const char *sms, size_t max, char **out)
{
    char *s = sns_dump(def, email, sms);
    if (!s)
        return -1;
    if (strlen(s) <= max) {
        *out = s;
        return 1;
    }
    free(s);
    return 0;
}

/* m->json without its lists (renditions, files): the fields the subject speaks of and the
 * counts, marked "truncated". NULL on ENOMEM; a minimal object when m->json is not ours. */
static char *sns_summary(const struct notify_message *m)
{
    json_t *o = m->json ? json_loads(m->json, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
        int rc = set_int(o, "version", 1);
        rc |= set_str(o, "status", m->status);
        rc |= set_str(o, "event", m->event);
        rc |= set_str(o, "bucket", m->bucket);
        if (rc) {
            json_decref(o);
            return NULL;
        }
    }
    int rc = 0;
    json_t *renditions = json_object_get(o, "renditions");
    if (json_is_array(renditions)) {
        rc |= set_int(o, "rendition_count", json_array_size(renditions));
        json_object_del(o, "renditions");
    }
    json_object_del(o, "files");
    json_object_del(o, "more"); /* the count of files not in a list no longer there */
    rc |= json_object_set_new(o, "truncated", json_true());
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return dump_and_free(o);
}

/* The first `cut` bytes of the text (a line end) and the note saying it was cut. */
static char *shortened_text(const char *text, size_t cut)
{
    struct textbuf b = {0};
    textbuf_add(&b, text, cut);
    textbuf_str(&b, SNS_SHORTENED_NOTE);
    return textbuf_take(&b);
}

/* The summary with the longest head of the text (cut at a line end) that fits. 1, 0 or -1 as
 * sns_try. The length grows with the cut, so a binary search over the line ends finds it. */
static int sns_try_cut_text(const char *summary, const char *text, const char *sms, size_t max,
                            char **out)
{
    size_t len = strlen(text), lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    size_t *cuts = malloc((lines + 1) * sizeof(*cuts)); /* cuts[0] = 0: the note alone */
    if (!cuts)
        return -1;
    size_t n = 0;
    cuts[n++] = 0;
    for (size_t i = 0; i + 1 < len; i++)
        if (text[i] == '\n')
            cuts[n++] = i + 1;
    int rc = 0;
    char *best = NULL;
    size_t lo = 0, hi = n; /* cuts[lo..hi) are untried; all below lo fit */
    while (lo < hi && rc >= 0) {
        size_t mid = lo + (hi - lo) / 2;
        char *email = shortened_text(text, cuts[mid]);
        char *s = NULL;
        rc = email ? sns_try(summary, email, sms, max, &s) : -1;
        free(email);
        if (rc == 1) {
            free(best);
            best = s;
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    free(cuts);
    if (rc < 0) {
        free(best);
        return -1;
    }
    *out = best;
    return best != NULL;
}

/* The last resort for a tiny max: status and event only, no text, the SMS cut to fit. */
static int sns_try_minimal(const struct notify_message *m, size_t max, char **out)
{
    char event[65];
    copy_cut(event, sizeof(event), str(m->event));
    json_t *o = json_object();
    int rc = set_int(o, "version", 1);
    rc |= set_str(o, "status", m->status);
    rc |= set_str(o, "event", event);
    rc |= json_object_set_new(o, "truncated", json_true());
    if (rc) {
        json_decref(o);
        o = NULL;
    }
    char *def = dump_and_free(o);
    char *sms = strdup(str(m->sms));
    if (!def || !sms) {
        free(def);
        free(sms);
        return -1;
    }
    size_t n = strlen(sms);
    int fit = 0;
    for (;;) {
        sms[n] = '\0';
        fit = sns_try(def, "", sms, max, out);
        if (fit != 0 || n == 0)
            break;
        n = utf8_floor(sms, n - 1);
    }
    free(def);
    free(sms);
    return fit;
}

char *notify_sns_structured(const struct notify_message *m, size_t max_bytes)
{
    if (!m) {
        errno = EINVAL;
        return NULL;
    }
    char *out = NULL;
    int fit = sns_try(str(m->json), str(m->text), str(m->sms), max_bytes, &out);
    if (fit != 0)
        return fit > 0 ? out : (errno = ENOMEM, NULL);
    char *summary = sns_summary(m);
    if (!summary) {
        errno = ENOMEM;
        return NULL;
    }
    fit = sns_try(summary, str(m->text), str(m->sms), max_bytes, &out);
    if (fit == 0)
        fit = sns_try_cut_text(summary, str(m->text), str(m->sms), max_bytes, &out);
    free(summary);
    if (fit == 0)
        fit = sns_try_minimal(m, max_bytes, &out);
    if (fit > 0)
        return out;
    errno = fit < 0 ? ENOMEM : EMSGSIZE; /* EMSGSIZE: max_bytes below ~100 bytes */
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* The webhook signature */

int notify_webhook_signature(const char *secret, int64_t timestamp, const char *body,
                             size_t body_len, char *out, size_t out_len)
{
    if (out && out_len)
        out[0] = '\0';
    size_t secret_len = secret ? strlen(secret) : 0;
    if (!secret || !out || (!body && body_len) || secret_len > INT_MAX) {
        errno = EINVAL;
        return -1;
    }
    char t[32];
    int tl = snprintf(t, sizeof(t), "%" PRId64 ".", timestamp);
    /* "t=" + seconds + ",v1=" + 64 hex digits + NUL ("." of t stands for ",") */
    if (out_len < 2 + (size_t)tl + 3 + 64 + 1) {
        errno = ERANGE;
        return -1;
    }
    /* the signed bytes are "<t>." + body; one copy keeps to the one-shot HMAC() that both
     * OpenSSL 1.1.1 and 3 offer without deprecation */
    unsigned char *msg = malloc((size_t)tl + body_len + 1);
    if (!msg) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(msg, t, (size_t)tl);
    if (body_len)
        memcpy(msg + tl, body, body_len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    bool ok = HMAC(EVP_sha256(), secret, (int)secret_len, msg, (size_t)tl + body_len, mac,
                   &mac_len) != NULL;
    free(msg);
    if (!ok || mac_len != 32) {
        errno = EIO;
        return -1;
    }
    int n = snprintf(out, out_len, "t=%" PRId64 ",v1=", timestamp);
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < mac_len; i++) {
        out[n++] = hex[mac[i] >> 4];
        out[n++] = hex[mac[i] & 15];
    }
    out[n] = '\0';
    return 0;
}
