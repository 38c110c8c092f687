/* mica_rss_probe: generates many tokens from an artifact on the public API
 * (mica.h) and records the process's resident memory after each one, to
 * show that the runtime allocates nothing per token.
 *
 *   mica_rss_probe ARTIFACT N [-t THREADS] [--seed S] [--warmup W]
 *
 * Samples (temperature 0.8) N tokens after a short prompt. When the KV
 * cache is full it shifts the context as a chat does: the session is reset
 * and the last half of the tokens is fed again, and generation goes on; an
 * end-of-generation token is answered with a newline. Prints RSS every
 * 1000 tokens, then the anonymous RSS (RssAnon: heap, arena, KV cache,
 * stacks) at token W (default 100) and its lowest and highest after it, and
 * exits 1 if the highest is more than 1 MiB above the value at W (memory
 * grew). It may dip below: a session reset gives the KV cache's pages back
 * and the shift writes them again. File-backed RSS (RssFile) is shown
 * beside it: it grows as the mmapped weights.bin is read, the embedding
 * rows of new token ids first (the table stays in the file by design),
 * and is page cache the kernel can drop, bounded by the file's size.
 * tools/rss.sh runs it on SmolLM2.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mica.h"

typedef struct probe {
    int status;          /* /proc/self/status, kept open */
    int32_t *ring;       /* the last `cap` tokens, for the context shift */
    int32_t cap, n_ring; /* ring capacity (the context) and tokens in it */
    long n_done, n_want, warmup;
    long rss_lo, rss_hi; /* bytes, over tokens past warmup */
    long rss_warm;       /* bytes, at token warmup */
} probe_t;

/* The "NAME:  N kB" field of /proc/self/status in bytes, -1 if absent. */
static long status_field(const char *text, const char *name)
{
    const char *at = strstr(text, name);
    long kb = -1;
    if (!at || sscanf(at + strlen(name), " %ld", &kb) != 1)
        return -1;
    return kb * 1024;
}

/* Anonymous and file-backed resident bytes, read without allocating. */
static long rss_now(const probe_t *p, long *out_file)
{
    static char buf[4096];
    ssize_t n = pread(p->status, buf, sizeof buf - 1, 0);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    *out_file = status_field(buf, "RssFile:");
    return status_field(buf, "RssAnon:");
}

static int on_token(const char *piece, size_t len, int32_t token, void *user)
{
    (void)piece;
    (void)len;
    probe_t *p = user;
    if (token < 0)
        return 0;
    if (p->n_ring == p->cap) {
        memmove(p->ring, p->ring + 1, (size_t)(p->cap - 1) * sizeof *p->ring);
        p->n_ring--;
    }
    p->ring[p->n_ring++] = token;
    p->n_done++;
    long file = 0, rss = rss_now(p, &file);
    if (p->n_done > p->warmup) {
        if (p->rss_lo < 0 || rss < p->rss_lo)
            p->rss_lo = rss;
        if (rss > p->rss_hi)
            p->rss_hi = rss;
    }
    if (p->n_done == p->warmup)
        p->rss_warm = rss;
    if (p->n_done % 1000 == 0 || p->n_done == p->warmup)
        printf("token %ld: RssAnon %.2f MiB, RssFile %.2f MiB\n", p->n_done,
               (double)rss / (1 << 20), (double)file / (1 << 20));
    return p->n_done >= p->n_want;
}

static int fail(const mica_error_t *e)
{
    fprintf(stderr, "mica_rss_probe: %s\n", e->message);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: mica_rss_probe ARTIFACT N [-t THREADS] [--seed S] [--warmup W]\n");
        return 2;
    }
    probe_t p = {.status = open("/proc/self/status", O_RDONLY),
                 .n_want = atol(argv[2]), .warmup = 100, .rss_lo = -1};
    mica_session_params_t params = mica_session_params_default();
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-t"))
            params.n_threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed"))
            params.seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--warmup"))
            p.warmup = atol(argv[i + 1]);
    }
    if (p.status < 0 || p.n_want < 1) {
        fprintf(stderr, "mica_rss_probe: no /proc/self/status or a bad N\n");
        return 2;
    }
    mica_error_t err;
    mica_model_t *model = NULL;
    mica_session_t *s = NULL;
    if (mica_model_open(argv[1], &model, &err) != MICA_STATUS_OK)
        return fail(&err);
    if (mica_session_create(model, &params, &s, &err) != MICA_STATUS_OK)
        return fail(&err);
    p.cap = mica_model_context(model);
    p.ring = malloc((size_t)p.cap * sizeof *p.ring);
    static const char prompt[] = "Tell me a long story about a lighthouse keeper and the sea.";
    if (!p.ring || mica_session_append_text(s, prompt, sizeof prompt - 1,
                                            MICA_TOKENIZE_ADD_SPECIAL, &err) != MICA_STATUS_OK)
        return fail(&err);
    long shifts = 0, stops = 0;
    while (p.n_done < p.n_want) {
        int32_t room = p.cap - mica_session_n_past(s) - 1, got = 0;
        if (room < 1) { /* the context shift: keep the last half */
            int32_t keep = p.cap / 2;
            if (keep > p.n_ring)
                keep = p.n_ring;
            mica_session_reset(s);
            if (mica_session_append_tokens(s, p.ring + p.n_ring - keep, (size_t)keep, &err) !=
                MICA_STATUS_OK)
                return fail(&err);
            shifts++;
            continue;
        }
        long left = p.n_want - p.n_done;
        int rc = mica_session_generate(s, room < left ? room : (int32_t)left, on_token, &p, &got,
                                       &err);
        if (rc != MICA_STATUS_OK && rc != MICA_STATUS_RANGE)
            return fail(&err);
        if (rc == MICA_STATUS_OK && p.n_done < p.n_want && got < (room < left ? room : left)) {
            stops++; /* an end of generation: answer it and go on */
            if (mica_session_append_text(s, "\n", 1, 0, &err) != MICA_STATUS_OK)
                return fail(&err);
        }
    }
    long growth = p.rss_hi - p.rss_warm;
    printf("%ld tokens (context %d, %ld shifts, %ld end-of-generation stops): RssAnon %.3f MiB "
           "at token %ld, then between %.3f and %.3f MiB: growth %.3f MiB\n",
           p.n_done, p.cap, shifts, stops, (double)p.rss_warm / (1 << 20), p.warmup,
           (double)p.rss_lo / (1 << 20), (double)p.rss_hi / (1 << 20),
           (double)growth / (1 << 20));
    free(p.ring);
    mica_session_release(s);
    mica_model_release(model);
    close(p.status);
    return growth > (1 << 20) ? 1 : 0;
}
