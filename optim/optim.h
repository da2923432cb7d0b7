/* optim: optimizers, parameter groups, gradient clipping and learning-rate schedules, with the names and
 * the exact behaviour of torch.optim and transformers' get_scheduler. Works on a parameter set
 * (autograd/): trainable parameters and their flat gradient buffer; frozen parameters are skipped and hold
 * no state. Knows nothing of models. */
#ifndef HFT_OPTIM_H
#define HFT_OPTIM_H

#include "autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- optimizers */

typedef enum hft_optim_kind {
    HFT_OPTIM_SGD,       /* torch.optim.SGD */
    HFT_OPTIM_ADAM,      /* torch.optim.Adam (L2 weight decay added to the gradient) */
    HFT_OPTIM_ADAMW,     /* torch.optim.AdamW (decoupled weight decay) */
    HFT_OPTIM_ADAFACTOR, /* transformers.optimization.Adafactor */
    HFT_OPTIM_LION,      /* Lion (Chen et al. 2023), as lion-pytorch implements it */
} hft_optim_kind;

/* Hyper-parameters; hft_optim_defaults gives torch's (and HF TrainingArguments') defaults. */
typedef struct hft_optim_config {
    hft_optim_kind kind;
    double lr;                  /* 5e-5 (TrainingArguments' default) */
    double weight_decay;        /* 0 */
    double beta1, beta2;        /* 0.9, 0.999 (Lion: 0.9, 0.99) */
    double eps;                 /* 1e-8 */
    bool amsgrad;               /* Adam, AdamW */
    double momentum, dampening; /* SGD: 0, 0 */
    bool nesterov;              /* SGD */
    /* Adafactor (transformers' defaults): eps (1e-30, 1e-3), clip_threshold 1, decay_rate -0.8, beta1 unset
     * (has_beta1 false), scale_parameter, relative_step, warmup_init */
    double adafactor_eps1, adafactor_eps2, clip_threshold, decay_rate;
    bool has_beta1, scale_parameter, relative_step, warmup_init;
} hft_optim_config;

hft_optim_config hft_optim_defaults(hft_optim_kind kind);
/* HF TrainingArguments' `optim` names: adamw_torch, adamw_torch_fused, adamw (alias), adam, sgd, adafactor,
 * lion (and lion_32bit). An unknown name is an error listing the known ones. */
hft_status hft_optim_kind_from_name(const char *name, hft_optim_kind *kind);
const char *hft_optim_kind_name(hft_optim_kind kind);
/* Checks ranges: lr >= 0 and finite, betas in [0, 1), eps > 0, weight decay >= 0, ...; the message names
 * the hyper-parameter, its value and the allowed range. */
hft_status hft_optim_config_check(const hft_optim_config *cfg);

/* A parameter group: its own lr and weight decay over the named parameters. */
typedef struct hft_param_group {
    double lr, weight_decay;
    int n_params;
    const char *const *params; /* parameter names in the set */
} hft_param_group;

typedef struct hft_optimizer hft_optimizer;

/* n_groups 0: the HF Trainer's grouping — weight decay for every trainable parameter except those tagged
 * HFT_PARAM_NO_DECAY (biases and normalisation weights), which get 0 — both at cfg->lr. Otherwise every
 * trainable parameter must be in exactly one group. Frozen parameters are skipped. */
/* The state is allocated on the device of the trainable parameters (their flat gradient) and every step
 * runs there with that device's kernels; make the optimizer after moving the model (it keeps the
 * parameters' data pointers). */
hft_status hft_optimizer_new(hft_paramset *ps, const hft_optim_config *cfg, int n_groups,
                             const hft_param_group *groups, hft_optimizer **out);
void hft_optimizer_free(hft_optimizer *opt);

/* One update of every trainable parameter from its gradient (materialised if backward never wrote it),
 * with each group's lr multiplied by `lr_multiplier` (the schedule's value for this step). Bumps each
 * updated parameter's version. */
