/* Atomic file writes: a temporary file beside the target, fsynced, renamed over it, and the folder
 * fsynced, so a crash at any instant leaves either the old file or the new one, never a mix. */
#include "kernels/kernels.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

hft_status hft_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return hft_error(HFT_EIO, "%s: cannot open folder to sync: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    if (rc != 0 && err != EINVAL) return hft_error(HFT_EIO, "%s: fsync failed: %s", dir, strerror(err));
    return HFT_OK;
}

static hft_status fsync_parent(const char *path) {
    char *copy = strdup(path);
    if (!copy) return hft_error(HFT_ENOMEM, "out of memory");
    hft_status st = hft_fsync_dir(dirname(copy));
    free(copy);
    return st;
}

hft_status hft_atomic_open(hft_atomic_file *f, const char *path) {
    memset(f, 0, sizeof *f);
    size_t n = strlen(path) + 32;
    f->final_path = strdup(path);
    f->tmp_path = malloc(n);
    if (!f->final_path || !f->tmp_path) {
        hft_atomic_abort(f);
        return hft_error(HFT_ENOMEM, "out of memory");
    }
    snprintf(f->tmp_path, n, "%s.tmp.%ld", path, (long)getpid());
    f->fp = fopen(f->tmp_path, "wb");
    if (!f->fp) {
        hft_status st = hft_error(HFT_EIO, "%s: cannot create: %s", f->tmp_path, strerror(errno));
        hft_atomic_abort(f);
        return st;
    }
    return HFT_OK;
}

hft_status hft_atomic_commit(hft_atomic_file *f) {
    hft_status st = HFT_OK;
    if (fflush(f->fp) != 0 || ferror(f->fp))
        st = hft_error(HFT_EIO, "%s: write failed: %s", f->final_path, strerror(errno));
    else if (fsync(fileno(f->fp)) != 0)
        st = hft_error(HFT_EIO, "%s: fsync failed: %s", f->final_path, strerror(errno));
    if (fclose(f->fp) != 0 && st == HFT_OK)
        st = hft_error(HFT_EIO, "%s: close failed: %s", f->final_path, strerror(errno));
    f->fp = NULL;
    if (st == HFT_OK && rename(f->tmp_path, f->final_path) != 0)
        st = hft_error(HFT_EIO, "%s: rename from %s failed: %s", f->final_path, f->tmp_path, strerror(errno));
    if (st == HFT_OK) st = fsync_parent(f->final_path);
    if (st != HFT_OK) unlink(f->tmp_path);
    free(f->tmp_path);
    free(f->final_path);
    f->tmp_path = f->final_path = NULL;
    return st;
}

void hft_atomic_abort(hft_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->tmp_path) unlink(f->tmp_path);
    free(f->tmp_path);
    free(f->final_path);
    memset(f, 0, sizeof *f);
}

char *hft_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s%s%s", dir, *dir && dir[strlen(dir) - 1] == '/' ? "" : "/", name);
    return p;
}

char *hft_read_text(const char *path, size_t *len) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!text || fread(text, 1, (size_t)n, fp) != (size_t)n) {
        hft_error(HFT_EIO, "%s: cannot read", path);
        free(text);
        fclose(fp);
        return NULL;
    }
    text[n] = '\0';
    fclose(fp);
    if (len) *len = (size_t)n;
    return text;
}

hft_status hft_write_text(const char *path, const char *text, bool newline) {
    hft_atomic_file f;
    HFT_TRY(hft_atomic_open(&f, path));
    size_t n = strlen(text);
    if (fwrite(text, 1, n, f.fp) != n || (newline && fputc('\n', f.fp) == EOF)) {
        hft_atomic_abort(&f);
        return hft_error(HFT_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return hft_atomic_commit(&f);
}
