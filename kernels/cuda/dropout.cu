// Dropout on the device, the twin of kernels/cpu/dropout_impl.h. The mask is never stored: each thread draws
// one Philox block (four consecutive elements of one sample) from the same counter the CPU uses, so the
// mask is bit-identical to the CPU's, and so is y for f32 (one f32 multiply by the same f32 scale; the
// accumulate form y + x·m is kept from contracting into an FMA, which the CPU does not use). bf16 / f16:
// the same f32 value rounded once to the dtype.
#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/cuda/philox.cuh"

namespace {

// x·m rounded on its own: nvcc would otherwise fuse y + x·m into an FMA (one rounding fewer than the CPU).
HFT_DEVICE float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

template <typename T> struct alignas(4 * sizeof(T)) vec4 { T v[4]; };

// Grid: x over the Philox blocks of a sample (grid-stride), y over samples (grid-stride). VEC: per_sample is
// a multiple of 4 and x, y are aligned, so each thread moves its four elements in one load and one store.
template <typename T, bool ACC, bool VEC>
__global__ void dropout_kernel(const T *x, T *y, int64_t samples, int64_t per, int64_t sample0,
                               hft_rng_key key, float p, float scale) {
    int64_t nblk = (per + 3) / 4;
    for (int64_t s = blockIdx.y; s < samples; s += gridDim.y) {
        const T *xs = x + s * per;
        T *ys = y + s * per;
        for (int64_t b = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; b < nblk;
             b += (int64_t)gridDim.x * blockDim.x) {
            uint32_t r[4];
            hft_philox_block(key, sample0 + s, (uint64_t)b, r);
            float m[4];
            HFT_UNROLL
            for (int j = 0; j < 4; j++) m[j] = hft_philox_unit(r[j]) >= p ? scale : 0.0f; // x·0 keeps NaN
            int64_t e0 = 4 * b;
            if (VEC) {
                vec4<T> xv = *reinterpret_cast<const vec4<T> *>(xs + e0);
                vec4<T> yv = ACC ? *reinterpret_cast<const vec4<T> *>(ys + e0) : xv;
                HFT_UNROLL
                for (int j = 0; j < 4; j++) {
                    float v = mul_rn(hft_to_f32(xv.v[j]), m[j]);
                    yv.v[j] = hft_from_f32<T>(ACC ? hft_to_f32(yv.v[j]) + v : v);
                }
                *reinterpret_cast<vec4<T> *>(ys + e0) = yv;
            } else {
                HFT_UNROLL
                for (int j = 0; j < 4; j++) {
                    if (e0 + j >= per) break;
                    float v = mul_rn(hft_to_f32(xs[e0 + j]), m[j]);
                    ys[e0 + j] = hft_from_f32<T>(ACC ? hft_to_f32(ys[e0 + j]) + v : v);
                }
            }
        }
    }
}

template <typename T, bool ACC, bool VEC> void launch(const hft_dropout_args *a, float p, float scale) {
    int64_t nblk = (a->per_sample + 3) / 4;
    // a warp at least, 256 at most: short samples (many of them) leave few threads idle
    int threads = nblk >= 256 ? 256 : (int)((nblk + 31) / 32 * 32);
    dim3 grid(hft_cuda_blocks(nblk, threads), (unsigned)(a->samples < 65535 ? a->samples : 65535));
    HFT_LAUNCH(grid, threads, 0, hft_cuda_stream(), dropout_kernel<T, ACC, VEC>)
    ((const T *)a->x, (T *)a->y, a->samples, a->per_sample, a->sample0, a->key, p, scale);
}

template <typename T> void dropout(const hft_dropout_args *a) {
    if (a->samples <= 0 || a->per_sample <= 0) return;
    // p and the scale rounded to f32 as the CPU's f32 kernel rounds them (T scale = (T)1 / (T)(1 - p))
    float p = (float)a->p;
    float scale = a->p < 1 ? 1.0f / (float)(1.0 - a->p) : 0.0f;
    size_t align = 4 * sizeof(T);
    bool vec = a->per_sample % 4 == 0 && (uintptr_t)a->x % align == 0 && (uintptr_t)a->y % align == 0;
    if (a->accumulate)
        vec ? launch<T, true, true>(a, p, scale) : launch<T, true, false>(a, p, scale);
    else
        vec ? launch<T, false, true>(a, p, scale) : launch<T, false, false>(a, p, scale);
    hft_cuda_check_launch("dropout");
}

} // namespace

void hft_cuda_register_dropout(hft_kernels *t) {
    t->dropout[HFT_F32] = dropout<float>;
    t->dropout[HFT_BF16] = dropout<hft_bf16_t>;
    t->dropout[HFT_F16] = dropout<hft_f16_t>;
}
