#include <stdio.h>
#include <string.h>

#include "passes.h"

static const mica_pass_t pipeline[] = {
    {"import", NULL, "model or IR text read into a graph (no rewrite)"},
    {"geometry", mica_pass_geometry, "data movement lowered to raster ops with regions"},
    {"fold-regions", mica_pass_fold_regions, "raster chains composed, rasters folded into loads"},
};

int mica_pass_count(void)
{
    return (int)(sizeof pipeline / sizeof pipeline[0]);
}

const mica_pass_t *mica_pass_at(int i)
{
    return (i >= 0 && i < mica_pass_count()) ? &pipeline[i] : NULL;
}

const mica_pass_t *mica_pass_find(const char *name)
{
    for (int i = 0; i < mica_pass_count(); i++)
        if (strcmp(pipeline[i].name, name) == 0)
            return &pipeline[i];
    return NULL;
}

mica_status_t mica_pipeline_run(mica_graph_t **g, const char *after, bool verify, mica_diag_t *d)
{
#ifndef NDEBUG
    verify = true; /* debug builds check every pass's output */
#endif
    if (after && !mica_pass_find(after)) {
        char known[256] = "";
        for (int i = 0; i < mica_pass_count(); i++) {
            strncat(known, i ? ", " : "", sizeof known - strlen(known) - 1);
            strncat(known, pipeline[i].name, sizeof known - strlen(known) - 1);
        }
        return mica_diag_set(d, MICA_ERR_INVALID, "unknown pass '%s' (passes: %s)", after, known);
    }
    for (int i = 0; i < mica_pass_count(); i++) {
        const mica_pass_t *p = &pipeline[i];
        if (p->run) {
            mica_status_t s = p->run(g, d);
            if (s != MICA_OK) {
                mica_diag_prefix(d, "pass %s", p->name);
                return s;
            }
        }
        if (verify) {
            mica_status_t s = mica_graph_verify(*g, d);
            if (s != MICA_OK) {
                mica_diag_prefix(d, "after pass %s", p->name);
                return s;
            }
        }
        if (after && strcmp(after, p->name) == 0)
            break;
    }
    return MICA_OK;
}
