/* LoRA against PEFT: each case of tests/fixtures/lora (written by make_lora_fixtures.py with peft from PyPI)
 * is an adapter PEFT saved on a tiny model of one family, with the logits, loss and the gradient of every
 * trainable tensor PEFT computed on a batch, and the logits of PEFT's merge_and_unload. hft loads the
 * adapter, matches all of them, writes the adapter back with the same names and values, and merges. */
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn.h"
#include "optim/optim.h"
#include "tests/model_parity.h"
#include "tests/test_util.h"

#define RTOL 1e-4

static char tmp_root[64];

static char *path2(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* The base model folder the case's adapter_config.json names (relative to the repository root). */
static char *base_dir(const char *case_dir) {
    char *cfg = path2(case_dir, "adapter_config.json");
    char *text = hft_read_text(cfg, NULL);
    free(cfg);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
    char *dir = cJSON_IsString(b) ? strdup(b->valuestring) : NULL;
    cJSON_Delete(j);
    return dir;
}

typedef struct lora_case {
    hft_safetensors *batch_file;
    hft_tensor *ids, *mask, *types, *labels;
    hft_batch batch;
} lora_case;

static void case_open(lora_case *c, const char *case_dir) {
    char *bp = path2(case_dir, "batch.safetensors");
    memset(c, 0, sizeof *c);
    CHECK(hft_safetensors_open(bp, &c->batch_file) == HFT_OK, "%s", hft_error_message());
    free(bp);
    if (!c->batch_file) return;
    c->ids = model_parity_fixture(c->batch_file, "input_ids", HFT_I64);
    c->mask = model_parity_fixture(c->batch_file, "attention_mask", HFT_I64);
    c->types = model_parity_fixture(c->batch_file, "token_type_ids", HFT_I64);
    const hft_st_entry *le = hft_safetensors_find(c->batch_file, "labels");
    c->labels = le ? model_parity_fixture(c->batch_file, "labels", HFT_I64) : NULL;
    c->batch = (hft_batch){
        .input_ids = c->ids, .attention_mask = c->mask, .token_type_ids = c->types, .labels = c->labels};
}

static void case_close(lora_case *c) {
    hft_tensor_free(c->ids), hft_tensor_free(c->mask), hft_tensor_free(c->types), hft_tensor_free(c->labels);
    hft_safetensors_close(c->batch_file);
}

/* The name PEFT's files give a trainable parameter (see hft_lora_save). */
static void peft_name(hft_model *m, const char *param, char *out, size_t size) {
    const char *dot = strrchr(param, '.');
    size_t ml = dot ? (size_t)(dot - param) : 0;
    bool adapted = false;
    char a[300];
    snprintf(a, sizeof a, "%.*s.lora_A.weight", (int)ml, param);
    adapted = hft_paramset_find(hft_model_params(m), a) != NULL;
    if (adapted)
        snprintf(out, size, "base_model.model.%.*s.base_layer%s", (int)ml, param, param + ml);
    else
        snprintf(out, size, "base_model.model.%s", param);
}

/* Forward, loss and backward on the case's batch; compares with PEFT. Returns the eval logits. */
static void check_forward_backward(const char *name, hft_model *m, lora_case *c) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *h = hft_model_hidden(ctx, m, &c->batch, true);
    int64_t count = 0;
    hft_tensor *logits = hft_model_head_logits(ctx, m, h, &c->batch);
    hft_tensor *loss = hft_model_head_loss(ctx, m, h, &c->batch, true, &count);
    CHECK(hft_ctx_status(ctx) == HFT_OK, "%s: forward: %s", name, hft_ctx_error(ctx));
    model_parity_compare(name, "logits", logits, model_parity_fixture(c->batch_file, "logits", HFT_F32), RTOL,
                         0);
    hft_tensor *wc = model_parity_fixture(c->batch_file, "loss_count", HFT_I64);
    CHECK(wc && count == *(int64_t *)hft_tensor_data(wc), "%s: %lld terms in the loss", name,
          (long long)count);
    hft_tensor_free(wc);
    model_parity_compare(name, "loss", hft_scale(ctx, loss, 1.0 / (double)count),
                         model_parity_fixture(c->batch_file, "loss", HFT_F32), RTOL, 0);
    hft_tensor *seed = hft_tensor_from_data(HFT_F32, 0, NULL, &(float){1.0f / (float)count});
    CHECK(hft_backward(ctx, loss, seed) == HFT_OK, "%s: backward: %s", name, hft_ctx_error(ctx));
    hft_tensor_free(seed);

    hft_paramset *ps = hft_model_params(m);
    hft_paramset_materialize_grads(ps);
    double grad_max = 0;
    for (int k = 0; k < hft_safetensors_count(c->batch_file); k++) {
        const char *n = hft_safetensors_entry(c->batch_file, k)->name;
        hft_tensor *ref =
            strncmp(n, "grad/", 5) == 0 ? model_parity_fixture(c->batch_file, n, HFT_F32) : NULL;
        for (int64_t i = 0; ref && i < hft_tensor_numel(ref); i++)
            grad_max = fmax(grad_max, fabs((double)((float *)hft_tensor_data(ref))[i]));
        hft_tensor_free(ref);
    }
    int trainable = 0, refs = 0;
    int64_t trainable_numel = 0;
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        if (p->tags & HFT_PARAM_FROZEN) { /* the frozen base: no gradient buffer, nothing computed for it */
            CHECK(p->grad == NULL && !p->value->requires_grad, "%s: frozen %s has a gradient", name, p->name);
            continue;
        }
        trainable++;
        trainable_numel += hft_tensor_numel(p->value);
        char pn[400], gn[420];
        peft_name(m, p->name, pn, sizeof pn);
        snprintf(gn, sizeof gn, "grad/%s", pn);
        model_parity_compare(name, gn, p->grad, model_parity_fixture(c->batch_file, gn, HFT_F32), RTOL,
                             1e-3 * RTOL * grad_max);
    }
    for (int k = 0; k < hft_safetensors_count(c->batch_file); k++)
        refs += strncmp(hft_safetensors_entry(c->batch_file, k)->name, "grad/", 5) == 0;
    CHECK(trainable == refs, "%s: %d trainable tensors, PEFT trains %d", name, trainable, refs);
    CHECK(hft_paramset_trainable_numel(ps) == trainable_numel, "%s: gradient buffer of %lld values", name,
          (long long)hft_paramset_trainable_numel(ps));
    hft_ctx_free(ctx);
}

