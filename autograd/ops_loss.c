/* Losses: cross-entropy as a sum with the count of counted targets (the caller divides, DESIGN), its
 * torch-style mean, the classifier fused with cross-entropy (logits made a block of rows at a time and
 * never held whole), and mse. */
#include "autograd/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The fused classifier's logits block: R rows with R·V·sizeof(T) within this budget. */
#define LCE_BLOCK_BYTES ((size_t)32 << 20)

static const char *shape_str(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t o = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && o < size; d++)
        o += (size_t)snprintf(buf + o, size - o, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (o < size) snprintf(buf + o, size - o, "]");
    return buf;
}

/* ---------------------------------------------------------------- targets */

/* Checks targets against the rows they label (shape `rows_ndim`/`rows_shape`) and `classes`, and counts
 * the targets that are not ignored. Returns the targets as a contiguous tensor that stays valid until
 * the context is reset (copied into the arena when it is a heap tensor and a backward will read it),
 * or NULL with the error recorded. */
static hft_tensor *check_targets(hft_ctx *ctx, const char *op, hft_tensor *targets, const hft_tensor *x,
                                 const char *x_what, int64_t classes, hft_xent_opts opts, bool keep,
                                 int64_t *count) {
    char b1[160], b2[160], b3[160];
    if (targets->dtype != HFT_I32 && targets->dtype != HFT_I64)
        return ag_fail(ctx, HFT_EINVAL, "%s: targets must be i32 or i64, got %s", op,
                       hft_dtype_name(targets->dtype));
    bool same = targets->ndim == x->ndim - 1;
    for (int d = 0; same && d < targets->ndim; d++) same = targets->shape[d] == x->shape[d];
    if (!same)
        return ag_fail(ctx, HFT_EINVAL, "%s: targets %s do not match %s %s (expected targets of shape %s)",
                       op, hft_tensor_describe(targets, b1, sizeof b1), x_what,
                       hft_tensor_describe(x, b2, sizeof b2),
                       shape_str(x->ndim - 1, x->shape, b3, sizeof b3));
    if (!(opts.label_smoothing >= 0 && opts.label_smoothing <= 1))
        return ag_fail(ctx, HFT_EINVAL, "%s: label_smoothing must be in [0, 1], got %g", op,
                       opts.label_smoothing);
    hft_tensor *t = hft_contiguous(ctx, targets);
    if (!t) return NULL;
    int64_t n = hft_tensor_numel(t), counted = 0;
    const void *data = ag_host_data(ctx, t); /* on a device: read back once for the range check */
    if (!data) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int64_t v = t->dtype == HFT_I32 ? (int64_t)((const int32_t *)data)[i] : ((const int64_t *)data)[i];
        if (v == opts.ignore_index) continue;
        if (v < 0 || v >= classes) {
            int64_t pos[HFT_MAX_DIMS], rem = i;
            for (int d = t->ndim - 1; d >= 0; d--) {
                pos[d] = t->shape[d] ? rem % t->shape[d] : 0;
                rem = t->shape[d] ? rem / t->shape[d] : 0;
            }
            return ag_fail(
                ctx, HFT_EINVAL,
                "%s: target %lld at position %s is outside [0, %lld) and is not ignore_index (%lld)", op,
                (long long)v, shape_str(t->ndim, pos, b1, sizeof b1), (long long)classes,
                (long long)opts.ignore_index);
        }
        counted++;
    }
    *count = counted;
    if (keep && t->ctx != ctx) { /* a heap tensor the caller may free before backward */
        hft_tensor *copy = ag_new(ctx, t->dtype, t->ndim, t->shape);
        if (!copy) return NULL;
        if (n && !ctx->kernels->dev)
            memcpy(hft_tensor_data(copy), data, hft_tensor_nbytes(t));
        else if (n)
            ag_copy_into(ctx, copy, t, false);
        t = copy;
    }
    return t;
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct xent_saved {
    void *lse;
    const void *targets;
    hft_dtype target_dtype;
    int64_t rows, classes;
    hft_xent_opts opts;
} xent_saved;

