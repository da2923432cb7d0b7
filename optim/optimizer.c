/* Optimizers over a parameter set: SGD, Adam, AdamW, Adafactor and Lion with parameter groups, their state
 * in flat buffers laid out like the flat gradient buffer (named per parameter for checkpoints), and the
 * step, which hands every trainable parameter to one kernel call (Adafactor: one per parameter). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/optim.h"

/* ---------------------------------------------------------------- configuration */

hft_optim_config hft_optim_defaults(hft_optim_kind kind) {
    hft_optim_config c = {
        .kind = kind,
        .lr = 5e-5,
        .weight_decay = 0,
        .beta1 = 0.9,
        .beta2 = kind == HFT_OPTIM_LION ? 0.99 : 0.999,
        .eps = 1e-8,
        .adafactor_eps1 = 1e-30,
        .adafactor_eps2 = 1e-3,
        .clip_threshold = 1.0,
        .decay_rate = -0.8,
        .has_beta1 = false,
        .scale_parameter = true,
        .relative_step = true,
        .warmup_init = false,
    };
    return c;
}

static const struct {
    const char *name;
    hft_optim_kind kind;
} optim_names[] = {
    {"adamw_torch_fused", HFT_OPTIM_ADAMW},
    {"adamw_torch", HFT_OPTIM_ADAMW},
    {"adamw", HFT_OPTIM_ADAMW},
    {"adam", HFT_OPTIM_ADAM},
    {"sgd", HFT_OPTIM_SGD},
    {"adafactor", HFT_OPTIM_ADAFACTOR},
    {"lion", HFT_OPTIM_LION},
    {"lion_32bit", HFT_OPTIM_LION},
};
enum { N_OPTIM_NAMES = sizeof optim_names / sizeof optim_names[0] };

hft_status hft_optim_kind_from_name(const char *name, hft_optim_kind *kind) {
    for (int i = 0; i < N_OPTIM_NAMES; i++)
        if (name && strcmp(name, optim_names[i].name) == 0) {
            *kind = optim_names[i].kind;
            return HFT_OK;
        }
    char known[256] = "";
    for (int i = 0; i < N_OPTIM_NAMES; i++) {
        size_t len = strlen(known);
        snprintf(known + len, sizeof known - len, "%s%s", i ? ", " : "", optim_names[i].name);
    }
    return hft_error(HFT_EINVAL, "optim: unknown optimizer '%s' (known: %s)", name ? name : "(null)", known);
}

const char *hft_optim_kind_name(hft_optim_kind kind) {
    switch (kind) {
    case HFT_OPTIM_SGD:
        return "sgd";
    case HFT_OPTIM_ADAM:
        return "adam";
    case HFT_OPTIM_ADAMW:
        return "adamw_torch_fused";
    case HFT_OPTIM_ADAFACTOR:
        return "adafactor";
    case HFT_OPTIM_LION:
        return "lion";
    }
    return "unknown";
}

static hft_status bad_value(const char *opt, const char *what, double v, const char *allowed) {
    return hft_error(HFT_EINVAL, "%s: %s: expected %s, got %g", opt, what, allowed, v);
}

/* lr and weight decay, as a config or a group gives them */
static hft_status check_lr_wd(const char *opt, const char *lr_name, double lr, const char *wd_name,
                              double wd) {
    if (!isfinite(lr) || lr < 0) return bad_value(opt, lr_name, lr, "a finite number >= 0");
    if (!isfinite(wd) || wd < 0) return bad_value(opt, wd_name, wd, "a finite number >= 0");
    return HFT_OK;
}

