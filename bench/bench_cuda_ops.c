/* The CUDA op table on the GPU, op by op, at GPT-2 124M training shapes (B = 4, T = 1024, C = 768,
 * V = 50257): GEMM TFLOP/s in f32 (TF32 off) and bf16, flash attention forward and backward, fused
 * cross-entropy, layer norm and AdamW in GB/s. Skipped (exit 0 with a message) without a GPU; refuses the
 * host emulator, whose timings mean nothing. The peer (PyTorch on the same GPU, when its Python has CUDA)
 * runs the same ops in the same invocation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "kernels/kernels.h"

static const hft_kernels *gk;

static void *dalloc(size_t bytes) {
    void *p = gk->dev->alloc(bytes);
    if (!p) {
        fprintf(stderr, "bench_cuda_ops: %s\n", hft_error_message());
        exit(1);
    }
    return p;
}

/* Device memory of random values in [-1, 1) (f32, or bf16 when half). */
static void *drandom(size_t n, bool half, unsigned seed) {
    size_t bytes = n * (half ? 2 : 4);
    unsigned char *h = malloc(bytes);
    unsigned s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float x = (float)(s >> 8) / 8388608.0f - 1.0f;
        if (half) {
            uint16_t b = hft_f32_to_bf16(x);
            memcpy(h + 2 * i, &b, 2);
        } else {
            memcpy(h + 4 * i, &x, 4);
        }
    }
    void *d = dalloc(bytes);
    if (gk->dev->copy(d, h, bytes, HFT_COPY_H2D) != HFT_OK) exit(1);
    free(h);
    return d;
}

typedef void (*op_fn)(void *);

/* Median seconds of one call, timed around a device synchronisation. */
static double time_op(op_fn fn, void *arg, int reps) {
    fn(arg);
    gk->dev->synchronize();
    double best[16];
    if (reps > 16) reps = 16;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        fn(arg);
        if (gk->dev->synchronize() != HFT_OK) {
            fprintf(stderr, "bench_cuda_ops: %s\n", hft_error_message());
            exit(1);
        }
        best[r] = bench_now() - t0;
    }
    for (int i = 1; i < reps; i++) /* insertion sort: reps is small */
        for (int j = i; j > 0 && best[j] < best[j - 1]; j--) {
            double t = best[j];
            best[j] = best[j - 1];
            best[j - 1] = t;
        }
    return best[reps / 2];
}

typedef struct gemm_case {
    hft_gemm_args g;
    hft_dtype dt;
} gemm_case;

static void run_gemm(void *p) {
    gemm_case *c = p;
    gk->gemm[c->dt](&c->g);
}

static void bench_gemm(const char *what, hft_dtype dt, int64_t m, int64_t n, int64_t k) {
    bool half = dt != HFT_F32;
    gemm_case c = {.dt = dt};
    c.g = (hft_gemm_args){
        .m = m, .n = n, .k = k, .alpha = 1, .beta = 0, .lda = k, .ldb = n, .ldc = n, .batch = 1};
    c.g.a = drandom((size_t)(m * k), half, 1);
    c.g.b = drandom((size_t)(k * n), half, 2);
    c.g.c = dalloc((size_t)(m * n) * (half ? 2 : 4));
    double s = time_op(run_gemm, &c, 10);
    printf("  gemm %-4s %-26s %8.3f ms %8.1f TFLOP/s\n", hft_dtype_name(dt), what, s * 1e3,
           2.0 * (double)m * (double)n * (double)k / s / 1e12);
    gk->dev->free((void *)c.g.a);
    gk->dev->free((void *)c.g.b);
    gk->dev->free(c.g.c);
}

typedef struct attn_case {
    hft_attn_args a;
    hft_dtype dt;
    bool backward;
} attn_case;

static void run_attn(void *p) {
    attn_case *c = p;
    if (c->backward)
        gk->attn_bwd[c->dt](&c->a);
    else
        gk->attn_fwd[c->dt](&c->a);
}

