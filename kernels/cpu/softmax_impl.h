/* Softmax kernels for one dtype (included by softmax.c with T and SFX defined). Row sums use 16 lane
 * accumulators so the compiler vectorises them and the order is fixed. A row that is all -inf gives
 * NaN (-inf - -inf), as torch does; callers that need another answer mask before. */

#undef SMEXP
#if defined(T_IS_F32)
#define SMEXP(x) sm_expf(x)
#else
#define SMEXP(x) exp(x)
#endif

#define SM_LANES 16
#define SM_CB    512 /* columns per task when inner > 1: long unit-stride runs, few cache-set conflicts */

static T FN(sm_lanes_fold)(T *acc) {
    for (int w = SM_LANES / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

static T FN(sm_row_max)(const T *restrict x, int64_t n) {
    T m[SM_LANES];
    for (int l = 0; l < SM_LANES; l++) m[l] = (T)-INFINITY;
    int64_t i = 0;
    for (; i + SM_LANES <= n; i += SM_LANES)
#pragma GCC unroll 1 /* unrolled whole, GCC would make 16 scalar maxss; as a loop it vectorises */
        for (int l = 0; l < SM_LANES; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    for (; i < n; i++) m[0] = x[i] > m[0] ? x[i] : m[0];
    T r = m[0];
    for (int l = 1; l < SM_LANES; l++) r = m[l] > r ? m[l] : r;
    return r;
}

/* o = exp(x - m): a plain map, so the compiler keeps the whole polynomial in registers; the sum is a
 * second pass over o while it is in cache. */
static void FN(sm_exp_into)(const T *restrict x, T *restrict o, int64_t n, T m) {
    for (int64_t i = 0; i < n; i++) o[i] = SMEXP(x[i] - m);
}

static T FN(sm_dot)(const T *restrict a, const T *restrict b, int64_t n) {
    T acc[SM_LANES] = {0};
    int64_t i = 0;
    for (; i + SM_LANES <= n; i += SM_LANES)
        for (int l = 0; l < SM_LANES; l++) acc[l] += a[i + l] * b[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += a[i] * b[i];
    return FN(sm_lanes_fold)(acc);
}

static T FN(sm_sum)(const T *restrict a, int64_t n) {
    T acc[SM_LANES] = {0};
    int64_t i = 0;
    for (; i + SM_LANES <= n; i += SM_LANES)
        for (int l = 0; l < SM_LANES; l++) acc[l] += a[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += a[i];
    return FN(sm_lanes_fold)(acc);
}

static void FN(sm_fwd_row)(const T *restrict x, T *restrict y, int64_t n, bool is_log) {
    T m = FN(sm_row_max)(x, n);
    FN(sm_exp_into)(x, y, n, m);
    T s = FN(sm_sum)(y, n);
    if (is_log) {
        T ls = LOGT(s);
        for (int64_t i = 0; i < n; i++) y[i] = (x[i] - m) - ls;
    } else {
        T inv = (T)1 / s;
        for (int64_t i = 0; i < n; i++) y[i] *= inv;
    }
}

/* softmax: dx = y (dy - Σ dy y); log_softmax: dx = dy - exp(y) Σ dy. */
static void FN(sm_bwd_row)(const T *restrict y, const T *restrict dy, T *restrict dx, int64_t n, bool is_log,
                           bool acc) {
    if (is_log) {
        T s = FN(sm_sum)(dy, n);
        if (acc)
            for (int64_t i = 0; i < n; i++) dx[i] += dy[i] - SMEXP(y[i]) * s;
        else
            for (int64_t i = 0; i < n; i++) dx[i] = dy[i] - SMEXP(y[i]) * s;
    } else {
        T s = FN(sm_dot)(dy, y, n);
        if (acc)
            for (int64_t i = 0; i < n; i++) dx[i] += y[i] * (dy[i] - s);
        else
            for (int64_t i = 0; i < n; i++) dx[i] = y[i] * (dy[i] - s);
    }
}

/* One block of cn <= SM_CB columns of an [n, inner] slab, reduced down the n axis. */
static void FN(sm_fwd_cols)(const T *restrict x, T *restrict y, int64_t n, int64_t inner, int64_t cn,
                            bool is_log) {
    T m[SM_CB], s[SM_CB];
    for (int64_t c = 0; c < cn; c++) m[c] = (T)-INFINITY, s[c] = 0;
    for (int64_t j = 0; j < n; j++) {
        const T *row = x + j * inner;
        for (int64_t c = 0; c < cn; c++) m[c] = row[c] > m[c] ? row[c] : m[c];
    }
    for (int64_t j = 0; j < n; j++) {
        const T *row = x + j * inner;
        T *yrow = y + j * inner;
        for (int64_t c = 0; c < cn; c++) {
            T e = SMEXP(row[c] - m[c]);
            yrow[c] = e;
            s[c] += e;
        }
    }
    if (is_log) {
        for (int64_t c = 0; c < cn; c++) s[c] = LOGT(s[c]);
        for (int64_t j = 0; j < n; j++) {
            const T *row = x + j * inner;
            T *yrow = y + j * inner;
            for (int64_t c = 0; c < cn; c++) yrow[c] = (row[c] - m[c]) - s[c];
        }
    } else {
        for (int64_t c = 0; c < cn; c++) s[c] = (T)1 / s[c];
        for (int64_t j = 0; j < n; j++) {
            T *yrow = y + j * inner;
            for (int64_t c = 0; c < cn; c++) yrow[c] *= s[c];
        }
    }
}

static void FN(sm_bwd_cols)(const T *restrict y, const T *restrict dy, T *restrict dx, int64_t n,
                            int64_t inner, int64_t cn, bool is_log, bool acc) {
    T s[SM_CB];
    for (int64_t c = 0; c < cn; c++) s[c] = 0;
    for (int64_t j = 0; j < n; j++) {
        const T *g = dy + j * inner, *yr = y + j * inner;
        if (is_log)
            for (int64_t c = 0; c < cn; c++) s[c] += g[c];
        else
            for (int64_t c = 0; c < cn; c++) s[c] += g[c] * yr[c];
    }
    for (int64_t j = 0; j < n; j++) {
        const T *g = dy + j * inner, *yr = y + j * inner;
        T *d = dx + j * inner;
        if (is_log && acc)
            for (int64_t c = 0; c < cn; c++) d[c] += g[c] - SMEXP(yr[c]) * s[c];
        else if (is_log)
            for (int64_t c = 0; c < cn; c++) d[c] = g[c] - SMEXP(yr[c]) * s[c];
        else if (acc)
            for (int64_t c = 0; c < cn; c++) d[c] += yr[c] * (g[c] - s[c]);
        else
            for (int64_t c = 0; c < cn; c++) d[c] = yr[c] * (g[c] - s[c]);
    }
}

/* Rows [r0, r1) of an [outer, n] softmax over the last dim. */
static void FN(softmax_fwd_rows)(int64_t r0, int64_t r1, void *job) {
    const hft_softmax_args *a = job;
    const T *x = (const T *)a->x;
    T *y = (T *)a->out;
    for (int64_t r = r0; r < r1; r++) FN(sm_fwd_row)(x + r * a->n, y + r * a->n, a->n, a->log);
}

/* Tasks [t0, t1) of an [outer, n, inner] softmax: a block of SM_CB columns of one outer index each. */
static void FN(softmax_fwd_blocks)(int64_t t0, int64_t t1, void *job) {
    const hft_softmax_args *a = job;
    int64_t cblocks = (a->inner + SM_CB - 1) / SM_CB;
    for (int64_t t = t0; t < t1; t++) {
        int64_t o = t / cblocks, c0 = (t % cblocks) * SM_CB;
        int64_t cn = a->inner - c0 < SM_CB ? a->inner - c0 : SM_CB, off = o * a->n * a->inner + c0;
        FN(sm_fwd_cols)((const T *)a->x + off, (T *)a->out + off, a->n, a->inner, cn, a->log);
    }
}

static void FN(softmax_fwd)(const hft_softmax_args *a) {
    if (a->outer == 0 || a->n == 0 || a->inner == 0) return;
    bool big = a->outer * a->n * a->inner > 32768;
    if (a->inner == 1)
        hft_parallel_range(a->outer, big, FN(softmax_fwd_rows), (void *)a);
    else
        hft_parallel_range(a->outer * ((a->inner + SM_CB - 1) / SM_CB), big, FN(softmax_fwd_blocks),
                           (void *)a);
}

static void FN(softmax_bwd_rows)(int64_t r0, int64_t r1, void *job) {
    const hft_softmax_args *a = job;
    const T *y = (const T *)a->y, *dy = (const T *)a->dy;
    T *dx = (T *)a->out;
    int64_t n = a->n;
    for (int64_t r = r0; r < r1; r++)
        FN(sm_bwd_row)(y + r * n, dy + r * n, dx + r * n, n, a->log, a->accumulate);
}

static void FN(softmax_bwd_blocks)(int64_t t0, int64_t t1, void *job) {
    const hft_softmax_args *a = job;
    int64_t cblocks = (a->inner + SM_CB - 1) / SM_CB;
    for (int64_t t = t0; t < t1; t++) {
        int64_t o = t / cblocks, c0 = (t % cblocks) * SM_CB;
        int64_t cn = a->inner - c0 < SM_CB ? a->inner - c0 : SM_CB, off = o * a->n * a->inner + c0;
        FN(sm_bwd_cols)
        ((const T *)a->y + off, (const T *)a->dy + off, (T *)a->out + off, a->n, a->inner, cn, a->log,
         a->accumulate);
    }
}

static void FN(softmax_bwd)(const hft_softmax_args *a) {
    if (a->outer == 0 || a->n == 0 || a->inner == 0) return;
    bool big = a->outer * a->n * a->inner > 32768;
    if (a->inner == 1)
        hft_parallel_range(a->outer, big, FN(softmax_bwd_rows), (void *)a);
    else
        hft_parallel_range(a->outer * ((a->inner + SM_CB - 1) / SM_CB), big, FN(softmax_bwd_blocks),
                           (void *)a);
}

#undef SM_LANES
#undef SM_CB
