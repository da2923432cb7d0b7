/* Fused scaled-dot-product attention: checks shapes and masks, converts the masks to the kernels' types,
 * runs the fused kernel (no B×H×Tq×Tk tensor is ever made) and, in backward, writes dQ, dK and dV
 * straight into their gradients' strided views (q, k, v are often views of one packed qkv tensor). */
#include "autograd/internal.h"

#include <math.h>
#include <string.h>

typedef struct attn_saved {
    hft_attn_args args; /* sizes, masks, scale, dropout key (as drawn in forward); data pointers unset */
    hft_tensor *lse;
    hft_dtype low; /* autocast: dO is rounded to it in backward, as q, k, v were in forward */
} attn_saved;

/* The kernel reads rows of D values with a GEMM leading dimension of the time stride. */
static bool rows_usable(const hft_tensor *t) {
    int64_t D = t->shape[3];
    return (t->stride[3] == 1 || D == 1) && (t->shape[1] <= 1 || t->stride[1] >= D) && t->stride[0] >= 0 &&
           t->stride[2] >= 0;
}

static void set_inputs(hft_attn_args *a, const hft_tensor *q, const hft_tensor *k, const hft_tensor *v) {
    a->q = hft_tensor_data(q);
    a->k = hft_tensor_data(k);
    a->v = hft_tensor_data(v);
    a->q_sb = q->stride[0], a->q_st = q->stride[1], a->q_sh = q->stride[2];
    a->k_sb = k->stride[0], a->k_st = k->stride[1], a->k_sh = k->stride[2];
    a->v_sb = v->stride[0], a->v_st = v->stride[1], a->v_sh = v->stride[2];
}

static int64_t int_at(const hft_tensor *t, int64_t i, int64_t j) {
    const char *p = (const char *)hft_tensor_data(t) +
                    (size_t)(i * t->stride[0] + j * t->stride[1]) * hft_dtype_size(t->dtype);
    switch (t->dtype) {
    case HFT_I32:
        return *(const int32_t *)p;
    case HFT_I64:
        return *(const int64_t *)p;
    default:
        return *(const uint8_t *)p;
    }
}

/* Checks a [B, T] integer tensor named `what`; false (error recorded) when it does not fit. */
static bool check_ids(hft_ctx *ctx, const hft_tensor *t, const char *what, int64_t B, int64_t T) {
    hft_tensor *in[1] = {(hft_tensor *)t};
    if (!ag_check(ctx, "attention", 1, in)) return false;
    char buf[128];
    if (t->dtype != HFT_I32 && t->dtype != HFT_I64 && t->dtype != HFT_U8) {
        ag_fail(ctx, HFT_EINVAL, "attention: %s must be an integer tensor (i32, i64 or u8), got %s%s", what,
                hft_tensor_describe(t, buf, sizeof buf),
                hft_dtype_is_float(t->dtype) ? " (pass the 0/1 attention_mask, not an additive float mask)"
                                             : "");
        return false;
    }
    if (t->ndim != 2 || t->shape[0] != B || t->shape[1] != T) {
        ag_fail(ctx, HFT_EINVAL, "attention: %s is %s, expected [%lld, %lld] ([batch, %s])", what,
                hft_tensor_describe(t, buf, sizeof buf), (long long)B, (long long)T,
                strcmp(what, "q_segments") == 0 ? "query length" : "key length");
        return false;
    }
    return true;
}

/* A mask the host can read with int_at: `t` itself on the CPU; on a device, a contiguous copy read back into
 * host arena memory, described by *hv and *hs (masks are [B, T]: small). NULL with the error recorded. */
static const hft_tensor *host_view(hft_ctx *ctx, const hft_tensor *t, hft_tensor *hv, hft_storage *hs) {
    if (!ctx->kernels->dev) return t;
    hft_tensor *c = hft_contiguous(ctx, (hft_tensor *)t);
    const void *data = c ? ag_host_data(ctx, c) : NULL;
    if (!data) return NULL;
    *hv = *c;
    *hs = *c->storage;
    hs->data = (void *)data;
    hv->storage = hs;
    hv->offset = 0;
    return hv;
}

