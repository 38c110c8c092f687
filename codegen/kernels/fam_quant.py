"""Quantized matmul kernels: W4A8 / W8A8 GEMM (prefill) and GEMV (decode),
dynamic int8 activation quantization, and rms_norm fused with it.

Python 3 standard library only; read by codegen/gen_kernels.py (see its
docstring for FAMILIES / PROTOS / HELPERS / generate). The C lives in
templates beside this file:

    quant_portable.c.in   plain C: the scalar ISA's kernels and the helpers
                          every ISA shares (tile element, block sums, the
                          exact rounding of act_quant, the rms scale)
    quant_avx2.c.in       gemm/gemv loops over the AVX2 tile functions
                          (vpmaddubsw + vpmaddwd, tile 8x4)
    quant_avx512.c.in     the same over vpdpbusd zmm (AVX-512 VNNI, 64x4)
    quant_neon.c.in       the same over NEON tiles (smull/smlal, sdot, smmla)
    quant_avx2_act.c.in   act_quant / rms_act_quant for AVX2 and AVX-512
    quant_neon_act.c.in   act_quant / rms_act_quant for the NEON ISAs

The register-blocked tile functions themselves are unrolled here in Python
(_avx2_tile, _avx512_tile, _neon_tile): every accumulator a named variable,
one function per (rows, tiles) so the compiler allocates each cleanly.
DIALECT below holds what differs between the ISAs: which generator and
template, the register block (rows of activations x weight tiles) and, on
NEON, the dot scheme. Every family's entry point is a thin wrapper over a
static inline core taking the dtype as a constant, so u4 and i8 share one
body per ISA.
"""

import os
import string

HERE = os.path.dirname(os.path.abspath(__file__))

FAMILIES = ["qgemm_u4", "qgemv_u4", "qgemm_i8", "qgemv_i8", "act_quant", "rms_act_quant"]

_QMM = ("void NAME(const int8_t *xq, const float *xs, const uint8_t *wq, const uint16_t *ws, "
        "const uint16_t *wm, float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n0, "
        "int32_t n1, int32_t n, int32_t k, int32_t agroup, int32_t wgroup)")

PROTOS = {
    "qgemm_u4": _QMM,
    "qgemv_u4": _QMM,
    "qgemm_i8": _QMM,
    "qgemv_i8": _QMM,
    "act_quant": ("void NAME(const float *x, int64_t ldx, int8_t *xq, float *xs, int32_t m0, "
                  "int32_t m1, int32_t k, int32_t group)"),
    "rms_act_quant": ("void NAME(const float *x, int64_t ldx, const float *w, float eps, "
                      "int8_t *xq, float *xs, int32_t m0, int32_t m1, int32_t k, "
                      "int32_t group)"),
}

# What differs between the ISAs. kind: which generator and template
# (portable: quant_portable.c.in only); ep: rows of activations one gemm
# call holds in registers; tiles (avx2): weight tiles of 8 columns per call;
# gemm / gemv (NEON): the dot scheme of _neon_tile.
DIALECT = {
    "scalar": {"kind": "portable", "template": None, "ep": 1},
    "avx2": {"kind": "avx2", "template": "quant_avx2.c.in", "ep": 6, "tiles": 2},
    "avx512vnni": {"kind": "avx512", "template": "quant_avx512.c.in", "ep": 6},
    "neon": {"kind": "neon", "template": "quant_neon.c.in", "ep": 3, "gemm": "smlal",
             "gemv": "smlal"},
    "dotprod": {"kind": "neon", "template": "quant_neon.c.in", "ep": 6, "gemm": "sdot",
                "gemv": "sdot"},
    "i8mm": {"kind": "neon", "template": "quant_neon.c.in", "ep": 6, "gemm": "smmla",
             "gemv": "sdot8"},
}



# The end of one K-block step of every tile loop: move to the next
# activation group (ja) and weight group (jw) when the block count of each
# (ra, rw blocks per group) runs out.
_GROUP_ADVANCE = """        if (++ca == ra) {
            ca = 0;
            ja++;
        }
        if (++cw == rw) {
            cw = 0;
            jw++;
        }"""

# Per-row mins factors (and sums) the vector gemms keep on the stack, in
# floats: a whole chunk of rows for K up to 5120 at block 32 (fewer rows per
# chunk re-stream every weight tile per chunk). The kernel tests read it from
# the variant's params ("cm") to reach the inline path past it.
CMCAP = 10240


def _render(fname, isa, extra):
    with open(os.path.join(HERE, fname), encoding="utf-8") as f:
        text = f.read()
    subs = {"ISA": isa["name"], "HP": str(isa["hp"]), "LP": str(isa["lp"]),
            "EP": str(DIALECT[isa["name"]]["ep"]), "CMCAP": str(CMCAP)}
    subs.update(extra)
    return string.Template(text).substitute(subs)


# The mins of a symmetric source, when the caller passes the scales as the
# mins too (wm == ws; no mins array is read): Q4_0's zero point 8 (m = -8 s)
# for u4, none for i8 (Q8_0: m = 0). Exact in f32: -8 s only moves the
# exponent of an f16 scale.
ZP = {"u4": "-8.0f", "i8": "0.0f"}


# ---- AVX2: the register-blocked tile functions, unrolled here ----

