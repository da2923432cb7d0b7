#include "tests/cuda_test_util.h"

#include <stdlib.h>

const hft_kernels *cuda_k;
const hft_kernels *cpu_k;

int cuda_test_main(int argc, char **argv, const test_case *cases, int n) {
    HFT_TRY(hft_runtime_init());
    cuda_k = hft_cuda_load();
    if (!cuda_k) {
        printf("skipped: %s\n", hft_error_message());
        return 77;
    }
    cpu_k = hft_kernels_for(HFT_CPU);
    char desc[256] = "";
    if (cuda_k->dev->describe(0, desc, sizeof desc) != HFT_OK) snprintf(desc, sizeof desc, "?");
    printf("CUDA table %s on %s\n", cuda_k->name, desc);
    return test_main(argc, argv, cases, n);
}

static void die(const char *what) {
    fprintf(stderr, "%s: %s\n", what, hft_error_message());
    exit(1);
}

void *dev_garbage(size_t bytes) {
    void *p = cuda_k->dev->alloc(bytes);
    if (!p) die("device allocation");
    unsigned char *h = malloc(bytes ? bytes : 1);
    memset(h, 0xA5, bytes);
    if (cuda_k->dev->copy(p, h, bytes, HFT_COPY_H2D) != HFT_OK) die("upload");
    free(h);
    return p;
}

void *dev_zeros(size_t bytes) {
    void *p = cuda_k->dev->alloc(bytes);
    if (!p) die("device allocation");
    if (cuda_k->dev->zero(p, bytes) != HFT_OK) die("zeroing");
    return p;
}

void *dev_upload(const void *host, size_t bytes) {
    void *p = cuda_k->dev->alloc(bytes);
    if (!p) die("device allocation");
    if (cuda_k->dev->copy(p, host, bytes, HFT_COPY_H2D) != HFT_OK) die("upload");
    return p;
}

void dev_download(void *host, const void *dev, size_t bytes) {
    if (cuda_k->dev->copy(host, dev, bytes, HFT_COPY_D2H) != HFT_OK) {
        test_failures++;
        fprintf(stderr, "[%s] download failed: %s\n", test_current, hft_error_message());
    }
}

void dev_free(void *p) {
    cuda_k->dev->free(p);
}

void dev_sync(const char *what) {
    hft_status s = cuda_k->dev->synchronize();
    CHECK(s == HFT_OK, "%s: %s", what, hft_error_message());
}

void host_to_half(hft_dtype dt, uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = dt == HFT_BF16 ? hft_f32_to_bf16(src[i]) : hft_f32_to_f16(src[i]);
}

void host_from_half(hft_dtype dt, float *dst, const uint16_t *src, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] = dt == HFT_BF16 ? hft_bf16_to_f32(src[i]) : hft_f16_to_f32(src[i]);
}

void host_round(hft_dtype dt, float *x, int64_t n) {
    if (dt == HFT_F32) return;
    for (int64_t i = 0; i < n; i++)
        x[i] = dt == HFT_BF16 ? hft_bf16_to_f32(hft_f32_to_bf16(x[i])) : hft_f16_to_f32(hft_f32_to_f16(x[i]));
}

void *dev_upload_as(hft_dtype dt, const float *host, int64_t n) {
    if (dt == HFT_F32) return dev_upload(host, (size_t)n * 4);
    uint16_t *h = malloc((size_t)(n ? n : 1) * 2);
    host_to_half(dt, h, host, n);
    void *p = dev_upload(h, (size_t)n * 2);
    free(h);
    return p;
}

void dev_download_as(hft_dtype dt, float *host, const void *dev, int64_t n) {
    if (dt == HFT_F32) {
        dev_download(host, dev, (size_t)n * 4);
        return;
    }
    uint16_t *h = malloc((size_t)(n ? n : 1) * 2);
    dev_download(h, dev, (size_t)n * 2);
    host_from_half(dt, host, h, n);
    free(h);
}

double dtype_eps(hft_dtype dt) {
    switch (dt) {
    case HFT_BF16:
        return 1.0 / 256;
    case HFT_F16:
        return 1.0 / 2048;
    case HFT_F64:
        return 1.0 / 9007199254740992.0;
    default:
        return 1.0 / 16777216;
    }
}

int close_f32(const char *what, const float *got, const float *want, long n, double rtol, double atol_scale) {
    double *g = malloc(sizeof(double) * (size_t)(n ? n : 1)),
           *w = malloc(sizeof(double) * (size_t)(n ? n : 1));
    for (long i = 0; i < n; i++) g[i] = got[i], w[i] = want[i];
    int ok = test_close(what, g, w, n, rtol, atol_scale);
    free(g);
    free(w);
    return ok;
}

void fill_uniform(test_rng *r, float *x, int64_t n, double lo, double hi) {
    for (int64_t i = 0; i < n; i++) x[i] = (float)test_uniform(r, lo, hi);
}
