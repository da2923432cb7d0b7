/* data: tokenizers and the data pipeline. Text in (plain text, JSONL, CSV/TSV, pre-tokenized shards, HDF5),
 * token ids out, as Hugging Face's `tokenizers` would produce them; examples collated into padded batches;
 * a sampler whose position is a saved cursor, so a resumed run sees exactly the batches an uninterrupted
 * one would. Knows nothing of models or the Trainer. */
#ifndef HFT_DATA_H
#define HFT_DATA_H

#include "autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- tokenizers */

typedef struct hft_tokenizer hft_tokenizer;

/* Loads tokenizer.json (a file, or a folder holding it, with tokenizer_config.json and
 * special_tokens_map.json read for the special tokens, padding side and model_max_length when present), or
 * the older layouts: a folder with vocab.json + merges.txt (byte-level BPE, GPT-2) or vocab.txt (WordPiece,
 * BERT). Errors name the file and the JSON key at fault; a component hft does not implement is refused by
 * name. */
hft_status hft_tokenizer_load(const char *path, hft_tokenizer **out);
/* A byte-level tokenizer with no merges: ids 0-255 are the bytes, 256 is "<|endoftext|>" (bos, eos and pad).
 * For training small models from scratch on text without a download. */
hft_status hft_tokenizer_bytes(hft_tokenizer **out);
void hft_tokenizer_free(hft_tokenizer *t);

/* Token ids (and, where the tokenizer tracks them, byte offsets into the input) of one encoding. The
 * buffers belong to the struct and grow as needed: reuse one across calls. */
typedef struct hft_encoding {
    int32_t *ids;
    int64_t n, cap;
    int64_t (*offsets)[2]; /* [begin, end) byte offsets in the input, or NULL if not tracked */
    int32_t *type_ids;     /* the post-processor's segment ids (0, or 1 for a pair's second text) */
    int32_t *special_mask; /* 1 where the post-processor added the id (special tokens typed in the text get 0, as HF) */
} hft_encoding;
void hft_encoding_free(hft_encoding *e);

/* Encodes UTF-8 text (invalid UTF-8 is an error naming the byte offset) as HF's
 * tokenizer.encode(text, add_special_tokens=...) does; text_pair may be NULL. */
hft_status hft_tokenizer_encode(const hft_tokenizer *t, const char *text, size_t len, const char *text_pair,
                                size_t pair_len, bool add_special_tokens, hft_encoding *out);
/* Decodes ids as tokenizer.decode(ids, skip_special_tokens=...). *out is malloc'd (free it). */
hft_status hft_tokenizer_decode(const hft_tokenizer *t, const int32_t *ids, int64_t n, bool skip_special_tokens,
                                char **out, size_t *out_len);

int64_t hft_tokenizer_vocab_size(const hft_tokenizer *t); /* the largest id + 1, added tokens included */
int32_t hft_tokenizer_token_to_id(const hft_tokenizer *t, const char *token); /* -1 if absent */
const char *hft_tokenizer_id_to_token(const hft_tokenizer *t, int32_t id);     /* NULL if absent */

/* Special tokens as tokenizer_config.json / special_tokens_map.json name them; -1 when the tokenizer has
 * none. A tokenizer without a pad token pads with eos (masked by the attention mask), as fine-tuning
 * recipes do. */
typedef struct hft_special_tokens {
    int32_t bos, eos, pad, unk, cls, sep, mask;
} hft_special_tokens;
hft_special_tokens hft_tokenizer_specials(const hft_tokenizer *t);
bool hft_tokenizer_pads_left(const hft_tokenizer *t);    /* padding_side "left" */
int64_t hft_tokenizer_max_length(const hft_tokenizer *t); /* model_max_length, or 0 when unset/huge */
/* tokenizer_config.json's chat_template, or NULL. */
const char *hft_tokenizer_chat_template(const hft_tokenizer *t);

/* Chat templates: the Jinja subset real chat_template strings use, rendered as transformers'
 * apply_chat_template renders them (jinja2 with trim_blocks and lstrip_blocks). A construct outside the
 * subset is refused at parse time with its line and column; raise_exception() in the template fails the
 * render with its message. */
typedef struct hft_chat_template hft_chat_template;
hft_status hft_chat_template_parse(const char *source, const char *name, hft_chat_template **out);
void hft_chat_template_free(hft_chat_template *t);
/* messages_json: a JSON array of {"role": ..., "content": ...}; *out is malloc'd. */
hft_status hft_chat_template_render(const hft_chat_template *t, const char *messages_json, const char *bos_token,
                                    const char *eos_token, bool add_generation_prompt, char **out);

/* ---------------------------------------------------------------- datasets */

typedef enum hft_data_format {
    HFT_DATA_TEXT,      /* plain UTF-8 text */
    HFT_DATA_JSONL,     /* one JSON object per line */
    HFT_DATA_CSV,       /* comma-separated with a header row (RFC 4180 quoting) */
    HFT_DATA_TSV,       /* tab-separated with a header row */
    HFT_DATA_TOKENS,    /* pre-tokenized shard in hft's binary layout (see data/README) */
    HFT_DATA_HDF5,      /* pre-tokenized in an HDF5 file */
} hft_data_format;

typedef enum hft_data_task {
    HFT_DATA_CAUSAL_LM,         /* text → tokens; packed into blocks, or one example per line/document */
    HFT_DATA_PROMPT_COMPLETION, /* JSONL prompt + completion: loss on the completion only */
    HFT_DATA_CHAT,              /* JSONL messages rendered with the tokenizer's template: loss on assistant turns */
    HFT_DATA_CLASSIFICATION,    /* text (+ text_pair) and a label */
} hft_data_task;

