// The CUDA kernels compile two ways from the same source: with nvcc for the GPU, and with a C++ compiler
// against a host emulator (kernels/cuda/emu/emu.h) that runs every thread of a block as a fiber, with real
// __syncthreads and warp shuffles. The emulated module lets CI run each kernel against its CPU twin on a
// machine without a GPU; the GPU run then checks only what the emulator cannot see (true concurrency,
// speed). Kernel files use CUDA syntax except for the few spellings below, which both builds define.
//
//   HFT_LAUNCH(grid, block, smem_bytes, stream, kernel)(args...)   instead of kernel<<<...>>>(args...)
//   HFT_DYNAMIC_SMEM(type, name);                                  instead of extern __shared__ type name[]
//   HFT_UNROLL                                                     instead of #pragma unroll
//   hft_minf / hft_maxf / hft_min / hft_max                        instead of min / max
//   hft_rsqrtf                                                     instead of rsqrtf
//   hft_to_f32(x), hft_from_f32<T>(f)                              loads and stores of float, bf16, f16
#ifndef HFT_CUDA_COMPAT_CUH
#define HFT_CUDA_COMPAT_CUH

#include <stdint.h>

#if defined(__CUDACC__) && !defined(HFT_CUDA_EMULATE)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define HFT_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#define HFT_DYNAMIC_SMEM(type, name)                                                                         \
    extern __shared__ __align__(16) unsigned char hft_dynamic_smem_[];                                       \
    type *name = reinterpret_cast<type *>(hft_dynamic_smem_)
#define HFT_UNROLL _Pragma("unroll")
#define HFT_DEVICE __device__ __forceinline__
__device__ __forceinline__ float hft_rsqrtf(float x) {
    return rsqrtf(x);
}

#else

#include "kernels/cuda/emu/emu.h"

#define HFT_LAUNCH(grid, block, smem, stream, ...)                                                           \
    ::hft_emu::make_launch((grid), (block), (smem), __VA_ARGS__)
#define HFT_DYNAMIC_SMEM(type, name) type *name = reinterpret_cast<type *>(::hft_emu::dynamic_smem())
#define HFT_UNROLL
#define HFT_DEVICE inline
inline float hft_rsqrtf(float x) {
    return 1.0f / sqrtf(x);
}

#endif

typedef __nv_bfloat16 hft_bf16_t;
typedef __half hft_f16_t;

template <typename T> HFT_DEVICE T hft_min(T a, T b) {
    return a < b ? a : b;
}
template <typename T> HFT_DEVICE T hft_max(T a, T b) {
    return a > b ? a : b;
}
HFT_DEVICE float hft_minf(float a, float b) {
    return fminf(a, b);
}
HFT_DEVICE float hft_maxf(float a, float b) {
    return fmaxf(a, b);
}

HFT_DEVICE float hft_to_f32(float x) {
    return x;
}
HFT_DEVICE float hft_to_f32(hft_bf16_t x) {
    return __bfloat162float(x);
}
HFT_DEVICE float hft_to_f32(hft_f16_t x) {
    return __half2float(x);
}
template <typename T> HFT_DEVICE T hft_from_f32(float x);
template <> HFT_DEVICE float hft_from_f32<float>(float x) {
    return x;
}
template <> HFT_DEVICE hft_bf16_t hft_from_f32<hft_bf16_t>(float x) {
    return __float2bfloat16(x); // round to nearest even, as torch
}
template <> HFT_DEVICE hft_f16_t hft_from_f32<hft_f16_t>(float x) {
    return __float2half(x);
}

#endif