/* The adapter hft writes has PEFT's file's tensors, names and values, and a config PEFT reads the same. */
static void check_saved_adapter(const char *name, hft_model *m, const char *case_dir) {
    char *out = path2(tmp_root, name);
    CHECK(hft_lora_save(m, out) == HFT_OK, "%s: save: %s", name, hft_error_message());
    char *mine = path2(out, "adapter_model.safetensors"),
         *theirs = path2(case_dir, "adapter_model.safetensors");
    hft_safetensors *a = NULL, *b = NULL;
    CHECK(hft_safetensors_open(mine, &a) == HFT_OK && hft_safetensors_open(theirs, &b) == HFT_OK, "%s",
          hft_error_message());
    if (a && b) {
        CHECK(hft_safetensors_count(a) == hft_safetensors_count(b),
              "%s: %d tensors written, PEFT's file has %d", name, hft_safetensors_count(a),
              hft_safetensors_count(b));
        for (int k = 0; k < hft_safetensors_count(b); k++) {
            const hft_st_entry *e = hft_safetensors_entry(b, k), *f = hft_safetensors_find(a, e->name);
            CHECK(f && f->nbytes == e->nbytes && memcmp(f->data, e->data, e->nbytes) == 0,
                  "%s: '%s' not written as PEFT's file has it", name, e->name);
        }
        const char *fmt = hft_safetensors_metadata(a, "format");
        CHECK(fmt && strcmp(fmt, "pt") == 0, "%s: metadata format", name);
    }
    hft_safetensors_close(a), hft_safetensors_close(b);
    /* the settings PEFT acts on, as PEFT saved them */
    char *cm = path2(out, "adapter_config.json"), *ct = path2(case_dir, "adapter_config.json");
    char *tm = hft_read_text(cm, NULL), *tt = hft_read_text(ct, NULL);
    cJSON *jm = tm ? cJSON_Parse(tm) : NULL, *jt = tt ? cJSON_Parse(tt) : NULL;
    const char *keys[] = {"r",
                          "lora_alpha",
                          "lora_dropout",
                          "bias",
                          "use_rslora",
                          "peft_type",
                          "fan_in_fan_out",
                          "task_type",
                          "rank_pattern",
                          "alpha_pattern",
                          "layers_to_transform",
                          "base_model_name_or_path"};
    for (size_t k = 0; jm && jt && k < sizeof keys / sizeof keys[0]; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(jm, keys[k]),
                    *y = cJSON_GetObjectItemCaseSensitive(jt, keys[k]);
        CHECK(x && y && cJSON_Compare(x, y, true), "%s: adapter_config.json '%s' differs from PEFT's", name,
              keys[k]);
    }
    /* target_modules and modules_to_save are sets (PEFT writes a set in hash order) */
    for (const char *const *k = (const char *const[]){"target_modules", "modules_to_save", NULL};
         jm && jt && *k; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(jm, *k),
                    *y = cJSON_GetObjectItemCaseSensitive(jt, *k);
        bool same = cJSON_IsNull(x) == cJSON_IsNull(y) && cJSON_GetArraySize(x) == cJSON_GetArraySize(y);
        const cJSON *item;
        cJSON_ArrayForEach(item, y) {
            bool found = false;
            const cJSON *o;
            cJSON_ArrayForEach(o, x) found |= cJSON_Compare(o, item, true);
            same &= found;
        }
        CHECK(same, "%s: adapter_config.json '%s' differs from PEFT's", name, *k);
    }
    cJSON_Delete(jm), cJSON_Delete(jt);
    free(tm), free(tt), free(cm), free(ct), free(mine), free(theirs), free(out);
}

