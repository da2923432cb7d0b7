/* Model parity against transformers: a fixture case (tests/fixtures/models/<case>, written by
 * make_model_fixtures.py) is a model folder saved by transformers plus batch.safetensors with the batch, the
 * logits, the loss and every parameter's gradient that transformers computed. */
#ifndef HFT_MODEL_PARITY_H
#define HFT_MODEL_PARITY_H

#include "nn/nn.h"

/* Loads the case's model with hft, runs the batch (train mode; the fixtures set dropout to 0), and
 * compares logits, loss and the gradient of every parameter within rtol (atol scaled by each tensor's
 * max |reference|). Returns 1 when everything matches, 0 on a mismatch (reported), -1 when the case's
 * files are absent (a skip, reported). `save_to`, when set, also saves the loaded model there. */
int model_parity_case(const char *case_name, double rtol, const char *save_to);

/* The folder holding a case's model: the case folder itself, or for cases that reference a real model
 * shipped by a PyPI package (source.json), that package's folder when it is installed; NULL otherwise. */
char *model_parity_model_dir(const char *case_name);

/* A tensor of a fixture file as `dtype`, or NULL when absent (a failed load is reported). */
hft_tensor *model_parity_fixture(const hft_safetensors *f, const char *name, hft_dtype dtype);
/* Compares `got` with `want` (freed) within rtol, the atol being rtol x max|want| but at least atol_floor;
 * reports a mismatch under "case_name: what". Returns 1 when they agree. */
int model_parity_compare(const char *case_name, const char *what, const hft_tensor *got, hft_tensor *want,
                         double rtol, double atol_floor);

#endif
