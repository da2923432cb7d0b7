/* Fused scaled-dot-product attention on the CPU, flash-attention-2 style: tiles of query rows × keys,
 * scores by single-threaded GEMMs inside the OpenMP tasks, an online softmax, and a per-thread scratch
 * that grows with the tile sizes only. The dtype bodies are in attention_impl.h. */
#include "kernels/cpu/cpu_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/cpu/philox.h"

/* Query rows per task and keys per tile. A 64 × 256 f32 score tile (64 KiB) and its gradient stay in
 * L2; smaller inputs get tiles of their own size so scratch stays small for tiny checks. */
#define ATTN_BQ 64
#define ATTN_BK 256

static int64_t tile_q(const hft_attn_args *a) {
    return a->tq < ATTN_BQ ? (a->tq > 0 ? a->tq : 1) : ATTN_BQ;
}
static int64_t tile_k(const hft_attn_args *a) {
    return a->tk < ATTN_BK ? (a->tk > 0 ? a->tk : 1) : ATTN_BK;
}

static size_t align64(size_t n) {
    return (n + 63) & ~(size_t)63;
}

/* One thread's scratch: forward S [bq, bk], O [bq, D], running max and sum [bq]; backward P and dP
 * [bq, bk], dQ [bq, D], lse and Δ [bq]; both a dropout row [bk] and its random words [bk + 8]. */
static size_t per_thread_bytes(const hft_attn_args *a, size_t es, bool backward) {
    size_t bq = (size_t)tile_q(a), bk = (size_t)tile_k(a), d = (size_t)a->dim;
    size_t tile = align64(bq * bk * es), rows = align64(bq * es);
    return tile * (backward ? 2 : 1) + align64(bq * d * es) + 2 * rows + align64(bk * es) +
           align64((bk + 8) * sizeof(uint32_t));
}

static int attn_threads(void) {
    int n = hft_threads_get();
    return n < 1 ? 1 : n;
}

static size_t KFN(attn_scratch_bytes)(const hft_attn_args *a, size_t es, bool backward) {
    return (size_t)attn_threads() * per_thread_bytes(a, es, backward);
}

static const int32_t *key_segments(const hft_attn_args *a) {
    return a->k_segments ? a->k_segments : a->q_segments;
}

/* The keys batch row b can see at all, [*lo, *hi): the key mask trims padding at either end (left
 * padding makes the leading keys invisible to every query). */
static void key_span(const hft_attn_args *a, int64_t b, int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = a->tk;
    if (a->key_mask) {
        const uint8_t *km = a->key_mask + b * a->tk;
        while (l < h && !km[l]) l++;
        while (h > l && !km[h - 1]) h--;
    }
    *lo = l;
    *hi = h;
}

/* The segment ids of query rows [i0, i0 + mq) lie in [*mn, *mx]. */
static void query_segment_range(const hft_attn_args *a, int64_t b, int64_t i0, int64_t mq, int32_t *mn,
                                int32_t *mx) {
    *mn = 0;
    *mx = 0;
    if (!a->q_segments) return;
    const int32_t *qs = a->q_segments + b * a->tq + i0;
    int32_t lo = qs[0], hi = qs[0];
    for (int64_t r = 1; r < mq; r++) {
        lo = qs[r] < lo ? qs[r] : lo;
        hi = qs[r] > hi ? qs[r] : hi;
    }
    *mn = lo;
    *mx = hi;
}

enum { BLOCK_HIDDEN = 0, BLOCK_PARTLY = 1, BLOCK_OPEN = 2 };

/* What the key mask and segment ids allow between keys [j0, j0 + nk) and query rows whose ids lie in
 * [qmin, qmax]: hidden (skip the tile), partly (mask element-wise) or open (no mask but causal). */
static int block_visibility(const hft_attn_args *a, int64_t b, int64_t j0, int64_t nk, int32_t qmin,
                            int32_t qmax) {
    bool open = true;
    if (a->key_mask) {
        const uint8_t *km = a->key_mask + b * a->tk + j0;
        int64_t n = 0;
        for (int64_t j = 0; j < nk; j++) n += km[j] != 0;
        if (n == 0) return BLOCK_HIDDEN;
        open = n == nk;
    }
    if (a->q_segments) {
        const int32_t *ks = key_segments(a) + b * a->tk + j0;
        int32_t lo = ks[0], hi = ks[0];
        for (int64_t j = 1; j < nk; j++) {
            lo = ks[j] < lo ? ks[j] : lo;
            hi = ks[j] > hi ? ks[j] : hi;
        }
        if (hi < qmin || lo > qmax) return BLOCK_HIDDEN;
        open = open && lo == hi && qmin == qmax && lo == qmin;
    }
    return open ? BLOCK_OPEN : BLOCK_PARTLY;
}

/* Keys [j0, j0 + n) of row i visible under causal masking: the first *lim of them. */
static int64_t causal_limit(const hft_attn_args *a, int64_t i, int64_t j0, int64_t nk) {
    if (!a->causal) return nk;
    int64_t l = i + (a->tk - a->tq) + 1 - j0;
    return l < 0 ? 0 : l < nk ? l : nk;
}

/* The Philox words of elements [e0, e0 + n) of `sample` (philox_block's layout, so the draw is
 * philox_keep's): one block per four elements, in a loop over independent blocks that GCC vectorises,
 * about 1.4x the speed of drawing element by element. buf holds n + 8 words. */
static const uint32_t *philox_row(const hft_rng_key *k, int64_t sample, uint64_t e0, int64_t n,
                                  uint32_t *buf) {
    const uint64_t blk0 = e0 >> 2;
    const int64_t off = (int64_t)(e0 & 3), nb = (off + n + 3) >> 2;
    for (int64_t b = 0; b < nb; b++) philox_block(k, sample, blk0 + (uint64_t)b, buf + 4 * b);
    return buf + off;
}

#define HFT_TEMPLATE "kernels/cpu/attention_impl.h"
#include "kernels/cpu/instantiate.h"

void KFN(cpu_register_attention)(hft_kernels *t) {
    t->attn_fwd[HFT_F32] = FN2(attn_fwd, f32);
    t->attn_fwd[HFT_F64] = FN2(attn_fwd, f64);
    t->attn_bwd[HFT_F32] = FN2(attn_bwd, f32);
    t->attn_bwd[HFT_F64] = FN2(attn_bwd, f64);
    t->attn_scratch_bytes = KFN(attn_scratch_bytes);
}
