/* Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_, over the flat gradient buffer: the
 * norm from an ordered f64 sum of squares (the same for any thread count), the scale in f32 as torch
 * computes it. Gradients on a device are clipped there, with that device's kernels. A sharded (ZeRO-1) run
 * sums its own range, adds the ranks' sums, and scales its own range. */
#include <math.h>

#include "optim/optim.h"

static hft_status grads_range(hft_paramset *ps, int64_t lo, int64_t count, const hft_kernels **k, float **g) {
    hft_tensor *flat = hft_paramset_grads(ps);
    *g = NULL;
    if (!flat) return HFT_OK;
    if (lo < 0 || count < 0 || lo + count > hft_tensor_numel(flat))
        return hft_error(HFT_EINVAL, "gradient range [%lld, %lld) is not inside the %lld gradients",
                         (long long)lo, (long long)(lo + count), (long long)hft_tensor_numel(flat));
    hft_paramset_materialize_grads(ps);
    /* the gradients' device table: its sumsq (f64, a fixed order) returns to the host, its scale is queued */
    *k = hft_kernels_for(flat->device.type);
    if (!*k || !(*k)->sumsq[HFT_F32] || !(*k)->map[HFT_F32])
        return hft_error(HFT_EUNSUPPORTED,
                         "clip_grad_norm: no sumsq / map kernels for the gradients' device");
    *g = (float *)hft_tensor_data(flat) + lo;
    return HFT_OK;
}

hft_status hft_grad_sumsq(hft_paramset *ps, int64_t lo, int64_t count, double *sumsq) {
    const hft_kernels *k = NULL;
    float *g;
    *sumsq = 0;
    HFT_TRY(grads_range(ps, lo, count, &k, &g));
    if (g && count > 0) *sumsq = k->sumsq[HFT_F32](g, count);
    return HFT_OK;
}

hft_status hft_clip_grad_scale(hft_paramset *ps, int64_t lo, int64_t count, double max_norm, double norm) {
    if (isnan(max_norm))
        return hft_error(HFT_EINVAL,
                         "clip_grad_norm: max_norm: expected a number (<= 0 only measures), got nan");
    if (!isfinite(norm))
        return hft_error(HFT_ENUMERIC, "clip_grad_norm: the gradient norm is %g; gradients left unscaled",
                         norm);
    if (max_norm <= 0) return HFT_OK;
    /* torch: clip_coef = max_norm / (total_norm + 1e-6), i.e. reciprocal(total + 1e-6) · max_norm in f32,
     * clamped to 1; a factor of 1 leaves the gradients as they are */
    float coef = (1.0f / ((float)norm + 1e-6f)) * (float)max_norm;
    if (!(coef < 1.0f)) return HFT_OK;
    const hft_kernels *k = NULL;
    float *g;
    HFT_TRY(grads_range(ps, lo, count, &k, &g));
    if (!g || count == 0) return HFT_OK;
    hft_map_args m = {.op = HFT_MAP_SCALE, .n_in = 1, .alpha = coef};
    m.out = (hft_kview){.data = g, .ndim = 1, .shape = {count}, .stride = {1}};
    m.in[0] = m.out;
    k->map[HFT_F32](&m);
    return HFT_OK;
}

hft_status hft_clip_grad_norm(hft_paramset *ps, double max_norm, double *norm) {
    *norm = 0;
    int64_t n = hft_paramset_trainable_numel(ps);
    if (!hft_paramset_grads(ps)) return HFT_OK;
    if (isnan(max_norm))
        return hft_error(HFT_EINVAL,
                         "clip_grad_norm: max_norm: expected a number (<= 0 only measures), got nan");
    double sumsq = 0;
    HFT_TRY(hft_grad_sumsq(ps, 0, n, &sumsq));
    *norm = sqrt(sumsq);
    return hft_clip_grad_scale(ps, 0, n, max_norm, *norm);
}
