/* The tokenizer's public API: loading (dispatch to tokenizer.json or the older layouts), the byte tokenizer,
 * encode (tokenizers' encode: added tokens, normalizer, pre-tokenizer, model, post-processor) and decode, and
 * the vocabulary and special-token queries. The components live in tok_*.c. */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/tokenizer_internal.h"

static atomic_uint_fast64_t next_uid = 1;
static atomic_long live_tokenizers;

hft_tokenizer *tk_tokenizer_alloc(void) {
    hft_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    t->uid = atomic_fetch_add(&next_uid, 1);
    t->specials = (hft_special_tokens){-1, -1, -1, -1, -1, -1, -1};
    t->model.unk_id = -1;
    atomic_fetch_add(&live_tokenizers, 1);
    tk_unicode_init();
    return t;
}

void hft_tokenizer_free(hft_tokenizer *t) {
    if (!t) return;
    if (t->normalizer) {
        tk_normalizer_clear(t->normalizer);
        free(t->normalizer);
    }
    if (t->pretok) {
        tk_pretok_clear(t->pretok);
        free(t->pretok);
    }
    if (t->post) {
        tk_post_clear(t->post);
        free(t->post);
    }
    if (t->decoder) {
        tk_decoder_clear(t->decoder);
        free(t->decoder);
    }
    tk_model_clear(&t->model);
    for (int i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].norm);
    }
    free(t->added);
    tk_map_free(&t->added_map);
    tk_map_free(&t->special_set);
    free(t->added_of_id);
    free(t->trie_raw.nodes);
    free(t->trie_raw.edges);
    free(t->trie_norm.nodes);
    free(t->trie_norm.edges);
    free(t->trim_counts);
    free(t->chat_template);
    free(t);
    /* the last tokenizer gone: this thread's scratch goes too (other threads free theirs when they exit) */
    if (atomic_fetch_sub(&live_tokenizers, 1) == 1) tk_ws_release_thread();
}

void tk_trim_count(const char *s, size_t n, uint32_t *lead, uint32_t *trail) {
    uint32_t l = 0, r = 0;
    size_t i = 0;
    while (i < n) {
        int len;
        uint32_t cp = tk_utf8_get(s + i, &len);
        if (cp != 0x120 && !(tk_props(cp) & TK_RUST_WS)) break;
        l++;
        i += (size_t)len;
    }
    size_t j = n;
    while (j > 0) {
        size_t k = j - 1;
        while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
        int len;
        uint32_t cp = tk_utf8_get(s + k, &len);
        if (cp != 0x120 && !(tk_props(cp) & TK_RUST_WS)) break;
        r++;
        j = k;
    }
    *lead = l;
    *trail = r;
}

hft_status tk_tokenizer_finish(hft_tokenizer *t) {
    int64_t max_id = t->model.n_ids - 1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id > max_id) max_id = t->added[i].id;
    t->vocab_size = max_id + 1;
    hft_status st = tk_added_build(t);
    if (st != HFT_OK) return st;
    t->trims = t->post && tk_post_trims(t->post);
    if (t->trims && t->model.n_ids > 0) {
        t->trim_counts = calloc((size_t)t->model.n_ids, sizeof *t->trim_counts);
        if (!t->trim_counts) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        for (int64_t id = 0; id < t->model.n_ids; id++) {
            size_t len;
            const char *s = tk_model_id_to_token(&t->model, (int32_t)id, &len);
            if (s) tk_trim_count(s, len, &t->trim_counts[id][0], &t->trim_counts[id][1]);
        }
    }
    return HFT_OK;
}

/* ---------------------------------------------------------------- the byte tokenizer */

