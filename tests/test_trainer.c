/* The Trainer end to end on a tiny GPT with the byte tokenizer: gradient accumulation equals the larger
 * batch, a resumed run ends bit-identical to one never stopped and logs the same values, a kill -9 during
 * a save leaves the previous checkpoint loadable, rotation keeps the newest and the best, a signal stops
 * cleanly with a checkpoint, a checkpoint of another model is refused, and export loads back. */
#include <math.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "nn/nn.h"
#include "tests/test_util.h"
#include "trainer/checkpoint.h"
#include "trainer/fsutil.h"
#include "trainer/trainer.h"
#include "trainer/train_state.h"

static char root[64];

static char *in_root(const char *name) {
    return hft_path_join(root, name);
}

static void write_file(const char *name, const char *text) {
    char *p = in_root(name);
    FILE *fp = fopen(p, "w");
    fputs(text, fp);
    fclose(fp);
    free(p);
}

static void write_config(double dropout) {
    char text[512];
    snprintf(text, sizeof text,
             "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\", \"vocab_size\": 257, "
             "\"n_positions\": 64, \"n_embd\": 24, \"n_layer\": 2, \"n_head\": 2, \"resid_pdrop\": %g, "
             "\"embd_pdrop\": %g, \"attn_pdrop\": %g}",
             dropout, dropout, dropout);
    write_file("gpt.json", text);
}

static void setup(void) {
    snprintf(root, sizeof root, "/tmp/hft-trainer-XXXXXX");
    if (!mkdtemp(root)) abort();
    write_config(0.1);
    char text[8192];
    size_t n = 0;
    for (int p = 0; p < 40; p++)
        n += (size_t)snprintf(text + n, sizeof text - n,
                              "Paragraph %d: the quick brown fox %s over the lazy dog.\n\n", p,
                              p % 3 ? "jumps" : "leaps");
    write_file("train.txt", text);
    write_file("eval.txt", "An evaluation paragraph about a fox.\n\nAnd a second one, about the dog.\n");
}

/* A recipe for the tiny model, in the run folder `run`, with extra YAML lines for the training section. */
static hft_recipe *recipe(const char *run, const char *training, int n_ov, char *const *ov) {
    char *gpt = in_root("gpt.json"), *train = in_root("train.txt"), *eval = in_root("eval.txt"),
         *out = in_root(run);
    char text[4096];
    snprintf(text, sizeof text,
             "model:\n  config: %s\ntokenizer:\n  path: bytes\ndata:\n  train_file: %s\n  eval_file: %s\n  "
             "max_length: 48\n"
             "  cache_dir: \"\"\ntraining:\n  output_dir: %s\n  per_device_train_batch_size: 4\n  "
             "learning_rate: 3e-3\n"
             "  logging_steps: 1\n  save_steps: 1000\n%s",
             gpt, train, eval, out, training);
    char name[128];
    snprintf(name, sizeof name, "%s.yaml", run);
    write_file(name, text);
    char *path = in_root(name);
    hft_recipe *r = NULL;
    if (hft_recipe_load(path, n_ov, ov, &r) != HFT_OK) fprintf(stderr, "recipe: %s\n", hft_error_message());
    free(gpt), free(train), free(eval), free(out), free(path);
    return r;
}

/* hft-train on the recipe of `run` in a new process (exec'd: a forked copy of this process would inherit an
 * OpenMP pool whose threads do not survive fork). */
static pid_t spawn(const char *run, const char *training, int n_ov, char *const *ov) {
    hft_recipe *r = recipe(run, training, 0, NULL); /* writes <run>.yaml */
    hft_recipe_free(r);
    char name[128];
    snprintf(name, sizeof name, "%s.yaml", run);
    char *path = in_root(name);
    char *argv[16] = {HFT_TRAIN_BIN, path};
    int argc = 2;
    for (int i = 0; i < n_ov && argc < 15; i++) argv[argc++] = ov[i];
    argv[argc] = NULL;
    fflush(stdout); /* or the child's freopen writes this process's buffered lines a second time */
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout)) _exit(127);
        execv(HFT_TRAIN_BIN, argv);
        _exit(127);
    }
    free(path);
    return pid;
}

static bool train(const char *run, const char *training, int n_ov, char *const *ov) {
    hft_recipe *r = recipe(run, training, n_ov, ov);
    if (!r) return false;
    bool stopped = false;
    hft_status st = hft_train(r, &stopped);
    if (st != HFT_OK) fprintf(stderr, "[%s] train %s: %s\n", test_current, run, hft_error_message());
    hft_recipe_free(r);
    return st == HFT_OK;
}

