/* Optimizers and gradient clipping: parity with torch.optim / transformers' Adafactor / lion-pytorch over 50
 * steps of fixed gradients (tests/fixtures/optim, made by make_optim_fixtures.py), bit-exact resume from
 * the named state, frozen parameters, the HF Trainer's default grouping, bad input, and the kernels'
 * independence of the thread count and of how the flat buffers are cut into slices. */
#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"
#include "optim/optim.h"
#include "tests/test_util.h"

#define FIXTURE "tests/fixtures/optim/optim.safetensors"
#define RTOL    1e-6
#define ATOL    1e-6 /* × max|reference| */

/* ---------------------------------------------------------------- the fixture problem */

typedef struct fixture {
    hft_safetensors *file;
    cJSON *problem, *cases;
    int steps, n_saved;
    int saved[16];
} fixture;

static bool fixture_open(fixture *fx) {
    memset(fx, 0, sizeof *fx);
    if (hft_safetensors_open(FIXTURE, &fx->file) != HFT_OK) {
        CHECK(false, "cannot open %s: %s", FIXTURE, hft_error_message());
        return false;
    }
    const char *p = hft_safetensors_metadata(fx->file, "problem"),
               *c = hft_safetensors_metadata(fx->file, "cases");
    fx->problem = p ? cJSON_Parse(p) : NULL;
    fx->cases = c ? cJSON_Parse(c) : NULL;
    if (!fx->problem || !fx->cases) {
        CHECK(false, "%s: metadata 'problem' or 'cases' missing or not JSON", FIXTURE);
        return false;
    }
    fx->steps = cJSON_GetObjectItemCaseSensitive(fx->problem, "steps")->valueint;
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(fx->problem, "saved")) {
        if (fx->n_saved < 16) fx->saved[fx->n_saved++] = e->valueint;
    }
    return true;
}

static void fixture_close(fixture *fx) {
    cJSON_Delete(fx->problem);
    cJSON_Delete(fx->cases);
    hft_safetensors_close(fx->file);
}

static hft_tensor *load(const fixture *fx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static hft_tensor *load(const fixture *fx, const char *fmt, ...) {
    char key[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(key, sizeof key, fmt, ap);
    va_end(ap);
    hft_tensor *t = NULL;
    if (hft_safetensors_load(fx->file, key, HFT_F32, false, &t) != HFT_OK) {
        CHECK(false, "fixture tensor %s: %s", key, hft_error_message());
        return NULL;
    }
    return t;
}

static bool has_tag(const cJSON *param, const char *tag) {
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(param, "tags")) {
        if (strcmp(e->valuestring, tag) == 0) return true;
    }
    return false;
}

/* The problem's parameters at their initial values, finalized. */
static hft_paramset *problem_params(const fixture *fx) {
    hft_paramset *ps = hft_paramset_new();
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(fx->problem, "params")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(p, "name")->valuestring;
        uint32_t tags =
            (has_tag(p, "frozen") ? HFT_PARAM_FROZEN : 0) | (has_tag(p, "no_decay") ? HFT_PARAM_NO_DECAY : 0);
        hft_tensor *v = load(fx, "problem/init/%s", name);
        if (!v || hft_paramset_add(ps, name, v, tags) != HFT_OK)
            CHECK(false, "add %s: %s", name, hft_error_message());
    }
    CHECK_OK(hft_paramset_finalize(ps, 1 << 10), NULL);
    return ps;
}

/* The gradients of step k (0-based) written where backward would write them. */
static void set_grads(const fixture *fx, hft_paramset *ps, int k) {
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        if (p->tags & HFT_PARAM_FROZEN) continue;
        char key[256];
        snprintf(key, sizeof key, "problem/grads/%s", p->name);
        const hft_st_entry *e = hft_safetensors_find(fx->file, key);
        size_t bytes = hft_tensor_nbytes(p->grad);
        memcpy(hft_tensor_data(p->grad), (const char *)e->data + (size_t)k * bytes, bytes);
        p->value->flags |= HFT_TENSOR_GRAD_SET;
    }
}

static double jnum(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}
static bool jbool(const cJSON *o, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, key));
}

/* A case's optimizer config and groups (the name arrays point into the JSON). */
typedef struct case_setup {
    hft_optim_config cfg;
    hft_param_group groups[2];
    const char *names[2][8];
    double max_norm;
} case_setup;

static void case_config(const cJSON *c, case_setup *s) {
    hft_optim_kind kind = HFT_OPTIM_SGD;
    const char *optim = cJSON_GetObjectItemCaseSensitive(c, "optim")->valuestring;
    CHECK_OK(hft_optim_kind_from_name(optim, &kind), NULL);
    s->cfg = hft_optim_defaults(kind);
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(c, "config");
    if (kind == HFT_OPTIM_SGD) {
        s->cfg.momentum = jnum(cfg, "momentum");
        s->cfg.dampening = jnum(cfg, "dampening");
        s->cfg.nesterov = jbool(cfg, "nesterov");
    } else if (kind == HFT_OPTIM_ADAFACTOR) {
        s->cfg.adafactor_eps1 = jnum(cfg, "eps1");
        s->cfg.adafactor_eps2 = jnum(cfg, "eps2");
        s->cfg.clip_threshold = jnum(cfg, "clip_threshold");
        s->cfg.decay_rate = jnum(cfg, "decay_rate");
        s->cfg.has_beta1 = jbool(cfg, "has_beta1");
        s->cfg.beta1 = jnum(cfg, "beta1");
        s->cfg.scale_parameter = jbool(cfg, "scale_parameter");
        s->cfg.relative_step = jbool(cfg, "relative_step");
        s->cfg.warmup_init = jbool(cfg, "warmup_init");
    } else {
        s->cfg.beta1 = jnum(cfg, "beta1");
        s->cfg.beta2 = jnum(cfg, "beta2");
        if (kind != HFT_OPTIM_LION) {
            s->cfg.eps = jnum(cfg, "eps");
            s->cfg.amsgrad = jbool(cfg, "amsgrad");
        }
    }
    int g = 0;
    const cJSON *grp, *e;
    cJSON_ArrayForEach(grp, cJSON_GetObjectItemCaseSensitive(c, "groups")) {
        int n = 0;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(grp, "params")) s->names[g][n++] =
            e->valuestring;
        s->groups[g] = (hft_param_group){.lr = jnum(grp, "lr"),
                                         .weight_decay = jnum(grp, "weight_decay"),
                                         .n_params = n,
                                         .params = s->names[g]};
        g++;
    }
    s->cfg.lr = s->groups[0].lr;
    s->max_norm = jnum(c, "max_grad_norm");
}

