/* Incremental decoding: a KV cache per layer, allocated once for a batch and a length on the model's
 * device, and the forward pass of new tokens that attends to every cached one (causal attention aligns its
 * mask bottom-right, so the new queries see all earlier keys). */
#include "nn/nn_internal.h"

#include <stdlib.h>

hft_status hft_kv_cache_new(const hft_model *m, int64_t batch, int64_t max_len, hft_kv_cache **out) {
    *out = NULL;
    if (!m->family->kv_shape || m->task != HFT_TASK_CAUSAL_LM)
        return hft_error(HFT_EUNSUPPORTED, "%s: incremental decoding is for causal language models",
                         m->architecture);
    if (batch < 1 || max_len < 1)
        return hft_error(HFT_EINVAL, "KV cache of %lld rows x %lld tokens; expected at least 1 x 1",
                         (long long)batch, (long long)max_len);
    int64_t heads, dim;
    m->family->kv_shape(m, &heads, &dim);
    hft_kv_cache *c = calloc(1, sizeof *c);
    if (!c) return hft_error(HFT_ENOMEM, "out of memory");
    c->n_layers = m->n_layers;
    c->batch = batch;
    c->max_len = max_len;
    c->k = calloc((size_t)m->n_layers, sizeof *c->k);
    c->v = calloc((size_t)m->n_layers, sizeof *c->v);
    bool ok = c->k && c->v;
    hft_device dev = hft_model_device(m); /* the cache lives with the model, on a GPU too */
    for (int l = 0; l < m->n_layers && ok; l++) {
        c->k[l] = hft_tensor_new_on(dev, HFT_F32, 4, (int64_t[]){batch, max_len, heads, dim});
        c->v[l] = hft_tensor_new_on(dev, HFT_F32, 4, (int64_t[]){batch, max_len, heads, dim});
        ok = c->k[l] && c->v[l];
    }
    if (!ok) {
        hft_kv_cache_free(c);
        return hft_error(HFT_ENOMEM, "out of memory for a KV cache of %lld x %lld tokens", (long long)batch,
                         (long long)max_len);
    }
    *out = c;
    return HFT_OK;
}

void hft_kv_cache_free(hft_kv_cache *c) {
    if (!c) return;
    for (int l = 0; l < c->n_layers; l++) {
        if (c->k) hft_tensor_free(c->k[l]);
        if (c->v) hft_tensor_free(c->v[l]);
    }
    free(c->k);
    free(c->v);
    free(c);
}

int64_t hft_kv_cache_len(const hft_kv_cache *c) {
    return c->len;
}

void hft_kv_cache_reset(hft_kv_cache *c) {
    c->len = 0;
}

hft_tensor *hft_model_decode(hft_ctx *ctx, hft_model *m, hft_kv_cache *c, hft_tensor *ids) {
    return hft_model_decode_masked(ctx, m, c, ids, NULL, NULL);
}

hft_tensor *hft_model_decode_masked(hft_ctx *ctx, hft_model *m, hft_kv_cache *c, hft_tensor *ids,
                                    hft_tensor *mask, hft_tensor *positions) {
    if (c->n_layers != m->n_layers)
        return hft_ctx_fail(ctx, HFT_EINVAL, "decode: the cache has %d layers, %s %d", c->n_layers,
                            m->architecture, m->n_layers);
    hft_batch b = {.input_ids = ids, .cache = c, .attention_mask = mask, .position_ids = positions};
    bool prev = hft_set_grad_enabled(ctx, false);
    hft_tensor *logits = hft_model_logits(ctx, m, &b);
    hft_set_grad_enabled(ctx, prev);
    if (logits) c->len += ids->shape[1];
    return logits;
}
