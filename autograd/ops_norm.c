/* Placeholder until the layer_norm op lands. */
#include "autograd/internal.h"

hft_tensor *hft_layer_norm(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, hft_tensor *bias, double eps) {
    (void)ctx;
    (void)x;
    (void)weight;
    (void)bias;
    (void)eps;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "layer_norm: not implemented yet");
}

hft_tensor *hft_rms_norm(hft_ctx *ctx, hft_tensor *x, hft_tensor *weight, double eps) {
    (void)ctx;
    (void)x;
    (void)weight;
    (void)eps;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "rms_norm: not implemented yet");
}
