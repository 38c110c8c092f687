/* mica compile MODEL.gguf -t TARGET [-q QUANT] [--group G] [-c CTX] -o DIR */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "artifact.h"
#include "cli.h"
#include "target.h"

static void help(void)
{
    printf("usage: mica compile MODEL.gguf -t TARGET -o DIR [options]\n\n"
           "Compiles the model ahead of time for TARGET ('mica targets' lists them) and\n"
           "writes the artifact directory DIR: the scheduled program as IR text, the\n"
           "packed weights (weights.bin, 64-byte aligned), the tokenizer and a manifest\n"
           "with checksums. Before writing anything large it prints the peak RAM the\n"
           "artifact needs on the device. DIR appears only once it is complete.\n\n"
           "  -t TARGET          the device (required)\n"
           "  -o DIR             the artifact directory (required)\n"
           "  -q QUANT           w4a8 (default), w8a8, w4a16, w8a16, f16, f32\n"
           "  --group G          quantization group: 32, 64 or 128 (default: 32 for\n"
           "                     GGUF Q4_0/Q4_1/Q8_0 tensors, which transcode exactly,\n"
           "                     64 for the rest)\n"
           "  --head auto|int8|int4  LM head weights: auto (default) keeps a 4-bit source head\n"
           "                     at 4 bits when it converts without loss, else int8\n"
           "  -c N               context (KV cache) in tokens (default: the model's\n"
           "                     trained length, capped by the target's memory budget)\n"
           "  --chunk N          prefill tokens per call (default: the target's)\n"
           "  --isa F1,F2        instruction features the kernels must use (e.g. i8mm);\n"
           "                     each must be one the target's cores have\n"
           "  --force            replace DIR if it exists (once the new one is complete)\n");
}

int mica_cmd_compile(int argc, char **argv)
{
    mica_compile_request_t req;
    memset(&req, 0, sizeof req);
    mica_compile_options_init(&req.options);
    const char *model = NULL, *isa = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool takes = !strcmp(a, "-t") || !strcmp(a, "-o") || !strcmp(a, "-q") ||
                     !strcmp(a, "--group") || !strcmp(a, "--head") || !strcmp(a, "-c") ||
                     !strcmp(a, "--chunk") || !strcmp(a, "--isa");
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "--force")) {
            req.force = true;
        } else if (takes) {
            if (i + 1 >= argc)
                return mica_cli_usage("compile", "%s needs a value", a);
            const char *v = argv[++i];
            int64_t n;
            if (!strcmp(a, "-t")) {
                req.target = v;
            } else if (!strcmp(a, "--isa")) {
                isa = v;
            } else if (!strcmp(a, "-o")) {
                req.out_dir = v;
            } else if (!strcmp(a, "-q")) {
                req.options.quant = v;
            } else if (!strcmp(a, "--head")) {
                if (strcmp(v, "auto") && strcmp(v, "int8") && strcmp(v, "int4"))
                    return mica_cli_usage("compile", "--head is auto, int8 or int4, not '%s'", v);
                req.options.head_quant = v;
            } else if (!strcmp(a, "--group")) {
                if (!mica_arg_int(v, 1, 1 << 20, &n) || (n != 32 && n != 64 && n != 128))
                    return mica_cli_usage("compile", "--group is 32, 64 or 128, not '%s'", v);
                req.options.group = (int32_t)n;
            } else if (!strcmp(a, "-c")) {
                if (!mica_arg_int(v, 1, 1 << 24, &n))
                    return mica_cli_usage("compile", "-c takes a context of 1 to %d tokens",
                                          1 << 24);
                req.options.context = n;
            } else {
                if (!mica_arg_int(v, 1, 4096, &n))
                    return mica_cli_usage("compile", "--chunk takes 1 to 4096 tokens");
                req.options.prefill_chunk = (int32_t)n;
            }
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("compile", "unknown option '%s'", a);
        } else if (model) {
            return mica_cli_usage("compile", "one model at a time ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
    }
    if (!model)
        return mica_cli_usage("compile", "no model given");
    if (!req.target)
        return mica_cli_usage("compile", "no target given (-t; 'mica targets' lists them)");
    if (!req.out_dir)
        return mica_cli_usage("compile", "no output directory given (-o DIR)");
    static const char *const quants[] = {"w4a8", "w8a8", "w4a16", "w8a16", "f16", "f32"};
    bool known = false;
    for (size_t k = 0; k < sizeof quants / sizeof quants[0]; k++)
        known |= !strcmp(req.options.quant, quants[k]);
    if (!known)
        return mica_cli_usage("compile", "unknown quantization '%s' (w4a8, w8a8, w4a16, w8a16, "
                              "f16, f32)", req.options.quant);
    mica_target_t t;
    mica_diag_t d = {0};
    if (mica_target_find(req.target, &t, &d) != MICA_OK)
        return mica_cli_usage("compile", "%s", d.msg);
    /* features asked for must be the target's */
    for (const char *f = isa; f && *f;) {
        size_t len = strcspn(f, ",");
        int k = 0;
        while (k < MICA_TARGET_FEATURE_COUNT &&
               !(strlen(mica_target_feature_name((mica_target_feature_t)k)) == len &&
                 !strncmp(mica_target_feature_name((mica_target_feature_t)k), f, len)))
            k++;
        char have[256];
        mica_target_features_format(t.features, have, sizeof have);
        if (k == MICA_TARGET_FEATURE_COUNT)
            return mica_cli_usage("compile", "unknown instruction feature '%.*s'", (int)len, f);
        if (!(t.features & MICA_TARGET_FEATURE_BIT(k)))
            return mica_cli_usage("compile", "target %s cannot honour %.*s: its cores have %s",
                                  t.name, (int)len, f, have[0] ? have : "none of the listed ones");
        f += len + (f[len] == ',');
    }
    req.isa = isa;
    req.model_path = model;
    req.log = stderr;
    req.progress = isatty(STDERR_FILENO);
    if (mica_compile(&req, NULL, &d) != MICA_OK)
        return mica_cli_fail(model, &d);
    fprintf(stderr, "mica compile: wrote %s\n", req.out_dir);
    return MICA_EXIT_OK;
}
