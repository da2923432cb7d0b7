/* Placeholder until the attention kernels land: registers nothing, so autograd reports the op as missing. */
#include "kernels/cpu/cpu_internal.h"

void KFN(cpu_register_attention)(hft_kernels *t) {
    (void)t;
}
