/* Recipes: one table of keys drives parsing, defaults, range checks, did-you-mean suggestions, the
 * command-line overrides and --help, so they cannot disagree. */
#include "trainer/recipe.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cjson/cJSON.h>
#include <yaml.h>

#include "nn/nn.h"

typedef enum kind {
    K_STR,   /* any string */
    K_FILE,  /* a path that must exist when set */
    K_INT,   /* an integer in [lo, hi] */
    K_NUM,   /* a number in [lo, hi] (lo exclusive when lo_open) */
    K_BOOL,  /* true/false (also yes/no, on/off) */
    K_STEPS, /* a count of steps, or below 1 a ratio of the total */
    K_ENUM,  /* one of `choices` */
    K_TRI,   /* true/false, or unset (-1) */
    K_ONUM,  /* a number, or unset (NaN) */
    K_OINT,  /* an integer, or unset (INT64_MIN) */
    K_LIST,  /* a list of strings (a YAML list, or [a, b] on the command line), kept as JSON text */
} kind;

typedef struct key_spec {
    const char *section, *name, *alias;
    kind kind;
    size_t off;
    const char *def;
    double lo, hi;
    bool lo_open;
    const char *choices;
    const char *help;
} key_spec;

#define F(field) offsetof(hft_recipe, field)
#define INF      HUGE_VAL
static const key_spec keys[] = {
    {"model", "path", NULL, K_FILE, F(model_path), "", 0, 0, false, NULL,
     "a Hugging Face model folder (config.json + safetensors)"},
    {"model", "config", NULL, K_FILE, F(model_config), "", 0, 0, false, NULL,
     "a config.json to train a new model from scratch, instead of path"},
    {"model", "architecture", NULL, K_STR, F(model_architecture), "", 0, 0, false, NULL,
     "load as this architecture, e.g. BertForSequenceClassification (adds a new head)"},
    {"model", "num_labels", NULL, K_INT, F(num_labels), "0", 0, 1e9, false, NULL,
     "labels of a new classification head (0: the model config's)"},
    {"model", "dtype", "torch_dtype", K_ENUM, F(model_dtype), "float32", 0, 0, false,
     "float32|bfloat16|float16|auto",
     "how the weights are held (only float32 yet; bf16: true trains with bf16 GEMM inputs)"},
    {"tokenizer", "path", NULL, K_STR, F(tokenizer_path), "", 0, 0, false, NULL,
     "tokenizer.json or its folder; \"bytes\" for a byte-level tokenizer; default: the model folder"},
    {"data", "train_file", NULL, K_FILE, F(train_file), "", 0, 0, false, NULL, "the training data"},
    {"data", "eval_file", NULL, K_FILE, F(eval_file), "", 0, 0, false, NULL, "the evaluation data"},
    {"data", "format", NULL, K_ENUM, F(data_format), "auto", 0, 0, false,
     "auto|text|jsonl|csv|tsv|tokens|hdf5", "file format; auto: from the extension"},
    {"data", "task", NULL, K_ENUM, F(data_task), "auto", 0, 0, false,
     "auto|causal_lm|prompt_completion|chat|classification",
     "what the examples are; auto: from the model and the format"},
    {"data", "text_field", NULL, K_STR, F(text_field), "text", 0, 0, false, NULL,
     "JSONL/CSV field holding the text"},
    {"data", "text_pair_field", NULL, K_STR, F(text_pair_field), "", 0, 0, false, NULL,
     "field holding a second text (classification of pairs)"},
    {"data", "prompt_field", NULL, K_STR, F(prompt_field), "prompt", 0, 0, false, NULL,
     "field holding the prompt (no loss on it)"},
    {"data", "completion_field", NULL, K_STR, F(completion_field), "completion", 0, 0, false, NULL,
     "field holding the completion"},
    {"data", "messages_field", NULL, K_STR, F(messages_field), "messages", 0, 0, false, NULL,
     "field holding chat messages"},
    {"data", "label_field", NULL, K_STR, F(label_field), "label", 0, 0, false, NULL,
     "field holding the class label"},
    {"data", "max_length", NULL, K_INT, F(max_length), "512", 1, 1e9, false, NULL,
     "tokens per example (truncation); with packing, the block size"},
    {"data", "packing", NULL, K_BOOL, F(packing), "true", 0, 0, false, NULL,
     "pack documents into blocks of max_length (causal LM text)"},
    {"data", "skip_bad_rows", NULL, K_BOOL, F(skip_bad_rows), "false", 0, 0, false, NULL,
     "skip and count malformed rows instead of stopping"},
    {"data", "cache_dir", NULL, K_STR, F(cache_dir), "~/.cache/hft", 0, 0, false, NULL,
     "where tokenized data is cached (\"\": no cache)"},
    {"training", "output_dir", NULL, K_STR, F(output_dir), "trainer_output", 0, 0, false, NULL,
     "checkpoints, logs and the final model"},
    {"training", "num_train_epochs", NULL, K_NUM, F(num_train_epochs), "3", 0, INF, true, NULL,
     "epochs (fractions allowed); ignored when max_steps > 0"},
    {"training", "max_steps", NULL, K_INT, F(max_steps), "-1", -1, 1e12, false, NULL,
     "optimizer steps; -1: from num_train_epochs"},
    {"training", "per_device_train_batch_size", NULL, K_INT, F(per_device_train_batch_size), "8", 1, 1e9,
     false, NULL, "examples per micro-batch on each device"},
    {"training", "per_device_eval_batch_size", NULL, K_INT, F(per_device_eval_batch_size), "8", 1, 1e9, false,
     NULL, "examples per evaluation batch"},
    {"training", "gradient_accumulation_steps", NULL, K_INT, F(gradient_accumulation_steps), "1", 1, 1e9,
     false, NULL, "micro-batches per optimizer step"},
    {"training", "learning_rate", NULL, K_NUM, F(learning_rate), "5e-5", 0, INF, false, NULL,
     "peak learning rate"},
    {"training", "weight_decay", NULL, K_NUM, F(weight_decay), "0", 0, INF, false, NULL,
     "decoupled weight decay (not on biases and norm weights)"},
    {"training", "adam_beta1", NULL, K_NUM, F(adam_beta1), "0.9", 0, 1, false, NULL, "Adam beta1, in [0, 1)"},
    {"training", "adam_beta2", NULL, K_NUM, F(adam_beta2), "0.999", 0, 1, false, NULL,
     "Adam beta2, in [0, 1)"},
    {"training", "adam_epsilon", NULL, K_NUM, F(adam_epsilon), "1e-8", 0, INF, true, NULL, "Adam epsilon"},
    {"training", "max_grad_norm", NULL, K_NUM, F(max_grad_norm), "1.0", 0, INF, false, NULL,
     "clip gradients to this global L2 norm (0: no clipping)"},
    {"training", "optim", NULL, K_STR, F(optim), "adamw_torch_fused", 0, 0, false, NULL,
     "adamw_torch_fused, adamw_torch, adam, sgd, adafactor, lion"},
    {"training", "lr_scheduler_type", NULL, K_STR, F(lr_scheduler_type), "linear", 0, 0, false, NULL,
     "linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup, inverse_sqrt, "
     "reduce_lr_on_plateau, cosine_with_min_lr, cosine_warmup_with_min_lr, warmup_stable_decay"},
    {"training", "warmup_ratio", NULL, K_NUM, F(warmup_ratio), "0", 0, 1, false, NULL,
     "warmup as a share of the steps (4.x name)"},
    {"training", "warmup_steps", NULL, K_NUM, F(warmup_steps), "0", 0, INF, false, NULL,
     "warmup steps; below 1, a share of the steps (5.x)"},
    {"training", "logging_steps", NULL, K_STEPS, F(logging_steps), "500", 0, INF, true, NULL,
     "log every this many steps (below 1: a share of the steps)"},
    {"training", "logging_first_step", NULL, K_BOOL, F(logging_first_step), "false", 0, 0, false, NULL,
     "also log the first step"},
    {"training", "eval_strategy", "evaluation_strategy", K_ENUM, F(eval_strategy), "no", 0, 0, false,
     "no|steps|epoch", "when to evaluate"},
    {"training", "eval_steps", NULL, K_STEPS, F(eval_steps), "0", 0, INF, false, NULL,
     "evaluate every this many steps (0: logging_steps)"},
    {"training", "save_strategy", NULL, K_ENUM, F(save_strategy), "steps", 0, 0, false, "no|steps|epoch|best",
     "when to save a checkpoint"},
    {"training", "save_steps", NULL, K_STEPS, F(save_steps), "500", 0, INF, true, NULL,
     "save every this many steps (below 1: a share of the steps)"},
    {"training", "save_total_limit", NULL, K_INT, F(save_total_limit), "0", 0, 1e9, false, NULL,
     "keep at most this many checkpoints, never deleting the newest or the best (0: all)"},
    {"training", "load_best_model_at_end", NULL, K_BOOL, F(load_best_model_at_end), "false", 0, 0, false,
     NULL, "end with the best checkpoint's weights"},
    {"training", "metric_for_best_model", NULL, K_STR, F(metric_for_best_model), "", 0, 0, false, NULL,
     "eval metric that picks the best checkpoint (default: loss)"},
    {"training", "greater_is_better", NULL, K_TRI, F(greater_is_better), "", 0, 0, false, NULL,
     "whether a larger metric is better (default: unless it ends in loss)"},
    {"training", "early_stopping_patience", NULL, K_INT, F(early_stopping_patience), "0", 0, 1e9, false, NULL,
     "stop after this many evaluations without improvement (0: never)"},
    {"training", "early_stopping_threshold", NULL, K_NUM, F(early_stopping_threshold), "0", 0, INF, false,
     NULL, "improvement smaller than this does not count"},
    {"training", "seed", NULL, K_INT, F(seed), "42", 0, 1.8e19, false, NULL,
     "seed of initialisation and dropout"},
    {"training", "data_seed", NULL, K_INT, F(data_seed), "-1", -1, 1.8e19, false, NULL,
     "seed of the data order (-1: seed)"},
    {"training", "label_smoothing_factor", NULL, K_NUM, F(label_smoothing_factor), "0", 0, 1, false, NULL,
     "label smoothing of the cross-entropy, in [0, 1)"},
    {"training", "gradient_checkpointing", "activation_checkpointing", K_BOOL, F(gradient_checkpointing),
     "false", 0, 0, false, NULL, "recompute block activations in backward to save memory"},
    {"training", "full_determinism", NULL, K_BOOL, F(full_determinism), "true", 0, 0, false, NULL,
     "on a GPU: deterministic kernels only, so a run resumed at step k ends bit-identical (true by default: "
     "it costs little; false lets cuBLASLt split GEMM reductions freely). The CPU's kernels always are"},
    {"training", "dataloader_drop_last", NULL, K_BOOL, F(dataloader_drop_last), "false", 0, 0, false, NULL,
     "drop the last incomplete batch of an epoch"},
    {"training", "resume_from_checkpoint", NULL, K_STR, F(resume_from_checkpoint), "", 0, 0, false, NULL,
     "true (the newest checkpoint in output_dir) or a checkpoint folder"},
    {"training", "bf16", NULL, K_BOOL, F(bf16), "false", 0, 0, false, NULL, "bfloat16 mixed precision"},
    {"training", "fp16", NULL, K_BOOL, F(fp16), "false", 0, 0, false, NULL,
     "float16 mixed precision with loss scaling"},
    {"training", "device", NULL, K_STR, F(device), "auto", 0, 0, false, NULL,
     "cpu, cuda, cuda:N or auto (under mpirun, cuda takes the local rank's GPU)"},
    {"training", "threads", NULL, K_INT, F(threads), "0", 0, 4096, false, NULL,
     "CPU threads (0: OMP_NUM_THREADS, else all cores; under mpirun, cores / ranks on the node)"},
    {"training", "ddp_timeout", NULL, K_NUM, F(ddp_timeout), "1800", 1e-3, INF, false, NULL,
     "under mpirun: seconds a rank waits for the others before it stops with an error"},
    {"training", "ddp_bucket_cap_mb", NULL, K_NUM, F(ddp_bucket_cap_mb), "25", 1e-6, INF, false, NULL,
     "under mpirun: MiB of gradients per all-reduce bucket (torch DDP's bucket_cap_mb), each started as "
     "soon as backward has written it"},
    {"training", "zero_stage", NULL, K_INT, F(zero_stage), "0", 0, 3, false, NULL,
     "under mpirun: 1 shards the optimizer state over the ranks (ZeRO-1: each keeps and updates 1/N of it); "
     "0 keeps all of it on every rank"},
    {"training", "sample_prompt", NULL, K_STR, F(sample_prompt), "", 0, 0, false, NULL,
     "after training, generate a sample from this prompt"},
    {"training", "sample_tokens", NULL, K_INT, F(sample_tokens), "0", 0, 1e6, false, NULL,
     "tokens of the sample (0: no sample)"},
    {"training", "sample_prompts", NULL, K_LIST, F(sample_prompts), "[]", 0, 0, false, NULL,
     "prompts sampled at each evaluation with sample_at_eval (a list; empty: sample_prompt)"},
    {"training", "sample_at_eval", NULL, K_BOOL, F(sample_at_eval), "false", 0, 0, false, NULL,
     "also sample from sample_prompt at each evaluation (printed, and in output_dir/samples.jsonl)"},
    /* under training (as in TrainingArguments) or at the top level; unset keys keep transformers' defaults */
    {"lr_scheduler_kwargs", "num_cycles", NULL, K_ONUM, F(sk_num_cycles), "", 0, INF, true, NULL,
     "cosine schedules: cycles"},
    {"lr_scheduler_kwargs", "power", NULL, K_ONUM, F(sk_power), "", 0, INF, true, NULL, "polynomial: power"},
    {"lr_scheduler_kwargs", "lr_end", NULL, K_ONUM, F(sk_lr_end), "", 0, INF, false, NULL,
     "polynomial: final lr"},
    {"lr_scheduler_kwargs", "timescale", NULL, K_OINT, F(sk_timescale), "", 1, 1e12, false, NULL,
     "inverse_sqrt: timescale"},
    {"lr_scheduler_kwargs", "min_lr", NULL, K_ONUM, F(sk_min_lr), "", 0, INF, false, NULL,
     "cosine_with_min_lr, reduce_lr_on_plateau: the lowest lr"},
    {"lr_scheduler_kwargs", "min_lr_rate", NULL, K_ONUM, F(sk_min_lr_rate), "", 0, 1, false, NULL,
     "cosine_with_min_lr: the lowest lr as a share of the lr"},
    {"lr_scheduler_kwargs", "warmup_lr_rate", NULL, K_ONUM, F(sk_warmup_lr_rate), "", 0, 1, false, NULL,
     "cosine_warmup_with_min_lr: lr share at the first step"},
    {"lr_scheduler_kwargs", "num_stable_steps", NULL, K_OINT, F(sk_num_stable_steps), "", 0, 1e12, false,
     NULL, "warmup_stable_decay: stable steps"},
    {"lr_scheduler_kwargs", "num_decay_steps", NULL, K_OINT, F(sk_num_decay_steps), "", 0, 1e12, false, NULL,
     "warmup_stable_decay: decay steps (required)"},
    {"lr_scheduler_kwargs", "warmup_type", NULL, K_STR, F(sk_warmup_type), "", 0, 0, false, NULL,
     "warmup_stable_decay: linear, cosine or 1-sqrt"},
    {"lr_scheduler_kwargs", "decay_type", NULL, K_STR, F(sk_decay_type), "", 0, 0, false, NULL,
     "warmup_stable_decay: linear, cosine or 1-sqrt"},
    {"lr_scheduler_kwargs", "min_lr_ratio", NULL, K_ONUM, F(sk_min_lr_ratio), "", 0, 1, false, NULL,
     "warmup_stable_decay: the lowest lr as a share"},
    {"lr_scheduler_kwargs", "mode", NULL, K_STR, F(sk_mode), "", 0, 0, false, NULL,
     "reduce_lr_on_plateau: min or max"},
    {"lr_scheduler_kwargs", "factor", NULL, K_ONUM, F(sk_factor), "", 0, 1, true, NULL,
     "reduce_lr_on_plateau: lr multiplier on a plateau"},
    {"lr_scheduler_kwargs", "patience", NULL, K_OINT, F(sk_patience), "", 0, 1e12, false, NULL,
     "reduce_lr_on_plateau: evaluations to wait"},
    {"lr_scheduler_kwargs", "threshold", NULL, K_ONUM, F(sk_threshold), "", 0, INF, false, NULL,
     "reduce_lr_on_plateau: improvement threshold"},
    {"lr_scheduler_kwargs", "threshold_mode", NULL, K_STR, F(sk_threshold_mode), "", 0, 0, false, NULL,
     "reduce_lr_on_plateau: rel or abs"},
    {"lr_scheduler_kwargs", "cooldown", NULL, K_OINT, F(sk_cooldown), "", 0, 1e12, false, NULL,
     "reduce_lr_on_plateau: evaluations to wait after a cut"},
    {"lr_scheduler_kwargs", "eps", NULL, K_ONUM, F(sk_eps), "", 0, INF, false, NULL,
     "reduce_lr_on_plateau: smallest lr change applied"},
};
#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))
static const char *const sections[] = {"model",    "tokenizer",           "data",
                                       "training", "lr_scheduler_kwargs", "lora"};
