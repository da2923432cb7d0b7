/* Embedding lookup and its gradient, f32 and f64. The gradient is a deterministic scatter-add: threads
 * own blocks of columns and each walks the ids in order, so every element of dweight is summed in the
 * order of the ids whatever the thread count. */
#include "kernels/cpu/cpu_internal.h"

#include <omp.h>
#include <string.h>

static inline int64_t emb_id(const void *ids, hft_dtype dt, int64_t i) {
    return dt == HFT_I32 ? (int64_t)((const int32_t *)ids)[i] : ((const int64_t *)ids)[i];
}

/* Columns per task: about four tasks per thread, in multiples of 16. Any partition gives the same sums,
 * so it may follow the thread count. */
static int64_t emb_col_block(int64_t dim) {
    int64_t want = 4 * (int64_t)omp_get_max_threads();
    int64_t cb = (dim + want - 1) / want;
    cb = (cb + 15) / 16 * 16;
    return cb < 16 ? 16 : cb;
}

#define HFT_TEMPLATE "kernels/cpu/embedding_impl.h"
#include "kernels/cpu/instantiate.h"

/* Tables held in bf16 or f16 (a frozen base in low precision): rows widened into an f32 output. */
static void embedding_fwd_low_rows(int64_t i0, int64_t i1, void *job, bool bf16) {
    const hft_embedding_args *a = job;
    const uint16_t *w = a->weight;
    float *out = a->out;
    int64_t D = a->dim, V = a->vocab;
    for (int64_t i = i0; i < i1; i++) {
        int64_t id = emb_id(a->ids, a->id_dtype, i);
        const uint16_t *row = w + id * D;
        for (int64_t c = 0; c < D; c++)
            out[i * D + c] = id < 0 || id >= V ? 0.0f : bf16 ? hft_bf16_to_f32(row[c]) : hft_f16_to_f32(row[c]);
    }
}
static void embedding_fwd_bf16_rows(int64_t i0, int64_t i1, void *job) {
    embedding_fwd_low_rows(i0, i1, job, true);
}
static void embedding_fwd_f16_rows(int64_t i0, int64_t i1, void *job) {
    embedding_fwd_low_rows(i0, i1, job, false);
}
static void embedding_fwd_bf16(const hft_embedding_args *a) {
    hft_parallel_range(a->n, a->n * a->dim > 32768, embedding_fwd_bf16_rows, (void *)a);
}
static void embedding_fwd_f16(const hft_embedding_args *a) {
    hft_parallel_range(a->n, a->n * a->dim > 32768, embedding_fwd_f16_rows, (void *)a);
}

void KFN(cpu_register_embedding)(hft_kernels *t) {
    t->embedding_fwd[HFT_BF16] = embedding_fwd_bf16; /* output f32 */
    t->embedding_fwd[HFT_F16] = embedding_fwd_f16;
    t->embedding_fwd[HFT_F32] = FN2(embedding_fwd, f32);
    t->embedding_fwd[HFT_F64] = FN2(embedding_fwd, f64);
    t->embedding_bwd[HFT_F32] = FN2(embedding_bwd, f32);
    t->embedding_bwd[HFT_F64] = FN2(embedding_bwd, f64);
}
