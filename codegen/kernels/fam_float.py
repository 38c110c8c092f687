"""Float kernel families: rms_norm, add, mul, swiglu, rope, softmax, attention_kv.

Python 3 standard library only; loaded by codegen/gen_kernels.py.

One template (float_ops.c.in, sections marked `/*@ name @*/`) holds the
structure of every kernel, written against a tiny vector dialect: a type
`mica_kfloat_v` of MICA_KFLOAT_VL f32 lanes and static inline primitives
(load, store, fma, hsum, ...). DIALECTS below spells those primitives for
each ISA: portable C (one lane), AVX2 and AVX-512 `ps` intrinsics, NEON
float32x4 (neon, dotprod and i8mm share it). On top of them the template
builds a vector exp (swiglu, softmax, attention) and this module unrolls the
few loops whose accumulators must stay in registers: the rms and softmax
sums (racc accumulators, summed in blocks), and attention's key blocks
(_attn_block: two query rows x four keys of dot products, two rows x dc
vectors of P.V, sharing every key and value load).

Determinism: every row of every kernel is computed by the same operations
in the same order whatever range or split it is called with; attention's
pairing of rows changes which loads are shared, never a row's arithmetic.

rope is portable C on every ISA: its angles, sin and cos are double
precision (own range-reduced polynomials; the model objects link no libm),
computed once per (token, pair) and applied to every head of the token.

Numbers that are mathematical constants (pi/2 split for Cody-Waite
reduction, ln 2, 1/n!) are computed here exactly with integers and
fractions and written as hex float literals.
"""

import os
import struct
from fractions import Fraction
from math import factorial, sqrt
from string import Template

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "float_ops.c.in")

FAMILIES = ["rms_norm", "add", "mul", "swiglu", "rope", "softmax", "attention_kv"]

PROTOS = {
    "rms_norm": "void NAME(const float *x, int64_t ldx, const float *w, float eps, "
                "float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n)",
    "add": "void NAME(const float *a, int64_t lda, const float *b, int64_t ldb, "
           "float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n)",
    "mul": "void NAME(const float *a, int64_t lda, const float *b, int64_t ldb, "
           "float *y, int64_t ldy, int32_t m0, int32_t m1, int32_t n)",
    "swiglu": "void NAME(const float *x, int64_t ldx, float *y, int64_t ldy, "
              "int32_t m0, int32_t m1, int32_t f)",
    "rope": "void NAME(const float *x, int64_t sxt, int64_t sxh, const int32_t *pos, "
            "float *y, int64_t syt, int64_t syh, int32_t r0, int32_t r1, int32_t heads, "
            "int32_t d, int32_t mode, int32_t dims, float theta, float scale)",
    "softmax": "void NAME(const float *x, int64_t ldx, float *y, int64_t ldy, "
               "int32_t m0, int32_t m1, int32_t n)",
    "attention_kv": "void NAME(const float *q, int64_t sqt, int64_t sqh, const float *kc, "
                    "const float *vc, int32_t cap, float *y, int64_t syt, int64_t syh, "
                    "int32_t r0, int32_t r1, int32_t hq, int32_t hkv, int32_t d, int32_t p0, "
                    "float scale)",
}

# ---------------------------------------------------------------------------
# The dialect table: what differs between ISAs.
#
#   vl     lanes of mica_kfloat_v
#   racc   vector accumulators of the rms sum of squares (lanes * racc
#          partial sums keep the f32 sum within 1e-6 of the exact one)
#   dc     vectors of an output row held in registers across a key block
#   qv     attention's query tile, in vectors: up to qv*vl query rows of one
#          kv head go in the lanes of the scores (the tile's queries
#          transposed, d x qv*vl floats, on the stack)
#   qk     the register blocks of the scores and P.V GEMMs: {nv: keys (or
#          output elements) per step} for nv query vectors (nv * qk[nv]
#          accumulators); a tile takes the widest that fits first
#   pair_hsum  attention's scores: accumulators a0..a3 (one query row, four
#          keys) and b0..b3 (another row, same keys) to their sums outa[0..4)
#          and outb[0..4), each sum by the same lane tree whatever its
#          position, so a row's scores do not depend on its partner
#   ops    C expression (or statements, for void ones) of each primitive;
#          operands are a, b, c, x, lo, r, n, p as in PRIMS
#
# Every primitive is exact or correctly rounded per lane, except fma
# (a*b + c, fused where the ISA fuses) and the fixed-order reductions.

