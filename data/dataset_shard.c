/* hft's pre-tokenized binary layout (data/README.md): a 64-byte header, the token stream (u16 or u32),
 * document offsets, and optional per-token labels / type ids, per-document labels and a note of skipped
 * rows. Read by memory-mapping (no copy: the kernel pages tokens in as batches touch them); written
 * atomically, which is how the tokenized-data cache is stored. */
#include "data/dataset_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the token layout is little-endian; this file assumes a little-endian host"
#endif

typedef struct shard_header {
    char magic[8];
    uint32_t version;
    uint32_t token_bytes;
    uint64_t n_tokens;
    uint64_t n_docs;
    uint32_t flags;
    uint32_t reserved0;
    uint64_t key; /* the cache key; 0 in a user's shard */
    uint64_t meta_bytes;
    uint64_t reserved1;
} shard_header;
_Static_assert(sizeof(shard_header) == DS_HEADER, "the header is 64 bytes");

enum { SEC_TOKENS, SEC_DOCS, SEC_LABELS, SEC_TYPES, SEC_CLASS, SEC_VALUE, SEC_META, SEC_COUNT };

/* Section offsets and the file size a header implies; false on overflow. */
static bool layout(const shard_header *h, uint64_t off[SEC_COUNT], uint64_t size[SEC_COUNT], uint64_t *end) {
    const uint64_t limit = 1ull << 56;
    if (h->n_tokens > limit || h->n_docs > limit || h->meta_bytes > limit) return false;
    size[SEC_TOKENS] = h->n_tokens * h->token_bytes;
    size[SEC_DOCS] = (h->n_docs + 1) * 8;
    size[SEC_LABELS] = h->flags & DS_F_LABELS ? h->n_tokens * 4 : 0;
    size[SEC_TYPES] = h->flags & DS_F_TYPE_IDS ? h->n_tokens * 4 : 0;
    size[SEC_CLASS] = h->flags & DS_F_CLASS ? h->n_docs * 8 : 0;
    size[SEC_VALUE] = h->flags & DS_F_VALUE ? h->n_docs * 4 : 0;
    size[SEC_META] = h->flags & DS_F_META ? h->meta_bytes : 0;
    uint64_t pos = DS_HEADER;
    *end = pos;
    for (int s = 0; s < SEC_COUNT; s++) {
        pos = (pos + DS_ALIGN - 1) / DS_ALIGN * DS_ALIGN;
        off[s] = pos;
        if (size[s]) {
            pos += size[s];
            *end = pos;
        }
    }
    return true;
}

/* The note of skipped rows: u64 count, u32 number of reasons, then each as u32 length + bytes. */
static hft_status read_meta(const char *path, const uint8_t *p, uint64_t n, hft_dataset *ds) {
    uint64_t skipped;
    uint32_t count;
    if (n < 12) return hft_error(HFT_EFORMAT, "%s: skipped-row note too short", path);
    memcpy(&skipped, p, 8);
    memcpy(&count, p + 8, 4);
    uint64_t pos = 12;
    ds->skipped = (int64_t)skipped;
    for (uint32_t i = 0; i < count; i++) {
        uint32_t len;
        if (n - pos < 4) return hft_error(HFT_EFORMAT, "%s: skipped-row note truncated", path);
        memcpy(&len, p + pos, 4);
        pos += 4;
        if (n - pos < len) return hft_error(HFT_EFORMAT, "%s: skipped-row note truncated", path);
        if (ds->n_reasons < DS_MAX_REASONS) {
            char *r = strndup((const char *)p + pos, len);
            if (!r) return hft_error(HFT_ENOMEM, "out of memory");
            ds->reasons[ds->n_reasons++] = r;
        }
        pos += len;
    }
    return HFT_OK;
}

