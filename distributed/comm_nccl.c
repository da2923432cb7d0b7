/* The NCCL communicator: loads libhft_nccl.so at run time, takes rank 0's ncclUniqueId over MPI and
 * reduces GPU buffers on the module's stream; waiting polls NCCL's asynchronous error and aborts the
 * communicator at the deadline, so a dead peer never hangs a rank. */
#include "distributed/dist_internal.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct nccl_api {
    void *lib;
    int (*device_count)(char *, int);
    int (*unique_id)(void *, int, char *, int);
    int (*open)(const void *, int, int, int, void **, char *, int);
    int (*is_device_buffer)(void *, const void *);
    int (*start)(void *, int, void *, long long, int, int, void *, char *, int);
    int (*query)(void *, int *, char *, int);
    void (*close)(void *, int);
    void *handle;
    bool pending;
} nccl_api;

static hft_status nccl_start(hft_comm *c, comm_kind kind, void *buf, int64_t count, hft_dtype dtype,
                             int root) {
    nccl_api *a = c->impl;
    if (count == 0) return HFT_OK;
    if (!a->is_device_buffer(a->handle, buf))
        return hft_error(HFT_EDEVICE, "NCCL: the buffer is not GPU memory (use the MPI communicator)");
    char why[512];
    /* ordered after the kernels queued so far on the compute stream, on the device: the host goes on */
    const hft_kernels *k = hft_kernels_for(HFT_CUDA);
    void *after = k && k->dev->compute_stream ? k->dev->compute_stream() : NULL;
    if (a->start(a->handle, (int)kind, buf, (long long)count, (int)dtype, root, after, why, sizeof why) != 0)
        return hft_error(HFT_EDIST, "rank %d: NCCL: %s", c->dist->rank, why);
    a->pending = true;
    return HFT_OK;
}

static hft_status nccl_poll(hft_comm *c, bool *done) {
    nccl_api *a = c->impl;
    char why[512];
    int d = 0;
    if (a->query(a->handle, &d, why, sizeof why) != 0)
        return hft_error(HFT_EDIST, "rank %d: %s", c->dist->rank, why);
    *done = d != 0;
    if (*done) a->pending = false;
    return HFT_OK;
}

static hft_status nccl_progress(hft_comm *c) {
    nccl_api *a = c->impl;
    bool done = false;
    return a->pending ? nccl_poll(c, &done) : HFT_OK;
}

static hft_status nccl_wait(hft_comm *c, const char *what) {
    nccl_api *a = c->impl;
    double deadline = dist_now() + c->dist->timeout;
    while (a->pending) {
        bool done = false;
        hft_status st = nccl_poll(c, &done);
        if (st != HFT_OK) return st;
        if (done) break;
        if (dist_now() > deadline) {
            a->close(a->handle, 1);
            a->handle = NULL;
            return hft_error(
                HFT_EDIST,
                "rank %d: %s: NCCL got no answer from the other ranks in %g s (ddp_timeout): a rank "
                "has died or hangs; the communicator is aborted",
                c->dist->rank, what, c->dist->timeout);
        }
        struct timespec pause = {0, 20000};
        nanosleep(&pause, NULL);
    }
    return HFT_OK;
}

static void nccl_free(hft_comm *c) {
    nccl_api *a = c->impl;
    if (a->handle) a->close(a->handle, 0);
    if (a->lib) dlclose(a->lib);
    free(a);
}

static const comm_ops nccl_ops = {"nccl", true, nccl_start, nccl_progress, nccl_wait, nccl_free};

#define LOAD(field, name) (*(void **)&a->field = dlsym(a->lib, name)) != NULL

hft_status hft_comm_nccl(hft_dist *d, const char *module_path, int device, hft_comm **out) {
    *out = NULL;
    nccl_api *a = calloc(1, sizeof *a);
    hft_comm *c = calloc(1, sizeof *c);
    if (!a || !c) {
        free(a), free(c);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    *c = (hft_comm){.ops = &nccl_ops, .dist = d, .device = {HFT_CUDA, device}, .impl = a};
    a->lib = dlopen(module_path, RTLD_NOW | RTLD_LOCAL);
    if (!a->lib) {
        hft_status st =
            hft_error(HFT_EUNSUPPORTED, "NCCL: the module %s does not load (%s)", module_path, dlerror());
        hft_comm_free(c);
        return st;
    }
    if (!(LOAD(device_count, "hft_nccl_device_count") && LOAD(unique_id, "hft_nccl_unique_id") &&
          LOAD(open, "hft_nccl_open") && LOAD(is_device_buffer, "hft_nccl_is_device_buffer") &&
          LOAD(start, "hft_nccl_start") && LOAD(query, "hft_nccl_query") && LOAD(close, "hft_nccl_close"))) {
        hft_comm_free(c);
        return hft_error(HFT_EUNSUPPORTED, "NCCL: %s lacks a function of this version of hft", module_path);
    }
    char why[512] = "";
    int n = a->device_count(why, sizeof why);
    if (n <= device) {
        hft_status st = hft_error(HFT_EUNSUPPORTED, "NCCL: no GPU %d (%s)", device,
                                  n < 0    ? why
                                  : n == 0 ? "no GPU on this machine"
                                           : "fewer GPUs");
        hft_comm_free(c);
        return st;
    }
    char id[128] = {0};
    hft_status st = HFT_OK;
    if (d->rank == 0 && a->unique_id(id, sizeof id, why, sizeof why) != 0)
        st = hft_error(HFT_EDIST, "rank 0: ncclGetUniqueId: %s", why);
    if (st == HFT_OK) st = hft_dist_bcast(d, id, sizeof id, 0, "broadcasting the NCCL unique id");
    if (st == HFT_OK && a->open(id, d->size, d->rank, device, &a->handle, why, sizeof why) != 0)
        st = hft_error(HFT_EDIST, "rank %d: %s", d->rank, why);
    if (st != HFT_OK) {
        hft_comm_free(c);
        return st;
    }
    *out = c;
    return HFT_OK;
}
