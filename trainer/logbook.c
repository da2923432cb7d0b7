/* The logbook of a run (see logbook.h). Files are small and rewritten whole, atomically, at each entry, so
 * a kill at any moment leaves each of them complete. */
#include "trainer/logbook.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "trainer/fsutil.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void log_entry_set(log_entry *e, const char *name, double value) {
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->names[i], name) == 0) {
            e->values[i] = value;
            return;
        }
    if (e->n == (int)(sizeof e->values / sizeof e->values[0])) return;
    snprintf(e->names[e->n], sizeof e->names[0], "%s", name);
    e->values[e->n++] = value;
}

double log_entry_get(const log_entry *e, const char *name, double missing) {
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->names[i], name) == 0) return e->values[i];
    return missing;
}

hft_status logbook_init(logbook *lb, const char *output_dir, bool writes) {
    memset(lb, 0, sizeof *lb);
    lb->writes = writes;
    if (writes) HFT_TRY(fs_mkdir_p(output_dir));
    lb->output_dir = strdup(output_dir);
    if (!lb->output_dir) return hft_error(HFT_ENOMEM, "out of memory");
    lb->tty = isatty(STDOUT_FILENO);
    lb->started = now();
    return HFT_OK;
}

void logbook_free(logbook *lb) {
    free(lb->output_dir);
    free(lb->history);
    memset(lb, 0, sizeof *lb);
}

/* "step" and the like are integers in HF's files. */
static bool integral_field(const char *name) {
    return strcmp(name, "step") == 0 || strcmp(name, "num_input_tokens_seen") == 0 ||
           strcmp(name, "total_flos") == 0;
}

static cJSON *entry_json(const log_entry *e) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < e->n; i++) {
        double v = e->values[i];
        if (!isfinite(v))
            cJSON_AddNullToObject(o, e->names[i]);
        else if (integral_field(e->names[i]))
            cJSON_AddNumberToObject(o, e->names[i], floor(v));
        else
            cJSON_AddNumberToObject(o, e->names[i], v);
    }
    return o;
}

static hft_status write_metrics(const logbook *lb) {
    size_t cap = 4096, n = 0;
    char *text = malloc(cap);
    if (!text) return hft_error(HFT_ENOMEM, "out of memory");
    text[0] = '\0';
    for (int i = 0; i < lb->n_history; i++) {
        cJSON *o = entry_json(&lb->history[i]);
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        size_t len = line ? strlen(line) : 0;
        if (n + len + 2 > cap) {
            while (n + len + 2 > cap) cap *= 2;
            char *t = realloc(text, cap);
            if (!t) {
                free(line);
                free(text);
                return hft_error(HFT_ENOMEM, "out of memory");
            }
            text = t;
        }
        memcpy(text + n, line, len);
        n += len;
        text[n++] = '\n';
        text[n] = '\0';
        free(line);
    }
    char *path = hft_path_join(lb->output_dir, "metrics.jsonl");
    hft_status st = path ? hft_write_text(path, text, false) : hft_error(HFT_ENOMEM, "out of memory");
    free(path);
    free(text);
    return st;
}

