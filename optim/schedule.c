/* Learning-rate schedules: transformers' get_scheduler types as multipliers of the base lr, each lambda
 * written as transformers' optimization.py writes it (same f64 operations in the same order, so the lr
 * matches to the last bit), and torch's ReduceLROnPlateau with the multiplier as its lr state. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"

static const char *const kind_names[] = {
    [HFT_SCHEDULE_LINEAR] = "linear",
    [HFT_SCHEDULE_COSINE] = "cosine",
    [HFT_SCHEDULE_COSINE_WITH_RESTARTS] = "cosine_with_restarts",
    [HFT_SCHEDULE_POLYNOMIAL] = "polynomial",
    [HFT_SCHEDULE_CONSTANT] = "constant",
    [HFT_SCHEDULE_CONSTANT_WITH_WARMUP] = "constant_with_warmup",
    [HFT_SCHEDULE_INVERSE_SQRT] = "inverse_sqrt",
    [HFT_SCHEDULE_REDUCE_ON_PLATEAU] = "reduce_lr_on_plateau",
    [HFT_SCHEDULE_COSINE_WITH_MIN_LR] = "cosine_with_min_lr",
    [HFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR] = "cosine_warmup_with_min_lr",
    [HFT_SCHEDULE_WARMUP_STABLE_DECAY] = "warmup_stable_decay",
};
#define N_KINDS ((int)(sizeof(kind_names) / sizeof(kind_names[0])))

/* warmup_stable_decay's shapes, in transformers' spelling */
typedef enum shape { SHAPE_LINEAR, SHAPE_COSINE, SHAPE_1_SQRT } shape;
static const char *const shape_names[] = {"linear", "cosine", "1-sqrt"};

struct hft_schedule {
    hft_schedule_kind kind;
    int64_t T, W; /* total and (resolved) warmup steps */
    double num_cycles, power, lr_end, base_lr;
    int64_t timescale;
    double min_lr_rate, warmup_lr_rate; /* warmup_lr_rate NaN: unset */
    int64_t stable, decay;
    shape warmup_shape, decay_shape;
    double min_lr_ratio;
    /* plateau */
    bool mode_max, threshold_abs;
    double factor, threshold, min_lr, eps;
    int64_t patience, cooldown;
    hft_schedule_state st;
};

hft_schedule_config hft_schedule_defaults(hft_schedule_kind kind) {
    hft_schedule_config c = {
        .kind = kind,
        .num_cycles = kind == HFT_SCHEDULE_COSINE_WITH_RESTARTS ? 1.0 : 0.5,
        .power = 1.0,
        .lr_end = 1e-7,
        .min_lr = NAN,
        .min_lr_rate = NAN,
        .warmup_lr_rate = NAN,
        .num_stable_steps = -1,
        .num_decay_steps = -1,
        .warmup_type = "linear",
        .decay_type = "cosine",
        .factor = 0.1,
        .threshold = 1e-4,
        .plateau_eps = 1e-8,
        .patience = 10,
    };
    return c;
}

hft_status hft_schedule_kind_from_name(const char *name, hft_schedule_kind *kind) {
    assert(kind);
    for (int i = 0; name && i < N_KINDS; i++)
        if (strcmp(name, kind_names[i]) == 0) {
            *kind = (hft_schedule_kind)i;
            return HFT_OK;
        }
    char known[512];
    size_t n = 0;
    for (int i = 0; i < N_KINDS; i++)
        n += (size_t)snprintf(known + n, sizeof known - n, "%s%s", i ? ", " : "", kind_names[i]);
    if (name && strcmp(name, "greedy") == 0)
        return hft_error(
            HFT_EUNSUPPORTED,
            "lr_scheduler_type \"greedy\" (transformers' GreedyLR) is not supported; supported: %s", known);
    return hft_error(HFT_EINVAL, "unknown lr_scheduler_type \"%s\" (expected one of %s)",
                     name ? name : "(null)", known);
}

const char *hft_schedule_kind_name(hft_schedule_kind kind) {
    return (int)kind >= 0 && (int)kind < N_KINDS ? kind_names[kind] : "unknown";
}

/* ---------------------------------------------------------------- checks */

