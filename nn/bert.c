/* BERT (BertModel, BertForSequenceClassification, BertForMaskedLM) as a formula over autograd ops:
 * post-LayerNorm encoder layers with bidirectional attention under the padding mask, the tanh pooler on
 * [CLS], and the masked-LM decoder tied to the word embeddings and fused with its loss. Not here: the
 * decoder and cross-attention variants, relative position embeddings, multi-label classification. */
#include "nn/nn_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct bert_layer {
    nn_linear q, k, v, attn_out, inter, out;
    hft_tensor *aln_w, *aln_b, *oln_w, *oln_b;
} bert_layer;

typedef enum bert_act { BERT_GELU_ERF, BERT_GELU_TANH, BERT_RELU } bert_act;

/* problem_type of BertForSequenceClassification; AUTO decides per batch, as transformers does. */
typedef enum bert_problem {
    BERT_PROBLEM_AUTO,
    BERT_PROBLEM_REGRESSION,
    BERT_PROBLEM_SINGLE_LABEL
} bert_problem;

typedef struct bert {
    int64_t max_positions, type_vocab, n_head, intermediate, pad_id;
    double eps, hidden_pdrop, attn_pdrop, classifier_pdrop;
    bert_act act;
    bert_problem problem;
    hft_tensor *word, *position, *token_type, *emb_ln_w, *emb_ln_b;
    bert_layer *layers;
    bool has_pooler;                              /* not for MLM */
    nn_linear pool, cls, transform;               /* pooler; classifier (SEQ_CLS); the MLM head's transform */
    hft_tensor *tr_ln_w, *tr_ln_b, *decoder_bias; /* MLM head; the decoder weight is `word` */
} bert;

static void bert_free(void *impl) {
    bert *t = impl;
    if (t) free(t->layers);
    free(t);
}

/* num_labels, else the size of id2label, else 2 (PreTrainedConfig's default). */
static int64_t parse_num_labels(nn_cfg *c) {
    if (nn_cfg_has(c, "num_labels")) return nn_cfg_pos_int(c, "num_labels", NULL, 2);
    const cJSON *id2label = nn_cfg_obj(c, "id2label");
    int n = id2label ? cJSON_GetArraySize(id2label) : 0;
    return n > 0 ? n : 2;
}

/* BertConfig (transformers 5.23) with its defaults; settings that change the math are implemented or
 * refused. */
