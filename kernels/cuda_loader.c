/* Finds and opens the CUDA module at run time, so that every hft binary starts where there is no GPU
 * driver: the module (and with it libcudart, cuBLASLt) is only loaded when CUDA is asked for. */
#include <dlfcn.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernels/kernels.h"

void hft_kernels_set_cuda(const hft_kernels *table); /* dispatch.c */

/* "<folder of this executable>/<rel>" into buf; false when it cannot be told. */
static bool beside_executable(char *buf, size_t size, const char *rel) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) return false;
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash) return false;
    *slash = '\0';
    int w = snprintf(buf, size, "%s/%s", exe, rel);
    return w > 0 && (size_t)w < size;
}

void hft_module_path(const char *env, const char *file, char *out, size_t size) {
    const char *set = env ? getenv(env) : NULL;
    if (set && *set) {
        snprintf(out, size, "%s", set);
        return;
    }
    /* beside the binary (an install), ../lib (an install prefix), ../ (tests/ and bench/ of a build) */
    const char *dirs[] = {"", "../lib/", "../"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char rel[PATH_MAX];
        snprintf(rel, sizeof rel, "%s%s", dirs[i], file);
        if (beside_executable(out, size, rel) && access(out, R_OK) == 0) return;
    }
    snprintf(out, size, "%s", file); /* the library path */
}

const hft_kernels *hft_cuda_load(void) {
    static const hft_kernels *table;
    static bool tried;
    static char why[1024];
    static hft_status why_status;
    if (tried) {
        if (!table) hft_error(why_status, "%s", why);
        return table;
    }
    tried = true;

    char path[PATH_MAX];
    hft_module_path("HFT_CUDA_MODULE", "libhft_cuda.so", path, sizeof path);
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        why_status = HFT_EUNSUPPORTED;
        snprintf(
            why, sizeof why,
            "CUDA asked for, but the CUDA module could not be loaded (%s); this build of hft has no CUDA "
            "backend or its CUDA libraries are missing: build where nvcc is found, or set HFT_CUDA_MODULE",
            dlerror());
        return hft_error(why_status, "%s", why), NULL;
    }
    hft_cuda_module_open_fn open_fn = (hft_cuda_module_open_fn)dlsym(h, "hft_cuda_module_open");
    if (!open_fn) {
        why_status = HFT_EDEVICE;
        snprintf(why, sizeof why,
                 "CUDA module %.900s has no entry point hft_cuda_module_open (built from other sources?)",
                 path);
        return hft_error(why_status, "%s", why), NULL;
    }
    static const hft_cuda_host host = {HFT_CUDA_MODULE_ABI, hft_error, hft_philox4x32};
    hft_error_clear();
    table = open_fn(&host);
    if (!table) {
        why_status = hft_error_status() != HFT_OK ? hft_error_status() : HFT_EDEVICE;
        snprintf(why, sizeof why, "%s",
                 *hft_error_message() ? hft_error_message() : "CUDA module refused to open (ABI mismatch)");
        return hft_error(why_status, "%s", why), NULL;
    }
    hft_kernels_set_cuda(table);
    return table;
}
