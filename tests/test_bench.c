/* `mica bench`: the markdown table and the JSON array (read back by a small
 * JSON reader here), the figures beside t/s recomputed from the model file
 * and the limits the output says it used, and the limits cache file's
 * round trip. No timing is asserted: the machine is shared and noisy. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"
#include "test_run.h"
#include "test_support.h"

static char tmpdir[] = "/tmp/mica-bench-XXXXXX";

static void setup(void)
{
    mica_test_tmpdir_make(tmpdir);
    /* the limits cache goes here, not into the user's home */
    setenv("XDG_CACHE_HOME", tmpdir, 1);
}

static void teardown(void)
{
    mica_test_tmpdir_remove(tmpdir);
}

#define tmp(name) mica_test_path(tmpdir, name)
typedef mica_test_result_t result_t;
#define run(...) mica_test_mica(tmpdir, __VA_ARGS__)
#define result_free mica_test_result_free

TestSuite(bench, .init = setup, .fini = teardown, .timeout = 300);

/* ---- a small JSON reader: what the checker needs, strictly ---------------- */

typedef enum jtype { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } jtype_t;

typedef struct jvalue {
    jtype_t type;
    double num;
    char *str;            /* J_STRING, unescaped */
    int n;                /* J_ARRAY / J_OBJECT: elements */
    struct jvalue *items; /* [n] */
    char **keys;          /* J_OBJECT: [n] */
} jvalue_t;

typedef struct jparser {
    const char *p;
    bool ok;
} jparser_t;

static void jskip(jparser_t *j)
{
    while (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')
        j->p++;
}

static char *jstring(jparser_t *j)
{
    if (*j->p != '"') {
        j->ok = false;
        return NULL;
    }
    j->p++;
    size_t cap = strlen(j->p) + 1, n = 0;
    char *s = malloc(cap);
    cr_assert(s);
    while (*j->p && *j->p != '"') {
        char c = *j->p++;
        if ((unsigned char)c < 0x20) {
            j->ok = false;
            break;
        }
        if (c == '\\') {
            c = *j->p++;
            if (c == 'u') {
                unsigned v = 0;
                for (int k = 0; k < 4; k++) {
                    if (!isxdigit((unsigned char)*j->p)) {
                        j->ok = false;
                        break;
                    }
                    char h = *j->p++;
                    v = v * 16 +
                        (unsigned)(isdigit((unsigned char)h) ? h - '0' : (h | 32) - 'a' + 10);
                }
                c = (char)(v < 0x80 ? v : '?');
            } else if (c == 'n') {
                c = '\n';
            } else if (c == 't') {
                c = '\t';
            } else if (c != '"' && c != '\\' && c != '/') {
                j->ok = false;
            }
        }
        s[n++] = c;
    }
    if (*j->p != '"')
        j->ok = false;
    else
        j->p++;
    s[n] = 0;
    return s;
}

static void jvalue(jparser_t *j, jvalue_t *v, int depth)
{
    memset(v, 0, sizeof *v);
    jskip(j);
    if (depth > 8) {
        j->ok = false;
        return;
    }
    if (*j->p == '{' || *j->p == '[') {
        bool obj = *j->p == '{';
        char close = obj ? '}' : ']';
        v->type = obj ? J_OBJECT : J_ARRAY;
        j->p++;
        jskip(j);
        if (*j->p == close) {
            j->p++;
            return;
        }
        while (j->ok) {
            v->items = realloc(v->items, (size_t)(v->n + 1) * sizeof *v->items);
            v->keys = realloc(v->keys, (size_t)(v->n + 1) * sizeof *v->keys);
            cr_assert(v->items && v->keys);
            v->keys[v->n] = NULL;
            if (obj) {
                jskip(j);
                v->keys[v->n] = jstring(j);
                jskip(j);
                if (*j->p++ != ':')
                    j->ok = false;
            }
            jvalue(j, &v->items[v->n], depth + 1);
            v->n++;
            jskip(j);
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p == close)
                j->p++;
            else
                j->ok = false;
            break;
        }
    } else if (*j->p == '"') {
        v->type = J_STRING;
        v->str = jstring(j);
    } else if (!strncmp(j->p, "null", 4)) {
        v->type = J_NULL;
        j->p += 4;
    } else if (!strncmp(j->p, "true", 4) || !strncmp(j->p, "false", 5)) {
        v->type = J_BOOL;
        v->num = *j->p == 't';
        j->p += *j->p == 't' ? 4 : 5;
    } else {
        /* JSON numbers: -?digits[.digits][e[+-]digits] */
        const char *s = j->p;
        if (*s == '-')
            s++;
        if (!isdigit((unsigned char)*s)) {
            j->ok = false;
            return;
        }
        char *end;
        v->type = J_NUMBER;
        v->num = strtod(j->p, &end);
        j->p = end;
    }
}

