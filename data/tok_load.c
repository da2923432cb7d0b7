/* Reading tokenizer.json (cJSON) into the pipeline components, with tokenizers' defaults. A component or
 * option hft does not implement is refused by name, never ignored. (tokenizer_config.json: tok_config.c.) */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

hft_status tk_read_file(const char *path, char **text, size_t *len) {
    *text = hft_read_text(path, len);
    return *text ? HFT_OK : hft_error_status();
}

hft_status tk_parse_json(const char *path, cJSON **out) {
    char *text;
    hft_status st = tk_read_file(path, &text, NULL);
    if (st != HFT_OK) return st;
    const char *end = NULL;
    *out = cJSON_ParseWithOpts(text, &end, true);
    if (!*out) {
        int line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        free(text);
        return hft_error(HFT_EFORMAT, "%s:%d: not valid JSON", path, line);
    }
    free(text);
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return hft_error(HFT_EFORMAT, "%s: expected a JSON object", path);
    }
    return HFT_OK;
}

/* ---------------------------------------------------------------- typed getters */

typedef struct ctx {
    const char *file;
} ctx;

static hft_status bad(const ctx *c, const char *key, const char *what) {
    return hft_error(HFT_EFORMAT, "%s: %s: %s", c->file, key, what);
}

static hft_status get_bool(const ctx *c, const cJSON *o, const char *name, const char *key, bool def,
                           bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return *out = def, HFT_OK;
    if (!cJSON_IsBool(v)) return bad(c, key, "expected true or false");
    *out = cJSON_IsTrue(v);
    return HFT_OK;
}

/* A string member (NULL when absent or null); *out is malloc'd. */
static hft_status get_str(const ctx *c, const cJSON *o, const char *name, const char *key, char **out) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return HFT_OK;
    if (!cJSON_IsString(v)) return bad(c, key, "expected a string");
    *out = strdup(v->valuestring);
    return *out ? HFT_OK : hft_error(HFT_ENOMEM, "tokenizer: out of memory");
}

static hft_status get_char(const ctx *c, const cJSON *o, const char *name, const char *key, uint32_t def,
                           uint32_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return *out = def, HFT_OK;
    if (!cJSON_IsString(v) || !v->valuestring[0]) return bad(c, key, "expected a one-character string");
    int l;
    *out = tk_utf8_get(v->valuestring, &l);
    if (v->valuestring[l]) return bad(c, key, "expected a one-character string");
    return HFT_OK;
}

static hft_status get_size(const ctx *c, const cJSON *o, const char *name, const char *key, size_t def,
                           size_t *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v || cJSON_IsNull(v)) return *out = def, HFT_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble != floor(v->valuedouble))
        return bad(c, key, "expected a non-negative integer");
    *out = (size_t)v->valuedouble;
    return HFT_OK;
}

static const char *type_of(const cJSON *o) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static hft_status unsupported(const ctx *c, const char *what, const char *type) {
    return hft_error(HFT_EUNSUPPORTED, "%s: %s type %s is not supported", c->file, what, type);
}

/* A Split / Replace pattern: {"String": s} or {"Regex": r}. */
static hft_status get_pattern(const ctx *c, const cJSON *o, const char *key, tk_regex **out) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    char k[160];
    snprintf(k, sizeof k, "%s.pattern", key);
    const cJSON *s = p ? cJSON_GetObjectItemCaseSensitive(p, "String") : NULL;
    const cJSON *r = p ? cJSON_GetObjectItemCaseSensitive(p, "Regex") : NULL;
    if (cJSON_IsString(s)) return tk_regex_new(s->valuestring, strlen(s->valuestring), true, out);
    if (cJSON_IsString(r)) {
        hft_status st = tk_regex_new(r->valuestring, strlen(r->valuestring), false, out);
        if (st != HFT_OK) return hft_error(st, "%s: %s: %s", c->file, k, hft_error_message());
        return st;
    }
    return bad(c, k, "expected {\"String\": ...} or {\"Regex\": ...}");
}