/* The parameters saved in a folder, as f64 (caller frees), and their count. */
static double *params_of(const char *dir, int64_t *n) {
    hft_model *m = NULL;
    if (hft_model_load(dir, NULL, &m) != HFT_OK) {
        fprintf(stderr, "load %s: %s\n", dir, hft_error_message());
        *n = 0;
        return NULL;
    }
    hft_paramset *ps = hft_model_params(m);
    int64_t total = 0;
    for (int i = 0; i < hft_paramset_count(ps); i++)
        total += hft_tensor_numel(hft_paramset_get(ps, i)->value);
    double *v = malloc(sizeof(double) * (size_t)total), *p = v;
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_tensor *t = hft_paramset_get(ps, i)->value;
        hft_tensor_to_f64(t, p);
        p += hft_tensor_numel(t);
    }
    hft_model_free(m);
    *n = total;
    return v;
}

TEST(accumulation_equals_the_larger_batch) {
    /* 2 micro-batches of 2 against 1 of 4, no dropout: the same examples, the same loss normalisation */
    char *ov_a[] = {"per_device_train_batch_size=2", "gradient_accumulation_steps=2", "max_steps=3"};
    char *ov_b[] = {"per_device_train_batch_size=4", "gradient_accumulation_steps=1", "max_steps=3"};
    write_config(0.0);
    CHECK(train("accum", "", 3, ov_a) && train("batch", "", 3, ov_b), "both runs finish");
    char *a = in_root("accum"), *b = in_root("batch");
    int64_t na, nb;
    double *pa = params_of(a, &na), *pb = params_of(b, &nb);
    CHECK(na == nb && na > 0 && pa && pb && test_close("accumulated vs one batch", pa, pb, na, 1e-5, 1e-6),
          "parameters after 3 steps agree");
    free(pa), free(pb), free(a), free(b);
    write_config(0.1);
}

TEST(resume_is_bit_identical_and_logs_the_same) {
    char *full_ov[] = {"max_steps=6"};
    CHECK(train("full", "", 1, full_ov), "the uninterrupted run");
    char *part_ov[] = {"max_steps=6", "save_steps=3"};
    /* the same run stopped after step 3: max_steps 6 keeps the schedule, a stop file is not needed —
     * train to 3 by a second recipe whose max_steps is 6 but whose process we end after the step-3 save */
    pid_t pid = spawn("part", "", 2, part_ov);
    char *ck3 = in_root("part/checkpoint-3");
    for (int i = 0; i < 6000 && !fs_exists(ck3); i++) usleep(5000);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char *resume_ov[] = {"max_steps=6", "save_steps=3", "resume_from_checkpoint=true"};
    CHECK(fs_exists(ck3), "the checkpoint at step 3 exists");
    CHECK(train("part", "", 3, resume_ov), "the resumed run");
    char *a = in_root("full"), *b = in_root("part");
    int64_t na, nb;
    double *pa = params_of(a, &na), *pb = params_of(b, &nb);
    int64_t diff = 0;
    for (int64_t i = 0; i < na && na == nb; i++) diff += pa[i] != pb[i];
    CHECK(na == nb && na > 0 && diff == 0, "%lld of %lld parameters differ after resuming", (long long)diff,
          (long long)na);
    /* the logged training lines of steps 4 to 6 are the same */
    char *ma = hft_path_join(a, "metrics.jsonl"), *mb = hft_path_join(b, "metrics.jsonl");
    char *ta = hft_read_text(ma, NULL), *tb = hft_read_text(mb, NULL);
    for (int step = 4; step <= 6; step++) {
        char end[32];
        snprintf(end, sizeof end, "\"step\":%d}", step);
        const char *ea = ta ? strstr(ta, end) : NULL, *eb = tb ? strstr(tb, end) : NULL;
        CHECK(ea && eb, "step %d is logged in both runs", step);
        if (!ea || !eb) continue;
        const char *la = ea, *lb = eb;
        while (la > ta && la[-1] != '\n') la--;
        while (lb > tb && lb[-1] != '\n') lb--;
        size_t na_ = (size_t)(ea - la), nb_ = (size_t)(eb - lb);
        CHECK(na_ == nb_ && strncmp(la, lb, na_) == 0, "step %d logs differ:\n%.*s\n%.*s", step, (int)na_, la,
              (int)nb_, lb);
    }
    free(ta), free(tb), free(ma), free(mb), free(pa), free(pb), free(a), free(b), free(ck3);
}

