/* Persistent (heap) tensors and the queries every tensor answers. */
#include "autograd/internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Heap tensors this large get their own anonymous mapping: its pages read as zero and take memory only
 * once written, so a gradient buffer allocated at load costs nothing until backward fills it. */
#define MAPPED_BYTES ((size_t)4 << 20)

void ag_set_contiguous_strides(hft_tensor *t) {
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        t->stride[d] = s;
        s *= t->shape[d];
    }
}

static bool valid_shape(int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > HFT_MAX_DIMS) return false;
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) return false;
    return true;
}

static hft_tensor *heap_header(hft_dtype dtype, int ndim, const int64_t *shape) {
    if (!valid_shape(ndim, shape) || (unsigned)dtype >= HFT_DTYPE_COUNT) {
        hft_error(HFT_EINVAL, "tensor: invalid dtype or shape (ndim %d, at most %d dims, sizes >= 0)", ndim,
                  HFT_MAX_DIMS);
        return NULL;
    }
    hft_tensor *t = calloc(1, sizeof *t);
    if (!t) {
        hft_error(HFT_ENOMEM, "tensor: out of memory");
        return NULL;
    }
    t->dtype = dtype;
    t->device = (hft_device){HFT_CPU, 0};
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    ag_set_contiguous_strides(t);
    t->flags = HFT_TENSOR_HEAP;
    return t;
}

static hft_tensor *heap_tensor(hft_dtype dtype, int ndim, const int64_t *shape, void *external) {
    hft_tensor *t = heap_header(dtype, ndim, shape);
    if (!t) return NULL;
    hft_storage *s = calloc(1, sizeof *s);
    size_t nbytes = (size_t)hft_tensor_numel(t) * hft_dtype_size(dtype);
    void *data = external;
    bool mapped = !external && nbytes >= MAPPED_BYTES;
    if (mapped) {
        data = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (data == MAP_FAILED) data = NULL;
    } else if (!external) {
        data = aligned_alloc(64, (nbytes + 63) & ~(size_t)63);
    }
    if (!s || (!data && nbytes)) {
        free(s);
        if (!external && !mapped) free(data);
        free(t);
        hft_error(HFT_ENOMEM, "tensor: out of memory for %zu bytes", nbytes);
        return NULL;
    }
    s->data = data;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->kind = external ? STORAGE_EXTERNAL : mapped ? STORAGE_MAPPED : STORAGE_HEAP;
    t->storage = s;
    return t;
}

hft_tensor *hft_tensor_new(hft_dtype dtype, int ndim, const int64_t *shape) {
    hft_tensor *t = heap_tensor(dtype, ndim, shape, NULL);
    if (t && t->storage->kind == STORAGE_HEAP) memset(t->storage->data, 0, t->storage->nbytes);
    return t;
}

hft_tensor *hft_tensor_from_data(hft_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    hft_tensor *t = heap_tensor(dtype, ndim, shape, NULL);
    if (t && t->storage->nbytes) memcpy(t->storage->data, data, t->storage->nbytes);
    return t;
}

hft_tensor *hft_tensor_wrap(hft_dtype dtype, int ndim, const int64_t *shape, void *data) {
    return heap_tensor(dtype, ndim, shape, data);
}

/* The kernel table of a tensor's device, or NULL with the error recorded. */
static const hft_kernels *device_table(hft_device device) {
    const hft_kernels *k = hft_kernels_for(device.type);
    if (!k)
        hft_error(HFT_EDEVICE, "tensor: the %s backend is not loaded (hft_cuda_load)",
                  device.type == HFT_CUDA ? "CUDA" : "device");
    return k;
}

hft_tensor *hft_tensor_new_on(hft_device device, hft_dtype dtype, int ndim, const int64_t *shape) {
    if (device.type == HFT_CPU) return hft_tensor_new(dtype, ndim, shape);
    const hft_kernels *k = device_table(device);
    if (!k) return NULL;
    hft_tensor *t = heap_header(dtype, ndim, shape);
    if (!t) return NULL;
    hft_storage *s = calloc(1, sizeof *s);
    size_t nbytes = (size_t)hft_tensor_numel(t) * hft_dtype_size(dtype);
    void *data = s ? k->dev->alloc(nbytes) : NULL; /* records its own error */
    if (!s) hft_error(HFT_ENOMEM, "tensor: out of memory");
    if (data && k->dev->zero(data, nbytes) != HFT_OK) {
        k->dev->free(data);
        data = NULL;
    }
    if (!data) {
        free(s);
        free(t);
        return NULL;
    }
    s->data = data;
    s->nbytes = nbytes;
    s->refcount = 1;
    s->kind = STORAGE_DEVICE;
    s->device = device;
    t->storage = s;
    t->device = device;
    return t;
}

