/* matmul and linear: GEMMs through the kernel table. An operand whose last two dims are row- or
 * column-major is passed with a transpose flag and its leading dimension, never copied; a gradient
 * whose target is stored transposed (a Conv1D weight seen as [out, in]) is written as Cᵀ directly. */
#include "autograd/internal.h"

#include <string.h>

/* A matrix operand: the last two dims of a tensor, with its batch dims flattened to one stride. */
typedef struct mat {
    char *data;
    bool trans; /* stored transposed (column-major) */
    int64_t ld;
    int64_t bstride; /* elements between batch entries; 0 = broadcast */
    bool ok;
} mat;

static bool matrix_layout(int64_t rows, int64_t cols, int64_t s_row, int64_t s_col, bool *trans,
                          int64_t *ld) {
    if (s_col == 1 || cols == 1) {
        int64_t l = rows == 1 ? cols : s_row;
        if (l >= cols && l >= 1) {
            *trans = false;
            *ld = l;
            return true;
        }
    }
    if (s_row == 1 || rows == 1) {
        int64_t l = cols == 1 ? rows : s_col;
        if (l >= rows && l >= 1) {
            *trans = true;
            *ld = l;
            return true;
        }
    }
    return false;
}

/* Flattens t's batch dims, broadcast to `bshape`, into one stride when they allow it. */
static bool batch_stride(const hft_tensor *t, int nb, const int64_t *bshape, int64_t *out) {
    int lead = nb - (t->ndim - 2);
    int64_t s = -1, expect = 0;
    bool any_zero = false;
    for (int d = nb - 1; d >= 0; d--) {
        if (bshape[d] == 1) continue;
        int td = d - lead;
        int64_t st = (td < 0 || t->shape[td] == 1) ? 0 : t->stride[td];
        if (st == 0) {
            any_zero = true;
            if (s > 0) return false;
            s = 0;
            continue;
        }
        if (any_zero) return false;
        if (s < 0) {
            s = st;
            expect = st * bshape[d];
        } else {
            if (st != expect) return false;
            expect = st * bshape[d];
        }
    }
    *out = s < 0 ? 0 : s;
    return true;
}

static mat mat_of(const hft_tensor *t, int nb, const int64_t *bshape) {
    mat m = {.data = hft_tensor_data(t)};
    int nd = t->ndim;
    m.ok = matrix_layout(t->shape[nd - 2], t->shape[nd - 1], t->stride[nd - 2], t->stride[nd - 1], &m.trans,
                         &m.ld) &&
           batch_stride(t, nb, bshape, &m.bstride);
    return m;
}

static int64_t prod(int n, const int64_t *s) {
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= s[i];
    return p;
}

/* C[b] (+)= op(A[b]) op(B[b]) for the batch; C given as a tensor of shape [batch..., m, n] (any
 * matrix layout) or summed over the batch into one matrix when c_sum is set. */
/* The same with operands held in bf16/f16 (autocast's weights): a_type, b_type; f32 accumulation. */
static void run_gemm_typed(hft_ctx *ctx, hft_dtype dt, int64_t batch, int64_t m, int64_t n, int64_t k, mat A,
                           bool ta, mat B, bool tb, mat C, bool c_sum, bool accumulate, double alpha,
                           hft_dtype a_type, hft_dtype b_type);

static void run_gemm(hft_ctx *ctx, hft_dtype dt, int64_t batch, int64_t m, int64_t n, int64_t k, mat A,
                     bool ta, mat B, bool tb, mat C, bool c_sum, bool accumulate, double alpha) {
    run_gemm_typed(ctx, dt, batch, m, n, k, A, ta, B, tb, C, c_sum, accumulate, alpha, HFT_F32, HFT_F32);
}