static hft_status get_behavior(const ctx *c, const cJSON *o, const char *key, int def, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "behavior");
    if (!v || cJSON_IsNull(v)) return *out = def, HFT_OK;
    static const char *const names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext",
                                        "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (cJSON_IsString(v) && strcmp(v->valuestring, names[i]) == 0) return *out = i, HFT_OK;
    char k[160];
    snprintf(k, sizeof k, "%s.behavior", key);
    return bad(c, k, "expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

/* ---------------------------------------------------------------- normalizers */

static hft_status read_normalizer(const ctx *c, const cJSON *o, const char *key, tk_normalizer *n) {
    const char *type = type_of(o);
    hft_status st = HFT_OK;
    char k[160];
    if (!type) return bad(c, key, "expected an object with a \"type\"");
    if (!strcmp(type, "BertNormalizer")) {
        n->kind = TK_N_BERT;
        bool lower = true;
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(o, "strip_accents");
        if ((st = get_bool(c, o, "clean_text", key, true, &n->clean_text)) != HFT_OK) return st;
        if ((st = get_bool(c, o, "handle_chinese_chars", key, true, &n->chinese)) != HFT_OK) return st;
        if ((st = get_bool(c, o, "lowercase", key, true, &lower)) != HFT_OK) return st;
        n->lowercase = lower;
        if (sa && !cJSON_IsNull(sa) && !cJSON_IsBool(sa))
            return bad(c, key, "strip_accents: expected true, false or null");
        n->strip_accents = sa && cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : lower;
    } else if (!strcmp(type, "NFC"))
        n->kind = TK_N_NFC;
    else if (!strcmp(type, "NFD"))
        n->kind = TK_N_NFD;
    else if (!strcmp(type, "NFKC"))
        n->kind = TK_N_NFKC;
    else if (!strcmp(type, "NFKD"))
        n->kind = TK_N_NFKD;
    else if (!strcmp(type, "Lowercase"))
        n->kind = TK_N_LOWERCASE;
    else if (!strcmp(type, "StripAccents"))
        n->kind = TK_N_STRIP_ACCENTS;
    else if (!strcmp(type, "ByteLevel"))
        n->kind = TK_N_BYTELEVEL;
    else if (!strcmp(type, "Strip")) {
        n->kind = TK_N_STRIP;
        if ((st = get_bool(c, o, "strip_left", key, true, &n->left)) != HFT_OK) return st;
        st = get_bool(c, o, "strip_right", key, true, &n->right);
    } else if (!strcmp(type, "Replace")) {
        n->kind = TK_N_REPLACE;
        if ((st = get_pattern(c, o, key, &n->re)) != HFT_OK) return st;
        snprintf(k, sizeof k, "%s.content", key);
        if ((st = get_str(c, o, "content", k, &n->str)) != HFT_OK) return st;
        if (!n->str) return bad(c, k, "missing");
        n->str_len = strlen(n->str);
    } else if (!strcmp(type, "Prepend")) {
        n->kind = TK_N_PREPEND;
        snprintf(k, sizeof k, "%s.prepend", key);
        if ((st = get_str(c, o, "prepend", k, &n->str)) != HFT_OK) return st;
        if (!n->str) return bad(c, k, "missing");
        n->str_len = strlen(n->str);
    } else if (!strcmp(type, "Sequence")) {
        n->kind = TK_N_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers");
        if (!cJSON_IsArray(list)) return bad(c, key, "normalizers: expected a list");
        int cnt = cJSON_GetArraySize(list);
        n->items = calloc((size_t)cnt + 1, sizeof *n->items);
        if (!n->items) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        for (int i = 0; i < cnt && st == HFT_OK; i++) {
            snprintf(k, sizeof k, "%s.normalizers[%d]", key, i);
            n->n_items = i + 1;
            st = read_normalizer(c, cJSON_GetArrayItem(list, i), k, &n->items[i]);
        }
    } else {
        return unsupported(c, "normalizer", type);
    }
    return st;
}

/* ---------------------------------------------------------------- pre-tokenizers */

static hft_status read_pretok(const ctx *c, const cJSON *o, const char *key, tk_pretok *p) {
    const char *type = type_of(o);
    hft_status st = HFT_OK;
    char k[160];
    if (!type) return bad(c, key, "expected an object with a \"type\"");
    if (!strcmp(type, "ByteLevel")) {
        p->kind = TK_P_BYTELEVEL;
        if ((st = get_bool(c, o, "add_prefix_space", key, true, &p->add_prefix_space)) != HFT_OK) return st;
        if ((st = get_bool(c, o, "use_regex", key, true, &p->use_regex)) != HFT_OK) return st;
        if (p->use_regex) st = tk_regex_new(tk_gpt2_pattern, strlen(tk_gpt2_pattern), false, &p->re);
    } else if (!strcmp(type, "Split")) {
        p->kind = TK_P_SPLIT;
        if ((st = get_pattern(c, o, key, &p->re)) != HFT_OK) return st;
        if ((st = get_behavior(c, o, key, -1, &p->behavior)) != HFT_OK) return st;
        if (p->behavior < 0) return bad(c, key, "behavior: missing");
        st = get_bool(c, o, "invert", key, false, &p->invert);
    } else if (!strcmp(type, "Metaspace")) {
        p->kind = TK_P_METASPACE;
        if ((st = get_char(c, o, "replacement", key, 0x2581, &p->ch)) != HFT_OK) return st;
        const cJSON *scheme = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
        p->prepend_scheme = TK_PREPEND_ALWAYS;
        if (scheme && !cJSON_IsNull(scheme)) {
            const char *s = cJSON_IsString(scheme) ? scheme->valuestring : "";
            if (!strcmp(s, "always"))
                p->prepend_scheme = TK_PREPEND_ALWAYS;
            else if (!strcmp(s, "first"))
                p->prepend_scheme = TK_PREPEND_FIRST;
            else if (!strcmp(s, "never"))
                p->prepend_scheme = TK_PREPEND_NEVER;
            else
                return bad(c, key, "prepend_scheme: expected always, first or never");
        }
        const cJSON *aps = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
        if (cJSON_IsFalse(aps)) {
            if (p->prepend_scheme != TK_PREPEND_NEVER && scheme && !cJSON_IsNull(scheme))
                return bad(c, key, "add_prefix_space does not match declared prepend_scheme");
            p->prepend_scheme = TK_PREPEND_NEVER;
        }
        st = get_bool(c, o, "split", key, true, &p->split);
    } else if (!strcmp(type, "BertPreTokenizer"))
        p->kind = TK_P_BERT;
    else if (!strcmp(type, "Whitespace"))
        p->kind = TK_P_WHITESPACE;
    else if (!strcmp(type, "WhitespaceSplit"))
        p->kind = TK_P_WHITESPACE_SPLIT;
    else if (!strcmp(type, "Punctuation")) {
        p->kind = TK_P_PUNCT;
        st = get_behavior(c, o, key, TK_ISOLATED, &p->behavior);
    } else if (!strcmp(type, "Digits")) {
        p->kind = TK_P_DIGITS;
        st = get_bool(c, o, "individual_digits", key, false, &p->individual_digits);
    } else if (!strcmp(type, "CharDelimiterSplit")) {
        p->kind = TK_P_CHAR_DELIM;
        snprintf(k, sizeof k, "%s.delimiter", key);
        st = get_char(c, o, "delimiter", k, 0, &p->ch);
        if (st == HFT_OK && !cJSON_GetObjectItemCaseSensitive(o, "delimiter")) return bad(c, k, "missing");
    } else if (!strcmp(type, "Sequence")) {
        p->kind = TK_P_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        if (!cJSON_IsArray(list)) return bad(c, key, "pretokenizers: expected a list");
        int cnt = cJSON_GetArraySize(list);
        p->items = calloc((size_t)cnt + 1, sizeof *p->items);
        if (!p->items) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        for (int i = 0; i < cnt && st == HFT_OK; i++) {
            snprintf(k, sizeof k, "%s.pretokenizers[%d]", key, i);
            p->n_items = i + 1;
            st = read_pretok(c, cJSON_GetArrayItem(list, i), k, &p->items[i]);
        }
    } else {
        return unsupported(c, "pre_tokenizer", type);
    }
    return st;
}

static bool has_bytelevel(const tk_pretok *p) {
    if (!p) return false;
    if (p->kind == TK_P_BYTELEVEL) return true;
    for (int i = 0; i < p->n_items; i++)
        if (has_bytelevel(&p->items[i])) return true;
    return false;
}

/* ---------------------------------------------------------------- models */

static hft_status read_vocab(const ctx *c, const cJSON *o, tk_model *m) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vocab");
    if (!cJSON_IsObject(v)) return bad(c, "model.vocab", "expected an object of token: id");
    int64_t max_id = -1;
    hft_status st = HFT_OK;
    for (const cJSON *e = v->child; e && st == HFT_OK; e = e->next) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > INT32_MAX ||
            e->valuedouble != floor(e->valuedouble)) {
            char k[200];
            snprintf(k, sizeof k, "model.vocab[\"%.100s\"]", e->string);
            return bad(c, k, "expected a non-negative integer id");
        }
        int32_t id = (int32_t)e->valuedouble;
        if (id > max_id) max_id = id;
        st = tk_map_put(&m->vocab, e->string, strlen(e->string), id);
    }
    if (st != HFT_OK) return st;
    m->n_ids = max_id + 1;
    m->id_entry = malloc(((size_t)m->n_ids + 1) * sizeof *m->id_entry);
    if (!m->id_entry) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    memset(m->id_entry, 0xFF, ((size_t)m->n_ids + 1) * sizeof *m->id_entry);
    for (size_t e = 0; e < m->vocab.n; e++) m->id_entry[m->vocab.entries[e].id] = (uint32_t)e;
    return HFT_OK;
}

