/* The aarch64 build of mica, run under qemu-aarch64-static from the host
 * suite (tests/CMakeLists.txt cross-builds it in build/.../aarch64 when the
 * cross compiler and qemu are here): the generated NEON kernels, the ref
 * path, and artifacts the host compiles for armv8.2-dotprod and
 * armv8.6-i8mm, run by the aarch64 runtime.
 *
 * Oracles: qemu's CPU models (-cpu max has dotprod, i8mm and fp16,
 * -cpu cortex-a76 dotprod and fp16 but no i8mm, cortex-a53 neither), the
 * plain-loop references inside the kernel check programs, the Arm ARM's
 * list of which instruction needs which feature, ../shared/golden's exact
 * logits and llama.cpp's NMSE (yardstick.tsv), the host ref backend on
 * the same artifact, and the host build's own run of the same command
 * (itself checked against the golden files by test_golden). */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "artifact.h"
#include "ref_program.h"
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

/* ------------------------------------------------------------------------ */
/* compiled artifacts: the host mica compiles, the aarch64 mica runs them    */

/* llama.cpp's NMSE against exact for golden file stem ("llama-tiny.q8_0"),
 * from yardstick.tsv. */
static double yardstick(const char *stem)
{
    char *tsv = mica_test_read_file(mica_test_golden("yardstick.tsv"), NULL);
    cr_assert(tsv, "cannot read yardstick.tsv");
    double v = -1;
    size_t len = strlen(stem);
    for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n"))
        if (!strncmp(line, stem, len) && line[len] == '\t')
            v = strtod(line + len + 1, NULL);
    free(tsv);
    cr_assert_gt(v, 0, "no yardstick for %s", stem);
    return v;
}

/* The host mica compiles golden file gguf for target and quant into
 * tmpdir/name (returned, static until the next call): context 64, prefill
 * chunks of 6 (16 ids take two full calls and a remainder); w4a8 and
 * w8a8 in groups of 32, GGUF's block, so the weights transcode without
 * loss and the NMSE is the activations' alone. */
static const char *compile_for(const char *gguf, const char *target, const char *quant,
                               const char *name)
{
    static char art[600];
    snprintf(art, sizeof art, "%s/%s", tmpdir, name);
    const char *args[16] = {"compile", mica_test_golden(gguf),
                            "-t",      target,
                            "-q",      quant,
                            "-c",      "64",
                            "--chunk", "6",
                            "-o",      art};
    if (!strcmp(quant, "w4a8") || !strcmp(quant, "w8a8")) {
        args[12] = "--group";
        args[13] = "32";
    }
    mica_test_result_t r = mica_test_mica_argv(tmpdir, args);
    cr_assert_eq(r.status, 0, "compile %s -t %s -q %s: %s", gguf, target, quant, r.err);
    mica_test_result_free(&r);
    return art;
}

/* ART/model.so is an aarch64 ELF object that loads under any libc: no
 * DT_NEEDED entry, and no undefined dynamic symbol but memcpy and memset. */
static void check_model_object(const char *art)
{
    char so[700];
    snprintf(so, sizeof so, "%s/model.so", art);
    size_t len = 0;
    unsigned char *elf = (unsigned char *)mica_test_read_file(so, &len);
    cr_assert(elf && len > 64, "cannot read %s", so);
    cr_expect(!memcmp(elf, "\177ELF", 4) && elf[4] == 2 && elf[5] == 1,
              "%s: not a 64-bit little-endian ELF file", so);
    cr_expect_eq(elf[18] | elf[19] << 8, 183, "%s: e_machine %d, not EM_AARCH64 (183)", so,
                 elf[18] | elf[19] << 8);
    free(elf);

    const char *dyn[] = {MICA_AARCH64_READELF, "-d", "-W", so, NULL};
    mica_test_result_t r = mica_test_run_argv(tmpdir, dyn);
    cr_assert_eq(r.status, 0, "readelf -d %s: %s", so, r.err);
    cr_expect(strstr(r.out, "(SYMTAB)"), "%s: no dynamic section: %s", so, r.out);
    cr_expect(!strstr(r.out, "(NEEDED)"), "%s needs a shared library:\n%s", so, r.out);
    mica_test_result_free(&r);

    const char *syms[] = {MICA_AARCH64_READELF, "--dyn-syms", "-W", so, NULL};
    r = mica_test_run_argv(tmpdir, syms);
    cr_assert_eq(r.status, 0, "readelf --dyn-syms %s: %s", so, r.err);
    int undefined = 0;
    bool entry = false;
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        /* "     2: 0000000000000000     0 NOTYPE  GLOBAL DEFAULT  UND memcpy" */
        char num[16], value[32], size[16], type[16], bind[16], vis[16], ndx[16], name[128] = "";
        if (sscanf(line, "%15s %31s %15s %15s %15s %15s %15s %127s", num, value, size, type, bind,
                   vis, ndx, name) < 7 ||
            num[strlen(num) - 1] != ':')
            continue;
        entry |= !strcmp(name, "mica_model_entry") && strcmp(ndx, "UND") != 0;
        if (!strcmp(ndx, "UND") && name[0] && strcmp(name, "memcpy") && strcmp(name, "memset")) {
            cr_log_error("%s: undefined %s", so, name);
            undefined++;
        }
    }
    cr_expect_eq(undefined, 0, "%s calls %d functions besides memcpy/memset", so, undefined);
    cr_expect(entry, "%s does not define mica_model_entry", so);
    mica_test_result_free(&r);
}

