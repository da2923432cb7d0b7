/* The CUDA optimizer steps (Adam/AdamW with amsgrad, SGD with momentum, Lion, Adafactor) against their CPU
 * twins over several steps. The element-wise steps: slices of odd sizes laid out back to back in the flat
 * buffers as optim/optimizer.c lays them out, each with its own lr and weight decay, the parameters placed in
 * one arena so that some slices take the kernel's vector path (parameter and flat buffers aligned alike) and
 * others its scalar path. Adafactor: one parameter per call, factored (2-D and 3-D, odd shapes) or not.
 *
 * Tolerance: none. The CUDA kernels compute the CPU's f32 expressions in the same order, with fmaf exactly
 * where the CPU's FMA paths (AVX2, AVX-512) fuse and IEEE-rounded products, quotients and square roots
 * everywhere else, so parameters and every state buffer must match bit for bit. Only a CPU without FMA
 * (the generic path, which rounds each FMAT twice) gets a tolerance, stated where it is used. */
#include "tests/cuda_test_util.h"

#include <stdint.h>

enum { MAX_SLICES = 320 };

/* Slice sizes, their flat offsets (back to back, the optimizer's order) and where each parameter sits in the
 * arena. Parameter i takes the vector path when arena offset ≡ flat offset (mod 4): slices 0, 2 and 4 do
 * (slice 4 with a 3-element head and a tail, across two block boundaries), slices 1 and 3 do not. */
static const int64_t SIZES[] = {1, 7, 33, 1000, 4099};
static const int64_t PARAM_AT[] = {0, 10, 20, 60, 1065};
static const double LRS[] = {1e-3, 3e-2, 0.1, 5e-4, 2e-3};
static const double WDS[] = {0.0, 0.1, 0.01, 0.0, 0.05};
enum { NS = 5, ARENA_N = 5200 };

typedef struct bench {
    int ns, nstate;
    int64_t flat_n, arena_n;
    hft_optim_slice cpu_sl[MAX_SLICES], dev_sl[MAX_SLICES];
    float *h_arena, *h_grad, *h_st[3]; /* the CPU's buffers */
    float *d_arena, *d_grad, *d_st[3]; /* the device's */
    test_rng rng;
} bench;

/* Whether the CPU table fuses FMAT (its AVX2 / AVX-512 paths) as the CUDA kernels do. */
static int cpu_fuses(void) {
    return hft_cpu_isa() != HFT_ISA_GENERIC;
}

static void upload_to(void *dev, const void *host, size_t bytes) {
    CHECK(cuda_k->dev->copy(dev, host, bytes, HFT_COPY_H2D) == HFT_OK, "%s", hft_error_message());
}

/* A bench of `ns` slices laid out back to back in the flat buffers, parameter i at param_at[i] in an arena
 * of arena_n random values (its gaps must come through unchanged); states zero (the optimizer's first
 * step) unless `random_state`. */
static void bench_layout(bench *b, int ns, const int64_t *sizes, const int64_t *param_at, const double *lrs,
                         const double *wds, int64_t arena_n, int nstate, int random_state,
                         unsigned long long seed) {
    memset(b, 0, sizeof *b);
    b->rng.s = seed;
    b->ns = ns;
    b->nstate = nstate;
    b->arena_n = arena_n;
    int64_t off = 0;
    for (int i = 0; i < ns; i++) {
        hft_optim_slice s = {.offset = off, .n = sizes[i], .lr = lrs[i], .weight_decay = wds[i]};
        b->cpu_sl[i] = b->dev_sl[i] = s;
        off += sizes[i];
    }
    b->flat_n = off;
    b->h_arena = malloc(sizeof(float) * (size_t)arena_n);
    fill_uniform(&b->rng, b->h_arena, arena_n, -1, 1);
    b->d_arena = dev_upload(b->h_arena, sizeof(float) * (size_t)arena_n);
    for (int i = 0; i < ns; i++) {
        b->cpu_sl[i].param = b->h_arena + param_at[i];
        b->dev_sl[i].param = b->d_arena + param_at[i];
    }
    b->h_grad = malloc(sizeof(float) * (size_t)b->flat_n);
    b->d_grad = dev_garbage(sizeof(float) * (size_t)b->flat_n);
    for (int j = 0; j < nstate; j++) {
        b->h_st[j] = calloc((size_t)b->flat_n, sizeof(float));
        /* v and v̂ are non-negative; m and the momentum buffer take either sign */
        if (random_state) fill_uniform(&b->rng, b->h_st[j], b->flat_n, j == 0 ? -0.5 : 0.0, 0.5);
        b->d_st[j] = dev_upload(b->h_st[j], sizeof(float) * (size_t)b->flat_n);
    }
}