static void bench_attention(hft_dtype dt, int64_t B, int64_t T, int64_t H, int64_t D) {
    bool half = dt != HFT_F32;
    size_t el = half ? 2 : 4, n = (size_t)(B * T * H * D);
    attn_case c = {.dt = dt};
    hft_attn_args *a = &c.a;
    *a = (hft_attn_args){
        .batch = B, .tq = T, .tk = T, .hq = H, .hkv = H, .dim = D, .scale = 0.125, .causal = true};
    a->q = drandom(n, half, 3);
    a->k = drandom(n, half, 4);
    a->v = drandom(n, half, 5);
    a->q_sb = a->k_sb = a->v_sb = T * H * D;
    a->q_st = a->k_st = a->v_st = H * D;
    a->q_sh = a->k_sh = a->v_sh = D;
    a->o = dalloc(n * el);
    a->lse = dalloc((size_t)(B * H * T) * 4);
    a->dout = drandom(n, half, 6);
    a->dq = dalloc(n * el);
    a->dk = dalloc(n * el);
    a->dv = dalloc(n * el);
    a->dq_sb = a->dk_sb = a->dv_sb = T * H * D;
    a->dq_st = a->dk_st = a->dv_st = H * D;
    a->dq_sh = a->dk_sh = a->dv_sh = D;
    size_t scratch = gk->attn_scratch_bytes(a, el, true);
    a->scratch = scratch ? dalloc(scratch) : NULL;
    /* causal: half of the T×T scores; forward 2 GEMMs, backward 5 (the recomputed scores among them) */
    double fwd_flop = 4.0 * (double)(B * H * D) * (double)T * (double)T / 2;
    double s_fwd = time_op(run_attn, &c, 10);
    c.backward = true;
    double s_bwd = time_op(run_attn, &c, 10);
    printf(
        "  attention %-4s B%lld T%lld H%lld D%lld causal: forward %.3f ms (%.1f TFLOP/s), backward %.3f ms "
        "(%.1f TFLOP/s)\n",
        hft_dtype_name(dt), (long long)B, (long long)T, (long long)H, (long long)D, s_fwd * 1e3,
        fwd_flop / s_fwd / 1e12, s_bwd * 1e3, 2.5 * fwd_flop / s_bwd / 1e12);
    void *bufs[] = {(void *)a->q,    (void *)a->k, (void *)a->v, a->o,  a->lse,
                    (void *)a->dout, a->dq,        a->dk,        a->dv, a->scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gk->dev->free(bufs[i]);
}

typedef struct xent_case {
    hft_xent_args x;
    hft_dtype dt;
} xent_case;

static void run_xent(void *p) {
    xent_case *c = p;
    gk->xent_fwd[c->dt](&c->x);
    gk->xent_bwd[c->dt](&c->x);
}

static void bench_xent(hft_dtype dt, int64_t rows, int64_t classes) {
    bool half = dt != HFT_F32;
    xent_case c = {.dt = dt};
    int32_t *t = malloc((size_t)rows * 4);
    for (int64_t i = 0; i < rows; i++) t[i] = (int32_t)((i * 7919) % classes);
    void *targets = dalloc((size_t)rows * 4);
    gk->dev->copy(targets, t, (size_t)rows * 4, HFT_COPY_H2D);
    free(t);
    void *logits = drandom((size_t)(rows * classes), half, 7);
    c.x = (hft_xent_args){.rows = rows,
                          .classes = classes,
                          .ld = classes,
                          .logits = logits,
                          .target_dtype = HFT_I32,
                          .targets = targets,
                          .ignore_index = -100,
                          .row_loss = dalloc((size_t)rows * 4),
                          .lse = dalloc((size_t)rows * 4),
                          .dlogits = logits,
                          .scale = 1.0 / (double)rows};
    double s = time_op(run_xent, &c, 10);
    double bytes = 3.0 * (double)(rows * classes) * (half ? 2 : 4); /* read twice, write once */
    printf("  cross-entropy %-4s %lld x %lld, forward + backward in place: %.3f ms, %.0f GB/s\n",
           hft_dtype_name(dt), (long long)rows, (long long)classes, s * 1e3, bytes / s / 1e9);
    gk->dev->free(logits);
    gk->dev->free(targets);
    gk->dev->free(c.x.row_loss);
    gk->dev->free(c.x.lse);
}

static void run_norm(void *p) {
    hft_norm_args *a = p;
    gk->norm_fwd[HFT_F32](a);
    gk->norm_bwd[HFT_F32](a);
}

static void bench_norm(int64_t rows, int64_t cols) {
    hft_norm_args a = {.rows = rows, .cols = cols, .eps = 1e-5};
    a.x = drandom((size_t)(rows * cols), false, 8);
    a.weight = drandom((size_t)cols, false, 9);
    a.bias = drandom((size_t)cols, false, 10);
    a.y = dalloc((size_t)(rows * cols) * 4);
    a.mean = dalloc((size_t)rows * 4);
    a.rstd = dalloc((size_t)rows * 4);
    a.dy = drandom((size_t)(rows * cols), false, 11);
    a.dx = dalloc((size_t)(rows * cols) * 4);
    a.dweight = dalloc((size_t)cols * 4);
    a.dbias = dalloc((size_t)cols * 4);
    size_t scratch = gk->norm_scratch_bytes(&a, 4);
    a.scratch = scratch ? dalloc(scratch) : NULL;
    double s = time_op(run_norm, &a, 10);
    double bytes = 5.0 * (double)(rows * cols) * 4; /* x, y; x, dy, dx */
    printf("  layer norm f32 %lld x %lld, forward + backward: %.3f ms, %.0f GB/s\n", (long long)rows,
           (long long)cols, s * 1e3, bytes / s / 1e9);
    void *bufs[] = {(void *)a.x, (void *)a.weight, (void *)a.bias, a.y,      a.mean, a.rstd, (void *)a.dy,
                    a.dx,        a.dweight,        a.dbias,        a.scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) gk->dev->free(bufs[i]);
}

static void run_adam(void *p) {
    gk->adam_step[HFT_F32](p);
}

static void bench_adamw(int64_t n) {
    hft_optim_slice slice = {.offset = 0, .n = n, .lr = 1e-4, .weight_decay = 0.1};
    slice.param = drandom((size_t)n, false, 12);
    hft_adam_args a = {.n_slices = 1,
                       .slices = &slice,
                       .beta1 = 0.9,
                       .beta2 = 0.999,
                       .eps = 1e-8,
                       .step = 1,
                       .decoupled = true};
    a.grad = drandom((size_t)n, false, 13);
    a.exp_avg = drandom((size_t)n, false, 14);
    a.exp_avg_sq = drandom((size_t)n, false, 15);
    double s = time_op(run_adam, &a, 10);
    printf("  AdamW f32, %lld parameters: %.3f ms, %.0f GB/s\n", (long long)n, s * 1e3,
           28.0 * (double)n / s / 1e9);
    gk->dev->free(slice.param);
    gk->dev->free((void *)a.grad);
    gk->dev->free(a.exp_avg);
    gk->dev->free(a.exp_avg_sq);
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) return 1;
    gk = hft_cuda_load();
    if (!gk) {
        printf("skipped: %s\n", hft_error_message());
        return 0;
    }
    if (strstr(gk->name, "emulated")) {
        printf("skipped: the CUDA table is the host emulator (timings would mean nothing)\n");
        return 0;
    }
    char desc[256] = "";
    gk->dev->describe(0, desc, sizeof desc);
    printf("bench_cuda_ops on %s (GPT-2 124M shapes: B 4, T 1024)\n", desc);
    const int64_t bt = 4 * 1024, c = 768, v = 50257;
    bench_gemm("4096^3", HFT_F32, 4096, 4096, 4096);
    bench_gemm("4096^3", HFT_BF16, 4096, 4096, 4096);
    bench_gemm("fc: 4096x3072x768", HFT_BF16, bt, 4 * c, c);
    bench_gemm("proj: 4096x768x3072", HFT_BF16, bt, c, 4 * c);
    bench_gemm("lm head: 4096x50257x768", HFT_BF16, bt, v, c);
    bench_attention(HFT_BF16, 4, 1024, 12, 64);
    bench_attention(HFT_F32, 4, 1024, 12, 64);
    bench_xent(HFT_BF16, bt, v);
    bench_norm(bt, c);
    bench_adamw(124439808);
    printf("ok\n");
    return 0;
}
