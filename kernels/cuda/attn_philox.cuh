// Philox 4x32-10 on the device for attention dropout: the twin of kernels/cpu/philox.h (philox4x32_10,
// philox_block), so that the GPU keeps and drops exactly the probabilities the CPU does. Element e of
// sample s of the stream (seed, step, micro_step, site) is lane e % 4 of the block e / 4, drawn from
// counter (block, s, step, site << 16 | micro_step) under key (seed_lo, seed_hi ^ (block >> 32)).
#ifndef HFT_CUDA_ATTN_PHILOX_CUH
#define HFT_CUDA_ATTN_PHILOX_CUH

#include "kernels/cuda/compat.cuh"

// A dropout stream as the kernels carry it (hft_rng_key split into 32-bit words).
struct attn_rng {
    uint32_t seed_lo, seed_hi, step, site_micro; // site_micro = site << 16 | micro_step
};

// Word `lane` (0..3) of Philox 4x32-10 on (key, counter). The lane is picked with selects, not by indexing
// a local array, so the four words stay in registers.
HFT_DEVICE uint32_t attn_philox_word(uint32_t k0, uint32_t k1, uint32_t c0, uint32_t c1, uint32_t c2,
                                     uint32_t c3, unsigned lane) {
    HFT_UNROLL
    for (int round = 0; round < 10; round++) {
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
    return lane == 0 ? c0 : lane == 1 ? c1 : lane == 2 ? c2 : c3;
}

// The random word of element `elem` of `sample` (philox_block's layout).
HFT_DEVICE uint32_t attn_philox_elem(const attn_rng &r, int64_t sample, uint64_t elem) {
    uint64_t block = elem >> 2;
    return attn_philox_word(r.seed_lo, r.seed_hi ^ (uint32_t)(block >> 32), (uint32_t)block, (uint32_t)sample,
                            r.step, r.site_micro, (unsigned)(elem & 3));
}

// hft_u32_to_unit: a uniform float in [0, 1) from the top 24 bits (exact in f32, as on the CPU).
HFT_DEVICE float attn_u32_to_unit(uint32_t x) {
    return (float)(x >> 8) * (1.0f / 16777216.0f);
}

#endif
