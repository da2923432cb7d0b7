/* Files and folders for the Trainer: recursive mkdir and removal, copies, fsync (joining paths, reading and
 * writing whole files: kernels/kernels.h). */
#ifndef HFT_FSUTIL_H
#define HFT_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "kernels/kernels.h"

bool fs_exists(const char *path);
bool fs_is_dir(const char *path);
hft_status fs_mkdir_p(const char *path);
hft_status fs_remove_tree(const char *path);
/* Copies a file (contents fsynced). */
hft_status fs_copy_file(const char *from, const char *to);
/* fsyncs a file by path. */
hft_status fs_fsync_path(const char *path);

#endif