static void xent_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const xent_saved *s = node->saved;
    hft_tensor *logits = node->in[0];
    void (*bwd)(const hft_xent_args *) = AG_KERNEL(ctx, xent_bwd, logits->dtype, "cross_entropy");
    ag_grad g;
    if (!bwd || !ag_grad_begin(ctx, logits, AG_CONTIGUOUS, &g)) return;
    hft_xent_args a = {.rows = s->rows,
                       .classes = s->classes,
                       .ld = s->classes,
                       .logits = hft_tensor_data(logits),
                       .target_dtype = s->target_dtype,
                       .targets = s->targets,
                       .ignore_index = s->opts.ignore_index,
                       .label_smoothing = s->opts.label_smoothing,
                       .lse = s->lse,
                       .dlogits = hft_tensor_data(g.dst),
                       .scale = ag_read_scalar(ctx, gy),
                       .accumulate = g.accumulate};
    if (s->rows > 0 && s->classes > 0) bwd(&a);
    ag_grad_end(ctx, &g);
}

hft_tensor *hft_cross_entropy(hft_ctx *ctx, hft_tensor *logits, hft_tensor *targets, hft_xent_opts opts,
                              int64_t *count) {
    const char *op = "cross_entropy";
    if (count) *count = 0;
    hft_tensor *in[2] = {logits, targets};
    if (!ag_check(ctx, op, 2, in) || !ag_check_float(ctx, op, logits, "logits")) return NULL;
    char b[160];
    if (logits->ndim < 1)
        return ag_fail(ctx, HFT_EINVAL, "%s: logits %s have no class dim (expected [..., C])", op,
                       hft_tensor_describe(logits, b, sizeof b));
    hft_dtype dt = logits->dtype;
    int64_t C = logits->shape[logits->ndim - 1], counted = 0;
    bool grad = ctx->grad_enabled && logits->requires_grad;
    hft_tensor *tc = check_targets(ctx, op, targets, logits, "logits", C, opts, grad, &counted);
    void (*fwd)(const hft_xent_args *) = AG_KERNEL(ctx, xent_fwd, dt, op);
    double (*sum)(const void *, int64_t) = AG_KERNEL(ctx, sum, dt, op);
    if (!tc || !fwd || !sum) return NULL;
    logits = hft_contiguous(ctx, logits);
    if (!logits) return NULL;
    int64_t N = hft_tensor_numel(tc);
    size_t es = hft_dtype_size(dt);
    hft_tensor *out = ag_new(ctx, dt, 0, NULL);
    void *lse = grad ? ag_alloc(ctx, (size_t)(N > 0 ? N : 1) * es) : NULL;
    hft_tensor *row_loss = ag_pool_tensor(ctx, dt, 1, (int64_t[]){N});
    if (!out || (grad && !lse) || !row_loss) return NULL;
    double total = 0;
    if (N > 0) {
        hft_xent_args a = {.rows = N,
                           .classes = C,
                           .ld = C,
                           .logits = hft_tensor_data(logits),
                           .target_dtype = tc->dtype,
                           .targets = hft_tensor_data(tc),
                           .ignore_index = opts.ignore_index,
                           .label_smoothing = opts.label_smoothing,
                           .row_loss = hft_tensor_data(row_loss),
                           .lse = lse};
        fwd(&a);
        total = sum(a.row_loss, N);
    }
    ag_pool_tensor_release(ctx, row_loss);
    ag_write_scalar(ctx, out, total);
    hft_node *node = ag_record(ctx, op, xent_backward, out, 1, &logits, sizeof(xent_saved));
    if (node) {
        xent_saved *s = node->saved;
        *s = (xent_saved){.lse = lse,
                          .targets = hft_tensor_data(tc),
                          .target_dtype = tc->dtype,
                          .rows = N,
                          .classes = C,
                          .opts = opts};
    }
    if (count) *count = counted;
    return out;
}

