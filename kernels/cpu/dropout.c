/* Placeholder until the dropout kernels land: registers nothing, so autograd reports the op as missing. */
#include "kernels/cpu/cpu_internal.h"

void KFN(cpu_register_dropout)(hft_kernels *t) {
    (void)t;
}
