/* The loss ops and dropout: f64 gradient checks, f32 against a plain-C double reference, the fused
 * classifier against linear + cross_entropy (values, gradients, memory), dropout's mask (rate, keys,
 * world-size invariance) and the messages for misuse. */
#include <stdint.h>
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

/* Targets in [0, classes), every `ignore_every`-th one (from `ignore_from`) set to -100. */
static hft_tensor *targets_of(hft_dtype dt, int ndim, const int64_t *shape, int64_t classes, int ignore_every,
                              int ignore_from) {
    hft_tensor *t = test_random(&rng, dt, ndim, shape, 0, (double)classes);
    int64_t n = hft_tensor_numel(t);
    for (int64_t i = 0; ignore_every > 0 && i < n; i++) {
        if (i % ignore_every != ignore_from) continue;
        if (dt == HFT_I32)
            ((int32_t *)hft_tensor_data(t))[i] = -100;
        else
            ((int64_t *)hft_tensor_data(t))[i] = -100;
    }
    return t;
}

static int64_t target_at(const hft_tensor *t, int64_t i) {
    return t->dtype == HFT_I32 ? ((const int32_t *)hft_tensor_data(t))[i]
                               : ((const int64_t *)hft_tensor_data(t))[i];
}

static double seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* A tensor's values as f64, `like`'s element count (zeros where t is NULL: a gradient never written). */
static double *values_like(const hft_tensor *t, const hft_tensor *like) {
    int64_t n = hft_tensor_numel(like);
    double *v = calloc((size_t)(n ? n : 1), sizeof(double));
    if (t) hft_tensor_to_f64(t, v);
    return v;
}

static double *values(const hft_tensor *t) {
    return values_like(t, t);
}

/* ---------------------------------------------------------------- gradient checks (f64) */

typedef struct xent_case {
    hft_tensor *targets;
    hft_xent_opts opts;
    bool mean;
    int64_t expect_count;
} xent_case;

static hft_tensor *f_xent(hft_ctx *ctx, hft_tensor **in, void *user) {
    xent_case *c = user;
    if (c->mean) return hft_cross_entropy_mean(ctx, in[0], c->targets, c->opts);
    int64_t count = -1;
    hft_tensor *y = hft_cross_entropy(ctx, in[0], c->targets, c->opts, &count);
    CHECK(!y || count == c->expect_count, "count %lld, expected %lld", (long long)count,
          (long long)c->expect_count);
    return y;
}

TEST(cross_entropy_gradcheck) {
    struct {
        const char *name;
        int ndim;
        int64_t shape[3];
        hft_dtype tdt;
        double eps;
        int ignore_every;
        bool mean;
    } cases[] = {
        {"plain", 2, {5, 7}, HFT_I64, 0.0, 0, false},
        {"label smoothing 0.1", 2, {5, 7}, HFT_I64, 0.1, 0, false},
        {"ignored targets, i32", 2, {6, 5}, HFT_I32, 0.0, 3, false},
        {"ignored + smoothing, i32", 2, {6, 5}, HFT_I32, 0.1, 2, false},
        {"3-d logits", 3, {2, 3, 6}, HFT_I64, 0.0, 4, false},
        {"mean", 3, {2, 3, 6}, HFT_I64, 0.1, 4, true},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        int nd = cases[k].ndim;
        int64_t C = cases[k].shape[nd - 1];
        hft_tensor *x = input(HFT_F64, nd, cases[k].shape, -2, 2);
        xent_case c = {.targets =
                           targets_of(cases[k].tdt, nd - 1, cases[k].shape, C, cases[k].ignore_every, 1),
                       .opts = HFT_XENT_DEFAULTS,
                       .mean = cases[k].mean};
        c.opts.label_smoothing = cases[k].eps;
        for (int64_t i = 0; i < hft_tensor_numel(c.targets); i++)
            c.expect_count += target_at(c.targets, i) != -100;
        gradcheck(cases[k].name, f_xent, 1, &x, &c);
        hft_tensor_free(x);
        hft_tensor_free(c.targets);
    }
}

typedef struct lce_case {
    hft_tensor *targets;
    hft_xent_opts opts;
    bool w_transposed;
} lce_case;

static hft_tensor *f_lce(hft_ctx *ctx, hft_tensor **in, void *user) {
    lce_case *c = user;
    hft_tensor *w = c->w_transposed ? hft_transpose(ctx, in[1], 0, 1) : in[1];
    return hft_linear_cross_entropy(ctx, in[0], w, in[2], c->targets, c->opts, NULL);
}

