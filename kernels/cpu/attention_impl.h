/* Attention forward and backward for one dtype (included by attention.c with T and SFX defined). Every
 * product is a GEMM on a tile; the element-wise passes (mask, exp, dropout, dS) run over unit-stride
 * rows in 8-lane chunks so that GCC vectorises them, sums included. */

#undef GEMMT
#if defined(T_IS_F32)
#define GEMMT cblas_sgemm
#else
#define GEMMT cblas_dgemm
#endif

static inline T FN(row_max)(const T *x, int64_t n) {
    T acc[8];
    for (int u = 0; u < 8; u++) acc[u] = (T)-INFINITY;
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) acc[u] = x[j + u] > acc[u] ? x[j + u] : acc[u];
    T m = (T)-INFINITY;
    for (; j < n; j++) m = x[j] > m ? x[j] : m;
    for (int u = 0; u < 8; u++) m = acc[u] > m ? acc[u] : m;
    return m;
}

/* exp on the softmax's range (x <= 0). The f32 path floors x at -110, where expf_core already rounds to
 * exactly 0, and calls expf_core directly: hft_expf's range selects are not if-converted under GCC's
 * default -ftrapping-math, which left this loop scalar. A NaN score stays NaN. */
#undef EXP_FLOOR
#undef EXP_CORE
#if defined(T_IS_F32)
#define EXP_FLOOR   (-110.0f)
#define EXP_CORE(x) expf_core(x)
#else
#define EXP_FLOOR   (-INFINITY)
#define EXP_CORE(x) exp(x)
#endif

static inline void FN(shift_floor)(T *x, int64_t n, T sub) {
    for (int64_t j = 0; j < n; j++) {
        T y = x[j] - sub;
        x[j] = y < (T)EXP_FLOOR ? (T)EXP_FLOOR : y;
    }
}

/* x[j] = exp(x[j] - sub) for j < n. */
static inline void FN(exp_shift)(T *x, int64_t n, T sub) {
    FN(shift_floor)(x, n, sub);
    for (int64_t j = 0; j < n; j++) x[j] = EXP_CORE(x[j]);
}

/* x[j] = exp(x[j] - sub) for j < n; returns their sum (lanes combined in a fixed order). */
static inline T FN(exp_shift_sum)(T *x, int64_t n, T sub) {
    FN(shift_floor)(x, n, sub);
    T acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) {
            T p = EXP_CORE(x[j + u]);
            x[j + u] = p;
            acc[u] += p;
        }
    T tail = 0;
    for (; j < n; j++) {
        T p = EXP_CORE(x[j]);
        x[j] = p;
        tail += p;
    }
    T s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    return s + tail;
}

static inline T FN(dot)(const T *x, const T *y, int64_t n) {
    T acc[8] = {0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int u = 0; u < 8; u++) acc[u] += x[j + u] * y[j + u];
    T tail = 0;
    for (; j < n; j++) tail += x[j] * y[j];
    T s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    return s + tail;
}

/* The dropout factors of n consecutive elements from element e0 of `sample`: 1/(1-p) where kept, 0
 * where dropped, as philox_keep draws them. */
static void FN(keep_row)(const hft_rng_key *key, int64_t sample, uint64_t e0, int64_t n, float p, T keep,
                         uint32_t *words, T *z) {
    const uint32_t *r = philox_row(key, sample, e0, n, words);
    for (int64_t j = 0; j < n; j++) z[j] = hft_u32_to_unit(r[j]) >= p ? keep : (T)0;
}

/* Hides the scores of row i (keys [j0, j0 + nk), query row i of batch row b) that the key mask or the
 * segment ids forbid; returns how many leading keys causal masking leaves (the rest are not read). */
static int64_t FN(mask_row)(const hft_attn_args *a, int64_t b, int64_t i, int64_t j0, int64_t nk, int vis,
                            T *s) {
    int64_t lim = causal_limit(a, i, j0, nk);
    if (vis == BLOCK_OPEN) return lim;
    const T ninf = (T)-INFINITY;
    const uint8_t *km = a->key_mask ? a->key_mask + b * a->tk + j0 : NULL;
    const int32_t *ks = a->q_segments ? key_segments(a) + b * a->tk + j0 : NULL;
    if (km && ks) {
        int32_t qs = a->q_segments[b * a->tq + i];
        for (int64_t j = 0; j < lim; j++) s[j] = (km[j] != 0) & (ks[j] == qs) ? s[j] : ninf;
    } else if (km) {
        for (int64_t j = 0; j < lim; j++) s[j] = km[j] != 0 ? s[j] : ninf;
    } else if (ks) {
        int32_t qs = a->q_segments[b * a->tq + i];
        for (int64_t j = 0; j < lim; j++) s[j] = ks[j] == qs ? s[j] : ninf;
    }
    return lim;
}

