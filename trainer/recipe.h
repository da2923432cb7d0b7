/* The recipe: a YAML file (libyaml) with sections model, tokenizer, data and training — the training keys
 * are HF TrainingArguments' names, with HF's defaults — plus key=value overrides from the command line.
 * Parsed into one typed struct and validated before any work starts; every error names the file and line
 * (or the command-line argument), the key, what was found and what was expected. */
#ifndef HFT_RECIPE_H
#define HFT_RECIPE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernels/kernels.h"

typedef struct hft_recipe {
    char *path; /* the recipe file */
    /* model */
    char *model_path;         /* a Hugging Face model folder */
    char *model_config;       /* or a config.json to train from scratch */
    char *model_architecture; /* load as this architecture (a new head) */
    int64_t num_labels;
    /* tokenizer */
    char *
        tokenizer_path; /* a tokenizer.json or folder; "bytes" for the byte-level tokenizer; default: model */
    /* data */
    char *train_file, *eval_file;
    char *data_format; /* auto (from the extension), text, jsonl, csv, tsv, tokens, hdf5 */
    char *data_task;   /* auto (from the model), causal_lm, prompt_completion, chat, classification */
    char *text_field, *text_pair_field, *prompt_field, *completion_field, *messages_field, *label_field;
    int64_t max_length;
    bool packing, skip_bad_rows;
    char *cache_dir;
    /* training: HF TrainingArguments names and defaults */
    char *output_dir;
    double num_train_epochs;
    int64_t max_steps;
    int64_t per_device_train_batch_size, per_device_eval_batch_size, gradient_accumulation_steps;
    double learning_rate, weight_decay, adam_beta1, adam_beta2, adam_epsilon, max_grad_norm;
    char *optim, *lr_scheduler_type;
    char *device; /* cpu, cuda, cuda:N, auto */
    double warmup_ratio, warmup_steps;
    double logging_steps;
    bool logging_first_step;
    char *eval_strategy;
    double eval_steps; /* 0: logging_steps */
    char *save_strategy;
    double save_steps;
    int64_t save_total_limit; /* 0: keep all */
    bool load_best_model_at_end;
    char *metric_for_best_model;     /* "": loss when load_best_model_at_end */
    int greater_is_better;           /* -1: from the metric's name */
    int64_t early_stopping_patience; /* 0: off */
    double early_stopping_threshold;
    int64_t seed, data_seed; /* data_seed -1: seed */
    double label_smoothing_factor;
    bool gradient_checkpointing, dataloader_drop_last;
    bool full_determinism;        /* GPU: deterministic kernels only (the CPU's always are) */
    char *resume_from_checkpoint; /* "": no; "true": the newest in output_dir; else a checkpoint folder */
    bool bf16, fp16;
    char *model_dtype;        /* model.dtype (torch_dtype): float32, bfloat16, float16, auto */
    int64_t threads;          /* 0: OMP_NUM_THREADS or all cores */
    double ddp_timeout;       /* seconds a collective waits for the other ranks */
    double ddp_bucket_cap_mb; /* MiB of gradients an all-reduce bucket holds (torch DDP's bucket_cap_mb) */
    int64_t zero_stage; /* under mpirun: 1 shards the optimizer state over the ranks (ZeRO-1); 0 does not */
    /* lr_scheduler_kwargs (transformers' scheduler_specific_kwargs); NaN / INT64_MIN / "" when not given */
    double sk_num_cycles, sk_power, sk_lr_end, sk_min_lr, sk_min_lr_rate, sk_warmup_lr_rate, sk_min_lr_ratio;
    double sk_factor, sk_threshold, sk_eps;
    int64_t sk_timescale, sk_num_stable_steps, sk_num_decay_steps, sk_patience, sk_cooldown;
    char *sk_warmup_type, *sk_decay_type, *sk_mode, *sk_threshold_mode;
    /* lora: PEFT's LoraConfig fields as a JSON object (NULL: no LoRA, a full fine-tune) */
    char *lora_json;
    char *lora_export; /* "adapter" (the run's final output is the adapter) or "merged" (a plain model) */
    int lora_line;     /* where the lora section starts; 0 when it came from the command line only */
    /* a sample generated at the end of training */
    char *sample_prompt;
    int64_t sample_tokens;
    bool sample_at_eval;  /* also at each evaluation, into output_dir/samples.jsonl */
    char *sample_prompts; /* JSON array of strings: the prompts sampled at each evaluation (empty:
                             sample_prompt) */
    /* where each key was set: for the messages of checks made after parsing */
    int lines[160];
} hft_recipe;

/* Loads `path` (NULL: defaults only) and applies the overrides ("key=value", key as "section.key" or a bare
 * key that names one key). Validates types, ranges, combinations and that the files named exist. */
hft_status hft_recipe_load(const char *path, int n_overrides, char *const *overrides, hft_recipe **out);
void hft_recipe_free(hft_recipe *r);
/* Every key with its section, default and meaning (hft-train --help). */
void hft_recipe_print_help(FILE *fp);
/* The keys set by the recipe file or the command line, with their values ("  learning_rate: 0.0003"). */
void hft_recipe_write_set(const hft_recipe *r, FILE *fp);
/* The resolved recipe as YAML (saved into each checkpoint). */
void hft_recipe_write(const hft_recipe *r, FILE *fp);
/* The file:line where a key was set ("recipe.yaml:12", "command line", or "default"). */
const char *hft_recipe_where(const hft_recipe *r, const char *key, char *buf, size_t size);

#endif
