/* Pass "fuse": operator fusion before quantization.
 *
 * One rewrite, and annotations that a code generator follows (they change
 * nothing the ref backend computes):
 *
 *  - SwiGLU: mul(silu(matmul(h, Wg)), matmul(h, Wu)), both matmuls reading
 *    the same h, Wg and Wu row-major weights of one dtype and one K, each
 *    intermediate read only there, becomes
 *        Wgu = weight "blk.N.ffn_gate_up.weight" [2F, K] (Wg's rows, then Wu's)
 *        y   = matmul(h, Wgu)   [.., 2F]
 *        swiglu(y)              [.., F]   (an epilogue of that matmul)
 *    Wgu's bytes are Wg's then Wu's (each row is whole blocks, so this holds
 *    for every row-wise dtype, GGUF blocks included). Bound weights (bytes
 *    in a model file) need ctx->consts: the merged bytes go there under key
 *    Wg's data and tag MICA_FUSE_GATE_UP_TAG, and a second graph (decode
 *    after prefill) finds them instead of copying again. Without a store
 *    the pattern is left alone and the mul's note says why. Unbound weights
 *    (IR text) merge into an unbound weight, since no bytes are needed.
 *  - Epilogues (MICA_FUSE_EPILOGUE): an add (bias or residual), a rope
 *    (through a view that only reshapes the row) or a swiglu whose producer
 *    is a matmul, or a node already fused into one, that nobody else reads,
 *    reading it without broadcasting. Note: "epilogue of @O (what)", O the
 *    matmul's origin.
 *  - Prologues (MICA_FUSE_PROLOGUE): an rms_norm whose every reader is a
 *    matmul reading it as the activation, without a view: it is computed
 *    while the matmul quantizes its activation rows. Note: "prologue: into
 *    the activation quantization of @O1, @O2, ..." (the readers' origins).
 *  - Attention (MICA_FUSE_SOFTMAX): attention and attention_kv compute their
 *    softmax inside the kernel. Note: "softmax fused".
 *
 * Notes name nodes by origin (@O), never by id (%N), because later passes
 * renumber nodes but keep origins.
 */
#ifndef MICA_FUSE_H
#define MICA_FUSE_H

#include "passes.h"

/* Node flags the fuse pass sets; it owns bits 0..7 (MICA_FUSE_FLAG_MASK). */
#define MICA_FUSE_EPILOGUE 0x1u /* computed in the epilogue of the matmul named in the note,
                                   on the output row that kernel just wrote; a kernel split
                                   along output channels must keep each row's epilogue
                                   inputs together (swiglu reads columns i and F + i) */
#define MICA_FUSE_PROLOGUE 0x2u /* computed in the prologue of its readers (the matmuls in
                                   the note), folded into their activation quantization */
#define MICA_FUSE_SOFTMAX 0x4u  /* the op's softmax runs inside its own kernel */
#define MICA_FUSE_FLAG_MASK 0xffu

/* Tag of a merged gate+up weight in the constant store (key: Wg's bytes). */
#define MICA_FUSE_GATE_UP_TAG "fuse.gate_up"

/* What one run of the pass did (counted on the graph it produced). */
typedef struct mica_fuse_stats {
    int32_t gate_up_merged;   /* swiglu rewrites */
    int32_t gate_up_skipped;  /* swiglu patterns left alone for lack of a constant store */
    int32_t epilogue_bias;    /* add of a rank-1 weight */
    int32_t epilogue_residual; /* other adds */
    int32_t epilogue_rope;
    int32_t epilogue_swiglu;
    int32_t prologue_rms_norm;
    int32_t softmax;          /* attention nodes */
} mica_fuse_stats_t;

/* Counts the fusion annotations of g (the flags and notes the pass wrote)
 * into *out. */
void mica_fuse_stats_count(const mica_graph_t *g, mica_fuse_stats_t *out);

#endif
