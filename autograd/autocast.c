/* Autocast: mixed precision as torch.autocast does it, the policy in one table. Ops marked LOW take their
 * inputs rounded to the autocast dtype (bf16 or f16) and accumulate in f32: activations are rounded by a
 * differentiable identity (hft_autocast_round), weights come from a cache of low-precision copies made once
 * per optimizer step (a parameter's version changes when the optimizer updates it) and reused by every
 * micro-batch. Backward GEMMs of LOW ops take the incoming gradient rounded too. Ops marked F32 run in f32
 * on f32 activations, as torch's autocast runs them (its fp32 list). Master weights, gradients and optimizer
 * state stay f32. Where torch's LOW ops return bf16 tensors, hft's return f32 ones holding the f32
 * accumulation: one rounding fewer, within the dtype's epsilon of torch. */
#include "autograd/internal.h"

#include <stdlib.h>
#include <string.h>

static const hft_autocast_rule policy[] = {
    {"linear", true, "GEMM: low-precision inputs, f32 accumulation"},
    {"lora_linear", true, "GEMMs of the base and the adapter: low-precision inputs, f32 accumulation"},
    {"matmul", true, "GEMM: low-precision inputs, f32 accumulation"},
    {"attention", true, "q, k, v in low precision; softmax and accumulation in f32"},
    {"linear_cross_entropy", true, "the classifier's GEMM in low precision; log-softmax and the loss in f32"},
    {"layer_norm", false, "statistics and output in f32"},
    {"rms_norm", false, "statistics and output in f32"},
    {"softmax", false, "f32"},
    {"log_softmax", false, "f32"},
    {"cross_entropy", false, "f32"},
    {"mse", false, "f32"},
    {"sum", false, "reductions in f32"},
    {"mean", false, "reductions in f32"},
    {"embedding", false, "f32 rows (the table is a weight, gathered, not multiplied)"},
    {"elementwise", false, "gelu, silu, add, mul ... on f32 activations"},
};

int hft_autocast_rule_count(void) {
    return (int)(sizeof policy / sizeof policy[0]);
}

const hft_autocast_rule *hft_autocast_rule_get(int i) {
    return i >= 0 && i < hft_autocast_rule_count() ? &policy[i] : NULL;
}

hft_status hft_set_autocast(hft_ctx *ctx, hft_dtype dtype) {
    if (dtype != HFT_F32 && dtype != HFT_BF16 && dtype != HFT_F16)
        return hft_error(HFT_EINVAL, "autocast: %s; expected float32 (off), bfloat16 or float16",
                         hft_dtype_name(dtype));
    ctx->autocast = dtype;
    return HFT_OK;
}

hft_dtype hft_autocast_dtype(const hft_ctx *ctx) {
    return ctx->autocast;
}

hft_dtype ag_autocast_low(hft_ctx *ctx, const char *op) {
    if (ctx->autocast == HFT_F32) return HFT_F32;
    for (int i = 0; i < hft_autocast_rule_count(); i++)
        if (strcmp(policy[i].op, op) == 0) return policy[i].low ? ctx->autocast : HFT_F32;
    return HFT_F32;
}

/* ---------------------------------------------------------------- rounding activations */

static void round_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    ag_grad g;
    if (ag_grad_begin(ctx, node->in[0], AG_STRIDED, &g)) {
        ag_copy_into(ctx, g.dst, gy, g.accumulate);
        ag_grad_end(ctx, &g);
    }
}

void ag_round_into(hft_ctx *ctx, hft_tensor *dst, const hft_tensor *src, hft_dtype low) {
    if (dst->dtype == HFT_F32 && src->dtype == HFT_F32 && hft_tensor_is_contiguous(dst) &&
        hft_tensor_is_contiguous(src) && hft_tensor_same_shape(dst, src) && ctx->kernels->round_to) {
        ctx->kernels->round_to(low, hft_tensor_data(dst), hft_tensor_data(src), hft_tensor_numel(src));
        return;
    }
    hft_tensor *tmp = ag_pool_tensor(ctx, low, src->ndim, src->shape);
    if (!tmp) return;
    ag_copy_into(ctx, tmp, src, false);
    ag_copy_into(ctx, dst, tmp, false);
    ag_pool_tensor_release(ctx, tmp);
}

