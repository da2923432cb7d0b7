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

static double FN(sum)(const void *xv, int64_t n) {
    const T *x = (const T *)xv;
    int64_t blocks = (n + SUM_BLOCK - 1) / SUM_BLOCK;
    double total = 0;
    enum { GROUP = 512 };
    double partial[GROUP];
    for (int64_t g0 = 0; g0 < blocks; g0 += GROUP) {
        int64_t gn = blocks - g0 < GROUP ? blocks - g0 : GROUP;
#pragma omp parallel for schedule(static) if (gn > 1)
        for (int64_t b = 0; b < gn; b++) {
            int64_t i0 = (g0 + b) * SUM_BLOCK;
            partial[b] = FN(block_sum)(x + i0, n - i0 < SUM_BLOCK ? n - i0 : SUM_BLOCK);
        }
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
    /* Columns: the innermost dim is kept and unit-stride in both; sum whole rows into column blocks. */
    if (nd >= 2 && nk >= 1 && st[0][nd - 1] == 1 && st[1][nd - 1] == 1 && shape[nd - 1] > 1) {
        int64_t ncols = kshape[nk - 1];
        int64_t outer_k = nout / ncols;
        enum { CB = 64, RB = 256 };
        int64_t cblocks = (ncols + CB - 1) / CB;
        int64_t rtotal = 1;
        for (int d = 0; d < nr; d++) rtotal *= rshape[d];
#pragma omp parallel for schedule(static) if (outer_k * cblocks > 1 && nout * rtotal > 32768)
        for (int64_t task = 0; task < outer_k * cblocks; task++) {
            int64_t ko = task / cblocks, c0 = (task % cblocks) * CB;
            int64_t cn = ncols - c0 < CB ? ncols - c0 : CB;
            int64_t ooff = 0, ioff = 0, rem = ko;
            for (int d = nk - 2; d >= 0; d--) {
                int64_t i = rem % kshape[d];
                rem /= kshape[d];
                ooff += i * kout[d];
                ioff += i * kin[d];
            }
            double total[CB] = {0};
            T blk[CB];
            int64_t ridx[HFT_MAX_DIMS] = {0}, roff = 0;
            for (int64_t r0 = 0; r0 < rtotal; r0 += RB) {
                int64_t rn = rtotal - r0 < RB ? rtotal - r0 : RB;
                for (int64_t c = 0; c < cn; c++) blk[c] = 0;
                for (int64_t r = 0; r < rn; r++) {
                    const T *row = x + ioff + roff + c0;
                    for (int64_t c = 0; c < cn; c++) blk[c] += row[c];
                    for (int d = nr - 1; d >= 0; d--) {
                        ridx[d]++;
                        roff += rin[d];
                        if (ridx[d] < rshape[d]) break;
                        roff -= rin[d] * rshape[d];
                        ridx[d] = 0;
                    }
                }
                for (int64_t c = 0; c < cn; c++) total[c] += (double)blk[c];
            }
            for (int64_t c = 0; c < cn; c++) FN(store)(out + ooff + c0 + c, total[c], alpha, acc);
        }
        return;
    }
    /* General: one output element per task, its reduced elements summed in order. */
#pragma omp parallel for schedule(static) if (nout > 1 && cpu_numel(in) > 32768)
    for (int64_t o = 0; o < nout; o++) {
        int64_t ooff = 0, ioff = 0, rem = o;
        for (int d = nk - 1; d >= 0; d--) {
            int64_t i = rem % kshape[d];
            rem /= kshape[d];
            ooff += i * kout[d];
            ioff += i * kin[d];
        }
        FN(store)(out + ooff, FN(sum_reduced)(x + ioff, nr, rshape, rin), alpha, acc);
    }
}

static void FN(fill)(const hft_kview *dst, double value) {
    const hft_kview *views[1] = {dst};
    int nd;
    int64_t shape[HFT_MAX_DIMS], st[1][HFT_MAX_DIMS];
    cpu_coalesce(1, views, &nd, shape, st);
    T v = (T)value;
    T *p = (T *)dst->data;
    int64_t inner = shape[nd - 1], is = st[0][nd - 1], rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= shape[d];
#pragma omp parallel for schedule(static) if (rows * inner > 65536)
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            off += (rem % shape[d]) * st[0][d];
            rem /= shape[d];
        }
        T *row = p + off;
        if (is == 1)
            for (int64_t i = 0; i < inner; i++) row[i] = v;
        else
            for (int64_t i = 0; i < inner; i++) row[i * is] = v;
    }
}
