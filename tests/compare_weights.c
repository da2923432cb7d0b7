/* compare_weights A.safetensors B.safetensors TOLERANCE: the two files hold the same tensors (names,
 * shapes) and, for each, ‖a − b‖ / ‖a‖ ≤ TOLERANCE (0: bit-identical). Prints the largest ratio and the
 * tensor it is in; exit status 1 when a check fails. Per tensor, not per element: Adam flips the sign of
 * a near-zero gradient's update on rounding noise, so element-wise ratios say nothing (DESIGN.md). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: compare_weights A.safetensors B.safetensors TOLERANCE\n");
        return 2;
    }
    double tol = atof(argv[3]), worst = 0;
    const char *worst_name = "";
    hft_safetensors *a = NULL, *b = NULL;
    if (hft_runtime_init() != HFT_OK || hft_safetensors_open(argv[1], &a) != HFT_OK ||
        hft_safetensors_open(argv[2], &b) != HFT_OK) {
        fprintf(stderr, "compare_weights: %s\n", hft_error_message());
        return 1;
    }
    int bad = hft_safetensors_count(a) != hft_safetensors_count(b);
    if (bad)
        printf("%s has %d tensors, %s %d\n", argv[1], hft_safetensors_count(a), argv[2],
               hft_safetensors_count(b));
    for (int i = 0; i < hft_safetensors_count(a) && !bad; i++) {
        const hft_st_entry *ea = hft_safetensors_entry(a, i), *eb = hft_safetensors_find(b, ea->name);
        if (!eb || eb->ndim != ea->ndim || memcmp(ea->shape, eb->shape, sizeof ea->shape) != 0) {
            printf("%s: missing or of another shape in %s\n", ea->name, argv[2]);
            bad = 1;
            break;
        }
        hft_tensor *ta = NULL, *tb = NULL;
        if (hft_safetensors_load(a, ea->name, HFT_F64, false, &ta) != HFT_OK ||
            hft_safetensors_load(b, ea->name, HFT_F64, false, &tb) != HFT_OK) {
            fprintf(stderr, "compare_weights: %s\n", hft_error_message());
            return 1;
        }
        const double *x = hft_tensor_data(ta), *y = hft_tensor_data(tb);
        double diff = 0, norm = 0;
        for (int64_t k = 0; k < hft_tensor_numel(ta); k++) {
            diff += (x[k] - y[k]) * (x[k] - y[k]);
            norm += x[k] * x[k];
        }
        double ratio = norm > 0 ? sqrt(diff / norm) : sqrt(diff);
        if (ratio > worst || (i == 0 && ratio == 0)) worst = ratio, worst_name = ea->name;
        if (tol == 0 ? diff != 0 : ratio > tol) {
            printf("%s: |a - b| / |a| = %.3g, above %g\n", ea->name, ratio, tol);
            bad = 1;
        }
        hft_tensor_free(ta);
        hft_tensor_free(tb);
    }
    printf("%s: %d tensors, largest |a - b| / |a| = %.3g (%s), tolerance %g\n", bad ? "FAIL" : "ok",
           hft_safetensors_count(a), worst, worst_name, tol);
    hft_safetensors_close(a);
    hft_safetensors_close(b);
    return bad;
}
