/* The optimizer kernels for one dtype (included by optim.c with T and SFX defined). Each update is written
 * operation for operation as its torch reference computes it in that dtype: scalars rounded to T first,
 * FMAT where torch's vectorised kernel makes a fused multiply-add (add with alpha, lerp, addcmul), and
 * separate roundings elsewhere. The generic x86-64 build has no FMA instruction and rounds twice there. */

#undef FMAT
#if defined(__FMA__) && defined(T_IS_F32)
#define FMAT(a, b, c) fmaf(a, b, c)
#elif defined(__FMA__)
#define FMAT(a, b, c) fma(a, b, c)
#else
#define FMAT(a, b, c) ((a) * (b) + (c))
#endif

/* ---------------------------------------------------------------- Adam / AdamW */

typedef struct FN(adam_job) {
    const hft_adam_args *a;
    double bias_correction1, bias_correction2_sqrt;
} FN(adam_job);

enum { FN(ADAM_PLAIN), FN(ADAM_L2), FN(ADAM_DECOUPLED) };

/* One loop per (weight-decay mode, amsgrad), so every variant vectorises without per-element branches. */
static inline __attribute__((always_inline)) void
FN(adam_loop)(T *restrict p, const T *restrict g, T *restrict m, T *restrict v, T *restrict vmax, int64_t n,
              const int mode, const int ams, T wd, T decay, T coeff, int small, T b2, T c2, T bc2s, T eps,
              T neg_step) {
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i], pi = p[i];
        if (mode == FN(ADAM_L2)) gi = FMAT(pi, wd, gi);
        if (mode == FN(ADAM_DECOUPLED)) pi = pi * decay;
        T mi = m[i];
        /* torch's lerp: m + w·(g - m) for a small weight, g - (1 - w)·(g - m) otherwise, one FMA each */
        mi = FMAT(coeff, gi - mi, small ? mi : gi);
        T vi = FMAT(c2 * gi, gi, v[i] * b2);
        T den;
        if (ams) {
            T mx = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = mx;
            den = SQRTT(mx) / bc2s + eps;
        } else {
            den = SQRTT(vi) / bc2s + eps;
        }
        p[i] = pi + neg_step * mi / den;
        m[i] = mi;
        v[i] = vi;
    }
}

static void FN(adam_slice)(const hft_optim_slice *s, int64_t lo, int64_t hi, const void *job) {
    const FN(adam_job) *j = job;
    const hft_adam_args *a = j->a;
    int64_t o = s->offset + lo, n = hi - lo;
    T *p = (T *)s->param + lo;
    const T *g = (const T *)a->grad + o;
    T *m = (T *)a->exp_avg + o, *v = (T *)a->exp_avg_sq + o;
    T *vmax = a->amsgrad ? (T *)a->max_exp_avg_sq + o : NULL;
    T w = (T)(1.0 - a->beta1);
    int small = FABST(w) < (T)0.5;
    T coeff = small ? w : w - (T)1;
    T wd = (T)s->weight_decay, decay = (T)(1.0 - s->lr * s->weight_decay);
    T b2 = (T)a->beta2, c2 = (T)(1.0 - a->beta2), bc2s = (T)j->bias_correction2_sqrt, eps = (T)a->eps;
    T neg_step = (T)(-(s->lr / j->bias_correction1));
    int mode = s->weight_decay == 0 ? FN(ADAM_PLAIN) : a->decoupled ? FN(ADAM_DECOUPLED) : FN(ADAM_L2);
#define ADAM_CALL(MODE, AMS)                                                                                 \
    FN(adam_loop)(p, g, m, v, vmax, n, MODE, AMS, wd, decay, coeff, small, b2, c2, bc2s, eps, neg_step)
    if (a->amsgrad) {
        if (mode == FN(ADAM_PLAIN))
            ADAM_CALL(FN(ADAM_PLAIN), 1);
        else if (mode == FN(ADAM_L2))
            ADAM_CALL(FN(ADAM_L2), 1);
        else
            ADAM_CALL(FN(ADAM_DECOUPLED), 1);
    } else {
        if (mode == FN(ADAM_PLAIN))
            ADAM_CALL(FN(ADAM_PLAIN), 0);
        else if (mode == FN(ADAM_L2))
            ADAM_CALL(FN(ADAM_L2), 0);
        else
            ADAM_CALL(FN(ADAM_DECOUPLED), 0);
    }
#undef ADAM_CALL
}

