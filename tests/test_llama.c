/* The Llama family (Llama, Mistral, Qwen2): parity with transformers on the fixture cases (logits, loss,
 * every gradient) and bit-exact save → load round trips; RoPE read from the 4.x and 5.x config layouts alike;
 * parameters, tags and initialisation as transformers declares them; and config.json settings hft cannot
 * compute refused with the file and the key named. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/model_parity.h"
#include "tests/test_util.h"

/* A small Llama: 4 query heads of 4, 2 kv heads, one layer. */
static const char small_llama[] =
    "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"vocab_size\": 29, "
    "\"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"max_position_embeddings\": 64}";
static const char small_mistral[] =
    "{\"architectures\": [\"MistralForCausalLM\"], \"model_type\": \"mistral\", \"vocab_size\": 29, "
    "\"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 2, \"sliding_window\": 6, \"attention_bias\": true}";
static const char small_qwen2[] =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", \"vocab_size\": 29, "
    "\"hidden_size\": 16, \"intermediate_size\": 24, \"num_hidden_layers\": 1, \"num_attention_heads\": 4, "
    "\"num_key_value_heads\": 1, \"tie_word_embeddings\": true}";

static char *temp_dir(void) {
    char tmpl[] = "/tmp/hft-llama-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void remove_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Every parameter of a equals b's of the same name, bit for bit. */
static int same_params(hft_model *a, hft_model *b) {
    hft_paramset *pa = hft_model_params(a), *pb = hft_model_params(b);
    if (hft_paramset_count(pa) != hft_paramset_count(pb)) return 0;
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

/* Parity with transformers at rtol 1e-4, then the saved model loads back bit-identical. */
static void parity_and_round_trip(const char *case_name) {
    char *dir = temp_dir();
    int r = model_parity_case(case_name, 1e-4, dir);
    if (r == 1) {
        hft_model *a = NULL, *b = NULL;
        char *src = model_parity_model_dir(case_name);
        CHECK_OK(hft_model_load(src, NULL, &a), NULL);
        CHECK_OK(hft_model_load(dir, NULL, &b), NULL);
        CHECK(a && b && same_params(a, b), "%s: the saved model loads back bit-identical", case_name);
        CHECK(b && hft_model_unused_count(b) == 0 && hft_model_initialized_count(b) == 0,
              "%s: the saved checkpoint holds exactly the parameters", case_name);
        hft_model_free(a);
        hft_model_free(b);
        free(src);
    }
    CHECK(r != 0, "%s parity", case_name);
    remove_dir(dir);
    free(dir);
}

TEST(llama_gqa4_matches_transformers) {
    parity_and_round_trip("llama_gqa4");
}
TEST(llama_gqa2_tied_llama3_rope_matches_transformers) {
    parity_and_round_trip("llama_gqa2_tied");
}
TEST(llama_linear_rope_4x_config_matches_transformers) {
    parity_and_round_trip("llama_linear_rope");
}
TEST(qwen2_matches_transformers) {
    parity_and_round_trip("qwen2");
}
TEST(mistral_matches_transformers) {
    parity_and_round_trip("mistral");
}

/* ---------------------------------------------------------------- helpers for built models */

/* config text with `patch`'s top-level members replacing (or adding) its own; "__delete__" removes one. */
static char *patched(const char *base, const char *patch) {
    cJSON *c = cJSON_Parse(base), *p = cJSON_Parse(patch);
    for (cJSON *e = p ? p->child : NULL; e; e = e->next) {
        cJSON_DeleteItemFromObjectCaseSensitive(c, e->string);
        if (!(cJSON_IsString(e) && strcmp(e->valuestring, "__delete__") == 0))
            cJSON_AddItemToObject(c, e->string, cJSON_Duplicate(e, true));
    }
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    cJSON_Delete(p);
    return text;
}

static hft_model *from_config(const char *base, const char *patch, uint64_t seed) {
    char *text = patched(base, patch ? patch : "{}");
    hft_model *m = NULL;
    hft_status st = hft_model_from_config(text, "config", &(hft_load_options){.seed = seed}, &m);
    CHECK(st == HFT_OK, "from_config: %s\n%s", hft_error_message(), text);
    free(text);
    return m;
}

/* The logits of a fixed batch [2, T] (row 1 right-padded), as f64; NULL on error (reported). */
static double *logits_of(hft_model *m, int64_t T) {
    int64_t ids[2 * 16], mask[2 * 16];
    for (int64_t i = 0; i < 2 * T; i++) {
        ids[i] = (7 * i + 3) % hft_model_vocab_size(m);
        mask[i] = i < T + T / 2 ? 1 : 0;
    }
    hft_tensor *tid = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, T}, ids);
    hft_tensor *tmask = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, T}, mask);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_batch b = {.input_ids = tid, .attention_mask = tmask};
    hft_tensor *y = hft_model_logits(ctx, m, &b);
    double *out = NULL;
    CHECK(y != NULL, "logits: %s", hft_ctx_error(ctx));
    if (y) {
        out = malloc(sizeof(double) * (size_t)hft_tensor_numel(y));
        hft_tensor_to_f64(y, out);
    }
    hft_ctx_free(ctx);
    hft_tensor_free(tid);
    hft_tensor_free(tmask);
    return out;
}