static void jfree(jvalue_t *v)
{
    for (int i = 0; i < v->n; i++) {
        jfree(&v->items[i]);
        free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
    free(v->str);
}

/* Parses the whole text (nothing but white space after the value). */
static jvalue_t jparse(const char *text)
{
    jparser_t j = {text, true};
    jvalue_t v;
    jvalue(&j, &v, 0);
    jskip(&j);
    cr_assert(j.ok && *j.p == 0, "not JSON at offset %ld: \"%.40s\"", (long)(j.p - text), j.p);
    return v;
}

static const jvalue_t *jget(const jvalue_t *obj, const char *key)
{
    for (int i = 0; i < obj->n; i++)
        if (obj->keys[i] && !strcmp(obj->keys[i], key))
            return &obj->items[i];
    return NULL;
}

static double jnum(const jvalue_t *obj, const char *key)
{
    const jvalue_t *v = jget(obj, key);
    cr_assert(v && v->type == J_NUMBER, "field %s missing or not a number", key);
    return v->num;
}

/* ---- what the output must agree with, from the files themselves ---------- */

typedef struct gguf_counts {
    uint64_t bytes, params, bytes_per_token;
    uint64_t matmul_params; /* of the matrices a token multiplies by */
} gguf_counts_t;

/* Plain sums over the tensors of a GGUF: all bytes and elements; a decode
 * step reads every tensor but the embedding table (one row of it) when
 * the file has a separate output.weight, and multiplies by every matrix
 * but that table (which is the LM head when there is no output.weight). */
static gguf_counts_t count_gguf(const char *path)
{
    mica_gguf_t *g;
    mica_diag_t d = {0};
    cr_assert_eq(mica_gguf_open(path, &g, &d), MICA_OK, "%s", d.msg);
    gguf_counts_t c = {0};
    bool own_head = mica_gguf_find_tensor(g, "output.weight") != NULL;
    for (uint64_t i = 0; i < mica_gguf_tensor_count(g); i++) {
        const mica_gguf_tensor_t *t = mica_gguf_tensor_at(g, i);
        c.bytes += t->nbytes;
        c.params += (uint64_t)(t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3]);
        bool table = mica_gguf_str_eq(t->name, "token_embd.weight");
        c.bytes_per_token += table && own_head ? t->nbytes / (uint64_t)t->ne[1] : t->nbytes;
        if (t->n_dims == 2 && !(table && own_head))
            c.matmul_params += (uint64_t)(t->ne[0] * t->ne[1]);
    }
    mica_gguf_close(g);
    return c;
}

/* The limits cache file mica wrote into tmpdir/mica, or NULL. */
static const char *limits_file(void)
{
    static char path[1024];
    char dir[640];
    snprintf(dir, sizeof dir, "%s/mica", tmpdir);
    DIR *dh = opendir(dir);
    if (!dh)
        return NULL;
    const struct dirent *e;
    int found = 0;
    while ((e = readdir(dh)))
        if (!strncmp(e->d_name, "limits-", 7)) {
            cr_assert(strlen(dir) + strlen(e->d_name) + 2 <= sizeof path);
            snprintf(path, sizeof path, "%s/%.*s", dir, (int)(sizeof path - sizeof dir - 2),
                     e->d_name);
            found++;
        }
    closedir(dh);
    cr_assert(found <= 1, "%d limits files in %s", found, dir);
    return found ? path : NULL;
}

