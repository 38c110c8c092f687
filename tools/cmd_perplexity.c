/* mica perplexity (ARTIFACT|MODEL.gguf) -f FILE [-c CTX] [-b BATCH] [--chunks N] [-t N]
 *
 * llama.cpp's perplexity (examples/perplexity, its default mode): the text
 * (one trailing newline dropped, as llama.cpp reads -f) is tokenized with
 * BOS where the model wants it and cut into non-overlapping windows of CTX
 * tokens; each window runs from an empty cache, its first token replaced
 * by BOS where the model wants it, and only its second half is scored:
 * the rows of positions CTX/2 .. CTX-2 predict the token after them. With
 * nll the mean negative log-likelihood of the N scored tokens and s2 the
 * variance of the per-token values, PPL = exp(nll) and its standard error
 * is PPL * sqrt(s2 / (N - 1)). The running PPL is printed after each
 * window as "[i]PPL," and the last line is "Final estimate: PPL = X +/- E". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "session.h"

static void help(void)
{
    printf("usage: mica perplexity (ARTIFACT|MODEL.gguf) -f FILE [-c CTX] [-b BATCH]\n"
           "                       [--chunks N] [-t THREADS] [--backend cpu|ref]\n\n"
           "Measures the model's perplexity on the text of FILE as llama-perplexity does:\n"
           "windows of CTX tokens (default 512), the second half of each scored. Prints\n"
           "the running value after each window and then\n"
           "'Final estimate: PPL = X +/- E' (E: its standard error).\n"
           "  -c CTX        tokens per window, at least 4; the text needs two windows\n"
           "  -b BATCH      tokens per model call (default: min(CTX, 512))\n"
           "  --chunks N    score only the first N windows (default: all)\n"
           "  -t THREADS    threads of a compiled artifact (default 1)\n"
           "  --backend B   for an artifact: cpu (its model object) or ref\n");
}

/* A positive int option value, or -1. */
static int32_t parse_count(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > (1L << 24))
        return -1;
    return (int32_t)v;
}

/* -log softmax(row)[tok], as llama.cpp: float max, double sum of expf. */
static double neg_log_prob(const float *row, int32_t n_vocab, int32_t tok)
{
    float max = row[0];
    for (int32_t i = 1; i < n_vocab; i++)
        max = row[i] > max ? row[i] : max;
    double sum = 0.0;
    for (int32_t i = 0; i < n_vocab; i++)
        sum += expf(row[i] - max);
    return -((double)(row[tok] - max) - log(sum));
}

typedef struct ppl_args {
    const char *model, *file;
    int32_t n_ctx, n_batch, n_chunks, threads;
    mica_cli_backend_t backend;
} ppl_args_t;

static int parse_args(int argc, char **argv, ppl_args_t *a)
{
    memset(a, 0, sizeof *a);
    a->n_ctx = 512;
    a->n_chunks = -1;
    a->threads = 1;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            help();
            return -1;
        }
        bool valued = !strcmp(o, "-f") || !strcmp(o, "-c") || !strcmp(o, "-b") ||
                      !strcmp(o, "--chunks") || !strcmp(o, "-t") || !strcmp(o, "--backend");
        if (valued && i + 1 >= argc)
            return mica_cli_usage("perplexity", "%s needs a value", o);
        if (!strcmp(o, "-f")) {
            a->file = argv[++i];
        } else if (!strcmp(o, "--backend")) {
            if (!mica_cli_backend_parse(argv[++i], &a->backend))
                return mica_cli_usage("perplexity", "--backend is cpu or ref, not '%s'", argv[i]);
        } else if (valued) {
            int32_t v = parse_count(argv[++i]);
            if (v < 0)
                return mica_cli_usage("perplexity", "%s needs a positive count, not '%s'", o,
                                      argv[i]);
            if (!strcmp(o, "-c"))
                a->n_ctx = v;
            else if (!strcmp(o, "-b"))
                a->n_batch = v;
            else if (!strcmp(o, "--chunks"))
                a->n_chunks = v;
            else
                a->threads = v;
        } else if (o[0] == '-' && o[1]) {
            return mica_cli_usage("perplexity", "unknown option '%s'", o);
        } else if (a->model) {
            return mica_cli_usage("perplexity", "more than one model given");
        } else {
            a->model = o;
        }
    }
    if (!a->model)
        return mica_cli_usage("perplexity", "no model given");
    if (!a->file)
        return mica_cli_usage("perplexity", "no text given (-f FILE)");
    if (a->n_ctx < 4)
        return mica_cli_usage("perplexity", "-c %d is too short: a window needs at least 4 tokens",
                              a->n_ctx);
    if (a->n_batch == 0)
        a->n_batch = a->n_ctx < 512 ? a->n_ctx : 512;
    else if (a->n_batch > a->n_ctx)
        a->n_batch = a->n_ctx;
    return 0;
}

