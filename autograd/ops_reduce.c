/* Sums and means over dims. The kernel sums in a fixed order, so results do not depend on the thread
 * count; backward broadcasts the upstream gradient back (a stride-0 read, no copy). */
#include "autograd/internal.h"

#include <math.h>

typedef struct reduce_saved {
    double alpha;
    int ndim_keep;
    int64_t shape_keep[HFT_MAX_DIMS]; /* out's shape with the reduced dims kept as 1 */
} reduce_saved;

static void reduce_backward(hft_ctx *ctx, hft_node *n, hft_tensor *g) {
    const reduce_saved *s = n->saved;
    hft_tensor *x = n->in[0];
    ag_grad gs;
    if (!ag_grad_begin(ctx, x, AG_STRIDED, &gs)) return;
    hft_tensor gk = *g; /* g seen with the reduced dims as size 1 */
    gk.ndim = s->ndim_keep;
    int64_t st = 1;
    for (int d = s->ndim_keep - 1; d >= 0; d--) {
        gk.shape[d] = s->shape_keep[d];
        gk.stride[d] = st;
        st *= s->shape_keep[d];
    }
    hft_map_args m = {.op = HFT_MAP_SCALE, .n_in = 1, .alpha = s->alpha, .accumulate = gs.accumulate};
    m.out = ag_kview(gs.dst);
    m.in[0] = ag_kview_broadcast(&gk, x->ndim, x->shape);
    if (hft_tensor_numel(x) > 0) {
        if (m.out.ndim == 0)
            m.out.ndim = m.in[0].ndim = 1, m.out.shape[0] = m.in[0].shape[0] = 1, m.out.stride[0] = 1;
        ctx->kernels->map[x->dtype](&m);
    }
    ag_grad_end(ctx, &gs);
}

static hft_tensor *reduce(hft_ctx *ctx, const char *name, hft_tensor *x, int n_dims, const int *dims,
                          bool keepdim, bool mean) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, name, 1, in) || !ag_check_float(ctx, name, x, "input")) return NULL;
    bool reduced[HFT_MAX_DIMS] = {false};
    if (n_dims == 0) {
        for (int d = 0; d < x->ndim; d++) reduced[d] = true;
    }
    for (int i = 0; i < n_dims; i++) {
        int d = dims[i];
        if (!ag_dim(ctx, name, x->ndim, &d)) return NULL;
        if (reduced[d]) return ag_fail(ctx, HFT_EINVAL, "%s: dim %d listed twice", name, d);
        reduced[d] = true;
    }
    int64_t keep[HFT_MAX_DIMS], outshape[HFT_MAX_DIMS], count = 1;
    int nout = 0;
    for (int d = 0; d < x->ndim; d++) {
        keep[d] = reduced[d] ? 1 : x->shape[d];
        if (reduced[d]) count *= x->shape[d];
        if (!reduced[d] || keepdim) outshape[nout++] = keep[d];
    }
    double alpha = mean ? (count ? 1.0 / (double)count : NAN) : 1.0;
    hft_tensor *y = ag_new(ctx, x->dtype, nout, outshape);
    if (!y) return NULL;
    hft_tensor yk = *y;
    yk.ndim = x->ndim;
    for (int d = 0; d < x->ndim; d++) yk.shape[d] = keep[d];
    ag_set_contiguous_strides(&yk);
    ag_reduce_into(ctx, &yk, x, alpha, false);
    hft_node *n = ag_record(ctx, name, reduce_backward, y, 1, in, sizeof(reduce_saved));
    if (n) {
        reduce_saved *s = n->saved;
        s->alpha = alpha;
        s->ndim_keep = x->ndim;
        for (int d = 0; d < x->ndim; d++) s->shape_keep[d] = keep[d];
    }
    return y;
}

hft_tensor *hft_sum(hft_ctx *ctx, hft_tensor *x, int n_dims, const int *dims, bool keepdim) {
    return reduce(ctx, "sum", x, n_dims, dims, keepdim, false);
}

hft_tensor *hft_mean(hft_ctx *ctx, hft_tensor *x, int n_dims, const int *dims, bool keepdim) {
    return reduce(ctx, "mean", x, n_dims, dims, keepdim, true);
}
