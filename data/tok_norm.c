/* The normalized-string machinery of the tokenizer: pieces of text whose every byte knows the original range
 * it came from (tokenizers' NormalizedString, with absolute offsets), transforms with the same alignment
 * rules, pattern matching and splitting with tokenizers' delimiter behaviours, and the per-thread workspace.
 * The normalizers themselves are in tok_normalizers.c. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

/* ---------------------------------------------------------------- the per-thread workspace */

static _Thread_local tk_ws *tls_ws;
static pthread_key_t ws_key;
static pthread_once_t ws_once = PTHREAD_ONCE_INIT;

static void ws_destroy(void *p) {
    tk_ws *ws = p;
    if (!ws) return;
    free(ws->nb);
    free(ws->al);
    free(ws->sp);
    free(ws->sp2);
    free(ws->rg);
    free(ws->mt);
    free(ws->et[0]);
    free(ws->et[1]);
    free(ws->pp[0]);
    free(ws->pp[1]);
    free(ws->cps);
    free(ws->tmp);
    free(ws->sym);
    free(ws->heap);
    for (int i = 0; i < 4; i++) tk_cache_free(ws->caches[i]);
    free(ws);
}

static void make_key(void) {
    pthread_key_create(&ws_key, ws_destroy);
}

tk_ws *tk_ws_get(void) {
    if (tls_ws) return tls_ws;
    pthread_once(&ws_once, make_key);
    tls_ws = calloc(1, sizeof *tls_ws);
    if (tls_ws) pthread_setspecific(ws_key, tls_ws);
    return tls_ws;
}

void tk_ws_release_thread(void) {
    if (!tls_ws) return;
    pthread_setspecific(ws_key, NULL);
    ws_destroy(tls_ws);
    tls_ws = NULL;
}

tk_cache *tk_ws_cache(tk_ws *ws, const hft_tokenizer *t) {
    int victim = 0;
    ws->tick++;
    for (int i = 0; i < 4; i++) {
        if (ws->caches[i] && ws->cache_uid[i] == t->uid) {
            ws->cache_tick[i] = ws->tick;
            return ws->caches[i];
        }
        if (ws->cache_tick[i] < ws->cache_tick[victim]) victim = i;
    }
    tk_cache_free(ws->caches[victim]);
    ws->caches[victim] = tk_cache_new();
    ws->cache_uid[victim] = t->uid;
    ws->cache_tick[victim] = ws->tick;
    return ws->caches[victim];
}

/* ---------------------------------------------------------------- normalized bytes */

static inline hft_status nb_reserve(tk_ws *ws, size_t extra) {
    size_t need = ws->nb_n + extra;
    if (need <= ws->nb_cap && need <= ws->al_cap) return HFT_OK;
    if (need > UINT32_MAX) return hft_error(HFT_EINVAL, "tokenizer: text too long (4 GiB is the limit)");
    hft_status st = tk_grow((void **)&ws->nb, &ws->nb_cap, need, 1);
    if (st == HFT_OK) st = TK_GROW(ws->al, ws->al_cap, need);
    return st;
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves; the 68 others (0x00-0x20, 0x7F-0xA0, 0xAD),
 * in order, for U+0100 upwards. */
uint32_t tk_byte_char(unsigned b) {
    if (b <= 0x20) return 256 + b;
    if (b >= 0x7F && b <= 0xA0) return 256 + 33 + (b - 0x7F);
    if (b == 0xAD) return 256 + 67;
    return b;
}

int tk_char_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xFF && cp != 0xAD)) return (int)cp;
    if (cp >= 256 && cp <= 256 + 32) return (int)(cp - 256);
    if (cp >= 256 + 33 && cp <= 256 + 66) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

hft_status tk_split_apply_bytemap(tk_ws *ws, tk_split *sp) {
    if (!sp->bytemap) return HFT_OK;
    hft_status st = nb_reserve(ws, (size_t)sp->len * 2);
    if (st != HFT_OK) return st;
    uint32_t off = (uint32_t)ws->nb_n, w = off;
    for (uint32_t i = 0; i < sp->len; i++) {
        unsigned char b = (unsigned char)tk_split_bytes(ws, sp)[i];
        uint32_t s, e;
        tk_split_align(ws, sp, i, &s, &e);
        int l = tk_utf8_put(tk_byte_char(b), ws->nb + w);
        for (int k = 0; k < l; k++) {
            ws->al[w + (uint32_t)k][0] = s;
            ws->al[w + (uint32_t)k][1] = e;
        }
        w += (uint32_t)l;
    }
    ws->nb_n = w;
    sp->off = off;
    sp->len = w - off;
    sp->ident = 0;
    sp->bytemap = 0;
    return HFT_OK;
}

