/* mica chat MODEL [-s SYSTEM] [-n N] [sampling options]
 *
 * Reads one user message per line from stdin and streams the assistant's
 * reply, formatted with the model's chat template. The KV cache keeps the
 * conversation: each turn feeds only the new text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "chat.h"
#include "cli.h"
#include "session.h"

static void help(void)
{
    printf("usage: mica chat (MODEL.gguf | ARTIFACT) [-s SYSTEM] [-n N] [options]\n\n"
           "Interactive chat: one user message per line on stdin; an empty line or\n"
           "end of input ends the chat.\n"
           "  -s TEXT             system prompt\n"
           "  -n N                most tokens per reply (default 256)\n"
           "  -t N                threads of a compiled artifact (default: the cores online)\n"
           "  --backend ref       run an artifact's program on the reference backend\n"
           MICA_ARG_SAMPLING_HELP);
}

/* A growing list of messages whose strings the list owns. */
typedef struct conv {
    mica_chat_message_t *m;
    size_t n, cap;
} conv_t;

static bool conv_add(conv_t *c, const char *role, const char *text, size_t len)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        mica_chat_message_t *m = realloc(c->m, cap * sizeof *m);
        if (!m)
            return false;
        c->m = m;
        c->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return false;
    memcpy(copy, text, len);
    copy[len] = 0;
    c->m[c->n].role = role;
    c->m[c->n].content = copy;
    c->n++;
    return true;
}

static void conv_free(conv_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->m[i].content);
    free(c->m);
}

/* Formats the conversation; malloc'd NUL-terminated text. */
static char *render(mica_chat_format_t f, const conv_t *c, int add_assistant, size_t *out_len,
                    mica_diag_t *d)
{
    size_t need = 0;
    mica_status_t s = mica_chat_format(f, c->m, c->n, add_assistant, NULL, 0, &need, d);
    if (s != MICA_OK && s != MICA_ERR_RANGE)
        return NULL;
    char *buf = malloc(need + 1);
    if (!buf || mica_chat_format(f, c->m, c->n, add_assistant, buf, need + 1, out_len, d) != MICA_OK) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* Reads one line from stdin into a malloc'd buffer (no newline); NULL at
 * end of input. */
static char *read_line(size_t *out_len)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    *out_len = (size_t)n;
    return line;
}

/* Collects what the generation loop prints, to keep the reply's text. */
typedef struct capture {
    char *p;
    size_t n, cap;
} capture_t;

