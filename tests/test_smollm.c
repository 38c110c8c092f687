/* The default real model, SmolLM2-135M-Instruct (Q4_1), on the reference
 * path. tools/test.sh fetches it (tools/fetch-model.sh) and passes its path
 * in MICA_DEFAULT_MODEL. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "passes.h"
#include "ref_model.h"
#include "test_support.h"
#include "tokenizer.h"
#include "vocab.h"

static const char *model_path(void)
{
    const char *p = getenv("MICA_DEFAULT_MODEL");
    cr_assert(p && *p, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh and export its path");
    return p;
}

Test(smollm, capital_of_france_is_paris, .timeout = 300)
{
    mica_ref_model_t *m = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_ref_model_open(model_path(), NULL, &m, &d), MICA_OK, "%s", d.msg);
    mica_vocab_t vocab;
    mica_tokenizer_t *tok = NULL;
    cr_assert_eq(mica_vocab_from_gguf_meta(mica_gguf_meta(mica_ref_model_gguf(m)), &vocab, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_tokenizer_create(&vocab.desc, &tok, &d), MICA_OK, "%s", d.msg);
    mica_vocab_deinit(&vocab);

    const char *prompt = "The capital of France is";
    int32_t ids[64];
    size_t n = 0;
    cr_assert_eq(mica_tokenizer_encode(tok, prompt, strlen(prompt), MICA_TOKENIZER_ADD_SPECIAL, ids,
                                       64, &n, &d),
                 MICA_OK, "%s", d.msg);
    const int32_t V = (int32_t)mica_ref_model_config(m)->n_vocab;
    float *logits = malloc((size_t)V * sizeof *logits);
    cr_assert_eq(mica_ref_model_eval(m, ids, (int32_t)n, false, logits, &d), MICA_OK, "%s", d.msg);
    char text[512] = "";
    size_t len = 0;
    for (int i = 0; i < 8; i++) {
        int32_t best = 0;
        for (int32_t v = 1; v < V; v++)
            if (logits[v] > logits[best])
                best = v;
        size_t piece = 0;
        cr_assert_eq(mica_tokenizer_decode(tok, &best, 1, 0, text + len, sizeof text - 1 - len,
                                           &piece, &d),
                     MICA_OK, "%s", d.msg);
        len += piece;
        cr_assert_eq(mica_ref_model_eval(m, &best, 1, false, logits, &d), MICA_OK, "%s", d.msg);
    }
    text[len] = 0;
    cr_log_info("SmolLM2: \"%s\" ->\"%s\"", prompt, text);
    cr_assert(strstr(text, "Paris"), "continuation \"%s\" does not name Paris", text);
    free(logits);
    mica_tokenizer_release(tok);
    mica_ref_model_close(m);
}

static void count_ops(const mica_graph_t *g, int *movement, int *raster)
{
    *movement = *raster = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        *movement += mica_op_is_data_movement(g->nodes[i]->op);
        *raster += g->nodes[i]->op == MICA_OP_RASTER;
    }
}

Test(smollm, geometry_lowers_and_fold_reduces_rasters)
{
    mica_gguf_t *f = NULL;
    mica_model_config_t cfg;
    mica_graph_t *g = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(model_path(), &f, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_model_config_from_gguf(f, &cfg, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(cfg.n_layer, 30);
    cr_assert_eq(cfg.n_embd, 576);
    cr_assert_eq(mica_model_build(f, &cfg, 1, 31, true, &g, &d), MICA_OK, "%s", d.msg);
    int mv, rs, rs_geo, rs_fold;
    count_ops(g, &mv, &rs);
    cr_assert_gt(mv, 0);
    cr_assert_eq(mica_pipeline_run(&g, "geometry", true, &d), MICA_OK, "%s", d.msg);
    count_ops(g, &mv, &rs_geo);
    cr_assert_eq(mv, 0, "%d data-movement ops after geometry", mv);
    cr_assert_eq(mica_pipeline_run(&g, "fold-regions", true, &d), MICA_OK, "%s", d.msg);
    count_ops(g, &mv, &rs_fold);
    cr_log_info("SmolLM2 decode step: %d rasters after geometry, %d after fold-regions", rs_geo,
                rs_fold);
    cr_assert_lt(rs_fold, rs_geo);
    mica_graph_release(g);
    mica_gguf_close(f);
}
