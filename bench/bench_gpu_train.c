/* Training on one GPU, as issue 12 measures it:
 *   - GPT-2 124M at T = 1024 in bf16 autocast (f32 masters), AdamW with clipping: tokens/s and MFU, FLOPs
 *     counted as llm.c and nanoGPT count them (6·N + 12·L·H·Q·T per token, N the parameters);
 *   - a LoRA fine-tune of a 1B-class Llama-shaped model (Llama 3.2 1B's shape, random weights; r 16 on
 *     q_proj and v_proj; f32 base), tokens/s and the device memory in use.
 * Skipped (exit 0, with the reason) without a GPU; refuses the host emulator, whose timings mean nothing.
 * The peak bf16 rate for MFU is the dense tensor-core figure of the GPU (H100/H200 SXM 989 TFLOP/s, A100
 * 312), or HFT_PEAK_TFLOPS. Usage: bench_gpu_train [gpt2_batch [llama_batch]]
 * HFT_BENCH_SMOKE=1 runs both on tiny shapes, the emulator allowed: a check of the code path, not a figure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_gpt2.h"
#include "bench/bench_util.h"

static const hft_kernels *gk;
static const hft_device gpu = {HFT_CUDA, 0};
static bool smoke; /* HFT_BENCH_SMOKE: tiny shapes */

typedef struct run {
    hft_model *model;
    hft_optimizer *opt;
    hft_ctx *ctx;
    hft_batch batch;
} run;

static void run_free(run *r) {
    hft_tensor_free(r->batch.input_ids);
    hft_ctx_free(r->ctx);
    hft_optimizer_free(r->opt);
    hft_model_free(r->model);
}

static bool fail(const char *what) {
    printf("FAIL: %s: %s\n", what, hft_error_message());
    return false;
}

/* The model on the GPU, an AdamW over its trainable parameters, a bf16 context and a batch of ids spread
 * over the vocabulary. */
static bool run_new(run *r, const char *config, const char *lora, int batch, int seq, int vocab) {
    memset(r, 0, sizeof *r);
    if (hft_model_from_config(config, "bench", NULL, &r->model) != HFT_OK) return fail("model");
    if (lora && hft_lora_attach(r->model, lora, "bench", 1) != HFT_OK) return fail("LoRA");
    if (hft_model_to_device(r->model, gpu) != HFT_OK) return fail("model to the GPU");
    hft_optim_config oc = hft_optim_defaults(HFT_OPTIM_ADAMW);
    oc.lr = 1e-4;
    if (hft_optimizer_new(hft_model_params(r->model), &oc, 0, NULL, &r->opt) != HFT_OK)
        return fail("optimizer");
    r->ctx = hft_ctx_new(&(hft_ctx_options){.device = gpu});
    if (!r->ctx || hft_set_autocast(r->ctx, HFT_BF16) != HFT_OK) return fail("context");
    int64_t *ids = malloc(sizeof *ids * (size_t)batch * (size_t)seq);
    for (int64_t i = 0; i < (int64_t)batch * seq; i++) ids[i] = (i * 7919) % vocab;
    r->batch.input_ids = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){batch, seq}, ids);
    r->batch.labels = r->batch.input_ids;
    free(ids);
    return r->batch.input_ids != NULL;
}

static void step(void *arg) {
    run *r = arg;
    bench_train_step(r->ctx, r->model, r->opt, &r->batch);
    gk->dev->synchronize();
}

static double peak_tflops(const char *desc) {
    const char *env = getenv("HFT_PEAK_TFLOPS");
    if (env && atof(env) > 0) return atof(env);
    if (strstr(desc, "H100") || strstr(desc, "H200") || strstr(desc, "H800")) return 989.4;
    if (strstr(desc, "A100") || strstr(desc, "A800")) return 312.0;
    return 0;
}

static double used_gib(void) {
    size_t free_b = 0, total_b = 0;
    if (gk->dev->mem_info(&free_b, &total_b) != HFT_OK) return -1;
    return (double)(total_b - free_b) / (1u << 30);
}

