/* A streaming RFC 4180 reader for CSV and TSV: a record at a time from fixed-size reads, so a file larger
 * than memory is never held whole. Quoting follows Python's csv module (and so the datasets library). */
#include "data/dataset_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CSV_CHUNK (1u << 16)

hft_status csv_open(csv_reader *r, const char *path, char delim) {
    memset(r, 0, sizeof *r);
    r->delim = delim;
    r->line = 1;
    r->in = malloc(CSV_CHUNK);
    r->rec_cap = 256;
    r->rec = malloc(r->rec_cap);
    r->fcap = 16;
    r->start = malloc(sizeof *r->start * (size_t)r->fcap);
    r->len = malloc(sizeof *r->len * (size_t)r->fcap);
    if (!r->in || !r->rec || !r->start || !r->len) {
        csv_close(r);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    r->fp = fopen(path, "rb");
    if (!r->fp) {
        hft_status st = hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
        csv_close(r);
        return st;
    }
    return HFT_OK;
}

void csv_close(csv_reader *r) {
    if (r->fp) fclose(r->fp);
    free(r->in);
    free(r->rec);
    free(r->start);
    free(r->len);
    memset(r, 0, sizeof *r);
}

/* Next input byte, or -1 at the end. */
static inline int csv_getc(csv_reader *r) {
    if (r->in_pos == r->in_len) {
        r->in_len = fread(r->in, 1, CSV_CHUNK, r->fp);
        r->in_pos = 0;
        if (r->in_len == 0) return -1;
        if (!r->started) {
            r->started = true;
            if (r->in_len >= 3 && memcmp(r->in, "\xEF\xBB\xBF", 3) == 0) r->in_pos = 3;
            if (r->in_pos == r->in_len) return csv_getc(r);
        }
    }
    return r->in[r->in_pos++];
}

static inline int csv_peek(csv_reader *r) {
    int c = csv_getc(r);
    if (c >= 0) r->in_pos--; /* the byte stays in the buffer just read */
    return c;
}

static bool csv_put(csv_reader *r, char c) {
    if (r->rec_len + 1 >= r->rec_cap) {
        size_t cap = r->rec_cap * 2;
        char *p = realloc(r->rec, cap);
        if (!p) return false;
        r->rec = p;
        r->rec_cap = cap;
    }
    r->rec[r->rec_len++] = c;
    return true;
}

static bool csv_end_field(csv_reader *r, size_t start) {
    if (r->nf == r->fcap) {
        int cap = r->fcap * 2;
        size_t *s = realloc(r->start, sizeof *s * (size_t)cap);
        if (s) r->start = s;
        size_t *l = realloc(r->len, sizeof *l * (size_t)cap);
        if (l) r->len = l;
        if (!s || !l) return false;
        r->fcap = cap;
    }
    r->start[r->nf] = start;
    r->len[r->nf] = r->rec_len - start;
    r->nf++;
    return csv_put(r, '\0');
}

/* A line end: "\n", "\r\n" or a lone "\r". */
static inline bool csv_newline(csv_reader *r, int c) {
    if (c == '\r') {
        if (csv_peek(r) == '\n') csv_getc(r);
        return true;
    }
    return c == '\n';
}

int csv_next(csv_reader *r) {
    for (;;) {
        r->rec_len = 0;
        r->nf = 0;
        r->rec_line = r->line;
        size_t start = 0;
        bool any = false;    /* the record holds something other than a line end */
        bool quoted = false; /* inside a quoted field */
        int c;
        for (;;) {
            c = csv_getc(r);
            if (c < 0) break;
            if (quoted) {
                if (c == '"') {
                    if (csv_peek(r) == '"') {
                        csv_getc(r);
                        if (!csv_put(r, '"')) return -2;
                    } else {
                        quoted = false;
                    }
                    continue;
                }
                if (c == '\n') r->line++;
                if (!csv_put(r, (char)c)) return -2;
                continue;
            }
            if (c == r->delim) {
                any = true;
                if (!csv_end_field(r, start)) return -2;
                start = r->rec_len;
                continue;
            }
            if (csv_newline(r, c)) {
                r->line++;
                if (!any && r->rec_len == start) { /* a blank line */
                    r->rec_line = r->line;
                    continue;
                }
                break;
            }
            any = true;
            if (c == '"' && r->rec_len == start) {
                quoted = true;
                r->quote_line = r->line;
                continue;
            }
            if (!csv_put(r, (char)c)) return -2;
        }
        if (quoted) return -1;
        if (!any && r->rec_len == start) {
            if (c < 0) return 0;
            continue;
        }
        if (!csv_end_field(r, start)) return -2;
        return 1;
    }
}