def _avx2_tile(dt, rows, tiles, b32):
    """C of mica_kq_avx2_<dt>_r<rows>t<tiles>_<b32|any>: rows of y for
    `tiles` weight tiles of 8 columns over the whole K, every accumulator a
    named register. b32: blocks of exactly 32 of K (the common group), the
    8 steps of a block unrolled; any: blocks of any multiple of 4, in
    chunks of up to 8 steps. The float steps of one (m, n) are the same for
    every variant, so splits stay bit-identical."""
    u4 = dt == "u4"
    R, T = range(rows), range(tiles)
    o = []
    w = o.append
    w("static inline void mica_kq_avx2_%s_r%dt%d_%s(const int8_t *x, const float *xsr, int32_t nka,"
      % (dt, rows, tiles, "b32" if b32 else "any"))
    w("    const float *cm, int32_t cms, const uint8_t *wt, int64_t wts, const uint16_t *st,")
    w("    const uint16_t *mt, int64_t sts, float *y, int64_t ldy, int32_t cn, int32_t k,")
    w("    int32_t ag, int32_t wg, const uint8_t *pf)")
    w("{")
    w("    (void)pf;")
    if b32:
        w("    const int32_t b = 32, nb = k / 32, tb = %d;" % (16 if u4 else 32))
    else:
        w("    const int32_t b = ag < wg ? ag : wg, nb = k / b, steps = b / 4, tb = %d;"
          % (16 if u4 else 32))
    if u4:
        w("    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);")
        w("    const __m256i m0f = _mm256_set1_epi8(0x0f);")
    w("    const __m256i ones = _mm256_set1_epi16(1);")
    for r in R:
        w("    __m256 %s;" % ", ".join("a%d%d = _mm256_setzero_ps()" % (r, t) for t in T))
    w("    const int32_t ra = ag / b, rw = wg / b; /* blocks per scale of x, of w */")
    w("    int32_t ja = 0, jw = 0, ca = 0, cw = 0;")
    w("    for (int32_t j = 0; j < nb; j++) {")
    w("        const int32_t k0 = j * b;")
    w("        const uint8_t *wb = wt + (int64_t)(k0 / 4) * tb;")
    w("        const int8_t *xp = x + k0;")
    if rows == 1:
        # decode streams each weight once: ask for the lines of the block
        # 2 KiB ahead (measured best of 0.5 - 4 KiB on Zen 3)
        for t in T:
            for line in range(2 if u4 else 4):
                w("        _mm_prefetch((const char *)(wb + %d * wts + %d), _MM_HINT_T0);"
                  % (t, 2048 + 64 * line))

    def step(ind, s_expr, first):
        # one tile step s (4 of K): the weights of every tile, then every
        # row against them. first: the step that starts the sums
        for t in T:
            src = "wb + %d * wts + (int64_t)(%s) * tb" % (t, s_expr)
            if u4:
                w(ind + "const __m256i w%d = _mm256_and_si256(_mm256_srlv_epi32(" % t)
                w(ind + "    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(%s))), "
                  "shift), m0f);" % src)
            else:
                w(ind + "const __m256i w%d = _mm256_loadu_si256((const __m256i *)(%s));" % (t, src))
                w(ind + "const __m256i v%d = _mm256_abs_epi8(w%d);" % (t, t))
        for r in R:
            w(ind + "{")
            w(ind + "    const __m256i xb = mica_kq_avx2_bx(xp + %d * k + 4 * (%s));" % (r, s_expr))
            for t in T:
                if u4:
                    p = "_mm256_maddubs_epi16(w%d, xb)" % t
                    if first:
                        w(ind + "    h%d%d = %s;" % (r, t, p))
                    else:
                        w(ind + "    h%d%d = _mm256_add_epi16(h%d%d, %s);" % (r, t, r, t, p))
                    w(ind + "    MICA_KQ_KEEP(h%d%d);" % (r, t))
                else:
                    p = ("_mm256_madd_epi16(_mm256_maddubs_epi16(v%d, _mm256_sign_epi8(xb, w%d)), ones)"
                         % (t, t))
                    if first:
                        w(ind + "    d%d%d = %s;" % (r, t, p))
                    else:
                        w(ind + "    d%d%d = _mm256_add_epi32(d%d%d, %s);" % (r, t, r, t, p))
                    w(ind + "    MICA_KQ_KEEP(d%d%d);" % (r, t))
            w(ind + "}")

    for r in R:
        w("        __m256i %s;" % ", ".join("d%d%d" % (r, t) for t in T))
    if u4:
        for r in R:
            w("        __m256i %s;" % ", ".join("h%d%d" % (r, t) for t in T))
    if b32:
        # 8 steps, their u4 i16 sums (<= 30480) widened once
        for i in range(8):
            w("        {")
            step("            ", "%d" % i, i == 0)
            w("        }")
        if u4:
            for r in R:
                for t in T:
                    w("        d%d%d = _mm256_madd_epi16(h%d%d, ones);" % (r, t, r, t))
    else:
        for r in R:
            for t in T:
                w("        d%d%d = _mm256_setzero_si256();" % (r, t))
        w("        for (int32_t s0 = 0; s0 < steps; s0 += 8) {")
        w("            const int32_t s1 = s0 + 8 < steps ? s0 + 8 : steps;")
        if u4:
            for r in R:
                for t in T:
                    w("            h%d%d = _mm256_setzero_si256();" % (r, t))
        w("            for (int32_t s = s0; s < s1; s++) {")
        step("                ", "s", False)
        w("            }")
        if u4:
            for r in R:
                for t in T:
                    w("            d%d%d = _mm256_add_epi32(d%d%d, _mm256_madd_epi16(h%d%d, ones));"
                      % (r, t, r, t, r, t))
        w("        }")
    for t in T:
        w("        const __m256 s%d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(st + %d * sts "
          "+ (int64_t)jw * 8)));" % (t, t))
        w("        const __m256 m%d = mt == st ? _mm256_mul_ps(s%d, _mm256_set1_ps(%s)) : "
          "_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(mt + %d * sts + (int64_t)jw * 8)));"
          % (t, t, ZP[dt], t))
    for r in R:
        w("        {")
        w("            const float sa = xsr[%d * nka + ja];" % r)
        w("            const __m256 sav = _mm256_set1_ps(sa);")
        w("            const __m256 cv = _mm256_set1_ps(cm ? cm[%d * cms + j] : "
          "mica_kq_minsx(x + %d * k, sa, k0, b));" % (r, r))
        for t in T:
            w("            a%d%d = _mm256_fmadd_ps(_mm256_cvtepi32_ps(d%d%d), _mm256_mul_ps(s%d, sav), a%d%d);"
              % (r, t, r, t, t, r, t))
            w("            a%d%d = _mm256_fmadd_ps(m%d, cv, a%d%d);" % (r, t, t, r, t))
        w("        }")
    w(_GROUP_ADVANCE)
    w("    }")
    for r in R:
        for t in T:
            w("    mica_kq_avx2_store(y + %d * ldy + %d, a%d%d, cn - %d);" % (r, 8 * t, r, t, 8 * t))
    w("}")
    return "\n".join(o) + "\n"


