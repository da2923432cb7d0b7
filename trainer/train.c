/* The training loop. One optimizer step reads top to bottom: take the micro-batches of an accumulation
 * window, count the loss terms of the whole window (the divisor, known before the first backward, so
 * that accumulation N × b equals batch N·b), then for each micro-batch forward, backward and release its
 * arena; clip, step the optimizer at the schedule's lr, log, evaluate, save. */
#include "trainer/trainer.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "data/data.h"
#include "distributed/dist.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "trainer/checkpoint.h"
#include "trainer/fsutil.h"
#include "trainer/logbook.h"
#include "trainer/sample.h"
#include "trainer/train_state.h"

static volatile sig_atomic_t stop_signal;
static void on_stop_signal(int sig) {
    stop_signal = sig;
}

typedef struct trainer {
    const hft_recipe *r;
    hft_device device; /* where the model, its gradients, the optimizer state and the activations live */
    char device_desc[300];
    hft_model *model;
    hft_tokenizer *tok;
    char *tokenizer_dir; /* for copying tokenizer files into checkpoints; NULL for built-in tokenizers */
    hft_dataset *train, *eval;
    hft_data_task task;
    hft_sampler *sampler;
    hft_optimizer *opt;
    hft_schedule *sched;
    hft_ctx *ctx;
    logbook log;
    int64_t batch_size, accum, batches_per_epoch, steps_per_epoch, total_steps;
    int64_t logging_every, eval_every, save_every, warmup;
    int64_t global_step, tokens_seen, micro_in_epoch;
    hft_cursor cursor;
    uint64_t seed, data_seed;
    int64_t *indices; /* accum × batch_size */
    int64_t *counts;  /* examples per micro-batch of the window */
    /* logging between log lines */
    double loss_since_log, train_loss_total, last_grad_norm;
    int64_t steps_since_log;
    double started, window_started, tokens_at_log;
    /* best model */
    char metric[64];
    bool greater_is_better;
    int64_t evals_without_improvement;
    bool early_stop;
    hft_collate_options collate;
    char base_digest[33]; /* training an adapter: the frozen base's digest, checked on resume; else "" */
    /* data parallel: every rank runs this loop on its slice of each global batch; only rank 0 writes */
    hft_dist *dist;
    int rank, world;
    bool main; /* rank 0: logs, metrics, checkpoints, exports */
    hft_comm *comm;
    hft_grad_sync *sync;
    bool zero;                /* ZeRO-1: zero_stage 1 under mpirun */
    hft_tensor *micro_losses; /* on a device: the window's micro-batch losses, read once a step */
    int64_t *positions; /* per micro-batch of the window: the global sample index of this rank's slice */
    struct block_arg *blocks; /* gradient checkpointing: each block's arguments, alive until backward */
    /* mixed precision: autocast's dtype (HFT_F32: off); fp16's loss scaler and the steps it skipped */
    hft_dtype autocast;
    hft_loss_scaler scaler;
    int64_t skipped_steps;
} trainer;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---------------------------------------------------------------- set-up */

/* The lora section: the base's digest (taken before anything trains), then the adapter on it. */
static hft_status attach_lora(trainer *t) {
    const hft_recipe *r = t->r;
    hft_model_weights_digest(t->model, t->base_digest);
    char source[600];
    if (r->lora_line > 0)
        snprintf(source, sizeof source, "%s:%d: lora", r->path ? r->path : "recipe", r->lora_line);
    else
        snprintf(source, sizeof source, "command line: lora");
    HFT_TRY(hft_lora_attach(t->model, r->lora_json, source, (uint64_t)r->seed));
    hft_paramset *ps = hft_model_params(t->model);
    int64_t total = 0;
    for (int i = 0; i < hft_paramset_count(ps); i++)
        total += hft_tensor_numel(hft_paramset_get(ps, i)->value);
    size_t frozen_bytes = 0, low_bytes = 0;
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        const hft_param *p = hft_paramset_get(ps, i);
        if (!(p->tags & HFT_PARAM_FROZEN)) continue;
        frozen_bytes += hft_tensor_nbytes(p->value);
        if (p->value->dtype != HFT_F32) low_bytes += hft_tensor_nbytes(p->value);
    }
    printf(
        "LoRA: %d modules adapted; %lld of %lld parameters train (%.3f%%), the base is frozen (%.1f MiB%s)\n",
        hft_lora_module_count(t->model), (long long)hft_paramset_trainable_numel(ps), (long long)total,
        100.0 * (double)hft_paramset_trainable_numel(ps) / (double)(total ? total : 1),
        (double)frozen_bytes / 1048576.0, low_bytes ? ", its matrices in low precision" : "");
    return HFT_OK;
}

/* A checkpoint's trained weights: the adapter's tensors, or the whole model's. */
static hft_status load_trained_weights(trainer *t, const char *dir) {
    return hft_model_has_adapter(t->model) ? hft_lora_load_weights(t->model, dir)
                                           : hft_model_load_weights(t->model, dir);
}

static hft_status load_base_model(trainer *t) {
    const hft_recipe *r = t->r;
    hft_load_options o = {.architecture = *r->model_architecture ? r->model_architecture : NULL,
                          .num_labels = r->num_labels,
                          .seed = (uint64_t)r->seed};
    if (r->lora_json) { /* model.dtype: how the frozen base is held */
        o.hold_dtype = strcmp(r->model_dtype, "bfloat16") == 0  ? HFT_BF16
                       : strcmp(r->model_dtype, "float16") == 0 ? HFT_F16
                                                                : HFT_F32;
        o.hold_as_stored = strcmp(r->model_dtype, "auto") == 0;
    }
    if (*r->model_path) {
        HFT_TRY(hft_model_load(r->model_path, &o, &t->model));
        for (int i = 0; i < hft_model_unused_count(t->model); i++)
            printf("note: %s: weight %s is not used by %s\n", r->model_path, hft_model_unused(t->model, i),
                   hft_model_architecture(t->model));
        for (int i = 0; i < hft_model_initialized_count(t->model); i++)
            printf("note: %s: %s is newly initialised (not in the checkpoint)\n", r->model_path,
                   hft_model_initialized(t->model, i));
        return HFT_OK;
    }
    char *text = hft_read_text(r->model_config, NULL);
    if (!text) return hft_error(HFT_EIO, "%s: cannot read", r->model_config);
    hft_status st = hft_model_from_config(text, r->model_config, &o, &t->model);
    free(text);
    return st;
}

static hft_status load_model(trainer *t) {
    HFT_TRY(load_base_model(t));
    return t->r->lora_json ? attach_lora(t) : HFT_OK;
}

static hft_status load_tokenizer(trainer *t) {
    const hft_recipe *r = t->r;
    const char *path = *r->tokenizer_path ? r->tokenizer_path : r->model_path;
    if (!*path)
        return hft_error(
            HFT_EINVAL,
            "%s: tokenizer: no path, and no model folder to find one in (model.config was given); "
            "set tokenizer.path (\"bytes\" for a byte-level tokenizer)",
            r->path ? r->path : "recipe");
    if (strcmp(path, "bytes") == 0) return hft_tokenizer_bytes(&t->tok);
    HFT_TRY(hft_tokenizer_load(path, &t->tok));
    t->tokenizer_dir = strdup(fs_is_dir(path) ? path : ".");
    if (!fs_is_dir(path)) { /* a tokenizer.json given by itself: its folder */
        free(t->tokenizer_dir);
        char *copy = strdup(path), *slash = strrchr(copy, '/');
        if (slash) *slash = '\0';
        t->tokenizer_dir = slash ? copy : (free(copy), strdup("."));
    }
    return HFT_OK;
}

static hft_data_format format_of(const char *name, const char *path) {
    if (strcmp(name, "text") == 0) return HFT_DATA_TEXT;
    if (strcmp(name, "jsonl") == 0) return HFT_DATA_JSONL;
    if (strcmp(name, "csv") == 0) return HFT_DATA_CSV;
    if (strcmp(name, "tsv") == 0) return HFT_DATA_TSV;
    if (strcmp(name, "tokens") == 0) return HFT_DATA_TOKENS;
    if (strcmp(name, "hdf5") == 0) return HFT_DATA_HDF5;
    const char *dot = strrchr(path, '.');
    const char *ext = dot ? dot + 1 : "";
    if (strcmp(ext, "jsonl") == 0 || strcmp(ext, "json") == 0) return HFT_DATA_JSONL;
    if (strcmp(ext, "csv") == 0) return HFT_DATA_CSV;
    if (strcmp(ext, "tsv") == 0) return HFT_DATA_TSV;
    if (strcmp(ext, "bin") == 0 || strcmp(ext, "tok") == 0) return HFT_DATA_TOKENS;
    if (strcmp(ext, "h5") == 0 || strcmp(ext, "hdf5") == 0) return HFT_DATA_HDF5;
    return HFT_DATA_TEXT;
}