hft_status hft_tokenizer_bytes(hft_tokenizer **out) {
    *out = NULL;
    hft_tokenizer *t = tk_tokenizer_alloc();
    if (!t) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    hft_status st = HFT_OK;
    tk_model *m = &t->model;
    m->kind = TK_M_BYTES;
    m->n_ids = 256;
    m->id_entry = malloc(256 * sizeof *m->id_entry);
    if (!m->id_entry) st = hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    /* token strings: GPT-2's byte-level chars, the convention for byte tokens */
    for (unsigned b = 0; b < 256 && st == HFT_OK; b++) {
        char buf[4];
        int l = tk_utf8_put(tk_byte_char(b), buf);
        st = tk_map_put(&m->vocab, buf, (size_t)l, (int32_t)b);
        if (st == HFT_OK) m->id_entry[b] = (uint32_t)m->vocab.n - 1;
    }
    if (st == HFT_OK) {
        t->decoder = calloc(1, sizeof *t->decoder);
        if (!t->decoder)
            st = hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        else
            t->decoder->kind = TK_D_BYTELEVEL;
    }
    if (st == HFT_OK) {
        tk_added eot = {.content = tk_strndup("<|endoftext|>", 13), .len = 13, .special = true};
        st = eot.content ? tk_added_add(t, &eot, 1) : hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        free(eot.content);
    }
    if (st == HFT_OK) st = tk_tokenizer_finish(t);
    if (st != HFT_OK) {
        hft_tokenizer_free(t);
        return st;
    }
    t->specials.bos = t->specials.eos = t->specials.pad = 256;
    *out = t;
    return HFT_OK;
}

/* ---------------------------------------------------------------- loading */

static bool is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

hft_status hft_tokenizer_load(const char *path, hft_tokenizer **out) {
    *out = NULL;
    struct stat sb;
    if (!path || stat(path, &sb) != 0)
        return hft_error(HFT_EIO, "%s: cannot open: %s", path ? path : "(null)", strerror(errno));
    size_t n = strlen(path);
    char *dir = malloc(n + 32), *a = malloc(n + 40), *b = malloc(n + 40);
    hft_tokenizer *t = tk_tokenizer_alloc();
    hft_status st = HFT_OK;
    if (!dir || !a || !b || !t) {
        st = hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        goto done;
    }
    if (S_ISDIR(sb.st_mode)) {
        snprintf(dir, n + 32, "%s", path);
        snprintf(a, n + 40, "%s/tokenizer.json", path);
        if (is_file(a)) {
            st = tk_load_json(t, a);
        } else {
            snprintf(a, n + 40, "%s/vocab.json", path);
            snprintf(b, n + 40, "%s/merges.txt", path);
            if (is_file(a) && is_file(b)) {
                st = tk_load_vocab_merges(t, a, b);
            } else {
                snprintf(a, n + 40, "%s/vocab.txt", path);
                snprintf(b, n + 40, "%s/tokenizer_config.json", path);
                if (is_file(a))
                    st = tk_load_vocab_txt(t, a, is_file(b) ? b : NULL);
                else
                    st = hft_error(
                        HFT_EIO, "%s: no tokenizer.json, vocab.json + merges.txt or vocab.txt in this folder",
                        path);
            }
        }
    } else {
        const char *slash = strrchr(path, '/');
        if (slash)
            snprintf(dir, n + 32, "%.*s", (int)(slash - path), path);
        else
            snprintf(dir, n + 32, ".");
        st = tk_load_json(t, path);
    }
    if (st == HFT_OK) st = tk_load_config(t, dir);
    if (st == HFT_OK) st = tk_tokenizer_finish(t);
done:
    free(dir);
    free(a);
    free(b);
    if (st != HFT_OK) {
        hft_tokenizer_free(t);
        return st;
    }
    *out = t;
    return HFT_OK;
}

/* ---------------------------------------------------------------- encode */

static hft_status et_push(tk_ws *ws, int seq, tk_etok tok) {
    hft_status st = TK_GROW(ws->et[seq], ws->et_cap[seq], ws->et_n[seq] + 1);
    if (st != HFT_OK) return st;
    ws->et[seq][ws->et_n[seq]++] = tok;
    return HFT_OK;
}

