/* The quantized kernel families on this machine: every variant of
 * qgemm_u4, qgemv_u4, qgemm_i8, qgemv_i8, act_quant and rms_act_quant in
 * the generated list whose ISA this CPU runs (runtime/target.h), against
 * the plain-loop oracles of tests/kernels_quant_check.c (the same checks
 * the aarch64 stage runs under qemu). */
#include <criterion/criterion.h>
#include <string.h>

#include "target.h"

#define MICA_KQ_CHECK_NO_MAIN
#define MICA_KQ_ISA_RUNS_EXTERNAL
#include "kernels_quant_check.c"

/* The features each kernel ISA needs, as codegen/kernels/isa.py lists them. */
static int kq_isa_runs(const char *isa)
{
    mica_target_t t;
    mica_diag_t d;
    memset(&d, 0, sizeof d);
    if (mica_target_detect_host(&t, &d) != MICA_OK)
        return strcmp(isa, "scalar") == 0;
    const uint64_t f = t.features;
#define KQ_HAS(x) ((f & MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_##x)) != 0)
    if (strcmp(isa, "scalar") == 0)
        return 1;
    if (strcmp(isa, "avx2") == 0)
        return KQ_HAS(AVX2) && KQ_HAS(FMA) && KQ_HAS(F16C);
    if (strcmp(isa, "avx512vnni") == 0)
        return KQ_HAS(AVX2) && KQ_HAS(FMA) && KQ_HAS(F16C) && KQ_HAS(AVX512F) && KQ_HAS(AVX512BW) &&
               KQ_HAS(AVX512VNNI);
    if (strcmp(isa, "neon") == 0)
        return KQ_HAS(NEON);
    if (strcmp(isa, "dotprod") == 0)
        return KQ_HAS(NEON) && KQ_HAS(DOTPROD) && KQ_HAS(FP16);
    if (strcmp(isa, "i8mm") == 0)
        return KQ_HAS(NEON) && KQ_HAS(DOTPROD) && KQ_HAS(I8MM) && KQ_HAS(FP16);
#undef KQ_HAS
    return 0;
}

static void kq_run(const char *family, int cases)
{
    int ran = 0;
    const int bad = kq_check_family(family, cases, &ran);
    cr_expect_gt(ran, 0, "no variant of %s runs here", family);
    cr_expect_eq(bad, 0, "%d variant(s) of %s failed (see stderr)", bad, family);
}

Test(kernels_quant, qgemm_u4)
{
    kq_run("qgemm_u4", 80);
}
Test(kernels_quant, qgemv_u4)
{
    kq_run("qgemv_u4", 80);
}
Test(kernels_quant, qgemm_i8)
{
    kq_run("qgemm_i8", 80);
}
Test(kernels_quant, qgemv_i8)
{
    kq_run("qgemv_i8", 80);
}
Test(kernels_quant, act_quant)
{
    kq_run("act_quant", 80);
}
Test(kernels_quant, rms_act_quant)
{
    kq_run("rms_act_quant", 80);
}
