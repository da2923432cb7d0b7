/* LR schedules against transformers: every case in tests/fixtures/schedule/schedule.safetensors (written by
 * tests/fixtures/make_schedule_fixtures.py from transformers' get_scheduler and torch's schedulers) is
 * rebuilt from its metadata and its lr compared at every step; plus names, warmup resolution, defaults,
 * plateau state round trips and the configs that must be refused, with their messages. */
#include <cJSON.h>

#include "nn/nn.h"
#include "optim/optim.h"
#include "tests/test_util.h"

#define FIXTURE "tests/fixtures/schedule/schedule.safetensors"
/* The lambdas are the same f64 operations as transformers', so the lr should match to the last bit; the
 * plateau multiplier differs from torch's lr by a rounding per reduction. */
#define RTOL 1e-9
#define ATOL 1e-18 /* where the reference lr is 0 */

static hft_safetensors *fixture;
static cJSON *meta_cases, *meta_refused, *meta_resolution, *meta_types, *meta_defaults;

static cJSON *meta_json(const char *key) {
    const char *s = hft_safetensors_metadata(fixture, key);
    CHECK(s != NULL, "fixture has no metadata \"%s\"", key);
    cJSON *j = s ? cJSON_Parse(s) : NULL;
    CHECK(!s || j, "fixture metadata \"%s\" is not JSON", key);
    return j;
}

static bool load_fixture(void) {
    if (fixture) return true;
    hft_status st = hft_safetensors_open(FIXTURE, &fixture);
    CHECK(st == HFT_OK, "%s (run from the repository root)", hft_error_message());
    if (st != HFT_OK) return false;
    meta_cases = meta_json("cases");
    meta_refused = meta_json("refused");
    meta_resolution = meta_json("warmup_resolution");
    meta_types = meta_json("scheduler_types");
    meta_defaults = meta_json("defaults");
    return meta_cases && meta_refused && meta_resolution && meta_types && meta_defaults;
}

/* A float64 tensor of the fixture, copied out (the mapping aligns nothing); NULL with a failure. */
static double *fixture_f64(const char *name, long *n) {
    const hft_st_entry *e = hft_safetensors_find(fixture, name);
    CHECK(e && strcmp(e->st_dtype, "F64") == 0 && e->ndim == 1, "fixture tensor %s: missing or not F64 [n]",
          name);
    if (!e || strcmp(e->st_dtype, "F64") != 0 || e->ndim != 1) return NULL;
    double *v = malloc(e->nbytes);
    memcpy(v, e->data, e->nbytes);
    *n = (long)e->shape[0];
    return v;
}

/* ---------------------------------------------------------------- a case's config from its metadata */

static const char *j_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}
static double j_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* One scheduler_specific_kwarg onto the config, under transformers' (and torch's) name; null is "unset".
 * Returns false for a key hft does not map, so a fixture kwarg cannot be silently dropped. */
