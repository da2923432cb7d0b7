/* GEMM on the CPU: OpenBLAS's single-threaded sgemm/dgemm, parallelised here. OpenBLAS itself is kept at
 * one thread (runtime.c): its OpenMP build mallocs a job table on every threaded call, and splitting a
 * GEMM into one column (or row) slice per thread measured as fast or faster at training shapes. Small
 * batched GEMMs run one per thread. Transposed operands are passed as flags, never copied; a transposed
 * destination is computed as Cᵀ = op(B)ᵀ op(A)ᵀ. */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_math.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Below this many flops a GEMM runs on one thread: a parallel region costs a few microseconds. */
#define PARALLEL_GEMM_FLOPS (1 << 21)
/* Slice boundaries fall on multiples of this, so every thread's slice starts cache-line aligned. */
#define SLICE_ALIGN 16

typedef struct gemm_op {
    hft_dtype dt;
    bool ta, tb;
    int64_t m, n, k;
    double alpha, beta;
    const char *a, *b;
    int64_t lda, ldb, ldc;
    char *c;
    int64_t parts;
    bool split_n;
} gemm_op;

static void gemm_one(const gemm_op *g, int64_t m, int64_t n, const char *a, const char *b, char *c) {
    if (m == 0 || n == 0) return;
    if (m == 1 && g->dt == HFT_F32) { /* one row (decoding a token): a GEMV reads B once and packs nothing */
        int inc_a = g->ta ? (int)g->lda : 1;
        if (g->beta == 0)
            memset(c, 0, sizeof(float) * (size_t)n); /* a GEMV scales c by beta: no NaN garbage */
        if (g->tb)                                   /* c = alpha B a + beta c, B stored [n, k] */
            cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)g->k, (float)g->alpha, (const float *)b,
                        (int)g->ldb, (const float *)a, inc_a, (float)g->beta, (float *)c, 1);
        else /* B stored [k, n] */
            cblas_sgemv(CblasRowMajor, CblasTrans, (int)g->k, (int)n, (float)g->alpha, (const float *)b,
                        (int)g->ldb, (const float *)a, inc_a, (float)g->beta, (float *)c, 1);
        return;
    }
    enum CBLAS_TRANSPOSE opa = g->ta ? CblasTrans : CblasNoTrans, opb = g->tb ? CblasTrans : CblasNoTrans;
    if (g->dt == HFT_F32)
        cblas_sgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)g->k, (float)g->alpha, (const float *)a,
                    (int)g->lda, (const float *)b, (int)g->ldb, (float)g->beta, (float *)c, (int)g->ldc);
    else
        cblas_dgemm(CblasRowMajor, opa, opb, (int)m, (int)n, (int)g->k, g->alpha, (const double *)a,
                    (int)g->lda, (const double *)b, (int)g->ldb, g->beta, (double *)c, (int)g->ldc);
}

static int64_t slice_start(int64_t total, int64_t parts, int64_t i) {
    if (i >= parts) return total;
    int64_t s = total * i / parts;
    return i == 0 ? 0 : s - s % SLICE_ALIGN;
}

/* Slices [p0, p1) of one GEMM: columns of C when split_n, else rows. */
static void gemm_slices(int64_t p0, int64_t p1, void *job) {
    const gemm_op *g = job;
    size_t es = hft_dtype_size(g->dt);
    for (int64_t p = p0; p < p1; p++) {
        if (g->split_n) {
            int64_t n0 = slice_start(g->n, g->parts, p), n1 = slice_start(g->n, g->parts, p + 1);
            const char *b = g->b + (size_t)(g->tb ? n0 * g->ldb : n0) * es;
            gemm_one(g, g->m, n1 - n0, g->a, b, g->c + (size_t)n0 * es);
        } else {
            int64_t m0 = slice_start(g->m, g->parts, p), m1 = slice_start(g->m, g->parts, p + 1);
            const char *a = g->a + (size_t)(g->ta ? m0 : m0 * g->lda) * es;
            gemm_one(g, m1 - m0, g->n, a, g->b, g->c + (size_t)(m0 * g->ldc) * es);
        }
    }
}

/* One GEMM over the thread pool: split along the longer side of C into one slice per thread. */
static void gemm_parallel(gemm_op *g) {
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    g->split_n = g->n >= g->m;
    int64_t side = g->split_n ? g->n : g->m;
    g->parts = flops < PARALLEL_GEMM_FLOPS ? 1 : threads;
    if (g->parts > side / SLICE_ALIGN) g->parts = side / SLICE_ALIGN > 0 ? side / SLICE_ALIGN : 1;
    hft_parallel_range(g->parts, g->parts > 1, gemm_slices, g);
}

typedef struct batch_job {
    gemm_op g;
    int64_t sa, sb, sc;
} batch_job;

