/* BERT: BertForSequenceClassification (single label and regression), BertForMaskedLM and the real
 * all-MiniLM-L6-v2 BertModel against transformers (logits or hidden states, pooler, loss, gradients), save →
 * load round trips, a BertModel checkpoint loaded with a new classification head, initialisation as
 * BertPreTrainedModel._init_weights, and config.json settings hft refuses, named by file and key. */
#include <stdlib.h>
#include <unistd.h>

#include "tests/model_parity.h"
#include "tests/test_util.h"

static char *temp_dir(void) {
    char tmpl[] = "/tmp/hft-bert-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static void remove_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Every parameter of a equals b's of the same name, bit for bit. */
static int same_params(hft_model *a, hft_model *b) {
    hft_paramset *pa = hft_model_params(a), *pb = hft_model_params(b);
    if (hft_paramset_count(pa) != hft_paramset_count(pb)) {
        fprintf(stderr, "%d parameters, reloaded %d\n", hft_paramset_count(pa), hft_paramset_count(pb));
        return 0;
    }
    for (int i = 0; i < hft_paramset_count(pa); i++) {
        hft_param *p = hft_paramset_get(pa, i), *q = hft_paramset_find(pb, p->name);
        if (!q || hft_tensor_nbytes(p->value) != hft_tensor_nbytes(q->value) ||
            memcmp(hft_tensor_data(p->value), hft_tensor_data(q->value), hft_tensor_nbytes(p->value)) != 0) {
            fprintf(stderr, "parameter %s differs\n", p->name);
            return 0;
        }
    }
    return 1;
}

/* A fixture case against transformers at rtol 1e-4, then the model hft saved loads back bit-identical, with
 * nothing unused or initialised. */
static void parity_and_round_trip(const char *case_name) {
    char *dir = temp_dir();
    int r = model_parity_case(case_name, 1e-4, dir);
    CHECK(r != 0, "%s parity", case_name);
    if (r == 1) {
        hft_model *a = NULL, *b = NULL;
        char *src = model_parity_model_dir(case_name);
        CHECK_OK(hft_model_load(src, NULL, &a), NULL);
        CHECK_OK(hft_model_load(dir, NULL, &b), NULL);
        CHECK(a && b && same_params(a, b), "%s: a saved model loads back bit-identical", case_name);
        CHECK(b && hft_model_unused_count(b) == 0 && hft_model_initialized_count(b) == 0,
              "%s: the saved file holds exactly the parameters", case_name);
        CHECK(a && b && strcmp(hft_model_architecture(a), hft_model_architecture(b)) == 0 &&
                  hft_model_num_labels(a) == hft_model_num_labels(b),
              "%s: the saved config.json names the same architecture and labels", case_name);
        hft_model_free(a);
        hft_model_free(b);
        free(src);
    }
    remove_dir(dir);
    free(dir);
}

TEST(seqcls_matches_transformers_and_round_trips) {
    parity_and_round_trip("bert_seqcls");
}
TEST(regression_matches_transformers_and_round_trips) {
    parity_and_round_trip("bert_regression");
}
TEST(masked_lm_matches_transformers_and_round_trips) {
    parity_and_round_trip("bert_mlm");
}
TEST(minilm_matches_transformers_and_round_trips) {
    parity_and_round_trip("minilm");
}

static bool listed(const hft_model *m, bool initialized, const char *name) {
    int n = initialized ? hft_model_initialized_count(m) : hft_model_unused_count(m);
    for (int i = 0; i < n; i++)
        if (strcmp(initialized ? hft_model_initialized(m, i) : hft_model_unused(m, i), name) == 0)
            return true;
    return false;
}

static double max_abs(const hft_tensor *t, double *mean_sq) {
    int64_t n = hft_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)n), mx = 0, ss = 0;
    hft_tensor_to_f64(t, v);
    for (int64_t i = 0; i < n; i++) mx = fmax(mx, fabs(v[i])), ss += v[i] * v[i];
    free(v);
    if (mean_sq) *mean_sq = ss / (double)n;
    return mx;
}

