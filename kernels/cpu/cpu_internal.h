/* What the CPU kernel files of one ISA build share: each file registers its entries in the table, and
 * a few helpers are called across files. */
#ifndef HFT_CPU_INTERNAL_H
#define HFT_CPU_INTERNAL_H

#include "kernels/kernels.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/strided.h"

void KFN(cpu_register_gemm)(hft_kernels *t);
void KFN(cpu_register_eltwise)(hft_kernels *t);
void KFN(cpu_register_softmax)(hft_kernels *t);
void KFN(cpu_register_norm)(hft_kernels *t);
void KFN(cpu_register_embedding)(hft_kernels *t);
void KFN(cpu_register_dropout)(hft_kernels *t);
void KFN(cpu_register_xent)(hft_kernels *t);
void KFN(cpu_register_rope)(hft_kernels *t);
void KFN(cpu_register_attention)(hft_kernels *t);
void KFN(cpu_register_optim)(hft_kernels *t);
void KFN(cpu_register_round)(hft_kernels *t);

void KFN(cpu_copy)(const hft_copy_args *a);
void KFN(cpu_fill)(hft_dtype dt, const hft_kview *v, double value);
void KFN(cpu_scale_inplace)(hft_dtype dt, const hft_kview *v, double alpha);

const hft_kernels *KFN(cpu_table)(void);

#endif