PRIMS = [
    # name, return type, parameters, meaning
    ("zero", "V", "void", "all lanes 0"),
    ("set1", "V", "float x", "all lanes x"),
    ("load", "V", "const float *p", "VL floats from p (any alignment)"),
    ("store", "void", "float *p, V a", "VL floats to p (any alignment)"),
    ("add", "V", "V a, V b", "a + b"),
    ("sub", "V", "V a, V b", "a - b"),
    ("mul", "V", "V a, V b", "a * b"),
    ("div", "V", "V a, V b", "a / b"),
    ("max", "V", "V a, V b", "larger of a, b"),
    ("min", "V", "V a, V b", "smaller of a, b"),
    ("fma", "V", "V a, V b, V c", "a * b + c"),
    ("hsum", "float", "V a", "sum of the lanes, fixed order"),
    ("hmax", "float", "V a", "largest lane"),
    ("lane0", "float", "V a", "lane 0"),
    ("round", "V", "V a", "nearest integer (|a| < 2^22)"),
    ("pow2n", "V", "V n", "2^n for integer-valued n in [-126, 127]"),
    ("keep_ge", "V", "V x, V lo, V r", "x >= lo ? r : 0 per lane"),
    ("pick_ge", "V", "V x, V lo, V r, V e", "x >= lo ? r : e per lane"),
]

_AVX2_HSUM8 = """\
/* Eight accumulators to their eight sums, in order; every lane of the
 * result is ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)) of its
 * accumulator, whatever its position. */
static inline __m256 mica_kfloat_hsum8_256(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 a4,
                                           __m256 a5, __m256 a6, __m256 a7)
{
    __m256 t0 = _mm256_hadd_ps(a0, a1), t1 = _mm256_hadd_ps(a2, a3);
    __m256 t2 = _mm256_hadd_ps(a4, a5), t3 = _mm256_hadd_ps(a6, a7);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    /* u0 = [s0 s1 s2 s3 | s0' s1' s2' s3'] over lanes 0-3 | 4-7 of a0..a3 */
    __m256 lo = _mm256_permute2f128_ps(u0, u1, 0x20), hi = _mm256_permute2f128_ps(u0, u1, 0x31);
    return _mm256_add_ps(lo, hi);
}

/* The pair_hsum of the AVX dialects: one hsum8, row a low, row b high. */
static inline void mica_kfloat_pair_store_256(__m256 s, float *outa, float *outb)
{
    _mm_storeu_ps(outa, _mm256_castps256_ps128(s));
    _mm_storeu_ps(outb, _mm256_extractf128_ps(s, 1));
}

/* Sum / max of the eight lanes of a, fixed order. */
static inline float mica_kfloat_hsum_256(__m256 a)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float mica_kfloat_hmax_256(__m256 a)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
"""

# The upper 256 bits of a zmm with AVX-512F only (extractf32x8 needs DQ).
_ZMM_HI = "_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(%s), 1))"
_ZMM_FOLD = "_mm256_add_ps(_mm512_castps512_ps256(%s), " + _ZMM_HI + ")"

_NEON = {
    "vl": 4, "racc": 8, "dc": 8, "type": "float32x4_t", "extra": "",
    "qv": 3, "qk": {1: 8, 2: 8, 3: 6},
    "ops": {
        "zero": "vdupq_n_f32(0.0f)",
        "set1": "vdupq_n_f32(x)",
        "load": "vld1q_f32(p)",
        "store": "vst1q_f32(p, a);",
        "add": "vaddq_f32(a, b)",
        "sub": "vsubq_f32(a, b)",
        "mul": "vmulq_f32(a, b)",
        "div": "vdivq_f32(a, b)",
        "max": "vmaxq_f32(a, b)",
        "min": "vminq_f32(a, b)",
        "fma": "vfmaq_f32(c, a, b)",
        "hsum": "vaddvq_f32(a)",
        "hmax": "vmaxvq_f32(a)",
        "lane0": "vgetq_lane_f32(a, 0)",
        "round": "vrndnq_f32(a)",
        "pow2n": "vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), "
                 "vdupq_n_s32(127)), 23))",
        "keep_ge": "vreinterpretq_f32_u32(vandq_u32(vcgeq_f32(x, lo), vreinterpretq_u32_f32(r)))",
        "pick_ge": "vbslq_f32(vcgeq_f32(x, lo), r, e)",
    },
    # vpaddq_f32(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3]
    "pair_hsum": "vst1q_f32(outa, vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3)));\n"
                 "    vst1q_f32(outb, vpaddq_f32(vpaddq_f32(b0, b1), vpaddq_f32(b2, b3)));",
}