TEST(linear_cross_entropy_gradcheck) {
    struct {
        const char *name;
        bool bias, transposed;
        double eps;
        const char *block_rows;
    } cases[] = {
        {"with bias", true, false, 0.0, NULL},
        {"without bias", false, false, 0.0, NULL},
        {"W a transposed view", true, true, 0.1, NULL},
        {"blocks of 2 rows", true, false, 0.1, "2"},
        {"blocks of 4 rows, transposed W, no bias", false, true, 0.0, "4"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        if (cases[k].block_rows) setenv("HFT_LCE_BLOCK_ROWS", cases[k].block_rows, 1);
        int64_t V = 6, D = 4;
        int64_t hs[3] = {2, 5, D};
        int64_t ws[2] = {V, D};
        if (cases[k].transposed) ws[0] = D, ws[1] = V;
        hft_tensor *in[3] = {input(HFT_F64, 3, hs, -1, 1), input(HFT_F64, 2, ws, -1, 1),
                             cases[k].bias ? input(HFT_F64, 1, (int64_t[]){V}, -1, 1) : NULL};
        lce_case c = {.targets = targets_of(HFT_I64, 2, hs, V, 4, 2),
                      .opts = HFT_XENT_DEFAULTS,
                      .w_transposed = cases[k].transposed};
        c.opts.label_smoothing = cases[k].eps;
        gradcheck(cases[k].name, f_lce, 3, in, &c);
        for (int i = 0; i < 3; i++) hft_tensor_free(in[i]);
        hft_tensor_free(c.targets);
        unsetenv("HFT_LCE_BLOCK_ROWS");
    }
}

static hft_tensor *f_mse(hft_ctx *ctx, hft_tensor **in, void *user) {
    return hft_mse(ctx, in[0], in[1], *(hft_reduction *)user);
}

TEST(mse_gradcheck) {
    hft_reduction reductions[2] = {HFT_REDUCE_MEAN, HFT_REDUCE_SUM};
    for (int k = 0; k < 2; k++) {
        hft_tensor *in[2] = {input(HFT_F64, 2, (int64_t[]){3, 5}, -1, 1),
                             input(HFT_F64, 2, (int64_t[]){3, 5}, -1, 1)};
        gradcheck(k ? "mse sum" : "mse mean", f_mse, 2, in, &reductions[k]);
        hft_tensor_free(in[0]);
        hft_tensor_free(in[1]);
    }
}

static hft_tensor *f_dropout(hft_ctx *ctx, hft_tensor **in, void *user) {
    (void)user;
    hft_ctx_set_rng(ctx, 1234, 7, 1, 3);
    return hft_dropout(ctx, in[0], 0.4, 5);
}

TEST(dropout_gradcheck) {
    hft_tensor *x = input(HFT_F64, 3, (int64_t[]){3, 4, 5}, -1, 1);
    gradcheck("dropout", f_dropout, 1, &x, NULL);
    hft_tensor_free(x);
}

/* ---------------------------------------------------------------- f32 against a double reference */

/* Σ loss over non-ignored rows; dx = g·(softmax - (1-ε)·onehot - ε/C), 0 on ignored rows. */
static double ref_xent(const double *x, const hft_tensor *targets, int64_t N, int64_t C, double eps, double g,
                       double *dx, int64_t *count) {
    double total = 0;
    *count = 0;
    for (int64_t r = 0; r < N; r++) {
        const double *row = x + r * C;
        double *d = dx + r * C;
        int64_t t = target_at(targets, r);
        if (t == -100) {
            for (int64_t c = 0; c < C; c++) d[c] = 0;
            continue;
        }
        (*count)++;
        double m = row[0], s = 0, sx = 0;
        for (int64_t c = 1; c < C; c++) m = row[c] > m ? row[c] : m;
        for (int64_t c = 0; c < C; c++) s += exp(row[c] - m), sx += row[c];
        double lse = m + log(s);
        total += (1 - eps) * (lse - row[t]) + eps * (lse - sx / (double)C);
        for (int64_t c = 0; c < C; c++)
            d[c] = g * (exp(row[c] - lse) - eps / (double)C - (c == t) * (1 - eps));
    }
    return total;
}

TEST(cross_entropy_f32_matches_double_reference) {
    int64_t N = 37, C = 101;
    hft_tensor *x = input(HFT_F32, 2, (int64_t[]){N, C}, -6, 6);
    double *xv = values(x), *want = malloc(sizeof(double) * (size_t)(N * C));
    hft_ctx *ctx = hft_ctx_new(NULL);
    for (int k = 0; k < 4; k++) {
        double eps = (k & 1) ? 0.1 : 0.0;
        hft_dtype tdt = (k & 2) ? HFT_I32 : HFT_I64;
        hft_tensor *t = targets_of(tdt, 1, (int64_t[]){N}, C, 5, 3);
        hft_xent_opts opts = HFT_XENT_DEFAULTS;
        opts.label_smoothing = eps;
        float g = 0.75f;
        int64_t want_count, count = -1;
        double want_loss = ref_xent(xv, t, N, C, eps, g, want, &want_count);
        hft_ctx_reset(ctx);
        hft_tensor_zero_grad(x);
        hft_tensor *loss = hft_cross_entropy(ctx, x, t, opts, &count);
        hft_tensor *gt = hft_from_data(ctx, HFT_F32, 0, NULL, &g);
        CHECK_OK(hft_backward(ctx, loss, gt), ctx);
        char what[96];
        snprintf(what, sizeof what, "loss sum (eps %g, %s)", eps, hft_dtype_name(tdt));
        test_tensor_close(what, loss, &want_loss, 1e-4, 0);
        snprintf(what, sizeof what, "dlogits (eps %g, %s)", eps, hft_dtype_name(tdt));
        test_tensor_close(what, hft_tensor_grad(x), want, 1e-5, 1e-6);
        CHECK(count == want_count, "count %lld, expected %lld", (long long)count, (long long)want_count);
        /* torch's reduction='mean' */
        hft_ctx_reset(ctx);
        hft_tensor *mean = hft_cross_entropy_mean(ctx, x, t, opts);
        double want_mean = want_loss / (double)want_count;
        test_tensor_close("mean", mean, &want_mean, 1e-5, 0);
        hft_tensor_free(t);
    }
    /* every target ignored: the sum is 0 and the count 0; the mean is NaN, as torch */
    hft_tensor *t = targets_of(HFT_I64, 1, (int64_t[]){N}, C, 1, 0);
    hft_ctx_reset(ctx);
    int64_t count = -1;
    hft_tensor *loss = hft_cross_entropy(ctx, x, t, HFT_XENT_DEFAULTS, &count);
    CHECK(loss && count == 0 && *(float *)hft_tensor_data(loss) == 0.0f, "all ignored: loss %g, count %lld",
          loss ? *(float *)hft_tensor_data(loss) : -1.0, (long long)count);
    hft_tensor *mean = hft_cross_entropy_mean(ctx, x, t, HFT_XENT_DEFAULTS);
    CHECK(mean && isnan(*(float *)hft_tensor_data(mean)), "all ignored: mean is not NaN");
    hft_tensor_free(t);
    hft_ctx_free(ctx);
    hft_tensor_free(x);
    free(xv);
    free(want);
}

/* ---------------------------------------------------------------- the fused classifier */

typedef struct lce_result {
    double loss;
    double *dh, *dw, *db;
    int64_t count;
    size_t peak; /* arena + pool peak bytes */
} lce_result;

static void lce_result_free(lce_result *r) {
    free(r->dh);
    free(r->dw);
    free(r->db);
}

/* Forward and backward of the fused op (fused) or cross_entropy(linear(...)), in a fresh context. */
static lce_result run_lce(bool fused, hft_tensor *h, hft_tensor *w, bool w_transposed, hft_tensor *b,
                          hft_tensor *t, hft_xent_opts opts) {
    lce_result r = {0};
    hft_tensor_zero_grad(h);
    hft_tensor_zero_grad(w);
    if (b) hft_tensor_zero_grad(b);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *wv = w_transposed ? hft_transpose(ctx, w, 0, 1) : w;
    hft_tensor *loss = fused ? hft_linear_cross_entropy(ctx, h, wv, b, t, opts, &r.count)
                             : hft_cross_entropy(ctx, hft_linear(ctx, h, wv, b), t, opts, &r.count);
    CHECK_OK(hft_backward(ctx, loss, NULL), ctx);
    if (loss) hft_tensor_to_f64(loss, &r.loss);
    r.dh = values_like(hft_tensor_grad(h), h);
    r.dw = values_like(hft_tensor_grad(w), w);
    r.db = b ? values_like(hft_tensor_grad(b), b) : NULL;
    hft_memory_stats ms;
    hft_ctx_memory(ctx, &ms);
    r.peak = ms.arena_peak + ms.pool_peak;
    hft_ctx_free(ctx);
    return r;
}

TEST(linear_cross_entropy_equals_unfused_f32) {
    int64_t N = 37, D = 24, V = 101;
    hft_tensor *h = input(HFT_F32, 2, (int64_t[]){N, D}, -1, 1);
    hft_tensor *b = input(HFT_F32, 1, (int64_t[]){V}, -1, 1);
    hft_tensor *t = targets_of(HFT_I32, 1, (int64_t[]){N}, V, 6, 1);
    hft_xent_opts opts = HFT_XENT_DEFAULTS;
    opts.label_smoothing = 0.1;
    for (int k = 0; k < 4; k++) {
        bool transposed = k & 1, with_bias = k & 2;
        hft_tensor *w = input(HFT_F32, 2, transposed ? (int64_t[]){D, V} : (int64_t[]){V, D}, -1, 1);
        hft_tensor *bias = with_bias ? b : NULL;
        lce_result want = run_lce(false, h, w, transposed, bias, t, opts);
        const char *blocks[2] = {NULL, "8"}; /* one block, then 5 blocks of 8 rows (the last of 5) */
        for (int j = 0; j < 2; j++) {
            if (blocks[j]) setenv("HFT_LCE_BLOCK_ROWS", blocks[j], 1);
            lce_result got = run_lce(true, h, w, transposed, bias, t, opts);
            unsetenv("HFT_LCE_BLOCK_ROWS");
            char what[128];
            snprintf(what, sizeof what, "%s W, %s bias, block rows %s", transposed ? "transposed" : "plain",
                     with_bias ? "with" : "no", blocks[j] ? blocks[j] : "default");
            test_close(what, &got.loss, &want.loss, 1, 1e-5, 0);
            test_close("dhidden", got.dh, want.dh, (long)(N * D), 1e-5, 1e-6);
            test_close("dweight", got.dw, want.dw, (long)(V * D), 1e-5, 1e-6);
            if (bias) test_close("dbias", got.db, want.db, (long)V, 1e-5, 1e-6);
            CHECK(got.count == want.count, "%s: count %lld vs %lld", what, (long long)got.count,
                  (long long)want.count);
            lce_result_free(&got);
        }
        lce_result_free(&want);
        hft_tensor_free(w);
    }
    hft_tensor_free(h);
    hft_tensor_free(b);
    hft_tensor_free(t);
}

TEST(linear_cross_entropy_never_holds_the_logits) {
    int64_t N = 256, V = 8192, D = 64;
    hft_tensor *h = input(HFT_F32, 2, (int64_t[]){N, D}, -1, 1);
    hft_tensor *w = input(HFT_F32, 2, (int64_t[]){V, D}, -0.1, 0.1);
    hft_tensor *t = targets_of(HFT_I64, 1, (int64_t[]){N}, V, 0, 0);
    /* at the default 32 MiB budget these logits (8 MiB) would be one block; force blocks of 32 rows */
    setenv("HFT_LCE_BLOCK_ROWS", "32", 1);
    lce_result fused = run_lce(true, h, w, false, NULL, t, HFT_XENT_DEFAULTS);
    unsetenv("HFT_LCE_BLOCK_ROWS");
    lce_result plain = run_lce(false, h, w, false, NULL, t, HFT_XENT_DEFAULTS);
    size_t logits = (size_t)(N * V) * sizeof(float);
    printf(
        "  linear_cross_entropy N %lld V %lld D %lld: peak %.2f MiB fused (32-row blocks), %.2f MiB unfused, "
        "logits %.2f MiB\n",
        (long long)N, (long long)V, (long long)D, fused.peak / 1048576.0, plain.peak / 1048576.0,
        logits / 1048576.0);
    CHECK(fused.peak < logits, "peak %zu bytes, the logits are %zu", fused.peak, logits);
    test_close("loss", &fused.loss, &plain.loss, 1, 1e-5, 0);
    test_close("dhidden", fused.dh, plain.dh, (long)(N * D), 1e-5, 1e-6);
    lce_result_free(&fused);
    lce_result_free(&plain);
    hft_tensor_free(h);
    hft_tensor_free(w);
    hft_tensor_free(t);
}

static double time_gemm(const hft_kernels *k, bool ta, bool tb, int64_t m, int64_t n, int64_t kk,
                        const float *a, const float *b, float *c) {
    hft_gemm_args g = {.trans_a = ta,
                       .trans_b = tb,
                       .m = m,
                       .n = n,
                       .k = kk,
                       .alpha = 1,
                       .beta = 0,
                       .a = a,
                       .lda = ta ? m : kk,
                       .b = b,
                       .ldb = tb ? kk : n,
                       .c = c,
                       .ldc = n,
                       .batch = 1};
    double t0 = seconds();
    k->gemm[HFT_F32](&g);
    return seconds() - t0;
}

/* A figure, not a pass/fail: the fused op's forward + backward against its three GEMMs alone. */
TEST(linear_cross_entropy_timing) {
    if (!getenv("HFT_TEST_TIMING")) { /* ~1.5 s on 2 cores: opt-in, to keep the suite fast */
        printf("  (timing skipped: set HFT_TEST_TIMING=1 to print it)\n");
        return;
    }
    int64_t N = 256, D = 768, V = 50257;
    hft_tensor *h = input(HFT_F32, 2, (int64_t[]){N, D}, -1, 1);
    hft_tensor *w = hft_tensor_new(HFT_F32, 2, (int64_t[]){V, D});
    float *wv = hft_tensor_data(w);
    for (int64_t i = 0; i < V * D; i++) wv[i] = (float)((i * 2654435761u) % 2001) * 1e-4f - 0.1f;
    hft_tensor_set_requires_grad(w, true);
    hft_tensor *t = targets_of(HFT_I64, 1, (int64_t[]){N}, V, 0, 0);
    hft_ctx *ctx = hft_ctx_new(NULL);
    double fused = 0;
    for (int run = 0; run < 2; run++) { /* the first run pays the page faults of the arena and pool */
        hft_ctx_reset(ctx);
        double t0 = seconds();
        hft_tensor *loss = hft_linear_cross_entropy(ctx, h, w, NULL, t, HFT_XENT_DEFAULTS, NULL);
        CHECK_OK(hft_backward(ctx, loss, NULL), ctx);
        fused = seconds() - t0;
    }
    hft_memory_stats ms;
    hft_ctx_memory(ctx, &ms);
    hft_ctx_free(ctx);
    const hft_kernels *k = hft_kernels_for(HFT_CPU);
    float *logits = malloc(sizeof(float) * (size_t)(N * V)), *dw = malloc(sizeof(float) * (size_t)(V * D));
    float *dh = malloc(sizeof(float) * (size_t)(N * D));
    memset(logits, 0, sizeof(float) * (size_t)(N * V)); /* touched, as the fused op's buffers are by now */
    memset(dw, 0, sizeof(float) * (size_t)(V * D));
    memset(dh, 0, sizeof(float) * (size_t)(N * D));
    const float *hv = hft_tensor_data(h);
    double g1 = time_gemm(k, false, true, N, V, D, hv, wv, logits);  /* logits = H Wᵀ */
    double g2 = time_gemm(k, false, false, N, D, V, logits, wv, dh); /* dH = dL W */
    double g3 = time_gemm(k, true, false, V, D, N, logits, hv, dw);  /* dW = dLᵀ H */
    printf("  linear_cross_entropy N %lld D %lld V %lld f32, %d threads: fwd+bwd %.1f ms; GEMMs %.1f + %.1f "
           "+ %.1f "
           "= %.1f ms (ratio %.2f); peak %.1f MiB (logits %.1f MiB)\n",
           (long long)N, (long long)D, (long long)V, hft_threads_get(), fused * 1e3, g1 * 1e3, g2 * 1e3,
           g3 * 1e3, (g1 + g2 + g3) * 1e3, fused / (g1 + g2 + g3), (ms.arena_peak + ms.pool_peak) / 1048576.0,
           (double)(N * V) * 4 / 1048576.0);
    free(logits);
    free(dw);
    free(dh);
    hft_tensor_free(h);
    hft_tensor_free(w);
    hft_tensor_free(t);
}

/* ---------------------------------------------------------------- dropout */

static hft_tensor *dropout_of(hft_ctx *ctx, hft_tensor *x, double p, uint16_t site, int64_t sample0) {
    hft_ctx_set_rng(ctx, 99, 12, 2, sample0);
    return hft_dropout(ctx, x, p, site);
}

TEST(dropout_mask_rate_and_keys) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    int64_t shape[2] = {64, 4096};
    hft_tensor *ones = hft_full(ctx, HFT_F32, 2, shape, 1.0);
    double p = 0.3;
    hft_tensor *y = dropout_of(ctx, ones, p, 1, 0);
    hft_tensor *same = dropout_of(ctx, ones, p, 1, 0);
    hft_tensor *other = dropout_of(ctx, ones, p, 2, 0);
    const float *yv = hft_tensor_data(y), *sv = hft_tensor_data(same), *ov = hft_tensor_data(other);
    int64_t n = shape[0] * shape[1], dropped = 0, bad = 0, differ_same = 0, differ_other = 0;
    float scale = 1.0f / (float)(1 - p);
    for (int64_t i = 0; i < n; i++) {
        dropped += yv[i] == 0;
        bad += yv[i] != 0 && yv[i] != scale;
        differ_same += yv[i] != sv[i];
        differ_other += yv[i] != ov[i];
    }
    double rate = (double)dropped / (double)n;
    CHECK(fabs(rate - p) < 0.005, "dropped fraction %g, expected %g", rate, p);
    CHECK(bad == 0, "%lld kept values are not 1/(1-p)", (long long)bad);
    CHECK(differ_same == 0, "same key: %lld elements differ", (long long)differ_same);
    CHECK(differ_other > n / 4, "another site: only %lld elements differ", (long long)differ_other);
    /* the layout of the stream: element e of row s is philox_keep(key, sample0 + s, e) */
    hft_rng_key key = {.seed = 99, .step = 12, .micro_step = 2, .site = 1};
    int64_t mismatch = 0;
    for (int64_t i = 0; i < n; i += 97)
        mismatch += (yv[i] != 0) != philox_keep(&key, i / shape[1], (uint64_t)(i % shape[1]), (float)p);
    CHECK(mismatch == 0, "%lld elements disagree with philox_keep", (long long)mismatch);
    hft_ctx_free(ctx);
}

