/* Decoding speed of a GPT-2-small-sized model (124M, random weights): greedy tokens per second for one
 * stream and for a batch of 8, against transformers' generate on the same threads (bench/peers/
 * hf_generate.py), and as a share of the memory-bandwidth bound (a token reads every weight once: the f32
 * weights' bytes over the copy bandwidth measured here). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_util.h"
#include "nn/nn.h"

enum { PROMPT = 16, NEW = 64, BATCH = 8 };

/* Greedy decoding of `rows` equal-length prompts with the KV cache; seconds. */
static double decode_rows(hft_model *m, int rows) {
    int64_t V = hft_model_vocab_size(m), *ids = malloc(sizeof *ids * (size_t)(rows * PROMPT));
    for (int i = 0; i < rows * PROMPT; i++) ids[i] = (i * 7919 + 11) % V;
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_kv_cache *c = NULL;
    if (hft_kv_cache_new(m, rows, PROMPT + NEW, &c) != HFT_OK) return -1;
    double t0 = bench_now();
    int64_t n = PROMPT, next[BATCH];
    const int64_t *in = ids;
    for (int step = 0; step < NEW; step++) {
        hft_tensor *lg =
            hft_model_decode(ctx, m, c, hft_from_data(ctx, HFT_I64, 2, (int64_t[]){rows, n}, in));
        if (!lg) {
            fprintf(stderr, "bench_generate: %s\n", hft_ctx_error(ctx));
            return -1;
        }
        for (int r = 0; r < rows; r++) {
            const float *row = (const float *)hft_tensor_data(lg) + ((int64_t)r * n + n - 1) * V;
            int64_t best = 0;
            for (int64_t v = 1; v < V; v++)
                if (row[v] > row[best]) best = v;
            next[r] = best;
        }
        hft_ctx_reset(ctx);
        in = next;
        n = 1;
    }
    double t = bench_now() - t0;
    hft_kv_cache_free(c);
    hft_ctx_free(ctx);
    free(ids);
    return t;
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) return 1;
    hft_model *m = NULL;
    if (hft_model_from_config("{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}", "bench",
                              NULL, &m) != HFT_OK) {
        fprintf(stderr, "bench_generate: %s\n", hft_error_message());
        return 1;
    }
    int threads = hft_threads_get();
    /* copy bandwidth: 512 MiB copied, the best of 3 */
    size_t bytes = (size_t)512 << 20;
    char *a = malloc(bytes), *b = malloc(bytes);
    memset(a, 1, bytes), memset(b, 2, bytes);
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        double t0 = bench_now();
        memcpy(b, a, bytes);
        double t = bench_now() - t0;
        if (t < best) best = t;
    }
    free(a), free(b);
    double bw = 2.0 * (double)bytes / best; /* read + write */
    double weights = 0;
    hft_paramset *ps = hft_model_params(m);
    for (int i = 0; i < hft_paramset_count(ps); i++)
        weights += (double)hft_tensor_nbytes(hft_paramset_get(ps, i)->value);
    double bound = bw / weights;
    printf("greedy decoding, GPT-2 124M (%.0f MB of f32 weights), prompt %d, %d new tokens, %d threads; copy "
           "bandwidth %.1f GB/s: at most %.1f tokens/s for one stream\n",
           weights / 1e6, PROMPT, NEW, threads, bw / 1e9, bound);
    decode_rows(m, 1); /* warm-up */
    double t1 = decode_rows(m, 1), t8 = decode_rows(m, BATCH);
    double tps1 = NEW / t1, tps8 = BATCH * NEW / t8;
    printf("  hft, 1 stream    %7.1f tokens/s (%.0f%% of the bandwidth bound)\n", tps1, 100 * tps1 / bound);
    printf("  hft, batch of %d %7.1f tokens/s\n", BATCH, tps8);
    double peer[2];
    char args[96];
    snprintf(args, sizeof args, "--prompt %d --new %d --batch %d", PROMPT, NEW, BATCH);
    if (bench_run_peer_values("hf_generate.py", args, threads, peer, 2) == 2)
        printf("  transformers generate: 1 stream %.1f tokens/s, batch of %d %.1f tokens/s; hft is %.2fx and "
               "%.2fx\n",
               peer[0], BATCH, peer[1], tps1 / peer[0], tps8 / peer[1]);
    hft_model_free(m);
    return 0;
}