static hft_status parse_config(hft_model *m, bert *t, nn_cfg *c) {
    m->vocab_size = nn_cfg_pos_int(c, "vocab_size", NULL, 30522);
    m->hidden_size = nn_cfg_pos_int(c, "hidden_size", NULL, 768);
    m->n_layers = (int)nn_cfg_int(c, "num_hidden_layers", 12);
    t->n_head = nn_cfg_pos_int(c, "num_attention_heads", NULL, 12);
    t->intermediate = nn_cfg_pos_int(c, "intermediate_size", NULL, 3072);
    t->max_positions = nn_cfg_pos_int(c, "max_position_embeddings", NULL, 512);
    m->max_positions = t->max_positions;
    t->type_vocab = nn_cfg_pos_int(c, "type_vocab_size", NULL, 2);
    t->eps = nn_cfg_num(c, "layer_norm_eps", 1e-12);
    t->hidden_pdrop = nn_cfg_num(c, "hidden_dropout_prob", 0.1);
    t->attn_pdrop = nn_cfg_num(c, "attention_probs_dropout_prob", 0.1);
    t->classifier_pdrop = nn_cfg_num(c, "classifier_dropout", t->hidden_pdrop);
    m->num_labels = parse_num_labels(c);
    const char *act = nn_cfg_str(c, "hidden_act", "gelu");
    const char *pos_type = nn_cfg_str(c, "position_embedding_type", "absolute");
    const char *problem = nn_cfg_str(c, "problem_type", NULL);
    bool is_decoder = nn_cfg_bool(c, "is_decoder", false);
    bool cross = nn_cfg_bool(c, "add_cross_attention", false);
    bool tied = nn_cfg_bool(c, "tie_word_embeddings", true);
    /* pad_token_id null means no padding_idx; absent means BertConfig's default 0 */
    const cJSON *pad = cJSON_GetObjectItemCaseSensitive(c->root, "pad_token_id");
    t->pad_id = pad && cJSON_IsNull(pad) ? -1 : nn_cfg_int(c, "pad_token_id", 0);
    if (c->status != HFT_OK) return c->status;

    if (strcmp(act, "gelu") == 0)
        t->act = BERT_GELU_ERF;
    else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0)
        t->act = BERT_GELU_TANH;
    else if (strcmp(act, "relu") == 0)
        t->act = BERT_RELU;
    else
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, "hidden_act",
                           "'%s' is not supported (supported: gelu, gelu_new, gelu_pytorch_tanh, relu)", act);
    if (strcmp(pos_type, "absolute") != 0)
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, "position_embedding_type",
                           "'%s' is not supported (only \"absolute\"; relative_key and relative_key_query "
                           "are not implemented)",
                           pos_type);
    if (is_decoder)
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, "is_decoder",
                           "BERT as a causal decoder is not supported (only the bidirectional encoder)");
    if (cross)
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, "add_cross_attention", "cross-attention is not supported");
    if (m->n_layers < 0) return nn_cfg_fail(c, HFT_EFORMAT, "num_hidden_layers", "expected a count >= 0");
    if (m->hidden_size % t->n_head)
        return nn_cfg_fail(c, HFT_EFORMAT, "num_attention_heads",
                           "hidden_size %lld is not a multiple of num_attention_heads %lld",
                           (long long)m->hidden_size, (long long)t->n_head);
    if (t->pad_id < -1 || t->pad_id >= m->vocab_size)
        return nn_cfg_fail(c, HFT_EFORMAT, "pad_token_id", "%lld is outside [0, vocab_size %lld)",
                           (long long)t->pad_id, (long long)m->vocab_size);
    const char *rates[3] = {"hidden_dropout_prob", "attention_probs_dropout_prob", "classifier_dropout"};
    double values[3] = {t->hidden_pdrop, t->attn_pdrop, t->classifier_pdrop};
    for (int i = 0; i < 3; i++)
        if (!(values[i] >= 0 && values[i] < 1))
            return nn_cfg_fail(c, HFT_EFORMAT, rates[i], "expected a probability in [0, 1), got %g",
                               values[i]);
    if (m->task == HFT_TASK_MASKED_LM && !tied)
        return nn_cfg_fail(c, HFT_EUNSUPPORTED, "tie_word_embeddings",
                           "BertForMaskedLM with a decoder untied from the word embeddings is not supported");
    t->problem = BERT_PROBLEM_AUTO;
    if (m->task == HFT_TASK_SEQ_CLS && problem) {
        if (strcmp(problem, "regression") == 0)
            t->problem = BERT_PROBLEM_REGRESSION;
        else if (strcmp(problem, "single_label_classification") == 0)
            t->problem = BERT_PROBLEM_SINGLE_LABEL;
        else if (strcmp(problem, "multi_label_classification") == 0)
            return nn_cfg_fail(c, HFT_EUNSUPPORTED, "problem_type",
                               "multi_label_classification (BCE with logits) is not implemented yet");
        else
            return nn_cfg_fail(c, HFT_EFORMAT, "problem_type",
                               "'%s' is not one of regression, single_label_classification, "
                               "multi_label_classification",
                               problem);
    }
    return c->status;
}

