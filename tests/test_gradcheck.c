/* Finite-difference gradient checks in f64 for every op, with broadcasting, views and masks. */
#include "tests/gradcheck.h"
#include "tests/test_util.h"

static test_rng rng = {42};

static hft_tensor *input(int ndim, const int64_t *shape, double lo, double hi) {
    hft_tensor *t = test_random(&rng, HFT_F64, ndim, shape, lo, hi);
    hft_tensor_set_requires_grad(t, true);
    return t;
}

static void free_all(int n, hft_tensor **t) {
    for (int i = 0; i < n; i++) hft_tensor_free(t[i]);
}

/* ---------------------------------------------------------------- element-wise */

typedef hft_tensor *(*binop)(hft_ctx *, hft_tensor *, hft_tensor *);
static hft_tensor *f_binary(hft_ctx *ctx, hft_tensor **in, void *user) {
    return ((binop *)user)[0](ctx, in[0], in[1]);
}

TEST(binary_ops_with_broadcasting) {
    binop ops[] = {hft_add, hft_sub, hft_mul, hft_div};
    const char *names[] = {"add", "sub", "mul", "div"};
    for (int k = 0; k < 4; k++) {
        hft_tensor *in[2] = {input(3, (int64_t[]){2, 3, 4}, -1, 1), input(2, (int64_t[]){3, 1}, 0.5, 1.5)};
        gradcheck(names[k], f_binary, 2, in, &ops[k]);
        free_all(2, in);
        hft_tensor *same[2] = {input(2, (int64_t[]){3, 5}, -1, 1), input(2, (int64_t[]){3, 5}, 0.5, 1.5)};
        gradcheck(names[k], f_binary, 2, same, &ops[k]);
        free_all(2, same);
    }
}

typedef struct unary_case {
    const char *name;
    hft_tensor *(*fn)(hft_ctx *, hft_tensor *);
    double lo, hi;
} unary_case;

static hft_tensor *f_unary(hft_ctx *ctx, hft_tensor **in, void *user) {
    return ((unary_case *)user)->fn(ctx, in[0]);
}
static hft_tensor *gelu_tanh(hft_ctx *ctx, hft_tensor *x) {
    return hft_gelu(ctx, x, HFT_GELU_TANH);
}
static hft_tensor *gelu_erf(hft_ctx *ctx, hft_tensor *x) {
    return hft_gelu(ctx, x, HFT_GELU_ERF);
}
static hft_tensor *pow3(hft_ctx *ctx, hft_tensor *x) {
    return hft_pow(ctx, x, 3.0);
}
static hft_tensor *pow_half(hft_ctx *ctx, hft_tensor *x) {
    return hft_pow(ctx, x, 0.5);
}
static hft_tensor *square(hft_ctx *ctx, hft_tensor *x) {
    return hft_pow(ctx, x, 2.0);
}
static hft_tensor *scale(hft_ctx *ctx, hft_tensor *x) {
    return hft_scale(ctx, x, -2.5);
}

TEST(unary_ops) {
    unary_case cases[] = {
        {"exp", hft_exp, -2, 2},   {"log", hft_log, 0.2, 3},        {"sqrt", hft_sqrt, 0.2, 3},
        {"pow3", pow3, -2, 2},     {"pow_half", pow_half, 0.2, 2},  {"square", square, -2, 2},
        {"relu", hft_relu, -2, 2}, {"gelu_tanh", gelu_tanh, -3, 3}, {"gelu_erf", gelu_erf, -3, 3},
        {"silu", hft_silu, -4, 4}, {"tanh", hft_tanh, -2, 2},       {"sigmoid", hft_sigmoid, -4, 4},
        {"neg", hft_neg, -1, 1},   {"scale", scale, -1, 1},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        hft_tensor *in[1] = {input(2, (int64_t[]){3, 7}, cases[k].lo, cases[k].hi)};
        if (strcmp(cases[k].name, "relu") == 0) /* keep away from the kink at 0 */
            for (int i = 0; i < 21; i++) {
                double *v = hft_tensor_data(in[0]);
                if (fabs(v[i]) < 1e-3) v[i] = 0.5;
            }
        gradcheck(cases[k].name, f_unary, 1, in, &cases[k]);
        free_all(1, in);
    }
}

