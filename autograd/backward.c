/* The tape and the backward pass. Each op that needs a gradient appends one node (its backward
 * function, inputs, output and what it saved). Backward walks the nodes once in reverse; a node runs
 * when its output received a gradient, writes its inputs' gradients, and its own output gradient goes
 * back to the pool at once. Views record no node: their gradient is written straight into their
 * base's gradient through the view's strides. */
#include "autograd/internal.h"

#include <string.h>

bool ag_any_requires_grad(int n, hft_tensor *const *in) {
    for (int i = 0; i < n; i++)
        if (in[i] && in[i]->requires_grad) return true;
    return false;
}

hft_node *ag_record(hft_ctx *ctx, const char *op, ag_backward_fn backward, hft_tensor *out, int n_in,
                    hft_tensor *const *in, size_t saved_bytes) {
    if (!ctx->grad_enabled || !ag_any_requires_grad(n_in, in)) return NULL;
    return ag_record_node(ctx, op, backward, out, n_in, in, saved_bytes);
}

hft_node *ag_record_node(hft_ctx *ctx, const char *op, ag_backward_fn backward, hft_tensor *out, int n_in,
                         hft_tensor *const *in, size_t saved_bytes) {
    /* host memory even on a device: the host walks the tape and backward functions read `saved` */
    hft_node *node = ag_host_alloc(ctx, sizeof *node + (size_t)n_in * sizeof(hft_tensor *));
    if (!node) return NULL;
    node->op = op;
    node->backward = backward;
    node->out = out;
    node->n_in = n_in;
    node->in = (hft_tensor **)(node + 1);
    for (int i = 0; i < n_in; i++) node->in[i] = in[i];
    node->saved = NULL;
    node->params = NULL;
    node->n_params = 0;
    if (saved_bytes) {
        node->saved = ag_host_alloc(ctx, saved_bytes);
        if (!node->saved) return NULL;
        memset(node->saved, 0, saved_bytes);
    }
    node->prev = ctx->tape;
    ctx->tape = node;
    ctx->n_nodes++;
    out->requires_grad = true;
    out->grad_fn = node;
    return node;
}

static hft_tensor *base_of(hft_tensor *t) {
    return t->base ? t->base : t;
}

static bool has_zero_stride(const hft_tensor *t) {
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 1 && t->stride[d] == 0) return true;
    return false;
}

/* A base's gradient buffer, created on first use: leaves keep theirs (heap or arena, as the leaf);
 * activations borrow one from the pool until their node has run. */
static bool ensure_grad_buffer(hft_ctx *ctx, hft_tensor *base) {
    if (base->grad) return true;
    hft_tensor *g;
    if (base->grad_fn) {
        g = ag_pool_tensor(ctx, base->dtype, base->ndim, base->shape);
    } else if (base->flags & HFT_TENSOR_HEAP) {
        g = hft_tensor_new_on(base->device, base->dtype, base->ndim, base->shape);
        if (!g) ag_fail(ctx, HFT_ENOMEM, "backward: out of memory for a leaf gradient");
    } else {
        g = ag_new(ctx, base->dtype, base->ndim, base->shape);
    }
    if (!g) return false;
    base->grad = g;
    base->flags &= ~(uint32_t)HFT_TENSOR_GRAD_SET;
    return true;
}

bool ag_grad_begin(hft_ctx *ctx, hft_tensor *input, int layout, ag_grad *g) {
    memset(g, 0, sizeof *g);
    if (!input || !input->requires_grad || ctx->status != HFT_OK) return false;
    hft_tensor *base = base_of(input);
    if (!ensure_grad_buffer(ctx, base)) return false;
    hft_tensor *target = base->grad;
    bool covers_base = true;
    if (input != base) {
        target = ag_header(ctx);
        if (!target) return false;
        *target = *base->grad;
        target->ctx = ctx;
        target->gen = ctx->gen;
        target->flags = 0;
        target->ndim = input->ndim;
        memcpy(target->shape, input->shape, sizeof target->shape);
        memcpy(target->stride, input->stride, sizeof target->stride);
        target->offset = base->grad->offset + (input->offset - base->offset);
        covers_base = hft_tensor_numel(input) == hft_tensor_numel(base) && !has_zero_stride(input);
    }
    if (base->flags & HFT_TENSOR_GRAD_SET) {
        g->target_accumulate = true;
    } else {
        if (covers_base) {
            g->target_accumulate = false;
        } else {
            ag_fill(ctx, base->grad, 0.0);
            g->target_accumulate = true;
        }
        base->flags |= HFT_TENSOR_GRAD_SET;
    }
    g->target = target;
    bool direct = !has_zero_stride(target) && (layout == AG_STRIDED || hft_tensor_is_contiguous(target));
    if (direct) {
        g->dst = target;
        g->accumulate = g->target_accumulate;
    } else {
        g->dst = ag_pool_tensor(ctx, input->dtype, input->ndim, input->shape);
        if (!g->dst) return false;
        g->accumulate = false;
        g->temp = true;
    }
    return true;
}

