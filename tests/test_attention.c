/* The fused attention op: f64 gradient checks for every masking mode, GQA, packed qkv views and dropout;
 * f32 forward and backward against a naive reference in doubles; the dropout draw, its determinism and
 * world-size invariance; memory that does not grow with T²; misuse messages; and a timing (printed). */
#include <time.h>

#include "kernels/cpu/philox.h"
#include "tests/gradcheck.h"
#include "tests/test_util.h"

static test_rng rng = {7};

static hft_tensor *input(hft_dtype dt, int ndim, const int64_t *shape, double lo, double hi) {
    hft_tensor *t = test_random(&rng, dt, ndim, shape, lo, hi);
    hft_tensor_set_requires_grad(t, true);
    return t;
}

static hft_tensor *ids(hft_dtype dt, int64_t B, int64_t T, const int64_t *v) {
    hft_tensor *t = hft_tensor_new(dt, 2, (int64_t[]){B, T});
    for (int64_t i = 0; i < B * T; i++) {
        if (dt == HFT_I64) ((int64_t *)hft_tensor_data(t))[i] = v[i];
        if (dt == HFT_I32) ((int32_t *)hft_tensor_data(t))[i] = (int32_t)v[i];
        if (dt == HFT_U8) ((uint8_t *)hft_tensor_data(t))[i] = (uint8_t)v[i];
    }
    return t;
}

/* ---------------------------------------------------------------- f64 gradient checks */

typedef enum layout { SEPARATE, PACKED, SELF, STRIDED_D } layout;

typedef struct attn_case {
    const char *name;
    int64_t B, Tq, Tk, Hq, Hkv, D;
    hft_attn_opts opts;
    layout layout;
} attn_case;

static hft_tensor *f_attn(hft_ctx *ctx, hft_tensor **in, void *user) {
    const attn_case *c = user;
    hft_ctx_set_rng(ctx, 1234, 7, 1, 0);
    switch (c->layout) {
    case PACKED: { /* [B, T, 3, H, D] split on dim 2, as a fused qkv projection gives it */
        hft_tensor *p[3];
        for (int i = 0; i < 3; i++) p[i] = hft_squeeze(ctx, hft_narrow(ctx, in[0], 2, i, 1), 2);
        return hft_attention(ctx, p[0], p[1], p[2], &c->opts);
    }
    case SELF:
        return hft_attention(ctx, in[0], in[0], in[0], &c->opts);
    case STRIDED_D: /* q stored [B, T, D, H]: D is not unit-stride */
        return hft_attention(ctx, hft_transpose(ctx, in[0], 2, 3), in[1], in[2], &c->opts);
    default:
        return hft_attention(ctx, in[0], in[1], in[2], &c->opts);
    }
}

static void run_gradcheck(const attn_case *c) {
    hft_tensor *in[3] = {NULL, NULL, NULL};
    int n = 3;
    if (c->layout == PACKED) {
        in[0] = input(HFT_F64, 5, (int64_t[]){c->B, c->Tq, 3, c->Hq, c->D}, -1, 1);
        n = 1;
    } else if (c->layout == SELF) {
        in[0] = input(HFT_F64, 4, (int64_t[]){c->B, c->Tq, c->Hq, c->D}, -1, 1);
        n = 1;
    } else {
        if (c->layout == STRIDED_D)
            in[0] = input(HFT_F64, 4, (int64_t[]){c->B, c->Tq, c->D, c->Hq}, -1, 1);
        else
            in[0] = input(HFT_F64, 4, (int64_t[]){c->B, c->Tq, c->Hq, c->D}, -1, 1);
        in[1] = input(HFT_F64, 4, (int64_t[]){c->B, c->Tk, c->Hkv, c->D}, -1, 1);
        in[2] = input(HFT_F64, 4, (int64_t[]){c->B, c->Tk, c->Hkv, c->D}, -1, 1);
    }
    gradcheck(c->name, f_attn, n, in, (void *)c);
    for (int i = 0; i < n; i++) hft_tensor_free(in[i]);
}

