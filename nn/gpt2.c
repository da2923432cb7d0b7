/* GPT-2 (GPT2LMHeadModel) as a formula over autograd ops: Conv1D weights used through transposed views
 * (no copies, gradients written transposed), the packed q/k/v projection split into views that the fused
 * attention reads in place, and the tied classifier fused with the loss. */
#include "nn/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gpt2_layer {
    hft_tensor *ln_1_w, *ln_1_b, *c_attn_w, *c_attn_b, *attn_proj_w, *attn_proj_b;
    hft_tensor *ln_2_w, *ln_2_b, *c_fc_w, *c_fc_b, *mlp_proj_w, *mlp_proj_b;
} gpt2_layer;

struct hft_gpt2 {
    hft_gpt2_config cfg;
    hft_paramset *params;
    hft_tensor *wte, *wpe, *ln_f_w, *ln_f_b;
    gpt2_layer *layers;
};

void hft_gpt2_config_default(hft_gpt2_config *c) {
    *c = (hft_gpt2_config){.vocab_size = 50257,
                           .n_positions = 1024,
                           .n_embd = 768,
                           .n_layer = 12,
                           .n_head = 12,
                           .n_inner = 0,
                           .layer_norm_epsilon = 1e-5,
                           .resid_pdrop = 0.1,
                           .embd_pdrop = 0.1,
                           .attn_pdrop = 0.1,
                           .initializer_range = 0.02,
                           .activation = HFT_GELU_TANH};
}

const hft_gpt2_config *hft_gpt2_config_of(const hft_gpt2 *m) {
    return &m->cfg;
}
hft_paramset *hft_gpt2_params(hft_gpt2 *m) {
    return m->params;
}

void hft_gpt2_free(hft_gpt2 *m) {
    if (!m) return;
    hft_paramset_free(m->params);
    free(m->layers);
    free(m);
}

typedef struct init_state {
    hft_gpt2 *m;
    uint64_t seed;
    uint32_t stream;
    hft_status status;
} init_state;

/* Adds a parameter named `name` (HF state-dict name) and initialises it: std > 0 normal, else constant. */
static hft_tensor *add_param(init_state *s, const char *name, int ndim, const int64_t *shape, double std,
                             double constant, uint32_t tags) {
    if (s->status != HFT_OK) return NULL;
    hft_tensor *t = hft_tensor_new(HFT_F32, ndim, shape);
    if (!t) {
        s->status = HFT_ENOMEM;
        return NULL;
    }
    s->status = std > 0 ? hft_init_normal(t, 0.0, std, s->seed, s->stream) : hft_init_constant(t, constant);
    s->stream++;
    if (s->status == HFT_OK) s->status = hft_paramset_add(s->m->params, name, t, tags);
    if (s->status != HFT_OK) {
        hft_tensor_free(t);
        return NULL;
    }
    return t;
}

static hft_status check_config(const hft_gpt2_config *c) {
    if (c->vocab_size < 1 || c->n_positions < 1 || c->n_embd < 1 || c->n_layer < 0 || c->n_head < 1)
        return hft_error(HFT_EINVAL, "gpt2 config: sizes must be positive");
    if (c->n_embd % c->n_head)
        return hft_error(HFT_EINVAL, "gpt2 config: n_embd %lld is not a multiple of n_head %lld",
                         (long long)c->n_embd, (long long)c->n_head);
    return HFT_OK;
}

