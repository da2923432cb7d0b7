// The attention backward, deterministic (no atomics): P is recomputed from q, k and the forward's lse;
// D_i = rowsum(dO ∘ O) is computed once into scratch. dK and dV come from one block per (key tile of 64,
// key/value head, batch row) that walks every query head of its group and every query tile in a fixed
// order, so a GQA group's gradients are summed in that order too; dQ comes from one block per (query tile
// of 64, query head, batch row) that walks the key tiles.
//
// With Z the dropout factors (1/(1-p) kept, 0 dropped; all 1 without dropout):
//   dV = (P∘Z)ᵀ dO,   dP = dO Vᵀ,   dS = P∘(dP∘Z − D),   dQ = scale · dS K,   dK = scale · dSᵀ Q.
#ifndef HFT_CUDA_ATTENTION_BWD_CUH
#define HFT_CUDA_ATTENTION_BWD_CUH

#include "kernels/cuda/attention_common.cuh"

// D = rowsum(dO ∘ O) for every (batch, query, head) row: one warp per row, lanes over the head dims.
template <typename T> __global__ void __launch_bounds__(ATTN_THREADS) attn_delta_kernel(attn_params p) {
    const int lane = threadIdx.x % 32;
    const int64_t nrows = (int64_t)p.batch * p.tq * p.hq, warps = (int64_t)gridDim.x * (ATTN_THREADS / 32);
    for (int64_t r = (int64_t)blockIdx.x * (ATTN_THREADS / 32) + threadIdx.x / 32; r < nrows; r += warps) {
        const T *o = (const T *)p.o + r * p.dim, *dout = (const T *)p.dout + r * p.dim;
        float s = 0.0f;
        for (int d = lane; d < p.dim; d += 32) s += hft_to_f32(dout[d]) * hft_to_f32(o[d]);
        HFT_UNROLL
        for (int off = 16; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) { // r = (b·Tq + i)·Hq + h → delta[(b·Hq + h)·Tq + i]
            const int64_t h = r % p.hq, bi = r / p.hq, i = bi % p.tq, b = bi / p.tq;
            p.delta[(b * p.hq + h) * p.tq + i] = s;
        }
    }
}

// The probability, its dropout-scaled value and dS of one element, from the base-2 score s2 = scale·log2(e)
// ·q·k, the row's lse in base 2 (L2) and D: P = 0 where hidden or where the row sees no key.
struct attn_grad_elem {
    float pz, ds;
};
HFT_DEVICE attn_grad_elem attn_grad_of(const attn_params &p, bool visible, float s2, float L2, float dp,
                                       float dl, int b, int h, int i, int j) {
    attn_grad_elem r = {0.0f, 0.0f};
    if (!visible || L2 == -INFINITY) return r;
    const float pr = exp2f(s2 - L2);
    float z = 1.0f;
    if (p.dropout && pr != 0.0f) z = attn_drop_factor(p, b, h, i, j);
    r.pz = pr * z;
    r.ds = pr * (dp * z - dl);
    return r;
}

// Shared memory of the dK/dV block: K and V tiles of 64 keys, Q and dO tiles of BQ queries, P∘Z and dS
// stored query-major [BQ][64 + 4], and the BQ rows' lse and D.
template <int DMAX, int BQ> constexpr size_t attn_dkdv_smem_bytes() {
    return sizeof(float) * ((size_t)(2 * ATTN_ROWS + 2 * BQ) * (DMAX + 4) + (size_t)2 * BQ * (ATTN_ROWS + 4) +
                            (size_t)2 * BQ);
}

