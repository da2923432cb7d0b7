/* Layer norm and RMS norm over the last axis of contiguous [rows, cols] arrays, forward and backward,
 * f32 and f64. The weight and bias gradients are summed over fixed row chunks into scratch and the
 * chunks combined in order, so they do not depend on the thread count. */
#include "kernels/cpu/cpu_internal.h"

#include <assert.h>

/* Rows per chunk of the weight-gradient partial sums: 64, doubled while there would be more than 256
 * chunks, which bounds the scratch. Depends on the shape only, never on the threads. */
static int64_t norm_chunk_rows(int64_t rows) {
    int64_t chunk = 64;
    while ((rows + chunk - 1) / chunk > 256) chunk *= 2;
    return chunk;
}

#define HFT_TEMPLATE "kernels/cpu/norm_impl.h"
#include "kernels/cpu/instantiate.h"

static size_t KFN(norm_scratch_bytes)(const hft_norm_args *a, size_t elsize) {
    int64_t parts = (a->dweight ? 1 : 0) + (a->dbias ? 1 : 0);
    if (parts == 0 || a->rows == 0) return 0;
    int64_t chunk = norm_chunk_rows(a->rows), nchunks = (a->rows + chunk - 1) / chunk;
    return (size_t)(nchunks * parts * a->cols) * elsize;
}

void KFN(cpu_register_norm)(hft_kernels *t) {
    t->norm_fwd[HFT_F32] = FN2(norm_fwd, f32);
    t->norm_fwd[HFT_F64] = FN2(norm_fwd, f64);
    t->norm_bwd[HFT_F32] = FN2(norm_bwd, f32);
    t->norm_bwd[HFT_F64] = FN2(norm_bwd, f64);
    t->norm_scratch_bytes = KFN(norm_scratch_bytes);
}
