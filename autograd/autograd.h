/* autograd: tensors, memory, the tape, and every differentiable op of hft.
 *
 * A context (hft_ctx) holds what one micro-batch needs: an activation arena (every op output and view
 * is allocated there, and hft_ctx_reset releases them all at once), a pool for gradients of activations
 * (each freed as soon as backward has used it), the tape, grad mode, the RNG position and a sticky
 * error. Ops take and return tensor pointers; an op that fails returns NULL, records the first error in
 * the context, and every later op given a NULL returns NULL too, so model code reads as a formula and
 * checks once (hft_ctx_status) — cairo's and OpenGL's sticky-error pattern.
 *
 * Persistent tensors (parameters, inputs) are created with hft_tensor_new and freed by their owner. */
#ifndef HFT_AUTOGRAD_H
#define HFT_AUTOGRAD_H

#include "kernels/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct hft_ctx hft_ctx;
typedef struct hft_node hft_node;
typedef struct hft_storage hft_storage;

enum {
    HFT_TENSOR_HEAP = 1u << 0,       /* header owned by the heap (hft_tensor_free) */
    HFT_TENSOR_PARAM = 1u << 1,      /* a parameter: its grad lives in a parameter set's flat buffer */
    HFT_TENSOR_GRAD_SET = 1u << 2,   /* grad holds values (else it reads as zeros, not yet written) */
    HFT_TENSOR_RETAIN_GRAD = 1u << 3 /* keep a non-leaf's gradient after backward (tests, inspection) */
};

/* Plain data: shape and strides may be read freely; change them only through the view functions. */
typedef struct hft_tensor {
    hft_dtype dtype;
    hft_device device;
    int ndim;
    int64_t shape[HFT_MAX_DIMS];
    int64_t stride[HFT_MAX_DIMS]; /* in elements */
    int64_t offset;               /* in elements, into the storage */
    hft_storage *storage;
    bool requires_grad;
    uint32_t flags;
    struct hft_tensor *grad; /* leaves: the accumulated gradient; others: set during backward */
    hft_node *grad_fn;       /* the tape node that produced this tensor, NULL for leaves */
    struct hft_tensor *base; /* views: the tensor whose gradient they share; NULL otherwise */
    hft_ctx *ctx;            /* the context whose arena holds this tensor; NULL for heap tensors */
    uint32_t gen;            /* the arena generation it was made in */
    uint32_t version;        /* bumped by whoever updates the values in place (optimizer step) */
    int32_t pending_reads;   /* parameters, during a backward: tape nodes yet to run that read it */
    const char *name;
} hft_tensor;

/* ---------------------------------------------------------------- contexts */

/* A context on a CUDA device (its backend loaded with hft_cuda_load) keeps the data of its arena and pool in
 * device memory and runs every op with the device's kernels; every tensor given to its ops must be on that
 * device (hft_tensor_to), and f64 is refused there. Headers and the tape stay on the host. */
typedef struct hft_ctx_options {
    size_t arena_bytes; /* initial activation arena; it grows as needed and consolidates on reset */
    hft_device device;  /* the CPU by default */
} hft_ctx_options;

hft_ctx *hft_ctx_new(const hft_ctx_options *opts); /* NULL options: defaults. NULL on failure. */
void hft_ctx_free(hft_ctx *ctx);
/* Releases every tensor made in the context since the last reset, the tape and any error. */
void hft_ctx_reset(hft_ctx *ctx);
hft_status hft_ctx_status(const hft_ctx *ctx);
/* The device the context's tensors live on (its options' device): where callers put the inputs they make. */
hft_device hft_ctx_device(const hft_ctx *ctx);
/* Records an error in the context as an op would (the first one sticks) and returns NULL: for the layers
 * above that build formulas from ops and find bad input on the way. */
