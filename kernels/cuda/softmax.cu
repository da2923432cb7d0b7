// Softmax and log-softmax over the middle axis of a contiguous [outer, n, inner] array on CUDA, forward and
// backward, f32 / bf16 / f16 (arithmetic in f32). As the CPU (kernels/cpu/softmax_impl.h): a row that is
// all -inf gives NaN (-inf - -inf), a NaN element makes its row NaN, and log-softmax is (x - max) - log Σ.
//
// inner == 1 is the hot path: one warp per row up to 1024 values, one block per row up to 16384, the
// row held in registers between its reductions so x (or y and dy) is read once; longer rows (a softmax
// over a vocabulary) make two passes, the first an online max / sum. inner > 1 runs one thread per
// (outer, inner) column down the n axis: consecutive threads read consecutive addresses.
#include "kernels/cuda/rowops.cuh"

namespace {

using namespace rowops;

// ---------------------------------------------------------------- inner == 1, row held in registers

template <typename T, int N, int VPT, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * WARP_ROWS : (VPT > 8 ? BLOCK32_THREADS : 1024))
    sm_fwd_rows(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int n, bool is_log) {
    int tid, nt;
    int64_t row;
    row_place<WARP>(tid, nt, row);
    if (row >= rows) return; // a whole warp (warp mode) or block
    const T *xr = x + row * n;
    T *yr = y + row * n;
    float v[VPT];
    float m = neg_inf();
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        int c = (tid + k * nt) * N;
        if (c < n) {
            load<T, N>(xr + c, v + k * N);
            HFT_UNROLL
            for (int i = 0; i < N; i++) m = fmaxf(m, v[k * N + i]);
        } else {
            HFT_UNROLL
            for (int i = 0; i < N; i++) v[k * N + i] = 0.0f;
        }
    }
    m = row_max<WARP>(m);
    float s = 0.0f;
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        if ((tid + k * nt) * N < n) {
            HFT_UNROLL
            for (int i = 0; i < N; i++) {
                float e = expf(v[k * N + i] - m);
                s += e;
                if (!is_log) v[k * N + i] = e; // softmax needs only exp(x - m) from here on
            }
        }
    }
    s = row_sum<WARP>(s);
    const float ls = logf(s), inv = 1.0f / s;
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        int c = (tid + k * nt) * N;
        if (c < n) {
            float o[N];
            HFT_UNROLL
            for (int i = 0; i < N; i++) o[i] = is_log ? (v[k * N + i] - m) - ls : v[k * N + i] * inv;
            store<T, N>(yr + c, o);
        }
    }
}

// softmax: dx = y (dy - Σ dy y); log-softmax: dx = dy - exp(y) Σ dy.
template <typename T, int N, int VPT, bool WARP>
__global__ void __launch_bounds__(WARP ? 32 * WARP_ROWS : (VPT > 8 ? BLOCK32_THREADS : 1024))
    sm_bwd_rows(const T *__restrict__ y, const T *__restrict__ dy, T *__restrict__ dx, int64_t rows, int n,
                bool is_log, bool acc) {
    int tid, nt;
    int64_t row;
    row_place<WARP>(tid, nt, row);
    if (row >= rows) return;
    const int64_t off = row * n;
    float yv[VPT], gv[VPT];
    float s = 0.0f;
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        int c = (tid + k * nt) * N;
        if (c < n) {
            load<T, N>(y + off + c, yv + k * N);
            load<T, N>(dy + off + c, gv + k * N);
            HFT_UNROLL
            for (int i = 0; i < N; i++) s += is_log ? gv[k * N + i] : gv[k * N + i] * yv[k * N + i];
        } else {
            HFT_UNROLL
            for (int i = 0; i < N; i++) yv[k * N + i] = gv[k * N + i] = 0.0f;
        }
    }
    s = row_sum<WARP>(s);
    HFT_UNROLL
    for (int k = 0; k < VPT / N; k++) {
        int c = (tid + k * nt) * N;
        if (c < n) {
            float o[N], old[N];
            if (acc) load<T, N>(dx + off + c, old);
            HFT_UNROLL
            for (int i = 0; i < N; i++) {
                float yi = yv[k * N + i], gi = gv[k * N + i];
                float d = is_log ? gi - expf(yi) * s : yi * (gi - s);
                o[i] = acc ? old[i] + d : d;
            }
            store<T, N>(dx + off + c, o);
        }
    }
}

// ---------------------------------------------------------------- inner == 1, long rows

