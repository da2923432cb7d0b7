/* Dropout, as torch's in training mode, with the mask drawn from the context's counter-based stream
 * (seed, step, micro-step, call site; sample = global index of the row along dim 0). Backward draws the
 * same mask again instead of storing it. */
#include "autograd/internal.h"

#include <assert.h>

typedef struct dropout_saved {
    hft_rng_key key;
    int64_t sample0, samples, per_sample;
    double p;
} dropout_saved;

static void run_dropout(hft_ctx *ctx, hft_dtype dt, const dropout_saved *s, const void *x, void *y,
                        bool acc) {
    hft_dropout_args a = {.samples = s->samples,
                          .per_sample = s->per_sample,
                          .sample0 = s->sample0,
                          .key = s->key,
                          .p = s->p,
                          .x = x,
                          .y = y,
                          .accumulate = acc};
    if (s->samples > 0 && s->per_sample > 0) ctx->kernels->dropout[dt](&a);
}

static void dropout_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    hft_tensor *x = node->in[0];
    ag_grad g;
    if (!ag_grad_begin(ctx, x, AG_CONTIGUOUS, &g)) return;
    assert(hft_tensor_is_contiguous(gy)); /* an activation's gradient buffer is always contiguous */
    run_dropout(ctx, x->dtype, node->saved, hft_tensor_data(gy), hft_tensor_data(g.dst), g.accumulate);
    ag_grad_end(ctx, &g);
}

hft_tensor *hft_dropout(hft_ctx *ctx, hft_tensor *x, double p, uint16_t site) {
    const char *op = "dropout";
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, op, 1, in) || !ag_check_float(ctx, op, x, "input")) return NULL;
    if (!(p >= 0 && p <= 1)) return ag_fail(ctx, HFT_EINVAL, "%s: p must be in [0, 1], got %g", op, p);
    if (p == 0) return x;
    if (!(AG_KERNEL(ctx, dropout, x->dtype, op))) return NULL;
    if (!(x = hft_contiguous(ctx, x))) return NULL;
    hft_tensor *y = ag_new(ctx, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    int64_t samples = x->ndim ? x->shape[0] : 1;
    dropout_saved s = {
        .key = {.seed = ctx->rng_seed, .step = ctx->rng_step, .micro_step = ctx->rng_micro, .site = site},
        .sample0 = ctx->rng_sample0,
        .samples = samples,
        .per_sample = samples ? hft_tensor_numel(x) / samples : 0,
        .p = p};
    run_dropout(ctx, x->dtype, &s, hft_tensor_data(x), hft_tensor_data(y), false);
    in[0] = x;
    hft_node *node = ag_record(ctx, op, dropout_backward, y, 1, in, sizeof s);
    if (node) *(dropout_saved *)node->saved = s;
    return y;
}
