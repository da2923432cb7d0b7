/* The BPE model as tokenizers' models::bpe (merge_word + Word::merge_all): initial symbols per char (with
 * continuing_subword_prefix / end_of_word_suffix, byte_fallback "<0xNN>" tokens, unk fusing), then merges by
 * rank, lowest first and leftmost on ties, which both paths here reproduce exactly: a rank scan for short
 * words and tokenizers' own heap for long ones. Words under 256 bytes go through a per-thread cache. When the
 * model is fed ByteLevel-mapped text it runs on the raw bytes (tiktoken's way) with a vocabulary translated
 * back to bytes, which gives the same tokens without mapping every byte to a char and back. A SentencePiece
 * style word (a whole paragraph, "▁" for spaces) is merged "▁"-run by "▁"-run when no token could span the
 * cut, which is again the same result. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

/* ---------------------------------------------------------------- the word cache */

enum { CACHE_MAX_ENTRIES = 1 << 14, CACHE_MAX_KEYS = 1 << 19, CACHE_MAX_VALS = 1 << 18, CACHE_WORD = 256 };

typedef struct cache_entry {
    uint64_t h;
    uint32_t key_off, key_len, val_off, val_n;
} cache_entry;

struct tk_cache {
    uint32_t slots[2 * CACHE_MAX_ENTRIES]; /* entry + 1; 0 is empty */
    cache_entry *entries;
    size_t n, entries_cap;
    char *keys;
    size_t keys_n, keys_cap;
    uint32_t *vals;
    size_t vals_n, vals_cap;
};

tk_cache *tk_cache_new(void) {
    return calloc(1, sizeof(tk_cache));
}

void tk_cache_free(tk_cache *c) {
    if (!c) return;
    free(c->entries);
    free(c->keys);
    free(c->vals);
    free(c);
}

const uint32_t *tk_cache_get(tk_cache *c, const char *s, size_t n, uint64_t h, uint32_t *count) {
    if (!c) return NULL;
    for (size_t i = (size_t)h & (2 * CACHE_MAX_ENTRIES - 1);; i = (i + 1) & (2 * CACHE_MAX_ENTRIES - 1)) {
        uint32_t e = c->slots[i];
        if (!e) return NULL;
        const cache_entry *en = &c->entries[e - 1];
        if (en->h == h && en->key_len == n && memcmp(c->keys + en->key_off, s, n) == 0) {
            *count = en->val_n;
            return c->vals + en->val_off;
        }
    }
}

void tk_cache_put(tk_cache *c, const char *s, size_t n, uint64_t h, const uint32_t *vals, uint32_t count) {
    if (!c) return;
    if (c->n + 1 > CACHE_MAX_ENTRIES || c->keys_n + n > CACHE_MAX_KEYS ||
        c->vals_n + count > CACHE_MAX_VALS) {
        /* full: start over (a bounded cache that never reallocates once grown) */
        memset(c->slots, 0, sizeof c->slots);
        c->n = c->keys_n = c->vals_n = 0;
        if (count > CACHE_MAX_VALS || n > CACHE_MAX_KEYS) return;
    }
    if (TK_GROW(c->entries, c->entries_cap, c->n + 1) != HFT_OK ||
        tk_grow((void **)&c->keys, &c->keys_cap, c->keys_n + n, 1) != HFT_OK ||
        TK_GROW(c->vals, c->vals_cap, c->vals_n + count) != HFT_OK)
        return; /* the cache is an optimisation: skip on failure */
    memcpy(c->keys + c->keys_n, s, n);
    if (count) memcpy(c->vals + c->vals_n, vals, count * sizeof *vals);
    c->entries[c->n] = (cache_entry){h, (uint32_t)c->keys_n, (uint32_t)n, (uint32_t)c->vals_n, count};
    c->keys_n += n;
    c->vals_n += count;
    size_t i = (size_t)h & (2 * CACHE_MAX_ENTRIES - 1);
    while (c->slots[i]) i = (i + 1) & (2 * CACHE_MAX_ENTRIES - 1);
    c->slots[i] = (uint32_t)++c->n;
}

