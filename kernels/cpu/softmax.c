/* Placeholder until the softmax kernels land: registers nothing, so autograd reports the op as missing. */
#include "kernels/cpu/cpu_internal.h"

void KFN(cpu_register_softmax)(hft_kernels *t) {
    (void)t;
}
