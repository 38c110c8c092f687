/* The `mica` command as a user meets it: the contracts of DESIGN.md (exit
 * status, one line on stderr naming the file, --dump-logits format,
 * deterministic greedy output) checked by running the built binary. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_run.h"
#include "test_support.h"

static char tmpdir[] = "/tmp/mica-cli-XXXXXX";

static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
}

static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}

#define tmp(name) mica_test_path(tmpdir, name)
typedef mica_test_result_t result_t;
#define run(...) mica_test_mica(tmpdir, __VA_ARGS__)
#define result_free mica_test_result_free
#define expect_one_line mica_test_expect_one_line

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

Test(cli, usage_errors_exit_2)
{
    result_t r = run("run", NULL);
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = run("no-such-command", NULL);
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = run("run", mica_test_golden("llama-tiny.f32.gguf"), "-p", "x", "-n", "many", NULL);
    cr_expect_eq(r.status, 2);
    result_free(&r);
    r = run("dump", mica_test_golden("llama-tiny.f32.gguf"), "--after", "no-such-pass", NULL);
    cr_expect_eq(r.status, 2);
    cr_expect(strstr(r.err, "no-such-pass"));
    result_free(&r);
}

Test(cli, bad_model_files_exit_1_with_one_line)
{
    result_t r = run("run", tmp("missing.gguf"), "-p", "hi", NULL);
    cr_expect_eq(r.status, 1);
    expect_one_line(&r, "missing.gguf");
    result_free(&r);

    write_file(tmp("magic.gguf"), "GGUX\3\0\0\0\0\0\0\0\0\0\0\0", 16);
    r = run("run", tmp("magic.gguf"), "-p", "hi", NULL);
    cr_expect_eq(r.status, 1);
    expect_one_line(&r, "magic.gguf");
    result_free(&r);

    size_t len;
    char *whole = mica_test_read_file(mica_test_golden("llama-tiny.q4_0.gguf"), &len);
    cr_assert(whole);
    const size_t cuts[] = {3, 24, 1000, 200000, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_file(tmp("cut.gguf"), whole, cuts[i]);
        r = run("run", tmp("cut.gguf"), "--tokens", "1,2", "--dump-logits", tmp("cut.f32"), NULL);
        cr_expect_eq(r.status, 1, "cut at %zu: exit %d", cuts[i], r.status);
        expect_one_line(&r, "cut.gguf");
        cr_expect_neq(access(tmp("cut.f32"), F_OK), 0, "a logits file was left behind");
        result_free(&r);
    }
    free(whole);
}

Test(cli, dump_logits_contract)
{
    char *model = strdup(mica_test_golden("llama-tiny.f32.gguf"));
    char *ids = mica_test_read_file(mica_test_golden("llama-tiny.ids"), NULL);
    cr_assert(ids);
    ids[strcspn(ids, "\n")] = 0;
    result_t r = run("run", model, "--tokens", ids, "--dump-logits", tmp("l.f32"), NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    size_t len, exact_len;
    float *got = (float *)mica_test_read_file(tmp("l.f32"), &len);
    float *exact = (float *)mica_test_read_file(mica_test_golden("llama-tiny.f32.exact.f32"), &exact_len);
    cr_assert(got && exact);
    cr_assert_eq(len, exact_len);
    cr_assert_eq(len, (size_t)16 * 32000 * sizeof(float));
    double m = 0;
    for (size_t i = 0; i < len / sizeof(float); i++)
        m = fmax(m, fabs((double)got[i] - exact[i]));
    cr_expect(m <= 1e-3, "max |diff| %g", m);
    free(got);
    free(exact);
    free(ids);

    r = run("run", model, "--tokens", "1,2", "--dump-logits", "/nonexistent-dir/x.f32", NULL);
    cr_expect_eq(r.status, 1);
    expect_one_line(&r, "/nonexistent-dir/x.f32");
    result_free(&r);
    r = run("run", model, "--tokens", "1,32000", "--dump-logits", tmp("x.f32"), NULL);
    cr_expect_eq(r.status, 1);
    expect_one_line(&r, "32000");
    result_free(&r);
    free(model);
}

Test(cli, greedy_is_deterministic_for_any_thread_count)
{
    const char *model = mica_test_golden("qwen2-tiny.q8_0.gguf");
    result_t a = run("run", model, "-p", "Hello world", "-n", "12", "--temp", "0", NULL);
    result_t b = run("run", model, "-p", "Hello world", "-n", "12", "--temp", "0", "-t", "2", NULL);
    cr_assert_eq(a.status, 0, "%s", a.err);
    cr_assert_eq(b.status, 0, "%s", b.err);
    cr_expect(strlen(a.out) > 1);
    cr_expect_str_eq(a.out, b.out);
    cr_expect(strstr(a.err, "tok/s"), "no timings on stderr: %s", a.err);
    result_free(&a);
    result_free(&b);
}

Test(cli, tokenize_prints_golden_ids)
{
    /* first string of golden/tokenizer/gpt-2.inp and its ids */
    result_t r = run("tokenize", mica_test_golden("qwen2-tiny.f32.gguf"), "-p", "ied 4 \xc2\xbd months", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect_str_eq(r.out, "798 604 25208 1933\n");
    result_free(&r);
}

