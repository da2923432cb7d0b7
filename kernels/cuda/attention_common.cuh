// What the attention kernels share: their parameters, the visibility rules (causal, key mask, segment ids)
// and the dropout factor, and the SIMT building blocks on shared-memory tiles of f32.
//
// Every kernel runs 256 threads as a 16 × 16 grid, tr = tid / 16 and tc = tid % 16. Tiles hold 64 "row"
// items (queries in the forward and dQ kernels, keys in the dK/dV kernel) and 16·C "column" items; a thread
// owns rows tr·4 .. tr·4+3 and columns tc + 16·c (c < C) of a score tile, and rows tr·4 .. tr·4+3 and head
// dims tc·4 + 64·g .. +3 of an output tile. The 16 threads that share a row are the two halves of a warp,
// so row statistics reduce with four xor shuffles, and the butterfly leaves every lane the same bits.
#ifndef HFT_CUDA_ATTENTION_COMMON_CUH
#define HFT_CUDA_ATTENTION_COMMON_CUH

#include "kernels/cuda/philox.cuh"
#include "kernels/cuda/cuda_internal.cuh"

#define ATTN_THREADS 256
#define ATTN_ROWS    64 // row items per tile: 16 thread rows × 4

#if defined(__CUDACC__) && !defined(HFT_CUDA_EMULATE)
typedef float4 attn_f4;
#else
struct attn_f4 {
    float x, y, z, w;
} __attribute__((aligned(16)));
#endif

#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2   0.6931471805599453f

// The op's arguments as the kernels read them. Sizes are int (the entries check they fit); offsets are
// computed in int64.
struct attn_params {
    int batch, tq, tk, hq, hkv, dim, rep; // rep = hq / hkv query heads per key/value head
    float scale;                          // the softmax scale
    float scale_log2;                     // scale · log2(e): scores in base 2, so that exp2f exponentiates
    bool causal;
    const uint8_t *key_mask;      // [B, Tk] or NULL
    const int32_t *q_seg, *k_seg; // [B, Tq], [B, Tk] or NULL (k_seg is q_seg when not given)
    bool dropout;
    float drop_p, drop_keep; // keep when unit >= drop_p; a kept probability is scaled by drop_keep
    hft_rng_key rng;
    int64_t sample0;
    const void *q, *k, *v;
    int64_t q_sb, q_st, q_sh, k_sb, k_st, k_sh, v_sb, v_st, v_sh;
    void *o;
    float *lse; // [B, Hq, Tq], f32 whatever the data's dtype
    const void *dout;
    void *dq, *dk, *dv;
    int64_t dq_sb, dq_st, dq_sh, dk_sb, dk_st, dk_sh, dv_sb, dv_st, dv_sh;
    bool acc_dq, acc_dk, acc_dv;
    float *delta; // [B, Hq, Tq] scratch: rowsum(dO ∘ O)
};

// ---------------------------------------------------------------- visibility and dropout

// What one query row brings to the visibility test.
struct attn_row {
    bool valid;  // inside [0, Tq)
    int last;    // the last key it may see under causal masking (i + Tk - Tq), else Tk - 1
    int32_t seg; // its segment id (0 when there are none)
};

// What one key brings: inside [0, Tk) and not padding, and its segment id.
struct attn_key {
    bool open;
    int32_t seg;
};

HFT_DEVICE attn_row attn_row_of(const attn_params &p, int b, int i) {
    attn_row r;
    r.valid = i < p.tq;
    r.last = p.causal ? i + (p.tk - p.tq) : p.tk - 1;
    r.seg = r.valid && p.q_seg ? p.q_seg[(int64_t)b * p.tq + i] : 0;
    return r;
}

HFT_DEVICE attn_key attn_key_of(const attn_params &p, int b, int j) {
    attn_key k;
    k.open = j < p.tk && (!p.key_mask || p.key_mask[(int64_t)b * p.tk + j] != 0);
    k.seg = j < p.tk && p.k_seg ? p.k_seg[(int64_t)b * p.tk + j] : 0;
    return k;
}

HFT_DEVICE bool attn_visible(const attn_row &r, const attn_key &k, int j) {
    return r.valid && k.open && j <= r.last && r.seg == k.seg;
}

// The keys a block of query rows [i0, i0 + rows) can see at all end before this (causal masking).
HFT_DEVICE int attn_key_end(const attn_params &p, int i0, int rows) {
    if (!p.causal) return p.tk;
    int end = i0 + rows + (p.tk - p.tq);
    return end < 0 ? 0 : end < p.tk ? end : p.tk;
}

// The first query that can see key j (causal masking; 0 otherwise).
HFT_DEVICE int attn_query_start(const attn_params &p, int j) {
    if (!p.causal) return 0;
    int s = j - (p.tk - p.tq);
    return s < 0 ? 0 : s;
}

// The dropout factor of element (b, h, i, j): drop_keep where kept, 0 where dropped, drawn as the CPU
// draws it (sample sample0 + b, element (h·Tq + i)·Tk + j).
HFT_DEVICE float attn_drop_factor(const attn_params &p, int b, int h, int i, int j) {
    uint64_t e = ((uint64_t)h * (uint64_t)p.tq + (uint64_t)i) * (uint64_t)p.tk + (uint64_t)j;
    uint32_t w = hft_philox_word(p.rng, p.sample0 + b, e);
    return hft_philox_unit(w) >= p.drop_p ? p.drop_keep : 0.0f;
}

