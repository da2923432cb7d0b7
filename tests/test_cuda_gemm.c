/* The CUDA GEMM against the CPU's f32 GEMM (cpu_k->gemm[HFT_F32]): every transpose, a transposed C, padded
 * leading dimensions, alpha and beta, batches with each operand broadcast and a batch summed into one C,
 * operands held in bf16/f16 (a_type / b_type), the bf16 and f16 GEMMs, the bias and GELU epilogues. Each
 * case runs on random inputs in [-1, 1] rounded to the dtypes they are held in, so the CPU multiplies the
 * same values; every element of C (and pre_act) outside the problem must keep its bytes.
 *
 * Tolerances. Each implementation computes an element as a k-term f32 dot product, then alpha·, + beta·c,
 * + bias: n_ops = k + 3 roundings, so each is within γ ≈ n_ops·u32 · S of the exact value, where
 * S = |alpha| Σ_p |a_ip||b_pj| + |beta c| + |bias| (Higham, Accuracy and Stability §3.1); the two differ by
 * at most 2·n_ops·u32·S. A batch summed into C adds batch such sums in turn: n_ops = batch·(k + 3). A result
 * stored in bf16/f16 is rounded once on each side: + u_dt·(|got| + |want|). GELU (gelu' <= 1.13) carries
 * the pre-activation's difference times 1.13, plus each side's error in evaluating it (see gelu_err). */
#include "tests/cuda_test_util.h"

#include <math.h>

static const double u32 = 1.0 / 16777216; /* f32's unit roundoff, 2^-24 */

typedef struct gcase {
    hft_dtype dt;             /* the table slot: f32, bf16 or f16 */
    hft_dtype a_type, b_type; /* the f32 slot: how A and B are held (f32, bf16, f16) */
    bool ta, tb, tc;
    int64_t m, n, k, batch;
    int64_t pad; /* added to every leading dimension */
    bool bcast_a, bcast_b, sum_c;
    double alpha, beta;
    bool bias, gelu, pre_act;
} gcase;

/* A GEMM operand, row-major as hft stores it: `count` matrices of rows × cols, leading dimension ld. */
typedef struct operand {
    int64_t rows, cols, ld, stride, count, total;
} operand;

static operand operand_of(int64_t rows, int64_t cols, int64_t pad, int64_t batch, bool shared, int64_t gap) {
    operand o = {rows, cols, (cols > 0 ? cols : 1) + pad, 0, shared ? 1 : batch, 0};
    int64_t mat = rows * o.ld;
    o.stride = shared ? 0 : mat + gap; /* a gap between batch entries, which must stay untouched */
    o.total = (o.count - 1) * o.stride + mat;
    if (o.total < 1) o.total = 1;
    return o;
}

/* Host arrays in a dtype's bytes (f32 as is, bf16/f16 converted), malloc'd. */
static void *raw_of(hft_dtype dt, const float *x, int64_t n) {
    if (dt == HFT_F32) {
        void *r = malloc((size_t)n * 4);
        memcpy(r, x, (size_t)n * 4);
        return r;
    }
    uint16_t *r = malloc((size_t)n * 2);
    host_to_half(dt, r, x, n);
    return r;
}

/* Bytes of element i of a dtype's array (for the untouched-element checks). */
static int same_bytes(hft_dtype dt, const void *a, const void *b, int64_t i) {
    size_t es = hft_dtype_size(dt);
    return memcmp((const char *)a + (size_t)i * es, (const char *)b + (size_t)i * es, es) == 0;
}

/* A tanh's absolute error bound in the GELU epilogue. Ours (emulator: libm's tanhf) and the CPU's hft_tanhf
 * are a few ulp: 8 u32 covers both. cuBLASLt does not document how its GELU evaluates tanh; on the GPU we
 * allow the hardware approximation tanh.approx.f32 (PTX ISA: max relative error 2^-10.987). */
static double tanh_err(void) {
    return strcmp(cuda_k->name, "cuda-emulated") == 0 ? 8 * u32 : pow(2.0, -10.987);
}