/* Two configs give bit-identical logits (same seed, so the same weights) — or, with `expect_same` false, not.
 */
static void compare_configs(const char *base, const char *pa, const char *pb, bool expect_same,
                            const char *what) {
    hft_model *a = from_config(base, pa, 5), *b = from_config(base, pb, 5);
    double *la = a ? logits_of(a, 9) : NULL, *lb = b ? logits_of(b, 9) : NULL;
    if (la && lb) {
        size_t n = (size_t)(2 * 9 * hft_model_vocab_size(a));
        bool same = memcmp(la, lb, n * sizeof *la) == 0;
        CHECK(same == expect_same, "%s: logits %s", what, same ? "identical" : "differ");
        bool finite = true;
        for (size_t i = 0; i < n; i++) finite &= isfinite(la[i]) && isfinite(lb[i]);
        CHECK(finite, "%s: finite logits", what);
    }
    free(la), free(lb);
    hft_model_free(a), hft_model_free(b);
}

TEST(rope_reads_the_4x_and_5x_config_layouts_alike) {
    compare_configs(small_llama,
                    "{\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}}", "{}",
                    true, "a missing theta means 10000");
    compare_configs(small_llama, "{\"rope_theta\": 10000.0}",
                    "{\"rope_parameters\": {\"rope_type\": \"default\"}}", true,
                    "4.x top-level theta vs 5.x default type");
    compare_configs(small_llama, "{\"rope_theta\": 500.0}", "{}", false, "theta matters");
    compare_configs(
        small_llama,
        "{\"rope_parameters\": {\"rope_type\": \"llama3\", \"rope_theta\": 500000.0, \"factor\": 8.0, "
        "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}}",
        "{\"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
        "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 16}}",
        true, "llama3 in both layouts");
    compare_configs(small_llama, "{\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2.0}}",
                    "{\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}}", true,
                    "linear: rope_type or type");
    compare_configs(small_llama, "{\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2.0}}", "{}",
                    false, "linear scaling matters");
    compare_configs(
        small_llama,
        "{\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000.0, \"factor\": 4.0, "
        "\"original_max_position_embeddings\": 16}}",
        "{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4.0, \"original_max_position_embeddings\": 16, "
        "\"beta_fast\": 32, \"beta_slow\": 1, \"truncate\": true}}",
        true, "yarn in both layouts, with its defaults spelled out");
    compare_configs(small_llama,
                    "{\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0, "
                    "\"original_max_position_embeddings\": 16}}",
                    "{\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4.0, "
                    "\"original_max_position_embeddings\": 16, \"attention_factor\": 1.0}}",
                    false, "yarn's attention factor scales cos and sin");
    /* rope_scaling (4.x) wins over rope_parameters when both are given, as transformers 5 reads them */
    compare_configs(small_llama,
                    "{\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2.0}, \"rope_parameters\": "
                    "{\"rope_type\": \"default\"}}",
                    "{\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2.0}}", true,
                    "rope_scaling first");
}

static bool has_param(hft_model *m, const char *name) {
    return hft_paramset_find(hft_model_params(m), name) != NULL;
}

