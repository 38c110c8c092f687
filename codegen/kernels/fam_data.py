"""Kernel families for data and float matmuls (read by codegen/gen_kernels.py).

Python 3 standard library only. Families:

    embedding_<t>  rows of a table in one GGUF dtype t, dequantized to f32
    copy           the raster op: strided copy of rank 1..4, memcpy of runs
    kv_store       new K or V rows into a head-major f32 cache
    sgemm_f32/f16  x f32 times a row-major f32 / f16 weight (f32/f16 modes)
    wgemm_u4/i8    x f32 times the tiled u4 / i8 weight (w4a16, w8a16)

The portable C lives in data_embed.c.in, data_move.c.in and data_gemm.c.in
(sections "/*@@ NAME @@*/", @KEY@ placeholders). The vector sgemm and wgemm
are written here from a small dialect table (DIALECTS: vector type and the
spelling of load, broadcast, FMA, store per ISA), one template for AVX2,
AVX-512 and NEON:

  Both are panel matmuls: a block of output channels by KC of the
  reduction is laid out as an f32 panel on the stack (at most 8 KiB) --
  sgemm transposes the row-major weight into it (8x8 in ymm, 4x4 on NEON),
  wgemm dequantizes the tiled weight (w = s * q + m, the product exact, so
  the f32 value is ir/quant.c's) -- then tiles of MR rows of x by the
  panel's channels (vectors along the channels) broadcast x and FMA. Each
  output is one FMA chain in order of k, carried in y from panel to panel,
  whatever tile computes it, so any split of the m and n ranges gives the
  same bits. A call of one row (decode) takes a path without the panel
  (weights transposed or dequantized in registers, several row blocks at
  once for independent chains) that performs the same FMAs in the same
  order, so it gives the same bits too.

ISAs without a special version (scalar) render the portable C under their
own name. Nothing here depends on time or the environment.
"""

import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))

EMBED_TYPES = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k",
               "q4_k", "q5_k", "q6_k"]
# Elements and bytes per block (ir/dtypes.def).
EMBED_BLOCKS = {"f32": (1, 4), "f16": (1, 2), "bf16": (1, 2), "q8_0": (32, 34),
                "q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24),
                "q2_k": (256, 84), "q3_k": (256, 110), "q4_k": (256, 144), "q5_k": (256, 176),
                "q6_k": (256, 210)}

FAMILIES = (["embedding_" + t for t in EMBED_TYPES] +
            ["copy", "kv_store", "sgemm_f32", "sgemm_f16", "wgemm_u4", "wgemm_i8"])

_EMBED_PROTO = ("void NAME(const uint8_t *table, int64_t row_bytes, const int32_t *ids, "
                "float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t d)")
_SGEMM_PROTO = ("void NAME(const float *x, int64_t ldx, const void *w, float *y, int64_t ldy, "
                "int32_t m0, int32_t m1, int32_t n0, int32_t n1, int32_t k)")
_WGEMM_PROTO = ("void NAME(const float *x, int64_t ldx, const uint8_t *wq, const uint16_t *ws, "
                "const uint16_t *wm, float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n0, "
                "int32_t n1, int32_t n, int32_t k, int32_t group)")

PROTOS = dict([("embedding_" + t, _EMBED_PROTO) for t in EMBED_TYPES] + [
    ("copy", "void NAME(const uint8_t *src, uint8_t *dst, int32_t elem_bytes, "
             "const int32_t *size, const int64_t *sstride, const int64_t *dstride, "
             "int32_t rank, int32_t r0, int32_t r1)"),
    ("kv_store", "void NAME(float *cache, int32_t cap, int32_t d, const float *x, int64_t sxt, "
                 "int64_t sxh, int32_t hkv, int32_t p0, int32_t n)"),
    ("sgemm_f32", _SGEMM_PROTO),
    ("sgemm_f16", _SGEMM_PROTO),
    ("wgemm_u4", _WGEMM_PROTO),
    ("wgemm_i8", _WGEMM_PROTO),
])

# The dialects of the vector ISAs. {p} is a pointer expression, {v} a
# vector, {s} a float; loadh converts L f16 at byte pointer {p} to f32.
# sgemm: MR rows of x by NT vectors of output channels; tr: the weight
# transpose (8x8 in ymm on x86, 4x4 on NEON); wgemm: MR rows by NT row
# tiles of the weight; wrow: row tiles at once on the one-row path.
_AVX2 = {
    "lanes": 8, "vec": "__m256", "zero": "_mm256_setzero_ps()",
    "load": "_mm256_loadu_ps({p})",
    "loadh": "_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)({p})))",
    "store": "_mm256_storeu_ps({p}, {v})",
    "bcast": "_mm256_set1_ps({s})",
    "fma": "_mm256_fmadd_ps({a}, {b}, {c})",
    "sgemm": (6, 2),
    "tr": "x86",
    "wgemm": (6, 2),
    "wrow": 4,
}

_AVX512 = dict(_AVX2)
_AVX512.update({
    "lanes": 16, "vec": "__m512", "zero": "_mm512_setzero_ps()",
    "load": "_mm512_loadu_ps({p})",
    "loadh": "_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)({p})))",
    "store": "_mm512_storeu_ps({p}, {v})",
    "bcast": "_mm512_set1_ps({s})",
    "fma": "_mm512_fmadd_ps({a}, {b}, {c})",
    "sgemm": (6, 4),
    "wgemm": (6, 1),
    "wrow": 1,
})