static bool uses_cycles(hft_schedule_kind k) {
    return k == HFT_SCHEDULE_COSINE || k == HFT_SCHEDULE_COSINE_WITH_RESTARTS ||
           k == HFT_SCHEDULE_COSINE_WITH_MIN_LR || k == HFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR ||
           k == HFT_SCHEDULE_WARMUP_STABLE_DECAY;
}

static hft_status parse_shape(const char *name, const char *what, const char *dflt, shape *out) {
    if (!name) name = dflt;
    for (int i = 0; i < 3; i++)
        if (strcmp(name, shape_names[i]) == 0) {
            *out = (shape)i;
            return HFT_OK;
        }
    return hft_error(HFT_EINVAL,
                     "lr schedule warmup_stable_decay: unknown %s \"%s\" (expected 'linear', 'cosine' or "
                     "'1-sqrt')",
                     what, name);
}

/* base_lr is needed where a kwarg is an absolute lr (transformers divides by optimizer.defaults["lr"]). */
static hft_status need_base_lr(const char *kind, double base_lr, const char *why) {
    if (isfinite(base_lr) && base_lr > 0) return HFT_OK;
    return hft_error(HFT_EINVAL,
                     "lr schedule %s: base_lr = %g: expected the optimizer's lr (finite, > 0), needed for %s",
                     kind, base_lr, why);
}

#define BAD(...) return hft_error(HFT_EINVAL, __VA_ARGS__)

/* Zero is a value in hft_schedule_config, not "the default": a zeroed config gets num_cycles, power or
 * factor 0, which is refused, with this hint. */
static const char *zero_hint(double v) {
    return v == 0 ? " (a zeroed config? start from hft_schedule_defaults())" : "";
}

/* The min_lr / min_lr_rate pair of the cosine_*min_lr schedules, as transformers resolves it. */
static hft_status resolve_min_lr(const hft_schedule_config *c, const char *kn, hft_schedule *s) {
    bool has_lr = !isnan(c->min_lr), has_rate = !isnan(c->min_lr_rate);
    if (has_lr && has_rate)
        BAD("lr schedule %s: min_lr = %g and min_lr_rate = %g: only one of min_lr or min_lr_rate should be "
            "set",
            kn, c->min_lr, c->min_lr_rate);
    if (!has_lr && !has_rate) BAD("lr schedule %s: one of min_lr or min_lr_rate should be set", kn);
    if (has_lr) {
        if (!isfinite(c->min_lr)) BAD("lr schedule %s: min_lr = %g: expected a finite number", kn, c->min_lr);
        HFT_TRY(need_base_lr(kn, c->base_lr, "min_lr (min_lr_rate = min_lr / base_lr)"));
        s->min_lr_rate = c->min_lr / c->base_lr;
    } else {
        if (!isfinite(c->min_lr_rate))
            BAD("lr schedule %s: min_lr_rate = %g: expected a finite number", kn, c->min_lr_rate);
        s->min_lr_rate = c->min_lr_rate;
    }
    if (!isnan(c->warmup_lr_rate) && !isfinite(c->warmup_lr_rate))
        BAD("lr schedule %s: warmup_lr_rate = %g: expected a finite number or unset (NaN)", kn,
            c->warmup_lr_rate);
    return HFT_OK;
}

static hft_status check_plateau(const hft_schedule_config *c, const char *kn, hft_schedule *s) {
    HFT_TRY(need_base_lr(kn, c->base_lr, "min_lr and eps (absolute learning rates)"));
    /* torch refuses factor >= 1; a factor of 0 (lr straight to min_lr) is refused too */
    if (!(c->factor > 0 && c->factor < 1.0))
        BAD("lr schedule %s: factor = %g: expected in (0, 1)%s", kn, c->factor, zero_hint(c->factor));
    if (c->patience < 0) BAD("lr schedule %s: patience = %lld: expected >= 0", kn, (long long)c->patience);
    if (c->cooldown < 0) BAD("lr schedule %s: cooldown = %lld: expected >= 0", kn, (long long)c->cooldown);
    if (!isfinite(c->threshold))
        BAD("lr schedule %s: threshold = %g: expected a finite number", kn, c->threshold);
    if (!isfinite(c->plateau_min_lr) || c->plateau_min_lr < 0)
        BAD("lr schedule %s: min_lr = %g: expected a finite number >= 0", kn, c->plateau_min_lr);
    if (!isfinite(c->plateau_eps) || c->plateau_eps < 0)
        BAD("lr schedule %s: eps = %g: expected a finite number >= 0", kn, c->plateau_eps);
    s->mode_max = c->mode_max;
    s->threshold_abs = c->threshold_abs;
    s->factor = c->factor;
    s->threshold = c->threshold;
    s->min_lr = c->plateau_min_lr;
    s->eps = c->plateau_eps;
    s->patience = c->patience;
    s->cooldown = c->cooldown;
    return HFT_OK;
}

