// Adafactor's step on CUDA for one f32 parameter (transformers' Adafactor as kernels/cpu/optim_impl.h
// computes it), given the lr the optimizer derived from the parameter's RMS. Not the lr, not the state's
// allocation: those are the optimizer's (optim/optimizer.c).
//
// Bit-exact with the CPU's FMA paths (AVX2, AVX-512). Every f32 expression is the CPU's, in its order: fmaf
// where the CPU writes FMAT, explicitly rounded products, quotients and square roots everywhere else (as
// optim.cu, so nvcc can neither contract nor approximate them), the scalars rounded to f32 on the host by
// the CPU's own casts. Every f64 sum keeps the CPU's association:
//   - a row's sum (of g² + eps1 for the row state, of u² for the clip) is 8 f64 lanes, lane l adding the
//     columns c ≡ l (mod 8) in order, the lanes then added pairwise (l, l+4), (l, l+2), (l, l+1): here a
//     team of 8 threads per row, a thread per lane, and an xor butterfly over 4, 2, 1 adds the same pairs
//     (addition is commutative, so which operand comes first within a pair does not matter);
//   - a column's sum runs over the rows in order: a thread per column;
//   - the unfactored Σ u² is 8 lanes over each block of 4096 elements: a CUDA block per CPU block, which
//     stages the block's terms in shared memory for 8 threads to add as the CPU's lanes;
//   - the mean of the row state, and the total Σ u² (row sums grouped into the CPU's blocks of rows, the
//     blocks' sums added in order), are sequential sums: one thread adds, tile by tile, terms its whole block
//     loads.
// The sequential chains are the price of the CPU's bits: a column sum is `rows` dependent f64 adds in one
// thread, the row-state mean and the total one chain each. Squares of f32 values are exact in f64, so
// whether nvcc fuses `acc += (double)u * (double)u` into one FMA does not change a bit.
//
// Launches, factored: row state, column state, factors (into the caller's scratch), Σ u² per row, the clip
// divisor, the update. Not factored: moment and Σ u² per block, the clip divisor, the update. The f64
// partials and the clip divisor live in hft_cuda_scratch(HFT_SCRATCH_REDUCE), ordered on the stream.
#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/cuda/ieee.cuh"