/* BPE merges: ["a b", ...] (a single space between) or [["a", "b"], ...]. Later duplicates win, as a Rust
 * HashMap collect does. */
hft_status tk_bpe_add_merge(tk_model *m, const char *a, size_t al, const char *b, size_t bl, uint32_t rank,
                            const char *where) {
    int32_t ia = tk_map_get(&m->vocab, a, al), ib = tk_map_get(&m->vocab, b, bl);
    if (ia < 0 || ib < 0)
        return hft_error(HFT_EFORMAT, "%s: \"%.*s\" is not in the vocabulary", where, (int)(ia < 0 ? al : bl),
                         ia < 0 ? a : b);
    size_t plen = m->prefix ? strlen(m->prefix) : 0;
    if (bl < plen)
        return hft_error(HFT_EFORMAT, "%s: \"%.*s\" is shorter than continuing_subword_prefix", where,
                         (int)bl, b);
    char stack[256], *buf = al + bl < sizeof stack ? stack : malloc(al + bl + 1);
    if (!buf) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    memcpy(buf, a, al);
    memcpy(buf + al, b + plen, bl - plen);
    int32_t id = tk_map_get(&m->vocab, buf, al + bl - plen);
    hft_status st = id < 0 ? hft_error(HFT_EFORMAT, "%s: the merged token \"%.*s\" is not in the vocabulary",
                                       where, (int)(al + bl - plen), buf)
                           : tk_pairmap_put(&m->merges, (uint32_t)ia, (uint32_t)ib, rank, (uint32_t)id);
    if (buf != stack) free(buf);
    return st;
}

