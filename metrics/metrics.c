#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---------------------------------------------------------------------------------- */

struct counter_info {
    const char *name;
    const char *help;
    const char *emf_name;
    const char *emf_unit;
};

static const struct counter_info counter_info[METRICS_COUNTER_COUNT] = {
    [METRICS_UPLOADS] = {"s3imgfs_uploads_total", "Files uploaded to the source bucket.", "Uploads",
                         "Count"},
    [METRICS_UPLOAD_BYTES] = {"s3imgfs_upload_bytes_total",
                              "Bytes of files uploaded to the source bucket.", "UploadBytes",
                              "Bytes"},
    [METRICS_UPLOAD_FAILURES] = {"s3imgfs_upload_failures_total",
                                 "Uploads that failed for good (the file is kept, marked failed).",
                                 "UploadFailures", "Count"},
    [METRICS_UPLOAD_RETRIES] = {"s3imgfs_upload_retries_total",
                                "Uploads that failed transiently and were tried again.",
                                "UploadRetries", "Count"},
    [METRICS_IMAGES] = {"s3imgfs_images_total", "Images resized into all of their renditions.",
                        "Images", "Count"},
    [METRICS_RESIZE_FAILURES] = {"s3imgfs_resize_failures_total",
                                 "Images that could not be resized (not retried).",
                                 "ResizeFailures", "Count"},
    [METRICS_RENDITIONS] = {"s3imgfs_renditions_total", "Renditions uploaded.", "Renditions",
                            "Count"},
    [METRICS_RENDITION_BYTES] = {"s3imgfs_rendition_bytes_total", "Bytes of renditions uploaded.",
                                 "RenditionBytes", "Bytes"},
    [METRICS_NOTICES] = {"s3imgfs_notices_total", "Notices delivered, over all sinks.", "Notices",
                         "Count"},
    [METRICS_NOTICE_FAILURES] = {"s3imgfs_notice_failures_total",
                                 "Notice sends that failed (each is retried).", "NoticeFailures",
                                 "Count"},
    [METRICS_NOTICES_DROPPED] = {"s3imgfs_notices_dropped_total",
                                 "Notices dropped because their queue was full.", "NoticesDropped",
                                 "Count"},
};

#define RESIZE_NAME "s3imgfs_resize_seconds"
#define RESIZE_HELP "Time to make one rendition of one size, its share of decoding included."
#define IMAGE_NAME  "s3imgfs_image_seconds"
#define IMAGE_HELP  "Time to make every rendition of one image, decoding included."

/* Prometheus compares le values as numbers, but spelling them the way client libraries do keeps
 * dashboards and recording rules that match on the string working. */
static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
static const char *const bucket_labels[] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                                            "1",     "2.5",  "5",     "10",   "30",  "+Inf"};
/* Doubles in this range are integers exactly when they equal their int64_t conversion. */
#define EXACT_INT_LIMIT 9007199254740992.0 /* 2^53 */

static bool is_integral(double v)
{
    return v > -EXACT_INT_LIMIT && v < EXACT_INT_LIMIT && v == (double)(int64_t)v;
}

#define FINITE_BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))
#define BUCKETS        (FINITE_BUCKETS + 1)

/* ---- state ---------------------------------------------------------------------------------- */

struct histogram {
    _Atomic uint64_t buckets[BUCKETS]; /* per bucket, not cumulative: one add per observation */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us; /* integers add exactly and atomically, doubles do neither */
};

struct hist_snap {
    uint64_t count, sum_us;
};

struct snapshot {
    uint64_t counters[METRICS_COUNTER_COUNT];
    struct hist_snap image;
    struct hist_snap *resize; /* size_count */
};

struct metrics {
    _Atomic uint64_t counters[METRICS_COUNTER_COUNT];
    struct histogram image;
    struct histogram *resize; /* size_count */
    char **size_names;
    size_t size_count;

    pthread_mutex_t emf_lock; /* guards the rest */
    bool emf_started;
    struct snapshot emf_last, emf_now;
};

static void histogram_init(struct histogram *h)
{
    for (size_t i = 0; i < BUCKETS; i++)
        atomic_init(&h->buckets[i], 0);
    atomic_init(&h->count, 0);
    atomic_init(&h->sum_us, 0);
}