/* One side's error in evaluating 0.5 x (1 + tanh(c (x + 0.044715 x³))) in f32: the tanh error times 0.5|x|,
 * the argument's few roundings (≤ 4 u32 relative, times tanh' ≤ 1, and x·tanh' stays ≤ 1 over the line),
 * and the three roundings of the outer products. */
static double gelu_err(double x, double g) {
    return 0.5 * fabs(x) * tanh_err() + 2 * u32 + 4 * u32 * fabs(g);
}

static float rand_value(test_rng *r) {
    return (float)test_uniform(r, -1, 1);
}

/* Runs one case on CUDA and on the CPU and compares; returns whether it passed. */
static int run_case(const gcase *cs, unsigned long long seed) {
    char what[256];
    snprintf(what, sizeof what,
             "%s a %s b %s ta %d tb %d tc %d m %lld n %lld k %lld batch %lld pad %lld bcast %d%d sum %d "
             "alpha %g beta %g bias %d gelu %d pre %d",
             hft_dtype_name(cs->dt), hft_dtype_name(cs->a_type), hft_dtype_name(cs->b_type), cs->ta, cs->tb,
             cs->tc, (long long)cs->m, (long long)cs->n, (long long)cs->k, (long long)cs->batch,
             (long long)cs->pad, cs->bcast_a, cs->bcast_b, cs->sum_c, cs->alpha, cs->beta, cs->bias, cs->gelu,
             cs->pre_act);
    int failures_before = test_failures;
    test_rng rng = {seed};
    hft_dtype dt = cs->dt;
    hft_dtype st_a = dt == HFT_F32 ? cs->a_type : dt, st_b = dt == HFT_F32 ? cs->b_type : dt;
    int64_t m = cs->m, n = cs->n, k = cs->k, batch = cs->batch;
    operand A = operand_of(cs->ta ? k : m, cs->ta ? m : k, cs->pad, batch, cs->bcast_a, 3);
    operand B = operand_of(cs->tb ? n : k, cs->tb ? k : n, cs->pad, batch, cs->bcast_b, 2);
    operand C = operand_of(cs->tc ? n : m, cs->tc ? m : n, cs->pad, batch, cs->sum_c, 5);

    float *a = malloc(sizeof(float) * (size_t)A.total), *b = malloc(sizeof(float) * (size_t)B.total);
    float *c0 = malloc(sizeof(float) * (size_t)C.total), *bias = malloc(sizeof(float) * (size_t)(n + 1));
    for (int64_t i = 0; i < A.total; i++) a[i] = rand_value(&rng);
    for (int64_t i = 0; i < B.total; i++) b[i] = rand_value(&rng);
    for (int64_t i = 0; i < C.total; i++) c0[i] = rand_value(&rng);
    for (int64_t i = 0; i <= n; i++) bias[i] = 2 * rand_value(&rng); /* GELU sees values well past ±1 */
    host_round(st_a, a, A.total);
    host_round(st_b, b, B.total);
    host_round(dt, c0, C.total);
    host_round(dt, bias, n + 1);
    /* beta 0: C is not read, so the device's C is NaN (and the CPU's zero, whatever its BLAS does with NaN)
     */
    float *c_dev0 = malloc(sizeof(float) * (size_t)C.total);
    for (int64_t i = 0; i < C.total; i++) c_dev0[i] = cs->beta == 0 ? NAN : c0[i];
    if (cs->beta == 0)
        for (int64_t i = 0; i < C.total; i++) c0[i] = 0;

    /* ---- CUDA */
    void *raw_a = raw_of(st_a, a, A.total), *raw_b = raw_of(st_b, b, B.total);
    void *raw_c0 = raw_of(dt, c_dev0, C.total);
    size_t es = hft_dtype_size(dt);
    void *d_a = dev_upload(raw_a, (size_t)A.total * hft_dtype_size(st_a));
    void *d_b = dev_upload(raw_b, (size_t)B.total * hft_dtype_size(st_b));
    void *d_c = dev_upload(raw_c0, (size_t)C.total * es);
    void *d_bias = cs->bias ? dev_upload_as(dt, bias, n + 1) : NULL;
    void *d_pre = cs->pre_act ? dev_garbage((size_t)C.total * es) : NULL;
    hft_gemm_args g = {.trans_a = cs->ta,
                       .trans_b = cs->tb,
                       .trans_c = cs->tc,
                       .m = m,
                       .n = n,
                       .k = k,
                       .alpha = cs->alpha,
                       .beta = cs->beta,
                       .a = d_a,
                       .lda = A.ld,
                       .b = d_b,
                       .ldb = B.ld,
                       .c = d_c,
                       .ldc = C.ld,
                       .batch = batch,
                       .stride_a = A.stride,
                       .stride_b = B.stride,
                       .stride_c = C.stride,
                       .a_type = dt == HFT_F32 ? cs->a_type : HFT_F32,
                       .b_type = dt == HFT_F32 ? cs->b_type : HFT_F32,
                       .bias = d_bias,
                       .epilogue = cs->gelu ? HFT_EPILOGUE_GELU_TANH : HFT_EPILOGUE_NONE,
                       .pre_act = d_pre};
    cuda_k->gemm[dt](&g);
    dev_sync(what);
    void *raw_c = malloc((size_t)C.total * es), *raw_pre = malloc((size_t)C.total * es);
    dev_download(raw_c, d_c, (size_t)C.total * es);
    if (d_pre) dev_download(raw_pre, d_pre, (size_t)C.total * es);
    float *got_c = malloc(sizeof(float) * (size_t)C.total),
          *got_pre = malloc(sizeof(float) * (size_t)C.total);
    if (dt == HFT_F32) {
        memcpy(got_c, raw_c, (size_t)C.total * 4);
        memcpy(got_pre, raw_pre, (size_t)C.total * 4);
    } else {
        host_from_half(dt, got_c, raw_c, C.total);
        host_from_half(dt, got_pre, raw_pre, C.total);
    }

    /* ---- CPU: the f32 GEMM on the same values; operands held in bf16/f16 go through its own a_type/b_type
     * path, batched as a whole, which must equal one call per batch entry (a summed C: beta, then 1) */
    float *want_c = malloc(sizeof(float) * (size_t)C.total),
          *want_pre = malloc(sizeof(float) * (size_t)C.total);
    memcpy(want_c, c0, sizeof(float) * (size_t)C.total);
    memset(want_pre, 0, sizeof(float) * (size_t)C.total);
    hft_gemm_args h = g;
    /* the CPU always keeps the pre-activation: the GELU tolerance is built from it */
    h.a = a, h.b = b, h.c = want_c, h.bias = cs->bias ? bias : NULL, h.pre_act = cs->gelu ? want_pre : NULL;
    h.a_type = h.b_type = HFT_F32;
    bool low = dt == HFT_F32 && (cs->a_type != HFT_F32 || cs->b_type != HFT_F32);
    if (low) h.a = raw_a, h.b = raw_b, h.a_type = cs->a_type, h.b_type = cs->b_type;
    cpu_k->gemm[HFT_F32](&h);
    if (low && batch > 1) {
        float *one_by_one = malloc(sizeof(float) * (size_t)C.total);
        memcpy(one_by_one, c0, sizeof(float) * (size_t)C.total);
        hft_gemm_args e = h;
        e.batch = 1;
        for (int64_t i = 0; i < batch; i++) {
            e.a = (const char *)raw_a + (size_t)(i * A.stride) * hft_dtype_size(st_a);
            e.b = (const char *)raw_b + (size_t)(i * B.stride) * hft_dtype_size(st_b);
            e.c = one_by_one + i * C.stride;
            e.beta = cs->sum_c && i > 0 ? 1.0 : cs->beta;
            cpu_k->gemm[HFT_F32](&e);
        }
        CHECK(memcmp(one_by_one, want_c, sizeof(float) * (size_t)C.total) == 0,
              "the CPU's batched low-precision GEMM differs from its entries one by one");
        free(one_by_one);
    }
    float *want_c_r = malloc(sizeof(float) * (size_t)C.total),
          *want_pre_r = malloc(sizeof(float) * (size_t)C.total);
    memcpy(want_c_r, want_c, sizeof(float) * (size_t)C.total);
    memcpy(want_pre_r, want_pre, sizeof(float) * (size_t)C.total);
    host_round(dt, want_c_r, C.total);
    host_round(dt, want_pre_r, C.total);

    /* ---- compare: the problem's elements within the bound, every other element of C and pre_act untouched
     */
    char *in_problem = calloc((size_t)C.total, 1);
    double u_dt = dt == HFT_F32 ? 0 : dtype_eps(dt);
    double n_ops = (double)(k + 3) * (cs->sum_c ? (double)batch : 1.0);
    int64_t bad = 0, bad_pre = 0;
    double worst = 0, worst_pre = 0;
    int64_t worst_at = -1, worst_pre_at = -1;
    for (int64_t e = 0; e < C.count; e++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                int64_t ci = e * C.stride + (cs->tc ? j * C.ld + i : i * C.ld + j);
                in_problem[ci] = 1;
                double s = fabs(cs->beta * c0[ci]) + (cs->bias ? fabs(bias[j]) : 0);
                for (int64_t z = 0; z < batch; z++) { /* the batch entries that land in this C */
                    if (!cs->sum_c && z != e) continue;
                    const float *az = a + (cs->bcast_a ? 0 : z * A.stride);
                    const float *bz = b + (cs->bcast_b ? 0 : z * B.stride);
                    for (int64_t p = 0; p < k; p++) {
                        double av = cs->ta ? az[p * A.ld + i] : az[i * A.ld + p];
                        double bv = cs->tb ? bz[j * B.ld + p] : bz[p * B.ld + j];
                        s += fabs(cs->alpha) * fabs(av * bv);
                    }
                }
                double tol_pre = 2 * n_ops * u32 * s; /* the value before GELU, in f32 */
                double x = want_pre[ci];
                double tol =
                    cs->gelu ? 1.13 * tol_pre + gelu_err(x, want_c[ci]) + gelu_err(x, got_c[ci]) : tol_pre;
                tol += u_dt * (fabs(got_c[ci]) + fabs(want_c_r[ci]));
                double err = fabs((double)got_c[ci] - want_c_r[ci]);
                if (!(err <= tol)) {
                    bad++;
                    if (!(err / tol <= worst)) worst = err / tol, worst_at = ci;
                }
                if (cs->pre_act) {
                    double tp = tol_pre + u_dt * (fabs(got_pre[ci]) + fabs(want_pre_r[ci]));
                    double ep = fabs((double)got_pre[ci] - want_pre_r[ci]);
                    if (!(ep <= tp)) {
                        bad_pre++;
                        if (!(ep / tp <= worst_pre)) worst_pre = ep / tp, worst_pre_at = ci;
                    }
                }
            }
    CHECK(bad == 0, "%s: %lld elements of C off; worst at %lld: got %.9g want %.9g (%.3g × tolerance)", what,
          (long long)bad, (long long)worst_at, worst_at >= 0 ? got_c[worst_at] : 0.0,
          worst_at >= 0 ? want_c_r[worst_at] : 0.0, worst);
    CHECK(bad_pre == 0,
          "%s: %lld elements of pre_act off; worst at %lld: got %.9g want %.9g (%.3g × tolerance)", what,
          (long long)bad_pre, (long long)worst_pre_at, worst_pre_at >= 0 ? got_pre[worst_pre_at] : 0.0,
          worst_pre_at >= 0 ? want_pre_r[worst_pre_at] : 0.0, worst_pre);
    void *garbage = malloc((size_t)C.total * es);
    memset(garbage, 0xA5, (size_t)C.total * es);
    int64_t touched = 0, touched_pre = 0;
    for (int64_t i = 0; i < C.total; i++) {
        if (in_problem[i]) continue;
        touched += !same_bytes(dt, raw_c, raw_c0, i);
        if (cs->pre_act) touched_pre += !same_bytes(dt, raw_pre, garbage, i);
    }
    CHECK(touched == 0, "%s: %lld elements of C outside the problem changed", what, (long long)touched);
    CHECK(touched_pre == 0, "%s: %lld elements of pre_act outside the problem written", what,
          (long long)touched_pre);

    dev_free(d_a);
    dev_free(d_b);
    dev_free(d_c);
    if (d_bias) dev_free(d_bias);
    if (d_pre) dev_free(d_pre);
    free(a), free(b), free(c0), free(c_dev0), free(bias), free(raw_a), free(raw_b), free(raw_c0), free(raw_c);
    free(raw_pre), free(got_c), free(got_pre), free(want_c), free(want_pre), free(want_c_r), free(want_pre_r);
    free(in_problem), free(garbage);
    return test_failures == failures_before;
}

