/* mica bench (ARTIFACT | MODEL.gguf) [options]: llama-bench's method and
 * table, plus each figure as a fraction of this machine's limits. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "gguf.h"
#include "limits.h"
#include "session.h"

#define MAX_LIST 16                         /* values of one list option */
#define MAX_TESTS (MAX_LIST * 3 * MAX_LIST) /* tests of one run */
#define MAX_REPS 1000
#define BENCH_SEED 1234u /* of the random token ids */

static void help(void)
{
    printf("usage: mica bench (ARTIFACT | MODEL.gguf) [options]\n"
           "       mica bench --limits\n\n"
           "Measures prompt processing and generation speed as llama-bench does: ppN\n"
           "evaluates one prompt of N random token ids from an empty cache (in the\n"
           "model's prefill chunks), tgN runs N single-token decode steps from an empty\n"
           "cache, pp P+tg N both, timed together. Each test runs once to warm up, then\n"
           "R times; t/s is the mean and standard deviation over those R.\n\n"
           "  -p N[,N...]    prompt lengths (default 512; 0 = none)\n"
           "  -n N[,N...]    generation lengths (default 128; 0 = none)\n"
           "  -pg P,N        a prompt of P then N generated tokens (may repeat)\n"
           "  -t N[,N...]    threads (default: the cores online; the reference path\n"
           "                 runs on one whatever -t says)\n"
           "  -r R           repetitions (default 3)\n"
           "  -o md|json     a markdown table (default) or a JSON array, on stdout\n"
           "  --limits       measure this machine's read bandwidth and int8 peak again\n"
           "  --profile      then run the last test once more and print every scheduled\n"
           "                 op's measured time beside the compiler's roofline time\n"
           "                 (alone: print them; with a model: then bench on stdout)\n\n"
           "Beside t/s: the weight bytes a decoded token reads (the artifact's resident\n"
           "weights, or the GGUF's tensors without the embedding table when the LM head\n"
           "is separate), the fraction of the measured read bandwidth that decode\n"
           "reaches (t/s x bytes/token / bandwidth), the fraction of the int8 peak that\n"
           "prefill reaches (t/s x 2 x matmul params / peak), and the peak RSS so far.\n"
           "The limits are measured once per machine and cached in\n"
           "$XDG_CACHE_HOME/mica (default ~/.cache/mica).\n");
}

/* ---- what is benched ----------------------------------------------------- */

/* The model's figures, as llama-bench reports them, and mica's. */
typedef struct model_info {
    char type[96];            /* "llama 135M Q4_1" */
    uint64_t size;            /* bytes of weights in the file */
    uint64_t n_params;        /* all weight elements */
    uint64_t matmul_params;   /* elements of the matrices multiplied per token */
    uint64_t bytes_per_token; /* weight bytes one decode step reads */
    const char *backend;
} model_info_t;

/* "135M", "1.5B" from a parameter count. */
static void size_label(uint64_t n, char *buf, size_t cap)
{
    if (n >= 1000000000u)
        snprintf(buf, cap, "%.1fB", (double)n / 1e9);
    else
        snprintf(buf, cap, "%.0fM", (double)n / 1e6);
}

/* llama.cpp's general.file_type names, for the model column. */
static const char *file_type_name(int64_t t)
{
    static const struct {
        int64_t id;
        const char *name;
    } names[] = {{0, "F32"},
                 {1, "F16"},
                 {2, "Q4_0"},
                 {3, "Q4_1"},
                 {7, "Q8_0"},
                 {8, "Q5_0"},
                 {9, "Q5_1"},
                 {10, "Q2_K - Medium"},
                 {11, "Q3_K - Small"},
                 {12, "Q3_K - Medium"},
                 {13, "Q3_K - Large"},
                 {14, "Q4_K - Small"},
                 {15, "Q4_K - Medium"},
                 {16, "Q5_K - Small"},
                 {17, "Q5_K - Medium"},
                 {18, "Q6_K"},
                 {32, "BF16"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].id == t)
            return names[i].name;
    return NULL;
}

