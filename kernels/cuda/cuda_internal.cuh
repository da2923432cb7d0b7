// What the CUDA kernel files share: each file registers its entries in the table (as the CPU files do),
// launches on the module's compute stream, and reports launch failures through the module's sticky error.
#ifndef HFT_CUDA_INTERNAL_CUH
#define HFT_CUDA_INTERNAL_CUH

#include "kernels/cuda/compat.cuh"
#include "kernels/kernels.h"

// The host's error reporter and Philox (set when the module opens).
extern const hft_cuda_host *hft_cuda_host_api;

// The compute stream of the current device; every kernel of the table is queued on it.
cudaStream_t hft_cuda_stream(void);
// Whether deterministic kernels were asked for (hft_device_api.set_deterministic; default true).
bool hft_cuda_deterministic(void);
// Keeps the first error (a failed launch, an unsupported argument) until the next synchronize reports it;
// `where` names the kernel. Table entries return void, so this is how they fail.
void hft_cuda_fail(hft_status status, const char *where, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
// After a launch: records cudaGetLastError (nothing under the emulator, which runs the kernel at once).
void hft_cuda_check_launch(const char *where);
// A device buffer of at least `bytes` owned by the module (grown, never shrunk, freed at exit): for kernels
// that need scratch the table's interface does not pass (GEMM workspace, partial sums). One per purpose.
typedef enum hft_cuda_scratch_id {
    HFT_SCRATCH_GEMM = 0,
    HFT_SCRATCH_REDUCE,
    HFT_SCRATCH_OPTIM,
    HFT_SCRATCH_COUNT
} hft_cuda_scratch_id;
void *hft_cuda_scratch(hft_cuda_scratch_id id, size_t bytes);

void hft_cuda_register_gemm(hft_kernels *t);
void hft_cuda_register_eltwise(hft_kernels *t); // map, reduce, copy, fill, round_to, sum, sumsq
void hft_cuda_register_softmax(hft_kernels *t);
void hft_cuda_register_norm(hft_kernels *t);
void hft_cuda_register_embedding(hft_kernels *t);
void hft_cuda_register_dropout(hft_kernels *t);
void hft_cuda_register_xent(hft_kernels *t);
void hft_cuda_register_rope(hft_kernels *t);
void hft_cuda_register_attention(hft_kernels *t);
void hft_cuda_register_optim(hft_kernels *t);
// Adafactor's step of one parameter (adafactor.cu), which optim.cu registers.
void hft_cuda_adafactor_f32(const hft_adafactor_args *a);

// Grid size for n elements at `threads` per block, capped so a grid-stride loop covers the rest.
static inline unsigned hft_cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    if (b < 1) b = 1;
    if (b > 65535 * 8) b = 65535 * 8;
    return (unsigned)b;
}

#endif