static void check_merged(const char *name, hft_model *m, lora_case *c, const char *case_dir) {
    CHECK(hft_lora_merge(m) == HFT_OK, "%s: merge: %s", name, hft_error_message());
    CHECK(!hft_model_has_adapter(m), "%s: adapter still active after merge", name);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *logits = hft_model_logits(ctx, m, &c->batch);
    CHECK(hft_ctx_status(ctx) == HFT_OK, "%s: merged forward: %s", name, hft_ctx_error(ctx));
    model_parity_compare(name, "merged logits", logits,
                         model_parity_fixture(c->batch_file, "merged_logits", HFT_F32), RTOL, 0);
    hft_ctx_free(ctx);
    char merged_dir[200];
    snprintf(merged_dir, sizeof merged_dir, "%s_merged", name);
    char *out = path2(tmp_root, merged_dir), *mine = path2(out, "model.safetensors");
    CHECK(hft_model_save(m, out) == HFT_OK, "%s: save merged: %s", name, hft_error_message());
    char *merged_ref = path2(case_dir, "merged/model.safetensors");
    if (access(merged_ref, F_OK) != 0) {
        free(out), free(mine), free(merged_ref);
        return;
    }
    /* the merged export equals PEFT's merge_and_unload saved by transformers, tensor for tensor */
    hft_safetensors *a = NULL, *b = NULL;
    CHECK(hft_safetensors_open(mine, &a) == HFT_OK && hft_safetensors_open(merged_ref, &b) == HFT_OK, "%s",
          hft_error_message());
    if (a && b) {
        CHECK(hft_safetensors_count(a) == hft_safetensors_count(b),
              "%s: merged model has %d tensors, PEFT's %d", name, hft_safetensors_count(a),
              hft_safetensors_count(b));
        for (int k = 0; k < hft_safetensors_count(b); k++) {
            const char *tn = hft_safetensors_entry(b, k)->name;
            hft_tensor *got = NULL;
            if (!hft_safetensors_find(a, tn)) {
                CHECK(false, "%s: merged model lacks '%s'", name, tn);
                continue;
            }
            hft_safetensors_load(a, tn, HFT_F32, false, &got);
            char what[300];
            snprintf(what, sizeof what, "merged %s", tn);
            model_parity_compare(name, what, got, model_parity_fixture(b, tn, HFT_F32), 1e-6, 0);
            hft_tensor_free(got);
        }
    }
    hft_safetensors_close(a), hft_safetensors_close(b);
    free(out), free(mine), free(merged_ref);
}

