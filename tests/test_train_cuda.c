/* Training on a CUDA device: the tiny GPT-2 of test_trainer built twice from one seed, one copy moved to the
 * device (hft_model_to_device), both trained on the same fixed batches with AdamW and gradient clipping;
 * every step's loss and the final parameters compared. Then a LoRA adapter trained on the device, bf16
 * autocast on the device, a checkpoint saved from the device model loaded on the CPU, and greedy decoding
 * on the device giving the CPU's tokens. Runs on the GPU, and on the host emulator without one.
 *
 * Tolerances. The device computes what the CPU computes in f32 but sums in other orders (tiled GEMM, warp
 * reductions); each reordered sum of K terms moves by a few units of ε = 2^-24 times K at worst, about
 * √K·ε typically. One step's loss (a mean over ~100 tokens of a log-softmax over 257 logits, each behind
 * dot products of 24..96 terms) differs by ~1e-7 relative; training feeds the differences back (Adam
 * divides by √v, so a small gradient's relative error passes into its update undamped), so they grow
 * slowly with the step. The checks allow 2e-5 relative on the loss of every step and 1e-4 on ‖Δp‖/‖p‖ per
 * tensor after 50 steps: two orders above the ~1e-7 of one step, well below what a real bug (a wrong
 * mask, a skipped clip, a missing weight decay: 1e-3 and up) gives. bf16 autocast rounds GEMM inputs and
 * outputs to bf16 (ε = 2^-8); a reordered f32 sum can round one output to the neighbouring bf16 value, so
 * a few elements differ by one bf16 ulp: the loss is allowed 2^-8 relative over its 10 steps, and the
 * parameters 4·2^-8 (a gradient element off by an ulp or two passes that relative error into its Adam
 * update, and 10 updates move a parameter by about its own size). Seen on the emulator: fp32 loss 1.9e-7,
 * parameters 1.2e-6; LoRA 8.7e-8 and 8.6e-7; bf16 loss 6.6e-6, parameters 4.0e-3. GPT-2's key bias is
 * compared apart (see compare_qkv_bias). */
#include <sys/stat.h>
#include <unistd.h>

#include "nn/nn.h"
#include "optim/optim.h"
#include "tests/cuda_test_util.h"

static const hft_device gpu = {HFT_CUDA, 0}, cpu = {HFT_CPU, 0};

enum { B = 4, T = 32, N_BATCHES = 3 };

static const char gpt_config[] =
    "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"vocab_size\": 257, "
    "\"n_positions\": 64, \"n_embd\": 24, \"n_layer\": 2, \"n_head\": 2, \"resid_pdrop\": 0.1, "
    "\"embd_pdrop\": 0.1, \"attn_pdrop\": 0.1}";

#define LOSS_RTOL  2e-5
#define PARAM_RTOL 1e-4
#define BF16_RTOL  (1.0 / 256.0)

/* Fixed batches of byte tokens: row 3 padded after 24 tokens (mask 0, labels -100), and a few ignored
 * targets in the other rows. Host tensors: the model copies them to the context's device. */
typedef struct batches {
    hft_tensor *ids[N_BATCHES], *mask[N_BATCHES], *labels[N_BATCHES];
} batches;

static void make_batches(batches *bs) {
    test_rng r = {42};
    int64_t shape[2] = {B, T};
    for (int k = 0; k < N_BATCHES; k++) {
        bs->ids[k] = hft_tensor_new(HFT_I64, 2, shape);
        bs->mask[k] = hft_tensor_new(HFT_I64, 2, shape);
        bs->labels[k] = hft_tensor_new(HFT_I64, 2, shape);
        int64_t *ids = hft_tensor_data(bs->ids[k]), *mask = hft_tensor_data(bs->mask[k]),
                *lab = hft_tensor_data(bs->labels[k]);
        for (int i = 0; i < B * T; i++) {
            bool pad = i / T == 3 && i % T >= 24;
            ids[i] = pad ? 0 : (int64_t)test_uniform(&r, 0, 256);
            mask[i] = !pad;
            lab[i] = pad || i % 11 == 5 ? -100 : ids[i];
        }
    }
}

static void free_batches(batches *bs) {
    for (int k = 0; k < N_BATCHES; k++) {
        hft_tensor_free(bs->ids[k]);
        hft_tensor_free(bs->mask[k]);
        hft_tensor_free(bs->labels[k]);
    }
}

