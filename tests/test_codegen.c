/* Compiled artifacts (generated kernels in model.so, run by the device
 * runtime) against independent oracles:
 *   - ../shared/golden exact logits: f32 compiles to NMSE <= 1e-6, w8a8 and
 *     w4a8 within 1.25x of llama.cpp's yardstick;
 *   - the same artifact's program on the ref backend: NMSE <= 1e-6 (the
 *     kernels add nothing but float rounding);
 *   - llama.cpp's greedy continuation (f32), decoding one token at a time;
 *   - decode steps against the prefill of the same tokens;
 *   - 1 and 2 threads, and two sessions in two threads, give the same
 *     greedy text;
 *   - the model object has no DT_NEEDED and imports only memcpy/memset.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mica.h"
#include "test_model.h"
#include "test_run.h"
#include "test_support.h"

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */

static float *read_f32(const char *path, size_t *out_n)
{
    size_t len = 0;
    char *bytes = mica_test_read_file(path, &len);
    cr_assert(bytes, "cannot read %s", path);
    *out_n = len / sizeof(float);
    return (float *)bytes;
}

/* llama.cpp's NMSE against exact for "MODEL.TYPE" (golden/yardstick.tsv). */
static double yardstick(const char *model_type)
{
    size_t len = 0;
    char *text = mica_test_read_file(mica_test_golden("yardstick.tsv"), &len);
    cr_assert(text, "cannot read yardstick.tsv");
    double v = 0.0;
    size_t key = strlen(model_type);
    for (char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, model_type, key) && line[key] == '\t')
            v = strtod(line + key + 1, NULL);
    free(text);
    cr_assert_gt(v, 0.0, "no yardstick for %s", model_type);
    return v;
}

/* Compiles golden/FILE for host with quant q into dir/name. */
static const char *compile(const char *dir, const char *file, const char *q, const char *name)
{
    const char *out = mica_test_path(dir, name);
    mica_test_result_t r = mica_test_mica(dir, "compile", mica_test_golden(file), "-t", "host", "-q",
                                          q, "-o", out, NULL);
    cr_assert_eq(r.status, 0, "mica compile %s -q %s: %s", file, q, r.err);
    mica_test_result_free(&r);
    return out;
}

/* Logits of ids through `mica run ART [--backend B]`. */
static float *run_logits(const char *dir, const char *art, const char *ids, const char *backend,
                         size_t *out_n)
{
    const char *dump = mica_test_path(dir, backend ? "ref.f32" : "cpu.f32");
    mica_test_result_t r =
        backend ? mica_test_mica(dir, "run", art, "--backend", backend, "--tokens", ids,
                                 "--dump-logits", dump, NULL)
                : mica_test_mica(dir, "run", art, "--tokens", ids, "--dump-logits", dump, NULL);
    cr_assert_eq(r.status, 0, "mica run %s: %s", art, r.err);
    mica_test_result_free(&r);
    return read_f32(dump, out_n);
}

static char *ids_text(const char *model)
{
    char name[64];
    snprintf(name, sizeof name, "%s.ids", model);
    size_t len = 0;
    char *text = mica_test_read_file(mica_test_golden(name), &len);
    cr_assert(text);
    text[strcspn(text, "\r\n")] = 0;
    return text;
}

/* ------------------------------------------------------------------------ */
/* logits                                                                    */

/* MODEL.TYPE compiled with quant q: against exact (bound: f32 1e-6, else
 * 1.25x the yardstick) and against the ref backend on the same artifact. */
static void check_logits(const char *model, const char *type, const char *q)
{
    char dir[] = "/tmp/mica-codegen-XXXXXX", file[96], mt[96], exact[128];
    mica_test_tmpdir_make(dir);
    snprintf(file, sizeof file, "%s.%s.gguf", model, type);
    snprintf(mt, sizeof mt, "%s.%s", model, type);
    snprintf(exact, sizeof exact, "%s.%s.exact.f32", model, type);
    const char *art = compile(dir, file, q, "art");
    char *ids = ids_text(model);
    size_t n_cpu = 0, n_ref = 0, n_exact = 0;
    float *cpu = run_logits(dir, art, ids, NULL, &n_cpu);
    float *ref = run_logits(dir, art, ids, "ref", &n_ref);
    float *want = read_f32(mica_test_golden(exact), &n_exact);
    cr_assert_eq(n_cpu, n_exact, "%s -q %s: %zu logits, exact has %zu", mt, q, n_cpu, n_exact);
    cr_assert_eq(n_ref, n_exact);
    double e_exact = mica_test_nmse(cpu, want, n_exact), e_ref = mica_test_nmse(cpu, ref, n_exact);
    double bound = !strcmp(q, "f32") ? 1e-6 : 1.25 * yardstick(mt);
    cr_log_info("%s -q %s: NMSE vs exact %.3e (bound %.3e), vs ref %.3e", mt, q, e_exact, bound,
                e_ref);
    cr_expect_leq(e_exact, bound, "%s -q %s: NMSE vs exact %.3e > %.3e", mt, q, e_exact, bound);
    cr_expect_leq(e_ref, 1e-6, "%s -q %s: NMSE vs the ref backend %.3e", mt, q, e_ref);
    free(cpu);
    free(ref);
    free(want);
    free(ids);
    mica_test_tmpdir_remove(dir);
}