static void run_gemm_typed(hft_ctx *ctx, hft_dtype dt, int64_t batch, int64_t m, int64_t n, int64_t k, mat A,
                           bool ta, mat B, bool tb, mat C, bool c_sum, bool accumulate, double alpha,
                           hft_dtype a_type, hft_dtype b_type) {
    hft_gemm_args g = {.trans_a = ta,
                       .trans_b = tb,
                       .trans_c = C.trans,
                       .m = m,
                       .n = n,
                       .k = k,
                       .alpha = alpha,
                       .beta = accumulate ? 1.0 : 0.0,
                       .a = A.data,
                       .lda = A.ld,
                       .b = B.data,
                       .ldb = B.ld,
                       .c = C.data,
                       .ldc = C.ld,
                       .batch = batch,
                       .stride_a = A.bstride,
                       .stride_b = B.bstride,
                       .stride_c = c_sum ? 0 : C.bstride,
                       .a_type = a_type,
                       .b_type = b_type};
    ctx->kernels->gemm[dt](&g);
}

/* ---------------------------------------------------------------- matmul */

typedef struct matmul_saved {
    int nb;
    int64_t bshape[HFT_MAX_DIMS];
    hft_dtype low; /* autocast: dY is rounded to it in backward */
} matmul_saved;

/* Writes grad[input] (+)= op(P) op(Q) over the batch, where input has shape [ibatch..., m, n]. Handles a
 * broadcast input (sum over the batch) and a target whose layout GEMM cannot write (a temporary). */
static void grad_gemm(hft_ctx *ctx, hft_tensor *input, int nb, const int64_t *bshape, int64_t m, int64_t n,
                      int64_t k, mat P, bool tp, mat Q, bool tq, double alpha) {
    if (!input->requires_grad) return;
    ag_grad g;
    if (!ag_grad_begin(ctx, input, AG_STRIDED, &g)) return;
    int64_t batch = prod(nb, bshape);
    int ib = input->ndim - 2;
    int64_t ibatch = prod(ib, input->shape);
    mat C = mat_of(g.dst, nb, bshape);
    bool sum_all = ibatch == 1 && batch > 1;
    if (C.ok && (ibatch == batch || sum_all)) {
        run_gemm(ctx, input->dtype, batch, m, n, k, P, tp, Q, tq, C, sum_all, g.accumulate, alpha);
    } else {
        /* a partly broadcast input, or a target GEMM cannot write: full batch into a temporary, then reduce
         */
        int64_t shape[HFT_MAX_DIMS];
        for (int d = 0; d < nb; d++) shape[d] = bshape[d];
        shape[nb] = m;
        shape[nb + 1] = n;
        hft_tensor *tmp = ag_pool_tensor(ctx, input->dtype, nb + 2, shape);
        if (tmp) {
            mat T = mat_of(tmp, nb, bshape);
            run_gemm(ctx, input->dtype, batch, m, n, k, P, tp, Q, tq, T, false, false, alpha);
            ag_reduce_into(ctx, g.dst, tmp, 1.0, g.accumulate);
            ag_pool_tensor_release(ctx, tmp);
        }
    }
    ag_grad_end(ctx, &g);
}

static void matmul_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const matmul_saved *s = node->saved;
    hft_tensor *a = node->in[0], *b = node->in[1];
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = b->shape[b->ndim - 1];
    hft_tensor *g_low = NULL;
    if (s->low != HFT_F32) { /* autocast: the backward GEMMs take dY in low precision too */
        if (!(g_low = ag_pool_tensor(ctx, HFT_F32, gy->ndim, gy->shape))) return;
        ag_round_into(ctx, g_low, gy, s->low);
        gy = g_low;
    }
    mat A = mat_of(a, s->nb, s->bshape), B = mat_of(b, s->nb, s->bshape), G = mat_of(gy, s->nb, s->bshape);
    /* dA = dY op(B)ᵀ ; dB = op(A)ᵀ dY */
    grad_gemm(ctx, a, s->nb, s->bshape, m, k, n, G, false, B, !B.trans, 1.0);
    grad_gemm(ctx, b, s->nb, s->bshape, k, n, m, A, !A.trans, G, false, 1.0);
    if (g_low) ag_pool_tensor_release(ctx, g_low);
}