template <typename T, int DMAX, int BQ>
__global__ void __launch_bounds__(ATTN_THREADS, DMAX <= 64 ? 2 : 1) attn_dkdv_kernel(attn_params p) {
    constexpr int BK = ATTN_ROWS, LD = DMAX + 4, LDK = BK + 4, C = BQ / 16, G = DMAX / 64;
    HFT_DYNAMIC_SMEM(float, smem);
    float *Ks = smem, *Vs = Ks + BK * LD, *Qs = Vs + BK * LD, *dOs = Qs + BQ * LD;
    float *PZ = dOs + BQ * LD, *dS = PZ + BQ * LDK, *Ls = dS + BQ * LDK, *Dls = Ls + BQ;
    const int tid = threadIdx.x, tr = tid / 16, tc = tid % 16;
    // grid (Hkv·B, key tiles): under causal masking the first key tiles see the most queries, and go first
    const int kt = blockIdx.y, g = (int)(blockIdx.x % p.hkv), b = (int)(blockIdx.x / p.hkv);
    const int j0 = kt * BK, nk = hft_min(BK, p.tk - j0), dim4 = (p.dim + 3) & ~3;
    const bool want_dk = p.dk != nullptr, want_dv = p.dv != nullptr;
    attn_load_tile<T, DMAX, BK>(Ks, (const T *)p.k + b * p.k_sb + j0 * p.k_st + g * p.k_sh, p.k_st, nk,
                                p.dim);
    attn_load_tile<T, DMAX, BK>(Vs, (const T *)p.v + b * p.v_sb + j0 * p.v_st + g * p.v_sh, p.v_st, nk,
                                p.dim);

    attn_key keys[4];
    float dk[4][4 * G], dv[4][4 * G];
    HFT_UNROLL
    for (int x = 0; x < 4; x++) {
        keys[x] = attn_key_of(p, b, j0 + tr * 4 + x);
        HFT_UNROLL
        for (int e = 0; e < 4 * G; e++) dk[x][e] = dv[x][e] = 0.0f;
    }

    const int qstart = attn_query_start(p, j0) / BQ * BQ;
    for (int h = g * p.rep; h < (g + 1) * p.rep; h++) {
        for (int i0 = qstart; i0 < p.tq; i0 += BQ) {
            const int mq = hft_min(BQ, p.tq - i0);
            __syncthreads(); // the previous query tile is no longer read
            attn_load_tile<T, DMAX, BQ>(Qs, (const T *)p.q + b * p.q_sb + i0 * p.q_st + h * p.q_sh, p.q_st,
                                        mq, p.dim);
            attn_load_tile<T, DMAX, BQ>(dOs,
                                        (const T *)p.dout + (((int64_t)b * p.tq + i0) * p.hq + h) * p.dim,
                                        (int64_t)p.hq * p.dim, mq, p.dim);
            if (tid < BQ) {
                const int64_t row = ((int64_t)b * p.hq + h) * p.tq + i0 + tid;
                Ls[tid] = tid < mq ? p.lse[row] * ATTN_LOG2E : -INFINITY;
                Dls[tid] = tid < mq ? p.delta[row] : 0.0f;
            }
            __syncthreads();

            float s[4][C], dp[4][C];
            HFT_UNROLL
            for (int x = 0; x < 4; x++) {
                HFT_UNROLL
                for (int c = 0; c < C; c++) s[x][c] = dp[x][c] = 0.0f;
            }
            attn_dot_tile<C>(s, Ks + tr * 4 * LD, Qs + tc * LD, LD, dim4); // Sᵀ: keys × queries
            if (want_dk) attn_dot_tile<C>(dp, Vs + tr * 4 * LD, dOs + tc * LD, LD, dim4);
            HFT_UNROLL
            for (int c = 0; c < C; c++) {
                const int iq = tc + 16 * c, i = i0 + iq;
                const attn_row row = attn_row_of(p, b, i);
                attn_grad_elem e[4];
                HFT_UNROLL
                for (int x = 0; x < 4; x++) {
                    const int j = j0 + tr * 4 + x;
                    e[x] = attn_grad_of(p, attn_visible(row, keys[x], j), s[x][c] * p.scale_log2, Ls[iq],
                                        dp[x][c], Dls[iq], b, h, i, j);
                }
                attn_st4(PZ + iq * LDK + tr * 4, e[0].pz, e[1].pz, e[2].pz, e[3].pz);
                attn_st4(dS + iq * LDK + tr * 4, e[0].ds, e[1].ds, e[2].ds, e[3].ds);
            }
            __syncthreads();
            if (want_dv) attn_outer_tile<G>(dv, PZ + tr * 4, LDK, dOs + tc * 4, LD, mq);
            if (want_dk) attn_outer_tile<G>(dk, dS + tr * 4, LDK, Qs + tc * 4, LD, mq);
        }
    }

    const float one[4] = {1.0f, 1.0f, 1.0f, 1.0f}, sc[4] = {p.scale, p.scale, p.scale, p.scale};
    if (want_dk)
        attn_store_tile<T, G>((T *)p.dk + b * p.dk_sb + j0 * p.dk_st + g * p.dk_sh, p.dk_st, dk, sc, tr * 4,
                              nk, p.dim, p.acc_dk);
    if (want_dv)
        attn_store_tile<T, G>((T *)p.dv + b * p.dv_sb + j0 * p.dv_st + g * p.dv_sh, p.dv_st, dv, one, tr * 4,
                              nk, p.dim, p.acc_dv);
}

