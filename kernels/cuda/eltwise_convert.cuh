// Conversions between dtypes, bit for bit as kernels/dtype.c and kernels/cpu/copy.c convert: copy and
// round_to promise the CPU's exact bits, including NaN payloads, which the hardware conversions (canonical
// NaN 0x7fff) do not give. Integer operands go through f64 as the CPU's copy does (load_as_double,
// store_from_double), so an i64 beyond 2^53 rounds the same way on both. They run on the host too (the
// value of a fill is converted once there).
#ifndef HFT_CUDA_ELTWISE_CONVERT_CUH
#define HFT_CUDA_ELTWISE_CONVERT_CUH

#include <string.h>

#include "kernels/cuda/cuda_internal.cuh"

#define ELT_HD __host__ __device__ inline

namespace {

ELT_HD uint32_t elt_f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

ELT_HD float elt_bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

// dtype.c: hft_f32_to_bf16 (round to nearest even, quiet NaN with the sign and high payload kept).
ELT_HD uint16_t elt_f32_to_bf16(float x) {
    uint32_t u = elt_f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

ELT_HD float elt_bf16_to_f32(uint16_t x) {
    return elt_bits_f32((uint32_t)x << 16);
}

// dtype.c: hft_f32_to_f16 (round to nearest even; NaN → sign | 0x7e00; ≥ 65520 → inf; subnormals exact).
ELT_HD uint16_t elt_f32_to_f16(float x) {
    uint32_t u = elt_f32_bits(x);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (a < 0x38800000u) { // subnormal or zero: a·2^24 rounded to an integer, ties to even (exact in f32)
        float f = elt_bits_f32(a) * 16777216.0f;
        uint32_t i = (uint32_t)f;
        float frac = f - (float)i;
        if (frac > 0.5f || (frac == 0.5f && (i & 1u))) i++;
        return (uint16_t)(sign | i);
    }
    uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((rounded >> 13) - ((127u - 15u) << 10)));
}

ELT_HD float elt_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float f = (float)mant * (1.0f / 16777216.0f);
        return sign ? -f : f;
    }
    if (exp == 31) return elt_bits_f32(sign | 0x7f800000u | (mant << 13));
    return elt_bits_f32(sign | ((exp + 127u - 15u) << 23) | (mant << 13));
}

// round.c's rounding kept in f32: the value a bf16 / f16 holds, NaN as that conversion makes it.
ELT_HD float elt_round_bf16(float x) {
    return elt_bf16_to_f32(elt_f32_to_bf16(x));
}
ELT_HD float elt_round_f16(float x) {
    return elt_f16_to_f32(elt_f32_to_f16(x));
}

// Storage of the floating dtypes as the CPU's conversions make it (bit-exact, NaN included).
template <typename T> HFT_DEVICE T elt_store_exact(float x);
template <> HFT_DEVICE float elt_store_exact<float>(float x) {
    return x;
}
template <> HFT_DEVICE hft_bf16_t elt_store_exact<hft_bf16_t>(float x) {
    hft_bf16_t r;
    uint16_t b = elt_f32_to_bf16(x);
    memcpy(&r, &b, 2);
    return r;
}
template <> HFT_DEVICE hft_f16_t elt_store_exact<hft_f16_t>(float x) {
    hft_f16_t r;
    uint16_t b = elt_f32_to_f16(x);
    memcpy(&r, &b, 2);
    return r;
}

// copy.c's load_as_double / store_from_double for the dtypes the CUDA copy takes (f64 excluded).
HFT_DEVICE double elt_load_as_double(hft_dtype dt, const char *p) {
    switch (dt) {
    case HFT_F32:
        return *(const float *)p;
    case HFT_BF16:
        return elt_bf16_to_f32(*(const uint16_t *)p);
    case HFT_F16:
        return elt_f16_to_f32(*(const uint16_t *)p);
    case HFT_I32:
        return *(const int32_t *)p;
    case HFT_I64:
        return (double)*(const int64_t *)p;
    case HFT_U8:
        return *(const uint8_t *)p;
    default:
        return 0;
    }
}

HFT_DEVICE void elt_store_from_double(hft_dtype dt, char *p, double v) {
    switch (dt) {
    case HFT_F32:
        *(float *)p = (float)v;
        break;
    case HFT_BF16:
        *(uint16_t *)p = elt_f32_to_bf16((float)v);
        break;
    case HFT_F16:
        *(uint16_t *)p = elt_f32_to_f16((float)v);
        break;
    case HFT_I32:
        *(int32_t *)p = (int32_t)v;
        break;
    case HFT_I64:
        *(int64_t *)p = (int64_t)v;
        break;
    case HFT_U8:
        *(uint8_t *)p = (uint8_t)v;
        break;
    default:
        break;
    }
}

} // namespace

#endif
