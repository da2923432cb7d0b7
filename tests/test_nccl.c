/* The NCCL communicator against its CPU twin: the same buffers summed by NCCL on GPU memory and by MPI on
 * host memory must agree (exactly for two ranks: a + b rounds once either way), for the all-reduce of
 * gradient buckets and ZeRO-1's reduce to a range's owner and broadcast from it. One process uses one GPU;
 * under `mpirun -np N` each rank takes its local rank's GPU. Without the NCCL module, a GPU or enough GPUs
 * the test is skipped (exit 77) with the reason. */
#include <cuda_runtime.h>

#include "distributed/dist.h"
#include "tests/test_util.h"

#define SKIP 77

static float value(int64_t i, int rank) {
    return (float)((i * 7919 + rank * 104729) % 1000) * 1e-3f - 0.5f;
}

/* One collective (0 all-reduce, 1 reduce, 2 broadcast; root the last rank) of n values by NCCL on the GPU
 * and by MPI on the host; 1 when they differ beyond the tolerance. */
static int compare(hft_dist *d, hft_comm *nccl, hft_comm *mpi, int kind, const char *name, int64_t n) {
    int rank = hft_dist_rank(d), world = hft_dist_world(d), root = world - 1;
    float *host = malloc(sizeof *host * (size_t)n), *back = malloc(sizeof *back * (size_t)n), *dev = NULL;
    for (int64_t i = 0; i < n; i++) host[i] = value(i, rank);
    if (cudaMalloc((void **)&dev, sizeof *dev * (size_t)n) != cudaSuccess ||
        cudaMemcpy(dev, host, sizeof *dev * (size_t)n, cudaMemcpyHostToDevice) != cudaSuccess) {
        printf("FAIL: rank %d: cudaMalloc/cudaMemcpy\n", rank);
        hft_dist_abort(d, 1);
    }
    hft_status st = kind == 0   ? hft_comm_allreduce_start(nccl, dev, n, HFT_F32)
                    : kind == 1 ? hft_comm_reduce_start(nccl, dev, n, HFT_F32, root)
                                : hft_comm_bcast_start(nccl, dev, n, HFT_F32, root);
    if (st == HFT_OK) st = hft_comm_wait(nccl, "nccl");
    if (st == HFT_OK)
        st = kind == 0   ? hft_comm_allreduce_start(mpi, host, n, HFT_F32)
             : kind == 1 ? hft_comm_reduce_start(mpi, host, n, HFT_F32, root)
                         : hft_comm_bcast_start(mpi, host, n, HFT_F32, root);
    if (st == HFT_OK) st = hft_comm_wait(mpi, "mpi");
    if (st != HFT_OK) {
        printf("FAIL: rank %d: %s: %s\n", rank, name, hft_error_message());
        hft_dist_abort(d, 1);
    }
    cudaMemcpy(back, dev, sizeof *back * (size_t)n, cudaMemcpyDeviceToHost);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) { /* a reduce leaves the other ranks' buffers as they were, in both */
        double e = fabs((double)back[i] - (double)host[i]);
        if (e > worst) worst = e;
    }
    double tol = world <= 2 || kind == 2 ? 0 : 1e-6 * world; /* beyond two ranks the sum orders may differ */
    if (rank == 0)
        printf("%s: NCCL %s of %lld f32 over %d rank%s = MPI's on the host (max |diff| %g)\n",
               worst > tol ? "FAIL" : "ok", name, (long long)n, world, world == 1 ? "" : "s", worst);
    cudaFree(dev);
    free(host), free(back);
    return worst > tol;
}

int main(int argc, char **argv) {
    const char *module = argc > 1 ? argv[1] : "build/libhft_nccl.so";
    hft_dist *d = NULL;
    if (hft_runtime_init() != HFT_OK || hft_dist_init(&d) != HFT_OK) {
        printf("FAIL: %s\n", hft_error_message());
        return 1;
    }
    int rank = hft_dist_rank(d);
    hft_comm *nccl = NULL, *mpi = NULL;
    hft_status st = hft_comm_nccl(d, module, hft_dist_local_rank(d), &nccl);
    if (st == HFT_EUNSUPPORTED) {
        printf("skipped: %s\n", hft_error_message());
        hft_dist_finalize(d);
        return SKIP;
    }
    if (st != HFT_OK || hft_comm_mpi(d, &mpi) != HFT_OK) {
        printf("FAIL: rank %d: %s\n", rank, hft_error_message());
        hft_dist_abort(d, 1);
    }
    int bad = 0;
    const int64_t sizes[] = {1, 1000003, 25 << 18}; /* odd, and a 25 MiB gradient bucket */
    static const char *const kinds[] = {"all-reduce", "reduce to the last rank",
                                        "broadcast from the last rank"};
    for (int kind = 0; kind < 3; kind++)
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++)
            bad |= compare(d, nccl, mpi, kind, kinds[kind], sizes[k]);
    if (hft_comm_allreduce_start(nccl, (float[]){1}, 1, HFT_F32) == HFT_OK) {
        printf("FAIL: NCCL took a host buffer\n");
        bad = 1;
    }
    hft_comm_free(nccl);
    hft_comm_free(mpi);
    hft_dist_finalize(d);
    return bad;
}
