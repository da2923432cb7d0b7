/* A GPT-2-small-sized transformer block (d 768, 12 heads, T 256, B 4) forward + backward, hft against
 * PyTorch (transformers' GPT2Block with SDPA attention) on the same thread count, both run by this one
 * command; dropout off in both, so the two compute the same thing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "nn/nn.h"

enum { B = 4, T = 256, D = 768, HEADS = 12 };

typedef struct state {
    hft_ctx *ctx;
    hft_model *model;
    hft_tensor *x, *gout;
} state;

static void run(void *arg) {
    state *s = arg;
    hft_batch batch = {0};
    hft_tensor *y = hft_model_block(s->ctx, s->model, 0, s->x, &batch, false);
    if (hft_backward(s->ctx, y, s->gout) != HFT_OK)
        fprintf(stderr, "block bench: %s\n", hft_ctx_error(s->ctx));
    hft_ctx_reset(s->ctx);
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    char config[256];
    snprintf(
        config, sizeof config,
        "{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 128, \"n_layer\": 1, \"n_embd\": %d, "
        "\"n_head\": %d}",
        D, HEADS);
    state s = {0};
    if (hft_model_from_config(config, "bench_block", NULL, &s.model) != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    s.ctx = hft_ctx_new(NULL);
    int64_t shape[3] = {B, T, D};
    s.x = hft_tensor_new(HFT_F32, 3, shape);
    s.gout = hft_tensor_new(HFT_F32, 3, shape);
    hft_init_normal(s.x, 0, 1, 11, 0);
    hft_init_normal(s.gout, 0, 1, 12, 0);
    hft_tensor_set_requires_grad(s.x, true);
    int threads = hft_threads_get();
    printf("GPT-2 block forward+backward: B %d, T %d, d %d, %d heads, f32, %d threads\n", B, T, D, HEADS,
           threads);
    double t = bench_median(run, &s, 2, 7);
    /* 2·params·tokens for the GEMMs forward, twice that backward, plus attention's 4·B·T²·d each way */
    double flops = 3.0 * (2.0 * 12.0 * D * D * B * T + 4.0 * B * (double)T * T * D);
    printf("  hft      %8.1f ms   %6.1f GFLOP/s\n", t * 1e3, flops / t / 1e9);
    char args[128];
    snprintf(args, sizeof args, "--batch %d --seq %d --dim %d --heads %d", B, T, D, HEADS);
    double peer = bench_run_peer("torch_block.py", args, threads);
    if (peer > 0) {
        printf("  PyTorch  %8.1f ms   %6.1f GFLOP/s\n", peer * 1e3, flops / peer / 1e9);
        printf("hft is %.2fx PyTorch's speed (>1 is faster)\n", peer / t);
    }
    hft_tensor_free(s.x);
    hft_tensor_free(s.gout);
    hft_ctx_free(s.ctx);
    hft_model_free(s.model);
    return 0;
}