#define N_SECTIONS ((int)(sizeof sections / sizeof sections[0]))

enum { SET_DEFAULT = 0, SET_CLI = -1 };

/* ---------------------------------------------------------------- values */

static char **str_at(hft_recipe *r, const key_spec *k) {
    return (char **)((char *)r + k->off);
}

static int edit_distance(const char *a, const char *b) {
    size_t n = strlen(a), m = strlen(b);
    if (n > 64 || m > 64) return 99;
    int prev[65], cur[65];
    for (size_t j = 0; j <= m; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= n; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= m; j++) {
            int sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            int del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        memcpy(prev, cur, sizeof(int) * (m + 1));
    }
    return prev[m];
}

/* " (did you mean 'x'?)" for the closest key or section name, or "". */
static void suggest(const char *word, const char *section, char *buf, size_t size) {
    const char *best = NULL;
    int best_d = 99;
    for (int i = 0; i < N_KEYS; i++) {
        if (section && strcmp(keys[i].section, section) != 0) continue;
        int d = edit_distance(word, keys[i].name);
        if (d < best_d) best_d = d, best = keys[i].name;
        if (keys[i].alias && (d = edit_distance(word, keys[i].alias)) < best_d)
            best_d = d, best = keys[i].alias;
    }
    if (!section)
        for (int s = 0; s < N_SECTIONS; s++) {
            int d = edit_distance(word, sections[s]);
            if (d < best_d) best_d = d, best = sections[s];
        }
    int limit = (int)strlen(word) / 3 + 1;
    if (best && best_d <= (limit > 3 ? 3 : limit))
        snprintf(buf, size, " (did you mean '%s'?)", best);
    else
        buf[0] = '\0';
}

