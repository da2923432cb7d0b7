/* safetensors files: a reader that memory-maps a file and validates its header as the reference
 * implementation (the safetensors Rust crate) does, and a writer that saves tensors atomically.
 * Model-level concerns (HF names, tied weights, sharded indexes) live above this file. */
#include "nn/nn.h"
#include "nn/safetensors_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this file assumes a little-endian host"
#endif

#define ST_MAX_HEADER 100000000ull /* the reference's MAX_HEADER_SIZE */
#define ST_MAX_DEPTH  127          /* serde_json (the reference's parser) refuses 128 nested levels */

/* ---------------------------------------------------------------- dtypes */

typedef struct st_dtype {
    const char *name;
    int bits; /* per element: the F6/F4 formats pack below a byte */
    int hft;  /* the hft_dtype it loads as, or -1 */
} st_dtype;

/* Every dtype safetensors 0.8 knows. */
static const st_dtype st_dtypes[] = {
    {"BOOL", 8, HFT_U8},  {"F4", 4, -1},          {"F6_E2M3", 6, -1},     {"F6_E3M2", 6, -1},
    {"U8", 8, HFT_U8},    {"I8", 8, -1},          {"F8_E5M2", 8, -1},     {"F8_E4M3", 8, -1},
    {"F8_E8M0", 8, -1},   {"F8_E4M3FNUZ", 8, -1}, {"F8_E5M2FNUZ", 8, -1}, {"I16", 16, -1},
    {"U16", 16, -1},      {"F16", 16, HFT_F16},   {"BF16", 16, HFT_BF16}, {"I32", 32, HFT_I32},
    {"U32", 32, -1},      {"F32", 32, HFT_F32},   {"C64", 64, -1},        {"F64", 64, HFT_F64},
    {"I64", 64, HFT_I64}, {"U64", 64, -1},
};
#define ST_N_DTYPES ((int)(sizeof st_dtypes / sizeof st_dtypes[0]))

static const st_dtype *st_dtype_find(const char *name) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
    return NULL;
}

/* ---------------------------------------------------------------- strict JSON */

/* Offset of the first byte that is not valid UTF-8 under Rust's str::from_utf8 rules (no overlong
 * forms, no surrogates, nothing past U+10FFFF), or n when all of it is valid. */
