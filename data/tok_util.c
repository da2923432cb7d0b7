/* Small building blocks of the tokenizer: growable buffers, UTF-8 (checking as Rust does, and Rust's lossy
 * decoding), a string → id hash map and the (id, id) → merge map of BPE. */
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer_internal.h"

hft_status tk_grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return HFT_OK;
    size_t n = *cap ? *cap : 16;
    while (n < need) n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return hft_error(HFT_ENOMEM, "tokenizer: out of memory (%zu bytes)", n * elem);
    *p = q;
    *cap = n;
    return HFT_OK;
}

char *tk_strndup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* A fast 64-bit hash for short keys (words, tokens): 8 bytes at a time, multiply-xorshift mixing. */
uint64_t tk_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, s, 8);
        h = (h ^ v) * 0xBF58476D1CE4E5B9ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, s, n);
        h = (h ^ v) * 0x94D049BB133111EBull;
        h ^= h >> 29;
    }
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

int tk_utf8_put(uint32_t cp, char *out) {
    unsigned char *s = (unsigned char *)out;
    if (cp < 0x80) return s[0] = (unsigned char)cp, 1;
    if (cp < 0x800) {
        s[0] = (unsigned char)(0xC0 | cp >> 6);
        s[1] = (unsigned char)(0x80 | (cp & 63));
        return 2;
    }
    if (cp < 0x10000) {
        s[0] = (unsigned char)(0xE0 | cp >> 12);
        s[1] = (unsigned char)(0x80 | (cp >> 6 & 63));
        s[2] = (unsigned char)(0x80 | (cp & 63));
        return 3;
    }
    s[0] = (unsigned char)(0xF0 | cp >> 18);
    s[1] = (unsigned char)(0x80 | (cp >> 12 & 63));
    s[2] = (unsigned char)(0x80 | (cp >> 6 & 63));
    s[3] = (unsigned char)(0x80 | (cp & 63));
    return 4;
}

/* Length of the valid UTF-8 sequence at s[0..n), 0 when invalid; *valid_prefix gets how many bytes form a
 * maximal prefix of a valid sequence (what from_utf8_lossy replaces by one U+FFFD). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *valid_prefix) {
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *valid_prefix = 1;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    for (size_t i = 1; i < need; i++) {
        if (i >= n) return 0;
        unsigned char b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) return 0;
        *valid_prefix = i + 1;
    }
    return need;
}

int64_t tk_utf8_check(const char *s, size_t n) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        size_t vp, k = utf8_seq(p + i, n - i, &vp);
        if (!k) return (int64_t)i;
        i += k;
    }
    return -1;
}

hft_status tk_utf8_lossy(const char *s, size_t n, char **buf, size_t *len, size_t *cap) {
    const unsigned char *p = (const unsigned char *)s;
    hft_status st = tk_grow((void **)buf, cap, *len + n + 1, 1);
    size_t i = 0;
    while (st == HFT_OK && i < n) {
        size_t vp, k = utf8_seq(p + i, n - i, &vp);
        if (k) {
            memcpy(*buf + *len, p + i, k);
            *len += k;
            i += k;
        } else {
            /* U+FFFD is 3 bytes and replaces at least one: make room */
            st = tk_grow((void **)buf, cap, *len + (n - i) * 3 + 4, 1);
            if (st != HFT_OK) break;
            memcpy(*buf + *len, "\xEF\xBF\xBD", 3);
            *len += 3;
            i += vp;
        }
    }
    if (st == HFT_OK) (*buf)[*len] = '\0';
    return st;
}

/* ---------------------------------------------------------------- string → id */

static hft_status map_rehash(tk_map *m, size_t slots) {
    uint32_t *s = calloc(slots, sizeof *s);
    if (!s) return hft_error(HFT_ENOMEM, "tokenizer: out of memory");
    for (size_t e = 0; e < m->n; e++) {
        size_t i = (size_t)m->entries[e].hash & (slots - 1);
        while (s[i]) i = (i + 1) & (slots - 1);
        s[i] = (uint32_t)e + 1;
    }
    free(m->slots);
    m->slots = s;
    m->mask = slots - 1;
    return HFT_OK;
}

int32_t tk_map_get(const tk_map *m, const char *s, size_t n) {
    if (!m->n) return -1;
    uint64_t h = tk_hash(s, n);
    for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
        uint32_t e = m->slots[i];
        if (!e) return -1;
        const tk_map_entry *en = &m->entries[e - 1];
        if (en->hash == h && en->len == n && memcmp(m->pool + en->off, s, n) == 0) return en->id;
    }
}

