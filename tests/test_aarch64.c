/* The aarch64 build of mica, run under qemu-aarch64-static from the host
 * suite (tests/CMakeLists.txt cross-builds it in build/.../aarch64 when the
 * cross compiler and qemu are here).
 *
 * Oracles: qemu's CPU models (-cpu max has dotprod, i8mm and fp16,
 * -cpu cortex-a76 dotprod and fp16 but no i8mm), the plain-loop references
 * inside the kernel check programs, ../shared/golden's exact logits, and
 * the host build's own run of the same command (itself checked against the
 * golden files by test_golden). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_model.h"
#include "test_run.h"
#include "test_support.h"

#define A64_MICA MICA_AARCH64_DIR "/tools/mica"

static char tmpdir[] = "/tmp/mica-aarch64-XXXXXX";

static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
    /* where qemu finds the aarch64 dynamic loader and glibc */
    cr_assert_eq(setenv("QEMU_LD_PREFIX", MICA_AARCH64_SYSROOT, 1), 0);
}

static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}

TestSuite(aarch64, .init = setup, .fini = teardown, .timeout = 300);

/* Runs the aarch64 program prog on qemu's CPU model cpu, with the
 * arguments up to the NULL. */
static mica_test_result_t run_a64(const char *cpu, const char *prog, ...)
{
    const char *argv[64] = {MICA_QEMU_AARCH64, "-cpu", cpu, prog};
    int n = 4;
    va_list ap;
    va_start(ap, prog);
    while (n < 63 && (argv[n] = va_arg(ap, const char *)) != NULL)
        n++;
    va_end(ap);
    argv[n] = NULL;
    return mica_test_run_argv(tmpdir, argv);
}

/* The golden id list `name` as it is in the file, "1,2,3" (malloc'd). */
static char *golden_ids_text(const char *name)
{
    char *s = mica_test_read_file(mica_test_golden(name), NULL);
    cr_assert(s, "cannot read %s", name);
    s[strcspn(s, "\r\n")] = 0;
    return s;
}

/* ------------------------------------------------------------------------ */
/* the runtime's view of the CPU                                             */

/* The "features" list of `mica targets --json host` on one CPU model, as
 * text ("\"neon\", \"dotprod\"") in buf. */
static void host_features(const char *cpu, char *buf, size_t cap)
{
    mica_test_result_t r = run_a64(cpu, A64_MICA, "targets", "--json", "host", NULL);
    cr_assert_eq(r.status, 0, "-cpu %s: mica targets: %s", cpu, r.err);
    cr_expect(strstr(r.out, "\"arch\": \"aarch64\""), "-cpu %s: not aarch64: %s", cpu, r.out);
    const char *f = strstr(r.out, "\"features\": [");
    cr_assert(f, "-cpu %s: no features in %s", cpu, r.out);
    f += strlen("\"features\": [");
    size_t len = strcspn(f, "]");
    cr_assert_lt(len, cap);
    memcpy(buf, f, len);
    buf[len] = 0;
    mica_test_result_free(&r);
}

Test(aarch64, detects_the_features_of_each_cpu_model)
{
    char max[256], a76[256];
    host_features("max", max, sizeof max);
    host_features("cortex-a76", a76, sizeof a76);
    for (int i = 0; i < 3; i++) {
        const char *want[] = {"\"neon\"", "\"dotprod\"", "\"fp16\""};
        cr_expect(strstr(max, want[i]), "-cpu max lacks %s: [%s]", want[i], max);
        cr_expect(strstr(a76, want[i]), "-cpu cortex-a76 lacks %s: [%s]", want[i], a76);
    }
    cr_expect(strstr(max, "\"i8mm\""), "-cpu max lacks i8mm: [%s]", max);
    cr_expect(!strstr(a76, "\"i8mm\""), "-cpu cortex-a76 has i8mm: [%s]", a76);
}

/* ------------------------------------------------------------------------ */
/* the generated NEON, dotprod and i8mm kernels                              */

/* Every kernel check program (tests/kernels_*_check.c) on -cpu max, where
 * every variant runs: each exits 0 only if all its checks pass. (Defined
 * once there is one: the kernel families land one by one.) */
