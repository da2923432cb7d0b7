// Layer norm and RMS norm over the last axis of contiguous [rows, cols] arrays on CUDA, forward and
// backward, f32 / bf16 / f16, computed as the CPU computes them (kernels/cpu/norm_impl.h): statistics in
// two passes (mean, then Σ (x - mean)²), rstd = 1 / sqrt(var + eps), LlamaRMSNorm's w · (x · rstd).
//
// mean and rstd are f32 buffers [rows] for every data dtype. The CPU keeps them in the data's dtype (it
// has f32 and f64 only); on CUDA a bf16 / f16 rstd would lose 8 (or 11) bits that backward then multiplies
// into every gradient, and torch keeps these statistics in f32 for half inputs too. Each is optional in
// forward (NULL: not written); backward needs rstd, and mean for layer norm.
//
// A row is one warp's (cols <= 1024) or one block's (cols <= 16384), held in registers between its
// reductions; longer rows re-read global memory each pass. Backward: the rows fall into fixed chunks, one
// block each; the block sums its rows' contributions to dweight / dbias in shared memory (each column
// owned by one thread of a warp, warps combined in warp order) and writes one partial row per chunk to the
// caller's scratch; a second kernel adds the partials column by column in chunk order. Nothing depends on
// timing, so the gradients are the same bits on every run.
#include "kernels/cuda/rowops.cuh"

namespace {

using namespace rowops;

// Rows per backward chunk: 16, doubled while there would be more than 512 chunks (enough blocks to fill
// the GPU, a bounded scratch). Depends on the shape only.
int64_t chunk_rows(int64_t rows) {
    int64_t chunk = 16;
    while ((rows + chunk - 1) / chunk > 512) chunk *= 2;
    return chunk;
}

// ---------------------------------------------------------------- forward

struct fwd_params {
    const void *x, *w, *b;
    void *y;
    float *mean, *rstd;
    int64_t rows;
    int C;
    float eps;
    bool rms;
};

// y for one pack of values v (already x in f32) at column c.
template <typename T, int N>
HFT_DEVICE void fwd_store(const fwd_params &p, T *yr, int c, const float *v, float mean, float rstd) {
    float wv[N], bv[N], o[N];
    if (p.w) load<T, N>(static_cast<const T *>(p.w) + c, wv);
    if (p.b) load<T, N>(static_cast<const T *>(p.b) + c, bv);
    HFT_UNROLL
    for (int i = 0; i < N; i++) {
        if (p.rms) {
            o[i] = p.w ? wv[i] * (v[i] * rstd) : v[i] * rstd;
        } else {
            float t = (v[i] - mean) * rstd;
            if (p.w) t *= wv[i];
            o[i] = p.b ? t + bv[i] : t;
        }
    }
    store<T, N>(yr + c, o);
}

HFT_DEVICE void fwd_stats(const fwd_params &p, int64_t row, float mean, float rstd) {
    if (p.mean) p.mean[row] = p.rms ? 0.0f : mean;
    if (p.rstd) p.rstd[row] = rstd;
}

template <typename T, int N, int VPT, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * WARP_ROWS : (VPT > 8 ? BLOCK32_THREADS : 1024))
    norm_fwd_rows(fwd_params p) {
    int tid, nt;
    int64_t row;
    row_place<WARP>(tid, nt, row);
    if (row >= p.rows) return;
    const int C = p.C;
    const T *xr = static_cast<const T *>(p.x) + row * C;
    T *yr = static_cast<T *>(p.y) + row * C;
    float v[VPT];
    float s = 0.0f;
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        int c = (tid + k * nt) * N;
        if (c < C) {
            load<T, N>(xr + c, v + k * N);
            HFT_UNROLL
            for (int i = 0; i < N; i++) s += v[k * N + i];
        } else {
            HFT_UNROLL
            for (int i = 0; i < N; i++) v[k * N + i] = 0.0f;
        }
    }
    const float mean = p.rms ? 0.0f : row_sum<WARP>(s) / (float)C;
    float q = 0.0f;
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        if ((tid + k * nt) * N < C) {
            HFT_UNROLL
            for (int i = 0; i < N; i++) {
                float d = v[k * N + i] - mean;
                q += d * d;
            }
        }
    }
    const float rstd = 1.0f / sqrtf(row_sum<WARP>(q) / (float)C + p.eps);
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        int c = (tid + k * nt) * N;
        if (c < C) fwd_store<T, N>(p, yr, c, v + k * N, mean, rstd);
    }
    if (tid == 0) fwd_stats(p, row, mean, rstd);
}

