/* Shared by the safetensors reader (safetensors.c) and writer (safetensors_write.c). */
#ifndef HFT_SAFETENSORS_INTERNAL_H
#define HFT_SAFETENSORS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* The offset of the first byte that is not valid UTF-8 (as Rust's str::from_utf8 judges it), or n. */
size_t st_utf8_invalid_at(const uint8_t *s, size_t n);

#endif
