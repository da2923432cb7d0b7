/* hft-export's work: a checkpoint (or a run's newest checkpoint, or its final model) as a Hugging Face model
 * folder. The weights are loaded and saved again, so a damaged file is refused rather than copied. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "trainer/checkpoint.h"
#include "trainer/fsutil.h"
#include "trainer/trainer.h"

static bool has_model(const char *dir) {
    char *a = fs_join(dir, "config.json"), *b = fs_join(dir, "model.safetensors"),
         *c = fs_join(dir, "model.safetensors.index.json");
    bool ok = a && fs_exists(a) && ((b && fs_exists(b)) || (c && fs_exists(c)));
    free(a), free(b), free(c);
    return ok;
}

hft_status hft_export(const char *from, const char *out_dir) {
    char *src = NULL;
    if (has_model(from)) {
        src = strdup(from);
    } else {
        src = checkpoint_newest(from);
        if (!src)
            return hft_error(HFT_EIO, "%s: neither a model folder nor a run folder with checkpoints", from);
    }
    hft_model *m = NULL;
    hft_status st = hft_model_load(src, NULL, &m);
    if (st == HFT_OK) st = checkpoint_write_model(out_dir, m, src, src);
    if (st == HFT_OK) printf("exported %s (%s) to %s\n", src, hft_model_architecture(m), out_dir);
    hft_model_free(m);
    free(src);
    return st;
}