/* transformers: BertForSequenceClassification.from_pretrained(MiniLM, num_labels=3) reports classifier.weight
 * and classifier.bias as newly initialised; the pooler comes from the file; embeddings.position_ids is a
 * buffer it ignores, so nothing is unexpected. */
TEST(minilm_loads_as_a_classifier_with_a_new_head) {
    char *dir = model_parity_model_dir("minilm");
    if (!dir) {
        printf("skip: the MiniLM package is not installed\n");
        return;
    }
    hft_load_options opts = {.architecture = "BertForSequenceClassification", .num_labels = 3, .seed = 7};
    hft_model *m = NULL, *base = NULL;
    CHECK_OK(hft_model_load(dir, &opts, &m), NULL);
    CHECK_OK(hft_model_load(dir, NULL, &base), NULL);
    if (m && base) {
        CHECK(hft_model_task(m) == HFT_TASK_SEQ_CLS && hft_model_num_labels(m) == 3, "task and num_labels 3");
        CHECK(hft_model_initialized_count(m) == 2 && listed(m, true, "classifier.weight") &&
                  listed(m, true, "classifier.bias"),
              "%d initialised; expected classifier.weight and classifier.bias",
              hft_model_initialized_count(m));
        CHECK(hft_model_unused_count(m) == 0, "%d unused, first %s", hft_model_unused_count(m),
              hft_model_unused(m, 0));
        hft_paramset *ps = hft_model_params(m);
        hft_param *w = hft_paramset_find(ps, "classifier.weight"),
                  *bias = hft_paramset_find(ps, "classifier.bias");
        hft_param *pool = hft_paramset_find(ps, "bert.pooler.dense.weight");
        hft_param *pool0 = hft_paramset_find(hft_model_params(base), "pooler.dense.weight");
        CHECK(w && w->value->shape[0] == 3 && w->value->shape[1] == 384, "classifier.weight [3, 384]");
        double ms = 0;
        CHECK(w && max_abs(w->value, &ms) > 0 && fabs(sqrt(ms) - 0.02) < 0.004,
              "classifier.weight ~ N(0, 0.02): rms %g", sqrt(ms));
        CHECK(bias && max_abs(bias->value, NULL) == 0, "classifier.bias zeros");
        CHECK(pool && pool0 &&
                  memcmp(hft_tensor_data(pool->value), hft_tensor_data(pool0->value),
                         hft_tensor_nbytes(pool0->value)) == 0,
              "the pooler comes from the checkpoint");
        CHECK(!(hft_paramset_find(ps, "bert.embeddings.position_ids")),
              "no parameter for the position_ids buffer");
    }
    hft_model_free(m);
    hft_model_free(base);
    free(dir);
}

/* The MLM fixture (saved as BertForMaskedLM) loaded as BertModel: the pooler is new (reported), the cls.*
 * head is unused, as transformers reports it. */
TEST(masked_lm_checkpoint_loads_as_base_model) {
    char *dir = model_parity_model_dir("bert_mlm");
    if (!dir) {
        printf("skip: bert_mlm fixture not present\n");
        return;
    }
    hft_model *m = NULL;
    CHECK_OK(hft_model_load(dir, &(hft_load_options){.architecture = "BertModel"}, &m), NULL);
    if (m) {
        CHECK(hft_model_initialized_count(m) == 2 && listed(m, true, "pooler.dense.weight") &&
                  listed(m, true, "pooler.dense.bias"),
              "the pooler is initialised and reported (%d)", hft_model_initialized_count(m));
        CHECK(hft_model_unused_count(m) == 5 && listed(m, false, "cls.predictions.bias") &&
                  listed(m, false, "cls.predictions.transform.dense.weight"),
              "the MLM head is unused (%d)", hft_model_unused_count(m));
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_tensor *ids = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){1, 3}, (int64_t[]){1, 5, 2});
        hft_batch b = {.input_ids = ids, .labels = ids};
        hft_tensor *h = hft_model_hidden(ctx, m, &b, false);
        CHECK(h && h->shape[2] == hft_model_hidden_size(m), "hidden states");
        CHECK(hft_model_head_logits(ctx, m, h, &b) == h, "BertModel's logits are its hidden states");
        CHECK(hft_model_pooler(ctx, m, h) != NULL, "BertModel has a pooler");
        CHECK(hft_model_head_loss(ctx, m, h, &b, false, NULL) == NULL &&
                  hft_ctx_status(ctx) == HFT_EUNSUPPORTED,
              "BertModel has no loss");
        hft_tensor_free(ids);
        hft_ctx_free(ctx);
    }
    hft_model_free(m);
    free(dir);
}