static hft_status data_task_of(trainer *t, hft_data_task *task) {
    const hft_recipe *r = t->r;
    hft_task mt = hft_model_task(t->model);
    char w[600];
    const char *name = r->data_task;
    if (strcmp(name, "auto") == 0) {
        if (mt == HFT_TASK_SEQ_CLS) return *task = HFT_DATA_CLASSIFICATION, HFT_OK;
        if (mt == HFT_TASK_CAUSAL_LM) return *task = HFT_DATA_CAUSAL_LM, HFT_OK;
        return hft_error(
            HFT_EUNSUPPORTED, "%s: training %s (%s) needs a task head this version does not train%s",
            hft_recipe_where(r, "path", w, sizeof w), hft_model_architecture(t->model),
            mt == HFT_TASK_MASKED_LM ? "masked-LM masking is not implemented yet" : "a base model",
            mt == HFT_TASK_BASE ? "; load it as BertForSequenceClassification (model.architecture)" : "");
    }
    if (strcmp(name, "classification") == 0)
        *task = HFT_DATA_CLASSIFICATION;
    else if (strcmp(name, "prompt_completion") == 0)
        *task = HFT_DATA_PROMPT_COMPLETION;
    else if (strcmp(name, "chat") == 0)
        *task = HFT_DATA_CHAT;
    else
        *task = HFT_DATA_CAUSAL_LM;
    bool cls = *task == HFT_DATA_CLASSIFICATION;
    if (cls != (mt == HFT_TASK_SEQ_CLS) || mt == HFT_TASK_MASKED_LM || mt == HFT_TASK_BASE)
        return hft_error(HFT_EINVAL, "%s: data task %s does not fit %s",
                         hft_recipe_where(r, "task", w, sizeof w), name, hft_model_architecture(t->model));
    return HFT_OK;
}

static hft_status load_dataset(trainer *t, const char *path, hft_dataset **out) {
    const hft_recipe *r = t->r;
    hft_data_spec spec = {.path = path,
                          .format = format_of(r->data_format, path),
                          .task = t->task,
                          .max_length = r->max_length,
                          .packing = r->packing && t->task == HFT_DATA_CAUSAL_LM,
                          .text_field = r->text_field,
                          .text_pair_field = *r->text_pair_field ? r->text_pair_field : NULL,
                          .prompt_field = r->prompt_field,
                          .completion_field = r->completion_field,
                          .messages_field = r->messages_field,
                          .label_field = r->label_field,
                          .num_labels = hft_model_num_labels(t->model),
                          .skip_bad_rows = r->skip_bad_rows};
    char *cache = NULL;
    if (*r->cache_dir) {
        const char *home = getenv("HOME");
        if (strncmp(r->cache_dir, "~/", 2) == 0 && home)
            cache = hft_path_join(home, r->cache_dir + 2);
        else
            cache = strdup(r->cache_dir);
        if (cache && fs_mkdir_p(cache) == HFT_OK) spec.cache_dir = cache;
    }
    hft_status st = hft_dataset_load(&spec, t->tok, out);
    free(cache);
    if (st == HFT_OK && hft_dataset_skipped(*out))
        printf("note: %s: skipped %lld malformed rows (data.skip_bad_rows)\n", path,
               (long long)hft_dataset_skipped(*out));
    if (st == HFT_OK && hft_dataset_size(*out) == 0) st = hft_error(HFT_EINVAL, "%s: no examples", path);
    return st;
}

/* *_steps values below 1 are shares of the total, rounded up (HF). */
static int64_t steps_of(double v, int64_t total) {
    if (v <= 0) return 0;
    if (v < 1) return (int64_t)ceil(v * (double)total);
    return (int64_t)v;
}

/* ZeRO-1: this rank's range of the flat parameters is the one the gradient sync will reduce to it
 * (hft_shard_range), set before a resume loads the state. */
static hft_status shard_optimizer(trainer *t) {
    char w[600];
    if (t->r->zero_stage >= 2)
        return hft_error(HFT_EUNSUPPORTED,
                         "%s: zero_stage %lld: not built yet; hft has ZeRO-1 (zero_stage: 1, the optimizer "
                         "state sharded); stages 2 and 3 (gradients, parameters) are not there yet",
                         hft_recipe_where(t->r, "zero_stage", w, sizeof w), (long long)t->r->zero_stage);
    if (!t->zero) return HFT_OK;
    int64_t lo, count;
    hft_shard_range(hft_paramset_trainable_numel(hft_model_params(t->model)), t->world, t->rank, &lo, &count);
    hft_status st = hft_optimizer_shard(t->opt, lo, count);
    if (st != HFT_OK)
        return hft_error(st, "%s: zero_stage 1: %s", hft_recipe_where(t->r, "zero_stage", w, sizeof w),
                         hft_error_message());
    return HFT_OK;
}

static hft_status build_optimizer(trainer *t) {
    const hft_recipe *r = t->r;
    hft_optim_kind kind;
    char w[600];
    if (hft_optim_kind_from_name(r->optim, &kind) != HFT_OK)
        return hft_error(HFT_EINVAL, "%s: optim: %s", hft_recipe_where(r, "optim", w, sizeof w),
                         hft_error_message());
    hft_optim_config oc = hft_optim_defaults(kind);
    oc.lr = r->learning_rate;
    oc.weight_decay = r->weight_decay;
    if (kind != HFT_OPTIM_LION) oc.beta1 = r->adam_beta1, oc.beta2 = r->adam_beta2, oc.eps = r->adam_epsilon;
    HFT_TRY(hft_optimizer_new(hft_model_params(t->model), &oc, 0, NULL, &t->opt));
    HFT_TRY(shard_optimizer(t));
    hft_schedule_kind sk;
    if (hft_schedule_kind_from_name(r->lr_scheduler_type, &sk) != HFT_OK)
        return hft_error(HFT_EINVAL, "%s: lr_scheduler_type: %s",
                         hft_recipe_where(r, "lr_scheduler_type", w, sizeof w), hft_error_message());
    hft_schedule_config sc = hft_schedule_defaults(sk);
    sc.total_steps = t->total_steps;
    sc.warmup = (double)t->warmup;
    sc.base_lr = r->learning_rate;
    /* lr_scheduler_kwargs given in the recipe, over transformers' defaults */
#define KW_NUM(field, key)                                                                                   \
    if (!isnan(r->key)) sc.field = r->key
#define KW_INT(field, key)                                                                                   \
    if (r->key != INT64_MIN) sc.field = r->key
    KW_NUM(num_cycles, sk_num_cycles);
    KW_NUM(power, sk_power);
    KW_NUM(lr_end, sk_lr_end);
    KW_INT(timescale, sk_timescale);
    KW_NUM(min_lr_rate, sk_min_lr_rate);
    KW_NUM(warmup_lr_rate, sk_warmup_lr_rate);
    KW_INT(num_stable_steps, sk_num_stable_steps);
    KW_INT(num_decay_steps, sk_num_decay_steps);
    KW_NUM(min_lr_ratio, sk_min_lr_ratio);
    KW_NUM(factor, sk_factor);
    KW_NUM(threshold, sk_threshold);
    KW_NUM(plateau_eps, sk_eps);
    KW_INT(patience, sk_patience);
    KW_INT(cooldown, sk_cooldown);
#undef KW_NUM
#undef KW_INT
    if (!isnan(r->sk_min_lr)) { /* one key, two meanings: as transformers' cosine_with_min_lr and torch's
                                   plateau */
        if (sk == HFT_SCHEDULE_REDUCE_ON_PLATEAU)
            sc.plateau_min_lr = r->sk_min_lr;
        else
            sc.min_lr = r->sk_min_lr;
    }
    if (*r->sk_warmup_type) sc.warmup_type = r->sk_warmup_type;
    if (*r->sk_decay_type) sc.decay_type = r->sk_decay_type;
    if (*r->sk_mode) sc.mode_max = strcmp(r->sk_mode, "max") == 0;
    if (*r->sk_threshold_mode) sc.threshold_abs = strcmp(r->sk_threshold_mode, "abs") == 0;
    if (hft_schedule_new(&sc, &t->sched) != HFT_OK)
        return hft_error(HFT_EINVAL, "%s: lr_scheduler_type %s: %s",
                         hft_recipe_where(r, "lr_scheduler_type", w, sizeof w), r->lr_scheduler_type,
                         hft_error_message());
    return HFT_OK;
}

/* A one-element tensor's value, wherever it lives (a loss on a GPU is read back here). */
static double scalar_of(const hft_tensor *t) {
    double v = NAN;
    if (hft_tensor_to_f64(t, &v) != HFT_OK) return NAN;
    return v;
}

/* The recipe's device: cpu, cuda (under mpirun the local rank's GPU) or cuda:N. auto is the CPU for now: the
 * GPU path is checked op by op and end to end on the CUDA emulator but has not yet run on a GPU, so it is
 * asked for by name until it has. What does not run on a GPU yet is refused by name. */
