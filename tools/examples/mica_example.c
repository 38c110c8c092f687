/* mica_example: a compiled model answering one prompt, on the public API
 * alone (mica.h; link libmica.a).
 *
 *   mica_example ARTIFACT PROMPT [-n N] [-t THREADS] [--temp T] [--seed S] [--chat]
 *
 * Opens the artifact (`mica compile MODEL.gguf -t host -o ARTIFACT`),
 * feeds the prompt (with --chat as one user turn of the model's chat
 * template) and streams up to N generated tokens to stdout. Exit status 0,
 * 1 when the model fails, 2 for a bad command line; errors are one line on
 * stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mica.h"

static int usage(const char *why)
{
    fprintf(stderr,
            "mica_example: %s\nusage: mica_example ARTIFACT PROMPT [-n N] [-t THREADS] "
            "[--temp T] [--seed S] [--chat]\n",
            why);
    return 2;
}

/* Writes each piece of generated text as it comes. */
static int print_piece(const char *piece, size_t len, int32_t token, void *user)
{
    (void)token;
    (void)user;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3)
        return usage("give an artifact and a prompt");
    const char *path = argv[1], *prompt = argv[2];
    long n_gen = 64;
    int chat = 0;
    mica_session_params_t params = mica_session_params_default();
    params.temperature = 0.0f; /* greedy unless asked otherwise */
    for (int i = 3; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--chat")) {
            chat = 1;
            continue;
        }
        if (!v)
            return usage("an option lacks its value");
        i++;
        if (!strcmp(a, "-n"))
            n_gen = strtol(v, &end, 10);
        else if (!strcmp(a, "-t"))
            params.n_threads = (int32_t)strtol(v, &end, 10);
        else if (!strcmp(a, "--temp"))
            params.temperature = strtof(v, &end);
        else if (!strcmp(a, "--seed"))
            params.seed = strtoull(v, &end, 10);
        else
            return usage("unknown option");
        if (!end || *end || n_gen < 0 || n_gen > 1 << 20)
            return usage("a bad number");
    }

    mica_error_t err;
    mica_model_t *model = NULL;
    if (mica_model_open(path, &model, &err) != MICA_STATUS_OK) {
        fprintf(stderr, "mica_example: %s\n", err.message);
        return 1;
    }
    mica_session_t *session = NULL;
    char *text = NULL;
    int rc = 1;
    if (mica_session_create(model, &params, &session, &err) != MICA_STATUS_OK)
        goto done;
    size_t len = strlen(prompt);
    uint32_t flags = MICA_TOKENIZE_ADD_SPECIAL;
    if (chat) {
        /* the prompt as a user turn, then the opening of the reply */
        mica_message_t turn = {"user", prompt};
        size_t need = 0;
        int s = mica_model_format_chat(model, &turn, 1, 1, NULL, 0, &need, &err);
        if (s != MICA_STATUS_OK && s != MICA_STATUS_RANGE)
            goto done;
        text = malloc(need + 1);
        if (!text)
            snprintf(err.message, sizeof err.message, "out of memory");
        if (!text || mica_model_format_chat(model, &turn, 1, 1, text, need + 1, &len, &err) != 0)
            goto done;
        prompt = text;
        flags |= MICA_TOKENIZE_PARSE_SPECIAL;
    }
    if (mica_session_append_text(session, prompt, len, flags, &err) != MICA_STATUS_OK ||
        mica_session_generate(session, (int32_t)n_gen, print_piece, NULL, NULL, &err) !=
            MICA_STATUS_OK)
        goto done;
    printf("\n");
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "mica_example: %s\n", err.message);
    free(text);
    mica_session_release(session);
    mica_model_release(model);
    return rc;
}