/* Worst error of a case, as a share of max|ref| and of the tolerance */
typedef struct errstat {
    double scaled, used;
} errstat;

static void compare(const char *what, const hft_tensor *t, const hft_tensor *ref, errstat *es) {
    long n = (long)hft_tensor_numel(ref);
    if (!t || hft_tensor_numel(t) != n) {
        CHECK(false, "%s: missing or of the wrong size", what);
        return;
    }
    double *got = malloc(sizeof(double) * (size_t)n), *want = malloc(sizeof(double) * (size_t)n);
    hft_tensor_to_f64(t, got);
    hft_tensor_to_f64(ref, want);
    double ref_max = 0;
    for (long i = 0; i < n; i++) ref_max = fmax(ref_max, fabs(want[i]));
    for (long i = 0; i < n; i++) {
        double err = fabs(got[i] - want[i]);
        if (ref_max > 0) es->scaled = fmax(es->scaled, err / ref_max);
        double tol = ATOL * ref_max + RTOL * fabs(want[i]);
        es->used = fmax(es->used, tol > 0 ? err / tol : (err > 0 ? INFINITY : 0));
    }
    test_close(what, got, want, n, RTOL, ATOL);
    free(got);
    free(want);
}

/* Runs a case for `steps` steps from the parameters' current values (a fresh optimizer when *opt is
 * NULL), optionally comparing with the fixture as it goes. */
static void run_steps(const fixture *fx, hft_paramset *ps, const case_setup *s, hft_optimizer **opt, int from,
                      int to, const char *case_name, errstat *es) {
    if (!*opt) CHECK_OK(hft_optimizer_new(ps, &s->cfg, 2, s->groups, opt), NULL);
    if (!*opt) return;
    hft_tensor *norms = NULL;
    if (case_name && s->max_norm > 0) norms = load(fx, "%s/clip_norms", case_name);
    for (int k = from; k < to; k++) {
        set_grads(fx, ps, k);
        if (s->max_norm > 0) {
            double norm = 0;
            CHECK_OK(hft_clip_grad_norm(ps, s->max_norm, &norm), NULL);
            if (norms) {
                double want = ((const float *)hft_tensor_data(norms))[k];
                double err = fabs(norm - want);
                es->scaled = fmax(es->scaled, err / want);
                es->used = fmax(es->used, err / (RTOL * want));
                CHECK(err <= RTOL * want, "%s: clip norm at step %d: got %.9g, want %.9g", case_name, k + 1,
                      norm, want);
            }
        }
        CHECK_OK(hft_optimizer_step(*opt, 1.0), NULL);
        if (!case_name) continue;
        for (int j = 0; j < fx->n_saved; j++) {
            if (fx->saved[j] != k + 1) continue;
            char step[32];
            snprintf(step, sizeof step, "step%d", k + 1);
            for (int i = 0; i < hft_paramset_count(ps); i++) {
                hft_param *p = hft_paramset_get(ps, i);
                if (p->tags & HFT_PARAM_FROZEN) continue;
                char key[256], what[300];
                snprintf(key, sizeof key, "%s/%s", step, p->name);
                hft_tensor *ref = load(fx, "%s/%s", case_name, key);
                snprintf(what, sizeof what, "%s %s", case_name, key);
                if (ref) compare(what, p->value, ref, es);
                hft_tensor_free(ref);
            }
        }
    }
    hft_tensor_free(norms);
}

/* ---------------------------------------------------------------- parity */

TEST(test_parity_all_cases) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    const cJSON *c;
    int n_cases = 0;
    cJSON_ArrayForEach(c, fx.cases) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        case_setup s;
        case_config(c, &s);
        hft_paramset *ps = problem_params(&fx);
        hft_optimizer *opt = NULL;
        errstat es = {0};
        run_steps(&fx, ps, &s, &opt, 0, fx.steps, name, &es);
        CHECK(opt && hft_optimizer_steps(opt) == fx.steps, "%s: step count", name);
        /* the state after the last step, under the names torch's state has (other names: none) */
        int matched = 0;
        for (int i = 0; opt && i < hft_optimizer_state_count(opt); i++) {
            const char *sname;
            hft_tensor *st;
            CHECK_OK(hft_optimizer_state(opt, i, &sname, &st), NULL);
            char key[300];
            snprintf(key, sizeof key, "%s/state/%s", name, sname);
            if (!hft_safetensors_find(fx.file, key)) {
                CHECK(false, "%s: state %s has no counterpart in torch's state", name, sname);
                continue;
            }
            hft_tensor *ref = load(&fx, "%s/state/%s", name, sname);
            if (ref) compare(key, st, ref, &es);
            hft_tensor_free(ref);
            CHECK(strstr(sname, "frozen") == NULL, "%s: a frozen parameter has state %s", name, sname);
            matched++;
        }
        char prefix[128];
        int in_file = 0;
        snprintf(prefix, sizeof prefix, "%s/state/", name);
        for (int i = 0; i < hft_safetensors_count(fx.file); i++)
            in_file += strncmp(hft_safetensors_entry(fx.file, i)->name, prefix, strlen(prefix)) == 0;
        CHECK(matched == in_file, "%s: %d state tensors, torch has %d", name, matched, in_file);
        /* frozen: untouched, bit for bit */
        hft_param *fz = hft_paramset_find(ps, "frozen");
        hft_tensor *fz0 = load(&fx, "problem/init/%s", "frozen");
        CHECK(fz && fz0 &&
                  memcmp(hft_tensor_data(fz->value), hft_tensor_data(fz0), hft_tensor_nbytes(fz0)) == 0 &&
                  fz->value->version == 0,
              "%s: the frozen parameter changed", name);
        hft_tensor_free(fz0);
        printf("  %-40s max |err| / max|ref| %.2e, %5.1f%% of the tolerance (%s)\n", name, es.scaled,
               100 * es.used, cJSON_GetObjectItemCaseSensitive(c, "reference")->valuestring);
        hft_optimizer_free(opt);
        hft_paramset_free(ps);
        n_cases++;
    }
    CHECK(n_cases >= 16, "only %d cases in the fixture", n_cases);
    fixture_close(&fx);
}

