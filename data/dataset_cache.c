/* The tokenized-data cache: a text dataset, once tokenized, is kept in spec.cache_dir in the binary layout
 * (mapped on the next run, so it starts at once). The file name carries a key over everything that
 * changes the tokens: the input (path, size, mtime), the tokenizer and the spec fields used in reading. */
#include "data/dataset_internal.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* FNV-1a, 64-bit: the key material is small and this needs no table. */
uint64_t ds_hash_bytes(uint64_t h, const void *p, size_t n) {
    const uint8_t *s = p;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001B3ull;
    }
    return h;
}

#define HASH_INIT 0xCBF29CE484222325ull

static uint64_t hash_str(uint64_t h, const char *s) {
    if (!s) return ds_hash_bytes(h, "\x01", 1); /* NULL differs from "" */
    return ds_hash_bytes(h, s, strlen(s) + 1);
}

static uint64_t hash_i64(uint64_t h, int64_t v) {
    return ds_hash_bytes(h, &v, sizeof v);
}

/* The tokenizer as tokens come out of it: its vocabulary, special tokens and settings, and the encodings
 * of a probe text that exercises normalisation, pre-tokenization, merges and the post-processor. (The
 * public API does not expose the file it came from; any change that alters ids alters this too, short of
 * one that only shows on text the probe lacks.) */
static uint64_t tokenizer_fingerprint(const hft_tokenizer *tok) {
    static const char probe[] =
        "Hello, world! The quick brown fox \xE2\x80\x94 jumps over 13 lazy dogs (2024-05-17, 3.14159).\n"
        "\tTabs, \"quotes\", don't I'll we're; multiple    spaces\r\n  \n"
        "\xC3\x89tienne's na\xC3\xAFve caf\xC3\xA9 \xE6\x9D\xB1\xE4\xBA\xAC "
        "\xD0\x9C\xD0\xBE\xD1\x81\xD0\xBA\xD0\xB2"
        "\xD0\xB0 \xF0\x9F\x98\x80 <|endoftext|> [CLS] [SEP] <s> </s> <unk> <|user|> x\xE2\x80\x8By "
        "HTTPS://Example.COM/a_b?c=d#e 0x7F 1,000,000 \xEF\xAC\x81 A\xCC\x8A";
    uint64_t h = hash_str(HASH_INIT, "hft tokenizer fingerprint 1");
    int64_t v = hft_tokenizer_vocab_size(tok);
    h = hash_i64(h, v);
    for (int64_t id = 0; id < v; id++) h = hash_str(h, hft_tokenizer_id_to_token(tok, (int32_t)id));
    hft_special_tokens sp = hft_tokenizer_specials(tok);
    h = ds_hash_bytes(h, &sp, sizeof sp);
    h = hash_i64(h, hft_tokenizer_pads_left(tok));
    h = hash_i64(h, hft_tokenizer_max_length(tok));
    h = hash_str(h, hft_tokenizer_chat_template(tok));
    hft_encoding e = {0};
    size_t n = sizeof probe - 1;
    for (int pass = 0; pass < 3; pass++) {
        hft_status st = hft_tokenizer_encode(tok, probe, n, pass == 2 ? probe + n / 2 : NULL,
                                             pass == 2 ? n / 2 : 0, pass != 0, &e);
        h = hash_i64(h, st);
        if (st != HFT_OK) continue;
        h = ds_hash_bytes(h, e.ids, sizeof *e.ids * (size_t)e.n);
        if (e.type_ids) h = ds_hash_bytes(h, e.type_ids, sizeof *e.type_ids * (size_t)e.n);
        if (e.special_mask) h = ds_hash_bytes(h, e.special_mask, sizeof *e.special_mask * (size_t)e.n);
    }
    hft_encoding_free(&e);
    hft_error_clear();
    return h;
}

static hft_status mkdirs(const char *dir) {
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf)
        return hft_error(HFT_EINVAL, "cache_dir \"%s\": not a usable folder name", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return hft_error(HFT_EIO, "cache_dir %s: cannot create %s: %s", dir, buf, strerror(errno));
        buf[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return hft_error(HFT_EIO, "cache_dir %s: not a folder", dir);
    return HFT_OK;
}

hft_status ds_cache_path(const hft_data_spec *s, const hft_tokenizer *tok, char **path, uint64_t *key) {
    *path = NULL;
    *key = 0;
    if (!s->cache_dir) return HFT_OK;
    struct stat sb;
    if (stat(s->path, &sb) != 0) return hft_error(HFT_EIO, "%s: cannot open: %s", s->path, strerror(errno));
    HFT_TRY(mkdirs(s->cache_dir));
    char real[PATH_MAX];
    if (!realpath(s->path, real)) snprintf(real, sizeof real, "%s", s->path);

    uint64_t h = hash_str(HASH_INIT, "hft token cache 1");
    h = hash_str(h, real);
    h = hash_i64(h, (int64_t)sb.st_size);
    h = hash_i64(h, (int64_t)sb.st_mtim.tv_sec);
    h = hash_i64(h, (int64_t)sb.st_mtim.tv_nsec);
    h = hash_i64(h, (int64_t)tokenizer_fingerprint(tok));
    /* The spec fields that change the token streams. max_length and packing are applied over the stream
     * when loading, except that packing changes how plain text splits into documents, and classification
     * truncates at tokenization (keeping the special tokens, as transformers does). */
    h = hash_i64(h, s->format);
    h = hash_i64(h, s->task);
    h = hash_i64(h, s->format == HFT_DATA_TEXT && s->packing);
    h = hash_i64(h, s->task == HFT_DATA_CLASSIFICATION ? s->max_length : 0);
    h = hash_str(h, s->text_field);
    h = hash_str(h, s->text_pair_field);
    h = hash_str(h, s->prompt_field);
    h = hash_str(h, s->completion_field);
    h = hash_str(h, s->messages_field);
    h = hash_str(h, s->label_field);
    h = hash_i64(h, s->num_labels);
    if (s->label_names)
        for (int64_t i = 0; s->label_names[i] && (s->num_labels <= 0 || i < s->num_labels); i++)
            h = hash_str(h, s->label_names[i]);
    h = hash_i64(h, s->skip_bad_rows);

    char base[PATH_MAX];
    snprintf(base, sizeof base, "%s", real);
    const char *name = basename(base);
    size_t n = strlen(s->cache_dir) + strlen(name) + 40;
    *path = malloc(n);
    if (!*path) return hft_error(HFT_ENOMEM, "out of memory");
    snprintf(*path, n, "%s/%s.%016llx.hfttok", s->cache_dir, name, (unsigned long long)h);
    *key = h;
    return HFT_OK;
}
