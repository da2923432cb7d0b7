/* Autograd on a CUDA device: every op family run forward and backward in a CUDA context on device copies of
 * the inputs, against the same graph in a CPU context; the context's memory on the device (arena and pool
 * reused across steps); inputs on the wrong device refused. Runs on the GPU, and on the host emulator
 * without one.
 *
 * Tolerances: for f32 data the CUDA kernels compute what the CPU's do, but may sum in another order
 * (tiled GEMM, warp reductions, a different split of a row sum). Reordering a sum of K terms changes it by
 * at most about K·ε·Σ|terms| (ε = 2^-24), and the values here are O(1), so each comparison allows
 * 8·K·ε relative to the largest reference value, K being the longest reduction behind that output. */
#include "tests/cuda_test_util.h"

static const hft_device gpu = {HFT_CUDA, 0};

#define EPS_F32 (1.0 / 16777216.0)
#define MAX_IN  8

/* A graph under test: builds its output from the leaves `in` in `ctx`. */
typedef hft_tensor *(*graph_fn)(hft_ctx *ctx, hft_tensor *const *in, void *user);

typedef struct graph_case {
    const char *name;
    graph_fn fn;
    void *user;
    int n_in;
    hft_tensor *in[MAX_IN]; /* CPU leaves; the ones to differentiate require grad */
    int64_t k_out, k_grad;  /* the longest reduction behind the output and behind the gradients */
} graph_case;

static double tol_for(int64_t k) {
    return 8.0 * (double)(k > 1 ? k : 1) * EPS_F32;
}

static hft_ctx *new_ctx(hft_device device) {
    hft_ctx_options o = {.arena_bytes = (size_t)1 << 20, .device = device};
    hft_ctx *ctx = hft_ctx_new(&o);
    CHECK(ctx != NULL, "hft_ctx_new: %s", hft_error_message());
    if (ctx) hft_ctx_set_rng(ctx, 1234, 7, 1, 3);
    return ctx;
}

/* Compares two tensors' values (either device) within `tol`. */
static void compare_values(const char *what, const hft_tensor *got, const hft_tensor *want, double tol) {
    CHECK(got && want, "%s: missing (got %p, want %p)", what, (const void *)got, (const void *)want);
    if (!got || !want) return;
    CHECK(hft_tensor_same_shape(got, want), "%s: shapes differ", what);
    int64_t n = hft_tensor_numel(want);
    double *g = malloc(sizeof(double) * (size_t)(n ? n : 1)),
           *w = malloc(sizeof(double) * (size_t)(n ? n : 1));
    CHECK(hft_tensor_to_f64(got, g) == HFT_OK && hft_tensor_to_f64(want, w) == HFT_OK, "%s: %s", what,
          hft_error_message());
    char name[160];
    snprintf(name, sizeof name, "%s [%s]", what, test_current);
    CHECK(test_close(name, g, w, (long)n, tol, tol), "%s differs from the CPU beyond %.3g", what, tol);
    free(g);
    free(w);
}

/* Runs c's graph forward, then backward (seeded with 1 for a scalar, else with the fixed gradient `seed`),
 * in `ctx` on `in`; returns the output (valid until the context is reset). */
static hft_tensor *run_graph(hft_ctx *ctx, const graph_case *c, hft_tensor *const *in,
                             const hft_tensor *seed) {
    hft_tensor *y = c->fn(ctx, in, c->user);
    CHECK(y != NULL, "%s forward on %s: %s", c->name, ctx ? "ctx" : "?", hft_ctx_error(ctx));
    if (!y) return NULL;
    CHECK(y->device.type == in[0]->device.type, "%s: output on another device than the inputs", c->name);
    hft_status st = hft_backward(ctx, y, hft_tensor_numel(y) == 1 && y->ndim == 0 ? NULL : seed);
    CHECK(st == HFT_OK, "%s backward: %s", c->name, hft_ctx_error(ctx));
    return y;
}