hft_tensor *hft_tensor_to(const hft_tensor *src, hft_device device) {
    hft_tensor *t = hft_tensor_new_on(device, src->dtype, src->ndim, src->shape);
    if (t && hft_tensor_copy(t, src) != HFT_OK) {
        hft_tensor_free(t);
        return NULL;
    }
    return t;
}

hft_tensor *hft_tensor_alias(hft_tensor *src, int64_t offset, int ndim, const int64_t *shape) {
    hft_tensor *t = heap_header(src->dtype, ndim, shape);
    if (!t) return NULL;
    int64_t end = (src->offset + offset + hft_tensor_numel(t)) * (int64_t)hft_dtype_size(src->dtype);
    if (offset < 0 || (size_t)end > src->storage->nbytes) {
        hft_error(HFT_EINVAL, "tensor alias: elements [%lld, %lld) lie outside the storage",
                  (long long)offset, (long long)(offset + hft_tensor_numel(t)));
        free(t);
        return NULL;
    }
    t->storage = src->storage;
    t->storage->refcount++;
    t->offset = src->offset + offset;
    t->device = src->device;
    return t;
}

static void storage_release(hft_storage *s) {
    if (!s || --s->refcount > 0) return;
    if (s->kind == STORAGE_HEAP) free(s->data);
    if (s->kind == STORAGE_MAPPED) munmap(s->data, s->nbytes);
    if (s->kind == STORAGE_DEVICE) hft_kernels_for(s->device.type)->dev->free(s->data);
    free(s);
}

void hft_tensor_free(hft_tensor *t) {
    if (!t || !(t->flags & HFT_TENSOR_HEAP)) return;
    if (t->grad && (t->grad->flags & HFT_TENSOR_HEAP)) hft_tensor_free(t->grad);
    storage_release(t->storage);
    free(t);
}

hft_status hft_tensor_adopt(hft_tensor *t, hft_tensor *src) {
    if (!(t->flags & HFT_TENSOR_HEAP) || !(src->flags & HFT_TENSOR_HEAP) || !hft_tensor_same_shape(t, src) ||
        !hft_tensor_is_contiguous(src) || t->base || src->base)
        return hft_error(HFT_EINVAL, "tensor adopt: two heap tensors of one shape, the source contiguous");
    hft_storage *old = t->storage;
    t->storage = src->storage;
    t->dtype = src->dtype;
    t->device = src->device; /* moving a parameter to a device keeps its header */
    t->offset = src->offset;
    memcpy(t->stride, src->stride, sizeof t->stride);
    t->version++;
    src->storage = old; /* freed with src */
    hft_tensor_free(src);
    return HFT_OK;
}

hft_status hft_tensor_convert(hft_tensor *t, hft_dtype dtype) {
    if (t->dtype == dtype) return HFT_OK;
    hft_tensor *c = hft_tensor_new_on(t->device, dtype, t->ndim, t->shape);
    if (!c) return hft_error_status();
    hft_status st = hft_tensor_copy(c, t);
    if (st == HFT_OK) return hft_tensor_adopt(t, c);
    hft_tensor_free(c);
    return st;
}

void hft_tensor_set_requires_grad(hft_tensor *t, bool requires_grad) {
    if (t) t->requires_grad = requires_grad;
}

void hft_tensor_zero_grad(hft_tensor *t) {
    if (t) t->flags &= ~(uint32_t)HFT_TENSOR_GRAD_SET;
}

void *hft_tensor_data(const hft_tensor *t) {
    return (char *)t->storage->data + (size_t)t->offset * hft_dtype_size(t->dtype);
}

int64_t hft_tensor_numel(const hft_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

size_t hft_tensor_nbytes(const hft_tensor *t) {
    return (size_t)hft_tensor_numel(t) * hft_dtype_size(t->dtype);
}

bool hft_tensor_is_contiguous(const hft_tensor *t) {
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        if (t->shape[d] != 1 && t->stride[d] != s) return false;
        s *= t->shape[d];
    }
    return true;
}

bool hft_tensor_same_shape(const hft_tensor *a, const hft_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int d = 0; d < a->ndim; d++)
        if (a->shape[d] != b->shape[d]) return false;
    return true;
}

