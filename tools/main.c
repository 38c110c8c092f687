/* mica: compile, run and inspect LLMs for edge devices. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

int mica_cmd_template(int argc, char **argv); /* tools/cmd_template.c */

static const struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} verbs[] = {
    {"compile", mica_cmd_compile, "compile a model for a target into an artifact directory"},
    {"run", mica_cmd_run, "generate text from a prompt"},
    {"chat", mica_cmd_chat, "chat with a model, one message per line"},
    {"tokenize", mica_cmd_tokenize, "print the token ids of a text"},
    {"template", mica_cmd_template, "print the chat prompt a conversation renders to"},
    {"detokenize", mica_cmd_detokenize, "print the text of comma-separated token ids"},
    {"synth", mica_cmd_synth, "write a random-weight GGUF in a real model's shapes"},
    {"dump", mica_cmd_dump, "print the IR after a pass, as text or Graphviz DOT"},
    {"targets", mica_cmd_targets, "list the targets mica compiles for and their features"},
    {"bench", mica_cmd_bench, "measure prompt and generation speed, llama-bench style"},
    {"perplexity", mica_cmd_perplexity, "measure a model's perplexity on a text, llama.cpp's way"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: mica COMMAND [ARGS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(f, "\n'mica COMMAND --help' describes one command.\n");
}

/* True if msg starts "LINE:COL:" (digits, colon, digits, colon), not just a
 * number ("3 heads are ..."). */
static bool starts_with_position(const char *msg)
{
    const char *p = msg;
    for (int part = 0; part < 2; part++) {
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p++ != ':')
            return false;
    }
    return true;
}

int mica_cli_fail(const char *file, const mica_diag_t *d)
{
    /* Parser messages start with "LINE:COL: " and join the file name
     * without a space: FILE:LINE:COL: message. */
    if (file && starts_with_position(d->msg))
        fprintf(stderr, "%s:%s\n", file, d->msg);
    else if (file)
        fprintf(stderr, "%s: %s\n", file, d->msg);
    else
        fprintf(stderr, "mica: %s\n", d->msg);
    return MICA_EXIT_FAIL;
}

int mica_cli_usage(const char *verb, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "mica %s: ", verb);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see 'mica %s --help')\n", verb);
    va_end(ap);
    return MICA_EXIT_USAGE;
}

char *mica_cli_read_file(const char *path, size_t *out_len, mica_diag_t *d)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mica_diag_set(d, MICA_ERR_IO, "cannot open: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        mica_diag_set(d, MICA_ERR_IO, "not a regular file");
        return NULL;
    }
    size_t cap = (size_t)st.st_size + 1, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        mica_diag_set(d, MICA_ERR_NOMEM, "file too large to read (%lld bytes)",
                      (long long)st.st_size);
        return NULL;
    }
    len = fread(buf, 1, cap - 1, f);
    if (ferror(f)) {
        free(buf);
        fclose(f);
        mica_diag_set(d, MICA_ERR_IO, "read failed: %s", strerror(errno));
        return NULL;
    }
    fclose(f);
    buf[len] = 0;
    *out_len = len;
    return buf;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return MICA_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return MICA_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (!strcmp(argv[1], verbs[i].name))
            return verbs[i].run(argc - 2, argv + 2);
    fprintf(stderr, "mica: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return MICA_EXIT_USAGE;
}
