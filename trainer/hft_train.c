/* hft-train RECIPE.yaml [key=value ...]: trains as the recipe says. Exit status 0 when the run finished or
 * stopped cleanly on a signal (with a checkpoint to resume from), 1 on an error, 2 on a usage error. */
#include <stdio.h>
#include <string.h>

#include "trainer/trainer.h"

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: hft-train RECIPE.yaml [key=value ...]\n"
            "       hft-train --help\n\n"
            "Trains a Hugging Face model as the YAML recipe says; key=value arguments override the recipe\n"
            "(key or section.key, e.g. learning_rate=1e-4 training.max_steps=100). Recipe keys:\n");
}

int main(int argc, char **argv) {
    const char *recipe = NULL;
    char *overrides[256];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            hft_recipe_print_help(stdout);
            return 0;
        }
        if (strchr(argv[i], '=')) {
            if (n < 256) overrides[n++] = argv[i];
        } else if (!recipe) {
            recipe = argv[i];
        } else {
            fprintf(stderr,
                    "hft-train: unexpected argument '%s' (overrides must be in the form of key=value)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!recipe) {
        usage(stderr);
        return 2;
    }
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "hft-train: %s\n", hft_error_message());
        return 1;
    }
    hft_recipe *r = NULL;
    if (hft_recipe_load(recipe, n, overrides, &r) != HFT_OK) {
        fprintf(stderr, "hft-train: %s\n", hft_error_message());
        return 1;
    }
    bool stopped = false;
    hft_status st = hft_train(r, &stopped);
    hft_recipe_free(r);
    if (st != HFT_OK) {
        fprintf(stderr, "hft-train: %s\n", hft_error_message());
        return 1;
    }
    return 0;
}
