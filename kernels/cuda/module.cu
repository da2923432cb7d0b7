// The CUDA module's entry point and its device API: one compute stream per process (on the device chosen
// with set_device), the first error of a queued kernel kept until the next synchronize, scratch buffers
// that grow and are reused (no cudaMalloc in a steady step), and the kernel table assembled from the
// files' register functions.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

const hft_cuda_host *hft_cuda_host_api;

namespace {

struct module_state {
    int device = -1;
    cudaStream_t stream = nullptr;
    bool deterministic = true;
    hft_status failed = HFT_OK; // the first failure since the last synchronize
    char why[512] = "";
    void *scratch[HFT_SCRATCH_COUNT] = {};
    size_t scratch_bytes[HFT_SCRATCH_COUNT] = {};
    // Uploads go through pinned slots, each reused once its last copy has run (its event): see upload.
    char *stage = nullptr;
    cudaEvent_t stage_done[16] = {};
    int stage_next = 0;
};
module_state st;

constexpr int STAGE_SLOTS = 16;
constexpr size_t STAGE_SLOT_BYTES = (size_t)1 << 20;

hft_status report(hft_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
hft_status report(hft_status s, const char *fmt, ...) {
    char buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return hft_cuda_host_api->error(s, "%s", buf);
}

hft_status cuda_status(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return HFT_OK;
    if (e == cudaErrorMemoryAllocation)
        return report(HFT_ENOMEM, "CUDA: %s: out of device memory (%s)", what, cudaGetErrorString(e));
    return report(HFT_EDEVICE, "CUDA: %s: %s", what, cudaGetErrorString(e));
}

// The kept failure, reported once and cleared.
hft_status take_failure(void) {
    if (st.failed == HFT_OK) return HFT_OK;
    hft_status s = st.failed;
    st.failed = HFT_OK;
    return report(s, "%s", st.why);
}

hft_status ensure_stream(void) {
    if (st.device < 0) {
        cudaError_t e = cudaSetDevice(0);
        if (e != cudaSuccess) return cuda_status(e, "selecting device 0");
        st.device = 0;
    }
    if (!st.stream) {
        cudaError_t e = cudaStreamCreateWithFlags(&st.stream, cudaStreamNonBlocking);
        if (e != cudaSuccess) return cuda_status(e, "creating the compute stream");
    }
    return HFT_OK;
}

void drop_stage(void) {
    if (!st.stage) return;
    for (int i = 0; i < STAGE_SLOTS; i++) (void)cudaEventDestroy(st.stage_done[i]);
    (void)cudaFreeHost(st.stage);
    st.stage = nullptr;
}

// A host-to-device copy of at most STAGE_SLOT_BYTES from pageable memory without the host waiting: the
// bytes go into the next pinned slot (after that slot's previous copy has run, long since as a rule), and
// the DMA from it is queued on the compute stream. Not a copy stream of its own: the memory a batch lands in
// is arena memory that the previous step's queued kernels may still read, so its copy must follow them in
// any case. false (nothing done) when the copy is larger or pinned memory cannot be had: the caller copies
// and waits.
bool upload(void *dst, const void *src, size_t bytes, hft_status *status) {
    *status = HFT_OK;
    if (bytes > STAGE_SLOT_BYTES) return false;
    if (!st.stage) {
        void *p = nullptr;
        if (cudaMallocHost(&p, STAGE_SLOT_BYTES * STAGE_SLOTS) != cudaSuccess) {
            (void)cudaGetLastError();
            return false;
        }
        int made = 0;
        while (made < STAGE_SLOTS &&
               cudaEventCreateWithFlags(&st.stage_done[made], cudaEventDisableTiming) == cudaSuccess)
            made++;
        if (made < STAGE_SLOTS) {
            (void)cudaGetLastError();
            while (made > 0) (void)cudaEventDestroy(st.stage_done[--made]);
            (void)cudaFreeHost(p);
            return false;
        }
        st.stage = (char *)p;
    }
    int slot = st.stage_next;
    st.stage_next = (slot + 1) % STAGE_SLOTS;
    char *pinned = st.stage + (size_t)slot * STAGE_SLOT_BYTES;
    cudaError_t e = cudaEventSynchronize(st.stage_done[slot]);
    if (e == cudaSuccess) {
        memcpy(pinned, src, bytes);
        e = cudaMemcpyAsync(dst, pinned, bytes, cudaMemcpyHostToDevice, st.stream);
    }
    if (e == cudaSuccess) e = cudaEventRecord(st.stage_done[slot], st.stream);
    *status = cuda_status(e, "uploading to the device");
    return true;
}

int dev_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;
    return n;
}

hft_status dev_set(int index) {
    int n = dev_count();
    if (index < 0 || index >= n)
        return report(HFT_EINVAL, "CUDA device %d asked for, but this machine has %d (cuda:0 .. cuda:%d)",
                      index, n, n - 1);
    if (index == st.device) return HFT_OK;
    if (st.stream) {
        (void)cudaStreamSynchronize(st.stream);
        (void)cudaStreamDestroy(st.stream);
        st.stream = nullptr;
    }
    drop_stage();                                 // its events belong to the old device
    for (int i = 0; i < HFT_SCRATCH_COUNT; i++) { // scratch belongs to the old device
        if (st.scratch[i]) (void)cudaFree(st.scratch[i]);
        st.scratch[i] = nullptr;
        st.scratch_bytes[i] = 0;
    }
    cudaError_t e = cudaSetDevice(index);
    if (e != cudaSuccess) return cuda_status(e, "selecting the device");
    st.device = index;
    return ensure_stream();
}

hft_status dev_describe(int index, char *buf, size_t size) {
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, index);
    if (e != cudaSuccess) return cuda_status(e, "reading the device's properties");
    snprintf(buf, size, "%s, sm_%d%d, %.1f GiB", p.name, p.major, p.minor,
             (double)p.totalGlobalMem / (1u << 30));
    return HFT_OK;
}

