/* The nn op families: softmax / log_softmax, layer_norm / rms_norm, embedding and rope. f64 gradient
 * checks of every option, f32 results against plain-C double references at odd sizes, thread-count
 * determinism of the summed gradients, and the messages of misuse. */
#include <time.h>

#include "tests/gradcheck.h"
#include "tests/test_util.h"

static test_rng rng = {7};

static hft_tensor *input(hft_dtype dt, int ndim, const int64_t *shape, double lo, double hi, bool grad) {
    hft_tensor *t = test_random(&rng, dt, ndim, shape, lo, hi);
    hft_tensor_set_requires_grad(t, grad);
    return t;
}

static void free_all(int n, hft_tensor **t) {
    for (int i = 0; i < n; i++) hft_tensor_free(t[i]);
}

/* The values of a tensor (or of a gradient; NULL reads as zeros) as a malloc'd f64 array. */
static double *values(const hft_tensor *t, long n) {
    double *v = calloc((size_t)(n ? n : 1), sizeof(double));
    if (t) hft_tensor_to_f64(t, v);
    return v;
}

static hft_tensor *i64_tensor(int ndim, const int64_t *shape, const int64_t *data) {
    return hft_tensor_from_data(HFT_I64, ndim, shape, data);
}

/* ================================================================ softmax */

typedef struct sm_case {
    bool log;
    int dim;
} sm_case;

static hft_tensor *f_softmax(hft_ctx *ctx, hft_tensor **in, void *user) {
    const sm_case *c = user;
    return c->log ? hft_log_softmax(ctx, in[0], c->dim) : hft_softmax(ctx, in[0], c->dim);
}

static hft_tensor *f_softmax_transposed(hft_ctx *ctx, hft_tensor **in, void *user) {
    const sm_case *c = user;
    hft_tensor *t = hft_transpose(ctx, in[0], 0, 2);
    return c->log ? hft_log_softmax(ctx, t, c->dim) : hft_softmax(ctx, t, c->dim);
}

TEST(softmax_gradcheck_every_dim) {
    int dims[] = {0, 1, -1};
    for (int lg = 0; lg < 2; lg++)
        for (int k = 0; k < 3; k++) {
            sm_case c = {lg, dims[k]};
            hft_tensor *in[1] = {input(HFT_F64, 3, (int64_t[]){3, 4, 5}, -3, 3, true)};
            char name[64];
            snprintf(name, sizeof name, "%s dim %d", lg ? "log_softmax" : "softmax", dims[k]);
            gradcheck(name, f_softmax, 1, in, &c);
            gradcheck(name, f_softmax_transposed, 1, in, &c); /* a strided input, copied first */
            free_all(1, in);
        }
}

/* Reference over the middle axis of [outer, n, inner] in double. */
static void ref_softmax(bool is_log, const double *x, const double *g, double *y, double *dx, long outer,
                        long n, long inner) {
    for (long o = 0; o < outer; o++)
        for (long c = 0; c < inner; c++) {
            long base = o * n * inner + c;
            double m = -INFINITY, s = 0, t = 0;
            for (long j = 0; j < n; j++) m = fmax(m, x[base + j * inner]);
            for (long j = 0; j < n; j++) s += exp(x[base + j * inner] - m);
            for (long j = 0; j < n; j++) {
                long i = base + j * inner;
                y[i] = is_log ? x[i] - m - log(s) : exp(x[i] - m) / s;
            }
            for (long j = 0; j < n; j++)
                t += is_log ? g[base + j * inner] : g[base + j * inner] * y[base + j * inner];
            for (long j = 0; j < n; j++) {
                long i = base + j * inner;
                dx[i] = is_log ? g[i] - exp(y[i]) * t : y[i] * (g[i] - t);
            }
        }
}

