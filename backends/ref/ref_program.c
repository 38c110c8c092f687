#include "ref_program.h"

#include <stdlib.h>
#include <string.h>

#include "memplan.h"
#include "ref.h"

struct mica_ref_program {
    const mica_program_t *p;
    int64_t n_past;
    int32_t n_states;
    mica_ref_tensor_t *states; /* [n_states] names borrowed from the prefill graph */
    uint64_t state_bytes;
    int32_t *tokens, *pos;     /* [chunk] one call's ids and positions */
    int32_t len[2];            /* n_past, n_tokens */
    mica_memplan_t *plan[2];   /* prefill, decode: values in 4-byte elements */
    void *arena;               /* one arena for both, the larger plan's size */
    uint64_t arena_bytes;
};

static const mica_ref_tensor_t *find_state(const mica_ref_program_t *r, const char *name)
{
    for (int32_t k = 0; k < r->n_states; k++)
        if (strcmp(r->states[k].name, name) == 0)
            return &r->states[k];
    return NULL;
}

/* Every state of g must already be known with the same type. */
static mica_status_t check_states(const mica_ref_program_t *r, const mica_graph_t *g,
                                  const char *which, mica_diag_t *d)
{
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        if (n->op != MICA_OP_STATE)
            continue;
        const char *name = mica_node_name(n);
        const mica_ref_tensor_t *s = find_state(r, name);
        if (!s || !mica_type_equal(&s->type, &n->type))
            return mica_diag_set(d, MICA_ERR_INVALID,
                                 "the %s graph's state '%s' is not the prefill graph's", which,
                                 name);
    }
    return MICA_OK;
}

mica_status_t mica_ref_program_create(const mica_program_t *p, mica_ref_program_t **out_runner,
                                      mica_diag_t *d)
{
    mica_ref_program_t *r = calloc(1, sizeof *r);
    if (!r)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    r->p = p;
    mica_status_t s = MICA_OK;
    int32_t count = 0;
    for (int32_t i = 0; i < p->prefill->n_nodes; i++)
        count += p->prefill->nodes[i]->op == MICA_OP_STATE;
    r->states = calloc((size_t)(count ? count : 1), sizeof *r->states);
    r->tokens = calloc((size_t)p->chunk, sizeof *r->tokens);
    r->pos = calloc((size_t)p->chunk, sizeof *r->pos);
    if (!r->states || !r->tokens || !r->pos)
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; s == MICA_OK && i < p->prefill->n_nodes; i++) {
        const mica_node_t *n = p->prefill->nodes[i];
        if (n->op != MICA_OP_STATE)
            continue;
        mica_ref_tensor_t *t = &r->states[r->n_states];
        t->name = mica_node_name(n);
        t->type = n->type;
        int64_t numel = mica_type_numel(&n->type);
        t->data = calloc((size_t)numel, 4);
        if (!t->data) {
            s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for state '%s' (%lld values)",
                              t->name, (long long)numel);
            break;
        }
        r->n_states++;
        r->state_bytes += (uint64_t)numel * 4;
    }
    if (s == MICA_OK)
        s = check_states(r, p->decode, "decode", d);
    const mica_graph_t *gs[2] = {p->prefill, p->decode};
    for (int k = 0; k < 2 && s == MICA_OK; k++) {
        s = mica_memplan_compute(gs[k], MICA_MEMPLAN_REF, &r->plan[k], d);
        if (s == MICA_OK && (uint64_t)r->plan[k]->arena_bytes > r->arena_bytes)
            r->arena_bytes = (uint64_t)r->plan[k]->arena_bytes;
    }
    if (s == MICA_OK && !(r->arena = aligned_alloc(MICA_MEMPLAN_ALIGN, r->arena_bytes ? r->arena_bytes
                                                                        : MICA_MEMPLAN_ALIGN)))
        s = mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for an arena of %llu bytes",
                          (unsigned long long)r->arena_bytes);
    if (s != MICA_OK) {
        mica_ref_program_release(r);
        return s;
    }
    *out_runner = r;
    return MICA_OK;
}

void mica_ref_program_release(mica_ref_program_t *r)
{
    if (!r)
        return;
    for (int32_t k = 0; k < r->n_states; k++)
        free(r->states[k].data);
    free(r->states);
    free(r->tokens);
    free(r->pos);
    mica_memplan_release(r->plan[0]);
    mica_memplan_release(r->plan[1]);
    free(r->arena);
    free(r);
}

