/* Dtype sizes, names and the scalar half-precision conversions (round to nearest even, as torch). */
#include "kernels/kernels.h"

#include <string.h>

size_t hft_dtype_size(hft_dtype dtype) {
    static const size_t sizes[HFT_DTYPE_COUNT] = {4, 8, 2, 2, 4, 8, 1};
    return (unsigned)dtype < HFT_DTYPE_COUNT ? sizes[dtype] : 0;
}

const char *hft_dtype_name(hft_dtype dtype) {
    static const char *names[HFT_DTYPE_COUNT] = {"f32", "f64", "bf16", "f16", "i32", "i64", "u8"};
    return (unsigned)dtype < HFT_DTYPE_COUNT ? names[dtype] : "?";
}

bool hft_dtype_is_float(hft_dtype dtype) {
    return dtype == HFT_F32 || dtype == HFT_F64 || dtype == HFT_BF16 || dtype == HFT_F16;
}

static uint32_t f32_bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t hft_f32_to_bf16(float x) {
    uint32_t u = f32_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float hft_bf16_to_f32(uint16_t x) {
    return bits_f32((uint32_t)x << 16);
}

uint16_t hft_f32_to_f16(float x) {
    uint32_t u = f32_bits(x);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);  /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to inf (>= 65520) */
    if (a < 0x38800000u) {
        /* f16 subnormal or zero: the value is a·2^24 rounded to an integer, ties to even */
        float f = bits_f32(a) * 16777216.0f;
        uint32_t i = (uint32_t)f;
        float frac = f - (float)i;
        if (frac > 0.5f || (frac == 0.5f && (i & 1u))) i++;
        return (uint16_t)(sign | i);
    }
    uint32_t rounded = a + 0xfffu + ((a >> 13) & 1u); /* mantissa to 10 bits, ties to even */
    return (uint16_t)(sign | ((rounded >> 13) - ((127u - 15u) << 10)));
}

float hft_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0) {
        float f = (float)mant * (1.0f / 16777216.0f); /* mant * 2^-24 */
        return sign ? -f : f;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (mant << 13));
    return bits_f32(sign | ((exp + 127u - 15u) << 23) | (mant << 13));
}