// Rows too long for registers: three passes over x (sum, squared deviations, output), one block a row.
template <typename T, int N> __global__ void __launch_bounds__(LONG_THREADS) norm_fwd_long(fwd_params p) {
    const int tid = (int)threadIdx.x, nt = (int)blockDim.x, C = p.C;
    const int64_t row = blockIdx.x;
    const T *xr = static_cast<const T *>(p.x) + row * C;
    T *yr = static_cast<T *>(p.y) + row * C;
    float mean = 0.0f;
    if (!p.rms) {
        float s = 0.0f;
        for (int c = tid * N; c < C; c += nt * N) {
            float v[N];
            load<T, N>(xr + c, v);
            HFT_UNROLL
            for (int i = 0; i < N; i++) s += v[i];
        }
        mean = row_sum<false>(s) / (float)C;
    }
    float q = 0.0f;
    for (int c = tid * N; c < C; c += nt * N) {
        float v[N];
        load<T, N>(xr + c, v);
        HFT_UNROLL
        for (int i = 0; i < N; i++) q += (v[i] - mean) * (v[i] - mean);
    }
    const float rstd = 1.0f / sqrtf(row_sum<false>(q) / (float)C + p.eps);
    for (int c = tid * N; c < C; c += nt * N) {
        float v[N];
        load<T, N>(xr + c, v);
        fwd_store<T, N>(p, yr, c, v, mean, rstd);
    }
    if (tid == 0) fwd_stats(p, row, mean, rstd);
}

// ---------------------------------------------------------------- backward

struct bwd_params {
    const void *x, *w, *dy;
    const float *mean, *rstd;
    void *dx;
    float *part; // [chunks, parts, C]: this chunk's dweight then dbias sums (those wanted)
    int64_t rows, chunk;
    int C, parts;
    bool rms, acc_dx, dw, db;
};

// One pack of a row, pass 1: the partial weight / bias gradients (pw, pb: where the pack's sums live),
// Σ g and Σ g·x̂ with g = dy·w; xv keeps x, gv turns from dy into g for pass 2.
template <int N>
HFT_DEVICE void bwd_pass1(const bwd_params &p, const float *wv, float *xv, float *gv, float mean, float rstd,
                          float *pw, float *pb, float &sg, float &sgx) {
    HFT_UNROLL
    for (int i = 0; i < N; i++) {
        float xh = (xv[i] - mean) * rstd, dy = gv[i];
        if (pw) pw[i] += dy * xh;
        if (pb) pb[i] += dy;
        float g = p.w ? dy * wv[i] : dy;
        sg += g;
        sgx += g * xh;
        gv[i] = g;
    }
}

// Pass 2: dx = rstd (g - Σg/C - x̂ Σg·x̂/C) (no Σg/C term for RMS norm: k1 = 0).
template <typename T, int N>
HFT_DEVICE void bwd_pass2(const bwd_params &p, T *dxr, int c, const float *xv, const float *gv, float mean,
                          float rstd, float k1, float k2) {
    float o[N], old[N];
    if (p.acc_dx) load<T, N>(dxr + c, old);
    HFT_UNROLL
    for (int i = 0; i < N; i++) {
        float d = rstd * (gv[i] - k1 - (xv[i] - mean) * rstd * k2);
        o[i] = p.acc_dx ? old[i] + d : d;
    }
    store<T, N>(dxr + c, o);
}

