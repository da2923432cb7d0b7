/* Ops that move values without arithmetic: contiguous copies, dtype casts, concatenation. */
#include "autograd/internal.h"

static void copy_backward(hft_ctx *ctx, hft_node *n, hft_tensor *g) {
    ag_grad gs;
    if (!ag_grad_begin(ctx, n->in[0], AG_STRIDED, &gs)) return;
    ag_copy_into(ctx, gs.dst, g, gs.accumulate); /* converts dtype back for casts */
    ag_grad_end(ctx, &gs);
}

hft_tensor *hft_contiguous(hft_ctx *ctx, hft_tensor *x) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, "contiguous", 1, in)) return NULL;
    if (hft_tensor_is_contiguous(x)) return x;
    hft_tensor *y = ag_new(ctx, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    ag_copy_into(ctx, y, x, false);
    ag_record(ctx, "contiguous", copy_backward, y, 1, in, 0);
    return y;
}

hft_tensor *hft_cast(hft_ctx *ctx, hft_tensor *x, hft_dtype dtype) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, "cast", 1, in)) return NULL;
    if ((unsigned)dtype >= HFT_DTYPE_COUNT)
        return ag_fail(ctx, HFT_EINVAL, "cast: unknown dtype %d", (int)dtype);
    if (x->dtype == dtype) return x;
    hft_tensor *y = ag_new(ctx, dtype, x->ndim, x->shape);
    if (!y) return NULL;
    ag_copy_into(ctx, y, x, false);
    if (hft_dtype_is_float(dtype) && hft_dtype_is_float(x->dtype))
        ag_record(ctx, "cast", copy_backward, y, 1, in, 0);
    return y;
}

typedef struct concat_saved {
    int dim;
} concat_saved;

static void concat_backward(hft_ctx *ctx, hft_node *n, hft_tensor *g) {
    int dim = ((concat_saved *)n->saved)->dim;
    int64_t start = 0;
    for (int i = 0; i < n->n_in; i++) {
        hft_tensor *x = n->in[i];
        if (x->requires_grad) {
            hft_tensor piece = *g;
            piece.shape[dim] = x->shape[dim];
            piece.offset += start * g->stride[dim];
            ag_grad gs;
            if (ag_grad_begin(ctx, x, AG_STRIDED, &gs)) {
                ag_copy_into(ctx, gs.dst, &piece, gs.accumulate);
                ag_grad_end(ctx, &gs);
            }
        }
        start += x->shape[dim];
    }
}

hft_tensor *hft_concat(hft_ctx *ctx, int n, hft_tensor *const *xs, int dim) {
    if (n < 1) return ag_fail(ctx, HFT_EINVAL, "concat: no tensors");
    if (!ag_check(ctx, "concat", n, xs) || !ag_dim(ctx, "concat", xs[0]->ndim, &dim)) return NULL;
    int64_t shape[HFT_MAX_DIMS];
    for (int d = 0; d < xs[0]->ndim; d++) shape[d] = xs[0]->shape[d];
    shape[dim] = 0;
    for (int i = 0; i < n; i++) {
        const hft_tensor *x = xs[i];
        if (x->ndim != xs[0]->ndim || x->dtype != xs[0]->dtype)
            return ag_fail(ctx, HFT_EINVAL, "concat: tensor %d differs in rank or dtype from tensor 0", i);
        for (int d = 0; d < x->ndim; d++)
            if (d != dim && x->shape[d] != xs[0]->shape[d])
                return ag_fail(ctx, HFT_EINVAL,
                               "concat: tensor %d has size %lld in dim %d, tensor 0 has %lld", i,
                               (long long)x->shape[d], d, (long long)xs[0]->shape[d]);
        shape[dim] += x->shape[dim];
    }
    hft_tensor *y = ag_new(ctx, xs[0]->dtype, xs[0]->ndim, shape);
    if (!y) return NULL;
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        hft_tensor piece = *y;
        piece.shape[dim] = xs[i]->shape[dim];
        piece.offset += start * y->stride[dim];
        ag_copy_into(ctx, &piece, xs[i], false);
        start += xs[i]->shape[dim];
    }
    hft_node *node = ag_record(ctx, "concat", concat_backward, y, n, xs, sizeof(concat_saved));
    if (node) ((concat_saved *)node->saved)->dim = dim;
    return y;
}
