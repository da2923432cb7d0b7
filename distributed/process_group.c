/* The process group: MPI's world under a launcher, a group of one without. Collectives are started
 * non-blocking and polled against a deadline, so a dead or hung rank ends the others with an error. */
#include "distributed/dist_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_TIMEOUT 1800.0 /* seconds: transformers' ddp_timeout */

double dist_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

bool hft_dist_launched(void) {
    static const char *vars[] = {"PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (v && *v) return true;
    }
    return false;
}

hft_status dist_mpi_error(const hft_dist *d, int code, const char *what) {
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(code, text, &len);
    return hft_error(HFT_EDIST, "rank %d: %s: MPI error: %s", d->rank, what, text);
}

hft_status dist_wait(hft_dist *d, MPI_Request *reqs, int n, const char *what) {
    double deadline = dist_now() + d->timeout;
    MPI_Status statuses[DIST_MAX_REQUESTS]; /* not MPI_STATUSES_IGNORE: GCC's access check trips on it */
    if (n > DIST_MAX_REQUESTS)
        return hft_error(HFT_EINVAL, "%s: %d requests; at most %d", what, n, DIST_MAX_REQUESTS);
    for (long spins = 0;; spins++) {
        int done = 0;
        int rc = MPI_Testall(n, reqs, &done, statuses);
        if (rc != MPI_SUCCESS) return dist_mpi_error(d, rc, what);
        if (done) return HFT_OK;
        if (dist_now() > deadline)
            return hft_error(HFT_EDIST,
                             "rank %d: %s: no answer from the other ranks in %g s (ddp_timeout): a rank has "
                             "died or hangs; stopping",
                             d->rank, what, d->timeout);
        if (spins > 20000) { /* a long wait (another rank saving a checkpoint): stop burning the core */
            struct timespec pause = {0, 50000};
            nanosleep(&pause, NULL);
        }
    }
}

