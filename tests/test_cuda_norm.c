/* The CUDA row ops: softmax / log-softmax, layer and RMS norm, cross-entropy, forward and backward, in f32,
 * bf16 and f16, each against its CPU twin (the f32 CPU op on the inputs rounded to the dtype).
 *
 * Tolerances. f32 outputs differ from the CPU only by the order of the f32 sums (tree vs 16 lanes) and the
 * exp / log implementations: k·eps(f32), k from the length of the sums (sum_k) or named at the use. bf16 /
 * f16 outputs are computed in f32 and rounded once: one unit roundoff, doubled for a rounding that the f32
 * difference tips the other way (f32's differences, under 2^-16, are far below 2^-8 or 2^-11). Per-row
 * statistics (mean, rstd, lse, row losses) are f32 on CUDA for every dtype, so they are held to f32
 * tolerances. */
#include "tests/cuda_test_util.h"

#include <math.h>
#include <stdlib.h>

static const hft_dtype DTYPES[3] = {HFT_F32, HFT_BF16, HFT_F16};
static const int64_t ROWS[4] = {1, 7, 64, 129};
static const int64_t COLS[6] = {1, 7, 33, 64, 257, 1000};

/* The tolerance of an output in dt (see the top of the file): k unit roundoffs of f32 for f32 outputs,
 * 2 unit roundoffs of dt for bf16 / f16 outputs. */
static double tol(hft_dtype dt, double k) {
    return dt == HFT_F32 ? k * dtype_eps(HFT_F32) : 2 * dtype_eps(dt);
}

/* The k of tol for an f32 output that comes from a sum of n terms: the CPU adds n/16 terms in sequence in
 * each of its 16 lanes, so its rounding error grows like sqrt(n/16) unit roundoffs (a random walk); allow
 * 4 of those, and at least 16 (exp, log, the few operations after the sum). */
static double sum_k(int64_t n) {
    double k = 4 * sqrt((double)n / 16);
    return k < 16 ? 16 : k;
}

static float *host_rand(test_rng *r, int64_t n, double lo, double hi, hft_dtype dt) {
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    fill_uniform(r, x, n, lo, hi);
    host_round(dt, x, n);
    return x;
}

