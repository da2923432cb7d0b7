/* All-reduce of GPT-2 124M's f32 gradients (124,439,808 values, 498 MB) over the ranks of this machine:
 * hft's communicator in 25 MiB buckets (what gradient sync sends) against one raw MPI_Allreduce of the
 * whole buffer. Started without mpirun, it runs itself under `mpirun -np 2`. Bandwidths as NCCL's tests
 * print them: algorithm bandwidth = bytes / time, bus bandwidth = that × 2(n−1)/n. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "distributed/dist.h"

enum { REPS = 5 };
static const int64_t N = 124439808;
static const int64_t BUCKET = (25 << 20) / 4;

static double slowest(double t) { /* a collective takes as long as its slowest rank */
    MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return t;
}

static int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, by_value);
    return t[n / 2];
}

int main(int argc, char **argv) {
    (void)argc;
    if (!hft_dist_launched()) {
        execlp("mpirun", "mpirun", "-np", "2", argv[0], (char *)NULL);
        perror("bench_allreduce: mpirun");
        return 1;
    }
    hft_dist *d = NULL;
    hft_comm *c = NULL;
    if (hft_runtime_init() != HFT_OK || hft_dist_init(&d) != HFT_OK || hft_comm_mpi(d, &c) != HFT_OK) {
        fprintf(stderr, "bench_allreduce: %s\n", hft_error_message());
        return 1;
    }
    int rank = hft_dist_rank(d), world = hft_dist_world(d);
    float *buf = malloc(sizeof *buf * (size_t)N);
    if (!buf) return 1;
    for (int64_t i = 0; i < N; i++) buf[i] = (float)(rank + 1) * 1e-3f;
    double raw[REPS], ours[REPS];
    for (int rep = 0; rep < REPS + 1; rep++) { /* the first of each is a warm-up */
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = bench_now();
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)N, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = slowest(bench_now() - t0);
        if (rep) raw[rep - 1] = t;
        MPI_Barrier(MPI_COMM_WORLD);
        t0 = bench_now();
        for (int64_t off = 0; off < N; off += BUCKET) {
            int64_t n = N - off < BUCKET ? N - off : BUCKET;
            if (hft_comm_allreduce_start(c, buf + off, n, HFT_F32) != HFT_OK) break;
        }
        if (hft_comm_wait(c, "bench") != HFT_OK) {
            fprintf(stderr, "bench_allreduce: %s\n", hft_error_message());
            return 1;
        }
        t = slowest(bench_now() - t0);
        if (rep) ours[rep - 1] = t;
    }
    if (rank == 0) {
        double bytes = 4.0 * (double)N, factor = 2.0 * (world - 1) / world;
        double tr = median(raw, REPS), to = median(ours, REPS);
        printf("all-reduce of 124M f32 gradients (%.0f MB) over %d ranks on this machine, median of %d\n",
               bytes / 1e6, world, REPS);
        printf("  raw MPI_Allreduce, one buffer   %7.1f ms  algbw %5.2f GB/s  busbw %5.2f GB/s\n", 1e3 * tr,
               bytes / tr / 1e9, factor * bytes / tr / 1e9);
        printf("  hft comm, %3lld buckets of 25 MiB %7.1f ms  algbw %5.2f GB/s  busbw %5.2f GB/s\n",
               (long long)((N + BUCKET - 1) / BUCKET), 1e3 * to, bytes / to / 1e9, factor * bytes / to / 1e9);
        printf("  hft / raw time: %.2f (<= 1: the buckets cost nothing; during training they overlap "
               "backward)\n",
               to / tr);
    }
    free(buf);
    hft_comm_free(c);
    hft_dist_finalize(d);
    return 0;
}
