/* Adapter folders as PEFT reads and writes them: adapter_config.json and adapter_model.safetensors. */
#include "nn/lora_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

hft_status hft_lora_save(hft_model *m, const char *dir) {
    nn_adapter *a = m->adapter;
    if (!a) return hft_error(HFT_ESTATE, "%s has no LoRA adapter to save", m->architecture);
    if (a->merged)
        return hft_error(HFT_ESTATE, "the LoRA adapter was merged into %s: save the model instead",
                         m->architecture);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return hft_error(HFT_EIO, "%s: cannot create: %s", dir, strerror(errno));
    char *config_path = hft_path_join(dir, "adapter_config.json"),
         *weights_path = hft_path_join(dir, "adapter_model.safetensors");
    char *text = cJSON_Print(a->json);
    hft_st_writer *w = hft_st_writer_new();
    hft_status st =
        config_path && weights_path && text && w ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    if (st == HFT_OK) st = hft_st_writer_metadata(w, "format", "pt");
    for (int i = 0; i < hft_paramset_count(m->params) && st == HFT_OK; i++) {
        if (!lora_saves_param(m, i)) continue;
        hft_param *p = hft_paramset_get(m->params, i);
        char name[512];
        lora_peft_name(m, p->name, name, sizeof name);
        st = hft_st_writer_add(w, name, p->value);
    }
    /* the weights first: a folder whose config is there always has its weights */
    if (st == HFT_OK) st = hft_st_writer_save(w, weights_path);
    if (st == HFT_OK) st = hft_write_text(config_path, text, true);
    hft_st_writer_free(w);
    free(text);
    free(config_path);
    free(weights_path);
    return st;
}

static void shape_text(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = '\0';
    for (int d = 0; d < ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, d ? ", %lld" : "%lld", (long long)shape[d]);
}

static hft_status load_tensors(hft_model *m, const char *dir) {
    char *path = hft_path_join(dir, "adapter_model.safetensors");
    if (!path) return hft_error(HFT_ENOMEM, "out of memory");
    struct stat sb;
    if (stat(path, &sb) != 0) {
        char *bin = hft_path_join(dir, "adapter_model.bin");
        bool pickle = bin && stat(bin, &sb) == 0;
        free(bin);
        hft_status st = pickle
                            ? hft_error(HFT_EUNSUPPORTED,
                                        "%s: the adapter is in PyTorch's pickle format (adapter_model.bin); "
                                        "hft reads adapter_model.safetensors (PEFT's default since 0.7)",
                                        dir)
                            : hft_error(HFT_EIO, "%s: no adapter_model.safetensors", dir);
        free(path);
        return st;
    }
    hft_safetensors *f = NULL;
    hft_status st = hft_safetensors_open(path, &f);
    int taken = 0;
    for (int i = 0; i < hft_paramset_count(m->params) && st == HFT_OK; i++) {
        if (!lora_saves_param(m, i)) continue;
        hft_param *p = hft_paramset_get(m->params, i);
        char name[512];
        lora_peft_name(m, p->name, name, sizeof name);
        const hft_st_entry *e = hft_safetensors_find(f, name);
        if (!e) {
            st = hft_error(HFT_EFORMAT, "%s: no tensor '%s', which this adapter's configuration trains", path,
                           name);
            break;
        }
        bool same = e->ndim == p->value->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == p->value->shape[d];
        if (!same) {
            char want[96], got[96];
            shape_text(p->value->ndim, p->value->shape, want, sizeof want);
            shape_text(e->ndim, e->shape, got, sizeof got);
            st =
                hft_error(HFT_EFORMAT, "%s: '%s' is [%s]; this adapter on %s needs [%s] (another r or base?)",
                          path, name, got, m->architecture, want);
            break;
        }
        hft_tensor *t = NULL;
        st = hft_safetensors_load(f, name, HFT_F32, false, &t);
        if (st == HFT_OK) st = hft_tensor_copy(p->value, t); /* the adapter may be on a device */
        if (st == HFT_OK) {
            p->value->version++;
            taken++;
        }
        hft_tensor_free(t);
    }
    if (st == HFT_OK && taken != hft_safetensors_count(f)) { /* a tensor nothing took: a different config */
        for (int k = 0; k < hft_safetensors_count(f); k++) {
            const char *name = hft_safetensors_entry(f, k)->name;
            bool used = false;
            for (int i = 0; i < hft_paramset_count(m->params) && !used; i++) {
                if (!lora_saves_param(m, i)) continue;
                char pn[512];
                lora_peft_name(m, hft_paramset_get(m->params, i)->name, pn, sizeof pn);
                used = strcmp(pn, name) == 0;
            }
            if (!used) {
                st = hft_error(
                    HFT_EUNSUPPORTED,
                    "%s: tensor '%s' is not one this adapter's configuration trains (hft loads LoRA "
                    "factors, trained biases and modules_to_save)",
                    path, name);
                break;
            }
        }
    }
    hft_safetensors_close(f);
    free(path);
    return st;
}

hft_status hft_lora_load_weights(hft_model *m, const char *dir) {
    if (!m->adapter || m->adapter->merged)
        return hft_error(HFT_ESTATE, "%s: %s has no LoRA adapter attached to load into", dir,
                         m->architecture);
    return load_tensors(m, dir);
}

hft_status hft_lora_load(hft_model *m, const char *dir) {
    char *path = hft_path_join(dir, "adapter_config.json");
    if (!path) return hft_error(HFT_ENOMEM, "out of memory");
    char *text = hft_read_text(path, NULL);
    hft_status st = text ? HFT_OK : hft_error_status();
    cJSON *json = text ? cJSON_Parse(text) : NULL;
    if (text && !json) st = hft_error(HFT_EFORMAT, "%s: not valid JSON", path);
    if (json && !cJSON_IsObject(json)) st = hft_error(HFT_EFORMAT, "%s: expected a JSON object", path);
    if (st == HFT_OK) st = nn_lora_attach(m, json, path, false, 0);
    if (st == HFT_OK) st = load_tensors(m, dir);
    cJSON_Delete(json);
    free(text);
    free(path);
    return st;
}
