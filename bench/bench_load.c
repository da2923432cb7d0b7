/* Loading a GPT-2-small-sized checkpoint (generated, 124M f32 parameters): time and peak resident memory
 * of a process that loads it, against the file's size. The file is memory-mapped and each tensor's pages
 * are released once copied, so the peak stays near one copy of the weights. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_util.h"
#include "nn/nn.h"

/* Runs `load` (or nothing) in a child process; returns its peak RSS in bytes and its time in *seconds. */
static size_t child_peak(const char *dir, bool load, double *seconds) {
    int fds[2];
    if (pipe(fds) != 0) return 0;
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        double t0 = bench_now(), t = 0;
        if (load) {
            hft_model *m = NULL;
            if (hft_model_load(dir, NULL, &m) != HFT_OK) {
                fprintf(stderr, "load: %s\n", hft_error_message());
                _exit(1);
            }
            t = bench_now() - t0;
            hft_model_free(m);
        }
        if (write(fds[1], &t, sizeof t) != sizeof t) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    double t = 0;
    if (read(fds[0], &t, sizeof t) != sizeof t) t = -1;
    close(fds[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    *seconds = t;
    return (size_t)ru.ru_maxrss * 1024;
}

int main(void) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    char tmpl[] = "/tmp/hft-bench-load-XXXXXX";
    char *dir = mkdtemp(tmpl);
    const char *config =
        "{\"architectures\": [\"GPT2LMHeadModel\"], \"model_type\": \"gpt2\"}"; /* GPT-2 small */
    hft_model *m = NULL;
    double t0 = bench_now();
    if (!dir || hft_model_from_config(config, "bench", NULL, &m) != HFT_OK ||
        hft_model_save(m, dir) != HFT_OK) {
        fprintf(stderr, "bench_load: %s\n", hft_error_message());
        return 1;
    }
    double t_make = bench_now() - t0;
    hft_model_free(m);
    char path[256];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct stat st;
    stat(path, &st);
    double file_mb = (double)st.st_size / 1048576.0, t_empty = 0, t_load = 0, t_load2 = 0;
    size_t base = child_peak(dir, false, &t_empty);
    size_t peak = child_peak(dir, true, &t_load);
    child_peak(dir, true, &t_load2);
    printf("GPT-2 small checkpoint: %.0f MiB of f32 weights (written in %.1f s)\n", file_mb, t_make);
    printf("  load time          %.2f s  (%.2f s again; the file is in the page cache)\n", t_load, t_load2);
    printf("  peak RSS           %.0f MiB (a process that loads nothing: %.0f MiB)\n",
           (double)peak / 1048576.0, (double)base / 1048576.0);
    printf("  peak RSS / weights %.2f (the loaded model itself is one copy: 1.00)\n",
           ((double)peak - (double)base) / (double)st.st_size);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
