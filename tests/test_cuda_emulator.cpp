// The host emulator itself: shared memory and __syncthreads, warp shuffles of each kind, a partial last
// warp, 3-D blocks and grids, dynamic shared memory. The op tests rely on these meaning what they mean
// on a GPU.
#include <stdio.h>

#include "kernels/cuda/compat.cuh"

static int failures;
#define EXPECT(cond, ...)                                                                                    \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            failures++;                                                                                      \
            fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);                                       \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
        }                                                                                                    \
    } while (0)

// Tree sum in shared memory: every step needs the barrier before it.
__global__ void block_sum(const float *x, float *out, int n) {
    __shared__ float s[256];
    int t = (int)threadIdx.x;
    int i = (int)(blockIdx.x * blockDim.x) + t;
    s[t] = i < n ? x[i] : 0.0f;
    __syncthreads();
    for (int w = (int)blockDim.x / 2; w > 0; w /= 2) {
        if (t < w) s[t] += s[t + w];
        __syncthreads();
    }
    if (t == 0) out[blockIdx.x] = s[0];
}

__global__ void warp_ops(int *xor_out, int *down_out, int *idx_out, unsigned *ballot_out) {
    int t = (int)threadIdx.x;
    int v = t + 1;
    for (int m = 16; m > 0; m /= 2) v += __shfl_xor_sync(0xffffffffu, v, m);
    xor_out[t] = v; // every lane of a full warp: 1 + 2 + ... + 32 = 528
    int d = __shfl_down_sync(0xffffffffu, t * 10, 3);
    down_out[t] = d;
    idx_out[t] = __shfl_sync(0xffffffffu, t * 7, 5);
    unsigned b = __ballot_sync(0xffffffffu, t % 3 == 0);
    if (t % 32 == 0) ballot_out[t / 32] = b;
}

__global__ void dims(int *out) {
    HFT_DYNAMIC_SMEM(int, scratch);
    int t = (int)(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
    scratch[t] = t;
    __syncthreads();
    int n = (int)(blockDim.x * blockDim.y * blockDim.z);
    int b = (int)(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
    out[b * n + t] = scratch[n - 1 - t] + 1000 * b;
}

int main() {
    const int n = 1000;
    float x[n], out[4];
    double want[4] = {0, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        x[i] = (float)(i % 17) - 8.0f;
        want[i / 256] += x[i];
    }
    HFT_LAUNCH(4, 256, 0, nullptr, block_sum)(x, out, n);
    for (int b = 0; b < 4; b++) EXPECT(out[b] == (float)want[b], "block %d: %g want %g", b, out[b], want[b]);

    int xo[40], dn[40], ix[40];
    unsigned ballot[2];
    HFT_LAUNCH(1, 40, 0, nullptr, warp_ops)(xo, dn, ix, ballot);
    for (int t = 0; t < 32; t++) {
        EXPECT(xo[t] == 528, "xor lane %d: %d", t, xo[t]);
        EXPECT(dn[t] == (t + 3 < 32 ? (t + 3) * 10 : t * 10), "down lane %d: %d", t, dn[t]);
        EXPECT(ix[t] == 35, "idx lane %d: %d", t, ix[t]);
    }
    // the partial warp (lanes 32..39): lanes beyond the block read their own value
    EXPECT(ix[33] == 37 * 7, "partial warp idx: %d", ix[33]);
    EXPECT(dn[38] == 380, "partial warp down past the end: %d", dn[38]);
    unsigned want_ballot = 0;
    for (int l = 0; l < 32; l++)
        if (l % 3 == 0) want_ballot |= 1u << l;
    EXPECT(ballot[0] == want_ballot, "ballot %08x want %08x", ballot[0], want_ballot);

    int d[2 * 3 * 24];
    HFT_LAUNCH(dim3(2, 3), dim3(4, 3, 2), 24 * sizeof(int), nullptr, dims)(d);
    for (int b = 0; b < 6; b++)
        for (int t = 0; t < 24; t++)
            EXPECT(d[b * 24 + t] == 23 - t + 1000 * b, "dims block %d thread %d: %d", b, t, d[b * 24 + t]);

    printf("%s: CUDA emulator self-test\n", failures ? "FAIL" : "ok");
    return failures != 0;
}
