/* metrics: counters, histograms, the Prometheus text (checked line by line against the
 * exposition format) and the CloudWatch EMF lines (parsed back with jansson). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static const char *const sizes[] = {"thumbnail", "large"};

static struct metrics *new_metrics(void)
{
    struct metrics *m = metrics_new(sizes, 2);
    assert_non_null(m);
    return m;
}

/* `line` (without its '\n') is one whole line of `text`. */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static void assert_line(const char *text, const char *line)
{
    if (!has_line(text, line))
        fail_msg("missing line \"%s\" in:\n%s", line, text);
}

static size_t count_of(const char *text, const char *needle)
{
    size_t count = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        count++;
    return count;
}

/* ---- a validator for the text exposition format 0.0.4 ------------------------------------- */

#define NAME_RE  "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define LABEL_RE "[a-zA-Z_][a-zA-Z0-9_]*=\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
#define VALUE_RE "(NaN|[+-]Inf|-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?)"

static const char *const help_re = "^# HELP (" NAME_RE ") ([^\\\\]|\\\\[\\\\n])*$";
static const char *const type_re = "^# TYPE (" NAME_RE ") (counter|gauge|histogram)$";
static const char *const sample_re =
    "^(" NAME_RE ")(\\{" LABEL_RE "(," LABEL_RE ")*\\})? " VALUE_RE "$";

struct validator {
    regex_t help, type, sample;
    char family[128], family_type[16], help_for[128];
    char seen[64][128]; /* families already described: each may appear once */
    size_t seen_count;
    char error[256];
};

static void validator_init(struct validator *v)
{
    memset(v, 0, sizeof(*v));
    assert_int_equal(regcomp(&v->help, help_re, REG_EXTENDED), 0);
    assert_int_equal(regcomp(&v->type, type_re, REG_EXTENDED), 0);
    assert_int_equal(regcomp(&v->sample, sample_re, REG_EXTENDED), 0);
}

static void validator_free(struct validator *v)
{
    regfree(&v->help);
    regfree(&v->type);
    regfree(&v->sample);
}

static bool reject(struct validator *v, const char *why, const char *line)
{
    snprintf(v->error, sizeof(v->error), "%s: \"%s\"", why, line);
    return false;
}

static bool copy_match(char *out, size_t size, const char *line, regmatch_t mt)
{
    size_t n = (size_t)(mt.rm_eo - mt.rm_so);
    if (n >= size)
        return false;
    memcpy(out, line + mt.rm_so, n);
    out[n] = '\0';
    return true;
}

static bool check_type(struct validator *v, const char *line, const regmatch_t *mt)
{
    char name[128];
    if (!copy_match(name, sizeof(name), line, mt[1]))
        return reject(v, "name too long", line);
    if (v->help_for[0] && strcmp(v->help_for, name) != 0)
        return reject(v, "TYPE after the HELP of another metric", line);
    for (size_t i = 0; i < v->seen_count; i++)
        if (strcmp(v->seen[i], name) == 0)
            return reject(v, "metric described twice", line);
    if (v->seen_count == 64)
        return reject(v, "too many metrics for the validator", line);
    strcpy(v->seen[v->seen_count++], name);
    strcpy(v->family, name);
    copy_match(v->family_type, sizeof(v->family_type), line, mt[2]);
    v->help_for[0] = '\0';
    return true;
}

static bool check_comment(struct validator *v, const char *line)
{
    regmatch_t mt[3];
    if (regexec(&v->help, line, 3, mt, 0) == 0) {
        if (v->help_for[0])
            return reject(v, "two HELP lines in a row", line);
        return copy_match(v->help_for, sizeof(v->help_for), line, mt[1]) ||
               reject(v, "name too long", line);
    }
    if (regexec(&v->type, line, 3, mt, 0) != 0)
        return reject(v, "bad comment line", line);
    return check_type(v, line, mt);
}

/* A histogram's samples are its name with _bucket (and an le label), _sum or _count. */
static bool sample_belongs(const struct validator *v, const char *name, const char *line)
{
    if (strcmp(v->family_type, "histogram") != 0)
        return strcmp(name, v->family) == 0;
    size_t n = strlen(v->family);
    if (strncmp(name, v->family, n) != 0)
        return false;
    if (strcmp(name + n, "_bucket") == 0)
        return strstr(line, "le=\"") != NULL;
    return strcmp(name + n, "_sum") == 0 || strcmp(name + n, "_count") == 0;
}