static void FN(adam_step)(const hft_adam_args *a) {
    /* in f64, as torch computes them, from the step as a float */
    double step = (double)a->step;
    FN(adam_job)
    j = {.a = a,
         .bias_correction1 = 1.0 - pow(a->beta1, step),
         .bias_correction2_sqrt = sqrt(1.0 - pow(a->beta2, step))};
    for_slices(a->slices, a->n_slices, FN(adam_slice), &j);
}

/* ---------------------------------------------------------------- SGD */

static void FN(sgd_slice)(const hft_optim_slice *s, int64_t lo, int64_t hi, const void *job) {
    const hft_sgd_args *a = job;
    int64_t o = s->offset + lo, n = hi - lo;
    T *restrict p = (T *)s->param + lo;
    const T *restrict g = (const T *)a->grad + o;
    T *restrict b = a->momentum_buffer ? (T *)a->momentum_buffer + o : NULL;
    T wd = (T)s->weight_decay, neg_lr = (T)(-s->lr);
    T mom = (T)a->momentum, damp = (T)(1.0 - a->dampening);
    int has_wd = s->weight_decay != 0, first = a->first_step, nesterov = a->nesterov;
    if (!b) {
        for (int64_t i = 0; i < n; i++) {
            T gi = has_wd ? FMAT(p[i], wd, g[i]) : g[i];
            p[i] = FMAT(gi, neg_lr, p[i]);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        T gi = has_wd ? FMAT(p[i], wd, g[i]) : g[i];
        T bi = first ? gi : FMAT(gi, damp, b[i] * mom); /* torch's first step: the buffer is the gradient */
        b[i] = bi;
        gi = nesterov ? FMAT(bi, mom, gi) : bi;
        p[i] = FMAT(gi, neg_lr, p[i]);
    }
}

static void FN(sgd_step)(const hft_sgd_args *a) {
    for_slices(a->slices, a->n_slices, FN(sgd_slice), a);
}

/* ---------------------------------------------------------------- Lion */

static void FN(lion_slice)(const hft_optim_slice *s, int64_t lo, int64_t hi, const void *job) {
    const hft_lion_args *a = job;
    int64_t o = s->offset + lo, n = hi - lo;
    T *restrict p = (T *)s->param + lo;
    const T *restrict g = (const T *)a->grad + o;
    T *restrict m = (T *)a->exp_avg + o;
    T decay = (T)(1.0 - s->lr * s->weight_decay), neg_lr = (T)(-s->lr);
    T b1 = (T)a->beta1, c1 = (T)(1.0 - a->beta1), b2 = (T)a->beta2, c2 = (T)(1.0 - a->beta2);
    for (int64_t i = 0; i < n; i++) {
        T pi = p[i] * decay, gi = g[i], mi = m[i];
        T c = FMAT(gi, c1, mi * b1);
        T sign = (T)(c > (T)0) - (T)(c < (T)0);
        p[i] = FMAT(sign, neg_lr, pi);
        m[i] = FMAT(gi, c2, mi * b2);
    }
}

static void FN(lion_step)(const hft_lion_args *a) {
    for_slices(a->slices, a->n_slices, FN(lion_slice), a);
}

/* ---------------------------------------------------------------- sum of squares */

static double FN(block_sumsq)(const T *x, int64_t n) {
    double acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) acc[l] += (double)x[i + l] * (double)x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += (double)x[i] * (double)x[i];
    for (int w = 4; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

typedef struct FN(sumsq_job) {
    const T *x;
    int64_t n, first_block;
    double *partial;
} FN(sumsq_job);

static void FN(sumsq_blocks)(int64_t b0, int64_t b1, void *p) {
    const FN(sumsq_job) *j = p;
    for (int64_t b = b0; b < b1; b++) {
        int64_t i0 = (j->first_block + b) * SUMSQ_BLOCK;
        j->partial[b] = FN(block_sumsq)(j->x + i0, j->n - i0 < SUMSQ_BLOCK ? j->n - i0 : SUMSQ_BLOCK);
    }
}

/* Blocks of SUMSQ_BLOCK elements summed in 8 f64 lanes, the blocks' sums added in order. */
static double FN(sumsq)(const void *xv, int64_t n) {
    enum { GROUP = 512 };
    double partial[GROUP], total = 0;
    int64_t blocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    FN(sumsq_job) j = {.x = (const T *)xv, .n = n, .partial = partial};
    for (j.first_block = 0; j.first_block < blocks; j.first_block += GROUP) {
        int64_t gn = blocks - j.first_block < GROUP ? blocks - j.first_block : GROUP;
        hft_parallel_range(gn, gn > 8, FN(sumsq_blocks), &j);
        for (int64_t b = 0; b < gn; b++) total += partial[b];
    }
    return total;
}

/* ---------------------------------------------------------------- Adafactor */

/* transformers' Adafactor in the order it runs: g² + eps1 → second-moment state (row and column means, or
 * the full moment) → update u = (r_i c_j) g or g / √v → u / max(1, RMS(u) / clip_threshold) → ·lr →
 * (β1 average) → p + decay·p - u. Sums are f64 over a fixed partition; torch's are f32, so the means and
 * norms agree to an ulp or two, not bit for bit. */
typedef struct FN(afac_job) {
    const hft_adafactor_args *a;
    const T *g;
    T *p, *row, *col, *v, *m, *rfac, *cfac;
    int64_t R, C, n, rows_per_block, first_block, cblocks;
    T eps1, b2t, c2, clip_div, lr, b1, c1, decay;
    double *partial;
} FN(afac_job);

/* Eight f64 lanes added pairwise: the fixed order every Adafactor sum ends with. */
static inline double FN(lanes_total)(double *acc) {
    for (int w = 4; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* Row means of g² + eps1 into the row state (8 f64 lanes per row). */
static void FN(afac_rows)(int64_t r0, int64_t r1, void *pj) {
    const FN(afac_job) *j = pj;
    for (int64_t r = r0; r < r1; r++) {
        const T *g = j->g + r * j->C;
        double acc[8] = {0};
        int64_t c = 0;
        for (; c + 8 <= j->C; c += 8)
            for (int l = 0; l < 8; l++) acc[l] += (double)(g[c + l] * g[c + l] + j->eps1);
        for (int l = 0; c < j->C; c++, l++) acc[l] += (double)(g[c] * g[c] + j->eps1);
        T mean = (T)FN(lanes_total)(acc) / (T)j->C;
        j->row[r] = FMAT(mean, j->c2, j->row[r] * j->b2t);
    }
}

/* Column means of g² + eps1 into the column state: task = (batch, block of AFAC_CB columns). */
static void FN(afac_cols)(int64_t t0, int64_t t1, void *pj) {
    const FN(afac_job) *j = pj;
    for (int64_t t = t0; t < t1; t++) {
        int64_t b = t / j->cblocks, c0 = (t % j->cblocks) * AFAC_CB;
        int64_t cn = j->C - c0 < AFAC_CB ? j->C - c0 : AFAC_CB;
        double acc[AFAC_CB] = {0};
        for (int64_t r = 0; r < j->R; r++) {
            const T *g = j->g + (b * j->R + r) * j->C + c0;
            for (int64_t c = 0; c < cn; c++) acc[c] += (double)(g[c] * g[c] + j->eps1);
        }
        T *col = j->col + b * j->C + c0;
        for (int64_t c = 0; c < cn; c++) col[c] = FMAT((T)acc[c] / (T)j->R, j->c2, col[c] * j->b2t);
    }
}

/* Σ u² over blocks of rows (factored). */
static void FN(afac_usq_rows)(int64_t b0, int64_t b1, void *pj) {
    const FN(afac_job) *j = pj;
    int64_t nrows = j->n / j->C;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t r0 = (j->first_block + blk) * j->rows_per_block;
        int64_t r1 = r0 + j->rows_per_block < nrows ? r0 + j->rows_per_block : nrows;
        double s = 0;
        for (int64_t r = r0; r < r1; r++) {
            const T *g = j->g + r * j->C, *cf = j->cfac + (r / j->R) * j->C;
            T rf = j->rfac[r];
            double acc[8] = {0};
            int64_t c = 0;
            for (; c + 8 <= j->C; c += 8)
                for (int l = 0; l < 8; l++) {
                    T u = rf * cf[c + l] * g[c + l];
                    acc[l] += (double)u * (double)u;
                }
            for (int l = 0; c < j->C; c++, l++) {
                T u = rf * cf[c] * g[c];
                acc[l] += (double)u * (double)u;
            }
            s += FN(lanes_total)(acc);
        }
        j->partial[blk] = s;
    }
}

/* The full second moment, and Σ u² over blocks of SUMSQ_BLOCK elements (not factored). */
static void FN(afac_moment)(int64_t b0, int64_t b1, void *pj) {
    const FN(afac_job) *j = pj;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0 = (j->first_block + blk) * SUMSQ_BLOCK;
        int64_t i1 = i0 + SUMSQ_BLOCK < j->n ? i0 + SUMSQ_BLOCK : j->n;
        double acc[8] = {0};
        for (int64_t i = i0; i < i1; i += 8) {
            int64_t w = i1 - i < 8 ? i1 - i : 8;
            for (int l = 0; l < w; l++) {
                T gi = j->g[i + l];
                T vi = FMAT(gi * gi + j->eps1, j->c2, j->v[i + l] * j->b2t);
                j->v[i + l] = vi;
                T u = (T)1 / SQRTT(vi) * gi;
                acc[l] += (double)u * (double)u;
            }
        }
        j->partial[blk] = FN(lanes_total)(acc);
    }
}

/* p ← p + decay·p - (β1 average of) u / x · lr, a block of SUMSQ_BLOCK elements per task, the raw
 * updates u recomputed from the state as the Σ u² pass made them. */
static void FN(afac_apply)(int64_t b0, int64_t b1, void *pj) {
    const FN(afac_job) *j = pj;
    T x = j->clip_div, lr = j->lr, b1c = j->b1, c1 = j->c1, decay = j->decay;
    int has_m = j->m != NULL, has_decay = decay != 0;
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t i0 = blk * SUMSQ_BLOCK, i1 = i0 + SUMSQ_BLOCK < j->n ? i0 + SUMSQ_BLOCK : j->n;
        T ubuf[SUMSQ_BLOCK];
        if (j->row) {
            for (int64_t i = i0; i < i1;) { /* raw updates of this block, a row piece at a time */
                int64_t r = i / j->C, c = i % j->C, cn = j->C - c < i1 - i ? j->C - c : i1 - i;
                const T *g = j->g + i, *cf = j->cfac + (r / j->R) * j->C + c;
                T rf = j->rfac[r];
                T *ub = ubuf + (i - i0);
                for (int64_t k = 0; k < cn; k++) ub[k] = rf * cf[k] * g[k];
                i += cn;
            }
        } else {
            const T *g = j->g + i0, *v = j->v + i0;
            for (int64_t k = 0; k < i1 - i0; k++) ubuf[k] = (T)1 / SQRTT(v[k]) * g[k];
        }
        T *restrict p = j->p + i0;
        T *restrict m = has_m ? j->m + i0 : NULL;
        for (int64_t k = 0; k < i1 - i0; k++) {
            T u = ubuf[k] / x * lr;
            if (has_m) {
                u = FMAT(u, c1, m[k] * b1c);
                m[k] = u;
            }
            T pi = has_decay ? FMAT(p[k], decay, p[k]) : p[k];
            p[k] = pi - u;
        }
    }
}

static void FN(adafactor_step)(const hft_adafactor_args *a) {
    int64_t n = a->batch * a->rows * a->cols;
    if (n == 0) return;
    FN(afac_job)
    j = {.a = a,
         .g = (const T *)a->grad,
         .p = (T *)a->param,
         .m = (T *)a->exp_avg,
         .n = n,
         .eps1 = (T)a->eps1,
         .b2t = (T)a->beta2t,
         .c2 = (T)(1.0 - a->beta2t),
         .lr = (T)a->lr,
         .b1 = (T)a->beta1,
         .c1 = (T)(1.0 - a->beta1),
         .decay = (T)a->decay};
    enum { GROUP = 512 };
    double partial[GROUP], usq = 0;
    j.partial = partial;
    bool par = n >= OPT_PARALLEL_MIN;
    if (a->factored) {
        int64_t B = a->batch, R = a->rows, C = a->cols;
        j.R = R;
        j.C = C;
        j.row = (T *)a->exp_avg_sq_row;
        j.col = (T *)a->exp_avg_sq_col;
        j.rfac = (T *)a->scratch;
        j.cfac = j.rfac + B * R;
        hft_parallel_range(B * R, par, FN(afac_rows), &j);
        j.cblocks = (C + AFAC_CB - 1) / AFAC_CB;
        hft_parallel_range(B * j.cblocks, par, FN(afac_cols), &j);
        for (int64_t b = 0; b < B; b++) { /* r_i = rsqrt(row_i / mean(row)), c_j = rsqrt(col_j) */
            const T *row = j.row + b * R;
            double s = 0;
            for (int64_t r = 0; r < R; r++) s += (double)row[r];
            T mean = (T)s / (T)R;
            for (int64_t r = 0; r < R; r++) j.rfac[b * R + r] = (T)1 / SQRTT(row[r] / mean);
            for (int64_t c = 0; c < C; c++) j.cfac[b * C + c] = (T)1 / SQRTT(j.col[b * C + c]);
        }
        j.rows_per_block = C >= SUMSQ_BLOCK ? 1 : SUMSQ_BLOCK / C;
        int64_t blocks = (B * R + j.rows_per_block - 1) / j.rows_per_block;
        for (j.first_block = 0; j.first_block < blocks; j.first_block += GROUP) {
            int64_t gn = blocks - j.first_block < GROUP ? blocks - j.first_block : GROUP;
            hft_parallel_range(gn, par && gn > 1, FN(afac_usq_rows), &j);
            for (int64_t b = 0; b < gn; b++) usq += partial[b];
        }
    } else {
        j.v = (T *)a->exp_avg_sq;
        int64_t blocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
        for (j.first_block = 0; j.first_block < blocks; j.first_block += GROUP) {
            int64_t gn = blocks - j.first_block < GROUP ? blocks - j.first_block : GROUP;
            hft_parallel_range(gn, par && gn > 1, FN(afac_moment), &j);
            for (int64_t b = 0; b < gn; b++) usq += partial[b];
        }
    }
    /* update / max(1, RMS(update) / clip_threshold), the RMS in T as torch's norm / √numel */
    T rms = (T)sqrt(usq) / (T)sqrt((double)n);
    T x = rms / (T)a->clip_threshold;
    j.clip_div = x < (T)1 ? (T)1 : x;
    int64_t blocks = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    hft_parallel_range(blocks, par && blocks > 1, FN(afac_apply), &j);
}
