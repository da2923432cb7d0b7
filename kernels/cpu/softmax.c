/* Softmax and log-softmax over the middle axis of a contiguous [outer, n, inner] array, forward and
 * backward, f32 and f64. inner == 1 (softmax over the last dim) is the hot path; inner > 1 walks
 * blocks of columns so every load stays unit-stride. */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/cpu_math.h"

/* exp for softmax's arguments (x - max <= 0, and log-probabilities): a result below FLT_MIN flushes to
 * 0, under 1.2e-38 of the row's largest term, where hft_expf keeps the denormal at the price of a second
 * polynomial per element; NaN propagates (an all -inf row). */
static inline float sm_expf(float x) {
    float xc = x < -87.0f ? -87.0f : x;
    xc = x != x ? 0.0f : xc;
    float r = expf_core(xc);
    r = x < -87.0f ? 0.0f : r;
    return x != x ? x : r;
}

#define HFT_TEMPLATE "kernels/cpu/softmax_impl.h"
#include "kernels/cpu/instantiate.h"

void KFN(cpu_register_softmax)(hft_kernels *t) {
    t->softmax_fwd[HFT_F32] = FN2(softmax_fwd, f32);
    t->softmax_fwd[HFT_F64] = FN2(softmax_fwd, f64);
    t->softmax_bwd[HFT_F32] = FN2(softmax_bwd, f32);
    t->softmax_bwd[HFT_F64] = FN2(softmax_bwd, f64);
}
