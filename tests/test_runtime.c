/* The device stack: its layering (read from the sources' #include lines),
 * the metadata-only GGUF reader, the thread pool, the executor and the
 * artifact loader (against model objects built here from small C
 * fixtures that implement the ABI over a known function of the tokens). */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_artifact.h"
#include "test_run.h"
#include "test_support.h"

#include "device.h"
#include "exec.h"
#include "gguf_meta.h"
#include "pool.h"
#include "vocab.h"

#define SOURCE_DIR MICA_TEST_DATA_DIR "/../.."

/* ------------------------------------------------------------------------ */
/* layering                                                                  */

static bool file_exists(const char *dir, const char *name)
{
    char path[1024];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s/%s", SOURCE_DIR, dir, name);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static bool in_list(const char *name, const char *const *list)
{
    for (; *list; list++)
        if (!strcmp(name, *list))
            return true;
    return false;
}

/* What backends/cpu may include in angle brackets: the C library, POSIX
 * and pthreads, dlopen. */
static const char *const LIBC_HEADERS[] = {
    "assert.h", "dlfcn.h",     "errno.h",   "inttypes.h", "limits.h", "pthread.h",
    "sched.h",  "stdatomic.h", "stdbool.h", "stddef.h",   "stdint.h", "stdio.h",
    "stdlib.h", "string.h",    "time.h",    "unistd.h",   NULL,
};

/* Files of the build tree that runtime/ includes (generated from codegen/). */
static const char *const RUNTIME_GENERATED[] = {"target_table.inc", NULL};

/* Checks every #include of every .c/.h file in dir: quoted ones must name a
 * file of one of the allowed folders (or a generated file), angled ones a
 * header of no project folder (and of the libc list when given). Returns
 * how many files it read. */
static int check_includes(const char *dir, const char *const *allowed, const char *const *generated,
                          const char *const *angled_ok)
{
    static const char *const project_dirs[] = {"ir",    "passes",  "codegen",      "backends/ref",
                                               "tools", "runtime", "backends/cpu", NULL};
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", SOURCE_DIR, dir);
    DIR *dp = opendir(path);
    cr_assert_not_null(dp, "cannot list %s", path);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(dp))) {
        size_t n = strlen(e->d_name);
        if (n < 3 || (strcmp(e->d_name + n - 2, ".c") && strcmp(e->d_name + n - 2, ".h")))
            continue;
        snprintf(path, sizeof path, "%s/%s/%s", SOURCE_DIR, dir, e->d_name);
        FILE *f = fopen(path, "r");
        cr_assert_not_null(f, "%s", path);
        files++;
        char line[512];
        int lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            const char *p = line;
            while (*p == ' ' || *p == '\t')
                p++;
            if (strncmp(p, "#include", 8) != 0)
                continue;
            p += 8;
            while (*p == ' ')
                p++;
            char close = *p == '"' ? '"' : *p == '<' ? '>' : 0;
            cr_assert(close, "%s:%d: unreadable #include", path, lineno);
            const char *end = strchr(p + 1, close);
            cr_assert_not_null(end, "%s:%d: unterminated #include", path, lineno);
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)(end - p - 1), p + 1);
            if (close == '"') {
                bool ok = in_list(name, generated);
                for (const char *const *a = allowed; *a && !ok; a++)
                    ok = file_exists(*a, name);
                cr_expect(ok, "%s/%s:%d includes \"%s\", which is not in its own layer", dir,
                          e->d_name, lineno, name);
            } else {
                for (const char *const *a = project_dirs; *a; a++)
                    cr_expect(!file_exists(*a, name), "%s/%s:%d includes <%s> of %s/", dir,
                              e->d_name, lineno, name, *a);
                if (angled_ok)
                    cr_expect(in_list(name, angled_ok), "%s/%s:%d includes <%s>, not libc", dir,
                              e->d_name, lineno, name);
            }
        }
        fclose(f);
    }
    closedir(dp);
    return files;
}

Test(layering, runtime_includes_only_itself_and_the_cpu_backend)
{
    static const char *const allowed[] = {"runtime", "backends/cpu", NULL};
    cr_expect_gt(check_includes("runtime", allowed, RUNTIME_GENERATED, NULL), 10);
}

Test(layering, cpu_backend_includes_only_libc_pthreads_and_itself)
{
    static const char *const allowed[] = {"backends/cpu", NULL};
    static const char *const none[] = {NULL};
    cr_expect_gt(check_includes("backends/cpu", allowed, none, LIBC_HEADERS), 0);
}