hft_tensor *hft_ctx_fail(hft_ctx *ctx, hft_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *hft_ctx_error(const hft_ctx *ctx);
void hft_ctx_clear_error(hft_ctx *ctx);
/* Grad mode: when off, ops record nothing. Returns the previous mode (for scoped use). */
bool hft_set_grad_enabled(hft_ctx *ctx, bool enabled);
bool hft_grad_enabled(const hft_ctx *ctx);
/* The random stream of the current micro-batch (see hft_rng_key); sample0 is the global index of the
 * first sample in the local batch. */
void hft_ctx_set_rng(hft_ctx *ctx, uint64_t seed, uint32_t step, uint16_t micro_step, int64_t sample0);
/* Called during a backward for each parameter (a leaf tensor of a parameter set that requires grad) once
 * the last tape node that can write its gradient has run: from then on its gradient is final for this
 * backward, and data-parallel training can start reducing it while backward goes on. Parameters read
 * inside hft_checkpoint count as read by the checkpoint's node. A parameter that no node reads is not
 * reported. NULL turns it off. */
typedef void (*hft_param_ready_fn)(hft_tensor *param, void *user);
void hft_ctx_on_param_ready(hft_ctx *ctx, hft_param_ready_fn fn, void *user);

typedef struct hft_memory_stats {
    size_t arena_used, arena_peak, arena_reserved;
    size_t pool_used, pool_peak, pool_reserved;
    size_t heap_allocations; /* allocations the context has made from the heap, ever */
} hft_memory_stats;
void hft_ctx_memory(const hft_ctx *ctx, hft_memory_stats *stats);

/* Arena scopes for recomputation: memory allocated after a mark is released by hft_ctx_release. */
typedef struct hft_arena_mark {
    int data_chunk, header_chunk;
    size_t data_offset, header_offset;
    size_t data_used, header_used;
    uint32_t gen;
} hft_arena_mark;
hft_arena_mark hft_ctx_mark(hft_ctx *ctx);
void hft_ctx_release(hft_ctx *ctx, hft_arena_mark mark);

/* ---------------------------------------------------------------- persistent tensors */

hft_tensor *hft_tensor_new(hft_dtype dtype, int ndim, const int64_t *shape); /* zero-filled */
hft_tensor *hft_tensor_from_data(hft_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* Wraps memory owned by the caller (a memory-mapped file); it must outlive the tensor. */
hft_tensor *hft_tensor_wrap(hft_dtype dtype, int ndim, const int64_t *shape, void *data);
/* A heap tensor sharing another's storage (reference-counted), contiguous from `offset` elements. */
hft_tensor *hft_tensor_alias(hft_tensor *src, int64_t offset, int ndim, const int64_t *shape);
void hft_tensor_free(hft_tensor *t); /* also frees its grad; NULL is ignored */
/* A zero-filled heap tensor on a device (the CPU: hft_tensor_new). NULL with the error recorded where that
 * device's backend is not loaded (hft_cuda_load) or its memory is exhausted. */
hft_tensor *hft_tensor_new_on(hft_device device, hft_dtype dtype, int ndim, const int64_t *shape);
/* A contiguous heap copy of src's values on `device`, in src's dtype. */
hft_tensor *hft_tensor_to(const hft_tensor *src, hft_device device);
/* t takes src's values, dtype, storage and device (same shape; src is freed); the header, and every pointer
 * to it, stay. How a loader holds a weight in bf16 without ever filling an f32 copy. */
hft_status hft_tensor_adopt(hft_tensor *t, hft_tensor *src);
/* t's values converted to `dtype` in place (new storage; the header stays). */
hft_status hft_tensor_convert(hft_tensor *t, hft_dtype dtype);
void hft_tensor_set_requires_grad(hft_tensor *t, bool requires_grad);
/* Marks the gradient as zero without touching memory; the next backward overwrites it. */
void hft_tensor_zero_grad(hft_tensor *t);

/* ---------------------------------------------------------------- tensor queries */

void *hft_tensor_data(const hft_tensor *t); /* the first element's address */
int64_t hft_tensor_numel(const hft_tensor *t);
size_t hft_tensor_nbytes(const hft_tensor *t);
bool hft_tensor_is_contiguous(const hft_tensor *t);
bool hft_tensor_same_shape(const hft_tensor *a, const hft_tensor *b);
/* "f32[4, 8]" into buf. */
const char *hft_tensor_describe(const hft_tensor *t, char *buf, size_t size);
/* Copies src's values into dst (same shape, any layouts and dtypes, converting, on any devices: a copy
 * between the CPU and a GPU goes through a contiguous staging copy), outside any context: for loading
 * weights and optimizer state, and for moving them between devices. */
hft_status hft_tensor_copy(hft_tensor *dst, const hft_tensor *src);
/* Copies the tensor's values (any layout, any device) to a contiguous f64 host buffer: for tests and
 * debugging. */
hft_status hft_tensor_to_f64(const hft_tensor *t, double *out);
/* The gradient of a tensor after backward (leaves, or non-leaves marked with hft_retain_grad). NULL when
 * none was computed. A gradient not yet written reads as zeros through hft_tensor_to_f64 of NULL. */
const hft_tensor *hft_tensor_grad(const hft_tensor *t);
void hft_retain_grad(hft_tensor *t);

/* ---------------------------------------------------------------- arena tensors */

hft_tensor *hft_empty(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape);
hft_tensor *hft_zeros(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape);
hft_tensor *hft_full(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape, double value);
/* data: host memory, copied to the context's device. */
hft_tensor *hft_from_data(hft_ctx *ctx, hft_dtype dtype, int ndim, const int64_t *shape, const void *data);

/* ---------------------------------------------------------------- views (no copy, no tape node) */
/* Dimensions may be negative (counted from the end), as in torch. */

hft_tensor *hft_reshape(hft_ctx *ctx, hft_tensor *x, int ndim,
                        const int64_t *shape); /* one -1 allowed; copies
                                                only when no view fits */
hft_tensor *hft_transpose(hft_ctx *ctx, hft_tensor *x, int dim0, int dim1);
hft_tensor *hft_permute(hft_ctx *ctx, hft_tensor *x, const int *perm);
hft_tensor *hft_narrow(hft_ctx *ctx, hft_tensor *x, int dim, int64_t start, int64_t length);
hft_tensor *hft_expand(hft_ctx *ctx, hft_tensor *x, int ndim, const int64_t *shape); /* -1 keeps a dim */
hft_tensor *hft_unsqueeze(hft_ctx *ctx, hft_tensor *x, int dim);
hft_tensor *hft_squeeze(hft_ctx *ctx, hft_tensor *x, int dim);
/* Splits along dim into n pieces of the given sizes (NULL: equal). Returns false on error. */
bool hft_split(hft_ctx *ctx, hft_tensor *x, int dim, int n, const int64_t *sizes, hft_tensor **out);

/* ---------------------------------------------------------------- ops (forward records backward) */

hft_tensor *hft_contiguous(hft_ctx *ctx, hft_tensor *x); /* x itself when already contiguous */
hft_tensor *hft_cast(hft_ctx *ctx, hft_tensor *x, hft_dtype dtype);
hft_tensor *hft_concat(hft_ctx *ctx, int n, hft_tensor *const *xs, int dim);

/* Broadcasting arithmetic, as torch. */
hft_tensor *hft_add(hft_ctx *ctx, hft_tensor *a, hft_tensor *b);
hft_tensor *hft_sub(hft_ctx *ctx, hft_tensor *a, hft_tensor *b);
hft_tensor *hft_mul(hft_ctx *ctx, hft_tensor *a, hft_tensor *b);
hft_tensor *hft_div(hft_ctx *ctx, hft_tensor *a, hft_tensor *b);
hft_tensor *hft_scale(hft_ctx *ctx, hft_tensor *x, double alpha);

hft_tensor *hft_neg(hft_ctx *ctx, hft_tensor *x);
hft_tensor *hft_exp(hft_ctx *ctx, hft_tensor *x);
hft_tensor *hft_log(hft_ctx *ctx, hft_tensor *x);
hft_tensor *hft_sqrt(hft_ctx *ctx, hft_tensor *x);
hft_tensor *hft_pow(hft_ctx *ctx, hft_tensor *x, double exponent);
hft_tensor *hft_relu(hft_ctx *ctx, hft_tensor *x);
typedef enum hft_gelu_approx { HFT_GELU_ERF, HFT_GELU_TANH } hft_gelu_approx;
hft_tensor *hft_gelu(hft_ctx *ctx, hft_tensor *x, hft_gelu_approx approx);
hft_tensor *hft_silu(hft_ctx *ctx, hft_tensor *x);
hft_tensor *hft_tanh(hft_ctx *ctx, hft_tensor *x);
hft_tensor *hft_sigmoid(hft_ctx *ctx, hft_tensor *x);

/* Reductions over the listed dims (n_dims 0: all). */
hft_tensor *hft_sum(hft_ctx *ctx, hft_tensor *x, int n_dims, const int *dims, bool keepdim);
hft_tensor *hft_mean(hft_ctx *ctx, hft_tensor *x, int n_dims, const int *dims, bool keepdim);

/* a [..., M, K] @ b [..., K, N] with broadcast batch dims; transposed views are used without copies. */
hft_tensor *hft_matmul(hft_ctx *ctx, hft_tensor *a, hft_tensor *b);
/* x [..., K] Wᵀ + bias, W [N, K] (nn.Linear; pass hft_transpose of a Conv1D weight), bias [N] or NULL. */
hft_tensor *hft_linear(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, hft_tensor *bias);
/* LoRA's linear in one op: x Wᵀ + bias + scale · (xd Aᵀ) Bᵀ, with A [r, K] and B [N, r]; xd is the branch's
 * input (x itself, or x after dropout). One [.., N] output, and only the [M, r] bottleneck saved beside the
 * inputs, where the ops composed would keep four tensors; backward computes no gradient for a weight that
 * does not require one (the frozen base). */
hft_tensor *hft_lora_linear(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, hft_tensor *bias, hft_tensor *xd,
                            hft_tensor *a, hft_tensor *b, double scale);

/* Over `dim` (negative counts from the end). A row that is all -inf gives NaN, as torch does. */
hft_tensor *hft_softmax(hft_ctx *ctx, hft_tensor *x, int dim);
hft_tensor *hft_log_softmax(hft_ctx *ctx, hft_tensor *x, int dim);
/* Over the last dim; weight and bias may be NULL. */
hft_tensor *hft_layer_norm(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, hft_tensor *bias, double eps);
hft_tensor *hft_rms_norm(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, double eps);
/* weight [V, D], ids (i32/i64) of any shape → [..., D]. padding_idx < 0: none. */
hft_tensor *hft_embedding(hft_ctx *ctx, hft_tensor *weight, hft_tensor *ids, int64_t padding_idx);
/* Drops with probability p using the context's random stream at call site `site` (dim 0 = samples). */
hft_tensor *hft_dropout(hft_ctx *ctx, hft_tensor *x, double p, uint16_t site);

typedef struct hft_xent_opts {
    int64_t ignore_index;   /* -100, as torch and transformers */
    double label_smoothing; /* 0 */
} hft_xent_opts;
#define HFT_XENT_DEFAULTS ((hft_xent_opts){.ignore_index = -100, .label_smoothing = 0.0})
/* Summed cross-entropy of logits [..., C] against integer targets [...]; *count (optional) receives
 * the number of non-ignored targets, the divisor a caller chooses to apply (DESIGN: the loss is a sum
 * with an external divisor). */
hft_tensor *hft_cross_entropy(hft_ctx *ctx, hft_tensor *logits, hft_tensor *targets, hft_xent_opts opts,
                              int64_t *count);
/* torch's reduction='mean': the sum over non-ignored targets divided by their count. */
hft_tensor *hft_cross_entropy_mean(hft_ctx *ctx, hft_tensor *logits, hft_tensor *targets, hft_xent_opts opts);
/* The classifier fused with the loss: cross_entropy(hidden [..., D] Wᵀ + bias, targets) summed, with W
 * [V, D]. The logits are made a block of rows at a time and never held whole. */
hft_tensor *hft_linear_cross_entropy(hft_ctx *ctx, hft_tensor *hidden, hft_tensor *weight, hft_tensor *bias,
                                     hft_tensor *targets, hft_xent_opts opts, int64_t *count);
typedef enum hft_reduction { HFT_REDUCE_MEAN, HFT_REDUCE_SUM } hft_reduction;
hft_tensor *hft_mse(hft_ctx *ctx, hft_tensor *input, hft_tensor *target, hft_reduction reduction);

/* Rotary embedding (rotate_half, as transformers): x [B, T, H, D], positions [B, T] or [1, T] (i64),
 * inv_freq [D/2] (in x's dtype), cos and sin scaled by `scaling` (1 unless the RoPE type says otherwise). */
hft_tensor *hft_rope(hft_ctx *ctx, hft_tensor *x, hft_tensor *positions, hft_tensor *inv_freq,
                     double scaling);

typedef struct hft_attn_opts {
    bool causal;
    double scale;           /* 0: 1/sqrt(D) */
    hft_tensor *key_mask;   /* [B, Tk], nonzero = attend (HF attention_mask), any integer dtype; or NULL */
    hft_tensor *q_segments; /* [B, Tq] integer segment ids (packed documents); or NULL */
    hft_tensor *k_segments; /* [B, Tk]; NULL with q_segments set means the same ids (Tq == Tk) */
    double dropout_p;
    uint16_t dropout_site;
} hft_attn_opts;
/* q [B, Tq, Hq, D], k and v [B, Tk, Hkv, D] (Hq a multiple of Hkv) → [B, Tq, Hq, D]. One fused op with
 * an online softmax; see hft_attn_args for the masking rules. */
hft_tensor *hft_attention(hft_ctx *ctx, hft_tensor *q, hft_tensor *k, hft_tensor *v,
                          const hft_attn_opts *opts);

/* ---------------------------------------------------------------- parameter sets */

/* The parameters of a model, each with its HF name and tags that nn/ sets; optim/ and distributed/ read
 * the tags, never nn/'s module types. Frozen values stay where their owner put them (heap, or a mapped
 * safetensors file for a frozen base). The trainable ones live in ONE flat f32 buffer of values and ONE
 * of gradients, laid out alike in reverse registration order, so that all-reduce buckets (about
 * bucket_bytes each) are contiguous ranges that fill in the order backward produces them, and a sharded
 * optimizer's range of values is a range of one buffer. Frozen parameters get no gradient at all. */
enum {
    HFT_PARAM_FROZEN = 1u << 0,   /* no gradient, no optimizer state */
    HFT_PARAM_NO_DECAY = 1u << 1, /* biases and norm weights: the HF Trainer's no-weight-decay group */
};

typedef struct hft_param {
    const char *name;
    hft_tensor *value;
    hft_tensor *grad; /* a view into the flat buffer; NULL when frozen */
    uint32_t tags;
    int bucket;          /* all-reduce bucket, -1 when frozen */
    int64_t grad_offset; /* in the flat buffer, elements */
} hft_param;

typedef struct hft_paramset hft_paramset;
hft_paramset *hft_paramset_new(void);
void hft_paramset_free(hft_paramset *ps); /* frees the value tensors it owns, and the gradients */
/* Adds a parameter; the set takes ownership of `value`. Names must be unique. Not after finalize. */
hft_status hft_paramset_add(hft_paramset *ps, const char *name, hft_tensor *value, uint32_t tags);
/* Allocates the flat buffers, moves every trainable value into the values buffer (its tensor header stays,
 * so whoever holds it sees the move) and sets it to require grad. */
hft_status hft_paramset_finalize(hft_paramset *ps, size_t bucket_bytes);
/* The same with the flat buffers on `device`, wherever the trainable values are now: each is copied
 * straight into its place there, so moving a model to a GPU holds its trainable values there once. */
hft_status hft_paramset_finalize_on(hft_paramset *ps, size_t bucket_bytes, hft_device device);
/* Cuts a finalized set's gradients into buckets of about bucket_bytes again (torch DDP's bucket_cap_mb);
 * nothing moves. */
void hft_paramset_set_bucket_bytes(hft_paramset *ps, size_t bucket_bytes);
/* Undoes finalize (frees the gradients) so that parameters can be added and tags changed — what attaching
 * an adapter does to a loaded model — before finalizing again. */
hft_status hft_paramset_reopen(hft_paramset *ps);
int hft_paramset_count(const hft_paramset *ps);
hft_param *hft_paramset_get(hft_paramset *ps, int index);
hft_param *hft_paramset_find(hft_paramset *ps, const char *name);
/* The flat f32 gradient buffer (NULL when nothing trains) and its element count. */
hft_tensor *hft_paramset_grads(hft_paramset *ps);
/* The flat f32 buffer of the trainable values, laid out as the gradients (NULL when nothing trains). */
hft_tensor *hft_paramset_values(hft_paramset *ps);
int64_t hft_paramset_trainable_numel(const hft_paramset *ps);
int hft_paramset_bucket_count(const hft_paramset *ps);
/* Marks every gradient as zero without touching memory (the next backward overwrites). */
void hft_paramset_zero_grad(hft_paramset *ps);
/* Writes zeros into the gradients no backward has written since zero_grad, so the flat buffer can be
 * read whole (clipping, all-reduce). */
void hft_paramset_materialize_grads(hft_paramset *ps);

/* ---------------------------------------------------------------- activation checkpointing */

/* Runs fn(ctx, inputs, user) → output without keeping the activations inside it: only the inputs and the
 * output stay in the arena. Backward re-runs fn on the same inputs (same RNG position, so the same
 * dropout masks) inside an arena scope, backpropagates through it, and releases the recomputed
 * activations at once — peak memory holds one block's activations instead of every block's. fn must be
 * a pure function of its inputs, the parameters it reads and `user` (which must stay valid until
 * backward). */
/* ---------------------------------------------------------------- autocast (mixed precision) */

/* torch.autocast for this context: with bfloat16 or float16, the ops of the policy table marked low take
 * their inputs in that dtype with f32 accumulation (weights through a per-step cache); the others run in f32.
 * HFT_F32 turns it off (the default). */
hft_status hft_set_autocast(hft_ctx *ctx, hft_dtype dtype);
hft_dtype hft_autocast_dtype(const hft_ctx *ctx);
typedef struct hft_autocast_rule {
    const char *op;
    bool low; /* inputs in the autocast dtype; else f32 */
    const char *how;
} hft_autocast_rule;
int hft_autocast_rule_count(void);
const hft_autocast_rule *hft_autocast_rule_get(int i);
/* x rounded to `low` (bf16 or f16), held in f32; the gradient passes through unchanged. x itself when low
 * is HFT_F32. */
hft_tensor *hft_autocast_round(hft_ctx *ctx, hft_tensor *x, hft_dtype low);

typedef hft_tensor *(*hft_checkpoint_fn)(hft_ctx *ctx, hft_tensor *const *inputs, void *user);
hft_tensor *hft_checkpoint(hft_ctx *ctx, hft_checkpoint_fn fn, void *user, int n_in,
                           hft_tensor *const *inputs);

/* ---------------------------------------------------------------- backward */

/* Runs the tape backward from `root`, seeding it with `grad` (NULL: 1 for a one-element root).
 * Gradients accumulate into leaves (hft_tensor_grad), across calls, until zeroed. */
hft_status hft_backward(hft_ctx *ctx, hft_tensor *root, const hft_tensor *grad);

#ifdef __cplusplus
}
#endif
#endif
