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

bool hft_loss_scaler_unscale(hft_loss_scaler *s, hft_paramset *ps) {
    hft_paramset_materialize_grads(ps);
    hft_tensor *flat = hft_paramset_grads(ps);
    if (!flat) return false;
    float inv = (float)(1.0 / (double)s->scale);
    float *g = hft_tensor_data(flat);
    int64_t n = hft_tensor_numel(flat);
    int found = 0;
#pragma omp parallel for reduction(| : found) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        found |= !isfinite(g[i]);
        g[i] *= inv;
    }
    return found != 0;
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
