/* layer_norm (torch.nn.functional.layer_norm over the last dim) and rms_norm (transformers'
 * LlamaRMSNorm). Forward saves each row's mean and rstd; backward writes dx, and the weight and bias
 * gradients summed over rows in fixed chunks (kernel scratch from the arena), so they are the same at
 * any thread count. */
#include "autograd/internal.h"

#include <assert.h>

typedef struct norm_saved {
    bool rms;
    double eps;
    int64_t rows, cols;
    hft_tensor *mean, *rstd; /* [rows]; mean NULL for RMS norm */
} norm_saved;

static void norm_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const norm_saved *s = node->saved;
    hft_tensor *x = node->in[0], *w = node->in[1], *b = node->in[2];
    assert(hft_tensor_is_contiguous(gy));
    void (*k)(const hft_norm_args *) = AG_KERNEL(ctx, norm_bwd, x->dtype, node->op);
    if (!k) return;
    ag_grad gx = {0}, gw = {0}, gb = {0};
    bool want_x = ag_grad_begin(ctx, x, AG_CONTIGUOUS, &gx);
    bool want_w = w && ag_grad_begin(ctx, w, AG_CONTIGUOUS, &gw);
    bool want_b = b && ag_grad_begin(ctx, b, AG_CONTIGUOUS, &gb);
    hft_norm_args a = {.rms = s->rms,
                       .rows = s->rows,
                       .cols = s->cols,
                       .eps = s->eps,
                       .x = hft_tensor_data(x),
                       .weight = w ? hft_tensor_data(w) : NULL,
                       .mean = s->mean ? hft_tensor_data(s->mean) : NULL,
                       .rstd = hft_tensor_data(s->rstd),
                       .dy = hft_tensor_data(gy),
                       .dx = want_x ? hft_tensor_data(gx.dst) : NULL,
                       .dweight = want_w ? hft_tensor_data(gw.dst) : NULL,
                       .dbias = want_b ? hft_tensor_data(gb.dst) : NULL,
                       .accumulate_dx = gx.accumulate,
                       .accumulate_dweight = gw.accumulate,
                       .accumulate_dbias = gb.accumulate};
    if (ctx->status == HFT_OK) {
        size_t bytes = ctx->kernels->norm_scratch_bytes(&a, hft_dtype_size(x->dtype));
        if (bytes) a.scratch = ag_alloc(ctx, bytes);
        if (!bytes || a.scratch) k(&a);
    }
    if (want_x) ag_grad_end(ctx, &gx);
    if (want_w) ag_grad_end(ctx, &gw);
    if (want_b) ag_grad_end(ctx, &gb);
}

static bool check_param(hft_ctx *ctx, const char *name, const char *what, const hft_tensor *x,
                        const hft_tensor *p) {
    if (!p) return true;
    if (!ag_check_same_dtype(ctx, name, x, p)) return false;
    int64_t C = x->shape[x->ndim - 1];
    if (p->ndim != 1 || p->shape[0] != C) {
        char bp[128], bx[128];
        ag_fail(ctx, HFT_EINVAL, "%s: %s %s does not match input %s (expected [%lld], the last dim)", name,
                what, hft_tensor_describe(p, bp, sizeof bp), hft_tensor_describe(x, bx, sizeof bx),
                (long long)C);
        return false;
    }
    return true;
}

static hft_tensor *norm_common(hft_ctx *ctx, const char *name, bool rms, hft_tensor *x, hft_tensor *w,
                               hft_tensor *b, double eps) {
    hft_tensor *in[3] = {x, w, b};
    if (!ag_check(ctx, name, 1, in)) return NULL;
    if ((w && !ag_check(ctx, name, 1, &in[1])) || (b && !ag_check(ctx, name, 1, &in[2]))) return NULL;
    if (!ag_check_float(ctx, name, x, "input")) return NULL;
    if (x->ndim < 1)
        return ag_fail(ctx, HFT_EINVAL, "%s: input must have at least 1 dim, got a scalar", name);
    if (!check_param(ctx, name, "weight", x, w) || !check_param(ctx, name, "bias", x, b)) return NULL;
    if (!(eps >= 0)) return ag_fail(ctx, HFT_EINVAL, "%s: eps must be >= 0, got %g", name, eps);
    void (*k)(const hft_norm_args *) = AG_KERNEL(ctx, norm_fwd, x->dtype, name);
    if (!k) return NULL;
    x = hft_contiguous(ctx, x);
    if (w) w = hft_contiguous(ctx, w);
    if (b) b = hft_contiguous(ctx, b);
    if (!x || ctx->status != HFT_OK) return NULL;
    int64_t cols = x->shape[x->ndim - 1], rows = 1;
    for (int d = 0; d < x->ndim - 1; d++) rows *= x->shape[d];
    hft_tensor *y = ag_new(ctx, x->dtype, x->ndim, x->shape);
    hft_tensor *mean = rms ? NULL : ag_new(ctx, x->dtype, 1, &rows);
    hft_tensor *rstd = ag_new(ctx, x->dtype, 1, &rows);
    if (!y || !rstd || (!rms && !mean)) return NULL;
    hft_norm_args a = {.rms = rms,
                       .rows = rows,
                       .cols = cols,
                       .eps = eps,
                       .x = hft_tensor_data(x),
                       .weight = w ? hft_tensor_data(w) : NULL,
                       .bias = b ? hft_tensor_data(b) : NULL,
                       .y = hft_tensor_data(y),
                       .mean = mean ? hft_tensor_data(mean) : NULL,
                       .rstd = hft_tensor_data(rstd)};
    k(&a);
    in[0] = x, in[1] = w, in[2] = b;
    hft_node *node = ag_record(ctx, name, norm_backward, y, 3, in, sizeof(norm_saved));
    if (node) *(norm_saved *)node->saved = (norm_saved){rms, eps, rows, cols, mean, rstd};
    return y;
}

hft_tensor *hft_layer_norm(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, hft_tensor *bias, double eps) {
    return norm_common(ctx, "layer_norm", false, x, weight, bias, eps);
}

hft_tensor *hft_rms_norm(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, double eps) {
    return norm_common(ctx, "rms_norm", true, x, weight, NULL, eps);
}
