/* mica dump (FILE.ir | MODEL.gguf) [--after PASS] [--format text|dot] [-t TARGET]
 *           [--graph decode|prefill|step] [-c N] [--tokens N] [--past P] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "artifact.h"
#include "cli.h"
#include "gguf.h"
#include "ir.h"
#include "model.h"
#include "passes.h"
#include "program.h"
#include "quantize.h"
#include "schedule.h"
#include "target.h"

#define DUMP_DEFAULT_CONTEXT 512 /* KV cache capacity of the dumped program */

static void help(void)
{
    printf("usage: mica dump (FILE.ir | MODEL.gguf | ARTIFACT) [--after PASS] [--format text|dot]\n"
           "                 [-t TARGET] [-q QUANT] [--graph decode|prefill|step] [-c N]\n"
           "                 [--tokens N] [--past P]\n\n"
           "Reads IR text, or lowers a GGUF model to one graph of its static program\n"
           "(--graph decode, the default: one token; prefill: the target's chunk of\n"
           "tokens) over a KV cache of N tokens (-c, default %d), or to the per-step\n"
           "graph of N new tokens after P cached ones (--graph step; default 1 after\n"
           "31). Runs the compiler pipeline through PASS (default: import, i.e. no\n"
           "rewrite) for TARGET (default host; see 'mica targets') and prints the\n"
           "graph; after the schedule pass, '# schedule:' comment lines follow with\n"
           "the predicted time. -q chooses the quantization (as mica compile; default\n"
           "w4a8). An artifact directory prints its compiled graph (--graph decode or\n"
           "prefill) as it was written. Passes, in order:\n",
           DUMP_DEFAULT_CONTEXT);
    for (int i = 0; i < mica_pass_count(); i++)
        printf("  %-14s %s\n", mica_pass_at(i)->name, mica_pass_at(i)->summary);
}

static mica_status_t print_graph(const mica_graph_t *g, const char *format,
                                 const mica_target_t *t, mica_diag_t *d)
{
    bool dot = !strcmp(format, "dot");
    char *out = dot ? mica_graph_dot(g) : mica_graph_print(g);
    if (!out)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory printing the graph");
    fputs(out, stdout);
    free(out);
    if (!dot && (out = mica_schedule_summary(g, t)) != NULL) {
        fputs(out, stdout);
        free(out);
    }
    if (fflush(stdout) != 0)
        return mica_diag_set(d, MICA_ERR_IO, "cannot write to standard output");
    return MICA_OK;
}

/* The graph `which` of the model in f, for target t. */
static mica_status_t build_from_gguf(const mica_gguf_t *f, const char *which,
                                     const mica_target_t *t, int64_t n_ctx, int64_t n_tokens,
                                     int64_t n_past, mica_graph_t **out_graph, mica_diag_t *d)
{
    mica_model_config_t cfg;
    MICA_TRY(mica_model_config_from_gguf(f, &cfg, d));
    if (!strcmp(which, "step"))
        return mica_model_build(f, &cfg, n_tokens, n_past, true, out_graph, d);
    int64_t chunk = t->prefill_chunk > 0 ? t->prefill_chunk : 1;
    if (chunk > n_ctx)
        chunk = n_ctx;
    mica_program_t *p = NULL;
    MICA_TRY(mica_program_build(f, &cfg, chunk, n_ctx, &p, d));
    mica_graph_t **keep = !strcmp(which, "prefill") ? &p->prefill : &p->decode;
    *out_graph = *keep;
    *keep = NULL;
    mica_program_release(p);
    return MICA_OK;
}