hft_status hft_optim_config_check(const hft_optim_config *c) {
    const char *opt = hft_optim_kind_name(c->kind);
    if ((unsigned)c->kind > HFT_OPTIM_LION)
        return hft_error(HFT_EINVAL, "optim: unknown optimizer kind %d", (int)c->kind);
    HFT_TRY(check_lr_wd(opt, "lr", c->lr, "weight_decay", c->weight_decay));
    switch (c->kind) {
    case HFT_OPTIM_ADAM:
    case HFT_OPTIM_ADAMW: /* torch.optim.Adam's checks */
        if (!(c->beta1 >= 0 && c->beta1 < 1)) return bad_value(opt, "beta1", c->beta1, "a number in [0, 1)");
        if (!(c->beta2 >= 0 && c->beta2 < 1)) return bad_value(opt, "beta2", c->beta2, "a number in [0, 1)");
        if (!(c->eps > 0) || !isfinite(c->eps)) return bad_value(opt, "eps", c->eps, "a finite number > 0");
        break;
    case HFT_OPTIM_SGD:
        if (!(c->momentum >= 0) || !isfinite(c->momentum))
            return bad_value(opt, "momentum", c->momentum, "a finite number >= 0");
        if (!isfinite(c->dampening)) return bad_value(opt, "dampening", c->dampening, "a finite number");
        if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            return hft_error(
                HFT_EINVAL,
                "sgd: nesterov: needs momentum > 0 and dampening 0, got momentum %g, dampening %g",
                c->momentum, c->dampening);
        break;
    case HFT_OPTIM_LION: /* lion-pytorch accepts betas in [0, 1] */
        if (!(c->beta1 >= 0 && c->beta1 <= 1)) return bad_value(opt, "beta1", c->beta1, "a number in [0, 1]");
        if (!(c->beta2 >= 0 && c->beta2 <= 1)) return bad_value(opt, "beta2", c->beta2, "a number in [0, 1]");
        break;
    case HFT_OPTIM_ADAFACTOR:
        if (!(c->adafactor_eps1 > 0) || !isfinite(c->adafactor_eps1))
            return bad_value(opt, "eps1", c->adafactor_eps1, "a finite number > 0");
        if (!(c->adafactor_eps2 >= 0) || !isfinite(c->adafactor_eps2))
            return bad_value(opt, "eps2", c->adafactor_eps2, "a finite number >= 0");
        if (!(c->clip_threshold > 0) || !isfinite(c->clip_threshold))
            return bad_value(opt, "clip_threshold", c->clip_threshold, "a finite number > 0");
        if (!(c->decay_rate <= 0) || !isfinite(c->decay_rate))
            return bad_value(opt, "decay_rate", c->decay_rate, "a finite number <= 0");
        if (c->has_beta1 && !(c->beta1 >= 0 && c->beta1 <= 1))
            return bad_value(opt, "beta1", c->beta1, "a number in [0, 1]");
        if (c->warmup_init && !c->relative_step) /* transformers' own check */
            return hft_error(HFT_EINVAL, "adafactor: warmup_init: needs relative_step");
        break;
    }
    return HFT_OK;
}

/* ---------------------------------------------------------------- the optimizer */

enum { BUF_A, BUF_B, BUF_C, N_BUFS }; /* flat state buffers; which is which depends on the kind */
_Static_assert(N_BUFS == HFT_OPTIM_STATE_BUFFERS, "optim.h counts the state buffers");

typedef struct member {
    hft_param *param;
    int group;
    /* Adafactor: the parameter as [batch, rows, cols], and where its second moment lies in BUF_B */
    int64_t batch, rows, cols, sq_offset;
    bool factored;
} member;

typedef struct state_entry {
    char *name;
    int buf;
    int64_t offset;
    int ndim;
    int64_t shape[HFT_MAX_DIMS];
    hft_tensor *view;
} state_entry;

typedef struct opt_group {
    double lr, weight_decay, last_lr;
    int first_member; /* -1 when empty */
} opt_group;

struct hft_optimizer {
    hft_paramset *ps;
    hft_optim_config cfg;
    const hft_kernels *k; /* the table of the parameters' device */
    hft_device device;    /* where the flat gradient, and so the state, lives */
    int n_groups;
    opt_group *groups;
    int n_members;
    member *members; /* registration order */
    int n_slices;    /* n_members, or fewer when sharded */
    hft_optim_slice
        *slices; /* ascending grad offset; sharded: the parts in the shard, offsets from its start */
    int *slice_member;
    bool sharded; /* ZeRO-1: state and updates for [shard_lo, shard_lo + shard_n) only */
    int64_t shard_lo, shard_n;
    int64_t steps;
    int64_t buf_numel[N_BUFS]; /* 0: buffer not used */
    hft_tensor *bufs[N_BUFS];
    int n_state;
    state_entry *state;
    hft_tensor *scratch; /* Adafactor's factors */
    int64_t scratch_numel;
};

typedef struct by_offset {
    int64_t offset;
    int member;
} by_offset;

