/* The sampler: the order examples are visited in, and where a run is in it. Each epoch's order is a
 * permutation that is a pure function of (seed, epoch, dataset size): a Fisher-Yates shuffle whose draws are
 * Philox blocks keyed on the seed and counted by (step, epoch). The order is cut into global batches of
 * batch_size × world_size, and each rank takes its consecutive slice of every global batch, so the global
 * order does not depend on the world size and the cursor (epoch, global offset) resumes a run exactly, at
 * any world size. Uneven tails are described in data/README.md. */
#include "data/data.h"

#include <stdlib.h>
#include <string.h>

struct hft_sampler {
    hft_sampler_options o;
    int64_t global; /* batch_size × world_size */
    hft_cursor cur;
    int64_t *perm; /* the permutation of perm_epoch; NULL when not shuffled */
    int64_t perm_epoch;
    int64_t last_position; /* where in its epoch's order this rank's slice of the last batch starts */
};

/* A uniform integer in [0, bound): Lemire's multiply-shift with rejection, so exact; every draw consumes
 * a Philox block of its own counter, so the result depends only on (seed, epoch, i). */
static uint64_t draw(const uint32_t key[2], int64_t epoch, uint64_t i, uint64_t bound) {
    uint64_t threshold = (0 - bound) % bound;
    for (uint32_t attempt = 0;; attempt++) {
        uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)epoch, attempt}, out[4];
        hft_philox4x32(key, ctr, out);
        for (int h = 0; h < 2; h++) {
            uint64_t r = (uint64_t)out[2 * h] | (uint64_t)out[2 * h + 1] << 32;
            unsigned __int128 m = (unsigned __int128)r * bound;
            if ((uint64_t)m >= threshold) return (uint64_t)(m >> 64);
        }
    }
}

static void permute(hft_sampler *s, int64_t epoch) {
    int64_t n = s->o.dataset_size;
    /* The data stream's key differs from dropout's for the same seed (a fixed tag in the high word). */
    uint32_t key[2] = {(uint32_t)s->o.seed, (uint32_t)(s->o.seed >> 32) ^ 0x64617461u};
    for (int64_t i = 0; i < n; i++) s->perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)draw(key, epoch, (uint64_t)i, (uint64_t)i + 1);
        int64_t t = s->perm[i];
        s->perm[i] = s->perm[j];
        s->perm[j] = t;
    }
    s->perm_epoch = epoch;
}

hft_status hft_sampler_new(const hft_sampler_options *o, hft_sampler **out) {
    *out = NULL;
    if (!o) return hft_error(HFT_EINVAL, "sampler: no options");
    if (o->dataset_size < 1)
        return hft_error(HFT_EINVAL, "sampler: dataset_size %lld; expected at least 1",
                         (long long)o->dataset_size);
    if (o->batch_size < 1)
        return hft_error(HFT_EINVAL, "sampler: batch_size %lld; expected at least 1",
                         (long long)o->batch_size);
    if (o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size)
        return hft_error(HFT_EINVAL,
                         "sampler: rank %d of world_size %d; expected 0 <= rank < world_size >= 1", o->rank,
                         o->world_size);
    if (o->batch_size > INT64_MAX / o->world_size)
        return hft_error(HFT_EINVAL, "sampler: batch_size × world_size overflows");
    hft_sampler *s = calloc(1, sizeof *s);
    if (!s) return hft_error(HFT_ENOMEM, "out of memory");
    s->o = *o;
    s->global = o->batch_size * o->world_size;
    s->perm_epoch = -1;
    if (o->shuffle) {
        s->perm = malloc(sizeof *s->perm * (size_t)o->dataset_size);
        if (!s->perm) {
            free(s);
            return hft_error(HFT_ENOMEM, "sampler: out of memory for %lld indices",
                             (long long)o->dataset_size);
        }
    }
    *out = s;
    return HFT_OK;
}

void hft_sampler_free(hft_sampler *s) {
    if (!s) return;
    free(s->perm);
    free(s);
}

int64_t hft_sampler_batches_per_epoch(const hft_sampler *s) {
    int64_t n = s->o.dataset_size;
    return s->o.drop_last ? n / s->global : (n + s->global - 1) / s->global;
}

static int64_t at(hft_sampler *s, int64_t pos) {
    return s->perm ? s->perm[pos] : pos;
}

/* Whether the epoch has no global batch left at the cursor. */
static bool epoch_done(const hft_sampler *s) {
    int64_t remaining = s->o.dataset_size - s->cur.offset;
    return remaining <= 0 || (s->o.drop_last && remaining < s->global);
}

/* This rank's slice of the global batch of m examples at the cursor: where it starts in the batch, and its
 * length. A full batch gives every rank batch_size; the last partial one cuts consecutive slices as equal as
 * they can be (the first m % W ranks one more). */
static void slice(const hft_sampler *s, int64_t m, int64_t *start, int64_t *count) {
    int64_t b = s->o.batch_size, W = s->o.world_size, r = s->o.rank;
    if (m == s->global) {
        *start = r * b;
        *count = b;
    } else {
        int64_t base = m / W, extra = m % W;
        *start = r * base + (r < extra ? r : extra);
        *count = base + (r < extra);
    }
}

int64_t hft_sampler_next_position(const hft_sampler *s) {
    int64_t n = s->o.dataset_size, start, count;
    if (epoch_done(s)) { /* the next batch is the next epoch's first */
        slice(s, n < s->global ? n : s->global, &start, &count);
        return (s->cur.epoch + 1) * n + start;
    }
    int64_t remaining = n - s->cur.offset;
    slice(s, remaining < s->global ? remaining : s->global, &start, &count);
    return s->cur.epoch * n + s->cur.offset + start;
}

int64_t hft_sampler_next(hft_sampler *s, int64_t *indices) {
    int64_t n = s->o.dataset_size, r = s->o.rank;
    int64_t remaining = n - s->cur.offset;
    if (epoch_done(s)) {
        s->cur.epoch++;
        s->cur.offset = 0;
        return 0;
    }
    if (s->perm && s->perm_epoch != s->cur.epoch) permute(s, s->cur.epoch);
    int64_t m = remaining < s->global ? remaining : s->global; /* this global batch */
    int64_t start, count;
    slice(s, m, &start, &count);
    int64_t k = 0;
    s->last_position = s->cur.epoch * n + s->cur.offset + start;
    for (; k < count; k++) indices[k] = at(s, s->cur.offset + start + k);
    if (count == 0) /* fewer examples than ranks: a rank without one repeats one from the epoch's start */
        indices[k++] = at(s, (r - m) % n);
    s->cur.offset += m;
    return k;
}

int64_t hft_sampler_last_position(const hft_sampler *s) {
    return s->last_position;
}

hft_cursor hft_sampler_cursor(const hft_sampler *s) {
    return s->cur;
}

hft_status hft_sampler_seek(hft_sampler *s, hft_cursor c) {
    if (c.epoch < 0 || c.offset < 0 || c.offset > s->o.dataset_size)
        return hft_error(
            HFT_EINVAL,
            "sampler: cursor (epoch %lld, offset %lld) is outside a dataset of %lld examples (was the "
            "data changed since the checkpoint?)",
            (long long)c.epoch, (long long)c.offset, (long long)s->o.dataset_size);
    s->cur = c;
    return HFT_OK;
}
