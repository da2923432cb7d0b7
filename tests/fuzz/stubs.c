/* The fuzz target links only the safetensors reader; the tensor functions its loader uses are not reached
 * by the header parser under test, and trap if they ever are. */
#include "nn/nn.h"

const hft_kernels *hft_kernels_for(hft_device_type device) {
    (void)device;
    __builtin_trap();
}
void *hft_tensor_data(const hft_tensor *t) {
    (void)t;
    __builtin_trap();
}
void hft_tensor_free(hft_tensor *t) {
    (void)t;
    __builtin_trap();
}
hft_tensor *hft_tensor_from_data(hft_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    (void)dtype, (void)ndim, (void)shape, (void)data;
    __builtin_trap();
}
hft_tensor *hft_tensor_new(hft_dtype dtype, int ndim, const int64_t *shape) {
    (void)dtype, (void)ndim, (void)shape;
    __builtin_trap();
}
int64_t hft_tensor_numel(const hft_tensor *t) {
    (void)t;
    __builtin_trap();
}
hft_tensor *hft_tensor_wrap(hft_dtype dtype, int ndim, const int64_t *shape, void *data) {
    (void)dtype, (void)ndim, (void)shape, (void)data;
    __builtin_trap();
}
