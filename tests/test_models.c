/* Models in general: GPT-2 parity with transformers, save → load round trips, sharded checkpoints, what
 * loading reports, and bad input (missing files, unsupported architectures, wrong shapes, corrupt files)
 * reported with the file and the tensor or key at fault. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/model_parity.h"
#include "tests/test_util.h"

static const char *small_gpt2 =
    "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"vocab_size\": 53, "
    "\"n_positions\": 16, \"n_embd\": 12, \"n_layer\": 2, \"n_head\": 3}";

static char *temp_dir(void) {
    char tmpl[] = "/tmp/hft-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static char *path_in(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *dir, const char *name, const char *text) {
    char *p = path_in(dir, name);
    FILE *fp = fopen(p, "w");
    fputs(text, fp);
    fclose(fp);
    free(p);
}

static void remove_dir(const char *dir) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* Every parameter of a equals b's of the same name, bit for bit. */
static int same_params(hft_model *a, hft_model *b) {
    hft_paramset *pa = hft_model_params(a), *pb = hft_model_params(b);
    if (hft_paramset_count(pa) != hft_paramset_count(pb)) return 0;
    for (int i = 0; i < hft_paramset_count(pa); i++) {
        hft_param *p = hft_paramset_get(pa, i), *q = hft_paramset_find(pb, p->name);
        if (!q || hft_tensor_nbytes(p->value) != hft_tensor_nbytes(q->value) ||
            memcmp(hft_tensor_data(p->value), hft_tensor_data(q->value), hft_tensor_nbytes(p->value)) != 0) {
            fprintf(stderr, "parameter %s differs\n", p->name);
            return 0;
        }
    }
    return 1;
}

TEST(gpt2_matches_transformers_and_round_trips) {
    char *dir = temp_dir();
    int r = model_parity_case("gpt2", 1e-4, dir);
    if (r == 1) {
        hft_model *a = NULL, *b = NULL;
        char *src = model_parity_model_dir("gpt2");
        CHECK_OK(hft_model_load(src, NULL, &a), NULL);
        CHECK_OK(hft_model_load(dir, NULL, &b), NULL);
        CHECK(a && b && same_params(a, b), "a saved GPT-2 loads back bit-identical");
        hft_model_free(a);
        hft_model_free(b);
        free(src);
    }
    CHECK(r != 0, "gpt2 parity");
    remove_dir(dir);
    free(dir);
}

TEST(save_load_round_trip_is_bit_exact) {
    hft_model *m = NULL, *back = NULL;
    CHECK_OK(hft_model_from_config(small_gpt2, "config", &(hft_load_options){.seed = 3}, &m), NULL);
    char *dir = temp_dir();
    CHECK_OK(hft_model_save(m, dir), NULL);
    CHECK_OK(hft_model_load(dir, NULL, &back), NULL);
    CHECK(back && same_params(m, back), "round trip");
    CHECK(back && hft_model_unused_count(back) == 0 && hft_model_initialized_count(back) == 0,
          "nothing unused or initialised after a round trip");
    /* saving again writes the same bytes */
    char *dir2 = temp_dir();
    CHECK_OK(hft_model_save(back, dir2), NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cmp -s '%s/model.safetensors' '%s/model.safetensors'", dir, dir2);
    CHECK(system(cmd) == 0, "model.safetensors is byte-identical after load and save");
    hft_model_free(m);
    hft_model_free(back);
    remove_dir(dir);
    remove_dir(dir2);
    free(dir);
    free(dir2);
}

TEST(hub_style_gpt2_files_load) {
    /* a Hub GPT-2 file: names without "transformer.", mask buffers, and a copy of the tied classifier */
    hft_model *m = NULL;
    CHECK_OK(hft_model_from_config(small_gpt2, "config", &(hft_load_options){.seed = 5}, &m), NULL);
    char *dir = temp_dir();
    write_file(dir, "config.json", small_gpt2);
    hft_st_writer *w = hft_st_writer_new();
    hft_paramset *ps = hft_model_params(m);
    char names[64][160];
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        snprintf(names[i], sizeof names[i], "%s", p->name + strlen("transformer."));
        hft_st_writer_add(w, names[i], p->value);
    }
    hft_tensor *mask = hft_tensor_new(HFT_F32, 4, (int64_t[]){1, 1, 16, 16});
    hft_st_writer_add(w, "h.0.attn.bias", mask);
    hft_st_writer_add(w, "h.1.attn.masked_bias", mask);
    hft_st_writer_add(w, "lm_head.weight", hft_paramset_find(ps, "transformer.wte.weight")->value);
    hft_tensor *extra = hft_tensor_new(HFT_F32, 1, (int64_t[]){3});
    hft_st_writer_add(w, "score.weight", extra);
    char *st = path_in(dir, "model.safetensors");
    CHECK_OK(hft_st_writer_save(w, st), NULL);
    hft_model *back = NULL;
    CHECK_OK(hft_model_load(dir, NULL, &back), NULL);
    CHECK(back && same_params(m, back), "prefix-less names load into transformer.*");
    CHECK(back && hft_model_unused_count(back) == 1 && strcmp(hft_model_unused(back, 0), "score.weight") == 0,
          "only the stray tensor is reported unused (got %d)", back ? hft_model_unused_count(back) : -1);
    hft_st_writer_free(w);
    hft_tensor_free(mask);
    hft_tensor_free(extra);
    hft_model_free(m);
    hft_model_free(back);
    remove_dir(dir);
    free(dir);
    free(st);
}

