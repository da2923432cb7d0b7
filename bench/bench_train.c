/* hft-train fine-tuning a GPT-2-small-sized model (124M parameters, the real GPT-2 vocabulary when
 * tools/fetch_real_models.sh has fetched it) on the license texts, against transformers' Trainer doing the
 * same steps on the same machine and threads: tokens per second and peak resident memory of each process. */
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

enum { STEPS = 8, BATCH = 4, SEQ = 256 };

int main(int argc, char **argv) {
    const char *bin = argc > 1 ? argv[1] : "build/trainer/hft-train";
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "%s\n", hft_error_message());
        return 1;
    }
    const char *tok = NULL;
    char dir[] = "/tmp/hft-bench-train-XXXXXX", path[512], cmd[2048];
    int vocab = bench_gpt2_folder(dir, true, &tok, NULL);
    if (!vocab) return 1;
    int threads = hft_threads_get();
    printf("fine-tuning GPT-2 small (vocab %d, tokenizer %s): %d steps of %d x %d tokens, %d threads\n",
           vocab, tok, STEPS, BATCH, SEQ, threads);
    snprintf(cmd, sizeof cmd,
             "%s recipes/gpt2_finetune.yaml model.path=%s/model data.train_file=/usr/share/common-licenses "
             "data.eval_file= eval_strategy=no load_best_model_at_end=false max_steps=%d "
             "per_device_train_batch_size=%d "
             "gradient_accumulation_steps=1 max_length=%d save_steps=100000 logging_steps=100000 cache_dir= "
             "output_dir=%s/run > %s/hft.log 2>&1",
             bin, dir, STEPS, BATCH, SEQ, dir, dir);
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    double wall = bench_now() - t0;
    snprintf(path, sizeof path, "%s/hft.log", dir);
    FILE *fp = fopen(path, "r");
    char line[1024];
    double runtime = 0;
    while (fp && fgets(line, sizeof line, fp)) {
        char *p = strstr(line, "train_runtime ");
        if (p) runtime = atof(p + 14);
    }
    if (fp) fclose(fp);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || runtime <= 0) {
        fprintf(stderr, "bench_train: hft-train failed; see %s\n", path);
        return 1;
    }
    double tokens = (double)STEPS * BATCH * SEQ, hft_tps = tokens / runtime;
    double hft_rss = (double)ru.ru_maxrss / 1024.0;
    printf("  hft-train     %7.0f tokens/s (%.1f s/step, %.0f s with start-up), peak RSS %6.0f MiB\n",
           hft_tps, runtime / STEPS, wall, hft_rss);
    char args[1024];
    snprintf(args, sizeof args,
             "--model %s/model --text /usr/share/common-licenses --steps %d --batch %d --seq %d", dir, STEPS,
             BATCH, SEQ);
    double peer = bench_run_peer("hf_trainer.py", args, threads);
    if (peer > 0)
        printf("  hft-train is %.2fx transformers' Trainer in tokens/s (>1 is faster)\n", hft_tps / peer);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