static uint8_t *key_mask_u8(hft_ctx *ctx, const hft_tensor *m, int64_t B, int64_t Tk) {
    hft_tensor hv;
    hft_storage hs;
    uint8_t *out = ag_host_alloc(ctx, (size_t)(B * Tk) + 1);
    if (!out || !(m = host_view(ctx, m, &hv, &hs))) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < Tk; j++) out[b * Tk + j] = int_at(m, b, j) != 0;
    return ag_upload(ctx, out, (size_t)(B * Tk) + 1);
}

static int32_t *segments_i32(hft_ctx *ctx, const hft_tensor *s, const char *what, int64_t B, int64_t T) {
    hft_tensor hv;
    hft_storage hs;
    int32_t *out = ag_host_alloc(ctx, sizeof(int32_t) * (size_t)(B * T + 1));
    if (!out || !(s = host_view(ctx, s, &hv, &hs))) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) {
            int64_t v = int_at(s, b, t);
            if (v < INT32_MIN || v > INT32_MAX) {
                ag_fail(ctx, HFT_EINVAL, "attention: %s[%lld, %lld] = %lld is outside the i32 range", what,
                        (long long)b, (long long)t, (long long)v);
                return NULL;
            }
            out[b * T + t] = (int32_t)v;
        }
    return ag_upload(ctx, out, sizeof(int32_t) * (size_t)(B * T + 1));
}

/* ---------------------------------------------------------------- backward */

/* A gradient destination the kernel can write with strides, or a pool temporary added in afterwards. */
typedef struct attn_dst {
    ag_grad g;
    bool active;
    hft_tensor *tmp;
} attn_dst;

static bool dst_begin(hft_ctx *ctx, hft_tensor *x, attn_dst *d, const attn_dst *others, int n_others) {
    memset(d, 0, sizeof *d);
    if (!x->requires_grad) return true;
    if (!ag_grad_begin(ctx, x, AG_STRIDED, &d->g)) return ctx->status == HFT_OK;
    d->active = true;
    bool usable = rows_usable(d->g.dst);
    /* the same tensor passed twice (attention(x, x, x)): one kernel cannot write both gradients into it */
    for (int i = 0; i < n_others; i++)
        if (others[i].active && hft_tensor_data(others[i].g.dst) == hft_tensor_data(d->g.dst)) usable = false;
    if (!usable) {
        d->tmp = ag_pool_tensor(ctx, x->dtype, x->ndim, x->shape);
        if (!d->tmp) return false;
    }
    return true;
}

static void dst_args(const attn_dst *d, void **p, int64_t *sb, int64_t *st, int64_t *sh, bool *acc) {
    if (!d->active) return;
    const hft_tensor *t = d->tmp ? d->tmp : d->g.dst;
    *p = hft_tensor_data(t);
    *sb = t->stride[0], *st = t->stride[1], *sh = t->stride[2];
    *acc = d->tmp ? false : d->g.accumulate;
}

static void dst_end(hft_ctx *ctx, attn_dst *d) {
    if (!d->active) return;
    if (d->tmp) {
        if (ctx->status == HFT_OK) ag_copy_into(ctx, d->g.dst, d->tmp, d->g.accumulate);
        ag_pool_tensor_release(ctx, d->tmp);
    }
    ag_grad_end(ctx, &d->g);
}

/* Runs a kernel with its scratch borrowed from the arena and handed back at once. */
static void run_kernel(hft_ctx *ctx, void (*fn)(const hft_attn_args *), hft_attn_args *a, hft_dtype dt,
                       bool backward) {
    hft_arena_mark mark = hft_ctx_mark(ctx);
    a->scratch = ag_alloc(ctx, ctx->kernels->attn_scratch_bytes(a, hft_dtype_size(dt), backward));
    if (a->scratch) fn(a);
    hft_ctx_release(ctx, mark);
    a->scratch = NULL;
}

