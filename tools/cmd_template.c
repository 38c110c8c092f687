/* mica template (ARTIFACT | MODEL.gguf | --template-file FILE) --messages M.json
 *               [--bos TEXT] [--eos TEXT] [--no-generation-prompt]
 *               [--chat-template NAME]
 *
 * Prints exactly the prompt the model would be fed for the conversation in
 * M.json (an OpenAI-style array of {"role", "content"}), no newline added:
 * what `mica chat` feeds, with the BOS the tokenizer adds left out. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "session.h"

#ifdef MICA_HAVE_CJSON
#include <cjson/cJSON.h>

static void help(void)
{
    printf("usage: mica template (ARTIFACT | MODEL.gguf | --template-file FILE) --messages M.json\n"
           "                     [--bos TEXT] [--eos TEXT] [--no-generation-prompt]\n"
           "                     [--chat-template NAME]\n\n"
           "Prints the chat prompt for the messages in M.json (a JSON array of\n"
           "{\"role\": \"system\"|\"user\"|\"assistant\", \"content\": TEXT}) exactly, no\n"
           "newline added. The template is the model's tokenizer.chat_template, or\n"
           "the Jinja source in FILE, recognised by its structure; one mica does not\n"
           "know is rendered as chatml, with a warning.\n"
           "  --template-file FILE   a Jinja chat template instead of a model's\n"
           "  --messages M.json      the conversation\n"
           "  --bos TEXT, --eos TEXT what the template writes for BOS / EOS between turns\n"
           "                         (default: the model's token texts; none with a file)\n"
           "  --no-generation-prompt do not open the assistant's answer at the end\n"
           "  --chat-template NAME   render as NAME: %s\n",
           mica_chat_names());
}

/* Byte offset -> "LINE:COL" of text. */
static void line_col(const char *text, size_t off, int *line, int *col)
{
    *line = 1, *col = 1;
    for (size_t i = 0; i < off && text[i]; i++) {
        if (text[i] == '\n')
            (*line)++, *col = 1;
        else
            (*col)++;
    }
}

/* Parses the messages file into msgs (pointing into *out_json, which the
 * caller deletes); on failure prints the message and returns the status. */
static int read_messages(const char *path, cJSON **out_json, mica_chat_message_t **out_msgs,
                         size_t *out_n)
{
    mica_diag_t d = {0};
    size_t len;
    char *text = mica_cli_read_file(path, &len, &d);
    if (!text)
        return mica_cli_fail(path, &d);
    const char *end = NULL;
    cJSON *json = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!json) {
        int line, col;
        line_col(text, end ? (size_t)(end - text) : 0, &line, &col);
        fprintf(stderr, "%s:%d:%d: not valid JSON\n", path, line, col);
        free(text);
        return MICA_EXIT_FAIL;
    }
    free(text);
    int rc = MICA_EXIT_OK;
    size_t n = cJSON_IsArray(json) ? (size_t)cJSON_GetArraySize(json) : 0;
    mica_chat_message_t *msgs = cJSON_IsArray(json) ? calloc(n ? n : 1, sizeof *msgs) : NULL;
    if (!cJSON_IsArray(json)) {
        fprintf(stderr, "%s: expected a JSON array of {\"role\", \"content\"} messages\n", path);
        rc = MICA_EXIT_FAIL;
    } else if (!msgs) {
        fprintf(stderr, "%s: out of memory\n", path);
        rc = MICA_EXIT_FAIL;
    }
    size_t i = 0;
    for (const cJSON *m = json->child; rc == MICA_EXIT_OK && m; m = m->next, i++) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        const char *what = !cJSON_IsObject(m)          ? "is not an object"
                           : !cJSON_IsString(role)     ? "has no string \"role\""
                           : !cJSON_IsString(content)  ? "has no string \"content\""
                           : NULL;
        size_t bad;
        if (!what && (!mica_arg_utf8_valid(role->valuestring, strlen(role->valuestring), &bad) ||
                      !mica_arg_utf8_valid(content->valuestring, strlen(content->valuestring),
                                           &bad)))
            what = "is not valid UTF-8";
        if (what) {
            fprintf(stderr, "%s: message %zu %s\n", path, i + 1, what);
            rc = MICA_EXIT_FAIL;
            break;
        }
        msgs[i] = (mica_chat_message_t){role->valuestring, content->valuestring};
    }
    if (rc != MICA_EXIT_OK) {
        free(msgs);
        cJSON_Delete(json);
        return rc;
    }
    *out_json = json;
    *out_msgs = msgs;
    *out_n = n;
    return MICA_EXIT_OK;
}