static gcase plain(hft_dtype dt, int64_t m, int64_t n, int64_t k) {
    gcase c = {.dt = dt, .m = m, .n = n, .k = k, .batch = 1, .alpha = 1.25, .beta = 0.5};
    return c;
}

static const int64_t sizes[] = {1, 7, 33, 64, 65};
#define NSIZES ((int)(sizeof sizes / sizeof sizes[0]))

/* Every (m, n, k) of 1, 7, 33, 64, 65 in every trans_a / trans_b, and 128³; alpha 1.25, beta 0.5. */
TEST(test_shapes_and_transposes) {
    unsigned long long seed = 1;
    for (int t = 0; t < 4; t++)
        for (int im = 0; im < NSIZES; im++)
            for (int in = 0; in < NSIZES; in++)
                for (int ik = 0; ik < NSIZES; ik++) {
                    gcase c = plain(HFT_F32, sizes[im], sizes[in], sizes[ik]);
                    c.ta = t & 1, c.tb = t >> 1;
                    if (!run_case(&c, seed++)) return; /* one failing case says enough */
                }
    for (int t = 0; t < 4; t++) {
        gcase c = plain(HFT_F32, 128, 128, 128);
        c.ta = t & 1, c.tb = t >> 1;
        run_case(&c, seed++);
    }
}