hft_status hft_gpt2_new(const hft_gpt2_config *cfg, uint64_t seed, hft_gpt2 **out) {
    *out = NULL;
    HFT_TRY(check_config(cfg));
    hft_gpt2 *m = calloc(1, sizeof *m);
    if (!m) return hft_error(HFT_ENOMEM, "gpt2: out of memory");
    m->cfg = *cfg;
    m->params = hft_paramset_new();
    m->layers = calloc((size_t)(cfg->n_layer ? cfg->n_layer : 1), sizeof *m->layers);
    if (!m->params || !m->layers) {
        hft_gpt2_free(m);
        return hft_error(HFT_ENOMEM, "gpt2: out of memory");
    }
    int64_t d = cfg->n_embd, inner = cfg->n_inner ? cfg->n_inner : 4 * d;
    double std = cfg->initializer_range,
           proj_std = std / sqrt(2.0 * (double)(cfg->n_layer ? cfg->n_layer : 1));
    init_state s = {.m = m, .seed = seed};
    m->wte = add_param(&s, "transformer.wte.weight", 2, (int64_t[]){cfg->vocab_size, d}, std, 0, 0);
    m->wpe = add_param(&s, "transformer.wpe.weight", 2, (int64_t[]){cfg->n_positions, d}, std, 0, 0);
    for (int64_t l = 0; l < cfg->n_layer; l++) {
        gpt2_layer *L = &m->layers[l];
        char n[128];
#define P(field, suffix, ndim, shape, sd, c, tags)                                                           \
    snprintf(n, sizeof n, "transformer.h.%lld.%s", (long long)l, suffix);                                    \
    L->field = add_param(&s, n, ndim, shape, sd, c, tags)
        P(ln_1_w, "ln_1.weight", 1, ((int64_t[]){d}), 0, 1.0, HFT_PARAM_NO_DECAY);
        P(ln_1_b, "ln_1.bias", 1, ((int64_t[]){d}), 0, 0.0, HFT_PARAM_NO_DECAY);
        P(c_attn_w, "attn.c_attn.weight", 2, ((int64_t[]){d, 3 * d}), std, 0, 0);
        P(c_attn_b, "attn.c_attn.bias", 1, ((int64_t[]){3 * d}), 0, 0.0, HFT_PARAM_NO_DECAY);
        P(attn_proj_w, "attn.c_proj.weight", 2, ((int64_t[]){d, d}), proj_std, 0, 0);
        P(attn_proj_b, "attn.c_proj.bias", 1, ((int64_t[]){d}), 0, 0.0, HFT_PARAM_NO_DECAY);
        P(ln_2_w, "ln_2.weight", 1, ((int64_t[]){d}), 0, 1.0, HFT_PARAM_NO_DECAY);
        P(ln_2_b, "ln_2.bias", 1, ((int64_t[]){d}), 0, 0.0, HFT_PARAM_NO_DECAY);
        P(c_fc_w, "mlp.c_fc.weight", 2, ((int64_t[]){d, inner}), std, 0, 0);
        P(c_fc_b, "mlp.c_fc.bias", 1, ((int64_t[]){inner}), 0, 0.0, HFT_PARAM_NO_DECAY);
        P(mlp_proj_w, "mlp.c_proj.weight", 2, ((int64_t[]){inner, d}), proj_std, 0, 0);
        P(mlp_proj_b, "mlp.c_proj.bias", 1, ((int64_t[]){d}), 0, 0.0, HFT_PARAM_NO_DECAY);
#undef P
    }
    m->ln_f_w = add_param(&s, "transformer.ln_f.weight", 1, (int64_t[]){d}, 0, 1.0, HFT_PARAM_NO_DECAY);
    m->ln_f_b = add_param(&s, "transformer.ln_f.bias", 1, (int64_t[]){d}, 0, 0.0, HFT_PARAM_NO_DECAY);
    if (s.status == HFT_OK) s.status = hft_paramset_finalize(m->params, (size_t)25 << 20);
    if (s.status != HFT_OK) {
        hft_gpt2_free(m);
        return s.status;
    }
    *out = m;
    return HFT_OK;
}

/* Conv1D: y = x W + b with W stored [in, out]; linear takes [out, in], so pass the transposed view. */
static hft_tensor *conv1d(hft_ctx *ctx, hft_tensor *x, hft_tensor *w, hft_tensor *b) {
    return hft_linear(ctx, x, hft_transpose(ctx, w, 0, 1), b);
}

/* Dropout call sites: 0 for the embeddings, then three per layer. */
static uint16_t site(int64_t layer, int k) {
    return (uint16_t)(1 + 3 * layer + k);
}

