/* One GPT-2 124M training step (B = 4, T = 64 by default: forward, backward, clipping, AdamW) against the
 * bound its own GEMMs set: every linear layer's forward and two backward GEMMs and the classifier's, at their
 * own shapes and transposes, timed with raw OpenBLAS sgemm on the same threads in the same run. Prints the
 * step as a share of that bound, and PyTorch's step on the same threads (bench/peers/torch_step.py). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_gpt2.h"
#include "bench/bench_util.h"

typedef struct gemm_shape {
    int m, n, k;
    bool ta, tb;
    int count; /* how many times a step runs it */
} gemm_shape;

typedef struct gemm_state {
    const gemm_shape *g;
    float *a, *b, *c;
} gemm_state;

static void run_gemm(void *arg) {
    gemm_state *s = arg;
    const gemm_shape *g = s->g;
    cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans, g->tb ? CblasTrans : CblasNoTrans, g->m,
                g->n, g->k, 1.0f, s->a, g->ta ? g->m : g->k, s->b, g->tb ? g->k : g->n, 0.0f, s->c, g->n);
}

int main(int argc, char **argv) {
    int B = argc > 1 ? atoi(argv[1]) : 4, T = argc > 2 ? atoi(argv[2]) : 64;
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    int threads = hft_threads_get();
    bench_gpt2 *gpt2 = bench_gpt2_new(B, T, HFT_F32);
    if (!gpt2) return 1;
    printf("GPT-2 124M training step, B %d, T %d, f32, AdamW, %d threads\n", B, T, threads);
    double t_step = bench_median(bench_gpt2_step, gpt2, 2, 5);

    /* the step's GEMMs: y = x Wᵀ, dX = dY W, dW = dYᵀ X for each linear layer, and the tied classifier */
    int M = B * T, d = 768;
    gemm_shape shapes[] = {
        {M, 3 * d, d, false, true, 12}, {M, d, 3 * d, false, false, 12},
        {3 * d, d, M, true, false, 12}, /* c_attn */
        {M, d, d, false, true, 12},     {M, d, d, false, false, 12},
        {d, d, M, true, false, 12}, /* attn.c_proj */
        {M, 4 * d, d, false, true, 12}, {M, d, 4 * d, false, false, 12},
        {4 * d, d, M, true, false, 12}, /* c_fc */
        {M, d, 4 * d, false, true, 12}, {M, 4 * d, d, false, false, 12},
        {d, 4 * d, M, true, false, 12}, /* mlp.c_proj */
        {M, 50257, d, false, true, 1},  {M, d, 50257, false, false, 1},
        {50257, d, M, true, false, 1}, /* classifier */
    };
    double bound = 0, flops = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        gemm_shape *g = &shapes[i];
        gemm_state gs = {.g = g,
                         .a = calloc((size_t)g->m * (size_t)g->k, 4),
                         .b = calloc((size_t)g->k * (size_t)g->n, 4),
                         .c = calloc((size_t)g->m * (size_t)g->n, 4)};
        double t = bench_median(run_gemm, &gs, 1, 5);
        bound += t * g->count;
        flops += 2.0 * g->m * g->n * (double)g->k * g->count;
        free(gs.a), free(gs.b), free(gs.c);
    }
    printf("  hft step          %8.3f s  (%.0f tokens/s)\n", t_step, (double)(B * T) / t_step);
    printf("  sgemm bound       %8.3f s  (the step's %.0f GFLOP of GEMMs at %.0f GFLOP/s, OpenBLAS, same "
           "shapes)\n",
           bound, flops / 1e9, flops / bound / 1e9);
    printf("  share of the bound %7.2f  (target >= 0.85; REFERENCE.md: PyTorch 0.50, llm.c 0.22)\n",
           bound / t_step);
    char args[64];
    snprintf(args, sizeof args, "--batch %d --seq %d", B, T);
    double peer = bench_run_peer("torch_step.py", args, threads);
    if (peer > 0)
        printf("  PyTorch step      %8.3f s  (share %.2f); hft is %.2fx PyTorch's speed\n", peer,
               bound / peer, peer / t_step);
    bench_gpt2_free(gpt2);
    return 0;
}
