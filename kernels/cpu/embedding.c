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

void KFN(cpu_register_embedding)(hft_kernels *t) {
    t->embedding_fwd[HFT_F32] = FN2(embedding_fwd, f32);
    t->embedding_fwd[HFT_F64] = FN2(embedding_fwd, f64);
    t->embedding_bwd[HFT_F32] = FN2(embedding_bwd, f32);
    t->embedding_bwd[HFT_F64] = FN2(embedding_bwd, f64);
}
