/* metrics: counters and latency histograms kept in the process, rendered as Prometheus text
 * (the file MOUNTPOINT/.s3imgfs/metrics) and as CloudWatch Embedded Metric Format log lines.
 *
 * Updating is lock-free (relaxed atomics) so the pipeline's threads can count freely; rendering
 * reads a consistent-enough snapshot (each number is read once). Values the owner of the
 * metrics knows better (queue depths, the S3 client's retries) are passed in at render time as
 * samples, so this module depends on nothing.
 *
 * Names follow Prometheus conventions: s3imgfs_<what>_<unit>, counters end in _total, times are
 * in seconds. docs/monitoring.md lists every metric.
 */
#ifndef S3IMGFS_METRICS_H
#define S3IMGFS_METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metrics_counter {
    METRICS_UPLOADS,         /* s3imgfs_uploads_total: files put in the source bucket */
    METRICS_UPLOAD_BYTES,    /* s3imgfs_upload_bytes_total */
    METRICS_UPLOAD_FAILURES, /* s3imgfs_upload_failures_total: stopped for good (failed) */
    METRICS_UPLOAD_RETRIES,  /* s3imgfs_upload_retries_total: transient failures, retried */
    METRICS_IMAGES,          /* s3imgfs_images_total: images resized (all renditions made) */
    METRICS_RESIZE_FAILURES, /* s3imgfs_resize_failures_total */
    METRICS_RENDITIONS,      /* s3imgfs_renditions_total */
    METRICS_RENDITION_BYTES, /* s3imgfs_rendition_bytes_total */
    METRICS_NOTICES,         /* s3imgfs_notices_total: notices delivered (all sinks) */
    METRICS_NOTICE_FAILURES, /* s3imgfs_notice_failures_total: failed sends (retried) */
    METRICS_NOTICES_DROPPED, /* s3imgfs_notices_dropped_total: lost to a full queue */
    METRICS_COUNTER_COUNT
};

/* A value owned elsewhere, given at render time. */
enum metrics_type { METRICS_TYPE_COUNTER, METRICS_TYPE_GAUGE };
struct metrics_sample {
    const char *name; /* full Prometheus name, e.g. "s3imgfs_queue_files" */
    const char *help; /* one line */
    enum metrics_type type;
    const char *label_name;  /* NULL = no label; samples of one name are consecutive */
    const char *label_value; /* escaped here as Prometheus wants */
    double value;
};

struct metrics;

/* size_names: the rendition sizes ([resize] sizes), each getting its own histogram (copied).
 * Returns NULL on ENOMEM. */
struct metrics *metrics_new(const char *const *size_names, size_t size_count);
void metrics_free(struct metrics *m);

void metrics_add(struct metrics *m, enum metrics_counter c, uint64_t by);
/* One rendition of size `size_index` took `seconds` (its share of decode and encode). */
void metrics_observe_resize(struct metrics *m, size_t size_index, double seconds);
/* One whole image (decode and every size) took `seconds`. */
void metrics_observe_image(struct metrics *m, double seconds);

uint64_t metrics_counter_value(struct metrics *m, enum metrics_counter c);

/* Prometheus text exposition format 0.0.4: HELP and TYPE lines, the counters, the histograms
 * (s3imgfs_resize_seconds{size=...} and s3imgfs_image_seconds, buckets from 5 ms to 30 s), then
 * the samples. malloc'd; NULL on ENOMEM. */
char *metrics_prometheus(struct metrics *m, const struct metrics_sample *samples, size_t n);

/* CloudWatch Embedded Metric Format: one JSON object per line ("_aws": {Timestamp,
 * CloudWatchMetrics: [{Namespace, Dimensions, Metrics}]}) holding what changed since the last
 * call (counter deltas; resize time as the mean and count per size, one line per size with
 * the dimension Size) plus the gauges among the samples. `ns` is the namespace ("s3imgfs"),
 * `service` the value of the dimension Service. Lines end in '\n'. malloc'd; "" when nothing
 * changed; NULL on ENOMEM. Call from one thread at a time. */
char *metrics_emf(struct metrics *m, const char *ns, const char *service, int64_t now_ms,
                  const struct metrics_sample *samples, size_t n);

#endif
