/* Norm kernels for one dtype (included by norm.c with T and SFX defined). Statistics are computed in T
 * (f32 for f32 data, as torch's layer_norm and transformers' LlamaRMSNorm do) with 16 lane accumulators,
 * two passes over a row that is still in cache. */

#define NL 16

static T FN(nl_fold)(T *acc) {
    for (int w = NL / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static T FN(nrm_sum)(const T *restrict x, int64_t n) {
    T acc[NL] = {0};
    int64_t i = 0;
    for (; i + NL <= n; i += NL)
        for (int l = 0; l < NL; l++) acc[l] += x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i];
    return FN(nl_fold)(acc);
}

/* Σ (x - c)² */
static T FN(nrm_sqdev)(const T *restrict x, int64_t n, T c) {
    T acc[NL] = {0};
    int64_t i = 0;
    for (; i + NL <= n; i += NL)
        for (int l = 0; l < NL; l++) {
            T d = x[i + l] - c;
            acc[l] += d * d;
        }
    for (int l = 0; i < n; i++, l++) {
        T d = x[i] - c;
        acc[l] += d * d;
    }
    return FN(nl_fold)(acc);
}

/* Σ g and Σ g·x̂ for g = dy·w (dy without a weight), x̂ = (x - mean)·rstd. */
static inline __attribute__((always_inline)) void FN(nrm_bwd_sums)(const T *restrict x, const T *restrict dy,
                                                                   const T *restrict w, int64_t n, T mean,
                                                                   T rstd, T *sg, T *sgx) {
    T a[NL] = {0}, b[NL] = {0};
    int64_t i = 0;
    for (; i + NL <= n; i += NL)
        for (int l = 0; l < NL; l++) {
            T g = w ? dy[i + l] * w[i + l] : dy[i + l];
            a[l] += g;
            b[l] += g * ((x[i + l] - mean) * rstd);
        }
    for (int l = 0; i < n; i++, l++) {
        T g = w ? dy[i] * w[i] : dy[i];
        a[l] += g;
        b[l] += g * ((x[i] - mean) * rstd);
    }
    *sg = FN(nl_fold)(a);
    *sgx = FN(nl_fold)(b);
}

static void FN(norm_fwd_row)(const hft_norm_args *a, int64_t r) {
    int64_t C = a->cols;
    const T *x = (const T *)a->x + r * C;
    const T *w = (const T *)a->weight, *b = (const T *)a->bias;
    T *y = (T *)a->y + r * C;
    T eps = (T)a->eps;
    if (a->rms) {
        /* LlamaRMSNorm: weight · (x · rsqrt(mean(x²) + eps)) */
        T rstd = (T)1 / SQRTT(FN(nrm_sqdev)(x, C, (T)0) / (T)C + eps);
        if (w)
            for (int64_t c = 0; c < C; c++) y[c] = w[c] * (x[c] * rstd);
        else
            for (int64_t c = 0; c < C; c++) y[c] = x[c] * rstd;
        if (a->mean) ((T *)a->mean)[r] = 0;
        ((T *)a->rstd)[r] = rstd;
        return;
    }
    T mean = FN(nrm_sum)(x, C) / (T)C;
    T rstd = (T)1 / SQRTT(FN(nrm_sqdev)(x, C, mean) / (T)C + eps);
    if (w && b)
        for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mean) * rstd * w[c] + b[c];
    else if (w)
        for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mean) * rstd * w[c];
    else if (b)
        for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mean) * rstd + b[c];
    else
        for (int64_t c = 0; c < C; c++) y[c] = (x[c] - mean) * rstd;
    ((T *)a->mean)[r] = mean;
    ((T *)a->rstd)[r] = rstd;
}

static void FN(norm_fwd_rows)(int64_t r0, int64_t r1, void *job) {
    for (int64_t r = r0; r < r1; r++) FN(norm_fwd_row)((const hft_norm_args *)job, r);
}

static void FN(norm_fwd)(const hft_norm_args *a) {
    if (a->rows == 0 || a->cols == 0) return;
    hft_parallel_range(a->rows, a->rows * a->cols > 32768, FN(norm_fwd_rows), (void *)a);
}

/* dx = rstd (g - Σg/C - x̂ Σg·x̂/C) for layer norm, rstd (g - x̂ Σg·x̂/C) for RMS norm; and the row's
 * contribution to the chunk's partial weight and bias gradients. */
