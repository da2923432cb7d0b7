/* Which kernel table serves a device: the CPU table of the widest ISA path this CPU runs (chosen once,
 * at first use), and the CUDA table when that backend has been loaded. */
#include "kernels/kernels.h"

const hft_kernels *cpu_table_generic(void);
const hft_kernels *cpu_table_avx2(void);
const hft_kernels *cpu_table_avx512(void);

static const hft_kernels *cuda_table; /* set by hft_cuda_load (cuda_loader.c) */

void hft_kernels_set_cuda(const hft_kernels *table);
void hft_kernels_set_cuda(const hft_kernels *table) {
    cuda_table = table;
}

const hft_kernels *hft_cpu_kernels(hft_isa isa) {
    if (isa > hft_cpu_isa()) return NULL; /* the CPU cannot run that path */
    switch (isa) {
    case HFT_ISA_AVX512:
        return cpu_table_avx512();
    case HFT_ISA_AVX2:
        return cpu_table_avx2();
    default:
        return cpu_table_generic();
    }
}

const hft_kernels *hft_kernels_for(hft_device_type device) {
    static const hft_kernels *cpu;
    if (device == HFT_CPU) {
        if (!cpu) cpu = hft_cpu_kernels(hft_cpu_isa());
        return cpu;
    }
    if (device == HFT_CUDA) return cuda_table;
    return NULL;
}
