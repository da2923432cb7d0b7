/* Regular expressions for the pre-tokenizers and Replace: Oniguruma, the engine tokenizers itself uses (same
 * syntax, same Unicode tables), plus hand-written matchers for the GPT-2 and Llama 3 (and Qwen2) split
 * patterns, whose character classes come from tables generated from onig (tools/gen_unicode_onig.c). The
 * hand-written matchers give exactly onig's matches; tests/test_tokenizer.c checks that on random text. */
#include <oniguruma.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

const char *const tk_gpt2_pattern =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
static const char *const llama3_pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const qwen2_pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static void onig_setup(void) {
    OnigEncoding encs[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encs, 1);
}

static _Thread_local OnigRegion *tls_region;
static pthread_key_t region_key;
static pthread_once_t region_once = PTHREAD_ONCE_INIT;
static void region_free(void *r) {
    if (r) onig_region_free(r, 1);
}
static void region_key_make(void) {
    pthread_key_create(&region_key, region_free);
}
static OnigRegion *region_get(void) {
    if (tls_region) return tls_region;
    pthread_once(&region_once, region_key_make);
    tls_region = onig_region_new();
    if (tls_region) pthread_setspecific(region_key, tls_region);
    return tls_region;
}

/* regex::escape of the Rust regex crate: the meta characters get a backslash (onig reads them the same). */
static char *escape(const char *s, size_t n, size_t *out_len) {
    char *d = malloc(2 * n + 1), *w = d;
    if (!d) return NULL;
    for (size_t i = 0; i < n; i++) {
        if (strchr("\\.+*?()|[]{}^$#&-~", s[i]) && s[i]) *w++ = '\\';
        *w++ = s[i];
    }
    *w = '\0';
    *out_len = (size_t)(w - d);
    return d;
}

hft_status tk_regex_new(const char *pattern, size_t len, bool literal, tk_regex **out) {
    *out = NULL;
    pthread_once(&onig_once, onig_setup);
    tk_unicode_init();
    tk_regex *re = calloc(1, sizeof *re);
    if (!re) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    size_t n = len;
    re->source = literal ? escape(pattern, len, &n) : tk_strndup(pattern, len);
    if (!re->source) {
        free(re);
        return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    }
    regex_t *reg;
    OnigErrorInfo einfo;
    const UChar *p = (const UChar *)re->source;
    int r = onig_new(&reg, p, p + n, ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &einfo);
    if (r != ONIG_NORMAL) {
        UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
        onig_error_code_to_str(msg, r, &einfo);
        hft_status st = hft_error(HFT_EFORMAT, "regex \"%s\": %s", re->source, (const char *)msg);
        free(re->source);
        free(re);
        return st;
    }
    re->onig = reg;
    if (literal && len) {
        re->literal = tk_strndup(pattern, len);
        re->literal_len = len;
        if (!re->literal) {
            tk_regex_free(re);
            return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
        }
    }
    if (!literal && strlen(re->source) == n) {
        if (strcmp(re->source, tk_gpt2_pattern) == 0)
            re->fast = TK_FAST_GPT2;
        else if (strcmp(re->source, llama3_pattern) == 0)
            re->fast = TK_FAST_LLAMA3;
        else if (strcmp(re->source, qwen2_pattern) == 0)
            re->fast = TK_FAST_QWEN2;
    }
    *out = re;
    return HFT_OK;
}

void tk_regex_free(tk_regex *re) {
    if (!re) return;
    if (re->onig) onig_free(re->onig);
    free(re->source);
    free(re->literal);
    free(re);
}

/* ---------------------------------------------------------------- the hand-written matchers */

enum { C_L = TK_ONIG_L, C_N = TK_ONIG_N, C_S = TK_ONIG_S };

