/* Rounding f32 values to bf16 or f16 precision, kept in f32: what autocast does to the inputs of its
 * low-precision ops (one pass, where going through a bf16 buffer and back would take two). Round to nearest
 * even, as the conversions in dtype.c; NaN stays NaN, and f16 overflows to inf as a cast does. */
#include "kernels/cpu/cpu_internal.h"

#include <string.h>
#ifdef __F16C__
#include <immintrin.h>
#endif

typedef struct round_job {
    hft_dtype low;
    float *dst;
    const float *src;
    int64_t n;
} round_job;

#define ROUND_CHUNK 16384

static void round_chunks(int64_t c0, int64_t c1, void *job) {
    const round_job *j = job;
    for (int64_t c = c0; c < c1; c++) {
        int64_t i0 = c * ROUND_CHUNK, i1 = i0 + ROUND_CHUNK < j->n ? i0 + ROUND_CHUNK : j->n;
        const float *s = j->src;
        float *d = j->dst;
        if (j->low == HFT_BF16) {
            for (int64_t i = i0; i < i1; i++) { /* branch-free, so it vectorises */
                uint32_t u, r;
                memcpy(&u, &s[i], 4);
                uint32_t nan = (u & 0x7fffffffu) > 0x7f800000u;
                r = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
                r = nan ? (u | 0x00400000u) & 0xffff0000u : r;
                memcpy(&d[i], &r, 4);
            }
        } else {
            int64_t i = i0;
#ifdef __F16C__
            for (; i + 8 <= i1; i += 8) {
                __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT);
                _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
            }
#endif
            for (; i < i1; i++) d[i] = hft_f16_to_f32(hft_f32_to_f16(s[i]));
        }
    }
}

static void round_to(hft_dtype low, float *dst, const float *src, int64_t n) {
    round_job j = {low, dst, src, n};
    int64_t chunks = (n + ROUND_CHUNK - 1) / ROUND_CHUNK;
    hft_parallel_range(chunks, chunks > 1, round_chunks, &j);
}

void KFN(cpu_register_round)(hft_kernels *t) {
    t->round_to = round_to;
}