def _avx2_gemm_tile(dt, rows, tiles):
    """C of mica_kq_avx2_<dt>_r<rows>t<tiles>_g32: the prefill tile for
    blocks of exactly 32 of K. Each weight step is unpacked once and used
    by every row; the i16 (u4) / i32 (i8) block sums of rows x tiles stay
    in registers for the 8 steps of a block, the f32 sums live in a stack
    array (rows x tiles registers more would not fit the 16 ymm), updated
    once per block with the same float steps as every other path."""
    u4 = dt == "u4"
    R, T = range(rows), range(tiles)
    o = []
    w = o.append
    name = "mica_kq_avx2_%s_r%dt%d_g32" % (dt, rows, tiles)
    args = ("(const int8_t *x, const float *xsr, int32_t nka,\n"
            "    const float *cm, int32_t cms, const uint8_t *wt, int64_t wts, const uint16_t *st,\n"
            "    const uint16_t *mt, int64_t sts, float *y, int64_t ldy, int32_t cn, int32_t k,\n"
            "    int32_t ag, int32_t wg, const uint8_t *pf")
    # the body twice: with the mins factors given (cm) and computed inline
    w("static inline __attribute__((always_inline)) void %s_c%s, const int hascm)" % (name, args))
    w("{")
    w("    const int32_t nb = k / 32, tb = %d;" % (16 if u4 else 32))
    if u4:
        w("    const __m256i shift = _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4);")
        w("    const __m256i m0f = _mm256_set1_epi8(0x0f);")
    w("    const __m256i ones = _mm256_set1_epi16(1);")
    w("    __m256 acc[%d];" % (rows * tiles))
    w("    for (int32_t i = 0; i < %d; i++)" % (rows * tiles))
    w("        acc[i] = _mm256_setzero_ps();")
    w("    const int32_t ra = ag / 32, rw = wg / 32; /* blocks per scale of x, of w */")
    w("    int32_t ja = 0, jw = 0, ca = 0, cw = 0;")
    for t in T:
        w("    const uint8_t *w%dp = wt + %d * wts;" % (t, t))
    for r in R:
        w("    const int8_t *x%dp = x + %d * (int64_t)k;" % (r, r))
    w("    for (int32_t j = 0; j < nb; j++) {")
    # pf: the weights of the next tiles, read from memory while this
    # block's are used from L1 (to L2: the rows below still need these)
    w("        if (pf) {")
    for t in T:
        for line in range(2 if u4 else 4):
            w("            _mm_prefetch((const char *)(pf + %d * wts + (int64_t)j * %d + %d), _MM_HINT_T1);"
              % (t, 8 * (16 if u4 else 32), 64 * line))
    w("        }")
    for r in R:
        w("        __m256i %s;" % ", ".join("h%d%d" % (r, t) for t in T))
    for i in range(8):
        w("        {")
        for t in T:
            src = "w%dp + %d" % (t, i * (16 if u4 else 32))
            if u4:
                w("            const __m256i w%d = _mm256_and_si256(_mm256_srlv_epi32(" % t)
                w("                _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(%s))), "
                  "shift), m0f);" % src)
            else:
                w("            const __m256i w%d = _mm256_loadu_si256((const __m256i *)(%s));" % (t, src))
                w("            const __m256i v%d = _mm256_abs_epi8(w%d);" % (t, t))
        for r in R:
            w("            {")
            w("                const __m256i xb = mica_kq_avx2_bx(x%dp + %d);" % (r, 4 * i))
            for t in T:
                if u4:
                    p = "_mm256_maddubs_epi16(w%d, xb)" % t
                else:
                    p = ("_mm256_madd_epi16(_mm256_maddubs_epi16(v%d, _mm256_sign_epi8(xb, w%d)), ones)"
                         % (t, t))
                if i == 0:
                    w("                h%d%d = %s;" % (r, t, p))
                else:
                    w("                h%d%d = _mm256_add_%s(h%d%d, %s);" % (r, t, "epi16" if u4 else "epi32", r, t, p))
                w("                MICA_KQ_KEEP(h%d%d);" % (r, t))
            w("            }")
        w("        }")
    for t in T:
        w("        const __m256 s%d = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(st + %d * sts "
          "+ (int64_t)jw * 8)));" % (t, t))
        w("        const __m256 m%d = mt == st ? _mm256_mul_ps(s%d, _mm256_set1_ps(%s)) : "
          "_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(mt + %d * sts + (int64_t)jw * 8)));"
          % (t, t, ZP[dt], t))
    for r in R:
        w("        {")
        w("            const float sa = xsr[%d * nka + ja];" % r)
        w("            const __m256 sav = _mm256_set1_ps(sa);")
        w("            const __m256 cv = _mm256_set1_ps(hascm ? cm[%d * cms + j] : "
          "mica_kq_minsx(x + %d * (int64_t)k, sa, j * 32, 32));" % (r, r))
        for t in T:
            d = "_mm256_madd_epi16(h%d%d, ones)" % (r, t) if u4 else "h%d%d" % (r, t)
            i = r * tiles + t
            w("            acc[%d] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(%s), _mm256_mul_ps(s%d, sav), acc[%d]);"
              % (i, d, t, i))
            w("            acc[%d] = _mm256_fmadd_ps(m%d, cv, acc[%d]);" % (i, t, i))
        w("        }")
    for t in T:
        w("        w%dp += 8 * tb;" % t)
    for r in R:
        w("        x%dp += 32;" % r)
    w(_GROUP_ADVANCE)
    w("    }")
    for r in R:
        for t in T:
            w("    mica_kq_avx2_store(y + %d * ldy + %d, acc[%d], cn - %d);" % (r, 8 * t, r * tiles + t, 8 * t))
    w("}")
    w("")
    w("static inline void %s%s)" % (name, args))
    w("{")
    w("    if (cm)")
    w("        %s_c(x, xsr, nka, cm, cms, wt, wts, st, mt, sts, y, ldy, cn, k, ag, wg, pf, 1);" % name)
    w("    else")
    w("        %s_c(x, xsr, nka, cm, cms, wt, wts, st, mt, sts, y, ldy, cn, k, ag, wg, pf, 0);" % name)
    w("}")
    return "\n".join(o) + "\n"


