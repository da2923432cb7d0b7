/* Finite-difference gradient checks (see gradcheck.h). */
#include "tests/gradcheck.h"

#include "tests/test_util.h"

#define GC_EPS  1e-6
#define GC_RTOL 1e-5
#define GC_ATOL 1e-7

static double weighted_sum(const hft_tensor *out, const double *u) {
    long n = (long)hft_tensor_numel(out);
    double *v = malloc(sizeof(double) * (size_t)(n ? n : 1));
    hft_tensor_to_f64(out, v);
    double s = 0;
    for (long i = 0; i < n; i++) s += v[i] * u[i];
    free(v);
    return s;
}

static double eval(hft_ctx *ctx, gradcheck_fn f, hft_tensor **inputs, void *user, const double *u) {
    hft_ctx_reset(ctx);
    bool prev = hft_set_grad_enabled(ctx, false);
    hft_tensor *out = f(ctx, inputs, user);
    hft_set_grad_enabled(ctx, prev);
    if (!out) return NAN;
    return weighted_sum(out, u);
}

int gradcheck(const char *name, gradcheck_fn f, int n_inputs, hft_tensor **inputs, void *user) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    test_rng rng = {12345};
    for (int i = 0; i < n_inputs; i++) hft_tensor_zero_grad(inputs[i]);
    hft_tensor *out = f(ctx, inputs, user);
    if (!out) {
        test_failures++;
        fprintf(stderr, "[%s] gradcheck %s: forward failed: %s\n", test_current, name, hft_ctx_error(ctx));
        hft_ctx_free(ctx);
        return 0;
    }
    long n_out = (long)hft_tensor_numel(out);
    double *u = malloc(sizeof(double) * (size_t)(n_out ? n_out : 1));
    for (long i = 0; i < n_out; i++) u[i] = test_uniform(&rng, -1, 1);
    hft_tensor *ut = hft_tensor_from_data(HFT_F64, out->ndim, out->shape, u);
    hft_tensor *ut_cast = ut;
    if (out->dtype != HFT_F64) {
        test_failures++;
        fprintf(stderr, "[%s] gradcheck %s: output is %s, not f64\n", test_current, name,
                hft_dtype_name(out->dtype));
    }
    hft_status st = hft_backward(ctx, out, ut_cast);
    int ok = 1;
    if (st != HFT_OK) {
        test_failures++;
        fprintf(stderr, "[%s] gradcheck %s: backward failed: %s\n", test_current, name, hft_ctx_error(ctx));
        ok = 0;
    }
    for (int k = 0; ok && k < n_inputs; k++) {
        hft_tensor *x = inputs[k];
        if (!x || !x->requires_grad) continue;
        long n = (long)hft_tensor_numel(x);
        double *ana = calloc((size_t)(n ? n : 1), sizeof(double));
        double *num = calloc((size_t)(n ? n : 1), sizeof(double));
        const hft_tensor *g = hft_tensor_grad(x);
        if (g) hft_tensor_to_f64(g, ana);
        double *xv = (double *)hft_tensor_data(x);
        for (long i = 0; i < n; i++) {
            double v = xv[i];
            double h = GC_EPS * (fabs(v) > 1 ? fabs(v) : 1);
            xv[i] = v + h;
            double fp = eval(ctx, f, inputs, user, u);
            xv[i] = v - h;
            double fm = eval(ctx, f, inputs, user, u);
            xv[i] = v;
            num[i] = (fp - fm) / (2 * h);
        }
        char what[160];
        snprintf(what, sizeof what, "gradcheck %s: d/d input %d", name, k);
        long worst = -1;
        double worst_excess = 0;
        for (long i = 0; i < n; i++) {
            double excess = fabs(num[i] - ana[i]) - (GC_ATOL + GC_RTOL * fabs(num[i]));
            if (!(excess <= 0) && (worst < 0 || excess > worst_excess)) {
                worst = i;
                worst_excess = excess;
            }
        }
        if (worst >= 0) {
            test_failures++;
            ok = 0;
            fprintf(stderr, "[%s] %s: element %ld: analytic %.10g, numeric %.10g\n", test_current, what,
                    worst, ana[worst], num[worst]);
        }
        free(ana);
        free(num);
    }
    hft_tensor_free(ut);
    free(u);
    hft_ctx_free(ctx);
    return ok;
}
