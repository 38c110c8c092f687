/* A model object for the runtime's tests: the ABI of backends/cpu/mica_abi.h
 * over a tiny "model" whose logits are a known function of the tokens.
 *
 * The state "history" keeps the tokens at their positions. The logits of
 * position pos: token h = (sum over j <= pos of t[j] * (j + 1)) mod
 * FX_VOCAB scores W[0] (the first float of weights.bin), every other
 * token v scores ((31 v + h) mod 97) / 97 - 1, in [-1, 0). Greedy
 * decoding therefore emits h of the sequence so far. The logits are split
 * over FX_PARTS parts of the vocabulary through env->parallel_for.
 *
 * Built by the tests with `cc -shared -fPIC -nostdlib`; the macros below
 * make the broken variants the loader must refuse. It calls no library
 * function. Included directly (FX_IN_PROCESS) it gives the entry table
 * as the static fx_model, without the exported symbol.
 */
#include "mica_abi.h"

#ifndef FX_VOCAB
#define FX_VOCAB 32000
#endif
#ifndef FX_CONTEXT
#define FX_CONTEXT 64
#endif
#ifndef FX_CHUNK
#define FX_CHUNK 5
#endif
#define FX_PARTS 7
#define FX_LOGITS_AT 128 /* arena offset of the logits rows */
#ifndef FX_ABI_VERSION
#define FX_ABI_VERSION MICA_ABI_VERSION
#endif
#ifndef FX_STRUCT_SIZE
#define FX_STRUCT_SIZE sizeof(mica_abi_model_t)
#endif
#ifndef FX_ENTRY
#define FX_ENTRY mica_model_entry
#endif
#ifndef FX_ARCH
#define FX_ARCH "x86_64"
#endif
#ifndef FX_FEATURES
#define FX_FEATURES 0
#endif
#ifndef FX_WEIGHTS_BYTES
#define FX_WEIGHTS_BYTES 64
#endif
#ifndef FX_WEIGHTS_SUM
#define FX_WEIGHTS_SUM 0
#endif
#ifndef FX_WEIGHTS_SUM_XOR /* nonzero: claim another weights.bin than the manifest's */
#define FX_WEIGHTS_SUM_XOR 0
#endif

typedef struct fx_run {
    const mica_abi_env_t *env;
    const mica_abi_args_t *args;
    int32_t row0; /* first row computed */
} fx_run_t;

static void fx_logits_part(void *ctx, uint32_t part)
{
    const fx_run_t *r = ctx;
    const int32_t *hist = (const int32_t *)r->env->states[0];
    const float hit = *(const float *)r->env->weights;
    float *out = (float *)(r->env->arena + FX_LOGITS_AT);
    int32_t v0 = (int32_t)((int64_t)FX_VOCAB * part / FX_PARTS);
    int32_t v1 = (int32_t)((int64_t)FX_VOCAB * (part + 1) / FX_PARTS);
    for (int32_t row = r->row0; row < r->args->n_tokens; row++) {
        int32_t pos = r->args->n_past + row;
        uint64_t h = 0;
        for (int32_t j = 0; j <= pos; j++)
            h += (uint64_t)hist[j] * (uint64_t)(j + 1);
        h %= FX_VOCAB;
        for (int32_t v = v0; v < v1; v++)
            out[(int64_t)row * FX_VOCAB + v] =
                (uint64_t)v == h ? hit : (float)(((uint64_t)v * 31u + h) % 97u) / 97.0f - 1.0f;
    }
}

#ifdef FX_IN_PROCESS
static int fx_refuse; /* a test sets it: the next run returns 1 */
#else
#define fx_refuse 0
#endif

static int fx_run_graph(uint32_t graph, int32_t max_tokens, const mica_abi_env_t *env,
                        const mica_abi_args_t *args)
{
    if (fx_refuse || args->n_tokens < 1 || args->n_tokens > max_tokens || args->n_past < 0 ||
        args->n_past > FX_CONTEXT - args->n_tokens)
        return 1;
    for (int32_t i = 0; i < args->n_tokens; i++)
        if (args->tokens[i] < 0 || args->tokens[i] >= FX_VOCAB)
            return 1;
    if (env->trace)
        env->trace(env->trace_ctx, graph, 0, 1);
    int32_t *hist = (int32_t *)env->states[0];
    for (int32_t i = 0; i < args->n_tokens; i++)
        hist[args->n_past + i] = args->tokens[i];
    if (env->trace) {
        env->trace(env->trace_ctx, graph, 0, 0);
        env->trace(env->trace_ctx, graph, 1, 1);
    }
    fx_run_t r = {env, args, args->logits_all ? 0 : args->n_tokens - 1};
    env->parallel_for(env->pool, FX_PARTS, fx_logits_part, &r);
    if (env->trace)
        env->trace(env->trace_ctx, graph, 1, 0);
    return 0;
}

static int fx_prefill(const mica_abi_env_t *env, const mica_abi_args_t *args)
{
    return fx_run_graph(0, FX_CHUNK, env, args);
}

static int fx_decode(const mica_abi_env_t *env, const mica_abi_args_t *args)
{
    return fx_run_graph(1, 1, env, args);
}

static const mica_abi_op_t fx_ops[2] = {
    {"%1 store", "inline", 4, 0, 1.0, 1},
    {"%2 logits", "inline", 4 * FX_VOCAB, FX_VOCAB, 2.0, FX_PARTS},
};
static const mica_abi_state_t fx_states[1] = {{"history", FX_CONTEXT * 4}};

#ifdef FX_IN_PROCESS
static const mica_abi_model_t fx_model =
#else
__attribute__((visibility("default"))) const mica_abi_model_t FX_ENTRY =
#endif
    {FX_ABI_VERSION,
     FX_STRUCT_SIZE,
     "fixture",
     FX_ARCH,
     FX_FEATURES,
     FX_WEIGHTS_SUM ^ FX_WEIGHTS_SUM_XOR,
     FX_WEIGHTS_BYTES,
     FX_LOGITS_AT + (uint64_t)FX_CHUNK * FX_VOCAB * 4,
     1,
     fx_states,
     FX_VOCAB,
     FX_CONTEXT,
     {fx_prefill, FX_CHUNK, FX_LOGITS_AT, FX_CHUNK, 2, fx_ops},
     {fx_decode, 1, FX_LOGITS_AT, 1, 2, fx_ops}};
