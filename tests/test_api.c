/* The public C API (runtime/mica.h) over the fixture model object (logits
 * a known function of the tokens, tests/data/runtime/fixture_model.c):
 * greedy generation against that function, every row of an eval, the
 * pending last token, stops, resets, a full context, min-p, profiles and
 * two sessions in two threads; and the example program, built in the tree
 * and against an installed tree (find_package(mica) and pkg-config). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mica.h"
#include "test_artifact.h"
#include "test_run.h"
#include "test_support.h"

#define V MICA_TEST_FX_VOCAB

static char fx_dir[] = "/tmp/mica-api-XXXXXX";

static void make_fixture(void)
{
    mica_test_tmpdir_make(fx_dir);
    mica_test_fixture_artifact(fx_dir, NULL);
}

static void remove_fixture(void)
{
    mica_test_tmpdir_remove(fx_dir);
}

static mica_model_t *open_fixture(void)
{
    mica_model_t *m = NULL;
    mica_error_t err;
    cr_assert_eq(mica_model_open(fx_dir, &m, &err), MICA_STATUS_OK, "%s", err.message);
    return m;
}

static mica_session_t *greedy_session(const mica_model_t *m, int32_t threads)
{
    mica_session_params_t p = mica_session_params_default();
    p.temperature = 0.0f;
    p.n_threads = threads;
    mica_session_t *s = NULL;
    mica_error_t err;
    cr_assert_eq(mica_session_create(m, &p, &s, &err), MICA_STATUS_OK, "%s", err.message);
    return s;
}

/* What a generate call hands to its callback. */
typedef struct got {
    int32_t tokens[256];
    int n;
    int stop_after; /* 0: never */
    size_t bytes;
} got_t;

static int collect(const char *piece, size_t len, int32_t token, void *user)
{
    got_t *g = user;
    (void)piece;
    g->bytes += len;
    if (token < 0)
        return 0;
    cr_assert_lt(g->n, 256);
    g->tokens[g->n++] = token;
    return g->stop_after && g->n >= g->stop_after;
}

/* The oracle's greedy continuation of prompt[0..n) by k tokens into out. */
static void oracle_continue(const int32_t *prompt, int n, int k, int32_t *out)
{
    int32_t seq[MICA_TEST_FX_CONTEXT];
    memcpy(seq, prompt, (size_t)n * sizeof *seq);
    for (int i = 0; i < k; i++) {
        seq[n + i] = mica_test_fx_next(seq, n + i, V);
        out[i] = seq[n + i];
    }
}

TestSuite(api, .init = make_fixture, .fini = remove_fixture);

Test(api, model_facts_and_a_refusal_naming_the_path)
{
    mica_model_t *m = open_fixture();
    cr_expect_eq(mica_model_n_vocab(m), V);
    cr_expect_eq(mica_model_context(m), MICA_TEST_FX_CONTEXT);
    cr_expect_str_eq(mica_model_target(m), "fixture");
    mica_model_release(m);
    mica_model_release(NULL);

    mica_model_t *none = (mica_model_t *)&none;
    mica_error_t err;
    int s = mica_model_open("/nonexistent/artifact", &none, &err);
    cr_expect_eq(s, MICA_STATUS_IO);
    cr_expect_eq(err.status, s);
    cr_expect_null(none);
    cr_expect(strstr(err.message, "/nonexistent/artifact: manifest") == err.message, "%s",
              err.message);
    cr_expect(strstr(err.message, "No such file") != NULL, "%s", err.message);
}

/* Greedy text after a prompt is the oracle's continuation, on 1 to 3
 * threads; the cache holds the prompt and every token but the last, which
 * runs with whatever comes next. */
Test(api, greedy_generation_follows_the_model)
{
    mica_model_t *m = open_fixture();
    const int32_t prompt[] = {1, 450, 4996, 17354, 1701};
    int32_t want[20];
    oracle_continue(prompt, 5, 20, want);
    for (int32_t threads = 1; threads <= 3; threads++) {
        mica_session_t *s = greedy_session(m, threads);
        mica_error_t err;
        cr_assert_eq(mica_session_append_tokens(s, prompt, 5, &err), 0, "%s", err.message);
        cr_expect_eq(mica_session_n_past(s), 5);
        got_t g = {0};
        int32_t n_gen = -1;
        cr_assert_eq(mica_session_generate(s, 12, collect, &g, &n_gen, &err), 0, "%s", err.message);
        cr_expect_eq(n_gen, 12);
        cr_expect_eq(g.n, 12);
        cr_expect_eq(mica_session_n_past(s), 5 + 11, "the last token is pending");
        /* generating on continues where it stopped */
        cr_assert_eq(mica_session_generate(s, 8, collect, &g, NULL, &err), 0, "%s", err.message);
        cr_expect_eq(memcmp(g.tokens, want, 20 * sizeof *want), 0, "threads %d", threads);
        mica_session_release(s);
    }
    mica_model_release(m);
}