static bool check_sample(struct validator *v, const char *line)
{
    regmatch_t mt[2];
    char name[128];
    if (regexec(&v->sample, line, 2, mt, 0) != 0)
        return reject(v, "bad sample line", line);
    if (!copy_match(name, sizeof(name), line, mt[1]))
        return reject(v, "name too long", line);
    if (v->help_for[0] || !v->family[0] || !sample_belongs(v, name, line))
        return reject(v, "sample outside the family of the last TYPE", line);
    return true;
}

static bool check_line(struct validator *v, const char *line)
{
    if (line[0] == '\0')
        return reject(v, "empty line", line);
    return line[0] == '#' ? check_comment(v, line) : check_sample(v, line);
}

/* true when `text` is valid; else v->error says why. */
static bool prometheus_valid(struct validator *v, const char *text)
{
    size_t len = strlen(text);
    if (len == 0 || text[len - 1] != '\n')
        return reject(v, "no final newline", text);
    char *copy = strdup(text);
    assert_non_null(copy);
    bool ok = true;
    for (char *line = copy, *end; ok && *line; line = end + 1) {
        end = strchr(line, '\n');
        *end = '\0';
        ok = check_line(v, line);
    }
    free(copy);
    return ok;
}

static void validate_prometheus(const char *text)
{
    struct validator v;
    validator_init(&v);
    if (!prometheus_valid(&v, text))
        fail_msg("%s in:\n%s", v.error, text);
    validator_free(&v);
}

/* The validator must itself reject what Prometheus would, or it proves nothing. */
static void test_validator(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "# TYPE x gauge\nx{a=\"b\"} nan\n",
        "# TYPE x gauge\nx{a=\"b\\q\"} 1\n",
        "# TYPE x gauge\nx{a=\"b\"\"} 1\n",
        "# TYPE x gauge\nx{a=\"b\",} 1\n",
        "# TYPE x gauge\nx 1.\n",
        "# TYPE x gauge\nx 1",
        "# TYPE x gauge\nx  1\n",
        "# TYPE 1x gauge\n1x 1\n",
        "# TYPE x counter\ny 1\n",
        "# TYPE x counter\n\nx 1\n",
        "# TYPE x summaryy\nx 1\n",
        "# HELP x a\\b\n# TYPE x gauge\n",
        "# HELP y a\n# TYPE x gauge\n",
        "# TYPE x gauge\nx 1\n# TYPE x gauge\nx 2\n",
        "# TYPE h histogram\nh_bucket 1\n",
        "# TYPE h histogram\nh_total 1\n",
        "x 1\n",
        "# a comment\n",
    };
    static const char *const good[] = {
        "# HELP x a \\\\ \"b\"\\n\n# TYPE x gauge\nx{a=\"\\\"\\\\\\n\",b=\"\"} -1.5e-07\n",
        "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\nh_sum 0.5\nh_count 1\n",
        "# TYPE x gauge\nx NaN\nx{a=\"b\"} +Inf\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct validator v;
        validator_init(&v);
        if (prometheus_valid(&v, bad[i]))
            fail_msg("the validator accepted:\n%s", bad[i]);
        validator_free(&v);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        validate_prometheus(good[i]);
}

/* ---- lifetime ------------------------------------------------------------------------------- */

static void test_new_free(void **state)
{
    (void)state;
    metrics_free(NULL);
    struct metrics *none = metrics_new(NULL, 0);
    assert_non_null(none);
    char *text = metrics_prometheus(none, NULL, 0);
    assert_non_null(text);
    assert_null(strstr(text, "s3imgfs_resize_seconds"));
    assert_line(text, "s3imgfs_image_seconds_count 0");
    validate_prometheus(text);
    free(text);
    metrics_observe_resize(none, 0, 1.0); /* no sizes: ignored, not a crash */
    metrics_free(none);

    char name[] = "small";
    const char *names[] = {name};
    struct metrics *m = metrics_new(names, 1);
    assert_non_null(m);
    name[0] = 'X'; /* copied: the caller's buffer may change */
    text = metrics_prometheus(m, NULL, 0);
    assert_line(text, "s3imgfs_resize_seconds_count{size=\"small\"} 0");
    free(text);
    metrics_free(m);
}

/* ---- counters ------------------------------------------------------------------------------- */

