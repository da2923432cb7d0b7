/* Reductions, ordered sums and fills for one dtype (included by reduce.c with T and SFX defined).
 * Every sum runs in a fixed order that does not depend on the thread count: rows are summed in 16
 * lanes over blocks of 4096, blocks combined in f64; columns are summed in blocks of 256 rows, blocks
 * combined in f64. */

#define SUM_BLOCK 4096

static double FN(block_sum)(const T *x, int64_t n) {
    T acc[16] = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) acc[l] += x[i + l];
    for (int l = 0; i < n; i++, l++) acc[l] += x[i];
    for (int w = 8; w >= 1; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return (double)acc[0];
}

static double FN(row_sum)(const T *x, int64_t n) {
    double total = 0;
    for (int64_t b = 0; b < n; b += SUM_BLOCK)
        total += FN(block_sum)(x + b, n - b < SUM_BLOCK ? n - b : SUM_BLOCK);
    return total;
}

/* Strided row: only for the generic path. */
static double FN(strided_sum)(const T *x, int64_t n, int64_t stride) {
    double total = 0;
    for (int64_t b = 0; b < n; b += SUM_BLOCK) {
        int64_t m = n - b < SUM_BLOCK ? n - b : SUM_BLOCK;
        T acc = 0;
        for (int64_t i = 0; i < m; i++) acc += x[(b + i) * stride];
        total += (double)acc;
    }
    return total;
}

typedef struct FN(sum_job) {
    const T *x;
    int64_t n, first_block;
    double *partial;
} FN(sum_job);

static void FN(sum_blocks)(int64_t b0, int64_t b1, void *p) {
    const FN(sum_job) *j = p;
    for (int64_t b = b0; b < b1; b++) {
        int64_t i0 = (j->first_block + b) * SUM_BLOCK;
        j->partial[b] = FN(block_sum)(j->x + i0, j->n - i0 < SUM_BLOCK ? j->n - i0 : SUM_BLOCK);
    }
}

static double FN(sum)(const void *xv, int64_t n) {
    int64_t blocks = (n + SUM_BLOCK - 1) / SUM_BLOCK;
    double total = 0;
    enum { GROUP = 512 };
    double partial[GROUP];
    FN(sum_job) j = {.x = (const T *)xv, .n = n, .partial = partial};
    for (j.first_block = 0; j.first_block < blocks; j.first_block += GROUP) {
        int64_t gn = blocks - j.first_block < GROUP ? blocks - j.first_block : GROUP;
        hft_parallel_range(gn, gn > 1, FN(sum_blocks), &j);
        for (int64_t b = 0; b < gn; b++) total += partial[b];
    }
    return total;
}

static void FN(store)(T *o, double v, double alpha, int acc) {
    T r = (T)(alpha * v);
    *o = acc ? *o + r : r;
}

/* Sum over the reduced dims of `in` for the output element whose kept-dim offsets are given.
 * rdims: the reduced dims (shape, in-stride); the innermost of them is the last. */
static double FN(sum_reduced)(const T *base, int nr, const int64_t *rshape, const int64_t *rstride) {
    if (nr == 0) return (double)base[0];
    int64_t inner = rshape[nr - 1], istride = rstride[nr - 1];
    int64_t outer = 1;
    for (int d = 0; d < nr - 1; d++) outer *= rshape[d];
    double total = 0;
    int64_t idx[HFT_MAX_DIMS] = {0};
    int64_t off = 0;
    for (int64_t o = 0; o < outer; o++) {
        total += istride == 1 ? FN(row_sum)(base + off, inner) : FN(strided_sum)(base + off, inner, istride);
        for (int d = nr - 2; d >= 0; d--) { /* odometer over the outer reduced dims */
            idx[d]++;
            off += rstride[d];
            if (idx[d] < rshape[d]) break;
            off -= rstride[d] * rshape[d];
            idx[d] = 0;
        }
    }
    return total;
}

#ifndef REDUCE_CB
#define REDUCE_CB 64  /* columns per task */
#define REDUCE_RB 256 /* rows summed in T before adding to the f64 total */
#endif

