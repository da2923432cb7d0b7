/* The safetensors writer: a header as HF's writer lays it out (metadata first, tensors in the order added,
 * padded with spaces so the data starts 8-byte aligned), the data of tensors of any layout, saved atomically.
 * Reading and validation are in safetensors.c. */
#include "nn/nn.h"
#include "nn/safetensors_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The safetensors name an hft dtype is written as. */
static const char *st_name_of(hft_dtype dtype) {
    static const char *const names[HFT_DTYPE_COUNT] = {
        [HFT_F32] = "F32", [HFT_F64] = "F64", [HFT_BF16] = "BF16", [HFT_F16] = "F16",
        [HFT_I32] = "I32", [HFT_I64] = "I64", [HFT_U8] = "U8",
    };
    return (unsigned)dtype < HFT_DTYPE_COUNT ? names[dtype] : NULL;
}

typedef struct wr_tensor {
    char *name;
    const hft_tensor *t;
} wr_tensor;

typedef struct wr_meta {
    char *key, *value;
} wr_meta;

struct hft_st_writer {
    wr_tensor *tensors;
    int n, cap;
    wr_meta *meta;
    int n_meta, cap_meta;
};

hft_st_writer *hft_st_writer_new(void) {
    return calloc(1, sizeof(hft_st_writer));
}

void hft_st_writer_free(hft_st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->tensors[i].name);
    for (int i = 0; i < w->n_meta; i++) {
        free(w->meta[i].key);
        free(w->meta[i].value);
    }
    free(w->tensors);
    free(w->meta);
    free(w);
}

static hft_status check_text(const char *what, const char *s) {
    size_t n = strlen(s);
    if (st_utf8_invalid_at((const uint8_t *)s, n) < n)
        return hft_error(HFT_EINVAL, "safetensors writer: %s is not valid UTF-8", what);
    return HFT_OK;
}

hft_status hft_st_writer_add(hft_st_writer *w, const char *name, const hft_tensor *t) {
    if (!name || !t) return hft_error(HFT_EINVAL, "safetensors writer: NULL name or tensor");
    HFT_TRY(check_text("a tensor name", name));
    if (strcmp(name, "__metadata__") == 0)
        return hft_error(HFT_EINVAL, "safetensors writer: \"__metadata__\" is reserved, not a tensor name");
    if (!st_name_of(t->dtype))
        return hft_error(HFT_EINVAL, "safetensors writer: tensor '%s' has unknown dtype %d", name,
                         (int)t->dtype);
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return hft_error(HFT_EINVAL, "safetensors writer: tensor '%s' was already added", name);
    if (w->n == w->cap) {
        int cap = w->cap ? w->cap * 2 : 16;
        wr_tensor *v = realloc(w->tensors, (size_t)cap * sizeof *v);
        if (!v) return hft_error(HFT_ENOMEM, "safetensors writer: out of memory");
        w->tensors = v;
        w->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy) return hft_error(HFT_ENOMEM, "safetensors writer: out of memory");
    w->tensors[w->n++] = (wr_tensor){copy, t};
    return HFT_OK;
}

hft_status hft_st_writer_metadata(hft_st_writer *w, const char *key, const char *value) {
    if (!key || !value) return hft_error(HFT_EINVAL, "safetensors writer: NULL metadata key or value");
    HFT_TRY(check_text("a metadata key", key));
    HFT_TRY(check_text("a metadata value", value));
    char *v = strdup(value);
    if (!v) return hft_error(HFT_ENOMEM, "safetensors writer: out of memory");
    for (int i = 0; i < w->n_meta; i++)
        if (strcmp(w->meta[i].key, key) == 0) {
            free(w->meta[i].value);
            w->meta[i].value = v;
            return HFT_OK;
        }
    if (w->n_meta == w->cap_meta) {
        int cap = w->cap_meta ? w->cap_meta * 2 : 8;
        wr_meta *m = realloc(w->meta, (size_t)cap * sizeof *m);
        if (!m) {
            free(v);
            return hft_error(HFT_ENOMEM, "safetensors writer: out of memory");
        }
        w->meta = m;
        w->cap_meta = cap;
    }
    char *k = strdup(key);
    if (!k) {
        free(v);
        return hft_error(HFT_ENOMEM, "safetensors writer: out of memory");
    }
    w->meta[w->n_meta++] = (wr_meta){k, v};
    return HFT_OK;
}