static float *host_copy(const float *x, int64_t n) {
    float *y = malloc(sizeof(float) * (size_t)(n ? n : 1));
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

/* Device buffers that start `off` elements past an allocation (off = 1 breaks 16-byte alignment, which
 * sends the kernels down their scalar paths); free with dev_free_at. */
static void *dev_upload_at(hft_dtype dt, const float *h, int64_t n, int64_t off) {
    float *tmp = calloc((size_t)(n + off + 1), sizeof(float));
    memcpy(tmp + off, h, sizeof(float) * (size_t)n);
    char *p = dev_upload_as(dt, tmp, n + off);
    free(tmp);
    return p + off * (int64_t)hft_dtype_size(dt);
}
static void *dev_garbage_at(hft_dtype dt, int64_t n, int64_t off) {
    return (char *)dev_garbage((size_t)(n + off) * hft_dtype_size(dt)) + off * (int64_t)hft_dtype_size(dt);
}
static void dev_free_at(hft_dtype dt, void *p, int64_t off) {
    if (p) dev_free((char *)p - off * (int64_t)hft_dtype_size(dt));
}
static float *download(hft_dtype dt, const void *p, int64_t n) {
    float *h = malloc(sizeof(float) * (size_t)(n ? n : 1));
    dev_download_as(dt, h, p, n);
    return h;
}

/* close_f32, with NaN and ±inf required at exactly the places the reference has them (test_close's
 * max|ref| scale would turn infinite and pass anything). */
static int close_special(const char *what, const float *got, const float *want, long n, double rtol,
                         double atol_scale) {
    float *g = host_copy(got, n), *w = host_copy(want, n);
    long bad = -1;
    for (long i = 0; i < n; i++) {
        if (isfinite(want[i])) continue;
        bool same = isnan(want[i]) ? isnan(got[i]) : got[i] == want[i];
        if (!same && bad < 0) bad = i;
        g[i] = w[i] = 0;
    }
    CHECK(bad < 0, "%s: element %ld is %g, want %g", what, bad, bad >= 0 ? got[bad] : 0.0,
          bad >= 0 ? want[bad] : 0.0);
    int ok = bad < 0 && close_f32(what, g, w, n, rtol, atol_scale);
    free(g);
    free(w);
    return ok;
}

/* ---------------------------------------------------------------- softmax */

/* One softmax forward and backward over [outer, n, inner], device pointers `off` elements past their
 * allocations. x may be given (special values); else uniform in [-4, 4). */
static void softmax_case(test_rng *r, hft_dtype dt, int64_t outer, int64_t n, int64_t inner, bool lg,
                         bool acc, int64_t off, const float *x_given) {
    char what[160];
    int64_t N = outer * n * inner;
    float *x = x_given ? host_copy(x_given, N) : host_rand(r, N, -4, 4, dt);
    float *want = malloc(sizeof(float) * (size_t)N);
    hft_softmax_args a = {.log = lg, .outer = outer, .n = n, .inner = inner, .x = x, .out = want};
    cpu_k->softmax_fwd[HFT_F32](&a);
    void *xd = dev_upload_at(dt, x, N, off), *yd = dev_garbage_at(dt, N, off);
    a.x = xd, a.out = yd;
    cuda_k->softmax_fwd[dt](&a);
    float *got = download(dt, yd, N);
    dev_sync("softmax_fwd");
    snprintf(what, sizeof what, "%s softmax_fwd %s [%lld, %lld, %lld] off %lld", lg ? "log" : "plain",
             hft_dtype_name(dt), (long long)outer, (long long)n, (long long)inner, (long long)off);
    close_special(what, got, want, (long)N, tol(dt, sum_k(n)), tol(dt, sum_k(n)));

    /* backward from the forward output as the dtype holds it */
    float *y = host_copy(want, N), *g = host_rand(r, N, -1, 1, dt);
    host_round(dt, y, N);
    float *dx0 = host_rand(r, N, -1, 1, dt), *dx_want = host_copy(dx0, N);
    hft_softmax_args b = {.log = lg,
                          .outer = outer,
                          .n = n,
                          .inner = inner,
                          .y = y,
                          .dy = g,
                          .out = dx_want,
                          .accumulate = acc};
    cpu_k->softmax_bwd[HFT_F32](&b);
    void *y_ = dev_upload_at(dt, y, N, off), *g_ = dev_upload_at(dt, g, N, off);
    void *o_ = acc ? dev_upload_at(dt, dx0, N, off) : dev_garbage_at(dt, N, off);
    b.y = y_, b.dy = g_, b.out = o_;
    cuda_k->softmax_bwd[dt](&b);
    float *dx_got = download(dt, o_, N);
    dev_sync("softmax_bwd");
    snprintf(what, sizeof what, "%s softmax_bwd%s %s [%lld, %lld, %lld] off %lld", lg ? "log" : "plain",
             acc ? " acc" : "", hft_dtype_name(dt), (long long)outer, (long long)n, (long long)inner,
             (long long)off);
    /* f32: twice a sum's (Σ dy·y, then dy - s cancels) */
    close_special(what, dx_got, dx_want, (long)N, tol(dt, 2 * sum_k(n)), tol(dt, 2 * sum_k(n)));
    dev_free_at(dt, xd, off);
    dev_free_at(dt, yd, off);
    dev_free_at(dt, y_, off);
    dev_free_at(dt, g_, off);
    dev_free_at(dt, o_, off);
    free(x), free(want), free(got), free(y), free(g), free(dx0), free(dx_want), free(dx_got);
}

/* Every row length of the grid at every row count (softmax over the last dim: a warp per row). */
TEST(test_softmax_rows) {
    test_rng r = {11};
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 6; j++)
                softmax_case(&r, DTYPES[d], ROWS[i], COLS[j], 1, (i + j + d) % 2, (i + j) % 2 == 0, 0, NULL);
}

