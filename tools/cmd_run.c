/* mica run MODEL (-p TEXT | -f FILE | --tokens IDS) [options] */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "session.h"

static void help(void)
{
    printf("usage: mica run (MODEL.gguf | ARTIFACT) (-p TEXT | -f FILE | --tokens IDS) [options]\n\n"
           "Generates text from a prompt: a GGUF on the exact reference path, a compiled\n"
           "artifact (mica compile) through its model object, as an app runs it.\n\n"
           "  -p TEXT             prompt (special tokens in it are parsed)\n"
           "  -f FILE             prompt read from a file\n"
           "  --tokens 1,2,3      prompt as token ids (no BOS added)\n"
           "  -n N                tokens to generate (default 64)\n"
           "  --dump-logits PATH  write float32 logits of every prompt position,\n"
           "                      [n_tokens][n_vocab] little-endian, and exit\n"
           MICA_ARG_SAMPLING_HELP
           "  --ignore-eos        do not stop at end-of-generation tokens\n"
           "  -t N                threads (default: the cores online; the reference\n"
           "                      path uses one; results are the same for any N)\n"
           "  --backend ref       run an artifact's program on the reference backend\n"
           "                      (default: its model object; ref when it has none)\n"
           "  --after PASS        run the compiler pipeline through PASS on each\n"
           "                      step's graph before interpreting it\n"
           "Text goes to stdout, timings to stderr.\n");
}

/* "1,2,3" -> ids; false on anything else. */
static bool parse_ids(const char *s, int32_t **out_ids, size_t *out_n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    if (cap > (1u << 20))
        return false;
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids)
        return false;
    size_t n = 0;
    const char *p = s;
    while (1) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX || (*end != ',' && *end)) {
            free(ids);
            return false;
        }
        ids[n++] = (int32_t)v;
        if (!*end)
            break;
        p = end + 1;
    }
    *out_ids = ids;
    *out_n = n;
    return true;
}

/* Writes n floats to path through a temporary file renamed at the end, so
 * a failure leaves no half-written file. */
