/* Placeholder until the attention op lands. */
#include "autograd/internal.h"

hft_tensor *hft_attention(hft_ctx *ctx, hft_tensor *q, hft_tensor *k, hft_tensor *v, const hft_attn_opts *opts) {
    (void)ctx;
    (void)q;
    (void)k;
    (void)v;
    (void)opts;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "attention: not implemented yet");
}
