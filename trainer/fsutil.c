/* Files and folders for the Trainer (see fsutil.h). */
#include "trainer/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bool fs_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

bool fs_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

hft_status fs_mkdir_p(const char *path) {
    char *p = strdup(path);
    if (!p) return hft_error(HFT_ENOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0755) != 0 && errno != EEXIST) {
                hft_status st = hft_error(HFT_EIO, "%s: cannot create folder: %s", p, strerror(errno));
                free(p);
                return st;
            }
            *s = c;
            if (!c) break;
        }
    }
    free(p);
    return fs_is_dir(path) ? HFT_OK : hft_error(HFT_EIO, "%s: exists and is not a folder", path);
}

hft_status fs_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0)
        return errno == ENOENT ? HFT_OK : hft_error(HFT_EIO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
        struct dirent *e;
        hft_status s = HFT_OK;
        while (s == HFT_OK && (e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            char *child = hft_path_join(path, e->d_name);
            s = child ? fs_remove_tree(child) : hft_error(HFT_ENOMEM, "out of memory");
            free(child);
        }
        closedir(d);
        if (s != HFT_OK) return s;
        if (rmdir(path) != 0) return hft_error(HFT_EIO, "%s: cannot remove: %s", path, strerror(errno));
        return HFT_OK;
    }
    if (unlink(path) != 0) return hft_error(HFT_EIO, "%s: cannot remove: %s", path, strerror(errno));
    return HFT_OK;
}

hft_status fs_fsync_path(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return hft_error(HFT_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    return rc == 0 ? HFT_OK : hft_error(HFT_EIO, "%s: fsync failed: %s", path, strerror(err));
}

hft_status fs_copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb");
    if (!in) return hft_error(HFT_EIO, "%s: cannot open: %s", from, strerror(errno));
    hft_atomic_file out;
    hft_status st = hft_atomic_open(&out, to);
    if (st != HFT_OK) {
        fclose(in);
        return st;
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out.fp) != n) {
            fclose(in);
            hft_atomic_abort(&out);
            return hft_error(HFT_EIO, "%s: write failed: %s", to, strerror(errno));
        }
    bool bad = ferror(in);
    fclose(in);
    if (bad) {
        hft_atomic_abort(&out);
        return hft_error(HFT_EIO, "%s: read failed", from);
    }
    return hft_atomic_commit(&out);
}
