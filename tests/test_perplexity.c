/* mica perplexity: llama.cpp's method checked against the same method
 * written out here in plain loops over the logits `mica run --tokens
 * --dump-logits` gives for each window (the ref path, itself checked
 * against ../shared/golden by test_golden); bad input; and SmolLM2's
 * compiled w4a8 artifact against its f32 one on the public-domain text of
 * tests/data/text. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_run.h"
#include "test_support.h"

static char tmpdir[] = "/tmp/mica-ppl-XXXXXX";

static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
}

static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}

TestSuite(perplexity, .init = setup, .fini = teardown, .timeout = 600);

#define tmp(name) mica_test_path(tmpdir, name)
#define run(...) mica_test_mica(tmpdir, __VA_ARGS__)

#define TEXT MICA_TEST_DATA_DIR "/text/public-domain.txt"

static void write_file(const char *path, const void *bytes, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f, "cannot write %s", path);
    cr_assert_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
}

/* The ids `mica tokenize` prints (one line, spaces), into ids[0..cap). */
static size_t parse_ids(const char *s, int32_t *ids, size_t cap)
{
    size_t n = 0;
    for (char *e; *s && *s != '\n'; s = e) {
        long v = strtol(s, &e, 10);
        cr_assert(e != s, "bad id list '%s'", s);
        cr_assert(n < cap);
        ids[n++] = (int32_t)v;
    }
    return n;
}

/* "Final estimate: PPL = X +/- E" of the output. */
static void parse_final(const char *out, double *ppl, double *err)
{
    const char *f = strstr(out, "Final estimate: PPL = ");
    cr_assert_not_null(f, "no final estimate in '%s'", out);
    cr_assert_eq(sscanf(f, "Final estimate: PPL = %lf +/- %lf", ppl, err), 2, "%s", f);
}

/* The method written out: windows of ctx tokens, the first replaced by
 * BOS, the rows of positions ctx/2 .. ctx-2 scored on the token after
 * them, log-softmax in double. Writes the running PPL after each window
 * to running[] and returns the final PPL and its standard error. */
static void oracle(const char *model, const int32_t *ids, size_t n, int32_t ctx, int32_t bos,
                   int32_t n_vocab, double *running, double *out_ppl, double *out_err)
{
    size_t n_win = n / (size_t)ctx;
    double nll = 0, nll2 = 0;
    long count = 0;
    for (size_t w = 0; w < n_win; w++) {
        char list[4096];
        size_t k = 0;
        for (int32_t i = 0; i < ctx; i++)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%d", i ? "," : "",
                                  i == 0 && bos >= 0 ? bos : ids[w * (size_t)ctx + (size_t)i]);
        mica_test_result_t r =
            run("run", model, "--tokens", list, "--dump-logits", tmp("logits.f32"), NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
        mica_test_result_free(&r);
        size_t len;
        float *lg = (float *)mica_test_read_file(tmp("logits.f32"), &len);
        cr_assert_eq(len, (size_t)ctx * (size_t)n_vocab * sizeof(float));
        for (int32_t p = ctx / 2; p + 1 < ctx; p++) {
            const float *row = lg + (size_t)p * (size_t)n_vocab;
            double max = row[0], sum = 0;
            for (int32_t v = 1; v < n_vocab; v++)
                max = row[v] > max ? row[v] : max;
            for (int32_t v = 0; v < n_vocab; v++)
                sum += exp((double)row[v] - max);
            double x = -((double)row[ids[w * (size_t)ctx + (size_t)p + 1]] - max - log(sum));
            nll += x;
            nll2 += x * x;
            count++;
        }
        free(lg);
        running[w] = exp(nll / (double)count);
    }
    double mean = nll / (double)count;
    *out_ppl = exp(mean);
    *out_err = sqrt((nll2 / (double)count - mean * mean) / (double)(count - 1)) * *out_ppl;
}

static bool close_rel(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fabs(b);
}

/* The running values "[i]X," of the output, into v[0..cap). */
static size_t parse_running(const char *out, double *v, size_t cap)
{
    size_t n = 0;
    const char *p = out;
    while ((p = strchr(p, '[')) != NULL) {
        int i;
        double x;
        if (sscanf(p, "[%d]%lf,", &i, &x) != 2)
            break;
        cr_assert_eq(i, (int)n + 1, "window %d printed out of order", i);
        cr_assert(n < cap);
        v[n++] = x;
        p++;
    }
    return n;
}

