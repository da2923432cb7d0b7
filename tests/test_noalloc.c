/* After one warm-up step at the longest length, repeated forward + backward of a transformer (GPT-2
 * blocks, the fused loss) at varying sequence lengths makes no heap allocation: every malloc of the
 * process is counted (this test defines malloc and friends, which the dynamic linker gives precedence
 * over the C library's for every library in the process). Not run under the sanitizers, which replace
 * malloc themselves. */
#include <stdint.h>

#include "nn/nn.h"
#include "tests/test_util.h"

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static volatile int counting;
static volatile long allocations;

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void *aligned_alloc(size_t a, size_t n);
int posix_memalign(void **p, size_t a, size_t n);
void *memalign(size_t a, size_t n);
void free(void *p);

void *malloc(size_t n) {
    if (counting) __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __libc_malloc(n);
}
void *calloc(size_t n, size_t m) {
    if (counting) __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __libc_calloc(n, m);
}
void *realloc(void *p, size_t n) {
    if (counting) __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, n);
}
void *aligned_alloc(size_t a, size_t n) {
    if (counting) __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __libc_memalign(a, n);
}
void *memalign(size_t a, size_t n) {
    if (counting) __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    return __libc_memalign(a, n);
}
int posix_memalign(void **p, size_t a, size_t n) {
    if (counting) __atomic_add_fetch(&allocations, 1, __ATOMIC_RELAXED);
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12;
}
void free(void *p) {
    __libc_free(p);
}

static void step(hft_ctx *ctx, hft_model *m, int64_t B, int64_t T, uint32_t seed) {
    hft_tensor *ids = hft_empty(ctx, HFT_I64, 2, (int64_t[]){B, T});
    hft_tensor *mask = hft_empty(ctx, HFT_I64, 2, (int64_t[]){B, T});
    int64_t *iv = hft_tensor_data(ids), *mv = hft_tensor_data(mask);
    for (int64_t i = 0; i < B * T; i++) {
        iv[i] = (int64_t)((i * 7 + seed) % 97);
        mv[i] = (i % T) < T - (i / T) ? 1 : 0; /* right padding of a few tokens per row */
    }
    hft_ctx_set_rng(ctx, 1, seed, 0, 0);
    int64_t count = 0;
    hft_tensor *loss = hft_model_loss(
        ctx, m, &(hft_batch){.input_ids = ids, .attention_mask = mask, .labels = ids}, true, &count);
    hft_tensor *mean = hft_scale(ctx, loss, 1.0 / (double)(count ? count : 1));
    hft_backward(ctx, mean, NULL);
    CHECK(hft_ctx_status(ctx) == HFT_OK, "step T=%lld: %s", (long long)T, hft_ctx_error(ctx));
    hft_ctx_reset(ctx);
}

/* Steady steps under autocast `dt` (HFT_F32: off); with autocast every parameter's version moves between
 * steps, as an optimizer step moves it, so the weight cache converts again — into its own buffers. */
static void steady_steps(hft_dtype dt) {
    const char *config =
        "{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 97, \"n_positions\": 64, "
        "\"n_embd\": 48, \"n_layer\": 2, \"n_head\": 4}";
    hft_model *m = NULL;
    CHECK_OK(hft_model_from_config(config, "test", &(hft_load_options){.seed = 7}, &m), NULL);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_set_autocast(ctx, dt);
    hft_paramset *ps = hft_model_params(m);
    int64_t B = 3, lengths[] = {40, 17, 33, 25, 40, 31, 19, 8};
    for (int w = 0; w < 3; w++) step(ctx, m, B, 40, (uint32_t)w); /* warm-up at the longest length */
    hft_memory_stats before, after;
    hft_ctx_memory(ctx, &before);
    allocations = 0;
    counting = 1;
    for (int i = 0; i < 8; i++) {
        step(ctx, m, B, lengths[i], (uint32_t)(10 + i));
        for (int k = 0; dt != HFT_F32 && k < hft_paramset_count(ps); k++) hft_paramset_get(ps, k)->value->version++;
    }
    counting = 0;
    hft_ctx_memory(ctx, &after);
    CHECK(allocations == 0, "%s: %ld heap allocations in 8 steady steps (context's own: %zu)", hft_dtype_name(dt),
          allocations, after.heap_allocations - before.heap_allocations);
    hft_ctx_free(ctx);
    hft_model_free(m);
}

TEST(steady_steps_allocate_nothing) {
    steady_steps(HFT_F32);
}

TEST(steady_bf16_steps_allocate_nothing) {
    steady_steps(HFT_BF16);
}

/* Decoding with the KV cache: after the first tokens, a token allocates nothing. */
TEST(decoding_a_token_allocates_nothing) {
    const char *config =
        "{\"architectures\": [\"LlamaForCausalLM\"], \"vocab_size\": 97, \"hidden_size\": 32, \"intermediate_size\": 64, "
        "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"num_key_value_heads\": 2}";
    hft_model *m = NULL;
    CHECK_OK(hft_model_from_config(config, "test", &(hft_load_options){.seed = 7}, &m), NULL);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_kv_cache *c = NULL;
    CHECK_OK(hft_kv_cache_new(m, 1, 40, &c), NULL);
    int64_t ids[8] = {5, 9, 2, 44, 17, 3, 8, 1};
    for (int i = 0; i < 8 && c; i++) { /* the prompt, then two tokens: the arena and pools reach their size */
        hft_model_decode(ctx, m, c, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, i ? 1 : 6}, ids + (i ? 0 : 2)));
        hft_ctx_reset(ctx);
        if (i == 2) break;
    }
    allocations = 0;
    counting = 1;
    for (int i = 0; i < 20 && c; i++) {
        hft_tensor *lg = hft_model_decode(ctx, m, c, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, 1}, ids + i % 8));
        if (!lg) break;
        hft_ctx_reset(ctx);
    }
    counting = 0;
    CHECK(c && hft_kv_cache_len(c) == 28, "the cache holds %lld tokens", c ? (long long)hft_kv_cache_len(c) : -1LL);
    CHECK(allocations == 0, "%ld heap allocations in 20 decoded tokens", allocations);
    hft_kv_cache_free(c);
    hft_ctx_free(ctx);
    hft_model_free(m);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {{"steady_steps_allocate_nothing", steady_steps_allocate_nothing},
                                      {"steady_bf16_steps_allocate_nothing", steady_bf16_steps_allocate_nothing},
                                      {"decoding_a_token_allocates_nothing", decoding_a_token_allocates_nothing}};
    return test_main(argc, argv, cases, 3);
}
