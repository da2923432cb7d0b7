/* Text datasets: plain text, JSONL, CSV and TSV read a record at a time, each record checked (UTF-8,
 * fields, labels) and tokenized for its task into the builder's streams, one document at a time with one
 * reused encoding, so an input larger than memory is never held whole. A bad record is an error naming
 * the file and line, or, with skip_bad_rows, skipped and counted. The rules (documents, prompt/completion
 * masks, the chat template, classification truncation) are in data/README.md. */
#include "data/dataset_internal.h"

#include <dirent.h>

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { F_TEXT, F_PAIR, F_PROMPT, F_COMPLETION, F_MESSAGES, F_LABEL, F_COUNT };

typedef struct load_state {
    const hft_data_spec *spec;
    const char *path; /* the file being read (one of a folder's, for plain text) */
    const hft_tokenizer *tok;
    ds_builder *b;
    hft_dataset *ds;
    hft_special_tokens sp;
    const char *field[F_COUNT]; /* field names, defaults applied */
    int64_t num_labels;         /* 0: any label >= 0 */
    int64_t n_names;
    hft_encoding enc, enc2;
    char *text; /* concatenation buffer (a paragraph, prompt + completion, a rendered chat) */
    size_t text_len, text_cap;
    int32_t *lab, *ids, *types; /* per-token scratch */
    int64_t lab_cap;
    char msg[640]; /* what is wrong with the current record */
    hft_chat_template *chat_template; /* the tokenizer's, parsed at the first conversation */
} load_state;

/* A row error: the message is kept for the caller, who adds file and line and skips or fails. */
#define ROW_ERROR HFT_EFORMAT
static hft_status row_fail(load_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static hft_status row_fail(load_state *st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof st->msg, fmt, ap);
    va_end(ap);
    return ROW_ERROR;
}

static hft_status text_reserve(load_state *st, size_t n) {
    if (n + 1 <= st->text_cap) return HFT_OK;
    size_t cap = st->text_cap ? st->text_cap : 4096;
    while (cap < n + 1) cap *= 2;
    char *p = realloc(st->text, cap);
    if (!p) return hft_error(HFT_ENOMEM, "out of memory");
    st->text = p;
    st->text_cap = cap;
    return HFT_OK;
}

static hft_status text_append(load_state *st, const char *s, size_t n) {
    HFT_TRY(text_reserve(st, st->text_len + n));
    memcpy(st->text + st->text_len, s, n);
    st->text_len += n;
    st->text[st->text_len] = '\0';
    return HFT_OK;
}

static hft_status scratch_reserve(load_state *st, int64_t n) {
    if (n <= st->lab_cap) return HFT_OK;
    int64_t cap = st->lab_cap ? st->lab_cap : 1024;
    while (cap < n) cap *= 2;
    int32_t *a = realloc(st->lab, sizeof *a * (size_t)cap);
    if (a) st->lab = a;
    int32_t *b = realloc(st->ids, sizeof *b * (size_t)cap);
    if (b) st->ids = b;
    int32_t *c = realloc(st->types, sizeof *c * (size_t)cap);
    if (c) st->types = c;
    if (!a || !b || !c) return hft_error(HFT_ENOMEM, "out of memory");
    st->lab_cap = cap;
    return HFT_OK;
}

static hft_status encode(load_state *st, const char *s, size_t n, const char *pair, size_t pn, bool specials,
                         hft_encoding *e) {
    hft_status rc = hft_tokenizer_encode(st->tok, s, n, pair, pn, specials, e);
    if (rc == HFT_ENOMEM) return rc;
    if (rc != HFT_OK) return row_fail(st, "tokenizer: %s", hft_error_message());
    return HFT_OK;
}

static bool is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isspace((unsigned char)s[i])) return false;
    return true;
}

/* EOS after a document, unless the post-processor already put one there. */
static bool wants_eos(const load_state *st, const hft_encoding *e) {
    return st->sp.eos >= 0 && (e->n == 0 || e->ids[e->n - 1] != st->sp.eos);
}

/* ---------------------------------------------------------------- tasks */

/* Causal LM: the document with the tokenizer's special tokens (BOS for Llama-style tokenizers), then EOS. */
static hft_status task_causal(load_state *st, const char *s, size_t n) {
    if (is_blank(s, n)) return HFT_OK;
    HFT_TRY(encode(st, s, n, NULL, 0, true, &st->enc));
    HFT_TRY(ds_builder_append(st->b, st->enc.ids, NULL, NULL, st->enc.n));
    if (wants_eos(st, &st->enc)) HFT_TRY(ds_builder_append(st->b, &st->sp.eos, NULL, NULL, 1));
    return ds_builder_end_doc(st->b, 0, 0);
}

