/* distributed/ in one process: the process group without a launcher, autograd's parameter-ready report
 * (the hook that starts each bucket's all-reduce during backward), and gradient sync's buckets. The
 * multi-rank behaviour is tests/test_dist.sh, under mpirun. */
#include "distributed/dist.h"
#include "tests/test_util.h"

TEST(without_a_launcher_the_group_is_one_process_and_needs_no_mpi) {
    unsetenv("PMI_RANK"), unsetenv("OMPI_COMM_WORLD_RANK"), unsetenv("PMIX_RANK");
    CHECK(!hft_dist_launched(), "no launcher variables");
    hft_dist *d = NULL;
    CHECK_OK(hft_dist_init(&d), NULL);
    CHECK(hft_dist_rank(d) == 0 && hft_dist_world(d) == 1 && hft_dist_local_world(d) == 1, "a group of one");
    double v[2] = {1.5, -2};
    CHECK_OK(hft_dist_allreduce_f64(d, v, 2, HFT_DIST_SUM, "test"), NULL);
    CHECK(v[0] == 1.5 && v[1] == -2, "a sum over one rank is the value");
    CHECK_OK(hft_dist_agree(d, "recipe", "a: 1\n"), NULL);
    int64_t mine = 7, all = 0;
    CHECK_OK(hft_dist_allgather(d, &mine, &all, sizeof mine, "test"), NULL);
    CHECK(all == 7, "allgather of one");
    hft_dist_finalize(d);
}

/* Two layers, x → W1 → W2 → sum, with W2 optionally inside a checkpoint. */
typedef struct net {
    hft_paramset *ps;
    hft_tensor *w1, *w2, *unused;
} net;

static net make_net(size_t bucket_bytes) {
    test_rng rng = {5};
    net n = {.ps = hft_paramset_new()};
    n.w1 = test_random(&rng, HFT_F32, 2, (int64_t[]){6, 4}, -1, 1);
    n.w2 = test_random(&rng, HFT_F32, 2, (int64_t[]){3, 6}, -1, 1);
    n.unused = test_random(&rng, HFT_F32, 1, (int64_t[]){5}, -1, 1);
    hft_paramset_add(n.ps, "w1", n.w1, 0);
    hft_paramset_add(n.ps, "w2", n.w2, 0);
    hft_paramset_add(n.ps, "unused", n.unused, 0);
    hft_paramset_finalize(n.ps, bucket_bytes);
    return n;
}

static hft_tensor *second_layer(hft_ctx *ctx, hft_tensor *const *in, void *user) {
    return hft_linear(ctx, in[0], ((net *)user)->w2, NULL);
}

static hft_tensor *forward(hft_ctx *ctx, net *n, bool checkpointed) {
    test_rng rng = {9};
    hft_tensor *xh = test_random(&rng, HFT_F32, 2, (int64_t[]){2, 4}, -1, 1);
    hft_tensor *x = hft_from_data(ctx, HFT_F32, 2, xh->shape, hft_tensor_data(xh));
    hft_tensor_free(xh);
    hft_tensor *h = hft_linear(ctx, x, n->w1, NULL);
    hft_tensor *o = checkpointed ? hft_checkpoint(ctx, second_layer, n, 1, &h) : second_layer(ctx, &h, n);
    return hft_sum(ctx, o, 0, NULL, false);
}

typedef struct ready_log {
    hft_tensor *order[8];
    int n;
} ready_log;

static void log_ready(hft_tensor *p, void *user) {
    ready_log *l = user;
    if (l->n < 8) l->order[l->n++] = p;
}

TEST(a_parameter_is_reported_once_after_its_last_reader_also_through_a_checkpoint) {
    for (int checkpointed = 0; checkpointed < 2; checkpointed++) {
        net n = make_net(0);
        hft_ctx *ctx = hft_ctx_new(NULL);
        ready_log log = {0};
        hft_tensor *loss = forward(ctx, &n, checkpointed);
        hft_ctx_on_param_ready(ctx, log_ready, &log);
        CHECK_OK(hft_backward(ctx, loss, NULL), ctx);
        CHECK(log.n == 2, "w2 and w1 reported, the unused parameter not (%d reports)", log.n);
        CHECK(log.n == 2 && log.order[0] == n.w2 && log.order[1] == n.w1, "w2 before w1 (checkpointed %d)",
              checkpointed);
        hft_ctx_free(ctx);
        hft_paramset_free(n.ps);
    }
}

TEST(gradient_sync_starts_buckets_during_backward_and_zeroes_unwritten_gradients) {
    hft_dist *d = NULL;
    CHECK_OK(hft_dist_init(&d), NULL);
    net n = make_net(1); /* one bucket per parameter */
    CHECK(hft_paramset_bucket_count(n.ps) == 3, "3 buckets, got %d", hft_paramset_bucket_count(n.ps));
    hft_comm *c = NULL;
    hft_grad_sync *s = NULL;
    CHECK_OK(hft_comm_mpi(d, &c), NULL);
    CHECK_OK(hft_grad_sync_new(c, n.ps, &s), NULL);
    float *stale = hft_tensor_data(n.unused->grad);
    for (int i = 0; i < 5; i++) stale[i] = 99; /* left over from an earlier step */
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *loss = forward(ctx, &n, true);
    hft_grad_sync_begin(s, ctx);
    CHECK_OK(hft_backward(ctx, loss, NULL), ctx);
    /* buckets run in reverse registration order: the unused parameter's (first) never fills, so it holds
     * back the others until the end; w2 and w1 are ready during backward */
    CHECK(hft_grad_sync_overlapped(s) == 0, "bucket order kept: %d started early",
          hft_grad_sync_overlapped(s));
    CHECK_OK(hft_grad_sync_end(s, ctx, "test"), NULL);
    for (int i = 0; i < 5; i++) CHECK(stale[i] == 0, "an unwritten gradient is zero before the all-reduce");
    hft_ctx_free(ctx);
    hft_paramset_free(n.ps);

    /* without a parameter that no node reads, every bucket starts during backward */
    n = make_net(1);
    hft_grad_sync_free(s);
    ctx = hft_ctx_new(NULL);
    CHECK_OK(hft_grad_sync_new(c, n.ps, &s), NULL);
    hft_tensor *h = forward(ctx, &n, false);
    hft_tensor *extra = hft_sum(ctx, n.unused, 0, NULL, false); /* now read: the whole set is written */
    hft_tensor *loss2 = hft_add(ctx, h, extra);
    hft_grad_sync_begin(s, ctx);
    CHECK_OK(hft_backward(ctx, loss2, NULL), ctx);
    CHECK(hft_grad_sync_overlapped(s) == 3, "3 buckets started during backward, got %d",
          hft_grad_sync_overlapped(s));
    CHECK_OK(hft_grad_sync_end(s, ctx, "test"), NULL);
    hft_ctx_free(ctx);
    hft_paramset_free(n.ps);
    hft_grad_sync_free(s);
    hft_comm_free(c);
    hft_dist_finalize(d);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"without_a_launcher", without_a_launcher_the_group_is_one_process_and_needs_no_mpi},
        {"param_ready", a_parameter_is_reported_once_after_its_last_reader_also_through_a_checkpoint},
        {"grad_sync_buckets", gradient_sync_starts_buckets_during_backward_and_zeroes_unwritten_gradients},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