namespace {

constexpr int THREADS = 256;
constexpr int LANES = 8;                 // the CPU's f64 lanes
constexpr int TEAMS = THREADS / LANES;   // rows per block of the row kernels
constexpr int64_t USQ_BLOCK = 4096;      // the CPU's SUMSQ_BLOCK: elements per partial of Σ u²
constexpr int64_t BLOCK_CAP = 65535 * 8; // grid cap of the per-batch and per-block kernels

// One parameter's step as the kernels read it: device pointers, the f32 scalars rounded on the host.
struct afac {
    float *p;
    const float *g;
    float *row, *col, *v, *m;               // row / col factored, v not; m only with β1
    float *rfac, *cfac;                     // factored: the caller's scratch, [B·R] then [B·C]
    int64_t B, R, C, n;                     // the parameter as [B, R, C], n = B·R·C
    float eps1, b2t, c2, lr, b1, c1, decay; // as the CPU's afac_job
    float fR, fC, sqrt_n, clip;             // (T)R, (T)C, (T)sqrt((double)n), (T)clip_threshold
    double *tot;                            // Σ u² of each row (factored) or 4096-element block
    int64_t ntot, group;                    // tot's length; how many of them make one CPU partial
    float *clip_div;                        // max(1, RMS(u) / clip_threshold)
};

// The CPU's lanes_total over the 8 threads of a team, lane 0 of the team getting the CPU's bits. Every
// thread of the warp calls it.
HFT_DEVICE double lanes_total(double v) {
    v += __shfl_xor_sync(0xffffffffu, v, 4);
    v += __shfl_xor_sync(0xffffffffu, v, 2);
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v;
}

// Σ term(i) for i < n added in order by thread 0 (the only thread that gets it), the terms loaded a tile of
// THREADS at a time by the whole block, so that THREADS loads are in flight rather than one. Every thread
// of the block calls it.
template <class F> HFT_DEVICE double ordered_sum(int64_t n, F term) {
    __shared__ double tile[THREADS];
    double s = 0.0;
    for (int64_t t0 = 0; t0 < n; t0 += THREADS) {
        const int64_t i = t0 + (int64_t)threadIdx.x;
        if (i < n) tile[threadIdx.x] = term(i);
        __syncthreads();
        if (threadIdx.x == 0) {
            const int m = n - t0 < THREADS ? (int)(n - t0) : THREADS;
            for (int k = 0; k < m; k++) s += tile[k];
        }
        __syncthreads(); // the tile is rewritten next round
    }
    return s;
}

// ---------------------------------------------------------------- factored

// Over the B·R rows, a team of 8 threads per row: USQ false, the row state from the mean of g² + eps1 (the
// CPU's afac_rows); USQ true, the row's Σ u², u = r_i c_j g (afac_usq_rows), into tot.
template <bool USQ> __global__ void __launch_bounds__(THREADS) row_kernel(afac a) {
    const int lane = (int)threadIdx.x % LANES;
    const int64_t nrows = a.B * a.R, C = a.C;
    // base is the same in every thread of the block, so whole warps reach lanes_total together
    for (int64_t base = (int64_t)blockIdx.x * TEAMS; base < nrows; base += (int64_t)gridDim.x * TEAMS) {
        const int64_t r = base + (int64_t)threadIdx.x / LANES;
        double acc = 0.0;
        if (r < nrows) {
            const float *g = a.g + r * C;
            if constexpr (USQ) {
                const float rf = a.rfac[r], *cf = a.cfac + (r / a.R) * C;
                for (int64_t c = lane; c < C; c += LANES) {
                    const float u = mul_rn(mul_rn(rf, cf[c]), g[c]);
                    acc += (double)u * (double)u;
                }
            } else {
                for (int64_t c = lane; c < C; c += LANES) acc += (double)(mul_rn(g[c], g[c]) + a.eps1);
            }
        }
        const double total = lanes_total(acc);
        if (r < nrows && lane == 0) {
            if constexpr (USQ)
                a.tot[r] = total;
            else
                a.row[r] = fmaf(div_rn((float)total, a.fC), a.c2, mul_rn(a.row[r], a.b2t));
        }
    }
}

// The column state from the mean of g² + eps1 down each column, rows in order (the CPU's afac_cols): a
// thread per (batch, column), consecutive threads on consecutive columns.
__global__ void __launch_bounds__(THREADS) col_kernel(afac a) {
    const int64_t ncols = a.B * a.C, R = a.R, C = a.C;
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < ncols;
         i += (int64_t)gridDim.x * THREADS) {
        const int64_t b = i / C, c = i - b * C;
        const float *g = a.g + b * R * C + c;
        double acc = 0.0;
        int64_t r = 0;
        for (; r + 8 <= R; r += 8) { // eight loads in flight ahead of the ordered adds
            float t[8];
            HFT_UNROLL
            for (int k = 0; k < 8; k++) t[k] = g[(r + k) * C];
            HFT_UNROLL
            for (int k = 0; k < 8; k++) acc += (double)(mul_rn(t[k], t[k]) + a.eps1);
        }
        for (; r < R; r++) {
            const float t = g[r * C];
            acc += (double)(mul_rn(t, t) + a.eps1);
        }
        a.col[i] = fmaf(div_rn((float)acc, a.fR), a.c2, mul_rn(a.col[i], a.b2t));
    }
}

// r_i = 1 / √(row_i / mean(row)), c_j = 1 / √col_j: a block per batch, the mean summed in row order.
__global__ void __launch_bounds__(THREADS) factor_kernel(afac a) {
    __shared__ float mean_s;
    for (int64_t b = blockIdx.x; b < a.B; b += gridDim.x) {
        const float *row = a.row + b * a.R, *col = a.col + b * a.C;
        const double s = ordered_sum(a.R, [row](int64_t r) { return (double)row[r]; });
        if (threadIdx.x == 0) mean_s = div_rn((float)s, a.fR);
        __syncthreads();
        const float mean = mean_s;
        for (int64_t r = threadIdx.x; r < a.R; r += THREADS)
            a.rfac[b * a.R + r] = div_rn(1.0f, sqrt_rn(div_rn(row[r], mean)));
        for (int64_t c = threadIdx.x; c < a.C; c += THREADS)
            a.cfac[b * a.C + c] = div_rn(1.0f, sqrt_rn(col[c]));
        __syncthreads(); // mean_s is rewritten for the next batch
    }
}

