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

/* Lets the system drop the pages of an entry's data from memory (they are read again from the file if
 * touched): a loader that has copied a tensor keeps resident memory near one copy of the weights. */
void hft_safetensors_release(const hft_safetensors *f, const hft_st_entry *e);

/* Writing: tensors are added (any layout, any device: a device tensor is written from a host copy made
 * at the save; written contiguous), then saved atomically. The writer
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
/* U(lo, hi) draws, the same way. */
hft_status hft_init_uniform(hft_tensor *t, double lo, double hi, uint64_t seed, uint32_t stream);
hft_status hft_init_constant(hft_tensor *t, double value);

/* ---------------------------------------------------------------- models */

/* A Hugging Face model: GPT2LMHeadModel; LlamaForCausalLM (also MistralForCausalLM and
 * Qwen2ForCausalLM); BertModel, BertForSequenceClassification, BertForMaskedLM. Parameters carry the exact
 * names transformers uses in the architecture's state dict, so a saved model loads back in transformers. */
typedef struct hft_model hft_model;

typedef enum hft_task {
    HFT_TASK_CAUSAL_LM, /* GPT2LMHeadModel, *ForCausalLM */
    HFT_TASK_MASKED_LM, /* BertForMaskedLM */
    HFT_TASK_SEQ_CLS,   /* BertForSequenceClassification */
    HFT_TASK_BASE,      /* BertModel: hidden states (and the pooler), no loss */
} hft_task;

typedef struct hft_load_options {
    const char *architecture; /* load as this architecture (e.g. a BertModel checkpoint as
                                 BertForSequenceClassification); NULL: config.json's architectures[0] */
    int64_t num_labels;       /* for a new classification head: 0 keeps config.json's */
    uint64_t seed;            /* for parameters the checkpoint lacks (new heads), and for from_config */
    /* A base held frozen in low precision (the recipe's model.dtype, for LoRA): weights of two or more dims
     * read from the checkpoint are held in hold_dtype (bf16 or f16) and frozen; with hold_as_stored, each in
     * its file's dtype when that is bf16 or f16. They are read straight into that dtype: no f32 copy is ever
     * filled. 1-D weights (norms, biases) and new parameters stay f32 and trainable. HFT_F32 (0): all f32. */
    hft_dtype hold_dtype;
    bool hold_as_stored;
} hft_load_options;

/* Loads config.json and the safetensors weights (one file or the shards of an index) of a model folder.
 * Every error names the file and the key or tensor at fault. */
hft_status hft_model_load(const char *dir, const hft_load_options *opts, hft_model **out);
/* A model with freshly initialised weights (as transformers initialises them) from the text of a
 * config.json; `source` names it in messages. */
hft_status hft_model_from_config(const char *config_json, const char *source, const hft_load_options *opts,
                                 hft_model **out);
/* Loads the weights of a model folder saved from a model of the same architecture and shapes (a checkpoint)
 * into `m`: every parameter must be there with its shape. */
hft_status hft_model_load_weights(hft_model *m, const char *dir);
/* A hex hash of the architecture and every parameter's name and shape: equal fingerprints mean a
 * checkpoint's weights and optimizer state fit the model. */
void hft_model_fingerprint(const hft_model *m, char out[33]);
/* Writes config.json and model.safetensors (tied weights once) into `dir`, creating it; each file atomically.
 * A model with an unmerged LoRA adapter is refused (save the adapter, or merge it first). */
hft_status hft_model_save(hft_model *m, const char *dir);
/* Every weight of the model (not an adapter's) converted to `dtype` (float32, bfloat16, float16) in place:
 * what an export to another dtype saves. config.json's torch_dtype follows the weights. */
hft_status hft_model_to_dtype(hft_model *m, hft_dtype dtype);
/* Moves every parameter (a held bf16 base, a LoRA adapter too) and buffer (RoPE's inv_freq) to `device` in
 * place: the tensor headers stay, so pointers to them stay valid; the flat gradient buffer is made anew on
 * the device (gradients read as zero). {HFT_CPU, 0} brings the model back. Make the optimizer after the
 * move: it holds the parameters' data pointers. A CUDA device needs its backend loaded (hft_cuda_load).
 * A model on a device runs in contexts on that device; the batch tensors it is given may be on the CPU
 * (they are copied into the context). Saving, loading weights and adapters work from/to a device model
 * (staged through host copies); incremental decoding, generation and hft_lora_merge are CPU-only for now. */
hft_status hft_model_to_device(hft_model *m, hft_device device);
/* The device the model's parameters are on. */
hft_device hft_model_device(const hft_model *m);
/* The dtype the model's matrices are held in: bf16 or f16 for a base loaded with hold_dtype, else f32. */
hft_dtype hft_model_matrix_dtype(const hft_model *m);
/* The dtype the loaded checkpoint stored its matrices in (bf16 or f16), or f32 (also for a new model): what
 * a run's final model is written in. */
hft_dtype hft_model_source_dtype(const hft_model *m);
void hft_model_free(hft_model *m);

