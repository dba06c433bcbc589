/* notify/render.c: the renderings of one event and of a digest, the SNS structured message and
 * the webhook signature.
 *
 * JSON is checked by parsing it back with jansson; UTF-8 validity by asking jansson to make a
 * string of it (json_string refuses invalid UTF-8), so the check does not share code with the
 * renderer. Signatures are checked against vectors computed outside this code (see there).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "notify.h"

/* 2026-11-26T23:50:03.123Z */
#define EVENT_TIME_MS 1795737003123LL
/* 2026-11-26 12:00:00 and 12:01:00 UTC */
#define WINDOW_START_MS 1795694400000LL
#define WINDOW_END_MS   1795694460000LL

#define NOTE "(shortened: the full notice was too long for SNS)\n"

/* ------------------------------------------------------------------------------------------ */
/* Helpers */

static json_t *parse(const char *s)
{
    assert_non_null(s);
    json_error_t err;
    json_t *j = json_loads(s, 0, &err);
    if (!j)
        fail_msg("invalid JSON (%s at %d): %.200s", err.text, err.position, s);
    return j;
}

static json_t *parse_object(const char *s)
{
    json_t *j = parse(s);
    assert_true(json_is_object(j));
    return j;
}

static const char *get_str(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        fail_msg("\"%s\" is not a string", k);
    return json_string_value(v);
}

static json_int_t get_int(const json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        fail_msg("\"%s\" is not an integer", k);
    return json_integer_value(v);
}

static void assert_utf8(const char *s)
{
    json_t *j = json_string(s);
    if (!j)
        fail_msg("not valid UTF-8: %s", s);
    json_decref(j);
}

/* No C0 control character nor DEL (the subject, the SMS); text may hold newlines. */
static void assert_no_controls(const char *s, bool newlines_allowed)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && !(newlines_allowed && *p == '\n')) || *p == 0x7f)
            fail_msg("control character 0x%02x at %zu in \"%s\"", *p,
                     (size_t)(p - (const unsigned char *)s), s);
}

/* Columns of a UTF-8 line (its characters). */
static size_t columns(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* Every line of text is under 80 columns, except those holding `long_part` (a key). */
static void assert_lines_under_80(const char *text, const char *long_part)
{
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        char *line = strndup(p, n);
        assert_non_null(line);
        if (columns(p, n) >= 80 && !(long_part && strstr(line, long_part)))
            fail_msg("line of %zu columns: %s", columns(p, n), line);
        free(line);
        p += n + (p[n] == '\n');
    }
}

/* True when text has a line equal to `line`. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; p; p = strchr(p, '\n')) {
        p += *p == '\n';
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    }
    return false;
}

static const struct notify_rendition cat_renditions[] = {
    {"thumbnail", "photos/cat_thumb.jpg", 150, 150, "jpeg", 5100},
    {"medium", "photos/cat_medium.jpg", 800, 600, "jpeg", 81234},
    {"large", "photos/cat_large.webp", 1600, 1200, "webp", 245000000},
};

static struct notify_event cat_event(void)
{
    return (struct notify_event){
        .status = NOTIFY_DONE,
        .event = "resized",
        .bucket = "photos-in",
        .key = "photos/cat.jpg",
        .size = 2412345,
        .etag = "\"9b2cf535f27731c974343645a3985328\"",
        .format = "jpeg",
        .width = 4000,
        .height = 3000,
        .destination_bucket = "photos-out",
        .renditions = cat_renditions,
        .rendition_count = 3,
        .reason = "",
        .action = "",
        .request_id = "req-42",
        .origin = "s3imgfs gateway on host1",
        .time_ms = EVENT_TIME_MS,
        .elapsed_ms = 1234.6,
    };
}

static struct notify_event failed_event(void)
{
    struct notify_event e = cat_event();
    e.status = NOTIFY_FAILED;
    e.event = "resize_failed";
    e.renditions = NULL;
    e.rendition_count = 0;
    e.destination_bucket = "";
    e.reason = "truncated JPEG";
    e.action = "kept in the bucket without renditions; replace the file with a complete "
               "JPEG to have it resized again, or delete it";
    return e;
}

static void render(const struct notify_event *e, struct notify_message *m)
{
    assert_int_equal(notify_message_from_event(e, m), 0);
    assert_non_null(m->subject);
    assert_non_null(m->json);
    assert_non_null(m->text);
    assert_non_null(m->sms);
}

/* ------------------------------------------------------------------------------------------ */
/* One event */