hft_tensor *hft_autocast_round(hft_ctx *ctx, hft_tensor *x, hft_dtype low) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, "autocast", 1, in)) return NULL;
    if (low == HFT_F32 || x->dtype != HFT_F32) return x;
    hft_tensor *y = ag_new(ctx, HFT_F32, x->ndim, x->shape);
    if (!y) return NULL;
    ag_round_into(ctx, y, x, low);
    ag_record(ctx, "autocast", round_backward, y, 1, in, 0);
    return y;
}

/* ---------------------------------------------------------------- the weight cache */

struct ag_weight_cache {
    const hft_tensor *param;
    uint32_t version;
    hft_dtype dtype;
    hft_tensor *low; /* heap tensor of dtype */
};

/* Where the CPU has no bf16 dot product, the cache holds the rounded values widened back to f32, so the
 * GEMMs that use them are plain sgemm (widening at every use cost the bf16 step 25%); the cache then takes
 * an f32 copy's memory instead of half of one. */
static hft_dtype cache_dtype(const hft_ctx *ctx, hft_dtype low) {
    if (ctx->kernels->dev) return low; /* a GPU's f32 GEMM takes bf16/f16 operands natively */
    return low == HFT_BF16 && hft_cpu_has_avx512_bf16() ? HFT_BF16 : HFT_F32;
}

const void *ag_autocast_weight(hft_ctx *ctx, hft_tensor *view, hft_dtype low, hft_dtype *type) {
    *type = low;
    if (view->dtype == low) return hft_tensor_data(view); /* held in low precision already (a frozen base) */
    hft_tensor *w = view->base ? view->base : view; /* a view (GPT-2's transposed Conv1D): its base's copy */
    if (!(w->flags & HFT_TENSOR_PARAM) || !hft_tensor_is_contiguous(w)) return NULL;
    ag_weight_cache *c = NULL;
    for (int i = 0; i < ctx->n_cached; i++)
        if (ctx->cache[i].param == w && ctx->cache[i].dtype == low) c = &ctx->cache[i];
    if (!c) {
        if (ctx->n_cached == ctx->cap_cached) {
            int cap = ctx->cap_cached ? 2 * ctx->cap_cached : 64;
            ag_weight_cache *grown = realloc(ctx->cache, (size_t)cap * sizeof *grown);
            if (!grown) return ag_fail(ctx, HFT_ENOMEM, "autocast: out of memory"), NULL;
            ctx->cache = grown;
            ctx->cap_cached = cap;
            ctx->heap_allocations++;
        }
        c = &ctx->cache[ctx->n_cached];
        c->low = hft_tensor_new_on(ctx->device, cache_dtype(ctx, low), w->ndim, w->shape);
        if (!c->low)
            return ag_fail(ctx, HFT_ENOMEM, "autocast: out of memory for a copy of %s", w->name), NULL;
        c->param = w;
        c->dtype = low;
        c->version = w->version + 1; /* stale */
        ctx->n_cached++;
        ctx->heap_allocations++;
    }
    if (c->version != w->version) { /* updated by the optimizer since: convert once for this step */
        if (c->low->dtype == low)
            ag_copy_into(ctx, c->low, w, false);
        else
            ag_round_into(ctx, c->low, w, low);
        c->version = w->version;
    }
    *type = c->low->dtype;
    return (const char *)hft_tensor_data(c->low) + (size_t)(view->offset - w->offset) * hft_dtype_size(*type);
}

void ag_autocast_free(hft_ctx *ctx) {
    for (int i = 0; i < ctx->n_cached; i++) hft_tensor_free(ctx->cache[i].low);
    free(ctx->cache);
    ctx->cache = NULL;
    ctx->n_cached = ctx->cap_cached = 0;
}