static void test_counters(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    metrics_add(m, METRICS_UPLOADS, 3);
    metrics_add(m, METRICS_UPLOADS, 4);
    metrics_add(m, METRICS_UPLOAD_BYTES, 123456789012ULL);
    metrics_add(m, METRICS_NOTICES_DROPPED, 1);
    metrics_add(m, METRICS_COUNTER_COUNT, 5); /* out of range: ignored */
    assert_int_equal(metrics_counter_value(m, METRICS_UPLOADS), 7);
    assert_int_equal(metrics_counter_value(m, METRICS_UPLOAD_BYTES), 123456789012ULL);
    assert_int_equal(metrics_counter_value(m, METRICS_IMAGES), 0);

    char *text = metrics_prometheus(m, NULL, 0);
    assert_non_null(text);
    const char *block = "# HELP s3imgfs_uploads_total Files uploaded to the source bucket.\n"
                        "# TYPE s3imgfs_uploads_total counter\n"
                        "s3imgfs_uploads_total 7\n";
    assert_ptr_equal(strstr(text, block), text); /* the counters come first */
    assert_line(text, "# TYPE s3imgfs_upload_bytes_total counter");
    assert_line(text, "s3imgfs_upload_bytes_total 123456789012");
    assert_line(text, "s3imgfs_notices_dropped_total 1");
    static const char *const zero[] = {
        "s3imgfs_upload_failures_total 0", "s3imgfs_upload_retries_total 0",
        "s3imgfs_images_total 0",          "s3imgfs_resize_failures_total 0",
        "s3imgfs_renditions_total 0",      "s3imgfs_rendition_bytes_total 0",
        "s3imgfs_notices_total 0",         "s3imgfs_notice_failures_total 0",
    };
    for (size_t i = 0; i < sizeof(zero) / sizeof(zero[0]); i++)
        assert_line(text, zero[i]);
    assert_int_equal(count_of(text, "# TYPE "), METRICS_COUNTER_COUNT + 2);
    assert_int_equal(count_of(text, "# HELP "), METRICS_COUNTER_COUNT + 2);
    validate_prometheus(text);
    free(text);
    metrics_free(m);
}

/* ---- histograms ----------------------------------------------------------------------------- */

static const char *const le[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                                 "1",     "2.5",  "5",     "10",   "30",  "+Inf"};
#define LE_COUNT (sizeof(le) / sizeof(le[0]))

static void assert_buckets(const char *text, const char *name, const char *size,
                           const unsigned *expect, const char *sum, unsigned count)
{
    char line[256];
    char labels[64] = "";
    if (size)
        snprintf(labels, sizeof(labels), "size=\"%s\",", size);
    for (size_t i = 0; i < LE_COUNT; i++) {
        snprintf(line, sizeof(line), "%s_bucket{%sle=\"%s\"} %u", name, labels, le[i], expect[i]);
        assert_line(text, line);
    }
    assert_int_equal(expect[LE_COUNT - 1], count); /* +Inf holds every observation */
    if (size)
        snprintf(labels, sizeof(labels), "{size=\"%s\"}", size);
    snprintf(line, sizeof(line), "%s_sum%s %s", name, labels, sum);
    assert_line(text, line);
    snprintf(line, sizeof(line), "%s_count%s %u", name, labels, count);
    assert_line(text, line);
}

static void test_histogram_buckets(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    double seen[] = {0.003, 0.02, 0.7, 40};
    for (size_t i = 0; i < 4; i++)
        metrics_observe_resize(m, 0, seen[i]);
    metrics_observe_resize(m, 2, 1.0);          /* no such size: ignored */
    metrics_observe_resize(m, (size_t)-1, 1.0); /* nor this */
    metrics_observe_image(m, 0.2);
    metrics_observe_image(m, 1.5);

    char *text = metrics_prometheus(m, NULL, 0);
    assert_non_null(text);
    static const unsigned thumb[] = {1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4};
    static const unsigned none[LE_COUNT] = {0};
    static const unsigned image[] = {0, 0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2};
    assert_buckets(text, "s3imgfs_resize_seconds", "thumbnail", thumb, "40.723", 4);
    assert_buckets(text, "s3imgfs_resize_seconds", "large", none, "0", 0);
    assert_buckets(text, "s3imgfs_image_seconds", NULL, image, "1.7", 2);
    assert_line(text, "# TYPE s3imgfs_resize_seconds histogram");
    assert_line(text, "# TYPE s3imgfs_image_seconds histogram");
    assert_int_equal(count_of(text, "# TYPE s3imgfs_resize_seconds "), 1);
    validate_prometheus(text);
    free(text);
    metrics_free(m);
}

