/* Batch helpers the families share: positions, shifted labels, input checks. */
#include "nn/nn_internal.h"

hft_tensor *nn_positions_from(hft_ctx *ctx, int64_t start, int64_t T) {
    hft_tensor *pos = hft_empty(ctx, HFT_I64, 2, (int64_t[]){1, T});
    if (!pos) return NULL;
    int64_t *p = hft_tensor_data(pos);
    for (int64_t t = 0; t < T; t++) p[t] = start + t;
    return pos;
}

hft_tensor *nn_positions(hft_ctx *ctx, int64_t T) {
    return nn_positions_from(ctx, 0, T);
}

int64_t nn_past(const hft_batch *b) {
    return b && b->cache ? b->cache->len : 0;
}

bool nn_cache_kv(hft_ctx *ctx, const hft_batch *b, int layer, hft_tensor **k, hft_tensor **v) {
    hft_kv_cache *c = b->cache;
    if (!c || !*k || !*v) return *k && *v;
    int64_t B = (*k)->shape[0], T = (*k)->shape[1];
    if (B != c->batch || c->len + T > c->max_len) {
        hft_ctx_fail(ctx, HFT_EINVAL, "decode: %lld rows of %lld tokens after %lld do not fit a cache of %lld rows "
                     "x %lld tokens", (long long)B, (long long)T, (long long)c->len, (long long)c->batch,
                     (long long)c->max_len);
        return false;
    }
    hft_tensor *dk = hft_narrow(ctx, c->k[layer], 1, c->len, T), *dv = hft_narrow(ctx, c->v[layer], 1, c->len, T);
    if (!dk || !dv || hft_tensor_copy(dk, *k) != HFT_OK || hft_tensor_copy(dv, *v) != HFT_OK) {
        hft_ctx_fail(ctx, HFT_EINVAL, "decode: %s", hft_error_message());
        return false;
    }
    *k = hft_narrow(ctx, c->k[layer], 1, 0, c->len + T);
    *v = hft_narrow(ctx, c->v[layer], 1, 0, c->len + T);
    return *k && *v;
}

hft_tensor *nn_shift_labels(hft_ctx *ctx, hft_tensor *labels) {
    hft_tensor *lab = hft_cast(ctx, labels, HFT_I64);
    if (!lab) return NULL;
    if (lab->ndim != 2) return hft_ctx_fail(ctx, HFT_EINVAL, "causal LM labels must be [batch, seq]");
    int64_t B = lab->shape[0], T = lab->shape[1];
    hft_tensor *shifted = hft_empty(ctx, HFT_I64, 2, (int64_t[]){B, T});
    if (!shifted) return NULL;
    const int64_t *src = hft_tensor_data(lab);
    int64_t *dst = hft_tensor_data(shifted);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            dst[b * T + t] = t + 1 < T ? src[b * lab->stride[0] + (t + 1) * lab->stride[1]] : -100;
    return shifted;
}

bool nn_check_ids(hft_ctx *ctx, const hft_model *m, const hft_batch *b, int64_t max_positions) {
    if (hft_ctx_status(ctx) != HFT_OK) return false;
    const hft_tensor *ids = b ? b->input_ids : NULL;
    if (!ids || ids->ndim != 2 || (ids->dtype != HFT_I64 && ids->dtype != HFT_I32)) {
        hft_ctx_fail(ctx, HFT_EINVAL, "%s: input_ids must be a [batch, seq] tensor of i64 or i32",
                     m->architecture);
        return false;
    }
    if (ids->shape[1] < 1 || (max_positions > 0 && ids->shape[1] > max_positions)) {
        hft_ctx_fail(ctx, HFT_EINVAL,
                     "%s: sequence length %lld is outside [1, %lld] (max_position_embeddings)",
                     m->architecture, (long long)ids->shape[1], (long long)max_positions);
        return false;
    }
    const hft_tensor *masks[2] = {b->attention_mask, b->token_type_ids};
    const char *names[2] = {"attention_mask", "token_type_ids"};
    int64_t keys = ids->shape[1] + nn_past(b); /* with a cache the mask covers every key */
    for (int i = 0; i < 2; i++)
        if (masks[i] && (masks[i]->ndim != 2 || masks[i]->shape[0] != ids->shape[0] ||
                         masks[i]->shape[1] != (i == 0 ? keys : ids->shape[1]))) {
            hft_ctx_fail(ctx, HFT_EINVAL, "%s: %s must have input_ids' shape [%lld, %lld]", m->architecture,
                         names[i], (long long)ids->shape[0], (long long)ids->shape[1]);
            return false;
        }
    return true;
}
