/* distributed/ in one process: the process group without a launcher, autograd's parameter-ready report
 * (the hook that starts each bucket's all-reduce during backward), gradient sync's buckets, and ZeRO-1's
 * ranges with optimizers sharded over them. The multi-rank behaviour is tests/test_dist.sh, under mpirun. */
#include "distributed/dist.h"
#include "optim/optim.h"
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

TEST(shard_ranges_cover_the_flat_layout_in_order_at_aligned_starts) {
    const int64_t sizes[] = {0, 1, 15, 16, 17, 100, 146592, 124439808};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int world = 1; world <= 9; world++) {
            int64_t next = 0, biggest = 0;
            for (int r = 0; r < world; r++) {
                int64_t lo, count;
                hft_shard_range(sizes[i], world, r, &lo, &count);
                CHECK(lo == next && count >= 0, "n %lld, world %d: rank %d starts at %lld, not %lld",
                      (long long)sizes[i], world, r, (long long)lo, (long long)next);
                CHECK(lo % 16 == 0 || count == 0, "rank %d's range starts at %lld", r, (long long)lo);
                next = lo + count;
                if (count > biggest) biggest = count;
            }
            CHECK(next == sizes[i], "n %lld, world %d: the ranges end at %lld", (long long)sizes[i], world,
                  (long long)next);
            CHECK(biggest <= (sizes[i] + world - 1) / world + 15, "n %lld, world %d: a range of %lld",
                  (long long)sizes[i], world, (long long)biggest);
        }
}

/* Parameters of odd sizes (slices that the ranges cut in the middle, one range inside one parameter). */
static hft_paramset *odd_params(void) {
    test_rng rng = {11};
    static const int64_t n[] = {7, 33, 1, 100, 29};
    hft_paramset *ps = hft_paramset_new();
    for (int i = 0; i < 5; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        hft_paramset_add(ps, name, test_random(&rng, HFT_F32, 1, &n[i], -1, 1),
                         i == 2 ? HFT_PARAM_NO_DECAY : 0);
    }
    hft_paramset_finalize(ps, 0);
    return ps;
}

static void fill_grads(hft_paramset *ps, int step) {
    test_rng rng = {(unsigned long long)(100 + step)};
    hft_tensor *g = hft_paramset_grads(ps);
    hft_tensor *r = test_random(&rng, HFT_F32, 1, g->shape, -1, 1);
    memcpy(hft_tensor_data(g), hft_tensor_data(r), hft_tensor_nbytes(g));
    hft_tensor_free(r);
    for (int i = 0; i < hft_paramset_count(ps); i++)
        hft_paramset_get(ps, i)->value->flags |= HFT_TENSOR_GRAD_SET;
}

