/* Dropout kernels on the CPU, f32 and f64. The mask is never stored: it is a function of the Philox key,
 * the global sample index and the element's offset in its sample, so backward draws it again. */
#include "kernels/cpu/cpu_internal.h"
#include "kernels/cpu/philox.h"

#define HFT_TEMPLATE "kernels/cpu/dropout_impl.h"
#include "kernels/cpu/instantiate.h"

void KFN(cpu_register_dropout)(hft_kernels *t) {
    t->dropout[HFT_F32] = FN2(dropout, f32);
    t->dropout[HFT_F64] = FN2(dropout, f64);
}