static int cmp_offset(const void *a, const void *b) {
    const by_offset *x = a, *y = b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static hft_status add_state(hft_optimizer *o, const char *prefix, const hft_param *p, int buf, int64_t offset,
                            int ndim, const int64_t *shape) {
    state_entry *e = &o->state[o->n_state];
    size_t len = strlen(prefix) + strlen(p->name) + 2;
    e->name = malloc(len);
    if (!e->name) return hft_error(HFT_ENOMEM, "optimizer: out of memory");
    snprintf(e->name, len, "%s/%s", prefix, p->name);
    e->buf = buf;
    e->offset = offset;
    e->ndim = ndim;
    memcpy(e->shape, shape, sizeof(int64_t) * (size_t)ndim);
    e->view = NULL;
    o->n_state++;
    return HFT_OK;
}

/* The named state of each parameter, in registration order, and the buffer sizes behind them. */
static hft_status plan_state(hft_optimizer *o) {
    const hft_optim_config *c = &o->cfg;
    int64_t n_flat = hft_paramset_trainable_numel(o->ps);
    o->state = calloc((size_t)o->n_members * 3 + 1, sizeof *o->state);
    if (!o->state) return hft_error(HFT_ENOMEM, "optimizer: out of memory");
    int64_t sq = 0;
    for (int i = 0; i < o->n_members; i++) {
        member *m = &o->members[i];
        const hft_param *p = m->param;
        const hft_tensor *v = p->value;
        int64_t off = p->grad_offset;
        switch (c->kind) {
        case HFT_OPTIM_SGD:
            if (c->momentum != 0) HFT_TRY(add_state(o, "momentum_buffer", p, BUF_A, off, v->ndim, v->shape));
            break;
        case HFT_OPTIM_ADAM:
        case HFT_OPTIM_ADAMW:
            HFT_TRY(add_state(o, "exp_avg", p, BUF_A, off, v->ndim, v->shape));
            HFT_TRY(add_state(o, "exp_avg_sq", p, BUF_B, off, v->ndim, v->shape));
            if (c->amsgrad) HFT_TRY(add_state(o, "max_exp_avg_sq", p, BUF_C, off, v->ndim, v->shape));
            break;
        case HFT_OPTIM_LION:
            HFT_TRY(add_state(o, "exp_avg", p, BUF_A, off, v->ndim, v->shape));
            break;
        case HFT_OPTIM_ADAFACTOR:
            if (c->has_beta1) HFT_TRY(add_state(o, "exp_avg", p, BUF_A, off, v->ndim, v->shape));
            m->factored = v->ndim >= 2;
            m->sq_offset = sq;
            if (m->factored) {
                int64_t shape[HFT_MAX_DIMS];
                m->rows = v->shape[v->ndim - 2];
                m->cols = v->shape[v->ndim - 1];
                int64_t plane = m->rows * m->cols;
                m->batch = plane > 0 ? hft_tensor_numel(v) / plane : 0;
                HFT_TRY(add_state(o, "exp_avg_sq_row", p, BUF_B, sq, v->ndim - 1, v->shape));
                memcpy(shape, v->shape, sizeof shape);
                shape[v->ndim - 2] = v->shape[v->ndim - 1];
                HFT_TRY(
                    add_state(o, "exp_avg_sq_col", p, BUF_B, sq + m->batch * m->rows, v->ndim - 1, shape));
                sq += m->batch * (m->rows + m->cols);
                int64_t need = m->batch * (m->rows + m->cols);
                if (need > o->scratch_numel) o->scratch_numel = need;
            } else {
                m->batch = 1;
                m->rows = 1;
                m->cols = hft_tensor_numel(v);
                HFT_TRY(add_state(o, "exp_avg_sq", p, BUF_B, sq, v->ndim, v->shape));
                sq += m->cols;
            }
            break;
        }
    }
    switch (c->kind) {
    case HFT_OPTIM_SGD:
        o->buf_numel[BUF_A] = c->momentum != 0 ? n_flat : 0;
        break;
    case HFT_OPTIM_ADAM:
    case HFT_OPTIM_ADAMW:
        o->buf_numel[BUF_A] = o->buf_numel[BUF_B] = n_flat;
        o->buf_numel[BUF_C] = c->amsgrad ? n_flat : 0;
        break;
    case HFT_OPTIM_LION:
        o->buf_numel[BUF_A] = n_flat;
        break;
    case HFT_OPTIM_ADAFACTOR:
        o->buf_numel[BUF_A] = c->has_beta1 ? n_flat : 0;
        o->buf_numel[BUF_B] = sq;
        break;
    }
    return HFT_OK;
}

/* Allocates the state on first use (a step, or a checkpoint writing it back): zeros, as torch starts. */
static hft_status ensure_state(hft_optimizer *o) {
    /* one allocation holds every flat state buffer, each starting 256 bytes aligned as the first */
    int64_t at[N_BUFS], total = 0;
    bool missing = false;
    for (int b = 0; b < N_BUFS; b++) {
        at[b] = total;
        total += (o->buf_numel[b] + 63) / 64 * 64;
        missing |= o->buf_numel[b] && !o->bufs[b];
    }
    if (missing) {
        hft_tensor *all = hft_tensor_new_on(o->device, HFT_F32, 1, &total);
        if (!all) return hft_error(HFT_ENOMEM, "optimizer: out of memory for its state");
        for (int b = 0; b < N_BUFS; b++)
            if (o->buf_numel[b] && !(o->bufs[b] = hft_tensor_alias(all, at[b], 1, &o->buf_numel[b]))) {
                hft_tensor_free(all);
                return hft_error(HFT_ENOMEM, "optimizer: out of memory");
            }
        hft_tensor_free(all); /* the buffers hold its storage */
    }
    if (o->scratch_numel && !o->scratch) {
        o->scratch = hft_tensor_new_on(o->device, HFT_F32, 1, (int64_t[]){o->scratch_numel});
        if (!o->scratch) return hft_error(HFT_ENOMEM, "optimizer: out of memory");
    }
    for (int i = 0; i < o->n_state && !o->sharded; i++) { /* a shard has no whole tensors to view */
        state_entry *e = &o->state[i];
        if (e->view) continue;
        e->view = hft_tensor_alias(o->bufs[e->buf], e->offset, e->ndim, e->shape);
        if (!e->view) return hft_error(HFT_ENOMEM, "optimizer: out of memory");
        e->view->name = e->name;
    }
    return HFT_OK;
}

void hft_optimizer_free(hft_optimizer *o) {
    if (!o) return;
    for (int i = 0; i < o->n_state; i++) {
        hft_tensor_free(o->state[i].view);
        free(o->state[i].name);
    }
    for (int b = 0; b < N_BUFS; b++) hft_tensor_free(o->bufs[b]);
    hft_tensor_free(o->scratch);
    free(o->state);
    free(o->groups);
    free(o->members);
    free(o->slices);
    free(o->slice_member);
    free(o);
}

/* Assigns every trainable parameter to its group (-1: none yet). */
static hft_status assign_groups(hft_optimizer *o, int n_groups, const hft_param_group *groups, int *of) {
    hft_paramset *ps = o->ps;
    int n = hft_paramset_count(ps);
    for (int i = 0; i < n; i++) of[i] = -1;
    if (n_groups == 0) { /* the HF Trainer's grouping: decay, then no decay */
        for (int i = 0; i < n; i++) {
            const hft_param *p = hft_paramset_get(ps, i);
            if (!(p->tags & HFT_PARAM_FROZEN)) of[i] = (p->tags & HFT_PARAM_NO_DECAY) ? 1 : 0;
        }
        return HFT_OK;
    }
    for (int g = 0; g < n_groups; g++) {
        HFT_TRY(check_lr_wd(hft_optim_kind_name(o->cfg.kind), "group lr", groups[g].lr, "group weight_decay",
                            groups[g].weight_decay));
        if (groups[g].n_params < 0 || (groups[g].n_params > 0 && !groups[g].params))
            return hft_error(HFT_EINVAL, "optimizer: group %d: %d parameters but no names", g,
                             groups[g].n_params);
        for (int j = 0; j < groups[g].n_params; j++) {
            const char *name = groups[g].params[j];
            int idx = -1;
            for (int i = 0; i < n && name; i++)
                if (strcmp(hft_paramset_get(ps, i)->name, name) == 0) idx = i;
            if (idx < 0)
                return hft_error(HFT_EINVAL,
                                 "optimizer: group %d names '%s', which is not in the parameter set", g,
                                 name ? name : "(null)");
            if (hft_paramset_get(ps, idx)->tags & HFT_PARAM_FROZEN)
                continue; /* frozen: nothing to optimize */
            if (of[idx] >= 0)
                return hft_error(HFT_EINVAL,
                                 "optimizer: parameter '%s' is in group %d and in group %d; it may be "
                                 "in one group only",
                                 name, of[idx], g);
            of[idx] = g;
        }
    }
    for (int i = 0; i < n; i++) {
        const hft_param *p = hft_paramset_get(ps, i);
        if (!(p->tags & HFT_PARAM_FROZEN) && of[i] < 0)
            return hft_error(HFT_EINVAL,
                             "optimizer: trainable parameter '%s' is in no parameter group (every "
                             "trainable parameter must be in exactly one)",
                             p->name);
    }
    return HFT_OK;
}

static hft_status optimizer_init(hft_optimizer *o, int n_groups, const hft_param_group *groups) {
    hft_paramset *ps = o->ps;
    int n = hft_paramset_count(ps);
    for (int i = 0; i < n; i++) {
        const hft_param *p = hft_paramset_get(ps, i);
        if (!(p->tags & HFT_PARAM_FROZEN) && !p->grad)
            return hft_error(HFT_ESTATE,
                             "optimizer: the parameter set is not finalized ('%s' has no gradient); "
                             "call hft_paramset_finalize first",
                             p->name);
    }
    int *of = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!of) return hft_error(HFT_ENOMEM, "optimizer: out of memory");
    hft_status st = assign_groups(o, n_groups, groups, of);
    if (st != HFT_OK) {
        free(of);
        return st;
    }
    o->n_groups = n_groups ? n_groups : 2;
    o->groups = calloc((size_t)o->n_groups, sizeof *o->groups);
    o->members = calloc((size_t)(n ? n : 1), sizeof *o->members);
    o->slices = calloc((size_t)(n ? n : 1), sizeof *o->slices);
    o->slice_member = calloc((size_t)(n ? n : 1), sizeof *o->slice_member);
    if (!o->groups || !o->members || !o->slices || !o->slice_member) {
        free(of);
        return hft_error(HFT_ENOMEM, "optimizer: out of memory");
    }
    for (int g = 0; g < o->n_groups; g++) {
        o->groups[g].lr = n_groups ? groups[g].lr : o->cfg.lr;
        o->groups[g].weight_decay = n_groups ? groups[g].weight_decay : (g == 0 ? o->cfg.weight_decay : 0.0);
        o->groups[g].last_lr = o->groups[g].lr;
        o->groups[g].first_member = -1;
    }
    for (int i = 0; i < n; i++) {
        if (of[i] < 0) continue;
        member *m = &o->members[o->n_members];
        m->param = hft_paramset_get(ps, i);
        m->group = of[i];
        if (o->groups[m->group].first_member < 0) o->groups[m->group].first_member = o->n_members;
        o->n_members++;
    }
    free(of);
    /* the slices in the flat buffers' order, which is the reverse of registration */
    by_offset *order = malloc(sizeof *order * (size_t)(o->n_members ? o->n_members : 1));
    if (!order) return hft_error(HFT_ENOMEM, "optimizer: out of memory");
    for (int i = 0; i < o->n_members; i++) order[i] = (by_offset){o->members[i].param->grad_offset, i};
    qsort(order, (size_t)o->n_members, sizeof *order, cmp_offset);
    for (int s = 0; s < o->n_members; s++) {
        const hft_param *p = o->members[order[s].member].param;
        o->slices[s] = (hft_optim_slice){
            .param = hft_tensor_data(p->value), .offset = p->grad_offset, .n = hft_tensor_numel(p->value)};
        o->slice_member[s] = order[s].member;
    }
    o->n_slices = o->n_members;
    free(order);
    return plan_state(o);
}

