// The CUDA backend module (loaded at run time with dlopen, so hft starts where no GPU driver is). For
// now it answers how many devices there are and can run one kernel; the CUDA op table arrives with the
// CUDA backend issue and plugs into the same hft_kernels slots as the CPU table.
#include <cuda_runtime.h>
#include <stdio.h>

extern "C" {

// Number of usable devices, or -1 with the driver's message in `why` when none can be used.
int hft_cuda_device_count(char *why, int why_size) {
    int n = 0;
    cudaError_t err = cudaGetDeviceCount(&n);
    if (err != cudaSuccess) {
        snprintf(why, (size_t)why_size, "%s", cudaGetErrorString(err));
        return -1;
    }
    return n;
}

static __global__ void axpy_kernel(int n, float a, const float *x, float *y) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += a * x[i];
}

// y += a x on the device, from host arrays: the smoke test that the module, driver and device work.
int hft_cuda_axpy_host(int n, float a, const float *x, float *y, char *why, int why_size) {
    float *dx = nullptr, *dy = nullptr;
    size_t bytes = sizeof(float) * (size_t)n;
    cudaError_t err = cudaMalloc(&dx, bytes);
    if (err == cudaSuccess) err = cudaMalloc(&dy, bytes);
    if (err == cudaSuccess) err = cudaMemcpy(dx, x, bytes, cudaMemcpyHostToDevice);
    if (err == cudaSuccess) err = cudaMemcpy(dy, y, bytes, cudaMemcpyHostToDevice);
    if (err == cudaSuccess) {
        axpy_kernel<<<(n + 255) / 256, 256>>>(n, a, dx, dy);
        err = cudaGetLastError();
    }
    if (err == cudaSuccess) err = cudaMemcpy(y, dy, bytes, cudaMemcpyDeviceToHost);
    cudaFree(dx);
    cudaFree(dy);
    if (err != cudaSuccess) {
        snprintf(why, (size_t)why_size, "%s", cudaGetErrorString(err));
        return -1;
    }
    return 0;
}
}
