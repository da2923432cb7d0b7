/* A small test harness: each test file defines TESTS with TEST(name) functions, CHECK failures print
 * where and why, and main runs every test (or those named on the command line) and reports. */
#ifndef HFT_TEST_UTIL_H
#define HFT_TEST_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"

extern int test_failures;
extern const char *test_current;

#define CHECK(cond, ...)                                                                                     \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            test_failures++;                                                                                 \
            fprintf(stderr, "%s:%d: [%s] check failed: %s: ", __FILE__, __LINE__, test_current, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fprintf(stderr, "\n");                                                                           \
        }                                                                                                    \
    } while (0)

#define CHECK_OK(ctx_or_status_expr, ctx)                                                                    \
    CHECK((ctx_or_status_expr) == HFT_OK, "status %d: %s", (int)(ctx_or_status_expr),                        \
          (ctx) ? hft_ctx_error(ctx) : hft_error_message())

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

#define TEST(name) static void name(void)

/* Runs the tests listed in `cases`; argv may name a subset. Returns the process exit code. */
int test_main(int argc, char **argv, const test_case *cases, int n);

/* ---------------------------------------------------------------- helpers */

/* Deterministic pseudo-random values for test inputs (splitmix64 → uniform in [lo, hi)). */
typedef struct test_rng {
    unsigned long long s;
} test_rng;
double test_uniform(test_rng *r, double lo, double hi);
hft_tensor *test_random(test_rng *r, hft_dtype dtype, int ndim, const int64_t *shape, double lo, double hi);

/* Max |a - b| over n values, and whether every element satisfies |a-b| <= atol + rtol·|b|, where atol is
 * scaled by max|b| (a tolerance relative to the reference's magnitude, so near-zero entries do not fail
 * on rounding alone). Prints the worst element on failure. */
int test_close(const char *what, const double *got, const double *want, long n, double rtol,
               double atol_scale);
/* Compares a tensor's values with a reference array. */
int test_tensor_close(const char *what, const hft_tensor *t, const double *want, double rtol,
                      double atol_scale);

#endif
