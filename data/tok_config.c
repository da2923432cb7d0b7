/* tokenizer_config.json and special_tokens_map.json (as transformers reads them: the config first, the map
 * for what it leaves out) for the special tokens, padding side, model_max_length and the chat template (a
 * string, the list form's "default" entry, or chat_template.jinja / chat_template.json beside them). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

/* A special token as tokenizer_config.json writes it: "text" or {"content": "text", ...}. */
static const char *token_text(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    const cJSON *c = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "content") : NULL;
    return cJSON_IsString(c) ? c->valuestring : NULL;
}

static hft_status set_template(hft_tokenizer *t, const cJSON *tpl, const char *file) {
    if (cJSON_IsString(tpl)) {
        free(t->chat_template);
        t->chat_template = strdup(tpl->valuestring);
        return t->chat_template ? HFT_OK : hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    }
    if (cJSON_IsArray(tpl)) {
        for (const cJSON *e = tpl->child; e; e = e->next) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(e, "name");
            if (cJSON_IsString(name) && !strcmp(name->valuestring, "default"))
                return set_template(t, cJSON_GetObjectItemCaseSensitive(e, "template"), file);
        }
        return HFT_OK; /* named templates only: none is the default */
    }
    if (tpl && !cJSON_IsNull(tpl))
        return hft_error(HFT_EFORMAT, "%s: chat_template: expected a string or a list of {name, template}",
                         file);
    return HFT_OK;
}

hft_status tk_load_config(hft_tokenizer *t, const char *dir) {
    size_t n = strlen(dir) + 64;
    char *path = malloc(n);
    if (!path) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    cJSON *cfg = NULL, *map = NULL;
    hft_status st = HFT_OK;
    snprintf(path, n, "%s/tokenizer_config.json", dir);
    FILE *fp = fopen(path, "rb");
    if (fp) {
        fclose(fp);
        st = tk_parse_json(path, &cfg);
    }
    snprintf(path, n, "%s/special_tokens_map.json", dir);
    if (st == HFT_OK && (fp = fopen(path, "rb"))) {
        fclose(fp);
        st = tk_parse_json(path, &map);
    }
    static const char *const names[] = {"bos_token", "eos_token", "pad_token", "unk_token",
                                        "cls_token", "sep_token", "mask_token"};
    int32_t *slots[] = {&t->specials.bos, &t->specials.eos, &t->specials.pad, &t->specials.unk,
                        &t->specials.cls, &t->specials.sep, &t->specials.mask};
    for (int i = 0; i < 7 && st == HFT_OK && (cfg || map); i++) {
        /* tokenizer_config.json wins; special_tokens_map.json fills what it leaves out (transformers' order)
         */
        const char *text = cfg ? token_text(cJSON_GetObjectItemCaseSensitive(cfg, names[i])) : NULL;
        if (!text && map) text = token_text(cJSON_GetObjectItemCaseSensitive(map, names[i]));
        if (text) *slots[i] = hft_tokenizer_token_to_id(t, text);
    }
    if (st == HFT_OK && !cfg && !map) {
        /* no configuration at all: the conventional names, when the tokenizer has them as special tokens */
        static const struct {
            const char *text;
            int slot;
        } conv[] = {{"<|endoftext|>", 0}, {"<|endoftext|>", 1}, {"<s>", 0},    {"</s>", 1},
                    {"<pad>", 2},         {"[PAD]", 2},         {"[UNK]", 3},  {"<unk>", 3},
                    {"[CLS]", 4},         {"[SEP]", 5},         {"[MASK]", 6}, {"<mask>", 6}};
        for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++) {
            const tk_added *a = tk_added_by_content(t, conv[i].text, strlen(conv[i].text));
            if (a && a->special && *slots[conv[i].slot] < 0) *slots[conv[i].slot] = a->id;
        }
    }
    if (st == HFT_OK && cfg) {
        const cJSON *side = cJSON_GetObjectItemCaseSensitive(cfg, "padding_side");
        if (cJSON_IsString(side)) {
            if (!strcmp(side->valuestring, "left"))
                t->pad_left = true;
            else if (strcmp(side->valuestring, "right") != 0) {
                snprintf(path, n, "%s/tokenizer_config.json", dir);
                st = hft_error(HFT_EFORMAT, "%s: padding_side: expected \"left\" or \"right\", got \"%s\"",
                               path, side->valuestring);
            }
        }
        const cJSON *ml = cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length");
        if (cJSON_IsNumber(ml) && ml->valuedouble > 0 && ml->valuedouble < 1e15)
            t->max_length = (int64_t)ml->valuedouble;
        snprintf(path, n, "%s/tokenizer_config.json", dir);
        if (st == HFT_OK) st = set_template(t, cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), path);
    }
    if (st == HFT_OK && !t->chat_template) {
        /* transformers 4.43+ writes the template to its own file */
        snprintf(path, n, "%s/chat_template.jinja", dir);
        char *text;
        if ((fp = fopen(path, "rb"))) {
            fclose(fp);
            if ((st = tk_read_file(path, &text, NULL)) == HFT_OK) t->chat_template = text;
        } else {
            snprintf(path, n, "%s/chat_template.json", dir);
            if ((fp = fopen(path, "rb"))) {
                fclose(fp);
                cJSON *ct;
                if ((st = tk_parse_json(path, &ct)) == HFT_OK) {
                    st = set_template(t, cJSON_GetObjectItemCaseSensitive(ct, "chat_template"), path);
                    cJSON_Delete(ct);
                }
            }
        }
    }
    cJSON_Delete(cfg);
    cJSON_Delete(map);
    free(path);
    return st;
}