static bool parse_bool(const char *s, bool *out) {
    static const char *yes[] = {"true", "True", "TRUE", "yes", "Yes", "on", "On"};
    static const char *no[] = {"false", "False", "FALSE", "no", "No", "off", "Off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcmp(s, yes[i]) == 0) return *out = true, true;
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
        if (strcmp(s, no[i]) == 0) return *out = false, true;
    return false;
}

static bool parse_number(const char *s, double *out) {
    if (!*s) return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    while (isspace((unsigned char)*end)) end++;
    if (*end || errno == ERANGE || isnan(v)) return false;
    *out = v;
    return true;
}

static void describe_range(const key_spec *k, char *buf, size_t size) {
    const char *what = k->kind == K_INT || k->kind == K_OINT ? "an integer" : "a number";
    if (k->hi == INF || k->hi >= 1e9)
        snprintf(buf, size, "%s %s %g", what, k->lo_open ? ">" : ">=", k->lo);
    else if (k->hi == 1 && k->kind == K_NUM && (strstr(k->name, "beta") || strstr(k->name, "smoothing")))
        snprintf(buf, size, "%s in [%g, 1)", what, k->lo);
    else
        snprintf(buf, size, "%s in [%g, %g]", what, k->lo, k->hi);
}

static cJSON *cli_json(const char *v);
static cJSON *yaml_json(yaml_document_t *doc, yaml_node_t *n);

/* A K_LIST value: JSON array text, a command line's [a, b], or one string; every item a string. */
static hft_status list_value(const key_spec *k, const char *v, const char *where, char **out) {
    cJSON *a = cJSON_Parse(v);
    if (!cJSON_IsArray(a)) {
        cJSON_Delete(a);
        a = v[0] == '[' ? cli_json(v) : cJSON_CreateArray();
        if (v[0] != '[' && a) cJSON_AddItemToArray(a, cJSON_CreateString(v));
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (!cJSON_IsString(e)) {
        cJSON_Delete(a);
        return hft_error(HFT_EINVAL, "%s: %s: expected a list of strings", where, k->name);
    }
    *out = a ? cJSON_PrintUnformatted(a) : NULL;
    cJSON_Delete(a);
    return *out ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
}

/* Sets key k from the text `v`; `where` ("recipe.yaml:12" or "command line") prefixes errors. */
static hft_status set_value(hft_recipe *r, const key_spec *k, const char *v, const char *where) {
    void *p = (char *)r + k->off;
    char range[96];
    double d;
    bool b;
    switch (k->kind) {
    case K_LIST: {
        char *list = NULL;
        HFT_TRY(list_value(k, v, where, &list));
        free(*(char **)p);
        *(char **)p = list;
        return HFT_OK;
    }
    case K_STR:
    case K_FILE: {
        char *copy = strdup(v);
        if (!copy) return hft_error(HFT_ENOMEM, "out of memory");
        free(*(char **)p);
        *(char **)p = copy;
        return HFT_OK;
    }
    case K_ENUM: {
        size_t n = strlen(v);
        for (const char *c = k->choices; *c;) {
            const char *e = strchr(c, '|');
            size_t len = e ? (size_t)(e - c) : strlen(c);
            if (len == n && strncmp(c, v, n) == 0)
                return set_value(r, &(key_spec){.kind = K_STR, .off = k->off}, v, where);
            if (!e) break;
            c = e + 1;
        }
        return hft_error(HFT_EINVAL, "%s: %s: expected one of %s, got \"%s\"", where, k->name, k->choices, v);
    }
    case K_BOOL:
        if (!parse_bool(v, &b))
            return hft_error(HFT_EINVAL, "%s: %s: expected true or false, got \"%s\"", where, k->name, v);
        *(bool *)p = b;
        return HFT_OK;
    case K_ONUM:
        if (!*v) return *(double *)p = NAN, HFT_OK;
        describe_range(k, range, sizeof range);
        if (!parse_number(v, &d) || d < k->lo || (k->lo_open && d == k->lo) || d > k->hi)
            return hft_error(HFT_EINVAL, "%s: %s: expected %s, got \"%s\"", where, k->name, range, v);
        *(double *)p = d;
        return HFT_OK;
    case K_OINT:
        if (!*v) return *(int64_t *)p = INT64_MIN, HFT_OK;
        describe_range(k, range, sizeof range);
        if (!parse_number(v, &d) || d != floor(d) || d < k->lo || d > k->hi)
            return hft_error(HFT_EINVAL, "%s: %s: expected %s, got \"%s\"", where, k->name, range, v);
        *(int64_t *)p = (int64_t)d;
        return HFT_OK;
    case K_TRI:
        if (!*v) return *(int *)p = -1, HFT_OK;
        if (!parse_bool(v, &b))
            return hft_error(HFT_EINVAL, "%s: %s: expected true or false, got \"%s\"", where, k->name, v);
        *(int *)p = b;
        return HFT_OK;
    case K_INT:
        describe_range(k, range, sizeof range);
        if (!parse_number(v, &d) || d != floor(d) || d < k->lo || d > k->hi)
            return hft_error(HFT_EINVAL, "%s: %s: expected %s, got \"%s\"", where, k->name, range, v);
        *(int64_t *)p = (int64_t)d;
        return HFT_OK;
    case K_NUM:
    case K_STEPS:
        describe_range(k, range, sizeof range);
        if (!parse_number(v, &d) || d < k->lo || (k->lo_open && d == k->lo) || d > k->hi ||
            (k->hi == 1 && d == 1 && k->kind == K_NUM &&
             (strstr(k->name, "beta") || strstr(k->name, "smoothing"))) ||
            (k->kind == K_STEPS && d >= 1 && d != floor(d)))
            return hft_error(HFT_EINVAL, "%s: %s: expected %s%s, got \"%s\"", where, k->name, range,
                             k->kind == K_STEPS ? " (a whole number of steps, or below 1 a ratio)" : "", v);
        *(double *)p = d;
        return HFT_OK;
    }
    return HFT_OK;
}

static int key_index(const char *section, const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if ((!section || strcmp(keys[i].section, section) == 0) &&
            (strcmp(keys[i].name, name) == 0 || (keys[i].alias && strcmp(keys[i].alias, name) == 0)))
            return i;
    return -1;
}

/* A bare key naming exactly one key of any section (for flat recipes and overrides). */
static int bare_key(const char *name, int *matches) {
    int found = -1;
    *matches = 0;
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(keys[i].name, name) == 0 || (keys[i].alias && strcmp(keys[i].alias, name) == 0)) {
            found = i;
            (*matches)++;
        }
    return found;
}

/* ---------------------------------------------------------------- reading YAML */

static hft_status scalar_of(yaml_document_t *doc, yaml_node_t *n, const char *where, const char *key,
                            const char **out) {
    if (n->type != YAML_SCALAR_NODE)
        return hft_error(HFT_EINVAL, "%s: %s: expected a single value, got a %s", where, key,
                         n->type == YAML_MAPPING_NODE ? "mapping" : "list");
    (void)doc;
    const char *v = (const char *)n->data.scalar.value;
    /* YAML's nulls read as the default */
    if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
        (!*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0))
        v = NULL;
    *out = v;
    return HFT_OK;
}

