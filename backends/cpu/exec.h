/* The executor: runs a loaded model object's prefill and decode graphs
 * (backends/cpu/mica_abi.h) over the weights, the arena and the states the
 * runtime allocated, on a thread pool.
 *
 * It owns nothing: the model table, the weights mapping, the arena, the
 * state pointers and the pool are borrowed and must outlive it. It keeps
 * the number of tokens in the KV cache (n_past). A run allocates nothing.
 * Includes only libc and its own headers.
 */
#ifndef MICA_CPU_EXEC_H
#define MICA_CPU_EXEC_H

#include <stdint.h>

#include "mica_abi.h"
#include "pool.h"

/* Per-op time, accumulated over calls while profiling: ns[0] has
 * prefill.n_ops entries, ns[1] decode.n_ops (caller-owned, zeroed by the
 * caller). The executor adds the nanoseconds between the model's begin and
 * end trace calls of each op. */
typedef struct mica_cpu_profile {
    uint64_t *ns[2];
    uint64_t calls[2]; /* graph calls made while profiling */
    uint32_t n_ops[2]; /* set by mica_cpu_exec_set_profile: ops past these are ignored */
    uint64_t t_begin;  /* private: the open op's start */
} mica_cpu_profile_t;

typedef enum mica_cpu_exec_status {
    MICA_CPU_EXEC_OK = 0,
    MICA_CPU_EXEC_BAD_ARGS = 1, /* n < 1, a token outside the vocabulary, or the
                                   tokens do not fit in the context: nothing ran */
    MICA_CPU_EXEC_REFUSED = 2,  /* a graph's run returned nonzero */
} mica_cpu_exec_status_t;

typedef struct mica_cpu_exec {
    const mica_abi_model_t *model; /* borrowed */
    mica_abi_env_t env;
    int32_t n_past; /* tokens in the KV cache */
    mica_cpu_profile_t *profile;
} mica_cpu_exec_t;

/* Binds a model table (already checked against the artifact: versions,
 * sizes, offsets) to its weights (64-byte aligned, model->weights_bytes),
 * an arena of model->arena_bytes (64-byte aligned), states[model->n_states]
 * (each 64-byte aligned, zeroed, of the table's size) and a pool. The
 * cache starts empty. */
void mica_cpu_exec_init(mica_cpu_exec_t *x, const mica_abi_model_t *model, const uint8_t *weights,
                        uint8_t *arena, uint8_t *const *states, mica_cpu_pool_t *pool);

/* Turns profiling on (profile, borrowed until turned off) or off (NULL). */
void mica_cpu_exec_set_profile(mica_cpu_exec_t *x, mica_cpu_profile_t *profile);

/* Runs tokens[0..n) at positions n_past .. n_past + n - 1: one decode call
 * for n == 1, else prefill calls of up to prefill.max_tokens tokens. With
 * rows_out (n * n_vocab floats, caller-owned) every token's logits row is
 * copied there; without, prefill computes only the last row. *out_last
 * (may be NULL) receives the last token's row in the arena, valid until the
 * next run. On failure n_past is as it was (KV rows past it are garbage
 * that nothing reads). */
mica_cpu_exec_status_t mica_cpu_exec_run(mica_cpu_exec_t *x, const int32_t *tokens, int32_t n,
                                         float *rows_out, const float **out_last);

/* Empties the KV cache (the next run starts at position 0). */
void mica_cpu_exec_reset(mica_cpu_exec_t *x);

#endif