size_t st_utf8_invalid_at(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

/* A number token. cJSON keeps only a double, which cannot tell 1 from 1.0 nor hold every u64, so
 * the lexer keeps the exact value; serde (the reference) accepts only integer literals as usize. */
typedef struct json_number {
    uint64_t value; /* exact when `integer` */
    size_t at, len; /* the token in the header, for messages */
    bool integer;   /* no fraction, no exponent, no sign, fits in u64 */
} json_number;

typedef struct json_numbers {
    json_number *v;
    size_t n, cap;
} json_numbers;

static bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* The 4 hex digits of a \u escape at s[i..i+4), or -1. */
static long hex4(const char *s, size_t n, size_t i) {
    if (n - i < 4) return -1;
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_value(s[i + (size_t)k]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static hft_status lex_fail(const char *path, size_t at, const char *why) {
    return hft_error(HFT_EFORMAT, "%s: header is not valid JSON: %s at byte %zu of the header", path, why,
                     at);
}

/* A string token starting at s[*i] == '"'. */
static hft_status lex_string(const char *path, const char *s, size_t n, size_t *i) {
    size_t start = *i, p = *i + 1;
    for (;;) {
        if (p >= n) return lex_fail(path, start, "unterminated string");
        unsigned char c = (unsigned char)s[p];
        if (c == '"') break;
        if (c < 0x20) return lex_fail(path, p, "control character in a string");
        if (c != '\\') {
            p++;
            continue;
        }
        if (++p >= n) return lex_fail(path, start, "unterminated string");
        if (strchr("\"\\/bfnrt", s[p]) && s[p]) {
            p++;
            continue;
        }
        if (s[p] != 'u') return lex_fail(path, p - 1, "invalid escape");
        long cp = hex4(s, n, p + 1);
        if (cp < 0) return lex_fail(path, p - 1, "invalid \\u escape");
        p += 5;
        if (cp == 0)
            return hft_error(HFT_EUNSUPPORTED,
                             "%s: header holds a string with \\u0000 at byte %zu of the header; "
                             "hft does not support NUL characters in names or metadata",
                             path, p - 6);
        if (cp >= 0xDC00 && cp <= 0xDFFF) return lex_fail(path, p - 6, "lone surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = n - p >= 6 && s[p] == '\\' && s[p + 1] == 'u' ? hex4(s, n, p + 2) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) return lex_fail(path, p - 6, "lone surrogate in a \\u escape");
            p += 6;
        }
    }
    *i = p + 1;
    return HFT_OK;
}

static hft_status lex_number(const char *path, const char *s, size_t n, size_t *i, json_numbers *out) {
    size_t start = *i, p = *i;
    bool neg = s[p] == '-';
    if (neg) p++;
    if (p >= n || !is_digit(s[p])) return lex_fail(path, start, "invalid number");
    if (s[p] == '0') {
        p++;
        if (p < n && is_digit(s[p])) return lex_fail(path, start, "invalid number (leading zero)");
    } else {
        while (p < n && is_digit(s[p])) p++;
    }
    bool integer = !neg;
    if (p < n && s[p] == '.') {
        integer = false;
        if (++p >= n || !is_digit(s[p])) return lex_fail(path, start, "invalid number");
        while (p < n && is_digit(s[p])) p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        integer = false;
        if (++p < n && (s[p] == '+' || s[p] == '-')) p++;
        if (p >= n || !is_digit(s[p])) return lex_fail(path, start, "invalid number");
        while (p < n && is_digit(s[p])) p++;
    }
    json_number num = {0, start, p - start, integer};
    if (integer)
        for (size_t k = start; k < p && num.integer; k++)
            num.integer = !__builtin_mul_overflow(num.value, 10, &num.value) &&
                          !__builtin_add_overflow(num.value, (uint64_t)(s[k] - '0'), &num.value);
    /* strtod needs a terminated copy: the byte after the header may be a digit of the data */
    char small[64], *text = p - start < sizeof small ? small : malloc(p - start + 1);
    if (!text) return hft_error(HFT_ENOMEM, "%s: out of memory reading the header", path);
    memcpy(text, s + start, p - start);
    text[p - start] = '\0';
    double approx = strtod(text, NULL);
    if (text != small) free(text);
    if (approx == HUGE_VAL || approx == -HUGE_VAL) return lex_fail(path, start, "number out of range");
    if (out->n == out->cap) {
        size_t cap = out->cap ? out->cap * 2 : 64;
        json_number *v = realloc(out->v, cap * sizeof *v);
        if (!v) return hft_error(HFT_ENOMEM, "%s: out of memory reading the header", path);
        out->v = v;
        out->cap = cap;
    }
    out->v[out->n++] = num;
    *i = p;
    return HFT_OK;
}

/* Refuses what cJSON lets through but serde_json refuses: the token grammar of RFC 8259 (numbers,
 * escapes, surrogate pairs, control characters, whitespace), numbers beyond the f64 range and nesting
 * deeper than serde's limit. The structure itself is left to cJSON. Records every number token in
 * document order. */
static hft_status json_lex(const char *path, const char *s, size_t n, json_numbers *out) {
    int depth = 0;
    size_t i = 0;
    while (i < n) {
        char c = s[i];
        switch (c) {
        case ' ':
        case '\t':
        case '\n':
        case '\r':
        case ':':
        case ',':
            i++;
            break;
        case '{':
        case '[':
            if (++depth > ST_MAX_DEPTH) return lex_fail(path, i, "nesting deeper than 127 levels");
            i++;
            break;
        case '}':
        case ']':
            depth--;
            i++;
            break;
        case '"':
            HFT_TRY(lex_string(path, s, n, &i));
            break;
        case 't':
        case 'f':
        case 'n': {
            const char *word = c == 't' ? "true" : c == 'f' ? "false" : "null";
            size_t len = strlen(word);
            if (n - i < len || memcmp(s + i, word, len) != 0)
                return lex_fail(path, i, "unexpected character");
            i += len;
            break;
        }
        default:
            if (c == '-' || is_digit(c)) {
                HFT_TRY(lex_number(path, s, n, &i, out));
                break;
            }
            return lex_fail(path, i, "unexpected character");
        }
    }
    return HFT_OK;
}

/* Gives each number node the index of its token (cJSON parses in document order), in valueint,
 * which nothing else reads here. */
static void number_tokens(cJSON *item, int *k) {
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) item->valueint = (*k)++;
        number_tokens(item->child, k);
    }
}

static const char *json_type(const cJSON *j) {
    if (cJSON_IsObject(j)) return "an object";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    return "null";
}

/* ---------------------------------------------------------------- reading */

struct hft_safetensors {
    char *path;
    const uint8_t *map;
    size_t size;
    const uint8_t *buffer; /* the data buffer, after the header */
    uint64_t buffer_size;
    cJSON *header;         /* entry names point into it */
    const cJSON *metadata; /* "__metadata__", or NULL */
    json_numbers numbers;
    int count;
    hft_st_entry *entries; /* in header order */
    int *by_name;          /* entry indices sorted by name */
};

/* What validation needs of an entry beyond hft_st_entry. */
typedef struct st_span {
    uint64_t begin, end; /* data_offsets */
    uint64_t bits;       /* prod(shape) x dtype bits, valid unless overflow */
    bool overflow;
    bool huge_dim; /* valid, but hft's shapes are int64 */
} st_span;

/* A shape dim or an offset: a non-negative integer that fits in u64. */
static bool json_u64(const hft_safetensors *f, const cJSON *j, uint64_t *v, char *found, size_t size) {
    if (!cJSON_IsNumber(j)) {
        snprintf(found, size, "%s", json_type(j));
        return false;
    }
    const json_number *num = &f->numbers.v[j->valueint];
    if (!num->integer) {
        const char *text = (const char *)f->map + 8;
        snprintf(found, size, "%.*s%s", (int)(num->len < 40 ? num->len : 40), text + num->at,
                 num->len > 40 ? "..." : "");
        return false;
    }
    *v = num->value;
    return true;
}

static const char *dtype_list(void) {
    static _Thread_local char list[256];
    if (!list[0])
        for (int i = 0; i < ST_N_DTYPES; i++) {
            size_t len = strlen(list);
            snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", st_dtypes[i].name);
        }
    return list;
}

static hft_status parse_entry(const hft_safetensors *f, const cJSON *j, hft_st_entry *e, st_span *sp) {
    const char *path = f->path, *name = j->string;
    e->name = name;
    if (!cJSON_IsObject(j))
        return hft_error(
            HFT_EFORMAT,
            "%s: tensor '%s': entry is %s, expected an object with dtype, shape and data_offsets", path, name,
            json_type(j));
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *c = j->child; c; c = c->next) {
        const cJSON **slot = strcmp(c->string, "dtype") == 0          ? &dtype
                             : strcmp(c->string, "shape") == 0        ? &shape
                             : strcmp(c->string, "data_offsets") == 0 ? &offsets
                                                                      : NULL;
        if (!slot) continue; /* the reference ignores unknown fields */
        if (*slot)
            return hft_error(HFT_EFORMAT, "%s: tensor '%s': field '%s' appears twice", path, name, c->string);
        *slot = c;
    }
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
    if (missing) return hft_error(HFT_EFORMAT, "%s: tensor '%s': missing field '%s'", path, name, missing);

    if (!cJSON_IsString(dtype))
        return hft_error(HFT_EFORMAT, "%s: tensor '%s': dtype is %s, expected a string", path, name,
                         json_type(dtype));
    const st_dtype *dt = st_dtype_find(dtype->valuestring);
    if (!dt)
        return hft_error(HFT_EFORMAT, "%s: tensor '%s': unknown dtype \"%s\" (expected one of %s)", path,
                         name, dtype->valuestring, dtype_list());
    e->st_dtype = dt->name;
    e->dtype = dt->hft;

    char found[64];
    if (!cJSON_IsArray(shape))
        return hft_error(HFT_EFORMAT,
                         "%s: tensor '%s': shape is %s, expected an array of non-negative integers", path,
                         name, json_type(shape));
    uint64_t numel = 1;
    int ndim = 0;
    for (const cJSON *d = shape->child; d; d = d->next, ndim++) {
        uint64_t v;
        if (!json_u64(f, d, &v, found, sizeof found))
            return hft_error(HFT_EFORMAT, "%s: tensor '%s': shape[%d] is %s, expected a non-negative integer",
                             path, name, ndim, found);
        if (ndim < HFT_MAX_DIMS) e->shape[ndim] = (int64_t)v;
        sp->huge_dim |= v > INT64_MAX;
        sp->overflow |= __builtin_mul_overflow(numel, v, &numel);
    }
    e->ndim = ndim;
    sp->overflow |= __builtin_mul_overflow(numel, (uint64_t)dt->bits, &sp->bits);

    int n_off = cJSON_GetArraySize(offsets);
    if (!cJSON_IsArray(offsets) || n_off != 2) {
        if (cJSON_IsArray(offsets))
            return hft_error(HFT_EFORMAT,
                             "%s: tensor '%s': data_offsets has %d elements, expected [begin, end]", path,
                             name, n_off);
        return hft_error(HFT_EFORMAT, "%s: tensor '%s': data_offsets is %s, expected [begin, end]", path,
                         name, json_type(offsets));
    }
    uint64_t *ends[2] = {&sp->begin, &sp->end};
    const cJSON *o = offsets->child;
    for (int k = 0; k < 2; k++, o = o->next)
        if (!json_u64(f, o, ends[k], found, sizeof found))
            return hft_error(HFT_EFORMAT,
                             "%s: tensor '%s': data_offsets[%d] is %s, expected a non-negative integer", path,
                             name, k, found);
    return HFT_OK;
}