/* Scores windows of tokens[0..n); prints as it goes. */
static mica_status_t run(mica_cli_session_t *s, const ppl_args_t *a, int32_t *tokens, size_t n,
                         bool add_bos, mica_diag_t *d)
{
    const int32_t n_ctx = a->n_ctx, n_batch = a->n_batch, V = s->n_vocab;
    const int32_t first = n_ctx / 2;
    int64_t n_chunk = (int64_t)(n / (size_t)n_ctx);
    if (a->n_chunks > 0 && a->n_chunks < n_chunk)
        n_chunk = a->n_chunks;
    fprintf(stderr,
            "perplexity: %zu tokens, %lld windows of %d (batch %d), %d tokens scored in each\n", n,
            (long long)n_chunk, n_ctx, n_batch, n_ctx - 1 - first);
    float *logits = malloc((size_t)n_batch * (size_t)V * sizeof *logits);
    if (!logits)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %d rows of logits", n_batch);
    double nll = 0.0, nll2 = 0.0, t0 = mica_cli_now();
    int64_t count = 0;
    mica_status_t st = MICA_OK;
    for (int64_t c = 0; c < n_chunk && st == MICA_OK; c++) {
        int32_t *win = tokens + c * n_ctx;
        int32_t saved = win[0];
        if (add_bos)
            win[0] = mica_tokenizer_bos(s->tok);
        mica_cli_session_reset(s);
        for (int32_t b = 0; b < n_ctx && st == MICA_OK; b += n_batch) {
            int32_t m = n_ctx - b < n_batch ? n_ctx - b : n_batch;
            st = mica_cli_session_eval(s, win + b, m, true, logits, d);
            for (int32_t k = 0; k < m && st == MICA_OK; k++) {
                int32_t pos = b + k;
                if (pos < first || pos + 1 >= n_ctx)
                    continue;
                double v = neg_log_prob(logits + (size_t)k * (size_t)V, V, win[pos + 1]);
                nll += v;
                nll2 += v * v;
                count++;
            }
        }
        win[0] = saved;
        if (st != MICA_OK)
            break;
        printf("[%lld]%.4f,", (long long)(c + 1), exp(nll / (double)count));
        fflush(stdout);
        if (c == 0)
            fprintf(stderr, "perplexity: %.2f seconds per window\n", mica_cli_now() - t0);
    }
    free(logits);
    MICA_TRY(st);
    printf("\n");
    double mean = nll / (double)count;
    double var = nll2 / (double)count - mean * mean;
    double ppl = exp(mean);
    if (!(var > 0.0) || count < 2)
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "the log-likelihoods have no spread (%lld tokens scored)",
                             (long long)count);
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, sqrt(var / (double)(count - 1)) * ppl);
    return MICA_OK;
}

int mica_cmd_perplexity(int argc, char **argv)
{
    ppl_args_t a;
    int rc = parse_args(argc, argv, &a);
    if (rc)
        return rc < 0 ? MICA_EXIT_OK : rc;

    mica_diag_t d = {0};
    size_t len = 0;
    char *text = mica_cli_read_file(a.file, &len, &d);
    if (!text)
        return mica_cli_fail(a.file, &d);
    if (len && text[len - 1] == '\n')
        len--;
    mica_cli_session_t s;
    mica_cli_open_t how = {NULL, true, a.backend, a.threads};
    if (mica_cli_session_open(&s, a.model, &how, &d) != MICA_OK) {
        free(text);
        return mica_cli_fail(a.model, &d);
    }
    if (s.compiled && mica_model_context(s.compiled) < a.n_ctx) {
        free(text);
        mica_diag_set(&d, MICA_ERR_RANGE,
                      "-c %d is more than the artifact's context of %d tokens (mica compile -c)",
                      a.n_ctx, mica_model_context(s.compiled));
        mica_cli_session_close(&s);
        return mica_cli_fail(a.model, &d);
    }
    bool add_bos = mica_tokenizer_add_bos(s.tok);
    int32_t *tokens = NULL;
    size_t n = 0;
    rc = MICA_EXIT_OK;
    if (mica_cli_tokenize(&s, text, len, add_bos ? MICA_TOKENIZER_ADD_BOS : 0, &tokens, &n, &d) !=
        MICA_OK) {
        rc = mica_cli_fail(a.file, &d);
    } else if (n < 2 * (size_t)a.n_ctx) {
        mica_diag_set(&d, MICA_ERR_INVALID,
                      "%zu tokens are fewer than the %lld that two windows of -c %d need", n,
                      2 * (long long)a.n_ctx, a.n_ctx);
        rc = mica_cli_fail(a.file, &d);
    } else if (run(&s, &a, tokens, n, add_bos, &d) != MICA_OK) {
        rc = mica_cli_fail(a.model, &d);
    }
    free(tokens);
    free(text);
    mica_cli_session_close(&s);
    return rc;
}