TEST(dropout_world_size_invariance_and_backward) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    int64_t shape[3] = {4, 3, 1001}; /* a sample of 3003 elements: several tiles, a ragged last block */
    hft_tensor *x = test_random(&rng, HFT_F64, 3, shape, -1, 1);
    hft_tensor_set_requires_grad(x, true);
    hft_tensor *full = dropout_of(ctx, x, 0.25, 3, 0);
    hft_tensor *lo = dropout_of(ctx, hft_narrow(ctx, x, 0, 0, 2), 0.25, 3, 0);
    hft_tensor *hi = dropout_of(ctx, hft_narrow(ctx, x, 0, 2, 2), 0.25, 3, 2);
    int64_t per = 2 * 3 * 1001;
    const double *fv = hft_tensor_data(full), *lv = hft_tensor_data(lo), *hv = hft_tensor_data(hi);
    int64_t differ = 0;
    for (int64_t i = 0; i < per; i++) differ += fv[i] != lv[i] || fv[per + i] != hv[i];
    CHECK(differ == 0, "rows [0,2) at sample0 0 and [2,4) at sample0 2: %lld elements differ from the batch",
          (long long)differ);
    /* backward regenerates the mask: dx = g · mask / (1 - p), so with g = 1, dx · x = y */
    CHECK_OK(hft_backward(ctx, hft_sum(ctx, full, 0, NULL, false), NULL), ctx);
    double *dx = values_like(hft_tensor_grad(x), x), *xv = values(x);
    int64_t wrong = 0;
    for (int64_t i = 0; i < 2 * per; i++) wrong += fabs(dx[i] * xv[i] - fv[i]) > 1e-12;
    CHECK(wrong == 0, "%lld gradient elements disagree with the forward mask", (long long)wrong);
    free(dx);
    free(xv);
    /* p = 0 is the identity (no copy, no node); p = 1 gives zeros */
    CHECK(hft_dropout(ctx, x, 0.0, 3) == x, "p = 0 should return its input");
    hft_tensor *zeros = hft_dropout(ctx, x, 1.0, 3);
    double *zv = values_like(zeros, x);
    int64_t nonzero = 0;
    for (int64_t i = 0; i < 2 * per; i++) nonzero += zv[i] != 0;
    CHECK(zeros && nonzero == 0, "p = 1: %lld nonzero elements", (long long)nonzero);
    free(zv);
    hft_tensor_free(x);
    hft_ctx_free(ctx);
}