TEST(softmax_f32_matches_double_reference) {
    /* odd sizes; the second shape's dim 0 spans several column blocks of the kernel */
    const long shapes[2][2] = {{33, 77}, {7, 1100}};
    for (int k = 0; k < 4 * 2; k++) {
        const long R = shapes[k / 4][0], C = shapes[k / 4][1], N = R * C;
        int lg = k & 1, dim = (k >> 1) & 1;
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_tensor *x = input(HFT_F32, 2, (int64_t[]){R, C}, -8, 8, true);
        hft_tensor *g = input(HFT_F32, 2, (int64_t[]){R, C}, -1, 1, false);
        hft_tensor *y = lg ? hft_log_softmax(ctx, x, dim) : hft_softmax(ctx, x, dim);
        CHECK_OK(hft_backward(ctx, y, g), ctx);
        double *xv = values(x, N), *gv = values(g, N), *yr = values(NULL, N), *dr = values(NULL, N);
        ref_softmax(lg, xv, gv, yr, dr, dim ? R : 1, dim ? C : R, dim ? 1 : C);
        char what[96];
        snprintf(what, sizeof what, "%s [%ld, %ld] dim %d forward", lg ? "log_softmax" : "softmax", R, C,
                 dim);
        test_tensor_close(what, y, yr, 1e-5, 1e-6);
        snprintf(what, sizeof what, "%s [%ld, %ld] dim %d dx", lg ? "log_softmax" : "softmax", R, C, dim);
        test_tensor_close(what, hft_tensor_grad(x), dr, 1e-4, 1e-5);
        free(xv), free(gv), free(yr), free(dr);
        hft_tensor_free(x), hft_tensor_free(g);
        hft_ctx_free(ctx);
    }
}

TEST(softmax_of_an_all_minus_inf_row_is_nan_as_torch) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    float v[6] = {-INFINITY, -INFINITY, -INFINITY, 0.0f, 1.0f, 2.0f};
    hft_tensor *x = hft_from_data(ctx, HFT_F32, 2, (int64_t[]){2, 3}, v);
    double y[6];
    hft_tensor_to_f64(hft_softmax(ctx, x, -1), y);
    CHECK(isnan(y[0]) && isnan(y[1]) && isnan(y[2]), "masked row: %g %g %g", y[0], y[1], y[2]);
    CHECK(fabs(y[3] + y[4] + y[5] - 1) < 1e-6, "the other row sums to 1");
    hft_ctx_free(ctx);
}

/* ================================================================ layer norm and RMS norm */

typedef struct norm_case {
    bool rms;
} norm_case;

static hft_tensor *f_norm(hft_ctx *ctx, hft_tensor **in, void *user) {
    const norm_case *c = user;
    return c->rms ? hft_rms_norm(ctx, in[0], in[1], 1e-5) : hft_layer_norm(ctx, in[0], in[1], in[2], 1e-5);
}

TEST(norm_gradcheck_with_and_without_affine) {
    for (int mode = 0; mode < 4; mode++) { /* bit 0: weight, bit 1: bias */
        hft_tensor *in[3] = {input(HFT_F64, 3, (int64_t[]){2, 3, 6}, -2, 2, true),
                             mode & 1 ? input(HFT_F64, 1, (int64_t[]){6}, 0.5, 1.5, true) : NULL,
                             mode & 2 ? input(HFT_F64, 1, (int64_t[]){6}, -1, 1, true) : NULL};
        norm_case c = {false};
        char name[64];
        snprintf(name, sizeof name, "layer_norm weight %d bias %d", mode & 1, mode >> 1);
        gradcheck(name, f_norm, 3, in, &c);
        free_all(3, in);
    }
    for (int w = 0; w < 2; w++) {
        hft_tensor *in[3] = {input(HFT_F64, 3, (int64_t[]){2, 3, 6}, -2, 2, true),
                             w ? input(HFT_F64, 1, (int64_t[]){6}, 0.5, 1.5, true) : NULL, NULL};
        norm_case c = {true};
        gradcheck(w ? "rms_norm weight" : "rms_norm", f_norm, 3, in, &c);
        free_all(3, in);
    }
}