/* The callback's stop keeps the stopping token; append runs it first. */
Test(api, stop_and_append_keep_everything_passed_on)
{
    mica_model_t *m = open_fixture();
    mica_session_t *s = greedy_session(m, 2);
    mica_error_t err;
    const int32_t prompt[] = {1, 2, 3};
    cr_assert_eq(mica_session_append_tokens(s, prompt, 3, &err), 0, "%s", err.message);
    got_t g = {.stop_after = 4};
    int32_t n_gen = 0;
    cr_assert_eq(mica_session_generate(s, 50, collect, &g, &n_gen, &err), 0, "%s", err.message);
    cr_expect_eq(n_gen, 4);
    const int32_t more[] = {7, 8};
    cr_assert_eq(mica_session_append_tokens(s, more, 2, &err), 0, "%s", err.message);
    cr_expect_eq(mica_session_n_past(s), 3 + 4 + 2);
    got_t g2 = {0};
    cr_assert_eq(mica_session_generate(s, 1, collect, &g2, NULL, &err), 0, "%s", err.message);
    int32_t seq[9] = {1, 2, 3, g.tokens[0], g.tokens[1], g.tokens[2], g.tokens[3], 7, 8};
    int32_t want[4];
    oracle_continue(prompt, 3, 4, want);
    cr_expect_eq(memcmp(g.tokens, want, sizeof want), 0);
    cr_expect_eq(g2.tokens[0], mica_test_fx_next(seq, 9, V));
    mica_session_release(s);
    mica_model_release(m);
}

/* eval writes every row, each the model's function of the tokens so far,
 * and generation continues from its last row. */
Test(api, eval_writes_every_row)
{
    mica_model_t *m = open_fixture();
    mica_session_t *s = greedy_session(m, 2);
    mica_error_t err;
    const int32_t t[12] = {5, 9, 31999, 0, 77, 1234, 4, 4, 4, 8, 100, 2};
    float *rows = malloc(12 * (size_t)V * sizeof *rows);
    cr_assert_not_null(rows);
    cr_assert_eq(mica_session_eval(s, t, 12, rows, &err), 0, "%s", err.message);
    for (int p = 0; p < 12; p++)
        for (int v = 0; v < V; v += 97)
            cr_assert_eq(rows[(size_t)p * V + v], mica_test_fx_logit(t, p, v, V, MICA_TEST_FX_HIT),
                         "row %d v %d", p, v);
    const float *last = mica_session_logits(s);
    cr_assert_not_null(last);
    cr_expect_eq(memcmp(last, rows + 11 * (size_t)V, (size_t)V * sizeof *rows), 0);
    got_t g = {0};
    cr_assert_eq(mica_session_generate(s, 1, collect, &g, NULL, &err), 0, "%s", err.message);
    cr_expect_eq(g.tokens[0], mica_test_fx_next(t, 12, V));
    free(rows);
    mica_session_release(s);
    mica_model_release(m);
}

/* Bad tokens and a full context are refused and change nothing; reset
 * empties the cache and reseeds the sampler. */
