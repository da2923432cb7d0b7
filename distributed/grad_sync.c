/* Gradient sync: the flat gradient of a parameter set, summed over ranks bucket by bucket. During the
 * synced backward, autograd reports each parameter whose last reader has run; a bucket whose parameters
 * are all reported is ready, and ready buckets start in bucket order (the same on every rank, whatever
 * the order backward finished them in), so reduction overlaps the rest of backward.
 *
 * Sharded (ZeRO-1), rank r owns the r-th contiguous range of the flat layout: a bucket is reduced to the
 * owners of the ranges it crosses (a reduce-scatter, piece by piece), each rank's optimizer updates its
 * range, and the owners then broadcast their ranges of the flat values (an all-gather). The pieces are the
 * buckets cut at the range boundaries, so both halves move what one all-reduce moves. */
#include "distributed/dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct bucket {
    int64_t offset, count; /* in the flat gradient */
    int params, pending;
    bool ready;
} bucket;

struct hft_grad_sync {
    hft_comm *comm;
    hft_device device; /* where the flat gradient is */
    hft_paramset *ps;
    float *flat;
    int64_t *range_lo; /* ZeRO-1: rank r owns [range_lo[r], range_lo[r + 1]); NULL when not sharded */
    bucket *buckets;
    int n_buckets, next; /* the next bucket to start */
    int overlapped;
    double waited; /* seconds in hft_grad_sync_end, all steps */
    int64_t steps;
    hft_status status; /* the first error inside the backward hook */
    char error[1024];
};

hft_status hft_grad_sync_new(hft_comm *c, hft_paramset *ps, hft_grad_sync **out) {
    *out = NULL;
    hft_tensor *flat = hft_paramset_grads(ps);
    if (!flat) return hft_error(HFT_EINVAL, "gradient sync: the parameter set has no trainable parameters");
    hft_grad_sync *s = calloc(1, sizeof *s);
    int nb = hft_paramset_bucket_count(ps);
    bucket *b = calloc((size_t)nb, sizeof *b);
    if (!s || !b) {
        free(s), free(b);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    for (int i = 0; i < nb; i++) b[i].offset = INT64_MAX;
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        if (!p->grad) continue;
        bucket *k = &b[p->bucket];
        int64_t n = hft_tensor_numel(p->value);
        if (p->grad_offset < k->offset) k->offset = p->grad_offset;
        k->count += n;
        k->params++;
    }
    *s = (hft_grad_sync){.comm = c,
                         .device = flat->device,
                         .ps = ps,
                         .flat = hft_tensor_data(flat),
                         .buckets = b,
                         .n_buckets = nb};
    *out = s;
    return HFT_OK;
}

void hft_grad_sync_free(hft_grad_sync *s) {
    if (!s) return;
    free(s->range_lo);
    free(s->buckets);
    free(s);
}

int hft_grad_sync_overlapped(const hft_grad_sync *s) {
    return s->overlapped;
}

double hft_grad_sync_waited(const hft_grad_sync *s) {
    return s->steps ? s->waited / (double)s->steps : 0;
}

/* The bucket holding a parameter: its gradient's offset in the flat buffer. */
static bucket *bucket_of(hft_grad_sync *s, const hft_tensor *param) {
    int64_t off = (const float *)hft_tensor_data(param->grad) - s->flat;
    for (int i = 0; i < s->n_buckets; i++)
        if (off >= s->buckets[i].offset && off < s->buckets[i].offset + s->buckets[i].count)
            return &s->buckets[i];
    return NULL;
}

/* ZeRO-1: the part of bucket b in rank r's range, from *lo; its length (0: none). */
static int64_t piece(const hft_grad_sync *s, const bucket *b, int r, int64_t *lo) {
    int64_t end = b->offset + b->count < s->range_lo[r + 1] ? b->offset + b->count : s->range_lo[r + 1];
    *lo = b->offset > s->range_lo[r] ? b->offset : s->range_lo[r];
    return end > *lo ? end - *lo : 0;
}

static hft_status start_bucket(hft_grad_sync *s, int index) {
    bucket *b = &s->buckets[index];
    const hft_device_api *dev = s->device.type == HFT_CPU ? NULL : hft_kernels_for(s->device.type)->dev;
    /* a parameter no node wrote this step has a stale gradient until it is zeroed */
    for (int i = 0; i < hft_paramset_count(s->ps); i++) {
        hft_param *p = hft_paramset_get(s->ps, i);
        if (p->grad && p->bucket == index && !(p->value->flags & HFT_TENSOR_GRAD_SET)) {
            if (dev)
                HFT_TRY(dev->zero(hft_tensor_data(p->grad), hft_tensor_nbytes(p->grad)));
            else
                memset(hft_tensor_data(p->grad), 0, hft_tensor_nbytes(p->grad));
            p->value->flags |= HFT_TENSOR_GRAD_SET;
        }
    }
    /* On a GPU the bucket's gradients are written by kernels queued on the compute stream: NCCL's stream
     * waits for them on the device (the host queues the rest of backward meanwhile); a communicator that
     * reads device memory from the host (MPI on the emulator) needs them run first. */
    if (dev && !hft_comm_stream_ordered(s->comm)) HFT_TRY(dev->synchronize());
    if (!s->range_lo) return hft_comm_allreduce_start(s->comm, s->flat + b->offset, b->count, HFT_F32);
    for (int r = 0; r < s->comm->dist->size; r++) { /* the bucket's piece in each owner's range */
        int64_t lo, n = piece(s, b, r, &lo);
        if (n > 0) HFT_TRY(hft_comm_reduce_start(s->comm, s->flat + lo, n, HFT_F32, r));
    }
    return HFT_OK;
}

