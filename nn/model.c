/* Models: choosing the family from config.json, declaring and loading parameters by their HF names
 * (with the prefix and legacy-name fallbacks transformers applies), initialising what a checkpoint lacks,
 * saving, and running the stages a family provides. */
#include "nn/nn_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const nn_family *const families[] = {&nn_family_gpt2, &nn_family_llama, &nn_family_bert};
#define N_FAMILIES ((int)(sizeof families / sizeof families[0]))

static void supported_list(char *buf, size_t size) {
    size_t n = 0;
    buf[0] = '\0';
    for (int f = 0; f < N_FAMILIES; f++)
        for (const char *const *a = families[f]->architectures; *a && n < size; a++)
            n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", *a);
}

static const nn_family *family_for(const char *arch) {
    for (int f = 0; f < N_FAMILIES; f++)
        for (const char *const *a = families[f]->architectures; *a; a++)
            if (strcmp(*a, arch) == 0) return families[f];
    return NULL;
}

/* ---------------------------------------------------------------- parameters */

static uint32_t name_stream(const char *name) { /* FNV-1a: an init stream per parameter name */
    uint32_t h = 2166136261u;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 16777619u;
    return h;
}

hft_status nn_init_tensor(hft_tensor *t, nn_init init, uint64_t seed, const char *name) {
    switch (init.kind) {
    case NN_INIT_ZEROS:
        return hft_init_constant(t, 0.0);
    case NN_INIT_ONES:
        return hft_init_constant(t, 1.0);
    case NN_INIT_UNIFORM:
        return hft_init_uniform(t, -init.std, init.std, seed, name_stream(name));
    case NN_INIT_NORMAL:
        break;
    }
    HFT_TRY(hft_init_normal(t, 0.0, init.std, seed, name_stream(name)));
    if (init.zero_row >= 0 && t->ndim == 2 && init.zero_row < t->shape[0]) {
        float *row = (float *)hft_tensor_data(t) + init.zero_row * t->shape[1];
        memset(row, 0, sizeof(float) * (size_t)t->shape[1]);
    }
    return HFT_OK;
}

hft_tensor *nn_param(hft_model *m, nn_init init, uint32_t tags, bool head, int ndim, const int64_t *shape,
                     const char *name_fmt, ...) {
    if (m->status != HFT_OK) return NULL;
    char name[256];
    va_list ap;
    va_start(ap, name_fmt);
    vsnprintf(name, sizeof name, name_fmt, ap);
    va_end(ap);
    int n = hft_paramset_count(m->params);
    if (n == m->info_cap) {
        int cap = m->info_cap ? 2 * m->info_cap : 64;
        nn_param_info *info = realloc(m->info, (size_t)cap * sizeof *info);
        if (!info) {
            m->status = hft_error(HFT_ENOMEM, "out of memory");
            return NULL;
        }
        m->info = info;
        m->info_cap = cap;
    }
    hft_tensor *t = hft_tensor_new(HFT_F32, ndim, shape);
    if (!t) {
        m->status = hft_error_status();
        return NULL;
    }
    m->status = hft_paramset_add(m->params, name, t, tags);
    if (m->status != HFT_OK) {
        hft_tensor_free(t);
        return NULL;
    }
    m->info[n] = (nn_param_info){.init = init, .head = head};
    return t;
}

/* ---------------------------------------------------------------- creating */

static hft_status parse_config(const char *text, const char *source, cJSON **out) {
    const char *end = NULL;
    *out = cJSON_ParseWithOpts(text, &end, true);
    if (!*out) {
        int line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        return hft_error(HFT_EFORMAT, "%s:%d: not valid JSON", source, line);
    }
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return hft_error(HFT_EFORMAT, "%s: expected a JSON object", source);
    }
    return HFT_OK;
}