/* Prompt/completion as TRL's SFTTrainer tokenizes it: ids = encode(prompt + completion), the first
 * len(encode(prompt)) of them (both with special tokens) carry no loss, then EOS (with loss). */
static hft_status task_prompt_completion(load_state *st, const char *p, size_t pn, const char *c, size_t cn) {
    st->text_len = 0;
    HFT_TRY(text_append(st, p, pn));
    HFT_TRY(text_append(st, c, cn));
    HFT_TRY(encode(st, p, pn, NULL, 0, true, &st->enc2));
    HFT_TRY(encode(st, st->text, st->text_len, NULL, 0, true, &st->enc));
    int64_t n = st->enc.n, np = st->enc2.n < n ? st->enc2.n : n;
    HFT_TRY(scratch_reserve(st, n + 1));
    for (int64_t i = 0; i < n; i++) st->lab[i] = i < np ? -100 : st->enc.ids[i];
    if (wants_eos(st, &st->enc)) {
        memcpy(st->ids, st->enc.ids, sizeof *st->ids * (size_t)n);
        st->ids[n] = st->lab[n] = st->sp.eos;
        HFT_TRY(ds_builder_append(st->b, st->ids, st->lab, NULL, n + 1));
    } else {
        HFT_TRY(ds_builder_append(st->b, st->enc.ids, st->lab, NULL, n));
    }
    return ds_builder_end_doc(st->b, 0, 0);
}

/* A rendered conversation: the text and the byte ranges that carry loss. */
typedef struct chat_text {
    size_t (*span)[2];
    int n_span, cap;
    bool ends_with_assistant;
} chat_text;

static hft_status add_span(chat_text *out, size_t begin, size_t end) {
    if (out->n_span == out->cap) {
        int cap = out->cap ? out->cap * 2 : 8;
        void *p = realloc(out->span, sizeof *out->span * (size_t)cap);
        if (!p) return hft_error(HFT_ENOMEM, "out of memory");
        out->span = p;
        out->cap = cap;
    }
    out->span[out->n_span][0] = begin;
    out->span[out->n_span][1] = end;
    out->n_span++;
    return HFT_OK;
}

/* Every message an object with string role and content. */
static hft_status check_messages(load_state *st, const cJSON *messages) {
    int i = 0;
    for (const cJSON *m = messages->child; m; m = m->next, i++) {
        if (!cJSON_IsObject(m))
            return row_fail(st, "%s[%d] is not an object {\"role\", \"content\"}", st->field[F_MESSAGES], i);
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "role")))
            return row_fail(st, "%s[%d]: \"role\" missing or not a string", st->field[F_MESSAGES], i);
        if (!cJSON_IsString(content))
            return row_fail(st, "%s[%d]: \"content\" missing or not a string%s", st->field[F_MESSAGES], i,
                            cJSON_IsArray(content) ? " (content parts are not supported)" : "");
    }
    return i == 0 ? row_fail(st, "%s is empty", st->field[F_MESSAGES]) : HFT_OK;
}

/* The tokenizer's chat_template: the conversation rendered as apply_chat_template renders it. An assistant
 * message's loss covers its content where it stands in the rendered text — found in order in the text's own
 * bytes, so a template that trims or moves content is followed — and the end-of-sequence token right after
 * it, which teaches the model to stop. */
