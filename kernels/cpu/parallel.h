/* Parallel loops that cost nothing when the work is small. An OpenMP region whose `if` clause is false
 * still enters libgomp, which mallocs (and frees) a one-thread team every time, and a steady training
 * step must allocate nothing; so kernels hand a range function to these runners, which call it inline
 * for small work and otherwise split [0, n) over the pool. Which index runs on which thread never changes
 * a result: every kernel's partition of work is fixed by its sizes alone. */
#ifndef HFT_CPU_PARALLEL_H
#define HFT_CPU_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*hft_range_fn)(int64_t begin, int64_t end, void *job);

/* fn over [0, n): one contiguous range per thread when `parallel`, else fn(0, n, job) inline. */
void hft_parallel_range(int64_t n, bool parallel, hft_range_fn fn, void *job);
/* fn(i, i + 1, job) for each i, dealt round-robin (balances tasks of uneven cost). */
void hft_parallel_tasks(int64_t n, bool parallel, hft_range_fn fn, void *job);

#endif