static void run_case(const char *name) {
    char *case_dir = path2("tests/fixtures/lora", name);
    char *base = base_dir(case_dir);
    hft_model *m = NULL;
    CHECK(base && hft_model_load(base, NULL, &m) == HFT_OK, "%s: base: %s", name, hft_error_message());
    if (!m) goto out;
    CHECK(hft_lora_load(m, case_dir) == HFT_OK, "%s: load adapter: %s", name, hft_error_message());
    CHECK(hft_model_has_adapter(m), "%s: no adapter", name);
    lora_case c;
    case_open(&c, case_dir);
    if (c.batch_file) {
        int before = test_failures, adapted = hft_lora_module_count(m);
        check_forward_backward(name, m, &c);
        check_saved_adapter(name, m, case_dir);
        check_merged(name, m, &c, case_dir);
        if (test_failures == before)
            printf(
                "%s: %d adapted modules; logits, loss, every trainable gradient, the written adapter and the "
                "merge match PEFT\n",
                name, adapted);
    }
    case_close(&c);
out:
    hft_model_free(m);
    free(base), free(case_dir);
}

TEST(gpt2_lora) {
    run_case("gpt2_lora");
}
TEST(gpt2_all_linear) {
    run_case("gpt2_all_linear");
}
TEST(llama_lora) {
    run_case("llama_lora");
}
TEST(llama_tied_lora) {
    run_case("llama_tied_lora");
}
TEST(qwen2_lora) {
    run_case("qwen2_lora");
}
TEST(bert_seqcls_lora) {
    run_case("bert_seqcls_lora");
}
TEST(bert_mlm_lora) {
    run_case("bert_mlm_lora");
}

/* ---------------------------------------------------------------- attaching from settings */

static hft_model *load_base(const char *dir) {
    hft_model *m = NULL;
    CHECK(hft_model_load(dir, NULL, &m) == HFT_OK, "%s", hft_error_message());
    return m;
}

static int64_t count_trainable(hft_model *m) {
    return hft_paramset_trainable_numel(hft_model_params(m));
}

/* A fresh adapter starts as the base (B = 0), draws A from U(±1/√in) keyed by the seed, and trains only the
 * factors. */
