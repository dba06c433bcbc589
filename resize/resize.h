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
 * Thread-safe: after resize_global_init, any number of threads may call resize_* at once;
 * each such thread calls resize_thread_done before it exits. docs/resize.md tells how it works:
 * the sizing rules, colour handling, formats and their defaults, limits and reasons.
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
    RESIZE_NOT_IMAGE, /* not an image (text, zip, video, ...): nothing to do, no error */
    RESIZE_REFUSED,   /* an image, but refused: over a limit, or a format not read here (SVG,
                         PDF, BMP, ICO, JPEG 2000, JPEG XL, PSD) */
    RESIZE_FAILED     /* an image that could not be processed: truncated, corrupt, ... */
};

/* First in main(), before any thread starts and before anything is printed: where the kernel
 * gives transparent huge pages on request (its setting is "madvise" or "always"), runs the
 * program again (execv of /proc/self/exe, the same argv) with glibc.malloc.hugetlb=1 added to
 * GLIBC_TUNABLES, which glibc reads only at start: malloc then asks for 2 MiB pages for the
 * blocks it maps, and resizing a photo takes a few hundred page faults instead of thousands
 * (docs/resize.md, Memory). The program run again gets GLIBC_TUNABLES back as it was, for its
 * children, and its process name (/proc/self/comm). Not done when S3IMGFS_HUGEPAGES=0, when
 * GLIBC_TUNABLES names malloc.hugetlb already, for a set-user-ID program, under valgrind, or
 * without glibc. Returns true in the program run again, false where it was not done (or the exec
 * failed: nothing changes). */
bool resize_exec_with_huge_pages(char **argv);

/* Once per process, before any other call (and before threads use it); a second call does
 * nothing. vips_threads: threads libvips may use per image (0 = libvips' default, the number of
 * CPUs; with a pool of N resize workers, about CPUs / N). Also: no libvips operation cache,
 * glibc malloc limited to 1 arena (flat RSS with many threads), only the JPEG, PNG, WebP, GIF,
 * TIFF and HEIF loaders enabled, and libvips' own warnings (log domain "VIPS") silenced: the
 * reasons returned here say what went wrong. Returns -1 with a reason on failure. */
int resize_global_init(unsigned vips_threads, struct resize_error *err);

/* Whether HEIC/AVIF files can be read and AVIF written. libvips' HEIF module is opened the
 * first time a HEIF or AVIF file or an AVIF output needs it (20-30 ms; not at start, which it
 * would slow for every photo that is not one), or by this call. Thread-safe; both false before
 * resize_global_init. NULLs allowed. */
void resize_heif_support(bool *can_read, bool *can_write);

/* At exit (optional; keeps leak checkers quiet). No resize_* call may run or follow. */
void resize_global_shutdown(void);
/* Each thread that called resize_* calls this before it exits (libvips keeps per-thread
 * buffers; vips_thread_shutdown). Harmless on threads that never resized. */
void resize_thread_done(void);

/* What the bytes are, from their first bytes (magic numbers; SVG: its root element in the first
 * KiB): "jpeg", "png", "webp", "gif", "tiff", "heif" (HEIC and other HEIF), "avif", "svg",
 * "pdf", "bmp", "ico", "jp2", "jxl", "psd", or NULL for anything else (zip, gzip, text, video,
 * ...). The MIME type alike ("image/jpeg", "image/heic"), or NULL. */
const char *resize_sniff_format(const void *data, size_t len);
const char *resize_sniff_mime(const void *data, size_t len);

/* The format a MIME type names, for the formats the engine resizes ("image/jpeg" and the common
 * "image/jpg" -> "jpeg", "image/heic" -> "heif"; case and parameters after ';' ignored), or NULL.
 * A stored Content-Type is a label anyone may set: good for a guess that something else
 * confirms, never for a verdict on the bytes. */
const char *resize_format_of_mime(const char *mime);

struct resize_options {
    const struct conf_size *sizes; /* the renditions to make (name, box, fit, format, quality) */
    size_t size_count;
    uint64_t max_pixels;        /* refuse inputs with more pixels (width x height); 0: none */
    uint64_t max_file_bytes;    /* refuse inputs larger than this; 0: no limit */
    struct conf_rgb background; /* alpha is flattened onto this for JPEG output */
};

struct resize_source_info {
    const char *format; /* "jpeg", ... */
    int width;          /* as stored, before orientation */
    int height;
    int orientation; /* EXIF orientation 1..8 (1 when none); renditions are upright */
    bool has_alpha;
    int pages; /* frames of an animation, pages of a TIFF; renditions are of the first */
    uint64_t decode_bytes; /* resize_probe only: the memory its decode will hold (estimate) */
};