/* onig's class bits of the ASCII chars */
static const uint8_t ascii_class[128] = {
    ['\t'] = C_S, ['\n'] = C_S, ['\v'] = C_S, ['\f'] = C_S, ['\r'] = C_S, [' '] = C_S, ['0'] = C_N,
    ['1'] = C_N,  ['2'] = C_N,  ['3'] = C_N,  ['4'] = C_N,  ['5'] = C_N,  ['6'] = C_N, ['7'] = C_N,
    ['8'] = C_N,  ['9'] = C_N,  ['A'] = C_L,  ['B'] = C_L,  ['C'] = C_L,  ['D'] = C_L, ['E'] = C_L,
    ['F'] = C_L,  ['G'] = C_L,  ['H'] = C_L,  ['I'] = C_L,  ['J'] = C_L,  ['K'] = C_L, ['L'] = C_L,
    ['M'] = C_L,  ['N'] = C_L,  ['O'] = C_L,  ['P'] = C_L,  ['Q'] = C_L,  ['R'] = C_L, ['S'] = C_L,
    ['T'] = C_L,  ['U'] = C_L,  ['V'] = C_L,  ['W'] = C_L,  ['X'] = C_L,  ['Y'] = C_L, ['Z'] = C_L,
    ['a'] = C_L,  ['b'] = C_L,  ['c'] = C_L,  ['d'] = C_L,  ['e'] = C_L,  ['f'] = C_L, ['g'] = C_L,
    ['h'] = C_L,  ['i'] = C_L,  ['j'] = C_L,  ['k'] = C_L,  ['l'] = C_L,  ['m'] = C_L, ['n'] = C_L,
    ['o'] = C_L,  ['p'] = C_L,  ['q'] = C_L,  ['r'] = C_L,  ['s'] = C_L,  ['t'] = C_L, ['u'] = C_L,
    ['v'] = C_L,  ['w'] = C_L,  ['x'] = C_L,  ['y'] = C_L,  ['z'] = C_L,
};

/* Class bits of the char at s[i] (i < n) and its length. */
static inline unsigned cls(const char *s, size_t i, int *len) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x80) {
        *len = 1;
        return ascii_class[c];
    }
    return tk_onig_class(tk_utf8_get(s + i, len));
}

/* End of the run of chars from i whose class is in `want` (as a set test) or, when `others`, chars of no
 * class at all ([^\s\p{L}\p{N}]). */
static inline size_t run(const char *s, size_t n, size_t i, unsigned want, bool others) {
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        int l;
        unsigned k;
        if (c < 0x80) {
            k = ascii_class[c];
            l = 1;
        } else {
            k = cls(s, i, &l);
        }
        if (others ? k != 0 : !(k & want)) break;
        i += (size_t)l;
    }
    return i;
}

/* \s+(?!\S)|\s+ at i (s[i] is a space): the run, less its last char when a non-space follows and the run has
 * more than one char. */
static size_t spaces(const char *s, size_t n, size_t i) {
    size_t j = i, last = i;
    while (j < n) {
        int l;
        if (!(cls(s, j, &l) & C_S)) break;
        last = j;
        j += (size_t)l;
    }
    if (j == n || last == i) return j;
    return last;
}

size_t tk_fast_gpt2(const char *s, size_t n, size_t i) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\'' && i + 1 < n) {
        char d = s[i + 1];
        if (d == 's' || d == 't' || d == 'm' || d == 'd') return i + 2;
        if (i + 2 < n) {
            char e = s[i + 2];
            if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e') || (d == 'l' && e == 'l')) return i + 3;
        }
    }
    int l;
    unsigned k = cls(s, i, &l);
    size_t j = i;
    if (c == ' ' && i + 1 < n) {
        unsigned k2 = cls(s, i + 1, &l);
        if (k2 & C_L) return run(s, n, i + 1, C_L, false);
        if (k2 & C_N) return run(s, n, i + 1, C_N, false);
        if (!k2) return run(s, n, i + 1, 0, true);
    }
    if (k & C_L) return run(s, n, j, C_L, false);
    if (k & C_N) return run(s, n, j, C_N, false);
    if (!k) return run(s, n, j, 0, true);
    return spaces(s, n, i);
}