static void test_done_json(void **state)
{
    (void)state;
    struct notify_event e = cat_event();
    struct notify_message m;
    render(&e, &m);
    /* compact: one line, no indentation */
    assert_null(strchr(m.json, '\n'));
    assert_null(strstr(m.json, "\": "));
    assert_int_equal(
        strncmp(m.json, "{\"version\":1,\"status\":\"done\",\"event\":\"resized\",", 47), 0);
    json_t *j = parse_object(m.json);
    assert_int_equal(get_int(j, "version"), 1);
    assert_string_equal(get_str(j, "status"), "done");
    assert_string_equal(get_str(j, "event"), "resized");
    assert_string_equal(get_str(j, "bucket"), "photos-in");
    assert_string_equal(get_str(j, "key"), "photos/cat.jpg");
    assert_int_equal(get_int(j, "size"), 2412345);
    assert_string_equal(get_str(j, "etag"), "\"9b2cf535f27731c974343645a3985328\"");
    assert_string_equal(get_str(j, "format"), "jpeg");
    assert_int_equal(get_int(j, "width"), 4000);
    assert_int_equal(get_int(j, "height"), 3000);
    assert_string_equal(get_str(j, "destination_bucket"), "photos-out");
    assert_string_equal(get_str(j, "request_id"), "req-42");
    assert_string_equal(get_str(j, "origin"), "s3imgfs gateway on host1");
    assert_string_equal(get_str(j, "time"), "2026-11-26T23:50:03.123Z");
    assert_int_equal(get_int(j, "elapsed_ms"), 1235);
    assert_null(json_object_get(j, "reason"));
    assert_null(json_object_get(j, "action"));
    json_t *r = json_object_get(j, "renditions");
    assert_true(json_is_array(r));
    assert_int_equal(json_array_size(r), 3);
    for (size_t i = 0; i < 3; i++) {
        json_t *x = json_array_get(r, i);
        assert_string_equal(get_str(x, "size"), cat_renditions[i].size);
        assert_string_equal(get_str(x, "key"), cat_renditions[i].key);
        assert_int_equal(get_int(x, "width"), cat_renditions[i].width);
        assert_int_equal(get_int(x, "height"), cat_renditions[i].height);
        assert_string_equal(get_str(x, "format"), cat_renditions[i].format);
        assert_int_equal(get_int(x, "bytes"), cat_renditions[i].bytes);
    }
    json_decref(j);
    assert_string_equal(m.status, "done");
    assert_string_equal(m.event, "resized");
    assert_string_equal(m.bucket, "photos-in");
    assert_int_equal(m.files, 1);
    notify_message_clear(&m);
}

static void test_done_for_people(void **state)
{
    (void)state;
    struct notify_event e = cat_event();
    struct notify_message m;
    render(&e, &m);
    assert_string_equal(m.subject, "s3imgfs: resized photos/cat.jpg (3 sizes)");
    assert_string_equal(m.sms, "s3imgfs done: photos/cat.jpg -> 3 sizes");
    assert_true(has_line(m.text, "s3imgfs resized an image into 3 sizes."));
    assert_true(has_line(m.text, "  File        s3://photos-in/photos/cat.jpg"));
    assert_true(has_line(m.text, "  Size        2.4 MB (2412345 bytes)"));
    assert_true(has_line(m.text, "  Image       jpeg, 4000x3000"));
    assert_true(has_line(m.text, "Renditions in s3://photos-out:"));
    /* columns padded to the widest: "thumbnail", "1600x1200", "jpeg", "81.2 kB" */
    assert_true(has_line(m.text, "  thumbnail  150x150    jpeg  5.1 kB   photos/cat_thumb.jpg"));
    assert_true(has_line(m.text, "  medium     800x600    jpeg  81.2 kB  photos/cat_medium.jpg"));
    assert_true(has_line(m.text, "  large      1600x1200  webp  245 MB   photos/cat_large.webp"));
    assert_true(has_line(m.text, "  When        2026-11-26 23:50:03.123 UTC (took 1.2 s)"));
    assert_true(has_line(m.text, "  Request ID  req-42"));
    assert_true(has_line(m.text, "  Origin      s3imgfs gateway on host1"));
    assert_null(strstr(m.text, "Reason"));
    assert_lines_under_80(m.text, NULL);
    assert_no_controls(m.text, true);
    notify_message_clear(&m);
}

/* The example line of the issue, for one rendition (nothing to align). */
static void test_rendition_line(void **state)
{
    (void)state;
    struct notify_event e = cat_event();
    e.rendition_count = 1;
    struct notify_message m;
    render(&e, &m);
    assert_string_equal(m.subject, "s3imgfs: resized photos/cat.jpg (1 size)");
    assert_string_equal(m.sms, "s3imgfs done: photos/cat.jpg -> 1 size");
    assert_true(has_line(m.text, "  thumbnail  150x150  jpeg  5.1 kB  photos/cat_thumb.jpg"));
    notify_message_clear(&m);
}