typedef struct FN(reduce_job) {
    const T *x;
    T *out;
    double alpha;
    int acc, nk, nr;
    int64_t kshape[HFT_MAX_DIMS], kout[HFT_MAX_DIMS], kin[HFT_MAX_DIMS];
    int64_t rshape[HFT_MAX_DIMS], rin[HFT_MAX_DIMS];
    int64_t ncols, cblocks, rtotal;
} FN(reduce_job);

/* Offsets into out and in of the kept-dims index `k`, over the first `nk` kept dims. */
static void FN(kept_offsets)(const FN(reduce_job) * j, int nk, int64_t k, int64_t *ooff, int64_t *ioff) {
    *ooff = *ioff = 0;
    for (int d = nk - 1; d >= 0; d--) {
        int64_t i = k % j->kshape[d];
        k /= j->kshape[d];
        *ooff += i * j->kout[d];
        *ioff += i * j->kin[d];
    }
}

/* Tasks [t0, t1): a block of up to REDUCE_CB columns of one outer kept index, summed over every reduced
 * row in order — in blocks of REDUCE_RB rows, blocks combined in f64. */
static void FN(reduce_columns)(int64_t t0, int64_t t1, void *p) {
    const FN(reduce_job) *j = p;
    for (int64_t task = t0; task < t1; task++) {
        int64_t ko = task / j->cblocks, c0 = (task % j->cblocks) * REDUCE_CB;
        int64_t cn = j->ncols - c0 < REDUCE_CB ? j->ncols - c0 : REDUCE_CB;
        int64_t ooff, ioff;
        FN(kept_offsets)(j, j->nk - 1, ko, &ooff, &ioff);
        double total[REDUCE_CB] = {0};
        T blk[REDUCE_CB];
        int64_t ridx[HFT_MAX_DIMS] = {0}, roff = 0;
        for (int64_t r0 = 0; r0 < j->rtotal; r0 += REDUCE_RB) {
            int64_t rn = j->rtotal - r0 < REDUCE_RB ? j->rtotal - r0 : REDUCE_RB;
            for (int64_t c = 0; c < cn; c++) blk[c] = 0;
            for (int64_t r = 0; r < rn; r++) {
                const T *row = j->x + ioff + roff + c0;
                for (int64_t c = 0; c < cn; c++) blk[c] += row[c];
                for (int d = j->nr - 1; d >= 0; d--) { /* odometer over the reduced dims */
                    ridx[d]++;
                    roff += j->rin[d];
                    if (ridx[d] < j->rshape[d]) break;
                    roff -= j->rin[d] * j->rshape[d];
                    ridx[d] = 0;
                }
            }
            for (int64_t c = 0; c < cn; c++) total[c] += (double)blk[c];
        }
        for (int64_t c = 0; c < cn; c++) FN(store)(j->out + ooff + c0 + c, total[c], j->alpha, j->acc);
    }
}

static void FN(reduce_general)(int64_t o0, int64_t o1, void *p) {
    const FN(reduce_job) *j = p;
    for (int64_t o = o0; o < o1; o++) {
        int64_t ooff, ioff;
        FN(kept_offsets)(j, j->nk, o, &ooff, &ioff);
        FN(store)(j->out + ooff, FN(sum_reduced)(j->x + ioff, j->nr, j->rshape, j->rin), j->alpha, j->acc);
    }
}

