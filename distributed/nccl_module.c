/* The NCCL module (libhft_nccl.so): NCCL communicators for GPU buffers, loaded at run time by
 * comm_nccl.c so that hft starts on machines without a GPU driver. A plain C ABI: every call returns 0 or
 * -1 with the library's text in `why`. MPI stays outside: the caller broadcasts the unique id. */
#include <cuda_runtime.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

typedef struct nccl_handle {
    ncclComm_t comm;
    cudaStream_t stream;
    cudaEvent_t last;
    cudaEvent_t ready; /* recorded on the compute stream: the collectives wait for it on the device */
    int device;
} nccl_handle;

#define CUDA_OR_FAIL(expr)                                                                                   \
    do {                                                                                                     \
        cudaError_t e_ = (expr);                                                                             \
        if (e_ != cudaSuccess) {                                                                             \
            snprintf(why, (size_t)why_size, "%s: %s", #expr, cudaGetErrorString(e_));                        \
            return -1;                                                                                       \
        }                                                                                                    \
    } while (0)
#define NCCL_OR_FAIL(expr)                                                                                   \
    do {                                                                                                     \
        ncclResult_t r_ = (expr);                                                                            \
        if (r_ != ncclSuccess) {                                                                             \
            snprintf(why, (size_t)why_size, "%s: %s", #expr, ncclGetErrorString(r_));                        \
            return -1;                                                                                       \
        }                                                                                                    \
    } while (0)

int hft_nccl_device_count(char *why, int why_size);
int hft_nccl_unique_id(void *id, int id_size, char *why, int why_size);
int hft_nccl_open(const void *id, int nranks, int rank, int device, void **out, char *why, int why_size);
int hft_nccl_is_device_buffer(void *h, const void *buf);
int hft_nccl_start(void *h, int kind, void *buf, long long count, int dtype, int root, void *after, char *why,
                   int why_size);
int hft_nccl_query(void *h, int *done, char *why, int why_size);
void hft_nccl_close(void *h, int abort);

int hft_nccl_device_count(char *why, int why_size) {
    int n = 0;
    CUDA_OR_FAIL(cudaGetDeviceCount(&n));
    return n;
}

int hft_nccl_unique_id(void *id, int id_size, char *why, int why_size) {
    if (id_size < (int)sizeof(ncclUniqueId)) {
        snprintf(why, (size_t)why_size, "unique id buffer of %d bytes; NCCL needs %zu", id_size,
                 sizeof(ncclUniqueId));
        return -1;
    }
    ncclUniqueId u;
    NCCL_OR_FAIL(ncclGetUniqueId(&u));
    memcpy(id, &u, sizeof u);
    return 0;
}

int hft_nccl_open(const void *id, int nranks, int rank, int device, void **out, char *why, int why_size) {
    *out = NULL;
    nccl_handle *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(why, (size_t)why_size, "out of memory");
        return -1;
    }
    h->device = device;
    ncclUniqueId u;
    memcpy(&u, id, sizeof u);
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&h->stream, cudaStreamNonBlocking);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&h->last, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&h->ready, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        snprintf(why, (size_t)why_size, "GPU %d: %s", device, cudaGetErrorString(e));
        free(h);
        return -1;
    }
    ncclResult_t r = ncclCommInitRank(&h->comm, nranks, u, rank);
    if (r != ncclSuccess) {
        snprintf(why, (size_t)why_size, "ncclCommInitRank (rank %d of %d, GPU %d): %s", rank, nranks, device,
                 ncclGetErrorString(r));
        cudaStreamDestroy(h->stream);
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

int hft_nccl_is_device_buffer(void *h, const void *buf) {
    (void)h;
    struct cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, buf) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged;
}

static int nccl_type(int dtype, ncclDataType_t *t) {
    switch (dtype) {
    case HFT_F32:
        *t = ncclFloat32;
        return 0;
    case HFT_F64:
        *t = ncclFloat64;
        return 0;
    case HFT_BF16:
        *t = ncclBfloat16;
        return 0;
    case HFT_F16:
        *t = ncclFloat16;
        return 0;
    case HFT_I32:
        *t = ncclInt32;
        return 0;
    case HFT_I64:
        *t = ncclInt64;
        return 0;
    default:
        return -1;
    }
}

/* kind: 0 all-reduce, 1 reduce to root, 2 broadcast from root (comm_kind in dist_internal.h); in place,
 * on the module's stream, after the work queued so far on `after` (the compute stream, from the CUDA module:
 * streams and events are the driver's, whichever runtime made them), or at once when it is NULL. */
int hft_nccl_start(void *handle, int kind, void *buf, long long count, int dtype, int root, void *after,
                   char *why, int why_size) {
    nccl_handle *h = handle;
    ncclDataType_t t;
    if (nccl_type(dtype, &t) != 0) {
        snprintf(why, (size_t)why_size, "dtype %d has no NCCL type", dtype);
        return -1;
    }
    if (after) {
        CUDA_OR_FAIL(cudaEventRecord(h->ready, (cudaStream_t)after));
        CUDA_OR_FAIL(cudaStreamWaitEvent(h->stream, h->ready, 0));
    }
    size_t n = (size_t)count;
    switch (kind) {
    case 0:
        NCCL_OR_FAIL(ncclAllReduce(buf, buf, n, t, ncclSum, h->comm, h->stream));
        break;
    case 1:
        NCCL_OR_FAIL(ncclReduce(buf, buf, n, t, ncclSum, root, h->comm, h->stream));
        break;
    case 2:
        NCCL_OR_FAIL(ncclBroadcast(buf, buf, n, t, root, h->comm, h->stream));
        break;
    default:
        snprintf(why, (size_t)why_size, "collective kind %d is not one of this module's", kind);
        return -1;
    }
    CUDA_OR_FAIL(cudaEventRecord(h->last, h->stream));
    return 0;
}

int hft_nccl_query(void *handle, int *done, char *why, int why_size) {
    nccl_handle *h = handle;
    *done = 0;
    ncclResult_t async = ncclSuccess;
    NCCL_OR_FAIL(ncclCommGetAsyncError(h->comm, &async));
    if (async != ncclSuccess) {
        snprintf(why, (size_t)why_size, "NCCL: %s", ncclGetErrorString(async));
        return -1;
    }
    cudaError_t e = cudaEventQuery(h->last);
    if (e == cudaErrorNotReady) return 0;
    CUDA_OR_FAIL(e);
    *done = 1;
    return 0;
}

void hft_nccl_close(void *handle, int abort) {
    nccl_handle *h = handle;
    if (!h) return;
    if (abort)
        ncclCommAbort(h->comm);
    else
        ncclCommDestroy(h->comm);
    cudaEventDestroy(h->last);
    cudaEventDestroy(h->ready);
    cudaStreamDestroy(h->stream);
    free(h);
}
