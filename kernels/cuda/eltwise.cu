// The element-wise family on CUDA: maps (every hft_map_op, f32 / bf16 / f16, arithmetic in f32), fills,
// round_to, strided copies with dtype conversion (eltwise_copy.cuh), reductions and the ordered sums behind
// losses and gradient norms (eltwise_reduce.cuh). Each computes what its CPU twin in kernels/cpu/ computes:
// the same formulas (eltwise_math.cuh), the same conversions bit for bit (eltwise_convert.cuh), the same
// coalescing of strided views (eltwise_geom.cuh).
//
// A map whose operands are all contiguous with out's shape (or scalars broadcast over it) runs a vectorised
// grid-stride loop, 16 bytes per operand per step; anything else turns each linear index into strided
// offsets with the dims the host coalesced.
#include "kernels/cuda/eltwise_convert.cuh"
#include "kernels/cuda/eltwise_geom.cuh"
#include "kernels/cuda/eltwise_math.cuh"

namespace {

constexpr int ELT_THREADS = 256;

// 16 bytes of T (or one T), loaded and stored as one vector access where aligned.
template <typename T, int N> struct alignas(sizeof(T) * N) elt_pack { T v[N]; };

template <typename T> struct elt_map_ptrs {
    T *out;
    const T *in[3];
};

bool elt_aligned16(const void *p) {
    return ((uintptr_t)p & 15u) == 0;
}

// ---------------------------------------------------------------- map

// Contiguous operands: input k is read as a vector unless bit k of `bcast` says it is one value broadcast
// over out (stride 0 after coalescing). A thread handles VEC elements per step; the n % VEC tail goes to
// the first threads of the grid.
template <typename T, int VEC>
__global__ void __launch_bounds__(ELT_THREADS)
    map_contig_kernel(int op, int n_in, elt_map_ptrs<T> p, unsigned bcast, int64_t n, float alpha, bool acc) {
    typedef elt_pack<T, VEC> P;
    float sv[3];
    HFT_UNROLL
    for (int k = 0; k < 3; k++) sv[k] = k < n_in && ((bcast >> k) & 1u) ? hft_to_f32(p.in[k][0]) : 0.0f;
    int64_t nvec = n / VEC;
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t v = tid; v < nvec; v += step) {
        float x[3][VEC];
        HFT_UNROLL
        for (int k = 0; k < 3; k++) {
            if (k < n_in && !((bcast >> k) & 1u)) {
                P q = reinterpret_cast<const P *>(p.in[k])[v];
                HFT_UNROLL
                for (int e = 0; e < VEC; e++) x[k][e] = hft_to_f32(q.v[e]);
            } else {
                HFT_UNROLL
                for (int e = 0; e < VEC; e++) x[k][e] = sv[k];
            }
        }
        P o;
        if (acc) o = reinterpret_cast<const P *>(p.out)[v];
        HFT_UNROLL
        for (int e = 0; e < VEC; e++) {
            float r = elt_map_apply(op, x[0][e], x[1][e], x[2][e], alpha);
            o.v[e] = hft_from_f32<T>(acc ? hft_to_f32(o.v[e]) + r : r);
        }
        reinterpret_cast<P *>(p.out)[v] = o;
    }
    int64_t i = nvec * VEC + tid;
    if (i < n) {
        float x[3];
        HFT_UNROLL
        for (int k = 0; k < 3; k++) x[k] = k < n_in && !((bcast >> k) & 1u) ? hft_to_f32(p.in[k][i]) : sv[k];
        float r = elt_map_apply(op, x[0], x[1], x[2], alpha);
        p.out[i] = hft_from_f32<T>(acc ? hft_to_f32(p.out[i]) + r : r);
    }
}

// Any strides: operand 0 is out, 1..n_in the inputs.
template <typename T, typename I>
__global__ void __launch_bounds__(ELT_THREADS)
    map_strided_kernel(int op, int n_in, elt_map_ptrs<T> p, elt_geom<ELT_MAX_OPS> g, int64_t n, float alpha,
                       bool acc) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = tid; i < n; i += step) {
        int64_t off[ELT_MAX_OPS];
        elt_offsets<I>(g, 1 + n_in, (I)i, off);
        float x[3];
        HFT_UNROLL
        for (int k = 0; k < 3; k++) x[k] = k < n_in ? hft_to_f32(p.in[k][off[k + 1]]) : 0.0f;
        float r = elt_map_apply(op, x[0], x[1], x[2], alpha);
        T *o = p.out + off[0];
        *o = hft_from_f32<T>(acc ? hft_to_f32(*o) + r : r);
    }
}