hft_status hft_optimizer_new(hft_paramset *ps, const hft_optim_config *cfg, int n_groups,
                             const hft_param_group *groups, hft_optimizer **out) {
    *out = NULL;
    if (!ps || !cfg) return hft_error(HFT_EINVAL, "optimizer: no parameter set or config");
    HFT_TRY(hft_optim_config_check(cfg));
    if (n_groups < 0 || (n_groups > 0 && !groups))
        return hft_error(HFT_EINVAL, "optimizer: %d parameter groups but no group array", n_groups);
    /* the state lives with the flat gradient, on the trainable parameters' device, and steps run there */
    const hft_tensor *flat = hft_paramset_grads(ps);
    hft_device device = flat ? flat->device : (hft_device){HFT_CPU, 0};
    const char *where = device.type == HFT_CPU ? "CPU" : "CUDA";
    const hft_kernels *k = hft_kernels_for(device.type);
    if (!k || !k->adam_step[HFT_F32])
        return hft_error(HFT_EUNSUPPORTED, "optimizer: no optimizer kernels in the %s table", where);
    hft_optimizer *o = calloc(1, sizeof *o);
    if (!o) return hft_error(HFT_ENOMEM, "optimizer: out of memory");
    o->ps = ps;
    o->cfg = *cfg;
    o->k = k;
    o->device = device;
    hft_status st = optimizer_init(o, n_groups, groups);
    if (st != HFT_OK) {
        hft_optimizer_free(o);
        return st;
    }
    *out = o;
    return HFT_OK;
}