static void attention_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const attn_saved *s = node->saved;
    hft_tensor *q = node->in[0], *k = node->in[1], *v = node->in[2];
    hft_dtype dt = q->dtype;
    void (*bwd)(const hft_attn_args *) = AG_KERNEL(ctx, attn_bwd, dt, "attention backward");
    if (!bwd) return;
    hft_attn_args a = s->args;
    set_inputs(&a, q, k, v);
    a.o = hft_tensor_data(node->out);
    a.lse = hft_tensor_data(s->lse);
    hft_tensor *gtmp = NULL;
    if (!hft_tensor_is_contiguous(gy) || s->low != HFT_F32) {
        gtmp = ag_pool_tensor(ctx, gy->dtype, gy->ndim, gy->shape);
        if (!gtmp) return;
        if (s->low != HFT_F32)
            ag_round_into(ctx, gtmp, gy, s->low);
        else
            ag_copy_into(ctx, gtmp, gy, false);
        gy = gtmp;
    }
    a.dout = hft_tensor_data(gy);
    attn_dst d[3];
    memset(d, 0, sizeof d);
    if (dst_begin(ctx, q, &d[0], d, 0) && dst_begin(ctx, k, &d[1], d, 1) && dst_begin(ctx, v, &d[2], d, 2)) {
        dst_args(&d[0], &a.dq, &a.dq_sb, &a.dq_st, &a.dq_sh, &a.accumulate_dq);
        dst_args(&d[1], &a.dk, &a.dk_sb, &a.dk_st, &a.dk_sh, &a.accumulate_dk);
        dst_args(&d[2], &a.dv, &a.dv_sb, &a.dv_st, &a.dv_sh, &a.accumulate_dv);
        if (a.dq || a.dk || a.dv) run_kernel(ctx, bwd, &a, dt, true);
    }
    for (int i = 0; i < 3; i++) dst_end(ctx, &d[i]); /* after a failure: releases without copying */
    ag_pool_tensor_release(ctx, gtmp);
}

/* ---------------------------------------------------------------- forward */

