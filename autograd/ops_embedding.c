/* embedding: rows of a weight [V, D] gathered by integer ids of any shape. Ids are checked here (an id
 * outside the vocabulary is the user's error, named with its position); backward is the kernel's
 * deterministic scatter-add, and rows at padding_idx get no gradient, as torch's padding_idx. */
#include "autograd/internal.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

typedef struct embedding_saved {
    int64_t n, padding_idx;
} embedding_saved;

static void embedding_backward(hft_ctx *ctx, hft_node *node, hft_tensor *gy) {
    const embedding_saved *s = node->saved;
    hft_tensor *w = node->in[0], *ids = node->in[1];
    assert(hft_tensor_is_contiguous(gy));
    void (*k)(const hft_embedding_args *) = AG_KERNEL(ctx, embedding_bwd, w->dtype, node->op);
    if (!k) return;
    ag_grad g;
    if (!ag_grad_begin(ctx, w, AG_CONTIGUOUS, &g)) return;
    if (!g.accumulate) ag_fill(ctx, g.dst, 0.0); /* the kernel adds rows; untouched rows stay zero */
    hft_embedding_args a = {.n = s->n,
                            .vocab = w->shape[0],
                            .dim = w->shape[1],
                            .id_dtype = ids->dtype,
                            .ids = hft_tensor_data(ids),
                            .dout = hft_tensor_data(gy),
                            .dweight = hft_tensor_data(g.dst),
                            .padding_idx = s->padding_idx};
    k(&a);
    ag_grad_end(ctx, &g);
}

/* "[1, 7]" for flat index i of a tensor of `ids`'s shape. */
static void position_of(const hft_tensor *ids, int64_t i, char *buf, size_t size) {
    int64_t idx[HFT_MAX_DIMS];
    for (int d = ids->ndim - 1; d >= 0; d--) {
        idx[d] = ids->shape[d] ? i % ids->shape[d] : 0;
        i = ids->shape[d] ? i / ids->shape[d] : 0;
    }
    size_t len = (size_t)snprintf(buf, size, "[");
    for (int d = 0; d < ids->ndim && len < size; d++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", d ? ", " : "", (long long)idx[d]);
    if (len < size) snprintf(buf + len, size - len, "]");
}

hft_tensor *hft_embedding(hft_ctx *ctx, hft_tensor *weight, hft_tensor *ids, int64_t padding_idx) {
    hft_tensor *in[2] = {weight, ids};
    if (!ag_check(ctx, "embedding", 2, in)) return NULL;
    if (weight->dtype != HFT_BF16 && weight->dtype != HFT_F16 &&
        !ag_check_float(ctx, "embedding", weight, "weight"))
        return NULL; /* bf16/f16: a frozen table held in low precision, gathered into f32 rows */
    char bw[128], bi[128];
    if (weight->ndim != 2)
        return ag_fail(ctx, HFT_EINVAL, "embedding: weight %s must be [vocab, dim]",
                       hft_tensor_describe(weight, bw, sizeof bw));
    if (ids->dtype != HFT_I32 && ids->dtype != HFT_I64)
        return ag_fail(ctx, HFT_EINVAL, "embedding: ids must be i32 or i64, got %s",
                       hft_tensor_describe(ids, bi, sizeof bi));
    if (ids->ndim + 1 > HFT_MAX_DIMS)
        return ag_fail(ctx, HFT_EINVAL, "embedding: ids %s have too many dims (at most %d)",
                       hft_tensor_describe(ids, bi, sizeof bi), HFT_MAX_DIMS - 1);
    int64_t V = weight->shape[0], D = weight->shape[1];
    if (padding_idx >= V)
        return ag_fail(ctx, HFT_EINVAL, "embedding: padding_idx %lld is outside the vocabulary of %lld",
                       (long long)padding_idx, (long long)V);
    void (*k)(const hft_embedding_args *) = AG_KERNEL(ctx, embedding_fwd, weight->dtype, "embedding");
    if (!k) return NULL;
    ids = hft_contiguous(ctx, ids);
    weight = hft_contiguous(ctx, weight);
    if (!ids || !weight) return NULL;
    int64_t n = hft_tensor_numel(ids);
    const void *idp = ag_host_data(ctx, ids); /* on a device: read back once for the range check */
    if (!idp) return NULL;
    for (int64_t i = 0; i < n; i++) {
        int64_t id = ids->dtype == HFT_I32 ? (int64_t)((const int32_t *)idp)[i] : ((const int64_t *)idp)[i];
        if (id < 0 || id >= V) {
            char pos[160];
            position_of(ids, i, pos, sizeof pos);
            return ag_fail(ctx, HFT_EINVAL,
                           "embedding: id %lld at position %s of ids %s is outside the vocabulary of %lld "
                           "(expected 0 <= id < %lld)",
                           (long long)id, pos, hft_tensor_describe(ids, bi, sizeof bi), (long long)V,
                           (long long)V);
        }
    }
    int64_t shape[HFT_MAX_DIMS];
    memcpy(shape, ids->shape, sizeof(int64_t) * (size_t)ids->ndim);
    shape[ids->ndim] = D;
    bool held_low = weight->dtype == HFT_BF16 || weight->dtype == HFT_F16; /* a frozen table: rows in f32 */
    if (held_low && weight->requires_grad)
        return ag_fail(ctx, HFT_EINVAL, "embedding: a %s table cannot train (trainable weights are f32)",
                       hft_dtype_name(weight->dtype));
    hft_tensor *y = ag_new(ctx, held_low ? HFT_F32 : weight->dtype, ids->ndim + 1, shape);
    if (!y) return NULL;
    hft_embedding_args a = {.n = n,
                            .vocab = V,
                            .dim = D,
                            .id_dtype = ids->dtype,
                            .ids = hft_tensor_data(ids),
                            .weight = hft_tensor_data(weight),
                            .out = hft_tensor_data(y),
                            .padding_idx = padding_idx < 0 ? -1 : padding_idx};
    k(&a);
    in[0] = weight, in[1] = ids;
    hft_node *node = ag_record(ctx, "embedding", embedding_backward, y, 2, in, sizeof(embedding_saved));
    if (node) *(embedding_saved *)node->saved = (embedding_saved){n, a.padding_idx};
    return y;
}
