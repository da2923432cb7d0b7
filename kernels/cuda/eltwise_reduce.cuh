// Reductions and ordered sums (included by eltwise.cu). Every sum runs in an order fixed by the shape alone
// (never by the grid, the GPU or timing), so results are bit-reproducible:
//
// reduce: out (+)= alpha·Σ over the dims where out has extent 1. The reduced elements of each output are cut
// into fixed chunks summed in f32, their partials combined in f64, as reduce_impl.h does (it sums 4096-
// element rows and 256-row column blocks in f32, blocks in f64). Two layouts:
//   - lanes: the innermost reduced dim is the one adjacent in memory (a row sum, a sum over everything): one
//     warp per (output, 4096-element chunk), lanes striding the chunk, a fixed xor tree across lanes;
//   - columns: the innermost kept dim is (a bias gradient over B·T rows): one thread per (output,
//     256-element chunk), consecutive threads on consecutive outputs so loads coalesce.
//   Several chunks per output leave f64 partials in hft_cuda_scratch(HFT_SCRATCH_REDUCE); one warp per
//   output then adds them with a fixed lane-strided order and xor tree. One chunk stores directly.
//
// sum / sumsq: 8192-element chunks, each summed by one block in f64 (a thread-strided loop, a fixed tree),
// partials in scratch, one block combining them in order; the entry copies the result to the host, so it
// waits for the stream (it returns a value). sumsq squares in f64 as optim_impl.h does.
#ifndef HFT_CUDA_ELTWISE_REDUCE_CUH
#define HFT_CUDA_ELTWISE_REDUCE_CUH

namespace {

constexpr int64_t RED_LANE_CHUNK = 4096; // reduced elements per warp item
constexpr int64_t RED_COL_CHUNK = 256;   // reduced elements per thread item
constexpr int64_t SUM_CHUNK = 8192;      // elements per block of sum / sumsq

// Offset (in elements) of reduced index r; one reduced dim (the usual case after coalescing) multiplies.
template <typename I, bool SINGLE> HFT_DEVICE int64_t red_off(const elt_geom<1> &rg, int64_t r) {
    if (SINGLE) return r * rg.st[0][0];
    int64_t off[1];
    elt_offsets<I>(rg, 1, (I)r, off);
    return off[0];
}

// reduce_impl.h's store: the f64 total times alpha, rounded to f32, added to out or stored.
template <typename T> HFT_DEVICE void red_store(T *o, double total, double alpha, bool acc) {
    float r = (float)(alpha * total);
    *o = hft_from_f32<T>(acc ? hft_to_f32(*o) + r : r);
}

HFT_DEVICE float warp_sum_f32(float v) {
    HFT_UNROLL
    for (int m = 16; m >= 1; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

HFT_DEVICE double warp_sum_f64(double v) {
    HFT_UNROLL
    for (int m = 16; m >= 1; m >>= 1) v += __shfl_xor_sync(0xffffffffu, v, m);
    return v;
}

// The block's total in every thread: each warp's xor tree, then the warp totals by one more tree. Every
// thread of the block must call it.
HFT_DEVICE double block_sum_f64(double v) {
    __shared__ double warp_total[32];
    v = warp_sum_f64(v);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    __syncthreads(); // an earlier call's readers are done with warp_total
    if (lane == 0) warp_total[w] = v;
    __syncthreads();
    return warp_sum_f64(lane < nw ? warp_total[lane] : 0.0);
}

// Items are (output o, chunk c), o-major so a warp's neighbours read the next chunks of the same row.
template <typename T, typename I, bool SINGLE>
__global__ void __launch_bounds__(ELT_THREADS)
    reduce_lanes_kernel(const T *x, T *out, double *partial, elt_geom<2> kg, elt_geom<1> rg, int64_t nout,
                        int64_t rlen, int64_t nchunks, double alpha, bool acc) {
    int lane = threadIdx.x & 31;
    int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t it = warp; it < nout * nchunks; it += nwarps) { // uniform over the warp
        int64_t o = it / nchunks, c = it - o * nchunks;
        int64_t ko[2];
        elt_offsets<I>(kg, 2, (I)o, ko);
        const T *base = x + ko[1];
        int64_t r1 = (c + 1) * RED_LANE_CHUNK < rlen ? (c + 1) * RED_LANE_CHUNK : rlen;
        float s = 0.0f;
        for (int64_t r = c * RED_LANE_CHUNK + lane; r < r1; r += 32)
            s += hft_to_f32(base[red_off<I, SINGLE>(rg, r)]);
        s = warp_sum_f32(s);
        if (lane == 0) {
            if (nchunks == 1)
                red_store(out + ko[0], (double)s, alpha, acc);
            else
                partial[o * nchunks + c] = (double)s;
        }
    }
}

// Items are (chunk c, output o), o fastest so consecutive threads take consecutive outputs.
template <typename T, typename I, bool SINGLE>
__global__ void __launch_bounds__(ELT_THREADS)
    reduce_cols_kernel(const T *x, T *out, double *partial, elt_geom<2> kg, elt_geom<1> rg, int64_t nout,
                       int64_t rlen, int64_t nchunks, double alpha, bool acc) {
    int64_t tid = (int64_t)blockIdx.x * blockDim.x + threadIdx.x, step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t it = tid; it < nout * nchunks; it += step) {
        int64_t c = it / nout, o = it - c * nout;
        int64_t ko[2];
        elt_offsets<I>(kg, 2, (I)o, ko);
        const T *base = x + ko[1];
        int64_t r1 = (c + 1) * RED_COL_CHUNK < rlen ? (c + 1) * RED_COL_CHUNK : rlen;
        float s = 0.0f;
        for (int64_t r = c * RED_COL_CHUNK; r < r1; r++) s += hft_to_f32(base[red_off<I, SINGLE>(rg, r)]);
        if (nchunks == 1)
            red_store(out + ko[0], (double)s, alpha, acc);
        else
            partial[o * nchunks + c] = (double)s;
    }
}

// One warp per output: its chunks' partials, lane-strided then an xor tree, in f64.
template <typename T>
__global__ void __launch_bounds__(ELT_THREADS)
    reduce_combine_kernel(const double *partial, T *out, elt_geom<2> kg, int64_t nout, int64_t nchunks,
                          double alpha, bool acc) {
    int lane = threadIdx.x & 31;
    int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t o = warp; o < nout; o += nwarps) {
        double s = 0.0;
        for (int64_t c = lane; c < nchunks; c += 32) s += partial[o * nchunks + c];
        s = warp_sum_f64(s);
        if (lane == 0) {
            int64_t ko[2];
            elt_offsets<uint64_t>(kg, 1, (uint64_t)o, ko);
            red_store(out + ko[0], s, alpha, acc);
        }
    }
}