/* ---------------------------------------------------------------- misuse */

static void expect_error(hft_ctx *ctx, hft_tensor *result, const char *what, const char *fragment) {
    CHECK(result == NULL, "%s: expected NULL", what);
    CHECK(hft_ctx_status(ctx) != HFT_OK && strstr(hft_ctx_error(ctx), fragment),
          "%s: message '%s' lacks '%s'", what, hft_ctx_error(ctx), fragment);
    hft_ctx_reset(ctx);
}

TEST(misuse_is_reported) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *x = test_random(&rng, HFT_F32, 3, (int64_t[]){2, 3, 5}, -1, 1);
    int64_t tv[6] = {0, 1, 2, 3, 7, -100};
    hft_tensor *t = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, 3}, tv);
    expect_error(ctx, hft_cross_entropy(ctx, x, t, HFT_XENT_DEFAULTS, NULL), "target out of range",
                 "cross_entropy: target 7 at position [1, 1] is outside [0, 5)");
    hft_tensor *t4 = hft_tensor_from_data(HFT_I64, 1, (int64_t[]){4}, tv);
    expect_error(ctx, hft_cross_entropy(ctx, x, t4, HFT_XENT_DEFAULTS, NULL), "shape mismatch",
                 "expected targets of shape [2, 3]");
    hft_tensor *tf = test_random(&rng, HFT_F32, 2, (int64_t[]){2, 3}, 0, 4);
    expect_error(ctx, hft_cross_entropy(ctx, x, tf, HFT_XENT_DEFAULTS, NULL), "float targets",
                 "targets must be i32 or i64, got f32");
    hft_xent_opts bad = HFT_XENT_DEFAULTS;
    bad.label_smoothing = 1.5;
    expect_error(ctx, hft_cross_entropy(ctx, x, t, bad, NULL), "smoothing",
                 "label_smoothing must be in [0, 1], got 1.5");
    hft_tensor *w = test_random(&rng, HFT_F32, 2, (int64_t[]){5, 4}, -1, 1);
    expect_error(ctx, hft_linear_cross_entropy(ctx, x, w, NULL, t, HFT_XENT_DEFAULTS, NULL), "lce shapes",
                 "linear_cross_entropy: hidden f32[2, 3, 5] does not match weight f32[5, 4]");
    hft_tensor *w2 = test_random(&rng, HFT_F32, 2, (int64_t[]){4, 5}, -1, 1);
    expect_error(ctx, hft_linear_cross_entropy(ctx, x, w2, NULL, t, HFT_XENT_DEFAULTS, NULL), "lce target",
                 "linear_cross_entropy: target 7 at position [1, 1] is outside [0, 4)");
    expect_error(ctx, hft_mse(ctx, x, hft_narrow(ctx, x, 2, 0, 4), HFT_REDUCE_MEAN), "mse shapes",
                 "mse: input f32[2, 3, 5] and target f32[2, 3, 4] differ in shape");
    expect_error(ctx, hft_dropout(ctx, x, 1.5, 0), "p = 1.5", "dropout: p must be in [0, 1], got 1.5");
    expect_error(ctx, hft_dropout(ctx, x, -0.1, 0), "p = -0.1", "dropout: p must be in [0, 1], got -0.1");
    hft_tensor_free(x);
    hft_tensor_free(t);
    hft_tensor_free(t4);
    hft_tensor_free(tf);
    hft_tensor_free(w);
    hft_tensor_free(w2);
    hft_ctx_free(ctx);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"cross_entropy_gradcheck", cross_entropy_gradcheck},
        {"linear_cross_entropy_gradcheck", linear_cross_entropy_gradcheck},
        {"mse_gradcheck", mse_gradcheck},
        {"dropout_gradcheck", dropout_gradcheck},
        {"cross_entropy_f32_matches_double_reference", cross_entropy_f32_matches_double_reference},
        {"linear_cross_entropy_equals_unfused_f32", linear_cross_entropy_equals_unfused_f32},
        {"linear_cross_entropy_never_holds_the_logits", linear_cross_entropy_never_holds_the_logits},
        {"linear_cross_entropy_timing", linear_cross_entropy_timing},
        {"dropout_mask_rate_and_keys", dropout_mask_rate_and_keys},
        {"dropout_world_size_invariance_and_backward", dropout_world_size_invariance_and_backward},
        {"misuse_is_reported", misuse_is_reported},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
