/* What the files of nn/ share: the model object, the family interface each architecture implements, and
 * the helpers families use to read config.json and declare their parameters. */
#ifndef HFT_NN_INTERNAL_H
#define HFT_NN_INTERNAL_H

#include <cjson/cJSON.h>

#include "nn/nn.h"

/* ---------------------------------------------------------------- config.json reading */

/* Reads typed values from a config object; the first problem is kept (status + message naming the file
 * and key, what was found and what was expected) and later reads return their defaults. JSON null reads
 * as absent, as transformers treats it. */
typedef struct nn_cfg {
    const cJSON *root;
    const char *path; /* for messages: ".../config.json" */
    hft_status status;
} nn_cfg;

bool nn_cfg_has(const nn_cfg *c, const char *key);
int64_t nn_cfg_int(nn_cfg *c, const char *key, int64_t def);
/* The first key present among key and its aliases (e.g. "n_embd", "hidden_size"). */
int64_t nn_cfg_int_alias(nn_cfg *c, const char *key, const char *alias, int64_t def);
double nn_cfg_num(nn_cfg *c, const char *key, double def);
bool nn_cfg_bool(nn_cfg *c, const char *key, bool def);
const char *nn_cfg_str(nn_cfg *c, const char *key, const char *def);
const cJSON *nn_cfg_obj(nn_cfg *c, const char *key); /* an object, or NULL when absent */
/* Records an error about `key` (unless one is recorded) and returns the status. */
hft_status nn_cfg_fail(nn_cfg *c, hft_status status, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A positive-integer check: fails with "expected a positive integer". */
int64_t nn_cfg_pos_int(nn_cfg *c, const char *key, const char *alias, int64_t def);

/* ---------------------------------------------------------------- the model */

typedef struct nn_family nn_family;

typedef enum nn_init_kind { NN_INIT_NORMAL, NN_INIT_ZEROS, NN_INIT_ONES, NN_INIT_UNIFORM } nn_init_kind;

/* How a parameter is initialised when the checkpoint does not provide it (or when training from a
 * config): as the family's _init_weights in transformers does. */
typedef struct nn_init {
    nn_init_kind kind;
    double std;       /* NN_INIT_UNIFORM: the bound b of U(-b, b) */
    int64_t zero_row; /* an embedding's padding_idx row set to zero after the draw, or -1 */
} nn_init;

/* LoRA on one linear module, as PEFT's lora.Linear: y = base(x) + scaling · B(A(dropout(x))). */
typedef struct nn_lora {
    hft_tensor *a,
        *b; /* [r, in] and [out, r]: parameters "<module>.lora_A.weight", "<module>.lora_B.weight" */
    int r;
    double alpha, scaling, dropout;
    uint16_t site; /* the dropout call site */
} nn_lora;

/* A linear module (nn.Linear, or GPT-2's Conv1D whose weight is stored [in, out]) as transformers names it.
 * Families declare their projections through nn_linear_decl so that adapters can find them by name. */
typedef struct nn_linear {
    hft_tensor *weight, *bias; /* bias NULL when the module has none */
    char *module;              /* "transformer.h.0.attn.c_attn": the weight's name without ".weight" */
    bool conv1d;
    bool output; /* the output embedding or classifier "all-linear" leaves out */
    int64_t in, out;
    nn_lora lora; /* lora.a NULL unless an adapter targets this module */
} nn_linear;

typedef struct nn_adapter nn_adapter; /* the attached LoRA adapter (nn/lora.c) */

/* All-reduce bucket size for the gradients: DDP's default, 25 MiB. */
#define NN_BUCKET_BYTES ((size_t)25 << 20)

typedef struct nn_param_info {
    nn_init init;
    bool adapter; /* belongs to a LoRA adapter, not to the model's own state dict */
    bool head;    /* may be missing from a checkpoint (a new task head): then initialised and reported */
    bool loaded;  /* filled from the checkpoint */
} nn_param_info;

struct hft_model {
    const nn_family *family;
    char *architecture;
    hft_task task;
    cJSON *config; /* config.json as loaded or given; written back by save */
    char *config_path;
    hft_paramset *params;
    nn_param_info *info; /* per parameter, in registration order */
    int info_cap;
    void *impl; /* the family's parsed config and parameter pointers */
    int n_layers;
    int64_t hidden_size, vocab_size, num_labels;
    int64_t max_positions; /* the longest sequence the position scheme covers (max_position_embeddings) */
    const char
        *base_prefix; /* "transformer.", "model.", "bert." or "": names in base-model checkpoints lack it */
    uint64_t seed;
    hft_status status;
    char **unused; /* checkpoint tensors that no parameter took (transformers warns about these) */
    int n_unused;
    char **initialized; /* head parameters the checkpoint lacked, initialised here */
    int n_initialized;
    nn_linear **linears; /* every linear module, in declaration order (pointers into impl) */
    int n_linears, linears_cap;
    nn_adapter *adapter;  /* NULL unless a LoRA adapter is attached */
    hft_dtype hold_dtype; /* hft_load_options' */
    bool hold_as_stored;
    hft_dtype source_dtype; /* the dtype the checkpoint's matrices came in (F32 for a new model) */
};

struct hft_kv_cache {
    int n_layers;
    hft_tensor **k, **v; /* per layer [batch, max_len, kv_heads, head_dim], f32 */
    int64_t batch, max_len, len;
};

/* Decoding with a cache: where this batch's positions start (0 without one). */
int64_t nn_past(const hft_batch *b);
/* Keys and values of the new tokens written into the cache, and k, v replaced by views of every cached
 * token; false (context error) when they do not fit. Without a cache it does nothing. */
bool nn_cache_kv(hft_ctx *ctx, const hft_batch *b, int layer, hft_tensor **k, hft_tensor **v);
hft_tensor *nn_positions_from(hft_ctx *ctx, int64_t start, int64_t T);
/* t itself when it is on the context's device (or NULL), else a copy of it in the context's arena there:
 * how a batch made on the host reaches a model on a GPU. NULL with the context's error on failure. */
hft_tensor *nn_to_ctx(hft_ctx *ctx, hft_tensor *t);
/* The batch with its tensors on the context's device (nn_to_ctx each; the cache is shared). */
hft_batch nn_batch_to_ctx(hft_ctx *ctx, const hft_batch *b);
/* A heap tensor's storage moved to `device` in place (header kept); nothing when it is there already. */
hft_status nn_tensor_move(hft_tensor *t, hft_device device);
/* Every frozen parameter not on `device` moved there (the parameter set must not be finalized; the trainable
 * ones go there with hft_paramset_finalize_on). */
hft_status nn_frozen_params_to(hft_model *m, hft_device device);
/* "hft_model_to_device" refusals of CPU-only features: HFT_EUNSUPPORTED naming `what` unless on the CPU. */
hft_status nn_require_cpu(const hft_model *m, const char *what);

/* An architecture family: GPT-2, Llama (also Mistral, Qwen2), BERT. */
struct nn_family {
    const char *name;
    const char *const *architectures; /* NULL-terminated: "GPT2LMHeadModel", ... */
    /* Parses m->config (through an nn_cfg on it), refuses settings that change the math and are not
     * implemented, declares the parameters with nn_param, and sets m->impl, task, n_layers, sizes and
     * base_prefix. */
    hft_status (*build)(hft_model *m);
    void (*free_impl)(void *impl);
    /* Checkpoint tensors that carry no parameter (mask buffers, inv_freq, tied copies): not reported. */
    bool (*ignored)(const hft_model *m, const char *tensor_name);
    hft_tensor *(*embed)(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train);
    hft_tensor *(*block)(hft_ctx *ctx, hft_model *m, int layer, hft_tensor *h, const hft_batch *b,
                         bool train);
    hft_tensor *(*head_loss)(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b, bool train,
                             int64_t *count);
    hft_tensor *(*head_logits)(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b);
    hft_tensor *(*pooler)(hft_ctx *ctx, hft_model *m, hft_tensor *h); /* NULL when the family has none */
    /* causal LMs: the key/value heads and head size a KV cache holds per layer; NULL otherwise */
    void (*kv_shape)(const hft_model *m, int64_t *heads, int64_t *dim);
    /* Moves the family's own buffers (not parameters) to a device in place; NULL when it has none. */
    hft_status (*to_device)(hft_model *m, hft_device device);
};

extern const nn_family nn_family_gpt2;
extern const nn_family nn_family_llama;
extern const nn_family nn_family_bert;

/* Declares a parameter of the model with its HF name (printf-style), shape, initialisation and tags.
 * Values are zeros until loaded or initialised. On failure records m->status and returns NULL. */
hft_tensor *nn_param(hft_model *m, nn_init init, uint32_t tags, bool head, int ndim, const int64_t *shape,
                     const char *name_fmt, ...) __attribute__((format(printf, 7, 8)));

/* Declares a linear module: the weight "<module>.weight" [out, in] (Conv1D: [in, out]) and, when b_init is
 * given, the bias "<module>.bias" [out] (tagged no-decay); records it among the model's linear modules.
 * `module` is printf-style. On failure records m->status and returns false. */
bool nn_linear_decl(hft_model *m, nn_linear *lin, nn_init w_init, const nn_init *b_init, bool head,
                    bool conv1d, int64_t in, int64_t out, const char *module_fmt, ...)
    __attribute__((format(printf, 9, 10)));
/* The module applied to x [..., in] → [..., out], with its LoRA branch when one is attached (dropout on
 * the branch's input only when training). */
hft_tensor *nn_linear_forward(hft_ctx *ctx, const nn_linear *lin, hft_tensor *x, bool train);
void nn_linears_free(hft_model *m);
void nn_adapter_free(nn_adapter *a);

/* Initialises one tensor as `init` says, from the model seed and the parameter's name (so a value does
 * not depend on the order parameters are declared in). */
hft_status nn_init_tensor(hft_tensor *t, nn_init init, uint64_t seed, const char *name);

/* ---------------------------------------------------------------- checkpoints */

/* The safetensors files of a model folder: model.safetensors, or the shards listed by
 * model.safetensors.index.json. */
typedef struct nn_checkpoint {
    char *dir;
    hft_safetensors **files;
    int n_files;
} nn_checkpoint;

hft_status nn_checkpoint_open(const char *dir, nn_checkpoint *ck);
void nn_checkpoint_close(nn_checkpoint *ck);
/* The entry named `name` in any file (its file in *file), or NULL. */
const hft_st_entry *nn_checkpoint_find(const nn_checkpoint *ck, const char *name,
                                       const hft_safetensors **file);

/* ---------------------------------------------------------------- helpers for families */

/* The default position ids [1, T] (0 .. T-1) in the arena. */
hft_tensor *nn_positions(hft_ctx *ctx, int64_t T);
/* labels shifted for causal LM: position t predicts label t + 1, the last position predicts nothing. */
hft_tensor *nn_shift_labels(hft_ctx *ctx, hft_tensor *labels);
/* Checks input_ids is [B, T] of i32/i64 within [1, max_positions] tokens; records an error otherwise. */
bool nn_check_ids(hft_ctx *ctx, const hft_model *m, const hft_batch *b, int64_t max_positions);

#endif