/* Logits of `mica run ART --tokens IDS --dump-logits` by the aarch64 mica
 * on CPU model cpu with threads threads; *out_n floats (malloc'd). */
static float *a64_logits(const char *cpu, const char *art, const char *ids, const char *threads,
                         size_t *out_n)
{
    const char *out = mica_test_path(tmpdir, "a64.f32");
    remove(out);
    mica_test_result_t r = run_a64(cpu, A64_MICA, "run", art, "--tokens", ids, "--dump-logits", out,
                                   "-t", threads, NULL);
    cr_assert_eq(r.status, 0, "-cpu %s: mica run %s: %s", cpu, art, r.err);
    mica_test_result_free(&r);
    size_t len = 0;
    float *x = (float *)mica_test_read_file(out, &len);
    cr_assert(x, "no logits from %s", art);
    *out_n = len / sizeof(float);
    return x;
}

/* Logits of the artifact's own program on the host's ref backend: the
 * same IR, weights and plan, interpreted by plain loops. */
static float *ref_logits(const char *art, const int32_t *ids, int32_t n, size_t *out_n)
{
    mica_artifact_t *a = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_artifact_open(art, &a, &d), MICA_OK, "%s", d.msg);
    mica_ref_program_t *rp = NULL;
    cr_assert_eq(mica_ref_program_create(a->program, &rp, &d), MICA_OK, "%s", d.msg);
    const size_t V = (size_t)a->program->cfg.n_vocab;
    float *y = malloc((size_t)n * V * sizeof *y);
    cr_assert(y);
    cr_assert_eq(mica_ref_program_eval(rp, ids, n, true, y, &d), MICA_OK, "%s", d.msg);
    mica_ref_program_release(rp);
    mica_artifact_close(a);
    *out_n = (size_t)n * V;
    return y;
}

/* Greedy text of 16 tokens after the golden ids, by the aarch64 mica on
 * -cpu max with threads threads (malloc'd). */
static char *a64_greedy(const char *art, const char *ids, const char *threads)
{
    mica_test_result_t r = run_a64("max", A64_MICA, "run", art, "--tokens", ids, "-n", "16",
                                   "--temp", "0", "--ignore-eos", "-t", threads, NULL);
    cr_assert_eq(r.status, 0, "mica run %s -t %s: %s", art, threads, r.err);
    char *text = r.out;
    free(r.err);
    return text;
}

/* One golden model and weight type compiled for an aarch64 target and run
 * there: the object's dependencies, logits of all 16 ids against the ref
 * backend on the same artifact (the kernels add nothing but float
 * rounding) and against exact (f32: 1e-6; quantized: at most 1.25 times
 * llama.cpp's NMSE), and greedy text the same for 1 and 2 threads (and,
 * for f32, the host ref path's on the GGUF). */
static void check_compiled(const char *model, const char *type, const char *target,
                           const char *quant)
{
    char stem[96], gguf[128], ids_name[128], exact_name[128];
    snprintf(stem, sizeof stem, "%s.%s", model, type);
    snprintf(gguf, sizeof gguf, "%s.gguf", stem);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    snprintf(exact_name, sizeof exact_name, "%s.exact.f32", stem);
    const char *art = compile_for(gguf, target, quant, "art");
    check_model_object(art);

    char *ids = golden_ids_text(ids_name);
    int32_t id[64];
    int32_t n_ids = (int32_t)mica_test_read_ids(ids_name, id, 64);
    size_t n = 0, n_ref = 0, n_exact = 0;
    float *x = a64_logits("max", art, ids, "1", &n);
    float *y = ref_logits(art, id, n_ids, &n_ref);
    float *exact = (float *)mica_test_read_file(mica_test_golden(exact_name), &n_exact);
    cr_assert(exact, "cannot read %s", exact_name);
    n_exact /= sizeof(float);
    cr_assert_eq(n, n_ref, "%s: %zu logits from aarch64, %zu from ref", stem, n, n_ref);
    cr_assert_eq(n, n_exact, "%s: %zu logits from aarch64, %zu in %s", stem, n, n_exact,
                 exact_name);
    double vs_ref = mica_test_nmse(x, y, n), vs_exact = mica_test_nmse(x, exact, n);
    double bound = !strcmp(quant, "f32") ? 1e-6 : 1.25 * yardstick(stem);
    cr_log_info("%s -t %s -q %s on aarch64: NMSE %.3g vs ref, %.3g vs exact (bound %.3g; "
                "llama.cpp %.3g)",
                stem, target, quant, vs_ref, vs_exact, bound, yardstick(stem));
    cr_expect(vs_ref <= 1e-6, "%s -t %s -q %s: NMSE %g against ref on the same artifact", stem,
              target, quant, vs_ref);
    cr_expect(vs_exact <= bound, "%s -t %s -q %s: NMSE %g against exact, bound %g", stem, target,
              quant, vs_exact, bound);

    char *one = a64_greedy(art, ids, "1"), *two = a64_greedy(art, ids, "2");
    cr_expect(strlen(one) > 0, "%s: no greedy text", stem);
    cr_expect_str_eq(two, one, "%s -t %s: greedy text differs between 1 and 2 threads", stem,
                     target);
    if (!strcmp(quant, "f32")) {
        mica_test_result_t host =
            mica_test_mica(tmpdir, "run", mica_test_golden(gguf), "--tokens", ids, "-n", "16",
                           "--temp", "0", "--ignore-eos", NULL);
        cr_assert_eq(host.status, 0, "%s: %s", gguf, host.err);
        cr_expect_str_eq(one, host.out, "%s -t %s: greedy text differs from the ref path's", stem,
                         target);
        mica_test_result_free(&host);
    }
    free(one);
    free(two);
    free(x);
    free(y);
    free(exact);
    free(ids);
}

