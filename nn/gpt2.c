/* GPT-2 (GPT2LMHeadModel) as a formula over autograd ops: Conv1D weights used through transposed views
 * (no copies, gradients written transposed), the packed q/k/v projection split into views that the fused
 * attention reads in place, and the tied classifier fused with the loss. */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct gpt2_layer {
    hft_tensor *ln_1_w, *ln_1_b, *ln_2_w, *ln_2_b;
    nn_linear c_attn, attn_proj, c_fc, mlp_proj; /* Conv1D modules */
} gpt2_layer;

typedef struct gpt2 {
    int64_t n_positions, n_embd, n_head, n_inner;
    double eps, resid_pdrop, embd_pdrop, attn_pdrop;
    hft_gelu_approx activation;
    bool scale_attn_weights, scale_by_layer, tied;
    hft_tensor *wte, *wpe, *ln_f_w, *ln_f_b, *lm_head;
    gpt2_layer *layers;
} gpt2;

static void gpt2_free(void *impl) {
    gpt2 *g = impl;
    if (g) free(g->layers);
    free(g);
}

/* GPT2Config, with its defaults and the aliases transformers maps (hidden_size → n_embd ...). */
static hft_status parse_config(hft_model *m, gpt2 *g, nn_cfg *c) {
    m->vocab_size = nn_cfg_pos_int(c, "vocab_size", NULL, 50257);
    g->n_positions = nn_cfg_pos_int(c, "n_positions", "max_position_embeddings", 1024);
    g->n_embd = nn_cfg_pos_int(c, "n_embd", "hidden_size", 768);
    m->n_layers = (int)nn_cfg_int_alias(c, "n_layer", "num_hidden_layers", 12);
    g->n_head = nn_cfg_pos_int(c, "n_head", "num_attention_heads", 12);
    g->n_inner = nn_cfg_int(c, "n_inner", 0);
    g->eps = nn_cfg_num(c, "layer_norm_epsilon", 1e-5);
    g->resid_pdrop = nn_cfg_num(c, "resid_pdrop", 0.1);
    g->embd_pdrop = nn_cfg_num(c, "embd_pdrop", 0.1);
    g->attn_pdrop = nn_cfg_num(c, "attn_pdrop", 0.1);
    g->scale_attn_weights = nn_cfg_bool(c, "scale_attn_weights", true);
    g->scale_by_layer = nn_cfg_bool(c, "scale_attn_by_inverse_layer_idx", false);
    g->tied = nn_cfg_bool(c, "tie_word_embeddings", true);
    /* reorder_and_upcast_attn computes the scores in f32: in f32 training that is what happens anyway */
    nn_cfg_bool(c, "reorder_and_upcast_attn", false);
    const char *act = nn_cfg_str(c, "activation_function", "gelu_new");
    if (c->status != HFT_OK) return c->status;
    if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0)
        g->activation = HFT_GELU_TANH;
    else if (strcmp(act, "gelu") == 0)
        g->activation = HFT_GELU_ERF;
    else
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, "activation_function",
                           "'%s' is not supported (supported: gelu_new, gelu_pytorch_tanh, gelu)", act);
    if (m->n_layers < 0) return nn_cfg_fail(c, HFT_EFORMAT, "n_layer", "expected a count >= 0");
    if (g->n_embd % g->n_head)
        return nn_cfg_fail(c, HFT_EFORMAT, "n_head", "n_embd %lld is not a multiple of n_head %lld",
                           (long long)g->n_embd, (long long)g->n_head);
    if (nn_cfg_bool(c, "add_cross_attention", false))
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, "add_cross_attention", "cross-attention is not supported");
    if (g->n_inner == 0) g->n_inner = 4 * g->n_embd;
    return c->status;
}

