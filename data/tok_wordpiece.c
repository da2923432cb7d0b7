/* The WordPiece model (greedy longest match first, continuing pieces prefixed "##", the whole word unk when
 * any part fails or it has more than max_input_chars_per_word chars) and the WordLevel model, as tokenizers'
 * models::wordpiece and models::wordlevel. Words go through the same per-thread cache as BPE's. */
#include <string.h>

#include "data/tokenizer_internal.h"

static hft_status push(tk_ws *ws, int32_t id, uint32_t a, uint32_t b) {
    hft_status st = TK_GROW(ws->mt, ws->mt_cap, ws->mt_n + 1);
    if (st != HFT_OK) return st;
    ws->mt[ws->mt_n++] = (tk_mtok){id, a, b};
    return HFT_OK;
}

static hft_status unk_word(tk_ws *ws, const tk_model *m, size_t n) {
    if (m->unk_id < 0) {
        if (m->kind == TK_M_WORDLEVEL)
            return hft_error(HFT_EFORMAT, "tokenizer: WordLevel has no unk token in its vocabulary");
        return hft_error(HFT_EFORMAT, "tokenizer: WordPiece unk_token \"%s\" is not in the vocabulary",
                         m->unk ? m->unk : "");
    }
    return push(ws, m->unk_id, 0, (uint32_t)n);
}

hft_status tk_wordpiece_tokenize(tk_ws *ws, const hft_tokenizer *t, const char *s, size_t n) {
    const tk_model *m = &t->model;
    if (m->kind == TK_M_WORDLEVEL) {
        int32_t id = tk_map_get(&m->vocab, s, n);
        return id >= 0 ? push(ws, id, 0, (uint32_t)n) : unk_word(ws, m, n);
    }
    size_t chars = 0;
    for (size_t i = 0; i < n; i += (size_t)tk_utf8_len((unsigned char)s[i])) chars++;
    if (chars > m->max_input_chars) return unk_word(ws, m, n);

    tk_cache *cache = n < 256 ? tk_ws_cache(ws, t) : NULL;
    uint64_t h = 0;
    size_t first = ws->mt_n;
    if (cache) {
        h = tk_hash(s, n);
        uint32_t count;
        const uint32_t *hit = tk_cache_get(cache, s, n, h, &count);
        if (hit) {
            hft_status st = TK_GROW(ws->mt, ws->mt_cap, ws->mt_n + count);
            if (st != HFT_OK) return st;
            for (uint32_t i = 0; i < count / 3; i++)
                ws->mt[ws->mt_n++] = (tk_mtok){(int32_t)hit[3 * i], hit[3 * i + 1], hit[3 * i + 2]};
            return HFT_OK;
        }
    }
    size_t plen = m->prefix ? strlen(m->prefix) : 0;
    hft_status st = tk_grow((void **)&ws->tmp, &ws->tmp_cap, plen + n + 1, 1);
    if (st != HFT_OK) return st;
    if (plen) memcpy(ws->tmp, m->prefix, plen);
    bool bad = false;
    for (size_t start = 0; start < n && !bad;) {
        size_t end = n;
        int32_t found = -1;
        /* no vocabulary entry is longer than max_token_len bytes: skip the candidates that cannot match */
        while (end > start && end - start + (start ? plen : 0) > m->max_token_len) {
            end--;
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
        }
        while (start < end) {
            if (start) {
                memcpy(ws->tmp + plen, s + start, end - start);
                found = tk_map_get(&m->vocab, ws->tmp, plen + end - start);
            } else {
                found = tk_map_get(&m->vocab, s, end);
            }
            if (found >= 0) break;
            end--;
            while (end > start && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
        }
        if (found < 0) {
            bad = true;
            break;
        }
        if ((st = push(ws, found, (uint32_t)start, (uint32_t)end)) != HFT_OK) return st;
        start = end;
    }
    if (bad) {
        ws->mt_n = first;
        if ((st = unk_word(ws, m, n)) != HFT_OK) return st;
    }
    if (cache) {
        size_t count = ws->mt_n - first;
        if ((st = tk_grow((void **)&ws->cps, &ws->cps_cap, 3 * count, sizeof *ws->cps)) != HFT_OK) return st;
        for (size_t i = 0; i < count; i++) {
            ws->cps[3 * i] = (uint32_t)ws->mt[first + i].id;
            ws->cps[3 * i + 1] = ws->mt[first + i].a;
            ws->cps[3 * i + 2] = ws->mt[first + i].b;
        }
        tk_cache_put(cache, s, n, h, ws->cps, (uint32_t)(3 * count));
    }
    return HFT_OK;
}
