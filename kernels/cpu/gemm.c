/* GEMM on the CPU: OpenBLAS's sgemm/dgemm. Transposed operands are passed as flags, never copied; a
 * transposed destination is computed as Cᵀ = op(B)ᵀ op(A)ᵀ. Small batched GEMMs run one per thread
 * (OpenBLAS stays single-threaded inside an OpenMP region); large ones use OpenBLAS's threads. */
#include "kernels/cpu/cpu_internal.h"

#include <cblas.h>

#define SMALL_GEMM_FLOPS (1L << 22)

static void gemm_one(hft_dtype dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                     const void *a, int64_t lda, const void *b, int64_t ldb, double beta, void *c,
                     int64_t ldc) {
    if (m == 0 || n == 0) return;
    enum CBLAS_TRANSPOSE opa = ta ? CblasTrans : CblasNoTrans, opb = tb ? CblasTrans : CblasNoTrans;
    if (dt == HFT_F32)
        cblas_sgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)k, (float)alpha, (const float *)a, (int)lda,
                    (const float *)b, (int)ldb, (float)beta, (float *)c, (int)ldc);
    else
        cblas_dgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)k, alpha, (const double *)a, (int)lda,
                    (const double *)b, (int)ldb, beta, (double *)c, (int)ldc);
}

static void gemm(hft_dtype dt, const hft_gemm_args *g) {
    size_t es = hft_dtype_size(dt);
    bool ta = g->trans_a, tb = g->trans_b;
    int64_t m = g->m, n = g->n;
    const char *a = (const char *)g->a, *b = (const char *)g->b;
    int64_t lda = g->lda, ldb = g->ldb, sa = g->stride_a, sb = g->stride_b;
    if (g->trans_c) { /* Cᵀ = op(B)ᵀ op(A)ᵀ */
        const char *t = a;
        a = b;
        b = t;
        bool tt = ta;
        ta = !tb;
        tb = !tt;
        int64_t tl = lda;
        lda = ldb;
        ldb = tl;
        int64_t ts = sa;
        sa = sb;
        sb = ts;
        m = g->n;
        n = g->m;
    }
    char *c = (char *)g->c;
    int64_t batch = g->batch > 0 ? g->batch : 1;
    if (g->k == 0) { /* an empty sum: C = beta C */
        for (int64_t i = 0; i < batch && (g->stride_c != 0 || i == 0); i++) {
            hft_kview v = {.data = c + (size_t)(i * g->stride_c) * es,
                           .ndim = 2,
                           .shape = {m, n},
                           .stride = {g->ldc, 1}};
            if (g->beta == 0)
                KFN(cpu_fill)(dt, &v, 0.0);
            else if (g->beta != 1)
                KFN(cpu_scale_inplace)(dt, &v, g->beta);
        }
        return;
    }
    if (g->stride_c == 0) { /* sum over the batch, in order */
        for (int64_t i = 0; i < batch; i++)
            gemm_one(dt, ta, tb, m, n, g->k, g->alpha, a + (size_t)(i * sa) * es, lda,
                     b + (size_t)(i * sb) * es, ldb, i == 0 ? g->beta : 1.0, c, g->ldc);
        return;
    }
    double flops = 2.0 * (double)m * (double)n * (double)g->k;
    bool per_thread = batch > 1 && flops < SMALL_GEMM_FLOPS;
#pragma omp parallel for schedule(static) if (per_thread)
    for (int64_t i = 0; i < batch; i++)
        gemm_one(dt, ta, tb, m, n, g->k, g->alpha, a + (size_t)(i * sa) * es, lda, b + (size_t)(i * sb) * es,
                 ldb, g->beta, c + (size_t)(i * g->stride_c) * es, g->ldc);
}

static void gemm_f32(const hft_gemm_args *g) {
    gemm(HFT_F32, g);
}
static void gemm_f64(const hft_gemm_args *g) {
    gemm(HFT_F64, g);
}

void KFN(cpu_register_gemm)(hft_kernels *t) {
    t->gemm[HFT_F32] = gemm_f32;
    t->gemm[HFT_F64] = gemm_f64;
}