/* One sequence through added tokens, normalizer, pre-tokenizer and model into ws->et[seq]. */
static hft_status encode_one(tk_ws *ws, const hft_tokenizer *t, const char *text, size_t len, int seq,
                             bool use_fast) {
    ws->orig = ws->text[seq] = text;
    ws->orig_len = ws->text_len[seq] = len;
    ws->nb_n = 0;
    ws->sp_n = 0;
    ws->et_n[seq] = 0;
    if (len == 0) return HFT_OK;
    hft_status st = tk_added_extract(ws, t, len);
    if (st == HFT_OK && t->pretok) st = tk_pretokenize(ws, t->pretok, use_fast);
    for (size_t i = 0; i < ws->sp_n && st == HFT_OK; i++) {
        tk_split *sp = &ws->sp[i];
        if (sp->added >= 0) {
            tk_etok tok = {.id = sp->added, .type = (uint32_t)seq, .seq = (uint32_t)seq};
            uint32_t s, e, e2;
            tk_split_align(ws, sp, 0, &s, &e);
            tk_split_align(ws, sp, sp->len - 1, &e2, &e);
            tok.a = s;
            tok.b = e;
            if (t->trims) tk_trim_count(tk_split_bytes(ws, sp), sp->len, &tok.lead, &tok.trail);
            st = et_push(ws, seq, tok);
            continue;
        }
        if (sp->bytemap && !(t->model.kind == TK_M_BPE && t->model.raw)) st = tk_split_apply_bytemap(ws, sp);
        if (st != HFT_OK) break;
        ws->mt_n = 0;
        st = tk_model_tokenize(ws, t, tk_split_bytes(ws, sp), sp->len, sp->bytemap);
        if (st == HFT_OK) st = TK_GROW(ws->et[seq], ws->et_cap[seq], ws->et_n[seq] + ws->mt_n);
        if (st != HFT_OK) break;
        for (size_t k = 0; k < ws->mt_n; k++) {
            const tk_mtok *m = &ws->mt[k];
            tk_etok *tok = &ws->et[seq][ws->et_n[seq]++];
            *tok = (tk_etok){.id = m->id, .type = (uint32_t)seq, .seq = (uint32_t)seq};
            if (m->a == m->b || t->model.kind == TK_M_BYTES) {
                /* tokenizers gives an empty range back in normalized coordinates, shifted */
                tok->a = sp->olo + m->a;
                tok->b = sp->olo + m->b;
            } else {
                uint32_t s, e, s2, e2;
                tk_split_align(ws, sp, m->a, &s, &e);
                tk_split_align(ws, sp, m->b - 1, &s2, &e2);
                tok->a = s;
                tok->b = e2;
            }
            if (t->trims && m->id >= 0 && m->id < t->model.n_ids) {
                tok->lead = t->trim_counts[m->id][0];
                tok->trail = t->trim_counts[m->id][1];
            }
        }
    }
    return st;
}

hft_status tk_encode(const hft_tokenizer *t, const char *text, size_t len, const char *pair, size_t pair_len,
                     bool add_special, bool use_fast, hft_encoding *out) {
    if (!t || !out || (!text && len)) return hft_error(HFT_EINVAL, "hft_tokenizer_encode: NULL argument");
    for (int seq = 0; seq < (pair ? 2 : 1); seq++) {
        const char *s = seq ? pair : text;
        size_t n = seq ? pair_len : len;
        int64_t bad = tk_utf8_check(s, n);
        if (bad >= 0)
            return hft_error(HFT_EINVAL,
                             "hft_tokenizer_encode: the %s is not valid UTF-8 at byte offset %lld",
                             seq ? "text pair" : "text", (long long)bad);
        if (n > UINT32_MAX / 2)
            return hft_error(HFT_EINVAL,
                             "hft_tokenizer_encode: text of %zu bytes is too long (2 GiB at most)", n);
    }
    tk_ws *ws = tk_ws_get();
    if (!ws) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    hft_status st = encode_one(ws, t, text, len, 0, use_fast);
    ws->et_n[1] = 0;
    if (st == HFT_OK && pair) st = encode_one(ws, t, pair, pair_len, 1, use_fast);
    if (st == HFT_OK) st = tk_post_process(ws, t, pair != NULL, add_special, out);
    return st;
}