/* A transposed C and padded leading dimensions, in every trans_a / trans_b. */
TEST(test_trans_c_and_padding) {
    static const int64_t shapes[][3] = {{33, 65, 7}, {64, 1, 33}, {7, 33, 65}, {1, 7, 64}};
    unsigned long long seed = 100;
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 8; t++) {
            gcase c = plain(HFT_F32, shapes[s][0], shapes[s][1], shapes[s][2]);
            c.ta = t & 1, c.tb = (t >> 1) & 1, c.tc = t >> 2;
            c.pad = 3;
            run_case(&c, seed++);
            c.pad = 0;
            c.tc = !c.tc;
            run_case(&c, seed++);
        }
}

/* alpha ≠ 1 and beta 0 (C not read: it holds NaN), 1 and 0.5 over a nonzero C. */
TEST(test_alpha_beta) {
    static const double betas[] = {0, 1, 0.5}, alphas[] = {1, -0.75};
    unsigned long long seed = 200;
    for (int bi = 0; bi < 3; bi++)
        for (int ai = 0; ai < 2; ai++)
            for (int tc = 0; tc < 2; tc++) {
                gcase c = plain(HFT_F32, 33, 7, 65);
                c.alpha = alphas[ai], c.beta = betas[bi], c.tc = tc, c.ta = ai;
                run_case(&c, seed++);
                c = plain(HFT_F32, 65, 64, 33);
                c.alpha = alphas[ai], c.beta = betas[bi], c.tc = tc, c.tb = ai, c.pad = 1;
                run_case(&c, seed++);
            }
}