TEST(fresh_adapter_is_the_base_and_seeded) {
    const char *base = "tests/fixtures/models/llama_gqa4";
    hft_model *m = load_base(base), *m2 = load_base(base), *m3 = load_base(base);
    if (!m || !m2 || !m3) goto out;
    hft_ctx *ctx = hft_ctx_new(NULL);
    int64_t ids_v[8] = {1, 5, 9, 3, 2, 7, 4, 6};
    hft_tensor *ids = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){2, 4}, ids_v);
    hft_batch b = {.input_ids = ids};
    hft_tensor *l0 = hft_model_logits(ctx, m, &b), *before = NULL;
    if (l0) {
        before = hft_tensor_new(HFT_F32, l0->ndim, l0->shape);
        hft_tensor_copy(before, l0);
    }
    const char *cfg = "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\", \"v_proj\"]}";
    CHECK(hft_lora_attach(m, cfg, "test", 7) == HFT_OK, "%s", hft_error_message());
    CHECK(hft_lora_attach(m2, cfg, "test", 7) == HFT_OK, "%s", hft_error_message());
    CHECK(hft_lora_attach(m3, cfg, "test", 8) == HFT_OK, "%s", hft_error_message());
    int layers = hft_model_layers(m);
    CHECK(hft_lora_module_count(m) == 2 * layers, "%d modules adapted", hft_lora_module_count(m));
    hft_tensor *after = hft_model_logits(ctx, m, &b);
    double worst = 0;
    for (int64_t i = 0; after && before && i < hft_tensor_numel(after); i++)
        worst =
            fmax(worst, fabs(((float *)hft_tensor_data(after))[i] - ((float *)hft_tensor_data(before))[i]));
    CHECK(worst == 0, "a fresh adapter changes the logits by %g", worst);
    hft_param *a = hft_paramset_find(hft_model_params(m), "model.layers.0.self_attn.q_proj.lora_A.weight");
    hft_param *a2 = hft_paramset_find(hft_model_params(m2), "model.layers.0.self_attn.q_proj.lora_A.weight");
    hft_param *a3 = hft_paramset_find(hft_model_params(m3), "model.layers.0.self_attn.q_proj.lora_A.weight");
    hft_param *bb = hft_paramset_find(hft_model_params(m), "model.layers.0.self_attn.q_proj.lora_B.weight");
    CHECK(a && a2 && a3 && bb, "factors not found by name");
    if (a && a2 && a3 && bb) {
        int64_t in = a->value->shape[1], n = hft_tensor_numel(a->value);
        double bound = 1.0 / sqrt((double)in), lo = 1, hi = -1, zero = 0;
        const float *av = hft_tensor_data(a->value);
        for (int64_t i = 0; i < n; i++) lo = fmin(lo, av[i]), hi = fmax(hi, av[i]);
        CHECK(lo >= -bound && hi < bound && hi - lo > bound, "A spans [%g, %g], bound %g", lo, hi, bound);
        CHECK(memcmp(av, hft_tensor_data(a2->value), hft_tensor_nbytes(a->value)) == 0, "same seed, other A");
        CHECK(memcmp(av, hft_tensor_data(a3->value), hft_tensor_nbytes(a->value)) != 0, "other seed, same A");
        for (int64_t i = 0; i < hft_tensor_numel(bb->value); i++)
            zero = fmax(zero, fabs(((float *)hft_tensor_data(bb->value))[i]));
        CHECK(zero == 0, "B is not zero");
        CHECK(a->value->shape[0] == 4, "r = %lld", (long long)a->value->shape[0]);
    }
    int64_t factors = 0;
    hft_paramset *ps = hft_model_params(m);
    for (int i = 0; i < hft_paramset_count(ps); i++)
        if (strstr(hft_paramset_get(ps, i)->name, ".lora_"))
            factors += hft_tensor_numel(hft_paramset_get(ps, i)->value);
    CHECK(count_trainable(m) == factors, "%lld trainable values, the factors have %lld",
          (long long)count_trainable(m), (long long)factors);
    /* a model with an adapter is not saved as a plain model by mistake, nor given a second adapter */
    char *dir = path2(tmp_root, "refused");
    CHECK(hft_model_save(m, dir) == HFT_ESTATE && strstr(hft_error_message(), "unmerged LoRA adapter"), "%s",
          hft_error_message());
    CHECK(hft_lora_attach(m, cfg, "test", 7) == HFT_ESTATE, "second adapter accepted");
    free(dir);
    hft_tensor_free(before), hft_tensor_free(ids);
    hft_ctx_free(ctx);
out:
    hft_model_free(m), hft_model_free(m2), hft_model_free(m3);
}

/* target_modules as one regular expression (matched whole, Python syntax) and PEFT's defaults. */
TEST(regex_targets_and_defaults) {
    hft_model *m = load_base("tests/fixtures/models/llama_gqa4"),
              *m2 = load_base("tests/fixtures/models/llama_gqa4");
    if (!m || !m2) goto out;
    int layers = hft_model_layers(m);
    CHECK(hft_lora_attach(
              m, "{\"target_modules\": \"model\\\\.layers\\\\.\\\\d+\\\\.mlp\\\\.(?:up|down)_proj\"}", "t",
              1) == HFT_OK,
          "%s", hft_error_message());
    CHECK(hft_lora_module_count(m) == 2 * layers, "regex adapted %d modules", hft_lora_module_count(m));
    CHECK(hft_paramset_find(hft_model_params(m), "model.layers.0.mlp.up_proj.lora_A.weight"),
          "up_proj not adapted");
    CHECK(hft_lora_attach(m2, "{}", "t", 1) == HFT_OK, "%s", hft_error_message()); /* llama: q_proj, v_proj */
    CHECK(hft_lora_module_count(m2) == 2 * layers, "defaults adapted %d modules", hft_lora_module_count(m2));
    CHECK(hft_paramset_find(hft_model_params(m2), "model.layers.0.self_attn.v_proj.lora_B.weight"),
          "v_proj not adapted");
out:
    hft_model_free(m), hft_model_free(m2);
}