TEST(kill_during_a_save_leaves_the_last_checkpoint_whole) {
    /* save at every step while being killed at arbitrary moments: the newest checkpoint always loads */
    for (int round = 0; round < 6; round++) {
        char run[32];
        snprintf(run, sizeof run, "kill%d", round);
        char *ov[] = {"max_steps=40", "save_steps=1", "save_total_limit=2"};
        hft_recipe *r = recipe(run, "", 3, ov);
        pid_t pid = spawn(run, "", 3, ov);
        char *first = hft_path_join(r->output_dir, "checkpoint-2");
        for (int i = 0; i < 4000 && !fs_exists(first); i++) usleep(2000);
        usleep((useconds_t)(3000 + round * 7919 % 40000));
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        char *newest = checkpoint_newest(r->output_dir);
        CHECK(newest != NULL, "round %d: a checkpoint remains", round);
        if (newest) {
            hft_model *m = NULL;
            CHECK_OK(hft_model_load(newest, NULL, &m), NULL);
            char *state = hft_path_join(newest, "training_state.h5");
            train_state s;
            CHECK_OK(train_state_peek(state, &s), NULL);
            hft_model_free(m);
            free(state);
        }
        free(newest);
        free(first);
        hft_recipe_free(r);
    }
}

TEST(rotation_keeps_the_newest_and_the_best) {
    char *ov[] = {"max_steps=8",         "save_steps=2", "save_total_limit=1",
                  "eval_strategy=steps", "eval_steps=2", "load_best_model_at_end=true",
                  "learning_rate=0.5"};
    CHECK(train("rot", "", 7, ov), "a run with evaluation and a limit of one checkpoint");
    char *dir = in_root("rot");
    char *state = hft_path_join(dir, "trainer_state.json");
    char *text = hft_read_text(state, NULL);
    CHECK(text && strstr(text, "best_model_checkpoint"), "trainer_state.json names the best checkpoint");
    int kept = 0;
    for (int s = 2; s <= 8; s += 2) {
        char name[64];
        snprintf(name, sizeof name, "rot/checkpoint-%d", s);
        char *p = in_root(name);
        kept += fs_exists(p);
        free(p);
    }
    char *newest = in_root("rot/checkpoint-8");
    CHECK(fs_exists(newest), "the newest checkpoint stays");
    CHECK(kept >= 1 && kept <= 2,
          "%d checkpoints kept with a limit of 1 (newest, and the best if it differs)", kept);
    free(text), free(state), free(dir), free(newest);
}

TEST(a_signal_stops_cleanly_with_a_checkpoint) {
    char *ov[] = {"max_steps=100000"};
    hft_recipe *r = recipe("sig", "", 1, ov);
    pid_t pid = spawn("sig", "", 1, ov);
    char *metrics = in_root("sig/metrics.jsonl");
    for (int i = 0; i < 4000 && !fs_exists(metrics); i++) usleep(2000);
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "exit status 0 after SIGINT (status %d)", status);
    char *newest = checkpoint_newest(r->output_dir);
    CHECK(newest != NULL, "a checkpoint was saved on the way out");
    free(newest), free(metrics);
    hft_recipe_free(r);
}

TEST(another_models_checkpoint_is_refused_and_export_loads) {
    char *ov[] = {"max_steps=2", "save_steps=2"};
    CHECK(train("exp", "", 2, ov), "a short run");
    write_file("gpt-wide.json",
               "{\"architectures\": [\"GPT2LMHeadModel\"], \"vocab_size\": 257, \"n_positions\": 64, "
               "\"n_embd\": 32, \"n_layer\": 2, \"n_head\": 2}");
    char *wide = in_root("gpt-wide.json"), *ck = in_root("exp/checkpoint-2");
    char ov_model[256], ov_resume[256];
    snprintf(ov_model, sizeof ov_model, "model.config=%s", wide);
    snprintf(ov_resume, sizeof ov_resume, "resume_from_checkpoint=%s", ck);
    char *ov2[] = {"max_steps=3", ov_model, ov_resume};
    hft_recipe *r = recipe("exp2", "", 3, ov2);
    bool stopped;
    CHECK(r && hft_train(r, &stopped) == HFT_EINVAL && strstr(hft_error_message(), "another model"),
          "message: %s", hft_error_message());
    hft_recipe_free(r);
    char *out = in_root("exported");
    CHECK_OK(hft_export(ck, out, NULL), NULL);
    hft_model *m = NULL;
    CHECK_OK(hft_model_load(out, NULL, &m), NULL);
    hft_model_free(m);
    free(wide), free(ck), free(out);
}

