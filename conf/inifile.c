/* INI files through inih, with line numbers and lines of any length.
 *
 * inih's handler is not told the line number (INI_HANDLER_LINENO is a build option of the
 * library and Debian builds it without), and its line buffer is fixed (200 bytes by default),
 * while AWS session tokens are longer than that. So inih reads through ini_parse_stream from a
 * reader of ours that:
 *   - counts lines, so every callback knows the line of the key it gets;
 *   - hands inih each line without its indentation (which also turns off inih's multi-line
 *     values, see below) and, when a line would not fit inih's buffer, a stand-in
 *     "name=\x1f" (or "[\x1f]") whose real text the handler takes from the reader;
 *   - reports malformed lines, control characters and unknown sections itself, with a message
 *     naming the line, and stops at the first error.
 * Indented lines that follow a key with less indentation continue that key's value in Python's
 * configparser (the AWS CLI uses it for nested settings such as "s3 =\n  addressing_style =
 * path"). In AWS files they are skipped; in the s3imgfs file they are an error.
 */
#include "conf_internal.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdlib.h>
#include <string.h>

#define MARK      "\x1f"
#define MAX_SHORT 40 /* longest section name handed to inih as is (it keeps 50 bytes) */

struct reader {
    FILE *f;
    const char *path;
    enum conf_ini_mode mode;
    conf_ini_section_fn on_section;
    conf_ini_key_fn on_key;
    void *ctx;
    char *errbuf;
    size_t errlen;

    int lineno;
    char *buf;
    size_t cap;
    int key_indent; /* indentation of the last key line in this section, -1 when none */
    char *long_section;
    char *long_value;
    int long_value_line;
    bool failed;
    bool read_error;
    bool nomem;
};

static void fail(struct reader *r, const char *what)
{
    snprintf(r->errbuf, r->errlen, "%s:%d: %s", r->path, r->lineno, what);
    r->failed = true;
}

/* Like inih's ini_find_chars_or_comment: the first of `chars`, or an inline comment (';' after
 * whitespace), or the end. */
