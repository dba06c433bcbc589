/* Percent-encoding and decoding, as SigV4 and S3 want them.
 *
 * SigV4 is stricter than RFC 3986: only the unreserved set A-Z a-z 0-9 - _ . ~ stays as is and
 * every other byte (UTF-8 bytes included) becomes %XX with uppercase hex. S3 object keys keep their
 * '/' in the path, which is what keep_slash is for; query values encode it.
 */
#include "s3client.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

static bool is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static bool kept_as_is(unsigned char c, bool keep_slash)
{
    return is_unreserved(c) || (keep_slash && c == '/');
}

/* Value of one hex digit, or -1. Both cases are accepted: "%2f" is as valid as "%2F". */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

char *aws_uri_encode(const char *s, size_t len, bool keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *in = (const unsigned char *)s;

    /* First pass sizes the result exactly, so a long key costs one allocation and no copy. */
    size_t escaped = 0;
    for (size_t i = 0; i < len; i++)
        escaped += !kept_as_is(in[i], keep_slash);
    if (escaped > (SIZE_MAX - 1 - len) / 2) {
        errno = ENOMEM;
        return NULL;
    }

    char *out = malloc(len + 2 * escaped + 1);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < len; i++) {
        if (kept_as_is(in[i], keep_slash)) {
            *p++ = (char)in[i];
        } else {
            *p++ = '%';
            *p++ = hex[in[i] >> 4];
            *p++ = hex[in[i] & 0x0F];
        }
    }
    *p = '\0';
    return out;
}

/* A malformed escape ('%' not followed by two hex digits) fails with errno = EINVAL, so callers
 * can tell a bad input from an out-of-memory (ENOMEM). The result may hold NUL bytes ("%00"),
 * which is why the length is returned separately. */
char *aws_uri_decode(const char *s, size_t len, bool plus_is_space, size_t *out_len)
{
    const unsigned char *in = (const unsigned char *)s;

    /* Decoding never grows the text, so len + 1 is always enough. */
    if (len == SIZE_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    char *out = malloc(len + 1);
    if (!out)
        return NULL;

    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '%') {
            int hi = i + 2 < len ? hex_value(in[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(in[i + 2]) : -1;
            if (lo < 0) {
                free(out);
                errno = EINVAL;
                return NULL;
            }
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (in[i] == '+' && plus_is_space) {
            out[n++] = ' ';
        } else {
            out[n++] = (char)in[i];
        }
    }
    out[n] = '\0';
    if (out_len)
        *out_len = n;
    return out;
}
