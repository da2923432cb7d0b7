/* Communicators: the generic calls, and the MPI implementation for host buffers. */
#include "distributed/dist_internal.h"

#include <stdlib.h>

hft_status hft_comm_allreduce_start(hft_comm *c, void *buf, int64_t count, hft_dtype dtype) {
    return c->ops->start(c, COMM_ALLREDUCE, buf, count, dtype, 0);
}
static hft_status rooted_start(hft_comm *c, comm_kind kind, void *buf, int64_t count, hft_dtype dtype,
                               int root) {
    if (root < 0 || root >= c->dist->size)
        return hft_error(HFT_EINVAL, "%s: root rank %d of %d", kind == COMM_REDUCE ? "reduce" : "broadcast",
                         root, c->dist->size);
    return c->ops->start(c, kind, buf, count, dtype, root);
}
hft_status hft_comm_reduce_start(hft_comm *c, void *buf, int64_t count, hft_dtype dtype, int root) {
    return rooted_start(c, COMM_REDUCE, buf, count, dtype, root);
}
hft_status hft_comm_bcast_start(hft_comm *c, void *buf, int64_t count, hft_dtype dtype, int root) {
    return rooted_start(c, COMM_BCAST, buf, count, dtype, root);
}
hft_status hft_comm_progress(hft_comm *c) {
    return c->ops->progress(c);
}
hft_status hft_comm_wait(hft_comm *c, const char *what) {
    return c->ops->wait(c, what);
}
void hft_comm_free(hft_comm *c) {
    if (!c) return;
    c->ops->free(c);
    free(c);
}
const char *hft_comm_name(const hft_comm *c) {
    return c->ops->name;
}
hft_device hft_comm_device(const hft_comm *c) {
    return c->device;
}
bool hft_comm_stream_ordered(const hft_comm *c) {
    return c->ops->stream_ordered;
}

/* ---------------------------------------------------------------- MPI */

#define MPI_MAX_PENDING DIST_MAX_REQUESTS /* buckets in flight: GPT-2 124M has 20 of 25 MiB */

static const char *const kind_names[] = {"all-reduce", "reduce", "broadcast"};

typedef struct mpi_comm {
    MPI_Request reqs[MPI_MAX_PENDING];
    int n;
} mpi_comm;

static MPI_Datatype mpi_type(hft_dtype dtype) {
    switch (dtype) {
    case HFT_F32:
        return MPI_FLOAT;
    case HFT_F64:
        return MPI_DOUBLE;
    case HFT_I64:
        return MPI_INT64_T;
    case HFT_I32:
        return MPI_INT32_T;
    default:
        return MPI_DATATYPE_NULL; /* bf16/f16 sums need a user op; mixed precision reduces in f32 */
    }
}

static hft_status mpi_wait(hft_comm *c, const char *what);

static hft_status mpi_start(hft_comm *c, comm_kind kind, void *buf, int64_t count, hft_dtype dtype,
                            int root) {
    mpi_comm *m = c->impl;
    hft_dist *d = c->dist;
    if (d->size == 1 || count == 0) return HFT_OK;
    MPI_Datatype type = mpi_type(dtype);
    if (type == MPI_DATATYPE_NULL)
        return hft_error(HFT_EUNSUPPORTED, "MPI %s of %s buffers is not supported (reduce in f32)",
                         kind_names[kind], hft_dtype_name(dtype));
    if (count > 0x7fffffff)
        return hft_error(HFT_EINVAL, "MPI %s of %lld elements: more than MPI's int count; use buckets",
                         kind_names[kind], (long long)count);
    if (m->n == MPI_MAX_PENDING) /* a great many ranges: let the earlier ones finish first */
        HFT_TRY(mpi_wait(c, "collectives in flight"));
    MPI_Request *req = &m->reqs[m->n];
    int rc = MPI_SUCCESS;
    switch (kind) {
    case COMM_ALLREDUCE:
        rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)count, type, MPI_SUM, d->world, req);
        break;
    case COMM_REDUCE:
        rc = d->rank == root ? MPI_Ireduce(MPI_IN_PLACE, buf, (int)count, type, MPI_SUM, root, d->world, req)
                             : MPI_Ireduce(buf, NULL, (int)count, type, MPI_SUM, root, d->world, req);
        break;
    case COMM_BCAST:
        rc = MPI_Ibcast(buf, (int)count, type, root, d->world, req);
        break;
    }
    if (rc != MPI_SUCCESS) return dist_mpi_error(d, rc, kind_names[kind]);
    m->n++;
    return HFT_OK;
}

static hft_status mpi_progress(hft_comm *c) {
    mpi_comm *m = c->impl;
    if (m->n == 0) return HFT_OK;
    int done = 0;
    MPI_Status statuses[MPI_MAX_PENDING];
    int rc = MPI_Testall(m->n, m->reqs, &done, statuses);
    if (rc != MPI_SUCCESS) return dist_mpi_error(c->dist, rc, "a gradient all-reduce");
    if (done) m->n = 0;
    return HFT_OK;
}

static hft_status mpi_wait(hft_comm *c, const char *what) {
    mpi_comm *m = c->impl;
    if (m->n == 0) return HFT_OK;
    hft_status st = dist_wait(c->dist, m->reqs, m->n, what);
    m->n = 0;
    return st;
}

static void mpi_free(hft_comm *c) {
    free(c->impl);
}

static const comm_ops mpi_ops = {"mpi", false, mpi_start, mpi_progress, mpi_wait, mpi_free};

hft_status hft_comm_mpi(hft_dist *d, hft_comm **out) {
    *out = NULL;
    hft_comm *c = calloc(1, sizeof *c);
    mpi_comm *m = calloc(1, sizeof *m);
    if (!c || !m) {
        free(c), free(m);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    *c = (hft_comm){.ops = &mpi_ops, .dist = d, .device = {HFT_CPU, 0}, .impl = m};
    *out = c;
    return HFT_OK;
}
