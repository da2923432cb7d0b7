/* Tokenizer tests: every case of every fixture in tests/fixtures/tokenizers (made by
 * make_tokenizer_fixtures.py from Hugging Face tokenizers) must give exactly HF's ids, type ids,
 * special-tokens mask, byte offsets and both decodes; the hand-written GPT-2 / Llama 3 split matchers must
 * match Oniguruma on the corpus and on random text; the byte tokenizer, the old layouts, threads, and the
 * errors a user can cause. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/data.h"
#include "data/tokenizer_internal.h"
#include "tests/test_util.h"

#define FIXTURES "tests/fixtures/tokenizers"

static cJSON *load_json(const char *path) {
    char *text = hft_read_text(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* ---------------------------------------------------------------- fixture cases */

typedef struct tally {
    long cases, failed, shown;
} tally;

static bool ints_equal(const int32_t *got, int64_t n, const cJSON *want) {
    if (cJSON_GetArraySize(want) != n) return false;
    int64_t i = 0;
    for (const cJSON *e = want->child; e; e = e->next, i++)
        if (got[i] != (int32_t)e->valuedouble) return false;
    return true;
}

static void print_ids(const char *what, const int32_t *ids, int64_t n) {
    fprintf(stderr, "    %s (%lld):", what, (long long)n);
    for (int64_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, n > 40 ? " ...\n" : "\n");
}