static hft_status read_bpe(const ctx *c, const cJSON *o, tk_model *m) {
    m->kind = TK_M_BPE;
    hft_status st;
    const cJSON *drop = cJSON_GetObjectItemCaseSensitive(o, "dropout");
    if (drop && !cJSON_IsNull(drop)) {
        if (!cJSON_IsNumber(drop) || drop->valuedouble < 0 || drop->valuedouble > 1)
            return bad(c, "model.dropout", "expected a number between 0 and 1, or null");
        if (drop->valuedouble > 0)
            return hft_error(HFT_EUNSUPPORTED,
                             "%s: model.dropout: BPE dropout %g is not supported (only null or 0)", c->file,
                             drop->valuedouble);
    }
    if ((st = get_str(c, o, "unk_token", "model.unk_token", &m->unk)) != HFT_OK) return st;
    if ((st = get_str(c, o, "continuing_subword_prefix", "model.continuing_subword_prefix", &m->prefix)) !=
        HFT_OK)
        return st;
    if ((st = get_str(c, o, "end_of_word_suffix", "model.end_of_word_suffix", &m->suffix)) != HFT_OK)
        return st;
    if ((st = get_bool(c, o, "fuse_unk", "model.fuse_unk", false, &m->fuse_unk)) != HFT_OK) return st;
    if ((st = get_bool(c, o, "byte_fallback", "model.byte_fallback", false, &m->byte_fallback)) != HFT_OK)
        return st;
    if ((st = get_bool(c, o, "ignore_merges", "model.ignore_merges", false, &m->ignore_merges)) != HFT_OK)
        return st;
    if ((st = read_vocab(c, o, m)) != HFT_OK) return st;
    if (m->unk) m->unk_id = tk_map_get(&m->vocab, m->unk, strlen(m->unk));
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(o, "merges");
    if (!cJSON_IsArray(merges)) return bad(c, "model.merges", "expected a list");
    int cnt = cJSON_GetArraySize(merges);
    if ((st = tk_pairmap_init(&m->merges, (size_t)cnt)) != HFT_OK) return st;
    uint32_t rank = 0;
    for (const cJSON *e = merges->child; e && st == HFT_OK; e = e->next, rank++) {
        char where[200];
        snprintf(where, sizeof where, "%s: model.merges[%u]", c->file, rank);
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return hft_error(HFT_EFORMAT, "%s: expected \"a b\" (two tokens and one space)", where);
            st = tk_bpe_add_merge(m, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank, where);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 && cJSON_IsString(e->child) &&
                   cJSON_IsString(e->child->next)) {
            const char *a = e->child->valuestring, *b = e->child->next->valuestring;
            st = tk_bpe_add_merge(m, a, strlen(a), b, strlen(b), rank, where);
        } else {
            return hft_error(HFT_EFORMAT, "%s: expected \"a b\" or [\"a\", \"b\"]", where);
        }
    }
    return st;
}