static const char *tiny =
    "\"vocab_size\": 17, \"hidden_size\": 8, \"num_hidden_layers\": 1, "
    "\"num_attention_heads\": 2, \"intermediate_size\": 12, \"max_position_embeddings\": 8, "
    "\"pad_token_id\": 3";

static hft_status from_config(const char *arch, const char *extra, hft_model **m) {
    char text[1024];
    /* extra first: cJSON reads the first of duplicate keys, so extra overrides tiny */
    snprintf(text, sizeof text, "{\"architectures\": [\"%s\"], %s%s%s}", arch, extra ? extra : "",
             extra ? ", " : "", tiny);
    *m = NULL;
    return hft_model_from_config(text, "tiny/config.json", &(hft_load_options){.seed = 3}, m);
}

/* BertPreTrainedModel._init_weights: normal weights with the padding row zeroed, zero biases, LayerNorm
 * ones/zeros, cls.predictions.bias zeros; no weight decay for biases and LayerNorm weights; the MLM
 * decoder is the word embedding (no parameter of its own) and there is no pooler. */
TEST(initialisation_tags_and_tied_decoder) {
    hft_model *m = NULL;
    CHECK_OK(from_config("BertForMaskedLM", NULL, &m), NULL);
    if (!m) return;
    hft_paramset *ps = hft_model_params(m);
    hft_param *word = hft_paramset_find(ps, "bert.embeddings.word_embeddings.weight");
    CHECK(word && !(word->tags & HFT_PARAM_NO_DECAY), "word embeddings decay");
    if (word) {
        const float *w = hft_tensor_data(word->value);
        double row3 = 0, row4 = 0;
        for (int j = 0; j < 8; j++) row3 += fabs(w[3 * 8 + j]), row4 += fabs(w[4 * 8 + j]);
        CHECK(row3 == 0 && row4 > 0, "padding row 3 zeroed (%g), others drawn (%g)", row3, row4);
    }
    hft_param *lnw = hft_paramset_find(ps, "bert.encoder.layer.0.output.LayerNorm.weight");
    hft_param *bias = hft_paramset_find(ps, "cls.predictions.bias");
    hft_param *q = hft_paramset_find(ps, "bert.encoder.layer.0.attention.self.query.bias");
    CHECK(lnw && (lnw->tags & HFT_PARAM_NO_DECAY) && ((float *)hft_tensor_data(lnw->value))[5] == 1.0f,
          "LayerNorm weight: ones, no decay");
    CHECK(bias && (bias->tags & HFT_PARAM_NO_DECAY) && max_abs(bias->value, NULL) == 0 &&
              bias->value->shape[0] == 17,
          "cls.predictions.bias: zeros [vocab], no decay");
    CHECK(q && (q->tags & HFT_PARAM_NO_DECAY) && max_abs(q->value, NULL) == 0, "biases zero, no decay");
    CHECK(!hft_paramset_find(ps, "cls.predictions.decoder.weight") &&
              !hft_paramset_find(ps, "bert.pooler.dense.weight"),
          "no decoder weight of its own, no pooler");
    CHECK(hft_paramset_count(ps) == 5 + 16 + 5, "%d parameters", hft_paramset_count(ps));
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *h = hft_zeros(ctx, HFT_F32, 3, (int64_t[]){1, 2, 8});
    CHECK(hft_model_pooler(ctx, m, h) == NULL && strstr(hft_ctx_error(ctx), "no pooler"),
          "MLM has no pooler: %s", hft_ctx_error(ctx));
    hft_ctx_free(ctx);
    hft_model_free(m);

    CHECK_OK(from_config("BertForSequenceClassification",
                         "\"id2label\": {\"0\": \"a\", \"1\": \"b\", \"2\": \"c\", "
                         "\"3\": \"d\"}, \"hidden_act\": \"gelu_new\"",
                         &m),
             NULL);
    CHECK(m && hft_model_num_labels(m) == 4, "num_labels from id2label");
    hft_model_free(m);
    CHECK_OK(
        from_config("BertForSequenceClassification", "\"hidden_act\": \"relu\", \"pad_token_id\": null", &m),
        NULL);
    CHECK(m && hft_model_num_labels(m) == 2, "num_labels defaults to 2");
    hft_model_free(m);
}

