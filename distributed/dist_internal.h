/* What the files of distributed/ share: the process group's insides and the waiting with a deadline. */
#ifndef HFT_DISTRIBUTED_INTERNAL_H
#define HFT_DISTRIBUTED_INTERNAL_H

#include <mpi.h>

#include "distributed/dist.h"

struct hft_dist {
    bool mpi;       /* MPI initialised by us */
    MPI_Comm world; /* a duplicate of MPI_COMM_WORLD that returns errors */
    int rank, size, local_rank, local_size;
    double timeout;
    bool shared_error; /* the last error was returned on every rank alike (hft_dist_agree) */
};

#define DIST_MAX_REQUESTS 256

/* Waits for n requests (at most DIST_MAX_REQUESTS), polling, until the group's timeout; the error names
 * `what` and the rank. */
hft_status dist_wait(hft_dist *d, MPI_Request *reqs, int n, const char *what);
/* An MPI error code as an hft status with MPI's text. */
hft_status dist_mpi_error(const hft_dist *d, int code, const char *what);
double dist_now(void);

/* The collectives a communicator starts, all in place. The NCCL module takes the same numbers. */
typedef enum comm_kind { COMM_ALLREDUCE = 0, COMM_REDUCE = 1, COMM_BCAST = 2 } comm_kind;

/* A communicator: one implementation per kind of buffer. */
typedef struct comm_ops {
    const char *name;
    bool stream_ordered; /* its collectives run after the device's queued kernels without a host wait */
    /* root: the rank a reduction ends on or a broadcast starts from (unused for an all-reduce) */
    hft_status (*start)(hft_comm *c, comm_kind kind, void *buf, int64_t count, hft_dtype dtype, int root);
    hft_status (*progress)(hft_comm *c);
    hft_status (*wait)(hft_comm *c, const char *what);
    void (*free)(hft_comm *c);
} comm_ops;

struct hft_comm {
    const comm_ops *ops;
    hft_dist *dist;
    hft_device device;
    void *impl;
};

#endif
