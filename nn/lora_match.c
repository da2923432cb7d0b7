/* The name matching PEFT's LoraConfig uses, on module paths like "model.layers.3.self_attn.q_proj":
 * Python regular expressions (target_modules as a string, rank_pattern and alpha_pattern keys) run on
 * POSIX extended regexes after a translation of the syntax they share, and the layer index rules of
 * layers_to_transform. */
#include "nn/lora_internal.h"

#include <ctype.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void put(sbuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t cap = (b->cap + k + 1) * 2;
        char *ns = realloc(b->s, cap);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

static void putc_(sbuf *b, char c) {
    put(b, (char[]){c, '\0'});
}

/* Python's `re` syntax → POSIX ERE, for patterns that are matched whole (fullmatch, or match with a
 * trailing $): there laziness does not change which names match, so `*?` reads as `*`. Constructs ERE
 * lacks (lookaround, backreferences, \b, possessive quantifiers) are refused with the reason in `why`. */
static char *translate(const char *py, char *why, size_t why_size) {
    sbuf b = {0};
    bool in_class = false;
    for (const char *p = py; *p; p++) {
        char c = *p;
        if (in_class) {
            if (c == ']') {
                in_class = false;
                putc_(&b, c);
            } else if (c == '\\') {
                char e = *++p;
                if (e == 'd')
                    put(&b, "0-9");
                else if (e == 'w')
                    put(&b, "A-Za-z0-9_");
                else if (e == 's')
                    put(&b, "[:space:]");
                else if (e && strchr(".*+?(){}|$/_,:", e))
                    putc_(&b, e);
                else {
                    snprintf(why, why_size, "'\\%c' inside [...] is not supported", e ? e : ' ');
                    free(b.s);
                    return NULL;
                }
            } else {
                putc_(&b, c);
            }
            continue;
        }
        switch (c) {
        case '[':
            in_class = true;
            putc_(&b, c);
            if (p[1] == '^') putc_(&b, *++p);
            if (p[1] == ']') putc_(&b, *++p); /* a leading ] is literal in both dialects */
            break;
        case '\\': {
            char e = *++p;
            if (e == 'd')
                put(&b, "[0-9]");
            else if (e == 'D')
                put(&b, "[^0-9]");
            else if (e == 'w')
                put(&b, "[A-Za-z0-9_]");
            else if (e == 'W')
                put(&b, "[^A-Za-z0-9_]");
            else if (e == 's')
                put(&b, "[[:space:]]");
            else if (e == 'S')
                put(&b, "[^[:space:]]");
            else if (e && strchr(".\\()[]{}*+?|^$", e)) {
                putc_(&b, '\\');
                putc_(&b, e);
            } else if (e && strchr("-_/,:", e))
                putc_(&b, e);
            else {
                snprintf(why, why_size, "'\\%c' is not supported", e ? e : ' ');
                free(b.s);
                return NULL;
            }
            break;
        }
        case '(':
            if (p[1] == '?') {
                if (p[2] == ':') {
                    p += 2;
                } else {
                    snprintf(why, why_size, "'(?%c' groups are not supported", p[2] ? p[2] : ' ');
                    free(b.s);
                    return NULL;
                }
            }
            putc_(&b, '(');
            break;
        case '*':
        case '+':
        case '?':
        case '}':
            putc_(&b, c);
            if (p[1] == '?')
                p++; /* lazy: the same set of full matches */
            else if (p[1] == '+') {
                snprintf(why, why_size, "possessive quantifiers are not supported");
                free(b.s);
                return NULL;
            }
            break;
        default:
            putc_(&b, c);
        }
    }
    if (in_class) {
        snprintf(why, why_size, "unterminated [...]");
        free(b.s);
        return NULL;
    }
    if (b.oom || !b.s) {
        free(b.s);
        return b.oom ? NULL : strdup("");
    }
    return b.s;
}

hft_status lora_regex_compile(const char *py, bool suffix, const char *where, lora_regex *out) {
    char why[96] = "";
    char *ere = translate(py, why, sizeof why);
    if (!ere) {
        if (!why[0]) return hft_error(HFT_ENOMEM, "out of memory");
        return hft_error(HFT_EUNSUPPORTED, "%s: the regular expression '%s': %s", where, py, why);
    }
    /* fullmatch: ^(p)$; PEFT's pattern-key match: re.match(r"(.*\.)?(p)$") */
    size_t n = strlen(ere) + 16;
    char *full = malloc(n);
    if (!full) {
        free(ere);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    snprintf(full, n, suffix ? "^(.*\\.)?(%s)$" : "^(%s)$", ere);
    free(ere);
    int rc = regcomp(&out->re, full, REG_EXTENDED | REG_NOSUB);
    free(full);
    if (rc != 0) {
        char msg[128];
        regerror(rc, &out->re, msg, sizeof msg);
        return hft_error(HFT_EFORMAT, "%s: the regular expression '%s' is not valid: %s", where, py, msg);
    }
    out->compiled = true;
    return HFT_OK;
}

bool lora_regex_match(const lora_regex *r, const char *s) {
    return r->compiled && regexec(&r->re, s, 0, NULL, 0) == 0;
}

void lora_regex_free(lora_regex *r) {
    if (r->compiled) regfree(&r->re);
    r->compiled = false;
}

bool lora_name_listed(const char *key, char *const *names, int n) {
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++) {
        size_t tl = strlen(names[i]);
        if (strcmp(key, names[i]) == 0) return true;
        if (kl > tl && key[kl - tl - 1] == '.' && strcmp(key + kl - tl, names[i]) == 0) return true;
    }
    return false;
}

static bool all_digits(const char *s, size_t n) {
    if (n == 0) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)s[i])) return false;
    return true;
}

/* PEFT's layer index: the first all-digit path segment that follows a segment named by one of `patterns`
 * (or, with none, any segment after the first) and is followed by another segment. -1 when none. */
int64_t lora_layer_index(const char *key, char *const *patterns, int n_patterns) {
    const char *seg[64];
    size_t len[64];
    int ns = 0;
    for (const char *p = key; ns < 64;) {
        const char *dot = strchr(p, '.');
        seg[ns] = p;
        len[ns++] = dot ? (size_t)(dot - p) : strlen(p);
        if (!dot) break;
        p = dot + 1;
    }
    if (n_patterns == 0) {
        for (int i = 2; i + 1 < ns; i++)
            if (all_digits(seg[i], len[i])) return strtoll(seg[i], NULL, 10);
        return -1;
    }
    for (int k = 0; k < n_patterns; k++) /* the first pattern that matches anywhere decides, as in PEFT */
        for (int i = 1; i + 1 < ns; i++)
            if (all_digits(seg[i], len[i]) && strlen(patterns[k]) == len[i - 1] &&
                strncmp(seg[i - 1], patterns[k], len[i - 1]) == 0)
                return strtoll(seg[i], NULL, 10);
    return -1;
}