/* Classification and regression losses follow problem_type and the labels' dtype, as transformers does. */
TEST(sequence_classification_losses) {
    hft_model *m = NULL;
    CHECK_OK(from_config("BertForSequenceClassification", "\"num_labels\": 3", &m), NULL);
    if (!m) return;
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *ids = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, 3}, (int64_t[]){1, 5, 2, 1, 6, 2});
    hft_tensor *lab = hft_tensor_from_data(HFT_I64, 1, (int64_t[]){2}, (int64_t[]){0, 2});
    hft_tensor *flab = hft_tensor_from_data(HFT_F32, 1, (int64_t[]){2}, (float[]){0, 1});
    int64_t count = 0;
    hft_tensor *loss = hft_model_loss(ctx, m, &(hft_batch){.input_ids = ids, .labels = lab}, true, &count);
    CHECK(loss && count == 2, "cross-entropy over 2 samples (%lld)", (long long)count);
    hft_ctx_reset(ctx);
    loss = hft_model_loss(ctx, m, &(hft_batch){.input_ids = ids, .labels = flab}, true, &count);
    CHECK(!loss && strstr(hft_ctx_error(ctx), "multi_label_classification"), "float labels: %s",
          hft_ctx_error(ctx));
    hft_ctx_free(ctx);
    hft_model_free(m);

    CHECK_OK(from_config("BertForSequenceClassification",
                         "\"num_labels\": 2, \"problem_type\": \"regression\"", &m),
             NULL);
    ctx = hft_ctx_new(NULL);
    hft_tensor *rlab = hft_tensor_from_data(HFT_F32, 2, (int64_t[]){2, 2}, (float[]){0.5f, 1, -1, 2});
    loss = m ? hft_model_loss(ctx, m, &(hft_batch){.input_ids = ids, .labels = rlab}, true, &count) : NULL;
    CHECK(loss && count == 4, "regression: MSE over 4 values (%lld): %s", (long long)count,
          hft_ctx_error(ctx));
    hft_ctx_free(ctx);
    hft_model_free(m);
    hft_tensor_free(ids), hft_tensor_free(lab), hft_tensor_free(flab), hft_tensor_free(rlab);
}

/* BertConfig's dropout defaults (0.1 for hidden states, attention probabilities and the classifier) act in
 * train mode only, and the whole step runs backward. */
