/* The Llama family (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM) as a formula over autograd ops:
 * RMSNorm, q/k/v projections viewed as heads, RoPE on q and k, grouped-query attention (the fused op reads
 * the kv heads in place), SwiGLU MLP, and the classifier fused with the loss. The RoPE frequencies are
 * computed once from config.json as transformers computes them (modeling_rope_utils.py), in f32. */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PI 3.141592653589793 /* Python's math.pi */

typedef enum llama_arch { ARCH_LLAMA, ARCH_MISTRAL, ARCH_QWEN2 } llama_arch;
typedef enum llama_act { ACT_SILU, ACT_GELU_ERF, ACT_GELU_TANH, ACT_RELU } llama_act;

typedef struct llama_layer {
    hft_tensor *in_norm, *post_norm;
    nn_linear q, k, v, o, gate, up, down;
} llama_layer;

typedef struct llama {
    llama_arch arch;
    int64_t intermediate, n_heads, n_kv_heads, head_dim, max_positions;
    int64_t sliding_window; /* Mistral: 0 when none */
    int64_t pad_id;         /* embed_tokens' padding_idx, -1 when none */
    double eps, attn_dropout;
    llama_act act;
    bool tied, qkv_bias, o_bias, mlp_bias;
    hft_tensor *inv_freq; /* [head_dim / 2] f32, a heap tensor owned here (not a parameter) */
    double rope_scaling;  /* the attention factor cos and sin are scaled by (yarn), else 1 */
    hft_tensor *embed, *norm, *lm_head;
    llama_layer *layers;
} llama;

static void llama_free(void *impl) {
    llama *g = impl;
    if (!g) return;
    hft_tensor_free(g->inv_freq);
    free(g->layers);
    free(g);
}

/* ---------------------------------------------------------------- config */

/* A key written as JSON null (nn_cfg reads null as absent; a few defaults differ between the two). */
static bool is_null(const nn_cfg *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return v && cJSON_IsNull(v);
}

typedef struct rope_cfg {
    const cJSON *obj;  /* rope_scaling or rope_parameters, NULL when neither */
    const char *where; /* its key, for messages */
    char type_key[64]; /* "rope_parameters.rope_type" or the like, for messages */
    char type[32];
    double theta;
} rope_cfg;

/* A number inside the RoPE object; `*found` tells whether it was there. */
static double rope_num(nn_cfg *c, const rope_cfg *r, const char *key, double def, bool *found) {
    const cJSON *v = r->obj ? cJSON_GetObjectItemCaseSensitive(r->obj, key) : NULL;
    if (found) *found = false;
    if (!v || cJSON_IsNull(v) || c->status != HFT_OK) return def;
    char full[96];
    snprintf(full, sizeof full, "%s.%s", r->where, key);
    if (!cJSON_IsNumber(v)) {
        nn_cfg_fail(c, HFT_EFORMAT, full, "expected a number");
        return def;
    }
    if (found) *found = true;
    return v->valuedouble;
}

/* A number the RoPE type needs, > 0. */
static double rope_required(nn_cfg *c, const rope_cfg *r, const char *key) {
    bool found;
    double v = rope_num(c, r, key, 0.0, &found);
    if (c->status != HFT_OK) return v;
    char full[96];
    snprintf(full, sizeof full, "%s.%s", r->where, key);
    if (!found)
        nn_cfg_fail(c, HFT_EFORMAT, full, "missing: RoPE type '%s' needs it", r->type);
    else if (!(v > 0))
        nn_cfg_fail(c, HFT_EFORMAT, full, "expected a number > 0, got %g", v);
    return v;
}

/* transformers 5.23's resolution of the two layouts: rope_scaling (4.x) wins over rope_parameters (5.x) when
 * both are given and non-empty; the dict's rope_theta wins over the top-level one, 10000 when neither; the
 * type is rope_type, else type, else "default"; partial_rotary_factor likewise from the dict or the top. */
