/* LoRA adapters as PEFT builds them: choosing the linear modules (target_modules, exclude_modules,
 * layers_to_transform, "all-linear"), freezing the base, adding the A and B factors with PEFT's
 * initialisation and scaling, and folding them into the base weights. Files are in lora_io.c. */
#include "nn/lora_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEFT_PREFIX "base_model.model."

void nn_adapter_free(nn_adapter *a) {
    if (!a) return;
    lora_config_free(&a->cfg);
    cJSON_Delete(a->json);
    free(a->modules);
    free(a);
}

bool hft_model_has_adapter(const hft_model *m) {
    return m->adapter && !m->adapter->merged;
}

int hft_lora_module_count(const hft_model *m) {
    return m->adapter && !m->adapter->merged ? m->adapter->n_modules : 0;
}

/* ---------------------------------------------------------------- choosing modules */

/* PEFT's target_modules when a config names none (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
static const char *const *default_targets(const hft_model *m) {
    static const char *const gpt2[] = {"c_attn", NULL}, *const llama[] = {"q_proj", "v_proj", NULL},
                             *const bert[] = {"query", "value", NULL};
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(m->config, "model_type");
    const char *type = cJSON_IsString(t) ? t->valuestring : "";
    if (strcmp(type, "gpt2") == 0) return gpt2;
    if (strcmp(type, "llama") == 0 || strcmp(type, "mistral") == 0 || strcmp(type, "qwen2") == 0)
        return llama;
    if (strcmp(type, "bert") == 0) return bert;
    return NULL;
}

/* modules_to_save entry `name` covers module path `key` (PEFT: (^|.*\.)name($|\..*)). */
static bool covers(const char *name, const char *key) {
    size_t n = strlen(name);
    for (const char *p = key; (p = strstr(p, name)) != NULL; p++) {
        bool start = p == key || p[-1] == '.';
        bool end = p[n] == '\0' || p[n] == '.';
        if (start && end) return true;
    }
    return false;
}

static bool is_target(const lora_config *c, const nn_linear *lin, bool seq_cls) {
    const char *key = lin->module;
    if (c->exclude_regex.compiled ? lora_regex_match(&c->exclude_regex, key)
                                  : lora_name_listed(key, c->excludes, c->n_excludes))
        return false;
    for (int i = 0; i < c->n_to_save; i++) /* never both a LoRA target and a module to save */
        if (covers(c->to_save[i], key)) return false;
    if (c->all_linear) return !(lin->output && seq_cls);
    if (c->target_regex.compiled) return lora_regex_match(&c->target_regex, key);
    if (!lora_name_listed(key, c->targets, c->n_targets)) return false;
    if (c->n_layers == 0) return true;
    int64_t idx = lora_layer_index(key, c->layers_pattern, c->n_layers_pattern);
    for (int i = 0; i < c->n_layers; i++)
        if (idx >= 0 && c->layers[i] == idx) return true;
    return false;
}

/* The value of the first pattern matching `key`, else `def` (PEFT's get_pattern_key). */
static double pattern_value(const lora_pattern *p, int n, const char *key, double def) {
    for (int i = 0; i < n; i++)
        if (lora_regex_match(&p[i].re, key)) return p[i].value;
    return def;
}

/* The module path a parameter belongs to, its name without the last segment ("" for a top-level one). */
static size_t module_len(const char *param) {
    const char *dot = strrchr(param, '.');
    return dot ? (size_t)(dot - param) : 0;
}

/* modules_to_save entry `name` covers parameter `param` (PEFT matches module paths by suffix). */
static bool saves(const char *name, const char *param) {
    size_t ml = module_len(param), n = strlen(name);
    for (size_t end = ml; end > 0; end--) { /* every module path the parameter is inside */
        if (end != ml && param[end] != '.') continue;
        if (end >= n && strncmp(param + end - n, name, n) == 0) return true;
    }
    return false;
}

static bool is_bias(const char *name) {
    size_t n = strlen(name);
    return strcmp(name, "bias") == 0 || (n > 5 && strcmp(name + n - 5, ".bias") == 0);
}