static hft_status resolve_device(trainer *t) {
    const hft_recipe *r = t->r;
    const char *dev = r->device;
    char w[600], why[600], desc[256] = "";
    t->device = (hft_device){HFT_CPU, 0};
    if (strcmp(dev, "cpu") == 0 || strcmp(dev, "auto") == 0) return HFT_OK;
    hft_recipe_where(r, "device", w, sizeof w);
    int index = dev[4] == ':' ? atoi(dev + 5) : t->dist ? hft_dist_local_rank(t->dist) : 0;
    const hft_kernels *k = hft_cuda_load();
    if (!k) {
        snprintf(why, sizeof why, "%s", hft_error_message());
        return hft_error(hft_error_status(), "%s: device %s: %s", w, dev, why);
    }
    int n = k->dev->device_count();
    if (index >= n) {
        return hft_error(HFT_EDEVICE, "%s: device %s: this machine has %d GPU%s (cuda:0 .. cuda:%d)", w, dev,
                         n, n == 1 ? "" : "s", n - 1);
    }
    HFT_TRY(k->dev->set_device(index));
    k->dev->set_deterministic(r->full_determinism);
    (void)k->dev->describe(index, desc, sizeof desc);
    snprintf(t->device_desc, sizeof t->device_desc, "cuda:%d (%s)", index, desc);
    t->device = (hft_device){HFT_CUDA, index};
    return HFT_OK;
}

static hft_status setup(trainer *t) {
    const hft_recipe *r = t->r;
    char w[600];
    t->zero = r->zero_stage == 1 && t->world > 1;
    HFT_TRY(resolve_device(t));
    if ((strcmp(r->model_dtype, "bfloat16") == 0 || strcmp(r->model_dtype, "float16") == 0) && !r->lora_json)
        return hft_error(
            HFT_EUNSUPPORTED,
            "%s: model.dtype %s holds a frozen base in low precision, for LoRA; a full fine-tune "
            "trains float32 master weights (with bf16: true for bf16 compute): remove model.dtype "
            "or add a lora section",
            hft_recipe_where(r, "dtype", w, sizeof w), r->model_dtype);
    t->autocast = r->bf16 ? HFT_BF16 : r->fp16 ? HFT_F16 : HFT_F32;
    if (r->fp16) {
        hft_loss_scaler_config sc = hft_loss_scaler_defaults();
        HFT_TRY(hft_loss_scaler_init(&t->scaler, &sc));
    }
    if (r->threads > 0) hft_threads_set((int)r->threads);
    HFT_TRY(load_model(t));
    if (t->device.type != HFT_CPU) HFT_TRY(hft_model_to_device(t->model, t->device));
    hft_paramset_set_bucket_bytes(hft_model_params(t->model), (size_t)(r->ddp_bucket_cap_mb * 1024 * 1024));
    HFT_TRY(load_tokenizer(t));
    HFT_TRY(data_task_of(t, &t->task));
    HFT_TRY(load_dataset(t, r->train_file, &t->train));
    if (*r->eval_file) HFT_TRY(load_dataset(t, r->eval_file, &t->eval));
    if (strcmp(r->eval_strategy, "no") != 0 && !t->eval)
        return hft_error(HFT_EINVAL, "%s: eval_strategy %s needs data.eval_file",
                         r->path ? r->path : "recipe", r->eval_strategy);
    t->seed = (uint64_t)r->seed;
    t->data_seed = r->data_seed >= 0 ? (uint64_t)r->data_seed : t->seed;
    t->batch_size = r->per_device_train_batch_size;
    t->accum = r->gradient_accumulation_steps;
    hft_sampler_options so = {.dataset_size = hft_dataset_size(t->train),
                              .batch_size = t->batch_size,
                              .rank = t->rank,
                              .world_size = t->world,
                              .seed = t->data_seed,
                              .shuffle = true,
                              .drop_last = r->dataloader_drop_last};
    if (hft_dataset_size(t->train) < t->world)
        return hft_error(HFT_EINVAL,
                         "%s: %lld examples for %d processes; every process needs at least one example (use "
                         "fewer ranks)",
                         r->train_file, (long long)hft_dataset_size(t->train), t->world);
    HFT_TRY(hft_sampler_new(&so, &t->sampler));
    t->batches_per_epoch = hft_sampler_batches_per_epoch(t->sampler);
    if (t->batches_per_epoch == 0)
        return hft_error(HFT_EINVAL, "%s: %lld examples make no batch of %lld with dataloader_drop_last",
                         r->train_file, (long long)hft_dataset_size(t->train),
                         (long long)(t->batch_size * t->world));
    t->steps_per_epoch = (t->batches_per_epoch + t->accum - 1) / t->accum;
    t->total_steps =
        r->max_steps > 0 ? r->max_steps : (int64_t)ceil(r->num_train_epochs * (double)t->steps_per_epoch);
    if (t->total_steps < 1) t->total_steps = 1;
    t->warmup = r->warmup_steps > 0 ? steps_of(r->warmup_steps, t->total_steps)
                                    : (int64_t)ceil(r->warmup_ratio * (double)t->total_steps);
    t->logging_every = steps_of(r->logging_steps, t->total_steps);
    t->eval_every = r->eval_steps > 0 ? steps_of(r->eval_steps, t->total_steps) : t->logging_every;
    t->save_every = steps_of(r->save_steps, t->total_steps);
    HFT_TRY(build_optimizer(t));
    t->ctx = hft_ctx_new(&(hft_ctx_options){.device = t->device});
    if (!t->ctx) return hft_error_status();
    HFT_TRY(hft_set_autocast(t->ctx, t->autocast));
    t->indices = calloc((size_t)(t->accum * t->batch_size), sizeof *t->indices);
    t->counts = calloc((size_t)t->accum, sizeof *t->counts);
    t->positions = calloc((size_t)t->accum, sizeof *t->positions);
    if (!t->indices || !t->counts || !t->positions) return hft_error(HFT_ENOMEM, "out of memory");
    hft_special_tokens sp = hft_tokenizer_specials(t->tok);
    t->collate = (hft_collate_options){.pad_id = sp.pad >= 0 ? sp.pad : (sp.eos >= 0 ? sp.eos : 0),
                                       .pad_left = hft_tokenizer_pads_left(t->tok),
                                       .max_length = r->max_length};
    const char *m = *r->metric_for_best_model ? r->metric_for_best_model : "loss";
    snprintf(t->metric, sizeof t->metric, "%s%s", strncmp(m, "eval_", 5) == 0 ? "" : "eval_", m);
    size_t ml = strlen(t->metric);
    t->greater_is_better = r->greater_is_better >= 0 ? r->greater_is_better
                                                     : !(ml >= 4 && strcmp(t->metric + ml - 4, "loss") == 0);
    HFT_TRY(logbook_init(&t->log, r->output_dir, t->main));
    logbook *lb = &t->log;
    lb->max_steps = t->total_steps;
    lb->logging_steps = t->logging_every;
    lb->eval_steps = t->eval_every;
    lb->save_steps = t->save_every;
    lb->train_batch_size = t->batch_size;
    lb->num_train_epochs =
        r->max_steps > 0 ? ceil((double)t->total_steps / (double)t->steps_per_epoch) : r->num_train_epochs;
    return HFT_OK;
}

/* ---------------------------------------------------------------- resume */

static void recipe_fingerprint(const trainer *t, char *buf, size_t size) {
    snprintf(buf, size, "batch=%lld accum=%lld max_length=%lld packing=%d task=%d", (long long)t->batch_size,
             (long long)t->accum, (long long)t->r->max_length, (int)t->r->packing, (int)t->task);
}