static hft_status render_template(load_state *st, const cJSON *messages, chat_text *out) {
    if (!st->chat_template) {
        char name[600];
        snprintf(name, sizeof name, "%s: the tokenizer's chat_template", st->path);
        HFT_TRY(hft_chat_template_parse(hft_tokenizer_chat_template(st->tok), name, &st->chat_template));
    }
    HFT_TRY(check_messages(st, messages));
    const char *bos = st->sp.bos >= 0 ? hft_tokenizer_id_to_token(st->tok, st->sp.bos) : NULL;
    const char *eos = st->sp.eos >= 0 ? hft_tokenizer_id_to_token(st->tok, st->sp.eos) : NULL;
    char *json = cJSON_PrintUnformatted(messages), *text = NULL;
    hft_status rc = json ? hft_chat_template_render(st->chat_template, json, bos, eos, false, &text)
                         : hft_error(HFT_ENOMEM, "out of memory");
    free(json);
    if (rc != HFT_OK) return rc == HFT_EINVAL ? row_fail(st, "%s", hft_error_message()) : rc;
    st->text_len = 0;
    out->n_span = 0;
    rc = text_append(st, text, strlen(text));
    free(text);
    HFT_TRY(rc);
    size_t cursor = 0, eos_len = eos ? strlen(eos) : 0;
    int i = 0;
    for (const cJSON *m = messages->child; m; m = m->next, i++) {
        const char *c = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        size_t len = strlen(c);
        const char *at = len ? strstr(st->text + cursor, c) : NULL;
        if (!at && len) { /* a template that trims content ({{ content | trim }}) */
            while (len && isspace((unsigned char)*c)) c++, len--;
            while (len && isspace((unsigned char)c[len - 1])) len--;
            char *t = strndup(c, len);
            at = t && len ? strstr(st->text + cursor, t) : NULL;
            free(t);
        }
        if (!at) {
            if (!len) continue; /* an empty message has nothing to find */
            return row_fail(st, "%s[%d]: the chat template does not render this content as given, so its loss span "
                            "cannot be found", st->field[F_MESSAGES], i);
        }
        size_t begin = (size_t)(at - st->text), end = begin + len;
        if (eos_len && strncmp(st->text + end, eos, eos_len) == 0) end += eos_len;
        if (strcmp(cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring, "assistant") == 0)
            HFT_TRY(add_span(out, begin, end));
        cursor = end;
    }
    out->ends_with_assistant = false; /* the template writes its own ending */
    size_t bad = ds_utf8_invalid_at(st->text, st->text_len);
    if (bad < st->text_len) return row_fail(st, "%s: invalid UTF-8", st->field[F_MESSAGES]);
    return HFT_OK;
}

/* The built-in template, for tokenizers without one: "<|role|>\n" + content + "\n" per message; loss on each
 * assistant content and its newline. */
static hft_status render_builtin(load_state *st, const cJSON *messages, chat_text *out) {
    HFT_TRY(check_messages(st, messages));
    st->text_len = 0;
    out->n_span = 0;
    out->ends_with_assistant = false;
    for (const cJSON *m = messages->child; m; m = m->next) {
        const char *role = cJSON_GetObjectItemCaseSensitive(m, "role")->valuestring;
        const char *content = cJSON_GetObjectItemCaseSensitive(m, "content")->valuestring;
        bool assistant = strcmp(role, "assistant") == 0;
        HFT_TRY(text_append(st, "<|", 2));
        HFT_TRY(text_append(st, role, strlen(role)));
        HFT_TRY(text_append(st, "|>\n", 3));
        size_t begin = st->text_len;
        HFT_TRY(text_append(st, content, strlen(content)));
        HFT_TRY(text_append(st, "\n", 1));
        if (assistant) HFT_TRY(add_span(out, begin, st->text_len));
        out->ends_with_assistant = assistant;
    }
    size_t bad = ds_utf8_invalid_at(st->text, st->text_len);
    if (bad < st->text_len) return row_fail(st, "%s: invalid UTF-8", st->field[F_MESSAGES]);
    return HFT_OK;
}

static bool in_spans(const chat_text *c, size_t pos) {
    int lo = 0, hi = c->n_span;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (c->span[mid][1] <= pos)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < c->n_span && c->span[lo][0] <= pos;
}

/* Chat: the rendered conversation encoded once (with the tokenizer's special tokens, which the built-in
 * template does not write); a token has loss when it starts inside an assistant range. Tokenizers that do
 * not track offsets get the pieces encoded one by one. EOS ends the conversation, with loss when the last
 * message is the assistant's. */
