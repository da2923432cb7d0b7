/* Data-parallel training: the process group, communicators and the gradient all-reduce.
 *
 * A process group is MPI's world when a launcher (mpirun, mpiexec, srun with PMI) started the process, and
 * a group of one without MPI otherwise: a plain run needs no MPI at all. Every collective here waits with
 * a deadline (ddp_timeout), so a rank that died or hangs ends the others with an error naming the
 * collective, never a hang.
 *
 * A communicator reduces large buffers on one kind of device: MPI for host memory, NCCL for GPU memory
 * (its ncclUniqueId broadcast over the process group's MPI). Gradient sync reduces a parameter set's flat
 * gradient in buckets, each started as soon as backward has written its last gradient. */
#ifndef HFT_DISTRIBUTED_DIST_H
#define HFT_DISTRIBUTED_DIST_H

#include <stdbool.h>
#include <stddef.h>

#include "autograd/autograd.h"

/* ---------------------------------------------------------------- process group */

typedef struct hft_dist hft_dist;

/* True when a launcher started this process (PMI_RANK, OMPI_COMM_WORLD_RANK or PMIX_RANK is set). */
bool hft_dist_launched(void);
/* A group of one without MPI unless launched; under a launcher MPI is initialised (threads funneled) and
 * errors are returned, not fatal. */
hft_status hft_dist_init(hft_dist **out);
/* Ends MPI (when initialised) and frees. After an error on one rank, call hft_dist_abort instead. */
void hft_dist_finalize(hft_dist *d);
/* Ends every rank now (MPI_Abort): what a rank does after an error the others cannot know about. */
void hft_dist_abort(hft_dist *d, int code);
/* Whether the last error came out of a collective check on every rank alike (hft_dist_agree): then the
 * ranks can end together (hft_dist_finalize) instead of aborting. */
bool hft_dist_error_shared(const hft_dist *d);

int hft_dist_rank(const hft_dist *d);
int hft_dist_world(const hft_dist *d);
int hft_dist_local_rank(const hft_dist *d);  /* among the ranks on this node */
int hft_dist_local_world(const hft_dist *d); /* ranks on this node */
/* The longest a collective waits for the other ranks, in seconds (default 1800, transformers'
 * ddp_timeout; the environment's HFT_DIST_TIMEOUT over it). */
void hft_dist_set_timeout(hft_dist *d, double seconds);
double hft_dist_timeout(const hft_dist *d);

typedef enum hft_dist_op { HFT_DIST_SUM, HFT_DIST_MAX, HFT_DIST_MIN } hft_dist_op;

/* Small collectives on host memory, blocking up to the timeout; `what` names the call in errors
 * ("step 12: loss tokens"). With one rank they return at once. */
hft_status hft_dist_allreduce_f64(hft_dist *d, double *values, int n, hft_dist_op op, const char *what);
hft_status hft_dist_bcast(hft_dist *d, void *buf, size_t bytes, int root, const char *what);
hft_status hft_dist_allgather(hft_dist *d, const void *mine, void *all, size_t bytes_each, const char *what);
/* Every rank's bytes (any length, each its own) to root's `all`, in rank order: sharded optimizer state
 * gathered for a checkpoint. `all` is only read on root. */
hft_status hft_dist_gather(hft_dist *d, const void *mine, size_t my_bytes, void *all, int root,
                           const char *what);
/* Every rank passes its own text (lines "key: value"); HFT_EINVAL on every rank unless all are equal to
 * rank 0's, with a message that names the first rank that differs and the first line that differs. */
hft_status hft_dist_agree(hft_dist *d, const char *what, const char *text);
/* Rank 0's values of the trainable parameters, to every rank. */
hft_status hft_dist_bcast_params(hft_dist *d, hft_paramset *ps);

/* ---------------------------------------------------------------- communicators */

typedef struct hft_comm hft_comm;

/* MPI on host buffers. */
hft_status hft_comm_mpi(hft_dist *d, hft_comm **out);
/* NCCL on the buffers of GPU `device`, through the NCCL module (libhft_nccl.so, built when CUDA and NCCL
 * are found and loaded at run time, so that hft starts without a GPU driver); rank 0's ncclUniqueId goes
 * to the others over MPI. HFT_EUNSUPPORTED with the reason when the module or a GPU is not there. */