static hft_status resume(trainer *t) {
    const hft_recipe *r = t->r;
    const char *want = r->resume_from_checkpoint;
    if (!*want) return HFT_OK;
    char *dir = strcmp(want, "true") == 0 || strcmp(want, "True") == 0 || strcmp(want, "yes") == 0
                    ? checkpoint_newest(r->output_dir)
                    : strdup(want);
    if (!dir) {
        printf("note: resume_from_checkpoint: no checkpoint in %s yet; starting from the beginning\n",
               r->output_dir);
        return HFT_OK;
    }
    char *state_path = hft_path_join(dir, "training_state.h5");
    train_state s;
    hft_status st = state_path ? train_state_peek(state_path, &s) : hft_error(HFT_ENOMEM, "out of memory");
    char fp[33], rf[128];
    hft_model_fingerprint(t->model, fp);
    recipe_fingerprint(t, rf, sizeof rf);
    if (st == HFT_OK && strcmp(fp, s.model_fingerprint) != 0)
        st = hft_error(HFT_EINVAL,
                       "%s: the checkpoint is of another model (its parameters' names or shapes differ from "
                       "%s's)",
                       dir, hft_model_architecture(t->model));
    if (st == HFT_OK && strcmp(rf, s.recipe_fingerprint) != 0)
        st = hft_error(HFT_EINVAL,
                       "%s: the checkpoint was trained with %s, the recipe now says %s; a run resumes "
                       "with the batch shape it started with",
                       dir, s.recipe_fingerprint, rf);
    if (st == HFT_OK && strcmp(s.base_digest, t->base_digest) != 0)
        st = hft_error(HFT_EINVAL,
                       *t->base_digest && *s.base_digest
                           ? "%s: the checkpoint's adapter was trained on another base model than %s (its "
                             "weights differ); resume on the base it was trained on"
                       : *t->base_digest
                           ? "%s: the checkpoint is a full fine-tune, the recipe (%s) trains a LoRA adapter"
                           : "%s: the checkpoint holds a LoRA adapter, the recipe (%s) has no lora section",
                       dir, *r->model_path ? r->model_path : r->model_config);
    if (st == HFT_OK) st = load_trained_weights(t, dir);
    if (st == HFT_OK) st = train_state_load(state_path, &s, t->opt);
    if (st == HFT_OK) st = logbook_read_state(&t->log, dir);
    if (st == HFT_OK) {
        hft_schedule_set_state(t->sched, &s.schedule);
        st = hft_sampler_seek(t->sampler, s.cursor);
    }
    if (st == HFT_OK) {
        t->global_step = s.global_step;
        t->cursor = s.cursor;
        t->tokens_seen = s.tokens_seen;
        t->micro_in_epoch = s.cursor.offset / (t->batch_size * t->world);
        t->log.global_step = s.global_step;
        t->log.total_flos = s.total_flos;
        t->skipped_steps = s.skipped_steps;
        if (t->r->fp16 && s.scaler_scale > 0) { /* GradScaler.load_state_dict */
            t->scaler.scale = (float)s.scaler_scale;
            t->scaler.growth_tracker = s.scaler_growth_tracker;
        }
        int64_t positions[4096], next = hft_sampler_next_position(t->sampler);
        if (t->world > 1 && s.world_size == t->world && t->world <= 4096 &&
            train_state_rank_positions(state_path, t->world, positions) && positions[t->rank] != next)
            st = hft_error(HFT_EINVAL, "%s: rank %d was to read sample %lld next, this run would read %lld",
                           dir, t->rank, (long long)positions[t->rank], (long long)next);
    }
    if (st == HFT_OK) {
        printf("resuming from %s at step %lld (epoch %lld, %lld examples into it)\n", dir,
               (long long)s.global_step, (long long)s.cursor.epoch, (long long)s.cursor.offset);
        if (s.world_size != t->world)
            printf(
                "note: the checkpoint was written by %lld process%s, this run has %d: the data goes on from "
                "example %lld of epoch %lld in the same order, each step now takes %lld examples, and the "
                "step count and schedule go on from step %lld\n",
                (long long)s.world_size, s.world_size == 1 ? "" : "es", t->world, (long long)s.cursor.offset,
                (long long)s.cursor.epoch, (long long)(t->batch_size * t->accum * t->world),
                (long long)s.global_step);
    }
    free(state_path);
    free(dir);
    return st;
}

/* ---------------------------------------------------------------- one step */

/* The terms an example adds to the loss's divisor: its predicted tokens, or 1 (classification), or one
 * per regression value. Counted from the data before any forward pass. */
static int64_t loss_terms(const trainer *t, int64_t index) {
    if (t->task == HFT_DATA_CLASSIFICATION) return 1; /* one label, or one regression value */
    hft_example ex = hft_dataset_get(t->train, index);
    int64_t n = ex.n < t->r->max_length ? ex.n : t->r->max_length;
    const int32_t *lab = ex.labels ? ex.labels : ex.ids;
    int64_t c = 0;
    for (int64_t i = 1; i < n; i++) c += lab[i] != -100; /* causal LM: position i-1 predicts token i */
    return c;
}

struct block_arg {
    hft_model *m;
    int layer;
    const hft_batch *b;
};
typedef struct block_arg block_arg;

static hft_tensor *run_block(hft_ctx *ctx, hft_tensor *const *in, void *user) {
    block_arg *a = user;
    return hft_model_block(ctx, a->m, a->layer, in[0], a->b, true);
}

/* The summed loss of one micro-batch, through checkpointed blocks when gradient_checkpointing is on. */
static hft_tensor *micro_loss(trainer *t, const hft_batch *b, int64_t *count) {
    if (!t->r->gradient_checkpointing) return hft_model_loss(t->ctx, t->model, b, true, count);
    /* the recomputation in backward reads these after this function returns: they live in the trainer */
    if (!t->blocks) t->blocks = calloc((size_t)hft_model_layers(t->model), sizeof *t->blocks);
    if (!t->blocks) return NULL;
    hft_tensor *h = hft_model_embed(t->ctx, t->model, b, true);
    for (int l = 0; l < hft_model_layers(t->model) && h; l++) {
        t->blocks[l] = (block_arg){t->model, l, b};
        h = hft_checkpoint(t->ctx, run_block, &t->blocks[l], 1, &h);
    }
    return hft_model_head_loss(t->ctx, t->model, h, b, true, count);
}

static hft_status collate(trainer *t, hft_dataset *ds, const int64_t *idx, int64_t n, hft_batch *b) {
    memset(b, 0, sizeof *b);
    return hft_collate(t->ctx, ds, idx, n, &t->collate, &b->input_ids, &b->attention_mask, &b->token_type_ids,
                       &b->labels);
}

/* Fills the next accumulation window: returns the number of micro-batches (0 when the data is exhausted
 * for this epoch before any was taken, which moves the sampler to the next epoch). */
static int64_t next_window(trainer *t) {
    int64_t m = 0;
    while (m < t->accum) {
        int64_t n = hft_sampler_next(t->sampler, t->indices + m * t->batch_size);
        if (n == 0)
            break; /* the epoch ends: the window is cut short, as the HF Trainer's last step of an epoch */
        t->positions[m] = hft_sampler_last_position(t->sampler);
        t->counts[m++] = n;
    }
    return m;
}

/* The schedule's step: the optimizer steps taken (HF does not step the scheduler on a step the loss
 * scaler skipped). */
static int64_t lr_step(const trainer *t) {
    return t->global_step - t->skipped_steps;
}

/* fp16: the gradients unscaled, and whether any was inf or NaN: on every rank alike under ZeRO-1, where each
 * rank checks its own range. */
static hft_status unscale(trainer *t, int64_t lo, int64_t count, bool *found) {
    *found = hft_loss_scaler_unscale_range(&t->scaler, hft_model_params(t->model), lo, count);
    if (!t->zero) return HFT_OK;
    double any = *found;
    char what[96];
    snprintf(what, sizeof what, "step %lld: inf/NaN gradients", (long long)t->global_step + 1);
    HFT_TRY(hft_dist_allreduce_f64(t->dist, &any, 1, HFT_DIST_MAX, what));
    *found = any != 0;
    return HFT_OK;
}

/* Clipping by the global norm; under ZeRO-1 the ranks add up the squares of their ranges. */
static hft_status clip(trainer *t, int64_t lo, int64_t count, double *norm) {
    hft_paramset *ps = hft_model_params(t->model);
    if (!t->zero) return hft_clip_grad_norm(ps, t->r->max_grad_norm, norm);
    double sumsq = 0;
    char what[96];
    snprintf(what, sizeof what, "step %lld: the gradient norm", (long long)t->global_step + 1);
    HFT_TRY(hft_grad_sumsq(ps, lo, count, &sumsq));
    HFT_TRY(hft_dist_allreduce_f64(t->dist, &sumsq, 1, HFT_DIST_SUM, what));
    *norm = sqrt(sumsq);
    return hft_clip_grad_scale(ps, lo, count, t->r->max_grad_norm, *norm);
}

/* A micro-batch's (scaled) loss: read at once on the CPU; on a device copied into slot i of a device
 * buffer, all read back after the window's last backward (read_losses), so the host never waits for a
 * micro-batch's backward to finish. The sum is the same, in the same order. */
static hft_status keep_loss(trainer *t, const hft_tensor *scaled, int64_t i, double loss_scale, double *sum) {
    if (t->device.type == HFT_CPU) {
        *sum += scalar_of(scaled) / loss_scale;
        return HFT_OK;
    }
    if (!t->micro_losses && !(t->micro_losses = hft_tensor_new_on(t->device, HFT_F32, 1, &t->accum)))
        return hft_error_status();
    hft_tensor *slot = hft_tensor_alias(t->micro_losses, i, scaled->ndim, scaled->shape);
    hft_status st = slot ? hft_tensor_copy(slot, scaled) : hft_error_status();
    hft_tensor_free(slot);
    return st;
}

static hft_status read_losses(trainer *t, int64_t m, double loss_scale, double *sum) {
    if (t->device.type == HFT_CPU) return HFT_OK;
    hft_tensor *host = hft_tensor_to(t->micro_losses, (hft_device){HFT_CPU, 0});
    if (!host)
        return hft_error(HFT_EDEVICE, "reading the step's losses from the device: %s", hft_error_message());
    const float *v = hft_tensor_data(host);
    for (int64_t i = 0; i < m; i++) *sum += (double)v[i] / loss_scale;
    hft_tensor_free(host);
    return HFT_OK;
}

