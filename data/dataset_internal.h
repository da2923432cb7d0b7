/* The insides of a dataset, shared by the files that build one (text formats, the binary layout, HDF5, the
 * cache), collation and the tests. Not a public header: callers use data/data.h.
 *
 * A dataset is a token stream of documents (one int32 buffer, or a memory-mapped shard) with optional
 * per-token label and type-id streams, document boundaries, and per-document classification labels.
 * Examples are views into the stream: fixed blocks when packed, otherwise one (truncated) document each. */
#ifndef HFT_DATASET_INTERNAL_H
#define HFT_DATASET_INTERNAL_H

#include "data/data.h"

#include <stdarg.h>
#include <stdio.h>

#define DS_MAX_REASONS 8 /* skipped-row reasons kept for logging */

struct hft_dataset {
    hft_data_task task;
    /* The token stream: documents one after another. */
    const void *tokens;
    int token_bytes; /* 4: 32-bit ids, read in place; 2: u16 ids (a user's shard), widened on read */
    int64_t n_tokens;
    const int32_t *labels;   /* per token (-100 where no loss), or NULL: the ids themselves */
    const int32_t *type_ids; /* per token, or NULL */
    const int64_t *doc_off;  /* n_docs + 1 boundaries: document d is tokens [doc_off[d], doc_off[d+1]) */
    int64_t n_docs;
    const int64_t *class_label; /* per document (classification), or NULL */
    const float *class_value;   /* per document (regression), or NULL */

    /* Examples. */
    int64_t block; /* packing: block size, example i = tokens [i·block, (i+1)·block); 0: per document */
    int64_t max_length; /* per-document examples are truncated to this (0: no limit) */
    int64_t n_examples;
    int64_t *ex_doc; /* example → document when some documents are empty; NULL: the identity */
    int64_t max_tokens;

    int64_t skipped;
    char *reasons[DS_MAX_REASONS];
    int n_reasons;
    bool from_cache; /* the tokens came from spec.cache_dir (tests, logging) */

    /* What the dataset owns. */
    void *map;
    size_t map_len;
    void *own[6];
    int32_t *scratch; /* hft_dataset_get's widened ids for u16 streams */
};

/* Where example i lies in the stream: first token, length, and its document (-1 when packed). */
static inline void ds_example_span(const hft_dataset *ds, int64_t i, int64_t *off, int64_t *n, int64_t *doc) {
    if (ds->block > 0) {
        *off = i * ds->block;
        *n = ds->block;
        *doc = -1;
        return;
    }
    int64_t d = ds->ex_doc ? ds->ex_doc[i] : i;
    int64_t len = ds->doc_off[d + 1] - ds->doc_off[d];
    *off = ds->doc_off[d];
    *n = ds->max_length > 0 && len > ds->max_length ? ds->max_length : len;
    *doc = d;
}

static inline int32_t ds_token(const hft_dataset *ds, int64_t pos) {
    return ds->token_bytes == 4 ? ((const int32_t *)ds->tokens)[pos]
                                : (int32_t)((const uint16_t *)ds->tokens)[pos];
}

/* Builds the examples (packing or per document) over a filled stream and checks there is at least one.
 * `what` names the input for messages. */
hft_status ds_finish(hft_dataset *ds, const hft_data_spec *spec, const char *what);
void ds_add_reason(hft_dataset *ds, const char *reason);

/* ---------------------------------------------------------------- building a stream from text */

/* Growable streams that tokenization appends to, one document at a time. */
typedef struct ds_builder {
    int32_t *tokens, *labels, *type_ids;
    int64_t n, cap;
    int64_t *doc_off;
    int64_t *class_label;
    float *class_value;
    int64_t n_docs, doc_cap;
    bool has_labels, has_type_ids, has_class_label, has_class_value;
} ds_builder;

hft_status ds_builder_init(ds_builder *b, bool labels, bool type_ids, bool class_label, bool class_value);
hft_status ds_builder_reserve(ds_builder *b, int64_t extra_tokens);
/* Appends n tokens (labels/type_ids may be NULL: the ids / zeros). */
hft_status ds_builder_append(ds_builder *b, const int32_t *ids, const int32_t *labels,
                             const int32_t *type_ids, int64_t n);
