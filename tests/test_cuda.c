/* The CUDA module: loads where it was built, and on a machine with a GPU runs a kernel and checks it
 * against the CPU. Without a GPU (or without the module) the test is skipped with the reason. */
#include <dlfcn.h>

#include "tests/test_util.h"

#define SKIP 77

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "build/libhft_cuda.so";
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("skipped: CUDA module not loadable (%s)\n", dlerror());
        return SKIP;
    }
    int (*count)(char *, int) = (int (*)(char *, int))dlsym(h, "hft_cuda_device_count");
    int (*axpy)(int, float, const float *, float *, char *, int) =
        (int (*)(int, float, const float *, float *, char *, int))dlsym(h, "hft_cuda_axpy_host");
    char why[256] = "";
    int n = count ? count(why, sizeof why) : -1;
    if (n <= 0) {
        printf("skipped: no CUDA device (%s)\n", n < 0 ? why : "0 devices");
        dlclose(h);
        return SKIP;
    }
    float x[1000], y[1000], want[1000];
    for (int i = 0; i < 1000; i++)
        x[i] = (float)i * 0.5f, y[i] = 1.0f - (float)i, want[i] = y[i] + 2.0f * x[i];
    int rc = axpy(1000, 2.0f, x, y, why, sizeof why);
    int bad = rc != 0;
    for (int i = 0; i < 1000 && !bad; i++) bad = y[i] != want[i];
    printf("%s: CUDA axpy on %d device(s) %s\n", bad ? "FAIL" : "ok", n, rc ? why : "");
    dlclose(h);
    return bad;
}