static const nn_linear *module_of(const hft_model *m, const char *param) {
    size_t ml = module_len(param);
    for (int i = 0; i < m->n_linears; i++)
        if (strlen(m->linears[i]->module) == ml && strncmp(m->linears[i]->module, param, ml) == 0)
            return m->linears[i];
    return NULL;
}

/* The names of the model's linear modules without their layer paths, for a message. */
static void module_names(const hft_model *m, char *buf, size_t size) {
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < m->n_linears && n + 1 < size; i++) {
        const char *key = m->linears[i]->module;
        const char *last = strrchr(key, '.');
        last = last ? last + 1 : key;
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) {
            const char *o = strrchr(m->linears[j]->module, '.');
            seen = strcmp(o ? o + 1 : m->linears[j]->module, last) == 0;
        }
        if (!seen) n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "", last);
    }
}

/* ---------------------------------------------------------------- the JSON written */

static hft_status set_item(cJSON *obj, const char *key, cJSON *item) {
    if (!item) return hft_error(HFT_ENOMEM, "out of memory");
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
    else
        cJSON_AddItemToObject(obj, key, item);
    return HFT_OK;
}

static cJSON *string_array(char *const *v, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(v[i]));
    return a;
}

/* The base model's folder, as PEFT records base_model_name_or_path. */
static cJSON *base_path(const hft_model *m) {
    const char *cp = m->config_path ? m->config_path : "";
    size_t n = strlen(cp), s = strlen("/config.json");
    if (n > s && strcmp(cp + n - s, "/config.json") == 0) {
        char *dir = strndup(cp, n - s);
        cJSON *v = dir ? cJSON_CreateString(dir) : NULL;
        free(dir);
        return v;
    }
    return cJSON_CreateNull();
}

/* adapter_config.json: the given settings, completed as PEFT completes them when it saves. */
static hft_status build_json(hft_model *m, nn_adapter *a, const cJSON *given) {
    a->json = cJSON_Duplicate(given, true);
    if (!a->json) return hft_error(HFT_ENOMEM, "out of memory");
    cJSON *j = a->json;
    bool conv1d = false;
    for (int i = 0; i < a->n_modules; i++) conv1d |= a->modules[i]->conv1d;
    HFT_TRY(set_item(j, "peft_type", cJSON_CreateString("LORA")));
    HFT_TRY(set_item(j, "task_type",
                     a->cfg.task_type ? cJSON_CreateString(a->cfg.task_type) : cJSON_CreateNull()));
    if (!cJSON_GetObjectItemCaseSensitive(j, "base_model_name_or_path"))
        HFT_TRY(set_item(j, "base_model_name_or_path", base_path(m)));
    HFT_TRY(set_item(j, "r", cJSON_CreateNumber(a->cfg.r)));
    HFT_TRY(set_item(j, "lora_alpha", cJSON_CreateNumber(a->cfg.alpha)));
    HFT_TRY(set_item(j, "lora_dropout", cJSON_CreateNumber(a->cfg.dropout)));
    HFT_TRY(set_item(j, "use_rslora", cJSON_CreateBool(a->cfg.rslora)));
    HFT_TRY(set_item(j, "fan_in_fan_out", cJSON_CreateBool(conv1d))); /* PEFT sets it for Conv1D */
    const char *bias[] = {"none", "lora_only", "all"};
    HFT_TRY(set_item(j, "bias", cJSON_CreateString(bias[a->cfg.bias])));
    HFT_TRY(set_item(j, "init_lora_weights", cJSON_CreateBool(a->cfg.init_weights)));
    HFT_TRY(set_item(j, "inference_mode", cJSON_CreateTrue()));
    if (a->cfg.all_linear) { /* PEFT saves the modules "all-linear" chose */
        char **names = malloc((size_t)(a->n_modules ? a->n_modules : 1) * sizeof *names);
        if (!names) return hft_error(HFT_ENOMEM, "out of memory");
        for (int i = 0; i < a->n_modules; i++) names[i] = a->modules[i]->module;
        cJSON *list = string_array(names, a->n_modules);
        free(names);
        HFT_TRY(set_item(j, "target_modules", list));
    } else if (!a->cfg.target_regex.compiled) {
        HFT_TRY(set_item(j, "target_modules", string_array(a->cfg.targets, a->cfg.n_targets)));
    }
    HFT_TRY(set_item(j, "modules_to_save",
                     a->cfg.n_to_save ? string_array(a->cfg.to_save, a->cfg.n_to_save) : cJSON_CreateNull()));
    return HFT_OK;
}