const char *hft_tensor_describe(const hft_tensor *t, char *buf, size_t size) {
    if (!t) {
        snprintf(buf, size, "NULL");
        return buf;
    }
    size_t n = (size_t)snprintf(buf, size, "%s[", hft_dtype_name(t->dtype));
    for (int d = 0; d < t->ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
    return buf;
}

hft_kview ag_kview(const hft_tensor *t) {
    hft_kview v;
    v.data = hft_tensor_data(t);
    v.ndim = t->ndim;
    for (int d = 0; d < t->ndim; d++) {
        v.shape[d] = t->shape[d];
        v.stride[d] = t->stride[d];
    }
    return v;
}

/* dst = src on one device, with that device's copy kernel. */
static hft_status copy_on_device(hft_tensor *dst, const hft_tensor *src) {
    const hft_kernels *k = device_table(dst->device);
    if (!k) return hft_error_status();
    hft_copy_args a = {
        .dst_dtype = dst->dtype, .src_dtype = src->dtype, .dst = ag_kview(dst), .src = ag_kview(src)};
    if (dst->ndim == 0) {
        a.dst.ndim = a.src.ndim = 1;
        a.dst.shape[0] = a.src.shape[0] = 1;
        a.dst.stride[0] = a.src.stride[0] = 1;
    }
    k->copy(&a);
    return HFT_OK;
}

/* Between the CPU and a device: through a contiguous host copy in the dtype that crosses (dst's on the way
 * up, src's on the way down) and, where the device side is not contiguous, a contiguous device copy. */
static hft_status copy_across(hft_tensor *dst, const hft_tensor *src) {
    bool up = src->device.type == HFT_CPU;
    const hft_tensor *dev_side = up ? dst : src;
    const hft_kernels *k = device_table(dev_side->device);
    if (!k) return hft_error_status();
    hft_dtype dt = dev_side->dtype;
    hft_tensor *host = hft_tensor_new(dt, src->ndim, src->shape);
    hft_tensor *flat = hft_tensor_is_contiguous(dev_side)
                           ? NULL
                           : hft_tensor_new_on(dev_side->device, dt, src->ndim, src->shape);
    hft_status st = host && (flat || hft_tensor_is_contiguous(dev_side)) ? HFT_OK : hft_error_status();
    void *dev_data = flat ? hft_tensor_data(flat) : hft_tensor_data(dev_side);
    size_t nbytes = hft_tensor_nbytes(host ? host : dst);
    if (st == HFT_OK && up) {
        st = copy_on_device(host, src);
        if (st == HFT_OK) st = k->dev->copy(dev_data, hft_tensor_data(host), nbytes, HFT_COPY_H2D);
        if (st == HFT_OK && flat) st = copy_on_device(dst, flat);
    } else if (st == HFT_OK) {
        if (flat) st = copy_on_device(flat, src);
        if (st == HFT_OK) st = k->dev->copy(hft_tensor_data(host), dev_data, nbytes, HFT_COPY_D2H);
        if (st == HFT_OK) st = copy_on_device(dst, host);
    }
    hft_tensor_free(host);
    hft_tensor_free(flat);
    return st;
}

hft_status hft_tensor_copy(hft_tensor *dst, const hft_tensor *src) {
    if (!hft_tensor_same_shape(dst, src)) {
        char a[128], b[128];
        return hft_error(HFT_EINVAL, "tensor copy: shapes differ (%s from %s)",
                         hft_tensor_describe(dst, a, sizeof a), hft_tensor_describe(src, b, sizeof b));
    }
    if (hft_tensor_numel(dst) == 0) return HFT_OK;
    hft_status st;
    if (dst->device.type == src->device.type)
        st = copy_on_device(dst, src);
    else if (dst->device.type == HFT_CPU || src->device.type == HFT_CPU)
        st = copy_across(dst, src);
    else
        st = hft_error(HFT_EDEVICE, "tensor copy: between two kinds of device (stage it through the CPU)");
    if (st == HFT_OK) dst->version++;
    return st;
}

hft_status hft_tensor_to_f64(const hft_tensor *t, double *out) {
    if (t->device.type != HFT_CPU) {
        hft_tensor *host = hft_tensor_new(t->dtype, t->ndim, t->shape);
        if (!host) return hft_error_status();
        hft_status st = hft_tensor_copy(host, t);
        if (st == HFT_OK) st = hft_tensor_to_f64(host, out);
        hft_tensor_free(host);
        return st;
    }
    const hft_kernels *k = hft_kernels_for(HFT_CPU);
    hft_copy_args a = {.dst_dtype = HFT_F64, .src_dtype = t->dtype, .src = ag_kview(t)};
    a.dst = a.src;
    a.dst.data = out;
    int64_t s = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        a.dst.stride[d] = s;
        s *= t->shape[d];
    }
    if (t->ndim == 0) {
        a.dst.ndim = a.src.ndim = 1;
        a.dst.shape[0] = a.src.shape[0] = 1;
        a.dst.stride[0] = a.src.stride[0] = 1;
    }
    k->copy(&a);
    return HFT_OK;
}

const hft_tensor *hft_tensor_grad(const hft_tensor *t) {
    const hft_tensor *b = t->base ? t->base : t;
    if (!b->grad || !(b->flags & HFT_TENSOR_GRAD_SET)) return NULL;
    return b->grad;
}

void hft_retain_grad(hft_tensor *t) {
    if (t) (t->base ? t->base : t)->flags |= HFT_TENSOR_RETAIN_GRAD;
}
