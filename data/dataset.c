/* Datasets: hft_dataset_load by format (with the tokenized-data cache in front of the text formats), the
 * examples over a token stream (fixed blocks when packed, otherwise one truncated document each), and the
 * accessors. Reading each format lives in dataset_text.c, dataset_shard.c and dataset_hdf5.c. */
#include "data/dataset_internal.h"

#include <sys/stat.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* ---------------------------------------------------------------- the builder */

hft_status ds_builder_init(ds_builder *b, bool labels, bool type_ids, bool class_label, bool class_value) {
    memset(b, 0, sizeof *b);
    b->has_labels = labels;
    b->has_type_ids = type_ids;
    b->has_class_label = class_label;
    b->has_class_value = class_value;
    b->doc_cap = 1024;
    b->doc_off = malloc(sizeof *b->doc_off * (size_t)(b->doc_cap + 1));
    if (class_label) b->class_label = malloc(sizeof *b->class_label * (size_t)b->doc_cap);
    if (class_value) b->class_value = malloc(sizeof *b->class_value * (size_t)b->doc_cap);
    if (!b->doc_off || (class_label && !b->class_label) || (class_value && !b->class_value)) {
        ds_builder_free(b);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    b->doc_off[0] = 0;
    return ds_builder_reserve(b, 1 << 16);
}

static bool grow(void **p, size_t elem, int64_t cap) {
    void *q = realloc(*p, elem * (size_t)cap);
    if (!q) return false;
    *p = q;
    return true;
}

hft_status ds_builder_reserve(ds_builder *b, int64_t extra) {
    if (b->n + extra <= b->cap) return HFT_OK;
    int64_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + extra) cap *= 2;
    if (!grow((void **)&b->tokens, sizeof(int32_t), cap) ||
        (b->has_labels && !grow((void **)&b->labels, sizeof(int32_t), cap)) ||
        (b->has_type_ids && !grow((void **)&b->type_ids, sizeof(int32_t), cap)))
        return hft_error(HFT_ENOMEM, "out of memory (%lld tokens)", (long long)cap);
    b->cap = cap;
    return HFT_OK;
}

hft_status ds_builder_append(ds_builder *b, const int32_t *ids, const int32_t *labels,
                             const int32_t *type_ids, int64_t n) {
    HFT_TRY(ds_builder_reserve(b, n));
    memcpy(b->tokens + b->n, ids, sizeof *ids * (size_t)n);
    if (b->has_labels) {
        if (labels)
            memcpy(b->labels + b->n, labels, sizeof *labels * (size_t)n);
        else
            memcpy(b->labels + b->n, ids, sizeof *ids * (size_t)n);
    }
    if (b->has_type_ids) {
        if (type_ids)
            memcpy(b->type_ids + b->n, type_ids, sizeof *type_ids * (size_t)n);
        else
            memset(b->type_ids + b->n, 0, sizeof *type_ids * (size_t)n);
    }
    b->n += n;
    return HFT_OK;
}

hft_status ds_builder_end_doc(ds_builder *b, int64_t label, float value) {
    if (b->n == b->doc_off[b->n_docs]) return HFT_OK;
    if (b->n_docs + 1 >= b->doc_cap) {
        int64_t cap = b->doc_cap * 2;
        if (!grow((void **)&b->doc_off, sizeof(int64_t), cap + 1) ||
            (b->has_class_label && !grow((void **)&b->class_label, sizeof(int64_t), cap)) ||
            (b->has_class_value && !grow((void **)&b->class_value, sizeof(float), cap)))
            return hft_error(HFT_ENOMEM, "out of memory (%lld documents)", (long long)cap);
        b->doc_cap = cap;
    }
    if (b->has_class_label) b->class_label[b->n_docs] = label;
    if (b->has_class_value) b->class_value[b->n_docs] = value;
    b->doc_off[++b->n_docs] = b->n;
    return HFT_OK;
}