def _avx2_tiles(ep, tmax):
    out = [r"""
static inline void mica_kq_avx2_store(float *y, __m256 v, int32_t cn)
{
    if (cn >= 8) {
        _mm256_storeu_ps(y, v);
    } else {
        float t[8];
        _mm256_storeu_ps(t, v);
        for (int32_t i = 0; i < cn; i++)
            y[i] = t[i];
    }
}
"""]
    for dt in ("u4", "i8"):
        for rows in range(1, ep + 1):
            for tiles in range(1, tmax + 1):
                out.append(_avx2_tile(dt, rows, tiles, False))
                # one row (decode) keeps the prefetching b32 tile
                out.append(_avx2_tile(dt, rows, tiles, True) if rows == 1
                           else _avx2_gemm_tile(dt, rows, tiles))
    # the dispatcher: rows, tiles and the block are known only at run time
    out.append("typedef void (*mica_kq_avx2_fn)(const int8_t *, const float *, int32_t, const float *,\n"
               "    int32_t, const uint8_t *, int64_t, const uint16_t *, const uint16_t *, int64_t,\n"
               "    float *, int64_t, int32_t, int32_t, int32_t, int32_t, const uint8_t *);\n")
    for dt in ("u4", "i8"):
        out.append("static const mica_kq_avx2_fn mica_kq_avx2_%s_fns[2][%d][%d] = {" % (dt, ep, tmax))
        for mode in ("any", "b32"):
            out.append("    {")
            for rows in range(1, ep + 1):
                kind = "g32" if mode == "b32" and rows > 1 else mode
                out.append("        {%s}," % ", ".join("mica_kq_avx2_%s_r%dt%d_%s" % (dt, rows, t, kind)
                                                      for t in range(1, tmax + 1)))
            out.append("    },")
        out.append("};\n")
    return "\n".join(out)


# ---- NEON: the same blocking, the dot instruction from the dialect ----

