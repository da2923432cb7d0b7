/* Checkpoint folders: output_dir/checkpoint-<step>/ as the HF Trainer lays them out — the weights
 * (model.safetensors + config.json, loadable by transformers as they are; or, training a LoRA adapter,
 * adapter_model.safetensors + adapter_config.json, which PEFT loads onto the base), the tokenizer files,
 * training_state.h5, trainer_state.json and the recipe. Each is written whole into a temporary folder,
 * every file fsynced, then renamed into place and the parent fsynced: a crash at any instant leaves the
 * previous checkpoints complete. */
#ifndef HFT_CHECKPOINT_H
#define HFT_CHECKPOINT_H

#include "nn/nn.h"
#include "trainer/logbook.h"
#include "trainer/recipe.h"
#include "trainer/train_state.h"

typedef struct checkpoint_parts {
    hft_model *model;
    const char *tokenizer_dir; /* a folder whose tokenizer files are copied, or NULL */
    const char *model_dir;     /* a folder whose generation_config.json is copied, or NULL */
    const hft_recipe *recipe;
    const train_state *state;
    hft_optimizer *optimizer;
    const state_fetch *optimizer_fetch; /* sharded (ZeRO-1): where its named state comes from, else NULL */
    const logbook *log;
} checkpoint_parts;

/* The step of a folder named checkpoint-<step>, or -1. */
int64_t checkpoint_step_of(const char *name);
/* The newest complete checkpoint folder of a run (malloc'd), or NULL when there is none. */
char *checkpoint_newest(const char *output_dir);
hft_status checkpoint_write(const char *output_dir, int64_t step, const checkpoint_parts *parts, char **path);
/* Deletes the oldest checkpoints beyond `limit`, never the newest or `best` (with limit 1 and a best that
 * is not the newest, both stay). */
hft_status checkpoint_rotate(const char *output_dir, int64_t limit, const char *best);
/* Writes the model (or its unmerged adapter) and tokenizer files alone (the final model, an export). */
hft_status checkpoint_write_model(const char *dir, hft_model *model, const char *tokenizer_dir,
                                  const char *model_dir);

#endif
