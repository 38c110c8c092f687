/* mica compile and the artifact it writes, through the built binary and
 * the artifact reader: the artifact's program run on the ref backend
 * reproduces the per-step oracle; every bad request is refused with one
 * line and leaves no artifact and no temporary directory behind; a
 * corrupted or foreign artifact is refused by name. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "artifact.h"
#include "ref_model.h"
#include "ref_program.h"
#include "test_run.h"
#include "test_support.h"

static char tmpdir[] = "/tmp/mica-compile-XXXXXX";

static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
}

static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}

#define path_in(name) mica_test_path(tmpdir, name)
#define entries() mica_test_dir_entries(tmpdir)

TestSuite(compile, .init = setup, .fini = teardown, .timeout = 120);

/* 16 golden ids through the artifact's program: the same logits as the
 * per-step path on the same file, prefill and decode. */
static void check_artifact_logits(const char *model, const char *quant)
{
    const char *out = path_in("art");
    mica_test_result_t r = mica_test_mica(tmpdir, "compile", mica_test_golden(model), "-t", "host",
                                          "-q", quant, "-c", "48", "--chunk", "6", "-o", out,
                                          NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_expect(strstr(r.err, "peak RAM"), "no memory report: %s", r.err);
    mica_test_result_free(&r);

    mica_artifact_t *a = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_artifact_open(out, &a, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(a->program->n_ctx, 48);
    cr_assert_eq(a->program->chunk, 6);
    cr_assert_str_eq(a->quant, quant);
    mica_ref_program_t *rp = NULL;
    cr_assert_eq(mica_ref_program_create(a->program, &rp, &d), MICA_OK, "%s", d.msg);
    mica_ref_model_t *m = NULL;
    cr_assert_eq(mica_ref_model_open(mica_test_golden(model), NULL, &m, &d), MICA_OK, "%s", d.msg);
    const size_t V = (size_t)a->program->cfg.n_vocab;
    int32_t ids[16] = {1, 450, 4996, 17354, 1701, 432, 17204, 975, 278, 17366, 11203, 29889, 13, 1, 7, 2};
    for (int i = 0; i < 16; i++)
        ids[i] %= (int32_t)V;
    float *x = malloc(16 * V * sizeof *x), *y = malloc(16 * V * sizeof *y);
    cr_assert_eq(mica_ref_program_eval(rp, ids, 13, true, x, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_ref_model_eval(m, ids, 13, true, y, &d), MICA_OK, "%s", d.msg);
    for (int t = 13; t < 16; t++) {
        cr_assert_eq(mica_ref_program_eval(rp, &ids[t], 1, false, x + t * V, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_ref_model_eval(m, &ids[t], 1, false, y + t * V, &d), MICA_OK, "%s", d.msg);
    }
    double worst = 0;
    for (size_t i = 0; i < 16 * V; i++) {
        double e = x[i] > y[i] ? x[i] - y[i] : y[i] - x[i];
        worst = e > worst || e != e ? e : worst;
    }
    cr_expect(worst <= 1e-5, "%s %s: the artifact differs from the per-step path by %g", model,
              quant, worst);
    free(x);
    free(y);
    mica_ref_model_close(m);
    mica_ref_program_release(rp);
    mica_artifact_close(a);
}

Test(compile, f32_artifact_matches_the_oracle_llama) { check_artifact_logits("llama-tiny.f32.gguf", "f32"); }
Test(compile, f32_artifact_matches_the_oracle_qwen2) { check_artifact_logits("qwen2-tiny.q8_0.gguf", "f32"); }

/* The contract commands on an artifact: greedy text and token ids as on
 * the GGUF it came from. */
Test(compile, run_and_tokenize_an_artifact)
{
    const char *model = mica_test_golden("qwen2-tiny.f32.gguf"), *out = path_in("q");
    mica_test_result_t r = mica_test_mica(tmpdir, "compile", model, "-t", "host", "-q", "f32", "-c",
                                          "64", "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    mica_test_result_free(&r);
    const char *what[][7] = {{"run", NULL, "-p", "Hello there", "-n", "8", "--temp"},
                             {"tokenize", NULL, "-p", "Hello there, world", NULL, NULL, NULL}};
    for (int k = 0; k < 2; k++) {
        const char *args[2][10];
        for (int v = 0; v < 2; v++) {
            int n = 0;
            for (int j = 0; j < 7 && (j == 1 || what[k][j]); j++)
                args[v][n++] = j == 1 ? (v ? out : model) : what[k][j];
            if (k == 0)
                args[v][n++] = "0";
            args[v][n] = NULL;
        }
        mica_test_result_t a = mica_test_mica_argv(tmpdir, args[0]);
        mica_test_result_t b = mica_test_mica_argv(tmpdir, args[1]);
        cr_assert_eq(a.status, 0, "%s", a.err);
        cr_assert_eq(b.status, 0, "%s", b.err);
        cr_expect_str_eq(b.out, a.out, "%s differs on the artifact", what[k][0]);
        cr_expect(strlen(a.out) > 0);
        mica_test_result_free(&a);
        mica_test_result_free(&b);
    }
}

/* Each bad request: its exit status, one line naming the problem, and
 * nothing left in the output's directory. */
Test(compile, bad_requests_leave_nothing)
{
    const char *model = mica_test_golden("llama-tiny.q4_0.gguf"), *out = path_in("bad");
    static const struct {
        const char *args[12];
        int status;
        const char *needle;
    } cases[] = {
        {{"compile", NULL, "-t", "no-such-soc", "-o", NULL}, 2, "no-such-soc"},
        {{"compile", NULL, "-t", "host", "-q", "w3a3", "-o", NULL}, 2, "w3a3"},
        {{"compile", NULL, "-t", "host", "--group", "48", "-o", NULL}, 2, "--group"},
        {{"compile", NULL, "-t", "host", NULL}, 2, "-o DIR"},
        {{"compile", NULL, "-o", NULL}, 2, "no target"},
        {{"compile", NULL, "-t", "host", "--group", "128", "-o", NULL}, 1, "does not divide"},
        {{"compile", NULL, "-t", "rpi5", "-c", "16000000", "-o", NULL}, 1, "budget"},
        {{"compile", NULL, "-t", "opencl", "-q", "w4a8", "-o", NULL}, 1, "GPU"},
        {{"compile", NULL, "-t", "rpi5", "--isa", "dotprod,i8mm", "-o", NULL}, 2, "cannot honour i8mm"},
        {{"compile", NULL, "-t", "rpi5", "--isa", "sve9", "-o", NULL}, 2, "sve9"},
        {{"compile", "/nonexistent/model.gguf", "-t", "host", "-o", NULL}, 1, "model.gguf"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[12];
        int n = 0;
        for (int j = 0; j < 11; j++) {
            const char *a = cases[i].args[j];
            if (j == 1)
                a = a ? a : model;
            else if (!a && j > 0 && cases[i].args[j - 1] && !strcmp(cases[i].args[j - 1], "-o"))
                a = out;
            if (!a)
                break;
            args[n++] = a;
        }
        args[n] = NULL;
        mica_test_result_t r = mica_test_mica_argv(tmpdir, args);
        cr_expect_eq(r.status, cases[i].status, "case %zu: status %d (%s)", i, r.status, r.err);
        mica_test_expect_one_line(&r, cases[i].needle);
        cr_expect_eq(entries(), 0, "case %zu left something behind", i);
        mica_test_result_free(&r);
    }
    /* an output directory that cannot be created */
    mica_test_result_t r = mica_test_mica(tmpdir, "compile", model, "-t", "host", "-o",
                                          "/proc/no/such/dir", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "/proc/no/such/dir");
    mica_test_result_free(&r);
}

/* An existing directory is kept without --force, replaced with it. */
Test(compile, existing_output_needs_force)
{
    const char *model = mica_test_golden("llama-tiny.q8_0.gguf"), *out = path_in("a");
    cr_assert_eq(mkdir(out, 0755), 0);
    FILE *f = fopen(path_in("a/keep"), "w");
    cr_assert(f);
    fclose(f);
    mica_test_result_t r = mica_test_mica(tmpdir, "compile", model, "-t", "host", "-q", "f32", "-c",
                                          "32", "-o", out, NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "--force");
    mica_test_result_free(&r);
    struct stat st;
    cr_expect_eq(stat(path_in("a/keep"), &st), 0, "the old directory was touched");
    r = mica_test_mica(tmpdir, "compile", model, "-t", "host", "-q", "f32", "-c", "32", "--force",
                       "-o", out, NULL);
    cr_expect_eq(r.status, 0, "%s", r.err);
    mica_test_result_free(&r);
    cr_expect_neq(stat(path_in("a/keep"), &st), 0, "the old directory was not replaced");
    cr_expect(mica_artifact_is_dir(out));
    cr_expect_eq(entries(), 1, "a temporary or old directory is left");
}

/* Flip one byte of each file: the reader names the file. A newer format
 * version is refused by number. */
Test(compile, corrupt_artifacts_are_refused)
{
    const char *model = mica_test_golden("qwen2-tiny.q4_1.gguf"), *out = path_in("c");
    mica_test_result_t r = mica_test_mica(tmpdir, "compile", model, "-t", "host", "-q", "f32", "-c",
                                          "32", "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    mica_test_result_free(&r);
    const char *files[] = {"weights.bin", "prefill.ir", "decode.ir", "tokenizer.gguf"};
    for (size_t i = 0; i < 4; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", out, files[i]);
        FILE *f = fopen(p, "r+b");
        cr_assert(f);
        fseek(f, 100, SEEK_SET);
        int c = fgetc(f);
        fseek(f, 100, SEEK_SET);
        fputc(c ^ 0x20, f);
        fclose(f);
        mica_artifact_t *a = NULL;
        mica_diag_t d = {0};
        cr_expect_eq(mica_artifact_open(out, &a, &d), MICA_ERR_INVALID);
        cr_expect(strstr(d.msg, files[i]) && strstr(d.msg, "checksum"), "%s", d.msg);
        r = mica_test_mica(tmpdir, "run", out, "-p", "hi", "-n", "1", NULL);
        cr_expect_eq(r.status, 1);
        mica_test_expect_one_line(&r, files[i]);
        mica_test_result_free(&r);
        f = fopen(p, "r+b");
        fseek(f, 100, SEEK_SET);
        fputc(c, f);
        fclose(f);
    }
    char man[600];
    snprintf(man, sizeof man, "%s/manifest", out);
    size_t len;
    char *text = mica_test_read_file(man, &len);
    cr_assert(text && !strncmp(text, "mica-artifact 1\n", 16));
    text[14] = '9';
    FILE *f = fopen(man, "wb");
    fwrite(text, 1, len, f);
    fclose(f);
    free(text);
    mica_artifact_t *a = NULL;
    mica_diag_t d = {0};
    cr_expect_eq(mica_artifact_open(out, &a, &d), MICA_ERR_UNSUPPORTED);
    cr_expect(strstr(d.msg, "version 9"), "%s", d.msg);
}

/* SIGINT in the middle of a compile: exit 1, no artifact, no temporary
 * directory. SmolLM2 in f32 takes over a second to compile, so a signal
 * after 0.3 s lands inside it. */
Test(compile, sigint_leaves_nothing)
{
    const char *model = getenv("MICA_DEFAULT_MODEL");
    cr_assert(model && *model, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh");
    const char *out = path_in("int");
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execl(MICA_BINARY_DIR "/tools/mica", "mica", "compile", model, "-t", "host", "-q", "f32",
              "-c", "256", "-o", out, (char *)NULL);
        _exit(127);
    }
    usleep(300 * 1000);
    kill(pid, SIGINT);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "the compile finished before the signal");
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 1, "not a clean failure (status %d)", st);
    cr_expect_eq(entries(), 0, "an artifact or temporary directory is left");
}

/* mica dump DIR prints the compiled, scheduled graphs; the text parses
 * back to the same graph. */
Test(compile, dump_an_artifact)
{
    const char *out = path_in("d");
    mica_test_result_t r = mica_test_mica(tmpdir, "compile", mica_test_golden("llama-tiny.q4_0.gguf"),
                                          "-t", "sd8gen3", "-c", "64", "-o", out, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    mica_test_result_free(&r);
    const char *graphs[2] = {"decode", "prefill"};
    for (int k = 0; k < 2; k++) {
        r = mica_test_mica(tmpdir, "dump", out, "--graph", graphs[k], NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
        cr_expect(strstr(r.out, "= kv_store(") && strstr(r.out, "= qmatmul("), "%.300s", r.out);
        cr_expect(strstr(r.out, "split=") && strstr(r.out, "mem="), "not scheduled: %.300s", r.out);
        cr_expect(strstr(r.out, "# schedule: total") && strstr(r.out, "sd8gen3"), "no summary");
        mica_graph_t *g = NULL;
        mica_diag_t d = {0};
        cr_expect_eq(mica_graph_parse(r.out, strlen(r.out), &g, &d), MICA_OK, "%s", d.msg);
        char *again = g ? mica_graph_print(g) : NULL;
        cr_expect(again && !strncmp(again, r.out, strlen(again)), "the dump does not print back");
        free(again);
        mica_graph_release(g);
        mica_test_result_free(&r);
    }
    r = mica_test_mica(tmpdir, "dump", out, "--graph", "step", NULL);
    cr_expect_eq(r.status, 2);
    mica_test_result_free(&r);
}
