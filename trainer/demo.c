/* hft-demo: trains a 2-layer GPT from scratch on sequences it generates (a random pattern repeated,
 * which a transformer learns to continue by attending back one period), printing the loss as it falls.
 * It needs no download and runs in about a minute on 2 cores: the README's first command until the
 * Trainer and hft-train take its place. The AdamW step here is the textbook update, kept local until
 * optim/ provides the full optimizer set. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

enum { VOCAB = 32, SEQ = 48, BATCH = 16, STEPS = 1200 };

/* splitmix64: the demo's data generator (the model's randomness is hft's own Philox). */
static uint64_t next_random(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Each row: a random pattern of period 3..8, repeated to fill the row. Returns the periods. */
static void make_batch(uint64_t *rng, int64_t *ids, int *periods) {
    for (int b = 0; b < BATCH; b++) {
        int p = 3 + (int)(next_random(rng) % 6);
        int64_t pattern[8];
        for (int i = 0; i < p; i++) pattern[i] = (int64_t)(next_random(rng) % VOCAB);
        for (int t = 0; t < SEQ; t++) ids[b * SEQ + t] = pattern[t % p];
        periods[b] = p;
    }
}

typedef struct adamw {
    float *m, *v;
    double lr, beta1, beta2, eps, weight_decay;
    int step;
} adamw;

static void adamw_step(adamw *opt, hft_paramset *ps) {
    opt->step++;
    double bc1 = 1 - pow(opt->beta1, opt->step), bc2 = 1 - pow(opt->beta2, opt->step);
    hft_paramset_materialize_grads(ps);
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        if (!p->grad) continue;
        float *w = hft_tensor_data(p->value), *g = hft_tensor_data(p->grad);
        float *m = opt->m + p->grad_offset, *v = opt->v + p->grad_offset;
        double wd = (p->tags & HFT_PARAM_NO_DECAY) ? 0.0 : opt->weight_decay;
        int64_t n = hft_tensor_numel(p->value);
        for (int64_t j = 0; j < n; j++) {
            m[j] = (float)(opt->beta1 * m[j] + (1 - opt->beta1) * g[j]);
            v[j] = (float)(opt->beta2 * v[j] + (1 - opt->beta2) * g[j] * g[j]);
            double update = (m[j] / bc1) / (sqrt(v[j] / bc2) + opt->eps);
            w[j] = (float)(w[j] * (1 - opt->lr * wd) - opt->lr * update);
        }
        p->value->version++;
    }
    hft_paramset_zero_grad(ps);
}

/* Greedy next-token accuracy on the positions a model can predict (after the first period). */
static double evaluate(hft_ctx *ctx, hft_model *model, uint64_t *rng) {
    int64_t ids[BATCH * SEQ];
    int periods[BATCH];
    make_batch(rng, ids, periods);
    bool prev = hft_set_grad_enabled(ctx, false);
    hft_tensor *x = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){BATCH, SEQ}, ids);
    hft_tensor *logits = hft_model_logits(ctx, model, &(hft_batch){.input_ids = x});
    hft_set_grad_enabled(ctx, prev);
    if (!logits) return -1;
    const float *l = hft_tensor_data(logits);
    long right = 0, total = 0;
    for (int b = 0; b < BATCH; b++)
        for (int t = periods[b] - 1; t < SEQ - 1; t++) {
            const float *row = l + ((int64_t)b * SEQ + t) * VOCAB;
            int best = 0;
            for (int c = 1; c < VOCAB; c++)
                if (row[c] > row[best]) best = c;
            right += best == ids[b * SEQ + t + 1];
            total++;
        }
    hft_ctx_reset(ctx);
    return (double)right / (double)total;
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "hft-demo: %s\n", hft_error_message());
        return 1;
    }
    char config[256];
    snprintf(config, sizeof config,
             "{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": %d, \"n_positions\": %d, \"n_embd\": 64, "
             "\"n_layer\": 2, \"n_head\": 4, \"resid_pdrop\": 0, \"embd_pdrop\": 0, \"attn_pdrop\": 0}",
             VOCAB, SEQ);
    hft_model *model = NULL;
    hft_ctx *ctx = NULL;
    hft_load_options opts = {.seed = 1234};
    if (hft_model_from_config(config, "hft-demo", &opts, &model) != HFT_OK || !(ctx = hft_ctx_new(NULL))) {
        fprintf(stderr, "hft-demo: %s\n", hft_error_message());
        return 1;
    }
    hft_paramset *ps = hft_model_params(model);
    int64_t n = hft_paramset_trainable_numel(ps);
    adamw opt = {.m = calloc((size_t)n, sizeof(float)),
                 .v = calloc((size_t)n, sizeof(float)),
                 .lr = 3e-3,
                 .beta1 = 0.9,
                 .beta2 = 0.98,
                 .eps = 1e-8,
                 .weight_decay = 0.01};
    printf("hft-demo: a 2-layer GPT (%lld parameters) learns to continue repeated random patterns\n",
           (long long)n);
    printf("          batch %d x %d tokens, vocabulary %d, %d threads; chance loss is ln %d = %.2f\n", BATCH,
           SEQ, VOCAB, hft_threads_get(), VOCAB, log((double)VOCAB));
    uint64_t data_rng = 42, eval_rng = 4242;
    printf("before training: next-token accuracy on the repeated part %.1f%%\n",
           100 * evaluate(ctx, model, &eval_rng));
    double running = 0;
    int status = 0;
    for (int step = 1; step <= STEPS; step++) {
        int64_t ids[BATCH * SEQ];
        int periods[BATCH];
        make_batch(&data_rng, ids, periods);
        hft_tensor *x = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){BATCH, SEQ}, ids);
        int64_t count = 0;
        hft_tensor *loss_sum = hft_model_loss(ctx, model, &(hft_batch){.input_ids = x, .labels = x}, true, &count);
        hft_tensor *loss = hft_scale(ctx, loss_sum, 1.0 / (double)(count ? count : 1));
        if (!loss || hft_backward(ctx, loss, NULL) != HFT_OK) {
            fprintf(stderr, "hft-demo: step %d: %s\n", step, hft_ctx_error(ctx));
            status = 1;
            break;
        }
        double value = *(float *)hft_tensor_data(loss);
        hft_ctx_reset(ctx);
        opt.lr = 3e-3 * (step < 30 ? step / 30.0 : 1.0);
        adamw_step(&opt, ps);
        running = step == 1 ? value : 0.9 * running + 0.1 * value;
        if (step % 100 == 0 || step == 1) printf("step %4d/%d  loss %.4f\n", step, STEPS, running);
    }
    if (!status)
        printf("after training: next-token accuracy on the repeated part %.1f%%\n",
               100 * evaluate(ctx, model, &eval_rng));
    free(opt.m);
    free(opt.v);
    hft_ctx_free(ctx);
    hft_model_free(model);
    return status;
}