/* ---------------------------------------------------------------- attaching */

/* Fills what the settings leave to the model: the task type, the heads a classifier saves, and the
 * default target modules. */
static hft_status complete_config(hft_model *m, lora_config *c, const cJSON *given, const char *source) {
    if (!cJSON_GetObjectItemCaseSensitive(given, "task_type") && !c->task_type) {
        const char *t = m->task == HFT_TASK_CAUSAL_LM ? "CAUSAL_LM"
                        : m->task == HFT_TASK_SEQ_CLS ? "SEQ_CLS"
                                                      : NULL;
        if (t && !(c->task_type = strdup(t))) return hft_error(HFT_ENOMEM, "out of memory");
    }
    if (c->task_type && strcmp(c->task_type, "SEQ_CLS") == 0) { /* PeftModelForSequenceClassification */
        const char *heads[] = {"classifier", "score"};
        char **ts = realloc(c->to_save, (size_t)(c->n_to_save + 2) * sizeof *ts);
        bool *ta = ts ? realloc(c->to_save_auto, (size_t)(c->n_to_save + 2) * sizeof *ta) : NULL;
        if (ts) c->to_save = ts;
        if (!ta) return hft_error(HFT_ENOMEM, "out of memory");
        c->to_save_auto = ta;
        for (int i = c->n_to_save; i < c->n_to_save + 2; i++) ta[i] = false;
        for (int h = 0; h < 2; h++) {
            bool have = false;
            for (int i = 0; i < c->n_to_save; i++) have |= strcmp(c->to_save[i], heads[h]) == 0;
            if (have) continue;
            if (!(c->to_save[c->n_to_save] = strdup(heads[h]))) return hft_error(HFT_ENOMEM, "out of memory");
            c->to_save_auto[c->n_to_save++] = true;
        }
    }
    if (!c->targets) {
        const char *const *def = default_targets(m);
        if (!def)
            return hft_error(HFT_EFORMAT,
                             "%s: 'target_modules' is required for %s (no default for its model type)",
                             source, m->architecture);
        int n = 0;
        while (def[n]) n++;
        c->targets = calloc((size_t)n, sizeof *c->targets);
        if (!c->targets) return hft_error(HFT_ENOMEM, "out of memory");
        for (c->n_targets = 0; c->n_targets < n; c->n_targets++)
            if (!(c->targets[c->n_targets] = strdup(def[c->n_targets])))
                return hft_error(HFT_ENOMEM, "out of memory");
    }
    return HFT_OK;
}

/* Which modules get a LoRA branch, and that every modules_to_save entry names something. Changes nothing. */
static hft_status select_modules(hft_model *m, nn_adapter *a, const char *source, bool strict) {
    const lora_config *c = &a->cfg;
    bool seq_cls = c->task_type && strcmp(c->task_type, "SEQ_CLS") == 0;
    a->modules = malloc((size_t)(m->n_linears ? m->n_linears : 1) * sizeof *a->modules);
    if (!a->modules) return hft_error(HFT_ENOMEM, "out of memory");
    for (int i = 0; i < m->n_linears; i++)
        if (is_target(c, m->linears[i], seq_cls)) a->modules[a->n_modules++] = m->linears[i];
    if (a->n_modules == 0) {
        char names[600];
        module_names(m, names, sizeof names);
        return hft_error(
            HFT_EFORMAT,
            "%s: 'target_modules' (with exclude_modules and layers_to_transform) matches no linear "
            "module of %s; its linear modules are: %s (LoRA on embeddings and on the output layer "
            "is not supported)",
            source, m->architecture, names);
    }
    for (int s = 0; s < c->n_to_save && strict;
         s++) { /* PEFT passes over names an adapter file lists in vain */
        if (c->to_save_auto && c->to_save_auto[s]) continue;
        bool found = false;
        for (int i = 0; i < hft_paramset_count(m->params) && !found; i++)
            found = saves(c->to_save[s], hft_paramset_get(m->params, i)->name);
        if (!found)
            return hft_error(HFT_EFORMAT,
                             "%s: 'modules_to_save': '%s' names no module of %s that has parameters", source,
                             c->to_save[s], m->architecture);
    }
    return HFT_OK;
}

