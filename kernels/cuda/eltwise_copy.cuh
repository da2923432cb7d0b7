// The strided copy (included by eltwise.cu): what kernels/cpu/copy.c does, bit for bit. Same-dtype copies
// move raw bits (a contiguous one is a device-to-device memcpy); copies among f32 / bf16 / f16 convert
// through f32 with the CPU's rounding; copies that involve i32 / i64 / u8 go through f64 as copy.c does.
// Accumulation adds in f32 for the floating pairs, which gives the CPU's f64 sum rounded to the
// destination exactly: the f64 sum of two f32 values, rounded to f32, is their correctly rounded f32 sum.
//
// A destination with stride 0 where the source has extent (a broadcast destination) sums into each element
// in the CPU's order: one thread per destination element walks the summed dims row-major, rounding to the
// destination's dtype after every addition, as copy.c's sequential loop does; deterministic, but a long
// sum is one thread's serial loop (reduce is the fast way to sum a gradient over broadcast dims).
#ifndef HFT_CUDA_ELTWISE_COPY_CUH
#define HFT_CUDA_ELTWISE_COPY_CUH

namespace {

int elt_dtype_size(hft_dtype t) {
    switch (t) {
    case HFT_F64:
    case HFT_I64:
        return 8;
    case HFT_F32:
    case HFT_I32:
        return 4;
    case HFT_BF16:
    case HFT_F16:
        return 2;
    default:
        return 1;
    }
}

bool copy_dtype_ok(hft_dtype t) {
    return t == HFT_F32 || t == HFT_BF16 || t == HFT_F16 || t == HFT_I32 || t == HFT_I64 || t == HFT_U8;
}

bool float_storage(hft_dtype t) {
    return t == HFT_F32 || t == HFT_BF16 || t == HFT_F16;
}

// Loads widened exactly as dtype.c widens (an f16 NaN keeps its payload).
HFT_DEVICE float elt_load_exact(float x) {
    return x;
}
HFT_DEVICE float elt_load_exact(hft_bf16_t x) {
    uint16_t b;
    memcpy(&b, &x, 2);
    return elt_bf16_to_f32(b);
}
HFT_DEVICE float elt_load_exact(hft_f16_t x) {
    uint16_t b;
    memcpy(&b, &x, 2);
    return elt_f16_to_f32(b);
}

template <typename U, typename I>
__global__ void __launch_bounds__(ELT_THREADS)
    copy_raw_kernel(U *dst, const U *src, elt_geom<2> g, int64_t n) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = tid; i < n; i += step) {
        int64_t off[2];
        elt_offsets<I>(g, 2, (I)i, off);
        dst[off[0]] = src[off[1]];
    }
}

template <typename TD, typename TS, typename I>
__global__ void __launch_bounds__(ELT_THREADS)
    copy_float_kernel(TD *dst, const TS *src, elt_geom<2> g, int64_t n, bool acc) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = tid; i < n; i += step) {
        int64_t off[2];
        elt_offsets<I>(g, 2, (I)i, off);
        float v = elt_load_exact(src[off[1]]);
        if (acc) v = elt_load_exact(dst[off[0]]) + v;
        dst[off[0]] = elt_store_exact<TD>(v);
    }
}

// Both contiguous: four elements per step (a 16-byte f32 access, an 8-byte bf16 / f16 one), the n % 4 tail
// to the first threads.
template <typename TD, typename TS>
__global__ void __launch_bounds__(ELT_THREADS)
    copy_float_contig_kernel(TD *dst, const TS *src, int64_t n, bool acc) {
    typedef elt_pack<TD, 4> PD;
    typedef elt_pack<TS, 4> PS;
    int64_t nvec = n / 4;
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t v = tid; v < nvec; v += step) {
        PS q = reinterpret_cast<const PS *>(src)[v];
        PD o;
        if (acc) o = reinterpret_cast<const PD *>(dst)[v];
        HFT_UNROLL
        for (int e = 0; e < 4; e++) {
            float x = elt_load_exact(q.v[e]);
            o.v[e] = elt_store_exact<TD>(acc ? elt_load_exact(o.v[e]) + x : x);
        }
        reinterpret_cast<PD *>(dst)[v] = o;
    }
    int64_t i = nvec * 4 + tid;
    if (i < n) {
        float x = elt_load_exact(src[i]);
        dst[i] = elt_store_exact<TD>(acc ? elt_load_exact(dst[i]) + x : x);
    }
}