TEST(parameters_tags_and_initialisation_follow_transformers) {
    hft_model *l =
        from_config(small_llama, "{\"attention_bias\": true, \"mlp_bias\": true, \"pad_token_id\": 3}", 1);
    hft_model *q = from_config(small_qwen2, NULL, 1), *mi = from_config(small_mistral, NULL, 1);
    if (!l || !q || !mi) goto done;
    const char *lnames[] = {"model.embed_tokens.weight",
                            "model.layers.0.self_attn.q_proj.bias",
                            "model.layers.0.self_attn.o_proj.bias",
                            "model.layers.0.mlp.down_proj.bias",
                            "model.layers.0.post_attention_layernorm.weight",
                            "model.norm.weight",
                            "lm_head.weight"};
    for (size_t i = 0; i < sizeof lnames / sizeof *lnames; i++)
        CHECK(has_param(l, lnames[i]), "llama has %s", lnames[i]);
    CHECK(hft_paramset_count(hft_model_params(l)) == 1 + 16 + 2, "llama with every bias: %d parameters",
          hft_paramset_count(hft_model_params(l)));
    /* Qwen2: q, k, v biased, never o_proj; tied, so no lm_head parameter */
    CHECK(has_param(q, "model.layers.0.self_attn.k_proj.bias") &&
              !has_param(q, "model.layers.0.self_attn.o_proj.bias") && !has_param(q, "lm_head.weight") &&
              !has_param(q, "model.layers.0.mlp.up_proj.bias"),
          "qwen2 biases and tied head");
    /* Mistral has no biases whatever attention_bias says (MistralAttention hard-codes bias=False) */
    CHECK(!has_param(mi, "model.layers.0.self_attn.q_proj.bias") && has_param(mi, "lm_head.weight"),
          "mistral: no biases, untied head");
    hft_paramset *ps = hft_model_params(l);
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        bool nd = strstr(p->name, "norm.weight") || strstr(p->name, ".bias");
        CHECK(((p->tags & HFT_PARAM_NO_DECAY) != 0) == nd, "%s: no_decay tag", p->name);
        int64_t n = hft_tensor_numel(p->value);
        const float *v = hft_tensor_data(p->value);
        double sum2 = 0;
        bool ones = true, zeros = true;
        for (int64_t j = 0; j < n; j++)
            sum2 += (double)v[j] * v[j], ones &= v[j] == 1.0f, zeros &= v[j] == 0.0f;
        if (strstr(p->name, "norm.weight"))
            CHECK(ones, "%s starts at ones", p->name);
        else if (strstr(p->name, ".bias"))
            CHECK(zeros, "%s starts at zeros", p->name);
        else
            CHECK(fabs(sqrt(sum2 / (double)n) - 0.02) < 0.006, "%s: std %g, initializer_range 0.02", p->name,
                  sqrt(sum2 / (double)n));
    }
    const float *emb = hft_tensor_data(hft_paramset_find(ps, "model.embed_tokens.weight")->value);
    bool row3 = true, row4 = false;
    for (int j = 0; j < 16; j++) row3 &= emb[3 * 16 + j] == 0.0f, row4 |= emb[4 * 16 + j] != 0.0f;
    CHECK(row3 && row4, "the padding_idx row (pad_token_id 3) is zeroed at init, the others are not");
done:
    hft_model_free(l), hft_model_free(q), hft_model_free(mi);
}

/* ---------------------------------------------------------------- files and errors */

static void write_text(const char *dir, const char *name, const char *text) {
    char *p = path_in(dir, name);
    FILE *fp = fopen(p, "w");
    if (fp) fputs(text, fp), fclose(fp);
    free(p);
}

/* Saves a model of `base` into a new folder, rewrites its config.json with `patch`, loads it back: the
 * error message (strdup'ed) or NULL when it loads. */
static char *load_error(const char *base, const char *patch) {
    hft_model *m = from_config(base, NULL, 2), *back = NULL;
    char *dir = temp_dir(), *msg = NULL;
    if (m && dir && hft_model_save(m, dir) == HFT_OK) {
        char *text = patched(base, patch);
        write_text(dir, "config.json", text);
        free(text);
        if (hft_model_load(dir, NULL, &back) != HFT_OK) msg = strdup(hft_error_message());
    }
    hft_model_free(m);
    hft_model_free(back);
    if (dir) remove_dir(dir);
    free(dir);
    return msg;
}