static hft_status configure(const hft_schedule_config *c, hft_schedule *s) {
    if ((int)c->kind < 0 || (int)c->kind >= N_KINDS) BAD("lr schedule: unknown kind %d", (int)c->kind);
    const hft_schedule_kind k = c->kind;
    const char *kn = kind_names[k];
    s->kind = k;
    s->st.multiplier = 1.0;

    if (c->total_steps < 0)
        BAD("lr schedule %s: total_steps = %lld: expected >= 0", kn, (long long)c->total_steps);
    s->T = c->total_steps;
    /* TrainingArguments refuses warmup_steps < 0; get_warmup_steps truncates a count and takes the ceiling
     * of a ratio times the total, in f64: 100 × 0.07 = 7.000000000000001 → 8 steps, as in transformers */
    if (!(c->warmup >= 0) || !isfinite(c->warmup) || c->warmup >= 0x1p62)
        BAD("lr schedule %s: warmup = %g: expected warmup steps >= 0 (a value below 1 is a ratio of "
            "total_steps)",
            kn, c->warmup);
    int64_t W = c->warmup >= 1 ? (int64_t)c->warmup : (int64_t)ceil((double)c->total_steps * c->warmup);
    s->W = k == HFT_SCHEDULE_CONSTANT || k == HFT_SCHEDULE_REDUCE_ON_PLATEAU ? 0 : W;

    if (uses_cycles(k) && !(c->num_cycles > 0 && isfinite(c->num_cycles)))
        BAD("lr schedule %s: num_cycles = %g: expected a finite number > 0%s", kn, c->num_cycles,
            zero_hint(c->num_cycles));
    s->num_cycles = c->num_cycles;
    s->base_lr = c->base_lr;

    switch (k) {
    case HFT_SCHEDULE_POLYNOMIAL:
        HFT_TRY(need_base_lr(kn, c->base_lr, "lr_end (an absolute lr)"));
        if (!isfinite(c->lr_end) || !(c->lr_end < c->base_lr))
            BAD("lr schedule %s: lr_end = %g: expected smaller than the initial lr (base_lr = %g)", kn,
                c->lr_end, c->base_lr);
        /* 0 ** power at the last step: transformers raises ZeroDivisionError for a negative power (and
         * power 0, a constant lr, is refused as a zeroed config's mistake) */
        if (!(c->power > 0) || !isfinite(c->power))
            BAD("lr schedule %s: power = %g: expected a finite number > 0%s", kn, c->power,
                zero_hint(c->power));
        /* transformers divides by the decay length T - W when the step reaches W <= T */
        if (s->W == s->T)
            BAD("lr schedule %s: warmup of %lld steps equals total_steps = %lld: no steps left to decay over "
                "(transformers "
                "divides by zero at step %lld)",
                kn, (long long)s->W, (long long)s->T, (long long)s->T);
        s->power = c->power;
        s->lr_end = c->lr_end;
        break;
    case HFT_SCHEDULE_INVERSE_SQRT:
        if (c->timescale < 0)
            BAD("lr schedule %s: timescale = %lld: expected > 0 (or 0: the warmup steps, or 10000 without "
                "warmup)",
                kn, (long long)c->timescale);
        s->timescale = c->timescale ? c->timescale : s->W ? s->W : 10000;
        break;
    case HFT_SCHEDULE_COSINE_WITH_MIN_LR:
    case HFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR:
        HFT_TRY(resolve_min_lr(c, kn, s));
        s->warmup_lr_rate = k == HFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR ? c->warmup_lr_rate : NAN;
        break;
    case HFT_SCHEDULE_WARMUP_STABLE_DECAY:
        if (c->num_decay_steps < 0)
            BAD("lr schedule %s: num_decay_steps = %lld: expected >= 0 (it is required)", kn,
                (long long)c->num_decay_steps);
        HFT_TRY(parse_shape(c->warmup_type, "warmup_type", "linear", &s->warmup_shape));
        HFT_TRY(parse_shape(c->decay_type, "decay_type", "cosine", &s->decay_shape));
        if (!isfinite(c->min_lr_ratio))
            BAD("lr schedule %s: min_lr_ratio = %g: expected a finite number", kn, c->min_lr_ratio);
        s->decay = c->num_decay_steps;
        /* transformers: num_stable_steps, else num_training_steps - warmup - decay (negative when they
         * overlap: the stable phase is then skipped and decay starts part-way) */
        s->stable = c->num_stable_steps >= 0 ? c->num_stable_steps : s->T - s->W - s->decay;
        s->min_lr_ratio = c->min_lr_ratio;
        break;
    case HFT_SCHEDULE_REDUCE_ON_PLATEAU:
        HFT_TRY(check_plateau(c, kn, s));
        s->st.best = s->mode_max ? -INFINITY : INFINITY;
        break;
    default:
        break;
    }
    return HFT_OK;
}

