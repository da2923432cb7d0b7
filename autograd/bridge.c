/* Bridges from tensors to the kernel table: broadcasting shapes, kernel views, and the fill, copy and
 * reduce calls that several ops share. */
#include "autograd/internal.h"

#include <string.h>

hft_kview ag_kview_broadcast(const hft_tensor *t, int ndim, const int64_t *shape) {
    hft_kview v;
    v.data = hft_tensor_data(t);
    v.ndim = ndim;
    int lead = ndim - t->ndim;
    for (int d = 0; d < ndim; d++) {
        v.shape[d] = shape[d];
        int sd = d - lead;
        if (sd < 0 || t->shape[sd] == 1)
            v.stride[d] = 0;
        else
            v.stride[d] = t->stride[sd];
    }
    return v;
}

bool ag_broadcast_shape(hft_ctx *ctx, const char *op, const hft_tensor *a, const hft_tensor *b, int *ndim,
                        int64_t *shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int d = 0; d < nd; d++) {
        int da = d - (nd - a->ndim), db = d - (nd - b->ndim);
        int64_t sa = da >= 0 ? a->shape[da] : 1, sb = db >= 0 ? b->shape[db] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char ba[128], bb[128];
            ag_fail(ctx, HFT_EINVAL, "%s: shapes %s and %s do not broadcast (dim %d: %lld vs %lld)", op,
                    hft_tensor_describe(a, ba, sizeof ba), hft_tensor_describe(b, bb, sizeof bb), d,
                    (long long)sa, (long long)sb);
            return false;
        }
        shape[d] = sa == 1 ? sb : sa;
    }
    *ndim = nd;
    return true;
}

static hft_kview scalar_safe(hft_kview v) {
    if (v.ndim == 0) {
        v.ndim = 1;
        v.shape[0] = 1;
        v.stride[0] = 1;
    }
    return v;
}

void ag_fill(hft_ctx *ctx, hft_tensor *t, double value) {
    if (hft_tensor_numel(t) == 0) return;
    hft_kview v = scalar_safe(ag_kview(t));
    if (ctx->kernels->fill[t->dtype]) {
        ctx->kernels->fill[t->dtype](&v, value);
    } else if (ctx->kernels->dev) { /* the fallbacks below write host memory */
        ag_fail(ctx, HFT_EUNSUPPORTED, "fill: no %s kernel for %s on CUDA", ctx->kernels->name,
                hft_dtype_name(t->dtype));
    } else if (value == 0.0 && hft_tensor_is_contiguous(t)) {
        memset(hft_tensor_data(t), 0, hft_tensor_nbytes(t));
    } else {
        /* integer and half dtypes: fill one f64 element and broadcast-copy it */
        double one = value;
        hft_copy_args a = {.dst_dtype = t->dtype, .src_dtype = HFT_F64, .dst = v, .src = v};
        a.src.data = &one;
        for (int d = 0; d < a.src.ndim; d++) a.src.stride[d] = 0;
        ctx->kernels->copy(&a);
    }
}

void ag_copy_into(hft_ctx *ctx, hft_tensor *dst, const hft_tensor *src, bool accumulate) {
    if (hft_tensor_numel(dst) == 0) return;
    hft_copy_args a = {.dst_dtype = dst->dtype, .src_dtype = src->dtype, .accumulate = accumulate};
    a.dst = scalar_safe(ag_kview(dst));
    a.src = scalar_safe(ag_kview_broadcast(src, dst->ndim, dst->shape));
    ctx->kernels->copy(&a);
}

void ag_reduce_into(hft_ctx *ctx, hft_tensor *dst, const hft_tensor *src, double alpha, bool accumulate) {
    hft_reduce_args r = {.alpha = alpha, .accumulate = accumulate};
    r.in = scalar_safe(ag_kview(src));
    /* dst viewed with src's ndim: leading dims of extent 1 */
    r.out.data = hft_tensor_data(dst);
    r.out.ndim = r.in.ndim;
    int lead = src->ndim - dst->ndim;
    for (int d = 0; d < r.in.ndim; d++) {
        int dd = d - lead;
        r.out.shape[d] = dd >= 0 ? dst->shape[dd] : 1;
        r.out.stride[d] = dd >= 0 ? dst->stride[dd] : 0;
    }
    if (hft_tensor_numel(src) == 0) {
        if (!accumulate) ag_fill(ctx, dst, 0.0);
        return;
    }
    ctx->kernels->reduce[src->dtype](&r);
}

void ag_grad_from_broadcast(hft_ctx *ctx, hft_tensor *input, hft_tensor *g) {
    ag_grad gs;
    if (!ag_grad_begin(ctx, input, AG_STRIDED, &gs)) return;
    ag_reduce_into(ctx, gs.dst, g, 1.0, gs.accumulate);
    ag_grad_end(ctx, &gs);
}
