/* What the files of autograd/ share and callers do not see: storage, the arena and pool, the context's
 * insides, the tape node, and the helpers every op uses to check inputs, make outputs, record itself and
 * write gradients. */
#ifndef HFT_AUTOGRAD_INTERNAL_H
#define HFT_AUTOGRAD_INTERNAL_H

#include "autograd/autograd.h"

#include <stdarg.h>

/* ---------------------------------------------------------------- storage */

typedef enum storage_kind {
    STORAGE_HEAP,     /* malloc'd, reference-counted */
    STORAGE_MAPPED,   /* a large heap tensor in its own anonymous mapping: zero without being touched */
    STORAGE_ARENA,    /* in a context's arena; released by reset */
    STORAGE_POOL,     /* a gradient block from the context's pool */
    STORAGE_EXTERNAL, /* caller-owned memory (mmap) */
    STORAGE_DEVICE,   /* device memory from the device table's allocator, reference-counted */
} storage_kind;

struct hft_storage {
    void *data;
    size_t nbytes;
    int refcount; /* STORAGE_HEAP only */
    storage_kind kind;
    hft_device device;
};

/* ---------------------------------------------------------------- bump allocator (arena) */

typedef struct bump_chunk {
    char *base;
    size_t size;
} bump_chunk;

typedef struct bump {
    bump_chunk *chunks;
    int n_chunks, cap_chunks;
    int cur;     /* chunk being filled */
    size_t off;  /* offset in it */
    size_t used; /* bytes handed out since reset (for stats) */
    size_t peak;
    size_t *heap_allocations;  /* counter owned by the context */
    const hft_device_api *dev; /* chunks in this device's memory; NULL: host memory */
} bump;

void bump_init(bump *b, size_t initial, size_t *heap_counter, const hft_device_api *dev);
void *bump_alloc(bump *b, size_t bytes);
void bump_reset(bump *b); /* consolidates into one chunk when more than one was used */
void bump_free(bump *b);
size_t bump_reserved(const bump *b);

/* ---------------------------------------------------------------- gradient pool (size classes) */

typedef struct pool pool;
/* dev: blocks in that device's memory, their bookkeeping in a host-side table; NULL: host blocks. */
pool *pool_new(size_t *heap_counter, const hft_device_api *dev);
void pool_free_all(pool *p);
void *pool_alloc(pool *p, size_t bytes);
void pool_release(pool *p, void *data);
void pool_stats(const pool *p, size_t *used, size_t *peak, size_t *reserved);

/* ---------------------------------------------------------------- context */

struct hft_ctx {
    hft_device device;
    const hft_kernels *kernels;
    bump data;       /* tensor data */
    bump headers[2]; /* tensor headers, storages, nodes: alternating by generation, so a tensor kept
                        past one reset is still recognisably stale */
    uint32_t gen;
    pool *grads;
    hft_node *tape; /* last recorded node */
    uint32_t n_nodes;
    bool grad_enabled;
    hft_status status;
    char error[1024];
    uint64_t rng_seed;
    uint32_t rng_step;
    uint16_t rng_micro;
    int64_t rng_sample0;
    size_t heap_allocations;
    /* parameter-ready notification during a top-level backward (hft_ctx_on_param_ready) */
    hft_param_ready_fn param_ready;
    void *param_ready_user;
    int backward_depth;
    /* parameters read by a checkpointed function's forward (their gradients come from its node) */
    bool collecting;
    hft_tensor **collected;
    int n_collected, cap_collected;
    /* autocast (autocast.c): the low-precision dtype (HFT_F32: off) and the weight cache */
    hft_dtype autocast;
    struct ag_weight_cache *cache;
    int n_cached, cap_cached;
};
typedef struct ag_weight_cache ag_weight_cache;

/* ---------------------------------------------------------------- tape */

typedef void (*ag_backward_fn)(hft_ctx *ctx, hft_node *node, hft_tensor *grad_out);

