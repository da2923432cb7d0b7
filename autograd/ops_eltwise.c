/* Element-wise ops: broadcasting arithmetic, scaling and the activations. Forward is one map kernel;
 * backward is one map per input, written straight into the gradient (or reduced into it when the input
 * was broadcast). */
#include "autograd/internal.h"

/* Runs the map `op` over out's shape into `dst`, with operands broadcast to that shape. */
static void run_map(hft_ctx *ctx, hft_map_op op, hft_tensor *dst, bool accumulate, double alpha, int n_in,
                    hft_tensor *const *ops, const hft_tensor *shape_of) {
    hft_map_args m = {.op = op, .n_in = n_in, .alpha = alpha, .accumulate = accumulate};
    m.out = ag_kview_broadcast(dst, shape_of->ndim, shape_of->shape);
    for (int i = 0; i < n_in; i++) m.in[i] = ag_kview_broadcast(ops[i], shape_of->ndim, shape_of->shape);
    if (m.out.ndim == 0) {
        m.out.ndim = 1, m.out.shape[0] = 1, m.out.stride[0] = 1;
        for (int i = 0; i < n_in; i++) m.in[i].ndim = 1, m.in[i].shape[0] = 1, m.in[i].stride[0] = 1;
    }
    if (hft_tensor_numel(shape_of) == 0) return;
    ctx->kernels->map[dst->dtype](&m);
}

/* The gradient of `input` from the map `op` over the operands, each of out's shape or broadcast to it. */
static void grad_map(hft_ctx *ctx, hft_tensor *input, const hft_tensor *out, hft_map_op op, double alpha,
                     int n_in, hft_tensor *const *ops) {
    if (!input->requires_grad) return;
    if (hft_tensor_same_shape(input, out)) {
        ag_grad g;
        if (!ag_grad_begin(ctx, input, AG_STRIDED, &g)) return;
        run_map(ctx, op, g.dst, g.accumulate, alpha, n_in, ops, out);
        ag_grad_end(ctx, &g);
        return;
    }
    hft_tensor *tmp = ag_pool_tensor(ctx, out->dtype, out->ndim, out->shape);
    if (!tmp) return;
    run_map(ctx, op, tmp, false, alpha, n_in, ops, out);
    ag_grad_from_broadcast(ctx, input, tmp);
    ag_pool_tensor_release(ctx, tmp);
}

/* ---------------------------------------------------------------- binary */

static void binary_backward(hft_ctx *ctx, hft_node *n, hft_tensor *g) {
    hft_tensor *a = n->in[0], *b = n->in[1], *y = n->out;
    hft_map_op op = *(hft_map_op *)n->saved;
    switch (op) {
    case HFT_MAP_ADD:
        grad_map(ctx, a, y, HFT_MAP_COPY, 1.0, 1, (hft_tensor *[]){g});
        grad_map(ctx, b, y, HFT_MAP_COPY, 1.0, 1, (hft_tensor *[]){g});
        break;
    case HFT_MAP_SUB:
        grad_map(ctx, a, y, HFT_MAP_COPY, 1.0, 1, (hft_tensor *[]){g});
        grad_map(ctx, b, y, HFT_MAP_NEG, 1.0, 1, (hft_tensor *[]){g});
        break;
    case HFT_MAP_MUL:
        grad_map(ctx, a, y, HFT_MAP_MUL, 1.0, 2, (hft_tensor *[]){g, b});
        grad_map(ctx, b, y, HFT_MAP_MUL, 1.0, 2, (hft_tensor *[]){g, a});
        break;
    case HFT_MAP_DIV:
        grad_map(ctx, a, y, HFT_MAP_DIV, 1.0, 2, (hft_tensor *[]){g, b});
        grad_map(ctx, b, y, HFT_MAP_DIV_BWD_B, 1.0, 3, (hft_tensor *[]){g, y, b});
        break;
    default:
        break;
    }
}

static hft_tensor *binary(hft_ctx *ctx, const char *name, hft_map_op op, hft_tensor *a, hft_tensor *b) {
    hft_tensor *in[2] = {a, b};
    if (!ag_check(ctx, name, 2, in) || !ag_check_float(ctx, name, a, "input") ||
        !ag_check_same_dtype(ctx, name, a, b))
        return NULL;
    int nd;
    int64_t shape[HFT_MAX_DIMS];
    if (!ag_broadcast_shape(ctx, name, a, b, &nd, shape)) return NULL;
    hft_tensor *y = ag_new(ctx, a->dtype, nd, shape);
    if (!y) return NULL;
    run_map(ctx, op, y, false, 1.0, 2, in, y);
    hft_node *n = ag_record(ctx, name, binary_backward, y, 2, in, sizeof(hft_map_op));
    if (n) *(hft_map_op *)n->saved = op;
    return y;
}