DIALECTS = {
    "scalar": {
        "vl": 1, "racc": 8, "dc": 4, "type": "float", "extra": "",
        "qv": 3, "qk": {1: 4, 2: 4, 3: 4},
        "ops": {
            "zero": "0.0f",
            "set1": "x",
            "load": "*p",
            "store": "*p = a;",
            "add": "a + b",
            "sub": "a - b",
            "mul": "a * b",
            "div": "a / b",
            "max": "a > b ? a : b",
            "min": "a < b ? a : b",
            "fma": "a * b + c",
            "hsum": "a",
            "hmax": "a",
            "lane0": "a",
            "round": "(float)(int32_t)(a + (a >= 0.0f ? 0.5f : -0.5f))",
            "pow2n": None,  # statements, below
            "keep_ge": "x >= lo ? r : 0.0f",
            "pick_ge": "x >= lo ? r : e",
        },
        "pow2n": "uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;\n"
                 "    float f;\n    memcpy(&f, &bits, sizeof f);\n    return f;",
        "pair_hsum": "outa[0] = a0;\n    outa[1] = a1;\n    outa[2] = a2;\n    outa[3] = a3;\n"
                     "    outb[0] = b0;\n    outb[1] = b1;\n    outb[2] = b2;\n    outb[3] = b3;",
    },
    "avx2": {
        "vl": 8, "racc": 4, "dc": 4, "type": "__m256", "extra": _AVX2_HSUM8,
        "qv": 2, "qk": {1: 8, 2: 6},
        "ops": {
            "zero": "_mm256_setzero_ps()",
            "set1": "_mm256_set1_ps(x)",
            "load": "_mm256_loadu_ps(p)",
            "store": "_mm256_storeu_ps(p, a);",
            "add": "_mm256_add_ps(a, b)",
            "sub": "_mm256_sub_ps(a, b)",
            "mul": "_mm256_mul_ps(a, b)",
            "div": "_mm256_div_ps(a, b)",
            "max": "_mm256_max_ps(a, b)",
            "min": "_mm256_min_ps(a, b)",
            "fma": "_mm256_fmadd_ps(a, b, c)",
            "hsum": "mica_kfloat_hsum_256(a)",
            "hmax": "mica_kfloat_hmax_256(a)",
            "lane0": "_mm256_cvtss_f32(a)",
            "round": "_mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)",
            "pow2n": "_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), "
                     "_mm256_set1_epi32(127)), 23))",
            "keep_ge": "_mm256_and_ps(r, _mm256_cmp_ps(x, lo, _CMP_GE_OQ))",
            "pick_ge": "_mm256_blendv_ps(e, r, _mm256_cmp_ps(x, lo, _CMP_GE_OQ))",
        },
        "pair_hsum": "mica_kfloat_pair_store_256(\n"
                     "        mica_kfloat_hsum8_256(a0, a1, a2, a3, b0, b1, b2, b3), outa, outb);",
    },
    "avx512vnni": {
        "vl": 16, "racc": 4, "dc": 4, "type": "__m512", "extra": _AVX2_HSUM8,
        "qv": 1, "qk": {1: 8},
        "ops": {
            "zero": "_mm512_setzero_ps()",
            "set1": "_mm512_set1_ps(x)",
            "load": "_mm512_loadu_ps(p)",
            "store": "_mm512_storeu_ps(p, a);",
            "add": "_mm512_add_ps(a, b)",
            "sub": "_mm512_sub_ps(a, b)",
            "mul": "_mm512_mul_ps(a, b)",
            "div": "_mm512_div_ps(a, b)",
            "max": "_mm512_max_ps(a, b)",
            "min": "_mm512_min_ps(a, b)",
            "fma": "_mm512_fmadd_ps(a, b, c)",
            "hsum": "mica_kfloat_hsum_256(" + _ZMM_FOLD % ("a", "a") + ")",
            "hmax": "mica_kfloat_hmax_256(_mm256_max_ps(_mm512_castps512_ps256(a), "
                    + _ZMM_HI % "a" + "))",
            "lane0": "_mm_cvtss_f32(_mm512_castps512_ps128(a))",
            "round": "_mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)",
            "pow2n": "_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), "
                     "_mm512_set1_epi32(127)), 23))",
            "keep_ge": "_mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ), r)",
            "pick_ge": "_mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(x, lo, _CMP_GE_OQ), r)",
        },
        "pair_hsum": "mica_kfloat_pair_store_256(mica_kfloat_hsum8_256(\n        " +
                     ",\n        ".join(_ZMM_FOLD % (r, r) for r in
                                       ["a0", "a1", "a2", "a3", "b0", "b1", "b2", "b3"]) +
                     "),\n        outa, outb);",
    },
    "neon": _NEON,
    "dotprod": _NEON,
    "i8mm": _NEON,
}