Test(api, refusals_reset_and_a_full_context)
{
    mica_model_t *m = open_fixture();
    mica_session_t *s = greedy_session(m, 1);
    mica_error_t err;
    got_t g = {0};
    cr_expect_eq(mica_session_generate(s, 4, collect, &g, NULL, &err), MICA_STATUS_INVALID,
                 "generate before any prompt");
    const int32_t bad[] = {3, V};
    cr_expect_eq(mica_session_append_tokens(s, bad, 2, &err), MICA_STATUS_INVALID);
    cr_expect(strstr(err.message, "outside the vocabulary") != NULL, "%s", err.message);
    cr_expect_eq(mica_session_n_past(s), 0);
    int32_t fill[MICA_TEST_FX_CONTEXT + 1] = {0};
    cr_expect_eq(mica_session_append_tokens(s, fill, MICA_TEST_FX_CONTEXT + 1, &err),
                 MICA_STATUS_RANGE);
    cr_expect(strstr(err.message, "context") != NULL, "%s", err.message);
    cr_assert_eq(mica_session_append_tokens(s, fill, MICA_TEST_FX_CONTEXT - 3, &err), 0, "%s",
                 err.message);
    /* three more fit: the generate that passes on a fourth runs out */
    int32_t n_gen = 0;
    int st = mica_session_generate(s, 10, collect, &g, &n_gen, &err);
    cr_expect_eq(st, MICA_STATUS_RANGE, "%s", err.message);
    cr_expect_eq(n_gen, 4);
    cr_expect_eq(mica_session_n_past(s), MICA_TEST_FX_CONTEXT);
    mica_session_reset(s);
    cr_expect_eq(mica_session_n_past(s), 0);
    cr_expect_null(mica_session_logits(s));
    const int32_t prompt[] = {9, 9};
    got_t g2 = {0};
    cr_assert_eq(mica_session_append_tokens(s, prompt, 2, &err), 0, "%s", err.message);
    cr_assert_eq(mica_session_generate(s, 3, collect, &g2, NULL, &err), 0, "%s", err.message);
    int32_t want[3];
    oracle_continue(prompt, 2, 3, want);
    cr_expect_eq(memcmp(g2.tokens, want, sizeof want), 0, "after reset");
    mica_session_release(s);
    mica_model_release(m);
}

/* With min_p = 1 only the likeliest token survives, whatever the
 * temperature: sampling is then the greedy choice. */
Test(api, min_p_one_samples_the_likeliest)
{
    mica_model_t *m = open_fixture();
    mica_session_params_t p = mica_session_params_default();
    p.temperature = 1.5f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 1.0f;
    mica_session_t *s = NULL;
    mica_error_t err;
    cr_assert_eq(mica_session_create(m, &p, &s, &err), 0, "%s", err.message);
    const int32_t prompt[] = {42};
    cr_assert_eq(mica_session_append_tokens(s, prompt, 1, &err), 0, "%s", err.message);
    got_t g = {0};
    cr_assert_eq(mica_session_generate(s, 16, collect, &g, NULL, &err), 0, "%s", err.message);
    int32_t want[16];
    oracle_continue(prompt, 1, 16, want);
    cr_expect_eq(memcmp(g.tokens, want, sizeof want), 0);
    mica_session_release(s);
    p.min_p = 1.5f;
    cr_expect_eq(mica_session_create(m, &p, &s, &err), MICA_STATUS_INVALID);
    cr_expect_null(s);
    p.min_p = 0.0f;
    p.n_threads = -1;
    cr_expect_eq(mica_session_create(m, &p, &s, &err), MICA_STATUS_INVALID);
    mica_model_release(m);
}

/* Text in, text out: the tokenizer is the artifact's, the pieces are the
 * tokens' text. */
Test(api, text_appends_through_the_tokenizer)
{
    mica_model_t *m = open_fixture();
    mica_error_t err;
    int32_t ids[64];
    size_t n = 0;
    cr_assert_eq(
        mica_model_tokenize(m, "Hello world", 11, MICA_TOKENIZE_ADD_SPECIAL, ids, 64, &n, &err), 0,
        "%s", err.message);
    cr_assert_gt(n, 1);
    cr_expect_eq(ids[0], 1, "BOS of the llama vocabulary");
    char text[64];
    size_t len = 0;
    cr_assert_eq(mica_model_detokenize(m, ids + 1, n - 1, text, sizeof text, &len, &err), 0, "%s",
                 err.message);
    cr_expect_eq(len, 12);
    cr_expect_eq(memcmp(text, " Hello world", 12), 0, "%.*s", (int)len, text);
    size_t small = 0;
    int32_t one[1];
    cr_expect_eq(mica_model_tokenize(m, "Hello world", 11, 0, one, 1, &small, &err),
                 MICA_STATUS_RANGE);
    cr_expect_eq(small, n - 1);

    mica_session_t *s = greedy_session(m, 1);
    cr_assert_eq(mica_session_append_text(s, "Hello world", 11, MICA_TOKENIZE_ADD_SPECIAL, &err), 0,
                 "%s", err.message);
    cr_expect_eq(mica_session_n_past(s), (int32_t)n);
    got_t g = {0};
    cr_assert_eq(mica_session_generate(s, 5, collect, &g, NULL, &err), 0, "%s", err.message);
    int32_t want[5];
    oracle_continue(ids, (int)n, 5, want);
    cr_expect_eq(g.n, 5);
    cr_expect_eq(memcmp(g.tokens, want, sizeof want), 0);
    mica_session_release(s);
    mica_model_release(m);
}