/* Block-per-row layouts (up to 8192 and 16384 values held in registers) and the two-pass long rows, with
 * aligned and unaligned (scalar) access. */
TEST(test_softmax_long_rows) {
    test_rng r = {12};
    const int64_t n[4] = {2000, 9000, 20000, 50257};
    for (int d = 0; d < 3; d++)
        for (int j = 0; j < 4; j++) {
            softmax_case(&r, DTYPES[d], 2, n[j], 1, (j + d) % 2, j % 2, 0, NULL);
            if (j < 3) softmax_case(&r, DTYPES[d], 1, n[j], 1, (j + d + 1) % 2, true, 1, NULL);
        }
    softmax_case(&r, HFT_BF16, 7, 64, 1, false, false, 1, NULL); /* a vector width, unaligned: scalar */
}

TEST(test_softmax_inner) {
    test_rng r = {13};
    const int64_t shapes[5][3] = {{3, 7, 5}, {2, 33, 64}, {4, 1, 3}, {1, 300, 2}, {2, 5, 129}};
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < 5; s++)
            softmax_case(&r, DTYPES[d], shapes[s][0], shapes[s][1], shapes[s][2], (s + d) % 2, s % 2, 0,
                         NULL);
}

/* Masked rows: all -inf (NaN, as the CPU), a -inf prefix (what an online max must not turn into NaN),
 * a NaN element, a +inf element, scattered -inf, and a plain row; in each layout. */
TEST(test_softmax_masked) {
    test_rng r = {14};
    const int64_t n[5] = {33, 1000, 2000, 9000, 20000};
    for (int d = 0; d < 3; d++)
        for (int j = 0; j < 5; j++) {
            if (d > 0 && j % 2) continue; /* the low dtypes at three of the layouts (emulator time) */
            int64_t rows = 6, N = rows * n[j];
            float *x = host_rand(&r, N, -4, 4, DTYPES[d]);
            for (int64_t c = 0; c < n[j]; c++) {
                x[c] = -INFINITY;
                if (c < n[j] * 3 / 4) x[n[j] + c] = -INFINITY;
                if (c % 3 == 1) x[5 * n[j] + c] = -INFINITY;
            }
            x[2 * n[j] + n[j] / 2] = NAN;
            x[3 * n[j] + n[j] - 1] = INFINITY;
            for (int lg = 0; lg < 2; lg++) softmax_case(&r, DTYPES[d], rows, n[j], 1, lg, false, 0, x);
            free(x);
        }
    /* down the middle axis */
    float x[2 * 4 * 3];
    for (int i = 0; i < 24; i++) x[i] = (float)(i % 5) - 2.0f;
    for (int j = 0; j < 4; j++) x[j * 3] = -INFINITY;       /* outer 0, column 0: all -inf */
    x[12 + 1 * 3 + 1] = -INFINITY, x[12 + 2 * 3 + 2] = NAN; /* outer 1: a masked and a NaN element */
    for (int lg = 0; lg < 2; lg++) softmax_case(&r, HFT_F32, 2, 4, 3, lg, false, 0, x);
}

/* ---------------------------------------------------------------- norms */

typedef struct norm_opts {
    bool rms, w, b;
    bool no_mean, no_rstd;            /* forward outputs left NULL */
    bool no_dx, no_dw, no_db;         /* backward outputs left NULL */
    bool acc_dx, acc_dw, acc_db, rep; /* rep: run backward twice and require the same bits */
    bool bwd_only;                    /* CUDA backward only (many rows: a warp reduction each costs) */
    int64_t off;
} norm_opts;

