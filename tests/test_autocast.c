/* Autocast against torch.autocast("cpu"): linear, matmul, LoRA's linear, attention and the classifier fused
 * with cross-entropy, forward and backward in bf16 and f16 (tests/fixtures/ops/autocast.safetensors, made by
 * make_autocast_fixtures.py). torch rounds each low-precision op's output and the gradients between ops to
 * the dtype; hft keeps them in f32, so the two differ by a few roundings: the tolerance is 2 epsilons of
 * the dtype (relative to each tensor's largest value), for every output and gradient. Also: the weight
 * cache converts once per optimizer step, and autocast off is plain f32. */
#include <cjson/cJSON.h>

#include "nn/nn.h"
#include "tests/test_util.h"

#define FIXTURE "tests/fixtures/ops/autocast.safetensors"

static hft_safetensors *fx;

static hft_tensor *get(const char *tag, const char *c, const char *name) {
    char key[128];
    snprintf(key, sizeof key, "%s/%s/%s", tag, c, name);
    hft_tensor *t = NULL;
    if (hft_safetensors_load(fx, key, HFT_F32, false, &t) != HFT_OK)
        CHECK(false, "%s: %s", key, hft_error_message());
    return t;
}

static double eps_of(const char *tag) {
    cJSON *e = cJSON_Parse(hft_safetensors_metadata(fx, "eps"));
    double v = cJSON_GetObjectItem(e, tag)->valuedouble;
    cJSON_Delete(e);
    return v;
}

/* got vs torch's within 2 eps of the reference's scale; prints the error in epsilons. */
static void close_to(const char *tag, const char *c, const char *name, const hft_tensor *got, double eps) {
    hft_tensor *want = get(tag, c, name);
    if (!got || !want) {
        CHECK(false, "%s/%s/%s: missing", tag, c, name);
        hft_tensor_free(want);
        return;
    }
    int64_t n = hft_tensor_numel(want);
    CHECK(hft_tensor_numel(got) == n, "%s/%s/%s: %lld values, torch %lld", tag, c, name,
          (long long)hft_tensor_numel(got), (long long)n);
    double *g = malloc(sizeof *g * (size_t)n), *w = malloc(sizeof *w * (size_t)n), scale = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) {
        g[i] = ((const float *)hft_tensor_data(got))[i];
        w[i] = ((const float *)hft_tensor_data(want))[i];
        if (fabs(w[i]) > scale) scale = fabs(w[i]);
    }
    for (int64_t i = 0; i < n; i++)
        if (fabs(g[i] - w[i]) > worst) worst = fabs(g[i] - w[i]);
    printf("  %s %-9s %-4s max |hft - torch| = %.2f eps of max |torch|\n", tag, c, name,
           scale > 0 ? worst / (eps * scale) : 0);
    char what[96];
    snprintf(what, sizeof what, "%s/%s/%s", tag, c, name);
    CHECK(test_close(what, g, w, (long)n, 0, 2 * eps), "%s", what);
    free(g), free(w);
    hft_tensor_free(want);
}

static hft_tensor *leaf(hft_tensor *t) {
    hft_tensor_set_requires_grad(t, true);
    return t;
}