/* Checks one expected.json case; returns a short reason on failure, NULL when everything matches. */
static const char *check_case(const hft_tokenizer *t, const cJSON *c, const char *corpus, bool use_fast,
                              hft_encoding *e, const char **detail_name) {
    static char why[256];
    const cJSON *tr = cJSON_GetObjectItem(c, "text"), *pr = cJSON_GetObjectItem(c, "pair");
    size_t a = (size_t)tr->child->valuedouble, b = (size_t)tr->child->next->valuedouble;
    const char *text = corpus + a, *pair = NULL;
    size_t len = b - a, pair_len = 0;
    char *text_z = tk_strndup(text, len), *pair_z = NULL;
    if (pr) {
        size_t pa = (size_t)pr->child->valuedouble, pb = (size_t)pr->child->next->valuedouble;
        pair_z = tk_strndup(corpus + pa, pb - pa);
        pair = pair_z;
        pair_len = pb - pa;
    }
    const char *fail = NULL;
    *detail_name = cJSON_GetObjectItem(c, "name")->valuestring;
    if (tk_encode(t, text_z, len, pair, pair_len, true, use_fast, e) != HFT_OK) {
        snprintf(why, sizeof why, "encode failed: %s", hft_error_message());
        fail = why;
        goto done;
    }
    const cJSON *ids = cJSON_GetObjectItem(c, "ids");
    if (!ints_equal(e->ids, e->n, ids)) {
        fail = "ids";
        print_ids("hft", e->ids, e->n);
        int32_t *want = malloc((size_t)cJSON_GetArraySize(ids) * sizeof *want + 1);
        int k = 0;
        for (const cJSON *x = ids->child; x; x = x->next) want[k++] = (int32_t)x->valuedouble;
        print_ids("HF ", want, k);
        free(want);
        goto done;
    }
    int32_t *flags = calloc((size_t)e->n + 1, sizeof *flags);
    for (int pass = 0; pass < 2 && !fail; pass++) {
        memset(flags, 0, (size_t)e->n * sizeof *flags);
        const cJSON *ones = cJSON_GetObjectItem(c, pass ? "special_tokens_mask_ones" : "type_ids_ones");
        for (const cJSON *x = ones->child; x; x = x->next) flags[(int64_t)x->valuedouble] = 1;
        const int32_t *got = pass ? e->special_mask : e->type_ids;
        for (int64_t i = 0; i < e->n && !fail; i++)
            if (got[i] != flags[i]) {
                snprintf(why, sizeof why, "%s differs at token %lld",
                         pass ? "special_tokens_mask" : "type_ids", (long long)i);
                fail = why;
            }
    }
    if (!fail) {
        const cJSON *d = cJSON_GetObjectItem(c, "offsets_delta")->child;
        int64_t prev_end = 0;
        for (int64_t i = 0; i < e->n && d && !fail; i++, d = d->next->next) {
            int64_t begin = prev_end + (int64_t)d->valuedouble, end = begin + (int64_t)d->next->valuedouble;
            if (e->offsets[i][0] != begin || e->offsets[i][1] != end) {
                snprintf(why, sizeof why, "offsets of token %lld (id %d): hft [%lld, %lld), HF [%lld, %lld)",
                         (long long)i, e->ids[i], (long long)e->offsets[i][0], (long long)e->offsets[i][1],
                         (long long)begin, (long long)end);
                fail = why;
            }
            prev_end = end;
        }
    }
    /* add_special_tokens=False: the ids without the post-processor's tokens, unless listed */
    int64_t n_plain = 0;
    int32_t *plain = malloc(((size_t)e->n + 1) * sizeof *plain);
    for (int64_t i = 0; i < e->n; i++)
        if (!e->special_mask[i]) plain[n_plain++] = e->ids[i];
    hft_encoding e2 = {0};
    if (!fail && tk_encode(t, text_z, len, pair, pair_len, false, use_fast, &e2) != HFT_OK) {
        snprintf(why, sizeof why, "encode (no special tokens) failed: %s", hft_error_message());
        fail = why;
    }
    if (!fail) {
        const cJSON *want = cJSON_GetObjectItem(c, "ids_no_special");
        bool ok = want ? ints_equal(e2.ids, e2.n, want)
                       : (e2.n == n_plain && !memcmp(e2.ids, plain, (size_t)n_plain * 4));
        if (!ok) fail = "ids with add_special_tokens=False";
    }
    hft_encoding_free(&e2);
    free(plain);
    free(flags);
    /* decodes (not for the whole-corpus case, whose expected.json leaves them out) */
    bool corpus_case = !strcmp(*detail_name, "corpus");
    for (int skip = 0; skip < 2 && !fail && !corpus_case && use_fast; skip++) {
        const cJSON *want = cJSON_GetObjectItem(c, skip ? "decode_skip_special" : "decode");
        char *got;
        size_t got_len;
        if (hft_tokenizer_decode(t, e->ids, e->n, skip, &got, &got_len) != HFT_OK) {
            snprintf(why, sizeof why, "decode failed: %s", hft_error_message());
            fail = why;
            break;
        }
        const char *w = want ? want->valuestring : text_z;
        size_t wl = want ? strlen(w) : len;
        if (got_len != wl || memcmp(got, w, wl)) {
            fprintf(stderr, "    hft: \"%.*s\"\n    HF:  \"%.*s\"\n", (int)(got_len < 300 ? got_len : 300),
                    got, (int)(wl < 300 ? wl : 300), w);
            fail = skip ? "decode(skip_special_tokens=True)" : "decode";
        }
        free(got);
    }
done:
    free(text_z);
    free(pair_z);
    return fail;
}

static void specials_check(const hft_tokenizer *t, const cJSON *exp, const char *name) {
    const cJSON *s = cJSON_GetObjectItem(exp, "specials");
    hft_special_tokens sp = hft_tokenizer_specials(t);
    const struct {
        const char *key;
        int32_t got;
    } f[] = {{"bos", sp.bos}, {"eos", sp.eos}, {"pad", sp.pad},  {"unk", sp.unk},
             {"cls", sp.cls}, {"sep", sp.sep}, {"mask", sp.mask}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        int32_t want = (int32_t)cJSON_GetObjectItem(s, f[i].key)->valuedouble;
        CHECK(f[i].got == want, "%s: %s id %d, HF %d", name, f[i].key, f[i].got, want);
    }
    int64_t vs = (int64_t)cJSON_GetObjectItem(exp, "vocab_size")->valuedouble;
    CHECK(hft_tokenizer_vocab_size(t) == vs, "%s: vocab size %lld, HF %lld", name,
          (long long)hft_tokenizer_vocab_size(t), (long long)vs);
}