Test(api, profile_counts_calls_and_time_per_op)
{
    mica_model_t *m = open_fixture();
    mica_session_t *s = greedy_session(m, 2);
    mica_error_t err;
    cr_assert_eq(mica_session_profile_enable(s, 1, &err), 0, "%s", err.message);
    const int32_t t[12] = {0};
    cr_assert_eq(mica_session_append_tokens(s, t, 12, &err), 0, "%s", err.message);
    got_t g = {0};
    cr_assert_eq(mica_session_generate(s, 4, collect, &g, NULL, &err), 0, "%s", err.message);
    uint32_t n_ops = 0;
    uint64_t calls = 0;
    cr_assert_eq(mica_session_profile_op(s, 0, 0, NULL, &n_ops, &calls, &err), 0);
    cr_expect_eq(n_ops, 2);
    cr_expect_eq(calls, 3, "12 prompt tokens in chunks of 5");
    cr_assert_eq(mica_session_profile_op(s, 1, 0, NULL, NULL, &calls, &err), 0);
    cr_expect_eq(calls, 3, "4 tokens generated, the last pending");
    mica_op_profile_t op;
    cr_assert_eq(mica_session_profile_op(s, 1, 1, &op, NULL, NULL, &err), 0);
    cr_expect_str_eq(op.label, "%2 logits");
    cr_expect_eq(op.n_parts, 7);
    cr_expect_gt(op.measured_ns, 0);
    cr_expect_eq(mica_session_profile_op(s, 1, 2, &op, NULL, NULL, &err), MICA_STATUS_RANGE);
    cr_expect_eq(mica_session_profile_op(s, 2, 0, &op, NULL, NULL, &err), MICA_STATUS_RANGE);
    mica_session_release(s);
    mica_model_release(m);
}

/* Two sessions of one model in two threads at once: each generates what
 * one session alone does (no state is shared but the read-only model). */
typedef struct job {
    const mica_model_t *model;
    int32_t prompt[3];
    got_t got;
    int status;
} job_t;

static void *run_job(void *arg)
{
    job_t *j = arg;
    mica_session_params_t p = mica_session_params_default();
    p.temperature = 0.0f;
    p.n_threads = 2;
    mica_session_t *s = NULL;
    mica_error_t err;
    j->status = mica_session_create(j->model, &p, &s, &err);
    for (int round = 0; round < 20 && j->status == 0; round++) {
        mica_session_reset(s);
        j->got.n = 0;
        j->status = mica_session_append_tokens(s, j->prompt, 3, &err);
        if (j->status == 0)
            j->status = mica_session_generate(s, 40, collect, &j->got, NULL, &err);
    }
    mica_session_release(s);
    return NULL;
}

Test(api, two_sessions_in_two_threads_match_one)
{
    mica_model_t *m = open_fixture();
    job_t jobs[2] = {{.model = m, .prompt = {1, 2, 3}, .status = -1},
                     {.model = m, .prompt = {4000, 17, 9}, .status = -1}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, run_job, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(jobs[i].status, 0, "session %d failed", i);
        cr_assert_eq(jobs[i].got.n, 40);
        /* alone, in this thread */
        job_t alone = {.model = m, .status = -1};
        memcpy(alone.prompt, jobs[i].prompt, sizeof alone.prompt);
        run_job(&alone);
        cr_assert_eq(alone.status, 0);
        cr_expect_eq(memcmp(alone.got.tokens, jobs[i].got.tokens, 40 * sizeof(int32_t)), 0,
                     "session %d differs from one alone", i);
        int32_t want[40];
        oracle_continue(jobs[i].prompt, 3, 40, want);
        cr_expect_eq(memcmp(want, jobs[i].got.tokens, sizeof want), 0);
    }
    mica_model_release(m);
}

