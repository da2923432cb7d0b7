/* Linear forward + backward (y = x Wᵀ + b, then dX, dW, db) against raw OpenBLAS sgemm doing the same
 * three GEMMs on the same shapes: the share of the GEMM bound that hft's linear op reaches. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>

#include "autograd/autograd.h"
#include "bench/bench_util.h"

typedef struct shape_case {
    int64_t m, k, n;
    bool conv1d;
} shape_case;

typedef struct state {
    shape_case s;
    hft_ctx *ctx;
    hft_tensor *x, *w, *b, *gy;
    float *A, *B, *C, *dA, *dB;
} state;

static void run_hft(void *arg) {
    state *st = arg;
    hft_ctx *ctx = st->ctx;
    hft_tensor *w = st->s.conv1d ? hft_transpose(ctx, st->w, 0, 1) : st->w;
    hft_tensor *y = hft_linear(ctx, st->x, w, st->b);
    hft_backward(ctx, y, st->gy);
    hft_ctx_reset(ctx);
}

static void run_sgemm(void *arg) {
    state *st = arg;
    int m = (int)st->s.m, k = (int)st->s.k, n = (int)st->s.n;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1, st->A, k, st->B, k, 0, st->C, n); /* y */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, k, n, 1, st->C, n, st->B, k, 0, st->dA,
                k); /* dX */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, n, k, m, 1, st->C, n, st->A, k, 1, st->dB,
                k); /* dW */
}

int main(int argc, char **argv) {
    (void)argc, (void)argv;
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    printf("linear forward+backward vs raw sgemm (same 3 GEMMs), %d threads, f32\n", hft_threads_get());
    printf("%-28s %10s %10s %8s %10s\n", "M x K -> N", "hft ms", "sgemm ms", "share", "GFLOP/s");
    shape_case cases[] = {{256, 768, 2304, false}, {256, 768, 3072, false},  {256, 3072, 768, false},
                          {256, 768, 768, false},  {1024, 768, 3072, false}, {256, 768, 2304, true}};
    double sum_h = 0, sum_s = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        state st = {.s = cases[i]};
        int64_t m = st.s.m, k = st.s.k, n = st.s.n;
        st.ctx = hft_ctx_new(NULL);
        st.x = hft_tensor_new(HFT_F32, 2, (int64_t[]){m, k});
        st.w = st.s.conv1d ? hft_tensor_new(HFT_F32, 2, (int64_t[]){k, n})
                           : hft_tensor_new(HFT_F32, 2, (int64_t[]){n, k});
        st.b = hft_tensor_new(HFT_F32, 1, (int64_t[]){n});
        st.gy = hft_tensor_new(HFT_F32, 2, (int64_t[]){m, n});
        float *xv = hft_tensor_data(st.x), *wv = hft_tensor_data(st.w), *gv = hft_tensor_data(st.gy);
        for (int64_t j = 0; j < m * k; j++) xv[j] = (float)((j % 13) - 6) * 0.01f;
        for (int64_t j = 0; j < n * k; j++) wv[j] = (float)((j % 7) - 3) * 0.01f;
        for (int64_t j = 0; j < m * n; j++) gv[j] = (float)((j % 5) - 2) * 0.01f;
        hft_tensor_set_requires_grad(st.x, true);
        hft_tensor_set_requires_grad(st.w, true);
        hft_tensor_set_requires_grad(st.b, true);
        st.A = malloc(sizeof(float) * (size_t)(m * k));
        st.B = malloc(sizeof(float) * (size_t)(n * k));
        st.C = malloc(sizeof(float) * (size_t)(m * n));
        st.dA = malloc(sizeof(float) * (size_t)(m * k));
        st.dB = calloc((size_t)(n * k), sizeof(float));
        for (int64_t j = 0; j < m * k; j++) st.A[j] = xv[j];
        for (int64_t j = 0; j < n * k; j++) st.B[j] = wv[j];
        /* interleave the two so machine noise hits both alike */
        double th = 0, ts = 0;
        for (int round = 0; round < 3; round++) {
            th += bench_median(run_hft, &st, 1, 5);
            ts += bench_median(run_sgemm, &st, 1, 5);
        }
        double flops = 6.0 * (double)m * (double)n * (double)k;
        char label[64];
        snprintf(label, sizeof label, "%lld x %lld -> %lld%s", (long long)m, (long long)k, (long long)n,
                 st.s.conv1d ? " (Conv1D)" : "");
        printf("%-28s %10.3f %10.3f %8.3f %10.1f\n", label, th / 3 * 1e3, ts / 3 * 1e3, ts / th,
               flops / (th / 3) / 1e9);
        sum_h += th;
        sum_s += ts;
        hft_tensor_free(st.x);
        hft_tensor_free(st.w);
        hft_tensor_free(st.b);
        hft_tensor_free(st.gy);
        free(st.A), free(st.B), free(st.C), free(st.dA), free(st.dB);
        hft_ctx_free(st.ctx);
    }
    printf("overall share of the sgemm bound: %.3f (target >= 0.95)\n", sum_s / sum_h);
    return 0;
}