/* 20 steps, every state tensor copied out, a new optimizer given them back with the step count, 30 more:
 * bit-identical to 50 steps in one go (as a checkpoint resume must be). */
TEST(test_state_round_trip) {
    fixture fx;
    if (!fixture_open(&fx)) return;
    const cJSON *c;
    cJSON_ArrayForEach(c, fx.cases) {
        const char *name = cJSON_GetObjectItemCaseSensitive(c, "name")->valuestring;
        case_setup s;
        case_config(c, &s);
        errstat es = {0};
        hft_paramset *a = problem_params(&fx), *b = problem_params(&fx);
        hft_optimizer *oa = NULL, *ob = NULL;
        run_steps(&fx, a, &s, &oa, 0, fx.steps, NULL, &es);
        run_steps(&fx, b, &s, &ob, 0, 20, NULL, &es);
        if (!oa || !ob) continue;
        int n = hft_optimizer_state_count(ob);
        hft_tensor **saved = calloc((size_t)n + 1, sizeof *saved);
        char **names = calloc((size_t)n + 1, sizeof *names);
        for (int i = 0; i < n; i++) {
            const char *sn;
            hft_tensor *st;
            CHECK_OK(hft_optimizer_state(ob, i, &sn, &st), NULL);
            saved[i] = hft_tensor_new(HFT_F32, st->ndim, st->shape);
            CHECK_OK(hft_tensor_copy(saved[i], st), NULL);
            names[i] = strdup(sn);
        }
        int64_t steps = hft_optimizer_steps(ob);
        hft_optimizer_free(ob);
        ob = NULL;
        CHECK_OK(hft_optimizer_new(b, &s.cfg, 2, s.groups, &ob), NULL);
        CHECK(hft_optimizer_state_count(ob) == n, "%s: state count changed", name);
        for (int i = 0; i < n; i++) {
            const char *sn;
            hft_tensor *st;
            CHECK_OK(hft_optimizer_state(ob, i, &sn, &st), NULL);
            CHECK(strcmp(sn, names[i]) == 0, "%s: state %d is %s, was %s", name, i, sn, names[i]);
            CHECK_OK(hft_tensor_copy(st, saved[i]), NULL);
            hft_tensor_free(saved[i]);
            free(names[i]);
        }
        free(saved);
        free(names);
        hft_optimizer_set_steps(ob, steps);
        run_steps(&fx, b, &s, &ob, 20, fx.steps, NULL, &es);
        int same = 1;
        for (int i = 0; i < hft_paramset_count(a); i++) {
            hft_param *pa = hft_paramset_get(a, i), *pb = hft_paramset_get(b, i);
            same &= memcmp(hft_tensor_data(pa->value), hft_tensor_data(pb->value),
                           hft_tensor_nbytes(pa->value)) == 0;
        }
        CHECK(same, "%s: 20 steps + resume + 30 steps differs from 50 steps", name);
        CHECK(hft_optimizer_steps(ob) == fx.steps, "%s: steps after resume", name);
        hft_optimizer_free(oa);
        hft_optimizer_free(ob);
        hft_paramset_free(a);
        hft_paramset_free(b);
    }
    fixture_close(&fx);
}

/* ---------------------------------------------------------------- grouping, frozen, versions */

static hft_paramset *small_set(void) {
    hft_paramset *ps = hft_paramset_new();
    test_rng r = {7};
    hft_paramset_add(ps, "w", test_random(&r, HFT_F32, 2, (int64_t[]){5, 3}, -1, 1), 0);
    hft_paramset_add(ps, "b", test_random(&r, HFT_F32, 1, (int64_t[]){3}, -1, 1), HFT_PARAM_NO_DECAY);
    hft_paramset_add(ps, "norm.weight", test_random(&r, HFT_F32, 1, (int64_t[]){5}, -1, 1),
                     HFT_PARAM_NO_DECAY);
    hft_paramset_add(ps, "base", test_random(&r, HFT_F32, 2, (int64_t[]){4, 4}, -1, 1), HFT_PARAM_FROZEN);
    hft_paramset_finalize(ps, 0);
    return ps;
}

/* n_groups 0: weight decay for all but the NO_DECAY parameters. With zero gradients AdamW's step is its
 * decay alone: p·(1 - lr·wd) for the decay group, nothing for the rest. */