/* The case on the CPU and on the device; outputs and every leaf gradient compared. Frees the inputs. */
static void check_case(graph_case *c) {
    hft_ctx *cc = new_ctx((hft_device){HFT_CPU, 0}), *dc = new_ctx(gpu);
    hft_tensor *din[MAX_IN] = {0};
    for (int i = 0; i < c->n_in; i++) {
        din[i] = hft_tensor_to(c->in[i], gpu);
        CHECK(din[i] != NULL, "upload: %s", hft_error_message());
        hft_tensor_set_requires_grad(din[i], c->in[i]->requires_grad);
    }
    /* the seed gradient for a non-scalar output: made from the CPU output's shape */
    hft_set_grad_enabled(cc, false);
    hft_tensor *probe = c->fn(cc, c->in, c->user);
    hft_set_grad_enabled(cc, true);
    hft_tensor *seed_c = NULL, *seed_d = NULL;
    if (probe && !(hft_tensor_numel(probe) == 1 && probe->ndim == 0)) {
        test_rng r = {99};
        seed_c = test_random(&r, probe->dtype, probe->ndim, probe->shape, -1, 1);
        seed_d = hft_tensor_to(seed_c, gpu);
    }
    hft_ctx_reset(cc);
    hft_tensor *yc = run_graph(cc, c, c->in, seed_c);
    hft_tensor *yd = run_graph(dc, c, din, seed_d);
    char what[160];
    snprintf(what, sizeof what, "%s output", c->name);
    if (yc && yd) compare_values(what, yd, yc, tol_for(c->k_out));
    for (int i = 0; i < c->n_in; i++) {
        if (!c->in[i]->requires_grad) continue;
        snprintf(what, sizeof what, "%s grad of input %d", c->name, i);
        const hft_tensor *gc = hft_tensor_grad(c->in[i]), *gd = hft_tensor_grad(din[i]);
        CHECK(gd == NULL || gd->device.type == HFT_CUDA, "%s is not on the device", what);
        compare_values(what, gd, gc, tol_for(c->k_grad));
    }
    for (int i = 0; i < c->n_in; i++) {
        hft_tensor_free(c->in[i]);
        hft_tensor_free(din[i]);
    }
    hft_tensor_free(seed_c);
    hft_tensor_free(seed_d);
    hft_ctx_free(cc);
    hft_ctx_free(dc);
}

static hft_tensor *leaf(test_rng *r, int ndim, const int64_t *shape, bool grad) {
    hft_tensor *t = test_random(r, HFT_F32, ndim, shape, -1, 1);
    hft_tensor_set_requires_grad(t, grad);
    return t;
}

/* i64 ids in [0, n), with `ignored` (unless -1) at every 5th position. */
static hft_tensor *ids(test_rng *r, int ndim, const int64_t *shape, int64_t n, int64_t ignored) {
    hft_tensor *t = test_random(r, HFT_I64, ndim, shape, 0, (double)n);
    int64_t *p = hft_tensor_data(t);
    for (int64_t i = 0; ignored != -1 && i < hft_tensor_numel(t); i += 5) p[i] = ignored;
    return t;
}

/* ---------------------------------------------------------------- op families */

static hft_tensor *g_linear(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_linear(ctx, in[0], in[1], in[2]);
}

TEST(test_linear_with_bias) {
    test_rng r = {1};
    graph_case c = {"linear", g_linear, NULL, 3, {0}, 16, 16};
    c.in[0] = leaf(&r, 3, (int64_t[]){2, 3, 16}, true);
    c.in[1] = leaf(&r, 2, (int64_t[]){5, 16}, true);
    c.in[2] = leaf(&r, 1, (int64_t[]){5}, true);
    check_case(&c);
}

/* a batched matmul with b broadcast over the batch (its gradient sums over it), and a transposed view */
static hft_tensor *g_matmul(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    hft_tensor *ab = hft_matmul(ctx, in[0], in[1]);
    return hft_matmul(ctx, ab, hft_transpose(ctx, in[2], 0, 1));
}

TEST(test_matmul_broadcast_and_transposed) {
    test_rng r = {2};
    graph_case c = {"matmul", g_matmul, NULL, 3, {0}, 6 * 7, 6 * 7 * 2};
    c.in[0] = leaf(&r, 3, (int64_t[]){2, 4, 6}, true);
    c.in[1] = leaf(&r, 2, (int64_t[]){6, 7}, true);
    c.in[2] = leaf(&r, 2, (int64_t[]){3, 7}, true);
    check_case(&c);
}