static void linear_case(const char *tag, hft_dtype dt) {
    double eps = eps_of(tag);
    hft_tensor *x = leaf(get(tag, "linear", "x")), *gy = get(tag, "linear", "gy");
    hft_paramset *ps = hft_paramset_new();
    hft_paramset_add(ps, "w", get(tag, "linear", "w"), 0);
    hft_paramset_add(ps, "b", get(tag, "linear", "b"), 0);
    hft_paramset_finalize(ps, 0);
    hft_tensor *w = hft_paramset_get(ps, 0)->value, *b = hft_paramset_get(ps, 1)->value;
    hft_ctx *ctx = hft_ctx_new(NULL);
    CHECK_OK(hft_set_autocast(ctx, dt), NULL);
    hft_tensor *y = hft_linear(ctx, x, w, b);
    CHECK_OK(hft_backward(ctx, y, gy), ctx);
    close_to(tag, "linear", "y", y, eps);
    close_to(tag, "linear", "dx", hft_tensor_grad(x), eps);
    close_to(tag, "linear", "dw", hft_paramset_get(ps, 0)->grad, eps);
    close_to(tag, "linear", "db", hft_paramset_get(ps, 1)->grad, eps);
    /* autocast really engaged: the f32 result differs */
    hft_ctx_reset(ctx);
    CHECK_OK(hft_set_autocast(ctx, HFT_F32), NULL);
    hft_tensor *y32 = hft_linear(ctx, x, w, b);
    hft_set_autocast(ctx, dt);
    hft_tensor *ylow = hft_linear(ctx, x, w, b);
    CHECK(y32 && ylow && memcmp(hft_tensor_data(y32), hft_tensor_data(ylow), hft_tensor_nbytes(y32)) != 0,
          "autocast changes the result");
    /* and it is what makes hft agree with torch: closer (RMS) than hft's f32 result is */
    hft_tensor *want = get(tag, "linear", "y");
    double e_low = 0, e_32 = 0;
    for (int64_t i = 0; want && y32 && ylow && i < hft_tensor_numel(want); i++) {
        double t = ((float *)hft_tensor_data(want))[i];
        e_low += pow(((float *)hft_tensor_data(ylow))[i] - t, 2);
        e_32 += pow(((float *)hft_tensor_data(y32))[i] - t, 2);
    }
    CHECK(e_low < e_32, "%s: the autocast result is closer to torch's (rms %g) than f32's (%g)", tag,
          sqrt(e_low), sqrt(e_32));
    printf("  %s linear y: rms |hft - torch| autocast %.3g, f32 %.3g\n", tag, sqrt(e_low), sqrt(e_32));
    hft_tensor_free(want);
    hft_ctx_free(ctx);
    hft_tensor_free(x), hft_tensor_free(gy);
    hft_paramset_free(ps);
}

static void lora_case(const char *tag, hft_dtype dt) {
    double eps = eps_of(tag);
    hft_tensor *x = leaf(get(tag, "lora", "x")), *gy = get(tag, "lora", "gy");
    hft_paramset *ps = hft_paramset_new();
    hft_paramset_add(ps, "w", get(tag, "lora", "w"), HFT_PARAM_FROZEN);
    hft_paramset_add(ps, "b", get(tag, "lora", "b"), HFT_PARAM_FROZEN);
    hft_paramset_add(ps, "a", get(tag, "lora", "a"), 0);
    hft_paramset_add(ps, "B", get(tag, "lora", "B"), 0);
    hft_paramset_finalize(ps, 0);
    hft_ctx *ctx = hft_ctx_new(NULL);
    CHECK_OK(hft_set_autocast(ctx, dt), NULL);
    hft_tensor *y = hft_lora_linear(ctx, x, hft_paramset_get(ps, 0)->value, hft_paramset_get(ps, 1)->value, x,
                                    hft_paramset_get(ps, 2)->value, hft_paramset_get(ps, 3)->value, 2.0);
    CHECK_OK(hft_backward(ctx, y, gy), ctx);
    close_to(tag, "lora", "y", y, eps);
    close_to(tag, "lora", "dx", hft_tensor_grad(x), eps);
    close_to(tag, "lora", "da", hft_paramset_get(ps, 2)->grad, eps);
    close_to(tag, "lora", "dB", hft_paramset_get(ps, 3)->grad, eps);
    hft_ctx_free(ctx);
    hft_tensor_free(x), hft_tensor_free(gy);
    hft_paramset_free(ps);
}

