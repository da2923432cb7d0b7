/* Recipes: HF defaults, sections and flat keys, command-line overrides, and every kind of bad input
 * reported with the file and line (or the argument), the key, what was found and what was expected. */
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_util.h"
#include "trainer/recipe.h"

static char dir[64];

static const char *write_recipe(const char *name, const char *text) {
    static char path[160];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *fp = fopen(path, "w");
    fputs(text, fp);
    fclose(fp);
    return path;
}

static char model_dir[160], train_file[160];

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/hft-recipe-XXXXXX");
    if (!mkdtemp(dir)) abort();
    snprintf(model_dir, sizeof model_dir, "%s/model", dir);
    snprintf(train_file, sizeof train_file, "%s/train.txt", dir);
    mkdir(model_dir, 0755);
    fclose(fopen(train_file, "w"));
}

static hft_recipe *load(const char *text, int n, char *const *ov, hft_status *st) {
    char full[2048];
    snprintf(full, sizeof full, "model:\n  path: %s\ndata:\n  train_file: %s\n%s", model_dir, train_file,
             text);
    hft_recipe *r = NULL;
    *st = hft_recipe_load(write_recipe("r.yaml", full), n, ov, &r);
    return r;
}

#define EXPECT_ERROR(text, n, ov, ...)                                                                       \
    do {                                                                                                     \
        hft_status st_;                                                                                      \
        hft_recipe *r_ = load(text, n, ov, &st_);                                                            \
        CHECK(!r_ && st_ != HFT_OK, "expected an error for: %s", text);                                      \
        const char *want_[] = {__VA_ARGS__};                                                                 \
        for (size_t w_ = 0; w_ < sizeof want_ / sizeof want_[0]; w_++)                                       \
            CHECK(strstr(hft_error_message(), want_[w_]), "message lacks '%s': %s", want_[w_],               \
                  hft_error_message());                                                                      \
        hft_recipe_free(r_);                                                                                 \
    } while (0)

TEST(defaults_are_the_hf_trainer_defaults) {
    hft_status st;
    hft_recipe *r = load("", 0, NULL, &st);
    CHECK_OK(st, NULL);
    if (!r) return;
    CHECK(r->learning_rate == 5e-5 && r->weight_decay == 0 && r->adam_beta1 == 0.9 &&
              r->adam_beta2 == 0.999 && r->adam_epsilon == 1e-8 && r->max_grad_norm == 1.0,
          "optimizer defaults");
    CHECK(r->num_train_epochs == 3 && r->max_steps == -1 && r->per_device_train_batch_size == 8 &&
              r->gradient_accumulation_steps == 1 && r->seed == 42,
          "loop defaults");
    CHECK(strcmp(r->lr_scheduler_type, "linear") == 0 && strcmp(r->optim, "adamw_torch_fused") == 0, "names");
    CHECK(r->logging_steps == 500 && r->save_steps == 500 && strcmp(r->eval_strategy, "no") == 0 &&
              strcmp(r->save_strategy, "steps") == 0 && r->greater_is_better == -1,
          "logging and saving defaults");
    hft_recipe_free(r);
}

TEST(sections_flat_keys_aliases_and_overrides) {
    hft_status st;
    char *ov[] = {"training.learning_rate=3e-4", "max_steps=20", "data.max_length=64"};
    hft_recipe *r = load("training:\n  evaluation_strategy: steps\n  eval_steps: 0.25\n  warmup_ratio: 0.1\n"
                         "per_device_train_batch_size: 4\n",
                         3, ov, &st);
    CHECK_OK(st, NULL);
    if (!r) return;
    CHECK(r->learning_rate == 3e-4 && r->max_steps == 20 && r->max_length == 64, "overrides win");
    CHECK(strcmp(r->eval_strategy, "steps") == 0 && r->eval_steps == 0.25,
          "the 4.x alias evaluation_strategy");
    CHECK(r->per_device_train_batch_size == 4, "a flat top-level key");
    char w[200];
    CHECK(strcmp(hft_recipe_where(r, "max_steps", w, sizeof w), "command line") == 0, "where: %s", w);
    CHECK(strstr(hft_recipe_where(r, "eval_steps", w, sizeof w), "r.yaml:7"), "where: %s", w);
    hft_recipe_free(r);
}

