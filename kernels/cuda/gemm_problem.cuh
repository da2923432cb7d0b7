// The GEMM as cuBLAS sees it: column-major matrices. hft's row-major problem is turned into this struct in
// one place (gemm.cu, to_column_major); cuBLASLt (gemm_lt.cuh) and the reference kernel (gemm_ref.cuh) both
// consume it, so the emulator, which runs the reference kernel, tests the mapping that the GPU uses.
#ifndef HFT_CUDA_GEMM_PROBLEM_CUH
#define HFT_CUDA_GEMM_PROBLEM_CUH

#include "kernels/cuda/cuda_internal.cuh"

// D = alpha op(A) op(B) + beta C (+ bias, then GELU), column-major: op(A) is m×k, op(B) k×n, C m×n, element
// (i, j) of a matrix X with leading dimension ld at X[i + j·ld]. C and D are the same buffer.
struct gemm_cm {
    bool transa, transb; // op(A) = Aᵀ: A is stored k×m; op(B) = Bᵀ: B is stored n×k
    int64_t m, n, k;
    const void *a, *b;
    void *c;
    int64_t lda, ldb, ldc;
    int64_t batch; // at least 1
    int64_t stride_a, stride_b,
        stride_c;                     // in elements; 0 on A or B broadcasts it; 0 on C: summed (see gemm.cu)
    hft_dtype type_a, type_b, type_c; // HFT_F32, HFT_BF16 or HFT_F16
    float alpha, beta;                // beta 0: C is not read
    const void *bias;                 // [m] in type_c, added to every column of D (NULL: none)
    bool gelu;                        // D = gelu_tanh(value)
    void *aux;                        // the value before GELU, ld ldc, type_c (NULL: not kept)
};

// The stored extent of the column-major operands: rows × cols with leading dimension ld.
static inline int64_t gemm_cm_rows_a(const gemm_cm &p) {
    return p.transa ? p.k : p.m;
}
static inline int64_t gemm_cm_cols_a(const gemm_cm &p) {
    return p.transa ? p.m : p.k;
}
static inline int64_t gemm_cm_rows_b(const gemm_cm &p) {
    return p.transb ? p.n : p.k;
}
static inline int64_t gemm_cm_cols_b(const gemm_cm &p) {
    return p.transb ? p.k : p.n;
}

// For messages (the module does not link the host's hft_dtype_name).
static inline const char *gemm_type_name(hft_dtype t) {
    return t == HFT_F32 ? "f32" : t == HFT_BF16 ? "bf16" : t == HFT_F16 ? "f16" : "an unsupported dtype";
}

// Host-side min / max (compat.cuh's hft_min / hft_max are device functions under nvcc).
static inline int64_t gemm_min64(int64_t a, int64_t b) {
    return a < b ? a : b;
}
static inline int64_t gemm_max64(int64_t a, int64_t b) {
    return a > b ? a : b;
}

static inline size_t gemm_type_size(hft_dtype t) {
    return t == HFT_F32 ? 4 : 2;
}

// The tanh approximation of GELU with the CPU's formula (map_impl.h's map_gelu_tanh, the same operation
// order).
HFT_DEVICE float gemm_gelu_tanh(float x) {
    return 0.5f * x * (1.0f + tanhf(0.79788456080286535588f * (x + 0.044715f * x * x * x)));
}

#endif