int mica_cmd_template(int argc, char **argv)
{
    const char *model = NULL, *tmpl_file = NULL, *messages = NULL, *bos = NULL, *eos = NULL,
               *name = NULL;
    bool gen_prompt = true;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char **value = !strcmp(a, "--template-file")   ? &tmpl_file
                             : !strcmp(a, "--messages")      ? &messages
                             : !strcmp(a, "--bos")           ? &bos
                             : !strcmp(a, "--eos")           ? &eos
                             : !strcmp(a, "--chat-template") ? &name
                                                             : NULL;
        if (value) {
            if (i + 1 >= argc)
                return mica_cli_usage("template", "%s needs a value", a);
            *value = argv[++i];
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "--no-generation-prompt")) {
            gen_prompt = false;
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("template", "unknown option '%s'", a);
        } else if (model) {
            return mica_cli_usage("template", "more than one model given");
        } else {
            model = a;
        }
    }
    if (!model == !tmpl_file)
        return mica_cli_usage("template", "give a model or --template-file FILE (one of them)");
    if (!messages)
        return mica_cli_usage("template", "no --messages M.json given");
    signal(SIGPIPE, SIG_IGN); /* a closed stdout is a write error, reported */

    mica_diag_t d = {0};
    mica_cli_session_t s;
    bool open = false;
    char *src = NULL;
    const char *tsrc, *path = model ? model : tmpl_file;
    size_t tlen = 0;
    if (model) {
        mica_cli_open_t how = {NULL, true, MICA_CLI_BACKEND_REF, 1};
        if (mica_cli_session_open(&s, model, &how, &d) != MICA_OK)
            return mica_cli_fail(model, &d);
        open = true;
        tsrc = s.chat_template;
        tlen = s.chat_template_len;
    } else {
        if (!(src = mica_cli_read_file(tmpl_file, &tlen, &d)))
            return mica_cli_fail(tmpl_file, &d);
        tsrc = src;
    }
    mica_chat_template_t t;
    char bos_text[256], eos_text[256];
    int rc = mica_arg_chat_template("template", path, name, tsrc, tlen, open ? s.tok : NULL,
                                    bos_text, eos_text, sizeof bos_text, &t);
    cJSON *json = NULL;
    mica_chat_message_t *msgs = NULL;
    size_t n = 0;
    if (rc == MICA_EXIT_OK)
        rc = read_messages(messages, &json, &msgs, &n);
    if (rc == MICA_EXIT_OK) {
        if (bos)
            t.bos = bos;
        if (eos)
            t.eos = eos;
        size_t need = 0;
        char *out = NULL;
        mica_status_t st = mica_chat_render(&t, msgs, n, gen_prompt, NULL, 0, &need, &d);
        if (st == MICA_ERR_RANGE) {
            if (!(out = malloc(need + 1)))
                st = mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory");
            else
                st = mica_chat_render(&t, msgs, n, gen_prompt, out, need + 1, &need, &d);
        }
        if (st != MICA_OK)
            rc = mica_cli_fail(messages, &d);
        else if (fwrite(out, 1, need, stdout) != need || fflush(stdout) != 0) {
            fprintf(stderr, "mica template: cannot write the prompt to stdout\n");
            rc = MICA_EXIT_FAIL;
        }
        free(out);
    }
    free(msgs);
    cJSON_Delete(json);
    free(src);
    if (open)
        mica_cli_session_close(&s);
    return rc;
}

#else /* a cross build without the target's cJSON */

int mica_cmd_template(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "mica template: this mica was built without cJSON (libcjson-dev)\n");
    return MICA_EXIT_FAIL;
}

#endif