TEST(test_hf_default_grouping) {
    hft_paramset *ps = small_set();
    hft_optim_config cfg = hft_optim_defaults(HFT_OPTIM_ADAMW);
    cfg.lr = 0.01;
    cfg.weight_decay = 0.1;
    hft_optimizer *opt = NULL;
    CHECK_OK(hft_optimizer_new(ps, &cfg, 0, NULL, &opt), NULL);
    if (!opt) return;
    float before[4][16];
    for (int i = 0; i < 4; i++)
        memcpy(before[i], hft_tensor_data(hft_paramset_get(ps, i)->value),
               hft_tensor_nbytes(hft_paramset_get(ps, i)->value));
    hft_paramset_zero_grad(ps); /* never written: the step materializes zeros */
    CHECK_OK(hft_optimizer_step(opt, 0.5), NULL);
    CHECK(hft_optimizer_group_count(opt) == 2, "groups: %d", hft_optimizer_group_count(opt));
    CHECK(hft_optimizer_group_lr(opt, 0) == 0.005 && hft_optimizer_group_lr(opt, 1) == 0.005,
          "group lr %g %g", hft_optimizer_group_lr(opt, 0), hft_optimizer_group_lr(opt, 1));
    const float *w = hft_tensor_data(hft_paramset_get(ps, 0)->value);
    float decay = (float)(1.0 - 0.005 * 0.1);
    int ok = 1;
    for (int i = 0; i < 15; i++) ok &= w[i] == before[0][i] * decay;
    CHECK(ok, "w was not decayed by lr·wd");
    for (int p = 1; p < 4; p++)
        CHECK(memcmp(hft_tensor_data(hft_paramset_get(ps, p)->value), before[p],
                     hft_tensor_nbytes(hft_paramset_get(ps, p)->value)) == 0,
              "%s changed (no decay or frozen)", hft_paramset_get(ps, p)->name);
    CHECK(hft_paramset_get(ps, 0)->value->version == 1 && hft_paramset_get(ps, 1)->value->version == 1 &&
              hft_paramset_get(ps, 3)->value->version == 0,
          "versions %u %u %u", hft_paramset_get(ps, 0)->value->version,
          hft_paramset_get(ps, 1)->value->version, hft_paramset_get(ps, 3)->value->version);
    /* named state: the three trainable parameters, none for the frozen one */
    CHECK(hft_optimizer_state_count(opt) == 6, "state count %d", hft_optimizer_state_count(opt));
    for (int i = 0; i < hft_optimizer_state_count(opt); i++) {
        const char *name;
        hft_tensor *t;
        CHECK_OK(hft_optimizer_state(opt, i, &name, &t), NULL);
        CHECK(!strstr(name, "base"), "frozen parameter has state %s", name);
    }
    const char *name;
    hft_tensor *t;
    CHECK_OK(hft_optimizer_state(opt, 0, &name, &t), NULL);
    CHECK(strcmp(name, "exp_avg/w") == 0 && t->ndim == 2 && t->shape[0] == 5 && t->shape[1] == 3,
          "state 0: %s", name);
    hft_optimizer_free(opt);
    hft_paramset_free(ps);
}

static hft_status new_with(hft_paramset *ps, hft_optim_config cfg, int n_groups, const hft_param_group *g) {
    hft_optimizer *opt = NULL;
    hft_error_clear();
    hft_status st = hft_optimizer_new(ps, &cfg, n_groups, g, &opt);
    hft_optimizer_free(opt);
    return st;
}