/* Reference in double; w, b may be NULL. Writes y, dx, dw, db (sums over rows). */
static void ref_norm(bool rms, const double *x, const double *w, const double *b, const double *g, long R,
                     long C, double eps, double *y, double *dx, double *dw, double *db) {
    for (long c = 0; c < C; c++) dw[c] = db[c] = 0;
    for (long r = 0; r < R; r++) {
        const double *xr = x + r * C, *gr = g + r * C;
        double mean = 0, var = 0;
        if (!rms) {
            for (long c = 0; c < C; c++) mean += xr[c];
            mean /= (double)C;
        }
        for (long c = 0; c < C; c++) var += (xr[c] - mean) * (xr[c] - mean);
        double rstd = 1 / sqrt(var / (double)C + eps), sg = 0, sgx = 0;
        for (long c = 0; c < C; c++) {
            double xh = (xr[c] - mean) * rstd, gw = gr[c] * (w ? w[c] : 1);
            y[r * C + c] = xh * (w ? w[c] : 1) + (b ? b[c] : 0);
            sg += gw;
            sgx += gw * xh;
            dw[c] += gr[c] * xh;
            db[c] += gr[c];
        }
        for (long c = 0; c < C; c++) {
            double xh = (xr[c] - mean) * rstd, gw = gr[c] * (w ? w[c] : 1);
            dx[r * C + c] = rstd * (gw - (rms ? 0 : sg / (double)C) - xh * sgx / (double)C);
        }
    }
}

TEST(norm_f32_matches_double_reference) {
    const long R = 33, C = 77, N = R * C;
    for (int rms = 0; rms < 2; rms++) {
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_tensor *x = input(HFT_F32, 2, (int64_t[]){R, C}, -3, 5, true);
        hft_tensor *w = input(HFT_F32, 1, (int64_t[]){C}, 0.5, 1.5, true);
        hft_tensor *b = rms ? NULL : input(HFT_F32, 1, (int64_t[]){C}, -1, 1, true);
        hft_tensor *g = input(HFT_F32, 2, (int64_t[]){R, C}, -1, 1, false);
        hft_tensor *y = rms ? hft_rms_norm(ctx, x, w, 1e-6) : hft_layer_norm(ctx, x, w, b, 1e-5);
        CHECK_OK(hft_backward(ctx, y, g), ctx);
        double *xv = values(x, N), *wv = values(w, C), *bv = b ? values(b, C) : NULL, *gv = values(g, N);
        double *yr = values(NULL, N), *dxr = values(NULL, N), *dwr = values(NULL, C), *dbr = values(NULL, C);
        ref_norm(rms, xv, wv, bv, gv, R, C, rms ? 1e-6 : 1e-5, yr, dxr, dwr, dbr);
        const char *nm = rms ? "rms_norm" : "layer_norm";
        char what[96];
        snprintf(what, sizeof what, "%s forward", nm);
        test_tensor_close(what, y, yr, 1e-5, 1e-6);
        snprintf(what, sizeof what, "%s dx", nm);
        test_tensor_close(what, hft_tensor_grad(x), dxr, 1e-4, 1e-5);
        snprintf(what, sizeof what, "%s dweight", nm);
        test_tensor_close(what, hft_tensor_grad(w), dwr, 1e-4, 1e-5);
        if (b) test_tensor_close("layer_norm dbias", hft_tensor_grad(b), dbr, 1e-4, 1e-5);
        free(xv), free(wv), free(bv), free(gv), free(yr), free(dxr), free(dwr), free(dbr);
        hft_tensor_free(x), hft_tensor_free(w), hft_tensor_free(b), hft_tensor_free(g);
        hft_ctx_free(ctx);
    }
}