/* Comparators for glibc's qsort_r (the project builds with _GNU_SOURCE). */
static int by_offsets(const void *pa, const void *pb, void *spans) {
    int a = *(const int *)pa, b = *(const int *)pb;
    const st_span *s = spans;
    if (s[a].begin != s[b].begin) return s[a].begin < s[b].begin ? -1 : 1;
    if (s[a].end != s[b].end) return s[a].end < s[b].end ? -1 : 1;
    return (a > b) - (a < b); /* stable: header order */
}

static int by_name(const void *pa, const void *pb, void *entries) {
    const hft_st_entry *e = entries;
    return strcmp(e[*(const int *)pa].name, e[*(const int *)pb].name);
}

static void fmt_shape(const hft_st_entry *e, char *buf, size_t size) {
    size_t n = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < e->ndim && d < HFT_MAX_DIMS && n < size; d++)
        n += (size_t)snprintf(buf + n, size - n, d ? ", %llu" : "%llu", (unsigned long long)e->shape[d]);
    if (n < size) snprintf(buf + n, size - n, e->ndim > HFT_MAX_DIMS ? ", ...]" : "]");
}

/* The reference's Metadata::validate, in offset order: each tensor starts where the previous one ended
 * (the first at 0), holds exactly its shape's bytes, and the last ends where the file does. */