TEST(config_errors_name_the_file_and_the_key) {
    static const struct {
        const char *base, *patch, *words[3];
    } cases[] = {
        {small_llama,
         "{\"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}}",
         {"rope_type", "dynamic", "llama3"}},
        {small_llama,
         "{\"rope_scaling\": {\"type\": \"longrope\", \"factor\": 2.0}}",
         {"rope_scaling.type", "longrope", NULL}},
        {small_llama, "{\"partial_rotary_factor\": 0.5}", {"partial_rotary_factor", "0.5", NULL}},
        {small_llama,
         "{\"rope_parameters\": {\"rope_type\": \"default\", \"partial_rotary_factor\": 0.5}}",
         {"partial_rotary_factor", NULL, NULL}},
        {small_llama,
         "{\"hidden_size\": 18, \"head_dim\": \"__delete__\"}",
         {"num_attention_heads", "hidden_size 18", NULL}},
        {small_llama, "{\"num_key_value_heads\": 3}", {"num_key_value_heads", "not a multiple", NULL}},
        {small_llama, "{\"hidden_act\": \"tanh\"}", {"hidden_act", "tanh", "silu"}},
        {small_llama,
         "{\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"high_freq_factor\": 4.0}}",
         {"low_freq_factor", "llama3", NULL}},
        {small_llama, "{\"pad_token_id\": 29}", {"pad_token_id", NULL, NULL}},
        {small_qwen2,
         "{\"use_sliding_window\": true, \"sliding_window\": 8}",
         {"use_sliding_window", NULL, NULL}},
        {small_qwen2, "{\"use_sliding_window\": true}", {"use_sliding_window", NULL, NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *msg = load_error(cases[i].base, cases[i].patch);
        CHECK(msg != NULL, "%s: refused", cases[i].patch);
        if (!msg) continue;
        CHECK(strstr(msg, "config.json"), "%s: message names config.json: %s", cases[i].patch, msg);
        for (int w = 0; w < 3 && cases[i].words[w]; w++)
            CHECK(strstr(msg, cases[i].words[w]), "%s: message says '%s': %s", cases[i].patch,
                  cases[i].words[w], msg);
        free(msg);
    }
    /* settings that do not change the math load */
    char *ok = load_error(small_llama, "{\"pretraining_tp\": 2, \"rope_theta\": 10000}");
    CHECK(!ok, "pretraining_tp and a top-level theta load: %s", ok ? ok : "");
    free(ok);
    ok = load_error(small_qwen2, "{\"use_sliding_window\": true, \"sliding_window\": null}");
    CHECK(!ok, "use_sliding_window with a null window loads: %s", ok ? ok : "");
    free(ok);
}

TEST(a_checkpoint_tensor_of_the_wrong_shape_names_the_file_and_the_tensor) {
    char *msg = load_error(small_llama, "{\"intermediate_size\": 25}");
    CHECK(msg && strstr(msg, "model.safetensors") && strstr(msg, "model.layers.0.mlp.gate_proj.weight") &&
              strstr(msg, "[24, 16]") && strstr(msg, "[25, 16]"),
          "message: %s", msg ? msg : "(loaded)");
    free(msg);
}

TEST(mistral_refuses_sequences_longer_than_the_sliding_window) {
    hft_model *m = from_config(small_mistral, NULL, 4), *back = NULL;
    char *dir = temp_dir();
    CHECK_OK(m ? hft_model_save(m, dir) : HFT_EINVAL, NULL);
    CHECK_OK(hft_model_load(dir, NULL, &back), NULL);
    if (back) {
        double *fits = logits_of(back, 6);
        CHECK(fits != NULL, "a sequence as long as the window runs");
        free(fits);
        hft_ctx *ctx = hft_ctx_new(NULL);
        int64_t ids[7] = {1, 2, 3, 4, 5, 6, 7};
        hft_tensor *tid = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){1, 7}, ids);
        hft_batch b = {.input_ids = tid, .labels = tid};
        int64_t count = 0;
        CHECK(hft_model_loss(ctx, back, &b, true, &count) == NULL, "a longer one is refused");
        const char *msg = hft_ctx_error(ctx);
        CHECK(strstr(msg, "config.json") && strstr(msg, "sliding_window") && strstr(msg, "7"), "message: %s",
              msg);
        hft_ctx_free(ctx);
        hft_tensor_free(tid);
    }
    hft_model_free(m);
    hft_model_free(back);
    remove_dir(dir);
    free(dir);
}

/* Old checkpoints carry rotary_emb.inv_freq buffers and, when tied, a copy of the classifier: both are taken
 * silently; the tied classifier is saved once. */