Test(codegen, llama_f32) { check_logits("llama-tiny", "f32", "f32"); }
Test(codegen, llama_f16_as_f32) { check_logits("llama-tiny", "f16", "f32"); }
Test(codegen, llama_q8_0_w8a8) { check_logits("llama-tiny", "q8_0", "w8a8"); }
Test(codegen, llama_q4_0_w4a8) { check_logits("llama-tiny", "q4_0", "w4a8"); }
Test(codegen, llama_q4_1_w4a8) { check_logits("llama-tiny", "q4_1", "w4a8"); }
Test(codegen, qwen2_f32) { check_logits("qwen2-tiny", "f32", "f32"); }
Test(codegen, qwen2_q8_0_w8a8) { check_logits("qwen2-tiny", "q8_0", "w8a8"); }
Test(codegen, qwen2_q4_0_w4a8) { check_logits("qwen2-tiny", "q4_0", "w4a8"); }
Test(codegen, qwen2_q4_1_w4a8) { check_logits("qwen2-tiny", "q4_1", "w4a8"); }

/* Every embedding block type of the zoo through the generated embedding
 * kernels (and K-quant matmul weights requantized to int8): the compiled
 * artifact agrees with its program on the ref backend. */
Test(codegen, zoo_every_type_matches_ref)
{
    static const char *const types[] = {"bf16", "q5_0", "q5_1", "q2_k", "q3_k",
                                        "q4_k", "q5_k", "q6_k", "q4_k_m"};
    char dir[] = "/tmp/mica-codegen-XXXXXX";
    mica_test_tmpdir_make(dir);
    char *ids = ids_text("zoo/zoo");
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        char file[64];
        snprintf(file, sizeof file, "zoo/zoo.%s.gguf", types[t]);
        const char *art = compile(dir, file, "w8a8", types[t]);
        size_t n_cpu = 0, n_ref = 0;
        float *cpu = run_logits(dir, art, ids, NULL, &n_cpu);
        float *ref = run_logits(dir, art, ids, "ref", &n_ref);
        cr_assert_eq(n_cpu, n_ref);
        double e = mica_test_nmse(cpu, ref, n_cpu);
        cr_log_info("zoo.%s w8a8: NMSE vs ref %.3e", types[t], e);
        cr_expect_leq(e, 1e-6, "zoo.%s: NMSE vs the ref backend %.3e", types[t], e);
        free(cpu);
        free(ref);
    }
    free(ids);
    mica_test_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------ */
/* the C API: decode, greedy, threads                                        */

static mica_model_t *open_model(const char *art)
{
    mica_model_t *m = NULL;
    mica_error_t err;
    cr_assert_eq(mica_model_open(art, &m, &err), 0, "%s", err.message);
    return m;
}

static mica_session_t *new_session(mica_model_t *m, int32_t threads)
{
    mica_session_params_t p = mica_session_params_default();
    p.n_threads = threads;
    p.temperature = 0.0f;
    mica_session_t *s = NULL;
    mica_error_t err;
    cr_assert_eq(mica_session_create(m, &p, &s, &err), 0, "%s", err.message);
    return s;
}

static int32_t argmax(const float *v, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (v[i] > v[best])
            best = i;
    return best;
}

/* The f32 compile's greedy continuation, one decode step per token, equals
 * llama.cpp's; and every decode step's logits equal the prefill's of the
 * same token sequence. */
