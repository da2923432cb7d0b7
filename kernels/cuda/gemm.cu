// The GEMM on CUDA: gemm[f32] (operands in f32, or held in bf16/f16 as a_type / b_type say), gemm[bf16] and
// gemm[f16] (A, B and C in that dtype), f32 accumulation throughout. hft's row-major problem becomes
// cuBLAS's column-major one in to_column_major; the GPU multiplies it with cuBLASLt (gemm_lt.cuh), the
// emulator with the reference kernel (gemm_ref.cuh), so the emulator tests the mapping the GPU uses. The
// rest of the flow is shared: operands of two different dtypes are widened to f32 (cuBLASLt multiplies A and
// B of one dtype), and a batch summed into one C runs as one GEMM per batch entry, in batch order (into an
// f32 copy of a bf16/f16 C, rounded once at the end).
#include <limits.h>

#include "kernels/cuda/gemm_problem.cuh"
#include "kernels/cuda/gemm_ref.cuh"
#ifndef HFT_CUDA_EMULATE
#include "kernels/cuda/gemm_lt.cuh"
#endif

namespace {

#ifdef HFT_CUDA_EMULATE
constexpr size_t WORKSPACE_BYTES = 0; // the reference kernel needs none
#else
constexpr size_t WORKSPACE_BYTES = gemm_lt::WORKSPACE_BYTES;
#endif

bool storage_type(hft_dtype t) {
    return t == HFT_F32 || t == HFT_BF16 || t == HFT_F16;
}

// The one place the row-major problem becomes the column-major one. A row-major matrix with leading
// dimension ld, read column-major with the same ld, is its transpose; so row-major C [m, n] is column-major
// Cᵀ [n, m] = op(B)ᵀ op(A)ᵀ, in which op(B)ᵀ is the stored B read as it lies unless trans_b (likewise A).
// A transposed C (trans_c, stored [n, m]) is column-major C itself = op(A) op(B), with each operand
// transposed unless trans_*. Fails (false, reported) on arguments the op does not take.
bool to_column_major(hft_dtype dt, const hft_gemm_args *g, gemm_cm *p) {
    hft_dtype ta = g->a_type, tb = g->b_type;
    if (dt != HFT_F32) { // every operand in dt; a_type / b_type are the f32 GEMM's (unset, or naming dt)
        if ((ta != HFT_F32 && ta != dt) || (tb != HFT_F32 && tb != dt)) {
            hft_cuda_fail(HFT_EUNSUPPORTED, "gemm",
                          "the %s GEMM takes %s operands only (a_type %s, b_type %s)", gemm_type_name(dt),
                          gemm_type_name(dt), gemm_type_name(ta), gemm_type_name(tb));
            return false;
        }
        ta = tb = dt;
    } else if (!storage_type(ta) || !storage_type(tb)) {
        hft_cuda_fail(HFT_EUNSUPPORTED, "gemm", "operands held as %s × %s (f32, bf16 or f16 only)",
                      gemm_type_name(ta), gemm_type_name(tb));
        return false;
    }
    int64_t batch = g->batch > 0 ? g->batch : 1;
    if (g->m < 0 || g->n < 0 || g->k < 0 || batch > INT32_MAX || g->stride_a < 0 || g->stride_b < 0 ||
        g->stride_c < 0) {
        hft_cuda_fail(HFT_EINVAL, "gemm", "m %lld, n %lld, k %lld, batch %lld, strides %lld %lld %lld",
                      (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch,
                      (long long)g->stride_a, (long long)g->stride_b, (long long)g->stride_c);
        return false;
    }
    // a leading dimension spans at least one stored row (cuBLASLt's ld >= rows, column-major)
    int64_t row_a = g->trans_a ? g->m : g->k, row_b = g->trans_b ? g->k : g->n,
            row_c = g->trans_c ? g->m : g->n;
    if (g->lda < gemm_max64(1, row_a) || g->ldb < gemm_max64(1, row_b) || g->ldc < gemm_max64(1, row_c)) {
        hft_cuda_fail(HFT_EINVAL, "gemm",
                      "leading dimensions %lld, %lld, %lld below the rows %lld, %lld, %lld",
                      (long long)g->lda, (long long)g->ldb, (long long)g->ldc, (long long)row_a,
                      (long long)row_b, (long long)row_c);
        return false;
    }
    bool gelu = g->epilogue == HFT_EPILOGUE_GELU_TANH;
    if (g->epilogue != HFT_EPILOGUE_NONE && !gelu) {
        hft_cuda_fail(HFT_EUNSUPPORTED, "gemm", "epilogue %d", (int)g->epilogue);
        return false;
    }
    if (g->pre_act && !gelu) {
        hft_cuda_fail(HFT_EINVAL, "gemm", "pre_act given without the GELU epilogue");
        return false;
    }
    if ((g->bias || gelu) && (batch > 1 || g->trans_c)) {
        hft_cuda_fail(HFT_EUNSUPPORTED, "gemm", "the epilogue (bias, GELU) takes batch 1 and trans_c false");
        return false;
    }

    memset(p, 0, sizeof *p);
    if (!g->trans_c) {
        p->transa = g->trans_b, p->a = g->b, p->lda = g->ldb, p->stride_a = g->stride_b, p->type_a = tb;
        p->transb = g->trans_a, p->b = g->a, p->ldb = g->lda, p->stride_b = g->stride_a, p->type_b = ta;
        p->m = g->n, p->n = g->m;
    } else {
        p->transa = !g->trans_a, p->a = g->a, p->lda = g->lda, p->stride_a = g->stride_a, p->type_a = ta;
        p->transb = !g->trans_b, p->b = g->b, p->ldb = g->ldb, p->stride_b = g->stride_b, p->type_b = tb;
        p->m = g->m, p->n = g->n;
    }
    p->k = g->k;
    p->c = g->c, p->ldc = g->ldc, p->type_c = dt;
    p->batch = batch;
    p->stride_c = g->stride_c;
    if (batch == 1) p->stride_a = p->stride_b = p->stride_c = 0; // unused; one cache key per shape
    p->alpha = (float)g->alpha, p->beta = (float)g->beta;
    p->bias = g->bias; // [n] of row-major C: one per row of column-major D
    p->gelu = gelu;
    p->aux = g->pre_act; // C's layout and ldc
    return true;
}

// ---------------------------------------------------------------- operands of two dtypes

template <typename T> __global__ void widen_kernel(const T *src, float *dst, int64_t n) {
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        dst[i] = hft_to_f32(src[i]);
}

// Elements from an operand's first to its last, over the batch.
int64_t span(int64_t rows, int64_t cols, int64_t ld, int64_t batch, int64_t stride) {
    return (batch - 1) * stride + (cols - 1) * ld + rows;
}

int64_t round_up_256(int64_t bytes) {
    return (bytes + 255) / 256 * 256;
}

// One operand's span copied to f32 at dst, in place of the original: same ld and batch stride, so the
// problem is otherwise unchanged (the gaps are widened too, and never read).
void widen(const void **x, hft_dtype *type, int64_t n, float *dst) {
    unsigned blocks = hft_cuda_blocks(n, 256);
    if (*type == HFT_BF16) {
        const hft_bf16_t *src = static_cast<const hft_bf16_t *>(*x);
        HFT_LAUNCH(blocks, 256, 0, hft_cuda_stream(), widen_kernel<hft_bf16_t>)(src, dst, n);
    } else {
        const hft_f16_t *src = static_cast<const hft_f16_t *>(*x);
        HFT_LAUNCH(blocks, 256, 0, hft_cuda_stream(), widen_kernel<hft_f16_t>)(src, dst, n);
    }
    hft_cuda_check_launch("gemm (widening an operand)");
    *x = dst;
    *type = HFT_F32;
}

// ---------------------------------------------------------------- a summed batch in f32

// dst = scale · src over an m×n column-major matrix, converting dtypes; scale 0 writes zeros without
// reading src (beta 0: C may hold anything).
template <typename TS, typename TD>
__global__ void convert_kernel(const TS *src, int64_t lds, TD *dst, int64_t ldd, int64_t m, int64_t n,
                               float scale) {
    for (int64_t e = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; e < m * n;
         e += (int64_t)gridDim.x * blockDim.x) {
        int64_t i = e % m, j = e / m;
        float v = scale != 0.0f ? scale * hft_to_f32(src[i + j * lds]) : 0.0f;
        dst[i + j * ldd] = hft_from_f32<TD>(v);
    }
}

template <typename TS, typename TD>
void convert_as(const void *src, int64_t lds, void *dst, int64_t ldd, int64_t m, int64_t n, float scale) {
    const TS *s = static_cast<const TS *>(src);
    TD *d = static_cast<TD *>(dst);
    HFT_LAUNCH(hft_cuda_blocks(m * n, 256), 256, 0, hft_cuda_stream(), convert_kernel<TS, TD>)
    (s, lds, d, ldd, m, n, scale);
    hft_cuda_check_launch("gemm (a summed batch)");
}

// Between a bf16/f16 C and its f32 copy (one side is always f32).
void convert_matrix(hft_dtype from, hft_dtype to, const void *src, int64_t lds, void *dst, int64_t ldd,
                    int64_t m, int64_t n, float scale) {
    if (from == HFT_BF16)
        convert_as<hft_bf16_t, float>(src, lds, dst, ldd, m, n, scale);
    else if (from == HFT_F16)
        convert_as<hft_f16_t, float>(src, lds, dst, ldd, m, n, scale);
    else if (to == HFT_BF16)
        convert_as<float, hft_bf16_t>(src, lds, dst, ldd, m, n, scale);
    else
        convert_as<float, hft_f16_t>(src, lds, dst, ldd, m, n, scale);
}

// ---------------------------------------------------------------- running the problem

void run(const gemm_cm &p, void *workspace) {
#ifdef HFT_CUDA_EMULATE
    (void)workspace;
    gemm_reference(p);
#else
    // k = 0 (C = beta C + epilogue) and what cuBLASLt has no algorithm for go to the reference kernel
    if (p.k == 0 || gemm_lt::matmul(p, workspace) == gemm_lt::NO_ALGO) gemm_reference(p);
#endif
}

void gemm(hft_dtype dt, const hft_gemm_args *g) {
    gemm_cm p;
    if (!to_column_major(dt, g, &p)) return;
    if (p.m == 0 || p.n == 0) return;

    // cuBLASLt multiplies A and B of one dtype: a low-precision operand beside an f32 one (or beside the
    // other low dtype) is widened to f32, exactly, into the scratch after the workspace
    bool widen_a = p.type_a != p.type_b && p.type_a != HFT_F32,
         widen_b = p.type_a != p.type_b && p.type_b != HFT_F32;
    int64_t n_a = 0, n_b = 0;
    if (p.k > 0) {
        if (widen_a) n_a = span(gemm_cm_rows_a(p), gemm_cm_cols_a(p), p.lda, p.batch, p.stride_a);
        if (widen_b) n_b = span(gemm_cm_rows_b(p), gemm_cm_cols_b(p), p.ldb, p.batch, p.stride_b);
    }
    // a batch summed into a bf16/f16 C is summed in an f32 copy of C and rounded once (f32 accumulation)
    bool summed = p.batch > 1 && p.stride_c == 0, sum_in_f32 = summed && p.type_c != HFT_F32;
    int64_t off_a = (int64_t)WORKSPACE_BYTES, off_b = off_a + round_up_256(n_a * 4);
    int64_t off_sum = off_b + round_up_256(n_b * 4), end = off_sum + (sum_in_f32 ? p.m * p.n * 4 : 0);
    char *scratch = nullptr;
    if (end > 0) {
        scratch = static_cast<char *>(hft_cuda_scratch(HFT_SCRATCH_GEMM, (size_t)end));
        if (!scratch) return; // reported
    }
    if (n_a > 0) widen(&p.a, &p.type_a, n_a, reinterpret_cast<float *>(scratch + off_a));
    if (n_b > 0) widen(&p.b, &p.type_b, n_b, reinterpret_cast<float *>(scratch + off_b));
    if (p.k == 0) p.type_a = p.type_b = p.type_c; // the operands are not read

    if (!summed) {
        run(p, scratch);
        return;
    }
    // a batch summed into one C: the first entry with beta, the rest adding in batch order (deterministic)
    gemm_cm q = p;
    if (sum_in_f32) {
        float *sum = reinterpret_cast<float *>(scratch + off_sum);
        convert_matrix(p.type_c, HFT_F32, p.c, p.ldc, sum, p.m, p.m, p.n, p.beta); // beta C (C unread at 0)
        q.c = sum, q.ldc = p.m, q.type_c = HFT_F32, q.beta = 1.0f;
    }
    size_t es_a = gemm_type_size(p.type_a), es_b = gemm_type_size(p.type_b);
    for (int64_t i = 0; i < p.batch; i++) {
        gemm_cm e = q;
        e.batch = 1;
        e.a = static_cast<const char *>(p.a) + (size_t)(i * p.stride_a) * es_a;
        e.b = static_cast<const char *>(p.b) + (size_t)(i * p.stride_b) * es_b;
        e.stride_a = e.stride_b = e.stride_c = 0;
        if (i > 0) e.beta = 1.0f;
        run(e, scratch);
    }
    if (sum_in_f32) convert_matrix(HFT_F32, p.type_c, q.c, q.ldc, p.c, p.ldc, p.m, p.n, 1.0f);
}

void gemm_f32(const hft_gemm_args *g) {
    gemm(HFT_F32, g);
}
void gemm_bf16(const hft_gemm_args *g) {
    gemm(HFT_BF16, g);
}
void gemm_f16(const hft_gemm_args *g) {
    gemm(HFT_F16, g);
}

} // namespace

void hft_cuda_register_gemm(hft_kernels *t) {
    t->gemm[HFT_F32] = gemm_f32;
    t->gemm[HFT_BF16] = gemm_bf16;
    t->gemm[HFT_F16] = gemm_f16;
}
