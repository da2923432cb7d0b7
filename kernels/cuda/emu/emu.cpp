// The host emulator's scheduler: a block's threads are ucontext fibers run round-robin until each reaches
// a barrier or returns; a barrier opens when every live thread of its scope (block or warp) has reached it.
#include "kernels/cuda/emu/emu.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

#include <vector>

namespace hft_emu {
namespace {

enum fiber_state { READY, AT_BLOCK_BARRIER, AT_WARP_BARRIER, DONE };

struct fiber {
    ucontext_t ctx;
    thread_state ts;
    fiber_state state;
    int linear; // thread index within the block
    char *stack;
};

const size_t kStackBytes = 256 * 1024; // kernels keep per-thread tiles in local arrays

struct block_run {
    std::vector<fiber> fibers;
    int n_threads;
    ucontext_t scheduler;
    int running = -1; // index of the fiber on the CPU, -1 for the scheduler
    void (*body)(void *);
    void *ctx;
    std::vector<unsigned char> smem;
    std::vector<uint64_t> slots[2]; // per-thread exchange slots (16 bytes each), double-buffered by parity
    std::vector<int> parity;        // per warp: which slot buffer the next exchange uses
    ~block_run() {                  // the stacks are kept from launch to launch; returned at exit
        for (fiber &f : fibers) free(f.stack);
    }
};

block_run run;
thread_state host_state; // what threadIdx reads outside a kernel (all zeros)

void fiber_entry() {
    fiber &f = run.fibers[(size_t)run.running];
    run.body(run.ctx);
    f.state = DONE;
    // returning switches to uc_link, the scheduler
}

void yield_with(fiber_state s) {
    fiber &f = run.fibers[(size_t)run.running];
    f.state = s;
    swapcontext(&f.ctx, &run.scheduler);
}

bool reverse_order() {
    static int v = -1;
    if (v < 0) {
        const char *e = getenv("HFT_EMU_ORDER");
        v = e && strcmp(e, "reverse") == 0;
    }
    return v == 1;
}

[[noreturn]] void die(const char *what) {
    fprintf(stderr, "hft CUDA emulator: %s\n", what);
    abort();
}

// Opens the barriers whose every live participant has arrived; false when nothing could move (deadlock).
bool open_barriers() {
    int live = 0, at_block = 0;
    for (int i = 0; i < run.n_threads; i++)
        if (run.fibers[(size_t)i].state != DONE) {
            live++;
            const fiber &f = run.fibers[(size_t)i];
            if (f.state == AT_BLOCK_BARRIER) at_block++;
        }
    bool opened = false;
    if (live > 0 && at_block == live) {
        for (int i = 0; i < run.n_threads; i++)
            if (run.fibers[(size_t)i].state == AT_BLOCK_BARRIER) run.fibers[(size_t)i].state = READY;
        return true;
    }
    int n_warps = (run.n_threads + 31) / 32;
    for (int w = 0; w < n_warps; w++) {
        int wl = 0, ww = 0;
        for (int i = w * 32; i < run.n_threads && i < w * 32 + 32; i++) {
            const fiber &f = run.fibers[(size_t)i];
            if (f.state != DONE) wl++;
            if (f.state == AT_WARP_BARRIER) ww++;
        }
        if (wl > 0 && ww == wl) {
            for (int i = w * 32; i < run.n_threads && i < w * 32 + 32; i++)
                run.fibers[(size_t)i].state = READY;
            opened = true;
        }
    }
    return opened;
}

void run_block(dim3 grid, dim3 block, uint3 block_idx) {
    int n = run.n_threads;
    for (int i = 0; i < n; i++) {
        fiber &f = run.fibers[(size_t)i];
        f.linear = i;
        f.state = READY;
        f.ts.block_idx = block_idx;
        f.ts.block_dim = uint3{block.x, block.y, block.z};
        f.ts.grid_dim = uint3{grid.x, grid.y, grid.z};
        f.ts.thread_idx = uint3{(unsigned)i % block.x, ((unsigned)i / block.x) % block.y,
                                (unsigned)i / (block.x * block.y)};
        getcontext(&f.ctx);
        f.ctx.uc_stack.ss_sp = f.stack;
        f.ctx.uc_stack.ss_size = kStackBytes;
        f.ctx.uc_link = &run.scheduler;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    for (int &p : run.parity) p = 0;
    bool rev = reverse_order();
    for (;;) {
        bool ran = false;
        for (int k = 0; k < n; k++) {
            int i = rev ? n - 1 - k : k;
            if (run.fibers[(size_t)i].state != READY) continue;
            run.running = i;
            swapcontext(&run.scheduler, &run.fibers[(size_t)i].ctx);
            run.running = -1;
            ran = true;
        }
        bool all_done = true;
        for (int i = 0; i < n; i++)
            if (run.fibers[(size_t)i].state != DONE) all_done = false;
        if (all_done) return;
        if (!open_barriers() && !ran)
            die("deadlock: threads wait at barriers that not all threads of their block or warp reach");
    }
}

} // namespace

thread_state &current() {
    if (run.running < 0) return host_state;
    return run.fibers[(size_t)run.running].ts;
}

void *dynamic_smem() {
    return run.smem.data();
}

void sync_block() {
    if (run.running < 0) die("__syncthreads outside a kernel");
    yield_with(AT_BLOCK_BARRIER);
}

void sync_warp() {
    if (run.running < 0) die("__syncwarp outside a kernel");
    yield_with(AT_WARP_BARRIER);
}

int lane_id() {
    return run.fibers[(size_t)run.running].linear % 32;
}

int warp_lanes() {
    int w = run.fibers[(size_t)run.running].linear / 32;
    int left = run.n_threads - w * 32;
    return left < 32 ? left : 32;
}

void exchange(const void *value, void *out, size_t bytes, int src) {
    if (bytes > 16) die("warp exchange of more than 16 bytes");
    int me = run.fibers[(size_t)run.running].linear;
    int warp = me / 32;
    int buf = run.parity[(size_t)warp];
    uint64_t *slots = run.slots[buf].data();
    memcpy(&slots[(size_t)me * 2], value, bytes);
    sync_warp();
    // every lane has published; the first lane past the barrier flips the parity for the next exchange
    if (run.parity[(size_t)warp] == buf) run.parity[(size_t)warp] = buf ^ 1;
    int lanes = warp_lanes();
    int s = src >= 0 && src < lanes ? warp * 32 + src : me;
    memcpy(out, &slots[(size_t)s * 2], bytes);
    // no second barrier is needed: the next exchange writes the other buffer, and the one after it cannot
    // start before every lane has passed the next exchange's barrier, i.e. has read this one
}

void run_grid(dim3 grid, dim3 block, size_t smem, void (*body)(void *), void *ctx) {
    if (run.running >= 0) die("a kernel launched from inside a kernel");
    int n = (int)(block.x * block.y * block.z);
    if (n <= 0 || n > 1024) die("block size outside 1..1024 threads");
    if (smem > 227 * 1024) die("more than 227 KiB of dynamic shared memory (an H100 block's limit)");
    if (grid.y > 65535 || grid.z > 65535) die("grid y or z above 65535");
    if ((int)run.fibers.size() < n) {
        size_t old = run.fibers.size();
        run.fibers.resize((size_t)n);
        for (size_t i = old; i < (size_t)n; i++) {
            run.fibers[i].stack = static_cast<char *>(malloc(kStackBytes));
            if (!run.fibers[i].stack) die("out of memory for fiber stacks");
        }
    }
    run.n_threads = n;
    run.body = body;
    run.ctx = ctx;
    run.running = -1;
    run.smem.assign(smem + 16, 0xA5); // garbage, not zeros: shared memory starts undefined
    for (auto &s : run.slots) s.assign((size_t)n * 2 + 64, 0);
    run.parity.assign((size_t)(n + 31) / 32, 0);
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) run_block(grid, block, uint3{x, y, z});
}

} // namespace hft_emu

