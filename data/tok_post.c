/* The post-processors of tokenizers: TemplateProcessing, BertProcessing, RobertaProcessing (offset trimming,
 * all type ids 0), ByteLevel (offset trimming) and Sequence, run as tokenizers runs them: each sequence's
 * encoding gets type id = its index, the processors transform a list of encodings, and the list is merged. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

enum { MAX_ENCODINGS = 64 };

/* A list of encodings: slices of one token buffer. */
typedef struct enc_list {
    tk_etok *buf;
    size_t n_tok;
    size_t start[MAX_ENCODINGS], len[MAX_ENCODINGS];
    int n;
} enc_list;

typedef struct pp_state {
    tk_ws *ws;
    int cur; /* which ws->pp buffer holds the current list */
    enc_list list;
} pp_state;

/* Starts a new list in the other buffer. */
static void list_begin(pp_state *s, enc_list *out) {
    memset(out, 0, sizeof *out);
    s->ws->pp_n[!s->cur] = 0;
}

static hft_status list_append(pp_state *s, enc_list *out, const tk_etok *toks, size_t n, bool new_encoding) {
    tk_ws *ws = s->ws;
    int b = !s->cur;
    hft_status st = TK_GROW(ws->pp[b], ws->pp_cap[b], ws->pp_n[b] + n);
    if (st != HFT_OK) return st;
    if (new_encoding) {
        if (out->n == MAX_ENCODINGS)
            return hft_error(HFT_EUNSUPPORTED, "tokenizer: post-processor makes too many parts");
        out->start[out->n] = ws->pp_n[b];
        out->len[out->n] = 0;
        out->n++;
    }
    if (n) memcpy(ws->pp[b] + ws->pp_n[b], toks, n * sizeof *toks);
    ws->pp_n[b] += n;
    out->len[out->n - 1] += n;
    return HFT_OK;
}

static void list_end(pp_state *s, enc_list *out) {
    s->cur = !s->cur;
    out->buf = s->ws->pp[s->cur];
    out->n_tok = s->ws->pp_n[s->cur];
    s->list = *out;
}

/* The current list's encoding e (pointer into the current buffer; stable until the next list_end). */
static tk_etok *enc(pp_state *s, int e) {
    return s->ws->pp[s->cur] + s->list.start[e];
}

static hft_status append_special(pp_state *s, enc_list *out, const tk_special *sp, uint32_t type, bool trims,
                                 bool new_encoding) {
    hft_status st = HFT_OK;
    if (new_encoding) st = list_append(s, out, NULL, 0, true);
    for (int k = 0; k < sp->n && st == HFT_OK; k++) {
        tk_etok tok = {.id = sp->ids[k], .type = type, .special = 1};
        if (trims && sp->tokens && sp->tokens[k])
            tk_trim_count(sp->tokens[k], strlen(sp->tokens[k]), &tok.lead, &tok.trail);
        st = list_append(s, out, &tok, 1, false);
    }
    return st;
}

/* ByteLevel's process_offsets: leading / trailing space-like chars leave the offsets. tokenizers' Python API
 * encodes with char offsets, so the trimming counts chars: it is done here in chars over the text. */
static uint64_t chars_forward(const char *s, uint64_t a, uint64_t k, uint64_t limit) {
    while (k-- && a < limit) a += (uint64_t)tk_utf8_len((unsigned char)s[a]);
    return a < limit ? a : limit;
}

static void trim(const tk_ws *ws, tk_etok *toks, size_t n, bool add_prefix_space) {
    for (size_t i = 0; i < n; i++) {
        tk_etok *t = &toks[i];
        uint64_t lead = t->lead, trail = t->trail;
        if (!lead && !trail) continue;
        const char *s = ws->text[t->seq];
        if (lead) {
            bool is_first = i == 0 || t->a == 0;
            if (is_first && add_prefix_space && lead == 1) lead = 0;
            t->a = chars_forward(s, t->a, lead, t->b);
        }
        if (trail) {
            /* offsets.1 >= trailing_spaces, in chars: are there that many chars before b? */
            uint64_t b = t->b, k = 0;
            while (k < trail && b > 0) {
                b--;
                while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80) b--;
                k++;
            }
            if (k == trail) t->b = b > t->a ? b : t->a;
        }
    }
}

