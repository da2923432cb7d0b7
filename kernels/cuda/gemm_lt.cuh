// The GPU GEMM: cuBLASLt on the column-major problem of gemm_problem.cuh. One handle, created on first use;
// the descriptors and the heuristic's algorithm are cached per problem (every field that shapes them is in
// the key), so a steady training step queries no heuristic and allocates nothing. Compute type
// CUBLAS_COMPUTE_32F (TF32 off, as torch defaults), scale type f32, the module's 32 MiB GEMM workspace.
#ifndef HFT_CUDA_GEMM_LT_CUH
#define HFT_CUDA_GEMM_LT_CUH

#include <string.h>

#include <cublasLt.h>

#include "kernels/cuda/gemm_problem.cuh"

namespace {
namespace gemm_lt {

constexpr size_t WORKSPACE_BYTES = size_t(32) << 20;
constexpr int CACHE_SIZE = 64; // GEMM shapes of a training step (forward and backward), with room to spare

// Everything the descriptors and the chosen algorithm depend on. Pointers enter only through their alignment
// (the heuristic assumes it); all fields are 4 or 8 bytes and ordered so that the struct has no padding, so
// keys compare with memcmp.
struct key {
    int32_t device, transa, transb, type_a, type_b, type_c, epilogue, deterministic;
    int64_t m, n, k, lda, ldb, ldc, batch, stride_a, stride_b, stride_c;
    uint32_t align_a, align_b, align_c, align_bias, align_aux, unused;
};

struct plan {
    bool used, have_algo;
    uint64_t last_use;
    key k;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc; // D has C's layout (computed in place)
    cublasLtMatmulAlgo_t algo;
};

struct state {
    cublasLtHandle_t handle;
    bool have_handle;
    uint64_t clock;
    plan plans[CACHE_SIZE];
};
state lt;

bool ok(cublasStatus_t s, const char *what) {
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    hft_cuda_fail(s == CUBLAS_STATUS_ALLOC_FAILED ? HFT_ENOMEM : HFT_EDEVICE, "gemm", "%s: %s (%s)", what,
                  cublasLtGetStatusName(s), cublasLtGetStatusString(s));
    return false;
}

cudaDataType_t data_type(hft_dtype t) {
    return t == HFT_BF16 ? CUDA_R_16BF : t == HFT_F16 ? CUDA_R_16F : CUDA_R_32F;
}

// The largest power of two up to 256 dividing the address and (for a batch) the stride in bytes.
uint32_t alignment(const void *ptr, int64_t stride_bytes) {
    uintptr_t v = (uintptr_t)ptr | (uintptr_t)stride_bytes;
    uint32_t a = 256;
    while (a > 1 && (v & (a - 1))) a >>= 1;
    return a;
}

cublasLtEpilogue_t epilogue_of(const gemm_cm &p) {
    if (p.gelu) return p.aux ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS : CUBLASLT_EPILOGUE_GELU_BIAS;
    return p.bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

// GELU_BIAS and GELU_AUX_BIAS read a bias; a GELU without one gets the plain GELU epilogues instead.
cublasLtEpilogue_t without_missing_bias(cublasLtEpilogue_t e, bool bias) {
    if (bias) return e;
    if (e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS) return CUBLASLT_EPILOGUE_GELU_AUX;
    if (e == CUBLASLT_EPILOGUE_GELU_BIAS) return CUBLASLT_EPILOGUE_GELU;
    return e;
}

key key_of(const gemm_cm &p, size_t es_a, size_t es_b, size_t es_c) {
    key k;
    memset(&k, 0, sizeof k);
    int device = 0;
    (void)cudaGetDevice(&device);
    k.device = device;
    k.transa = p.transa, k.transb = p.transb;
    k.type_a = p.type_a, k.type_b = p.type_b, k.type_c = p.type_c;
    k.epilogue = (int32_t)without_missing_bias(epilogue_of(p), p.bias != nullptr);
    k.deterministic = hft_cuda_deterministic();
    k.m = p.m, k.n = p.n, k.k = p.k;
    k.lda = p.lda, k.ldb = p.ldb, k.ldc = p.ldc;
    k.batch = p.batch, k.stride_a = p.stride_a, k.stride_b = p.stride_b, k.stride_c = p.stride_c;
    bool batched = p.batch > 1;
    k.align_a = alignment(p.a, batched ? p.stride_a * (int64_t)es_a : 0);
    k.align_b = alignment(p.b, batched ? p.stride_b * (int64_t)es_b : 0);
    k.align_c = alignment(p.c, batched ? p.stride_c * (int64_t)es_c : 0);
    k.align_bias = p.bias ? alignment(p.bias, 0) : 0;
    k.align_aux = p.aux ? alignment(p.aux, 0) : 0;
    return k;
}

bool layout(cublasLtMatrixLayout_t *l, hft_dtype t, int64_t rows, int64_t cols, int64_t ld, int64_t batch,
            int64_t stride) {
    if (!ok(cublasLtMatrixLayoutCreate(l, data_type(t), (uint64_t)rows, (uint64_t)cols, ld), "layout")) {
        *l = nullptr;
        return false;
    }
    if (batch <= 1) return true;
    int32_t count = (int32_t)batch;
    return ok(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count),
              "batch count") &&
           ok(cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                               sizeof stride),
              "batch stride");
}

void release(plan *pl) {
    if (pl->op) (void)cublasLtMatmulDescDestroy(pl->op);
    if (pl->la) (void)cublasLtMatrixLayoutDestroy(pl->la);
    if (pl->lb) (void)cublasLtMatrixLayoutDestroy(pl->lb);
    if (pl->lc) (void)cublasLtMatrixLayoutDestroy(pl->lc);
    memset(pl, 0, sizeof *pl);
}

// Split-K reduction schemes the heuristic may pick. NONE (no split) is always allowed. COMPUTE_TYPE keeps
// the partial sums in f32 in the workspace and adds them in a separate step, a fixed order. OUTPUT_TYPE
// and INPLACE accumulate the partials in the output's dtype, which breaks f32 accumulation for bf16/f16
// outputs; INPLACE also orders the partials through counters in the workspace, an order cuBLAS does not
// document as fixed, so deterministic mode leaves it out.
uint32_t reduction_schemes(hft_dtype type_c, bool deterministic) {
    uint32_t mask = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
    if (type_c == HFT_F32) mask |= CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    if (type_c == HFT_F32 && !deterministic) mask |= CUBLASLT_REDUCTION_SCHEME_INPLACE;
    return mask;
}

// The descriptors and the heuristic's choice for a new problem; have_algo false when cuBLASLt offers none.
bool build(plan *pl, const gemm_cm &p, const key &k) {
    memset(pl, 0, sizeof *pl);
    pl->k = k;
    if (!ok(cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "descriptor")) {
        pl->op = nullptr;
        return false;
    }
    int32_t ta = p.transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    uint32_t epi = (uint32_t)k.epilogue;
    bool good =
        ok(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta), "transa") &&
        ok(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb), "transb") &&
        ok(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi),
           "epilogue");
    // the heuristic reads the epilogue pointers for their alignment
    if (good && p.bias)
        good = ok(
            cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias),
            "bias");
    if (good && p.aux) {
        int64_t ld = p.ldc;
        good =
            ok(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p.aux,
                                              sizeof p.aux),
               "pre-activation") &&
            ok(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD, &ld, sizeof ld),
               "pre-activation ld");
    }
    good = good &&
           layout(&pl->la, p.type_a, gemm_cm_rows_a(p), gemm_cm_cols_a(p), p.lda, p.batch, p.stride_a) &&
           layout(&pl->lb, p.type_b, gemm_cm_rows_b(p), gemm_cm_cols_b(p), p.ldb, p.batch, p.stride_b) &&
           layout(&pl->lc, p.type_c, p.m, p.n, p.ldc, p.batch, p.stride_c);
    if (!good) {
        release(pl);
        return false;
    }

    cublasLtMatmulPreference_t pref = nullptr;
    if (!ok(cublasLtMatmulPreferenceCreate(&pref), "preference")) {
        release(pl);
        return false;
    }
    uint64_t ws = WORKSPACE_BYTES;
    uint32_t schemes = reduction_schemes(p.type_c, k.deterministic != 0);
    uint32_t align[4] = {k.align_a, k.align_b, k.align_c, k.align_c};
    const cublasLtMatmulPreferenceAttributes_t align_attr[4] = {
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
        CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES};
    good = ok(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                   sizeof ws),
              "workspace preference") &&
           ok(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, &schemes,
                                                   sizeof schemes),
              "reduction preference");
    for (int i = 0; good && i < 4; i++)
        good = ok(cublasLtMatmulPreferenceSetAttribute(pref, align_attr[i], &align[i], sizeof align[i]),
                  "alignment preference");
    if (good) {
        cublasLtMatmulHeuristicResult_t result;
        memset(&result, 0, sizeof result);
        int found = 0;
        cublasStatus_t s = cublasLtMatmulAlgoGetHeuristic(lt.handle, pl->op, pl->la, pl->lb, pl->lc, pl->lc,
                                                          pref, 1, &result, &found);
        // NOT_SUPPORTED (or nothing found) is an answer, not a failure: the reference kernel runs instead
        if (s == CUBLAS_STATUS_SUCCESS && found > 0 && result.state == CUBLAS_STATUS_SUCCESS) {
            pl->algo = result.algo;
            pl->have_algo = true;
        } else if (s != CUBLAS_STATUS_SUCCESS && s != CUBLAS_STATUS_NOT_SUPPORTED) {
            good = ok(s, "heuristic");
        }
    }
    (void)cublasLtMatmulPreferenceDestroy(pref);
    if (!good) {
        release(pl);
        return false;
    }
    pl->used = true;
    return true;
}

