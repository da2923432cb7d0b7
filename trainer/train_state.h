/* The training state of a checkpoint beside its weights: training_state.h5 (HDF5) with the optimizer's
 * state tensors by parameter name, the schedule, the data cursor, the step, the seeds, fingerprints of
 * the model and recipe it belongs to, and a checksum over all of it. HDF5 file locking is off (it fails on
 * NFS and Lustre, where clusters keep checkpoints). */
#ifndef HFT_TRAIN_STATE_H
#define HFT_TRAIN_STATE_H

#include "data/data.h"
#include "optim/optim.h"

typedef struct train_state {
    int64_t global_step;
    double epoch;
    hft_cursor cursor;
    int64_t tokens_seen;
    double total_flos;
    int64_t seed, data_seed;
    int64_t world_size;
    int64_t optimizer_steps;
    hft_schedule_state schedule;
    /* fp16: the loss scaler (torch GradScaler's state_dict), and the optimizer steps it skipped, which the
     * schedule does not count (HF steps the scheduler only when the optimizer stepped) */
    double scaler_scale;
    int64_t scaler_growth_tracker, skipped_steps;
    char model_fingerprint[33];   /* hex of a hash of the architecture and every parameter's name and shape */
    char recipe_fingerprint[128]; /* the recipe values a resume must keep: "batch=8 accum=4 max_length=512" */
    char base_digest[33];  /* training an adapter: hft_model_weights_digest of the frozen base; else "" */
    char source_dtype[16]; /* hft_dtype_name of the dtype the model came in ("f32", "bf16", "f16"):
                            * hft-export's default for a checkpoint; "" in older checkpoints */
    /* writing: each rank's next sample (global index: epoch × size + position in the epoch's order), which
     * with the counter-based RNG keyed on sample indices is all of a rank's data and RNG state; NULL for one
     * process. Reading leaves it NULL (train_state_rank_positions reads it). */
    const int64_t *rank_positions;
} train_state;

/* Where a sharded (ZeRO-1) optimizer's named state comes from when a checkpoint is written: each tensor
 * whole on the host, gathered from the ranks' ranges (every rank takes part in each gather, in order). */
typedef struct state_fetch {
    /* the named state *info describes as a new host f32 tensor of its shape, which the caller frees */
    hft_status (*values)(void *user, const hft_optim_state_info *info, hft_tensor **host);
    void *user;
} state_fetch;

/* The optimizer's state is written as whole named tensors, one at a time: from its own buffers, or, for a
 * sharded optimizer, from `fetch` (NULL otherwise), so that a sharded run writes the file an unsharded one
 * does while holding no more than one tensor of it at once. */
hft_status train_state_save(const char *path, const train_state *s, hft_optimizer *opt,
                            const state_fetch *fetch);
/* Reads the state and the optimizer tensors (refusing a file whose checksum does not match, or whose
 * tensors do not match the optimizer's by name and shape); a sharded optimizer takes its range of each,
 * whatever the world size that wrote them. */
hft_status train_state_load(const char *path, train_state *s, hft_optimizer *opt);
/* Reads only the scalars (for choosing and checking a checkpoint before building anything). */
hft_status train_state_peek(const char *path, train_state *s);
/* The per-rank positions of a state written by world_size ranks into `out` (world_size entries); false when
 * the file has none (a single-process run). */
bool train_state_rank_positions(const char *path, int64_t world_size, int64_t *out);

#endif