static void test_uploaded(void **state)
{
    (void)state;
    struct notify_event e = {
        .status = NOTIFY_DONE,
        .event = "uploaded",
        .bucket = "docs",
        .key = "docs/a.pdf",
        .size = 512,
        .etag = "",
        .format = "",
        .destination_bucket = "",
        .reason = "",
        .action = "",
        .request_id = "",
        .origin = "",
        .time_ms = EVENT_TIME_MS,
    };
    struct notify_message m;
    render(&e, &m);
    assert_string_equal(m.subject, "s3imgfs: uploaded docs/a.pdf");
    assert_string_equal(m.sms, "s3imgfs done: docs/a.pdf (uploaded)");
    assert_true(has_line(m.text, "s3imgfs uploaded a file."));
    assert_true(has_line(m.text, "  Size        512 B"));
    assert_null(strstr(m.text, "Image"));
    assert_null(strstr(m.text, "Renditions"));
    assert_null(strstr(m.text, "Request ID"));
    json_t *j = parse_object(m.json);
    /* always there, even when empty */
    assert_string_equal(get_str(j, "bucket"), "docs");
    assert_string_equal(get_str(j, "time"), "2026-11-26T23:50:03.123Z");
    /* optional and empty: left out */
    const char *absent[] = {"etag",   "format", "width",      "height",     "destination_bucket",
                            "reason", "action", "request_id", "elapsed_ms", "renditions",
                            "origin"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(absent[0]); i++)
        if (json_object_get(j, absent[i]))
            fail_msg("\"%s\" should be left out: %s", absent[i], m.json);
    json_decref(j);
    notify_message_clear(&m);
}

static void test_failure(void **state)
{
    (void)state;
    struct notify_event e = failed_event();
    struct notify_message m;
    render(&e, &m);
    assert_string_equal(m.subject, "s3imgfs: FAILED photos/cat.jpg: truncated JPEG");
    assert_string_equal(m.sms, "s3imgfs FAILED: photos/cat.jpg: truncated JPEG");
    assert_string_equal(m.status, "failed");
    assert_string_equal(m.event, "resize_failed");
    json_t *j = parse_object(m.json);
    assert_string_equal(get_str(j, "status"), "failed");
    assert_string_equal(get_str(j, "event"), "resize_failed");
    assert_string_equal(get_str(j, "reason"), "truncated JPEG");
    assert_string_equal(get_str(j, "action"), e.action);
    assert_null(json_object_get(j, "renditions"));
    json_decref(j);
    assert_true(has_line(m.text, "s3imgfs FAILED to resize an image."));
    assert_true(has_line(m.text, "  Reason      truncated JPEG"));
    /* the action is wrapped under its column, every word kept in order */
    assert_true(has_line(m.text, "  Action      kept in the bucket without renditions; replace "
                                 "the file with a"));
    assert_true(has_line(m.text, "              complete JPEG to have it resized again, or "
                                 "delete it"));
    assert_true(strstr(m.text, "Reason") < strstr(m.text, "File"));
    assert_lines_under_80(m.text, NULL);
    notify_message_clear(&m);
}

static void test_failure_without_reason(void **state)
{
    (void)state;
    struct notify_event e = failed_event();
    e.event = "upload_failed";
    e.reason = "";
    e.action = "";
    struct notify_message m;
    render(&e, &m);
    assert_string_equal(m.subject, "s3imgfs: FAILED photos/cat.jpg: upload failed");
    assert_true(has_line(m.text, "s3imgfs FAILED to upload a file."));
    json_t *j = parse_object(m.json);
    assert_null(json_object_get(j, "reason"));
    assert_null(json_object_get(j, "action"));
    json_decref(j);
    notify_message_clear(&m);
}

/* A key of n characters of `unit` (1 to 4 bytes each) ending in "/end.jpg". */
static char *long_key(const char *unit, size_t n)
{
    size_t u = strlen(unit);
    char *k = malloc(n * u + 16);
    assert_non_null(k);
    for (size_t i = 0; i < n; i++)
        memcpy(k + i * u, unit, u);
    strcpy(k + n * u, "/end.jpg");
    return k;
}

/* Subject and SMS within their limits, valid UTF-8, no controls, for keys of every length in
 * characters of 1 to 4 bytes: every cut offset in a character is met. */