hft_status hft_tokenizer_encode(const hft_tokenizer *t, const char *text, size_t len, const char *text_pair,
                                size_t pair_len, bool add_special_tokens, hft_encoding *out) {
    return tk_encode(t, text, len, text_pair, pair_len, add_special_tokens, true, out);
}

void hft_encoding_free(hft_encoding *e) {
    if (!e) return;
    free(e->ids);
    free(e->offsets);
    free(e->type_ids);
    free(e->special_mask);
    memset(e, 0, sizeof *e);
}

/* ---------------------------------------------------------------- decode */

static const char *token_string(const hft_tokenizer *t, int32_t id, size_t *len) {
    const tk_added *a = tk_added_by_id(t, id);
    if (a) {
        /* tokenizers decodes a normalized added token as its normalized form */
        *len = a->norm ? a->norm_len : a->len;
        return a->norm ? a->norm : a->content;
    }
    return tk_model_id_to_token(&t->model, id, len);
}

hft_status hft_tokenizer_decode(const hft_tokenizer *t, const int32_t *ids, int64_t n,
                                bool skip_special_tokens, char **out, size_t *out_len) {
    *out = NULL;
    if (out_len) *out_len = 0;
    if (!t || (!ids && n)) return hft_error(HFT_EINVAL, "hft_tokenizer_decode: NULL argument");
    tk_strs l = {0};
    hft_status st = HFT_OK;
    for (int64_t i = 0; i < n && st == HFT_OK; i++) {
        size_t len;
        const char *s = token_string(t, ids[i], &len);
        if (!s) continue; /* unknown ids are skipped, as tokenizers does */
        if (skip_special_tokens && tk_map_get(&t->special_set, s, len) >= 0) continue;
        st = tk_strs_push(&l, s, len);
    }
    if (st == HFT_OK && t->decoder) st = tk_decode_chain(t->decoder, &l);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (size_t i = 0; i < l.n && st == HFT_OK; i++) {
        bool sep = !t->decoder && i > 0;
        st = tk_grow((void **)&buf, &cap, len + l.item[i][1] + 2, 1);
        if (st != HFT_OK) break;
        if (sep) buf[len++] = ' ';
        memcpy(buf + len, l.buf + l.item[i][0], l.item[i][1]);
        len += l.item[i][1];
    }
    if (st == HFT_OK) st = tk_grow((void **)&buf, &cap, len + 1, 1);
    tk_strs_free(&l);
    if (st != HFT_OK) {
        free(buf);
        return st;
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len) *out_len = len;
    return HFT_OK;
}

/* ---------------------------------------------------------------- queries */

int64_t hft_tokenizer_vocab_size(const hft_tokenizer *t) {
    return t ? t->vocab_size : 0;
}

int32_t hft_tokenizer_token_to_id(const hft_tokenizer *t, const char *token) {
    if (!t || !token) return -1;
    size_t n = strlen(token);
    const tk_added *a = tk_added_by_content(t, token, n);
    if (a) return a->id;
    return tk_model_token_to_id(&t->model, token, n);
}

const char *hft_tokenizer_id_to_token(const hft_tokenizer *t, int32_t id) {
    size_t len;
    return t ? token_string(t, id, &len) : NULL;
}

hft_special_tokens hft_tokenizer_specials(const hft_tokenizer *t) {
    hft_special_tokens none = {-1, -1, -1, -1, -1, -1, -1};
    return t ? t->specials : none;
}

bool hft_tokenizer_pads_left(const hft_tokenizer *t) {
    return t && t->pad_left;
}

int64_t hft_tokenizer_max_length(const hft_tokenizer *t) {
    return t ? t->max_length : 0;
}

const char *hft_tokenizer_chat_template(const hft_tokenizer *t) {
    return t ? t->chat_template : NULL;
}