static hft_status apply_pair(hft_recipe *r, yaml_document_t *doc, const char *section, const char *name,
                             yaml_node_t *value, const char *file) {
    char where[600], hint[96];
    snprintf(where, sizeof where, "%s:%zu", file, value->start_mark.line + 1);
    int idx = section ? key_index(section, name) : -1;
    if (!section) {
        int matches;
        idx = bare_key(name, &matches);
        if (matches > 1)
            return hft_error(HFT_EINVAL,
                             "%s: '%s' is a key of more than one section: write it under its section", where,
                             name);
    }
    if (idx < 0) {
        suggest(name, section, hint, sizeof hint);
        return hft_error(HFT_EINVAL, "%s: unknown key '%s'%s%s%s", where, name, section ? " in section " : "",
                         section ? section : "", hint);
    }
    const char *v = NULL;
    if (keys[idx].kind == K_LIST && value->type == YAML_SEQUENCE_NODE) { /* a YAML list, as JSON text */
        cJSON *a = yaml_json(doc, value);
        char *text = a ? cJSON_PrintUnformatted(a) : NULL;
        cJSON_Delete(a);
        hft_status st = text ? set_value(r, &keys[idx], text, where) : hft_error(HFT_ENOMEM, "out of memory");
        free(text);
        HFT_TRY(st);
        r->lines[idx] = (int)value->start_mark.line + 1;
        return HFT_OK;
    }
    HFT_TRY(scalar_of(doc, value, where, name, &v));
    if (!v) v = keys[idx].def;
    HFT_TRY(set_value(r, &keys[idx], v, where));
    r->lines[idx] = (int)value->start_mark.line + 1;
    return HFT_OK;
}