void *dev_alloc(size_t bytes) {
    if (ensure_stream() != HFT_OK) return nullptr;
    void *p = nullptr;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        size_t free_b = 0, total_b = 0;
        (void)cudaGetLastError();
        (void)cudaMemGetInfo(&free_b, &total_b);
        report(HFT_ENOMEM, "CUDA: cannot allocate %.1f MiB on device %d (%.1f MiB free of %.1f MiB): %s",
               (double)bytes / (1 << 20), st.device, (double)free_b / (1 << 20), (double)total_b / (1 << 20),
               cudaGetErrorString(e));
        return nullptr;
    }
    return p;
}

void dev_free(void *p) {
    if (p) (void)cudaFree(p);
}

void *dev_alloc_pinned(size_t bytes) {
    void *p = nullptr;
    cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cuda_status(e, "allocating pinned host memory");
        return nullptr;
    }
    return p;
}

void dev_free_pinned(void *p) {
    if (p) (void)cudaFreeHost(p);
}

hft_status dev_copy(void *dst, const void *src, size_t bytes, hft_copy_kind kind) {
    HFT_TRY(ensure_stream());
    hft_status staged = HFT_OK; // batches, positions, scalars: through pinned memory, the host goes on
    if (kind == HFT_COPY_H2D && upload(dst, src, bytes, &staged)) return staged;
    cudaMemcpyKind k = kind == HFT_COPY_H2D   ? cudaMemcpyHostToDevice
                       : kind == HFT_COPY_D2H ? cudaMemcpyDeviceToHost
                                              : cudaMemcpyDeviceToDevice;
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, k, st.stream);
    if (e != cudaSuccess) return cuda_status(e, "copying");
    // a pageable host source or destination must not be touched before the copy has happened
    if (kind != HFT_COPY_D2D) {
        e = cudaStreamSynchronize(st.stream);
        if (e != cudaSuccess) return cuda_status(e, "waiting for a copy");
        return take_failure();
    }
    return HFT_OK;
}

hft_status dev_zero(void *p, size_t bytes) {
    HFT_TRY(ensure_stream());
    return cuda_status(cudaMemsetAsync(p, 0, bytes, st.stream), "zeroing device memory");
}

