/* Dynamic loss scaling for fp16 training, as torch.amp.GradScaler does it: the loss is multiplied by the
 * scale before backward; before the optimizer step the gradients are multiplied by the reciprocal of the
 * scale (an f32 computed in f64, as torch does) and checked for inf/NaN. A step with a non-finite gradient
 * is skipped and the scale backs off; after growth_interval clean steps in a row the scale grows. */
#include "optim/optim.h"

#include <math.h>
#include <string.h>

hft_loss_scaler_config hft_loss_scaler_defaults(void) {
    return (hft_loss_scaler_config){
        .init_scale = 65536.0, .growth_factor = 2.0, .backoff_factor = 0.5, .growth_interval = 2000};
}

hft_status hft_loss_scaler_init(hft_loss_scaler *s, const hft_loss_scaler_config *cfg) {
    if (!(cfg->init_scale > 0) || !isfinite(cfg->init_scale))
        return hft_error(HFT_EINVAL, "loss scaler: init_scale %g; expected a finite number > 0",
                         cfg->init_scale);
    if (!(cfg->growth_factor > 1))
        return hft_error(HFT_EINVAL, "loss scaler: growth_factor %g; expected > 1", cfg->growth_factor);
    if (!(cfg->backoff_factor > 0 && cfg->backoff_factor < 1))
        return hft_error(HFT_EINVAL, "loss scaler: backoff_factor %g; expected in (0, 1)",
                         cfg->backoff_factor);
    if (cfg->growth_interval < 1)
        return hft_error(HFT_EINVAL, "loss scaler: growth_interval %lld; expected >= 1",
                         (long long)cfg->growth_interval);
    memset(s, 0, sizeof *s);
    s->config = *cfg;
    s->scale = (float)cfg->init_scale;
    return HFT_OK;
}

/* Gradients on a device: an inf or NaN anywhere makes their f64 sum of squares non-finite (f32 values
 * squared stay finite in f64), so one sumsq finds them; then the device's scale kernel unscales. A device
 * error reads as found (the step is skipped, and the error stays recorded). */
static bool unscale_on_device(hft_tensor *flat, int64_t lo, float inv, int64_t n) {
    const hft_kernels *k = hft_kernels_for(flat->device.type);
    if (!k) return true;
    float *g = (float *)hft_tensor_data(flat) + lo;
    bool found = !isfinite(k->sumsq[HFT_F32](g, n));
    hft_map_args m = {.op = HFT_MAP_SCALE, .n_in = 1, .alpha = inv};
    m.out = (hft_kview){.data = g, .ndim = 1, .shape = {n}, .stride = {1}};
    m.in[0] = m.out;
    k->map[HFT_F32](&m);
    return found;
}

bool hft_loss_scaler_unscale_range(hft_loss_scaler *s, hft_paramset *ps, int64_t lo, int64_t count) {
    hft_paramset_materialize_grads(ps);
    hft_tensor *flat = hft_paramset_grads(ps);
    if (!flat || lo < 0 || count <= 0 || lo + count > hft_tensor_numel(flat)) return false;
    float inv = (float)(1.0 / (double)s->scale);
    if (flat->device.type != HFT_CPU) return unscale_on_device(flat, lo, inv, count);
    float *g = (float *)hft_tensor_data(flat) + lo;
    int found = 0;
#pragma omp parallel for reduction(| : found) schedule(static)
    for (int64_t i = 0; i < count; i++) {
        found |= !isfinite(g[i]);
        g[i] *= inv;
    }
    return found != 0;
}

bool hft_loss_scaler_unscale(hft_loss_scaler *s, hft_paramset *ps) {
    return hft_loss_scaler_unscale_range(s, ps, 0, hft_paramset_trainable_numel(ps));
}

void hft_loss_scaler_update(hft_loss_scaler *s, bool found_inf) {
    if (found_inf) {
        s->scale = (float)((double)s->scale * s->config.backoff_factor);
        s->growth_tracker = 0;
        s->skipped++;
        return;
    }
    int64_t successful = s->growth_tracker + 1;
    if (successful == s->config.growth_interval) {
        float grown = (float)((double)s->scale * s->config.growth_factor);
        if (isfinite(grown)) s->scale = grown;
        s->growth_tracker = 0;
    } else {
        s->growth_tracker = successful;
    }
}
