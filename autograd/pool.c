/* The gradient pool: blocks in size classes four to a doubling (at most 25% slack), kept on free lists
 * when released. Backward takes each activation gradient from here and returns it as soon as the node
 * that consumes it has run, so peak memory holds only the gradients alive at once. A request whose class
 * is empty takes the smallest free block of a larger class before asking the heap: once a step at the
 * longest sequence length has run, a shorter step's requests (each no larger than its counterpart) are
 * served by the blocks that step left, and nothing more is allocated. */
#include "autograd/internal.h"

#include <stdlib.h>
#include <string.h>

#define POOL_CLASSES 160
#define HEADER       64

typedef struct block_header {
    struct block_header *next;
    int cls;
} block_header;

struct pool {
    block_header *free[POOL_CLASSES];
    size_t used, peak, reserved;
    size_t *heap_allocations;
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

pool *pool_new(size_t *heap_counter) {
    pool *p = calloc(1, sizeof *p);
    if (p) p->heap_allocations = heap_counter;
    return p;
}

void pool_free_all(pool *p) {
    if (!p) return;
    for (int c = 0; c < POOL_CLASSES; c++) {
        block_header *h = p->free[c];
        while (h) {
            block_header *next = h->next;
            free(h);
            h = next;
        }
    }
    free(p);
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
        h = aligned_alloc(HEADER, HEADER + class_size(c));
        if (!h) return NULL;
        if (p->heap_allocations) (*p->heap_allocations)++;
        h->cls = c;
        p->reserved += class_size(c);
    }
    h->next = NULL;
    p->used += class_size(c);
    if (p->used > p->peak) p->peak = p->used;
    return (char *)h + HEADER;
}

void pool_release(pool *p, void *data) {
    if (!data) return;
    block_header *h = (block_header *)((char *)data - HEADER);
    p->used -= class_size(h->cls);
    h->next = p->free[h->cls];
    p->free[h->cls] = h;
}

void pool_stats(const pool *p, size_t *used, size_t *peak, size_t *reserved) {
    *used = p->used;
    *peak = p->peak;
    *reserved = p->reserved;
}
