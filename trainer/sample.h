/* Samples of what a causal LM writes: at the end of a run and, with sample_at_eval, at each evaluation
 * (logged to output_dir/samples.jsonl). Sampling with temperature 0.8 and top-k 10 from a fixed seed, so
 * samples at different steps differ by the model only. */
#ifndef HFT_SAMPLE_H
#define HFT_SAMPLE_H

#include "data/data.h"
#include "nn/nn.h"

/* The continuation of `prompt` (malloc'd text in *text): up to `tokens` tokens, fewer where the model's
 * positions end (*generated says how many). */
hft_status generate_sample(hft_ctx *ctx, hft_model *m, const hft_tokenizer *tok, const char *prompt,
                           int64_t tokens, uint64_t seed, char **text, int64_t *generated);
hft_status print_sample(hft_ctx *ctx, hft_model *m, const hft_tokenizer *tok, const char *prompt,
                        int64_t tokens, uint64_t seed);

#endif