static void norm_case(test_rng *r, hft_dtype dt, int64_t rows, int64_t C, norm_opts o) {
    char what[200];
    snprintf(what, sizeof what, "%s %s [%lld, %lld]%s%s off %lld", o.rms ? "rms_norm" : "layer_norm",
             hft_dtype_name(dt), (long long)rows, (long long)C, o.w ? " w" : "", o.b ? " b" : "",
             (long long)o.off);
    int64_t N = rows * C, off = o.off;
    bool use_b = o.b && !o.rms;
    float *x = host_rand(r, N, -2, 3, dt), *w = host_rand(r, C, 0.5, 1.5, dt),
          *b = host_rand(r, C, -1, 1, dt);
    float *y = malloc(sizeof(float) * (size_t)(N ? N : 1)), *mean = calloc((size_t)rows + 1, sizeof(float));
    float *rstd = calloc((size_t)rows + 1, sizeof(float));
    hft_norm_args a = {.rms = o.rms,
                       .rows = rows,
                       .cols = C,
                       .eps = 1e-5,
                       .x = x,
                       .weight = o.w ? w : NULL,
                       .bias = use_b ? b : NULL,
                       .y = y,
                       .mean = mean,
                       .rstd = rstd};
    cpu_k->norm_fwd[HFT_F32](&a);

    void *x_ = dev_upload_at(dt, x, N, off), *w_ = dev_upload_at(dt, w, C, off),
         *b_ = dev_upload_at(dt, b, C, off), *y_ = dev_garbage_at(dt, N, off);
    void *mean_ = o.no_mean ? NULL : dev_garbage((size_t)rows * 4 + 4);
    void *rstd_ = o.no_rstd ? NULL : dev_garbage((size_t)rows * 4 + 4);
    hft_norm_args da = a;
    da.x = x_, da.weight = o.w ? w_ : NULL, da.bias = use_b ? b_ : NULL, da.y = y_, da.mean = mean_,
    da.rstd = rstd_;
    char w2[240];
    float *y_got = NULL, *mean_got = NULL, *rstd_got = NULL;
    if (!o.bwd_only) {
        cuda_k->norm_fwd[dt](&da);
        y_got = download(dt, y_, N);
        mean_got = mean_ ? download(HFT_F32, mean_, rows) : NULL;
        rstd_got = rstd_ ? download(HFT_F32, rstd_, rows) : NULL;
        dev_sync(what);
        snprintf(w2, sizeof w2, "%s fwd y", what);
        close_f32(w2, y_got, y, (long)N, tol(dt, sum_k(C)), tol(dt, sum_k(C)));
        snprintf(w2, sizeof w2, "%s fwd mean", what);
        if (mean_got && !o.rms)
            close_f32(w2, mean_got, mean, (long)rows, tol(HFT_F32, sum_k(C)), tol(HFT_F32, sum_k(C)));
        for (int64_t i = 0; mean_got && o.rms && i < rows; i++)
            CHECK(mean_got[i] == 0, "%s: RMS mean[%lld] = %g", what, (long long)i, mean_got[i]);
        snprintf(w2, sizeof w2, "%s fwd rstd", what);
        if (rstd_got) close_f32(w2, rstd_got, rstd, (long)rows, tol(HFT_F32, sum_k(C)), 0);
    }

    /* backward from the CPU's statistics (f32 on both sides), so that it is tested on its own */
    float *dy = host_rand(r, N, -1, 1, dt);
    float *dx0 = host_rand(r, N, -1, 1, dt), *dw0 = host_rand(r, C, -1, 1, dt),
          *db0 = host_rand(r, C, -1, 1, dt);
    float *dx = host_copy(dx0, N), *dw = host_copy(dw0, C), *db = host_copy(db0, C);
    hft_norm_args g = a;
    g.dy = dy, g.dx = o.no_dx ? NULL : dx, g.dweight = o.no_dw || !o.w ? NULL : dw;
    g.dbias = o.no_db || !use_b ? NULL : db;
    g.accumulate_dx = o.acc_dx, g.accumulate_dweight = o.acc_dw, g.accumulate_dbias = o.acc_db;
    size_t sb = cpu_k->norm_scratch_bytes(&g, 4);
    g.scratch = sb ? malloc(sb) : NULL;
    cpu_k->norm_bwd[HFT_F32](&g);
    free(g.scratch);

    void *mean_in = dev_upload(mean, (size_t)rows * 4 + 4), *rstd_in = dev_upload(rstd, (size_t)rows * 4 + 4);
    void *dy_ = dev_upload_at(dt, dy, N, off);
    void *dx_ = g.dx ? (o.acc_dx ? dev_upload_at(dt, dx0, N, off) : dev_garbage_at(dt, N, off)) : NULL;
    void *dw_ = g.dweight ? (o.acc_dw ? dev_upload_at(dt, dw0, C, off) : dev_garbage_at(dt, C, off)) : NULL;
    void *db_ = g.dbias ? (o.acc_db ? dev_upload_at(dt, db0, C, off) : dev_garbage_at(dt, C, off)) : NULL;
    hft_norm_args dg = g;
    dg.x = x_, dg.weight = o.w ? w_ : NULL, dg.bias = use_b ? b_ : NULL, dg.y = NULL;
    dg.mean = o.rms ? NULL : mean_in, dg.rstd = rstd_in, dg.dy = dy_, dg.dx = dx_, dg.dweight = dw_,
    dg.dbias = db_;
    size_t dsb = cuda_k->norm_scratch_bytes(&dg, hft_dtype_size(dt));
    dg.scratch = dsb ? dev_garbage(dsb) : NULL;
    cuda_k->norm_bwd[dt](&dg);
    float *dx_got = dx_ ? download(dt, dx_, N) : NULL;
    float *dw_got = dw_ ? download(dt, dw_, C) : NULL;
    float *db_got = db_ ? download(dt, db_, C) : NULL;
    dev_sync(what);
    snprintf(w2, sizeof w2, "%s bwd dx%s", what, o.acc_dx ? " acc" : "");
    /* f32: twice a sum's (Σg and Σg·x̂, then a cancelling difference) */
    if (dx_got) close_f32(w2, dx_got, dx, (long)N, tol(dt, 2 * sum_k(C)), tol(dt, 2 * sum_k(C)));
    snprintf(w2, sizeof w2, "%s bwd dweight%s", what, o.acc_dw ? " acc" : "");
    /* f32: a sum over the rows (the CPU's f32 chunks, combined in f64; all f32 here) */
    if (dw_got) close_f32(w2, dw_got, dw, (long)C, tol(dt, sum_k(rows)), tol(dt, sum_k(rows)));
    snprintf(w2, sizeof w2, "%s bwd dbias%s", what, o.acc_db ? " acc" : "");
    if (db_got) close_f32(w2, db_got, db, (long)C, tol(dt, sum_k(rows)), tol(dt, sum_k(rows)));

    if (o.rep && dw_ && !o.acc_dw) { /* the same bits again (with the rows in another order of blocks) */
        cuda_k->norm_bwd[dt](&dg);
        float *again = download(dt, dw_, C);
        dev_sync(what);
        CHECK(memcmp(again, dw_got, sizeof(float) * (size_t)C) == 0, "%s: dweight differs run to run", what);
        free(again);
    }
    dev_free_at(dt, x_, off), dev_free_at(dt, w_, off), dev_free_at(dt, b_, off), dev_free_at(dt, y_, off);
    dev_free_at(dt, dy_, off), dev_free_at(dt, dx_, off), dev_free_at(dt, dw_, off),
        dev_free_at(dt, db_, off);
    dev_free(mean_), dev_free(rstd_), dev_free(mean_in), dev_free(rstd_in), dev_free(dg.scratch);
    free(x), free(w), free(b), free(y), free(mean), free(rstd), free(y_got), free(mean_got), free(rstd_got);
    free(dy), free(dx0), free(dw0), free(db0), free(dx), free(dw), free(db), free(dx_got), free(dw_got),
        free(db_got);
}

