/* json_path: see json_path.h. */
#include "json_path.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* The value at the path (borrowed from root), or NULL. */
static json_t *walk(json_t *root, va_list ap)
{
    json_t *v = root;
    for (const char *name; v && (name = va_arg(ap, const char *));) {
        if (json_is_array(v)) {
            char *end;
            unsigned long i = strtoul(name, &end, 10);
            v = *name && !*end ? json_array_get(v, i) : NULL;
        } else {
            v = json_object_get(v, name); /* NULL for anything but an object */
        }
    }
    return v;
}

/* Parses text and walks the path: the value, borrowed from *root (the caller decrefs it). */
static json_t *lookup(const char *text, va_list ap, json_t **root)
{
    *root = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return walk(*root, ap);
}

char *json_path_string(const char *text, ...)
{
    json_t *root;
    va_list ap;
    va_start(ap, text);
    json_t *v = lookup(text, ap, &root);
    va_end(ap);
    char *out = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
    json_decref(root);
    return out;
}

char *json_path_text(const char *text, ...)
{
    json_t *root;
    va_list ap;
    va_start(ap, text);
    json_t *v = lookup(text, ap, &root);
    va_end(ap);
    char *out = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(root);
    return out;
}