static bool has_fast_regex(const tk_pretok *p) {
    if (!p) return false;
    if (p->re && p->re->fast) return true;
    for (int i = 0; i < p->n_items; i++)
        if (has_fast_regex(&p->items[i])) return true;
    return false;
}

TEST(fixtures_match_hf) {
    char path[512];
    snprintf(path, sizeof path, "%s/index.json", FIXTURES);
    cJSON *index = load_json(path);
    CHECK(index != NULL, "%s: missing or not JSON (run tests/fixtures/make_tokenizer_fixtures.py)", path);
    if (!index) return;
    size_t corpus_len;
    char *corpus = hft_read_text(cJSON_GetObjectItem(index, "corpus")->valuestring, &corpus_len);
    CHECK(corpus != NULL, "cannot read the corpus");
    const cJSON *list = cJSON_GetObjectItem(index, "fixtures");
    for (const cJSON *f = list ? list->child : NULL; f && corpus; f = f->next) {
        const char *name = cJSON_GetObjectItem(f, "name")->valuestring;
        const char *load = cJSON_GetObjectItem(f, "load")->valuestring;
        if (cJSON_IsTrue(cJSON_GetObjectItem(f, "real_files")) && !exists(load)) {
            printf("  %-26s skipped: %s not fetched (sh tools/fetch_real_models.sh)\n", name, load);
            continue;
        }
        cJSON *exp = load_json(cJSON_GetObjectItem(f, "expected")->valuestring);
        hft_tokenizer *t = NULL;
        hft_status st = hft_tokenizer_load(load, &t);
        CHECK(st == HFT_OK && exp, "%s: %s", name, exp ? hft_error_message() : "expected.json missing");
        if (st != HFT_OK || !exp) {
            cJSON_Delete(exp);
            continue;
        }
        specials_check(t, exp, name);
        bool fast = has_fast_regex(t->pretok);
        hft_encoding e = {0};
        for (int pass = 0; pass < (fast ? 2 : 1); pass++) {
            tally tl = {0};
            for (const cJSON *c = cJSON_GetObjectItem(exp, "cases")->child; c; c = c->next) {
                const char *case_name;
                const char *why = check_case(t, c, corpus, pass == 0, &e, &case_name);
                tl.cases++;
                if (why) {
                    tl.failed++;
                    if (tl.shown++ < 4) {
                        test_failures++;
                        fprintf(stderr, "  %s%s, %s: %s\n", name, pass ? " (onig, not the fast matcher)" : "",
                                case_name, why);
                    }
                }
            }
            if (tl.failed > 4) test_failures++;
            printf("  %-26s %4ld cases, %ld failed%s\n", name, tl.cases, tl.failed,
                   pass ? "  (Oniguruma instead of the fast split)" : "");
        }
        hft_encoding_free(&e);
        hft_tokenizer_free(t);
        cJSON_Delete(exp);
    }
    free(corpus);
    cJSON_Delete(index);
}

/* ---------------------------------------------------------------- fast split matchers against Oniguruma */

static const char *const llama3_re =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
static const char *const qwen2_re = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* Compares every match of both paths on s; returns false (and says where) on the first difference. */
static bool same_splits(const tk_regex *re, const char *s, size_t n, const char *what) {
    size_t pos = 0;
    while (pos < n) {
        size_t fs, fe, os, oe;
        bool fok = tk_regex_search(re, s, n, pos, &fs, &fe, true);
        bool ook = tk_regex_search(re, s, n, pos, &os, &oe, false);
        if (fok != ook || fs != os || fe != oe) {
            fprintf(stderr, "  %s: at byte %zu fast [%zu, %zu) onig [%zu, %zu) in \"", what, pos, fs, fe, os,
                    oe);
            for (size_t i = 0; i < n; i++)
                fprintf(stderr, (unsigned char)s[i] < 0x20 ? "\\x%02x" : "%c", (unsigned char)s[i]);
            fprintf(stderr, "\"\n");
            return false;
        }
        if (!fok || oe == pos) break;
        pos = oe;
    }
    return true;
}

