/* hft-train RECIPE.yaml [key=value ...]: trains as the recipe says. Exit status 0 when the run finished or
 * stopped cleanly on a signal (with a checkpoint to resume from), 1 on an error, 2 on a usage error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <omp.h>

#include "distributed/dist.h"
#include "trainer/trainer.h"

/* Under mpirun: ranks other than 0 print only errors; threads default to this node's cores shared out. */
static void join_launcher(hft_dist *d) {
    if (hft_dist_world(d) == 1) return;
    if (hft_dist_rank(d) != 0 && !freopen("/dev/null", "w", stdout)) perror("hft-train: /dev/null");
    const char *env = getenv("OMP_NUM_THREADS");
    if (!env || !*env) {
        int share = omp_get_num_procs() / hft_dist_local_world(d);
        hft_threads_set(share > 0 ? share : 1);
    }
}

/* An error on one rank: the others cannot know, so the whole job ends now rather than at a timeout. */
static int fail(hft_dist *d, const char *what) {
    if (hft_dist_world(d) > 1 && hft_dist_error_shared(d)) { /* every rank has it: rank 0 says it, all end */
        if (hft_dist_rank(d) == 0) fprintf(stderr, "hft-train: %s\n", what);
        hft_dist_finalize(d);
        return 1;
    }
    if (hft_dist_world(d) > 1) {
        fprintf(stderr, "hft-train: rank %d: %s\n", hft_dist_rank(d), what);
        fflush(stderr);
        /* the launcher forwards output through its proxies, which the abort also ends: let it through */
        struct timespec pause = {0, 300000000};
        nanosleep(&pause, NULL);
        hft_dist_abort(d, 1);
    }
    fprintf(stderr, "hft-train: %s\n", what);
    hft_dist_finalize(d);
    return 1;
}

static void usage(FILE *fp) {
    fprintf(fp,
            "usage: hft-train RECIPE.yaml [key=value ...]\n"
            "       hft-train --help\n\n"
            "Trains a Hugging Face model as the YAML recipe says; key=value arguments override the recipe\n"
            "(key or section.key, e.g. learning_rate=1e-4 training.max_steps=100). Recipe keys:\n");
}

int main(int argc, char **argv) {
    const char *recipe = NULL;
    char *overrides[256];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            hft_recipe_print_help(stdout);
            return 0;
        }
        if (strchr(argv[i], '=')) {
            if (n < 256) overrides[n++] = argv[i];
        } else if (!recipe) {
            recipe = argv[i];
        } else {
            fprintf(stderr,
                    "hft-train: unexpected argument '%s' (overrides must be in the form of key=value)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!recipe) {
        usage(stderr);
        return 2;
    }
    hft_dist *dist = NULL;
    if (hft_runtime_init() != HFT_OK || hft_dist_init(&dist) != HFT_OK) {
        fprintf(stderr, "hft-train: %s\n", hft_error_message());
        return 1;
    }
    join_launcher(dist);
    hft_recipe *r = NULL;
    if (hft_recipe_load(recipe, n, overrides, &r) != HFT_OK) return fail(dist, hft_error_message());
    bool stopped = false;
    hft_status st = hft_train_on(r, dist, &stopped);
    hft_recipe_free(r);
    if (st != HFT_OK) return fail(dist, hft_error_message());
    hft_dist_finalize(dist);
    return 0;
}