/* The five slices of SIZES. */
static void bench_init(bench *b, int nstate, int random_state, unsigned long long seed) {
    bench_layout(b, NS, SIZES, PARAM_AT, LRS, WDS, ARENA_N, nstate, random_state, seed);
}

static void bench_free(bench *b) {
    free(b->h_arena);
    free(b->h_grad);
    dev_free(b->d_arena);
    dev_free(b->d_grad);
    for (int j = 0; j < b->nstate; j++) {
        free(b->h_st[j]);
        dev_free(b->d_st[j]);
    }
}

/* A fresh gradient, the same on both sides; a few exact zeros (sign(0) in Lion, v = 0 in Adam). */
static void bench_grad(bench *b) {
    fill_uniform(&b->rng, b->h_grad, b->flat_n, -1, 1);
    for (int64_t i = 0; i < b->flat_n; i += 97) b->h_grad[i] = 0.0f;
    upload_to(b->d_grad, b->h_grad, sizeof(float) * (size_t)b->flat_n);
}

/* Bitwise equality (NaN equal to NaN), reporting the first difference and the largest in ulps. */
static int same_bits(const char *what, const float *got, const float *want, int64_t n) {
    int64_t bad = 0, first = -1;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        int32_t a, c;
        memcpy(&a, &got[i], 4);
        memcpy(&c, &want[i], 4);
        if (a == c || (got[i] != got[i] && want[i] != want[i])) continue;
        if (first < 0) first = i;
        bad++;
        int64_t ua = a < 0 ? (int64_t)INT32_MIN - a : a, uc = c < 0 ? (int64_t)INT32_MIN - c : c;
        int64_t d = ua > uc ? ua - uc : uc - ua;
        if (d > worst) worst = d;
    }
    CHECK(bad == 0, "%s: %lld of %lld differ (first at %lld: %.9g, want %.9g; worst %lld ulp)", what,
          (long long)bad, (long long)n, (long long)first, first >= 0 ? got[first] : 0.0,
          first >= 0 ? want[first] : 0.0, (long long)worst);
    return bad == 0;
}

/* Downloads the device's arena and state and compares them with the CPU's. */
static void bench_compare(bench *b, const char *what) {
    char label[160];
    float *got = malloc(sizeof(float) * (size_t)(b->arena_n > b->flat_n ? b->arena_n : b->flat_n));
    dev_sync(what);
    dev_download(got, b->d_arena, sizeof(float) * (size_t)b->arena_n);
    snprintf(label, sizeof label, "%s: params", what);
    /* The generic CPU path rounds FMAT's product separately: m and v then differ by an ulp or so per step,
     * many ulps relative where m passes near zero (hence the atol, 1e-6 of the largest value), and the
     * parameters by a few ulp over these 3 steps; 1e-5 relative is ~170 ulp, far above that and far
     * below any wrong formula. */
    if (cpu_fuses())
        same_bits(label, got, b->h_arena, b->arena_n);
    else
        close_f32(label, got, b->h_arena, b->arena_n, 1e-5, 1e-6);
    for (int j = 0; j < b->nstate; j++) {
        dev_download(got, b->d_st[j], sizeof(float) * (size_t)b->flat_n);
        snprintf(label, sizeof label, "%s: state %d", what, j);
        if (cpu_fuses())
            same_bits(label, got, b->h_st[j], b->flat_n);
        else
            close_f32(label, got, b->h_st[j], b->flat_n, 1e-5, 1e-6);
    }
    free(got);
}

/* ---------------------------------------------------------------- Adam / AdamW */

typedef struct adam_cfg {
    const char *name;
    double beta1, beta2, eps;
    bool decoupled, amsgrad;
} adam_cfg;