static hft_status read_model(const ctx *c, const cJSON *o, tk_model *m) {
    if (!cJSON_IsObject(o)) return bad(c, "model", "expected an object");
    const char *type = type_of(o);
    if (!type) {
        /* files from before "type": tokenizers tries BPE, WordPiece, WordLevel, Unigram in turn */
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "vocab");
        if (cJSON_GetObjectItemCaseSensitive(o, "merges"))
            type = "BPE";
        else if (cJSON_IsArray(v))
            type = "Unigram";
        else if (cJSON_GetObjectItemCaseSensitive(o, "continuing_subword_prefix") ||
                 cJSON_GetObjectItemCaseSensitive(o, "max_input_chars_per_word"))
            type = "WordPiece";
        else
            type = "WordLevel";
    }
    hft_status st;
    if (!strcmp(type, "BPE")) return read_bpe(c, o, m);
    if (!strcmp(type, "WordPiece") || !strcmp(type, "WordLevel")) {
        bool wp = !strcmp(type, "WordPiece");
        m->kind = wp ? TK_M_WORDPIECE : TK_M_WORDLEVEL;
        if ((st = get_str(c, o, "unk_token", "model.unk_token", &m->unk)) != HFT_OK) return st;
        if (!m->unk && !(m->unk = strdup(wp ? "[UNK]" : "<unk>")))
            return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        if (wp) {
            if ((st = get_str(c, o, "continuing_subword_prefix", "model.continuing_subword_prefix",
                              &m->prefix)) != HFT_OK)
                return st;
            if (!m->prefix && !(m->prefix = strdup("##")))
                return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
            if ((st = get_size(c, o, "max_input_chars_per_word", "model.max_input_chars_per_word", 100,
                               &m->max_input_chars)) != HFT_OK)
                return st;
        }
        if ((st = read_vocab(c, o, m)) != HFT_OK) return st;
        m->unk_id = tk_map_get(&m->vocab, m->unk, strlen(m->unk));
        for (size_t e = 0; e < m->vocab.n; e++)
            if (m->vocab.entries[e].len > m->max_token_len) m->max_token_len = m->vocab.entries[e].len;
        return HFT_OK;
    }
    return hft_error(HFT_EUNSUPPORTED, "%s: model type %s is not supported", c->file, type);
}

/* ---------------------------------------------------------------- post-processors */

static hft_status special_from_pair(const ctx *c, const cJSON *o, const char *name, const char *key,
                                    tk_special *sp) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !cJSON_IsString(v->child) ||
        !cJSON_IsNumber(v->child->next))
        return bad(c, key, "expected [token, id]");
    sp->name = strdup(v->child->valuestring);
    sp->ids = malloc(sizeof *sp->ids);
    sp->tokens = calloc(1, sizeof *sp->tokens);
    if (!sp->name || !sp->ids || !sp->tokens || !(sp->tokens[0] = strdup(v->child->valuestring)))
        return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    sp->ids[0] = (int32_t)v->child->next->valuedouble;
    sp->n = 1;
    return HFT_OK;
}

static int special_index(tk_post *p, const char *name) {
    for (int i = 0; i < p->n_specials; i++)
        if (!strcmp(p->specials[i].name, name)) return i;
    return -1;
}

