/* PEFT's LoraConfig read from JSON (adapter_config.json, or a recipe's lora section turned into JSON):
 * the fields hft implements, with PEFT's defaults, and a clear refusal for the ones it does not. */
#include "nn/lora_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Fields of LoraConfig hft implements. */
static const char *const known[] = {"r",
                                    "lora_alpha",
                                    "lora_dropout",
                                    "target_modules",
                                    "exclude_modules",
                                    "bias",
                                    "use_rslora",
                                    "modules_to_save",
                                    "rank_pattern",
                                    "alpha_pattern",
                                    "layers_to_transform",
                                    "layers_pattern",
                                    "fan_in_fan_out",
                                    "init_lora_weights",
                                    "task_type",
                                    "peft_type",
                                    "base_model_name_or_path",
                                    "revision",
                                    "inference_mode",
                                    "peft_version",
                                    "auto_mapping",
                                    NULL};

/* Fields PEFT writes whose default hft matches; any other value asks for a method hft lacks. The value
 * is the default as JSON text. */
static const char *const defaults[][2] = {
    {"use_dora", "false"},
    {"lora_bias", "false"},
    {"layer_replication", "null"},
    {"target_parameters", "null"},
    {"trainable_token_indices", "null"},
    {"megatron_config", "null"},
    {"loftq_config", "{}"},
    {"use_qalora", "false"},
    {"alora_invocation_tokens", "null"},
    {"arrow_config", "null"},
    {"eva_config", "null"},
    {"corda_config", "null"},
    {"use_bdlora", "null"},
    {"monteclora_config", "null"},
    {"kasa_config", "null"},
    {"lora_ga_config", "null"},
    {"velora_config", "null"},
    {"runtime_config", "null"},
};
/* Fields that change nothing in what hft computes. */
static const char *const ignored[] = {"megatron_core", "qalora_group_size", "ensure_weight_tying", NULL};

static bool in_list(const char *const *list, const char *key) {
    for (; *list; list++)
        if (strcmp(*list, key) == 0) return true;
    return false;
}

static const char *default_of(const char *key) {
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (strcmp(defaults[i][0], key) == 0) return defaults[i][1];
    return NULL;
}

static bool is_default(const cJSON *v, const char *def) {
    if (strcmp(def, "null") == 0) return cJSON_IsNull(v);
    if (strcmp(def, "false") == 0) return cJSON_IsFalse(v) || cJSON_IsNull(v);
    if (strcmp(def, "{}") == 0) return cJSON_IsNull(v) || (cJSON_IsObject(v) && !v->child);
    return false;
}

static hft_status bad(const char *source, const char *key, const char *expected) {
    return hft_error(HFT_EFORMAT, "%s: '%s': expected %s", source, key, expected);
}

/* A string or a list of strings into (list, n); a lone string also into *one when one is not NULL. */
static hft_status str_list(const cJSON *v, const char *source, const char *key, char ***list, int *n,
                           char **one) {
    if (cJSON_IsNull(v)) return HFT_OK;
    if (cJSON_IsString(v) && one) {
        *one = strdup(v->valuestring);
        return *one ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    }
    if (!cJSON_IsArray(v))
        return bad(source, key, one ? "a string or a list of strings" : "a list of strings");
    int count = cJSON_GetArraySize(v);
    *list = calloc((size_t)(count ? count : 1), sizeof **list);
    if (!*list) return hft_error(HFT_ENOMEM, "out of memory");
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        if (!cJSON_IsString(item)) return bad(source, key, "a list of strings");
        (*list)[*n] = strdup(item->valuestring);
        if (!(*list)[(*n)++]) return hft_error(HFT_ENOMEM, "out of memory");
    }
    return HFT_OK;
}

static hft_status patterns(const cJSON *v, const char *source, const char *key, bool integer,
                           lora_pattern **out, int *n) {
    if (cJSON_IsNull(v)) return HFT_OK;
    if (!cJSON_IsObject(v)) return bad(source, key, "a mapping of module-name patterns to values");
    int count = cJSON_GetArraySize(v);
    *out = calloc((size_t)(count ? count : 1), sizeof **out);
    if (!*out) return hft_error(HFT_ENOMEM, "out of memory");
    const cJSON *item;
    cJSON_ArrayForEach(item, v) {
        char where[300];
        snprintf(where, sizeof where, "%s: '%s.%s'", source, key, item->string);
        if (!cJSON_IsNumber(item) || (integer && (item->valuedouble != floor(item->valuedouble) ||
                                                  item->valuedouble < 1 || item->valuedouble > 1 << 20)))
            return hft_error(HFT_EFORMAT, "%s: expected %s", where,
                             integer ? "a positive integer" : "a number");
        lora_pattern *p = &(*out)[(*n)++];
        p->key = strdup(item->string);
        p->value = item->valuedouble;
        if (!p->key) return hft_error(HFT_ENOMEM, "out of memory");
        HFT_TRY(lora_regex_compile(p->key, true, where, &p->re));
    }
    return HFT_OK;
}

