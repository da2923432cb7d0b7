// Philox 4x32-10 on the device: the twin of kernels/cpu/philox.h, word for word, so that a dropout mask
// drawn here is bit-identical to the CPU's for the same key, sample and offset (a run that moves between
// CPU and GPU, or recomputes on either, sees the same mask). Dropout and attention dropout draw through
// hft_philox_block or hft_philox_word.
#ifndef HFT_CUDA_PHILOX_CUH
#define HFT_CUDA_PHILOX_CUH

#include "kernels/cuda/compat.cuh"
#include "kernels/kernels.h"

HFT_DEVICE void hft_philox4x32_10(const uint32_t key_in[2], const uint32_t ctr_in[4], uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    HFT_UNROLL
    for (int round = 0; round < 10; round++) {
        // the high and low words of the 32x32 → 64-bit products, as (uint64_t)a * b splits them
        uint32_t hi0 = __umulhi(0xD2511F53u, c0), lo0 = 0xD2511F53u * c0;
        uint32_t hi1 = __umulhi(0xCD9E8D57u, c2), lo1 = 0xCD9E8D57u * c2;
        uint32_t n0 = hi1 ^ c1 ^ k0;
        uint32_t n2 = hi0 ^ c3 ^ k1;
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

// The four random words for elements 4·block .. 4·block+3 of `sample` in the stream `k`: counter
// (block, sample, step, site << 16 | micro_step), the block's high bits folded into the key (hft_rng_key
// in kernels.h; philox_block in kernels/cpu/philox.h).
HFT_DEVICE void hft_philox_block(const hft_rng_key &k, int64_t sample, uint64_t block, uint32_t out[4]) {
    uint32_t key[2] = {(uint32_t)k.seed, (uint32_t)(k.seed >> 32) ^ (uint32_t)(block >> 32)};
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)sample, k.step, ((uint32_t)k.site << 16) | k.micro_step};
    hft_philox4x32_10(key, ctr, out);
}

// Only the random word of element `elem` of `sample`: the lane is picked with selects rather than by indexing
// a local array, so the four words stay in registers (attention draws one word per probability).
HFT_DEVICE uint32_t hft_philox_word(const hft_rng_key &k, int64_t sample, uint64_t elem) {
    uint64_t block = elem >> 2;
    uint32_t key[2] = {(uint32_t)k.seed, (uint32_t)(k.seed >> 32) ^ (uint32_t)(block >> 32)};
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)sample, k.step, ((uint32_t)k.site << 16) | k.micro_step};
    uint32_t r[4];
    hft_philox4x32_10(key, ctr, r);
    unsigned lane = (unsigned)(elem & 3);
    return lane == 0 ? r[0] : lane == 1 ? r[1] : lane == 2 ? r[2] : r[3];
}

// Uniform float in [0, 1) from the top 24 bits (hft_u32_to_unit): exact, so the comparison with p is too.
HFT_DEVICE float hft_philox_unit(uint32_t x) {
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

// Whether element `elem` of `sample` is kept for dropout probability p (philox_keep).
HFT_DEVICE bool hft_philox_keep(const hft_rng_key &k, int64_t sample, uint64_t elem, float p) {
    uint32_t r[4];
    hft_philox_block(k, sample, elem >> 2, r);
    return hft_philox_unit(r[elem & 3]) >= p;
}

#endif