/* Whether base parameter `name` stays trainable: a bias the `bias` setting trains, or a module to save. */
static bool trains(const hft_model *m, const lora_config *c, const char *name) {
    for (int s = 0; s < c->n_to_save; s++)
        if (saves(c->to_save[s], name)) return true;
    if (c->bias == LORA_BIAS_ALL) return is_bias(name);
    if (c->bias == LORA_BIAS_LORA_ONLY) {
        const nn_linear *lin = module_of(m, name);
        return lin && lin->lora.a && lin->bias && strcmp(name + module_len(name), ".bias") == 0;
    }
    return false;
}

static hft_status add_factors(hft_model *m, nn_adapter *a, uint64_t seed) {
    const lora_config *c = &a->cfg;
    int first = hft_paramset_count(m->params);
    for (int i = 0; i < a->n_modules; i++) {
        nn_linear *lin = a->modules[i];
        nn_lora *l = &lin->lora;
        l->r = (int)pattern_value(c->rank_pattern, c->n_rank_pattern, lin->module, c->r);
        l->alpha = pattern_value(c->alpha_pattern, c->n_alpha_pattern, lin->module, c->alpha);
        l->scaling = c->rslora ? l->alpha / sqrt((double)l->r) : l->alpha / l->r;
        l->dropout = c->dropout;
        l->site = (uint16_t)(0x8000u + (unsigned)i); /* apart from the model's own dropout sites */
        /* nn.Linear's reset_parameters: kaiming_uniform_(a=√5) is U(±1/√fan_in); PEFT then zeroes B */
        nn_init a_init = {NN_INIT_UNIFORM, 1.0 / sqrt((double)lin->in), -1};
        nn_init b_init = c->init_weights ? (nn_init){NN_INIT_ZEROS, 0, -1}
                                         : (nn_init){NN_INIT_UNIFORM, 1.0 / sqrt((double)l->r), -1};
        l->a = nn_param(m, a_init, 0, false, 2, (int64_t[]){l->r, lin->in}, "%s.lora_A.weight", lin->module);
        l->b = nn_param(m, b_init, 0, false, 2, (int64_t[]){lin->out, l->r}, "%s.lora_B.weight", lin->module);
        HFT_TRY(m->status);
    }
    for (int i = first; i < hft_paramset_count(m->params); i++) {
        hft_param *p = hft_paramset_get(m->params, i);
        m->info[i].adapter = true;
        m->info[i].loaded = true;
        HFT_TRY(nn_init_tensor(p->value, m->info[i].init, seed, p->name));
    }
    return HFT_OK;
}

hft_status nn_lora_attach(hft_model *m, const cJSON *given, const char *source, bool strict, uint64_t seed) {
    if (m->adapter)
        return hft_error(HFT_ESTATE, "%s: %s already has a LoRA adapter%s", source, m->architecture,
                         m->adapter->merged ? " (merged)" : "");
    nn_adapter *a = calloc(1, sizeof *a);
    if (!a) return hft_error(HFT_ENOMEM, "out of memory");
    hft_status st = lora_config_parse(given, source, strict, &a->cfg);
    if (st == HFT_OK) st = complete_config(m, &a->cfg, given, source);
    if (st == HFT_OK) st = select_modules(m, a, source, strict);
    if (st != HFT_OK) { /* nothing changed yet */
        nn_adapter_free(a);
        return st;
    }
    /* From here the model changes: a failure (out of memory) leaves it unusable. */
    m->adapter = a;
    hft_device device = hft_model_device(m); /* the new factors are made on the host, then moved there */
    HFT_TRY(hft_paramset_reopen(m->params));
    HFT_TRY(add_factors(m, a, seed)); /* before the tags: lora_only asks which modules have a branch */
    for (int i = 0; i < hft_paramset_count(m->params); i++) {
        hft_param *p = hft_paramset_get(m->params, i);
        if (m->info[i].adapter) continue;
        p->tags |= HFT_PARAM_FROZEN;
        if (trains(m, &a->cfg, p->name)) {
            p->tags &= ~(uint32_t)HFT_PARAM_FROZEN;
            HFT_TRY(hft_tensor_convert(p->value, HFT_F32)); /* held in bf16 by the loader: trains in f32 */
        }
    }
    HFT_TRY(build_json(m, a, given));
    HFT_TRY(nn_frozen_params_to(m, device));
    return hft_paramset_finalize_on(m->params, NN_BUCKET_BYTES, device);
}

