/* resize: private parts shared by the files of the module (not for other modules). */
#ifndef S3IMGFS_RESIZE_INTERNAL_H
#define S3IMGFS_RESIZE_INTERNAL_H

#include "resize.h"

#include <stdbool.h>
#include <stddef.h>

/* What the first bytes of a file say it is. */
enum resize_kind {
    KIND_UNKNOWN = 0, /* not an image (or nothing we recognise) */
    /* decoded */
    KIND_JPEG,
    KIND_PNG,
    KIND_WEBP,
    KIND_GIF,
    KIND_TIFF,
    KIND_HEIF, /* HEIC and other HEIF brands */
    KIND_AVIF,
    /* recognised, never decoded */
    KIND_SVG,
    KIND_PDF,
    KIND_BMP,
    KIND_ICO,
    KIND_JP2,
    KIND_JXL,
    KIND_PSD,
    KIND_COUNT
};

struct resize_kind_info {
    const char *format;  /* "jpeg", as resize_sniff_format returns it */
    const char *mime;    /* "image/jpeg" */
    const char *display; /* "JPEG", for reasons shown to users */
    bool decoded;        /* one of the formats the engine reads */
};

/* Bytes sniff.c looks at, at most (SVG needs the most: its root element in the first KiB). */
#define RESIZE_SNIFF_BYTES 1024

enum resize_kind resize_sniff_kind(const void *data, size_t len);
const struct resize_kind_info *resize_kind_info(enum resize_kind kind);

/* Whether libvips' calls into ORC's compiler go through orc_guard.c's lock (see there). When
 * they do not, the vector code must stay off: ORC 0.4.33 corrupts memory with two at once. */
bool resize_orc_guard_active(void);
/* MIME type, refined by the bytes where a kind has several ("image/heic" vs "image/heif"). */
const char *resize_sniff_mime_of(enum resize_kind kind, const void *data, size_t len);

#endif