/* Adafactor, one parameter at a time: its lr comes from its own RMS (transformers' _get_lr), with the f32
 * roundings torch makes when that RMS, a 0-dim f32 tensor, enters the product. With relative_step the
 * group lr is unused, as in transformers, but the schedule's multiplier still scales the relative step
 * (a multiplier of 1 is transformers exactly); the group's logged lr is its first parameter's, as
 * transformers' AdafactorSchedule reports it. */
static void adafactor_param(hft_optimizer *o, member *m, double multiplier, int64_t t) {
    const hft_optim_config *c = &o->cfg;
    const opt_group *g = &o->groups[m->group];
    hft_tensor *v = m->param->value;
    int64_t n = hft_tensor_numel(v);
    if (n == 0) return;
    double rel = g->lr * multiplier;
    if (c->relative_step) {
        double min_step = c->warmup_init ? 1e-6 * (double)t : 1e-2;
        double r = 1.0 / sqrt((double)t);
        rel = (min_step < r ? min_step : r) * multiplier;
    }
    double lr, decay = 0;
    bool lr_is_f32 = false;
    float lr_f = 0;
    if (c->scale_parameter) {
        float rms = (float)sqrt(o->k->sumsq[HFT_F32](hft_tensor_data(v), n)) / (float)sqrt((double)n);
        if (rms > (float)c->adafactor_eps2) { /* max(eps2, RMS) picks the tensor: the product is f32 */
            lr_f = rms * (float)rel;
            lr_is_f32 = true;
        }
        lr = lr_is_f32 ? (double)lr_f : c->adafactor_eps2 * rel;
    } else {
        lr = rel;
    }
    if (g->weight_decay != 0)
        decay = lr_is_f32 ? (double)((float)(-g->weight_decay) * lr_f) : -g->weight_decay * lr;
    if (m == &o->members[g->first_member]) o->groups[m->group].last_lr = lr;
    float *row = o->bufs[BUF_B] ? (float *)hft_tensor_data(o->bufs[BUF_B]) + m->sq_offset : NULL;
    hft_adafactor_args a = {
        .param = hft_tensor_data(v),
        .grad = hft_tensor_data(m->param->grad),
        .batch = m->batch,
        .rows = m->rows,
        .cols = m->cols,
        .factored = m->factored,
        .exp_avg_sq_row = m->factored ? row : NULL,
        .exp_avg_sq_col = m->factored ? row + m->batch * m->rows : NULL,
        .exp_avg_sq = m->factored ? NULL : row,
        .exp_avg = c->has_beta1 && o->bufs[BUF_A]
                       ? (float *)hft_tensor_data(o->bufs[BUF_A]) + m->param->grad_offset
                       : NULL,
        .scratch = o->scratch ? hft_tensor_data(o->scratch) : NULL,
        .beta1 = c->beta1,
        .beta2t = 1.0 - pow((double)t, c->decay_rate),
        .eps1 = c->adafactor_eps1,
        .clip_threshold = c->clip_threshold,
        .lr = lr,
        .decay = decay,
    };
    o->k->adafactor_step[HFT_F32](&a);
}