static void adam_run(const hft_kernels *k, const hft_optim_slice *sl, int ns, const float *grad, float **st,
                     const adam_cfg *c, int64_t t) {
    hft_adam_args a = {.n_slices = ns,
                       .slices = sl,
                       .grad = grad,
                       .exp_avg = st[0],
                       .exp_avg_sq = st[1],
                       .max_exp_avg_sq = c->amsgrad ? st[2] : NULL,
                       .beta1 = c->beta1,
                       .beta2 = c->beta2,
                       .eps = c->eps,
                       .step = t,
                       .decoupled = c->decoupled,
                       .amsgrad = c->amsgrad};
    k->adam_step[HFT_F32](&a);
}

/* Steps 1, 2, 3 (the bias corrections change each step), from zero state as the optimizer starts, and
 * steps 7, 8 from a random state (amsgrad's max then has something to keep). */
TEST(test_adam) {
    static const adam_cfg cfgs[] = {
        {"adam", 0.9, 0.999, 1e-8, false, false},          {"adamw", 0.9, 0.999, 1e-8, true, false},
        {"adam amsgrad", 0.9, 0.999, 1e-8, false, true},   {"adamw amsgrad", 0.9, 0.95, 1e-6, true, true},
        {"adamw beta1 0.3", 0.3, 0.99, 1e-8, true, false}, /* 1 - β1 >= 0.5: lerp's other form */
    };
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const adam_cfg *c = &cfgs[ci];
        for (int random_state = 0; random_state < 2; random_state++) {
            bench b;
            bench_init(&b, c->amsgrad ? 3 : 2, random_state, 100 + ci * 2 + (unsigned)random_state);
            int64_t t0 = random_state ? 7 : 1, t1 = random_state ? 8 : 3;
            for (int64_t t = t0; t <= t1; t++) {
                bench_grad(&b);
                adam_run(cpu_k, b.cpu_sl, b.ns, b.h_grad, b.h_st, c, t);
                adam_run(cuda_k, b.dev_sl, b.ns, b.d_grad, b.d_st, c, t);
                char what[96];
                snprintf(what, sizeof what, "%s step %lld", c->name, (long long)t);
                bench_compare(&b, what);
            }
            bench_free(&b);
        }
    }
}

/* ---------------------------------------------------------------- SGD */

typedef struct sgd_cfg {
    const char *name;
    double momentum, dampening;
    bool nesterov;
} sgd_cfg;

static void sgd_run(const hft_kernels *k, const hft_optim_slice *sl, int ns, const float *grad, float **st,
                    const sgd_cfg *c, int64_t t) {
    hft_sgd_args a = {.n_slices = ns,
                      .slices = sl,
                      .grad = grad,
                      .momentum_buffer = c->momentum != 0 ? st[0] : NULL,
                      .momentum = c->momentum,
                      .dampening = c->dampening,
                      .nesterov = c->nesterov,
                      .first_step = t == 1};
    k->sgd_step[HFT_F32](&a);
}

/* The momentum buffer starts random: the first step must overwrite it with the gradient, not read it. */
TEST(test_sgd) {
    static const sgd_cfg cfgs[] = {
        {"sgd", 0, 0, false},
        {"sgd momentum", 0.9, 0, false},
        {"sgd momentum dampening", 0.9, 0.25, false},
        {"sgd nesterov", 0.8, 0, true},
    };
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const sgd_cfg *c = &cfgs[ci];
        bench b;
        bench_init(&b, c->momentum != 0 ? 1 : 0, 1, 200 + ci);
        for (int64_t t = 1; t <= 3; t++) {
            bench_grad(&b);
            sgd_run(cpu_k, b.cpu_sl, b.ns, b.h_grad, b.h_st, c, t);
            sgd_run(cuda_k, b.dev_sl, b.ns, b.d_grad, b.d_st, c, t);
            char what[96];
            snprintf(what, sizeof what, "%s step %lld", c->name, (long long)t);
            bench_compare(&b, what);
        }
        bench_free(&b);
    }
}

/* ---------------------------------------------------------------- Lion */