hft_status hft_comm_nccl(hft_dist *d, const char *module_path, int device, hft_comm **out);
void hft_comm_free(hft_comm *c);
const char *hft_comm_name(const hft_comm *c);
hft_device hft_comm_device(const hft_comm *c);
/* Whether a collective on device memory starts after the kernels queued before it on the device's compute
 * stream by itself (NCCL: an event the communicator's stream waits for). Otherwise (MPI reading the
 * emulator's device memory) the caller synchronizes the device first. */
bool hft_comm_stream_ordered(const hft_comm *c);
/* Starts an in-place sum of `count` elements at `buf` (memory of the communicator's device) over all
 * ranks. Every rank starts the same reductions in the same order. */
hft_status hft_comm_allreduce_start(hft_comm *c, void *buf, int64_t count, hft_dtype dtype);
/* Starts an in-place sum of `count` elements at `buf` over all ranks that only `root` receives: ZeRO-1's
 * reduce-scatter, one owner's range at a time (the other ranks' `buf` keeps their own values). */
hft_status hft_comm_reduce_start(hft_comm *c, void *buf, int64_t count, hft_dtype dtype, int root);
/* Starts sending root's `count` elements at `buf` to every rank's `buf`: ZeRO-1's all-gather, one owner's
 * range at a time. */
hft_status hft_comm_bcast_start(hft_comm *c, void *buf, int64_t count, hft_dtype dtype, int root);
/* Lets started reductions advance; never blocks. */
hft_status hft_comm_progress(hft_comm *c);
/* Waits for every started reduction, up to the process group's timeout. */
hft_status hft_comm_wait(hft_comm *c, const char *what);

/* ---------------------------------------------------------------- gradient sync */

typedef struct hft_grad_sync hft_grad_sync;

/* Sums the gradients of a finalized parameter set over all ranks, in its buckets (hft_paramset_finalize's
 * bucket_bytes). The loss each rank backpropagates is its share of the global sum divided by the global
 * count of loss terms, so the sum over ranks is the mean gradient: nothing is divided by the world size. */
hft_status hft_grad_sync_new(hft_comm *c, hft_paramset *ps, hft_grad_sync **out);
void hft_grad_sync_free(hft_grad_sync *s);
/* The next backward on ctx starts each bucket's reduction once backward has written its last gradient
 * (buckets start in order, the same on every rank). */
void hft_grad_sync_begin(hft_grad_sync *s, hft_ctx *ctx);
/* After that backward: starts what is left (gradients no node wrote are zeros) and waits for all. */
hft_status hft_grad_sync_end(hft_grad_sync *s, hft_ctx *ctx, const char *what);
/* ZeRO-1 (call once, before the first backward): from now on each bucket is reduced only to the owners of
 * the ranges it crosses, rank r owning the r-th of world contiguous ranges of the flat layout (equal but
 * for the last, starting at multiples of 16 elements), so after hft_grad_sync_end a rank holds the summed
 * gradients of its own range only. Its optimizer updates that range (hft_optimizer_shard); then
 * hft_grad_sync_gather_values gives every rank every range's new values. */
hft_status hft_grad_sync_shard(hft_grad_sync *s);
/* Rank `rank`'s range of n flat elements among `world`: what hft_grad_sync_shard gives each rank, for
 * sharding an optimizer before the gradient sync exists (a resume loads its state first). */
void hft_shard_range(int64_t n, int world, int rank, int64_t *lo, int64_t *count);
/* This rank's range of the flat layout: the whole buffer when not sharded. */
void hft_grad_sync_range(const hft_grad_sync *s, int64_t *lo, int64_t *count);
/* Sharded: every owner's range of the flat values (hft_paramset_values) to every rank, waiting for all;
 * nothing to do when not sharded. */
hft_status hft_grad_sync_gather_values(hft_grad_sync *s, const char *what);
/* Buckets started while backward was still running, in the last synced step (for benchmarks and tests). */
int hft_grad_sync_overlapped(const hft_grad_sync *s);
/* Seconds a synced step spent after backward finishing the reductions (the mean over steps): the
 * all-reduce's cost that backward did not hide. */
double hft_grad_sync_waited(const hft_grad_sync *s);

#endif
