/* One core's f32 FMA throughput for `edgec-testsuite bench-host` (docs/performance.md):
   the "% of peak" denominator. Twelve independent accumulators (more than FMA latency x
   issue width: 4 cycles x 2 ports on recent x86 cores) so the loop is bound by
   throughput, not latency. They are twelve named variables, not an array: GCC at -O2
   does not unroll a loop over an array of accumulators and keeps it in memory, which
   makes the loop bound by store-to-load forwarding and reported about half the real
   peak. Prints the GFLOP/s of 128-bit (4-lane) FMA, then of 256-bit (8-lane) FMA when
   built with -mavx2 -mfma, then of 512-bit (16-lane) FMA when built with -mavx512f
   (x86_64), "-" for each one missing. An FMA counts 2 flops. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__FMA__)
#include <immintrin.h>
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Best of a few trials, in thread CPU time: the machine is shared, and time spent
   preempted is not the core's speed. VT: vector type, LANES: f32 lanes, SET1/FMA/ADD:
   its intrinsics, STORE: an unaligned store (the sink keeps the chains alive). */
#define GFLOPS(NAME, VT, LANES, SET1, FMA, ADD, STORE)                                   \
    static double NAME(long iters)                                                       \
    {                                                                                    \
        double best = 0.0;                                                               \
        int trial;                                                                       \
        long i;                                                                          \
        for (trial = 0; trial < 5; trial++) {                                            \
            VT a = SET1(0.999999f), b = SET1(1e-7f);                                     \
            VT c0 = SET1(0.f), c1 = SET1(1.f), c2 = SET1(2.f), c3 = SET1(3.f);           \
            VT c4 = SET1(4.f), c5 = SET1(5.f), c6 = SET1(6.f), c7 = SET1(7.f);           \
            VT c8 = SET1(8.f), c9 = SET1(9.f), c10 = SET1(10.f), c11 = SET1(11.f);       \
            float lanes[LANES];                                                          \
            double t0, t, g;                                                             \
            t0 = now();                                                                  \
            for (i = 0; i < iters; i++) {                                                \
                c0 = FMA(c0, a, b); c1 = FMA(c1, a, b); c2 = FMA(c2, a, b);              \
                c3 = FMA(c3, a, b); c4 = FMA(c4, a, b); c5 = FMA(c5, a, b);              \
                c6 = FMA(c6, a, b); c7 = FMA(c7, a, b); c8 = FMA(c8, a, b);              \
                c9 = FMA(c9, a, b); c10 = FMA(c10, a, b); c11 = FMA(c11, a, b);          \
            }                                                                            \
            t = now() - t0;                                                              \
            c0 = ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7)));      \
            c0 = ADD(c0, ADD(ADD(c8, c9), ADD(c10, c11)));                               \
            STORE(lanes, c0);                                                            \
            if (lanes[0] == 12345.0f) puts("");                                          \
            g = (double)iters * 12 * LANES * 2 / t / 1e9;                                \
            if (g > best) best = g;                                                      \
        }                                                                                \
        return best;                                                                     \
    }

GFLOPS(gflops128, __m128, 4, _mm_set1_ps, _mm_fmadd_ps, _mm_add_ps, _mm_storeu_ps)
#if defined(__AVX2__)
GFLOPS(gflops256, __m256, 8, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps)
#endif
#if defined(__AVX512F__)
GFLOPS(gflops512, __m512, 16, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps)
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