static hft_status task_chat(load_state *st, const cJSON *messages, chat_text *chat) {
    /* with the tokenizer's template, the rendered text holds the special tokens: no second BOS */
    bool templated = hft_tokenizer_chat_template(st->tok) != NULL;
    HFT_TRY(templated ? render_template(st, messages, chat) : render_builtin(st, messages, chat));
    HFT_TRY(encode(st, st->text, st->text_len, NULL, 0, !templated, &st->enc));
    int64_t n = 0;
    if (st->enc.offsets) {
        n = st->enc.n;
        HFT_TRY(scratch_reserve(st, n + 1));
        for (int64_t i = 0; i < n; i++) {
            bool special = !templated && st->enc.special_mask && st->enc.special_mask[i];
            st->ids[i] = st->enc.ids[i];
            st->lab[i] = !special && in_spans(chat, (size_t)st->enc.offsets[i][0]) ? st->enc.ids[i] : -100;
        }
    } else {
        /* Pieces between range boundaries, each encoded without special tokens. */
        size_t pos = 0;
        for (int s = 0; s <= chat->n_span; s++) {
            size_t cut[2] = {s < chat->n_span ? chat->span[s][0] : st->text_len,
                             s < chat->n_span ? chat->span[s][1] : st->text_len};
            for (int k = 0; k < 2; k++) {
                if (cut[k] <= pos) continue;
                HFT_TRY(encode(st, st->text + pos, cut[k] - pos, NULL, 0, false, &st->enc2));
                HFT_TRY(scratch_reserve(st, n + st->enc2.n + 1));
                for (int64_t i = 0; i < st->enc2.n; i++) {
                    st->ids[n + i] = st->enc2.ids[i];
                    st->lab[n + i] = k == 1 ? st->enc2.ids[i] : -100;
                }
                n += st->enc2.n;
                pos = cut[k];
            }
        }
    }
    HFT_TRY(scratch_reserve(st, n + 1));
    if (!templated && st->sp.eos >= 0 && (n == 0 || st->ids[n - 1] != st->sp.eos)) {
        st->ids[n] = st->sp.eos;
        st->lab[n] = chat->ends_with_assistant ? st->sp.eos : -100;
        n++;
    }
    HFT_TRY(ds_builder_append(st->b, st->ids, st->lab, NULL, n));
    return ds_builder_end_doc(st->b, 0, 0);
}

/* Truncates a classification encoding to max_length as transformers' truncation=True (longest_first) does:
 * the special tokens stay, the content of the longer text loses tokens from its end first. The pair's first
 * text is the first n_a non-special tokens. */
static hft_status truncate_longest_first(load_state *st, const hft_encoding *e, int64_t n_a, int64_t max_len,
                                         int64_t *out_n) {
    int64_t n_special = 0;
    for (int64_t i = 0; i < e->n; i++) n_special += e->special_mask[i] != 0;
    int64_t budget = max_len - n_special;
    if (budget < 0)
        return row_fail(st, "max_length %lld is shorter than the %lld special tokens", (long long)max_len,
                        (long long)n_special);
    int64_t content = e->n - n_special;
    if (n_a < 0 || n_a > content) n_a = content; /* a single text */
    int64_t n1 = n_a, n2 = content - n_a;
    /* tokenizers' truncate_encodings (longest_first): with n1 <= n2, n1 stays and n2 gets the rest, unless
     * both exceed half, then each gets half (the second text the odd token). */
    bool swap = n1 > n2;
    if (swap) {
        int64_t t = n1;
        n1 = n2;
        n2 = t;
    }
    n2 = n1 > budget ? n1 : (n1 > budget - n1 ? n1 : budget - n1);
    if (n1 + n2 > budget) {
        n1 = budget / 2;
        n2 = n1 + budget % 2;
    }
    if (swap) {
        int64_t t = n1;
        n1 = n2;
        n2 = t;
    }
    int64_t k = 0, seen = 0;
    for (int64_t i = 0; i < e->n; i++) {
        bool keep = true;
        if (!e->special_mask[i]) {
            keep = seen < n_a ? seen < n1 : seen - n_a < n2;
            seen++;
        }
        if (!keep) continue;
        st->ids[k] = e->ids[i];
        st->types[k] = e->type_ids ? e->type_ids[i] : 0;
        k++;
    }
    *out_n = k;
    return HFT_OK;
}

static hft_status task_classify(load_state *st, const char *s, size_t n, const char *pair, size_t pn,
                                int64_t label, float value) {
    HFT_TRY(encode(st, s, n, pair, pn, true, &st->enc));
    const hft_encoding *e = &st->enc;
    int64_t max_len = st->spec->max_length, k = e->n;
    HFT_TRY(scratch_reserve(st, e->n + 1));
    if (max_len > 0 && e->n > max_len && e->special_mask) {
        int64_t n_a = -1;
        if (pair) {
            HFT_TRY(encode(st, s, n, NULL, 0, false, &st->enc2));
            n_a = st->enc2.n;
        }
        HFT_TRY(truncate_longest_first(st, e, n_a, max_len, &k));
    } else {
        if (max_len > 0 && k > max_len) k = max_len;
        for (int64_t i = 0; i < k; i++) {
            st->ids[i] = e->ids[i];
            st->types[i] = e->type_ids ? e->type_ids[i] : 0;
        }
    }
    HFT_TRY(ds_builder_append(st->b, st->ids, NULL, st->types, k));
    return ds_builder_end_doc(st->b, label, value);
}

/* ---------------------------------------------------------------- records */