static hft_status read_template(const ctx *c, const cJSON *list, const char *key, tk_post *p, tk_piece **out,
                                int *n) {
    if (!cJSON_IsArray(list)) return bad(c, key, "expected a list of pieces");
    int cnt = cJSON_GetArraySize(list);
    *out = calloc((size_t)cnt + 1, sizeof **out);
    if (!*out) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    *n = cnt;
    int i = 0;
    char k[200];
    for (const cJSON *e = list->child; e; e = e->next, i++) {
        snprintf(k, sizeof k, "%s[%d]", key, i);
        tk_piece *pc = &(*out)[i];
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
        const cJSON *spt = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
        const cJSON *body = seq ? seq : spt;
        if (cJSON_IsString(e)) {
            /* the string form "$A:0", "[CLS]:1" */
            char buf[200];
            snprintf(buf, sizeof buf, "%s", e->valuestring);
            char *colon = strrchr(buf, ':');
            pc->type_id = 0;
            if (colon) {
                *colon = '\0';
                pc->type_id = (uint32_t)strtoul(colon + 1, NULL, 10);
            }
            if (buf[0] == '$') {
                pc->is_seq = true;
                pc->seq = (buf[1] == 'B' || buf[1] == 'b') ? 1 : 0;
                if (buf[1] && buf[1] != 'A' && buf[1] != 'a' && buf[1] != 'B' && buf[1] != 'b')
                    pc->type_id = (uint32_t)strtoul(buf + 1, NULL, 10);
            } else if ((pc->special = special_index(p, buf)) < 0) {
                return bad(c, k, "a special token missing from special_tokens");
            }
            continue;
        }
        const cJSON *id = body ? cJSON_GetObjectItemCaseSensitive(body, "id") : NULL;
        const cJSON *type = body ? cJSON_GetObjectItemCaseSensitive(body, "type_id") : NULL;
        if (!cJSON_IsString(id) || (type && !cJSON_IsNumber(type)))
            return bad(c, k,
                       "expected {\"Sequence\": {\"id\": ..., \"type_id\": ...}} or {\"SpecialToken\": ...}");
        pc->type_id = type ? (uint32_t)type->valuedouble : 0;
        if (seq) {
            pc->is_seq = true;
            if (!strcmp(id->valuestring, "A"))
                pc->seq = 0;
            else if (!strcmp(id->valuestring, "B"))
                pc->seq = 1;
            else
                return bad(c, k, "Sequence id: expected A or B");
        } else if ((pc->special = special_index(p, id->valuestring)) < 0) {
            return bad(c, k, "a special token missing from special_tokens");
        }
    }
    return HFT_OK;
}

static hft_status read_post(const ctx *c, const cJSON *o, const char *key, tk_post *p) {
    const char *type = type_of(o);
    hft_status st = HFT_OK;
    char k[200];
    if (!type) return bad(c, key, "expected an object with a \"type\"");
    if (!strcmp(type, "TemplateProcessing")) {
        p->kind = TK_PP_TEMPLATE;
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
        if (sp && !cJSON_IsObject(sp)) return bad(c, key, "special_tokens: expected an object");
        int cnt = sp ? cJSON_GetArraySize(sp) : 0;
        p->specials = calloc((size_t)cnt + 1, sizeof *p->specials);
        if (!p->specials) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        for (const cJSON *e = sp ? sp->child : NULL; e; e = e->next) {
            tk_special *s = &p->specials[p->n_specials++];
            snprintf(k, sizeof k, "%s.special_tokens[\"%.100s\"]", key, e->string);
            const cJSON *ids = cJSON_GetObjectItemCaseSensitive(e, "ids");
            const cJSON *toks = cJSON_GetObjectItemCaseSensitive(e, "tokens");
            if (!cJSON_IsArray(ids)) return bad(c, k, "ids: expected a list");
            s->name = strdup(e->string);
            s->n = cJSON_GetArraySize(ids);
            s->ids = calloc((size_t)s->n + 1, sizeof *s->ids);
            s->tokens = calloc((size_t)s->n + 1, sizeof *s->tokens);
            if (!s->name || !s->ids || !s->tokens) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
            int i = 0;
            for (const cJSON *v = ids->child; v; v = v->next, i++) {
                if (!cJSON_IsNumber(v)) return bad(c, k, "ids: expected numbers");
                s->ids[i] = (int32_t)v->valuedouble;
                const cJSON *tk = cJSON_IsArray(toks) ? cJSON_GetArrayItem(toks, i) : NULL;
                if (cJSON_IsString(tk) && !(s->tokens[i] = strdup(tk->valuestring)))
                    return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
            }
        }
        snprintf(k, sizeof k, "%s.single", key);
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
        const cJSON *pair = cJSON_GetObjectItemCaseSensitive(o, "pair");
        if ((st = read_template(c, single, k, p, &p->single, &p->n_single)) != HFT_OK) return st;
        snprintf(k, sizeof k, "%s.pair", key);
        st = read_template(c, pair, k, p, &p->pair, &p->n_pair);
    } else if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        bool roberta = type[0] == 'R';
        p->kind = roberta ? TK_PP_ROBERTA : TK_PP_BERT;
        p->specials = calloc(2, sizeof *p->specials);
        if (!p->specials) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        p->n_specials = 2;
        snprintf(k, sizeof k, "%s.cls", key);
        if ((st = special_from_pair(c, o, "cls", k, &p->specials[0])) != HFT_OK) return st;
        snprintf(k, sizeof k, "%s.sep", key);
        if ((st = special_from_pair(c, o, "sep", k, &p->specials[1])) != HFT_OK) return st;
        if (roberta) {
            if ((st = get_bool(c, o, "trim_offsets", key, true, &p->trim_offsets)) != HFT_OK) return st;
            st = get_bool(c, o, "add_prefix_space", key, true, &p->add_prefix_space);
        }
    } else if (!strcmp(type, "ByteLevel")) {
        p->kind = TK_PP_BYTELEVEL;
        if ((st = get_bool(c, o, "trim_offsets", key, true, &p->trim_offsets)) != HFT_OK) return st;
        st = get_bool(c, o, "add_prefix_space", key, true, &p->add_prefix_space);
    } else if (!strcmp(type, "Sequence")) {
        p->kind = TK_PP_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "processors");
        if (!cJSON_IsArray(list)) return bad(c, key, "processors: expected a list");
        int cnt = cJSON_GetArraySize(list);
        p->items = calloc((size_t)cnt + 1, sizeof *p->items);
        if (!p->items) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        for (int i = 0; i < cnt && st == HFT_OK; i++) {
            snprintf(k, sizeof k, "%s.processors[%d]", key, i);
            p->n_items = i + 1;
            st = read_post(c, cJSON_GetArrayItem(list, i), k, &p->items[i]);
        }
    } else {
        return unsupported(c, "post_processor", type);
    }
    return st;
}