// ---------------------------------------------------------------- not factored

// The full second moment and Σ u² of each 4096-element block, u = g / √v (the CPU's afac_moment): the
// block's squares staged in shared memory, then added by 8 threads as the CPU's 8 lanes.
__global__ void __launch_bounds__(THREADS) moment_kernel(afac a) {
    __shared__ double usq[USQ_BLOCK];
    const int64_t nblk = (a.n + USQ_BLOCK - 1) / USQ_BLOCK;
    for (int64_t blk = blockIdx.x; blk < nblk; blk += gridDim.x) {
        const int64_t i0 = blk * USQ_BLOCK;
        const int len = a.n - i0 < USQ_BLOCK ? (int)(a.n - i0) : (int)USQ_BLOCK;
        for (int k = (int)threadIdx.x; k < len; k += THREADS) {
            const float gi = a.g[i0 + k];
            const float vi = fmaf(mul_rn(gi, gi) + a.eps1, a.c2, mul_rn(a.v[i0 + k], a.b2t));
            a.v[i0 + k] = vi;
            const float u = mul_rn(div_rn(1.0f, sqrt_rn(vi)), gi);
            usq[k] = (double)u * (double)u;
        }
        __syncthreads();
        if (threadIdx.x < 32) { // warp 0: its first 8 threads are the lanes, the rest add zeros
            double acc = 0.0;
            if (threadIdx.x < LANES)
                for (int k = (int)threadIdx.x; k < len; k += LANES) acc += usq[k];
            const double total = lanes_total(acc);
            if (threadIdx.x == 0) a.tot[blk] = total;
        }
        __syncthreads(); // usq is rewritten for the next block
    }
}

// ---------------------------------------------------------------- both

// One block: Σ u² as the CPU adds it (each partial the sum of `group` consecutive entries of tot, the
// partials in order), then the clip divisor max(1, RMS(u) / clip_threshold), RMS in f32 as torch's
// norm / √numel.
__global__ void __launch_bounds__(THREADS) clip_kernel(afac a) {
    const double *tot = a.tot;
    const int64_t ntot = a.ntot, group = a.group;
    const double usq = ordered_sum((ntot + group - 1) / group, [tot, ntot, group](int64_t i) {
        const int64_t r0 = i * group, r1 = r0 + group < ntot ? r0 + group : ntot;
        double s = 0.0;
        for (int64_t r = r0; r < r1; r++) s += tot[r];
        return s;
    });
    if (threadIdx.x == 0) {
        const float rms = div_rn((float)dsqrt_rn(usq), a.sqrt_n);
        const float x = div_rn(rms, a.clip);
        *a.clip_div = x < 1.0f ? 1.0f : x;
    }
}

// p ← p + decay·p - (β1 average of) u / x · lr, the raw update u recomputed from the state as the Σ u²
// pass made it (the CPU's afac_apply).
__global__ void __launch_bounds__(THREADS) apply_kernel(afac a, bool factored) {
    const float x = *a.clip_div;
    const bool has_m = a.m != nullptr, has_decay = a.decay != 0.0f;
    for (int64_t i = (int64_t)blockIdx.x * THREADS + threadIdx.x; i < a.n;
         i += (int64_t)gridDim.x * THREADS) {
        float u;
        if (factored) {
            const int64_t r = i / a.C, c = i - r * a.C;
            u = mul_rn(mul_rn(a.rfac[r], a.cfac[(r / a.R) * a.C + c]), a.g[i]);
        } else {
            u = mul_rn(div_rn(1.0f, sqrt_rn(a.v[i])), a.g[i]);
        }
        u = mul_rn(div_rn(u, x), a.lr);
        if (has_m) {
            u = fmaf(u, a.c1, mul_rn(a.m[i], a.b1));
            a.m[i] = u;
        }
        const float pi = has_decay ? fmaf(a.p[i], a.decay, a.p[i]) : a.p[i];
        a.p[i] = pi - u;
    }
}

unsigned capped(int64_t blocks) {
    return (unsigned)(blocks < 1 ? 1 : blocks > BLOCK_CAP ? BLOCK_CAP : blocks);
}

} // namespace