/* Batches: strided, A or B (or both) broadcast, summed into one C (alone and with a broadcast operand), under
 * transposes, a transposed C and padding. */
static void batched_cases(hft_dtype dt, hft_dtype a_type, hft_dtype b_type, unsigned long long seed) {
    static const int64_t shapes[][3] = {{33, 7, 65}, {7, 65, 33}};
    for (int s = 0; s < 2; s++)
        for (int mode = 0; mode < 6; mode++) {
            gcase c = plain(dt, shapes[s][0], shapes[s][1], shapes[s][2]);
            c.a_type = a_type, c.b_type = b_type;
            c.batch = 3;
            c.bcast_a = mode == 1 || mode == 3 || mode == 5;
            c.bcast_b = mode == 2 || mode == 3;
            c.sum_c = mode >= 4;
            c.ta = (mode + s) & 1, c.tb = mode & 2, c.tc = (mode == 2 || mode == 5) ^ s;
            c.pad = s;
            c.beta = mode == 4 ? 0 : 0.5;
            run_case(&c, seed++);
        }
}

TEST(test_batched) {
    batched_cases(HFT_F32, HFT_F32, HFT_F32, 300);
    gcase c = plain(HFT_F32, 64, 33, 7);
    c.batch = 70; /* more batch entries than a summed C's loop would want to be wrong about */
    c.sum_c = true;
    run_case(&c, 399);
}