// Block b takes rows [b·chunk, (b+1)·chunk); in warp mode its warps take every WARP_ROWS-th of them. Each
// warp (or the block) sums into its own shared partial, in which every column belongs to one thread.
template <typename T, int N, int VPT, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * WARP_ROWS : (VPT > 8 ? BLOCK32_THREADS : 1024))
    norm_bwd_rows(bwd_params p) {
    HFT_DYNAMIC_SMEM(float, sm);
    const int C = p.C, tid = WARP ? (int)threadIdx.x % 32 : (int)threadIdx.x,
              nt = WARP ? 32 : (int)blockDim.x;
    const int group = WARP ? (int)threadIdx.x / 32 : 0, groups = WARP ? (int)blockDim.x / 32 : 1;
    float *mine = sm + (int64_t)group * p.parts * C;
    float *mw = p.dw ? mine : nullptr, *mb = p.db ? mine + (p.dw ? C : 0) : nullptr;
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        int c = (tid + k * nt) * N;
        if (c < C) {
            HFT_UNROLL
            for (int i = 0; i < N; i++) {
                if (mw) mw[c + i] = 0.0f;
                if (mb) mb[c + i] = 0.0f;
            }
        }
    }
    const int64_t r0 = (int64_t)blockIdx.x * p.chunk, r1 = hft_min<int64_t>(r0 + p.chunk, p.rows);
    const T *w = static_cast<const T *>(p.w);
    for (int64_t row = r0 + group; row < r1; row += groups) { // uniform across the warp (block)
        const float mean = p.rms ? 0.0f : p.mean[row], rstd = p.rstd[row];
        const int64_t off = row * C;
        float xv[VPT], gv[VPT];
        float sg = 0.0f, sgx = 0.0f;
        HFT_UNROLL
        for (int k = 0; k < VPT / N; k++) {
            int c = (tid + k * nt) * N;
            if (c < C) {
                float wv[N];
                load<T, N>(static_cast<const T *>(p.x) + off + c, xv + k * N);
                load<T, N>(static_cast<const T *>(p.dy) + off + c, gv + k * N);
                if (w) load<T, N>(w + c, wv);
                bwd_pass1<N>(p, wv, xv + k * N, gv + k * N, mean, rstd, mw ? mw + c : nullptr,
                             mb ? mb + c : nullptr, sg, sgx);
            } else {
                HFT_UNROLL
                for (int i = 0; i < N; i++) xv[k * N + i] = gv[k * N + i] = 0.0f;
            }
        }
        if (!p.dx) continue;
        row_sum2<WARP>(sg, sgx);
        const float k1 = p.rms ? 0.0f : sg / (float)C, k2 = sgx / (float)C;
        T *dxr = static_cast<T *>(p.dx) + off;
        HFT_UNROLL
        for (int k = 0; k < VPT / N; k++) {
            int c = (tid + k * nt) * N;
            if (c < C) bwd_pass2<T, N>(p, dxr, c, xv + k * N, gv + k * N, mean, rstd, k1, k2);
        }
    }
    if (p.parts == 0) return;
    __syncthreads();
    const int stride = p.parts * C;
    float *out = p.part + (int64_t)blockIdx.x * stride;
    for (int c = (int)threadIdx.x; c < stride; c += (int)blockDim.x) {
        float t = sm[c];
        for (int g = 1; g < groups; g++) t += sm[(int64_t)g * stride + c];
        out[c] = t;
    }
}

// Rows too long for registers and shared memory: one block per chunk re-reads x, dy and w in each pass
// and keeps the chunk's partial in the scratch row itself (each column still belongs to one thread).
template <typename T, int N> __global__ void __launch_bounds__(LONG_THREADS) norm_bwd_long(bwd_params p) {
    const int C = p.C, tid = (int)threadIdx.x, nt = (int)blockDim.x;
    float *part = p.parts ? p.part + (int64_t)blockIdx.x * p.parts * C : nullptr;
    float *pw = p.dw ? part : nullptr, *pb = p.db ? part + (p.dw ? C : 0) : nullptr;
    for (int c = tid * N; c < C; c += nt * N) { // the columns this thread sums below
        HFT_UNROLL
        for (int i = 0; i < N; i++) {
            if (pw) pw[c + i] = 0.0f;
            if (pb) pb[c + i] = 0.0f;
        }
    }
    const int64_t r0 = (int64_t)blockIdx.x * p.chunk, r1 = hft_min<int64_t>(r0 + p.chunk, p.rows);
    const T *x = static_cast<const T *>(p.x), *dy = static_cast<const T *>(p.dy),
            *w = static_cast<const T *>(p.w);
    for (int64_t row = r0; row < r1; row++) {
        const float mean = p.rms ? 0.0f : p.mean[row], rstd = p.rstd[row];
        const int64_t off = row * C;
        float sg = 0.0f, sgx = 0.0f;
        for (int c = tid * N; c < C; c += nt * N) {
            float xv[N], gv[N], wv[N];
            load<T, N>(x + off + c, xv);
            load<T, N>(dy + off + c, gv);
            if (w) load<T, N>(w + c, wv);
            bwd_pass1<N>(p, wv, xv, gv, mean, rstd, pw ? pw + c : nullptr, pb ? pb + c : nullptr, sg, sgx);
        }
        if (!p.dx) continue;
        row_sum2<false>(sg, sgx);
        const float k1 = p.rms ? 0.0f : sg / (float)C, k2 = sgx / (float)C;
        for (int c = tid * N; c < C; c += nt * N) {
            float xv[N], gv[N], wv[N];
            load<T, N>(x + off + c, xv);
            load<T, N>(dy + off + c, gv);
            if (w) load<T, N>(w + c, wv);
            HFT_UNROLL
            for (int i = 0; i < N; i++) gv[i] = w ? gv[i] * wv[i] : gv[i];
            bwd_pass2<T, N>(p, static_cast<T *>(p.dx) + off, c, xv, gv, mean, rstd, k1, k2);
        }
    }
}

