/* Gradient sync: the flat gradient of a parameter set, summed over ranks bucket by bucket. During the
 * synced backward, autograd reports each parameter whose last reader has run; a bucket whose parameters
 * are all reported is ready, and ready buckets start in bucket order (the same on every rank, whatever
 * the order backward finished them in), so reduction overlaps the rest of backward. */
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
    /* On a GPU the bucket's gradients are written by kernels queued on the compute stream, which the
     * communicator's stream does not wait for: the bucket starts once they have run (backward queues on
     * meanwhile, so the reduction still overlaps the rest of backward). */
    if (dev) HFT_TRY(dev->synchronize());
    return hft_comm_allreduce_start(s->comm, s->flat + b->offset, b->count, HFT_F32);
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