/* The f32 GEMM with operands held in bf16/f16: both in one low dtype (cuBLASLt's own mixed GEMM), or one
 * low beside f32 or the other low dtype (widened to f32 first); batch 1 and batched. */
TEST(test_low_precision_operands) {
    static const hft_dtype pairs[][2] = {{HFT_BF16, HFT_BF16}, {HFT_F16, HFT_F16},  {HFT_BF16, HFT_F32},
                                         {HFT_F32, HFT_F16},   {HFT_BF16, HFT_F16}, {HFT_F16, HFT_F32}};
    unsigned long long seed = 400;
    for (int p = 0; p < 6; p++) {
        for (int t = 0; t < 4; t++) {
            gcase c = plain(HFT_F32, 33, 65, 64);
            c.a_type = pairs[p][0], c.b_type = pairs[p][1];
            c.ta = t & 1, c.tb = t >> 1, c.tc = t == 2, c.pad = t == 1;
            run_case(&c, seed++);
        }
        batched_cases(HFT_F32, pairs[p][0], pairs[p][1], seed);
        seed += 20;
    }
}

/* gemm[bf16] and gemm[f16]: A, B and C in the dtype, against the CPU's f32 GEMM on the rounded inputs with
 * its output rounded. */
TEST(test_bf16_f16_gemm) {
    static const hft_dtype dts[] = {HFT_BF16, HFT_F16};
    static const int64_t few[] = {1, 7, 33, 65};
    unsigned long long seed = 600;
    for (int d = 0; d < 2; d++) {
        for (int t = 0; t < 4; t++)
            for (int im = 0; im < 4; im++)
                for (int in = 0; in < 4; in++) {
                    gcase c = plain(dts[d], few[im], few[in], few[(im + in + t) % 4]);
                    c.ta = t & 1, c.tb = t >> 1, c.tc = (im + in) % 3 == 0, c.pad = in == 2;
                    c.beta = (im + t) % 3 == 0 ? 0 : 0.5;
                    run_case(&c, seed++);
                }
        gcase c = plain(dts[d], 128, 64, 128);
        run_case(&c, seed++);
        batched_cases(dts[d], HFT_F32, HFT_F32, seed);
        seed += 20;
    }
}

/* The epilogues: bias; GELU with and without bias, with and without pre_act; beta 0 and 0.5; f32, bf16,
 * f16, and the f32 GEMM over bf16 operands and over a bf16 × f32 pair; ldc a multiple of 8 or not (cuBLASLt
 * keeps the pre-activation only for ldc % 8 == 0; the rest runs on the reference kernel). */
TEST(test_epilogues) {
    static const hft_dtype slots[][3] = {{HFT_F32, HFT_F32, HFT_F32},
                                         {HFT_BF16, HFT_F32, HFT_F32},
                                         {HFT_F16, HFT_F32, HFT_F32},
                                         {HFT_F32, HFT_BF16, HFT_BF16},
                                         {HFT_F32, HFT_BF16, HFT_F32}};
    static const int64_t shapes[][3] = {{33, 64, 65}, {64, 33, 7}};
    unsigned long long seed = 700;
    for (int d = 0; d < 5; d++)
        for (int s = 0; s < 2; s++)
            for (int e = 0; e < 4; e++) {
                gcase c = plain(slots[d][0], shapes[s][0], shapes[s][1], shapes[s][2]);
                c.a_type = slots[d][1], c.b_type = slots[d][2];
                c.bias = e != 1;
                c.gelu = e >= 1;
                c.pre_act = e >= 2 && (e == 3 || s == 0);
                c.beta = e == 2 ? 0 : 0.5;
                c.ta = s, c.tb = e & 1;
                c.pad = s == 0 ? 0 : 1; /* ldc 64 and 34 */
                run_case(&c, seed++);
            }
}

