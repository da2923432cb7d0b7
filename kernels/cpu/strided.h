/* Shape bookkeeping shared by the strided kernels: merging dimensions that are contiguous in every
 * operand, so a strided loop runs over as few and as long rows as the layout allows. */
#ifndef HFT_CPU_STRIDED_H
#define HFT_CPU_STRIDED_H

#include "kernels/kernels.h"

/* All views have the shape of views[0]. Writes the merged shape and each operand's strides. */
static inline void cpu_coalesce(int n_ops, const hft_kview *const *views, int *ndim_out, int64_t *shape,
                                int64_t strides[][HFT_MAX_DIMS]) {
    int nd = 0;
    const hft_kview *v0 = views[0];
    for (int d = 0; d < v0->ndim; d++) {
        if (v0->shape[d] == 1) continue;
        if (nd > 0) {
            int mergeable = 1;
            for (int k = 0; k < n_ops; k++)
                mergeable &= strides[k][nd - 1] == views[k]->stride[d] * v0->shape[d];
            if (mergeable) {
                shape[nd - 1] *= v0->shape[d];
                for (int k = 0; k < n_ops; k++) strides[k][nd - 1] = views[k]->stride[d];
                continue;
            }
        }
        shape[nd] = v0->shape[d];
        for (int k = 0; k < n_ops; k++) strides[k][nd] = views[k]->stride[d];
        nd++;
    }
    if (nd == 0) {
        shape[0] = 1;
        for (int k = 0; k < n_ops; k++) strides[k][0] = 1;
        nd = 1;
    }
    *ndim_out = nd;
}

static inline int64_t cpu_numel(const hft_kview *v) {
    int64_t n = 1;
    for (int d = 0; d < v->ndim; d++) n *= v->shape[d];
    return n;
}

#endif