// dQ: the forward's walk over key tiles, with dS in place of P and K in place of V. Shared memory as the
// forward's with a second row tile (dO).
template <typename T, int DMAX, int BK>
__global__ void __launch_bounds__(ATTN_THREADS, 2) attn_dq_kernel(attn_params p) {
    constexpr int BQ = ATTN_ROWS, LD = DMAX + 4, LDP = BQ + 4, C = BK / 16, G = DMAX / 64;
    HFT_DYNAMIC_SMEM(float, smem);
    float *Qs = smem, *dOs = Qs + BQ * LD, *Ks = dOs + BQ * LD, *Vs = Ks + BK * LD, *dSt = Vs + BK * LD;
    const int tid = threadIdx.x, tr = tid / 16, tc = tid % 16;
    const int qt = (int)gridDim.y - 1 - (int)blockIdx.y, h = (int)(blockIdx.x % p.hq),
              b = (int)(blockIdx.x / p.hq);
    const int g = h / p.rep;
    const int i0 = qt * BQ, mq = hft_min(BQ, p.tq - i0), dim4 = (p.dim + 3) & ~3;
    attn_load_tile<T, DMAX, BQ>(Qs, (const T *)p.q + b * p.q_sb + i0 * p.q_st + h * p.q_sh, p.q_st, mq,
                                p.dim);
    attn_load_tile<T, DMAX, BQ>(dOs, (const T *)p.dout + (((int64_t)b * p.tq + i0) * p.hq + h) * p.dim,
                                (int64_t)p.hq * p.dim, mq, p.dim);
    const T *k = (const T *)p.k + b * p.k_sb + g * p.k_sh;
    const T *v = (const T *)p.v + b * p.v_sb + g * p.v_sh;

    attn_row rows[4];
    float L2[4], dl[4], dq[4][4 * G];
    HFT_UNROLL
    for (int x = 0; x < 4; x++) {
        const int r = tr * 4 + x;
        rows[x] = attn_row_of(p, b, i0 + r);
        const int64_t at = ((int64_t)b * p.hq + h) * p.tq + i0 + r;
        L2[x] = r < mq ? p.lse[at] * ATTN_LOG2E : -INFINITY;
        dl[x] = r < mq ? p.delta[at] : 0.0f;
        HFT_UNROLL
        for (int e = 0; e < 4 * G; e++) dq[x][e] = 0.0f;
    }

    const int kend = attn_key_end(p, i0, mq);
    for (int j0 = 0; j0 < kend; j0 += BK) {
        const int nk = hft_min(BK, kend - j0);
        __syncthreads(); // the previous tile's K, V and dS are no longer read
        attn_load_tile<T, DMAX, BK>(Ks, k + j0 * p.k_st, p.k_st, nk, p.dim);
        attn_load_tile<T, DMAX, BK>(Vs, v + j0 * p.v_st, p.v_st, nk, p.dim);
        __syncthreads();

        float s[4][C], dp[4][C];
        HFT_UNROLL
        for (int x = 0; x < 4; x++) {
            HFT_UNROLL
            for (int c = 0; c < C; c++) s[x][c] = dp[x][c] = 0.0f;
        }
        attn_dot_tile<C>(s, Qs + tr * 4 * LD, Ks + tc * LD, LD, dim4);
        attn_dot_tile<C>(dp, dOs + tr * 4 * LD, Vs + tc * LD, LD, dim4);
        HFT_UNROLL
        for (int c = 0; c < C; c++) {
            const int j = j0 + tc + 16 * c;
            const attn_key key = attn_key_of(p, b, j); // hidden past kend, as in the forward
            float ds[4];
            HFT_UNROLL
            for (int x = 0; x < 4; x++)
                ds[x] = attn_grad_of(p, attn_visible(rows[x], key, j), s[x][c] * p.scale_log2, L2[x],
                                     dp[x][c], dl[x], b, h, i0 + tr * 4 + x, j)
                            .ds;
            attn_st4(dSt + (tc + 16 * c) * LDP + tr * 4, ds[0], ds[1], ds[2], ds[3]);
        }
        __syncthreads();
        attn_outer_tile<G>(dq, dSt + tr * 4, LDP, Ks + tc * 4, LD, nk);
    }

    const float sc[4] = {p.scale, p.scale, p.scale, p.scale};
    attn_store_tile<T, G>((T *)p.dq + b * p.dq_sb + i0 * p.dq_st + h * p.dq_sh, p.dq_st, dq, sc, tr * 4, mq,
                          p.dim, p.acc_dq);
}

#endif