void ds_builder_move(ds_builder *b, hft_dataset *ds) {
    ds->tokens = ds->own[0] = b->tokens;
    ds->token_bytes = 4;
    ds->n_tokens = b->n;
    ds->labels = ds->own[1] = b->labels;
    ds->type_ids = ds->own[2] = b->type_ids;
    ds->doc_off = ds->own[3] = b->doc_off;
    ds->n_docs = b->n_docs;
    ds->class_label = ds->own[4] = b->class_label;
    ds->class_value = ds->own[5] = b->class_value;
    memset(b, 0, sizeof *b);
}

void ds_builder_free(ds_builder *b) {
    free(b->tokens);
    free(b->labels);
    free(b->type_ids);
    free(b->doc_off);
    free(b->class_label);
    free(b->class_value);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------- loading */

static const char *format_name(hft_data_format f) {
    static const char *names[] = {"text", "jsonl", "csv", "tsv", "tokens", "hdf5"};
    return (unsigned)f < sizeof names / sizeof names[0] ? names[f] : "?";
}

static const char *task_name(hft_data_task t) {
    static const char *names[] = {"causal_lm", "prompt_completion", "chat", "classification"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static hft_status check_spec(const hft_data_spec *s, const hft_tokenizer *tok) {
    if (!s || !s->path) return hft_error(HFT_EINVAL, "dataset: no path given");
    if ((unsigned)s->format > HFT_DATA_HDF5)
        return hft_error(HFT_EINVAL, "%s: unknown format %d", s->path, s->format);
    if ((unsigned)s->task > HFT_DATA_CLASSIFICATION)
        return hft_error(HFT_EINVAL, "%s: unknown task %d", s->path, s->task);
    if (s->max_length < 0)
        return hft_error(HFT_EINVAL, "%s: max_length %lld: expected >= 0", s->path, (long long)s->max_length);
    if (s->packing && s->max_length <= 0)
        return hft_error(HFT_EINVAL, "%s: packing needs max_length > 0 (the block size)", s->path);
    if (s->packing && s->task == HFT_DATA_CLASSIFICATION)
        return hft_error(HFT_EINVAL, "%s: packing applies to language modelling, not classification",
                         s->path);
    if (s->task == HFT_DATA_CLASSIFICATION && s->num_labels < 0)
        return hft_error(HFT_EINVAL, "%s: num_labels %lld: expected >= 0", s->path, (long long)s->num_labels);
    bool pretok = s->format == HFT_DATA_TOKENS || s->format == HFT_DATA_HDF5;
    const char *bad = NULL;
    if (s->format == HFT_DATA_TEXT && s->task != HFT_DATA_CAUSAL_LM)
        bad = "plain text holds documents for causal_lm; use jsonl or csv for fields";
    else if ((s->format == HFT_DATA_CSV || s->format == HFT_DATA_TSV) && s->task == HFT_DATA_CHAT)
        bad = "chat messages are lists: use jsonl";
    else if (pretok && (s->task == HFT_DATA_PROMPT_COMPLETION || s->task == HFT_DATA_CHAT))
        bad = "pre-tokenized data carries its own labels: use causal_lm (per-token labels are read from the "
              "file)";
    if (bad)
        return hft_error(HFT_EUNSUPPORTED, "%s: format %s with task %s: %s", s->path, format_name(s->format),
                         task_name(s->task), bad);
    if (!pretok && !tok)
        return hft_error(HFT_EINVAL, "%s: a %s dataset needs a tokenizer", s->path, format_name(s->format));
    return HFT_OK;
}

static void ds_release_streams(hft_dataset *ds) {
    if (ds->map) munmap(ds->map, ds->map_len);
    ds->map = NULL;
    ds->map_len = 0;
    for (int i = 0; i < 6; i++) {
        free(ds->own[i]);
        ds->own[i] = NULL;
    }
}

static hft_status load_text_cached(const hft_data_spec *spec, const hft_tokenizer *tok, hft_dataset *ds) {
    char *cache = NULL;
    uint64_t key = 0;
    struct stat sb;
    bool folder = stat(spec->path, &sb) == 0 && S_ISDIR(sb.st_mode);
    if (!folder)
        HFT_TRY(ds_cache_path(spec, tok, &cache, &key)); /* a folder's files are not keyed one by one */
    if (cache) {
        if (ds_map_shard(cache, ds, &key) == HFT_OK) {
            ds->from_cache = true;
            free(cache);
            return HFT_OK;
        }
        hft_error_clear(); /* absent or stale: tokenize again and overwrite it */
    }
    ds_builder b;
    bool cls = spec->task == HFT_DATA_CLASSIFICATION;
    bool regression = cls && spec->num_labels == 1;
    hft_status st =
        ds_builder_init(&b, spec->task == HFT_DATA_PROMPT_COMPLETION || spec->task == HFT_DATA_CHAT, cls,
                        cls && !regression, regression);
    if (st == HFT_OK) st = ds_load_text(spec, tok, &b, ds);
    if (st == HFT_OK) ds_builder_move(&b, ds);
    ds_builder_free(&b);
    /* An input with no examples is reported by ds_finish, and is not worth caching. */
    if (st == HFT_OK && cache && ds->n_tokens > 0) st = ds_write_shard(cache, ds, key);
    free(cache);
    return st;
}

hft_status hft_dataset_load(const hft_data_spec *spec, const hft_tokenizer *tok, hft_dataset **out) {
    *out = NULL;
    HFT_TRY(check_spec(spec, tok));
    hft_dataset *ds = calloc(1, sizeof *ds);
    if (!ds) return hft_error(HFT_ENOMEM, "out of memory");
    ds->task = spec->task;
    hft_status st;
    if (spec->format == HFT_DATA_TOKENS)
        st = ds_map_shard(spec->path, ds, NULL);
    else if (spec->format == HFT_DATA_HDF5)
        st = ds_load_hdf5(spec, ds);
    else
        st = load_text_cached(spec, tok, ds);
    if (st == HFT_OK) st = ds_finish(ds, spec, spec->path);
    if (st != HFT_OK) {
        hft_dataset_free(ds);
        return st;
    }
    *out = ds;
    return HFT_OK;
}

void ds_add_reason(hft_dataset *ds, const char *reason) {
    ds->skipped++;
    if (ds->n_reasons < DS_MAX_REASONS) {
        char *r = strdup(reason);
        if (r) ds->reasons[ds->n_reasons++] = r;
    }
}

hft_status ds_finish(hft_dataset *ds, const hft_data_spec *spec, const char *what) {
    if (spec->task == HFT_DATA_CLASSIFICATION && !ds->class_label && !ds->class_value)
        return hft_error(HFT_EFORMAT, "%s: no per-example labels for classification", what);
    if (ds->class_label && spec->num_labels > 1) /* labels read from a pre-tokenized file */
        for (int64_t d = 0; d < ds->n_docs; d++)
            if (ds->class_label[d] < 0 || ds->class_label[d] >= spec->num_labels)
                return hft_error(HFT_EFORMAT, "%s: example %lld has label %lld, outside [0, %lld)", what,
                                 (long long)d, (long long)ds->class_label[d], (long long)spec->num_labels);
    if (ds->n_tokens == 0 || ds->n_docs == 0) {
        if (ds->skipped)
            return hft_error(HFT_EFORMAT, "%s: no examples: all %lld rows were skipped (first: %s)", what,
                             (long long)ds->skipped, ds->n_reasons ? ds->reasons[0] : "?");
        return hft_error(HFT_EFORMAT, "%s: no examples (the file holds no documents)", what);
    }
    if (spec->packing) {
        /* As transformers' group_texts: the concatenation cut into blocks, the final partial block dropped.
         */
        ds->block = spec->max_length;
        ds->n_examples = ds->n_tokens / ds->block;
        ds->max_tokens = ds->block;
        if (ds->n_examples == 0)
            return hft_error(
                HFT_EFORMAT,
                "%s: %lld tokens, fewer than one block of max_length %lld (packing drops the final "
                "partial block)",
                what, (long long)ds->n_tokens, (long long)ds->block);
    } else {
        ds->block = 0;
        ds->max_length = spec->max_length;
        int64_t nonempty = 0, longest = 0;
        for (int64_t d = 0; d < ds->n_docs; d++) {
            int64_t len = ds->doc_off[d + 1] - ds->doc_off[d];
            nonempty += len > 0;
            if (len > longest) longest = len;
        }
        if (nonempty < ds->n_docs) {
            ds->ex_doc = malloc(sizeof *ds->ex_doc * (size_t)(nonempty ? nonempty : 1));
            if (!ds->ex_doc) return hft_error(HFT_ENOMEM, "out of memory");
            for (int64_t d = 0, k = 0; d < ds->n_docs; d++)
                if (ds->doc_off[d + 1] > ds->doc_off[d]) ds->ex_doc[k++] = d;
        }
        ds->n_examples = nonempty;
        ds->max_tokens = ds->max_length > 0 && longest > ds->max_length ? ds->max_length : longest;
        if (nonempty == 0) return hft_error(HFT_EFORMAT, "%s: no examples (every document is empty)", what);
    }
    if (ds->token_bytes == 2) {
        ds->scratch = malloc(sizeof *ds->scratch * (size_t)ds->max_tokens);
        if (!ds->scratch) return hft_error(HFT_ENOMEM, "out of memory");
    }
    return HFT_OK;
}

void hft_dataset_free(hft_dataset *ds) {
    if (!ds) return;
    ds_release_streams(ds);
    for (int i = 0; i < ds->n_reasons; i++) free(ds->reasons[i]);
    free(ds->ex_doc);
    free(ds->scratch);
    free(ds);
}

/* ---------------------------------------------------------------- accessors */

int64_t hft_dataset_size(const hft_dataset *ds) {
    return ds ? ds->n_examples : 0;
}

int64_t hft_dataset_skipped(const hft_dataset *ds) {
    return ds ? ds->skipped : 0;
}

const char *hft_dataset_skip_reason(const hft_dataset *ds, int64_t i) {
    return ds && i >= 0 && i < ds->n_reasons ? ds->reasons[i] : NULL;
}

int64_t hft_dataset_max_tokens(const hft_dataset *ds) {
    return ds ? ds->max_tokens : 0;
}

hft_example hft_dataset_get(const hft_dataset *ds, int64_t index) {
    hft_example ex = {0};
    if (!ds || index < 0 || index >= ds->n_examples) return ex;
    int64_t off, n, doc;
    ds_example_span(ds, index, &off, &n, &doc);
    if (ds->token_bytes == 4) {
        ex.ids = (const int32_t *)ds->tokens + off;
    } else {
        const uint16_t *src = (const uint16_t *)ds->tokens + off;
        for (int64_t t = 0; t < n; t++) ds->scratch[t] = src[t];
        ex.ids = ds->scratch;
    }
    ex.labels = ds->labels ? ds->labels + off : NULL;
    ex.type_ids = ds->type_ids ? ds->type_ids + off : NULL;
    ex.n = n;
    if (doc >= 0 && ds->class_label) ex.label = ds->class_label[doc];
    if (doc >= 0 && ds->class_value) ex.label_value = ds->class_value[doc];
    return ex;
}

int64_t hft_dataset_segment_ids(const hft_dataset *ds, int64_t index, int32_t *out) {
    if (!ds || index < 0 || index >= ds->n_examples) return 0;
    int64_t off, n, doc;
    ds_example_span(ds, index, &off, &n, &doc);
    if (doc >= 0) {
        memset(out, 0, sizeof *out * (size_t)n);
        return n;
    }
    /* The document holding the block's first token: the last boundary <= off. */
    int64_t lo = 0, hi = ds->n_docs;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (ds->doc_off[mid] <= off)
            lo = mid;
        else
            hi = mid;
    }
    int64_t next = ds->doc_off[lo + 1];
    int32_t seg = 0;
    for (int64_t t = 0; t < n; t++) {
        while (off + t >= next && lo + 1 < ds->n_docs) {
            lo++;
            next = ds->doc_off[lo + 1];
            seg++;
        }
        out[t] = seg;
    }
    return n;
}
