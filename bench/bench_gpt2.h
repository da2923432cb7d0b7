/* A GPT-2 124M training step for the benchmarks (random weights of the real shape, ids spread over the
 * vocabulary): forward, backward, clipping at 1.0 and an AdamW step, under an autocast dtype (HFT_F32: off).
 */
#ifndef HFT_BENCH_GPT2_H
#define HFT_BENCH_GPT2_H

#include "nn/nn.h"
#include "optim/optim.h"

typedef struct bench_gpt2 bench_gpt2;
bench_gpt2 *bench_gpt2_new(int batch, int seq, hft_dtype autocast); /* NULL (message printed) on failure */
void bench_gpt2_step(void *gpt2);                                   /* for bench_median */
void bench_gpt2_free(bench_gpt2 *g);
/* One training step of any model on any device: forward, backward (the loss a mean over its tokens),
 * clipping at 1.0, the optimizer's step. */
void bench_train_step(hft_ctx *ctx, hft_model *m, hft_optimizer *opt, const hft_batch *b);

/* A Hub-like folder <dir>/model for hft-train: GPT-2 small with random weights, saved, with a GPT-2
 * tokenizer's files beside it — the real one when `real` is asked and tools/fetch_real_models.sh fetched it,
 * else the 2001-token fixture. dir is a "/tmp/...-XXXXXX" template, filled in. Returns the vocabulary size
 * (*tokenizer: the folder the tokenizer came from; *weight_mib: the weights' size), or 0 with a message. */
int bench_gpt2_folder(char *dir, bool real, const char **tokenizer, double *weight_mib);

#endif