TEST(fast_split_matches_onig) {
    tk_regex *re[3];
    const char *names[3] = {"GPT-2", "Llama 3", "Qwen2"};
    CHECK_OK(tk_regex_new(tk_gpt2_pattern, strlen(tk_gpt2_pattern), false, &re[0]), NULL);
    CHECK_OK(tk_regex_new(llama3_re, strlen(llama3_re), false, &re[1]), NULL);
    CHECK_OK(tk_regex_new(qwen2_re, strlen(qwen2_re), false, &re[2]), NULL);
    for (int k = 0; k < 3; k++) CHECK(re[k]->fast != TK_FAST_NONE, "%s pattern not recognised", names[k]);
    /* the corpus, line by line and whole */
    size_t n;
    char *corpus = hft_read_text(FIXTURES "/corpus.txt", &n);
    CHECK(corpus != NULL, "corpus missing");
    long checked = 0, bad = 0;
    for (int k = 0; k < 3 && corpus; k++) {
        bad += !same_splits(re[k], corpus, n, names[k]);
        checked++;
    }
    /* random strings over the characters where the patterns branch, and a sample of every class boundary */
    static const char *const atoms[] = {"a",
                                        "Z",
                                        "é",
                                        "ß",
                                        "İ",
                                        "ſ",
                                        "K",
                                        "ǅ",
                                        "Ω",
                                        "字",
                                        "ﾀ",
                                        "😀",
                                        "\xcc\x81",
                                        "\xe2\x80\x8d",
                                        "0",
                                        "7",
                                        "٣",
                                        "½",
                                        "Ⅻ",
                                        "𝟙",
                                        " ",
                                        "  ",
                                        "\t",
                                        "\n",
                                        "\r",
                                        "\r\n",
                                        "\x0b",
                                        "\x0c",
                                        "\xc2\x85",
                                        "\xc2\xa0",
                                        "\xe3\x80\x80",
                                        "\xe2\x80\xa8",
                                        "'",
                                        "'s",
                                        "'S",
                                        "'t",
                                        "'re",
                                        "'RE",
                                        "'ve",
                                        "'Ve",
                                        "'m",
                                        "'ll",
                                        "'lL",
                                        "'d",
                                        "'ſ",
                                        "!",
                                        ".",
                                        "-",
                                        "\"",
                                        "(",
                                        "\xe2\x80\x94",
                                        "$",
                                        "_",
                                        "\x01",
                                        "\x7f",
                                        "\xef\xbb\xbf"};
    test_rng rng = {12345};
    char buf[512];
    for (int it = 0; it < 20000; it++) {
        size_t len = 0;
        int parts = (int)test_uniform(&rng, 0, 24);
        for (int p = 0; p < parts; p++) {
            const char *a = atoms[(int)test_uniform(&rng, 0, sizeof atoms / sizeof atoms[0])];
            size_t l = strlen(a);
            if (len + l < sizeof buf) memcpy(buf + len, a, l), len += l;
        }
        for (int k = 0; k < 3; k++) {
            bad += !same_splits(re[k], buf, len, names[k]);
            checked++;
        }
    }
    /* each class range's ends, between letters, digits and spaces */
    const uint32_t(*tables[3])[2] = {tk_onig_letter, tk_onig_number, tk_onig_space};
    size_t counts[3] = {tk_onig_letter_n, tk_onig_number_n, tk_onig_space_n};
    for (int c = 0; c < 3; c++)
        for (size_t i = 0; i < counts[c]; i++)
            for (int end = 0; end < 2; end++) {
                uint32_t cps[3] = {tables[c][i][end], tables[c][i][end] + 1, tables[c][i][0] - 1};
                for (int q = 0; q < 3; q++) {
                    if (cps[q] >= 0x110000 || (cps[q] >= 0xD800 && cps[q] <= 0xDFFF)) continue;
                    char ch[4];
                    int l = tk_utf8_put(cps[q], ch);
                    int m = snprintf(buf, sizeof buf, " ");
                    memcpy(buf + m, ch, (size_t)l);
                    m += l;
                    m += snprintf(buf + m, sizeof buf - (size_t)m, "a1 ");
                    memcpy(buf + m, ch, (size_t)l);
                    m += l;
                    memcpy(buf + m, ch, (size_t)l);
                    m += l;
                    m += snprintf(buf + m, sizeof buf - (size_t)m, "\n '");
                    memcpy(buf + m, ch, (size_t)l);
                    m += l;
                    for (int k = 0; k < 3; k++) {
                        bad += !same_splits(re[k], buf, (size_t)m, names[k]);
                        checked++;
                    }
                }
            }
    printf("  %ld texts split by both paths, %ld differ\n", checked, bad);
    CHECK(bad == 0, "%ld texts split differently", bad);
    free(corpus);
    for (int k = 0; k < 3; k++) tk_regex_free(re[k]);
}