static void FN(zero_rows)(T *p, int64_t rows, int64_t ld, int64_t n) {
    for (int64_t r = 0; r < rows; r++) memset(p + r * ld, 0, sizeof(T) * (size_t)n);
}

static void FN(attn_fwd_tasks)(int64_t t0, int64_t t1, void *job) {
    const hft_attn_args *a = job;
    const int64_t Tq = a->tq, Tk = a->tk, Hq = a->hq, D = a->dim, rep = a->hq / a->hkv;
    const int64_t bq = tile_q(a), bk = tile_k(a), nqb = (Tq + bq - 1) / bq;
    const int64_t ldq = Tq > 1 ? a->q_st : D, ldk = Tk > 1 ? a->k_st : D, ldv = Tk > 1 ? a->v_st : D;
    const size_t per = per_thread_bytes(a, sizeof(T), false);
    const T sc = (T)a->scale;
    const bool drop = a->dropout_p > 0;
    const float pf = (float)a->dropout_p;
    const T keep = (T)(1.0 / (1.0 - a->dropout_p));
    for (int64_t t = t0; t < t1; t++) {
        /* odd heads take their query blocks in reverse, so that under causal masking the round-robin
         * deal gives every thread a mix of short and long rows */
        int64_t r0 = t % nqb, bh = t / nqb, h = bh % Hq, b = bh / Hq;
        int64_t qb = (bh & 1) ? nqb - 1 - r0 : r0;
        char *ws = (char *)a->scratch + per * (size_t)omp_get_thread_num();
        T *S = (T *)ws;
        T *Ot = (T *)(ws + align64((size_t)(bq * bk) * sizeof(T)));
        T *m = (T *)((char *)Ot + align64((size_t)(bq * D) * sizeof(T)));
        T *l = (T *)((char *)m + align64((size_t)bq * sizeof(T)));
        T *z = (T *)((char *)l + align64((size_t)bq * sizeof(T)));
        uint32_t *words = (uint32_t *)((char *)z + align64((size_t)bk * sizeof(T)));
        const int64_t i0 = qb * bq, mq = Tq - i0 < bq ? Tq - i0 : bq, g = h / rep;
        const T *Q = (const T *)a->q + b * a->q_sb + i0 * a->q_st + h * a->q_sh;
        const T *K = (const T *)a->k + b * a->k_sb + g * a->k_sh;
        const T *V = (const T *)a->v + b * a->v_sb + g * a->v_sh;
        int64_t lo, hi;
        key_span(a, b, &lo, &hi);
        if (a->causal && i0 + mq + (Tk - Tq) < hi) hi = i0 + mq + (Tk - Tq);
        int32_t qmin, qmax;
        query_segment_range(a, b, i0, mq, &qmin, &qmax);
        for (int64_t r = 0; r < mq; r++) m[r] = (T)-INFINITY, l[r] = 0;
        memset(Ot, 0, sizeof(T) * (size_t)(mq * D));
        for (int64_t j0 = lo; j0 < hi; j0 += bk) {
            const int64_t nk = hi - j0 < bk ? hi - j0 : bk;
            int vis = block_visibility(a, b, j0, nk, qmin, qmax);
            if (vis == BLOCK_HIDDEN) continue;
            GEMMT(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mq, (int)nk, (int)D, sc, Q, (int)ldq,
                  K + j0 * a->k_st, (int)ldk, (T)0, S, (int)bk);
            for (int64_t r = 0; r < mq; r++) {
                T *s = S + r * bk;
                const int64_t lim = FN(mask_row)(a, b, i0 + r, j0, nk, vis, s);
                T mnew = FN(row_max)(s, lim);
                mnew = m[r] > mnew ? m[r] : mnew;
                if (mnew == (T)-INFINITY) { /* nothing visible yet: no weight, nothing to rescale */
                    memset(s, 0, sizeof(T) * (size_t)nk);
                    continue;
                }
                const T alpha = EXPT(m[r] - mnew);
                const T sum = FN(exp_shift_sum)(s, lim, mnew);
                if (lim < nk) memset(s + lim, 0, sizeof(T) * (size_t)(nk - lim));
                l[r] = l[r] * alpha + sum; /* the normaliser counts every probability, dropped or not */
                m[r] = mnew;
                if (alpha != (T)1) {
                    T *o = Ot + r * D;
                    for (int64_t d = 0; d < D; d++) o[d] *= alpha;
                }
                if (drop) {
                    const uint64_t e0 = (uint64_t)((h * Tq + i0 + r) * Tk + j0);
                    FN(keep_row)(&a->dropout_key, a->sample0 + b, e0, lim, pf, keep, words, z);
                    for (int64_t j = 0; j < lim; j++) s[j] *= z[j];
                }
            }
            GEMMT(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mq, (int)D, (int)nk, (T)1, S, (int)bk,
                  V + j0 * a->v_st, (int)ldv, (T)1, Ot, (int)D);
        }
        T *lse = (T *)a->lse + (b * Hq + h) * Tq + i0;
        for (int64_t r = 0; r < mq; r++) {
            T *o = (T *)a->o + ((b * Tq + i0 + r) * Hq + h) * D;
            if (m[r] == (T)-INFINITY) { /* a row with no visible key: zeros, as the design promises */
                memset(o, 0, sizeof(T) * (size_t)D);
                lse[r] = (T)-INFINITY;
                continue;
            }
            const T inv = (T)1 / l[r], *ot = Ot + r * D;
            for (int64_t d = 0; d < D; d++) o[d] = ot[d] * inv;
            lse[r] = m[r] + LOGT(l[r]);
        }
    }
}

