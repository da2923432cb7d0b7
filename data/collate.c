/* Collation: examples padded into one batch of arena tensors (int64, as transformers' collators give).
 * Padding goes to the longest example in the batch (rounded up to a multiple when asked), on the side the
 * tokenizer pads; labels are -100 on padding, judged by position and never by the pad id, so a real EOS
 * keeps its loss when pad = eos. */
#include "data/dataset_internal.h"

#include <string.h>

static hft_status collate_fail(hft_ctx *ctx) {
    hft_status st = hft_ctx_status(ctx);
    return hft_error(st != HFT_OK ? st : HFT_ENOMEM, "collate: %s", hft_ctx_error(ctx));
}

hft_status hft_collate(hft_ctx *ctx, const hft_dataset *ds, const int64_t *indices, int64_t n,
                       const hft_collate_options *opts, hft_tensor **input_ids, hft_tensor **attention_mask,
                       hft_tensor **token_type_ids, hft_tensor **labels) {
    if (input_ids) *input_ids = NULL;
    if (attention_mask) *attention_mask = NULL;
    if (token_type_ids) *token_type_ids = NULL;
    if (labels) *labels = NULL;
    if (!ctx || !ds || !indices || !opts || !input_ids)
        return hft_error(HFT_EINVAL, "collate: a required argument is NULL");
    if (n < 1)
        return hft_error(HFT_EINVAL, "collate: batch of %lld examples; expected at least 1", (long long)n);
    if (opts->pad_id < 0)
        return hft_error(HFT_EINVAL, "collate: pad_id %d; a tokenizer without a pad token pads with eos",
                         opts->pad_id);
    if (opts->max_length < 0 || opts->pad_to_multiple_of < 0)
        return hft_error(HFT_EINVAL, "collate: max_length %lld and pad_to_multiple_of %lld must be >= 0",
                         (long long)opts->max_length, (long long)opts->pad_to_multiple_of);
    int64_t T = 0;
    for (int64_t b = 0; b < n; b++) {
        if (indices[b] < 0 || indices[b] >= ds->n_examples)
            return hft_error(HFT_EINVAL,
                             "collate: index %lld at batch row %lld is outside the dataset [0, %lld)",
                             (long long)indices[b], (long long)b, (long long)ds->n_examples);
        int64_t off, len, doc;
        ds_example_span(ds, indices[b], &off, &len, &doc);
        if (opts->max_length > 0 && len > opts->max_length) len = opts->max_length;
        if (len > T) T = len;
    }
    if (opts->pad_to_multiple_of > 0)
        T = (T + opts->pad_to_multiple_of - 1) / opts->pad_to_multiple_of * opts->pad_to_multiple_of;
    if (T == 0) T = 1;

    int64_t shape[2] = {n, T};
    bool classify = ds->task == HFT_DATA_CLASSIFICATION;
    hft_tensor *ids = hft_empty(ctx, HFT_I64, 2, shape);
    hft_tensor *mask = attention_mask ? hft_empty(ctx, HFT_I64, 2, shape) : NULL;
    hft_tensor *types = token_type_ids && ds->type_ids ? hft_empty(ctx, HFT_I64, 2, shape) : NULL;
    hft_tensor *lab = NULL;
    if (labels) {
        if (!classify)
            lab = hft_empty(ctx, HFT_I64, 2, shape);
        else
            lab = hft_empty(ctx, ds->class_value ? HFT_F32 : HFT_I64, 1, shape);
    }
    if (!ids || (attention_mask && !mask) || (token_type_ids && ds->type_ids && !types) || (labels && !lab))
        return collate_fail(ctx);

    int64_t *pi = hft_tensor_data(ids);
    int64_t *pm = mask ? hft_tensor_data(mask) : NULL;
    int64_t *pt = types ? hft_tensor_data(types) : NULL;
    int64_t *pl = lab && !classify ? hft_tensor_data(lab) : NULL;
    for (int64_t b = 0; b < n; b++) {
        int64_t off, len, doc;
        ds_example_span(ds, indices[b], &off, &len, &doc);
        if (opts->max_length > 0 && len > opts->max_length) len = opts->max_length;
        int64_t start = opts->pad_left ? T - len : 0;
        int64_t *ri = pi + b * T;
        for (int64_t t = 0; t < T; t++) ri[t] = opts->pad_id;
        if (ds->token_bytes == 4) {
            const int32_t *src = (const int32_t *)ds->tokens + off;
            for (int64_t t = 0; t < len; t++) ri[start + t] = src[t];
        } else {
            const uint16_t *src = (const uint16_t *)ds->tokens + off;
            for (int64_t t = 0; t < len; t++) ri[start + t] = src[t];
        }
        if (pm) {
            int64_t *rm = pm + b * T;
            memset(rm, 0, sizeof *rm * (size_t)T);
            for (int64_t t = 0; t < len; t++) rm[start + t] = 1;
        }
        if (pt) {
            int64_t *rt = pt + b * T;
            memset(rt, 0, sizeof *rt * (size_t)T);
            for (int64_t t = 0; t < len; t++) rt[start + t] = ds->type_ids[off + t];
        }
        if (pl) {
            int64_t *rl = pl + b * T;
            for (int64_t t = 0; t < T; t++) rl[t] = -100;
            if (ds->labels)
                for (int64_t t = 0; t < len; t++) rl[start + t] = ds->labels[off + t];
            else
                for (int64_t t = 0; t < len; t++) rl[start + t] = ri[start + t];
        }
        if (lab && classify) {
            if (ds->class_value)
                ((float *)hft_tensor_data(lab))[b] = doc >= 0 ? ds->class_value[doc] : 0.0f;
            else
                ((int64_t *)hft_tensor_data(lab))[b] =
                    doc >= 0 && ds->class_label ? ds->class_label[doc] : -100;
        }
    }
    *input_ids = ids;
    if (attention_mask) *attention_mask = mask;
    if (token_type_ids) *token_type_ids = types;
    if (labels) *labels = lab;
    return HFT_OK;
}