/* ---------------------------------------------------------------- the byte tokenizer */

TEST(byte_tokenizer) {
    hft_tokenizer *t;
    CHECK_OK(hft_tokenizer_bytes(&t), NULL);
    if (!t) return;
    CHECK(hft_tokenizer_vocab_size(t) == 257, "vocab size %lld", (long long)hft_tokenizer_vocab_size(t));
    hft_special_tokens sp = hft_tokenizer_specials(t);
    CHECK(sp.bos == 256 && sp.eos == 256 && sp.pad == 256 && sp.unk == -1, "specials %d %d %d %d", sp.bos,
          sp.eos, sp.pad, sp.unk);
    CHECK(hft_tokenizer_token_to_id(t, "<|endoftext|>") == 256, "eot id");
    const char *text = "h\xc3\xa9llo<|endoftext|>x";
    hft_encoding e = {0};
    CHECK_OK(hft_tokenizer_encode(t, text, strlen(text), NULL, 0, true, &e), NULL);
    int32_t want[] = {'h', 0xc3, 0xa9, 'l', 'l', 'o', 256, 'x'};
    CHECK(e.n == 8 && !memcmp(e.ids, want, sizeof want), "ids (n %lld)", (long long)e.n);
    CHECK(e.n == 8 && e.offsets[1][0] == 1 && e.offsets[1][1] == 2 && e.offsets[6][0] == 6 &&
              e.offsets[6][1] == 19,
          "offsets");
    char *d;
    size_t dl;
    CHECK_OK(hft_tokenizer_decode(t, e.ids, e.n, false, &d, &dl), NULL);
    CHECK(dl == strlen(text) && !memcmp(d, text, dl), "decode \"%s\"", d);
    free(d);
    CHECK_OK(hft_tokenizer_decode(t, e.ids, e.n, true, &d, &dl), NULL);
    CHECK(!strcmp(d, "h\xc3\xa9llox"), "decode skipping specials \"%s\"", d);
    free(d);
    int32_t lone[] = {'a', 0xff, 0xc3, 'b'};
    CHECK_OK(hft_tokenizer_decode(t, lone, 4, false, &d, &dl), NULL);
    CHECK(!strcmp(d, "a\xef\xbf\xbd\xef\xbf\xbd"
                     "b"),
          "lossy decode \"%s\"", d);
    free(d);
    CHECK_OK(hft_tokenizer_encode(t, "", 0, NULL, 0, true, &e), NULL);
    CHECK(e.n == 0, "empty text gives %lld tokens", (long long)e.n);
    hft_encoding_free(&e);
    hft_tokenizer_free(t);
}

/* ---------------------------------------------------------------- threads */

typedef struct thread_arg {
    const hft_tokenizer *t;
    const char *corpus;
    size_t len;
    bool use_fast; /* false: Oniguruma runs in every thread at once */
    uint64_t sum;
} thread_arg;

static void *encode_lines(void *p) {
    thread_arg *a = p;
    hft_encoding e = {0};
    const char *s = a->corpus, *end = a->corpus + a->len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (tk_encode(a->t, s, n, NULL, 0, true, a->use_fast, &e) == HFT_OK)
            for (int64_t i = 0; i < e.n; i++)
                a->sum = a->sum * 31 + (uint64_t)e.ids[i] + (uint64_t)e.offsets[i][1];
        s += n + 1;
    }
    hft_encoding_free(&e);
    return NULL;
}

