/* Samples of what a causal LM writes (see sample.h): transformers' sampling with temperature 0.8 and top-k
 * 10 from a fixed seed, through the KV cache. */
#include "trainer/sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

hft_status generate_sample(hft_ctx *ctx, hft_model *m, const hft_tokenizer *tok, const char *prompt,
                           int64_t tokens, uint64_t seed, char **text, int64_t *generated) {
    *text = NULL;
    *generated = 0;
    hft_encoding enc = {0};
    HFT_TRY(hft_tokenizer_encode(tok, prompt, strlen(prompt), NULL, 0, false, &enc));
    int64_t n = enc.n, maxp = hft_model_max_positions(m);
    int64_t *ids = malloc(sizeof *ids * (size_t)(n + 1)), *out = malloc(sizeof *out * (size_t)(tokens + 1));
    int32_t *out32 = malloc(sizeof *out32 * (size_t)(tokens + 1));
    hft_status st = ids && out && out32 ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    for (int64_t i = 0; st == HFT_OK && i < n; i++) ids[i] = enc.ids[i];
    hft_encoding_free(&enc);
    if (st == HFT_OK && n == 0) { /* an empty prompt starts from the beginning-of-text token */
        hft_special_tokens sp = hft_tokenizer_specials(tok);
        ids[n++] = sp.bos >= 0 ? sp.bos : (sp.eos >= 0 ? sp.eos : 0);
    }
    if (maxp > 0 && n + tokens > maxp) tokens = maxp > n ? maxp - n : 0; /* as far as the positions go */
    hft_generate_options o = hft_generate_defaults();
    o.max_new_tokens = tokens;
    o.do_sample = true;
    o.temperature = 0.8;
    o.top_k = 10;
    o.seed = seed;
    int64_t n_out = 0;
    if (st == HFT_OK && tokens > 0) st = hft_generate(ctx, m, ids, n, &o, out, &n_out, NULL, NULL);
    for (int64_t i = 0; i < n_out; i++) out32[i] = (int32_t)out[i];
    size_t len = 0;
    if (st == HFT_OK) st = hft_tokenizer_decode(tok, out32, n_out, true, text, &len);
    *generated = n_out;
    free(ids), free(out), free(out32);
    return st;
}

hft_status print_sample(hft_ctx *ctx, hft_model *m, const hft_tokenizer *tok, const char *prompt,
                        int64_t tokens, uint64_t seed) {
    if (hft_model_task(m) != HFT_TASK_CAUSAL_LM) return HFT_OK;
    char *text = NULL;
    int64_t generated = 0;
    HFT_TRY(generate_sample(ctx, m, tok, prompt, tokens, seed, &text, &generated));
    printf("\nsample (%lld tokens after the prompt%s):\n%s%s\n", (long long)generated,
           generated < tokens ? ", as far as the model's positions go" : "", prompt, text);
    free(text);
    return HFT_OK;
}
