"""Quantized matmul kernels: W4A8 / W8A8 GEMM (prefill) and GEMV (decode),
dynamic int8 activation quantization, and rms_norm fused with it.

Python 3 standard library only; read by codegen/gen_kernels.py (see its
docstring for FAMILIES / PROTOS / HELPERS / generate). The C lives in
templates beside this file:

    quant_portable.c.in   plain C: the scalar ISA, and the row/column
                          remainders and fallbacks of every ISA
    quant_avx2.c.in       vpmaddubsw + vpmaddwd (x86 AVX2)
    quant_avx512.c.in     vpdpbusd zmm (AVX-512 VNNI, tile 64x4)
    quant_neon.c.in       NEON: smull/smlal + sadalp, sdot, smmla

Templates hold the structure; DIALECT below holds what differs between the
ISAs: which template, the register block (rows of activations x weight
tiles) of the gemm, and the per-ISA spellings the template is filled with.
Every family's entry point is a thin wrapper over a static inline core
taking the dtype as a constant, so u4 and i8 share one body per ISA.
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

# What differs between the ISAs. template: the file with the ISA's cores
# (None = portable only); ep: rows of activations one gemm step holds in
# registers; subs: extra ${...} spellings of the template.
DIALECT = {
    "scalar": {"template": None, "ep": 1, "subs": {}},
    "avx2": {"template": None, "ep": 4, "subs": {}},
    "avx512vnni": {"template": None, "ep": 4, "subs": {}},
    "neon": {"template": None, "ep": 4,
             "subs": {"DOT": "MICA_KQ_DOT_SMLAL"}},
    "dotprod": {"template": None, "ep": 4,
                "subs": {"DOT": "MICA_KQ_DOT_SDOT"}},
    "i8mm": {"template": None, "ep": 4,
             "subs": {"DOT": "MICA_KQ_DOT_SMMLA"}},
}


def _render(fname, isa, extra):
    with open(os.path.join(HERE, fname), encoding="utf-8") as f:
        text = f.read()
    subs = {"ISA": isa["name"], "HP": str(isa["hp"]), "LP": str(isa["lp"])}
    subs.update(extra)
    return string.Template(text).substitute(subs)


def HELPERS(isa):
    d = DIALECT[isa["name"]]
    out = _render("quant_portable.c.in", isa, d["subs"])
    if d["template"]:
        out += "\n" + _render(d["template"], isa, d["subs"])
    else:
        out += _PORTABLE_CORES
    return out


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

static inline void mica_kq_act_quant(const float *x, int64_t ldx, int8_t *xq, float *xs,
                                     int32_t m0, int32_t m1, int32_t k, int32_t group)
{
    for (int32_t m = m0; m < m1; m++)
        mica_kq_portable_quant_row(x + (int64_t)m * ldx, xq + (int64_t)m * k,
                                   xs + (int64_t)m * (k / group), k, group);
}

static inline void mica_kq_rms_act_quant(const float *x, int64_t ldx, const float *w, float eps,
                                         int8_t *xq, float *xs, int32_t m0, int32_t m1,
                                         int32_t k, int32_t group)
{
    for (int32_t m = m0; m < m1; m++) {
        const float *xr = x + (int64_t)m * ldx;
        const float inv = mica_kq_rms_inv(xr, k, eps);
        for (int32_t j = 0; j < k / group; j++) {
            float mx = 0.0f;
            for (int32_t i = j * group; i < (j + 1) * group; i++) {
                const float v = xr[i] * inv * w[i], a = v < 0.0f ? -v : v;
                if (a > mx)
                    mx = a;
            }
            const float sc = (float)((double)mx / 127.0);
            xs[(int64_t)m * (k / group) + j] = sc;
            for (int32_t i = j * group; i < (j + 1) * group; i++)
                xq[(int64_t)m * k + i] = mica_kq_quant1(xr[i] * inv * w[i], sc);
        }
    }
}
"""


def generate(isa):
    d = DIALECT[isa["name"]]
    names = _names(isa)
    variants = []
    for fam in FAMILIES:
        text = "%s\n{\n    %s\n}\n" % (PROTOS[fam].replace("NAME", names[fam]), _BODY[fam])
        params = "ep=%d,hp=%d,lp=%d" % (d["ep"], isa["hp"], isa["lp"])
        if fam in ("act_quant", "rms_act_quant"):
            params = ""
        variants.append(({"family": fam, "name": names[fam], "params": params}, text))
    return variants
