// The reference GEMM kernel: what the emulator runs in place of cuBLASLt, and the GPU's fallback where
// cuBLASLt offers no algorithm (k = 0, an epilogue layout it refuses). Shared-memory tiles, f32 accumulation
// in a fixed order (k ascending), the column-major problem of gemm_problem.cuh as cuBLASLt reads it: any
// transposes, leading dimensions and batch strides, the bias and GELU epilogues.
#ifndef HFT_CUDA_GEMM_REF_CUH
#define HFT_CUDA_GEMM_REF_CUH

#include "kernels/cuda/gemm_problem.cuh"

namespace gemm_ref {

// A block computes a BM×BN tile of D, 16×16 threads with 4×4 outputs each; K advances BK at a time. In the
// emulator the cost is the barriers (two per K step, each a switch of every thread), so the tiles are large.
constexpr int BM = 64, BN = 64, BK = 32, TX = 16, TY = 16, THREADS = TX * TY;
constexpr int RX = BM / TX, RY = BN / TY;
constexpr unsigned MAX_GRID_YZ = 65535;

template <typename TA, typename TB, typename TC>
__global__ void __launch_bounds__(THREADS) gemm_ref_kernel(gemm_cm p, int64_t tile_j0, int64_t batch0) {
    // As[q][i] = op(A)(i0 + i, k0 + q), Bs[q][j] = op(B)(k0 + q, j0 + j); +1 keeps column writes off one bank
    __shared__ float As[BK][BM + 1];
    __shared__ float Bs[BK][BN + 1];
    const int tid = (int)threadIdx.x, tx = tid % TX, ty = tid / TX;
    const int64_t i0 = (int64_t)blockIdx.x * BM, j0 = (tile_j0 + (int64_t)blockIdx.y) * BN;
    const int64_t z = batch0 + (int64_t)blockIdx.z;
    const TA *a = static_cast<const TA *>(p.a) + z * p.stride_a;
    const TB *b = static_cast<const TB *>(p.b) + z * p.stride_b;
    TC *c = static_cast<TC *>(p.c) + z * p.stride_c;
    TC *aux = p.aux ? static_cast<TC *>(p.aux) + z * p.stride_c : nullptr;

    float acc[RX][RY];
    HFT_UNROLL
    for (int x = 0; x < RX; x++) {
        HFT_UNROLL
        for (int y = 0; y < RY; y++) acc[x][y] = 0.0f;
    }
    for (int64_t k0 = 0; k0 < p.k; k0 += BK) {
        // consecutive threads load consecutive addresses: along i for A stored m×k, along k for A stored k×m
        for (int e = tid; e < BM * BK; e += THREADS) {
            int i = p.transa ? e / BK : e % BM, q = p.transa ? e % BK : e / BM;
            int64_t gi = i0 + i, gq = k0 + q;
            float v = 0.0f;
            if (gi < p.m && gq < p.k) v = hft_to_f32(p.transa ? a[gq + gi * p.lda] : a[gi + gq * p.lda]);
            As[q][i] = v;
        }
        for (int e = tid; e < BN * BK; e += THREADS) {
            int j = p.transb ? e % BN : e / BK, q = p.transb ? e / BN : e % BK;
            int64_t gj = j0 + j, gq = k0 + q;
            float v = 0.0f;
            if (gj < p.n && gq < p.k) v = hft_to_f32(p.transb ? b[gj + gq * p.ldb] : b[gq + gj * p.ldb]);
            Bs[q][j] = v;
        }
        __syncthreads();
        for (int q = 0; q < BK; q++) {
            float av[RX], bv[RY];
            HFT_UNROLL
            for (int x = 0; x < RX; x++) av[x] = As[q][tx + TX * x];
            HFT_UNROLL
            for (int y = 0; y < RY; y++) bv[y] = Bs[q][ty + TY * y];
            HFT_UNROLL
            for (int x = 0; x < RX; x++) {
                HFT_UNROLL
                for (int y = 0; y < RY; y++) acc[x][y] += av[x] * bv[y];
            }
        }
        __syncthreads(); // the tiles are overwritten next step
    }

    const TC *bias = static_cast<const TC *>(p.bias);
    HFT_UNROLL
    for (int x = 0; x < RX; x++) {
        int64_t gi = i0 + tx + TX * x;
        if (gi >= p.m) continue;
        HFT_UNROLL
        for (int y = 0; y < RY; y++) {
            int64_t gj = j0 + ty + TY * y;
            if (gj >= p.n) continue;
            int64_t off = gi + gj * p.ldc;
            // as BLAS: alpha 0 does not look at A·B, beta 0 does not read C (it may hold NaN)
            float v = p.alpha != 0.0f ? p.alpha * acc[x][y] : 0.0f;
            if (p.beta != 0.0f) v += p.beta * hft_to_f32(c[off]);
            if (bias) v += hft_to_f32(bias[gi]);
            if (p.gelu) {
                if (aux) aux[off] = hft_from_f32<TC>(v);
                v = gemm_gelu_tanh(v);
            }
            c[off] = hft_from_f32<TC>(v);
        }
    }
}

template <typename TA, typename TB, typename TC> void launch(const gemm_cm &p) {
    int64_t tiles_i = (p.m + BM - 1) / BM, tiles_j = (p.n + BN - 1) / BN;
    for (int64_t z0 = 0; z0 < p.batch; z0 += MAX_GRID_YZ) {
        int64_t nz = gemm_min64(p.batch - z0, MAX_GRID_YZ);
        for (int64_t y0 = 0; y0 < tiles_j; y0 += MAX_GRID_YZ) {
            int64_t ny = gemm_min64(tiles_j - y0, MAX_GRID_YZ);
            dim3 grid((unsigned)tiles_i, (unsigned)ny, (unsigned)nz);
            HFT_LAUNCH(grid, dim3(THREADS), 0, hft_cuda_stream(), gemm_ref_kernel<TA, TB, TC>)(p, y0, z0);
            hft_cuda_check_launch("gemm");
        }
    }
}

} // namespace gemm_ref

// The problem on the reference kernel: the operand combinations cuBLASLt multiplies (mixed operands are
// widened to f32 first, in gemm.cu, on both paths).
static void gemm_reference(const gemm_cm &p) {
    if (p.type_a == HFT_F32 && p.type_b == HFT_F32 && p.type_c == HFT_F32)
        gemm_ref::launch<float, float, float>(p);
    else if (p.type_a == HFT_BF16 && p.type_b == HFT_BF16 && p.type_c == HFT_F32)
        gemm_ref::launch<hft_bf16_t, hft_bf16_t, float>(p);
    else if (p.type_a == HFT_F16 && p.type_b == HFT_F16 && p.type_c == HFT_F32)
        gemm_ref::launch<hft_f16_t, hft_f16_t, float>(p);
    else if (p.type_a == HFT_BF16 && p.type_b == HFT_BF16 && p.type_c == HFT_BF16)
        gemm_ref::launch<hft_bf16_t, hft_bf16_t, hft_bf16_t>(p);
    else if (p.type_a == HFT_F16 && p.type_b == HFT_F16 && p.type_c == HFT_F16)
        gemm_ref::launch<hft_f16_t, hft_f16_t, hft_f16_t>(p);
    else
        hft_cuda_fail(HFT_EUNSUPPORTED, "gemm", "operands %s × %s into %s", gemm_type_name(p.type_a),
                      gemm_type_name(p.type_b), gemm_type_name(p.type_c));
}

#endif
