/* softmax and log_softmax over any dim. The kernel works on a contiguous [outer, n, inner] array; a
 * strided input is made contiguous first. A row that is all -inf gives NaN, as torch does. */
#include "autograd/internal.h"

#include <assert.h>

typedef struct softmax_saved {
    bool log;
    int64_t outer, n, inner;
} softmax_saved;

static void softmax_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const softmax_saved *s = node->saved;
    hft_tensor *x = node->in[0], *y = node->out;
    assert(hft_tensor_is_contiguous(gy));
    ag_grad g;
    if (!ag_grad_begin(ctx, x, AG_CONTIGUOUS, &g)) return;
    hft_softmax_args a = {.log = s->log,
                          .outer = s->outer,
                          .n = s->n,
                          .inner = s->inner,
                          .y = hft_tensor_data(y),
                          .dy = hft_tensor_data(gy),
                          .out = hft_tensor_data(g.dst),
                          .accumulate = g.accumulate};
    void (*k)(const hft_softmax_args *) = AG_KERNEL(ctx, softmax_bwd, x->dtype, node->op);
    if (k) k(&a);
    ag_grad_end(ctx, &g);
}

static hft_tensor *softmax_common(hft_ctx *ctx, const char *name, bool log, hft_tensor *x, int dim) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, name, 1, in) || !ag_check_float(ctx, name, x, "input")) return NULL;
    if (x->ndim == 0) { /* a scalar is a row of one */
        if (dim != 0 && dim != -1)
            return ag_fail(ctx, HFT_EINVAL, "%s: dim %d out of range for a scalar", name, dim);
        dim = 0;
    } else if (!ag_dim(ctx, name, x->ndim, &dim)) {
        return NULL;
    }
    void (*k)(const hft_softmax_args *) = AG_KERNEL(ctx, softmax_fwd, x->dtype, name);
    if (!k) return NULL;
    x = hft_contiguous(ctx, x);
    if (!x) return NULL;
    int64_t outer = 1, inner = 1, n = x->ndim ? x->shape[dim] : 1;
    for (int d = 0; d < dim; d++) outer *= x->shape[d];
    for (int d = dim + 1; d < x->ndim; d++) inner *= x->shape[d];
    hft_tensor *y = ag_new(ctx, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    hft_softmax_args a = {.log = log,
                          .outer = outer,
                          .n = n,
                          .inner = inner,
                          .x = hft_tensor_data(x),
                          .out = hft_tensor_data(y)};
    k(&a);
    in[0] = x;
    hft_node *node = ag_record(ctx, name, softmax_backward, y, 1, in, sizeof(softmax_saved));
    if (node) *(softmax_saved *)node->saved = (softmax_saved){log, outer, n, inner};
    return y;
}

hft_tensor *hft_softmax(hft_ctx *ctx, hft_tensor *x, int dim) {
    return softmax_common(ctx, "softmax", false, x, dim);
}

hft_tensor *hft_log_softmax(hft_ctx *ctx, hft_tensor *x, int dim) {
    return softmax_common(ctx, "log_softmax", true, x, dim);
}
