#include <stdio.h>
#include <string.h>

#include "layout.h"
#include "memplan.h"
#include "passes.h"
#include "quantize.h"
#include "schedule.h"

static const mica_pass_t pipeline[] = {
    {"import", NULL, "model or IR text read into a graph (no rewrite)"},
    {"geometry", mica_pass_geometry_run, "data movement lowered to raster ops with regions"},
    {"fold-regions", mica_pass_fold_regions_run,
     "raster chains composed, rasters folded into loads"},
    {"fuse", mica_pass_fuse_run,
     "gate+up merged into one matmul + swiglu (bound weights: only with a constant store), "
     "epilogue/prologue fusions annotated"},
    {"quantize", mica_pass_quantize_run,
     "matmul weights to int4/int8 with group scales (-q), int8 activations per K-group"},
    {"layout", mica_pass_layout_run,
     "quantized weights packed into the target's tile [N/hp, K/lp, hp, lp], KV layout noted"},
    {"memplan", mica_pass_memplan_run,
     "every value that needs memory placed in one arena (mem=OFFSET), checked"},
    {"schedule", mica_pass_schedule_run,
     "each op split across the target's cores by capacity; cost and roofline time (split=, "
     "cost=, ns=)"},
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

/* ------------------------------------------------------------------------ */
/* context                                                                   */

void mica_compile_options_init(mica_compile_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->quant = "w4a8";
    o->group = 0;
    o->context = 0;
    o->prefill_chunk = 0;
    o->head_quant = "auto";
}

mica_status_t mica_pass_ctx_init(mica_pass_ctx_t *ctx, const struct mica_target *target,
                                 const mica_compile_options_t *options, mica_diag_t *d)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->target = target;
    if (options)
        ctx->options = *options;
    else
        mica_compile_options_init(&ctx->options);
    ctx->diag = d;
    if (mica_arena_create(&ctx->scratch) != MICA_OK)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory creating the pass context");
    return MICA_OK;
}

void mica_pass_ctx_deinit(mica_pass_ctx_t *ctx)
{
    mica_arena_release(ctx->scratch);
    ctx->scratch = NULL;
}

mica_status_t mica_pass_ctx_scratch_reset(mica_pass_ctx_t *ctx)
{
    /* the arena has no reset of its own: a new one costs one chunk */
    mica_arena_release(ctx->scratch);
    ctx->scratch = NULL;
    if (mica_arena_create(&ctx->scratch) != MICA_OK)
        return mica_diag_set(ctx->diag, MICA_ERR_NOMEM, "out of memory resetting scratch memory");
    return MICA_OK;
}

/* ------------------------------------------------------------------------ */
/* running                                                                   */

mica_status_t mica_pipeline_run_ctx(mica_pass_ctx_t *ctx, mica_graph_t **g, const char *after,
                                    bool verify, mica_diag_t *d)
{
#ifndef NDEBUG
    verify = true; /* debug builds check every pass's output */
#endif
    ctx->diag = d;
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
            mica_status_t s = mica_pass_ctx_scratch_reset(ctx);
            if (s == MICA_OK)
                s = p->run(ctx, g);
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

mica_status_t mica_pipeline_run_program(mica_pass_ctx_t *ctx, mica_program_t *p,
                                        const char *after, bool verify, mica_diag_t *d)
{
    mica_const_store_t *saved = ctx->consts;
    ctx->consts = p->consts;
    mica_status_t s = mica_pipeline_run_ctx(ctx, &p->prefill, after, verify, d);
    if (s != MICA_OK)
        mica_diag_prefix(d, "prefill graph");
    if (s == MICA_OK && (s = mica_pipeline_run_ctx(ctx, &p->decode, after, verify, d)) != MICA_OK)
        mica_diag_prefix(d, "decode graph");
    ctx->consts = saved; /* the context does not keep a pointer into p */
    return s;
}

mica_status_t mica_pipeline_run(mica_graph_t **g, const char *after, bool verify, mica_diag_t *d)
{
    mica_pass_ctx_t ctx;
    MICA_TRY(mica_pass_ctx_init(&ctx, NULL, NULL, d));
    mica_status_t s = mica_pipeline_run_ctx(&ctx, g, after, verify, d);
    mica_pass_ctx_deinit(&ctx);
    return s;
}

/* One pass in a default context, for callers that run a single pass. */
static mica_status_t run_alone(mica_pass_fn run, mica_graph_t **g, mica_diag_t *d)
{
    mica_pass_ctx_t ctx;
    MICA_TRY(mica_pass_ctx_init(&ctx, NULL, NULL, d));
    mica_status_t s = run(&ctx, g);
    mica_pass_ctx_deinit(&ctx);
    return s;
}

mica_status_t mica_pass_geometry(mica_graph_t **g, mica_diag_t *d)
{
    return run_alone(mica_pass_geometry_run, g, d);
}

mica_status_t mica_pass_fold_regions(mica_graph_t **g, mica_diag_t *d)
{
    return run_alone(mica_pass_fold_regions_run, g, d);
}
