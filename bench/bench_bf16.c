/* Mixed precision on the CPU: a GPT-2 124M training step (forward, backward, clipping, AdamW) in f32 and
 * under bf16 autocast, at B = 4 and T = 64 and 256, against PyTorch's CPU autocast bf16 step eager and under
 * torch.compile on the same threads (bench/peers/torch_step.py --bf16; skipped without PyTorch); and the GEMM
 * hft runs bf16 operands through, in GFLOP/s against sgemm at a training shape. Which bf16 GEMM runs is
 * printed: on a CPU without bf16 dot products (no AVX512_BF16) it is the exact fallback (widen to f32,
 * sgemm), slower than f32 by the conversion, and the figures say so. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_gpt2.h"
#include "bench/bench_util.h"

typedef struct gemm_state {
    hft_gemm_args g;
    const hft_kernels *k;
} gemm_state;

static void run_gemm(void *arg) {
    gemm_state *s = arg;
    s->k->gemm[HFT_F32](&s->g);
}

/* C [M, N] = A [M, K] Bᵀ with B [N, K] (a linear layer's forward) in f32 or with B held in bf16. */
static double gemm_gflops(int M, int N, int K, bool bf16) {
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
    uint16_t *b16 = calloc((size_t)N * K, 2);
    gemm_state s = {.k = hft_kernels_for(HFT_CPU),
                    .g = {.trans_b = true,
                          .m = M,
                          .n = N,
                          .k = K,
                          .alpha = 1,
                          .a = a,
                          .lda = K,
                          .b = bf16 ? (const void *)b16 : b,
                          .ldb = K,
                          .c = c,
                          .ldc = N,
                          .batch = 1,
                          .b_type = bf16 ? HFT_BF16 : HFT_F32}};
    double t = bench_median(run_gemm, &s, 2, 7);
    free(a), free(b), free(c), free(b16);
    return 2.0 * M * N * (double)K / t / 1e9;
}

static double hft_step(int B, int T, hft_dtype autocast, int reps) {
    bench_gpt2 *g = bench_gpt2_new(B, T, autocast);
    double t = g ? bench_median(bench_gpt2_step, g, 2, reps) : -1;
    bench_gpt2_free(g);
    return t;
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    int threads = hft_threads_get();
    bool native = hft_cpu_has_avx512_bf16();
    printf("bf16 on this CPU: %s\n",
           native ? "AVX512_BF16 present, but no native bf16 GEMM is written yet: the exact fallback runs"
                  : "no bf16 dot product (no AVX512_BF16): autocast's weight cache holds rounded f32 values "
                    "and its GEMMs are sgemm");
    double g32 = gemm_gflops(256, 3072, 768, false), g16 = gemm_gflops(256, 3072, 768, true);
    printf(
        "  GEMM [256 x 768] x [768 x 3072]ᵀ: f32 %.0f GFLOP/s; with the weight held in bf16 (a LoRA base), "
        "widened in the GEMM, %.0f GFLOP/s (%.2fx)\n",
        g32, g16, g16 / g32);
    int seqs[2] = {64, 256};
    for (int i = 0; i < 2; i++) {
        int B = 4, T = seqs[i], reps = T > 64 ? 3 : 5;
        printf("GPT-2 124M training step, B %d, T %d, AdamW, %d threads\n", B, T, threads);
        double t32 = hft_step(B, T, HFT_F32, reps), t16 = hft_step(B, T, HFT_BF16, reps);
        printf("  hft f32           %7.3f s/step\n", t32);
        printf(
            "  hft bf16 autocast %7.3f s/step  (%.2fx the f32 step; target >= 1.5x where bf16 is native)\n",
            t16, t32 / t16);
        char args[96];
        double peer[2];
        /* Without bf16 hardware PyTorch's bf16 step takes minutes (92.9 s at T 64 eager, measured here): one
         * timed step, eager only, unless HFT_BF16_PEERS=all asks for everything. */
        const char *all = getenv("HFT_BF16_PEERS");
        bool full = native || (all && strcmp(all, "all") == 0);
        for (int c = 0; c < (full ? 2 : 1); c++) {
            snprintf(args, sizeof args, "--batch %d --seq %d --reps %d --bf16%s", B, T, full ? reps : 1,
                     c ? " --compile" : "");
            peer[c] = bench_run_peer("torch_step.py", args, threads);
            if (peer[c] > 0)
                printf("  PyTorch autocast bf16 %s %7.3f s/step; hft bf16 is %.2fx its speed\n",
                       c ? "compiled" : "eager   ", peer[c], peer[c] / t16);
        }
    }
    if (!native && !(getenv("HFT_BF16_PEERS") && strcmp(getenv("HFT_BF16_PEERS"), "all") == 0))
        printf("(PyTorch compiled not run without bf16 hardware, where its eager step takes minutes; "
               "HFT_BF16_PEERS=all runs it)\n");
    return 0;
}