/* Batch entries [i0, i1), one single-threaded GEMM each. */
static void gemm_batch_entries(int64_t i0, int64_t i1, void *job) {
    const batch_job *j = job;
    size_t es = hft_dtype_size(j->g.dt);
    for (int64_t i = i0; i < i1; i++)
        gemm_one(&j->g, j->g.m, j->g.n, j->g.a + (size_t)(i * j->sa) * es, j->g.b + (size_t)(i * j->sb) * es,
                 j->g.c + (size_t)(i * j->sc) * es);
}

/* ---------------------------------------------------------------- low-precision operands */

/* Operands held in bf16/f16 are widened to f32 into buffers kept for the next call (grown, never shrunk:
 * no allocation in a steady step), then multiplied by sgemm: exact products of the low-precision values
 * with f32 accumulation, the fallback where the CPU has no bf16 dot product. */
typedef struct widen_job {
    hft_dtype type;
    const char *src;
    float *dst;
    int64_t cols, ld;
} widen_job;

static void widen_rows(int64_t r0, int64_t r1, void *job) {
    const widen_job *w = job;
    for (int64_t r = r0; r < r1; r++) {
        const uint16_t *s = (const uint16_t *)w->src + r * w->ld;
        float *d = w->dst + r * w->cols;
        if (w->type == HFT_BF16)
            for (int64_t c = 0; c < w->cols; c++) d[c] = hft_bf16_to_f32(s[c]);
        else
            for (int64_t c = 0; c < w->cols; c++) d[c] = hft_f16_to_f32(s[c]);
    }
}

/* A stored [rows, cols] matrix (leading dim ld) as f32 in scratch slot `slot`; its new ld is cols. */
static const float *widen(int slot, hft_dtype type, const void *src, int64_t rows, int64_t cols, int64_t ld) {
    static float *scratch[2];
    static size_t capacity[2];
    size_t need = (size_t)(rows * cols);
    static float nothing; /* an empty operand: read by no one, but not NULL (NULL means out of memory) */
    if (need == 0) return &nothing;
    if (need > capacity[slot]) {
        free(scratch[slot]);
        scratch[slot] = malloc(need * sizeof(float));
        capacity[slot] = scratch[slot] ? need : 0;
        if (!scratch[slot]) return NULL;
    }
    widen_job w = {type, src, scratch[slot], cols, ld};
    hft_parallel_range(rows, rows * cols > 32768, widen_rows, &w);
    return scratch[slot];
}

static void gemm_core(hft_dtype dt, const hft_gemm_args *args);

/* bf16/f16 operands with an f32 C: each batch entry's low operands widened to f32, then an f32 GEMM. A
 * batch summed into one C (stride_c 0) takes beta on its first entry and adds the rest in order, as the
 * f32 path does. */
static void gemm_low_operands(const hft_gemm_args *args) {
    int64_t batch = args->batch > 0 ? args->batch : 1;
    for (int64_t i = 0; i < batch; i++) {
        hft_gemm_args g = *args;
        g.batch = 1;
        g.c = (float *)args->c + i * args->stride_c;
        if (args->stride_c == 0 && i > 0) g.beta = 1;
        g.a = (const char *)args->a + (size_t)(i * args->stride_a) * hft_dtype_size(args->a_type);
        g.b = (const char *)args->b + (size_t)(i * args->stride_b) * hft_dtype_size(args->b_type);
        if (g.a_type != HFT_F32) {
            int64_t rows = g.trans_a ? g.k : g.m, cols = g.trans_a ? g.m : g.k;
            g.a = widen(0, g.a_type, g.a, rows, cols, g.lda);
            g.lda = cols > 0 ? cols : 1;
        }
        if (g.b_type != HFT_F32) {
            int64_t rows = g.trans_b ? g.n : g.k, cols = g.trans_b ? g.k : g.n;
            g.b = widen(1, g.b_type, g.b, rows, cols, g.ldb);
            g.ldb = cols > 0 ? cols : 1;
        }
        if (!g.a || !g.b) abort(); /* out of memory for a scratch buffer the size of one weight */
        g.a_type = g.b_type = HFT_F32;
        gemm_core(HFT_F32, &g);
    }
}

