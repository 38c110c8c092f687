/* mica tokenize (ARTIFACT|MODEL.gguf) (-p TEXT | -f FILE) [--bos] [--special] [--ids|--pieces]
 * mica detokenize (ARTIFACT|MODEL.gguf) IDS [--special]
 *
 * Both need only the vocabulary: a model GGUF, a vocabulary-only GGUF
 * (tokenizer.* keys and no tensors, any architecture name, as llama.cpp's
 * ggml-vocab-*.gguf test files are) or an artifact's tokenizer.gguf. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "artifact.h"
#include "cli.h"
#include "gguf_meta.h"
#include "tokenizer.h"
#include "vocab.h"

/* The tokenizer of path (a GGUF file or an artifact directory), into
 * *out_tok (caller releases). d names the problem, not the file. */
static mica_status_t open_tokenizer(const char *path, mica_tokenizer_t **out_tok, mica_diag_t *d)
{
    *out_tok = NULL;
    char buf[4096];
    const char *file = path;
    if (mica_artifact_is_dir(path)) {
        if ((size_t)snprintf(buf, sizeof buf, "%s/tokenizer.gguf", path) >= sizeof buf)
            return mica_diag_set(d, MICA_ERR_INVALID, "path too long");
        file = buf;
    }
    mica_gguf_meta_t *meta = NULL;
    MICA_TRY(mica_gguf_meta_open(file, &meta, d));
    mica_vocab_t vocab;
    mica_status_t st = mica_vocab_from_gguf_meta(meta, &vocab, d);
    if (st == MICA_OK) {
        st = mica_tokenizer_create(&vocab.desc, out_tok, d);
        mica_vocab_deinit(&vocab);
    }
    mica_gguf_meta_release(meta);
    if (st != MICA_OK && file == buf)
        mica_diag_prefix(d, "tokenizer.gguf");
    return st;
}

/* ---- tokenize ---- */

typedef enum out_mode { OUT_PLAIN, OUT_IDS, OUT_PIECES } out_mode_t;

static void tokenize_help(void)
{
    printf("usage: mica tokenize (ARTIFACT|MODEL.gguf) (-p TEXT | -f FILE) [--bos] [--special]\n"
           "                     [--ids | --pieces]\n\n"
           "Prints the token ids of the text on one line, separated by spaces. The model\n"
           "may be a vocabulary-only GGUF (tokenizer metadata, no tensors).\n"
           "  --bos      add BOS (and EOS) as the model asks\n"
           "  --special  parse special-token texts (<|im_start|>, ...) in the text\n"
           "  --ids      print the ids as a list, [1, 2, 3] (what 'mica detokenize' takes)\n"
           "  --pieces   print one token a line: its id and its text, '%%6d -> 'TEXT''\n");
}

/* One token's text for --pieces: control tokens show their text. */
static void print_piece(const mica_tokenizer_t *tok, int32_t id)
{
    char small[256];
    size_t cap = mica_tokenizer_max_piece_len(tok), len = 0;
    char *buf = cap <= sizeof small ? small : malloc(cap);
    mica_diag_t d = {0};
    printf("%6d -> '", id);
    if (buf && mica_tokenizer_decode(tok, &id, 1, MICA_TOKENIZER_DECODE_SPECIAL, buf,
                                     cap <= sizeof small ? sizeof small : cap, &len, &d) == MICA_OK)
        fwrite(buf, 1, len, stdout);
    printf("'\n");
    if (buf != small)
        free(buf);
}

/* Encodes text into a malloc'd array (*out_n ids). */
static mica_status_t encode_all(const mica_tokenizer_t *tok, const char *text, size_t len,
                                uint32_t flags, int32_t **out_ids, size_t *out_n, mica_diag_t *d)
{
    size_t n = 0;
    mica_status_t st = mica_tokenizer_encode(tok, text, len, flags, NULL, 0, &n, d);
    if (st != MICA_OK && st != MICA_ERR_RANGE)
        return st;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids)
        return mica_diag_set(d, MICA_ERR_NOMEM, "out of memory for %zu tokens", n);
    st = mica_tokenizer_encode(tok, text, len, flags, ids, n, &n, d);
    if (st != MICA_OK) {
        free(ids);
        return st;
    }
    *out_ids = ids;
    *out_n = n;
    return MICA_OK;
}

