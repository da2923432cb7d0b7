/* Embedding kernels for one dtype (included by embedding.c with T and SFX defined). Ids outside
 * [0, vocab) are rejected by the op before; here they give zero rows and no gradient. */

static void FN(embedding_fwd_rows)(int64_t i0, int64_t i1, void *job) {
    const hft_embedding_args *a = job;
    const T *w = (const T *)a->weight;
    T *out = (T *)a->out;
    int64_t D = a->dim, V = a->vocab;
    for (int64_t i = i0; i < i1; i++) {
        int64_t id = emb_id(a->ids, a->id_dtype, i);
        if (id >= 0 && id < V)
            memcpy(out + i * D, w + id * D, sizeof(T) * (size_t)D);
        else
            memset(out + i * D, 0, sizeof(T) * (size_t)D);
    }
}

static void FN(embedding_fwd)(const hft_embedding_args *a) {
    hft_parallel_range(a->n, a->n * a->dim > 32768, FN(embedding_fwd_rows), (void *)a);
}

/* Column blocks [b0, b1): dweight[ids[i], block] += dout[i, block] for i in order, padding_idx skipped, so
 * every element sums its contributions in the same order at any thread count. */
static void FN(embedding_bwd_blocks)(int64_t b0, int64_t b1, void *job) {
    const hft_embedding_args *a = job;
    const T *dout = (const T *)a->dout;
    T *dw = (T *)a->dweight;
    int64_t n = a->n, D = a->dim, V = a->vocab, pad = a->padding_idx, cb = emb_col_block(D);
    for (int64_t blk = b0; blk < b1; blk++) {
        int64_t c0 = blk * cb, cn = D - c0 < cb ? D - c0 : cb;
        for (int64_t i = 0; i < n; i++) {
            int64_t id = emb_id(a->ids, a->id_dtype, i);
            if (id < 0 || id >= V || id == pad) continue;
            T *restrict d = dw + id * D + c0;
            const T *restrict s = dout + i * D + c0;
            for (int64_t c = 0; c < cn; c++) d[c] += s[c];
        }
    }
}

static void FN(embedding_bwd)(const hft_embedding_args *a) {
    if (a->n == 0 || a->dim == 0) return;
    int64_t cb = emb_col_block(a->dim), blocks = (a->dim + cb - 1) / cb;
    hft_parallel_range(blocks, a->n * a->dim > 16384, FN(embedding_bwd_blocks), (void *)a);
}