/* k = 0: C = beta C (+ epilogue), operands unread; a summed batch with k = 0 scales C once. m or n = 0:
 * nothing happens (the untouched-element check covers all of C). */
TEST(test_empty_sums) {
    unsigned long long seed = 800;
    gcase c = plain(HFT_F32, 7, 33, 0);
    run_case(&c, seed++);
    c.bias = c.gelu = c.pre_act = true;
    run_case(&c, seed++);
    c = plain(HFT_BF16, 33, 7, 0);
    c.batch = 3, c.sum_c = true;
    run_case(&c, seed++);
    c = plain(HFT_F32, 7, 33, 0);
    c.a_type = HFT_BF16, c.batch = 2;
    run_case(&c, seed++);
    c = plain(HFT_F32, 0, 33, 7);
    run_case(&c, seed++);
    c.a_type = HFT_F16; /* an empty A held in f16 */
    run_case(&c, seed++);
    c = plain(HFT_F16, 7, 0, 7);
    c.tc = true;
    run_case(&c, seed++);
}

/* Arguments the op does not take are reported by the next synchronize, naming the reason. */
static void expect_refused(const hft_gemm_args *g, hft_dtype dt, hft_status want, const char *word) {
    cuda_k->gemm[dt](g);
    hft_status s = cuda_k->dev->synchronize();
    CHECK(s == want, "status %s, want %s (%s)", hft_status_name(s), hft_status_name(want),
          hft_error_message());
    CHECK(strstr(hft_error_message(), word) != NULL, "message without \"%s\": %s", word, hft_error_message());
    CHECK(cuda_k->dev->synchronize() == HFT_OK, "the failure was not cleared: %s", hft_error_message());
}

TEST(test_refusals) {
    float *x = dev_zeros(4096);
    hft_gemm_args g = {.m = 4,
                       .n = 4,
                       .k = 4,
                       .alpha = 1,
                       .a = x,
                       .lda = 4,
                       .b = x,
                       .ldb = 4,
                       .c = x,
                       .ldc = 4,
                       .batch = 2,
                       .stride_a = 16,
                       .stride_b = 16,
                       .stride_c = 16,
                       .bias = x};
    expect_refused(&g, HFT_F32, HFT_EUNSUPPORTED, "batch 1");
    g.batch = 1, g.trans_c = true, g.bias = NULL, g.epilogue = HFT_EPILOGUE_GELU_TANH;
    expect_refused(&g, HFT_F32, HFT_EUNSUPPORTED, "trans_c");
    g.trans_c = false, g.epilogue = HFT_EPILOGUE_NONE, g.pre_act = x;
    expect_refused(&g, HFT_F32, HFT_EINVAL, "pre_act");
    g.pre_act = NULL, g.a_type = HFT_F16;
    expect_refused(&g, HFT_BF16, HFT_EUNSUPPORTED, "bf16");
    g.a_type = HFT_I32;
    expect_refused(&g, HFT_F32, HFT_EUNSUPPORTED, "operands");
    g.a_type = HFT_F32, g.lda = 3;
    expect_refused(&g, HFT_F32, HFT_EINVAL, "leading");
    dev_free(x);
}

/* The same GEMM twice gives the same bits: a long k, where cuBLASLt may split K (deterministic schemes only).
 */