/* Counts a GGUF's tensors: every element is a parameter; the matrices
 * multiplied per token are the 2-D tensors but the embedding table, which
 * counts too when it is also the LM head (no output.weight). */
static mica_status_t gguf_info(const char *path, model_info_t *mi, mica_diag_t *d)
{
    mica_gguf_t *g;
    MICA_TRY(mica_gguf_open(path, &g, d));
    const mica_gguf_tensor_t *embd = mica_gguf_find_tensor(g, "token_embd.weight");
    bool tied = embd && !mica_gguf_find_tensor(g, "output.weight");
    for (uint64_t i = 0; i < mica_gguf_tensor_count(g); i++) {
        const mica_gguf_tensor_t *t = mica_gguf_tensor_at(g, i);
        uint64_t n =
            (uint64_t)t->ne[0] * (uint64_t)t->ne[1] * (uint64_t)t->ne[2] * (uint64_t)t->ne[3];
        mi->size += t->nbytes;
        mi->n_params += n;
        if (t == embd && !tied) {
            mi->bytes_per_token += t->ne[1] > 0 ? t->nbytes / (uint64_t)t->ne[1] : 0; /* a row */
            continue;
        }
        mi->bytes_per_token += t->nbytes;
        if (t->n_dims >= 2)
            mi->matmul_params += n;
    }
    mica_gguf_str_t arch = {"?", 1};
    mica_gguf_get_str(g, "general.architecture", &arch);
    int64_t ft = -1;
    const char *ftn = mica_gguf_get_i64(g, "general.file_type", &ft) ? file_type_name(ft) : NULL;
    char label[16];
    size_label(mi->n_params, label, sizeof label);
    snprintf(mi->type, sizeof mi->type, "%.*s %s %s", (int)(arch.len < 32 ? arch.len : 32),
             arch.ptr, label, ftn ? ftn : "?");
    mica_gguf_close(g);
    mi->backend = "ref";
    return MICA_OK;
}

/* The key/value lines of an artifact's manifest that the figures need. */
typedef struct manifest {
    char arch[32], quant[16];
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, tied;
    int64_t memory_weights, weights_bin;
    int64_t weights_read; /* memory.weights_read: what decode reads of them; -1 if absent */
    bool q_bias, qk_norm; /* blk.0.attn_q.bias, blk.0.attn_q_norm.weight present */
} manifest_t;

static mica_status_t read_manifest(const char *dir, manifest_t *m, mica_diag_t *d)
{
    memset(m, 0, sizeof *m);
    m->weights_read = -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest", dir);
    size_t len;
    char *text = mica_cli_read_file(path, &len, d);
    if (!text) {
        mica_diag_prefix(d, "manifest");
        return d ? d->code : MICA_ERR_IO;
    }
    struct {
        const char *key;
        int64_t *v;
    } ints[] = {{"model.n_vocab", &m->n_vocab},
                {"model.n_embd", &m->n_embd},
                {"model.n_layer", &m->n_layer},
                {"model.n_head", &m->n_head},
                {"model.n_head_kv", &m->n_head_kv},
                {"model.head_dim", &m->head_dim},
                {"model.n_ff", &m->n_ff},
                {"model.tied_output", &m->tied},
                {"memory.weights", &m->memory_weights}};
    const size_t n_ints = sizeof ints / sizeof ints[0];
    unsigned seen = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *val = strchr(line, ' ');
        if (!val)
            continue;
        *val++ = 0;
        for (size_t k = 0; k < n_ints; k++)
            if (!strcmp(line, ints[k].key) && mica_arg_int(val, 0, INT64_MAX, ints[k].v))
                seen |= 1u << k;
        if (!strcmp(line, "memory.weights_read") && !mica_arg_int(val, 0, INT64_MAX, &m->weights_read))
            m->weights_read = -1;
        if (!strcmp(line, "model.arch"))
            snprintf(m->arch, sizeof m->arch, "%s", val);
        else if (!strcmp(line, "quant"))
            snprintf(m->quant, sizeof m->quant, "%s", val);
        else if (!strcmp(line, "file") && !strncmp(val, "weights.bin ", 12))
            m->weights_bin = strtoll(val + 12, NULL, 10);
        else if (!strcmp(line, "weight") && !strncmp(val, "blk.0.attn_q.bias ", 18))
            m->q_bias = true;
        else if (!strcmp(line, "weight") && !strncmp(val, "blk.0.attn_q_norm.weight ", 25))
            m->qk_norm = true;
    }
    free(text);
    if (seen != (1u << n_ints) - 1 || !m->arch[0])
        return mica_diag_set(d, MICA_ERR_INVALID,
                             "manifest: model config or memory.weights missing");
    return MICA_OK;
}

