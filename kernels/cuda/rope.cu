// Rotary position embedding on the device (rotate_half convention), the twin of kernels/cpu/rope_impl.h.
// One block per (batch, position), grid-stride: its cos and sin are computed once into shared memory, then
// applied to every head, threads over (head, pair) so a warp reads consecutive elements of a half.
//
// The angle is float(pos)·inv_freq[i] in f32, rounded exactly as the CPU rounds it; its sine and cosine come
// from sincosf, the accurate one (positions up to 128k make the argument large, where __sinf is useless),
// which may differ from the CPU's libm in the last ulp. bf16 / f16 data: inv_freq is read in the dtype, the
// angle, sin, cos and the rotation are computed in f32 and the result rounded once to the dtype.
#include "kernels/cuda/cuda_internal.cuh"

namespace {

struct rope_geom {
    int64_t batch, seq;
    int heads, half;
    int64_t x_sb, x_st, x_sh;
    int64_t o_sb, o_st, o_sh;
};

// Forward: o1 = x1 c - x2 s, o2 = x2 c + x1 s; inverse (the transpose): o1 = x1 c + x2 s, o2 = x2 c - x1 s.
template <typename T, bool INV, bool ACC>
__global__ void rope_kernel(const T *x, const int64_t *pos, const T *inv_freq, float scaling, T *out,
                            rope_geom g) {
    HFT_DYNAMIC_SMEM(float, cs);
    float *sn = cs + g.half;
    int pairs = g.heads * g.half;
    for (int64_t bt = blockIdx.x; bt < g.batch * g.seq; bt += gridDim.x) {
        float fpos = (float)pos[bt];
        for (int i = threadIdx.x; i < g.half; i += blockDim.x) {
            float th = fpos * hft_to_f32(inv_freq[i]), s, c;
            sincosf(th, &s, &c);
            cs[i] = c * scaling;
            sn[i] = s * scaling;
        }
        __syncthreads();
        int64_t b = bt / g.seq, t = bt - b * g.seq;
        const T *xbt = x + b * g.x_sb + t * g.x_st;
        T *obt = out + b * g.o_sb + t * g.o_st;
        for (int k = threadIdx.x; k < pairs; k += blockDim.x) {
            int h = k / g.half, i = k - h * g.half;
            const T *xh = xbt + h * g.x_sh;
            T *oh = obt + h * g.o_sh;
            float a = hft_to_f32(xh[i]), bb = hft_to_f32(xh[g.half + i]), c = cs[i], s = sn[i];
            float o1 = INV ? a * c + bb * s : a * c - bb * s;
            float o2 = INV ? bb * c - a * s : bb * c + a * s;
            if (ACC) {
                o1 += hft_to_f32(oh[i]);
                o2 += hft_to_f32(oh[g.half + i]);
            }
            oh[i] = hft_from_f32<T>(o1);
            oh[g.half + i] = hft_from_f32<T>(o2);
        }
        __syncthreads(); // the next position's cos / sin overwrite these
    }
}

template <typename T, bool INV, bool ACC> void launch(const hft_rope_args *a, const rope_geom &g) {
    int pairs = g.heads * g.half;
    int threads = pairs >= 256 ? 256 : (pairs + 31) / 32 * 32;
    int64_t rows = g.batch * g.seq;
    unsigned grid = (unsigned)(rows < 65535 * 8 ? rows : 65535 * 8);
    size_t smem = 2 * sizeof(float) * (size_t)g.half;
    HFT_LAUNCH(grid, threads, smem, hft_cuda_stream(), rope_kernel<T, INV, ACC>)
    ((const T *)a->x, a->pos, (const T *)a->inv_freq, (float)a->scaling, (T *)a->out, g);
}

template <typename T> void rope(const hft_rope_args *a) {
    if (a->batch <= 0 || a->seq <= 0 || a->heads <= 0 || a->dim <= 0) return;
    if (a->dim % 2 != 0) {
        hft_cuda_fail(HFT_EUNSUPPORTED, "rope", "odd head_dim %lld", (long long)a->dim);
        return;
    }
    // cos and sin of one position live in shared memory (48 KiB holds half up to 6144)
    if (a->dim / 2 > 6144 || a->heads * (a->dim / 2) > (1 << 30)) {
        hft_cuda_fail(HFT_EUNSUPPORTED, "rope", "heads %lld x head_dim %lld is too large",
                      (long long)a->heads, (long long)a->dim);
        return;
    }
    rope_geom g = {a->batch,      a->seq,        (int)a->heads,   (int)(a->dim / 2), a->x_stride_b,
                   a->x_stride_t, a->x_stride_h, a->out_stride_b, a->out_stride_t,   a->out_stride_h};
    if (a->inverse)
        a->accumulate ? launch<T, true, true>(a, g) : launch<T, true, false>(a, g);
    else
        a->accumulate ? launch<T, false, true>(a, g) : launch<T, false, false>(a, g);
    hft_cuda_check_launch("rope");
}

} // namespace

void hft_cuda_register_rope(hft_kernels *t) {
    t->rope[HFT_F32] = rope<float>;
    t->rope[HFT_BF16] = rope<hft_bf16_t>;
    t->rope[HFT_F16] = rope<hft_f16_t>;
}