static hft_status gpt2_build(hft_model *m) {
    gpt2 *g = calloc(1, sizeof *g);
    if (!g) return hft_error(HFT_ENOMEM, "out of memory");
    m->impl = g;
    nn_cfg c = {.root = m->config, .path = m->config_path};
    HFT_TRY(parse_config(m, g, &c));
    m->task = HFT_TASK_CAUSAL_LM;
    m->hidden_size = g->n_embd;
    m->max_positions = g->n_positions;
    m->base_prefix = "transformer.";
    g->layers = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof *g->layers);
    if (!g->layers) return hft_error(HFT_ENOMEM, "out of memory");
    double std = nn_cfg_num(&c, "initializer_range", 0.02);
    /* transformers scales the residual projections' init by 1/sqrt(2 n_layer) */
    nn_init normal = {NN_INIT_NORMAL, std, -1},
            proj = {NN_INIT_NORMAL, std / sqrt(2.0 * (m->n_layers ? m->n_layers : 1)), -1};
    nn_init zeros = {NN_INIT_ZEROS, 0, -1}, ones = {NN_INIT_ONES, 0, -1};
    int64_t d = g->n_embd, in = g->n_inner;
    const uint32_t nd = HFT_PARAM_NO_DECAY;
    g->wte = nn_param(m, normal, 0, false, 2, (int64_t[]){m->vocab_size, d}, "transformer.wte.weight");
    g->wpe = nn_param(m, normal, 0, false, 2, (int64_t[]){g->n_positions, d}, "transformer.wpe.weight");
    for (int l = 0; l < m->n_layers; l++) {
        gpt2_layer *L = &g->layers[l];
        const char *h = "transformer.h";
        L->ln_1_w = nn_param(m, ones, nd, false, 1, (int64_t[]){d}, "%s.%d.ln_1.weight", h, l);
        L->ln_1_b = nn_param(m, zeros, nd, false, 1, (int64_t[]){d}, "%s.%d.ln_1.bias", h, l);
        nn_linear_decl(m, &L->c_attn, normal, &zeros, false, true, d, 3 * d, "%s.%d.attn.c_attn", h, l);
        nn_linear_decl(m, &L->attn_proj, proj, &zeros, false, true, d, d, "%s.%d.attn.c_proj", h, l);
        L->ln_2_w = nn_param(m, ones, nd, false, 1, (int64_t[]){d}, "%s.%d.ln_2.weight", h, l);
        L->ln_2_b = nn_param(m, zeros, nd, false, 1, (int64_t[]){d}, "%s.%d.ln_2.bias", h, l);
        nn_linear_decl(m, &L->c_fc, normal, &zeros, false, true, d, in, "%s.%d.mlp.c_fc", h, l);
        nn_linear_decl(m, &L->mlp_proj, proj, &zeros, false, true, in, d, "%s.%d.mlp.c_proj", h, l);
    }
    g->ln_f_w = nn_param(m, ones, nd, false, 1, (int64_t[]){d}, "transformer.ln_f.weight");
    g->ln_f_b = nn_param(m, zeros, nd, false, 1, (int64_t[]){d}, "transformer.ln_f.bias");
    g->lm_head =
        g->tied ? g->wte : nn_param(m, normal, 0, false, 2, (int64_t[]){m->vocab_size, d}, "lm_head.weight");
    return m->status;
}

/* The causal-mask buffers old GPT-2 files carry, and the tied classifier. */
static bool gpt2_ignored(const hft_model *m, const char *name) {
    size_t n = strlen(name);
    const gpt2 *g = m->impl;
    return (n > 10 && strcmp(name + n - 10, ".attn.bias") == 0) ||
           (n > 17 && strcmp(name + n - 17, ".attn.masked_bias") == 0) ||
           (g->tied && strcmp(name, "lm_head.weight") == 0);
}

/* Dropout call sites: 0 for the embeddings, then three per layer. */
static uint16_t site(int layer, int k) {
    return (uint16_t)(1 + 3 * layer + k);
}

static hft_tensor *gpt2_embed(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train) {
    gpt2 *g = m->impl;
    if (!nn_check_ids(ctx, m, b, g->n_positions)) return NULL;
    int64_t past = nn_past(b), T = b->input_ids->shape[1];
    if (past + T > g->n_positions)
        return hft_ctx_fail(ctx, HFT_EINVAL, "%s: position %lld is past n_positions %lld", m->architecture,
                            (long long)(past + T - 1), (long long)g->n_positions);
    /* GPT-2 counts positions from 0 whatever the mask, unless generation gives them (left padding) */
    hft_tensor *pos = b->position_ids ? b->position_ids : nn_positions_from(ctx, past, T);
    hft_tensor *h =
        hft_add(ctx, hft_embedding(ctx, g->wte, b->input_ids, -1), hft_embedding(ctx, g->wpe, pos, -1));
    return train ? hft_dropout(ctx, h, g->embd_pdrop, 0) : h;
}