// The cached plan for p (built on a miss, replacing the least recently used); NULL after a reported failure.
plan *plan_for(const gemm_cm &p) {
    key k = key_of(p, gemm_type_size(p.type_a), gemm_type_size(p.type_b), gemm_type_size(p.type_c));
    plan *victim = &lt.plans[0];
    for (int i = 0; i < CACHE_SIZE; i++) {
        plan *pl = &lt.plans[i];
        if (pl->used && memcmp(&pl->k, &k, sizeof k) == 0) {
            pl->last_use = ++lt.clock;
            return pl;
        }
        if (!pl->used ? victim->used : (victim->used && pl->last_use < victim->last_use)) victim = pl;
    }
    if (victim->used) release(victim);
    if (!build(victim, p, k)) return nullptr;
    victim->last_use = ++lt.clock;
    return victim;
}

enum result { QUEUED, NO_ALGO };

// p on cuBLASLt (QUEUED, also when a failure was reported), or NO_ALGO when cuBLASLt cannot run it.
result matmul(const gemm_cm &p, void *workspace) {
    // cuBLASLt's GELU input matrix needs a leading dimension divisible by 8 (cublasLtMatmulDescAttributes_t)
    if (p.aux && p.ldc % 8 != 0) return NO_ALGO;
    if (!lt.have_handle) {
        if (!ok(cublasLtCreate(&lt.handle), "creating the cuBLASLt handle")) return QUEUED;
        lt.have_handle = true;
    }
    plan *pl = plan_for(p);
    if (!pl) return QUEUED;
    if (!pl->have_algo) return NO_ALGO;
    // the epilogue pointers change from call to call; their alignment is in the key
    if (p.bias &&
        !ok(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &p.bias, sizeof p.bias),
            "bias"))
        return QUEUED;
    if (p.aux && !ok(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &p.aux,
                                                    sizeof p.aux),
                     "pre-activation"))
        return QUEUED;
    (void)ok(cublasLtMatmul(lt.handle, pl->op, &p.alpha, p.a, pl->la, p.b, pl->lb, &p.beta, p.c, pl->lc, p.c,
                            pl->lc, &pl->algo, workspace, WORKSPACE_BYTES, hft_cuda_stream()),
             "cublasLtMatmul");
    return QUEUED;
}

} // namespace gemm_lt
} // namespace

#endif
