/* The context of a micro-batch: its arena, gradient pool, tape, grad mode, RNG position and sticky
 * error; and the small helpers every op uses to check its inputs and allocate its outputs. */
#include "autograd/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_ARENA_BYTES ((size_t)16 << 20)

hft_ctx *hft_ctx_new(const hft_ctx_options *opts) {
    hft_status st = hft_runtime_init();
    if (st != HFT_OK) return NULL;
    hft_ctx_options o = {.arena_bytes = DEFAULT_ARENA_BYTES, .device = {HFT_CPU, 0}};
    if (opts) {
        if (opts->arena_bytes) o.arena_bytes = opts->arena_bytes;
        o.device = opts->device;
    }
    const hft_kernels *k = hft_kernels_for(o.device.type);
    if (!k) {
        hft_error(HFT_EDEVICE, "context: no kernels for device type %d (the CUDA backend is not loaded)",
                  (int)o.device.type);
        return NULL;
    }
    if (k->dev && k->dev->set_device(o.device.index) != HFT_OK) return NULL; /* error recorded */
    hft_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx) {
        hft_error(HFT_ENOMEM, "context: out of memory");
        return NULL;
    }
    ctx->device = o.device;
    ctx->kernels = k;
    /* on a device, tensor data (arena chunks, pool blocks) is device memory; headers and nodes stay here */
    bump_init(&ctx->data, o.arena_bytes, &ctx->heap_allocations, k->dev);
    bump_init(&ctx->headers[0], (size_t)1 << 20, &ctx->heap_allocations, NULL);
    bump_init(&ctx->headers[1], (size_t)1 << 20, &ctx->heap_allocations, NULL);
    ctx->grads = pool_new(&ctx->heap_allocations, k->dev);
    ctx->grad_enabled = true;
    ctx->gen = 1;
    if (!ctx->grads || ctx->data.n_chunks == 0) {
        hft_ctx_free(ctx);
        hft_error(HFT_ENOMEM, "context: out of memory for a %zu-byte arena", o.arena_bytes);
        return NULL;
    }
    return ctx;
}

void hft_ctx_free(hft_ctx *ctx) {
    if (!ctx) return;
    bump_free(&ctx->data);
    bump_free(&ctx->headers[0]);
    bump_free(&ctx->headers[1]);
    pool_free_all(ctx->grads);
    free(ctx->collected);
    ag_autocast_free(ctx);
    free(ctx);
}

void hft_ctx_on_param_ready(hft_ctx *ctx, hft_param_ready_fn fn, void *user) {
    ctx->param_ready = fn;
    ctx->param_ready_user = user;
}

/* Inside a checkpointed forward: remembers each trainable parameter read, once. */
static void collect_param(hft_ctx *ctx, hft_tensor *t) {
    hft_tensor *p = t->base ? t->base : t;
    if (!(p->flags & HFT_TENSOR_PARAM) || !p->requires_grad) return;
    for (int i = ctx->n_collected - 1; i >= 0; i--)
        if (ctx->collected[i] == p) return;
    if (ctx->n_collected == ctx->cap_collected) {
        int cap = ctx->cap_collected ? 2 * ctx->cap_collected : 64;
        hft_tensor **grown = realloc(ctx->collected, (size_t)cap * sizeof *grown);
        if (!grown) {
            ag_fail(ctx, HFT_ENOMEM, "checkpoint: out of memory");
            return;
        }
        ctx->collected = grown;
        ctx->cap_collected = cap;
        ctx->heap_allocations++;
    }
    ctx->collected[ctx->n_collected++] = p;
}

void hft_ctx_reset(hft_ctx *ctx) {
    /* gradients kept past backward (retained, or left by an interrupted backward) go back to the pool */
    for (hft_node *n = ctx->tape; n; n = n->prev) {
        hft_tensor *g = n->out->grad;
        if (g && g->storage->kind == STORAGE_POOL) pool_release(ctx->grads, g->storage->data);
        n->out->grad = NULL;
    }
    ctx->tape = NULL;
    ctx->n_nodes = 0;
    ctx->gen++;
    bump_reset(&ctx->data);
    bump_reset(&ctx->headers[ctx->gen & 1]);
    ctx->status = HFT_OK;
    ctx->error[0] = '\0';
}

hft_status hft_ctx_status(const hft_ctx *ctx) {
    return ctx->status;
}
hft_device hft_ctx_device(const hft_ctx *ctx) {
    return ctx->device;
}
const char *hft_ctx_error(const hft_ctx *ctx) {
    return ctx->error;
}

