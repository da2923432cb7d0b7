// IEEE round-to-nearest products, quotients and square roots that nvcc will neither contract into an FMA
// nor approximate: the optimizer kernels (optim.cu, adafactor.cu) agree with the CPU bit for bit because
// every operation the CPU rounds on its own is spelled with one of these, and fmaf only where the CPU fuses.
#ifndef HFT_CUDA_IEEE_CUH
#define HFT_CUDA_IEEE_CUH

#include "kernels/cuda/compat.cuh"

namespace {

#if defined(__CUDACC__) && !defined(HFT_CUDA_EMULATE)
HFT_DEVICE float mul_rn(float a, float b) {
    return __fmul_rn(a, b);
}
HFT_DEVICE float div_rn(float a, float b) {
    return __fdiv_rn(a, b);
}
HFT_DEVICE float sqrt_rn(float a) {
    return __fsqrt_rn(a);
}
HFT_DEVICE double dsqrt_rn(double a) {
    return __dsqrt_rn(a);
}
#else
// The emulator's compiler targets x86-64 without FMA; the product is kept out of line all the same, so that
// a build with FMA enabled (gnu++17 contracts by default) cannot fuse it into the add that follows.
__attribute__((noinline, unused)) float mul_rn(float a, float b) {
    return a * b;
}
inline float div_rn(float a, float b) {
    return a / b;
}
inline float sqrt_rn(float a) {
    return sqrtf(a);
}
inline double dsqrt_rn(double a) {
    return sqrt(a);
}
#endif

} // namespace

#endif
