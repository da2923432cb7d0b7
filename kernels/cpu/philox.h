/* Philox 4x32-10 as an inline function for the kernels' inner loops. */
#ifndef HFT_PHILOX_H
#define HFT_PHILOX_H

#include <stdint.h>

#include "kernels/kernels.h"

static inline void philox4x32_10(const uint32_t key_in[2], const uint32_t ctr_in[4], uint32_t out[4]) {
    uint32_t c0 = ctr_in[0], c1 = ctr_in[1], c2 = ctr_in[2], c3 = ctr_in[3];
    uint32_t k0 = key_in[0], k1 = key_in[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
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

/* The four random words for elements 4·block .. 4·block+3 of `sample` in the stream `key` (the layout
 * of hft_rng_key in kernels.h: counter (block, sample, step, site << 16 | micro_step); blocks beyond
 * 2^32 fold their high bits into the key). Dropout and attention dropout both draw through here. */
static inline void philox_block(const hft_rng_key *k, int64_t sample, uint64_t block, uint32_t out[4]) {
    uint32_t key[2] = {(uint32_t)k->seed, (uint32_t)(k->seed >> 32) ^ (uint32_t)(block >> 32)};
    uint32_t ctr[4] = {(uint32_t)block, (uint32_t)sample, k->step, ((uint32_t)k->site << 16) | k->micro_step};
    philox4x32_10(key, ctr, out);
}

/* Keep-mask value of element `elem` of `sample` for dropout probability p: 1 keeps, 0 drops. */
static inline int philox_keep(const hft_rng_key *k, int64_t sample, uint64_t elem, float p) {
    uint32_t r[4];
    philox_block(k, sample, elem >> 2, r);
    return hft_u32_to_unit(r[elem & 3]) >= p;
}

#endif