/* The options rotate through the grid so that each appears at several shapes and dtypes: RMS and layer,
 * weight / bias present or not, each forward statistic and each gradient NULL in turn, each accumulate. */
static norm_opts rotate(int i) {
    norm_opts o = {0};
    o.rms = i % 2;
    int wb = (i / 2) % 4;
    o.w = wb == 1 || wb == 2, o.b = wb == 2 || wb == 3;
    o.no_mean = i % 5 == 3, o.no_rstd = i % 5 == 4;
    o.no_dx = i % 7 == 1, o.no_dw = i % 7 == 2, o.no_db = i % 7 == 3;
    o.acc_dx = i % 3 == 1, o.acc_dw = i % 3 == 2, o.acc_db = i % 3 != 2;
    o.rep = i % 11 == 0;
    return o;
}

TEST(test_norm_grid) {
    test_rng r = {21};
    int i = 0;
    for (int d = 0; d < 3; d++)
        for (int ri = 0; ri < 4; ri++)
            for (int ci = 0; ci < 6; ci++, i++) norm_case(&r, DTYPES[d], ROWS[ri], COLS[ci], rotate(i));
}

/* Block-per-row layouts (8 and 32 values a thread), the long-row path, unaligned rows, and many rows
 * (chunks doubled: only dweight / dbias, which cost no per-row reduction in the emulator). 17 rows make
 * two backward chunks; the emulator pays for every reduction of a 1024-thread row, so bf16 and f16 take 2
 * rows of the widest layouts. */