hft_tensor *hft_add(hft_ctx *ctx, hft_tensor *a, hft_tensor *b) {
    return binary(ctx, "add", HFT_MAP_ADD, a, b);
}
hft_tensor *hft_sub(hft_ctx *ctx, hft_tensor *a, hft_tensor *b) {
    return binary(ctx, "sub", HFT_MAP_SUB, a, b);
}
hft_tensor *hft_mul(hft_ctx *ctx, hft_tensor *a, hft_tensor *b) {
    return binary(ctx, "mul", HFT_MAP_MUL, a, b);
}
hft_tensor *hft_div(hft_ctx *ctx, hft_tensor *a, hft_tensor *b) {
    return binary(ctx, "div", HFT_MAP_DIV, a, b);
}

/* ---------------------------------------------------------------- unary */

typedef struct unary_saved {
    hft_map_op backward_op;
    bool uses_output; /* the backward map reads y rather than x */
    double alpha;
} unary_saved;

static void unary_backward(hft_ctx *ctx, hft_node *n, hft_tensor *g) {
    const unary_saved *s = n->saved;
    hft_tensor *x = n->in[0];
    if (s->backward_op == HFT_MAP_SCALE || s->backward_op == HFT_MAP_NEG)
        grad_map(ctx, x, n->out, s->backward_op, s->alpha, 1, (hft_tensor *[]){g});
    else
        grad_map(ctx, x, n->out, s->backward_op, s->alpha, 2,
                 (hft_tensor *[]){g, s->uses_output ? n->out : x});
}

static hft_tensor *unary(hft_ctx *ctx, const char *name, hft_map_op op, hft_map_op backward_op,
                         bool uses_output, double alpha, hft_tensor *x) {
    hft_tensor *in[1] = {x};
    if (!ag_check(ctx, name, 1, in) || !ag_check_float(ctx, name, x, "input")) return NULL;
    hft_tensor *y = ag_new(ctx, x->dtype, x->ndim, x->shape);
    if (!y) return NULL;
    run_map(ctx, op, y, false, alpha, 1, in, y);
    hft_node *n = ag_record(ctx, name, unary_backward, y, 1, in, sizeof(unary_saved));
    if (n) *(unary_saved *)n->saved = (unary_saved){backward_op, uses_output, alpha};
    return y;
}

hft_tensor *hft_scale(hft_ctx *ctx, hft_tensor *x, double alpha) {
    return unary(ctx, "scale", HFT_MAP_SCALE, HFT_MAP_SCALE, false, alpha, x);
}
hft_tensor *hft_neg(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "neg", HFT_MAP_NEG, HFT_MAP_NEG, false, 1, x);
}
hft_tensor *hft_exp(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "exp", HFT_MAP_EXP, HFT_MAP_EXP_BWD_Y, true, 1, x);
}
hft_tensor *hft_log(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "log", HFT_MAP_LOG, HFT_MAP_LOG_BWD_X, false, 1, x);
}
hft_tensor *hft_sqrt(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "sqrt", HFT_MAP_SQRT, HFT_MAP_SQRT_BWD_Y, true, 1, x);
}
hft_tensor *hft_pow(hft_ctx *ctx, hft_tensor *x, double exponent) {
    return unary(ctx, "pow", HFT_MAP_POW, HFT_MAP_POW_BWD_X, false, exponent, x);
}
hft_tensor *hft_relu(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "relu", HFT_MAP_RELU, HFT_MAP_RELU_BWD_X, false, 1, x);
}
hft_tensor *hft_gelu(hft_ctx *ctx, hft_tensor *x, hft_gelu_approx approx) {
    if (approx == HFT_GELU_TANH)
        return unary(ctx, "gelu_tanh", HFT_MAP_GELU_TANH, HFT_MAP_GELU_TANH_BWD_X, false, 1, x);
    return unary(ctx, "gelu", HFT_MAP_GELU_ERF, HFT_MAP_GELU_ERF_BWD_X, false, 1, x);
}
hft_tensor *hft_silu(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "silu", HFT_MAP_SILU, HFT_MAP_SILU_BWD_X, false, 1, x);
}
hft_tensor *hft_tanh(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "tanh", HFT_MAP_TANH, HFT_MAP_TANH_BWD_Y, true, 1, x);
}
hft_tensor *hft_sigmoid(hft_ctx *ctx, hft_tensor *x) {
    return unary(ctx, "sigmoid", HFT_MAP_SIGMOID, HFT_MAP_SIGMOID_BWD_Y, true, 1, x);
}