Test(perplexity, matches_the_method_written_out)
{
    const char *model = mica_test_golden("llama-tiny.f32.gguf");
    /* a prefix of the shipped text, with a trailing newline (dropped, as
     * llama.cpp reads -f) */
    size_t len;
    char *text = mica_test_read_file(TEXT, &len);
    cr_assert_not_null(text);
    const size_t cut = 300;
    cr_assert(len > cut);
    text[cut] = '\n';
    write_file(tmp("text.txt"), text, cut + 1);
    write_file(tmp("text-no-nl.txt"), text, cut);
    free(text);

    /* the tokens, BOS first as the SPM vocabulary asks */
    mica_test_result_t r = run("tokenize", model, "-f", tmp("text-no-nl.txt"), "--bos", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    int32_t ids[1024];
    size_t n = parse_ids(r.out, ids, 1024);
    mica_test_result_free(&r);
    cr_assert_eq(ids[0], 1, "llama-tiny's BOS is 1");
    const int32_t ctx = 16;
    cr_assert(n >= 3 * (size_t)ctx, "%zu tokens", n);

    double want_run[64], want_ppl, want_err;
    oracle(model, ids, n, ctx, 1, 32000, want_run, &want_ppl, &want_err);
    size_t n_win = n / (size_t)ctx;

    /* batches that split windows unevenly give the same numbers */
    const char *batches[] = {"16", "5"};
    for (int b = 0; b < 2; b++) {
        r = run("perplexity", model, "-f", tmp("text.txt"), "-c", "16", "-b", batches[b], NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
        double got_run[64], ppl, err;
        size_t k = parse_running(r.out, got_run, 64);
        cr_expect_eq(k, n_win, "%zu windows printed, want %zu", k, n_win);
        for (size_t i = 0; i < k && i < n_win; i++)
            cr_expect(close_rel(got_run[i], want_run[i], 2e-4), "window %zu: %f, want %f", i + 1,
                      got_run[i], want_run[i]);
        parse_final(r.out, &ppl, &err);
        cr_expect(close_rel(ppl, want_ppl, 2e-4), "PPL %f, want %f", ppl, want_ppl);
        cr_expect(close_rel(err, want_err, 2e-3), "error %f, want %f", err, want_err);
        mica_test_result_free(&r);
    }
    /* --chunks scores only the first windows */
    r = run("perplexity", model, "-f", tmp("text.txt"), "-c", "16", "--chunks", "2", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    double got_run[64];
    cr_expect_eq(parse_running(r.out, got_run, 64), 2);
    cr_expect(close_rel(got_run[1], want_run[1], 2e-4), "%f, want %f", got_run[1], want_run[1]);
    mica_test_result_free(&r);
}

Test(perplexity, bad_input_is_named)
{
    const char *model = mica_test_golden("llama-tiny.f32.gguf");
    write_file(tmp("short.txt"), "Four score and seven years ago\n", 31);
    mica_test_result_t r = run("perplexity", model, "-f", tmp("short.txt"), "-c", "16", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "that two windows of -c 16 need");
    cr_expect(strstr(r.err, "short.txt") != NULL, "%s", r.err);
    mica_test_result_free(&r);
    write_file(tmp("empty.txt"), "", 0);
    r = run("perplexity", model, "-f", tmp("empty.txt"), "-c", "4", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "that two windows of -c 4 need");
    mica_test_result_free(&r);
    r = run("perplexity", model, "-f", tmp("no-such.txt"), NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "no-such.txt");
    mica_test_result_free(&r);
    const char *usage[][2] = {
        {"-c", "3"}, {"-c", "0"}, {"-c", "x"}, {"-b", "-1"}, {"--chunks", "0"}};
    const char *why[] = {"-c 3 is too short", "-c needs a positive count", "not 'x'",
                         "-b needs a positive count", "--chunks needs a positive count"};
    for (int i = 0; i < 5; i++) {
        r = run("perplexity", model, "-f", tmp("short.txt"), usage[i][0], usage[i][1], NULL);
        cr_expect_eq(r.status, 2, "%s %s", usage[i][0], usage[i][1]);
        mica_test_expect_one_line(&r, why[i]);
        mica_test_result_free(&r);
    }
    r = run("perplexity", model, NULL);
    cr_expect_eq(r.status, 2);
    mica_test_expect_one_line(&r, "no text given");
    mica_test_result_free(&r);
}

static const char *smollm(void)
{
    const char *p = getenv("MICA_DEFAULT_MODEL");
    cr_assert(p && *p,
              "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh and export its path");
    return p;
}

static void perplexity_of(const char *model, const char *ctx, const char *chunks, double *ppl,
                          double *err)
{
    mica_test_result_t r =
        chunks ? run("perplexity", model, "-f", TEXT, "-c", ctx, "--chunks", chunks, NULL)
               : run("perplexity", model, "-f", TEXT, "-c", ctx, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    parse_final(r.out, ppl, err);
    cr_log_info("perplexity %s -c %s: %s", model, ctx, strstr(r.out, "Final"));
    mica_test_result_free(&r);
}

Test(perplexity, smollm2_w4a8_artifact_within_5_percent_of_f32)
{
    const char *q[] = {"f32", "w4a8"};
    double ppl[2], err[2];
    for (int i = 0; i < 2; i++) {
        const char *dir = tmp(q[i]);
        mica_test_result_t r =
            run("compile", smollm(), "-t", "host", "-q", q[i], "-c", "128", "-o", dir, NULL);
        cr_assert_eq(r.status, 0, "%s", r.err);
        mica_test_result_free(&r);
        perplexity_of(dir, "128", "8", &ppl[i], &err[i]);
        /* a real model on plain English: far below the 49152 of a uniform guess */
        cr_expect(ppl[i] > 2 && ppl[i] < 100, "%s: PPL %f", q[i], ppl[i]);
        cr_expect(err[i] > 0 && err[i] < ppl[i] / 4, "%s: +/- %f", q[i], err[i]);
    }
    fprintf(stderr, "SmolLM2 perplexity -c 128, 8 windows: f32 %.4f +/- %.4f, w4a8 %.4f +/- %.4f\n",
            ppl[0], err[0], ppl[1], err[1]);
    cr_expect(fabs(ppl[1] - ppl[0]) <= 0.05 * ppl[0], "w4a8 %f is more than 5%% off f32 %f", ppl[1],
              ppl[0]);
    /* a window longer than the artifact's context is refused */
    mica_test_result_t r = run("perplexity", tmp("f32"), "-f", TEXT, "-c", "256", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "context of 128 tokens");
    mica_test_result_free(&r);
    /* the f32 artifact agrees with the GGUF on the reference path (two
     * short windows: the reference path is slow) */
    double ref_ppl, ref_err, art_ppl, art_err;
    perplexity_of(smollm(), "8", "2", &ref_ppl, &ref_err);
    perplexity_of(tmp("f32"), "8", "2", &art_ppl, &art_err);
    cr_expect(close_rel(art_ppl, ref_ppl, 1e-3), "f32 artifact %f, ref path %f", art_ppl, ref_ppl);
}
