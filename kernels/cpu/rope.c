/* Rotary position embedding (transformers' rotate_half convention), f32 and f64: forward rotates by
 * the angle pos·inv_freq, backward (inverse) by its negative. cos and sin are computed once per
 * (batch, position) and reused across the heads. */
#include "kernels/cpu/cpu_internal.h"

#include <math.h>

#define HFT_TEMPLATE "kernels/cpu/rope_impl.h"
#include "kernels/cpu/instantiate.h"

void KFN(cpu_register_rope)(hft_kernels *t) {
    t->rope[HFT_F32] = FN2(rope, f32);
    t->rope[HFT_F64] = FN2(rope, f64);
}
