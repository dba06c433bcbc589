/* resize: one uploaded image in, all of its renditions out (libvips).
 *
 * What it offers:
 *   - format detection from the bytes (never from a file name);
 *   - a one-decode multi-size engine: the input is decoded once, shrunk on load to what the
 *     largest rendition needs, and every rendition is derived from that in-memory image;
 *   - containment of hostile input: only an allow-list of loaders, pixel and byte limits checked
 *     from the header before any decoding, bounded animation frames, truncated data refused.
 *
 * It knows nothing about S3 or files on disk beyond a file descriptor it is given: renditions
 * are delivered to a callback, which may upload them, write them out, or keep them.
 *
 * Thread-safe: after resize_global_init, any number of threads may call resize_* at once.
 */
#ifndef S3IMGFS_RESIZE_H
#define S3IMGFS_RESIZE_H

#include "conf.h" /* struct conf_size, enum conf_format, struct conf_rgb */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A reason a user can read: "truncated JPEG", "image is 30000x30000, limit is 100 MP". */
struct resize_error {
    char reason[256];
};

enum resize_status {
    RESIZE_OK = 0,
    RESIZE_NOT_IMAGE, /* not an image we read (text, PDF, zip, ...): nothing to do, no error */
    RESIZE_REFUSED,   /* an image, but refused: over a limit, or a blocked format (SVG, ...) */
    RESIZE_FAILED     /* an image that could not be processed: truncated, corrupt, ... */
};

/* Once per process, before any other call (and before threads use it). vips_threads: threads
 * libvips may use per image (0 = libvips' default). Returns -1 with a reason on failure. */
int resize_global_init(unsigned vips_threads, struct resize_error *err);
/* At exit (optional; keeps leak checkers quiet). */
void resize_global_shutdown(void);

/* What the bytes are, from their first bytes: "jpeg", "png", "webp", "gif", "tiff", "heif",
 * "avif", "svg", "pdf", ... or NULL when unknown. MIME type alike ("image/jpeg"), or NULL. */
const char *resize_sniff_format(const void *data, size_t len);
const char *resize_sniff_mime(const void *data, size_t len);

struct resize_options {
    const struct conf_size *sizes; /* the renditions to make (name, box, fit, format, quality) */
    size_t size_count;
    uint64_t max_pixels;     /* refuse inputs with more pixels than this (width x height) */
    uint64_t max_file_bytes; /* refuse inputs larger than this */
    struct conf_rgb background; /* alpha is flattened onto this for JPEG output */
};

struct resize_source_info {
    const char *format; /* "jpeg", ... */
    int width;          /* as stored, before orientation */
    int height;
    int orientation;    /* EXIF orientation 1..8 (1 when none) */
    bool has_alpha;
    int pages;          /* frames of an animation; 1 otherwise */
};

struct rendition {
    const struct conf_size *size; /* which entry of resize_options.sizes */
    const char *format;           /* "jpeg", "webp", "avif", "png" */
    const char *mime;             /* "image/jpeg", ... */
    const char *extension;        /* "jpg", "webp", "avif", "png" */
    int width;
    int height;
    const void *data; /* encoded bytes, valid only during the callback */
    size_t len;
    double ms;        /* time spent on this rendition (derive + encode) */
};

/* Called once per rendition, in the order of resize_options.sizes. Return 0 to go on, non-zero
 * to stop (resize_* then returns RESIZE_FAILED with the reason "stopped by the caller"). */
typedef int (*resize_rendition_fn)(void *ctx, const struct rendition *r);

/* Resizes an image held in memory. `info` (may be NULL) receives what the source is. */
enum resize_status resize_buffer(const void *data, size_t len, const struct resize_options *opts,
                                 resize_rendition_fn on_rendition, void *ctx,
                                 struct resize_source_info *info, struct resize_error *err);

/* Same, reading the image from a file descriptor (from its current start, offset 0). */
enum resize_status resize_fd(int fd, const struct resize_options *opts,
                             resize_rendition_fn on_rendition, void *ctx,
                             struct resize_source_info *info, struct resize_error *err);

/* File extension for an output format name ("jpeg" -> "jpg"). */
const char *resize_extension(const char *format);

#ifdef __cplusplus
}
#endif

#endif