static hft_status validate_layout(const hft_safetensors *f, const int *order, const st_span *spans) {
    const char *path = f->path;
    uint64_t start = 0;
    for (int r = 0; r < f->count; r++) {
        const hft_st_entry *e = &f->entries[order[r]];
        const st_span *sp = &spans[order[r]];
        unsigned long long b = sp->begin, en = sp->end;
        if (b != start) {
            if (r == 0)
                return hft_error(
                    HFT_EFORMAT,
                    "%s: tensor '%s': the first tensor's data starts at byte %llu of the data buffer, "
                    "expected 0: a gap",
                    path, e->name, b);
            const char *prev = f->entries[order[r - 1]].name;
            if (b > start)
                return hft_error(
                    HFT_EFORMAT,
                    "%s: tensor '%s': data starts at byte %llu, but the previous tensor '%s' ends at "
                    "byte %llu: a gap of %llu bytes",
                    path, e->name, b, prev, (unsigned long long)start, b - start);
            return hft_error(
                HFT_EFORMAT,
                "%s: tensor '%s': data starts at byte %llu, overlapping the previous tensor '%s', "
                "which ends at byte %llu",
                path, e->name, b, prev, (unsigned long long)start);
        }
        if (en < b)
            return hft_error(HFT_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                             path, e->name, b, en);
        start = en;
        char shp[160];
        fmt_shape(e, shp, sizeof shp);
        if (sp->overflow)
            return hft_error(HFT_EFORMAT, "%s: tensor '%s': the size of shape %s of %s overflows 64 bits",
                             path, e->name, shp, e->st_dtype);
        if (sp->bits % 8)
            return hft_error(HFT_EFORMAT,
                             "%s: tensor '%s': shape %s of %s is %llu bits, not a whole number of bytes",
                             path, e->name, shp, e->st_dtype, (unsigned long long)sp->bits);
        if (en - b != sp->bits / 8)
            return hft_error(
                HFT_EFORMAT,
                "%s: tensor '%s': data_offsets [%llu, %llu] hold %llu bytes, but shape %s of %s needs "
                "%llu",
                path, e->name, b, en, en - b, shp, e->st_dtype, (unsigned long long)(sp->bits / 8));
        if (en > f->buffer_size)
            return hft_error(
                HFT_EFORMAT,
                "%s: tensor '%s': data_offsets [%llu, %llu] run past the end of the file (the data "
                "buffer holds %llu bytes)",
                path, e->name, b, en, (unsigned long long)f->buffer_size);
    }
    if (start != f->buffer_size)
        return hft_error(
            HFT_EFORMAT,
            "%s: the tensors end at byte %llu of the data buffer, but it holds %llu bytes: the buffer "
            "is not fully covered",
            path, (unsigned long long)start, (unsigned long long)f->buffer_size);
    return HFT_OK;
}

