/* The end-of-run sample (see sample.h). */
#include "trainer/sample.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define SAMPLE_TEMPERATURE 0.8
#define SAMPLE_TOP_K       10

/* Draws a token from the top-k of the last position's logits at temperature `temp`. */
static int32_t draw(const float *logits, int64_t V, double temp, int k, uint64_t seed, uint32_t step) {
    int32_t best[64];
    int n = 0;
    for (int32_t v = 0; v < V; v++) { /* the k largest, kept sorted */
        if (n < k || logits[v] > logits[best[n - 1]]) {
            int i = n < k ? n++ : n - 1;
            while (i > 0 && logits[best[i - 1]] < logits[v]) best[i] = best[i - 1], i--;
            best[i] = v;
        }
    }
    double w[64], total = 0;
    for (int i = 0; i < n; i++) total += w[i] = exp((logits[best[i]] - logits[best[0]]) / temp);
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, ctr[4] = {step, 0, 0, 0x73616d70}, r[4];
    hft_philox4x32(key, ctr, r);
    double u = (double)r[0] / 4294967296.0 * total;
    for (int i = 0; i < n; i++)
        if ((u -= w[i]) <= 0) return best[i];
    return best[n - 1];
}

hft_status print_sample(hft_ctx *ctx, hft_model *m, const hft_tokenizer *tok, const char *prompt,
                        int64_t tokens, uint64_t seed) {
    if (hft_model_task(m) != HFT_TASK_CAUSAL_LM) return HFT_OK;
    hft_encoding enc = {0};
    HFT_TRY(hft_tokenizer_encode(tok, prompt, strlen(prompt), NULL, 0, false, &enc));
    int64_t cap = enc.n + tokens + 1, n = enc.n;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    int64_t *ids64 = malloc(sizeof *ids64 * (size_t)cap);
    if (!ids || !ids64) {
        hft_encoding_free(&enc);
        free(ids), free(ids64);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    memcpy(ids, enc.ids, sizeof *ids * (size_t)n);
    hft_encoding_free(&enc);
    if (n == 0) { /* an empty prompt starts from the beginning-of-text token */
        hft_special_tokens sp = hft_tokenizer_specials(tok);
        ids[n++] = sp.bos >= 0 ? sp.bos : (sp.eos >= 0 ? sp.eos : 0);
    }
    int64_t start = n, window;
    hft_status st = HFT_OK;
    bool prev = hft_set_grad_enabled(ctx, false);
    for (int64_t i = 0; i < tokens && st == HFT_OK; i++) {
        int64_t maxp = hft_model_max_positions(m);
        window = maxp > 0 && n > maxp ? maxp : n; /* the most recent tokens the model can see */
        int64_t from = n - window;
        for (int64_t j = 0; j < window; j++) ids64[j] = ids[from + j];
        hft_tensor *x = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, window}, ids64);
        hft_tensor *logits = hft_model_logits(ctx, m, &(hft_batch){.input_ids = x});
        if (!logits) {
            st = hft_error(hft_ctx_status(ctx), "sample: %s", hft_ctx_error(ctx));
            break;
        }
        int64_t V = logits->shape[2];
        ids[n++] = draw((const float *)hft_tensor_data(logits) + (window - 1) * V, V, SAMPLE_TEMPERATURE,
                        SAMPLE_TOP_K, seed, (uint32_t)i);
        hft_ctx_reset(ctx);
    }
    hft_set_grad_enabled(ctx, prev);
    if (st == HFT_OK) {
        char *text = NULL;
        size_t len = 0;
        st = hft_tokenizer_decode(tok, ids, n, true, &text, &len);
        if (st == HFT_OK) {
            printf("\nsample (%lld tokens after the prompt):\n%.*s\n", (long long)(n - start), (int)len,
                   text);
            free(text);
        }
    }
    free(ids);
    free(ids64);
    return st;
}
