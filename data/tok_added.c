/* Added and special tokens, as tokenizers' AddedVocabulary: ids given by add_tokens (the model's id when the
 * content is in its vocabulary, else the next free one), the non-normalized tokens matched on the raw text
 * and the normalized ones on the normalized text (leftmost-longest), with single_word, lstrip and rstrip. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

const tk_added *tk_added_by_id(const hft_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->added_of_id_n || t->added_of_id[id] < 0) return NULL;
    return &t->added[t->added_of_id[id]];
}

const tk_added *tk_added_by_content(const hft_tokenizer *t, const char *s, size_t n) {
    int32_t i = tk_map_get(&t->added_map, s, n);
    return i >= 0 ? &t->added[i] : NULL;
}

/* The normalizer's output for a token's content (NULL when there is no normalizer or nothing changes). */
static hft_status normalize_content(const hft_tokenizer *t, const char *s, size_t n, char **out,
                                    size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    if (!t->normalizer || !n) return HFT_OK;
    tk_ws *ws = tk_ws_get();
    if (!ws) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    ws->orig = s;
    ws->orig_len = n;
    ws->nb_n = 0;
    tk_split sp = {.off = 0, .len = (uint32_t)n, .olo = 0, .ohi = (uint32_t)n, .added = -1, .ident = 1};
    hft_status st = tk_normalize(ws, t->normalizer, &sp);
    if (st != HFT_OK) return st;
    const char *r = tk_split_bytes(ws, &sp);
    if (sp.len == n && memcmp(r, s, n) == 0) return HFT_OK;
    *out = tk_strndup(r, sp.len);
    *out_len = sp.len;
    return *out ? HFT_OK : hft_error(HFT_ENOMEM, "tokenizer: out of memory");
}

hft_status tk_added_add(hft_tokenizer *t, tk_added *tokens, int n) {
    /* next id: past the largest added id when that is at or past the model's vocabulary, else its size */
    int64_t vocab = (int64_t)tk_model_vocab_count(&t->model), next = vocab, max = -1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id > max) max = t->added[i].id;
    if (max >= 0) next = (max >= vocab || vocab == 0) ? max + 1 : vocab;
    for (int k = 0; k < n; k++) {
        tk_added tok = tokens[k];
        if (!tok.len) continue;
        int32_t at = tk_map_get(&t->added_map, tok.content, tok.len);
        if (at >= 0) {
            const tk_added *o = &t->added[at];
            if (o->single_word == tok.single_word && o->lstrip == tok.lstrip && o->rstrip == tok.rstrip &&
                o->normalized == tok.normalized && o->special == tok.special)
                continue;
        }
        int32_t id = at >= 0 ? t->added[at].id : tk_model_token_to_id(&t->model, tok.content, tok.len);
        if (id < 0) id = (int32_t)next++;
        char *norm = NULL;
        size_t norm_len = 0;
        hft_status st = HFT_OK;
        if (tok.normalized) st = normalize_content(t, tok.content, tok.len, &norm, &norm_len);
        char *content = st == HFT_OK ? tk_strndup(tok.content, tok.len) : NULL;
        if (st == HFT_OK && !content) st = hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        /* the same content keeps its entry; a new content gets a new one (its id is new or the model's own)
         */
        int32_t slot = at;
        if (st == HFT_OK && slot < 0) {
            tk_added *grown = realloc(t->added, (size_t)(t->n_added + 1) * sizeof *grown);
            if (!grown)
                st = hft_error(HFT_ENOMEM, "tokenizer: out of memory");
            else {
                t->added = grown;
                slot = t->n_added++;
                memset(&t->added[slot], 0, sizeof t->added[slot]);
            }
        }
        if (st != HFT_OK) {
            free(norm);
            free(content);
            return st;
        }
        free(t->added[slot].content);
        free(t->added[slot].norm);
        t->added[slot] = tok;
        t->added[slot].content = content;
        t->added[slot].norm = norm;
        t->added[slot].norm_len = norm_len;
        t->added[slot].id = id;
        if ((st = tk_map_put(&t->added_map, content, tok.len, slot)) != HFT_OK) return st;
        if (tok.special && (st = tk_map_put(&t->special_set, content, tok.len, 1)) != HFT_OK) return st;
    }
    return HFT_OK;
}

/* ---------------------------------------------------------------- tries */