/* The header as JSON, strictly: what serde_json would refuse is refused. */
static hft_status parse_json(hft_safetensors *f, const char *text, size_t n) {
    const char *path = f->path;
    size_t bad = st_utf8_invalid_at((const uint8_t *)text, n);
    if (bad < n)
        return hft_error(HFT_EFORMAT, "%s: header is not valid UTF-8 (byte %zu of the header)", path, bad);
    HFT_TRY(json_lex(path, text, n, &f->numbers));
    size_t first = 0;
    while (first < n && text[first] && strchr(" \t\n\r", text[first])) first++;
    if (first == n) return hft_error(HFT_EFORMAT, "%s: header is not valid JSON: it is empty", path);
    const char *end = NULL;
    f->header = cJSON_ParseWithLengthOpts(text, n, &end, false);
    if (!f->header) {
        if (!end) end = text;
        return hft_error(HFT_EFORMAT,
                         "%s: header is not valid JSON: unexpected content at byte %zu of the header", path,
                         (size_t)(end - text));
    }
    for (const char *p = end; p < text + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return hft_error(HFT_EFORMAT,
                             "%s: header is not valid JSON: trailing characters at byte %zu of the header",
                             path, (size_t)(p - text));
    int k = 0;
    number_tokens(f->header, &k);
    if ((size_t)k != f->numbers.n) /* the lexer and cJSON disagree: refuse rather than guess */
        return hft_error(HFT_EFORMAT, "%s: header is not valid JSON: malformed numbers", path);
    if (!cJSON_IsObject(f->header))
        return hft_error(HFT_EFORMAT, "%s: header is %s, expected a JSON object", path, json_type(f->header));
    return HFT_OK;
}

static hft_status parse_metadata(hft_safetensors *f, const cJSON *c) {
    if (f->metadata)
        return hft_error(HFT_EFORMAT, "%s: \"__metadata__\" appears twice in the header", f->path);
    if (cJSON_IsNull(c)) return HFT_OK;
    if (!cJSON_IsObject(c))
        return hft_error(HFT_EFORMAT, "%s: \"__metadata__\" is %s, expected an object of strings", f->path,
                         json_type(c));
    for (const cJSON *m = c->child; m; m = m->next)
        if (!cJSON_IsString(m))
            return hft_error(HFT_EFORMAT, "%s: \"__metadata__\" value of '%s' is %s, expected a string",
                             f->path, m->string, json_type(m));
    f->metadata = c;
    return HFT_OK;
}

static hft_status parse_header(hft_safetensors *f) {
    const char *path = f->path;
    if (f->size < 8)
        return hft_error(HFT_EFORMAT, "%s: file is %zu bytes, too short for the 8-byte header length", path,
                         f->size);
    uint64_t n;
    memcpy(&n, f->map, 8);
    if (n > ST_MAX_HEADER)
        return hft_error(HFT_EFORMAT, "%s: header length %llu is larger than the limit of %llu bytes", path,
                         (unsigned long long)n, ST_MAX_HEADER);
    if (8 + n > f->size)
        return hft_error(HFT_EFORMAT, "%s: header length %llu runs past the end of the file (%zu bytes)",
                         path, (unsigned long long)n, f->size);
    f->buffer = f->map + 8 + n;
    f->buffer_size = f->size - 8 - n;
    HFT_TRY(parse_json(f, (const char *)f->map + 8, (size_t)n));

    int count = 0;
    for (const cJSON *c = f->header->child; c; c = c->next)
        if (strcmp(c->string, "__metadata__") == 0) {
            HFT_TRY(parse_metadata(f, c));
            if (!f->metadata) f->metadata = c; /* null: remember it was seen, for the duplicate check */
        } else {
            count++;
        }
    if (f->metadata && cJSON_IsNull(f->metadata)) f->metadata = NULL;

    size_t nc = count ? (size_t)count : 1;
    f->count = count;
    f->entries = calloc(nc, sizeof *f->entries);
    f->by_name = calloc(nc, sizeof *f->by_name);
    st_span *spans = calloc(nc, sizeof *spans);
    int *order = calloc(nc, sizeof *order);
    hft_status st = HFT_OK;
    if (!f->entries || !f->by_name || !spans || !order) {
        st = hft_error(HFT_ENOMEM, "%s: out of memory for %d tensor entries", path, count);
        goto done;
    }
    int i = 0;
    for (const cJSON *c = f->header->child; c; c = c->next) {
        if (strcmp(c->string, "__metadata__") == 0) continue;
        st = parse_entry(f, c, &f->entries[i], &spans[i]);
        if (st != HFT_OK) goto done;
        order[i] = f->by_name[i] = i;
        i++;
    }

    qsort_r(f->by_name, (size_t)count, sizeof *f->by_name, by_name, f->entries);
    for (int r = 1; r < count; r++)
        if (strcmp(f->entries[f->by_name[r]].name, f->entries[f->by_name[r - 1]].name) == 0) {
            st = hft_error(HFT_EFORMAT, "%s: tensor '%s' appears more than once in the header", path,
                           f->entries[f->by_name[r]].name);
            goto done;
        }
    qsort_r(order, (size_t)count, sizeof *order, by_offsets, spans);
    st = validate_layout(f, order, spans);
    if (st != HFT_OK) goto done;
    for (int r = 0; r < count; r++) {
        const hft_st_entry *e = &f->entries[order[r]];
        if (e->ndim > HFT_MAX_DIMS)
            st = hft_error(HFT_EUNSUPPORTED, "%s: tensor '%s' has %d dims; hft supports at most %d", path,
                           e->name, e->ndim, HFT_MAX_DIMS);
        else if (spans[order[r]].huge_dim)
            st =
                hft_error(HFT_EUNSUPPORTED,
                          "%s: tensor '%s' has a dim of 2^63 or more; hft's shapes are int64", path, e->name);
        if (st != HFT_OK) goto done;
    }

    for (int t = 0; t < count; t++) {
        f->entries[t].data = f->buffer + spans[t].begin;
        f->entries[t].nbytes = (size_t)(spans[t].end - spans[t].begin);
    }
done:
    free(spans);
    free(order);
    return st;
}

void hft_safetensors_close(hft_safetensors *f) {
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->size);
    cJSON_Delete(f->header);
    free(f->numbers.v);
    free(f->entries);
    free(f->by_name);
    free(f->path);
    free(f);
}

