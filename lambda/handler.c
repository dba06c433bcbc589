/* handler: one invocation = one S3 event; each record's image is fetched, resized with every
 * size from one decode, its renditions put in the destination bucket and a notice posted. The
 * same steps as the gateway's resize (gateway/renditions.c, gateway/notices.c), from memory
 * instead of a spool file.
 *
 * Per record:
 *   HEAD the source (size, ETag, Content-Type); every rendition already there with metadata
 *   source-etag = this ETag -> skipped (a retried or repeated event does no work, downloads
 *   nothing and announces nothing twice). Looked for when the Content-Type is an image type,
 *   or none and the renditions' names do not depend on the source's format (no {ext} in
 *   key_template); with {ext}, the type is a guess, which the bytes confirm below if wrong;
 *   GET it (If-Match that ETag), judging its first 256 KiB with
 *   resize_probe as they arrive: not an image -> skipped, no notice; over max_file_mb or
 *   max_pixels, or a format not read here -> refused at once, the rest never downloaded;
 *   the renditions for the sniffed format already there (when it is not the guessed one) ->
 *   skipped;
 *   resize_buffer; each rendition is PUT from the callback (content type, SSE, metadata
 *   source-etag and source-key, as the gateway writes them); notice "resized".
 * Failures: a permanent one (a corrupt or refused image, over a limit, AccessDenied) is
 * announced ("resize_failed") and counted; a transient one (5xx, throttling, network) is only
 * logged and makes *retry true: the retried event announces the result. An object deleted
 * after its event (NoSuchKey) is skipped as gone.
 */
#include "lambda.h"
#include "log.h"
#include "resize.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MARGIN_MS    3000  /* a record starts only this long before the deadline */
#define FLUSH_MAX_MS 10000 /* longest wait for notices to leave before answering */

struct lambda_handler {
    const struct config *cfg;
    struct s3client *s3;
    struct notifier *notifier;
    struct metrics *metrics;
    char origin[160];
    uint64_t invocations;
};

enum status { ST_DONE, ST_SKIPPED, ST_FAILED, ST_NOT_STARTED };

static const char *const status_names[] = {"done", "skipped", "failed", "not started"};

/* What happened to one record, for the response. */
struct outcome {
    enum status status;
    char reason[600];
    bool transient;
    struct notify_rendition *made; /* keys owned (malloc'd) */
    size_t made_count;
    bool made_before;      /* made is the list of renditions found current, without details */
    uint64_t source_bytes; /* of the source received (a refused one stops early) */
};

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct lambda_handler *lambda_handler_new(const struct lambda_handler_options *o,
                                          struct s3_error *err)
{
    if (!o || !o->cfg || !o->s3) {
        s3_error_set(err, 0, "InvalidArgument", false,
                     "lambda_handler_new: a configuration and an S3 client are required");
        return NULL;
    }
    if (!o->cfg->s3.destination_bucket[0]) {
        s3_error_set(err, 0, "InvalidConfig", false,
                     "[s3] destination_bucket (S3IMGFS_DESTINATION_BUCKET) is not set: the "
                     "function needs the bucket it writes the resized images to");
        return NULL;
    }
    struct lambda_handler *h = calloc(1, sizeof(*h));
    if (!h) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory");
        return NULL;
    }
    h->cfg = o->cfg;
    h->s3 = o->s3;
    h->notifier = o->notifier;
    h->metrics = o->metrics;
    const char *fn = getenv("AWS_LAMBDA_FUNCTION_NAME");
    if (fn && *fn)
        snprintf(h->origin, sizeof(h->origin), "s3imgfs-lambda %s", fn);
    else
        snprintf(h->origin, sizeof(h->origin), "s3imgfs-lambda");
    return h;
}

void lambda_handler_free(struct lambda_handler *h)
{
    free(h);
}

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                      */