static hft_status train_step(trainer *t, double *step_loss) {
    int64_t m = next_window(t);
    if (m == 0) {
        t->micro_in_epoch = 0;
        m = next_window(t);
        if (m == 0) return hft_error(HFT_ESTATE, "the sampler gave no batch");
    }
    int64_t terms = 0;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < t->counts[i]; j++) terms += loss_terms(t, t->indices[i * t->batch_size + j]);
    char what[128];
    snprintf(what, sizeof what, "step %lld: counting the loss terms", (long long)t->global_step + 1);
    double global_terms = (double)terms; /* under mpirun: every rank's, so the sum over ranks is the mean */
    if (t->sync) HFT_TRY(hft_dist_allreduce_f64(t->dist, &global_terms, 1, HFT_DIST_SUM, what));
    double loss_scale = t->r->fp16 ? (double)t->scaler.scale : 1.0; /* fp16: GradScaler's scale */
    double scale = loss_scale / (global_terms > 0 ? global_terms : 1.0);
    double totals[2] = {0, 0}; /* this rank's share of the loss, its tokens */
    for (int64_t i = 0; i < m; i++) {
        const int64_t *idx = t->indices + i * t->batch_size;
        hft_batch b;
        HFT_TRY(collate(t, t->train, idx, t->counts[i], &b));
        hft_ctx_set_rng(t->ctx, t->seed, (uint32_t)t->global_step, (uint16_t)i, t->positions[i]);
        int64_t count = 0;
        hft_tensor *sum = micro_loss(t, &b, &count);
        hft_tensor *scaled = hft_scale(t->ctx, sum, scale);
        bool sync = t->sync && i == m - 1; /* the window's last backward all-reduces as it goes */
        if (sync && scaled) hft_grad_sync_begin(t->sync, t->ctx);
        if (!scaled || hft_backward(t->ctx, scaled, NULL) != HFT_OK) {
            hft_ctx_on_param_ready(t->ctx, NULL, NULL);
            hft_status st = hft_error(hft_ctx_status(t->ctx), "step %lld: %s", (long long)t->global_step + 1,
                                      hft_ctx_error(t->ctx));
            hft_ctx_reset(t->ctx);
            return st;
        }
        if (sync) {
            snprintf(what, sizeof what, "step %lld: the gradient all-reduce", (long long)t->global_step + 1);
            hft_status st = hft_grad_sync_end(t->sync, t->ctx, what);
            if (st != HFT_OK) {
                hft_ctx_reset(t->ctx);
                return st;
            }
        }
        HFT_TRY(keep_loss(t, scaled, i, loss_scale, &totals[0]));
        totals[1] += (double)hft_tensor_numel(b.input_ids);
        hft_ctx_reset(t->ctx);
        t->micro_in_epoch++;
    }
    HFT_TRY(read_losses(t, m, loss_scale, &totals[0]));
    if (t->sync) {
        snprintf(what, sizeof what, "step %lld: the loss", (long long)t->global_step + 1);
        HFT_TRY(hft_dist_allreduce_f64(t->dist, totals, 2, HFT_DIST_SUM, what));
    }
    double loss = totals[0];
    t->tokens_seen += (int64_t)totals[1];
    t->cursor = hft_sampler_cursor(t->sampler);
    if (!isfinite(loss) && !t->r->fp16) /* fp16: an overflow is the loss scaler's to handle */
        return hft_error(HFT_ENUMERIC, "step %lld: the loss is %g; stopping (the last checkpoint is intact)",
                         (long long)t->global_step + 1, loss);
    hft_paramset *ps = hft_model_params(t->model);
    *step_loss = loss;
    int64_t lo = 0, count = hft_paramset_trainable_numel(ps); /* ZeRO-1: this rank's range */
    if (t->zero) hft_grad_sync_range(t->sync, &lo, &count);
    bool found_inf = false;
    if (t->r->fp16) HFT_TRY(unscale(t, lo, count, &found_inf));
    if (found_inf) { /* inf/NaN gradients: skip, back off */
        float was = t->scaler.scale;
        hft_loss_scaler_update(&t->scaler, true);
        hft_paramset_zero_grad(ps);
        t->global_step++;
        t->skipped_steps++;
        t->last_grad_norm = NAN;
        logbook_progress_clear(&t->log);
        printf("step %lld: inf/NaN gradients at loss scale %g; the step is skipped, the scale now %g\n",
               (long long)t->global_step, was, t->scaler.scale);
        return HFT_OK;
    }
    double norm = 0;
    hft_status st = clip(t, lo, count, &norm);
    if (st == HFT_ENUMERIC)
        return hft_error(HFT_ENUMERIC,
                         "step %lld: the gradient norm is %g; stopping (the last checkpoint is intact)",
                         (long long)t->global_step + 1, norm);
    HFT_TRY(st);
    HFT_TRY(hft_optimizer_step(t->opt, hft_schedule_multiplier(t->sched, lr_step(t))));
    if (t->zero) {
        snprintf(what, sizeof what, "step %lld: gathering the updated parameters (ZeRO-1)",
                 (long long)t->global_step + 1);
        HFT_TRY(hft_grad_sync_gather_values(t->sync, what));
    }
    if (t->r->fp16) hft_loss_scaler_update(&t->scaler, false);
    hft_paramset_zero_grad(ps);
    t->global_step++;
    t->last_grad_norm = norm;
    return HFT_OK;
}

/* ---------------------------------------------------------------- evaluation */

/* The ranks' evaluation sums, added up (every rank then takes the same early-stopping decision). */
static hft_status gather_eval(trainer *t, double *sum_means, int64_t *batches, int64_t *correct,
                              int64_t *seen, int64_t *tp, int64_t *fp, int64_t *fn, int64_t nl) {
    int64_t k = nl > 0 ? nl : 1, n = 4 + 3 * k;
    double *v = malloc(sizeof *v * (size_t)n);
    if (!v) return hft_error(HFT_ENOMEM, "out of memory");
    v[0] = *sum_means, v[1] = (double)*batches, v[2] = (double)*correct, v[3] = (double)*seen;
    for (int64_t c = 0; c < k; c++)
        v[4 + c] = (double)tp[c], v[4 + k + c] = (double)fp[c], v[4 + 2 * k + c] = (double)fn[c];
    hft_status st = hft_dist_allreduce_f64(t->dist, v, (int)n, HFT_DIST_SUM, "summing the evaluation");
    *sum_means = v[0], *batches = (int64_t)v[1], *correct = (int64_t)v[2], *seen = (int64_t)v[3];
    for (int64_t c = 0; c < k; c++)
        tp[c] = (int64_t)v[4 + c], fp[c] = (int64_t)v[4 + k + c], fn[c] = (int64_t)v[4 + 2 * k + c];
    free(v);
    return st;
}

