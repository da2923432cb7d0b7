/* The CPU kernel table of this ISA build: every kernel file registers its entries here. */
#include "kernels/cpu/cpu_internal.h"

static hft_kernels table;
static int table_ready;

const hft_kernels *KFN(cpu_table)(void) {
    if (!table_ready) {
        table.name = "cpu-" HFT_STR(HFT_ISA_SUFFIX);
        table.device = HFT_CPU;
        KFN(cpu_register_gemm)(&table);
        KFN(cpu_register_eltwise)(&table);
        KFN(cpu_register_softmax)(&table);
        KFN(cpu_register_norm)(&table);
        KFN(cpu_register_embedding)(&table);
        KFN(cpu_register_dropout)(&table);
        KFN(cpu_register_xent)(&table);
        KFN(cpu_register_rope)(&table);
        KFN(cpu_register_attention)(&table);
        KFN(cpu_register_optim)(&table);
        KFN(cpu_register_round)(&table);
        table_ready = 1;
    }
    return &table;
}
