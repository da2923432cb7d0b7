/* Benchmark helpers (see bench_util.h). */
#include "bench/bench_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(void (*fn)(void *), void *arg, int warmup, int reps) {
    for (int i = 0; i < warmup; i++) fn(arg);
    double *t = malloc(sizeof(double) * (size_t)reps);
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now();
        fn(arg);
        t[i] = bench_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp_double);
    double m = t[reps / 2];
    free(t);
    return m;
}

size_t bench_peak_rss_bytes(void) {
    struct rusage u;
    getrusage(RUSAGE_SELF, &u);
    return (size_t)u.ru_maxrss * 1024;
}

int bench_run_peer_values(const char *script, const char *args, int threads, double *values, int n) {
    const char *py = getenv("HFT_PYTHON");
    if (!py || !*py)
        py = access("/root/hft-ref/bin/python", X_OK) == 0 ? "/root/hft-ref/bin/python" : "python3";
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d MKL_NUM_THREADS=%d %s bench/peers/%s %s 2>&1", threads,
             threads, py, script, args);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("  peer %s: could not start %s\n", script, py);
        return -1;
    }
    char line[1024];
    int got = -1;
    char last[1024] = "";
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, "result ", 7) == 0) {
            char *q = line + 7, *end;
            for (got = 0; got < n; got++, q = end) {
                values[got] = strtod(q, &end);
                if (end == q) break;
            }
        } else if (strncmp(line, "skip ", 5) == 0 || strncmp(line, "peer ", 5) == 0)
            printf("  %s", line);
        snprintf(last, sizeof last, "%s", line);
    }
    int rc = pclose(p);
    if (got <= 0) printf("  peer %s skipped (exit %d): %s", script, rc, last[0] ? last : "no output\n");
    return got;
}

double bench_run_peer(const char *script, const char *args, int threads) {
    double v = -1;
    return bench_run_peer_values(script, args, threads, &v, 1) > 0 ? v : -1;
}