static hft_status bert_build(hft_model *m) {
    bert *t = calloc(1, sizeof *t);
    if (!t) return hft_error(HFT_ENOMEM, "out of memory");
    m->impl = t;
    if (strcmp(m->architecture, "BertModel") == 0)
        m->task = HFT_TASK_BASE;
    else if (strcmp(m->architecture, "BertForSequenceClassification") == 0)
        m->task = HFT_TASK_SEQ_CLS;
    else
        m->task = HFT_TASK_MASKED_LM;
    nn_cfg c = {.root = m->config, .path = m->config_path};
    HFT_TRY(parse_config(m, t, &c));
    m->base_prefix = "bert.";
    t->layers = calloc((size_t)(m->n_layers ? m->n_layers : 1), sizeof *t->layers);
    if (!t->layers) return hft_error(HFT_ENOMEM, "out of memory");

    /* BertPreTrainedModel._init_weights: N(0, initializer_range) for Linear and Embedding weights (the
     * padding_idx row zeroed), zeros for biases, ones/zeros for LayerNorm, zeros for the MLM bias. */
    double std = nn_cfg_num(&c, "initializer_range", 0.02);
    HFT_TRY(c.status);
    nn_init normal = {NN_INIT_NORMAL, std, -1}, word = {NN_INIT_NORMAL, std, t->pad_id};
    nn_init zeros = {NN_INIT_ZEROS, 0, -1}, ones = {NN_INIT_ONES, 0, -1};
    const uint32_t nd = HFT_PARAM_NO_DECAY;
    const char *p = m->task == HFT_TASK_BASE ? "" : "bert.";
    int64_t d = m->hidden_size, in = t->intermediate;
    t->word = nn_param(m, word, 0, false, 2, (int64_t[]){m->vocab_size, d},
                       "%sembeddings.word_embeddings.weight", p);
    t->position = nn_param(m, normal, 0, false, 2, (int64_t[]){t->max_positions, d},
                           "%sembeddings.position_embeddings.weight", p);
    t->token_type = nn_param(m, normal, 0, false, 2, (int64_t[]){t->type_vocab, d},
                             "%sembeddings.token_type_embeddings.weight", p);
    t->emb_ln_w = nn_param(m, ones, nd, false, 1, (int64_t[]){d}, "%sembeddings.LayerNorm.weight", p);
    t->emb_ln_b = nn_param(m, zeros, nd, false, 1, (int64_t[]){d}, "%sembeddings.LayerNorm.bias", p);
    for (int l = 0; l < m->n_layers; l++) {
        bert_layer *L = &t->layers[l];
        const int64_t vd[1] = {d};
        const char *e = "encoder.layer";
#define LAYER_PARAM(init, tags, ndim, shape, suffix)                                                         \
    nn_param(m, init, tags, false, ndim, shape, "%s%s.%d." suffix, p, e, l)
        nn_linear_decl(m, &L->q, normal, &zeros, false, false, d, d, "%s%s.%d.attention.self.query", p, e, l);
        nn_linear_decl(m, &L->k, normal, &zeros, false, false, d, d, "%s%s.%d.attention.self.key", p, e, l);
        nn_linear_decl(m, &L->v, normal, &zeros, false, false, d, d, "%s%s.%d.attention.self.value", p, e, l);
        nn_linear_decl(m, &L->attn_out, normal, &zeros, false, false, d, d, "%s%s.%d.attention.output.dense",
                       p, e, l);
        L->aln_w = LAYER_PARAM(ones, nd, 1, vd, "attention.output.LayerNorm.weight");
        L->aln_b = LAYER_PARAM(zeros, nd, 1, vd, "attention.output.LayerNorm.bias");
        nn_linear_decl(m, &L->inter, normal, &zeros, false, false, d, in, "%s%s.%d.intermediate.dense", p, e,
                       l);
        nn_linear_decl(m, &L->out, normal, &zeros, false, false, in, d, "%s%s.%d.output.dense", p, e, l);
        L->oln_w = LAYER_PARAM(ones, nd, 1, vd, "output.LayerNorm.weight");
        L->oln_b = LAYER_PARAM(zeros, nd, 1, vd, "output.LayerNorm.bias");
#undef LAYER_PARAM
    }
    /* The pooler and the heads may be missing from a checkpoint (a BertModel file loaded for a task, an MLM
     * file as BertModel): transformers then initialises them as above and reports them. */
    t->has_pooler = m->task != HFT_TASK_MASKED_LM;
    if (t->has_pooler) nn_linear_decl(m, &t->pool, normal, &zeros, true, false, d, d, "%spooler.dense", p);
    if (m->task == HFT_TASK_SEQ_CLS) {
        nn_linear_decl(m, &t->cls, normal, &zeros, true, false, d, m->num_labels, "classifier");
        t->cls.output = true;
    }
    if (m->task == HFT_TASK_MASKED_LM) {
        const char *h = "cls.predictions";
        t->decoder_bias = nn_param(m, zeros, nd, true, 1, (int64_t[]){m->vocab_size}, "%s.bias", h);
        nn_linear_decl(m, &t->transform, normal, &zeros, true, false, d, d, "%s.transform.dense", h);
        t->tr_ln_w = nn_param(m, ones, nd, true, 1, (int64_t[]){d}, "%s.transform.LayerNorm.weight", h);
        t->tr_ln_b = nn_param(m, zeros, nd, true, 1, (int64_t[]){d}, "%s.transform.LayerNorm.bias", h);
    }
    return m->status;
}

/* The position_ids buffer (transformers ignores "(^|\.)position_ids$" on load) and the MLM decoder,
 * tied to the word embeddings and to cls.predictions.bias (older files save both copies). */