#if MICA_KERNEL_CHECK_COUNT > 0
Test(aarch64, kernel_checks_pass_on_cpu_max)
{
    char list[] = MICA_KERNEL_CHECK_LIST;
    int n = 0;
    for (char *name = strtok(list, ","); name; name = strtok(NULL, ","), n++) {
        char prog[512];
        snprintf(prog, sizeof prog, "%s/tests/%s", MICA_AARCH64_DIR, name);
        mica_test_result_t r = run_a64("max", prog, NULL);
        cr_log_info("%s on -cpu max: exit %d: %s", name, r.status, r.out);
        cr_expect_eq(r.status, 0, "%s on -cpu max: exit %d (signal %d)\n%s%s", name, r.status,
                     r.signal, r.out, r.err);
        mica_test_result_free(&r);
    }
    cr_expect_eq(n, MICA_KERNEL_CHECK_COUNT);
}
#endif

/* Instructions of a later ISA than the file's own, by the Arm ARM: sdot
 * and udot need dotprod (FEAT_DotProd); smmla, ummla, usmmla, usdot and
 * sudot need i8mm (FEAT_I8MM). */
static const char *later_isa(const char *file, const char *mnemonic)
{
    static const char *const dotprod[] = {"sdot", "udot"};
    static const char *const i8mm[] = {"smmla", "ummla", "usmmla", "usdot", "sudot"};
    bool neon = !strcmp(file, "kernels_neon.c.o"), dp = !strcmp(file, "kernels_dotprod.c.o");
    for (int i = 0; i < 5; i++)
        if ((neon || dp) && !strcmp(mnemonic, i8mm[i]))
            return "i8mm";
    for (int i = 0; i < 2; i++)
        if (neon && !strcmp(mnemonic, dotprod[i]))
            return "dotprod";
    return NULL;
}

/* Whether kernel_list.inc text has a variant of family for isa: a line
 * "MICA_KERNEL(family, name, isa, params)". */
static bool lists_variant(const char *list, const char *family, const char *isa)
{
    char fam[64], at[64];
    snprintf(fam, sizeof fam, "MICA_KERNEL(%s, ", family);
    snprintf(at, sizeof at, ", %s, \"", isa);
    for (const char *l = strstr(list, fam); l; l = strstr(l + 1, fam)) {
        const char *end = strchr(l, '\n'), *a = strstr(l, at);
        if (a && (!end || a < end))
            return true;
    }
    return false;
}

/* A dotprod artifact must run on a Cortex-A76 (rpi5: no i8mm): the neon
 * and dotprod kernel objects hold no instruction of a later ISA (inline
 * assembly or a target attribute could put one there past the flags),
 * and, once there are quantized matmuls, the dotprod and i8mm objects use
 * their own (sdot, smmla). */
Test(aarch64, kernel_objects_use_only_their_isa)
{
    const char *argv[] = {MICA_AARCH64_OBJDUMP, "-d", "--no-show-raw-insn",
                          MICA_AARCH64_DIR "/codegen/libmica_kernels_host.a", NULL};
    mica_test_result_t r = mica_test_run_argv(tmpdir, argv);
    cr_assert_eq(r.status, 0, "objdump: %s", r.err);
    char file[64] = "";
    int files = 0, bad = 0;
    long sdot = 0, smmla = 0;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        char name[64];
        if (sscanf(line, "%63s file format", name) == 1 && strstr(line, "file format")) {
            snprintf(file, sizeof file, "%.*s", (int)strcspn(name, ":"), name);
            files++;
            continue;
        }
        /* "  1c:\tsdot\tv0.4s, v1.16b, v2.16b" */
        const char *tab = strchr(line, '\t');
        if (!tab || tab == line || tab[-1] != ':')
            continue;
        char mn[32];
        if (sscanf(tab + 1, "%31s", mn) != 1)
            continue;
        const char *isa = later_isa(file, mn);
        if (isa && bad++ < 5)
            cr_log_error("%s: %s needs %s: %s", file, mn, isa, line);
        sdot += !strcmp(file, "kernels_dotprod.c.o") && !strcmp(mn, "sdot");
        smmla += !strcmp(file, "kernels_i8mm.c.o") && !strcmp(mn, "smmla");
    }
    cr_expect_eq(bad, 0, "%d instructions of a later ISA in the neon/dotprod kernels", bad);
    cr_expect_eq(files, 4, "%d objects in the kernel archive, not scalar/neon/dotprod/i8mm", files);
    mica_test_result_free(&r);
    /* once the quantized matmuls exist (the families land one by one) */
    char *list = mica_test_read_file(MICA_AARCH64_DIR "/codegen/kernels/kernel_list.inc", NULL);
    cr_assert(list, "no kernel_list.inc in the aarch64 build");
    if (lists_variant(list, "qgemm_i8", "dotprod"))
        cr_expect_gt(sdot, 0, "the dotprod kernels use no sdot");
    if (lists_variant(list, "qgemm_i8", "i8mm"))
        cr_expect_gt(smmla, 0, "the i8mm kernels use no smmla");
    free(list);
}