/* dweight and dbias of layer_norm over many row chunks, at 1 and 2 threads: the same bits. */
TEST(norm_weight_grad_is_bit_identical_across_thread_counts) {
    const long R = 1000, C = 77;
    hft_tensor *x = input(HFT_F32, 2, (int64_t[]){R, C}, -3, 3, false);
    hft_tensor *w = input(HFT_F32, 1, (int64_t[]){C}, 0.5, 1.5, true);
    hft_tensor *b = input(HFT_F32, 1, (int64_t[]){C}, -1, 1, true);
    hft_tensor *g = input(HFT_F32, 2, (int64_t[]){R, C}, -1, 1, false);
    int saved = hft_threads_get();
    float got[2][2][77];
    for (int k = 0; k < 2; k++) {
        hft_threads_set(k + 1);
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_tensor_zero_grad(w), hft_tensor_zero_grad(b);
        CHECK_OK(hft_backward(ctx, hft_layer_norm(ctx, x, w, b, 1e-5), g), ctx);
        memcpy(got[k][0], hft_tensor_data(hft_tensor_grad(w)), sizeof got[k][0]);
        memcpy(got[k][1], hft_tensor_data(hft_tensor_grad(b)), sizeof got[k][1]);
        hft_ctx_free(ctx);
    }
    hft_threads_set(saved);
    CHECK(memcmp(got[0][0], got[1][0], sizeof got[0][0]) == 0, "dweight differs between 1 and 2 threads");
    CHECK(memcmp(got[0][1], got[1][1], sizeof got[0][1]) == 0, "dbias differs between 1 and 2 threads");
    hft_tensor_free(x), hft_tensor_free(w), hft_tensor_free(b), hft_tensor_free(g);
}

/* ================================================================ embedding */

typedef struct emb_case {
    hft_tensor *ids, *mask; /* mask zeroes the outputs at padding_idx (see below) */
    int64_t padding_idx;
} emb_case;

/* torch's padding_idx gives the padding row no gradient although the forward reads it; a finite
 * difference sees that read, so the check multiplies those outputs by 0 and the two agree. */
static hft_tensor *f_embedding(hft_ctx *ctx, hft_tensor **in, void *user) {
    const emb_case *c = user;
    hft_tensor *y = hft_embedding(ctx, in[0], c->ids, c->padding_idx);
    return c->mask ? hft_mul(ctx, y, c->mask) : y;
}

TEST(embedding_gradcheck_repeated_ids_and_padding) {
    int64_t ids[10] = {1, 3, 3, 0, 2, 5, 3, 2, 1, 2};
    double mask[10];
    for (int i = 0; i < 10; i++) mask[i] = ids[i] == 2 ? 0 : 1;
    emb_case c = {i64_tensor(2, (int64_t[]){2, 5}, ids), NULL, -1};
    hft_tensor *in[1] = {input(HFT_F64, 2, (int64_t[]){6, 4}, -1, 1, true)};
    gradcheck("embedding", f_embedding, 1, in, &c);
    c.padding_idx = 2;
    c.mask = hft_tensor_from_data(HFT_F64, 3, (int64_t[]){2, 5, 1}, mask);
    gradcheck("embedding padding_idx", f_embedding, 1, in, &c);
    /* i32 ids take the same path */
    int32_t ids32[10];
    for (int i = 0; i < 10; i++) ids32[i] = (int32_t)ids[i];
    hft_tensor_free(c.ids);
    c.ids = hft_tensor_from_data(HFT_I32, 2, (int64_t[]){2, 5}, ids32);
    gradcheck("embedding i32 ids", f_embedding, 1, in, &c);
    hft_tensor_free(c.ids), hft_tensor_free(c.mask);
    free_all(1, in);
}