static hft_status layers(const cJSON *v, const char *source, lora_config *c) {
    if (cJSON_IsNull(v)) return HFT_OK;
    int count = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    c->layers = calloc((size_t)(count ? count : 1), sizeof *c->layers);
    if (!c->layers) return hft_error(HFT_ENOMEM, "out of memory");
    const cJSON *item = cJSON_IsArray(v) ? v->child : v;
    for (; item; item = cJSON_IsArray(v) ? item->next : NULL) {
        if (!cJSON_IsNumber(item) || item->valuedouble != floor(item->valuedouble) || item->valuedouble < 0)
            return bad(source, "layers_to_transform",
                       "a layer index or a list of layer indices (integers >= 0)");
        c->layers[c->n_layers++] = (int64_t)item->valuedouble;
    }
    return HFT_OK;
}

static hft_status number(const cJSON *v, const char *source, const char *key, double *out) {
    if (cJSON_IsNull(v)) return HFT_OK;
    if (!cJSON_IsNumber(v)) return bad(source, key, "a number");
    *out = v->valuedouble;
    return HFT_OK;
}

static hft_status boolean(const cJSON *v, const char *source, const char *key, bool *out) {
    if (cJSON_IsNull(v)) return HFT_OK;
    if (!cJSON_IsBool(v)) return bad(source, key, "true or false");
    *out = cJSON_IsTrue(v);
    return HFT_OK;
}

static hft_status parse_field(const cJSON *v, const char *key, const char *source, lora_config *c) {
    if (strcmp(key, "r") == 0) {
        double r = c->r;
        HFT_TRY(number(v, source, key, &r));
        if (r != floor(r) || r < 1 || r > 1 << 20) return bad(source, key, "a positive integer");
        c->r = (int)r;
    } else if (strcmp(key, "lora_alpha") == 0) {
        HFT_TRY(number(v, source, key, &c->alpha));
    } else if (strcmp(key, "lora_dropout") == 0) {
        HFT_TRY(number(v, source, key, &c->dropout));
        if (!(c->dropout >= 0 && c->dropout < 1)) return bad(source, key, "a probability in [0, 1)");
    } else if (strcmp(key, "use_rslora") == 0) {
        HFT_TRY(boolean(v, source, key, &c->rslora));
    } else if (strcmp(key, "fan_in_fan_out") == 0) {
        bool unused; /* set per module: Conv1D stores its weight transposed, nn.Linear does not */
        HFT_TRY(boolean(v, source, key, &unused));
    } else if (strcmp(key, "inference_mode") == 0) {
        bool unused;
        HFT_TRY(boolean(v, source, key, &unused));
    } else if (strcmp(key, "init_lora_weights") == 0) {
        if (cJSON_IsString(v))
            return hft_error(
                HFT_EUNSUPPORTED,
                "%s: 'init_lora_weights': \"%s\" is not supported (true: A Kaiming-uniform, B zeros; "
                "false: both Kaiming-uniform)",
                source, v->valuestring);
        HFT_TRY(boolean(v, source, key, &c->init_weights));
    } else if (strcmp(key, "bias") == 0) {
        const char *b = cJSON_IsString(v) ? v->valuestring : NULL;
        if (b && strcmp(b, "none") == 0)
            c->bias = LORA_BIAS_NONE;
        else if (b && strcmp(b, "lora_only") == 0)
            c->bias = LORA_BIAS_LORA_ONLY;
        else if (b && strcmp(b, "all") == 0)
            c->bias = LORA_BIAS_ALL;
        else if (!cJSON_IsNull(v))
            return bad(source, key, "\"none\", \"lora_only\" or \"all\"");
    } else if (strcmp(key, "target_modules") == 0) {
        char *one = NULL;
        HFT_TRY(str_list(v, source, key, &c->targets, &c->n_targets, &one));
        if (one) {
            if (strcasecmp(one, "all-linear") == 0) {
                c->all_linear = true;
            } else {
                char where[300];
                snprintf(where, sizeof where, "%s: 'target_modules'", source);
                hft_status st = lora_regex_compile(one, false, where, &c->target_regex);
                if (st != HFT_OK) {
                    free(one);
                    return st;
                }
            }
            c->targets = malloc(sizeof *c->targets);
            if (!c->targets) {
                free(one);
                return hft_error(HFT_ENOMEM, "out of memory");
            }
            c->targets[0] = one; /* kept for adapter_config.json */
            c->n_targets = 1;
        }
    } else if (strcmp(key, "exclude_modules") == 0) {
        char *one = NULL;
        HFT_TRY(str_list(v, source, key, &c->excludes, &c->n_excludes, &one));
        if (one) {
            char where[300];
            snprintf(where, sizeof where, "%s: 'exclude_modules'", source);
            hft_status st = lora_regex_compile(one, false, where, &c->exclude_regex);
            free(one);
            HFT_TRY(st);
        }
    } else if (strcmp(key, "modules_to_save") == 0) {
        HFT_TRY(str_list(v, source, key, &c->to_save, &c->n_to_save, NULL));
    } else if (strcmp(key, "layers_pattern") == 0) {
        char *one = NULL;
        HFT_TRY(str_list(v, source, key, &c->layers_pattern, &c->n_layers_pattern, &one));
        if (one) {
            c->layers_pattern = malloc(sizeof *c->layers_pattern);
            if (!c->layers_pattern) {
                free(one);
                return hft_error(HFT_ENOMEM, "out of memory");
            }
            c->layers_pattern[0] = one;
            c->n_layers_pattern = 1;
        }
        for (int i = 0; i < c->n_layers_pattern; i++)
            if (strpbrk(c->layers_pattern[i], ".*+?()[]{}|^$\\"))
                return hft_error(
                    HFT_EUNSUPPORTED,
                    "%s: 'layers_pattern': '%s': only plain module names (like \"layers\" or \"h\") "
                    "are supported",
                    source, c->layers_pattern[i]);
    } else if (strcmp(key, "layers_to_transform") == 0) {
        HFT_TRY(layers(v, source, c));
    } else if (strcmp(key, "rank_pattern") == 0) {
        HFT_TRY(patterns(v, source, key, true, &c->rank_pattern, &c->n_rank_pattern));
    } else if (strcmp(key, "alpha_pattern") == 0) {
        HFT_TRY(patterns(v, source, key, false, &c->alpha_pattern, &c->n_alpha_pattern));
    } else if (strcmp(key, "task_type") == 0) {
        if (cJSON_IsString(v)) {
            c->task_type = strdup(v->valuestring);
            if (!c->task_type) return hft_error(HFT_ENOMEM, "out of memory");
        } else if (!cJSON_IsNull(v)) {
            return bad(source, key, "a string such as \"CAUSAL_LM\" or \"SEQ_CLS\"");
        }
    } else if (strcmp(key, "peft_type") == 0) {
        if (!cJSON_IsString(v) || strcmp(v->valuestring, "LORA") != 0)
            return hft_error(HFT_EUNSUPPORTED, "%s: 'peft_type': only \"LORA\" adapters are supported",
                             source);
    }
    /* base_model_name_or_path, revision, peft_version, auto_mapping: carried as they are */
    return HFT_OK;
}