static hft_status evaluate(trainer *t, log_entry *e) {
    double t0 = now(), sum_means = 0;
    int64_t batches = 0, n = hft_dataset_size(t->eval), bs = t->r->per_device_eval_batch_size;
    int64_t nl = hft_model_num_labels(t->model), correct = 0, seen = 0;
    int64_t *tp = calloc((size_t)(nl > 0 ? nl : 1), sizeof *tp),
            *fp = calloc((size_t)(nl > 0 ? nl : 1), sizeof *fp),
            *fn = calloc((size_t)(nl > 0 ? nl : 1), sizeof *fn);
    int64_t *idx = malloc(sizeof *idx * (size_t)bs);
    if (!tp || !fp || !fn || !idx) return hft_error(HFT_ENOMEM, "out of memory");
    bool prev = hft_set_grad_enabled(t->ctx, false);
    hft_status st = HFT_OK;
    bool classify = t->task == HFT_DATA_CLASSIFICATION && nl > 1;
    /* under mpirun each rank takes every world-th batch of the same batches one process would make */
    for (int64_t i = 0, batch = 0; i < n && st == HFT_OK; i += bs, batch++) {
        if (batch % t->world != t->rank) continue;
        int64_t k = n - i < bs ? n - i : bs;
        for (int64_t j = 0; j < k; j++) idx[j] = i + j;
        hft_batch b;
        st = collate(t, t->eval, idx, k, &b);
        if (st != HFT_OK) break;
        int64_t count = 0;
        hft_tensor *h = hft_model_hidden(t->ctx, t->model, &b, false);
        hft_tensor *sum = hft_model_head_loss(t->ctx, t->model, h, &b, false, &count);
        hft_tensor *logits = classify ? hft_model_head_logits(t->ctx, t->model, h, &b) : NULL;
        if (!sum || (classify && !logits)) {
            st = hft_error(hft_ctx_status(t->ctx), "evaluation: %s", hft_ctx_error(t->ctx));
        } else {
            if (count > 0) sum_means += scalar_of(sum) / (double)count, batches++;
            hft_tensor *lg_host = NULL, *lab_host = NULL; /* on a GPU: the few logits and labels, read back */
            if (classify && t->device.type != HFT_CPU) {
                lg_host = hft_tensor_to(logits, (hft_device){HFT_CPU, 0});
                lab_host = hft_tensor_to(b.labels, (hft_device){HFT_CPU, 0});
                if (!lg_host || !lab_host) st = hft_error_status();
            }
            if (classify && st == HFT_OK) {
                const float *lg = hft_tensor_data(lg_host ? lg_host : logits);
                const int64_t *lab = hft_tensor_data(lab_host ? lab_host : b.labels);
                for (int64_t j = 0; j < k; j++) {
                    int64_t best = 0;
                    for (int64_t c = 1; c < nl; c++)
                        if (lg[j * nl + c] > lg[j * nl + best]) best = c;
                    int64_t y = lab[j];
                    correct += best == y;
                    seen++;
                    if (best == y)
                        tp[y]++;
                    else {
                        fp[best]++;
                        if (y >= 0 && y < nl) fn[y]++;
                    }
                }
            }
            hft_tensor_free(lg_host);
            hft_tensor_free(lab_host);
        }
        hft_ctx_reset(t->ctx);
    }
    hft_set_grad_enabled(t->ctx, prev);
    if (st == HFT_OK && t->world > 1)
        st = gather_eval(t, &sum_means, &batches, &correct, &seen, tp, fp, fn, nl);
    if (st == HFT_OK) {
        double loss = batches ? sum_means / (double)batches : NAN; /* HF: the mean of per-batch mean losses */
        log_entry_set(e, "eval_loss", loss);
        if (t->task != HFT_DATA_CLASSIFICATION) log_entry_set(e, "eval_perplexity", exp(loss));
        if (classify && seen) {
            log_entry_set(e, "eval_accuracy", (double)correct / (double)seen);
            double f1 = 0; /* binary: F1 of class 1; otherwise the macro average */
            int64_t c0 = nl == 2 ? 1 : 0;
            for (int64_t c = c0; c < nl; c++) {
                double d = 2.0 * (double)tp[c] + (double)fp[c] + (double)fn[c];
                f1 += d > 0 ? 2.0 * (double)tp[c] / d : 0;
            }
            log_entry_set(e, "eval_f1", f1 / (double)(nl - c0));
        }
        double dt = now() - t0;
        log_entry_set(e, "eval_runtime", dt);
        log_entry_set(e, "eval_samples_per_second", dt > 0 ? (double)n / dt : 0);
    }
    free(tp), free(fp), free(fn), free(idx);
    return st;
}

/* sample_at_eval: what the model writes now for each of sample_prompts (or sample_prompt), printed and
 * appended to output_dir/samples.jsonl (rank 0). */
static hft_status log_samples(trainer *t) {
    if (!t->main || hft_model_task(t->model) != HFT_TASK_CAUSAL_LM) return HFT_OK;
    cJSON *prompts = cJSON_Parse(t->r->sample_prompts);
    if (!cJSON_GetArraySize(prompts)) {
        cJSON_Delete(prompts);
        prompts = cJSON_CreateArray();
        cJSON_AddItemToArray(prompts, cJSON_CreateString(t->r->sample_prompt));
    }
    char *path = hft_path_join(t->r->output_dir, "samples.jsonl");
    FILE *fp = path ? fopen(path, "a") : NULL;
    hft_status st = fp ? HFT_OK : hft_error(HFT_EIO, "%s: cannot append", path ? path : "samples.jsonl");
    logbook_progress_clear(&t->log);
    const cJSON *p;
    cJSON_ArrayForEach(p, prompts) {
        if (st != HFT_OK) break;
        char *text = NULL;
        int64_t generated = 0;
        bool prev = hft_set_grad_enabled(t->ctx, false);
        st = generate_sample(t->ctx, t->model, t->tok, p->valuestring, t->r->sample_tokens, t->seed, &text,
                             &generated);
        hft_set_grad_enabled(t->ctx, prev);
        if (st != HFT_OK) break;
        printf("sample at step %lld: %s%s\n", (long long)t->global_step, p->valuestring, text);
        cJSON *row = cJSON_CreateObject();
        cJSON_AddNumberToObject(row, "step", (double)t->global_step);
        cJSON_AddStringToObject(row, "prompt", p->valuestring);
        cJSON_AddStringToObject(row, "completion", text);
        char *line = cJSON_PrintUnformatted(row);
        fprintf(fp, "%s\n", line);
        cJSON_Delete(row);
        free(line), free(text);
    }
    if (fp) fclose(fp);
    free(path);
    cJSON_Delete(prompts);
    return st;
}

/* Updates the best metric after an evaluation; true when this one is the best so far. */
static bool track_best(trainer *t, const log_entry *e) {
    double v = log_entry_get(e, t->metric, NAN);
    if (!isfinite(v)) return false;
    logbook *lb = &t->log;
    bool better = !lb->has_best || (t->greater_is_better ? v > lb->best_metric : v < lb->best_metric);
    bool significant = !lb->has_best || fabs(v - lb->best_metric) > t->r->early_stopping_threshold;
    if (better && significant)
        t->evals_without_improvement = 0;
    else
        t->evals_without_improvement++;
    if (t->r->early_stopping_patience > 0 && t->evals_without_improvement >= t->r->early_stopping_patience)
        t->early_stop = true;
    if (better) {
        lb->has_best = true;
        lb->best_metric = v;
        lb->best_global_step = t->global_step;
        snprintf(lb->best_model_checkpoint, sizeof lb->best_model_checkpoint, "%s/checkpoint-%lld",
                 t->r->output_dir, (long long)t->global_step);
    }
    return better;
}

/* ---------------------------------------------------------------- saving */

static hft_status gather_rank_positions(trainer *t, int64_t *all) {
    int64_t mine = hft_sampler_next_position(t->sampler);
    return hft_dist_allgather(t->dist, &mine, all, sizeof mine, "gathering the ranks' data positions");
}

/* ZeRO-1: the named optimizer state *info describes, gathered whole into a new host tensor on rank 0 (*host;
 * NULL on the other ranks), each rank sending the part that lies in its range. Every rank gathers every
 * tensor, in order. */
static hft_status gather_state(void *user, const hft_optim_state_info *info, hft_tensor **host) {
    trainer *t = user;
    hft_tensor *piece, *copy = NULL;
    int64_t from;
    *host = NULL;
    HFT_TRY(hft_optimizer_state_part(t->opt, info, &piece, &from));
    int64_t n = piece ? hft_tensor_numel(piece) : 0;
    hft_status st = HFT_OK;
    if (piece && piece->device.type != HFT_CPU && !(copy = hft_tensor_to(piece, (hft_device){HFT_CPU, 0})))
        st = hft_error_status();
    if (st == HFT_OK && t->main && !(*host = hft_tensor_new(HFT_F32, info->ndim, info->shape)))
        st = hft_error_status();
    char what[600];
    snprintf(what, sizeof what, "gathering the optimizer state '%s' (ZeRO-1) for a checkpoint", info->name);
    const hft_tensor *src = copy ? copy : piece;
    if (st == HFT_OK)
        st = hft_dist_gather(t->dist, src ? hft_tensor_data(src) : NULL, (size_t)n * sizeof(float),
                             t->main ? hft_tensor_data(*host) : NULL, 0, what);
    hft_tensor_free(copy);
    hft_tensor_free(piece);
    if (st != HFT_OK) {
        hft_tensor_free(*host);
        *host = NULL;
    }
    return st;
}

/* The ranks other than 0 while it writes a ZeRO-1 checkpoint: their part of each tensor's gather. */
static hft_status serve_state_gathers(trainer *t) {
    for (int i = 0; i < hft_optimizer_state_count(t->opt); i++) {
        hft_optim_state_info info;
        hft_tensor *none = NULL;
        HFT_TRY(hft_optimizer_state_info(t->opt, i, &info));
        HFT_TRY(gather_state(t, &info, &none));
    }
    return HFT_OK;
}

static hft_status write_checkpoint(trainer *t, const int64_t *positions);

static hft_status save(trainer *t) {
    int64_t positions[4096];
    if (t->world > 4096) return hft_error(HFT_EUNSUPPORTED, "checkpoints of more than 4096 ranks");
    if (t->dist) HFT_TRY(gather_rank_positions(t, positions));
    if (!t->main) return t->zero ? serve_state_gathers(t) : HFT_OK; /* rank 0 writes */
    return write_checkpoint(t, positions);
}