TEST(optimizers_sharded_over_every_range_update_as_one_optimizer) {
    hft_optim_config cfgs[3] = {hft_optim_defaults(HFT_OPTIM_ADAMW), hft_optim_defaults(HFT_OPTIM_SGD),
                                hft_optim_defaults(HFT_OPTIM_LION)};
    cfgs[0].amsgrad = true, cfgs[0].weight_decay = 0.1, cfgs[0].lr = 1e-2;
    cfgs[1].momentum = 0.9, cfgs[1].nesterov = true, cfgs[1].lr = 0.1, cfgs[1].weight_decay = 0.01;
    cfgs[2].lr = 1e-3, cfgs[2].weight_decay = 0.1;
    enum { WORLD = 3 };
    for (int c = 0; c < 3; c++) {
        hft_paramset *whole = odd_params(), *ranks[WORLD];
        hft_optimizer *one = NULL, *shard[WORLD] = {NULL};
        CHECK_OK(hft_optimizer_new(whole, &cfgs[c], 0, NULL, &one), NULL);
        int64_t n = hft_paramset_trainable_numel(whole);
        for (int r = 0; r < WORLD; r++) { /* each "rank" its own copy of the parameters */
            int64_t lo, count;
            ranks[r] = odd_params();
            hft_shard_range(n, WORLD, r, &lo, &count);
            CHECK_OK(hft_optimizer_new(ranks[r], &cfgs[c], 0, NULL, &shard[r]), NULL);
            CHECK_OK(hft_optimizer_shard(shard[r], lo, count), NULL);
        }
        for (int step = 0; step < 3; step++) {
            fill_grads(whole, step);
            CHECK_OK(hft_optimizer_step(one, 0.5), NULL);
            for (int r = 0; r < WORLD; r++) {
                fill_grads(ranks[r], step);
                CHECK_OK(hft_optimizer_step(shard[r], 0.5), NULL);
            }
            /* the all-gather: each rank's range of values to the others */
            for (int r = 0; r < WORLD; r++) {
                int64_t lo, count;
                hft_shard_range(n, WORLD, r, &lo, &count);
                for (int o = 0; o < WORLD; o++)
                    memcpy((float *)hft_tensor_data(hft_paramset_values(ranks[o])) + lo,
                           (float *)hft_tensor_data(hft_paramset_values(ranks[r])) + lo,
                           sizeof(float) * (size_t)count);
            }
            for (int r = 0; r < WORLD; r++)
                CHECK(memcmp(hft_tensor_data(hft_paramset_values(ranks[r])),
                             hft_tensor_data(hft_paramset_values(whole)), sizeof(float) * (size_t)n) == 0,
                      "%s, step %d: rank %d's values differ from one optimizer's",
                      hft_optim_kind_name(cfgs[c].kind), step, r);
        }
        /* the state: each rank's range of each buffer is the whole optimizer's */
        for (int b = 0; b < HFT_OPTIM_STATE_BUFFERS; b++) {
            hft_tensor *full, *part;
            int64_t lo0, lo;
            CHECK_OK(hft_optimizer_state_buffer(one, b, &full, &lo0), NULL);
            for (int r = 0; r < WORLD && full; r++) {
                CHECK_OK(hft_optimizer_state_buffer(shard[r], b, &part, &lo), NULL);
                CHECK(part && memcmp((float *)hft_tensor_data(full) + lo, hft_tensor_data(part),
                                     hft_tensor_nbytes(part)) == 0,
                      "%s: rank %d's state buffer %d", hft_optim_kind_name(cfgs[c].kind), r, b);
            }
        }
        const char *name;
        hft_tensor *t;
        CHECK(hft_optimizer_state(shard[0], 0, &name, &t) == HFT_ESTATE,
              "a shard has no whole state tensors");
        hft_optimizer_free(one);
        hft_paramset_free(whole);
        for (int r = 0; r < WORLD; r++) hft_optimizer_free(shard[r]), hft_paramset_free(ranks[r]);
    }
    hft_paramset *ps = odd_params();
    hft_optim_config af = hft_optim_defaults(HFT_OPTIM_ADAFACTOR);
    hft_optimizer *o = NULL;
    CHECK_OK(hft_optimizer_new(ps, &af, 0, NULL, &o), NULL);
    CHECK(hft_optimizer_shard(o, 0, 16) == HFT_EUNSUPPORTED && strstr(hft_error_message(), "adafactor"),
          "Adafactor refuses sharding: %s", hft_error_message());
    hft_optimizer_free(o);
    hft_paramset_free(ps);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"without_a_launcher", without_a_launcher_the_group_is_one_process_and_needs_no_mpi},
        {"param_ready", a_parameter_is_reported_once_after_its_last_reader_also_through_a_checkpoint},
        {"grad_sync_buckets", gradient_sync_starts_buckets_during_backward_and_zeroes_unwritten_gradients},
        {"shard_ranges", shard_ranges_cover_the_flat_layout_in_order_at_aligned_starts},
        {"sharded_optimizers", optimizers_sharded_over_every_range_update_as_one_optimizer},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