hft_tensor *hft_matmul(hft_ctx *ctx, hft_tensor *a, hft_tensor *b) {
    hft_tensor *in[2] = {a, b};
    if (!ag_check(ctx, "matmul", 2, in) || !ag_check_float(ctx, "matmul", a, "a") ||
        !ag_check_same_dtype(ctx, "matmul", a, b))
        return NULL;
    hft_dtype low = a->dtype == HFT_F32 ? ag_autocast_low(ctx, "matmul") : HFT_F32;
    if (low != HFT_F32) { /* autocast: both operands in low precision, f32 accumulation */
        if (!(a = hft_autocast_round(ctx, a, low)) || !(b = hft_autocast_round(ctx, b, low))) return NULL;
    }
    char ba[128], bb[128];
    if (a->ndim < 2 || b->ndim < 2)
        return ag_fail(ctx, HFT_EINVAL, "matmul: operands need at least 2 dims, got %s and %s",
                       hft_tensor_describe(a, ba, sizeof ba), hft_tensor_describe(b, bb, sizeof bb));
    int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1], n = b->shape[b->ndim - 1];
    if (b->shape[b->ndim - 2] != k)
        return ag_fail(ctx, HFT_EINVAL, "matmul: inner dims differ: %s @ %s",
                       hft_tensor_describe(a, ba, sizeof ba), hft_tensor_describe(b, bb, sizeof bb));
    /* broadcast batch dims */
    hft_tensor ab = *a, bbt = *b;
    ab.ndim -= 2;
    bbt.ndim -= 2;
    int nb;
    int64_t shape[HFT_MAX_DIMS];
    if (!ag_broadcast_shape(ctx, "matmul", &ab, &bbt, &nb, shape)) return NULL;
    if (nb + 2 > HFT_MAX_DIMS) return ag_fail(ctx, HFT_EINVAL, "matmul: too many dims");
    int64_t bshape[HFT_MAX_DIMS];
    memcpy(bshape, shape, sizeof bshape);
    mat A = mat_of(a, nb, bshape), B = mat_of(b, nb, bshape);
    if (!A.ok) { /* a layout GEMM cannot read, or batch dims that do not flatten: materialise */
        shape[nb] = m;
        shape[nb + 1] = k;
        a = hft_contiguous(ctx, A.ok ? a : hft_expand(ctx, a, nb + 2, shape));
        if (!a) return NULL;
        A = mat_of(a, nb, bshape);
    }
    if (!B.ok) {
        shape[nb] = k;
        shape[nb + 1] = n;
        b = hft_contiguous(ctx, hft_expand(ctx, b, nb + 2, shape));
        if (!b) return NULL;
        B = mat_of(b, nb, bshape);
    }
    shape[nb] = m;
    shape[nb + 1] = n;
    hft_tensor *y = ag_new(ctx, a->dtype, nb + 2, shape);
    if (!y) return NULL;
    mat Y = mat_of(y, nb, bshape);
    run_gemm(ctx, a->dtype, prod(nb, bshape), m, n, k, A, A.trans, B, B.trans, Y, false, false, 1.0);
    in[0] = a;
    in[1] = b;
    hft_node *node = ag_record(ctx, "matmul", matmul_backward, y, 2, in, sizeof(matmul_saved));
    if (node) {
        matmul_saved *s = node->saved;
        s->nb = nb;
        s->low = low;
        memcpy(s->bshape, bshape, sizeof s->bshape);
    }
    return y;
}

/* ---------------------------------------------------------------- linear */

