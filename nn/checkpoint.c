/* A model folder's weights: model.safetensors, or the shards that model.safetensors.index.json maps tensor
 * names to. Only safetensors is read (pickled pytorch_model.bin files can run code when loaded). */
#include "nn/nn_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static bool exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static hft_status add_file(nn_checkpoint *ck, const char *path) {
    hft_safetensors *f = NULL;
    HFT_TRY(hft_safetensors_open(path, &f));
    hft_safetensors **files = realloc(ck->files, (size_t)(ck->n_files + 1) * sizeof *files);
    if (!files) {
        hft_safetensors_close(f);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    ck->files = files;
    ck->files[ck->n_files++] = f;
    return HFT_OK;
}

/* The shard files named by the index's weight_map, each opened once. */
static hft_status open_index(nn_checkpoint *ck, const char *index_path) {
    char *text = hft_read_text(index_path, NULL);
    if (!text) return hft_error_status();
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map)) {
        cJSON_Delete(root);
        return hft_error(HFT_EFORMAT, "%s: %s", index_path,
                         root ? "no \"weight_map\" object" : "not valid JSON");
    }
    hft_status st = HFT_OK;
    const cJSON *e;
    char **seen = NULL;
    int n_seen = 0;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e)) {
            st = hft_error(HFT_EFORMAT, "%s: weight_map['%s'] is not a file name", index_path, e->string);
            break;
        }
        if (strchr(e->valuestring, '/') || strcmp(e->valuestring, "..") == 0) {
            st = hft_error(HFT_EFORMAT, "%s: weight_map['%s'] names '%s', not a file in the folder",
                           index_path, e->string, e->valuestring);
            break;
        }
        bool have = false;
        for (int i = 0; i < n_seen && !have; i++) have = strcmp(seen[i], e->valuestring) == 0;
        if (have) continue;
        char **s2 = realloc(seen, (size_t)(n_seen + 1) * sizeof *s2);
        if (!s2) {
            st = hft_error(HFT_ENOMEM, "out of memory");
            break;
        }
        seen = s2;
        seen[n_seen++] = e->valuestring;
        char *path = hft_path_join(ck->dir, e->valuestring);
        st = path ? add_file(ck, path) : hft_error(HFT_ENOMEM, "out of memory");
        free(path);
        if (st != HFT_OK) break;
    }
    free(seen);
    cJSON_Delete(root);
    return st;
}

hft_status nn_checkpoint_open(const char *dir, nn_checkpoint *ck) {
    memset(ck, 0, sizeof *ck);
    ck->dir = strdup(dir);
    char *single = hft_path_join(dir, "model.safetensors"),
         *index = hft_path_join(dir, "model.safetensors.index.json");
    hft_status st;
    if (!ck->dir || !single || !index) {
        st = hft_error(HFT_ENOMEM, "out of memory");
    } else if (exists(single)) {
        st = add_file(ck, single);
    } else if (exists(index)) {
        st = open_index(ck, index);
    } else {
        char *bin = hft_path_join(dir, "pytorch_model.bin");
        bool has_bin = bin && exists(bin);
        free(bin);
        st = hft_error(
            HFT_EIO, "%s: no model.safetensors or model.safetensors.index.json%s", dir,
            has_bin ? " (pytorch_model.bin is not read: it is a pickle, which can run code; convert it "
                      "to safetensors with transformers' save_pretrained)"
                    : "");
    }
    free(single);
    free(index);
    if (st != HFT_OK) nn_checkpoint_close(ck);
    return st;
}

void nn_checkpoint_close(nn_checkpoint *ck) {
    for (int i = 0; i < ck->n_files; i++) hft_safetensors_close(ck->files[i]);
    free(ck->files);
    free(ck->dir);
    memset(ck, 0, sizeof *ck);
}

const hft_st_entry *nn_checkpoint_find(const nn_checkpoint *ck, const char *name,
                                       const hft_safetensors **file) {
    for (int i = 0; i < ck->n_files; i++) {
        const hft_st_entry *e = hft_safetensors_find(ck->files[i], name);
        if (e) {
            if (file) *file = ck->files[i];
            return e;
        }
    }
    return NULL;
}
