/* Fused attention forward + backward against the naive chain (scores = Q Kᵀ, mask, softmax, P V) built
 * from hft's own matmul and softmax ops, at T = 1024: time and peak memory (arena + gradient pool). */
#include <math.h>
#include <stdio.h>

#include "autograd/autograd.h"
#include "bench/bench_util.h"

enum { B = 2, H = 12, T = 1024, D = 64 };

typedef struct state {
    hft_ctx *ctx;
    hft_tensor *q, *k, *v, *gout, *mask;
    bool fused;
} state;

static void run(void *arg) {
    state *s = arg;
    hft_ctx *ctx = s->ctx;
    hft_tensor *o;
    if (s->fused) {
        hft_attn_opts opts = {.causal = true};
        o = hft_attention(ctx, s->q, s->k, s->v, &opts); /* [B, T, H, D] */
    } else {
        int perm[4] = {0, 2, 1, 3};
        hft_tensor *q = hft_permute(ctx, s->q, perm), *k = hft_permute(ctx, s->k, perm),
                   *v = hft_permute(ctx, s->v, perm);
        hft_tensor *scores =
            hft_scale(ctx, hft_matmul(ctx, q, hft_transpose(ctx, k, -1, -2)), 1.0 / sqrt((double)D));
        hft_tensor *p = hft_softmax(ctx, hft_add(ctx, scores, s->mask), -1);
        o = hft_permute(ctx, hft_matmul(ctx, p, v), perm);
    }
    if (hft_backward(ctx, o, s->gout) != HFT_OK) fprintf(stderr, "attention bench: %s\n", hft_ctx_error(ctx));
    hft_ctx_reset(ctx);
}

static hft_tensor *filled(int ndim, const int64_t *shape, int salt) {
    hft_tensor *t = hft_tensor_new(HFT_F32, ndim, shape);
    float *v = hft_tensor_data(t);
    for (int64_t i = 0; i < hft_tensor_numel(t); i++)
        v[i] = (float)(((i * 2654435761u + (unsigned)salt) % 1000) / 1000.0 - 0.5);
    return t;
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    int64_t shape[4] = {B, T, H, D};
    state s = {.q = filled(4, shape, 1),
               .k = filled(4, shape, 2),
               .v = filled(4, shape, 3),
               .gout = filled(4, shape, 4)};
    hft_tensor_set_requires_grad(s.q, true);
    hft_tensor_set_requires_grad(s.k, true);
    hft_tensor_set_requires_grad(s.v, true);
    s.mask = hft_tensor_new(HFT_F32, 2, (int64_t[]){T, T});
    float *m = hft_tensor_data(s.mask);
    for (int i = 0; i < T; i++)
        for (int j = 0; j < T; j++) m[i * T + j] = j > i ? -INFINITY : 0.0f;
    printf("causal attention forward+backward, B %d, H %d, T %d, D %d, f32, %d threads\n", B, H, T, D,
           hft_threads_get());
    double times[2];
    size_t peaks[2];
    for (int fused = 1; fused >= 0; fused--) {
        s.fused = fused;
        s.ctx = hft_ctx_new(NULL);
        times[fused] = bench_median(run, &s, 1, 5);
        hft_memory_stats st;
        hft_ctx_memory(s.ctx, &st);
        peaks[fused] = st.arena_peak + st.pool_peak;
        hft_ctx_free(s.ctx);
        printf("  %-34s %8.1f ms   peak %8.1f MiB (arena %.1f + grads %.1f)\n",
               fused ? "fused (online softmax, tiles)" : "naive (matmul, softmax, matmul)",
               times[fused] * 1e3, (double)peaks[fused] / 1048576.0, (double)st.arena_peak / 1048576.0,
               (double)st.pool_peak / 1048576.0);
    }
    printf("fused vs naive: %.2fx faster, %.1fx less memory (B·H·T·T scores alone: %.0f MiB)\n",
           times[0] / times[1], (double)peaks[0] / (double)peaks[1], (double)B * H * T * T * 4 / 1048576.0);
    return 0;
}