static hft_tensor *gpt2_block(hft_ctx *ctx, hft_model *m, int layer, hft_tensor *h, const hft_batch *b,
                              bool train) {
    gpt2 *g = m->impl;
    const gpt2_layer *L = &g->layers[layer];
    int64_t B = h->shape[0], T = h->shape[1], d = g->n_embd, H = g->n_head, hd = d / H;
    hft_tensor *a = hft_layer_norm(ctx, h, L->ln_1_w, L->ln_1_b, g->eps);
    hft_tensor *qkv =
        hft_reshape(ctx, nn_linear_forward(ctx, &L->c_attn, a, train), 5, (int64_t[]){B, T, 3, H, hd});
    hft_tensor *q = hft_squeeze(ctx, hft_narrow(ctx, qkv, 2, 0, 1), 2);
    hft_tensor *k = hft_squeeze(ctx, hft_narrow(ctx, qkv, 2, 1, 1), 2);
    hft_tensor *v = hft_squeeze(ctx, hft_narrow(ctx, qkv, 2, 2, 1), 2);
    if (!nn_cache_kv(ctx, b, layer, &k, &v)) return NULL; /* decoding: attend to every cached token */
    double scale = g->scale_attn_weights ? 1.0 / sqrt((double)hd) : 1.0;
    if (g->scale_by_layer) scale /= (double)(layer + 1);
    hft_attn_opts ao = {.causal = true,
                        .scale = scale,
                        .key_mask = b->attention_mask,
                        .dropout_p = train ? g->attn_pdrop : 0.0,
                        .dropout_site = site(layer, 0)};
    hft_tensor *o = hft_reshape(ctx, hft_attention(ctx, q, k, v, &ao), 3, (int64_t[]){B, T, d});
    o = nn_linear_forward(ctx, &L->attn_proj, o, train);
    if (train) o = hft_dropout(ctx, o, g->resid_pdrop, site(layer, 1));
    h = hft_add(ctx, h, o);
    hft_tensor *f = hft_layer_norm(ctx, h, L->ln_2_w, L->ln_2_b, g->eps);
    f = hft_gelu(ctx, nn_linear_forward(ctx, &L->c_fc, f, train), g->activation);
    f = nn_linear_forward(ctx, &L->mlp_proj, f, train);
    if (train) f = hft_dropout(ctx, f, g->resid_pdrop, site(layer, 2));
    return hft_add(ctx, h, f);
}

static hft_tensor *final_norm(hft_ctx *ctx, const gpt2 *g, hft_tensor *h) {
    return hft_layer_norm(ctx, h, g->ln_f_w, g->ln_f_b, g->eps);
}

static hft_tensor *gpt2_head_loss(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b, bool train,
                                  int64_t *count) {
    (void)train;
    gpt2 *g = m->impl;
    return hft_linear_cross_entropy(ctx, final_norm(ctx, g, h), g->lm_head, NULL,
                                    nn_shift_labels(ctx, b->labels), HFT_XENT_DEFAULTS, count);
}

static hft_tensor *gpt2_head_logits(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b) {
    (void)b;
    gpt2 *g = m->impl;
    return hft_linear(ctx, final_norm(ctx, g, h), g->lm_head, NULL);
}

static void gpt2_kv_shape(const hft_model *m, int64_t *heads, int64_t *dim) {
    const gpt2 *g = m->impl;
    *heads = g->n_head;
    *dim = g->n_embd / g->n_head;
}

const nn_family nn_family_gpt2 = {
    .name = "gpt2",
    .architectures = (const char *const[]){"GPT2LMHeadModel", NULL},
    .build = gpt2_build,
    .free_impl = gpt2_free,
    .ignored = gpt2_ignored,
    .embed = gpt2_embed,
    .block = gpt2_block,
    .head_loss = gpt2_head_loss,
    .head_logits = gpt2_head_logits,
    .kv_shape = gpt2_kv_shape,
};