/* ------------------------------------------------------------------------ */
/* the example, built here and against an installed tree                     */

#define SOURCE_DIR MICA_TEST_DATA_DIR "/../.."
#define EXAMPLE SOURCE_DIR "/tools/examples/mica_example.c"

/* Runs a shell command, its output into log; fails the test unless it
 * exits 0. */
static void sh(const char *log, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[8400];
    snprintf(full, sizeof full, "(%s) > '%s' 2>&1", cmd, log);
    int rc = system(full);
    char *out = mica_test_read_file(log, NULL);
    cr_assert_eq(rc, 0, "'%s' failed:\n%s", cmd, out ? out : "");
    free(out);
}

/* What the example prints for the prompt: the oracle's greedy tokens after
 * it, as text, and a newline. */
static char *expected_text(const char *artifact, const char *prompt, int n_gen)
{
    mica_model_t *m = NULL;
    mica_error_t err;
    cr_assert_eq(mica_model_open(artifact, &m, &err), 0, "%s", err.message);
    int32_t ids[64], gen[64];
    size_t n = 0;
    cr_assert_eq(mica_model_tokenize(m, prompt, strlen(prompt), MICA_TOKENIZE_ADD_SPECIAL, ids, 64,
                                     &n, &err),
                 0);
    oracle_continue(ids, (int)n, n_gen, gen);
    char *text = calloc(4096, 1);
    size_t len = 0;
    cr_assert_eq(mica_model_detokenize(m, gen, (size_t)n_gen, text, 4094, &len, &err), 0);
    text[len] = '\n';
    mica_model_release(m);
    return text;
}

static void expect_output(const char *dir, const char *program, const char *artifact,
                          const char *want)
{
    char log[600];
    snprintf(log, sizeof log, "%s/run.log", dir);
    char out[600];
    snprintf(out, sizeof out, "%s/run.out", dir);
    sh(log, "'%s' '%s' 'Hello world' -n 6 -t 2 > '%s'", program, artifact, out);
    char *got = mica_test_read_file(out, NULL);
    cr_assert_not_null(got);
    cr_expect_str_eq(got, want, "%s printed something else", program);
    free(got);
}