static hft_model *new_model(const char *lora) {
    hft_model *m = NULL;
    hft_load_options o = {.seed = 1234};
    CHECK(hft_model_from_config(gpt_config, "tiny gpt", &o, &m) == HFT_OK, "%s", hft_error_message());
    if (m && lora) CHECK(hft_lora_attach(m, lora, "lora", 7) == HFT_OK, "lora: %s", hft_error_message());
    return m;
}

/* n_steps of AdamW (weight decay 0.01, constant lr), clipping at 1.0, on the model's device; the mean
 * loss of every step into losses. */
static void train(hft_model *m, hft_device device, const batches *bs, int n_steps, hft_dtype autocast,
                  double lr, double *losses) {
    hft_ctx_options co = {.arena_bytes = (size_t)4 << 20, .device = device};
    hft_ctx *ctx = hft_ctx_new(&co);
    CHECK(ctx != NULL, "ctx: %s", hft_error_message());
    if (!ctx) return;
    hft_set_autocast(ctx, autocast);
    hft_paramset *ps = hft_model_params(m);
    hft_optim_config oc = hft_optim_defaults(HFT_OPTIM_ADAMW);
    oc.lr = lr;
    oc.weight_decay = 0.01;
    hft_optimizer *opt = NULL;
    CHECK(hft_optimizer_new(ps, &oc, 0, NULL, &opt) == HFT_OK, "optimizer: %s", hft_error_message());
    for (int s = 0; s < n_steps && opt; s++) {
        int k = s % N_BATCHES;
        hft_batch b = {.input_ids = bs->ids[k], .attention_mask = bs->mask[k], .labels = bs->labels[k]};
        hft_ctx_reset(ctx);
        hft_ctx_set_rng(ctx, 99, (uint32_t)s, 0, 0);
        hft_paramset_zero_grad(ps);
        int64_t count = 0;
        hft_tensor *sum = hft_model_loss(ctx, m, &b, true, &count);
        hft_tensor *loss = sum ? hft_scale(ctx, sum, 1.0 / (double)count) : NULL;
        CHECK(loss && hft_backward(ctx, loss, NULL) == HFT_OK, "step %d: %s", s, hft_ctx_error(ctx));
        if (!loss) break;
        double norm = 0;
        CHECK(hft_clip_grad_norm(ps, 1.0, &norm) == HFT_OK, "clip: %s", hft_error_message());
        CHECK(hft_optimizer_step(opt, 1.0) == HFT_OK, "step: %s", hft_error_message());
        CHECK(hft_tensor_to_f64(loss, &losses[s]) == HFT_OK, "loss: %s", hft_error_message());
    }
    hft_optimizer_free(opt);
    hft_ctx_free(ctx);
}

static double *values(const hft_tensor *t) {
    int64_t n = hft_tensor_numel(t);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    CHECK(hft_tensor_to_f64(t, v) == HFT_OK, "%s", hft_error_message());
    return v;
}

/* ‖Δ‖/‖p‖ over elements [lo, hi) of x against y. */
static double rel_diff(const double *x, const double *y, int64_t lo, int64_t hi, double *norm) {
    double d = 0, p = 0;
    for (int64_t j = lo; j < hi; j++) {
        d += (x[j] - y[j]) * (x[j] - y[j]);
        p += y[j] * y[j];
    }
    *norm = sqrt(p);
    return p > 0 ? sqrt(d / p) : sqrt(d);
}

/* GPT-2's c_attn bias is [q | k | v]. The key bias has a gradient of zero in exact arithmetic (it adds
 * q·b_k to every key's score of a query alike, and softmax ignores a shift), so what both runs compute for
 * it is rounding noise, which Adam's g/(√v + eps) turns into small updates of random sign: there the two
 * runs cannot agree, and the check is that both stayed at noise level (‖b_k‖ below 1e-3, against ~0.1 for
 * the query bias); the query and value thirds are compared as every other tensor. */