int64_t mica_ref_program_n_past(const mica_ref_program_t *r)
{
    return r->n_past;
}

void mica_ref_program_reset(mica_ref_program_t *r)
{
    r->n_past = 0; /* attention never reads past n_past, so no clearing */
}

uint64_t mica_ref_program_state_bytes(const mica_ref_program_t *r)
{
    return r->state_bytes;
}

uint64_t mica_ref_program_arena_bytes(const mica_ref_program_t *r)
{
    return r->arena_bytes;
}

/* One call of graph g (T token rows) on tokens[0..cnt). */
static mica_status_t run_call(mica_ref_program_t *r, const mica_graph_t *g, int64_t T,
                              const int32_t *tokens, int64_t cnt, bool all_logits,
                              float *out_logits, mica_diag_t *d)
{
    const int64_t V = r->p->cfg.n_vocab;
    for (int64_t t = 0; t < T; t++) {
        r->tokens[t] = t < cnt ? tokens[t] : 0; /* padding rows: any valid id */
        r->pos[t] = (int32_t)(r->n_past + t);
    }
    r->len[0] = (int32_t)r->n_past;
    r->len[1] = (int32_t)cnt;
    mica_type_t row = mica_type_make(MICA_DTYPE_I32, 1, &T);
    mica_type_t scalar = mica_type_make(MICA_DTYPE_I32, 0, NULL);
    const mica_ref_tensor_t in[4] = {
        {"tokens", row, r->tokens},
        {"pos", row, r->pos},
        {"n_past", scalar, &r->len[0]},
        {"n_tokens", scalar, &r->len[1]},
    };
    mica_ref_outputs_t *out = NULL;
    const mica_memplan_t *plan = r->plan[g == r->p->prefill ? 0 : 1];
    MICA_TRY(mica_ref_execute_planned(g, in, 4, r->states, r->n_states, plan->offset, r->arena,
                                      &out, d));
    const mica_ref_tensor_t *lg = mica_ref_outputs_find(out, "logits");
    mica_status_t s = MICA_OK;
    if (!lg || mica_type_numel(&lg->type) != T * V) {
        s = mica_diag_set(d, MICA_ERR_INVALID, "the program has no logits output of [%lld, %lld]",
                          (long long)T, (long long)V);
    } else if (all_logits) {
        memcpy(out_logits, lg->data, (size_t)(cnt * V) * sizeof(float));
    } else {
        memcpy(out_logits, (const float *)lg->data + (cnt - 1) * V, (size_t)V * sizeof(float));
    }
    mica_ref_outputs_release(out);
    if (s == MICA_OK)
        r->n_past += cnt;
    return s;
}

mica_status_t mica_ref_program_eval(mica_ref_program_t *r, const int32_t *tokens, int32_t n,
                                    bool all_logits, float *out_logits, mica_diag_t *d)
{
    const mica_program_t *p = r->p;
    if (n < 1)
        return mica_diag_set(d, MICA_ERR_INVALID, "no tokens to evaluate");
    for (int32_t i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= p->cfg.n_vocab)
            return mica_diag_set(d, MICA_ERR_RANGE, "token id %d is outside the vocabulary [0, %lld)",
                                 tokens[i], (long long)p->cfg.n_vocab);
    if (r->n_past + n > p->n_ctx)
        return mica_diag_set(d, MICA_ERR_RANGE, "%lld tokens exceed the compiled context of %lld",
                             (long long)(r->n_past + n), (long long)p->n_ctx);
    if (n == 1)
        return run_call(r, p->decode, 1, tokens, 1, all_logits, out_logits, d);
    const int64_t start = r->n_past, V = p->cfg.n_vocab;
    for (int64_t done = 0; done < n;) {
        int64_t cnt = n - done < p->chunk ? n - done : p->chunk;
        bool last = done + cnt == n;
        float *dst = all_logits ? out_logits + done * V : out_logits;
        mica_status_t s = MICA_OK;
        if (all_logits || last)
            s = run_call(r, p->prefill, p->chunk, tokens + done, cnt, all_logits, dst, d);
        else /* logits of a middle chunk are not wanted: write them to the last row's place */
            s = run_call(r, p->prefill, p->chunk, tokens + done, cnt, false, out_logits, d);
        if (s != MICA_OK) {
            r->n_past = start; /* what was written past start is never read */
            return s;
        }
        done += cnt;
    }
    return MICA_OK;
}