/* ---------------------------------------------------------------- reductions */

typedef struct reduce_case {
    bool mean, keepdim;
    int n;
    int dims[3];
} reduce_case;

static hft_tensor *f_reduce(hft_ctx *ctx, hft_tensor **in, void *user) {
    reduce_case *c = user;
    return c->mean ? hft_mean(ctx, in[0], c->n, c->dims, c->keepdim)
                   : hft_sum(ctx, in[0], c->n, c->dims, c->keepdim);
}

TEST(sum_and_mean_over_dims) {
    reduce_case cases[] = {{false, false, 0, {0}}, {true, false, 0, {0}},     {false, true, 1, {-1}},
                           {true, false, 1, {0}},  {false, false, 2, {0, 2}}, {true, true, 2, {1, 2}}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        hft_tensor *in[1] = {input(3, (int64_t[]){3, 4, 5}, -1, 1)};
        gradcheck(cases[k].mean ? "mean" : "sum", f_reduce, 1, in, &cases[k]);
        free_all(1, in);
    }
}

/* ---------------------------------------------------------------- GEMMs */

static hft_tensor *f_matmul(hft_ctx *ctx, hft_tensor **in, void *user) {
    int mode = *(int *)user;
    hft_tensor *a = in[0], *b = in[1];
    if (mode == 1) a = hft_transpose(ctx, a, -1, -2); /* a stored [.., K, M] */
    if (mode == 2) b = hft_transpose(ctx, b, -1, -2); /* b stored [.., N, K] */
    return hft_matmul(ctx, a, b);
}

TEST(matmul_batched_transposed_broadcast) {
    int modes[] = {0, 1, 2};
    for (int m = 0; m < 3; m++) {
        int64_t sa[3] = {2, 3, 4}, sb[3] = {2, 4, 5};
        if (m == 1) sa[1] = 4, sa[2] = 3;
        if (m == 2) sb[1] = 5, sb[2] = 4;
        hft_tensor *in[2] = {input(3, sa, -1, 1), input(3, sb, -1, 1)};
        gradcheck("matmul", f_matmul, 2, in, &modes[m]);
        free_all(2, in);
    }
    /* b shared across the batch; a with a partly broadcast batch */
    int plain = 0;
    hft_tensor *bc[2] = {input(3, (int64_t[]){3, 2, 4}, -1, 1), input(2, (int64_t[]){4, 3}, -1, 1)};
    gradcheck("matmul broadcast b", f_matmul, 2, bc, &plain);
    free_all(2, bc);
    hft_tensor *pb[2] = {input(4, (int64_t[]){2, 1, 3, 4}, -1, 1), input(4, (int64_t[]){1, 3, 4, 2}, -1, 1)};
    gradcheck("matmul partial broadcast", f_matmul, 2, pb, &plain);
    free_all(2, pb);
}

static hft_tensor *f_linear(hft_ctx *ctx, hft_tensor **in, void *user) {
    int conv1d = *(int *)user;
    hft_tensor *w = conv1d ? hft_transpose(ctx, in[1], 0, 1) : in[1];
    return hft_linear(ctx, in[0], w, in[2]);
}

TEST(linear_with_bias_and_conv1d_layout) {
    for (int conv1d = 0; conv1d < 2; conv1d++) {
        int64_t ws[2] = {5, 4};
        if (conv1d) ws[0] = 4, ws[1] = 5;
        hft_tensor *in[3] = {input(3, (int64_t[]){2, 3, 4}, -1, 1), input(2, ws, -1, 1),
                             input(1, (int64_t[]){5}, -1, 1)};
        gradcheck(conv1d ? "linear conv1d" : "linear", f_linear, 3, in, &conv1d);
        free_all(3, in);
    }
    int plain = 0;
    hft_tensor *nb[3] = {input(2, (int64_t[]){3, 4}, -1, 1), input(2, (int64_t[]){2, 4}, -1, 1), NULL};
    gradcheck("linear without bias", f_linear, 3, nb, &plain);
    free_all(2, nb);
}