hft_status hft_schedule_new(const hft_schedule_config *cfg, hft_schedule **out) {
    assert(cfg && out);
    *out = NULL;
    hft_schedule *s = calloc(1, sizeof *s);
    if (!s) return hft_error(HFT_ENOMEM, "lr schedule: out of memory");
    hft_status st = configure(cfg, s);
    if (st != HFT_OK) {
        free(s);
        return st;
    }
    *out = s;
    return HFT_OK;
}

void hft_schedule_free(hft_schedule *s) {
    free(s);
}

int64_t hft_schedule_warmup_steps(const hft_schedule *s) {
    return s->W;
}

/* ---------------------------------------------------------------- the lambdas (optimization.py) */

static double pos(double x) {
    return x > 0.0 ? x : 0.0;
} /* Python's max(0.0, x) */
static int64_t max1(int64_t x) {
    return x > 1 ? x : 1;
} /* max(1, x) */

/* float(current_step) / float(max(1, num_warmup_steps)) */
static double warmup_ramp(int64_t step, int64_t W) {
    return (double)step / (double)max1(W);
}

static double wsd(const hft_schedule *s, int64_t step) {
    const double r = s->min_lr_ratio;
    double factor;
    if (step < s->W) {
        double progress = (double)step / (double)max1(s->W);
        if (s->warmup_shape == SHAPE_LINEAR)
            factor = progress;
        else if (s->warmup_shape == SHAPE_COSINE)
            factor = 0.5 * (1.0 - cos(M_PI * progress));
        else
            factor = 1.0 - sqrt(1.0 - progress);
        factor = factor * (1.0 - r) + r;
        return pos(factor);
    }
    if (step < s->W + s->stable) return 1.0;
    if (step < s->W + s->stable + s->decay) {
        double progress = (double)(step - s->W - s->stable) / (double)max1(s->decay);
        if (s->decay_shape == SHAPE_LINEAR)
            factor = 1.0 - progress;
        else if (s->decay_shape == SHAPE_COSINE)
            factor = 0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * progress));
        else
            factor = 1.0 - sqrt(progress);
        factor = factor * (1.0 - r) + r;
        return pos(factor);
    }
    return r;
}

/* get_cosine_with_min_lr_schedule_with_warmup_lr_rate: all in floats, warmup ending at 1 on its last step */
static double cosine_warmup_min_lr(const hft_schedule *s, int64_t step) {
    const double cur = (double)step, W = (double)s->W, T = (double)s->T;
    if (cur < W) {
        if (isnan(s->warmup_lr_rate)) return (cur + 1.0) / fmax(1.0, W);
        const double r = s->warmup_lr_rate;
        return r + (1.0 - r) * cur / fmax(1.0, W - 1.0);
    }
    double progress = (cur - W + 1.0) / fmax(1.0, T - W);
    double factor = 0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * progress));
    factor = factor * (1.0 - s->min_lr_rate) + s->min_lr_rate;
    return pos(factor);
}