hft_status lora_config_parse(const cJSON *obj, const char *source, bool strict, lora_config *c) {
    *c = (lora_config){.r = 8, .alpha = 8, .init_weights = true};
    if (!cJSON_IsObject(obj))
        return hft_error(HFT_EFORMAT, "%s: expected a mapping of LoRA settings", source);
    const cJSON *v;
    cJSON_ArrayForEach(v, obj) {
        const char *key = v->string;
        if (in_list(known, key)) {
            HFT_TRY(parse_field(v, key, source, c));
            continue;
        }
        const char *def = default_of(key);
        if (def && is_default(v, def)) continue;
        if (def)
            return hft_error(HFT_EUNSUPPORTED,
                             "%s: '%s' is not supported (hft implements plain LoRA; expected %s)", source,
                             key, def);
        if (in_list(ignored, key) && !strict) continue;
        if (strict) {
            char list[800];
            size_t n = 0;
            for (const char *const *k = known; *k && n < sizeof list; k++)
                if (strcmp(*k, "peft_type") && strcmp(*k, "revision") && strcmp(*k, "inference_mode") &&
                    strcmp(*k, "peft_version") && strcmp(*k, "auto_mapping"))
                    n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", n ? ", " : "", *k);
            return hft_error(HFT_EFORMAT, "%s: unknown LoRA setting '%s' (known: %s)", source, key, list);
        }
        /* an adapter_config.json field of another PEFT version: ignored as PEFT ignores unknown fields */
    }
    return HFT_OK;
}

static void free_list(char **l, int n) {
    for (int i = 0; i < n; i++) free(l[i]);
    free(l);
}

void lora_config_free(lora_config *c) {
    free_list(c->targets, c->n_targets);
    lora_regex_free(&c->target_regex);
    free_list(c->excludes, c->n_excludes);
    lora_regex_free(&c->exclude_regex);
    free_list(c->to_save, c->n_to_save);
    free(c->to_save_auto);
    for (int i = 0; i < c->n_rank_pattern; i++) {
        free(c->rank_pattern[i].key);
        lora_regex_free(&c->rank_pattern[i].re);
    }
    free(c->rank_pattern);
    for (int i = 0; i < c->n_alpha_pattern; i++) {
        free(c->alpha_pattern[i].key);
        lora_regex_free(&c->alpha_pattern[i].re);
    }
    free(c->alpha_pattern);
    free(c->layers);
    free_list(c->layers_pattern, c->n_layers_pattern);
    free(c->task_type);
    *c = (lora_config){0};
}