// An integer on either side: copy.c's load_as_double / store_from_double.
template <typename I>
__global__ void __launch_bounds__(ELT_THREADS)
    copy_generic_kernel(char *dst, hft_dtype dt, int des, const char *src, hft_dtype st, int ses,
                        elt_geom<2> g, int64_t n, bool acc) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = tid; i < n; i += step) {
        int64_t off[2];
        elt_offsets<I>(g, 2, (I)i, off);
        char *d = dst + off[0] * des;
        double v = elt_load_as_double(st, src + off[1] * ses);
        if (acc) v = elt_load_as_double(dt, d) + v;
        elt_store_from_double(dt, d, v);
    }
}

// One thread per destination element (kept dims kg: dst and src strides); the summed dims sg (src strides)
// walked row-major, the running value rounded to dt after each step as the CPU stores it.
template <typename I>
__global__ void __launch_bounds__(ELT_THREADS)
    copy_sum_kernel(char *dst, hft_dtype dt, int des, const char *src, hft_dtype st, int ses, elt_geom<2> kg,
                    elt_geom<1> sg, int64_t nout, int64_t nsum, bool acc) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t o = tid; o < nout; o += step) {
        int64_t off[2];
        elt_offsets<I>(kg, 2, (I)o, off);
        char *d = dst + off[0] * des;
        const char *s0 = src + off[1] * ses;
        uint64_t bits; // the running value in dt's storage (8-byte aligned for the i64 store)
        char *cur = (char *)&bits;
        memcpy(cur, d, (size_t)des);
        for (int64_t r = 0; r < nsum; r++) {
            int64_t so[1];
            elt_offsets<I>(sg, 1, (I)r, so);
            double x = elt_load_as_double(st, s0 + so[0] * ses);
            elt_store_from_double(dt, cur, acc ? elt_load_as_double(dt, cur) + x : x);
        }
        memcpy(d, cur, (size_t)des);
    }
}