static void test_long_keys_cut_on_characters(void **state)
{
    (void)state;
    const char *units[] = {"a", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x90\x88"};
    for (size_t u = 0; u < 4; u++) {
        for (size_t n = 0; n < 160; n++) {
            char *key = long_key(units[u], n);
            char *reason = long_key(units[3 - u], n / 2); /* long reasons too */
            struct notify_event ev[2] = {cat_event(), failed_event()};
            ev[0].key = ev[1].key = key;
            ev[1].reason = reason;
            for (size_t i = 0; i < 2; i++) {
                struct notify_message m;
                render(&ev[i], &m);
                assert_true(strlen(m.subject) <= 99);
                assert_true(strlen(m.sms) <= 140);
                assert_utf8(m.subject);
                assert_utf8(m.sms);
                assert_no_controls(m.subject, false);
                assert_no_controls(m.sms, false);
                assert_true(m.subject[0] != ' ');
                bool cut = strlen(key) + strlen("s3imgfs: resized  (3 sizes)") > 99;
                if (i == 0) {
                    assert_int_equal(strncmp(m.subject, "s3imgfs: resized ", 17), 0);
                    /* the count and the file name stay; the cut is marked */
                    assert_non_null(strstr(m.subject, "/end.jpg (3 sizes)"));
                    assert_true(cut == (strstr(m.subject, "...") != NULL));
                } else {
                    assert_int_equal(strncmp(m.subject, "s3imgfs: FAILED ", 16), 0);
                    assert_int_equal(strncmp(m.sms, "s3imgfs FAILED: ", 16), 0);
                    /* the reason keeps at least a third of the room */
                    const char *colon = strstr(m.subject + 16, ": ");
                    assert_non_null(colon);
                    size_t room = 99 - 16 - 2;
                    size_t reason_len = strlen(reason);
                    assert_true(strlen(colon + 2) >=
                                (reason_len < room / 3 ? reason_len : room / 3 - 3));
                }
                /* the JSON has the key whole */
                json_t *j = parse_object(m.json);
                assert_string_equal(get_str(j, "key"), key);
                json_decref(j);
                notify_message_clear(&m);
            }
            free(key);
            free(reason);
        }
    }
}

static void test_long_key_exact_cut(void **state)
{
    (void)state;
    /* 200 x "é" (400 bytes): the subject keeps the head and the file name */
    char *key = long_key("\xc3\xa9", 200);
    struct notify_event e = failed_event();
    e.key = key;
    struct notify_message m;
    render(&e, &m);
    /* 99 bytes, or one less where a cut would fall inside an "é" */
    assert_true(strlen(m.subject) >= 98 && strlen(m.subject) <= 99);
    assert_int_equal(strncmp(m.subject, "s3imgfs: FAILED \xc3\xa9", 18), 0);
    assert_non_null(strstr(m.subject, "...\xc3\xa9"));
    assert_non_null(strstr(m.subject, "/end.jpg: truncated JPEG"));
    notify_message_clear(&m);
    free(key);
}

static void test_control_characters(void **state)
{
    (void)state;
    struct notify_event e = failed_event();
    e.key = "\n\tphotos/a\nb\tc\x7f\rd\xe2\x80\xae"
            "gpj.exe";
    e.reason = "bad\nheader\r\nX-Injected: yes";
    e.request_id = "id\n2";
    struct notify_message m;
    render(&e, &m);
    assert_no_controls(m.subject, false);
    assert_no_controls(m.sms, false);
    assert_no_controls(m.text, true);
    assert_true(m.subject[0] != ' ');
    /* controls and the bidi override (U+202E) become spaces: nothing is hidden or reordered */
    assert_string_equal(m.subject,
                        "s3imgfs: FAILED   photos/a b c  d gpj.exe: bad header  X-Injected: yes");
    assert_null(strstr(m.text, "\xe2\x80\xae"));
    /* no line of the body was forged by the key, the reason or the request id */
    assert_true(has_line(m.text, "  File        s3://photos-in/  photos/a b c  d gpj.exe"));
    assert_true(has_line(m.text, "  Reason      bad header X-Injected: yes")); /* wrapped */
    assert_true(has_line(m.text, "  Request ID  id 2"));
    assert_false(has_line(m.text, "X-Injected: yes"));
    /* machines get the key as it is */
    json_t *j = parse_object(m.json);
    assert_string_equal(get_str(j, "key"), e.key);
    assert_string_equal(get_str(j, "reason"), e.reason);
    json_decref(j);
    notify_message_clear(&m);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    struct notify_event e = cat_event();
    e.key = "bad\xff\xc3.jpg";
    struct notify_message m;
    render(&e, &m);
    json_t *j = parse_object(m.json);
    assert_string_equal(get_str(j, "key"), "bad\xef\xbf\xbd\xef\xbf\xbd.jpg");
    json_decref(j);
    assert_utf8(m.subject);
    assert_utf8(m.sms);
    assert_utf8(m.text);
    assert_string_equal(m.subject, "s3imgfs: resized bad\xef\xbf\xbd\xef\xbf\xbd.jpg (3 sizes)");
    notify_message_clear(&m);
}

static void test_sizes_for_people(void **state)
{
    (void)state;
    static const struct {
        uint64_t bytes;
        const char *shown;
    } cases[] = {
        {0, "0 B"},
        {999, "999 B"},
        {1000, "1.0 kB (1000 bytes)"},
        {99949, "99.9 kB (99949 bytes)"},
        {99950, "100 kB (99950 bytes)"},
        {999499, "999 kB (999499 bytes)"},
        {999500, "1.0 MB (999500 bytes)"},
        {2400000, "2.4 MB (2400000 bytes)"},
        {5000000000ULL, "5.0 GB (5000000000 bytes)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct notify_event e = cat_event();
        e.size = cases[i].bytes;
        struct notify_message m;
        render(&e, &m);
        char line[80];
        snprintf(line, sizeof(line), "  Size        %s", cases[i].shown);
        if (!has_line(m.text, line))
            fail_msg("no \"%s\" in:\n%s", line, m.text);
        notify_message_clear(&m);
    }
}

/* Times before 1970 and elapsed times that are not numbers. */
static void test_odd_numbers(void **state)
{
    (void)state;
    const double elapsed[] = {INFINITY, NAN, -5, 0};
    for (size_t i = 0; i < sizeof(elapsed) / sizeof(elapsed[0]); i++) {
        struct notify_event e = cat_event();
        e.time_ms = -1;
        e.elapsed_ms = elapsed[i];
        struct notify_message m;
        render(&e, &m);
        json_t *j = parse_object(m.json);
        assert_string_equal(get_str(j, "time"), "1969-12-31T23:59:59.999Z");
        assert_null(json_object_get(j, "elapsed_ms"));
        json_decref(j);
        assert_true(has_line(m.text, "  When        1969-12-31 23:59:59.999 UTC"));
        notify_message_clear(&m);
    }
}

static void test_clear(void **state)
{
    (void)state;
    struct notify_message m = {0};
    notify_message_clear(&m); /* zeroed: fine */
    notify_message_clear(NULL);
    struct notify_event e = cat_event();
    render(&e, &m);
    notify_message_clear(&m);
    assert_null(m.subject);
    assert_null(m.json);
    assert_null(m.text);
    assert_null(m.sms);
    assert_null(m.status);
    assert_null(m.event);
    assert_null(m.bucket);
    assert_int_equal(m.files, 0);
    notify_message_clear(&m); /* twice: fine */
    assert_int_equal(notify_message_from_event(NULL, &m), -1);
    assert_null(m.json);
}

/* ------------------------------------------------------------------------------------------ */
/* Digests */

static void add_files(struct notify_digest *d, const char *prefix, size_t n, bool failed)
{
    for (size_t i = 0; i < n; i++) {
        char key[64], reason[64];
        snprintf(key, sizeof(key), "%s%zu.jpg", prefix, i);
        snprintf(reason, sizeof(reason), "reason %zu", i);
        struct notify_event e = failed ? failed_event() : cat_event();
        e.key = key;
        e.reason = failed ? reason : "";
        e.size = 1000;
        e.rendition_count = failed ? 0 : 2; /* 5100 + 81234 bytes */
        notify_digest_add(d, &e);
    }
}

static void test_digest(void **state)
{
    (void)state;
    struct notify_digest *d = notify_digest_new(5);
    assert_non_null(d);
    add_files(d, "ok/", 4, false);
    add_files(d, "bad/", 3, true); /* come after the list is nearly full */
    add_files(d, "late/", 3, false);
    assert_int_equal(notify_digest_count(d), 10);
    struct notify_message m;
    assert_int_equal(notify_message_from_digest(d, WINDOW_START_MS, WINDOW_END_MS, &m), 0);
    assert_string_equal(m.subject, "s3imgfs: 7 files done, 3 FAILED (12:00-12:01 UTC)");
    assert_string_equal(m.sms, "s3imgfs: 7 done, 3 FAILED of 10 files (12:00-12:01 UTC)");
    assert_string_equal(m.status, "failed");
    assert_string_equal(m.event, "digest");
    assert_string_equal(m.bucket, "photos-in");
    assert_int_equal(m.files, 10);

    json_t *j = parse_object(m.json);
    assert_int_equal(get_int(j, "version"), 1);
    assert_string_equal(get_str(j, "status"), "failed");
    assert_string_equal(get_str(j, "event"), "digest");
    assert_string_equal(get_str(j, "bucket"), "photos-in");
    assert_int_equal(get_int(j, "count"), 10);
    assert_int_equal(get_int(j, "done"), 7);
    assert_int_equal(get_int(j, "failed"), 3);
    assert_int_equal(get_int(j, "size"), 10000);
    assert_int_equal(get_int(j, "rendition_count"), 14);
    assert_int_equal(get_int(j, "rendition_bytes"), 7 * (5100 + 81234));
    assert_string_equal(get_str(j, "window_start"), "2026-11-26T12:00:00.000Z");
    assert_string_equal(get_str(j, "window_end"), "2026-11-26T12:01:00.000Z");
    assert_string_equal(get_str(j, "origin"), "s3imgfs gateway on host1");
    json_t *files = json_object_get(j, "files");
    assert_int_equal(json_array_size(files), 5);
    assert_int_equal(get_int(j, "more"), 5);
    /* the failures took the places of the last files done: ok/0, ok/1, bad/0, bad/1, bad/2 */
    const char *keys[] = {"ok/0.jpg", "ok/1.jpg", "bad/0.jpg", "bad/1.jpg", "bad/2.jpg"};
    for (size_t i = 0; i < 5; i++) {
        json_t *f = json_array_get(files, i);
        assert_string_equal(get_str(f, "key"), keys[i]);
        assert_string_equal(get_str(f, "status"), i < 2 ? "done" : "failed");
        assert_string_equal(get_str(f, "event"), i < 2 ? "resized" : "resize_failed");
        if (i < 2) {
            assert_null(json_object_get(f, "reason"));
        } else {
            char reason[32];
            snprintf(reason, sizeof(reason), "reason %zu", i - 2);
            assert_string_equal(get_str(f, "reason"), reason);
        }
    }
    json_decref(j);

    /* people: failures first, with their reasons, then files done, then the rest counted */
    assert_true(has_line(m.text, "s3imgfs processed 10 files: 7 done, 3 FAILED."));
    assert_true(has_line(m.text, "  Period      2026-11-26 12:00:00 to 2026-11-26 12:01:00 UTC"));
    assert_true(has_line(m.text, "  Renditions  14, 604 kB"));
    assert_true(has_line(m.text, "  bad/0.jpg"));
    assert_true(has_line(m.text, "      reason 0 (resize_failed)"));
    assert_true(has_line(m.text, "  resized   ok/1.jpg"));
    assert_true(has_line(m.text, "  ... and 5 more"));
    assert_true(strstr(m.text, "FAILED:") < strstr(m.text, "Done:"));
    assert_true(strstr(m.text, "bad/2.jpg") < strstr(m.text, "ok/0.jpg"));
    assert_lines_under_80(m.text, NULL);
    notify_message_clear(&m);
    notify_digest_free(d);
}

static void test_digest_first_keys_and_reset(void **state)
{
    (void)state;
    struct notify_digest *d = notify_digest_new(3);
    assert_non_null(d);
    add_files(d, "k", 8, false);
    struct notify_message m;
    assert_int_equal(notify_message_from_digest(d, WINDOW_START_MS, WINDOW_END_MS, &m), 0);
    assert_string_equal(m.subject, "s3imgfs: 8 files done (12:00-12:01 UTC)");
    assert_string_equal(m.status, "done");
    assert_null(strstr(m.text, "FAILED"));
    json_t *j = parse_object(m.json);
    json_t *files = json_object_get(j, "files");
    assert_int_equal(json_array_size(files), 3);
    for (size_t i = 0; i < 3; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%zu.jpg", i);
        assert_string_equal(get_str(json_array_get(files, i), "key"), key);
    }
    assert_int_equal(get_int(j, "more"), 5);
    json_decref(j);
    notify_message_clear(&m);

    notify_digest_reset(d);
    assert_int_equal(notify_digest_count(d), 0);
    assert_int_equal(notify_message_from_digest(d, WINDOW_START_MS, WINDOW_END_MS, &m), 0);
    assert_string_equal(m.subject, "s3imgfs: no files (12:00-12:01 UTC)");
    j = parse_object(m.json);
    assert_int_equal(get_int(j, "count"), 0);
    assert_int_equal(json_array_size(json_object_get(j, "files")), 0);
    json_decref(j);
    notify_message_clear(&m);

    /* usable again after a reset */
    add_files(d, "again", 1, true);
    assert_int_equal(notify_message_from_digest(d, WINDOW_START_MS, WINDOW_END_MS, &m), 0);
    assert_string_equal(m.subject, "s3imgfs: 0 files done, 1 FAILED (12:00-12:01 UTC)");
    assert_int_equal(m.files, 1);
    notify_message_clear(&m);
    notify_digest_free(d);
    notify_digest_free(NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* The SNS structured message */

/* Checks s is a valid structured message of at most max bytes; returns its parts. */
static json_t *check_structured(const char *s, size_t max)
{
    assert_non_null(s);
    if (strlen(s) > max)
        fail_msg("%zu bytes > %zu", strlen(s), max);
    json_t *j = parse_object(s);
    assert_int_equal(json_object_size(j), 3);
    json_t *def = parse_object(get_str(j, "default"));
    json_decref(def);
    get_str(j, "email");
    get_str(j, "sms");
    return j;
}

static void test_structured_whole(void **state)
{
    (void)state;
    struct notify_event e = failed_event();
    struct notify_message m;
    render(&e, &m);
    char *s = notify_sns_structured(&m, NOTIFY_MAX_MESSAGE);
    json_t *j = check_structured(s, NOTIFY_MAX_MESSAGE);
    assert_string_equal(get_str(j, "default"), m.json);
    assert_string_equal(get_str(j, "email"), m.text);
    assert_string_equal(get_str(j, "sms"), m.sms);
    json_decref(j);
    free(s);
    notify_message_clear(&m);
}

/* email = a head of text cut at a line end, then the note. */
static void assert_shortened_text(const char *email, const char *text)
{
    size_t n = strlen(email), note = strlen(NOTE);
    assert_true(n >= note);
    assert_string_equal(email + n - note, NOTE);
    assert_int_equal(strncmp(email, text, n - note), 0);
    assert_true(n == note || email[n - note - 1] == '\n');
}

static void test_structured_limits_event(void **state)
{
    (void)state;
    /* 32 renditions with keys of ~900 bytes, some needing escapes in JSON */
    struct notify_rendition r[32];
    char *keys[32];
    for (size_t i = 0; i < 32; i++) {
        keys[i] = long_key(i % 2 ? "\"\\" : "\xc3\xa9", 450);
        r[i] = (struct notify_rendition){"w", keys[i], 100, 100, "jpeg", 1000};
    }
    struct notify_event e = cat_event();
    e.renditions = r;
    e.rendition_count = 32;
    struct notify_message m;
    render(&e, &m);

    char *s = notify_sns_structured(&m, 2000);
    json_t *j = check_structured(s, 2000);
    json_t *def = parse_object(get_str(j, "default"));
    assert_true(json_is_true(json_object_get(def, "truncated")));
    assert_null(json_object_get(def, "renditions"));
    assert_int_equal(get_int(def, "rendition_count"), 32);
    assert_string_equal(get_str(def, "key"), "photos/cat.jpg");
    assert_string_equal(get_str(def, "status"), "done");
    assert_shortened_text(get_str(j, "email"), m.text);
    assert_true(strlen(get_str(j, "email")) > strlen(NOTE)); /* some of the text is kept */
    assert_string_equal(get_str(j, "sms"), m.sms);
    json_decref(def);
    json_decref(j);
    free(s);

    /* every size: within it and valid, or refused (EMSGSIZE) only when tiny */
    for (size_t max = 0; max < 4000; max += 7) {
        errno = 0;
        s = notify_sns_structured(&m, max);
        if (!s) {
            assert_int_equal(errno, EMSGSIZE);
            assert_true(max < 120);
            continue;
        }
        json_decref(check_structured(s, max));
        free(s);
    }
    notify_message_clear(&m);
    for (size_t i = 0; i < 32; i++)
        free(keys[i]);
}

static void test_structured_limits_digest(void **state)
{
    (void)state;
    struct notify_digest *d = notify_digest_new(1000);
    assert_non_null(d);
    /* 1000 keys of 1000 bytes, with quotes and controls that grow when escaped */
    char key[1001];
    for (size_t i = 0; i < 1000; i++) {
        for (size_t k = 0; k < 1000; k++)
            key[k] = "a\"b\\c\x01/"[k % 7];
        snprintf(key, sizeof(key), "%04zu", i);
        key[4] = '/';
        key[1000] = '\0';
        struct notify_event e = i % 100 ? cat_event() : failed_event();
        e.key = key;
        notify_digest_add(d, &e);
    }
    struct notify_message m;
    assert_int_equal(notify_message_from_digest(d, WINDOW_START_MS, WINDOW_END_MS, &m), 0);
    /* each rendering within SNS's limit: the lists stop early and "more" counts the rest */
    assert_true(strlen(m.json) <= NOTIFY_MAX_MESSAGE);
    assert_true(strlen(m.text) <= NOTIFY_MAX_MESSAGE);
    json_t *j = parse_object(m.json);
    size_t listed = json_array_size(json_object_get(j, "files"));
    assert_true(listed > 10);
    assert_true(listed < 1000);
    assert_int_equal((size_t)get_int(j, "more"), 1000 - listed);
    assert_int_equal(get_int(j, "failed"), 10);
    json_decref(j);
    assert_non_null(strstr(m.text, "... and "));

    char *s = notify_sns_structured(&m, NOTIFY_MAX_MESSAGE);
    j = check_structured(s, NOTIFY_MAX_MESSAGE);
    json_t *def = parse_object(get_str(j, "default"));
    assert_true(json_is_true(json_object_get(def, "truncated")));
    assert_null(json_object_get(def, "files"));
    assert_int_equal(get_int(def, "count"), 1000);
    assert_int_equal(get_int(def, "failed"), 10);
    assert_string_equal(get_str(def, "event"), "digest");
    json_decref(def);
    assert_shortened_text(get_str(j, "email"), m.text);
    /* the cut is near the limit, not far below it */
    assert_true(strlen(s) > NOTIFY_MAX_MESSAGE - 8192);
    json_decref(j);
    free(s);

    s = notify_sns_structured(&m, 2000);
    json_decref(check_structured(s, 2000));
    free(s);
    notify_message_clear(&m);
    notify_digest_free(d);
}

/* ------------------------------------------------------------------------------------------ */
/* The webhook signature */

static void test_signature(void **state)
{
    (void)state;
    char out[NOTIFY_SIGNATURE_MAX];
    /* printf '%s' '1764201003.<body>' | openssl dgst -sha256 -hmac whsec_test_secret
     * (and python3 hmac.new(b"whsec_test_secret", b"1764201003." + body, "sha256")) */
    const char *body = "{\"version\":1,\"status\":\"done\",\"event\":\"resized\","
                       "\"key\":\"photos/cat.jpg\"}";
    assert_int_equal(notify_webhook_signature("whsec_test_secret", 1764201003, body, strlen(body),
                                              out, sizeof(out)),
                     0);
    assert_string_equal(
        out, "t=1764201003,v1=53270edab8ad5dd61ce9e5f2272749b82cdfeb5516a75f0ef3e5979c0e1ddf76");

    /* the body is body_len bytes, NUL included:
     * python3 hmac.new(b"s3cr3t", b"1700000000.a\x00b", "sha256").hexdigest() */
    assert_int_equal(notify_webhook_signature("s3cr3t", 1700000000, "a\0b", 3, out, sizeof(out)),
                     0);
    assert_string_equal(
        out, "t=1700000000,v1=e073e2f107e2e9c98a99646477880565103837aab49c384e1ab69acbcb938ee2");

    /* python3 hmac.new(b"s3cr3t", b"-1.", "sha256").hexdigest() */
    assert_int_equal(notify_webhook_signature("s3cr3t", -1, NULL, 0, out, sizeof(out)), 0);
    assert_string_equal(out,
                        "t=-1,v1=038fa771ba153428ef3e5df79ac9eb3feb84f5c2052a9fa3e23812ba1853695a");

    /* out too small by one byte: -1 and an empty string; exactly enough: 0 */
    size_t need = strlen("t=-1,v1=") + 64 + 1;
    memset(out, 'x', sizeof(out));
    assert_int_equal(notify_webhook_signature("s3cr3t", -1, NULL, 0, out, need - 1), -1);
    assert_string_equal(out, "");
    assert_int_equal(notify_webhook_signature("s3cr3t", -1, NULL, 0, out, need), 0);
    assert_int_equal(strlen(out), need - 1);
    /* the longest timestamp fits NOTIFY_SIGNATURE_MAX */
    assert_int_equal(notify_webhook_signature("s3cr3t", INT64_MIN, "x", 1, out, sizeof(out)), 0);
    assert_int_equal(strncmp(out, "t=-9223372036854775808,v1=", 26), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_done_json),
        cmocka_unit_test(test_done_for_people),
        cmocka_unit_test(test_rendition_line),
        cmocka_unit_test(test_uploaded),
        cmocka_unit_test(test_failure),
        cmocka_unit_test(test_failure_without_reason),
        cmocka_unit_test(test_long_keys_cut_on_characters),
        cmocka_unit_test(test_long_key_exact_cut),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_sizes_for_people),
        cmocka_unit_test(test_odd_numbers),
        cmocka_unit_test(test_clear),
        cmocka_unit_test(test_digest),
        cmocka_unit_test(test_digest_first_keys_and_reset),
        cmocka_unit_test(test_structured_whole),
        cmocka_unit_test(test_structured_limits_event),
        cmocka_unit_test(test_structured_limits_digest),
        cmocka_unit_test(test_signature),
    };
    return cmocka_run_group_tests_name("notify_render", tests, NULL, NULL);
}