struct rendition {
    const struct conf_size *size; /* which entry of resize_options.sizes */
    const char *format;           /* "jpeg", "webp", "avif", "png" (see docs/resize.md) */
    const char *mime;             /* "image/jpeg", ... */
    const char *extension;        /* "jpg", "webp", "avif", "png" */
    int width;
    int height;
    const void *data; /* encoded bytes, valid only during the callback */
    size_t len;
    double ms; /* time spent on this rendition (derive + encode; the decode is not in it) */
};

/* Called once per rendition, in the order of resize_options.sizes. Return 0 to go on, non-zero
 * to stop (resize_* then returns RESIZE_FAILED with the reason "stopped by the caller"). */
typedef int (*resize_rendition_fn)(void *ctx, const struct rendition *r);

/* Resizes an image held in memory. `info` (may be NULL) receives what the source is, as far as
 * it was read (format only for RESIZE_NOT_IMAGE and unsupported formats). `err` (may be NULL)
 * receives a one-line reason for any status but RESIZE_OK: "not an image", "unsupported format:
 * SVG", "file is 120 MB, limit is 100 MB", "image is 30000x30000 (900 MP), limit is 100 MP",
 * "truncated JPEG: premature end of input file", "corrupt PNG data: ...", "stopped by the
 * caller". `on_rendition` may be NULL (renditions are made and dropped). */
enum resize_status resize_buffer(const void *data, size_t len, const struct resize_options *opts,
                                 resize_rendition_fn on_rendition, void *ctx,
                                 struct resize_source_info *info, struct resize_error *err);

/* Same, reading the image from a file descriptor. A regular file is read from offset 0 with
 * pread (its file offset does not move), after its format and size are checked from its first
 * KiB and fstat: a large non-image or over-limit file is not read. Anything else (a pipe, a
 * socket) is read from where it is, to its end, at most max_file_bytes + 1 bytes. */
enum resize_status resize_fd(int fd, const struct resize_options *opts,
                             resize_rendition_fn on_rendition, void *ctx,
                             struct resize_source_info *info, struct resize_error *err);

/* What an image is and whether it passes the limits, from its first bytes only: nothing is
 * decoded. For a caller that has not read the whole file yet (the function GETs the first
 * 256 KiB of a large object before downloading it all) or wants to plan its work (the memory a
 * decode will hold). `head` is the first `len` bytes of a file of `total` bytes.
 * Returns what resize_buffer would return for these reasons, with the same reason:
 * RESIZE_NOT_IMAGE; RESIZE_REFUSED (a format not read here, over max_file_bytes, over
 * max_pixels); RESIZE_FAILED (a header that cannot be read: only when len == total); or
 * RESIZE_OK: within the limits as far as the header tells, `info` filled in (and its
 * decode_bytes). When the header does not end within `len` < `total` bytes, RESIZE_OK with
 * info->width and height 0: only the whole file can tell. */
enum resize_status resize_probe(const void *head, size_t len, uint64_t total,
                                const struct resize_options *opts, struct resize_source_info *info,
                                struct resize_error *err);

/* The memory that decodes running at once may hold (their resize_source_info.decode_bytes):
 * a decode over what the others hold waits for them, unless it would be alone. */
uint64_t resize_decode_budget(void);

/* The size of the rendition `size` of an upright image width x height, without decoding
 * anything (the rules of docs/resize.md): never larger than the image; "fit" keeps the aspect
 * ratio inside the box; "cover" gives the box, or when the image is smaller than the box, the
 * largest box of the same aspect ratio the image covers unscaled (150x150 of 100x80 -> 80x80).
 * 0x0 when width or height is not positive. */
void resize_output_size(int width, int height, const struct conf_size *size, int *out_width,
                        int *out_height);

/* File extension for an output format name ("jpeg" -> "jpg"). */
const char *resize_extension(const char *format);

/* True for the source formats the engine resizes ("jpeg", "png", "webp", "gif", "tiff", "heif",
 * "avif", as resize_sniff names them). */
bool resize_is_image_format(const char *format);

/* The extension of `size`'s output for a source of `format` (the "auto" rule of docs/resize.md,
 * for a source without alpha): for callers that name renditions before (or without) resizing. */
const char *resize_output_extension(const struct conf_size *size, const char *format);

#ifdef __cplusplus
}
#endif

#endif