static void FN(reduce)(const hft_reduce_args *args) {
    const hft_kview *in = &args->in;
    hft_kview outx = *in; /* out's strides over in's shape, 0 where reduced */
    outx.data = args->out.data;
    for (int d = 0; d < in->ndim; d++)
        outx.stride[d] = (args->out.shape[d] == 1 && in->shape[d] != 1) ? 0 : args->out.stride[d];
    const hft_kview *views[2] = {&outx, in};
    int nd;
    int64_t shape[HFT_MAX_DIMS], st[2][HFT_MAX_DIMS];
    cpu_coalesce(2, views, &nd, shape, st);
    T *out = (T *)args->out.data;
    const T *x = (const T *)in->data;
    double alpha = args->alpha;
    int acc = args->accumulate;

    int nk = 0, nr = 0;
    int64_t kshape[HFT_MAX_DIMS], kout[HFT_MAX_DIMS], kin[HFT_MAX_DIMS];
    int64_t rshape[HFT_MAX_DIMS], rin[HFT_MAX_DIMS];
    for (int d = 0; d < nd; d++) {
        if (st[0][d] == 0 && shape[d] > 1) {
            rshape[nr] = shape[d];
            rin[nr++] = st[1][d];
        } else {
            kshape[nk] = shape[d];
            kout[nk] = st[0][d];
            kin[nk++] = st[1][d];
        }
    }
    int64_t nout = 1;
    for (int d = 0; d < nk; d++) nout *= kshape[d];

    if (nr == 0) { /* nothing to reduce: out (+)= alpha * in */
        hft_map_args m = {
            .op = HFT_MAP_SCALE, .n_in = 1, .out = outx, .alpha = alpha, .accumulate = args->accumulate};
        m.in[0] = *in;
        FN(map)(&m);
        return;
    }
    if (nout == 1 && nr == 1 && rin[0] == 1) { /* everything into one value */
        FN(store)(out, FN(sum)(x, rshape[0]), alpha, acc);
        return;
    }
    FN(reduce_job) j = {.x = x, .out = out, .alpha = alpha, .acc = acc, .nk = nk, .nr = nr};
    memcpy(j.kshape, kshape, sizeof kshape);
    memcpy(j.kout, kout, sizeof kout);
    memcpy(j.kin, kin, sizeof kin);
    memcpy(j.rshape, rshape, sizeof rshape);
    memcpy(j.rin, rin, sizeof rin);
    /* Columns: the innermost dim is kept and unit-stride in both; sum whole rows into column blocks. */
    if (nd >= 2 && nk >= 1 && st[0][nd - 1] == 1 && st[1][nd - 1] == 1 && shape[nd - 1] > 1) {
        j.ncols = kshape[nk - 1];
        j.cblocks = (j.ncols + REDUCE_CB - 1) / REDUCE_CB;
        j.rtotal = 1;
        for (int d = 0; d < nr; d++) j.rtotal *= rshape[d];
        int64_t tasks = nout / j.ncols * j.cblocks;
        hft_parallel_range(tasks, tasks > 1 && nout * j.rtotal > 32768, FN(reduce_columns), &j);
        return;
    }
    /* General: one output element per task, its reduced elements summed in order. */
    hft_parallel_range(nout, nout > 1 && cpu_numel(in) > 32768, FN(reduce_general), &j);
}

typedef struct FN(fill_job) {
    T *p;
    T v;
    int nd;
    int64_t shape[HFT_MAX_DIMS], st[1][HFT_MAX_DIMS];
} FN(fill_job);

static void FN(fill_rows)(int64_t r0, int64_t r1, void *pj) {
    const FN(fill_job) *j = pj;
    int64_t inner = j->shape[j->nd - 1], is = j->st[0][j->nd - 1];
    for (int64_t r = r0; r < r1; r++) {
        int64_t off = 0, rem = r;
        for (int d = j->nd - 2; d >= 0; d--) {
            off += (rem % j->shape[d]) * j->st[0][d];
            rem /= j->shape[d];
        }
        T *row = j->p + off;
        if (is == 1)
            for (int64_t i = 0; i < inner; i++) row[i] = j->v;
        else
            for (int64_t i = 0; i < inner; i++) row[i * is] = j->v;
    }
}

static void FN(fill)(const hft_kview *dst, double value) {
    const hft_kview *views[1] = {dst};
    FN(fill_job) j = {.p = (T *)dst->data, .v = (T)value};
    cpu_coalesce(1, views, &j.nd, j.shape, j.st);
    int64_t rows = 1;
    for (int d = 0; d < j.nd - 1; d++) rows *= j.shape[d];
    hft_parallel_range(rows, rows * j.shape[j.nd - 1] > 65536, FN(fill_rows), &j);
}