TEST(inv_freq_buffers_and_tied_copies_are_ignored) {
    hft_model *m = from_config(small_qwen2, NULL, 6), *back = NULL;
    char *dir = temp_dir();
    if (!m || !dir) goto done;
    hft_paramset *ps = hft_model_params(m);
    hft_st_writer *w = hft_st_writer_new();
    for (int i = 0; i < hft_paramset_count(ps); i++)
        hft_st_writer_add(w, hft_paramset_get(ps, i)->name, hft_paramset_get(ps, i)->value);
    hft_tensor *inv = hft_tensor_new(HFT_F32, 1, (int64_t[]){2});
    hft_st_writer_add(w, "model.layers.0.self_attn.rotary_emb.inv_freq", inv);
    hft_st_writer_add(w, "lm_head.weight", hft_paramset_find(ps, "model.embed_tokens.weight")->value);
    char *st = path_in(dir, "model.safetensors");
    CHECK_OK(hft_st_writer_save(w, st), NULL);
    hft_st_writer_free(w);
    hft_tensor_free(inv);
    char *text = patched(small_qwen2, "{}");
    write_text(dir, "config.json", text);
    free(text);
    CHECK_OK(hft_model_load(dir, NULL, &back), NULL);
    CHECK(back && hft_model_unused_count(back) == 0, "nothing reported unused: %d (first %s)",
          back ? hft_model_unused_count(back) : -1,
          back && hft_model_unused_count(back) ? hft_model_unused(back, 0) : "");
    CHECK(back && same_params(m, back), "the values load");
    if (back) {
        CHECK_OK(hft_model_save(back, dir), NULL);
        hft_safetensors *f = NULL;
        CHECK_OK(hft_safetensors_open(st, &f), NULL);
        CHECK(f && !hft_safetensors_find(f, "lm_head.weight") &&
                  hft_safetensors_find(f, "model.embed_tokens.weight"),
              "the tied classifier is saved once, as model.embed_tokens.weight");
        hft_safetensors_close(f);
    }
    free(st);
done:
    hft_model_free(m);
    hft_model_free(back);
    if (dir) remove_dir(dir);
    free(dir);
}

/* attention_dropout drops attention weights in training only, from the context's random stream. */
TEST(attention_dropout_applies_in_training_only) {
    hft_model *m = from_config(small_llama, "{\"attention_dropout\": 0.5}", 7);
    if (!m) return;
    int64_t ids[8] = {1, 5, 9, 2, 7, 3, 8, 4};
    hft_tensor *tid = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){1, 8}, ids);
    hft_batch b = {.input_ids = tid, .labels = tid};
    double loss[3];
    for (int k = 0; k < 3; k++) {
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_ctx_set_rng(ctx, 42, 0, 0, 0);
        int64_t count = 0;
        hft_tensor *l = hft_model_loss(ctx, m, &b, k < 2, &count);
        CHECK(l != NULL, "loss: %s", hft_ctx_error(ctx));
        if (l) hft_tensor_to_f64(l, &loss[k]);
        hft_ctx_free(ctx);
    }
    CHECK(loss[0] == loss[1], "the same random stream drops the same weights: %.9g %.9g", loss[0], loss[1]);
    CHECK(loss[0] != loss[2], "training differs from evaluation: %.9g %.9g", loss[0], loss[2]);
    hft_tensor_free(tid);
    hft_model_free(m);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"llama_gqa4_matches_transformers", llama_gqa4_matches_transformers},
        {"llama_gqa2_tied_llama3_rope_matches_transformers",
         llama_gqa2_tied_llama3_rope_matches_transformers},
        {"llama_linear_rope_4x_config_matches_transformers",
         llama_linear_rope_4x_config_matches_transformers},
        {"qwen2_matches_transformers", qwen2_matches_transformers},
        {"mistral_matches_transformers", mistral_matches_transformers},
        {"rope_reads_the_4x_and_5x_config_layouts_alike", rope_reads_the_4x_and_5x_config_layouts_alike},
        {"parameters_tags_and_initialisation_follow_transformers",
         parameters_tags_and_initialisation_follow_transformers},
        {"config_errors_name_the_file_and_the_key", config_errors_name_the_file_and_the_key},
        {"a_checkpoint_tensor_of_the_wrong_shape_names_the_file_and_the_tensor",
         a_checkpoint_tensor_of_the_wrong_shape_names_the_file_and_the_tensor},
        {"mistral_refuses_sequences_longer_than_the_sliding_window",
         mistral_refuses_sequences_longer_than_the_sliding_window},
        {"inv_freq_buffers_and_tied_copies_are_ignored", inv_freq_buffers_and_tied_copies_are_ignored},
        {"attention_dropout_applies_in_training_only", attention_dropout_applies_in_training_only},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
