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

typedef enum nn_init_kind { NN_INIT_NORMAL, NN_INIT_ZEROS, NN_INIT_ONES } nn_init_kind;

/* How a parameter is initialised when the checkpoint does not provide it (or when training from a
 * config): as the family's _init_weights in transformers does. */
typedef struct nn_init {
    nn_init_kind kind;
    double std;
    int64_t zero_row; /* an embedding's padding_idx row set to zero after the draw, or -1 */
} nn_init;

typedef struct nn_param_info {
    nn_init init;
    bool head;   /* may be missing from a checkpoint (a new task head): then initialised and reported */
    bool loaded; /* filled from the checkpoint */
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
};

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
};

extern const nn_family nn_family_gpt2;
extern const nn_family nn_family_llama;
extern const nn_family nn_family_bert;

/* Declares a parameter of the model with its HF name (printf-style), shape, initialisation and tags.
 * Values are zeros until loaded or initialised. On failure records m->status and returns NULL. */
hft_tensor *nn_param(hft_model *m, nn_init init, uint32_t tags, bool head, int ndim, const int64_t *shape,
                     const char *name_fmt, ...) __attribute__((format(printf, 7, 8)));

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
