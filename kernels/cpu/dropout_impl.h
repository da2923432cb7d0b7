/* Dropout for one dtype (included by dropout.c with T and SFX defined). A tile of the mask (the scale
 * where kept, 0 where dropped) is drawn four elements per Philox call, then applied in one vectorised
 * multiply; x·0 keeps torch's NaN propagation for dropped non-finite inputs. */

#define DROPOUT_TILE 1024 /* a multiple of 4, so every tile starts on a Philox block */

/* Tiles [t0, t1), each DROPOUT_TILE elements of one sample. */
static void FN(dropout_tiles)(int64_t t0, int64_t t1, void *job) {
    const hft_dropout_args *a = job;
    const T *x = (const T *)a->x;
    T *y = (T *)a->y;
    int64_t per = a->per_sample, tiles = (per + DROPOUT_TILE - 1) / DROPOUT_TILE;
    float p = (float)a->p;
    T scale = a->p < 1 ? (T)1 / (T)(1 - a->p) : (T)0;
    for (int64_t task = t0; task < t1; task++) {
        int64_t s = task / tiles, e0 = (task % tiles) * DROPOUT_TILE;
        int64_t n = per - e0 < DROPOUT_TILE ? per - e0 : DROPOUT_TILE;
        uint32_t bits[DROPOUT_TILE];
        T mask[DROPOUT_TILE];
        int64_t sample = a->sample0 + s;
        uint64_t block0 = (uint64_t)e0 >> 2;
        int64_t nb = (n + 3) / 4;
        for (int64_t b = 0; b < nb; b++) philox_block(&a->key, sample, block0 + (uint64_t)b, bits + 4 * b);
        for (int64_t i = 0; i < 4 * nb; i++) mask[i] = hft_u32_to_unit(bits[i]) >= p ? scale : (T)0;
        const T *restrict xs = x + s * per + e0;
        T *restrict ys = y + s * per + e0;
        if (a->accumulate) {
            for (int64_t i = 0; i < n; i++) ys[i] += xs[i] * mask[i];
        } else {
            for (int64_t i = 0; i < n; i++) ys[i] = xs[i] * mask[i];
        }
    }
}

static void FN(dropout)(const hft_dropout_args *a) {
    int64_t per = a->per_sample;
    if (a->samples <= 0 || per <= 0) return;
    int64_t tasks = a->samples * ((per + DROPOUT_TILE - 1) / DROPOUT_TILE);
    hft_parallel_range(tasks, a->samples * per > 32768, FN(dropout_tiles), (void *)a);
}