/* le is inclusive; odd values land somewhere sensible and keep the sum sane. */
static void test_histogram_edges(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    metrics_observe_resize(m, 1, 0.005);    /* exactly a bound: that bucket */
    metrics_observe_resize(m, 1, 30.0);     /* the last finite bound */
    metrics_observe_resize(m, 1, -2.0);     /* a clock stepping back: first bucket, adds 0 */
    metrics_observe_resize(m, 1, NAN);      /* no bucket: not counted */
    metrics_observe_resize(m, 1, INFINITY); /* +Inf only; the sum stays finite */
    metrics_observe_resize(m, 1, 0.0000004);
    char *text = metrics_prometheus(m, NULL, 0);
    static const unsigned large[] = {3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 4, 5};
    assert_buckets(text, "s3imgfs_resize_seconds", "large", large, "1000000000030.005", 5);
    validate_prometheus(text);
    free(text);
    metrics_free(m);
}

/* ---- escaping and samples ------------------------------------------------------------------- */

static void test_label_escaping(void **state)
{
    (void)state;
    const char *names[] = {"a\"b\\c\nd"};
    struct metrics *m = metrics_new(names, 1);
    assert_non_null(m);
    metrics_observe_resize(m, 0, 0.1);
    char *text = metrics_prometheus(m, NULL, 0);
    assert_line(text, "s3imgfs_resize_seconds_bucket{size=\"a\\\"b\\\\c\\nd\",le=\"0.1\"} 1");
    assert_line(text, "s3imgfs_resize_seconds_sum{size=\"a\\\"b\\\\c\\nd\"} 0.1");
    assert_line(text, "s3imgfs_resize_seconds_count{size=\"a\\\"b\\\\c\\nd\"} 1");
    validate_prometheus(text);
    free(text);

    struct metrics_sample s = {"s3imgfs_x",        "back\\slash \"quoted\"\nsecond line",
                               METRICS_TYPE_GAUGE, "path",
                               "C:\\dir\n\"x\"",   1};
    text = metrics_prometheus(m, &s, 1);
    /* HELP escapes backslash and newline only; a quote stays as it is. */
    assert_line(text, "# HELP s3imgfs_x back\\\\slash \"quoted\"\\nsecond line");
    assert_line(text, "s3imgfs_x{path=\"C:\\\\dir\\n\\\"x\\\"\"} 1");
    validate_prometheus(text);
    free(text);
    metrics_free(m);
}

static const struct metrics_sample gateway_samples[] = {
    {"s3imgfs_queue_files", "Files in the queue, by state.", METRICS_TYPE_GAUGE, "state", "pending",
     104},
    {"s3imgfs_queue_files", "Files in the queue, by state.", METRICS_TYPE_GAUGE, "state",
     "uploading", 8},
    {"s3imgfs_queue_bytes", "Bytes of files not in S3 yet.", METRICS_TYPE_GAUGE, NULL, NULL,
     421580390},
    {"s3imgfs_request_retries_total", "S3 requests retried.", METRICS_TYPE_COUNTER, NULL, NULL, 3},
};
#define GATEWAY_SAMPLES (sizeof(gateway_samples) / sizeof(gateway_samples[0]))

static void test_samples_grouping(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    char *text = metrics_prometheus(m, gateway_samples, GATEWAY_SAMPLES);
    const char *block = "# HELP s3imgfs_queue_files Files in the queue, by state.\n"
                        "# TYPE s3imgfs_queue_files gauge\n"
                        "s3imgfs_queue_files{state=\"pending\"} 104\n"
                        "s3imgfs_queue_files{state=\"uploading\"} 8\n"
                        "# HELP s3imgfs_queue_bytes Bytes of files not in S3 yet.\n"
                        "# TYPE s3imgfs_queue_bytes gauge\n"
                        "s3imgfs_queue_bytes 421580390\n"
                        "# HELP s3imgfs_request_retries_total S3 requests retried.\n"
                        "# TYPE s3imgfs_request_retries_total counter\n"
                        "s3imgfs_request_retries_total 3\n";
    const char *at = strstr(text, block);
    assert_non_null(at);
    assert_string_equal(at, block); /* the samples come last */
    assert_int_equal(count_of(text, "# TYPE s3imgfs_queue_files "), 1);
    validate_prometheus(text);
    free(text);

    /* Out of order, a name still gets one group, where it first appears. */
    struct metrics_sample mixed[] = {gateway_samples[0], gateway_samples[2], gateway_samples[1]};
    mixed[1].help = NULL; /* HELP is optional */
    text = metrics_prometheus(m, mixed, 3);
    at = strstr(text, "# TYPE s3imgfs_queue_files gauge\n");
    assert_non_null(at);
    assert_string_equal(at, "# TYPE s3imgfs_queue_files gauge\n"
                            "s3imgfs_queue_files{state=\"pending\"} 104\n"
                            "s3imgfs_queue_files{state=\"uploading\"} 8\n"
                            "# TYPE s3imgfs_queue_bytes gauge\n"
                            "s3imgfs_queue_bytes 421580390\n");
    validate_prometheus(text);
    free(text);
    metrics_free(m);
}