static bool copy_size_names(struct metrics *m, const char *const *names, size_t count)
{
    m->size_names = calloc(count ? count : 1, sizeof(*m->size_names));
    if (!m->size_names)
        return false;
    m->size_count = count;
    for (size_t i = 0; i < count; i++) {
        m->size_names[i] = strdup(names[i] ? names[i] : "");
        if (!m->size_names[i])
            return false;
    }
    return true;
}

struct metrics *metrics_new(const char *const *size_names, size_t size_count)
{
    struct metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    for (size_t i = 0; i < METRICS_COUNTER_COUNT; i++)
        atomic_init(&m->counters[i], 0);
    histogram_init(&m->image);
    pthread_mutex_init(&m->emf_lock, NULL);
    size_t n = size_count ? size_count : 1; /* calloc(0) may return NULL */
    m->resize = calloc(n, sizeof(*m->resize));
    m->emf_last.resize = calloc(n, sizeof(struct hist_snap));
    m->emf_now.resize = calloc(n, sizeof(struct hist_snap));
    if (!m->resize || !m->emf_last.resize || !m->emf_now.resize ||
        !copy_size_names(m, size_names, size_count)) {
        metrics_free(m);
        errno = ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < size_count; i++)
        histogram_init(&m->resize[i]);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    if (m->size_names)
        for (size_t i = 0; i < m->size_count; i++)
            free(m->size_names[i]);
    free(m->size_names);
    free(m->resize);
    free(m->emf_last.resize);
    free(m->emf_now.resize);
    pthread_mutex_destroy(&m->emf_lock);
    free(m);
}

/* ---- updating ------------------------------------------------------------------------------- */

void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t by)
{
    if (!m || (unsigned)c >= METRICS_COUNTER_COUNT)
        return;
    atomic_fetch_add_explicit(&m->counters[c], by, memory_order_relaxed);
}

uint64_t metrics_counter_value(struct metrics *m, enum metrics_counter c)
{
    if (!m || (unsigned)c >= METRICS_COUNTER_COUNT)
        return 0;
    return atomic_load_explicit(&m->counters[c], memory_order_relaxed);
}

static size_t bucket_of(double seconds)
{
    size_t i = 0;
    while (i < FINITE_BUCKETS && seconds > bucket_bounds[i]) /* le is inclusive */
        i++;
    return i;
}

/* A clock that stepped back must not wrap the sum; 1e12 s keeps it far from overflowing. */
static uint64_t to_micros(double seconds)
{
    if (!(seconds > 0))
        return 0;
    if (seconds > 1e12)
        seconds = 1e12;
    return (uint64_t)(seconds * 1e6 + 0.5);
}