TEST(embedding_f32_matches_reference_and_skips_padding) {
    const long V = 50, D = 77, n = 33, pad = 7;
    int32_t ids[33];
    for (long i = 0; i < n; i++) ids[i] = (int32_t)((i * 13) % 11 + (i % 3 == 0 ? 0 : 5)); /* repeats */
    ids[4] = (int32_t)pad, ids[20] = (int32_t)pad;
    hft_tensor *w = input(HFT_F32, 2, (int64_t[]){V, D}, -1, 1, true);
    hft_tensor *g = input(HFT_F32, 3, (int64_t[]){3, 11, D}, -1, 1, false);
    hft_tensor *idt = hft_tensor_from_data(HFT_I32, 2, (int64_t[]){3, 11}, ids);
    double *wv = values(w, V * D), *gv = values(g, n * D);
    double *yr = values(NULL, n * D), *dwr = values(NULL, V * D);
    for (long i = 0; i < n; i++)
        for (long c = 0; c < D; c++) {
            yr[i * D + c] = wv[ids[i] * D + c];
            if (ids[i] != pad) dwr[ids[i] * D + c] += gv[i * D + c];
        }
    float got[2][50 * 77];
    int saved = hft_threads_get();
    for (int k = 0; k < 2; k++) {
        hft_threads_set(k + 1);
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_tensor_zero_grad(w);
        hft_tensor *y = hft_embedding(ctx, w, idt, pad);
        CHECK(y && y->ndim == 3 && y->shape[2] == D, "output shape");
        test_tensor_close("embedding forward", y, yr, 0, 0);
        CHECK_OK(hft_backward(ctx, y, g), ctx);
        test_tensor_close("embedding dweight", hft_tensor_grad(w), dwr, 1e-5, 1e-6);
        memcpy(got[k], hft_tensor_data(hft_tensor_grad(w)), sizeof got[k]);
        hft_ctx_free(ctx);
    }
    hft_threads_set(saved);
    CHECK(memcmp(got[0], got[1], sizeof got[0]) == 0, "dweight differs between 1 and 2 threads");
    for (long c = 0; c < D; c++)
        if (got[0][pad * D + c] != 0) {
            CHECK(false, "padding row has gradient %g at column %ld", got[0][pad * D + c], c);
            break;
        }
    free(wv), free(gv), free(yr), free(dwr);
    hft_tensor_free(w), hft_tensor_free(g), hft_tensor_free(idt);
}

/* ================================================================ rope */

typedef struct rope_case {
    hft_tensor *pos, *inv_freq;
    double scaling;
    int64_t start, heads; /* x is the narrow [start, start + heads) of a bigger heads dim */
} rope_case;

static hft_tensor *f_rope(hft_ctx *ctx, hft_tensor **in, void *user) {
    const rope_case *c = user;
    hft_tensor *x = hft_narrow(ctx, in[0], 2, c->start, c->heads);
    return hft_rope(ctx, x, c->pos, c->inv_freq, c->scaling);
}

static hft_tensor *inv_freq_of(hft_dtype dt, int64_t D, double base) {
    hft_tensor *t = hft_tensor_new(dt, 1, (int64_t[]){D / 2});
    for (int64_t i = 0; i < D / 2; i++) {
        /* transformers: 1 / base ** (arange(0, D, 2).float() / D), in f32 */
        double v = 1.0 / pow(base, (double)(2 * i) / (double)D);
        if (dt == HFT_F32)
            ((float *)hft_tensor_data(t))[i] = (float)(1.0f / powf((float)base, (float)(2 * i) / (float)D));
        else
            ((double *)hft_tensor_data(t))[i] = v;
    }
    return t;
}

TEST(rope_gradcheck_strided_input_and_offset_positions) {
    /* left padding: the first row starts two positions late, the second continues from a cache */
    int64_t pos[10] = {0, 0, 0, 1, 2, 3, 4, 5, 6, 7};
    double scalings[3] = {1.0, 0.7, 1.0};
    const char *names[3] = {"rope narrow", "rope narrow scaled", "rope whole"};
    for (int k = 0; k < 3; k++) {
        /* a narrow of the heads writes into part of a gradient (accumulating); the whole overwrites */
        rope_case c = {i64_tensor(2, (int64_t[]){2, 5}, pos), inv_freq_of(HFT_F64, 8, 10000.0), scalings[k],
                       k < 2 ? 1 : 0, k < 2 ? 3 : 6};
        hft_tensor *in[1] = {input(HFT_F64, 4, (int64_t[]){2, 5, 6, 8}, -1, 1, true)};
        gradcheck(names[k], f_rope, 1, in, &c);
        free_all(1, in);
        hft_tensor_free(c.pos), hft_tensor_free(c.inv_freq);
    }
}