hft_paramset *hft_model_params(hft_model *m);
const char *hft_model_architecture(const hft_model *m);
hft_task hft_model_task(const hft_model *m);
int hft_model_layers(const hft_model *m);
int64_t hft_model_hidden_size(const hft_model *m);
int64_t hft_model_vocab_size(const hft_model *m);
int64_t hft_model_num_labels(const hft_model *m);
int64_t hft_model_max_positions(const hft_model *m); /* max_position_embeddings */
/* What loading reported, as transformers warns: checkpoint tensors no parameter took, and head parameters
 * the checkpoint lacked (initialised). */
int hft_model_unused_count(const hft_model *m);
const char *hft_model_unused(const hft_model *m, int i);
int hft_model_initialized_count(const hft_model *m);
const char *hft_model_initialized(const hft_model *m, int i);

/* ---------------------------------------------------------------- LoRA adapters (PEFT) */

/* Attaches a LoRA adapter to a loaded model, configured as PEFT's LoraConfig in JSON with its field names:
 * r (8), lora_alpha (8), lora_dropout (0), target_modules (module names matched as suffixes, one regular
 * expression matched whole, or "all-linear"; absent: PEFT's default for the model type), exclude_modules,
 * layers_to_transform, layers_pattern, rank_pattern, alpha_pattern, use_rslora (scaling alpha/√r instead
 * of alpha/r), bias ("none", "lora_only", "all"), modules_to_save (kept trainable and saved whole; a
 * SEQ_CLS model saves its classifier, as PEFT does), task_type, init_lora_weights (true: A Kaiming-uniform,
 * B zeros; false: both Kaiming-uniform). Unknown keys and methods hft lacks (DoRA, ...) are refused, naming
 * `source` and the key. A is drawn from the counter-based generator keyed by `seed` and the parameter's
 * name. Every base parameter is then frozen — no gradient buffer, no optimizer state, no weight gradient in
 * backward — except the biases `bias` trains and the modules to save. The adapter's parameters are named
 * "<module>.lora_A.weight" and "<module>.lora_B.weight" (module: the linear's path, e.g.
 * "model.layers.0.self_attn.q_proj"). A failure before the model changes leaves it as it was. */
hft_status hft_lora_attach(hft_model *m, const char *config_json, const char *source, uint64_t seed);
/* Checks LoRA settings (the JSON of hft_lora_attach) without a model: types, ranges and unknown keys,
 * with messages naming `source` and the key. */
hft_status hft_lora_config_check(const char *config_json, const char *source);
/* Attaches the adapter of a folder PEFT (or hft) wrote — adapter_config.json, adapter_model.safetensors —
 * and loads its tensors: every tensor the adapter trains must be in the file, with its shape. */
hft_status hft_lora_load(hft_model *m, const char *dir);
/* Loads adapter_model.safetensors of `dir` into the adapter already attached (same configuration): resume. */
hft_status hft_lora_load_weights(hft_model *m, const char *dir);
/* Writes adapter_config.json and adapter_model.safetensors (PEFT's names: "base_model.model.<module>.
 * lora_A.weight", "<module>.base_layer.bias" for a trained bias of an adapted module, plain names for
 * modules to save) into `dir`, creating it; each file atomically. PEFT's PeftModel.from_pretrained loads it.
 */
hft_status hft_lora_save(hft_model *m, const char *dir);
/* Folds each LoRA branch into its base weight (W += scaling · B A; transposed for GPT-2's Conv1D), as
 * PEFT's merge_and_unload: afterwards the model computes the same function without the branches, and
 * hft_model_save writes a plain model directory transformers loads. */
hft_status hft_lora_merge(hft_model *m);
/* An unmerged adapter is attached. */
bool hft_model_has_adapter(const hft_model *m);
/* How many linear modules carry a LoRA branch (0 without an adapter). */
int hft_lora_module_count(const hft_model *m);

/* A hex digest of the model's own weights (names, shapes and a sample of values of every parameter not
 * part of an adapter): an adapter checkpoint records it to refuse a different base model. */
void hft_model_weights_digest(const hft_model *m, char out[33]);

/* One training or evaluation batch. */
typedef struct hft_batch {
    hft_tensor *input_ids;      /* [B, T] i64 or i32 */
    hft_tensor *attention_mask; /* [B, T] integers, 1 = token, 0 = padding; or NULL */
    hft_tensor *token_type_ids; /* [B, T] (BERT); or NULL for all zeros */
    hft_tensor *labels;         /* causal LM [B, T] (shifted inside, -100 ignored); masked LM [B, T];
                                   classification [B] integers, regression [B] or [B, num_labels] floats */
    struct hft_kv_cache
        *cache; /* incremental decoding: the keys and values of earlier tokens (hft_model_decode) */
    hft_tensor *position_ids; /* [B, T] i64 (left-padded rows); NULL: 0, 1, ... after the cached tokens */
} hft_batch;

/* ---------------------------------------------------------------- incremental decoding */