template <typename T, typename I, bool SINGLE>
void reduce_launch(bool cols, const T *x, T *out, double *partial, const elt_geom<2> &kg,
                   const elt_geom<1> &rg, int64_t nout, int64_t rlen, int64_t nchunks, double alpha,
                   bool acc) {
    int64_t items = nout * nchunks;
    if (cols) {
        HFT_LAUNCH(hft_cuda_blocks(items, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   reduce_cols_kernel<T, I, SINGLE>)
        (x, out, partial, kg, rg, nout, rlen, nchunks, alpha, acc);
    } else {
        HFT_LAUNCH(hft_cuda_blocks(items * 32, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   reduce_lanes_kernel<T, I, SINGLE>)
        (x, out, partial, kg, rg, nout, rlen, nchunks, alpha, acc);
    }
}

int64_t abs64(int64_t v) {
    return v < 0 ? -v : v;
}

template <typename T> void reduce_entry(const hft_reduce_args *a) {
    const char *where = "reduce";
    if (!view_ok(where, &a->out) || !view_ok(where, &a->in)) return;
    if (a->out.ndim != a->in.ndim) {
        hft_cuda_fail(HFT_EINVAL, where, "out has %d dims, in %d", a->out.ndim, a->in.ndim);
        return;
    }
    hft_kview outx = a->in; // out's strides over in's shape, 0 where reduced
    outx.data = a->out.data;
    for (int d = 0; d < a->in.ndim; d++) {
        if (a->out.shape[d] != a->in.shape[d] && a->out.shape[d] != 1) {
            hft_cuda_fail(HFT_EINVAL, where, "out's extent %lld on dim %d is neither in's (%lld) nor 1",
                          (long long)a->out.shape[d], d, (long long)a->in.shape[d]);
            return;
        }
        outx.stride[d] = (a->out.shape[d] == 1 && a->in.shape[d] != 1) ? 0 : a->out.stride[d];
    }
    const hft_kview *views[2] = {&outx, &a->in};
    elt_geom<2> g = elt_coalesce<2>(2, views);
    elt_geom<2> kg;
    elt_geom<1> rg;
    memset(&kg, 0, sizeof kg);
    memset(&rg, 0, sizeof rg);
    for (int d = 0; d < g.nd; d++) {
        if (g.st[0][d] == 0 && g.shape[d] != 1) {
            rg.shape[rg.nd] = g.shape[d];
            rg.st[0][rg.nd++] = g.st[1][d];
        } else {
            kg.shape[kg.nd] = g.shape[d];
            kg.st[0][kg.nd] = g.st[0][d];
            kg.st[1][kg.nd++] = g.st[1][d];
        }
    }
    if (rg.nd == 0) { // nothing to reduce: out (+)= alpha·in, as the CPU's map
        hft_map_args m;
        memset(&m, 0, sizeof m);
        m.op = HFT_MAP_SCALE;
        m.n_in = 1;
        m.out = outx;
        m.in[0] = a->in;
        m.alpha = a->alpha;
        m.accumulate = a->accumulate;
        map_entry<T>(&m);
        return;
    }
    bool kept_any = kg.nd > 0;
    if (!kept_any) kg.shape[kg.nd++] = 1; // one output
    int64_t nout = elt_numel(kg), rlen = elt_numel(rg);
    if (nout == 0) return;
    // columns when the innermost kept dim lies closer in memory than the innermost reduced one, or the
    // reductions are too short to give a warp's lanes work
    bool cols = (kept_any && abs64(kg.st[1][kg.nd - 1]) < abs64(rg.st[0][rg.nd - 1])) || rlen < 32;
    int64_t chunk = cols ? RED_COL_CHUNK : RED_LANE_CHUNK;
    int64_t nchunks = rlen > chunk ? (rlen + chunk - 1) / chunk : 1;
    double *partial = nullptr;
    if (nchunks > 1) {
        partial = (double *)hft_cuda_scratch(HFT_SCRATCH_REDUCE, (size_t)(nout * nchunks) * sizeof(double));
        if (!partial) return; // reported by hft_cuda_scratch
    }
    const T *x = (const T *)a->in.data;
    T *out = (T *)a->out.data;
    bool single = rg.nd == 1, narrow = nout <= (int64_t)UINT32_MAX && rlen <= (int64_t)UINT32_MAX;
    if (narrow && single)
        reduce_launch<T, uint32_t, true>(cols, x, out, partial, kg, rg, nout, rlen, nchunks, a->alpha,
                                         a->accumulate);
    else if (narrow)
        reduce_launch<T, uint32_t, false>(cols, x, out, partial, kg, rg, nout, rlen, nchunks, a->alpha,
                                          a->accumulate);
    else if (single)
        reduce_launch<T, uint64_t, true>(cols, x, out, partial, kg, rg, nout, rlen, nchunks, a->alpha,
                                         a->accumulate);
    else
        reduce_launch<T, uint64_t, false>(cols, x, out, partial, kg, rg, nout, rlen, nchunks, a->alpha,
                                          a->accumulate);
    hft_cuda_check_launch(where);
    if (nchunks > 1) {
        HFT_LAUNCH(hft_cuda_blocks(nout * 32, ELT_THREADS), ELT_THREADS, 0, hft_cuda_stream(),
                   reduce_combine_kernel<T>)
        (partial, out, kg, nout, nchunks, a->alpha, a->accumulate);
        hft_cuda_check_launch(where);
    }
}

// ---------------------------------------------------------------- sum, sumsq

template <typename T, bool SQ>
__global__ void __launch_bounds__(ELT_THREADS)
    sum_chunks_kernel(const T *x, int64_t n, int64_t nchunks, double *partial) {
    for (int64_t c = blockIdx.x; c < nchunks; c += gridDim.x) { // uniform over the block
        int64_t i1 = (c + 1) * SUM_CHUNK < n ? (c + 1) * SUM_CHUNK : n;
        double s = 0.0;
        for (int64_t i = c * SUM_CHUNK + threadIdx.x; i < i1; i += blockDim.x) {
            double v = hft_to_f32(x[i]);
            s += SQ ? v * v : v;
        }
        s = block_sum_f64(s);
        if (threadIdx.x == 0) partial[c] = s;
    }
}

// One block: thread t adds partials t, t + blockDim, ... in order, then the block's fixed tree.
__global__ void __launch_bounds__(ELT_THREADS)
    sum_combine_kernel(const double *partial, int64_t n, double *result) {
    double s = 0.0;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
    s = block_sum_f64(s);
    if (threadIdx.x == 0) *result = s;
}

template <typename T, bool SQ> double sum_entry(const void *x, int64_t n) {
    const char *where = SQ ? "sumsq" : "sum";
    if (n <= 0) return 0.0;
    int64_t nchunks = (n + SUM_CHUNK - 1) / SUM_CHUNK;
    double *partial = (double *)hft_cuda_scratch(HFT_SCRATCH_REDUCE, (size_t)(nchunks + 1) * sizeof(double));
    if (!partial) return NAN;
    cudaStream_t s = hft_cuda_stream();
    unsigned blocks = (unsigned)(nchunks < (1 << 20) ? nchunks : (1 << 20));
    HFT_LAUNCH(blocks, ELT_THREADS, 0, hft_cuda_stream(), sum_chunks_kernel<T, SQ>)
    ((const T *)x, n, nchunks, partial);
    hft_cuda_check_launch(where);
    const double *result = partial;
    if (nchunks > 1) {
        HFT_LAUNCH(1, ELT_THREADS, 0, hft_cuda_stream(), sum_combine_kernel)
        (partial, nchunks, partial + nchunks);
        hft_cuda_check_launch(where);
        result = partial + nchunks;
    }
    double h = NAN;
    cudaError_t e = cudaMemcpyAsync(&h, result, sizeof h, cudaMemcpyDeviceToHost, s);
    if (e == cudaSuccess) e = cudaStreamSynchronize(s);
    if (e != cudaSuccess) {
        hft_cuda_fail(HFT_EDEVICE, where, "reading the result: %s", cudaGetErrorString(e));
        return NAN;
    }
    return h;
}

} // namespace

#endif