hft_tensor *hft_attention(hft_ctx *ctx, hft_tensor *q, hft_tensor *k, hft_tensor *v,
                          const hft_attn_opts *opts) {
    static const hft_attn_opts defaults = {0};
    if (!opts) opts = &defaults;
    hft_tensor *in[3] = {q, k, v};
    if (!ag_check(ctx, "attention", 3, in) || !ag_check_float(ctx, "attention", q, "q") ||
        !ag_check_same_dtype(ctx, "attention", q, k) || !ag_check_same_dtype(ctx, "attention", q, v))
        return NULL;
    hft_dtype low = q->dtype == HFT_F32 ? ag_autocast_low(ctx, "attention") : HFT_F32;
    if (low != HFT_F32) { /* autocast: q, k, v in low precision; the kernel accumulates in f32 */
        q = hft_autocast_round(ctx, q, low);
        k = hft_autocast_round(ctx, k, low);
        v = hft_autocast_round(ctx, v, low);
        if (!q || !k || !v) return NULL;
        in[0] = q, in[1] = k, in[2] = v;
    }
    char bq[128], bk[128], bv[128];
    hft_tensor_describe(q, bq, sizeof bq);
    hft_tensor_describe(k, bk, sizeof bk);
    hft_tensor_describe(v, bv, sizeof bv);
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return ag_fail(ctx, HFT_EINVAL,
                       "attention: expected q [B, Tq, Hq, D] and k, v [B, Tk, Hkv, D], got q %s, k %s, v %s",
                       bq, bk, bv);
    const int64_t B = q->shape[0], Tq = q->shape[1], Hq = q->shape[2], D = q->shape[3];
    const int64_t Tk = k->shape[1], Hkv = k->shape[2];
    if (k->shape[0] != B || v->shape[0] != B)
        return ag_fail(ctx, HFT_EINVAL, "attention: batch sizes differ: q %s, k %s, v %s", bq, bk, bv);
    if (v->shape[1] != Tk || v->shape[2] != Hkv)
        return ag_fail(ctx, HFT_EINVAL, "attention: k %s and v %s differ in key length or heads", bk, bv);
    if (k->shape[3] != D || v->shape[3] != D)
        return ag_fail(ctx, HFT_EINVAL, "attention: head dims differ: q %s, k %s, v %s (D must match)", bq,
                       bk, bv);
    if (D < 1 || Hkv < 1 || Hq % Hkv != 0)
        return ag_fail(ctx, HFT_EINVAL,
                       "attention: %lld query heads are not a multiple of %lld key/value heads (q %s, k %s)",
                       (long long)Hq, (long long)Hkv, bq, bk);
    const double p = opts->dropout_p;
    if (!(p >= 0.0 && p < 1.0))
        return ag_fail(ctx, HFT_EINVAL, "attention: dropout_p = %g, expected 0 <= p < 1", p);
    if (opts->k_segments && !opts->q_segments)
        return ag_fail(ctx, HFT_EINVAL, "attention: k_segments given without q_segments");
    if (opts->key_mask && !check_ids(ctx, opts->key_mask, "key_mask", B, Tk)) return NULL;
    if (opts->q_segments && !check_ids(ctx, opts->q_segments, "q_segments", B, Tq)) return NULL;
    if (opts->k_segments && !check_ids(ctx, opts->k_segments, "k_segments", B, Tk)) return NULL;
    if (opts->q_segments && !opts->k_segments && Tq != Tk)
        return ag_fail(ctx, HFT_EINVAL,
                       "attention: q_segments without k_segments needs Tq == Tk, got Tq %lld, Tk %lld",
                       (long long)Tq, (long long)Tk);
    void (*fwd)(const hft_attn_args *) = AG_KERNEL(ctx, attn_fwd, q->dtype, "attention");
    if (!fwd) return NULL;

    /* rows the kernel cannot read by GEMM (D not unit-stride, overlapping time steps): copy, on the tape */
    if (!rows_usable(q)) q = hft_contiguous(ctx, q);
    if (!rows_usable(k)) k = hft_contiguous(ctx, k);
    if (!rows_usable(v)) v = hft_contiguous(ctx, v);
    if (!q || !k || !v) return NULL;

    hft_attn_args a = {.batch = B,
                       .tq = Tq,
                       .tk = Tk,
                       .hq = Hq,
                       .hkv = Hkv,
                       .dim = D,
                       .scale = opts->scale != 0.0 ? opts->scale : 1.0 / sqrt((double)D),
                       .causal = opts->causal,
                       .dropout_p = p,
                       .dropout_key = {.seed = ctx->rng_seed,
                                       .step = ctx->rng_step,
                                       .micro_step = ctx->rng_micro,
                                       .site = opts->dropout_site},
                       .sample0 = ctx->rng_sample0};
    if (opts->key_mask && !(a.key_mask = key_mask_u8(ctx, opts->key_mask, B, Tk))) return NULL;
    if (opts->q_segments) {
        int32_t *qs = segments_i32(ctx, opts->q_segments, "q_segments", B, Tq);
        if (!qs) return NULL;
        a.q_segments = qs;
        a.k_segments = qs;
        if (opts->k_segments && !(a.k_segments = segments_i32(ctx, opts->k_segments, "k_segments", B, Tk)))
            return NULL;
    }
    hft_tensor *out = ag_new(ctx, q->dtype, 4, (int64_t[]){B, Tq, Hq, D});
    hft_tensor *lse = ag_new(ctx, q->dtype, 3, (int64_t[]){B, Hq, Tq});
    if (!out || !lse) return NULL;
    in[0] = q, in[1] = k, in[2] = v;
    hft_node *node = ag_record(ctx, "attention", attention_backward, out, 3, in, sizeof(attn_saved));
    if (node) {
        attn_saved *s = node->saved;
        s->low = low;
        s->args = a;
        s->lse = lse;
    }
    if (hft_tensor_numel(out) == 0) return out;
    set_inputs(&a, q, k, v);
    a.o = hft_tensor_data(out);
    a.lse = hft_tensor_data(lse);
    run_kernel(ctx, fwd, &a, q->dtype, false);
    return ctx->status == HFT_OK ? out : NULL;
}
