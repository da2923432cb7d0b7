/* Placeholder until the embedding op lands. */
#include "autograd/internal.h"

hft_tensor *hft_embedding(hft_ctx *ctx, hft_tensor *weight, hft_tensor *ids, int64_t padding_idx) {
    (void)ctx;
    (void)weight;
    (void)ids;
    (void)padding_idx;
    return ag_fail(ctx, HFT_EUNSUPPORTED, "embedding: not implemented yet");
}