static void gemm_core(hft_dtype dt, const hft_gemm_args *args) {
    size_t es = hft_dtype_size(dt);
    batch_job j = {.g = {.dt = dt,
                         .ta = args->trans_a,
                         .tb = args->trans_b,
                         .m = args->m,
                         .n = args->n,
                         .k = args->k,
                         .alpha = args->alpha,
                         .beta = args->beta,
                         .a = args->a,
                         .b = args->b,
                         .lda = args->lda,
                         .ldb = args->ldb,
                         .ldc = args->ldc,
                         .c = args->c},
                   .sa = args->stride_a,
                   .sb = args->stride_b,
                   .sc = args->stride_c};
    gemm_op *g = &j.g;
    if (args->trans_c) { /* Cᵀ = op(B)ᵀ op(A)ᵀ */
        g->a = args->b, g->b = args->a;
        g->ta = !args->trans_b, g->tb = !args->trans_a;
        g->lda = args->ldb, g->ldb = args->lda;
        j.sa = args->stride_b, j.sb = args->stride_a;
        g->m = args->n, g->n = args->m;
    }
    int64_t batch = args->batch > 0 ? args->batch : 1;
    if (g->k == 0) { /* an empty sum: C = beta C */
        for (int64_t i = 0; i < batch && (j.sc != 0 || i == 0); i++) {
            hft_kview v = {.data = g->c + (size_t)(i * j.sc) * es,
                           .ndim = 2,
                           .shape = {g->m, g->n},
                           .stride = {g->ldc, 1}};
            if (g->beta == 0)
                KFN(cpu_fill)(dt, &v, 0.0);
            else if (g->beta != 1)
                KFN(cpu_scale_inplace)(dt, &v, g->beta);
        }
        return;
    }
    double flops = 2.0 * (double)g->m * (double)g->n * (double)g->k;
    if (j.sc != 0 && batch > 1 && flops < PARALLEL_GEMM_FLOPS) { /* many small GEMMs: one per thread */
        hft_parallel_range(batch, true, gemm_batch_entries, &j);
        return;
    }
    const char *a0 = g->a, *b0 = g->b;
    char *c0 = g->c;
    double beta = g->beta;
    for (int64_t i = 0; i < batch; i++) { /* with stride_c 0 the batch sums into one C, in order */
        g->a = a0 + (size_t)(i * j.sa) * es;
        g->b = b0 + (size_t)(i * j.sb) * es;
        g->c = c0 + (size_t)(i * j.sc) * es;
        g->beta = (j.sc == 0 && i > 0) ? 1.0 : beta;
        gemm_parallel(g);
    }
}

/* ---------------------------------------------------------------- the epilogue */

/* A post-pass over C's rows (the CUDA GEMM fuses it into cuBLASLt's epilogue): value = C + bias, stored in
 * pre_act, C = gelu_tanh(value) with map_impl.h's formula (the f32 hft_tanhf, libm's tanh in f64). */
typedef struct epilogue_job {
    hft_dtype dt;
    int64_t n, ldc;
    char *c, *pre;
    const char *bias;
    bool gelu;
} epilogue_job;

static void epilogue_row_f32(int64_t n, float *c, float *pre, const float *bias, bool gelu) {
    if (bias)
        for (int64_t j = 0; j < n; j++) c[j] += bias[j];
    if (!gelu) return;
    if (pre) memcpy(pre, c, sizeof(float) * (size_t)n);
    for (int64_t j = 0; j < n; j++) {
        float x = c[j];
        c[j] = 0.5f * x * (1.0f + hft_tanhf((float)HFT_SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
    }
}

static void epilogue_row_f64(int64_t n, double *c, double *pre, const double *bias, bool gelu) {
    if (bias)
        for (int64_t j = 0; j < n; j++) c[j] += bias[j];
    if (!gelu) return;
    if (pre) memcpy(pre, c, sizeof(double) * (size_t)n);
    for (int64_t j = 0; j < n; j++) {
        double x = c[j];
        c[j] = 0.5 * x * (1.0 + tanh(HFT_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)));
    }
}

static void epilogue_rows(int64_t r0, int64_t r1, void *job) {
    const epilogue_job *e = job;
    size_t es = hft_dtype_size(e->dt);
    for (int64_t r = r0; r < r1; r++) {
        char *c = e->c + (size_t)(r * e->ldc) * es, *pre = e->pre ? e->pre + (size_t)(r * e->ldc) * es : NULL;
        if (e->dt == HFT_F64)
            epilogue_row_f64(e->n, (double *)c, (double *)pre, (const double *)e->bias, e->gelu);
        else
            epilogue_row_f32(e->n, (float *)c, (float *)pre, (const float *)e->bias, e->gelu);
    }
}

/* The table's entries return nothing, so a caller that breaks the epilogue's contract is stopped here
 * rather than handed a silently wrong C. */
static void epilogue_misuse(const char *why) {
    fprintf(stderr, "hft: CPU gemm: %s\n", why);
    abort();
}

static void gemm(hft_dtype dt, const hft_gemm_args *args) {
    bool gelu = args->epilogue == HFT_EPILOGUE_GELU_TANH;
    bool epilogue = args->bias || gelu;
    if (args->epilogue != HFT_EPILOGUE_NONE && !gelu) epilogue_misuse("unknown epilogue");
    if (args->pre_act && !gelu) epilogue_misuse("pre_act given without the GELU epilogue");
    if (epilogue && (args->batch > 1 || args->trans_c))
        epilogue_misuse("the epilogue (bias, GELU) takes batch 1 and trans_c false");
    if (dt == HFT_F32 && (args->a_type != HFT_F32 || args->b_type != HFT_F32))
        gemm_low_operands(args);
    else
        gemm_core(dt, args);
    if (!epilogue || args->m == 0 || args->n == 0) return;
    epilogue_job e = {dt, args->n, args->ldc, args->c, args->pre_act, args->bias, gelu};
    hft_parallel_range(args->m, args->m * args->n > 32768, epilogue_rows, &e);
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
