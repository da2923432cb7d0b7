/* Parameter sets: names, tags, and the two flat buffers of the trainable parameters: their values and their
 * gradients, laid out alike. */
#include "autograd/internal.h"

#include <stdlib.h>
#include <string.h>

struct hft_paramset {
    hft_param *params;
    int n, cap;
    bool finalized;
    hft_tensor *flat_grad, *flat_values;
    int64_t trainable;
    int buckets;
};

hft_paramset *hft_paramset_new(void) {
    return calloc(1, sizeof(hft_paramset));
}

void hft_paramset_free(hft_paramset *ps) {
    if (!ps) return;
    for (int i = 0; i < ps->n; i++) {
        hft_param *p = &ps->params[i];
        if (p->value) p->value->grad = NULL; /* the grad alias is freed below, not by the value */
        hft_tensor_free(p->grad);
        hft_tensor_free(p->value);
        free((char *)p->name);
    }
    hft_tensor_free(ps->flat_grad);
    hft_tensor_free(ps->flat_values);
    free(ps->params);
    free(ps);
}

hft_status hft_paramset_add(hft_paramset *ps, const char *name, hft_tensor *value, uint32_t tags) {
    if (ps->finalized) return hft_error(HFT_ESTATE, "parameter set: '%s' added after finalize", name);
    if (!value || !(value->flags & HFT_TENSOR_HEAP) || !hft_tensor_is_contiguous(value))
        return hft_error(HFT_EINVAL, "parameter set: '%s' must be a contiguous heap tensor", name);
    if (hft_paramset_find(ps, name)) return hft_error(HFT_EINVAL, "parameter set: duplicate name '%s'", name);
    if (!(tags & HFT_PARAM_FROZEN) && value->dtype != HFT_F32)
        return hft_error(HFT_EINVAL, "parameter set: trainable '%s' must be f32 (master weights), got %s",
                         name, hft_dtype_name(value->dtype));
    if (ps->n == ps->cap) {
        int cap = ps->cap ? ps->cap * 2 : 64;
        hft_param *np = realloc(ps->params, (size_t)cap * sizeof *np);
        if (!np) return hft_error(HFT_ENOMEM, "parameter set: out of memory");
        ps->params = np;
        ps->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return hft_error(HFT_ENOMEM, "parameter set: out of memory");
    value->name = copy;
    value->flags |= HFT_TENSOR_PARAM;
    ps->params[ps->n++] = (hft_param){.name = copy, .value = value, .tags = tags, .bucket = -1};
    return HFT_OK;
}

hft_status hft_paramset_reopen(hft_paramset *ps) {
    if (!ps->finalized) return HFT_OK;
    for (int i = 0; i < ps->n; i++) {
        hft_param *p = &ps->params[i];
        p->value->grad = NULL;
        p->value->requires_grad = false;
        hft_tensor_free(p->grad);
        p->grad = NULL;
        p->bucket = -1;
        p->grad_offset = 0;
    }
    hft_tensor_free(ps->flat_grad);
    hft_tensor_free(ps->flat_values); /* the values keep its storage until they move */
    ps->flat_grad = ps->flat_values = NULL;
    ps->trainable = 0;
    ps->buckets = 0;
    ps->finalized = false;
    return HFT_OK;
}

/* The value takes its place in the flat buffer (its header, which models and tapes point to, stays): one
 * allocation for every trainable value, which sharded optimizers update in ranges and all-gather whole. */
static hft_status move_into_flat(hft_tensor *flat, hft_param *p, int64_t offset) {
    hft_tensor *slot = hft_tensor_alias(flat, offset, p->value->ndim, p->value->shape);
    if (!slot) return hft_error_status();
    hft_status st = hft_tensor_copy(slot, p->value);
    uint32_t version = p->value->version; /* the same values: caches of them stay good */
    if (st == HFT_OK && (st = hft_tensor_adopt(p->value, slot)) == HFT_OK) p->value->version = version;
    if (st == HFT_OK) return HFT_OK;
    hft_tensor_free(slot);
    return hft_error(st, "parameter set: '%s': %s", p->name, hft_error_message());
}

hft_status hft_paramset_finalize(hft_paramset *ps, size_t bucket_bytes) {
    if (ps->finalized) return HFT_OK;
    hft_device device = {HFT_CPU, 0}; /* the flat buffers live where the trainable values do */
    bool first = true;
    for (int i = 0; i < ps->n; i++) {
        const hft_param *p = &ps->params[i];
        if (p->tags & HFT_PARAM_FROZEN) continue;
        if (first) device = p->value->device;
        first = false;
        if (p->value->device.type != device.type || p->value->device.index != device.index)
            return hft_error(HFT_EINVAL, "parameter set: trainable '%s' is on another device than the others",
                             p->name);
    }
    return hft_paramset_finalize_on(ps, bucket_bytes, device);
}

hft_status hft_paramset_finalize_on(hft_paramset *ps, size_t bucket_bytes, hft_device device) {
    if (ps->finalized) return HFT_OK;
    int64_t total = 0;
    for (int i = 0; i < ps->n; i++) {
        const hft_param *p = &ps->params[i];
        if (p->tags & HFT_PARAM_FROZEN) continue;
        if (p->value->dtype != HFT_F32)
            return hft_error(HFT_EINVAL, "parameter set: trainable '%s' must be f32 (master weights), got %s",
                             p->name, hft_dtype_name(p->value->dtype));
        total += hft_tensor_numel(p->value);
    }
    ps->trainable = total;
    ps->finalized = true;
    if (total == 0) return HFT_OK;
    ps->flat_grad = hft_tensor_new_on(device, HFT_F32, 1, (int64_t[]){total});
    ps->flat_values = hft_tensor_new_on(device, HFT_F32, 1, (int64_t[]){total});
    if (!ps->flat_grad || !ps->flat_values)
        return hft_error(HFT_ENOMEM, "parameter set: out of memory for %lld trainable values and gradients",
                         (long long)total);
    /* reverse registration order: the last layers' gradients, which backward produces first, come first */
    int64_t offset = 0;
    for (int i = ps->n - 1; i >= 0; i--) {
        hft_param *p = &ps->params[i];
        if (p->tags & HFT_PARAM_FROZEN) {
            p->value->requires_grad = false;
            continue;
        }
        HFT_TRY(move_into_flat(ps->flat_values, p, offset));
        p->grad = hft_tensor_alias(ps->flat_grad, offset, p->value->ndim, p->value->shape);
        if (!p->grad) return HFT_ENOMEM;
        p->grad_offset = offset;
        p->value->grad = p->grad;
        p->value->requires_grad = true;
        p->value->flags &= ~(uint32_t)HFT_TENSOR_GRAD_SET;
        offset += hft_tensor_numel(p->value);
    }
    hft_paramset_set_bucket_bytes(ps, bucket_bytes);
    return HFT_OK;
}

void hft_paramset_set_bucket_bytes(hft_paramset *ps, size_t bucket_bytes) {
    int64_t bucket_start = 0;
    int bucket = 0;
    for (int i = ps->n - 1; i >= 0; i--) { /* in flat order, as finalize laid the gradients out */
        hft_param *p = &ps->params[i];
        if (!p->grad) continue;
        int64_t n = hft_tensor_numel(p->value);
        if (bucket_bytes && p->grad_offset > bucket_start &&
            (size_t)(p->grad_offset - bucket_start + n) * 4 > bucket_bytes) {
            bucket++;
            bucket_start = p->grad_offset;
        }
        p->bucket = bucket;
    }
    ps->buckets = bucket + 1;
}

int hft_paramset_count(const hft_paramset *ps) {
    return ps->n;
}
hft_param *hft_paramset_get(hft_paramset *ps, int index) {
    return index >= 0 && index < ps->n ? &ps->params[index] : NULL;
}

hft_param *hft_paramset_find(hft_paramset *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->params[i].name, name) == 0) return &ps->params[i];
    return NULL;
}

