/* resize: what a file is, from its first bytes (magic numbers), never from its name. */
#include "resize_internal.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

static const struct resize_kind_info kinds[KIND_COUNT] = {
    [KIND_UNKNOWN] = {NULL, NULL, "unknown", false},
    [KIND_JPEG] = {"jpeg", "image/jpeg", "JPEG", true},
    [KIND_PNG] = {"png", "image/png", "PNG", true},
    [KIND_WEBP] = {"webp", "image/webp", "WebP", true},
    [KIND_GIF] = {"gif", "image/gif", "GIF", true},
    [KIND_TIFF] = {"tiff", "image/tiff", "TIFF", true},
    [KIND_HEIF] = {"heif", "image/heif", "HEIF", true},
    [KIND_AVIF] = {"avif", "image/avif", "AVIF", true},
    [KIND_SVG] = {"svg", "image/svg+xml", "SVG", false},
    [KIND_PDF] = {"pdf", "application/pdf", "PDF", false},
    [KIND_BMP] = {"bmp", "image/bmp", "BMP", false},
    [KIND_ICO] = {"ico", "image/vnd.microsoft.icon", "ICO", false},
    [KIND_JP2] = {"jp2", "image/jp2", "JPEG 2000", false},
    [KIND_JXL] = {"jxl", "image/jxl", "JPEG XL", false},
    [KIND_PSD] = {"psd", "image/vnd.adobe.photoshop", "PSD", false},
};

const struct resize_kind_info *resize_kind_info(enum resize_kind kind)
{
    if ((int)kind < 0 || kind >= KIND_COUNT)
        kind = KIND_UNKNOWN;
    return &kinds[kind];
}

static bool starts(const uint8_t *p, size_t len, const void *magic, size_t n)
{
    return len >= n && memcmp(p, magic, n) == 0;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ISO base media (HEIF, AVIF): an ftyp box first, with a major brand and compatible brands. */
static bool brand_in(const uint8_t *brand, const char *const *set)
{
    for (size_t i = 0; set[i]; i++)
        if (memcmp(brand, set[i], 4) == 0)
            return true;
    return false;
}

static const char *const avif_brands[] = {"avif", "avis", NULL};
static const char *const heic_brands[] = {"heic", "heix", "heim", "heis", "hevc",
                                          "hevx", "hevm", "hevs", NULL};
static const char *const heif_brands[] = {"mif1", "msf1", "mif2", "miaf", NULL};

/* 0: not HEIF; else KIND_HEIF or KIND_AVIF. *heic tells a HEVC-coded HEIF (image/heic). */
static enum resize_kind sniff_ftyp(const uint8_t *p, size_t len, bool *heic)
{
    *heic = false;
    if (len < 16 || memcmp(p + 4, "ftyp", 4) != 0)
        return KIND_UNKNOWN;
    uint32_t box = be32(p);
    if (box < 16 || box > 4096)
        return KIND_UNKNOWN;
    size_t end = box < len ? box : len;
    const uint8_t *major = p + 8;
    bool avif = brand_in(major, avif_brands);
    bool hevc = brand_in(major, heic_brands);
    bool generic = brand_in(major, heif_brands);
    if (!avif && !hevc && !generic)
        return KIND_UNKNOWN; /* mp4, mov, jp2, cr3, ... */
    if (generic) {
        for (size_t off = 16; off + 4 <= end; off += 4) {
            if (brand_in(p + off, avif_brands))
                avif = true;
            else if (brand_in(p + off, heic_brands))
                hevc = true;
        }
    }
    if (avif && !brand_in(major, heic_brands))
        return KIND_AVIF;
    *heic = hevc;
    return KIND_HEIF;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f';
}

static const uint8_t *find_ci(const uint8_t *p, size_t len, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp((const char *)p + i, needle, n) == 0)
            return p + i;
    return NULL;
}

/* SVG: text starting with '<' (after a BOM and blanks) whose root <svg ...> is in the first KiB:
 * "<svg", "<?xml ...?><svg", "<!DOCTYPE svg ...", comments first. Not HTML with inline SVG. */
static bool sniff_svg(const uint8_t *p, size_t len)
{
    if (len > RESIZE_SNIFF_BYTES)
        len = RESIZE_SNIFF_BYTES;
    size_t i = 0;
    if (starts(p, len, "\xEF\xBB\xBF", 3))
        i = 3;
    while (i < len && is_space(p[i]))
        i++;
    if (i >= len || p[i] != '<')
        return false;
    const uint8_t *svg = NULL;
    for (const uint8_t *s = p + i; (s = find_ci(s, len - (size_t)(s - p), "<svg")); s += 4) {
        size_t after = (size_t)(s - p) + 4;
        if (after >= len || is_space(p[after]) || p[after] == '>' || p[after] == '/' ||
            p[after] == ':') {
            svg = s;
            break;
        }
    }
    if (!svg)
        return false;
    return !find_ci(p + i, (size_t)(svg - (p + i)), "<html");
}