static double compare_qkv_bias(const char *what, const char *name, const double *x, const double *y,
                               int64_t n, double rtol) {
    double worst = 0, norm_q, norm_k, norm_x;
    double rq = rel_diff(x, y, 0, n / 3, &norm_q), rv = rel_diff(x, y, 2 * n / 3, n, &norm_q);
    rel_diff(x, y, n / 3, 2 * n / 3, &norm_k);
    rel_diff(y, x, n / 3, 2 * n / 3, &norm_x);
    worst = rq > rv ? rq : rv;
    CHECK(worst <= rtol, "%s: '%s' query/value bias ‖Δ‖/‖p‖ = %.3g > %.3g", what, name, worst, rtol);
    CHECK(norm_k < 1e-3 && norm_x < 1e-3,
          "%s: '%s' key bias grew past noise: ‖b_k‖ %.3g (CPU), %.3g (device)", what, name, norm_k, norm_x);
    return worst;
}

/* ‖Δ‖/‖p‖ of every parameter within rtol; 0 rtol: bit for bit. Returns the largest ratio seen. */
static double compare_params(const char *what, hft_model *got, hft_model *want, double rtol) {
    hft_paramset *pg = hft_model_params(got), *pw = hft_model_params(want);
    CHECK(hft_paramset_count(pg) == hft_paramset_count(pw), "%s: parameter counts differ", what);
    double worst = 0;
    for (int i = 0; i < hft_paramset_count(pw) && i < hft_paramset_count(pg); i++) {
        const hft_param *a = hft_paramset_get(pg, i), *b = hft_paramset_get(pw, i);
        int64_t n = hft_tensor_numel(b->value);
        double *x = values(a->value), *y = values(b->value), norm;
        double ratio = rel_diff(x, y, 0, n, &norm);
        if (rtol == 0) {
            CHECK(memcmp(x, y, sizeof(double) * (size_t)n) == 0,
                  "%s: '%s' differs (‖Δ‖/‖p‖ %.3g); expected bit for bit", what, b->name, ratio);
        } else if (strstr(b->name, "attn.c_attn.bias")) {
            ratio = compare_qkv_bias(what, b->name, x, y, n, rtol);
        } else {
            CHECK(ratio <= rtol, "%s: '%s' ‖Δ‖/‖p‖ = %.3g > %.3g", what, b->name, ratio, rtol);
        }
        if (ratio > worst) worst = ratio;
        free(x);
        free(y);
    }
    return worst;
}

static double compare_losses(const char *what, const double *got, const double *want, int n, double rtol) {
    double worst = 0;
    for (int s = 0; s < n; s++) {
        double rel = fabs(got[s] - want[s]) / fabs(want[s]);
        if (rel > worst) worst = rel;
        CHECK(rel <= rtol, "%s: step %d loss %.9g on the device, %.9g on the CPU (rel %.3g > %.3g)", what, s,
              got[s], want[s], rel, rtol);
    }
    return worst;
}

/* A CPU model and its twin on the device, trained the same way; losses and parameters compared. */
static void train_pair(const char *what, const char *lora, int n_steps, hft_dtype autocast, double lr,
                       double loss_rtol, double param_rtol, hft_model **dev_out) {
    batches bs;
    make_batches(&bs);
    hft_model *mc = new_model(lora), *md = new_model(lora);
    if (!mc || !md) return;
    CHECK(hft_model_to_device(md, gpu) == HFT_OK, "to_device: %s", hft_error_message());
    hft_paramset *pd = hft_model_params(md);
    for (int i = 0; i < hft_paramset_count(pd); i++)
        CHECK(hft_paramset_get(pd, i)->value->device.type == HFT_CUDA, "'%s' stayed on the CPU",
              hft_paramset_get(pd, i)->name);
    CHECK(!hft_paramset_grads(pd) || hft_paramset_grads(pd)->device.type == HFT_CUDA,
          "the flat gradient is not on the device");
    double *lc = calloc((size_t)n_steps, sizeof *lc), *ld = calloc((size_t)n_steps, sizeof *ld);
    train(mc, cpu, &bs, n_steps, autocast, lr, lc);
    train(md, gpu, &bs, n_steps, autocast, lr, ld);
    CHECK(ld[n_steps - 1] < ld[0] - 0.05, "%s: the device run did not learn (%.4f -> %.4f)", what, ld[0],
          ld[n_steps - 1]);
    double wl = compare_losses(what, ld, lc, n_steps, loss_rtol);
    double wp = compare_params(what, md, mc, param_rtol);
    printf("  %s: %d steps, loss %.5f -> %.5f; worst loss rel %.3g (tol %.3g), worst param ‖Δ‖/‖p‖ %.3g (tol "
           "%.3g)\n",
           what, n_steps, lc[0], lc[n_steps - 1], wl, loss_rtol, wp, param_rtol);
    free(lc);
    free(ld);
    hft_model_free(mc);
    if (dev_out)
        *dev_out = md;
    else
        hft_model_free(md);
    free_batches(&bs);
}