/* ---------------------------------------------------------------- model helpers */

const char *tk_model_id_to_token(const tk_model *m, int32_t id, size_t *len) {
    if (id < 0 || id >= m->n_ids || m->id_entry[id] == UINT32_MAX) return NULL;
    const tk_map_entry *e = &m->vocab.entries[m->id_entry[id]];
    if (len) *len = e->len;
    return m->vocab.pool + e->off;
}

int32_t tk_model_token_to_id(const tk_model *m, const char *s, size_t n) {
    return tk_map_get(&m->vocab, s, n);
}

size_t tk_model_vocab_count(const tk_model *m) {
    size_t n = 0;
    for (size_t i = 0; i < m->vocab.n; i++)
        if (m->vocab.entries[i].id >= 0) n++;
    return n;
}

void tk_model_clear(tk_model *m) {
    tk_map_free(&m->vocab);
    tk_map_free(&m->raw_vocab);
    tk_pairmap_free(&m->merges);
    free(m->id_entry);
    free(m->unk);
    free(m->prefix);
    free(m->suffix);
    memset(m, 0, sizeof *m);
}

hft_status tk_bpe_prepare(tk_model *m, bool bytelevel) {
    for (int b = 0; b < 256; b++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", b);
        m->fallback_ids[b] = tk_map_get(&m->vocab, code, 6);
    }
    for (int c = 0; c < 128; c++) {
        char ch = (char)c;
        m->char_ids[c] = tk_map_get(&m->vocab, &ch, 1);
    }
    m->raw = false;
    bool plain = (!m->prefix || !*m->prefix) && (!m->suffix || !*m->suffix);
    m->split_meta = false;
    if (plain && m->kind == TK_M_BPE && tk_map_get(&m->vocab, "\xE2\x96\x81", 3) >= 0) {
        m->split_meta = true;
        for (size_t e = 0; e < m->vocab.n && m->split_meta; e++) {
            const char *k = tk_map_key(&m->vocab, e);
            size_t len = m->vocab.entries[e].len;
            for (size_t i = 3; i + 3 <= len && m->split_meta; i++)
                if (!memcmp(k + i, "\xE2\x96\x81", 3) && memcmp(k + i - 3, "\xE2\x96\x81", 3) != 0)
                    m->split_meta = false;
        }
    }
    if (!bytelevel || !plain || m->kind != TK_M_BPE) return HFT_OK;
    /* raw mode needs every byte's char in the vocabulary (then unk and byte fallback never come into play) */
    uint32_t inverse[512];
    memset(inverse, 0xFF, sizeof inverse);
    for (int b = 0; b < 256; b++) {
        char buf[4];
        uint32_t ch = tk_byte_char((unsigned)b);
        int l = tk_utf8_put(ch, buf);
        m->raw_byte_ids[b] = tk_map_get(&m->vocab, buf, (size_t)l);
        if (m->raw_byte_ids[b] < 0) return HFT_OK;
        inverse[ch] = (uint32_t)b;
    }
    char *tmp = NULL;
    size_t cap = 0;
    hft_status st = HFT_OK;
    for (size_t e = 0; e < m->vocab.n && st == HFT_OK; e++) {
        const char *key = tk_map_key(&m->vocab, e);
        size_t len = m->vocab.entries[e].len, w = 0;
        bool ok = true;
        if ((st = tk_grow((void **)&tmp, &cap, len + 1, 1)) != HFT_OK) break;
        for (size_t i = 0; i < len && ok;) {
            int l;
            uint32_t cp = tk_utf8_get(key + i, &l);
            if (cp >= 512 || inverse[cp] == UINT32_MAX)
                ok = false;
            else
                tmp[w++] = (char)inverse[cp];
            i += (size_t)l;
        }
        if (ok) st = tk_map_put(&m->raw_vocab, tmp, w, m->vocab.entries[e].id);
    }
    free(tmp);
    if (st == HFT_OK) m->raw = true;
    return st;
}

/* ---------------------------------------------------------------- merging */

typedef struct sym {
    int32_t id;
    uint32_t len;
    int32_t prev, next;
} sym;

