/* A sample of what a causal LM writes, printed at the end of a run: sampling with temperature 0.8 and
 * top-k 10 from a fixed seed. Recomputes the whole sequence per token (no KV cache yet), which is what a
 * few hundred tokens of a small model afford. */
#ifndef HFT_SAMPLE_H
#define HFT_SAMPLE_H

#include "data/data.h"
#include "nn/nn.h"

hft_status print_sample(hft_ctx *ctx, hft_model *m, const hft_tokenizer *tok, const char *prompt,
                        int64_t tokens, uint64_t seed);

#endif
