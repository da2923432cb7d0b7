// The attention forward, FlashAttention-2's loop in SIMT f32: one block per (query tile of 64 rows, query
// head, batch row) keeps its Q tile in shared memory and walks the key tiles it can see, holding a running
// max and sum per row and its share of the output tile in registers; no score matrix ever leaves the block.
#ifndef HFT_CUDA_ATTENTION_FWD_CUH
#define HFT_CUDA_ATTENTION_FWD_CUH

#include "kernels/cuda/attention_common.cuh"

// Shared memory of the forward (and dQ) block: the row tiles (Q, and dO for dQ), K and V tiles of BK keys,
// and the probability (or dS) tile stored key-major, [BK][64 + 4].
template <int DMAX, int BK> constexpr size_t attn_fwd_smem_bytes(int row_tiles) {
    return sizeof(float) *
           ((size_t)(row_tiles * ATTN_ROWS + 2 * BK) * (DMAX + 4) + (size_t)BK * (ATTN_ROWS + 4));
}

template <typename T, int DMAX, int BK>
__global__ void __launch_bounds__(ATTN_THREADS, 2) attn_fwd_kernel(attn_params p) {
    constexpr int BQ = ATTN_ROWS, LD = DMAX + 4, LDP = BQ + 4, C = BK / 16, G = DMAX / 64;
    HFT_DYNAMIC_SMEM(float, smem);
    float *Qs = smem, *Ks = Qs + BQ * LD, *Vs = Ks + BK * LD, *Pt = Vs + BK * LD;
    const int tid = threadIdx.x, tr = tid / 16, tc = tid % 16;
    // grid (Hq·B, query tiles), run x fastest: under causal masking the last query tiles see the most keys,
    // so every head's last tile is started first
    const int qt = (int)gridDim.y - 1 - (int)blockIdx.y, h = (int)(blockIdx.x % p.hq),
              b = (int)(blockIdx.x / p.hq);
    const int g = h / p.rep;
    const int i0 = qt * BQ, mq = hft_min(BQ, p.tq - i0), dim4 = (p.dim + 3) & ~3;
    const T *q = (const T *)p.q + b * p.q_sb + i0 * p.q_st + h * p.q_sh;
    const T *k = (const T *)p.k + b * p.k_sb + g * p.k_sh;
    const T *v = (const T *)p.v + b * p.v_sb + g * p.v_sh;
    attn_load_tile<T, DMAX, BQ>(Qs, q, p.q_st, mq, p.dim);

    attn_row rows[4];
    float m[4], l[4], o[4][4 * G];
    HFT_UNROLL
    for (int x = 0; x < 4; x++) {
        rows[x] = attn_row_of(p, b, i0 + tr * 4 + x);
        m[x] = -INFINITY; // running max, in base-2 units of scale·q·k
        l[x] = 0.0f;      // running sum of exp2(score - m), dropped probabilities included (as the CPU)
        HFT_UNROLL
        for (int e = 0; e < 4 * G; e++) o[x][e] = 0.0f;
    }

    const int kend = attn_key_end(p, i0, mq);
    for (int j0 = 0; j0 < kend; j0 += BK) {
        const int nk = hft_min(BK, kend - j0);
        __syncthreads(); // the previous tile's K, V and P are no longer read
        attn_load_tile<T, DMAX, BK>(Ks, k + j0 * p.k_st, p.k_st, nk, p.dim);
        attn_load_tile<T, DMAX, BK>(Vs, v + j0 * p.v_st, p.v_st, nk, p.dim);
        __syncthreads();

        float s[4][C];
        HFT_UNROLL
        for (int x = 0; x < 4; x++) {
            HFT_UNROLL
            for (int c = 0; c < C; c++) s[x][c] = 0.0f;
        }
        attn_dot_tile<C>(s, Qs + tr * 4 * LD, Ks + tc * LD, LD, dim4);
        // keys past kend in this tile are hidden already: past Tk, or past every row's causal limit
        attn_key keys[C];
        HFT_UNROLL
        for (int c = 0; c < C; c++) keys[c] = attn_key_of(p, b, j0 + tc + 16 * c);
        HFT_UNROLL
        for (int x = 0; x < 4; x++) {
            float mx = -INFINITY;
            HFT_UNROLL
            for (int c = 0; c < C; c++) {
                s[x][c] =
                    attn_visible(rows[x], keys[c], j0 + tc + 16 * c) ? s[x][c] * p.scale_log2 : -INFINITY;
                mx = hft_maxf(mx, s[x][c]);
            }
            const float mnew = hft_maxf(m[x], attn_row_max(mx));
            float alpha = 1.0f, sum = 0.0f;
            if (mnew == -INFINITY) { // nothing visible yet: no weight, nothing to rescale
                HFT_UNROLL
                for (int c = 0; c < C; c++) s[x][c] = 0.0f;
            } else {
                alpha = exp2f(m[x] - mnew);
                HFT_UNROLL
                for (int c = 0; c < C; c++) {
                    s[x][c] = exp2f(s[x][c] - mnew);
                    sum += s[x][c];
                }
            }
            sum = attn_row_sum(sum); // outside the branch: every lane of the warp shuffles
            l[x] = l[x] * alpha + sum;
            m[x] = mnew;
            HFT_UNROLL
            for (int e = 0; e < 4 * G; e++) o[x][e] *= alpha;
            if (p.dropout) {
                HFT_UNROLL
                for (int c = 0; c < C; c++)
                    if (s[x][c] != 0.0f)
                        s[x][c] *= attn_drop_factor(p, b, h, i0 + tr * 4 + x, j0 + tc + 16 * c);
            }
        }
        HFT_UNROLL
        for (int c = 0; c < C; c++)
            attn_st4(Pt + (tc + 16 * c) * LDP + tr * 4, s[0][c], s[1][c], s[2][c], s[3][c]);
        __syncthreads();
        attn_outer_tile<G>(o, Pt + tr * 4, LDP, Vs + tc * 4, LD, nk);
    }

    float inv[4];
    HFT_UNROLL
    for (int x = 0; x < 4; x++) inv[x] = m[x] == -INFINITY ? 0.0f : 1.0f / l[x]; // no visible key: zeros
    T *out = (T *)p.o + (((int64_t)b * p.tq + i0) * p.hq + h) * p.dim;
    attn_store_tile<T, G>(out, (int64_t)p.hq * p.dim, o, inv, tr * 4, mq, p.dim, false);
    if (tc == 0) {
        float *lse = p.lse + ((int64_t)b * p.hq + h) * p.tq + i0;
        HFT_UNROLL
        for (int x = 0; x < 4; x++)
            if (tr * 4 + x < mq)
                lse[tr * 4 + x] = m[x] == -INFINITY ? -INFINITY : (m[x] + log2f(l[x])) * ATTN_LN2;
    }
}

#endif