static bool apply_kwarg(hft_schedule_config *c, const cJSON *v, char *why, size_t why_n) {
    const char *k = v->string;
    const bool null = cJSON_IsNull(v), num = cJSON_IsNumber(v), str = cJSON_IsString(v);
    const double d = num ? v->valuedouble : NAN;
    struct {
        const char *key;
        double *field;
    } doubles[] = {{"num_cycles", &c->num_cycles},
                   {"power", &c->power},
                   {"lr_end", &c->lr_end},
                   {"min_lr", c->kind == HFT_SCHEDULE_REDUCE_ON_PLATEAU ? &c->plateau_min_lr : &c->min_lr},
                   {"min_lr_rate", &c->min_lr_rate},
                   {"warmup_lr_rate", &c->warmup_lr_rate},
                   {"min_lr_ratio", &c->min_lr_ratio},
                   {"factor", &c->factor},
                   {"threshold", &c->threshold},
                   {"eps", &c->plateau_eps}};
    for (size_t i = 0; i < sizeof doubles / sizeof doubles[0]; i++)
        if (strcmp(k, doubles[i].key) == 0 && (num || null)) {
            *doubles[i].field = d; /* null → NaN: unset */
            return true;
        }
    struct {
        const char *key;
        int64_t *field, unset;
    } ints[] = {{"timescale", &c->timescale, 0},
                {"num_stable_steps", &c->num_stable_steps, -1},
                {"num_decay_steps", &c->num_decay_steps, -1},
                {"patience", &c->patience, 0},
                {"cooldown", &c->cooldown, 0}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (strcmp(k, ints[i].key) == 0 && (num || (null && i < 3))) {
            *ints[i].field = null ? ints[i].unset : (int64_t)d;
            return true;
        }
    if (str && strcmp(k, "warmup_type") == 0) return c->warmup_type = v->valuestring, true;
    if (str && strcmp(k, "decay_type") == 0) return c->decay_type = v->valuestring, true;
    if (str && strcmp(k, "mode") == 0 && (!strcmp(v->valuestring, "min") || !strcmp(v->valuestring, "max")))
        return c->mode_max = strcmp(v->valuestring, "max") == 0, true;
    if (str && strcmp(k, "threshold_mode") == 0 &&
        (!strcmp(v->valuestring, "rel") || !strcmp(v->valuestring, "abs")))
        return c->threshold_abs = strcmp(v->valuestring, "abs") == 0, true;
    snprintf(why, why_n, "kwarg \"%s\" not mapped onto hft_schedule_config", k);
    return false;
}

/* The config of a fixture case (or refusal); false with a failure when the metadata cannot be mapped. */
static bool case_config(const cJSON *cs, hft_schedule_config *c) {
    const char *name = j_str(cs, "name"), *type = j_str(cs, "type");
    hft_schedule_kind kind;
    hft_status st = hft_schedule_kind_from_name(type, &kind);
    CHECK(st == HFT_OK, "case %s: %s", name, hft_error_message());
    if (st != HFT_OK) return false;
    *c = hft_schedule_defaults(kind);
    c->total_steps = (int64_t)j_num(cs, "total_steps");
    c->warmup = j_num(cs, "warmup");
    c->base_lr = j_num(cs, "base_lr");
    const cJSON *kw;
    char why[200];
    cJSON_ArrayForEach(kw, cJSON_GetObjectItemCaseSensitive(cs, "kwargs")) {
        bool ok = apply_kwarg(c, kw, why, sizeof why);
        CHECK(ok, "case %s: %s", name, why);
        if (!ok) return false;
    }
    return true;
}

static bool uses_warmup(hft_schedule_kind k) {
    return k != HFT_SCHEDULE_CONSTANT && k != HFT_SCHEDULE_REDUCE_ON_PLATEAU;
}

/* ---------------------------------------------------------------- every fixture case, every step */

typedef struct err_stats {
    double max_rel;
    long compared, identical;
} err_stats;

/* Compares one lr with the reference; records the worst relative error. */
static bool lr_close(const char *name, long i, double got, double want, err_stats *e) {
    double diff = fabs(got - want);
    double rel = want != 0 ? diff / fabs(want) : 0;
    e->compared++;
    e->identical += got == want;
    if (rel > e->max_rel) e->max_rel = rel;
    bool ok = want == 0 ? diff <= ATOL : rel <= RTOL;
    CHECK(ok, "case %s step %ld: lr %.17g, transformers %.17g (rel err %.3g)", name, i, got, want, rel);
    return ok;
}

TEST(transformers_schedules) {
    if (!load_fixture()) return;
    err_stats el = {0}, ep = {0}; /* the lambdas; the plateau */
    int n_cases = 0, kinds_seen[32] = {0};
    const cJSON *cs;
    cJSON_ArrayForEach(cs, meta_cases) {
        const char *name = j_str(cs, "name");
        hft_schedule_config c;
        if (!case_config(cs, &c)) continue;
        hft_schedule *s;
        hft_status st = hft_schedule_new(&c, &s);
        CHECK(st == HFT_OK, "case %s: %s", name, hft_error_message());
        if (st != HFT_OK) continue;
        n_cases++;
        kinds_seen[c.kind]++;
        if (uses_warmup(c.kind))
            CHECK(hft_schedule_warmup_steps(s) == (int64_t)j_num(cs, "num_warmup_steps"),
                  "case %s: warmup %lld steps, transformers %lld", name,
                  (long long)hft_schedule_warmup_steps(s), (long long)j_num(cs, "num_warmup_steps"));
        char key[160];
        long n = 0, nm = 0;
        snprintf(key, sizeof key, "%s/lr", name);
        double *want = fixture_f64(key, &n);
        double *metrics = NULL;
        if (c.kind == HFT_SCHEDULE_REDUCE_ON_PLATEAU) {
            snprintf(key, sizeof key, "%s/metrics", name);
            metrics = fixture_f64(key, &nm);
            CHECK(metrics && nm == n, "case %s: %ld metrics for %ld lrs", name, nm, n);
        }
        int bad = 0;
        for (long i = 0; want && i < n && bad < 3; i++) {
            double m;
            if (metrics) {
                if (nm != n) break;
                hft_schedule_observe(s, metrics[i]); /* the lr after each step(metric) */
                m = hft_schedule_multiplier(s, i);
            } else {
                m = hft_schedule_multiplier(s, i); /* the lr step i uses */
            }
            bad += !lr_close(name, i, c.base_lr * m, want[i], metrics ? &ep : &el);
        }
        free(want);
        free(metrics);
        hft_schedule_free(s);
    }
    for (int k = 0; k <= HFT_SCHEDULE_WARMUP_STABLE_DECAY; k++)
        CHECK(kinds_seen[k] > 0, "no fixture case for %s", hft_schedule_kind_name((hft_schedule_kind)k));
    printf("  %d cases against transformers: lambda schedules %ld lrs, %ld bit-identical, max relative error "
           "%.3g; reduce_lr_on_plateau %ld lrs, %ld bit-identical, max relative error %.3g\n",
           n_cases, el.compared, el.identical, el.max_rel, ep.compared, ep.identical, ep.max_rel);
}

/* ---------------------------------------------------------------- plateau state */

/* A checkpoint in the middle of a metric sequence: a fresh schedule given the saved state continues
 * exactly as the original does, and both as torch does. */
TEST(plateau_state_round_trip) {
    if (!load_fixture()) return;
    const cJSON *cs;
    int n = 0;
    cJSON_ArrayForEach(cs, meta_cases) {
        const char *name = j_str(cs, "name");
        if (strcmp(j_str(cs, "type"), "reduce_lr_on_plateau") != 0) continue;
        hft_schedule_config c;
        if (!case_config(cs, &c)) continue;
        char key[160];
        long nl = 0, nm = 0;
        snprintf(key, sizeof key, "%s/lr", name);
        double *want = fixture_f64(key, &nl);
        snprintf(key, sizeof key, "%s/metrics", name);
        double *metrics = fixture_f64(key, &nm);
        hft_schedule *a = NULL, *b = NULL;
        CHECK_OK(hft_schedule_new(&c, &a), NULL);
        CHECK_OK(hft_schedule_new(&c, &b), NULL);
        if (a && b && want && metrics && nl == nm) {
            long mid = nm / 2 + 7;
            for (long i = 0; i < mid; i++) hft_schedule_observe(a, metrics[i]);
            hft_schedule_state sa, sb;
            hft_schedule_get_state(a, &sa);
            CHECK(sa.last_epoch == mid, "case %s: last_epoch %lld after %ld metrics", name,
                  (long long)sa.last_epoch, mid);
            hft_schedule_set_state(b, &sa);
            hft_schedule_get_state(b, &sb);
            CHECK(memcmp(&sa, &sb, sizeof sa) == 0, "case %s: state differs after set/get", name);
            err_stats e = {0};
            for (long i = mid; i < nm; i++) {
                hft_schedule_observe(a, metrics[i]);
                hft_schedule_observe(b, metrics[i]);
                double ma = hft_schedule_multiplier(a, 0), mb = hft_schedule_multiplier(b, 0);
                if (ma != mb) {
                    CHECK(ma == mb, "case %s metric %ld: resumed multiplier %.17g, original %.17g", name, i,
                          mb, ma);
                    break;
                }
                if (!lr_close(name, i, c.base_lr * mb, want[i], &e)) break;
            }
            n++;
        }
        free(want);
        free(metrics);
        hft_schedule_free(a);
        hft_schedule_free(b);
    }
    CHECK(n >= 5, "only %d plateau cases", n);
}

/* The lambda schedules have no state: observing and setting state change nothing. */
TEST(lambda_schedules_have_no_state) {
    hft_schedule_config c = hft_schedule_defaults(HFT_SCHEDULE_COSINE);
    c.total_steps = 100;
    c.warmup = 10;
    hft_schedule *s;
    CHECK_OK(hft_schedule_new(&c, &s), NULL);
    if (!s) return;
    double before = hft_schedule_multiplier(s, 37);
    hft_schedule_observe(s, 1.0);
    hft_schedule_state st = {
        .multiplier = 0.5, .best = 1, .num_bad_epochs = 3, .cooldown_counter = 1, .last_epoch = 9};
    hft_schedule_set_state(s, &st);
    hft_schedule_get_state(s, &st);
    CHECK(st.multiplier == 1.0 && st.last_epoch == 0 && st.num_bad_epochs == 0, "lambda state: multiplier %g",
          st.multiplier);
    CHECK(hft_schedule_multiplier(s, 37) == before, "cosine changed after observe/set_state");
    hft_schedule_free(s);
}

/* ---------------------------------------------------------------- names, defaults, warmup */

TEST(names_and_kinds) {
    hft_schedule_kind k;
    for (int i = 0; i <= HFT_SCHEDULE_WARMUP_STABLE_DECAY; i++) {
        const char *name = hft_schedule_kind_name((hft_schedule_kind)i);
        CHECK_OK(hft_schedule_kind_from_name(name, &k), NULL);
        CHECK(k == (hft_schedule_kind)i, "%s → %d, expected %d", name, (int)k, i);
    }
    CHECK(hft_schedule_kind_from_name("cosine_annealing", &k) == HFT_EINVAL, "an unknown name was accepted");
    const char *msg = hft_error_message();
    CHECK(strstr(msg, "\"cosine_annealing\"") != NULL, "message does not name the input: %s", msg);
    for (int i = 0; i <= HFT_SCHEDULE_WARMUP_STABLE_DECAY; i++)
        CHECK(strstr(msg, hft_schedule_kind_name((hft_schedule_kind)i)) != NULL, "message lacks %s: %s",
              hft_schedule_kind_name((hft_schedule_kind)i), msg);
    CHECK(hft_schedule_kind_from_name("Linear", &k) == HFT_EINVAL,
          "names are case-sensitive, as SchedulerType's");
    CHECK(hft_schedule_kind_from_name("greedy", &k) == HFT_EUNSUPPORTED, "greedy: %s", hft_error_message());
    CHECK(strstr(hft_error_message(), "GreedyLR") != NULL, "greedy message: %s", hft_error_message());
    CHECK(strcmp(hft_schedule_kind_name((hft_schedule_kind)99), "unknown") == 0, "name of an invalid kind");

    /* every SchedulerType of the transformers release is known, or explicitly unsupported */
    if (!load_fixture()) return;
    const cJSON *t;
    int n = 0;
    cJSON_ArrayForEach(t, meta_types) {
        hft_status st = hft_schedule_kind_from_name(t->valuestring, &k);
        CHECK(st == HFT_OK || (st == HFT_EUNSUPPORTED && strcmp(t->valuestring, "greedy") == 0),
              "transformers' lr_scheduler_type \"%s\": %s", t->valuestring, hft_error_message());
        n++;
    }
    CHECK(n == HFT_SCHEDULE_WARMUP_STABLE_DECAY + 2,
          "transformers has %d scheduler types, hft knows %d + greedy", n,
          HFT_SCHEDULE_WARMUP_STABLE_DECAY + 1);
}

static bool same_double(double a, double b) {
    return a == b || (isnan(a) && isnan(b));
}
static bool same_str(const char *a, const char *b) {
    return a && b ? strcmp(a, b) == 0 : a == b;
}

/* hft_schedule_defaults holds the defaults of the signatures transformers' get_scheduler calls (and
 * torch's ReduceLROnPlateau): applying those to hft's defaults changes nothing. */
TEST(defaults_match_transformers) {
    if (!load_fixture()) return;
    const cJSON *type;
    cJSON_ArrayForEach(type, meta_defaults) {
        hft_schedule_kind k;
        if (hft_schedule_kind_from_name(type->string, &k) != HFT_OK) {
            CHECK(0, "defaults of %s: %s", type->string, hft_error_message());
            continue;
        }
        hft_schedule_config d = hft_schedule_defaults(k), c = d;
        const cJSON *kw;
        char why[200];
        cJSON_ArrayForEach(kw, type) CHECK(apply_kwarg(&c, kw, why, sizeof why), "%s: %s", type->string, why);
#define SAME(f)                                                                                              \
    CHECK(same_double((double)c.f, (double)d.f), "%s: " #f " default %g, transformers %g", type->string,     \
          (double)d.f, (double)c.f)
        SAME(num_cycles);
        SAME(power);
        SAME(lr_end);
        SAME(timescale);
        SAME(min_lr);
        SAME(min_lr_rate);
        SAME(warmup_lr_rate);
        SAME(num_stable_steps);
        SAME(num_decay_steps);
        SAME(min_lr_ratio);
        SAME(mode_max);
        SAME(factor);
        SAME(threshold);
        SAME(plateau_min_lr);
        SAME(plateau_eps);
        SAME(patience);
        SAME(cooldown);
        SAME(threshold_abs);
#undef SAME
        CHECK(same_str(c.warmup_type, d.warmup_type) && same_str(c.decay_type, d.decay_type),
              "%s: shapes %s/%s, transformers %s/%s", type->string, d.warmup_type, d.decay_type,
              c.warmup_type, c.decay_type);
    }
}

/* warmup_steps as TrainingArguments.get_warmup_steps resolves it: a count truncated, a ratio's ceiling
 * (with f64's rounding: 100 × 0.07 is 8 steps). */
TEST(warmup_resolution) {
    if (!load_fixture()) return;
    const cJSON *r;
    int n = 0;
    cJSON_ArrayForEach(r, meta_resolution) {
        double warmup = cJSON_GetArrayItem(r, 0)->valuedouble;
        int64_t total = (int64_t)cJSON_GetArrayItem(r, 1)->valuedouble;
        int64_t want = (int64_t)cJSON_GetArrayItem(r, 2)->valuedouble;
        hft_schedule_config c = hft_schedule_defaults(HFT_SCHEDULE_LINEAR);
        c.total_steps = total;
        c.warmup = warmup;
        hft_schedule *s;
        CHECK_OK(hft_schedule_new(&c, &s), NULL);
        if (!s) continue;
        CHECK(hft_schedule_warmup_steps(s) == want, "warmup %g of %lld steps: %lld, transformers %lld",
              warmup, (long long)total, (long long)hft_schedule_warmup_steps(s), (long long)want);
        hft_schedule_free(s);
        n++;
    }
    CHECK(n >= 10, "only %d warmup resolutions", n);
}

/* ---------------------------------------------------------------- what must be refused */

/* Every config transformers refuses (at construction or by failing at some step) is refused up front. */
TEST(transformers_refusals) {
    if (!load_fixture()) return;
    const cJSON *cs;
    int n = 0;
    cJSON_ArrayForEach(cs, meta_refused) {
        const char *name = j_str(cs, "name");
        hft_schedule_config c;
        if (!case_config(cs, &c)) continue;
        hft_schedule *s = NULL;
        hft_status st = hft_schedule_new(&c, &s);
        CHECK(st == HFT_EINVAL && s == NULL, "case %s: accepted (status %d), transformers raised %s", name,
              (int)st, j_str(cs, "error"));
        CHECK(st == HFT_OK || strstr(hft_error_message(), j_str(cs, "type")) != NULL,
              "case %s: message does not name the schedule: %s", name, hft_error_message());
        hft_schedule_free(s);
        n++;
    }
    CHECK(n >= 10, "only %d refusals", n);
}

/* hft_schedule_new refuses `c` with HFT_EINVAL and a message containing each of `parts` (NULL-ended). */
static void expect_refused_(const char *what, const hft_schedule_config *c, const char *const *parts) {
    hft_schedule *s = NULL;
    hft_status st = hft_schedule_new(c, &s);
    CHECK(st == HFT_EINVAL && !s, "%s: accepted (status %d)", what, (int)st);
    hft_schedule_free(s);
    if (st == HFT_OK) return;
    const char *msg = hft_error_message();
    for (; *parts; parts++)
        CHECK(strstr(msg, *parts) != NULL, "%s: message lacks \"%s\": %s", what, *parts, msg);
}
#define expect_refused(what, c, ...) expect_refused_(what, c, (const char *const[]){__VA_ARGS__, NULL})

static hft_schedule_config cfg(hft_schedule_kind kind, int64_t total, double warmup) {
    hft_schedule_config c = hft_schedule_defaults(kind);
    c.total_steps = total;
    c.warmup = warmup;
    c.base_lr = 1e-3;
    return c;
}

TEST(bad_configs) {
    hft_schedule_config c = cfg(HFT_SCHEDULE_LINEAR, -5, 0);
    expect_refused("negative total", &c, "linear", "total_steps = -5", ">= 0");
    c = cfg(HFT_SCHEDULE_COSINE, 100, -1);
    expect_refused("negative warmup", &c, "cosine", "warmup = -1", ">= 0");
    c = cfg(HFT_SCHEDULE_LINEAR, 100, NAN);
    expect_refused("NaN warmup", &c, "warmup = nan");
    c = cfg(HFT_SCHEDULE_LINEAR, 100, INFINITY);
    expect_refused("infinite warmup", &c, "warmup = inf");
    c = cfg(HFT_SCHEDULE_LINEAR, 100, 0);
    c.kind = (hft_schedule_kind)42;
    expect_refused("invalid kind", &c, "unknown kind 42");

    /* num_cycles <= 0: transformers computes a constant (0) or a mirrored cosine (< 0); hft refuses */
    const hft_schedule_kind cyc[] = {HFT_SCHEDULE_COSINE, HFT_SCHEDULE_COSINE_WITH_RESTARTS,
                                     HFT_SCHEDULE_COSINE_WITH_MIN_LR, HFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR,
                                     HFT_SCHEDULE_WARMUP_STABLE_DECAY};
    for (int i = 0; i < 5; i++) {
        c = cfg(cyc[i], 100, 0);
        c.min_lr_rate = 0.1;
        c.num_decay_steps = 10;
        c.num_cycles = 0;
        expect_refused("num_cycles 0", &c, hft_schedule_kind_name(cyc[i]), "num_cycles = 0", "> 0");
        c.num_cycles = -1.5;
        expect_refused("num_cycles < 0", &c, "num_cycles = -1.5");
    }

    /* warmup longer than the total: transformers accepts it (the lr never decays), so does hft; warmup
     * equal to the total only breaks polynomial (its decay length is T − W) */
    c = cfg(HFT_SCHEDULE_LINEAR, 100, 150);
    hft_schedule *s = NULL;
    CHECK_OK(hft_schedule_new(&c, &s), NULL);
    hft_schedule_free(s);
    c = cfg(HFT_SCHEDULE_POLYNOMIAL, 100, 100);
    expect_refused("polynomial warmup = total", &c, "polynomial",
                   "warmup of 100 steps equals total_steps = 100");
    c = cfg(HFT_SCHEDULE_POLYNOMIAL, 100, 1.0); /* a ratio of 1.0 is a count: 1 step */
    s = NULL;
    CHECK_OK(hft_schedule_new(&c, &s), NULL);
    hft_schedule_free(s);
    c = cfg(HFT_SCHEDULE_POLYNOMIAL, 100, 0);
    c.lr_end = 2e-3;
    expect_refused("polynomial lr_end >= lr", &c, "lr_end = 0.002", "base_lr = 0.001");
    c = cfg(HFT_SCHEDULE_POLYNOMIAL, 100, 0);
    c.base_lr = 0;
    expect_refused("polynomial without base_lr", &c, "base_lr = 0", "lr_end");
    c = cfg(HFT_SCHEDULE_POLYNOMIAL, 100, 0);
    c.power = -2;
    expect_refused("polynomial negative power", &c, "power = -2");
    c.power = 0;
    expect_refused("polynomial power 0", &c, "power = 0", "> 0");

    c = cfg(HFT_SCHEDULE_INVERSE_SQRT, 100, 0);
    c.timescale = -3;
    expect_refused("negative timescale", &c, "inverse_sqrt", "timescale = -3");

    c = cfg(HFT_SCHEDULE_COSINE_WITH_MIN_LR, 100, 0);
    expect_refused("min_lr unset", &c, "cosine_with_min_lr", "one of min_lr or min_lr_rate");
    c.min_lr = 1e-5;
    c.min_lr_rate = 0.1;
    expect_refused("min_lr and rate", &c, "only one of min_lr or min_lr_rate", "min_lr = 1e-05");
    c.min_lr_rate = NAN;
    c.base_lr = 0;
    expect_refused("min_lr without base_lr", &c, "base_lr = 0", "min_lr");

    c = cfg(HFT_SCHEDULE_WARMUP_STABLE_DECAY, 100, 0);
    expect_refused("WSD without decay steps", &c, "warmup_stable_decay", "num_decay_steps = -1", "required");
    c.num_decay_steps = 20;
    c.warmup_type = "exp";
    expect_refused("WSD warmup shape", &c, "warmup_type \"exp\"", "'linear', 'cosine' or '1-sqrt'");
    c.warmup_type = "cosine";
    c.decay_type = "sqrt";
    expect_refused("WSD decay shape", &c, "decay_type \"sqrt\"", "'1-sqrt'");
    c.decay_type = NULL; /* NULL: the default shape */
    s = NULL;
    CHECK_OK(hft_schedule_new(&c, &s), NULL);
    hft_schedule_free(s);

    c = cfg(HFT_SCHEDULE_REDUCE_ON_PLATEAU, 100, 0);
    c.factor = 1.0;
    expect_refused("plateau factor 1", &c, "reduce_lr_on_plateau", "factor = 1", "(0, 1)");
    c.factor = 0;
    expect_refused("plateau factor 0", &c, "factor = 0", "(0, 1)");
    c = cfg(HFT_SCHEDULE_REDUCE_ON_PLATEAU, 100, 0);
    c.patience = -1;
    expect_refused("plateau patience", &c, "patience = -1");
    c = cfg(HFT_SCHEDULE_REDUCE_ON_PLATEAU, 100, 0);
    c.cooldown = -2;
    expect_refused("plateau cooldown", &c, "cooldown = -2");
    c = cfg(HFT_SCHEDULE_REDUCE_ON_PLATEAU, 100, 0);
    c.base_lr = 0;
    expect_refused("plateau without base_lr", &c, "base_lr = 0", "eps");
    c = cfg(HFT_SCHEDULE_REDUCE_ON_PLATEAU, 100, 0);
    c.plateau_eps = -1;
    expect_refused("plateau eps", &c, "eps = -1");
}

/* Zero is a value, not "the default": a zeroed config either means what the defaults mean (the kinds
 * with nothing to set) or is refused with a pointer to hft_schedule_defaults, never silently different. */
TEST(zeroed_config) {
    for (int k = 0; k <= HFT_SCHEDULE_WARMUP_STABLE_DECAY; k++) {
        hft_schedule_config z = {
            .kind = (hft_schedule_kind)k, .total_steps = 100, .warmup = 10, .base_lr = 1e-3};
        hft_schedule_config d = cfg((hft_schedule_kind)k, 100, 10);
        d.min_lr_rate = 0.1;
        d.num_decay_steps = 20;
        hft_schedule *sz = NULL, *sd = NULL;
        hft_status st = hft_schedule_new(&z, &sz);
        CHECK_OK(hft_schedule_new(&d, &sd), NULL);
        if (st == HFT_OK) {
            for (int64_t i = 0; sd && i < 150; i++)
                if (hft_schedule_multiplier(sz, i) != hft_schedule_multiplier(sd, i)) {
                    CHECK(0, "%s: a zeroed config differs from the defaults at step %lld",
                          hft_schedule_kind_name((hft_schedule_kind)k), (long long)i);
                    break;
                }
        } else {
            CHECK(strstr(hft_error_message(), "hft_schedule_defaults") != NULL, "%s: zeroed config: %s",
                  hft_schedule_kind_name((hft_schedule_kind)k), hft_error_message());
        }
        hft_schedule_free(sz);
        hft_schedule_free(sd);
    }
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"transformers_schedules", transformers_schedules},
        {"plateau_state_round_trip", plateau_state_round_trip},
        {"lambda_schedules_have_no_state", lambda_schedules_have_no_state},
        {"names_and_kinds", names_and_kinds},
        {"defaults_match_transformers", defaults_match_transformers},
        {"warmup_resolution", warmup_resolution},
        {"transformers_refusals", transformers_refusals},
        {"bad_configs", bad_configs},
        {"zeroed_config", zeroed_config},
    };
    int rc = test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    cJSON_Delete(meta_cases);
    cJSON_Delete(meta_refused);
    cJSON_Delete(meta_resolution);
    cJSON_Delete(meta_types);
    cJSON_Delete(meta_defaults);
    if (fixture) hft_safetensors_close(fixture);
    return rc;
}