static void on_param_ready(hft_tensor *param, void *user) {
    hft_grad_sync *s = user;
    bucket *b = param->grad ? bucket_of(s, param) : NULL;
    if (!b || s->status != HFT_OK) return;
    if (--b->pending == 0) b->ready = true;
    while (s->next < s->n_buckets && s->buckets[s->next].ready && s->status == HFT_OK) {
        s->status = start_bucket(s, s->next++);
        s->overlapped++;
    }
    if (s->status == HFT_OK) s->status = hft_comm_progress(s->comm);
    if (s->status != HFT_OK) snprintf(s->error, sizeof s->error, "%s", hft_error_message());
}

void hft_grad_sync_begin(hft_grad_sync *s, hft_ctx *ctx) {
    for (int i = 0; i < s->n_buckets; i++) {
        s->buckets[i].pending = s->buckets[i].params;
        s->buckets[i].ready = false;
    }
    s->next = 0;
    s->overlapped = 0;
    s->status = HFT_OK;
    s->error[0] = '\0';
    hft_ctx_on_param_ready(ctx, on_param_ready, s);
}

hft_status hft_grad_sync_end(hft_grad_sync *s, hft_ctx *ctx, const char *what) {
    double t0 = dist_now();
    hft_ctx_on_param_ready(ctx, NULL, NULL);
    hft_status st = s->status;
    if (st != HFT_OK) hft_error(st, "%s: %s", what, s->error);
    while (st == HFT_OK && s->next < s->n_buckets) st = start_bucket(s, s->next++);
    hft_status waited = hft_comm_wait(s->comm, what); /* even after an error: nothing left in flight */
    s->waited += dist_now() - t0;
    s->steps++;
    return st != HFT_OK ? st : waited;
}

/* ---------------------------------------------------------------- ZeRO-1 */

/* Vector kernels want a range to start where the flat buffers' alignment repeats: 16 floats (64 bytes). */
#define RANGE_ALIGN 16

void hft_shard_range(int64_t n, int world, int rank, int64_t *lo, int64_t *count) {
    int64_t per = (n + world - 1) / world;
    per = (per + RANGE_ALIGN - 1) / RANGE_ALIGN * RANGE_ALIGN;
    int64_t a = (int64_t)rank * per, b = a + per;
    *lo = a < n ? a : n;
    *count = (b < n ? b : n) - *lo;
}

hft_status hft_grad_sync_shard(hft_grad_sync *s) {
    hft_dist *d = s->comm->dist;
    int64_t n = hft_paramset_trainable_numel(s->ps), count;
    s->range_lo = malloc(sizeof(int64_t) * (size_t)(d->size + 1));
    if (!s->range_lo) return hft_error(HFT_ENOMEM, "out of memory");
    for (int r = 0; r < d->size; r++) hft_shard_range(n, d->size, r, &s->range_lo[r], &count);
    s->range_lo[d->size] = n;
    return HFT_OK;
}

void hft_grad_sync_range(const hft_grad_sync *s, int64_t *lo, int64_t *count) {
    if (!s->range_lo) {
        *lo = 0;
        *count = hft_paramset_trainable_numel(s->ps);
        return;
    }
    int rank = s->comm->dist->rank;
    *lo = s->range_lo[rank];
    *count = s->range_lo[rank + 1] - *lo;
}

hft_status hft_grad_sync_gather_values(hft_grad_sync *s, const char *what) {
    if (!s->range_lo) return HFT_OK;
    float *values = hft_tensor_data(hft_paramset_values(s->ps));
    const hft_device_api *dev = s->device.type == HFT_CPU ? NULL : hft_kernels_for(s->device.type)->dev;
    if (dev && !hft_comm_stream_ordered(s->comm)) /* the optimizer's kernels must have written the ranges */
        HFT_TRY(dev->synchronize());
    hft_status st = HFT_OK;
    for (int i = 0; i < s->n_buckets && st == HFT_OK; i++) {
        const bucket *b = &s->buckets[i];
        for (int r = 0; r < s->comm->dist->size && st == HFT_OK; r++) {
            int64_t lo, n = piece(s, b, r, &lo);
            if (n > 0) st = hft_comm_bcast_start(s->comm, values + lo, n, HFT_F32, r);
        }
    }
    hft_status waited = hft_comm_wait(s->comm, what); /* even after an error: nothing left in flight */
    return st != HFT_OK ? st : waited;
}