hft_tensor *hft_paramset_grads(hft_paramset *ps) {
    return ps->flat_grad;
}
hft_tensor *hft_paramset_values(hft_paramset *ps) {
    return ps->flat_values;
}
int64_t hft_paramset_trainable_numel(const hft_paramset *ps) {
    return ps->trainable;
}
int hft_paramset_bucket_count(const hft_paramset *ps) {
    return ps->flat_grad ? ps->buckets : 0;
}

void hft_paramset_zero_grad(hft_paramset *ps) {
    for (int i = 0; i < ps->n; i++) ps->params[i].value->flags &= ~(uint32_t)HFT_TENSOR_GRAD_SET;
}

void hft_paramset_materialize_grads(hft_paramset *ps) {
    for (int i = 0; i < ps->n; i++) {
        hft_param *p = &ps->params[i];
        if (p->grad && !(p->value->flags & HFT_TENSOR_GRAD_SET)) {
            if (p->grad->device.type == HFT_CPU)
                memset(hft_tensor_data(p->grad), 0, hft_tensor_nbytes(p->grad));
            else /* device memory: the host cannot write it */
                (void)hft_kernels_for(p->grad->device.type)
                    ->dev->zero(hft_tensor_data(p->grad), hft_tensor_nbytes(p->grad));
            p->value->flags |= HFT_TENSOR_GRAD_SET;
        }
    }
}
