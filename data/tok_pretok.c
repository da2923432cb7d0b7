/* The pre-tokenizers of tokenizers: ByteLevel (optional prefix space, the GPT-2 split, bytes seen as chars),
 * Split (a regex with a delimiter behaviour, optionally inverted), Metaspace, BertPreTokenizer, Whitespace,
 * WhitespaceSplit, Punctuation, Digits, CharDelimiterSplit and Sequence. Each turns the pieces in ws->sp into
 * smaller ones; added-token pieces pass through untouched. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

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

static hft_status keep(tk_ws *ws, const tk_split *sp) {
    if (!sp->len) return HFT_OK;
    hft_status st = TK_GROW(ws->sp2, ws->sp2_cap, ws->sp2_n + 1);
    if (st == HFT_OK) ws->sp2[ws->sp2_n++] = *sp;
    return st;
}

/* The Whitespace pre-tokenizer: runs of \w and runs of [^\w\s] (regex crate classes), spaces dropped. */
static hft_status whitespace(tk_ws *ws, const tk_split *sp) {
    const char *s = tk_split_bytes(ws, sp);
    uint32_t i = 0, n = sp->len;
    hft_status st = HFT_OK;
    while (i < n && st == HFT_OK) {
        int l;
        unsigned p = tk_props(tk_utf8_get(s + i, &l));
        if (p & TK_RE_WORD || !(p & TK_RE_SPACE)) {
            bool word = p & TK_RE_WORD;
            uint32_t j = i + (uint32_t)l;
            while (j < n) {
                unsigned q = tk_props(tk_utf8_get(s + j, &l));
                if (word ? !(q & TK_RE_WORD) : (q & (TK_RE_WORD | TK_RE_SPACE)) != 0) break;
                j += (uint32_t)l;
            }
            st = tk_split_push_slice(ws, sp, i, j, -1);
            i = j;
        } else {
            i += (uint32_t)l;
        }
    }
    return st;
}

/* BertPreTokenizer: split on whitespace (removed), then isolate each punctuation char; done in one pass. */
static hft_status bert_split(tk_ws *ws, const tk_split *sp) {
    const char *s = tk_split_bytes(ws, sp);
    uint32_t i = 0, n = sp->len, run = UINT32_MAX;
    hft_status st = HFT_OK;
    while (i < n && st == HFT_OK) {
        int l;
        unsigned p = tk_props(tk_utf8_get(s + i, &l));
        if (p & (TK_RUST_WS | TK_PUNCT)) {
            if (run != UINT32_MAX) st = tk_split_push_slice(ws, sp, run, i, -1);
            run = UINT32_MAX;
            if (st == HFT_OK && (p & TK_PUNCT)) st = tk_split_push_slice(ws, sp, i, i + (uint32_t)l, -1);
        } else if (run == UINT32_MAX) {
            run = i;
        }
        i += (uint32_t)l;
    }
    if (st == HFT_OK && run != UINT32_MAX) st = tk_split_push_slice(ws, sp, run, n, -1);
    return st;
}

static hft_status metaspace(tk_ws *ws, const tk_pretok *p, tk_split *sp) {
    char rep[4];
    int rl = tk_utf8_put(p->ch, rep);
    hft_status st = HFT_OK;
    const char *s = tk_split_bytes(ws, sp);
    if (memchr(s, ' ', sp->len)) {
        tk_xform x;
        tk_xform_begin(&x, ws, sp, 0);
        for (uint32_t i = 0; i < sp->len && x.st == HFT_OK; i++) {
            if (tk_split_bytes(ws, sp)[i] != ' ') continue;
            tk_xform_copy_to(&x, i);
            tk_xform_skip_to(&x, i + 1);
            tk_xform_emit_bytes(&x, rep, (uint32_t)rl, 1);
        }
        tk_xform_copy_to(&x, sp->len);
        if ((st = tk_xform_end(&x, sp)) != HFT_OK) return st;
    }
    bool starts = sp->len >= (uint32_t)rl && memcmp(tk_split_bytes(ws, sp), rep, (size_t)rl) == 0;
    if (!starts &&
        (p->prepend_scheme == TK_PREPEND_ALWAYS || (p->prepend_scheme == TK_PREPEND_FIRST && sp->olo == 0)))
        st = tk_prepend(ws, rep, (size_t)rl, sp);
    if (st != HFT_OK) return st;
    if (!p->split) return keep(ws, sp);
    tk_pattern pat = {.kind = TK_PAT_CHAR, .ch = p->ch};
    return tk_split_by(ws, sp, &pat, false, TK_MERGED_NEXT, false);
}