hft_status hft_optimizer_step(hft_optimizer *opt, double lr_multiplier);
int64_t hft_optimizer_steps(const hft_optimizer *opt);
/* The lr each group used in the last step (group 0 for logging, as the HF Trainer logs). */
double hft_optimizer_group_lr(const hft_optimizer *opt, int group);
int hft_optimizer_group_count(const hft_optimizer *opt);

/* State for checkpoints, by parameter name, so a sharded optimizer can reshard it: tensor i is named
 * "<state>/<parameter name>" (e.g. "exp_avg/model.layers.0.mlp.up_proj.weight"); reading them, and writing
 * them back with the step count, restores the optimizer exactly (bit-identical next steps). The tensors
 * are on the parameters' device: read and write them with hft_tensor_to / hft_tensor_copy. */
int hft_optimizer_state_count(const hft_optimizer *opt);
hft_status hft_optimizer_state(hft_optimizer *opt, int i, const char **name, hft_tensor **tensor);
void hft_optimizer_set_steps(hft_optimizer *opt, int64_t steps);

/* ZeRO-1: the optimizer keeps state for, and updates, only the range [lo, lo + count) of the flat layout
 * of the trainable parameters (hft_paramset_values / _grads): this rank's shard; the other ranks update
 * the rest and the parameters are all-gathered after the step (distributed/). Call before the first step.
 * Adafactor cannot be sharded (HFT_EUNSUPPORTED). A sharded optimizer's state has no whole tensors: for
 * checkpoints, hft_optimizer_state_info gives where each named tensor lies in the flat layout and
 * hft_optimizer_state_buffer the shard of each flat state buffer, so that the trainer gathers the shards
 * and writes the same named tensors an unsharded run writes (and reads them back at any world size). */
hft_status hft_optimizer_shard(hft_optimizer *opt, int64_t lo, int64_t count);
#define HFT_OPTIM_STATE_BUFFERS 3
typedef struct hft_optim_state_info {
    const char *name; /* "exp_avg/<parameter name>" */
    int buffer;       /* which flat state buffer, [0, HFT_OPTIM_STATE_BUFFERS) */
    int64_t offset;   /* where the tensor starts in that buffer's flat layout */
    int ndim;
    const int64_t *shape;
} hft_optim_state_info;
hft_status hft_optimizer_state_info(const hft_optimizer *opt, int i, hft_optim_state_info *info);
/* Flat state buffer b: the tensor of the shard's elements (NULL when the optimizer does not use b), the
 * shard's first flat index in *lo (0 unsharded, where the tensor is the whole buffer). */
hft_status hft_optimizer_state_buffer(hft_optimizer *opt, int b, hft_tensor **shard, int64_t *lo);
/* The part of the named state *info describes that this optimizer holds (all of it unsharded): a 1-D view
 * of its elements in *part (NULL when it holds none; free it), starting *from elements into the tensor. */
hft_status hft_optimizer_state_part(hft_optimizer *opt, const hft_optim_state_info *info, hft_tensor **part,
                                    int64_t *from);

/* ---------------------------------------------------------------- gradient clipping */

/* torch.nn.utils.clip_grad_norm_ over every trainable gradient: the global L2 norm (summed in a fixed
 * order), and when it exceeds max_norm the gradients scaled by max_norm / (norm + 1e-6). Returns the norm
 * before clipping in *norm. A non-finite norm leaves the gradients untouched and returns HFT_ENUMERIC,
 * for the caller to decide (skip the step or stop). max_norm <= 0 only measures. */
hft_status hft_clip_grad_norm(hft_paramset *ps, double max_norm, double *norm);
/* Its two halves over the flat gradient range [lo, lo + count), for a sharded (ZeRO-1) run, whose ranks
 * each hold the reduced gradients of their own range: the sum of squares (f64, a fixed order) that the
 * ranks add up, and the scaling by torch's factor for the global norm (HFT_ENUMERIC, gradients untouched,
 * when it is not finite). */