TEST(dropout_acts_in_train_mode_only) {
    hft_model *m = NULL;
    CHECK_OK(from_config("BertForSequenceClassification", NULL, &m), NULL);
    if (!m) return;
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_ctx_set_rng(ctx, 42, 0, 0, 0);
    hft_tensor *ids =
        hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, 4}, (int64_t[]){1, 5, 6, 2, 1, 7, 2, 3});
    hft_tensor *mask =
        hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, 4}, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 0});
    hft_tensor *lab = hft_tensor_from_data(HFT_I64, 1, (int64_t[]){2}, (int64_t[]){1, 0});
    hft_batch b = {.input_ids = ids, .attention_mask = mask, .labels = lab};
    double e1[64], e2[64], t1[64];
    hft_tensor *h = hft_model_hidden(ctx, m, &b, false);
    if (h) hft_tensor_to_f64(h, e1);
    h = hft_model_hidden(ctx, m, &b, false);
    if (h) hft_tensor_to_f64(h, e2);
    h = hft_model_hidden(ctx, m, &b, true);
    if (h) hft_tensor_to_f64(h, t1);
    CHECK(h && memcmp(e1, e2, sizeof e1) == 0 && memcmp(e1, t1, sizeof e1) != 0,
          "eval is deterministic, train drops");
    int64_t count = 0;
    hft_tensor *loss = hft_model_loss(ctx, m, &b, true, &count);
    CHECK(loss && count == 2, "loss over 2 samples");
    if (loss) CHECK_OK(hft_backward(ctx, loss, NULL), ctx);
    hft_tensor_free(ids), hft_tensor_free(mask), hft_tensor_free(lab);
    hft_ctx_free(ctx);
    hft_model_free(m);
}

static void refused(const char *arch, const char *extra, const char *key, hft_status want) {
    hft_model *m = NULL;
    hft_status st = from_config(arch, extra, &m);
    const char *msg = hft_error_message();
    CHECK(st == want && !m, "%s: status %d, want %d", extra, (int)st, (int)want);
    CHECK(strstr(msg, "tiny/config.json") && strstr(msg, key), "%s: message names the file and '%s': %s",
          extra, key, msg);
    hft_model_free(m);
}

TEST(config_settings_that_change_the_math_are_refused) {
    refused("BertModel", "\"position_embedding_type\": \"relative_key\"", "'position_embedding_type'",
            HFT_EUNSUPPORTED);
    refused("BertForSequenceClassification", "\"problem_type\": \"multi_label_classification\"",
            "'problem_type'", HFT_EUNSUPPORTED);
    CHECK(strstr(hft_error_message(), "not implemented yet"), "multi-label: %s", hft_error_message());
    refused("BertModel", "\"hidden_act\": \"swish\"", "'hidden_act'", HFT_EUNSUPPORTED);
    refused("BertForMaskedLM", "\"is_decoder\": true", "'is_decoder'", HFT_EUNSUPPORTED);
    refused("BertModel", "\"add_cross_attention\": true", "'add_cross_attention'", HFT_EUNSUPPORTED);
    refused("BertForMaskedLM", "\"tie_word_embeddings\": false", "'tie_word_embeddings'", HFT_EUNSUPPORTED);
    refused("BertModel", "\"num_attention_heads\": 3", "'num_attention_heads'", HFT_EFORMAT);
    refused("BertModel", "\"pad_token_id\": 17", "'pad_token_id'", HFT_EFORMAT);
    refused("BertForSequenceClassification", "\"problem_type\": \"ranking\"", "'problem_type'", HFT_EFORMAT);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"seqcls_matches_transformers_and_round_trips", seqcls_matches_transformers_and_round_trips},
        {"regression_matches_transformers_and_round_trips", regression_matches_transformers_and_round_trips},
        {"masked_lm_matches_transformers_and_round_trips", masked_lm_matches_transformers_and_round_trips},
        {"minilm_matches_transformers_and_round_trips", minilm_matches_transformers_and_round_trips},
        {"minilm_loads_as_a_classifier_with_a_new_head", minilm_loads_as_a_classifier_with_a_new_head},
        {"masked_lm_checkpoint_loads_as_base_model", masked_lm_checkpoint_loads_as_base_model},
        {"initialisation_tags_and_tied_decoder", initialisation_tags_and_tied_decoder},
        {"sequence_classification_losses", sequence_classification_losses},
        {"dropout_acts_in_train_mode_only", dropout_acts_in_train_mode_only},
        {"config_settings_that_change_the_math_are_refused",
         config_settings_that_change_the_math_are_refused},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
