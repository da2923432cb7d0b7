/* trainer: the training loop that a recipe drives, evaluation, checkpoints, resume and export — what
 * hft-train and hft-export run. */
#ifndef HFT_TRAINER_H
#define HFT_TRAINER_H

#include "trainer/recipe.h"

/* Runs the recipe to the end, or until a stop is requested (SIGINT, SIGTERM or SIGUSR1: the current step
 * finishes, a checkpoint is saved and HFT_OK is returned with *stopped set). */
hft_status hft_train(const hft_recipe *r, bool *stopped);

/* Writes a Hugging Face model folder (config.json, model.safetensors, the tokenizer files) from a
 * checkpoint folder, or from a run's output folder (its newest checkpoint, or its final model). */
hft_status hft_export(const char *from, const char *out_dir);

#endif