hft_status hft_optimizer_step(hft_optimizer *o, double lr_multiplier) {
    if (!isfinite(lr_multiplier) || lr_multiplier < 0)
        return hft_error(HFT_EINVAL, "optimizer step: lr multiplier: expected a finite number >= 0, got %g",
                         lr_multiplier);
    if (o->n_members == 0) {
        o->steps++;
        return HFT_OK;
    }
    hft_paramset_materialize_grads(o->ps);
    HFT_TRY(ensure_state(o));
    const hft_optim_config *c = &o->cfg;
    int64_t t = o->steps + 1;
    for (int g = 0; g < o->n_groups; g++) o->groups[g].last_lr = o->groups[g].lr * lr_multiplier;
    for (int s = 0; s < o->n_slices; s++) {
        const opt_group *g = &o->groups[o->members[o->slice_member[s]].group];
        o->slices[s].lr = g->lr * lr_multiplier;
        o->slices[s].weight_decay = g->weight_decay;
    }
    const float *grad = (const float *)hft_tensor_data(hft_paramset_grads(o->ps)) + o->shard_lo;
    void *bufs[N_BUFS];
    for (int b = 0; b < N_BUFS; b++) bufs[b] = o->bufs[b] ? hft_tensor_data(o->bufs[b]) : NULL;
    switch (c->kind) {
    case HFT_OPTIM_SGD: {
        hft_sgd_args a = {.n_slices = o->n_slices,
                          .slices = o->slices,
                          .grad = grad,
                          .momentum_buffer = c->momentum != 0 ? bufs[BUF_A] : NULL,
                          .momentum = c->momentum,
                          .dampening = c->dampening,
                          .nesterov = c->nesterov,
                          .first_step = t == 1};
        o->k->sgd_step[HFT_F32](&a);
        break;
    }
    case HFT_OPTIM_ADAM:
    case HFT_OPTIM_ADAMW: {
        hft_adam_args a = {.n_slices = o->n_slices,
                           .slices = o->slices,
                           .grad = grad,
                           .exp_avg = bufs[BUF_A],
                           .exp_avg_sq = bufs[BUF_B],
                           .max_exp_avg_sq = bufs[BUF_C],
                           .beta1 = c->beta1,
                           .beta2 = c->beta2,
                           .eps = c->eps,
                           .step = t,
                           .decoupled = c->kind == HFT_OPTIM_ADAMW,
                           .amsgrad = c->amsgrad};
        o->k->adam_step[HFT_F32](&a);
        break;
    }
    case HFT_OPTIM_LION: {
        hft_lion_args a = {.n_slices = o->n_slices,
                           .slices = o->slices,
                           .grad = grad,
                           .exp_avg = bufs[BUF_A],
                           .beta1 = c->beta1,
                           .beta2 = c->beta2};
        o->k->lion_step[HFT_F32](&a);
        break;
    }
    case HFT_OPTIM_ADAFACTOR:
        for (int i = 0; i < o->n_members; i++) adafactor_param(o, &o->members[i], lr_multiplier, t);
        break;
    }
    for (int i = 0; i < o->n_members; i++) o->members[i].param->value->version++;
    o->steps = t;
    return HFT_OK;
}

