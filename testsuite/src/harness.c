/* Timing harness of `edgec-testsuite bench-host` (docs/performance.md), compiled with
   the model's object: argv = DIR RUNS WARMUP. Reads DIR/model.weights and
   DIR/in0 ... (raw little-endian, the sizes below from the model's header), runs
   WARMUP untimed and RUNS timed inferences on one thread, writes the last outputs to
   DIR/out0 ... for the correctness check and prints "median_ns min_ns". */
#define _POSIX_C_SOURCE 199309L
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

/* Filled in by the generator: element bytes of each input and output. */
static const size_t in_bytes[] = {EDGEC_IN_BYTES};
static const size_t out_bytes[] = {EDGEC_OUT_BYTES};
#define N_IN (sizeof in_bytes / sizeof in_bytes[0])
#define N_OUT (sizeof out_bytes / sizeof out_bytes[0])

static void *load(const char *dir, const char *file, size_t *size)
{
    char path[4096];
    FILE *f;
    void *p;
    long n;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "cannot open %s\n", path); exit(2); }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    p = malloc(n > 0 ? (size_t)n : 1);
    if (!p || fread(p, 1, (size_t)n, f) != (size_t)n) { fprintf(stderr, "cannot read %s\n", path); exit(2); }
    fclose(f);
    *size = (size_t)n;
    return p;
}

static int cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    const void *in[N_IN + 1];
    void *out[N_OUT + 1];
    char file[64];
    size_t size, k;
    void *weights = NULL, *raw, *arena;
    int runs, warmup, i, rc;
    int64_t *times;
    if (argc < 4) return 2;
    runs = atoi(argv[2]);
    warmup = atoi(argv[3]);
    if (runs < 1) return 2;
    if (model_WEIGHTS_SIZE > 0) weights = load(argv[1], "model.weights", &size);
    raw = malloc(model_ARENA_SIZE + model_ARENA_ALIGN);
    arena = (void *)(((uintptr_t)raw + model_ARENA_ALIGN - 1) & ~(uintptr_t)(model_ARENA_ALIGN - 1));
    for (k = 0; k < N_IN; k++) {
        snprintf(file, sizeof file, "in%u", (unsigned)k);
        in[k] = load(argv[1], file, &size);
        if (size != in_bytes[k]) { fprintf(stderr, "%s: %zu bytes, %zu expected\n", file, size, in_bytes[k]); return 2; }
    }
    for (k = 0; k < N_OUT; k++) out[k] = calloc(out_bytes[k] ? out_bytes[k] : 1, 1);
    for (i = 0; i < warmup; i++) {
        rc = model_run(weights, arena, in, out);
        if (rc) { fprintf(stderr, "model_run returned %d\n", rc); return 3; }
    }
    times = malloc(sizeof *times * (size_t)runs);
    for (i = 0; i < runs; i++) {
        int64_t t0 = now_ns();
        rc = model_run(weights, arena, in, out);
        times[i] = now_ns() - t0;
        if (rc) { fprintf(stderr, "model_run returned %d\n", rc); return 3; }
    }
    qsort(times, (size_t)runs, sizeof *times, cmp);
    for (k = 0; k < N_OUT; k++) {
        FILE *f;
        char path[4096];
        snprintf(path, sizeof path, "%s/out%u", argv[1], (unsigned)k);
        f = fopen(path, "wb");
        if (!f || fwrite(out[k], 1, out_bytes[k], f) != out_bytes[k]) return 2;
        fclose(f);
    }
    printf("%lld %lld\n", (long long)times[runs / 2], (long long)times[0]);
    return 0;
}
