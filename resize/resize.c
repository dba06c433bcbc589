/* resize: the one-decode multi-size engine on libvips.
 *
 * The path of one image (docs/resize.md tells it for users):
 *   1. sniff the format from the bytes: not an image -> RESIZE_NOT_IMAGE; an image format we do
 *      not decode (SVG, PDF, ...) -> RESIZE_REFUSED;
 *   2. byte limit; then the header only (lazy libvips load: no pixel memory) -> pixel limit;
 *   3. plan every rendition from the upright source size (plan_size): its resized size and
 *      its final (cropped) size, never larger than the source;
 *   4. decode ONCE (decode_base): the loader of the sniffed format, with shrink-on-load,
 *      resized (lanczos3, premultiplied alpha) to exactly the resized size of the largest
 *      rendition, converted to sRGB (or kept grey) in 8 bits, copied into memory, turned
 *      upright, its metadata dropped. (vips_thumbnail_buffer does much the same, but in 8.14
 *      its fail_on does not reach the loader, it lets libvips guess the loader, and it keeps
 *      a factor of 2 above JPEG shrink-on-load that costs a full decode of most photos.)
 *   5. each rendition: resize that memory image (premultiplied when there is alpha) to its
 *      planned size, crop, flatten for JPEG, encode with metadata stripped, hand to the
 *      callback.
 */
#include "resize_internal.h"

#include <vips/vips.h>

#include <vips/vector.h> /* vips_vector_set_enabled: not in vips.h (needs vips.h first) */

#include <gmodule.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

/* ------------------------------------------------------------------------------------------ */
/* Global state: set once by resize_global_init, read-only afterwards                          */

static bool g_ready;

/* Set once by load_heif, the first time a HEIF or AVIF file or an AVIF output needs them: read
 * through heif_can_read / heif_can_write only. */
static GOnce g_heif_once = G_ONCE_INIT;
static bool g_heif_load; /* the HEIF module is there (HEIC/AVIF input) */
static bool g_heif_save; /* ... and can write (AVIF output) */

/* The loaders the engine may use: everything else under VipsForeignLoad is blocked. */
static const char *const allowed_loaders[] = {
    "VipsForeignLoadJpeg",  "VipsForeignLoadPng",  "VipsForeignLoadWebp",
    "VipsForeignLoadNsgif", "VipsForeignLoadTiff", "VipsForeignLoadHeif",
};

/* Encoder defaults (docs/resize.md, "Formats"). */
#define JPEG_DEFAULT_Q  80
#define AVIF_DEFAULT_Q  55 /* what [resize] quality 80 becomes for AVIF (see avif_quality) */
#define AVIF_EFFORT     2  /* 0 (fastest) .. 9; libvips' default 4 is about 2x slower */
#define WEBP_EFFORT     4
#define PNG_COMPRESSION 6
#define DETAIL_MAX      120 /* characters of a libvips message kept in a reason */

static void drop_log(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer data)
{
    (void)domain;
    (void)level;
    (void)message;
    (void)data;
}

static void set_reason(struct resize_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_reason(struct resize_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
    va_end(ap);
}

static void drop_vips_error(void);

/* The HEIF module can be there without an AV1 encoder (libheif's encoders are plugins in some
 * distributions): encode a tiny picture once to know. */
static bool avif_encoder_works(void)
{
    VipsImage *im = NULL;
    void *buf = NULL;
    size_t len = 0;
    bool ok = vips_black(&im, 16, 16, "bands", 3, NULL) == 0 &&
              vips_heifsave_buffer(im, &buf, &len, "compression", VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                                   "bitdepth", 8, "effort", 0, NULL) == 0 &&
              len > 0;
    g_free(buf);
    if (im)
        g_object_unref(im);
    drop_vips_error(); /* what a missing encoder said */
    return ok;
}

/* libvips 8.14 opens every module of its module folder when it starts: HEIF, JPEG XL,
 * ImageMagick, poppler and OpenSlide, 105 more shared libraries mapped into the process for
 * loaders that are blocked here but HEIF's. Measured (s3imgfs-resize, two 16x16 JPEGs, this
 * machine): 0.10-0.11 s with them, 0.06-0.07 s without, and 28 MB of RSS instead of 40; the
 * HEIF module alone costs 20-30 ms of that. So libvips starts without modules and the HEIF one
 * is opened the first time it is needed (load_heif). libvips looks for its modules, and its
 * translations, under $VIPSHOME when that is set: here it points into /proc, where no folder
 * can ever be made (nobody can plant a module there), for the time of vips_init only. Its
 * messages stay in English with it, which take_vips_error reads. A VIPSHOME of the user's is
 * left alone: libvips then opens that prefix's modules at start, as it always did. */
#define VIPSHOME_WITHOUT_MODULES "/proc/self/s3imgfs-vips-without-modules"

static int start_vips(void)
{
    if (getenv("VIPSHOME"))
        return VIPS_INIT("s3imgfs");
    if (setenv("VIPSHOME", VIPSHOME_WITHOUT_MODULES, 1) != 0)
        return VIPS_INIT("s3imgfs");
    int rc = VIPS_INIT("s3imgfs");
    unsetenv("VIPSHOME"); /* libvips keeps the folders it found; children see no VIPSHOME */
    return rc;
}

/* Opens libvips' HEIF module (unless libvips opened it at start), and finds out what it can
 * do: once, from whichever thread needs it first. */
static gpointer load_heif(gpointer unused)
{
    (void)unused;
    if (!vips_type_find("VipsOperation", "heifload_buffer") && g_module_supported()) {
        char path[512];
        snprintf(path, sizeof(path), "%s/vips-modules-%d.%d/vips-heif.%s", S3IMGFS_VIPS_LIBDIR,
                 vips_version(0), vips_version(1), G_MODULE_SUFFIX);
        GModule *module = g_module_open(path, G_MODULE_BIND_LAZY);
        if (module) /* it registers types: they cannot be unloaded */
            g_module_make_resident(module);
    }
    /* A loader class made now may inherit the block set on VipsForeignLoad at start. */
    vips_operation_block_set("VipsForeignLoadHeif", FALSE);
    g_heif_load = vips_type_find("VipsOperation", "heifload_buffer") != 0;
    g_heif_save = vips_type_find("VipsOperation", "heifsave_buffer") != 0 && avif_encoder_works();
    return NULL;
}

static void need_heif(void)
{
    if (g_ready) /* else libvips has not started: no HEIF (the flags stay false) */
        g_once(&g_heif_once, load_heif, NULL);
}

static bool heif_can_read(void)
{
    need_heif();
    return g_heif_load;
}

static bool heif_can_write(void)
{
    need_heif();
    return g_heif_save;
}

void resize_heif_support(bool *can_read, bool *can_write)
{
    if (can_read)
        *can_read = heif_can_read();
    if (can_write)
        *can_write = heif_can_write();
}

int resize_global_init(unsigned vips_threads, struct resize_error *err)
{
    if (g_ready)
        return 0;
#ifdef __GLIBC__
    /* Many threads decoding large images otherwise grow one malloc arena each, and RSS with
     * them (sharp #2607, imgproxy #116). One arena: glibc (2.36) puts only the main arena's
     * heap on huge pages (resize_exec_with_huge_pages) and trims the others by unmapping their
     * pages, which the next image faults in again, 4 KiB at a time. Bench corpus, -j 2, 5 runs
     * each (2026-11-27): 2 arenas 2.55-2.71 s, 33,000-48,000 page faults, peak RSS 181-199 MB;
     * 1 arena 2.30-2.48 s, 18,600-20,100 faults, 167-186 MB. Small blocks do not contend for
     * it (each thread's tcache); large ones are few. */
    mallopt(M_ARENA_MAX, 1);
    /* glibc raises its mmap threshold to the largest block freed so far (up to 32 MB), and
     * its trim threshold to twice that: after a few photos, the free top of an arena stayed
     * resident, 30 MB and more per arena. Fixed thresholds instead, a trade between page
     * faults and RSS. Blocks of 16 MB and more (the DCT coefficients of the luma of a
     * progressive JPEG above 8 MP) are mapped and unmapped; smaller ones (those of smaller
     * photos, the pictures made on the way) are used again from the arena, whose free top goes
     * back above 8 MB. A block mapped afresh costs its page faults and the kernel's zeroing of
     * every page, which libjpeg then zeroes again. Bench corpus, -j 2, huge pages, one arena,
     * interleaved runs, medians (2026-11-27): mmap threshold 8 MB (8 runs): 2.16 s, 3.78 CPU s,
     * 19,000 page faults, peak RSS 171 MB (at most 173); 16 MB (18 runs): 2.12 s, 3.68 s,
     * 10,000 faults, 169 MB (at most 179); 32 MB (18 runs): 2.11 s, 3.63 s, 6,100 faults,
     * 179 MB, but up to 205 MB when two large decodes met. */
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 8 << 20);
#endif
    if (start_vips() != 0) {
        char *text = vips_error_buffer_copy();
        set_reason(err, "libvips failed to start: %.200s", text ? g_strstrip(text) : "");
        g_free(text);
        return -1;
    }
    /* A long-running process sees each image once: caching operations only holds memory and
     * file descriptors. */
    vips_cache_set_max(0);
    vips_cache_set_max_mem(0);
    vips_cache_set_max_files(0);
    if (vips_threads > 0)
        vips_concurrency_set((int)vips_threads);
    if (!resize_orc_guard_active())
        vips_vector_set_enabled(FALSE);

    /* Loaders: no untrusted ones (magick, svg, pdf, matlab, fits, ...), and beyond that only an
     * allow-list, so that a new libvips or module cannot add a parser we never meant to run. */
    vips_block_untrusted_set(TRUE);
    vips_operation_block_set("VipsForeignLoad", TRUE);
    for (size_t i = 0; i < sizeof(allowed_loaders) / sizeof(allowed_loaders[0]); i++)
        vips_operation_block_set(allowed_loaders[i], FALSE);

    /* libvips warns on stderr about each odd image ("error in tile 0 x 120", "ignoring nclx
     * profile"); the reasons returned here carry what matters. */
    g_log_set_handler(
        "VIPS", G_LOG_LEVEL_WARNING | G_LOG_LEVEL_MESSAGE | G_LOG_LEVEL_INFO | G_LOG_LEVEL_DEBUG,
        drop_log, NULL);
    g_ready = true;
    return 0;
}