static const char *find_chars_or_comment(const char *s, const char *chars)
{
    bool was_space = false;
    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

static void rstrip(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* The value inih would have produced from the text after the separator. */
static char *value_of(const char *after_sep)
{
    const char *end = find_chars_or_comment(after_sep, NULL);
    while (after_sep < end && isspace((unsigned char)*after_sep))
        after_sep++;
    char *v = conf_strndup(after_sep, (size_t)(end - after_sep));
    if (v)
        rstrip(v);
    return v;
}

static char *put(char *str, int num, const char *text)
{
    snprintf(str, (size_t)num, "%s\n", text);
    return str;
}

static char *reader_fn(char *str, int num, void *stream)
{
    struct reader *r = stream;
    if (r->failed)
        return NULL;
    if (num < MAX_SHORT + 8) {
        fail(r, "inih's line buffer is too small");
        return NULL;
    }
    errno = 0;
    ssize_t n = getline(&r->buf, &r->cap, r->f);
    if (n < 0) {
        if (ferror(r->f))
            r->read_error = true;
        if (errno == ENOMEM)
            r->nomem = true;
        return NULL;
    }
    r->lineno++;
    char *s = r->buf;
    if (strlen(s) != (size_t)n) {
        fail(r, "the line contains a NUL byte");
        return NULL;
    }
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    if (r->lineno == 1 && (unsigned char)s[0] == 0xEF && (unsigned char)s[1] == 0xBB &&
        (unsigned char)s[2] == 0xBF)
        s += 3;
    for (const char *p = s; *p; p++) {
        if ((unsigned char)*p < 0x20 && *p != '\t') {
            fail(r, "the line contains a control character");
            return NULL;
        }
    }
    int indent = 0;
    while (isspace((unsigned char)*s)) {
        s++;
        indent++;
    }
    rstrip(s);

    if (*s == '\0')
        return put(str, num, "");
    if (*s == ';' || *s == '#')
        return put(str, num, ";");

    if (*s == '[') {
        const char *end = find_chars_or_comment(s + 1, "]");
        if (*end != ']') {
            fail(r, "a section header needs a closing ']', as in [s3]");
            return NULL;
        }
        const char *b = s + 1;
        while (b < end && isspace((unsigned char)*b))
            b++;
        char *name = conf_strndup(b, (size_t)(end - b));
        if (!name) {
            r->nomem = r->failed = true;
            return NULL;
        }
        rstrip(name);
        r->key_indent = -1;
        if (r->on_section && r->on_section(r->ctx, name, r->lineno) != 0) {
            free(name);
            r->failed = true;
            return NULL;
        }
        free(r->long_section);
        r->long_section = NULL;
        if (strlen(name) < MAX_SHORT) {
            snprintf(str, (size_t)num, "[%s]\n", name);
            free(name);
        } else {
            r->long_section = name;
            put(str, num, "[" MARK "]");
        }
        return str;
    }

    if (r->key_indent >= 0 && indent > r->key_indent) {
        if (r->mode == CONF_INI_AWS)
            return put(str, num, ""); /* a nested setting or a continued value: not ours */
        fail(r, "an indented line continues the previous key's value, which s3imgfs does not "
                "support: write each key = value on one line");
        return NULL;
    }

    const char *sep = find_chars_or_comment(s, "=:");
    if (*sep != '=' && *sep != ':') {
        fail(r, "expected 'key = value', '[section]' or a comment");
        return NULL;
    }
    const char *name_end = sep;
    while (name_end > s && isspace((unsigned char)name_end[-1]))
        name_end--;
    if (name_end == s) {
        fail(r, "a key name is missing before the '='");
        return NULL;
    }
    r->key_indent = indent;
    if (strlen(s) + 2 <= (size_t)num)
        return put(str, num, s);
    /* Too long for inih: hand it the name and keep the value aside. */
    if ((size_t)(name_end - s) + 4 > (size_t)num) {
        fail(r, "the key name is too long");
        return NULL;
    }
    conf_free_secret(r->long_value);
    r->long_value = value_of(sep + 1);
    if (!r->long_value) {
        r->nomem = r->failed = true;
        return NULL;
    }
    r->long_value_line = r->lineno;
    snprintf(str, (size_t)num, "%.*s=" MARK "\n", (int)(name_end - s), s);
    return str;
}

static int handler_fn(void *user, const char *section, const char *name, const char *value)
{
    struct reader *r = user;
    if (r->failed)
        return 0;
    if (r->long_section && strcmp(section, MARK) == 0)
        section = r->long_section;
    if (r->long_value && r->long_value_line == r->lineno && strcmp(value, MARK) == 0)
        value = r->long_value;
    if (r->on_key && r->on_key(r->ctx, section, name, value, r->lineno) != 0) {
        r->failed = true;
        return 0;
    }
    return 1;
}

int conf_ini_parse(FILE *f, const char *path, enum conf_ini_mode mode,
                   conf_ini_section_fn on_section, conf_ini_key_fn on_key, void *ctx, char *errbuf,
                   size_t errlen)
{
    struct reader r = {
        .f = f,
        .path = path,
        .mode = mode,
        .on_section = on_section,
        .on_key = on_key,
        .ctx = ctx,
        .errbuf = errbuf,
        .errlen = errlen,
        .key_indent = -1,
    };
    int ret = ini_parse_stream(reader_fn, &r, handler_fn, &r);
    if (r.buf)
        explicit_bzero(r.buf, r.cap); /* may have held a secret */
    free(r.buf);
    free(r.long_section);
    conf_free_secret(r.long_value);
    if (r.nomem) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    if (r.failed)
        return -1;
    if (r.read_error) {
        snprintf(errbuf, errlen, "%s: cannot read: %s", path, strerror(errno ? errno : EIO));
        return -1;
    }
    if (ret == -2) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return -1;
    }
    if (ret != 0) {
        snprintf(errbuf, errlen, "%s:%d: expected 'key = value', '[section]' or a comment", path,
                 ret);
        return -1;
    }
    return 0;
}
