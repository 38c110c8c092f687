/* Small helpers for parsing command-line values with range checks. */
#ifndef MICA_TOOLS_ARGS_H
#define MICA_TOOLS_ARGS_H

#include <stdbool.h>
#include <stdint.h>

/* Parse the whole string as a number in [lo, hi]; false otherwise. */
bool mica_arg_int(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* The same for a finite float. */
bool mica_arg_float(const char *s, double lo, double hi, double *out);

/* Threads when -t is not given: the cores online (1 .. 64). */
int64_t mica_arg_default_threads(void);

#include "sampler.h"

/* If argv[*i] is a sampling option (llama.cpp's names: --temp, --top-k,
 * --top-p, --min-p, --repeat-penalty, --repeat-last-n, --presence-penalty,
 * --frequency-penalty, --seed), consumes it and its value into p and returns
 * 1; returns 0 if it is not one; returns -1 after printing a usage error
 * for `verb`. */
int mica_arg_sampling(const char *verb, int argc, char **argv, int *i, mica_sampler_params_t *p);

/* The help lines of those options. */
#define MICA_ARG_SAMPLING_HELP                                             \
    "  --temp T            temperature; 0 = greedy (default 0.8)\n"        \
    "  --top-k K           keep the K likeliest tokens (default 40; 0 = off)\n" \
    "  --top-p P           keep the likeliest up to probability P (default 0.95)\n" \
    "  --min-p P           drop tokens below P x the likeliest's (default 0 = off)\n" \
    "  --repeat-penalty R  divide recent tokens' positive logits by R (default 1 = off)\n" \
    "  --repeat-last-n N   recent tokens the penalties see (default 64; 0 = none)\n" \
    "  --presence-penalty P  subtract P from each recent token's logit (default 0)\n" \
    "  --frequency-penalty F subtract F per occurrence among recent tokens (default 0)\n" \
    "  --seed S            (default 42)\n"
#endif