/* ---------------------------------------------------------------- the lora section */

/* A YAML scalar as JSON: plain null, booleans and numbers by their look (as YAML reads them), anything
 * quoted or else a string. */
static cJSON *scalar_json(const char *v, bool plain) {
    bool b;
    double d;
    if (!plain) return cJSON_CreateString(v);
    if (!*v || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
        strcmp(v, "NULL") == 0)
        return cJSON_CreateNull();
    if (parse_bool(v, &b)) return cJSON_CreateBool(b);
    if (parse_number(v, &d)) return cJSON_CreateNumber(d);
    return cJSON_CreateString(v);
}

static cJSON *yaml_json(yaml_document_t *doc, yaml_node_t *n) {
    if (n->type == YAML_SCALAR_NODE)
        return scalar_json((const char *)n->data.scalar.value,
                           n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE);
    if (n->type == YAML_SEQUENCE_NODE) {
        cJSON *a = cJSON_CreateArray();
        for (yaml_node_item_t *i = n->data.sequence.items.start; a && i < n->data.sequence.items.top; i++)
            cJSON_AddItemToArray(a, yaml_json(doc, yaml_document_get_node(doc, *i)));
        return a;
    }
    cJSON *o = cJSON_CreateObject();
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        cJSON_AddItemToObject(o, k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "",
                              yaml_json(doc, yaml_document_get_node(doc, p->value)));
    }
    return o;
}

/* A command-line value: [a, b] is a list, {...} a JSON object, anything else one scalar. */
static cJSON *cli_json(const char *v) {
    size_t n = strlen(v);
    if (n >= 2 && v[0] == '{') return cJSON_Parse(v);
    if (n < 2 || v[0] != '[' || v[n - 1] != ']') return scalar_json(v, true);
    cJSON *a = cJSON_CreateArray();
    char *copy = strndup(v + 1, n - 2);
    for (char *save = NULL, *tok = copy ? strtok_r(copy, ",", &save) : NULL; a && tok;
         tok = strtok_r(NULL, ",", &save)) {
        while (isspace((unsigned char)*tok)) tok++;
        char *end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1])) *--end = '\0';
        cJSON_AddItemToArray(a, scalar_json(tok, true));
    }
    free(copy);
    return a;
}

/* Sets one lora key; `where` ("recipe.yaml:14" or "command line ...") names it in messages. `export` is
 * hft's own (what the run's final output is); every other key is a LoraConfig field, checked here. */
static hft_status lora_set(hft_recipe *r, const char *name, cJSON *value, const char *where) {
    if (!value) return hft_error(HFT_EINVAL, "%s: lora.%s: cannot read the value", where, name);
    if (strcmp(name, "export") == 0) {
        const char *v = cJSON_IsString(value) ? value->valuestring : "";
        hft_status st = strcmp(v, "adapter") == 0 || strcmp(v, "merged") == 0
                            ? HFT_OK
                            : hft_error(HFT_EINVAL, "%s: lora.export: expected adapter or merged", where);
        char *copy = st == HFT_OK ? strdup(v) : NULL;
        cJSON_Delete(value);
        HFT_TRY(st);
        if (!copy) return hft_error(HFT_ENOMEM, "out of memory");
        free(r->lora_export);
        r->lora_export = copy;
        return HFT_OK;
    }
    cJSON *one = cJSON_CreateObject();
    cJSON_AddItemToObject(one, name, value);
    char *text = cJSON_PrintUnformatted(one);
    char source[700];
    snprintf(source, sizeof source, "%s: lora", where);
    hft_status st = text ? hft_lora_config_check(text, source) : hft_error(HFT_ENOMEM, "out of memory");
    free(text);
    cJSON *all = r->lora_json ? cJSON_Parse(r->lora_json) : cJSON_CreateObject();
    if (st == HFT_OK && all) {
        cJSON_DeleteItemFromObjectCaseSensitive(all, name);
        cJSON_AddItemToObject(all, name, cJSON_DetachItemFromObjectCaseSensitive(one, name));
        char *joined = cJSON_PrintUnformatted(all);
        if (joined) {
            free(r->lora_json);
            r->lora_json = joined;
        } else {
            st = hft_error(HFT_ENOMEM, "out of memory");
        }
    }
    cJSON_Delete(all);
    cJSON_Delete(one);
    return st;
}

