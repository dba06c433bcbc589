/* textbuf: see textbuf.h. */
#include "textbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void textbuf_add(struct textbuf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (n > SIZE_MAX / 4 - b->len) { /* never in practice; bounds the sizes for the compiler */
        b->failed = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void textbuf_str(struct textbuf *b, const char *s)
{
    textbuf_add(b, s, strlen(s));
}

void textbuf_spaces(struct textbuf *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        textbuf_add(b, " ", 1);
}

void textbuf_printf(struct textbuf *b, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
    } else if ((size_t)n < sizeof(small)) {
        textbuf_add(b, small, (size_t)n);
    } else {
        char *big = malloc((size_t)n + 1);
        if (!big) {
            b->failed = true;
            return;
        }
        va_start(ap, fmt);
        vsnprintf(big, (size_t)n + 1, fmt, ap);
        va_end(ap);
        textbuf_add(b, big, (size_t)n);
        free(big);
    }
}

char *textbuf_take(struct textbuf *b)
{
    if (!b->data)
        textbuf_add(b, "", 0);
    char *p = b->failed ? NULL : b->data;
    if (!p)
        free(b->data);
    *b = (struct textbuf){0};
    return p;
}
