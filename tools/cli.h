/* The `mica` command: one file per verb. Each verb gets argv after the
 * verb name and returns the process exit status: 0 success, 1 failure at
 * run time (one line on stderr naming the file and the problem), 2 bad
 * command line. */
#ifndef MICA_CLI_H
#define MICA_CLI_H

#include <stddef.h>

#include "diag.h"

#define MICA_EXIT_OK 0
#define MICA_EXIT_FAIL 1
#define MICA_EXIT_USAGE 2

int mica_cmd_compile(int argc, char **argv);
int mica_cmd_dump(int argc, char **argv);
int mica_cmd_run(int argc, char **argv);
int mica_cmd_chat(int argc, char **argv);
int mica_cmd_tokenize(int argc, char **argv);
int mica_cmd_detokenize(int argc, char **argv);
int mica_cmd_targets(int argc, char **argv);
int mica_cmd_synth(int argc, char **argv);
int mica_cmd_bench(int argc, char **argv);
int mica_cmd_perplexity(int argc, char **argv);

/* Prints "FILE: message" ("FILE:LINE:COL: message" for parser messages,
 * "mica: message" when file is NULL) on stderr; returns MICA_EXIT_FAIL. */
int mica_cli_fail(const char *file, const mica_diag_t *d);
/* Prints "mica VERB: message" and a hint to stderr; returns MICA_EXIT_USAGE. */
int mica_cli_usage(const char *verb, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Reads a whole file (NUL appended). On failure sets d and returns NULL.
 * Caller frees. */
char *mica_cli_read_file(const char *path, size_t *out_len, mica_diag_t *d);

#endif
