/* The generated Unicode tables the tokenizer uses (data/unicode_onig.c from Oniguruma, data/unicode_rust.c
 * probed from Hugging Face tokenizers) and the lookups built from them. Nothing here is a Unicode database of
 * its own: each answer is the one the reference implementation gives. */
#ifndef HFT_UNICODE_TABLES_H
#define HFT_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* Oniguruma's \p{L}, \p{N}, \s as inclusive ranges (tools/gen_unicode_onig.c). */
extern const uint32_t tk_onig_letter[][2], tk_onig_number[][2], tk_onig_space[][2];
extern const size_t tk_onig_letter_n, tk_onig_number_n, tk_onig_space_n;

/* Property bits as tokenizers (Rust) computes them (tools/gen_unicode_rust.py). */
enum {
    TK_RUST_WS = 1 << 0,   /* char::is_whitespace */
    TK_BERT_WS = 1 << 1,   /* BertNormalizer clean_text maps it to a space */
    TK_BERT_CTRL = 1 << 2, /* BertNormalizer clean_text removes it (controls, NUL, U+FFFD) */
    TK_MARK_NSM = 1 << 3,  /* nonspacing mark: what BertNormalizer's strip_accents removes after NFD */
    TK_MARK_ANY = 1 << 4,  /* combining mark: what the StripAccents normalizer removes */
    TK_PUNCT = 1 << 5,     /* BertPreTokenizer / Punctuation punctuation */
    TK_NUMERIC = 1 << 6,   /* char::is_numeric (Digits) */
    TK_RE_WORD = 1 << 7,   /* regex crate \w (Whitespace pre-tokenizer, single_word added tokens) */
    TK_RE_SPACE = 1 << 8,  /* regex crate \s (Whitespace pre-tokenizer, lstrip/rstrip added tokens) */
};
extern const uint32_t tk_rust_props[][2]; /* (first code point, bits) runs */
extern const size_t tk_rust_props_n;

typedef struct tk_cp_map {
    uint32_t cp;
    const char *s; /* UTF-8 */
} tk_cp_map;
extern const tk_cp_map tk_rust_lower[]; /* char::to_lowercase where not the identity */
extern const size_t tk_rust_lower_n;

typedef struct tk_nf_override {
    uint32_t cp;
    uint8_t form; /* 0 NFD, 1 NFKD, 2 NFC, 3 NFKC */
    const char *s;
} tk_nf_override;
extern const tk_nf_override tk_rust_nf[]; /* lone characters where tokenizers and utf8proc disagree */
extern const size_t tk_rust_nf_n;

/* ---------------------------------------------------------------- lookups (data/tok_unicode.c) */

enum { TK_ONIG_L = 1, TK_ONIG_N = 2, TK_ONIG_S = 4 };
/* Builds the lookup tables once (thread-safe); every lookup below calls it. */
void tk_unicode_init(void);
extern const uint8_t *tk_onig_blocks;   /* 256-entry blocks of onig class bits */
extern const uint16_t *tk_onig_index;   /* code point >> 8 → block */
extern const uint16_t *tk_props_blocks; /* 256-entry blocks of TK_RUST_* bits */
extern const uint16_t *tk_props_index;

static inline unsigned tk_onig_class(uint32_t cp) {
    return cp < 0x110000 ? tk_onig_blocks[(size_t)tk_onig_index[cp >> 8] << 8 | (cp & 255)] : 0;
}
static inline unsigned tk_props(uint32_t cp) {
    return cp < 0x110000 ? tk_props_blocks[(size_t)tk_props_index[cp >> 8] << 8 | (cp & 255)] : 0;
}
/* char::to_lowercase of cp as UTF-8 into out (at most 12 bytes); returns its length. */
int tk_lower(uint32_t cp, char *out);
/* tokenizers' normal form of a lone cp when it differs from utf8proc's, else NULL. */
const char *tk_nf_override_of(uint32_t cp, int form);

#endif