static hft_tensor *g_add_mul(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_mul(ctx, hft_add(ctx, in[0], in[1]), hft_sub(ctx, in[1], in[2]));
}

TEST(test_add_mul_broadcast) {
    test_rng r = {3};
    graph_case c = {"add/mul", g_add_mul, NULL, 3, {0}, 1, 3 * 5};
    c.in[0] = leaf(&r, 3, (int64_t[]){3, 4, 5}, true);
    c.in[1] = leaf(&r, 2, (int64_t[]){4, 1}, true);
    c.in[2] = leaf(&r, 1, (int64_t[]){5}, true);
    check_case(&c);
}

static hft_tensor *g_gelu(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_add(ctx, hft_gelu(ctx, in[0], HFT_GELU_TANH), hft_gelu(ctx, in[0], HFT_GELU_ERF));
}

TEST(test_gelu) {
    test_rng r = {4};
    graph_case c = {"gelu", g_gelu, NULL, 1, {0}, 4, 4}; /* tanh/erf/exp: a few ulps each */
    c.in[0] = test_random(&r, HFT_F32, 2, (int64_t[]){6, 17}, -4, 4);
    hft_tensor_set_requires_grad(c.in[0], true);
    check_case(&c);
}

static hft_tensor *g_norms(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    hft_tensor *h = hft_layer_norm(ctx, in[0], in[1], in[2], 1e-5);
    return hft_rms_norm(ctx, hft_mul(ctx, h, in[0]), in[1], 1e-6);
}

TEST(test_layer_norm_and_rms_norm) {
    test_rng r = {5};
    graph_case c = {"layer_norm+rms_norm", g_norms, NULL, 3, {0}, 4 * 40, 4 * 40 * 6};
    c.in[0] = leaf(&r, 3, (int64_t[]){2, 3, 40}, true);
    c.in[1] = leaf(&r, 1, (int64_t[]){40}, true);
    c.in[2] = leaf(&r, 1, (int64_t[]){40}, true);
    check_case(&c);
}

static hft_tensor *g_softmax(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_add(ctx, hft_softmax(ctx, in[0], -1), hft_log_softmax(ctx, in[0], 1));
}

TEST(test_softmax_and_log_softmax) {
    test_rng r = {6};
    graph_case c = {"softmax", g_softmax, NULL, 1, {0}, 2 * 33, 2 * 33};
    c.in[0] = test_random(&r, HFT_F32, 3, (int64_t[]){3, 5, 33}, -3, 3);
    hft_tensor_set_requires_grad(c.in[0], true);
    check_case(&c);
}

static hft_tensor *g_attention(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    hft_attn_opts o = {.causal = true};
    return hft_attention(ctx, in[0], in[1], in[2], &o);
}

TEST(test_attention_causal_gqa) {
    test_rng r = {7};
    /* q·k over D = 16, softmax and p·v over Tk = 9: the kernels tile both differently from the CPU */
    graph_case c = {"attention", g_attention, NULL, 3, {0}, 4 * 16 * 9, 4 * 16 * 9 * 2};
    c.in[0] = leaf(&r, 4, (int64_t[]){2, 9, 4, 16}, true);
    c.in[1] = leaf(&r, 4, (int64_t[]){2, 9, 2, 16}, true);
    c.in[2] = leaf(&r, 4, (int64_t[]){2, 9, 2, 16}, true);
    check_case(&c);
}

static hft_tensor *g_attention_mask(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    hft_attn_opts o = {.causal = true, .key_mask = in[3]};
    return hft_attention(ctx, in[0], in[1], in[2], &o);
}