typedef enum { V_MISSING, V_STRING, V_NUMBER, V_BOOL, V_NULL, V_LIST, V_OBJECT } vkind;
typedef struct value {
    vkind kind;
    const char *s;
    size_t len;
    double num;
    const cJSON *json;
} value;

/* A record of either kind: a JSON object, or a CSV record with the header's column per field. */
typedef struct record {
    const cJSON *obj;
    const csv_reader *csv;
    const int *col;
} record;

static const char *kind_name(vkind k) {
    static const char *names[] = {"missing", "a string", "a number", "a boolean",
                                  "null",    "a list",   "an object"};
    return names[k];
}

static value get(const record *r, int f, const load_state *st) {
    value v = {V_MISSING, NULL, 0, 0, NULL};
    if (r->csv) {
        int c = r->col[f];
        if (c < 0) return v;
        v.kind = V_STRING;
        v.s = r->csv->rec + r->csv->start[c];
        v.len = r->csv->len[c];
        return v;
    }
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(r->obj, st->field[f]);
    v.json = j;
    if (!j) return v;
    if (cJSON_IsString(j)) {
        v.kind = V_STRING;
        v.s = j->valuestring;
        v.len = strlen(j->valuestring);
    } else if (cJSON_IsNumber(j)) {
        v.kind = V_NUMBER;
        v.num = j->valuedouble;
    } else if (cJSON_IsBool(j)) {
        v.kind = V_BOOL;
        v.num = cJSON_IsTrue(j);
    } else if (cJSON_IsNull(j)) {
        v.kind = V_NULL;
    } else {
        v.kind = cJSON_IsArray(j) ? V_LIST : V_OBJECT;
    }
    return v;
}

/* "missing field" with the fields the record does have, which is usually the answer. */
static hft_status missing(load_state *st, const record *r, int f) {
    char keys[200] = "";
    size_t k = 0;
    if (r->obj)
        for (const cJSON *c = r->obj->child; c && k + 4 < sizeof keys; c = c->next)
            k += (size_t)snprintf(keys + k, sizeof keys - k, "%s\"%s\"", k ? ", " : "",
                                  c->string ? c->string : "");
    if (k >= sizeof keys) strcpy(keys + sizeof keys - 5, "...");
    return row_fail(st, "missing field \"%s\" (the record has %s)", st->field[f], k ? keys : "no fields");
}

static hft_status need_string(load_state *st, const record *r, int f, const char **s, size_t *n) {
    value v = get(r, f, st);
    if (v.kind == V_MISSING) return missing(st, r, f);
    if (v.kind != V_STRING)
        return row_fail(st, "field \"%s\" is %s, expected a string", st->field[f], kind_name(v.kind));
    size_t bad = ds_utf8_invalid_at(v.s, v.len);
    if (bad < v.len)
        return row_fail(st, "field \"%s\": invalid UTF-8 at byte %zu (0x%02X)", st->field[f], bad,
                        (unsigned char)v.s[bad]);
    *s = v.s;
    *n = v.len;
    return HFT_OK;
}

static bool parse_int(const char *s, size_t n, int64_t *out) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n > 20) return false;
    char buf[24];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (*end || errno) return false;
    *out = v;
    return true;
}

static bool parse_float(const char *s, size_t n, double *out) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0 || n > 60) return false;
    char buf[64];
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    double v = strtod(buf, &end);
    if (*end || !isfinite(v)) return false;
    *out = v;
    return true;
}

/* A classification label: an integer (JSON number or text), a name from label_names, or for regression
 * (num_labels 1) a number. */