void hft_cuda_adafactor_f32(const hft_adafactor_args *a) {
    const char *name = "adafactor_step";
    if (a->batch < 0 || a->rows < 0 || a->cols < 0) {
        hft_cuda_fail(HFT_EINVAL, name, "a [%lld, %lld, %lld] parameter", (long long)a->batch,
                      (long long)a->rows, (long long)a->cols);
        return;
    }
    const int64_t n = a->batch * a->rows * a->cols;
    if (n == 0) return;
    if (!a->param || !a->grad) {
        hft_cuda_fail(HFT_EINVAL, name, "no parameter or gradient");
        return;
    }
    if (a->factored && (!a->exp_avg_sq_row || !a->exp_avg_sq_col || !a->scratch)) {
        hft_cuda_fail(HFT_EINVAL, name, "factored without exp_avg_sq_row, exp_avg_sq_col or scratch");
        return;
    }
    if (!a->factored && !a->exp_avg_sq) {
        hft_cuda_fail(HFT_EINVAL, name, "not factored and no exp_avg_sq");
        return;
    }
    afac d = {};
    d.p = static_cast<float *>(a->param);
    d.g = static_cast<const float *>(a->grad);
    d.m = static_cast<float *>(a->exp_avg);
    d.B = a->batch;
    d.R = a->rows;
    d.C = a->cols;
    d.n = n;
    // the CPU's casts, from the same doubles
    d.eps1 = (float)a->eps1;
    d.b2t = (float)a->beta2t;
    d.c2 = (float)(1.0 - a->beta2t);
    d.lr = (float)a->lr;
    d.b1 = (float)a->beta1;
    d.c1 = (float)(1.0 - a->beta1);
    d.decay = (float)a->decay;
    d.fR = (float)a->rows;
    d.fC = (float)a->cols;
    d.sqrt_n = (float)sqrt((double)n);
    d.clip = (float)a->clip_threshold;
    if (a->factored) {
        d.row = static_cast<float *>(a->exp_avg_sq_row);
        d.col = static_cast<float *>(a->exp_avg_sq_col);
        d.rfac = static_cast<float *>(a->scratch);
        d.cfac = d.rfac + d.B * d.R;
        d.ntot = d.B * d.R;
        d.group = d.C >= USQ_BLOCK ? 1 : USQ_BLOCK / d.C; // the CPU's rows_per_block
    } else {
        d.v = static_cast<float *>(a->exp_avg_sq);
        d.ntot = (n + USQ_BLOCK - 1) / USQ_BLOCK;
        d.group = 1;
    }
    d.tot =
        static_cast<double *>(hft_cuda_scratch(HFT_SCRATCH_REDUCE, sizeof(double) * (size_t)(d.ntot + 1)));
    if (!d.tot) return;
    d.clip_div = reinterpret_cast<float *>(d.tot + d.ntot);
    cudaStream_t st = hft_cuda_stream();
    (void)st; // the emulator's launch takes no stream
    if (a->factored) {
        const int64_t nrows = d.B * d.R;
        HFT_LAUNCH(hft_cuda_blocks(nrows * LANES, THREADS), THREADS, 0, st, row_kernel<false>)(d);
        hft_cuda_check_launch("adafactor_step (row state)");
        HFT_LAUNCH(hft_cuda_blocks(d.B * d.C, THREADS), THREADS, 0, st, col_kernel)(d);
        hft_cuda_check_launch("adafactor_step (column state)");
        HFT_LAUNCH(capped(d.B), THREADS, 0, st, factor_kernel)(d);
        hft_cuda_check_launch("adafactor_step (factors)");
        HFT_LAUNCH(hft_cuda_blocks(nrows * LANES, THREADS), THREADS, 0, st, row_kernel<true>)(d);
        hft_cuda_check_launch("adafactor_step (row sums of squares)");
    } else {
        HFT_LAUNCH(capped(d.ntot), THREADS, 0, st, moment_kernel)(d);
        hft_cuda_check_launch("adafactor_step (moment)");
    }
    HFT_LAUNCH(1, THREADS, 0, st, clip_kernel)(d);
    hft_cuda_check_launch("adafactor_step (clip)");
    HFT_LAUNCH(hft_cuda_blocks(n, THREADS), THREADS, 0, st, apply_kernel)(d, (bool)a->factored);
    hft_cuda_check_launch("adafactor_step (update)");
}