/* ---------------------------------------------------------------- transforms */

void tk_xform_begin(tk_xform *x, tk_ws *ws, const tk_split *src, uint32_t initial_removed_chars) {
    x->ws = ws;
    x->src = *src;
    x->pos = 0;
    x->st = HFT_OK;
    x->start = (uint32_t)ws->nb_n;
    const char *s = tk_split_bytes(ws, src);
    for (uint32_t k = 0; k < initial_removed_chars && x->pos < src->len; k++)
        x->pos += (uint32_t)tk_utf8_len((unsigned char)s[x->pos]);
}

void tk_xform_emit_bytes(tk_xform *x, const char *c, uint32_t n, int change) {
    if (x->st != HFT_OK) return;
    tk_ws *ws = x->ws;
    uint32_t s, e;
    if (change > 0) {
        if (x->pos >= 1)
            tk_split_align(ws, &x->src, x->pos - 1, &s, &e);
        else
            s = e = x->src.olo; /* tokenizers aligns a char inserted at the very start to (0, 0) */
    } else {
        if (x->pos < x->src.len)
            tk_split_align(ws, &x->src, x->pos, &s, &e);
        else
            s = e = x->src.ohi;
        const char *src = tk_split_bytes(ws, &x->src);
        for (int k = 0; k <= -change && x->pos < x->src.len; k++)
            x->pos += (uint32_t)tk_utf8_len((unsigned char)src[x->pos]);
    }
    x->st = nb_reserve(ws, n);
    if (x->st != HFT_OK) return;
    memcpy(ws->nb + ws->nb_n, c, n);
    for (uint32_t k = 0; k < n; k++) {
        ws->al[ws->nb_n + k][0] = s;
        ws->al[ws->nb_n + k][1] = e;
    }
    ws->nb_n += n;
}

void tk_xform_emit(tk_xform *x, uint32_t cp, int change) {
    char buf[4];
    tk_xform_emit_bytes(x, buf, (uint32_t)tk_utf8_put(cp, buf), change);
}

void tk_xform_copy_to(tk_xform *x, uint32_t to) {
    if (x->st != HFT_OK || to <= x->pos) return;
    tk_ws *ws = x->ws;
    uint32_t n = to - x->pos;
    x->st = nb_reserve(ws, n);
    if (x->st != HFT_OK) return;
    memcpy(ws->nb + ws->nb_n, tk_split_bytes(ws, &x->src) + x->pos, n);
    if (x->src.ident) {
        for (uint32_t k = 0; k < n; k++)
            tk_split_align(ws, &x->src, x->pos + k, &ws->al[ws->nb_n + k][0], &ws->al[ws->nb_n + k][1]);
    } else {
        memcpy(ws->al + ws->nb_n, ws->al + x->src.off + x->pos, n * sizeof *ws->al);
    }
    ws->nb_n += n;
    x->pos = to;
}

void tk_xform_skip_to(tk_xform *x, uint32_t to) {
    if (to > x->pos) x->pos = to;
}

hft_status tk_xform_end(tk_xform *x, tk_split *out) {
    if (x->st != HFT_OK) return x->st;
    tk_split r = x->src;
    r.off = x->start;
    r.len = (uint32_t)x->ws->nb_n - x->start;
    r.ident = 0;
    r.bytemap = 0;
    *out = r;
    return HFT_OK;
}

/* ---------------------------------------------------------------- matching and splitting */

static hft_status push_range(tk_ws *ws, uint32_t a, uint32_t b, bool match) {
    hft_status st = TK_GROW(ws->rg, ws->rg_cap, ws->rg_n + 1);
    if (st != HFT_OK) return st;
    ws->rg[ws->rg_n++] = (tk_range){a, b, match};
    return HFT_OK;
}

static bool pat_char(const tk_pattern *pat, uint32_t cp) {
    switch (pat->kind) {
    case TK_PAT_CHAR:
        return cp == pat->ch;
    case TK_PAT_WHITESPACE:
        return tk_props(cp) & TK_RUST_WS;
    case TK_PAT_PUNCT:
        return tk_props(cp) & TK_PUNCT;
    case TK_PAT_NUMERIC:
        return tk_props(cp) & TK_NUMERIC;
    }
    return false;
}