TEST(early_stopping_ends_a_run_that_stops_improving) {
    /* an absurd learning rate makes the eval loss worse at every evaluation: patience 2 ends the run */
    char *ov[] = {"max_steps=40",
                  "eval_strategy=steps",
                  "eval_steps=1",
                  "save_steps=1",
                  "learning_rate=5",
                  "load_best_model_at_end=true",
                  "early_stopping_patience=2",
                  "save_total_limit=1"};
    CHECK(train("early", "", 8, ov), "the run finishes");
    char *state = in_root("early/trainer_state.json");
    char *text = hft_read_text(state, NULL);
    const char *g = text ? strstr(text, "\"global_step\"") : NULL;
    int step = g ? atoi(strchr(g, ':') + 1) : -1;
    CHECK(step > 0 && step < 40, "stopped early at step %d of 40", step);
    free(text), free(state);
}

/* Every tensor of two safetensors files is the same, bit for bit. */
static bool same_tensors(const char *a_path, const char *b_path) {
    hft_safetensors *a = NULL, *b = NULL;
    bool same = hft_safetensors_open(a_path, &a) == HFT_OK && hft_safetensors_open(b_path, &b) == HFT_OK &&
                hft_safetensors_count(a) == hft_safetensors_count(b);
    for (int k = 0; same && k < hft_safetensors_count(b); k++) {
        const hft_st_entry *e = hft_safetensors_entry(b, k), *f = hft_safetensors_find(a, e->name);
        same = f && f->nbytes == e->nbytes && memcmp(f->data, e->data, e->nbytes) == 0;
        if (!same) fprintf(stderr, "[%s] %s differs\n", test_current, e->name);
    }
    hft_safetensors_close(a), hft_safetensors_close(b);
    return same;
}

/* LoRA in the Trainer: checkpoints hold the adapter (not the model), a resumed run (dropout in the model
 * and on the LoRA branch) ends bit-identical to one never stopped, a different base is refused, and the
 * adapter exports as is or merged. */
#define LORA_SECTION "lora:\n  r: 4\n  lora_alpha: 8\n  lora_dropout: 0.1\n  target_modules: [c_attn, c_fc]\n"