TEST(bad_recipes_name_the_line_and_key) {
    EXPECT_ERROR("training:\n  learnig_rate: 1e-4\n", 0, NULL, "r.yaml:6", "unknown key 'learnig_rate'",
                 "did you mean 'learning_rate'?");
    EXPECT_ERROR("training:\n  learning_rate: fast\n", 0, NULL, "r.yaml:6", "learning_rate",
                 "expected a number >= 0", "\"fast\"");
    EXPECT_ERROR("training:\n  adam_beta2: 1.0\n", 0, NULL, "r.yaml:6", "adam_beta2", "[0, 1)");
    EXPECT_ERROR("training:\n  per_device_train_batch_size: 2.5\n", 0, NULL, "expected an integer");
    EXPECT_ERROR("training:\n  eval_strategy: sometimes\n", 0, NULL, "r.yaml:6", "no|steps|epoch",
                 "\"sometimes\"");
    EXPECT_ERROR("training:\n  bf16: maybe\n", 0, NULL, "expected true or false");
    EXPECT_ERROR("trainig:\n  seed: 1\n", 0, NULL, "unknown key 'trainig'", "did you mean 'training'?");
    EXPECT_ERROR("training:\n  seed: [1, 2]\n", 0, NULL, "seed", "expected a single value");
    EXPECT_ERROR("training:\n  seed: 1\n    x: 2\n", 0, NULL, "r.yaml:", "not valid YAML");
    EXPECT_ERROR("path: x\n", 0, NULL, "'path' is a key of more than one section");
    EXPECT_ERROR("training:\n  bf16: true\n  fp16: true\n", 0, NULL, "bf16 and fp16 cannot both be true");
    EXPECT_ERROR("training:\n  device: gpu\n", 0, NULL, "r.yaml:6", "device", "cpu, cuda, cuda:N or auto",
                 "'gpu'");
    EXPECT_ERROR("training:\n  device: cuda:x\n", 0, NULL, "r.yaml:6", "'cuda:x'");
    EXPECT_ERROR("training:\n  load_best_model_at_end: true\n", 0, NULL, "needs evaluation");
    EXPECT_ERROR(
        "training:\n  load_best_model_at_end: true\n  eval_strategy: steps\n  save_strategy: epoch\n", 0,
        NULL, "save_strategy (epoch) to equal eval_strategy (steps");
    EXPECT_ERROR("training:\n  load_best_model_at_end: true\n  eval_strategy: steps\n  eval_steps: 30\n  "
                 "save_steps: 50\n",
                 0, NULL, "multiple of eval_steps");
    EXPECT_ERROR("data:\n  eval_file: /nonexistent/eval.jsonl\n", 0, NULL, "r.yaml:", "eval_file",
                 "no such file or folder: /nonexistent/eval.jsonl");
    char *bad_ov[] = {"learning_rate"};
    EXPECT_ERROR("", 1, bad_ov, "overrides must be in the form of key=value");
    char *bad_key[] = {"training.lerning_rate=1"};
    EXPECT_ERROR("", 1, bad_key, "command line", "did you mean 'learning_rate'?");
    char *bad_val[] = {"max_steps=ten"};
    EXPECT_ERROR("", 1, bad_val, "command line max_steps=ten", "expected an integer");
    hft_recipe *r = NULL;
    CHECK(hft_recipe_load("/nonexistent/recipe.yaml", 0, NULL, &r) == HFT_EIO &&
              strstr(hft_error_message(), "/nonexistent/recipe.yaml"),
          "a missing recipe: %s", hft_error_message());
}

/* The lora section: PEFT's LoraConfig names, lists and mappings as YAML writes them, overrides on the command
 * line, and mistakes reported with the line and key. */
