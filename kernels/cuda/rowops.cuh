// What the row kernels (softmax.cu, norm.cu, xent.cu) share: warp and block reductions in a fixed order,
// 16-byte packs of a row's elements, the merge of two online-softmax states, and the choice between one
// warp per row and one block per row.
//
// Every reduction here is deterministic: the xor butterfly adds the same two partial sums in every lane
// (float addition is commutative, so each lane ends with the same bits), and the block step sums the
// warps' results in warp order. Nothing depends on timing.
#ifndef HFT_CUDA_ROWOPS_CUH
#define HFT_CUDA_ROWOPS_CUH

#include <stdint.h>

#include "kernels/cuda/cuda_internal.cuh"

namespace rowops {

HFT_DEVICE float neg_inf() {
    return -INFINITY;
}
HFT_DEVICE float quiet_nan() {
    return __int_as_float(0x7fc00000);
}

// ---------------------------------------------------------------- reductions

HFT_DEVICE float warp_sum(float v) {
    HFT_UNROLL
    for (int o = 16; o >= 1; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// fmaxf ignores NaN (a NaN element reaches the result through its exp instead, as on the CPU)
HFT_DEVICE float warp_max(float v) {
    HFT_UNROLL
    for (int o = 16; o >= 1; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over the threads that share a row: the warp (WARP) or the whole block (blockDim.x a multiple of 32;
// every thread of the block must call it). Every thread gets the result.
template <bool WARP> HFT_DEVICE float row_sum(float v) {
    v = warp_sum(v);
    if constexpr (WARP) {
        return v;
    } else {
        __shared__ float red[32];
        const int w = (int)threadIdx.x / 32, nw = (int)blockDim.x / 32;
        if ((threadIdx.x & 31) == 0) red[w] = v;
        __syncthreads();
        float t = red[0];
        for (int i = 1; i < nw; i++) t += red[i];
        __syncthreads(); // red is reused by the next reduction
        return t;
    }
}

template <bool WARP> HFT_DEVICE float row_max(float v) {
    v = warp_max(v);
    if constexpr (WARP) {
        return v;
    } else {
        __shared__ float red[32];
        const int w = (int)threadIdx.x / 32, nw = (int)blockDim.x / 32;
        if ((threadIdx.x & 31) == 0) red[w] = v;
        __syncthreads();
        float t = red[0];
        for (int i = 1; i < nw; i++) t = fmaxf(t, red[i]);
        __syncthreads();
        return t;
    }
}

// Two sums at once (one barrier pair instead of two).
template <bool WARP> HFT_DEVICE void row_sum2(float &a, float &b) {
    a = warp_sum(a);
    b = warp_sum(b);
    if constexpr (!WARP) {
        __shared__ float red[2][32];
        const int w = (int)threadIdx.x / 32, nw = (int)blockDim.x / 32;
        if ((threadIdx.x & 31) == 0) red[0][w] = a, red[1][w] = b;
        __syncthreads();
        a = red[0][0];
        b = red[1][0];
        for (int i = 1; i < nw; i++) a += red[0][i], b += red[1][i];
        __syncthreads();
    }
}

// ---------------------------------------------------------------- online softmax state

// A running (max m, Σ exp(x - m) s) over part of a row. An element equal to -inf adds exactly 0, even
// when m is -inf too (a masked prefix must not turn into NaN before a finite element arrives); NaN and
// +inf elements give NaN as exp(x - max) does on the CPU. The caller maps a final m of -inf (a row
// with nothing but -inf) to NaN, as the CPU's exp(-inf - -inf) does.
struct online {
    float m, s;
};

HFT_DEVICE float online_scale(float m_old, float m_new) {
    return m_old == m_new ? 1.0f : expf(m_old - m_new); // m_old <= m_new; equal covers -inf, -inf
}

HFT_DEVICE float online_term(float x, float m) {
    return x == -INFINITY ? 0.0f : expf(x - m);
}

// Adds cnt values (a pack: one rescale per pack rather than per element).
template <int CNT> HFT_DEVICE void online_add(online &st, const float *v) {
    float mp = st.m;
    HFT_UNROLL
    for (int i = 0; i < CNT; i++) mp = fmaxf(mp, v[i]);
    float acc = 0.0f;
    HFT_UNROLL
    for (int i = 0; i < CNT; i++) acc += online_term(v[i], mp);
    st.s = st.s * online_scale(st.m, mp) + acc;
    st.m = mp;
}

// Symmetric in its arguments (bit for bit), so the butterfly leaves the same state in every lane.
HFT_DEVICE online online_merge(online a, online b) {
    float m = fmaxf(a.m, b.m);
    return online{m, a.s * online_scale(a.m, m) + b.s * online_scale(b.m, m)};
}

HFT_DEVICE online warp_online(online st) {
    HFT_UNROLL
    for (int o = 16; o >= 1; o /= 2) {
        online other{__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o)};
        st = online_merge(st, other);
    }
    return st;
}

// The block's state (and the sum `extra`, when the caller has one) in every thread; warps merged in order.
HFT_DEVICE online block_online(online st, float &extra) {
    st = warp_online(st);
    extra = warp_sum(extra);
    __shared__ float red[3][32];
    const int w = (int)threadIdx.x / 32, nw = (int)blockDim.x / 32;
    if ((threadIdx.x & 31) == 0) red[0][w] = st.m, red[1][w] = st.s, red[2][w] = extra;
    __syncthreads();
    online t{red[0][0], red[1][0]};
    float e = red[2][0];
    for (int i = 1; i < nw; i++) {
        t = online_merge(t, online{red[0][i], red[1][i]});
        e += red[2][i];
    }
    __syncthreads();
    extra = e;
    return t;
}

// ---------------------------------------------------------------- packs

// N consecutive elements loaded or stored as one access (16 bytes when N = 16 / sizeof(T)).
template <typename T, int N> struct alignas(sizeof(T) * N) pack { T v[N]; };

template <typename T> constexpr int vec_width() {
    return (int)(16 / sizeof(T));
}

template <typename T, int N> HFT_DEVICE void load(const T *p, float *out) {
    pack<T, N> q = *reinterpret_cast<const pack<T, N> *>(p);
    HFT_UNROLL
    for (int i = 0; i < N; i++) out[i] = hft_to_f32(q.v[i]);
}

template <typename T, int N> HFT_DEVICE void store(T *p, const float *in) {
    pack<T, N> q;
    HFT_UNROLL
    for (int i = 0; i < N; i++) q.v[i] = hft_from_f32<T>(in[i]);
    *reinterpret_cast<pack<T, N> *>(p) = q;
}

// Whether rows of n elements at p (and every row after it) can be read in 16-byte packs.
inline bool rows_aligned(const void *p, int64_t n, size_t elsize) {
    return p == nullptr || ((uintptr_t)p % 16 == 0 && (n * (int64_t)elsize) % 16 == 0);
}

// ---------------------------------------------------------------- row layout

// How a row kernel covers a row of n elements: each thread holds up to VPT values (in packs of N), at
// value index (tid + k·threads)·N + i; a warp per row while n fits in 32·32 values, else a block.
enum row_mode { ROW_WARP8, ROW_WARP32, ROW_BLOCK8, ROW_BLOCK32, ROW_LONG };
constexpr int WARP_ROWS = 4;         // rows (warps) per block in warp mode
constexpr int BLOCK8_MAX = 1024 * 8; // longest row the 8-value block kernels hold
constexpr int BLOCK32_THREADS = 512; // the 32-value block kernels: 512 threads keep 128 registers each
constexpr int BLOCK32_MAX = BLOCK32_THREADS * 32;
constexpr int LONG_THREADS = 1024;

inline row_mode choose_mode(int64_t n) {
    if (n <= 32 * 8) return ROW_WARP8;
    if (n <= 32 * 32) return ROW_WARP32;
    if (n <= BLOCK8_MAX) return ROW_BLOCK8;
    if (n <= BLOCK32_MAX) return ROW_BLOCK32;
    return ROW_LONG;
}

// Threads of a block-mode kernel for rows of n holding vpt values each: a multiple of 32.
inline int block_threads(int64_t n, int vpt) {
    int64_t t = (n + vpt - 1) / vpt;
    t = (t + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : t);
}

// Where a thread of a row kernel stands: its index within the row's threads, their count, its row.
template <bool WARP> HFT_DEVICE void row_place(int &tid, int &nt, int64_t &row) {
    if constexpr (WARP) {
        tid = (int)threadIdx.x & 31;
        nt = 32;
        row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    } else {
        tid = (int)threadIdx.x;
        nt = (int)blockDim.x;
        row = blockIdx.x;
    }
}

// The kernels of one row op, one per layout, all taking the same parameters.
template <typename... P> struct row_kernels {
    void (*warp8)(P...), (*warp32)(P...), (*block8)(P...), (*block32)(P...), (*long_rows)(P...);
};

// Launches the kernel for rows of n values: `groups` row groups (a warp each in warp mode, WARP_ROWS to a
// block; else a block each) with smem bytes of dynamic shared memory per group. The caller checks the
// launch.
template <typename... P, typename... A>
void launch_rows(const row_kernels<P...> &k, int64_t n, int64_t groups, size_t smem, A... args) {
    cudaStream_t st = hft_cuda_stream();
    (void)st; // the emulator's launch takes no stream
    const unsigned warp_grid = (unsigned)((groups + WARP_ROWS - 1) / WARP_ROWS), grid = (unsigned)groups;
    switch (choose_mode(n)) {
    case ROW_WARP8:
        HFT_LAUNCH(warp_grid, 32 * WARP_ROWS, smem * WARP_ROWS, st, k.warp8)(args...);
        break;
    case ROW_WARP32:
        HFT_LAUNCH(warp_grid, 32 * WARP_ROWS, smem * WARP_ROWS, st, k.warp32)(args...);
        break;
    case ROW_BLOCK8: // above 48 KiB of shared memory a kernel must ask for it
        if (smem > 48 * 1024)
            (void)cudaFuncSetAttribute(k.block8, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        HFT_LAUNCH(grid, block_threads(n, 8), smem, st, k.block8)(args...);
        break;
    case ROW_BLOCK32:
        if (smem > 48 * 1024)
            (void)cudaFuncSetAttribute(k.block32, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        HFT_LAUNCH(grid, block_threads(n, 32), smem, st, k.block32)(args...);
        break;
    case ROW_LONG:
        HFT_LAUNCH(grid, LONG_THREADS, 0, st, k.long_rows)(args...);
        break;
    }
}

} // namespace rowops

#endif
