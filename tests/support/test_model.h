/* Helpers shared by the tests that run golden models: golden id lists,
 * error measures between two logit arrays, and the "open a GGUF, read its
 * config, build the static program" fixture. They only load data and
 * measure differences; nothing here computes an expected result. */
#ifndef MICA_TEST_MODEL_H
#define MICA_TEST_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "model.h"
#include "program.h"

/* Reads the comma-separated token ids of golden file `name` (a path below
 * ../shared/golden) into ids[0..cap). Returns how many it read; fails the
 * test if the file cannot be read. */
size_t mica_test_read_ids(const char *name, int32_t *ids, size_t cap);

/* Normalized squared error sum (a-b)^2 / sum b^2 over n floats (b is the
 * reference). */
double mica_test_nmse(const float *a, const float *b, size_t n);

/* Largest |a[i] - b[i]| over n floats; a NaN anywhere makes it NaN. */
double mica_test_max_abs_diff(const float *a, const float *b, size_t n);

/* An open model file, its config and (optionally) its static program; all
 * owned by the fixture. */
typedef struct mica_test_model {
    mica_gguf_t *f;
    mica_model_config_t cfg;
    mica_program_t *p; /* NULL after mica_test_model_open */
} mica_test_model_t;

/* Opens the GGUF at `path` (a full path) and reads its config; p = NULL.
 * Fails the test on any error. */
void mica_test_model_open(mica_test_model_t *x, const char *path);

/* mica_test_model_open, then builds the program with prefill chunk `chunk`
 * and context `n_ctx` (tokens) and, if `after` is not NULL, runs the
 * pipeline up to `after` (with verification) on both of its graphs. */
void mica_test_program_open(mica_test_model_t *x, const char *path, int64_t chunk, int64_t n_ctx,
                            const char *after);

/* Releases what the fixture holds (the program, then the file). */
void mica_test_model_close(mica_test_model_t *x);

/* Appends op over the values ids[0..n) (n <= 8, no views) with int
 * attributes a0, a1 in spec order, type inferred; the new id or -1 (the
 * graph records why). For ops without a builder of their own. */
int32_t mica_test_op(mica_graph_t *g, mica_op_t op, int32_t n, const int32_t *ids, int64_t a0,
                     int64_t a1);

#endif
