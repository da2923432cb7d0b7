/* The decoders of tokenizers, each a step over the list of token strings (decode_chain): ByteLevel (chars
 * back to bytes, then Rust's lossy UTF-8), Metaspace, WordPiece (with its cleanup), ByteFallback ("<0xNN>"
 * runs back to text), Fuse, Strip, Replace, BPEDecoder and Sequence. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

static hft_status replace_all(const char *s, size_t n, const char *from, const char *to, tk_strs *out) {
    size_t fl = strlen(from), tl = strlen(to);
    hft_status st = tk_grow((void **)&out->buf, &out->cap, out->len + n * (tl > fl ? tl : 1) + 1, 1);
    if (st != HFT_OK) return st;
    size_t start = out->len;
    for (size_t i = 0; i < n;) {
        if (fl && i + fl <= n && memcmp(s + i, from, fl) == 0) {
            memcpy(out->buf + out->len, to, tl);
            out->len += tl;
            i += fl;
        } else {
            out->buf[out->len++] = s[i++];
        }
    }
    st = TK_GROW(out->item, out->item_cap, out->n + 1);
    if (st != HFT_OK) return st;
    out->item[out->n][0] = start;
    out->item[out->n][1] = out->len - start;
    out->n++;
    out->buf[out->len] = '\0';
    return HFT_OK;
}

static hft_status wordpiece_cleanup(const char *s, size_t n, tk_strs *out) {
    static const char *const pairs[][2] = {
        {" .", "."},   {" ?", "?"},           {" !", "!"},   {" ,", ","},     {" ' ", "'"},   {" n't", "n't"},
        {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    tk_strs a = {0}, b = {0};
    hft_status st = tk_strs_push(&a, s, n);
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0] && st == HFT_OK; k++) {
        b.len = b.n = 0;
        st = replace_all(a.buf + a.item[0][0], a.item[0][1], pairs[k][0], pairs[k][1], &b);
        tk_strs tmp = a;
        a = b;
        b = tmp;
    }
    if (st == HFT_OK) st = tk_strs_push(out, a.buf + a.item[0][0], a.item[0][1]);
    tk_strs_free(&a);
    tk_strs_free(&b);
    return st;
}

#define ITEM(l, i) ((l)->buf + (l)->item[i][0])
#define ILEN(l, i) ((l)->item[i][1])

static hft_status step(const tk_decoder *d, const tk_strs *in, tk_strs *out) {
    hft_status st = HFT_OK;
    char buf[8];
    switch (d->kind) {
    case TK_D_BYTELEVEL: {
        char *bytes = NULL;
        size_t nb = 0, cap = 0;
        for (size_t i = 0; i < in->n && st == HFT_OK; i++) {
            const char *s = ITEM(in, i);
            size_t n = ILEN(in, i);
            st = tk_grow((void **)&bytes, &cap, nb + n + 1, 1);
            bool all = true;
            size_t w = nb;
            for (size_t k = 0; k < n && all && st == HFT_OK;) {
                int l;
                int b = tk_char_byte(tk_utf8_get(s + k, &l));
                if (b < 0)
                    all = false;
                else
                    bytes[w++] = (char)b;
                k += (size_t)l;
            }
            if (st != HFT_OK) break;
            if (all)
                nb = w;
            else {
                memcpy(bytes + nb, s, n);
                nb += n;
            }
        }
        char *text = NULL;
        size_t len = 0, tcap = 0;
        if (st == HFT_OK) st = tk_utf8_lossy(bytes ? bytes : "", nb, &text, &len, &tcap);
        if (st == HFT_OK) st = tk_strs_push(out, text ? text : "", len);
        free(bytes);
        free(text);
        return st;
    }
    case TK_D_METASPACE:
        for (size_t i = 0; i < in->n && st == HFT_OK; i++) {
            const char *s = ITEM(in, i);
            size_t n = ILEN(in, i), start = out->len;
            st = tk_grow((void **)&out->buf, &out->cap, out->len + n + 1, 1);
            for (size_t k = 0; k < n && st == HFT_OK;) {
                int l;
                uint32_t cp = tk_utf8_get(s + k, &l);
                if (cp == d->ch) {
                    if (!(i == 0 && d->prepend_scheme != TK_PREPEND_NEVER)) out->buf[out->len++] = ' ';
                } else {
                    memcpy(out->buf + out->len, s + k, (size_t)l);
                    out->len += (size_t)l;
                }
                k += (size_t)l;
            }
            if (st == HFT_OK) st = TK_GROW(out->item, out->item_cap, out->n + 1);
            if (st != HFT_OK) break;
            out->item[out->n][0] = start;
            out->item[out->n][1] = out->len - start;
            out->n++;
            out->buf[out->len] = '\0';
        }
        return st;
    case TK_D_WORDPIECE:
        for (size_t i = 0; i < in->n && st == HFT_OK; i++) {
            const char *s = ITEM(in, i);
            size_t n = ILEN(in, i);
            tk_strs tmp = {0};
            if (i != 0) {
                if (n >= d->str_len && memcmp(s, d->str, d->str_len) == 0) {
                    st = tk_strs_push(&tmp, s + d->str_len, n - d->str_len);
                } else {
                    st = tk_strs_push(&tmp, " ", 1);
                    if (st == HFT_OK) {
                        st = tk_grow((void **)&tmp.buf, &tmp.cap, 1 + n + 1, 1);
                        if (st == HFT_OK) {
                            memcpy(tmp.buf + 1, s, n);
                            tmp.len = 1 + n;
                            tmp.item[0][1] = 1 + n;
                            tmp.buf[tmp.len] = '\0';
                        }
                    }
                }
            } else {
                st = tk_strs_push(&tmp, s, n);
            }
            if (st == HFT_OK) {
                if (d->cleanup)
                    st = wordpiece_cleanup(tmp.buf, tmp.item[0][1], out);
                else
                    st = tk_strs_push(out, tmp.buf, tmp.item[0][1]);
            }
            tk_strs_free(&tmp);
        }
        return st;
    case TK_D_BYTE_FALLBACK: {
        char *pending = NULL;
        size_t np = 0, pcap = 0;
        for (size_t i = 0; i <= in->n && st == HFT_OK; i++) {
            const char *s = i < in->n ? ITEM(in, i) : NULL;
            size_t n = i < in->n ? ILEN(in, i) : 0;
            int byte = -1;
            if (s && n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>') {
                /* u8::from_str_radix(.., 16): hex digits, and Rust takes a leading '+' too */
                int v = 0, digits = 0;
                for (int k = 3; k < 5; k++) {
                    char c = s[k];
                    int dg = c >= '0' && c <= '9'   ? c - '0'
                             : c >= 'a' && c <= 'f' ? c - 'a' + 10
                             : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                    : -1;
                    if (dg < 0 && !(k == 3 && c == '+')) break;
                    if (dg >= 0) v = v * 16 + dg, digits++;
                    if (k == 4 && digits) byte = v;
                }
            }
            if (byte >= 0) {
                if ((st = tk_grow((void **)&pending, &pcap, np + 1, 1)) == HFT_OK) pending[np++] = (char)byte;
                continue;
            }
            if (np) {
                if (tk_utf8_check(pending, np) < 0)
                    st = tk_strs_push(out, pending, np);
                else
                    for (size_t k = 0; k < np && st == HFT_OK; k++) st = tk_strs_push(out, "\xEF\xBF\xBD", 3);
                np = 0;
            }
            if (s && st == HFT_OK) st = tk_strs_push(out, s, n);
        }
        free(pending);
        return st;
    }
    case TK_D_FUSE: {
        char *cat = NULL;
        size_t len = 0, cap = 0;
        for (size_t i = 0; i < in->n && st == HFT_OK; i++) {
            st = tk_grow((void **)&cat, &cap, len + ILEN(in, i) + 1, 1);
            if (st == HFT_OK) memcpy(cat + len, ITEM(in, i), ILEN(in, i));
            len += ILEN(in, i);
        }
        if (st == HFT_OK) st = tk_strs_push(out, cat ? cat : "", len);
        free(cat);
        return st;
    }
    case TK_D_STRIP: {
        int cl = tk_utf8_put(d->ch, buf);
        for (size_t i = 0; i < in->n && st == HFT_OK; i++) {
            const char *s = ITEM(in, i);
            size_t n = ILEN(in, i), a = 0, b = n;
            for (size_t k = 0; k < d->start && a + (size_t)cl <= n && memcmp(s + a, buf, (size_t)cl) == 0;
                 k++)
                a += (size_t)cl;
            for (size_t k = 0;
                 k < d->stop && b >= a + (size_t)cl && memcmp(s + b - (size_t)cl, buf, (size_t)cl) == 0; k++)
                b -= (size_t)cl;
            st = tk_strs_push(out, s + a, b > a ? b - a : 0);
        }
        return st;
    }
    case TK_D_REPLACE: {
        tk_ws *ws = tk_ws_get();
        if (!ws) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        tk_pattern pat = {.kind = TK_PAT_REGEX, .re = d->re};
        for (size_t i = 0; i < in->n && st == HFT_OK; i++) {
            const char *s = ITEM(in, i);
            size_t n = ILEN(in, i), start = out->len;
            if ((st = tk_find_matches(ws, s, n, &pat, false)) != HFT_OK) break;
            for (size_t r = 0; r < ws->rg_n && st == HFT_OK; r++) {
                const char *piece = ws->rg[r].match ? d->str : s + ws->rg[r].a;
                size_t pl = ws->rg[r].match ? d->str_len : ws->rg[r].b - ws->rg[r].a;
                st = tk_grow((void **)&out->buf, &out->cap, out->len + pl + 1, 1);
                if (st == HFT_OK) memcpy(out->buf + out->len, piece, pl);
                out->len += pl;
            }
            if (st == HFT_OK) st = TK_GROW(out->item, out->item_cap, out->n + 1);
            if (st != HFT_OK) break;
            out->item[out->n][0] = start;
            out->item[out->n][1] = out->len - start;
            out->n++;
            out->buf[out->len] = '\0';
        }
        return st;
    }
    case TK_D_BPE:
        for (size_t i = 0; i < in->n && st == HFT_OK; i++)
            st = replace_all(ITEM(in, i), ILEN(in, i), d->str, i + 1 == in->n ? "" : " ", out);
        return st;
    }
    return hft_error(HFT_EINVAL, "tokenizer: unknown decoder");
}

hft_status tk_decode_chain(const tk_decoder *d, tk_strs *tokens) {
    if (d->kind == TK_D_SEQUENCE) {
        for (int i = 0; i < d->n_items; i++) {
            hft_status st = tk_decode_chain(&d->items[i], tokens);
            if (st != HFT_OK) return st;
        }
        return HFT_OK;
    }
    tk_strs out = {0};
    hft_status st = step(d, tokens, &out);
    if (st != HFT_OK) {
        tk_strs_free(&out);
        return st;
    }
    tk_strs_free(tokens);
    *tokens = out;
    return HFT_OK;
}

void tk_decoder_clear(tk_decoder *d) {
    for (int i = 0; i < d->n_items; i++) tk_decoder_clear(&d->items[i]);
    free(d->items);
    free(d->str);
    tk_regex_free(d->re);
    memset(d, 0, sizeof *d);
}