hft_status hft_grad_sumsq(hft_paramset *ps, int64_t lo, int64_t count, double *sumsq);
hft_status hft_clip_grad_scale(hft_paramset *ps, int64_t lo, int64_t count, double max_norm, double norm);

/* ---------------------------------------------------------------- loss scaling (fp16) */

/* torch.amp.GradScaler's settings and defaults: 65536, ×2 after 2000 clean steps, ×0.5 on inf/NaN. */
typedef struct hft_loss_scaler_config {
    double init_scale, growth_factor, backoff_factor;
    int64_t growth_interval;
} hft_loss_scaler_config;

/* The scaler's state, all of it (checkpoints store scale and growth_tracker, as GradScaler's state_dict). */
typedef struct hft_loss_scaler {
    hft_loss_scaler_config config;
    float scale;            /* an f32, as torch keeps it */
    int64_t growth_tracker; /* clean steps in a row since the last change */
    int64_t skipped;        /* steps skipped in this process (not saved) */
} hft_loss_scaler;

hft_loss_scaler_config hft_loss_scaler_defaults(void);
hft_status hft_loss_scaler_init(hft_loss_scaler *s, const hft_loss_scaler_config *cfg);
/* Multiplies every trainable gradient by 1/scale (materialising unwritten ones) and returns whether any
 * was inf or NaN: then the step must be skipped (the gradients are garbage) and hft_loss_scaler_update
 * told so. */
bool hft_loss_scaler_unscale(hft_loss_scaler *s, hft_paramset *ps);
/* The same over the flat gradient range [lo, lo + count) only: a sharded (ZeRO-1) rank's own, whose
 * finding the ranks then combine. */
bool hft_loss_scaler_unscale_range(hft_loss_scaler *s, hft_paramset *ps, int64_t lo, int64_t count);
/* After each optimizer step, taken or skipped: backs off on found_inf, grows after growth_interval clean
 * steps (torch's _amp_update_scale_). */
void hft_loss_scaler_update(hft_loss_scaler *s, bool found_inf);

/* ---------------------------------------------------------------- learning-rate schedules */

typedef enum hft_schedule_kind {
    HFT_SCHEDULE_LINEAR,
    HFT_SCHEDULE_COSINE,
    HFT_SCHEDULE_COSINE_WITH_RESTARTS,
    HFT_SCHEDULE_POLYNOMIAL,
    HFT_SCHEDULE_CONSTANT,
    HFT_SCHEDULE_CONSTANT_WITH_WARMUP,
    HFT_SCHEDULE_INVERSE_SQRT,
    HFT_SCHEDULE_REDUCE_ON_PLATEAU,
    HFT_SCHEDULE_COSINE_WITH_MIN_LR,
    HFT_SCHEDULE_COSINE_WARMUP_WITH_MIN_LR,
    HFT_SCHEDULE_WARMUP_STABLE_DECAY,
} hft_schedule_kind;

/* transformers' lr_scheduler_type with its scheduler_specific_kwargs (lr_scheduler_kwargs). Start from
 * hft_schedule_defaults(kind), which holds transformers' and torch's defaults, and set what the recipe
 * gives: zero is a value here (lr_end 0, patience 0 and threshold 0 are common), not "the default". A
 * zeroed config works for linear, constant, constant_with_warmup and inverse_sqrt; for the others its
 * num_cycles, power or factor of 0 is refused, with a message pointing here. */