TEST(lora_resume_is_bit_identical_and_the_base_is_checked) {
    char *base_ov[] = {"max_steps=1"};
    CHECK(train("lbase", "", 1, base_ov), "a base model to adapt");
    char *base = in_root("lbase"), ov_base[256];
    snprintf(ov_base, sizeof ov_base, "model.path=%s", base);
    char *full_ov[] = {"model.config=", ov_base, "max_steps=6"};
    CHECK(train("lfull", LORA_SECTION, 3, full_ov), "the uninterrupted LoRA run");
    char *part_ov[] = {"model.config=", ov_base, "max_steps=6", "save_steps=3"};
    pid_t pid = spawn("lpart", LORA_SECTION, 4, part_ov);
    char *ck3 = in_root("lpart/checkpoint-3");
    for (int i = 0; i < 6000 && !fs_exists(ck3); i++) usleep(5000);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    char *a3 = hft_path_join(ck3, "adapter_model.safetensors"), *m3 = hft_path_join(ck3, "model.safetensors");
    CHECK(fs_exists(a3) && !fs_exists(m3), "the checkpoint holds the adapter, not the model");
    char *resume_ov[] = {"model.config=", ov_base, "max_steps=6", "save_steps=3",
                         "resume_from_checkpoint=true"};
    CHECK(train("lpart", LORA_SECTION, 5, resume_ov), "the resumed LoRA run");
    char *fa = in_root("lfull/adapter_model.safetensors"), *fb = in_root("lpart/adapter_model.safetensors");
    CHECK(same_tensors(fa, fb), "the resumed adapter differs from the uninterrupted one");

    /* the same recipe on a base whose weights differ (another short run) is refused */
    char *other_ov[] = {"max_steps=2"};
    CHECK(train("lbase2", "", 1, other_ov), "another base");
    char *base2 = in_root("lbase2"), ov_base2[256], ov_resume[256];
    snprintf(ov_base2, sizeof ov_base2, "model.path=%s", base2);
    snprintf(ov_resume, sizeof ov_resume, "resume_from_checkpoint=%s", ck3);
    char *wrong_ov[] = {"model.config=", ov_base2, "max_steps=6", ov_resume};
    hft_recipe *r = recipe("lwrong", LORA_SECTION, 4, wrong_ov);
    bool stopped;
    CHECK(r && hft_train(r, &stopped) == HFT_EINVAL && strstr(hft_error_message(), "another base model"),
          "message: %s", hft_error_message());
    hft_recipe_free(r);

    /* export: the adapter as PEFT lays it out, or merged into a plain model that equals the adapted one */
    char *out_a = in_root("lexport"), *out_m = in_root("lmerged");
    CHECK_OK(hft_export(ck3, out_a, NULL), NULL);
    hft_export_options mo = {.merge = true};
    CHECK_OK(hft_export(ck3, out_m, &mo), NULL);
    hft_export_options wrong = {.merge = true, .base = base2};
    char *out_w = in_root("lwrongexport");
    CHECK(hft_export(ck3, out_w, &wrong) == HFT_EINVAL, "an export onto another base is refused");
    hft_model *adapted = NULL, *merged = NULL;
    CHECK_OK(hft_model_load(base, NULL, &adapted), NULL);
    CHECK_OK(hft_lora_load(adapted, out_a), NULL);
    CHECK_OK(hft_model_load(out_m, NULL, &merged), NULL);
    if (adapted && merged) {
        hft_ctx *ctx = hft_ctx_new(NULL);
        int64_t ids[6] = {72, 101, 108, 108, 111, 33};
        hft_tensor *t = hft_tensor_from_data(HFT_I64, 2, (int64_t[]){1, 6}, ids);
        hft_batch b = {.input_ids = t};
        hft_tensor *la = hft_model_logits(ctx, adapted, &b), *lm = hft_model_logits(ctx, merged, &b);
        double worst = 0, scale = 0;
        for (int64_t i = 0; la && lm && i < hft_tensor_numel(la); i++) {
            double x = ((float *)hft_tensor_data(la))[i], y = ((float *)hft_tensor_data(lm))[i];
            worst = fmax(worst, fabs(x - y)), scale = fmax(scale, fabs(x));
        }
        CHECK(la && lm && worst <= 1e-5 * scale, "merged logits differ by %g (scale %g)", worst, scale);
        hft_tensor_free(t);
        hft_ctx_free(ctx);
    }
    hft_model_free(adapted), hft_model_free(merged);
    free(out_a), free(out_m), free(out_w), free(base2), free(fa), free(fb), free(a3), free(m3), free(ck3),
        free(base);
}

/* The "loss" values of a run's metrics.jsonl, in order (at most n). */
static int logged_losses(const char *run, double *out, int n) {
    char *dir = in_root(run), *path = hft_path_join(dir, "metrics.jsonl"), *text = hft_read_text(path, NULL);
    int k = 0;
    for (const char *p = text; p && k < n && (p = strstr(p, "{\"loss\":")); p++) out[k++] = atof(p + 8);
    free(text), free(path), free(dir);
    return k;
}

/* device: cuda where no GPU can be used (no module, no driver) is one clear error naming the recipe line,
 * before any model is loaded. */
TEST(device_cuda_is_a_clear_error_where_it_cannot_run) {
    if (hft_cuda_load()) {
        printf("  (a GPU is usable here: device cuda is tested by test_trainer_cuda)\n");
        return;
    }
    hft_error_clear();
    hft_recipe *r = recipe("cuda", "  device: cuda\n", 0, NULL);
    bool stopped = false;
    hft_status st = hft_train(r, &stopped);
    CHECK(st != HFT_OK, "device: cuda trained on this machine");
    const char *m = hft_error_message();
    CHECK(strstr(m, "cuda.yaml:") && strstr(m, "device cuda") && (strstr(m, "GPU") || strstr(m, "CUDA")),
          "message: %s", m);
    hft_recipe_free(r);
}

/* bf16 autocast for 200 steps of the tiny GPT: every logged loss (a mean over 10 steps) within 2% of the
 * fp32 run's, and the runs really differ (autocast is on). */
