/* mica dump (FILE.ir | MODEL.gguf) [--after PASS] [--format text|dot] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "gguf.h"
#include "ir.h"
#include "model.h"
#include "passes.h"

static void help(void)
{
    printf("usage: mica dump (FILE.ir | MODEL.gguf) [--after PASS] [--format text|dot]\n"
           "                 [--tokens N] [--past P]\n\n"
           "Reads IR text, or lowers a GGUF model's step of N new tokens after P cached\n"
           "ones (default 1 after 31: a decode step), runs the compiler pipeline\n"
           "through PASS (default: import, i.e. no rewrite) and prints the graph.\n"
           "Passes, in order:\n");
    for (int i = 0; i < mica_pass_count(); i++)
        printf("  %-14s %s\n", mica_pass_at(i)->name, mica_pass_at(i)->summary);
}

static mica_status_t print_graph(const mica_graph_t *g, const char *format, mica_diag_t *d)
{
    char *out = !strcmp(format, "dot") ? mica_graph_dot(g) : mica_graph_print(g);
    if (!out)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory printing the graph");
    fputs(out, stdout);
    free(out);
    if (fflush(stdout) != 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot write to standard output");
    return MICA_OK;
}

int mica_cmd_dump(int argc, char **argv)
{
    const char *path = NULL, *after = "import", *format = "text";
    int64_t n_tokens = 1, n_past = 31;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "--tokens") || !strcmp(a, "--past")) {
            int64_t *dst = a[2] == 't' ? &n_tokens : &n_past;
            if (i + 1 >= argc || !mica_arg_int(argv[i + 1], a[2] == 't' ? 1 : 0, 1 << 20, dst))
                return mica_cli_usage("dump", "%s takes a count", a);
            i++;
        } else if (!strcmp(a, "--after") || !strcmp(a, "--format")) {
            if (i + 1 >= argc)
                return mica_cli_usage("dump", "%s needs a value", a);
            if (!strcmp(a, "--after"))
                after = argv[++i];
            else
                format = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("dump", "unknown option '%s'", a);
        } else if (path) {
            return mica_cli_usage("dump", "more than one input file");
        } else {
            path = a;
        }
    }
    if (!path)
        return mica_cli_usage("dump", "no input file");
    if (strcmp(format, "text") && strcmp(format, "dot"))
        return mica_cli_usage("dump", "--format must be text or dot, not '%s'", format);
    if (!mica_pass_find(after)) {
        mica_diag_t d = {0};
        mica_pipeline_run(NULL, after, false, &d);
        return mica_cli_usage("dump", "%s", d.msg);
    }

    mica_diag_t d = {0};
    mica_graph_t *g = NULL;
    mica_status_t s;
    size_t plen = strlen(path);
    if (plen >= 5 && !strcmp(path + plen - 5, ".gguf")) {
        mica_gguf_t *f = NULL;
        mica_model_config_t cfg;
        s = mica_gguf_open(path, &f, &d);
        if (s == MICA_OK)
            s = mica_model_config_from_gguf(f, &cfg, &d);
        if (s == MICA_OK)
            s = mica_model_build(f, &cfg, n_tokens, n_past, true, &g, &d);
        if (s == MICA_OK)
            s = mica_pipeline_run(&g, after, true, &d);
        if (s == MICA_OK)
            s = print_graph(g, format, &d);
        mica_graph_release(g);
        mica_gguf_close(f);
        return s == MICA_OK ? MICA_EXIT_OK : mica_cli_fail(path, &d);
    }
    size_t len = 0;
    char *text = mica_cli_read_file(path, &len, &d);
    if (!text)
        return mica_cli_fail(path, &d);
    s = mica_graph_parse(text, len, &g, &d);
    free(text);
    if (s != MICA_OK)
        return mica_cli_fail(path, &d);
    s = mica_pipeline_run(&g, after, true, &d);
    if (s == MICA_OK)
        s = print_graph(g, format, &d);
    mica_graph_release(g);
    return s == MICA_OK ? MICA_EXIT_OK : mica_cli_fail(path, &d);
}