/* A key's value in a "key value" line file (a malloc'd copy), or NULL. */
static char *line_value(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, key, kl) && l[kl] == ' ')
            return strndup(l + kl + 1, strcspn(l + kl + 1, "\n"));
    return NULL;
}

/* Rewrites the limits file with the figures given (the cpu and core lines
 * kept, so it is still this machine's). */
static void write_limits(const char *path, double bw1, double bw_all, double peak1, double peak_all)
{
    char *text = mica_test_read_file(path, NULL);
    cr_assert(text);
    char *cpu = line_value(text, "cpu"), *arch = line_value(text, "arch"),
         *cores = line_value(text, "n_cores");
    cr_assert(cpu && arch && cores);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "mica-limits 1\ncpu %s\narch %s\nn_cores %s\nbw_isa c\nbw_buffer_bytes 1048576\n"
            "bw_1t_gbs %g\nbw_all_gbs %g\nint8_isa c\nint8_1t_gops %g\nint8_all_gops %g\n",
            cpu, arch, cores, bw1, bw_all, peak1, peak_all);
    fclose(f);
    free(text);
    free(cpu);
    free(arch);
    free(cores);
}

static void expect_near(double got, double want, const char *what)
{
    cr_expect(fabs(got - want) <= 1e-5 * fabs(want) + 1e-9, "%s: %.9g, expected %.9g", what, got,
              want);
}