// Pass 1: the online (max, Σ exp) of the row; pass 2 writes y. x is read twice (the second time mostly
// from L2).
template <typename T, int N>
__global__ void __launch_bounds__(LONG_THREADS)
    sm_fwd_long(const T *__restrict__ x, T *__restrict__ y, int64_t rows, int n, bool is_log) {
    (void)rows; // one block per row
    const int tid = (int)threadIdx.x, nt = (int)blockDim.x;
    const T *xr = x + (int64_t)blockIdx.x * n;
    T *yr = y + (int64_t)blockIdx.x * n;
    online st{neg_inf(), 0.0f};
    for (int c = tid * N; c < n; c += nt * N) {
        float v[N];
        load<T, N>(xr + c, v);
        online_add<N>(st, v);
    }
    float unused = 0.0f;
    st = block_online(st, unused);
    // exp(x - m) / s as the cached kernels compute it (an all -inf row has m = -inf: x - m is NaN)
    const float m = st.m, ls = logf(st.s), inv = 1.0f / st.s;
    for (int c = tid * N; c < n; c += nt * N) {
        float v[N];
        load<T, N>(xr + c, v);
        HFT_UNROLL
        for (int i = 0; i < N; i++) {
            float d = v[i] - m;
            v[i] = is_log ? d - ls : expf(d) * inv;
        }
        store<T, N>(yr + c, v);
    }
}

template <typename T, int N>
__global__ void __launch_bounds__(LONG_THREADS)
    sm_bwd_long(const T *__restrict__ y, const T *__restrict__ dy, T *__restrict__ dx, int64_t rows, int n,
                bool is_log, bool acc) {
    (void)rows; // one block per row
    const int tid = (int)threadIdx.x, nt = (int)blockDim.x;
    const int64_t off = (int64_t)blockIdx.x * n;
    float s = 0.0f;
    for (int c = tid * N; c < n; c += nt * N) {
        float yv[N], gv[N];
        load<T, N>(y + off + c, yv);
        load<T, N>(dy + off + c, gv);
        HFT_UNROLL
        for (int i = 0; i < N; i++) s += is_log ? gv[i] : gv[i] * yv[i];
    }
    s = row_sum<false>(s);
    for (int c = tid * N; c < n; c += nt * N) {
        float yv[N], gv[N], o[N], old[N];
        load<T, N>(y + off + c, yv);
        load<T, N>(dy + off + c, gv);
        if (acc) load<T, N>(dx + off + c, old);
        HFT_UNROLL
        for (int i = 0; i < N; i++) {
            float d = is_log ? gv[i] - expf(yv[i]) * s : yv[i] * (gv[i] - s);
            o[i] = acc ? old[i] + d : d;
        }
        store<T, N>(dx + off + c, o);
    }
}

// ---------------------------------------------------------------- inner > 1

template <typename T>
__global__ void sm_fwd_cols(const T *__restrict__ x, T *__restrict__ y, int64_t outer, int64_t n,
                            int64_t inner, bool is_log) {
    const int64_t total = outer * inner;
    for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < total;
         q += (int64_t)gridDim.x * blockDim.x) {
        const int64_t base = (q / inner) * n * inner + q % inner;
        float m = neg_inf();
        for (int64_t j = 0; j < n; j++) m = fmaxf(m, hft_to_f32(x[base + j * inner]));
        float s = 0.0f;
        for (int64_t j = 0; j < n; j++) s += expf(hft_to_f32(x[base + j * inner]) - m);
        const float ls = logf(s), inv = 1.0f / s;
        for (int64_t j = 0; j < n; j++) {
            float d = hft_to_f32(x[base + j * inner]) - m;
            y[base + j * inner] = hft_from_f32<T>(is_log ? d - ls : expf(d) * inv);
        }
    }
}

template <typename T>
__global__ void sm_bwd_cols(const T *__restrict__ y, const T *__restrict__ dy, T *__restrict__ dx,
                            int64_t outer, int64_t n, int64_t inner, bool is_log, bool acc) {
    const int64_t total = outer * inner;
    for (int64_t q = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; q < total;
         q += (int64_t)gridDim.x * blockDim.x) {
        const int64_t base = (q / inner) * n * inner + q % inner;
        float s = 0.0f;
        for (int64_t j = 0; j < n; j++) {
            float g = hft_to_f32(dy[base + j * inner]);
            s += is_log ? g : g * hft_to_f32(y[base + j * inner]);
        }
        for (int64_t j = 0; j < n; j++) {
            const int64_t e = base + j * inner;
            float yi = hft_to_f32(y[e]), gi = hft_to_f32(dy[e]);
            float d = is_log ? gi - expf(yi) * s : yi * (gi - s);
            dx[e] = hft_from_f32<T>(acc ? hft_to_f32(dx[e]) + d : d);
        }
    }
}

