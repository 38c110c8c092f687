/* mica chat (MODEL.gguf | ARTIFACT) [--system TEXT] [-n N] [-c CTX] [options]
 *
 * Reads one user message per line from stdin and streams the assistant's
 * reply, formatted with the model's chat template. The KV cache keeps the
 * conversation: each turn feeds only the text the template adds after
 * what is cached (the end of the last answer, the new user turn, the
 * opening of the answer). When the next turn does not fit in the context,
 * the oldest turns are dropped (the system prompt stays) and the kept
 * conversation is fed again from an empty cache: the compiled model has no
 * way to move cached positions, so re-feeding the kept text is the honest
 * way to forget. Ctrl-C stops an answer; /reset and /exit are commands.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "chat.h"
#include "cli.h"
#include "generate.h"
#include "session.h"

static void help(void)
{
    printf("usage: mica chat (MODEL.gguf | ARTIFACT) [--system TEXT] [-n N] [options]\n\n"
           "Interactive chat: one user message per line on stdin, the answer streamed\n"
           "to stdout. /reset forgets the conversation (not the system prompt), /exit\n"
           "or end of input ends the chat; Ctrl-C stops an answer (at the prompt, twice\n"
           "in a row ends the chat).\n"
           "  --system TEXT, -s TEXT  system prompt\n"
           "  -n N                    most tokens per answer (default 256)\n"
           "  -c CTX                  use at most CTX tokens of context (default: the model's)\n"
           "  --chat-template NAME    render as NAME instead of the model's template:\n"
           "                          %s\n"
           "  -v, --stats             after each answer, on stderr: tokens evaluated, cached,\n"
           "                          generated and the speed\n"
           "  -t N                    threads of a compiled artifact (default: the cores online)\n"
           "  --backend ref           run an artifact's program on the reference backend\n"
           MICA_ARG_SAMPLING_HELP,
           mica_chat_names());
}

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* A list of messages whose strings the list owns. */
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

/* Removes messages [from, from + k). */
static void conv_remove(conv_t *c, size_t from, size_t k)
{
    for (size_t i = from; i < from + k; i++)
        free((char *)c->m[i].content);
    memmove(c->m + from, c->m + from + k, (c->n - from - k) * sizeof *c->m);
    c->n -= k;
}

static void conv_free(conv_t *c)
{
    for (size_t i = 0; i < c->n; i++)
        free((char *)c->m[i].content);
    free(c->m);
}

/* The chat's state. */
typedef struct chat {
    mica_cli_session_t *s;
    mica_chat_template_t tmpl;
    mica_sampler_t *sampler;
    mica_generator_t gen;
    conv_t conv;
    size_t n_system;  /* 1 when conv starts with the system prompt */
    char *fed;        /* the text the cache holds (what was fed and printed) */
    size_t fed_len;
    int64_t n_ctx;    /* context the chat may use, tokens */
    int64_t n_eval;   /* tokens run through the model, in all */
    char *reply;      /* [reply_cap]: the answer being streamed */
    size_t reply_len, reply_cap;
    bool write_failed;
    const char *model;
} chat_t;

/* mica_generate_eval_fn over the session, counting what it runs. */
static mica_status_t chat_eval(void *ctx, const int32_t *tokens, int32_t n,
                               const float **out_logits, mica_diag_t *d)
{
    chat_t *c = ctx;
    MICA_TRY(mica_cli_session_eval(c->s, tokens, n, false, c->s->logits, d));
    c->n_eval += n;
    *out_logits = c->s->logits;
    return MICA_OK;
}

/* Streams a piece to stdout and keeps it; stops on Ctrl-C or a write error. */
static int on_piece(const char *piece, size_t len, int32_t token, void *user)
{
    (void)token;
    chat_t *c = user;
    if (len && (fwrite(piece, 1, len, stdout) != len || fflush(stdout) != 0)) {
        c->write_failed = true;
        return 1;
    }
    if (c->reply_len + len <= c->reply_cap) {
        memcpy(c->reply + c->reply_len, piece, len);
        c->reply_len += len;
    }
    return interrupted != 0;
}

/* Tokens cached, with the pending one the next feed runs. */
static int64_t cached(const chat_t *c)
{
    return mica_cli_session_n_past(c->s) + (mica_generator_pending(&c->gen) != MICA_TOKEN_NULL);
}

