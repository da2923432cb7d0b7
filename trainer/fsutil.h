/* Files and folders for the Trainer: paths, recursive mkdir and removal, copies, durable writes. */
#ifndef HFT_FSUTIL_H
#define HFT_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/kernels.h"

/* "a/b" into a malloc'd string. */
char *fs_join(const char *a, const char *b);
bool fs_exists(const char *path);
bool fs_is_dir(const char *path);
hft_status fs_mkdir_p(const char *path);
hft_status fs_remove_tree(const char *path);
/* Copies a file (contents fsynced). */
hft_status fs_copy_file(const char *from, const char *to);
/* fsyncs a file by path. */
hft_status fs_fsync_path(const char *path);
/* Writes text to path atomically. */
hft_status fs_write_text(const char *path, const char *text);
/* Reads a whole file (malloc'd, NUL-terminated). */
char *fs_read_text(const char *path, size_t *len);

#endif