static bool bert_ignored(const hft_model *m, const char *name) {
    (void)m;
    static const char *const names[] = {"embeddings.position_ids", "bert.embeddings.position_ids",
                                        "cls.predictions.decoder.weight", "cls.predictions.decoder.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0) return true;
    return false;
}

static hft_tensor *activation(hft_ctx *ctx, const bert *t, hft_tensor *x) {
    switch (t->act) {
    case BERT_GELU_ERF:
        return hft_gelu(ctx, x, HFT_GELU_ERF);
    case BERT_GELU_TANH:
        return hft_gelu(ctx, x, HFT_GELU_TANH);
    case BERT_RELU:
        return hft_relu(ctx, x);
    }
    return NULL;
}

/* Dropout call sites: 0 for the embeddings, three per layer, then the classifier's. */
static uint16_t site(int layer, int k) {
    return (uint16_t)(1 + 3 * layer + k);
}

static hft_tensor *bert_embed(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train) {
    bert *t = m->impl;
    if (!nn_check_ids(ctx, m, b, t->max_positions)) return NULL;
    int64_t B = b->input_ids->shape[0], T = b->input_ids->shape[1];
    hft_tensor *types = b->token_type_ids ? b->token_type_ids : hft_zeros(ctx, HFT_I64, 2, (int64_t[]){B, T});
    hft_tensor *pos = nn_positions(ctx, T); /* arange(T) for every row, whatever the mask */
    /* summed in transformers' order: (word + token_type) + position */
    hft_tensor *h = hft_add(ctx, hft_embedding(ctx, t->word, b->input_ids, t->pad_id),
                            hft_embedding(ctx, t->token_type, types, -1));
    h = hft_add(ctx, h, hft_embedding(ctx, t->position, pos, -1));
    h = hft_layer_norm(ctx, h, t->emb_ln_w, t->emb_ln_b, t->eps);
    return train ? hft_dropout(ctx, h, t->hidden_pdrop, 0) : h;
}

static hft_tensor *bert_block(hft_ctx *ctx, hft_model *m, int layer, hft_tensor *h, const hft_batch *b,
                              bool train) {
    bert *t = m->impl;
    const bert_layer *L = &t->layers[layer];
    int64_t B = h->shape[0], T = h->shape[1], d = m->hidden_size, H = t->n_head;
    const int64_t heads[4] = {B, T, H, d / H};
    hft_tensor *q = hft_reshape(ctx, nn_linear_forward(ctx, &L->q, h, train), 4, heads);
    hft_tensor *k = hft_reshape(ctx, nn_linear_forward(ctx, &L->k, h, train), 4, heads);
    hft_tensor *v = hft_reshape(ctx, nn_linear_forward(ctx, &L->v, h, train), 4, heads);
    hft_attn_opts ao = {.causal = false,
                        .key_mask = b->attention_mask,
                        .dropout_p = train ? t->attn_pdrop : 0.0,
                        .dropout_site = site(layer, 0)};
    hft_tensor *o = hft_reshape(ctx, hft_attention(ctx, q, k, v, &ao), 3, (int64_t[]){B, T, d});
    o = nn_linear_forward(ctx, &L->attn_out, o, train);
    if (train) o = hft_dropout(ctx, o, t->hidden_pdrop, site(layer, 1));
    hft_tensor *a = hft_layer_norm(ctx, hft_add(ctx, o, h), L->aln_w, L->aln_b, t->eps);
    hft_tensor *f = activation(ctx, t, nn_linear_forward(ctx, &L->inter, a, train));
    f = nn_linear_forward(ctx, &L->out, f, train);
    if (train) f = hft_dropout(ctx, f, t->hidden_pdrop, site(layer, 2));
    return hft_layer_norm(ctx, hft_add(ctx, f, a), L->oln_w, L->oln_b, t->eps);
}

/* BertPooler: tanh(dense(h[:, 0])). */
static hft_tensor *pooler(hft_ctx *ctx, hft_model *m, hft_tensor *h, bool train) {
    bert *t = m->impl;
    if (!t->has_pooler)
        return hft_ctx_fail(ctx, HFT_EUNSUPPORTED,
                            "%s has no pooler (transformers builds it with "
                            "add_pooling_layer=False)",
                            m->architecture);
    hft_tensor *first = hft_squeeze(ctx, hft_narrow(ctx, h, 1, 0, 1), 1);
    return hft_tanh(ctx, nn_linear_forward(ctx, &t->pool, first, train));
}

static hft_tensor *bert_pooler(hft_ctx *ctx, hft_model *m, hft_tensor *h) {
    return pooler(ctx, m, h, false);
}

static hft_tensor *classifier_logits(hft_ctx *ctx, hft_model *m, hft_tensor *h, bool train) {
    bert *t = m->impl;
    hft_tensor *pooled = pooler(ctx, m, h, train);
    if (train) pooled = hft_dropout(ctx, pooled, t->classifier_pdrop, site(m->n_layers, 0));
    return nn_linear_forward(ctx, &t->cls, pooled, train);
}

/* BertPredictionHeadTransform: dense → activation → LayerNorm; the decoder follows. */
static hft_tensor *mlm_transform(hft_ctx *ctx, const bert *t, hft_tensor *h, bool train) {
    hft_tensor *x = activation(ctx, t, nn_linear_forward(ctx, &t->transform, h, train));
    return hft_layer_norm(ctx, x, t->tr_ln_w, t->tr_ln_b, t->eps);
}

/* BertForSequenceClassification's loss as a sum: problem_type, or when unset num_labels 1 → regression
 * (MSE on the squeezed logits), integer labels → single-label cross-entropy, float labels → multi-label. */
static hft_tensor *seqcls_loss(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b, bool train,
                               int64_t *count) {
    bert *t = m->impl;
    hft_tensor *labels = b->labels;
    int64_t B = h->shape[0], L = m->num_labels, n = hft_tensor_numel(labels);
    bool integer = !hft_dtype_is_float(labels->dtype);
    bert_problem problem = t->problem;
    if (problem == BERT_PROBLEM_AUTO) {
        if (L == 1)
            problem = BERT_PROBLEM_REGRESSION;
        else if (integer)
            problem = BERT_PROBLEM_SINGLE_LABEL;
        else
            return hft_ctx_fail(ctx, HFT_EUNSUPPORTED,
                                "%s: float labels with num_labels %lld mean "
                                "multi_label_classification, which is not implemented yet",
                                m->architecture, (long long)L);
    }
    hft_tensor *logits = classifier_logits(ctx, m, h, train);
    if (problem == BERT_PROBLEM_SINGLE_LABEL) {
        if (!integer || n != B)
            return hft_ctx_fail(ctx, HFT_EINVAL,
                                "%s: single-label classification needs %lld integer labels "
                                "(one per sample), got %lld %s values",
                                m->architecture, (long long)B, (long long)n, integer ? "integer" : "float");
        hft_tensor *target = hft_reshape(ctx, hft_cast(ctx, labels, HFT_I64), 1, (int64_t[]){B});
        return hft_cross_entropy(ctx, logits, target, HFT_XENT_DEFAULTS, count);
    }
    if (n != B * L)
        return hft_ctx_fail(ctx, HFT_EINVAL,
                            "%s: regression needs %lld labels (batch %lld x num_labels %lld), "
                            "got %lld",
                            m->architecture, (long long)(B * L), (long long)B, (long long)L, (long long)n);
    /* transformers squeezes both for num_labels 1; flattening both is the same sum */
    hft_tensor *target = hft_reshape(ctx, hft_cast(ctx, labels, logits->dtype), 1, (int64_t[]){n});
    hft_tensor *loss = hft_mse(ctx, hft_reshape(ctx, logits, 1, (int64_t[]){n}), target, HFT_REDUCE_SUM);
    if (count) *count = n;
    return loss;
}

static hft_tensor *mlm_targets(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b) {
    hft_tensor *labels = b->labels;
    if (labels->ndim != 2 || labels->shape[0] != h->shape[0] || labels->shape[1] != h->shape[1] ||
        hft_dtype_is_float(labels->dtype))
        return hft_ctx_fail(ctx, HFT_EINVAL,
                            "%s: masked-LM labels must be [batch, seq] integers like input_ids "
                            "(-100 where no loss)",
                            m->architecture);
    return hft_cast(ctx, labels, HFT_I64);
}

static hft_tensor *bert_head_loss(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b, bool train,
                                  int64_t *count) {
    bert *t = m->impl;
    if (m->task == HFT_TASK_SEQ_CLS) return seqcls_loss(ctx, m, h, b, train, count);
    /* labels are not shifted: each position predicts its own token */
    hft_tensor *targets = mlm_targets(ctx, m, h, b);
    if (!targets) return NULL;
    return hft_linear_cross_entropy(ctx, mlm_transform(ctx, t, h, train), t->word, t->decoder_bias, targets,
                                    HFT_XENT_DEFAULTS, count);
}

static hft_tensor *bert_head_logits(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b) {
    (void)b;
    bert *t = m->impl;
    switch (m->task) {
    case HFT_TASK_SEQ_CLS:
        return classifier_logits(ctx, m, h, false);
    case HFT_TASK_MASKED_LM:
        return hft_linear(ctx, mlm_transform(ctx, t, h, false), t->word, t->decoder_bias);
    default:
        return h; /* BertModel: the last hidden state */
    }
}

const nn_family nn_family_bert = {
    .name = "bert",
    .architectures =
        (const char *const[]){"BertModel", "BertForSequenceClassification", "BertForMaskedLM", NULL},
    .build = bert_build,
    .free_impl = bert_free,
    .ignored = bert_ignored,
    .embed = bert_embed,
    .block = bert_block,
    .head_loss = bert_head_loss,
    .head_logits = bert_head_logits,
    .pooler = bert_pooler,
};