// out (+)= Σ_k part[k][p][c] over the chunks k in order: 16 threads per column each sum every 16th chunk
// (k ≡ ty), then the 16 sums are added in ty order. blockIdx.y picks dweight or dbias.
constexpr int COMBINE_X = 32, COMBINE_Y = 16;

template <typename T>
__global__ void __launch_bounds__(COMBINE_X *COMBINE_Y)
    norm_combine(const float *__restrict__ part, int64_t nchunks, int C, int parts, T *dw, T *db, bool acc_w,
                 bool acc_b) {
    __shared__ float red[COMBINE_Y][COMBINE_X];
    const int tx = (int)threadIdx.x, ty = (int)threadIdx.y, c = (int)blockIdx.x * COMBINE_X + tx;
    const bool is_w = blockIdx.y == 0 && dw;
    const int off = is_w || !dw ? 0 : C; // dbias follows dweight in each chunk's partial
    float s = 0.0f;
    if (c < C)
        for (int64_t k = ty; k < nchunks; k += COMBINE_Y) s += part[k * parts * C + off + c];
    red[ty][tx] = s;
    __syncthreads();
    if (ty != 0 || c >= C) return;
    float t = red[0][tx];
    for (int j = 1; j < COMBINE_Y; j++) t += red[j][tx];
    T *out = is_w ? dw : db;
    const bool acc = is_w ? acc_w : acc_b;
    out[c] = hft_from_f32<T>(acc ? hft_to_f32(out[c]) + t : t);
}

// ---------------------------------------------------------------- entries

bool check_shape(const hft_norm_args *a, const char *op) {
    if (a->rows < 0 || a->cols < 0 || a->rows > INT32_MAX || a->cols > INT32_MAX) {
        hft_cuda_fail(HFT_EUNSUPPORTED, op, "%lld rows of %lld (each 0 .. 2^31 - 1)", (long long)a->rows,
                      (long long)a->cols);
        return false;
    }
    return true;
}

template <typename T, int N> void fwd_launch(const fwd_params &p) {
    const row_kernels<fwd_params> k = {norm_fwd_rows<T, N, 8, true>, norm_fwd_rows<T, N, 32, true>,
                                       norm_fwd_rows<T, N, 8, false>, norm_fwd_rows<T, N, 32, false>,
                                       norm_fwd_long<T, N>};
    launch_rows(k, p.C, p.rows, 0, p);
}

template <typename T, int N> void bwd_launch(const bwd_params &p, int64_t groups, size_t smem) {
    const row_kernels<bwd_params> k = {norm_bwd_rows<T, N, 8, true>, norm_bwd_rows<T, N, 32, true>,
                                       norm_bwd_rows<T, N, 8, false>, norm_bwd_rows<T, N, 32, false>,
                                       norm_bwd_long<T, N>};
    launch_rows(k, p.C, groups, smem, p);
}

