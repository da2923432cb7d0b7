/* Philox 4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11), the
 * counter-based generator torch and cuRAND also use: a pure function of (key, counter). */
#include "kernels/kernels.h"

#include "kernels/cpu/philox.h"

void hft_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]) {
    philox4x32_10(key, ctr, out);
}
