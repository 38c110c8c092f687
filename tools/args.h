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

#include <stddef.h>

#include "chat.h"
#include "tokenizer.h"

/* The chat template `mica VERB` uses for the model at path: the family
 * called `name` when not NULL (--chat-template; a usage error naming the
 * known ones otherwise), else the family the template source src[0..len)
 * is recognised as, else ChatML, with a one-line warning on stderr naming
 * path. BOS and EOS texts are tok's (either may be NULL: ""), copied into
 * bos[cap] and eos[cap]. Returns MICA_EXIT_OK or the exit status. */
int mica_arg_chat_template(const char *verb, const char *path, const char *name, const char *src,
                           size_t len, const mica_tokenizer_t *tok, char *bos, char *eos,
                           size_t cap, mica_chat_template_t *out);

/* True when s[0..n) is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF); otherwise *out_bad (may be NULL) receives the
 * offset of the first bad byte. */
bool mica_arg_utf8_valid(const char *s, size_t n, size_t *out_bad);

#endif
