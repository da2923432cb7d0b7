/* Batch helpers the families share: positions, shifted labels, input checks. */
#include <stdlib.h>

#include "nn/nn_internal.h"

/* On the CPU written in place (no allocation: a steady step allocates nothing); on a device made on the
 * host and copied there (hft_from_data), since the host cannot write device memory. */
hft_tensor *nn_positions_from(hft_ctx *ctx, int64_t start, int64_t T) {
    if (hft_ctx_device(ctx).type == HFT_CPU) {
        hft_tensor *pos = hft_empty(ctx, HFT_I64, 2, (int64_t[]){1, T});
        if (!pos) return NULL;
        int64_t *p = hft_tensor_data(pos);
        for (int64_t t = 0; t < T; t++) p[t] = start + t;
        return pos;
    }
    int64_t *p = malloc(sizeof *p * (size_t)(T > 0 ? T : 1));
    if (!p) return hft_ctx_fail(ctx, HFT_ENOMEM, "positions: out of memory");
    for (int64_t t = 0; t < T; t++) p[t] = start + t;
    hft_tensor *pos = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, T}, p);
    free(p);
    return pos;
}

static bool same_device(hft_device a, hft_device b) {
    return a.type == b.type && (a.type == HFT_CPU || a.index == b.index);
}

hft_tensor *nn_to_ctx(hft_ctx *ctx, hft_tensor *t) {
    if (!t || same_device(t->device, hft_ctx_device(ctx))) return t;
    hft_tensor *c = hft_empty(ctx, t->dtype, t->ndim, t->shape);
    if (!c) return NULL;
    if (hft_tensor_copy(c, t) != HFT_OK)
        return hft_ctx_fail(ctx, HFT_EDEVICE, "batch: copying an input to the device: %s",
                            hft_error_message());
    return c;
}

hft_batch nn_batch_to_ctx(hft_ctx *ctx, const hft_batch *b) {
    hft_batch d = *b;
    d.input_ids = nn_to_ctx(ctx, b->input_ids);
    d.attention_mask = nn_to_ctx(ctx, b->attention_mask);
    d.token_type_ids = nn_to_ctx(ctx, b->token_type_ids);
    d.labels = nn_to_ctx(ctx, b->labels);
    d.position_ids = nn_to_ctx(ctx, b->position_ids);
    return d;
}

/* Causal LM targets: labels shifted left by one, -100 at the end of each row. */
static void shift_rows(const int64_t *src, int64_t s0, int64_t s1, int64_t B, int64_t T, int64_t *dst) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) dst[b * T + t] = t + 1 < T ? src[b * s0 + (t + 1) * s1] : -100;
}

/* Labels on a device, shifted there: -100 everywhere, then columns 1.. copied into 0.. (the host waits for
 * nothing). */
static hft_tensor *shift_on_device(hft_ctx *ctx, hft_tensor *lab, int64_t B, int64_t T) {
    hft_tensor *shifted = hft_full(ctx, HFT_I64, 2, (int64_t[]){B, T}, -100.0);
    if (!shifted || T < 2) return shifted;
    hft_tensor *dst = hft_narrow(ctx, shifted, 1, 0, T - 1), *src = hft_narrow(ctx, lab, 1, 1, T - 1);
    if (!dst || !src) return NULL;
    if (hft_tensor_copy(dst, src) != HFT_OK)
        return hft_ctx_fail(ctx, HFT_EDEVICE, "causal LM labels: shifting them on the device: %s",
                            hft_error_message());
    return shifted;
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
        hft_ctx_fail(ctx, HFT_EINVAL,
                     "decode: %lld rows of %lld tokens after %lld do not fit a cache of %lld rows "
                     "x %lld tokens",
                     (long long)B, (long long)T, (long long)c->len, (long long)c->batch,
                     (long long)c->max_len);
        return false;
    }
    hft_tensor *dk = hft_narrow(ctx, c->k[layer], 1, c->len, T),
               *dv = hft_narrow(ctx, c->v[layer], 1, c->len, T);
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
    if (lab->device.type != HFT_CPU) return shift_on_device(ctx, lab, B, T);
    hft_tensor *shifted = hft_empty(ctx, HFT_I64, 2, (int64_t[]){B, T});
    if (!shifted) return NULL;
    shift_rows(hft_tensor_data(lab), lab->stride[0], lab->stride[1], B, T, hft_tensor_data(shifted));
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