/* A pattern to match and the added token it stands for. */
typedef struct pat {
    const char *s;
    size_t n;
    int32_t idx;
} pat;

static int pat_cmp(const void *a, const void *b) {
    const pat *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, m);
    if (c) return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Builds the trie of sorted patterns level by level: node i's children are contiguous in `edges`. */
static hft_status trie_build(tk_trie *tr, pat *p, size_t n) {
    free(tr->nodes);
    free(tr->edges);
    memset(tr, 0, sizeof *tr);
    tr->empty = n == 0;
    if (!n) return HFT_OK;
    qsort(p, n, sizeof *p, pat_cmp);
    size_t total = 1;
    for (size_t i = 0; i < n; i++) total += p[i].n;
    tr->nodes = calloc(total, sizeof *tr->nodes);
    tr->edges = calloc(total, sizeof *tr->edges);
    /* per node, the range of patterns [lo, hi) under it and its depth */
    size_t *lo = malloc(total * sizeof *lo), *hi = malloc(total * sizeof *hi),
           *depth = malloc(total * sizeof *depth);
    if (!tr->nodes || !tr->edges || !lo || !hi || !depth) {
        free(lo);
        free(hi);
        free(depth);
        return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    }
    tr->n_nodes = 1;
    lo[0] = 0;
    hi[0] = n;
    depth[0] = 0;
    for (size_t node = 0; node < tr->n_nodes; node++) {
        tr->nodes[node].term = -1;
        size_t i = lo[node], d = depth[node];
        /* patterns ending here come first (sorted: a prefix sorts before its extensions); the last wins */
        while (i < hi[node] && p[i].n == d) tr->nodes[node].term = p[i++].idx;
        tr->nodes[node].first = (uint32_t)tr->n_edges;
        while (i < hi[node]) {
            unsigned char b = (unsigned char)p[i].s[d];
            size_t j = i;
            while (j < hi[node] && (unsigned char)p[j].s[d] == b) j++;
            size_t child = tr->n_nodes++;
            tr->edges[tr->n_edges++] = (struct tk_trie_edge){b, (uint32_t)child};
            lo[child] = i;
            hi[child] = j;
            depth[child] = d + 1;
            if (d == 0) tr->first_byte[b] = 1;
            i = j;
        }
        tr->nodes[node].count = (uint32_t)(tr->n_edges - tr->nodes[node].first);
    }
    free(lo);
    free(hi);
    free(depth);
    return HFT_OK;
}

hft_status tk_added_build(hft_tokenizer *t) {
    pat *raw = malloc(((size_t)t->n_added + 1) * sizeof *raw),
        *nrm = malloc(((size_t)t->n_added + 1) * sizeof *nrm);
    if (!raw || !nrm) {
        free(raw);
        free(nrm);
        return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    }
    size_t nr = 0, nn = 0;
    for (int i = 0; i < t->n_added; i++) {
        const tk_added *a = &t->added[i];
        if (a->normalized)
            nrm[nn++] = (pat){a->norm ? a->norm : a->content, a->norm ? a->norm_len : a->len, i};
        else
            raw[nr++] = (pat){a->content, a->len, i};
    }
    hft_status st = trie_build(&t->trie_raw, raw, nr);
    if (st == HFT_OK) st = trie_build(&t->trie_norm, nrm, nn);
    free(raw);
    free(nrm);
    if (st != HFT_OK) return st;
    free(t->added_of_id);
    t->added_of_id_n = t->vocab_size;
    t->added_of_id = malloc(((size_t)t->vocab_size + 1) * sizeof *t->added_of_id);
    if (!t->added_of_id) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    for (int64_t i = 0; i < t->vocab_size; i++) t->added_of_id[i] = -1;
    for (int i = 0; i < t->n_added; i++) t->added_of_id[t->added[i].id] = i;
    return HFT_OK;
}

/* ---------------------------------------------------------------- matching */

