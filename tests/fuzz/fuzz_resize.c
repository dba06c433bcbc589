/* libFuzzer harness for the resize engine: arbitrary bytes into resize_buffer, with the default
 * three sizes and modest limits (4 MP, 2 MiB), as s3imgfs would handle an upload.
 *
 * Besides the sanitizers (ASan, UBSan) it checks what the engine promises:
 *   - the status is one of enum resize_status, and a failure has a reason;
 *   - every rendition fits its box, is not empty, and its bytes are of the format it claims
 *     (resize_sniff_format), with the extension of that format;
 *   - renditions come in the order of the sizes, at most one per size, all of them on success;
 *   - a successful source is within the limits, and (for a still image) every rendition has
 *     the dimensions resize_output_size gives for the upright source.
 * A broken promise aborts, so libFuzzer saves the input as a crash.
 *
 * Build and run: see tests/fuzz/meson.build and docs/s3imgfs-resize.md ("Fuzzing").
 */
#include "resize.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PIXELS     (4u * 1000 * 1000)
#define MAX_FILE_BYTES (2u * 1024 * 1024)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* [resize] sizes = thumbnail:150x150:cover, medium:640x640, large:1280x1280 (the default),
 * format auto, quality 80. */
static const struct conf_size sizes[] = {
    {.name = "thumbnail",
     .width = 150,
     .height = 150,
     .fit = CONF_FIT_COVER,
     .crop = CONF_CROP_CENTRE,
     .format = CONF_FORMAT_AUTO,
     .quality = 80},
    {.name = "medium",
     .width = 640,
     .height = 640,
     .fit = CONF_FIT_INSIDE,
     .crop = CONF_CROP_CENTRE,
     .format = CONF_FORMAT_AUTO,
     .quality = 80},
    {.name = "large",
     .width = 1280,
     .height = 1280,
     .fit = CONF_FIT_INSIDE,
     .crop = CONF_CROP_CENTRE,
     .format = CONF_FORMAT_AUTO,
     .quality = 80},
};
#define SIZE_COUNT (sizeof(sizes) / sizeof(sizes[0]))

static const struct resize_options options = {
    .sizes = sizes,
    .size_count = SIZE_COUNT,
    .max_pixels = MAX_PIXELS,
    .max_file_bytes = MAX_FILE_BYTES,
    .background = {255, 255, 255},
};

struct seen {
    size_t count;
    int width[SIZE_COUNT], height[SIZE_COUNT];
};

static void broken(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_resize: broken promise: %s%s%s\n", what, detail ? ": " : "",
            detail ? detail : "");
    abort();
}

static int on_rendition(void *ctx, const struct rendition *r)
{
    struct seen *seen = ctx;
    if (seen->count >= SIZE_COUNT || r->size != &sizes[seen->count])
        broken("rendition out of the order of the sizes", r->size ? r->size->name : "(null)");
    seen->width[seen->count] = r->width;
    seen->height[seen->count] = r->height;
    seen->count++;
    const struct conf_size *s = r->size;
    if (r->width < 1 || r->height < 1 || (s->width && (unsigned)r->width > s->width) ||
        (s->height && (unsigned)r->height > s->height))
        broken("rendition outside its box", s->name);
    if (!r->data || r->len == 0)
        broken("empty rendition", s->name);
    if (!r->format || !r->extension || !r->mime)
        broken("rendition without format, extension or MIME type", s->name);
    const char *sniffed = resize_sniff_format(r->data, r->len);
    if (!sniffed || strcmp(sniffed, r->format) != 0)
        broken("rendition bytes are not of the format it claims", r->format);
    const char *ext = resize_extension(r->format);
    if (!ext || strcmp(ext, r->extension) != 0)
        broken("rendition extension does not match resize_extension", r->extension);
    /* Read every byte, so that ASan checks the buffer is what it says. */
    const volatile uint8_t *p = r->data;
    uint8_t x = 0;
    for (size_t i = 0; i < r->len; i++)
        x ^= p[i];
    (void)x;
    return 0;
}

/* The engine's own rule, resize_output_size, on the upright source (orientations 5 to 8 swap
 * width and height). */
static void check_sizes(const struct seen *seen, const struct resize_source_info *info)
{
    bool swap = info->orientation >= 5 && info->orientation <= 8;
    int w = swap ? info->height : info->width, h = swap ? info->width : info->height;
    for (size_t i = 0; i < SIZE_COUNT; i++) {
        int ew = 0, eh = 0;
        resize_output_size(w, h, &sizes[i], &ew, &eh);
        if (seen->width[i] != ew || seen->height[i] != eh) {
            char detail[160];
            snprintf(detail, sizeof(detail),
                     "%s: %dx%d (orientation %d) gave %dx%d, rule says %dx%d", sizes[i].name,
                     info->width, info->height, info->orientation, seen->width[i], seen->height[i],
                     ew, eh);
            broken("rendition size differs from resize_output_size", detail);
        }
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    struct resize_error err;
    memset(&err, 0, sizeof(err));
    if (resize_global_init(1, &err) != 0) {
        fprintf(stderr, "fuzz_resize: resize_global_init: %s\n", err.reason);
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seen seen = {0};
    struct resize_source_info info;
    struct resize_error err;
    memset(&info, 0, sizeof(info));
    memset(&err, 0, sizeof(err));
    enum resize_status st = resize_buffer(data, size, &options, on_rendition, &seen, &info, &err);
    if (memchr(err.reason, '\0', sizeof(err.reason)) == NULL)
        broken("reason not NUL-terminated", NULL);
    switch (st) {
    case RESIZE_OK:
        if (seen.count != SIZE_COUNT)
            broken("success without every rendition", NULL);
        if (size > MAX_FILE_BYTES)
            broken("success on a file over max_file_bytes", NULL);
        if (info.width < 1 || info.height < 1 || info.pages < 1 || !info.format)
            broken("success without source info", NULL);
        if ((uint64_t)info.width * (uint64_t)info.height > MAX_PIXELS)
            broken("success on an image over max_pixels", info.format);
        if (info.pages == 1)
            check_sizes(&seen, &info);
        break;
    case RESIZE_NOT_IMAGE:
        if (seen.count)
            broken("renditions of something that is not an image", NULL);
        break;
    case RESIZE_REFUSED:
    case RESIZE_FAILED:
        if (!err.reason[0])
            broken("failure without a reason", NULL);
        break;
    default:
        broken("status out of range", NULL);
    }
    return 0;
}