static void lion_run(const hft_kernels *k, const hft_optim_slice *sl, int ns, const float *grad, float **st,
                     double beta1, double beta2) {
    hft_lion_args a = {
        .n_slices = ns, .slices = sl, .grad = grad, .exp_avg = st[0], .beta1 = beta1, .beta2 = beta2};
    k->lion_step[HFT_F32](&a);
}

TEST(test_lion) {
    bench b;
    bench_init(&b, 1, 0, 300);
    for (int t = 1; t <= 3; t++) {
        bench_grad(&b);
        lion_run(cpu_k, b.cpu_sl, b.ns, b.h_grad, b.h_st, 0.9, 0.99);
        lion_run(cuda_k, b.dev_sl, b.ns, b.d_grad, b.d_st, 0.9, 0.99);
        char what[64];
        snprintf(what, sizeof what, "lion step %d", t);
        bench_compare(&b, what);
    }
    bench_free(&b);
}

/* ---------------------------------------------------------------- Adafactor */

/* One parameter per call, [batch, rows, cols] factored or a flat vector, state carried over four steps with
 * transformers' β2t = 1 - t^-0.8 (step 1: the state is the first g² + eps1). The gradient's scale changes
 * between steps (×1, ×10, ×0.1, ×1), so RMS(u) / clip_threshold lands on both sides of 1 and both branches
 * of the clip run. Exact gradient zeros give u = 0 (and an unfactored v of eps1 alone). Same tolerance as
 * above: none where the CPU fuses FMAT, since the CUDA kernel keeps the CPU's f32 expressions and the
 * association of every one of its f64 sums (see kernels/cuda/adafactor.cu). */
typedef struct afac_cfg {
    const char *name;
    int64_t batch, rows, cols;
    bool factored;
    double beta1; /* < 0: no exp_avg */
    double weight_decay, clip_threshold;
} afac_cfg;

enum { AFAC_GUARD = 5, AFAC_BUFS = 5 }; /* random elements either side of each buffer: stray writes show */

/* p, the second-moment state (row and column, or the full v), exp_avg; device scratch beside them. */
typedef struct afac_bench {
    int64_t len[AFAC_BUFS];
    float *h[AFAC_BUFS], *d[AFAC_BUFS]; /* guarded buffers; NULL where the config has none */
    float *h_grad, *d_grad, *h_scratch, *d_scratch;
    test_rng rng;
} afac_bench;

enum { AF_P, AF_ROW, AF_COL, AF_V, AF_M };
static const char *const AFAC_NAMES[AFAC_BUFS] = {"params", "exp_avg_sq_row", "exp_avg_sq_col", "exp_avg_sq",
                                                  "exp_avg"};

static void afac_init(afac_bench *b, const afac_cfg *c, unsigned long long seed) {
    memset(b, 0, sizeof *b);
    b->rng.s = seed;
    int64_t n = c->batch * c->rows * c->cols;
    b->len[AF_P] = n;
    b->len[AF_ROW] = c->factored ? c->batch * c->rows : 0;
    b->len[AF_COL] = c->factored ? c->batch * c->cols : 0;
    b->len[AF_V] = c->factored ? 0 : n;
    b->len[AF_M] = c->beta1 >= 0 ? n : 0;
    for (int j = 0; j < AFAC_BUFS; j++) {
        if (!b->len[j]) continue;
        int64_t all = b->len[j] + 2 * AFAC_GUARD;
        b->h[j] = calloc((size_t)all, sizeof(float));
        fill_uniform(&b->rng, b->h[j], AFAC_GUARD, -1, 1);
        fill_uniform(&b->rng, b->h[j] + AFAC_GUARD + b->len[j], AFAC_GUARD, -1, 1);
        if (j == AF_P) fill_uniform(&b->rng, b->h[j] + AFAC_GUARD, n, -1, 1); /* states start at zero */
        b->d[j] = dev_upload(b->h[j], sizeof(float) * (size_t)all);
    }
    b->h_grad = malloc(sizeof(float) * (size_t)n);
    b->d_grad = dev_garbage(sizeof(float) * (size_t)n);
    int64_t ns = c->factored ? c->batch * (c->rows + c->cols) : 1;
    b->h_scratch = malloc(sizeof(float) * (size_t)ns);
    b->d_scratch = dev_garbage(sizeof(float) * (size_t)ns);
}