struct hft_node {
    const char *op;
    ag_backward_fn backward;
    hft_tensor *out;
    int n_in;
    hft_tensor **in;
    void *saved; /* op-specific, in the arena */
    hft_node *prev;
    hft_tensor **params; /* parameters whose gradients the backward writes besides its inputs' (checkpoint) */
    int n_params;
};

/* ---------------------------------------------------------------- autocast (autocast.c) */

/* The dtype op's inputs take under the context's autocast (HFT_F32 when off or the op runs in f32). */
hft_dtype ag_autocast_low(hft_ctx *ctx, const char *op);
/* A weight's values rounded to `low`: its cached copy, converted when its version changed (once per
 * optimizer step), or its own data when it is held in `low`. *type says how the returned values are stored
 * (`low`, or f32 holding rounded values where the CPU has no native `low` GEMM). NULL (and the error
 * recorded) when it cannot be cached (not a contiguous parameter: the caller rounds it as an activation
 * instead). */
const void *ag_autocast_weight(hft_ctx *ctx, hft_tensor *w, hft_dtype low, hft_dtype *type);
/* dst = src rounded to `low` and widened back (dst f32, same shape). */
void ag_round_into(hft_ctx *ctx, hft_tensor *dst, const hft_tensor *src, hft_dtype low);
void ag_autocast_free(hft_ctx *ctx);

/* ---------------------------------------------------------------- helpers for ops */

