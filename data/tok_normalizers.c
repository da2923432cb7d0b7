/* The normalizers of tokenizers: BertNormalizer, NFC/NFD/NFKC/NFKD (utf8proc, with tokenizers' own answer
 * where its Unicode version differs), Lowercase (char::to_lowercase), Strip, StripAccents, Replace, Prepend,
 * ByteLevel and Sequence. Each rewrites a piece through the transform of tok_norm.c, so every output byte
 * keeps the original range tokenizers would give it. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "data/tokenizer_internal.h"

static bool is_chinese(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
           (c >= 0x2B920 && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static bool all_ascii(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80) return false;
    return true;
}

/* ---------------------------------------------------------------- normal forms */

enum { NF_D, NF_KD, NF_C, NF_KC };

static int ccc(uint32_t cp) {
    return cp < 0x300 ? 0 : utf8proc_get_property((utf8proc_int32_t)cp)->combining_class;
}

/* A normal form as unicode-normalization-alignments produces it, which decides the offsets: every input
 * char's decomposition gives its first char "change 0" and the others "+1"; canonical reordering moves chars
 * with their changes; a char composed into its starter leaves and adds (its change - 1) to the starter's. */
typedef struct nf_char {
    uint32_t cp;
    int32_t change;
} nf_char;

static bool compose_pair(uint32_t a, uint32_t b, uint32_t *out) {
    utf8proc_int32_t buf[2] = {(utf8proc_int32_t)a, (utf8proc_int32_t)b};
    if (utf8proc_normalize_utf32(buf, 2, UTF8PROC_STABLE | UTF8PROC_COMPOSE) != 1) return false;
    *out = (uint32_t)buf[0];
    return true;
}

static hft_status normal_form(tk_ws *ws, tk_split *sp, int form) {
    if (all_ascii(tk_split_bytes(ws, sp), sp->len)) return HFT_OK;
    bool compose = form == NF_C || form == NF_KC;
    int dform = form == NF_KC || form == NF_KD ? NF_KD : NF_D;
    utf8proc_option_t dopt = UTF8PROC_DECOMPOSE | (dform == NF_KD ? UTF8PROC_COMPAT : 0);
    /* 1. decompose into ws->cps as (cp, change) pairs, (a char tokenizers' Unicode does not know stays) */
    size_t n = 0;
    for (uint32_t i = 0; i < sp->len;) {
        int l;
        uint32_t cp = tk_utf8_get(tk_split_bytes(ws, sp) + i, &l);
        i += (uint32_t)l;
        utf8proc_int32_t dec[32];
        size_t k = 1;
        dec[0] = (utf8proc_int32_t)cp;
        const char *ov = cp >= 0x80 ? tk_nf_override_of(cp, form) : NULL;
        if (!ov && cp >= 0x80) ov = tk_nf_override_of(cp, dform);
        if (ov) {
            k = 0;
            for (size_t b = 0; ov[b] && k < 32;) {
                int l2;
                dec[k++] = (utf8proc_int32_t)tk_utf8_get(ov + b, &l2);
                b += (size_t)l2;
            }
        } else if (cp >= 0x80) {
            int bound = 0;
            utf8proc_ssize_t r = utf8proc_decompose_char((utf8proc_int32_t)cp, dec, 32, dopt, &bound);
            k = r > 0 && r <= 32 ? (size_t)r : 1;
            if (r <= 0 || r > 32) dec[0] = (utf8proc_int32_t)cp;
        }
        if (tk_grow((void **)&ws->cps, &ws->cps_cap, 2 * (n + k), sizeof *ws->cps) != HFT_OK)
            return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        nf_char *buf = (nf_char *)ws->cps;
        for (size_t j = 0; j < k; j++) buf[n++] = (nf_char){(uint32_t)dec[j], j == 0 ? 0 : 1};
    }
    nf_char *buf = (nf_char *)ws->cps;
    /* 2. canonical ordering: a stable sort of each run of non-starters by combining class */
    for (size_t i = 1; i < n; i++) {
        int c = ccc(buf[i].cp);
        if (!c) continue;
        nf_char x = buf[i];
        size_t j = i;
        while (j > 0 && ccc(buf[j - 1].cp) > c) {
            buf[j] = buf[j - 1];
            j--;
        }
        buf[j] = x;
    }
    /* 3. canonical composition */
    if (compose) {
        size_t w = 0, starter = SIZE_MAX;
        int last = -1; /* combining class of the last char kept after the starter; -1: none */
        for (size_t i = 0; i < n; i++) {
            nf_char c = buf[i];
            int cc = ccc(c.cp);
            uint32_t comp;
            if (starter != SIZE_MAX && (last == -1 || (last != 0 && last < cc)) &&
                compose_pair(buf[starter].cp, c.cp, &comp)) {
                buf[starter].cp = comp;
                buf[starter].change += c.change - 1;
                continue;
            }
            buf[w] = c;
            if (cc == 0) {
                starter = w;
                last = -1;
            } else {
                last = cc;
            }
            w++;
        }
        n = w;
    }
    /* 4. the transform */
    tk_xform x;
    tk_xform_begin(&x, ws, sp, 0);
    for (size_t i = 0; i < n && x.st == HFT_OK; i++)
        tk_xform_emit(&x, ((nf_char *)ws->cps)[i].cp, ((nf_char *)ws->cps)[i].change);
    return tk_xform_end(&x, sp);
}

