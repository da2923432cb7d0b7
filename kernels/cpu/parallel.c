/* The parallel-loop runners of parallel.h. */
#include "kernels/cpu/parallel.h"

#include <omp.h>

/* Runs fn(begin, end) on the calling thread with the pool's thread count at 1 meanwhile: OpenBLAS's OpenMP
 * build would otherwise spread a GEMM made here over all threads (mallocing a job table each time), and a
 * nested runner would open a region; inline work stays on one thread. */
static void run_inline(int64_t begin, int64_t end, hft_range_fn fn, void *job) {
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (threads > 1) omp_set_num_threads(1);
    fn(begin, end, job);
    if (threads > 1) omp_set_num_threads(threads);
}

static void run(int64_t n, bool parallel, bool round_robin, hft_range_fn fn, void *job) {
    if (n <= 0) return;
    if (!parallel || n == 1 || omp_in_parallel() || omp_get_max_threads() == 1) {
        run_inline(0, n, fn, job);
        return;
    }
#pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
        if (round_robin) {
            for (int64_t i = t; i < n; i += nt) fn(i, i + 1, job);
        } else {
            int64_t begin = n * t / nt, end = n * (t + 1) / nt;
            if (begin < end) fn(begin, end, job);
        }
    }
}

void hft_parallel_range(int64_t n, bool parallel, hft_range_fn fn, void *job) {
    run(n, parallel, false, fn, job);
}
void hft_parallel_tasks(int64_t n, bool parallel, hft_range_fn fn, void *job) {
    run(n, parallel, true, fn, job);
}
