/* The layouts from before tokenizer.json, built as transformers builds them: vocab.json + merges.txt is
 * GPT-2's byte-level BPE (ByteLevel pre-tokenizer without prefix space, ByteLevel decoder, "<|endoftext|>"
 * special); vocab.txt is BERT's WordPiece (BertNormalizer with tokenizer_config.json's do_lower_case,
 * BertPreTokenizer, [CLS] $A [SEP] templates, WordPiece decoder). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

static hft_status oom(void) {
    return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
}

static hft_status finish_vocab(tk_model *m, int64_t max_id) {
    m->n_ids = max_id + 1;
    m->id_entry = malloc(((size_t)m->n_ids + 1) * sizeof *m->id_entry);
    if (!m->id_entry) return oom();
    memset(m->id_entry, 0xFF, ((size_t)m->n_ids + 1) * sizeof *m->id_entry);
    for (size_t e = 0; e < m->vocab.n; e++) m->id_entry[m->vocab.entries[e].id] = (uint32_t)e;
    return HFT_OK;
}

hft_status tk_load_vocab_merges(hft_tokenizer *t, const char *vocab_path, const char *merges_path) {
    char *text = NULL, *merges = NULL;
    hft_status st = tk_read_file(vocab_path, &text, NULL);
    if (st != HFT_OK) return st;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithOpts(text, &end, true);
    if (!v || !cJSON_IsObject(v)) {
        int line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        free(text);
        cJSON_Delete(v);
        return hft_error(HFT_EFORMAT, "%s:%d: not a JSON object of token: id", vocab_path, line);
    }
    free(text);
    tk_model *m = &t->model;
    m->kind = TK_M_BPE;
    int64_t max_id = -1;
    for (const cJSON *e = v->child; e && st == HFT_OK; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX ||
            e->valuedouble != floor(e->valuedouble)) {
            st = hft_error(HFT_EFORMAT, "%s: \"%.100s\": expected a non-negative integer id", vocab_path,
                           e->string);
            break;
        }
        if ((int64_t)e->valuedouble > max_id) max_id = (int64_t)e->valuedouble;
        st = tk_map_put(&m->vocab, e->string, strlen(e->string), (int32_t)e->valuedouble);
    }
    cJSON_Delete(v);
    if (st == HFT_OK) st = finish_vocab(m, max_id);
    size_t len = 0;
    if (st == HFT_OK) st = tk_read_file(merges_path, &merges, &len);
    if (st == HFT_OK) st = tk_pairmap_init(&m->merges, len / 8 + 16);
    /* one "a b" per line; a first line "#version..." is a header */
    uint32_t rank = 0;
    size_t line_no = 0;
    for (char *p = merges; st == HFT_OK && p && *p;) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        line_no++;
        if (n && p[n - 1] == '\r') n--;
        if (!(line_no == 1 && n >= 8 && !strncmp(p, "#version", 8)) && n > 0) {
            char *sp = memchr(p, ' ', n);
            char where[300];
            snprintf(where, sizeof where, "%s:%zu", merges_path, line_no);
            if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp - p) - 1))
                st = hft_error(HFT_EFORMAT, "%s: expected \"a b\" (two tokens and one space)", where);
            else
                st =
                    tk_bpe_add_merge(m, p, (size_t)(sp - p), sp + 1, n - (size_t)(sp - p) - 1, rank++, where);
        }
        p = nl ? nl + 1 : p + n;
    }
    free(merges);
    if (st != HFT_OK) return st;
    /* GPT-2 as transformers builds it */
    t->pretok = calloc(1, sizeof *t->pretok);
    t->decoder = calloc(1, sizeof *t->decoder);
    if (!t->pretok || !t->decoder) return oom();
    t->pretok->kind = TK_P_BYTELEVEL;
    t->pretok->use_regex = true;
    t->decoder->kind = TK_D_BYTELEVEL;
    if ((st = tk_regex_new(tk_gpt2_pattern, strlen(tk_gpt2_pattern), false, &t->pretok->re)) != HFT_OK)
        return st;
    if ((st = tk_bpe_prepare(m, true)) != HFT_OK) return st;
    tk_added eot = {.content = "<|endoftext|>", .len = 13, .special = true};
    if ((st = tk_added_add(t, &eot, 1)) != HFT_OK) return st;
    int32_t id = hft_tokenizer_token_to_id(t, "<|endoftext|>");
    t->specials.bos = t->specials.eos = t->specials.unk = id;
    return HFT_OK;
}

static hft_status config_token(const cJSON *cfg, const char *name, const char *def, char **out) {
    const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, name) : NULL;
    const cJSON *c = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "content") : v;
    *out = strdup(cJSON_IsString(c) ? c->valuestring : def);
    return *out ? HFT_OK : oom();
}

