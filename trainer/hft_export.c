/* hft-export CHECKPOINT_OR_RUN OUT_DIR: writes a Hugging Face model folder (config.json, model.safetensors,
 * tokenizer files) that transformers loads. */
#include <stdio.h>

#include "trainer/trainer.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: hft-export CHECKPOINT_OR_RUN OUT_DIR\n");
        return 2;
    }
    if (hft_runtime_init() != HFT_OK || hft_export(argv[1], argv[2]) != HFT_OK) {
        fprintf(stderr, "hft-export: %s\n", hft_error_message());
        return 1;
    }
    return 0;
}