/* Settings hft cannot honour fail with the key named, and leave the model as it was. */
TEST(bad_settings_are_refused) {
    hft_model *m = load_base("tests/fixtures/models/llama_gqa4");
    if (!m) return;
    int64_t before = count_trainable(m);
    struct {
        const char *json, *needle;
        hft_status st;
    } cases[] = {
        {"{\"rank\": 8}", "unknown LoRA setting 'rank'", HFT_EFORMAT},
        {"{\"use_dora\": true}", "'use_dora' is not supported", HFT_EUNSUPPORTED},
        {"{\"r\": 0}", "'r': expected a positive integer", HFT_EFORMAT},
        {"{\"bias\": \"some\"}", "'bias': expected", HFT_EFORMAT},
        {"{\"lora_dropout\": 1.5}", "'lora_dropout'", HFT_EFORMAT},
        {"{\"target_modules\": [\"qproj\"]}", "matches no linear module", HFT_EFORMAT},
        {"{\"target_modules\": [\"embed_tokens\"]}", "embeddings", HFT_EFORMAT},
        {"{\"modules_to_save\": [\"lm_hed\"]}", "'modules_to_save': 'lm_hed'", HFT_EFORMAT},
        {"{\"target_modules\": \"(?=q).*\"}", "not supported", HFT_EUNSUPPORTED},
        {"{\"init_lora_weights\": \"pissa\"}", "'init_lora_weights'", HFT_EUNSUPPORTED},
        {"{\"layers_pattern\": \"lay.rs\"}", "'layers_pattern'", HFT_EUNSUPPORTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hft_status st = hft_lora_attach(m, cases[i].json, "recipe.yaml lora", 1);
        CHECK(st == cases[i].st && strstr(hft_error_message(), cases[i].needle) &&
                  strstr(hft_error_message(), "recipe.yaml lora"),
              "%s: status %d, message: %s", cases[i].json, (int)st, hft_error_message());
        CHECK(!hft_model_has_adapter(m) && count_trainable(m) == before, "%s changed the model",
              cases[i].json);
    }
    hft_model_free(m);
}

/* layers_to_transform with an explicit layers_pattern, and exclude_modules. */
TEST(layer_selection) {
    hft_model *m = load_base("tests/fixtures/models/llama_gqa4");
    if (!m) return;
    CHECK(hft_lora_attach(
              m,
              "{\"target_modules\": [\"q_proj\", \"k_proj\", \"v_proj\"], \"layers_to_transform\": 0, "
              "\"layers_pattern\": \"layers\", \"exclude_modules\": [\"k_proj\"]}",
              "t", 1) == HFT_OK,
          "%s", hft_error_message());
    CHECK(hft_lora_module_count(m) == 2, "%d modules adapted", hft_lora_module_count(m));
    hft_paramset *ps = hft_model_params(m);
    CHECK(hft_paramset_find(ps, "model.layers.0.self_attn.q_proj.lora_A.weight") &&
              !hft_paramset_find(ps, "model.layers.1.self_attn.q_proj.lora_A.weight") &&
              !hft_paramset_find(ps, "model.layers.0.self_attn.k_proj.lora_A.weight"),
          "wrong modules adapted");
    hft_model_free(m);
}

/* An adapter written, read back by a fresh model and resumed gives the same weights. */
TEST(save_load_round_trip) {
    const char *base = "tests/fixtures/models/gpt2";
    hft_model *m = load_base(base), *m2 = load_base(base);
    if (!m || !m2) goto out;
    CHECK(hft_lora_attach(m,
                          "{\"r\": 2, \"target_modules\": \"all-linear\", \"bias\": \"lora_only\", "
                          "\"init_lora_weights\": false}",
                          "t", 3) == HFT_OK,
          "%s", hft_error_message());
    char *dir = path2(tmp_root, "round_trip");
    CHECK(hft_lora_save(m, dir) == HFT_OK, "%s", hft_error_message());
    CHECK(hft_lora_load(m2, dir) == HFT_OK, "%s", hft_error_message());
    hft_paramset *p1 = hft_model_params(m), *p2 = hft_model_params(m2);
    CHECK(hft_paramset_count(p1) == hft_paramset_count(p2), "parameter counts differ");
    for (int i = 0; i < hft_paramset_count(p1) && i < hft_paramset_count(p2); i++) {
        hft_param *a = hft_paramset_get(p1, i), *b = hft_paramset_get(p2, i);
        CHECK(strcmp(a->name, b->name) == 0 && a->tags == b->tags &&
                  memcmp(hft_tensor_data(a->value), hft_tensor_data(b->value), hft_tensor_nbytes(a->value)) ==
                      0,
              "%s differs after the round trip", a->name);
    }
    char fa[33], fb[33];
    hft_model_fingerprint(m, fa), hft_model_fingerprint(m2, fb);
    CHECK(strcmp(fa, fb) == 0, "fingerprints differ");
    /* the configuration written names the modules all-linear chose, as PEFT does */
    char *cfgp = path2(dir, "adapter_config.json"), *text = hft_read_text(cfgp, NULL);
    CHECK(text && strstr(text, "transformer.h.0.mlp.c_fc") && !strstr(text, "all-linear"), "%s",
          text ? text : "");
    free(cfgp), free(text), free(dir);
out:
    hft_model_free(m), hft_model_free(m2);
}

/* The base digest sees a changed weight; the fingerprint alone does not. */
TEST(base_digest) {
    const char *base = "tests/fixtures/models/gpt2";
    hft_model *m = load_base(base);
    if (!m) return;
    char d1[33], d2[33], f1[33], f2[33];
    hft_model_weights_digest(m, d1), hft_model_fingerprint(m, f1);
    hft_param *p = hft_paramset_get(hft_model_params(m), 0);
    ((float *)hft_tensor_data(p->value))[0] += 1.0f;
    hft_model_weights_digest(m, d2), hft_model_fingerprint(m, f2);
    CHECK(strcmp(d1, d2) != 0 && strcmp(f1, f2) == 0, "digest %s / %s", d1, d2);
    hft_model_free(m);
}

static void rm_rf(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv) {
    snprintf(tmp_root, sizeof tmp_root, "/tmp/hft_test_lora_XXXXXX");
    if (!mkdtemp(tmp_root)) return 1;
    static const test_case cases[] = {
        {"gpt2_lora", gpt2_lora},
        {"gpt2_all_linear", gpt2_all_linear},
        {"llama_lora", llama_lora},
        {"llama_tied_lora", llama_tied_lora},
        {"qwen2_lora", qwen2_lora},
        {"bert_seqcls_lora", bert_seqcls_lora},
        {"bert_mlm_lora", bert_mlm_lora},
        {"fresh_adapter_is_the_base_and_seeded", fresh_adapter_is_the_base_and_seeded},
        {"regex_targets_and_defaults", regex_targets_and_defaults},
        {"bad_settings_are_refused", bad_settings_are_refused},
        {"layer_selection", layer_selection},
        {"save_load_round_trip", save_load_round_trip},
        {"base_digest", base_digest},
    };
    int rc = test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    /* HFT_TEST_KEEP=1 keeps what hft wrote, for make_lora_fixtures.py --check-adapter / --check-merged */
    if (getenv("HFT_TEST_KEEP"))
        printf("kept %s\n", tmp_root);
    else
        rm_rf(tmp_root);
    return rc;
}