Test(cli, dump_ir_errors_name_line_and_column)
{
    const char *bad = "# mica ir 1\n%0 = input() {name=\"x\"} : f32[4]\n%1 = silu(%7) : f32[4]\n";
    write_file(tmp("bad.ir"), bad, strlen(bad));
    result_t r = run("dump", tmp("bad.ir"), NULL);
    cr_expect_eq(r.status, 1);
    char want[600];
    snprintf(want, sizeof want, "%s:3:", tmp("bad.ir"));
    expect_one_line(&r, want);
    cr_expect(strncmp(r.err, want, strlen(want)) == 0, "stderr \"%s\" does not start with %s", r.err, want);
    result_free(&r);
}

Test(cli, dump_gguf_after_geometry_has_only_rasters)
{
    result_t r = run("dump", mica_test_golden("llama-tiny.q4_1.gguf"), "--after", "geometry", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.out, " = raster("));
    const char *movement[] = {" = reshape(", " = transpose(", " = slice(", " = concat(",
                              " = broadcast(", " = gather("};
    for (int i = 0; i < 6; i++)
        cr_expect(!strstr(r.out, movement[i]), "found%s after geometry", movement[i]);
    result_free(&r);
    r = run("dump", mica_test_golden("llama-tiny.q4_1.gguf"), "--format", "dot", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strncmp(r.out, "digraph", 7) == 0);
    result_free(&r);
}

/* A copy of llama-tiny whose general.architecture value is patched. */
static void write_with_arch(const char *path, const char *arch5)
{
    size_t len;
    char *bytes = mica_test_read_file(mica_test_golden("llama-tiny.f32.gguf"), &len);
    cr_assert(bytes);
    const char key[] = "general.architecture";
    char *at = memmem(bytes, len, key, sizeof key - 1);
    cr_assert(at);
    /* key, then u32 type (8 = string), u64 length 5, then "llama" */
    char *value = at + sizeof key - 1 + 4 + 8;
    cr_assert(memcmp(value, "llama", 5) == 0);
    memcpy(value, arch5, 5);
    write_file(path, bytes, len);
    free(bytes);
}

Test(cli, unsupported_architecture_is_named)
{
    write_with_arch(tmp("mamba.gguf"), "mamba");
    result_t r = run("run", tmp("mamba.gguf"), "-p", "hi", NULL);
    cr_expect_eq(r.status, 1);
    expect_one_line(&r, "unsupported architecture 'mamba'");
    result_free(&r);
}
