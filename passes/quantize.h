/* The `quantize` pass: every matmul whose weight is a weight node gets its
 * weight in the form the chosen mode asks for, made once into the
 * compiler's constant store (ir/const_store.h):
 *
 *   w4a8, w8a8    act_scale + act_quant (int8 activations, one scale per row
 *                 and K-group) + qmatmul on u4 / i8 weights
 *   w4a16, w8a16  wmatmul on u4 / i8 weights (weight-only)
 *   f16, f32      matmul on the weight converted to f16 / dequantized to f32
 *
 * A quantized weight W [N, K] becomes three weight nodes NAME.q (u4 or i8
 * [N, K]), NAME.s and NAME.m (f16 [N, K/G]) with element
 * f32(f32(s * q) + m) per group of G along K (asymmetric min/max). GGUF
 * Q4_0, Q4_1 and Q8_0 tensors transcode without loss at G = 32 (Q8_0 only
 * to i8); everything else is dequantized and requantized, G = 64 by
 * default. A row that G does not divide takes the largest of 128, 64, 32,
 * 16, 8 (<= G) that does; the qmatmul / wmatmul group attribute and the
 * summary say so. The LM head (output.weight, or token_embd.weight used as
 * the head) follows the head option: by default (auto) it keeps the
 * source's width, u4 when the mode has 4-bit weights and the source is a
 * 4-bit block type that transcodes without loss (Q4_0, Q4_1), else i8;
 * int8 and int4 force it. The embedding op's table is never touched. The summary (optional) gets one line per quantized weight with
 * its quantization NMSE against the source's exact dequantized values.
 */
#ifndef MICA_PASS_QUANTIZE_H
#define MICA_PASS_QUANTIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "const_store.h"
#include "ir.h"
#include "passes.h"

typedef enum mica_quant_mode {
    MICA_QUANT_W4A8 = 0, /* the default (zeroed options) */
    MICA_QUANT_W8A8 = 1,
    MICA_QUANT_W4A16 = 2,
    MICA_QUANT_W8A16 = 3,
    MICA_QUANT_F16 = 4,
    MICA_QUANT_F32 = 5,
    MICA_QUANT_MODE_COUNT
} mica_quant_mode_t;

typedef enum mica_quant_head {
    MICA_QUANT_HEAD_AUTO = 0, /* the default: the source's width, see above */
    MICA_QUANT_HEAD_INT8 = 1,
    MICA_QUANT_HEAD_INT4 = 2,
} mica_quant_head_t;

/* Options of the pass. All zero is the default: w4a8, default weight
 * groups, activation group 32, auto head, no summary. */
typedef struct mica_quant_options {
    mica_quant_mode_t mode;
    int64_t group;          /* weight group: 0 = default rule, else 32, 64 or 128 */
    int64_t act_group;      /* activation group: 0 = 32, else 8, 16, 32, 64 or 128 */
    mica_quant_head_t head;
    char *summary;          /* NULL, or a NUL-terminated buffer the pass appends lines to */
    size_t summary_cap;     /* bytes of summary; text that does not fit is cut, ending "...\n" */
} mica_quant_options_t;

/* "w4a8", "w8a8", "w4a16", "w8a16", "f16", "f32"; NULL out of range. */
const char *mica_quant_mode_name(mica_quant_mode_t m);
/* Parses a mode name; MICA_QUANT_MODE_COUNT if unknown. */
mica_quant_mode_t mica_quant_mode_from_name(const char *name);

/* Rewrites *g as above (replacing it; the old graph is released) with the
 * new constants in store, which must outlive the graph. Running it on a
 * second graph of the same model with the same store and options reuses
 * the constants made for the first (keyed by the source weight's bytes).
 * A matmul whose rows no group of 8 or more divides stays a float matmul on
 * its source weight (the summary says so).
 * Fails, leaving *g alone, on bad options, values
 * f16 cannot hold, or a weight the source dtype cannot be read from. */
mica_status_t mica_pass_quantize(const mica_quant_options_t *opt, mica_const_store_t *store,
                                 mica_graph_t **g, mica_diag_t *d);

/* True when a tensor of src_dtype transcodes to q_dtype (u4 or i8) at
 * group 32 without loss: Q4_0 and Q4_1 to u4 or i8, Q8_0 to i8. */
bool mica_quant_is_lossless(mica_dtype_t src_dtype, mica_dtype_t q_dtype);

/* Quantizes one [n_rows, k] tensor in src_dtype (GGUF row-major bytes) to
 * q_dtype (u4 or i8) with groups of `group` along k: writes q (n_rows * k
 * elements: u4 two per byte, low nibble = even element), scales and mins
 * (n_rows * k / group little-endian f16 each); all three caller-owned.
 * Transcodes when group == 32 and mica_quant_is_lossless, else min/max per
 * group from the dequantized values (scale and min rounded to f16 first,
 * then q chosen against the rounded values):
 *   u4: s = (max-min)/15, m = min,          q = round((x-m)/s) in 0..15
 *   i8: s = (max-min)/255, m = min + 128 s, q = round((x-m)/s) in -128..127
 * (s = 0, q = 0 when max == min). *out_nmse (may be NULL) is
 * sum (deq - x)^2 / sum x^2 over the tensor (0 when all x are 0). */
mica_status_t mica_quant_tensor(mica_dtype_t src_dtype, const void *src, int64_t n_rows,
                                int64_t k, mica_dtype_t q_dtype, int64_t group, void *q,
                                void *scales, void *mins, double *out_nmse, mica_diag_t *d);

/* The pipeline's `quantize` pass: the options from ctx (quant, group,
 * head_quant), the constants in the graph's store ((*g)->consts, made if
 * the graph has none). */
mica_status_t mica_pass_quantize_run(mica_pass_ctx_t *ctx, mica_graph_t **g);

#endif