/* A growing text buffer for the header. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->failed) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) {
    sb_put(b, s, strlen(s));
}

/* A JSON string, escaped as serde_json escapes it (so the header matches HF's writer byte for byte). */
static void sb_json_string(sbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            const char *named = c == '\b'   ? "\\b"
                                : c == '\f' ? "\\f"
                                : c == '\n' ? "\\n"
                                : c == '\r' ? "\\r"
                                : c == '\t' ? "\\t"
                                            : NULL;
            if (named)
                sb_str(b, named);
            else {
                snprintf(esc, sizeof esc, "\\u%04x", c);
                sb_str(b, esc);
            }
        } else {
            sb_put(b, p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_u64(sbuf *b, uint64_t v) {
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    sb_str(b, num);
}

/* Where each tensor's data goes: grouped by element size, largest first, in insertion order within a
 * group (HF's writer sorts by alignment too). The buffer starts 8-aligned and each group's total is a
 * multiple of its element size, so every tensor is aligned and can be mapped without a copy. `order`
 * receives the tensors in data order. */
static void layout(const hft_st_writer *w, uint64_t *offset, int *order) {
    static const size_t sizes[4] = {8, 4, 2, 1};
    uint64_t at = 0;
    int r = 0;
    for (int s = 0; s < 4; s++)
        for (int i = 0; i < w->n; i++)
            if (hft_dtype_size(w->tensors[i].t->dtype) == sizes[s]) {
                offset[i] = at;
                at += hft_tensor_nbytes(w->tensors[i].t);
                order[r++] = i;
            }
}

/* The header JSON, compact as serde_json writes it, "__metadata__" first and the tensors in insertion
 * order, padded with spaces to a multiple of 8 bytes. */
static hft_status build_header(const hft_st_writer *w, const uint64_t *offset, sbuf *b) {
    sb_str(b, "{");
    bool first = true;
    if (w->n_meta) {
        sb_str(b, "\"__metadata__\":{");
        for (int i = 0; i < w->n_meta; i++) {
            if (i) sb_str(b, ",");
            sb_json_string(b, w->meta[i].key);
            sb_str(b, ":");
            sb_json_string(b, w->meta[i].value);
        }
        sb_str(b, "}");
        first = false;
    }
    for (int i = 0; i < w->n; i++) {
        const hft_tensor *t = w->tensors[i].t;
        if (!first) sb_str(b, ",");
        first = false;
        sb_json_string(b, w->tensors[i].name);
        sb_str(b, ":{\"dtype\":\"");
        sb_str(b, st_name_of(t->dtype));
        sb_str(b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(b, ",");
            sb_u64(b, (uint64_t)t->shape[d]);
        }
        sb_str(b, "],\"data_offsets\":[");
        sb_u64(b, offset[i]);
        sb_str(b, ",");
        sb_u64(b, offset[i] + hft_tensor_nbytes(t));
        sb_str(b, "]}");
    }
    sb_str(b, "}");
    while (b->n % 8) sb_str(b, " ");
    if (b->failed) return hft_error(HFT_ENOMEM, "safetensors writer: out of memory for the header");
    return HFT_OK;
}

#define ST_CHUNK_BYTES ((size_t)4 << 20)

/* A non-contiguous tensor, gathered into `buf` (`cap` bytes, at least one element) a block at a time
 * by the copy kernel: blocks of whole inner sub-tensors along one dim `k`, so memory stays bounded
 * whatever the tensor's size. */
static bool write_strided(FILE *fp, const hft_tensor *t, char *buf, size_t cap) {
    size_t es = hft_dtype_size(t->dtype);
    int nd = t->ndim, k = nd - 1;
    int64_t inner = 1; /* elements in dims after k */
    while (k > 0 && (size_t)(inner * t->shape[k]) * es <= cap) inner *= t->shape[k--];
    int64_t step = (int64_t)(cap / ((size_t)inner * es));
    if (step > t->shape[k]) step = t->shape[k];
    int64_t outer = 1;
    for (int d = 0; d < k; d++) outer *= t->shape[d];
    const char *base = hft_tensor_data(t);
    hft_copy_args a = {.dst_dtype = t->dtype, .src_dtype = t->dtype};
    a.src.ndim = a.dst.ndim = nd - k;
    for (int d = k; d < nd; d++) {
        a.src.shape[d - k] = a.dst.shape[d - k] = t->shape[d];
        a.src.stride[d - k] = t->stride[d];
    }
    int64_t s = 1; /* dst: contiguous */
    for (int d = nd - 1; d >= k; d--) {
        a.dst.stride[d - k] = s;
        s *= t->shape[d];
    }
    a.dst.data = buf;
    const hft_kernels *kern = hft_kernels_for(HFT_CPU);
    for (int64_t o = 0; o < outer; o++) {
        int64_t off = 0, rem = o;
        for (int d = k - 1; d >= 0; d--) {
            off += (rem % t->shape[d]) * t->stride[d];
            rem /= t->shape[d];
        }
        for (int64_t j = 0; j < t->shape[k]; j += step) {
            int64_t m = t->shape[k] - j < step ? t->shape[k] - j : step;
            a.src.shape[0] = a.dst.shape[0] = m;
            a.src.data = (void *)(base + (off + j * t->stride[k]) * (int64_t)es);
            kern->copy(&a);
            size_t bytes = (size_t)(m * inner) * es;
            if (fwrite(buf, 1, bytes, fp) != bytes) return false;
        }
    }
    return true;
}

hft_status hft_st_writer_save(hft_st_writer *w, const char *path) {
    size_t nt = w->n ? (size_t)w->n : 1;
    uint64_t *offset = malloc(nt * sizeof *offset);
    int *order = malloc(nt * sizeof *order);
    sbuf header = {0};
    hft_status st = offset && order ? HFT_OK : hft_error(HFT_ENOMEM, "%s: out of memory", path);
    if (st == HFT_OK) {
        layout(w, offset, order);
        st = build_header(w, offset, &header);
    }
    free(offset);
    if (st != HFT_OK) {
        free(order);
        free(header.s);
        return st;
    }
    size_t cap = 0; /* the gather buffer for strided tensors */
    for (int i = 0; i < w->n; i++) {
        const hft_tensor *t = w->tensors[i].t;
        size_t bytes = hft_tensor_nbytes(t);
        if (bytes && !hft_tensor_is_contiguous(t) && bytes > cap)
            cap = bytes < ST_CHUNK_BYTES ? bytes : ST_CHUNK_BYTES;
    }
    char *chunk = cap ? malloc(cap) : NULL;
    if (cap && !chunk) {
        free(order);
        free(header.s);
        return hft_error(HFT_ENOMEM, "%s: out of memory for a %zu-byte write buffer", path, cap);
    }
    hft_atomic_file af;
    st = hft_atomic_open(&af, path);
    if (st != HFT_OK) {
        free(order);
        free(header.s);
        free(chunk);
        return st;
    }
    uint64_t n = header.n;
    bool ok = fwrite(&n, 8, 1, af.fp) == 1 && fwrite(header.s, 1, header.n, af.fp) == header.n;
    bool staged_ok = true;
    for (int r = 0; r < w->n && ok; r++) {
        const hft_tensor *t = w->tensors[order[r]].t;
        size_t bytes = hft_tensor_nbytes(t);
        if (bytes == 0) continue;
        /* a tensor on a device is written from a contiguous host copy, one tensor at a time */
        hft_tensor *staged = t->device.type == HFT_CPU ? NULL : hft_tensor_to(t, (hft_device){HFT_CPU, 0});
        if (t->device.type != HFT_CPU && !staged) {
            ok = staged_ok = false;
            break;
        }
        if (staged) t = staged;
        if (hft_tensor_is_contiguous(t))
            ok = fwrite(hft_tensor_data(t), 1, bytes, af.fp) == bytes;
        else
            ok = write_strided(af.fp, t, chunk, cap);
        hft_tensor_free(staged);
    }
    free(order);
    free(header.s);
    free(chunk);
    if (!ok) {
        st = staged_ok ? hft_error(HFT_EIO, "%s: write failed: %s", path, strerror(errno))
                       : hft_error(HFT_EDEVICE, "%s: copying a tensor from the device: %s", path,
                                   hft_error_message());
        hft_atomic_abort(&af);
        return st;
    }
    return hft_atomic_commit(&af);
}