TEST(test_norm_layouts) {
    test_rng r = {22};
    const int64_t cols[4] = {2000, 9000, 20000, 64};
    for (int d = 0; d < 3; d++)
        for (int s = 0; s < 4; s++)
            for (int rms = 0; rms < 2; rms++) {
                norm_opts o = {
                    .rms = rms, .w = true, .b = true, .acc_dx = s % 2, .acc_dw = rms, .rep = s == 1};
                o.off = s == 3 || (s == 0 && rms) ? 1 : 0;
                int64_t rows = s == 0 || s == 3 || d == 0 ? 17 : 2;
                norm_case(&r, DTYPES[d], rows, cols[s], o);
            }
    for (int d = 0; d < 3; d++) {
        norm_opts o = {.rms = d == 1,
                       .w = true,
                       .b = true,
                       .no_dx = true,
                       .acc_db = true,
                       .rep = true,
                       .bwd_only = true};
        norm_case(&r, DTYPES[d], 8200, 3, o);
    }
}

/* No rows: dweight and dbias are zero, or left as they are when accumulating. */
TEST(test_norm_no_rows) {
    for (int acc = 0; acc < 2; acc++) {
        float w0[5] = {1, 2, 3, 4, 5}, got[5];
        void *dw = dev_upload(w0, sizeof w0), *db = dev_upload(w0, sizeof w0);
        hft_norm_args a = {.rows = 0,
                           .cols = 5,
                           .eps = 1e-5,
                           .dweight = dw,
                           .dbias = db,
                           .accumulate_dweight = acc,
                           .accumulate_dbias = acc};
        CHECK(cuda_k->norm_scratch_bytes(&a, 4) == 0, "scratch for no rows");
        cuda_k->norm_bwd[HFT_F32](&a);
        dev_download(got, dw, sizeof got);
        for (int i = 0; i < 5; i++)
            CHECK(got[i] == (acc ? w0[i] : 0), "dweight[%d] = %g (acc %d)", i, got[i], acc);
        dev_download(got, db, sizeof got);
        for (int i = 0; i < 5; i++)
            CHECK(got[i] == (acc ? w0[i] : 0), "dbias[%d] = %g (acc %d)", i, got[i], acc);
        dev_sync("norm no rows");
        dev_free(dw), dev_free(db);
    }
}

/* ---------------------------------------------------------------- cross-entropy */

typedef struct xent_opts {
    double smoothing;
    bool t64, no_lse, acc, inplace;
    int64_t pad;          /* ld = classes + pad (an odd ld puts rows off 16-byte boundaries) */
    int64_t ignore_index; /* every 5th row's target (from the third) is this */
    bool masked;          /* -inf logits: row 0's first 70%, every third of row 1's, all of row 3's */
} xent_opts;