TEST(test_attention_key_mask) {
    test_rng r = {17};
    graph_case c = {"attention+key_mask", g_attention_mask, NULL, 4, {0}, 4 * 16 * 7, 4 * 16 * 7 * 2};
    c.in[0] = leaf(&r, 4, (int64_t[]){2, 7, 2, 16}, true);
    c.in[1] = leaf(&r, 4, (int64_t[]){2, 7, 2, 16}, true);
    c.in[2] = leaf(&r, 4, (int64_t[]){2, 7, 2, 16}, true);
    c.in[3] = hft_tensor_new(HFT_I64, 2, (int64_t[]){2, 7});
    int64_t *m = hft_tensor_data(c.in[3]);
    for (int i = 0; i < 14; i++) m[i] = i % 7 < 5 || i < 7; /* the second sample's last two keys padded */
    check_case(&c);
}

static hft_tensor *g_embedding(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_embedding(ctx, in[0], in[1], 3);
}

TEST(test_embedding_with_padding) {
    test_rng r = {8};
    graph_case c = {"embedding", g_embedding, NULL, 2, {0}, 1, 1}; /* a gather; backward adds rows in order */
    c.in[0] = leaf(&r, 2, (int64_t[]){11, 6}, true);
    c.in[1] = ids(&r, 2, (int64_t[]){3, 7}, 11, 3);
    check_case(&c);
}

static hft_tensor *g_xent(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    int64_t *count = u;
    return hft_cross_entropy(ctx, in[0], in[1], (hft_xent_opts){.ignore_index = -100, .label_smoothing = 0.1},
                             count);
}

TEST(test_cross_entropy_sum_and_count) {
    test_rng r = {9};
    int64_t count = -1;
    graph_case c = {"cross_entropy", g_xent, &count, 2, {0}, 12 * 19, 19};
    c.in[0] = test_random(&r, HFT_F32, 3, (int64_t[]){3, 4, 19}, -4, 4);
    hft_tensor_set_requires_grad(c.in[0], true);
    c.in[1] = ids(&r, 2, (int64_t[]){3, 4}, 19, -100);
    check_case(&c); /* the count: the device run's, made last */
    CHECK(count == 9, "cross_entropy counted %lld targets on CUDA, expected 9 (3 of 12 ignored)",
          (long long)count);
}

static hft_tensor *g_lce(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    int64_t *count = u;
    return hft_linear_cross_entropy(ctx, in[0], in[1], in[2], in[3], HFT_XENT_DEFAULTS, count);
}

TEST(test_linear_cross_entropy_sum_and_count) {
    test_rng r = {10};
    int64_t count = -1;
    graph_case c = {"linear_cross_entropy", g_lce, &count, 4, {0}, 10 * 23 * 12, 23 * 12 * 10};
    c.in[0] = leaf(&r, 3, (int64_t[]){2, 5, 12}, true);
    c.in[1] = leaf(&r, 2, (int64_t[]){23, 12}, true);
    c.in[2] = leaf(&r, 1, (int64_t[]){23}, true);
    c.in[3] = ids(&r, 2, (int64_t[]){2, 5}, 23, -100);
    check_case(&c);
    CHECK(count == 8, "linear_cross_entropy counted %lld targets on CUDA, expected 8", (long long)count);
}

static hft_tensor *g_dropout(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_dropout(ctx, in[0], 0.3, 5);
}

TEST(test_dropout_same_mask) {
    test_rng r = {11};
    graph_case c = {"dropout", g_dropout, NULL, 1, {0}, 1, 1}; /* the same Philox draws: exact */
    c.in[0] = leaf(&r, 3, (int64_t[]){4, 3, 21}, true);
    check_case(&c);
}

/* One GPT-2 block and its loss: ln → qkv → split heads → causal attention → proj → residual → ln → MLP
 * (gelu tanh) → residual, then the tied-free head fused with cross-entropy. Views (split, reshape) and
 * the gradients they share go through the device too. */
enum { B = 2, T = 6, C = 16, H = 2, V = 13 };