static void test_sample_values(void **state)
{
    (void)state;
    static const struct {
        double value;
        const char *text;
    } cases[] = {
        {0, "0"},
        {-3, "-3"},
        {1.5, "1.5"},
        {0.1, "0.1"},
        {1e300, "1e+300"},
        {2.5e-7, "2.5e-07"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {1.0 / 3, "0.3333333333333333"},
        {9007199254740993.0, "9007199254740992"},
        {4294967296.0, "4294967296"},
    };
    struct metrics *m = new_metrics();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct metrics_sample s = {"v", NULL, METRICS_TYPE_GAUGE, NULL, NULL, cases[i].value};
        char *text = metrics_prometheus(m, &s, 1);
        char line[64];
        snprintf(line, sizeof(line), "v %s", cases[i].text);
        assert_line(text, line);
        validate_prometheus(text);
        free(text);
    }
    metrics_free(m);
}

/* Everything at once, as the gateway will render it. */
static void test_prometheus_valid(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    for (int c = 0; c < METRICS_COUNTER_COUNT; c++)
        metrics_add(m, (enum metrics_counter)c, (uint64_t)c * 1000 + 1);
    for (int i = 0; i < 50; i++) {
        metrics_observe_resize(m, (size_t)i % 2, i * 0.37);
        metrics_observe_image(m, i * 0.011);
    }
    char *text = metrics_prometheus(m, gateway_samples, GATEWAY_SAMPLES);
    validate_prometheus(text);
    free(text);
    metrics_free(m);
}

/* ---- concurrency ---------------------------------------------------------------------------- */

#define THREADS 4
#define ADDS    100000

struct worker {
    struct metrics *m;
    size_t index;
};

static void *add_many(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < ADDS; i++) {
        metrics_add(w->m, METRICS_UPLOADS, 1);
        if (i % 10 == 0)
            metrics_observe_resize(w->m, w->index % 2, 0.001 * (i % 50));
    }
    return NULL;
}

/* Rendered while others count: every histogram must still say +Inf == _count. */
static void check_inf_equals_count(const char *text)
{
    for (const char *p = text; (p = strstr(p, "le=\"+Inf\"} ")) != NULL;) {
        unsigned long long inf = strtoull(p + strlen("le=\"+Inf\"} "), NULL, 10);
        const char *count = strstr(p, "_count");
        assert_non_null(count);
        count = strchr(count, ' ');
        assert_int_equal(strtoull(count + 1, NULL, 10), inf);
        p = count;
    }
}

static void test_concurrency(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (size_t t = 0; t < THREADS; t++) {
        workers[t] = (struct worker){m, t};
        assert_int_equal(pthread_create(&threads[t], NULL, add_many, &workers[t]), 0);
    }
    for (int i = 0; i < 20; i++) {
        char *text = metrics_prometheus(m, NULL, 0);
        assert_non_null(text);
        check_inf_equals_count(text);
        free(text);
        free(metrics_emf(m, "s3imgfs", "test", i, NULL, 0));
    }
    for (size_t t = 0; t < THREADS; t++)
        assert_int_equal(pthread_join(threads[t], NULL), 0);
    assert_int_equal(metrics_counter_value(m, METRICS_UPLOADS), THREADS * ADDS);
    char *text = metrics_prometheus(m, NULL, 0);
    assert_line(text, "s3imgfs_uploads_total 400000");
    assert_line(text, "s3imgfs_resize_seconds_count{size=\"thumbnail\"} 20000");
    assert_line(text, "s3imgfs_resize_seconds_count{size=\"large\"} 20000");
    free(text);
    metrics_free(m);
}

/* ---- CloudWatch EMF ------------------------------------------------------------------------- */