# ---------------------------------------------------------------------------
# Constants, exact.

def _pi(bits=256):
    """pi as a Fraction within 2^-bits (Machin: 16 atan 1/5 - 4 atan 1/239)."""
    one = 1 << (bits + 16)

    def atan_inv(x):
        total, term, k, sign = 0, one // x, 1, 1
        while term:
            total += sign * (term // k)
            term //= x * x
            k += 2
            sign = -sign
        return total

    return Fraction(16 * atan_inv(5) - 4 * atan_inv(239), one)


def _ln2(bits=256):
    """ln 2 as a Fraction within 2^-bits (2 atanh 1/3)."""
    one = 1 << (bits + 16)
    total, term, k = 0, one // 3, 1
    while term:
        total += term // k
        term //= 9
        k += 2
    return Fraction(2 * total, one)


def _round_bits(v, bits):
    """v (a Fraction) rounded to `bits` significant bits, as a Fraction."""
    if v == 0:
        return Fraction(0)
    e = 0
    a = abs(v)
    while a >= 2:
        a /= 2
        e += 1
    while a < 1:
        a *= 2
        e -= 1
    q = Fraction(2) ** (bits - 1 - e)
    return Fraction(round(v * q)) / q


def _hex(v):
    """The double nearest v (a Fraction or float), as a C hex literal."""
    mant, exp = float(v).hex().split("p")
    if "." in mant:
        mant = mant.rstrip("0").rstrip(".")
    return mant + "p" + exp


def _f32(v):
    """The float nearest v, as a C hex literal with an f suffix."""
    return _hex(struct.unpack("<f", struct.pack("<f", float(v)))[0]) + "f"


def _constants():
    pio2 = _pi() / 2
    p1 = _round_bits(pio2, 33)
    p2 = _round_bits(pio2 - p1, 33)
    p3 = pio2 - p1 - p2
    ln2 = _ln2()
    ln2_hi_d = _round_bits(ln2, 32)
    ln2_hi_f = _round_bits(ln2, 16)
    ln2_lo_f = Fraction(struct.unpack("<f", struct.pack("<f", float(ln2 - ln2_hi_f)))[0])
    c = {
        "PIO2_1": _hex(p1), "PIO2_2": _hex(p2), "PIO2_3": _hex(p3),
        "TWO_OVER_PI": _hex(1 / pio2),
        "LN2_HI_D": _hex(ln2_hi_d), "LN2_LO_D": _hex(ln2 - ln2_hi_d),
        "LOG2E_D": _hex(1 / ln2), "SQRT2_D": _hex(sqrt(2.0)),
        "LN2_HI_F": _f32(ln2_hi_f), "LN2_LO_F": _f32(ln2_lo_f), "LOG2E_F": _f32(1 / ln2),
    }
    # Taylor coefficients: e^r (f32 to degree 7, f64 to 13), sin to r^17, cos to r^16.
    c["EXP_F_C7"] = _f32(Fraction(1, factorial(7)))
    c["EXP_F_HORNER"] = "\n".join(
        "    p = mica_kfloat_fma(p, r, mica_kfloat_set1(%s)); /* 1/%d! */"
        % (_f32(Fraction(1, factorial(k))), k) for k in range(6, -1, -1))
    c["EXP_D_HORNER"] = "\n".join(
        "    p = p * r + %s; /* 1/%d! */" % (_hex(Fraction(1, factorial(k))), k)
        for k in range(12, -1, -1))
    c["EXP_D_C13"] = _hex(Fraction(1, factorial(13)))
    c["LOG_D_HORNER"] = "\n".join(
        "    p = p * s2 + %s; /* 2/%d */" % (_hex(Fraction(2, k)), k)
        for k in range(17, 0, -2))
    c["LOG_D_C19"] = _hex(Fraction(2, 19))
    c["SIN_HORNER"] = "\n".join(
        "    ps = ps * r2 + %s; /* %s1/%d! */" % (_hex(Fraction((-1) ** (k // 2), factorial(k))),
                                               "-" if (k // 2) % 2 else "", k)
        for k in range(15, 2, -2))
    c["SIN_C17"] = _hex(Fraction(1, factorial(17)))
    c["COS_HORNER"] = "\n".join(
        "    pc = pc * r2 + %s; /* %s1/%d! */" % (_hex(Fraction((-1) ** (k // 2), factorial(k))),
                                               "-" if (k // 2) % 2 else "", k)
        for k in range(14, 1, -2))
    c["COS_C16"] = _hex(Fraction(1, factorial(16)))
    return c


# ---------------------------------------------------------------------------
# Template sections and the unrolled snippets.

# Steps of racc*VL elements summed in fresh accumulators before they are
# added into the totals (two-level summation: rows of equal values would
# otherwise drift by about n/lanes f32 roundings).
BLOCK_STEPS = 32


def _sections():
    with open(TEMPLATE, encoding="utf-8") as f:
        text = f.read()
    out, name, buf = {}, None, []
    for line in text.splitlines(True):
        s = line.strip()
        if s.startswith("/*@") and s.endswith("@*/"):
            if name:
                out[name] = "".join(buf)
            name, buf = s[3:-3].strip(), []
        elif name:
            buf.append(line)
    if name:
        out[name] = "".join(buf)
    return out


def _prims(dia):
    out = ["typedef %s mica_kfloat_v;\n#define MICA_KFLOAT_VL %d\n" % (dia["type"], dia["vl"])]
    if dia["extra"]:
        out.append(dia["extra"])
    for name, ret, params, meaning in PRIMS:
        ret_c = "mica_kfloat_v" if ret == "V" else ret
        params_c = params.replace("V ", "mica_kfloat_v ")
        expr = dia["ops"][name]
        if expr is None:
            body = "    " + dia[name]
        elif ret == "void":
            body = "    " + expr
        else:
            body = "    return %s;" % expr
        out.append("/* %s */\nstatic inline %s mica_kfloat_%s(%s)\n{\n%s\n}\n" %
                   (meaning, ret_c, name, params_c, body))
    args = ", ".join("mica_kfloat_v %s%d" % (r, u) for r in "ab" for u in range(4))
    out.append("/* scores of two rows x four keys: a0..a3 to outa[0..4), b0..b3 to outb[0..4) */\n"
               "static inline void mica_kfloat_pair_hsum(%s, float *outa, float *outb)\n{\n    %s\n}\n"
               % (args, dia["pair_hsum"]))
    return "\n".join(out)


def _snippets(dia):
    racc = dia["racc"]
    s = {}
    # rms and softmax sums: racc accumulators a_u over blocks of BLOCK_STEPS
    # steps of racc*VL elements, each block then added into totals t_u
    rms_step = ("        mica_kfloat_v v{u} = mica_kfloat_load(x + i + {u} * MICA_KFLOAT_VL);\n"
                "        a{u} = mica_kfloat_fma(v{u}, v{u}, a{u});")
    sm_step = ("        mica_kfloat_v e{u} = mica_kfloat_exp(\n"
               "            mica_kfloat_sub(mica_kfloat_load(xr + i + {u} * MICA_KFLOAT_VL), vmx));\n"
               "        mica_kfloat_store(yr + i + {u} * MICA_KFLOAT_VL, e{u});\n"
               "        a{u} = mica_kfloat_add(a{u}, e{u});")
    for key, ind, step in (("RMS", "    ", rms_step), ("SM", "        ", sm_step)):
        s[key + "_TOTALS"] = ind + "mica_kfloat_v " + ", ".join(
            "t%d = mica_kfloat_zero()" % u for u in range(racc)) + ";"
        s[key + "_DECL"] = ind + "    mica_kfloat_v " + ", ".join(
            "a%d = mica_kfloat_zero()" % u for u in range(racc)) + ";"
        s[key + "_STEP"] = "\n".join(ind + step.format(u=u).replace("\n", "\n" + ind)
                                     for u in range(racc))
        s[key + "_ADD"] = "\n".join(ind + "    t{u} = mica_kfloat_add(t{u}, a{u});".format(u=u)
                                    for u in range(racc))
        fold, live = [], list(range(racc))
        while len(live) > 1:
            half = len(live) // 2
            for j in range(half):
                fold.append(ind + "t%d = mica_kfloat_add(t%d, t%d);" %
                            (live[j], live[j], live[j + half]))
            live = live[:half] + live[2 * half:]
        s[key + "_FOLD"] = "\n".join(fold)
    s["BLOCK_STEPS"] = str(BLOCK_STEPS)
    s["RACC"] = str(racc)
    s["DC"] = str(dia["dc"])
    s["ATTN_BLOCKS"] = _attn_block(dia, 1) + "\n" + _attn_block(dia, 2)
    s["QV"] = str(dia["qv"])
    widths = sorted(dia["qk"], reverse=True)
    s["ATTN_QK"] = "\n".join(_attn_qk(dia, nv) for nv in sorted(widths))
    s["ATTN_PV"] = "\n".join(_attn_pv(dia, nv) for nv in sorted(widths))
    for key, fn, args in (("ATTN_QK_CALLS", "qk", "qt + v * MICA_KFLOAT_VL, ld, kb0, d, nbx, "
                                                  "st + v * MICA_KFLOAT_VL"),
                          ("ATTN_PV_CALLS", "pv", "st + v * MICA_KFLOAT_VL, ld, vb0, d, nbx, "
                                                  "ot + v * MICA_KFLOAT_VL,\n"
                                                  "                                          "
                                                  "cv + v * MICA_KFLOAT_VL, j0 == 0")):
        calls = ["                for (int32_t v = v0; v < nv;) {"]
        for k, nv in enumerate(widths):
            call = "mica_kfloat_attn_%s%d(%s);" % (fn, nv, args)
            if len(widths) == 1:
                calls.append("                    " + call)
                calls.append("                    v += %d;" % nv)
                break
            cond = ("if (nv - v >= %d) {" % nv if k == 0 else "} else if (nv - v >= %d) {" % nv
                    if k < len(widths) - 1 else "} else {")
            calls.append("                    " + cond)
            calls.append("                        " + call.replace("\n    ", "\n        "))
            calls.append("                        v += %d;" % nv)
        if len(widths) > 1:
            calls.append("                    }")
        calls.append("                }")
        s[key] = "\n".join(calls)
    return s


def _attn_qk(dia, nv):
    """C of mica_kfloat_attn_qk<nv>: raw scores of nk keys for a tile of nv
    vectors of queries, lanes over queries: st[j*ld + lane] = sum over c in
    order of qt[c*ld + lane] * k[j*d + c], one fma chain per (key, lane)
    whatever nv or the step (so a lane's bits do not depend on its tile)."""
    kq = dia["qk"][nv]
    V = "mica_kfloat_v"
    L = []
    w = L.append
    w("static inline void mica_kfloat_attn_qk%d(const float *qt, int64_t ld, const float *k, "
      "int32_t d, int32_t nk, float *st)" % nv)
    w("{")
    w("    for (int32_t j = 0; j < nk; j += %d) {" % kq)
    for u in range(kq):
        w("        const float *k%d = k + (int64_t)(j + %d < nk ? j + %d : nk - 1) * d;" % (u, u, u))
    w("        %s %s;" % (V, ", ".join("a%d_%d = mica_kfloat_zero()" % (u, v)
                                        for u in range(kq) for v in range(nv))))
    w("        for (int32_t c = 0; c < d; c++) {")
    w("            const float *qc = qt + (int64_t)c * ld;")
    w("            %s %s;" % (V, ", ".join("q%d = mica_kfloat_load(qc + %d * MICA_KFLOAT_VL)" % (v, v)
                                            for v in range(nv))))
    for u in range(kq):
        w("            %s b%d = mica_kfloat_set1(k%d[c]);" % (V, u, u))
        for v in range(nv):
            w("            a%d_%d = mica_kfloat_fma(q%d, b%d, a%d_%d);" % (u, v, v, u, u, v))
    w("        }")
    for u in range(kq):
        stmts = "\n".join(("        " if u == 0 else "            ") +
                          "mica_kfloat_store(st + (int64_t)(j + %d) * ld + %d * MICA_KFLOAT_VL, a%d_%d);"
                          % (u, v, u, v) for v in range(nv))
        if u == 0:
            w(stmts)
        else:
            w("        if (j + %d < nk) {" % u)
            w(stmts)
            w("        }")
    w("    }")
    w("}")
    return "\n".join(L) + "\n"


def _attn_pv(dia, nv):
    """C of mica_kfloat_attn_pv<nv>: the tile's outputs, transposed, lanes
    over queries: ot[c*ld + lane] = (first ? 0 : ot[c*ld + lane] *
    corr[lane]) + sum over j in order of st[j*ld + lane] * v[j*d + c], one
    fma chain per (element, lane) whatever nv or the step."""
    cq = dia["qk"][nv]
    V = "mica_kfloat_v"
    L = []
    w = L.append
    w("static inline void mica_kfloat_attn_pv%d(const float *st, int64_t ld, const float *v, "
      "int32_t d, int32_t nk, float *ot, const float *corr, int first)" % nv)
    w("{")
    w("    %s %s;" % (V, ", ".join("cr%d = mica_kfloat_load(corr + %d * MICA_KFLOAT_VL)" % (x, x)
                                   for x in range(nv))))
    w("    for (int32_t c = 0; c < d; c += %d) {" % cq)
    for u in range(cq):
        w("        int32_t c%d = c + %d < d ? c + %d : d - 1;" % (u, u, u))
    for u in range(cq):
        for x in range(nv):
            w("        %s a%d_%d = first ? mica_kfloat_zero()\n"
              "                          : mica_kfloat_mul(mica_kfloat_load(ot + (int64_t)c%d * ld + "
              "%d * MICA_KFLOAT_VL), cr%d);" % (V, u, x, u, x, x))
    w("        for (int32_t j = 0; j < nk; j++) {")
    w("            const float *sj = st + (int64_t)j * ld, *vj = v + (int64_t)j * d;")
    w("            %s %s;" % (V, ", ".join("p%d = mica_kfloat_load(sj + %d * MICA_KFLOAT_VL)" % (x, x)
                                            for x in range(nv))))
    for u in range(cq):
        w("            %s b%d = mica_kfloat_set1(vj[c%d]);" % (V, u, u))
        for x in range(nv):
            w("            a%d_%d = mica_kfloat_fma(p%d, b%d, a%d_%d);" % (u, x, x, u, u, x))
    w("        }")
    for u in range(cq):
        stmts = "\n".join(("        " if u == 0 else "            ") +
                          "mica_kfloat_store(ot + (int64_t)c%d * ld + %d * MICA_KFLOAT_VL, a%d_%d);"
                          % (u, x, u, x) for x in range(nv))
        if u == 0:
            w(stmts)
        else:
            w("        if (c + %d < d) {" % u)
            w(stmts)
            w("        }")
    w("    }")
    w("}")
    return "\n".join(L) + "\n"


def _attn_block(dia, nrows):
    """C of mica_kfloat_attn_block<nrows>: one key block for one or two query
    rows (same keys). Every line a row runs is the same in both functions,
    in the same order, so a row's result does not depend on its partner."""
    dc = dia["dc"]
    rows = "ab"[:nrows]
    V = "mica_kfloat_v"
    L = []
    w = L.append
    params = ", ".join("const float *q%s" % r for r in rows)
    params += ", const float *k, const float *v, int32_t d, "
    params += ", ".join("int32_t nb%s" % r for r in rows)
    params += ", float scale, int first, "
    params += ", ".join("float *m%s, float *l%s, float *acc%s, float *sc%s" % (r, r, r, r)
                        for r in rows)
    w("static inline void mica_kfloat_attn_block%d(%s)" % (nrows, params))
    w("{")
    w("    int32_t dv = d - d % MICA_KFLOAT_VL;")
    if nrows == 2:
        w("    int32_t nbx = nba > nbb ? nba : nbb, nbn = nba < nbb ? nba : nbb;")
    else:
        w("    int32_t nbx = nba, nbn = nba;")
        w("    float scb[4]; /* the partner's scores of pair_hsum, dropped */")
    w("    /* scores, four keys at a time (past nbx the last key again) */")
    w("    for (int32_t j = 0; j < nbx; j += 4) {")
    for u in range(4):
        w("        const float *k%d = k + (int64_t)(j + %d < nbx ? j + %d : nbx - 1) * d;" % (u, u, u))
    w("        %s %s;" % (V, ", ".join("%s%d = mica_kfloat_zero()" % (r, u)
                                        for r in rows for u in range(4))))
    w("        for (int32_t c = 0; c < dv; c += MICA_KFLOAT_VL) {")
    w("            %s %s;" % (V, ", ".join("q%sv = mica_kfloat_load(q%s + c)" % (r, r)
                                            for r in rows)))
    for u in range(4):
        w("            %s kv%d = mica_kfloat_load(k%d + c);" % (V, u, u))
        for r in rows:
            w("            %s%d = mica_kfloat_fma(q%sv, kv%d, %s%d);" % (r, u, r, u, r, u))
    w("        }")
    if nrows == 2:
        w("        mica_kfloat_pair_hsum(a0, a1, a2, a3, b0, b1, b2, b3, sca + j, scb + j);")
    else:
        w("        mica_kfloat_pair_hsum(a0, a1, a2, a3, a0, a1, a2, a3, sca + j, scb);")
    w("        for (int32_t c = dv; c < d; c++) {")
    for u in range(4):
        for r in rows:
            w("            sc%s[j + %d] += q%s[c] * k%d[c];" % (r, u, r, u))
    w("        }")
    w("    }")
    for r in rows:
        w("    float corr%s = mica_kfloat_attn_softmax(sc%s, nb%s, scale, first, m%s, l%s);"
          % (r, r, r, r, r))
    w("    /* acc = acc * corr + sum_j p_j v_j, %d vectors of acc at a time */" % dc)
    w("    %s %s;" % (V, ", ".join("vc%s = mica_kfloat_set1(corr%s)" % (r, r) for r in rows)))
    w("    int32_t c = 0;")
    for width in (dc, 1):
        step = "%d * MICA_KFLOAT_VL" % width if width > 1 else "MICA_KFLOAT_VL"
        w("    for (; c + %s <= dv; c += %s) {" % (step, step))
        for r in rows:
            for u in range(width):
                w("        %s o%s%d = first ? mica_kfloat_zero()\n"
                  "                            : mica_kfloat_mul(mica_kfloat_load(acc%s + c + %d * MICA_KFLOAT_VL), vc%s);"
                  % (V, r, u, r, u, r))
        w("        int32_t j = 0;")
        w("        for (; j < nbn; j++) {")
        w("            const float *vj = v + (int64_t)j * d + c;")
        w("            %s %s;" % (V, ", ".join("p%s = mica_kfloat_set1(sc%s[j])" % (r, r)
                                                for r in rows)))
        for u in range(width):
            w("            %s t%d = mica_kfloat_load(vj + %d * MICA_KFLOAT_VL);" % (V, u, u))
            for r in rows:
                w("            o%s%d = mica_kfloat_fma(p%s, t%d, o%s%d);" % (r, u, r, u, r, u))
        w("        }")
        if nrows == 2:
            for r in rows:
                w("        for (int32_t jr = j; jr < nb%s; jr++) {" % r)
                w("            const float *vj = v + (int64_t)jr * d + c;")
                w("            %s p%s = mica_kfloat_set1(sc%s[jr]);" % (V, r, r))
                for u in range(width):
                    w("            o%s%d = mica_kfloat_fma(p%s, mica_kfloat_load(vj + %d * MICA_KFLOAT_VL), o%s%d);"
                      % (r, u, r, u, r, u))
                w("        }")
        for r in rows:
            for u in range(width):
                w("        mica_kfloat_store(acc%s + c + %d * MICA_KFLOAT_VL, o%s%d);" % (r, u, r, u))
        w("    }")
    w("    for (; c < d; c++) {")
    for r in rows:
        w("        float o%s = first ? 0.0f : acc%s[c] * corr%s;" % (r, r, r))
        w("        for (int32_t j = 0; j < nb%s; j++)" % r)
        w("            o%s += sc%s[j] * v[(int64_t)j * d + c];" % (r, r))
        w("        acc%s[c] = o%s;" % (r, r))
    w("    }")
    w("}")
    return "\n".join(L) + "\n"


def HELPERS(isa):
    dia = DIALECTS[isa["name"]]
    sec = _sections()
    kw = dict(_constants())
    kw.update(_snippets(dia))
    parts = [_prims(dia)]
    for name in ("exp", "rms_scale", "attn_block", "double_math"):
        parts.append(Template(sec[name]).substitute(kw))
    return "\n".join(parts)


def generate(isa):
    dia = DIALECTS[isa["name"]]
    sec = _sections()
    kw = dict(_constants())
    kw.update(_snippets(dia))
    out = []
    for fam in FAMILIES:
        name = "mica_k_f32_%s__%s" % (fam, isa["name"])
        body = sec["add" if fam == "mul" else fam]
        kw2 = dict(kw, NAME=name, PROTO=PROTOS[fam].replace("NAME", name),
                   OP="mica_kfloat_add" if fam == "add" else "mica_kfloat_mul",
                   SOP="+" if fam == "add" else "*")
        params = "vl=%d" % dia["vl"] if fam != "rope" else "portable,f64"
        if fam == "attention_kv":
            params += ",tile=%dx%d,qk=%s,rows=2,keys=4,dc=%d" % (
                dia["qv"], dia["vl"], "/".join("%dx%d" % (nv, dia["qk"][nv]) for nv in sorted(dia["qk"])),
                dia["dc"])
        if fam == "rms_norm":
            params += ",racc=%d" % dia["racc"]
        out.append(({"family": fam, "name": name, "params": params},
                    Template(body).substitute(kw2)))
    return out