void resize_global_shutdown(void)
{
    if (!g_ready)
        return;
    vips_shutdown();
    g_ready = false;
}

void resize_thread_done(void)
{
    if (g_ready)
        vips_thread_shutdown();
}

const char *resize_extension(const char *format)
{
    if (!format)
        return NULL;
    if (strcmp(format, "jpeg") == 0)
        return "jpg";
    if (strcmp(format, "tiff") == 0)
        return "tif";
    return format; /* png, webp, avif, gif, heif */
}

bool resize_is_image_format(const char *format)
{
    static const char *const formats[] = {"jpeg", "png", "webp", "gif", "tiff", "heif", "avif"};
    for (size_t i = 0; format && i < sizeof(formats) / sizeof(formats[0]); i++)
        if (strcmp(format, formats[i]) == 0)
            return true;
    return false;
}

const char *resize_output_extension(const struct conf_size *size, const char *format)
{
    if (size->format != CONF_FORMAT_AUTO)
        return resize_extension(conf_format_name(size->format));
    if (strcmp(format, "png") == 0 || strcmp(format, "gif") == 0)
        return "png";
    if (strcmp(format, "webp") == 0)
        return "webp";
    /* (resolve_format writes JPEG instead where libheif has no AV1 encoder: AVIF is then most
     * likely not readable either, and the file is refused before any rendition is named.) */
    if (strcmp(format, "avif") == 0)
        return "avif";
    return "jpg";
}

/* ------------------------------------------------------------------------------------------ */
/* libvips errors -> one short line                                                             */

static bool contains_ci(const char *text, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = text; *p; p++)
        if (g_ascii_strncasecmp(p, needle, n) == 0)
            return true;
    return false;
}

static const char *const truncation_words[] = {
    "premature end",   "truncat",     "unexpected end", "end of file", "end of data",
    "not enough data", "out of data", "incomplete",     "eof",         NULL,
};

static bool says_truncated(const char *text)
{
    for (size_t i = 0; truncation_words[i]; i++)
        if (contains_ci(text, truncation_words[i]))
            return true;
    return false;
}

/* Lines from libvips' own plumbing, which say where an error went, not what it was. */
static bool generic_line(const char *line)
{
    static const char *const prefixes[] = {
        "vips_image_",    "vips_region_", "vips_sink", "vips__",    "VipsRegion",   "VipsImage:",
        "vips_thumbnail", "thumbnail",    "linecache", "tilecache", "vips_tracked", NULL,
    };
    for (size_t i = 0; prefixes[i]; i++)
        if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0)
            return true;
    return contains_ci(line, "error in tile") || contains_ci(line, "read gave");
}

/* Takes (and clears) libvips' error text, which is global and shared by every thread, and
 * keeps the most telling line of it, without its "Domain: " prefix, on one line. */
struct vips_detail {
    char line[DETAIL_MAX + 1];
    bool truncated; /* some line of it says the data ended early */
};

static void take_vips_error(struct vips_detail *d)
{
    d->line[0] = '\0';
    d->truncated = false;
    char *text = vips_error_buffer_copy();
    if (!text)
        return;
    d->truncated = says_truncated(text);

    const char *best = NULL, *first = NULL;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        line = g_strstrip(line);
        if (!*line)
            continue;
        if (!first)
            first = line;
        if (!best && !generic_line(line))
            best = line;
        if (says_truncated(line)) { /* the line that says it best */
            best = line;
            break;
        }
    }
    if (!best)
        best = first;
    if (best) {
        /* "VipsJpeg: Premature end of input file" -> "premature end of input file" */
        const char *colon = strstr(best, ": ");
        if (colon) {
            bool word = true;
            for (const char *p = best; p < colon; p++)
                if (isspace((unsigned char)*p))
                    word = false;
            if (word && colon[2])
                best = colon + 2;
        }
        size_t n = 0;
        for (const char *p = best; *p && n < DETAIL_MAX; p++)
            d->line[n++] = (char)(iscntrl((unsigned char)*p) ? ' ' : *p);
        if (strlen(best) > DETAIL_MAX) { /* cut at a word, and say so */
            while (n > DETAIL_MAX / 2 && d->line[n - 1] != ' ')
                n--;
            while (n > 0 && (d->line[n - 1] == ' ' || d->line[n - 1] == ',' ||
                             d->line[n - 1] == ':' || d->line[n - 1] == '('))
                n--;
            if (n + 3 <= DETAIL_MAX) {
                memcpy(d->line + n, "...", 3);
                n += 3;
            }
        }
        while (n > 0 && (d->line[n - 1] == ' ' || d->line[n - 1] == '.') &&
               !(n >= 3 && memcmp(d->line + n - 3, "...", 3) == 0))
            n--;
        d->line[n] = '\0';
        if (isupper((unsigned char)d->line[0]) && !isupper((unsigned char)d->line[1]))
            d->line[0] = (char)tolower((unsigned char)d->line[0]);
    }
    g_free(text);
}

/* A PNG ends with an IEND chunk (its type and CRC are always the same 8 bytes). libpng takes
 * a stream cut in its last few bytes for a "benign" error and returns a picture with a damaged
 * last row: without IEND, the file is refused as truncated. (Found from the end: some files
 * carry data after it.) */
static bool png_has_iend(const uint8_t *p, size_t len)
{
    static const uint8_t iend[8] = {'I', 'E', 'N', 'D', 0xAE, 0x42, 0x60, 0x82};
    for (size_t i = len >= 8 ? len - 8 : 0; len >= 8 + 33; i--) {
        if (p[i] == 'I' && memcmp(p + i, iend, 8) == 0)
            return true;
        if (i <= 33) /* signature and IHDR come first */
            break;
    }
    return false;
}

/* Whether the container says the data stops early, for decoders whose messages do not. */
static bool structurally_truncated(enum resize_kind kind, const uint8_t *p, size_t len)
{
    switch (kind) {
    case KIND_PNG:
        return !png_has_iend(p, len);
    case KIND_GIF: /* ends with the trailer byte */
        return len < 1 || p[len - 1] != 0x3B;
    case KIND_WEBP: /* the RIFF header gives the length */
        return len < 12 || ((uint64_t)p[4] | (uint64_t)p[5] << 8 | (uint64_t)p[6] << 16 |
                            (uint64_t)p[7] << 24) +
                                   8 >
                               len;
    case KIND_JPEG: /* ends with EOI, give or take a few bytes of padding */
        for (size_t i = len; i >= 2 && i + 64 >= len; i--)
            if (p[i - 2] == 0xFF && p[i - 1] == 0xD9)
                return false;
        return true;
    default:
        return false;
    }
}

/* A reason for a source that could not be read: "truncated JPEG: premature end of input file",
 * "corrupt PNG data: libpng read error". */
static enum resize_status fail_source(struct resize_error *err, enum resize_kind kind,
                                      const void *data, size_t len)
{
    struct vips_detail d;
    take_vips_error(&d);
    bool truncated = d.truncated || structurally_truncated(kind, data, len);
    const char *name = resize_kind_info(kind)->display;
    if (d.line[0])
        set_reason(err, "%s %s%s: %s", truncated ? "truncated" : "corrupt", name,
                   truncated ? "" : " data", d.line);
    else
        set_reason(err, "%s %s%s", truncated ? "truncated" : "corrupt", name,
                   truncated ? "" : " data");
    return RESIZE_FAILED;
}

static enum resize_status fail_step(struct resize_error *err, const char *what)
{
    struct vips_detail d;
    take_vips_error(&d);
    if (d.line[0])
        set_reason(err, "%s: %s", what, d.line);
    else
        set_reason(err, "%s", what);
    return RESIZE_FAILED;
}

/* libvips may leave text in its error buffer on success (a probe that failed and was
 * recovered from). The buffer has a fixed size: left to fill up, it would lose the messages of
 * a later failure. (It is one buffer for all threads: a thread that fails at the same moment
 * may lose its detail line, never its reason.) */