#define NS  "s3imgfs"
#define SVC "photos"

struct lines {
    json_t *line[8];
    size_t count;
};

static bool known_unit(const char *unit)
{
    static const char *const units[] = {"Count", "Bytes", "Milliseconds", "Seconds"};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (strcmp(unit, units[i]) == 0)
            return true;
    return false;
}

static void check_metric_definitions(json_t *root, json_t *metrics)
{
    assert_true(json_is_array(metrics));
    assert_in_range(json_array_size(metrics), 1, 100); /* the spec's limit */
    size_t i;
    json_t *def;
    json_array_foreach(metrics, i, def)
    {
        assert_int_equal(json_object_size(def), 2);
        const char *name = json_string_value(json_object_get(def, "Name"));
        const char *unit = json_string_value(json_object_get(def, "Unit"));
        assert_non_null(name);
        assert_non_null(unit);
        assert_true(known_unit(unit));
        if (!json_is_number(json_object_get(root, name)))
            fail_msg("metric %s is not a top-level number", name);
    }
}

static void check_dimensions(json_t *root, json_t *dims)
{
    assert_true(json_is_array(dims));
    size_t i, j;
    json_t *set, *key;
    json_array_foreach(dims, i, set)
    {
        assert_true(json_is_array(set));
        json_array_foreach(set, j, key)
        {
            assert_true(json_is_string(key));
            assert_true(json_is_string(json_object_get(root, json_string_value(key))));
        }
    }
}

/* The structure the EMF specification requires, and nothing it forbids. */
static void check_emf_document(json_t *root, int64_t now_ms)
{
    assert_true(json_is_object(root));
    json_t *aws = json_object_get(root, "_aws");
    assert_true(json_is_object(aws));
    assert_int_equal(json_object_size(aws), 2);
    assert_true(json_is_integer(json_object_get(aws, "Timestamp")));
    assert_int_equal(json_integer_value(json_object_get(aws, "Timestamp")), now_ms);
    json_t *directives = json_object_get(aws, "CloudWatchMetrics");
    assert_true(json_is_array(directives));
    assert_true(json_array_size(directives) >= 1);
    size_t i;
    json_t *d;
    json_array_foreach(directives, i, d)
    {
        assert_int_equal(json_object_size(d), 3);
        assert_string_equal(json_string_value(json_object_get(d, "Namespace")), NS);
        check_dimensions(root, json_object_get(d, "Dimensions"));
        check_metric_definitions(root, json_object_get(d, "Metrics"));
    }
    assert_string_equal(json_string_value(json_object_get(root, "Service")), SVC);
}

static void emf_parse(const char *text, int64_t now_ms, struct lines *out)
{
    memset(out, 0, sizeof(*out));
    assert_non_null(text);
    for (const char *p = text; *p;) {
        const char *end = strchr(p, '\n');
        assert_non_null(end); /* every line ends in '\n' */
        json_error_t err;
        json_t *root = json_loadb(p, (size_t)(end - p), 0, &err);
        if (!root)
            fail_msg("not JSON (%s): %.*s", err.text, (int)(end - p), p);
        check_emf_document(root, now_ms);
        assert_true(out->count < 8);
        out->line[out->count++] = root;
        p = end + 1;
    }
}

static void lines_free(struct lines *l)
{
    for (size_t i = 0; i < l->count; i++)
        json_decref(l->line[i]);
}

static json_int_t int_of(json_t *root, const char *key)
{
    json_t *v = json_object_get(root, key);
    if (!json_is_integer(v))
        fail_msg("%s is not an integer", key);
    return json_integer_value(v);
}

static json_t *dims_of(json_t *root)
{
    json_t *d =
        json_array_get(json_object_get(json_object_get(root, "_aws"), "CloudWatchMetrics"), 0);
    return json_object_get(d, "Dimensions");
}

static json_t *call_emf(struct metrics *m, int64_t now_ms, const struct metrics_sample *s, size_t n,
                        struct lines *out)
{
    char *text = metrics_emf(m, NS, SVC, now_ms, s, n);
    emf_parse(text, now_ms, out);
    free(text);
    return out->count ? out->line[0] : NULL;
}

