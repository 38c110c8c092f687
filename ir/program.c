#include "program.h"

#include <stdlib.h>

mica_status_t mica_program_build(const mica_gguf_t *f, const mica_model_config_t *cfg,
                                 int64_t chunk, int64_t n_ctx, mica_program_t **out_program,
                                 mica_diag_t *d)
{
    if (chunk < 1 || n_ctx < chunk)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "a prefill chunk of %lld tokens does not fit a context of %lld",
                             (long long)chunk, (long long)n_ctx);
    mica_program_t *p = calloc(1, sizeof *p);
    if (!p)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    p->cfg = *cfg;
    p->n_ctx = n_ctx;
    p->chunk = chunk;
    mica_status_t s = mica_const_store_create(&p->consts, d);
    if (s == MICA_OK)
        s = mica_model_build_static(f, cfg, chunk, n_ctx, &p->prefill, d);
    if (s == MICA_OK)
        s = mica_model_build_static(f, cfg, 1, n_ctx, &p->decode, d);
    if (s != MICA_OK) {
        mica_program_release(p);
        return s;
    }
    /* both graphs point into one store, so passes share what they make */
    p->prefill->consts = mica_const_store_retain(p->consts);
    p->decode->consts = mica_const_store_retain(p->consts);
    *out_program = p;
    return MICA_OK;
}

void mica_program_release(mica_program_t *p)
{
    if (!p)
        return;
    mica_graph_release(p->prefill);
    mica_graph_release(p->decode);
    mica_const_store_release(p->consts);
    free(p);
}