/* The loss (left axis) and learning rate (right axis) against the step. */
static hft_status write_svg(const logbook *lb) {
    const double W = 720, H = 360, L = 60, R = 60, T = 30, B = 40;
    double xmax = 1, lmin = INFINITY, lmax = -INFINITY, rmax = 0;
    for (int i = 0; i < lb->n_history; i++) {
        const log_entry *e = &lb->history[i];
        double s = log_entry_get(e, "step", NAN);
        if (s > xmax) xmax = s;
        const char *keys[2] = {"loss", "eval_loss"};
        for (int k = 0; k < 2; k++) {
            double v = log_entry_get(e, keys[k], NAN);
            if (isfinite(v)) lmin = fmin(lmin, v), lmax = fmax(lmax, v);
        }
        double lr = log_entry_get(e, "learning_rate", NAN);
        if (isfinite(lr)) rmax = fmax(rmax, lr);
    }
    if (!isfinite(lmin)) lmin = 0, lmax = 1;
    if (lmax - lmin < 1e-9) lmax = lmin + 1;
    if (rmax <= 0) rmax = 1;
    size_t cap = 65536 + (size_t)lb->n_history * 96;
    char *s = malloc(cap);
    if (!s) return hft_error(HFT_ENOMEM, "out of memory");
    size_t n = 0;
#define OUT(...) n += (size_t)snprintf(s + n, n < cap ? cap - n : 0, __VA_ARGS__)
    OUT("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
        "font-size=\"12\">\n",
        W, H);
    OUT("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    OUT("<text x=\"%g\" y=\"18\">training loss (blue), eval loss (orange), learning rate (grey, right "
        "axis)</text>\n",
        L);
    OUT("<path d=\"M%g %g V%g H%g V%g\" stroke=\"black\" fill=\"none\"/>\n", L, T, H - B, W - R, T);
    OUT("<text x=\"4\" y=\"%g\">%.3g</text><text x=\"4\" y=\"%g\">%.3g</text>\n", T + 10, lmax, H - B, lmin);
    OUT("<text x=\"%g\" y=\"%g\">%.2g</text>\n", W - R + 4, T + 10, rmax);
    OUT("<text x=\"%g\" y=\"%g\">step %.0f</text>\n", W - R - 60, H - 12, xmax);
    const char *series[3] = {"loss", "eval_loss", "learning_rate"};
    const char *colour[3] = {"#1f77b4", "#ff7f0e", "#999999"};
    for (int k = 0; k < 3; k++) {
        bool first = true;
        for (int i = 0; i < lb->n_history; i++) {
            double v = log_entry_get(&lb->history[i], series[k], NAN),
                   st = log_entry_get(&lb->history[i], "step", NAN);
            if (!isfinite(v) || !isfinite(st)) continue;
            double x = L + (W - L - R) * st / xmax;
            double y =
                k < 2 ? T + (H - T - B) * (lmax - v) / (lmax - lmin) : T + (H - T - B) * (1 - v / rmax);
            if (first) OUT("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", colour[k]);
            OUT("%.1f,%.1f ", x, y);
            first = false;
        }
        if (!first) OUT("\"/>\n");
    }
    OUT("</svg>\n");
#undef OUT
    hft_status st = HFT_OK;
    if (n >= cap) st = hft_error(HFT_ENOMEM, "curve too large");
    char *path = hft_path_join(lb->output_dir, "curves.svg");
    if (st == HFT_OK) st = path ? hft_write_text(path, s, false) : hft_error(HFT_ENOMEM, "out of memory");
    free(path);
    free(s);
    return st;
}

hft_status logbook_add(logbook *lb, const log_entry *e) {
    if (lb->n_history == lb->cap_history) {
        int cap = lb->cap_history ? 2 * lb->cap_history : 64;
        log_entry *h = realloc(lb->history, (size_t)cap * sizeof *h);
        if (!h) return hft_error(HFT_ENOMEM, "out of memory");
        lb->history = h;
        lb->cap_history = cap;
    }
    lb->history[lb->n_history++] = *e;
    if (!lb->writes) return HFT_OK;
    HFT_TRY(write_metrics(lb));
    return write_svg(lb);
}

hft_status logbook_write_state(const logbook *lb, const char *dir) {
    cJSON *o = cJSON_CreateObject();
    if (lb->has_best) {
        cJSON_AddNumberToObject(o, "best_global_step", (double)lb->best_global_step);
        cJSON_AddNumberToObject(o, "best_metric", lb->best_metric);
        cJSON_AddStringToObject(o, "best_model_checkpoint", lb->best_model_checkpoint);
    } else {
        cJSON_AddNullToObject(o, "best_global_step");
        cJSON_AddNullToObject(o, "best_metric");
        cJSON_AddNullToObject(o, "best_model_checkpoint");
    }
    cJSON_AddNumberToObject(o, "epoch", lb->epoch);
    cJSON_AddNumberToObject(o, "eval_steps", (double)lb->eval_steps);
    cJSON_AddNumberToObject(o, "global_step", (double)lb->global_step);
    cJSON_AddFalseToObject(o, "is_hyper_param_search");
    cJSON_AddTrueToObject(o, "is_local_process_zero");
    cJSON_AddTrueToObject(o, "is_world_process_zero");
    cJSON *hist = cJSON_AddArrayToObject(o, "log_history");
    for (int i = 0; i < lb->n_history; i++) cJSON_AddItemToArray(hist, entry_json(&lb->history[i]));
    cJSON_AddNumberToObject(o, "logging_steps", (double)lb->logging_steps);
    cJSON_AddNumberToObject(o, "max_steps", (double)lb->max_steps);
    cJSON_AddNumberToObject(o, "num_input_tokens_seen", (double)lb->num_input_tokens_seen);
    cJSON_AddNumberToObject(o, "num_train_epochs", lb->num_train_epochs);
    cJSON_AddNumberToObject(o, "save_steps", (double)lb->save_steps);
    cJSON_AddNumberToObject(o, "total_flos", lb->total_flos);
    cJSON_AddNumberToObject(o, "train_batch_size", (double)lb->train_batch_size);
    cJSON_AddNullToObject(o, "trial_name");
    cJSON_AddNullToObject(o, "trial_params");
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    char *path = hft_path_join(dir, "trainer_state.json");
    hft_status st = text && path ? hft_write_text(path, text, false) : hft_error(HFT_ENOMEM, "out of memory");
    free(text);
    free(path);
    return st;
}

