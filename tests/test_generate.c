/* Generation against transformers 5.23 on the tiny model folders (tests/fixtures/generate, made by
 * make_generate_fixtures.py): incremental decoding with the KV cache gives the logits of a full forward;
 * greedy continuations equal generate's token for token; the first sampled step's processed scores
 * (repetition penalty, temperature, top-k, top-p, min-p) equal generate's (rtol 1e-4). */
#include <cjson/cJSON.h>

#include "nn/nn.h"
#include "tests/test_util.h"

#define FIXTURE "tests/fixtures/generate/generate.safetensors"
static const char *models[] = {"gpt2", "llama_gqa4", "qwen2", "mistral"};

static hft_tensor *get(hft_safetensors *f, const char *model, const char *name, hft_dtype dt) {
    char key[128];
    snprintf(key, sizeof key, "%s/%s", model, name);
    hft_tensor *t = NULL;
    if (hft_safetensors_load(f, key, dt, false, &t) != HFT_OK)
        CHECK(false, "%s: %s", key, hft_error_message());
    return t;
}

static hft_model *load(const char *name) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fixtures/models/%s", name);
    hft_model *m = NULL;
    if (hft_model_load(dir, NULL, &m) != HFT_OK) CHECK(false, "%s: %s", dir, hft_error_message());
    return m;
}

TEST(decoding_with_the_cache_equals_a_full_forward) {
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        hft_model *m = load(models[i]);
        if (!m) continue;
        int64_t V = hft_model_vocab_size(m), T = 12, P = 7, ids[12];
        for (int64_t t = 0; t < T; t++) ids[t] = (t * 13 + 5) % V;
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_set_grad_enabled(ctx, false);
        hft_tensor *full = hft_model_logits(
            ctx, m, &(hft_batch){.input_ids = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, T}, ids)});
        double *want = malloc(sizeof *want * (size_t)(T * V)), *got = malloc(sizeof *got * (size_t)(T * V));
        for (int64_t j = 0; full && j < T * V; j++) want[j] = ((float *)hft_tensor_data(full))[j];
        hft_ctx_reset(ctx);
        hft_kv_cache *c = NULL;
        CHECK_OK(hft_kv_cache_new(m, 1, T, &c), NULL);
        for (int64_t at = 0; c && at < T;) { /* the prompt at once, then one token at a time */
            int64_t n = at == 0 ? P : 1;
            hft_tensor *lg =
                hft_model_decode(ctx, m, c, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, n}, ids + at));
            CHECK(lg != NULL, "%s: decode at %lld: %s", models[i], (long long)at, hft_ctx_error(ctx));
            if (!lg) break;
            for (int64_t j = 0; j < n * V; j++) got[at * V + j] = ((float *)hft_tensor_data(lg))[j];
            hft_ctx_reset(ctx);
            at += n;
        }
        CHECK(c && hft_kv_cache_len(c) == T, "the cache holds %lld tokens",
              c ? (long long)hft_kv_cache_len(c) : -1LL);
        char what[64];
        snprintf(what, sizeof what, "%s decoded logits", models[i]);
        CHECK(test_close(what, got, want, (long)(T * V), 1e-5, 1e-6), "%s", what);
        hft_tensor *more =
            hft_model_decode(ctx, m, c, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, 1}, ids));
        CHECK(!more && strstr(hft_ctx_error(ctx), "do not fit"), "a full cache is refused: %s",
              hft_ctx_error(ctx));
        hft_kv_cache_free(c);
        free(want), free(got);
        hft_ctx_free(ctx);
        hft_model_free(m);
    }
}