/* ---------------------------------------------------------------- decoders */

static hft_status read_decoder(const ctx *c, const cJSON *o, const char *key, tk_decoder *d) {
    const char *type = type_of(o);
    hft_status st = HFT_OK;
    char k[200];
    if (!type) return bad(c, key, "expected an object with a \"type\"");
    if (!strcmp(type, "ByteLevel"))
        d->kind = TK_D_BYTELEVEL;
    else if (!strcmp(type, "ByteFallback"))
        d->kind = TK_D_BYTE_FALLBACK;
    else if (!strcmp(type, "Fuse"))
        d->kind = TK_D_FUSE;
    else if (!strcmp(type, "Metaspace")) {
        d->kind = TK_D_METASPACE;
        tk_pretok tmp = {0};
        if ((st = read_pretok(c, o, key, &tmp)) != HFT_OK) return st;
        d->ch = tmp.ch;
        d->prepend_scheme = tmp.prepend_scheme;
        tk_pretok_clear(&tmp);
    } else if (!strcmp(type, "WordPiece")) {
        d->kind = TK_D_WORDPIECE;
        if ((st = get_str(c, o, "prefix", key, &d->str)) != HFT_OK) return st;
        if (!d->str && !(d->str = strdup("##"))) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        d->str_len = strlen(d->str);
        st = get_bool(c, o, "cleanup", key, true, &d->cleanup);
    } else if (!strcmp(type, "BPEDecoder")) {
        d->kind = TK_D_BPE;
        if ((st = get_str(c, o, "suffix", key, &d->str)) != HFT_OK) return st;
        if (!d->str && !(d->str = strdup("</w>"))) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        d->str_len = strlen(d->str);
    } else if (!strcmp(type, "Strip")) {
        d->kind = TK_D_STRIP;
        if ((st = get_char(c, o, "content", key, ' ', &d->ch)) != HFT_OK) return st;
        if ((st = get_size(c, o, "start", key, 0, &d->start)) != HFT_OK) return st;
        st = get_size(c, o, "stop", key, 0, &d->stop);
    } else if (!strcmp(type, "Replace")) {
        d->kind = TK_D_REPLACE;
        if ((st = get_pattern(c, o, key, &d->re)) != HFT_OK) return st;
        snprintf(k, sizeof k, "%s.content", key);
        if ((st = get_str(c, o, "content", k, &d->str)) != HFT_OK) return st;
        if (!d->str) return bad(c, k, "missing");
        d->str_len = strlen(d->str);
    } else if (!strcmp(type, "Sequence")) {
        d->kind = TK_D_SEQUENCE;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders");
        if (!cJSON_IsArray(list)) return bad(c, key, "decoders: expected a list");
        int cnt = cJSON_GetArraySize(list);
        d->items = calloc((size_t)cnt + 1, sizeof *d->items);
        if (!d->items) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        for (int i = 0; i < cnt && st == HFT_OK; i++) {
            snprintf(k, sizeof k, "%s.decoders[%d]", key, i);
            d->n_items = i + 1;
            st = read_decoder(c, cJSON_GetArrayItem(list, i), k, &d->items[i]);
        }
    } else {
        return unsupported(c, "decoder", type);
    }
    return st;
}

