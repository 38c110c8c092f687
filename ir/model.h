/* Model builders: lower a GGUF decoder-only LLM to an IR graph.
 *
 * Supported architectures: `llama` (Llama 2/3, TinyLlama, SmolLM/SmolLM2;
 * GQA; linear rope scaling; tied or separate output) and `qwen2` (q/k/v
 * biases, NeoX rope). Anything else is refused by name.
 *
 * A graph computes one step: n_tokens new tokens after n_past cached ones.
 *   inputs   tokens  i32[n_tokens]            token ids
 *            pos     i32[n_tokens]            their positions
 *            k_cache.L, v_cache.L  f32[n_past, n_head_kv, head_dim]
 *                                             (only when n_past > 0)
 *   outputs  logits  f32[n_out, n_vocab]      n_out = n_tokens, or 1 (the
 *                                             last token) without all_logits
 *            k_new.L, v_new.L  f32[n_tokens, n_head_kv, head_dim]
 *                                             keys (after rope) and values
 *                                             to append to the cache
 * Head split and merge are reshape ops, the cache join a concat, so the
 * geometry passes see the model's real data movement. Weight nodes point
 * into the GGUF mapping: the file must outlive the graph.
 */
#ifndef MICA_MODEL_H
#define MICA_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "gguf.h"
#include "ir.h"

typedef enum mica_arch {
    MICA_ARCH_LLAMA = 0,
    MICA_ARCH_QWEN2 = 1,
} mica_arch_t;

/* Hyper-parameters read from GGUF metadata. */
typedef struct mica_model_config {
    mica_arch_t arch;
    char arch_name[32];
    int64_t n_vocab;
    int64_t n_embd;    /* model width D */
    int64_t n_layer;
    int64_t n_head;    /* query heads */
    int64_t n_head_kv; /* key/value heads (GQA) */
    int64_t head_dim;  /* n_embd / n_head */
    int64_t n_ff;      /* feed-forward width */
    int64_t n_ctx;     /* trained context length (0 if unknown) */
    double norm_eps;
    double rope_theta;
    double rope_freq_scale; /* 1 / linear scaling factor */
    int64_t rope_dims;      /* rotated dims per head */
    int64_t rope_mode;      /* 0 adjacent pairs (llama), 2 NeoX halves (qwen2) */
    bool tied_output;       /* LM head is token_embd */
} mica_model_config_t;

/* Reads and checks the hyper-parameters. Fails naming an unsupported
 * architecture or a missing/impossible key. */
mica_status_t mica_model_config_from_gguf(const mica_gguf_t *f, mica_model_config_t *out_cfg,
                                          mica_diag_t *d);

/* Builds the graph of one step (see above). n_tokens >= 1, n_past >= 0.
 * Fails naming a missing tensor or one of the wrong shape or type. */
mica_status_t mica_model_build(const mica_gguf_t *f, const mica_model_config_t *cfg,
                               int64_t n_tokens, int64_t n_past, bool all_logits,
                               mica_graph_t **out_graph, mica_diag_t *d);

/* The static form, one graph of a compiled program (ir/program.h): up to
 * n_tokens new tokens per call over a KV cache of `capacity` tokens kept
 * as state, with the lengths read at run time.
 *   inputs   tokens   i32[n_tokens]       ids; rows past n_tokens are padding
 *            pos      i32[n_tokens]       positions (n_past + t)
 *            n_past   i32[]               tokens already in the cache
 *            n_tokens i32[]               valid rows this call (1..n_tokens)
 *   states   k_cache.L, v_cache.L  f32[n_head_kv, capacity, head_dim]
 *                                         head-major, as attention reads it
 *   outputs  logits   f32[n_tokens, n_vocab] (rows past n_tokens: padding)
 * Each layer stores its new keys and values with kv_store at n_past and
 * attends with attention_kv up to n_past + t. */
mica_status_t mica_model_build_static(const mica_gguf_t *f, const mica_model_config_t *cfg,
                                      int64_t n_tokens, int64_t capacity,
                                      mica_graph_t **out_graph, mica_diag_t *d);

#endif