static hft_status rope_resolve(nn_cfg *c, rope_cfg *r) {
    r->obj = NULL;
    r->where = "rope_parameters";
    const char *keys[2] = {"rope_scaling", "rope_parameters"};
    for (int i = 0; i < 2 && !r->obj; i++) {
        const cJSON *o = nn_cfg_obj(c, keys[i]);
        if (o && o->child) {
            r->obj = o;
            r->where = keys[i];
        }
    }
    if (c->status != HFT_OK) return c->status;
    for (const cJSON *e = r->obj ? r->obj->child : NULL; e; e = e->next)
        if (cJSON_IsObject(e))
            return nn_cfg_fail(c, HFT_EUNSUPPORTED, r->where,
                               "per-layer-type RoPE parameters ('%s' holds an object) are not supported",
                               e->string);
    const char *tkey = "rope_type";
    const cJSON *t = r->obj ? cJSON_GetObjectItemCaseSensitive(r->obj, tkey) : NULL;
    if (!t || cJSON_IsNull(t)) {
        tkey = "type";
        t = r->obj ? cJSON_GetObjectItemCaseSensitive(r->obj, tkey) : NULL;
    }
    snprintf(r->type_key, sizeof r->type_key, "%s.%s", r->where, t ? tkey : "rope_type");
    if (t && !cJSON_IsNull(t) && !cJSON_IsString(t))
        return nn_cfg_fail(c, HFT_EFORMAT, r->type_key, "expected a string");
    snprintf(r->type, sizeof r->type, "%s", t && cJSON_IsString(t) ? t->valuestring : "default");
    bool found;
    r->theta = rope_num(c, r, "rope_theta", 0.0, &found);
    if (!found) r->theta = nn_cfg_num(c, "rope_theta", 10000.0);
    if (c->status == HFT_OK && !(r->theta > 0)) {
        char theta_key[96] = "rope_theta";
        if (found) snprintf(theta_key, sizeof theta_key, "%s.rope_theta", r->where);
        return nn_cfg_fail(c, HFT_EFORMAT, theta_key, "expected a number > 0, got %g", r->theta);
    }
    double prf = rope_num(c, r, "partial_rotary_factor", 0.0, &found);
    char prf_key[96] = "partial_rotary_factor";
    if (found)
        snprintf(prf_key, sizeof prf_key, "%s.partial_rotary_factor", r->where);
    else
        prf = nn_cfg_num(c, "partial_rotary_factor", 1.0);
    if (c->status == HFT_OK && prf != 1.0)
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, prf_key,
                           "%g: RoPE on part of the head is not supported (only 1.0, the whole head)", prf);
    return c->status;
}

/* inv_freq[i] = 1 / theta^(2i / dim), as transformers: arange(0, dim, 2) as f32, divided by dim, theta raised
 * to it (the base cast to f32), then the reciprocal — every step rounded to f32. */
static void default_inv_freq(float *inv, int64_t dim, double theta) {
    for (int64_t i = 0; i < dim / 2; i++) {
        float e = (float)(2 * i) / (float)dim;
        float p = powf((float)theta, e);
        inv[i] = 1.0f / p;
    }
}

/* _compute_llama3_parameters. Python scalars meet f32 tensors as f32 (torch's wrapped-number promotion), and
 * `s / tensor` is reciprocal(tensor) * s. */
static void llama3_inv_freq(float *inv, int64_t n, double factor, double low_ff, double high_ff,
                            double old_ctx) {
    double low_wl = old_ctx / low_ff, high_wl = old_ctx / high_ff; /* Python floats */
    const float f = (float)factor, two_pi = (float)(2.0 * PI), ctx = (float)old_ctx;
    const float lo = (float)low_ff, span = (float)(high_ff - low_ff);
    for (int64_t i = 0; i < n; i++) {
        float wavelen = (1.0f / inv[i]) * two_pi;
        float scaled = wavelen > (float)low_wl ? inv[i] / f : inv[i];
        float smooth = ((1.0f / wavelen) * ctx - lo) / span;
        float a = (1.0f - smooth) * scaled;
        a = a / f;
        float b = smooth * scaled;
        float smoothed = a + b;
        bool medium = !(wavelen < (float)high_wl) && !(wavelen > (float)low_wl);
        inv[i] = medium ? smoothed : scaled;
    }
}

