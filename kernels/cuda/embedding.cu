// (filled in with the CUDA backend issue)
#include "kernels/cuda/cuda_internal.cuh"

void hft_cuda_register_embedding(hft_kernels *t) {
    (void)t;
}
