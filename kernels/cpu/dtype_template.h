/* Helpers for the kernels' dtype templates: a *_impl.h file is included once per floating dtype with
 * T (the C type) and SFX (f32, f64) defined; FN(name) names that dtype's function, and the math macros
 * pick the vectorisable f32 routines of cpu_math.h or libm's f64 ones. */
#ifndef HFT_DTYPE_TEMPLATE_H
#define HFT_DTYPE_TEMPLATE_H

#include "kernels/cpu/cpu_math.h"
#include "kernels/cpu/isa.h"

#define HFT_CAT3_(a, b, c) a##_##b##_##c
#define HFT_CAT3(a, b, c)  HFT_CAT3_(a, b, c)
#define FN(name)           HFT_CAT3(name, SFX, HFT_ISA_SUFFIX)
#define FN2(name, sfx)     HFT_CAT3(name, sfx, HFT_ISA_SUFFIX)

static inline double exp_f64(double x) {
    return exp(x);
}
static inline double tanh_f64(double x) {
    return tanh(x);
}
static inline double sigmoid_f64(double x) {
    return 1.0 / (1.0 + exp(-x));
}
static inline double cdf_f64(double x) {
    return hft_normal_cdf(x);
}

#endif

#undef EXPT
#undef TANHT
#undef SIGT
#undef CDFT
#undef LOGT
#undef SQRTT
#undef POWT
#undef FABST
#if defined(T_IS_F32)
#define EXPT(x)    hft_expf(x)
#define TANHT(x)   hft_tanhf(x)
#define SIGT(x)    hft_sigmoidf(x)
#define CDFT(x)    hft_normal_cdff(x)
#define LOGT(x)    logf(x)
#define SQRTT(x)   sqrtf(x)
#define POWT(x, y) powf(x, y)
#define FABST(x)   fabsf(x)
#else
#define EXPT(x)    exp_f64(x)
#define TANHT(x)   tanh_f64(x)
#define SIGT(x)    sigmoid_f64(x)
#define CDFT(x)    cdf_f64(x)
#define LOGT(x)    log(x)
#define SQRTT(x)   sqrt(x)
#define POWT(x, y) pow(x, y)
#define FABST(x)   fabs(x)
#endif