unsigned __ballot_sync(unsigned mask, int predicate) {
    (void)mask;
    int lanes = hft_emu::warp_lanes();
    unsigned bits = 0;
    for (int l = 0; l < lanes; l++) {
        int p = 0;
        hft_emu::exchange(&predicate, &p, sizeof p, l);
        if (p) bits |= 1u << l;
    }
    return bits;
}

unsigned __umulhi(unsigned a, unsigned b) {
    return (unsigned)(((uint64_t)a * b) >> 32);
}

// The conversions are hft's own (kernels/dtype.c: round to nearest even, NaN kept), as CUDA's intrinsics
// round.
float __bfloat162float(__nv_bfloat16 h) {
    return hft_bf16_to_f32(h.x);
}

__nv_bfloat16 __float2bfloat16(float f) {
    return __nv_bfloat16{hft_f32_to_bf16(f)};
}

float __half2float(__half h) {
    return hft_f16_to_f32(h.x);
}

__half __float2half(float f) {
    return __half{hft_f32_to_f16(f)};
}

// ---------------------------------------------------------------- runtime API over host memory
namespace {
cudaError_t last_error = cudaSuccess;
}

// HFT_EMU_DEVICES=N pretends to have N devices (all of them this host's memory), so that data-parallel
// training with one device per rank can run on the emulator.
static int emulated_devices() {
    const char *e = getenv("HFT_EMU_DEVICES");
    int n = e ? atoi(e) : 1;
    return n >= 1 ? n : 1;
}
static int current_device = 0;
cudaError_t cudaGetDeviceCount(int *n) {
    *n = emulated_devices();
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int d) {
    if (d < 0 || d >= emulated_devices()) return last_error = cudaErrorInvalidDevice;
    current_device = d;
    return cudaSuccess;
}
cudaError_t cudaGetDevice(int *d) {
    *d = current_device;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp *p, int d) {
    if (d < 0 || d >= emulated_devices()) return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "hft CUDA emulator (host)");
    p->totalGlobalMem = (size_t)8 << 30;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 1;
    p->sharedMemPerBlock = 48 * 1024;
    p->sharedMemPerBlockOptin = 227 * 1024;
    return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes) {
    *free_bytes = *total_bytes = (size_t)8 << 30;
    return cudaSuccess;
}
cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = NULL;
    if (posix_memalign(p, 256, bytes ? bytes : 1) != 0) return last_error = cudaErrorMemoryAllocation;
    memset(*p, 0xA5, bytes); // device memory starts undefined, not zero
    return cudaSuccess;
}
cudaError_t cudaFree(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void **p, size_t bytes) {
    return cudaMalloc(p, bytes);
}
cudaError_t cudaFreeHost(void *p) {
    free(p);
    return cudaSuccess;
}
cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind) {
    (void)kind;
    if (bytes) memmove(dst, src, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    (void)s;
    return cudaMemcpy(dst, src, bytes, kind);
}
cudaError_t cudaMemset(void *p, int value, size_t bytes) {
    if (bytes) memset(p, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t s) {
    (void)s;
    return cudaMemset(p, value, bytes);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags) {
    (void)flags;
    *s = NULL;
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    (void)s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    (void)s;
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize(void) {
    return cudaSuccess;
}
// Work runs when it is queued, so every event has already happened.
cudaError_t cudaEventCreateWithFlags(cudaEvent_t *e, unsigned flags) {
    (void)flags;
    *e = NULL;
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    (void)e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    (void)e, (void)s;
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
    (void)e;
    return cudaSuccess;
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags) {
    (void)s, (void)e, (void)flags;
    return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError(void) {
    return last_error;
}
const char *cudaGetErrorString(cudaError_t e) {
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    }
    return "unknown error";
}