static hft_status write_checkpoint(trainer *t, const int64_t *positions) {
    state_fetch fetch = {gather_state, t};
    train_state s = {.global_step = t->global_step,
                     .epoch = t->log.epoch,
                     .cursor = t->cursor,
                     .tokens_seen = t->tokens_seen,
                     .total_flos = t->log.total_flos,
                     .seed = (int64_t)t->seed,
                     .data_seed = (int64_t)t->data_seed,
                     .world_size = t->world,
                     .rank_positions = t->dist ? positions : NULL,
                     .optimizer_steps = hft_optimizer_steps(t->opt),
                     .scaler_scale = t->r->fp16 ? (double)t->scaler.scale : 0,
                     .scaler_growth_tracker = t->scaler.growth_tracker,
                     .skipped_steps = t->skipped_steps};
    hft_schedule_get_state(t->sched, &s.schedule);
    hft_model_fingerprint(t->model, s.model_fingerprint);
    recipe_fingerprint(t, s.recipe_fingerprint, sizeof s.recipe_fingerprint);
    memcpy(s.base_digest, t->base_digest, sizeof s.base_digest);
    snprintf(s.source_dtype, sizeof s.source_dtype, "%s", hft_dtype_name(hft_model_source_dtype(t->model)));
    t->log.global_step = t->global_step;
    t->log.num_input_tokens_seen = t->tokens_seen;
    checkpoint_parts parts = {.model = t->model,
                              .tokenizer_dir = t->tokenizer_dir,
                              .model_dir = *t->r->model_path ? t->r->model_path : NULL,
                              .recipe = t->r,
                              .state = &s,
                              .optimizer = t->opt,
                              .optimizer_fetch = t->zero ? &fetch : NULL,
                              .log = &t->log};
    char *path = NULL;
    HFT_TRY(checkpoint_write(t->r->output_dir, t->global_step, &parts, &path));
    free(path);
    return checkpoint_rotate(t->r->output_dir, t->r->save_total_limit,
                             t->log.has_best ? t->log.best_model_checkpoint : NULL);
}

/* ---------------------------------------------------------------- the run */

static void print_plan(const trainer *t) {
    const hft_recipe *r = t->r;
    hft_paramset *ps = hft_model_params(t->model);
    int64_t total = 0;
    for (int i = 0; i < hft_paramset_count(ps); i++)
        total += hft_tensor_numel(hft_paramset_get(ps, i)->value);
    printf("hft-train: %s, %lld parameters (%lld trained), %d threads\n", hft_model_architecture(t->model),
           (long long)total, (long long)hft_paramset_trainable_numel(ps), hft_threads_get());
    if (t->device.type != HFT_CPU) printf("  device: %s\n", t->device_desc);
    printf("  data: %s, %lld examples", r->train_file, (long long)hft_dataset_size(t->train));
    if (t->eval) printf("; eval %s, %lld examples", r->eval_file, (long long)hft_dataset_size(t->eval));
    printf("\n  global batch %lld examples = %lld per device x %lld accumulation x %d process%s\n",
           (long long)(t->batch_size * t->accum * t->world), (long long)t->batch_size, (long long)t->accum,
           t->world, t->world == 1 ? "" : "es");
    if (t->world > 1)
        printf("  data parallel over MPI: %d ranks (%d on this node), %d thread%s each; gradients "
               "all-reduced in "
               "%d bucket%s during backward; evaluation batches shared out\n",
               t->world, hft_dist_local_world(t->dist), hft_threads_get(), hft_threads_get() == 1 ? "" : "s",
               hft_paramset_bucket_count(hft_model_params(t->model)),
               hft_paramset_bucket_count(hft_model_params(t->model)) == 1 ? "" : "s");
    if (t->zero) {
        int64_t lo, count;
        hft_grad_sync_range(t->sync, &lo, &count);
        printf("  ZeRO-1: the optimizer state is sharded, this rank keeps and updates %lld of the %lld "
               "trainable "
               "values; gradients reduce to their range's rank, updated parameters are all-gathered\n",
               (long long)count, (long long)hft_paramset_trainable_numel(hft_model_params(t->model)));
    }
    printf("  %lld batches per epoch, %lld optimizer steps per epoch, %lld steps in all (warmup %lld)\n",
           (long long)t->batches_per_epoch, (long long)t->steps_per_epoch, (long long)t->total_steps,
           (long long)t->warmup);
    printf("  %s at lr %g, schedule %s; output in %s\n", r->optim, r->learning_rate, r->lr_scheduler_type,
           r->output_dir);
    if (t->autocast == HFT_F32) {
        printf("  precision: float32 throughout\n");
    } else {
        const char *dt = t->autocast == HFT_BF16 ? "bfloat16" : "float16";
        printf("  precision: %s autocast; master weights, gradients and optimizer state in float32%s\n", dt,
               r->fp16 ? "; dynamic loss scaling from 65536 (torch's GradScaler)" : "");
        for (int i = 0; i < hft_autocast_rule_count(); i++) {
            const hft_autocast_rule *rule = hft_autocast_rule_get(i);
            printf("    %-21s %-8s %s\n", rule->op, rule->low ? dt : "float32", rule->how);
        }
    }
    printf("  recipe %s, values other than the defaults (hft-train --help lists all):\n",
           r->path ? r->path : "");
    hft_recipe_write_set(r, stdout);
}

static hft_status finish(trainer *t, double train_loss_mean) {
    const hft_recipe *r = t->r;
    log_entry e = {0};
    double dt = now() - t->started;
    log_entry_set(&e, "train_runtime", dt);
    log_entry_set(&e, "train_samples_per_second",
                  dt > 0 ? (double)(t->global_step * t->batch_size * t->accum * t->world) / dt : 0);
    log_entry_set(&e, "train_steps_per_second", dt > 0 ? (double)t->global_step / dt : 0);
    log_entry_set(&e, "total_flos", t->log.total_flos);
    log_entry_set(&e, "train_loss", train_loss_mean);
    log_entry_set(&e, "epoch", t->log.epoch);
    log_entry_set(&e, "step", (double)t->global_step);
    HFT_TRY(logbook_add(&t->log, &e));
    logbook_print(&t->log, &e, t->total_steps);
    if (t->sync)
        printf(
            "gradient all-reduce: %d bucket%s a step, %d started during backward; %.0f ms a step waited for "
            "after backward\n",
            hft_paramset_bucket_count(hft_model_params(t->model)),
            hft_paramset_bucket_count(hft_model_params(t->model)) == 1 ? "" : "s",
            hft_grad_sync_overlapped(t->sync), 1e3 * hft_grad_sync_waited(t->sync));
    if (!t->main) return HFT_OK; /* rank 0 writes the model */
    hft_memory_stats mem;
    hft_ctx_memory(t->ctx, &mem);
    printf("peak activation memory %.1f MiB (arena %.1f + gradients %.1f)%s\n",
           (double)(mem.arena_peak + mem.pool_peak) / 1048576.0, (double)mem.arena_peak / 1048576.0,
           (double)mem.pool_peak / 1048576.0,
           r->gradient_checkpointing ? " with gradient checkpointing" : "");
    if (r->load_best_model_at_end && t->log.has_best && fs_exists(t->log.best_model_checkpoint)) {
        printf("loading the best model (%s %g) from %s\n", t->metric, t->log.best_metric,
               t->log.best_model_checkpoint);
        HFT_TRY(load_trained_weights(t, t->log.best_model_checkpoint));
    }
    bool merge = hft_model_has_adapter(t->model) && strcmp(r->lora_export, "merged") == 0;
    if (t->device.type != HFT_CPU && merge) {
        /* training is over: merging runs on the CPU only for now, so the model goes there */
        HFT_TRY(hft_model_to_device(t->model, (hft_device){HFT_CPU, 0}));
        printf("moved the model to the CPU to merge the LoRA adapter (merging on a GPU is not built yet)\n");
    }
    if (merge) {
        HFT_TRY(hft_lora_merge(t->model)); /* lora.export: merged — the run's output is a plain model */
        printf("merged the LoRA adapter into the weights\n");
    }
    /* a whole model is written in the dtype it came in (training kept f32 master weights); the sample below
     * is then of the model as written */
    hft_dtype out_dtype = hft_model_source_dtype(t->model);
    bool whole = !hft_model_has_adapter(t->model) || strcmp(r->lora_export, "merged") == 0;
    if (whole && out_dtype != HFT_F32) {
        HFT_TRY(hft_model_to_dtype(t->model, out_dtype));
        printf("writing the model in %s, the dtype it came in\n", hft_dtype_name(out_dtype));
    }
    hft_status written = checkpoint_write_model(r->output_dir, t->model, t->tokenizer_dir,
                                                *r->model_path ? r->model_path : NULL);
    if (whole && out_dtype != HFT_F32) HFT_TRY(hft_model_to_dtype(t->model, HFT_F32));
    HFT_TRY(written);
    t->log.global_step = t->global_step;
    HFT_TRY(logbook_write_state(&t->log, r->output_dir));
    printf("saved the %s to %s\n", hft_model_has_adapter(t->model) ? "LoRA adapter" : "model", r->output_dir);
    if (r->sample_tokens <= 0) return HFT_OK;
    if (hft_model_device(t->model).type == t->device.type)
        return print_sample(t->ctx, t->model, t->tok, r->sample_prompt, r->sample_tokens, t->seed);
    hft_ctx *cpu =
        hft_ctx_new(NULL); /* the model moved to the CPU to merge; the training context is the GPU's */
    if (!cpu) return hft_error(HFT_ENOMEM, "out of memory");
    hft_status st = print_sample(cpu, t->model, t->tok, r->sample_prompt, r->sample_tokens, t->seed);
    hft_ctx_free(cpu);
    return st;
}