// ---------------------------------------------------------------- entries

bool check_args(const hft_softmax_args *a, const char *op) {
    if (a->outer < 0 || a->n < 0 || a->inner < 0) {
        hft_cuda_fail(HFT_EINVAL, op, "negative shape [%lld, %lld, %lld]", (long long)a->outer,
                      (long long)a->n, (long long)a->inner);
        return false;
    }
    if (a->inner == 1 && (a->n > INT32_MAX || a->outer > INT32_MAX)) {
        hft_cuda_fail(HFT_EUNSUPPORTED, op, "rows of %lld values, %lld rows (2^31 - 1 at most)",
                      (long long)a->n, (long long)a->outer);
        return false;
    }
    return true;
}

template <typename T, int N> void fwd_rows(const hft_softmax_args *a) {
    const row_kernels<const T *, T *, int64_t, int, bool> k = {
        sm_fwd_rows<T, N, 8, true>, sm_fwd_rows<T, N, 32, true>, sm_fwd_rows<T, N, 8, false>,
        sm_fwd_rows<T, N, 32, false>, sm_fwd_long<T, N>};
    launch_rows(k, a->n, a->outer, 0, static_cast<const T *>(a->x), static_cast<T *>(a->out), a->outer,
                (int)a->n, a->log);
}

template <typename T, int N> void bwd_rows(const hft_softmax_args *a) {
    const row_kernels<const T *, const T *, T *, int64_t, int, bool, bool> k = {
        sm_bwd_rows<T, N, 8, true>, sm_bwd_rows<T, N, 32, true>, sm_bwd_rows<T, N, 8, false>,
        sm_bwd_rows<T, N, 32, false>, sm_bwd_long<T, N>};
    launch_rows(k, a->n, a->outer, 0, static_cast<const T *>(a->y), static_cast<const T *>(a->dy),
                static_cast<T *>(a->out), a->outer, (int)a->n, a->log, a->accumulate);
}

template <typename T> void softmax_fwd(const hft_softmax_args *a) {
    if (!check_args(a, "softmax_fwd")) return;
    if (a->outer == 0 || a->n == 0 || a->inner == 0) return;
    if (a->inner == 1) {
        constexpr int V = vec_width<T>();
        if (rows_aligned(a->x, a->n, sizeof(T)) && rows_aligned(a->out, a->n, sizeof(T)))
            fwd_rows<T, V>(a);
        else
            fwd_rows<T, 1>(a);
    } else {
        const int threads = 256;
        HFT_LAUNCH(hft_cuda_blocks(a->outer * a->inner, threads), threads, 0, hft_cuda_stream(),
                   sm_fwd_cols<T>)
        (static_cast<const T *>(a->x), static_cast<T *>(a->out), a->outer, a->n, a->inner, a->log);
    }
    hft_cuda_check_launch("softmax_fwd");
}

template <typename T> void softmax_bwd(const hft_softmax_args *a) {
    if (!check_args(a, "softmax_bwd")) return;
    if (a->outer == 0 || a->n == 0 || a->inner == 0) return;
    if (a->inner == 1) {
        constexpr int V = vec_width<T>();
        if (rows_aligned(a->y, a->n, sizeof(T)) && rows_aligned(a->dy, a->n, sizeof(T)) &&
            rows_aligned(a->out, a->n, sizeof(T)))
            bwd_rows<T, V>(a);
        else
            bwd_rows<T, 1>(a);
    } else {
        const int threads = 256;
        HFT_LAUNCH(hft_cuda_blocks(a->outer * a->inner, threads), threads, 0, hft_cuda_stream(),
                   sm_bwd_cols<T>)
        (static_cast<const T *>(a->y), static_cast<const T *>(a->dy), static_cast<T *>(a->out), a->outer,
         a->n, a->inner, a->log, a->accumulate);
    }
    hft_cuda_check_launch("softmax_bwd");
}

} // namespace

void hft_cuda_register_softmax(hft_kernels *t) {
    t->softmax_fwd[HFT_F32] = softmax_fwd<float>;
    t->softmax_fwd[HFT_BF16] = softmax_fwd<hft_bf16_t>;
    t->softmax_fwd[HFT_F16] = softmax_fwd<hft_f16_t>;
    t->softmax_bwd[HFT_F32] = softmax_bwd<float>;
    t->softmax_bwd[HFT_BF16] = softmax_bwd<hft_bf16_t>;
    t->softmax_bwd[HFT_F16] = softmax_bwd<hft_f16_t>;
}