TEST(rope_f32_matches_double_reference) {
    const long B = 2, T = 33, H = 3, D = 22, half = D / 2, N = B * T * H * D;
    int64_t pos[66];
    for (long i = 0; i < B * T; i++)
        pos[i] = i < T ? (i < 4 ? 0 : i - 4) : 1000 + i; /* padding, a far offset */
    hft_tensor *pt = i64_tensor(2, (int64_t[]){B, T}, pos);
    hft_tensor *inv = inv_freq_of(HFT_F32, D, 10000.0);
    const float *invf = hft_tensor_data(inv);
    const double scaling = 0.9;
    hft_tensor *big = input(HFT_F32, 4, (int64_t[]){B, T, H + 2, D}, -2, 2, true);
    hft_tensor *g = input(HFT_F32, 4, (int64_t[]){B, T, H, D}, -1, 1, false);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *x = hft_narrow(ctx, big, 2, 2, H);
    hft_tensor *y = hft_rope(ctx, x, pt, inv, scaling);
    CHECK_OK(hft_backward(ctx, y, g), ctx);
    double *bv = values(big, B * T * (H + 2) * D), *gv = values(g, N);
    double *yr = values(NULL, N), *dr = values(NULL, B * T * (H + 2) * D);
    for (long bt = 0; bt < B * T; bt++)
        for (long h = 0; h < H; h++)
            for (long i = 0; i < half; i++) {
                float th = (float)pos[bt] * invf[i]; /* the angle in f32, as transformers */
                double cs = cos((double)th) * scaling, sn = sin((double)th) * scaling;
                long xi = (bt * (H + 2) + h + 2) * D + i, oi = (bt * H + h) * D + i;
                double x1 = bv[xi], x2 = bv[xi + half], g1 = gv[oi], g2 = gv[oi + half];
                yr[oi] = x1 * cs - x2 * sn;
                yr[oi + half] = x2 * cs + x1 * sn;
                dr[xi] = g1 * cs + g2 * sn;
                dr[xi + half] = g2 * cs - g1 * sn;
            }
    test_tensor_close("rope forward", y, yr, 1e-5, 1e-6);
    test_tensor_close("rope dx (into the strided view's base)", hft_tensor_grad(big), dr, 1e-5, 1e-6);
    free(bv), free(gv), free(yr), free(dr);
    hft_tensor_free(pt), hft_tensor_free(inv), hft_tensor_free(big), hft_tensor_free(g);
    hft_ctx_free(ctx);
}

TEST(rope_positions_of_one_row_serve_the_whole_batch) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *x = input(HFT_F32, 4, (int64_t[]){3, 5, 2, 6}, -1, 1, false);
    hft_tensor *inv = inv_freq_of(HFT_F32, 6, 10000.0);
    int64_t one[5] = {4, 5, 6, 7, 8}, all[15];
    for (int i = 0; i < 15; i++) all[i] = one[i % 5];
    hft_tensor *p1 = i64_tensor(2, (int64_t[]){1, 5}, one), *p3 = i64_tensor(2, (int64_t[]){3, 5}, all);
    double want[180];
    hft_tensor_to_f64(hft_rope(ctx, x, p3, inv, 1.0), want);
    test_tensor_close("rope with [1, T] positions", hft_rope(ctx, x, p1, inv, 1.0), want, 0, 0);
    hft_tensor *all_t[] = {x, inv, p1, p3};
    free_all(4, all_t);
    hft_ctx_free(ctx);
}

/* ================================================================ gradients that accumulate */

/* Each op applied twice to the same input: the second backward adds into the first's gradient, which
 * takes the kernels' accumulate paths. */
