/* Activation checkpointing: a model whose blocks are recomputed in backward gives the same loss and
 * bit-identical gradients as one that keeps every activation (dropout included: the masks come from the
 * same counter-based stream), and holds less memory at its peak. */
#include "nn/nn.h"
#include "tests/gradcheck.h"
#include "tests/test_util.h"

typedef struct block_arg {
    hft_model *m;
    int layer;
    const hft_batch *b;
} block_arg;

static hft_tensor *run_block(hft_ctx *ctx, hft_tensor *const *in, void *user) {
    block_arg *a = user;
    return hft_model_block(ctx, a->m, a->layer, in[0], a->b, true);
}

/* Loss and every gradient, with or without checkpointing; returns the arena+pool peak. */
static size_t run(hft_model *m, hft_tensor *ids, bool checkpoint, double *loss, double **grads, int64_t *n) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_ctx_set_rng(ctx, 7, 3, 0, 0);
    hft_batch b = {.input_ids = ids, .labels = ids};
    block_arg args[8];
    hft_tensor *h = hft_model_embed(ctx, m, &b, true);
    for (int l = 0; l < hft_model_layers(m); l++) {
        args[l] = (block_arg){m, l, &b};
        h = checkpoint ? hft_checkpoint(ctx, run_block, &args[l], 1, &h) : run_block(ctx, &h, &args[l]);
    }
    int64_t count = 0;
    hft_tensor *sum = hft_model_head_loss(ctx, m, h, &b, true, &count);
    CHECK_OK(hft_backward(ctx, sum, NULL), ctx);
    *loss = sum ? *(float *)hft_tensor_data(sum) : NAN;
    hft_memory_stats st;
    hft_ctx_memory(ctx, &st);
    printf("  %s: arena peak %.1f KiB, gradient pool peak %.1f KiB\n", checkpoint ? "checkpointed" : "plain",
           st.arena_peak / 1024.0, st.pool_peak / 1024.0);
    hft_paramset *ps = hft_model_params(m);
    hft_paramset_materialize_grads(ps);
    *n = hft_paramset_trainable_numel(ps);
    *grads = malloc(sizeof(double) * (size_t)*n);
    hft_tensor_to_f64(hft_paramset_grads(ps), *grads);
    hft_paramset_zero_grad(ps);
    hft_ctx_free(ctx);
    return st.arena_peak + st.pool_peak;
}

TEST(recomputed_blocks_give_identical_gradients_in_less_memory) {
    const char *config =
        "{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 61, \"n_positions\": 64, "
        "\"n_embd\": 32, \"n_layer\": 4, \"n_head\": 4}"; /* dropout 0.1 everywhere */
    hft_model *m = NULL;
    CHECK_OK(hft_model_from_config(config, "config", &(hft_load_options){.seed = 2}, &m), NULL);
    if (!m) return;
    int64_t ids_v[2 * 48];
    for (int i = 0; i < 96; i++) ids_v[i] = (i * 13 + 5) % 61;
    hft_tensor *ids = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, 48}, ids_v);
    double l0, l1, *g0, *g1;
    int64_t n0, n1;
    size_t plain = run(m, ids, false, &l0, &g0, &n0);
    size_t ckpt = run(m, ids, true, &l1, &g1, &n1);
    CHECK(l0 == l1, "loss %.9g vs %.9g", l0, l1);
    int64_t diff = 0;
    for (int64_t i = 0; i < n0 && n0 == n1; i++) diff += g0[i] != g1[i];
    CHECK(n0 == n1 && diff == 0, "%lld of %lld gradients differ", (long long)diff, (long long)n0);
    CHECK(ckpt < plain, "peak memory: %zu with checkpointing, %zu without", ckpt, plain);
    printf("peak activation memory: %.2f MiB plain, %.2f MiB with checkpointing\n", plain / 1048576.0,
           ckpt / 1048576.0);
    free(g0);
    free(g1);
    hft_tensor_free(ids);
    hft_model_free(m);
}

static hft_tensor *f_mlp(hft_ctx *ctx, hft_tensor *const *in, void *user) {
    (void)user;
    return hft_add(ctx, hft_gelu(ctx, hft_linear(ctx, in[0], in[1], in[2]), HFT_GELU_TANH), in[0]);
}

static hft_tensor *f_ckpt(hft_ctx *ctx, hft_tensor **in, void *user) {
    (void)user;
    return hft_checkpoint(ctx, f_mlp, NULL, 3, in);
}

TEST(gradient_check_through_a_checkpoint) {
    test_rng rng = {5};
    hft_tensor *in[3] = {test_random(&rng, HFT_F64, 2, (int64_t[]){3, 4}, -1, 1),
                         test_random(&rng, HFT_F64, 2, (int64_t[]){4, 4}, -1, 1),
                         test_random(&rng, HFT_F64, 1, (int64_t[]){4}, -1, 1)};
    for (int i = 0; i < 3; i++) hft_tensor_set_requires_grad(in[i], true);
    gradcheck("checkpoint", f_ckpt, 3, in, NULL);
    for (int i = 0; i < 3; i++) hft_tensor_free(in[i]);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"recomputed_blocks_give_identical_gradients_in_less_memory",
         recomputed_blocks_give_identical_gradients_in_less_memory},
        {"gradient_check_through_a_checkpoint", gradient_check_through_a_checkpoint},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
