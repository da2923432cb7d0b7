// Fused scaled-dot-product attention on CUDA, the twin of kernels/cpu/attention.c: the forward
// (attention_fwd.cuh) and the deterministic backward (attention_bwd.cuh) for f32, bf16 and f16 data, all
// arithmetic in f32. The kernels are SIMT f32 on shared-memory tiles; they are compiled for head dims up
// to 64 and up to 128 (smaller dims are zero-padded in shared memory) and the entries pick one at run time.
//
// lse is [B, Hq, Tq] f32 for every data dtype: the backward recomputes P = exp(s − lse), so an absolute
// error in lse is a relative error in every P of its row, and a bf16 lse of a few units would be off by
// ~1e-2. The backward's scratch holds D = rowsum(dO∘O), also f32.
#include <math.h>

#include "kernels/cuda/attention_bwd.cuh"
#include "kernels/cuda/attention_fwd.cuh"

namespace {

bool fits_int(int64_t v) {
    return v >= 0 && v <= INT32_MAX;
}

// The op's arguments checked and converted to the kernels' parameters; false (failure recorded) when the
// combination is not one the kernels take.
bool make_params(const hft_attn_args *a, bool backward, attn_params *p, const char *where) {
    if (!fits_int(a->batch) || !fits_int(a->tq) || !fits_int(a->tk) || a->hq < 1 || a->hkv < 1 ||
        a->hq % a->hkv != 0) {
        hft_cuda_fail(HFT_EINVAL, where, "batch %lld, tq %lld, tk %lld, hq %lld, hkv %lld",
                      (long long)a->batch, (long long)a->tq, (long long)a->tk, (long long)a->hq,
                      (long long)a->hkv);
        return false;
    }
    // grid x: heads × batch rows; grid y: tiles of 64 queries or keys (at most 65535)
    if (a->batch * a->hq > INT32_MAX || a->tq > 65535 * (int64_t)ATTN_ROWS ||
        a->tk > 65535 * (int64_t)ATTN_ROWS) {
        hft_cuda_fail(HFT_EUNSUPPORTED, where, "batch %lld × %lld heads, tq %lld, tk %lld: too large a grid",
                      (long long)a->batch, (long long)a->hq, (long long)a->tq, (long long)a->tk);
        return false;
    }
    if (a->dim < 1 || a->dim > 128) {
        hft_cuda_fail(HFT_EUNSUPPORTED, where, "head dim %lld (1 to 128)", (long long)a->dim);
        return false;
    }
    if (!(a->dropout_p >= 0 && a->dropout_p < 1)) {
        hft_cuda_fail(HFT_EINVAL, where, "dropout_p %g outside [0, 1)", a->dropout_p);
        return false;
    }
    if (a->q_segments && !a->k_segments && a->tq != a->tk) {
        hft_cuda_fail(HFT_EINVAL, where, "q_segments without k_segments needs tq == tk (%lld, %lld)",
                      (long long)a->tq, (long long)a->tk);
        return false;
    }
    if (backward && !a->scratch && a->batch * a->tq > 0) {
        hft_cuda_fail(HFT_EINVAL, where, "no scratch (attn_scratch_bytes)");
        return false;
    }
    p->batch = (int)a->batch, p->tq = (int)a->tq, p->tk = (int)a->tk;
    p->hq = (int)a->hq, p->hkv = (int)a->hkv, p->dim = (int)a->dim, p->rep = (int)(a->hq / a->hkv);
    p->scale = (float)a->scale;
    p->scale_log2 = (float)(a->scale * 1.4426950408889634);
    p->causal = a->causal;
    p->key_mask = a->key_mask;
    p->q_seg = a->q_segments;
    p->k_seg = a->q_segments ? (a->k_segments ? a->k_segments : a->q_segments) : nullptr;
    p->dropout = a->dropout_p > 0;
    p->drop_p = (float)a->dropout_p; // the CPU compares the unit draw with p in f32
    p->drop_keep = p->dropout ? (float)(1.0 / (1.0 - a->dropout_p)) : 1.0f;
    p->rng = a->dropout_key;
    p->sample0 = a->sample0;
    p->q = a->q, p->k = a->k, p->v = a->v;
    p->q_sb = a->q_sb, p->q_st = a->q_st, p->q_sh = a->q_sh;
    p->k_sb = a->k_sb, p->k_st = a->k_st, p->k_sh = a->k_sh;
    p->v_sb = a->v_sb, p->v_st = a->v_st, p->v_sh = a->v_sh;
    p->o = a->o;
    p->lse = (float *)a->lse;
    p->dout = a->dout;
    p->dq = a->dq, p->dk = a->dk, p->dv = a->dv;
    p->dq_sb = a->dq_sb, p->dq_st = a->dq_st, p->dq_sh = a->dq_sh;
    p->dk_sb = a->dk_sb, p->dk_st = a->dk_st, p->dk_sh = a->dk_sh;
    p->dv_sb = a->dv_sb, p->dv_st = a->dv_st, p->dv_sh = a->dv_sh;
    p->acc_dq = a->accumulate_dq, p->acc_dk = a->accumulate_dk, p->acc_dv = a->accumulate_dv;
    p->delta = (float *)a->scratch;
    return true;
}

// Lets a kernel use `bytes` of dynamic shared memory (above 48 KiB needs the opt-in); false when refused.
template <typename K> bool allow_smem(K kernel, size_t bytes, const char *where) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        hft_cuda_fail(HFT_EDEVICE, where, "%zu bytes of shared memory refused: %s", bytes,
                      cudaGetErrorString(e));
        return false;
    }
    return true;
}