static hft_status parse_label(load_state *st, const record *r, int64_t *label, float *value_out) {
    const char *name = st->field[F_LABEL];
    value v = get(r, F_LABEL, st);
    if (v.kind == V_MISSING) return missing(st, r, F_LABEL);
    if (st->spec->num_labels == 1) {
        double x = v.num;
        if (v.kind == V_STRING && !parse_float(v.s, v.len, &x))
            return row_fail(st, "field \"%s\": \"%.*s\" is not a number (regression, num_labels 1)", name,
                            (int)(v.len > 40 ? 40 : v.len), v.s);
        if (v.kind != V_STRING && v.kind != V_NUMBER)
            return row_fail(st, "field \"%s\" is %s, expected a number (regression, num_labels 1)", name,
                            kind_name(v.kind));
        *value_out = (float)x;
        return HFT_OK;
    }
    int64_t id = -1;
    if (v.kind == V_NUMBER || v.kind == V_BOOL) {
        if (v.num != floor(v.num) || fabs(v.num) > 9007199254740992.0)
            return row_fail(st, "field \"%s\": %g is not an integer class", name, v.num);
        id = (int64_t)v.num;
    } else if (v.kind == V_STRING) {
        bool found = false;
        for (int64_t i = 0; i < st->n_names; i++)
            if (strlen(st->spec->label_names[i]) == v.len &&
                memcmp(st->spec->label_names[i], v.s, v.len) == 0) {
                id = i;
                found = true;
                break;
            }
        if (!found && !parse_int(v.s, v.len, &id)) {
            if (st->n_names == 0)
                return row_fail(
                    st, "field \"%s\": \"%.*s\" is not an integer class (and no label_names are given)", name,
                    (int)(v.len > 40 ? 40 : v.len), v.s);
            char names[200] = "";
            size_t k = 0;
            for (int64_t i = 0; i < st->n_names && k + 4 < sizeof names; i++)
                k += (size_t)snprintf(names + k, sizeof names - k, "%s%s", i ? ", " : "",
                                      st->spec->label_names[i]);
            return row_fail(st, "field \"%s\": \"%.*s\" is not one of the label names (%s)", name,
                            (int)(v.len > 40 ? 40 : v.len), v.s, names);
        }
    } else {
        return row_fail(st, "field \"%s\" is %s, expected an integer or a label name", name,
                        kind_name(v.kind));
    }
    if (id < 0 || (st->num_labels > 0 && id >= st->num_labels)) {
        if (st->num_labels > 0)
            return row_fail(st, "field \"%s\": label %lld is out of range [0, %lld)", name, (long long)id,
                            (long long)st->num_labels);
        return row_fail(st, "field \"%s\": label %lld is negative", name, (long long)id);
    }
    *label = id;
    return HFT_OK;
}

/* One record of JSONL or CSV, for the spec's task. */
static hft_status do_record(load_state *st, const record *r, chat_text *chat) {
    const char *a = NULL, *b = NULL;
    size_t an = 0, bn = 0;
    switch (st->spec->task) {
    case HFT_DATA_CAUSAL_LM:
        HFT_TRY(need_string(st, r, F_TEXT, &a, &an));
        return task_causal(st, a, an);
    case HFT_DATA_PROMPT_COMPLETION:
        HFT_TRY(need_string(st, r, F_PROMPT, &a, &an));
        HFT_TRY(need_string(st, r, F_COMPLETION, &b, &bn));
        return task_prompt_completion(st, a, an, b, bn);
    case HFT_DATA_CHAT: {
        value v = get(r, F_MESSAGES, st);
        if (v.kind == V_MISSING) return missing(st, r, F_MESSAGES);
        if (!cJSON_IsArray(v.json))
            return row_fail(st, "field \"%s\" is %s, expected a list of {\"role\", \"content\"}",
                            st->field[F_MESSAGES], kind_name(v.kind));
        return task_chat(st, v.json, chat);
    }
    case HFT_DATA_CLASSIFICATION: {
        int64_t label = 0;
        float val = 0;
        HFT_TRY(parse_label(st, r, &label, &val));
        HFT_TRY(need_string(st, r, F_TEXT, &a, &an));
        if (st->spec->text_pair_field) HFT_TRY(need_string(st, r, F_PAIR, &b, &bn));
        return task_classify(st, a, an, b, bn, label, val);
    }
    }
    return HFT_OK;
}

/* ---------------------------------------------------------------- formats */

/* A record's outcome: a row error becomes "file:line: what", then skipped (and counted) or returned. */
static hft_status settle(load_state *st, hft_status rc, int64_t line) {
    if (rc == HFT_OK) return HFT_OK;
    if (rc != ROW_ERROR) return rc;
    char where[1024];
    snprintf(where, sizeof where, "%s:%lld: %s", st->path, (long long)line, st->msg);
    if (!st->spec->skip_bad_rows) return hft_error(HFT_EFORMAT, "%s", where);
    ds_add_reason(st->ds, where);
    /* A half-built document is dropped with its record. */
    ds_builder *b = st->b;
    b->n = b->doc_off[b->n_docs];
    return HFT_OK;
}

static hft_status check_line_utf8(load_state *st, const char *s, size_t n) {
    size_t bad = ds_utf8_invalid_at(s, n);
    if (bad < n)
        return row_fail(st, "invalid UTF-8 at column %zu (byte 0x%02X)", bad + 1, (unsigned char)s[bad]);
    return HFT_OK;
}

/* Plain text. Packed: documents are paragraphs (lines up to a blank line, joined with "\n"); otherwise one
 * example per non-blank line. */
