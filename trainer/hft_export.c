/* hft-export CHECKPOINT_OR_RUN OUT_DIR [--merge] [--base DIR] [--dtype DTYPE]: writes a Hugging Face model
 * folder that transformers loads, or for a LoRA run the PEFT adapter folder (or, with --merge, the merged
 * model). */
#include <stdio.h>
#include <string.h>

#include "trainer/trainer.h"

static int usage(void) {
    fprintf(stderr,
            "usage: hft-export CHECKPOINT_OR_RUN OUT_DIR [--merge] [--base BASE_MODEL_DIR] [--dtype DTYPE]\n"
            "  a LoRA checkpoint exports as a PEFT adapter folder; --merge writes the base with the\n"
            "  adapter merged in; --base names the base model when adapter_config.json's path is gone;\n"
            "  --dtype float32|bfloat16|float16 converts the model's weights (default: as stored)\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL};
    int n_pos = 0;
    hft_export_options o = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--merge") == 0)
            o.merge = true;
        else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
            o.base = argv[++i];
        else if (strcmp(argv[i], "--dtype") == 0 && i + 1 < argc)
            o.dtype = argv[++i];
        else if (argv[i][0] == '-' || n_pos == 2)
            return usage();
        else
            pos[n_pos++] = argv[i];
    }
    if (n_pos != 2) return usage();
    if (hft_runtime_init() != HFT_OK || hft_export(pos[0], pos[1], &o) != HFT_OK) {
        fprintf(stderr, "hft-export: %s\n", hft_error_message());
        return 1;
    }
    return 0;
}
