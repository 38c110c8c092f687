#include "test_model.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "passes.h"
#include "test_support.h"

size_t mica_test_read_ids(const char *name, int32_t *ids, size_t cap)
{
    size_t len;
    char *text = mica_test_read_file(mica_test_golden(name), &len);
    cr_assert(text, "cannot read %s", mica_test_golden(name));
    size_t n = 0;
    for (char *p = text; *p && n < cap;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        ids[n++] = (int32_t)v;
        p = *end == ',' ? end + 1 : end;
        while (*p == '\n' || *p == ' ')
            p++;
    }
    free(text);
    return n;
}

double mica_test_nmse(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - (double)b[i];
        num += e * e;
        den += (double)b[i] * (double)b[i];
    }
    return num / den;
}

double mica_test_max_abs_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (!(e <= m))
            m = e; /* NaN propagates as the maximum */
    }
    return m;
}

void mica_test_model_open(mica_test_model_t *x, const char *path)
{
    mica_diag_t d = {0};
    memset(x, 0, sizeof *x);
    cr_assert_eq(mica_gguf_open(path, &x->f, &d), MICA_OK, "%s: %s", path, d.msg);
    cr_assert_eq(mica_model_config_from_gguf(x->f, &x->cfg, &d), MICA_OK, "%s: %s", path, d.msg);
}

void mica_test_program_open(mica_test_model_t *x, const char *path, int64_t chunk, int64_t n_ctx,
                            const char *after)
{
    mica_diag_t d = {0};
    mica_test_model_open(x, path);
    cr_assert_eq(mica_program_build(x->f, &x->cfg, chunk, n_ctx, &x->p, &d), MICA_OK, "%s: %s", path,
                 d.msg);
    if (after) {
        cr_assert_eq(mica_pipeline_run(&x->p->prefill, after, true, &d), MICA_OK, "%s", d.msg);
        cr_assert_eq(mica_pipeline_run(&x->p->decode, after, true, &d), MICA_OK, "%s", d.msg);
    }
}

void mica_test_model_close(mica_test_model_t *x)
{
    mica_program_release(x->p);
    mica_gguf_close(x->f);
    x->p = NULL;
    x->f = NULL;
}

int32_t mica_test_op(mica_graph_t *g, mica_op_t op, int32_t n, const int32_t *ids, int64_t a0,
                     int64_t a1)
{
    mica_operand_t in[8];
    cr_assert(n >= 0 && n <= 8);
    memset(in, 0, sizeof in);
    for (int32_t i = 0; i < n; i++)
        in[i].value = ids[i];
    mica_node_t nd;
    memset(&nd, 0, sizeof nd);
    nd.op = op;
    nd.n_inputs = n;
    nd.inputs = in;
    nd.attrs[0].i = a0;
    nd.attrs[1].i = a1;
    return mica_graph_append(g, &nd, true);
}