typedef struct merge {
    uint32_t rank, pos, id;
} merge;

static inline bool merge_before(const merge *a, const merge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static void heap_push(merge *h, size_t *n, merge m) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_before(&m, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = m;
}

static merge heap_pop(merge *h, size_t *n) {
    merge top = h[0], last = h[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && merge_before(&h[c + 1], &h[c])) c++;
        if (!merge_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

/* Word::merge_all, as tokenizers does it (for long words). Returns the number of symbols left, compacted. */
static hft_status merge_heap(tk_ws *ws, const tk_pairmap *merges, sym *w, size_t n, size_t *out_n) {
    hft_status st = tk_grow(&ws->heap, &ws->heap_cap, 2 * n + 1, sizeof(merge));
    if (st != HFT_OK) return st;
    merge *h = ws->heap;
    size_t hn = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const uint32_t *v = tk_pairmap_get(merges, (uint32_t)w[i].id, (uint32_t)w[i + 1].id);
        if (v) heap_push(h, &hn, (merge){v[0], (uint32_t)i, v[1]});
    }
    while (hn) {
        merge top = heap_pop(h, &hn);
        sym *cur = &w[top.pos];
        if (cur->len == 0 || cur->next < 0) continue;
        sym right = w[cur->next];
        const uint32_t *v = tk_pairmap_get(merges, (uint32_t)cur->id, (uint32_t)right.id);
        if (!v || v[1] != top.id) continue; /* an expired entry */
        int32_t next_pos = cur->next;
        cur->id = (int32_t)top.id;
        cur->len += right.len;
        cur->next = right.next;
        w[next_pos].len = 0;
        if (right.next >= 0) w[right.next].prev = (int32_t)top.pos;
        if (hn + 2 > ws->heap_cap) {
            if ((st = tk_grow(&ws->heap, &ws->heap_cap, hn + 2, sizeof(merge))) != HFT_OK) return st;
            h = ws->heap;
        }
        if (cur->prev >= 0) {
            v = tk_pairmap_get(merges, (uint32_t)w[cur->prev].id, (uint32_t)cur->id);
            if (v) heap_push(h, &hn, (merge){v[0], (uint32_t)cur->prev, v[1]});
        }
        if (cur->next >= 0) {
            v = tk_pairmap_get(merges, (uint32_t)cur->id, (uint32_t)w[cur->next].id);
            if (v) heap_push(h, &hn, (merge){v[0], top.pos, v[1]});
        }
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (w[i].len) w[k++] = w[i];
    *out_n = k;
    return HFT_OK;
}

/* The same merges for short words: repeatedly the lowest-rank adjacent pair, leftmost on ties. */
static size_t merge_scan(const tk_pairmap *merges, sym *w, size_t n) {
    uint32_t rank[64], nid[64];
    for (size_t i = 0; i + 1 < n; i++) {
        const uint32_t *v = tk_pairmap_get(merges, (uint32_t)w[i].id, (uint32_t)w[i + 1].id);
        rank[i] = v ? v[0] : UINT32_MAX;
        nid[i] = v ? v[1] : 0;
    }
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (rank[i] < rank[best]) best = i;
        if (rank[best] == UINT32_MAX) break;
        w[best].id = (int32_t)nid[best];
        w[best].len += w[best + 1].len;
        for (size_t i = best + 1; i + 1 < n; i++) w[i] = w[i + 1];
        for (size_t i = best + 1; i + 2 < n; i++) {
            rank[i] = rank[i + 1];
            nid[i] = nid[i + 1];
        }
        n--;
        for (size_t i = best ? best - 1 : 0; i <= best && i + 1 < n; i++) {
            const uint32_t *v = tk_pairmap_get(merges, (uint32_t)w[i].id, (uint32_t)w[i + 1].id);
            rank[i] = v ? v[0] : UINT32_MAX;
            nid[i] = v ? v[1] : 0;
        }
    }
    return n;
}

/* ---------------------------------------------------------------- initial symbols (merge_word) */

static hft_status add_sym(tk_ws *ws, size_t *n, int32_t id, uint32_t len) {
    hft_status st = tk_grow(&ws->sym, &ws->sym_cap, *n + 1, sizeof(sym));
    if (st != HFT_OK) return st;
    sym *w = ws->sym;
    w[*n] = (sym){id, len, (int32_t)*n - 1, -1};
    if (*n) w[*n - 1].next = (int32_t)*n;
    (*n)++;
    return HFT_OK;
}

static hft_status initial_symbols(tk_ws *ws, const tk_model *m, const char *s, size_t n, size_t *count) {
    size_t k = 0;
    hft_status st = HFT_OK;
    bool have_unk = false;
    int32_t unk_id = -1;
    uint32_t unk_len = 0;
    size_t plen = m->prefix ? strlen(m->prefix) : 0, slen = m->suffix ? strlen(m->suffix) : 0;
    for (size_t i = 0; i < n && st == HFT_OK;) {
        int l = tk_utf8_len((unsigned char)s[i]);
        bool first = i == 0, last = i + (size_t)l >= n;
        const char *key = s + i;
        size_t key_len = (size_t)l;
        int32_t id;
        if ((unsigned char)s[i] < 0x80 && (first || !plen) && (!last || !slen)) {
            id = m->char_ids[(unsigned char)s[i]];
        } else {
            size_t need = (first ? 0 : plen) + (size_t)l + (last ? slen : 0);
            if ((st = tk_grow((void **)&ws->tmp, &ws->tmp_cap, need + 1, 1)) != HFT_OK) break;
            size_t w = 0;
            if (!first && plen) memcpy(ws->tmp, m->prefix, plen), w = plen;
            memcpy(ws->tmp + w, s + i, (size_t)l);
            w += (size_t)l;
            if (last && slen) memcpy(ws->tmp + w, m->suffix, slen), w += slen;
            key = ws->tmp;
            key_len = w;
            id = tk_map_get(&m->vocab, key, key_len);
        }
        if (id >= 0) {
            if (have_unk) st = add_sym(ws, &k, unk_id, unk_len);
            have_unk = false;
            if (st == HFT_OK) st = add_sym(ws, &k, id, (uint32_t)l);
        } else {
            bool done = false;
            if (m->byte_fallback) {
                done = true;
                for (size_t b = 0; b < key_len; b++) done &= m->fallback_ids[(unsigned char)key[b]] >= 0;
                for (size_t b = 0; done && b < key_len && st == HFT_OK; b++)
                    st = add_sym(ws, &k, m->fallback_ids[(unsigned char)key[b]], 1);
            }
            if (!done && m->unk) {
                if (m->unk_id < 0)
                    return hft_error(HFT_EFORMAT, "tokenizer: unk_token \"%s\" is not in the vocabulary",
                                     m->unk);
                if (have_unk && m->fuse_unk) {
                    unk_len += (uint32_t)l;
                } else {
                    if (have_unk) st = add_sym(ws, &k, unk_id, unk_len);
                    have_unk = true;
                    unk_id = m->unk_id;
                    unk_len = (uint32_t)l;
                }
            }
        }
        i += (size_t)l;
    }
    if (st == HFT_OK && have_unk) st = add_sym(ws, &k, unk_id, unk_len);
    *count = k;
    return st;
}

/* ---------------------------------------------------------------- tokenize */

static hft_status push_tokens(tk_ws *ws, const uint32_t *vals, uint32_t count, uint32_t pos) {
    hft_status st = TK_GROW(ws->mt, ws->mt_cap, ws->mt_n + count);
    if (st != HFT_OK) return st;
    for (uint32_t i = 0; i < count; i++) {
        ws->mt[ws->mt_n++] = (tk_mtok){(int32_t)vals[2 * i], pos, pos + vals[2 * i + 1]};
        pos += vals[2 * i + 1];
    }
    return HFT_OK;
}

/* One word through the cache and the merges; its tokens start at byte `base` of the piece. */
static hft_status bpe_word(tk_ws *ws, const hft_tokenizer *t, const char *s, size_t n, bool raw,
                           uint32_t base) {
    const tk_model *m = &t->model;
    tk_cache *cache = n < CACHE_WORD ? tk_ws_cache(ws, t) : NULL;
    uint64_t h = 0;
    if (cache) {
        h = tk_hash(s, n) ^ (raw ? 0x5555555555555555ull : 0);
        uint32_t count;
        const uint32_t *hit = tk_cache_get(cache, s, n, h, &count);
        if (hit) return push_tokens(ws, hit, count / 2, base);
    }
    size_t k = 0;
    hft_status st = HFT_OK;
    if (raw) {
        if ((st = tk_grow(&ws->sym, &ws->sym_cap, n, sizeof(sym))) != HFT_OK) return st;
        sym *w = ws->sym;
        for (size_t i = 0; i < n; i++)
            w[i] = (sym){m->raw_byte_ids[(unsigned char)s[i]], 1, (int32_t)i - 1,
                         i + 1 < n ? (int32_t)i + 1 : -1};
        k = n;
    } else if ((st = initial_symbols(ws, m, s, n, &k)) != HFT_OK) {
        return st;
    }
    sym *w = ws->sym;
    if (k <= 64)
        k = merge_scan(&m->merges, w, k);
    else if ((st = merge_heap(ws, &m->merges, w, k, &k)) != HFT_OK)
        return st;
    w = ws->sym;
    /* reuse the symbols' storage as (id, len) pairs: sym is 16 bytes, a pair 8 */
    uint32_t *vals = (uint32_t *)w;
    for (size_t i = 0; i < k; i++) {
        uint32_t id = (uint32_t)w[i].id, len = w[i].len;
        vals[2 * i] = id;
        vals[2 * i + 1] = len;
    }
    if (cache) tk_cache_put(cache, s, n, h, vals, (uint32_t)(2 * k));
    return push_tokens(ws, vals, (uint32_t)k, base);
}

static inline bool is_meta(const char *s) {
    return (unsigned char)s[0] == 0xE2 && (unsigned char)s[1] == 0x96 && (unsigned char)s[2] == 0x81;
}

hft_status tk_bpe_tokenize(tk_ws *ws, const hft_tokenizer *t, const char *s, size_t n, bool raw) {
    const tk_model *m = &t->model;
    if (n == 0) return HFT_OK;
    if (m->ignore_merges) {
        int32_t id = tk_map_get(raw ? &m->raw_vocab : &m->vocab, s, n);
        if (id >= 0) {
            uint32_t v[2] = {(uint32_t)id, (uint32_t)n};
            return push_tokens(ws, v, 1, 0);
        }
    }
    if (raw || !m->split_meta) return bpe_word(ws, t, s, n, raw, 0);
    /* pieces that each start where a "▁" follows another char */
    size_t start = 0;
    for (size_t i = 3; i + 3 <= n; i++) {
        /* E2 is a lead byte: a match is a char boundary, and s[i - 3 .. i) equals "▁" only when it is one */
        if (!is_meta(s + i) || is_meta(s + i - 3)) continue;
        hft_status st = bpe_word(ws, t, s + start, i - start, false, (uint32_t)start);
        if (st != HFT_OK) return st;
        start = i;
        i += 2;
    }
    return bpe_word(ws, t, s + start, n - start, false, (uint32_t)start);
}

hft_status tk_model_tokenize(tk_ws *ws, const hft_tokenizer *t, const char *s, size_t n, bool bytemap) {
    const tk_model *m = &t->model;
    switch (m->kind) {
    case TK_M_BPE:
        return tk_bpe_tokenize(ws, t, s, n, bytemap && m->raw);
    case TK_M_WORDPIECE:
    case TK_M_WORDLEVEL:
        return tk_wordpiece_tokenize(ws, t, s, n);
    case TK_M_BYTES: {
        hft_status st = TK_GROW(ws->mt, ws->mt_cap, ws->mt_n + n);
        if (st != HFT_OK) return st;
        for (size_t i = 0; i < n; i++)
            ws->mt[ws->mt_n++] = (tk_mtok){(int32_t)(unsigned char)s[i], (uint32_t)i, (uint32_t)i + 1};
        return HFT_OK;
    }
    }
    return hft_error(HFT_EINVAL, "tokenizer: unknown model");
}