hft_status tk_find_matches(tk_ws *ws, const char *s, size_t n, const tk_pattern *pat, bool use_fast) {
    ws->rg_n = 0;
    if (n == 0) return push_range(ws, 0, 0, false);
    hft_status st = HFT_OK;
    if (pat->kind == TK_PAT_REGEX) {
        /* rust-onig's find_iter: an empty match right where the previous match ended is refused and the
         * search steps one char */
        size_t prev = 0, from = 0, last_match_end = 0, ms, me;
        bool any = false;
        while (st == HFT_OK && from <= n && tk_regex_search(pat->re, s, n, from, &ms, &me, use_fast)) {
            if (ms == me && any && last_match_end == me) {
                from += from < n ? (size_t)tk_utf8_len((unsigned char)s[from]) : 1;
                continue;
            }
            from = last_match_end = me;
            any = true;
            if (prev != ms) st = push_range(ws, (uint32_t)prev, (uint32_t)ms, false);
            if (st == HFT_OK) st = push_range(ws, (uint32_t)ms, (uint32_t)me, true);
            prev = me;
        }
        if (st == HFT_OK && prev != n) st = push_range(ws, (uint32_t)prev, (uint32_t)n, false);
        return st;
    }
    uint32_t last = 0, i = 0;
    while (i < n && st == HFT_OK) {
        int l;
        uint32_t cp = tk_utf8_get(s + i, &l);
        if (pat_char(pat, cp)) {
            if (last < i) st = push_range(ws, last, i, false);
            if (st == HFT_OK) st = push_range(ws, i, i + (uint32_t)l, true);
            last = i + (uint32_t)l;
        }
        i += (uint32_t)l;
    }
    if (st == HFT_OK && i > last) st = push_range(ws, last, i, false);
    return st;
}

hft_status tk_split_push_slice(tk_ws *ws, const tk_split *sp, uint32_t a, uint32_t b, int32_t added) {
    if (a >= b) return HFT_OK;
    hft_status st = TK_GROW(ws->sp2, ws->sp2_cap, ws->sp2_n + 1);
    if (st != HFT_OK) return st;
    tk_split r = *sp;
    r.off = sp->off + a;
    r.len = b - a;
    r.added = added;
    if (sp->ident) {
        r.olo = r.off;
        r.ohi = r.off + r.len;
    } else {
        r.olo = ws->al[r.off][0];
        r.ohi = ws->al[r.off + r.len - 1][1];
    }
    ws->sp2[ws->sp2_n++] = r;
    return HFT_OK;
}

hft_status tk_split_by(tk_ws *ws, const tk_split *sp, const tk_pattern *pat, bool invert, int behavior,
                       bool use_fast) {
    hft_status st = tk_find_matches(ws, tk_split_bytes(ws, sp), sp->len, pat, use_fast);
    if (st != HFT_OK) return st;
    tk_range *r = ws->rg;
    size_t n = ws->rg_n, k = 0;
    if (invert)
        for (size_t i = 0; i < n; i++) r[i].match = !r[i].match;
    /* fold the matches in place as NormalizedString::split does; `match` becomes "remove" */
    switch (behavior) {
    case TK_ISOLATED:
        for (size_t i = 0; i < n; i++) r[i].match = 0;
        k = n;
        break;
    case TK_REMOVED:
        k = n;
        break;
    case TK_CONTIGUOUS:
    case TK_MERGED_PREV: {
        bool prev = false;
        for (size_t i = 0; i < n; i++) {
            bool m = r[i].match;
            bool extend = behavior == TK_CONTIGUOUS ? m == prev : (m && !prev);
            if (extend && k > 0)
                r[k - 1].b = r[i].b;
            else
                r[k++] = (tk_range){r[i].a, r[i].b, 0};
            prev = m;
        }
        break;
    }
    case TK_MERGED_NEXT: {
        /* fold from the end, then the kept entries are in reverse: write them back to front */
        bool prev = false;
        size_t w = n;
        for (size_t i = n; i-- > 0;) {
            bool m = r[i].match;
            if (m && !prev && w < n)
                r[w].a = r[i].a;
            else
                r[--w] = (tk_range){r[i].a, r[i].b, 0};
            prev = m;
        }
        memmove(r, r + w, (n - w) * sizeof *r);
        k = n - w;
        break;
    }
    }
    for (size_t i = 0; i < k && st == HFT_OK; i++)
        if (!r[i].match) st = tk_split_push_slice(ws, sp, r[i].a, r[i].b, -1);
    return st;
}
