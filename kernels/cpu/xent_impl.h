/* Cross-entropy rows for one dtype (included by xent.c with T and SFX defined). Each row is independent
 * and computed the same way on any thread count: max and sums in 16 lanes over fixed blocks, blocks
 * combined in f64, so the per-row losses (and the ordered sum the caller takes) are deterministic. */

#define XENT_LANES 16
#define XENT_BLOCK 2048

static T FN(xent_max)(const T *restrict x, int64_t n) {
    if (n == 0) return (T)-INFINITY;
    T acc[XENT_LANES];
    for (int l = 0; l < XENT_LANES; l++) acc[l] = x[0];
    int64_t i = 0;
    for (; i + XENT_LANES <= n; i += XENT_LANES)
        for (int l = 0; l < XENT_LANES; l++) acc[l] = x[i + l] > acc[l] ? x[i + l] : acc[l];
    for (int l = 0; i < n; i++, l++) acc[l] = x[i] > acc[l] ? x[i] : acc[l];
    T m = acc[0];
    for (int l = 1; l < XENT_LANES; l++) m = acc[l] > m ? acc[l] : m;
    return m;
}

/* Σ exp(x - m) and, when wanted, Σ x (label smoothing needs the mean logit). */
static double FN(xent_sums)(const T *restrict x, int64_t n, T m, double *sum_x) {
    double total = 0, total_x = 0;
    for (int64_t b = 0; b < n; b += XENT_BLOCK) {
        int64_t e = n - b < XENT_BLOCK ? n - b : XENT_BLOCK;
        const T *xb = x + b;
        T acc[XENT_LANES] = {0};
        int64_t i = 0;
        for (; i + XENT_LANES <= e; i += XENT_LANES)
            for (int l = 0; l < XENT_LANES; l++) acc[l] += EXPT(xb[i + l] - m);
        for (int l = 0; i < e; i++, l++) acc[l] += EXPT(xb[i] - m);
        for (int l = 0; l < XENT_LANES; l++) total += (double)acc[l];
        if (sum_x) {
            T ax[XENT_LANES] = {0};
            for (i = 0; i + XENT_LANES <= e; i += XENT_LANES)
                for (int l = 0; l < XENT_LANES; l++) ax[l] += xb[i + l];
            for (int l = 0; i < e; i++, l++) ax[l] += xb[i];
            for (int l = 0; l < XENT_LANES; l++) total_x += (double)ax[l];
        }
    }
    if (sum_x) *sum_x = total_x;
    return total;
}

static int64_t FN(xent_target)(const hft_xent_args *a, int64_t r) {
    return a->target_dtype == HFT_I32 ? (int64_t)((const int32_t *)a->targets)[r]
                                      : ((const int64_t *)a->targets)[r];
}

/* Rows [r0, r1): per-row loss and log-sum-exp. */
static void FN(xent_fwd_rows)(int64_t r0, int64_t r1, void *job) {
    const hft_xent_args *a = job;
    const T *logits = (const T *)a->logits;
    T *row_loss = (T *)a->row_loss, *lse = (T *)a->lse;
    int64_t C = a->classes;
    double eps = a->label_smoothing;
    for (int64_t r = r0; r < r1; r++) {
        int64_t t = FN(xent_target)(a, r);
        if (t == a->ignore_index) {
            row_loss[r] = 0;
            if (lse) lse[r] = 0;
            continue;
        }
        const T *x = logits + r * a->ld;
        T m = FN(xent_max)(x, C);
        double sx = 0;
        double log_s = log(FN(xent_sums)(x, C, m, eps > 0 ? &sx : NULL));
        /* -log p_c = (m - x_c) + log Σ exp(x - m): the differences keep f32 precision near the max */
        double nll = t >= 0 && t < C ? (double)m - (double)x[t] + log_s : NAN;
        double smooth = (double)m - sx / (double)C + log_s;
        row_loss[r] = (T)(eps > 0 ? (1 - eps) * nll + eps * smooth : nll);
        if (lse) lse[r] = (T)((double)m + log_s);
    }
}

static void FN(xent_fwd)(const hft_xent_args *a) {
    hft_parallel_range(a->rows, a->rows * a->classes > 32768, FN(xent_fwd_rows), (void *)a);
}

/* d = s·exp(x - lse) - c over a row; d may be x itself (the fused classifier turns its logits block
 * into dlogits in place), hence the separate in-place loop rather than aliasing restrict pointers. */
static void FN(xent_row_grad)(T *restrict d, const T *restrict x, int64_t n, T lse, T s, T c, int acc) {
    if (acc) {
        for (int64_t i = 0; i < n; i++) d[i] += s * EXPT(x[i] - lse) - c;
    } else {
        for (int64_t i = 0; i < n; i++) d[i] = s * EXPT(x[i] - lse) - c;
    }
}

static void FN(xent_row_grad_inplace)(T *restrict x, int64_t n, T lse, T s, T c) {
    for (int64_t i = 0; i < n; i++) x[i] = s * EXPT(x[i] - lse) - c;
}

/* Rows [r0, r1) of dlogits. */
static void FN(xent_bwd_rows)(int64_t r0, int64_t r1, void *job) {
    const hft_xent_args *a = job;
    const T *logits = (const T *)a->logits;
    const T *lse = (const T *)a->lse;
    T *dlogits = (T *)a->dlogits;
    int64_t C = a->classes;
    int inplace = (const void *)dlogits == a->logits;
    int acc = a->accumulate && !inplace;
    T s = (T)a->scale;
    T c = (T)(a->scale * a->label_smoothing / (double)C);
    T hit = (T)(a->scale * (1 - a->label_smoothing));
    for (int64_t r = r0; r < r1; r++) {
        int64_t t = FN(xent_target)(a, r);
        T *d = dlogits + r * a->ld;
        if (t == a->ignore_index) {
            if (!acc)
                for (int64_t i = 0; i < C; i++) d[i] = 0;
            continue;
        }
        if (inplace)
            FN(xent_row_grad_inplace)(d, C, lse[r], s, c);
        else
            FN(xent_row_grad)(d, logits + r * a->ld, C, lse[r], s, c, acc);
        if (t >= 0 && t < C) d[t] -= hit;
    }
}

static void FN(xent_bwd)(const hft_xent_args *a) {
    hft_parallel_range(a->rows, a->rows * a->classes > 32768, FN(xent_bwd_rows), (void *)a);
}
