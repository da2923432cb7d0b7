/* rope: rotary position embedding as transformers' apply_rotary_pos_emb (rotate_half). The output is
 * contiguous; the gradient is the inverse rotation, written straight into x's gradient through its
 * strides (q and k are usually views of one packed projection). */
#include "autograd/internal.h"

#include <assert.h>

typedef struct rope_saved {
    double scaling;
    hft_tensor *positions, *inv_freq;
} rope_saved;

static void rope_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const rope_saved *s = node->saved;
    hft_tensor *x = node->in[0];
    assert(hft_tensor_is_contiguous(gy));
    void (*k)(const hft_rope_args *) = AG_KERNEL(ctx, rope, x->dtype, node->op);
    if (!k) return;
    ag_grad g;
    if (!ag_grad_begin(ctx, x, AG_STRIDED, &g)) return;
    hft_tensor *dst = g.dst, *tmp = NULL;
    if (dst->stride[3] != 1) { /* not reachable for the x the forward accepts; kept for safety */
        tmp = ag_pool_tensor(ctx, x->dtype, 4, x->shape);
        if (!tmp) {
            ag_grad_end(ctx, &g);
            return;
        }
        dst = tmp;
    }
    hft_rope_args a = {.batch = x->shape[0],
                       .seq = x->shape[1],
                       .heads = x->shape[2],
                       .dim = x->shape[3],
                       .x = hft_tensor_data(gy),
                       .x_stride_b = gy->stride[0],
                       .x_stride_t = gy->stride[1],
                       .x_stride_h = gy->stride[2],
                       .pos = hft_tensor_data(s->positions),
                       .inv_freq = hft_tensor_data(s->inv_freq),
                       .scaling = s->scaling,
                       .out = hft_tensor_data(dst),
                       .inverse = true,
                       .accumulate = tmp ? false : g.accumulate,
                       .out_stride_b = dst->stride[0],
                       .out_stride_t = dst->stride[1],
                       .out_stride_h = dst->stride[2]};
    k(&a);
    if (tmp) {
        ag_copy_into(ctx, g.dst, tmp, g.accumulate);
        ag_pool_tensor_release(ctx, tmp);
    }
    ag_grad_end(ctx, &g);
}

hft_tensor *hft_rope(hft_ctx *ctx, hft_tensor *x, hft_tensor *positions, hft_tensor *inv_freq,
                     double scaling) {
    hft_tensor *in[3] = {x, positions, inv_freq};
    if (!ag_check(ctx, "rope", 3, in) || !ag_check_float(ctx, "rope", x, "input")) return NULL;
    char bx[128], bp[128];
    if (x->ndim != 4)
        return ag_fail(ctx, HFT_EINVAL, "rope: input %s must be [batch, seq, heads, head_dim]",
                       hft_tensor_describe(x, bx, sizeof bx));
    int64_t B = x->shape[0], T = x->shape[1], D = x->shape[3];
    if (D % 2 != 0)
        return ag_fail(
            ctx, HFT_EINVAL,
            "rope: head_dim %lld of input %s is odd (expected an even size: rotate_half splits it in "
            "two halves)",
            (long long)D, hft_tensor_describe(x, bx, sizeof bx));
    if (positions->dtype != HFT_I64 || positions->ndim != 2 ||
        (positions->shape[0] != B && positions->shape[0] != 1) || positions->shape[1] != T)
        return ag_fail(ctx, HFT_EINVAL,
                       "rope: positions %s do not match input %s (expected i64[%lld, %lld] or i64[1, %lld])",
                       hft_tensor_describe(positions, bp, sizeof bp), hft_tensor_describe(x, bx, sizeof bx),
                       (long long)B, (long long)T, (long long)T);
    if (inv_freq->dtype != x->dtype || inv_freq->ndim != 1 || inv_freq->shape[0] != D / 2)
        return ag_fail(ctx, HFT_EINVAL, "rope: inv_freq %s does not match input %s (expected %s[%lld])",
                       hft_tensor_describe(inv_freq, bp, sizeof bp), hft_tensor_describe(x, bx, sizeof bx),
                       hft_dtype_name(x->dtype), (long long)(D / 2));
    void (*k)(const hft_rope_args *) = AG_KERNEL(ctx, rope, x->dtype, "rope");
    if (!k) return NULL;
    if (x->stride[3] != 1 && D > 1) x = hft_contiguous(ctx, x);
    if (positions->shape[0] != B) /* one row of positions for the whole batch, as HF's [1, T] */
        positions = hft_expand(ctx, positions, 2, (int64_t[]){B, T});
    positions = hft_contiguous(ctx, positions);
    inv_freq = hft_contiguous(ctx, inv_freq);
    if (!x || !positions || !inv_freq) return NULL;
    hft_tensor *y = ag_new(ctx, x->dtype, 4, x->shape);
    if (!y) return NULL;
    if (hft_tensor_numel(y) > 0) {
        hft_rope_args a = {.batch = B,
                           .seq = T,
                           .heads = x->shape[2],
                           .dim = D,
                           .x = hft_tensor_data(x),
                           .x_stride_b = x->stride[0],
                           .x_stride_t = x->stride[1],
                           .x_stride_h = x->stride[2],
                           .pos = hft_tensor_data(positions),
                           .inv_freq = hft_tensor_data(inv_freq),
                           .scaling = scaling,
                           .out = hft_tensor_data(y),
                           .out_stride_b = y->stride[0],
                           .out_stride_t = y->stride[1],
                           .out_stride_h = y->stride[2]};
        k(&a);
    }
    in[0] = x;
    hft_node *node = ag_record(ctx, "rope", rope_backward, y, 1, in, sizeof(rope_saved));
    if (node) *(rope_saved *)node->saved = (rope_saved){scaling, positions, inv_freq};
    return y;
}