/* Parallel over (batch row, query head, block of query rows); each task runs over the key tiles it can
 * see with a running max and sum per row, so no thread ever holds more than one score tile. */
static void FN(attn_fwd)(const hft_attn_args *a) {
    int64_t ntasks = a->batch * a->hq * ((a->tq + tile_q(a) - 1) / tile_q(a));
    hft_parallel_tasks(ntasks, ntasks > 1, FN(attn_fwd_tasks), (void *)a);
}

static void FN(attn_bwd_tasks)(int64_t t0, int64_t t1, void *job) {
    const hft_attn_args *a = job;
    const int64_t Tq = a->tq, Tk = a->tk, Hq = a->hq, Hkv = a->hkv, D = a->dim;
    const int64_t rep = Hq / Hkv, bq = tile_q(a), bk = tile_k(a), nqb = (Tq + bq - 1) / bq;
    const int64_t ldq = Tq > 1 ? a->q_st : D, ldk = Tk > 1 ? a->k_st : D, ldv = Tk > 1 ? a->v_st : D;
    const int64_t lddq = Tq > 1 ? a->dq_st : D, lddk = Tk > 1 ? a->dk_st : D, lddv = Tk > 1 ? a->dv_st : D;
    const int64_t ldo = Hq * D;
    const size_t per = per_thread_bytes(a, sizeof(T), true);
    const T sc = (T)a->scale;
    const bool drop = a->dropout_p > 0;
    const float pf = (float)a->dropout_p;
    const T keep = (T)(1.0 / (1.0 - a->dropout_p));
    const bool want_ds = a->dq || a->dk;

    for (int64_t t = t0; t < t1; t++) {
        const int64_t b = t / Hkv, g = t % Hkv;
        char *ws = (char *)a->scratch + per * (size_t)omp_get_thread_num();
        T *P = (T *)ws;
        T *dP = (T *)(ws + align64((size_t)(bq * bk) * sizeof(T)));
        T *dQt = (T *)((char *)dP + align64((size_t)(bq * bk) * sizeof(T)));
        T *lse = (T *)((char *)dQt + align64((size_t)(bq * D) * sizeof(T)));
        T *delta = (T *)((char *)lse + align64((size_t)bq * sizeof(T)));
        T *z = (T *)((char *)delta + align64((size_t)bq * sizeof(T)));
        uint32_t *words = (uint32_t *)((char *)z + align64((size_t)bk * sizeof(T)));
        const T *K = (const T *)a->k + b * a->k_sb + g * a->k_sh;
        const T *V = (const T *)a->v + b * a->v_sb + g * a->v_sh;
        T *dK = a->dk ? (T *)a->dk + b * a->dk_sb + g * a->dk_sh : NULL;
        T *dV = a->dv ? (T *)a->dv + b * a->dv_sb + g * a->dv_sh : NULL;
        if (dK && !a->accumulate_dk) FN(zero_rows)(dK, Tk, lddk, D);
        if (dV && !a->accumulate_dv) FN(zero_rows)(dV, Tk, lddv, D);
        int64_t klo, khi;
        key_span(a, b, &klo, &khi);
        for (int64_t h = g * rep; h < (g + 1) * rep; h++) {
            for (int64_t qb = 0; qb < nqb; qb++) {
                const int64_t i0 = qb * bq, mq = Tq - i0 < bq ? Tq - i0 : bq;
                const T *Q = (const T *)a->q + b * a->q_sb + i0 * a->q_st + h * a->q_sh;
                const T *dO = (const T *)a->dout + ((b * Tq + i0) * Hq + h) * D;
                const T *O = (const T *)a->o + ((b * Tq + i0) * Hq + h) * D;
                int64_t hi = khi;
                if (a->causal && i0 + mq + (Tk - Tq) < hi) hi = i0 + mq + (Tk - Tq);
                int32_t qmin, qmax;
                query_segment_range(a, b, i0, mq, &qmin, &qmax);
                const T *lse_src = (const T *)a->lse + (b * Hq + h) * Tq + i0;
                for (int64_t r = 0; r < mq; r++) {
                    lse[r] = lse_src[r];
                    delta[r] = FN(dot)(dO + r * ldo, O + r * ldo, D);
                }
                if (a->dq) memset(dQt, 0, sizeof(T) * (size_t)(mq * D));
                for (int64_t j0 = klo; j0 < hi; j0 += bk) {
                    const int64_t nk = hi - j0 < bk ? hi - j0 : bk;
                    int vis = block_visibility(a, b, j0, nk, qmin, qmax);
                    if (vis == BLOCK_HIDDEN) continue;
                    /* P = exp(scale·QKᵀ − lse), recomputed exactly as the forward made it */
                    GEMMT(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mq, (int)nk, (int)D, sc, Q, (int)ldq,
                          K + j0 * a->k_st, (int)ldk, (T)0, P, (int)bk);
                    for (int64_t r = 0; r < mq; r++) {
                        T *p = P + r * bk;
                        int64_t lim = FN(mask_row)(a, b, i0 + r, j0, nk, vis, p);
                        const T L = lse[r];
                        if (L == (T)-INFINITY) lim = 0;
                        FN(exp_shift)(p, lim, L);
                        if (lim < nk) memset(p + lim, 0, sizeof(T) * (size_t)(nk - lim));
                    }
                    if (want_ds) /* dP = dO Vᵀ */
                        GEMMT(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mq, (int)nk, (int)D, (T)1, dO,
                              (int)ldo, V + j0 * a->v_st, (int)ldv, (T)0, dP, (int)bk);
                    /* dS = P∘(dP∘Z/(1-p) − Δ) into dP; P becomes P∘Z/(1-p) for dV. Past a row's causal
                     * limit P is 0, and so is dS. */
                    for (int64_t r = 0; r < mq; r++) {
                        T *p = P + r * bk, *dp = dP + r * bk;
                        const T dr = delta[r];
                        const int64_t lim = lse[r] == (T)-INFINITY ? 0 : causal_limit(a, i0 + r, j0, nk);
                        if (drop) {
                            const uint64_t e0 = (uint64_t)((h * Tq + i0 + r) * Tk + j0);
                            FN(keep_row)(&a->dropout_key, a->sample0 + b, e0, lim, pf, keep, words, z);
                            if (want_ds)
                                for (int64_t j = 0; j < lim; j++) {
                                    T pj = p[j];
                                    dp[j] = pj * (dp[j] * z[j] - dr);
                                    p[j] = pj * z[j];
                                }
                            else
                                for (int64_t j = 0; j < lim; j++) p[j] *= z[j];
                        } else if (want_ds) {
                            for (int64_t j = 0; j < lim; j++) dp[j] = p[j] * (dp[j] - dr);
                        }
                        if (want_ds && lim < nk) memset(dp + lim, 0, sizeof(T) * (size_t)(nk - lim));
                    }
                    if (dV) /* dV += (P∘Z/(1-p))ᵀ dO */
                        GEMMT(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)D, (int)mq, (T)1, P,
                              (int)bk, dO, (int)ldo, (T)1, dV + j0 * lddv, (int)lddv);
                    if (a->dq) /* dQ += scale·dS K */
                        GEMMT(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)mq, (int)D, (int)nk, sc, dP,
                              (int)bk, K + j0 * a->k_st, (int)ldk, (T)1, dQt, (int)D);
                    if (dK) /* dK += scale·dSᵀ Q */
                        GEMMT(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, (int)D, (int)mq, sc, dP,
                              (int)bk, Q, (int)ldq, (T)1, dK + j0 * lddk, (int)lddk);
                }
                if (a->dq) {
                    T *dq = (T *)a->dq + b * a->dq_sb + i0 * a->dq_st + h * a->dq_sh;
                    for (int64_t r = 0; r < mq; r++) {
                        T *dst = dq + r * lddq;
                        const T *src = dQt + r * D;
                        if (a->accumulate_dq)
                            for (int64_t d = 0; d < D; d++) dst[d] += src[d];
                        else
                            for (int64_t d = 0; d < D; d++) dst[d] = src[d];
                    }
                }
            }
        }
    }
}

/* Parallel over (batch row, key/value head): a task owns dK and dV of its head and dQ of the query heads
 * that share it, so every gradient is summed in one fixed order, whatever the thread count. */
static void FN(attn_bwd)(const hft_attn_args *a) {
    int64_t ntasks = a->batch * a->hkv;
    hft_parallel_tasks(ntasks, ntasks > 1, FN(attn_bwd_tasks), (void *)a);
}

#undef GEMMT