_NEON = {
    "lanes": 4, "vec": "float32x4_t", "zero": "vdupq_n_f32(0.0f)",
    "load": "vld1q_f32({p})",
    "loadh": "vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)({p}))))",
    "store": "vst1q_f32({p}, {v})",
    "bcast": "vdupq_n_f32({s})",
    "fma": "vfmaq_f32({c}, {a}, {b})",
    "sgemm": (6, 4),
    "tr": "neon",
    "wgemm": (6, 2),
    "wrow": 2,
}

# The dialect each transpose kind computes in (AVX-512 transposes in ymm).
_TR = {"x86": _AVX2, "neon": _NEON}
_AVX2["srow"] = 4
_AVX512["srow"] = 4
_NEON["srow"] = 8

# Tile dequantizers: C statements that turn the weight tile at q (hp rows
# by lp of the reduction, ir/layout_index.h order) into f32 vectors q<l>_<v>
# of quant values: lane i of q<l>_<v> is row v*L + i at reduction offset l.
# None where a dialect has no version for the tile (the portable
# mica_k_data_panel serves it).

def _deq_avx2(qt, hp, lp):
    if (hp, lp) != (8, 4):
        return None
    o = []
    if qt == "i8":
        o.append("__m256i b = _mm256_loadu_si256((const __m256i *)(const void *)q);")
    else:  # 16 bytes: low nibbles rows 0-3, high nibbles rows 4-7
        o += ["const __m128i r = _mm_loadu_si128((const __m128i *)(const void *)q);",
              "const __m128i f = _mm_set1_epi8(15);",
              "__m256i b = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(r, 4), f), "
              "_mm_and_si128(r, f));"]
    o += ["/* bytes (row, l) -> (l, row): within each 4-row lane, then across lanes */",
          "b = _mm256_shuffle_epi8(b, _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, "
          "3, 7, 11, 15, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));",
          "b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));",
          "const __m128i b01 = _mm256_castsi256_si128(b), b23 = _mm256_extracti128_si256(b, 1);",
          "const __m256 q0_0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b01));",
          "const __m256 q1_0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b01, 8)));",
          "const __m256 q2_0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b23));",
          "const __m256 q3_0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(b23, 8)));"]
    return o


def _deq_avx512(qt, hp, lp):
    if (hp, lp) != (64, 4):
        return None
    o = []
    if qt == "i8":  # 256 bytes, 16 rows per 64
        for c in range(4):
            o.append("__m512i z%d = _mm512_loadu_si512((const void *)(q + %d));" % (c, 64 * c))
    else:  # 128 bytes: low nibbles rows 0-31, high nibbles rows 32-63
        o += ["const __m512i r0 = _mm512_loadu_si512((const void *)q);",
              "const __m512i r1 = _mm512_loadu_si512((const void *)(q + 64));",
              "const __m512i f = _mm512_set1_epi8(15);",
              "__m512i z0 = _mm512_and_si512(r0, f), z1 = _mm512_and_si512(r1, f);",
              "__m512i z2 = _mm512_and_si512(_mm512_srli_epi16(r0, 4), f);",
              "__m512i z3 = _mm512_and_si512(_mm512_srli_epi16(r1, 4), f);"]
    o += ["const __m512i sh = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, "
          "6, 10, 14, 3, 7, 11, 15));",
          "const __m512i pm = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, "
          "11, 15);"]
    for c in range(4):
        o.append("z%d = _mm512_permutexvar_epi32(pm, _mm512_shuffle_epi8(z%d, sh));" % (c, c))
    for c in range(4):
        for l in range(4):
            o.append("const __m512 q%d_%d = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32("
                     "_mm512_extracti32x4_epi32(z%d, %d)));" % (l, c, c, l))
    return o


def _deq_neon(qt, hp, lp):
    if hp != 8 or lp not in (4, 8):
        return None
    o = []
    if lp == 4 and qt == "i8":
        o.append("const int8x8x4_t b = vld4_s8((const int8_t *)(const void *)q);")
        rows = ["b.val[%d]" % l for l in range(4)]
    else:
        # the tile's elements in order (row * lp + l) as a byte table
        if qt == "i8":  # lp 8: 64 bytes
            o.append("const uint8x16x4_t tt = {{vld1q_u8(q), vld1q_u8(q + 16), vld1q_u8(q + 32), "
                     "vld1q_u8(q + 48)}};")
        elif lp == 8:  # 32 bytes: low nibbles rows 0-3, high rows 4-7
            o += ["const uint8x16_t r0 = vld1q_u8(q), r1 = vld1q_u8(q + 16), f = vdupq_n_u8(15);",
                  "const uint8x16x4_t tt = {{vandq_u8(r0, f), vandq_u8(r1, f), vshrq_n_u8(r0, 4), "
                  "vshrq_n_u8(r1, 4)}};"]
        else:  # lp 4: 16 bytes
            o += ["const uint8x16_t r = vld1q_u8(q);",
                  "const uint8x16x2_t tt = {{vandq_u8(r, vdupq_n_u8(15)), vshrq_n_u8(r, 4)}};"]
        tbl = "vqtbl4q_u8" if (qt == "i8" or lp == 8) else "vqtbl2q_u8"
        rows = []
        for l in range(0, lp, 2):
            idx = [j * lp + l for j in range(8)] + [j * lp + l + 1 for j in range(8)]
            o.append("static const uint8_t i%d[16] = {%s};" % (l, ", ".join(map(str, idx))))
            o.append("const int8x16_t p%d = vreinterpretq_s8_u8(%s(tt, vld1q_u8(i%d)));"
                     % (l, tbl, l))
            rows += ["vget_low_s8(p%d)" % l, "vget_high_s8(p%d)" % l]
    for l in range(lp):
        o.append("const int16x8_t h%d = vmovl_s8(%s);" % (l, rows[l]))
        o.append("const float32x4_t q%d_0 = vcvtq_f32_s32(vmovl_s16(vget_low_s16(h%d)));" % (l, l))
        o.append("const float32x4_t q%d_1 = vcvtq_f32_s32(vmovl_high_s16(h%d));" % (l, l))
    return o