/* ---------------------------------------------------------------- tokenizer.json */

static hft_status read_added(const ctx *c, const cJSON *list, tk_added **out, int *n) {
    *out = NULL;
    *n = 0;
    if (!list || cJSON_IsNull(list)) return HFT_OK;
    if (!cJSON_IsArray(list)) return bad(c, "added_tokens", "expected a list");
    int cnt = cJSON_GetArraySize(list);
    *out = calloc((size_t)cnt + 1, sizeof **out);
    if (!*out) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    hft_status st = HFT_OK;
    int i = 0;
    for (const cJSON *e = list->child; e && st == HFT_OK; e = e->next, i++) {
        char k[64];
        snprintf(k, sizeof k, "added_tokens[%d]", i);
        tk_added *a = &(*out)[i];
        *n = i + 1;
        if ((st = get_str(c, e, "content", k, &a->content)) != HFT_OK) break;
        if (!a->content) {
            st = bad(c, k, "content: missing");
            break;
        }
        a->len = strlen(a->content);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id");
        a->id = cJSON_IsNumber(id) ? (int32_t)id->valuedouble : -1;
        if ((st = get_bool(c, e, "special", k, false, &a->special)) != HFT_OK) break;
        if ((st = get_bool(c, e, "single_word", k, false, &a->single_word)) != HFT_OK) break;
        if ((st = get_bool(c, e, "lstrip", k, false, &a->lstrip)) != HFT_OK) break;
        if ((st = get_bool(c, e, "rstrip", k, false, &a->rstrip)) != HFT_OK) break;
        st = get_bool(c, e, "normalized", k, !a->special, &a->normalized);
    }
    return st;
}

static void free_added(tk_added *a, int n) {
    for (int i = 0; i < n; i++) free(a[i].content);
    free(a);
}

hft_status tk_load_json(hft_tokenizer *t, const char *path) {
    cJSON *root;
    hft_status st = tk_parse_json(path, &root);
    if (st != HFT_OK) return st;
    ctx c = {.file = path};
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(root, "version");
    if (ver && (!cJSON_IsString(ver) || strcmp(ver->valuestring, "1.0") != 0))
        st = bad(&c, "version", "unknown tokenizer version (expected \"1.0\")");
    const cJSON *o;
    if (st == HFT_OK && (o = cJSON_GetObjectItemCaseSensitive(root, "normalizer")) && !cJSON_IsNull(o)) {
        t->normalizer = calloc(1, sizeof *t->normalizer);
        st = t->normalizer ? read_normalizer(&c, o, "normalizer", t->normalizer)
                           : hft_error(HFT_ENOMEM, "out of memory");
    }
    if (st == HFT_OK && (o = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")) && !cJSON_IsNull(o)) {
        t->pretok = calloc(1, sizeof *t->pretok);
        st = t->pretok ? read_pretok(&c, o, "pre_tokenizer", t->pretok)
                       : hft_error(HFT_ENOMEM, "out of memory");
    }
    if (st == HFT_OK) st = read_model(&c, cJSON_GetObjectItemCaseSensitive(root, "model"), &t->model);
    if (st == HFT_OK && (o = cJSON_GetObjectItemCaseSensitive(root, "post_processor")) && !cJSON_IsNull(o)) {
        t->post = calloc(1, sizeof *t->post);
        st = t->post ? read_post(&c, o, "post_processor", t->post) : hft_error(HFT_ENOMEM, "out of memory");
    }
    if (st == HFT_OK && (o = cJSON_GetObjectItemCaseSensitive(root, "decoder")) && !cJSON_IsNull(o)) {
        t->decoder = calloc(1, sizeof *t->decoder);
        st = t->decoder ? read_decoder(&c, o, "decoder", t->decoder) : hft_error(HFT_ENOMEM, "out of memory");
    }
    if (st == HFT_OK && t->model.kind == TK_M_BPE) st = tk_bpe_prepare(&t->model, has_bytelevel(t->pretok));
    tk_added *added = NULL;
    int n_added = 0;
    if (st == HFT_OK)
        st = read_added(&c, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), &added, &n_added);
    if (st == HFT_OK) st = tk_added_add(t, added, n_added);
    free_added(added, n_added);
    if (st == HFT_OK && t->model.unk)
        t->specials.unk = tk_map_get(&t->model.vocab, t->model.unk, strlen(t->model.unk));
    cJSON_Delete(root);
    return st;
}
