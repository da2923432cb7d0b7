/* Placeholder until the dropout op lands. */
#include "autograd/internal.h"

hft_tensor *hft_dropout(hft_ctx *ctx, hft_tensor *x, double p, uint16_t site) {
    (void)ctx;
    (void)x;
    (void)p;
    (void)site;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "dropout: not implemented yet");
}