hft_tensor *hft_cross_entropy_mean(hft_ctx *ctx, hft_tensor *logits, hft_tensor *targets,
                                   hft_xent_opts opts) {
    int64_t count = 0;
    hft_tensor *total = hft_cross_entropy(ctx, logits, targets, opts, &count);
    if (!total) return NULL;
    /* torch: 0/0 = NaN when every target is ignored; the gradient is still 0 (every row is ignored) */
    return hft_scale(ctx, total, count ? 1.0 / (double)count : NAN);
}

/* ---------------------------------------------------------------- linear + cross-entropy */

/* The gradients for an upstream gradient of 1, made during forward; backward scales them by g. */
typedef struct lce_saved {
    hft_tensor *dh, *dw, *db; /* NULL where not wanted */
} lce_saved;

/* HFT_LCE_BLOCK_ROWS=n forces n-row blocks (tests and the parity check run the multi-block path with
 * it; also a tuning knob). 0 when unset or not a positive integer. */
static int64_t lce_block_override(void) {
    const char *env = getenv("HFT_LCE_BLOCK_ROWS");
    if (!env || !*env) return 0;
    char *end;
    long long v = strtoll(env, &end, 10);
    return *end == '\0' && v > 0 ? (int64_t)v : 0;
}

/* A 2-d matrix's layout for GEMM: row-major (trans false) or column-major, with its leading dim. */
static bool matrix_layout(const hft_tensor *t, bool *trans, int64_t *ld) {
    int64_t rows = t->shape[0], cols = t->shape[1], sr = t->stride[0], sc = t->stride[1];
    if ((sc == 1 || cols == 1) && (rows == 1 || sr >= cols)) {
        *trans = false;
        *ld = rows == 1 ? (cols > 0 ? cols : 1) : sr;
        return *ld >= 1;
    }
    if ((sr == 1 || rows == 1) && (cols == 1 || sc >= rows)) {
        *trans = true;
        *ld = cols == 1 ? (rows > 0 ? rows : 1) : sc;
        return *ld >= 1;
    }
    return false;
}

/* x [..., D] as rows with one row stride (the last dim unit-stride). */
static bool row_layout(const hft_tensor *x, int64_t *ld) {
    int nd = x->ndim;
    int64_t D = x->shape[nd - 1];
    if (x->stride[nd - 1] != 1 && D > 1) return false;
    int64_t rs = -1, expect = 0;
    for (int d = nd - 2; d >= 0; d--) {
        if (x->shape[d] == 1) continue;
        if (rs < 0) {
            rs = x->stride[d];
        } else if (x->stride[d] != expect) {
            return false;
        }
        expect = x->stride[d] * x->shape[d];
    }
    if (rs < 0) rs = D;
    if (rs < D) return false;
    *ld = rs > 0 ? rs : 1;
    return true;
}

static void gemm(hft_ctx *ctx, hft_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void *a,
                 int64_t lda, const void *b, int64_t ldb, void *c, int64_t ldc, double beta,
                 hft_dtype b_type) {
    hft_gemm_args g = {.trans_a = ta,
                       .trans_b = tb,
                       .m = m,
                       .n = n,
                       .k = k,
                       .alpha = 1.0,
                       .beta = beta,
                       .a = a,
                       .lda = lda,
                       .b = b,
                       .ldb = ldb,
                       .c = c,
                       .ldc = ldc,
                       .batch = 1,
                       .b_type = b_type};
    ctx->kernels->gemm[dt](&g);
}

/* grad[input] (+)= g · unit. */
static void lce_grad(hft_ctx *ctx, hft_tensor *input, const hft_tensor *unit, double g) {
    if (!input || !unit || !input->requires_grad) return;
    ag_grad gr;
    if (!ag_grad_begin(ctx, input, AG_STRIDED, &gr)) return;
    if (hft_tensor_numel(input) > 0) {
        hft_map_args m = {.op = HFT_MAP_SCALE, .n_in = 1, .alpha = g, .accumulate = gr.accumulate};
        m.out = ag_kview(gr.dst);
        m.in[0] = ag_kview(unit);
        ctx->kernels->map[input->dtype](&m);
    }
    ag_grad_end(ctx, &gr);
}