/* Does cp fold to the ASCII lowercase letter `a` under onig's case-insensitive matching? (checked against
 * onig for every code point: only the ASCII letters and U+017F LONG S, which folds to s) */
static inline bool folds(uint32_t cp, char a) {
    return cp == (uint32_t)a || cp == (uint32_t)(a - 32) || (a == 's' && cp == 0x17F);
}

static size_t llama3(const char *s, size_t n, size_t i, size_t max_digits) {
    unsigned char c = (unsigned char)s[i];
    int l;
    if (c == '\'' && i + 1 < n) {
        uint32_t d = tk_utf8_get(s + i + 1, &l);
        size_t after = i + 1 + (size_t)l;
        if (folds(d, 's') || folds(d, 't') || folds(d, 'm') || folds(d, 'd')) return after;
        if (after < n) {
            int l2;
            uint32_t e = tk_utf8_get(s + after, &l2);
            if (((folds(d, 'r') || folds(d, 'v')) && folds(e, 'e')) || (folds(d, 'l') && folds(e, 'l')))
                return after + (size_t)l2;
        }
    }
    unsigned k = cls(s, i, &l);
    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    if (k & C_L) return run(s, n, i, C_L, false);
    if (!(k & C_N) && c != '\r' && c != '\n' && i + (size_t)l < n) {
        int l2;
        if (cls(s, i + (size_t)l, &l2) & C_L) return run(s, n, i + (size_t)l, C_L, false);
    }
    /* \p{N}{1,3} */
    if (k & C_N) {
        size_t j = i;
        for (size_t d = 0; d < max_digits && j < n; d++) {
            int l2;
            if (!(cls(s, j, &l2) & C_N)) break;
            j += (size_t)l2;
        }
        return j;
    }
    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    size_t j = i;
    if (c == ' ' && i + 1 < n) {
        int l2;
        if (!cls(s, i + 1, &l2)) j = i + 1;
    }
    if (j > i || !k) {
        j = run(s, n, j, 0, true);
        while (j < n && (s[j] == '\r' || s[j] == '\n')) j++;
        return j;
    }
    /* \s*[\r\n]+ : up to and including the last \r or \n of the space run */
    size_t end = i, nl = 0;
    bool have_nl = false;
    while (end < n) {
        int l2;
        if (!(cls(s, end, &l2) & C_S)) break;
        if (s[end] == '\r' || s[end] == '\n') {
            nl = end;
            have_nl = true;
        }
        end += (size_t)l2;
    }
    if (have_nl) return nl + 1;
    return spaces(s, n, i);
}

size_t tk_fast_llama3(const char *s, size_t n, size_t i) {
    return llama3(s, n, i, 3);
}

bool tk_regex_search(const tk_regex *re, const char *s, size_t n, size_t from, size_t *ms, size_t *me,
                     bool use_fast) {
    if (use_fast && re->fast) {
        /* every position starts a match of these patterns, so the match found from `from` starts there */
        if (from >= n) return false;
        *ms = from;
        *me = re->fast == TK_FAST_GPT2     ? tk_fast_gpt2(s, n, from)
              : re->fast == TK_FAST_LLAMA3 ? llama3(s, n, from, 3)
                                           : llama3(s, n, from, 1);
        return true;
    }
    if (re->literal) {
        if (from > n) return false;
        const char *m = memmem(s + from, n - from, re->literal, re->literal_len);
        if (!m) return false;
        *ms = (size_t)(m - s);
        *me = *ms + re->literal_len;
        return true;
    }
    OnigRegion *region = region_get();
    if (!region) return false;
    const UChar *str = (const UChar *)s, *end = str + n;
    int r = onig_search(re->onig, str, end, str + from, end, region, ONIG_OPTION_NONE);
    if (r < 0) return false;
    *ms = (size_t)region->beg[0];
    *me = (size_t)region->end[0];
    return true;
}