/* ------------------------------------------------------------------------ */
/* metadata-only GGUF reader                                                 */

/* The golden model's tokenizer through the device's reader: every cut of
 * the metadata section is refused as truncated, the whole of it gives the
 * vocabulary the file declares. */
Test(gguf_meta, cuts_are_refused_and_the_vocabulary_reads)
{
    size_t len = 0;
    char *bytes = mica_test_read_file(mica_test_golden("llama-tiny.f32.gguf"), &len);
    cr_assert_not_null(bytes);
    mica_gguf_meta_t *m = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_meta_parse((const uint8_t *)bytes, len, &m, &d), MICA_OK, "%s", d.msg);
    uint64_t end = mica_gguf_meta_end(m);
    cr_assert_gt(mica_gguf_meta_tensor_count(m), 0);
    /* the token list, counted independently of the vocabulary code */
    const mica_gguf_kv_t *tokens = mica_gguf_meta_find(m, "tokenizer.ggml.tokens");
    cr_assert_not_null(tokens);
    cr_expect_eq(tokens->count, 32000);
    mica_vocab_t v;
    cr_assert_eq(mica_vocab_from_gguf_meta(m, &v, &d), MICA_OK, "%s", d.msg);
    cr_expect_eq(v.desc.n_tokens, 32000);
    cr_expect_eq(v.desc.kind, MICA_VOCAB_SPM);
    mica_gguf_str_t t5;
    cr_assert(mica_gguf_array_str(tokens, 5, &t5));
    cr_expect_eq(v.desc.tokens[5].len, t5.len);
    cr_expect_eq(memcmp(v.desc.tokens[5].ptr, t5.ptr, t5.len), 0);
    mica_vocab_deinit(&v);
    mica_gguf_meta_release(m);

    /* a cut anywhere inside the metadata: refused, one line, nothing kept
     * (the sanitizer build checks nothing leaks) */
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 7);
    for (int i = 0; i < 300; i++) {
        uint64_t cut = (uint64_t)mica_test_rng_range(&rng, 0, (int64_t)end - 1);
        mica_diag_t dc = {0};
        mica_gguf_meta_t *mc = (mica_gguf_meta_t *)&mc;
        mica_status_t s = mica_gguf_meta_parse((const uint8_t *)bytes, cut, &mc, &dc);
        cr_assert_neq(s, MICA_OK, "cut at %llu parsed", (unsigned long long)cut);
        cr_expect_null(mc);
        cr_expect(strstr(dc.msg, "truncated") != NULL, "cut at %llu: %s", (unsigned long long)cut,
                  dc.msg);
        cr_expect_null(strchr(dc.msg, '\n'));
    }
    free(bytes);
}

/* ------------------------------------------------------------------------ */
/* thread pool                                                               */

typedef struct placement {
    pthread_t who[64];
    _Atomic int runs[64];
} placement_t;

static void record_part(void *ctx, uint32_t part)
{
    placement_t *pl = ctx;
    pl->who[part] = pthread_self();
    atomic_fetch_add(&pl->runs[part], 1);
}

/* Part p on thread p % n: parts p and p + n on the same thread, the first n
 * parts on n different threads, part 0 on the caller; every part once. */
Test(pool, part_p_runs_on_thread_p_mod_n)
{
    for (uint32_t n = 1; n <= 4; n++) {
        mica_cpu_pool_t *pool = NULL;
        cr_assert_eq(mica_cpu_pool_create(n, &pool), 0);
        cr_expect_eq(mica_cpu_pool_threads(pool), n);
        for (uint32_t parts = 1; parts <= 13; parts++) {
            placement_t pl;
            memset(&pl, 0, sizeof pl);
            mica_cpu_pool_parallel_for(pool, parts, record_part, &pl);
            for (uint32_t p = 0; p < parts; p++)
                cr_expect_eq(atomic_load(&pl.runs[p]), 1, "n %u parts %u: part %u ran %d times", n,
                             parts, p, atomic_load(&pl.runs[p]));
            cr_expect(pthread_equal(pl.who[0], pthread_self()), "part 0 is not the caller's");
            for (uint32_t p = 0; p + n < parts; p++)
                cr_expect(pthread_equal(pl.who[p], pl.who[p + n]), "n %u: parts %u and %u differ",
                          n, p, p + n);
            for (uint32_t a = 0; a < n && a < parts; a++)
                for (uint32_t b = a + 1; b < n && b < parts; b++)
                    cr_expect(!pthread_equal(pl.who[a], pl.who[b]), "n %u: parts %u and %u share",
                              n, a, b);
        }
        mica_cpu_pool_release(pool);
    }
}