enum resize_kind resize_sniff_kind(const void *data, size_t len)
{
    const uint8_t *p = data;
    if (!p || len < 4)
        return KIND_UNKNOWN;

    if (starts(p, len, "\xFF\xD8\xFF", 3))
        return KIND_JPEG;
    if (starts(p, len, "\x89PNG\r\n\x1A\n", 8))
        return KIND_PNG;
    if (starts(p, len, "GIF87a", 6) || starts(p, len, "GIF89a", 6))
        return KIND_GIF;
    if (len >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
        return KIND_WEBP;
    if (starts(p, len, "II*\0", 4) || starts(p, len, "MM\0*", 4) || /* classic TIFF */
        starts(p, len, "II+\0", 4) || starts(p, len, "MM\0+", 4))   /* BigTIFF */
        return KIND_TIFF;
    bool heic;
    enum resize_kind k = sniff_ftyp(p, len, &heic);
    if (k != KIND_UNKNOWN)
        return k;

    /* Recognised but refused. */
    if (starts(p, len, "%PDF-", 5))
        return KIND_PDF;
    if (starts(p, len, "\0\0\0\x0CjP  \r\n\x87\n", 12) || starts(p, len, "\xFF\x4F\xFF\x51", 4))
        return KIND_JP2;
    if (starts(p, len, "\xFF\x0A", 2) || starts(p, len, "\0\0\0\x0CJXL \r\n\x87\n", 12))
        return KIND_JXL;
    if (starts(p, len, "8BPS\0\x01", 6) || starts(p, len, "8BPS\0\x02", 6))
        return KIND_PSD;
    if (len >= 18 && p[0] == 'B' && p[1] == 'M') {
        uint32_t dib =
            (uint32_t)p[14] | (uint32_t)p[15] << 8 | (uint32_t)p[16] << 16 | (uint32_t)p[17] << 24;
        if (dib == 12 || dib == 16 || dib == 40 || dib == 52 || dib == 56 || dib == 64 ||
            dib == 108 || dib == 124)
            return KIND_BMP;
    }
    if (len >= 22 && p[0] == 0 && p[1] == 0 && (p[2] == 1 || p[2] == 2) && p[3] == 0 &&
        (p[4] | p[5] << 8) > 0 && p[9] == 0) /* ICO / CUR: count > 0, reserved byte 0 */
        return KIND_ICO;

    /* Common non-images, named so that nothing below mistakes them for one. */
    if (starts(p, len, "PK\x03\x04", 4) || starts(p, len, "\x1F\x8B", 2))
        return KIND_UNKNOWN;

    if (sniff_svg(p, len))
        return KIND_SVG;
    return KIND_UNKNOWN;
}

const char *resize_sniff_mime_of(enum resize_kind kind, const void *data, size_t len)
{
    if (kind == KIND_HEIF) {
        bool heic;
        sniff_ftyp(data, len, &heic);
        return heic ? "image/heic" : "image/heif";
    }
    return resize_kind_info(kind)->mime;
}

const char *resize_sniff_format(const void *data, size_t len)
{
    return resize_kind_info(resize_sniff_kind(data, len))->format;
}

const char *resize_sniff_mime(const void *data, size_t len)
{
    return resize_sniff_mime_of(resize_sniff_kind(data, len), data, len);
}

const char *resize_format_of_mime(const char *mime)
{
    static const struct {
        const char *mime, *format;
    } aliases[] = {{"image/jpg", "jpeg"}, {"image/pjpeg", "jpeg"}, {"image/heic", "heif"}};
    if (!mime)
        return NULL;
    size_t n = strcspn(mime, ";");
    while (n > 0 && (mime[n - 1] == ' ' || mime[n - 1] == '\t'))
        n--;
    for (int k = 0; k < KIND_COUNT; k++)
        if (kinds[k].decoded && strlen(kinds[k].mime) == n &&
            strncasecmp(mime, kinds[k].mime, n) == 0)
            return kinds[k].format;
    for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
        if (strlen(aliases[i].mime) == n && strncasecmp(mime, aliases[i].mime, n) == 0)
            return aliases[i].format;
    return NULL;
}
