/* The GPT-2 124M training step shared by bench_step and bench_bf16. */
#include "bench/bench_gpt2.h"

#include <stdio.h>
#include <stdlib.h>

#include "nn/nn.h"
#include "optim/optim.h"

struct bench_gpt2 {
    hft_ctx *ctx;
    hft_model *model;
    hft_optimizer *opt;
    hft_batch batch;
    int64_t *ids;
};

void bench_gpt2_free(bench_gpt2 *g) {
    if (!g) return;
    hft_tensor_free(g->batch.input_ids);
    free(g->ids);
    hft_ctx_free(g->ctx);
    hft_optimizer_free(g->opt);
    hft_model_free(g->model);
    free(g);
}

bench_gpt2 *bench_gpt2_new(int batch, int seq, hft_dtype autocast) {
    bench_gpt2 *g = calloc(1, sizeof *g);
    const char *config = "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}"; /* dropout 0.1 */
    hft_optim_config oc = hft_optim_defaults(HFT_OPTIM_ADAMW);
    oc.lr = 1e-4;
    if (!g || hft_model_from_config(config, "bench", NULL, &g->model) != HFT_OK ||
        hft_optimizer_new(hft_model_params(g->model), &oc, 0, NULL, &g->opt) != HFT_OK ||
        !(g->ctx = hft_ctx_new(NULL)) || hft_set_autocast(g->ctx, autocast) != HFT_OK ||
        !(g->ids = malloc(sizeof *g->ids * (size_t)(batch * seq)))) {
        fprintf(stderr, "bench: %s\n", hft_error_message());
        bench_gpt2_free(g);
        return NULL;
    }
    for (int i = 0; i < batch * seq; i++) g->ids[i] = (int64_t)((i * 7919) % 50257);
    g->batch.input_ids = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){batch, seq}, g->ids);
    g->batch.labels = g->batch.input_ids;
    return g;
}

void bench_gpt2_step(void *arg) {
    bench_gpt2 *g = arg;
    int64_t count = 0;
    hft_tensor *sum = hft_model_loss(g->ctx, g->model, &g->batch, true, &count);
    hft_tensor *loss = hft_scale(g->ctx, sum, 1.0 / (double)(count ? count : 1));
    if (hft_backward(g->ctx, loss, NULL) != HFT_OK) fprintf(stderr, "step: %s\n", hft_ctx_error(g->ctx));
    hft_ctx_reset(g->ctx);
    double norm;
    hft_paramset *ps = hft_model_params(g->model);
    hft_clip_grad_norm(ps, 1.0, &norm);
    hft_optimizer_step(g->opt, 1.0);
    hft_paramset_zero_grad(ps);
}