typedef struct sum_ctx {
    uint64_t *slots; /* one per part: no two parts write the same memory */
    uint64_t round;
} sum_ctx_t;

static void add_part(void *ctx, uint32_t part)
{
    sum_ctx_t *c = ctx;
    c->slots[part] += c->round * (part + 1);
}

/* Many calls back to back and some after pauses longer than the spin (the
 * workers block then): every write of every call is seen, none twice. */
Test(pool, every_call_completes_through_spin_and_sleep)
{
    mica_cpu_pool_t *pool = NULL;
    cr_assert_eq(mica_cpu_pool_create(3, &pool), 0);
    enum { PARTS = 7, ROUNDS = 4000 };
    uint64_t slots[PARTS] = {0};
    sum_ctx_t c = {slots, 0};
    for (uint64_t r = 1; r <= ROUNDS; r++) {
        c.round = r;
        mica_cpu_pool_parallel_for(pool, PARTS, add_part, &c);
        if (r % 500 == 0)
            usleep(3000);
    }
    uint64_t tri = (uint64_t)ROUNDS * (ROUNDS + 1) / 2;
    for (uint32_t p = 0; p < PARTS; p++)
        cr_expect_eq(slots[p], tri * (p + 1), "part %u: %llu", p, (unsigned long long)slots[p]);
    mica_cpu_pool_release(pool);
}

Test(pool, bad_counts_are_refused_and_release_takes_null)
{
    mica_cpu_pool_t *pool = (mica_cpu_pool_t *)&pool;
    cr_expect_eq(mica_cpu_pool_create(0, &pool), EINVAL);
    cr_expect_null(pool);
    cr_expect_eq(mica_cpu_pool_create(MICA_CPU_POOL_MAX_THREADS + 1, &pool), EINVAL);
    mica_cpu_pool_release(NULL);
    /* a pool created and released without a call: workers stop cleanly */
    cr_assert_eq(mica_cpu_pool_create(4, &pool), 0);
    mica_cpu_pool_release(pool);
}

/* ------------------------------------------------------------------------ */
/* the executor, over the fixture model compiled into this test              */

#define FX_IN_PROCESS 1
#define FX_VOCAB 1000
#include "../data/runtime/fixture_model.c"

#define HIT 2.0f

typedef struct fx_bound {
    mica_cpu_pool_t *pool;
    uint8_t *arena, *state, *weights;
    uint8_t *states[1];
    mica_cpu_exec_t x;
} fx_bound_t;

static void fx_bind(fx_bound_t *b, uint32_t threads)
{
    cr_assert_eq(mica_cpu_pool_create(threads, &b->pool), 0);
    b->arena = aligned_alloc(64, (fx_model.arena_bytes + 63) / 64 * 64);
    b->state = aligned_alloc(64, FX_CONTEXT * 4);
    b->weights = aligned_alloc(64, 64);
    cr_assert(b->arena && b->state && b->weights);
    memset(b->state, 0, FX_CONTEXT * 4);
    memset(b->weights, 0, 64);
    const float hit = HIT;
    memcpy(b->weights, &hit, sizeof hit);
    b->states[0] = b->state;
    mica_cpu_exec_init(&b->x, &fx_model, b->weights, b->arena, b->states, b->pool);
}

static void fx_unbind(fx_bound_t *b)
{
    mica_cpu_pool_release(b->pool);
    free(b->arena);
    free(b->state);
    free(b->weights);
}

/* Row pos of the oracle into row[FX_VOCAB]. */
static void oracle_row(const int32_t *t, int32_t pos, float *row)
{
    for (int32_t v = 0; v < FX_VOCAB; v++)
        row[v] = mica_test_fx_logit(t, pos, v, FX_VOCAB, HIT);
}

/* Every row of a prompt of each length 1 .. 13 (below, at and above the
 * chunk, several chunks), on 1 to 3 threads, equals the oracle exactly; so
 * does the last row alone. */