/* A failure that may pass (the same rule as the gateway's gw_is_transient). */
static bool is_transient(const struct s3_error *err)
{
    if (err->retryable || err->http_status >= 500 || err->http_status == 429)
        return true;
    return err->http_status == 0 && strcmp(err->code, "LocalIOError") != 0 &&
           strcmp(err->code, "InvalidArgument") != 0 && strcmp(err->code, "OutOfMemory") != 0 &&
           strcmp(err->code, "EntityTooLarge") != 0;
}

static bool is_gone(const struct s3_error *err)
{
    return strcmp(err->code, "NoSuchKey") == 0;
}

static void outcome_clear(struct outcome *o)
{
    for (size_t i = 0; i < o->made_count; i++)
        free((char *)o->made[i].key);
    free(o->made);
    memset(o, 0, sizeof(*o));
}

static void set_reason(struct outcome *o, enum status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_reason(struct outcome *o, enum status st, const char *fmt, ...)
{
    o->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->reason, sizeof(o->reason), fmt, ap);
    va_end(ap);
}

/* Adds a rendition to the outcome (the key is taken over). */
static int note(struct outcome *o, struct notify_rendition r)
{
    struct notify_rendition *made = realloc(o->made, (o->made_count + 1) * sizeof(*made));
    if (!made) {
        free((char *)r.key);
        return -1;
    }
    o->made = made;
    o->made[o->made_count++] = r;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* One record                                                                                   */

struct job {
    struct lambda_handler *h;
    const struct lambda_record *rec;
    const char *rid;
    struct s3_object_info head; /* of the source */
    const char *format;         /* sniffed; NULL = not an image */
    struct resize_source_info info;
    double started_ms;
    struct outcome *out;
};

static void notify_failed(struct job *j, const char *reason)
{
    struct lambda_handler *h = j->h;
    if (h->metrics)
        metrics_add(h->metrics, METRICS_RESIZE_FAILURES, 1);
    if (!h->notifier)
        return;
    struct notify_event e = {
        .status = NOTIFY_FAILED,
        .event = "resize_failed",
        .bucket = j->rec->bucket,
        .key = j->rec->key,
        .size = j->head.size ? j->head.size : j->rec->size,
        .etag = j->head.etag[0] ? j->head.etag : j->rec->etag,
        .format = j->format ? j->format : "",
        .width = j->info.width > 0 ? (unsigned)j->info.width : 0,
        .height = j->info.height > 0 ? (unsigned)j->info.height : 0,
        .destination_bucket = h->cfg->s3.destination_bucket,
        .reason = reason,
        .action = "the original stays in the source bucket; no renditions were made",
        .request_id = j->rid,
        .origin = h->origin,
        .time_ms = wall_ms(),
        .elapsed_ms = mono_ms() - j->started_ms,
    };
    notifier_post(h->notifier, &e);
}

static void notify_done(struct job *j)
{
    struct lambda_handler *h = j->h;
    if (!h->notifier)
        return;
    struct notify_event e = {
        .status = NOTIFY_DONE,
        .event = "resized",
        .bucket = j->rec->bucket,
        .key = j->rec->key,
        .size = j->head.size,
        .etag = j->head.etag,
        .format = j->info.format ? j->info.format : j->format,
        .width = j->info.width > 0 ? (unsigned)j->info.width : 0,
        .height = j->info.height > 0 ? (unsigned)j->info.height : 0,
        .destination_bucket = h->cfg->s3.destination_bucket,
        .renditions = j->out->made,
        .rendition_count = j->out->made_count,
        .reason = "",
        .action = "",
        .request_id = j->rid,
        .origin = h->origin,
        .time_ms = wall_ms(),
        .elapsed_ms = mono_ms() - j->started_ms,
    };
    notifier_post(h->notifier, &e);
}

/* An S3 request about the source failed: gone, transient (retry the event) or permanent. */
static void source_failed(struct job *j, const char *what, const struct s3_error *err)
{
    struct outcome *o = j->out;
    if (is_gone(err)) {
        set_reason(o, ST_SKIPPED, "the object is gone (deleted after the event was sent)");
        log_key_info(j->rec->key, j->rid, "skipped: %s", o->reason);
        return;
    }
    if (strcmp(err->code, "PreconditionFailed") == 0) {
        set_reason(o, ST_FAILED, "the object changed while it was read; a retry reads the new one");
        o->transient = true;
        log_key_warn(j->rec->key, j->rid, "%s", o->reason);
        return;
    }
    set_reason(o, ST_FAILED, "cannot %s the source: %s", what, err->message);
    o->transient = is_transient(err);
    if (o->transient) {
        log_key_warn(j->rec->key, j->rid, "%s (transient: the event should be retried)", o->reason);
        return;
    }
    log_key_error(j->rec->key, j->rid, "%s", o->reason);
    notify_failed(j, o->reason);
}

/* True when every rendition this source gives exists with source-etag = its ETag; the keys
 * then go to the outcome. One HEAD when they do not (the usual case). */
static bool renditions_current(struct job *j)
{
    const struct config *cfg = j->h->cfg;
    if (!j->head.etag[0] || !j->format || !resize_is_image_format(j->format))
        return false;
    struct outcome found = {0};
    bool current = true;
    for (size_t i = 0; current && i < cfg->resize.size_count; i++) {
        const struct conf_size *size = &cfg->resize.sizes[i];
        char *key =
            conf_rendition_key(cfg, size, j->rec->key, resize_output_extension(size, j->format));
        if (!key)
            break;
        struct s3_object_info info = {0};
        struct s3_error err;
        s3_error_clear(&err);
        const char *etag = NULL;
        if (s3_head_object(j->h->s3, cfg->s3.destination_bucket, key, &info, &err) == 0)
            etag = s3_object_info_meta(&info, "source-etag");
        current = etag && strcmp(etag, j->head.etag) == 0;
        s3_object_info_clear(&info);
        if (!current)
            free(key);
        else if (note(&found, (struct notify_rendition){.size = size->name, .key = key}) != 0)
            current = false; /* note() freed the key */
    }
    current = current && found.made_count == cfg->resize.size_count;
    if (current) {
        uint64_t read = j->out->source_bytes; /* still true of this record */
        outcome_clear(j->out);
        j->out->source_bytes = read;
        j->out->made = found.made;
        j->out->made_count = found.made_count;
        j->out->made_before = true;
    } else {
        outcome_clear(&found);
    }
    return current;
}

struct put_ctx {
    struct job *j;
    char *source_key; /* percent-encoded, '/' kept: metadata must be printable ASCII */
    struct s3_error err;
    bool failed;
    double put_ms;
};

static int put_rendition(void *ctx, const struct rendition *r)
{
    struct put_ctx *p = ctx;
    struct job *j = p->j;
    const struct config *cfg = j->h->cfg;
    char *key = conf_rendition_key(cfg, r->size, j->rec->key, r->extension);
    if (!key) {
        s3_error_set(&p->err, 0, "OutOfMemory", false, "out of memory");
        p->failed = true;
        return -1;
    }
    struct aws_header meta[] = {{"source-etag", j->head.etag}, {"source-key", p->source_key}};
    struct s3_put_options put = {
        .content_type = r->mime,
        .metadata = meta,
        .metadata_count = 2,
        .sse = conf_sse_name(cfg->s3.sse),
        .sse_kms_key_id = cfg->s3.sse_kms_key_id[0] ? cfg->s3.sse_kms_key_id : NULL,
    };
    struct s3_body body = s3_body_mem(r->data, r->len);
    double t0 = mono_ms();
    int rc = s3_put_object(j->h->s3, cfg->s3.destination_bucket, key, &body, &put, NULL, &p->err);
    p->put_ms += mono_ms() - t0;
    if (rc != 0) {
        p->failed = true;
        free(key);
        return -1;
    }
    log_key_debug(j->rec->key, j->rid, "rendition %s: %dx%d %s, %zu bytes", key, r->width,
                  r->height, r->format, r->len);
    struct metrics *m = j->h->metrics;
    if (m) {
        metrics_add(m, METRICS_RENDITIONS, 1);
        metrics_add(m, METRICS_RENDITION_BYTES, r->len);
        metrics_observe_resize(m, (size_t)(r->size - cfg->resize.sizes), r->ms / 1e3);
    }
    note(j->out, (struct notify_rendition){
                     .size = r->size->name,
                     .key = key,
                     .width = (unsigned)r->width,
                     .height = (unsigned)r->height,
                     .format = r->format,
                     .bytes = r->len,
                 });
    return 0;
}

static struct resize_options resize_options_of(const struct config *cfg)
{
    return (struct resize_options){
        .sizes = cfg->resize.sizes,
        .size_count = cfg->resize.size_count,
        .max_pixels = cfg->resize.max_pixels,
        .max_file_bytes = (uint64_t)cfg->resize.max_file_mb << 20,
        .background = cfg->resize.background,
    };
}

static void resize_record(struct job *j, const void *data, size_t len)
{
    struct outcome *o = j->out;
    struct resize_options opts = resize_options_of(j->h->cfg);
    struct put_ctx p = {.j = j};
    s3_error_clear(&p.err);
    p.source_key = aws_uri_encode(j->rec->key, strlen(j->rec->key), true);
    if (!p.source_key) {
        set_reason(o, ST_FAILED, "out of memory");
        o->transient = true;
        return;
    }
    struct resize_error rerr = {{0}};
    double t0 = mono_ms();
    enum resize_status st = resize_buffer(data, len, &opts, put_rendition, &p, &j->info, &rerr);
    double total_ms = mono_ms() - t0;
    free(p.source_key);
    if (st == RESIZE_OK) {
        o->status = ST_DONE;
        if (j->h->metrics) {
            metrics_add(j->h->metrics, METRICS_IMAGES, 1);
            metrics_observe_image(j->h->metrics, (total_ms - p.put_ms) / 1e3);
        }
        log_key_info(j->rec->key, j->rid, "resized (%dx%d %s): %zu renditions in %.0f ms",
                     j->info.width, j->info.height, j->info.format ? j->info.format : "?",
                     o->made_count, total_ms);
        notify_done(j);
        return;
    }
    if (st == RESIZE_NOT_IMAGE) {
        set_reason(o, ST_SKIPPED, "not an image");
        log_key_info(j->rec->key, j->rid, "skipped: not an image");
        return;
    }
    /* Renditions put before the failure stay; a later success overwrites them. */
    for (size_t i = 0; i < o->made_count; i++)
        free((char *)o->made[i].key);
    free(o->made);
    o->made = NULL;
    o->made_count = 0;
    if (p.failed) {
        set_reason(o, ST_FAILED, "cannot put a rendition: %s", p.err.message);
        o->transient = is_transient(&p.err);
        if (o->transient) {
            log_key_warn(j->rec->key, j->rid, "%s (transient: the event should be retried)",
                         o->reason);
            return;
        }
    } else {
        set_reason(o, ST_FAILED, "%s", rerr.reason);
    }
    log_key_error(j->rec->key, j->rid, "%s", o->reason);
    notify_failed(j, o->reason);
}

/* The source's bytes as they arrive. Once the first PROBE_BYTES (or all of a smaller object)
 * are in, resize_probe judges them, and the transfer stops there when no rendition will be made
 * (a 2 GB video is not an image; a 40 MB TIFF of 400 MP, or a JPEG over max_file_mb, is
 * refused): one GET either way, and memory for the whole object only once it passed. */
#define PROBE_BYTES (256u << 10)

struct source_sink {
    const struct resize_options *opts;
    uint64_t total; /* the size HEAD gave */
    char *data;     /* malloc'd; the caller frees */
    size_t len, cap;
    uint64_t received; /* bytes delivered, retries included */
    bool probed;
    bool overrun; /* more bytes than HEAD said: the object changed */
    enum resize_status verdict;
    struct resize_error reason;
};

static void judge_source(struct source_sink *s, struct resize_source_info *info)
{
    s->probed = true;
    s->verdict = resize_probe(s->data, s->len, s->total, s->opts, info, &s->reason);
}

static int take_source_bytes(void *ctx, uint64_t offset, const void *data, size_t len)
{
    struct source_sink *s = ctx;
    s->received += len;
    if (offset + len > s->total) {
        s->overrun = true;
        return -1;
    }
    size_t end = (size_t)(offset + len);
    if (end > s->cap) { /* before the verdict, only what the probe reads */
        size_t cap = s->probed ? (size_t)s->total : PROBE_BYTES < s->total ? PROBE_BYTES : s->total;
        cap = cap < end ? end : cap;
        char *p = realloc(s->data, cap);
        if (!p)
            return -1;
        s->data = p;
        s->cap = cap;
    }
    memcpy(s->data + offset, data, len);
    s->len = end; /* a retry starts again from 0 */
    if (!s->probed && (s->len >= PROBE_BYTES || s->len == s->total)) {
        struct resize_source_info unused;
        judge_source(s, &unused);
        return s->verdict == RESIZE_OK ? 0 : -1;
    }
    return 0;
}

/* The verdict of the probe on a source that will not be resized. */
static void refuse_source(struct job *j, const struct source_sink *s)
{
    struct outcome *o = j->out;
    if (s->verdict == RESIZE_NOT_IMAGE) {
        set_reason(o, ST_SKIPPED, "not an image");
        log_key_info(j->rec->key, j->rid,
                     "skipped: not an image (%" PRIu64 " of %" PRIu64 " bytes read)", s->received,
                     s->total);
        return;
    }
    set_reason(o, ST_FAILED, "%s", s->reason.reason[0] ? s->reason.reason : "refused");
    log_key_error(j->rec->key, j->rid, "%s (%" PRIu64 " of %" PRIu64 " bytes read)", o->reason,
                  s->received, s->total);
    notify_failed(j, o->reason);
}

/* GETs the source (If-Match the ETag HEAD gave); false when the record is finished. */
static bool fetch_source(struct job *j, struct source_sink *src)
{
    char if_match[140];
    snprintf(if_match, sizeof(if_match), "\"%s\"", j->head.etag);
    struct s3_get_options get = {.if_match = j->head.etag[0] ? if_match : NULL};
    struct s3_error err;
    s3_error_clear(&err);
    int rc = s3_get_object(j->h->s3, j->rec->bucket, j->rec->key, &get, take_source_bytes, src,
                           NULL, &err);
    j->out->source_bytes = src->received;
    if (rc == 0 && !src->probed) /* an empty object: nothing was delivered */
        judge_source(src, &j->info);
    if (src->probed && src->verdict != RESIZE_OK) {
        refuse_source(j, src);
        return false;
    }
    if (rc == 0 && src->len != src->total)
        src->overrun = true;
    if (src->overrun) {
        s3_error_set(&err, 412, "PreconditionFailed", false,
                     "GET s3://%s/%s: %" PRIu64 " bytes where HEAD said %" PRIu64, j->rec->bucket,
                     j->rec->key, src->received, src->total);
        rc = -1;
    }
    if (rc != 0) {
        source_failed(j, "read (GET)", &err);
        return false;
    }
    return true;
}

/* No type given at upload: S3 and the SDKs store one of these. */
static bool untyped(const char *content_type)
{
    return !content_type || !content_type[0] ||
           strcasecmp(content_type, "binary/octet-stream") == 0 ||
           strcasecmp(content_type, "application/octet-stream") == 0;
}

static void skip_as_made(struct job *j)
{
    set_reason(j->out, ST_SKIPPED, "renditions already made from this version (ETag %s)",
               j->head.etag);
    log_key_info(j->rec->key, j->rid, "skipped: %s", j->out->reason);
}

static void process(struct lambda_handler *h, const struct lambda_record *rec, const char *rid,
                    struct outcome *o)
{
    struct job j = {.h = h, .rec = rec, .rid = rid, .started_ms = mono_ms(), .out = o};
    struct s3_error err;
    s3_error_clear(&err);
    if (s3_head_object(h->s3, rec->bucket, rec->key, &j.head, &err) != 0) {
        source_failed(&j, "read (HEAD)", &err);
        s3_object_info_clear(&j.head);
        return;
    }
    /* Safe on a wrong guess: renditions count only when made from this very version. */
    const char *tpl = h->cfg->resize.key_template;
    bool named_by_format = tpl && strstr(tpl, "{ext}") != NULL;
    const char *guess = resize_format_of_mime(j.head.content_type);
    if (!guess && !named_by_format && untyped(j.head.content_type))
        guess = "jpeg"; /* any image format gives the same names */
    j.format = guess;
    if (guess && renditions_current(&j)) {
        skip_as_made(&j);
        s3_object_info_clear(&j.head);
        return;
    }
    struct resize_options opts = resize_options_of(h->cfg);
    struct source_sink src = {.opts = &opts, .total = j.head.size};
    if (fetch_source(&j, &src)) {
        j.format = resize_sniff_format(src.data, src.len);
        bool checked = guess && j.format && resize_is_image_format(j.format) &&
                       (!named_by_format || strcmp(guess, j.format) == 0);
        if (!checked && renditions_current(&j))
            skip_as_made(&j);
        else
            resize_record(&j, src.data, src.len);
    }
    free(src.data);
    s3_object_info_clear(&j.head);
}

/* ------------------------------------------------------------------------------------------ */
/* The event                                                                                    */

static void skip_reason(const struct config *cfg, const struct lambda_record *r,
                        enum lambda_skip skip, struct outcome *o)
{
    switch (skip) {
    case LAMBDA_SKIP_TEST_EVENT:
        set_reason(o, ST_SKIPPED, "test event (sent when a bucket notification is configured)");
        break;
    case LAMBDA_SKIP_NOT_CREATE:
        set_reason(o, ST_SKIPPED, "not a create event (%s)", r->event_name);
        break;
    case LAMBDA_SKIP_DESTINATION:
        set_reason(o, ST_SKIPPED,
                   "destination: a key under destination_prefix '%s' of the destination bucket "
                   "is a rendition (never resized again)",
                   cfg->s3.destination_prefix);
        break;
    case LAMBDA_SKIP_OUTSIDE:
        if (cfg->s3.source_bucket[0] && strcmp(r->bucket, cfg->s3.source_bucket) != 0)
            set_reason(o, ST_SKIPPED, "outside: bucket %s is not the source bucket %s", r->bucket,
                       cfg->s3.source_bucket);
        else
            set_reason(o, ST_SKIPPED, "outside: the key is not under source_prefix '%s'",
                       cfg->s3.source_prefix);
        break;
    case LAMBDA_SKIP_NONE:
        break;
    }
}

/* The trace id Lambda gives each invocation (Root=...), else a counter. */
static void invocation_id(struct lambda_handler *h, char *out, size_t len)
{
    uint64_t seq = __atomic_add_fetch(&h->invocations, 1, __ATOMIC_RELAXED);
    const char *trace = getenv("_X_AMZN_TRACE_ID");
    const char *root = trace ? strstr(trace, "Root=") : NULL;
    if (root) {
        root += 5;
        size_t n = strcspn(root, ";");
        snprintf(out, len, "%.*s", (int)(n < 80 ? n : 80), root);
        if (n)
            return;
    }
    snprintf(out, len, "inv%" PRIu64, seq);
}

static json_t *record_json(const struct lambda_record *r, const struct outcome *o)
{
    json_t *renditions = json_array();
    for (size_t i = 0; renditions && i < o->made_count; i++) {
        const struct notify_rendition *m = &o->made[i];
        json_t *x = o->made_before ? json_pack("{s:s, s:s}", "size", m->size, "key", m->key)
                                   : json_pack("{s:s, s:s, s:I, s:I, s:s, s:I}", "size", m->size,
                                               "key", m->key, "width", (json_int_t)m->width,
                                               "height", (json_int_t)m->height, "format", m->format,
                                               "bytes", (json_int_t)m->bytes);
        json_array_append_new(renditions, x);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:I, s:o*}", "bucket", r->bucket, "key", r->key,
                     "status", status_names[o->status], "reason", o->reason, "source_bytes_read",
                     (json_int_t)o->source_bytes, "renditions", renditions);
}