TEST(sharded_checkpoints_load_through_the_index) {
    hft_model *m = NULL, *back = NULL;
    CHECK_OK(hft_model_from_config(small_gpt2, "config", &(hft_load_options){.seed = 9}, &m), NULL);
    char *dir = temp_dir();
    write_file(dir, "config.json", small_gpt2);
    hft_paramset *ps = hft_model_params(m);
    hft_st_writer *w[2] = {hft_st_writer_new(), hft_st_writer_new()};
    char index[8192];
    size_t n = (size_t)snprintf(index, sizeof index, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        int shard = i % 2;
        hft_st_writer_add(w[shard], p->name, p->value);
        n += (size_t)snprintf(index + n, sizeof index - n, "%s\"%s\": \"model-%05d-of-00002.safetensors\"",
                              i ? ", " : "", p->name, shard + 1);
    }
    snprintf(index + n, sizeof index - n, "}}");
    for (int s = 0; s < 2; s++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-00002.safetensors", s + 1);
        char *p = path_in(dir, name);
        CHECK_OK(hft_st_writer_save(w[s], p), NULL);
        free(p);
        hft_st_writer_free(w[s]);
    }
    write_file(dir, "model.safetensors.index.json", index);
    CHECK_OK(hft_model_load(dir, NULL, &back), NULL);
    CHECK(back && same_params(m, back), "two shards load as one model");
    hft_model_free(back);
    /* an index naming a file outside the folder is refused */
    write_file(dir, "model.safetensors.index.json",
               "{\"weight_map\": {\"transformer.wte.weight\": \"../x.safetensors\"}}");
    CHECK(hft_model_load(dir, NULL, &back) == HFT_EFORMAT && strstr(hft_error_message(), "../x.safetensors"),
          "message: %s", hft_error_message());
    hft_model_free(m);
    remove_dir(dir);
    free(dir);
}

/* Writes small_gpt2 (with a config edited by the caller) into a fresh folder. */
static char *saved_model(const char *config) {
    hft_model *m = NULL;
    hft_model_from_config(small_gpt2, "config", &(hft_load_options){.seed = 1}, &m);
    char *dir = temp_dir();
    hft_model_save(m, dir);
    hft_model_free(m);
    if (config) write_file(dir, "config.json", config);
    return dir;
}

#define EXPECT_LOAD_ERROR(dir, status, ...)                                                                  \
    do {                                                                                                     \
        hft_model *bad_ = NULL;                                                                              \
        hft_status st_ = hft_model_load(dir, NULL, &bad_);                                                   \
        CHECK(st_ == (status) && bad_ == NULL, "status %d (%s)", (int)st_, hft_error_message());             \
        const char *want_[] = {__VA_ARGS__};                                                                 \
        for (size_t w_ = 0; w_ < sizeof want_ / sizeof want_[0]; w_++)                                       \
            CHECK(strstr(hft_error_message(), want_[w_]), "message lacks '%s': %s", want_[w_],               \
                  hft_error_message());                                                                      \
    } while (0)