static mica_status_t write_floats(const char *path, const float *v, size_t n, mica_diag_t *d)
{
    size_t len = strlen(path) + 32;
    char *tmp = malloc(len);
    if (!tmp)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    snprintf(tmp, len, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    mica_status_t s = MICA_OK;
    if (!f)
        s = mica_diag_set(d, MICA_ERR_IO, "cannot create: %s", strerror(errno));
    else if (fwrite(v, sizeof *v, n, f) != n || fflush(f) != 0)
        s = mica_diag_set(d, MICA_ERR_IO, "write failed: %s", strerror(errno));
    if (f && fclose(f) != 0 && s == MICA_OK)
        s = mica_diag_set(d, MICA_ERR_IO, "write failed: %s", strerror(errno));
    if (s == MICA_OK && rename(tmp, path) != 0)
        s = mica_diag_set(d, MICA_ERR_IO, "cannot rename into place: %s", strerror(errno));
    if (s != MICA_OK)
        unlink(tmp);
    free(tmp);
    return s;
}

int mica_cmd_run(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *prompt_file = NULL, *ids_arg = NULL;
    const char *dump = NULL, *after = NULL;
    mica_cli_backend_t backend = MICA_CLI_BACKEND_AUTO;
    int64_t n_gen = 64, threads = mica_arg_default_threads();
    mica_sampler_params_t sp = mica_sampler_params_default();
    bool ignore_eos = false;
    for (int i = 0; i < argc; i++) {
        int got = mica_arg_sampling("run", argc, argv, &i, &sp);
        if (got < 0)
            return MICA_EXIT_USAGE;
        if (got)
            continue;
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() \
    do { \
        if (!v) \
            return mica_cli_usage("run", "%s needs a value", a); \
        i++; \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "-p")) {
            NEED_VALUE();
            prompt = v;
        } else if (!strcmp(a, "-f")) {
            NEED_VALUE();
            prompt_file = v;
        } else if (!strcmp(a, "--tokens")) {
            NEED_VALUE();
            ids_arg = v;
        } else if (!strcmp(a, "--dump-logits")) {
            NEED_VALUE();
            dump = v;
        } else if (!strcmp(a, "--after")) {
            NEED_VALUE();
            after = v;
        } else if (!strcmp(a, "--backend")) {
            NEED_VALUE();
            if (!mica_cli_backend_parse(v, &backend))
                return mica_cli_usage("run", "--backend takes cpu or ref, not '%s'", v);
        } else if (!strcmp(a, "-n")) {
            NEED_VALUE();
            if (!mica_arg_int(v, 0, 1 << 24, &n_gen))
                return mica_cli_usage("run", "-n takes a count in [0, 16777216], not '%s'", v);
        } else if (!strcmp(a, "-t")) {
            NEED_VALUE();
            if (!mica_arg_int(v, 1, 1024, &threads))
                return mica_cli_usage("run", "-t takes a thread count in [1, 1024], not '%s'", v);
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("run", "unknown option '%s'", a);
        } else if (model) {
            return mica_cli_usage("run", "more than one model given ('%s' and '%s')", model, a);
        } else {
            model = a;
        }
#undef NEED_VALUE
    }
    if (!model)
        return mica_cli_usage("run", "no model given");
    if (!!prompt + !!prompt_file + !!ids_arg != 1)
        return mica_cli_usage("run", "give exactly one of -p, -f and --tokens");
    int32_t *ids = NULL;
    size_t n_ids = 0;
    if (ids_arg && !parse_ids(ids_arg, &ids, &n_ids))
        return mica_cli_usage("run", "--tokens takes comma-separated ids, not '%s'", ids_arg);

    mica_diag_t d = {0};
    int rc = MICA_EXIT_OK;
    char *text = NULL;
    size_t text_len = 0;
    mica_cli_session_t s;
    mica_sampler_t *sampler = NULL;
    if (prompt_file && !(text = mica_cli_read_file(prompt_file, &text_len, &d))) {
        free(ids);
        return mica_cli_fail(prompt_file, &d);
    }
    mica_cli_open_t how = {after, !dump || !ids, backend, (int32_t)threads};
    if (mica_cli_session_open(&s, model, &how, &d) != MICA_OK) {
        free(ids);
        free(text);
        return mica_cli_fail(model, &d);
    }
    if (!ids) {
        const char *t = prompt ? prompt : text;
        size_t len = prompt ? strlen(prompt) : text_len;
        if (mica_cli_tokenize(&s, t, len, MICA_TOKENIZER_ADD_SPECIAL | MICA_TOKENIZER_PARSE_SPECIAL,
                              &ids, &n_ids, &d) != MICA_OK) {
            rc = mica_cli_fail(model, &d);
            goto done;
        }
    }
    if (n_ids == 0) {
        mica_diag_set(&d, MICA_ERR_INVALID, "the prompt has no tokens");
        rc = mica_cli_fail(model, &d);
        goto done;
    }
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] >= s.n_vocab) {
            mica_diag_set(&d, MICA_ERR_RANGE, "token id %d is outside the vocabulary [0, %d)",
                          ids[i], s.n_vocab);
            rc = mica_cli_fail(model, &d);
            goto done;
        }

    if (dump) {
        float *all = malloc(n_ids * (size_t)s.n_vocab * sizeof *all);
        if (!all) {
            mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory for %zu rows of logits", n_ids);
            rc = mica_cli_fail(model, &d);
            goto done;
        }
        double t0 = mica_cli_now();
        if (mica_cli_session_eval(&s, ids, (int32_t)n_ids, true, all, &d) != MICA_OK)
            rc = mica_cli_fail(model, &d);
        else if (write_floats(dump, all, n_ids * (size_t)s.n_vocab, &d) != MICA_OK)
            rc = mica_cli_fail(dump, &d);
        else
            fprintf(stderr, "mica: %zu positions x %d logits written to %s (%.2f s)\n", n_ids,
                    s.n_vocab, dump, mica_cli_now() - t0);
        free(all);
        goto done;
    }

    if (mica_sampler_create(s.n_vocab, &sp, &sampler, &d) != MICA_OK) {
        rc = mica_cli_fail(NULL, &d);
        goto done;
    }
    mica_cli_timing_t tm;
    if (mica_cli_generate(&s, ids, n_ids, (int32_t)n_gen, sampler, ignore_eos, false, stdout, NULL, &tm,
                          &d) != MICA_OK) {
        rc = mica_cli_fail(model, &d);
    } else {
        printf("\n");
        fflush(stdout); /* the text before the timings when both go to a terminal */
        fprintf(stderr, "mica: prompt %" PRId64 " tokens in %.2f s (%.2f tok/s), generated %" PRId64
                        " tokens in %.2f s (%.2f tok/s)\n",
                tm.n_prompt, tm.t_prompt, tm.t_prompt > 0 ? tm.n_prompt / tm.t_prompt : 0.0,
                tm.n_gen, tm.t_gen, tm.t_gen > 0 ? tm.n_gen / tm.t_gen : 0.0);
    }
done:
    mica_cli_session_close(&s);
    mica_sampler_release(sampler);
    free(ids);
    free(text);
    return rc;
}