static void check_greedy(const char *model)
{
    char dir[] = "/tmp/mica-codegen-XXXXXX", file[96], greedy[96], ids_name[96];
    mica_test_tmpdir_make(dir);
    snprintf(file, sizeof file, "%s.f32.gguf", model);
    snprintf(greedy, sizeof greedy, "%s.f32.greedy.txt", model);
    snprintf(ids_name, sizeof ids_name, "%s.ids", model);
    const char *art = compile(dir, file, "f32", "art");
    int32_t ids[64], want[64];
    size_t n = mica_test_read_ids(ids_name, ids, 64);
    size_t n_want = mica_test_read_ids(greedy, want, 64);
    cr_assert(n > 0 && n_want > 0);

    mica_model_t *m = open_model(art);
    mica_session_t *s = new_session(m, 2);
    const int32_t nv = mica_model_n_vocab(m);
    mica_error_t err;
    cr_assert_eq(mica_session_eval(s, ids, n, NULL, &err), 0, "%s", err.message);
    int32_t seq[128];
    memcpy(seq, ids, n * sizeof *seq);
    size_t len = n;
    for (size_t i = 0; i < n_want; i++) {
        int32_t tok = argmax(mica_session_logits(s), nv);
        cr_expect_eq(tok, want[i], "%s: greedy token %zu is %d, llama.cpp's is %d", model, i, tok,
                     want[i]);
        seq[len++] = want[i];
        cr_assert_eq(mica_session_eval(s, &want[i], 1, NULL, &err), 0, "%s", err.message);
    }
    /* the decode steps' last logits against one prefill of everything */
    float *dec = malloc((size_t)nv * sizeof *dec);
    memcpy(dec, mica_session_logits(s), (size_t)nv * sizeof *dec);
    mica_session_reset(s);
    float *all = malloc(len * (size_t)nv * sizeof *all);
    cr_assert_eq(mica_session_eval(s, seq, len, all, &err), 0, "%s", err.message);
    double e = mica_test_nmse(dec, all + (len - 1) * (size_t)nv, (size_t)nv);
    cr_expect_leq(e, 1e-10, "%s: decode vs prefill logits NMSE %.3e", model, e);
    mica_session_release(s);
    mica_model_release(m);

    /* prefill chunks of 3: the chunks before the last skip the LM head, and
     * the last row's logits still equal those of the every-row run */
    const char *small = mica_test_path(dir, "chunk3");
    mica_test_result_t r = mica_test_mica(dir, "compile", mica_test_golden(file), "-t", "host",
                                          "-q", "f32", "--chunk", "3", "-o", small, NULL);
    cr_assert_eq(r.status, 0, "mica compile --chunk 3: %s", r.err);
    mica_test_result_free(&r);
    cr_assert_gt(len, 6);
    m = open_model(small);
    s = new_session(m, 2);
    cr_assert_eq(mica_session_eval(s, seq, len, NULL, &err), 0, "%s", err.message);
    e = mica_test_nmse(mica_session_logits(s), all + (len - 1) * (size_t)nv, (size_t)nv);
    cr_expect_leq(e, 1e-10, "%s: last logits of %zu tokens in chunks of 3, NMSE %.3e", model,
                  len, e);
    free(dec);
    free(all);
    mica_session_release(s);
    mica_model_release(m);
    mica_test_tmpdir_remove(dir);
}

Test(codegen, llama_greedy_and_decode) { check_greedy("llama-tiny"); }
Test(codegen, qwen2_greedy_and_decode) { check_greedy("qwen2-tiny"); }

typedef struct gen_job {
    mica_model_t *model;
    int32_t threads;
    int32_t out[48];
    int32_t n_out;
    int status;
} gen_job_t;

static int collect(const char *piece, size_t len, int32_t token, void *user)
{
    (void)piece;
    (void)len;
    gen_job_t *j = user;
    if (token >= 0 && j->n_out < 48)
        j->out[j->n_out++] = token;
    return 0;
}

static void *generate(void *arg)
{
    gen_job_t *j = arg;
    mica_session_params_t p = mica_session_params_default();
    p.n_threads = j->threads;
    p.temperature = 0.0f;
    mica_session_t *s = NULL;
    mica_error_t err;
    j->status = mica_session_create(j->model, &p, &s, &err);
    static const char prompt[] = "The capital of France is";
    if (j->status == 0)
        j->status = mica_session_append_text(s, prompt, sizeof prompt - 1,
                                             MICA_TOKENIZE_ADD_SPECIAL, &err);
    if (j->status == 0)
        j->status = mica_session_generate(s, 32, collect, j, NULL, &err);
    mica_session_release(s);
    return NULL;
}