/* A stop asked of any rank (a signal) stops every rank after the same step: the flag travels in a
 * collective, since MPICH's launcher may deliver a signal to one rank only. */
static hft_status agree_on_stop(trainer *t, int *sig) {
    double v = (double)stop_signal;
    if (t->world > 1) HFT_TRY(hft_dist_allreduce_f64(t->dist, &v, 1, HFT_DIST_MAX, "agreeing on a stop"));
    *sig = (int)v;
    return HFT_OK;
}

/* The communicator of the gradients: MPI for host memory; NCCL for a GPU's (libhft_nccl.so, found as the
 * CUDA module is: hft_module_path). The CUDA emulator's device memory is host memory, so there MPI
 * reduces it directly, which lets the tests run data-parallel GPU training without a GPU. */
static hft_status open_comm(trainer *t) {
    if (t->device.type == HFT_CPU || strstr(hft_kernels_for(t->device.type)->name, "emulated"))
        return hft_comm_mpi(t->dist, &t->comm);
    char path[4096];
    hft_module_path("HFT_NCCL_MODULE", "libhft_nccl.so", path, sizeof path);
    return hft_comm_nccl(t->dist, path, t->device.index, &t->comm);
}

/* Under mpirun: the ranks check that they run the same configuration, take rank 0's initial parameters,
 * and set up the gradient all-reduce. */
static hft_status join_ranks(trainer *t) {
    if (t->world == 1) return HFT_OK;
    char *text = NULL, fp[33];
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    if (!mem) return hft_error(HFT_ENOMEM, "out of memory");
    hft_recipe_write_set(t->r, mem);
    hft_model_fingerprint(t->model, fp);
    fprintf(mem,
            "model: %s, fingerprint %s\ntrain examples: %lld\neval examples: %lld\nLoRA base digest: %s\n"
            "resumed at step: %lld\n",
            hft_model_architecture(t->model), fp, (long long)hft_dataset_size(t->train),
            (long long)(t->eval ? hft_dataset_size(t->eval) : 0), t->base_digest, (long long)t->global_step);
    fclose(mem);
    hft_status st = hft_dist_agree(t->dist, "configuration", text);
    free(text);
    HFT_TRY(st);
    HFT_TRY(hft_dist_bcast_params(t->dist, hft_model_params(t->model)));
    HFT_TRY(open_comm(t));
    HFT_TRY(hft_grad_sync_new(t->comm, hft_model_params(t->model), &t->sync));
    return t->zero ? hft_grad_sync_shard(t->sync) : HFT_OK;
}

static hft_status run(trainer *t, bool *stopped) {
    const hft_recipe *r = t->r;
    HFT_TRY(setup(t));
    HFT_TRY(resume(t));
    HFT_TRY(join_ranks(t));
    print_plan(t);
    struct sigaction sa = {.sa_handler = on_stop_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    t->started = t->window_started = now();
    t->tokens_at_log = (double)t->tokens_seen;
    int64_t steps_done = 0;
    double nparams = (double)hft_paramset_trainable_numel(hft_model_params(t->model));
    int stop = 0;
    while (t->global_step < t->total_steps && !t->early_stop) {
        HFT_TRY(agree_on_stop(t, &stop));
        if (stop) break;
        double lr = r->learning_rate * hft_schedule_multiplier(t->sched, lr_step(t)), loss = 0;
        int64_t tokens_before = t->tokens_seen;
        HFT_TRY(train_step(t, &loss));
        steps_done++;
        t->log.total_flos += 6.0 * nparams * (double)(t->tokens_seen - tokens_before);
        t->log.epoch = (double)t->cursor.epoch + (double)t->micro_in_epoch / (double)t->batches_per_epoch;
        t->loss_since_log += loss;
        t->train_loss_total += loss;
        t->steps_since_log++;
        double dt = now() - t->window_started;
        logbook_progress(&t->log, t->global_step, t->total_steps,
                         t->loss_since_log / (double)t->steps_since_log, lr, t->last_grad_norm,
                         dt > 0 ? ((double)t->tokens_seen - t->tokens_at_log) / dt : 0);
        bool last = t->global_step == t->total_steps;
        if ((t->logging_every && t->global_step % t->logging_every == 0) ||
            (r->logging_first_step && t->global_step == 1) || last) {
            log_entry e = {0};
            log_entry_set(&e, "loss", t->loss_since_log / (double)t->steps_since_log);
            log_entry_set(&e, "grad_norm", t->last_grad_norm);
            log_entry_set(&e, "learning_rate", lr);
            log_entry_set(&e, "epoch", t->log.epoch);
            log_entry_set(&e, "step", (double)t->global_step);
            HFT_TRY(logbook_add(&t->log, &e));
            logbook_print(&t->log, &e, t->total_steps);
            t->loss_since_log = 0;
            t->steps_since_log = 0;
            t->window_started = now();
            t->tokens_at_log = (double)t->tokens_seen;
        }
        bool epoch_end = t->micro_in_epoch >= t->batches_per_epoch;
        bool eval_now = t->eval && ((strcmp(r->eval_strategy, "steps") == 0 && t->eval_every &&
                                     t->global_step % t->eval_every == 0) ||
                                    (strcmp(r->eval_strategy, "epoch") == 0 && epoch_end));
        bool best = false;
        if (eval_now) {
            log_entry e = {0};
            HFT_TRY(evaluate(t, &e));
            log_entry_set(&e, "epoch", t->log.epoch);
            log_entry_set(&e, "step", (double)t->global_step);
            HFT_TRY(logbook_add(&t->log, &e));
            logbook_print(&t->log, &e, t->total_steps);
            best = track_best(t, &e);
            if (r->sample_at_eval && r->sample_tokens > 0) HFT_TRY(log_samples(t));
            double metric =
                log_entry_get(&e, t->metric, NAN); /* reduce_lr_on_plateau steps on evaluations, as HF */
            if (isfinite(metric)) hft_schedule_observe(t->sched, metric);
        }
        bool save_now = (strcmp(r->save_strategy, "steps") == 0 && t->save_every &&
                         t->global_step % t->save_every == 0) ||
                        (strcmp(r->save_strategy, "epoch") == 0 && epoch_end) ||
                        (strcmp(r->save_strategy, "best") == 0 && best);
        if (save_now) HFT_TRY(save(t));
    }
    if (!stop) HFT_TRY(agree_on_stop(t, &stop)); /* a signal during the last step */
    if (stop) {
        logbook_progress_clear(&t->log);
        HFT_TRY(save(t));
        printf("stopped by signal %d at step %lld; a checkpoint is saved in %s/checkpoint-%lld\n"
               "resume with: hft-train %s resume_from_checkpoint=true\n",
               stop, (long long)t->global_step, r->output_dir, (long long)t->global_step,
               r->path ? r->path : "RECIPE");
        *stopped = true;
        return HFT_OK;
    }
    if (t->early_stop)
        printf("early stopping at step %lld: %s did not improve in %lld evaluations\n",
               (long long)t->global_step, t->metric, (long long)t->r->early_stopping_patience);
    return finish(t, steps_done ? t->train_loss_total / (double)steps_done : NAN);
}

hft_status hft_train(const hft_recipe *r, bool *stopped) {
    return hft_train_on(r, NULL, stopped);
}

hft_status hft_train_on(const hft_recipe *r, hft_dist *dist, bool *stopped) {
    trainer t = {.r = r, .dist = dist, .rank = hft_dist_rank(dist), .world = hft_dist_world(dist)};
    t.main = t.rank == 0;
    if (dist && !getenv("HFT_DIST_TIMEOUT")) hft_dist_set_timeout(dist, r->ddp_timeout);
    *stopped = false;
    stop_signal = 0;
    hft_status st = run(&t, stopped);
    logbook_progress_clear(&t.log);
    free(t.indices);
    free(t.counts);
    free(t.positions);
    free(t.blocks);
    hft_grad_sync_free(t.sync);
    hft_comm_free(t.comm);
    hft_tensor_free(t.micro_losses);
    free(t.tokenizer_dir);
    logbook_free(&t.log);
    hft_ctx_free(t.ctx);
    hft_schedule_free(t.sched);
    hft_optimizer_free(t.opt);
    hft_sampler_free(t.sampler);
    hft_dataset_free(t.eval);
    hft_dataset_free(t.train);
    hft_tokenizer_free(t.tok);
    hft_model_free(t.model);
    return st;
}