Test(exec, prefill_rows_equal_the_oracle_for_any_length_and_threads)
{
    mica_test_rng_t rng;
    mica_test_rng_seed(&rng, 11);
    static float rows[13 * FX_VOCAB], want[FX_VOCAB];
    for (uint32_t threads = 1; threads <= 3; threads++) {
        fx_bound_t b;
        fx_bind(&b, threads);
        for (int32_t n = 1; n <= 13; n++) {
            int32_t t[13];
            for (int32_t i = 0; i < n; i++)
                t[i] = (int32_t)mica_test_rng_range(&rng, 0, FX_VOCAB - 1);
            mica_cpu_exec_reset(&b.x);
            const float *last = NULL;
            cr_assert_eq(mica_cpu_exec_run(&b.x, t, n, rows, &last), MICA_CPU_EXEC_OK);
            cr_expect_eq(b.x.n_past, n);
            for (int32_t p = 0; p < n; p++) {
                oracle_row(t, p, want);
                cr_assert_eq(memcmp(rows + (size_t)p * FX_VOCAB, want, sizeof want), 0,
                             "threads %u n %d row %d", threads, n, p);
            }
            cr_assert_eq(memcmp(last, want, sizeof want), 0);
            /* the same prompt without rows: only the last row, the same values */
            mica_cpu_exec_reset(&b.x);
            cr_assert_eq(mica_cpu_exec_run(&b.x, t, n, NULL, &last), MICA_CPU_EXEC_OK);
            cr_assert_eq(memcmp(last, want, sizeof want), 0, "threads %u n %d", threads, n);
        }
        fx_unbind(&b);
    }
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

/* A prompt, then greedy decode steps through the decode graph: each token
 * is the oracle's choice after everything before it. */
Test(exec, greedy_decode_follows_the_oracle)
{
    fx_bound_t b;
    fx_bind(&b, 2);
    int32_t seq[FX_CONTEXT] = {17, 4, 999, 0, 256, 3, 88};
    int32_t n = 7;
    const float *last = NULL;
    cr_assert_eq(mica_cpu_exec_run(&b.x, seq, n, NULL, &last), MICA_CPU_EXEC_OK);
    while (n < FX_CONTEXT) {
        int32_t next = argmax(last, FX_VOCAB);
        cr_assert_eq(next, mica_test_fx_next(seq, n, FX_VOCAB), "step %d", n);
        seq[n] = next;
        cr_assert_eq(mica_cpu_exec_run(&b.x, &seq[n], 1, NULL, &last), MICA_CPU_EXEC_OK);
        n++;
    }
    cr_expect_eq(b.x.n_past, FX_CONTEXT);
    /* the context is full: one more token is refused, nothing changes */
    cr_expect_eq(mica_cpu_exec_run(&b.x, seq, 1, NULL, &last), MICA_CPU_EXEC_BAD_ARGS);
    cr_expect_eq(b.x.n_past, FX_CONTEXT);
    fx_unbind(&b);
}

Test(exec, bad_arguments_and_refusals_leave_the_cache_as_it_was)
{
    fx_bound_t b;
    fx_bind(&b, 2);
    int32_t t[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cr_assert_eq(mica_cpu_exec_run(&b.x, t, 3, NULL, NULL), MICA_CPU_EXEC_OK);
    int32_t bad[2] = {5, FX_VOCAB};
    cr_expect_eq(mica_cpu_exec_run(&b.x, bad, 2, NULL, NULL), MICA_CPU_EXEC_BAD_ARGS);
    bad[1] = -1;
    cr_expect_eq(mica_cpu_exec_run(&b.x, bad, 2, NULL, NULL), MICA_CPU_EXEC_BAD_ARGS);
    cr_expect_eq(mica_cpu_exec_run(&b.x, t, 0, NULL, NULL), MICA_CPU_EXEC_BAD_ARGS);
    cr_expect_eq(b.x.n_past, 3);
    fx_refuse = 1;
    cr_expect_eq(mica_cpu_exec_run(&b.x, t, 8, NULL, NULL), MICA_CPU_EXEC_REFUSED);
    fx_refuse = 0;
    cr_expect_eq(b.x.n_past, 3);
    fx_unbind(&b);
}

/* With a profile, each op's time accumulates in the caller's arrays and
 * each graph call is counted: 12 tokens are 3 prefill calls, then 2
 * decode calls. */
Test(exec, profiling_accumulates_per_op_nanoseconds)
{
    fx_bound_t b;
    fx_bind(&b, 2);
    uint64_t pre[2] = {0}, dec[2] = {0};
    mica_cpu_profile_t prof = {.ns = {pre, dec}};
    mica_cpu_exec_set_profile(&b.x, &prof);
    int32_t t[12] = {0};
    cr_assert_eq(mica_cpu_exec_run(&b.x, t, 12, NULL, NULL), MICA_CPU_EXEC_OK);
    cr_assert_eq(mica_cpu_exec_run(&b.x, t, 1, NULL, NULL), MICA_CPU_EXEC_OK);
    cr_assert_eq(mica_cpu_exec_run(&b.x, t, 1, NULL, NULL), MICA_CPU_EXEC_OK);
    cr_expect_eq(prof.calls[0], 3);
    cr_expect_eq(prof.calls[1], 2);
    cr_expect_gt(pre[1], 0);
    cr_expect_gt(dec[1], 0);
    mica_cpu_exec_set_profile(&b.x, NULL);
    uint64_t before = pre[1];
    cr_assert_eq(mica_cpu_exec_run(&b.x, t, 2, NULL, NULL), MICA_CPU_EXEC_OK);
    cr_expect_eq(pre[1], before, "profiling off still wrote");
    fx_unbind(&b);
}

/* ------------------------------------------------------------------------ */
/* the loader                                                                */

/* A good fixture artifact opens: the entry table, the weights, the
 * tokenizer and the manifest's numbers are there; two opens coexist. */
Test(loader, a_good_artifact_opens)
{
    char dir[] = "/tmp/mica-loader-XXXXXX";
    mica_test_tmpdir_make(dir);
    mica_test_fixture_artifact(dir, NULL);
    mica_device_model_t *m = NULL, *m2 = NULL;
    mica_diag_t d = {0};
    cr_assert_eq(mica_device_model_open(dir, &m, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(mica_device_model_open(dir, &m2, &d), MICA_OK, "%s", d.msg);
    cr_expect_eq(m->n_vocab, MICA_TEST_FX_VOCAB);
    cr_expect_eq(m->context, MICA_TEST_FX_CONTEXT);
    cr_expect_eq(m->chunk, MICA_TEST_FX_CHUNK);
    cr_expect_eq(m->abi->abi_version, MICA_ABI_VERSION);
    cr_expect_eq(m->weights.len, 64);
    float hit;
    memcpy(&hit, m->weights.ptr, sizeof hit);
    cr_expect_eq(hit, MICA_TEST_FX_HIT);
    cr_expect_eq(mica_tokenizer_n_tokens(m->tokenizer), 32000);
    cr_expect_str_eq(m->target, "fixture");
    cr_expect_gt(mica_test_mappings_of(dir), 0);
    /* the session memory: arena and state aligned, the state zero */
    mica_device_state_t st;
    cr_assert_eq(mica_device_state_init(&st, m, &d), MICA_OK, "%s", d.msg);
    cr_expect_eq((uintptr_t)st.arena % 64, 0);
    cr_expect_eq((uintptr_t)st.states[0] % 64, 0);
    for (int i = 0; i < MICA_TEST_FX_CONTEXT * 4; i++)
        cr_assert_eq(st.states[0][i], 0);
    memset(st.states[0], 0xab, MICA_TEST_FX_CONTEXT * 4);
    mica_device_state_clear(&st);
    for (int i = 0; i < MICA_TEST_FX_CONTEXT * 4; i++)
        cr_assert_eq(st.states[0][i], 0, "clear left byte %d", i);
    mica_device_state_deinit(&st);
    mica_device_model_release(m2);
    mica_device_model_release(m);
    cr_expect_eq(mica_test_mappings_of(dir), 0, "something of %s is still mapped", dir);
    mica_test_tmpdir_remove(dir);
}

/* One broken artifact: refused with the status, a message holding each of
 * the needles, one line, and nothing of it mapped or open afterwards. */
typedef struct refusal {
    const char *what;
    mica_test_fixture_t fx;
    void (*damage)(const char *dir); /* after writing, or NULL */
    mica_status_t status;
    const char *needle[2];
} refusal_t;

static void flip_weights_byte(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 9, SEEK_SET);
    fputc(0x5a, f);
    fclose(f);
}

static void truncate_weights(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    cr_assert_eq(truncate(path, 40), 0);
}

static void remove_tokenizer(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.gguf", dir);
    cr_assert_eq(unlink(path), 0);
}

static void check_refusal(const refusal_t *r)
{
    char dir[] = "/tmp/mica-loader-XXXXXX";
    mica_test_tmpdir_make(dir);
    mica_test_fixture_artifact(dir, &r->fx);
    if (r->damage)
        r->damage(dir);
    int fds = mica_test_open_fds();
    mica_device_model_t *m = (mica_device_model_t *)&m;
    mica_diag_t d = {0};
    mica_status_t s = mica_device_model_open(dir, &m, &d);
    cr_expect_eq(s, r->status, "%s: status %d (want %d): %s", r->what, s, r->status, d.msg);
    cr_expect_null(m, "%s: a model on failure", r->what);
    for (int i = 0; i < 2 && r->needle[i]; i++)
        cr_expect(strstr(d.msg, r->needle[i]) != NULL, "%s: '%s' lacks '%s'", r->what, d.msg,
                  r->needle[i]);
    cr_expect_null(strchr(d.msg, '\n'), "%s: more than one line", r->what);
    cr_expect_eq(mica_test_mappings_of(dir), 0, "%s: still mapped", r->what);
    cr_expect_eq(mica_test_open_fds(), fds, "%s: a file left open", r->what);
    /* the command says the same in one line and exits 1 */
    mica_test_result_t res =
        mica_test_mica(dir, "run", dir, "--backend", "cpu", "-p", "hi", "-n", "1", NULL);
    cr_expect_eq(res.status, 1, "%s: mica run exits %d", r->what, res.status);
    mica_test_expect_one_line(&res, r->needle[0]);
    if (r->needle[1])
        cr_expect(strstr(res.err, r->needle[1]) != NULL, "%s: %s", r->what, res.err);
    mica_test_result_free(&res);
    mica_test_tmpdir_remove(dir);
}

Test(loader, broken_artifacts_are_refused_in_one_line_with_nothing_mapped)
{
#if defined(__x86_64__)
    const char *lacking = "i8mm"; /* an aarch64 feature: no x86 CPU has it */
    const char *foreign = "aarch64";
#else
    const char *lacking = "avx2";
    const char *foreign = "x86_64";
#endif
    char needs[64], built[64];
    snprintf(needs, sizeof needs, "which needs %s; this CPU lacks it", lacking);
    snprintf(built, sizeof built, "(%s); this CPU is", foreign);
    const refusal_t cases[] = {
        {"abi version", {.cflags = "-DFX_ABI_VERSION=2"}, NULL, MICA_ERR_UNSUPPORTED,
         {"model.so", "ABI version 2"}},
        {"entry symbol", {.cflags = "-DFX_ENTRY=some_other_name"}, NULL, MICA_ERR_INVALID,
         {"model.so", "no entry table"}},
        {"short entry table", {.cflags = "-DFX_STRUCT_SIZE=16"}, NULL, MICA_ERR_UNSUPPORTED,
         {"model.so", "entry table has 16 bytes"}},
        {"weights of another compile", {.cflags = "-DFX_WEIGHTS_SUM_XOR=1"}, NULL,
         MICA_ERR_INVALID, {"model.so", "another weights.bin"}},
        {"edited weights", {0}, flip_weights_byte, MICA_ERR_INVALID,
         {"weights.bin", "checksum"}},
        {"truncated weights", {0}, truncate_weights, MICA_ERR_INVALID,
         {"weights.bin has 40 bytes", "64"}},
        {"missing file", {0}, remove_tokenizer, MICA_ERR_IO, {"tokenizer.gguf", "No such file"}},
        {"format version", {.format = "mica-artifact 2"}, NULL, MICA_ERR_UNSUPPORTED,
         {"manifest", "format version 2"}},
        {"not an artifact", {.format = "hello"}, NULL, MICA_ERR_INVALID,
         {"not a mica artifact", NULL}},
        {"feature", {.features = lacking}, NULL, MICA_ERR_UNSUPPORTED,
         {"built for fixture", needs}},
        {"architecture", {.arch = foreign}, NULL, MICA_ERR_UNSUPPORTED, {"built for fixture", built}},
        {"no model object", {.no_object = true}, NULL, MICA_ERR_UNSUPPORTED,
         {"no model object", "--backend ref"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_refusal(&cases[i]);

    /* the host's reader (--backend ref) refuses a version in one line too */
    char dir[] = "/tmp/mica-loader-XXXXXX";
    mica_test_tmpdir_make(dir);
    mica_test_fixture_artifact(dir, &(mica_test_fixture_t){.format = "mica-artifact 2"});
    mica_test_result_t res =
        mica_test_mica(dir, "run", dir, "--backend", "ref", "-p", "hi", "-n", "1", NULL);
    cr_expect_eq(res.status, 1);
    mica_test_expect_one_line(&res, "format version 2, this mica reads 1");
    mica_test_result_free(&res);
    mica_test_tmpdir_remove(dir);
}
