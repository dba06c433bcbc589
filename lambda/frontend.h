/* frontend: what the two front ends (runtime.c, serve.c) take from main.c besides the handler.
 * Private to lambda/; lambda.h's lambda_runtime_loop and lambda_serve are these with NULL.
 */
#ifndef S3IMGFS_LAMBDA_FRONTEND_H
#define S3IMGFS_LAMBDA_FRONTEND_H

#include "lambda.h"

struct lambda_frontend {
    /* After each invocation its metrics are written as CloudWatch EMF lines (log_line_raw):
     * namespace "s3imgfs", dimension Service = `service` (the source bucket). May be NULL. */
    struct metrics *metrics;
    const char *service;
    /* serve.c: at most one EMF batch per this many ms (and one at the stop); 0 = after every
     * event. The runtime writes one after every invocation. */
    unsigned emf_interval_ms;
};

int lambda_runtime_loop_with(struct lambda_handler *h, const char *api,
                             const struct lambda_frontend *f);
int lambda_serve_with(struct lambda_handler *h, const char *listen, const struct lambda_frontend *f,
                      struct s3_error *err);

/* Writes m's EMF lines (what changed since the last call) through log_line_raw. */
void lambda_frontend_write_emf(const struct lambda_frontend *f);

/* The counts of a handler response ({"done":N,"failed":N,"skipped":N} and the records whose
 * status is "not started"); all 0 when the JSON has none. */
struct lambda_counts {
    long done, failed, skipped, not_started;
};
void lambda_response_counts(const char *json, struct lambda_counts *out);

#endif