unsigned query_tiles(const attn_params &p) {
    return (unsigned)((p.tq + ATTN_ROWS - 1) / ATTN_ROWS);
}

// Head dims up to 64 take 64-key tiles; up to 128, 32-key tiles keep the block's shared memory near 76 KiB
// (forward) so that two blocks share an SM.
template <typename T, int DMAX, int BK> void launch_fwd(const attn_params &p) {
    const size_t smem = attn_fwd_smem_bytes<DMAX, BK>(1);
    if (!allow_smem(attn_fwd_kernel<T, DMAX, BK>, smem, "attn_fwd")) return;
    dim3 grid((unsigned)(p.hq * p.batch), query_tiles(p));
    HFT_LAUNCH(grid, ATTN_THREADS, smem, hft_cuda_stream(), attn_fwd_kernel<T, DMAX, BK>)(p);
    hft_cuda_check_launch("attn_fwd");
}

template <typename T> void attn_fwd(const hft_attn_args *a) {
    attn_params p;
    if (!make_params(a, false, &p, "attn_fwd")) return;
    if (p.batch == 0 || p.tq == 0) return;
    if (p.dim <= 64)
        launch_fwd<T, 64, 64>(p);
    else
        launch_fwd<T, 128, 32>(p);
}

template <typename T, int DMAX, int BK> void launch_dq(const attn_params &p) {
    const size_t smem = attn_fwd_smem_bytes<DMAX, BK>(2);
    if (!allow_smem(attn_dq_kernel<T, DMAX, BK>, smem, "attn_bwd")) return;
    dim3 grid((unsigned)(p.hq * p.batch), query_tiles(p));
    HFT_LAUNCH(grid, ATTN_THREADS, smem, hft_cuda_stream(), attn_dq_kernel<T, DMAX, BK>)(p);
    hft_cuda_check_launch("attn_bwd dq");
}

template <typename T, int DMAX, int BQ> void launch_dkdv(const attn_params &p) {
    const size_t smem = attn_dkdv_smem_bytes<DMAX, BQ>();
    if (!allow_smem(attn_dkdv_kernel<T, DMAX, BQ>, smem, "attn_bwd")) return;
    dim3 grid((unsigned)(p.hkv * p.batch), (unsigned)((p.tk + ATTN_ROWS - 1) / ATTN_ROWS));
    HFT_LAUNCH(grid, ATTN_THREADS, smem, hft_cuda_stream(), attn_dkdv_kernel<T, DMAX, BQ>)(p);
    hft_cuda_check_launch("attn_bwd dk dv");
}

template <typename T> void attn_bwd(const hft_attn_args *a) {
    attn_params p;
    if (!make_params(a, true, &p, "attn_bwd")) return;
    if (p.batch == 0 || (!p.dq && !p.dk && !p.dv)) return;
    if (p.tq > 0) {
        const int64_t rows = (int64_t)p.batch * p.tq * p.hq;
        HFT_LAUNCH(hft_cuda_blocks(rows, ATTN_THREADS / 32), ATTN_THREADS, 0, hft_cuda_stream(),
                   attn_delta_kernel<T>)
        (p);
        hft_cuda_check_launch("attn_bwd delta");
    }
    if (p.dq && p.tq > 0) {
        if (p.dim <= 64)
            launch_dq<T, 64, 64>(p);
        else
            launch_dq<T, 128, 32>(p);
    }
    if ((p.dk || p.dv) && p.tk > 0) {
        if (p.dim <= 64)
            launch_dkdv<T, 64, 32>(p);
        else
            launch_dkdv<T, 128, 32>(p);
    }
}

// Scratch: the backward's D, [B, Hq, Tq] f32; the forward needs none.
size_t attn_scratch_bytes(const hft_attn_args *a, size_t elsize, bool backward) {
    (void)elsize;
    if (!backward || a->batch <= 0 || a->tq <= 0 || a->hq <= 0) return 0;
    return (size_t)a->batch * (size_t)a->hq * (size_t)a->tq * sizeof(float);
}

} // namespace

void hft_cuda_register_attention(hft_kernels *t) {
    t->attn_fwd[HFT_F32] = attn_fwd<float>;
    t->attn_fwd[HFT_BF16] = attn_fwd<hft_bf16_t>;
    t->attn_fwd[HFT_F16] = attn_fwd<hft_f16_t>;
    t->attn_bwd[HFT_F32] = attn_bwd<float>;
    t->attn_bwd[HFT_BF16] = attn_bwd<hft_bf16_t>;
    t->attn_bwd[HFT_F16] = attn_bwd<hft_f16_t>;
    t->attn_scratch_bytes = attn_scratch_bytes;
}