Test(install, the_example_builds_against_an_installed_tree_and_runs)
{
    char dir[] = "/tmp/mica-install-XXXXXX";
    mica_test_tmpdir_make(dir);
    char art[600], prefix[600], app[600], log[600];
    snprintf(art, sizeof art, "%s/artifact", dir);
    snprintf(prefix, sizeof prefix, "%s/prefix", dir);
    snprintf(app, sizeof app, "%s/app", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    cr_assert_eq(mkdir(art, 0755), 0);
    cr_assert_eq(mkdir(app, 0755), 0);
    mica_test_fixture_artifact(art, NULL);
    char *want = expected_text(art, "Hello world", 6);

    /* the example as the build made it */
    expect_output(dir, MICA_BINARY_DIR "/tools/mica_example", art, want);

    /* installed: libmica.a, mica.h and nothing else the app needs */
    sh(log, "cmake --install '%s' --prefix '%s'", MICA_BINARY_DIR, prefix);
    char hdr[700];
    snprintf(hdr, sizeof hdr, "%s/include/mica.h", prefix);
    cr_expect_eq(access(hdr, R_OK), 0);

    /* a CMake project with find_package(mica) */
    char path[700];
    snprintf(path, sizeof path, "%s/CMakeLists.txt", app);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f,
            "cmake_minimum_required(VERSION 3.20)\nproject(app C)\n"
            "find_package(mica 0.1 REQUIRED)\nadd_executable(app \"%s\")\n"
            "target_link_libraries(app PRIVATE mica::mica)\n",
            EXAMPLE);
    cr_assert_eq(fclose(f), 0);
    sh(log, "cmake -S '%s' -B '%s/build' -DCMAKE_PREFIX_PATH='%s' -DCMAKE_BUILD_TYPE=Release", app,
       app, prefix);
    sh(log, "cmake --build '%s/build'", app);
    snprintf(path, sizeof path, "%s/build/app", app);
    expect_output(dir, path, art, want);

    /* the same with pkg-config */
    snprintf(path, sizeof path, "%s/app-pc", dir);
    sh(log,
       "cc -std=c11 -O1 -o '%s' '%s' $(PKG_CONFIG_PATH='%s/lib/pkgconfig' pkg-config --cflags "
       "--libs mica)",
       path, EXAMPLE, prefix);
    expect_output(dir, path, art, want);

    /* a broken artifact: one line, exit 1 */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/nothing-here", dir);
    mica_test_result_t r = {0};
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s' hi > '%s/o' 2> '%s/e'", path, bad, dir, dir);
    int rc = system(cmd);
    cr_expect(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "exit %d", rc);
    snprintf(cmd, sizeof cmd, "%s/e", dir);
    r.err = mica_test_read_file(cmd, NULL);
    r.out = strdup("");
    mica_test_expect_one_line(&r, "nothing-here: manifest");
    mica_test_result_free(&r);
    free(want);
    mica_test_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------ */
/* real compiled artifacts (mica compile -t host)                            */

static char art_dir[] = "/tmp/mica-compiled-XXXXXX";

static void make_art_dir(void)
{
    mica_test_tmpdir_make(art_dir);
}

static void remove_art_dir(void)
{
    mica_test_tmpdir_remove(art_dir);
}

TestSuite(compiled, .init = make_art_dir, .fini = remove_art_dir, .timeout = 900);

/* Compiles model (a path) for the host into art_dir/name. */
static const char *compile_for_host(const char *model, const char *quant, const char *name)
{
    const char *out = mica_test_path(art_dir, name);
    mica_test_result_t r = mica_test_mica(art_dir, "compile", model, "-t", "host", "-q", quant,
                                          "-c", "256", "-o", out, NULL);
    cr_assert_eq(r.status, 0, "compile %s -q %s: %s", model, quant, r.err);
    mica_test_result_free(&r);
    return out;
}

/* stdout of `mica ARGS...` (exit 0 required), malloc'd. */
static char *mica_out(const char *first, ...)
{
    const char *args[32];
    va_list ap;
    va_start(ap, first);
    int n = 0;
    args[n++] = first;
    while (n < 31 && (args[n] = va_arg(ap, const char *)) != NULL)
        n++;
    args[n] = NULL;
    va_end(ap);
    mica_test_result_t r = mica_test_mica_argv(art_dir, args);
    cr_assert_eq(r.status, 0, "mica %s: %s", first, r.err);
    char *out = r.out;
    r.out = NULL;
    mica_test_result_free(&r);
    return out;
}

/* NMSE of a against b over n floats. */
static double nmse(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * (double)b[i];
    }
    return den > 0 ? num / den : num;
}

/* Logits of the golden ids through the artifact: the model object against
 * its own program on the ref backend (the kernels add nothing but float
 * rounding), and greedy text the same for 1 and 2 threads. */
static void check_compiled(const char *gguf, const char *quant)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%s", gguf, quant);
    const char *art = compile_for_host(mica_test_golden(gguf), quant, name);
    char ids_name[64];
    snprintf(ids_name, sizeof ids_name, "%.*s.ids", (int)strcspn(gguf, "."), gguf);
    char *ids = mica_test_read_file(mica_test_golden(ids_name), NULL);
    cr_assert_not_null(ids);
    ids[strcspn(ids, "\r\n")] = 0;
    const char *cpu = mica_test_path(art_dir, "cpu.f32"), *ref = mica_test_path(art_dir, "ref.f32");
    free(mica_out("run", art, "--tokens", ids, "--dump-logits", cpu, "-t", "2", NULL));
    free(mica_out("run", art, "--backend", "ref", "--tokens", ids, "--dump-logits", ref, NULL));
    size_t na = 0, nb = 0;
    float *a = (float *)mica_test_read_file(cpu, &na), *b = (float *)mica_test_read_file(ref, &nb);
    cr_assert(a && b && na == nb && na > 0, "%s: logits files of %zu and %zu bytes", name, na, nb);
    double e = nmse(a, b, na / sizeof(float));
    cr_expect(e <= 1e-6, "%s: NMSE %g of the model object against the ref program", name, e);
    free(a);
    free(b);
    free(ids);

    char *t1 =
        mica_out("run", art, "-p", "Once upon a time", "-n", "24", "--temp", "0", "-t", "1", NULL);
    char *t2 =
        mica_out("run", art, "-p", "Once upon a time", "-n", "24", "--temp", "0", "-t", "2", NULL);
    cr_expect_str_eq(t1, t2, "%s: greedy text differs between 1 and 2 threads", name);
    cr_expect_gt(strlen(t1), 1);
    if (!strcmp(quant, "f32")) {
        /* no activation quantization: the ref program's text, token for token */
        char *tr = mica_out("run", art, "--backend", "ref", "-p", "Once upon a time", "-n", "24",
                            "--temp", "0", NULL);
        cr_expect_str_eq(t1, tr, "%s: the model object's text differs from the ref program's",
                         name);
        free(tr);
    }
    free(t1);
    free(t2);
}