static hft_tensor *f_twice(hft_ctx *ctx, hft_tensor **in, void *user) {
    int which = *(int *)user;
    hft_tensor *x = in[0], *w = in[1], *b = in[2];
    int64_t p1[6] = {0, 1, 2, 3, 4, 5}, p2[6] = {5, 0, 0, 7, 8, 9}, ids1[6] = {0, 1, 1, 3, 2, 0},
            ids2[6] = {3, 3, 1, 0, 0, 2};
    switch (which) {
    case 0:
        return hft_add(ctx, hft_softmax(ctx, x, -1), hft_log_softmax(ctx, x, 1));
    case 1:
        return hft_add(ctx, hft_layer_norm(ctx, x, w, b, 1e-5), hft_rms_norm(ctx, x, w, 1e-5));
    case 2:
        return hft_add(ctx,
                       hft_embedding(ctx, x, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){2, 3}, ids1), -1),
                       hft_embedding(ctx, x, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){2, 3}, ids2), -1));
    default: {
        hft_tensor *inv = hft_from_data(ctx, HFT_F64, 1, (int64_t[]){3}, (double[]){1.0, 0.1, 0.01});
        return hft_add(ctx, hft_rope(ctx, x, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){2, 3}, p1), inv, 1.0),
                       hft_rope(ctx, x, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){2, 3}, p2), inv, 0.5));
    }
    }
}

TEST(gradients_accumulate_when_an_input_is_used_twice) {
    const int64_t shapes[4][4] = {{3, 4, 5, 0}, {2, 3, 6, 0}, {4, 6, 0, 0}, {2, 3, 2, 6}};
    const int ndims[4] = {3, 3, 2, 4};
    const char *names[4] = {"softmax twice", "norms twice", "embedding twice", "rope twice"};
    for (int k = 0; k < 4; k++) {
        hft_tensor *in[3] = {input(HFT_F64, ndims[k], shapes[k], -2, 2, true),
                             k == 1 ? input(HFT_F64, 1, (int64_t[]){6}, 0.5, 1.5, true) : NULL,
                             k == 1 ? input(HFT_F64, 1, (int64_t[]){6}, -1, 1, true) : NULL};
        gradcheck(names[k], f_twice, 3, in, &k);
        free_all(3, in);
    }
}

/* ================================================================ misuse */

static void expect_error(hft_ctx *ctx, const hft_tensor *got, const char *const *words, int n) {
    CHECK(got == NULL && hft_ctx_status(ctx) == HFT_EINVAL, "expected NULL and EINVAL, status %d",
          (int)hft_ctx_status(ctx));
    for (int i = 0; i < n; i++)
        CHECK(strstr(hft_ctx_error(ctx), words[i]) != NULL, "message \"%s\" lacks \"%s\"", hft_ctx_error(ctx),
              words[i]);
    hft_ctx_reset(ctx);
}

TEST(misuse_returns_null_with_a_message) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *x = input(HFT_F32, 2, (int64_t[]){2, 4}, -1, 1, false);
    hft_tensor *w5 = input(HFT_F32, 1, (int64_t[]){5}, -1, 1, false);
    expect_error(ctx, hft_layer_norm(ctx, x, w5, NULL, 1e-5),
                 (const char *[]){"layer_norm: weight f32[5]", "expected [4]"}, 2);
    expect_error(ctx, hft_layer_norm(ctx, x, NULL, w5, 1e-5), (const char *[]){"layer_norm: bias f32[5]"}, 1);
    expect_error(ctx, hft_rms_norm(ctx, x, w5, 1e-5),
                 (const char *[]){"rms_norm: weight f32[5]", "expected [4]"}, 2);

    hft_tensor *emb = input(HFT_F32, 2, (int64_t[]){6, 3}, -1, 1, false);
    hft_tensor *ids = i64_tensor(2, (int64_t[]){2, 2}, (int64_t[]){1, 2, 9, 0});
    expect_error(ctx, hft_embedding(ctx, emb, ids, -1),
                 (const char *[]){"embedding: id 9 at position [1, 0]", "vocabulary of 6"}, 2);
    hft_tensor *neg = i64_tensor(1, (int64_t[]){3}, (int64_t[]){0, -1, 2});
    expect_error(ctx, hft_embedding(ctx, emb, neg, -1), (const char *[]){"id -1 at position [1]"}, 1);

    hft_tensor *q = input(HFT_F32, 4, (int64_t[]){1, 2, 1, 7}, -1, 1, false);
    hft_tensor *pos = i64_tensor(2, (int64_t[]){1, 2}, (int64_t[]){0, 1});
    hft_tensor *inv = inv_freq_of(HFT_F32, 6, 10000.0);
    expect_error(ctx, hft_rope(ctx, q, pos, inv, 1.0), (const char *[]){"rope: head_dim 7", "odd"}, 2);
    hft_tensor *q8 = input(HFT_F32, 4, (int64_t[]){1, 2, 1, 8}, -1, 1, false);
    expect_error(ctx, hft_rope(ctx, q8, pos, inv, 1.0), (const char *[]){"rope: inv_freq f32[3]", "f32[4]"},
                 2);

    hft_tensor *all[] = {x, w5, emb, ids, neg, q, pos, inv, q8};
    free_all(9, all);
    hft_ctx_free(ctx);
}