/* The longest pattern starting at s[i]: its end, or 0 with *idx -1. */
static size_t trie_longest(const tk_trie *tr, const char *s, size_t n, size_t i, int32_t *idx) {
    uint32_t node = 0;
    size_t best = 0;
    *idx = -1;
    for (size_t j = i; j < n; j++) {
        const tk_trie_node *nd = &tr->nodes[node];
        unsigned char b = (unsigned char)s[j];
        uint32_t next = UINT32_MAX;
        for (uint32_t e = nd->first; e < nd->first + nd->count; e++)
            if (tr->edges[e].byte == b) {
                next = tr->edges[e].node;
                break;
            }
        if (next == UINT32_MAX) break;
        node = next;
        if (tr->nodes[node].term >= 0) {
            best = j + 1;
            *idx = tr->nodes[node].term;
        }
    }
    return best;
}

static bool is_word_before(const char *s, size_t i) {
    if (i == 0) return false;
    size_t k = i - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
    int l;
    return tk_props(tk_utf8_get(s + k, &l)) & TK_RE_WORD;
}

static bool is_word_at(const char *s, size_t n, size_t i) {
    if (i >= n) return false;
    int l;
    return tk_props(tk_utf8_get(s + i, &l)) & TK_RE_WORD;
}

/* find_matches + split_with_indices for one piece: appends its pieces to ws->sp2. */
static hft_status split_piece(tk_ws *ws, const hft_tokenizer *t, const tk_trie *tr, const tk_split *sp) {
    if (tr->empty) return tk_split_push_slice(ws, sp, 0, sp->len, -1);
    const char *s = tk_split_bytes(ws, sp);
    size_t n = sp->len, start_offset = 0, i = 0;
    hft_status st = HFT_OK;
    while (i < n && st == HFT_OK) {
        if (!tr->first_byte[(unsigned char)s[i]]) {
            i++;
            continue;
        }
        int32_t idx;
        size_t end = trie_longest(tr, s, n, i, &idx);
        if (idx < 0) {
            i++;
            continue;
        }
        size_t start = i, stop = end;
        i = end; /* the search goes on after this match even when it is discarded */
        const tk_added *a = &t->added[idx];
        if (a->single_word && (is_word_before(s, start) || is_word_at(s, n, stop))) continue;
        if (a->lstrip) {
            size_t ns = start;
            while (ns > 0) {
                size_t k = ns - 1;
                while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
                int l;
                if (!(tk_props(tk_utf8_get(s + k, &l)) & TK_RE_SPACE)) break;
                ns = k;
            }
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            while (stop < n) {
                int l;
                if (!(tk_props(tk_utf8_get(s + stop, &l)) & TK_RE_SPACE)) break;
                stop += (size_t)l;
            }
        }
        if (start_offset < start)
            st = tk_split_push_slice(ws, sp, (uint32_t)start_offset, (uint32_t)start, -1);
        if (st == HFT_OK) st = tk_split_push_slice(ws, sp, (uint32_t)start, (uint32_t)stop, a->id);
        start_offset = stop;
    }
    if (st == HFT_OK && start_offset < n)
        st = tk_split_push_slice(ws, sp, (uint32_t)start_offset, (uint32_t)n, -1);
    return st;
}

static void swap_splits(tk_ws *ws) {
    tk_split *p = ws->sp;
    size_t cap = ws->sp_cap;
    ws->sp = ws->sp2;
    ws->sp_cap = ws->sp2_cap;
    ws->sp_n = ws->sp2_n;
    ws->sp2 = p;
    ws->sp2_cap = cap;
    ws->sp2_n = 0;
}

hft_status tk_added_extract(tk_ws *ws, const hft_tokenizer *t, size_t len) {
    tk_split whole = {
        .off = 0, .len = (uint32_t)len, .olo = 0, .ohi = (uint32_t)len, .added = -1, .ident = 1};
    ws->sp2_n = 0;
    hft_status st = split_piece(ws, t, &t->trie_raw, &whole);
    if (st != HFT_OK) return st;
    swap_splits(ws);
    for (size_t i = 0; i < ws->sp_n && st == HFT_OK; i++) {
        tk_split sp = ws->sp[i];
        if (sp.added >= 0) {
            st = TK_GROW(ws->sp2, ws->sp2_cap, ws->sp2_n + 1);
            if (st == HFT_OK) ws->sp2[ws->sp2_n++] = sp;
            continue;
        }
        if (t->normalizer) st = tk_normalize(ws, t->normalizer, &sp);
        if (st == HFT_OK && sp.len) st = split_piece(ws, t, &t->trie_norm, &sp);
    }
    if (st == HFT_OK) swap_splits(ws);
    return st;
}