TEST(test_gpt2_adamw_50_steps) {
    hft_model *md = NULL;
    train_pair("fp32 adamw", NULL, 50, HFT_F32, 3e-3, LOSS_RTOL, PARAM_RTOL, &md);
    if (!md) return;
    /* a checkpoint written from the device is what loads on the CPU, bit for bit */
    char dir[] = "/tmp/hft_train_cuda_XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    CHECK(hft_model_save(md, dir) == HFT_OK, "save from the device: %s", hft_error_message());
    hft_model *back = NULL;
    CHECK(hft_model_load(dir, NULL, &back) == HFT_OK, "load on the CPU: %s", hft_error_message());
    if (back) compare_params("saved from the device, loaded on the CPU", back, md, 0);
    /* and loading into the device model, then moving it back, round-trips too */
    CHECK(hft_model_load_weights(md, dir) == HFT_OK, "load into the device model: %s", hft_error_message());
    CHECK(hft_model_to_device(md, cpu) == HFT_OK, "back to the CPU: %s", hft_error_message());
    CHECK(hft_paramset_get(hft_model_params(md), 0)->value->device.type == HFT_CPU, "still on the device");
    if (back) compare_params("device model moved back", md, back, 0);
    char path[96];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    rmdir(dir);
    hft_model_free(back);
    hft_model_free(md);
}

TEST(test_lora_on_device) {
    train_pair("lora", "{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"c_attn\", \"c_fc\"]}", 10,
               HFT_F32, 2e-2, LOSS_RTOL, PARAM_RTOL, NULL);
}

TEST(test_bf16_autocast_on_device) {
    train_pair("bf16 autocast", NULL, 10, HFT_BF16, 3e-3, BF16_RTOL, 4 * BF16_RTOL, NULL);
}

/* Decoding on the device: the KV cache there, greedy tokens as the CPU's (the tiny model's logits differ
 * by ~1e-7 relative, far below the gaps between its top two logits on these prompts). */
TEST(test_decode_on_device) {
    hft_model *mc = new_model(NULL), *md = new_model(NULL);
    if (!mc || !md) return;
    CHECK(hft_model_to_device(md, gpu) == HFT_OK, "%s", hft_error_message());
    hft_ctx *cc = hft_ctx_new(NULL), *cd = hft_ctx_new(&(hft_ctx_options){.device = gpu});
    hft_generate_options o = hft_generate_defaults();
    o.max_new_tokens = 12;
    const int64_t prompt[] = {84, 104, 101, 32};
    int64_t out_c[12], out_d[12], nc = 0, nd = 0;
    CHECK(hft_generate(cc, mc, prompt, 4, &o, out_c, &nc, NULL, NULL) == HFT_OK, "CPU: %s",
          hft_error_message());
    CHECK(hft_generate(cd, md, prompt, 4, &o, out_d, &nd, NULL, NULL) == HFT_OK, "device: %s",
          hft_error_message());
    CHECK(nc == 12 && nd == nc && memcmp(out_c, out_d, sizeof(int64_t) * (size_t)nc) == 0,
          "greedy tokens on the device differ from the CPU's (%lld and %lld tokens)", (long long)nd,
          (long long)nc);
    hft_ctx_free(cc), hft_ctx_free(cd);
    hft_model_free(mc), hft_model_free(md);
}

/* What is CPU-only for now says so on a device model instead of running wrong. */
TEST(test_cpu_only_features_refused) {
    hft_model *m = new_model("{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"c_attn\"]}");
    if (!m) return;
    CHECK(hft_model_to_device(m, gpu) == HFT_OK, "%s", hft_error_message());
    CHECK(hft_lora_merge(m) == HFT_EUNSUPPORTED && strstr(hft_error_message(), "CPU only"),
          "LoRA merge on the device: %s", hft_error_message());
    hft_model_free(m);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_gpt2_adamw_50_steps", test_gpt2_adamw_50_steps},
        {"test_lora_on_device", test_lora_on_device},
        {"test_bf16_autocast_on_device", test_bf16_autocast_on_device},
        {"test_decode_on_device", test_decode_on_device},
        {"test_cpu_only_features_refused", test_cpu_only_features_refused},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