double hft_schedule_multiplier(const hft_schedule *s, int64_t step) {
    assert(s && step >= 0);
    const int64_t W = s->W, T = s->T;
    switch (s->kind) {
    case HFT_SCHEDULE_CONSTANT:
        return 1.0;
    case HFT_SCHEDULE_REDUCE_ON_PLATEAU:
        return s->st.multiplier;
    case HFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR:
        return cosine_warmup_min_lr(s, step);
    case HFT_SCHEDULE_WARMUP_STABLE_DECAY:
        return wsd(s, step);
    default:
        break;
    }
    if (step < W) {
        /* constant_with_warmup divides by max(1.0, W): the same value */
        return warmup_ramp(step, W);
    }
    switch (s->kind) {
    case HFT_SCHEDULE_LINEAR:
        return pos((double)(T - step) / (double)max1(T - W));
    case HFT_SCHEDULE_COSINE: {
        double progress = (double)(step - W) / (double)max1(T - W);
        return pos(0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * progress)));
    }
    case HFT_SCHEDULE_COSINE_WITH_RESTARTS: {
        double progress = (double)(step - W) / (double)max1(T - W);
        if (progress >= 1.0) return 0.0;
        /* Python's % equals fmod for the non-negative operands here */
        return pos(0.5 * (1.0 + cos(M_PI * fmod(s->num_cycles * progress, 1.0))));
    }
    case HFT_SCHEDULE_POLYNOMIAL: {
        const double lr_init = s->base_lr;
        if (step > T) return s->lr_end / lr_init; /* LambdaLR multiplies by lr_init */
        double lr_range = lr_init - s->lr_end;
        int64_t decay_steps = T - W;
        double pct_remaining = 1 - (double)(step - W) / (double)decay_steps;
        double decay = lr_range * pow(pct_remaining, s->power) + s->lr_end;
        return decay / lr_init;
    }
    case HFT_SCHEDULE_CONSTANT_WITH_WARMUP:
        return 1.0;
    case HFT_SCHEDULE_INVERSE_SQRT: {
        int64_t shift = s->timescale - W;
        return 1.0 / sqrt((double)(step + shift) / (double)s->timescale);
    }
    case HFT_SCHEDULE_COSINE_WITH_MIN_LR: {
        double progress = (double)(step - W) / (double)max1(T - W);
        double factor = 0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * progress));
        factor = factor * (1 - s->min_lr_rate) + s->min_lr_rate;
        return pos(factor);
    }
    default:
        assert(0 && "unreachable");
        return 1.0;
    }
}

/* ---------------------------------------------------------------- torch's ReduceLROnPlateau */

static bool is_better(const hft_schedule *s, double a, double best) {
    if (!s->mode_max) return s->threshold_abs ? a < best - s->threshold : a < best * (1.0 - s->threshold);
    return s->threshold_abs ? a > best + s->threshold : a > best * (s->threshold + 1.0);
}

void hft_schedule_observe(hft_schedule *s, double metric) {
    assert(s);
    if (s->kind != HFT_SCHEDULE_REDUCE_ON_PLATEAU) return;
    hft_schedule_state *st = &s->st;
    st->last_epoch++;
    if (is_better(s, metric, st->best)) {
        st->best = metric;
        st->num_bad_epochs = 0;
    } else {
        st->num_bad_epochs++;
    }
    if (st->cooldown_counter > 0) {
        st->cooldown_counter--;
        st->num_bad_epochs = 0; /* bad epochs in cooldown do not count */
    }
    if (st->num_bad_epochs > s->patience) {
        /* torch works on the lr itself: min_lr and eps are absolute */
        double old_lr = s->base_lr * st->multiplier;
        double new_lr = old_lr * s->factor;
        if (s->min_lr > new_lr) new_lr = s->min_lr; /* max(old_lr * factor, min_lr) */
        if (old_lr - new_lr > s->eps) st->multiplier = new_lr / s->base_lr;
        st->cooldown_counter = s->cooldown;
        st->num_bad_epochs = 0;
    }
}

void hft_schedule_get_state(const hft_schedule *s, hft_schedule_state *state) {
    assert(s && state);
    if (s->kind == HFT_SCHEDULE_REDUCE_ON_PLATEAU)
        *state = s->st;
    else
        *state = (hft_schedule_state){.multiplier = 1.0};
}

void hft_schedule_set_state(hft_schedule *s, const hft_schedule_state *state) {
    assert(s && state);
    if (s->kind == HFT_SCHEDULE_REDUCE_ON_PLATEAU) s->st = *state;
}
