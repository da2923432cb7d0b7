/* export_logits MODEL_DIR OUT.safetensors: hft's logits for a fixed input (the byte values of a sentence,
 * folded into the vocabulary), written with the ids, for tests/fixtures/check_export.py to compare against
 * transformers. A tool for checking exports by hand, not a ctest test. */
#include <stdio.h>

#include "nn/nn.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: export_logits MODEL_DIR OUT.safetensors\n");
        return 2;
    }
    hft_model *m = NULL;
    if (hft_runtime_init() != HFT_OK || hft_model_load(argv[1], NULL, &m) != HFT_OK) {
        fprintf(stderr, "export_logits: %s\n", hft_error_message());
        return 1;
    }
    const char *s = "This License applies to any program or other work";
    int64_t ids[48];
    for (int i = 0; i < 48; i++) ids[i] = (unsigned char)s[i] % hft_model_vocab_size(m);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_set_grad_enabled(ctx, false);
    hft_tensor *x = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, 48}, ids);
    hft_tensor *logits = hft_model_logits(ctx, m, &(hft_batch){.input_ids = x});
    hft_st_writer *w = hft_st_writer_new();
    hft_status st = logits ? HFT_OK : hft_ctx_status(ctx);
    if (st == HFT_OK) st = hft_st_writer_add(w, "ids", x);
    if (st == HFT_OK) st = hft_st_writer_add(w, "logits", logits);
    if (st == HFT_OK) st = hft_st_writer_save(w, argv[2]);
    if (st != HFT_OK)
        fprintf(stderr, "export_logits: %s\n", logits ? hft_error_message() : hft_ctx_error(ctx));
    hft_st_writer_free(w);
    hft_ctx_free(ctx);
    hft_model_free(m);
    return st == HFT_OK ? 0 : 1;
}