TEST(test_deterministic) {
    static const hft_dtype dts[] = {HFT_F32, HFT_BF16};
    for (int d = 0; d < 2; d++) {
        int64_t m = 32, n = 48, k = 2048;
        hft_dtype dt = dts[d];
        size_t es = hft_dtype_size(dt);
        test_rng rng = {900 + (unsigned long long)d};
        float *a = malloc(sizeof(float) * (size_t)(m * k)), *b = malloc(sizeof(float) * (size_t)(k * n));
        fill_uniform(&rng, a, m * k, -1, 1);
        fill_uniform(&rng, b, k * n, -1, 1);
        void *d_a = dev_upload_as(dt, a, m * k), *d_b = dev_upload_as(dt, b, k * n);
        void *out[2];
        unsigned char *host[2];
        for (int r = 0; r < 2; r++) {
            out[r] = dev_garbage((size_t)(m * n) * es);
            hft_gemm_args g = {.trans_b = true,
                               .m = m,
                               .n = n,
                               .k = k,
                               .alpha = 1,
                               .a = d_a,
                               .lda = k,
                               .b = d_b,
                               .ldb = k,
                               .c = out[r],
                               .ldc = n,
                               .batch = 1};
            cuda_k->gemm[dt](&g);
            host[r] = malloc((size_t)(m * n) * es);
            dev_download(host[r], out[r], (size_t)(m * n) * es);
        }
        dev_sync("deterministic");
        CHECK(memcmp(host[0], host[1], (size_t)(m * n) * es) == 0, "%s: two runs differ", hft_dtype_name(dt));
        for (int r = 0; r < 2; r++) dev_free(out[r]), free(host[r]);
        dev_free(d_a), dev_free(d_b), free(a), free(b);
    }
}

/* The CPU twin of the epilogue against the CPU's own pieces: a plain GEMM, the bias added by hand, and the
 * map HFT_MAP_GELU_TANH; the same formula in the same f32 routines, so a few ulp at most (compilers may fuse
 * differently in the two loops). */
TEST(test_cpu_epilogue_twin) {
    int64_t m = 17, n = 40, k = 23;
    test_rng rng = {1000};
    float a[17 * 23], b[23 * 40], bias[40], c[17 * 40], pre[17 * 40], ref[17 * 40], want[17 * 40];
    fill_uniform(&rng, a, m * k, -1, 1);
    fill_uniform(&rng, b, k * n, -1, 1);
    fill_uniform(&rng, bias, n, -2, 2);
    hft_gemm_args g = {.m = m,
                       .n = n,
                       .k = k,
                       .alpha = 1,
                       .a = a,
                       .lda = k,
                       .b = b,
                       .ldb = n,
                       .c = ref,
                       .ldc = n,
                       .batch = 1};
    cpu_k->gemm[HFT_F32](&g);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) ref[i * n + j] += bias[j];
    hft_map_args map = {.op = HFT_MAP_GELU_TANH,
                        .n_in = 1,
                        .out = {.data = want, .ndim = 2, .shape = {m, n}, .stride = {n, 1}},
                        .in = {{.data = ref, .ndim = 2, .shape = {m, n}, .stride = {n, 1}}}};
    cpu_k->map[HFT_F32](&map);
    g.c = c, g.bias = bias, g.epilogue = HFT_EPILOGUE_GELU_TANH, g.pre_act = pre;
    cpu_k->gemm[HFT_F32](&g);
    /* pre_act: the same GEMM plus the same bias, exact; GELU: 4 u32 for the two loops' contractions */
    close_f32("pre_act", pre, ref, m * n, 0, 0);
    close_f32("gelu", c, want, m * n, 4 * u32, 4 * u32);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_shapes_and_transposes", test_shapes_and_transposes},
        {"test_trans_c_and_padding", test_trans_c_and_padding},
        {"test_alpha_beta", test_alpha_beta},
        {"test_batched", test_batched},
        {"test_low_precision_operands", test_low_precision_operands},
        {"test_bf16_f16_gemm", test_bf16_f16_gemm},
        {"test_epilogues", test_epilogues},
        {"test_empty_sums", test_empty_sums},
        {"test_refusals", test_refusals},
        {"test_deterministic", test_deterministic},
        {"test_cpu_epilogue_twin", test_cpu_epilogue_twin},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