/* ================================================================ timing */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Not a benchmark (bench/ has those): a figure to notice a regression by eye. */
TEST(layer_norm_timing_1024x768) {
    const int64_t R = 1024, C = 768;
    hft_tensor *x = input(HFT_F32, 2, (int64_t[]){R, C}, -2, 2, true);
    hft_tensor *w = input(HFT_F32, 1, (int64_t[]){C}, 0.5, 1.5, true);
    hft_tensor *b = input(HFT_F32, 1, (int64_t[]){C}, -1, 1, true);
    hft_tensor *g = input(HFT_F32, 2, (int64_t[]){R, C}, -1, 1, false);
    hft_ctx *ctx = hft_ctx_new(NULL);
    double best_f = INFINITY, best_b = INFINITY;
    for (int it = 0; it < 12; it++) {
        hft_ctx_reset(ctx);
        double t0 = now_s();
        hft_tensor *y = hft_layer_norm(ctx, x, w, b, 1e-5);
        double t1 = now_s();
        CHECK_OK(hft_backward(ctx, y, g), ctx);
        double t2 = now_s();
        if (it >= 2) best_f = fmin(best_f, t1 - t0), best_b = fmin(best_b, t2 - t1);
    }
    printf("     layer_norm f32 [1024, 768], %d threads: forward %.3f ms, backward %.3f ms (best of 10)\n",
           hft_threads_get(), best_f * 1e3, best_b * 1e3);
    hft_ctx_free(ctx);
    hft_tensor_free(x), hft_tensor_free(w), hft_tensor_free(b), hft_tensor_free(g);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"softmax_gradcheck_every_dim", softmax_gradcheck_every_dim},
        {"softmax_f32_matches_double_reference", softmax_f32_matches_double_reference},
        {"softmax_of_an_all_minus_inf_row_is_nan_as_torch", softmax_of_an_all_minus_inf_row_is_nan_as_torch},
        {"norm_gradcheck_with_and_without_affine", norm_gradcheck_with_and_without_affine},
        {"norm_f32_matches_double_reference", norm_f32_matches_double_reference},
        {"norm_weight_grad_is_bit_identical_across_thread_counts",
         norm_weight_grad_is_bit_identical_across_thread_counts},
        {"embedding_gradcheck_repeated_ids_and_padding", embedding_gradcheck_repeated_ids_and_padding},
        {"embedding_f32_matches_reference_and_skips_padding",
         embedding_f32_matches_reference_and_skips_padding},
        {"rope_gradcheck_strided_input_and_offset_positions",
         rope_gradcheck_strided_input_and_offset_positions},
        {"rope_f32_matches_double_reference", rope_f32_matches_double_reference},
        {"rope_positions_of_one_row_serve_the_whole_batch", rope_positions_of_one_row_serve_the_whole_batch},
        {"gradients_accumulate_when_an_input_is_used_twice",
         gradients_accumulate_when_an_input_is_used_twice},
        {"misuse_returns_null_with_a_message", misuse_returns_null_with_a_message},
        {"layer_norm_timing_1024x768", layer_norm_timing_1024x768},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
