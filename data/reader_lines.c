/* Streaming line reading for the text formats (plain text, JSONL), and the UTF-8 check every text input
 * goes through, so a bad byte is reported with its file, line and column before tokenization. */
#include "data/dataset_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t ds_utf8_invalid_at(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* ASCII runs eight bytes at a time: most text is ASCII. */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return i;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

hft_status line_open(line_reader *r, const char *path) {
    memset(r, 0, sizeof *r);
    r->fp = fopen(path, "rb");
    if (!r->fp) return hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
    return HFT_OK;
}

int line_next(line_reader *r) {
    ssize_t got = getline(&r->buf, &r->cap, r->fp);
    if (got < 0) return 0;
    size_t n = (size_t)got;
    if (n && r->buf[n - 1] == '\n') n--;
    if (n && r->buf[n - 1] == '\r') n--;
    if (r->line == 0 && n >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0) {
        memmove(r->buf, r->buf + 3, n - 3);
        n -= 3;
    }
    r->buf[n] = '\0';
    r->len = n;
    r->line++;
    return 1;
}

void line_close(line_reader *r) {
    if (r->fp) fclose(r->fp);
    free(r->buf);
    memset(r, 0, sizeof *r);
}