typedef struct hft_data_spec {
    const char *path;
    hft_data_format format;
    hft_data_task task;
    int64_t max_length;      /* truncation; with packing, the block size */
    bool packing;            /* causal LM: concatenate documents (EOS between) into blocks of max_length */
    const char *text_field;  /* "text" */
    const char *text_pair_field; /* classification: NULL for single texts */
    const char *prompt_field, *completion_field; /* "prompt", "completion" */
    const char *messages_field; /* "messages" */
    const char *label_field; /* "label" */
    /* Classification labels: integers in [0, num_labels), or strings named by label_names. A regression
     * task (num_labels 1) reads float labels. */
    int64_t num_labels;
    const char *const *label_names;
    bool skip_bad_rows;      /* skip (and count) malformed rows instead of failing */
    const char *cache_dir;   /* where tokenized data is cached; NULL: no cache */
} hft_data_spec;

typedef struct hft_dataset hft_dataset;

/* Reads and tokenizes a dataset. Bad input fails with the file and line (or row) and what was wrong, unless
 * skip_bad_rows, where bad rows are skipped and counted (hft_dataset_skipped). */
hft_status hft_dataset_load(const hft_data_spec *spec, const hft_tokenizer *tok, hft_dataset **out);
void hft_dataset_free(hft_dataset *ds);
int64_t hft_dataset_size(const hft_dataset *ds);
int64_t hft_dataset_skipped(const hft_dataset *ds);
/* The longest example, in tokens (for sizing buffers for max length). */
int64_t hft_dataset_max_tokens(const hft_dataset *ds);
/* The first few skipped rows' reasons ("file:line: what"), for logging; NULL past the last one kept. */
const char *hft_dataset_skip_reason(const hft_dataset *ds, int64_t i);
/* Segment ids of example `index` for per-document attention: per token, 0 for the document the example
 * starts in, counting up at each document boundary (all 0 unless packed). Writes the example's n values
 * into out and returns n. */
int64_t hft_dataset_segment_ids(const hft_dataset *ds, int64_t index, int32_t *out);

/* One example: token ids, the label ids (-100 where no loss; NULL means "the ids themselves" for causal
 * LM), segment ids (NULL for none) and, for classification, the label. The pointers are into the dataset,
 * except for a u16 shard, whose ids are widened into a buffer valid until the next hft_dataset_get. */
typedef struct hft_example {
    const int32_t *ids;
    const int32_t *labels;
    const int32_t *type_ids;
    int64_t n;
    int64_t label;      /* classification */
    float label_value;  /* regression */
} hft_example;
hft_example hft_dataset_get(const hft_dataset *ds, int64_t index);

/* ---------------------------------------------------------------- collation */

typedef struct hft_collate_options {
    int32_t pad_id;
    bool pad_left;
    int64_t max_length;    /* examples longer are truncated (0: no limit) */
    int64_t pad_to_multiple_of; /* 0: pad to the longest in the batch */
} hft_collate_options;

/* Pads the examples at `indices` into one batch of arena tensors (input_ids, attention_mask, labels with
 * -100 where no loss, token_type_ids when the dataset has them, classification labels [B]). */
hft_status hft_collate(hft_ctx *ctx, const hft_dataset *ds, const int64_t *indices, int64_t n,
                       const hft_collate_options *opts, hft_tensor **input_ids, hft_tensor **attention_mask,
                       hft_tensor **token_type_ids, hft_tensor **labels);

/* ---------------------------------------------------------------- sampling */

/* The order examples are visited in: a permutation per epoch keyed on (seed, epoch) (or the file order when
 * not shuffled), cut into global batches of global_batch examples; each rank takes its slice of every
 * global batch, so every rank has the same number of steps and a run can resume at another world size. The
 * position is a cursor (epoch, examples consumed in the epoch), saved with a checkpoint. */
typedef struct hft_sampler_options {
    int64_t dataset_size;
    int64_t batch_size; /* per rank */
    int rank, world_size;
    uint64_t seed;
    bool shuffle;
    bool drop_last; /* drop a last global batch smaller than batch_size × world_size */
} hft_sampler_options;

typedef struct hft_cursor {
    int64_t epoch;
    int64_t offset; /* examples of this epoch already consumed, globally */
} hft_cursor;

typedef struct hft_sampler hft_sampler;
hft_status hft_sampler_new(const hft_sampler_options *opts, hft_sampler **out);
void hft_sampler_free(hft_sampler *s);
/* Global batches per epoch (the last one partial unless drop_last). */
int64_t hft_sampler_batches_per_epoch(const hft_sampler *s);
/* This rank's next batch: writes up to batch_size dataset indices and returns how many (0 at the end of an
 * epoch, after which the cursor moves to the next epoch). */
int64_t hft_sampler_next(hft_sampler *s, int64_t *indices);
hft_cursor hft_sampler_cursor(const hft_sampler *s);
/* The global sample index (epoch × dataset size + position in the epoch's order) of the first example the
 * last hft_sampler_next gave this rank: what keys the dropout of its examples, at any world size. */
int64_t hft_sampler_last_position(const hft_sampler *s);
/* The same for the first example the next hft_sampler_next will give this rank (the cursor's: what a
 * checkpoint records per rank). */
int64_t hft_sampler_next_position(const hft_sampler *s);
hft_status hft_sampler_seek(hft_sampler *s, hft_cursor c);

#ifdef __cplusplus
}
#endif
#endif