int mica_cmd_tokenize(int argc, char **argv)
{
    const char *model = NULL, *prompt = NULL, *file = NULL;
    bool bos = false, special = false;
    out_mode_t mode = OUT_PLAIN;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            tokenize_help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "-p") || !strcmp(a, "-f")) {
            if (i + 1 >= argc)
                return mica_cli_usage("tokenize", "%s needs a value", a);
            *(a[1] == 'p' ? &prompt : &file) = argv[++i];
        } else if (!strcmp(a, "--bos")) {
            bos = true;
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else if (!strcmp(a, "--ids") || !strcmp(a, "--pieces")) {
            out_mode_t m = a[2] == 'i' ? OUT_IDS : OUT_PIECES;
            if (mode != OUT_PLAIN && mode != m)
                return mica_cli_usage("tokenize", "give at most one of --ids and --pieces");
            mode = m;
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
    mica_tokenizer_t *tok;
    if (open_tokenizer(model, &tok, &d) != MICA_OK) {
        free(text);
        return mica_cli_fail(model, &d);
    }
    uint32_t flags =
        (bos ? MICA_TOKENIZER_ADD_SPECIAL : 0) | (special ? MICA_TOKENIZER_PARSE_SPECIAL : 0);
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = MICA_EXIT_OK;
    if (encode_all(tok, prompt ? prompt : text, prompt ? strlen(prompt) : len, flags, &ids, &n,
                   &d) != MICA_OK) {
        rc = mica_cli_fail(model, &d);
    } else if (mode == OUT_PIECES) {
        for (size_t i = 0; i < n; i++)
            print_piece(tok, ids[i]);
    } else {
        const char *sep = mode == OUT_IDS ? ", " : " ";
        if (mode == OUT_IDS)
            printf("[");
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? sep : "", ids[i]);
        printf(mode == OUT_IDS ? "]\n" : "\n");
    }
    free(ids);
    free(text);
    mica_tokenizer_release(tok);
    return rc;
}

/* ---- detokenize ---- */

static void detokenize_help(void)
{
    printf("usage: mica detokenize (ARTIFACT|MODEL.gguf) IDS [--special]\n\n"
           "Prints the text of the tokens IDS, comma-separated ('1,2,3'; the list\n"
           "'mica tokenize --ids' prints, '[1, 2, 3]', is taken too), exactly: no\n"
           "newline is added. The model may be a vocabulary-only GGUF.\n"
           "  --special  print the text of control tokens (BOS, <|im_end|>, ...)\n");
}

/* Parses "1,2,3" (optionally in [ ], spaces around the numbers) into a
 * malloc'd array. Returns the exit status: 0, or 2 after a usage message. */
static int parse_ids(const char *s, int32_t **out_ids, size_t *out_n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *ids = malloc(cap * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "mica detokenize: out of memory\n");
        return MICA_EXIT_FAIL;
    }
    const char *p = s;
    while (*p == ' ')
        p++;
    bool bracket = *p == '[';
    if (bracket)
        p++;
    size_t n = 0;
    for (;;) {
        while (*p == ' ')
            p++;
        if (n == 0 && (bracket ? *p == ']' : *p == 0))
            break; /* no ids at all */
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < INT32_MIN || v > INT32_MAX) {
            int item = (int)(n + 1);
            free(ids);
            return mica_cli_usage("detokenize", "id %d of '%.64s' is not an integer", item, s);
        }
        ids[n++] = (int32_t)v;
        p = end;
        while (*p == ' ')
            p++;
        if (*p == ',') {
            p++;
            continue;
        }
        break;
    }
    if (bracket && *p == ']')
        p++;
    else if (bracket) {
        free(ids);
        return mica_cli_usage("detokenize", "'%.64s' has no closing ']'", s);
    }
    while (*p == ' ')
        p++;
    if (*p) {
        free(ids);
        return mica_cli_usage("detokenize", "unexpected '%c' in the ids '%.64s'", *p, s);
    }
    *out_ids = ids;
    *out_n = n;
    return MICA_EXIT_OK;
}

int mica_cmd_detokenize(int argc, char **argv)
{
    const char *model = NULL, *list = NULL;
    bool special = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            detokenize_help();
            return MICA_EXIT_OK;
        } else if (!strcmp(a, "--special")) {
            special = true;
        } else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
            return mica_cli_usage("detokenize", "unknown option '%s'", a);
        } else if (!model) {
            model = a;
        } else if (!list) {
            list = a;
        } else {
            return mica_cli_usage("detokenize", "more than one list of ids given");
        }
    }
    if (!model)
        return mica_cli_usage("detokenize", "no model given");
    if (!list)
        return mica_cli_usage("detokenize", "no ids given");
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = parse_ids(list, &ids, &n);
    if (rc != MICA_EXIT_OK)
        return rc;

    mica_diag_t d = {0};
    mica_tokenizer_t *tok;
    if (open_tokenizer(model, &tok, &d) != MICA_OK) {
        free(ids);
        return mica_cli_fail(model, &d);
    }
    uint32_t flags =
        MICA_TOKENIZER_DECODE_STRIP_SPACE | (special ? MICA_TOKENIZER_DECODE_SPECIAL : 0);
    size_t len = 0;
    mica_status_t st = mica_tokenizer_decode(tok, ids, n, flags, NULL, 0, &len, &d);
    char *text = NULL;
    if (st == MICA_ERR_RANGE) {
        text = malloc(len ? len : 1);
        st = text ? mica_tokenizer_decode(tok, ids, n, flags, text, len, &len, &d)
                  : mica_diag_set(&d, MICA_ERR_NOMEM, "out of memory for %zu bytes", len);
    }
    if (st != MICA_OK)
        rc = mica_cli_fail(model, &d);
    else if (len && fwrite(text, 1, len, stdout) != len)
        rc = mica_cli_fail(NULL, &(mica_diag_t){.msg = "cannot write the text"});
    free(text);
    free(ids);
    mica_tokenizer_release(tok);
    return rc;
}
