/* The GPT-2 124M training step shared by bench_step and bench_bf16. */
#include "bench/bench_gpt2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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
    const char *config =
        "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}"; /* dropout 0.1 */
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

void bench_train_step(hft_ctx *ctx, hft_model *m, hft_optimizer *opt, const hft_batch *b) {
    int64_t count = 0;
    hft_tensor *sum = hft_model_loss(ctx, m, b, true, &count);
    hft_tensor *loss = hft_scale(ctx, sum, 1.0 / (double)(count ? count : 1));
    if (hft_backward(ctx, loss, NULL) != HFT_OK) fprintf(stderr, "step: %s\n", hft_ctx_error(ctx));
    hft_ctx_reset(ctx);
    double norm;
    hft_paramset *ps = hft_model_params(m);
    hft_clip_grad_norm(ps, 1.0, &norm);
    hft_optimizer_step(opt, 1.0);
    hft_paramset_zero_grad(ps);
}

void bench_gpt2_step(void *arg) {
    bench_gpt2 *g = arg;
    bench_train_step(g->ctx, g->model, g->opt, &g->batch);
}

int bench_gpt2_folder(char *dir, bool real, const char **tokenizer, double *weight_mib) {
    struct stat sb;
    const char *tok = real && stat("tests/fixtures/real/gpt2/vocab.json", &sb) == 0
                          ? "tests/fixtures/real/gpt2"
                          : "tests/fixtures/tokenizers/gpt2_bpe";
    int vocab = strstr(tok, "real") ? 50257 : 2001;
    if (!mkdtemp(dir)) {
        fprintf(stderr, "bench: cannot make %s\n", dir);
        return 0;
    }
    char config[256], path[600], cmd[1400];
    snprintf(config, sizeof config,
             "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"vocab_size\": %d}",
             vocab);
    snprintf(path, sizeof path, "%s/model", dir);
    hft_model *m = NULL;
    if (hft_model_from_config(config, "bench", NULL, &m) != HFT_OK || hft_model_save(m, path) != HFT_OK) {
        fprintf(stderr, "bench: %s\n", hft_error_message());
        hft_model_free(m);
        return 0;
    }
    if (weight_mib) {
        hft_paramset *ps = hft_model_params(m);
        *weight_mib = 0;
        for (int i = 0; i < hft_paramset_count(ps); i++)
            *weight_mib += (double)hft_tensor_nbytes(hft_paramset_get(ps, i)->value) / 1048576.0;
    }
    hft_model_free(m);
    /* the tokenizer files beside the weights, as a Hub snapshot has them */
    snprintf(cmd, sizeof cmd, "cp %s/* %s/model/ 2>/dev/null; rm -f %s/model/expected.json", tok, dir, dir);
    if (system(cmd) != 0) return 0;
    if (tokenizer) *tokenizer = tok;
    return vocab;
}