/* An artifact's figures from its manifest: the resident weights a step
 * reads, and the parameters from the model config (the llama family's
 * tensors: q, k, v, o, gate, up, down, norms, optional q/k/v biases and
 * q/k norms, the embedding table and the LM head unless tied). */
static mica_status_t artifact_info(const char *dir, model_info_t *mi, mica_diag_t *d)
{
    manifest_t m;
    MICA_TRY(read_manifest(dir, &m, d));
    uint64_t e = (uint64_t)m.n_embd, q = (uint64_t)(m.n_head * m.head_dim),
             kv = (uint64_t)(m.n_head_kv * m.head_dim), L = (uint64_t)m.n_layer,
             table = (uint64_t)m.n_vocab * e;
    mi->matmul_params = L * (e * q + 2 * e * kv + q * e + 3 * e * (uint64_t)m.n_ff) + table;
    mi->n_params = mi->matmul_params + (m.tied ? 0 : table) + L * 2 * e + e;
    if (m.q_bias)
        mi->n_params += L * (q + 2 * kv);
    if (m.qk_norm)
        mi->n_params += L * 2 * (uint64_t)m.head_dim;
    mi->bytes_per_token = (uint64_t)(m.weights_read >= 0 && m.weights_read <= m.memory_weights
                                         ? m.weights_read
                                         : m.memory_weights);
    mi->size = (uint64_t)m.weights_bin;
    char label[16];
    size_label(mi->n_params, label, sizeof label);
    snprintf(mi->type, sizeof mi->type, "%s %s %s", m.arch, label, m.quant[0] ? m.quant : "?");
    return MICA_OK;
}

/* ---- one test ------------------------------------------------------------ */

typedef struct bench_test {
    int32_t n_prompt, n_gen, n_threads;
} bench_test_t;

typedef struct bench_result {
    char time[32]; /* ISO 8601 UTC of the start */
    int32_t n_samples;
    double *samples_ns; /* [n_samples] */
    double *samples_ts;
    double avg_ns, stddev_ns, avg_ts, stddev_ts;
    uint64_t peak_rss_bytes;
} bench_result_t;

/* Mean and sample standard deviation (0 for one value). */
static void mean_stddev(const double *v, int n, double *out_mean, double *out_sd)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++)
        s += v[i];
    double m = s / n;
    for (int i = 0; i < n; i++)
        ss += (v[i] - m) * (v[i] - m);
    *out_mean = m;
    *out_sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

/* One timed run from an empty cache: n_prompt tokens in one call (the
 * session splits it into the model's chunks), then n_gen single-token
 * steps. The ids are drawn before the clock starts. */