Test(compiled, llama_tiny_f32)
{
    check_compiled("llama-tiny.f32.gguf", "f32");
}
Test(compiled, llama_tiny_w8a8)
{
    check_compiled("llama-tiny.q8_0.gguf", "w8a8");
}
Test(compiled, llama_tiny_w4a8)
{
    check_compiled("llama-tiny.q4_0.gguf", "w4a8");
}
Test(compiled, qwen2_tiny_w4a8)
{
    check_compiled("qwen2-tiny.q4_1.gguf", "w4a8");
}

/* Greedy tokens of a session on art with threads, after the prompt text. */
typedef struct text_job {
    const mica_model_t *model;
    const char *prompt;
    int32_t threads;
    got_t got;
    int status;
    char message[512];
} text_job_t;

static void *run_text_job(void *arg)
{
    text_job_t *j = arg;
    mica_session_params_t p = mica_session_params_default();
    p.temperature = 0.0f;
    p.n_threads = j->threads;
    mica_session_t *s = NULL;
    mica_error_t err = {0};
    j->status = mica_session_create(j->model, &p, &s, &err);
    if (j->status == 0)
        j->status = mica_session_append_text(s, j->prompt, strlen(j->prompt),
                                             MICA_TOKENIZE_ADD_SPECIAL, &err);
    if (j->status == 0)
        j->status = mica_session_generate(s, 48, collect, &j->got, NULL, &err);
    snprintf(j->message, sizeof j->message, "%s", err.message);
    mica_session_release(s);
    return NULL;
}

/* SmolLM2 compiled for the host: two sessions in two threads give what
 * each gives alone, 1 and 2 threads agree, and the example answers the
 * chat prompt. */
Test(compiled, smollm2_two_sessions_in_two_threads_match_one)
{
    const char *gguf = getenv("MICA_DEFAULT_MODEL");
    cr_assert(gguf && *gguf, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh");
    const char *art = compile_for_host(gguf, "w4a8", "smollm2");
    mica_model_t *m = NULL;
    mica_error_t err;
    cr_assert_eq(mica_model_open(art, &m, &err), 0, "%s", err.message);
    text_job_t jobs[2] = {{.model = m, .prompt = "The capital of France is", .threads = 2},
                          {.model = m, .prompt = "def fibonacci(n):", .threads = 2}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, run_text_job, &jobs[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(jobs[i].status, 0, "%s", jobs[i].message);
        cr_assert_gt(jobs[i].got.n, 0);
        for (int32_t threads = 1; threads <= 2; threads++) {
            text_job_t alone = {.model = m, .prompt = jobs[i].prompt, .threads = threads};
            run_text_job(&alone);
            cr_assert_eq(alone.status, 0, "%s", alone.message);
            cr_expect_eq(alone.got.n, jobs[i].got.n, "'%s', %d threads", jobs[i].prompt, threads);
            cr_expect_eq(memcmp(alone.got.tokens, jobs[i].got.tokens,
                                (size_t)jobs[i].got.n * sizeof(int32_t)),
                         0, "'%s' alone on %d threads differs from two at once", jobs[i].prompt,
                         threads);
        }
    }
    mica_model_release(m);

    char log[600], out[600];
    snprintf(log, sizeof log, "%s/example.log", art_dir);
    snprintf(out, sizeof out, "%s/example.out", art_dir);
    sh(log,
       "'%s/tools/mica_example' '%s' 'What is the capital of France?' --chat -n 48 -t 2 > '%s'",
       MICA_BINARY_DIR, art, out);
    char *answer = mica_test_read_file(out, NULL);
    cr_assert_not_null(answer);
    cr_expect(strstr(answer, "Paris") != NULL, "the example's answer: %s", answer);
    free(answer);
}
