/* resize: the one-decode engine on images generated here with libvips: sizes and the sizing
 * rules, crops, EXIF orientations, colour (Adobe RGB, Display P3, CMYK, grey, alpha, 16 bits),
 * every input and output format, metadata, quality, hostile inputs (truncated, corrupt, bombs,
 * non-images, refused formats, limits), file descriptors, threads, and leaks. */
#include "own_malloc.h"
#include "resize.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <vips/vips.h>

#include <vips/vector.h> /* vips_vector_isenabled (needs vips.h first) */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* LeakSanitizer (ASan builds, detect_leaks=1): libx265, used here only to make HEIC test files
 * (the engine never encodes HEVC), leaks a small block per encoder it opens. Nothing else in
 * glib or libvips needs a suppression once resize_global_shutdown has run. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:libx265.so\n";
}

/* ------------------------------------------------------------------------------------------ */
/* Collecting renditions                                                                        */

struct out {
    char name[33];
    char format[8];
    char mime[16];
    char ext[8];
    int width, height;
    unsigned char *data;
    size_t len;
    double ms;
};

struct outs {
    struct out o[CONF_MAX_SIZES];
    size_t n;
    int stop_at; /* return non-zero from the callback at this count (0: never) */
};

static int collect(void *ctx, const struct rendition *r)
{
    struct outs *c = ctx;
    assert_true(c->n < CONF_MAX_SIZES);
    struct out *o = &c->o[c->n++];
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", r->size->name);
    snprintf(o->format, sizeof(o->format), "%s", r->format);
    snprintf(o->mime, sizeof(o->mime), "%s", r->mime);
    snprintf(o->ext, sizeof(o->ext), "%s", r->extension);
    o->width = r->width;
    o->height = r->height;
    o->len = r->len;
    o->ms = r->ms;
    o->data = malloc(r->len);
    assert_non_null(o->data);
    memcpy(o->data, r->data, r->len);
    return c->stop_at && (int)c->n >= c->stop_at;
}

static void outs_free(struct outs *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->o[i].data);
    memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------------------------------ */
/* Sizes and options                                                                            */

static struct conf_size size_of(const char *name, unsigned w, unsigned h, enum conf_fit fit,
                                enum conf_format format)
{
    struct conf_size s;
    memset(&s, 0, sizeof(s));
    snprintf(s.name, sizeof(s.name), "%s", name);
    s.width = w;
    s.height = h;
    s.fit = fit;
    s.crop = CONF_CROP_CENTRE;
    s.format = format;
    s.quality = 80;
    return s;
}

/* The default sizes of [resize] sizes. */
static void default_sizes(struct conf_size s[3], enum conf_format format)
{
    s[0] = size_of("thumbnail", 150, 150, CONF_FIT_COVER, format);
    s[1] = size_of("medium", 640, 640, CONF_FIT_INSIDE, format);
    s[2] = size_of("large", 1280, 1280, CONF_FIT_INSIDE, format);
}