/* _compute_yarn_parameters: the correction range in double (Python math), the ramp and blend in f32. */
static void yarn_inv_freq(float *inv, int64_t dim, double theta, double factor, double orig, double beta_fast,
                          double beta_slow, bool truncate) {
    double low = (dim * log(orig / (beta_fast * 2 * PI))) / (2 * log(theta));
    double high = (dim * log(orig / (beta_slow * 2 * PI))) / (2 * log(theta));
    if (truncate) {
        low = floor(low);
        high = ceil(high);
    }
    if (low < 0) low = 0;
    if (high > (double)(dim - 1)) high = (double)(dim - 1);
    if (low == high) high += 0.001; /* transformers: prevent a singularity */
    const float flo = (float)low, fspan = (float)(high - low), f = (float)factor;
    for (int64_t i = 0; i < dim / 2; i++) {
        float p = powf((float)theta, (float)(2 * i) / (float)dim);
        float extrap = 1.0f / p;
        float interp = 1.0f / (f * p);
        float ramp = ((float)i - flo) / fspan;
        ramp = ramp < 0.0f ? 0.0f : ramp > 1.0f ? 1.0f : ramp;
        float extrap_factor = 1.0f - ramp;
        float a = interp * (1.0f - extrap_factor);
        float b = extrap * extrap_factor;
        inv[i] = a + b;
    }
}

static double yarn_mscale(double scale, double mscale) {
    return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

/* The RoPE frequencies and attention factor of config.json's RoPE settings. */
static hft_status rope_build(nn_cfg *c, llama *g) {
    rope_cfg r;
    HFT_TRY(rope_resolve(c, &r));
    int64_t dim = g->head_dim;
    g->inv_freq = hft_tensor_new(HFT_F32, 1, (int64_t[]){dim / 2});
    if (!g->inv_freq) return hft_error_status();
    float *inv = hft_tensor_data(g->inv_freq);
    g->rope_scaling = 1.0;
    char key[96];
    /* llama3 and yarn: a top-level original_max_position_embeddings wins (transformers' Phi3 exception), then
     * the dict's, then max_position_embeddings */
    double orig = (double)g->max_positions;
    bool needs_orig = strcmp(r.type, "llama3") == 0 || strcmp(r.type, "yarn") == 0;
    if (needs_orig) {
        orig = rope_num(c, &r, "original_max_position_embeddings", orig, NULL);
        if (nn_cfg_has(c, "original_max_position_embeddings"))
            orig = (double)nn_cfg_pos_int(c, "original_max_position_embeddings", NULL, 1);
    }
    if (strcmp(r.type, "default") == 0) {
        default_inv_freq(inv, dim, r.theta);
    } else if (strcmp(r.type, "linear") == 0) {
        double factor = rope_required(c, &r, "factor");
        if (c->status != HFT_OK) return c->status;
        default_inv_freq(inv, dim, r.theta);
        for (int64_t i = 0; i < dim / 2; i++) inv[i] /= (float)factor;
    } else if (strcmp(r.type, "llama3") == 0) {
        double factor = rope_required(c, &r, "factor");
        double low_ff = rope_required(c, &r, "low_freq_factor");
        double high_ff = rope_required(c, &r, "high_freq_factor");
        if (c->status != HFT_OK) return c->status;
        if (!(high_ff > low_ff))
            return nn_cfg_fail(c, HFT_EFORMAT, r.where,
                               "llama3 needs high_freq_factor %g > low_freq_factor %g", high_ff, low_ff);
        default_inv_freq(inv, dim, r.theta);
        llama3_inv_freq(inv, dim / 2, factor, low_ff, high_ff, orig);
    } else if (strcmp(r.type, "yarn") == 0) {
        bool found;
        double factor = rope_required(c, &r, "factor"); /* transformers 5.23 requires it too */
        double attention_factor = rope_num(c, &r, "attention_factor", 0.0, &found);
        if (!found) {
            double mscale = rope_num(c, &r, "mscale", 0.0, NULL);
            double mscale_all_dim = rope_num(c, &r, "mscale_all_dim", 0.0, NULL);
            attention_factor =
                mscale != 0 && mscale_all_dim != 0
                    ? (double)(yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim))
                    : yarn_mscale(factor, 1.0);
        }
        double beta_fast = rope_num(c, &r, "beta_fast", 0.0, NULL),
               beta_slow = rope_num(c, &r, "beta_slow", 0.0, NULL);
        if (beta_fast == 0) beta_fast = 32; /* transformers: `or 32`, `or 1` */
        if (beta_slow == 0) beta_slow = 1;
        bool truncate = true;
        const cJSON *tr = cJSON_GetObjectItemCaseSensitive(r.obj, "truncate");
        if (tr && !cJSON_IsNull(tr)) {
            snprintf(key, sizeof key, "%s.truncate", r.where);
            if (!cJSON_IsBool(tr)) return nn_cfg_fail(c, HFT_EFORMAT, key, "expected true or false");
            truncate = cJSON_IsTrue(tr);
        }
        if (c->status != HFT_OK) return c->status;
        if (!(factor > 0) || !(orig > 0))
            return nn_cfg_fail(c, HFT_EFORMAT, r.where,
                               "yarn needs factor > 0 and original_max_position_embeddings > 0");
        yarn_inv_freq(inv, dim, r.theta, factor, orig, beta_fast, beta_slow, truncate);
        g->rope_scaling = attention_factor;
    } else {
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, r.type_key,
                           "RoPE type '%s' is not supported (supported: default, linear, llama3, yarn)",
                           r.type);
    }
    return c->status;
}