/* LoRA's fused linear: inputs x, W, A, B, bias; mode bit 0: W seen transposed (Conv1D), bit 1: the branch
 * reads x through a scale (a stand-in for dropout: a different tensor than x), bit 2: no bias. */
static hft_tensor *f_lora_linear(hft_ctx *ctx, hft_tensor **in, void *user) {
    int mode = *(int *)user;
    hft_tensor *w = mode & 1 ? hft_transpose(ctx, in[1], 0, 1) : in[1];
    hft_tensor *xd = mode & 2 ? hft_scale(ctx, in[0], 1.7) : in[0];
    return hft_lora_linear(ctx, in[0], w, mode & 4 ? NULL : in[4], xd, in[2], in[3], 0.75);
}

TEST(lora_linear_every_input) {
    for (int mode = 0; mode < 8; mode++) {
        int64_t ws[2] = {5, 4};
        if (mode & 1) ws[0] = 4, ws[1] = 5;
        hft_tensor *in[5] = {input(3, (int64_t[]){2, 3, 4}, -1, 1), input(2, ws, -1, 1),
                             input(2, (int64_t[]){2, 4}, -1, 1), input(2, (int64_t[]){5, 2}, -1, 1),
                             mode & 4 ? NULL : input(1, (int64_t[]){5}, -1, 1)};
        char name[64];
        snprintf(name, sizeof name, "lora_linear mode %d", mode);
        gradcheck(name, f_lora_linear, 5, in, &mode);
        free_all(mode & 4 ? 4 : 5, in);
    }
}

/* ---------------------------------------------------------------- views and copies */

static hft_tensor *f_views(hft_ctx *ctx, hft_tensor **in, void *user) {
    (void)user;
    hft_tensor *x = in[0];                                      /* [2, 3, 4] */
    hft_tensor *t = hft_transpose(ctx, x, 0, 2);                /* [4, 3, 2] */
    hft_tensor *n = hft_narrow(ctx, t, 0, 1, 2);                /* [2, 3, 2] */
    hft_tensor *r = hft_reshape(ctx, n, 2, (int64_t[]){-1, 2}); /* copies */
    hft_tensor *e =
        hft_expand(ctx, hft_unsqueeze(ctx, in[1], 0), 2, (int64_t[]){6, -1}); /* [6, 2] from [2] */
    hft_tensor *parts[2];
    hft_split(ctx, x, 2, 2, NULL, parts);
    hft_tensor *c = hft_concat(ctx, 2, (hft_tensor *[]){parts[1], parts[0]}, 2);
    hft_tensor *s = hft_sum(ctx, hft_mul(ctx, c, c), 0, NULL, false);
    return hft_add(ctx, hft_mul(ctx, r, hft_contiguous(ctx, e)), s);
}

TEST(views_concat_and_copies) {
    hft_tensor *in[2] = {input(3, (int64_t[]){2, 3, 4}, -1, 1), input(1, (int64_t[]){2}, -1, 1)};
    gradcheck("views", f_views, 2, in, NULL);
    free_all(2, in);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"binary_ops_with_broadcasting", binary_ops_with_broadcasting},
        {"unary_ops", unary_ops},
        {"sum_and_mean_over_dims", sum_and_mean_over_dims},
        {"matmul_batched_transposed_broadcast", matmul_batched_transposed_broadcast},
        {"linear_with_bias_and_conv1d_layout", linear_with_bias_and_conv1d_layout},
        {"lora_linear_every_input", lora_linear_every_input},
        {"views_concat_and_copies", views_concat_and_copies},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