TEST(bf16_training_stays_within_a_band_of_fp32) {
    write_config(0.0);
    char *f32_ov[] = {"max_steps=200", "logging_steps=10"},
         *bf16_ov[] = {"max_steps=200", "logging_steps=10", "bf16=true"};
    CHECK(train("band32", "", 2, f32_ov) && train("band16", "", 3, bf16_ov), "both runs finish");
    double a[32], b[32], worst = 0;
    int na = logged_losses("band32", a, 32), nb = logged_losses("band16", b, 32);
    CHECK(na == nb && na >= 20, "%d and %d logged losses", na, nb);
    bool differ = false;
    for (int i = 0; i < na && i < nb; i++) {
        double rel = fabs(a[i] - b[i]) / a[i];
        if (rel > worst) worst = rel;
        differ |= a[i] != b[i];
    }
    printf("  fp32 loss %.4f -> %.4f; bf16 within %.3f%% of it at every log line\n", a[0], a[na - 1],
           100 * worst);
    CHECK(worst <= 0.02, "bf16's loss is %.2f%% away from fp32's", 100 * worst);
    CHECK(differ, "the bf16 run computes something else than the fp32 one");
    CHECK(a[na - 1] < a[0] - 0.5 && b[nb - 1] < b[0] - 0.5, "both learn");
    write_config(0.1);
}

/* bf16 and fp16 (with its loss scaler's state) resume bit-identical: a run continued from its step-3
 * checkpoint ends where the uninterrupted run does. And LoRA trains under bf16. */
TEST(mixed_precision_resume_is_bit_identical) {
    const char *modes[] = {"bf16=true", "fp16=true"};
    for (int i = 0; i < 2; i++) {
        char full[32], part[32], cmd[1024];
        snprintf(full, sizeof full, "mp%d", i);
        snprintf(part, sizeof part, "mp%dr", i);
        char *ov[] = {(char *)modes[i], "max_steps=6", "save_steps=3"};
        CHECK(train(full, "", 3, ov), "%s: the uninterrupted run", modes[i]);
        char *a = in_root(full), *b = in_root(part);
        snprintf(cmd, sizeof cmd, "mkdir -p %s && cp -r %s/checkpoint-3 %s/", b, a, b);
        CHECK(system(cmd) == 0, "%s", cmd);
        char *rov[] = {(char *)modes[i], "max_steps=6", "save_steps=3", "resume_from_checkpoint=true"};
        CHECK(train(part, "", 4, rov), "%s: the resumed run", modes[i]);
        int64_t na, nb;
        double *pa = params_of(a, &na), *pb = params_of(b, &nb);
        int64_t diff = 0;
        for (int64_t j = 0; j < na && na == nb; j++) diff += pa[j] != pb[j];
        CHECK(na == nb && na > 0 && diff == 0, "%s: %lld of %lld parameters differ after resuming", modes[i],
              (long long)diff, (long long)na);
        free(pa), free(pb), free(a), free(b);
    }
    char *lora_ov[] = {"bf16=true", "max_steps=4"};
    CHECK(train("mplora", LORA_SECTION, 2, lora_ov), "LoRA under bf16");
    char *adapter = in_root("mplora/adapter_model.safetensors");
    CHECK(fs_exists(adapter), "the adapter is saved");
    free(adapter);
}

int main(int argc, char **argv) {
    setup();
    static const test_case cases[] = {
        {"accumulation_equals_the_larger_batch", accumulation_equals_the_larger_batch},
        {"resume_is_bit_identical_and_logs_the_same", resume_is_bit_identical_and_logs_the_same},
        {"kill_during_a_save_leaves_the_last_checkpoint_whole",
         kill_during_a_save_leaves_the_last_checkpoint_whole},
        {"rotation_keeps_the_newest_and_the_best", rotation_keeps_the_newest_and_the_best},
        {"a_signal_stops_cleanly_with_a_checkpoint", a_signal_stops_cleanly_with_a_checkpoint},
        {"another_models_checkpoint_is_refused_and_export_loads",
         another_models_checkpoint_is_refused_and_export_loads},
        {"early_stopping_ends_a_run_that_stops_improving", early_stopping_ends_a_run_that_stops_improving},
        {"lora_resume_is_bit_identical_and_the_base_is_checked",
         lora_resume_is_bit_identical_and_the_base_is_checked},
        {"device_cuda_is_a_clear_error_where_it_cannot_run",
         device_cuda_is_a_clear_error_where_it_cannot_run},
        {"bf16_training_stays_within_a_band_of_fp32", bf16_training_stays_within_a_band_of_fp32},
        {"mixed_precision_resume_is_bit_identical", mixed_precision_resume_is_bit_identical},
    };
    int rc = test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    fs_remove_tree(root);
    return rc;
}
