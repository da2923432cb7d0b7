// Embedding lookup and its gradient on the device, the twin of kernels/cpu/embedding.c.
//
// Forward gathers rows: one block per token row (grid-stride), f32 output for every table dtype (a bf16 or
// f16 table is a frozen base gathered into f32 rows, as on the CPU). Ids outside [0, vocab) give zero rows,
// as the CPU's kernel (the op rejects them before).
//
// Backward is a deterministic scatter-add with no atomics: one thread owns one column c and walks the ids in
// order, dweight[ids[i]][c] += dout[i][c], skipping padding_idx and ids outside [0, vocab). Every element is
// therefore summed in the order of the ids, as on the CPU: f32 results are bit-identical. A thread's chain
// of read-add-writes would wait one memory latency per token, so it takes the tokens in windows of 16: all
// loads of a window are issued first, duplicates inside the window forward their sum in registers, then
// the stores go out in order (a later duplicate's store lands last). f32 tables only: a low-precision table
// cannot train (the op refuses it), so there is no bf16 / f16 backward to call.
#include "kernels/cuda/cuda_internal.cuh"

namespace {

template <typename T> struct alignas(4 * sizeof(T)) vec4 { T v[4]; };

template <typename I> HFT_DEVICE int64_t load_id(const I *ids, int64_t i) {
    return (int64_t)ids[i];
}

// VEC: dim is a multiple of 4 and the rows are aligned, so a thread moves four elements at a time.
template <typename W, typename I, bool VEC>
__global__ void emb_fwd_kernel(const I *ids, const W *weight, float *out, int64_t n, int64_t vocab,
                               int64_t dim) {
    for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
        int64_t id = load_id(ids, r);
        bool ok = id >= 0 && id < vocab;
        const W *src = weight + (ok ? id : 0) * dim;
        float *dst = out + r * dim;
        if (VEC) {
            for (int64_t c = 4 * (int64_t)threadIdx.x; c < dim; c += 4 * (int64_t)blockDim.x) {
                vec4<float> o;
                if (ok) {
                    vec4<W> w = *reinterpret_cast<const vec4<W> *>(src + c);
                    HFT_UNROLL
                    for (int j = 0; j < 4; j++) o.v[j] = hft_to_f32(w.v[j]);
                } else {
                    HFT_UNROLL
                    for (int j = 0; j < 4; j++) o.v[j] = 0.0f;
                }
                *reinterpret_cast<vec4<float> *>(dst + c) = o;
            }
        } else {
            for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) dst[c] = ok ? hft_to_f32(src[c]) : 0.0f;
        }
    }
}

#define EMB_WINDOW 16 // tokens whose loads are in flight together in the backward

// The rows the tokens [i0, i0 + EMB_WINDOW) add into: the id, or -1 where a token adds nothing (past n,
// padding, outside [0, vocab)). vocab < 2^31 (checked by the caller), so a row fits an int.
template <typename I>
HFT_DEVICE void emb_rows(const I *ids, int64_t i0, int64_t n, int64_t vocab, int64_t pad,
                         int row[EMB_WINDOW]) {
    HFT_UNROLL
    for (int j = 0; j < EMB_WINDOW; j++) {
        int64_t id = i0 + j < n ? load_id(ids, i0 + j) : -1;
        row[j] = id >= 0 && id < vocab && id != pad ? (int)id : -1;
    }
}

// Grid: x over columns, one thread per column; no barriers, so threads past the last column just leave.
// The next window's ids load while this window's gradients and rows are in flight.
template <typename I>
__global__ void emb_bwd_kernel(const I *ids, const float *dout, float *dweight, int64_t n, int64_t vocab,
                               int64_t dim, int64_t pad) {
    int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= dim) return;
    int row[EMB_WINDOW];
    emb_rows(ids, 0, n, vocab, pad, row);
    for (int64_t i0 = 0; i0 < n; i0 += EMB_WINDOW) {
        float g[EMB_WINDOW], w[EMB_WINDOW];
        HFT_UNROLL
        for (int j = 0; j < EMB_WINDOW; j++) {
            g[j] = row[j] >= 0 ? dout[(i0 + j) * dim + c] : 0.0f;
            w[j] = row[j] >= 0 ? dweight[row[j] * dim + c] : 0.0f;
        }
        int next[EMB_WINDOW];
        emb_rows(ids, i0 + EMB_WINDOW, n, vocab, pad, next);
        // w[j] becomes the value after token j's add; a duplicate starts from the latest earlier sum of its
        // row in the window instead of the (stale) value loaded from memory
        HFT_UNROLL
        for (int j = 0; j < EMB_WINDOW; j++) {
            float base = w[j];
            HFT_UNROLL
            for (int k = 0; k < j; k++)
                if (row[k] == row[j]) base = w[k];
            w[j] = base + g[j];
        }
        // in order, so the last duplicate's store (the full sum) lands last; the next window's loads come
        // after these stores in this thread's program order, which the memory system keeps for one address
        HFT_UNROLL
        for (int j = 0; j < EMB_WINDOW; j++)
            if (row[j] >= 0) dweight[row[j] * dim + c] = w[j];
        HFT_UNROLL
        for (int j = 0; j < EMB_WINDOW; j++) row[j] = next[j];
    }
}