/* Empties the cache (and the text it held). */
static void forget(chat_t *c)
{
    mica_cli_session_reset(c->s);
    mica_generator_reset(&c->gen);
    mica_sampler_reset(c->sampler);
    free(c->fed);
    c->fed = NULL;
    c->fed_len = 0;
}

/* Renders the conversation with the answer opened into *out (malloc'd). */
static mica_status_t render(const chat_t *c, char **out, size_t *out_len, mica_diag_t *d)
{
    size_t need = 0;
    mica_status_t s = mica_chat_render(&c->tmpl, c->conv.m, c->conv.n, 1, NULL, 0, &need, d);
    if (s != MICA_ERR_RANGE)
        return s;
    char *buf = malloc(need + 1);
    if (!buf)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory");
    s = mica_chat_render(&c->tmpl, c->conv.m, c->conv.n, 1, buf, need + 1, out_len, d);
    if (s != MICA_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    return MICA_OK;
}

/* What the next turn feeds: the rendered conversation after the text the
 * cache holds, or all of it (*out_from_scratch) when the template wrote the
 * earlier turns differently. Tokens malloc'd into *out_ids. */
static mica_status_t next_tokens(chat_t *c, char **out_full, size_t *out_full_len,
                                 int32_t **out_ids, size_t *out_n, bool *out_from_scratch,
                                 mica_diag_t *d)
{
    size_t full_len = 0;
    char *full = NULL;
    MICA_TRY(render(c, &full, &full_len, d));
    bool scratch = c->fed_len == 0 || c->fed_len > full_len || memcmp(full, c->fed, c->fed_len) != 0;
    size_t from = scratch ? 0 : c->fed_len;
    uint32_t flags = MICA_TOKENIZER_PARSE_SPECIAL | (from == 0 ? MICA_TOKENIZER_ADD_SPECIAL : 0);
    mica_status_t st = mica_cli_tokenize(c->s, full + from, full_len - from, flags, out_ids, out_n, d);
    if (st != MICA_OK) {
        free(full);
        return st;
    }
    *out_full = full;
    *out_full_len = full_len;
    *out_from_scratch = scratch;
    return MICA_OK;
}

/* One turn after the user's message was added: make it fit, feed it,
 * stream the answer. Returns an exit status to end the chat with, or -1
 * to go on. */
static int turn(chat_t *c, int64_t n_gen, bool stats, int turn_no)
{
    mica_diag_t d = {0};
    char *full = NULL;
    size_t full_len = 0, n_ids = 0;
    int32_t *ids = NULL;
    bool scratch = false;
    size_t dropped = 0;
    for (;;) {
        if (next_tokens(c, &full, &full_len, &ids, &n_ids, &scratch, &d) != MICA_OK)
            return mica_cli_fail(c->model, &d);
        int64_t base = scratch ? 0 : cached(c);
        if (base + (int64_t)n_ids < c->n_ctx)
            break; /* fits, with room for at least one token of the answer */
        free(full);
        free(ids);
        /* the oldest turn after the system prompt goes: a user message and
         * the answers up to the next user message */
        size_t first = c->n_system, k = 1;
        while (first + k < c->conv.n && strcmp(c->conv.m[first + k].role, "user"))
            k++;
        if (first + k >= c->conv.n) {
            /* only the new message is left, and it does not fit */
            fprintf(stderr,
                    "mica chat: the message needs %zu tokens%s and the context holds %lld; "
                    "not sent\n",
                    n_ids, c->n_system ? " with the system prompt" : "", (long long)c->n_ctx);
            conv_remove(&c->conv, c->conv.n - 1, 1);
            if (dropped)
                forget(c); /* the cache held turns that are gone */
            return -1;
        }
        conv_remove(&c->conv, first, k);
        dropped++;
        forget(c);
    }
    if (dropped)
        fprintf(stderr,
                "mica chat: the context (%lld tokens) is full: dropped the oldest %zu turn%s%s\n",
                (long long)c->n_ctx, dropped, dropped == 1 ? "" : "s",
                c->n_system ? ", kept the system prompt" : "");
    else if (scratch && c->fed_len)
        forget(c); /* the template rewrote an earlier turn: feed all of it */
    /* the last answer's pending token is cached text, not prompt */
    int64_t before = cached(c), eval0 = c->n_eval + (before > mica_cli_session_n_past(c->s));
    interrupted = 0; /* from here a Ctrl-C stops this answer, even before it starts */
    double t0 = mica_cli_now();
    mica_status_t st = mica_generator_feed(&c->gen, ids, n_ids, &d);
    double t_prompt = mica_cli_now() - t0;
    free(ids);
    if (st != MICA_OK) {
        free(full);
        return mica_cli_fail(c->model, &d);
    }
    int64_t n_prompt = c->n_eval - eval0, after_feed = cached(c);
    int64_t room = c->n_ctx - after_feed;
    int32_t n = (int32_t)(n_gen < room ? n_gen : room);
    c->reply_len = 0;
    mica_generate_stats_t gs = {0};
    st = mica_generator_run(&c->gen, n, 0, on_piece, c, &gs, &d);
    if (c->write_failed) {
        free(full);
        fprintf(stderr, "mica chat: cannot write the answer to stdout (%s)\n", strerror(errno));
        return MICA_EXIT_FAIL;
    }
    if (st != MICA_OK) {
        free(full);
        return mica_cli_fail(c->model, &d);
    }
    bool stopped = gs.stopped_by_user && interrupted;
    interrupted = 0;
    if (fputs("\n", stdout) == EOF || fflush(stdout) != 0) {
        free(full);
        fprintf(stderr, "mica chat: cannot write the answer to stdout (%s)\n", strerror(errno));
        return MICA_EXIT_FAIL;
    }
    if (stopped)
        fprintf(stderr, "mica chat: [answer stopped]\n");
    else if (!gs.stopped_at_eog && gs.n_gen == room)
        fprintf(stderr, "mica chat: the context (%lld tokens) is full: answer cut short\n",
                (long long)c->n_ctx);
    /* the cache now holds the fed text and the answer */
    char *grown = realloc(full, full_len + c->reply_len + 1);
    if (!grown || !conv_add(&c->conv, "assistant", c->reply, c->reply_len)) {
        free(grown ? grown : full);
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        return mica_cli_fail(NULL, &d);
    }
    memcpy(grown + full_len, c->reply, c->reply_len);
    grown[full_len + c->reply_len] = 0;
    free(c->fed);
    c->fed = grown;
    c->fed_len = full_len + c->reply_len;
    if (stats)
        fprintf(stderr,
                "mica chat: turn %d: evaluated %lld prompt tokens after %lld cached (%.2f s), "
                "generated %lld tokens (%.2f tok/s); cache %lld of %lld\n",
                turn_no, (long long)n_prompt, (long long)before, t_prompt, (long long)gs.n_gen,
                gs.t_gen > 0 ? (double)gs.n_gen / gs.t_gen : 0.0, (long long)cached(c),
                (long long)c->n_ctx);
    return -1;
}

/* Reads one line from stdin into *line (getline's buffer) without the
 * newline: its length, -1 at end of input, -2 when Ctrl-C interrupted. */
static ssize_t read_line(char **line, size_t *cap)
{
    errno = 0;
    ssize_t n = getline(line, cap, stdin);
    if (n < 0) {
        if (interrupted || errno == EINTR) {
            clearerr(stdin);
            return -2;
        }
        return -1;
    }
    while (n > 0 && ((*line)[n - 1] == '\n' || (*line)[n - 1] == '\r'))
        (*line)[--n] = 0;
    return n;
}

int mica_cmd_chat(int argc, char **argv)
{
    const char *model = NULL, *system = NULL, *tmpl_name = NULL;
    int64_t n_gen = 256, threads = mica_arg_default_threads(), ctx = 0;
    bool stats = false;
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
        } else if (!strcmp(a, "-s") || !strcmp(a, "--system")) {
            if (i + 1 >= argc)
                return mica_cli_usage("chat", "%s needs a value", a);
            system = argv[++i];
        } else if (!strcmp(a, "--chat-template")) {
            if (i + 1 >= argc)
                return mica_cli_usage("chat", "--chat-template needs a name");
            tmpl_name = argv[++i];
        } else if (!strcmp(a, "-v") || !strcmp(a, "--stats")) {
            stats = true;
        } else if (!strcmp(a, "-n")) {
            if (i + 1 >= argc || !mica_arg_int(argv[i + 1], 1, 1 << 20, &n_gen))
                return mica_cli_usage("chat", "-n takes a count in [1, 1048576]");
            i++;
        } else if (!strcmp(a, "-c")) {
            if (i + 1 >= argc || !mica_arg_int(argv[i + 1], 2, 1 << 24, &ctx))
                return mica_cli_usage("chat", "-c takes a context in [2, 16777216] tokens");
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
    if (tmpl_name) { /* a bad name is a usage error before anything loads */
        mica_chat_template_t t;
        mica_diag_t d = {0};
        if (mica_chat_from_name(tmpl_name, &t, &d) != MICA_OK)
            return mica_cli_usage("chat", "%s", d.msg);
    }
    if (system && !mica_arg_utf8_valid(system, strlen(system), NULL))
        return mica_cli_usage("chat", "the system prompt is not valid UTF-8");

    mica_diag_t d = {0};
    mica_cli_session_t s;
    mica_cli_open_t how = {NULL, true, backend, (int32_t)threads};
    if (mica_cli_session_open(&s, model, &how, &d) != MICA_OK)
        return mica_cli_fail(model, &d);
    chat_t c = {.s = &s, .model = model};
    char bos[256], eos[256];
    int rc = mica_arg_chat_template("chat", model, tmpl_name, s.chat_template, s.chat_template_len,
                                    s.tok, bos, eos, sizeof bos, &c.tmpl);
    bool gen_ok = false;
    char *line = NULL;
    size_t line_cap = 0;
    if (rc != MICA_EXIT_OK)
        goto done;
    /* the context: the model's, at most -c */
    if (s.compiled)
        c.n_ctx = mica_model_context(s.compiled);
    else if (s.program)
        c.n_ctx = s.artifact->program->n_ctx;
    else
        c.n_ctx = mica_ref_model_config(s.model)->n_ctx;
    if (c.n_ctx <= 0)
        c.n_ctx = 2048;
    if (ctx > 0 && ctx < c.n_ctx)
        c.n_ctx = ctx;
    c.reply_cap = (size_t)n_gen * (mica_tokenizer_max_piece_len(s.tok) + 4) + 8;
    if (mica_sampler_create(s.n_vocab, &sp, &c.sampler, &d) != MICA_OK ||
        mica_generator_init(&c.gen, s.tok, c.sampler, chat_eval, &c, &d) != MICA_OK) {
        rc = mica_cli_fail(model, &d);
        goto done;
    }
    gen_ok = true;
    if (!(c.reply = malloc(c.reply_cap)) ||
        (system && !conv_add(&c.conv, "system", system, strlen(system)))) {
        mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
        rc = mica_cli_fail(NULL, &d);
        goto done;
    }
    c.n_system = system ? 1 : 0;
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is a write error, reported */
    struct sigaction sa = {0};
    sa.sa_handler = on_sigint; /* no SA_RESTART: Ctrl-C interrupts a read */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);

    bool tty = isatty(STDIN_FILENO);
    int turns = 0, interrupts = 0;
    for (long line_no = 1;; line_no++) {
        if (tty)
            fprintf(stderr, "> ");
        ssize_t len = read_line(&line, &line_cap);
        if (len == -2) {
            interrupted = 0;
            if (++interrupts >= 2)
                break;
            fprintf(stderr, "\n(Ctrl-C again or /exit to leave)\n");
            continue;
        }
        interrupts = 0;
        if (len < 0)
            break;
        size_t bad;
        if (!mica_arg_utf8_valid(line, (size_t)len, &bad)) {
            fprintf(stderr, "mica chat: stdin: line %ld is not valid UTF-8 (byte %zu); ignored\n",
                    line_no, bad + 1);
            continue;
        }
        if (len == 0)
            continue;
        if (!strcmp(line, "/exit"))
            break;
        if (!strcmp(line, "/reset")) {
            conv_remove(&c.conv, c.n_system, c.conv.n - c.n_system);
            forget(&c);
            fprintf(stderr, "mica chat: conversation reset\n");
            continue;
        }
        if (line[0] == '/' && !strchr(line, ' ')) {
            fprintf(stderr, "mica chat: unknown command '%s' (/reset, /exit)\n", line);
            continue;
        }
        if (!conv_add(&c.conv, "user", line, (size_t)len)) {
            mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
            rc = mica_cli_fail(NULL, &d);
            break;
        }
        int r = turn(&c, n_gen, stats, ++turns);
        if (r >= 0) {
            rc = r;
            break;
        }
    }
    if (tty && rc == MICA_EXIT_OK)
        fprintf(stderr, "\n");
done:
    free(line);
    free(c.reply);
    free(c.fed);
    conv_free(&c.conv);
    if (gen_ok)
        mica_generator_deinit(&c.gen);
    mica_sampler_release(c.sampler);
    mica_cli_session_close(&s);
    return rc;
}