TEST(threads_agree) {
    hft_tokenizer *t;
    if (hft_tokenizer_load(FIXTURES "/llama3_bpe", &t) != HFT_OK) {
        CHECK(0, "%s", hft_error_message());
        return;
    }
    size_t len;
    char *corpus = hft_read_text(FIXTURES "/corpus.txt", &len);
    thread_arg one = {t, corpus, len, true, 0}, many[4];
    encode_lines(&one);
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        many[i] = one;
        many[i].sum = 0;
        many[i].use_fast = i % 2 == 0;
        pthread_create(&th[i], NULL, encode_lines, &many[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK(many[i].sum == one.sum, "thread %d got other tokens", i);
    }
    free(corpus);
    hft_tokenizer_free(t);
}

/* ---------------------------------------------------------------- errors */

static char tmpdir[64];

static const char *write_tmp(const char *name, const char *text) {
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    return path;
}

static void expect_error(const char *path, hft_status want, const char *words) {
    hft_tokenizer *t = NULL;
    hft_status st = hft_tokenizer_load(path, &t);
    CHECK(st == want && !t, "%s: status %d (want %d)", path, (int)st, (int)want);
    CHECK(strstr(hft_error_message(), words) != NULL, "message \"%s\" lacks \"%s\"", hft_error_message(),
          words);
    hft_tokenizer_free(t);
}

TEST(errors_are_clear) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hft_tok_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    expect_error("/nonexistent/tokenizer.json", HFT_EIO, "/nonexistent/tokenizer.json");
    expect_error(write_tmp("bad.json", "{\n  \"version\": \"1.0\",\n  \"model\": {\n    oops\n  }\n}\n"),
                 HFT_EFORMAT, "bad.json:4: not valid JSON");
    expect_error(write_tmp("unigram.json",
                           "{\"version\": \"1.0\", \"model\": {\"type\": \"Unigram\", \"vocab\": []}}"),
                 HFT_EUNSUPPORTED, "model type Unigram is not supported");
    expect_error(
        write_tmp("norm.json",
                  "{\"normalizer\": {\"type\": \"Precompiled\", \"precompiled_charsmap\": \"\"},"
                  " \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}, \"unk_token\": \"a\"}}"),
        HFT_EUNSUPPORTED, "normalizer type Precompiled is not supported");
    expect_error(
        write_tmp("pre.json",
                  "{\"pre_tokenizer\": {\"type\": \"UnicodeScripts\"},"
                  " \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}, \"unk_token\": \"a\"}}"),
        HFT_EUNSUPPORTED, "pre_tokenizer type UnicodeScripts is not supported");
    expect_error(
        write_tmp("dec.json",
                  "{\"decoder\": {\"type\": \"CTC\"},"
                  " \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"a\": 0}, \"unk_token\": \"a\"}}"),
        HFT_EUNSUPPORTED, "decoder type CTC is not supported");
    expect_error(
        write_tmp(
            "drop.json",
            "{\"model\": {\"type\": \"BPE\", \"dropout\": 0.1, \"vocab\": {\"a\": 0}, \"merges\": []}}"),
        HFT_EUNSUPPORTED, "BPE dropout 0.1 is not supported");
    expect_error(
        write_tmp("merge.json",
                  "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1}, \"merges\": [\"a b\"]}}"),
        HFT_EFORMAT, "model.merges[0]: the merged token \"ab\" is not in the vocabulary");
    expect_error(
        write_tmp("ver.json", "{\"version\": \"2.0\", \"model\": {\"type\": \"WordLevel\", \"vocab\": {}}}"),
        HFT_EFORMAT, "version");
    char dir[128];
    snprintf(dir, sizeof dir, "%s/empty", tmpdir);
    mkdir(dir, 0700);
    expect_error(dir, HFT_EIO, "no tokenizer.json, vocab.json + merges.txt or vocab.txt");

    /* invalid UTF-8 in the text: the error names the byte offset */
    hft_tokenizer *t;
    CHECK_OK(hft_tokenizer_bytes(&t), NULL);
    hft_encoding e = {0};
    hft_status st = hft_tokenizer_encode(t,
                                         "ab\xff"
                                         "cd",
                                         5, NULL, 0, true, &e);
    CHECK(st == HFT_EINVAL && strstr(hft_error_message(), "byte offset 2"), "invalid UTF-8: %s",
          hft_error_message());
    st = hft_tokenizer_encode(t, "ok", 2, "x\xed\xa0\x80", 4, true, &e); /* a surrogate is not UTF-8 */
    CHECK(st == HFT_EINVAL && strstr(hft_error_message(), "text pair is not valid UTF-8 at byte offset 1"),
          "pair: %s", hft_error_message());
    hft_encoding_free(&e);
    hft_tokenizer_free(t);
    const char *names[] = {"bad.json", "unigram.json", "norm.json",  "pre.json",
                           "dec.json", "drop.json",    "merge.json", "ver.json"};
    char p[160];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(dir);
    rmdir(tmpdir);
}

