/* textbuf: a growing string for the notice builders of this module (render.c, smtp.c). Not a
 * public header: other modules do not use it.
 *
 * An append that cannot allocate is ignored and remembered (`failed`), so builders append
 * freely and check once, at the end (textbuf_take). The text is always NUL-terminated. */
#ifndef S3IMGFS_NOTIFY_TEXTBUF_H
#define S3IMGFS_NOTIFY_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct textbuf {
    char *data; /* malloc'd; NULL until the first append */
    size_t len, cap;
    bool failed; /* an append failed: the text is incomplete */
};

void textbuf_add(struct textbuf *b, const char *s, size_t n);
void textbuf_str(struct textbuf *b, const char *s);
void textbuf_spaces(struct textbuf *b, size_t n);
void textbuf_printf(struct textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (malloc'd, "" when nothing was added; the caller frees it), or NULL when an append
 * failed. Leaves b empty. */
char *textbuf_take(struct textbuf *b);

#endif