static void xent_case(test_rng *r, hft_dtype dt, int64_t rows, int64_t C, xent_opts o) {
    char what[200];
    snprintf(what, sizeof what, "xent %s [%lld, %lld] ld +%lld smoothing %g%s%s%s", hft_dtype_name(dt),
             (long long)rows, (long long)C, (long long)o.pad, o.smoothing, o.t64 ? " i64" : " i32",
             o.acc ? " acc" : "", o.inplace ? " in place" : "");
    int64_t ld = C + o.pad, N = (rows - 1) * ld + C;
    float *x = host_rand(r, N, -6, 6, dt);
    int64_t *t64 = malloc(sizeof(int64_t) * (size_t)rows);
    int32_t *t32 = malloc(sizeof(int32_t) * (size_t)rows);
    for (int64_t i = 0; i < rows; i++) {
        int64_t t = (int64_t)test_uniform(r, 0, (double)C);
        if (i % 5 == 2) t = o.ignore_index;
        if (o.masked && i < 2) t = i == 0 ? C - 1 : 0; /* an unmasked target */
        t64[i] = t, t32[i] = (int32_t)t;
    }
    for (int64_t c = 0; o.masked && c < C; c++) {
        if (c < C * 7 / 10) x[c] = -INFINITY;
        if (c % 3 == 1) x[ld + c] = -INFINITY;
        x[3 * ld + c] = -INFINITY; /* NaN loss and gradient, as exp(-inf - -inf) on the CPU */
    }
    const void *tgt = o.t64 ? (const void *)t64 : (const void *)t32;
    size_t tsz = (o.t64 ? 8 : 4) * (size_t)rows;
    float *loss = malloc(sizeof(float) * (size_t)rows), *lse = malloc(sizeof(float) * (size_t)rows);
    hft_xent_args a = {.rows = rows,
                       .classes = C,
                       .ld = ld,
                       .logits = x,
                       .target_dtype = o.t64 ? HFT_I64 : HFT_I32,
                       .targets = tgt,
                       .ignore_index = o.ignore_index,
                       .label_smoothing = o.smoothing,
                       .row_loss = loss,
                       .lse = lse};
    cpu_k->xent_fwd[HFT_F32](&a);

    void *x_ = dev_upload_as(dt, x, N), *t_ = dev_upload(tgt, tsz);
    void *loss_ = dev_garbage((size_t)rows * 4), *lse_ = o.no_lse ? NULL : dev_garbage((size_t)rows * 4);
    hft_xent_args da = a;
    da.logits = x_, da.targets = t_, da.row_loss = loss_, da.lse = lse_;
    cuda_k->xent_fwd[dt](&da);
    float *loss_got = download(HFT_F32, loss_, rows), *lse_got = lse_ ? download(HFT_F32, lse_, rows) : NULL;
    dev_sync(what);
    char w2[260];
    /* f32 for every dtype (the same rounded logits, f32 arithmetic): 32 eps (Σ exp over up to 50257
     * columns in f32 here, in f64 on the CPU) */
    snprintf(w2, sizeof w2, "%s row_loss", what);
    close_special(w2, loss_got, loss, (long)rows, tol(HFT_F32, 32), tol(HFT_F32, 32));
    snprintf(w2, sizeof w2, "%s lse", what);
    if (lse_got) close_special(w2, lse_got, lse, (long)rows, tol(HFT_F32, 32), tol(HFT_F32, 32));

    /* backward from the CPU's lse; pad columns must keep their garbage */
    float *d0 = host_rand(r, N, -1, 1, dt), *d = host_copy(o.inplace ? x : d0, N);
    hft_xent_args b = a;
    b.logits = o.inplace ? d : x, b.dlogits = d, b.scale = 0.7, b.accumulate = o.acc;
    cpu_k->xent_bwd[HFT_F32](&b);
    void *lse_in = dev_upload(lse, (size_t)rows * 4);
    void *d_ = o.inplace ? x_
               : o.acc   ? dev_upload_as(dt, d0, N)
                         : dev_garbage(hft_dtype_size(dt) * (size_t)N);
    hft_xent_args db = b;
    db.logits = x_, db.targets = t_, db.row_loss = NULL, db.lse = lse_in, db.dlogits = d_;
    cuda_k->xent_bwd[dt](&db);
    float *d_got = download(dt, d_, N);
    dev_sync(what);
    if (!o.inplace && !o.acc) { /* the pad of a garbage buffer keeps its garbage (0xA5 bytes) */
        float garbage;
        uint16_t h = 0xA5A5;
        uint32_t f = 0xA5A5A5A5u;
        if (dt == HFT_F32)
            memcpy(&garbage, &f, 4);
        else
            host_from_half(dt, &garbage, &h, 1);
        for (int64_t i = 0; i < rows - 1; i++)
            for (int64_t c = C; c < ld; c++) d[i * ld + c] = garbage;
    }
    snprintf(w2, sizeof w2, "%s dlogits", what);
    /* f32: 32 eps (exp(x - lse) with |x - lse| up to ~20: its error grows with the argument) */
    close_special(w2, d_got, d, (long)N, tol(dt, 32), tol(dt, 32));

    if (!o.inplace && !o.acc && rows > 1) { /* the same bits again */
        cuda_k->xent_fwd[dt](&da);
        float *again = download(HFT_F32, loss_, rows);
        dev_sync(what);
        CHECK(memcmp(again, loss_got, sizeof(float) * (size_t)rows) == 0, "%s: row losses differ run to run",
              what);
        free(again);
    }
    if (!o.inplace) dev_free(d_);
    dev_free(x_), dev_free(t_), dev_free(loss_), dev_free(lse_), dev_free(lse_in);
    free(x), free(t64), free(t32), free(loss), free(lse), free(loss_got), free(lse_got), free(d0), free(d);
    free(d_got);
}

