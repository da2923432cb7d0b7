/* Element-wise maps, reductions, ordered sums and fills on the CPU, for f32 and f64. */
#include "kernels/cpu/cpu_internal.h"

#define HFT_TEMPLATE "kernels/cpu/map_impl.h"
#include "kernels/cpu/instantiate.h"
#define HFT_TEMPLATE "kernels/cpu/reduce_impl.h"
#include "kernels/cpu/instantiate.h"

void KFN(cpu_fill)(hft_dtype dt, const hft_kview *v, double value) {
    if (dt == HFT_F64) {
        FN2(fill, f64)(v, value);
    } else {
        FN2(fill, f32)(v, value);
    }
}

void KFN(cpu_scale_inplace)(hft_dtype dt, const hft_kview *v, double alpha) {
    const hft_kview *views[1] = {v};
    int nd;
    int64_t shape[HFT_MAX_DIMS], st[1][HFT_MAX_DIMS];
    cpu_coalesce(1, views, &nd, shape, st);
    int64_t inner = shape[nd - 1], is = st[0][nd - 1], rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= shape[d];
    for (int64_t r = 0; r < rows; r++) {
        int64_t off = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            off += (rem % shape[d]) * st[0][d];
            rem /= shape[d];
        }
        if (dt == HFT_F64) {
            double *p = (double *)v->data + off;
            for (int64_t i = 0; i < inner; i++) p[i * is] *= alpha;
        } else {
            float *p = (float *)v->data + off;
            for (int64_t i = 0; i < inner; i++) p[i * is] *= (float)alpha;
        }
    }
}

void KFN(cpu_register_eltwise)(hft_kernels *t) {
    t->map[HFT_F32] = FN2(map, f32);
    t->map[HFT_F64] = FN2(map, f64);
    t->reduce[HFT_F32] = FN2(reduce, f32);
    t->reduce[HFT_F64] = FN2(reduce, f64);
    t->fill[HFT_F32] = FN2(fill, f32);
    t->fill[HFT_F64] = FN2(fill, f64);
    t->sum[HFT_F32] = FN2(sum, f32);
    t->sum[HFT_F64] = FN2(sum, f64);
    t->copy = KFN(cpu_copy);
}