TEST(greedy_and_processed_scores_match_transformers) {
    hft_safetensors *f = NULL;
    if (hft_safetensors_open(FIXTURE, &f) != HFT_OK) {
        CHECK(false, "%s: %s", FIXTURE, hft_error_message());
        return;
    }
    cJSON *cases = cJSON_Parse(hft_safetensors_metadata(f, "cases"));
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        hft_model *m = load(models[i]);
        hft_tensor *prompt = get(f, models[i], "prompt", HFT_I64),
                   *greedy = get(f, models[i], "greedy", HFT_I64);
        if (!m || !prompt || !greedy) continue;
        int64_t n = hft_tensor_numel(prompt), k = hft_tensor_numel(greedy), out[64], n_out = 0;
        const int64_t *p = hft_tensor_data(prompt);
        hft_ctx *ctx = hft_ctx_new(NULL);
        hft_generate_options o = hft_generate_defaults();
        o.max_new_tokens = k;
        CHECK_OK(hft_generate(ctx, m, p, n, &o, out, &n_out, NULL, NULL), NULL);
        CHECK(n_out == k && memcmp(out, hft_tensor_data(greedy), sizeof *out * (size_t)k) == 0,
              "%s: the greedy continuation differs from transformers' generate", models[i]);
        /* the first step's processed scores, per case */
        int64_t V = hft_model_vocab_size(m);
        hft_tensor *logits = hft_model_logits(
            ctx, m, &(hft_batch){.input_ids = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, n}, p)});
        const cJSON *c;
        cJSON_ArrayForEach(c, cases) {
            hft_generate_options co = hft_generate_defaults();
            const cJSON *x;
            co.do_sample = !((x = cJSON_GetObjectItem(c, "do_sample")) && cJSON_IsFalse(x));
            if ((x = cJSON_GetObjectItem(c, "temperature"))) co.temperature = x->valuedouble;
            if ((x = cJSON_GetObjectItem(c, "top_k"))) co.top_k = x->valueint;
            if ((x = cJSON_GetObjectItem(c, "top_p"))) co.top_p = x->valuedouble;
            if ((x = cJSON_GetObjectItem(c, "min_p"))) co.min_p = x->valuedouble;
            if ((x = cJSON_GetObjectItem(c, "repetition_penalty"))) co.repetition_penalty = x->valuedouble;
            float *s = malloc(sizeof *s * (size_t)V);
            memcpy(s, (const float *)hft_tensor_data(logits) + (n - 1) * V, sizeof *s * (size_t)V);
            CHECK_OK(hft_process_logits(s, V, p, n, &co), NULL);
            char name[64];
            snprintf(name, sizeof name, "scores/%s", c->string);
            hft_tensor *want = get(f, models[i], name, HFT_F32);
            int bad = 0;
            for (int64_t v = 0; want && v < V; v++) {
                float a = s[v], b = ((float *)hft_tensor_data(want))[v];
                bad += isinf(b) ? !(isinf(a) && a < 0) : !(fabsf(a - b) <= 1e-4f * fabsf(b) + 1e-5f);
            }
            CHECK(want && bad == 0, "%s %s: %d of %lld processed scores differ from generate's", models[i],
                  c->string, bad, (long long)V);
            hft_tensor_free(want);
            free(s);
        }
        hft_ctx_free(ctx);
        hft_tensor_free(prompt), hft_tensor_free(greedy);
        hft_model_free(m);
    }
    cJSON_Delete(cases);
    hft_safetensors_close(f);
}

TEST(perplexity_matches_the_transformers_guide) {
    hft_safetensors *f = NULL;
    if (hft_safetensors_open(FIXTURE, &f) != HFT_OK) {
        CHECK(false, "%s: %s", FIXTURE, hft_error_message());
        return;
    }
    cJSON *ppl = cJSON_Parse(hft_safetensors_metadata(f, "ppl"));
    int64_t max_length = cJSON_GetObjectItem(ppl, "max_length")->valueint,
            stride = cJSON_GetObjectItem(ppl, "stride")->valueint;
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        hft_model *m = load(models[i]);
        hft_tensor *ids = get(f, models[i], "ppl_ids", HFT_I64), *want = get(f, models[i], "ppl", HFT_F64);
        if (!m || !ids || !want) continue;
        hft_ctx *ctx = hft_ctx_new(NULL);
        double got = 0;
        int64_t tokens = 0;
        CHECK_OK(hft_perplexity(ctx, m, hft_tensor_data(ids), hft_tensor_numel(ids), max_length, stride, &got,
                                &tokens),
                 NULL);
        double w = *(double *)hft_tensor_data(want);
        CHECK(fabs(got - w) <= 1e-5 * w, "%s: perplexity %.9g, the guide's %.9g", models[i], got, w);
        hft_ctx_free(ctx);
        hft_tensor_free(ids), hft_tensor_free(want);
        hft_model_free(m);
    }
    cJSON_Delete(ppl);
    hft_safetensors_close(f);
}