static mica_status_t run_once(mica_cli_session_t *s, const int32_t *ids, int32_t n_prompt,
                              int32_t n_gen, double *out_seconds, mica_diag_t *d)
{
    mica_cli_session_reset(s);
    double t0 = mica_cli_now();
    if (n_prompt > 0)
        MICA_TRY(mica_cli_session_eval(s, ids, n_prompt, false, s->logits, d));
    for (int32_t i = 0; i < n_gen; i++)
        MICA_TRY(mica_cli_session_eval(s, &ids[n_prompt + i], 1, false, s->logits, d));
    *out_seconds = mica_cli_now() - t0;
    return MICA_OK;
}

static mica_status_t run_test(mica_cli_session_t *s, const bench_test_t *t, int32_t reps,
                              bench_result_t *r, mica_diag_t *d)
{
    memset(r, 0, sizeof *r);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(r->time, sizeof r->time, "%Y-%m-%dT%H:%M:%SZ", &tm);
    size_t n_ids = (size_t)t->n_prompt + (size_t)t->n_gen;
    int32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
    r->samples_ns = malloc((size_t)reps * sizeof *r->samples_ns);
    r->samples_ts = malloc((size_t)reps * sizeof *r->samples_ts);
    if (!ids || !r->samples_ns || !r->samples_ts) {
        free(ids);
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    }
    uint64_t x = BENCH_SEED; /* xorshift64 */
    for (size_t i = 0; i < n_ids; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids[i] = (int32_t)(x % (uint64_t)s->n_vocab);
    }
    /* llama-bench's warm-up: the prompt, and one generated token */
    double sec = 0;
    mica_status_t st = MICA_OK;
    if (t->n_prompt > 0)
        st = run_once(s, ids, t->n_prompt, 0, &sec, d);
    if (st == MICA_OK && t->n_gen > 0)
        st = run_once(s, ids, 0, 1, &sec, d);
    for (int32_t i = 0; i < reps && st == MICA_OK; i++) {
        st = run_once(s, ids, t->n_prompt, t->n_gen, &sec, d);
        sec = sec > 0 ? sec : 1e-9;
        r->samples_ns[i] = sec * 1e9;
        r->samples_ts[i] = (double)n_ids / sec;
        r->n_samples = i + 1;
    }
    free(ids);
    if (st != MICA_OK)
        return st;
    mean_stddev(r->samples_ns, r->n_samples, &r->avg_ns, &r->stddev_ns);
    mean_stddev(r->samples_ts, r->n_samples, &r->avg_ts, &r->stddev_ts);
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        r->peak_rss_bytes = (uint64_t)ru.ru_maxrss * 1024u; /* KiB on Linux */
    return MICA_OK;
}

static void result_free(bench_result_t *r)
{
    free(r->samples_ns);
    free(r->samples_ts);
    memset(r, 0, sizeof *r);
}

/* ---- output -------------------------------------------------------------- */

typedef struct bench_out {
    const char *path;
    const model_info_t *mi;
    const mica_limits_t *limits;
    bool json;
    int n_printed;
} bench_out_t;

static void test_name(const bench_test_t *t, char *buf, size_t cap)
{
    if (t->n_prompt > 0 && t->n_gen > 0)
        snprintf(buf, cap, "pp%d+tg%d", t->n_prompt, t->n_gen);
    else if (t->n_prompt > 0)
        snprintf(buf, cap, "pp%d", t->n_prompt);
    else
        snprintf(buf, cap, "tg%d", t->n_gen);
}

/* The fractions of the limits a test reached: decode of the read
 * bandwidth, prefill of the int8 peak; NAN where it does not apply. */
static void fractions(const bench_out_t *o, const bench_test_t *t, const bench_result_t *r,
                      double *out_bw, double *out_peak)
{
    double bw = mica_limits_bw_gbs(o->limits, t->n_threads) * 1e9;
    double peak = mica_limits_int8_gops(o->limits, t->n_threads) * 1e9;
    *out_bw = t->n_prompt == 0 ? r->avg_ts * (double)o->mi->bytes_per_token / bw : NAN;
    *out_peak = t->n_gen == 0 ? r->avg_ts * 2.0 * (double)o->mi->matmul_params / peak : NAN;
}