void ag_grad_end(hft_ctx *ctx, ag_grad *g) {
    if (!g->temp) return;
    if (ctx->status == HFT_OK) {
        hft_tensor *t = g->target;
        if (has_zero_stride(t)) {
            /* an expanded view: sum the temporary over the broadcast dims into the compact gradient */
            hft_tensor compact = *t;
            for (int d = 0; d < t->ndim; d++)
                if (t->shape[d] > 1 && t->stride[d] == 0) compact.shape[d] = 1;
            ag_reduce_into(ctx, &compact, g->dst, 1.0, g->target_accumulate);
        } else {
            ag_copy_into(ctx, t, g->dst, g->target_accumulate);
        }
    }
    ag_pool_tensor_release(ctx, g->dst);
    g->dst = NULL;
}

hft_status hft_backward(hft_ctx *ctx, hft_tensor *root, const hft_tensor *grad) {
    if (ctx->status != HFT_OK) return ctx->status;
    hft_tensor *inputs[1] = {root};
    if (!ag_check(ctx, "backward", 1, inputs)) return ctx->status;
    if (!root->requires_grad) {
        ag_fail(ctx, HFT_ESTATE,
                "backward: the tensor does not require grad (none of the inputs that made it requires grad, "
                "or grad mode was off)");
        return ctx->status;
    }
    if (!grad && hft_tensor_numel(root) != 1) {
        char b[128];
        ag_fail(ctx, HFT_EINVAL, "backward: a non-scalar root (%s) needs an explicit gradient",
                hft_tensor_describe(root, b, sizeof b));
        return ctx->status;
    }
    if (grad && (!hft_tensor_same_shape(grad, root) || grad->dtype != root->dtype)) {
        char b1[128], b2[128];
        ag_fail(ctx, HFT_EINVAL, "backward: gradient %s does not match the root %s",
                hft_tensor_describe(grad, b1, sizeof b1), hft_tensor_describe(root, b2, sizeof b2));
        return ctx->status;
    }
    ag_run_backward(ctx, root, grad);
    return ctx->status;
}

static bool is_trainable_param(const hft_tensor *t) {
    return t && (t->flags & HFT_TENSOR_PARAM) && t->requires_grad;
}

/* Sets each trainable parameter's pending_reads to the number of reads by the nodes from `first` back. */
static void count_param_reads(hft_node *first) {
    for (int pass = 0; pass < 2; pass++)
        for (hft_node *node = first; node; node = node->prev) {
            for (int i = 0; i < node->n_in + node->n_params; i++) {
                hft_tensor *t = i < node->n_in ? node->in[i] : node->params[i - node->n_in];
                hft_tensor *p = t ? base_of(t) : NULL;
                if (is_trainable_param(p)) p->pending_reads = pass ? p->pending_reads + 1 : 0;
            }
        }
}

/* After a node has run (or been passed over): parameters it was the last reader of are final. */
static void release_param_reads(hft_ctx *ctx, hft_node *node) {
    for (int i = 0; i < node->n_in + node->n_params; i++) {
        hft_tensor *t = i < node->n_in ? node->in[i] : node->params[i - node->n_in];
        hft_tensor *p = t ? base_of(t) : NULL;
        if (is_trainable_param(p) && --p->pending_reads == 0) ctx->param_ready(p, ctx->param_ready_user);
    }
}

void ag_run_backward(hft_ctx *ctx, hft_tensor *root, const hft_tensor *grad) {
    bool notify = ctx->param_ready && ctx->backward_depth == 0;
    if (notify) count_param_reads(base_of(root)->grad_fn);
    ctx->backward_depth++;
    ag_grad seed;
    if (ag_grad_begin(ctx, root, AG_STRIDED, &seed)) {
        if (grad) {
            ag_copy_into(ctx, seed.dst, grad, seed.accumulate);
        } else if (!ctx->kernels->dev) {
            double one = 1.0;
            hft_tensor *ones = hft_from_data(ctx, HFT_F64, 0, NULL, &one);
            if (ones) ag_copy_into(ctx, seed.dst, ones, seed.accumulate);
        } else { /* no f64 on a device: a one in the root's dtype */
            hft_tensor *ones = hft_full(ctx, root->dtype, 0, NULL, 1.0);
            if (ones) ag_copy_into(ctx, seed.dst, ones, seed.accumulate);
        }
        ag_grad_end(ctx, &seed);
    }
    for (hft_node *node = base_of(root)->grad_fn; node && ctx->status == HFT_OK; node = node->prev) {
        hft_tensor *out = node->out;
        if (out->grad) {
            node->backward(ctx, node, out->grad);
            if (!(out->flags & HFT_TENSOR_RETAIN_GRAD)) {
                ag_pool_tensor_release(ctx, out->grad);
                out->grad = NULL;
                out->flags &= ~(uint32_t)HFT_TENSOR_GRAD_SET;
            }
        }
        if (notify && ctx->status == HFT_OK) release_param_reads(ctx, node);
    }
    ctx->backward_depth--;
}