/* x [..., K] as an [M, K] matrix: the leading dims must flatten to one row stride. */
static bool rows_of(const hft_tensor *x, mat *X) {
    int nd = x->ndim;
    int64_t K = x->shape[nd - 1];
    if (x->stride[nd - 1] != 1 && K != 1) return false;
    int64_t rs = -1, expect = 0;
    for (int d = nd - 2; d >= 0; d--) {
        if (x->shape[d] == 1) continue;
        if (rs < 0) {
            rs = x->stride[d];
            expect = rs * x->shape[d];
        } else {
            if (x->stride[d] != expect) return false;
            expect = x->stride[d] * x->shape[d];
        }
    }
    if (rs < 0) rs = K;
    if (rs < K) return false;
    X->data = hft_tensor_data(x);
    X->trans = false;
    X->ld = rs > 0 ? rs : 1;
    X->bstride = 0;
    X->ok = true;
    return true;
}

typedef struct linear_saved {
    hft_dtype low; /* autocast: x was rounded, w comes from the cache, dY is rounded in backward */
} linear_saved;

/* A weight held in bf16/f16 (a frozen base) next to f32 activations: allowed, multiplied exactly. */
static bool held_low(const hft_tensor *x, const hft_tensor *w) {
    return x->dtype == HFT_F32 && (w->dtype == HFT_BF16 || w->dtype == HFT_F16) && !w->requires_grad;
}

static bool same_dtype_or_held(hft_ctx *ctx, const char *op, hft_tensor *x, hft_tensor *w) {
    return held_low(x, w) || ag_check_same_dtype(ctx, op, x, w);
}

/* The weight operand: held in bf16/f16 (its own dtype as b_type), autocast's cached low-precision copy,
 * or w rounded as an activation when it is not a parameter. */
static bool low_weight(hft_ctx *ctx, hft_tensor **w, mat *W, hft_dtype low, hft_dtype *w_type) {
    *w_type = HFT_F32;
    if ((*w)->dtype == HFT_BF16 || (*w)->dtype == HFT_F16) {
        *w_type = (*w)->dtype;
        return true;
    }
    if (low == HFT_F32) return true;
    const void *cached = ag_autocast_weight(ctx, *w, low, w_type);
    if (cached) {
        W->data = (void *)cached;
        return true;
    }
    *w_type = HFT_F32;
    if (ctx->status != HFT_OK) return false;
    *w = hft_autocast_round(ctx, *w, low);
    if (!*w) return false;
    *W = mat_of(*w, 0, NULL);
    return true;
}

/* Autocast in backward: dY rounded to `low` in a pool buffer (released by the caller), as a matrix. */
static hft_tensor *low_grad(hft_ctx *ctx, hft_tensor *gy, hft_dtype low, mat *G) {
    hft_tensor *r = ag_pool_tensor(ctx, HFT_F32, gy->ndim, gy->shape);
    if (!r) return NULL;
    ag_round_into(ctx, r, gy, low);
    rows_of(r, G);
    return r;
}

/* db [N] = Σ_rows dY, from dY as it came (not autocast's rounded copy). */
static void bias_grad(hft_ctx *ctx, hft_tensor *bias, hft_tensor *gy, int64_t M, int64_t N) {
    mat G;
    rows_of(gy, &G);
    hft_tensor gflat = *gy;
    gflat.ndim = 2;
    gflat.shape[0] = M;
    gflat.shape[1] = N;
    gflat.stride[0] = G.ld;
    gflat.stride[1] = 1;
    ag_grad_from_broadcast(ctx, bias, &gflat);
}