hft_status ds_map_shard(const char *path, hft_dataset *ds, const uint64_t *key) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        return hft_error(HFT_EIO, "%s: cannot stat: %s", path, strerror(err));
    }
    uint64_t fsize = (uint64_t)sb.st_size;
    if (fsize < DS_HEADER) {
        close(fd);
        return hft_error(HFT_EFORMAT, "%s: %llu bytes, too small for the %u-byte header of a token shard",
                         path, (unsigned long long)fsize, DS_HEADER);
    }
    void *map = mmap(NULL, fsize, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (map == MAP_FAILED) return hft_error(HFT_EIO, "%s: cannot map: %s", path, strerror(err));
    const uint8_t *base = map;
    shard_header h;
    memcpy(&h, base, sizeof h);
    hft_status st = HFT_OK;
    uint64_t off[SEC_COUNT] = {0}, size[SEC_COUNT] = {0}, end = 0;
    if (memcmp(h.magic, DS_MAGIC, 8) != 0)
        st = hft_error(HFT_EFORMAT,
                       "%s: not an hft token shard (the file does not start with \"HFTTOKS\\0\")", path);
    else if (h.version != DS_VERSION)
        st = hft_error(HFT_EUNSUPPORTED, "%s: token shard version %u; this build reads version %u", path,
                       h.version, DS_VERSION);
    else if (h.token_bytes != 2 && h.token_bytes != 4)
        st = hft_error(HFT_EFORMAT, "%s: token size %u bytes; expected 2 (u16) or 4 (u32)", path,
                       h.token_bytes);
    else if (h.flags & ~DS_F_KNOWN)
        st = hft_error(HFT_EUNSUPPORTED, "%s: unknown section flags 0x%x", path, h.flags & ~DS_F_KNOWN);
    else if (key && h.key != *key)
        st = hft_error(HFT_EFORMAT, "%s: cache key differs", path);
    else if (!layout(&h, off, size, &end))
        st = hft_error(HFT_EFORMAT, "%s: implausible counts (n_tokens %llu, n_docs %llu)", path,
                       (unsigned long long)h.n_tokens, (unsigned long long)h.n_docs);
    else if (end != fsize)
        st = hft_error(HFT_EFORMAT,
                       "%s: %llu bytes, but the header (n_tokens %llu, n_docs %llu, flags 0x%x) implies %llu",
                       path, (unsigned long long)fsize, (unsigned long long)h.n_tokens,
                       (unsigned long long)h.n_docs, h.flags, (unsigned long long)end);
    const int64_t *docs = NULL;
    if (st == HFT_OK) {
        docs = (const int64_t *)(base + off[SEC_DOCS]);
        int64_t n_tokens = (int64_t)h.n_tokens, n_docs = (int64_t)h.n_docs;
        if (docs[0] != 0)
            st =
                hft_error(HFT_EFORMAT, "%s: document offset 0 is %lld; expected 0", path, (long long)docs[0]);
        for (int64_t d = 0; st == HFT_OK && d < n_docs; d++)
            if (docs[d + 1] < docs[d] || docs[d + 1] > n_tokens)
                st =
                    hft_error(HFT_EFORMAT,
                              "%s: document offset %lld is %lld after %lld; expected a value in [%lld, %lld]",
                              path, (long long)(d + 1), (long long)docs[d + 1], (long long)docs[d],
                              (long long)docs[d], (long long)n_tokens);
        if (st == HFT_OK && docs[n_docs] != n_tokens)
            st = hft_error(HFT_EFORMAT, "%s: the last document offset is %lld; expected n_tokens %lld", path,
                           (long long)docs[n_docs], (long long)n_tokens);
    }
    hft_dataset tmp = {0};
    if (st == HFT_OK && (h.flags & DS_F_META))
        st = read_meta(path, base + off[SEC_META], size[SEC_META], &tmp);
    if (st != HFT_OK) {
        for (int i = 0; i < tmp.n_reasons; i++) free(tmp.reasons[i]);
        munmap(map, fsize);
        return st;
    }
    ds->map = map;
    ds->map_len = fsize;
    ds->tokens = base + off[SEC_TOKENS];
    ds->token_bytes = (int)h.token_bytes;
    ds->n_tokens = (int64_t)h.n_tokens;
    ds->doc_off = docs;
    ds->n_docs = (int64_t)h.n_docs;
    ds->labels = h.flags & DS_F_LABELS ? (const int32_t *)(base + off[SEC_LABELS]) : NULL;
    ds->type_ids = h.flags & DS_F_TYPE_IDS ? (const int32_t *)(base + off[SEC_TYPES]) : NULL;
    ds->class_label = h.flags & DS_F_CLASS ? (const int64_t *)(base + off[SEC_CLASS]) : NULL;
    ds->class_value = h.flags & DS_F_VALUE ? (const float *)(base + off[SEC_VALUE]) : NULL;
    ds->skipped = tmp.skipped;
    for (int i = 0; i < tmp.n_reasons; i++) ds->reasons[ds->n_reasons++] = tmp.reasons[i];
    return HFT_OK;
}

