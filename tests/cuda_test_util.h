/* What the CUDA op tests share: the table under test (the GPU module, or the host emulator when
 * HFT_CUDA_MODULE names libhft_cuda_emu.so), device buffers, dtype conversions of host arrays and the
 * tolerances that come from a dtype's epsilon. Each CUDA op is checked against its CPU twin. */
#ifndef HFT_CUDA_TEST_UTIL_H
#define HFT_CUDA_TEST_UTIL_H

#include <stdint.h>

#include "kernels/kernels.h"
#include "tests/test_util.h"

/* The CUDA table and the CPU table its ops are compared with (both set by cuda_test_main). */
extern const hft_kernels *cuda_k;
extern const hft_kernels *cpu_k;

/* Loads the CUDA table (exit 77, "skipped: ...", where it cannot) and runs the tests. */
int cuda_test_main(int argc, char **argv, const test_case *cases, int n);

/* Device buffers; a failure ends the test program with the error. dev_garbage fills with 0xA5 bytes, so
 * an output element a kernel forgets to write shows. */
void *dev_upload(const void *host, size_t bytes);
void *dev_garbage(size_t bytes);
void *dev_zeros(size_t bytes);
void dev_download(void *host, const void *dev, size_t bytes);
void dev_free(void *p);
/* Waits for the queued kernels; CHECKs that none failed. */
void dev_sync(const char *what);

/* Host conversions between f32 arrays and bf16 / f16 storage (round to nearest even). */
void host_to_half(hft_dtype dt, uint16_t *dst, const float *src, int64_t n);
void host_from_half(hft_dtype dt, float *dst, const uint16_t *src, int64_t n);
/* Rounds an f32 array to the precision of dt in place (identity for f32): the inputs a low-precision
 * op sees, so the CPU twin runs on the same values. */
void host_round(hft_dtype dt, float *x, int64_t n);
/* Uploads an f32 array as dt (f32, bf16 or f16); download the other way. */
void *dev_upload_as(hft_dtype dt, const float *host, int64_t n);
void dev_download_as(hft_dtype dt, float *host, const void *dev, int64_t n);

/* The unit roundoff of a dtype: 2^-24 (f32), 2^-8 (bf16), 2^-11 (f16). Tolerances are multiples of it. */
double dtype_eps(hft_dtype dt);
/* test_close over f32 arrays. */
int close_f32(const char *what, const float *got, const float *want, long n, double rtol, double atol_scale);
/* n uniform values in [lo, hi). */
void fill_uniform(test_rng *r, float *x, int64_t n, double lo, double hi);

#endif