static void FN(norm_bwd_row)(const hft_norm_args *a, int64_t r, T *restrict pw, T *restrict pb) {
    int64_t C = a->cols;
    const T *x = (const T *)a->x + r * C, *dy = (const T *)a->dy + r * C;
    const T *w = (const T *)a->weight;
    T mean = a->rms ? (T)0 : ((const T *)a->mean)[r];
    T rstd = ((const T *)a->rstd)[r];
    if (a->dx) {
        T sg, sgx;
        if (w)
            FN(nrm_bwd_sums)(x, dy, w, C, mean, rstd, &sg, &sgx);
        else
            FN(nrm_bwd_sums)(x, dy, NULL, C, mean, rstd, &sg, &sgx);
        T k1 = a->rms ? (T)0 : sg / (T)C, k2 = sgx / (T)C;
        T *dx = (T *)a->dx + r * C;
        bool acc = a->accumulate_dx;
        if (w && acc)
            for (int64_t c = 0; c < C; c++) dx[c] += rstd * (dy[c] * w[c] - k1 - (x[c] - mean) * rstd * k2);
        else if (w)
            for (int64_t c = 0; c < C; c++) dx[c] = rstd * (dy[c] * w[c] - k1 - (x[c] - mean) * rstd * k2);
        else if (acc)
            for (int64_t c = 0; c < C; c++) dx[c] += rstd * (dy[c] - k1 - (x[c] - mean) * rstd * k2);
        else
            for (int64_t c = 0; c < C; c++) dx[c] = rstd * (dy[c] - k1 - (x[c] - mean) * rstd * k2);
    }
    if (pw)
        for (int64_t c = 0; c < C; c++) pw[c] += dy[c] * ((x[c] - mean) * rstd);
    if (pb)
        for (int64_t c = 0; c < C; c++) pb[c] += dy[c];
}

#ifndef NORM_CB
#define NORM_CB 256 /* columns per task when combining chunk partials */
#endif

typedef struct FN(norm_combine_job) {
    T *out;
    const T *part;
    int64_t nchunks, stride, C;
    bool acc;
} FN(norm_combine_job);

/* Column blocks [b0, b1): out (+)= Σ_k part[k·stride + c] over chunks k in order, summed in f64. */
static void FN(norm_combine_blocks)(int64_t b0, int64_t b1, void *job) {
    const FN(norm_combine_job) *j = job;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t c0 = blk * NORM_CB, cn = j->C - c0 < NORM_CB ? j->C - c0 : NORM_CB;
        double s[NORM_CB];
        for (int64_t c = 0; c < cn; c++) s[c] = 0;
        for (int64_t k = 0; k < j->nchunks; k++) {
            const T *p = j->part + k * j->stride + c0;
            for (int64_t c = 0; c < cn; c++) s[c] += (double)p[c];
        }
        T *o = j->out + c0;
        if (j->acc)
            for (int64_t c = 0; c < cn; c++) o[c] += (T)s[c];
        else
            for (int64_t c = 0; c < cn; c++) o[c] = (T)s[c];
    }
}

static void FN(norm_combine)(T *out, const T *part, int64_t nchunks, int64_t stride, int64_t C, bool acc) {
    FN(norm_combine_job) j = {out, part, nchunks, stride, C, acc};
    int64_t cblocks = (C + NORM_CB - 1) / NORM_CB;
    hft_parallel_range(cblocks, nchunks * C > 32768, FN(norm_combine_blocks), &j);
}

typedef struct FN(norm_bwd_job) {
    const hft_norm_args *a;
    T *scratch;
    int64_t chunk, stride;
    bool dw, db;
} FN(norm_bwd_job);

/* Row chunks [k0, k1): dx for their rows, and each chunk's partial weight/bias gradients. */
static void FN(norm_bwd_chunks)(int64_t k0, int64_t k1, void *job) {
    const FN(norm_bwd_job) *j = job;
    int64_t C = j->a->cols, rows = j->a->rows;
    for (int64_t k = k0; k < k1; k++) {
        T *part = j->scratch ? j->scratch + k * j->stride : NULL;
        T *pw = j->dw ? part : NULL;
        T *pb = j->db ? part + (j->dw ? C : 0) : NULL;
        for (int64_t c = 0; c < j->stride; c++) part[c] = 0;
        int64_t r1 = (k + 1) * j->chunk < rows ? (k + 1) * j->chunk : rows;
        for (int64_t r = k * j->chunk; r < r1; r++) FN(norm_bwd_row)(j->a, r, pw, pb);
    }
}

static void FN(norm_bwd)(const hft_norm_args *a) {
    int64_t rows = a->rows, C = a->cols;
    if (C == 0) return;
    T *dw = (T *)a->dweight, *db = (T *)a->dbias;
    if (rows == 0) { /* nothing summed: the gradients are zero */
        if (dw && !a->accumulate_dweight)
            for (int64_t c = 0; c < C; c++) dw[c] = 0;
        if (db && !a->accumulate_dbias)
            for (int64_t c = 0; c < C; c++) db[c] = 0;
        return;
    }
    int64_t chunk = norm_chunk_rows(rows), nchunks = (rows + chunk - 1) / chunk;
    int64_t parts = (dw ? 1 : 0) + (db ? 1 : 0), stride = parts * C;
    T *scratch = (T *)a->scratch;
    assert(parts == 0 || scratch);
    FN(norm_bwd_job)
    j = {.a = a, .scratch = scratch, .chunk = chunk, .stride = stride, .dw = dw != NULL, .db = db != NULL};
    hft_parallel_range(nchunks, rows * C > 16384, FN(norm_bwd_chunks), &j);
    if (dw) FN(norm_combine)(dw, scratch, nchunks, stride, C, a->accumulate_dweight);
    if (db) FN(norm_combine)(db, scratch + (dw ? C : 0), nchunks, stride, C, a->accumulate_dbias);
}

#undef NL