void hft_model_free(hft_model *m) {
    if (!m) return;
    nn_adapter_free(m->adapter);
    nn_linears_free(m); /* before the family's impl, which holds the modules */
    if (m->family && m->family->free_impl) m->family->free_impl(m->impl);
    hft_paramset_free(m->params);
    cJSON_Delete(m->config);
    free(m->architecture);
    free(m->config_path);
    free(m->info);
    for (int i = 0; i < m->n_unused; i++) free(m->unused[i]);
    free(m->unused);
    for (int i = 0; i < m->n_initialized; i++) free(m->initialized[i]);
    free(m->initialized);
    free(m);
}

/* A model of config's architecture (or the one asked for) with its parameters declared, not yet filled. */
static hft_status model_create(cJSON *config, const char *source, const hft_load_options *opts,
                               hft_model **out) {
    *out = NULL;
    hft_model *m = calloc(1, sizeof *m);
    if (!m) {
        cJSON_Delete(config);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    m->config = config;
    m->config_path = strdup(source);
    m->params = hft_paramset_new();
    m->seed = opts ? opts->seed : 0;
    const char *arch = opts && opts->architecture ? opts->architecture : NULL;
    if (!arch) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(config, "architectures");
        const cJSON *first = cJSON_IsArray(list) ? cJSON_GetArrayItem(list, 0) : NULL;
        if (cJSON_IsString(first)) arch = first->valuestring;
    }
    char supported[512];
    supported_list(supported, sizeof supported);
    if (!arch) {
        hft_model_free(m);
        return hft_error(HFT_EFORMAT, "%s: no \"architectures\" list naming the model class (supported: %s)",
                         source, supported);
    }
    m->family = family_for(arch);
    if (!m->family) {
        hft_status st = hft_error(HFT_EUNSUPPORTED, "%s: architecture '%s' is not supported (supported: %s)",
                                  source, arch, supported);
        hft_model_free(m);
        return st;
    }
    m->architecture = strdup(arch);
    if (cJSON_GetObjectItemCaseSensitive(config, "quantization_config")) {
        hft_model_free(m);
        return hft_error(HFT_EUNSUPPORTED,
                         "%s: 'quantization_config': quantized checkpoints are not supported "
                         "(QLoRA and quantized bases are not implemented yet)",
                         source);
    }
    if (opts && opts->num_labels > 0) { /* a new head of another size: the old label names no longer apply */
        cJSON_DeleteItemFromObjectCaseSensitive(config, "id2label");
        cJSON_DeleteItemFromObjectCaseSensitive(config, "label2id");
        cJSON_DeleteItemFromObjectCaseSensitive(config, "num_labels");
        cJSON_AddNumberToObject(config, "num_labels", (double)opts->num_labels);
    }
    if (!m->config_path || !m->params || !m->architecture) {
        hft_model_free(m);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    hft_status st = m->family->build(m);
    if (st == HFT_OK) st = m->status;
    if (st != HFT_OK) {
        hft_model_free(m);
        return st;
    }
    *out = m;
    return HFT_OK;
}

static hft_status record(char ***list, int *n, const char *name) {
    char **l = realloc(*list, (size_t)(*n + 1) * sizeof *l);
    if (!l) return hft_error(HFT_ENOMEM, "out of memory");
    *list = l;
    l[*n] = strdup(name);
    if (!l[*n]) return hft_error(HFT_ENOMEM, "out of memory");
    (*n)++;
    return HFT_OK;
}

/* Initialises every parameter not loaded; with `report`, records the head parameters so filled and
 * refuses a missing body parameter. */
static hft_status init_unloaded(hft_model *m, const char *dir, bool report) {
    for (int i = 0; i < hft_paramset_count(m->params); i++) {
        hft_param *p = hft_paramset_get(m->params, i);
        if (m->info[i].loaded) continue;
        if (report && !m->info[i].head) {
            char shape[96] = "";
            size_t n = 0;
            for (int d = 0; d < p->value->ndim; d++)
                n += (size_t)snprintf(shape + n, sizeof shape - n, d ? ", %lld" : "%lld",
                                      (long long)p->value->shape[d]);
            return hft_error(HFT_EFORMAT, "%s: the weights have no tensor '%s' [%s] that %s needs", dir,
                             p->name, shape, m->architecture);
        }
        HFT_TRY(nn_init_tensor(p->value, m->info[i].init, m->seed, p->name));
        if (report) HFT_TRY(record(&m->initialized, &m->n_initialized, p->name));
    }
    return HFT_OK;
}

hft_status hft_model_from_config(const char *config_json, const char *source, const hft_load_options *opts,
                                 hft_model **out) {
    cJSON *config = NULL;
    HFT_TRY(parse_config(config_json, source ? source : "config", &config));
    hft_model *m = NULL;
    HFT_TRY(model_create(config, source ? source : "config", opts, &m));
    hft_status st = init_unloaded(m, source, false);
    if (st == HFT_OK) st = hft_paramset_finalize(m->params, NN_BUCKET_BYTES);
    if (st != HFT_OK) {
        hft_model_free(m);
        return st;
    }
    *out = m;
    return HFT_OK;
}

/* ---------------------------------------------------------------- loading weights */

/* The names a parameter may have in a checkpoint: its own; with the base-model prefix removed or added
 * (a GPT-2 Hub file lacks "transformer.", a BertModel checkpoint lacks "bert."); and LayerNorm's old
 * gamma/beta. */
static int candidates(const hft_model *m, const char *name, char out[][256]) {
    int n = 0;
    const char *pre = m->base_prefix ? m->base_prefix : "";
    size_t pl = strlen(pre);
    snprintf(out[n++], 256, "%s", name);
    if (pl && strncmp(name, pre, pl) == 0)
        snprintf(out[n++], 256, "%s", name + pl);
    else if (pl)
        snprintf(out[n++], 256, "%s%s", pre, name);
    int base = n;
    for (int i = 0; i < base; i++) {
        size_t len = strlen(out[i]);
        const char *legacy = NULL;
        size_t keep = 0;
        if (!strstr(out[i], "LayerNorm")) continue;
        if (len > 7 && strcmp(out[i] + len - 7, ".weight") == 0)
            legacy = ".gamma", keep = len - 7;
        else if (len > 5 && strcmp(out[i] + len - 5, ".bias") == 0)
            legacy = ".beta", keep = len - 5;
        if (!legacy || keep + strlen(legacy) >= 256) continue;
        memcpy(out[n], out[i], keep);
        strcpy(out[n] + keep, legacy);
        n++;
    }
    return n;
}

static void fmt_shape(int ndim, const int64_t *shape, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ndim && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (n < size) snprintf(buf + n, size - n, "]");
}

static hft_status load_param(hft_model *m, const nn_checkpoint *ck, int i, const char **taken) {
    hft_param *p = hft_paramset_get(m->params, i);
    char names[6][256];
    int n = candidates(m, p->name, names);
    const hft_safetensors *f = NULL;
    const hft_st_entry *e = NULL;
    for (int c = 0; c < n && !e; c++) e = nn_checkpoint_find(ck, names[c], &f);
    if (!e) return HFT_OK;
    *taken = e->name;
    const char *file = hft_safetensors_path(f);
    bool same = e->ndim == p->value->ndim;
    for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == p->value->shape[d];
    if (!same) {
        char have[96], want[96];
        fmt_shape(e->ndim, e->shape, have, sizeof have);
        fmt_shape(p->value->ndim, p->value->shape, want, sizeof want);
        return hft_error(HFT_EFORMAT, "%s: tensor '%s' has shape %s, but the config implies %s for '%s'",
                         file, e->name, have, want, p->name);
    }
    if (e->dtype < 0 || !hft_dtype_is_float((hft_dtype)e->dtype))
        return hft_error(HFT_EFORMAT, "%s: tensor '%s' has dtype %s; a weight must be F32, F16, BF16 or F64",
                         file, e->name, e->st_dtype);
    hft_tensor *src = NULL;
    hft_dtype stored = (hft_dtype)e->dtype;
    bool low_file = stored == HFT_BF16 || stored == HFT_F16;
    if (e->ndim >= 2 && low_file) m->source_dtype = stored;
    hft_dtype hold = m->hold_as_stored ? (low_file ? stored : HFT_F32) : m->hold_dtype;
    hft_status st;
    if (p->value->ndim >= 2 && hold != HFT_F32) { /* held frozen in low precision, read straight into it */
        st = hft_safetensors_load(f, e->name, hold, false, &src);
        if (st == HFT_OK && p->value->device.type != HFT_CPU) { /* a model on a device: its copy goes there */
            hft_tensor *up = hft_tensor_to(src, p->value->device);
            hft_tensor_free(src);
            src = up;
            if (!src) st = hft_error_status();
        }
        if (st == HFT_OK) st = hft_tensor_adopt(p->value, src);
        p->tags |= HFT_PARAM_FROZEN;
    } else {
        HFT_TRY(hft_safetensors_load(f, e->name, stored, true, &src));
        st = hft_tensor_copy(p->value, src);
        hft_tensor_free(src);
    }
    hft_safetensors_release(f, e); /* the copy is the model's; the file's pages need not stay resident */
    m->info[i].loaded = st == HFT_OK;
    return st;
}

static bool was_taken(const char *name, const char **taken, int n) {
    for (int i = 0; i < n; i++)
        if (taken[i] && strcmp(taken[i], name) == 0) return true;
    return false;
}

static hft_status load_weights(hft_model *m, const char *dir) {
    nn_checkpoint ck;
    HFT_TRY(nn_checkpoint_open(dir, &ck));
    int np = hft_paramset_count(m->params);
    const char **taken = calloc((size_t)(np ? np : 1), sizeof *taken);
    hft_status st = taken ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    for (int i = 0; i < np && st == HFT_OK; i++) st = load_param(m, &ck, i, &taken[i]);
    for (int fi = 0; fi < ck.n_files && st == HFT_OK; fi++)
        for (int k = 0; k < hft_safetensors_count(ck.files[fi]) && st == HFT_OK; k++) {
            const char *name = hft_safetensors_entry(ck.files[fi], k)->name;
            if (!was_taken(name, taken, np) && !(m->family->ignored && m->family->ignored(m, name)))
                st = record(&m->unused, &m->n_unused, name);
        }
    free(taken);
    nn_checkpoint_close(&ck);
    return st;
}

hft_status hft_model_load(const char *dir, const hft_load_options *opts, hft_model **out) {
    *out = NULL;
    size_t n = strlen(dir) + 16;
    char *path = malloc(n);
    if (!path) return hft_error(HFT_ENOMEM, "out of memory");
    snprintf(path, n, "%s/config.json", dir);
    char *text = hft_read_text(path, NULL);
    hft_status st = text ? HFT_OK : hft_error_status();
    cJSON *config = NULL;
    if (text) st = parse_config(text, path, &config);
    free(text);
    hft_model *m = NULL;
    if (st == HFT_OK) st = model_create(config, path, opts, &m);
    free(path);
    if (st == HFT_OK && opts) {
        if (opts->hold_dtype != HFT_F32 && opts->hold_dtype != HFT_BF16 && opts->hold_dtype != HFT_F16)
            st = hft_error(HFT_EINVAL, "load: hold_dtype %s; expected bfloat16 or float16",
                           hft_dtype_name(opts->hold_dtype));
        m->hold_dtype = opts->hold_dtype;
        m->hold_as_stored = opts->hold_as_stored;
    }
    if (st == HFT_OK) st = load_weights(m, dir);
    if (st == HFT_OK) st = init_unloaded(m, dir, true);
    if (st == HFT_OK) st = hft_paramset_finalize(m->params, NN_BUCKET_BYTES);
    if (st != HFT_OK) {
        hft_model_free(m);
        return st;
    }
    *out = m;
    return HFT_OK;
}

hft_status hft_model_load_weights(hft_model *m, const char *dir) {
    for (int i = 0; i < hft_paramset_count(m->params); i++) m->info[i].loaded = m->info[i].adapter;
    nn_checkpoint ck;
    HFT_TRY(nn_checkpoint_open(dir, &ck));
    hft_status st = HFT_OK;
    for (int i = 0; i < hft_paramset_count(m->params) && st == HFT_OK; i++) {
        if (m->info[i].adapter) continue; /* an adapter's tensors come from its own folder */
        const char *taken = NULL;
        st = load_param(m, &ck, i, &taken);
        if (st == HFT_OK && !m->info[i].loaded)
            st = hft_error(HFT_EFORMAT, "%s: no tensor '%s' in the weights", dir,
                           hft_paramset_get(m->params, i)->name);
    }
    nn_checkpoint_close(&ck);
    return st;
}

void hft_model_fingerprint(const hft_model *m, char out[33]) {
    uint64_t h1 = 1469598103934665603ull, h2 = 1099511628211ull; /* two FNV-1a lanes */
    const char *arch = m->architecture;
    for (const char *c = arch; *c; c++) h1 = (h1 ^ (unsigned char)*c) * 1099511628211ull;
    for (int i = 0; i < hft_paramset_count(m->params); i++) {
        hft_param *p = hft_paramset_get(m->params, i);
        for (const char *c = p->name; *c; c++) h1 = (h1 ^ (unsigned char)*c) * 1099511628211ull;
        for (int d = 0; d < p->value->ndim; d++)
            h2 = (h2 ^ (uint64_t)p->value->shape[d]) * 0x100000001b3ull + (uint64_t)d;
        h2 = (h2 ^ (uint64_t)i) * 0x9E3779B97F4A7C15ull;
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

void hft_model_weights_digest(const hft_model *m, char out[33]) {
    uint64_t h1 = 1469598103934665603ull, h2 = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < hft_paramset_count(m->params); i++) {
        if (m->info[i].adapter) continue;
        hft_param *p = hft_paramset_get(m->params, i);
        for (const char *c = p->name; *c; c++) h1 = (h1 ^ (unsigned char)*c) * 1099511628211ull;
        for (int d = 0; d < p->value->ndim; d++) h1 = (h1 ^ (uint64_t)p->value->shape[d]) * 1099511628211ull;
        /* up to 4096 evenly spaced values' bits: reading every weight would cost a pass over the model */
        /* as f32 values, so a base held in bf16 digests as the same base loaded in f32 */
        /* a model on a device: read from a host copy (a failed copy digests names and shapes only) */
        hft_tensor *staged =
            p->value->device.type == HFT_CPU ? NULL : hft_tensor_to(p->value, (hft_device){0});
        if (p->value->device.type != HFT_CPU && !staged) continue;
        const unsigned char *data = hft_tensor_data(staged ? staged : p->value);
        hft_dtype dt = p->value->dtype;
        size_t es = hft_dtype_size(dt);
        int64_t n = hft_tensor_numel(p->value), step = n > 4096 ? n / 4096 : 1;
        for (int64_t k = 0; k < n; k += step) {
            uint64_t bits = 0;
            if (dt == HFT_BF16 || dt == HFT_F16) {
                uint16_t h;
                memcpy(&h, data + (size_t)k * es, 2);
                float v = dt == HFT_BF16 ? hft_bf16_to_f32(h) : hft_f16_to_f32(h);
                memcpy(&bits, &v, 4);
            } else {
                memcpy(&bits, data + (size_t)k * es, es < 8 ? es : 8);
            }
            h2 = (h2 ^ bits) * 0x100000001b3ull;
            h2 ^= h2 >> 29;
        }
        hft_tensor_free(staged);
    }
    snprintf(out, 33, "%016llx%016llx", (unsigned long long)h1, (unsigned long long)h2);
}

/* ---------------------------------------------------------------- saving */

hft_dtype hft_model_source_dtype(const hft_model *m) {
    return m->source_dtype;
}

hft_dtype hft_model_matrix_dtype(const hft_model *m) {
    for (int i = 0; i < hft_paramset_count(m->params); i++) {
        const hft_tensor *v = hft_paramset_get(m->params, i)->value;
        if (m->info[i].adapter || v->ndim < 2) continue;
        if (v->dtype == HFT_BF16 || v->dtype == HFT_F16) return v->dtype;
    }
    return HFT_F32;
}

/* The dtype the model's matrices are stored in, in transformers' spelling. */
static const char *stored_dtype(const hft_model *m) {
    hft_dtype dt = hft_model_matrix_dtype(m);
    return dt == HFT_BF16 ? "bfloat16" : dt == HFT_F16 ? "float16" : "float32";
}

hft_status hft_model_to_dtype(hft_model *m, hft_dtype dtype) {
    if (dtype != HFT_F32 && dtype != HFT_BF16 && dtype != HFT_F16)
        return hft_error(HFT_EINVAL, "model dtype %s; expected float32, bfloat16 or float16",
                         hft_dtype_name(dtype));
    for (int i = 0; i < hft_paramset_count(m->params); i++) {
        hft_param *p = hft_paramset_get(m->params, i);
        if (!m->info[i].adapter && hft_dtype_is_float(p->value->dtype))
            HFT_TRY(hft_tensor_convert(p->value, dtype));
    }
    return HFT_OK;
}

/* config.json as saved: the loaded one, naming this architecture and the dtype the weights are stored in. */
static char *saved_config(const hft_model *m) {
    cJSON *c = cJSON_Duplicate(m->config, true);
    if (!c) return NULL;
    cJSON *arch = cJSON_CreateArray();
    cJSON_AddItemToArray(arch, cJSON_CreateString(m->architecture));
    cJSON_DeleteItemFromObjectCaseSensitive(c, "architectures");
    cJSON_AddItemToObject(c, "architectures", arch);
    bool any = false;
    for (const char *const *k = (const char *const[]){"torch_dtype", "dtype", NULL}; *k; k++)
        if (cJSON_GetObjectItemCaseSensitive(c, *k)) {
            cJSON_ReplaceItemInObjectCaseSensitive(c, *k, cJSON_CreateString(stored_dtype(m)));
            any = true;
        }
    if (!any)
        cJSON_AddStringToObject(c, "torch_dtype", stored_dtype(m)); /* read by transformers 4.x and 5.x */
    char *text = cJSON_Print(c);
    cJSON_Delete(c);
    return text;
}

hft_status hft_model_save(hft_model *m, const char *dir) {
    if (hft_model_has_adapter(m))
        return hft_error(
            HFT_ESTATE,
            "%s: %s carries an unmerged LoRA adapter: save the adapter (hft_lora_save), or merge it "
            "into the weights first (hft_lora_merge)",
            dir, m->architecture);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return hft_error(HFT_EIO, "%s: cannot create: %s", dir, strerror(errno));
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    char *config = saved_config(m);
    hft_st_writer *w = hft_st_writer_new();
    hft_status st = path && config && w ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    if (st == HFT_OK) {
        snprintf(path, n, "%s/config.json", dir);
        st = hft_write_text(path, config, true);
    }
    if (st == HFT_OK) st = hft_st_writer_metadata(w, "format", "pt");
    for (int i = 0; i < hft_paramset_count(m->params) && st == HFT_OK; i++) {
        hft_param *p = hft_paramset_get(m->params, i);
        if (m->info[i].adapter) continue; /* merged into the weights */
        st = hft_st_writer_add(w, p->name, p->value);
    }
    if (st == HFT_OK) {
        snprintf(path, n, "%s/model.safetensors", dir);
        st = hft_st_writer_save(w, path);
    }
    hft_st_writer_free(w);
    free(config);
    free(path);
    return st;
}

/* ---------------------------------------------------------------- queries */

hft_paramset *hft_model_params(hft_model *m) {
    return m->params;
}
const char *hft_model_architecture(const hft_model *m) {
    return m->architecture;
}
hft_task hft_model_task(const hft_model *m) {
    return m->task;
}
int hft_model_layers(const hft_model *m) {
    return m->n_layers;
}
int64_t hft_model_hidden_size(const hft_model *m) {
    return m->hidden_size;
}
int64_t hft_model_vocab_size(const hft_model *m) {
    return m->vocab_size;
}
int64_t hft_model_num_labels(const hft_model *m) {
    return m->num_labels;
}
int64_t hft_model_max_positions(const hft_model *m) {
    return m->max_positions;
}
int hft_model_unused_count(const hft_model *m) {
    return m->n_unused;
}
const char *hft_model_unused(const hft_model *m, int i) {
    return i >= 0 && i < m->n_unused ? m->unused[i] : NULL;
}
int hft_model_initialized_count(const hft_model *m) {
    return m->n_initialized;
}
const char *hft_model_initialized(const hft_model *m, int i) {
    return i >= 0 && i < m->n_initialized ? m->initialized[i] : NULL;
}

/* ---------------------------------------------------------------- running */

/* Each entry point takes the batch's tensors to the context's device (no copy when they are there): the
 * whole-model calls do it once, so their stages find them there. */
hft_tensor *hft_model_embed(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train) {
    if (hft_ctx_status(ctx) != HFT_OK) return NULL;
    hft_batch d = nn_batch_to_ctx(ctx, b);
    if (hft_ctx_status(ctx) != HFT_OK) return NULL;
    return m->family->embed(ctx, m, &d, train);
}

hft_tensor *hft_model_block(hft_ctx *ctx, hft_model *m, int layer, hft_tensor *h, const hft_batch *b,
                            bool train) {
    if (!h || hft_ctx_status(ctx) != HFT_OK) return NULL;
    if (layer < 0 || layer >= m->n_layers)
        return hft_ctx_fail(ctx, HFT_EINVAL, "%s: layer %d of %d", m->architecture, layer, m->n_layers);
    hft_batch d = nn_batch_to_ctx(ctx, b);
    if (hft_ctx_status(ctx) != HFT_OK) return NULL;
    return m->family->block(ctx, m, layer, h, &d, train);
}

hft_tensor *hft_model_head_loss(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b, bool train,
                                int64_t *count) {
    if (!h || hft_ctx_status(ctx) != HFT_OK) return NULL;
    if (!m->family->head_loss || m->task == HFT_TASK_BASE)
        return hft_ctx_fail(ctx, HFT_EUNSUPPORTED,
                            "%s has no task head to compute a loss with; load it as a "
                            "*ForSequenceClassification or *ForMaskedLM architecture",
                            m->architecture);
    if (!b->labels) return hft_ctx_fail(ctx, HFT_EINVAL, "%s: the batch has no labels", m->architecture);
    hft_batch d = nn_batch_to_ctx(ctx, b);
    if (hft_ctx_status(ctx) != HFT_OK) return NULL;
    return m->family->head_loss(ctx, m, h, &d, train, count);
}

hft_tensor *hft_model_head_logits(hft_ctx *ctx, hft_model *m, hft_tensor *h, const hft_batch *b) {
    if (!h || hft_ctx_status(ctx) != HFT_OK) return NULL;
    hft_batch d = nn_batch_to_ctx(ctx, b);
    if (hft_ctx_status(ctx) != HFT_OK) return NULL;
    return m->family->head_logits(ctx, m, h, &d);
}

hft_tensor *hft_model_pooler(hft_ctx *ctx, hft_model *m, hft_tensor *h) {
    if (!h || hft_ctx_status(ctx) != HFT_OK) return NULL;
    if (!m->family->pooler) return hft_ctx_fail(ctx, HFT_EUNSUPPORTED, "%s has no pooler", m->architecture);
    return m->family->pooler(ctx, m, h);
}

static hft_tensor *hidden_on_ctx(hft_ctx *ctx, hft_model *m, const hft_batch *d, bool train) {
    hft_tensor *h = hft_model_embed(ctx, m, d, train);
    for (int l = 0; l < m->n_layers && h; l++) h = hft_model_block(ctx, m, l, h, d, train);
    return h;
}

hft_tensor *hft_model_hidden(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train) {
    hft_batch d = nn_batch_to_ctx(ctx, b);
    return hft_ctx_status(ctx) == HFT_OK ? hidden_on_ctx(ctx, m, &d, train) : NULL;
}

hft_tensor *hft_model_loss(hft_ctx *ctx, hft_model *m, const hft_batch *b, bool train, int64_t *count) {
    hft_batch d = nn_batch_to_ctx(ctx, b);
    if (hft_ctx_status(ctx) != HFT_OK) return NULL;
    return hft_model_head_loss(ctx, m, hidden_on_ctx(ctx, m, &d, train), &d, train, count);
}

hft_tensor *hft_model_logits(hft_ctx *ctx, hft_model *m, const hft_batch *b) {
    hft_batch d = nn_batch_to_ctx(ctx, b);
    if (hft_ctx_status(ctx) != HFT_OK) return NULL;
    return hft_model_head_logits(ctx, m, hidden_on_ctx(ctx, m, &d, false), &d);
}

/* ---------------------------------------------------------------- devices */

hft_device hft_model_device(const hft_model *m) {
    int n = hft_paramset_count(m->params);
    return n ? hft_paramset_get(m->params, 0)->value->device : (hft_device){HFT_CPU, 0};
}

hft_status nn_require_cpu(const hft_model *m, const char *what) {
    if (hft_model_device(m).type == HFT_CPU) return HFT_OK;
    return hft_error(HFT_EUNSUPPORTED,
                     "%s: %s runs on the CPU only for now, and this model is on cuda:%d; move it back with "
                     "hft_model_to_device(m, {HFT_CPU, 0})",
                     m->architecture, what, hft_model_device(m).index);
}

hft_status nn_tensor_move(hft_tensor *t, hft_device device) {
    if (t->device.type == device.type && (device.type == HFT_CPU || t->device.index == device.index))
        return HFT_OK;
    hft_tensor *c = hft_tensor_to(t, device);
    if (!c) return hft_error_status();
    return hft_tensor_adopt(t, c);
}

hft_status nn_frozen_params_to(hft_model *m, hft_device device) {
    for (int i = 0; i < hft_paramset_count(m->params); i++) {
        hft_param *p = hft_paramset_get(m->params, i);
        if (!(p->tags & HFT_PARAM_FROZEN)) continue; /* the trainable ones go with the flat buffer */
        hft_status st = nn_tensor_move(p->value, device);
        if (st != HFT_OK)
            return hft_error(st, "%s: moving '%s' to the device: %s", m->architecture, p->name,
                             hft_error_message());
    }
    return HFT_OK;
}

/* The gradient views are dropped first (reopen) and made again on the device with the flat buffers, into
 * which the trainable values are copied straight from where they are: the device holds them once. */
hft_status hft_model_to_device(hft_model *m, hft_device device) {
    if (device.type != HFT_CPU && !hft_kernels_for(device.type))
        return hft_error(HFT_EDEVICE, "%s: no backend for device type %d is loaded (hft_cuda_load first)",
                         m->architecture, (int)device.type);
    HFT_TRY(hft_paramset_reopen(m->params));
    HFT_TRY(nn_frozen_params_to(m, device));
    if (m->family->to_device) HFT_TRY(m->family->to_device(m, device));
    return hft_paramset_finalize_on(m->params, NN_BUCKET_BYTES, device);
}