int64_t hft_optimizer_steps(const hft_optimizer *o) {
    return o->steps;
}

double hft_optimizer_group_lr(const hft_optimizer *o, int group) {
    return group >= 0 && group < o->n_groups ? o->groups[group].last_lr : 0.0;
}

int hft_optimizer_group_count(const hft_optimizer *o) {
    return o->n_groups;
}

int hft_optimizer_state_count(const hft_optimizer *o) {
    return o->n_state;
}

hft_status hft_optimizer_state(hft_optimizer *o, int i, const char **name, hft_tensor **tensor) {
    if (i < 0 || i >= o->n_state)
        return hft_error(HFT_EINVAL, "optimizer state: index %d out of range [0, %d)", i, o->n_state);
    if (o->sharded)
        return hft_error(HFT_ESTATE,
                         "optimizer state: '%s': a sharded optimizer holds a range of it only "
                         "(hft_optimizer_state_info and hft_optimizer_state_buffer read the shard)",
                         o->state[i].name);
    HFT_TRY(ensure_state(o));
    if (name) *name = o->state[i].name;
    if (tensor) *tensor = o->state[i].view;
    return HFT_OK;
}

void hft_optimizer_set_steps(hft_optimizer *o, int64_t steps) {
    o->steps = steps < 0 ? 0 : steps;
}