#define EXPECT_ERROR(expr, ...)                                                                              \
    do {                                                                                                     \
        hft_status st_ = (expr);                                                                             \
        const char *msg_ = hft_error_message();                                                              \
        const char *want_[] = {__VA_ARGS__};                                                                 \
        CHECK(st_ == HFT_EINVAL, "%s: status %d (%s)", #expr, (int)st_, msg_);                               \
        for (size_t w_ = 0; w_ < sizeof want_ / sizeof want_[0]; w_++)                                       \
            CHECK(strstr(msg_, want_[w_]), "%s: message '%s' lacks '%s'", #expr, msg_, want_[w_]);           \
    } while (0)

TEST(test_bad_input) {
    hft_optim_kind kind;
    hft_error_clear();
    EXPECT_ERROR(hft_optim_kind_from_name("adamw_bogus", &kind), "adamw_bogus", "adamw_torch_fused",
                 "adamw_torch", "sgd", "adafactor", "lion");
    CHECK_OK(hft_optim_kind_from_name("adamw_torch_fused", &kind), NULL);
    CHECK(kind == HFT_OPTIM_ADAMW, "adamw_torch_fused");
    CHECK_OK(hft_optim_kind_from_name("lion_32bit", &kind), NULL);
    CHECK(kind == HFT_OPTIM_LION, "lion_32bit");

    hft_paramset *ps = small_set();
    hft_optim_config ok = hft_optim_defaults(HFT_OPTIM_ADAMW), c;
    CHECK_OK(new_with(ps, ok, 0, NULL), NULL);
    c = ok, c.lr = -1;
    EXPECT_ERROR(new_with(ps, c, 0, NULL), "lr", "-1", ">= 0");
    c = ok, c.lr = NAN;
    EXPECT_ERROR(new_with(ps, c, 0, NULL), "lr", "nan");
    c = ok, c.beta2 = 1.0;
    EXPECT_ERROR(new_with(ps, c, 0, NULL), "beta2", "1", "[0, 1)");
    c = ok, c.eps = 0;
    EXPECT_ERROR(new_with(ps, c, 0, NULL), "eps", "0", "> 0");
    c = ok, c.weight_decay = -0.1;
    EXPECT_ERROR(new_with(ps, c, 0, NULL), "weight_decay", "-0.1");
    c = hft_optim_defaults(HFT_OPTIM_SGD), c.nesterov = true;
    EXPECT_ERROR(new_with(ps, c, 0, NULL), "nesterov", "momentum");
    c = hft_optim_defaults(HFT_OPTIM_ADAFACTOR), c.relative_step = false, c.warmup_init = true;
    EXPECT_ERROR(new_with(ps, c, 0, NULL), "warmup_init", "relative_step");

    const char *g0[] = {"w", "b"}, *g1[] = {"b", "norm.weight"}, *g2[] = {"norm.weight"}, *g3[] = {"nope"};
    hft_param_group two[2] = {{0.1, 0.0, 2, g0}, {0.1, 0.0, 2, g1}};
    EXPECT_ERROR(new_with(ps, ok, 2, two), "'b'", "group 0", "group 1");
    hft_param_group missing[1] = {{0.1, 0.0, 2, g0}};
    EXPECT_ERROR(new_with(ps, ok, 1, missing), "'norm.weight'", "no parameter group");
    hft_param_group unknown[2] = {{0.1, 0.0, 2, g0}, {0.1, 0.0, 1, g3}};
    EXPECT_ERROR(new_with(ps, ok, 2, unknown), "'nope'");
    hft_param_group badlr[2] = {{-0.5, 0.0, 2, g0}, {0.1, 0.0, 1, g2}};
    EXPECT_ERROR(new_with(ps, ok, 2, badlr), "group lr", "-0.5");
    hft_param_group good[2] = {{0.1, 0.0, 2, g0}, {0.1, 0.0, 1, g2}};
    CHECK_OK(new_with(ps, ok, 2, good), NULL);

    hft_optimizer *opt = NULL;
    CHECK_OK(hft_optimizer_new(ps, &ok, 0, NULL, &opt), NULL);
    hft_error_clear();
    EXPECT_ERROR(hft_optimizer_step(opt, NAN), "multiplier");
    CHECK(hft_optimizer_steps(opt) == 0, "a refused step counted");
    hft_optimizer_free(opt);
    hft_paramset_free(ps);
}

/* ---------------------------------------------------------------- clipping */

TEST(test_clip) {
    hft_paramset *ps = small_set();
    int64_t n = hft_paramset_trainable_numel(ps);
    float *g = hft_tensor_data(hft_paramset_grads(ps));
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
        g[i] = (float)(0.1 * (double)(i % 7) - 0.3);
        ss += (double)g[i] * g[i];
    }
    for (int i = 0; i < hft_paramset_count(ps); i++)
        hft_paramset_get(ps, i)->value->flags |= HFT_TENSOR_GRAD_SET;
    float *copy = malloc(sizeof(float) * (size_t)n);
    memcpy(copy, g, sizeof(float) * (size_t)n);
    double norm = 0;
    CHECK_OK(hft_clip_grad_norm(ps, 0, &norm), NULL); /* measure only */
    CHECK(fabs(norm - sqrt(ss)) <= 1e-12 * sqrt(ss), "norm %.17g, want %.17g", norm, sqrt(ss));
    CHECK(memcmp(copy, g, sizeof(float) * (size_t)n) == 0, "max_norm 0 changed the gradients");
    CHECK_OK(hft_clip_grad_norm(ps, 100.0, &norm), NULL); /* above the norm: untouched */
    CHECK(memcmp(copy, g, sizeof(float) * (size_t)n) == 0, "a norm below max_norm changed the gradients");
    CHECK_OK(hft_clip_grad_norm(ps, 0.5, &norm), NULL);
    double after = 0;
    for (int64_t i = 0; i < n; i++) after += (double)g[i] * g[i];
    CHECK(fabs(sqrt(after) - 0.5) < 1e-6, "norm after clipping %g", sqrt(after));
    g[3] = INFINITY;
    memcpy(copy, g, sizeof(float) * (size_t)n);
    hft_status st = hft_clip_grad_norm(ps, 0.5, &norm);
    CHECK(st == HFT_ENUMERIC && isinf(norm), "inf gradient: status %d norm %g", (int)st, norm);
    CHECK(memcmp(copy, g, sizeof(float) * (size_t)n) == 0, "a non-finite norm changed the gradients");
    free(copy);
    hft_paramset_free(ps);
}

/* ---------------------------------------------------------------- kernels */

enum { K_SLICES = 9 };

/* Slices of awkward sizes over a flat range longer than several kernel tasks, with a gap. */
static void make_slices(hft_optim_slice *sl, float **params, int64_t *total) {
    static const int64_t sizes[K_SLICES] = {1, 40000, 17, 65536, 3, 99999, 32768, 5, 70001};
    int64_t off = 0;
    for (int i = 0; i < K_SLICES; i++) {
        if (i == 4) off += 11; /* a hole no slice covers */
        sl[i] = (hft_optim_slice){.param = params[i],
                                  .offset = off,
                                  .n = sizes[i],
                                  .lr = 1e-3 * (i + 1),
                                  .weight_decay = i % 3 ? 0.01 * i : 0.0};
        off += sizes[i];
    }
    *total = off;
}

static float *rand_floats(test_rng *r, int64_t n, double lo, double hi) {
    float *x = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)test_uniform(r, lo, hi);
    return x;
}

typedef struct kstate {
    float *params[K_SLICES];
    float *g, *s[3];
    hft_optim_slice sl[K_SLICES];
    int64_t total;
} kstate;

static void kstate_init(kstate *k, unsigned seed) {
    test_rng r = {seed};
    make_slices(k->sl, k->params, &k->total);
    for (int i = 0; i < K_SLICES; i++) {
        k->params[i] = rand_floats(&r, k->sl[i].n, -1, 1);
        k->sl[i].param = k->params[i];
    }
    k->g = rand_floats(&r, k->total, -0.1, 0.1);
    for (int b = 0; b < 3; b++) k->s[b] = rand_floats(&r, k->total, 0, 0.01);
}

static void kstate_free(kstate *k) {
    for (int i = 0; i < K_SLICES; i++) free(k->params[i]);
    free(k->g);
    for (int b = 0; b < 3; b++) free(k->s[b]);
}