static void json_string(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_number_or_null(const char *key, double v, bool last)
{
    if (isfinite(v))
        printf("    \"%s\": %.9g%s\n", key, v, last ? "" : ",");
    else
        printf("    \"%s\": null%s\n", key, last ? "" : ",");
}

static void print_json(bench_out_t *o, const bench_test_t *t, const bench_result_t *r)
{
    double bw, peak;
    fractions(o, t, r, &bw, &peak);
    printf("%s  {\n", o->n_printed ? ",\n" : "[\n");
    printf("    \"model_filename\": ");
    json_string(o->path);
    printf(",\n    \"model_type\": ");
    json_string(o->mi->type);
    printf(",\n    \"model_size\": %" PRIu64 ",\n", o->mi->size);
    printf("    \"model_n_params\": %" PRIu64 ",\n", o->mi->n_params);
    printf("    \"cpu_info\": ");
    json_string(o->limits->cpu);
    printf(",\n    \"backends\": ");
    json_string(o->mi->backend);
    printf(",\n    \"n_threads\": %d,\n", t->n_threads);
    printf("    \"n_prompt\": %d,\n    \"n_gen\": %d,\n", t->n_prompt, t->n_gen);
    printf("    \"test_time\": \"%s\",\n", r->time);
    printf("    \"avg_ns\": %.0f,\n    \"stddev_ns\": %.0f,\n", r->avg_ns, r->stddev_ns);
    printf("    \"avg_ts\": %.6f,\n    \"stddev_ts\": %.6f,\n", r->avg_ts, r->stddev_ts);
    printf("    \"samples_ns\": [");
    for (int i = 0; i < r->n_samples; i++)
        printf("%s%.0f", i ? ", " : " ", r->samples_ns[i]);
    printf(" ],\n    \"samples_ts\": [");
    for (int i = 0; i < r->n_samples; i++)
        printf("%s%.6f", i ? ", " : " ", r->samples_ts[i]);
    printf(" ],\n    \"bytes_per_token\": %" PRIu64 ",\n", o->mi->bytes_per_token);
    json_number_or_null("bw_fraction", bw, false);
    json_number_or_null("peak_fraction", peak, false);
    printf("    \"peak_rss_bytes\": %" PRIu64 ",\n", r->peak_rss_bytes);
    printf("    \"limits_bw_gbs\": %.9g,\n", mica_limits_bw_gbs(o->limits, t->n_threads));
    printf("    \"limits_int8_gops\": %.9g\n  }", mica_limits_int8_gops(o->limits, t->n_threads));
    fflush(stdout);
}

static void print_md_header(void)
{
    printf("| %-30s | %10s | %10s | %-10s | %7s | %13s | %20s | %10s | %6s | %6s | %10s |\n",
           "model", "size", "params", "backend", "threads", "test", "t/s", "B/token", "bw %",
           "int8 %", "peak RSS");
    printf(
        "| ------------------------------ | ---------: | ---------: | ---------- | ------: "
        "| ------------: | -------------------: | ---------: | -----: | -----: | ---------: |\n");
}

static void percent(char *buf, size_t cap, double v)
{
    if (isfinite(v))
        snprintf(buf, cap, "%.1f", 100.0 * v);
    else
        snprintf(buf, cap, "-");
}

static void print_md(bench_out_t *o, const bench_test_t *t, const bench_result_t *r)
{
    if (!o->n_printed)
        print_md_header();
    const double mib = 1024.0 * 1024.0;
    char name[48], size[24], params[24], ts[48], bpt[24], bw_s[16], peak_s[16], rss[24];
    double bw, peak;
    fractions(o, t, r, &bw, &peak);
    test_name(t, name, sizeof name);
    snprintf(size, sizeof size, "%.2f MiB", (double)o->mi->size / mib);
    snprintf(params, sizeof params, "%.2f M", (double)o->mi->n_params / 1e6);
    snprintf(ts, sizeof ts, "%.2f ± %.2f", r->avg_ts, r->stddev_ts);
    snprintf(bpt, sizeof bpt, "%.2f MiB", (double)o->mi->bytes_per_token / mib);
    percent(bw_s, sizeof bw_s, bw);
    percent(peak_s, sizeof peak_s, peak);
    snprintf(rss, sizeof rss, "%.1f MiB", (double)r->peak_rss_bytes / mib);
    /* "±" is two bytes and one column: pad t/s by one more */
    printf("| %-30s | %10s | %10s | %-10s | %7d | %13s | %21s | %10s | %6s | %6s | %10s |\n",
           o->mi->type, size, params, o->mi->backend, t->n_threads, name, ts, bpt, bw_s, peak_s,
           rss);
    fflush(stdout);
}

/* ---- the command line ---------------------------------------------------- */

/* "512,128" -> values in [lo, hi]; false on anything else. */
typedef struct prof_row {
    mica_op_profile_t op;
    int graph;
    uint64_t calls;
} prof_row_t;

static int prof_cmp(const void *a, const void *b)
{
    const prof_row_t *x = a, *y = b;
    double mx = x->calls ? (double)x->op.measured_ns / (double)x->calls : 0;
    double my = y->calls ? (double)y->op.measured_ns / (double)y->calls : 0;
    return mx < my ? 1 : mx > my ? -1 : 0;
}

/* --profile: one more run of test t with the runtime's per-op profile on,
 * then every scheduled op's mean measured time per call beside the
 * roofline time the compiler predicted for it, slowest first, per graph. */
static mica_status_t print_profile(mica_cli_session_t *s, const bench_test_t *t, FILE *f,
                                   mica_diag_t *d)
{
    mica_error_t err;
    if (mica_session_profile_enable(s->session, 1, &err) != 0)
        return mica_diag_set(d, MICA_ERR_INVALID, "%s", err.message);
    const int32_t n_prompt = t->n_prompt, n_gen = t->n_prompt || t->n_gen ? t->n_gen : 1;
    int32_t *ids = malloc(((size_t)n_prompt + (size_t)n_gen) * sizeof *ids);
    if (!ids)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < n_prompt + n_gen; i++)
        ids[i] = (int32_t)(1 + (uint32_t)i * 7919u % (uint32_t)(s->n_vocab - 1));
    double sec = 0;
    mica_status_t st = run_once(s, ids, n_prompt, n_gen, &sec, d);
    free(ids);
    MICA_TRY(st);
    static const char *const gname[] = {"prefill", "decode"};
    for (int g = 0; g < 2; g++) {
        uint32_t n_ops = 0;
        uint64_t calls = 0;
        if (mica_session_profile_op(s->session, g, 0, NULL, &n_ops, &calls, &err) != 0 || !calls)
            continue;
        prof_row_t *rows = calloc(n_ops ? n_ops : 1, sizeof *rows);
        if (!rows)
            return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
        double sum_m = 0, sum_p = 0;
        for (uint32_t i = 0; i < n_ops; i++) {
            rows[i].graph = g;
            rows[i].calls = calls;
            mica_session_profile_op(s->session, g, i, &rows[i].op, NULL, NULL, &err);
            sum_m += (double)rows[i].op.measured_ns / (double)calls;
            sum_p += rows[i].op.predicted_ns;
        }
        qsort(rows, n_ops, sizeof *rows, prof_cmp);
        fprintf(f, "\n%s: %u ops, %" PRIu64 " calls; per call: measured %.1f us, roofline "
                   "%.1f us\n", gname[g], n_ops, calls, sum_m / 1e3, sum_p / 1e3);
        fprintf(f, "| %-40s | %-34s | parts | measured us | roofline us | x roofline |\n", "op",
                "kernel");
        fprintf(f, "| %.40s | %.34s | ----: | ----------: | ----------: | ---------: |\n",
                "----------------------------------------", "----------------------------------");
        for (uint32_t i = 0; i < n_ops; i++) {
            const mica_op_profile_t *o = &rows[i].op;
            double m = (double)o->measured_ns / (double)calls / 1e3, pr = o->predicted_ns / 1e3;
            fprintf(f, "| %-40.40s | %-34.34s | %5u | %11.2f | %11.2f | %10.2f |\n", o->label,
                    o->kernel, o->n_parts, m, pr, pr > 0 ? m / pr : 0.0);
        }
        free(rows);
    }
    return MICA_OK;
}

