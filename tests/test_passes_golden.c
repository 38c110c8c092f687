/* Golden IR tests, one directory per pass: for every pass of the pipeline,
 * tests/data/passes/<pass>/<case>.input.ir is parsed, run through that pass
 * alone, verified and printed, and the text must equal <case>.expected.ir
 * byte for byte. The expected files are written only when the environment
 * has MICA_UPDATE_GOLDEN=1 (then review them as a diff before committing).
 * IR text has no weight bytes: for the quantize pass the harness binds
 * deterministic ones (bind_weights) so the rewrite shows.
 * Every pass must have at least one case, and every expected file an input. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ir.h"
#include "passes.h"
#include "quant.h"
#include "test_support.h"

enum { PATH_SIZE = 1024 };

/* Formats a path into out (PATH_SIZE bytes); fails the test if it is cut. */
__attribute__((format(printf, 2, 3))) static void path_fmt(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, PATH_SIZE, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && n < PATH_SIZE, "path too long");
}

static bool updating(void)
{
    const char *u = getenv("MICA_UPDATE_GOLDEN");
    return u && strcmp(u, "1") == 0;
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir ending with tail, sorted; *out_n of them (malloc'd). */
static char **list_files(const char *dir, const char *tail, int *out_n)
{
    DIR *d = opendir(dir);
    *out_n = 0;
    if (!d)
        return NULL;
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!ends_with(e->d_name, tail))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            names = realloc(names, (size_t)cap * sizeof *names);
            cr_assert_not_null(names);
        }
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n > 0)
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out_n = n;
    return names;
}

