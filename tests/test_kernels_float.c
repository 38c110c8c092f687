/* The float kernel families (rms_norm, add, mul, swiglu, rope, softmax,
 * attention_kv), every generated variant this CPU runs, against plain
 * double-precision loops: the checks of tests/kernels_float_check.c (its
 * header says what they cover), driven by Criterion, with the CPU's
 * features from mica_target_detect_host. */
#include <criterion/criterion.h>

#define KFC_NO_MAIN
#include "kernels_float_check.c"

#include "target.h"

/* The features each ISA needs, as codegen/kernels/isa.py lists them. */
static const struct {
    const char *isa;
    uint64_t needs;
} kfc_isa_needs[] = {
    {"scalar", 0},
    {"avx2", MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX2) |
                 MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_FMA) |
                 MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_F16C)},
    {"avx512vnni", MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX2) |
                       MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_FMA) |
                       MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_F16C) |
                       MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX512F) |
                       MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX512BW) |
                       MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_AVX512VNNI)},
    {"neon", MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_NEON)},
    {"dotprod", MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_NEON) |
                    MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_DOTPROD) |
                    MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_FP16)},
    {"i8mm", MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_NEON) |
                 MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_DOTPROD) |
                 MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_I8MM) |
                 MICA_TARGET_FEATURE_BIT(MICA_TARGET_FEATURE_FP16)},
};

static int kfc_host_runs(const char *isa)
{
    mica_target_t t;
    mica_diag_t d = {0};
    cr_assert_eq(mica_target_detect_host(&t, &d), MICA_OK, "detecting the host: %s", d.msg);
    for (int i = 0; i < KFC_COUNT(kfc_isa_needs); i++)
        if (!strcmp(kfc_isa_needs[i].isa, isa))
            return (t.features & kfc_isa_needs[i].needs) == kfc_isa_needs[i].needs;
    cr_assert_fail("ISA %s of the kernel list is unknown to this test", isa);
    return 0;
}

/* Every variant of family whose ISA this CPU runs passes; at least the
 * portable one ran, and none of this architecture's is missing from the
 * host library. */
static void kfc_family_test(const char *family)
{
    kfc_t c = {0};
    int want = 0;
    for (const kfc_variant_t *v = kfc_variants; v->name; v++)
        if (!strcmp(v->family, family)) {
            cr_assert_not_null(v->fn, "%s is not in mica_kernels_host", v->name);
            want += kfc_host_runs(v->isa);
        }
    int ran = kfc_run_family(&c, family, kfc_host_runs);
    cr_expect_eq(c.failures, 0, "%s: %d values or writes wrong (the first ones are on stderr)",
                 family, c.failures);
    cr_expect_eq(ran, want, "%s: %d variants ran, %d should", family, ran, want);
    cr_expect_geq(ran, 1, "%s: no variant ran", family);
    cr_expect_gt(c.checks, 0, "%s: nothing compared", family);
}

Test(kernels_float, every_isa_has_every_family)
{
    cr_expect_eq(kfc_missing_variants(), 0, "families missing for some ISA (see stderr)");
}

Test(kernels_float, rms_norm)
{
    kfc_family_test("rms_norm");
}

Test(kernels_float, add)
{
    kfc_family_test("add");
}

Test(kernels_float, mul)
{
    kfc_family_test("mul");
}

Test(kernels_float, swiglu)
{
    kfc_family_test("swiglu");
}

Test(kernels_float, rope)
{
    kfc_family_test("rope");
}

Test(kernels_float, softmax)
{
    kfc_family_test("softmax");
}

Test(kernels_float, attention_kv)
{
    kfc_family_test("attention_kv");
}
