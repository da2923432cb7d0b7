/* The process-wide runtime state, in one place: the thread count shared by OpenBLAS and hft's loops,
 * and the CPU's ISA path. Nothing else in hft keeps global mutable state. */
#include "kernels/kernels.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int openblas_get_parallel(void);
extern void openblas_set_num_threads(int n);
extern char *openblas_get_config(void);

static int thread_count = 0;
static bool runtime_ready = false;

void hft_threads_set(int n) {
    if (n < 1) n = 1;
    thread_count = n;
    /* OpenBLAS stays single-threaded and hft splits GEMMs itself (gemm.c). In the OpenMP build this call
     * also sets OpenMP's thread count, so it must come first. */
    openblas_set_num_threads(1);
    omp_set_num_threads(n);
}

int hft_threads_get(void) {
    return thread_count > 0 ? thread_count : omp_get_max_threads();
}

hft_status hft_runtime_init(void) {
    if (runtime_ready) return HFT_OK;
    /* OpenBLAS's pthread build keeps its own pool, which would spin against OpenMP's on few cores. */
    if (openblas_get_parallel() != 2) {
        return hft_error(
            HFT_EUNSUPPORTED,
            "the OpenBLAS loaded is not the OpenMP build (openblas_get_parallel() = %d, config: %s);"
            " install libopenblas-openmp-dev and rebuild, so the binary's RUNPATH finds it",
            openblas_get_parallel(), openblas_get_config());
    }
    int n = omp_get_max_threads(); /* honours OMP_NUM_THREADS */
    const char *env = getenv("OMP_NUM_THREADS");
    if (!env || !*env) n = omp_get_num_procs();
    hft_threads_set(n);
    runtime_ready = true;
    return HFT_OK;
}

static hft_isa detected_isa(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("fma"))
        return HFT_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return HFT_ISA_AVX2;
    return HFT_ISA_GENERIC;
}

hft_isa hft_cpu_isa(void) {
    static int cached = -1;
    if (cached < 0) {
        hft_isa isa = detected_isa();
        const char *env = getenv("HFT_ISA");
        if (env && *env) {
            for (int i = 0; i < HFT_ISA_COUNT; i++)
                if (strcmp(env, hft_isa_name((hft_isa)i)) == 0 && i < (int)isa) isa = (hft_isa)i;
        }
        cached = (int)isa;
    }
    return (hft_isa)cached;
}

const char *hft_isa_name(hft_isa isa) {
    static const char *names[HFT_ISA_COUNT] = {"generic", "avx2", "avx512"};
    return (unsigned)isa < HFT_ISA_COUNT ? names[isa] : "?";
}

bool hft_cpu_has_avx512_bf16(void) {
    __builtin_cpu_init();
    return hft_cpu_isa() == HFT_ISA_AVX512 && __builtin_cpu_supports("avx512bf16");
}
