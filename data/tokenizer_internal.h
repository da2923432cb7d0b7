/* Internals of the tokenizer (data/tokenizer.c and data/tok_*.c): the pipeline components as Hugging Face
 * tokenizers defines them (normalizer → pre-tokenizer → model → post-processor, decoders), the
 * normalized-string machinery that keeps every byte aligned to the original text, and the per-thread
 * workspace that makes an encode allocation-free once warm. Not a public header. */
#ifndef HFT_TOKENIZER_INTERNAL_H
#define HFT_TOKENIZER_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "data/data.h"
#include "data/unicode_tables.h"

/* ---------------------------------------------------------------- small utilities (tok_util.c) */

/* Grows *p (elements of `elem` bytes, capacity *cap) to hold at least `need`; HFT_ENOMEM on failure. */
hft_status tk_grow(void **p, size_t *cap, size_t need, size_t elem);
#define TK_GROW(ptr, cap, need)                                                                              \
    ((size_t)(need) <= (cap) ? HFT_OK : tk_grow((void **)&(ptr), &(cap), (need), sizeof *(ptr)))
char *tk_strndup(const char *s, size_t n);
uint64_t tk_hash(const void *p, size_t n);

/* UTF-8: valid input only (tk_utf8_check validates). */
static inline int tk_utf8_len(unsigned char c) {
    return c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}
