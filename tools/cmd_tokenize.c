/* mica tokenize MODEL (-p TEXT | -f FILE) [--bos] [--special] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "session.h"

static void help(void)
{
    printf("usage: mica tokenize MODEL.gguf (-p TEXT | -f FILE) [--bos] [--special]\n\n"
           "Prints the token ids of the text on one line, separated by spaces.\n"
           "  --bos      add BOS (and EOS) as the model asks\n"
           "  --special  parse special-token texts (<|im_start|>, ...) in the text\n");
}

int mica_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool bos = false, special = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "-p") || !strcmp(a, "-f")) {
            if (i + 1 >= argc)
                return mica_cli_usage("tokenize", "%s needs a value", a);
            *(a[1] == 'p' ? &prompt : &file) = argv[++i];
        } else if (!strcmp(a, "--bos")) {
            bos = true;
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else if (a[0] == '-' && a[1]) {
            return mica_cli_usage("tokenize", "unknown option '%s'", a);
        } else if (model) {
            return mica_cli_usage("tokenize", "more than one model given");
        } else {
            model = a;
        }
    }
    if (!model)
        return mica_cli_usage("tokenize", "no model given");
    if (!!prompt + !!file != 1)
        return mica_cli_usage("tokenize", "give exactly one of -p and -f");

    mica_diag_t d = {0};
    size_t len = 0;
    char *text = NULL;
    if (file && !(text = mica_cli_read_file(file, &len, &d)))
        return mica_cli_fail(file, &d);
    mica_cli_session_t s;
    mica_cli_open_t how = {NULL, true, MICA_CLI_BACKEND_AUTO, 1};
    if (mica_cli_session_open(&s, model, &how, &d) != MICA_OK) {
        free(text);
        return mica_cli_fail(model, &d);
    }
    uint32_t flags = (bos ? MICA_TOKENIZER_ADD_SPECIAL : 0) | (special ? MICA_TOKENIZER_PARSE_SPECIAL : 0);
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = MICA_EXIT_OK;
    if (mica_cli_tokenize(&s, prompt ? prompt : text, prompt ? strlen(prompt) : len, flags, &ids, &n,
                          &d) != MICA_OK) {
        rc = mica_cli_fail(model, &d);
    } else {
        for (size_t i = 0; i < n; i++)
            printf(i ? " %d" : "%d", ids[i]);
        printf("\n");
    }
    free(ids);
    free(text);
    mica_cli_session_close(&s);
    return rc;
}