static void lce_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const lce_saved *s = node->saved;
    double g = ag_read_scalar(ctx, gy);
    lce_grad(ctx, node->in[0], s->dh, g);
    lce_grad(ctx, node->in[1], s->dw, g);
    if (node->n_in > 2) lce_grad(ctx, node->in[2], s->db, g);
}

/* The first r rows of the logits block set to the bias: host copies on the CPU, a broadcast copy kernel on
 * a device (whose memory the host cannot write). */
static void bias_rows(hft_ctx *ctx, hft_tensor *block, const hft_tensor *bias, int64_t r) {
    int64_t V = bias->shape[0];
    size_t es = hft_dtype_size(block->dtype);
    if (ctx->kernels->dev) {
        hft_tensor rows = *block;
        rows.shape[0] = r;
        ag_copy_into(ctx, &rows, bias, false);
        return;
    }
    char *L = hft_tensor_data(block);
    for (int64_t i = 0; i < r; i++) memcpy(L + (size_t)(i * V) * es, hft_tensor_data(bias), (size_t)V * es);
}

/* A classifier held in bf16/f16 (a frozen base) next to f32 hidden states: multiplied exactly. */
static bool held_low_weight(const hft_tensor *hidden, const hft_tensor *w) {
    return hidden->dtype == HFT_F32 && (w->dtype == HFT_BF16 || w->dtype == HFT_F16) && !w->requires_grad;
}