static bool parse_list(const char *s, int64_t lo, int64_t hi, int32_t *out, int *out_n)
{
    char buf[256];
    if (snprintf(buf, sizeof buf, "%s", s) >= (int)sizeof buf)
        return false;
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int64_t v;
        if (n == MAX_LIST || !mica_arg_int(tok, lo, hi, &v))
            return false;
        out[n++] = (int32_t)v;
    }
    if (!n || s[strlen(s) - 1] == ',' || s[0] == ',' || strstr(s, ",,"))
        return false;
    *out_n = n;
    return true;
}

int mica_cmd_bench(int argc, char **argv)
{
    const char *model = NULL;
    int32_t prompts[MAX_LIST] = {512}, gens[MAX_LIST] = {128}, threads[MAX_LIST];
    int n_prompts = 1, n_gens = 1, n_threads = 1, n_pg = 0;
    int32_t pg[MAX_LIST][2];
    int64_t reps = 3;
    bool json = false, limits_again = false, profile = false;
    int32_t cores;
    char cpu[MICA_LIMITS_CPU_MAX], arch[16];
    mica_limits_machine(cpu, arch, &cores);
    threads[0] = cores;
    const int32_t max_len = 1 << 20;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE()                                                                               \
    do {                                                                                           \
        if (!v)                                                                                    \
            return mica_cli_usage("bench", "%s needs a value", a);                                 \
        i++;                                                                                       \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "-p")) {
            NEED_VALUE();
            if (!parse_list(v, 0, max_len, prompts, &n_prompts))
                return mica_cli_usage("bench", "-p takes lengths in [0, %d], not '%s'", max_len, v);
        } else if (!strcmp(a, "-n")) {
            NEED_VALUE();
            if (!parse_list(v, 0, max_len, gens, &n_gens))
                return mica_cli_usage("bench", "-n takes lengths in [0, %d], not '%s'", max_len, v);
        } else if (!strcmp(a, "-pg")) {
            NEED_VALUE();
            int32_t two[MAX_LIST];
            int n2 = 0;
            if (!parse_list(v, 1, max_len, two, &n2) || n2 != 2)
                return mica_cli_usage("bench", "-pg takes PROMPT,GEN in [1, %d], not '%s'", max_len,
                                      v);
            if (n_pg == MAX_LIST)
                return mica_cli_usage("bench", "at most %d -pg tests", MAX_LIST);
            pg[n_pg][0] = two[0];
            pg[n_pg++][1] = two[1];
        } else if (!strcmp(a, "-t")) {
            NEED_VALUE();
            if (!parse_list(v, 1, 1024, threads, &n_threads))
                return mica_cli_usage("bench", "-t takes thread counts in [1, 1024], not '%s'", v);
        } else if (!strcmp(a, "-r")) {
            NEED_VALUE();
            if (!mica_arg_int(v, 1, MAX_REPS, &reps))
                return mica_cli_usage("bench", "-r takes a count in [1, %d], not '%s'", MAX_REPS,
                                      v);
        } else if (!strcmp(a, "-o")) {
            NEED_VALUE();
            if (strcmp(v, "md") && strcmp(v, "json"))
                return mica_cli_usage("bench", "-o takes md or json, not '%s'", v);
            json = !strcmp(v, "json");
        } else if (!strcmp(a, "--limits")) {
            limits_again = true;
        } else if (!strcmp(a, "--profile")) {
            profile = true;
        } else if (!strcmp(a, "-m")) {
            NEED_VALUE();
            if (model)
                return mica_cli_usage("bench", "more than one model given ('%s' and '%s')", model,
                                      v);
            model = v;
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("bench", "unknown option '%s'", a);
        } else if (model) {
            return mica_cli_usage("bench", "more than one model given ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
#undef NEED_VALUE
    }
    if (!model && !limits_again)
        return mica_cli_usage("bench", "no model given");

    bench_test_t tests[MAX_TESTS];
    int n_tests = 0;
    for (int ti = 0; ti < n_threads; ti++) {
        for (int k = 0; k < n_prompts; k++)
            if (prompts[k] > 0)
                tests[n_tests++] = (bench_test_t){prompts[k], 0, threads[ti]};
        for (int k = 0; k < n_gens; k++)
            if (gens[k] > 0)
                tests[n_tests++] = (bench_test_t){0, gens[k], threads[ti]};
        for (int k = 0; k < n_pg; k++)
            tests[n_tests++] = (bench_test_t){pg[k][0], pg[k][1], threads[ti]};
    }
    if (model && !n_tests)
        return mica_cli_usage("bench", "no test to run (every length is 0)");

    /* the model's figures (its header only), then the limits, measured
     * before the weights are in memory */
    mica_diag_t d = {0};
    model_info_t mi = {0};
    if (model && (mica_artifact_is_dir(model) ? artifact_info(model, &mi, &d)
                                              : gguf_info(model, &mi, &d)) != MICA_OK)
        return mica_cli_fail(model, &d);
    mica_limits_t limits;
    if (mica_limits_get(limits_again, stderr, &limits, &d) != MICA_OK)
        return mica_cli_fail(NULL, &d);
    if (limits_again) {
        char path[4096];
        mica_limits_print(&limits, model ? stderr : stdout);
        if (mica_limits_cache_path(path, sizeof path, NULL) == MICA_OK)
            fprintf(model ? stderr : stdout, "cached in       %s\n", path);
        if (!model)
            return MICA_EXIT_OK;
    }

    mica_cli_session_t s;
    mica_cli_open_t how = {NULL, false, MICA_CLI_BACKEND_AUTO, tests[0].n_threads};
    if (mica_cli_session_open(&s, model, &how, &d) != MICA_OK)
        return mica_cli_fail(model, &d);
    mi.backend = s.program || s.model ? "ref" : "cpu";

    bench_out_t out = {.path = model, .mi = &mi, .limits = &limits, .json = json};
    mica_status_t st = MICA_OK;
    for (int i = 0; i < n_tests && st == MICA_OK; i++) {
        bench_result_t r;
        if (s.session && tests[i].n_threads != s.threads) {
            /* a compiled session's pool is sized at open */
            mica_cli_session_close(&s);
            how.threads = tests[i].n_threads;
            if (mica_cli_session_open(&s, model, &how, &d) != MICA_OK)
                return mica_cli_fail(model, &d);
        }
        st = run_test(&s, &tests[i], (int32_t)reps, &r, &d);
        if (st == MICA_OK) {
            (json ? print_json : print_md)(&out, &tests[i], &r);
            out.n_printed++;
        }
        result_free(&r);
    }
    if (json && out.n_printed)
        printf("\n]\n");
    if (st == MICA_OK && profile) {
        if (!s.session)
            st = mica_diag_set(&d, MICA_ERR_UNSUPPORTED,
                               "--profile needs a compiled artifact (this runs on the ref path)");
        else
            st = print_profile(&s, &tests[n_tests - 1], json ? stderr : stdout, &d);
    }
    mica_cli_session_close(&s);
    return st == MICA_OK ? MICA_EXIT_OK : mica_cli_fail(model, &d);
}