TEST(bad_model_folders_are_reported_with_file_and_name) {
    EXPECT_LOAD_ERROR("/nonexistent/model", HFT_EIO, "/nonexistent/model/config.json");

    char *dir = saved_model("{\"architectures\": [\"T5ForConditionalGeneration\"]}");
    EXPECT_LOAD_ERROR(dir, HFT_EUNSUPPORTED, "T5ForConditionalGeneration", "GPT2LMHeadModel",
                      "LlamaForCausalLM", "BertForSequenceClassification");
    write_file(dir, "config.json", "{\"architectures\": [\"GPT2LMHeadModel\"], \"n_embd\": \"wide\"}");
    EXPECT_LOAD_ERROR(dir, HFT_EFORMAT, "config.json", "'n_embd'", "expected an integer", "\"wide\"");
    write_file(dir, "config.json", "{\"architectures\": [\"GPT2LMHeadModel\"],\n \"n_embd\": 12,\n}");
    EXPECT_LOAD_ERROR(dir, HFT_EFORMAT, "config.json:3", "not valid JSON");
    write_file(dir, "config.json",
               "{\"architectures\": [\"GPT2LMHeadModel\"], \"quantization_config\": {\"bits\": 4}}");
    EXPECT_LOAD_ERROR(dir, HFT_EUNSUPPORTED, "quantization_config");
    write_file(dir, "config.json",
               "{\"architectures\": [\"GPT2LMHeadModel\"], \"activation_function\": \"swish\"}");
    EXPECT_LOAD_ERROR(dir, HFT_EUNSUPPORTED, "'activation_function'", "swish");
    /* the config says 4 heads of a wider model: shapes disagree with the weights */
    write_file(
        dir, "config.json",
        "{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 53, \"n_positions\": 16, \"n_embd\": 16, "
        "\"n_layer\": 2, \"n_head\": 4}");
    EXPECT_LOAD_ERROR(dir, HFT_EFORMAT, "model.safetensors", "transformer.wte.weight", "[53, 12]",
                      "[53, 16]");
    /* a layer more than the weights have */
    write_file(
        dir, "config.json",
        "{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 53, \"n_positions\": 16, \"n_embd\": 12, "
        "\"n_layer\": 3, \"n_head\": 3}");
    EXPECT_LOAD_ERROR(dir, HFT_EFORMAT, "no tensor 'transformer.h.2.ln_1.weight'");
    remove_dir(dir);
    free(dir);

    dir = saved_model(NULL);
    char *st = path_in(dir, "model.safetensors");
    CHECK(truncate(st, 1000) == 0, "truncate");
    EXPECT_LOAD_ERROR(dir, HFT_EFORMAT, "model.safetensors");
    unlink(st);
    EXPECT_LOAD_ERROR(dir, HFT_EIO, "no model.safetensors");
    write_file(dir, "pytorch_model.bin", "pickle");
    EXPECT_LOAD_ERROR(dir, HFT_EIO, "pytorch_model.bin", "safetensors");
    free(st);
    remove_dir(dir);
    free(dir);
}

TEST(forward_refuses_bad_batches) {
    hft_model *m = NULL;
    CHECK_OK(hft_model_from_config(small_gpt2, "config", NULL, &m), NULL);
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *long_ids = hft_zeros(ctx, HFT_I64, 2, (int64_t[]){1, 17});
    CHECK(!hft_model_loss(ctx, m, &(hft_batch){.input_ids = long_ids, .labels = long_ids}, false, NULL) &&
              strstr(hft_ctx_error(ctx), "sequence length 17"),
          "message: %s", hft_ctx_error(ctx));
    hft_ctx_reset(ctx);
    hft_tensor *ids = hft_full(ctx, HFT_I64, 2, (int64_t[]){1, 4}, 60.0);
    CHECK(!hft_model_logits(ctx, m, &(hft_batch){.input_ids = ids}) &&
              strstr(hft_ctx_error(ctx), "vocabulary"),
          "an id beyond the vocabulary: %s", hft_ctx_error(ctx));
    hft_ctx_reset(ctx);
    ids = hft_zeros(ctx, HFT_I64, 2, (int64_t[]){1, 4});
    CHECK(!hft_model_loss(ctx, m, &(hft_batch){.input_ids = ids}, false, NULL) &&
              strstr(hft_ctx_error(ctx), "labels"),
          "no labels: %s", hft_ctx_error(ctx));
    hft_ctx_free(ctx);
    hft_model_free(m);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"gpt2_matches_transformers_and_round_trips", gpt2_matches_transformers_and_round_trips},
        {"save_load_round_trip_is_bit_exact", save_load_round_trip_is_bit_exact},
        {"hub_style_gpt2_files_load", hub_style_gpt2_files_load},
        {"sharded_checkpoints_load_through_the_index", sharded_checkpoints_load_through_the_index},
        {"bad_model_folders_are_reported_with_file_and_name",
         bad_model_folders_are_reported_with_file_and_name},
        {"forward_refuses_bad_batches", forward_refuses_bad_batches},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
