/* Instantiates a dtype template once per floating dtype: define HFT_TEMPLATE as the *_impl.h file to
 * include, then include this file. Each instance sees T (the C type) and SFX (f32, f64); FN(name) names
 * its functions, FN2(name, f32) names them from outside (dtype_template.h). */
#ifndef HFT_TEMPLATE
#error "define HFT_TEMPLATE before including instantiate.h"
#endif

#define T   float
#define SFX f32
#define T_IS_F32
#include "kernels/cpu/dtype_template.h"
#include HFT_TEMPLATE
#undef T
#undef SFX
#undef T_IS_F32

#define T   double
#define SFX f64
#include "kernels/cpu/dtype_template.h"
#include HFT_TEMPLATE
#undef T
#undef SFX

#undef HFT_TEMPLATE