/* Record i of ev: skipped, not started (the deadline is near) or processed. */
static void handle_record(struct lambda_handler *h, const struct lambda_event *ev, size_t i,
                          const char *inv, int64_t deadline_ms, struct outcome *o)
{
    const struct lambda_record *r = &ev->records[i];
    char rid[128];
    if (ev->count > 1)
        snprintf(rid, sizeof(rid), "%s/%zu", inv, i);
    else
        snprintf(rid, sizeof(rid), "%s", inv);
    if (ev->skip[i] != LAMBDA_SKIP_NONE) {
        skip_reason(h->cfg, r, ev->skip[i], o);
        log_key_debug(r->key, rid, "skipped: %s", o->reason);
    } else if (deadline_ms > 0 && wall_ms() >= deadline_ms - MARGIN_MS) {
        set_reason(o, ST_NOT_STARTED,
                   "too close to the function's deadline (%d s margin); a retry of the event "
                   "does it",
                   MARGIN_MS / 1000);
        log_key_warn(r->key, rid, "%s", o->reason);
    } else {
        process(h, r, rid, o);
    }
}

/* The notices leave before the answer: Lambda freezes the process after it. */
static void flush_notices(struct lambda_handler *h, int64_t deadline_ms)
{
    if (!h->notifier)
        return;
    int64_t wait = FLUSH_MAX_MS;
    if (deadline_ms > 0) {
        int64_t left = deadline_ms - wall_ms() - MARGIN_MS;
        wait = left < 0 ? 0 : left < wait ? left : wait;
    }
    size_t pending = wait > 0 ? notifier_flush(h->notifier, (unsigned)wait) : 0;
    if (pending)
        log_warn("%zu notice(s) not delivered yet when the function answered; they go out with "
                 "a later invocation",
                 pending);
}