static int64_t arch_default(llama_arch a, int64_t llama_v, int64_t mistral_v, int64_t qwen2_v) {
    return a == ARCH_LLAMA ? llama_v : a == ARCH_MISTRAL ? mistral_v : qwen2_v;
}

/* LlamaConfig, MistralConfig and Qwen2Config with their own defaults. */
static hft_status parse_config(hft_model *m, llama *g, nn_cfg *c) {
    llama_arch a = g->arch;
    m->vocab_size = nn_cfg_pos_int(c, "vocab_size", NULL, arch_default(a, 32000, 32000, 151936));
    m->hidden_size = nn_cfg_pos_int(c, "hidden_size", NULL, 4096);
    g->intermediate = nn_cfg_pos_int(c, "intermediate_size", NULL, arch_default(a, 11008, 14336, 22016));
    m->n_layers = (int)nn_cfg_int(c, "num_hidden_layers", 32);
    g->n_heads = nn_cfg_pos_int(c, "num_attention_heads", NULL, 32);
    /* absent: the class default; null: as many as the query heads */
    int64_t kv_default = is_null(c, "num_key_value_heads") ? g->n_heads : arch_default(a, g->n_heads, 8, 32);
    g->n_kv_heads = nn_cfg_pos_int(c, "num_key_value_heads", NULL, kv_default);
    g->max_positions =
        nn_cfg_pos_int(c, "max_position_embeddings", NULL, arch_default(a, 2048, 131072, 32768));
    m->max_positions = g->max_positions;
    g->eps = nn_cfg_num(c, "rms_norm_eps", 1e-6);
    g->tied = nn_cfg_bool(c, "tie_word_embeddings", false);
    g->attn_dropout = nn_cfg_num(c, "attention_dropout", 0.0);
    g->pad_id = nn_cfg_int(c, "pad_token_id", -1);
    if (a == ARCH_LLAMA) {
        g->qkv_bias = g->o_bias = nn_cfg_bool(c, "attention_bias", false);
        g->mlp_bias = nn_cfg_bool(c, "mlp_bias", false);
    } else if (a == ARCH_QWEN2) {
        g->qkv_bias = true; /* Qwen2Attention: q, k and v biased, o_proj never */
    }
    const char *act = nn_cfg_str(c, "hidden_act", "silu");
    if (c->status != HFT_OK) return c->status;
    if (strcmp(act, "silu") == 0 || strcmp(act, "swish") == 0)
        g->act = ACT_SILU;
    else if (strcmp(act, "gelu") == 0)
        g->act = ACT_GELU_ERF;
    else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0)
        g->act = ACT_GELU_TANH;
    else if (strcmp(act, "relu") == 0)
        g->act = ACT_RELU;
    else
        return nn_cfg_fail(
            c, HFT_EUNSUPPORTED, "hidden_act",
            "'%s' is not supported (supported: silu, swish, gelu, gelu_new, gelu_pytorch_tanh, relu)", act);
    if (m->n_layers < 0) return nn_cfg_fail(c, HFT_EFORMAT, "num_hidden_layers", "expected a count >= 0");
    if (!(g->eps > 0))
        return nn_cfg_fail(c, HFT_EFORMAT, "rms_norm_eps", "expected a number > 0, got %g", g->eps);
    if (!(g->attn_dropout >= 0 && g->attn_dropout < 1))
        return nn_cfg_fail(c, HFT_EFORMAT, "attention_dropout", "expected a probability in [0, 1), got %g",
                           g->attn_dropout);
    if (nn_cfg_has(c, "head_dim")) {
        g->head_dim = nn_cfg_pos_int(c, "head_dim", NULL, 1);
    } else if (m->hidden_size % g->n_heads) {
        return nn_cfg_fail(
            c, HFT_EFORMAT, "num_attention_heads",
            "hidden_size %lld is not a multiple of num_attention_heads %lld, and no head_dim is given",
            (long long)m->hidden_size, (long long)g->n_heads);
    } else {
        g->head_dim = m->hidden_size / g->n_heads;
    }
    if (c->status != HFT_OK) return c->status;
    if (g->head_dim % 2)
        return nn_cfg_fail(c, HFT_EFORMAT, "head_dim",
                           "%lld is odd; RoPE rotates halves of the head and needs it even",
                           (long long)g->head_dim);
    if (g->n_heads % g->n_kv_heads)
        return nn_cfg_fail(c, HFT_EFORMAT, "num_key_value_heads",
                           "num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
                           (long long)g->n_heads, (long long)g->n_kv_heads);
    if (g->pad_id < 0 && nn_cfg_has(c, "pad_token_id") && g->pad_id >= -m->vocab_size)
        g->pad_id += m->vocab_size; /* nn.Embedding counts a negative padding_idx from the end */
    else if (g->pad_id >= m->vocab_size || (g->pad_id < 0 && nn_cfg_has(c, "pad_token_id")))
        return nn_cfg_fail(c, HFT_EFORMAT, "pad_token_id", "%lld is outside the vocabulary of %lld",
                           (long long)g->pad_id, (long long)m->vocab_size);
    if (a == ARCH_MISTRAL) { /* absent: MistralConfig's 4096; null: no window */
        g->sliding_window =
            is_null(c, "sliding_window") ? 0 : nn_cfg_pos_int(c, "sliding_window", NULL, 4096);
    } else if (a == ARCH_QWEN2 && nn_cfg_bool(c, "use_sliding_window", false) &&
               !is_null(c, "sliding_window")) {
        /* an absent sliding_window is Qwen2Config's 4096; only null turns the window off */
        return nn_cfg_fail(
            c, HFT_EUNSUPPORTED, "use_sliding_window",
            "true: sliding-window attention is not supported (set use_sliding_window to false)");
    }
    if (c->status != HFT_OK) return c->status;
    return rope_build(c, g);
}

