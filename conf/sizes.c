/* [resize] sizes: comma-separated "name:WxH[:fit|cover[:attention|entropy|centre]][:FORMAT][:qQ]".
 * The options after WxH may come in any order, each at most once; a crop hint must follow
 * "cover". Every error names the entry ("size 'medium' (entry 2): ..."). */
#include "conf_internal.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define WHY(...) (snprintf(why, whylen, __VA_ARGS__), -1)

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 1 || n > 32)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) && s[i] != '_' &&
            s[i] != '-')
            return false;
    return true;
}

/* "" -> 0 (unbounded); digits -> 1..16384; else -1. */
static long dimension(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    if (n > 6)
        return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static int parse_entry(char *entry, int index, struct conf_size *sz, char *why, size_t whylen)
{
    char *tokens[8];
    int nt = 0;
    for (char *save = NULL, *t = strtok_r(entry, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
        if (nt == 8)
            return WHY("size (entry %d): too many ':' options", index);
        tokens[nt++] = trim(t);
    }
    /* strtok_r skips empty tokens; a stray "::" or a trailing ':' is a mistake. */
    const char *name = nt > 0 ? tokens[0] : "";
    if (!valid_name(name))
        return WHY("size '%s' (entry %d): a name must be 1 to 32 characters of a-z, 0-9, '_' "
                   "and '-'",
                   name, index);
    memset(sz, 0, sizeof(*sz));
    snprintf(sz->name, sizeof(sz->name), "%s", name);
    if (nt < 2)
        return WHY("size '%s' (entry %d): expected WIDTHxHEIGHT after the name, such as "
                   "%s:640x480 (or 640x, x480)",
                   name, index, name);
    const char *d = tokens[1];
    const char *x = strchr(d, 'x');
    long w = x ? dimension(d, (size_t)(x - d)) : -1;
    long h = x ? dimension(x + 1, strlen(x + 1)) : -1;
    if (w < 0 || h < 0 || (w == 0 && h == 0))
        return WHY("size '%s' (entry %d): expected WIDTHxHEIGHT after the name, such as "
                   "%s:640x480 (or 640x, x480), not '%s'",
                   name, index, name, d);
    if (w > CONF_MAX_DIMENSION || (x - d > 0 && w == 0))
        return WHY("size '%s' (entry %d): width %.*s is out of range (1 to %d)", name, index,
                   (int)(x - d), d, CONF_MAX_DIMENSION);
    if (h > CONF_MAX_DIMENSION || (x[1] && h == 0))
        return WHY("size '%s' (entry %d): height %s is out of range (1 to %d)", name, index, x + 1,
                   CONF_MAX_DIMENSION);
    sz->width = (unsigned)w;
    sz->height = (unsigned)h;

    bool fit_set = false, crop_set = false;
    for (int i = 2; i < nt; i++) {
        const char *t = tokens[i];
        static const char *const formats[] = {"auto", "jpeg", "webp", "avif", "png"};
        static const char *const crops[] = {"centre", "attention", "entropy"};
        int format = -1, crop = -1;
        for (int k = 0; k < 5; k++)
            if (strcmp(t, formats[k]) == 0)
                format = k;
        for (int k = 0; k < 3; k++)
            if (strcmp(t, crops[k]) == 0)
                crop = k;
        if (strcmp(t, "fit") == 0 || strcmp(t, "cover") == 0) {
            if (fit_set)
                return WHY("size '%s' (entry %d): fit or cover given twice", name, index);
            fit_set = true;
            sz->fit = t[0] == 'c' ? CONF_FIT_COVER : CONF_FIT_INSIDE;
        } else if (crop >= 0) {
            if (crop_set || strcmp(tokens[i - 1], "cover") != 0)
                return WHY("size '%s' (entry %d): the crop hint '%s' must follow cover, as in "
                           "cover:%s",
                           name, index, t, t);
            crop_set = true;
            sz->crop = (enum conf_crop)crop;
        } else if (format >= 0) {
            if (sz->format_set)
                return WHY("size '%s' (entry %d): format given twice", name, index);
            sz->format_set = true;
            sz->format = (enum conf_format)format;
        } else if (t[0] == 'q') {
            long q = dimension(t + 1, strlen(t + 1));
            if (q < 1 || q > 100)
                return WHY("size '%s' (entry %d): quality '%s' is out of range: expected q1 to "
                           "q100",
                           name, index, t);
            if (sz->quality_set)
                return WHY("size '%s' (entry %d): quality given twice", name, index);
            sz->quality_set = true;
            sz->quality = (unsigned)q;
        } else {
            return WHY("size '%s' (entry %d): unknown option '%s': expected fit, cover, "
                       "cover:attention (or entropy, centre), a format (auto, jpeg, webp, avif, "
                       "png) or a quality such as q80",
                       name, index, t);
        }
    }
    if (sz->fit == CONF_FIT_COVER && (sz->width == 0 || sz->height == 0))
        return WHY("size '%s' (entry %d): cover needs both a width and a height", name, index);
    return 0;
}

int conf_sizes_parse(const char *spec, struct conf_size **out, size_t *count, char *why,
                     size_t whylen)
{
    char *buf = conf_strdup(spec);
    struct conf_size *sizes = calloc(CONF_MAX_SIZES, sizeof(*sizes));
    size_t n = 0;
    int rc = 0;
    if (!buf || !sizes) {
        rc = WHY("out of memory");
        goto fail;
    }
    if (!*trim(buf)) {
        rc = WHY("expected at least one size, such as thumbnail:150x150:cover");
        goto fail;
    }
    int index = 0;
    for (char *entry = buf; entry; index++) {
        char *comma = strchr(entry, ',');
        if (comma)
            *comma = '\0';
        char *e = trim(entry);
        entry = comma ? comma + 1 : NULL;
        size_t len = strlen(e);
        if (len == 0) {
            rc = WHY("entry %d is empty (a stray comma? sizes go on one line)", index + 1);
            goto fail;
        }
        if (e[0] == ':' || e[len - 1] == ':' || strstr(e, "::")) {
            rc = WHY("size '%.*s' (entry %d): empty option (a stray ':'?)",
                     (int)(strchr(e, ':') - e), e, index + 1);
            goto fail;
        }
        if (n == CONF_MAX_SIZES) {
            rc = WHY("at most %d sizes are allowed", CONF_MAX_SIZES);
            goto fail;
        }
        if (parse_entry(e, index + 1, &sizes[n], why, whylen) != 0) {
            rc = -1;
            goto fail;
        }
        for (size_t k = 0; k < n; k++) {
            if (strcmp(sizes[k].name, sizes[n].name) == 0) {
                rc = WHY("size '%s' (entry %d): the name is already used by entry %zu",
                         sizes[n].name, index + 1, k + 1);
                goto fail;
            }
        }
        n++;
    }
    free(buf);
    *out = sizes;
    *count = n;
    return 0;
fail:
    free(buf);
    free(sizes);
    return rc;
}

void conf_sizes_format(const struct conf_size *sizes, size_t count, FILE *out)
{
    for (size_t i = 0; i < count; i++) {
        const struct conf_size *s = &sizes[i];
        fprintf(out, "%s%s:", i ? ", " : "", s->name);
        if (s->width)
            fprintf(out, "%u", s->width);
        fputc('x', out);
        if (s->height)
            fprintf(out, "%u", s->height);
        if (s->fit == CONF_FIT_COVER) {
            fputs(":cover", out);
            if (s->crop != CONF_CROP_CENTRE)
                fprintf(out, ":%s", conf_crop_name(s->crop));
        }
        fprintf(out, ":%s:q%u", conf_format_name(s->format), s->quality);
    }
}