TEST(lora_section) {
    hft_status st;
    hft_recipe *r =
        load("training:\n  seed: 1\nlora:\n  r: 16\n  lora_alpha: 32\n  target_modules: [q_proj, v_proj]\n"
             "  rank_pattern:\n    o_proj: 4\n  layers_to_transform: [0, 1]\n  export: merged\n",
             0, NULL, &st);
    CHECK_OK(st, NULL);
    if (r) {
        CHECK(r->lora_json && strstr(r->lora_json, "\"r\":16") &&
                  strstr(r->lora_json, "[\"q_proj\",\"v_proj\"]") && strstr(r->lora_json, "{\"o_proj\":4}") &&
                  strstr(r->lora_json, "[0,1]"),
              "lora as JSON: %s", r->lora_json ? r->lora_json : "(none)");
        CHECK(strcmp(r->lora_export, "merged") == 0 && r->lora_line == 7, "export %s, line %d",
              r->lora_export, r->lora_line);
        hft_recipe_free(r);
    }
    r = load("", 0, NULL, &st);
    CHECK(r && !r->lora_json && strcmp(r->lora_export, "adapter") == 0, "no lora section: a full fine-tune");
    hft_recipe_free(r);
    char *ov[] = {"lora.r=32", "lora.target_modules=[q_proj, k_proj]", "lora.use_rslora=true"};
    r = load("lora:\n  r: 8\n", 3, ov, &st);
    CHECK(r && r->lora_json && strstr(r->lora_json, "\"r\":32") &&
              strstr(r->lora_json, "[\"q_proj\",\"k_proj\"]") && strstr(r->lora_json, "\"use_rslora\":true"),
          "overrides: %s", r && r->lora_json ? r->lora_json : "(none)");
    hft_recipe_free(r);
    r = load("lora:\n", 0, NULL, &st); /* the section alone: PEFT's defaults */
    CHECK(r && r->lora_json && strcmp(r->lora_json, "{}") == 0, "empty lora section");
    hft_recipe_free(r);
    EXPECT_ERROR("lora:\n  r: 8\n  rank: 4\n", 0, NULL, "r.yaml:7: lora", "unknown LoRA setting 'rank'");
    EXPECT_ERROR("lora:\n  r: -2\n", 0, NULL, "r.yaml:6: lora", "'r': expected a positive integer");
    EXPECT_ERROR("lora:\n  use_dora: true\n", 0, NULL, "'use_dora' is not supported");
    EXPECT_ERROR("lora:\n  export: both\n", 0, NULL, "r.yaml:6", "lora.export: expected adapter or merged");
    char *bad[] = {"lora.bias=some"};
    EXPECT_ERROR("", 1, bad, "command line lora.bias=some", "'bias': expected");
}

TEST(list_keys_take_yaml_lists_and_command_line_lists) {
    hft_status st;
    hft_recipe *r = load("training:\n  sample_prompts:\n    - \"One, two\"\n    - Three\n", 0, NULL, &st);
    CHECK(r && strcmp(r->sample_prompts, "[\"One, two\",\"Three\"]") == 0, "YAML list: %s",
          r ? r->sample_prompts : hft_error_message());
    hft_recipe_free(r);
    char *ov[] = {"sample_prompts=[a b, c]"};
    r = load("", 1, ov, &st);
    CHECK(r && strcmp(r->sample_prompts, "[\"a b\",\"c\"]") == 0, "command line: %s",
          r ? r->sample_prompts : hft_error_message());
    hft_recipe_free(r);
    r = load("training:\n  sample_prompts: Just one\n", 0, NULL, &st);
    CHECK(r && strcmp(r->sample_prompts, "[\"Just one\"]") == 0, "one string: %s",
          r ? r->sample_prompts : "");
    hft_recipe_free(r);
    EXPECT_ERROR("training:\n  sample_prompts:\n    - [1, 2]\n", 0, NULL, "r.yaml:7", "sample_prompts",
                 "expected a list of strings");
}

TEST(help_lists_every_key_with_its_default) {
    char path[200];
    snprintf(path, sizeof path, "%s/help.txt", dir);
    FILE *fp = fopen(path, "w");
    hft_recipe_print_help(fp);
    fclose(fp);
    fp = fopen(path, "r");
    char text[16384];
    size_t n = fread(text, 1, sizeof text - 1, fp);
    text[n] = '\0';
    fclose(fp);
    const char *want[] = {"learning_rate",     "5e-5",       "gradient_accumulation_steps",
                          "save_total_limit",  "train_file", "evaluation_strategy",
                          "adamw_torch_fused", "lora_alpha", "target_modules"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        CHECK(strstr(text, want[i]), "help lacks %s", want[i]);
}

int main(int argc, char **argv) {
    setup();
    static const test_case cases[] = {
        {"defaults_are_the_hf_trainer_defaults", defaults_are_the_hf_trainer_defaults},
        {"sections_flat_keys_aliases_and_overrides", sections_flat_keys_aliases_and_overrides},
        {"bad_recipes_name_the_line_and_key", bad_recipes_name_the_line_and_key},
        {"lora_section", lora_section},
        {"list_keys_take_yaml_lists_and_command_line_lists",
         list_keys_take_yaml_lists_and_command_line_lists},
        {"help_lists_every_key_with_its_default", help_lists_every_key_with_its_default},
    };
    int rc = test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