static void free_list(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* Line number (1-based) of the first difference and both lines' text. */
static void first_difference(const char *got, const char *want, int *out_line, char *g_line,
                             char *w_line, size_t size)
{
    int line = 1;
    size_t i = 0;
    while (got[i] && got[i] == want[i]) {
        if (got[i] == '\n')
            line++;
        i++;
    }
    size_t gs = i, ws = i;
    while (gs > 0 && got[gs - 1] != '\n')
        gs--;
    while (ws > 0 && want[ws - 1] != '\n')
        ws--;
    size_t gl = strcspn(got + gs, "\n"), wl = strcspn(want + ws, "\n");
    snprintf(g_line, size, "%.*s%s", (int)gl, got + gs, got[gs] ? "" : "<end of file>");
    snprintf(w_line, size, "%.*s%s", (int)wl, want + ws, want[ws] ? "" : "<end of file>");
    *out_line = line;
}

static void write_file(const char *path, const char *text)
{
    char tmp[PATH_SIZE];
    path_fmt(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    cr_assert_not_null(f, "cannot write %s", tmp);
    size_t n = strlen(text);
    cr_assert_eq(fwrite(text, 1, n, f), n, "writing %s", tmp);
    cr_assert_eq(fclose(f), 0, "writing %s", tmp);
    cr_assert_eq(rename(tmp, path), 0, "renaming %s", tmp);
}

/* Runs pass p on one case and checks (or, updating, writes) its expected file. */
/* Weight bytes for the passes that read them (IR text carries none):
 * every unbound weight of g gets deterministic data from the test's own
 * generator, seeded by its id; GGUF blocks get valid small f16 scales.
 * Returns the buffers to free after the graph. */
static void **bind_weights(mica_graph_t *g, int *out_n)
{
    void **bufs = calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *bufs);
    cr_assert(bufs);
    int n = 0;
    for (int32_t i = 0; i < g->n_nodes; i++) {
        mica_node_t *w = g->nodes[i];
        if (w->op != MICA_OP_WEIGHT || w->data)
            continue;
        const mica_type_t *t = &w->type;
        int64_t row = t->rank ? t->shape[t->rank - 1] : 1;
        int64_t rb = mica_dtype_row_bytes(t->dtype, row), rows = mica_type_numel(t) / row;
        cr_assert_gt(rb, 0);
        unsigned char *b = malloc((size_t)(rb * rows));
        cr_assert(b);
        mica_test_rng_t rng;
        mica_test_rng_seed(&rng, (uint64_t)i + 1);
        for (int64_t k = 0; k < rb * rows; k++)
            b[k] = (unsigned char)mica_test_rng_next(&rng);
        int64_t bb = mica_dtype_block_bytes(t->dtype), n_blocks = rb * rows / bb;
        int heads = t->dtype == MICA_DTYPE_Q4_1 ? 2 : 1; /* f16 d (and m) lead each block */
        for (int64_t k = 0; k < n_blocks; k++)
            for (int h = 0; h < heads; h++) {
                float v = 0.001f * (float)(1 + mica_test_rng_range(&rng, 0, 15));
                uint16_t half = mica_f32_to_f16(h ? -8 * v : v);
                if (t->dtype == MICA_DTYPE_Q4_0 || t->dtype == MICA_DTYPE_Q4_1 ||
                    t->dtype == MICA_DTYPE_Q8_0)
                    memcpy(b + k * bb + 2 * h, &half, 2);
            }
        if (t->dtype == MICA_DTYPE_F32)
            for (int64_t k = 0; k < rows * row; k++) {
                float v = mica_test_rng_float(&rng);
                memcpy(b + 4 * k, &v, 4);
            }
        if (t->dtype == MICA_DTYPE_F16)
            for (int64_t k = 0; k < rows * row; k++) {
                uint16_t half = mica_f32_to_f16(mica_test_rng_float(&rng));
                memcpy(b + 2 * k, &half, 2);
            }
        w->data = b;
        w->nbytes = (uint64_t)(rb * rows);
        bufs[n++] = b;
    }
    *out_n = n;
    return bufs;
}

static void run_case(const mica_pass_t *p, const char *dir, const char *input_name)
{
    char in_path[PATH_SIZE], want_path[PATH_SIZE];
    path_fmt(in_path, "%s/%s", dir, input_name);
    size_t stem = strlen(input_name) - strlen(".input.ir");
    path_fmt(want_path, "%s/%.*s.expected.ir", dir, (int)stem, input_name);

    size_t len = 0;
    char *text = mica_test_read_file(in_path, &len);
    cr_assert_not_null(text, "cannot read %s", in_path);
    mica_diag_t d = {0};
    mica_graph_t *g = NULL;
    cr_assert_eq(mica_graph_parse(text, len, &g, &d), MICA_OK, "%s:%s", in_path, d.msg);
    free(text);
    int n_bufs = 0;
    void **bufs = !strcmp(p->name, "quantize") ? bind_weights(g, &n_bufs) : NULL;

    mica_pass_ctx_t ctx;
    cr_assert_eq(mica_pass_ctx_init(&ctx, NULL, NULL, &d), MICA_OK, "%s", d.msg);
    cr_assert_eq(p->run(&ctx, &g), MICA_OK, "%s: pass %s: %s", in_path, p->name, d.msg);
    mica_pass_ctx_deinit(&ctx);
    cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s: after %s: %s", in_path, p->name, d.msg);
    char *got = mica_graph_print(g);
    cr_assert_not_null(got);
    mica_graph_release(g);
    for (int k = 0; k < n_bufs; k++)
        free(bufs[k]);
    free(bufs);

    /* what the pass printed reads back to the same text (annotations too) */
    cr_assert_eq(mica_graph_parse(got, strlen(got), &g, &d), MICA_OK, "%s: output: %s", in_path,
                 d.msg);
    char *again = mica_graph_print(g);
    cr_assert_str_eq(again, got, "%s: the pass's output does not round-trip", in_path);
    free(again);
    mica_graph_release(g);

    if (updating()) {
        write_file(want_path, got);
        cr_log_info("wrote %s", want_path);
        free(got);
        return;
    }
    char *want = mica_test_read_file(want_path, &len);
    cr_assert_not_null(want, "%s is missing: run with MICA_UPDATE_GOLDEN=1 and review it",
                       want_path);
    if (strcmp(got, want) != 0) {
        int line = 0;
        char gl[512], wl[512];
        first_difference(got, want, &line, gl, wl, sizeof gl);
        cr_assert_fail("%s differs from the output of %s at line %d:\n  expected: %s\n  got:      "
                       "%s\n(MICA_UPDATE_GOLDEN=1 rewrites it)",
                       want_path, p->name, line, wl, gl);
    }
    free(want);
    free(got);
}

static void run_pass_cases(const char *name)
{
    const mica_pass_t *p = mica_pass_find(name);
    cr_assert_not_null(p, "no pass %s", name);
    cr_assert_not_null(p->run);
    char dir[PATH_SIZE];
    path_fmt(dir, "%s/passes/%s", MICA_TEST_DATA_DIR, name);
    int n = 0;
    char **inputs = list_files(dir, ".input.ir", &n);
    cr_assert_gt(n, 0, "%s has no *.input.ir cases", dir);
    for (int i = 0; i < n; i++)
        run_case(p, dir, inputs[i]);
    cr_log_info("%s: %d golden cases", name, n);
    free_list(inputs, n);

    /* no expected file without its input (a renamed or deleted case) */
    char **expected = list_files(dir, ".expected.ir", &n);
    for (int i = 0; i < n; i++) {
        char path[PATH_SIZE];
        size_t stem = strlen(expected[i]) - strlen(".expected.ir");
        path_fmt(path, "%s/%.*s.input.ir", dir, (int)stem, expected[i]);
        FILE *f = fopen(path, "rb");
        cr_assert_not_null(f, "%s/%s has no input %s", dir, expected[i], path);
        fclose(f);
    }
    free_list(expected, n);
}

/* Every pass of the pipeline, so a new pass needs its own directory. */
Test(passes_golden, every_pass_matches_its_expected_files)
{
    int ran = 0;
    for (int i = 0; i < mica_pass_count(); i++) {
        const mica_pass_t *p = mica_pass_at(i);
        if (p->run) {
            run_pass_cases(p->name);
            ran++;
        }
    }
    cr_assert_geq(ran, 2, "the pipeline has geometry and fold-regions at least");
}

/* Every IR file the tests carry (the valid samples of tests/data/ir and
 * every pass's inputs), through the whole pipeline in the default context:
 * each pass succeeds and its output verifies. Run under the sanitizers by
 * the test script, so a UBSan report here is a failure, not an exit 1. */
static int run_pipeline_over(const char *dir)
{
    int n = 0, done = 0;
    char **names = list_files(dir, ".ir", &n);
    for (int i = 0; i < n; i++) {
        if (!strncmp(names[i], "bad_", 4) || ends_with(names[i], ".expected.ir"))
            continue;
        char path[PATH_SIZE];
        path_fmt(path, "%s/%s", dir, names[i]);
        size_t len = 0;
        char *text = mica_test_read_file(path, &len);
        cr_assert_not_null(text, "cannot read %s", path);
        mica_diag_t d = {0};
        mica_graph_t *g = NULL;
        cr_assert_eq(mica_graph_parse(text, len, &g, &d), MICA_OK, "%s:%s", path, d.msg);
        free(text);
        int n_bufs = 0;
        void **bufs = bind_weights(g, &n_bufs);
        cr_assert_eq(mica_pipeline_run(&g, NULL, true, &d), MICA_OK, "%s: %s", path, d.msg);
        cr_assert_eq(mica_graph_verify(g, &d), MICA_OK, "%s: %s", path, d.msg);
        mica_graph_release(g);
        for (int k = 0; k < n_bufs; k++)
            free(bufs[k]);
        free(bufs);
        done++;
    }
    free_list(names, n);
    return done;
}

Test(passes_golden, every_ir_file_through_the_whole_pipeline)
{
    int done = run_pipeline_over(MICA_TEST_DATA_DIR "/ir");
    for (int i = 0; i < mica_pass_count(); i++) {
        char dir[PATH_SIZE];
        path_fmt(dir, "%s/passes/%s", MICA_TEST_DATA_DIR, mica_pass_at(i)->name);
        done += run_pipeline_over(dir);
    }
    cr_assert_geq(done, 10, "only %d IR files found", done);
}