static hft_status llama_build(hft_model *m) {
    llama *g = calloc(1, sizeof *g);
    if (!g) return hft_error(HFT_ENOMEM, "out of memory");
    m->impl = g;
    g->arch = strcmp(m->architecture, "MistralForCausalLM") == 0 ? ARCH_MISTRAL
              : strcmp(m->architecture, "Qwen2ForCausalLM") == 0 ? ARCH_QWEN2
                                                                 : ARCH_LLAMA;
    nn_cfg c = {.root = m->config, .path = m->config_path};
    HFT_TRY(parse_config(m, g, &c));
    m->task = HFT_TASK_CAUSAL_LM;
    m->base_prefix = "model.";
    g->layers = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof *g->layers);
    if (!g->layers) return hft_error(HFT_ENOMEM, "out of memory");
    double std = nn_cfg_num(&c, "initializer_range", 0.02);
    if (std == 0) std = 0.02; /* transformers: `initializer_range or 0.02` */
    nn_init normal = {NN_INIT_NORMAL, std, -1}, embed = {NN_INIT_NORMAL, std, g->pad_id};
    nn_init zeros = {NN_INIT_ZEROS, 0, -1}, ones = {NN_INIT_ONES, 0, -1};
    int64_t d = m->hidden_size, in = g->intermediate, qd = g->n_heads * g->head_dim,
            kvd = g->n_kv_heads * g->head_dim;
    const uint32_t nd = HFT_PARAM_NO_DECAY;
    /* declared in transformers' named_parameters() order */
    g->embed = nn_param(m, embed, 0, false, 2, (int64_t[]){m->vocab_size, d}, "model.embed_tokens.weight");
    for (int l = 0; l < m->n_layers; l++) {
        llama_layer *L = &g->layers[l];
        const char *p = "model.layers";
        const nn_init *qkv_b = g->qkv_bias ? &zeros : NULL, *o_b = g->o_bias ? &zeros : NULL,
                      *mlp_b = g->mlp_bias ? &zeros : NULL;
        nn_linear_decl(m, &L->q, normal, qkv_b, false, false, d, qd, "%s.%d.self_attn.q_proj", p, l);
        nn_linear_decl(m, &L->k, normal, qkv_b, false, false, d, kvd, "%s.%d.self_attn.k_proj", p, l);
        nn_linear_decl(m, &L->v, normal, qkv_b, false, false, d, kvd, "%s.%d.self_attn.v_proj", p, l);
        nn_linear_decl(m, &L->o, normal, o_b, false, false, qd, d, "%s.%d.self_attn.o_proj", p, l);
        nn_linear_decl(m, &L->gate, normal, mlp_b, false, false, d, in, "%s.%d.mlp.gate_proj", p, l);
        nn_linear_decl(m, &L->up, normal, mlp_b, false, false, d, in, "%s.%d.mlp.up_proj", p, l);
        nn_linear_decl(m, &L->down, normal, mlp_b, false, false, in, d, "%s.%d.mlp.down_proj", p, l);
        L->in_norm = nn_param(m, ones, nd, false, 1, (int64_t[]){d}, "%s.%d.input_layernorm.weight", p, l);
        L->post_norm =
            nn_param(m, ones, nd, false, 1, (int64_t[]){d}, "%s.%d.post_attention_layernorm.weight", p, l);
    }
    g->norm = nn_param(m, ones, nd, false, 1, (int64_t[]){d}, "model.norm.weight");
    /* an untied classifier a checkpoint lacks (a base LlamaModel) is initialised and reported, as
     * transformers */
    g->lm_head =
        g->tied ? g->embed : nn_param(m, normal, 0, true, 2, (int64_t[]){m->vocab_size, d}, "lm_head.weight");
    return m->status;
}