static void linear_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    hft_tensor *x = node->in[0], *w = node->in[1], *bias = node->n_in > 2 ? node->in[2] : NULL;
    int64_t K = x->shape[x->ndim - 1], N = w->shape[0], M = hft_tensor_numel(x) / (K ? K : 1);
    const linear_saved *s = node->saved;
    hft_dtype low = s ? s->low : HFT_F32, w_type = HFT_F32;
    mat X, G, W;
    rows_of(x, &X);
    rows_of(gy, &G);
    W = mat_of(w, 0, NULL);
    hft_tensor *g_low = NULL;
    if (low != HFT_F32 && !(g_low = low_grad(ctx, gy, low, &G))) return;
    if ((low != HFT_F32 || w->dtype != x->dtype) && x->requires_grad && !low_weight(ctx, &w, &W, low, &w_type)) {
        if (g_low) ag_pool_tensor_release(ctx, g_low);
        return;
    }
    w = node->in[1];
    if (x->requires_grad) { /* dX [M, K] = dY [M, N] W [N, K] */
        ag_grad g;
        if (ag_grad_begin(ctx, x, AG_STRIDED, &g)) {
            mat D;
            hft_tensor *tmp = NULL;
            if (!rows_of(g.dst, &D)) {
                tmp = ag_pool_tensor(ctx, x->dtype, x->ndim, x->shape);
                if (!tmp) return;
                rows_of(tmp, &D);
            }
            run_gemm_typed(ctx, x->dtype, 1, M, K, N, G, false, W, W.trans, D, false, tmp ? false : g.accumulate,
                           1.0, HFT_F32, w_type);
            if (tmp) {
                ag_copy_into(ctx, g.dst, tmp, g.accumulate);
                ag_pool_tensor_release(ctx, tmp);
            }
            ag_grad_end(ctx, &g);
        }
    }
    if (w->requires_grad) /* dW [N, K] = dYᵀ [N, M] X [M, K] */
        grad_gemm(ctx, w, 0, NULL, N, K, M, G, true, X, false, 1.0);
    if (bias && bias->requires_grad) bias_grad(ctx, bias, gy, M, N);
    if (g_low) ag_pool_tensor_release(ctx, g_low);
}

