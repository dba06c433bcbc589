/* Names the gateway and the resizer derive from the configuration: the destination key of a
 * rendition (conf_rendition_key) and the matching of file names against [gateway] globs. */
#include "conf_internal.h"

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

/* A growing string; `failed` once memory ran out. */
struct buf {
    char *s;
    size_t len, cap;
    bool failed;
};

static void put(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* The length of `name` without its last extension, as Python's os.path.splitext: the extension
 * is from the last '.' on, unless every character before that '.' is a '.' too (".profile",
 * "..x" have none). */
static size_t base_len(const char *name, size_t n)
{
    const char *dot = NULL;
    for (size_t i = 0; i < n; i++)
        if (name[i] == '.')
            dot = name + i;
    if (!dot)
        return n;
    for (const char *p = name; p < dot; p++)
        if (*p != '.')
            return (size_t)(dot - name);
    return n;
}

char *conf_rendition_key(const struct config *cfg, const struct conf_size *size,
                         const char *source_key, const char *out_ext)
{
    if (!cfg || !size || !source_key)
        return NULL;
    const char *sp = cfg->s3.source_prefix;
    size_t splen = strlen(sp);
    if (strncmp(source_key, sp, splen) != 0 || !source_key[splen])
        return NULL;
    const char *key = source_key + splen;
    size_t klen = strlen(key);
    const char *slash = strrchr(key, '/');
    size_t dlen = slash ? (size_t)(slash - key) + 1 : 0;
    const char *name = key + dlen;
    size_t nlen = klen - dlen;

    struct buf b = {0};
    puts_(&b, cfg->s3.destination_prefix);
    for (const char *p = cfg->resize.key_template; *p;) {
        const char *brace = strchr(p, '{');
        const char *end = brace ? strchr(brace, '}') : NULL;
        if (!end) {
            puts_(&b, p);
            break;
        }
        put(&b, p, (size_t)(brace - p));
        const char *ph = brace + 1;
        size_t n = (size_t)(end - ph);
#define IS(word) (n == sizeof(word) - 1 && memcmp(ph, word, n) == 0)
        if (IS("size"))
            puts_(&b, size->name);
        else if (IS("key"))
            put(&b, key, klen);
        else if (IS("dir"))
            put(&b, key, dlen);
        else if (IS("name"))
            put(&b, name, nlen);
        else if (IS("base"))
            put(&b, name, base_len(name, nlen));
        else if (IS("ext"))
            puts_(&b, out_ext ? out_ext : "");
        else /* not a placeholder (the loader refuses these): kept as written */
            put(&b, brace, (size_t)(end - brace) + 1);
#undef IS
        p = end + 1;
    }
    if (!b.s && !b.failed)
        put(&b, "", 0);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

bool conf_glob_match(const char *const *globs, size_t count, const char *path)
{
    if (!globs || !path)
        return false;
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    /* No FNM_PERIOD: "*.swp" must match vim's ".notes.txt.swp". */
    for (size_t i = 0; i < count; i++)
        if (globs[i] && fnmatch(globs[i], name, 0) == 0)
            return true;
    return false;
}