int mica_cmd_chat(int argc, char **argv)
{
    const char *model = NULL, *system = NULL;
    int64_t n_gen = 256, threads = mica_arg_default_threads();
    mica_cli_backend_t backend = MICA_CLI_BACKEND_AUTO;
    mica_sampler_params_t sp = mica_sampler_params_default();
    for (int i = 0; i < argc; i++) {
        int got = mica_arg_sampling("chat", argc, argv, &i, &sp);
        if (got < 0)
            return MICA_EXIT_USAGE;
        if (got)
            continue;
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "-s")) {
            if (i + 1 >= argc)
                return mica_cli_usage("chat", "-s needs a value");
            system = argv[++i];
        } else if (!strcmp(a, "-n")) {
            if (i + 1 >= argc || !mica_arg_int(argv[i + 1], 1, 1 << 20, &n_gen))
                return mica_cli_usage("chat", "-n takes a count in [1, 1048576]");
            i++;
        } else if (!strcmp(a, "-t")) {
            if (i + 1 >= argc || !mica_arg_int(argv[i + 1], 1, 1024, &threads))
                return mica_cli_usage("chat", "-t takes a thread count in [1, 1024]");
            i++;
        } else if (!strcmp(a, "--backend")) {
            if (i + 1 >= argc || !mica_cli_backend_parse(argv[i + 1], &backend))
                return mica_cli_usage("chat", "--backend takes cpu or ref");
            i++;
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("chat", "unknown option '%s'", a);
        } else if (model) {
            return mica_cli_usage("chat", "more than one model given");
        } else {
            model = a;
        }
    }
    if (!model)
        return mica_cli_usage("chat", "no model given");

    mica_diag_t d = {0};
    mica_cli_session_t s;
    mica_cli_open_t how = {NULL, true, backend, (int32_t)threads};
    if (mica_cli_session_open(&s, model, &how, &d) != MICA_OK)
        return mica_cli_fail(model, &d);
    int rc = MICA_EXIT_OK;
    mica_sampler_t *sampler = NULL;
    conv_t conv = {0};
    char *fed = NULL; /* the conversation text the cache holds */
    size_t fed_len = 0;
    mica_chat_format_t fmt;
    if (mica_chat_detect(s.chat_template, s.chat_template_len, &fmt, &d) != MICA_OK ||
        mica_sampler_create(s.n_vocab, &sp, &sampler, &d) != MICA_OK) {
        rc = mica_cli_fail(model, &d);
        goto done;
    }
    if (system && !conv_add(&conv, "system", system, strlen(system))) {
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        rc = mica_cli_fail(NULL, &d);
        goto done;
    }
    bool tty = isatty(STDIN_FILENO);
    for (;;) {
        if (tty)
            fprintf(stderr, "> ");
        size_t len;
        char *line = read_line(&len);
        if (!line || len == 0) {
            free(line);
            break;
        }
        bool ok = conv_add(&conv, "user", line, len);
        free(line);
        size_t full_len = 0;
        char *full = ok ? render(fmt, &conv, 1, &full_len, &d) : NULL;
        if (!full) {
            if (!ok)
                mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
            rc = mica_cli_fail(model, &d);
            break;
        }
        /* The new text: what the template adds after the fed conversation
         * (the end of the last reply, the user turn, the assistant opening). */
        if (fed_len > full_len || (fed && memcmp(full, fed, fed_len) != 0)) {
            mica_diag_set(&d, MICA_ERR_UNSUPPORTED, "the %s template rewrites earlier turns",
                          mica_chat_format_name(fmt));
            free(full);
            rc = mica_cli_fail(model, &d);
            break;
        }
        int32_t *ids = NULL;
        size_t n_ids = 0;
        uint32_t flags = MICA_TOKENIZER_PARSE_SPECIAL | (fed_len == 0 ? MICA_TOKENIZER_ADD_SPECIAL : 0);
        if (mica_cli_tokenize(&s, full + fed_len, full_len - fed_len, flags, &ids, &n_ids, &d) != MICA_OK) {
            free(full);
            rc = mica_cli_fail(model, &d);
            break;
        }
        /* Capture the reply's text while it streams to stdout. */
        capture_t cap = {0};
        FILE *mem = open_memstream(&cap.p, &cap.n);
        mica_cli_timing_t tm;
        mica_status_t st = mem ? MICA_OK : mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        if (st == MICA_OK)
            st = mica_cli_generate(&s, ids, n_ids, (int32_t)n_gen, sampler, false, true, stdout,
                                   mem, &tm, &d);
        if (mem)
            fclose(mem);
        free(ids);
        if (st != MICA_OK) {
            free(full);
            free(cap.p);
            rc = mica_cli_fail(model, &d);
            break;
        }
        printf("\n");
        fflush(stdout);
        /* The cache now holds the fed text plus the reply. */
        char *grown = realloc(full, full_len + cap.n + 1);
        if (!grown || !conv_add(&conv, "assistant", cap.p, cap.n)) {
            free(grown ? grown : full);
            free(cap.p);
            mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
            rc = mica_cli_fail(NULL, &d);
            break;
        }
        memcpy(grown + full_len, cap.p, cap.n);
        grown[full_len + cap.n] = 0;
        free(fed);
        fed = grown;
        fed_len = full_len + cap.n;
        free(cap.p);
    }
done:
    free(fed);
    conv_free(&conv);
    mica_sampler_release(sampler);
    mica_cli_session_close(&s);
    return rc;
}