/* The rotary_emb.inv_freq buffers old checkpoints carry, and the tied classifier's copy. */
static bool llama_ignored(const hft_model *m, const char *name) {
    const llama *g = m->impl;
    const char *suffix = "rotary_emb.inv_freq";
    size_t n = strlen(name), s = strlen(suffix);
    return (n >= s && strcmp(name + n - s, suffix) == 0) || (g->tied && strcmp(name, "lm_head.weight") == 0);
}

/* ---------------------------------------------------------------- forward */

/* Attention limited to a window equals full causal attention while the sequence fits in it. */
static bool check_window(hft_ctx *ctx, const hft_model *m, int64_t T) {
    const llama *g = m->impl;
    if (g->sliding_window > 0 && T > g->sliding_window) {
        hft_ctx_fail(
            ctx, HFT_EUNSUPPORTED,
            "%s: 'sliding_window': sequence length %lld is longer than the sliding window %lld; attention "
            "limited to a window is not implemented (sequences up to the window are computed exactly)",
            m->config_path, (long long)T, (long long)g->sliding_window);
        return false;
    }
    return true;
}

static hft_tensor *llama_embed(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train) {
    (void)train;
    llama *g = m->impl;
    /* no length limit: RoPE has no table, and transformers runs past max_position_embeddings */
    if (!nn_check_ids(ctx, m, b, 0) || !check_window(ctx, m, nn_past(b) + b->input_ids->shape[1]))
        return NULL;
    return hft_embedding(ctx, g->embed, b->input_ids, g->pad_id);
}

static hft_tensor *activation(hft_ctx *ctx, llama_act act, hft_tensor *x) {
    switch (act) {
    case ACT_GELU_ERF:
        return hft_gelu(ctx, x, HFT_GELU_ERF);
    case ACT_GELU_TANH:
        return hft_gelu(ctx, x, HFT_GELU_TANH);
    case ACT_RELU:
        return hft_relu(ctx, x);
    case ACT_SILU:
        break;
    }
    return hft_silu(ctx, x);
}

