/* libFuzzer target: any bytes given to the safetensors reader either open as a valid file — every entry's
 * data inside the mapping, metadata readable — or are refused with a message; never a crash or an
 * out-of-bounds read (built with AddressSanitizer and UBSan). */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "nn/nn.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("safetensors", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    hft_safetensors *f = NULL;
    if (hft_safetensors_open(path, &f) == HFT_OK) {
        volatile uint8_t sink = 0;
        for (int i = 0; i < hft_safetensors_count(f); i++) {
            const hft_st_entry *e = hft_safetensors_entry(f, i);
            if (e->nbytes) sink ^= ((const uint8_t *)e->data)[0] ^ ((const uint8_t *)e->data)[e->nbytes - 1];
            if (hft_safetensors_find(f, e->name) != e) __builtin_trap();
        }
        (void)hft_safetensors_metadata(f, "format");
        (void)sink;
        hft_safetensors_close(f);
    } else if (hft_error_message()[0] == '\0') {
        __builtin_trap(); /* every refusal says why */
    }
    close(fd);
    return 0;
}
