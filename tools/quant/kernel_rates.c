// Single-thread rates of the matrix–vector (T = 1) or GEMM (T > 1) kernels per weight type, in thread
// CPU time (a busy machine's other processes do not count; its memory traffic still does).
//   swift build -c release
//   clang -O2 -ISources/CKernels/include tools/quant/kernel_rates.c .build/release/CKernels.build/*.o \
//       -lpthread -lm -o /tmp/kernel_rates
//   /tmp/kernel_rates [T] [rows]      (default 1 token, 65536 rows of 768: a 0.1B head, streamed from
//                                      memory; 128 rows keeps the matrix in cache)
// Weights are random bytes (f32/f16 set to small constants): speed only, no meaning.
#include "rwkv_kernels.h"
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    const int T = argc > 1 ? atoi(argv[1]) : 1;
    const int rows = argc > 2 ? atoi(argv[2]) : 65536, cols = 768;
    if (T < 1 || rows < 1) { fprintf(stderr, "usage: kernel_rates [T >= 1] [rows >= 1]\n"); return 2; }
    const int types[] = {RK_F32, RK_F16, RK_BF16, RK_Q8_0, RK_Q4_0, RK_Q4_1, RK_Q5_0, RK_Q5_1, RK_Q4_K, RK_Q5_K, RK_Q6_K};
    const char *names[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_K", "q5_K", "q6_K"};
    float *x = malloc(sizeof(float) * (size_t)cols * T), *y = malloc(sizeof(float) * (size_t)rows * T);
    if (!x || !y) return 1;
    for (int i = 0; i < cols * T; i++) x[i] = (float)(i % 7) * 0.1f;
    for (int t = 0; t < (int)(sizeof types / sizeof types[0]); t++) {
        const int dt = types[t];
        const size_t bytes = (size_t)rows * (cols / rk_block_elems(dt)) * rk_block_bytes(dt);
        unsigned char *W = malloc(bytes);
        if (!W) return 1;
        for (size_t i = 0; i < bytes; i++) W[i] = (unsigned char)((i * 2654435761u) >> 13);
        if (dt == RK_F32) for (size_t i = 0; i < bytes / 4; i++) ((float *)W)[i] = 0.01f;
        if (dt == RK_F16 || dt == RK_BF16) for (size_t i = 0; i < bytes / 2; i++) ((unsigned short *)W)[i] = dt == RK_F16 ? 0x2000 : 0x3c00;
        const int reps = rows < 4096 ? 200 : 5;
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            const double t0 = cpu_seconds();
            if (T == 1) rk_matvec(dt, W, x, y, cols, 0, rows);
            else rk_gemm(dt, W, x, y, T, cols, rows, 0, rows);
            const double d = cpu_seconds() - t0;
            if (d < best) best = d;
        }
        printf("%-5s T=%d %8.3f ms %7.2f GB/s %7.2f G weights/s\n", names[t], T, best * 1e3, bytes / best / 1e9,
               (double)rows * cols * T / best / 1e9);
        free(W);
    }
    free(x);
    free(y);
    return 0;
}
