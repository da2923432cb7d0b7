/* Lookups over the generated Unicode tables: two-level (code point >> 8 → 256-entry block) tables built once
 * from the committed range lists, lowercase mapping and normal-form overrides. The data itself comes from
 * Oniguruma and from tokenizers (see data/unicode_tables.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

#define N_BLOCKS (0x110000 >> 8)

const uint8_t *tk_onig_blocks;
const uint16_t *tk_onig_index;
const uint16_t *tk_props_blocks;
const uint16_t *tk_props_index;

/* Deduplicates 256-entry blocks of a full table of `elem`-byte values. Returns the block store. */
static void *dedup(const void *full, size_t elem, uint16_t *index) {
    size_t bsz = 256 * elem;
    char *store = malloc((size_t)N_BLOCKS * bsz);
    size_t n = 0;
    if (!store) abort(); /* once at start, small: nothing sensible to do without it */
    for (size_t b = 0; b < N_BLOCKS; b++) {
        const char *blk = (const char *)full + b * bsz;
        size_t j = 0;
        while (j < n && memcmp(store + j * bsz, blk, bsz) != 0) j++;
        if (j == n) memcpy(store + n++ * bsz, blk, bsz);
        index[b] = (uint16_t)j;
    }
    return realloc(store, n * bsz);
}

static void build(void) {
    uint8_t *onig = calloc(0x110000, 1);
    uint16_t *props = calloc(0x110000, sizeof *props);
    uint16_t *oi = malloc(N_BLOCKS * sizeof *oi), *pi = malloc(N_BLOCKS * sizeof *pi);
    if (!onig || !props || !oi || !pi) abort();
    const struct {
        const uint32_t (*r)[2];
        size_t n;
        uint8_t bit;
    } classes[] = {{tk_onig_letter, tk_onig_letter_n, TK_ONIG_L},
                   {tk_onig_number, tk_onig_number_n, TK_ONIG_N},
                   {tk_onig_space, tk_onig_space_n, TK_ONIG_S}};
    for (size_t c = 0; c < 3; c++)
        for (size_t i = 0; i < classes[c].n; i++)
            for (uint32_t cp = classes[c].r[i][0]; cp <= classes[c].r[i][1]; cp++) onig[cp] |= classes[c].bit;
    for (size_t i = 0; i < tk_rust_props_n; i++) {
        uint32_t end = i + 1 < tk_rust_props_n ? tk_rust_props[i + 1][0] : 0x110000;
        for (uint32_t cp = tk_rust_props[i][0]; cp < end; cp++) props[cp] = (uint16_t)tk_rust_props[i][1];
    }
    tk_onig_blocks = dedup(onig, 1, oi);
    tk_props_blocks = dedup(props, 2, pi);
    tk_onig_index = oi;
    tk_props_index = pi;
    free(onig);
    free(props);
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
void tk_unicode_init(void) {
    pthread_once(&once, build);
}

int tk_lower(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
        return 1;
    }
    size_t lo = 0, hi = tk_rust_lower_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tk_rust_lower[mid].cp < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < tk_rust_lower_n && tk_rust_lower[lo].cp == cp) {
        size_t n = strlen(tk_rust_lower[lo].s);
        memcpy(out, tk_rust_lower[lo].s, n);
        return (int)n;
    }
    return tk_utf8_put(cp, out);
}

const char *tk_nf_override_of(uint32_t cp, int form) {
    size_t lo = 0, hi = tk_rust_nf_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (tk_rust_nf[mid].cp < cp || (tk_rust_nf[mid].cp == cp && tk_rust_nf[mid].form < form))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < tk_rust_nf_n && tk_rust_nf[lo].cp == cp && tk_rust_nf[lo].form == form) return tk_rust_nf[lo].s;
    return NULL;
}
