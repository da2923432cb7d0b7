/* Views: new shapes and strides over the same storage, with no copy and no tape node. A view's
 * gradient is its base's gradient seen through the same strides (backward.c). */
#include "autograd/internal.h"

#include <string.h>

static hft_tensor *begin_view(hft_ctx *ctx, const char *op, hft_tensor *x) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, op, 1, in)) return NULL;
    return ag_view_of(ctx, x);
}

/* torch's computeStride: strides for viewing x with a new shape without a copy, when its dims can be
 * grouped into runs that are contiguous among themselves. False when no such view exists. */
static bool view_strides(const hft_tensor *x, int ndim, const int64_t *shape, int64_t *stride) {
    int64_t numel = hft_tensor_numel(x);
    if (numel == 0 || hft_tensor_is_contiguous(x)) {
        int64_t s = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            stride[d] = s;
            s *= shape[d] > 0 ? shape[d] : 1;
        }
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base_stride = x->ndim ? x->stride[x->ndim - 1] : 1;
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = x->ndim - 1; d >= 0; d--) {
        tensor_numel *= x->shape[d];
        if (d == 0 || (x->shape[d - 1] != 1 && x->stride[d - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                stride[view_d] = view_numel * chunk_base_stride;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                chunk_base_stride = x->stride[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

hft_tensor *hft_reshape(hft_ctx *ctx, hft_tensor *x, int ndim, const int64_t *shape_in) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, "reshape", 1, in)) return NULL;
    if (ndim < 0 || ndim > HFT_MAX_DIMS)
        return ag_fail(ctx, HFT_EINVAL, "reshape: %d dims (at most %d)", ndim, HFT_MAX_DIMS);
    int64_t shape[HFT_MAX_DIMS];
    int infer = -1;
    int64_t known = 1;
    for (int d = 0; d < ndim; d++) {
        shape[d] = shape_in[d];
        if (shape[d] == -1) {
            if (infer >= 0) return ag_fail(ctx, HFT_EINVAL, "reshape: more than one -1 in the shape");
            infer = d;
        } else if (shape[d] < 0) {
            return ag_fail(ctx, HFT_EINVAL, "reshape: negative size %lld", (long long)shape[d]);
        } else {
            known *= shape[d];
        }
    }
    int64_t numel = hft_tensor_numel(x);
    if (infer >= 0) {
        if (known == 0 || numel % known != 0) {
            char b[128];
            return ag_fail(ctx, HFT_EINVAL, "reshape: cannot infer a dim for %s with %lld elements",
                           hft_tensor_describe(x, b, sizeof b), (long long)numel);
        }
        shape[infer] = numel / known;
        known *= shape[infer];
    }
    if (known != numel) {
        char b[128];
        return ag_fail(ctx, HFT_EINVAL, "reshape: %s has %lld elements, the new shape %lld",
                       hft_tensor_describe(x, b, sizeof b), (long long)numel, (long long)known);
    }
    int64_t stride[HFT_MAX_DIMS];
    hft_tensor *src = x;
    if (!view_strides(x, ndim, shape, stride)) {
        src = hft_contiguous(ctx, x);
        if (!src) return NULL;
        view_strides(src, ndim, shape, stride);
    }
    hft_tensor *t = ag_view_of(ctx, src);
    if (!t) return NULL;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) {
        t->shape[d] = shape[d];
        t->stride[d] = stride[d];
    }
    return t;
}

hft_tensor *hft_transpose(hft_ctx *ctx, hft_tensor *x, int d0, int d1) {
    hft_tensor *t = begin_view(ctx, "transpose", x);
    if (!t || !ag_dim(ctx, "transpose", x->ndim, &d0) || !ag_dim(ctx, "transpose", x->ndim, &d1)) return NULL;
    int64_t s = t->shape[d0];
    t->shape[d0] = t->shape[d1];
    t->shape[d1] = s;
    s = t->stride[d0];
    t->stride[d0] = t->stride[d1];
    t->stride[d1] = s;
    return t;
}

hft_tensor *hft_permute(hft_ctx *ctx, hft_tensor *x, const int *perm) {
    hft_tensor *t = begin_view(ctx, "permute", x);
    if (!t) return NULL;
    bool seen[HFT_MAX_DIMS] = {false};
    for (int d = 0; d < x->ndim; d++) {
        int p = perm[d];
        if (!ag_dim(ctx, "permute", x->ndim, &p)) return NULL;
        if (seen[p]) return ag_fail(ctx, HFT_EINVAL, "permute: dim %d appears twice", p);
        seen[p] = true;
        t->shape[d] = x->shape[p];
        t->stride[d] = x->stride[p];
    }
    return t;
}

hft_tensor *hft_narrow(hft_ctx *ctx, hft_tensor *x, int dim, int64_t start, int64_t length) {
    hft_tensor *t = begin_view(ctx, "narrow", x);
    if (!t || !ag_dim(ctx, "narrow", x->ndim, &dim)) return NULL;
    if (start < 0 || length < 0 || start + length > x->shape[dim])
        return ag_fail(ctx, HFT_EINVAL, "narrow: [%lld, %lld) is outside dim %d of size %lld",
                       (long long)start, (long long)(start + length), dim, (long long)x->shape[dim]);
    t->offset += start * x->stride[dim];
    t->shape[dim] = length;
    return t;
}

hft_tensor *hft_expand(hft_ctx *ctx, hft_tensor *x, int ndim, const int64_t *shape) {
    hft_tensor *t = begin_view(ctx, "expand", x);
    if (!t) return NULL;
    if (ndim < x->ndim || ndim > HFT_MAX_DIMS)
        return ag_fail(ctx, HFT_EINVAL, "expand: cannot expand %d dims to %d", x->ndim, ndim);
    int lead = ndim - x->ndim;
    for (int d = 0; d < ndim; d++) {
        int sd = d - lead;
        int64_t have = sd >= 0 ? x->shape[sd] : 1;
        int64_t want = shape[d] == -1 ? have : shape[d];
        if (sd < 0 && shape[d] == -1)
            return ag_fail(ctx, HFT_EINVAL, "expand: -1 in a new leading dim %d", d);
        if (have != want && have != 1)
            return ag_fail(ctx, HFT_EINVAL, "expand: dim %d of size %lld cannot become %lld", d,
                           (long long)have, (long long)want);
        t->shape[d] = want;
        t->stride[d] = (sd < 0 || have != want) ? 0 : x->stride[sd];
    }
    t->ndim = ndim;
    return t;
}

hft_tensor *hft_unsqueeze(hft_ctx *ctx, hft_tensor *x, int dim) {
    hft_tensor *t = begin_view(ctx, "unsqueeze", x);
    if (!t) return NULL;
    if (x->ndim >= HFT_MAX_DIMS) return ag_fail(ctx, HFT_EINVAL, "unsqueeze: already %d dims", x->ndim);
    if (!ag_dim(ctx, "unsqueeze", x->ndim + 1, &dim)) return NULL;
    for (int d = x->ndim; d > dim; d--) {
        t->shape[d] = x->shape[d - 1];
        t->stride[d] = x->stride[d - 1];
    }
    t->shape[dim] = 1;
    t->stride[dim] = dim < x->ndim ? x->shape[dim] * x->stride[dim] : 1;
    t->ndim = x->ndim + 1;
    return t;
}

hft_tensor *hft_squeeze(hft_ctx *ctx, hft_tensor *x, int dim) {
    hft_tensor *t = begin_view(ctx, "squeeze", x);
    if (!t || !ag_dim(ctx, "squeeze", x->ndim, &dim)) return NULL;
    if (x->shape[dim] != 1) return t;
    for (int d = dim; d < x->ndim - 1; d++) {
        t->shape[d] = x->shape[d + 1];
        t->stride[d] = x->stride[d + 1];
    }
    t->ndim = x->ndim - 1;
    return t;
}

bool hft_split(hft_ctx *ctx, hft_tensor *x, int dim, int n, const int64_t *sizes, hft_tensor **out) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, "split", 1, in) || !ag_dim(ctx, "split", x->ndim, &dim)) return false;
    if (n < 1) return ag_fail(ctx, HFT_EINVAL, "split: %d pieces", n), false;
    int64_t total = 0;
    for (int i = 0; i < n; i++) total += sizes ? sizes[i] : x->shape[dim] / n;
    if (total != x->shape[dim] || (!sizes && x->shape[dim] % n))
        return ag_fail(ctx, HFT_EINVAL, "split: pieces do not add up to dim %d of size %lld", dim,
                       (long long)x->shape[dim]),
               false;
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        int64_t len = sizes ? sizes[i] : x->shape[dim] / n;
        out[i] = hft_narrow(ctx, x, dim, start, len);
        if (!out[i]) return false;
        start += len;
    }
    return true;
}
