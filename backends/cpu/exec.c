/* The executor (backends/cpu/exec.h). */
#include "exec.h"

#include <string.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* mica_abi_trace_fn over a mica_cpu_profile_t. */
static void trace(void *ctx, uint32_t graph, uint32_t op, int begin)
{
    mica_cpu_profile_t *p = ctx;
    uint64_t t = now_ns();
    if (begin) {
        p->t_begin = t;
        return;
    }
    if (graph < 2 && op < p->n_ops[graph] && p->ns[graph])
        p->ns[graph][op] += t - p->t_begin;
}

void mica_cpu_exec_init(mica_cpu_exec_t *x, const mica_abi_model_t *model, const uint8_t *weights,
                        uint8_t *arena, uint8_t *const *states, mica_cpu_pool_t *pool)
{
    memset(x, 0, sizeof *x);
    x->model = model;
    x->env.abi_version = MICA_ABI_VERSION;
    x->env.struct_size = (uint32_t)sizeof(mica_abi_env_t);
    x->env.weights = weights;
    x->env.weights_bytes = model->weights_bytes;
    x->env.arena = arena;
    x->env.arena_bytes = model->arena_bytes;
    x->env.states = states;
    x->env.n_states = model->n_states;
    x->env.parallel_for = mica_cpu_pool_parallel_for;
    x->env.pool = pool;
}

void mica_cpu_exec_set_profile(mica_cpu_exec_t *x, mica_cpu_profile_t *profile)
{
    x->profile = profile;
    if (profile) {
        profile->n_ops[0] = x->model->prefill.n_ops;
        profile->n_ops[1] = x->model->decode.n_ops;
    }
    x->env.trace = profile ? trace : NULL;
    x->env.trace_ctx = profile;
}

/* Row r of a graph's logits in the arena. */
static const float *logits_row(const mica_cpu_exec_t *x, const mica_abi_graph_t *g, int32_t r)
{
    return (const float *)(x->env.arena + g->logits_offset) + (size_t)r * (size_t)x->model->n_vocab;
}

mica_cpu_exec_status_t mica_cpu_exec_run(mica_cpu_exec_t *x, const int32_t *tokens, int32_t n,
                                         float *rows_out, const float **out_last)
{
    const mica_abi_model_t *m = x->model;
    if (n < 1 || n > m->context - x->n_past)
        return MICA_CPU_EXEC_BAD_ARGS;
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= m->n_vocab)
            return MICA_CPU_EXEC_BAD_ARGS;
    const int32_t n_past0 = x->n_past;
    const size_t row_bytes = (size_t)m->n_vocab * sizeof(float);
    const mica_abi_graph_t *g = n == 1 ? &m->decode : &m->prefill;
    const int32_t chunk = g->max_tokens;
    const float *last = NULL;
    for (int32_t done = 0; done < n;) {
        int32_t k = n - done < chunk ? n - done : chunk;
        /* every row's logits when asked; else only the last chunk's last row */
        mica_abi_args_t args = {tokens + done, k, x->n_past,
                                rows_out ? 1 : done + k < n ? -1 : 0};
        if (x->profile)
            x->profile->calls[g == &m->decode]++;
        if (g->run(&x->env, &args) != 0) {
            x->n_past = n_past0;
            return MICA_CPU_EXEC_REFUSED;
        }
        if (rows_out)
            memcpy(rows_out + (size_t)done * (size_t)m->n_vocab, logits_row(x, g, 0),
                   (size_t)k * row_bytes);
        last = done + k == n || rows_out ? logits_row(x, g, k - 1) : NULL;
        x->n_past += k;
        done += k;
    }
    if (out_last)
        *out_last = last;
    return MICA_CPU_EXEC_OK;
}

void mica_cpu_exec_reset(mica_cpu_exec_t *x)
{
    x->n_past = 0;
}