static bool kstate_equal(const kstate *a, const kstate *b) {
    bool eq = memcmp(a->g, b->g, sizeof(float) * (size_t)a->total) == 0;
    for (int i = 0; i < K_SLICES; i++)
        eq &= memcmp(a->params[i], b->params[i], sizeof(float) * (size_t)a->sl[i].n) == 0;
    for (int s = 0; s < 3; s++) eq &= memcmp(a->s[s], b->s[s], sizeof(float) * (size_t)a->total) == 0;
    return eq;
}

/* kind 0 adam (amsgrad, decoupled), 1 adam (L2), 2 sgd nesterov, 3 lion; the slices one call or one
 * call each */
static void kernel_run(const hft_kernels *kt, kstate *k, int kind, bool per_slice) {
    int calls = per_slice ? K_SLICES : 1;
    for (int c = 0; c < calls; c++) {
        const hft_optim_slice *sl = per_slice ? &k->sl[c] : k->sl;
        int ns = per_slice ? 1 : K_SLICES;
        if (kind <= 1) {
            hft_adam_args a = {.n_slices = ns,
                               .slices = sl,
                               .grad = k->g,
                               .exp_avg = k->s[0],
                               .exp_avg_sq = k->s[1],
                               .max_exp_avg_sq = k->s[2],
                               .beta1 = 0.9,
                               .beta2 = 0.999,
                               .eps = 1e-8,
                               .step = 3,
                               .decoupled = kind == 0,
                               .amsgrad = kind == 0};
            kt->adam_step[HFT_F32](&a);
        } else if (kind == 2) {
            hft_sgd_args a = {.n_slices = ns,
                              .slices = sl,
                              .grad = k->g,
                              .momentum_buffer = k->s[0],
                              .momentum = 0.9,
                              .nesterov = true};
            kt->sgd_step[HFT_F32](&a);
        } else {
            hft_lion_args a = {
                .n_slices = ns, .slices = sl, .grad = k->g, .exp_avg = k->s[0], .beta1 = 0.9, .beta2 = 0.99};
            kt->lion_step[HFT_F32](&a);
        }
    }
}

/* One fused pass over all slices equals one call per slice, on 1 and 2 threads, on every ISA path the CPU
 * runs; the hole between slices is never written. */
TEST(test_kernel_partition_and_threads) {
    int threads = hft_threads_get();
    for (int isa = 0; isa < HFT_ISA_COUNT; isa++) {
        const hft_kernels *kt = hft_cpu_kernels((hft_isa)isa);
        if (!kt) continue;
        for (int kind = 0; kind < 4; kind++) {
            kstate ref, a, b;
            kstate_init(&ref, 11);
            kstate_init(&a, 11);
            kstate_init(&b, 11);
            hft_threads_set(1);
            kernel_run(kt, &ref, kind, true);
            kernel_run(kt, &a, kind, false);
            hft_threads_set(2);
            kernel_run(kt, &b, kind, false);
            hft_threads_set(threads);
            CHECK(kstate_equal(&ref, &a), "%s kind %d: one pass differs from per-slice calls", kt->name,
                  kind);
            CHECK(kstate_equal(&ref, &b), "%s kind %d: 2 threads differ from 1", kt->name, kind);
            kstate fresh;
            kstate_init(&fresh, 11);
            int64_t hole = ref.sl[4].offset - 11;
            for (int s = 0; s < 3; s++)
                CHECK(memcmp(ref.s[s] + hole, fresh.s[s] + hole, 11 * sizeof(float)) == 0,
                      "kind %d wrote the hole", kind);
            kstate_free(&fresh);
            kstate_free(&ref);
            kstate_free(&a);
            kstate_free(&b);
        }
    }
}

/* The ordered sum of squares: the same bits on any thread count, and close to a long-double sum. */
TEST(test_sumsq) {
    const hft_kernels *kt = hft_kernels_for(HFT_CPU);
    test_rng r = {5};
    int64_t n = 3 * 4096 * 512 + 77; /* more than one group of partial sums */
    float *x = rand_floats(&r, n, -2, 2);
    long double ref = 0;
    for (int64_t i = 0; i < n; i++) ref += (long double)x[i] * x[i];
    int threads = hft_threads_get();
    hft_threads_set(1);
    double s1 = kt->sumsq[HFT_F32](x, n);
    hft_threads_set(2);
    double s2 = kt->sumsq[HFT_F32](x, n);
    hft_threads_set(threads);
    CHECK(s1 == s2, "sumsq on 1 and 2 threads: %.17g vs %.17g", s1, s2);
    CHECK(fabs(s1 - (double)ref) <= 1e-12 * (double)ref, "sumsq %.17g, want %.17g", s1, (double)ref);
    CHECK(kt->sumsq[HFT_F32](x, 0) == 0, "empty sum");
    free(x);
}

/* Adafactor on a parameter large enough for the parallel paths: 1 and 2 threads agree bit for bit. */
TEST(test_adafactor_threads) {
    const hft_kernels *kt = hft_kernels_for(HFT_CPU);
    int64_t B = 3, R = 300, C = 257, n = B * R * C;
    int threads = hft_threads_get();
    float *out[2][4];
    for (int t = 0; t < 2; t++) {
        test_rng r = {9};
        float *p = rand_floats(&r, n, -1, 1), *g = rand_floats(&r, n, -0.1, 0.1);
        float *row = calloc((size_t)(B * R), 4), *col = calloc((size_t)(B * C), 4), *m = calloc((size_t)n, 4);
        float *scratch = malloc(sizeof(float) * (size_t)(B * (R + C)));
        hft_threads_set(t + 1);
        for (int step = 1; step <= 3; step++) {
            hft_adafactor_args a = {.param = p,
                                    .grad = g,
                                    .batch = B,
                                    .rows = R,
                                    .cols = C,
                                    .factored = true,
                                    .exp_avg_sq_row = row,
                                    .exp_avg_sq_col = col,
                                    .exp_avg = m,
                                    .scratch = scratch,
                                    .beta1 = 0.9,
                                    .beta2t = 1.0 - pow(step, -0.8),
                                    .eps1 = 1e-30,
                                    .clip_threshold = 1.0,
                                    .lr = 1e-2,
                                    .decay = -1e-4};
            kt->adafactor_step[HFT_F32](&a);
        }
        out[t][0] = p, out[t][1] = row, out[t][2] = col, out[t][3] = m;
        free(g);
        free(scratch);
    }
    hft_threads_set(threads);
    CHECK(memcmp(out[0][0], out[1][0], sizeof(float) * (size_t)n) == 0 &&
              memcmp(out[0][1], out[1][1], sizeof(float) * (size_t)(B * R)) == 0 &&
              memcmp(out[0][2], out[1][2], sizeof(float) * (size_t)(B * C)) == 0 &&
              memcmp(out[0][3], out[1][3], sizeof(float) * (size_t)n) == 0,
          "adafactor: 2 threads differ from 1");
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < 4; i++) free(out[t][i]);
}

