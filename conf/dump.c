/* conf_dump: the effective configuration as INI, with where each value came from. */
#include "conf_internal.h"

#include <string.h>

void conf_dump(const struct config *cfg, FILE *out)
{
    if (!cfg || !out)
        return;
    fprintf(out, "# s3imgfs configuration: effective values and where they came from; secrets "
                 "are masked\n");
    for (size_t s = 0; conf_sections[s]; s++) {
        fprintf(out, "%s[%s]\n", s ? "\n" : "", conf_sections[s]);
        for (size_t i = 0; i < conf_row_count; i++) {
            const struct conf_row *r = &conf_rows[i];
            if (strcmp(r->info.section, conf_sections[s]) != 0)
                continue;
            fprintf(out, "%s = ", r->info.key);
            r->format(cfg, r, out);
            fprintf(out, "  ; %s\n", cfg->priv->origins[i].where);
        }
    }
}