hft_status tk_map_put(tk_map *m, const char *s, size_t n, int32_t id) {
    uint64_t h = tk_hash(s, n);
    if (m->n) {
        for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
            uint32_t e = m->slots[i];
            if (!e) break;
            tk_map_entry *en = &m->entries[e - 1];
            if (en->hash == h && en->len == n && memcmp(m->pool + en->off, s, n) == 0) {
                en->id = id;
                return HFT_OK;
            }
        }
    }
    if (n > UINT32_MAX || m->pool_n + n + 1 > UINT32_MAX)
        return hft_error(HFT_EINVAL, "tokenizer: vocabulary too large");
    hft_status st = TK_GROW(m->entries, m->cap, m->n + 1);
    if (st == HFT_OK) st = tk_grow((void **)&m->pool, &m->pool_cap, m->pool_n + n + 1, 1);
    if (st != HFT_OK) return st;
    memcpy(m->pool + m->pool_n, s, n);
    m->pool[m->pool_n + n] = '\0';
    m->entries[m->n] = (tk_map_entry){.hash = h, .off = (uint32_t)m->pool_n, .len = (uint32_t)n, .id = id};
    m->pool_n += n + 1;
    m->n++;
    if (m->n * 2 > m->mask + 1 || !m->slots) {
        size_t slots = m->mask + 1 >= 16 ? (m->mask + 1) * 2 : 32;
        while (m->n * 2 > slots) slots *= 2;
        return map_rehash(m, slots);
    }
    size_t i = (size_t)h & m->mask;
    while (m->slots[i]) i = (i + 1) & m->mask;
    m->slots[i] = (uint32_t)m->n;
    return HFT_OK;
}

void tk_map_free(tk_map *m) {
    free(m->slots);
    free(m->entries);
    free(m->pool);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- (id, id) → (rank, id) */

hft_status tk_pairmap_init(tk_pairmap *m, size_t expected) {
    size_t slots = 64;
    while (slots < expected * 2) slots *= 2;
    m->keys = malloc(slots * sizeof *m->keys);
    m->vals = malloc(slots * sizeof *m->vals);
    if (!m->keys || !m->vals)
        return hft_error(HFT_ENOMEM, "tokenizer: out of memory for %zu merges", expected);
    memset(m->keys, 0xFF, slots * sizeof *m->keys);
    m->mask = slots - 1;
    m->n = 0;
    return HFT_OK;
}

hft_status tk_pairmap_put(tk_pairmap *m, uint32_t a, uint32_t b, uint32_t rank, uint32_t id) {
    if ((m->n + 1) * 2 > m->mask + 1) {
        tk_pairmap big = {0};
        hft_status st = tk_pairmap_init(&big, (m->mask + 1));
        if (st != HFT_OK) return st;
        for (size_t i = 0; i <= m->mask; i++)
            if (m->keys[i] != UINT64_MAX)
                tk_pairmap_put(&big, (uint32_t)(m->keys[i] >> 32), (uint32_t)m->keys[i], m->vals[i][0],
                               m->vals[i][1]);
        tk_pairmap_free(m);
        *m = big;
    }
    uint64_t key = (uint64_t)a << 32 | b;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    size_t i = (size_t)(h >> 32) & m->mask;
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & m->mask;
    if (m->keys[i] == UINT64_MAX) m->n++;
    m->keys[i] = key;
    m->vals[i][0] = rank;
    m->vals[i][1] = id;
    return HFT_OK;
}

void tk_pairmap_free(tk_pairmap *m) {
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------- string lists */

hft_status tk_strs_push(tk_strs *l, const char *s, size_t n) {
    hft_status st = tk_grow((void **)&l->buf, &l->cap, l->len + n + 1, 1);
    if (st == HFT_OK) st = TK_GROW(l->item, l->item_cap, l->n + 1);
    if (st != HFT_OK) return st;
    memmove(l->buf + l->len, s, n);
    l->item[l->n][0] = l->len;
    l->item[l->n][1] = n;
    l->len += n;
    l->buf[l->len] = '\0';
    l->n++;
    return HFT_OK;
}

void tk_strs_free(tk_strs *l) {
    free(l->buf);
    free(l->item);
    memset(l, 0, sizeof *l);
}