hft_status hft_lora_config_check(const char *config_json, const char *source) {
    const char *src = source ? source : "LoRA config";
    cJSON *given = cJSON_Parse(config_json ? config_json : "{}");
    if (!given) return hft_error(HFT_EFORMAT, "%s: not valid JSON", src);
    lora_config c;
    hft_status st = lora_config_parse(given, src, true, &c);
    lora_config_free(&c);
    cJSON_Delete(given);
    return st;
}

hft_status hft_lora_attach(hft_model *m, const char *config_json, const char *source, uint64_t seed) {
    const char *src = source ? source : "LoRA config";
    cJSON *given = cJSON_Parse(config_json ? config_json : "{}");
    if (!given) return hft_error(HFT_EFORMAT, "%s: not valid JSON", src);
    hft_status st = nn_lora_attach(m, given, src, true, seed);
    cJSON_Delete(given);
    return st;
}

/* ---------------------------------------------------------------- names and merging */

void lora_peft_name(const hft_model *m, const char *param, char *out, size_t size) {
    const nn_linear *lin = module_of(m, param);
    size_t ml = module_len(param);
    if (lin &&
        lin->lora.a) /* the module became lora.Linear: its own weight and bias moved under base_layer */
        snprintf(out, size, PEFT_PREFIX "%.*s.base_layer%s", (int)ml, param, param + ml);
    else
        snprintf(out, size, PEFT_PREFIX "%s", param);
}

bool lora_saves_param(const hft_model *m, int i) {
    hft_param *p = hft_paramset_get(m->params, i);
    return p && !(p->tags & HFT_PARAM_FROZEN);
}

hft_status hft_lora_merge(hft_model *m) {
    nn_adapter *a = m->adapter;
    if (!a) return hft_error(HFT_ESTATE, "%s has no LoRA adapter to merge", m->architecture);
    if (a->merged) return HFT_OK;
    HFT_TRY(nn_require_cpu(m, "merging a LoRA adapter"));
    for (int i = 0; i < a->n_modules; i++) {
        nn_linear *lin = a->modules[i];
        const nn_lora *l = &lin->lora;
        const float *A = hft_tensor_data(l->a), *B = hft_tensor_data(l->b);
        hft_dtype dt = lin->weight->dtype;
        float *W = hft_tensor_data(lin->weight);
        uint16_t *W16 = (uint16_t *)W; /* a base held in bf16/f16 */
        int64_t in = lin->in, out = lin->out, r = l->r;
        /* W [out, in] += scaling · B A; a Conv1D weight is [in, out], so it takes the transpose. A bf16 or
         * f16 base adds the f32 delta and rounds once, as peft 0.21 merges its f32 adapters (its default
         * autocast_adapter_dtype) into a bf16 base: checked bit for bit against merge_and_unload. */
        for (int64_t o = 0; o < out; o++)
            for (int64_t j = 0; j < in; j++) {
                double s = 0;
                for (int64_t k = 0; k < r; k++) s += (double)B[o * r + k] * A[k * in + j];
                float delta = (float)(s * l->scaling);
                int64_t at = lin->conv1d ? j * out + o : o * in + j;
                if (dt == HFT_BF16)
                    W16[at] = hft_f32_to_bf16(hft_bf16_to_f32(W16[at]) + delta);
                else if (dt == HFT_F16)
                    W16[at] = hft_f32_to_f16(hft_f16_to_f32(W16[at]) + delta);
                else
                    W[at] += delta;
            }
        lin->weight->version++;
        lin->lora.a = lin->lora.b = NULL; /* the factors stay in the parameter set, unused */
    }
    a->merged = true;
    return HFT_OK;
}
