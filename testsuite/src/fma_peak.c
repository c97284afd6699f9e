/* One core's f32 FMA throughput for `edgec-testsuite bench-host` (docs/performance.md):
   the "% of peak" denominator. Independent accumulators (more than FMA latency x
   issue width: 4 cycles x 2 ports on recent x86 cores) so the loop is bound by
   throughput, not latency. Prints the GFLOP/s of 128-bit (4-lane) FMA, then of 256-bit
   (8-lane) FMA when built with -mavx2 -mfma, then of 512-bit (16-lane) FMA when built
   with -mavx512f (x86_64), "-" for each one missing. An FMA counts 2 flops. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__FMA__)
#include <immintrin.h>
#define ACC 12
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Best of a few trials, in thread CPU time: the machine is shared, and time spent
   preempted is not the core's speed. */
static double gflops128(long iters)
{
    double best = 0.0;
    int trial, k;
    long i;
    for (trial = 0; trial < 5; trial++) {
        __m128 acc[ACC], a = _mm_set1_ps(0.999999f), b = _mm_set1_ps(1e-7f);
        float sink = 0.0f, lanes[4];
        double t0, t;
        for (k = 0; k < ACC; k++) acc[k] = _mm_set1_ps((float)k);
        t0 = now();
        for (i = 0; i < iters; i++)
            for (k = 0; k < ACC; k++) acc[k] = _mm_fmadd_ps(acc[k], a, b);
        t = now() - t0;
        for (k = 0; k < ACC; k++) { _mm_storeu_ps(lanes, acc[k]); sink += lanes[0]; }
        if (sink == 12345.0f) puts("");
        if ((double)iters * ACC * 4 * 2 / t / 1e9 > best) best = (double)iters * ACC * 4 * 2 / t / 1e9;
    }
    return best;
}

#if defined(__AVX2__)
static double gflops256(long iters)
{
    double best = 0.0;
    int trial, k;
    long i;
    for (trial = 0; trial < 5; trial++) {
        __m256 acc[ACC], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
        float sink = 0.0f, lanes[8];
        double t0, t;
        for (k = 0; k < ACC; k++) acc[k] = _mm256_set1_ps((float)k);
        t0 = now();
        for (i = 0; i < iters; i++)
            for (k = 0; k < ACC; k++) acc[k] = _mm256_fmadd_ps(acc[k], a, b);
        t = now() - t0;
        for (k = 0; k < ACC; k++) { _mm256_storeu_ps(lanes, acc[k]); sink += lanes[0]; }
        if (sink == 12345.0f) puts("");
        if ((double)iters * ACC * 8 * 2 / t / 1e9 > best) best = (double)iters * ACC * 8 * 2 / t / 1e9;
    }
    return best;
}
#endif

#if defined(__AVX512F__)
static double gflops512(long iters)
{
    double best = 0.0;
    int trial, k;
    long i;
    for (trial = 0; trial < 5; trial++) {
        __m512 acc[ACC], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
        float sink = 0.0f, lanes[16];
        double t0, t;
        for (k = 0; k < ACC; k++) acc[k] = _mm512_set1_ps((float)k);
        t0 = now();
        for (i = 0; i < iters; i++)
            for (k = 0; k < ACC; k++) acc[k] = _mm512_fmadd_ps(acc[k], a, b);
        t = now() - t0;
        for (k = 0; k < ACC; k++) { _mm512_storeu_ps(lanes, acc[k]); sink += lanes[0]; }
        if (sink == 12345.0f) puts("");
        if ((double)iters * ACC * 16 * 2 / t / 1e9 > best) best = (double)iters * ACC * 16 * 2 / t / 1e9;
    }
    return best;
}
#endif

int main(int argc, char **argv)
{
    long iters = argc > 1 ? atol(argv[1]) : 20000000L;
    printf("%.2f ", gflops128(iters));
#if defined(__AVX2__)
    printf("%.2f ", gflops256(iters));
#else
    printf("- ");
#endif
#if defined(__AVX512F__)
    printf("%.2f\n", gflops512(iters));
#else
    printf("-\n");
#endif
    return 0;
}
#else
int main(void)
{
    puts("- - -");
    return 0;
}
#endif