/* ---------------------------------------------------------------- BertNormalizer */

/* clean_text, handle_chinese_chars, strip_accents (NFD then drop nonspacing marks) and lowercase in one pass:
 * each step gives every char it writes the alignment of the char it came from, so doing them char by char is
 * the same as tokenizers' four passes. */
/* Does BertNormalizer change this ASCII char (remove it, make it a space, lowercase it)? */
static inline bool bert_ascii_changes(const tk_normalizer *nz, unsigned char c) {
    return (nz->clean_text && (c < 0x20 || c == 0x7F)) || (nz->lowercase && c >= 'A' && c <= 'Z');
}

static hft_status bert(tk_ws *ws, const tk_normalizer *nz, tk_split *sp) {
    bool strip = nz->strip_accents;
    const char *s0 = tk_split_bytes(ws, sp);
    uint32_t first_change = 0;
    while (first_change < sp->len && (unsigned char)s0[first_change] < 0x80 &&
           !bert_ascii_changes(nz, (unsigned char)s0[first_change]))
        first_change++;
    if (first_change == sp->len) return HFT_OK;
    tk_xform x;
    tk_xform_begin(&x, ws, sp, 0);
    tk_xform_copy_to(&x, first_change);
    for (uint32_t i = first_change; i < sp->len && x.st == HFT_OK;) {
        const char *s = tk_split_bytes(ws, sp);
        /* runs of ASCII the normalizer leaves alone are copied whole */
        uint32_t j = i;
        while (j < sp->len && (unsigned char)s[j] < 0x80 && !bert_ascii_changes(nz, (unsigned char)s[j])) j++;
        if (j > i) {
            tk_xform_copy_to(&x, j);
            i = j;
            continue;
        }
        int l;
        uint32_t cp = tk_utf8_get(s + i, &l);
        uint32_t next = i + (uint32_t)l;
        if (nz->clean_text) {
            unsigned p = tk_props(cp);
            if (p & TK_BERT_CTRL) {
                tk_xform_skip_to(&x, next);
                i = next;
                continue;
            }
            if (p & TK_BERT_WS) cp = ' ';
        }
        if (cp < 0x80) {
            char c = (char)(nz->lowercase && cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            tk_xform_emit_bytes(&x, &c, 1, 0);
            i = next;
            continue;
        }
        uint32_t chars[3] = {cp, 0, 0};
        int nchars = 1;
        if (nz->chinese && is_chinese(cp)) {
            chars[0] = ' ';
            chars[1] = cp;
            chars[2] = ' ';
            nchars = 3;
        }
        bool first = true;
        for (int c = 0; c < nchars; c++) {
            utf8proc_int32_t dec[32];
            int nd = 1;
            dec[0] = (utf8proc_int32_t)chars[c];
            if (strip && chars[c] >= 0x80 && !tk_nf_override_of(chars[c], NF_D)) {
                int bound = 0;
                utf8proc_ssize_t k =
                    utf8proc_decompose_char((utf8proc_int32_t)chars[c], dec, 32, UTF8PROC_DECOMPOSE, &bound);
                nd = k > 0 && k <= 32 ? (int)k : 1;
                if (k <= 0 || k > 32) dec[0] = (utf8proc_int32_t)chars[c];
            }
            for (int d = 0; d < nd; d++) {
                uint32_t ch = (uint32_t)dec[d];
                if (strip && (tk_props(ch) & TK_MARK_NSM)) continue;
                char buf[16];
                int bl = nz->lowercase ? tk_lower(ch, buf) : tk_utf8_put(ch, buf);
                for (int b = 0; b < bl;) {
                    int cl = tk_utf8_len((unsigned char)buf[b]);
                    tk_xform_emit_bytes(&x, buf + b, (uint32_t)cl, first ? 0 : 1);
                    first = false;
                    b += cl;
                }
            }
        }
        /* everything the char became was dropped: the char is removed */
        tk_xform_skip_to(&x, next);
        i = next;
    }
    return tk_xform_end(&x, sp);
}

/* ---------------------------------------------------------------- the simple ones */

static hft_status lowercase(tk_ws *ws, tk_split *sp) {
    const char *s0 = tk_split_bytes(ws, sp);
    bool change = false;
    for (uint32_t i = 0; i < sp->len && !change; i++) {
        unsigned char c = (unsigned char)s0[i];
        change = c >= 0x80 || (c >= 'A' && c <= 'Z');
    }
    if (!change) return HFT_OK;
    tk_xform x;
    tk_xform_begin(&x, ws, sp, 0);
    for (uint32_t i = 0; i < sp->len && x.st == HFT_OK;) {
        int l;
        uint32_t cp = tk_utf8_get(tk_split_bytes(ws, sp) + i, &l);
        char buf[16];
        int bl = tk_lower(cp, buf);
        for (int b = 0, first = 1; b < bl; first = 0) {
            int cl = tk_utf8_len((unsigned char)buf[b]);
            tk_xform_emit_bytes(&x, buf + b, (uint32_t)cl, first ? 0 : 1);
            b += cl;
        }
        i += (uint32_t)l;
    }
    return tk_xform_end(&x, sp);
}

static hft_status strip(tk_ws *ws, tk_split *sp, bool left, bool right) {
    const char *s = tk_split_bytes(ws, sp);
    uint32_t a = 0, b = sp->len;
    int l;
    if (left)
        while (a < b && (tk_props(tk_utf8_get(s + a, &l)) & TK_RUST_WS)) a += (uint32_t)l;
    if (right)
        while (b > a) {
            uint32_t k = b - 1;
            while (k > a && ((unsigned char)s[k] & 0xC0) == 0x80) k--;
            if (!(tk_props(tk_utf8_get(s + k, &l)) & TK_RUST_WS)) break;
            b = k;
        }
    if (a == 0 && b == sp->len) return HFT_OK;
    tk_xform x;
    tk_xform_begin(&x, ws, sp, 0);
    tk_xform_skip_to(&x, a);
    tk_xform_copy_to(&x, b);
    return tk_xform_end(&x, sp);
}

static hft_status strip_accents(tk_ws *ws, tk_split *sp) {
    if (all_ascii(tk_split_bytes(ws, sp), sp->len)) return HFT_OK;
    tk_xform x;
    tk_xform_begin(&x, ws, sp, 0);
    for (uint32_t i = 0; i < sp->len && x.st == HFT_OK;) {
        int l;
        uint32_t cp = tk_utf8_get(tk_split_bytes(ws, sp) + i, &l);
        if (tk_props(cp) & TK_MARK_ANY)
            tk_xform_skip_to(&x, i + (uint32_t)l);
        else
            tk_xform_copy_to(&x, i + (uint32_t)l);
        i += (uint32_t)l;
    }
    return tk_xform_end(&x, sp);
}

static hft_status replace(tk_ws *ws, const tk_normalizer *nz, tk_split *sp) {
    tk_pattern pat = {.kind = TK_PAT_REGEX, .re = nz->re};
    hft_status st = tk_find_matches(ws, tk_split_bytes(ws, sp), sp->len, &pat, false);
    if (st != HFT_OK) return st;
    bool any = false;
    for (size_t r = 0; r < ws->rg_n; r++) any |= ws->rg[r].match != 0;
    if (!any) return HFT_OK;
    /* the matches live in ws->rg, which the transform does not touch */
    tk_xform x;
    tk_xform_begin(&x, ws, sp, 0);
    for (size_t r = 0; r < ws->rg_n && x.st == HFT_OK; r++) {
        tk_range m = ws->rg[r];
        if (!m.match) {
            tk_xform_copy_to(&x, m.b);
            continue;
        }
        tk_xform_skip_to(&x, m.b);
        for (size_t k = 0; k < nz->str_len;) {
            int cl = tk_utf8_len((unsigned char)nz->str[k]);
            tk_xform_emit_bytes(&x, nz->str + k, (uint32_t)cl, 1);
            k += (size_t)cl;
        }
    }
    return tk_xform_end(&x, sp);
}

hft_status tk_prepend(tk_ws *ws, const char *str, size_t n, tk_split *sp) {
    if (!sp->len || !n) return HFT_OK;
    tk_xform x;
    tk_xform_begin(&x, ws, sp, 0);
    const char *s = tk_split_bytes(ws, sp);
    int first_len = tk_utf8_len((unsigned char)s[0]);
    char first[4];
    memcpy(first, s, (size_t)first_len);
    for (size_t k = 0, i = 0; k < n; i++) {
        int cl = tk_utf8_len((unsigned char)str[k]);
        tk_xform_emit_bytes(&x, str + k, (uint32_t)cl, i == 0 ? 0 : 1);
        k += (size_t)cl;
    }
    tk_xform_emit_bytes(&x, first, (uint32_t)first_len, 1);
    tk_xform_copy_to(&x, sp->len);
    return tk_xform_end(&x, sp);
}

hft_status tk_normalize(tk_ws *ws, const tk_normalizer *nz, tk_split *sp) {
    switch (nz->kind) {
    case TK_N_SEQUENCE:
        for (int i = 0; i < nz->n_items; i++) {
            hft_status st = tk_normalize(ws, &nz->items[i], sp);
            if (st != HFT_OK) return st;
        }
        return HFT_OK;
    case TK_N_BERT:
        return bert(ws, nz, sp);
    case TK_N_NFD:
        return normal_form(ws, sp, NF_D);
    case TK_N_NFKD:
        return normal_form(ws, sp, NF_KD);
    case TK_N_NFC:
        return normal_form(ws, sp, NF_C);
    case TK_N_NFKC:
        return normal_form(ws, sp, NF_KC);
    case TK_N_LOWERCASE:
        return lowercase(ws, sp);
    case TK_N_STRIP:
        return strip(ws, sp, nz->left, nz->right);
    case TK_N_STRIP_ACCENTS:
        return strip_accents(ws, sp);
    case TK_N_REPLACE:
        return replace(ws, nz, sp);
    case TK_N_PREPEND:
        return tk_prepend(ws, nz->str, nz->str_len, sp);
    case TK_N_BYTELEVEL:
        sp->bytemap = 1;
        return tk_split_apply_bytemap(ws, sp);
    }
    return hft_error(HFT_EINVAL, "tokenizer: unknown normalizer");
}

void tk_normalizer_clear(tk_normalizer *nz) {
    for (int i = 0; i < nz->n_items; i++) tk_normalizer_clear(&nz->items[i]);
    free(nz->items);
    free(nz->str);
    tk_regex_free(nz->re);
    memset(nz, 0, sizeof *nz);
}