TEST(gradcheck_plain_causal_and_bottom_right) {
    attn_case cases[] = {
        {"no mask", 2, 5, 6, 2, 2, 3, {0}, SEPARATE},
        {"causal", 2, 6, 6, 2, 2, 3, {.causal = true}, SEPARATE},
        {"causal Tq < Tk (bottom-right)", 2, 3, 7, 2, 2, 4, {.causal = true}, SEPARATE},
        {"explicit scale", 1, 4, 5, 2, 1, 3, {.scale = 0.7}, SEPARATE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_gradcheck(&cases[i]);
}

TEST(gradcheck_key_padding_and_segments) {
    /* batch row 1 is left-padded by two keys; the mask is i64 as HF's attention_mask */
    hft_tensor *km = ids(HFT_I64, 2, 6, (int64_t[]){1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1});
    hft_tensor *seg = ids(HFT_I32, 2, 6, (int64_t[]){0, 0, 0, 1, 1, 2, 5, 5, 7, 7, 7, 7});
    hft_tensor *qseg = ids(HFT_I64, 2, 3, (int64_t[]){1, 1, 2, 5, 7, 7});
    attn_case cases[] = {
        {"key padding", 2, 6, 6, 2, 2, 3, {.key_mask = km}, SEPARATE},
        {"key padding causal", 2, 6, 6, 2, 2, 3, {.key_mask = km, .causal = true}, SEPARATE},
        {"segments", 2, 6, 6, 2, 2, 3, {.q_segments = seg}, SEPARATE},
        {"segments causal padded",
         2,
         6,
         6,
         2,
         1,
         3,
         {.q_segments = seg, .key_mask = km, .causal = true},
         SEPARATE},
        {"q and k segments", 2, 3, 6, 2, 2, 3, {.q_segments = qseg, .k_segments = seg}, SEPARATE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_gradcheck(&cases[i]);
    hft_tensor_free(km);
    hft_tensor_free(seg);
    hft_tensor_free(qseg);
}

TEST(gradcheck_grouped_query_heads) {
    attn_case cases[] = {
        {"GQA 2:1", 2, 5, 5, 4, 2, 3, {.causal = true}, SEPARATE},
        {"GQA 4:1", 2, 4, 5, 8, 2, 2, {0}, SEPARATE},
        {"MQA", 2, 5, 4, 3, 1, 3, {.causal = true}, SEPARATE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_gradcheck(&cases[i]);
}

TEST(gradcheck_views_packed_self_and_strided) {
    attn_case cases[] = {
        {"packed qkv views", 2, 5, 5, 2, 2, 3, {.causal = true}, PACKED},
        {"attention(x, x, x)", 2, 4, 4, 2, 2, 3, {0}, SELF},
        {"q with strided D", 2, 4, 5, 3, 3, 3, {0}, STRIDED_D},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_gradcheck(&cases[i]);
}

TEST(gradcheck_dropout) {
    hft_tensor *km = ids(HFT_I64, 2, 7, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1});
    attn_case cases[] = {
        {"dropout 0.3", 2, 6, 7, 2, 2, 3, {.dropout_p = 0.3, .dropout_site = 3}, SEPARATE},
        {"dropout 0.3 causal padded GQA",
         2,
         6,
         7,
         4,
         2,
         3,
         {.dropout_p = 0.3, .dropout_site = 3, .causal = true, .key_mask = km},
         SEPARATE},
        {"dropout packed", 2, 5, 5, 2, 2, 3, {.dropout_p = 0.3, .dropout_site = 9}, PACKED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_gradcheck(&cases[i]);
    hft_tensor_free(km);
}

/* A row with no visible key (a padded-out batch row; the top rows of causal with Tq > Tk) outputs zeros
 * and gets zero, finite gradients. */
TEST(fully_masked_rows_give_zeros) {
    hft_tensor *km = ids(HFT_U8, 2, 4, (int64_t[]){1, 1, 0, 1, 0, 0, 0, 0});
    attn_case c = {"fully masked", 2, 6, 4, 2, 2, 3, {.causal = true, .key_mask = km}, SEPARATE};
    run_gradcheck(&c);

    hft_tensor *q = input(HFT_F64, 4, (int64_t[]){2, 6, 2, 3}, -1, 1);
    hft_tensor *k = input(HFT_F64, 4, (int64_t[]){2, 4, 2, 3}, -1, 1);
    hft_tensor *v = input(HFT_F64, 4, (int64_t[]){2, 4, 2, 3}, -1, 1);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *o = hft_attention(ctx, q, k, v, &c.opts);
    CHECK(o != NULL, "%s", hft_ctx_error(ctx));
    if (o) {
        double ov[2 * 6 * 2 * 3];
        hft_tensor_to_f64(o, ov);
        int bad = 0;
        for (int b = 0; b < 2; b++)
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) {
                    double x = ov[((b * 6 + i) * 2) * 3 + j];
                    bool masked = b == 1 || i < 2; /* causal: key j visible iff j <= i - 2 */
                    bad += !isfinite(x) || (masked && x != 0.0) || (!masked && x == 0.0);
                }
        CHECK(bad == 0, "%d output values wrong (masked rows must be exactly 0, others finite)", bad);
        hft_tensor *seed = hft_tensor_new(HFT_F64, 4, o->shape);
        for (int64_t i = 0; i < hft_tensor_numel(seed); i++) ((double *)hft_tensor_data(seed))[i] = 1.0;
        CHECK_OK(hft_backward(ctx, o, seed), ctx);
        hft_tensor *xs[3] = {q, k, v};
        for (int t = 0; t < 3; t++) {
            const hft_tensor *g = hft_tensor_grad(xs[t]);
            CHECK(g != NULL, "input %d has no gradient", t);
            if (!g) continue;
            int64_t n = hft_tensor_numel(g);
            const double *gv = hft_tensor_data(g);
            int nonfinite = 0;
            for (int64_t i = 0; i < n; i++) nonfinite += !isfinite(gv[i]);
            CHECK(nonfinite == 0, "input %d: %d non-finite gradient values", t, nonfinite);
        }
        const double *gq = hft_tensor_data(hft_tensor_grad(q));
        int nz = 0;
        for (int i = 0; i < 6 * 2 * 3; i++) nz += gq[6 * 2 * 3 + i] != 0.0; /* batch row 1 */
        CHECK(nz == 0, "fully masked batch row has %d nonzero dq values", nz);
        hft_tensor_free(seed);
    }
    hft_ctx_free(ctx);
    hft_tensor_free(q);
    hft_tensor_free(k);
    hft_tensor_free(v);
    hft_tensor_free(km);
}

/* ---------------------------------------------------------------- f32 against a naive reference */

typedef struct ref_cfg {
    int64_t B, Tq, Tk, Hq, Hkv, D;
    bool causal;
    const int64_t *key_mask, *q_seg, *k_seg; /* [B, Tk], [B, Tq], [B, Tk] or NULL */
    double p;
    hft_rng_key key;
    int64_t sample0;
} ref_cfg;

/* Explicit scores, masks, softmax and products in doubles, one row at a time. All arrays [B, T, H, D]. */
static void reference(const ref_cfg *c, const double *q, const double *k, const double *v, const double *dO,
                      double *o, double *dq, double *dk, double *dv) {
    const int64_t B = c->B, Tq = c->Tq, Tk = c->Tk, Hq = c->Hq, Hkv = c->Hkv, D = c->D, rep = Hq / Hkv;
    const double scale = 1.0 / sqrt((double)D), keep = 1.0 / (1.0 - c->p);
    memset(o, 0, sizeof(double) * (size_t)(B * Tq * Hq * D));
    memset(dq, 0, sizeof(double) * (size_t)(B * Tq * Hq * D));
    memset(dk, 0, sizeof(double) * (size_t)(B * Tk * Hkv * D));
    memset(dv, 0, sizeof(double) * (size_t)(B * Tk * Hkv * D));
    double *P = malloc(sizeof(double) * (size_t)Tk), *Z = malloc(sizeof(double) * (size_t)Tk);
    double *dP = malloc(sizeof(double) * (size_t)Tk);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < Hq; h++)
            for (int64_t i = 0; i < Tq; i++) {
                const int64_t g = h / rep;
                const double *qi = q + ((b * Tq + i) * Hq + h) * D, *doi = dO + ((b * Tq + i) * Hq + h) * D;
                double m = -INFINITY;
                for (int64_t j = 0; j < Tk; j++) {
                    bool vis = !c->causal || j <= i + (Tk - Tq);
                    if (c->key_mask) vis = vis && c->key_mask[b * Tk + j] != 0;
                    if (c->q_seg) vis = vis && c->q_seg[b * Tq + i] == c->k_seg[b * Tk + j];
                    double s = 0;
                    const double *kj = k + ((b * Tk + j) * Hkv + g) * D;
                    for (int64_t d = 0; d < D; d++) s += qi[d] * kj[d];
                    P[j] = vis ? s * scale : -INFINITY;
                    m = P[j] > m ? P[j] : m;
                    Z[j] = c->p > 0 ? (philox_keep(&c->key, c->sample0 + b, (uint64_t)((h * Tq + i) * Tk + j),
                                                   (float)c->p)
                                           ? keep
                                           : 0.0)
                                    : 1.0;
                }
                if (m == -INFINITY) continue; /* no visible key: zeros */
                double l = 0;
                for (int64_t j = 0; j < Tk; j++) l += P[j] = exp(P[j] - m);
                double delta = 0;
                for (int64_t j = 0; j < Tk; j++) {
                    P[j] /= l;
                    const double *vj = v + ((b * Tk + j) * Hkv + g) * D;
                    double *oi = o + ((b * Tq + i) * Hq + h) * D;
                    double dp = 0;
                    for (int64_t d = 0; d < D; d++) {
                        oi[d] += P[j] * Z[j] * vj[d];
                        dp += doi[d] * vj[d];
                    }
                    dP[j] = dp * Z[j];
                    delta += P[j] * dP[j];
                }
                for (int64_t j = 0; j < Tk; j++) {
                    const double ds = P[j] * (dP[j] - delta);
                    const double *kj = k + ((b * Tk + j) * Hkv + g) * D;
                    double *dqi = dq + ((b * Tq + i) * Hq + h) * D, *dkj = dk + ((b * Tk + j) * Hkv + g) * D;
                    double *dvj = dv + ((b * Tk + j) * Hkv + g) * D;
                    for (int64_t d = 0; d < D; d++) {
                        dqi[d] += scale * ds * kj[d];
                        dkj[d] += scale * ds * qi[d];
                        dvj[d] += P[j] * Z[j] * doi[d];
                    }
                }
            }
    free(P);
    free(Z);
    free(dP);
}

static hft_tensor *tensor_of(const ref_cfg *c, const int64_t *v, int64_t T) {
    return v ? ids(HFT_I64, c->B, T, v) : NULL;
}

/* Runs the op in f32 (backward twice, so the second adds into the first) and compares with the
 * reference: forward, and each gradient doubled. */
static void compare_with_reference(const char *name, const ref_cfg *c) {
    const int64_t nq = c->B * c->Tq * c->Hq * c->D, nk = c->B * c->Tk * c->Hkv * c->D;
    hft_tensor *q = input(HFT_F32, 4, (int64_t[]){c->B, c->Tq, c->Hq, c->D}, -2, 2);
    hft_tensor *k = input(HFT_F32, 4, (int64_t[]){c->B, c->Tk, c->Hkv, c->D}, -2, 2);
    hft_tensor *v = input(HFT_F32, 4, (int64_t[]){c->B, c->Tk, c->Hkv, c->D}, -1, 1);
    hft_tensor *dO = test_random(&rng, HFT_F32, 4, q->shape, -1, 1);
    double *buf = malloc(sizeof(double) * (size_t)(4 * nq + 4 * nk));
    double *qd = buf, *kd = qd + nq, *vd = kd + nk, *dOd = vd + nk, *o = dOd + nq, *dq = o + nq,
           *dk = dq + nq, *dv = dk + nk;
    hft_tensor_to_f64(q, qd);
    hft_tensor_to_f64(k, kd);
    hft_tensor_to_f64(v, vd);
    hft_tensor_to_f64(dO, dOd);
    reference(c, qd, kd, vd, dOd, o, dq, dk, dv);

    hft_tensor *km = tensor_of(c, c->key_mask, c->Tk), *qs = tensor_of(c, c->q_seg, c->Tq),
               *ks = tensor_of(c, c->k_seg, c->Tk);
    hft_attn_opts opts = {.causal = c->causal,
                          .key_mask = km,
                          .q_segments = qs,
                          .k_segments = ks,
                          .dropout_p = c->p,
                          .dropout_site = c->key.site};
    hft_ctx *ctx = hft_ctx_new(NULL);
    for (int rep = 0; rep < 2; rep++) {
        hft_ctx_reset(ctx);
        hft_ctx_set_rng(ctx, c->key.seed, c->key.step, c->key.micro_step, c->sample0);
        hft_tensor *out = hft_attention(ctx, q, k, v, &opts);
        CHECK(out != NULL, "%s: %s", name, hft_ctx_error(ctx));
        if (!out) break;
        if (rep == 0) {
            char what[160];
            snprintf(what, sizeof what, "%s: output", name);
            test_tensor_close(what, out, o, 1e-4, 1e-4);
        }
        CHECK_OK(hft_backward(ctx, out, dO), ctx);
    }
    for (int64_t i = 0; i < nq; i++) dq[i] *= 2;
    for (int64_t i = 0; i < nk; i++) dk[i] *= 2, dv[i] *= 2;
    char what[160];
    snprintf(what, sizeof what, "%s: dq (accumulated twice)", name);
    test_tensor_close(what, hft_tensor_grad(q), dq, 1e-4, 1e-4);
    snprintf(what, sizeof what, "%s: dk (accumulated twice)", name);
    test_tensor_close(what, hft_tensor_grad(k), dk, 1e-4, 1e-4);
    snprintf(what, sizeof what, "%s: dv (accumulated twice)", name);
    test_tensor_close(what, hft_tensor_grad(v), dv, 1e-4, 1e-4);
    hft_ctx_free(ctx);
    hft_tensor_free(q);
    hft_tensor_free(k);
    hft_tensor_free(v);
    hft_tensor_free(dO);
    hft_tensor_free(km);
    hft_tensor_free(qs);
    hft_tensor_free(ks);
    free(buf);
}

TEST(f32_matches_reference_causal_padded_gqa) {
    int64_t mask[2 * 53];
    for (int j = 0; j < 53; j++) mask[j] = j != 17, mask[53 + j] = j >= 9; /* a hole; left padding */
    ref_cfg c = {.B = 2, .Tq = 37, .Tk = 53, .Hq = 6, .Hkv = 2, .D = 24, .causal = true, .key_mask = mask};
    compare_with_reference("B2 Tq37 Tk53 Hq6 Hkv2 D24 causal padded", &c);
}

/* Several query and key tiles, segments with their own key ids, padding and dropout at once. */
TEST(f32_matches_reference_many_tiles_segments_dropout) {
    enum { B = 2, TQ = 130, TK = 300 };
    static int64_t mask[B * TK], qs[B * TQ], ks[B * TK];
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < TK; j++) {
            mask[b * TK + j] = b == 1 ? j >= 40 : 1;
            ks[b * TK + j] = j / (b ? 70 : 110);
        }
        for (int i = 0; i < TQ; i++) qs[b * TQ + i] = (i + TK - TQ) / (b ? 70 : 110); /* bottom-aligned */
    }
    ref_cfg c = {.B = B,
                 .Tq = TQ,
                 .Tk = TK,
                 .Hq = 4,
                 .Hkv = 1,
                 .D = 16,
                 .causal = true,
                 .key_mask = mask,
                 .q_seg = qs,
                 .k_seg = ks,
                 .p = 0.2,
                 .key = {.seed = 99, .step = 3, .micro_step = 2, .site = 5},
                 .sample0 = 6};
    compare_with_reference("B2 Tq130 Tk300 MQA D16 causal segments padded dropout", &c);
    ref_cfg plain = {.B = 1, .Tq = 300, .Tk = 300, .Hq = 2, .Hkv = 2, .D = 8};
    compare_with_reference("B1 T300 H2 D8 no mask", &plain);
}

/* ---------------------------------------------------------------- dropout draw */

/* With q = 0 every probability is 1/Tk, and with v the identity (D = Tk) output element (i, j) is
 * Z_ij / (Tk (1 - p)): the output shows the keep mask itself. */
static hft_tensor *mask_probe(hft_ctx *ctx, int64_t B, int64_t T, int64_t H, double p, uint16_t site) {
    hft_tensor *q = hft_zeros(ctx, HFT_F32, 4, (int64_t[]){B, T, H, T});
    hft_tensor *k = hft_zeros(ctx, HFT_F32, 4, (int64_t[]){B, T, H, T});
    hft_tensor *v = hft_zeros(ctx, HFT_F32, 4, (int64_t[]){B, T, H, T});
    if (!q || !k || !v) return NULL;
    float *vd = hft_tensor_data(v);
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < T; j++)
            for (int64_t h = 0; h < H; h++) vd[((b * T + j) * H + h) * T + j] = 1.0f;
    hft_attn_opts o = {.dropout_p = p, .dropout_site = site};
    return hft_attention(ctx, q, k, v, &o);
}

TEST(dropout_draws_philox_keep_with_fraction_p) {
    const int64_t B = 2, T = 64, H = 4;
    const double p = 0.3;
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_ctx_set_rng(ctx, 2024, 11, 3, 5);
    hft_tensor *o = mask_probe(ctx, B, T, H, p, 4);
    CHECK(o != NULL, "%s", hft_ctx_error(ctx));
    if (o) {
        const float *od = hft_tensor_data(o);
        const float kept = (float)(1.0 / ((double)T * (1 - p)));
        hft_rng_key key = {.seed = 2024, .step = 11, .micro_step = 3, .site = 4};
        long dropped = 0, mismatched = 0, n = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < T; i++)
                for (int64_t h = 0; h < H; h++)
                    for (int64_t j = 0; j < T; j++, n++) {
                        float x = od[((b * T + i) * H + h) * T + j];
                        int keep = philox_keep(&key, 5 + b, (uint64_t)((h * T + i) * T + j), (float)p);
                        dropped += x == 0.0f;
                        mismatched += keep ? fabsf(x - kept) > 1e-6f * kept : x != 0.0f;
                    }
        double frac = (double)dropped / (double)n;
        CHECK(fabs(frac - p) < 0.01, "dropped fraction %.4f, expected %.2f", frac, p);
        CHECK(mismatched == 0, "%ld of %ld elements differ from philox_keep", mismatched, n);
    }
    hft_ctx_free(ctx);
}

static bool same_values(const hft_tensor *a, const hft_tensor *b, int64_t offset_b) {
    return memcmp(hft_tensor_data(a), (const char *)hft_tensor_data(b) + offset_b, hft_tensor_nbytes(a)) == 0;
}

TEST(dropout_is_keyed_and_world_size_invariant) {
    const int64_t T = 24, H = 2;
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_ctx_set_rng(ctx, 5, 1, 0, 0);
    hft_tensor *a = mask_probe(ctx, 4, T, H, 0.25, 1);
    hft_tensor *a2 = mask_probe(ctx, 4, T, H, 0.25, 1);
    hft_tensor *other_site = mask_probe(ctx, 4, T, H, 0.25, 2);
    CHECK(a && a2 && other_site, "%s", hft_ctx_error(ctx));
    if (a && a2 && other_site) {
        CHECK(same_values(a, a2, 0), "the same key gave different outputs");
        CHECK(!same_values(a, other_site, 0), "a different call site gave the same mask");
        /* two ranks of 2 rows each, at global sample offsets 0 and 2, make the 4-row batch's mask */
        hft_tensor *r0 = mask_probe(ctx, 2, T, H, 0.25, 1);
        hft_ctx_set_rng(ctx, 5, 1, 0, 2);
        hft_tensor *r1 = mask_probe(ctx, 2, T, H, 0.25, 1);
        CHECK(r0 && r1, "%s", hft_ctx_error(ctx));
        if (r0 && r1) {
            CHECK(same_values(r0, a, 0), "rank 0 (rows 0-1, sample0 0) differs from the full batch");
            CHECK(same_values(r1, a, (int64_t)hft_tensor_nbytes(r1)),
                  "rank 1 (rows 2-3, sample0 2) differs from the full batch");
        }
    }
    hft_ctx_free(ctx);
}

/* ---------------------------------------------------------------- threads, memory, misuse */

/* Gradients are summed in a fixed order: 1 and 2 threads give the same bits. */
TEST(backward_is_independent_of_thread_count) {
    const int64_t shape_q[4] = {2, 100, 4, 32}, shape_kv[4] = {2, 100, 2, 32};
    hft_tensor *q = input(HFT_F32, 4, shape_q, -1, 1), *k = input(HFT_F32, 4, shape_kv, -1, 1),
               *v = input(HFT_F32, 4, shape_kv, -1, 1);
    hft_tensor *dO = test_random(&rng, HFT_F32, 4, shape_q, -1, 1);
    int threads = hft_threads_get();
    hft_tensor *g[2][3] = {{NULL}};
    hft_attn_opts opts = {.causal = true, .dropout_p = 0.1};
    for (int run = 0; run < 2; run++) {
        hft_threads_set(run == 0 ? 1 : 2);
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_tensor *xs[3] = {q, k, v};
        for (int t = 0; t < 3; t++) hft_tensor_zero_grad(xs[t]);
        hft_tensor *out = hft_attention(ctx, q, k, v, &opts);
        CHECK_OK(out ? hft_backward(ctx, out, dO) : hft_ctx_status(ctx), ctx);
        for (int t = 0; t < 3; t++) {
            const hft_tensor *gr = hft_tensor_grad(xs[t]);
            g[run][t] = gr ? hft_tensor_from_data(HFT_F32, 4, gr->shape, hft_tensor_data(gr)) : NULL;
        }
        hft_ctx_free(ctx);
    }
    hft_threads_set(threads);
    for (int t = 0; t < 3; t++) {
        CHECK(g[0][t] && g[1][t] && same_values(g[0][t], g[1][t], 0),
              "gradient %d differs between 1 and 2 threads", t);
        hft_tensor_free(g[0][t]);
        hft_tensor_free(g[1][t]);
    }
    hft_tensor_free(q);
    hft_tensor_free(k);
    hft_tensor_free(v);
    hft_tensor_free(dO);
}

TEST(memory_does_not_grow_with_t_squared) {
    const int64_t B = 1, T = 1024, H = 4, D = 64;
    const int64_t shape[4] = {B, T, H, D};
    hft_tensor *q = input(HFT_F32, 4, shape, -1, 1), *k = input(HFT_F32, 4, shape, -1, 1),
               *v = input(HFT_F32, 4, shape, -1, 1);
    hft_tensor *dO = test_random(&rng, HFT_F32, 4, shape, -1, 1);
    hft_ctx *ctx = hft_ctx_new(&(hft_ctx_options){.arena_bytes = (size_t)1 << 20});
    hft_attn_opts opts = {.causal = true};
    hft_tensor *out = hft_attention(ctx, q, k, v, &opts);
    CHECK_OK(out ? hft_backward(ctx, out, dO) : hft_ctx_status(ctx), ctx);
    hft_memory_stats st;
    hft_ctx_memory(ctx, &st);
    const size_t scores = (size_t)(B * H * T * T) * 4;
    printf(
        "  attention B1 H4 T1024 D64 f32 fwd+bwd: arena peak %.2f MiB, pool peak %.2f MiB (scores would be "
        "%.1f MiB)\n",
        st.arena_peak / 1048576.0, st.pool_peak / 1048576.0, scores / 1048576.0);
    CHECK(st.arena_peak < scores / 4, "arena peak %zu bytes, not below a quarter of %zu", st.arena_peak,
          scores);
    hft_ctx_free(ctx);
    hft_tensor_free(q);
    hft_tensor_free(k);
    hft_tensor_free(v);
    hft_tensor_free(dO);
}

static void expect_error(hft_ctx *ctx, hft_tensor *q, hft_tensor *k, hft_tensor *v, const hft_attn_opts *o,
                         const char *text) {
    hft_ctx_reset(ctx);
    hft_tensor *out = hft_attention(ctx, q, k, v, o);
    CHECK(out == NULL, "expected an error containing \"%s\"", text);
    CHECK(strstr(hft_ctx_error(ctx), text) != NULL, "message \"%s\" lacks \"%s\"", hft_ctx_error(ctx), text);
}

TEST(misuse_is_reported) {
    hft_tensor *q6 = hft_tensor_new(HFT_F32, 4, (int64_t[]){2, 5, 6, 8});
    hft_tensor *kv4 = hft_tensor_new(HFT_F32, 4, (int64_t[]){2, 7, 4, 8});
    hft_tensor *kv2 = hft_tensor_new(HFT_F32, 4, (int64_t[]){2, 7, 2, 8});
    hft_tensor *kv2d = hft_tensor_new(HFT_F32, 4, (int64_t[]){2, 7, 2, 6});
    hft_tensor *kv64 = hft_tensor_new(HFT_F64, 4, (int64_t[]){2, 7, 2, 8});
    hft_tensor *mask_bad = hft_tensor_new(HFT_I64, 2, (int64_t[]){2, 5});
    hft_tensor *mask_f = hft_tensor_new(HFT_F32, 2, (int64_t[]){2, 7});
    hft_tensor *seg = hft_tensor_new(HFT_I32, 2, (int64_t[]){2, 5});
    hft_ctx *ctx = hft_ctx_new(NULL);
    expect_error(ctx, q6, kv4, kv4, NULL, "6 query heads are not a multiple of 4 key/value heads");
    expect_error(ctx, q6, kv2d, kv2d, NULL, "head dims differ");
    expect_error(ctx, q6, kv2, kv2d, NULL, "differ");
    expect_error(ctx, q6, kv64, kv64, NULL, "dtypes differ");
    expect_error(ctx, q6, kv2, kv2, &(hft_attn_opts){.key_mask = mask_bad},
                 "key_mask is i64[2, 5], expected [2, 7]");
    expect_error(ctx, q6, kv2, kv2, &(hft_attn_opts){.key_mask = mask_f}, "must be an integer tensor");
    expect_error(ctx, q6, kv2, kv2, &(hft_attn_opts){.q_segments = seg}, "needs Tq == Tk");
    expect_error(ctx, q6, kv2, kv2, &(hft_attn_opts){.dropout_p = 1.0}, "dropout_p = 1");
    expect_error(ctx, kv2, q6, q6, NULL, "not a multiple");
    hft_ctx_reset(ctx);
    CHECK(hft_attention(ctx, q6, kv2, kv2, NULL) != NULL, "a valid call after errors failed: %s",
          hft_ctx_error(ctx));
    hft_ctx_free(ctx);
    hft_tensor *all[] = {q6, kv4, kv2, kv2d, kv64, mask_bad, mask_f, seg};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) hft_tensor_free(all[i]);
}

/* ---------------------------------------------------------------- timing (printed, never asserted) */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

TEST(timing_forward_backward) {
    const int64_t shape[4] = {4, 256, 12, 64};
    hft_tensor *q = input(HFT_F32, 4, shape, -1, 1), *k = input(HFT_F32, 4, shape, -1, 1),
               *v = input(HFT_F32, 4, shape, -1, 1);
    hft_tensor *dO = test_random(&rng, HFT_F32, 4, shape, -1, 1);
    int threads = hft_threads_get();
    hft_threads_set(2);
    hft_ctx *ctx = hft_ctx_new(NULL);
    for (int causal = 0; causal < 2; causal++) {
        hft_attn_opts opts = {.causal = causal};
        double best_f = 1e9, best_fb = 1e9;
        for (int it = 0; it < 6; it++) {
            hft_ctx_reset(ctx);
            double t0 = now_s();
            hft_tensor *out = hft_attention(ctx, q, k, v, &opts);
            double t1 = now_s();
            if (!out || hft_backward(ctx, out, dO) != HFT_OK) break;
            double t2 = now_s();
            if (it > 0) {
                best_f = t1 - t0 < best_f ? t1 - t0 : best_f;
                best_fb = t2 - t0 < best_fb ? t2 - t0 : best_fb;
            }
        }
        printf("  attention B4 T256 H12 D64 f32 %s, 2 threads: forward %.2f ms, forward+backward %.2f ms\n",
               causal ? "causal" : "full", best_f * 1e3, best_fb * 1e3);
    }
    CHECK_OK(hft_ctx_status(ctx), ctx);
    hft_ctx_free(ctx);
    hft_threads_set(threads);
    hft_tensor_free(q);
    hft_tensor_free(k);
    hft_tensor_free(v);
    hft_tensor_free(dO);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"gradcheck_plain_causal_and_bottom_right", gradcheck_plain_causal_and_bottom_right},
        {"gradcheck_key_padding_and_segments", gradcheck_key_padding_and_segments},
        {"gradcheck_grouped_query_heads", gradcheck_grouped_query_heads},
        {"gradcheck_views_packed_self_and_strided", gradcheck_views_packed_self_and_strided},
        {"gradcheck_dropout", gradcheck_dropout},
        {"fully_masked_rows_give_zeros", fully_masked_rows_give_zeros},
        {"f32_matches_reference_causal_padded_gqa", f32_matches_reference_causal_padded_gqa},
        {"f32_matches_reference_many_tiles_segments_dropout",
         f32_matches_reference_many_tiles_segments_dropout},
        {"dropout_draws_philox_keep_with_fraction_p", dropout_draws_philox_keep_with_fraction_p},
        {"dropout_is_keyed_and_world_size_invariant", dropout_is_keyed_and_world_size_invariant},
        {"backward_is_independent_of_thread_count", backward_is_independent_of_thread_count},
        {"memory_does_not_grow_with_t_squared", memory_does_not_grow_with_t_squared},
        {"misuse_is_reported", misuse_is_reported},
        {"timing_forward_backward", timing_forward_backward},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