static hft_tensor *llama_block(hft_ctx *ctx, hft_model *m, int layer, hft_tensor *h, const hft_batch *b,
                               bool train) {
    llama *g = m->impl;
    const llama_layer *L = &g->layers[layer];
    int64_t B = h->shape[0], T = h->shape[1], D = g->head_dim, H = g->n_heads, Hkv = g->n_kv_heads;
    if (!check_window(ctx, m, nn_past(b) + T)) return NULL;
    hft_tensor *a = hft_rms_norm(ctx, h, L->in_norm, g->eps);
    hft_tensor *q = hft_reshape(ctx, nn_linear_forward(ctx, &L->q, a, train), 4, (int64_t[]){B, T, H, D});
    hft_tensor *k = hft_reshape(ctx, nn_linear_forward(ctx, &L->k, a, train), 4, (int64_t[]){B, T, Hkv, D});
    hft_tensor *v = hft_reshape(ctx, nn_linear_forward(ctx, &L->v, a, train), 4, (int64_t[]){B, T, Hkv, D});
    /* positions 0 .. T-1 for every row, padded or not: transformers' forward when no position_ids are given
     */
    hft_tensor *pos =
        b->position_ids ? b->position_ids : nn_positions_from(ctx, nn_past(b), T); /* decoding: they go on */
    hft_tensor *inv = g->inv_freq;
    if (q && q->dtype != inv->dtype) inv = hft_cast(ctx, inv, q->dtype);
    q = hft_rope(ctx, q, pos, inv, g->rope_scaling);
    k = hft_rope(ctx, k, pos, inv, g->rope_scaling);
    if (!nn_cache_kv(ctx, b, layer, &k, &v)) return NULL;
    hft_attn_opts ao = {.causal = true,
                        .key_mask = b->attention_mask,
                        .dropout_p = train ? g->attn_dropout : 0.0,
                        .dropout_site = (uint16_t)(1 + layer)};
    hft_tensor *o = hft_reshape(ctx, hft_attention(ctx, q, k, v, &ao), 3, (int64_t[]){B, T, H * D});
    h = hft_add(ctx, h, nn_linear_forward(ctx, &L->o, o, train));
    hft_tensor *f = hft_rms_norm(ctx, h, L->post_norm, g->eps);
    hft_tensor *gate = activation(ctx, g->act, nn_linear_forward(ctx, &L->gate, f, train));
    f = nn_linear_forward(ctx, &L->down, hft_mul(ctx, gate, nn_linear_forward(ctx, &L->up, f, train)), train);
    return hft_add(ctx, h, f);
}

static hft_tensor *llama_head_loss(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b, bool train,
                                   int64_t *count) {
    (void)train;
    llama *g = m->impl;
    return hft_linear_cross_entropy(ctx, hft_rms_norm(ctx, h, g->norm, g->eps), g->lm_head, NULL,
                                    nn_shift_labels(ctx, b->labels), HFT_XENT_DEFAULTS, count);
}

static hft_tensor *llama_head_logits(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b) {
    (void)b;
    llama *g = m->impl;
    return hft_linear(ctx, hft_rms_norm(ctx, h, g->norm, g->eps), g->lm_head, NULL);
}

static void llama_kv_shape(const hft_model *m, int64_t *heads, int64_t *dim) {
    const llama *g = m->impl;
    *heads = g->n_kv_heads;
    *dim = g->head_dim;
}

/* RoPE's frequencies go with the parameters: hft_rope reads them in the context's device. */
static hft_status llama_to_device(hft_model *m, hft_device device) {
    llama *g = m->impl;
    return nn_tensor_move(g->inv_freq, device);
}

const nn_family nn_family_llama = {
    .name = "llama",
    .architectures =
        (const char *const[]){"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", NULL},
    .build = llama_build,
    .free_impl = llama_free,
    .ignored = llama_ignored,
    .embed = llama_embed,
    .block = llama_block,
    .head_loss = llama_head_loss,
    .head_logits = llama_head_logits,
    .to_device = llama_to_device,
    .kv_shape = llama_kv_shape,
};