/* Ends the current document (a no-op when it is empty), with its classification label. */
hft_status ds_builder_end_doc(ds_builder *b, int64_t label, float value);
/* Moves the streams into the dataset (the builder is emptied). */
void ds_builder_move(ds_builder *b, hft_dataset *ds);
void ds_builder_free(ds_builder *b);

/* Text, JSONL, CSV and TSV: read, tokenize and fill the builder (dataset_text.c). */
hft_status ds_load_text(const hft_data_spec *spec, const hft_tokenizer *tok, ds_builder *b, hft_dataset *ds);

/* ---------------------------------------------------------------- the binary layout (dataset_shard.c) */

#define DS_MAGIC      "HFTTOKS\0"
#define DS_VERSION    1u
#define DS_HEADER     64u
#define DS_ALIGN      64u
#define DS_F_LABELS   1u  /* per-token labels, i32 */
#define DS_F_TYPE_IDS 2u  /* per-token type ids, i32 */
#define DS_F_CLASS    4u  /* per-document class labels, i64 */
#define DS_F_VALUE    8u  /* per-document regression targets, f32 */
#define DS_F_META     16u /* skipped-row count and reasons */
#define DS_F_KNOWN    31u

/* Maps a file in the binary layout and points the dataset's streams into it (no copy). `key`, when not
 * NULL, must match the header's (a cache file). */
hft_status ds_map_shard(const char *path, hft_dataset *ds, const uint64_t *key);
/* Writes the dataset's streams (tokens as u32) in the binary layout, atomically. */
hft_status ds_write_shard(const char *path, const hft_dataset *ds, uint64_t key);

/* HDF5 (dataset_hdf5.c). */
hft_status ds_load_hdf5(const hft_data_spec *spec, hft_dataset *ds);

/* ---------------------------------------------------------------- the cache (dataset_cache.c) */

/* The cache file for this input, spec and tokenizer (malloc'd), and its key; NULL path when the spec has no
 * cache_dir or the input cannot be stat'ed. */
hft_status ds_cache_path(const hft_data_spec *spec, const hft_tokenizer *tok, char **path, uint64_t *key);
uint64_t ds_hash_bytes(uint64_t h, const void *p, size_t n);

/* ---------------------------------------------------------------- readers */

/* UTF-8 validity (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF): the offset of the
 * first invalid byte, or n. */
size_t ds_utf8_invalid_at(const char *s, size_t n);

/* Lines of a file, any length, without their "\n" or "\r\n"; a UTF-8 BOM at the start is dropped. */
typedef struct line_reader {
    FILE *fp;
    char *buf;
    size_t cap;
    size_t len;
    int64_t line; /* 1-based number of the line just read */
} line_reader;
hft_status line_open(line_reader *r, const char *path);
/* 1: a line is in buf/len; 0: end of file. */
int line_next(line_reader *r);
void line_close(line_reader *r);

/* RFC 4180 records: quoted fields may hold the delimiter, newlines and "" (a quote); CRLF or LF line ends;
 * a UTF-8 BOM at the start is dropped; blank lines are skipped. Lenient where Python's csv module is:
 * a quote inside an unquoted field, or text after a closing quote, is kept as text. */
typedef struct csv_reader {
    FILE *fp;
    char delim;
    unsigned char *in;
    size_t in_len, in_pos;
    char *rec; /* the record's fields, each NUL-terminated */
    size_t rec_len, rec_cap;
    size_t *start, *len; /* per field */
    int nf, fcap;
    int64_t line;       /* current physical line */
    int64_t rec_line;   /* line where the last record began */
    int64_t quote_line; /* line where an unterminated quote opened */
    bool started;
} csv_reader;
hft_status csv_open(csv_reader *r, const char *path, char delim);
/* 1: a record (nf fields); 0: end of file; -1: an unterminated quoted field (quote_line says where);
 * -2: out of memory. */
int csv_next(csv_reader *r);
void csv_close(csv_reader *r);

#endif