hft_tensor *hft_linear(hft_ctx *ctx, hft_tensor *x, hft_tensor *w, hft_tensor *bias) {
    hft_tensor *in[3] = {x, w, bias};
    if (!ag_check(ctx, "linear", bias ? 3 : 2, in) || !ag_check_float(ctx, "linear", x, "input") ||
        !same_dtype_or_held(ctx, "linear", x, w) || (bias && !ag_check_same_dtype(ctx, "linear", x, bias)))
        return NULL;
    char bx[128], bw[128];
    if (x->ndim < 1 || w->ndim != 2 || x->shape[x->ndim - 1] != w->shape[1])
        return ag_fail(ctx, HFT_EINVAL,
                       "linear: input %s does not match weight %s (expected [..., K] and [N, K])",
                       hft_tensor_describe(x, bx, sizeof bx), hft_tensor_describe(w, bw, sizeof bw));
    int64_t K = w->shape[1], N = w->shape[0];
    if (bias && (bias->ndim != 1 || bias->shape[0] != N))
        return ag_fail(ctx, HFT_EINVAL, "linear: bias %s does not match %lld outputs",
                       hft_tensor_describe(bias, bx, sizeof bx), (long long)N);
    mat X, W = mat_of(w, 0, NULL);
    if (!rows_of(x, &X)) {
        x = hft_contiguous(ctx, x);
        if (!x) return NULL;
        rows_of(x, &X);
    }
    if (!W.ok) {
        w = hft_contiguous(ctx, w);
        if (!w) return NULL;
        W = mat_of(w, 0, NULL);
    }
    hft_dtype low = x->dtype == HFT_F32 ? ag_autocast_low(ctx, "linear") : HFT_F32, w_type = HFT_F32;
    hft_tensor *w_param = w;
    if (low != HFT_F32) {
        if (!(x = hft_autocast_round(ctx, x, low))) return NULL;
        rows_of(x, &X);
    }
    if (!low_weight(ctx, &w, &W, low, &w_type)) return NULL;
    int64_t shape[HFT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = N;
    hft_tensor *y = ag_new(ctx, x->dtype, x->ndim, shape);
    if (!y) return NULL;
    int64_t M = hft_tensor_numel(x) / (K ? K : 1);
    if (bias) ag_copy_into(ctx, y, bias, false); /* y starts as the bias rows; the GEMM adds x Wᵀ */
    mat Y;
    rows_of(y, &Y);
    run_gemm_typed(ctx, x->dtype, 1, M, N, K, X, false, W, !W.trans, Y, false, bias != NULL, 1.0, HFT_F32, w_type);
    in[0] = x;
    in[1] = w_type != HFT_F32 ? w_param : w;
    hft_node *node = ag_record(ctx, "linear", linear_backward, y, bias ? 3 : 2, in, sizeof(linear_saved));
    if (node) ((linear_saved *)node->saved)->low = low;
    return y;
}

/* ---------------------------------------------------------------- LoRA's linear */

typedef struct lora_saved {
    hft_tensor *u; /* scale · xd Aᵀ, [M, r] (rounded under autocast) */
    double scale;
    bool has_bias;
    hft_dtype low; /* autocast */
} lora_saved;

/* dst (+)= dY W + scale · dU A, the gradient of an input that feeds the base (with_base) and/or the
 * branch (with_branch). */
static void lora_input_grad(hft_ctx *ctx, hft_tensor *input, mat G, mat W, bool with_base, mat DU, mat A,
                            bool with_branch, int64_t M, int64_t K, int64_t N, int64_t r, double scale,
                            hft_dtype w_type, hft_dtype a_type) {
    ag_grad g;
    if (!ag_grad_begin(ctx, input, AG_STRIDED, &g)) return;
    mat D;
    hft_tensor *tmp = NULL;
    if (!rows_of(g.dst, &D)) {
        tmp = ag_pool_tensor(ctx, input->dtype, input->ndim, input->shape);
        if (!tmp) return;
        rows_of(tmp, &D);
    }
    bool acc = tmp ? false : g.accumulate;
    if (with_base) {
        run_gemm_typed(ctx, input->dtype, 1, M, K, N, G, false, W, W.trans, D, false, acc, 1.0, HFT_F32, w_type);
        acc = true;
    }
    if (with_branch)
        run_gemm_typed(ctx, input->dtype, 1, M, K, r, DU, false, A, A.trans, D, false, acc, scale, HFT_F32, a_type);
    if (tmp) {
        ag_copy_into(ctx, g.dst, tmp, g.accumulate);
        ag_pool_tensor_release(ctx, tmp);
    }
    ag_grad_end(ctx, &g);
}

static void lora_linear_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const lora_saved *s = node->saved;
    hft_tensor *x = node->in[0], *w = node->in[1], *xd = node->in[2], *a = node->in[3], *b = node->in[4];
    hft_tensor *bias = s->has_bias ? node->in[5] : NULL;
    int64_t K = x->shape[x->ndim - 1], N = w->shape[0], r = a->shape[0],
            M = hft_tensor_numel(x) / (K ? K : 1);
    mat G, XD, U, W = mat_of(w, 0, NULL), A = mat_of(a, 0, NULL), B = mat_of(b, 0, NULL);
    rows_of(gy, &G);
    rows_of(xd, &XD);
    rows_of(s->u, &U);
    hft_dtype low = s->low, w_type = HFT_F32, a_type = HFT_F32, b_type = HFT_F32;
    hft_tensor *g_low = NULL, *w2 = w;
    if (low != HFT_F32) { /* the cached copies (unchanged since forward) and dY rounded */
        hft_tensor *a2 = a, *b2 = b;
        if (!(g_low = low_grad(ctx, gy, low, &G))) return;
        if (!low_weight(ctx, &a2, &A, low, &a_type) || !low_weight(ctx, &b2, &B, low, &b_type)) {
            ag_pool_tensor_release(ctx, g_low);
            return;
        }
    }
    if (!low_weight(ctx, &w2, &W, low, &w_type)) {
        if (g_low) ag_pool_tensor_release(ctx, g_low);
        return;
    }
    /* dB [N, r] = dYᵀ U */
    if (b->requires_grad) grad_gemm(ctx, b, 0, NULL, N, r, M, G, true, U, false, 1.0);
    bool same = xd == x;
    if (a->requires_grad || xd->requires_grad) {
        /* dU [M, r] = dY B: the branch's gradient at its bottleneck */
        hft_tensor *du = ag_pool_tensor(ctx, x->dtype, 2, (int64_t[]){M, r});
        if (!du) return;
        mat DU;
        rows_of(du, &DU);
        run_gemm_typed(ctx, x->dtype, 1, M, r, N, G, false, B, B.trans, DU, false, false, 1.0, HFT_F32, b_type);
        if (low != HFT_F32) ag_round_into(ctx, du, du, low);
        /* dA [r, K] = scale · dUᵀ XD */
        if (a->requires_grad) grad_gemm(ctx, a, 0, NULL, r, K, M, DU, true, XD, false, s->scale);
        if (same && x->requires_grad)
            lora_input_grad(ctx, x, G, W, true, DU, A, true, M, K, N, r, s->scale, w_type, a_type);
        else if (xd->requires_grad)
            lora_input_grad(ctx, xd, G, W, false, DU, A, true, M, K, N, r, s->scale, w_type, a_type);
        ag_pool_tensor_release(ctx, du);
    }
    if (!same && x->requires_grad) {
        mat none = {0};
        lora_input_grad(ctx, x, G, W, true, none, A, false, M, K, N, r, s->scale, w_type, a_type);
    }
    if (w->requires_grad) { /* a base weight that trains (not LoRA's use, but correct): dW = dYᵀ X */
        mat X;
        rows_of(x, &X);
        grad_gemm(ctx, w, 0, NULL, N, K, M, G, true, X, false, 1.0);
    }
    if (bias && bias->requires_grad) bias_grad(ctx, bias, gy, M, N);
    if (g_low) ag_pool_tensor_release(ctx, g_low);
}