static void drop_vips_error(void)
{
    if (vips_error_buffer()[0]) {
        char *text = vips_error_buffer_copy();
        g_free(text);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Sizing rules                                                                                 */

struct plan {
    int rw, rh; /* the source scaled to this (== source size: no resampling) */
    int cw, ch; /* then cropped to this (centred or by the crop hint); == rw, rh for fit */
};

static int round_px(double v)
{
    long r = lround(v);
    return r < 1 ? 1 : (int)r;
}

/* The rules (docs/resize.md, "Sizes"): W, H the upright source, bw, bh the box (0: unbounded).
 *   fit:   s = min(1, bw/W, bh/H); output round(W*s) x round(H*s).
 *   cover: the box itself if the source covers it, else the largest box of the same aspect
 *          ratio the source covers unscaled: f = min(1, W/bw, H/bh), output round(bw*f) x
 *          round(bh*f); the source is scaled by s = max(out_w/W, out_h/H) <= 1 and cropped. */
static void plan_size(int W, int H, const struct conf_size *size, struct plan *p)
{
    double bw = size->width, bh = size->height;
    if (size->fit == CONF_FIT_COVER && bw > 0 && bh > 0) {
        double f = fmin(1.0, fmin(W / bw, H / bh));
        p->cw = round_px(bw * f);
        p->ch = round_px(bh * f);
        if (p->cw > W)
            p->cw = W;
        if (p->ch > H)
            p->ch = H;
        double s = fmin(1.0, fmax((double)p->cw / W, (double)p->ch / H));
        p->rw = round_px(W * s);
        p->rh = round_px(H * s);
        if (p->rw < p->cw)
            p->rw = p->cw;
        if (p->rh < p->ch)
            p->rh = p->ch;
        return;
    }
    double s = 1.0;
    if (bw > 0)
        s = fmin(s, bw / W);
    if (bh > 0)
        s = fmin(s, bh / H);
    p->rw = round_px(W * s);
    p->rh = round_px(H * s);
    if (bw > 0 && p->rw > bw)
        p->rw = (int)bw;
    if (bh > 0 && p->rh > bh)
        p->rh = (int)bh;
    p->cw = p->rw;
    p->ch = p->rh;
}

void resize_output_size(int width, int height, const struct conf_size *size, int *out_width,
                        int *out_height)
{
    struct plan p = {0, 0, 0, 0};
    if (width > 0 && height > 0 && size)
        plan_size(width, height, size, &p);
    if (out_width)
        *out_width = p.cw;
    if (out_height)
        *out_height = p.ch;
}

/* ------------------------------------------------------------------------------------------ */
/* Output formats                                                                               */

static const char *format_name(enum conf_format f)
{
    switch (f) {
    case CONF_FORMAT_WEBP:
        return "webp";
    case CONF_FORMAT_AVIF:
        return "avif";
    case CONF_FORMAT_PNG:
        return "png";
    default:
        return "jpeg";
    }
}

static const char *format_mime(enum conf_format f)
{
    switch (f) {
    case CONF_FORMAT_WEBP:
        return "image/webp";
    case CONF_FORMAT_AVIF:
        return "image/avif";
    case CONF_FORMAT_PNG:
        return "image/png";
    default:
        return "image/jpeg";
    }
}

/* auto: the source's format where browsers show it and we can write it; JPEG for the
 * photographic formats they do not (HEIC, TIFF), PNG instead when the picture has
 * transparency; PNG for GIF (first frame, lossless). */
static enum conf_format resolve_format(enum conf_format f, enum resize_kind kind, bool alpha)
{
    if (f != CONF_FORMAT_AUTO)
        return f;
    switch (kind) {
    case KIND_PNG:
    case KIND_GIF:
        return CONF_FORMAT_PNG;
    case KIND_WEBP:
        return CONF_FORMAT_WEBP;
    case KIND_AVIF:
        if (heif_can_write())
            return CONF_FORMAT_AVIF;
        return alpha ? CONF_FORMAT_PNG : CONF_FORMAT_JPEG;
    case KIND_JPEG:
        return CONF_FORMAT_JPEG;
    default: /* TIFF, HEIF */
        return alpha ? CONF_FORMAT_PNG : CONF_FORMAT_JPEG;
    }
}

/* AVIF's quality scale is not JPEG's: AVIF q55 looks like JPEG q80 (sharp, imgproxy use
 * 50-63). A quality the size names itself is used as is; the [resize] quality, meant for all
 * formats, is mapped: 80 -> 55, 100 -> 100, linearly in between and below. */
static int avif_quality(const struct conf_size *size)
{
    int q = (int)size->quality;
    if (q < 1 || q > 100)
        q = JPEG_DEFAULT_Q;
    if (size->quality_set)
        return q;
    if (q <= JPEG_DEFAULT_Q)
        return q * AVIF_DEFAULT_Q / JPEG_DEFAULT_Q < 1 ? 1 : q * AVIF_DEFAULT_Q / JPEG_DEFAULT_Q;
    return AVIF_DEFAULT_Q + (q - JPEG_DEFAULT_Q) * (100 - AVIF_DEFAULT_Q) / (100 - JPEG_DEFAULT_Q);
}

static int lossy_quality(const struct conf_size *size)
{
    return size->quality >= 1 && size->quality <= 100 ? (int)size->quality : JPEG_DEFAULT_Q;
}

/* ------------------------------------------------------------------------------------------ */
/* The engine                                                                                   */

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* After a call that made *next from *img: replaces *img by *next (taking over its reference),
 * or fails. (*next is passed by address: the call must run before it is read.) */
static int chain(VipsImage **img, int rc, VipsImage **next)
{
    if (rc != 0)
        return -1;
    g_object_unref(*img);
    *img = *next;
    *next = NULL;
    return 0;
}

static void format_bytes(char *dst, size_t n, uint64_t v)
{
    const double mb = 1024.0 * 1024.0;
    if (v % (1024 * 1024) == 0)
        snprintf(dst, n, "%llu MB", (unsigned long long)(v / (1024 * 1024)));
    else
        snprintf(dst, n, "%.1f MB", (double)v / mb);
}

static enum resize_status refuse_bytes(struct resize_error *err, uint64_t len, uint64_t max)
{
    char a[32], b[32];
    format_bytes(a, sizeof(a), len);
    format_bytes(b, sizeof(b), max);
    if (strcmp(a, b) == 0) { /* "file is 100.0 MB, limit is 100.0 MB" would be no help */
        snprintf(a, sizeof(a), "%llu bytes", (unsigned long long)len);
        snprintf(b, sizeof(b), "%llu bytes", (unsigned long long)max);
    }
    set_reason(err, "file is %s, limit is %s", a, b);
    return RESIZE_REFUSED;
}

static void format_pixels(char *dst, size_t n, uint64_t v)
{
    if (v >= 1000000 && v % 1000000 == 0)
        snprintf(dst, n, "%llu MP", (unsigned long long)(v / 1000000));
    else if (v >= 100000)
        snprintf(dst, n, "%.1f MP", (double)v / 1e6);
    else
        snprintf(dst, n, "%llu pixels", (unsigned long long)v);
}

/* Checks what can be checked before the bytes are looked at. */
static enum resize_status check_options(const struct resize_options *opts, struct resize_error *err)
{
    if (!opts || !opts->sizes || opts->size_count == 0) {
        set_reason(err, "no sizes to make");
        return RESIZE_FAILED;
    }
    for (size_t i = 0; i < opts->size_count; i++) {
        const struct conf_size *s = &opts->sizes[i];
        if ((s->width == 0 && s->height == 0) || s->width > CONF_MAX_DIMENSION ||
            s->height > CONF_MAX_DIMENSION ||
            (s->fit == CONF_FIT_COVER && (s->width == 0 || s->height == 0))) {
            set_reason(err, "size '%s' has an invalid box %ux%u", s->name, s->width, s->height);
            return RESIZE_FAILED;
        }
    }
    return RESIZE_OK;
}

/* First steps on the bytes: what they are, and whether their size is acceptable. */
static enum resize_status check_bytes(const void *head, size_t head_len, uint64_t total,
                                      const struct resize_options *opts, enum resize_kind *kind_out,
                                      struct resize_source_info *info, struct resize_error *err)
{
    enum resize_kind kind = resize_sniff_kind(head, head_len);
    *kind_out = kind;
    const struct resize_kind_info *ki = resize_kind_info(kind);
    if (info)
        info->format = ki->format;
    if (kind == KIND_UNKNOWN) {
        set_reason(err, "not an image");
        return RESIZE_NOT_IMAGE;
    }
    if (!ki->decoded || ((kind == KIND_HEIF || kind == KIND_AVIF) && !heif_can_read())) {
        set_reason(err, "unsupported format: %s", ki->display);
        return RESIZE_REFUSED;
    }
    if (opts->max_file_bytes > 0 && total > opts->max_file_bytes)
        return refuse_bytes(err, total, opts->max_file_bytes);
    return RESIZE_OK;
}

/* The whole picture at the resized size (rw x rh) of one size: made when first needed, from the
 * base or from the picture of a larger size (see plan_derivation), and kept while a rendition
 * still needs it. */
struct scaled {
    int from;       /* the size it is made from; -1: the base */
    int uses;       /* takes still to come: its own rendition, and the sizes made from it */
    VipsImage *img; /* NULL until made, and again after the last use */
};

struct job {
    const void *data;
    size_t len;
    const struct resize_options *opts;
    enum resize_kind kind;
    resize_rendition_fn on_rendition;
    void *ctx;
    struct resize_error *err;

    int stored_w, stored_h; /* as stored */
    int width, height;      /* upright (after the EXIF orientation) */
    int orientation;
    int heif_page; /* HEIF: the primary image, which need not be the first */
    bool grey;     /* 1 or 2 bands: stays grey */
    bool icc;      /* has an embedded ICC profile */
    int bands;
    int sample_bytes;     /* 1 for 8 bits, 2 for 16 */
    bool interlaced;      /* progressive JPEG, interlaced PNG: decoded as a whole */
    int chroma_shift;     /* JPEG: chroma planes are 1 / 2^chroma_shift of the luma's pixels */
    uint64_t decode_need; /* estimated memory of the decode (decode_memory) */
    struct plan *plans;
    struct scaled *scaled; /* per size, as plans */
    VipsImage *base;       /* the one decoded image, upright, in memory */
};

/* The factor by which the loader of `kind` decodes smaller when asked to shrink by `shrink`:
 * JPEG 1/2, 1/4, 1/8 in the DCT, WebP any scale, the others none (HEIF's embedded thumbnail is
 * left out: it is used only when found large enough). */
static double load_shrink(enum resize_kind kind, double shrink)
{
    if (kind == KIND_JPEG)
        return shrink >= 8 ? 8 : shrink >= 4 ? 4 : shrink >= 2 ? 2 : 1;
    if (kind == KIND_WEBP)
        return shrink > 1 ? shrink : 1;
    return 1;
}

/* Opens the source with the loader of its sniffed kind (never libvips' guess: a damaged TIFF
 * would otherwise be offered to the next loader that claims it). Lazy: until pixels are asked
 * for, only the header is read. `shrink` > 1 asks the loader to decode at a smaller size where
 * it can (JPEG: 1/2, 1/4, 1/8 in the DCT; WebP: any scale; HEIF: its embedded thumbnail). */
static int open_source(const struct job *job, double shrink, bool heif_thumbnail, VipsImage **out)
{
    void *buf = (void *)job->data; /* the loaders take a non-const pointer; they only read */
    size_t len = job->len;
    /* "error": truncated data and decoder errors fail, decoder warnings do not (sharp's
     * default, "warning", rejects many camera files over harmless oddities). */
    VipsFailOn fail_on = VIPS_FAIL_ON_ERROR;
    VipsAccess seq = VIPS_ACCESS_SEQUENTIAL;
    switch (job->kind) {
    case KIND_JPEG:
        return vips_jpegload_buffer(buf, len, out, "shrink", (int)load_shrink(KIND_JPEG, shrink),
                                    "access", seq, "fail_on", fail_on, NULL);
    case KIND_WEBP:
        return vips_webpload_buffer(buf, len, out, "scale", shrink > 1 ? 1.0 / shrink : 1.0,
                                    "access", seq, "fail_on", fail_on, NULL);
    case KIND_PNG:
        return vips_pngload_buffer(buf, len, out, "access", seq, "fail_on", fail_on, NULL);
    case KIND_GIF: /* the first frame only (n = 1 is the default) */
        return vips_gifload_buffer(buf, len, out, "access", seq, "fail_on", fail_on, NULL);
    case KIND_TIFF: /* the first page only */
        return vips_tiffload_buffer(buf, len, out, "access", seq, "fail_on", fail_on, NULL);
    case KIND_HEIF:
    case KIND_AVIF: /* the primary image only */
        return vips_heifload_buffer(buf, len, out, "page", job->heif_page, "thumbnail",
                                    heif_thumbnail, "access", seq, "fail_on", fail_on, NULL);
    default:
        vips_error("resize", "unsupported format");
        return -1;
    }
}

/* ICC profiles: is it sRGB? Most cameras and phones (but Apple's, which use Display P3) embed
 * one of the many sRGB profiles. Converting from it to sRGB changes no 8-bit value, and costs
 * more than all the resampling of a photo: it is skipped when the profile is an RGB
 * matrix/curves profile (no lookup tables, which lcms would use first) with sRGB's colorants
 * (adapted to D50, as the profile connection space wants them) and a tone curve that maps every
 * 8-bit value to itself through sRGB's. */
static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static double s15f16(const uint8_t *p)
{
    return (double)(int32_t)be32(p) / 65536.0;
}

static double linear_to_srgb(double v)
{
    return v <= 0.0031308 ? v * 12.92 : 1.055 * pow(v, 1 / 2.4) - 0.055;
}

/* The tag `sig` of the profile: its data and size, or NULL. */
static const uint8_t *icc_tag(const uint8_t *p, size_t len, const char *sig, size_t *size)
{
    uint32_t n = be32(p + 128);
    if (n > (len - 132) / 12)
        return NULL;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = p + 132 + 12 * i;
        uint32_t off = be32(e + 4), sz = be32(e + 8);
        if (memcmp(e, sig, 4) == 0 && off <= len && sz <= len - off && sz >= 8) {
            *size = sz;
            return p + off;
        }
    }
    return NULL;
}

/* A tone curve ('curv' or 'para') at x in [0, 1]; false when it is not one we know. */
static bool icc_curve(const uint8_t *t, size_t size, double x, double *y)
{
    if (memcmp(t, "curv", 4) == 0 && size >= 12) {
        uint32_t n = be32(t + 8);
        if (n < 2 || n > (size - 12) / 2)
            return false; /* 0: identity, 1: a plain gamma; neither is sRGB */
        double pos = x * (n - 1);
        uint32_t i = (uint32_t)pos;
        if (i >= n - 1)
            i = n - 2;
        double a = (t[12 + 2 * i] << 8 | t[13 + 2 * i]) / 65535.0;
        double b = (t[14 + 2 * i] << 8 | t[15 + 2 * i]) / 65535.0;
        *y = a + (b - a) * (pos - i);
        return true;
    }
    if (memcmp(t, "para", 4) == 0 && size >= 16) {
        static const int count[] = {1, 3, 4, 5, 7};
        int type = t[8] << 8 | t[9];
        if (type > 4 || size < 12 + 4 * (size_t)count[type])
            return false;
        double g[7] = {0, 1, 0, 0, 0, 0, 0}; /* g, a, b, c, d, e, f */
        for (int i = 0; i < count[type]; i++)
            g[i] = s15f16(t + 12 + 4 * i);
        switch (type) {
        case 0:
            *y = pow(x, g[0]);
            break;
        case 1:
            *y = x >= -g[2] / g[1] ? pow(g[1] * x + g[2], g[0]) : 0;
            break;
        case 2:
            *y = x >= -g[2] / g[1] ? pow(g[1] * x + g[2], g[0]) + g[3] : g[3];
            break;
        case 3:
            *y = x >= g[4] ? pow(g[1] * x + g[2], g[0]) : g[3] * x;
            break;
        default:
            *y = x >= g[4] ? pow(g[1] * x + g[2], g[0]) + g[5] : g[3] * x + g[6];
            break;
        }
        return isfinite(*y);
    }
    return false;
}

static bool icc_is_srgb(const uint8_t *p, size_t len)
{
    if (len < 132 || be32(p) > len || memcmp(p + 12, "mntr", 4) != 0 ||
        memcmp(p + 16, "RGB ", 4) != 0 || memcmp(p + 20, "XYZ ", 4) != 0)
        return false;
    static const char *const luts[] = {"A2B0", "A2B1", "A2B2", "D2B0", "D2B1", "D2B2"};
    size_t size;
    for (size_t i = 0; i < sizeof(luts) / sizeof(luts[0]); i++)
        if (icc_tag(p, len, luts[i], &size))
            return false;
    static const char *const colorants[] = {"rXYZ", "gXYZ", "bXYZ"};
    static const double srgb[3][3] = {
        {0.4361, 0.2225, 0.0139}, {0.3851, 0.7169, 0.0971}, {0.1431, 0.0606, 0.7141}};
    static const char *const trcs[] = {"rTRC", "gTRC", "bTRC"};
    for (int c = 0; c < 3; c++) {
        const uint8_t *t = icc_tag(p, len, colorants[c], &size);
        if (!t || memcmp(t, "XYZ ", 4) != 0 || size < 20)
            return false;
        for (int k = 0; k < 3; k++)
            if (fabs(s15f16(t + 8 + 4 * k) - srgb[c][k]) > 0.0015)
                return false;
        if (!(t = icc_tag(p, len, trcs[c], &size)))
            return false;
        for (int v = 0; v < 256; v++) {
            double y;
            if (!icc_curve(t, size, v / 255.0, &y) || fabs(linear_to_srgb(y) * 255 - v) > 0.5)
                return false;
        }
    }
    return true;
}

/* The header only: a few KB read, no pixel memory, whatever the dimensions it claims. */
static enum resize_status read_header(struct job *job, struct resize_source_info *info)
{
    VipsImage *hdr = NULL;
    if (open_source(job, 1, false, &hdr) != 0)
        return fail_source(job->err, job->kind, job->data, job->len);
    int primary = 0;
    if ((job->kind == KIND_HEIF || job->kind == KIND_AVIF) &&
        vips_image_get_typeof(hdr, "heif-primary") &&
        vips_image_get_int(hdr, "heif-primary", &primary) == 0 && primary > 0 &&
        primary < vips_image_get_n_pages(hdr)) {
        g_object_unref(hdr);
        hdr = NULL;
        job->heif_page = primary;
        if (open_source(job, 1, false, &hdr) != 0)
            return fail_source(job->err, job->kind, job->data, job->len);
    }
    int w = hdr->Xsize, h = hdr->Ysize;
    bool swap = vips_image_get_orientation_swap(hdr);
    job->orientation = vips_image_get_orientation(hdr);
    if (info) {
        info->width = w;
        info->height = h;
        info->orientation = job->orientation;
        info->has_alpha = vips_image_hasalpha(hdr);
        info->pages = vips_image_get_n_pages(hdr);
    }
    job->stored_w = w;
    job->stored_h = h;
    job->width = swap ? h : w;
    job->height = swap ? w : h;
    job->grey = hdr->Bands <= 2;
    job->icc = vips_image_get_typeof(hdr, VIPS_META_ICC_NAME) != 0;
    const void *profile = NULL;
    size_t profile_len = 0;
    if (job->icc && hdr->Bands >= 3 && hdr->Type != VIPS_INTERPRETATION_CMYK &&
        vips_image_get_blob(hdr, VIPS_META_ICC_NAME, &profile, &profile_len) == 0 &&
        icc_is_srgb(profile, profile_len))
        job->icc = false; /* already sRGB */
    job->bands = hdr->Bands;
    job->sample_bytes = (int)vips_format_sizeof(hdr->BandFmt);
    int interlaced = 0;
    job->interlaced = vips_image_get_typeof(hdr, "interlaced") &&
                      vips_image_get_int(hdr, "interlaced", &interlaced) == 0 && interlaced;
    const char *sub = NULL;
    job->chroma_shift = 0;
    if (vips_image_get_typeof(hdr, "jpeg-chroma-subsample") &&
        vips_image_get_string(hdr, "jpeg-chroma-subsample", &sub) == 0 && sub)
        job->chroma_shift = strncmp(sub, "4:4:4", 5) == 0                                    ? 0
                            : strncmp(sub, "4:2:2", 5) == 0 || strncmp(sub, "4:4:0", 5) == 0 ? 1
                                                                                             : 2;
    g_object_unref(hdr);

    uint64_t pixels = (uint64_t)w * (uint64_t)h;
    uint64_t max = job->opts->max_pixels;
    if (max > 0 && pixels > max) {
        char a[32], b[32];
        format_pixels(a, sizeof(a), pixels);
        format_pixels(b, sizeof(b), max);
        set_reason(job->err, "image is %dx%d (%s), limit is %s", w, h, a, b);
        return RESIZE_REFUSED;
    }
    return RESIZE_OK;
}

/* Resampling: lanczos3 in both directions, as vips_resize does, at a fraction of its cost in
 * libvips 8.14. Measured on a 1280x800 RGB picture in memory (callgrind, one thread):
 * vips_resize to 640x400 costs 130 M instructions, to 240x150 124 M; the same lanczos3 done as
 * below, 70 M and 65 M. Two reasons:
 *   - vips_reducev has a vector (orc) path for 8-bit pictures, vips_reduceh has none: over the
 *     same pixels reduceh costs 6 times as much (200 M against 32 M for 1280x800 -> 640x800).
 *     The horizontal pass is therefore a vertical one over the transposed picture: the two
 *     transpositions cost less than the difference.
 *   - Above a factor of 2 vips_resize box-shrinks first (its "gap"), and in 8.14 vips_shrinkv
 *     costs more than the whole lanczos3 pass it saves. Here lanczos3 runs alone up to a factor
 *     of REDUCE_DIRECT_MAX (37 taps, still the vector path); only beyond it a box shrink by an
 *     integer comes first, leaving a lanczos3 factor of 2 to 3, as vips_resize would.
 * Enlarging (never planned; a loader may round a pixel short) goes to vips_resize. */
#define REDUCE_DIRECT_MAX 6.0

/* To h rows; streams (the input may be a sequential loader). */
static int reduce_rows(VipsImage **img, int h)
{
    VipsImage *t = NULL;
    int from = (*img)->Ysize;
    if (from == h)
        return 0;
    if (h > from)
        return chain(img, vips_resize(*img, &t, 1.0, "vscale", (double)h / from, NULL), &t);
    double f = (double)from / h;
    if (f > REDUCE_DIRECT_MAX) {
        if (chain(img, vips_shrinkv(*img, &t, (int)(f / 2), "ceil", TRUE, NULL), &t))
            return -1;
        f = (double)(*img)->Ysize / h;
        if (f < 1.0) /* not with the factors above; kept for safety */
            return chain(img, vips_resize(*img, &t, 1.0, "vscale", 1.0 / f, NULL), &t);
    }
    return chain(img, vips_reducev(*img, &t, f, "kernel", VIPS_KERNEL_LANCZOS3, NULL), &t);
}

/* Into memory, if it is not there already (then it is only referenced). */
static int to_memory(VipsImage **img)
{
    VipsImage *t = vips_image_copy_memory(*img);
    return chain(img, t ? 0 : -1, &t);
}

/* Copies a block of an image in memory to its transposition: ps bytes a pixel, lines of il and
 * ol bytes. Called with a constant ps, so that the copies are inlined. */
static inline void transpose_block(const VipsPel *in, VipsPel *out, size_t il, size_t ol, size_t ps,
                                   int x0, int x1, int y0, int y1)
{
    for (int y = y0; y < y1; y++) {
        const VipsPel *p = in + (size_t)y * il + (size_t)x0 * ps;
        VipsPel *q = out + (size_t)x0 * ol + (size_t)y * ps;
        for (int x = x0; x < x1; x++, p += ps, q += ol)
            memcpy(q, p, ps);
    }
}

/* (x, y) -> (y, x), into a new picture in memory. vips_rot goes pixel by pixel through its
 * regions, down columns of the input; by blocks of 32x32 it costs about a third. */
static int transpose(VipsImage **img)
{
    if (to_memory(img))
        return -1;
    VipsImage *in = *img;
    VipsImage *out = vips_image_new_memory();
    /* The header and metadata of the input (an ICC profile may still be needed), transposed. */
    if (vips_image_pipelinev(out, VIPS_DEMAND_STYLE_THINSTRIP, in, NULL) != 0) {
        g_object_unref(out);
        return -1;
    }
    out->Xsize = in->Ysize;
    out->Ysize = in->Xsize;
    out->Xres = in->Yres;
    out->Yres = in->Xres;
    if (vips_image_write_prepare(out) != 0) {
        g_object_unref(out);
        return -1;
    }
    const VipsPel *src = VIPS_IMAGE_ADDR(in, 0, 0);
    VipsPel *dst = VIPS_IMAGE_ADDR(out, 0, 0);
    size_t ps = VIPS_IMAGE_SIZEOF_PEL(in);
    size_t il = VIPS_IMAGE_SIZEOF_LINE(in), ol = VIPS_IMAGE_SIZEOF_LINE(out);
    enum { B = 32 };
    for (int y0 = 0; y0 < in->Ysize; y0 += B) {
        int y1 = y0 + B < in->Ysize ? y0 + B : in->Ysize;
        for (int x0 = 0; x0 < in->Xsize; x0 += B) {
            int x1 = x0 + B < in->Xsize ? x0 + B : in->Xsize;
            switch (ps) {
            case 1:
                transpose_block(src, dst, il, ol, 1, x0, x1, y0, y1);
                break;
            case 3:
                transpose_block(src, dst, il, ol, 3, x0, x1, y0, y1);
                break;
            case 4:
                transpose_block(src, dst, il, ol, 4, x0, x1, y0, y1);
                break;
            default:
                transpose_block(src, dst, il, ol, ps, x0, x1, y0, y1);
                break;
            }
        }
    }
    return chain(img, 0, &out);
}

/* To w columns: transposed, reduce_rows, transposed back (into memory). */
static int reduce_cols(VipsImage **img, int w)
{
    VipsImage *t = NULL;
    int from = (*img)->Xsize;
    if (from == w)
        return 0;
    if (w > from)
        return chain(img, vips_resize(*img, &t, (double)w / from, "vscale", 1.0, NULL), &t);
    return transpose(img) || reduce_rows(img, w) || transpose(img) ? -1 : 0;
}

/* Scales *img to exactly w x h, premultiplied when there is alpha (so that transparent pixels
 * do not bleed their colour into the edges), keeping its band format. Rows first: the vertical
 * pass is the cheaper one, and it leaves fewer rows to the horizontal pass. */
static int scale_to(VipsImage **img, int w, int h)
{
    VipsImage *in = *img;
    if (in->Xsize == w && in->Ysize == h)
        return 0;
    if (!vips_image_hasalpha(in))
        return reduce_rows(img, h) || reduce_cols(img, w) ? -1 : 0;
    VipsBandFormat format = in->BandFmt;
    VipsImage *t = NULL;
    if (chain(img, vips_premultiply(*img, &t, NULL), &t) || reduce_rows(img, h) ||
        reduce_cols(img, w) || chain(img, vips_unpremultiply(*img, &t, NULL), &t) ||
        chain(img, vips_cast(*img, &t, format, NULL), &t))
        return -1;
    return 0;
}

/* sRGB (or B_W for a grey source), 8 bits, at most one alpha band. */
static int normalise(VipsImage **img, bool grey, bool icc)
{
    VipsImage *t = NULL;
    VipsInterpretation want = grey ? VIPS_INTERPRETATION_B_W : VIPS_INTERPRETATION_sRGB;
    if ((*img)->Coding != VIPS_CODING_NONE && chain(img, vips_image_decode(*img, &t), &t))
        return -1;
    if (icc) {
        /* From the embedded profile to sRGB; grey profiles give sRGB too (back to B_W below).
         * A profile that does not fit the image falls back to the usual one for its bands;
         * one libvips cannot use at all is ignored. */
        const char *fallback = (*img)->Type == VIPS_INTERPRETATION_CMYK ? "cmyk"
                               : (*img)->Bands >= 3                     ? "srgb"
                                                                        : NULL;
        int rc = fallback ? vips_icc_transform(*img, &t, "srgb", "embedded", TRUE, "input_profile",
                                               fallback, "intent", VIPS_INTENT_RELATIVE, "depth", 8,
                                               NULL)
                          : vips_icc_transform(*img, &t, "srgb", "embedded", TRUE, "intent",
                                               VIPS_INTENT_RELATIVE, "depth", 8, NULL);
        if (rc == 0)
            chain(img, 0, &t);
        else
            drop_vips_error();
    }
    if ((*img)->Type != want || (*img)->BandFmt != VIPS_FORMAT_UCHAR) {
        /* No profile (or done with it): libvips' own conversions; CMYK through its built-in
         * CMYK profile, 16 bits to 8. */
        if (!vips_colourspace_issupported(*img) &&
            chain(
                img,
                vips_copy(*img, &t, "interpretation", vips_image_guess_interpretation(*img), NULL),
                &t))
            return -1;
        if (chain(img, vips_colourspace(*img, &t, want, NULL), &t))
            return -1;
        if ((*img)->BandFmt != VIPS_FORMAT_UCHAR &&
            chain(img, vips_cast(*img, &t, VIPS_FORMAT_UCHAR, NULL), &t))
            return -1;
    }
    int max_bands = grey ? 2 : 4;
    if ((*img)->Bands > max_bands &&
        chain(img, vips_extract_band(*img, &t, 0, "n", max_bands, NULL), &t))
        return -1;
    return 0;
}

/* HEIF files often carry a smaller copy of the picture: use it when it is large enough. */
static bool heif_thumbnail_fits(const struct job *job, int w, int h)
{
    VipsImage *thumb = NULL;
    bool fits = false;
    if (open_source(job, 1, true, &thumb) == 0) {
        fits = thumb->Xsize < job->stored_w && thumb->Xsize >= w && thumb->Ysize >= h;
        g_object_unref(thumb);
    }
    drop_vips_error();
    return fits;
}

/* Memory for decoding: a budget shared by the threads. Most images need little memory while
 * they are decoded (the loaders stream, and the base is small), but some formats hold the
 * whole picture: a progressive JPEG keeps every DCT coefficient (2 bytes each: 100 MB for a
 * 4096x4096 4:4:4 one, whatever the shrink), an interlaced PNG, a GIF frame or a HEIF picture
 * their pixels. Two such images decoded at once by a pool of workers add up. A decode starts
 * when its estimate fits in what the others hold, or when it would be alone; in the order
 * they asked (a large one is not overtaken for ever by small ones). */
#define DECODE_BUDGET ((uint64_t)128 << 20)
/* After a decode estimated at this much or more, free memory goes back to the system
 * (malloc_trim) as soon as no resize runs (see running_leave). */
#define TRIM_AFTER ((uint64_t)32 << 20)

static GMutex g_gate_lock;
static GCond g_gate_cond;
static uint64_t g_gate_used; /* bytes the running decodes hold */
static uint64_t g_gate_next; /* tickets given */
static uint64_t g_gate_turn; /* the ticket whose turn it is */

/* A decode that held much memory (see decode_memory) leaves as much free in malloc's arenas,
 * split around what is still in use. It goes back to the system when the engine is idle, not
 * after each such image: malloc_trim unmaps every free page, and the next image faults them
 * all in again (the bench corpus, -j 2, 4 runs each: 2.6-3.0 s with a trim after each such
 * image, 2.2-2.5 s without). A gateway gives it back after each burst of uploads. */
static int g_running;  /* run() calls in progress (atomic) */
static int g_trim_due; /* 1: such a decode ended since the last trim (atomic) */

static void running_enter(void)
{
    g_atomic_int_inc(&g_running);
}

static void running_leave(uint64_t decode_need)
{
    if (decode_need >= TRIM_AFTER)
        g_atomic_int_set(&g_trim_due, 1);
    if (g_atomic_int_dec_and_test(&g_running) &&
        g_atomic_int_compare_and_exchange(&g_trim_due, 1, 0)) {
#ifdef __GLIBC__
        malloc_trim(0);
#endif
    }
}

static void gate_enter(uint64_t need)
{
    g_mutex_lock(&g_gate_lock);
    uint64_t ticket = g_gate_next++;
    while (ticket != g_gate_turn || (g_gate_used > 0 && g_gate_used + need > DECODE_BUDGET))
        g_cond_wait(&g_gate_cond, &g_gate_lock);
    g_gate_used += need;
    g_gate_turn++;
    g_cond_broadcast(&g_gate_cond);
    g_mutex_unlock(&g_gate_lock);
}

static void gate_leave(uint64_t need)
{
    g_mutex_lock(&g_gate_lock);
    g_gate_used -= need;
    g_cond_broadcast(&g_gate_cond);
    g_mutex_unlock(&g_gate_lock);
}

/* The estimate: what the loader holds for the whole picture, and the pictures made on the way
 * to the base (the vertically reduced rows, their transposition, the base). */
static uint64_t decode_memory(const struct job *job, double shrink, int sw, int sh)
{
    uint64_t px = (uint64_t)job->stored_w * (uint64_t)job->stored_h;
    uint64_t bands = (uint64_t)job->bands, sample = (uint64_t)job->sample_bytes;
    uint64_t held = 0;
    switch (job->kind) {
    case KIND_JPEG:
        if (job->interlaced)
            held = 2 * px + (bands > 1 ? ((bands - 1) * 2 * px) >> job->chroma_shift : 0);
        break;
    case KIND_PNG:
        if (job->interlaced)
            held = px * bands * sample;
        break;
    case KIND_WEBP: /* decoded at the scale asked for */
        held = (uint64_t)((double)px * 4 /
                          (load_shrink(KIND_WEBP, shrink) * load_shrink(KIND_WEBP, shrink)));
        break;
    case KIND_GIF:
        held = px * 4;
        break;
    case KIND_HEIF:
    case KIND_AVIF: /* the decoded planes, and their RGB */
        held = px * 5;
        break;
    default: /* TIFF: strips or tiles */
        break;
    }
    uint64_t rows = (uint64_t)((double)job->stored_w / load_shrink(job->kind, shrink)) *
                    (uint64_t)sh * bands * sample;
    return held + 2 * rows + (uint64_t)sw * (uint64_t)sh * bands * sample;
}

/* Decodes, resizes to exactly sw x sh (as stored) and converts the source, into memory; then
 * turns it upright and drops its metadata. */
static enum resize_status decode_to_memory(struct job *job, double shrink, bool heif_thumb, int sw,
                                           int sh)
{
    VipsImage *img = NULL;
    if (open_source(job, shrink, heif_thumb, &img) != 0)
        return fail_source(job->err, job->kind, job->data, job->len);
    if (img->Coding != VIPS_CODING_NONE && normalise(&img, job->grey, false)) {
        g_object_unref(img);
        return fail_step(job->err, "resizing failed");
    }
    /* The horizontal pass needs the rows in memory: the decoding happens in there, and its
     * errors (truncated, corrupt data) are the source's. */
    if (scale_to(&img, sw, sh) != 0) {
        g_object_unref(img);
        return fail_source(job->err, job->kind, job->data, job->len);
    }
    if (normalise(&img, job->grey, job->icc) != 0) {
        g_object_unref(img);
        return fail_step(job->err, "colour conversion failed");
    }
    /* Here the pixels are decoded, resized and converted (streaming, but for the horizontal
     * pass, which reads the vertically reduced rows from memory). */
    VipsImage *mem = vips_image_copy_memory(img);
    g_object_unref(img);
    if (!mem)
        return fail_source(job->err, job->kind, job->data, job->len);

    if (job->orientation != 1) { /* upright; the orientation tag goes with it */
        VipsImage *t = NULL;
        VipsImage *rot = NULL;
        if (vips_autorot(mem, &t, NULL) != 0 || !(rot = vips_image_copy_memory(t))) {
            if (t)
                g_object_unref(t);
            g_object_unref(mem);
            return fail_step(job->err, "rotation failed");
        }
        g_object_unref(t);
        g_object_unref(mem);
        mem = rot;
    }

    /* No metadata goes out: the pixels are upright sRGB now, and EXIF, XMP, IPTC may hold
     * private data (place, camera, names). Savers strip too, but not all of them do it all. */
    gchar **fields = vips_image_get_fields(mem);
    for (gchar **f = fields; f && *f; f++)
        if (g_str_has_prefix(*f, "exif-") || strcmp(*f, VIPS_META_ICC_NAME) == 0 ||
            strcmp(*f, VIPS_META_XMP_NAME) == 0 || strcmp(*f, VIPS_META_IPTC_NAME) == 0 ||
            strcmp(*f, VIPS_META_PHOTOSHOP_NAME) == 0 || strcmp(*f, VIPS_META_ORIENTATION) == 0)
            vips_image_remove(mem, *f);
    g_strfreev(fields);

    /* An alpha band that is opaque everywhere (GIF always has one) is dropped: smaller files,
     * and nothing to flatten for JPEG. */
    if (vips_image_hasalpha(mem)) {
        VipsImage *alpha = NULL;
        double min = 0;
        if (vips_extract_band(mem, &alpha, mem->Bands - 1, NULL) == 0 &&
            vips_min(alpha, &min, NULL) == 0 && min >= 255) {
            VipsImage *t = NULL;
            if (vips_extract_band(mem, &t, 0, "n", mem->Bands - 1, NULL) == 0) {
                g_object_unref(mem);
                mem = t;
            }
        }
        if (alpha)
            g_object_unref(alpha);
        drop_vips_error();
    }
    job->base = mem;
    return RESIZE_OK;
}

/* Decodes the source once, to exactly the resized size of the largest rendition, upright,
 * in sRGB (or grey), 8 bits, into memory: when the decoding budget allows. */
/* The base: the picture every rendition is made from, as stored (before orientation). */
struct base_plan {
    int sw, sh;    /* its size */
    double shrink; /* stored size / its size: what the loader may skip */
};

static struct base_plan plan_base(const struct job *job)
{
    /* The resized sizes grow with the scale: the largest width and height belong to the same
     * rendition, which will need no resampling of its own. */
    int tw = 1, th = 1;
    for (size_t i = 0; i < job->opts->size_count; i++) {
        struct plan p;
        plan_size(job->width, job->height, &job->opts->sizes[i], &p);
        tw = p.rw > tw ? p.rw : tw;
        th = p.rh > th ? p.rh : th;
    }
    bool swap = job->width != job->stored_w || job->height != job->stored_h;
    struct base_plan b = {.sw = swap ? th : tw, .sh = swap ? tw : th}; /* the same, as stored */
    /* Shrink-on-load: the JPEG DCT decodes at 1/2, 1/4, 1/8 whenever the scale allows (as
     * sharp does by default; libvips' thumbnail keeps another factor of 2 for its final
     * step, and decodes 4000x3000 in full for 1280x960); lanczos3 does the rest. */
    b.shrink = fmin((double)job->stored_w / b.sw, (double)job->stored_h / b.sh);
    return b;
}

static enum resize_status decode_base(struct job *job)
{
    struct base_plan b = plan_base(job);
    bool heif_thumb = (job->kind == KIND_HEIF || job->kind == KIND_AVIF) && b.shrink > 1 &&
                      heif_thumbnail_fits(job, b.sw, b.sh);
    uint64_t need = decode_memory(job, b.shrink, b.sw, b.sh);
    job->decode_need = need;
    gate_enter(need);
    enum resize_status st = decode_to_memory(job, b.shrink, heif_thumb, b.sw, b.sh);
    gate_leave(need);
    return st;
}

uint64_t resize_decode_budget(void)
{
    return DECODE_BUDGET;
}

static int crop_to(VipsImage **img, const struct plan *p, enum conf_crop crop)
{
    VipsImage *t = NULL;
    if (p->cw == p->rw && p->ch == p->rh)
        return 0;
    if (crop == CONF_CROP_CENTRE)
        return chain(img,
                     vips_extract_area(*img, &t, (p->rw - p->cw) / 2, (p->rh - p->ch) / 2, p->cw,
                                       p->ch, NULL),
                     &t);
    /* attention / entropy look at the whole picture: compute it once. */
    VipsImage *mem = vips_image_copy_memory(*img);
    if (chain(img, mem ? 0 : -1, &mem))
        return -1;
    return chain(img,
                 vips_smartcrop(*img, &t, p->cw, p->ch, "interesting",
                                crop == CONF_CROP_ATTENTION ? VIPS_INTERESTING_ATTENTION
                                                            : VIPS_INTERESTING_ENTROPY,
                                NULL),
                 &t);
}

static int flatten(VipsImage **img, struct conf_rgb bg)
{
    VipsImage *t = NULL;
    if (!vips_image_hasalpha(*img))
        return 0;
    bool grey_bg = bg.r == bg.g && bg.g == bg.b;
    if ((*img)->Bands == 2 && !grey_bg &&
        chain(img, vips_colourspace(*img, &t, VIPS_INTERPRETATION_sRGB, NULL), &t))
        return -1;
    VipsArrayDouble *arr =
        (*img)->Bands == 2 ? vips_array_double_newv(1, (double)bg.r)
                           : vips_array_double_newv(3, (double)bg.r, (double)bg.g, (double)bg.b);
    int rc = vips_flatten(*img, &t, "background", arr, NULL);
    vips_area_unref(VIPS_AREA(arr));
    if (chain(img, rc, &t))
        return -1;
    if ((*img)->BandFmt != VIPS_FORMAT_UCHAR &&
        chain(img, vips_cast(*img, &t, VIPS_FORMAT_UCHAR, NULL), &t))
        return -1;
    return 0;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* libvips 8.14's webpsave ignores strip: it writes the ICC profile, and an EXIF chunk (the
 * image's own, else a made-up default one). Removes ICCP, EXIF and XMP chunks, in place, and
 * their flags in the VP8X header. */
static void webp_strip_metadata(unsigned char *p, size_t *len)
{
    size_t n = *len;
    if (n < 12 || memcmp(p, "RIFF", 4) != 0 || memcmp(p + 8, "WEBP", 4) != 0)
        return;
    size_t in = 12, out = 12;
    while (in + 8 <= n) {
        uint32_t size = le32(p + in + 4);
        size_t total = 8 + (size_t)size + (size & 1);
        if (total > n - in)
            return; /* not what libvips writes: leave it alone */
        if (memcmp(p + in, "EXIF", 4) != 0 && memcmp(p + in, "XMP ", 4) != 0 &&
            memcmp(p + in, "ICCP", 4) != 0) {
            memmove(p + out, p + in, total);
            if (memcmp(p + out, "VP8X", 4) == 0 && size >= 10) /* ICC, EXIF, XMP flags */
                p[out + 8] &= (unsigned char)~(0x20 | 0x08 | 0x04);
            out += total;
        }
        in += total;
    }
    if (in != n)
        return;
    uint32_t riff = (uint32_t)(out - 8);
    p[4] = (unsigned char)riff;
    p[5] = (unsigned char)(riff >> 8);
    p[6] = (unsigned char)(riff >> 16);
    p[7] = (unsigned char)(riff >> 24);
    *len = out;
}

static int encode(VipsImage *img, enum conf_format f, const struct conf_size *size, void **buf,
                  size_t *len)
{
    switch (f) {
    case CONF_FORMAT_PNG:
        return vips_pngsave_buffer(img, buf, len, "compression", PNG_COMPRESSION, "strip", TRUE,
                                   NULL);
    case CONF_FORMAT_WEBP:
        if (vips_webpsave_buffer(img, buf, len, "Q", lossy_quality(size), "effort", WEBP_EFFORT,
                                 "strip", TRUE, NULL) != 0)
            return -1;
        webp_strip_metadata(*buf, len);
        return 0;
    case CONF_FORMAT_AVIF:
        return vips_heifsave_buffer(img, buf, len, "Q", avif_quality(size), "compression",
                                    VIPS_FOREIGN_HEIF_COMPRESSION_AV1, "bitdepth", 8, "effort",
                                    AVIF_EFFORT, "strip", TRUE, NULL);
    default:
        return vips_jpegsave_buffer(img, buf, len, "Q", lossy_quality(size), "optimize_coding",
                                    TRUE, "subsample_mode", VIPS_FOREIGN_SUBSAMPLE_AUTO, "strip",
                                    TRUE, NULL);
    }
}

/* Which picture each size is made from. Lanczos3 reducing by 2 or more keeps only frequencies
 * that a picture at least twice as large still has intact (its own filter weakens only those
 * near its own limit, which the second reduction removes anyway). So a size is made from the
 * smallest planned picture at least twice as large in both directions (the thumbnail from the
 * medium size: a quarter of the pixels of the large one to read), or shares the picture of an
 * earlier size of exactly its size, else it is made from the base. */
static void plan_derivation(struct job *job)
{
    size_t n = job->opts->size_count;
    for (size_t i = 0; i < n; i++)
        job->scaled[i] = (struct scaled){.from = -1, .uses = 1, .img = NULL};
    for (size_t i = 0; i < n; i++) {
        const struct plan *p = &job->plans[i];
        if (p->rw == job->base->Xsize && p->rh == job->base->Ysize)
            continue; /* the base itself */
        int64_t best = (int64_t)job->base->Xsize * job->base->Ysize;
        for (size_t j = 0; j < n; j++) {
            const struct plan *q = &job->plans[j];
            bool same = q->rw == p->rw && q->rh == p->rh;
            if (same ? j >= i : q->rw < 2 * p->rw || q->rh < 2 * p->rh)
                continue;
            int64_t area = (int64_t)q->rw * q->rh;
            if (area < best) {
                best = area;
                job->scaled[i].from = (int)j;
            }
        }
        if (job->scaled[i].from >= 0)
            job->scaled[job->scaled[i].from].uses++;
    }
}

/* A new reference to the picture of size i (rw x rh, uncropped), made on first use (from its
 * source, itself made on demand). Kept in memory when more than one use is to come, dropped
 * after the last one. NULL on failure (libvips' error buffer says why). */
static VipsImage *take_scaled(struct job *job, size_t i)
{
    struct scaled *s = &job->scaled[i];
    if (!s->img) {
        VipsImage *img = job->base;
        if (s->from < 0)
            g_object_ref(img);
        else if (!(img = take_scaled(job, (size_t)s->from)))
            return NULL;
        if (scale_to(&img, job->plans[i].rw, job->plans[i].rh) ||
            (s->uses > 1 && to_memory(&img))) {
            g_object_unref(img);
            return NULL;
        }
        s->img = img;
    }
    VipsImage *out = s->img;
    g_object_ref(out);
    if (--s->uses == 0) {
        g_object_unref(s->img);
        s->img = NULL;
    }
    return out;
}

static enum resize_status make_rendition(struct job *job, size_t i)
{
    const struct conf_size *size = &job->opts->sizes[i];
    const struct plan *p = &job->plans[i];
    double t0 = now_ms();

    enum conf_format f = resolve_format(size->format, job->kind, vips_image_hasalpha(job->base));
    if (f == CONF_FORMAT_AVIF && !heif_can_write()) {
        set_reason(job->err,
                   "size '%s': AVIF output is not available (no HEIF support in "
                   "libvips)",
                   size->name);
        return RESIZE_FAILED;
    }
    VipsImage *t = NULL;
    VipsImage *img = take_scaled(job, i);
    if (!img || crop_to(&img, p, size->crop) ||
        (f == CONF_FORMAT_JPEG && flatten(&img, job->opts->background)) ||
        ((f == CONF_FORMAT_WEBP || f == CONF_FORMAT_AVIF) && img->Bands <= 2 &&
         chain(&img, vips_colourspace(img, &t, VIPS_INTERPRETATION_sRGB, NULL), &t))) {
        if (img)
            g_object_unref(img);
        char what[80];
        snprintf(what, sizeof(what), "size '%s': resizing failed", size->name);
        return fail_step(job->err, what);
    }

    void *buf = NULL;
    size_t len = 0;
    int rc = encode(img, f, size, &buf, &len);
    int w = img->Xsize, h = img->Ysize;
    g_object_unref(img);
    if (rc != 0) {
        char what[80];
        snprintf(what, sizeof(what), "size '%s': %s encoding failed", size->name,
                 f == CONF_FORMAT_PNG    ? "PNG"
                 : f == CONF_FORMAT_WEBP ? "WebP"
                 : f == CONF_FORMAT_AVIF ? "AVIF"
                                         : "JPEG");
        return fail_step(job->err, what);
    }

    struct rendition r = {
        .size = size,
        .format = format_name(f),
        .mime = format_mime(f),
        .extension = resize_extension(format_name(f)),
        .width = w,
        .height = h,
        .data = buf,
        .len = len,
        .ms = now_ms() - t0,
    };
    rc = job->on_rendition ? job->on_rendition(job->ctx, &r) : 0;
    g_free(buf);
    if (rc != 0) {
        set_reason(job->err, "stopped by the caller");
        return RESIZE_FAILED;
    }
    return RESIZE_OK;
}

/* The bytes are all in memory and their size is already checked. */
static enum resize_status run(const void *data, size_t len, enum resize_kind kind,
                              const struct resize_options *opts, resize_rendition_fn on_rendition,
                              void *ctx, struct resize_source_info *info, struct resize_error *err)
{
    struct plan plans_small[CONF_MAX_SIZES];
    struct scaled scaled_small[CONF_MAX_SIZES];
    struct job job = {
        .data = data,
        .len = len,
        .opts = opts,
        .kind = kind,
        .on_rendition = on_rendition,
        .ctx = ctx,
        .err = err,
        .plans = plans_small,
        .scaled = scaled_small,
    };
    if (opts->size_count > CONF_MAX_SIZES) {
        job.plans = calloc(opts->size_count, sizeof(*job.plans));
        job.scaled = calloc(opts->size_count, sizeof(*job.scaled));
        if (!job.plans || !job.scaled) {
            free(job.plans);
            free(job.scaled);
            set_reason(err, "out of memory");
            return RESIZE_FAILED;
        }
    }

    running_enter();
    enum resize_status st = read_header(&job, info);
    if (st == RESIZE_OK && kind == KIND_PNG && !png_has_iend(data, len)) {
        set_reason(err, "truncated PNG: no IEND chunk at its end");
        st = RESIZE_FAILED;
    }
    if (st == RESIZE_OK) {
        for (size_t i = 0; i < opts->size_count; i++)
            plan_size(job.width, job.height, &opts->sizes[i], &job.plans[i]);
        st = decode_base(&job);
    }
    if (st == RESIZE_OK)
        plan_derivation(&job);
    for (size_t i = 0; st == RESIZE_OK && i < opts->size_count; i++)
        st = make_rendition(&job, i);

    if (job.base) {
        for (size_t i = 0; i < opts->size_count; i++)
            if (job.scaled[i].img)
                g_object_unref(job.scaled[i].img);
        g_object_unref(job.base);
    }
    if (job.plans != plans_small) {
        free(job.plans);
        free(job.scaled);
    }
    if (st == RESIZE_OK)
        drop_vips_error();
    running_leave(job.decode_need);
    return st;
}

static void init_out(struct resize_source_info *info, struct resize_error *err)
{
    if (info) {
        memset(info, 0, sizeof(*info));
        info->orientation = 1;
        info->pages = 1;
    }
    if (err)
        err->reason[0] = '\0';
}

/* What every entry point checks first; also clears the out-parameters. */
static enum resize_status start_call(const struct resize_options *opts,
                                     struct resize_source_info *info, struct resize_error *err)
{
    init_out(info, err);
    if (!g_ready) {
        set_reason(err, "resize_global_init was not called");
        return RESIZE_FAILED;
    }
    return check_options(opts, err);
}

enum resize_status resize_buffer(const void *data, size_t len, const struct resize_options *opts,
                                 resize_rendition_fn on_rendition, void *ctx,
                                 struct resize_source_info *info, struct resize_error *err)
{
    enum resize_status st = start_call(opts, info, err);
    if (st != RESIZE_OK)
        return st;
    enum resize_kind kind;
    st = check_bytes(data, data ? len : 0, len, opts, &kind, info, err);
    if (st != RESIZE_OK)
        return st;
    return run(data, len, kind, opts, on_rendition, ctx, info, err);
}

enum resize_status resize_probe(const void *head, size_t len, uint64_t total,
                                const struct resize_options *opts, struct resize_source_info *info,
                                struct resize_error *err)
{
    enum resize_status st = start_call(opts, info, err);
    if (st != RESIZE_OK)
        return st;
    if (!head)
        len = 0;
    if (total < len) {
        set_reason(err, "the first %zu bytes of a file of %" PRIu64 " bytes?", len, total);
        return RESIZE_FAILED;
    }
    enum resize_kind kind;
    st = check_bytes(head, len, total, opts, &kind, info, err);
    if (st != RESIZE_OK)
        return st;
    struct job job = {.data = head, .len = len, .opts = opts, .kind = kind, .err = err};
    st = read_header(&job, info);
    if (st == RESIZE_FAILED && len < total) {
        /* The header goes on after these bytes (a large EXIF block, a TIFF directory at the
         * end, a WebP whose chunks the demuxer wants whole): only the whole file can tell. */
        drop_vips_error();
        const char *format = info ? info->format : NULL;
        init_out(info, err);
        if (info)
            info->format = format;
        return RESIZE_OK;
    }
    if (st != RESIZE_OK)
        return st;
    struct base_plan b = plan_base(&job);
    if (info)
        info->decode_bytes = decode_memory(&job, b.shrink, b.sw, b.sh);
    drop_vips_error();
    return RESIZE_OK;
}

/* Reads up to `want` bytes at `off`; returns the count read (short at end of file), -1. */
static ssize_t pread_full(int fd, void *buf, size_t want, off_t off)
{
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, (char *)buf + got, want - got, off + (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* A pipe or socket: read until EOF, at most limit + 1 bytes (to tell "over the limit"). */
static enum resize_status read_stream(int fd, uint64_t limit, char **out, size_t *out_len,
                                      struct resize_error *err)
{
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        set_reason(err, "out of memory");
        return RESIZE_FAILED;
    }
    for (;;) {
        if (len == cap) {
            if (limit > 0 && len > limit)
                break;
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                set_reason(err, "out of memory");
                return RESIZE_FAILED;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            free(buf);
            set_reason(err, "cannot read the file: %s", strerror(e));
            return RESIZE_FAILED;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (limit > 0 && len > limit)
            break;
    }
    *out = buf;
    *out_len = len;
    return RESIZE_OK;
}

enum resize_status resize_fd(int fd, const struct resize_options *opts,
                             resize_rendition_fn on_rendition, void *ctx,
                             struct resize_source_info *info, struct resize_error *err)
{
    enum resize_status st = start_call(opts, info, err);
    if (st != RESIZE_OK)
        return st;

    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        set_reason(err, "cannot read the file: %s", strerror(errno));
        return RESIZE_FAILED;
    }
    char *buf = NULL;
    size_t len = 0;
    enum resize_kind kind;
    if (S_ISREG(sb.st_mode)) {
        /* Sniff and check the size before reading it all: a 2 GB video costs one pread. */
        unsigned char head[RESIZE_SNIFF_BYTES];
        ssize_t n = pread_full(fd, head, sizeof(head), 0);
        if (n < 0) {
            set_reason(err, "cannot read the file: %s", strerror(errno));
            return RESIZE_FAILED;
        }
        st = check_bytes(head, (size_t)n, (uint64_t)sb.st_size, opts, &kind, info, err);
        if (st != RESIZE_OK)
            return st;
        size_t size = (size_t)sb.st_size;
        buf = malloc(size ? size : 1);
        if (!buf) {
            set_reason(err, "out of memory");
            return RESIZE_FAILED;
        }
        n = pread_full(fd, buf, size, 0);
        if (n < 0) {
            int e = errno;
            free(buf);
            set_reason(err, "cannot read the file: %s", strerror(e));
            return RESIZE_FAILED;
        }
        len = (size_t)n; /* shorter if the file shrank meanwhile: then it reads as truncated */
    } else {
        st = read_stream(fd, opts->max_file_bytes, &buf, &len, err);
        if (st != RESIZE_OK)
            return st;
        bool over = opts->max_file_bytes > 0 && len > opts->max_file_bytes;
        st = check_bytes(buf, len, over ? 0 : len, opts, &kind, info, err);
        if (st == RESIZE_OK && over) { /* the stream was not read to its end */
            char b[32];
            format_bytes(b, sizeof(b), opts->max_file_bytes);
            set_reason(err, "file is larger than the limit of %s", b);
            st = RESIZE_REFUSED;
        }
        if (st != RESIZE_OK) {
            free(buf);
            return st;
        }
    }
    st = run(buf, len, kind, opts, on_rendition, ctx, info, err);
    free(buf);
    return st;
}