// Inputs each op reads (in[0] only for the unary forward ops).
int map_arity(hft_map_op op) {
    switch (op) {
    case HFT_MAP_ADD:
    case HFT_MAP_SUB:
    case HFT_MAP_MUL:
    case HFT_MAP_DIV:
        return 2;
    case HFT_MAP_COPY:
    case HFT_MAP_SCALE:
    case HFT_MAP_NEG:
    case HFT_MAP_EXP:
    case HFT_MAP_LOG:
    case HFT_MAP_SQRT:
    case HFT_MAP_POW:
    case HFT_MAP_RELU:
    case HFT_MAP_GELU_TANH:
    case HFT_MAP_GELU_ERF:
    case HFT_MAP_SILU:
    case HFT_MAP_TANH:
    case HFT_MAP_SIGMOID:
        return 1;
    case HFT_MAP_DIV_BWD_B:
        return 3;
    default:
        return 2; // the other backward ops: g and x (or y)
    }
}

bool same_shape(const hft_kview *a, const hft_kview *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

bool view_ok(const char *where, const hft_kview *v) {
    if (v->ndim < 0 || v->ndim > HFT_MAX_DIMS) {
        hft_cuda_fail(HFT_EINVAL, where, "a view of %d dims (at most %d)", v->ndim, HFT_MAX_DIMS);
        return false;
    }
    for (int d = 0; d < v->ndim; d++)
        if (v->shape[d] < 0) {
            hft_cuda_fail(HFT_EINVAL, where, "negative extent %lld", (long long)v->shape[d]);
            return false;
        }
    return true;
}

// Whether a coalesced view writes one element twice (stride 0 over an extent above 1).
template <int NOPS> bool writes_twice(const elt_geom<NOPS> &g, int k) {
    for (int d = 0; d < g.nd; d++)
        if (g.st[k][d] == 0 && g.shape[d] > 1) return true;
    return false;
}

template <typename T> void map_entry(const hft_map_args *a) {
    const char *where = "map";
    if ((int)a->op < 0 || a->op >= HFT_MAP_OP_COUNT) {
        hft_cuda_fail(HFT_EINVAL, where, "unknown op %d", (int)a->op);
        return;
    }
    if (a->n_in < map_arity(a->op) || a->n_in > 3) {
        hft_cuda_fail(HFT_EINVAL, where, "op %d given %d inputs (it reads %d)", (int)a->op, a->n_in,
                      map_arity(a->op));
        return;
    }
    if (!view_ok(where, &a->out)) return;
    const hft_kview *views[ELT_MAX_OPS] = {&a->out, &a->in[0], &a->in[1], &a->in[2]};
    for (int k = 0; k < a->n_in; k++)
        if (!same_shape(&a->out, &a->in[k])) {
            hft_cuda_fail(HFT_EINVAL, where, "input %d's shape is not out's (inputs come expanded)", k);
            return;
        }
    elt_geom<ELT_MAX_OPS> g = elt_coalesce<ELT_MAX_OPS>(1 + a->n_in, views);
    int64_t n = elt_numel(g);
    if (n == 0) return;
    if (writes_twice(g, 0)) {
        hft_cuda_fail(HFT_EUNSUPPORTED, where, "an output with stride 0 (a broadcast out)");
        return;
    }
    int op = (int)a->op;
    if (a->op == HFT_MAP_POW && a->alpha == 2.0) op = ELT_MAP_SQUARE; // as map_impl.h picks map_square
    if (a->op == HFT_MAP_POW_BWD_X && a->alpha == 2.0) op = ELT_MAP_SQUARE_BWD;
    float alpha = (float)a->alpha;
    elt_map_ptrs<T> p = {(T *)a->out.data, {nullptr, nullptr, nullptr}};
    for (int k = 0; k < a->n_in; k++) p.in[k] = (const T *)a->in[k].data;

    bool contig = g.nd == 1 && g.st[0][0] == 1;
    unsigned bcast = 0;
    bool aligned = elt_aligned16(p.out);
    for (int k = 0; k < a->n_in && contig; k++) {
        if (g.st[k + 1][0] == 0) {
            bcast |= 1u << k;
        } else {
            contig = g.st[k + 1][0] == 1;
            aligned = aligned && elt_aligned16(p.in[k]);
        }
    }
    if (contig) {
        constexpr int VEC = 16 / sizeof(T);
        if (aligned) {
            HFT_LAUNCH(hft_cuda_blocks(n / VEC + 1, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                       map_contig_kernel<T, VEC>)
            (op, a->n_in, p, bcast, n, alpha, a->accumulate);
        } else {
            HFT_LAUNCH(hft_cuda_blocks(n, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                       map_contig_kernel<T, 1>)
            (op, a->n_in, p, bcast, n, alpha, a->accumulate);
        }
    } else if (n <= (int64_t)UINT32_MAX) {
        HFT_LAUNCH(hft_cuda_blocks(n, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   map_strided_kernel<T, uint32_t>)
        (op, a->n_in, p, g, n, alpha, a->accumulate);
    } else {
        HFT_LAUNCH(hft_cuda_blocks(n, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   map_strided_kernel<T, uint64_t>)
        (op, a->n_in, p, g, n, alpha, a->accumulate);
    }
    hft_cuda_check_launch(where);
}

// ---------------------------------------------------------------- fill

// Contiguous: a 16-byte pattern of the value stored over the aligned middle, single elements at the ends.
template <typename U>
__global__ void __launch_bounds__(ELT_THREADS) fill_contig_kernel(U *p, U v, int64_t head, int64_t n) {
    constexpr int VEC = 16 / sizeof(U);
    typedef elt_pack<U, VEC> P;
    P pat;
    HFT_UNROLL
    for (int e = 0; e < VEC; e++) pat.v[e] = v;
    int64_t nvec = (n - head) / VEC, tail0 = head + nvec * VEC;
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    P *body = reinterpret_cast<P *>(p + head);
    for (int64_t i = tid; i < nvec; i += step) body[i] = pat;
    for (int64_t i = tid; i < head; i += step) p[i] = v; // all of it when p is not aligned to sizeof(U)
    if (tail0 + tid < n) p[tail0 + tid] = v;
}

template <typename U, typename I>
__global__ void __launch_bounds__(ELT_THREADS) fill_strided_kernel(U *p, U v, elt_geom<1> g, int64_t n) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = tid; i < n; i += step) {
        int64_t off[1];
        elt_offsets<I>(g, 1, (I)i, off);
        p[off[0]] = v;
    }
}

template <typename U> void fill_bits(const hft_kview *dst, U v) {
    const char *where = "fill";
    if (!view_ok(where, dst)) return;
    const hft_kview *views[1] = {dst};
    elt_geom<1> g = elt_coalesce<1>(1, views);
    int64_t n = elt_numel(g);
    if (n == 0) return;
    U *p = (U *)dst->data;
    cudaStream_t s = hft_cuda_stream();
    if (g.nd == 1 && g.st[0][0] == 1) {
        unsigned char bytes[sizeof(U)];
        memcpy(bytes, &v, sizeof(U));
        bool uniform = true;
        for (size_t b = 1; b < sizeof(U); b++) uniform &= bytes[b] == bytes[0];
        if (uniform) { // zero above all: the copy engine's memset
            cudaError_t e = cudaMemsetAsync(p, bytes[0], (size_t)n * sizeof(U), s);
            if (e != cudaSuccess) hft_cuda_fail(HFT_EDEVICE, where, "memset: %s", cudaGetErrorString(e));
            return;
        }
        int64_t head =
            ((uintptr_t)p % sizeof(U)) != 0 ? n : (int64_t)((16 - (uintptr_t)p % 16) % 16 / sizeof(U));
        if (head > n) head = n;
        int64_t body = (n - head) / (16 / (int64_t)sizeof(U)), work = (head > body ? head : body) + 16;
        HFT_LAUNCH(hft_cuda_blocks(work, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   fill_contig_kernel<U>)
        (p, v, head, n);
    } else if (n <= (int64_t)UINT32_MAX) {
        HFT_LAUNCH(hft_cuda_blocks(n, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   fill_strided_kernel<U, uint32_t>)
        (p, v, g, n);
    } else {
        HFT_LAUNCH(hft_cuda_blocks(n, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   fill_strided_kernel<U, uint64_t>)
        (p, v, g, n);
    }
    hft_cuda_check_launch(where);
}

// The value stored as autograd's fill fallback stores it (copy.c's store_from_double from f64).
void fill_f32(const hft_kview *dst, double value) {
    fill_bits<uint32_t>(dst, elt_f32_bits((float)value));
}
void fill_bf16(const hft_kview *dst, double value) {
    fill_bits<uint16_t>(dst, elt_f32_to_bf16((float)value));
}
void fill_f16(const hft_kview *dst, double value) {
    fill_bits<uint16_t>(dst, elt_f32_to_f16((float)value));
}
void fill_i32(const hft_kview *dst, double value) {
    fill_bits<uint32_t>(dst, (uint32_t)(int32_t)value);
}
void fill_i64(const hft_kview *dst, double value) {
    fill_bits<uint64_t>(dst, (uint64_t)(int64_t)value);
}
void fill_u8(const hft_kview *dst, double value) {
    fill_bits<uint8_t>(dst, (uint8_t)value);
}

// ---------------------------------------------------------------- round_to

// dst[i] = src[i] rounded to bf16 / f16 and widened back, bit for bit as round.c; VEC floats per step
// where both arrays are 16-byte aligned. dst may be src.
template <bool BF16, int VEC>
__global__ void __launch_bounds__(ELT_THREADS) round_kernel(float *dst, const float *src, int64_t n) {
    typedef elt_pack<float, VEC> P;
    int64_t nvec = n / VEC;
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t v = tid; v < nvec; v += step) {
        P q = reinterpret_cast<const P *>(src)[v];
        HFT_UNROLL
        for (int e = 0; e < VEC; e++) q.v[e] = BF16 ? elt_round_bf16(q.v[e]) : elt_round_f16(q.v[e]);
        reinterpret_cast<P *>(dst)[v] = q;
    }
    int64_t i = nvec * VEC + tid;
    if (i < n) dst[i] = BF16 ? elt_round_bf16(src[i]) : elt_round_f16(src[i]);
}

void round_to(hft_dtype low, float *dst, const float *src, int64_t n) {
    const char *where = "round_to";
    if (low != HFT_BF16 && low != HFT_F16) {
        hft_cuda_fail(HFT_EINVAL, where, "rounds to bf16 or f16, not dtype %d", (int)low);
        return;
    }
    if (n <= 0) return;
    bool vec = elt_aligned16(dst) && elt_aligned16(src);
    unsigned blocks = hft_cuda_blocks(vec ? n / 4 + 1 : n, ELT_THREADS);
    if (low == HFT_BF16 && vec)
        HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), round_kernel<true, 4>)(dst, src, n);
    else if (low == HFT_BF16)
        HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), round_kernel<true, 1>)(dst, src, n);
    else if (vec)
        HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), round_kernel<false, 4>)(dst, src, n);
    else
        HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), round_kernel<false, 1>)(dst, src, n);
    hft_cuda_check_launch(where);
}

} // namespace

