/* Model parity runner (see model_parity.h). */
#include "tests/model_parity.h"

#include <cjson/cJSON.h>
#include <glob.h>
#include <sys/stat.h>

#include "tests/test_util.h"

static char *fmt(const char *a, const char *b) {
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

char *model_parity_model_dir(const char *case_name) {
    char *dir = fmt("tests/fixtures/models", case_name);
    char *config = fmt(dir, "config.json");
    bool own = exists(config);
    free(config);
    if (own) return dir;
    char *source = fmt(dir, "source.json");
    free(dir);
    char *text = hft_read_text(source, NULL);
    free(source);
    if (!text) return NULL;
    cJSON *j = cJSON_Parse(text);
    free(text);
    const cJSON *rel = cJSON_GetObjectItemCaseSensitive(j, "model_dir"); /* relative to site-packages */
    if (!cJSON_IsString(rel)) rel = cJSON_GetObjectItemCaseSensitive(j, "path");
    char *found = NULL;
    if (cJSON_IsString(rel)) {
        /* site-packages of the reference environment, or of any Python on the machine */
        const char *roots[] = {"tests/fixtures/real", getenv("HFT_SITE_PACKAGES"),
                               "/root/hft-ref/lib/python3*/site-packages",
                               "/usr/local/lib/python3*/site-packages", "/usr/lib/python3/dist-packages"};
        for (size_t r = 0; r < sizeof roots / sizeof roots[0] && !found; r++) {
            if (!roots[r]) continue;
            glob_t g;
            if (glob(roots[r], 0, NULL, &g) == 0) {
                for (size_t i = 0; i < g.gl_pathc && !found; i++) {
                    char *cand = fmt(g.gl_pathv[i], rel->valuestring);
                    char *cfg = fmt(cand, "config.json");
                    if (exists(cfg))
                        found = cand;
                    else
                        free(cand);
                    free(cfg);
                }
                globfree(&g);
            }
        }
    }
    cJSON_Delete(j);
    return found;
}

/* A tensor of the batch file as `dtype`, or NULL when absent. */
hft_tensor *model_parity_fixture(const hft_safetensors *f, const char *name, hft_dtype dtype) {
    if (!hft_safetensors_find(f, name)) return NULL;
    hft_tensor *t = NULL;
    if (hft_safetensors_load(f, name, dtype, false, &t) != HFT_OK) {
        test_failures++;
        fprintf(stderr, "[%s] fixture tensor %s: %s\n", test_current, name, hft_error_message());
    }
    return t;
}

/* atol is rtol x max|reference|, but at least atol_floor (absolute). Frees `want`. */
int model_parity_compare(const char *case_name, const char *what, const hft_tensor *got, hft_tensor *want,
                         double rtol, double atol_floor) {
    char label[320];
    snprintf(label, sizeof label, "%s: %s", case_name, what);
    if (!got || !want) {
        test_failures++;
        fprintf(stderr, "[%s] %s: %s\n", test_current, label, got ? "no reference" : "not computed");
        hft_tensor_free(want);
        return 0;
    }
    if (hft_tensor_numel(got) != hft_tensor_numel(want)) {
        char a[128], b[128];
        test_failures++;
        fprintf(stderr, "[%s] %s: shape %s, reference %s\n", test_current, label,
                hft_tensor_describe(got, a, sizeof a), hft_tensor_describe(want, b, sizeof b));
        hft_tensor_free(want);
        return 0;
    }
    long n = (long)hft_tensor_numel(want);
    double *w = malloc(sizeof(double) * (size_t)(n ? n : 1));
    hft_tensor_to_f64(want, w);
    double ref_max = 0;
    for (long i = 0; i < n; i++) ref_max = fmax(ref_max, fabs(w[i]));
    double atol = fmax(rtol * ref_max, atol_floor);
    int ok;
    if (ref_max > 0) {
        ok = test_tensor_close(label, got, w, rtol, atol / ref_max);
    } else { /* an all-zero reference: within atol of zero */
        double *g = malloc(sizeof(double) * (size_t)(n ? n : 1)), worst = 0;
        hft_tensor_to_f64(got, g);
        for (long i = 0; i < n; i++) worst = fmax(worst, fabs(g[i]));
        free(g);
        ok = worst <= atol;
        if (!ok) {
            test_failures++;
            fprintf(stderr, "[%s] %s: reference all zeros, got max |value| %g > atol %g\n", test_current,
                    label, worst, atol);
        }
    }
    free(w);
    hft_tensor_free(want);
    return ok;
}

int model_parity_case(const char *case_name, double rtol, const char *save_to) {
    char *case_dir = fmt("tests/fixtures/models", case_name);
    char *batch_path = fmt(case_dir, "batch.safetensors");
    char *model_dir = model_parity_model_dir(case_name);
    int result = 1;
    hft_safetensors *bf = NULL;
    hft_model *m = NULL;
    hft_ctx *ctx = NULL;
    if (!exists(batch_path) || !model_dir) {
        printf("skip %s: %s not present\n", case_name, model_dir ? batch_path : "the model folder");
        free(case_dir), free(batch_path), free(model_dir);
        return -1;
    }
    if (hft_safetensors_open(batch_path, &bf) != HFT_OK || hft_model_load(model_dir, NULL, &m) != HFT_OK) {
        test_failures++;
        fprintf(stderr, "[%s] %s: %s\n", test_current, case_name, hft_error_message());
        result = 0;
        goto done;
    }
    ctx = hft_ctx_new(NULL);
    hft_tensor *ids = model_parity_fixture(bf, "input_ids", HFT_I64),
               *mask = model_parity_fixture(bf, "attention_mask", HFT_I64);
    hft_tensor *types = model_parity_fixture(bf, "token_type_ids", HFT_I64);
    const hft_st_entry *le = hft_safetensors_find(bf, "labels");
    hft_tensor *labels =
        le ? model_parity_fixture(bf, "labels", le->dtype == HFT_F32 ? HFT_F32 : HFT_I64) : NULL;
    hft_batch batch = {.input_ids = ids, .attention_mask = mask, .token_type_ids = types, .labels = labels};
    /* train mode, as the fixtures ran (every dropout 0 in their config); a real model from a package keeps
     * its own config (MiniLM says 0.1), so it runs in eval mode, which is the same math */
    bool own_model = strcmp(model_dir, case_dir) == 0;
    hft_tensor *h = hft_model_hidden(ctx, m, &batch, own_model);
    hft_tensor *root = NULL, *g = NULL, *gp = NULL; /* g, gp: BertModel's gradient seeds */
    double seed = 1.0;
    if (hft_model_task(m) == HFT_TASK_BASE) {
        g = model_parity_fixture(bf, "grad_seed", HFT_F32),
        gp = model_parity_fixture(bf, "grad_seed_pooler", HFT_F32);
        hft_tensor *pooled = hft_model_pooler(ctx, m, h);
        result &= model_parity_compare(case_name, "last_hidden_state", h,
                                       model_parity_fixture(bf, "logits", HFT_F32), rtol, 0);
        result &= model_parity_compare(case_name, "pooler_output", pooled,
                                       model_parity_fixture(bf, "pooler_output", HFT_F32), rtol, 0);
        if (g && gp)
            root = hft_add(ctx, hft_sum(ctx, hft_mul(ctx, h, g), 0, NULL, false),
                           hft_sum(ctx, hft_mul(ctx, pooled, gp), 0, NULL, false));
    } else {
        int64_t count = 0;
        hft_tensor *logits = hft_model_head_logits(ctx, m, h, &batch);
        hft_tensor *loss = hft_model_head_loss(ctx, m, h, &batch, own_model, &count);
        result &= model_parity_compare(case_name, "logits", logits,
                                       model_parity_fixture(bf, "logits", HFT_F32), rtol, 0);
        hft_tensor *want_count = model_parity_fixture(bf, "loss_count", HFT_I64);
        int64_t wc = want_count ? *(int64_t *)hft_tensor_data(want_count) : -1;
        CHECK(count == wc, "%s: %lld tokens in the loss, transformers %lld", case_name, (long long)count,
              (long long)wc);
        seed = 1.0 / (double)(count ? count : 1);
        hft_tensor *mean = hft_scale(ctx, loss, seed);
        result &=
            model_parity_compare(case_name, "loss", mean, model_parity_fixture(bf, "loss", HFT_F32), rtol, 0);
        root = loss;
        hft_tensor_free(want_count);
    }
    if (hft_ctx_status(ctx) != HFT_OK || !root) {
        test_failures++;
        fprintf(stderr, "[%s] %s: forward: %s\n", test_current, case_name, hft_ctx_error(ctx));
        result = 0;
        goto done;
    }
    hft_tensor *seed_t = hft_tensor_from_data(HFT_F32, 0, NULL, &(float){(float)seed});
    if (hft_backward(ctx, root, seed_t) != HFT_OK) {
        test_failures++;
        fprintf(stderr, "[%s] %s: backward: %s\n", test_current, case_name, hft_ctx_error(ctx));
        result = 0;
    }
    hft_tensor_free(seed_t);
    hft_paramset *ps = hft_model_params(m);
    hft_paramset_materialize_grads(ps);
    /* A gradient that is zero in exact arithmetic is rounding noise in both (softmax ignores a shift that is
     * the same for every key, so BERT's key bias gets none): such tensors are compared with an atol scaled by
     * the largest reference gradient of the model, 1e-3 x rtol x that, rather than by their own noise. */
    double grad_max = 0;
    for (int k = 0; k < hft_safetensors_count(bf); k++) {
        const char *n = hft_safetensors_entry(bf, k)->name;
        hft_tensor *ref = strncmp(n, "grad/", 5) == 0 ? model_parity_fixture(bf, n, HFT_F32) : NULL;
        long cnt = ref ? (long)hft_tensor_numel(ref) : 0;
        for (long i = 0; i < cnt; i++)
            grad_max = fmax(grad_max, fabs((double)((float *)hft_tensor_data(ref))[i]));
        hft_tensor_free(ref);
    }
    int compared = 0;
    for (int i = 0; i < hft_paramset_count(ps) && result >= 0; i++) {
        hft_param *p = hft_paramset_get(ps, i);
        char name[300];
        snprintf(name, sizeof name, "grad/%s", p->name);
        hft_tensor *want = model_parity_fixture(bf, name, HFT_F32);
        if (!want) continue; /* the real-model case stores a few */
        result &= model_parity_compare(case_name, name, p->grad, want, rtol, 1e-3 * rtol * grad_max);
        compared++;
    }
    for (int k = 0; k < hft_safetensors_count(bf); k++) { /* every reference gradient has a parameter here */
        const char *n = hft_safetensors_entry(bf, k)->name;
        if (strncmp(n, "grad/", 5) == 0)
            CHECK(hft_paramset_find(ps, n + 5), "%s: no parameter %s", case_name, n + 5);
    }
    CHECK(compared > 0, "%s: no parameter gradient compared", case_name);
    if (save_to && hft_model_save(m, save_to) != HFT_OK) {
        test_failures++;
        fprintf(stderr, "[%s] %s: save: %s\n", test_current, case_name, hft_error_message());
        result = 0;
    }
    hft_tensor_free(ids), hft_tensor_free(mask), hft_tensor_free(types), hft_tensor_free(labels);
    hft_tensor_free(g), hft_tensor_free(gp);
done:
    if (result == 1)
        printf("parity %s: logits, loss and gradients match transformers (rtol %g)\n", case_name, rtol);
    hft_ctx_free(ctx);
    hft_model_free(m);
    hft_safetensors_close(bf);
    free(case_dir), free(batch_path), free(model_dir);
    return result;
}