def _neon_tile(scheme, dt, rows, name):
    """C of one NEON tile function: `rows` rows of y for one tile of 8
    columns over the whole K. scheme: "smlal" (armv8-a: smull/smlal into
    i16 for up to 8 u4 / 2 i8 steps, widened by saddlp), "sdot" (lp 4:
    sdot of 4 rows x 4 bytes against a broadcast of 4 x bytes), "sdot8"
    (lp 8: sdot of 2 rows x 8 bytes, pairs added at the end: decode on the
    i8mm tile), "smmla" (lp 8: 2 x rows x 2 weight rows x 8 bytes). Every
    path ends a block with D<r>0 / D<r>1, the i32 dots of columns 0-3 / 4-7
    of row r, and the same float steps."""
    u4 = dt == "u4"
    lp = 8 if scheme in ("sdot8", "smmla") else 4
    tb = 8 * lp // (2 if u4 else 1)
    R = range(rows)
    pairs = range((rows + 1) // 2)
    o = []
    w = o.append
    w("static inline void %s(const int8_t *x, const float *xsr, int32_t nka, const float *cm," % name)
    w("    int32_t cms, const uint8_t *wt, int64_t wts, const uint16_t *st, const uint16_t *mt,")
    w("    int64_t sts, float *y, int64_t ldy, int32_t cn, int32_t k, int32_t ag, int32_t wg)")
    w("{")
    w("    const int32_t b = ag < wg ? ag : wg, nb = k / b, steps = b / %d;" % lp)
    w("    const int32_t ra = ag / b, rw = wg / b; /* blocks per scale of x, of w */")
    w("    int32_t ja = 0, jw = 0, ca = 0, cw = 0;")
    if u4:
        w("    const uint8x16_t m0f = vdupq_n_u8(0x0f);")
    w("    (void)wts;")
    for r in R:
        w("    float32x4_t a%d0 = vdupq_n_f32(0.0f), a%d1 = vdupq_n_f32(0.0f);" % (r, r))
    w("    for (int32_t j = 0; j < nb; j++) {")
    w("        const int32_t k0 = j * b;")
    w("        const uint8_t *wb = wt + (int64_t)(k0 / %d) * %d;" % (lp, tb))
    w("        const int8_t *xp = x + k0;")
    if rows == 1:
        # decode streams each weight once: the lines of the block 2 KiB ahead
        for line in range(max(1, tb * (32 // lp) // 64)):
            w("        __builtin_prefetch(wb + %d);" % (2048 + 64 * line))
    # weight vectors of one step
    def wload(ind, s_expr):
        p = "wb + (int64_t)(%s) * %d" % (s_expr, tb)
        if lp == 4:
            if u4:
                w(ind + "const uint8x16_t v = vld1q_u8(%s);" % p)
                w(ind + "const int8x16_t w0 = vreinterpretq_s8_u8(vandq_u8(v, m0f));")
                w(ind + "const int8x16_t w1 = vreinterpretq_s8_u8(vshrq_n_u8(v, 4));")
            else:
                w(ind + "const int8x16_t w0 = vld1q_s8((const int8_t *)(%s));" % p)
                w(ind + "const int8x16_t w1 = vld1q_s8((const int8_t *)(%s) + 16);" % p)
        else:
            if u4:
                w(ind + "const uint8x16_t v0 = vld1q_u8(%s), v1 = vld1q_u8(%s + 16);" % (p, p))
                w(ind + "const int8x16_t w0 = vreinterpretq_s8_u8(vandq_u8(v0, m0f));")
                w(ind + "const int8x16_t w1 = vreinterpretq_s8_u8(vandq_u8(v1, m0f));")
                w(ind + "const int8x16_t w2 = vreinterpretq_s8_u8(vshrq_n_u8(v0, 4));")
                w(ind + "const int8x16_t w3 = vreinterpretq_s8_u8(vshrq_n_u8(v1, 4));")
            else:
                for i in range(4):
                    w(ind + "const int8x16_t w%d = vld1q_s8((const int8_t *)(%s) + %d);" % (i, p, 16 * i))

    if scheme == "sdot":
        for r in R:
            w("        int32x4_t D%d0 = vdupq_n_s32(0), D%d1 = vdupq_n_s32(0);" % (r, r))
        w("        for (int32_t s = 0; s < steps; s++) {")
        wload("            ", "s")
        for r in R:
            w("            {")
            w("                const int8x16_t xb = mica_kq_neon_bx4(xp + %d * k + 4 * s);" % r)
            w("                D%d0 = vdotq_s32(D%d0, w0, xb);" % (r, r))
            w("                D%d1 = vdotq_s32(D%d1, w1, xb);" % (r, r))
            w("            }")
        w("        }")
    elif scheme == "sdot8":
        for r in R:
            w("        int32x4_t E%d0 = vdupq_n_s32(0), E%d1 = vdupq_n_s32(0), E%d2 = vdupq_n_s32(0), "
              "E%d3 = vdupq_n_s32(0);" % (r, r, r, r))
        w("        for (int32_t s = 0; s < steps; s++) {")
        wload("            ", "s")
        for r in R:
            w("            {")
            w("                const int8x16_t xb = mica_kq_neon_bx8(xp + %d * k + 8 * s);" % r)
            for i in range(4):
                w("                E%d%d = vdotq_s32(E%d%d, w%d, xb);" % (r, i, r, i, i))
            w("            }")
        w("        }")
        for r in R:
            w("        const int32x4_t D%d0 = vpaddq_s32(E%d0, E%d1), D%d1 = vpaddq_s32(E%d2, E%d3);"
              % (r, r, r, r, r, r))
    elif scheme == "smmla":
        for q in pairs:
            w("        int32x4_t P%d0 = vdupq_n_s32(0), P%d1 = vdupq_n_s32(0), P%d2 = vdupq_n_s32(0), "
              "P%d3 = vdupq_n_s32(0);" % (q, q, q, q))
        w("        for (int32_t s = 0; s < steps; s++) {")
        wload("            ", "s")
        for q in pairs:
            r0, r1 = 2 * q, min(2 * q + 1, rows - 1)
            w("            {")
            w("                const int8x16_t xa = vcombine_s8(vld1_s8(xp + %d * k + 8 * s), "
              "vld1_s8(xp + %d * k + 8 * s));" % (r0, r1))
            for i in range(4):
                w("                P%d%d = vmmlaq_s32(P%d%d, xa, w%d);" % (q, i, q, i, i))
            w("            }")
        w("        }")
        for q in pairs:
            # P<q><i>: [x0.wA, x0.wB, x1.wA, x1.wB] for weight rows (A, B) = 2i, 2i+1
            for h in range(2):
                r = 2 * q + h
                if r >= rows:
                    continue
                zip_ = "vzip1q_s64" if h == 0 else "vzip2q_s64"
                w("        const int32x4_t D%d0 = vreinterpretq_s32_s64(%s(vreinterpretq_s64_s32(P%d0), "
                  "vreinterpretq_s64_s32(P%d1)));" % (r, zip_, q, q))
                w("        const int32x4_t D%d1 = vreinterpretq_s32_s64(%s(vreinterpretq_s64_s32(P%d2), "
                  "vreinterpretq_s64_s32(P%d3)));" % (r, zip_, q, q))
    else:  # smlal
        chunk = 8 if u4 else 2
        for r in R:
            w("        int32x4_t D%d0 = vdupq_n_s32(0), D%d1 = vdupq_n_s32(0);" % (r, r))
        w("        for (int32_t s0 = 0; s0 < steps; s0 += %d) {" % chunk)
        w("            const int32_t s1 = s0 + %d < steps ? s0 + %d : steps;" % (chunk, chunk))
        for r in R:
            w("            int16x8_t L%d0 = vdupq_n_s16(0), L%d1 = vdupq_n_s16(0), L%d2 = vdupq_n_s16(0), "
              "L%d3 = vdupq_n_s16(0);" % (r, r, r, r))
        w("            for (int32_t s = s0; s < s1; s++) {")
        wload("                ", "s")
        for r in R:
            w("                {")
            w("                    const int8x16_t xb = mica_kq_neon_bx4(xp + %d * k + 4 * s);" % r)
            w("                    L%d0 = vmlal_s8(L%d0, vget_low_s8(w0), vget_low_s8(xb));" % (r, r))
            w("                    L%d1 = vmlal_high_s8(L%d1, w0, xb);" % (r, r))
            w("                    L%d2 = vmlal_s8(L%d2, vget_low_s8(w1), vget_low_s8(xb));" % (r, r))
            w("                    L%d3 = vmlal_high_s8(L%d3, w1, xb);" % (r, r))
            w("                }")
        w("            }")
        for r in R:
            # L0: rows 0,1 x k0..3 (i16); pairwise into [r0, r0, r1, r1], then rows 0-3
            w("            D%d0 = vaddq_s32(D%d0, vpaddq_s32(vpaddlq_s16(L%d0), vpaddlq_s16(L%d1)));"
              % (r, r, r, r))
            w("            D%d1 = vaddq_s32(D%d1, vpaddq_s32(vpaddlq_s16(L%d2), vpaddlq_s16(L%d3)));"
              % (r, r, r, r))
        w("        }")
    # the float steps, the same on every path
    w("        const float32x4_t s0 = mica_kq_neon_h4(st + (int64_t)jw * 8), s1 = "
      "mica_kq_neon_h4(st + (int64_t)jw * 8 + 4);")
    w("        const float32x4_t m0 = mt == st ? vmulq_n_f32(s0, %s) : mica_kq_neon_h4(mt + (int64_t)jw * 8);"
      % ZP[dt])
    w("        const float32x4_t m1 = mt == st ? vmulq_n_f32(s1, %s) : mica_kq_neon_h4(mt + (int64_t)jw * 8 + 4);"
      % ZP[dt])
    for r in R:
        w("        {")
        w("            const float sa = xsr[%d * nka + ja];" % r)
        w("            const float c = cm ? cm[%d * cms + j] : mica_kq_minsx(x + %d * k, sa, k0, b);" % (r, r))
        for h in range(2):
            w("            a%d%d = vfmaq_f32(a%d%d, vcvtq_f32_s32(D%d%d), vmulq_n_f32(s%d, sa));"
              % (r, h, r, h, r, h, h))
            w("            a%d%d = vfmaq_n_f32(a%d%d, m%d, c);" % (r, h, r, h, h))
        w("        }")
    w(_GROUP_ADVANCE)
    w("    }")
    for r in R:
        w("    mica_kq_neon_store(y + %d * ldy, a%d0, a%d1, cn);" % (r, r, r))
    w("}")
    return "\n".join(o) + "\n"


_NEON_COMMON = r"""
static inline int8x16_t mica_kq_neon_bx4(const int8_t *p)
{
    int32_t v;
    memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

static inline int8x16_t mica_kq_neon_bx8(const int8_t *p)
{
    int64_t v;
    memcpy(&v, p, sizeof v);
    return vreinterpretq_s8_s64(vdupq_n_s64(v));
}

/* 4 f16 (bits) as f32 */
static inline float32x4_t mica_kq_neon_h4(const uint16_t *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p)));
}

static inline void mica_kq_neon_store(float *y, float32x4_t lo, float32x4_t hi, int32_t cn)
{
    if (cn >= 8) {
        vst1q_f32(y, lo);
        vst1q_f32(y + 4, hi);
    } else {
        float t[8];
        vst1q_f32(t, lo);
        vst1q_f32(t + 4, hi);
        for (int32_t i = 0; i < cn; i++)
            y[i] = t[i];
    }
}

typedef void (*mica_kq_neon_fn)(const int8_t *, const float *, int32_t, const float *, int32_t,
                                const uint8_t *, int64_t, const uint16_t *, const uint16_t *,
                                int64_t, float *, int64_t, int32_t, int32_t, int32_t, int32_t);
"""


def _neon_tiles(gemm_scheme, gemv_scheme, ep):
    out = [_NEON_COMMON]
    for dt in ("u4", "i8"):
        names = []
        for rows in range(1, ep + 1):
            nm = "mica_kq_neon_%s_r%d" % (dt, rows)
            out.append(_neon_tile(gemm_scheme, dt, rows, nm))
            names.append(nm)
        out.append("static const mica_kq_neon_fn mica_kq_neon_%s_fns[%d] = {%s};\n"
                   % (dt, ep, ", ".join(names)))
        if gemv_scheme != gemm_scheme:
            out.append(_neon_tile(gemv_scheme, dt, 1, "mica_kq_neon_%s_gv" % dt))
        else:
            out.append("#define mica_kq_neon_%s_gv mica_kq_neon_%s_r1\n" % (dt, dt))
    return "\n".join(out)


# ---- AVX-512 VNNI: tile 64x4, vpdpbusd ----

def _avx512_tile(dt, rows, name, C=range(4)):
    """C of one AVX-512 tile function: `rows` rows of y for the column
    vectors C (of 16 columns each) of one tile of 64 columns over the whole
    K: all four, or one half (0, 1 or 2, 3) for six rows, whose 24
    accumulators and two weight vectors fit the 32 registers. u4: a 64-byte
    load holds rows 0-15 (low nibbles) and 32-47 (high) of a step, the next
    one rows 16-31 and 48-63; vpdpbusd takes them as the u8 operand. i8: the
    weight is made u8 by w ^ 0x80 = w + 128, and 128 * sum(x) comes off the
    block dot (exact in i32)."""
    u4 = dt == "u4"
    tb = 128 if u4 else 256
    R = range(rows)
    o = []
    w = o.append
    w("static inline void %s(const int8_t *x, const float *xsr, int32_t nka, const float *cm," % name)
    w("    const int32_t *cs, int32_t cms, const uint8_t *wt, const uint16_t *st,")
    w("    const uint16_t *mt, float *y, int64_t ldy, int32_t cn, int32_t k, int32_t ag, int32_t wg,")
    w("    const uint8_t *pf)")
    w("{")
    w("    const int32_t b = ag < wg ? ag : wg, nb = k / b, steps = b / 4;")
    w("    const int32_t ra = ag / b, rw = wg / b; /* blocks per scale of x, of w */")
    w("    int32_t ja = 0, jw = 0, ca = 0, cw = 0;")
    w("    const __m512i m0f = _mm512_set1_epi8(0x0f), flip = _mm512_set1_epi8((char)0x80);")
    w("    (void)pf;")
    w("    (void)m0f;")
    w("    (void)flip;")
    w("    (void)cs;")
    for r in R:
        w("    __m512 %s;" % ", ".join("a%d%d = _mm512_setzero_ps()" % (r, c) for c in C))
    w("    for (int32_t j = 0; j < nb; j++) {")
    w("        const int32_t k0 = j * b;")
    w("        const uint8_t *wb = wt + (int64_t)(k0 / 4) * %d;" % tb)
    w("        const int8_t *xp = x + k0;")
    for r in R:
        w("        __m512i %s;" % ", ".join("d%d%d = _mm512_setzero_si512()" % (r, c) for c in C))
    w("        for (int32_t s = 0; s < steps; s++) {")
    w("            const uint8_t *ws_ = wb + (int64_t)s * %d;" % tb)
    if rows == 1:
        # decode streams each weight once: every line of the step 2 KiB
        # ahead, two 32-K blocks of this 64-wide tile (the hardware
        # prefetcher alone reached 75 % of a plain read on Sapphire Rapids,
        # this about all of it)
        for line in range(tb // 64):
            w("            _mm_prefetch((const char *)(ws_ + %d), _MM_HINT_T0);" % (2048 + 64 * line))
    else:
        # pf (gemm, the first row block of a tile): the next tile's lines
        # at the same offset, from memory to L2 while this one's come from
        # L1 (the rows below still use them), as the AVX2 gemm does
        w("            if (pf) {")
        for line in range(tb // 64):
            w("                _mm_prefetch((const char *)(pf + (ws_ - wt) + %d), _MM_HINT_T1);" % (64 * line))
        w("            }")
    if u4:
        w("            const __m512i va = _mm512_loadu_si512((const void *)ws_), vb = "
          "_mm512_loadu_si512((const void *)(ws_ + 64));")
        for c in C:
            src = ("va", "vb")[c % 2]
            if c < 2:
                w("            const __m512i w%d = _mm512_and_si512(%s, m0f);" % (c, src))
            else:
                w("            const __m512i w%d = _mm512_and_si512(_mm512_srli_epi16(%s, 4), m0f);"
                  % (c, src))
    else:
        for c in C:
            w("            const __m512i w%d = _mm512_xor_si512(_mm512_loadu_si512((const void *)(ws_ + %d)), flip);"
              % (c, 64 * c))
    for r in R:
        w("            {")
        w("                int32_t xv;")
        w("                memcpy(&xv, xp + %d * k + 4 * s, sizeof xv);" % r)
        w("                const __m512i xb = _mm512_set1_epi32(xv);")
        for c in C:
            w("                d%d%d = mica_kq_avx512_dpbusd(d%d%d, w%d, xb);" % (r, c, r, c, c))
        w("            }")
    w("        }")
    w("        const int64_t so = (int64_t)jw * 64;")
    w("        const __m512 %s;" % ", ".join(
        "s%d = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(st + so + %d)))" % (c, 16 * c) for c in C))
    w("        const __m512 %s;" % ", ".join(
        "m%d = mt == st ? _mm512_mul_ps(s%d, _mm512_set1_ps(%s)) : "
        "_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(mt + so + %d)))" % (c, c, ZP[dt], 16 * c)
        for c in C))
    for r in R:
        w("        {")
        w("            const float sa = xsr[%d * nka + ja];" % r)
        w("            const __m512 sav = _mm512_set1_ps(sa);")
        w("            const __m512 cv = _mm512_set1_ps(cm ? cm[%d * cms + j] : mica_kq_minsx(x + %d * k, sa, k0, b));" % (r, r))
        if not u4:
            w("            const __m512i fix = _mm512_set1_epi32(128 * (cs ? cs[%d * cms + j] : "
              "mica_kq_isum(x + %d * k, k0, b)));" % (r, r))
        for c in C:
            dv = "d%d%d" % (r, c) if u4 else "_mm512_sub_epi32(d%d%d, fix)" % (r, c)
            w("            a%d%d = _mm512_fmadd_ps(_mm512_cvtepi32_ps(%s), _mm512_mul_ps(s%d, sav), a%d%d);"
              % (r, c, dv, c, r, c))
            w("            a%d%d = _mm512_fmadd_ps(m%d, cv, a%d%d);" % (r, c, c, r, c))
        w("        }")
    w(_GROUP_ADVANCE)
    w("    }")
    for r in R:
        for c in C:
            w("    mica_kq_avx512_store(y + %d * ldy + %d, a%d%d, cn - %d);" % (r, 16 * c, r, c, 16 * c))
    w("}")
    return "\n".join(o) + "\n"


def _avx512_tiles(ep):
    out = [r"""
/* acc + the u8 x s8 dot of u and s per lane, as _mm512_dpbusd_epi32, in
 * place: GCC 12 gives the intrinsic a fresh destination and copies every
 * accumulator twice a step (two vmovdqa32 per vpdpbusd, measured). */
static inline __m512i mica_kq_avx512_dpbusd(__m512i acc, __m512i u, __m512i s)
{
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
    return acc;
}

static inline void mica_kq_avx512_store(float *y, __m512 v, int32_t cn)
{
    if (cn >= 16) {
        _mm512_storeu_ps(y, v);
    } else if (cn > 0) {
        float t[16];
        _mm512_storeu_ps(t, v);
        for (int32_t i = 0; i < cn; i++)
            y[i] = t[i];
    }
}

typedef void (*mica_kq_avx512_fn)(const int8_t *, const float *, int32_t, const float *,
                                  const int32_t *, int32_t, const uint8_t *, const uint16_t *,
                                  const uint16_t *, float *, int64_t, int32_t, int32_t, int32_t,
                                  int32_t, const uint8_t *);
"""]
    for dt in ("u4", "i8"):
        names = []
        for rows in range(1, 4):
            nm = "mica_kq_avx512_%s_r%d" % (dt, rows)
            out.append(_avx512_tile(dt, rows, nm))
            names.append(nm)
        out.append("static const mica_kq_avx512_fn mica_kq_avx512_%s_fns[3] = {%s};\n"
                   % (dt, ", ".join(names)))
        # ep rows in two halves of the tile
        halves = []
        for h in range(2):
            nm = "mica_kq_avx512_%s_r%dh%d" % (dt, ep, h)
            out.append(_avx512_tile(dt, ep, nm, C=range(2 * h, 2 * h + 2)))
            halves.append(nm)
        out.append("static const mica_kq_avx512_fn mica_kq_avx512_%s_halves[2] = {%s};\n"
                   % (dt, ", ".join(halves)))
    return "\n".join(out)


# rms_act_quant normalises a row exactly as the rms_norm kernel does, with
# the float module's helpers (fam_float.py, emitted before this module):
# mica_kfloat_rms_inv and mica_kfloat_rms_row, then quantizes each group
# with the ISA's group routine (MICA_KQ_QUANT_GROUP).
_RMS_SHARED = "mica_kfloat_rms_inv"


def _check_rms_shared():
    path = os.path.join(HERE, "float_ops.c.in")
    with open(path, encoding="utf-8") as f:
        if "static inline double %s(" % _RMS_SHARED not in f.read():
            raise SystemExit("fam_quant.py: float_ops.c.in defines no %s" % _RMS_SHARED)


_RMS_ACT = r"""
/* rms_norm fused in front of act_quant: each group normalised into a stack
 * buffer exactly as the rms_norm kernel writes it, then quantized by the
 * ISA's group routine; groups above the buffer go element by element. */
#define MICA_KQ_NORM_MAX 512
static inline void mica_kq_rms_act_quant(const float *x, int64_t ldx, const float *w, float eps,
                                         int8_t *xq, float *xs, int32_t m0, int32_t m1,
                                         int32_t k, int32_t group)
{
    const int32_t ng = k / group;
    float buf[MICA_KQ_NORM_MAX];
    for (int32_t m = m0; m < m1; m++) {
        const float *xr = x + (int64_t)m * ldx;
        const double inv = mica_kfloat_rms_inv(xr, k, eps);
        int8_t *q = xq + (int64_t)m * k;
        for (int32_t j = 0; j < ng; j++) {
            const int64_t o = (int64_t)j * group;
            if (group <= MICA_KQ_NORM_MAX) {
                mica_kfloat_rms_row(xr + o, w + o, inv, buf, group);
                xs[(int64_t)m * ng + j] = MICA_KQ_QUANT_GROUP(buf, NULL, 1.0f, q + o, group);
                continue;
            }
            float mx = 0.0f;
            for (int32_t i = 0; i < group; i++) {
                const float v = (float)((double)xr[o + i] * inv * (double)w[o + i]);
                const float a = v < 0.0f ? -v : v;
                if (a > mx)
                    mx = a;
            }
            const float sc = (float)((double)mx / 127.0);
            xs[(int64_t)m * ng + j] = sc;
            for (int32_t i = 0; i < group; i++)
                q[o + i] = mica_kq_quant1((float)((double)xr[o + i] * inv * (double)w[o + i]), sc);
        }
    }
}
"""


def HELPERS(isa):
    d = DIALECT[isa["name"]]
    _check_rms_shared()
    kind = d["kind"]
    group_fn = {"portable": "mica_kq_portable_quant_group", "avx2": "mica_kq_avx2_quant_group",
                "avx512": "mica_kq_avx2_quant_group"}.get(kind, "mica_kq_neon_quant_group")
    out = "#define MICA_KQ_QUANT_GROUP %s\n" % group_fn
    out += _render("quant_portable.c.in", isa, {})
    if kind == "portable":
        return out + _PORTABLE_CORES + _PORTABLE_ACT + _RMS_ACT
    if kind == "avx2":
        extra = {"TILES": _avx2_tiles(d["ep"], d["tiles"]), "TMAX": str(d["tiles"])}
    elif kind == "avx512":
        extra = {"TILES": _avx512_tiles(d["ep"])}
    else:
        extra = {"TILES": _neon_tiles(d["gemm"], d["gemv"], d["ep"]),
                 "ACT": _render("quant_neon_act.c.in", isa, {})}
    if kind in ("avx2", "avx512"):
        extra["ACT"] = _render("quant_avx2_act.c.in", isa, {})
    return out + "\n" + _render(d["template"], isa, extra) + _RMS_ACT


def _names(isa):
    d = DIALECT[isa["name"]]
    ep, hp, lp, nm = d["ep"], isa["hp"], isa["lp"], isa["name"]
    return {
        "qgemm_u4": "mica_k_qu4_gemm_%dx%dx%d__%s" % (ep, hp, lp, nm),
        "qgemv_u4": "mica_k_qu4_gemv_%dx%d__%s" % (hp, lp, nm),
        "qgemm_i8": "mica_k_qi8_gemm_%dx%dx%d__%s" % (ep, hp, lp, nm),
        "qgemv_i8": "mica_k_qi8_gemv_%dx%d__%s" % (hp, lp, nm),
        "act_quant": "mica_k_f32_act_quant__%s" % nm,
        "rms_act_quant": "mica_k_f32_rms_act_quant__%s" % nm,
    }


# The body of each family's entry point: calls of the cores the ISA's
# template (or the portable one) defines.
_BODY = {
    "qgemm_u4": "mica_kq_qgemm(xq, xs, wq, ws, wm, y, ldy, m0, m1, n0, n1, k, agroup, wgroup, 1);",
    "qgemv_u4": "mica_kq_qgemv(xq, xs, wq, ws, wm, y, ldy, m0, m1, n0, n1, k, agroup, wgroup, 1);",
    "qgemm_i8": "mica_kq_qgemm(xq, xs, wq, ws, wm, y, ldy, m0, m1, n0, n1, k, agroup, wgroup, 0);",
    "qgemv_i8": "mica_kq_qgemv(xq, xs, wq, ws, wm, y, ldy, m0, m1, n0, n1, k, agroup, wgroup, 0);",
    "act_quant": "mica_kq_act_quant(x, ldx, xq, xs, m0, m1, k, group);",
    "rms_act_quant": "mica_kq_rms_act_quant(x, ldx, w, eps, xq, xs, m0, m1, k, group);",
}

_PORTABLE_CORES = r"""
static inline void mica_kq_qgemm(const int8_t *xq, const float *xs, const uint8_t *wq,
                                 const uint16_t *ws, const uint16_t *wm, float *y, int64_t ldy,
                                 int32_t m0, int32_t m1, int32_t n0, int32_t n1, int32_t k,
                                 int32_t ag, int32_t wg, int u4)
{
    mica_kq_portable_qmm(xq, xs, wq, ws, wm, y, ldy, m0, m1, n0, n1, k, ag, wg, u4);
}

static inline void mica_kq_qgemv(const int8_t *xq, const float *xs, const uint8_t *wq,
                                 const uint16_t *ws, const uint16_t *wm, float *y, int64_t ldy,
                                 int32_t m0, int32_t m1, int32_t n0, int32_t n1, int32_t k,
                                 int32_t ag, int32_t wg, int u4)
{
    mica_kq_portable_qmm(xq, xs, wq, ws, wm, y, ldy, m0, m1, n0, n1, k, ag, wg, u4);
}

"""

_PORTABLE_ACT = r"""
static inline void mica_kq_act_quant(const float *x, int64_t ldx, int8_t *xq, float *xs,
                                     int32_t m0, int32_t m1, int32_t k, int32_t group)
{
    for (int32_t m = m0; m < m1; m++)
        mica_kq_portable_quant_row(x + (int64_t)m * ldx, xq + (int64_t)m * k,
                                   xs + (int64_t)m * (k / group), k, group);
}

/* One group into q, returning its scale (w NULL and inv 1: the plain row). */
static inline float mica_kq_portable_quant_group(const float *x, const float *w, float inv,
                                                 int8_t *q, int32_t group)
{
    (void)w;
    (void)inv;
    const float sc = mica_kq_group_scale(x, group);
    for (int32_t i = 0; i < group; i++)
        q[i] = mica_kq_quant1(x[i], sc);
    return sc;
}
"""


def generate(isa):
    d = DIALECT[isa["name"]]
    names = _names(isa)
    variants = []
    for fam in FAMILIES:
        text = "%s\n{\n    %s\n}\n" % (PROTOS[fam].replace("NAME", names[fam]), _BODY[fam])
        params = "ep=%d,hp=%d,lp=%d" % (d["ep"], isa["hp"], isa["lp"])
        if d["kind"] != "portable":
            params += ",cm=%d" % CMCAP
        if fam in ("act_quant", "rms_act_quant"):
            params = ""
        variants.append(({"family": fam, "name": names[fam], "params": params}, text))
    return variants