static hft_status piece(tk_ws *ws, const tk_pretok *p, tk_split *sp, bool use_fast) {
    hft_status st = HFT_OK;
    if (sp->bytemap && (st = tk_split_apply_bytemap(ws, sp)) != HFT_OK) return st;
    switch (p->kind) {
    case TK_P_BYTELEVEL: {
        if (p->add_prefix_space && (!sp->len || tk_split_bytes(ws, sp)[0] != ' '))
            if ((st = tk_prepend(ws, " ", 1, sp)) != HFT_OK) return st;
        size_t first = ws->sp2_n;
        if (p->use_regex) {
            tk_pattern pat = {.kind = TK_PAT_REGEX, .re = p->re};
            st = tk_split_by(ws, sp, &pat, false, TK_ISOLATED, use_fast);
        } else {
            st = keep(ws, sp);
        }
        /* the byte→char mapping is left pending: a raw-byte BPE model never needs it done */
        for (size_t i = first; i < ws->sp2_n; i++) ws->sp2[i].bytemap = 1;
        return st;
    }
    case TK_P_SPLIT: {
        tk_pattern pat = {.kind = TK_PAT_REGEX, .re = p->re};
        return tk_split_by(ws, sp, &pat, p->invert, p->behavior, use_fast);
    }
    case TK_P_METASPACE:
        return metaspace(ws, p, sp);
    case TK_P_WHITESPACE:
        return whitespace(ws, sp);
    case TK_P_BERT:
        return bert_split(ws, sp);
    case TK_P_WHITESPACE_SPLIT: {
        tk_pattern pat = {.kind = TK_PAT_WHITESPACE};
        return tk_split_by(ws, sp, &pat, false, TK_REMOVED, false);
    }
    case TK_P_PUNCT: {
        tk_pattern pat = {.kind = TK_PAT_PUNCT};
        return tk_split_by(ws, sp, &pat, false, p->behavior, false);
    }
    case TK_P_DIGITS: {
        tk_pattern pat = {.kind = TK_PAT_NUMERIC};
        return tk_split_by(ws, sp, &pat, false, p->individual_digits ? TK_ISOLATED : TK_CONTIGUOUS, false);
    }
    case TK_P_CHAR_DELIM: {
        tk_pattern pat = {.kind = TK_PAT_CHAR, .ch = p->ch};
        return tk_split_by(ws, sp, &pat, false, TK_REMOVED, false);
    }
    }
    return hft_error(HFT_EINVAL, "tokenizer: unknown pre-tokenizer");
}

static hft_status stage(tk_ws *ws, const tk_pretok *p, bool use_fast) {
    if (p->kind == TK_P_SEQUENCE) {
        for (int i = 0; i < p->n_items; i++) {
            hft_status st = stage(ws, &p->items[i], use_fast);
            if (st != HFT_OK) return st;
        }
        return HFT_OK;
    }
    hft_status st = HFT_OK;
    ws->sp2_n = 0;
    for (size_t i = 0; i < ws->sp_n && st == HFT_OK; i++) {
        tk_split sp = ws->sp[i];
        st = sp.added >= 0 ? keep(ws, &sp) : piece(ws, p, &sp, use_fast);
    }
    if (st != HFT_OK) return st;
    swap_splits(ws);
    return HFT_OK;
}

hft_status tk_pretokenize(tk_ws *ws, const tk_pretok *p, bool use_fast) {
    return stage(ws, p, use_fast);
}

void tk_pretok_clear(tk_pretok *p) {
    for (int i = 0; i < p->n_items; i++) tk_pretok_clear(&p->items[i]);
    free(p->items);
    tk_regex_free(p->re);
    memset(p, 0, sizeof *p);
}