static hft_status read_lora(hft_recipe *r, yaml_document_t *doc, yaml_node_t *key, yaml_node_t *section,
                            const char *path) {
    r->lora_line = (int)key->start_mark.line + 1;
    if (!r->lora_json && !(r->lora_json = strdup("{}"))) return hft_error(HFT_ENOMEM, "out of memory");
    for (yaml_node_pair_t *q = section->data.mapping.pairs.start; q < section->data.mapping.pairs.top; q++) {
        yaml_node_t *k = yaml_document_get_node(doc, q->key), *v = yaml_document_get_node(doc, q->value);
        char where[600];
        snprintf(where, sizeof where, "%s:%zu", path, v->start_mark.line + 1);
        HFT_TRY(lora_set(r, k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "",
                         yaml_json(doc, v), where));
    }
    return HFT_OK;
}

static hft_status read_yaml(hft_recipe *r, const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    hft_status st = HFT_OK;
    if (!yaml_parser_load(&parser, &doc)) {
        st = hft_error(HFT_EINVAL, "%s:%zu: not valid YAML: %s", path, parser.problem_mark.line + 1,
                       parser.problem ? parser.problem : "parse error");
        yaml_parser_delete(&parser);
        fclose(fp);
        return st;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type != YAML_MAPPING_NODE)
        st =
            hft_error(HFT_EINVAL, "%s:%zu: expected sections (model:, data:, training: ...) at the top level",
                      path, root->start_mark.line + 1);
    for (yaml_node_pair_t *p = root && st == HFT_OK ? root->data.mapping.pairs.start : NULL;
         p && p < root->data.mapping.pairs.top && st == HFT_OK; p++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, p->key), *vn = yaml_document_get_node(&doc, p->value);
        const char *name = kn->type == YAML_SCALAR_NODE ? (const char *)kn->data.scalar.value : "";
        bool is_section = false;
        for (int s = 0; s < N_SECTIONS; s++) is_section |= strcmp(name, sections[s]) == 0;
        if (!is_section) { /* a flat recipe: a bare key naming one key */
            st = apply_pair(r, &doc, NULL, name, vn, path);
            continue;
        }
        if (strcmp(name, "lora") == 0 && vn->type == YAML_SCALAR_NODE && !*vn->data.scalar.value) {
            r->lora_line = (int)kn->start_mark.line + 1; /* "lora:" alone: LoRA with PEFT's defaults */
            if (!r->lora_json && !(r->lora_json = strdup("{}"))) st = hft_error(HFT_ENOMEM, "out of memory");
            continue;
        }
        if (vn->type == YAML_SCALAR_NODE && !*vn->data.scalar.value) continue; /* an empty section */
        if (vn->type != YAML_MAPPING_NODE) {
            st = hft_error(HFT_EINVAL, "%s:%zu: section %s: expected key: value lines under it", path,
                           vn->start_mark.line + 1, name);
            break;
        }
        if (strcmp(name, "lora") == 0) {
            st = read_lora(r, &doc, kn, vn, path);
            continue;
        }
        for (yaml_node_pair_t *q = vn->data.mapping.pairs.start;
             q < vn->data.mapping.pairs.top && st == HFT_OK; q++) {
            yaml_node_t *k2 = yaml_document_get_node(&doc, q->key),
                        *v2 = yaml_document_get_node(&doc, q->value);
            const char *k2name = k2->type == YAML_SCALAR_NODE ? (const char *)k2->data.scalar.value : "";
            if (strcmp(name, "training") == 0 && strcmp(k2name, "lr_scheduler_kwargs") == 0 &&
                v2->type == YAML_MAPPING_NODE) { /* TrainingArguments' nested dict */
                for (yaml_node_pair_t *u = v2->data.mapping.pairs.start;
                     u < v2->data.mapping.pairs.top && st == HFT_OK; u++) {
                    yaml_node_t *k3 = yaml_document_get_node(&doc, u->key),
                                *v3 = yaml_document_get_node(&doc, u->value);
                    st = apply_pair(r, &doc, "lr_scheduler_kwargs",
                                    k3->type == YAML_SCALAR_NODE ? (const char *)k3->data.scalar.value : "",
                                    v3, path);
                }
                continue;
            }
            st = apply_pair(r, &doc, name, k2name, v2, path);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    fclose(fp);
    return st;
}

static hft_status apply_override(hft_recipe *r, const char *arg) {
    const char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return hft_error(HFT_EINVAL, "command line: '%s': overrides must be in the form of key=value", arg);
    char key[128];
    size_t n = (size_t)(eq - arg);
    if (n >= sizeof key) return hft_error(HFT_EINVAL, "command line: '%s': key too long", arg);
    memcpy(key, arg, n);
    key[n] = '\0';
    char *dot = strchr(key, '.');
    int idx, matches = 1;
    char hint[96];
    if (dot && strncmp(key, "lora.", 5) == 0) {
        char where[160];
        snprintf(where, sizeof where, "command line %s", arg);
        if (!r->lora_json && !(r->lora_json = strdup("{}"))) return hft_error(HFT_ENOMEM, "out of memory");
        return lora_set(r, dot + 1, cli_json(eq + 1), where);
    }
    if (dot) {
        *dot = '\0';
        idx = key_index(key, dot + 1);
        if (idx < 0) {
            suggest(dot + 1, key, hint, sizeof hint);
            *dot = '.';
            return hft_error(HFT_EINVAL, "command line: unknown key '%s'%s", key, hint);
        }
    } else {
        idx = bare_key(key, &matches);
        if (matches > 1)
            return hft_error(HFT_EINVAL,
                             "command line: '%s' is a key of more than one section: write section.%s", key,
                             key);
        if (idx < 0) {
            suggest(key, NULL, hint, sizeof hint);
            return hft_error(HFT_EINVAL, "command line: unknown key '%s'%s", key, hint);
        }
    }
    char where[160];
    snprintf(where, sizeof where, "command line %s", arg);
    HFT_TRY(set_value(r, &keys[idx], eq + 1, where));
    r->lines[idx] = SET_CLI;
    return HFT_OK;
}

/* ---------------------------------------------------------------- checks after parsing */

const char *hft_recipe_where(const hft_recipe *r, const char *key, char *buf, size_t size) {
    int idx = key_index(NULL, key);
    if (idx < 0 || r->lines[idx] == SET_DEFAULT)
        snprintf(buf, size, "%s", r->path ? r->path : "recipe");
    else if (r->lines[idx] == SET_CLI)
        snprintf(buf, size, "command line");
    else
        snprintf(buf, size, "%s:%d", r->path, r->lines[idx]);
    return buf;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static hft_status check(hft_recipe *r) {
    char w[600], w2[600];
    for (int i = 0; i < N_KEYS; i++) { /* every file named exists */
        const key_spec *k = &keys[i];
        if (k->kind != K_FILE) continue;
        const char *v = *str_at(r, k);
        if (v && *v && !exists(v))
            return hft_error(HFT_EIO, "%s: %s: no such file or folder: %s",
                             hft_recipe_where(r, k->name, w, sizeof w), k->name, v);
    }
    if (!*r->model_path && !*r->model_config)
        return hft_error(
            HFT_EINVAL,
            "%s: model: give path (a model folder) or config (a config.json to train from scratch)",
            r->path ? r->path : "recipe");
    if (*r->model_path && *r->model_config)
        return hft_error(HFT_EINVAL, "%s: model: give path or config, not both",
                         hft_recipe_where(r, "config", w, sizeof w));
    if (!*r->train_file)
        return hft_error(HFT_EINVAL, "%s: data: train_file is required", r->path ? r->path : "recipe");
    if (r->bf16 && r->fp16)
        return hft_error(HFT_EINVAL, "%s: bf16 and fp16 cannot both be true",
                         hft_recipe_where(r, "fp16", w, sizeof w));
    if (r->max_steps == 0)
        return hft_error(HFT_EINVAL, "%s: max_steps: expected -1 or a count > 0",
                         hft_recipe_where(r, "max_steps", w, sizeof w));
    if (r->load_best_model_at_end || r->early_stopping_patience > 0) {
        const char *who = r->load_best_model_at_end ? "load_best_model_at_end" : "early_stopping_patience";
        if (strcmp(r->eval_strategy, "no") == 0)
            return hft_error(HFT_EINVAL, "%s: %s needs evaluation: set eval_strategy to steps or epoch",
                             hft_recipe_where(r, who, w, sizeof w), who);
        if (r->early_stopping_patience > 0 && !r->load_best_model_at_end)
            return hft_error(
                HFT_EINVAL,
                "%s: early_stopping_patience needs load_best_model_at_end: true (as the HF Trainer)",
                hft_recipe_where(r, "early_stopping_patience", w, sizeof w));
        if (r->load_best_model_at_end && strcmp(r->save_strategy, "best") != 0) {
            if (strcmp(r->save_strategy, r->eval_strategy) != 0)
                return hft_error(
                    HFT_EINVAL,
                    "%s: load_best_model_at_end needs save_strategy (%s) to equal eval_strategy (%s, %s)",
                    hft_recipe_where(r, "save_strategy", w, sizeof w), r->save_strategy, r->eval_strategy,
                    hft_recipe_where(r, "eval_strategy", w2, sizeof w2));
            double every = r->eval_steps > 0 ? r->eval_steps : r->logging_steps;
            if (strcmp(r->save_strategy, "steps") == 0 && every >= 1 && r->save_steps >= 1 &&
                fmod(r->save_steps, every) != 0)
                return hft_error(
                    HFT_EINVAL,
                    "%s: load_best_model_at_end needs save_steps (%g) to be a multiple of eval_steps (%g)",
                    hft_recipe_where(r, "save_steps", w, sizeof w), r->save_steps, every);
        }
    }
    const char *dev = r->device;
    if (strcmp(dev, "cpu") != 0 && strcmp(dev, "cuda") != 0 && strcmp(dev, "auto") != 0) {
        char *end = NULL;
        long idx = strncmp(dev, "cuda:", 5) == 0 && dev[5] ? strtol(dev + 5, &end, 10) : -1;
        if (idx < 0 || !end || *end)
            return hft_error(HFT_EINVAL, "%s: device: expected cpu, cuda, cuda:N or auto, not '%s'",
                             hft_recipe_where(r, "device", w, sizeof w), dev);
    }
    const char *res = r->resume_from_checkpoint;
    bool b;
    if (*res && !parse_bool(res, &b) && !exists(res))
        return hft_error(HFT_EIO, "%s: resume_from_checkpoint: no such checkpoint: %s",
                         hft_recipe_where(r, "resume_from_checkpoint", w, sizeof w), res);
    if (*res && parse_bool(res, &b) && !b) r->resume_from_checkpoint[0] = '\0';
    return HFT_OK;
}

/* ---------------------------------------------------------------- public */

void hft_recipe_free(hft_recipe *r) {
    if (!r) return;
    for (int i = 0; i < N_KEYS; i++)
        if (keys[i].kind == K_STR || keys[i].kind == K_FILE || keys[i].kind == K_ENUM ||
            keys[i].kind == K_LIST)
            free(*str_at(r, &keys[i]));
    free(r->path);
    free(r->lora_json);
    free(r->lora_export);
    free(r);
}

hft_status hft_recipe_load(const char *path, int n_overrides, char *const *overrides, hft_recipe **out) {
    *out = NULL;
    hft_recipe *r = calloc(1, sizeof *r);
    if (!r) return hft_error(HFT_ENOMEM, "out of memory");
    hft_status st = HFT_OK;
    _Static_assert(N_KEYS <= (int)(sizeof r->lines / sizeof r->lines[0]), "recipe: lines[] too small");
    for (int i = 0; i < N_KEYS && st == HFT_OK; i++) st = set_value(r, &keys[i], keys[i].def, "default");
    if (st == HFT_OK && !(r->lora_export = strdup("adapter"))) st = hft_error(HFT_ENOMEM, "out of memory");
    if (st == HFT_OK && path) {
        r->path = strdup(path);
        st = read_yaml(r, path);
    }
    for (int i = 0; i < n_overrides && st == HFT_OK; i++) st = apply_override(r, overrides[i]);
    if (st == HFT_OK) st = check(r);
    if (st != HFT_OK) {
        hft_recipe_free(r);
        return st;
    }
    *out = r;
    return HFT_OK;
}

/* The shortest decimal that reads back as the same double (0.003, not 0.0030000000000000001). */
static void write_double(double v, FILE *fp) {
    char buf[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    fputs(buf, fp);
}

static void write_value(const hft_recipe *r, const key_spec *k, FILE *fp) {
    const void *p = (const char *)r + k->off;
    switch (k->kind) {
    case K_STR:
    case K_FILE:
    case K_ENUM:
        fprintf(fp, "\"%s\"", *(char *const *)p);
        break;
    case K_LIST:
        fputs(*(char *const *)p, fp);
        break;
    case K_BOOL:
        fprintf(fp, "%s", *(const bool *)p ? "true" : "false");
        break;
    case K_TRI:
        fprintf(fp, "%s", *(const int *)p < 0 ? "null" : *(const int *)p ? "true" : "false");
        break;
    case K_INT:
        fprintf(fp, "%lld", (long long)*(const int64_t *)p);
        break;
    case K_NUM:
    case K_STEPS:
        write_double(*(const double *)p, fp);
        break;
    case K_ONUM:
        if (isnan(*(const double *)p))
            fprintf(fp, "null");
        else
            write_double(*(const double *)p, fp);
        break;
    case K_OINT:
        if (*(const int64_t *)p == INT64_MIN)
            fprintf(fp, "null");
        else
            fprintf(fp, "%lld", (long long)*(const int64_t *)p);
        break;
    }
}

/* The lora section as YAML: its settings in JSON's flow style, which YAML reads as they are. */
static void write_lora(const hft_recipe *r, FILE *fp, const char *indent) {
    cJSON *o = cJSON_Parse(r->lora_json);
    for (cJSON *v = o ? o->child : NULL; v; v = v->next) {
        char *text = cJSON_PrintUnformatted(v);
        fprintf(fp, "%s%s: %s\n", indent, v->string, text ? text : "null");
        free(text);
    }
    fprintf(fp, "%sexport: %s\n", indent, r->lora_export);
    cJSON_Delete(o);
}

void hft_recipe_write(const hft_recipe *r, FILE *fp) {
    for (int s = 0; s < N_SECTIONS; s++) {
        if (strcmp(sections[s], "lora") == 0) {
            if (r->lora_json) {
                fprintf(fp, "lora:\n");
                write_lora(r, fp, "  ");
            }
            continue;
        }
        fprintf(fp, "%s:\n", sections[s]);
        for (int i = 0; i < N_KEYS; i++) {
            if (strcmp(keys[i].section, sections[s]) != 0) continue;
            fprintf(fp, "  %s: ", keys[i].name);
            write_value(r, &keys[i], fp);
            fputc('\n', fp);
        }
    }
}

void hft_recipe_write_set(const hft_recipe *r, FILE *fp) {
    for (int i = 0; i < N_KEYS; i++) {
        if (r->lines[i] == SET_DEFAULT) continue;
        fprintf(fp, "  %s.%s: ", keys[i].section, keys[i].name);
        write_value(r, &keys[i], fp);
        fprintf(fp, "%s\n", r->lines[i] == SET_CLI ? "  (command line)" : "");
    }
    if (r->lora_json) {
        fprintf(fp, "  lora:\n");
        write_lora(r, fp, "    ");
    }
}

void hft_recipe_print_help(FILE *fp) {
    for (int s = 0; s < N_SECTIONS; s++) {
        if (strcmp(sections[s], "lora") == 0) {
            fprintf(
                fp,
                "\nlora:   (present: train a LoRA adapter on the frozen model; PEFT's LoraConfig names)\n");
            static const char *const lk[][3] = {
                {"r", "8", "rank of the update"},
                {"lora_alpha", "8", "scaling numerator: the update is scaled by lora_alpha / r"},
                {"lora_dropout", "0", "dropout on the LoRA branch's input"},
                {"target_modules", "(model's)",
                 "module names, one regex, or all-linear (default: q/v projections)"},
                {"exclude_modules", "", "module names or one regex to leave out"},
                {"layers_to_transform", "", "layer indices to adapt (default: all)"},
                {"layers_pattern", "", "the name before the layer index, e.g. layers or h"},
                {"rank_pattern", "{}", "per-module r: {regex: r}"},
                {"alpha_pattern", "{}", "per-module lora_alpha: {regex: alpha}"},
                {"use_rslora", "false", "scale by lora_alpha / sqrt(r)"},
                {"bias", "none", "none, lora_only or all: which biases train"},
                {"modules_to_save", "", "modules trained whole and saved with the adapter (e.g. classifier)"},
                {"init_lora_weights", "true", "true: B = 0 (starts as the base); false: both random"},
                {"export", "adapter",
                 "the run's final output: adapter (PEFT folder) or merged (a plain model)"},
            };
            for (size_t i = 0; i < sizeof lk / sizeof lk[0]; i++)
                fprintf(fp, "  %-30s %-18s %s\n", lk[i][0], lk[i][1], lk[i][2]);
            continue;
        }
        fprintf(fp, "\n%s:\n", sections[s]);
        for (int i = 0; i < N_KEYS; i++) {
            const key_spec *k = &keys[i];
            if (strcmp(k->section, sections[s]) != 0) continue;
            char def[64];
            snprintf(def, sizeof def, "%s",
                     *k->def                                                      ? k->def
                     : k->kind == K_TRI || k->kind == K_ONUM || k->kind == K_OINT ? "(default)"
                                                                                  : "\"\"");
            fprintf(fp, "  %-30s %-18s %s%s%s%s\n", k->name, def, k->help, k->alias ? " (also: " : "",
                    k->alias ? k->alias : "", k->alias ? ")" : "");
        }
    }
}