static void afac_free(afac_bench *b) {
    for (int j = 0; j < AFAC_BUFS; j++) {
        free(b->h[j]);
        if (b->d[j]) dev_free(b->d[j]);
    }
    free(b->h_grad);
    free(b->h_scratch);
    dev_free(b->d_grad);
    dev_free(b->d_scratch);
}

static void afac_run(const hft_kernels *k, float **buf, float *grad, float *scratch, const afac_cfg *c,
                     int64_t t, double lr) {
    float *at[AFAC_BUFS];
    for (int j = 0; j < AFAC_BUFS; j++) at[j] = buf[j] ? buf[j] + AFAC_GUARD : NULL;
    hft_adafactor_args a = {.param = at[AF_P],
                            .grad = grad,
                            .batch = c->batch,
                            .rows = c->rows,
                            .cols = c->cols,
                            .factored = c->factored,
                            .exp_avg_sq_row = at[AF_ROW],
                            .exp_avg_sq_col = at[AF_COL],
                            .exp_avg_sq = at[AF_V],
                            .exp_avg = at[AF_M],
                            .scratch = c->factored ? scratch : NULL,
                            .beta1 = c->beta1 >= 0 ? c->beta1 : 0.0,
                            .beta2t = 1.0 - pow((double)t, -0.8),
                            .eps1 = 1e-30,
                            .clip_threshold = c->clip_threshold,
                            .lr = lr,
                            .decay = -c->weight_decay * lr};
    k->adafactor_step[HFT_F32](&a);
}

static void afac_compare(afac_bench *b, const char *what) {
    dev_sync(what);
    for (int j = 0; j < AFAC_BUFS; j++) {
        if (!b->len[j]) continue;
        int64_t all = b->len[j] + 2 * AFAC_GUARD;
        float *got = malloc(sizeof(float) * (size_t)all);
        dev_download(got, b->d[j], sizeof(float) * (size_t)all);
        char label[160];
        snprintf(label, sizeof label, "%s: %s", what, AFAC_NAMES[j]);
        /* The generic CPU path rounds FMAT twice: the states and exp_avg then differ by an ulp or so, the
         * parameters by about an ulp of the largest (measured: 6e-8 absolute on values up to 1, more than
         * 1e-5 relative only where a parameter is near zero, hence the atol of 1e-6 of the largest value);
         * 1e-5 relative as for Adam above, far below any wrong formula. */
        if (cpu_fuses())
            same_bits(label, got, b->h[j], all);
        else
            close_f32(label, got, b->h[j], all, 1e-5, 1e-6);
        free(got);
    }
}

