/* Greedy text generation with a KV cache over gpt2_decode_kv compiled as a shape family
 * (edgec compile ... --dim past_sequence_length=0..MAX): one static specialisation per
 * past length, one weight blob, one arena; `gpt2_run_at(P, ...)` picks the member.
 *
 * The cache is double-buffered: step t reads past k/v [1,H,P,D] from one buffer and the
 * model writes present [1,H,P+1,D] into the other, which is exactly next step's past
 * (same dense layout), so the loop never copies the cache itself.
 *
 * usage: gpt2_kv WEIGHTS N_NEW PROMPT_TOKEN...   prints `tokens: ...` and `top: ...`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gpt2.h"

/* The model's geometry (gpt2_decode_kv: 2 layers, 4 heads of 16, vocabulary 512). */
enum { LAYERS = 2, HEADS = 4, HEAD_DIM = 16, VOCAB = 512, CACHES = 2 * LAYERS };

/* 16-byte aligned memory from malloc (C99 has no aligned_alloc); never freed. */
static void *aligned(size_t bytes) {
    unsigned char *p = calloc(1, bytes + 16);
    return p ? p + (16 - (uintptr_t)p % 16) % 16 : NULL;
}

static void *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = n > 0 ? aligned((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) buf = NULL;
    fclose(f);
    *size = (size_t)n;
    return buf;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s WEIGHTS N_NEW PROMPT_TOKEN...\n", argv[0]);
        return 2;
    }
    size_t wsize = 0;
    void *weights = read_file(argv[1], &wsize);
    if (!weights || wsize != gpt2_WEIGHTS_SIZE) {
        fprintf(stderr, "cannot read %s (%zu bytes, want %u)\n", argv[1], wsize, gpt2_WEIGHTS_SIZE);
        return 1;
    }
    int n_new = atoi(argv[2]), n_prompt = argc - 3;
    int steps = n_prompt + n_new - 1;
    if (steps - 1 > (int)gpt2_DIM_MAX) {
        fprintf(stderr, "%d tokens need past lengths up to %d; compiled up to %u\n", n_prompt + n_new, steps - 1, gpt2_DIM_MAX);
        return 1;
    }
    void *arena = aligned(gpt2_ARENA_SIZE); /* gpt2_ARENA_ALIGN is 16 */
    size_t cache_bytes = (size_t)HEADS * (gpt2_DIM_MAX + 1) * HEAD_DIM * sizeof(float);
    float *cache[2][CACHES];
    for (int b = 0; b < 2; b++)
        for (int c = 0; c < CACHES; c++) cache[b][c] = aligned(cache_bytes);
    int64_t mask[gpt2_DIM_MAX + 1];
    for (unsigned i = 0; i <= gpt2_DIM_MAX; i++) mask[i] = 1;
    static float logits[VOCAB];
    int64_t token = atoll(argv[3]);
    char tokens[4096] = "", top[8192] = "";
    int cur = 0;
    for (int step = 0; step < steps; step++) {
        const void *in[2 + CACHES] = {&token, mask};
        void *out[1 + CACHES] = {logits};
        for (int c = 0; c < CACHES; c++) {
            in[2 + c] = cache[cur][c];
            out[1 + c] = cache[1 - cur][c];
        }
        int rc = gpt2_run_at(step, weights, arena, in, out);
        if (rc != EDGEC_OK) {
            fprintf(stderr, "gpt2_run_at(%d) returned %d\n", step, rc);
            return 1;
        }
        cur = 1 - cur;
        if (step + 1 < n_prompt) {
            token = atoll(argv[3 + step + 1]);
            continue;
        }
        int best = 0;
        for (int v = 1; v < VOCAB; v++)
            if (logits[v] > logits[best]) best = v;
        token = best;
        snprintf(tokens + strlen(tokens), sizeof tokens - strlen(tokens), " %d", best);
        snprintf(top + strlen(top), sizeof top - strlen(top), " %.6f", logits[best]);
    }
    printf("tokens:%s\ntop:%s\n", tokens, top);
    printf("memory: weights %u bytes, arena %u bytes, kv cache 2 x %zu bytes\n", gpt2_WEIGHTS_SIZE, gpt2_ARENA_SIZE,
           (size_t)CACHES * cache_bytes);
    return 0;
}