Test(aarch64, dotprod_w8a8_llama)
{
    check_compiled("llama-tiny", "q8_0", "armv8.2-dotprod", "w8a8");
}
Test(aarch64, dotprod_w4a8_qwen2)
{
    check_compiled("qwen2-tiny", "q4_0", "armv8.2-dotprod", "w4a8");
}
Test(aarch64, dotprod_f32_llama)
{
    check_compiled("llama-tiny", "f32", "armv8.2-dotprod", "f32");
}
Test(aarch64, i8mm_w8a8_qwen2)
{
    check_compiled("qwen2-tiny", "q8_0", "armv8.6-i8mm", "w8a8");
}
Test(aarch64, i8mm_w4a8_llama)
{
    check_compiled("llama-tiny", "q4_1", "armv8.6-i8mm", "w4a8");
}
Test(aarch64, i8mm_f32_qwen2)
{
    check_compiled("qwen2-tiny", "f32", "armv8.6-i8mm", "f32");
}

/* An artifact whose kernels the CPU cannot execute is refused before
 * anything runs: one line naming the artifact and the missing feature,
 * exit 1, no logits file. The same dotprod artifact runs on a Cortex-A76
 * (no i8mm) with logits bit-identical to -cpu max's, so the refusal is
 * the feature check and not the CPU model. */
static void expect_refused(const char *cpu, const char *art, const char *feature)
{
    const char *out = mica_test_path(tmpdir, "refused.f32");
    mica_test_result_t r =
        run_a64(cpu, A64_MICA, "run", art, "--tokens", "1,2,3", "--dump-logits", out, NULL);
    cr_expect_eq(r.status, 1, "-cpu %s ran %s (exit %d): %s", cpu, art, r.status, r.err);
    mica_test_expect_one_line(&r, art);
    mica_test_expect_one_line(&r, feature);
    cr_expect(access(out, F_OK) != 0, "-cpu %s: %s wrote logits", cpu, art);
    mica_test_result_free(&r);
}

Test(aarch64, refuses_an_artifact_the_cpu_cannot_run)
{
    char *i8mm = strdup(compile_for("llama-tiny.q4_0.gguf", "armv8.6-i8mm", "w4a8", "i8mm"));
    char *dp = strdup(compile_for("llama-tiny.q4_0.gguf", "armv8.2-dotprod", "w4a8", "dp"));
    expect_refused("cortex-a76", i8mm, "i8mm");
    expect_refused("cortex-a53", dp, "dotprod");

    /* and the x86 host refuses an aarch64 artifact */
    const char *out = mica_test_path(tmpdir, "host.f32");
    mica_test_result_t r =
        mica_test_mica(tmpdir, "run", dp, "--tokens", "1,2,3", "--dump-logits", out, NULL);
    cr_expect_eq(r.status, 1, "the x86 host ran %s (exit %d): %s", dp, r.status, r.err);
    mica_test_expect_one_line(&r, dp);
    mica_test_expect_one_line(&r, "aarch64");
    cr_expect(access(out, F_OK) != 0, "the x86 host wrote logits from %s", dp);
    mica_test_result_free(&r);

    size_t n_max = 0, n_a76 = 0;
    float *on_max = a64_logits("max", dp, "1,2,3", "1", &n_max);
    float *on_a76 = a64_logits("cortex-a76", dp, "1,2,3", "1", &n_a76);
    cr_expect(n_max == n_a76 && n_max > 0 && !memcmp(on_max, on_a76, n_max * sizeof *on_max),
              "the dotprod artifact gives other logits on cortex-a76 than on max");
    free(on_max);
    free(on_a76);
    free(i8mm);
    free(dp);
}
