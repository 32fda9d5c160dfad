// How many multiply-accumulates one core issues per second with each dot-product instruction a prompt's
// GEMM could be built on: fp32 FMA at 8 lanes (what the AVX2 kernels use) and at 16 (the AVX-512 ones),
// bf16 pairs (VDPBF16PS, 32) and unsigned×signed int8 quads (VPDPBUSD, 64, what llama.cpp's quantised
// paths use). Twelve independent accumulators hide each instruction's latency, so the figures are issue
// rates: the roofline of a GEMM on this core.
//   clang -O2 tools/quant/instruction_rates.c -o /tmp/instruction_rates && /tmp/instruction_rates
// Needs AVX2 and FMA; the AVX-512 rows are measured where the CPU has AVX512-F/BW, AVX512_BF16 and
// AVX512_VNNI.
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512bf16,avx512vnni")))
#define N_ACC 12
#define KEEP(a) __asm__ volatile("" : "+v"(a[0]), "+v"(a[1]), "+v"(a[2]), "+v"(a[3]), "+v"(a[4]), "+v"(a[5]), \
                                 "+v"(a[6]), "+v"(a[7]), "+v"(a[8]), "+v"(a[9]), "+v"(a[10]), "+v"(a[11]))

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

__attribute__((target("avx2,fma"))) static double fma8_rate(long rounds) {
    __m256 a[N_ACC];
    for (int i = 0; i < N_ACC; i++) a[i] = _mm256_set1_ps((float)i);
    const __m256 b = _mm256_set1_ps(1.0001f), c = _mm256_set1_ps(0.9999f);
    const double t0 = cpu_seconds();
    for (long n = 0; n < rounds; n++) {
        for (int i = 0; i < N_ACC; i++) a[i] = _mm256_fmadd_ps(b, c, a[i]);
        KEEP(a);
    }
    return (double)rounds * N_ACC / (cpu_seconds() - t0);
}

TARGET static double fma_rate(long rounds) {
    __m512 a[N_ACC];
    for (int i = 0; i < N_ACC; i++) a[i] = _mm512_set1_ps((float)i);
    const __m512 b = _mm512_set1_ps(1.0001f), c = _mm512_set1_ps(0.9999f);
    const double t0 = cpu_seconds();
    for (long n = 0; n < rounds; n++) {
        for (int i = 0; i < N_ACC; i++) a[i] = _mm512_fmadd_ps(b, c, a[i]);
        KEEP(a);
    }
    return (double)rounds * N_ACC / (cpu_seconds() - t0);
}

TARGET static double bf16_rate(long rounds) {
    __m512 a[N_ACC];
    for (int i = 0; i < N_ACC; i++) a[i] = _mm512_set1_ps((float)i);
    const __m512bh b = (__m512bh)_mm512_set1_epi32(0x3f803f80);
    const double t0 = cpu_seconds();
    for (long n = 0; n < rounds; n++) {
        for (int i = 0; i < N_ACC; i++) a[i] = _mm512_dpbf16_ps(a[i], b, b);
        KEEP(a);
    }
    return (double)rounds * N_ACC / (cpu_seconds() - t0);
}

TARGET static double int8_rate(long rounds) {
    __m512i a[N_ACC];
    for (int i = 0; i < N_ACC; i++) a[i] = _mm512_set1_epi32(i);
    const __m512i b = _mm512_set1_epi32(0x01010101);
    const double t0 = cpu_seconds();
    for (long n = 0; n < rounds; n++) {
        for (int i = 0; i < N_ACC; i++) a[i] = _mm512_dpbusd_epi32(a[i], b, b);
        KEEP(a);
    }
    return (double)rounds * N_ACC / (cpu_seconds() - t0);
}

int main(void) {
    const long rounds = 20000000;
    const struct { const char *name; double (*rate)(long); int macs; } kinds[] = {
        {"fp32 FMA, 256-bit", fma8_rate, 8},
        {"fp32 FMA, 512-bit", fma_rate, 16},
        {"bf16 pairs (VDPBF16PS)", bf16_rate, 32},
        {"int8 quads (VPDPBUSD)", int8_rate, 64},
    };
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni");
    printf("one core, best of 3%s:\n", avx512 ? "" : " (no AVX-512 here: its rows are left out)");
    for (int k = 0; k < (avx512 ? 4 : 1); k++) {
        double best = 0;
        for (int r = 0; r < 3; r++) {
            const double v = kinds[k].rate(rounds);
            if (v > best) best = v;
        }
        printf("%-24s %6.2f G instructions/s  %7.1f G multiply-adds/s\n", kinds[k].name, best / 1e9, best * kinds[k].macs / 1e9);
    }
    return 0;
}