static hft_tensor *g_block(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    hft_tensor *x = hft_embedding(ctx, in[0], in[1], -1);
    hft_tensor *h = hft_layer_norm(ctx, x, in[2], in[3], 1e-5);
    hft_tensor *qkv = hft_linear(ctx, h, in[4], in[5]);
    hft_tensor *parts[3];
    if (!hft_split(ctx, qkv, -1, 3, NULL, parts)) return NULL;
    int64_t heads[4] = {B, T, H, C / H};
    hft_tensor *q = hft_reshape(ctx, parts[0], 4, heads), *k = hft_reshape(ctx, parts[1], 4, heads),
               *v = hft_reshape(ctx, parts[2], 4, heads);
    hft_attn_opts o = {.causal = true};
    hft_tensor *a = hft_reshape(ctx, hft_attention(ctx, q, k, v, &o), 3, (int64_t[]){B, T, C});
    x = hft_add(ctx, x, hft_linear(ctx, a, in[6], NULL));
    h = hft_layer_norm(ctx, x, in[2], in[3], 1e-5);
    hft_tensor *m =
        hft_linear(ctx, hft_gelu(ctx, hft_linear(ctx, h, in[7], NULL), HFT_GELU_TANH), in[6], NULL);
    x = hft_add(ctx, x, hft_dropout(ctx, hft_transpose(ctx, hft_transpose(ctx, m, 0, 1), 0, 1), 0.1, 2));
    return hft_linear_cross_entropy(ctx, x, in[0], NULL, in[1], HFT_XENT_DEFAULTS, NULL);
}

static graph_case block_case(uint64_t seed) {
    test_rng r = {seed};
    graph_case c = {"gpt2 block", g_block, NULL, 8, {0}, 64 * C * T, 64 * C * T * B};
    c.in[0] = leaf(&r, 2, (int64_t[]){V, C}, true); /* wte, also the head */
    c.in[1] = ids(&r, 2, (int64_t[]){B, T}, V, -1);
    c.in[2] = leaf(&r, 1, (int64_t[]){C}, true);
    c.in[3] = leaf(&r, 1, (int64_t[]){C}, true);
    c.in[4] = leaf(&r, 2, (int64_t[]){3 * C, C}, true);
    c.in[5] = leaf(&r, 1, (int64_t[]){3 * C}, true);
    c.in[6] = leaf(&r, 2, (int64_t[]){C, C}, true);
    c.in[7] = leaf(&r, 2, (int64_t[]){C, C}, true);
    return c;
}

TEST(test_gpt2_block) {
    graph_case c = block_case(12);
    check_case(&c);
}

static hft_tensor *g_rope(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_rope(ctx, hft_transpose(ctx, in[0], 1, 2), in[1], in[2], 1.0); /* a strided x */
}

TEST(test_rope_strided) {
    test_rng r = {15};
    graph_case c = {"rope", g_rope, NULL, 3, {0}, 4, 4}; /* sin/cos of the same angles: a few ulps */
    c.in[0] = leaf(&r, 4, (int64_t[]){2, 3, 5, 8}, true);
    c.in[1] = ids(&r, 2, (int64_t[]){1, 5}, 40, -1);
    c.in[2] = hft_tensor_new(HFT_F32, 1, (int64_t[]){4});
    for (int i = 0; i < 4; i++) ((float *)hft_tensor_data(c.in[2]))[i] = powf(10000.0f, -(float)i / 4.0f);
    check_case(&c);
}

/* The MLP half of a block, checkpointed: recomputed in backward inside an arena scope on the device. */
static hft_tensor *mlp(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    hft_tensor *h = hft_gelu(ctx, hft_linear(ctx, in[0], in[1], in[2]), HFT_GELU_TANH);
    return hft_sum(ctx, hft_exp(ctx, hft_scale(ctx, hft_linear(ctx, h, in[3], NULL), 0.25)), 1, (int[]){-1},
                   false);
}

static hft_tensor *g_checkpoint(hft_ctx *ctx, hft_tensor *const *in, void *u) {
    (void)u;
    return hft_mean(ctx, hft_checkpoint(ctx, mlp, NULL, 4, in), 0, NULL, false);
}

TEST(test_checkpointed_two_layer_mlp) {
    test_rng r = {16};
    graph_case c = {"checkpoint(mlp)", g_checkpoint, NULL, 4, {0}, 4 * 24, 4 * 24 * 6};
    c.in[0] = leaf(&r, 2, (int64_t[]){6, 12}, true);
    c.in[1] = leaf(&r, 2, (int64_t[]){24, 12}, true);
    c.in[2] = leaf(&r, 1, (int64_t[]){24}, true);
    c.in[3] = leaf(&r, 2, (int64_t[]){5, 24}, true);
    check_case(&c);
}

