/* hft-train's speed-up from 1 to 2 ranks on this machine: GPT-2 small (124M) fine-tuned at the same global
 * batch (4 × 64 tokens), one process with every core against `mpirun -np 2` with the cores shared out
 * (batch 2 each, gradients all-reduced during backward), and the same with ZeRO-1 (zero_stage 1: each rank
 * keeps half the AdamW state; gradients reduced to their range's owner, parameters broadcast back). On a
 * 2-core machine both runs have the same compute; the figure shows what data parallelism costs here, not
 * what it gains on a cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench_gpt2.h"
#include "bench/bench_util.h"
#include "nn/nn.h"

enum { STEPS = 6, GLOBAL_BATCH = 4, SEQ = 64 };

/* Runs hft-train and returns its train_runtime (seconds), or -1. */
static double train(const char *launcher, const char *bin, const char *dir, int batch, const char *name,
                    const char *extra) {
    char cmd[2048], log[600];
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    snprintf(
        cmd, sizeof cmd,
        "%s %s recipes/gpt2_finetune.yaml model.path=%s/model data.train_file=/usr/share/common-licenses "
        "data.eval_file= eval_strategy=no load_best_model_at_end=false max_steps=%d "
        "per_device_train_batch_size=%d gradient_accumulation_steps=1 max_length=%d save_steps=100000 "
        "logging_steps=100000 cache_dir= output_dir=%s/%s %s > %s 2>&1",
        launcher, bin, dir, STEPS, batch, SEQ, dir, name, extra, log);
    if (system(cmd) != 0) {
        fprintf(stderr, "bench_dist: hft-train failed; see %s\n", log);
        return -1;
    }
    FILE *fp = fopen(log, "r");
    char line[1024];
    double runtime = -1;
    while (fp && fgets(line, sizeof line, fp)) {
        char *p = strstr(line, "train_runtime ");
        if (p) runtime = atof(p + 14);
    }
    if (fp) fclose(fp);
    return runtime;
}

int main(int argc, char **argv) {
    const char *bin = argc > 1 ? argv[1] : "build/trainer/hft-train";
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    char dir[] = "/tmp/hft-bench-dist-XXXXXX", cmd[1024];
    if (!bench_gpt2_folder(dir, false, NULL, NULL)) return 1;
    int cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    printf("hft-train, GPT-2 small (vocab 2001), %d steps of a global batch of %d x %d tokens, %d cores\n",
           STEPS, GLOBAL_BATCH, SEQ, cores);
    char one[64];
    snprintf(one, sizeof one, "OMP_NUM_THREADS=%d", cores);
    double t1 = train(one, bin, dir, GLOBAL_BATCH, "one", "");
    double t2 = train("mpirun -np 2", bin, dir, GLOBAL_BATCH / 2, "two", "");
    double tz = train("mpirun -np 2", bin, dir, GLOBAL_BATCH / 2, "zero", "zero_stage=1");
    snprintf(one, sizeof one, "OMP_NUM_THREADS=%d", cores / 2 > 0 ? cores / 2 : 1);
    double th = train(one, bin, dir, GLOBAL_BATCH / 2, "half", ""); /* one rank's share, alone */
    if (t1 <= 0 || t2 <= 0 || th <= 0 || tz <= 0) return 1;
    double tokens = (double)STEPS * GLOBAL_BATCH * SEQ;
    printf("  1 process,  %d threads, batch %d:       %6.0f tokens/s (%.2f s/step)\n", cores, GLOBAL_BATCH,
           tokens / t1, t1 / STEPS);
    printf("  2 ranks (mpirun), %d thread%s each, batch %d: %6.0f tokens/s (%.2f s/step)\n",
           cores / 2 > 0 ? cores / 2 : 1, cores / 2 > 1 ? "s" : "", GLOBAL_BATCH / 2, tokens / t2,
           t2 / STEPS);
    printf("  one rank's share alone (%d thread%s, batch %d): %.2f s/step, so the ranks spend %.2f s/step on "
           "communication and contention\n",
           cores / 2 > 0 ? cores / 2 : 1, cores / 2 > 1 ? "s" : "", GLOBAL_BATCH / 2, th / STEPS,
           (t2 - th) / STEPS);
    printf("  speed-up from 1 to 2 ranks: %.2fx\n", t1 / t2);
    printf(
        "  2 ranks with ZeRO-1 (zero_stage 1):             %6.0f tokens/s (%.2f s/step), %.2fx the plain 2 "
        "ranks' speed\n",
        tokens / tz, tz / STEPS, t2 / tz);
    snprintf(cmd, sizeof cmd,
             "sed -n 's/.*this rank keeps and updates \\([0-9]*\\) of the \\([0-9]*\\) trainable.*/  AdamW "
             "state per rank: \\1 of \\2 values (x 8 bytes)/p' %s/zero.log",
             dir);
    fflush(stdout);
    if (system(cmd) != 0) printf("  (no ZeRO-1 plan in the log)\n");
    snprintf(cmd, sizeof cmd, "grep -h 'gradient all-reduce' %s/two.log | sed 's/^/  /'", dir);
    fflush(stdout);
    if (system(cmd) != 0) printf("  (no all-reduce figures in the log)\n");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