_AVX2["deq"] = _deq_avx2
_AVX512["deq"] = _deq_avx512
_NEON["deq"] = _deq_neon


DIALECTS = {"avx2": _AVX2, "avx512vnni": _AVX512, "neon": _NEON, "dotprod": _NEON,
            "i8mm": _NEON}

def _f16_row(d):
    """C of mica_k_data_f16_row: n f16 (little-endian bytes at src) to f32,
    L at a time in a vector dialect."""
    o = ["/* n f16 (little-endian bytes at src) to f32. */",
         "static inline void mica_k_data_f16_row(const uint8_t *src, float *dst, int32_t n)",
         "{", "    int32_t i = 0;"]
    if d:
        L = d["lanes"]
        o += ["    for (; i + %d <= n; i += %d)" % (L, L),
              "        %s;" % d["store"].format(p="dst + i", v=d["loadh"].format(p="src + 2 * i"))]
    o += ["    for (; i < n; i++)",
          "        dst[i] = mica_k_data_w_f16(src, i);", "}"]
    return "\n".join(o) + "\n"

PANEL_FLOATS = 2048  # the wgemm panel: 8 KiB of f32 on the stack
TEMPLATES = ["data_embed.c.in", "data_move.c.in", "data_gemm.c.in"]


def _sections(fn):
    """{section name: text} of a template, split at "/*@@ NAME @@*/" lines."""
    with open(os.path.join(HERE, fn), encoding="utf-8") as f:
        text = f.read()
    parts = re.split(r"^/\*@@ (\w+) @@\*/\n", text, flags=re.M)
    out = {}
    for i in range(1, len(parts), 2):
        out[parts[i]] = parts[i + 1].strip("\n") + "\n"
    return out


def _fill(text, **subs):
    for key, val in subs.items():
        text = text.replace("@%s@" % key, str(val))
    left = re.search(r"@[A-Z0-9_]+@", text)
    if left:
        raise ValueError("fam_data.py: template placeholder %s left unfilled" % left.group(0))
    return text


_SECT = {fn: _sections(fn) for fn in TEMPLATES}


def HELPERS(isa):
    parts = [_SECT[fn]["helpers"] for fn in TEMPLATES]
    d = DIALECTS.get(isa["name"])
    parts.append(_f16_row(d))
    if not d:
        parts += [_scalar_row(16)] + ([_scalar_row(isa["hp"])] if isa["hp"] != 16 else [])
        parts += [_scalar_wrows("f32"), _scalar_wrows("f16")]
    if d:
        parts += [_tr_block(d, "f32"), _tr_block(d, "f16")]
    return "\n".join(parts)


def _panel_kc(ldp, lp):
    kc = PANEL_FLOATS // ldp // lp * lp
    return max(kc, lp)


# ---------------------------------------------------------------------------
# The panel matmul shared by the vector sgemm and wgemm: a block of NT
# units (a unit is hp weight rows for wgemm, one vector of L for sgemm) by
# KC of the reduction is laid out as f32 panel[kk][c] (ldp = NT * unit
# columns, zero past the valid ones), then MR rows of x run over it.

def _micro(d, fn, mr, nv):
    """C of MR rows by nv vectors of the panel: acc (+)= x[r, kk] * panel[kk]."""
    L = d["lanes"]
    rr, vv = range(mr), range(nv)
    o = ["static inline void %s(const float *x, int64_t ldx, const float *panel, int32_t ldp, "
         "int32_t kl, float *y, int64_t ldy, int first)" % fn, "{"]
    o.append("    %s %s;" % (d["vec"], ", ".join("a%d%d" % (r, v) for r in rr for v in vv)))
    o.append("    if (first) {")
    for r in rr:
        for v in vv:
            o.append("        a%d%d = %s;" % (r, v, d["zero"]))
    o.append("    } else {")
    for r in rr:
        for v in vv:
            o.append("        a%d%d = %s;" % (r, v, d["load"].format(p="y + %d * ldy + %d" % (r, v * L))))
    o.append("    }")
    o.append("    for (int32_t kk = 0; kk < kl; kk++) {")
    o.append("        const float *p = panel + (int64_t)kk * ldp;")
    for v in vv:
        o.append("        const %s w%d = %s;" % (d["vec"], v, d["load"].format(p="p + %d" % (v * L))))
    for r in rr:
        o.append("        const %s b%d = %s;" % (d["vec"], r,
                                                d["bcast"].format(s="x[%d * ldx + kk]" % r)))
        for v in vv:
            o.append("        a%d%d = %s;" % (r, v, d["fma"].format(a="b%d" % r, b="w%d" % v,
                                                                   c="a%d%d" % (r, v))))
    o.append("    }")
    for r in rr:
        for v in vv:
            o.append("    %s;" % d["store"].format(p="y + %d * ldy + %d" % (r, v * L),
                                                  v="a%d%d" % (r, v)))
    o.append("}")
    return "\n".join(o) + "\n"