typedef struct hft_schedule_config {
    hft_schedule_kind kind;
    int64_t total_steps; /* num_training_steps, >= 0 */
    /* warmup_steps (TrainingArguments' get_warmup_steps): >= 1 is a step count (truncated to an integer),
     * below 1 a ratio of total_steps, ceil(ratio × total_steps); >= 0. constant and
     * reduce_lr_on_plateau ignore it. */
    double warmup;
    double num_cycles;    /* > 0; cosine, cosine_with_min_lr, cosine_warmup_with_min_lr and
                           * warmup_stable_decay (its cosine shapes): 0.5; cosine_with_restarts: 1 */
    double power, lr_end; /* polynomial: 1 (> 0), 1e-7 (lr_end is absolute, below base_lr) */
    /* The optimizer's lr (optimizer.defaults["lr"]): polynomial's lr_end, cosine's min_lr and
     * reduce_lr_on_plateau's min_lr and eps are absolute learning rates, so those need it (> 0). */
    double base_lr;
    int64_t timescale; /* inverse_sqrt: 0 → the warmup steps, or 10000 without warmup */
    /* cosine_with_min_lr, cosine_warmup_with_min_lr: exactly one of min_lr (absolute) and min_lr_rate (of
     * base_lr); NaN is unset (the default, both NaN, is refused as transformers refuses it). */
    double min_lr, min_lr_rate;
    double warmup_lr_rate; /* cosine_warmup_with_min_lr: NaN (unset) → warmup (step + 1) / warmup */
    /* warmup_stable_decay: num_decay_steps is required (>= 0; the default -1 is unset); num_stable_steps
     * below 0 (the default) is total_steps − warmup − num_decay_steps */
    int64_t num_stable_steps, num_decay_steps;
    const char *warmup_type, *decay_type; /* "linear", "cosine", "1-sqrt"; defaults linear, cosine */
    double min_lr_ratio;                  /* 0 */
    /* reduce_lr_on_plateau (torch's defaults: mode min, factor 0.1 (in (0, 1)), patience 10, threshold
     * 1e-4 rel, cooldown 0, min_lr 0 (absolute), eps 1e-8 (absolute)) */
    bool mode_max;
    double factor, threshold, plateau_min_lr, plateau_eps;
    int64_t patience, cooldown;
    bool threshold_abs;
} hft_schedule_config;

hft_schedule_config hft_schedule_defaults(hft_schedule_kind kind);
/* lr_scheduler_type names: linear, cosine, cosine_with_restarts, polynomial, constant, constant_with_warmup,
 * inverse_sqrt, reduce_lr_on_plateau, cosine_with_min_lr, cosine_warmup_with_min_lr, warmup_stable_decay.
 * An unknown name is an error listing the known ones (HFT_EINVAL); transformers' "greedy" (GreedyLR) is
 * HFT_EUNSUPPORTED. */
hft_status hft_schedule_kind_from_name(const char *name, hft_schedule_kind *kind);
const char *hft_schedule_kind_name(hft_schedule_kind kind);

typedef struct hft_schedule hft_schedule;
/* Checks the config as transformers and torch check it, and refuses what they would fail on later (a
 * division by zero at some step); the message names the schedule, the parameter, its value and what is
 * allowed. Warmup longer than total_steps is accepted, as transformers accepts it. */
hft_status hft_schedule_new(const hft_schedule_config *cfg, hft_schedule **out);
void hft_schedule_free(hft_schedule *s);
/* The warmup in steps after resolving a ratio (0 for constant and reduce_lr_on_plateau). */
int64_t hft_schedule_warmup_steps(const hft_schedule *s);
/* The multiplier of the base lr at optimizer step `step` (0-based: the lr the step uses, as the HF
 * Trainer logs it, read before the scheduler advances), computed in f64. */
double hft_schedule_multiplier(const hft_schedule *s, int64_t step);
/* reduce_lr_on_plateau: feeds an evaluation metric (torch's ReduceLROnPlateau.step(metric); NaN is never
 * an improvement); other kinds ignore it. The multiplier then holds until the next metric. */
void hft_schedule_observe(hft_schedule *s, double metric);

/* The state a checkpoint keeps (plateau: its multiplier, best metric and counters; the lambda schedules are
 * pure functions of the step and report multiplier 1, the rest 0, and ignore a set). */
typedef struct hft_schedule_state {
    double multiplier, best;
    int64_t num_bad_epochs, cooldown_counter, last_epoch;
} hft_schedule_state;
void hft_schedule_get_state(const hft_schedule *s, hft_schedule_state *state);
void hft_schedule_set_state(hft_schedule *s, const hft_schedule_state *state);

#ifdef __cplusplus
}
#endif
#endif
