/* The activation arena: a bump allocator over a few large chunks. A micro-batch allocates forward and
 * freely; reset makes all of it reusable at once. When a micro-batch needed more than one chunk, reset
 * replaces them by one chunk of the combined size, so after the first step the arena is one block and a
 * steady step allocates nothing from the heap. Under AddressSanitizer released memory is poisoned, so
 * a tensor used after its arena was reset is reported at the faulting access. A context on a device keeps
 * its data arena in device memory (the chunks come from the device table's allocator and are never touched
 * on the host); the bookkeeping here (chunk list, offsets) stays on the host. */
#include "autograd/internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_ALIGN 64
#define MIN_CHUNK   ((size_t)1 << 20)

static size_t align_up(size_t n, size_t a) {
    return (n + a - 1) & ~(a - 1);
}

static char *chunk_alloc(const bump *b, size_t size) {
    if (b->dev) return b->dev->alloc(size); /* device memory: cudaMalloc aligns to 256 bytes */
    char *base = aligned_alloc(ARENA_ALIGN, size);
    if (base) POISON(base, size);
    return base;
}

static void chunk_free(const bump *b, char *base, size_t size) {
    if (b->dev) {
        b->dev->free(base);
        return;
    }
    UNPOISON(base, size);
    free(base);
}

static bool add_chunk(bump *b, size_t size) {
    if (b->n_chunks == b->cap_chunks) {
        int cap = b->cap_chunks ? b->cap_chunks * 2 : 8;
        bump_chunk *c = realloc(b->chunks, (size_t)cap * sizeof *c);
        if (!c) return false;
        b->chunks = c;
        b->cap_chunks = cap;
        if (b->heap_allocations) (*b->heap_allocations)++;
    }
    size = align_up(size, ARENA_ALIGN);
    char *base = chunk_alloc(b, size);
    if (!base) return false;
    if (b->heap_allocations) (*b->heap_allocations)++;
    b->chunks[b->n_chunks++] = (bump_chunk){base, size};
    return true;
}

void bump_init(bump *b, size_t initial, size_t *heap_counter, const hft_device_api *dev) {
    memset(b, 0, sizeof *b);
    b->heap_allocations = heap_counter;
    b->dev = dev;
    if (initial) add_chunk(b, initial);
}

void *bump_alloc(bump *b, size_t bytes) {
    bytes = align_up(bytes ? bytes : 1, ARENA_ALIGN);
    for (; b->cur < b->n_chunks; b->cur++, b->off = 0) {
        bump_chunk *c = &b->chunks[b->cur];
        if (b->off + bytes <= c->size) {
            void *p = c->base + b->off;
            b->off += bytes;
            b->used += bytes;
            if (b->used > b->peak) b->peak = b->used;
            if (!b->dev) UNPOISON(p, bytes);
            return p;
        }
    }
    size_t last = b->n_chunks ? b->chunks[b->n_chunks - 1].size : 0;
    size_t size = bytes > 2 * last ? bytes : 2 * last;
    if (size < MIN_CHUNK) size = MIN_CHUNK;
    if (!add_chunk(b, size)) return NULL;
    b->cur = b->n_chunks - 1;
    b->off = 0;
    return bump_alloc(b, bytes);
}

void bump_reset(bump *b) {
    if (b->n_chunks > 1 && b->cur > 0) {
        size_t total = 0;
        for (int i = 0; i < b->n_chunks; i++) {
            total += b->chunks[i].size;
            chunk_free(b, b->chunks[i].base, b->chunks[i].size);
        }
        b->n_chunks = 0;
        add_chunk(b, total); /* on failure the arena simply starts empty and grows again */
    } else {
        for (int i = 0; i < b->n_chunks && !b->dev; i++) POISON(b->chunks[i].base, b->chunks[i].size);
    }
    b->cur = 0;
    b->off = 0;
    b->used = 0;
}

void bump_free(bump *b) {
    for (int i = 0; i < b->n_chunks; i++) chunk_free(b, b->chunks[i].base, b->chunks[i].size);
    free(b->chunks);
    memset(b, 0, sizeof *b);
}

size_t bump_reserved(const bump *b) {
    size_t total = 0;
    for (int i = 0; i < b->n_chunks; i++) total += b->chunks[i].size;
    return total;
}