// Max and sum over the 16 threads of a row (lanes that differ in the low four bits).
HFT_DEVICE float attn_row_max(float v) {
    HFT_UNROLL
    for (int off = 8; off > 0; off >>= 1) v = hft_maxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}
HFT_DEVICE float attn_row_sum(float v) {
    HFT_UNROLL
    for (int off = 8; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

// ---------------------------------------------------------------- shared-memory tiles

HFT_DEVICE attn_f4 attn_ld4(const float *p) {
    return *reinterpret_cast<const attn_f4 *>(p);
}
HFT_DEVICE void attn_st4(float *p, float x, float y, float z, float w) {
    attn_f4 v;
    v.x = x, v.y = y, v.z = z, v.w = w;
    *reinterpret_cast<attn_f4 *>(p) = v;
}

// Rows [0, NR) of a tile from global memory (row r at src + r·ld, `dim` contiguous elements) into shared
// memory as f32 with row stride DMAX + 4, zero beyond `rows` and `dim`, so that the products never read
// garbage (0 · NaN would be NaN). The stride's extra 4 floats make the 16-byte reads of 8 consecutive rows
// fall on distinct banks.
template <typename T, int DMAX, int NR>
HFT_DEVICE void attn_load_tile(float *dst, const T *src, int64_t ld, int rows, int dim) {
    for (int idx = threadIdx.x; idx < NR * DMAX; idx += ATTN_THREADS) {
        int r = idx / DMAX, c = idx % DMAX;
        float v = 0.0f;
        if (r < rows && c < dim) v = hft_to_f32(src[(int64_t)r * ld + c]);
        dst[r * (DMAX + 4) + c] = v;
    }
}

// acc[a][c] += Σ_d A[a][d] · B[16·c][d] over d < dim4 (a multiple of 4): the dot products of this thread's
// four row items (A, consecutive rows of stride ld) with its C column items (B, every 16th row).
template <int C>
HFT_DEVICE void attn_dot_tile(float (&acc)[4][C], const float *A, const float *B, int ld, int dim4) {
    for (int d = 0; d < dim4; d += 4) {
        attn_f4 a[4], b[C];
        HFT_UNROLL
        for (int x = 0; x < 4; x++) a[x] = attn_ld4(A + x * ld + d);
        HFT_UNROLL
        for (int c = 0; c < C; c++) b[c] = attn_ld4(B + 16 * c * ld + d);
        HFT_UNROLL
        for (int x = 0; x < 4; x++) {
            HFT_UNROLL
            for (int c = 0; c < C; c++) {
                float s = acc[x][c];
                s += a[x].x * b[c].x;
                s += a[x].y * b[c].y;
                s += a[x].z * b[c].z;
                s += a[x].w * b[c].w;
                acc[x][c] = s;
            }
        }
    }
}

// acc[a][4·g + e] += Σ_k A[k][a] · B[k][64·g + e] over k < klen: an outer-product update of this thread's
// 4 rows × 4·G head dims, A holding its four rows at each k (stride lda), B its head dims (stride ldb).
template <int G>
HFT_DEVICE void attn_outer_tile(float (&acc)[4][4 * G], const float *A, int lda, const float *B, int ldb,
                                int klen) {
    for (int k = 0; k < klen; k++) {
        attn_f4 a = attn_ld4(A + k * lda);
        float av[4] = {a.x, a.y, a.z, a.w};
        HFT_UNROLL
        for (int g = 0; g < G; g++) {
            attn_f4 b = attn_ld4(B + k * ldb + 64 * g);
            HFT_UNROLL
            for (int x = 0; x < 4; x++) {
                acc[x][4 * g + 0] += av[x] * b.x;
                acc[x][4 * g + 1] += av[x] * b.y;
                acc[x][4 * g + 2] += av[x] * b.z;
                acc[x][4 * g + 3] += av[x] * b.w;
            }
        }
    }
}

// Stores this thread's 4 × 4·G output tile (rows row0 .. row0+3 at out + r·ld, head dims tc·4 + 64·g + e)
// as T, times `mul` per row, added to what is there when `accumulate`. Rows from `rows` and dims from
// `dim` on are not written.
template <typename T, int G>
HFT_DEVICE void attn_store_tile(T *out, int64_t ld, const float (&acc)[4][4 * G], const float (&mul)[4],
                                int row0, int rows, int dim, bool accumulate) {
    const int tc = threadIdx.x % 16;
    HFT_UNROLL
    for (int x = 0; x < 4; x++) {
        if (row0 + x >= rows) continue;
        T *o = out + (int64_t)(row0 + x) * ld;
        HFT_UNROLL
        for (int g = 0; g < G; g++) {
            HFT_UNROLL
            for (int e = 0; e < 4; e++) {
                int col = tc * 4 + 64 * g + e;
                if (col >= dim) continue;
                float v = acc[x][4 * g + e] * mul[x];
                if (accumulate) v += hft_to_f32(o[col]);
                o[col] = hft_from_f32<T>(v);
            }
        }
    }
}

#endif
