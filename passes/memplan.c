#include "memplan.h"

#include <stdlib.h>
#include <string.h>

/* Bytes of one value of type t, or -1 if it cannot live in the arena. */
static int64_t value_bytes(const mica_type_t *t, mica_memplan_sizes_t sizes)
{
    if (mica_dtype_is_block_quant(t->dtype))
        return -1;
    int64_t numel = mica_type_numel(t);
    if (sizes == MICA_MEMPLAN_REF)
        return numel * 4;
    int64_t be = mica_dtype_block_elems(t->dtype), bb = mica_dtype_block_bytes(t->dtype);
    return (numel + be - 1) / be * bb;
}

static bool needs_arena(const mica_node_t *n)
{
    return n->op != MICA_OP_WEIGHT && n->op != MICA_OP_STATE && n->op != MICA_OP_KV_STORE &&
           n->op != MICA_OP_OUTPUT;
}

static int64_t align_up(int64_t x)
{
    return (x + MICA_MEMPLAN_ALIGN - 1) / MICA_MEMPLAN_ALIGN * MICA_MEMPLAN_ALIGN;
}

/* Sizes and lifetimes of every value of g into the plan's arrays. */
static mica_status_t lifetimes(const mica_graph_t *g, mica_memplan_sizes_t sizes,
                               int64_t *size, int32_t *first, int32_t *last, mica_diag_t *d)
{
    const int32_t n = g->n_nodes;
    for (int32_t i = 0; i < n; i++) {
        const mica_node_t *nd = g->nodes[i];
        /* inputs are written by the runtime before the graph runs */
        first[i] = nd->op == MICA_OP_INPUT ? 0 : i;
        last[i] = i;
        size[i] = 0;
        if (needs_arena(nd)) {
            int64_t b = value_bytes(&nd->type, sizes);
            if (b < 0)
                return mica_diag_set(d, MICA_ERR_UNSUPPORTED,
                                     "%%%d: a %s value cannot be held in the activation arena", i,
                                     mica_dtype_name(nd->type.dtype));
            size[i] = align_up(b > 0 ? b : 1);
        }
        for (int32_t k = 0; k < nd->n_inputs; k++) {
            int32_t v = nd->inputs[k].value;
            int32_t until = nd->op == MICA_OP_OUTPUT ? n : i; /* read by the runtime at the end */
            if (until > last[v])
                last[v] = until;
        }
    }
    return MICA_OK;
}

void mica_memplan_release(mica_memplan_t *plan)
{
    if (!plan)
        return;
    free(plan->offset);
    free(plan->size);
    free(plan->first);
    free(plan->last);
    free(plan);
}

/* Placement order: largest first, then earliest, then by id. */
typedef struct order_key {
    int64_t size;
    int32_t first, id;
} order_key_t;

