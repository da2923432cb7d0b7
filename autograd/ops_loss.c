/* Placeholder until the mse op lands. */
#include "autograd/internal.h"

hft_tensor *hft_mse(hft_ctx *ctx, hft_tensor *input, hft_tensor *target, hft_reduction reduction) {
    (void)ctx;
    (void)input;
    (void)target;
    (void)reduction;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "mse: not implemented yet");
}

hft_tensor *hft_cross_entropy(hft_ctx *ctx, hft_tensor *logits, hft_tensor *targets, hft_xent_opts opts,
                              int64_t *count) {
    (void)ctx;
    (void)logits;
    (void)targets;
    (void)opts;
    (void)count;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "cross_entropy: not implemented yet");
}

hft_tensor *hft_cross_entropy_mean(hft_ctx *ctx, hft_tensor *logits, hft_tensor *targets, hft_xent_opts opts) {
    (void)ctx;
    (void)logits;
    (void)targets;
    (void)opts;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "cross_entropy: not implemented yet");
}

hft_tensor *hft_linear_cross_entropy(hft_ctx *ctx, hft_tensor *hidden, hft_tensor *weight, hft_tensor *bias,
                                     hft_tensor *targets, hft_xent_opts opts, int64_t *count) {
    (void)ctx;
    (void)hidden;
    (void)weight;
    (void)bias;
    (void)targets;
    (void)opts;
    (void)count;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "linear_cross_entropy: not implemented yet");
}