void hft_ctx_clear_error(hft_ctx *ctx) {
    ctx->status = HFT_OK;
    ctx->error[0] = '\0';
}

bool hft_set_grad_enabled(hft_ctx *ctx, bool enabled) {
    bool prev = ctx->grad_enabled;
    ctx->grad_enabled = enabled;
    return prev;
}

bool hft_grad_enabled(const hft_ctx *ctx) {
    return ctx->grad_enabled;
}

void hft_ctx_set_rng(hft_ctx *ctx, uint64_t seed, uint32_t step, uint16_t micro_step, int64_t sample0) {
    ctx->rng_seed = seed;
    ctx->rng_step = step;
    ctx->rng_micro = micro_step;
    ctx->rng_sample0 = sample0;
}

void hft_ctx_memory(const hft_ctx *ctx, hft_memory_stats *s) {
    memset(s, 0, sizeof *s);
    s->arena_used = ctx->data.used;
    s->arena_peak = ctx->data.peak;
    s->arena_reserved = bump_reserved(&ctx->data);
    pool_stats(ctx->grads, &s->pool_used, &s->pool_peak, &s->pool_reserved);
    s->heap_allocations = ctx->heap_allocations;
}

hft_arena_mark hft_ctx_mark(hft_ctx *ctx) {
    bump *h = &ctx->headers[ctx->gen & 1];
    return (hft_arena_mark){.data_chunk = ctx->data.cur,
                            .data_offset = ctx->data.off,
                            .header_chunk = h->cur,
                            .header_offset = h->off,
                            .data_used = ctx->data.used,
                            .header_used = h->used,
                            .gen = ctx->gen};
}

void hft_ctx_release(hft_ctx *ctx, hft_arena_mark m) {
    if (m.gen != ctx->gen) return; /* the arena was reset since: everything is released already */
    bump *h = &ctx->headers[ctx->gen & 1];
    ctx->data.cur = m.data_chunk;
    ctx->data.off = m.data_offset;
    h->cur = m.header_chunk;
    h->off = m.header_offset;
    ctx->data.used = m.data_used;
    h->used = m.header_used;
}

/* ---------------------------------------------------------------- helpers for ops */

hft_tensor *ag_fail(hft_ctx *ctx, hft_status status, const char *fmt, ...) {
    if (ctx->status == HFT_OK) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->error, sizeof ctx->error, fmt, ap);
        va_end(ap);
        ctx->status = status;
        hft_error(status, "%s", ctx->error);
    }
    return NULL;
}

hft_tensor *hft_ctx_fail(hft_ctx *ctx, hft_status status, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ag_fail(ctx, status, "%s", msg);
}

bool ag_check(hft_ctx *ctx, const char *op, int n, hft_tensor *const *inputs) {
    if (ctx->status != HFT_OK) return false;
    for (int i = 0; i < n; i++) {
        const hft_tensor *t = inputs[i];
        if (!t) {
            ag_fail(ctx, HFT_EINVAL, "%s: input %d is NULL", op, i);
            return false;
        }
        if (t->ctx && t->ctx != ctx) {
            ag_fail(ctx, HFT_ESTATE, "%s: input %d belongs to another context", op, i);
            return false;
        }
        if (t->ctx && t->gen != ctx->gen) {
            ag_fail(ctx, HFT_ESTATE,
                    "%s: input %d was made before its context's arena was reset (generation %u, now %u): "
                    "tensors of a micro-batch are released by hft_ctx_reset",
                    op, i, t->gen, ctx->gen);
            return false;
        }
        if (t->device.type != ctx->device.type || t->device.index != ctx->device.index) {
            char td[32], cd[32];
            ag_fail(ctx, HFT_EDEVICE,
                    "%s: input %d is on %s but the context is on %s (move it with hft_tensor_to first)", op,
                    i, ag_device_name(t->device, td, sizeof td), ag_device_name(ctx->device, cd, sizeof cd));
            return false;
        }
        if (t->dtype == HFT_F64 && ctx->device.type != HFT_CPU) { /* the device tables have no f64 kernels */
            ag_fail(ctx, HFT_EUNSUPPORTED, "%s: input %d is f64, which is not supported on CUDA (use f32)",
                    op, i);
            return false;
        }
        if (ctx->collecting) collect_param(ctx, inputs[i]);
    }
    return true;
}

bool ag_check_float(hft_ctx *ctx, const char *op, const hft_tensor *t, const char *what) {
    if (t->dtype == HFT_F32 || t->dtype == HFT_F64) return true;
    ag_fail(ctx, HFT_EINVAL, "%s: %s must be f32 or f64, got %s", op, what, hft_dtype_name(t->dtype));
    return false;
}

