/* Parameter initialisation from the counter-based generator: reproducible across machines, thread
 * counts and the order in which parameters are created. */
#include "nn/nn.h"

#include <math.h>

hft_status hft_init_normal(hft_tensor *t, double mean, double std, uint64_t seed, uint32_t stream) {
    if (t->dtype != HFT_F32 && t->dtype != HFT_F64)
        return hft_error(HFT_EINVAL, "init_normal: %s tensors are not supported", hft_dtype_name(t->dtype));
    int64_t n = hft_tensor_numel(t);
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t i = 0; i < n; i += 2) {
        uint32_t ctr[4] = {(uint32_t)(i >> 1), (uint32_t)((uint64_t)i >> 33), stream,
                           0x6e6f726d /* "norm" */};
        uint32_t r[4];
        hft_philox4x32(key, ctr, r);
        /* Box-Muller on two 32-bit uniforms in (0, 1] */
        double u1 = ((double)r[0] + 1.0) / 4294967296.0, u2 = (double)r[1] / 4294967296.0;
        double rad = sqrt(-2.0 * log(u1));
        double z[2] = {rad * cos(2 * M_PI * u2), rad * sin(2 * M_PI * u2)};
        for (int j = 0; j < 2 && i + j < n; j++) {
            double v = mean + std * z[j];
            if (t->dtype == HFT_F32)
                ((float *)hft_tensor_data(t))[i + j] = (float)v;
            else
                ((double *)hft_tensor_data(t))[i + j] = v;
        }
    }
    t->version++;
    return HFT_OK;
}

hft_status hft_init_uniform(hft_tensor *t, double lo, double hi, uint64_t seed, uint32_t stream) {
    if (t->dtype != HFT_F32 && t->dtype != HFT_F64)
        return hft_error(HFT_EINVAL, "init_uniform: %s tensors are not supported", hft_dtype_name(t->dtype));
    int64_t n = hft_tensor_numel(t);
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)};
    for (int64_t i = 0; i < n; i += 4) {
        uint32_t ctr[4] = {(uint32_t)(i >> 2), (uint32_t)((uint64_t)i >> 34), stream,
                           0x756e6966 /* "unif" */};
        uint32_t r[4];
        hft_philox4x32(key, ctr, r);
        for (int j = 0; j < 4 && i + j < n; j++) {
            double v = lo + (hi - lo) * ((double)r[j] / 4294967296.0); /* [lo, hi) */
            if (t->dtype == HFT_F32)
                ((float *)hft_tensor_data(t))[i + j] = (float)v;
            else
                ((double *)hft_tensor_data(t))[i + j] = v;
        }
    }
    t->version++;
    return HFT_OK;
}

hft_status hft_init_constant(hft_tensor *t, double value) {
    int64_t n = hft_tensor_numel(t);
    for (int64_t i = 0; i < n; i++) {
        if (t->dtype == HFT_F32)
            ((float *)hft_tensor_data(t))[i] = (float)value;
        else if (t->dtype == HFT_F64)
            ((double *)hft_tensor_data(t))[i] = value;
        else
            return hft_error(HFT_EINVAL, "init_constant: %s tensors are not supported",
                             hft_dtype_name(t->dtype));
    }
    t->version++;
    return HFT_OK;
}