hft_tensor *hft_linear_cross_entropy(hft_ctx *ctx, hft_tensor *hidden, hft_tensor *weight, hft_tensor *bias,
                                     hft_tensor *targets, hft_xent_opts opts, int64_t *count) {
    const char *op = "linear_cross_entropy";
    if (count) *count = 0;
    hft_tensor *in[4] = {hidden, weight, targets, bias};
    if (!ag_check(ctx, op, bias ? 4 : 3, in) || !ag_check_float(ctx, op, hidden, "hidden") ||
        !(held_low_weight(hidden, weight) || ag_check_same_dtype(ctx, op, hidden, weight)) ||
        (bias && !ag_check_same_dtype(ctx, op, hidden, bias)))
        return NULL;
    char b1[160], b2[160];
    if (hidden->ndim < 1 || weight->ndim != 2 || hidden->shape[hidden->ndim - 1] != weight->shape[1])
        return ag_fail(
            ctx, HFT_EINVAL, "%s: hidden %s does not match weight %s (expected [..., D] and [V, D])", op,
            hft_tensor_describe(hidden, b1, sizeof b1), hft_tensor_describe(weight, b2, sizeof b2));
    hft_dtype dt = hidden->dtype;
    int64_t V = weight->shape[0], D = weight->shape[1], counted = 0;
    if (bias && (bias->ndim != 1 || bias->shape[0] != V))
        return ag_fail(ctx, HFT_EINVAL, "%s: bias %s does not match %lld classes (expected [%lld])", op,
                       hft_tensor_describe(bias, b1, sizeof b1), (long long)V, (long long)V);
    bool want_h = ctx->grad_enabled && hidden->requires_grad;
    bool want_w = ctx->grad_enabled && weight->requires_grad;
    bool want_b = ctx->grad_enabled && bias && bias->requires_grad;
    bool grad = want_h || want_w || want_b;
    hft_tensor *tc = check_targets(ctx, op, targets, hidden, "hidden", V, opts, false, &counted);
    void (*fwd)(const hft_xent_args *) = AG_KERNEL(ctx, xent_fwd, dt, op);
    void (*bwd)(const hft_xent_args *) = grad ? AG_KERNEL(ctx, xent_bwd, dt, op) : NULL;
    double (*sum)(const void *, int64_t) = AG_KERNEL(ctx, sum, dt, op);
    if (!tc || !fwd || (grad && !bwd) || !sum || !(AG_KERNEL(ctx, gemm, dt, op))) return NULL;

    /* layouts GEMM reads directly; anything else is copied once (a transposed W is not) */
    int64_t ldh = 1, ldw = 1;
    bool w_trans = false;
    if (!row_layout(hidden, &ldh)) {
        if (!(hidden = hft_contiguous(ctx, hidden))) return NULL;
        row_layout(hidden, &ldh);
    }
    if (!matrix_layout(weight, &w_trans, &ldw)) {
        if (!(weight = hft_contiguous(ctx, weight))) return NULL;
        matrix_layout(weight, &w_trans, &ldw);
    }
    if (bias && bias->stride[0] != 1 && V > 1 && !(bias = hft_contiguous(ctx, bias))) return NULL;
    /* autocast: the classifier's GEMMs take the hidden states, the weight and dlogits in low precision */
    hft_dtype low = dt == HFT_F32 ? ag_autocast_low(ctx, op) : HFT_F32, w_type = HFT_F32;
    hft_tensor *weight_in = weight;
    const void *w_low = NULL;
    if (held_low_weight(hidden, weight)) { /* held in low precision: its own values */
        w_low = hft_tensor_data(weight);
        w_type = weight->dtype;
    }
    if (low != HFT_F32) {
        if (!(hidden = hft_autocast_round(ctx, hidden, low))) return NULL;
        row_layout(hidden, &ldh);
        if (!w_low) {
            w_low = ag_autocast_weight(ctx, weight, low, &w_type);
            if (!w_low) {
                w_type = HFT_F32;
                if (ctx->status != HFT_OK || !(weight = hft_autocast_round(ctx, weight, low))) return NULL;
                matrix_layout(weight, &w_trans, &ldw);
            }
        }
    }

    int64_t N = hft_tensor_numel(tc);
    size_t es = hft_dtype_size(dt);
    int64_t R = (int64_t)(LCE_BLOCK_BYTES / ((size_t)(V > 0 ? V : 1) * es));
    if (R < 1) R = 1;
    if (N > 0) { /* equal blocks: a short last block runs its GEMMs at a poor shape (166 + 90 rows: +15%) */
        int64_t blocks = (N + R - 1) / R;
        R = (N + blocks - 1) / blocks;
    }
    int64_t forced = lce_block_override();
    if (forced) R = forced;
    if (R > N) R = N;
    if (R < 1) R = 1;

    hft_tensor *out = ag_new(ctx, dt, 0, NULL);
    hft_tensor *dh = want_h ? ag_new(ctx, dt, hidden->ndim, hidden->shape) : NULL;
    hft_tensor *dw = want_w ? ag_new(ctx, dt, 2, weight->shape) : NULL;
    hft_tensor *db = want_b ? ag_new(ctx, dt, 1, bias->shape) : NULL;
    if (!out || (want_h && !dh) || (want_w && !dw) || (want_b && !db)) return NULL;
    hft_tensor *block = ag_pool_tensor(ctx, dt, 2, (int64_t[]){R, V});
    hft_tensor *rows = ag_pool_tensor(ctx, dt, 1, (int64_t[]){N + R}); /* row losses, then the block's lse */
    if (!block || !rows) {
        ag_pool_tensor_release(ctx, block);
        ag_pool_tensor_release(ctx, rows);
        return NULL;
    }
    const char *H = hft_tensor_data(hidden), *W = w_low ? w_low : hft_tensor_data(weight),
               *tgt = hft_tensor_data(tc);
    char *L = hft_tensor_data(block), *row_loss = hft_tensor_data(rows), *lse = row_loss + (size_t)N * es;
    size_t tes = hft_dtype_size(tc->dtype);
    int64_t ldv = V > 0 ? V : 1, ldd = D > 0 ? D : 1;
    if (want_w && N == 0) ag_fill(ctx, dw, 0.0);
    if (want_b && N == 0) ag_fill(ctx, db, 0.0);
    for (int64_t b0 = 0; b0 < N; b0 += R) {
        int64_t r = N - b0 < R ? N - b0 : R;
        const char *Hb = H + (size_t)(b0 * ldh) * es;
        if (bias) /* the block starts as bias rows; the GEMM adds H Wᵀ */
            bias_rows(ctx, block, bias, r);
        gemm(ctx, dt, false, !w_trans, r, V, D, Hb, ldh, W, ldw, L, ldv, bias ? 1.0 : 0.0, w_type);
        hft_xent_args a = {.rows = r,
                           .classes = V,
                           .ld = ldv,
                           .logits = L,
                           .target_dtype = tc->dtype,
                           .targets = tgt + (size_t)b0 * tes,
                           .ignore_index = opts.ignore_index,
                           .label_smoothing = opts.label_smoothing,
                           .row_loss = row_loss + (size_t)b0 * es,
                           .lse = lse};
        fwd(&a);
        if (!grad) continue;
        a.dlogits = L; /* the block becomes dlogits in place */
        a.scale = 1.0;
        bwd(&a);
        if (low != HFT_F32) {
            hft_tensor lb = *block;
            lb.shape[0] = r;
            ag_round_into(ctx, &lb, &lb, low);
        }
        if (want_h) /* dH_blk [r, D] = dL [r, V] W [V, D] */
            gemm(ctx, dt, false, w_trans, r, D, V, L, ldv, W, ldw,
                 (char *)hft_tensor_data(dh) + (size_t)(b0 * D) * es, ldd, 0.0, w_type);
        if (want_w) /* dW [V, D] (+)= dLᵀ [V, r] H_blk [r, D] */
            gemm(ctx, dt, true, false, V, D, r, L, ldv, Hb, ldh, hft_tensor_data(dw), ldd, b0 ? 1.0 : 0.0,
                 HFT_F32);
        if (want_b) { /* db [V] (+)= Σ_rows dL */
            hft_tensor lb = *block;
            lb.shape[0] = r;
            ag_reduce_into(ctx, db, &lb, 1.0, b0 > 0);
        }
    }
    double total = N > 0 ? sum(row_loss, N) : 0.0;
    ag_pool_tensor_release(ctx, block);
    ag_pool_tensor_release(ctx, rows);
    ag_write_scalar(ctx, out, total);
    in[0] = hidden;
    in[1] = w_low ? weight_in : weight;
    in[2] = bias;
    hft_node *node = ag_record(ctx, op, lce_backward, out, bias ? 3 : 2, in, sizeof(lce_saved));
    if (node) *(lce_saved *)node->saved = (lce_saved){.dh = dh, .dw = dw, .db = db};
    if (count) *count = counted;
    return out;
}

