/* Gradient clipping by global norm, as torch.nn.utils.clip_grad_norm_, over the flat gradient buffer: the
 * norm from an ordered f64 sum of squares (the same for any thread count), the scale in f32 as torch
 * computes it. Gradients on a device are clipped there, with that device's kernels. */
#include <math.h>

#include "optim/optim.h"

hft_status hft_clip_grad_norm(hft_paramset *ps, double max_norm, double *norm) {
    *norm = 0;
    hft_tensor *flat = hft_paramset_grads(ps);
    if (!flat) return HFT_OK;
    if (isnan(max_norm))
        return hft_error(HFT_EINVAL,
                         "clip_grad_norm: max_norm: expected a number (<= 0 only measures), got nan");
    hft_paramset_materialize_grads(ps);
    /* the gradients' device table: its sumsq (f64, a fixed order) returns to the host, its scale is queued */
    const hft_kernels *k = hft_kernels_for(flat->device.type);
    if (!k || !k->sumsq[HFT_F32] || !k->map[HFT_F32])
        return hft_error(HFT_EUNSUPPORTED,
                         "clip_grad_norm: no sumsq / map kernels for the gradients' device");
    int64_t n = hft_tensor_numel(flat);
    void *g = hft_tensor_data(flat);
    double total = sqrt(k->sumsq[HFT_F32](g, n));
    *norm = total;
    if (!isfinite(total))
        return hft_error(HFT_ENUMERIC, "clip_grad_norm: the gradient norm is %g; gradients left unscaled",
                         total);
    if (max_norm <= 0) return HFT_OK;
    /* torch: clip_coef = max_norm / (total_norm + 1e-6), i.e. reciprocal(total + 1e-6) · max_norm in f32,
     * clamped to 1; a factor of 1 leaves the gradients as they are */
    float coef = (1.0f / ((float)total + 1e-6f)) * (float)max_norm;
    if (!(coef < 1.0f)) return HFT_OK;
    hft_map_args m = {.op = HFT_MAP_SCALE, .n_in = 1, .alpha = coef};
    m.out = (hft_kview){.data = g, .ndim = 1, .shape = {n}, .stride = {1}};
    m.in[0] = m.out;
    k->map[HFT_F32](&m);
    return HFT_OK;
}
