/* kernels: the numeric work of hft on raw buffers, and the few process-wide basics every layer needs
 * (status codes and messages, dtypes, the thread count, CPU features, the counter-based RNG).
 * Kernels know nothing of tensors, tapes or models: they take pointers, sizes and strides. Each backend
 * fills one hft_kernels table; autograd/ picks the entry by (op, dtype, device). */
#ifndef HFT_KERNELS_H
#define HFT_KERNELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status and messages */

typedef enum hft_status {
    HFT_OK = 0,
    HFT_EINVAL,       /* an argument is wrong: shape, dtype, range */
    HFT_EIO,          /* a file could not be read or written */
    HFT_EFORMAT,      /* a file's contents are malformed */
    HFT_EUNSUPPORTED, /* valid, but not implemented (the message says what) */
    HFT_ENOMEM,       /* an allocation failed */
    HFT_EDEVICE,      /* a device (GPU, driver) error */
    HFT_EDIST,        /* a distributed (MPI, NCCL) error */
    HFT_ESTATE,       /* an object used in a state that does not allow it (freed arena, consumed graph) */
    HFT_ENUMERIC,     /* NaN or inf where a finite number is required */
} hft_status;

/* Sets the calling thread's last error and returns `status`, so `return hft_error(...)` reads naturally. */
hft_status hft_error(hft_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The calling thread's last error message ("" when none). Valid until the next hft_error on this thread. */
const char *hft_error_message(void);
hft_status hft_error_status(void);
void hft_error_clear(void);
const char *hft_status_name(hft_status status);

#define HFT_TRY(expr)                                                                                        \
    do {                                                                                                     \
        hft_status hft_try_status_ = (expr);                                                                 \
        if (hft_try_status_ != HFT_OK) return hft_try_status_;                                               \
    } while (0)

/* ---------------------------------------------------------------- files */

/* Every file hft writes goes through here: written to a temporary beside `path`, then on commit
 * flushed, fsynced, renamed into place and the folder fsynced. abort removes the temporary. */
typedef struct hft_atomic_file {
    FILE *fp;
    char *tmp_path;
    char *final_path;
} hft_atomic_file;
hft_status hft_atomic_open(hft_atomic_file *f, const char *path);
hft_status hft_atomic_commit(hft_atomic_file *f);
void hft_atomic_abort(hft_atomic_file *f);
hft_status hft_fsync_dir(const char *dir);
/* "dir/name" (no doubled slash) into a malloc'd string; NULL when out of memory. */
char *hft_path_join(const char *dir, const char *name);
/* A whole file, malloc'd and NUL-terminated (its length in *len when len is given); NULL with the error
 * recorded ("path: cannot open: ..."). */
char *hft_read_text(const char *path, size_t *len);
/* text (and a final newline when `newline`) written to path atomically. */
hft_status hft_write_text(const char *path, const char *text, bool newline);

/* ---------------------------------------------------------------- dtypes and devices */

typedef enum hft_dtype {
    HFT_F32 = 0,
    HFT_F64,
    HFT_BF16,
    HFT_F16,
    HFT_I32,
    HFT_I64,
    HFT_U8,
    HFT_DTYPE_COUNT
} hft_dtype;

size_t hft_dtype_size(hft_dtype dtype);
const char *hft_dtype_name(hft_dtype dtype);
bool hft_dtype_is_float(hft_dtype dtype);

/* Round-to-nearest-even conversions, NaN preserved, as torch converts. */
uint16_t hft_f32_to_bf16(float x);
float hft_bf16_to_f32(uint16_t x);
uint16_t hft_f32_to_f16(float x);
float hft_f16_to_f32(uint16_t x);

typedef enum hft_device_type { HFT_CPU = 0, HFT_CUDA = 1, HFT_DEVICE_TYPE_COUNT } hft_device_type;
typedef struct hft_device {
    hft_device_type type;
    int index;
} hft_device;

/* ---------------------------------------------------------------- threads and CPU features */

/* One setting governs every thread hft uses: OpenBLAS (OpenMP build) and hft's own loops share the
 * OpenMP pool. hft_runtime_init reads OMP_NUM_THREADS (default: the cores available) and checks that
 * the OpenBLAS loaded is the OpenMP build; it is called by every entry point and is idempotent. */
hft_status hft_runtime_init(void);
void hft_threads_set(int n);
int hft_threads_get(void);

typedef enum hft_isa { HFT_ISA_GENERIC = 0, HFT_ISA_AVX2, HFT_ISA_AVX512, HFT_ISA_COUNT } hft_isa;
/* The widest ISA path this CPU runs; HFT_ISA env var ("generic", "avx2", "avx512") may lower it. */
hft_isa hft_cpu_isa(void);
const char *hft_isa_name(hft_isa isa);
bool hft_cpu_has_avx512_bf16(void);

/* ---------------------------------------------------------------- counter-based RNG (Philox 4x32-10) */

/* A random stream is named by (seed, step, micro_step, site); within it, element e of sample s draws
 * from counter (e / 4, s, step, site << 16 | micro_step), lane e % 4. A dropout mask therefore depends
 * only on where it is used and on the global sample index, so it is the same under recompute, after a
 * resume and at any world size. */
typedef struct hft_rng_key {
    uint64_t seed;
    uint32_t step;
    uint16_t micro_step;
    uint16_t site;
} hft_rng_key;

void hft_philox4x32(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);
/* Uniform float in [0, 1) from 24 random bits. */
static inline float hft_u32_to_unit(uint32_t x) {
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

/* ---------------------------------------------------------------- kernel arguments */

#define HFT_MAX_DIMS 8

/* A strided view of raw memory; dtype is given by the table slot. Strides are in elements. */
typedef struct hft_kview {
    void *data;
    int ndim;
    int64_t shape[HFT_MAX_DIMS];
    int64_t stride[HFT_MAX_DIMS];
} hft_kview;

/* What a GEMM applies to its result before storing it (hft_gemm_args.epilogue). */
typedef enum hft_gemm_epilogue {
    HFT_EPILOGUE_NONE = 0,
    HFT_EPILOGUE_GELU_TANH, /* C = gelu_tanh(value), as HFT_MAP_GELU_TANH computes it */
} hft_gemm_epilogue;

/* C = alpha op(A) op(B) + beta C for `batch` matrices. Matrices are row-major with leading dimension
 * ld*; trans_* selects op(X) = Xᵀ; trans_c says C is stored transposed (column-major, ldc between
 * columns), which the kernel computes as Cᵀ = op(B)ᵀ op(A)ᵀ. Batch strides of 0 broadcast an operand;
 * a batch stride of 0 on C sums the batch into one C, in batch order. */
typedef struct hft_gemm_args {
    bool trans_a, trans_b, trans_c;
    int64_t m, n, k;
    double alpha, beta;
    const void *a;
    int64_t lda;
    const void *b;
    int64_t ldb;
    void *c;
    int64_t ldc;
    int64_t batch;
    int64_t stride_a, stride_b, stride_c;
    /* The f32 GEMM only: operands held in bf16 or f16 (autocast's weight cache), multiplied exactly with f32
     * accumulation; HFT_F32 (0) for f32 operands. */
    hft_dtype a_type, b_type;
    /* The epilogue (all zero: none, so a caller that does not name these fields is unchanged). Batch 1 and
     * trans_c false only. value = alpha op(A) op(B) + beta C + bias, with bias [n] in C's dtype added to
     * every row (NULL: no bias); then GELU_TANH stores value in pre_act (same layout and ldc as C; NULL when
     * not wanted) and gelu_tanh(value) in C. pre_act is only meaningful with GELU_TANH. */
    const void *bias;
    hft_gemm_epilogue epilogue;
    void *pre_act;
} hft_gemm_args;

/* Element-wise maps: out (+)= f(in[0], in[1], in[2]) over out's shape; the inputs are views already
 * expanded to out's shape (stride 0 where they broadcast). Backward ops are maps of their own. */
typedef enum hft_map_op {
    /* forward, binary */
    HFT_MAP_ADD,
    HFT_MAP_SUB,
    HFT_MAP_MUL,
    HFT_MAP_DIV,
    /* forward, unary (alpha: pow exponent, scale factor) */
    HFT_MAP_COPY,
    HFT_MAP_SCALE,
    HFT_MAP_NEG,
    HFT_MAP_EXP,
    HFT_MAP_LOG,
    HFT_MAP_SQRT,
    HFT_MAP_POW,
    HFT_MAP_RELU,
    HFT_MAP_GELU_TANH,
    HFT_MAP_GELU_ERF,
    HFT_MAP_SILU,
    HFT_MAP_TANH,
    HFT_MAP_SIGMOID,
    /* backward: in0 = upstream gradient g, in1 = forward input x or output y as named */
    HFT_MAP_EXP_BWD_Y,  /* g * y */
    HFT_MAP_LOG_BWD_X,  /* g / x */
    HFT_MAP_SQRT_BWD_Y, /* g * 0.5 / y */
    HFT_MAP_POW_BWD_X,  /* g * alpha * x^(alpha-1) */
    HFT_MAP_RELU_BWD_X, /* g * (x > 0) */
    HFT_MAP_GELU_TANH_BWD_X,
    HFT_MAP_GELU_ERF_BWD_X,
    HFT_MAP_SILU_BWD_X,
    HFT_MAP_TANH_BWD_Y,    /* g * (1 - y²) */
    HFT_MAP_SIGMOID_BWD_Y, /* g * y (1 - y) */
    HFT_MAP_DIV_BWD_B,     /* -g * in1 / in2, with in1 = a / b (the forward output), in2 = b */
    HFT_MAP_OP_COUNT
} hft_map_op;

typedef struct hft_map_args {
    hft_map_op op;
    int n_in;
    hft_kview out;
    hft_kview in[3];
    double alpha;
    bool accumulate;
} hft_map_args;

/* out[o] (+)= alpha * Σ in[i] over the dims where out has extent 1 and `in` does not. Same ndim;
 * out is contiguous. The order of summation is fixed and independent of the thread count. */
typedef struct hft_reduce_args {
    hft_kview out;
    hft_kview in;
    double alpha;
    bool accumulate;
} hft_reduce_args;

/* Copy (or add) a strided view into a strided view of the same shape, converting dtypes. Where dst has
 * stride 0 on a dimension that src does not, the values are summed (accumulate must be true). */
typedef struct hft_copy_args {
    hft_dtype dst_dtype, src_dtype;
    hft_kview dst, src;
    bool accumulate;
} hft_copy_args;

/* Softmax family over the middle axis of a contiguous [outer, n, inner] array. */
typedef struct hft_softmax_args {
    bool log;
    int64_t outer, n, inner;
    const void *x;   /* forward input */
    const void *y;   /* forward output (backward) */
    const void *dy;  /* upstream gradient (backward) */
    void *out;       /* y (forward) or dx (backward) */
    bool accumulate; /* backward only */
} hft_softmax_args;

/* Layer norm / RMS norm over the last axis of contiguous [rows, cols] arrays. mean and rstd are per
 * row in the data's dtype (f32 for bf16/f16 data on CUDA; mean unused for RMS norm). Backward accumulates
 * weight/bias grads over rows in fixed chunks, combined in order, using `scratch` (hft_norm_scratch_bytes).
 */
typedef struct hft_norm_args {
    bool rms;
    int64_t rows, cols;
    double eps;
    const void *x, *weight, *bias; /* weight/bias may be NULL */
    void *y;
    void *mean, *rstd;
    const void *dy;
    void *dx, *dweight, *dbias; /* NULL when not wanted */
    bool accumulate_dx, accumulate_dweight, accumulate_dbias;
    void *scratch;
} hft_norm_args;

/* Embedding: out[i, :] = weight[ids[i], :]; backward: dweight[ids[i], :] += dout[i, :] in order of i,
 * skipping padding_idx (as torch's padding_idx) and ids outside [0, vocab). */
typedef struct hft_embedding_args {
    int64_t n, vocab, dim;
    hft_dtype id_dtype; /* HFT_I32 or HFT_I64 */
    const void *ids;
    const void *weight;
    void *out;
    const void *dout;
    void *dweight;
    int64_t padding_idx; /* -1 for none */
} hft_embedding_args;

/* Dropout over [samples, per_sample] elements: keep with probability 1 - p, scale kept by 1/(1-p). */
typedef struct hft_dropout_args {
    int64_t samples, per_sample;
    int64_t sample0; /* global index of the first sample */
    hft_rng_key key;
    double p;
    const void *x;
    void *y;
    bool accumulate; /* backward: y += mask * x / (1-p) */
} hft_dropout_args;

/* Cross-entropy over rows of logits [rows, classes] with integer targets. Forward writes per-row
 * losses (0 for ignored rows) and lse (optional); backward writes dlogits = scale * (softmax - smoothed
 * one-hot), zero for ignored rows, and may run in place (dlogits == logits, accumulate false). label
 * smoothing as torch: (1-ε)·nll + ε·mean_c(-log p_c). Targets are in range (the caller checks). */
typedef struct hft_xent_args {
    int64_t rows, classes;
    int64_t ld; /* row stride of logits / dlogits */
    const void *logits;
    hft_dtype target_dtype;
    const void *targets;
    int64_t ignore_index;
    double label_smoothing;
    void *row_loss; /* forward: [rows], same dtype as logits (f32 for bf16/f16 logits on CUDA) */
    void *lse;      /* [rows], same dtype as logits (f64 for the gradient checks; f32 for bf16/f16 on CUDA) */
    void *dlogits;  /* backward */
    double scale;
    bool accumulate;
} hft_xent_args;

/* Rotary embedding, rotate_half convention: x [B, T, H, D] (any strides on B, T, H; D contiguous),
 * pos [B, T] (i64), inv_freq [D/2] in the data's dtype. out [B, T, H, D] (strides given). angle =
 * pos · inv_freq in that dtype (f32 for f32 data, as transformers computes it);
 * cos and sin are multiplied by `scaling` (transformers' attention_scaling). Backward (inverse=true)
 * rotates by the negative angle. */
typedef struct hft_rope_args {
    int64_t batch, seq, heads, dim;
    const void *x;
    int64_t x_stride_b, x_stride_t, x_stride_h;
    const int64_t *pos;
    const void *inv_freq;
    double scaling;
    void *out;
    bool inverse, accumulate;
    int64_t out_stride_b, out_stride_t, out_stride_h;
} hft_rope_args;

/* Fused scaled dot-product attention. q [B, Tq, Hq, D], k and v [B, Tk, Hkv, D] with Hq a multiple of
 * Hkv; D contiguous, other strides free. o and do [B, Tq, Hq, D] contiguous; lse [B, Hq, Tq] in the data's
 * dtype (f64 for the gradient checks; f32 for bf16/f16 data on CUDA; -inf for a row with no visible key).
 * Key j is visible to query i when: causal → j <= i + (Tk - Tq) (bottom-right aligned); key_mask
 * (u8 [B, Tk], 0 = padding) is set; segment ids (i32) are equal. A row with no visible key outputs
 * zeros. Dropout on the probabilities draws element (b, h, i, j) as sample sample0 + b, offset
 * (h·Tq + i)·Tk + j. Never holds more than a tile of scores per thread. */
typedef struct hft_attn_args {
    int64_t batch, tq, tk, hq, hkv, dim;
    double scale;
    bool causal;
    const uint8_t *key_mask;
    const int32_t *q_segments, *k_segments;
    double dropout_p;
    hft_rng_key dropout_key;
    int64_t sample0;
    const void *q, *k, *v;
    int64_t q_sb, q_st, q_sh; /* strides of q over batch, time, head */
    int64_t k_sb, k_st, k_sh;
    int64_t v_sb, v_st, v_sh;
    void *o;
    void *lse;
    /* backward */
    const void *dout;
    void *dq, *dk, *dv; /* NULL when not wanted; strides as below, D contiguous */
    int64_t dq_sb, dq_st, dq_sh;
    int64_t dk_sb, dk_st, dk_sh;
    int64_t dv_sb, dv_st, dv_sh;
    bool accumulate_dq, accumulate_dk, accumulate_dv;
    void *scratch; /* hft_attn_scratch_bytes */
} hft_attn_args;

/* ---------------------------------------------------------------- optimizer steps */

/* One parameter's slice of an optimizer's flat buffers: the gradient and every state buffer are laid out
 * like the parameter set's flat gradient, so element i of the parameter lives at offset + i in each;
 * the parameter's values are wherever their owner put them. lr and weight_decay: its group's, this step. */
typedef struct hft_optim_slice {
    void *param;
    int64_t offset, n;
    double lr, weight_decay;
} hft_optim_slice;

/* The element-wise optimizers update every slice in one fused pass (read p, g and the state, write p and
 * the state), split into fixed ranges of the flat buffers over the threads. Slices are in ascending
 * offset and do not overlap. Scalars are rounded to the data's dtype as torch rounds them. */

/* torch's fused Adam/AdamW CPU kernel (FusedAdamKernel.cpp, adam_math), operation for operation:
 * Adam adds weight_decay·p to the gradient, AdamW (decoupled) multiplies p by 1 - lr·weight_decay;
 * m ← lerp(m, g, 1-β1); v ← β2·v + (1-β2)·g·g; (amsgrad: v̂ ← max(v̂, v)); p ← p - lr/(1-β1^t) · m /
 * (√v / √(1-β2^t) + eps). */
typedef struct hft_adam_args {
    int n_slices;
    const hft_optim_slice *slices;
    const void *grad;
    void *exp_avg, *exp_avg_sq, *max_exp_avg_sq; /* max_exp_avg_sq: amsgrad only */
    double beta1, beta2, eps;
    int64_t step; /* the step being taken, from 1 */
    bool decoupled, amsgrad;
} hft_adam_args;

/* torch.optim.SGD (_single_tensor_sgd): g ← g + wd·p; with momentum b ← g on the first step, else
 * b ← momentum·b + (1-dampening)·g; g ← nesterov ? g + momentum·b : b; p ← p - lr·g. */
typedef struct hft_sgd_args {
    int n_slices;
    const hft_optim_slice *slices;
    const void *grad;
    void *momentum_buffer; /* NULL when momentum is 0 */
    double momentum, dampening;
    bool nesterov, first_step;
} hft_sgd_args;

/* Lion as lion-pytorch writes it: p ← p·(1 - lr·wd); p ← p - lr·sign(β1·m + (1-β1)·g);
 * m ← β2·m + (1-β2)·g. */
typedef struct hft_lion_args {
    int n_slices;
    const hft_optim_slice *slices;
    const void *grad;
    void *exp_avg;
    double beta1, beta2;
} hft_lion_args;

/* transformers' Adafactor update of one parameter, given the lr it computed (from the parameter's RMS):
 * factored (a [batch, rows, cols] view of a parameter of 2 dims or more) keeps row and column means of
 * g² + eps1, else a full second moment; the update is clipped to RMS clip_threshold, scaled by lr, averaged
 * with β1 when exp_avg is given, and weight decay adds decay·p (decay = -weight_decay·lr). Sums run in
 * f64 over a fixed partition. */
typedef struct hft_adafactor_args {
    void *param;
    const void *grad;
    int64_t batch, rows, cols;
    bool factored;
    void *exp_avg_sq_row, *exp_avg_sq_col; /* factored: [batch, rows], [batch, cols] */
    void *exp_avg_sq;                      /* not factored: like the parameter */
    void *exp_avg;                         /* β1 set: like the parameter; else NULL */
    void *scratch;                         /* factored: batch·(rows + cols) elements */
    double beta1, beta2t, eps1, clip_threshold, lr, decay;
} hft_adafactor_args;

/* ---------------------------------------------------------------- device memory and synchronisation */

typedef enum hft_copy_kind { HFT_COPY_H2D = 0, HFT_COPY_D2H, HFT_COPY_D2D } hft_copy_kind;

/* What a device backend adds to its kernel table: memory, copies and waiting. Kernels of a device table
 * take device pointers and are queued on the backend's compute stream of the current device; they return
 * at once. A failure inside a queued kernel is kept (the first one) and reported by the next call that
 * returns a status (copy to the host, synchronize). */
typedef struct hft_device_api {
    int (*device_count)(void);
    hft_status (*set_device)(int index);
    /* "NVIDIA H100 80GB HBM3, sm_90, 79.1 GiB" into buf. */
    hft_status (*describe)(int index, char *buf, size_t size);
    void *(*alloc)(size_t bytes); /* NULL with the error recorded */
    void (*free)(void *p);
    void *(*alloc_pinned)(size_t bytes); /* page-locked host memory, for copies that overlap compute */
    void (*free_pinned)(void *p);
    /* Ordered after the kernels queued before it; a copy to the host waits for it to land. The source of a
     * copy to the device may be reused at once: small ones (batches) are staged in pinned memory and queued
     * without the host waiting, large ones are waited for. */
    hft_status (*copy)(void *dst, const void *src, size_t bytes, hft_copy_kind kind);
    hft_status (*zero)(void *p, size_t bytes);
    hft_status (*synchronize)(void);
    /* Deterministic kernels only (on by default): every reduction in a fixed order, no atomics on floats,
     * GEMM algorithms that do not split K nondeterministically. */
    void (*set_deterministic)(bool on);
    /* The current device's free and total memory (cudaMemGetInfo). */
    hft_status (*mem_info)(size_t *free_bytes, size_t *total_bytes);
    /* The compute stream (a cudaStream_t; NULL on the emulator), for a library with streams of its own to
     * order its work after the kernels queued so far without the host waiting (NCCL's collectives). */
    void *(*compute_stream)(void);
} hft_device_api;

/* ---------------------------------------------------------------- the kernel table of a backend */

typedef struct hft_kernels {
    const char *name;
    hft_device_type device;
    const hft_device_api *dev; /* NULL for the CPU */
    void (*gemm[HFT_DTYPE_COUNT])(const hft_gemm_args *);
    void (*map[HFT_DTYPE_COUNT])(const hft_map_args *);
    void (*reduce[HFT_DTYPE_COUNT])(const hft_reduce_args *);
    void (*copy)(const hft_copy_args *);
    /* dst[i] = src[i] rounded to `low` (bf16 or f16) precision, kept in f32; contiguous, dst may be src */
    void (*round_to)(hft_dtype low, float *dst, const float *src, int64_t n);
    void (*fill[HFT_DTYPE_COUNT])(const hft_kview *dst, double value);
    void (*softmax_fwd[HFT_DTYPE_COUNT])(const hft_softmax_args *);
    void (*softmax_bwd[HFT_DTYPE_COUNT])(const hft_softmax_args *);
    void (*norm_fwd[HFT_DTYPE_COUNT])(const hft_norm_args *);
    void (*norm_bwd[HFT_DTYPE_COUNT])(const hft_norm_args *);
    size_t (*norm_scratch_bytes)(const hft_norm_args *, size_t elsize);
    void (*embedding_fwd[HFT_DTYPE_COUNT])(const hft_embedding_args *);
    void (*embedding_bwd[HFT_DTYPE_COUNT])(const hft_embedding_args *);
    void (*dropout[HFT_DTYPE_COUNT])(const hft_dropout_args *);
    void (*xent_fwd[HFT_DTYPE_COUNT])(const hft_xent_args *);
    void (*xent_bwd[HFT_DTYPE_COUNT])(const hft_xent_args *);
    void (*rope[HFT_DTYPE_COUNT])(const hft_rope_args *);
    void (*attn_fwd[HFT_DTYPE_COUNT])(const hft_attn_args *);
    void (*attn_bwd[HFT_DTYPE_COUNT])(const hft_attn_args *);
    size_t (*attn_scratch_bytes)(const hft_attn_args *, size_t elsize, bool backward);
    /* Sum of `n` values in a fixed order independent of the thread count (loss totals, norms). */
    double (*sum[HFT_DTYPE_COUNT])(const void *x, int64_t n);
    /* Optimizers. sumsq: Σ x² in f64, in a fixed order independent of the thread count (norms). */
    void (*adam_step[HFT_DTYPE_COUNT])(const hft_adam_args *);
    void (*sgd_step[HFT_DTYPE_COUNT])(const hft_sgd_args *);
    void (*lion_step[HFT_DTYPE_COUNT])(const hft_lion_args *);
    void (*adafactor_step[HFT_DTYPE_COUNT])(const hft_adafactor_args *);
    double (*sumsq[HFT_DTYPE_COUNT])(const void *x, int64_t n);
} hft_kernels;

/* The table for a device type, or NULL when that backend is not available in this process (for CUDA: until
 * hft_cuda_load has succeeded). */
const hft_kernels *hft_kernels_for(hft_device_type device);

/* Loads the CUDA module once and returns its table, or NULL with an error saying why (no module built, no
 * driver, no GPU). The module is $HFT_CUDA_MODULE when set, else libhft_cuda.so beside the executable or
 * on the library path. Binaries start and run on the CPU where it cannot load. */
const hft_kernels *hft_cuda_load(void);

/* Where a module loaded at run time (libhft_cuda.so, libhft_nccl.so) is: $env when set, else the first of
 * <this executable's folder>/file, ../lib/file and ../file that exists, else `file` alone (the library
 * path). One path, so that a module that is there but cannot load reports its own reason. */
void hft_module_path(const char *env, const char *file, char *out, size_t size);

/* What the loader hands the CUDA module, so that the module reports errors through hft_error. */
#define HFT_CUDA_MODULE_ABI 1
typedef struct hft_cuda_host {
    int abi;
    hft_status (*error)(hft_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void (*philox)(const uint32_t key[2], const uint32_t ctr[4], uint32_t out[4]);
} hft_cuda_host;
/* The module's one entry point (dlsym "hft_cuda_module_open"): its table, or NULL with the error reported
 * through host->error. */
typedef const hft_kernels *(*hft_cuda_module_open_fn)(const hft_cuda_host *host);
/* The CPU table of a given ISA path (for tests that compare paths). */
const hft_kernels *hft_cpu_kernels(hft_isa isa);

#ifdef __cplusplus
}
#endif
#endif
