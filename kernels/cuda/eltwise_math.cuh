// The element-wise maps' math on the device: kernels/cpu/cpu_math.h's f32 routines (Cephes exp and tanh,
// the Numerical Recipes erfc behind Φ) ported operation for operation, and every hft_map_op written as
// map_impl.h writes it for f32. Using the CPU's own approximations rather than CUDA's expf / tanhf keeps the
// two backends within an ulp or two of each other (nvcc may fuse a multiply and an add where the CPU
// rounds twice), so a model trained on either gives the same numbers to the last few bits.
#ifndef HFT_CUDA_ELTWISE_MATH_CUH
#define HFT_CUDA_ELTWISE_MATH_CUH

#include "kernels/cuda/cuda_internal.cuh"

namespace {

// Internal op codes past the table's: pow and its backward with exponent 2, which the CPU computes as a
// product (map_square, map_square_bwd). The host picks them as the CPU does (alpha == 2.0 in double).
constexpr int ELT_MAP_SQUARE = HFT_MAP_OP_COUNT;
constexpr int ELT_MAP_SQUARE_BWD = HFT_MAP_OP_COUNT + 1;

constexpr float ELT_SQRT_2_OVER_PI = 0.79788456080286535588f;
constexpr float ELT_INV_SQRT_2PI = 0.39894228040143267794f;

// exp(x) for x in [-87.5, 88.8]: range reduction and minimax polynomial, 2^n applied in two halves so that
// n = 128 stays finite (cpu_math.h: expf_core).
HFT_DEVICE float elt_expf_core(float x) {
    float t = x * 1.44269504088896341f;
    float n = (t + 12582912.0f) - 12582912.0f; // round to nearest, |t| < 2^22
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int ni = (int)n;
    int n1 = ni / 2;
    int n2 = ni - n1;
    return p * __uint_as_float((unsigned)(n1 + 127) << 23) * __uint_as_float((unsigned)(n2 + 127) << 23);
}

// cpu_math.h: hft_expf (NaN kept, overflow to inf, underflow through e^-40 scaling, then to 0).
HFT_DEVICE float elt_expf(float x) {
    float xc = x > 88.7228f ? 88.7228f : x;
    xc = xc < -103.972f ? -103.972f : xc;
    xc = x != x ? 0.0f : xc;
    bool tiny = xc < -87.0f;
    float xs = tiny ? xc + 40.0f : xc;
    float r = elt_expf_core(xs);
    r = tiny ? r * 4.24835425529158899e-18f : r;
    r = x < -103.972f ? 0.0f : r;
    r = x > 88.7228f ? __uint_as_float(0x7f800000u) : r;
    return x != x ? x : r;
}

HFT_DEVICE float elt_sigmoidf(float x) {
    return 1.0f / (1.0f + elt_expf(-x));
}

// tanh: Cephes' odd polynomial below 0.625, 1 - 2/(e^{2|x|} + 1) above.
HFT_DEVICE float elt_tanhf(float x) {
    float a = fabsf(x);
    float z = x * x;
    float small =
        ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z + 1.33314422036e-1f) *
             z -
         3.33332819422e-1f) *
            z * x +
        x;
    float big = 1.0f - 2.0f / (elt_expf(2.0f * a) + 1.0f);
    big = x < 0.0f ? -big : big;
    return a < 0.625f ? small : big;
}

// erfc(z) for z >= 0 (Numerical Recipes §6.2's Chebyshev fit, relative error below 1.2e-7).
HFT_DEVICE float elt_erfcf_nonneg(float z) {
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
    return t * elt_expf(-z * z + p);
}

// Φ(x) = (1 + erf(x/√2)) / 2, accurate in relative terms on both tails.
HFT_DEVICE float elt_normal_cdff(float x) {
    float z = fabsf(x) * 0.70710678118654752f;
    float c = 0.5f * elt_erfcf_nonneg(z);
    return x < 0.0f ? c : 1.0f - c;
}

HFT_DEVICE float elt_gelu_tanh(float x) {
    return 0.5f * x * (1.0f + elt_tanhf(ELT_SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
}

// One element of a map: a, b, c are in[0..2] (unused ones are 0), alpha is the op's scalar in f32 as the
// CPU rounds it. The op is uniform over a launch, so the switch costs a predictable branch per element.
HFT_DEVICE float elt_map_apply(int op, float a, float b, float c, float alpha) {
    switch (op) {
    case HFT_MAP_ADD:
        return a + b;
    case HFT_MAP_SUB:
        return a - b;
    case HFT_MAP_MUL:
        return a * b;
    case HFT_MAP_DIV:
        return a / b;
    case HFT_MAP_COPY:
        return a;
    case HFT_MAP_SCALE:
        return alpha * a;
    case HFT_MAP_NEG:
        return -a;
    case HFT_MAP_EXP:
        return elt_expf(a);
    case HFT_MAP_LOG:
        return logf(a);
    case HFT_MAP_SQRT:
        return sqrtf(a);
    case HFT_MAP_POW:
        return powf(a, alpha);
    case ELT_MAP_SQUARE:
        return a * a;
    case HFT_MAP_RELU:
        return a < 0.0f ? 0.0f : a;
    case HFT_MAP_GELU_TANH:
        return elt_gelu_tanh(a);
    case HFT_MAP_GELU_ERF:
        return a * elt_normal_cdff(a);
    case HFT_MAP_SILU:
        return a * elt_sigmoidf(a);
    case HFT_MAP_TANH:
        return elt_tanhf(a);
    case HFT_MAP_SIGMOID:
        return elt_sigmoidf(a);
    // backward: a = upstream gradient, b = the forward input x or output y, c = a third operand
    case HFT_MAP_EXP_BWD_Y:
        return a * b;
    case HFT_MAP_LOG_BWD_X:
        return a / b;
    case HFT_MAP_SQRT_BWD_Y:
        return a / (2.0f * b);
    case HFT_MAP_POW_BWD_X:
        return a * alpha * powf(b, alpha - 1.0f);
    case ELT_MAP_SQUARE_BWD:
        return a * 2.0f * b;
    case HFT_MAP_RELU_BWD_X:
        return b > 0.0f ? a : 0.0f;
    case HFT_MAP_GELU_TANH_BWD_X: {
        const float k = ELT_SQRT_2_OVER_PI, k3 = 0.044715f;
        float t = elt_tanhf(k * (b + k3 * b * b * b));
        float d = 0.5f * (1.0f + t) + 0.5f * b * (1.0f - t * t) * k * (1.0f + 3.0f * k3 * b * b);
        return a * d;
    }
    case HFT_MAP_GELU_ERF_BWD_X: {
        float d = elt_normal_cdff(b) + b * ELT_INV_SQRT_2PI * elt_expf(-0.5f * b * b);
        return a * d;
    }
    case HFT_MAP_SILU_BWD_X: {
        float s = elt_sigmoidf(b);
        return a * s * (1.0f + b * (1.0f - s));
    }
    case HFT_MAP_TANH_BWD_Y:
        return a * (1.0f - b * b);
    case HFT_MAP_SIGMOID_BWD_Y:
        return a * b * (1.0f - b);
    case HFT_MAP_DIV_BWD_B:
        return -a * b / c;
    default:
        return 0.0f; // not reached: the host refuses unknown ops
    }
}

} // namespace

#endif
