/* Cross-entropy kernels on the CPU, f32 and f64: per-row losses and log-sum-exp (forward) and the
 * logits gradient (backward). The row sum into one loss is the caller's, through the ordered `sum`. */
#include "kernels/cpu/cpu_internal.h"

#define HFT_TEMPLATE "kernels/cpu/xent_impl.h"
#include "kernels/cpu/instantiate.h"

void KFN(cpu_register_xent)(hft_kernels *t) {
    t->xent_fwd[HFT_F32] = FN2(xent_fwd, f32);
    t->xent_fwd[HFT_F64] = FN2(xent_fwd, f64);
    t->xent_bwd[HFT_F32] = FN2(xent_bwd, f32);
    t->xent_bwd[HFT_F64] = FN2(xent_bwd, f64);
}