/* ------------------------------------------------------------------------ */
/* the reference path of the aarch64 mica                                    */

/* All 16 golden ids through `mica run GGUF --dump-logits` on aarch64:
 * the exact logits to about 1e-4 (the bound golden/README.md gives the ref). */
static void check_ref_logits(const char *model, const char *type)
{
    char gguf[128], ids_name[128], exact_name[128];
    snprintf(gguf, sizeof gguf, "%s.%s.gguf", model, type);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    snprintf(exact_name, sizeof exact_name, "%s.%s.exact.f32", model, type);
    char *ids = golden_ids_text(ids_name);
    const char *out = mica_test_path(tmpdir, "logits.f32");
    mica_test_result_t r = run_a64("max", A64_MICA, "run", mica_test_golden(gguf), "--tokens", ids,
                                   "--dump-logits", out, NULL);
    cr_assert_eq(r.status, 0, "%s: %s", gguf, r.err);
    mica_test_result_free(&r);

    size_t got_len = 0, exact_len = 0;
    float *got = (float *)mica_test_read_file(out, &got_len);
    float *exact = (float *)mica_test_read_file(mica_test_golden(exact_name), &exact_len);
    cr_assert(got && exact);
    cr_assert_eq(got_len, exact_len, "%s: %zu bytes of logits, %s has %zu", gguf, got_len,
                 exact_name, exact_len);
    size_t n = exact_len / sizeof(float);
    double err = mica_test_max_abs_diff(got, exact, n);
    cr_log_info("%s on aarch64: max |diff| vs exact %.3g, NMSE %.3g", gguf, err,
                mica_test_nmse(got, exact, n));
    cr_expect(err <= 1e-4, "%s on aarch64: logits differ from exact by %g", gguf, err);
    free(got);
    free(exact);
    free(ids);
}

Test(aarch64, ref_path_reproduces_golden_llama_q4_0)
{
    check_ref_logits("llama-tiny", "q4_0");
}
Test(aarch64, ref_path_reproduces_golden_qwen2_f32)
{
    check_ref_logits("qwen2-tiny", "f32");
}

/* Tokenizer, generation loop and detokenizer on aarch64 (where char is
 * unsigned): greedy text from a text prompt, byte for byte the host's. */
Test(aarch64, greedy_text_is_the_hosts)
{
    const char *models[] = {"llama-tiny.q8_0.gguf", "qwen2-tiny.q8_0.gguf"};
    for (int i = 0; i < 2; i++) {
        const char *gguf = mica_test_golden(models[i]);
        mica_test_result_t host =
            mica_test_mica(tmpdir, "run", gguf, "-p", "Héllo, wörld: 12 apples", "-n", "12",
                           "--temp", "0", "--ignore-eos", NULL);
        cr_assert_eq(host.status, 0, "%s: %s", models[i], host.err);
        mica_test_result_t a64 =
            run_a64("max", A64_MICA, "run", gguf, "-p", "Héllo, wörld: 12 apples", "-n", "12",
                    "--temp", "0", "--ignore-eos", NULL);
        cr_assert_eq(a64.status, 0, "%s on aarch64: %s", models[i], a64.err);
        cr_expect(strlen(host.out) > 0, "%s: no text", models[i]);
        cr_expect_str_eq(a64.out, host.out, "%s: aarch64 greedy text differs from the host's",
                         models[i]);
        mica_test_result_free(&host);
        mica_test_result_free(&a64);
    }
}