bool ag_check_same_dtype(hft_ctx *ctx, const char *op, const hft_tensor *a, const hft_tensor *b) {
    if (a->dtype == b->dtype) return true;
    ag_fail(ctx, HFT_EINVAL, "%s: dtypes differ (%s and %s)", op, hft_dtype_name(a->dtype),
            hft_dtype_name(b->dtype));
    return false;
}

bool ag_dim(hft_ctx *ctx, const char *op, int ndim, int *dim) {
    int d = *dim < 0 ? *dim + ndim : *dim;
    if (d < 0 || d >= ndim) {
        ag_fail(ctx, HFT_EINVAL, "%s: dim %d out of range for a %d-dim tensor", op, *dim, ndim);
        return false;
    }
    *dim = d;
    return true;
}

bool ag_kernel_check(hft_ctx *ctx, void *fn, const char *op, hft_dtype dtype) {
    if (fn) return true;
    ag_fail(ctx, HFT_EUNSUPPORTED, "%s: no %s kernel for %s", op, ctx->kernels->name, hft_dtype_name(dtype));
    return false;
}

const char *ag_device_name(hft_device device, char *buf, size_t size) {
    if (device.type == HFT_CPU)
        snprintf(buf, size, "cpu");
    else
        snprintf(buf, size, "%s:%d", device.type == HFT_CUDA ? "cuda" : "device", device.index);
    return buf;
}

void *ag_host_alloc(hft_ctx *ctx, size_t bytes) {
    if (!ctx->kernels->dev) return ag_alloc(ctx, bytes); /* the data arena is host memory: as always */
    void *p = bump_alloc(&ctx->headers[ctx->gen & 1], bytes);
    if (!p) ag_fail(ctx, HFT_ENOMEM, "arena: out of memory allocating %zu host bytes", bytes);
    return p;
}

const void *ag_host_data(hft_ctx *ctx, const hft_tensor *t) {
    if (!ctx->kernels->dev || hft_tensor_nbytes(t) == 0) return hft_tensor_data(t);
    void *host = ag_host_alloc(ctx, hft_tensor_nbytes(t));
    if (!host) return NULL;
    if (ctx->kernels->dev->copy(host, hft_tensor_data(t), hft_tensor_nbytes(t), HFT_COPY_D2H) != HFT_OK) {
        ag_fail(ctx, HFT_EDEVICE, "reading a tensor back from the device: %s", hft_error_message());
        return NULL;
    }
    return host;
}

void *ag_upload(hft_ctx *ctx, void *host, size_t bytes) {
    if (!ctx->kernels->dev) return host;
    void *dev = ag_alloc(ctx, bytes);
    if (!dev) return NULL;
    if (bytes && ctx->kernels->dev->copy(dev, host, bytes, HFT_COPY_H2D) != HFT_OK) {
        ag_fail(ctx, HFT_EDEVICE, "copying to the device: %s", hft_error_message());
        return NULL;
    }
    return dev;
}

double ag_read_scalar(hft_ctx *ctx, const hft_tensor *t) {
    if (t->dtype != HFT_F64 && t->dtype != HFT_F32) {
        ag_fail(ctx, HFT_EINVAL, "reading a scalar: f32 or f64 expected, got %s", hft_dtype_name(t->dtype));
        return NAN;
    }
    const void *p = ag_host_data(ctx, t);
    if (!p) return NAN;
    return t->dtype == HFT_F64 ? *(const double *)p : (double)*(const float *)p;
}

void ag_write_scalar(hft_ctx *ctx, hft_tensor *t, double v) {
    double d = v;
    float f = (float)v;
    void *src = t->dtype == HFT_F64 ? (void *)&d : (void *)&f;
    size_t bytes = t->dtype == HFT_F64 ? sizeof d : sizeof f;
    if (!ctx->kernels->dev) {
        memcpy(hft_tensor_data(t), src, bytes);
    } else if (ctx->kernels->dev->copy(hft_tensor_data(t), src, bytes, HFT_COPY_H2D) != HFT_OK) {
        ag_fail(ctx, HFT_EDEVICE, "writing a scalar to the device: %s", hft_error_message());
    }
}

void *ag_alloc(hft_ctx *ctx, size_t bytes) {
    void *p = bump_alloc(&ctx->data, bytes);
    if (!p) ag_fail(ctx, HFT_ENOMEM, "arena: out of memory allocating %zu bytes", bytes);
    return p;
}