hft_status tk_load_vocab_txt(hft_tokenizer *t, const char *vocab_path, const char *config_path) {
    char *text = NULL;
    hft_status st = tk_read_file(vocab_path, &text, NULL);
    if (st != HFT_OK) return st;
    cJSON *cfg = NULL;
    if (config_path) {
        char *ctext;
        if ((st = tk_read_file(config_path, &ctext, NULL)) != HFT_OK) {
            free(text);
            return st;
        }
        const char *end = NULL;
        cfg = cJSON_ParseWithOpts(ctext, &end, true);
        if (!cfg) {
            int line = 1;
            for (const char *p = ctext; end && p < end; p++) line += *p == '\n';
            st = hft_error(HFT_EFORMAT, "%s:%d: not valid JSON", config_path, line);
        }
        free(ctext);
    }
    tk_model *m = &t->model;
    m->kind = TK_M_WORDPIECE;
    /* transformers' load_vocab: each line (less its "\n") is the token whose id is the line number */
    int32_t id = 0;
    for (char *p = text; st == HFT_OK && *p; id++) {
        char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        st = tk_map_put(&m->vocab, p, n, id);
        if (n > m->max_token_len) m->max_token_len = n;
        p = nl ? nl + 1 : p + n;
    }
    free(text);
    if (st == HFT_OK) st = finish_vocab(m, id - 1);
    bool lower = true, chinese = true;
    const cJSON *v;
    char *unk = NULL, *sep = NULL, *pad = NULL, *cls = NULL, *mask = NULL;
    if (st == HFT_OK && cfg) {
        if (cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(cfg, "do_lower_case"))) lower = cJSON_IsTrue(v);
        if (cJSON_IsBool(v = cJSON_GetObjectItemCaseSensitive(cfg, "tokenize_chinese_chars")))
            chinese = cJSON_IsTrue(v);
    }
    if (st == HFT_OK) st = config_token(cfg, "unk_token", "[UNK]", &unk);
    if (st == HFT_OK) st = config_token(cfg, "sep_token", "[SEP]", &sep);
    if (st == HFT_OK) st = config_token(cfg, "pad_token", "[PAD]", &pad);
    if (st == HFT_OK) st = config_token(cfg, "cls_token", "[CLS]", &cls);
    if (st == HFT_OK) st = config_token(cfg, "mask_token", "[MASK]", &mask);
    if (st == HFT_OK) {
        m->unk = strdup(unk);
        m->prefix = strdup("##");
        m->max_input_chars = 100;
        t->normalizer = calloc(1, sizeof *t->normalizer);
        t->pretok = calloc(1, sizeof *t->pretok);
        t->decoder = calloc(1, sizeof *t->decoder);
        t->post = calloc(1, sizeof *t->post);
        if (!m->unk || !m->prefix || !t->normalizer || !t->pretok || !t->decoder || !t->post) st = oom();
    }
    if (st == HFT_OK) {
        m->unk_id = tk_map_get(&m->vocab, unk, strlen(unk));
        *t->normalizer = (tk_normalizer){.kind = TK_N_BERT,
                                         .clean_text = true,
                                         .chinese = chinese,
                                         .lowercase = lower,
                                         .strip_accents = lower};
        const cJSON *sa = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "strip_accents") : NULL;
        if (cJSON_IsBool(sa)) t->normalizer->strip_accents = cJSON_IsTrue(sa);
        t->pretok->kind = TK_P_BERT;
        t->decoder->kind = TK_D_WORDPIECE;
        t->decoder->cleanup = true;
        if (!(t->decoder->str = strdup("##"))) st = oom();
        t->decoder->str_len = 2;
    }
    /* the special tokens as added tokens, then [CLS] $A [SEP] (+ $B:1 [SEP]:1) */
    const char *specials[5] = {pad, unk, cls, sep, mask};
    for (int i = 0; i < 5 && st == HFT_OK; i++) {
        tk_added a = {.content = (char *)specials[i], .len = strlen(specials[i]), .special = true};
        st = tk_added_add(t, &a, 1);
    }
    if (st == HFT_OK) {
        tk_post *p = t->post;
        p->kind = TK_PP_TEMPLATE;
        p->specials = calloc(2, sizeof *p->specials);
        p->single = calloc(3, sizeof *p->single);
        p->pair = calloc(5, sizeof *p->pair);
        if (!p->specials || !p->single || !p->pair) st = oom();
        for (int i = 0; i < 2 && st == HFT_OK; i++) {
            const char *name = i ? sep : cls;
            tk_special *s = &p->specials[i];
            p->n_specials++;
            s->name = strdup(name);
            s->ids = malloc(sizeof *s->ids);
            s->tokens = calloc(1, sizeof *s->tokens);
            if (!s->name || !s->ids || !s->tokens || !(s->tokens[0] = strdup(name)))
                st = oom();
            else {
                int32_t sid = hft_tokenizer_token_to_id(t, name);
                s->ids[0] = sid >= 0 ? sid : (i ? 3 : 2);
                s->n = 1;
            }
        }
        if (st == HFT_OK) {
            p->n_single = 3;
            p->single[0] = (tk_piece){.special = 0};
            p->single[1] = (tk_piece){.is_seq = true, .seq = 0};
            p->single[2] = (tk_piece){.special = 1};
            p->n_pair = 5;
            p->pair[0] = (tk_piece){.special = 0};
            p->pair[1] = (tk_piece){.is_seq = true, .seq = 0};
            p->pair[2] = (tk_piece){.special = 1};
            p->pair[3] = (tk_piece){.is_seq = true, .seq = 1, .type_id = 1};
            p->pair[4] = (tk_piece){.special = 1, .type_id = 1};
        }
    }
    if (st == HFT_OK) {
        t->specials.unk = hft_tokenizer_token_to_id(t, unk);
        t->specials.sep = hft_tokenizer_token_to_id(t, sep);
        t->specials.pad = hft_tokenizer_token_to_id(t, pad);
        t->specials.cls = hft_tokenizer_token_to_id(t, cls);
        t->specials.mask = hft_tokenizer_token_to_id(t, mask);
    }
    free(unk);
    free(sep);
    free(pad);
    free(cls);
    free(mask);
    cJSON_Delete(cfg);
    return st;
}