static void write_section(FILE *fp, uint64_t *pos, uint64_t at, const void *p, uint64_t n) {
    static const char zeros[DS_ALIGN];
    while (*pos < at) {
        uint64_t k = at - *pos < DS_ALIGN ? at - *pos : DS_ALIGN;
        fwrite(zeros, 1, k, fp);
        *pos += k;
    }
    if (n) fwrite(p, 1, n, fp);
    *pos += n;
}

hft_status ds_write_shard(const char *path, const hft_dataset *ds, uint64_t key) {
    if (ds->token_bytes != 4) return hft_error(HFT_EINVAL, "%s: only 32-bit streams are written", path);
    /* The note of skipped rows. */
    uint64_t meta_bytes = 12;
    for (int i = 0; i < ds->n_reasons; i++) meta_bytes += 4 + strlen(ds->reasons[i]);
    uint8_t *meta = malloc(meta_bytes);
    if (!meta) return hft_error(HFT_ENOMEM, "out of memory");
    uint64_t skipped = (uint64_t)ds->skipped;
    uint32_t count = (uint32_t)ds->n_reasons;
    memcpy(meta, &skipped, 8);
    memcpy(meta + 8, &count, 4);
    for (uint64_t i = 0, pos = 12; i < count; i++) {
        uint32_t len = (uint32_t)strlen(ds->reasons[i]);
        memcpy(meta + pos, &len, 4);
        memcpy(meta + pos + 4, ds->reasons[i], len);
        pos += 4 + len;
    }
    shard_header h = {.version = DS_VERSION,
                      .token_bytes = 4,
                      .n_tokens = (uint64_t)ds->n_tokens,
                      .n_docs = (uint64_t)ds->n_docs,
                      .key = key,
                      .meta_bytes = meta_bytes};
    memcpy(h.magic, DS_MAGIC, 8);
    h.flags = DS_F_META | (ds->labels ? DS_F_LABELS : 0) | (ds->type_ids ? DS_F_TYPE_IDS : 0) |
              (ds->class_label ? DS_F_CLASS : 0) | (ds->class_value ? DS_F_VALUE : 0);
    uint64_t off[SEC_COUNT], size[SEC_COUNT], end;
    layout(&h, off, size, &end);
    const void *data[SEC_COUNT] = {ds->tokens,      ds->doc_off,     ds->labels, ds->type_ids,
                                   ds->class_label, ds->class_value, meta};
    hft_atomic_file f;
    hft_status st = hft_atomic_open(&f, path);
    if (st == HFT_OK) {
        uint64_t pos = 0;
        write_section(f.fp, &pos, 0, &h, sizeof h);
        for (int s = 0; s < SEC_COUNT; s++)
            if (size[s]) write_section(f.fp, &pos, off[s], data[s], size[s]);
        st = hft_atomic_commit(&f);
    }
    free(meta);
    return st;
}