/* Records the first error of the context (later ones are dropped) and returns NULL. */
hft_tensor *ag_fail(hft_ctx *ctx, hft_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* False (and the error recorded) unless the context has no error and every input is a live tensor of
 * this context's device. NULL entries are errors unless `optional` marks them. */
bool ag_check(hft_ctx *ctx, const char *op, int n, hft_tensor *const *inputs);
bool ag_check_float(hft_ctx *ctx, const char *op, const hft_tensor *t, const char *what);
bool ag_check_same_dtype(hft_ctx *ctx, const char *op, const hft_tensor *a, const hft_tensor *b);
/* Dim normalisation: -1 is the last dim. False (and error) when out of range. */
bool ag_dim(hft_ctx *ctx, const char *op, int ndim, int *dim);

void *ag_alloc(hft_ctx *ctx, size_t bytes); /* arena memory, 64-byte aligned; NULL recorded */
/* Arena memory the host reads and writes (tape nodes, saved records, staged values): the data arena on the
 * CPU, as always; the header arena when the data arena is device memory. Released like the arena. */
void *ag_host_alloc(hft_ctx *ctx, size_t bytes);
/* "cpu", "cuda:0" into buf. */
const char *ag_device_name(hft_device device, char *buf, size_t size);
/* A contiguous tensor's values readable on the host: its own data on the CPU; on a device, a copy staged in
 * host arena memory (for the small host-side checks: ids, targets, masks). NULL with the error recorded. */
const void *ag_host_data(hft_ctx *ctx, const hft_tensor *t);
/* `bytes` of host values where the context's kernels read them: `host` itself on the CPU, a copy in the
 * (device) data arena otherwise. NULL with the error recorded. */
void *ag_upload(hft_ctx *ctx, void *host, size_t bytes);
/* A one-element f32/f64 tensor's value (a loss, an upstream gradient), read back from the device if need
 * be; and the store of one. Errors are recorded (the read then gives NaN). */
double ag_read_scalar(hft_ctx *ctx, const hft_tensor *t);
void ag_write_scalar(hft_ctx *ctx, hft_tensor *t, double v);
hft_tensor *ag_header(hft_ctx *ctx); /* a zeroed arena tensor header */
hft_tensor *ag_new(hft_ctx *ctx, hft_dtype dtype, int ndim,
                   const int64_t *shape);              /* contiguous, uninitialised */
hft_tensor *ag_view_of(hft_ctx *ctx, hft_tensor *src); /* a view header sharing src's storage and base */
void ag_set_contiguous_strides(hft_tensor *t);

/* Recording: when grad mode is on and some input requires grad, appends a node whose output is `out`
 * and returns it (saved: `saved_bytes` of zeroed arena memory); otherwise returns NULL. */
hft_node *ag_record(hft_ctx *ctx, const char *op, ag_backward_fn backward, hft_tensor *out, int n_in,
                    hft_tensor *const *in, size_t saved_bytes);
bool ag_any_requires_grad(int n, hft_tensor *const *in);
/* Appends a node whatever its inputs need (an op whose parameters are not among its inputs). */
hft_node *ag_record_node(hft_ctx *ctx, const char *op, ag_backward_fn backward, hft_tensor *out, int n_in,
                         hft_tensor *const *in, size_t saved_bytes);

/* Writing a gradient for an input during backward:
 *   ag_grad g;
 *   if (ag_grad_begin(ctx, input, AG_CONTIGUOUS, &g)) { kernel writes g.dst (accumulate = g.accumulate);
 *                                                      ag_grad_end(ctx, &g); }
 * dst has the input's shape. With AG_STRIDED the destination may be the gradient's own strided view (no
 * zero strides), for kernels that take strides (GEMM, attention); AG_CONTIGUOUS gives a contiguous
 * buffer, a temporary when the gradient's layout differs, added into it by ag_grad_end. */
enum { AG_CONTIGUOUS = 0, AG_STRIDED = 1 };
typedef struct ag_grad {
    hft_tensor *dst;
    bool accumulate;
    hft_tensor *target; /* the gradient's own view */
    bool target_accumulate;
    bool temp;
} ag_grad;
bool ag_grad_begin(hft_ctx *ctx, hft_tensor *input, int layout, ag_grad *g);
void ag_grad_end(hft_ctx *ctx, ag_grad *g);

/* Walks the tape backward from root (whose gradient is `grad`, or 1), as hft_backward after its checks. */
void ag_run_backward(hft_ctx *ctx, hft_tensor *root, const hft_tensor *grad);

/* Kernel views of tensors. */
hft_kview ag_kview(const hft_tensor *t);
/* The view of `t` broadcast to `ndim`/`shape` (stride 0 on broadcast dims), as a kernel view. */
hft_kview ag_kview_broadcast(const hft_tensor *t, int ndim, const int64_t *shape);
bool ag_broadcast_shape(hft_ctx *ctx, const char *op, const hft_tensor *a, const hft_tensor *b, int *ndim,
                        int64_t *shape);

/* Kernel-level helpers used by several ops (they dispatch through the context's table). */
void ag_fill(hft_ctx *ctx, hft_tensor *t, double value);
void ag_copy_into(hft_ctx *ctx, hft_tensor *dst, const hft_tensor *src, bool accumulate);
/* dst (+)= src summed over the dims where dst has extent 1 (same ndim; src may be broadcast-larger). */
void ag_reduce_into(hft_ctx *ctx, hft_tensor *dst, const hft_tensor *src, double alpha, bool accumulate);
/* The gradient of a broadcasting op's input: reduces `g` (out's shape) to the input's shape. */
void ag_grad_from_broadcast(hft_ctx *ctx, hft_tensor *input, hft_tensor *g);

/* The typed kernel for (op, dtype) on the context's device, or NULL (error recorded, naming the op). */
#define AG_KERNEL(ctx, field, dtype, opname)                                                                 \
    ag_kernel_check((ctx), (void *)(ctx)->kernels->field[(dtype)], (opname), (dtype))                        \
        ? (ctx)->kernels->field[(dtype)]                                                                     \
        : NULL
bool ag_kernel_check(hft_ctx *ctx, void *fn, const char *op, hft_dtype dtype);

/* Pool-backed scratch during backward, released explicitly. */
hft_tensor *ag_pool_tensor(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape);
void ag_pool_tensor_release(hft_ctx *ctx, hft_tensor *t);

#endif