hft_tensor *ag_header(hft_ctx *ctx) {
    hft_tensor *t = bump_alloc(&ctx->headers[ctx->gen & 1], sizeof *t + sizeof(hft_storage));
    if (!t) return ag_fail(ctx, HFT_ENOMEM, "arena: out of memory for a tensor header");
    memset(t, 0, sizeof *t);
    t->ctx = ctx;
    t->gen = ctx->gen;
    t->device = ctx->device;
    return t;
}

/* A contiguous tensor header with its storage record (both in the header arena); data not yet set. */
static hft_tensor *contiguous_header(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape,
                                     storage_kind kind) {
    hft_tensor *t = ag_header(ctx);
    if (!t) return NULL;
    t->dtype = dtype;
    t->ndim = ndim;
    for (int d = 0; d < ndim; d++) t->shape[d] = shape[d];
    ag_set_contiguous_strides(t);
    hft_storage *s = (hft_storage *)(t + 1);
    memset(s, 0, sizeof *s);
    s->nbytes = hft_tensor_nbytes(t);
    s->kind = kind;
    s->device = ctx->device;
    t->storage = s;
    return t;
}

hft_tensor *ag_new(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape) {
    hft_tensor *t = contiguous_header(ctx, dtype, ndim, shape, STORAGE_ARENA);
    if (!t) return NULL;
    t->storage->data = ag_alloc(ctx, t->storage->nbytes);
    return t->storage->data ? t : NULL;
}

hft_tensor *ag_view_of(hft_ctx *ctx, hft_tensor *src) {
    hft_tensor *t = ag_header(ctx);
    if (!t) return NULL;
    t->dtype = src->dtype;
    t->device = src->device;
    t->ndim = src->ndim;
    memcpy(t->shape, src->shape, sizeof t->shape);
    memcpy(t->stride, src->stride, sizeof t->stride);
    t->offset = src->offset;
    t->storage = src->storage;
    t->requires_grad = src->requires_grad;
    t->base = src->base ? src->base : src;
    return t;
}

hft_tensor *ag_pool_tensor(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape) {
    hft_tensor *t = contiguous_header(ctx, dtype, ndim, shape, STORAGE_POOL);
    if (!t) return NULL;
    t->storage->data = pool_alloc(ctx->grads, t->storage->nbytes);
    if (!t->storage->data)
        return ag_fail(ctx, HFT_ENOMEM, "gradient pool: out of memory allocating %zu bytes",
                       t->storage->nbytes);
    return t;
}

void ag_pool_tensor_release(hft_ctx *ctx, hft_tensor *t) {
    if (t && t->storage && t->storage->kind == STORAGE_POOL) {
        pool_release(ctx->grads, t->storage->data);
        t->storage->data = NULL;
    }
}

/* ---------------------------------------------------------------- arena tensors (public) */

static bool check_shape(hft_ctx *ctx, const char *op, int ndim, const int64_t *shape) {
    if (ctx->status != HFT_OK) return false;
    if (ndim < 0 || ndim > HFT_MAX_DIMS) {
        ag_fail(ctx, HFT_EINVAL, "%s: %d dims (at most %d)", op, ndim, HFT_MAX_DIMS);
        return false;
    }
    for (int d = 0; d < ndim; d++)
        if (shape[d] < 0) {
            ag_fail(ctx, HFT_EINVAL, "%s: negative size %lld in dim %d", op, (long long)shape[d], d);
            return false;
        }
    return true;
}

hft_tensor *hft_empty(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape) {
    if (!check_shape(ctx, "empty", ndim, shape)) return NULL;
    return ag_new(ctx, dtype, ndim, shape);
}

hft_tensor *hft_full(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape, double value) {
    hft_tensor *t = hft_empty(ctx, dtype, ndim, shape);
    if (t) ag_fill(ctx, t, value);
    return t;
}

hft_tensor *hft_zeros(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape) {
    return hft_full(ctx, dtype, ndim, shape, 0.0);
}

hft_tensor *hft_from_data(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    hft_tensor *t = hft_empty(ctx, dtype, ndim, shape);
    if (!t || !hft_tensor_nbytes(t)) return t;
    if (!ctx->kernels->dev) {
        memcpy(hft_tensor_data(t), data, hft_tensor_nbytes(t));
    } else if (ctx->kernels->dev->copy(hft_tensor_data(t), data, hft_tensor_nbytes(t), HFT_COPY_H2D) !=
               HFT_OK) {
        return ag_fail(ctx, HFT_EDEVICE, "from_data: copying to the device: %s", hft_error_message());
    }
    return t;
}
