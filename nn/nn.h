/* nn: Hugging Face formats and models on top of autograd — safetensors files, configs, modules and the
 * model families. (Issue 3 fills in configs, modules and families; this header starts with the file
 * format they all read and write.) */
#ifndef HFT_NN_H
#define HFT_NN_H

#include "autograd/autograd.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- safetensors */

/* An open safetensors file, memory-mapped read-only. The header is validated as the reference
 * implementation validates it (safetensors' Rust crate): length within bounds, valid UTF-8 JSON, known
 * dtypes, shape × dtype size equal to the byte range, tensors contiguous from offset 0 with no gaps or
 * overlaps and covering the whole buffer. A file that fails gets an HFT_EFORMAT error naming the file
 * and, where one is at fault, the tensor. */
typedef struct hft_safetensors hft_safetensors;

typedef struct hft_st_entry {
    const char *name;
    const char *st_dtype;  /* the file's dtype string, e.g. "BF16" */
    int dtype;             /* the hft_dtype it loads as (BOOL → HFT_U8), or -1 when hft has none (F8, U64 ...) */
    int ndim;
    int64_t shape[HFT_MAX_DIMS];
    const void *data;      /* inside the mapping */
    size_t nbytes;
} hft_st_entry;

hft_status hft_safetensors_open(const char *path, hft_safetensors **out);
void hft_safetensors_close(hft_safetensors *f);
const char *hft_safetensors_path(const hft_safetensors *f);
int hft_safetensors_count(const hft_safetensors *f);
const hft_st_entry *hft_safetensors_entry(const hft_safetensors *f, int index); /* in file order */
const hft_st_entry *hft_safetensors_find(const hft_safetensors *f, const char *name);
/* A "__metadata__" value, or NULL. */
const char *hft_safetensors_metadata(const hft_safetensors *f, const char *key);
/* A heap tensor with the entry's values as `dtype` (converted when it differs). With `zero_copy` and the
 * same dtype and an aligned offset, the tensor wraps the mapping (valid while the file is open). */
hft_status hft_safetensors_load(const hft_safetensors *f, const char *name, hft_dtype dtype, bool zero_copy,
                                hft_tensor **out);

/* Writing: tensors are added (any layout; written contiguous), then saved atomically. The header is
 * padded with spaces so the data starts 8-byte aligned, as HF's writer does. */
typedef struct hft_st_writer hft_st_writer;
hft_st_writer *hft_st_writer_new(void);
void hft_st_writer_free(hft_st_writer *w);
hft_status hft_st_writer_add(hft_st_writer *w, const char *name, const hft_tensor *t);
hft_status hft_st_writer_metadata(hft_st_writer *w, const char *key, const char *value);
hft_status hft_st_writer_save(hft_st_writer *w, const char *path);

#ifdef __cplusplus
}
#endif
#endif
