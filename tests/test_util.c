/* The test harness and comparison helpers (see test_util.h). */
#include "tests/test_util.h"

int test_failures;
const char *test_current = "";

int test_main(int argc, char **argv, const test_case *cases, int n) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "runtime: %s\n", hft_error_message());
        return 1;
    }
    int run = 0;
    for (int i = 0; i < n; i++) {
        if (argc > 1) {
            int wanted = 0;
            for (int a = 1; a < argc; a++) wanted |= strcmp(argv[a], cases[i].name) == 0;
            if (!wanted) continue;
        }
        test_current = cases[i].name;
        int before = test_failures;
        cases[i].fn();
        run++;
        printf("%s %s\n", test_failures == before ? "ok  " : "FAIL", cases[i].name);
    }
    printf("%d tests, %d failed checks\n", run, test_failures);
    return test_failures ? 1 : 0;
}

double test_uniform(test_rng *r, double lo, double hi) {
    unsigned long long z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return lo + (hi - lo) * (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

hft_tensor *test_random(test_rng *r, hft_dtype dtype, int ndim, const int64_t *shape, double lo, double hi) {
    hft_tensor *t = hft_tensor_new(dtype, ndim, shape);
    int64_t n = hft_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        double v = test_uniform(r, lo, hi);
        if (dtype == HFT_F32)
            ((float *)hft_tensor_data(t))[i] = (float)v;
        else if (dtype == HFT_F64)
            ((double *)hft_tensor_data(t))[i] = v;
        else if (dtype == HFT_I64)
            ((int64_t *)hft_tensor_data(t))[i] = (int64_t)floor(v);
        else if (dtype == HFT_I32)
            ((int32_t *)hft_tensor_data(t))[i] = (int32_t)floor(v);
    }
    return t;
}

int test_close(const char *what, const double *got, const double *want, long n, double rtol,
               double atol_scale) {
    double ref_max = 0;
    for (long i = 0; i < n; i++)
        if (fabs(want[i]) > ref_max) ref_max = fabs(want[i]);
    double atol = atol_scale * ref_max;
    long worst = -1;
    double worst_excess = 0, max_err = 0;
    for (long i = 0; i < n; i++) {
        double err;
        int gn = isnan(got[i]), wn = isnan(want[i]);
        if (gn || wn)
            err = gn && wn ? 0 : INFINITY;
        else if (got[i] == want[i])
            err = 0; /* also equal infinities */
        else
            err = fabs(got[i] - want[i]);
        if (err > max_err) max_err = err;
        double excess = err - (atol + rtol * fabs(want[i]));
        if (excess > worst_excess || (worst < 0 && excess > 0)) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst >= 0) {
        test_failures++;
        fprintf(stderr,
                "[%s] %s: %ld values differ beyond rtol %g, atol %g (= %g x max|ref| %g); worst at %ld: got "
                "%.9g, want %.9g; max abs err %g\n",
                test_current, what, n, rtol, atol, atol_scale, ref_max, worst, got[worst], want[worst],
                max_err);
        return 0;
    }
    return 1;
}

int test_tensor_close(const char *what, const hft_tensor *t, const double *want, double rtol,
                      double atol_scale) {
    if (!t) {
        test_failures++;
        fprintf(stderr, "[%s] %s: tensor is NULL\n", test_current, what);
        return 0;
    }
    long n = (long)hft_tensor_numel(t);
    double *got = malloc(sizeof(double) * (size_t)(n ? n : 1));
    hft_tensor_to_f64(t, got);
    int ok = test_close(what, got, want, n, rtol, atol_scale);
    free(got);
    return ok;
}