template <typename I> struct copy_launch {
    static void sum(const hft_copy_args *a, const elt_geom<2> &kg, const elt_geom<1> &sg, int64_t nout,
                    int64_t nsum) {
        HFT_LAUNCH(hft_cuda_blocks(nout, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(), copy_sum_kernel<I>)
        ((char *)a->dst.data, a->dst_dtype, elt_dtype_size(a->dst_dtype), (const char *)a->src.data,
         a->src_dtype, elt_dtype_size(a->src_dtype), kg, sg, nout, nsum, a->accumulate);
    }
    static void raw(const hft_copy_args *a, const elt_geom<2> &g, int64_t n) {
        unsigned blocks = hft_cuda_blocks(n, ELT_THREADS);
        switch (elt_dtype_size(a->dst_dtype)) {
        case 1:
            HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), copy_raw_kernel<uint8_t, I>)
            ((uint8_t *)a->dst.data, (const uint8_t *)a->src.data, g, n);
            break;
        case 2:
            HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), copy_raw_kernel<uint16_t, I>)
            ((uint16_t *)a->dst.data, (const uint16_t *)a->src.data, g, n);
            break;
        case 4:
            HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), copy_raw_kernel<uint32_t, I>)
            ((uint32_t *)a->dst.data, (const uint32_t *)a->src.data, g, n);
            break;
        default:
            HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), copy_raw_kernel<uint64_t, I>)
            ((uint64_t *)a->dst.data, (const uint64_t *)a->src.data, g, n);
            break;
        }
    }
    template <typename TD, typename TS>
    static void float_pair(const hft_copy_args *a, const elt_geom<2> &g, int64_t n) {
        TD *d = (TD *)a->dst.data;
        const TS *src = (const TS *)a->src.data;
        bool contig = g.nd == 1 && g.st[0][0] == 1 && g.st[1][0] == 1;
        if (contig && (uintptr_t)d % (4 * sizeof(TD)) == 0 && (uintptr_t)src % (4 * sizeof(TS)) == 0) {
            HFT_LAUNCH(hft_cuda_blocks(n / 4 + 1, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                       copy_float_contig_kernel<TD, TS>)
            (d, src, n, a->accumulate);
        } else {
            HFT_LAUNCH(hft_cuda_blocks(n, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                       copy_float_kernel<TD, TS, I>)
            (d, src, g, n, a->accumulate);
        }
    }
    template <typename TD> static void float_from(const hft_copy_args *a, const elt_geom<2> &g, int64_t n) {
        if (a->src_dtype == HFT_F32)
            float_pair<TD, float>(a, g, n);
        else if (a->src_dtype == HFT_BF16)
            float_pair<TD, hft_bf16_t>(a, g, n);
        else
            float_pair<TD, hft_f16_t>(a, g, n);
    }
    static void floats(const hft_copy_args *a, const elt_geom<2> &g, int64_t n) {
        if (a->dst_dtype == HFT_F32)
            float_from<float>(a, g, n);
        else if (a->dst_dtype == HFT_BF16)
            float_from<hft_bf16_t>(a, g, n);
        else
            float_from<hft_f16_t>(a, g, n);
    }
    static void generic(const hft_copy_args *a, const elt_geom<2> &g, int64_t n) {
        HFT_LAUNCH(hft_cuda_blocks(n, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(), copy_generic_kernel<I>)
        ((char *)a->dst.data, a->dst_dtype, elt_dtype_size(a->dst_dtype), (const char *)a->src.data,
         a->src_dtype, elt_dtype_size(a->src_dtype), g, n, a->accumulate);
    }
};

template <typename I> void copy_dispatch(const hft_copy_args *a, const elt_geom<2> &g, int64_t n) {
    if (!a->accumulate && a->dst_dtype == a->src_dtype)
        copy_launch<I>::raw(a, g, n);
    else if (float_storage(a->dst_dtype) && float_storage(a->src_dtype))
        copy_launch<I>::floats(a, g, n);
    else
        copy_launch<I>::generic(a, g, n);
}

void copy_entry(const hft_copy_args *a) {
    const char *where = "copy";
    if (!copy_dtype_ok(a->dst_dtype) || !copy_dtype_ok(a->src_dtype)) {
        hft_cuda_fail(HFT_EUNSUPPORTED, where,
                      "dtypes %d → %d (f32, bf16, f16, i32, i64, u8; f64 is the CPU's)", (int)a->src_dtype,
                      (int)a->dst_dtype);
        return;
    }
    if (!view_ok(where, &a->dst) || !view_ok(where, &a->src)) return;
    if (!same_shape(&a->dst, &a->src)) {
        hft_cuda_fail(HFT_EINVAL, where, "source and destination shapes differ");
        return;
    }
    const hft_kview *views[2] = {&a->dst, &a->src};
    elt_geom<2> g = elt_coalesce<2>(2, views);
    int64_t n = elt_numel(g);
    if (n == 0) return;
    if (writes_twice(g, 0)) { // split into kept dims and the summed dims (dst stride 0)
        elt_geom<2> kg;
        elt_geom<1> sg;
        memset(&kg, 0, sizeof kg);
        memset(&sg, 0, sizeof sg);
        for (int d = 0; d < g.nd; d++) {
            if (g.st[0][d] == 0) {
                sg.shape[sg.nd] = g.shape[d];
                sg.st[0][sg.nd++] = g.st[1][d];
            } else {
                kg.shape[kg.nd] = g.shape[d];
                kg.st[0][kg.nd] = g.st[0][d];
                kg.st[1][kg.nd++] = g.st[1][d];
            }
        }
        if (kg.nd == 0) kg.shape[kg.nd++] = 1; // one destination element
        int64_t nout = elt_numel(kg), nsum = elt_numel(sg);
        if (nout <= (int64_t)UINT32_MAX && nsum <= (int64_t)UINT32_MAX)
            copy_launch<uint32_t>::sum(a, kg, sg, nout, nsum);
        else
            copy_launch<uint64_t>::sum(a, kg, sg, nout, nsum);
    } else if (!a->accumulate && a->dst_dtype == a->src_dtype && g.nd == 1 && g.st[0][0] == 1 &&
               g.st[1][0] == 1) {
        if (a->dst.data == a->src.data) return;
        cudaError_t e = cudaMemcpyAsync(a->dst.data, a->src.data, (size_t)n * elt_dtype_size(a->dst_dtype),
                                        cudaMemcpyDeviceToDevice, hft_cuda_stream());
        if (e != cudaSuccess) hft_cuda_fail(HFT_EDEVICE, where, "memcpy: %s", cudaGetErrorString(e));
        return;
    } else if (n <= (int64_t)UINT32_MAX) {
        copy_dispatch<uint32_t>(a, g, n);
    } else {
        copy_dispatch<uint64_t>(a, g, n);
    }
    hft_cuda_check_launch(where);
}

} // namespace

#endif