static hft_status process_encodings(pp_state *s, const tk_post *p, bool add_special, bool trims) {
    enc_list out;
    hft_status st = HFT_OK;
    switch (p->kind) {
    case TK_PP_SEQUENCE:
        for (int i = 0; i < p->n_items && st == HFT_OK; i++)
            st = process_encodings(s, &p->items[i], add_special, trims);
        return st;
    case TK_PP_BYTELEVEL:
        if (p->trim_offsets)
            for (int e = 0; e < s->list.n; e++) trim(s->ws, enc(s, e), s->list.len[e], p->add_prefix_space);
        return HFT_OK;
    case TK_PP_ROBERTA:
    case TK_PP_BERT:
        if (p->kind == TK_PP_ROBERTA) {
            for (int e = 0; e < s->list.n; e++) {
                tk_etok *t = enc(s, e);
                if (p->trim_offsets) trim(s->ws, t, s->list.len[e], p->add_prefix_space);
                for (size_t i = 0; i < s->list.len[e]; i++) t[i].type = 0;
            }
        }
        if (!add_special) return HFT_OK;
        list_begin(s, &out);
        for (int e = 0; e < s->list.n && st == HFT_OK; e++) {
            bool roberta = p->kind == TK_PP_ROBERTA;
            uint32_t tail_type = roberta || e == 0 ? 0 : 1;
            st = list_append(s, &out, NULL, 0, true);
            if (st == HFT_OK && (e == 0 || roberta))
                st = append_special(s, &out, &p->specials[e == 0 ? 0 : 1], 0, trims, false);
            if (st == HFT_OK) st = list_append(s, &out, enc(s, e), s->list.len[e], false);
            if (st == HFT_OK) st = append_special(s, &out, &p->specials[1], tail_type, trims, false);
        }
        if (st == HFT_OK) list_end(s, &out);
        return st;
    case TK_PP_TEMPLATE: {
        const tk_piece *tpl = s->list.n == 2 ? p->pair : p->single;
        int n_tpl = s->list.n == 2 ? p->n_pair : p->n_single;
        list_begin(s, &out);
        for (int k = 0; k < n_tpl && st == HFT_OK; k++) {
            const tk_piece *pc = &tpl[k];
            if (pc->is_seq) {
                if (pc->seq >= s->list.n)
                    return hft_error(HFT_EFORMAT,
                                     "tokenizer: TemplateProcessing uses $B for a single sequence");
                size_t at = s->ws->pp_n[!s->cur];
                st = list_append(s, &out, enc(s, pc->seq), s->list.len[pc->seq], true);
                for (size_t i = 0; st == HFT_OK && i < s->list.len[pc->seq]; i++)
                    s->ws->pp[!s->cur][at + i].type = pc->type_id;
            } else if (add_special) {
                st = append_special(s, &out, &p->specials[pc->special], pc->type_id, trims, true);
            }
        }
        if (st == HFT_OK) list_end(s, &out);
        return st;
    }
    }
    return hft_error(HFT_EINVAL, "tokenizer: unknown post-processor");
}

static hft_status reserve(hft_encoding *out, int64_t n) {
    if (n <= out->cap && out->ids) return HFT_OK;
    int64_t cap = out->cap > 16 ? out->cap : 16;
    while (cap < n) cap *= 2;
    int32_t *ids = realloc(out->ids, (size_t)cap * sizeof *ids);
    if (ids) out->ids = ids;
    int64_t(*offsets)[2] = realloc(out->offsets, (size_t)cap * sizeof *offsets);
    if (offsets) out->offsets = offsets;
    int32_t *type_ids = realloc(out->type_ids, (size_t)cap * sizeof *type_ids);
    if (type_ids) out->type_ids = type_ids;
    int32_t *special = realloc(out->special_mask, (size_t)cap * sizeof *special);
    if (special) out->special_mask = special;
    if (!ids || !offsets || !type_ids || !special)
        return hft_error(HFT_ENOMEM, "tokenizer: out of memory for %lld tokens", (long long)n);
    out->cap = cap;
    return HFT_OK;
}

static void write_tokens(hft_encoding *out, const tk_etok *t, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int64_t k = out->n++;
        out->ids[k] = t[i].id;
        out->offsets[k][0] = (int64_t)t[i].a;
        out->offsets[k][1] = (int64_t)t[i].b;
        out->type_ids[k] = (int32_t)t[i].type;
        out->special_mask[k] = (int32_t)t[i].special;
    }
}

hft_status tk_post_process(tk_ws *ws, const hft_tokenizer *t, bool pair, bool add_special,
                           hft_encoding *out) {
    out->n = 0;
    if (!t->post) {
        hft_status st = reserve(out, (int64_t)(ws->et_n[0] + (pair ? ws->et_n[1] : 0)));
        if (st != HFT_OK) return st;
        write_tokens(out, ws->et[0], ws->et_n[0]);
        if (pair) write_tokens(out, ws->et[1], ws->et_n[1]);
        return HFT_OK;
    }
    pp_state s = {.ws = ws, .cur = 0};
    enc_list first;
    list_begin(&s, &first);
    hft_status st = HFT_OK;
    for (int e = 0; e < (pair ? 2 : 1) && st == HFT_OK; e++) {
        size_t at = ws->pp_n[!s.cur];
        st = list_append(&s, &first, ws->et[e], ws->et_n[e], true);
        for (size_t i = 0; st == HFT_OK && i < ws->et_n[e]; i++) ws->pp[!s.cur][at + i].type = (uint32_t)e;
    }
    if (st != HFT_OK) return st;
    list_end(&s, &first);
    st = process_encodings(&s, t->post, add_special, t->trims);
    if (st == HFT_OK) st = reserve(out, (int64_t)s.list.n_tok);
    if (st != HFT_OK) return st;
    for (int e = 0; e < s.list.n; e++) write_tokens(out, enc(&s, e), s.list.len[e]);
    return HFT_OK;
}

bool tk_post_trims(const tk_post *p) {
    if (p->kind == TK_PP_SEQUENCE) {
        for (int i = 0; i < p->n_items; i++)
            if (tk_post_trims(&p->items[i])) return true;
        return false;
    }
    return (p->kind == TK_PP_BYTELEVEL || p->kind == TK_PP_ROBERTA) && p->trim_offsets;
}

void tk_post_clear(tk_post *p) {
    for (int i = 0; i < p->n_items; i++) tk_post_clear(&p->items[i]);
    free(p->items);
    for (int i = 0; i < p->n_specials; i++) {
        free(p->specials[i].name);
        free(p->specials[i].ids);
        for (int k = 0; p->specials[i].tokens && k < p->specials[i].n; k++) free(p->specials[i].tokens[k]);
        free(p->specials[i].tokens);
    }
    free(p->specials);
    free(p->single);
    free(p->pair);
    memset(p, 0, sizeof *p);
}