hft_tensor *hft_lora_linear(hft_ctx *ctx, hft_tensor *x, hft_tensor *w, hft_tensor *bias, hft_tensor *xd,
                            hft_tensor *a, hft_tensor *b, double scale) {
    hft_tensor *in[6] = {x, w, xd, a, b, bias};
    int n_in = bias ? 6 : 5;
    if (!ag_check(ctx, "lora_linear", n_in, in) || !ag_check_float(ctx, "lora_linear", x, "input"))
        return NULL;
    for (int i = 1; i < n_in; i++)
        if (!(i == 1 ? same_dtype_or_held(ctx, "lora_linear", x, in[i]) : ag_check_same_dtype(ctx, "lora_linear", x, in[i])))
            return NULL;
    char bx[128], bw[128], ba[128], bb[128];
    int64_t K = x->shape[x->ndim - 1], N = w->ndim == 2 ? w->shape[0] : -1,
            r = a->ndim == 2 ? a->shape[0] : -1;
    bool same_shape = xd->ndim == x->ndim;
    for (int d = 0; same_shape && d < x->ndim; d++) same_shape = xd->shape[d] == x->shape[d];
    if (w->ndim != 2 || w->shape[1] != K || a->ndim != 2 || a->shape[1] != K || b->ndim != 2 ||
        b->shape[0] != N || b->shape[1] != r || !same_shape ||
        (bias && (bias->ndim != 1 || bias->shape[0] != N)))
        return ag_fail(ctx, HFT_EINVAL,
                       "lora_linear: input %s, weight %s, A %s, B %s do not fit (expected [..., K], [N, K], "
                       "[r, K], [N, r], and the branch input shaped as the input)",
                       hft_tensor_describe(x, bx, sizeof bx), hft_tensor_describe(w, bw, sizeof bw),
                       hft_tensor_describe(a, ba, sizeof ba), hft_tensor_describe(b, bb, sizeof bb));
    mat X, XD, W = mat_of(w, 0, NULL), A = mat_of(a, 0, NULL), B = mat_of(b, 0, NULL);
    bool same = xd == x;
    if (!rows_of(x, &X)) {
        x = hft_contiguous(ctx, x);
        if (!x) return NULL;
        rows_of(x, &X);
    }
    if (same)
        xd = x;
    else if (!rows_of(xd, &XD)) {
        xd = hft_contiguous(ctx, xd);
        if (!xd) return NULL;
    }
    rows_of(xd, &XD);
    if (!W.ok || !A.ok || !B.ok) {
        if (!W.ok && !(w = hft_contiguous(ctx, w))) return NULL;
        if (!A.ok && !(a = hft_contiguous(ctx, a))) return NULL;
        if (!B.ok && !(b = hft_contiguous(ctx, b))) return NULL;
        W = mat_of(w, 0, NULL), A = mat_of(a, 0, NULL), B = mat_of(b, 0, NULL);
    }
    hft_dtype low = x->dtype == HFT_F32 ? ag_autocast_low(ctx, "lora_linear") : HFT_F32;
    hft_dtype w_type = HFT_F32, a_type = HFT_F32, b_type = HFT_F32;
    hft_tensor *w_in = w, *a_in = a, *b_in = b;
    if (low != HFT_F32) { /* inputs rounded, weights from the cache */
        if (!(x = hft_autocast_round(ctx, x, low))) return NULL;
        rows_of(x, &X);
        if (same)
            xd = x;
        else if (!(xd = hft_autocast_round(ctx, xd, low)))
            return NULL;
        rows_of(xd, &XD);
        if (!low_weight(ctx, &a, &A, low, &a_type) || !low_weight(ctx, &b, &B, low, &b_type)) return NULL;
    }
    if (!low_weight(ctx, &w, &W, low, &w_type)) return NULL; /* also a base held in bf16 */
    int64_t M = hft_tensor_numel(x) / (K ? K : 1);
    int64_t shape[HFT_MAX_DIMS];
    memcpy(shape, x->shape, sizeof(int64_t) * (size_t)x->ndim);
    shape[x->ndim - 1] = N;
    hft_tensor *y = ag_new(ctx, x->dtype, x->ndim, shape);
    hft_tensor *u = ag_new(ctx, x->dtype, 2, (int64_t[]){M, r});
    if (!y || !u) return NULL;
    mat Y, U;
    rows_of(y, &Y);
    rows_of(u, &U);
    /* U = scale · XD Aᵀ ; Y = bias + X Wᵀ + U Bᵀ — one [M, N] output */
    run_gemm_typed(ctx, x->dtype, 1, M, r, K, XD, false, A, !A.trans, U, false, false, scale, HFT_F32, a_type);
    if (low != HFT_F32) ag_round_into(ctx, u, u, low); /* the bottleneck enters B's GEMM in low precision */
    if (bias) ag_copy_into(ctx, y, bias, false);
    run_gemm_typed(ctx, x->dtype, 1, M, N, K, X, false, W, !W.trans, Y, false, bias != NULL, 1.0, HFT_F32, w_type);
    run_gemm_typed(ctx, x->dtype, 1, M, N, r, U, false, B, !B.trans, Y, false, true, 1.0, HFT_F32, b_type);
    in[0] = x, in[1] = w_type != HFT_F32 ? w_in : w, in[2] = xd, in[3] = a_type != HFT_F32 ? a_in : a;
    in[4] = b_type != HFT_F32 ? b_in : b;
    hft_node *node = ag_record(ctx, "lora_linear", lora_linear_backward, y, n_in, in, sizeof(lora_saved));
    if (node)
        *(lora_saved *)node->saved = (lora_saved){.u = u, .scale = scale, .has_bias = bias != NULL, .low = low};
    return y;
}
