// Cross-entropy over rows of logits [rows, classes] (row stride ld) with i32 / i64 targets on CUDA,
// f32 / bf16 / f16 logits, as the CPU computes it (kernels/cpu/xent_impl.h): row loss -log p_t =
// (max - x_t) + log Σ exp(x - max), with label smoothing (1-ε)·nll + ε·mean_c(-log p_c) as torch; an
// ignored row has loss 0 (and lse 0) and gradient 0; backward writes dlogits = scale·(softmax - smoothed
// one-hot), in place when dlogits == logits (accumulate is then ignored, as on the CPU).
//
// row_loss and lse are f32 buffers [rows] for every logits dtype: a bf16 lse would put an error of up to
// 2^-9 · |lse| into every exp(x - lse) of backward, and the loss is summed over many rows afterwards.
//
// One block per row. Forward reads the row once: each thread keeps an online (max, Σ exp) over its
// 16-byte packs, merged across the block in a fixed order. Backward reads it once more and writes it.
// This is the inner step of the fused classifier + cross-entropy (autograd/ops_loss.c), which calls both
// on a block of rows of logits it just computed, so a 50257- or 128256-wide row must stream at full
// bandwidth: vector loads after a scalar head that brings the row to a 16-byte boundary (rows of an odd
// width start anywhere), and about one exp per element (one more per pack when the running max grows).
#include "kernels/cuda/rowops.cuh"

