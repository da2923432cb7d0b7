/* Shared by the benchmarks: a monotonic clock, medians over repeats, peak RSS, and running a peer
 * (PyTorch) script in the same invocation so the ratio printed is from one run on one machine. */
#ifndef HFT_BENCH_UTIL_H
#define HFT_BENCH_UTIL_H

#include <stddef.h>

double bench_now(void);
/* Median of the fastest-half-insensitive kind: runs fn `reps` times after `warmup` runs, returns the
 * median seconds. */
double bench_median(void (*fn)(void *), void *arg, int warmup, int reps);
size_t bench_peak_rss_bytes(void);
/* Runs `bench/peers/<script>` with the Python in $HFT_PYTHON (or /root/hft-ref/bin/python, or python3)
 * and the given arguments, with OMP_NUM_THREADS set to `threads`; returns the number it prints on its last
 * line starting with "result ", or a negative value (and prints why) when no peer could run. */
double bench_run_peer(const char *script, const char *args, int threads);
/* The same for a peer printing several numbers on its "result " line: fills up to n of them and returns how
 * many it read (<= 0 when no peer ran). */
int bench_run_peer_values(const char *script, const char *args, int threads, double *values, int n);

#endif
