/* Fuzz target: a GGUF file from memory through the reader, the config, the
 * vocabulary and tokenizer, the model builder and one reference step (one
 * token). Everything a hostile file can make fail must fail with a
 * message; a file that gets through must give finite-or-not logits without
 * a sanitizer report, and memory stays bounded by the file's size (the
 * fuzzer's -rss_limit_mb and -malloc_limit_mb catch the rest). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_targets.h"
#include "gguf.h"
#include "model.h"
#include "ref.h"
#include "tokenizer.h"
#include "vocab.h"

/* The tokenizer the file describes, on a short text. */
static void tokenize(const mica_gguf_t *f)
{
    mica_diag_t d = {0};
    mica_vocab_t v = {0};
    if (mica_vocab_from_gguf_meta(mica_gguf_meta(f), &v, &d) != MICA_OK) {
        MICA_FUZZ_CHECK(d.msg[0], "vocabulary refused without a message");
        return;
    }
    mica_tokenizer_t *tok = NULL;
    if (mica_tokenizer_create(&v.desc, &tok, &d) == MICA_OK) {
        static const char text[] = "Hello, world! 123 <s> caf\xc3\xa9";
        int32_t ids[64];
        size_t n = 0;
        if (mica_tokenizer_encode(tok, text, sizeof text - 1, MICA_TOKENIZER_PARSE_SPECIAL, ids,
                                  64, &n, &d) == MICA_OK) {
            char out[512];
            size_t len = 0;
            mica_tokenizer_decode(tok, ids, n, 0, out, sizeof out, &len, &d);
        }
        mica_tokenizer_release(tok);
    } else {
        MICA_FUZZ_CHECK(d.msg[0], "tokenizer refused without a message");
    }
    mica_vocab_deinit(&v);
}

int mica_fuzz_gguf_one(const uint8_t *data, size_t size)
{
    mica_diag_t d = {0};
    mica_gguf_t *f = NULL;
    if (mica_gguf_open_memory(data, size, &f, &d) != MICA_OK) {
        MICA_FUZZ_CHECK(d.msg[0], "open failed without a message");
        return 0;
    }
    tokenize(f);
    mica_model_config_t cfg;
    if (mica_model_config_from_gguf(f, &cfg, &d) != MICA_OK) {
        MICA_FUZZ_CHECK(d.msg[0], "config refused without a message");
        mica_gguf_close(f);
        return 0;
    }
    mica_graph_t *g = NULL;
    if (mica_model_build(f, &cfg, 1, 0, false, &g, &d) != MICA_OK) {
        MICA_FUZZ_CHECK(d.msg[0], "build failed without a message");
        mica_graph_release(g);
        mica_gguf_close(f);
        return 0;
    }
    MICA_FUZZ_CHECK(cfg.n_vocab > 0, "a model of %lld tokens was built", (long long)cfg.n_vocab);
    int32_t token = (int32_t)(size % (size_t)cfg.n_vocab), pos = 0;
    int64_t one = 1;
    mica_ref_tensor_t in[2] = {
        {"tokens", mica_type_make(MICA_DTYPE_I32, 1, &one), &token},
        {"pos", mica_type_make(MICA_DTYPE_I32, 1, &one), &pos},
    };
    mica_ref_outputs_t *out = NULL;
    if (mica_ref_execute(g, in, 2, &out, &d) == MICA_OK) {
        const mica_ref_tensor_t *lg = mica_ref_outputs_find(out, "logits");
        MICA_FUZZ_CHECK(lg && mica_type_numel(&lg->type) == cfg.n_vocab, "no logits row");
    } else {
        MICA_FUZZ_CHECK(d.msg[0], "step failed without a message");
    }
    mica_ref_outputs_release(out);
    mica_graph_release(g);
    mica_gguf_close(f);
    return 0;
}

MICA_FUZZ_DEFINE_ENTRY(gguf)
