/* paths: "/a/b.jpg" -> s3://source/<source_prefix>a/b.jpg; "/resized/thumbnail/a/b.jpg" ->
 * s3://destination/<destination_prefix>thumbnail/a/b.jpg. */
#include "fs_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY 1024 /* S3's limit, in bytes of UTF-8 */

void fs_path_clear(struct fs_path *p)
{
    free(p->key);
    free(p->prefix);
    p->key = p->prefix = NULL;
}

static bool is_component(const char *rest, const char *name)
{
    size_t n = strlen(name);
    return strncmp(rest, name, n) == 0 && (rest[n] == '\0' || rest[n] == '/');
}

int fs_path_parse(const struct config *cfg, const char *path, struct fs_path *out)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(path, CONTROL_DIR, strlen(CONTROL_DIR)) == 0 &&
        (path[strlen(CONTROL_DIR)] == '\0' || path[strlen(CONTROL_DIR)] == '/')) {
        out->area = AREA_CONTROL;
        out->bucket = "";
        const char *name = path + strlen(CONTROL_DIR);
        out->is_root = !*name;
        out->key = strdup(*name ? name + 1 : "");
        out->prefix = strdup("");
        if (!out->key || !out->prefix) {
            fs_path_clear(out);
            return -ENOMEM;
        }
        return 0;
    }
    const char *rest = path[0] == '/' ? path + 1 : path;
    const char *prefix = cfg->s3.source_prefix;
    out->area = AREA_SOURCE;
    out->bucket = cfg->s3.source_bucket;
    if (is_component(rest, cfg->gateway.resized_dir)) {
        out->area = AREA_RESIZED;
        out->bucket = cfg->s3.destination_bucket;
        prefix = cfg->s3.destination_prefix;
        rest += strlen(cfg->gateway.resized_dir);
        if (*rest == '/')
            rest++;
    }
    out->is_root = *rest == '\0';
    size_t len = strlen(prefix) + strlen(rest);
    if (len >= MAX_KEY)
        return -ENAMETOOLONG;
    if (out->is_root) {
        out->key = strdup("");
        out->prefix = strdup(prefix);
    } else if (asprintf(&out->key, "%s%s", prefix, rest) < 0 ||
               asprintf(&out->prefix, "%s%s/", prefix, rest) < 0) {
        out->key = out->prefix = NULL;
    }
    if (!out->key || !out->prefix) {
        fs_path_clear(out);
        return -ENOMEM;
    }
    return 0;
}