static hft_status load_plain(load_state *st) {
    line_reader lr;
    HFT_TRY(line_open(&lr, st->path));
    hft_status rc = HFT_OK;
    bool packed = st->spec->packing, bad_doc = false;
    int64_t doc_line = 0;
    st->text_len = 0;
    while (rc == HFT_OK && line_next(&lr)) {
        bool blank = is_blank(lr.buf, lr.len);
        if (!packed) {
            if (blank) continue;
            hft_status r = check_line_utf8(st, lr.buf, lr.len);
            if (r == HFT_OK) r = task_causal(st, lr.buf, lr.len);
            rc = settle(st, r, lr.line);
            continue;
        }
        if (blank) {
            if (st->text_len && !bad_doc) rc = settle(st, task_causal(st, st->text, st->text_len), doc_line);
            st->text_len = 0;
            bad_doc = false;
            continue;
        }
        if (bad_doc) continue; /* the rest of a skipped paragraph */
        if (st->text_len == 0) doc_line = lr.line;
        hft_status r = check_line_utf8(st, lr.buf, lr.len);
        if (r != HFT_OK) {
            rc = settle(st, r, lr.line);
            bad_doc = true;
            st->text_len = 0;
            continue;
        }
        if (st->text_len) rc = text_append(st, "\n", 1);
        if (rc == HFT_OK) rc = text_append(st, lr.buf, lr.len);
    }
    if (rc == HFT_OK && packed && st->text_len && !bad_doc)
        rc = settle(st, task_causal(st, st->text, st->text_len), doc_line);
    line_close(&lr);
    return rc;
}

static hft_status load_jsonl(load_state *st) {
    line_reader lr;
    HFT_TRY(line_open(&lr, st->path));
    chat_text chat = {0};
    hft_status rc = HFT_OK;
    while (rc == HFT_OK && line_next(&lr)) {
        if (is_blank(lr.buf, lr.len)) continue;
        hft_status r = check_line_utf8(st, lr.buf, lr.len);
        cJSON *obj = NULL;
        if (r == HFT_OK) {
            const char *end = NULL;
            obj = cJSON_ParseWithLengthOpts(lr.buf, lr.len, &end, false);
            if (!obj) {
                size_t col = end ? (size_t)(end - lr.buf) : 0;
                r = row_fail(st, "not valid JSON (error at column %zu, near \"%.24s\")", col + 1,
                             lr.buf + col);
            } else if (!cJSON_IsObject(obj)) {
                r = row_fail(st, "expected a JSON object, found %s",
                             cJSON_IsArray(obj)    ? "a list"
                             : cJSON_IsString(obj) ? "a string"
                                                   : "a scalar");
            } else {
                record rec = {.obj = obj};
                r = do_record(st, &rec, &chat);
            }
        }
        cJSON_Delete(obj);
        rc = settle(st, r, lr.line);
    }
    free(chat.span);
    line_close(&lr);
    return rc;
}

static hft_status load_csv(load_state *st, char delim) {
    csv_reader cr;
    HFT_TRY(csv_open(&cr, st->path, delim));
    hft_status rc = HFT_OK;
    int got = csv_next(&cr);
    if (got <= 0) {
        csv_close(&cr);
        if (got == -2) return hft_error(HFT_ENOMEM, "out of memory");
        return hft_error(HFT_EFORMAT, "%s: no header row", st->path);
    }
    /* Columns by header name; the first of duplicate names wins. */
    int col[F_COUNT];
    bool need[F_COUNT] = {0};
    switch (st->spec->task) {
    case HFT_DATA_CAUSAL_LM:
        need[F_TEXT] = true;
        break;
    case HFT_DATA_PROMPT_COMPLETION:
        need[F_PROMPT] = need[F_COMPLETION] = true;
        break;
    case HFT_DATA_CLASSIFICATION:
        need[F_TEXT] = need[F_LABEL] = true;
        need[F_PAIR] = st->spec->text_pair_field != NULL;
        break;
    default:
        break;
    }
    int n_cols = cr.nf;
    for (int f = 0; f < F_COUNT; f++) {
        col[f] = -1;
        for (int c = 0; c < n_cols && col[f] < 0; c++)
            if (st->field[f] && strcmp(cr.rec + cr.start[c], st->field[f]) == 0) col[f] = c;
        if (need[f] && col[f] < 0) {
            char cols[300] = "";
            size_t k = 0;
            for (int c = 0; c < n_cols && k + 4 < sizeof cols; c++)
                k += (size_t)snprintf(cols + k, sizeof cols - k, "%s\"%s\"", c ? ", " : "",
                                      cr.rec + cr.start[c]);
            rc = hft_error(HFT_EFORMAT, "%s:%lld: no column \"%s\" in the header (it has %s)", st->path,
                           (long long)cr.rec_line, st->field[f], cols);
            csv_close(&cr);
            return rc;
        }
    }
    record rec = {.csv = &cr, .col = col};
    while (rc == HFT_OK && (got = csv_next(&cr)) != 0) {
        if (got == -2) {
            rc = hft_error(HFT_ENOMEM, "out of memory");
            break;
        }
        if (got == -1) {
            rc = settle(st,
                        row_fail(st, "unterminated quoted field (the quote opened on line %lld)",
                                 (long long)cr.quote_line),
                        cr.rec_line);
            break;
        }
        hft_status r = HFT_OK;
        if (cr.nf != n_cols)
            r = row_fail(st, "%d field%s, expected %d as in the header", cr.nf, cr.nf == 1 ? "" : "s",
                         n_cols);
        else
            r = do_record(st, &rec, NULL);
        rc = settle(st, r, cr.rec_line);
    }
    csv_close(&cr);
    return rc;
}