/* One artifact, greedy: 1 thread, 2 threads, and two sessions of 2 threads
 * each running at once in two threads of this process, all the same. */
static void check_threads(const char *art)
{
    mica_model_t *m = open_model(art);
    gen_job_t one = {m, 1, {0}, 0, 0}, two = {m, 2, {0}, 0, 0};
    generate(&one);
    generate(&two);
    cr_assert_eq(one.status, 0);
    cr_assert_eq(two.status, 0);
    cr_assert_gt(one.n_out, 0, "nothing generated");
    cr_assert_eq(one.n_out, two.n_out, "1 thread gave %d tokens, 2 gave %d", one.n_out, two.n_out);
    cr_assert_arr_eq(one.out, two.out, (size_t)one.n_out * sizeof(int32_t),
                     "1 and 2 threads generate different tokens");
    gen_job_t a = {m, 2, {0}, 0, 0}, b = {m, 2, {0}, 0, 0};
    pthread_t ta, tb;
    cr_assert_eq(pthread_create(&ta, NULL, generate, &a), 0);
    cr_assert_eq(pthread_create(&tb, NULL, generate, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    cr_assert_eq(a.status, 0);
    cr_assert_eq(b.status, 0);
    cr_assert_eq(a.n_out, one.n_out);
    cr_assert_eq(b.n_out, one.n_out);
    cr_assert_arr_eq(a.out, one.out, (size_t)one.n_out * sizeof(int32_t),
                     "a concurrent session generates other tokens");
    cr_assert_arr_eq(b.out, one.out, (size_t)one.n_out * sizeof(int32_t),
                     "a concurrent session generates other tokens");
    mica_model_release(m);
}

Test(codegen, threads_and_sessions_tiny)
{
    char dir[] = "/tmp/mica-codegen-XXXXXX";
    mica_test_tmpdir_make(dir);
    check_threads(compile(dir, "qwen2-tiny.q4_0.gguf", "w4a8", "art"));
    mica_test_tmpdir_remove(dir);
}

Test(codegen, threads_and_sessions_smollm2, .timeout = 300)
{
    const char *model = getenv("MICA_DEFAULT_MODEL");
    cr_assert(model && *model, "MICA_DEFAULT_MODEL is not set: run tools/fetch-model.sh");
    char dir[] = "/tmp/mica-codegen-XXXXXX";
    mica_test_tmpdir_make(dir);
    const char *art = mica_test_path(dir, "smol");
    mica_test_result_t r =
        mica_test_mica(dir, "compile", model, "-t", "host", "-q", "w4a8", "-c", "512", "-o", art,
                       NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    mica_test_result_free(&r);
    check_threads(art);
    mica_test_tmpdir_remove(dir);
}

/* ------------------------------------------------------------------------ */
/* the model object                                                          */

/* readelf's output for the object. */
static char *readelf(const char *flags, const char *so)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "readelf -W %s '%s'", flags, so);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run readelf");
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    cr_assert_eq(pclose(p), 0, "readelf %s failed", flags);
    return buf;
}

Test(codegen, model_object_needs_nothing)
{
    char dir[] = "/tmp/mica-codegen-XXXXXX";
    mica_test_tmpdir_make(dir);
    const char *art = compile(dir, "llama-tiny.q4_0.gguf", "w4a8", "art");
    char so[512];
    snprintf(so, sizeof so, "%s/model.so", art);
    char *dyn = readelf("-d", so);
    cr_expect_null(strstr(dyn, "(NEEDED)"), "model.so has DT_NEEDED entries:\n%s", dyn);
    char *syms = readelf("--dyn-syms", so);
    int exported = 0;
    for (char *line = strtok(syms, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, " UND ") && !strstr(line, " LOCAL ")) {
            char *name = strrchr(line, ' ');
            cr_expect(name && (!strcmp(name + 1, "memcpy") || !strcmp(name + 1, "memset")),
                      "model.so imports %s", name ? name + 1 : line);
        } else if (strstr(line, " GLOBAL ") && !strstr(line, " UND ")) {
            cr_expect(strstr(line, " mica_model_entry"), "model.so exports more: %s", line);
            exported++;
        }
    }
    cr_expect_eq(exported, 1, "model.so exports %d symbols", exported);
    free(dyn);
    free(syms);
    mica_test_tmpdir_remove(dir);
}
