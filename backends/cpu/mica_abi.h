/* The ABI between a compiled model object and the runtime: the whole
 * contract, in one header that both sides include and nothing else.
 *
 * `mica compile` writes model.c (the prefill and decode schedules as
 * straight-line kernel calls with shapes, offsets and thread splits baked
 * in) and the generated kernels for the target's ISA, and builds them with
 * the target's C compiler into model.so. That object:
 *
 *   - exports one symbol, MICA_ABI_ENTRY_SYMBOL, a const mica_abi_model_t;
 *   - calls nothing but the callbacks in mica_abi_env_t and memcpy/memset
 *     (no DT_NEEDED entries, no libm, no TLS, no global mutable state), so
 *     the same aarch64 object loads under glibc and under Android's bionic,
 *     and two sessions may run it at once from two threads;
 *   - reads weights through env->weights (offsets from the artifact's
 *     manifest, baked in), keeps every activation in env->arena at the
 *     offsets the memory plan chose, and the KV caches in env->states.
 *
 * The runtime (runtime/, backends/cpu/) checks abi_version and struct_size
 * before it reads anything else of the entry table, allocates the arena
 * and the states once, and calls prefill/decode with run-time lengths.
 *
 * Versioning: MICA_ABI_VERSION changes whenever a field below changes
 * meaning, order or size; new fields are only ever appended, and
 * struct_size tells which a given side has.
 */
#ifndef MICA_ABI_H
#define MICA_ABI_H

#include <stddef.h>
#include <stdint.h>

#define MICA_ABI_VERSION 1u
#define MICA_ABI_ENTRY_SYMBOL "mica_model_entry"

#ifdef __cplusplus
extern "C" {
#endif

/* One part of a split op: part is in [0, n_parts). ctx is the model's. */
typedef void (*mica_abi_task_fn)(void *ctx, uint32_t part);

/* Called by the runtime around each scheduled op when profiling is on:
 * graph 0 prefill, 1 decode; op indexes the graph's mica_abi_op_t table;
 * begin 1 before the op, 0 after it. */
typedef void (*mica_abi_trace_fn)(void *trace_ctx, uint32_t graph, uint32_t op, int begin);

/* What the runtime passes in. Owned by the runtime; the model only reads
 * it (and writes through arena and states) for the length of one call. */
typedef struct mica_abi_env {
    uint32_t abi_version; /* MICA_ABI_VERSION of the runtime */
    uint32_t struct_size; /* sizeof(mica_abi_env_t) of the runtime */

    const uint8_t *weights; /* weights.bin, mapped read-only, 64-byte aligned */
    uint64_t weights_bytes; /* its size; the model's table says what it needs */
    uint8_t *arena;         /* the activation arena, 64-byte aligned, arena_bytes long */
    uint64_t arena_bytes;
    uint8_t *const *states; /* states[i]: state i of the model's table, 64-byte aligned,
                               zero when created, persistent across calls */
    uint32_t n_states;

    /* Runs fn(ctx, p) for every p in [0, n_parts), on as many threads as
     * the runtime has, and returns when all are done. Parts of one call
     * write disjoint memory; the split is the plan's, so results do not
     * depend on how many threads run them. */
    void (*parallel_for)(void *pool, uint32_t n_parts, mica_abi_task_fn fn, void *ctx);
    void *pool;

    mica_abi_trace_fn trace; /* NULL unless profiling */
    void *trace_ctx;
} mica_abi_env_t;

/* Run-time lengths of one call. */
typedef struct mica_abi_args {
    const int32_t *tokens; /* n_tokens token ids (read during the call) */
    int32_t n_tokens;      /* prefill: 1 .. chunk; decode: 1 */
    int32_t n_past;        /* tokens already in the KV cache: 0 .. context - n_tokens */
    int32_t logits_all;    /* prefill: > 0 computes the logits of every row (dump,
                              perplexity); 0 only row n_tokens - 1's (generation), the
                              other rows are then undefined; < 0 none (a prompt's chunk
                              before its last: the LM head is skipped, the KV cache is
                              written as always). An object that predates < 0 computes
                              every row then, which is no less correct */
} mica_abi_args_t;

/* A persistent tensor (a KV cache) the runtime allocates. */
typedef struct mica_abi_state {
    const char *name; /* "k_cache.0" */
    uint64_t bytes;   /* zero-filled at creation */
} mica_abi_state_t;

/* One scheduled op, for profiles: what the compiler predicted. */
typedef struct mica_abi_op {
    const char *label;   /* "%13 qmatmul f32[64,576]" */
    const char *kernel;  /* generated variant name, or "inline" */
    uint64_t bytes;      /* bytes read + written, as the schedule counted */
    uint64_t ops;        /* integer + float operations */
    double predicted_ns; /* the schedule's roofline time */
    uint32_t n_parts;    /* the plan's split */
} mica_abi_op_t;

/* One graph (prefill or decode) of the program. */
typedef struct mica_abi_graph {
    /* Runs the graph once. Returns 0, or 1 when args are out of range
     * (nothing is written then). */
    int (*run)(const mica_abi_env_t *env, const mica_abi_args_t *args);
    int32_t max_tokens;     /* rows per call: the prefill chunk, 1 for decode */
    uint64_t logits_offset; /* arena byte offset of the f32 logits output: row r
                               (r < n_tokens) at logits_offset + r * n_vocab * 4 */
    int32_t logits_rows;    /* rows of it written per call: n_tokens (prefill) or 1 */
    uint32_t n_ops;
    const mica_abi_op_t *ops;
} mica_abi_graph_t;

/* What a model object exports under MICA_ABI_ENTRY_SYMBOL. */
typedef struct mica_abi_model {
    uint32_t abi_version; /* MICA_ABI_VERSION the object was built for */
    uint32_t struct_size; /* sizeof(mica_abi_model_t) it was built with */
    const char *target;   /* target name it was compiled for, "x86-avx2" */
    const char *arch;     /* "x86_64" or "aarch64" */
    uint64_t features;    /* ISA feature bits it needs (runtime/target.h bit order) */
    uint64_t weights_checksum; /* FNV-1a 64 of weights.bin, as in the manifest */
    uint64_t weights_bytes;    /* size of weights.bin it was compiled against */
    uint64_t arena_bytes;      /* activation arena both graphs run in */
    uint32_t n_states;
    const mica_abi_state_t *states;
    int32_t n_vocab;
    int32_t context; /* KV capacity in tokens */
    mica_abi_graph_t prefill;
    mica_abi_graph_t decode;
} mica_abi_model_t;

#ifdef __cplusplus
}
#endif

#endif