def _one_row_head(what):
    """The opening lines of a driver's one-row path (xm, ym, column j)."""
    return ["    if (m1 - m0 == 1) { /* one row: %s */" % what,
            "        const float *xm = x + m0 * ldx;",
            "        float *ym = y + m0 * ldy;",
            "        int32_t j = n0;"]


def _panel_gemm(d, name, proto, MR, NT, unit, kc, pack_call, fast_path):
    """C of the micro kernels, the row driver and the function name with
    prototype proto: for each block of NT units of columns and KC of the
    reduction, pack_call fills the panel, then rows of MR. fast_path: lines
    placed first in the body (a path that must give the same bits)."""
    L = d["lanes"]
    ldp = NT * unit
    texts = []
    for t in range(1, NT + 1):
        for r in range(1, MR + 1):
            texts.append(_micro(d, "%s_u%dx%d" % (name, r, t), r, t * unit // L))
    calls = []
    for t in range(1, NT + 1):
        calls.append("    %sif (nt == %d) {" % ("" if t == 1 else "} else ", t))
        calls.append("        switch (mr) {")
        for r in range(MR, 0, -1):
            calls.append("        case %d:" % r)
            calls.append("            %s_u%dx%d(xm, ldx, panel, %d, kl, yt, ldt, first);" %
                         (name, r, t, ldp))
            calls.append("            break;")
        calls.append("        default:")
        calls.append("            break;")
        calls.append("        }")
    calls.append("    }")
    body = [
        "/* mr rows of x (at xm) times the panel into y (through the stack tile",
        " * tb when the block has fewer than nt * %d valid columns). */" % unit,
        "static inline void %s_rows(const float *xm, int64_t ldx, const float *panel, int32_t kl,"
        % name,
        "                           float *ym, int64_t ldy, int32_t mr, int32_t nt, int32_t nc,"
        " int first)",
        "{",
        "    float tb[%d * %d];" % (MR, ldp),
        "    float *yt = ym;",
        "    int64_t ldt = ldy;",
        "    if (nc < nt * %d) {" % unit,
        "        yt = tb;",
        "        ldt = %d;" % ldp,
        "        for (int32_t r = 0; r < mr; r++)",
        "            for (int32_t c = 0; c < %d; c++)" % ldp,
        "                tb[r * %d + c] = !first && c < nc ? ym[r * ldy + c] : 0.0f;" % ldp,
        "    }",
    ] + calls + [
        "    if (yt == tb)",
        "        for (int32_t r = 0; r < mr; r++)",
        "            for (int32_t c = 0; c < nc; c++)",
        "                ym[r * ldy + c] = tb[r * %d + c];" % ldp,
        "}",
        "",
        proto.replace("NAME", name),
        "{",
        "    float panel[%d * %d]; /* [KC][%d] weights as f32 */" % (kc, ldp, ldp),
        "    if (k <= 0) { /* an empty reduction: zeros */",
        "        for (int32_t m = m0; m < m1; m++)",
        "            for (int32_t j = n0; j < n1; j++)",
        "                y[m * ldy + j] = 0.0f;",
        "        return;",
        "    }",
    ] + fast_path + [
        "    for (int32_t j0 = n0; j0 < n1; j0 += %d) {" % ldp,
        "        const int32_t nc = n1 - j0 < %d ? n1 - j0 : %d;" % (ldp, ldp),
        "        const int32_t nt = (nc + %d) / %d;" % (unit - 1, unit),
        "        for (int32_t kc = 0; kc < k; kc += %d) {" % kc,
        "            const int32_t kl = k - kc < %d ? k - kc : %d;" % (kc, kc),
        "            " + pack_call,
        "            for (int32_t m = m0; m < m1; m += %d) {" % MR,
        "                const int32_t mr = m1 - m < %d ? m1 - m : %d;" % (MR, MR),
        "                %s_rows(x + m * ldx + kc, ldx, panel, kl, y + m * ldy + j0, ldy, mr, nt,"
        % name,
        "                        nc, kc == 0);",
        "            }",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(texts) + "\n" + "\n".join(body) + "\n"


# ---------------------------------------------------------------------------
# vector sgemm: the panel is the weight rows transposed

def _tr_lines(d, wtype):
    """C statements that load B rows of B weights at w (row stride rs bytes)
    and leave column l (row i in lane i) in the vector c<l> (B = 8 on x86,
    in ymm also under AVX-512; 4 on NEON)."""
    f32 = wtype == "f32"
    if d["tr"] == "x86":
        ld = ("_mm256_loadu_ps((const float *)(const void *)(w + %d * rs))" if f32 else
              "_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(w + %d * rs)))")
        o = ["const __m256 %s;" % ", ".join("r%d = %s" % (i, ld % i) for i in range(8))]
        o.append("const __m256 %s;" % ", ".join(
            "t%d = _mm256_unpack%s_ps(r%d, r%d)" % (i, "lo" if i % 2 == 0 else "hi",
                                                  i // 2 * 2, i // 2 * 2 + 1) for i in range(8)))
        pairs = [(0, 2, "0x44"), (0, 2, "0xee"), (1, 3, "0x44"), (1, 3, "0xee")]
        o.append("const __m256 %s;" % ", ".join(
            "u%d = _mm256_shuffle_ps(t%d, t%d, %s)" % (h * 4 + i, a + 4 * h, b + 4 * h, imm)
            for h in range(2) for i, (a, b, imm) in enumerate(pairs)))
        o.append("const __m256 %s;" % ", ".join(
            "c%d = _mm256_permute2f128_ps(u%d, u%d, %s)" % (l, l % 4, l % 4 + 4,
                                                          "0x20" if l < 4 else "0x31")
            for l in range(8)))
        return o
    ld = ("vld1q_f32((const float *)(const void *)(w + %d * rs))" if f32 else
          "vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)(const void *)"
          "(w + %d * rs))))")
    o = ["const float32x4_t %s;" % ", ".join("r%d = %s" % (i, ld % i) for i in range(4)),
         "const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(r0, r1)), "
         "t1 = vreinterpretq_f64_f32(vtrn2q_f32(r0, r1));",
         "const float64x2_t t2 = vreinterpretq_f64_f32(vtrn1q_f32(r2, r3)), "
         "t3 = vreinterpretq_f64_f32(vtrn2q_f32(r2, r3));"]
    o.append("const float32x4_t %s;" % ", ".join(
        "c%d = vreinterpretq_f32_f64(vtrn%sq_f64(t%d, t%d))" % (l, f, a, b)
        for l, (f, a, b) in enumerate([("1", 0, 2), ("1", 1, 3), ("2", 0, 2), ("2", 1, 3)])))
    return o


def _tr_block(d, wtype):
    """C of mica_k_data_tr_<wtype>: B rows of B weights at w (row stride rs
    bytes) transposed into p[l * ldp + i]."""
    t = _TR[d["tr"]]
    o = ["static inline void mica_k_data_tr_%s(const uint8_t *w, int64_t rs, float *p, "
         "int32_t ldp)" % wtype, "{"]
    o += ["    " + line for line in _tr_lines(d, wtype)]
    for l in range(t["lanes"]):
        o.append("    %s;" % t["store"].format(p="p + %d * ldp" % l, v="c%d" % l))
    o.append("}")
    return "\n".join(o) + "\n"


def _sgemm_row(d, fn, wtype, g):
    """C of the one-row path: x (k) times the g*B weight rows from j0, in
    registers B rows to a vector: every output adds x[i] * w[j][i] by FMA in
    order of i, as the panel path does, so the bits agree. nr < B (only with
    g == 1) reads the first nr rows and writes nr outputs."""
    t = _TR[d["tr"]]
    B, wb = t["lanes"], 4 if wtype == "f32" else 2
    vec = t["vec"]
    o = ["static inline void %s(const float *x, const uint8_t *wb, int32_t k, int32_t j0, "
         "int32_t nr, float *yt)" % fn, "{",
         "    const int64_t rs = (int64_t)k * %d;" % wb,
         "    %s %s;" % (vec, ", ".join("a%d = %s" % (i, t["zero"]) for i in range(g))),
         "    int32_t i = 0;",
         "    if (nr == %d) {" % (g * B),
         "        for (; i + %d <= k; i += %d) {" % (B, B)]
    for l in range(B):
        o.append("            const %s x%d = %s;" % (vec, l, t["bcast"].format(s="x[i + %d]" % l)))
    for gi in range(g):
        o.append("            {")
        o.append("                const uint8_t *w = wb + (int64_t)(j0 + %d) * rs + (int64_t)i * %d;"
                 % (gi * B, wb))
        o += ["                " + line for line in _tr_lines(d, wtype)]
        for l in range(B):
            o.append("                a%d = %s;" % (gi, t["fma"].format(a="x%d" % l, b="c%d" % l,
                                                                      c="a%d" % gi)))
        o.append("            }")
    o += ["        }", "    }",
          "    for (; i < k; i++) { /* the tail, and every i of a short block */",
          "        float col[%d];" % (g * B),
          "        for (int32_t r = 0; r < %d; r++)" % (g * B),
          "            col[r] = r < nr ? mica_k_data_w_%s(wb + (int64_t)(j0 + r) * rs, i) : 0.0f;"
          % wtype,
          "        const %s xi = %s;" % (vec, t["bcast"].format(s="x[i]"))]
    for gi in range(g):
        o.append("        a%d = %s;" % (gi, t["fma"].format(
            a="xi", b=t["load"].format(p="col + %d" % (gi * B)), c="a%d" % gi)))
    o += ["    }", "    float out[%d];" % (g * B)]
    for gi in range(g):
        o.append("    %s;" % t["store"].format(p="out + %d" % (gi * B), v="a%d" % gi))
    o += ["    for (int32_t r = 0; r < nr; r++)", "        yt[r] = out[r];", "}"]
    return "\n".join(o) + "\n"


def _sgemm_pack(d, fn, wtype, ldp):
    """C of the sgemm panel packer: panel[kk * ldp + c] = w[j0 + c][kc + kk]
    (f32) for c < nc, 0 for nc <= c < ldp."""
    B = 8 if d["tr"] == "x86" else 4
    wb = 4 if wtype == "f32" else 2
    return "\n".join([
        "static inline void %s(const uint8_t *w, int32_t k, int32_t j0, int32_t nc, int32_t kc, "
        "int32_t kl, float *panel)" % fn,
        "{",
        "    const int64_t rs = (int64_t)k * %d;" % wb,
        "    int32_t c = 0;",
        "    for (; c + %d <= nc; c += %d) {" % (B, B),
        "        const uint8_t *r = w + (int64_t)(j0 + c) * rs + (int64_t)kc * %d;" % wb,
        "        int32_t kk = 0;",
        "        for (; kk + %d <= kl; kk += %d)" % (B, B),
        "            mica_k_data_tr_%s(r + (int64_t)kk * %d, rs, panel + (int64_t)kk * %d + c, %d);"
        % (wtype, wb, ldp, ldp),
        "        for (; kk < kl; kk++)",
        "            for (int32_t i = 0; i < %d; i++)" % B,
        "                panel[(int64_t)kk * %d + c + i] = mica_k_data_w_%s(r + i * rs, kk);"
        % (ldp, wtype),
        "    }",
        "    for (; c < %d; c++) {" % ldp,
        "        if (c < nc) {",
        "            const uint8_t *r = w + (int64_t)(j0 + c) * rs + (int64_t)kc * %d;" % wb,
        "            for (int32_t kk = 0; kk < kl; kk++)",
        "                panel[(int64_t)kk * %d + c] = mica_k_data_w_%s(r, kk);" % (ldp, wtype),
        "        } else {",
        "            for (int32_t kk = 0; kk < kl; kk++)",
        "                panel[(int64_t)kk * %d + c] = 0.0f;" % ldp,
        "        }",
        "    }",
        "}",
    ]) + "\n"


def _sgemm_vec(isa, d, wtype):
    MR, NT = d["sgemm"]
    L = d["lanes"]
    ldp = NT * L
    kc = _panel_kc(ldp, 1)
    name = "mica_k_%s_gemm_%dx%d__%s" % (wtype, MR, ldp, isa["name"])
    B, g = _TR[d["tr"]]["lanes"], d["srow"]
    text = _sgemm_pack(d, name + "_pack", wtype, ldp)
    text += _sgemm_row(d, name + "_r%d" % g, wtype, g)
    if g > 1:
        text += _sgemm_row(d, name + "_r1", wtype, 1)
    fast = _one_row_head("weights transposed in registers")
    if g > 1:
        fast += ["        for (; j + %d <= n1; j += %d)" % (g * B, g * B),
                 "            %s_r%d(xm, (const uint8_t *)w, k, j, %d, ym + j);" % (name, g, g * B)]
    fast += ["        for (; j < n1; j += %d)" % B,
             "            %s_r1(xm, (const uint8_t *)w, k, j, n1 - j < %d ? n1 - j : %d, ym + j);"
             % (name, B, B),
             "        return;",
             "    }"]
    text += _panel_gemm(d, name, _SGEMM_PROTO, MR, NT, L, kc,
                        "%s_pack((const uint8_t *)w, k, j0, nc, kc, kl, panel);" % name, fast)
    params = "mr=%d,nr=%d,kc=%d" % (MR, ldp, kc)
    return {"family": "sgemm_" + wtype, "name": name, "params": params}, text


def _scalar_row(cols):
    """C of mica_k_data_row_<cols>: one row of x (kl) times a [kl][cols]
    panel into y (nc valid columns; added to unless first), with named
    accumulators so plain C keeps them in registers."""
    cc = range(cols)
    o = ["static inline void mica_k_data_row_%d(const float *x, const float *panel, int32_t kl, "
         "float *y, int32_t nc, int first)" % cols, "{",
         "    float %s;" % ", ".join("a%d = first || nc <= %d ? 0.0f : y[%d]" % (c, c, c)
                                   for c in cc),
         "    for (int32_t kk = 0; kk < kl; kk++) {",
         "        const float xv = x[kk], *p = panel + (int64_t)kk * %d;" % cols]
    for c in cc:
        o.append("        a%d += xv * p[%d];" % (c, c))
    o += ["    }", "    float out[%d] = {%s};" % (cols, ", ".join("a%d" % c for c in cc)),
          "    for (int32_t c = 0; c < nc; c++)", "        y[c] = out[c];", "}"]
    return "\n".join(o) + "\n"


def _scalar_wrows(wtype):
    """C of mica_k_data_rows_<wtype>: the portable one-row path, x (k) times
    nr <= 16 weight rows at w, each output adding x[i] * w[j][i] in order of
    i as the panel path does (16 named accumulators, one per row)."""
    wb = 4 if wtype == "f32" else 2
    rr = range(16)
    o = ["static inline void mica_k_data_rows_%s(const float *x, const uint8_t *w, int32_t k, "
         "int32_t nr, float *y)" % wtype, "{",
         "    const int64_t rs = (int64_t)k * %d;" % wb,
         "    if (nr < 16) {",
         "        for (int32_t r = 0; r < nr; r++) {",
         "            float a = 0.0f;",
         "            for (int32_t i = 0; i < k; i++)",
         "                a += x[i] * mica_k_data_w_%s(w + r * rs, i);" % wtype,
         "            y[r] = a;",
         "        }",
         "        return;",
         "    }",
         "    float %s;" % ", ".join("a%d = 0.0f" % r for r in rr),
         "    for (int32_t i = 0; i < k; i++) {",
         "        const float xv = x[i];"]
    for r in rr:
        o.append("        a%d += xv * mica_k_data_w_%s(w + %d * rs, i);" % (r, wtype, r))
    o.append("    }")
    for r in rr:
        o.append("    y[%d] = a%d;" % (r, r))
    o.append("}")
    return "\n".join(o) + "\n"


def _sgemm_portable(isa, wtype):
    name = "mica_k_%s_gemm_1x16__%s" % (wtype, isa["name"])
    text = _fill(_SECT["data_gemm.c.in"]["sgemm"], NAME=name, WTYPE=wtype,
                 WBYTES=4 if wtype == "f32" else 2, COLS=16)
    return {"family": "sgemm_" + wtype, "name": name, "params": "mr=1,nr=16,kc=128"}, text


# ---------------------------------------------------------------------------
# vector wgemm: the panel is the tiled weight dequantized

def _wgemm_panel(d, fn, qt, hp, lp, ldp):
    """C of the dialect's panel dequantizer for one tile shape (the contract
    of mica_k_data_panel with hp, lp and ldp fixed), or None."""
    body = d["deq"](qt, hp, lp)
    if body is None:
        return None
    L, V = d["lanes"], hp // d["lanes"]
    tb = hp * lp // (2 if qt == "u4" else 1)
    vec = d["vec"]
    o = ["static inline void %s(const uint8_t *wq, const uint16_t *ws, const uint16_t *wm, "
         "int64_t t0, int32_t nt, int32_t k, int32_t group, int32_t kc, int32_t kl, "
         "float *panel)" % fn, "{",
         "    const int64_t kt = k / %d, ng = k / group;" % lp,
         "    %s %s;" % (vec, ", ".join("s%d = %s, o%d = %s" % (v, d["zero"], v, d["zero"])
                                      for v in range(V))),
         "    for (int32_t t = 0; t < nt; t++) {",
         "        const int64_t rt = t0 + t;",
         "        int32_t left = 0; /* reduction left in the current group */",
         "        for (int32_t kk = 0; kk < kl; kk += %d, left -= %d) {" % (lp, lp),
         "            const int32_t ka = kc + kk;",
         "            if (left == 0) { /* a new group: its scales and mins */",
         "                const int64_t g = (rt * ng + ka / group) * %d;" % hp,
         "                left = group - ka % group;"]
    for v in range(V):
        o.append("                s%d = %s;" % (v, d["loadh"].format(
            p="(const uint8_t *)(const void *)ws + 2 * (g + %d)" % (v * L))))
        o.append("                o%d = %s;" % (v, d["loadh"].format(
            p="(const uint8_t *)(const void *)wm + 2 * (g + %d)" % (v * L))))
    o += ["            }",
          "            const uint8_t *q = wq + (rt * kt + ka / %d) * %d;" % (lp, tb),
          "            float *pp = panel + (int64_t)kk * %d + t * %d;" % (ldp, hp)]
    o += ["            " + line for line in body]
    for l in range(lp):
        for v in range(V):
            o.append("            %s;" % d["store"].format(
                p="pp + %d" % (l * ldp + v * L),
                v=d["fma"].format(a="s%d" % v, b="q%d_%d" % (l, v), c="o%d" % v)))
    o += ["        }", "    }", "}"]
    return "\n".join(o) + "\n"


def _wgemm_row(d, fn, qt, hp, lp, nt):
    """C of one row of x times nt whole row tiles of the weight, dequantized
    in registers (the decode path): y[j] for hp*nt columns at yt. Each
    output adds x[k] * w(k) in order of k with the panel's w, so it gives the
    panel path's bits."""
    body = d["deq"](qt, hp, lp)
    L, V = d["lanes"], hp // d["lanes"]
    tb = hp * lp // (2 if qt == "u4" else 1)
    vec = d["vec"]
    tt, vv = range(nt), range(V)
    o = ["static inline void %s(const float *x, const uint8_t *wq, const uint16_t *ws, "
         "const uint16_t *wm, int64_t t0, int32_t k, int32_t group, float *yt)" % fn, "{",
         "    const int64_t kt = k / %d, ng = k / group;" % lp,
         "    %s %s;" % (vec, ", ".join("a%d%d = %s" % (t, v, d["zero"]) for t in tt for v in vv)),
         "    %s %s;" % (vec, ", ".join("s%d%d = %s, o%d%d = %s" % (t, v, d["zero"], t, v, d["zero"])
                                      for t in tt for v in vv)),
         "    for (int32_t ka = 0, left = 0; ka < k; ka += %d, left -= %d) {" % (lp, lp),
         "        if (left == 0) { /* a new group: its scales and mins */",
         "            left = group;"]
    for t in tt:
        o.append("            const int64_t g%d = ((t0 + %d) * ng + ka / group) * %d;" % (t, t, hp))
        for v in vv:
            o.append("            s%d%d = %s;" % (t, v, d["loadh"].format(
                p="(const uint8_t *)(const void *)ws + 2 * (g%d + %d)" % (t, v * L))))
            o.append("            o%d%d = %s;" % (t, v, d["loadh"].format(
                p="(const uint8_t *)(const void *)wm + 2 * (g%d + %d)" % (t, v * L))))
    o.append("        }")
    for l in range(lp):
        o.append("        const %s x%d = %s;" % (vec, l, d["bcast"].format(s="x[ka + %d]" % l)))
    for t in tt:
        o.append("        {")
        o.append("            const uint8_t *q = wq + ((t0 + %d) * kt + ka / %d) * %d;" % (t, lp, tb))
        o += ["            " + line for line in body]
        for l in range(lp):
            for v in vv:
                w = d["fma"].format(a="s%d%d" % (t, v), b="q%d_%d" % (l, v), c="o%d%d" % (t, v))
                o.append("            a%d%d = %s;" % (t, v, d["fma"].format(
                    a="x%d" % l, b=w, c="a%d%d" % (t, v))))
        o.append("        }")
    o.append("    }")
    for t in tt:
        for v in vv:
            o.append("    %s;" % d["store"].format(p="yt + %d" % (t * hp + v * L),
                                                  v="a%d%d" % (t, v)))
    o.append("}")
    return "\n".join(o) + "\n"


def _wgemm_row_driver(name, hp, nr):
    """The decode path of the driver: one row, weights dequantized in
    registers, nr row tiles at a time (the last tile through a stack row)."""
    o = _one_row_head("weights dequantized in registers")
    if nr > 1:
        o += ["        for (; j + %d <= n1; j += %d)" % (nr * hp, nr * hp),
              "            %s_r%d(xm, wq, ws, wm, j / %d, k, group, ym + j);" % (name, nr, hp)]
    o += ["        for (; j + %d <= n1; j += %d)" % (hp, hp),
          "            %s_r1(xm, wq, ws, wm, j / %d, k, group, ym + j);" % (name, hp),
          "        if (j < n1) {",
          "            float yr[%d];" % hp,
          "            %s_r1(xm, wq, ws, wm, j / %d, k, group, yr);" % (name, hp),
          "            for (int32_t c = 0; c < n1 - j; c++)",
          "                ym[j + c] = yr[c];",
          "        }",
          "        return;",
          "    }"]
    return o


def _wgemm_vec(isa, d, qt):
    MR, NT = d["wgemm"]
    L, hp, lp = d["lanes"], isa["hp"], isa["lp"]
    if hp % L:
        raise ValueError("fam_data.py: %s tile hp %d is not whole vectors of %d" %
                         (isa["name"], hp, L))
    ldp = NT * hp
    kc = _panel_kc(ldp, lp)
    name = "mica_k_w%s_gemm_%dx%d__%s" % (qt, MR, ldp, isa["name"])
    panel = _wgemm_panel(d, name + "_panel", qt, hp, lp, ldp)
    texts, fast = [], []
    if panel:
        texts.append(panel)
        pack = "%s_panel(wq, ws, wm, j0 / %d, nt, k, group, kc, kl, panel);" % (name, hp)
        nr = d["wrow"]
        texts.append(_wgemm_row(d, name + "_r1", qt, hp, lp, 1))
        if nr > 1:
            texts.append(_wgemm_row(d, name + "_r%d" % nr, qt, hp, lp, nr))
        fast = _wgemm_row_driver(name, hp, nr)
    else:
        pack = ("mica_k_data_panel(%d, wq, ws, wm, j0 / %d, nt, %d, %d, k, group, kc, kl, "
                "panel, %d);" % (1 if qt == "u4" else 0, hp, hp, lp, ldp))
    text = "".join(texts) + _panel_gemm(d, name, _WGEMM_PROTO, MR, NT, hp, kc, pack, fast)
    params = "mr=%d,nr=%d,hp=%d,lp=%d,kc=%d" % (MR, ldp, hp, lp, kc)
    return {"family": "wgemm_" + qt, "name": name, "params": params}, text


def _wgemm_portable(isa, qt):
    hp, lp = isa["hp"], isa["lp"]
    kc = _panel_kc(hp, lp)
    name = "mica_k_w%s_gemm_1x%d__%s" % (qt, hp, isa["name"])
    text = _fill(_SECT["data_gemm.c.in"]["wgemm"], NAME=name, HP=hp, LP=lp, KC=kc,
                 U4=1 if qt == "u4" else 0, COLS=hp)
    params = "mr=1,nr=%d,hp=%d,lp=%d,kc=%d" % (hp, hp, lp, kc)
    return {"family": "wgemm_" + qt, "name": name, "params": params}, text


# ---------------------------------------------------------------------------

def generate(isa):
    if isa["hp"] > 64 or isa["lp"] < 1 or isa["hp"] * isa["lp"] % 2:
        raise ValueError("fam_data.py: tile (%d, %d) of %s is outside what the panel "
                         "dequantizer reads" % (isa["hp"], isa["lp"], isa["name"]))
    out = []
    n = isa["name"]
    for t in EMBED_TYPES:
        name = "mica_k_%s_embedding__%s" % (t, n)
        be, bb = EMBED_BLOCKS[t]
        out.append(({"family": "embedding_" + t, "name": name,
                     "params": "block=%d,bytes=%d" % (be, bb)},
                    _fill(_SECT["data_embed.c.in"]["embedding_" + t], NAME=name)))
    out.append(({"family": "copy", "name": "mica_k_x_copy_r4__" + n, "params": "rank=4"},
                _fill(_SECT["data_move.c.in"]["copy"], NAME="mica_k_x_copy_r4__" + n)))
    out.append(({"family": "kv_store", "name": "mica_k_f32_kv_store__" + n, "params": ""},
                _fill(_SECT["data_move.c.in"]["kv_store"], NAME="mica_k_f32_kv_store__" + n)))
    d = DIALECTS.get(n)
    for wt in ("f32", "f16"):
        out.append(_sgemm_vec(isa, d, wt) if d else _sgemm_portable(isa, wt))
    for qt in ("u4", "i8"):
        out.append(_wgemm_vec(isa, d, qt) if d else _wgemm_portable(isa, qt))
    return out