char *lambda_handle_event(struct lambda_handler *h, const char *json, size_t len,
                          int64_t deadline_ms, bool *retry, struct s3_error *err)
{
    bool dummy;
    if (!retry)
        retry = &dummy;
    *retry = false;
    if (!h) {
        s3_error_set(err, 0, "InvalidArgument", false, "lambda_handle_event: no handler");
        return NULL;
    }
    struct lambda_event ev;
    if (lambda_event_parse(h->cfg, json, len, &ev, err) != 0)
        return NULL;
    char inv[100];
    invocation_id(h, inv, sizeof(inv));

    json_t *records = json_array();
    size_t counts[4] = {0};
    bool again = false;
    for (size_t i = 0; i < ev.count; i++) {
        struct outcome o = {0};
        handle_record(h, &ev, i, inv, deadline_ms, &o);
        if (o.status == ST_NOT_STARTED || (o.status == ST_FAILED && o.transient))
            again = true;
        counts[o.status]++;
        json_array_append_new(records, record_json(&ev.records[i], &o));
        outcome_clear(&o);
    }
    lambda_event_free(&ev);
    flush_notices(h, deadline_ms);

    json_t *root = json_pack("{s:o, s:I, s:I, s:I, s:I, s:b}", "records", records, "done",
                             (json_int_t)counts[ST_DONE], "failed", (json_int_t)counts[ST_FAILED],
                             "skipped", (json_int_t)counts[ST_SKIPPED], "not_started",
                             (json_int_t)counts[ST_NOT_STARTED], "retry", again);
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!out) {
        s3_error_set(err, 0, "OutOfMemory", false, "out of memory while writing the response");
        *retry = true;
        return NULL;
    }
    *retry = again;
    return out;
}