static int cmp_order(const void *a, const void *b)
{
    const order_key_t *x = a, *y = b;
    if (x->size != y->size)
        return x->size > y->size ? -1 : 1;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static bool overlap_in_time(const mica_memplan_t *p, int32_t a, int32_t b)
{
    return p->first[a] <= p->last[b] && p->first[b] <= p->last[a];
}

mica_status_t mica_memplan_compute(const mica_graph_t *g, mica_memplan_sizes_t sizes,
                                   mica_memplan_t **out_plan, mica_diag_t *d)
{
    const int32_t n = g->n_nodes;
    const size_t cnt = (size_t)(n > 0 ? n : 1);
    mica_memplan_t *p = calloc(1, sizeof *p);
    order_key_t *order = malloc(cnt * sizeof *order);
    int32_t *placed = malloc(cnt * sizeof *placed); /* placed values by (offset, id) */
    if (p) {
        p->n_values = n;
        p->offset = malloc(cnt * sizeof *p->offset);
        p->size = malloc(cnt * sizeof *p->size);
        p->first = malloc(cnt * sizeof *p->first);
        p->last = malloc(cnt * sizeof *p->last);
    }
    mica_status_t s = MICA_OK;
    if (!p || !order || !placed || !p->offset || !p->size || !p->first || !p->last)
        s = mica_diag_set(d, MICA_ERR_NOMEM, "memplan: out of memory for %d values", n);
    if (s == MICA_OK)
        s = lifetimes(g, sizes, p->size, p->first, p->last, d);
    if (s == MICA_OK) {
        int32_t n_order = 0, n_placed = 0;
        for (int32_t i = 0; i < n; i++) {
            p->offset[i] = -1;
            if (p->size[i] > 0)
                order[n_order++] = (order_key_t){p->size[i], p->first[i], i};
        }
        qsort(order, (size_t)n_order, sizeof *order, cmp_order);
        for (int32_t k = 0; k < n_order; k++) {
            int32_t v = order[k].id;
            /* the lowest offset clear of every placed value alive at the
             * same time, walking them in offset order */
            int64_t at = 0;
            for (int32_t j = 0; j < n_placed; j++) {
                int32_t u = placed[j];
                if (!overlap_in_time(p, v, u))
                    continue;
                if (p->offset[u] >= at + p->size[v])
                    break; /* the gap before u is big enough */
                if (p->offset[u] + p->size[u] > at)
                    at = p->offset[u] + p->size[u];
            }
            p->offset[v] = at;
            if (at + p->size[v] > p->arena_bytes)
                p->arena_bytes = at + p->size[v];
            int32_t j = n_placed++; /* insert, keeping (offset, id) order */
            while (j > 0 && (p->offset[placed[j - 1]] > at ||
                             (p->offset[placed[j - 1]] == at && placed[j - 1] > v))) {
                placed[j] = placed[j - 1];
                j--;
            }
            placed[j] = v;
        }
    }
    free(order);
    free(placed);
    if (s != MICA_OK) {
        mica_memplan_release(p);
        return s;
    }
    *out_plan = p;
    return MICA_OK;
}

mica_status_t mica_memplan_check(const mica_graph_t *g, mica_memplan_sizes_t sizes,
                                 const mica_memplan_t *plan, mica_diag_t *d)
{
    const int32_t n = g->n_nodes;
    if (plan->n_values != n)
        return mica_diag_set(d, MICA_ERR_INVALID, "memplan: a plan of %d values for %d nodes",
                             plan->n_values, n);
    const size_t cnt = (size_t)(n > 0 ? n : 1);
    mica_memplan_t mine = {.n_values = n};
    mine.size = malloc(cnt * sizeof *mine.size);
    mine.first = malloc(cnt * sizeof *mine.first);
    mine.last = malloc(cnt * sizeof *mine.last);
    mica_status_t s = MICA_OK;
    if (!mine.size || !mine.first || !mine.last)
        s = mica_diag_set(d, MICA_ERR_NOMEM, "memplan: out of memory checking %d values", n);
    if (s == MICA_OK)
        s = lifetimes(g, sizes, mine.size, mine.first, mine.last, d);
    for (int32_t i = 0; s == MICA_OK && i < n; i++) {
        if (mine.size[i] == 0) {
            if (plan->offset[i] != -1)
                s = mica_diag_set(d, MICA_ERR_INVALID, "memplan: %%%d needs no memory but has some", i);
            continue;
        }
        int64_t off = plan->offset[i];
        if (off < 0 || off % MICA_MEMPLAN_ALIGN != 0 || off > plan->arena_bytes - mine.size[i])
            s = mica_diag_set(d, MICA_ERR_INVALID,
                              "memplan: %%%d at offset %lld (%lld bytes) is unaligned or outside "
                              "the arena of %lld",
                              i, (long long)off, (long long)mine.size[i],
                              (long long)plan->arena_bytes);
    }
    for (int32_t a = 0; s == MICA_OK && a < n; a++) {
        if (mine.size[a] == 0)
            continue;
        for (int32_t b = a + 1; b < n; b++) {
            if (mine.size[b] == 0 || !overlap_in_time(&mine, a, b))
                continue;
            int64_t a0 = plan->offset[a], a1 = a0 + mine.size[a];
            int64_t b0 = plan->offset[b], b1 = b0 + mine.size[b];
            if (a0 < b1 && b0 < a1) {
                s = mica_diag_set(d, MICA_ERR_INVALID,
                                  "memplan: %%%d [%lld, %lld) and %%%d [%lld, %lld) are alive "
                                  "together and share bytes",
                                  a, (long long)a0, (long long)a1, b, (long long)b0, (long long)b1);
                break;
            }
        }
    }
    free(mine.size);
    free(mine.first);
    free(mine.last);
    return s;
}

mica_status_t mica_pass_memplan_run(mica_pass_ctx_t *ctx, mica_graph_t **g)
{
    mica_memplan_t *plan = NULL;
    MICA_TRY(mica_memplan_compute(*g, MICA_MEMPLAN_DEVICE, &plan, ctx->diag));
    mica_status_t s = mica_memplan_check(*g, MICA_MEMPLAN_DEVICE, plan, ctx->diag);
    for (int32_t i = 0; s == MICA_OK && i < (*g)->n_nodes; i++) {
        mica_node_sched_t *sc = &(*g)->nodes[i]->sched;
        sc->has_mem = plan->offset[i] >= 0;
        sc->mem_offset = sc->has_mem ? plan->offset[i] : 0;
    }
    mica_memplan_release(plan);
    return s;
}

int64_t mica_memplan_arena_bytes(const mica_graph_t *g)
{
    int64_t end = 0;
    mica_memplan_sizes_t sizes = MICA_MEMPLAN_DEVICE;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        const mica_node_t *n = g->nodes[i];
        if (!n->sched.has_mem)
            continue;
        int64_t e = n->sched.mem_offset + align_up(value_bytes(&n->type, sizes));
        end = e > end ? e : end;
    }
    return end;
}