static void matmul_case(const char *tag, hft_dtype dt) {
    double eps = eps_of(tag);
    hft_tensor *a = leaf(get(tag, "matmul", "a")), *b = leaf(get(tag, "matmul", "b")),
               *gy = get(tag, "matmul", "gy");
    hft_ctx *ctx = hft_ctx_new(NULL);
    CHECK_OK(hft_set_autocast(ctx, dt), NULL);
    hft_tensor *y = hft_matmul(ctx, a, b);
    CHECK_OK(hft_backward(ctx, y, gy), ctx);
    close_to(tag, "matmul", "y", y, eps);
    close_to(tag, "matmul", "da", hft_tensor_grad(a), eps);
    close_to(tag, "matmul", "db", hft_tensor_grad(b), eps);
    hft_ctx_free(ctx);
    hft_tensor_free(a), hft_tensor_free(b), hft_tensor_free(gy);
}

static void attention_case(const char *tag, hft_dtype dt) {
    double eps = eps_of(tag);
    hft_tensor *q = leaf(get(tag, "attention", "q")), *k = leaf(get(tag, "attention", "k")),
               *v = leaf(get(tag, "attention", "v")), *gy = get(tag, "attention", "gy");
    hft_ctx *ctx = hft_ctx_new(NULL);
    CHECK_OK(hft_set_autocast(ctx, dt), NULL);
    hft_tensor *y = hft_attention(ctx, q, k, v, &(hft_attn_opts){.causal = true});
    CHECK_OK(hft_backward(ctx, y, gy), ctx);
    close_to(tag, "attention", "y", y, eps);
    close_to(tag, "attention", "dq", hft_tensor_grad(q), eps);
    close_to(tag, "attention", "dk", hft_tensor_grad(k), eps);
    close_to(tag, "attention", "dv", hft_tensor_grad(v), eps);
    hft_ctx_free(ctx);
    hft_tensor_free(q), hft_tensor_free(k), hft_tensor_free(v), hft_tensor_free(gy);
}

static void lce_case(const char *tag, hft_dtype dt) {
    double eps = eps_of(tag);
    hft_tensor *h = leaf(get(tag, "lce", "h")), *tf = get(tag, "lce", "t");
    hft_paramset *ps = hft_paramset_new();
    hft_paramset_add(ps, "w", get(tag, "lce", "w"), 0);
    hft_paramset_finalize(ps, 0);
    int64_t n = hft_tensor_numel(tf);
    hft_tensor *t = hft_tensor_new(HFT_I64, 1, (int64_t[]){n});
    for (int64_t i = 0; i < n; i++)
        ((int64_t *)hft_tensor_data(t))[i] = (int64_t)((float *)hft_tensor_data(tf))[i];
    hft_ctx *ctx = hft_ctx_new(NULL);
    CHECK_OK(hft_set_autocast(ctx, dt), NULL);
    int64_t count = 0;
    hft_tensor *loss =
        hft_linear_cross_entropy(ctx, h, hft_paramset_get(ps, 0)->value, NULL, t, HFT_XENT_DEFAULTS, &count);
    CHECK_OK(hft_backward(ctx, loss, NULL), ctx);
    close_to(tag, "lce", "loss", loss, eps);
    close_to(tag, "lce", "dh", hft_tensor_grad(h), eps);
    close_to(tag, "lce", "dw", hft_paramset_get(ps, 0)->grad, eps);
    hft_ctx_free(ctx);
    hft_tensor_free(h), hft_tensor_free(tf), hft_tensor_free(t);
    hft_paramset_free(ps);
}

TEST(bf16_matches_torch_autocast) {
    linear_case("bf16", HFT_BF16);
    lora_case("bf16", HFT_BF16);
    matmul_case("bf16", HFT_BF16);
    attention_case("bf16", HFT_BF16);
    lce_case("bf16", HFT_BF16);
}

TEST(f16_matches_torch_autocast) {
    linear_case("f16", HFT_F16);
    lora_case("f16", HFT_F16);
    matmul_case("f16", HFT_F16);
    attention_case("f16", HFT_F16);
    lce_case("f16", HFT_F16);
}

/* The cached bf16 copy of a weight is made once per optimizer step: a second micro-batch reuses it (no
 * heap allocation), an update (version bump) refreshes it. */