bool ids_ok(const hft_embedding_args *a, const char *op) {
    if (a->id_dtype == HFT_I32 || a->id_dtype == HFT_I64) return true;
    hft_cuda_fail(HFT_EUNSUPPORTED, op, "ids of dtype %d (expected i32 or i64)", (int)a->id_dtype);
    return false;
}

template <typename W, typename I> void fwd_launch(const hft_embedding_args *a) {
    bool vec = a->dim % 4 == 0 && (uintptr_t)a->weight % (4 * sizeof(W)) == 0 && (uintptr_t)a->out % 16 == 0;
    int64_t per_thread = vec ? 4 : 1, slots = (a->dim + per_thread - 1) / per_thread;
    int threads = slots >= 256 ? 256 : (int)((slots + 31) / 32 * 32);
    unsigned grid = (unsigned)(a->n < 65535 * 8 ? a->n : 65535 * 8);
    const I *ids = (const I *)a->ids;
    if (vec) {
        HFT_LAUNCH(grid, threads, 0, hft_cuda_stream(), emb_fwd_kernel<W, I, true>)
        (ids, (const W *)a->weight, (float *)a->out, a->n, a->vocab, a->dim);
    } else {
        HFT_LAUNCH(grid, threads, 0, hft_cuda_stream(), emb_fwd_kernel<W, I, false>)
        (ids, (const W *)a->weight, (float *)a->out, a->n, a->vocab, a->dim);
    }
}

// Output f32 whatever W is (kernels.h: a bf16 / f16 table is gathered into f32 rows).
template <typename W> void embedding_fwd(const hft_embedding_args *a) {
    if (a->n <= 0 || a->dim <= 0 || !ids_ok(a, "embedding_fwd")) return;
    if (a->id_dtype == HFT_I32) {
        fwd_launch<W, int32_t>(a);
    } else {
        fwd_launch<W, int64_t>(a);
    }
    hft_cuda_check_launch("embedding_fwd");
}

void embedding_bwd_f32(const hft_embedding_args *a) {
    if (a->n <= 0 || a->dim <= 0 || !ids_ok(a, "embedding_bwd")) return;
    if (a->vocab > INT32_MAX) {
        hft_cuda_fail(HFT_EUNSUPPORTED, "embedding_bwd", "vocab %lld (at most 2^31 - 1 rows)",
                      (long long)a->vocab);
        return;
    }
    // one warp per block: the few warps there are (dim / 32) spread over as many SMs
    int threads = 32;
    unsigned grid = (unsigned)((a->dim + threads - 1) / threads);
    int64_t pad = a->padding_idx < 0 ? -1 : a->padding_idx;
    const float *dout = (const float *)a->dout;
    float *dw = (float *)a->dweight;
    if (a->id_dtype == HFT_I32) {
        HFT_LAUNCH(grid, threads, 0, hft_cuda_stream(), emb_bwd_kernel<int32_t>)
        ((const int32_t *)a->ids, dout, dw, a->n, a->vocab, a->dim, pad);
    } else {
        HFT_LAUNCH(grid, threads, 0, hft_cuda_stream(), emb_bwd_kernel<int64_t>)
        ((const int64_t *)a->ids, dout, dw, a->n, a->vocab, a->dim, pad);
    }
    hft_cuda_check_launch("embedding_bwd");
}

} // namespace

void hft_cuda_register_embedding(hft_kernels *t) {
    t->embedding_fwd[HFT_F32] = embedding_fwd<float>;
    t->embedding_fwd[HFT_BF16] = embedding_fwd<hft_bf16_t>; // output f32
    t->embedding_fwd[HFT_F16] = embedding_fwd<hft_f16_t>;
    t->embedding_bwd[HFT_F32] = embedding_bwd_f32;
}
