/* Finite-difference gradient checks in f64: the analytic gradient of Σ out·u (u a fixed random
 * upstream gradient) against central differences, for every element of every input that requires
 * grad. */
#ifndef HFT_GRADCHECK_H
#define HFT_GRADCHECK_H

#include "autograd/autograd.h"

typedef hft_tensor *(*gradcheck_fn)(hft_ctx *ctx, hft_tensor **inputs, void *user);

/* Returns 1 when every gradient matches within |num - ana| <= atol + rtol·|num|. */
int gradcheck(const char *name, gradcheck_fn f, int n_inputs, hft_tensor **inputs, void *user);

#endif