hft_status dev_synchronize(void) {
    HFT_TRY(ensure_stream());
    cudaError_t e = cudaStreamSynchronize(st.stream);
    if (e != cudaSuccess) return cuda_status(e, "a queued kernel failed");
    return take_failure();
}

void dev_set_deterministic(bool on) {
    st.deterministic = on;
}

hft_status dev_mem_info(size_t *free_bytes, size_t *total_bytes) {
    HFT_TRY(ensure_stream());
    return cuda_status(cudaMemGetInfo(free_bytes, total_bytes), "reading the device's memory");
}

void *dev_compute_stream(void) {
#ifdef HFT_CUDA_EMULATE
    return nullptr; // the emulator runs each kernel at once: nothing to order after
#else
    return ensure_stream() == HFT_OK ? (void *)st.stream : nullptr;
#endif
}

const hft_device_api device_api = {
    dev_count,          dev_set,          dev_describe,          dev_alloc,
    dev_free,           dev_alloc_pinned, dev_free_pinned,       dev_copy,
    dev_zero,           dev_synchronize,  dev_set_deterministic, dev_mem_info,
    dev_compute_stream,
};

hft_kernels table;

} // namespace

cudaStream_t hft_cuda_stream(void) {
    (void)ensure_stream();
    return st.stream;
}

bool hft_cuda_deterministic(void) {
    return st.deterministic;
}

void hft_cuda_fail(hft_status status, const char *where, const char *fmt, ...) {
    if (st.failed != HFT_OK) return; // the first failure explains the rest
    st.failed = status;
    int n = snprintf(st.why, sizeof st.why, "CUDA %s: ", where);
    if (n < 0 || (size_t)n >= sizeof st.why) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st.why + n, sizeof st.why - (size_t)n, fmt, ap);
    va_end(ap);
}

void hft_cuda_check_launch(const char *where) {
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) hft_cuda_fail(HFT_EDEVICE, where, "launch failed: %s", cudaGetErrorString(e));
}

void *hft_cuda_scratch(hft_cuda_scratch_id id, size_t bytes) {
    if (bytes <= st.scratch_bytes[id]) return st.scratch[id];
    if (st.scratch[id]) {
        // the old buffer may still be read by queued kernels
        (void)cudaStreamSynchronize(st.stream);
        (void)cudaFree(st.scratch[id]);
    }
    st.scratch[id] = nullptr;
    st.scratch_bytes[id] = 0;
    size_t grown = bytes + bytes / 4;
    if (cudaMalloc(&st.scratch[id], grown) != cudaSuccess) {
        (void)cudaGetLastError();
        st.scratch[id] = nullptr;
        hft_cuda_fail(HFT_ENOMEM, "scratch", "cannot allocate %.1f MiB of scratch",
                      (double)grown / (1 << 20));
        return nullptr;
    }
    st.scratch_bytes[id] = grown;
    return st.scratch[id];
}

extern "C" __attribute__((visibility("default"))) const hft_kernels *
hft_cuda_module_open(const hft_cuda_host *host) {
    if (!host || host->abi != HFT_CUDA_MODULE_ABI) return nullptr;
    hft_cuda_host_api = host;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        report(HFT_EDEVICE, "CUDA: no usable GPU: %s", cudaGetErrorString(e));
        return nullptr;
    }
    if (n == 0) {
        report(HFT_EDEVICE, "CUDA: the driver sees no GPU");
        return nullptr;
    }
    if (!table.name) {
#ifdef HFT_CUDA_EMULATE
        table.name = "cuda-emulated";
#else
        table.name = "cuda";
#endif
        table.device = HFT_CUDA;
        table.dev = &device_api;
        hft_cuda_register_gemm(&table);
        hft_cuda_register_eltwise(&table);
        hft_cuda_register_softmax(&table);
        hft_cuda_register_norm(&table);
        hft_cuda_register_embedding(&table);
        hft_cuda_register_dropout(&table);
        hft_cuda_register_xent(&table);
        hft_cuda_register_rope(&table);
        hft_cuda_register_attention(&table);
        hft_cuda_register_optim(&table);
    }
    return &table;
}