TEST(test_adafactor) {
    static const afac_cfg cfgs[] = {
        /* factored: odd shapes, a single row, a single column, 3-D (batch 3) */
        {"7x33", 1, 7, 33, true, -1, 0.0, 1.0},
        {"7x33 beta1 wd", 1, 7, 33, true, 0.9, 0.1, 1.0},
        {"1x1000 beta1", 1, 1, 1000, true, 0.9, 0.0, 1.0},
        {"33x1 wd", 1, 33, 1, true, -1, 0.01, 1.0},
        {"64x64 beta1 wd", 1, 64, 64, true, 0.8, 0.05, 1.0},
        {"3x7x33 beta1 wd", 3, 7, 33, true, 0.9, 0.1, 1.0},
        {"3x64x64", 3, 64, 64, true, -1, 0.0, 1.0},
        /* Σ u² in blocks of 81 rows (4096 / 50): 200 rows make 3 partials, the last short */
        {"200x50 wd", 1, 200, 50, true, -1, 0.02, 1.0},
        /* rows of 4096 and more: one row per partial */
        {"2x3x4100 beta1", 2, 3, 4100, true, 0.9, 0.0, 1.0},
        /* above the CPU's parallel threshold (its tasks split the rows and columns) */
        {"300x300 beta1 wd", 1, 300, 300, true, 0.9, 0.01, 1.0},
        /* not factored (1-D): one element, odd sizes, several 4096-element blocks */
        {"n=1", 1, 1, 1, false, -1, 0.0, 1.0},
        {"n=7 beta1 wd", 1, 1, 7, false, 0.9, 0.1, 1.0},
        {"n=1000 wd", 1, 1, 1000, false, -1, 0.01, 1.0},
        {"n=4099 beta1", 1, 1, 4099, false, 0.9, 0.0, 1.0},
        {"n=9000 beta1 wd clip 0.5", 1, 1, 9000, false, 0.5, 0.05, 0.5},
    };
    static const double SCALE[] = {1, 10, 0.1, 1};
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const afac_cfg *c = &cfgs[ci];
        afac_bench b;
        afac_init(&b, c, 700 + ci);
        int64_t n = b.len[AF_P];
        for (int64_t t = 1; t <= 4; t++) {
            fill_uniform(&b.rng, b.h_grad, n, -SCALE[t - 1], SCALE[t - 1]);
            for (int64_t i = 3; i < n; i += 89) b.h_grad[i] = 0.0f;
            upload_to(b.d_grad, b.h_grad, sizeof(float) * (size_t)n);
            double lr = 1e-2 / sqrt((double)t); /* stands in for the optimizer's relative step */
            afac_run(cpu_k, b.h, b.h_grad, b.h_scratch, c, t, lr);
            afac_run(cuda_k, b.d, b.d_grad, b.d_scratch, c, t, lr);
            char what[96];
            snprintf(what, sizeof what, "adafactor %s step %lld", c->name, (long long)t);
            afac_compare(&b, what);
        }
        afac_free(&b);
    }
}

/* A factored step without its scratch or state, an unfactored one without v: refused at the next
 * synchronize, nothing written. */
TEST(test_adafactor_bad_arguments) {
    static const afac_cfg fc = {"7x33", 1, 7, 33, true, 0.9, 0.0, 1.0};
    static const afac_cfg vc = {"n=7", 1, 1, 7, false, 0.9, 0.0, 1.0};
    afac_bench b;
    afac_init(&b, &fc, 800);
    fill_uniform(&b.rng, b.h_grad, 7 * 33, -1, 1);
    upload_to(b.d_grad, b.h_grad, sizeof(float) * 7 * 33);
    afac_run(cuda_k, b.d, b.d_grad, NULL, &fc, 1, 1e-2);
    CHECK(cuda_k->dev->synchronize() == HFT_EINVAL, "factored step without scratch accepted");
    float *row = b.d[AF_ROW];
    b.d[AF_ROW] = NULL;
    afac_run(cuda_k, b.d, b.d_grad, b.d_scratch, &fc, 1, 1e-2);
    CHECK(cuda_k->dev->synchronize() == HFT_EINVAL, "factored step without exp_avg_sq_row accepted");
    b.d[AF_ROW] = row;
    afac_run(cuda_k, b.d, b.d_grad, b.d_scratch, &vc, 1, 1e-2); /* no v buffer: the bench is factored */
    CHECK(cuda_k->dev->synchronize() == HFT_EINVAL, "unfactored step without exp_avg_sq accepted");
    afac_compare(&b, "refused adafactor calls");
    afac_free(&b);
}

/* ---------------------------------------------------------------- one table, rewritten between calls */

/* The optimizer rewrites one host slice array every step. Six Adam steps are queued back to back with no
 * synchronisation, the array rewritten in place before each (other lr, and every other call a table of
 * slices 1..3 only: another start offset and slice count), more calls than the module's staging ring has
 * slots; each call must use the table as it was when it was made. A frozen parameter leaves a gap in the
 * flat range of the odd calls' tables, which the kernel must skip. */
