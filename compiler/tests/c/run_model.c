/* A plain C program of the kind a user writes around edgec's output: it includes the
 * generated header of a model compiled with `--name net`, reads net.weights and the
 * inputs from files, calls net_run once and writes the outputs.
 *
 * usage: run_model WEIGHTS IN_0 .. IN_{n-1} OUT_0 .. OUT_{m-1}
 * prints "net_run: CODE" and exits 0 when the call ran (whatever CODE), 2 on bad usage
 * or I/O. Nothing in it is generated: sizes come from the header's macros. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

/* Output sizes from the header, for up to 8 outputs. */
static const size_t out_size[] = {
    net_OUTPUT_0_SIZE,
#if net_NUM_OUTPUTS > 1
    net_OUTPUT_1_SIZE,
#endif
#if net_NUM_OUTPUTS > 2
    net_OUTPUT_2_SIZE,
#endif
#if net_NUM_OUTPUTS > 3
    net_OUTPUT_3_SIZE,
#endif
#if net_NUM_OUTPUTS > 4
    net_OUTPUT_4_SIZE,
#endif
#if net_NUM_OUTPUTS > 5
    net_OUTPUT_5_SIZE,
#endif
#if net_NUM_OUTPUTS > 6
    net_OUTPUT_6_SIZE,
#endif
#if net_NUM_OUTPUTS > 7
    net_OUTPUT_7_SIZE,
#endif
};

/* The whole file in a zeroed, 16-byte aligned buffer (the blob must be 16-byte
 * aligned) of at least `min` bytes: a blob is read into net_WEIGHTS_SIZE bytes, as
 * firmware with a static buffer would. */
static void *read_file(const char *path, size_t min, size_t *size)
{
    size_t cap;
    FILE *f = fopen(path, "rb");
    long n;
    void *p;
    if (!f) return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return NULL;
    }
    cap = (size_t)n > min ? (size_t)n : min;
    p = aligned_alloc(16, (cap + 16) & ~(size_t)15);
    if (p) memset(p, 0, (cap + 16) & ~(size_t)15);
    if (p && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return p;
}

int main(int argc, char **argv)
{
    const void *inputs[net_NUM_INPUTS];
    void *outputs[net_NUM_OUTPUTS];
    void *weights, *arena;
    size_t size, k;
    int rc;

    if (argc != 2 + (int)net_NUM_INPUTS + (int)net_NUM_OUTPUTS) {
        fprintf(stderr, "usage: %s WEIGHTS %u inputs %u outputs\n", argv[0], net_NUM_INPUTS, net_NUM_OUTPUTS);
        return 2;
    }
    weights = read_file(argv[1], net_WEIGHTS_SIZE, &size);
    if (!weights) return 2;
    for (k = 0; k < net_NUM_INPUTS; k++) {
        inputs[k] = read_file(argv[2 + k], 0, &size);
        if (!inputs[k]) return 2;
    }
    for (k = 0; k < net_NUM_OUTPUTS; k++) {
        outputs[k] = calloc(out_size[k] ? out_size[k] : 1, 1);
        if (!outputs[k]) return 2;
    }
    arena = aligned_alloc(net_ARENA_ALIGN, (net_ARENA_SIZE + net_ARENA_ALIGN - 1) / net_ARENA_ALIGN * net_ARENA_ALIGN + net_ARENA_ALIGN);
    if (!arena) return 2;

    rc = net_run(weights, arena, inputs, outputs);
    printf("net_run: %d\n", rc);
    for (k = 0; rc == 0 && k < net_NUM_OUTPUTS; k++) {
        FILE *f = fopen(argv[2 + net_NUM_INPUTS + k], "wb");
        if (!f || fwrite(outputs[k], 1, out_size[k], f) != out_size[k]) return 2;
        fclose(f);
    }
    return 0;
}