static void histogram_observe(struct histogram *h, double seconds)
{
    if (isnan(seconds)) /* no bucket would hold it and it would poison the sum */
        return;
    atomic_fetch_add_explicit(&h->buckets[bucket_of(seconds)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, to_micros(seconds), memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void metrics_observe_resize(struct metrics *m, size_t size_index, double seconds)
{
    if (!m || size_index >= m->size_count)
        return;
    histogram_observe(&m->resize[size_index], seconds);
}

void metrics_observe_image(struct metrics *m, double seconds)
{
    if (!m)
        return;
    histogram_observe(&m->image, seconds);
}

static struct hist_snap histogram_snap(struct histogram *h)
{
    return (struct hist_snap){
        .count = atomic_load_explicit(&h->count, memory_order_relaxed),
        .sum_us = atomic_load_explicit(&h->sum_us, memory_order_relaxed),
    };
}

/* ---- a growing text buffer ------------------------------------------------------------------ */

struct buf {
    char *p;
    size_t len, cap;
    bool failed; /* sticky, so callers check once at the end */
};

static bool buf_reserve(struct buf *b, size_t more)
{
    if (b->failed)
        return false;
    if (b->len + more + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void buf_putn(struct buf *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_puts(struct buf *b, const char *s)
{
    buf_putn(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if (!buf_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static char *buf_finish(struct buf *b)
{
    if (!b->failed && buf_reserve(b, 0) && b->len == 0)
        b->p[0] = '\0';
    if (b->failed) {
        free(b->p);
        errno = ENOMEM;
        return NULL;
    }
    return b->p;
}

/* ---- Prometheus text ------------------------------------------------------------------------ */

/* Label values escape the quote too; HELP text does not (Prometheus would keep the backslash). */
static void put_escaped(struct buf *b, const char *s, bool is_label)
{
    for (; *s; s++) {
        if (*s == '\\')
            buf_puts(b, "\\\\");
        else if (*s == '\n')
            buf_puts(b, "\\n");
        else if (*s == '"' && is_label)
            buf_puts(b, "\\\"");
        else
            buf_putn(b, s, 1);
    }
}

static void put_header(struct buf *b, const char *name, const char *help, const char *type)
{
    if (help) {
        buf_printf(b, "# HELP %s ", name);
        put_escaped(b, help, false);
        buf_puts(b, "\n");
    }
    buf_printf(b, "# TYPE %s %s\n", name, type);
}

/* Integers as integers; other values in the fewest digits that read back the same. */
static void put_double(struct buf *b, double v)
{
    if (isnan(v)) {
        buf_puts(b, "NaN");
        return;
    }
    if (isinf(v)) {
        buf_puts(b, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (is_integral(v)) {
        buf_printf(b, "%" PRId64, (int64_t)v);
        return;
    }
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof(text), "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    char *comma = strchr(text, ','); /* a library may have set LC_NUMERIC; Prometheus wants '.' */
    if (comma)
        *comma = '.';
    buf_puts(b, text);
}

/* Exact: the sum is kept in whole microseconds. */
static void put_micros(struct buf *b, uint64_t us)
{
    char frac[8];
    snprintf(frac, sizeof(frac), "%06" PRIu64, us % 1000000);
    size_t n = strlen(frac);
    while (n > 0 && frac[n - 1] == '0')
        n--;
    buf_printf(b, "%" PRIu64, us / 1000000);
    if (n > 0) {
        buf_puts(b, ".");
        buf_putn(b, frac, n);
    }
}

static void put_counters(struct buf *b, struct metrics *m)
{
    for (size_t i = 0; i < METRICS_COUNTER_COUNT; i++) {
        const struct counter_info *ci = &counter_info[i];
        put_header(b, ci->name, ci->help, "counter");
        buf_printf(b, "%s %" PRIu64 "\n", ci->name,
                   atomic_load_explicit(&m->counters[i], memory_order_relaxed));
    }
}

/* `label` is NULL or the size name. The count is the +Inf bucket as read, not h->count, so the
 * two agree even while other threads observe. */
static void put_histogram(struct buf *b, const char *name, struct histogram *h, const char *label)
{
    uint64_t cumulative = 0;
    for (size_t i = 0; i < BUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        buf_printf(b, "%s_bucket{", name);
        if (label) {
            buf_puts(b, "size=\"");
            put_escaped(b, label, true);
            buf_puts(b, "\",");
        }
        buf_printf(b, "le=\"%s\"} %" PRIu64 "\n", bucket_labels[i], cumulative);
    }
    const char *sep = label ? "{size=\"" : " ";
    buf_printf(b, "%s_sum%s", name, sep);
    if (label) {
        put_escaped(b, label, true);
        buf_puts(b, "\"} ");
    }
    put_micros(b, atomic_load_explicit(&h->sum_us, memory_order_relaxed));
    buf_printf(b, "\n%s_count%s", name, sep);
    if (label) {
        put_escaped(b, label, true);
        buf_puts(b, "\"} ");
    }
    buf_printf(b, "%" PRIu64 "\n", cumulative);
}

static void put_histograms(struct buf *b, struct metrics *m)
{
    if (m->size_count > 0) {
        put_header(b, RESIZE_NAME, RESIZE_HELP, "histogram");
        for (size_t i = 0; i < m->size_count; i++)
            put_histogram(b, RESIZE_NAME, &m->resize[i], m->size_names[i]);
    }
    put_header(b, IMAGE_NAME, IMAGE_HELP, "histogram");
    put_histogram(b, IMAGE_NAME, &m->image, NULL);
}

static void put_sample(struct buf *b, const struct metrics_sample *s)
{
    buf_puts(b, s->name);
    if (s->label_name) {
        buf_printf(b, "{%s=\"", s->label_name);
        put_escaped(b, s->label_value ? s->label_value : "", true);
        buf_puts(b, "\"}");
    }
    buf_puts(b, " ");
    put_double(b, s->value);
    buf_puts(b, "\n");
}

static bool seen_before(const struct metrics_sample *samples, size_t i)
{
    for (size_t j = 0; j < i; j++)
        if (samples[j].name && strcmp(samples[j].name, samples[i].name) == 0)
            return true;
    return false;
}

/* The format wants every line of a metric in one group: a name given again further down joins
 * its first group rather than repeating HELP and TYPE, whatever order the caller used. */
static void put_samples(struct buf *b, const struct metrics_sample *samples, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!samples[i].name || seen_before(samples, i))
            continue;
        const char *type = samples[i].type == METRICS_TYPE_COUNTER ? "counter" : "gauge";
        put_header(b, samples[i].name, samples[i].help, type);
        for (size_t j = i; j < n; j++)
            if (samples[j].name && strcmp(samples[j].name, samples[i].name) == 0)
                put_sample(b, &samples[j]);
    }
}

char *metrics_prometheus(struct metrics *m, const struct metrics_sample *samples, size_t n)
{
    struct buf b = {0};
    put_counters(&b, m);
    put_histograms(&b, m);
    if (samples)
        put_samples(&b, samples, n);
    return buf_finish(&b);
}

/* ---- CloudWatch EMF ------------------------------------------------------------------------- */

/* The spec allows at most 100 metric definitions per directive; more go into further ones. */
#define EMF_MAX_METRICS 100

struct emf_line {
    json_t *root;
    json_t *directives; /* _aws.CloudWatchMetrics */
    json_t *metrics;    /* the Metrics array being filled */
    size_t in_directive;
    json_t *dimensions; /* shared by every directive of the line */
    const char *ns;
    bool failed;
};

/* json_*_new steals the reference even on failure, so a NULL value needs no cleanup here. */
static void set_new(struct emf_line *l, json_t *obj, const char *key, json_t *value)
{
    if (!value || json_object_set_new(obj, key, value) != 0)
        l->failed = true;
}

static void append_new(struct emf_line *l, json_t *array, json_t *value)
{
    if (!value || json_array_append_new(array, value) != 0)
        l->failed = true;
}

static json_t *dimension_set(const char *const *keys, size_t n)
{
    json_t *set = json_array();
    json_t *sets = json_array();
    for (size_t i = 0; set && i < n; i++)
        json_array_append_new(set, json_string(keys[i]));
    if (!set || !sets || json_array_size(set) != n || json_array_append_new(sets, set) != 0) {
        json_decref(sets);
        return NULL;
    }
    return sets;
}

static void emf_start_directive(struct emf_line *l)
{
    if (l->failed) /* l->directives may be gone */
        return;
    json_t *d = json_object();
    l->metrics = json_array();
    if (!d || !l->metrics) {
        json_decref(d);
        json_decref(l->metrics);
        l->metrics = NULL;
        l->failed = true;
        return;
    }
    set_new(l, d, "Namespace", json_string(l->ns));
    set_new(l, d, "Dimensions", json_incref(l->dimensions));
    set_new(l, d, "Metrics", json_incref(l->metrics));
    json_decref(l->metrics); /* d holds it now; l->metrics stays valid while d lives */
    append_new(l, l->directives, d);
    l->in_directive = 0;
}

static bool emf_line_init(struct emf_line *l, const char *ns, int64_t now_ms,
                          const char *const *dims, const char *const *dim_values, size_t ndims)
{
    *l = (struct emf_line){.ns = ns};
    l->root = json_object();
    json_t *aws = json_object();
    json_t *directives = json_array();
    l->dimensions = dimension_set(dims, ndims);
    if (!l->root || !aws || !directives || !l->dimensions) {
        json_decref(aws);
        json_decref(directives);
        l->failed = true;
        return false;
    }
    l->directives = directives; /* borrowed: root owns it once set */
    set_new(l, aws, "Timestamp", json_integer((json_int_t)now_ms));
    set_new(l, aws, "CloudWatchMetrics", directives);
    set_new(l, l->root, "_aws", aws);
    emf_start_directive(l);
    for (size_t i = 0; i < ndims; i++)
        set_new(l, l->root, dims[i], json_string(dim_values[i]));
    return !l->failed;
}

/* A name already on the line (a gauge named like a counter, a label given twice) is skipped:
 * CloudWatch would reject the whole line. */
static void emf_metric(struct emf_line *l, const char *name, const char *unit, json_t *value)
{
    if (!value) {
        l->failed = true;
        return;
    }
    if (l->failed || json_object_get(l->root, name)) {
        json_decref(value);
        return;
    }
    if (l->in_directive == EMF_MAX_METRICS)
        emf_start_directive(l);
    if (l->failed) {
        json_decref(value);
        return;
    }
    json_t *def = json_object();
    if (!def) {
        json_decref(value);
        l->failed = true;
        return;
    }
    set_new(l, def, "Name", json_string(name));
    set_new(l, def, "Unit", json_string(unit));
    append_new(l, l->metrics, def);
    set_new(l, l->root, name, value);
    l->in_directive++;
}

static json_t *json_count(uint64_t v)
{
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* JSON has no NaN or infinity: the caller skips those. */
static json_t *json_number(double v)
{
    if (is_integral(v))
        return json_integer((json_int_t)v);
    return json_real(v);
}

static void emf_line_free(struct emf_line *l)
{
    json_decref(l->root);
    json_decref(l->dimensions);
}

/* Appends the line; false when out of memory or a string was not UTF-8. */
static bool emf_line_dump(struct emf_line *l, struct buf *out)
{
    char *text = NULL;
    if (!l->failed)
        text = json_dumps(l->root, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
    emf_line_free(l);
    if (!text)
        return false;
    buf_puts(out, text);
    buf_puts(out, "\n");
    free(text);
    return !out->failed;
}

/* "s3imgfs_queue_files" + "pending" -> "QueueFilesPending": CloudWatch has no labels. */
static void append_camel(char *out, size_t size, const char *s)
{
    size_t len = strlen(out);
    bool upper = true;
    for (; *s && len + 1 < size; s++) {
        char c = *s;
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum) {
            upper = true;
            continue;
        }
        if (upper && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        out[len++] = c;
        upper = false;
    }
    out[len] = '\0';
}

static void emf_name(char *out, size_t size, const struct metrics_sample *s)
{
    static const char prefix[] = "s3imgfs_";
    const char *name = s->name;
    if (strncmp(name, prefix, sizeof(prefix) - 1) == 0)
        name += sizeof(prefix) - 1;
    out[0] = '\0';
    append_camel(out, size, name);
    if (s->label_name && s->label_value)
        append_camel(out, size, s->label_value);
}

static const char *emf_gauge_unit(const char *name)
{
    size_t len = strlen(name);
    if (len >= 6 && strcmp(name + len - 6, "_bytes") == 0)
        return "Bytes";
    if (len >= 8 && strcmp(name + len - 8, "_seconds") == 0)
        return "Seconds";
    return "Count"; /* Prometheus names without a unit count things */
}

static bool is_emf_gauge(const struct metrics_sample *s)
{
    return s->name && s->type == METRICS_TYPE_GAUGE && isfinite(s->value);
}

static void emf_gauges(struct emf_line *l, const struct metrics_sample *samples, size_t n)
{
    char name[256]; /* CloudWatch's limit for a metric name */
    for (size_t i = 0; i < n; i++) {
        if (!is_emf_gauge(&samples[i]))
            continue;
        emf_name(name, sizeof(name), &samples[i]);
        if (name[0])
            emf_metric(l, name, emf_gauge_unit(samples[i].name), json_number(samples[i].value));
    }
}

static double mean_ms(struct hist_snap now, struct hist_snap last)
{
    return (double)(now.sum_us - last.sum_us) / (double)(now.count - last.count) / 1000.0;
}

static bool emf_main_line(struct metrics *m, struct buf *out, const char *ns, const char *service,
                          int64_t now_ms, const struct metrics_sample *samples, size_t n)
{
    static const char *const dims[] = {"Service"};
    struct emf_line l;
    if (!emf_line_init(&l, ns, now_ms, dims, &service, 1))
        return emf_line_dump(&l, out);
    const struct snapshot *now = &m->emf_now, *last = &m->emf_last;
    for (size_t i = 0; i < METRICS_COUNTER_COUNT; i++)
        emf_metric(&l, counter_info[i].emf_name, counter_info[i].emf_unit,
                   json_count(now->counters[i] - last->counters[i]));
    if (samples)
        emf_gauges(&l, samples, n);
    if (now->image.count != last->image.count)
        emf_metric(&l, "ImageTime", "Milliseconds", json_real(mean_ms(now->image, last->image)));
    return emf_line_dump(&l, out);
}

static bool emf_size_line(struct metrics *m, struct buf *out, const char *ns, const char *service,
                          int64_t now_ms, size_t i)
{
    static const char *const dims[] = {"Service", "Size"};
    const char *values[] = {service, m->size_names[i]};
    struct hist_snap now = m->emf_now.resize[i], last = m->emf_last.resize[i];
    struct emf_line l;
    if (emf_line_init(&l, ns, now_ms, dims, values, 2)) {
        emf_metric(&l, "ResizeTime", "Milliseconds", json_real(mean_ms(now, last)));
        emf_metric(&l, "Resizes", "Count", json_count(now.count - last.count));
    }
    return emf_line_dump(&l, out);
}

static void take_snapshot(struct metrics *m, struct snapshot *s)
{
    for (size_t i = 0; i < METRICS_COUNTER_COUNT; i++)
        s->counters[i] = atomic_load_explicit(&m->counters[i], memory_order_relaxed);
    s->image = histogram_snap(&m->image);
    for (size_t i = 0; i < m->size_count; i++)
        s->resize[i] = histogram_snap(&m->resize[i]);
}

static bool anything_changed(const struct metrics *m, const struct metrics_sample *samples,
                             size_t n)
{
    const struct snapshot *now = &m->emf_now, *last = &m->emf_last;
    if (memcmp(now->counters, last->counters, sizeof(now->counters)) != 0 ||
        now->image.count != last->image.count)
        return true;
    for (size_t i = 0; i < m->size_count; i++)
        if (now->resize[i].count != last->resize[i].count)
            return true;
    for (size_t i = 0; samples && i < n; i++)
        if (is_emf_gauge(&samples[i]))
            return true;
    return false;
}

/* The snapshot advances only when the text was made, so a failed call loses no counts. */
static void commit_snapshot(struct metrics *m)
{
    struct hist_snap *spare = m->emf_last.resize;
    m->emf_last = m->emf_now;
    m->emf_now.resize = spare;
    m->emf_started = true;
}

static char *emf_render(struct metrics *m, const char *ns, const char *service, int64_t now_ms,
                        const struct metrics_sample *samples, size_t n)
{
    struct buf b = {0};
    bool ok = true;
    if (!m->emf_started || anything_changed(m, samples, n)) {
        ok = emf_main_line(m, &b, ns, service, now_ms, samples, n);
        for (size_t i = 0; ok && i < m->size_count; i++)
            if (m->emf_now.resize[i].count != m->emf_last.resize[i].count)
                ok = emf_size_line(m, &b, ns, service, now_ms, i);
    }
    if (!ok) {
        free(b.p);
        errno = ENOMEM;
        return NULL;
    }
    return buf_finish(&b);
}

char *metrics_emf(struct metrics *m, const char *ns, const char *service, int64_t now_ms,
                  const struct metrics_sample *samples, size_t n)
{
    pthread_mutex_lock(&m->emf_lock);
    take_snapshot(m, &m->emf_now);
    char *text = emf_render(m, ns, service, now_ms, samples, n);
    if (text)
        commit_snapshot(m);
    pthread_mutex_unlock(&m->emf_lock);
    return text;
}