TEST(weights_convert_once_per_step) {
    test_rng rng = {3};
    hft_paramset *ps = hft_paramset_new();
    hft_paramset_add(ps, "w", test_random(&rng, HFT_F32, 2, (int64_t[]){8, 16}, -1, 1), 0);
    hft_paramset_finalize(ps, 0);
    hft_tensor *w = hft_paramset_get(ps, 0)->value;
    hft_tensor *x = test_random(&rng, HFT_F32, 2, (int64_t[]){4, 16}, -1, 1);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_set_autocast(ctx, HFT_BF16);
    hft_tensor *y1 = hft_linear(ctx, x, w, NULL);
    float first = y1 ? ((float *)hft_tensor_data(y1))[0] : 0;
    hft_ctx_reset(ctx);
    hft_memory_stats before, after;
    hft_ctx_memory(ctx, &before);
    hft_tensor *y2 = hft_linear(ctx, x, w, NULL);
    hft_ctx_memory(ctx, &after);
    CHECK(y2 && ((float *)hft_tensor_data(y2))[0] == first, "same weights, same result");
    CHECK(after.heap_allocations == before.heap_allocations, "the second micro-batch allocates nothing (%zu)",
          after.heap_allocations - before.heap_allocations);
    ((float *)hft_tensor_data(w))[0] += 1.0f; /* what an optimizer step does, with its version bump */
    w->version++;
    hft_ctx_reset(ctx);
    hft_tensor *y3 = hft_linear(ctx, x, w, NULL);
    CHECK(y3 && ((float *)hft_tensor_data(y3))[0] != first, "an updated weight is converted again");
    hft_ctx_free(ctx);
    hft_tensor_free(x);
    hft_paramset_free(ps);
}

/* The one-pass rounding kernel equals a conversion to the dtype and back, bit for bit, on ordinary values,
 * ties, subnormals, overflow, infinities and NaN. */
TEST(rounding_kernel_equals_the_conversions) {
    enum { N = 40000 };
    float *x = malloc(sizeof *x * N), *y = malloc(sizeof *y * N);
    test_rng rng = {11};
    for (int i = 0; i < N; i++) x[i] = (float)test_uniform(&rng, -3, 3) * powf(2.0f, (float)(i % 60) - 30);
    const float special[] = {0.0f,  -0.0f,   1.0f + 1.0f / 256, 1.0f + 3.0f / 256, 65504.0f, 65520.0f, 1e-7f,
                             6e-8f, 3.4e38f, INFINITY,          -INFINITY,         NAN,      1e-40f};
    memcpy(x, special, sizeof special);
    const hft_kernels *k = hft_kernels_for(HFT_CPU);
    for (int d = 0; d < 2; d++) {
        hft_dtype low = d ? HFT_F16 : HFT_BF16;
        k->round_to(low, y, x, N);
        int bad = 0;
        for (int i = 0; i < N; i++) {
            float want = low == HFT_BF16 ? hft_bf16_to_f32(hft_f32_to_bf16(x[i]))
                                         : hft_f16_to_f32(hft_f32_to_f16(x[i]));
            bad += isnan(want) ? !isnan(y[i]) : memcmp(&want, &y[i], 4) != 0;
        }
        CHECK(bad == 0, "%s: %d of %d values round differently", hft_dtype_name(low), bad, N);
    }
    free(x), free(y);
}

int main(int argc, char **argv) {
    if (hft_runtime_init() != HFT_OK || hft_safetensors_open(FIXTURE, &fx) != HFT_OK) {
        fprintf(stderr, "%s: %s\n", FIXTURE, hft_error_message());
        return 1;
    }
    static const test_case cases[] = {
        {"bf16_matches_torch_autocast", bf16_matches_torch_autocast},
        {"f16_matches_torch_autocast", f16_matches_torch_autocast},
        {"weights_convert_once_per_step", weights_convert_once_per_step},
        {"rounding_kernel_equals_the_conversions", rounding_kernel_equals_the_conversions},
    };
    int rc = test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    hft_safetensors_close(fx);
    return rc;
}