/* ---------------------------------------------------------------- configuration files */

TEST(config_files) {
    hft_tokenizer *t;
    if (hft_tokenizer_load(FIXTURES "/sentencepiece_bpe", &t) != HFT_OK) {
        CHECK(0, "%s", hft_error_message());
        return;
    }
    CHECK(hft_tokenizer_max_length(t) == 4096, "model_max_length %lld",
          (long long)hft_tokenizer_max_length(t));
    CHECK(!hft_tokenizer_pads_left(t), "padding side");
    hft_tokenizer_free(t);
    /* a chat template in the list form, padding on the left, a huge model_max_length */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hft_tok_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL, "mkdtemp");
    char src[256];
    size_t n;
    snprintf(src, sizeof src, "%s/tokenizer.json", FIXTURES "/wordpiece_cased");
    char *json = hft_read_text(src, &n);
    write_tmp("tokenizer.json", json);
    free(json);
    write_tmp("tokenizer_config.json",
              "{\"padding_side\": \"left\", \"model_max_length\": 1000000000000000019884624838656,"
              " \"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, {\"name\": \"default\", "
              "\"template\": \"D\"}],"
              " \"pad_token\": {\"content\": \"[PAD]\", \"special\": true}}");
    write_tmp("special_tokens_map.json", "{\"pad_token\": \"[UNK]\", \"mask_token\": \"[MASK]\"}");
    CHECK_OK(hft_tokenizer_load(tmpdir, &t), NULL);
    if (t) {
        CHECK(hft_tokenizer_pads_left(t), "padding_side left");
        CHECK(hft_tokenizer_max_length(t) == 0, "huge model_max_length reads as 0");
        CHECK(hft_tokenizer_chat_template(t) && !strcmp(hft_tokenizer_chat_template(t), "D"),
              "chat template");
        hft_special_tokens sp = hft_tokenizer_specials(t);
        CHECK(sp.pad == hft_tokenizer_token_to_id(t, "[PAD]"), "tokenizer_config.json wins over the map");
        CHECK(sp.mask == hft_tokenizer_token_to_id(t, "[MASK]") && sp.mask >= 0, "the map fills the gaps");
        CHECK(!strcmp(hft_tokenizer_id_to_token(t, sp.mask), "[MASK]"), "id_to_token");
        hft_tokenizer_free(t);
    }
    char p[160];
    const char *names[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s/%s", tmpdir, names[i]);
        unlink(p);
    }
    rmdir(tmpdir);
}

int main(int argc, char **argv) {
    test_case cases[] = {
        {"fixtures_match_hf", fixtures_match_hf}, {"fast_split_matches_onig", fast_split_matches_onig},
        {"byte_tokenizer", byte_tokenizer},       {"threads_agree", threads_agree},
        {"errors_are_clear", errors_are_clear},   {"config_files", config_files},
    };
    return test_main(argc, argv, cases, sizeof cases / sizeof cases[0]);
}
