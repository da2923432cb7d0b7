/* Checkpoint folders (see checkpoint.h). */
#include "trainer/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trainer/fsutil.h"

static const char *const tokenizer_files[] = {
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",         "merges.txt",
    "vocab.txt",      "added_tokens.json",     "tokenizer.model",         "chat_template.jinja"};

int64_t checkpoint_step_of(const char *name) {
    const char *p = "checkpoint-";
    size_t n = strlen(p);
    if (strncmp(name, p, n) != 0 || !name[n]) return -1;
    int64_t v = 0;
    for (const char *c = name + n; *c; c++) {
        if (*c < '0' || *c > '9' || v > (INT64_MAX - 9) / 10) return -1;
        v = v * 10 + (*c - '0');
    }
    return v;
}

static bool has_all(const char *dir, const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *p = hft_path_join(dir, names[i]);
        bool ok = p && fs_exists(p);
        free(p);
        if (!ok) return false;
    }
    return true;
}

/* The state files, and the weights: a whole model, or a LoRA adapter (PEFT's two files). */
static bool complete(const char *dir) {
    const char *state[] = {"training_state.h5", "trainer_state.json"};
    const char *model[] = {"model.safetensors", "config.json"};
    const char *adapter[] = {"adapter_model.safetensors", "adapter_config.json"};
    return has_all(dir, state, 2) && (has_all(dir, model, 2) || has_all(dir, adapter, 2));
}

/* The checkpoint steps in output_dir, ascending. */
static int list_steps(const char *output_dir, int64_t **steps) {
    *steps = NULL;
    DIR *d = opendir(output_dir);
    if (!d) return 0;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int64_t s = checkpoint_step_of(e->d_name);
        if (s < 0) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            int64_t *t = realloc(*steps, (size_t)cap * sizeof *t);
            if (!t) break;
            *steps = t;
        }
        (*steps)[n++] = s;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a run has few checkpoints */
        for (int j = i; j > 0 && (*steps)[j - 1] > (*steps)[j]; j--) {
            int64_t t = (*steps)[j];
            (*steps)[j] = (*steps)[j - 1];
            (*steps)[j - 1] = t;
        }
    return n;
}

static char *step_dir(const char *output_dir, int64_t step) {
    char name[64];
    snprintf(name, sizeof name, "checkpoint-%lld", (long long)step);
    return hft_path_join(output_dir, name);
}

char *checkpoint_newest(const char *output_dir) {
    int64_t *steps;
    int n = list_steps(output_dir, &steps);
    char *found = NULL;
    for (int i = n - 1; i >= 0 && !found; i--) {
        char *p = step_dir(output_dir, steps[i]);
        if (p && complete(p))
            found = p;
        else
            free(p);
    }
    free(steps);
    return found;
}

static hft_status copy_known_files(const char *from_dir, const char *to_dir, const char *const *names,
                                   size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *src = hft_path_join(from_dir, names[i]), *dst = hft_path_join(to_dir, names[i]);
        hft_status st = HFT_OK;
        if (!src || !dst)
            st = hft_error(HFT_ENOMEM, "out of memory");
        else if (fs_exists(src))
            st = fs_copy_file(src, dst);
        free(src);
        free(dst);
        HFT_TRY(st);
    }
    return HFT_OK;
}

hft_status checkpoint_write_model(const char *dir, hft_model *model, const char *tokenizer_dir,
                                  const char *model_dir) {
    HFT_TRY(fs_mkdir_p(dir));
    HFT_TRY(hft_model_has_adapter(model) ? hft_lora_save(model, dir) : hft_model_save(model, dir));
    if (tokenizer_dir && fs_is_dir(tokenizer_dir))
        HFT_TRY(copy_known_files(tokenizer_dir, dir, tokenizer_files,
                                 sizeof tokenizer_files / sizeof tokenizer_files[0]));
    if (model_dir && fs_is_dir(model_dir)) {
        const char *gen[] = {"generation_config.json"};
        HFT_TRY(copy_known_files(model_dir, dir, gen, 1));
    }
    return HFT_OK;
}

static hft_status write_recipe(const char *dir, const hft_recipe *r) {
    char *path = hft_path_join(dir, "recipe.yaml");
    char *tmp = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&tmp, &len);
    hft_status st = path && mem ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    if (mem) {
        fprintf(mem, "# the recipe this checkpoint was trained with, as resolved\n");
        hft_recipe_write(r, mem);
        fclose(mem);
    }
    if (st == HFT_OK) st = hft_write_text(path, tmp, false);
    free(tmp);
    free(path);
    return st;
}

hft_status checkpoint_write(const char *output_dir, int64_t step, const checkpoint_parts *p, char **path) {
    if (path) *path = NULL;
    char tmp_name[96];
    snprintf(tmp_name, sizeof tmp_name, ".tmp-checkpoint-%lld-%ld", (long long)step, (long)getpid());
    char *tmp = hft_path_join(output_dir, tmp_name), *final = step_dir(output_dir, step), *state = NULL;
    hft_status st = tmp && final ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    if (st == HFT_OK) st = fs_remove_tree(tmp);
    if (st == HFT_OK) st = checkpoint_write_model(tmp, p->model, p->tokenizer_dir, p->model_dir);
    if (st == HFT_OK) {
        state = hft_path_join(tmp, "training_state.h5");
        st = state ? train_state_save(state, p->state, p->optimizer, p->optimizer_fetch)
                   : hft_error(HFT_ENOMEM, "out of memory");
    }
    if (st == HFT_OK) st = fs_fsync_path(state);
    if (st == HFT_OK) st = logbook_write_state(p->log, tmp);
    if (st == HFT_OK) st = write_recipe(tmp, p->recipe);
    if (st == HFT_OK) st = hft_fsync_dir(tmp);
    /* the same step saved again (a resumed run stopping where it started): the new one replaces it */
    if (st == HFT_OK && fs_exists(final)) st = fs_remove_tree(final);
    if (st == HFT_OK && rename(tmp, final) != 0)
        st = hft_error(HFT_EIO, "%s: cannot rename %s into place: %s", final, tmp, strerror(errno));
    if (st == HFT_OK) st = hft_fsync_dir(output_dir);
    if (st != HFT_OK && tmp) fs_remove_tree(tmp); /* keeps the first error's message */
    if (st == HFT_OK && path)
        *path = final;
    else
        free(final);
    free(tmp);
    free(state);
    return st;
}

hft_status checkpoint_rotate(const char *output_dir, int64_t limit, const char *best) {
    if (limit <= 0) return HFT_OK;
    int64_t *steps;
    int n = list_steps(output_dir, &steps);
    int64_t best_step = -1;
    if (best && *best) {
        const char *slash = strrchr(best, '/');
        best_step = checkpoint_step_of(slash ? slash + 1 : best);
    }
    int kept = n;
    hft_status st = HFT_OK;
    for (int i = 0; i < n - 1 && kept > limit && st == HFT_OK; i++) { /* oldest first; never the newest */
        if (steps[i] == best_step) continue;
        char *p = step_dir(output_dir, steps[i]);
        st = p ? fs_remove_tree(p) : hft_error(HFT_ENOMEM, "out of memory");
        free(p);
        kept--;
    }
    free(steps);
    return st;
}