/* The f64 kernels (registered for later use, e.g. checks in f64) compute the same updates as the f32 ones:
 * three steps of each from the same inputs agree to f32 rounding. */
TEST(test_f64_kernels_agree) {
    const hft_kernels *kt = hft_kernels_for(HFT_CPU);
    enum { N = 300, R = 12, C = 25 };
    for (int kind = 0; kind < 6; kind++) {
        float p32[N], g32[N], s32[3][N], scratch32[R + C];
        double p64[N], g64[N], s64[3][N], scratch64[R + C];
        test_rng r = {21};
        for (int i = 0; i < N; i++) {
            p64[i] = p32[i] = (float)test_uniform(&r, -1, 1);
            g64[i] = g32[i] = (float)test_uniform(&r, -0.1, 0.1);
            for (int b = 0; b < 3; b++) s64[b][i] = s32[b][i] = 0;
        }
        for (int step = 1; step <= 3; step++) {
            for (int d = 0; d < 2; d++) {
                hft_dtype dt = d ? HFT_F64 : HFT_F32;
                void *p = d ? (void *)p64 : (void *)p32, *g = d ? (void *)g64 : (void *)g32;
                void *s0 = d ? (void *)s64[0] : (void *)s32[0], *s1 = d ? (void *)s64[1] : (void *)s32[1];
                void *s2 = d ? (void *)s64[2] : (void *)s32[2],
                     *scr = d ? (void *)scratch64 : (void *)scratch32;
                hft_optim_slice sl = {.param = p, .offset = 0, .n = N, .lr = 1e-2, .weight_decay = 0.1};
                if (kind <= 1) {
                    hft_adam_args a = {.n_slices = 1,
                                       .slices = &sl,
                                       .grad = g,
                                       .exp_avg = s0,
                                       .exp_avg_sq = s1,
                                       .max_exp_avg_sq = s2,
                                       .beta1 = 0.9,
                                       .beta2 = 0.999,
                                       .eps = 1e-8,
                                       .step = step,
                                       .decoupled = kind == 0,
                                       .amsgrad = kind == 0};
                    kt->adam_step[dt](&a);
                } else if (kind == 2) {
                    hft_sgd_args a = {.n_slices = 1,
                                      .slices = &sl,
                                      .grad = g,
                                      .momentum_buffer = s0,
                                      .momentum = 0.9,
                                      .dampening = 0.1,
                                      .first_step = step == 1};
                    kt->sgd_step[dt](&a);
                } else if (kind == 3) {
                    hft_lion_args a = {
                        .n_slices = 1, .slices = &sl, .grad = g, .exp_avg = s0, .beta1 = 0.9, .beta2 = 0.99};
                    kt->lion_step[dt](&a);
                } else {
                    bool f = kind == 5;
                    hft_adafactor_args a = {.param = p,
                                            .grad = g,
                                            .batch = 1,
                                            .rows = f ? R : 1,
                                            .cols = f ? C : N,
                                            .factored = f,
                                            .exp_avg_sq_row = s1,
                                            .exp_avg_sq_col = s2,
                                            .exp_avg_sq = s1,
                                            .exp_avg = s0,
                                            .scratch = scr,
                                            .beta1 = 0.9,
                                            .beta2t = 1.0 - pow(step, -0.8),
                                            .eps1 = 1e-30,
                                            .clip_threshold = 1.0,
                                            .lr = 1e-2,
                                            .decay = -1e-3};
                    kt->adafactor_step[dt](&a);
                }
            }
        }
        double got[N], want[N];
        for (int i = 0; i < N; i++) got[i] = p32[i], want[i] = p64[i];
        char what[32];
        snprintf(what, sizeof what, "f32 vs f64, kind %d", kind);
        test_close(what, got, want, N, 1e-5, 1e-5);
    }
    double x[5] = {1, -2, 3, 0.5, 0};
    CHECK(kt->sumsq[HFT_F64](x, 5) == 14.25, "f64 sumsq");
}

/* ---------------------------------------------------------------- the fp16 loss scaler */

#define SCALER_FIXTURE "tests/fixtures/optim/grad_scaler.safetensors"

static hft_tensor *load_from(hft_safetensors *f, const char *key) {
    hft_tensor *t = NULL;
    if (hft_safetensors_load(f, key, HFT_F32, false, &t) != HFT_OK) CHECK(false, "%s: %s", key, hft_error_message());
    return t;
}

/* torch.amp.GradScaler (growth_interval 3) through 40 SGD steps with overflowing and NaN gradients: the
 * same scale after every update, the same steps skipped, unscaled gradients and parameters bit for bit. */