hft_status hft_safetensors_open(const char *path, hft_safetensors **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        hft_status st = hft_error(HFT_EIO, "%s: %s", path, errno ? strerror(errno) : "not a regular file");
        close(fd);
        return st;
    }
    hft_safetensors *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return hft_error(HFT_ENOMEM, "%s: out of memory", path);
    }
    f->size = (size_t)sb.st_size;
    if (f->size >= 8) { /* a shorter file is refused by parse_header, and mmap refuses length 0 */
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            hft_status st = hft_error(HFT_EIO, "%s: cannot map: %s", path, strerror(errno));
            close(fd);
            hft_safetensors_close(f);
            return st;
        }
        f->map = m;
    }
    close(fd);
    hft_status st = parse_header(f);
    if (st != HFT_OK) {
        hft_safetensors_close(f);
        return st;
    }
    *out = f;
    return HFT_OK;
}

const char *hft_safetensors_path(const hft_safetensors *f) {
    return f->path;
}

int hft_safetensors_count(const hft_safetensors *f) {
    return f->count;
}

const hft_st_entry *hft_safetensors_entry(const hft_safetensors *f, int index) {
    return index >= 0 && index < f->count ? &f->entries[index] : NULL;
}

const hft_st_entry *hft_safetensors_find(const hft_safetensors *f, const char *name) {
    int lo = 0, hi = f->count;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        int c = strcmp(f->entries[f->by_name[mid]].name, name);
        if (c == 0) return &f->entries[f->by_name[mid]];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *hft_safetensors_metadata(const hft_safetensors *f, const char *key) {
    const char *value = NULL;
    if (f->metadata) /* a repeated key: the last wins, as in the reference */
        for (const cJSON *m = f->metadata->child; m; m = m->next)
            if (strcmp(m->string, key) == 0) value = m->valuestring;
    return value;
}

void hft_safetensors_release(const hft_safetensors *f, const hft_st_entry *e) {
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t begin = (uintptr_t)e->data, end = begin + e->nbytes;
    uintptr_t b = (begin + (uintptr_t)page - 1) & ~((uintptr_t)page - 1), en = end & ~((uintptr_t)page - 1);
    (void)f;
    if (en > b) madvise((void *)b, en - b, MADV_DONTNEED); /* only whole pages of this entry */
}

hft_status hft_safetensors_load(const hft_safetensors *f, const char *name, hft_dtype dtype, bool zero_copy,
                                hft_tensor **out) {
    *out = NULL;
    const hft_st_entry *e = hft_safetensors_find(f, name);
    if (!e)
        return hft_error(HFT_EINVAL, "%s: no tensor named '%s' (the file holds %d)", f->path, name, f->count);
    if ((unsigned)dtype >= HFT_DTYPE_COUNT)
        return hft_error(HFT_EINVAL, "%s: tensor '%s': requested dtype %d is not an hft dtype", f->path, name,
                         (int)dtype);
    if (e->dtype < 0)
        return hft_error(HFT_EUNSUPPORTED,
                         "%s: tensor '%s' is %s, which hft cannot load (it reads F32, F64, BF16, "
                         "F16, I32, I64, U8 and BOOL)",
                         f->path, name, e->st_dtype);
    hft_dtype src = (hft_dtype)e->dtype;
    bool aligned = (uintptr_t)e->data % hft_dtype_size(src) == 0;
    hft_tensor *t;
    if (src == dtype) {
        t = zero_copy && aligned ? hft_tensor_wrap(dtype, e->ndim, e->shape, (void *)e->data)
                                 : hft_tensor_from_data(dtype, e->ndim, e->shape, e->data);
        if (!t) return hft_error_status();
        *out = t;
        return HFT_OK;
    }
    t = hft_tensor_new(dtype, e->ndim, e->shape);
    if (!t) return hft_error_status();
    int64_t numel = hft_tensor_numel(t);
    if (numel > 0) {
        void *from = (void *)e->data, *tmp = NULL;
        if (!aligned) { /* the copy kernel reads typed elements: give it an aligned copy */
            tmp = malloc(e->nbytes);
            if (!tmp) {
                hft_tensor_free(t);
                return hft_error(HFT_ENOMEM, "%s: tensor '%s': out of memory for %zu bytes", f->path, name,
                                 e->nbytes);
            }
            memcpy(tmp, e->data, e->nbytes);
            from = tmp;
        }
        hft_copy_args a = {.dst_dtype = dtype, .src_dtype = src};
        a.dst = (hft_kview){.data = hft_tensor_data(t), .ndim = 1, .shape = {numel}, .stride = {1}};
        a.src = (hft_kview){.data = from, .ndim = 1, .shape = {numel}, .stride = {1}};
        hft_kernels_for(HFT_CPU)->copy(&a);
        free(tmp);
    }
    *out = t;
    return HFT_OK;
}
