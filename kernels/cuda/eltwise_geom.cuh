// Shape bookkeeping of the strided element-wise kernels: the host merges the dimensions that are contiguous
// in every operand (as kernels/cpu/strided.h does, so both backends walk the same iteration order) and
// passes the result by value; a thread turns its linear index into each operand's offset with one
// division per remaining dimension.
#ifndef HFT_CUDA_ELTWISE_GEOM_CUH
#define HFT_CUDA_ELTWISE_GEOM_CUH

#include "kernels/cuda/cuda_internal.cuh"

namespace {

constexpr int ELT_MAX_OPS = 4; // a map's out and three inputs

// A coalesced iteration space: `nd` dims (row-major, the last fastest) and each operand's strides, in
// elements. Passed to kernels by value.
template <int NOPS> struct elt_geom {
    int nd;
    int64_t shape[HFT_MAX_DIMS];
    int64_t st[NOPS][HFT_MAX_DIMS];
};

// kernels/cpu/strided.h: cpu_coalesce, for views that all have views[0]'s shape. Extent-1 dims are dropped;
// an empty result is one dim of extent 1.
template <int NOPS> elt_geom<NOPS> elt_coalesce(int n_ops, const hft_kview *const *views) {
    elt_geom<NOPS> g;
    memset(&g, 0, sizeof g);
    int nd = 0;
    const hft_kview *v0 = views[0];
    for (int d = 0; d < v0->ndim; d++) {
        if (v0->shape[d] == 1) continue;
        if (nd > 0) {
            bool mergeable = true;
            for (int k = 0; k < n_ops; k++)
                mergeable &= g.st[k][nd - 1] == views[k]->stride[d] * v0->shape[d];
            if (mergeable) {
                g.shape[nd - 1] *= v0->shape[d];
                for (int k = 0; k < n_ops; k++) g.st[k][nd - 1] = views[k]->stride[d];
                continue;
            }
        }
        g.shape[nd] = v0->shape[d];
        for (int k = 0; k < n_ops; k++) g.st[k][nd] = views[k]->stride[d];
        nd++;
    }
    if (nd == 0) {
        g.shape[0] = 1;
        for (int k = 0; k < n_ops; k++) g.st[k][0] = 1;
        nd = 1;
    }
    g.nd = nd;
    return g;
}

template <int NOPS> int64_t elt_numel(const elt_geom<NOPS> &g) {
    int64_t n = 1;
    for (int d = 0; d < g.nd; d++) n *= g.shape[d];
    return n;
}

// Operand offsets of linear index i (row-major over g's dims) for the first `nops` operands. I is the
// index type of the divisions: uint32_t when the space has fewer than 2^32 elements (much cheaper on a GPU
// than 64-bit division), else uint64_t.
template <typename I, int NOPS>
HFT_DEVICE void elt_offsets(const elt_geom<NOPS> &g, int nops, I i, int64_t *off) {
    for (int k = 0; k < NOPS; k++) off[k] = 0;
    for (int d = g.nd - 1; d >= 0; d--) {
        I ext = (I)g.shape[d];
        I idx = d > 0 ? i % ext : i;
        i = d > 0 ? i / ext : 0;
        for (int k = 0; k < NOPS; k++)
            if (k < nops) off[k] += (int64_t)idx * g.st[k][d];
    }
}

} // namespace

#endif