TEST(test_loss_scaler_matches_grad_scaler) {
    hft_safetensors *f = NULL;
    if (hft_safetensors_open(SCALER_FIXTURE, &f) != HFT_OK) {
        CHECK(false, "%s: %s", SCALER_FIXTURE, hft_error_message());
        return;
    }
    cJSON *cfg = cJSON_Parse(hft_safetensors_metadata(f, "config"));
    cJSON *infs = cJSON_Parse(hft_safetensors_metadata(f, "inf_steps"));
    cJSON *nans = cJSON_Parse(hft_safetensors_metadata(f, "nan_steps"));
    hft_loss_scaler_config c = {
        .init_scale = cJSON_GetObjectItem(cfg, "init_scale")->valuedouble,
        .growth_factor = cJSON_GetObjectItem(cfg, "growth_factor")->valuedouble,
        .backoff_factor = cJSON_GetObjectItem(cfg, "backoff_factor")->valuedouble,
        .growth_interval = cJSON_GetObjectItem(cfg, "growth_interval")->valueint};
    hft_loss_scaler sc;
    CHECK_OK(hft_loss_scaler_init(&sc, &c), NULL);
    const char *names[2] = {"a", "b"};
    hft_paramset *ps = hft_paramset_new();
    hft_tensor *grads[2], *want_p[2], *want_g[2];
    char key[64];
    for (int i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "init/%s", names[i]);
        hft_paramset_add(ps, names[i], load_from(f, key), 0);
        snprintf(key, sizeof key, "grads/%s", names[i]);
        grads[i] = load_from(f, key);
        snprintf(key, sizeof key, "params/%s", names[i]);
        want_p[i] = load_from(f, key);
        snprintf(key, sizeof key, "unscaled/%s", names[i]);
        want_g[i] = load_from(f, key);
    }
    hft_paramset_finalize(ps, 0);
    hft_tensor *want_scale = load_from(f, "scale"), *want_found = load_from(f, "found_inf");
    hft_optim_config oc = hft_optim_defaults(HFT_OPTIM_SGD);
    oc.lr = 0.1;
    hft_optimizer *opt = NULL;
    CHECK_OK(hft_optimizer_new(ps, &oc, 0, NULL, &opt), NULL);
    int steps = (int)hft_tensor_numel(want_scale), skipped = 0;
    for (int k = 0; k < steps && test_failures == 0; k++) {
        for (int i = 0; i < 2; i++) { /* backward of the scaled loss: grad × scale in f32 */
            hft_param *p = hft_paramset_get(ps, i);
            int64_t n = hft_tensor_numel(p->value);
            float *g = hft_tensor_data(p->grad);
            const float *src = (const float *)hft_tensor_data(grads[i]) + k * n;
            for (int64_t j = 0; j < n; j++) g[j] = src[j] * sc.scale;
            p->value->flags |= HFT_TENSOR_GRAD_SET;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, infs) if (e->valueint == k)((float *)hft_tensor_data(hft_paramset_get(ps, 0)->grad))[0] = INFINITY;
        cJSON_ArrayForEach(e, nans) if (e->valueint == k)((float *)hft_tensor_data(hft_paramset_get(ps, 0)->grad))[0] = NAN;
        bool found = hft_loss_scaler_unscale(&sc, ps);
        CHECK(found == (((float *)hft_tensor_data(want_found))[k] != 0), "step %d: found_inf %d", k, found);
        for (int i = 0; i < 2 && !found; i++) {
            hft_param *p = hft_paramset_get(ps, i);
            int64_t n = hft_tensor_numel(p->value);
            CHECK(memcmp(hft_tensor_data(p->grad), (const float *)hft_tensor_data(want_g[i]) + k * n, 4 * (size_t)n) == 0,
                  "step %d: %s's unscaled gradient differs from GradScaler's", k, names[i]);
        }
        if (!found) CHECK_OK(hft_optimizer_step(opt, 1.0), NULL);
        skipped += found;
        hft_loss_scaler_update(&sc, found);
        hft_paramset_zero_grad(ps);
        CHECK(sc.scale == ((float *)hft_tensor_data(want_scale))[k], "step %d: scale %g, torch %g", k, sc.scale,
              ((float *)hft_tensor_data(want_scale))[k]);
        for (int i = 0; i < 2; i++) {
            hft_param *p = hft_paramset_get(ps, i);
            int64_t n = hft_tensor_numel(p->value);
            CHECK(memcmp(hft_tensor_data(p->value), (const float *)hft_tensor_data(want_p[i]) + k * n, 4 * (size_t)n) == 0,
                  "step %d: %s differs from torch's after the step", k, names[i]);
        }
    }
    CHECK(skipped == cJSON_GetArraySize(infs) + cJSON_GetArraySize(nans), "%d steps skipped", skipped);
    hft_loss_scaler bad;
    hft_loss_scaler_config wrong = c;
    wrong.backoff_factor = 1.5;
    CHECK(hft_loss_scaler_init(&bad, &wrong) == HFT_EINVAL && strstr(hft_error_message(), "backoff_factor"),
          "a backoff factor above 1 is refused: %s", hft_error_message());
    for (int i = 0; i < 2; i++) hft_tensor_free(grads[i]), hft_tensor_free(want_p[i]), hft_tensor_free(want_g[i]);
    hft_tensor_free(want_scale), hft_tensor_free(want_found);
    hft_optimizer_free(opt);
    hft_paramset_free(ps);
    cJSON_Delete(cfg), cJSON_Delete(infs), cJSON_Delete(nans);
    hft_safetensors_close(f);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_parity_all_cases", test_parity_all_cases},
        {"test_state_round_trip", test_state_round_trip},
        {"test_hf_default_grouping", test_hf_default_grouping},
        {"test_bad_input", test_bad_input},
        {"test_clip", test_clip},
        {"test_kernel_partition_and_threads", test_kernel_partition_and_threads},
        {"test_sumsq", test_sumsq},
        {"test_adafactor_threads", test_adafactor_threads},
        {"test_f64_kernels_agree", test_f64_kernels_agree},
        {"test_loss_scaler_matches_grad_scaler", test_loss_scaler_matches_grad_scaler},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
