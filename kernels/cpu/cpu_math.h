/* Branch-free scalar math that the compiler vectorises: exp, tanh, sigmoid, erfc in f32. Each is a few
 * ulp from the correctly rounded value (checked against libm in tests/test_kernels.c), so element-wise
 * results agree with torch's vectorised math within the parity tolerance. f64 uses libm. */
#ifndef HFT_CPU_MATH_H
#define HFT_CPU_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline float bits_as_float(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* exp(x) for x in [-87.5, 88.8]: Cephes range reduction and minimax polynomial; 2^n is applied in two
 * halves so that n = 128 (x just below ln FLT_MAX) stays finite. */
static inline float expf_core(float x) {
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; /* round to nearest, |t| < 2^22 */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t ni = (int32_t)n;
    int32_t n1 = ni / 2;
    int32_t n2 = ni - n1;
    return p * bits_as_float((uint32_t)(n1 + 127) << 23) * bits_as_float((uint32_t)(n2 + 127) << 23);
}

static inline float hft_expf(float x) {
    float xc = x > 88.7228f ? 88.7228f : x;
    xc = xc < -103.972f ? -103.972f : xc;
    xc = x != x ? 0.0f : xc; /* NaN: compute on a harmless value, restored below */
    int tiny = xc < -87.0f;
    float xs = tiny ? xc + 40.0f : xc; /* keep the polynomial's result normal; scale back by e^-40 */
    float r = expf_core(xs);
    r = tiny ? r * 4.24835425529158899e-18f : r;
    r = x < -103.972f ? 0.0f : r;
    r = x > 88.7228f ? INFINITY : r;
    return x != x ? x : r;
}

static inline float hft_sigmoidf(float x) {
    return 1.0f / (1.0f + hft_expf(-x));
}

/* tanh: Cephes' odd polynomial below 0.625, 1 - 2/(e^{2|x|} + 1) above. */
static inline float hft_tanhf(float x) {
    float a = fabsf(x);
    float z = x * x;
    float small =
        ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) *
             z -
         3.33332819422e-1f) *
            z * x +
        x;
    float big = 1.0f - 2.0f / (hft_expf(2.0f * a) + 1.0f);
    big = x < 0.0f ? -big : big;
    return a < 0.625f ? small : big;
}

/* erfc(z) for z >= 0 with relative error below 1.2e-7 (the Chebyshev fit of Numerical Recipes §6.2). */
static inline float hft_erfcf_nonneg(float z) {
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    return t * hft_expf(-z * z + p);
}

/* Φ(x) = (1 + erf(x/√2)) / 2, accurate in relative terms on both tails. */
static inline float hft_normal_cdff(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float c = 0.5f * hft_erfcf_nonneg(z);
    return x < 0.0f ? c : 1.0f - c;
}

static inline double hft_normal_cdf(double x) {
    return 0.5 * erfc(-x * 0.70710678118654752);
}

#define HFT_SQRT_2_OVER_PI 0.79788456080286535588
#define HFT_INV_SQRT_2PI   0.39894228040143267794

#endif
