/* hft-export's work: a checkpoint (or a run's newest checkpoint, or its final output) as a Hugging Face
 * model folder, or as a PEFT adapter folder, or with the adapter merged into its base. Weights are loaded
 * and saved again, so a damaged file is refused rather than copied. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "nn/nn.h"
#include "trainer/checkpoint.h"
#include "trainer/fsutil.h"
#include "trainer/train_state.h"
#include "trainer/trainer.h"

static bool has_files(const char *dir, const char *a, const char *b, const char *b_alt) {
    char *pa = hft_path_join(dir, a), *pb = hft_path_join(dir, b),
         *pc = b_alt ? hft_path_join(dir, b_alt) : NULL;
    bool ok = pa && fs_exists(pa) && ((pb && fs_exists(pb)) || (pc && fs_exists(pc)));
    free(pa), free(pb), free(pc);
    return ok;
}

static bool has_model(const char *dir) {
    return has_files(dir, "config.json", "model.safetensors", "model.safetensors.index.json");
}

static bool has_adapter(const char *dir) {
    return has_files(dir, "adapter_config.json", "adapter_model.safetensors", NULL);
}

/* The base an adapter folder names (adapter_config.json's base_model_name_or_path), malloc'd, or NULL. */
static char *named_base(const char *dir) {
    char *path = hft_path_join(dir, "adapter_config.json");
    char *text = path ? hft_read_text(path, NULL) : NULL;
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path");
    char *base = cJSON_IsString(b) && *b->valuestring ? strdup(b->valuestring) : NULL;
    cJSON_Delete(j);
    free(text), free(path);
    return base;
}

/* An adapter checkpoint records its base's digest: a different base is refused, as resuming refuses it. */
static hft_status check_base(const char *src, const char *base, hft_model *m) {
    char *state_path = hft_path_join(src, "training_state.h5");
    train_state s;
    hft_status st = HFT_OK;
    if (state_path && fs_exists(state_path) && train_state_peek(state_path, &s) == HFT_OK && *s.base_digest) {
        char digest[33];
        hft_model_weights_digest(m, digest);
        if (strcmp(digest, s.base_digest) != 0)
            st = hft_error(HFT_EINVAL,
                           "%s: the adapter was trained on another base than %s (its weights differ)", src,
                           base);
    }
    free(state_path);
    return st;
}

/* A checkpoint's model came in this dtype (training_state.h5 says; its weights are f32 masters): NULL when
 * it came in f32 or the folder is not a checkpoint. */
static const char *came_in(const char *dir) {
    char *path = hft_path_join(dir, "training_state.h5");
    train_state s;
    const char *name = NULL;
    if (path && fs_exists(path) && train_state_peek(path, &s) == HFT_OK)
        name = strcmp(s.source_dtype, "bf16") == 0  ? "bfloat16"
               : strcmp(s.source_dtype, "f16") == 0 ? "float16"
                                                    : NULL;
    free(path);
    return name;
}

/* --dtype: the weights converted before they are written. */
static hft_status convert(hft_model *m, const hft_export_options *o) {
    if (!o || !o->dtype) return HFT_OK;
    hft_dtype dt = strcmp(o->dtype, "float32") == 0    ? HFT_F32
                   : strcmp(o->dtype, "bfloat16") == 0 ? HFT_BF16
                   : strcmp(o->dtype, "float16") == 0  ? HFT_F16
                                                       : HFT_DTYPE_COUNT;
    if (dt == HFT_DTYPE_COUNT)
        return hft_error(HFT_EINVAL, "--dtype %s: expected float32, bfloat16 or float16", o->dtype);
    return hft_model_to_dtype(m, dt);
}

static hft_status export_adapter(const char *src, const char *out_dir, const hft_export_options *o) {
    char *base = o && o->base ? strdup(o->base) : named_base(src);
    if (!base || !fs_is_dir(base)) {
        hft_status st = hft_error(
            HFT_EIO, "%s: a LoRA adapter, whose base model %s%s%s is not here: give it with --base DIR", src,
            base ? "folder '" : "", base ? base : "(unnamed)", base ? "'" : "");
        free(base);
        return st;
    }
    hft_model *m = NULL;
    /* the base as stored: a bf16 base merges in bf16, rounding as PEFT does, and is written in bf16 */
    hft_status st = hft_model_load(base, &(hft_load_options){.hold_as_stored = true}, &m);
    if (st == HFT_OK) st = check_base(src, base, m);
    if (st == HFT_OK) st = hft_lora_load(m, src);
    bool merge = o && o->merge;
    if (st == HFT_OK && merge) st = hft_lora_merge(m);
    /* merged into a base held in bf16: written all in bf16 (its norms were widened to f32 on loading), as
     * PEFT's merge_and_unload leaves it; --dtype over that */
    if (st == HFT_OK && merge) st = hft_model_to_dtype(m, hft_model_matrix_dtype(m));
    if (st == HFT_OK && merge) st = convert(m, o);
    if (st == HFT_OK && !merge && o && o->dtype)
        st = hft_error(HFT_EINVAL,
                       "%s: --dtype applies to a model's weights; an adapter is written as trained "
                       "(add --merge for a model)",
                       src);
    if (st == HFT_OK) st = checkpoint_write_model(out_dir, m, src, merge ? base : NULL);
    if (st == HFT_OK)
        printf("exported %s (%s on %s) to %s%s\n", src, merge ? "LoRA adapter merged" : "LoRA adapter", base,
               out_dir, merge ? ": a plain model folder" : "");
    hft_model_free(m);
    free(base);
    return st;
}

hft_status hft_export(const char *from, const char *out_dir, const hft_export_options *o) {
    char *src = NULL;
    if (has_model(from) || has_adapter(from)) {
        src = strdup(from);
    } else {
        src = checkpoint_newest(from);
        if (!src)
            return hft_error(HFT_EIO,
                             "%s: neither a model or adapter folder nor a run folder with checkpoints", from);
    }
    hft_status st;
    if (has_adapter(src)) {
        st = export_adapter(src, out_dir, o);
    } else if (o && o->merge) {
        st = hft_error(HFT_EINVAL, "%s: --merge: this is a whole model, not a LoRA adapter", src);
    } else {
        hft_model *m = NULL;
        st = hft_model_load(src, NULL, &m);
        if (st == HFT_OK) st = convert(m, o && o->dtype ? o : &(hft_export_options){.dtype = came_in(src)});
        if (st == HFT_OK) st = checkpoint_write_model(out_dir, m, src, src);
        if (st == HFT_OK) printf("exported %s (%s) to %s\n", src, hft_model_architecture(m), out_dir);
        hft_model_free(m);
    }
    free(src);
    return st;
}