/* Parameters on the device: the flat gradient buffer is made there, autocast's bf16 weight cache too (the
 * GPU's GEMM takes the bf16 copy; the CPU's the same values widened to f32: the same exact products). */
static hft_paramset *params_on(hft_device device, uint64_t seed) {
    test_rng r = {seed};
    hft_paramset *ps = hft_paramset_new();
    hft_tensor *w = leaf(&r, 2, (int64_t[]){9, 20}, false), *b = leaf(&r, 1, (int64_t[]){9}, false);
    hft_paramset_add(ps, "w", device.type == HFT_CPU ? w : hft_tensor_to(w, device), 0);
    hft_paramset_add(ps, "b", device.type == HFT_CPU ? b : hft_tensor_to(b, device), HFT_PARAM_NO_DECAY);
    if (device.type != HFT_CPU) {
        hft_tensor_free(w);
        hft_tensor_free(b);
    }
    CHECK(hft_paramset_finalize(ps, 0) == HFT_OK, "finalize: %s", hft_error_message());
    return ps;
}

static double *loss_grads(hft_device device, hft_paramset *ps, const hft_tensor *x_host, int64_t *n) {
    hft_ctx *ctx = new_ctx(device);
    hft_set_autocast(ctx, HFT_BF16);
    hft_tensor *x = device.type == HFT_CPU ? (hft_tensor *)x_host : hft_tensor_to(x_host, device);
    hft_tensor *w = hft_paramset_get(ps, 0)->value, *b = hft_paramset_get(ps, 1)->value;
    hft_tensor *y = hft_sum(ctx, hft_tanh(ctx, hft_linear(ctx, x, w, b)), 0, NULL, false);
    CHECK(y && hft_backward(ctx, y, NULL) == HFT_OK, "autocast step: %s", hft_ctx_error(ctx));
    hft_paramset_materialize_grads(ps);
    hft_tensor *g = hft_paramset_grads(ps);
    CHECK(g && g->device.type == device.type, "the flat gradient is not on the parameters' device");
    *n = hft_tensor_numel(g);
    double *out = malloc(sizeof(double) * (size_t)*n);
    hft_tensor_to_f64(g, out);
    if (x != x_host) hft_tensor_free(x);
    hft_ctx_free(ctx);
    return out;
}

TEST(test_paramset_and_autocast_on_device) {
    test_rng r = {18};
    hft_tensor *x = leaf(&r, 2, (int64_t[]){7, 20}, false);
    hft_paramset *pc = params_on((hft_device){HFT_CPU, 0}, 19), *pd = params_on(gpu, 19);
    int64_t nc = 0, nd = 0;
    double *gc = loss_grads((hft_device){HFT_CPU, 0}, pc, x, &nc), *gd = loss_grads(gpu, pd, x, &nd);
    CHECK(nc == nd && nc == 9 * 20 + 9, "gradient sizes %lld and %lld", (long long)nc, (long long)nd);
    CHECK(test_close("autocast param grads", gd, gc, (long)nc, tol_for(20 * 7), tol_for(20 * 7)),
          "parameter gradients under bf16 autocast differ from the CPU's");
    free(gc);
    free(gd);
    hft_tensor_free(x);
    hft_paramset_free(pc);
    hft_paramset_free(pd);
}

/* ---------------------------------------------------------------- memory and devices */

/* The second and third identical steps in a CUDA context allocate nothing: the arena's device chunks and
 * the pool's device blocks are reused after reset, and the pool's host records with them. */