TEST(batched_left_padded_greedy_matches_transformers) {
    hft_safetensors *f = NULL;
    if (hft_safetensors_open(FIXTURE, &f) != HFT_OK) {
        CHECK(false, "%s: %s", FIXTURE, hft_error_message());
        return;
    }
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        hft_model *m = load(models[i]);
        hft_tensor *p[3], *want = get(f, models[i], "batch_greedy", HFT_I64);
        const int64_t *prompts[3];
        int64_t lengths[3], out[3 * 10], n_out[3];
        for (int r = 0; r < 3; r++) {
            char name[32];
            snprintf(name, sizeof name, "batch_prompt%d", r);
            p[r] = get(f, models[i], name, HFT_I64);
            prompts[r] = p[r] ? hft_tensor_data(p[r]) : NULL;
            lengths[r] = p[r] ? hft_tensor_numel(p[r]) : 0;
        }
        if (m && want && p[0] && p[1] && p[2]) {
            hft_ctx *ctx = hft_ctx_new(NULL);
            hft_generate_options o = hft_generate_defaults();
            o.max_new_tokens = 10;
            CHECK_OK(hft_generate_batch(ctx, m, prompts, lengths, 3, 0, &o, out, n_out), NULL);
            CHECK(n_out[0] == 10 && n_out[1] == 10 && n_out[2] == 10 &&
                      memcmp(out, hft_tensor_data(want), sizeof out) == 0,
                  "%s: the left-padded batch's greedy tokens differ from transformers' generate", models[i]);
            hft_ctx_free(ctx);
        }
        for (int r = 0; r < 3; r++) hft_tensor_free(p[r]);
        hft_tensor_free(want);
        hft_model_free(m);
    }
    hft_safetensors_close(f);
}

/* Settings generation cannot run with are refused, each with a message that says why. */
TEST(bad_settings_are_refused_with_a_message) {
    hft_model *bert = load("bert_mlm"), *gpt = load("gpt2");
    hft_kv_cache *c = NULL;
    CHECK(bert && hft_kv_cache_new(bert, 1, 8, &c) == HFT_EUNSUPPORTED &&
              strstr(hft_error_message(), "incremental decoding is for causal language models"),
          "a KV cache for BERT: %s", hft_error_message());
    hft_ctx *ctx = hft_ctx_new(NULL);
    int64_t prompt[2] = {1, 2}, out[4], n_out = 0;
    hft_generate_options o = hft_generate_defaults();
    o.max_new_tokens = 4;
    o.do_sample = true;
    o.temperature = 0;
    CHECK(gpt && hft_generate(ctx, gpt, prompt, 2, &o, out, &n_out, NULL, NULL) == HFT_EINVAL &&
              strstr(hft_error_message(), "sampling needs a temperature > 0"),
          "temperature 0: %s", hft_error_message());
    o.temperature = 1, o.top_p = 0;
    CHECK(gpt && hft_generate(ctx, gpt, prompt, 2, &o, out, &n_out, NULL, NULL) == HFT_EINVAL &&
              strstr(hft_error_message(), "expected top_p in (0, 1]"),
          "top_p 0: %s", hft_error_message());
    o.top_p = 1;
    CHECK(gpt && hft_generate(ctx, gpt, prompt, 0, &o, out, &n_out, NULL, NULL) == HFT_EINVAL &&
              strstr(hft_error_message(), "is empty (give at least one token"),
          "an empty prompt: %s", hft_error_message());
    double ppl;
    int64_t tokens;
    CHECK(gpt && hft_perplexity(ctx, gpt, prompt, 2, 1, 1, &ppl, &tokens) == HFT_EINVAL &&
              strstr(hft_error_message(), "max_length 1"),
          "perplexity with max_length 1: %s", hft_error_message());
    hft_ctx_free(ctx);
    hft_model_free(bert);
    hft_model_free(gpt);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"decoding_with_the_cache_equals_a_full_forward", decoding_with_the_cache_equals_a_full_forward},
        {"greedy_and_processed_scores_match_transformers", greedy_and_processed_scores_match_transformers},
        {"perplexity_matches_the_transformers_guide", perplexity_matches_the_transformers_guide},
        {"batched_left_padded_greedy_matches_transformers", batched_left_padded_greedy_matches_transformers},
        {"bad_settings_are_refused_with_a_message", bad_settings_are_refused_with_a_message},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