static int by_name(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Plain text from a folder: its regular files (not links, not hidden), in name order. */
static hft_status load_plain_folder(load_state *st) {
    DIR *d = opendir(st->spec->path);
    if (!d) return hft_error(HFT_EIO, "%s: cannot open: %s", st->spec->path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    hft_status rc = HFT_OK;
    struct dirent *e;
    while (rc == HFT_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t len = strlen(st->spec->path) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        struct stat sb;
        if (!p) {
            rc = hft_error(HFT_ENOMEM, "out of memory");
            break;
        }
        snprintf(p, len, "%s/%s", st->spec->path, e->d_name);
        if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0) {
            free(p);
            continue;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **t = realloc(names, cap * sizeof *t);
            if (!t) {
                free(p);
                rc = hft_error(HFT_ENOMEM, "out of memory");
                break;
            }
            names = t;
        }
        names[n++] = p;
    }
    closedir(d);
    if (rc == HFT_OK && n == 0)
        rc = hft_error(HFT_EFORMAT, "%s: a folder with no text files", st->spec->path);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n && rc == HFT_OK; i++) {
        st->path = names[i];
        rc = load_plain(st);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

hft_status ds_load_text(const hft_data_spec *spec, const hft_tokenizer *tok, ds_builder *b, hft_dataset *ds) {
    struct stat sb;
    if (stat(spec->path, &sb) != 0)
        return hft_error(HFT_EIO, "%s: cannot open: %s", spec->path, strerror(errno));
    bool folder = S_ISDIR(sb.st_mode);
    if (folder && spec->format != HFT_DATA_TEXT)
        return hft_error(HFT_EIO, "%s: is a folder; only plain text may be given as a folder of files",
                         spec->path);
    if (!folder && sb.st_size == 0) return hft_error(HFT_EFORMAT, "%s: empty file", spec->path);
    load_state st = {
        .spec = spec, .path = spec->path, .tok = tok, .b = b, .ds = ds, .sp = hft_tokenizer_specials(tok)};
    const char *defaults[F_COUNT] = {"text", NULL, "prompt", "completion", "messages", "label"};
    const char *given[F_COUNT] = {spec->text_field,       spec->text_pair_field, spec->prompt_field,
                                  spec->completion_field, spec->messages_field,  spec->label_field};
    for (int f = 0; f < F_COUNT; f++) st.field[f] = given[f] ? given[f] : defaults[f];
    st.num_labels = spec->num_labels;
    if (spec->label_names)
        while (st.n_names < (spec->num_labels > 0 ? spec->num_labels : INT64_MAX) &&
               spec->label_names[st.n_names])
            st.n_names++;
    if (st.num_labels == 0) st.num_labels = st.n_names;
    hft_status rc;
    switch (spec->format) {
    case HFT_DATA_TEXT:
        rc = folder ? load_plain_folder(&st) : load_plain(&st);
        break;
    case HFT_DATA_JSONL:
        rc = load_jsonl(&st);
        break;
    case HFT_DATA_CSV:
        rc = load_csv(&st, ',');
        break;
    default:
        rc = load_csv(&st, '\t');
        break;
    }
    hft_encoding_free(&st.enc);
    hft_encoding_free(&st.enc2);
    free(st.text);
    hft_chat_template_free(st.chat_template);
    free(st.lab);
    free(st.ids);
    free(st.types);
    return rc;
}