hft_status logbook_read_state(logbook *lb, const char *dir) {
    char *path = hft_path_join(dir, "trainer_state.json");
    char *text = path ? hft_read_text(path, NULL) : NULL;
    cJSON *o = text ? cJSON_Parse(text) : NULL;
    hft_status st = HFT_OK;
    if (!o) st = hft_error(HFT_EFORMAT, "%s: missing or not valid JSON", path ? path : dir);
    const cJSON *hist = o ? cJSON_GetObjectItemCaseSensitive(o, "log_history") : NULL;
    lb->n_history = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, hist) {
        log_entry le = {0};
        const cJSON *f;
        cJSON_ArrayForEach(f, e) {
            if (cJSON_IsNumber(f)) log_entry_set(&le, f->string, f->valuedouble);
        }
        if (lb->n_history == lb->cap_history) {
            int cap = lb->cap_history ? 2 * lb->cap_history : 64;
            log_entry *h = realloc(lb->history, (size_t)cap * sizeof *h);
            if (!h) {
                st = hft_error(HFT_ENOMEM, "out of memory");
                break;
            }
            lb->history = h;
            lb->cap_history = cap;
        }
        lb->history[lb->n_history++] = le;
    }
    if (o) {
        const cJSON *bm = cJSON_GetObjectItemCaseSensitive(o, "best_metric");
        const cJSON *bc = cJSON_GetObjectItemCaseSensitive(o, "best_model_checkpoint");
        const cJSON *bs = cJSON_GetObjectItemCaseSensitive(o, "best_global_step");
        lb->has_best = cJSON_IsNumber(bm) && cJSON_IsString(bc);
        if (lb->has_best) {
            lb->best_metric = bm->valuedouble;
            snprintf(lb->best_model_checkpoint, sizeof lb->best_model_checkpoint, "%s", bc->valuestring);
            lb->best_global_step = cJSON_IsNumber(bs) ? (int64_t)bs->valuedouble : 0;
        }
        const cJSON *tok = cJSON_GetObjectItemCaseSensitive(o, "num_input_tokens_seen");
        if (cJSON_IsNumber(tok)) lb->num_input_tokens_seen = (int64_t)tok->valuedouble;
    }
    cJSON_Delete(o);
    free(text);
    free(path);
    return st;
}

static void fmt_duration(double s, char *buf, size_t size) {
    if (!isfinite(s) || s < 0) {
        snprintf(buf, size, "?");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, size, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, size, "%ldm%02lds", t / 60, t % 60);
}

void logbook_progress(logbook *lb, int64_t step, int64_t total, double loss, double lr, double grad_norm,
                      double tokens_per_s) {
    if (!lb->tty) return;
    double elapsed = now() - lb->started;
    char eta[32];
    fmt_duration(step > 0 ? elapsed / (double)step * (double)(total - step) : NAN, eta, sizeof eta);
    int width = 24, filled = total > 0 ? (int)((double)width * (double)step / (double)total) : 0;
    char bar[32];
    for (int i = 0; i < width; i++) bar[i] = i < filled ? '=' : i == filled ? '>' : ' ';
    bar[width] = '\0';
    int n = printf("\rstep %lld/%lld [%s] loss %.4f  lr %.3g  grad norm %.3g  %.0f tok/s  ETA %s",
                   (long long)step, (long long)total, bar, loss, lr, grad_norm, tokens_per_s, eta);
    for (int64_t i = n; i < lb->progress_last_len; i++) putchar(' ');
    lb->progress_last_len = n;
    fflush(stdout);
}

void logbook_progress_clear(logbook *lb) {
    if (lb->tty && lb->progress_last_len) {
        printf("\r%*s\r", (int)lb->progress_last_len, "");
        lb->progress_last_len = 0;
    }
}

void logbook_print(logbook *lb, const log_entry *e, int64_t total) {
    logbook_progress_clear(lb);
    double step = log_entry_get(e, "step", NAN);
    printf("step %.0f/%lld", step, (long long)total);
    for (int i = 0; i < e->n; i++) {
        if (strcmp(e->names[i], "step") == 0) continue;
        double v = e->values[i];
        if (strcmp(e->names[i], "epoch") == 0)
            printf("  epoch %.2f", v);
        else if (fabs(v) >= 1e5 || (fabs(v) < 1e-3 && v != 0))
            printf("  %s %.3g", e->names[i], v);
        else
            printf("  %s %.4f", e->names[i], v);
    }
    printf("\n");
    fflush(stdout);
}