static struct resize_options options_for(const struct conf_size *sizes, size_t n)
{
    struct resize_options o;
    memset(&o, 0, sizeof(o));
    o.sizes = sizes;
    o.size_count = n;
    o.max_pixels = 100000000;
    o.max_file_bytes = 100u << 20;
    o.background = (struct conf_rgb){255, 255, 255};
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Making images                                                                                */

static VipsImage *solid(int w, int h, int bands, const double *v, VipsBandFormat fmt,
                        VipsInterpretation interp)
{
    VipsImage *black = NULL, *lin = NULL, *cast = NULL, *out = NULL;
    double ones[5] = {1, 1, 1, 1, 1};
    assert_int_equal(vips_black(&black, w, h, "bands", bands, NULL), 0);
    assert_int_equal(vips_linear(black, &lin, ones, (double *)v, bands, NULL), 0);
    assert_int_equal(vips_cast(lin, &cast, fmt, NULL), 0);
    assert_int_equal(vips_copy(cast, &out, "interpretation", interp, NULL), 0);
    g_object_unref(black);
    g_object_unref(lin);
    g_object_unref(cast);
    /* in memory, so that vips_draw_* can paint on it */
    VipsImage *mem = vips_image_copy_memory(out);
    assert_non_null(mem);
    g_object_unref(out);
    return mem;
}

static VipsImage *rgb(int w, int h, double r, double g, double b)
{
    double v[3] = {r, g, b};
    return solid(w, h, 3, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB);
}

static void rect(VipsImage *im, int x, int y, int w, int h, double r, double g, double b)
{
    double ink[4] = {r, g, b, 255};
    assert_int_equal(vips_draw_rect(im, ink, im->Bands, x, y, w, h, "fill", TRUE, NULL), 0);
}

/* A photo-like picture: gradients and some noise (so that encoders have work to do). */
static VipsImage *photo(int w, int h)
{
    VipsImage *xyz = NULL, *x = NULL, *y = NULL, *xs = NULL, *ys = NULL, *sum = NULL, *noise = NULL,
              *noisy = NULL, *joined = NULL, *cast = NULL, *out = NULL;
    assert_int_equal(vips_xyz(&xyz, w, h, NULL), 0);
    assert_int_equal(vips_extract_band(xyz, &x, 0, NULL), 0);
    assert_int_equal(vips_extract_band(xyz, &y, 1, NULL), 0);
    assert_int_equal(vips_linear1(x, &xs, 255.0 / w, 0, NULL), 0);
    assert_int_equal(vips_linear1(y, &ys, 255.0 / h, 0, NULL), 0);
    assert_int_equal(vips_gaussnoise(&noise, w, h, "mean", 0.0, "sigma", 12.0, "seed", 42, NULL),
                     0);
    assert_int_equal(vips_add(xs, ys, &sum, NULL), 0);
    VipsImage *s2 = NULL;
    assert_int_equal(vips_linear1(sum, &s2, 0.5, 0, NULL), 0);
    assert_int_equal(vips_add(s2, noise, &noisy, NULL), 0);
    VipsImage *bands[3] = {xs, ys, noisy};
    assert_int_equal(vips_bandjoin(bands, &joined, 3, NULL), 0);
    assert_int_equal(vips_cast(joined, &cast, VIPS_FORMAT_UCHAR, NULL), 0);
    assert_int_equal(vips_copy(cast, &out, "interpretation", VIPS_INTERPRETATION_sRGB, NULL), 0);
    VipsImage *all[] = {xyz, x, y, xs, ys, sum, s2, noise, noisy, joined, cast};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        g_object_unref(all[i]);
    return out;
}

/* Encodes with a saver chosen by suffix, ".jpg[Q=90]", ".png", ... */
static unsigned char *save(VipsImage *im, const char *suffix, size_t *len)
{
    void *buf = NULL;
    if (vips_image_write_to_buffer(im, suffix, &buf, len, NULL) != 0)
        fail_msg("saving %s: %s", suffix, vips_error_buffer());
    return buf;
}

/* photo(w, h) encoded with save(); the image itself is not kept. */
static unsigned char *photo_file(int w, int h, const char *suffix, size_t *len)
{
    VipsImage *im = photo(w, h);
    unsigned char *buf = save(im, suffix, len);
    g_object_unref(im);
    return buf;
}

static unsigned char *save_heif(VipsImage *im, VipsForeignHeifCompression c, size_t *len)
{
    bool can_write = false;
    resize_heif_support(NULL, &can_write); /* opens libvips' HEIF module */
    if (!can_write)
        fail_msg("this libvips cannot write HEIF (libheif's encoders missing?)");
    void *buf = NULL;
    if (vips_heifsave_buffer(im, &buf, len, "compression", c, "Q", 90, NULL) != 0)
        fail_msg("heifsave: %s", vips_error_buffer());
    return buf;
}

/* A copy of im with a metadata field set (orientation, ICC profile, page height). */
static VipsImage *with_int(VipsImage *im, const char *field, int v)
{
    VipsImage *c = NULL;
    assert_int_equal(vips_copy(im, &c, NULL), 0);
    vips_image_set_int(c, field, v);
    return c;
}

static VipsImage *with_blob(VipsImage *im, const char *field, const void *data, size_t len)
{
    VipsImage *c = NULL;
    assert_int_equal(vips_copy(im, &c, NULL), 0);
    vips_image_set_blob_copy(c, field, data, len);
    return c;
}

static VipsImage *decode(const struct out *o)
{
    VipsImage *im = vips_image_new_from_buffer(o->data, o->len, "", NULL);
    if (!im)
        fail_msg("rendition %s (%s) does not decode: %s", o->name, o->format, vips_error_buffer());
    return im;
}

/* The rendition reports w x h, and its bytes decode to an image of that size. */
static void expect_size(const struct out *o, int w, int h)
{
    assert_int_equal(o->width, w);
    assert_int_equal(o->height, h);
    VipsImage *d = decode(o);
    assert_int_equal(d->Xsize, w);
    assert_int_equal(d->Ysize, h);
    g_object_unref(d);
}

/* expect_size for the first n renditions, against want[i] = {width, height}. */
static void expect_dims(const struct outs *outs, const int want[][2], size_t n)
{
    for (size_t i = 0; i < n; i++)
        expect_size(&outs->o[i], want[i][0], want[i][1]);
}

static void pixel(VipsImage *im, int x, int y, double v[4])
{
    double *vec = NULL;
    int n = 0;
    assert_int_equal(vips_getpoint(im, &vec, &n, x, y, NULL), 0);
    for (int i = 0; i < 4; i++)
        v[i] = i < n ? vec[i] : -1;
    g_free(vec);
}

#define assert_near(got, want, tol)                                                                \
    do {                                                                                           \
        double g_ = (got), w_ = (want);                                                            \
        if (fabs(g_ - w_) > (tol))                                                                 \
            fail_msg("%s = %.1f, expected %.1f +- %.1f", #got, g_, w_, (double)(tol));             \
    } while (0)

static void assert_rgb(VipsImage *im, int x, int y, double r, double g, double b, double tol)
{
    double v[4];
    pixel(im, x, y, v);
    if (fabs(v[0] - r) > tol || fabs(v[1] - g) > tol || fabs(v[2] - b) > tol)
        fail_msg("pixel (%d,%d) = (%.0f,%.0f,%.0f), expected (%.0f,%.0f,%.0f) +- %.0f", x, y, v[0],
                 v[1], v[2], r, g, b, tol);
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* A reason users read: one line, short, no libvips domain prefixes. */
static void assert_reason(const struct resize_error *err, const char *needle)
{
    if (!strstr(err->reason, needle))
        fail_msg("reason '%s' does not contain '%s'", err->reason, needle);
    assert_null(strchr(err->reason, '\n'));
    assert_true(strlen(err->reason) < 200);
    assert_null(strstr(err->reason, "Vips"));
}

/* ------------------------------------------------------------------------------------------ */
/* Leak checks: every test ends with no libvips image alive beyond what libvips keeps for
 * itself (measured once, after a warm-up), and no pixel memory held.                         */

static void *count_object(void *object, void *a, void *b)
{
    (void)object;
    (void)b;
    (*(int *)a)++;
    return NULL;
}

static int live_objects(void)
{
    int n = 0;
    vips_object_map(count_object, &n, NULL);
    return n;
}

static int baseline_objects; /* at the start of the current test */

static int test_setup(void **state)
{
    (void)state;
    baseline_objects = live_objects();
    return 0;
}

static void assert_no_leak(void)
{
    vips_thread_shutdown(); /* this thread's buffer cache */
    vips_error_clear();
    int n = live_objects();
    if (n > baseline_objects)
        fail_msg("%d libvips objects alive, %d before the test", n, baseline_objects);
    /* libvips' worker threads keep small buffer caches between jobs (up to a few MB); an
     * image left behind is also a live object, counted above. */
    if (vips_tracked_get_mem() > 16u << 20)
        fail_msg("%zu bytes of libvips pixel memory still held", vips_tracked_get_mem());
}

static enum resize_status run(const void *data, size_t len, const struct conf_size *sizes, size_t n,
                              struct outs *outs, struct resize_source_info *info,
                              struct resize_error *err)
{
    struct resize_options o = options_for(sizes, n);
    return resize_buffer(data, len, &o, collect, outs, info, err);
}

/* ------------------------------------------------------------------------------------------ */
/* Fixture                                                                                      */

/* Whether a shared object whose path contains `name` is mapped into this process. */
static bool mapped(const char *name)
{
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, name) != NULL;
    fclose(f);
    return found;
}

static int group_setup(void **state)
{
    (void)state;
    struct resize_error err;
    if (resize_global_init(0, &err) != 0) {
        fprintf(stderr, "resize_global_init: %s\n", err.reason);
        return -1;
    }
    /* Warm-up: libvips creates some objects once (types, interpolators, profiles). */
    size_t len;
    unsigned char *jpg = photo_file(300, 200, ".jpg", &len);
    struct conf_size s[4];
    default_sizes(s, CONF_FORMAT_AUTO);
    s[3] = size_of("any", 100, 100, CONF_FIT_COVER, CONF_FORMAT_PNG);
    s[3].crop = CONF_CROP_ATTENTION;
    struct outs outs = {0};
    struct resize_options o = options_for(s, 4);
    enum resize_status st = resize_buffer(jpg, len, &o, collect, &outs, NULL, &err);
    outs_free(&outs);
    g_free(jpg);
    vips_thread_shutdown();
    return st == RESIZE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    resize_global_shutdown();
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Format detection                                                                             */

static void test_sniff(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
        const char *format, *mime;
    } cases[] = {
        {"\xFF\xD8\xFF\xE0\0\x10JFIF", 10, "jpeg", "image/jpeg"},
        {"\x89PNG\r\n\x1A\n\0\0\0\rIHDR", 16, "png", "image/png"},
        {"GIF89a\x01\0\x01\0", 10, "gif", "image/gif"},
        {"GIF87a\x01\0\x01\0", 10, "gif", "image/gif"},
        {"RIFF\x24\0\0\0WEBPVP8 ", 16, "webp", "image/webp"},
        {"RIFF\x24\0\0\0WAVEfmt ", 16, NULL, NULL},
        {"II*\0\x08\0\0\0", 8, "tiff", "image/tiff"},
        {"MM\0*\0\0\0\x08", 8, "tiff", "image/tiff"},
        {"II+\0\x08\0\0\0", 8, "tiff", "image/tiff"},
        {"\0\0\0\x18"
         "ftypheic\0\0\0\0mif1heic",
         24, "heif", "image/heic"},
        {"\0\0\0\x18"
         "ftypmif1\0\0\0\0mif1heic",
         24, "heif", "image/heic"},
        {"\0\0\0\x14"
         "ftypmif1\0\0\0\0mif1",
         20, "heif", "image/heif"},
        {"\0\0\0\x1C"
         "ftypavif\0\0\0\0avifmif1miaf",
         28, "avif", "image/avif"},
        {"\0\0\0\x1C"
         "ftypmif1\0\0\0\0mif1avifmiaf",
         28, "avif", "image/avif"},
        {"\0\0\0\x18"
         "ftypisom\0\0\0\0isomiso2",
         24, NULL, NULL}, /* mp4 video */
        {"\0\0\0\x14"
         "ftypqt  \0\0\0\0qt  ",
         20, NULL, NULL}, /* QuickTime */
        {"<svg xmlns=\"http://www.w3.org/2000/svg\"/>", 41, "svg", "image/svg+xml"},
        {"\xEF\xBB\xBF  <?xml version=\"1.0\"?>\n<!-- x -->\n<svg width=\"1\">", 55, "svg",
         "image/svg+xml"},
        {"<!DOCTYPE svg PUBLIC \"-//W3C//DTD SVG 1.1//EN\" \"\">\n<svg>", 56, "svg",
         "image/svg+xml"},
        {"<!DOCTYPE html><html><body><svg></svg></body></html>", 53, NULL, NULL},
        {"<svgfoo>", 8, NULL, NULL},
        {"%PDF-1.7\n", 9, "pdf", "application/pdf"},
        {"BM\x36\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0", 18, "bmp", "image/bmp"},
        {"BMW is a car brand, not a bitmap", 32, NULL, NULL},
        {"\0\0\1\0\1\0\x10\x10\0\0\1\0\x20\0\x68\x04\0\0\x16\0\0\0", 22, "ico",
         "image/vnd.microsoft.icon"},
        {"\0\0\0\x0CjP  \r\n\x87\n", 12, "jp2", "image/jp2"},
        {"\xFF\x4F\xFF\x51\0\x2F", 6, "jp2", "image/jp2"},
        {"\xFF\x0A\xFA\x7F", 4, "jxl", "image/jxl"},
        {"8BPS\0\x01\0\0", 8, "psd", "image/vnd.adobe.photoshop"},
        {"PK\x03\x04\x14\0\0\0", 8, NULL, NULL},
        {"\x1F\x8B\x08\0\0\0\0\0", 8, NULL, NULL},
        {"hello, world\n", 13, NULL, NULL},
        {"\xFF\xD8", 2, NULL, NULL},
        {"", 0, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *f = resize_sniff_format(cases[i].bytes, cases[i].len);
        const char *m = resize_sniff_mime(cases[i].bytes, cases[i].len);
        if ((f == NULL) != (cases[i].format == NULL) || (f && strcmp(f, cases[i].format) != 0) ||
            (m == NULL) != (cases[i].mime == NULL) || (m && strcmp(m, cases[i].mime) != 0))
            fail_msg("case %zu: got %s %s, expected %s %s", i, f ? f : "NULL", m ? m : "NULL",
                     cases[i].format ? cases[i].format : "NULL",
                     cases[i].mime ? cases[i].mime : "NULL");
    }
    assert_null(resize_sniff_format(NULL, 10));
    assert_string_equal(resize_extension("jpeg"), "jpg");
    assert_string_equal(resize_extension("webp"), "webp");
    assert_string_equal(resize_extension("avif"), "avif");
    assert_string_equal(resize_extension("png"), "png");
    assert_true(resize_is_image_format("heif") && resize_is_image_format("gif"));
    assert_false(resize_is_image_format("svg") || resize_is_image_format("pdf") ||
                 resize_is_image_format(NULL));
    struct conf_size auto_size = {.format = CONF_FORMAT_AUTO}, webp = {.format = CONF_FORMAT_WEBP};
    assert_string_equal(resize_output_extension(&auto_size, "jpeg"), "jpg");
    assert_string_equal(resize_output_extension(&auto_size, "heif"), "jpg");
    assert_string_equal(resize_output_extension(&auto_size, "gif"), "png");
    assert_string_equal(resize_output_extension(&auto_size, "webp"), "webp");
    assert_string_equal(resize_output_extension(&auto_size, "avif"), "avif"); /* as it is written */
    assert_string_equal(resize_output_extension(&webp, "png"), "webp");

    /* Real files from the encoders. */
    VipsImage *im = rgb(16, 16, 10, 20, 30);
    static const struct {
        const char *suffix, *format;
    } real[] = {
        {".jpg", "jpeg"}, {".png", "png"}, {".gif", "gif"}, {".webp", "webp"}, {".tif", "tiff"}};
    for (size_t i = 0; i < sizeof(real) / sizeof(real[0]); i++) {
        size_t len;
        unsigned char *b = save(im, real[i].suffix, &len);
        assert_string_equal(resize_sniff_format(b, len), real[i].format);
        g_free(b);
    }
    size_t len;
    unsigned char *b = save_heif(im, VIPS_FOREIGN_HEIF_COMPRESSION_AV1, &len);
    assert_string_equal(resize_sniff_format(b, len), "avif");
    g_free(b);
    b = save_heif(im, VIPS_FOREIGN_HEIF_COMPRESSION_HEVC, &len);
    assert_string_equal(resize_sniff_format(b, len), "heif");
    assert_string_equal(resize_sniff_mime(b, len), "image/heic");
    g_free(b);
    g_object_unref(im);
    assert_no_leak();
}

/* A stored Content-Type to the format it names: only the formats the engine resizes. */
static void test_format_of_mime(void **state)
{
    (void)state;
    static const struct {
        const char *mime, *format;
    } cases[] = {
        {"image/jpeg", "jpeg"},
        {"IMAGE/JPEG", "jpeg"},
        {"image/jpeg; charset=binary", "jpeg"},
        {"image/jpeg ;q=1", "jpeg"},
        {"image/jpg", "jpeg"},
        {"image/pjpeg", "jpeg"},
        {"image/png", "png"},
        {"image/webp", "webp"},
        {"image/gif", "gif"},
        {"image/tiff", "tiff"},
        {"image/heic", "heif"},
        {"image/heif", "heif"},
        {"image/avif", "avif"},
        {"image/svg+xml", NULL}, /* sniffed, but never resized */
        {"application/pdf", NULL},
        {"image/jpeg2", NULL},
        {"image/jpe", NULL},
        {"application/octet-stream", NULL},
        {"", NULL},
        {NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *f = resize_format_of_mime(cases[i].mime);
        if ((f == NULL) != (cases[i].format == NULL) || (f && strcmp(f, cases[i].format) != 0))
            fail_msg("'%s': got %s, expected %s", cases[i].mime ? cases[i].mime : "(NULL)",
                     f ? f : "NULL", cases[i].format ? cases[i].format : "NULL");
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Sizing rules (resize_output_size, no decoding)                                              */

static void test_size_rules(void **state)
{
    (void)state;
    static const struct {
        int w, h;
        unsigned bw, bh;
        enum conf_fit fit;
        int ow, oh;
    } cases[] = {
        /* the default sizes on a 4000x3000 photo */
        {4000, 3000, 150, 150, CONF_FIT_COVER, 150, 150},
        {4000, 3000, 640, 640, CONF_FIT_INSIDE, 640, 480},
        {4000, 3000, 1280, 1280, CONF_FIT_INSIDE, 1280, 960},
        /* portrait */
        {3000, 4000, 640, 640, CONF_FIT_INSIDE, 480, 640},
        {3000, 4000, 150, 150, CONF_FIT_COVER, 150, 150},
        /* never enlarge: fit keeps small images as they are */
        {100, 80, 640, 640, CONF_FIT_INSIDE, 100, 80},
        {640, 480, 640, 640, CONF_FIT_INSIDE, 640, 480},
        /* cover on a small image: the largest box-shaped crop, unscaled */
        {100, 80, 150, 150, CONF_FIT_COVER, 80, 80},
        {200, 100, 150, 150, CONF_FIT_COVER, 100, 100},
        {120, 300, 150, 150, CONF_FIT_COVER, 120, 120},
        {100, 80, 300, 100, CONF_FIT_COVER, 100, 33},
        {1000, 1000, 1600, 900, CONF_FIT_COVER, 1000, 563},
        /* cover larger than the box: scaled, then cropped */
        {4000, 3000, 300, 100, CONF_FIT_COVER, 300, 100},
        {1001, 1001, 150, 100, CONF_FIT_COVER, 150, 100},
        /* one side bounded */
        {4000, 3000, 640, 0, CONF_FIT_INSIDE, 640, 480},
        {4000, 3000, 0, 480, CONF_FIT_INSIDE, 640, 480},
        {300, 200, 0, 480, CONF_FIT_INSIDE, 300, 200},
        {300, 2000, 640, 0, CONF_FIT_INSIDE, 300, 2000},
        /* rounding */
        {4000, 3001, 640, 640, CONF_FIT_INSIDE, 640, 480},
        {4000, 3003, 640, 640, CONF_FIT_INSIDE, 640, 480}, /* 480.48 */
        {4000, 3004, 640, 640, CONF_FIT_INSIDE, 640, 481}, /* 480.64 */
        {1001, 1001, 640, 640, CONF_FIT_INSIDE, 640, 640},
        /* extremes: never 0 */
        {1, 200000, 640, 640, CONF_FIT_INSIDE, 1, 640},
        {1, 200000, 150, 150, CONF_FIT_COVER, 1, 1},
        {200000, 1, 1280, 1280, CONF_FIT_INSIDE, 1280, 1},
        {1, 1, 150, 150, CONF_FIT_COVER, 1, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_size s = size_of("s", cases[i].bw, cases[i].bh, cases[i].fit, CONF_FORMAT_AUTO);
        int ow = -1, oh = -1;
        resize_output_size(cases[i].w, cases[i].h, &s, &ow, &oh);
        if (ow != cases[i].ow || oh != cases[i].oh)
            fail_msg("%dx%d into %ux%u %s: %dx%d, expected %dx%d", cases[i].w, cases[i].h,
                     cases[i].bw, cases[i].bh, cases[i].fit == CONF_FIT_COVER ? "cover" : "fit", ow,
                     oh, cases[i].ow, cases[i].oh);
    }
    struct conf_size s = size_of("s", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_AUTO);
    int ow = -1, oh = -1;
    resize_output_size(0, 100, &s, &ow, &oh);
    assert_int_equal(ow, 0);
    assert_int_equal(oh, 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Dimensions, order and formats of real renditions                                            */

static void test_default_sizes_4000x3000(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(4000, 3000, ".jpg[Q=90]", &len);

    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct outs outs = {0};
    struct resize_source_info info;
    struct resize_error err;
    enum resize_status st = RESIZE_FAILED;
    double best = 1e9;
    for (int round = 0; round < 3; round++) { /* the best of 3: the machine may be busy */
        outs_free(&outs);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        st = run(jpg, len, s, 3, &outs, &info, &err);
        double ms = ms_since(&t0);
        if (ms < best)
            best = ms;
        assert_int_equal(st, RESIZE_OK);
    }
    print_message("4000x3000 JPEG (%zu bytes) -> 3 sizes: %.0f ms (best of 3; renditions "
                  "%.1f, %.1f, %.1f ms)\n",
                  len, best, outs.o[0].ms, outs.o[1].ms, outs.o[2].ms);
    assert_string_equal(info.format, "jpeg");
    assert_int_equal(info.width, 4000);
    assert_int_equal(info.height, 3000);
    assert_int_equal(info.orientation, 1);
    assert_int_equal(info.pages, 1);
    assert_false(info.has_alpha);

    static const struct {
        const char *name;
        int w, h;
    } want[] = {{"thumbnail", 150, 150}, {"medium", 640, 480}, {"large", 1280, 960}};
    assert_int_equal(outs.n, 3);
    for (size_t i = 0; i < 3; i++) {
        struct out *o = &outs.o[i];
        assert_string_equal(o->name, want[i].name); /* in the order of the sizes */
        assert_int_equal(o->width, want[i].w);
        assert_int_equal(o->height, want[i].h);
        assert_string_equal(o->format, "jpeg");
        assert_string_equal(o->mime, "image/jpeg");
        assert_string_equal(o->ext, "jpg");
        assert_true(o->ms >= 0);
        VipsImage *d = decode(o);
        assert_int_equal(d->Xsize, want[i].w);
        assert_int_equal(d->Ysize, want[i].h);
        assert_int_equal(d->Bands, 3);
        g_object_unref(d);
    }
    /* The gradient survives: red grows left to right, green top to bottom. */
    VipsImage *d = decode(&outs.o[2]);
    double a[4], b[4];
    pixel(d, 10, 480, a);
    pixel(d, 1270, 480, b);
    assert_true(b[0] - a[0] > 200);
    pixel(d, 640, 10, a);
    pixel(d, 640, 950, b);
    assert_true(b[1] - a[1] > 200);
    g_object_unref(d);
    outs_free(&outs);
    g_free(jpg);
    assert_no_leak();
}

static void test_order_and_unsorted_sizes(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(1200, 900, ".png", &len);
    struct conf_size s[4] = {
        size_of("tiny", 60, 60, CONF_FIT_INSIDE, CONF_FORMAT_JPEG),
        size_of("full", 4000, 4000, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
        size_of("wide", 300, 100, CONF_FIT_COVER, CONF_FORMAT_WEBP),
        size_of("mid", 600, 0, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
    };
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(png, len, s, 4, &outs, NULL, &err), RESIZE_OK);
    assert_int_equal(outs.n, 4);
    static const struct {
        const char *name, *format;
        int w, h;
    } want[] = {{"tiny", "jpeg", 60, 45},
                {"full", "png", 1200, 900},
                {"wide", "webp", 300, 100},
                {"mid", "png", 600, 450}};
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(outs.o[i].name, want[i].name);
        assert_string_equal(outs.o[i].format, want[i].format);
        expect_size(&outs.o[i], want[i].w, want[i].h);
    }
    /* The full-size PNG is the source, pixel for pixel (no resampling at scale 1). */
    VipsImage *src = vips_image_new_from_buffer(png, len, "", NULL);
    VipsImage *full = decode(&outs.o[1]);
    double diff = -1;
    VipsImage *sub = NULL, *ab = NULL;
    assert_int_equal(vips_subtract(src, full, &sub, NULL), 0);
    assert_int_equal(vips_abs(sub, &ab, NULL), 0);
    assert_int_equal(vips_max(ab, &diff, NULL), 0);
    assert_true(diff == 0);
    g_object_unref(sub);
    g_object_unref(ab);
    g_object_unref(full);
    g_object_unref(src);
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

static void test_never_enlarge(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(100, 80, ".jpg", &len);
    struct conf_size s[5];
    default_sizes(s, CONF_FORMAT_AUTO);
    s[3] = size_of("x", 0, 480, CONF_FIT_INSIDE, CONF_FORMAT_AUTO);
    s[4] = size_of("banner", 300, 100, CONF_FIT_COVER, CONF_FORMAT_AUTO);
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(jpg, len, s, 5, &outs, NULL, &err), RESIZE_OK);
    static const int want[5][2] = {{80, 80}, {100, 80}, {100, 80}, {100, 80}, {100, 33}};
    expect_dims(&outs, want, 5);
    outs_free(&outs);
    g_free(jpg);
    assert_no_leak();
}

static void test_one_side_bounds(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(2000, 1500, ".jpg", &len);
    struct conf_size s[3] = {
        size_of("w", 640, 0, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
        size_of("h", 0, 480, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
        size_of("hbig", 0, 3000, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
    };
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(jpg, len, s, 3, &outs, NULL, &err), RESIZE_OK);
    assert_int_equal(outs.o[0].width, 640);
    assert_int_equal(outs.o[0].height, 480);
    assert_int_equal(outs.o[1].width, 640);
    assert_int_equal(outs.o[1].height, 480);
    assert_int_equal(outs.o[2].width, 2000);
    assert_int_equal(outs.o[2].height, 1500);
    outs_free(&outs);
    g_free(jpg);
    assert_no_leak();
}

/* Three vertical bands, red | green | blue: a centred square crop shows only green in the
 * middle and red/blue only at its edges. */
static void test_cover_centre_crop(void **state)
{
    (void)state;
    VipsImage *im = rgb(3000, 1000, 255, 0, 0);
    rect(im, 1000, 0, 1000, 1000, 0, 255, 0);
    rect(im, 2000, 0, 1000, 1000, 0, 0, 255);
    size_t len;
    unsigned char *png = save(im, ".png", &len);
    g_object_unref(im);
    struct conf_size s[2] = {size_of("sq", 150, 150, CONF_FIT_COVER, CONF_FORMAT_PNG),
                             size_of("small", 500, 500, CONF_FIT_COVER, CONF_FORMAT_PNG)};
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(png, len, s, 2, &outs, NULL, &err), RESIZE_OK);
    /* 3000x1000 -> 450x150, crop 150x150 at x = 150: exactly the green band */
    VipsImage *d = decode(&outs.o[0]);
    assert_int_equal(d->Xsize, 150);
    assert_int_equal(d->Ysize, 150);
    assert_rgb(d, 75, 75, 0, 255, 0, 2);
    assert_rgb(d, 3, 3, 0, 255, 0, 40); /* edges: lanczos may ring a little */
    assert_rgb(d, 146, 146, 0, 255, 0, 40);
    g_object_unref(d);
    /* 3000x1000 -> 1500x500, crop 500x500 at x = 500: green again */
    d = decode(&outs.o[1]);
    assert_int_equal(d->Xsize, 500);
    assert_rgb(d, 250, 250, 0, 255, 0, 2);
    g_object_unref(d);
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

/* A flat grey picture with one busy, saturated patch at its right end: attention and entropy
 * crops go there; a centred crop does not. */
static void test_cover_attention_entropy(void **state)
{
    (void)state;
    VipsImage *im = rgb(4000, 1000, 128, 128, 128);
    VipsImage *noise = NULL, *n8 = NULL, *patch = NULL, *nb = NULL;
    assert_int_equal(
        vips_gaussnoise(&noise, 700, 700, "mean", 128.0, "sigma", 90.0, "seed", 7, NULL), 0);
    assert_int_equal(vips_cast(noise, &n8, VIPS_FORMAT_UCHAR, NULL), 0);
    VipsImage *bands[3] = {n8, n8, n8};
    assert_int_equal(vips_bandjoin(bands, &nb, 3, NULL), 0);
    double mul[3] = {1, 0.2, 0.2}, add[3] = {100, 0, 0};
    assert_int_equal(vips_linear(nb, &patch, mul, add, 3, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_draw_image(im, patch, 3200, 150, NULL), 0);
    size_t len;
    unsigned char *png = save(im, ".png", &len);
    VipsImage *all[] = {im, noise, n8, patch, nb};
    for (size_t i = 0; i < 5; i++)
        g_object_unref(all[i]);

    struct conf_size s[3] = {size_of("centre", 200, 200, CONF_FIT_COVER, CONF_FORMAT_PNG),
                             size_of("attention", 200, 200, CONF_FIT_COVER, CONF_FORMAT_PNG),
                             size_of("entropy", 200, 200, CONF_FIT_COVER, CONF_FORMAT_PNG)};
    s[1].crop = CONF_CROP_ATTENTION;
    s[2].crop = CONF_CROP_ENTROPY;
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(png, len, s, 3, &outs, NULL, &err), RESIZE_OK);
    for (size_t i = 0; i < 3; i++) {
        VipsImage *d = decode(&outs.o[i]);
        assert_int_equal(d->Xsize, 200);
        assert_int_equal(d->Ysize, 200);
        double sd = 0;
        assert_int_equal(vips_deviate(d, &sd, NULL), 0);
        if (i == 0)
            assert_true(sd < 2); /* flat grey */
        else if (sd < 10)
            fail_msg("%s crop missed the busy patch (deviation %.1f)", outs.o[i].name, sd);
        g_object_unref(d);
    }
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

/* ------------------------------------------------------------------------------------------ */
/* EXIF orientation                                                                             */

enum corner { TL, TR, BL, BR };

static void corner_xy(enum corner c, int w, int h, int *x, int *y)
{
    *x = (c == TL || c == BL) ? 5 : w - 6;
    *y = (c == TL || c == TR) ? 5 : h - 6;
}

/* Stored 300x200, white, with a red block at its top-left and a green one at its top-right.
 * Shown upright, EXIF orientation o puts them in these corners: */
static void test_exif_orientation(void **state)
{
    (void)state;
    static const enum corner red_at[9] = {0, TL, TR, BR, BL, TL, TR, BR, BL};
    static const enum corner green_at[9] = {0, TR, TL, BL, BR, BL, BR, TR, TL};
    VipsImage *im = rgb(300, 200, 255, 255, 255);
    rect(im, 0, 0, 60, 40, 255, 0, 0);
    rect(im, 240, 0, 60, 40, 0, 255, 0);
    for (int o = 1; o <= 8; o++) {
        VipsImage *tagged = with_int(im, "orientation", o);
        size_t len;
        unsigned char *jpg = save(tagged, ".jpg[Q=95]", &len);
        g_object_unref(tagged);
        VipsImage *check = vips_image_new_from_buffer(jpg, len, "", NULL);
        assert_int_equal(vips_image_get_orientation(check), o); /* the input has the tag */
        g_object_unref(check);

        struct conf_size s[2] = {size_of("png", 150, 150, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                                 size_of("jpg", 150, 150, CONF_FIT_INSIDE, CONF_FORMAT_JPEG)};
        struct outs outs = {0};
        struct resize_source_info info;
        struct resize_error err;
        assert_int_equal(run(jpg, len, s, 2, &outs, &info, &err), RESIZE_OK);
        assert_int_equal(info.orientation, o);
        assert_int_equal(info.width, 300); /* as stored */
        int w = o >= 5 ? 100 : 150, h = o >= 5 ? 150 : 100;
        for (size_t i = 0; i < 2; i++) {
            assert_int_equal(outs.o[i].width, w);
            assert_int_equal(outs.o[i].height, h);
            VipsImage *d = decode(&outs.o[i]);
            assert_int_equal(d->Xsize, w);
            assert_int_equal(d->Ysize, h);
            /* no orientation tag left to turn it again */
            assert_int_equal(vips_image_get_orientation(d), 1);
            assert_int_equal(vips_image_get_typeof(d, VIPS_META_EXIF_NAME), 0);
            for (enum corner c = TL; c <= BR; c++) {
                int x, y;
                corner_xy(c, w, h, &x, &y);
                double v[4];
                pixel(d, x, y, v);
                const char *what = c == red_at[o] ? "red" : c == green_at[o] ? "green" : "white";
                bool ok = c == red_at[o]     ? v[0] > 200 && v[1] < 60 && v[2] < 60
                          : c == green_at[o] ? v[0] < 60 && v[1] > 200 && v[2] < 60
                                             : v[0] > 200 && v[1] > 200 && v[2] > 200;
                if (!ok)
                    fail_msg("orientation %d, %s: corner %d (%d,%d) is (%.0f,%.0f,%.0f), "
                             "expected %s",
                             o, outs.o[i].format, c, x, y, v[0], v[1], v[2], what);
            }
            g_object_unref(d);
        }
        outs_free(&outs);
        g_free(jpg);
    }
    g_object_unref(im);
    assert_no_leak();
}

/* ------------------------------------------------------------------------------------------ */
/* Colour                                                                                       */

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static void put_s15f16(unsigned char *p, double v)
{
    put_be32(p, (uint32_t)(int32_t)lround(v * 65536.0));
}

/* An ICC v2 RGB display profile (matrix/TRC), written by hand: these colorants (adapted to D50)
 * and one tone curve for the three channels, a 'curv' of n entries (n = 1: a gamma, u8Fixed8). */
static unsigned char *matrix_profile(const double colorants[3][3], const uint16_t *curve,
                                     uint32_t n, const char *desc, size_t *len)
{
    const size_t ntags = 9;
    size_t desc_len = 12 + strlen(desc) + 1 + 4 + 4 + 2 + 1 + 67;
    size_t off = 128 + 4 + 12 * ntags;
    size_t desc_off = off;
    off += (desc_len + 3) & ~(size_t)3;
    size_t cprt_off = off;
    size_t cprt_len = 8 + 10; /* "text" + "no rights" */
    off += (cprt_len + 3) & ~(size_t)3;
    size_t xyz_off = off; /* wtpt, r, g, b: 20 bytes each */
    off += 4 * 20;
    size_t trc_off = off; /* one curve, shared by the three channels */
    size_t trc_len = 12 + 2 * (size_t)n;
    off += (trc_len + 3) & ~(size_t)3;
    size_t total = off;

    unsigned char *p = calloc(1, total);
    assert_non_null(p);
    put_be32(p, (uint32_t)total);
    put_be32(p + 8, 0x02100000);
    memcpy(p + 12, "mntr", 4);
    memcpy(p + 16, "RGB ", 4);
    memcpy(p + 20, "XYZ ", 4);
    p[25] = 0xE8; /* 2024-01-01 */
    p[27] = 1;
    p[29] = 1;
    memcpy(p + 36, "acsp", 4);
    put_s15f16(p + 68, 0.9642);
    put_s15f16(p + 72, 1.0);
    put_s15f16(p + 76, 0.8249);

    put_be32(p + 128, (uint32_t)ntags);
    unsigned char *t = p + 132;
    static const char *const sigs[] = {"desc", "cprt", "wtpt", "rXYZ", "gXYZ",
                                       "bXYZ", "rTRC", "gTRC", "bTRC"};
    size_t offs[] = {desc_off,     cprt_off, xyz_off, xyz_off + 20, xyz_off + 40,
                     xyz_off + 60, trc_off,  trc_off, trc_off};
    size_t lens[] = {desc_len, cprt_len, 20, 20, 20, 20, trc_len, trc_len, trc_len};
    for (size_t i = 0; i < ntags; i++, t += 12) {
        memcpy(t, sigs[i], 4);
        put_be32(t + 4, (uint32_t)offs[i]);
        put_be32(t + 8, (uint32_t)lens[i]);
    }
    memcpy(p + desc_off, "desc", 4);
    put_be32(p + desc_off + 8, (uint32_t)strlen(desc) + 1);
    memcpy(p + desc_off + 12, desc, strlen(desc));
    memcpy(p + cprt_off, "text", 4);
    memcpy(p + cprt_off + 8, "no rights", 9);
    unsigned char *x = p + xyz_off;
    memcpy(x, "XYZ ", 4); /* media white: D65 */
    put_s15f16(x + 8, 0.9505);
    put_s15f16(x + 12, 1.0);
    put_s15f16(x + 16, 1.0891);
    for (int c = 0; c < 3; c++) {
        x = p + xyz_off + 20 * (size_t)(c + 1);
        memcpy(x, "XYZ ", 4);
        for (int k = 0; k < 3; k++)
            put_s15f16(x + 8 + 4 * k, colorants[c][k]);
    }
    memcpy(p + trc_off, "curv", 4);
    put_be32(p + trc_off + 8, n);
    for (uint32_t i = 0; i < n; i++) {
        p[trc_off + 12 + 2 * i] = (unsigned char)(curve[i] >> 8);
        p[trc_off + 13 + 2 * i] = (unsigned char)curve[i];
    }
    *len = total;
    return p;
}

/* Adobe RGB (1998): its primaries adapted to D50 and a gamma of 563/256, as in Adobe's
 * specification. */
static unsigned char *adobe_rgb_profile(size_t *len)
{
    static const double colorants[3][3] = {
        {0.6097, 0.3111, 0.0195}, /* rXYZ */
        {0.2053, 0.6257, 0.0609}, /* gXYZ */
        {0.1492, 0.0632, 0.7446}, /* bXYZ */
    };
    static const uint16_t gamma[1] = {0x0233}; /* u8Fixed8 2.19921875 */
    return matrix_profile(colorants, gamma, 1, "Test profile compatible with Adobe RGB (1998)",
                          len);
}

/* sRGB's primaries adapted to D50 (as in the common "sRGB IEC61966-2.1" profiles). */
static const double srgb_colorants[3][3] = {
    {0.4361, 0.2225, 0.0139}, {0.3851, 0.7169, 0.0971}, {0.1431, 0.0606, 0.7141}};

static double srgb_decode(double v)
{
    return v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4);
}

static double srgb_encode(double v)
{
    return v <= 0.0031308 ? v * 12.92 : 1.055 * pow(v, 1 / 2.4) - 0.055;
}

/* Renders a two-colour picture tagged with an ICC profile and checks the sRGB values that come
 * out, computed by hand from the profiles' primaries: Adobe RGB (1998) -> XYZ D50 -> sRGB. */
static void check_profile(const void *icc, size_t icc_len, const double in[2][3],
                          const double want[2][3], double tol)
{
    VipsImage *im = rgb(400, 200, in[0][0], in[0][1], in[0][2]);
    rect(im, 200, 0, 200, 200, in[1][0], in[1][1], in[1][2]);
    VipsImage *tagged = with_blob(im, VIPS_META_ICC_NAME, icc, icc_len);
    size_t len, jlen;
    unsigned char *png = save(tagged, ".png", &len);
    unsigned char *jpg = save(tagged, ".jpg[Q=98]", &jlen);
    g_object_unref(tagged);
    g_object_unref(im);

    const unsigned char *inputs[2] = {png, jpg};
    size_t lens[2] = {len, jlen};
    for (int k = 0; k < 2; k++) {
        struct conf_size s[2] = {size_of("png", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                                 size_of("jpg", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_JPEG)};
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(inputs[k], lens[k], s, 2, &outs, NULL, &err), RESIZE_OK);
        for (size_t i = 0; i < 2; i++) {
            VipsImage *d = decode(&outs.o[i]);
            assert_int_equal(d->Bands, 3);
            assert_int_equal(vips_image_get_typeof(d, VIPS_META_ICC_NAME), 0); /* stripped */
            double t = tol + (k == 1 || i == 1 ? 4 : 0); /* JPEG on either side */
            assert_rgb(d, 25, 25, want[0][0], want[0][1], want[0][2], t);
            assert_rgb(d, 75, 25, want[1][0], want[1][1], want[1][2], t);
            g_object_unref(d);
        }
        outs_free(&outs);
    }
    g_free(png);
    g_free(jpg);
}

static void test_adobe_rgb_to_srgb(void **state)
{
    (void)state;
    size_t icc_len;
    unsigned char *icc = adobe_rgb_profile(&icc_len);
    /* Adobe RGB (120,180,120) is sRGB (80.5,181.5,117.3); (200,100,50) is (227.0,100.1,42.4).
     * Untouched values would be off by 40 and 27. */
    const double in[2][3] = {{120, 180, 120}, {200, 100, 50}};
    const double want[2][3] = {{80.5, 181.5, 117.3}, {227.0, 100.1, 42.4}};
    check_profile(icc, icc_len, in, want, 4);
    free(icc);
    assert_no_leak();
}

static void test_display_p3_to_srgb(void **state)
{
    (void)state;
    VipsBlob *blob = NULL;
    if (vips_profile_load("p3", &blob, NULL) != 0)
        skip();
    size_t icc_len;
    const void *icc = vips_area_get_data(VIPS_AREA(blob), &icc_len, NULL, NULL, NULL);
    /* Display P3 (200,100,50) is sRGB (214.9,92.6,30.9); (120,180,120) is (100.0,182.0,113.5). */
    const double in[2][3] = {{200, 100, 50}, {120, 180, 120}};
    const double want[2][3] = {{214.9, 92.6, 30.9}, {100.0, 182.0, 113.5}};
    check_profile(icc, icc_len, in, want, 4);
    vips_area_unref(VIPS_AREA(blob));
    assert_no_leak();
}

/* A picture tagged with an sRGB profile keeps its values (the conversion, which would change
 * none, is skipped): a profile written here with a 1024-entry sRGB curve, and libvips' own.
 * sRGB's primaries with a plain gamma of 2.2 are not sRGB: that picture is converted (its dark
 * values come out darker: 20 -> 12). */
static void test_srgb_profiles(void **state)
{
    (void)state;
    const double in[2][3] = {{20, 120, 200}, {200, 60, 10}};
    uint16_t table[1024];
    for (int i = 0; i < 1024; i++)
        table[i] = (uint16_t)lround(srgb_decode(i / 1023.0) * 65535);
    size_t tlen;
    unsigned char *tabled = matrix_profile(srgb_colorants, table, 1024, "sRGB, a table", &tlen);
    check_profile(tabled, tlen, in, in, 1);
    free(tabled);

    VipsBlob *blob = NULL;
    if (vips_profile_load("srgb", &blob, NULL) == 0) {
        size_t blen;
        const void *icc = vips_area_get_data(VIPS_AREA(blob), &blen, NULL, NULL, NULL);
        check_profile(icc, blen, in, in, 1);
        vips_area_unref(VIPS_AREA(blob));
    }

    static const uint16_t gamma[1] = {0x0233}; /* 563/256 */
    size_t glen;
    unsigned char *g22 =
        matrix_profile(srgb_colorants, gamma, 1, "sRGB primaries, gamma 2.2", &glen);
    double want[2][3];
    for (int c = 0; c < 2; c++)
        for (int k = 0; k < 3; k++)
            want[c][k] = 255 * srgb_encode(pow(in[c][k] / 255, 563.0 / 256));
    assert_true(in[0][0] - want[0][0] > 7);
    check_profile(g22, glen, in, want, 2);
    free(g22);
    assert_no_leak();
}

/* A JPEG with an ICC profile inserted as it is (an APP2 segment after SOI), whatever it is:
 * the savers check profiles, uploads do not. */
static unsigned char *jpeg_with_icc(VipsImage *im, const void *icc, size_t icc_len, size_t *len)
{
    size_t jlen;
    unsigned char *jpg = save(im, ".jpg[Q=98,strip]", &jlen);
    size_t seg = 2 + 2 + 14 + icc_len;
    assert_true(icc_len < 60000);
    unsigned char *out = g_malloc(jlen + seg);
    memcpy(out, jpg, 2);
    unsigned char *p = out + 2;
    p[0] = 0xFF;
    p[1] = 0xE2;
    p[2] = (unsigned char)((seg - 2) >> 8);
    p[3] = (unsigned char)(seg - 2);
    memcpy(p + 4, "ICC_PROFILE\0\x01\x01", 14);
    memcpy(p + 18, icc, icc_len);
    memcpy(out + 2 + seg, jpg + 2, jlen - 2);
    g_free(jpg);
    *len = jlen + seg;
    return out;
}

/* Profiles that do not fit the picture (a grey or CMYK one on RGB), or are not profiles at all:
 * the picture is taken as sRGB, not refused. */
static void test_unusable_profiles(void **state)
{
    (void)state;
    size_t alen;
    unsigned char *grey = adobe_rgb_profile(&alen);
    memcpy(grey + 16, "GRAY", 4);
    unsigned char *cmyk = adobe_rgb_profile(&alen);
    memcpy(cmyk + 16, "CMYK", 4);
    unsigned char *broken = adobe_rgb_profile(&alen);
    broken[36] = 'x'; /* "acsp" signature */
    unsigned char junk[300];
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (unsigned char)(i * 37 + 11);
    struct {
        const void *data;
        size_t len;
    } profiles[] = {{grey, alen}, {cmyk, alen}, {broken, alen}, {junk, sizeof(junk)}};
    VipsImage *im = rgb(200, 100, 120, 180, 120);
    for (size_t k = 0; k < 4; k++) {
        size_t len;
        unsigned char *jpg = jpeg_with_icc(im, profiles[k].data, profiles[k].len, &len);
        VipsImage *check = vips_image_new_from_buffer(jpg, len, "", NULL);
        assert_non_null(check);
        assert_true(vips_image_get_typeof(check, VIPS_META_ICC_NAME) != 0);
        g_object_unref(check);
        struct conf_size s[1] = {size_of("m", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_PNG)};
        struct outs outs = {0};
        struct resize_error err;
        enum resize_status st = run(jpg, len, s, 1, &outs, NULL, &err);
        if (st != RESIZE_OK)
            fail_msg("profile %zu: %s", k, err.reason);
        VipsImage *d = decode(&outs.o[0]);
        assert_int_equal(d->Bands, 3);
        assert_rgb(d, 50, 25, 120, 180, 120, 4);
        assert_int_equal(vips_image_get_typeof(d, VIPS_META_ICC_NAME), 0);
        g_object_unref(d);
        outs_free(&outs);
        g_free(jpg);
    }
    g_object_unref(im);

    /* a grey picture with an RGB profile, or junk: it stays grey */
    double v[1] = {90};
    VipsImage *g = solid(200, 100, 1, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W);
    unsigned char *rgbp = adobe_rgb_profile(&alen);
    struct {
        const void *data;
        size_t len;
    } grey_profiles[] = {{rgbp, alen}, {junk, sizeof(junk)}};
    for (size_t k = 0; k < 2; k++) {
        size_t len;
        unsigned char *jpg = jpeg_with_icc(g, grey_profiles[k].data, grey_profiles[k].len, &len);
        struct conf_size s[1] = {size_of("m", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_PNG)};
        struct outs outs = {0};
        struct resize_error err;
        enum resize_status st = run(jpg, len, s, 1, &outs, NULL, &err);
        if (st != RESIZE_OK)
            fail_msg("grey, profile %zu: %s", k, err.reason);
        VipsImage *d = decode(&outs.o[0]);
        assert_int_equal(d->Bands, 1);
        double p[4];
        pixel(d, 50, 25, p);
        assert_near(p[0], 90, 3);
        g_object_unref(d);
        outs_free(&outs);
        g_free(jpg);
    }
    g_object_unref(g);
    free(rgbp);
    free(grey);
    free(cmyk);
    free(broken);
    assert_no_leak();
}

static void test_cmyk_jpeg(void **state)
{
    (void)state;
    /* Left half: 100% magenta + yellow (red); right half: no ink (white). */
    double v[4] = {0, 255, 255, 0};
    VipsImage *im = solid(200, 100, 4, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_CMYK);
    double ink[4] = {0, 0, 0, 0};
    assert_int_equal(vips_draw_rect(im, ink, 4, 100, 0, 100, 100, "fill", TRUE, NULL), 0);
    VipsBlob *cmyk = NULL;
    assert_int_equal(vips_profile_load("cmyk", &cmyk, NULL), 0);
    size_t plen;
    const void *pdata = vips_area_get_data(VIPS_AREA(cmyk), &plen, NULL, NULL, NULL);
    VipsImage *tagged = with_blob(im, VIPS_META_ICC_NAME, pdata, plen);
    vips_area_unref(VIPS_AREA(cmyk));

    VipsImage *variants[2] = {im, tagged}; /* without and with an embedded profile */
    for (int k = 0; k < 2; k++) {
        size_t len;
        unsigned char *jpg = save(variants[k], ".jpg[Q=95]", &len);
        VipsImage *check = vips_image_new_from_buffer(jpg, len, "", NULL);
        assert_int_equal(check->Bands, 4);
        assert_int_equal(check->Type, VIPS_INTERPRETATION_CMYK);
        g_object_unref(check);
        struct conf_size s[1] = {size_of("m", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_AUTO)};
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(jpg, len, s, 1, &outs, NULL, &err), RESIZE_OK);
        assert_string_equal(outs.o[0].format, "jpeg");
        VipsImage *d = decode(&outs.o[0]);
        assert_int_equal(d->Bands, 3);
        assert_int_equal(d->Type, VIPS_INTERPRETATION_sRGB);
        double p[4];
        pixel(d, 25, 25, p);
        if (!(p[0] > 200 && p[1] < 80 && p[2] < 80))
            fail_msg("CMYK red became (%.0f,%.0f,%.0f)", p[0], p[1], p[2]);
        assert_rgb(d, 75, 25, 255, 255, 255, 12);
        g_object_unref(d);
        outs_free(&outs);
        g_free(jpg);
    }
    g_object_unref(tagged);
    g_object_unref(im);
    assert_no_leak();
}

static void test_greyscale_stays_grey(void **state)
{
    (void)state;
    double v[2] = {90, 255};
    VipsImage *grey = solid(400, 300, 1, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W);
    VipsImage *grey_a = solid(400, 300, 2, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_B_W);
    double clear[2] = {0, 0};
    assert_int_equal(vips_draw_rect(grey_a, clear, 2, 0, 0, 200, 300, "fill", TRUE, NULL), 0);
    size_t jlen, plen, alen;
    unsigned char *jpg = save(grey, ".jpg", &jlen);
    unsigned char *png = save(grey, ".png", &plen);
    unsigned char *apng = save(grey_a, ".png", &alen);
    g_object_unref(grey);
    g_object_unref(grey_a);

    struct conf_size s[4] = {size_of("auto", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
                             size_of("jpeg", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_JPEG),
                             size_of("png", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("webp", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_WEBP)};
    const unsigned char *inputs[2] = {jpg, png};
    size_t lens[2] = {jlen, plen};
    for (int k = 0; k < 2; k++) {
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(inputs[k], lens[k], s, 4, &outs, NULL, &err), RESIZE_OK);
        for (size_t i = 0; i < 4; i++) {
            VipsImage *d = decode(&outs.o[i]);
            if (strcmp(outs.o[i].format, "webp") != 0) /* WebP has no grey mode */
                assert_int_equal(d->Bands, 1);
            double p[4];
            pixel(d, 100, 75, p);
            assert_near(p[0], 90, 3);
            if (d->Bands >= 3) {
                assert_near(p[1], 90, 3);
                assert_near(p[2], 90, 3);
            }
            g_object_unref(d);
        }
        outs_free(&outs);
    }
    /* grey + alpha: PNG keeps both bands; JPEG flattens onto the background */
    struct conf_size sa[2] = {size_of("png", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
                              size_of("jpg", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_JPEG)};
    struct outs outs = {0};
    struct resize_error err;
    struct resize_options o = options_for(sa, 2);
    o.background = (struct conf_rgb){200, 200, 200};
    assert_int_equal(resize_buffer(apng, alen, &o, collect, &outs, NULL, &err), RESIZE_OK);
    VipsImage *d = decode(&outs.o[0]);
    assert_int_equal(d->Bands, 2);
    double p[4];
    pixel(d, 20, 75, p);
    assert_near(p[1], 0, 1);
    pixel(d, 180, 75, p);
    assert_near(p[0], 90, 2);
    assert_near(p[1], 255, 1);
    g_object_unref(d);
    d = decode(&outs.o[1]);
    assert_int_equal(d->Bands, 1);
    pixel(d, 20, 75, p);
    assert_near(p[0], 200, 3);
    pixel(d, 180, 75, p);
    assert_near(p[0], 90, 3);
    g_object_unref(d);
    outs_free(&outs);
    g_free(jpg);
    g_free(png);
    g_free(apng);
    assert_no_leak();
}

/* RGBA: left half transparent (green, invisible), right half opaque red, with a
 * half-transparent blue stripe. */
static unsigned char *rgba_png(size_t *len)
{
    double v[4] = {0, 255, 0, 0};
    VipsImage *im = solid(400, 200, 4, v, VIPS_FORMAT_UCHAR, VIPS_INTERPRETATION_sRGB);
    double red[4] = {255, 0, 0, 255};
    assert_int_equal(vips_draw_rect(im, red, 4, 200, 0, 200, 200, "fill", TRUE, NULL), 0);
    double half[4] = {0, 0, 255, 128};
    assert_int_equal(vips_draw_rect(im, half, 4, 0, 150, 200, 50, "fill", TRUE, NULL), 0);
    unsigned char *png = save(im, ".png", len);
    g_object_unref(im);
    return png;
}

static void test_alpha_flattened_for_jpeg(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = rgba_png(&len);
    struct conf_size s[1] = {size_of("jpg", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_JPEG)};
    struct outs outs = {0};
    struct resize_error err;
    struct resize_options o = options_for(s, 1);
    o.background = (struct conf_rgb){0, 128, 0};
    struct resize_source_info info;
    assert_int_equal(resize_buffer(png, len, &o, collect, &outs, &info, &err), RESIZE_OK);
    assert_true(info.has_alpha);
    VipsImage *d = decode(&outs.o[0]);
    assert_int_equal(d->Bands, 3);
    assert_rgb(d, 30, 30, 0, 128, 0, 6);  /* transparent -> background */
    assert_rgb(d, 150, 30, 255, 0, 0, 6); /* opaque red stays */
    assert_rgb(d, 30, 90, 0, 64, 128, 8); /* half blue over green: mixed */
    g_object_unref(d);
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

static void test_alpha_kept_png_webp_avif(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = rgba_png(&len);
    struct conf_size s[4] = {size_of("auto", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
                             size_of("png", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("webp", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_WEBP),
                             size_of("avif", 200, 200, CONF_FIT_INSIDE, CONF_FORMAT_AVIF)};
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(png, len, s, 4, &outs, NULL, &err), RESIZE_OK);
    assert_string_equal(outs.o[0].format, "png");
    for (size_t i = 0; i < 4; i++) {
        VipsImage *d = decode(&outs.o[i]);
        assert_int_equal(d->Bands, 4);
        double p[4];
        double tol = strcmp(outs.o[i].format, "png") == 0 ? 1 : 12;
        pixel(d, 30, 30, p);
        assert_near(p[3], 0, tol);
        pixel(d, 150, 30, p);
        assert_near(p[0], 255, tol);
        assert_near(p[1], 0, tol);
        assert_near(p[3], 255, tol);
        pixel(d, 30, 90, p);
        assert_near(p[2], 255, tol + 4);
        assert_near(p[3], 128, tol);
        /* At the edge between transparent and red, the invisible green must not bleed into
         * the red (resizing premultiplied by alpha). */
        for (int x = 94; x <= 106; x++) {
            pixel(d, x, 30, p);
            if (p[3] > 24 && (p[1] > 40 || p[0] < 200))
                fail_msg("%s: fringe at x=%d: (%.0f,%.0f,%.0f,%.0f)", outs.o[i].format, x, p[0],
                         p[1], p[2], p[3]);
        }
        g_object_unref(d);
    }
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

static void test_16bit_png(void **state)
{
    (void)state;
    double v3[3] = {65535, 32896, 0};
    VipsImage *c16 = solid(300, 200, 3, v3, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_RGB16);
    double v1[1] = {16448};
    VipsImage *g16 = solid(300, 200, 1, v1, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_GREY16);
    double v4[4] = {0, 65535, 0, 32896};
    VipsImage *a16 = solid(300, 200, 4, v4, VIPS_FORMAT_USHORT, VIPS_INTERPRETATION_RGB16);
    VipsImage *ims[3] = {c16, g16, a16};
    static const double want[3][4] = {{255, 128, 0, -1}, {64, -1, -1, -1}, {0, 255, 0, 128}};
    static const int bands[3] = {3, 1, 4};
    for (int k = 0; k < 3; k++) {
        size_t len;
        unsigned char *png = save(ims[k], ".png", &len);
        VipsImage *check = vips_image_new_from_buffer(png, len, "", NULL);
        assert_int_equal(check->BandFmt, VIPS_FORMAT_USHORT);
        g_object_unref(check);
        struct conf_size s[2] = {size_of("png", 150, 150, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                                 size_of("webp", 150, 150, CONF_FIT_INSIDE, CONF_FORMAT_WEBP)};
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(png, len, s, 2, &outs, NULL, &err), RESIZE_OK);
        VipsImage *d = decode(&outs.o[0]);
        assert_int_equal(d->BandFmt, VIPS_FORMAT_UCHAR);
        assert_int_equal(d->Bands, bands[k]);
        double p[4];
        pixel(d, 75, 50, p);
        for (int b = 0; b < bands[k]; b++)
            assert_near(p[b], want[k][b], 1);
        g_object_unref(d);
        d = decode(&outs.o[1]);
        assert_int_equal(d->BandFmt, VIPS_FORMAT_UCHAR);
        pixel(d, 75, 50, p);
        assert_near(p[0], want[k][0], 6);
        g_object_unref(d);
        outs_free(&outs);
        g_free(png);
        g_object_unref(ims[k]);
    }
    assert_no_leak();
}

/* ------------------------------------------------------------------------------------------ */
/* Animations: the first frame only                                                             */

static VipsImage *three_frames(void)
{
    VipsImage *f[3] = {rgb(120, 80, 255, 0, 0), rgb(120, 80, 0, 255, 0), rgb(120, 80, 0, 0, 255)};
    VipsImage *strip = NULL;
    assert_int_equal(vips_arrayjoin(f, &strip, 3, "across", 1, NULL), 0);
    for (int i = 0; i < 3; i++)
        g_object_unref(f[i]);
    VipsImage *anim = with_int(strip, VIPS_META_PAGE_HEIGHT, 80);
    g_object_unref(strip);
    int delays[3] = {100, 100, 100};
    vips_image_set_array_int(anim, "delay", delays, 3);
    vips_image_set_int(anim, "loop", 0);
    return anim;
}

static void test_animated_first_frame(void **state)
{
    (void)state;
    VipsImage *anim = three_frames();
    static const char *const suffixes[] = {".gif", ".webp"};
    static const char *const formats[] = {"png", "webp"};
    for (int k = 0; k < 2; k++) {
        size_t len;
        unsigned char *b = save(anim, suffixes[k], &len);
        struct conf_size s[2] = {size_of("auto", 640, 640, CONF_FIT_INSIDE, CONF_FORMAT_AUTO),
                                 size_of("jpg", 60, 60, CONF_FIT_INSIDE, CONF_FORMAT_JPEG)};
        struct outs outs = {0};
        struct resize_source_info info;
        struct resize_error err;
        assert_int_equal(run(b, len, s, 2, &outs, &info, &err), RESIZE_OK);
        assert_int_equal(info.pages, 3);
        assert_int_equal(info.width, 120);
        assert_string_equal(outs.o[0].format, formats[k]);
        assert_int_equal(outs.o[0].width, 120);
        assert_int_equal(outs.o[0].height, 80); /* one frame, not a strip of three */
        assert_int_equal(outs.o[1].width, 60);
        assert_int_equal(outs.o[1].height, 40);
        for (size_t i = 0; i < 2; i++) {
            VipsImage *d = decode(&outs.o[i]);
            assert_int_equal(vips_image_get_n_pages(d), 1);
            assert_int_equal(d->Bands, 3); /* GIF loads with alpha; opaque alpha is dropped */
            assert_int_equal(d->Ysize, outs.o[i].height);
            assert_rgb(d, d->Xsize / 2, d->Ysize / 2, 255, 0, 0, 12); /* frame 1 is red */
            g_object_unref(d);
        }
        outs_free(&outs);
        g_free(b);
    }
    g_object_unref(anim);
    assert_no_leak();
}

/* ------------------------------------------------------------------------------------------ */
/* Formats in and out                                                                           */

static void test_output_formats(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(1000, 750, ".jpg", &len);
    struct conf_size s[4] = {size_of("j", 400, 400, CONF_FIT_INSIDE, CONF_FORMAT_JPEG),
                             size_of("w", 400, 400, CONF_FIT_INSIDE, CONF_FORMAT_WEBP),
                             size_of("a", 400, 400, CONF_FIT_INSIDE, CONF_FORMAT_AVIF),
                             size_of("p", 400, 400, CONF_FIT_INSIDE, CONF_FORMAT_PNG)};
    static const char *const fmt[] = {"jpeg", "webp", "avif", "png"};
    static const char *const mime[] = {"image/jpeg", "image/webp", "image/avif", "image/png"};
    static const char *const ext[] = {"jpg", "webp", "avif", "png"};
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(jpg, len, s, 4, &outs, NULL, &err), RESIZE_OK);
    for (size_t i = 0; i < 4; i++) {
        assert_string_equal(outs.o[i].format, fmt[i]);
        assert_string_equal(outs.o[i].mime, mime[i]);
        assert_string_equal(outs.o[i].ext, ext[i]);
        /* what the bytes say they are */
        assert_string_equal(resize_sniff_format(outs.o[i].data, outs.o[i].len), fmt[i]);
        VipsImage *d = decode(&outs.o[i]);
        assert_int_equal(d->Xsize, 400);
        assert_int_equal(d->Ysize, 300);
        assert_int_equal(d->Bands, 3);
        assert_int_equal(d->BandFmt, VIPS_FORMAT_UCHAR);
        g_object_unref(d);
    }
    outs_free(&outs);
    g_free(jpg);
    assert_no_leak();
}

static void test_input_formats_auto(void **state)
{
    (void)state;
    VipsImage *im = photo(800, 600);
    struct {
        const char *suffix;
        const char *in_format, *out_format;
    } cases[] = {
        {".jpg", "jpeg", "jpeg"}, {".png", "png", "png"},   {".webp", "webp", "webp"},
        {".gif", "gif", "png"},   {".tif", "tiff", "jpeg"}, {"heic", "heif", "jpeg"},
        {"avif", "avif", "avif"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len;
        unsigned char *b = cases[k].suffix[0] == '.'
                               ? save(im, cases[k].suffix, &len)
                               : save_heif(im,
                                           strcmp(cases[k].suffix, "heic") == 0
                                               ? VIPS_FOREIGN_HEIF_COMPRESSION_HEVC
                                               : VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                                           &len);
        struct conf_size s[2] = {size_of("t", 150, 150, CONF_FIT_COVER, CONF_FORMAT_AUTO),
                                 size_of("m", 640, 640, CONF_FIT_INSIDE, CONF_FORMAT_AUTO)};
        struct outs outs = {0};
        struct resize_source_info info;
        struct resize_error err;
        enum resize_status st = run(b, len, s, 2, &outs, &info, &err);
        if (st != RESIZE_OK)
            fail_msg("%s: %s", cases[k].in_format, err.reason);
        assert_string_equal(info.format, cases[k].in_format);
        assert_int_equal(info.width, 800);
        assert_int_equal(info.height, 600);
        for (size_t i = 0; i < 2; i++) {
            if (strcmp(outs.o[i].format, cases[k].out_format) != 0)
                fail_msg("%s in: %s out, expected %s", cases[k].in_format, outs.o[i].format,
                         cases[k].out_format);
            /* the name the gateway and the function give a rendition before it is made */
            if (strcmp(outs.o[i].ext, resize_output_extension(&s[i], info.format)) != 0)
                fail_msg("%s in: .%s written, resize_output_extension says .%s", cases[k].in_format,
                         outs.o[i].ext, resize_output_extension(&s[i], info.format));
            VipsImage *d = decode(&outs.o[i]);
            assert_int_equal(d->Xsize, i == 0 ? 150 : 640);
            assert_int_equal(d->Ysize, i == 0 ? 150 : 480);
            g_object_unref(d);
        }
        outs_free(&outs);
        g_free(b);
    }
    g_object_unref(im);
    assert_no_leak();
}

static void test_metadata_stripped(void **state)
{
    (void)state;
    VipsImage *im = photo(600, 400);
    VipsBlob *srgb = NULL;
    assert_int_equal(vips_profile_load("srgb", &srgb, NULL), 0);
    size_t plen;
    const void *pdata = vips_area_get_data(VIPS_AREA(srgb), &plen, NULL, NULL, NULL);
    VipsImage *t1 = with_blob(im, VIPS_META_ICC_NAME, pdata, plen);
    vips_area_unref(VIPS_AREA(srgb));
    static const char xmp[] = "<x:xmpmeta xmlns:x=\"adobe:ns:meta/\"><rdf:RDF "
                              "xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"/>"
                              "</x:xmpmeta>";
    VipsImage *t2 = with_blob(t1, VIPS_META_XMP_NAME, xmp, sizeof(xmp) - 1);
    VipsImage *t3 = with_int(t2, "orientation", 1);
    vips_image_set_string(t3, "exif-ifd0-Make", "SecretCam");
    vips_image_set_string(t3, "exif-ifd0-Artist", "Somebody Private");
    size_t len;
    unsigned char *jpg = save(t3, ".jpg", &len);
    VipsImage *check = vips_image_new_from_buffer(jpg, len, "", NULL);
    assert_true(vips_image_get_typeof(check, VIPS_META_EXIF_NAME) != 0);
    assert_true(vips_image_get_typeof(check, VIPS_META_ICC_NAME) != 0);
    assert_true(vips_image_get_typeof(check, VIPS_META_XMP_NAME) != 0);
    g_object_unref(check);
    VipsImage *all[] = {im, t1, t2, t3};
    for (size_t i = 0; i < 4; i++)
        g_object_unref(all[i]);

    struct conf_size s[4] = {size_of("j", 300, 300, CONF_FIT_INSIDE, CONF_FORMAT_JPEG),
                             size_of("p", 300, 300, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("w", 300, 300, CONF_FIT_INSIDE, CONF_FORMAT_WEBP),
                             size_of("a", 300, 300, CONF_FIT_INSIDE, CONF_FORMAT_AVIF)};
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(jpg, len, s, 4, &outs, NULL, &err), RESIZE_OK);
    for (size_t i = 0; i < 4; i++) {
        VipsImage *d = decode(&outs.o[i]);
        static const char *const fields[] = {VIPS_META_EXIF_NAME, VIPS_META_ICC_NAME,
                                             VIPS_META_XMP_NAME, VIPS_META_IPTC_NAME};
        for (size_t f = 0; f < 4; f++)
            if (vips_image_get_typeof(d, fields[f]))
                fail_msg("%s output has %s", outs.o[i].format, fields[f]);
        g_object_unref(d);
        if (memmem(outs.o[i].data, outs.o[i].len, "SecretCam", 9) ||
            memmem(outs.o[i].data, outs.o[i].len, "Exif\0\0", 6))
            fail_msg("%s output carries EXIF", outs.o[i].format);
    }
    outs_free(&outs);
    g_free(jpg);
    assert_no_leak();
}

static void test_quality_changes_size(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(1200, 900, ".png", &len);
    enum conf_format f[3] = {CONF_FORMAT_JPEG, CONF_FORMAT_WEBP, CONF_FORMAT_AVIF};
    for (int k = 0; k < 3; k++) {
        struct conf_size s[2] = {size_of("lo", 600, 600, CONF_FIT_INSIDE, f[k]),
                                 size_of("hi", 600, 600, CONF_FIT_INSIDE, f[k])};
        s[0].quality = 30;
        s[0].quality_set = true;
        s[1].quality = 95;
        s[1].quality_set = true;
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(png, len, s, 2, &outs, NULL, &err), RESIZE_OK);
        if (!(outs.o[0].len * 3 / 2 < outs.o[1].len))
            fail_msg("%s: q30 gives %zu bytes, q95 %zu", outs.o[0].format, outs.o[0].len,
                     outs.o[1].len);
        outs_free(&outs);
    }
    /* [resize] quality (not named by the size) for AVIF: 80 becomes 55, smaller than 80 as
     * given by the size itself. */
    struct conf_size s[2] = {size_of("default", 600, 600, CONF_FIT_INSIDE, CONF_FORMAT_AVIF),
                             size_of("named", 600, 600, CONF_FIT_INSIDE, CONF_FORMAT_AVIF)};
    s[1].quality_set = true;
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(png, len, s, 2, &outs, NULL, &err), RESIZE_OK);
    assert_true(outs.o[0].len < outs.o[1].len);
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

/* ------------------------------------------------------------------------------------------ */
/* Hostile input                                                                                */

static void test_truncated_jpeg(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(1600, 1200, ".jpg", &len);
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    size_t cuts[] = {len / 2, len - 200, 2000};
    for (size_t i = 0; i < 3; i++) {
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(jpg, cuts[i], s, 3, &outs, NULL, &err), RESIZE_FAILED);
        assert_int_equal(outs.n, 0); /* no half-grey rendition */
        assert_reason(&err, "truncated JPEG");
    }
    g_free(jpg);
    assert_no_leak();
}

static void test_truncated_and_corrupt_png(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(800, 600, ".png", &len);
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    /* in the middle; in the last bytes of the compressed data (libpng calls that a benign
     * error and returns the picture with its last row damaged); just the IEND chunk; the
     * header only */
    size_t cuts[] = {len / 2, len - 20, len - 12, 100};
    for (size_t i = 0; i < 4; i++) {
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(png, cuts[i], s, 3, &outs, NULL, &err), RESIZE_FAILED);
        assert_int_equal(outs.n, 0);
        assert_reason(&err, "truncated PNG");
    }
    /* a flipped bit inside the image data: a CRC / zlib error */
    unsigned char *bad = malloc(len);
    memcpy(bad, png, len);
    bad[len / 2] ^= 0x10;
    struct outs outs = {0};
    struct resize_error err;
    assert_int_equal(run(bad, len, s, 3, &outs, NULL, &err), RESIZE_FAILED);
    assert_int_equal(outs.n, 0);
    assert_reason(&err, "corrupt PNG data");
    free(bad);
    g_free(png);
    assert_no_leak();
}

static void test_truncated_other_formats(void **state)
{
    (void)state;
    VipsImage *im = photo(400, 300);
    struct {
        const char *suffix, *reason;
    } cases[] = {{".gif", "truncated GIF"},
                 {".webp", "truncated WebP"},
                 {".tif", "TIFF"},
                 {"heic", "HEIF"},
                 {"avif", "AVIF"}};
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len;
        unsigned char *b = cases[k].suffix[0] == '.'
                               ? save(im, cases[k].suffix, &len)
                               : save_heif(im,
                                           strcmp(cases[k].suffix, "heic") == 0
                                               ? VIPS_FOREIGN_HEIF_COMPRESSION_HEVC
                                               : VIPS_FOREIGN_HEIF_COMPRESSION_AV1,
                                           &len);
        struct conf_size s[1] = {size_of("m", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_AUTO)};
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(run(b, len / 2, s, 1, &outs, NULL, &err), RESIZE_FAILED);
        assert_int_equal(outs.n, 0);
        assert_reason(&err, cases[k].reason);
        g_free(b);
    }
    g_object_unref(im);
    assert_no_leak();
}

static void test_not_images(void **state)
{
    (void)state;
    unsigned char random_bytes[4096];
    srand(1234);
    for (size_t i = 0; i < sizeof(random_bytes); i++)
        random_bytes[i] = (unsigned char)(rand() >> 7);
    random_bytes[0] = 'x'; /* not by chance a magic number */
    static const char text[] = "Dear all,\nplease find the report attached.\n";
    static const char zip[] = "PK\x03\x04\x14\0\0\0\x08\0";
    static const char html[] = "<!DOCTYPE html><html><body><svg></svg></body></html>";
    struct {
        const void *data;
        size_t len;
    } cases[] = {{"", 0},
                 {random_bytes, sizeof(random_bytes)},
                 {text, sizeof(text) - 1},
                 {zip, 10},
                 {html, sizeof(html) - 1},
                 {NULL, 0}};
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outs outs = {0};
        struct resize_source_info info;
        struct resize_error err;
        assert_int_equal(run(cases[i].data, cases[i].len, s, 3, &outs, &info, &err),
                         RESIZE_NOT_IMAGE);
        assert_string_equal(err.reason, "not an image");
        assert_null(info.format);
        assert_int_equal(outs.n, 0);
    }
    assert_no_leak();
}

static void test_refused_formats(void **state)
{
    (void)state;
    static const char svg[] = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
                              "width=\"100\" height=\"100\"><rect width=\"100\" height=\"100\"/>"
                              "</svg>\n";
    static const char pdf[] = "%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
    static const char bmp[] = "BM\x3A\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x01\0\0\0\x01\0\0\0"
                              "\x01\0\x18\0\0\0\0\0\x04\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"
                              "\0\0\xFF\0";
    struct {
        const void *data;
        size_t len;
        const char *reason;
        const char *format;
    } cases[] = {{svg, sizeof(svg) - 1, "unsupported format: SVG", "svg"},
                 {pdf, sizeof(pdf) - 1, "unsupported format: PDF", "pdf"},
                 {bmp, sizeof(bmp) - 1, "unsupported format: BMP", "bmp"}};
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct outs outs = {0};
        struct resize_source_info info;
        struct resize_error err;
        assert_int_equal(run(cases[i].data, cases[i].len, s, 3, &outs, &info, &err),
                         RESIZE_REFUSED);
        assert_string_equal(err.reason, cases[i].reason);
        assert_string_equal(info.format, cases[i].format);
        assert_int_equal(outs.n, 0);
    }
    assert_no_leak();
}

static uint32_t crc32_of(const unsigned char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static void check_bomb(const unsigned char *data, size_t len, const char *format)
{
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct outs outs = {0};
    struct resize_source_info info;
    struct resize_error err;
    struct timespec t0;
    size_t mem_before = vips_tracked_get_mem(); /* see test_probe_bomb */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum resize_status st = run(data, len, s, 3, &outs, &info, &err);
    double ms = ms_since(&t0);
    size_t mem_after = vips_tracked_get_mem();
    print_message("%s header claiming 60000x60000 in %zu bytes: refused in %.2f ms (%s)\n", format,
                  len, ms, err.reason);
    assert_int_equal(st, RESIZE_REFUSED);
    assert_string_equal(err.reason, "image is 60000x60000 (3600 MP), limit is 100 MP");
    assert_int_equal(info.width, 60000);
    assert_int_equal(info.height, 60000);
    assert_int_equal(outs.n, 0);
    assert_true(ms < 1000);
    assert_true(mem_after < mem_before + (1u << 20)); /* no pixel memory */
}

/* A real PNG whose IHDR (with a correct CRC) claims 60000x60000. */
static void test_png_bomb_header(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(32, 32, ".png", &len);
    assert_memory_equal(png + 12, "IHDR", 4);
    put_be32(png + 16, 60000);
    put_be32(png + 20, 60000);
    put_be32(png + 29, crc32_of(png + 12, 17));
    check_bomb(png, len, "PNG");
    g_free(png);
    assert_no_leak();
}

/* A real JPEG whose SOF claims 60000x60000. */
static void test_jpeg_bomb_header(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(64, 64, ".jpg", &len);
    size_t i;
    for (i = 2; i + 9 < len; i++)
        if (jpg[i] == 0xFF && (jpg[i + 1] == 0xC0 || jpg[i + 1] == 0xC2))
            break;
    assert_true(i + 9 < len);
    jpg[i + 5] = 0xEA; /* height 60000 */
    jpg[i + 6] = 0x60;
    jpg[i + 7] = 0xEA; /* width 60000 */
    jpg[i + 8] = 0x60;
    check_bomb(jpg, len, "JPEG");
    g_free(jpg);
    assert_no_leak();
}

static void test_pixel_limit_message(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(300, 200, ".png", &len);
    struct conf_size s[1] = {size_of("m", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_AUTO)};
    struct resize_options o = options_for(s, 1);
    struct outs outs = {0};
    struct resize_error err;
    o.max_pixels = 50000;
    assert_int_equal(resize_buffer(png, len, &o, collect, &outs, NULL, &err), RESIZE_REFUSED);
    assert_string_equal(err.reason, "image is 300x200 (60000 pixels), limit is 50000 pixels");
    o.max_pixels = 60000; /* exactly at the limit is fine */
    assert_int_equal(resize_buffer(png, len, &o, collect, &outs, NULL, &err), RESIZE_OK);
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

static void test_max_file_bytes(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(300, 200, ".png", &len);
    struct conf_size s[1] = {size_of("m", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_AUTO)};
    struct resize_options o = options_for(s, 1);
    struct resize_error err;
    o.max_file_bytes = len - 1;
    assert_int_equal(resize_buffer(png, len, &o, collect, &(struct outs){0}, NULL, &err),
                     RESIZE_REFUSED);
    char want[128];
    snprintf(want, sizeof(want), "file is %zu bytes, limit is %zu bytes", len, len - 1);
    assert_string_equal(err.reason, want);

    /* "file is 120 MB, limit is 100 MB", checked on a descriptor without reading the file:
     * a sparse file of 120 MiB that starts like a PNG. */
    char path[] = "/tmp/s3imgfs-test-resize-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, png, 64), 64);
    assert_int_equal(ftruncate(fd, 120 << 20), 0);
    o.max_file_bytes = 100 << 20;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(resize_fd(fd, &o, collect, &(struct outs){0}, NULL, &err), RESIZE_REFUSED);
    assert_true(ms_since(&t0) < 500);
    assert_string_equal(err.reason, "file is 120 MB, limit is 100 MB");
    o.max_file_bytes = (100 << 20) + (1 << 19);
    assert_int_equal(resize_fd(fd, &o, collect, &(struct outs){0}, NULL, &err), RESIZE_REFUSED);
    assert_string_equal(err.reason, "file is 120 MB, limit is 100.5 MB");
    close(fd);
    g_free(png);
    assert_no_leak();
}

/* resize_probe on the first bytes of a file: what it is, limits, the memory its decode holds. */
static void test_probe_header_only(void **state)
{
    (void)state;
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct resize_options o = options_for(s, 3);
    struct resize_source_info info;
    struct resize_error err;
    size_t len;
    unsigned char *jpg = photo_file(3000, 2000, ".jpg", &len);
    assert_true(len > 4096);

    /* The first 4 KiB of a (pretended) 40 MB file tell its size. */
    assert_int_equal(resize_probe(jpg, 4096, 40u << 20, &o, &info, &err), RESIZE_OK);
    assert_string_equal(info.format, "jpeg");
    assert_int_equal(info.width, 3000);
    assert_int_equal(info.height, 2000);
    assert_true(info.decode_bytes > 0);
    assert_string_equal(err.reason, "");

    /* Over max_pixels: refused with resize_buffer's reason, from the header alone. */
    o.max_pixels = 5000000;
    assert_int_equal(resize_probe(jpg, 4096, 40u << 20, &o, &info, &err), RESIZE_REFUSED);
    assert_string_equal(err.reason, "image is 3000x2000 (6 MP), limit is 5 MP");
    o.max_pixels = 100000000;

    /* Over max_file_bytes, from the total alone. */
    assert_int_equal(resize_probe(jpg, 4096, 120u << 20, &o, &info, &err), RESIZE_REFUSED);
    assert_string_equal(err.reason, "file is 120 MB, limit is 100 MB");

    /* The header cut by the end of the bytes given: not known, not an error. */
    assert_int_equal(resize_probe(jpg, 40, len, &o, &info, &err), RESIZE_OK);
    assert_string_equal(info.format, "jpeg");
    assert_int_equal(info.width, 0);
    assert_int_equal(info.height, 0);
    assert_string_equal(err.reason, "");
    /* ... but the same bytes as a whole file are a broken one. */
    assert_int_equal(resize_probe(jpg, 40, 40, &o, &info, &err), RESIZE_FAILED);
    assert_non_null(strstr(err.reason, "JPEG"));

    /* Not an image, a format not read here, and nonsense arguments. */
    assert_int_equal(resize_probe("hello, world\n", 13, 13, &o, &info, &err), RESIZE_NOT_IMAGE);
    const char svg[] = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"10\" height=\"10\"/>";
    assert_int_equal(resize_probe(svg, sizeof(svg) - 1, 5000, &o, &info, &err), RESIZE_REFUSED);
    assert_string_equal(err.reason, "unsupported format: SVG");
    assert_int_equal(resize_probe(jpg, 4096, 100, &o, &info, &err), RESIZE_FAILED);
    g_free(jpg);
    assert_no_leak();
}

/* A pixel bomb is refused from its first KiB, in milliseconds, without pixel memory. */
static void test_probe_bomb(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(32, 32, ".png", &len);
    put_be32(png + 16, 60000);
    put_be32(png + 20, 60000);
    put_be32(png + 29, crc32_of(png + 12, 17));
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct resize_options o = options_for(s, 3);
    struct resize_source_info info;
    struct resize_error err;
    struct timespec t0;
    /* libvips' tracked memory is the process's: the threads of the test before may still be
     * freeing theirs, so what the probe adds is what counts. */
    size_t mem_before = vips_tracked_get_mem();
    clock_gettime(CLOCK_MONOTONIC, &t0);
    enum resize_status st = resize_probe(png, len < 1024 ? len : 1024, 90u << 20, &o, &info, &err);
    double ms = ms_since(&t0);
    size_t mem_after = vips_tracked_get_mem();
    assert_int_equal(st, RESIZE_REFUSED);
    assert_string_equal(err.reason, "image is 60000x60000 (3600 MP), limit is 100 MP");
    assert_true(ms < 1000);
    assert_true(mem_after < mem_before + (1u << 20)); /* no pixel memory */
    g_free(png);
    assert_no_leak();
}

/* decode_bytes: a progressive JPEG holds all its coefficients while it decodes, a baseline one
 * a few rows; and the estimate grows with the picture. */
static void test_probe_decode_bytes(void **state)
{
    (void)state;
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct resize_options o = options_for(s, 3);
    VipsImage *im = rgb(3000, 2000, 120, 80, 40);
    size_t base_len, prog_len, small_len;
    unsigned char *base = save(im, ".jpg", &base_len);
    unsigned char *prog = save(im, ".jpg[interlace]", &prog_len);
    g_object_unref(im);
    im = rgb(1500, 1000, 120, 80, 40);
    unsigned char *small = save(im, ".jpg[interlace]", &small_len);
    g_object_unref(im);
    struct resize_source_info b, p, sm;
    struct resize_error err;
    assert_int_equal(resize_probe(base, base_len, base_len, &o, &b, &err), RESIZE_OK);
    assert_int_equal(resize_probe(prog, prog_len, prog_len, &o, &p, &err), RESIZE_OK);
    assert_int_equal(resize_probe(small, small_len, small_len, &o, &sm, &err), RESIZE_OK);
    print_message("decode estimate 3000x2000: baseline %.1f MB, progressive %.1f MB; "
                  "1500x1000 progressive %.1f MB (budget %.0f MB)\n",
                  b.decode_bytes / 1e6, p.decode_bytes / 1e6, sm.decode_bytes / 1e6,
                  resize_decode_budget() / 1e6);
    assert_true(p.decode_bytes > b.decode_bytes + 6000000); /* >= 1 byte per pixel more */
    assert_true(sm.decode_bytes < p.decode_bytes);
    assert_true(p.decode_bytes < resize_decode_budget());
    g_free(base);
    g_free(prog);
    g_free(small);
    assert_no_leak();
}

/* 1x200000: far outside any usual aspect ratio; must not crash and must give valid images. */
static void test_extreme_strip(void **state)
{
    (void)state;
    VipsImage *xyz = NULL, *y = NULL, *c = NULL, *im = NULL;
    assert_int_equal(vips_xyz(&xyz, 1, 200000, NULL), 0);
    assert_int_equal(vips_extract_band(xyz, &y, 1, NULL), 0);
    assert_int_equal(vips_linear1(y, &c, 255.0 / 200000, 0, "uchar", TRUE, NULL), 0);
    assert_int_equal(vips_copy(c, &im, "interpretation", VIPS_INTERPRETATION_B_W, NULL), 0);
    size_t len;
    unsigned char *png = save(im, ".png", &len);
    VipsImage *all[] = {xyz, y, c, im};
    for (size_t i = 0; i < 4; i++)
        g_object_unref(all[i]);
    struct conf_size s[4];
    default_sizes(s, CONF_FORMAT_AUTO);
    s[3] = size_of("webp", 640, 640, CONF_FIT_INSIDE, CONF_FORMAT_WEBP);
    struct outs outs = {0};
    struct resize_error err;
    enum resize_status st = run(png, len, s, 4, &outs, NULL, &err);
    if (st != RESIZE_OK)
        fail_msg("1x200000: %s", err.reason);
    static const int want[4][2] = {{1, 1}, {1, 640}, {1, 1280}, {1, 640}};
    expect_dims(&outs, want, 4);
    /* the gradient is still a gradient */
    VipsImage *d = decode(&outs.o[2]);
    double a[4], b[4];
    pixel(d, 0, 5, a);
    pixel(d, 0, 1274, b);
    assert_true(b[0] - a[0] > 200);
    g_object_unref(d);
    outs_free(&outs);
    g_free(png);
    assert_no_leak();
}

/* Mean of the squared differences of two pictures of the same size, as PSNR in dB. */
static double psnr(VipsImage *a, VipsImage *b)
{
    VipsImage *d = NULL, *sq = NULL;
    double ms = 0;
    assert_int_equal(vips_subtract(a, b, &d, NULL), 0);
    assert_int_equal(vips_multiply(d, d, &sq, NULL), 0);
    assert_int_equal(vips_avg(sq, &ms, NULL), 0);
    g_object_unref(d);
    g_object_unref(sq);
    return ms > 0 ? 10 * log10(255.0 * 255.0 / ms) : 99;
}

/* A size is made from the smallest picture of a larger size at least twice as large (here the
 * thumbnail from the medium size, the medium from the large one), which changes nothing one
 * could see: the thumbnail matches the one made alone, straight from the decoded picture. Two
 * sizes of the same size share one picture: the same bytes. */
static void test_derived_sizes(void **state)
{
    (void)state;
    size_t len;
    unsigned char *png = photo_file(2400, 1600, ".png", &len);
    struct conf_size s[4] = {size_of("thumbnail", 150, 150, CONF_FIT_COVER, CONF_FORMAT_PNG),
                             size_of("medium", 640, 640, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("large", 1280, 1280, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("again", 640, 640, CONF_FIT_INSIDE, CONF_FORMAT_PNG)};
    struct outs outs = {0}, alone = {0};
    struct resize_error err;
    assert_int_equal(run(png, len, s, 4, &outs, NULL, &err), RESIZE_OK);
    assert_int_equal(run(png, len, s, 1, &alone, NULL, &err), RESIZE_OK);
    static const int want[4][2] = {{150, 150}, {640, 427}, {1280, 853}, {640, 427}};
    expect_dims(&outs, want, 4);
    expect_size(&alone.o[0], 150, 150);
    assert_int_equal(outs.o[1].len, outs.o[3].len);
    assert_memory_equal(outs.o[1].data, outs.o[3].data, outs.o[1].len);
    VipsImage *a = decode(&outs.o[0]), *b = decode(&alone.o[0]);
    double db = psnr(a, b);
    if (db < 40)
        fail_msg("thumbnail via the medium size vs alone: %.1f dB", db);
    g_object_unref(a);
    g_object_unref(b);
    outs_free(&outs);
    outs_free(&alone);
    g_free(png);
    assert_no_leak();
}

/* Resampling leaves the picture where it was, at any factor: four quadrants of four colours
 * (the horizontal pass runs on the transposed picture), from 1.5 to 40 times smaller, from a
 * PNG (no shrink on load) and a JPEG; beyond a factor of 6 a box shrink comes first. */
static void test_resampling_geometry(void **state)
{
    (void)state;
    static const double quad[4][3] = {{220, 30, 30}, {30, 220, 30}, {30, 30, 220}, {230, 230, 230}};
    VipsImage *im = rgb(3000, 2000, quad[0][0], quad[0][1], quad[0][2]);
    rect(im, 1500, 0, 1500, 1000, quad[1][0], quad[1][1], quad[1][2]);
    rect(im, 0, 1000, 1500, 1000, quad[2][0], quad[2][1], quad[2][2]);
    rect(im, 1500, 1000, 1500, 1000, quad[3][0], quad[3][1], quad[3][2]);
    size_t lens[2];
    unsigned char *files[2] = {save(im, ".png", &lens[0]), save(im, ".jpg[Q=95]", &lens[1])};
    g_object_unref(im);
    struct conf_size s[5] = {size_of("a", 2000, 2000, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("b", 1000, 1000, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("c", 450, 450, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("d", 75, 75, CONF_FIT_INSIDE, CONF_FORMAT_PNG),
                             size_of("e", 100, 100, CONF_FIT_COVER, CONF_FORMAT_PNG)};
    static const int want[5][2] = {{2000, 1333}, {1000, 667}, {450, 300}, {75, 50}, {100, 100}};
    for (int f = 0; f < 2; f++) {
        /* all at once (each from the next larger one), then each alone (from the source) */
        for (size_t first = 0; first <= 5; first++) {
            size_t from = first == 5 ? 0 : first, count = first == 5 ? 5 : 1;
            struct outs outs = {0};
            struct resize_error err;
            enum resize_status st = run(files[f], lens[f], s + from, count, &outs, NULL, &err);
            if (st != RESIZE_OK)
                fail_msg("%s: %s", f ? "JPEG" : "PNG", err.reason);
            for (size_t i = 0; i < count; i++) {
                const int *wh = want[from + i];
                expect_size(&outs.o[i], wh[0], wh[1]);
                VipsImage *d = decode(&outs.o[i]);
                for (int q = 0; q < 4; q++) /* the middle of each quadrant */
                    assert_rgb(d, wh[0] * (q % 2 ? 3 : 1) / 4, wh[1] * (q / 2 ? 3 : 1) / 4,
                               quad[q][0], quad[q][1], quad[q][2], 6);
                g_object_unref(d);
            }
            outs_free(&outs);
        }
    }
    g_free(files[0]);
    g_free(files[1]);
    assert_no_leak();
}

/* ------------------------------------------------------------------------------------------ */
/* File descriptors, callers, options                                                           */

static void test_resize_fd(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(1000, 800, ".jpg", &len);
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct resize_options o = options_for(s, 3);

    /* a regular file, with its offset somewhere else (read from 0 anyway, offset untouched) */
    char path[] = "/tmp/s3imgfs-test-resize-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    assert_int_equal(write(fd, jpg, len), (ssize_t)len);
    assert_int_equal(lseek(fd, 100, SEEK_SET), 100);
    struct outs outs = {0};
    struct resize_source_info info;
    struct resize_error err;
    assert_int_equal(resize_fd(fd, &o, collect, &outs, &info, &err), RESIZE_OK);
    assert_int_equal(lseek(fd, 0, SEEK_CUR), 100);
    assert_int_equal(outs.n, 3);
    assert_int_equal(outs.o[1].width, 640);
    assert_int_equal(outs.o[1].height, 512);
    assert_int_equal(info.width, 1000);
    outs_free(&outs);
    close(fd);

    /* a pipe */
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        size_t off = 0;
        while (off < len) {
            ssize_t n = write(p[1], jpg + off, len - off);
            if (n <= 0)
                _exit(1);
            off += (size_t)n;
        }
        _exit(0);
    }
    close(p[1]);
    assert_int_equal(resize_fd(p[0], &o, collect, &outs, NULL, &err), RESIZE_OK);
    close(p[0]);
    waitpid(pid, NULL, 0);
    assert_int_equal(outs.n, 3);
    assert_int_equal(outs.o[2].width, 1000);
    outs_free(&outs);

    /* a bad descriptor */
    assert_int_equal(resize_fd(-1, &o, collect, &outs, NULL, &err), RESIZE_FAILED);
    assert_reason(&err, "cannot read the file");
    g_free(jpg);
    assert_no_leak();
}

static void test_stopped_by_caller(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(800, 600, ".jpg", &len);
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct outs outs = {.stop_at = 1};
    struct resize_error err;
    assert_int_equal(run(jpg, len, s, 3, &outs, NULL, &err), RESIZE_FAILED);
    assert_string_equal(err.reason, "stopped by the caller");
    assert_int_equal(outs.n, 1);
    outs_free(&outs);
    g_free(jpg);
    assert_no_leak();
}

static void test_bad_options(void **state)
{
    (void)state;
    size_t len;
    unsigned char *jpg = photo_file(80, 60, ".jpg", &len);
    struct resize_error err;
    assert_int_equal(resize_buffer(jpg, len, NULL, collect, NULL, NULL, &err), RESIZE_FAILED);
    assert_string_equal(err.reason, "no sizes to make");
    struct conf_size s[1] = {size_of("none", 0, 0, CONF_FIT_INSIDE, CONF_FORMAT_AUTO)};
    struct resize_options o = options_for(s, 1);
    assert_int_equal(resize_buffer(jpg, len, &o, collect, NULL, NULL, &err), RESIZE_FAILED);
    assert_reason(&err, "size 'none'");
    s[0] = size_of("cover", 100, 0, CONF_FIT_COVER, CONF_FORMAT_AUTO);
    assert_int_equal(resize_buffer(jpg, len, &o, collect, NULL, NULL, &err), RESIZE_FAILED);
    assert_reason(&err, "size 'cover'");
    o.size_count = 0;
    assert_int_equal(resize_buffer(jpg, len, &o, collect, NULL, NULL, &err), RESIZE_FAILED);
    /* no callback: renditions are made and dropped */
    s[0] = size_of("ok", 10, 10, CONF_FIT_INSIDE, CONF_FORMAT_AUTO);
    o.size_count = 1;
    assert_int_equal(resize_buffer(jpg, len, &o, NULL, NULL, NULL, &err), RESIZE_OK);
    g_free(jpg);
    assert_no_leak();
}

/* ------------------------------------------------------------------------------------------ */
/* Threads                                                                                      */

struct worker {
    int index;
    unsigned char *data;
    size_t len;
    int w, h;
    double r, g, b;
    int failures;
    char failure[256];
};

/* Runs fn on each of the n workers in a thread of its own, fails with the first worker that
 * saw failures, and frees their inputs. */
static void run_workers(struct worker *wk, int n, void *(*fn)(void *))
{
    pthread_t th[8];
    assert_true(n <= 8);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_create(&th[i], NULL, fn, &wk[i]), 0);
    for (int i = 0; i < n; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < n; i++) {
        if (wk[i].failures)
            fail_msg("thread %d: %d failures, last: %s", i, wk[i].failures, wk[i].failure);
        g_free(wk[i].data);
    }
    assert_no_leak();
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    struct conf_size s[3];
    default_sizes(s, wk->index % 2 ? CONF_FORMAT_WEBP : CONF_FORMAT_AUTO);
    for (int round = 0; round < 4; round++) {
        struct outs outs = {0};
        struct resize_error err;
        struct resize_options o = options_for(s, 3);
        enum resize_status st = resize_buffer(wk->data, wk->len, &o, collect, &outs, NULL, &err);
        if (st != RESIZE_OK || outs.n != 3) {
            wk->failures++;
            snprintf(wk->failure, sizeof(wk->failure), "status %d: %.200s", st, err.reason);
            outs_free(&outs);
            continue;
        }
        for (size_t i = 0; i < 3; i++) {
            int ow, oh;
            resize_output_size(wk->w, wk->h, &s[i], &ow, &oh);
            VipsImage *d = vips_image_new_from_buffer(outs.o[i].data, outs.o[i].len, "", NULL);
            double *v = NULL;
            int n = 0;
            bool ok = d && d->Xsize == ow && d->Ysize == oh && outs.o[i].width == ow &&
                      vips_getpoint(d, &v, &n, ow / 2, oh / 2, NULL) == 0 && n >= 3 &&
                      fabs(v[0] - wk->r) < 8 && fabs(v[1] - wk->g) < 8 && fabs(v[2] - wk->b) < 8;
            if (!ok) {
                wk->failures++;
                snprintf(wk->failure, sizeof(wk->failure), "%s: %dx%d, expected %dx%d",
                         outs.o[i].name, d ? d->Xsize : -1, d ? d->Ysize : -1, ow, oh);
            }
            g_free(v);
            if (d)
                g_object_unref(d);
        }
        outs_free(&outs);
    }
    resize_thread_done();
    return NULL;
}

static void test_parallel_threads(void **state)
{
    (void)state;
    struct worker wk[4];
    static const double colours[4][3] = {
        {200, 30, 30}, {30, 200, 30}, {30, 30, 200}, {200, 200, 30}};
    static const int dims[4][2] = {{1600, 1200}, {900, 1600}, {700, 700}, {2000, 300}};
    static const char *const suffixes[4] = {".jpg[Q=95]", ".png", ".webp[Q=95]", ".jpg[Q=95]"};
    for (int i = 0; i < 4; i++) {
        wk[i] = (struct worker){.index = i,
                                .w = dims[i][0],
                                .h = dims[i][1],
                                .r = colours[i][0],
                                .g = colours[i][1],
                                .b = colours[i][2]};
        VipsImage *im = rgb(wk[i].w, wk[i].h, wk[i].r, wk[i].g, wk[i].b);
        wk[i].data = save(im, suffixes[i], &wk[i].len);
        g_object_unref(im);
    }
    run_workers(wk, 4, worker_main);
}

/* libvips' vertical reductions, as the engine runs them (vips_reducev on 8-bit pictures), in
 * four threads at once. Each builds and frees ORC vector programs, which ORC 0.4.33 cannot do
 * in two threads at once: without resize/orc_guard.c this loop corrupts the heap within a few
 * seconds (checked: 5 runs out of 5 died, SIGSEGV or "corrupted double-linked list"). The
 * engine's own threads reach the same code less often (its pictures take longer between two
 * reductions), which is why the gateway crashed only now and then. Checked too: the vector code
 * is on, i.e. the guard keeps it safe rather than having turned it off, and every reduction
 * gives the picture it should (a program written over by another thread would not). */
static void *reducev_worker(void *arg)
{
    struct worker *wk = arg;
    for (int round = 0; round < 2000 && !wk->failures; round++) {
        int h = 48 + round % 16;
        double factor = 1.0 + (round % 7) * 0.35;
        VipsImage *black = NULL, *grey = NULL, *pic = NULL, *out = NULL;
        void *pixels = NULL;
        size_t len = 0;
        bool ok = vips_black(&black, 32, h, "bands", 3, NULL) == 0 &&
                  vips_linear1(black, &grey, 1.0, wk->r, "uchar", TRUE, NULL) == 0 &&
                  vips_copy(grey, &pic, NULL) == 0 &&
                  vips_reducev(pic, &out, factor, "kernel", VIPS_KERNEL_LANCZOS3, NULL) == 0 &&
                  (pixels = vips_image_write_to_memory(out, &len)) != NULL;
        int want_h = (int)rint(h / factor);
        if (!ok || abs(out->Ysize - want_h) > 1 || len != (size_t)out->Xsize * out->Ysize * 3 ||
            abs(((unsigned char *)pixels)[len / 2] - (int)wk->r) > 1) {
            wk->failures++;
            snprintf(wk->failure, sizeof(wk->failure), "round %d: %s", round,
                     ok ? "wrong picture" : vips_error_buffer());
        }
        g_free(pixels);
        VipsImage *all[] = {out, pic, grey, black};
        for (size_t i = 0; i < 4; i++)
            if (all[i])
                g_object_unref(all[i]);
    }
    resize_thread_done();
    return NULL;
}

static void test_parallel_vector_code(void **state)
{
    (void)state;
    if (getenv("VIPS_NOVECTOR"))
        skip(); /* the environment turned the vector code off: nothing of ORC runs */
    assert_true(vips_vector_isenabled());
    struct worker wk[4];
    for (int i = 0; i < 4; i++)
        wk[i] = (struct worker){.index = i, .r = 40 + 50 * i};
    run_workers(wk, 4, reducev_worker);
}

/* Large progressive JPEGs decoded by three threads at once. Each holds all of its DCT
 * coefficients while it decodes (6 bytes a pixel at 4:4:4: 73 MB for 3500x3500), more than the
 * decoding budget for two of them: they take turns, and all come out right. */
static void *big_worker(void *arg)
{
    struct worker *wk = arg;
    struct conf_size s[2] = {size_of("m", 640, 640, CONF_FIT_INSIDE, CONF_FORMAT_JPEG),
                             size_of("t", 150, 150, CONF_FIT_COVER, CONF_FORMAT_JPEG)};
    for (int round = 0; round < 2; round++) {
        struct outs outs = {0};
        struct resize_error err;
        struct resize_options o = options_for(s, 2);
        enum resize_status st = resize_buffer(wk->data, wk->len, &o, collect, &outs, NULL, &err);
        VipsImage *d = st == RESIZE_OK && outs.n == 2
                           ? vips_image_new_from_buffer(outs.o[0].data, outs.o[0].len, "", NULL)
                           : NULL;
        double *v = NULL;
        int n = 0;
        if (!d || d->Xsize != 640 || d->Ysize != 640 || outs.o[1].width != 150 ||
            vips_getpoint(d, &v, &n, 320, 320, NULL) != 0 || n < 3 || fabs(v[0] - wk->r) > 8 ||
            fabs(v[1] - wk->g) > 8 || fabs(v[2] - wk->b) > 8) {
            wk->failures++;
            snprintf(wk->failure, sizeof(wk->failure), "status %d: %.200s", st, err.reason);
        }
        g_free(v);
        if (d)
            g_object_unref(d);
        outs_free(&outs);
    }
    resize_thread_done();
    return NULL;
}

static void test_parallel_big_progressive(void **state)
{
    (void)state;
    static const double colours[3][3] = {{200, 30, 30}, {30, 200, 30}, {30, 30, 200}};
    struct worker wk[3];
    for (int i = 0; i < 3; i++) {
        wk[i] =
            (struct worker){.index = i, .r = colours[i][0], .g = colours[i][1], .b = colours[i][2]};
        VipsImage *im = rgb(3500, 3500, wk[i].r, wk[i].g, wk[i].b);
        wk[i].data = save(im, ".jpg[Q=90,interlace,subsample_mode=off]", &wk[i].len);
        g_object_unref(im);
    }
    run_workers(wk, 3, big_worker);
}

/* A field of /proc/self/status in KiB ("VmRSS:", "VmHWM:"). */
static long status_kb(const char *field)
{
    FILE *f = fopen("/proc/self/status", "r");
    assert_non_null(f);
    char line[256];
    long kb = -1;
    while (kb < 0 && fgets(line, sizeof(line), f))
        if (strncmp(line, field, strlen(field)) == 0)
            kb = strtol(line + strlen(field), NULL, 10);
    fclose(f);
    assert_true(kb >= 0);
    return kb;
}

/* The memory a large decode held goes back to the system once no resize runs, and five of them
 * leave RSS where one left it (the malloc settings of resize_global_init, docs/resize.md,
 * Memory). glibc's own dynamic thresholds kept such blocks: after the first one, the free top
 * of the arena stayed resident. */
static void test_memory_given_back(void **state)
{
    (void)state;
    if (OWN_MALLOC)
        skip();
    /* Progressive 4:4:4, 2800x2700: its DCT coefficients, 15 MB a component, are all held (and
     * zeroed, so resident) while it decodes, from malloc's arena (under its mmap threshold).
     * Made by the vips command: encoding it here would hold as much, before the baseline. */
    char path[] = "/tmp/s3imgfs-test-memory-XXXXXX.jpg";
    int tmp = mkstemps(path, 4);
    assert_true(tmp >= 0);
    close(tmp);
    char target[128];
    snprintf(target, sizeof(target), "%s[Q=90,interlace,subsample_mode=off]", path);
    gchar *argv[] = {"vips", "black", target, "2800", "2700", "--bands", "3", NULL};
    gint status = -1;
    GError *gerr = NULL;
    if (!g_spawn_sync(NULL, argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, NULL, NULL, &status,
                      &gerr))
        fail_msg("vips black: %s", gerr ? gerr->message : "?");
    assert_int_equal(status, 0);
    gchar *jpg = NULL;
    gsize len = 0;
    assert_true(g_file_get_contents(path, &jpg, &len, NULL));
    unlink(path);
    struct conf_size s[3];
    default_sizes(s, CONF_FORMAT_AUTO);
    struct resize_options o = options_for(s, 3);

    long before = status_kb("VmRSS:"), after_one = 0;
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    assert_true(fd >= 0 && write(fd, "5", 1) == 1); /* VmHWM from here */
    close(fd);
    for (int i = 0; i < 5; i++) {
        struct outs outs = {0};
        struct resize_error err;
        assert_int_equal(resize_buffer(jpg, len, &o, collect, &outs, NULL, &err), RESIZE_OK);
        outs_free(&outs);
        if (i == 0)
            after_one = status_kb("VmRSS:");
    }
    long peak = status_kb("VmHWM:"), after = status_kb("VmRSS:");
    g_free(jpg);
    print_message("RSS %ld MB, peak %ld MB while decoding, %ld MB after one, %ld MB after five\n",
                  before >> 10, peak >> 10, after_one >> 10, after >> 10);
    assert_true(peak - before > 40 * 1024); /* what the decodes held */
    assert_true(after_one - before < 16 * 1024);
    assert_true(after - before < 16 * 1024);
}

/* Several threads failing at once: each gets its own kind of reason. */
static void *failing_worker(void *arg)
{
    struct worker *wk = arg;
    struct conf_size s[1] = {size_of("m", 100, 100, CONF_FIT_INSIDE, CONF_FORMAT_AUTO)};
    for (int round = 0; round < 10; round++) {
        struct resize_error err;
        struct resize_options o = options_for(s, 1);
        enum resize_status st = resize_buffer(wk->data, wk->len, &o, NULL, NULL, NULL, &err);
        const char *want = wk->index % 2 ? "truncated PNG" : "truncated JPEG";
        if (st != RESIZE_FAILED || !strstr(err.reason, want) || strchr(err.reason, '\n')) {
            wk->failures++;
            snprintf(wk->failure, sizeof(wk->failure), "status %d: %.200s", st, err.reason);
        }
    }
    resize_thread_done();
    return NULL;
}

static void test_parallel_failures(void **state)
{
    (void)state;
    VipsImage *im = photo(600, 400);
    struct worker wk[4];
    for (int i = 0; i < 4; i++) {
        wk[i] = (struct worker){.index = i};
        size_t len;
        wk[i].data = save(im, i % 2 ? ".png" : ".jpg", &len);
        wk[i].len = len / 2;
    }
    g_object_unref(im);
    run_workers(wk, 4, failing_worker);
}

/* libvips starts without its modules (none of them is mapped after resize_global_init and a
 * JPEG and a PNG resized, in group_setup), and the HEIF one is opened when first needed; the
 * others never are. First in the list: any HEIF test before it would have opened the module. */
static void test_modules_opened_on_demand(void **state)
{
    (void)state;
    if (getenv("VIPSHOME"))
        skip(); /* the user's prefix: libvips opens its modules at start then (documented) */
    static const char *const others[] = {"vips-magick", "vips-poppler", "vips-openslide",
                                         "vips-jxl"};
    assert_false(mapped("/vips-heif."));
    assert_false(mapped("libheif"));
    bool can_read = false, can_write = false;
    resize_heif_support(&can_read, &can_write);
    assert_true(can_read);
    assert_true(can_write);
    assert_true(mapped("/vips-heif."));
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        assert_false(mapped(others[i]));
    /* The environment is as it was: no VIPSHOME for children. */
    assert_null(getenv("VIPSHOME"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modules_opened_on_demand),
        /* early: what tests before it leave in malloc's arena would hide what it measures */
        cmocka_unit_test_setup(test_memory_given_back, test_setup),
        cmocka_unit_test_setup(test_sniff, test_setup),
        cmocka_unit_test(test_format_of_mime),
        cmocka_unit_test_setup(test_size_rules, test_setup),
        cmocka_unit_test_setup(test_default_sizes_4000x3000, test_setup),
        cmocka_unit_test_setup(test_order_and_unsorted_sizes, test_setup),
        cmocka_unit_test_setup(test_never_enlarge, test_setup),
        cmocka_unit_test_setup(test_one_side_bounds, test_setup),
        cmocka_unit_test_setup(test_cover_centre_crop, test_setup),
        cmocka_unit_test_setup(test_cover_attention_entropy, test_setup),
        cmocka_unit_test_setup(test_exif_orientation, test_setup),
        cmocka_unit_test_setup(test_adobe_rgb_to_srgb, test_setup),
        cmocka_unit_test_setup(test_display_p3_to_srgb, test_setup),
        cmocka_unit_test_setup(test_srgb_profiles, test_setup),
        cmocka_unit_test_setup(test_unusable_profiles, test_setup),
        cmocka_unit_test_setup(test_cmyk_jpeg, test_setup),
        cmocka_unit_test_setup(test_greyscale_stays_grey, test_setup),
        cmocka_unit_test_setup(test_alpha_flattened_for_jpeg, test_setup),
        cmocka_unit_test_setup(test_alpha_kept_png_webp_avif, test_setup),
        cmocka_unit_test_setup(test_16bit_png, test_setup),
        cmocka_unit_test_setup(test_animated_first_frame, test_setup),
        cmocka_unit_test_setup(test_output_formats, test_setup),
        cmocka_unit_test_setup(test_input_formats_auto, test_setup),
        cmocka_unit_test_setup(test_metadata_stripped, test_setup),
        cmocka_unit_test_setup(test_quality_changes_size, test_setup),
        cmocka_unit_test_setup(test_truncated_jpeg, test_setup),
        cmocka_unit_test_setup(test_truncated_and_corrupt_png, test_setup),
        cmocka_unit_test_setup(test_truncated_other_formats, test_setup),
        cmocka_unit_test_setup(test_not_images, test_setup),
        cmocka_unit_test_setup(test_refused_formats, test_setup),
        cmocka_unit_test_setup(test_png_bomb_header, test_setup),
        cmocka_unit_test_setup(test_jpeg_bomb_header, test_setup),
        cmocka_unit_test_setup(test_pixel_limit_message, test_setup),
        cmocka_unit_test_setup(test_max_file_bytes, test_setup),
        cmocka_unit_test_setup(test_probe_header_only, test_setup),
        cmocka_unit_test_setup(test_probe_bomb, test_setup),
        cmocka_unit_test_setup(test_probe_decode_bytes, test_setup),
        cmocka_unit_test_setup(test_extreme_strip, test_setup),
        cmocka_unit_test_setup(test_derived_sizes, test_setup),
        cmocka_unit_test_setup(test_resampling_geometry, test_setup),
        cmocka_unit_test_setup(test_resize_fd, test_setup),
        cmocka_unit_test_setup(test_stopped_by_caller, test_setup),
        cmocka_unit_test_setup(test_bad_options, test_setup),
        cmocka_unit_test_setup(test_parallel_threads, test_setup),
        cmocka_unit_test_setup(test_parallel_vector_code, test_setup),
        cmocka_unit_test_setup(test_parallel_big_progressive, test_setup),
        cmocka_unit_test_setup(test_parallel_failures, test_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