/* ---------------------------------------------------------------- mse */

hft_tensor *hft_mse(hft_ctx *ctx, hft_tensor *input, hft_tensor *target, hft_reduction reduction) {
    const char *op = "mse";
    hft_tensor *in[2] = {input, target};
    if (!ag_check(ctx, op, 2, in) || !ag_check_float(ctx, op, input, "input") ||
        !ag_check_same_dtype(ctx, op, input, target))
        return NULL;
    char b1[160], b2[160];
    if (!hft_tensor_same_shape(input,
                               target)) /* torch broadcasts here with a warning; a mistake in practice */
        return ag_fail(ctx, HFT_EINVAL, "%s: input %s and target %s differ in shape (expected equal shapes)",
                       op, hft_tensor_describe(input, b1, sizeof b1),
                       hft_tensor_describe(target, b2, sizeof b2));
    if (reduction != HFT_REDUCE_MEAN && reduction != HFT_REDUCE_SUM)
        return ag_fail(ctx, HFT_EINVAL, "%s: unknown reduction %d (expected mean or sum)", op,
                       (int)reduction);
    /* not hot: composed, so both inputs get their gradients from the ops' own backward */
    hft_tensor *sq = hft_pow(ctx, hft_sub(ctx, input, target), 2.0);
    return reduction == HFT_REDUCE_SUM ? hft_sum(ctx, sq, 0, NULL, false) : hft_mean(ctx, sq, 0, NULL, false);
}
