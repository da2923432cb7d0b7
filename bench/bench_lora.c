/* LoRA against a full fine-tune of a GPT-2-small-sized model (124M parameters) with hft-train: peak resident
 * memory (as a multiple of the f32 weights' size) and time per step, and the same runs of transformers'
 * Trainer with PEFT on this machine and threads. The adapter is r = 8 on the attention projections (c_attn,
 * attn.c_proj). Target: LoRA's peak RSS <= 1.25 x the weights.
 *   build/bench/bench_lora [HFT_TRAIN_BINARY [SEQ]]     (SEQ 64 by default: B 4 x T 64, as bench_step) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench_gpt2.h"
#include "bench/bench_util.h"
#include "nn/nn.h"

enum { STEPS = 6, BATCH = 4 };
static int SEQ = 64; /* the step benchmark's shape; argv[2] sets another */

typedef struct result {
    double step_s, rss_mib;
} result;

/* One hft-train process; its step time from train_runtime and its peak RSS from the kernel. */
static bool run_hft(const char *bin, const char *dir, const char *extra, const char *name, result *out) {
    char cmd[2048], log[512];
    snprintf(log, sizeof log, "%s/%s.log", dir, name);
    snprintf(cmd, sizeof cmd,
             "%s recipes/gpt2_finetune.yaml model.path=%s/model data.train_file=/usr/share/common-licenses "
             "data.eval_file= eval_strategy=no load_best_model_at_end=false max_steps=%d "
             "per_device_train_batch_size=%d gradient_accumulation_steps=1 max_length=%d save_steps=100000 "
             "logging_steps=100000 cache_dir= output_dir=%s/%s %s > %s 2>&1",
             bin, dir, STEPS, BATCH, SEQ, dir, name, extra, log);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    FILE *fp = fopen(log, "r");
    char line[1024];
    double runtime = 0;
    while (fp && fgets(line, sizeof line, fp)) {
        char *p = strstr(line, "train_runtime ");
        if (p) runtime = atof(p + 14);
    }
    if (fp) fclose(fp);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || runtime <= 0) {
        fprintf(stderr, "bench_lora: hft-train (%s) failed; see %s\n", name, log);
        return false;
    }
    out->step_s = runtime / STEPS;
    out->rss_mib = (double)ru.ru_maxrss / 1024.0;
    return true;
}

int main(int argc, char **argv) {
    const char *bin = argc > 1 ? argv[1] : "build/trainer/hft-train";
    if (argc > 2) SEQ = atoi(argv[2]);
    if (SEQ < 8) SEQ = 64;
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    char dir[] = "/tmp/hft-bench-lora-XXXXXX", cmd[1024];
    double weights = 0;
    int vocab = bench_gpt2_folder(dir, true, NULL, &weights);
    if (!vocab) return 1;
    int threads = hft_threads_get();
    printf("GPT-2 small (%.0f MiB of f32 weights, vocab %d): %d steps of %d x %d tokens, AdamW, %d threads\n",
           weights, vocab, STEPS, BATCH, SEQ, threads);
    const char *lora = "'lora.target_modules=[c_attn, attn.c_proj]' lora.r=8 lora.lora_alpha=16";
    char lora_ckpt[512];
    snprintf(lora_ckpt, sizeof lora_ckpt, "%s gradient_checkpointing=true", lora);
    struct {
        const char *name, *extra, *peer_args;
    } runs[] = {
        {"full fine-tune", "", ""},
        {"LoRA r=8", lora, "--lora 8"},
        {"LoRA r=8 + grad. ckpt", lora_ckpt, "--lora 8 --grad-ckpt"},
    };
    printf("  %-24s %10s %12s %9s   %s\n", "hft-train", "s/step", "peak RSS", "/weights",
           "transformers + PEFT");
    for (size_t i = 0; i < sizeof runs / sizeof runs[0]; i++) {
        result h;
        char name[32];
        snprintf(name, sizeof name, "run%zu", i);
        if (!run_hft(bin, dir, runs[i].extra, name, &h)) return 1;
        char args[1024];
        double peer[2] = {-1, -1};
        snprintf(args, sizeof args,
                 "--model %s/model --text /usr/share/common-licenses --steps %d --batch %d --seq %d %s", dir,
                 STEPS, BATCH, SEQ, runs[i].peer_args);
        printf("  %-24s %8.3f s %8.0f MiB %8.2fx\n", runs[i].name, h.step_s, h.rss_mib, h.rss_mib / weights);
        fflush(stdout);
        if (bench_run_peer_values("peft_lora.py", args, threads, peer, 2) == 2)
            printf("  %-24s %8.3f s %8.0f MiB %8.2fx   hft: %.2fx its speed, %.2fx its memory\n", "  peer",
                   peer[0], peer[1], peer[1] / weights, peer[0] / h.step_s, h.rss_mib / peer[1]);
    }
    printf("target: LoRA peak RSS <= 1.25 x the weights\n");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