namespace {

using namespace rowops;

struct xent_params {
    const void *logits;
    void *dlogits;
    const void *targets;
    float *row_loss, *lse;
    int64_t rows, ld, ignore_index;
    int C;
    bool t64;
    float eps;                  // label smoothing
    float scale, smooth_c, hit; // backward: scale, scale·ε/C, scale·(1-ε)
    bool acc;
};

HFT_DEVICE int64_t target_of(const xent_params &p, int64_t row) {
    return p.t64 ? static_cast<const int64_t *>(p.targets)[row]
                 : static_cast<const int32_t *>(p.targets)[row];
}

// The elements of a row of C at `row` before its first 16-byte boundary (all of them when packs are off).
template <typename T> HFT_DEVICE int head_len(const T *row, int C, bool packs) {
    if (!packs) return C;
    int h = (int)(((16 - (uintptr_t)row % 16) % 16) / sizeof(T));
    return h < C ? h : C;
}

// Visits a row in the order: head elements, 16-byte packs, tail elements, calling f.one<K>(c) for the K
// (1 or N) columns from c. Each column is visited by exactly one thread.
template <int N, typename F> HFT_DEVICE void for_row(int C, int head, F f) {
    const int tid = (int)threadIdx.x, nt = (int)blockDim.x;
    for (int c = tid; c < head; c += nt) f.template one<1>(c);
    const int body = (C - head) / N * N;
    for (int c = head + tid * N; c < head + body; c += nt * N) f.template one<N>(c);
    for (int c = head + body + tid; c < C; c += nt) f.template one<1>(c);
}

template <typename T> struct fwd_visit {
    const T *x;
    online *st;
    float *sx;
    bool smooth;
    template <int K> HFT_DEVICE void one(int c) const {
        float v[K];
        load<T, K>(x + c, v);
        online_add<K>(*st, v);
        if (smooth) {
            HFT_UNROLL
            for (int i = 0; i < K; i++) *sx += v[i];
        }
    }
};

template <typename T, int N> __global__ void __launch_bounds__(1024) xent_fwd_rows(xent_params p) {
    const int64_t row = blockIdx.x;
    const int64_t t = target_of(p, row);
    if (t == p.ignore_index) {
        if (threadIdx.x == 0) {
            p.row_loss[row] = 0.0f;
            if (p.lse) p.lse[row] = 0.0f;
        }
        return;
    }
    const T *x = static_cast<const T *>(p.logits) + row * p.ld;
    online st{neg_inf(), 0.0f};
    float sx = 0.0f;
    const bool smooth = p.eps > 0.0f;
    for_row<N>(p.C, head_len(x, p.C, N > 1), fwd_visit<T>{x, &st, &sx, smooth});
    st = block_online(st, sx);
    if (threadIdx.x != 0) return;
    // a row of nothing but -inf: NaN, as the CPU's exp(-inf - -inf)
    const float m = st.m, logs = logf(st.m == -INFINITY ? quiet_nan() : st.s);
    const float nll = t >= 0 && t < p.C ? (m - hft_to_f32(x[t])) + logs : quiet_nan();
    const float loss = smooth ? (1.0f - p.eps) * nll + p.eps * ((m - sx / (float)p.C) + logs) : nll;
    p.row_loss[row] = loss;
    if (p.lse) p.lse[row] = m + logs;
}

// d = scale·exp(x - lse) - scale·ε/C - (c == t ? scale·(1-ε) : 0), added to d when accumulating; x and d
// may be the same memory (each element read and written by one thread).
template <typename T> struct bwd_visit {
    const T *x;
    T *d;
    float L, scale, smooth_c, hit;
    int64_t t;
    bool acc, zero;
    template <int K> HFT_DEVICE void one(int c) const {
        float v[K], o[K], old[K];
        if (zero) {
            HFT_UNROLL
            for (int i = 0; i < K; i++) o[i] = 0.0f;
        } else {
            load<T, K>(x + c, v);
            if (acc) load<T, K>(d + c, old);
            HFT_UNROLL
            for (int i = 0; i < K; i++) {
                float g = scale * expf(v[i] - L) - smooth_c;
                if (c + i == t) g -= hit;
                o[i] = acc ? old[i] + g : g;
            }
        }
        store<T, K>(d + c, o);
    }
};

template <typename T, int N> __global__ void __launch_bounds__(1024) xent_bwd_rows(xent_params p) {
    const int64_t row = blockIdx.x;
    const int64_t t = target_of(p, row);
    const T *x = static_cast<const T *>(p.logits) + row * p.ld;
    T *d = static_cast<T *>(p.dlogits) + row * p.ld;
    const bool ignored = t == p.ignore_index;
    if (ignored && p.acc) return; // adds nothing
    // packs need x and d at the same offset from a 16-byte boundary
    const bool packs = N > 1 && (uintptr_t)x % 16 == (uintptr_t)d % 16;
    bwd_visit<T> v{x, d, ignored ? 0.0f : p.lse[row], p.scale, p.smooth_c, p.hit, t, p.acc, ignored};
    for_row<N>(p.C, head_len(d, p.C, packs), v);
}

bool check_args(const hft_xent_args *a, const char *op, bool backward) {
    if (a->rows < 0 || a->classes < 0 || a->rows > INT32_MAX || a->classes > INT32_MAX) {
        hft_cuda_fail(HFT_EUNSUPPORTED, op, "%lld rows of %lld classes (each 0 .. 2^31 - 1)",
                      (long long)a->rows, (long long)a->classes);
        return false;
    }
    if (a->rows > 1 && a->ld < a->classes) {
        hft_cuda_fail(HFT_EINVAL, op, "row stride %lld below the %lld classes", (long long)a->ld,
                      (long long)a->classes);
        return false;
    }
    if (a->target_dtype != HFT_I32 && a->target_dtype != HFT_I64) {
        hft_cuda_fail(HFT_EINVAL, op, "targets must be i32 or i64");
        return false;
    }
    if (a->rows > 0 && (!a->logits || !a->targets || (backward ? !a->dlogits || !a->lse : !a->row_loss))) {
        hft_cuda_fail(HFT_EINVAL, op,
                      backward ? "logits, targets, lse and dlogits are required"
                               : "logits, targets and row_loss are required");
        return false;
    }
    return true;
}

xent_params params_of(const hft_xent_args *a) {
    xent_params p = {};
    p.logits = a->logits;
    p.dlogits = a->dlogits;
    p.targets = a->targets;
    p.row_loss = static_cast<float *>(a->row_loss);
    p.lse = static_cast<float *>(a->lse);
    p.rows = a->rows;
    p.ld = a->ld;
    p.ignore_index = a->ignore_index;
    p.C = (int)a->classes;
    p.t64 = a->target_dtype == HFT_I64;
    p.eps = (float)a->label_smoothing;
    p.scale = (float)a->scale;
    p.smooth_c = (float)(a->scale * a->label_smoothing / (double)(a->classes > 0 ? a->classes : 1));
    p.hit = (float)(a->scale * (1 - a->label_smoothing));
    p.acc = a->accumulate && a->dlogits != a->logits;
    return p;
}

// Enough threads for one pack each, up to 1024 (a 50257-wide bf16 row: 1024 threads, 6 packs each).
template <typename T> int row_threads(int64_t C) {
    int64_t packs = (C + vec_width<T>() - 1) / vec_width<T>();
    int64_t t = (packs + 31) / 32 * 32;
    return (int)(t < 32 ? 32 : t > 1024 ? 1024 : t);
}

template <typename T> void xent_fwd(const hft_xent_args *a) {
    if (!check_args(a, "xent_fwd", false) || a->rows == 0) return;
    HFT_LAUNCH((unsigned)a->rows, row_threads<T>(a->classes), 0, hft_cuda_stream(),
               xent_fwd_rows<T, vec_width<T>()>)
    (params_of(a));
    hft_cuda_check_launch("xent_fwd");
}

template <typename T> void xent_bwd(const hft_xent_args *a) {
    if (!check_args(a, "xent_bwd", true) || a->rows == 0) return;
    HFT_LAUNCH((unsigned)a->rows, row_threads<T>(a->classes), 0, hft_cuda_stream(),
               xent_bwd_rows<T, vec_width<T>()>)
    (params_of(a));
    hft_cuda_check_launch("xent_bwd");
}

} // namespace

void hft_cuda_register_xent(hft_kernels *t) {
    t->xent_fwd[HFT_F32] = xent_fwd<float>;
    t->xent_fwd[HFT_BF16] = xent_fwd<hft_bf16_t>;
    t->xent_fwd[HFT_F16] = xent_fwd<hft_f16_t>;
    t->xent_bwd[HFT_F32] = xent_bwd<float>;
    t->xent_bwd[HFT_BF16] = xent_bwd<hft_bf16_t>;
    t->xent_bwd[HFT_F16] = xent_bwd<hft_f16_t>;
}