static void test_emf_first_call(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    struct lines l;
    json_t *root = call_emf(m, 1700000000123, NULL, 0, &l);
    assert_int_equal(l.count, 1); /* zeros, so alarms see data from the start */
    static const char *const counters[] = {
        "Uploads", "UploadBytes",    "UploadFailures", "UploadRetries",
        "Images",  "ResizeFailures", "Renditions",     "RenditionBytes",
        "Notices", "NoticeFailures", "NoticesDropped",
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        assert_int_equal(int_of(root, counters[i]), 0);
    assert_null(json_object_get(root, "ImageTime")); /* no image: no mean */
    json_t *dims = dims_of(root);
    assert_int_equal(json_array_size(dims), 1);
    assert_int_equal(json_array_size(json_array_get(dims, 0)), 1);
    assert_string_equal(json_string_value(json_array_get(json_array_get(dims, 0), 0)), "Service");
    json_t *metrics = json_object_get(
        json_array_get(json_object_get(json_object_get(root, "_aws"), "CloudWatchMetrics"), 0),
        "Metrics");
    assert_int_equal(json_array_size(metrics), 11);
    json_t *bytes = json_array_get(metrics, 1);
    assert_string_equal(json_string_value(json_object_get(bytes, "Name")), "UploadBytes");
    assert_string_equal(json_string_value(json_object_get(bytes, "Unit")), "Bytes");
    lines_free(&l);
    metrics_free(m);
}

static void test_emf_deltas(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    struct lines l;
    metrics_add(m, METRICS_UPLOADS, 3);
    metrics_add(m, METRICS_RENDITION_BYTES, 5000);
    json_t *root = call_emf(m, 1000, NULL, 0, &l);
    assert_int_equal(int_of(root, "Uploads"), 3);
    assert_int_equal(int_of(root, "RenditionBytes"), 5000);
    lines_free(&l);

    metrics_add(m, METRICS_UPLOADS, 2);
    root = call_emf(m, 61000, NULL, 0, &l);
    assert_int_equal(l.count, 1);
    assert_int_equal(int_of(root, "Uploads"), 2);
    assert_int_equal(int_of(root, "RenditionBytes"), 0); /* explicit zero */
    lines_free(&l);
    assert_int_equal(metrics_counter_value(m, METRICS_UPLOADS), 5); /* EMF resets nothing */
    metrics_free(m);
}

static void test_emf_sizes_and_image_time(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    struct lines l;
    metrics_observe_resize(m, 1, 0.010);
    metrics_observe_resize(m, 1, 0.030);
    metrics_observe_image(m, 0.1);
    metrics_observe_image(m, 0.3);
    json_t *root = call_emf(m, 5, NULL, 0, &l);
    assert_int_equal(l.count, 2); /* the main line, then "large" only: thumbnail had none */
    assert_float_equal(json_number_value(json_object_get(root, "ImageTime")), 200.0, 1e-9);
    json_t *size = l.line[1];
    assert_string_equal(json_string_value(json_object_get(size, "Size")), "large");
    assert_int_equal(int_of(size, "Resizes"), 2);
    assert_float_equal(json_number_value(json_object_get(size, "ResizeTime")), 20.0, 1e-9);
    json_t *set = json_array_get(dims_of(size), 0);
    assert_int_equal(json_array_size(set), 2);
    assert_string_equal(json_string_value(json_array_get(set, 0)), "Service");
    assert_string_equal(json_string_value(json_array_get(set, 1)), "Size");
    lines_free(&l);

    /* Only what happened since: one thumbnail, so one line for it and the mean of one. */
    metrics_observe_resize(m, 0, 0.0025);
    root = call_emf(m, 6, NULL, 0, &l);
    assert_int_equal(l.count, 2);
    assert_null(json_object_get(root, "ImageTime"));
    assert_string_equal(json_string_value(json_object_get(l.line[1], "Size")), "thumbnail");
    assert_int_equal(int_of(l.line[1], "Resizes"), 1);
    assert_float_equal(json_number_value(json_object_get(l.line[1], "ResizeTime")), 2.5, 1e-9);
    lines_free(&l);
    metrics_free(m);
}

static void test_emf_gauges(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    struct lines l;
    struct metrics_sample s[GATEWAY_SAMPLES + 4];
    memcpy(s, gateway_samples, sizeof(gateway_samples));
    size_t n = GATEWAY_SAMPLES;
    s[n++] =
        (struct metrics_sample){"s3imgfs_spool_bytes", NULL, METRICS_TYPE_GAUGE, NULL, NULL, 1.5};
    s[n++] = (struct metrics_sample){"s3imgfs_broken", NULL, METRICS_TYPE_GAUGE, NULL, NULL, NAN};
    s[n++] = (struct metrics_sample){"s3imgfs_uploads", NULL, METRICS_TYPE_GAUGE, NULL, NULL, 99};
    s[n++] = s[0]; /* the same gauge and label again */
    json_t *root = call_emf(m, 7, s, n, &l);
    assert_int_equal(int_of(root, "QueueFilesPending"), 104);
    assert_int_equal(int_of(root, "QueueFilesUploading"), 8);
    assert_int_equal(int_of(root, "QueueBytes"), 421580390);
    assert_float_equal(json_number_value(json_object_get(root, "SpoolBytes")), 1.5, 0);
    assert_null(json_object_get(root, "RequestRetriesTotal")); /* counters: not gauges */
    assert_null(json_object_get(root, "Broken"));              /* JSON has no NaN */
    assert_int_equal(int_of(root, "Uploads"), 0); /* the counter wins a clash of names */
    json_t *metrics = json_object_get(
        json_array_get(json_object_get(json_object_get(root, "_aws"), "CloudWatchMetrics"), 0),
        "Metrics");
    assert_int_equal(json_array_size(metrics), 11 + 4); /* each name once */
    json_t *def;
    size_t i;
    bool found = false;
    json_array_foreach(metrics, i, def)
    {
        if (strcmp(json_string_value(json_object_get(def, "Name")), "QueueBytes") == 0) {
            assert_string_equal(json_string_value(json_object_get(def, "Unit")), "Bytes");
            found = true;
        }
    }
    assert_true(found);
    lines_free(&l);
    metrics_free(m);
}

static void test_emf_nothing_changed(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    struct lines l;
    call_emf(m, 1, NULL, 0, &l);
    assert_int_equal(l.count, 1);
    lines_free(&l);

    char *text = metrics_emf(m, NS, SVC, 2, NULL, 0);
    assert_non_null(text);
    assert_string_equal(text, "");
    free(text);

    /* A counter sample is not sent, so it alone is not a change either. */
    text = metrics_emf(m, NS, SVC, 3, &gateway_samples[3], 1);
    assert_string_equal(text, "");
    free(text);

    /* But a gauge is news, and so is a single count. */
    call_emf(m, 4, gateway_samples, 1, &l);
    assert_int_equal(l.count, 1);
    lines_free(&l);
    metrics_add(m, METRICS_NOTICE_FAILURES, 1);
    json_t *root = call_emf(m, 5, NULL, 0, &l);
    assert_int_equal(int_of(root, "NoticeFailures"), 1);
    lines_free(&l);
    text = metrics_emf(m, NS, SVC, 6, NULL, 0);
    assert_string_equal(text, "");
    free(text);
    metrics_free(m);
}

/* Past 100 metrics the line holds more directives, each within the limit. */
static void test_emf_many_metrics(void **state)
{
    (void)state;
    struct metrics *m = new_metrics();
    enum { GAUGES = 150 };
    struct metrics_sample s[GAUGES];
    char values[GAUGES][8];
    for (size_t i = 0; i < GAUGES; i++) {
        snprintf(values[i], sizeof(values[i]), "g%zu", i);
        s[i] = (struct metrics_sample){"s3imgfs_many", NULL,     METRICS_TYPE_GAUGE, "n",
                                       values[i],      (double)i};
    }
    struct lines l;
    json_t *root = call_emf(m, 8, s, GAUGES, &l);
    json_t *directives = json_object_get(json_object_get(root, "_aws"), "CloudWatchMetrics");
    assert_int_equal(json_array_size(directives), 2);
    size_t total = 0;
    for (size_t i = 0; i < 2; i++)
        total += json_array_size(json_object_get(json_array_get(directives, i), "Metrics"));
    assert_int_equal(total, 11 + GAUGES);
    assert_int_equal(int_of(root, "ManyG149"), 149);
    lines_free(&l);
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator),
        cmocka_unit_test(test_new_free),
        cmocka_unit_test(test_counters),
        cmocka_unit_test(test_histogram_buckets),
        cmocka_unit_test(test_histogram_edges),
        cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_samples_grouping),
        cmocka_unit_test(test_sample_values),
        cmocka_unit_test(test_prometheus_valid),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_emf_first_call),
        cmocka_unit_test(test_emf_deltas),
        cmocka_unit_test(test_emf_sizes_and_image_time),
        cmocka_unit_test(test_emf_gauges),
        cmocka_unit_test(test_emf_nothing_changed),
        cmocka_unit_test(test_emf_many_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
