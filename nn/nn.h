/* nn: Hugging Face formats and models on top of autograd — safetensors files, configs, modules and the
 * model families. (Issue 3 fills in configs, modules and families; this header starts with the file
 * format they all read and write.) */
#ifndef HFT_NN_H
#define HFT_NN_H

#include "autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- safetensors */

/* An open safetensors file, memory-mapped read-only. The header is validated as the reference
 * implementation validates it (safetensors' Rust crate): length within bounds, valid UTF-8 JSON, known
 * dtypes, shape × dtype size equal to the byte range, tensors contiguous from offset 0 with no gaps or
 * overlaps and covering the whole buffer; hft also refuses duplicate names. A file that fails gets an
 * HFT_EFORMAT error naming the file and, where one is at fault, the tensor, with what was found and
 * what was expected. Valid files hft cannot represent (more than HFT_MAX_DIMS dims, a dim of 2^63 or
 * more, "\u0000" in a string) get HFT_EUNSUPPORTED; an unreadable file HFT_EIO. */
typedef struct hft_safetensors hft_safetensors;

typedef struct hft_st_entry {
    const char *name;
    const char *st_dtype; /* the file's dtype string, e.g. "BF16" */
    int dtype; /* the hft_dtype it loads as (BOOL → HFT_U8), or -1 when hft has none (F8, U64 ...) */
    int ndim;
    int64_t shape[HFT_MAX_DIMS];
    const void *data; /* inside the mapping; aligned to nothing but what the file gives */
    size_t nbytes;
} hft_st_entry;

hft_status hft_safetensors_open(const char *path, hft_safetensors **out);
void hft_safetensors_close(hft_safetensors *f);
const char *hft_safetensors_path(const hft_safetensors *f);
int hft_safetensors_count(const hft_safetensors *f);
/* In header order (for files written by hft, the order tensors were added); NULL out of range. */
const hft_st_entry *hft_safetensors_entry(const hft_safetensors *f, int index);
const hft_st_entry *hft_safetensors_find(const hft_safetensors *f, const char *name); /* NULL: none */
/* A "__metadata__" value, or NULL. */
const char *hft_safetensors_metadata(const hft_safetensors *f, const char *key);
/* A heap tensor with the entry's values as `dtype` (converted by the copy kernel when it differs). With
 * `zero_copy`, the same dtype and data aligned to the dtype size, the tensor wraps the mapping: it is
 * read-only (a write faults) and valid only while the file is open. Otherwise the values are copied.
 * HFT_EINVAL for an unknown name, HFT_EUNSUPPORTED for a dtype hft has no type for (F8, I16, U64 ...). */
hft_status hft_safetensors_load(const hft_safetensors *f, const char *name, hft_dtype dtype, bool zero_copy,
                                hft_tensor **out);

/* Writing: tensors are added (any layout, CPU; written contiguous), then saved atomically. The writer
 * keeps pointers to the tensors, which must stay alive until the save. The header lists the tensors in
 * the order they were added, "__metadata__" first, and is padded with spaces so the data starts 8-byte
 * aligned, as HF's writer does; the data is laid out by descending element size (HF sorts by alignment
 * too), so every tensor is aligned for zero-copy loading. hft dtypes are written as F32, F64, BF16,
 * F16, I32, I64, U8. Adding a name twice, "__metadata__", or a name or metadata that is not UTF-8 is
 * HFT_EINVAL; setting a metadata key again replaces its value. */
typedef struct hft_st_writer hft_st_writer;
hft_st_writer *hft_st_writer_new(void);
void hft_st_writer_free(hft_st_writer *w);
hft_status hft_st_writer_add(hft_st_writer *w, const char *name, const hft_tensor *t);
hft_status hft_st_writer_metadata(hft_st_writer *w, const char *key, const char *value);
hft_status hft_st_writer_save(hft_st_writer *w, const char *path);

/* ---------------------------------------------------------------- initialisation */

/* Fills a heap tensor (f32/f64) with N(mean, std²) draws from the Philox stream (seed, stream): the
 * same values on every machine and thread count. */
hft_status hft_init_normal(hft_tensor *t, double mean, double std, uint64_t seed, uint32_t stream);
hft_status hft_init_constant(hft_tensor *t, double value);

/* ---------------------------------------------------------------- GPT-2 (GPT2LMHeadModel) */

typedef struct hft_gpt2_config {
    int64_t vocab_size, n_positions, n_embd, n_layer, n_head, n_inner; /* n_inner 0: 4·n_embd */
    double layer_norm_epsilon;
    double resid_pdrop, embd_pdrop, attn_pdrop;
    double initializer_range;
    hft_gelu_approx activation; /* "gelu_new" → tanh */
} hft_gpt2_config;

/* GPT2Config's defaults (GPT-2 small). */
void hft_gpt2_config_default(hft_gpt2_config *c);

typedef struct hft_gpt2 hft_gpt2;
/* A model initialised as transformers initialises it (normal(0, initializer_range), the residual
 * projections scaled by 1/sqrt(2·n_layer), norms at 1 and 0, biases 0), with HF's parameter names. */
hft_status hft_gpt2_new(const hft_gpt2_config *c, uint64_t seed, hft_gpt2 **out);
void hft_gpt2_free(hft_gpt2 *m);
hft_paramset *hft_gpt2_params(hft_gpt2 *m);
const hft_gpt2_config *hft_gpt2_config_of(const hft_gpt2 *m);

/* One transformer block on hidden states [B, T, n_embd]; key_mask [B, T] (HF attention_mask) or NULL.
 * `train` turns dropout on (sites derive from the layer index). */
hft_tensor *hft_gpt2_block(hft_ctx *ctx, hft_gpt2 *m, int layer, hft_tensor *h, hft_tensor *key_mask,
                           bool train);
/* Final hidden states [B, T, n_embd] (after ln_f) for input_ids [B, T] (i64). */
hft_tensor *hft_gpt2_hidden(hft_ctx *ctx, hft_gpt2 *m, hft_tensor *input_ids, hft_tensor *key_mask,
                            bool train);
/* The causal-LM loss as GPT2LMHeadModel computes it (labels shifted inside: position t predicts label
 * t+1; -100 ignored), returned as the SUM over predicted tokens with their count in *count. */
hft_tensor *hft_gpt2_lm_loss(hft_ctx *ctx, hft_gpt2 *m, hft_tensor *input_ids, hft_tensor *labels,
                             hft_tensor *key_mask, bool train, int64_t *count);
/* Logits [B, T, vocab] (for evaluation and generation; training uses the fused loss). */
hft_tensor *hft_gpt2_logits(hft_ctx *ctx, hft_gpt2 *m, hft_tensor *input_ids, hft_tensor *key_mask);

#ifdef __cplusplus
}
#endif
#endif
