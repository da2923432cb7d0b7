/* Placeholder until the rope op lands. */
#include "autograd/internal.h"

hft_tensor *hft_rope(hft_ctx *ctx, hft_tensor *x, hft_tensor *positions, hft_tensor *inv_freq, double scaling) {
    (void)ctx;
    (void)x;
    (void)positions;
    (void)inv_freq;
    (void)scaling;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "rope: not implemented yet");
}