static xent_opts xent_rotate(int i) {
    xent_opts o = {0};
    o.smoothing = i % 2 ? 0.1 : 0.0;
    o.t64 = (i / 2) % 2;
    o.no_lse = i % 5 == 4;
    o.acc = i % 3 == 1;
    o.inplace = i % 3 == 2 || i % 7 == 1; /* i % 7 == 1 with acc: accumulate is ignored in place */
    o.pad = i % 4 == 3 ? 3 : 0;
    o.ignore_index = i % 6 == 5 ? 0 : -100; /* a class index as ignore_index: those rows are still ignored */
    return o;
}

TEST(test_xent_grid) {
    test_rng r = {31};
    int i = 0;
    for (int d = 0; d < 3; d++)
        for (int ri = 0; ri < 4; ri++)
            for (int ci = 0; ci < 6; ci++, i++) xent_case(&r, DTYPES[d], ROWS[ri], COLS[ci], xent_rotate(i));
}

/* A GPT-2 vocabulary row (2 rows, the second off a 16-byte boundary), with and without smoothing, in place
 * as the fused classifier runs it. */
TEST(test_xent_vocab) {
    test_rng r = {32};
    for (int d = 0; d < 3; d++) {
        xent_opts o = {.smoothing = d == 1 ? 0.1 : 0.0,
                       .t64 = d == 2,
                       .inplace = d != 1,
                       .acc = d == 1,
                       .ignore_index = -100};
        xent_case(&r, DTYPES[d], 2, 50257, o);
    }
}

/* Masked vocabulary entries (-inf logits), with and without smoothing (+inf loss for a row with a masked
 * entry: Σx is -inf, on the CPU too). */
TEST(test_xent_masked) {
    test_rng r = {33};
    for (int d = 0; d < 2; d++)
        for (int s = 0; s < 2; s++) {
            xent_opts o = {.smoothing = s ? 0.1 : 0.0, .ignore_index = -100, .masked = true, .inplace = s};
            xent_case(&r, DTYPES[d], 4, 1000, o);
        }
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_softmax_rows", test_softmax_rows},   {"test_softmax_long_rows", test_softmax_long_rows},
        {"test_softmax_inner", test_softmax_inner}, {"test_softmax_masked", test_softmax_masked},
        {"test_norm_grid", test_norm_grid},         {"test_norm_layouts", test_norm_layouts},
        {"test_norm_no_rows", test_norm_no_rows},   {"test_xent_grid", test_xent_grid},
        {"test_xent_vocab", test_xent_vocab},       {"test_xent_masked", test_xent_masked},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