static inline uint32_t tk_utf8_get(const char *p, int *len) {
    const unsigned char *s = (const unsigned char *)p;
    if (s[0] < 0x80) return *len = 1, s[0];
    if (s[0] < 0xE0) return *len = 2, (uint32_t)(s[0] & 0x1F) << 6 | (s[1] & 0x3F);
    if (s[0] < 0xF0)
        return *len = 3, (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
    *len = 4;
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 |
           (s[3] & 0x3F);
}
int tk_utf8_put(uint32_t cp, char *out);
/* Offset of the first byte that is not valid UTF-8 (Rust's definition: no surrogates, no overlongs), or -1.
 */
int64_t tk_utf8_check(const char *s, size_t n);
/* Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD. Appends to *buf. */
hft_status tk_utf8_lossy(const char *s, size_t n, char **buf, size_t *len, size_t *cap);

/* String → id hash map; keys are copied into the map's own pool. */
typedef struct tk_map_entry {
    uint64_t hash;
    uint32_t off, len;
    int32_t id;
} tk_map_entry;
typedef struct tk_map {
    uint32_t *slots; /* entry index + 1; 0 is empty */
    size_t mask;
    tk_map_entry *entries;
    size_t n, cap;
    char *pool;
    size_t pool_n, pool_cap;
} tk_map;
int32_t tk_map_get(const tk_map *m, const char *s, size_t n); /* -1 when absent */
/* Inserts or, when the key is present, replaces its id (as a Rust HashMap insert does). */
hft_status tk_map_put(tk_map *m, const char *s, size_t n, int32_t id);
void tk_map_free(tk_map *m);
static inline const char *tk_map_key(const tk_map *m, size_t i) {
    return m->pool + m->entries[i].off;
}

/* (id, id) → (rank, new id): BPE merges. */
typedef struct tk_pairmap {
    uint64_t *keys; /* UINT64_MAX is empty */
    uint32_t (*vals)[2];
    size_t mask, n;
} tk_pairmap;
hft_status tk_pairmap_init(tk_pairmap *m, size_t expected);
hft_status tk_pairmap_put(tk_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t id);
static inline const uint32_t *tk_pairmap_get(const tk_pairmap *m, uint32_t a, uint32_t b) {
    if (!m->n) return NULL;
    uint64_t key = (uint64_t)a << 32 | b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (size_t i = (size_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        if (m->keys[i] == key) return m->vals[i];
        if (m->keys[i] == UINT64_MAX) return NULL;
    }
}
void tk_pairmap_free(tk_pairmap *m);

/* ---------------------------------------------------------------- regular expressions (tok_regex.c) */

/* A pattern run as Oniguruma runs it (rust-onig's find_iter), with hand-written matchers for the GPT-2,
 * Llama 3 and Qwen2 pre-tokenizer patterns that give the same matches faster. */
enum { TK_FAST_NONE, TK_FAST_GPT2, TK_FAST_LLAMA3, TK_FAST_QWEN2 };
typedef struct tk_regex {
    void *onig; /* regex_t */
    int fast;
    char *source;
    char *literal; /* a String pattern: plain substring search gives onig's matches */
    size_t literal_len;
} tk_regex;
hft_status tk_regex_new(const char *pattern, size_t len, bool literal, tk_regex **out);
void tk_regex_free(tk_regex *re);
/* One match at or after `from`: returns false when there is none. `use_fast` chooses the hand-written path
 * when the pattern has one (the tests compare both). */
bool tk_regex_search(const tk_regex *re, const char *s, size_t n, size_t from, size_t *ms, size_t *me,
                     bool use_fast);
/* The hand-written matchers: the end of the match that starts at `i` (every position starts one). */
size_t tk_fast_gpt2(const char *s, size_t n, size_t i);
size_t tk_fast_llama3(const char *s, size_t n, size_t i);

/* A Pattern as tokenizers::Pattern: a regex, or a predicate on characters. */
enum { TK_PAT_REGEX, TK_PAT_CHAR, TK_PAT_WHITESPACE, TK_PAT_PUNCT, TK_PAT_NUMERIC };
typedef struct tk_pattern {
    int kind;
    const tk_regex *re;
    uint32_t ch; /* TK_PAT_CHAR */
} tk_pattern;

/* ---------------------------------------------------------------- normalized strings (tok_norm.c) */

/* One piece of the input on its way through the pipeline: its normalized bytes and, per byte, the original
 * range it came from (as tokenizers' NormalizedString, but offsets are absolute in the original text). */
typedef struct tk_split {
    uint32_t off;      /* identity: offset in the original text; else offset in ws->nb / ws->al */
    uint32_t len;      /* normalized length in bytes */
    uint32_t olo, ohi; /* the original range it covers (NormalizedString::offsets_original) */
    int32_t added;     /* the added token this piece is, or -1 */
    uint8_t ident;     /* the bytes are the original text itself, aligned char by char */
    uint8_t bytemap;   /* ByteLevel's byte→char mapping is pending: the model sees mapped chars */
} tk_split;

typedef struct tk_range {
    uint32_t a, b;
    uint32_t match;
} tk_range;

/* A model's output for one piece: ids and byte offsets in the piece's normalized text. */
typedef struct tk_mtok {
    int32_t id;
    uint32_t a, b;
} tk_mtok;

/* One token of a sequence's encoding before post-processing. */
typedef struct tk_etok {
    int32_t id;
    uint32_t type;
    uint64_t a, b;        /* original byte offsets */
    uint32_t special;     /* special_tokens_mask */
    uint32_t seq;         /* which text the offsets point into (0, or 1 for the pair) */
    uint32_t lead, trail; /* leading / trailing space-like chars of the token's string (ByteLevel trimming) */
} tk_etok;

typedef struct tk_cache tk_cache;

/* Per-thread scratch, reused across calls (an encode allocates nothing once these have grown). */
typedef struct tk_ws {
    const char *orig;
    size_t orig_len;
    char *nb; /* normalized bytes */
    uint32_t (*al)[2];
    size_t nb_n, nb_cap, al_cap;
    tk_split *sp, *sp2;
    size_t sp_n, sp_cap, sp2_n, sp2_cap;
    tk_range *rg;
    size_t rg_n, rg_cap;
    tk_mtok *mt;
    size_t mt_n, mt_cap;
    tk_etok *et[2];
    size_t et_n[2], et_cap[2];
    const char *text[2]; /* the texts being encoded (for offset trimming, which counts chars) */
    size_t text_len[2];
    tk_etok *pp[2]; /* post-processing scratch */
    size_t pp_n[2], pp_cap[2];
    uint32_t *cps; /* scratch code points */
    size_t cps_cap;
    char *tmp; /* scratch bytes */
    size_t tmp_cap;
    /* BPE scratch */
    void *sym;
    size_t sym_cap;
    void *heap;
    size_t heap_cap;
    /* word caches, one per tokenizer recently used on this thread */
    tk_cache *caches[4];
    uint64_t cache_uid[4];
    uint64_t cache_tick[4], tick;
} tk_ws;

typedef struct hft_tokenizer hft_tokenizer;
tk_ws *tk_ws_get(void);
/* The calling thread's word cache for tokenizer t (created on first use). */
tk_cache *tk_ws_cache(tk_ws *ws, const hft_tokenizer *t);
void tk_ws_release_thread(void); /* frees the calling thread's workspace */

static inline const char *tk_split_bytes(const tk_ws *ws, const tk_split *sp) {
    return sp->ident ? ws->orig + sp->off : ws->nb + sp->off;
}
/* The original range of normalized byte i of sp. */
static inline void tk_split_align(const tk_ws *ws, const tk_split *sp, uint32_t i, uint32_t *s, uint32_t *e) {
    if (!sp->ident) {
        *s = ws->al[sp->off + i][0];
        *e = ws->al[sp->off + i][1];
        return;
    }
    const unsigned char *o = (const unsigned char *)ws->orig;
    uint32_t p = sp->off + i;
    while (p > 0 && (o[p] & 0xC0) == 0x80) p--;
    *s = p;
    *e = p + (uint32_t)tk_utf8_len(o[p]);
}
/* GPT-2's byte-level alphabet: the char standing for byte b, and the byte a char stands for (-1: none). */
uint32_t tk_byte_char(unsigned b);
int tk_char_byte(uint32_t cp);
/* ByteLevel's byte→char mapping applied for real (for components that must see the mapped chars). */
hft_status tk_split_apply_bytemap(tk_ws *ws, tk_split *sp);

/* Building a new normalized string from an old one, as NormalizedString::transform does: each emitted char
 * says whether it replaces a char of the source (change 0), is inserted (change 1), or replaces one and
 * removes -change more (change < 0). */
typedef struct tk_xform {
    tk_ws *ws;
    tk_split src;
    uint32_t pos;   /* byte position in the source */
    uint32_t start; /* where the output begins in ws->nb */
    hft_status st;
} tk_xform;
void tk_xform_begin(tk_xform *x, tk_ws *ws, const tk_split *src, uint32_t initial_removed_chars);
void tk_xform_emit(tk_xform *x, uint32_t cp, int change);
void tk_xform_emit_bytes(tk_xform *x, const char *s, uint32_t n, int change); /* a UTF-8 char */
/* Copies source chars up to byte position `to` unchanged. */
void tk_xform_copy_to(tk_xform *x, uint32_t to);
/* Skips source chars up to byte position `to` (they are removed). */
void tk_xform_skip_to(tk_xform *x, uint32_t to);
hft_status tk_xform_end(tk_xform *x, tk_split *out);

/* Splits sp by the pattern's matches with a SplitDelimiterBehavior; appends the non-empty pieces to ws->sp2.
 */
enum { TK_REMOVED, TK_ISOLATED, TK_MERGED_PREV, TK_MERGED_NEXT, TK_CONTIGUOUS };
hft_status tk_split_by(tk_ws *ws, const tk_split *sp, const tk_pattern *pat, bool invert, int behavior,
                       bool use_fast);
/* Pattern::find_matches over bytes [0, n): fills ws->rg. */
hft_status tk_find_matches(tk_ws *ws, const char *s, size_t n, const tk_pattern *pat, bool use_fast);
/* Appends the piece [a, b) of sp to ws->sp2 (dropped when empty). */
hft_status tk_split_push_slice(tk_ws *ws, const tk_split *sp, uint32_t a, uint32_t b, int32_t added);

/* ---------------------------------------------------------------- normalizers (tok_normalizers.c) */

enum {
    TK_N_BERT,
    TK_N_NFC,
    TK_N_NFD,
    TK_N_NFKC,
    TK_N_NFKD,
    TK_N_LOWERCASE,
    TK_N_STRIP,
    TK_N_STRIP_ACCENTS,
    TK_N_REPLACE,
    TK_N_PREPEND,
    TK_N_BYTELEVEL,
    TK_N_SEQUENCE
};
typedef struct tk_normalizer {
    int kind;
    bool clean_text, chinese, strip_accents, lowercase; /* BertNormalizer */
    bool left, right;                                   /* Strip */
    char *str;                                          /* Prepend's text, Replace's content */
    size_t str_len;
    tk_regex *re; /* Replace */
    struct tk_normalizer *items;
    int n_items;
} tk_normalizer;
hft_status tk_normalize(tk_ws *ws, const tk_normalizer *n, tk_split *sp);
/* NormalizedString::prepend (the Prepend normalizer, Metaspace and ByteLevel's prefix space). */
hft_status tk_prepend(tk_ws *ws, const char *str, size_t n, tk_split *sp);
void tk_normalizer_clear(tk_normalizer *n);

/* ---------------------------------------------------------------- pre-tokenizers (tok_pretok.c) */

enum {
    TK_P_BYTELEVEL,
    TK_P_SPLIT,
    TK_P_METASPACE,
    TK_P_BERT,
    TK_P_WHITESPACE,
    TK_P_WHITESPACE_SPLIT,
    TK_P_PUNCT,
    TK_P_DIGITS,
    TK_P_CHAR_DELIM,
    TK_P_SEQUENCE
};
enum { TK_PREPEND_ALWAYS, TK_PREPEND_FIRST, TK_PREPEND_NEVER };
typedef struct tk_pretok {
    int kind;
    bool add_prefix_space, use_regex; /* ByteLevel */
    tk_regex *re;                     /* Split; ByteLevel's regex */
    int behavior;
    bool invert;
    uint32_t ch; /* Metaspace replacement, CharDelimiterSplit delimiter */
    int prepend_scheme;
    bool split, individual_digits;
    struct tk_pretok *items;
    int n_items;
} tk_pretok;
/* Runs the pre-tokenizer over the pieces in ws->sp (added-token pieces pass through). */
hft_status tk_pretokenize(tk_ws *ws, const tk_pretok *p, bool use_fast);
void tk_pretok_clear(tk_pretok *p);
extern const char *const tk_gpt2_pattern; /* ByteLevel's built-in regex */

/* ---------------------------------------------------------------- models (tok_bpe.c, tok_wordpiece.c) */

enum { TK_M_BPE, TK_M_WORDPIECE, TK_M_WORDLEVEL, TK_M_BYTES };
typedef struct tk_model {
    int kind;
    tk_map vocab;       /* the model's vocabulary as written in the file */
    uint32_t *id_entry; /* id → vocab entry (UINT32_MAX: no token) */
    int64_t n_ids;      /* largest id + 1 */
    char *unk;          /* unk_token, or NULL */
    int32_t unk_id;     /* -1 when unk is absent from the vocabulary */
    /* BPE */
    tk_pairmap merges;
    char *prefix, *suffix; /* continuing_subword_prefix / end_of_word_suffix (NULL: none) */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t fallback_ids[256]; /* "<0xNN>" ids, -1 when absent */
    int32_t char_ids[128];     /* vocabulary ids of the ASCII chars, -1 when absent */
    /* raw mode: the model is fed ByteLevel-mapped text; it runs on the raw bytes with this vocabulary */
    bool raw;
    tk_map raw_vocab;
    int32_t raw_byte_ids[256];
    /* no token has a "▁" right after another char: merges never cross the start of a "▁" run, so a long
     * SentencePiece-style word can be merged piece by piece (exactly the same result, and cacheable) */
    bool split_meta;
    /* WordPiece */
    size_t max_input_chars, max_token_len;
} tk_model;
/* Tokenizes one piece's normalized bytes (its raw bytes when `bytemap`: then the model must run raw);
 * appends the tokens to ws->mt. */
hft_status tk_model_tokenize(tk_ws *ws, const hft_tokenizer *t, const char *s, size_t n, bool bytemap);
hft_status tk_bpe_tokenize(tk_ws *ws, const hft_tokenizer *t, const char *s, size_t n, bool raw);
hft_status tk_wordpiece_tokenize(tk_ws *ws, const hft_tokenizer *t, const char *s, size_t n);
/* Adds merge (a, b) with its rank; `where` names it in errors. */
hft_status tk_bpe_add_merge(tk_model *m, const char *a, size_t al, const char *b, size_t bl, uint32_t rank,
                            const char *where);
/* After the vocabulary and merges are in: byte-fallback ids, ASCII ids, raw mode when `bytelevel`. */
hft_status tk_bpe_prepare(tk_model *m, bool bytelevel);
void tk_model_clear(tk_model *m);
const char *tk_model_id_to_token(const tk_model *m, int32_t id, size_t *len);
int32_t tk_model_token_to_id(const tk_model *m, const char *s, size_t n);
/* Number of entries in the vocabulary (tokenizers' Model::get_vocab_size). */
size_t tk_model_vocab_count(const tk_model *m);

/* The per-thread word cache: a word's bytes → its tokens (ids and byte lengths). Bounded; cleared when full.
 */
tk_cache *tk_cache_new(void);
void tk_cache_free(tk_cache *c);
/* Returns the cached values (*count uint32s) or NULL. */
const uint32_t *tk_cache_get(tk_cache *c, const char *s, size_t n, uint64_t h, uint32_t *count);
void tk_cache_put(tk_cache *c, const char *s, size_t n, uint64_t h, const uint32_t *vals, uint32_t count);

/* ---------------------------------------------------------------- added vocabulary (tok_added.c) */

typedef struct tk_added {
    char *content;
    size_t len;
    char *norm; /* the normalized content when `normalized` and the normalizer changes it, else NULL */
    size_t norm_len;
    int32_t id;
    bool single_word, lstrip, rstrip, normalized, special;
} tk_added;

/* Leftmost-longest matching of a set of strings (a byte trie). */
typedef struct tk_trie_node {
    uint32_t first, count; /* children: edges[first .. first+count), sorted by byte */
    int32_t term;          /* added index whose pattern ends here, or -1 */
} tk_trie_node;
typedef struct tk_trie {
    tk_trie_node *nodes;
    size_t n_nodes;
    struct tk_trie_edge {
        unsigned char byte;
        uint32_t node;
    } * edges;
    size_t n_edges;
    uint8_t first_byte[256];
    bool empty;
} tk_trie;

/* Splits each piece of ws->sp on the added tokens of one trie (non-normalized on the raw text, or
 * normalized after normalizing the piece), as AddedVocabulary::extract_and_normalize. */
hft_status tk_added_extract(tk_ws *ws, const hft_tokenizer *t, size_t len);
hft_status tk_added_build(hft_tokenizer *t);
/* Adds tokens as AddedVocabulary::add_tokens does (ids from the model vocabulary when present, else next). */
hft_status tk_added_add(hft_tokenizer *t, tk_added *tokens, int n);
const tk_added *tk_added_by_id(const hft_tokenizer *t, int32_t id);
const tk_added *tk_added_by_content(const hft_tokenizer *t, const char *s, size_t n);

/* ---------------------------------------------------------------- post-processors (tok_post.c) */

enum { TK_PP_TEMPLATE, TK_PP_BERT, TK_PP_ROBERTA, TK_PP_BYTELEVEL, TK_PP_SEQUENCE };
typedef struct tk_piece {
    bool is_seq;
    int seq; /* 0: A, 1: B */
    uint32_t type_id;
    int special; /* index into specials */
} tk_piece;
typedef struct tk_special {
    char *name;
    int32_t *ids;
    char **tokens;
    int n;
} tk_special;
typedef struct tk_post {
    int kind;
    tk_piece *single, *pair;
    int n_single, n_pair;
    tk_special *specials;
    int n_specials;
    bool trim_offsets, add_prefix_space;
    struct tk_post *items;
    int n_items;
} tk_post;
/* Post-processes ws->et[0] (and ws->et[1] when `pair`) into out. */
hft_status tk_post_process(tk_ws *ws, const hft_tokenizer *t, bool pair, bool add_special, hft_encoding *out);
void tk_post_clear(tk_post *p);
bool tk_post_trims(const tk_post *p); /* does it ever trim offsets (needs the tokens' lead/trail counts)? */

/* ---------------------------------------------------------------- decoders (tok_decode.c) */

enum {
    TK_D_BYTELEVEL,
    TK_D_METASPACE,
    TK_D_WORDPIECE,
    TK_D_BYTE_FALLBACK,
    TK_D_FUSE,
    TK_D_STRIP,
    TK_D_REPLACE,
    TK_D_BPE,
    TK_D_SEQUENCE
};
typedef struct tk_decoder {
    int kind;
    char *str; /* WordPiece prefix, BPEDecoder suffix, Replace content */
    size_t str_len;
    bool cleanup;
    uint32_t ch; /* Metaspace replacement, Strip content */
    int prepend_scheme;
    size_t start, stop;
    tk_regex *re;
    struct tk_decoder *items;
    int n_items;
} tk_decoder;
/* A list of strings in one buffer. */
typedef struct tk_strs {
    char *buf;
    size_t len, cap;
    size_t (*item)[2]; /* offset, length */
    size_t n, item_cap;
} tk_strs;
hft_status tk_strs_push(tk_strs *l, const char *s, size_t n);
void tk_strs_free(tk_strs *l);
hft_status tk_decode_chain(const tk_decoder *d, tk_strs *tokens);
void tk_decoder_clear(tk_decoder *d);

/* ---------------------------------------------------------------- the tokenizer */

/* Leading and trailing chars that ByteLevel's offset trimming counts as spaces ('Ġ' or whitespace). */
void tk_trim_count(const char *s, size_t n, uint32_t *lead, uint32_t *trail);

struct hft_tokenizer {
    uint64_t uid; /* names this tokenizer's word caches */
    tk_normalizer *normalizer;
    tk_pretok *pretok;
    tk_model model;
    tk_post *post;
    tk_decoder *decoder;
    tk_added *added;
    int n_added;
    tk_map added_map;     /* content → index in added */
    int32_t *added_of_id; /* id → index in added, or -1 (size n_ids) */
    int64_t added_of_id_n;
    tk_trie trie_raw, trie_norm;
    tk_map special_set;         /* contents of special added tokens */
    int64_t vocab_size;         /* largest id + 1 */
    bool trims;                 /* the post-processor trims offsets */
    uint32_t (*trim_counts)[2]; /* per model id: leading / trailing space-like chars (when trims) */
    hft_special_tokens specials;
    bool pad_left;
    int64_t max_length;
    char *chat_template;
};

hft_tokenizer *tk_tokenizer_alloc(void);
/* After every component is set: added-token tries, trim counts, vocab size. */
hft_status tk_tokenizer_finish(hft_tokenizer *t);
/* Loading (tok_load.c, tok_config.c, tok_legacy.c). */
hft_status tk_load_json(hft_tokenizer *t, const char *path);
hft_status tk_load_config(hft_tokenizer *t, const char *dir);
hft_status tk_load_vocab_merges(hft_tokenizer *t, const char *vocab_path, const char *merges_path);
hft_status tk_load_vocab_txt(hft_tokenizer *t, const char *vocab_path, const char *config_path);
hft_status tk_read_file(const char *path, char **text, size_t *len);
struct cJSON;
/* A JSON object from a file; errors name the file and line. */
hft_status tk_parse_json(const char *path, struct cJSON **out);
/* Encodes with or without the hand-written regex matchers (the tests compare both). */
hft_status tk_encode(const hft_tokenizer *t, const char *text, size_t len, const char *pair, size_t pair_len,
                     bool add_special, bool use_fast, hft_encoding *out);

#endif
