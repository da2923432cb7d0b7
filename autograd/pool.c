/* The gradient pool: blocks in size classes four to a doubling (at most 25% slack), kept on free lists
 * when released. Backward takes each activation gradient from here and returns it as soon as the node
 * that consumes it has run, so peak memory holds only the gradients alive at once. A request whose class
 * is empty takes the smallest free block of a larger class before asking the heap: once a step at the
 * longest sequence length has run, a shorter step's requests (each no larger than its counterpart) are
 * served by the blocks that step left, and nothing more is allocated.
 *
 * On the host each block carries its header inline, just before the data. A device block cannot (the host
 * must never dereference device memory), so its header is a separate host record, found again on release
 * through a host-side hash table keyed by the block's device address. */
#include "autograd/internal.h"

#include <stdlib.h>
#include <string.h>

#define POOL_CLASSES 160
#define HEADER       64
#define DEV_BUCKETS  1024 /* chained, so any number of blocks fits; this only bounds the chain length */

typedef struct block_header {
    struct block_header *next;
    int cls;
    void *data;                 /* device blocks only: the device address */
    struct block_header *chain; /* device blocks only: the next record of its hash bucket */
} block_header;

struct pool {
    block_header *free[POOL_CLASSES];
    size_t used, peak, reserved;
    size_t *heap_allocations;
    const hft_device_api *dev;
    block_header **table; /* device pools: every block's record, by address */
};

static size_t class_size(int c) {
    return (size_t)(4 + (c & 3)) << ((c >> 2) + 6);
}

static int class_of(size_t bytes) {
    if (bytes <= 256) return 0;
    int e = 63 - __builtin_clzll((unsigned long long)(bytes - 1)); /* 2^e < bytes <= 2^(e+1) */
    int c = (e - 8) * 4;
    if (c < 0) c = 0;
    while (c < POOL_CLASSES && class_size(c) < bytes) c++;
    return c;
}

static size_t bucket_of(const void *data) {
    uintptr_t a = (uintptr_t)data >> 8; /* device blocks are at least 256-byte aligned */
    return (size_t)((a * 0x9E3779B97F4A7C15ull) >> 54) % DEV_BUCKETS;
}

pool *pool_new(size_t *heap_counter, const hft_device_api *dev) {
    pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->heap_allocations = heap_counter;
    p->dev = dev;
    if (dev && !(p->table = calloc(DEV_BUCKETS, sizeof *p->table))) {
        free(p);
        return NULL;
    }
    return p;
}

static void block_free(pool *p, block_header *h) {
    if (p->dev) p->dev->free(h->data);
    free(h);
}

void pool_free_all(pool *p) {
    if (!p) return;
    for (int c = 0; c < POOL_CLASSES; c++) {
        block_header *h = p->free[c];
        while (h) {
            block_header *next = h->next;
            block_free(p, h);
            h = next;
        }
    }
    free(p->table);
    free(p);
}

/* A new block of class c: host memory with its header in front, or a device block and its host record. */
static block_header *block_new(pool *p, int c) {
    if (!p->dev) return aligned_alloc(HEADER, HEADER + class_size(c));
    block_header *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->data = p->dev->alloc(class_size(c)); /* records its own error */
    if (!h->data) {
        free(h);
        return NULL;
    }
    size_t b = bucket_of(h->data);
    h->chain = p->table[b];
    p->table[b] = h;
    return h;
}

static void *block_data(const pool *p, block_header *h) {
    return p->dev ? h->data : (char *)h + HEADER;
}

static block_header *header_of(const pool *p, void *data) {
    if (!p->dev) return (block_header *)((char *)data - HEADER);
    block_header *h = p->table[bucket_of(data)];
    while (h && h->data != data) h = h->chain;
    return h;
}

void *pool_alloc(pool *p, size_t bytes) {
    int c = class_of(bytes ? bytes : 1);
    if (c >= POOL_CLASSES) return NULL;
    block_header *h = NULL;
    for (int k = c; k < POOL_CLASSES && !h; k++) {
        h = p->free[k];
        if (h) p->free[k] = h->next;
    }
    if (h) {
        c = h->cls;
    } else {
        h = block_new(p, c);
        if (!h) return NULL;
        if (p->heap_allocations) (*p->heap_allocations)++;
        h->cls = c;
        p->reserved += class_size(c);
    }
    h->next = NULL;
    p->used += class_size(c);
    if (p->used > p->peak) p->peak = p->used;
    return block_data(p, h);
}

void pool_release(pool *p, void *data) {
    if (!data) return;
    block_header *h = header_of(p, data);
    if (!h) return; /* not a block of this pool: cannot happen for what pool_alloc handed out */
    p->used -= class_size(h->cls);
    h->next = p->free[h->cls];
    p->free[h->cls] = h;
}

void pool_stats(const pool *p, size_t *used, size_t *peak, size_t *reserved) {
    *used = p->used;
    *peak = p->peak;
    *reserved = p->reserved;
}
