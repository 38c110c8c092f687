/* The `layout` pass: quantized weights packed into the target's int8
 * instruction tile, and the KV cache layout recorded.
 *
 * Weights. Every qmatmul / wmatmul whose weight triple (q u4|i8 [N, K],
 * scales and mins f16 [N, K/G]) is three row-major weight nodes without
 * views reads instead
 *
 *   q       tiled (ep, hp, lp):  physical [ceil(N/hp), ceil(K/lp), hp, lp]
 *   s, m    tiled (ep, hp, 1):   physical [ceil(N/hp), K/G, hp, 1]
 *
 * in the order ir/layout_index.h spells out (N and K padded with zeros,
 * padding counted in the bytes; u4 tiles in "halves" nibble order), with
 * types `u4[N,K] packed(EP,HP,LP) tiles[TN,TK,HP,LP] nibbles=halves` and
 * `f16[N,K/G] packed(EP,HP,1) tiles[TN,K/G,HP,1]`. The packed node keeps
 * the weight's name and note, with " packed for TILE" added.
 *
 * Bound weights (bytes) are packed once into the constant store: ctx->consts,
 * else the graph's own store, else a new one the graph holds. The key is
 * the row-major bytes (quantize's blob) and the tag "tile.EP.HP.LP", so a
 * program's second graph, whose weights point at the same quantize blobs,
 * finds the packed copy instead of packing again. Unbound weights (IR text
 * has no bytes) get the packed type with no data: the dump shows exactly
 * the types a compile would make. A weight also read by something that is
 * not packed keeps its row-major node beside the packed one.
 *
 * Target. The tile of ctx->target (mica_target_t.tile: avx512vnni 4/64/4,
 * avx2 4/8/4, sdot 12/8/4, i8mm 10/8/8, ...). Without a target (the
 * default context: `mica dump`, the golden tests) the pass packs for the
 * declared target MICA_LAYOUT_DEFAULT_TARGET, so results do not depend on
 * the machine. An OpenCL target leaves weights row-major: a GPU work item
 * reads one output row, and a row-major u4 / i8 row is already contiguous
 * 128-bit loads along K (K/2 or K bytes, a multiple of 16 when K is a
 * multiple of 32 or 16), which is what a W4A16 / W8A16 GEMV wants.
 *
 * KV cache. The state nodes k_cache.L / v_cache.L are [Hkv, C, D] head-major:
 * kv_store writes a new token's rows in place and attention_kv reads each
 * head's history contiguously, so nothing is ever reordered. The pass
 * records that in each state node's note (MICA_LAYOUT_KV_NOTE) and changes
 * nothing else there.
 */
#ifndef MICA_PASS_LAYOUT_H
#define MICA_PASS_LAYOUT_H

#include <stdbool.h>
#include <stdint.h>

#include "const_store.h"
#include "ir.h"
#include "passes.h"
#include "target.h"

/* The target packed for when the context has none. */
#define MICA_LAYOUT_DEFAULT_TARGET "x86-avx512vnni"

/* The note the pass puts on every state node. */
#define MICA_LAYOUT_KV_NOTE \
    "layout: head-major [Hkv, C, D], written in place by kv_store, read by attention_kv"

/* What one run of the pass did (all counts over the graph it rewrote). */
typedef struct mica_layout_stats {
    int64_t n_matmuls;      /* qmatmul / wmatmul nodes now reading packed weights */
    int64_t n_weights;      /* packed weight nodes in the new graph */
    int64_t n_packed;       /* of those, bound ones packed by this run */
    int64_t n_shared;       /* bound ones found in the store (packed for an earlier graph) */
    uint64_t bytes_plain;   /* row-major bytes of the bound weights packed (both kinds) */
    uint64_t bytes_packed;  /* their packed bytes, padding included */
} mica_layout_stats_t;

/* Rewrites *g as above for tile (ep, hp, lp) of `tile`, or, with tile
 * NULL, only records the KV layout (weights stay row-major). Bound weights
 * go into store, which the new graph then holds a reference to (store may
 * be NULL when no weight is bound). out_stats may be NULL. Fails, leaving
 * *g alone, on a tile the weights cannot take (u4 with hp*lp odd, sizes
 * above 4096) or a bound weight whose bytes do not match its type. */
mica_status_t mica_pass_layout(const mica_target_tile_t *tile, mica_const_store_t *store,
                               mica_graph_t **g, mica_layout_stats_t *out_stats, mica_diag_t *d);

/* The tile the pass packs for on target t (NULL: MICA_LAYOUT_DEFAULT_TARGET)
 * into *out; false (and *out zeroed) when it leaves weights row-major (an
 * OpenCL target). */
bool mica_layout_target_tile(const mica_target_t *t, mica_target_tile_t *out);

/* The pipeline's `layout` pass: the tile from ctx->target as above, the
 * store ctx->consts, else the graph's, else a new one. */
mica_status_t mica_pass_layout_run(mica_pass_ctx_t *ctx, mica_graph_t **g);

#endif