static void bench_gpt2_124m(int batch, const char *desc) {
    const int seq = smoke ? 32 : 1024, layers = smoke ? 2 : 12, heads = smoke ? 2 : 12,
              dim = smoke ? 64 : 768;
    run r;
    const char *config = smoke ? "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", "
                                 "\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 64, \"n_positions\": 64, "
                                 "\"vocab_size\": 300}"
                               : "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}";
    if (!run_new(&r, config, NULL, batch, seq, smoke ? 300 : 50257)) {
        run_free(&r);
        return;
    }
    hft_paramset *ps = hft_model_params(r.model);
    double n = (double)hft_paramset_trainable_numel(ps);
    double s = bench_median(step, &r, 2, 8);
    double tokens = (double)batch * seq;
    double flop_per_token = 6.0 * n + 12.0 * layers * heads * (dim / heads) * seq;
    double peak = peak_tflops(desc);
    printf("  GPT-2 %s, B %d x T %d, bf16 autocast, AdamW: %.1f ms/step, %.0f tokens/s",
           smoke ? "tiny" : "124M", batch, seq, s * 1e3, tokens / s);
    if (peak > 0)
        printf(", MFU %.1f %% of %.0f TFLOP/s", 100.0 * flop_per_token * tokens / s / (peak * 1e12), peak);
    printf("; device memory in use %.1f GiB\n", used_gib());
    printf("  (llm.c on an H100: about 460K tokens/s per GPU in its 8xH100 GPT-2 124M run; target >= 50 %% "
           "MFU)\n");
    run_free(&r);
}

static void bench_llama_lora(int batch) {
    const int seq = smoke ? 32 : 1024;
    const char *tiny =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", \"hidden_size\": 64, "
        "\"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 4, "
        "\"num_key_value_heads\": 2, \"vocab_size\": 300, \"max_position_embeddings\": 64}";
    const char *config =
        smoke ? tiny
              : "{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
                "\"hidden_size\": 2048, \"intermediate_size\": 8192, \"num_hidden_layers\": 16, "
                "\"num_attention_heads\": 32, \"num_key_value_heads\": 8, \"vocab_size\": 128256, "
                "\"max_position_embeddings\": 2048, \"rope_theta\": 500000.0, "
                "\"tie_word_embeddings\": true}";
    const char *lora = "{\"r\": 16, \"lora_alpha\": 32, \"target_modules\": [\"q_proj\", \"v_proj\"]}";
    run r;
    if (!run_new(&r, config, lora, batch, seq, smoke ? 300 : 128256)) {
        run_free(&r);
        return;
    }
    double s = bench_median(step, &r, 2, 6);
    printf("  Llama %s + LoRA r 16 (q, v), B %d x T %d, bf16 autocast: %.1f ms/step, %.0f tokens/s; "
           "device "
           "memory in use %.1f GiB\n",
           smoke ? "tiny" : "1B shape", batch, seq, s * 1e3, (double)batch * seq / s, used_gib());
    run_free(&r);
}

int main(int argc, char **argv) {
    if (hft_runtime_init() != HFT_OK) return 1;
    gk = hft_cuda_load();
    if (!gk) {
        printf("skipped: %s\n", hft_error_message());
        return 0;
    }
    smoke = getenv("HFT_BENCH_SMOKE") && atoi(getenv("HFT_BENCH_SMOKE")) > 0;
    if (strstr(gk->name, "emulated") && !smoke) {
        printf("skipped: the CUDA table is the host emulator (timings would mean nothing)\n");
        return 0;
    }
    char desc[256] = "";
    gk->dev->describe(0, desc, sizeof desc);
    printf("bench_gpu_train on %s\n", desc);
    bench_gpt2_124m(argc > 1 ? atoi(argv[1]) : smoke ? 2 : 16, desc);
    bench_llama_lora(argc > 2 ? atoi(argv[2]) : smoke ? 2 : 4);
    printf("ok\n");
    return 0;
}