/* Checks one JSON test object against what it must say. */
static void check_object(const jvalue_t *o, int n_prompt, int n_gen, int reps, int threads,
                         const gguf_counts_t *c)
{
    cr_assert_eq(o->type, J_OBJECT);
    static const char *const fields[] = {
        "model_filename", "model_type",    "model_size",     "model_n_params", "n_threads",
        "n_prompt",       "n_gen",         "test_time",      "avg_ns",         "stddev_ns",
        "avg_ts",         "stddev_ts",     "samples_ns",     "samples_ts",     "bytes_per_token",
        "bw_fraction",    "peak_fraction", "peak_rss_bytes", "limits_bw_gbs",  "limits_int8_gops"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cr_expect(jget(o, fields[i]), "field %s missing", fields[i]);
    cr_expect_eq(jnum(o, "n_prompt"), n_prompt);
    cr_expect_eq(jnum(o, "n_gen"), n_gen);
    cr_expect_eq(jnum(o, "n_threads"), threads);
    double avg_ts = jnum(o, "avg_ts"), avg_ns = jnum(o, "avg_ns");
    cr_expect(avg_ts > 0 && avg_ns > 0);
    cr_expect(jnum(o, "stddev_ts") >= 0 && jnum(o, "stddev_ns") >= 0);
    const jvalue_t *sns = jget(o, "samples_ns"), *sts = jget(o, "samples_ts");
    cr_assert(sns && sts && sns->type == J_ARRAY && sts->type == J_ARRAY);
    cr_assert_eq(sns->n, reps);
    cr_assert_eq(sts->n, reps);
    /* llama-bench's definitions: t/s of each sample from its time, the
     * averages over the samples */
    double mean_ns = 0, mean_ts = 0;
    for (int i = 0; i < reps; i++) {
        cr_assert_eq(sns->items[i].type, J_NUMBER);
        double ts = (n_prompt + n_gen) / (sns->items[i].num * 1e-9);
        cr_expect(fabs(sts->items[i].num - ts) <= 1e-4 * ts, "sample %d: %g t/s for %g ns", i,
                  sts->items[i].num, sns->items[i].num);
        mean_ns += sns->items[i].num / reps;
        mean_ts += sts->items[i].num / reps;
    }
    cr_expect(fabs(avg_ns - mean_ns) <= 1e-6 * mean_ns + 1, "avg_ns %g, mean %g", avg_ns, mean_ns);
    cr_expect(fabs(avg_ts - mean_ts) <= 1e-6 * mean_ts, "avg_ts %g, mean %g", avg_ts, mean_ts);
    if (reps == 1)
        cr_expect_eq(jnum(o, "stddev_ts"), 0);
    cr_expect(jnum(o, "peak_rss_bytes") > 0);
    if (c) {
        cr_expect_eq(jnum(o, "model_size"), (double)c->bytes);
        cr_expect_eq(jnum(o, "model_n_params"), (double)c->params);
        cr_expect_eq(jnum(o, "bytes_per_token"), (double)c->bytes_per_token);
    }
    /* the fraction of the bandwidth for decode, of the int8 peak for
     * prefill, each against the limit the object says it used */
    const jvalue_t *bw = jget(o, "bw_fraction"), *peak = jget(o, "peak_fraction");
    cr_expect_eq(bw->type, n_prompt == 0 ? J_NUMBER : J_NULL);
    cr_expect_eq(peak->type, n_gen == 0 ? J_NUMBER : J_NULL);
    if (bw->type == J_NUMBER)
        expect_near(bw->num, avg_ts * jnum(o, "bytes_per_token") / (jnum(o, "limits_bw_gbs") * 1e9),
                    "bw_fraction");
    if (peak->type == J_NUMBER && c)
        expect_near(peak->num,
                    avg_ts * 2.0 * (double)c->matmul_params / (jnum(o, "limits_int8_gops") * 1e9),
                    "peak_fraction");
    const jvalue_t *type = jget(o, "model_type");
    cr_expect(type->type == J_STRING && type->str[0]);
}

/* ---- the tests ------------------------------------------------------------ */

Test(bench, json_fields_and_figures)
{
    const char *model = mica_test_golden("llama-tiny.q8_0.gguf");
    gguf_counts_t c = count_gguf(model);
    result_t r = run("bench", model, "-p", "16", "-n", "4", "-pg", "8,2", "-r", "2", "-t", "1",
                     "-o", "json", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    jvalue_t v = jparse(r.out);
    cr_assert_eq(v.type, J_ARRAY);
    cr_assert_eq(v.n, 3);
    check_object(&v.items[0], 16, 0, 2, 1, &c);
    check_object(&v.items[1], 0, 4, 2, 1, &c);
    check_object(&v.items[2], 8, 2, 2, 1, &c);
    const jvalue_t *fn = jget(&v.items[0], "model_filename");
    cr_expect(fn->type == J_STRING && !strcmp(fn->str, model));
    jfree(&v);
    result_free(&r);
}

Test(bench, markdown_table)
{
    const char *model = mica_test_golden("llama-tiny.q8_0.gguf");
    result_t r = run("bench", model, "-p", "16", "-n", "4", "-r", "1", "-t", "1,2", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    /* stdout is the table and nothing else: header, rule, one row a test */
    const char *want_tests[] = {"pp16", "tg4", "pp16", "tg4"};
    const char *want_threads[] = {"1", "1", "2", "2"};
    int n_lines = 0;
    char *save = NULL, *out = strdup(r.out);
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        size_t len = strlen(line);
        cr_assert(len > 2 && line[0] == '|' && line[len - 1] == '|', "not a table row: %s", line);
        char *cells[16];
        int n = 0;
        char *cs = NULL;
        for (char *cell = strtok_r(line + 1, "|", &cs); cell && n < 16;
             cell = strtok_r(NULL, "|", &cs)) {
            while (*cell == ' ')
                cell++;
            size_t cl = strlen(cell);
            while (cl && cell[cl - 1] == ' ')
                cell[--cl] = 0;
            cells[n++] = cell;
        }
        cr_assert_eq(n, 11, "row of %d cells", n);
        if (n_lines == 0) {
            const char *head[] = {"model", "size",    "params", "backend", "threads", "test",
                                  "t/s",   "B/token", "bw %",   "int8 %",  "peak RSS"};
            for (int k = 0; k < 11; k++)
                cr_expect_str_eq(cells[k], head[k]);
        } else if (n_lines == 1) {
            for (int k = 0; k < 11; k++)
                cr_expect(cells[k][0] == '-' || cells[k][0] == ':', "rule cell '%s'", cells[k]);
        } else {
            int t = n_lines - 2;
            cr_assert(t < 4, "more rows than tests");
            cr_expect_str_eq(cells[4], want_threads[t]);
            cr_expect_str_eq(cells[5], want_tests[t]);
            double mean, sd;
            cr_expect_eq(sscanf(cells[6], "%lf ± %lf", &mean, &sd), 2, "t/s cell '%s'", cells[6]);
            cr_expect(mean > 0 && sd == 0, "t/s '%s' (one repetition)", cells[6]);
            cr_expect(strstr(cells[1], "MiB") && strstr(cells[7], "MiB") &&
                      strstr(cells[10], "MiB"));
            /* decode has a bandwidth fraction, prefill an int8 one */
            bool pp = !strncmp(cells[5], "pp", 2);
            cr_expect_str_eq(pp ? cells[8] : cells[9], "-");
            cr_expect(strcmp(pp ? cells[9] : cells[8], "-"));
        }
        n_lines++;
    }
    cr_expect_eq(n_lines, 6);
    free(out);
    result_free(&r);
}

/* An f16 value, decoded here by its definition. */
static double half_value(const uint8_t *p)
{
    const unsigned h = p[0] | (unsigned)p[1] << 8, e = (h >> 10) & 31, f = h & 1023;
    const double v = e == 0 ? ldexp((double)f, -24) : ldexp(1.0 + f / 1024.0, (int)e - 15);
    return (h & 0x8000) ? -v : v;
}

/* Bytes of the NAME.m tensors in the artifact's weights.bin (from the
 * manifest's weight lines) that a symmetric source made: every mins value 0
 * (Q8_0 to i8) or -8 times its scale (Q4_0 to u4). */
static uint64_t symmetric_mins_bytes(const char *man, const char *bin, size_t bin_len)
{
    uint64_t total = 0;
    for (const char *l = strstr(man, "\nweight "); l; l = strstr(l + 1, "\nweight ")) {
        char name[256];
        unsigned long long off, size, soff = 0, ssize = 0;
        if (sscanf(l + 8, "%255s %llu %llu", name, &off, &size) != 3)
            continue;
        const size_t n = strlen(name);
        if (n < 3 || strcmp(name + n - 2, ".m") != 0 || off + size > bin_len)
            continue;
        char key[300];
        snprintf(key, sizeof key, "\nweight %.*s.s ", (int)(n - 2), name);
        const char *sl = strstr(man, key);
        cr_assert(sl, "%s has no scales line", name);
        cr_assert_eq(sscanf(sl + strlen(key), "%llu %llu", &soff, &ssize), 2);
        cr_assert_eq(ssize, size);
        bool zero = true, zp8 = true;
        for (unsigned long long i = 0; i < size; i += 2) {
            const double m = half_value((const uint8_t *)bin + off + i),
                         sc = half_value((const uint8_t *)bin + soff + i);
            zero = zero && m == 0.0;
            zp8 = zp8 && m == -8.0 * sc;
        }
        if (zero || zp8)
            total += size;
    }
    return total;
}

Test(bench, artifact_figures_from_its_manifest)
{
    const char *gguf = mica_test_golden("qwen2-tiny.q8_0.gguf");
    result_t r = run("compile", gguf, "-t", "host", "-o", tmp("qwen.mica"), NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    result_free(&r);
    r = run("bench", tmp("qwen.mica"), "-p", "8", "-n", "2", "-r", "1", "-t", "1", "-o", "json",
            NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    jvalue_t v = jparse(r.out);
    cr_assert_eq(v.n, 2);
    check_object(&v.items[0], 8, 0, 1, 1, NULL);
    check_object(&v.items[1], 0, 2, 1, 1, NULL);
    /* parameters from the config agree with the GGUF's tensors; bytes per
     * token are the manifest's resident weights but the mins of symmetric
     * sources (here the Q8_0 head's), which the kernels never read; size is
     * weights.bin's */
    gguf_counts_t c = count_gguf(gguf);
    char *man = mica_test_read_file(tmp("qwen.mica/manifest"), NULL);
    cr_assert(man);
    char *mw = line_value(man, "memory.weights");
    cr_assert(mw);
    size_t bin_len;
    char *bin = mica_test_read_file(tmp("qwen.mica/weights.bin"), &bin_len);
    cr_assert(bin);
    const uint64_t unread = symmetric_mins_bytes(man, bin, bin_len);
    cr_expect_gt(unread, 0, "the Q8_0 head's mins should be unread");
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(jnum(&v.items[i], "model_n_params"), (double)c.params);
        cr_expect_eq(jnum(&v.items[i], "bytes_per_token"), strtod(mw, NULL) - (double)unread);
        cr_expect_eq(jnum(&v.items[i], "model_size"), (double)bin_len);
    }
    free(bin);
    free(mw);
    free(man);
    jfree(&v);
    result_free(&r);
}

/* --profile: every op of the decode graph once, with its kernel, split,
 * measured and roofline times; the measured total is the sum of its rows. */
Test(bench, profile_lists_every_scheduled_op)
{
    const char *gguf = mica_test_golden("llama-tiny.q4_0.gguf");
    result_t r = run("compile", gguf, "-t", "host", "-q", "w4a8", "-o", tmp("prof.mica"), NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    result_free(&r);
    r = run("bench", tmp("prof.mica"), "-p", "8", "-n", "4", "-r", "1", "-t", "2", "--profile",
            NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    unsigned n_ops = 0;
    unsigned long long calls = 0;
    const char *dec = strstr(r.out, "\ndecode: ");
    cr_assert(dec, "no decode profile in:\n%s", r.out);
    cr_assert_eq(sscanf(dec, "\ndecode: %u ops, %llu calls", &n_ops, &calls), 2);
    cr_expect_eq(calls, 4, "4 decode steps, the profile counts %llu", calls);
    /* the rows after the two header lines, up to the next blank line */
    const char *p = strchr(dec + 1, '\n');
    for (int skip = 0; skip < 2 && p; skip++)
        p = strchr(p + 1, '\n');
    unsigned rows = 0, qmm = 0;
    while (p && p[1] == '|') {
        rows++;
        const char *end = strchr(p + 1, '\n');
        char line[512];
        size_t len = end ? (size_t)(end - p - 1) : strlen(p + 1);
        snprintf(line, sizeof line, "%.*s", (int)(len < 511 ? len : 511), p + 1);
        if (strstr(line, "qmatmul")) {
            qmm++;
            cr_expect(strstr(line, "mica_k_q"), "a qmatmul without its kernel: %s", line);
        }
        p = end;
    }
    cr_expect_eq(rows, n_ops, "%u rows for %u ops", rows, n_ops);
    cr_expect_gt(qmm, 0);
    result_free(&r);
}

Test(bench, limits_measured_cached_and_read_back)
{
    /* --limits alone: measured, printed on stdout, written to the cache */
    result_t r = run("bench", "--limits", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.out, "read bandwidth") && strstr(r.out, "GB/s"));
    cr_expect(strstr(r.out, "int8 peak") && strstr(r.out, "GOP/s"));
    const char *path = limits_file();
    cr_assert(path, "no limits file in %s/mica", tmpdir);
    cr_expect(strstr(r.out, path), "the output does not say where: %s", r.out);
    char *text = mica_test_read_file(path, NULL);
    cr_assert(text);
    cr_expect(!strncmp(text, "mica-limits 1\n", 14));
    const char *keys[] = {"bw_1t_gbs", "bw_all_gbs", "int8_1t_gops", "int8_all_gops"};
    double fig[4];
    for (int k = 0; k < 4; k++) {
        char *val = line_value(text, keys[k]);
        cr_assert(val, "%s missing", keys[k]);
        fig[k] = strtod(val, NULL);
        cr_expect(fig[k] > 0 && isfinite(fig[k]), "%s = %s", keys[k], val);
        free(val);
    }
    /* the printed figures are the file's */
    char want[64];
    snprintf(want, sizeof want, "%.1f GB/s on 1 thread", fig[0]);
    cr_expect(strstr(r.out, want), "'%s' not in: %s", want, r.out);
    snprintf(want, sizeof want, "%.1f GOP/s on 1 core", fig[2]);
    cr_expect(strstr(r.out, want), "'%s' not in: %s", want, r.out);
    free(text);
    result_free(&r);

    /* bench reads the cache (measures nothing) and uses its figures: the
     * one-thread ones for -t 1 */
    write_limits(path, 12.5, 20.0, 100.0, 150.0);
    const char *model = mica_test_golden("llama-tiny.q8_0.gguf");
    r = run("bench", model, "-p", "8", "-n", "2", "-r", "1", "-t", "1", "-o", "json", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(!strstr(r.err, "measuring"), "measured again: %s", r.err);
    jvalue_t v = jparse(r.out);
    cr_assert_eq(v.n, 2);
    gguf_counts_t c = count_gguf(model);
    for (int i = 0; i < 2; i++) {
        expect_near(jnum(&v.items[i], "limits_bw_gbs"), 12.5, "limits_bw_gbs");
        expect_near(jnum(&v.items[i], "limits_int8_gops"), 100.0, "limits_int8_gops");
    }
    double ts = jnum(&v.items[1], "avg_ts");
    expect_near(jnum(&v.items[1], "bw_fraction"), ts * (double)c.bytes_per_token / 12.5e9,
                "bw_fraction");
    jfree(&v);
    result_free(&r);

    /* a file that is not a limits record is measured again and replaced */
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("mica-limits 1\ncpu x\nn_cores 0\n", f);
    fclose(f);
    r = run("bench", model, "-p", "4", "-n", "0", "-r", "1", "-o", "json", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "measuring"), "not measured again: %s", r.err);
    text = mica_test_read_file(path, NULL);
    cr_assert(text);
    char *cores = line_value(text, "n_cores");
    cr_expect(cores && atoi(cores) >= 1, "file not rewritten: %s", text);
    free(cores);
    free(text);
    result_free(&r);

    /* a valid record of another CPU at this path is not used either */
    text = mica_test_read_file(path, NULL);
    cr_assert(text);
    char *cpu = line_value(text, "cpu");
    cr_assert(cpu);
    char *at = strstr(text, cpu);
    f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "%.*sanother CPU%s", (int)(at - text), text, at + strlen(cpu));
    fclose(f);
    r = run("bench", model, "-p", "4", "-n", "0", "-r", "1", "-o", "json", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "measuring"), "another CPU's record used: %s", r.err);
    free(cpu);
    free(text);
    result_free(&r);
}

Test(bench, no_cache_directory_still_benches)
{
    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    result_t r = run("bench", mica_test_golden("llama-tiny.q8_0.gguf"), "-p", "4", "-n", "1", "-r",
                     "1", "-o", "json", NULL);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_expect(strstr(r.err, "not cached"), "stderr: %s", r.err);
    jvalue_t v = jparse(r.out);
    cr_expect_eq(v.n, 2);
    jfree(&v);
    result_free(&r);
}

Test(bench, bad_command_lines_and_files)
{
    const char *model = mica_test_golden("llama-tiny.q8_0.gguf");
    const char *const bad[][4] = {
        {"-o", "xml", NULL}, {"-pg", "5", NULL},  {"-p", "1,,2", NULL},   {"-r", "0", NULL},
        {"-t", "0", NULL},   {"--no-such", NULL}, {"-p", "0", "-n", "0"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *args[8] = {"bench", model};
        int n = 2;
        for (int k = 0; k < 4 && bad[i][k]; k++)
            args[n++] = bad[i][k];
        args[n] = NULL;
        result_t r = mica_test_mica_argv(tmpdir, args);
        cr_expect_eq(r.status, 2, "case %zu: status %d, stderr %s", i, r.status, r.err);
        cr_expect_eq(r.out[0], 0, "case %zu wrote to stdout", i);
        result_free(&r);
    }
    result_t r = run("bench", NULL);
    cr_expect_eq(r.status, 2);
    result_free(&r);

    /* a missing model: one line naming it, exit 1, no table */
    r = run("bench", tmp("missing.gguf"), "-p", "4", "-n", "1", "-r", "1", NULL);
    cr_expect_eq(r.status, 1);
    mica_test_expect_one_line(&r, "missing.gguf");
    cr_expect_eq(r.out[0], 0);
    result_free(&r);

    /* a prompt past the model's context: exit 1 */
    r = run("bench", model, "-p", "100000", "-n", "0", "-r", "1", NULL);
    cr_expect_eq(r.status, 1, "stderr: %s", r.err);
    result_free(&r);
}
