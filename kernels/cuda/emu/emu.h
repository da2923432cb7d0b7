// A host emulator for hft's CUDA kernels: the same .cu sources, compiled as C++ with HFT_CUDA_EMULATE,
// run here. Blocks run one after another; the threads of a block run as fibers on one OS thread and
// switch only at __syncthreads, __syncwarp and warp collectives, which therefore mean what they mean on
// a GPU (a thread that reads shared memory another thread writes without a barrier reads the old value,
// and a barrier not reached by every thread is reported as a deadlock). __shared__ becomes `static`:
// one copy shared by the block's fibers. HFT_EMU_ORDER=reverse runs the fibers of each block in reverse
// order, which exposes races that the forward order hides. Device memory is host memory.
//
// Not modelled: timing, memory coalescing, bank conflicts, register limits, concurrent blocks (a kernel
// whose blocks wait on one another would deadlock on a GPU but finish here).
#ifndef HFT_CUDA_EMU_H
#define HFT_CUDA_EMU_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <tuple>
#include <utility>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __shared__   static
#define __constant__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace hft_emu {

struct thread_state {
    uint3 thread_idx, block_idx, block_dim, grid_dim;
};
thread_state &current();
void *dynamic_smem();
void sync_block();
void sync_warp();
// Every lane of the calling thread's warp publishes `bytes` of `value`, then each reads lane `src` (its
// own value when `src` is outside the warp); two warp barriers around the exchange.
void exchange(const void *value, void *out, size_t bytes, int src);
int lane_id();
int warp_lanes(); // lanes present in the calling thread's warp (a block's last warp may be partial)

void run_grid(dim3 grid, dim3 block, size_t smem, void (*body)(void *), void *ctx);

template <typename... P> struct launch {
    dim3 grid, block;
    size_t smem;
    void (*kernel)(P...);
    template <typename... A> void operator()(A... a) const {
        std::tuple<P...> args(static_cast<P>(a)...);
        struct ctx_t {
            void (*kernel)(P...);
            std::tuple<P...> *args;
        } ctx{kernel, &args};
        run_grid(
            grid, block, smem,
            [](void *c) {
                ctx_t *x = static_cast<ctx_t *>(c);
                std::apply(x->kernel, *x->args);
            },
            &ctx);
    }
};
template <typename... P> launch<P...> make_launch(dim3 grid, dim3 block, size_t smem, void (*kernel)(P...)) {
    return launch<P...>{grid, block, smem, kernel};
}

} // namespace hft_emu

#define threadIdx (::hft_emu::current().thread_idx)
#define blockIdx  (::hft_emu::current().block_idx)
#define blockDim  (::hft_emu::current().block_dim)
#define gridDim   (::hft_emu::current().grid_dim)
#define warpSize  32

inline void __syncthreads() {
    ::hft_emu::sync_block();
}
inline void __syncwarp(unsigned mask = 0xffffffffu) {
    (void)mask;
    ::hft_emu::sync_warp();
}
template <typename T> T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
    (void)mask;
    int lane = ::hft_emu::lane_id();
    T out;
    ::hft_emu::exchange(&v, &out, sizeof(T), (lane / width) * width + src % width);
    return out;
}
template <typename T> T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
    (void)mask;
    int lane = ::hft_emu::lane_id();
    int src = lane ^ lane_mask;
    if (src / width != lane / width) src = lane;
    T out;
    ::hft_emu::exchange(&v, &out, sizeof(T), src);
    return out;
}
template <typename T> T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    int lane = ::hft_emu::lane_id();
    int src = (lane % width) + (int)delta < width ? lane + (int)delta : lane;
    T out;
    ::hft_emu::exchange(&v, &out, sizeof(T), src);
    return out;
}
template <typename T> T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
    (void)mask;
    int lane = ::hft_emu::lane_id();
    int src = (lane % width) >= (int)delta ? lane - (int)delta : lane;
    T out;
    ::hft_emu::exchange(&v, &out, sizeof(T), src);
    return out;
}
unsigned __ballot_sync(unsigned mask, int predicate);
inline int __any_sync(unsigned mask, int predicate) {
    return __ballot_sync(mask, predicate) != 0;
}
inline int __all_sync(unsigned mask, int predicate) {
    unsigned lanes = (unsigned)::hft_emu::warp_lanes();
    unsigned full = lanes >= 32 ? 0xffffffffu : ((1u << lanes) - 1u);
    return (__ballot_sync(mask, predicate) & full) == full;
}

// One OS thread runs every fiber, so atomics are plain read-modify-writes.
template <typename T> T atomicAdd(T *p, T v) {
    T old = *p;
    *p = old + v;
    return old;
}
template <typename T> T atomicMax(T *p, T v) {
    T old = *p;
    *p = old > v ? old : v;
    return old;
}
template <typename T> T atomicMin(T *p, T v) {
    T old = *p;
    *p = old < v ? old : v;
    return old;
}
template <typename T> T atomicExch(T *p, T v) {
    T old = *p;
    *p = v;
    return old;
}
template <typename T> T atomicCAS(T *p, T cmp, T v) {
    T old = *p;
    if (old == cmp) *p = v;
    return old;
}
inline void __threadfence() {}
inline void __threadfence_block() {}

// ---------------------------------------------------------------- math intrinsics
inline float __expf(float x) {
    return expf(x);
}
inline float __logf(float x) {
    return logf(x);
}
inline float __fdividef(float a, float b) {
    return a / b;
}
inline float __saturatef(float x) {
    return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
}
inline unsigned __float_as_uint(float x) {
    unsigned u;
    memcpy(&u, &x, 4);
    return u;
}
inline float __uint_as_float(unsigned u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}
inline int __float_as_int(float x) {
    int u;
    memcpy(&u, &x, 4);
    return u;
}
inline float __int_as_float(int u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}
template <typename T> T __ldg(const T *p) {
    return *p;
}
unsigned __umulhi(unsigned a, unsigned b);

// ---------------------------------------------------------------- bf16 and f16 (storage types)
struct __nv_bfloat16 {
    uint16_t x;
};
struct __half {
    uint16_t x;
};
float __bfloat162float(__nv_bfloat16 h);
__nv_bfloat16 __float2bfloat16(float f); // round to nearest even, NaN kept
float __half2float(__half h);
__half __float2half(float f);

// ---------------------------------------------------------------- the runtime API the module uses
typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDevice = 101,
} cudaError_t;
typedef enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
} cudaMemcpyKind;
typedef struct hft_emu_stream *cudaStream_t;
typedef struct hft_emu_event *cudaEvent_t;
struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
    size_t sharedMemPerBlock, sharedMemPerBlockOptin;
};
#define cudaStreamNonBlocking 1
#define cudaHostAllocDefault  0

cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaSetDevice(int d);
cudaError_t cudaGetDevice(int *d);
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaMalloc(void **p, size_t bytes);
cudaError_t cudaFree(void *p);
cudaError_t cudaMallocHost(void **p, size_t bytes);
cudaError_t cudaFreeHost(void *p);
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s);
cudaError_t cudaMemset(void *p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
#define cudaEventDisableTiming 2
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
const char *cudaGetErrorString(cudaError_t e);
template <typename F> cudaError_t cudaFuncSetAttribute(F f, int attr, int value) {
    (void)f, (void)attr, (void)value;
    return cudaSuccess;
}
#define cudaFuncAttributeMaxDynamicSharedMemorySize 8

#endif