hft_status hft_dist_init(hft_dist **out) {
    *out = NULL;
    hft_dist *d = calloc(1, sizeof *d);
    if (!d) return hft_error(HFT_ENOMEM, "out of memory");
    d->size = d->local_size = 1;
    d->timeout = DEFAULT_TIMEOUT;
    const char *env = getenv("HFT_DIST_TIMEOUT");
    if (env && *env && atof(env) > 0) d->timeout = atof(env);
    if (!hft_dist_launched()) {
        *out = d;
        return HFT_OK;
    }
    int provided = 0, initialised = 0;
    MPI_Initialized(&initialised);
    if (!initialised && MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        free(d);
        return hft_error(HFT_EDIST, "MPI_Init_thread failed (started by a launcher: PMI or PMIx is set)");
    }
    d->mpi = !initialised;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &d->world);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_set_errhandler(d->world, MPI_ERRORS_RETURN);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(d->world, &d->rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(d->world, &d->size);
    MPI_Comm node = MPI_COMM_NULL;
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_split_type(d->world, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(node, &d->local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node, &d->local_size);
    if (node != MPI_COMM_NULL) MPI_Comm_free(&node);
    if (rc != MPI_SUCCESS) {
        hft_status st = dist_mpi_error(d, rc, "setting up the process group");
        hft_dist_abort(d, 1);
        return st;
    }
    *out = d;
    return HFT_OK;
}

void hft_dist_finalize(hft_dist *d) {
    if (!d) return;
    if (d->mpi) {
        MPI_Comm_free(&d->world);
        MPI_Finalize();
    }
    free(d);
}

void hft_dist_abort(hft_dist *d, int code) {
    if (d && d->mpi) MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

int hft_dist_rank(const hft_dist *d) {
    return d ? d->rank : 0;
}
int hft_dist_world(const hft_dist *d) {
    return d ? d->size : 1;
}
int hft_dist_local_rank(const hft_dist *d) {
    return d ? d->local_rank : 0;
}
int hft_dist_local_world(const hft_dist *d) {
    return d ? d->local_size : 1;
}
bool hft_dist_error_shared(const hft_dist *d) {
    return d && d->shared_error;
}

void hft_dist_set_timeout(hft_dist *d, double seconds) {
    if (seconds > 0) d->timeout = seconds;
}
double hft_dist_timeout(const hft_dist *d) {
    return d->timeout;
}

/* ---------------------------------------------------------------- small collectives */

static MPI_Op mpi_op(hft_dist_op op) {
    return op == HFT_DIST_MAX ? MPI_MAX : op == HFT_DIST_MIN ? MPI_MIN : MPI_SUM;
}

hft_status hft_dist_allreduce_f64(hft_dist *d, double *values, int n, hft_dist_op op, const char *what) {
    if (d->size == 1) return HFT_OK;
    MPI_Request req;
    int rc = MPI_Iallreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, mpi_op(op), d->world, &req);
    return rc != MPI_SUCCESS ? dist_mpi_error(d, rc, what) : dist_wait(d, &req, 1, what);
}

hft_status hft_dist_bcast(hft_dist *d, void *buf, size_t bytes, int root, const char *what) {
    if (d->size == 1) return HFT_OK;
    char *p = buf;
    while (bytes > 0) { /* MPI counts are ints */
        int chunk = bytes > (size_t)1 << 30 ? 1 << 30 : (int)bytes;
        MPI_Request req;
        int rc = MPI_Ibcast(p, chunk, MPI_BYTE, root, d->world, &req);
        if (rc != MPI_SUCCESS) return dist_mpi_error(d, rc, what);
        HFT_TRY(dist_wait(d, &req, 1, what));
        p += chunk;
        bytes -= (size_t)chunk;
    }
    return HFT_OK;
}

hft_status hft_dist_allgather(hft_dist *d, const void *mine, void *all, size_t bytes_each, const char *what) {
    if (d->size == 1) {
        memmove(all, mine, bytes_each);
        return HFT_OK;
    }
    MPI_Request req;
    int rc = MPI_Iallgather(mine, (int)bytes_each, MPI_BYTE, all, (int)bytes_each, MPI_BYTE, d->world, &req);
    return rc != MPI_SUCCESS ? dist_mpi_error(d, rc, what) : dist_wait(d, &req, 1, what);
}

hft_status hft_dist_gather(hft_dist *d, const void *mine, size_t my_bytes, void *all, int root,
                           const char *what) {
    if (d->size == 1) {
        memmove(all, mine, my_bytes);
        return HFT_OK;
    }
    int64_t *sizes = malloc(sizeof(int64_t) * (size_t)d->size), me = (int64_t)my_bytes;
    if (!sizes) return hft_error(HFT_ENOMEM, "out of memory");
    hft_status st = hft_dist_allgather(d, &me, sizes, sizeof me, what);
    /* point to point in chunks of at most 1 GiB (MPI counts are ints), a wave of requests at a time */
    enum { CHUNK = 1 << 30 };
    MPI_Request reqs[DIST_MAX_REQUESTS];
    int n = 0;
    char *at = all;
    for (int r = 0; r < d->size && st == HFT_OK; r++) {
        const char *src = r == d->rank ? mine : NULL;
        for (int64_t off = 0; off < sizes[r] && st == HFT_OK; off += CHUNK) {
            int len = sizes[r] - off < CHUNK ? (int)(sizes[r] - off) : CHUNK;
            int rc = MPI_SUCCESS;
            if (d->rank == root && r == root)
                memmove(at + off, src + off, (size_t)len);
            else if (d->rank == root)
                rc = MPI_Irecv(at + off, len, MPI_BYTE, r, 17, d->world, &reqs[n++]);
            else if (r == d->rank)
                rc = MPI_Isend(src + off, len, MPI_BYTE, root, 17, d->world, &reqs[n++]);
            if (rc != MPI_SUCCESS) st = dist_mpi_error(d, rc, what);
            if (st == HFT_OK && n == DIST_MAX_REQUESTS) {
                st = dist_wait(d, reqs, n, what);
                n = 0;
            }
        }
        if (d->rank == root) at += sizes[r];
    }
    if (st == HFT_OK && n) st = dist_wait(d, reqs, n, what);
    free(sizes);
    return st;
}

/* The first line where a and b differ, each copied into its buffer ("(none)" past the end). */
static void first_difference(const char *a, const char *b, char *la, char *lb, size_t size) {
    while (*a && *b) {
        const char *ea = strchr(a, '\n'), *eb = strchr(b, '\n');
        size_t na = ea ? (size_t)(ea - a) : strlen(a), nb = eb ? (size_t)(eb - b) : strlen(b);
        if (na != nb || memcmp(a, b, na) != 0) break;
        a += na + (ea != NULL);
        b += nb + (eb != NULL);
    }
    a += strspn(a, " \t");
    b += strspn(b, " \t");
    snprintf(la, size, "%.*s", (int)strcspn(a, "\n"), *a ? a : "(nothing)");
    snprintf(lb, size, "%.*s", (int)strcspn(b, "\n"), *b ? b : "(nothing)");
}

hft_status hft_dist_agree(hft_dist *d, const char *what, const char *text) {
    if (d->size == 1) return HFT_OK;
    int64_t len = d->rank == 0 ? (int64_t)strlen(text) + 1 : 0;
    HFT_TRY(hft_dist_bcast(d, &len, sizeof len, 0, what));
    char *ref = malloc((size_t)len);
    if (!ref) return hft_error(HFT_ENOMEM, "out of memory");
    if (d->rank == 0) memcpy(ref, text, (size_t)len);
    hft_status st = hft_dist_bcast(d, ref, (size_t)len, 0, what);
    double first_bad = strcmp(ref, text) == 0 ? (double)d->size : (double)d->rank;
    if (st == HFT_OK) st = hft_dist_allreduce_f64(d, &first_bad, 1, HFT_DIST_MIN, what);
    if (st != HFT_OK || first_bad >= d->size) {
        free(ref);
        return st;
    }
    int bad = (int)first_bad;
    char msg[1200] = "";
    if (d->rank == bad) {
        char l0[500], l1[500];
        first_difference(ref, text, l0, l1, sizeof l0);
        snprintf(msg, sizeof msg, "rank %d's %s differs from rank 0's: rank 0 has '%s', rank %d has '%s'",
                 bad, what, l0, bad, l1);
    }
    free(ref);
    HFT_TRY(hft_dist_bcast(d, msg, sizeof msg, bad, what));
    d->shared_error = true;
    return hft_error(HFT_EINVAL, "%s", msg);
}

hft_status hft_dist_bcast_params(hft_dist *d, hft_paramset *ps) {
    if (d->size == 1) return HFT_OK;
    for (int i = 0; i < hft_paramset_count(ps); i++) {
        hft_param *p = hft_paramset_get(ps, i);
        if (p->tags & HFT_PARAM_FROZEN) continue;
        char what[300];
        snprintf(what, sizeof what, "broadcasting %s from rank 0", p->name);
        if (p->value->device.type == HFT_CPU) {
            HFT_TRY(hft_dist_bcast(d, hft_tensor_data(p->value), hft_tensor_nbytes(p->value), 0, what));
        } else { /* a parameter on a GPU goes through a host copy (once, before training) */
            hft_tensor *host = hft_tensor_to(p->value, (hft_device){HFT_CPU, 0});
            hft_status st = host ? hft_dist_bcast(d, hft_tensor_data(host), hft_tensor_nbytes(host), 0, what)
                                 : hft_error_status();
            if (st == HFT_OK) st = hft_tensor_copy(p->value, host);
            hft_tensor_free(host);
            HFT_TRY(st);
        }
        p->value->version++;
    }
    return HFT_OK;
}
