/* Placeholder until the softmax op lands. */
#include "autograd/internal.h"

hft_tensor *hft_softmax(hft_ctx *ctx, hft_tensor *x, int dim) {
    (void)ctx;
    (void)x;
    (void)dim;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "softmax: not implemented yet");
}

hft_tensor *hft_log_softmax(hft_ctx *ctx, hft_tensor *x, int dim) {
    (void)ctx;
    (void)x;
    (void)dim;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "log_softmax: not implemented yet");
}