TEST(test_back_to_back_tables) {
    static const adam_cfg c = {"adamw", 0.9, 0.999, 1e-8, true, false};
    bench b;
    bench_init(&b, 2, 1, 400);
    bench_grad(&b);
    hft_optim_slice cpu_sl[MAX_SLICES], dev_sl[MAX_SLICES];
    for (int64_t t = 1; t <= 6; t++) {
        int odd = t % 2;
        int ns = 0;
        for (int i = odd ? 1 : 0; i < (odd ? 4 : NS); i++) {
            if (odd && i == 2) continue; /* frozen: a gap between slices 1 and 3 */
            cpu_sl[ns] = b.cpu_sl[i];
            dev_sl[ns] = b.dev_sl[i];
            cpu_sl[ns].lr = dev_sl[ns].lr = LRS[i] * (double)t;
            cpu_sl[ns].weight_decay = dev_sl[ns].weight_decay = WDS[i] + 0.01 * (double)t;
            ns++;
        }
        adam_run(cpu_k, cpu_sl, ns, b.h_grad, b.h_st, &c, t);
        adam_run(cuda_k, dev_sl, ns, b.d_grad, b.d_st, &c, t);
        /* clobber the host table, as a caller may the moment the call returns */
        for (int i = 0; i < ns; i++) dev_sl[i].lr = dev_sl[i].weight_decay = 1e30;
    }
    bench_compare(&b, "six queued steps");
    bench_free(&b);
}

/* Three hundred slices (empty ones among them) of sizes 0..49 over 4 blocks: many slices per block, each
 * found by a deep binary search; parameters packed with a 0..3 element shift, so vector and scalar pieces
 * alternate. AdamW with amsgrad, two steps. */
TEST(test_many_slices) {
    enum { N = 300 };
    static int64_t sizes[N], at[N];
    static double lrs[N], wds[N];
    int64_t pos = 0;
    for (int i = 0; i < N; i++) {
        sizes[i] = (i * 37) % 50;
        at[i] = pos + i % 4;
        pos = at[i] + sizes[i];
        lrs[i] = 1e-3 * (1 + i % 7);
        wds[i] = i % 3 == 0 ? 0.0 : 0.01 * (i % 5);
    }
    static const adam_cfg c = {"adamw amsgrad", 0.9, 0.999, 1e-8, true, true};
    bench b;
    bench_layout(&b, N, sizes, at, lrs, wds, pos + 4, 3, 1, 600);
    for (int64_t t = 4; t <= 5; t++) {
        bench_grad(&b);
        adam_run(cpu_k, b.cpu_sl, b.ns, b.h_grad, b.h_st, &c, t);
        adam_run(cuda_k, b.dev_sl, b.ns, b.d_grad, b.d_st, &c, t);
        char what[64];
        snprintf(what, sizeof what, "300 slices step %lld", (long long)t);
        bench_compare(&b, what);
    }
    bench_free(&b);
}

/* Arguments the kernels cannot honour fail at the next synchronize instead of computing something else. */
TEST(test_bad_arguments) {
    bench b;
    bench_init(&b, 3, 0, 500);
    bench_grad(&b);
    hft_optim_slice sl[2] = {b.dev_sl[3], b.dev_sl[2]}; /* descending offsets */
    hft_adam_args a = {.n_slices = 2,
                       .slices = sl,
                       .grad = b.d_grad,
                       .exp_avg = b.d_st[0],
                       .exp_avg_sq = b.d_st[1],
                       .beta1 = 0.9,
                       .beta2 = 0.999,
                       .eps = 1e-8,
                       .step = 1};
    cuda_k->adam_step[HFT_F32](&a);
    CHECK(cuda_k->dev->synchronize() == HFT_EINVAL, "unordered slices accepted");
    a.slices = b.dev_sl;
    a.n_slices = NS;
    a.amsgrad = true; /* without max_exp_avg_sq */
    cuda_k->adam_step[HFT_F32](&a);
    CHECK(cuda_k->dev->synchronize() == HFT_EINVAL, "amsgrad without its buffer accepted");
    /* nothing was written */
    float *got = malloc(sizeof(float) * ARENA_N);
    dev_sync("refused calls");
    dev_download(got, b.d_arena, sizeof(float) * ARENA_N);
    same_bits("params after refused calls", got, b.h_arena, ARENA_N);
    free(got);
    bench_free(&b);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_adam", test_adam},
        {"test_sgd", test_sgd},
        {"test_lion", test_lion},
        {"test_adafactor", test_adafactor},
        {"test_adafactor_bad_arguments", test_adafactor_bad_arguments},
        {"test_back_to_back_tables", test_back_to_back_tables},
        {"test_many_slices", test_many_slices},
        {"test_bad_arguments", test_bad_arguments},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