/* ---------------------------------------------------------------- sharding (ZeRO-1) */

hft_status hft_optimizer_shard(hft_optimizer *o, int64_t lo, int64_t count) {
    int64_t n_flat = hft_paramset_trainable_numel(o->ps);
    if (o->cfg.kind == HFT_OPTIM_ADAFACTOR)
        return hft_error(HFT_EUNSUPPORTED,
                         "adafactor: cannot be sharded (ZeRO-1): its factored moments and its lr, from each "
                         "parameter's RMS, span whole parameters; use adamw, sgd or lion");
    if (o->sharded || o->steps > 0)
        return hft_error(HFT_ESTATE, "optimizer shard: set once, before the first step");
    for (int b = 0; b < N_BUFS; b++)
        if (o->bufs[b]) return hft_error(HFT_ESTATE, "optimizer shard: the state is already allocated");
    if (lo < 0 || count < 0 || lo + count > n_flat)
        return hft_error(HFT_EINVAL, "optimizer shard: [%lld, %lld) is not inside the %lld trainable values",
                         (long long)lo, (long long)(lo + count), (long long)n_flat);
    int kept = 0;
    for (int s = 0; s < o->n_slices; s++) { /* ascending offsets: each slice clipped to the shard */
        hft_optim_slice sl = o->slices[s];
        int64_t start = sl.offset > lo ? sl.offset : lo;
        int64_t end = sl.offset + sl.n < lo + count ? sl.offset + sl.n : lo + count;
        if (end <= start) continue;
        o->slice_member[kept] = o->slice_member[s];
        o->slices[kept++] = (hft_optim_slice){
            .param = (float *)sl.param + (start - sl.offset), .offset = start - lo, .n = end - start};
    }
    o->n_slices = kept;
    for (int b = 0; b < N_BUFS; b++)
        if (o->buf_numel[b]) o->buf_numel[b] = count;
    o->sharded = true;
    o->shard_lo = lo;
    o->shard_n = count;
    return HFT_OK;
}

hft_status hft_optimizer_state_info(const hft_optimizer *o, int i, hft_optim_state_info *info) {
    if (i < 0 || i >= o->n_state)
        return hft_error(HFT_EINVAL, "optimizer state: index %d out of range [0, %d)", i, o->n_state);
    const state_entry *e = &o->state[i];
    *info = (hft_optim_state_info){
        .name = e->name, .buffer = e->buf, .offset = e->offset, .ndim = e->ndim, .shape = e->shape};
    return HFT_OK;
}

hft_status hft_optimizer_state_buffer(hft_optimizer *o, int b, hft_tensor **shard, int64_t *lo) {
    *shard = NULL;
    *lo = o->shard_lo;
    if (b < 0 || b >= HFT_OPTIM_STATE_BUFFERS)
        return hft_error(HFT_EINVAL, "optimizer state buffer %d of %d", b, HFT_OPTIM_STATE_BUFFERS);
    if (!o->buf_numel[b]) return HFT_OK;
    HFT_TRY(ensure_state(o));
    *shard = o->bufs[b];
    return HFT_OK;
}

hft_status hft_optimizer_state_part(hft_optimizer *o, const hft_optim_state_info *info, hft_tensor **part,
                                    int64_t *from) {
    hft_tensor *buf;
    int64_t lo, numel = 1;
    *part = NULL;
    *from = 0;
    for (int d = 0; d < info->ndim; d++) numel *= info->shape[d];
    HFT_TRY(hft_optimizer_state_buffer(o, info->buffer, &buf, &lo));
    if (!buf) return hft_error(HFT_ESTATE, "optimizer state '%s': no buffer", info->name);
    int64_t hi = lo + hft_tensor_numel(buf);
    int64_t start = info->offset > lo ? info->offset : lo,
            end = info->offset + numel < hi ? info->offset + numel : hi;
    if (end <= start) return HFT_OK; /* another rank's */
    int64_t n = end - start;
    *from = start - info->offset;
    *part = hft_tensor_alias(buf, start - lo, 1, &n);
    return *part ? HFT_OK : hft_error_status();
}