TEST(test_reset_reuses_device_memory) {
    graph_case c = block_case(13);
    hft_ctx *dc = new_ctx(gpu);
    hft_tensor *din[MAX_IN];
    for (int i = 0; i < c.n_in; i++) {
        din[i] = hft_tensor_to(c.in[i], gpu);
        hft_tensor_set_requires_grad(din[i], c.in[i]->requires_grad);
    }
    hft_memory_stats s[3];
    for (int step = 0; step < 3; step++) {
        hft_tensor *y = c.fn(dc, din, NULL);
        CHECK(y && hft_backward(dc, y, NULL) == HFT_OK, "step %d: %s", step, hft_ctx_error(dc));
        hft_ctx_reset(dc);
        hft_ctx_memory(dc, &s[step]);
    }
    CHECK(s[2].heap_allocations == s[1].heap_allocations,
          "a steady step allocated %zu times (after step 2: %zu, after step 3: %zu)",
          s[2].heap_allocations - s[1].heap_allocations, s[1].heap_allocations, s[2].heap_allocations);
    CHECK(s[2].pool_used == 0 && s[2].pool_reserved > 0, "pool after reset: %zu used of %zu", s[2].pool_used,
          s[2].pool_reserved);
    for (int i = 0; i < c.n_in; i++) {
        hft_tensor_free(c.in[i]);
        hft_tensor_free(din[i]);
    }
    hft_ctx_free(dc);
}

TEST(test_device_mismatch_refused) {
    test_rng r = {14};
    int64_t shape[2] = {3, 4};
    hft_tensor *h = leaf(&r, 2, shape, true);
    hft_tensor *d = hft_tensor_to(h, gpu);
    hft_ctx *dc = new_ctx(gpu), *cc = new_ctx((hft_device){HFT_CPU, 0});
    CHECK(hft_add(dc, d, h) == NULL && hft_ctx_status(dc) == HFT_EDEVICE, "a CPU input in a CUDA context: %d",
          (int)hft_ctx_status(dc));
    const char *e = hft_ctx_error(dc);
    CHECK(strstr(e, "add") && strstr(e, "cpu") && strstr(e, "cuda:0"), "message: %s", e);
    CHECK(hft_gelu(cc, d, HFT_GELU_TANH) == NULL && hft_ctx_status(cc) == HFT_EDEVICE,
          "a CUDA input in a CPU context: %d", (int)hft_ctx_status(cc));
    e = hft_ctx_error(cc);
    CHECK(strstr(e, "gelu") && strstr(e, "cpu") && strstr(e, "cuda:0"), "message: %s", e);
    /* f64 has no device kernels: refused by name, not run */
    hft_ctx_reset(dc);
    hft_tensor *h64 = hft_tensor_new(HFT_F64, 2, shape), *d64 = hft_tensor_to(h64, gpu);
    CHECK(hft_softmax(dc, d64, -1) == NULL && hft_ctx_status(dc) == HFT_EUNSUPPORTED, "f64 on CUDA: %d",
          (int)hft_ctx_status(dc));
    e = hft_ctx_error(dc);
    CHECK(strstr(e, "softmax") && strstr(e, "on CUDA"), "message: %s", e);
    hft_tensor *list[] = {h, d, h64, d64};
    for (int i = 0; i < 4; i++) hft_tensor_free(list[i]);
    hft_ctx_free(dc);
    hft_ctx_free(cc);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_linear_with_bias", test_linear_with_bias},
        {"test_matmul_broadcast_and_transposed", test_matmul_broadcast_and_transposed},
        {"test_add_mul_broadcast", test_add_mul_broadcast},
        {"test_gelu", test_gelu},
        {"test_layer_norm_and_rms_norm", test_layer_norm_and_rms_norm},
        {"test_softmax_and_log_softmax", test_softmax_and_log_softmax},
        {"test_attention_causal_gqa", test_attention_causal_gqa},
        {"test_attention_key_mask", test_attention_key_mask},
        {"test_embedding_with_padding", test_embedding_with_padding},
        {"test_cross_entropy_sum_and_count", test_cross_entropy_sum_and_count},
        {"test_linear_cross_entropy_sum_and_count", test_linear_cross_entropy_sum_and_count},
        {"test_dropout_same_mask", test_dropout_same_mask},
        {"test_gpt2_block", test_gpt2_block},
        {"test_rope_strided", test_rope_strided},
        {"test_checkpointed_two_layer_mlp", test_checkpointed_two_layer_mlp},
        {"test_paramset_and_autocast_on_device", test_paramset_and_autocast_on_device},
        {"test_reset_reuses_device_memory", test_reset_reuses_device_memory},
        {"test_device_mismatch_refused", test_device_mismatch_refused},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