template <typename T> void norm_fwd(const hft_norm_args *a) {
    if (!check_shape(a, "norm_fwd") || a->rows == 0 || a->cols == 0) return;
    const int C = (int)a->cols;
    fwd_params p = {a->x,    a->weight, a->bias,       a->y,  (float *)a->mean, (float *)a->rstd,
                    a->rows, C,         (float)a->eps, a->rms};
    const bool vec = rows_aligned(a->x, C, sizeof(T)) && rows_aligned(a->y, C, sizeof(T)) &&
                     rows_aligned(a->weight, C, sizeof(T)) && rows_aligned(a->bias, C, sizeof(T));
    if (vec)
        fwd_launch<T, vec_width<T>()>(p);
    else
        fwd_launch<T, 1>(p);
    hft_cuda_check_launch("norm_fwd");
}

// The scratch is f32 partial sums whatever the data dtype (elsize is not used): [chunks, parts, cols].
size_t norm_scratch_bytes(const hft_norm_args *a, size_t elsize) {
    (void)elsize;
    int64_t parts = (a->dweight ? 1 : 0) + (a->dbias ? 1 : 0);
    if (parts == 0 || a->rows <= 0 || a->cols <= 0) return 0;
    int64_t chunk = chunk_rows(a->rows), nchunks = (a->rows + chunk - 1) / chunk;
    return (size_t)(nchunks * parts * a->cols) * sizeof(float);
}

template <typename T> void norm_bwd(const hft_norm_args *a) {
    const char *op = "norm_bwd";
    if (!check_shape(a, op) || a->cols == 0) return;
    const int C = (int)a->cols, parts = (a->dweight ? 1 : 0) + (a->dbias ? 1 : 0);
    const int64_t rows = a->rows, chunk = chunk_rows(rows), nchunks = (rows + chunk - 1) / chunk;
    if (rows > 0 && (!a->x || !a->dy || !a->rstd || (!a->rms && !a->mean))) {
        hft_cuda_fail(HFT_EINVAL, op, "x, dy, rstd (and mean for layer norm) are required");
        return;
    }
    if (rows > 0 && parts > 0 && !a->scratch) {
        hft_cuda_fail(HFT_EINVAL, op, "dweight / dbias wanted without scratch (norm_scratch_bytes)");
        return;
    }
    if (rows > 0) {
        bwd_params p = {a->x,
                        a->weight,
                        a->dy,
                        (const float *)a->mean,
                        (const float *)a->rstd,
                        a->dx,
                        (float *)a->scratch,
                        rows,
                        chunk,
                        C,
                        parts,
                        a->rms,
                        a->accumulate_dx,
                        a->dweight != nullptr,
                        a->dbias != nullptr};
        const size_t smem = (size_t)parts * C * sizeof(float);
        const bool vec = rows_aligned(a->x, C, sizeof(T)) && rows_aligned(a->dy, C, sizeof(T)) &&
                         rows_aligned(a->dx, C, sizeof(T)) && rows_aligned(a->weight, C, sizeof(T));
        // one block per chunk in every layout (warp mode: the block's warps share the chunk)
        const int64_t groups = choose_mode(C) <= ROW_WARP32 ? nchunks * WARP_ROWS : nchunks;
        if (vec)
            bwd_launch<T, vec_width<T>()>(p, groups, smem);
        else
            bwd_launch<T, 1>(p, groups, smem);
        hft_cuda_check_launch(op);
    }
    if (parts == 0) return;
    dim3 grid((unsigned)((C + COMBINE_X - 1) / COMBINE_X), (unsigned)parts), block(COMBINE_X, COMBINE_Y);
    HFT_LAUNCH(grid, block, 0, hft_cuda_stream(), norm_combine<T>)
    (static_cast<const float *>(a->scratch), rows > 0 ? nchunks : 0, C, parts, static_cast<T *>(a->dweight),
     static_cast<T *>(a->dbias), a->accumulate_dweight, a->accumulate_dbias);
    hft_cuda_check_launch("norm_bwd (combine)");
}

} // namespace

void hft_cuda_register_norm(hft_kernels *t) {
    t->norm_fwd[HFT_F32] = norm_fwd<float>;
    t->norm_fwd[HFT_BF16] = norm_fwd<hft_bf16_t>;
    t->norm_fwd[HFT_F16] = norm_fwd<hft_f16_t>;
    t->norm_bwd[HFT_F32] = norm_bwd<float>;
    t->norm_bwd[HFT_BF16] = norm_bwd<hft_bf16_t>;
    t->norm_bwd[HFT_F16] = norm_bwd<hft_f16_t>;
    t->norm_scratch_bytes = norm_scratch_bytes;
}
