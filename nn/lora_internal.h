/* What the LoRA files of nn/ share: the parsed adapter configuration (PEFT's LoraConfig), the attached
 * adapter, and the name matching. */
#ifndef HFT_NN_LORA_INTERNAL_H
#define HFT_NN_LORA_INTERNAL_H

#include <regex.h>

#include "nn/nn_internal.h"

typedef struct lora_regex {
    regex_t re;
    bool compiled;
} lora_regex;

/* Compiles a Python regular expression for a whole-name match; with `suffix`, for PEFT's pattern-key match
 * re.match(r"(.*\.)?(p)$", name). `where` names the setting in messages. */
hft_status lora_regex_compile(const char *py, bool suffix, const char *where, lora_regex *out);
bool lora_regex_match(const lora_regex *r, const char *s);
void lora_regex_free(lora_regex *r);
/* PEFT's list match: key is one of names, or ends with "." + one of them. */
bool lora_name_listed(const char *key, char *const *names, int n);
/* The layer index PEFT reads from a module path for layers_to_transform; -1 when it finds none. */
int64_t lora_layer_index(const char *key, char *const *patterns, int n_patterns);

typedef enum lora_bias { LORA_BIAS_NONE, LORA_BIAS_LORA_ONLY, LORA_BIAS_ALL } lora_bias;

typedef struct lora_pattern {
    char *key;
    lora_regex re;
    double value;
} lora_pattern;

/* LoraConfig as hft reads it. A string list is NULL-free; `*_regex` is set when the setting was one string.
 */
typedef struct lora_config {
    int r;
    double alpha, dropout;
    bool rslora, init_weights, all_linear;
    lora_bias bias;
    char **targets;
    int n_targets;
    lora_regex target_regex;
    char **excludes;
    int n_excludes;
    lora_regex exclude_regex;
    char **to_save; /* modules_to_save */
    int n_to_save;
    bool *to_save_auto; /* added for a SEQ_CLS task, as PEFT adds them: not an error when absent */
    lora_pattern *rank_pattern, *alpha_pattern;
    int n_rank_pattern, n_alpha_pattern;
    int64_t *layers;
    int n_layers; /* layers_to_transform; 0: every layer */
    char **layers_pattern;
    int n_layers_pattern;
    char *task_type; /* NULL when unset */
} lora_config;

/* Parses LoraConfig fields from a JSON object. `strict` (a recipe) refuses keys it does not know; an
 * adapter_config.json may carry fields of newer PEFT versions, which are ignored when they hold their
 * default and refused when they ask for something hft does not do. Messages name `source` and the key. */
hft_status lora_config_parse(const cJSON *obj, const char *source, bool strict, lora_config *out);
void lora_config_free(lora_config *c);

struct nn_adapter {
    lora_config cfg;
    cJSON *json;         /* adapter_config.json as hft writes it */
    nn_linear **modules; /* the modules with a LoRA branch, in declaration order */
    int n_modules;
    bool merged;
};

/* Attaches an adapter configured by `given` (LoraConfig fields); see hft_lora_attach. */
hft_status nn_lora_attach(hft_model *m, const cJSON *given, const char *source, bool strict, uint64_t seed);

/* PEFT's name in adapter_model.safetensors for a parameter the adapter saves (LoRA factors, trained
 * biases — "<module>.base_layer.bias" when the module has a LoRA branch — and modules_to_save). */
void lora_peft_name(const hft_model *m, const char *param, char *out, size_t size);
/* Whether parameter i is saved with the adapter: it trains (LoRA factors, biases per `bias`,
 * modules_to_save). */
bool lora_saves_param(const hft_model *m, int i);

#endif
