/* Activation checkpointing (see hft_checkpoint): forward without a tape, the output kept; backward
 * recomputes inside an arena scope with a tape of its own, backpropagates, and releases the scope. Values
 * that must outlive a scope (the output, the inputs' gradients) cross it in gradient-pool buffers, since
 * releasing the scope also releases the tensor headers made inside it. */
#include "autograd/internal.h"

#include <string.h>

typedef struct ckpt_saved {
    hft_checkpoint_fn fn;
    void *user;
} ckpt_saved;

/* A stack tensor over a raw contiguous buffer, for copying into and out of pool memory. */
typedef struct raw_tensor {
    hft_tensor t;
    hft_storage s;
} raw_tensor;

static void raw_view(raw_tensor *r, void *data, const hft_tensor *like) {
    memset(r, 0, sizeof *r);
    r->t.dtype = like->dtype;
    r->t.device = like->device;
    r->t.ndim = like->ndim;
    memcpy(r->t.shape, like->shape, sizeof r->t.shape);
    ag_set_contiguous_strides(&r->t);
    r->s.data = data;
    r->s.nbytes = hft_tensor_nbytes(like);
    r->s.kind = STORAGE_POOL;
    r->t.storage = &r->s;
}

/* Copies t (any layout) into a new pool buffer and returns it (NULL on failure, error recorded). */
static void *to_pool(hft_ctx *ctx, const hft_tensor *t) {
    void *buf = pool_alloc(ctx->grads, hft_tensor_nbytes(t));
    if (!buf) {
        ag_fail(ctx, HFT_ENOMEM, "checkpoint: out of memory for %zu bytes", hft_tensor_nbytes(t));
        return NULL;
    }
    raw_tensor r;
    raw_view(&r, buf, t);
    ag_copy_into(ctx, &r.t, t, false);
    return buf;
}

static void checkpoint_backward(hft_ctx *ctx, hft_node *node, hft_tensor *g) {
    const ckpt_saved *s = node->saved;
    int n = node->n_in;
    hft_node *outer_tape = ctx->tape;
    uint32_t outer_nodes = ctx->n_nodes;
    hft_arena_mark mark = hft_ctx_mark(ctx);
    ctx->tape = NULL;
    /* the inputs as leaves of the recomputation */
    hft_tensor *leaves[16];
    if (n > 16) {
        ag_fail(ctx, HFT_EINVAL, "checkpoint: at most 16 inputs");
        return;
    }
    for (int i = 0; i < n; i++) {
        leaves[i] = ag_header(ctx);
        if (!leaves[i]) return;
        hft_tensor *x = node->in[i];
        *leaves[i] = *x;
        leaves[i]->ctx = ctx;
        leaves[i]->gen = ctx->gen;
        leaves[i]->base = NULL;
        leaves[i]->grad = NULL;
        leaves[i]->grad_fn = NULL;
        leaves[i]->flags = 0;
    }
    bool mode = hft_set_grad_enabled(ctx, true);
    hft_tensor *y = s->fn(ctx, leaves, s->user);
    hft_set_grad_enabled(ctx, mode);
    if (y && ctx->status == HFT_OK && y->requires_grad) ag_run_backward(ctx, y, g);
    void *grads[16] = {NULL};
    for (int i = 0; i < n && ctx->status == HFT_OK; i++) {
        const hft_tensor *lg = hft_tensor_grad(leaves[i]);
        if (node->in[i]->requires_grad && lg) grads[i] = to_pool(ctx, lg);
    }
    ctx->tape = outer_tape;
    ctx->n_nodes = outer_nodes;
    hft_ctx_release(ctx, mark);
    for (int i = 0; i < n; i++) {
        if (!grads[i]) continue;
        raw_tensor r;
        raw_view(&r, grads[i], node->in[i]);
        ag_grad gs;
        if (ctx->status == HFT_OK && ag_grad_begin(ctx, node->in[i], AG_STRIDED, &gs)) {
            ag_copy_into(ctx, gs.dst, &r.t, gs.accumulate);
            ag_grad_end(ctx, &gs);
        }
        pool_release(ctx->grads, grads[i]);
    }
}

hft_tensor *hft_checkpoint(hft_ctx *ctx, hft_checkpoint_fn fn, void *user, int n_in,
                           hft_tensor *const *inputs) {
    if (!ag_check(ctx, "checkpoint", n_in, inputs)) return NULL;
    if (!ctx->grad_enabled) return fn(ctx, inputs, user);
    if (n_in > 16) return ag_fail(ctx, HFT_EINVAL, "checkpoint: at most 16 inputs, got %d", n_in);
    hft_arena_mark mark = hft_ctx_mark(ctx);
    hft_set_grad_enabled(ctx, false);
    bool outer_collecting = ctx->collecting; /* the parameters fn reads, for hft_ctx_on_param_ready */
    int first_collected = outer_collecting ? ctx->n_collected : 0;
    ctx->collecting = true;
    ctx->n_collected = first_collected;
    hft_tensor *y = fn(ctx, inputs, user);
    ctx->collecting = outer_collecting;
    hft_set_grad_enabled(ctx, true);
    if (!y) return NULL;
    hft_tensor like = *y; /* y's header is released with the scope */
    void *buf = to_pool(ctx, y);
    hft_ctx_release(ctx, mark);
    if (!buf) return NULL;
    hft_tensor *out = ag_new(ctx, like.dtype, like.ndim, like.shape);
    if (out && !ctx->kernels->dev) {
        memcpy(hft_tensor_data(out), buf, hft_tensor_nbytes(out));
    } else if (out) { /* device memory: the copy kernel */
        raw_tensor r;
        raw_view(&r, buf, out);
        ag_copy_into(ctx, out, &r.t, false);
    }
    pool_release(ctx->grads, buf);
    if (!out) return NULL;
    hft_node *node =
        ag_record_node(ctx, "checkpoint", checkpoint_backward, out, n_in, inputs, sizeof(ckpt_saved));
    if (node) {
        *(ckpt_saved *)node->saved = (ckpt_saved){fn, user};
        int n_params = ctx->n_collected - first_collected;
        node->params = n_params ? ag_host_alloc(ctx, (size_t)n_params * sizeof *node->params) : NULL;
        if (n_params && !node->params) return NULL;
        if (n_params)
            memcpy(node->params, ctx->collected + first_collected, (size_t)n_params * sizeof *node->params);
        node->n_params = n_params;
    }
    if (!outer_collecting) ctx->n_collected = 0;
    return out;
}