int mica_cmd_dump(int argc, char **argv)
{
    const char *path = NULL, *after = "import", *format = "text", *target_name = "host";
    const char *which = "decode", *quant = "w4a8";
    int64_t n_tokens = 1, n_past = 31, n_ctx = DUMP_DEFAULT_CONTEXT;
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
        } else if (!strcmp(a, "-c") || !strcmp(a, "--context")) {
            if (i + 1 >= argc || !mica_arg_int(argv[i + 1], 1, 1 << 24, &n_ctx))
                return mica_cli_usage("dump", "%s takes a token count", a);
            i++;
        } else if (!strcmp(a, "--after") || !strcmp(a, "--format") || !strcmp(a, "-t") ||
                   !strcmp(a, "--target") || !strcmp(a, "--graph") || !strcmp(a, "-q")) {
            if (i + 1 >= argc)
                return mica_cli_usage("dump", "%s needs a value", a);
            const char *v = argv[++i];
            if (!strcmp(a, "--after"))
                after = v;
            else if (!strcmp(a, "--format"))
                format = v;
            else if (!strcmp(a, "--graph"))
                which = v;
            else if (!strcmp(a, "-q"))
                quant = v;
            else
                target_name = v;
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
    if (strcmp(which, "decode") && strcmp(which, "prefill") && strcmp(which, "step"))
        return mica_cli_usage("dump", "--graph must be decode, prefill or step, not '%s'", which);
    if (!mica_pass_find(after)) {
        mica_diag_t d = {0};
        mica_pipeline_run(NULL, after, false, &d);
        return mica_cli_usage("dump", "%s", d.msg);
    }
    mica_diag_t d = {0};
    mica_target_t target;
    if (mica_target_find(target_name, &target, &d) != MICA_OK)
        return mica_cli_usage("dump", "%s", d.msg);

    if (mica_artifact_is_dir(path)) {
        if (!strcmp(which, "step"))
            return mica_cli_usage("dump", "an artifact has a decode and a prefill graph, no step");
        mica_artifact_t *a = NULL;
        if (mica_artifact_open(path, &a, &d) != MICA_OK)
            return mica_cli_fail(path, &d);
        mica_target_t at;
        bool known = mica_target_find(a->target, &at, &d) == MICA_OK;
        mica_status_t st = print_graph(!strcmp(which, "prefill") ? a->program->prefill
                                                                 : a->program->decode,
                                       format, known ? &at : NULL, &d);
        mica_artifact_close(a);
        return st == MICA_OK ? MICA_EXIT_OK : mica_cli_fail(path, &d);
    }
    if (mica_quant_mode_from_name(quant) == MICA_QUANT_MODE_COUNT)
        return mica_cli_usage("dump", "unknown quantization '%s' (w4a8, w8a8, w4a16, w8a16, "
                              "f16, f32)", quant);
    mica_graph_t *g = NULL;
    mica_status_t s;
    size_t plen = strlen(path);
    mica_gguf_t *f = NULL;
    if (plen >= 5 && !strcmp(path + plen - 5, ".gguf")) {
        s = mica_gguf_open(path, &f, &d);
        if (s == MICA_OK)
            s = build_from_gguf(f, which, &target, n_ctx, n_tokens, n_past, &g, &d);
    } else {
        size_t len = 0;
        char *text = mica_cli_read_file(path, &len, &d);
        if (!text)
            return mica_cli_fail(path, &d);
        s = mica_graph_parse(text, len, &g, &d);
        free(text);
    }
    mica_pass_ctx_t ctx;
    mica_compile_options_t opts;
    mica_compile_options_init(&opts);
    opts.quant = quant;
    bool have_ctx = false;
    if (s == MICA_OK)
        s = mica_pass_ctx_init(&ctx, &target, &opts, &d);
    have_ctx = s == MICA_OK;
    if (s == MICA_OK)
        s = mica_pipeline_run_ctx(&ctx, &g, after, true, &d);
    /* the summary names the target only if this run scheduled for it */
    bool scheduled = false;
    for (int i = 0; i < mica_pass_count(); i++) {
        scheduled |= !strcmp(mica_pass_at(i)->name, "schedule");
        if (!strcmp(mica_pass_at(i)->name, after))
            break;
    }
    if (s == MICA_OK)
        s = print_graph(g, format, scheduled ? &target : NULL, &d);
    if (have_ctx)
        mica_pass_ctx_deinit(&ctx);
    mica_graph_release(g);
    mica_gguf_close(f);
    return s == MICA_OK ? MICA_EXIT_OK : mica_cli_fail(path, &d);
}