#include "kernels/cuda/eltwise_copy.cuh"
#include "kernels/cuda/eltwise_reduce.cuh"

void hft_cuda_register_eltwise(hft_kernels *t) {
    t->map[HFT_F32] = map_entry<float>;
    t->map[HFT_BF16] = map_entry<hft_bf16_t>;
    t->map[HFT_F16] = map_entry<hft_f16_t>;
    t->reduce[HFT_F32] = reduce_entry<float>;
    t->reduce[HFT_BF16] = reduce_entry<hft_bf16_t>;
    t->reduce[HFT_F16] = reduce_entry<hft_f16_t>;
    t->copy = copy_entry;
    t->round_to = round_to;
    t->fill[HFT_F32] = fill_f32;
    t->fill[HFT_BF16] = fill_bf16;
    t->fill[HFT_F16] = fill_f16;
    t->fill[HFT_I32] = fill_i32;
    t->fill[HFT_I64] = fill_i64;
    t->fill[HFT_U8] = fill_u8;
    t->sum[HFT_F32] = sum_entry<float, false>;
    t->sum[HFT_BF16] = sum_entry<hft_bf16_t, false>;
    t->sum[HFT_F16] = sum_entry<hft_f16_t, false>;
    t->sumsq[HFT_F32] = sum_entry<float, true>;
    t->sumsq[HFT_BF16] = sum_entry<hft_bf16_t, true>;
    t->sumsq[HFT_F16] = sum_entry<hft_f16_t, true>;
}