hft_tensor *hft_gpt2_block(hft_ctx *ctx, hft_gpt2 *m, int layer, hft_tensor *h, hft_tensor *key_mask,
                           bool train) {
    const hft_gpt2_config *c = &m->cfg;
    const gpt2_layer *L = &m->layers[layer];
    int64_t B = h->shape[0], T = h->shape[1], d = c->n_embd, H = c->n_head, hd = d / H;
    hft_tensor *a = hft_layer_norm(ctx, h, L->ln_1_w, L->ln_1_b, c->layer_norm_epsilon);
    hft_tensor *qkv = conv1d(ctx, a, L->c_attn_w, L->c_attn_b); /* [B, T, 3d] */
    hft_tensor *qkv5 = hft_reshape(ctx, qkv, 5, (int64_t[]){B, T, 3, H, hd});
    hft_tensor *q = hft_squeeze(ctx, hft_narrow(ctx, qkv5, 2, 0, 1), 2);
    hft_tensor *k = hft_squeeze(ctx, hft_narrow(ctx, qkv5, 2, 1, 1), 2);
    hft_tensor *v = hft_squeeze(ctx, hft_narrow(ctx, qkv5, 2, 2, 1), 2);
    hft_attn_opts ao = {.causal = true,
                        .key_mask = key_mask,
                        .dropout_p = train ? c->attn_pdrop : 0.0,
                        .dropout_site = site(layer, 0)};
    hft_tensor *o = hft_reshape(ctx, hft_attention(ctx, q, k, v, &ao), 3, (int64_t[]){B, T, d});
    o = conv1d(ctx, o, L->attn_proj_w, L->attn_proj_b);
    if (train) o = hft_dropout(ctx, o, c->resid_pdrop, site(layer, 1));
    h = hft_add(ctx, h, o);
    hft_tensor *f = hft_layer_norm(ctx, h, L->ln_2_w, L->ln_2_b, c->layer_norm_epsilon);
    f = hft_gelu(ctx, conv1d(ctx, f, L->c_fc_w, L->c_fc_b), c->activation);
    f = conv1d(ctx, f, L->mlp_proj_w, L->mlp_proj_b);
    if (train) f = hft_dropout(ctx, f, c->resid_pdrop, site(layer, 2));
    return hft_add(ctx, h, f);
}

hft_tensor *hft_gpt2_hidden(hft_ctx *ctx, hft_gpt2 *m, hft_tensor *input_ids, hft_tensor *key_mask,
                            bool train) {
    if (hft_ctx_status(ctx) != HFT_OK || !input_ids) return NULL;
    const hft_gpt2_config *c = &m->cfg;
    if (input_ids->ndim != 2 || (input_ids->dtype != HFT_I64 && input_ids->dtype != HFT_I32))
        return hft_ctx_fail(ctx, HFT_EINVAL, "gpt2: input_ids must be [batch, seq] of i64 or i32");
    int64_t T = input_ids->shape[1];
    if (T > c->n_positions)
        return hft_ctx_fail(ctx, HFT_EINVAL, "gpt2: sequence length %lld exceeds n_positions %lld",
                            (long long)T, (long long)c->n_positions);
    hft_tensor *pos = hft_empty(ctx, HFT_I64, 2, (int64_t[]){1, T});
    if (!pos) return NULL;
    int64_t *pv = hft_tensor_data(pos);
    for (int64_t t = 0; t < T; t++) pv[t] = t;
    hft_tensor *h =
        hft_add(ctx, hft_embedding(ctx, m->wte, input_ids, -1), hft_embedding(ctx, m->wpe, pos, -1));
    if (train) h = hft_dropout(ctx, h, c->embd_pdrop, 0);
    for (int64_t l = 0; l < c->n_layer && h; l++) h = hft_gpt2_block(ctx, m, (int)l, h, key_mask, train);
    return hft_layer_norm(ctx, h, m->ln_f_w, m->ln_f_b, c->layer_norm_epsilon);
}

hft_tensor *hft_gpt2_lm_loss(hft_ctx *ctx, hft_gpt2 *m, hft_tensor *input_ids, hft_tensor *labels,
                             hft_tensor *key_mask, bool train, int64_t *count) {
    hft_tensor *h = hft_gpt2_hidden(ctx, m, input_ids, key_mask, train);
    if (!h || !labels) return NULL;
    int64_t B = labels->shape[0], T = labels->shape[1];
    /* shift the labels instead of the hidden states: position t predicts label t+1, the last predicts nothing
     */
    hft_tensor *shifted = hft_empty(ctx, HFT_I64, 2, (int64_t[]){B, T});
    if (!shifted) return NULL;
    hft_tensor *lab = hft_cast(ctx, labels, HFT_I64);
    if (!lab) return NULL;
    const int64_t *src = hft_tensor_data(lab);
    int64_t *dst = hft_tensor_data(shifted);
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            dst[b * T + t] = t + 1 < T ? src[b * lab->stride[0] + (t + 1) * lab->stride[1]] : -100;
    return hft_linear_cross_entropy(ctx, h, m->wte, NULL, shifted, HFT_XENT_DEFAULTS, count);
}

hft_tensor *hft_gpt2_logits(hft_ctx *ctx, hft_gpt2 *m, hft_tensor *input_ids, hft_tensor *key_mask) {
    hft_tensor *h = hft_gpt2_hidden(ctx, m, input_ids, key_mask, false);
    return hft_linear(ctx, h, m->wte, NULL);
}