/* The keys and values of every layer for up to max_len tokens of `batch` sequences, allocated once, so
 * decoding a token allocates nothing. Causal LMs only (GPT-2, the Llama family; grouped-query heads keep
 * their fewer key/value heads). */
typedef struct hft_kv_cache hft_kv_cache;
hft_status hft_kv_cache_new(const hft_model *m, int64_t batch, int64_t max_len, hft_kv_cache **out);
void hft_kv_cache_free(hft_kv_cache *c);
int64_t hft_kv_cache_len(const hft_kv_cache *c);
void hft_kv_cache_reset(hft_kv_cache *c); /* empty again, for the next prompt */
/* Logits [B, T, V] of ids [B, T], the tokens that follow the cache's (positions continue from its length);
 * their keys and values are appended. Rows of one batch share their length (no padding yet). NULL with the
 * context's error when the cache is full or the model is not a causal LM. */
hft_tensor *hft_model_decode(hft_ctx *ctx, hft_model *m, hft_kv_cache *c, hft_tensor *ids);
/* The same for rows of different lengths, left-padded: mask [B, cached + T] over every key (0 for padding),
 * positions [B, T] (as generate derives them: the running count of the mask's ones, minus one). */
hft_tensor *hft_model_decode_masked(hft_ctx *ctx, hft_model *m, hft_kv_cache *c, hft_tensor *ids,
                                    hft_tensor *mask, hft_tensor *positions);

/* Generation, as transformers' generate: greedy, or sampling with temperature, top_k, top_p, min_p; a
 * repetition penalty either way; stops after max_new_tokens or at an end token. */
typedef struct hft_generate_options {
    int64_t max_new_tokens;
    bool do_sample;
    double temperature, top_p, min_p, repetition_penalty;
    int64_t top_k;      /* 0: off */
    const int64_t *eos; /* end tokens (generation_config.json's eos_token_id, one or several) */
    int n_eos;
    uint64_t seed; /* sampling draws from a Philox stream keyed on it */
} hft_generate_options;
hft_generate_options hft_generate_defaults(void); /* transformers' GenerationConfig defaults */
/* Called with each new token as it comes; false stops the generation. */
typedef bool (*hft_token_fn)(int64_t token, void *user);
/* The tokens that follow prompt[0..n) into out (room for max_new_tokens), *n_out of them. One KV cache is
 * allocated for the call; no step allocates. */
hft_status hft_generate(hft_ctx *ctx, hft_model *m, const int64_t *prompt, int64_t n,
                        const hft_generate_options *o, int64_t *out, int64_t *n_out, hft_token_fn on_token,
                        void *user);
/* Rows of several prompts at once (prompts[r] of lengths[r] tokens), left-padded with pad_id as transformers
 * pads them; out[r * max_new_tokens + i], n_out[r] tokens each (a finished row stops at its end token). */
hft_status hft_generate_batch(hft_ctx *ctx, hft_model *m, const int64_t *const *prompts,
                              const int64_t *lengths, int rows, int64_t pad_id, const hft_generate_options *o,
                              int64_t *out, int64_t *n_out);
/* The processors generate applies to one row of next-token logits (in place; -inf where filtered), given the
 * tokens so far: what transformers' generate returns as its scores. */
hft_status hft_process_logits(float *scores, int64_t V, const int64_t *seen, int64_t n_seen,
                              const hft_generate_options *o);
/* The perplexity of ids[0..n) as transformers' perplexity guide computes it: windows of max_length tokens
 * moved by stride, each scoring only the tokens not scored before, the windows' mean losses weighted by
 * their new tokens minus one. *tokens: that weight's total. */
hft_status hft_perplexity(hft_ctx *ctx, hft_model *m, const int64_t *ids, int64_t n, int64_t max_length,
                          int64_t stride, double *ppl, int64_t *tokens);

/* The model as stages, so callers can run blocks one at a time (activation checkpointing):
 * embed → block 0 .. n-1 → head. h is [B, T, hidden]. */
hft_tensor *hft_model_embed(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train);
hft_tensor *hft_model_block(hft_ctx *ctx, hft_model *m, int layer, hft_tensor *h, const hft_batch *b,
                            bool train);
/* The training loss of the task as a SUM, with the number of terms it sums in *count (predicted tokens;
 * for classification the batch size; for regression the number of values), the divisor a caller applies
 * over its accumulation window. transformers' loss is this sum divided by the count. */
hft_tensor *hft_model_head_loss(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b, bool train,
                                int64_t *count);
/* Logits: [B, T, vocab] for LM heads, [B, num_labels] for classification; the hidden states for a base model.
 */
hft_tensor *hft_model_head_logits(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b);
/* BERT's pooler output [B, hidden] (tanh of a dense layer on the first token). */
hft_tensor *hft_model_pooler(hft_ctx *ctx, hft_model *m, hft_tensor *h);

/* The whole forward pass. */
hft_tensor *hft_model_hidden(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train);
hft_tensor *hft_model_loss(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train, int64_t *count);
hft_tensor *hft_model_logits(hft_ctx *ctx, hft_model *m, const hft_batch *b);

#ifdef __cplusplus
}
#endif
#endif
