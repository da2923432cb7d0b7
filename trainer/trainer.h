/* trainer: the training loop that a recipe drives, evaluation, checkpoints, resume and export — what
 * hft-train and hft-export run. */
#ifndef HFT_TRAINER_H
#define HFT_TRAINER_H

#include "trainer/recipe.h"

/* Runs the recipe to the end, or until a stop is requested (SIGINT, SIGTERM or SIGUSR1: the current step
 * finishes, a checkpoint is saved and HFT_OK is returned with *stopped set). */
hft_status hft_train(const hft_recipe *r, bool *stopped);
/* The same on one rank of a process group (distributed/): each rank trains on its slice of every global
 * batch, gradients are all-reduced during backward, and only rank 0 writes logs, checkpoints and the
 * model. A NULL or one-rank group is hft_train. */
typedef struct hft_dist hft_dist;
hft_status hft_train_on(const hft_recipe *r, hft_dist *dist, bool *stopped);

typedef struct hft_export_options {
    bool merge; /* a LoRA adapter: merge it into its base and write a plain model folder */
    const char
        *base; /* a LoRA adapter's base model folder; NULL: adapter_config.json's base_model_name_or_path */
    const char *dtype; /* float32, bfloat16 or float16 for the model's weights; NULL: as they are stored */
} hft_export_options;

/* Writes a Hugging Face model folder (config.json, model.safetensors, the tokenizer files) from a
 * checkpoint folder, or from a run's output folder (its newest checkpoint, or its final output). A LoRA
 * checkpoint gives a PEFT adapter folder (adapter_config.json, adapter_model.safetensors), checked by
 * loading it onto its base (refused when the base's weights differ from those it trained on), or with
 * `merge` the merged model. `o` may be NULL. */
hft_status hft_export(const char *from, const char *out_dir, const hft_export_options *o);

#endif
