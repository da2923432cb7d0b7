/* The CUDA element-wise family against its CPU twin: every map op (forward and backward) for f32, bf16 and
 * f16, on contiguous, broadcast (scalar, row, column), transposed, strided, unaligned and 8-dim views, with
 * and without accumulate; reductions over leading, middle, trailing and all dims, in one chunk and many;
 * copies between every pair of dtypes the CUDA copy takes, strided, accumulating and summing into a
 * stride-0 destination (bit for bit); fills; round_to (bit for bit, edge values included); sum and sumsq.
 *
 * bf16 / f16 ops are checked as the brief of the CUDA backend says: inputs rounded to the dtype, the CPU's
 * f32 op run on them, its result rounded to the dtype, compared with the CUDA op on dtype data. */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/cuda_test_util.h"

static const hft_dtype FLOAT_DTS[3] = {HFT_F32, HFT_BF16, HFT_F16};
static const double U32 = 1.0 / 16777216; /* f32 unit roundoff, 2^-24 */

static size_t elsize(hft_dtype dt) {
    return hft_dtype_size(dt);
}

static hft_kview make_view(void *data, int ndim, const int64_t *shape, const int64_t *stride) {
    hft_kview v;
    memset(&v, 0, sizeof v);
    v.data = data;
    v.ndim = ndim;
    for (int d = 0; d < ndim; d++) v.shape[d] = shape[d], v.stride[d] = stride[d];
    return v;
}

static void contiguous(int ndim, const int64_t *shape, int64_t *stride) {
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) stride[d] = s, s *= shape[d];
}

static int64_t numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int d = 0; d < ndim; d++) n *= shape[d];
    return n;
}

/* Elements a view reaches from its first: 1 + Σ (extent-1)·stride (strides non-negative here). */
static int64_t span(int ndim, const int64_t *shape, const int64_t *stride) {
    int64_t s = 1;
    for (int d = 0; d < ndim; d++) s += (shape[d] - 1) * stride[d];
    return s;
}

static void *host_alloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) abort();
    return p;
}

/* ---------------------------------------------------------------- map */

/* One operand of a map: its view's strides and first element in a buffer of `storage` elements. */
typedef struct operand {
    int64_t offset, storage;
    int64_t stride[HFT_MAX_DIMS];
} operand;

static operand dense(int ndim, const int64_t *shape) {
    operand o = {0};
    contiguous(ndim, shape, o.stride);
    o.storage = numel(ndim, shape);
    return o;
}

/* Value ranges per op that keep every op finite and away from its poles (log, sqrt, pow and division need
 * positive or non-zero operands; tanh/sigmoid backward take outputs in their range). */
static void op_ranges(hft_map_op op, double alpha, double lo[3], double hi[3]) {
    for (int k = 0; k < 3; k++) lo[k] = -4, hi[k] = 4;
    switch (op) {
    case HFT_MAP_DIV:
        lo[1] = 0.5, hi[1] = 3;
        break;
    case HFT_MAP_EXP:
        lo[0] = -10, hi[0] = 10;
        break;
    case HFT_MAP_LOG:
    case HFT_MAP_SQRT:
        lo[0] = 0.01, hi[0] = 10;
        break;
    case HFT_MAP_POW:
        if (alpha != 2.0 && alpha != 3.0) lo[0] = 0.1, hi[0] = 3;
        break;
    case HFT_MAP_EXP_BWD_Y:
        lo[1] = 0, hi[1] = 10;
        break;
    case HFT_MAP_LOG_BWD_X:
    case HFT_MAP_SQRT_BWD_Y:
        lo[1] = 0.5, hi[1] = 4;
        break;
    case HFT_MAP_POW_BWD_X:
        lo[1] = 0.2, hi[1] = 3;
        break;
    case HFT_MAP_TANH_BWD_Y:
        lo[1] = -1, hi[1] = 1;
        break;
    case HFT_MAP_SIGMOID_BWD_Y:
        lo[1] = 0, hi[1] = 1;
        break;
    case HFT_MAP_DIV_BWD_B:
        lo[2] = 0.5, hi[2] = 3;
        break;
    default:
        break;
    }
}

static int op_inputs(hft_map_op op) {
    if (op == HFT_MAP_DIV_BWD_B) return 3;
    if (op <= HFT_MAP_DIV || op >= HFT_MAP_EXP_BWD_Y) return 2;
    return 1;
}

/* Ops whose result cancels terms computed with rounding error: gelu_tanh's 1 + tanh(u) for u well below 0,
 * the backward formulas' sums of terms of opposite signs (gelu, silu), tanh's 1 - y². */
static bool cancels(hft_map_op op) {
    return op == HFT_MAP_GELU_TANH || op == HFT_MAP_GELU_TANH_BWD_X || op == HFT_MAP_GELU_ERF_BWD_X ||
           op == HFT_MAP_SILU_BWD_X || op == HFT_MAP_TANH_BWD_Y;
}

/* Compares a map's result with the CPU's. f32: both sides evaluate the same formulas with the same
 * polynomial exp / tanh / erfc (eltwise_math.cuh ports cpu_math.h), so they differ only where nvcc fuses a
 * multiply-add the CPU rounds twice (under half an ulp each) and in logf / powf (glibc vs CUDA's, within
 * 1 and 4 ulp); a result passes through at most a few such steps: 16 unit roundoffs relative. Where an op
 * cancels, or out accumulates (out + r cancels), those errors are absolute in the scale of the terms,
 * bounded by the largest output: 16 unit roundoffs of max|want| more. bf16 / f16: both results are rounded
 * to the dtype from f32 values that agree as above, so they are equal or one rounding step apart: 1 ulp
 * = 2 unit roundoffs of the dtype relative, or for f16 one subnormal step (2^-24) below 2^-14. */
static int close_map(const char *what, hft_map_op op, bool acc, hft_dtype dt, const float *got,
                     const float *want, int64_t n) {
    double rtol = (dt == HFT_F32 ? 0 : 2 * dtype_eps(dt)) + 16 * U32, floor_abs = dt == HFT_F16 ? 0x1p-24 : 0;
    double big = 0;
    for (int64_t i = 0; i < n; i++) big = fmax(big, fabs(want[i]));
    double atol = (acc || cancels(op) ? 16 * U32 * big : 0) + floor_abs;
    int64_t bad = 0, worst = -1;
    double worst_excess = 0;
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), tol = atol + rtol * fabs(want[i]);
        if (!(err <= tol) && !(got[i] == want[i])) { /* equal infinities pass */
            bad++;
            double excess = err != err ? INFINITY : err / tol;
            if (worst < 0 || excess > worst_excess) worst = i, worst_excess = excess;
        }
    }
    if (bad)
        CHECK(0, "%s: %lld of %lld values off; worst at %lld: %.9g, the CPU's %.9g (tolerance %.3g)", what,
              (long long)bad, (long long)n, (long long)worst, got[worst], want[worst],
              atol + rtol * fabs(want[worst]));
    return bad == 0;
}

static unsigned long long seed_counter = 1;

/* Runs one map on the CPU (f32, on inputs rounded to dt) and on CUDA (dt data) and compares out's whole
 * buffer (elements outside the view must keep their values). */
static void check_map(hft_dtype dt, hft_map_op op, int n_in, double alpha, bool acc, int ndim,
                      const int64_t *shape, const operand *out, const operand *in, const char *layout) {
    char what[160];
    snprintf(what, sizeof what, "map op %d %s %s alpha %g%s", (int)op, hft_dtype_name(dt), layout, alpha,
             acc ? " accumulate" : "");
    test_rng r = {0x9e3779b97f4a7c15ull * ++seed_counter};
    double lo[3], hi[3];
    op_ranges(op, alpha, lo, hi);
    size_t es = elsize(dt);
    float *hin[3] = {NULL, NULL, NULL};
    void *din[3] = {NULL, NULL, NULL};
    hft_map_args ca = {.op = op, .n_in = n_in, .alpha = alpha, .accumulate = acc};
    hft_map_args ga = ca;
    for (int k = 0; k < n_in; k++) {
        hin[k] = host_alloc(sizeof(float) * (size_t)in[k].storage);
        fill_uniform(&r, hin[k], in[k].storage, lo[k], hi[k]);
        host_round(dt, hin[k], in[k].storage);
        din[k] = dev_upload_as(dt, hin[k], in[k].storage);
        ca.in[k] = make_view(hin[k] + in[k].offset, ndim, shape, in[k].stride);
        ga.in[k] = make_view((char *)din[k] + (size_t)in[k].offset * es, ndim, shape, in[k].stride);
    }
    int64_t ns = out->storage;
    float *want = host_alloc(sizeof(float) * (size_t)ns), *got = host_alloc(sizeof(float) * (size_t)ns);
    fill_uniform(&r, want, ns, -2, 2);
    host_round(dt, want, ns);
    /* an out that covers its buffer starts as garbage on the device, so an element left unwritten shows */
    int64_t dense_stride[HFT_MAX_DIMS];
    contiguous(ndim, shape, dense_stride);
    bool covers = !acc && out->offset == 0 && ns == numel(ndim, shape) &&
                  memcmp(dense_stride, out->stride, sizeof(int64_t) * (size_t)ndim) == 0;
    void *dout = covers ? dev_garbage((size_t)ns * es) : dev_upload_as(dt, want, ns);
    ca.out = make_view(want + out->offset, ndim, shape, out->stride);
    ga.out = make_view((char *)dout + (size_t)out->offset * es, ndim, shape, out->stride);
    cpu_k->map[HFT_F32](&ca);
    host_round(dt, want, ns);
    cuda_k->map[dt](&ga);
    dev_sync(what);
    dev_download_as(dt, got, dout, ns);
    close_map(what, op, acc, dt, got, want, ns);
    for (int k = 0; k < n_in; k++) {
        free(hin[k]);
        dev_free(din[k]);
    }
    free(want);
    free(got);
    dev_free(dout);
}

/* Every op, forward and backward, every dtype, on 257 contiguous elements (the vectorised path and its
 * tail), plain and accumulating; pow with the exponents the CPU treats apart (2: a product). */
TEST(test_map_every_op) {
    int64_t shape[1] = {257};
    operand o = dense(1, shape), in[3] = {o, o, o};
    for (int op = 0; op < HFT_MAP_OP_COUNT; op++) {
        double alphas[3] = {1.0, 0, 0};
        int na = 1;
        if (op == HFT_MAP_SCALE) alphas[0] = -1.75;
        if (op == HFT_MAP_POW || op == HFT_MAP_POW_BWD_X)
            alphas[0] = 2.0, alphas[1] = 1.5, alphas[2] = 3.0, na = 3;
        for (int ai = 0; ai < na; ai++)
            for (int t = 0; t < 3; t++)
                for (int acc = 0; acc < 2; acc++)
                    check_map(FLOAT_DTS[t], (hft_map_op)op, op_inputs((hft_map_op)op), alphas[ai], acc, 1,
                              shape, &o, in, "contiguous");
    }
}

/* n_in may exceed what an op reads (the unused inputs are ignored), and a lone element works. */
TEST(test_map_small) {
    int64_t one[1] = {1}, seven[1] = {7};
    operand o1 = dense(1, one), o7 = dense(1, seven);
    operand i1[3] = {o1, o1, o1}, i7[3] = {o7, o7, o7};
    for (int t = 0; t < 3; t++) {
        check_map(FLOAT_DTS[t], HFT_MAP_MUL, 2, 1, false, 1, one, &o1, i1, "one element");
        check_map(FLOAT_DTS[t], HFT_MAP_EXP, 3, 1, false, 1, seven, &o7, i7, "seven, extra inputs");
        check_map(FLOAT_DTS[t], HFT_MAP_SQRT, 1, 1, false, 0, one, &o1, i1, "0-dim");
    }
}

/* The layouts autograd produces: broadcast scalars, rows and columns, transposed inputs, strided and
 * unaligned views, an 8-dim iteration that does not coalesce. A few ops of each arity suffice: the layout
 * code does not depend on the op. */
TEST(test_map_layouts) {
    static const hft_map_op ops[] = {HFT_MAP_ADD, HFT_MAP_DIV, HFT_MAP_GELU_TANH, HFT_MAP_SILU_BWD_X,
                                     HFT_MAP_DIV_BWD_B};
    static const int64_t dims[][2] = {{7, 33}, {3, 257}, {1, 1}, {4, 64}};
    for (size_t oi = 0; oi < sizeof ops / sizeof ops[0]; oi++) {
        hft_map_op op = ops[oi];
        int n_in = op_inputs(op);
        for (int t = 0; t < 3; t++) {
            hft_dtype dt = FLOAT_DTS[t];
            for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
                int64_t R = dims[di][0], C = dims[di][1], shape[2] = {R, C};
                bool acc = di % 2 == 1;
                operand o = dense(2, shape), in[3] = {o, o, o};
                /* the last input broadcast: a scalar, a row [1, C], a column [R, 1] */
                operand scalar = {.storage = 1, .stride = {0, 0}};
                operand row = {.storage = C, .stride = {0, 1}};
                operand col = {.storage = R, .stride = {1, 0}};
                const operand *bc[3] = {&scalar, &row, &col};
                const char *bc_name[3] = {"scalar", "row", "column"};
                for (int b = 0; b < 3; b++) {
                    operand v[3] = {o, o, o};
                    v[n_in - 1] = *bc[b];
                    check_map(dt, op, n_in, 1, acc, 2, shape, &o, v, bc_name[b]);
                }
                /* the first input transposed: stored [C, R] */
                operand tr = {.storage = R * C, .stride = {1, R}};
                operand v[3] = {tr, o, o};
                check_map(dt, op, n_in, 1, acc, 2, shape, &o, v, "transposed");
                /* out every other element of a [R, 2C] buffer (the others must stay), inputs offset by one
                 * element (the unaligned contiguous path when the rest is dense) */
                operand so = {.storage = R * 2 * C, .stride = {2 * C, 2}};
                check_map(dt, op, n_in, 1, acc, 2, shape, &so, in, "strided out");
                operand off = o;
                off.offset = 1, off.storage = R * C + 1;
                operand u[3] = {off, off, off};
                check_map(dt, op, n_in, 1, acc, 2, shape, &off, u, "unaligned");
            }
        }
    }
}

/* Eight dims that stay eight: out contiguous, an input stored in reversed dim order (no two dims merge)
 * and one broadcast over three of them. */
TEST(test_map_eight_dims) {
    int64_t shape[8] = {2, 2, 2, 2, 2, 2, 2, 3};
    operand o = dense(8, shape);
    operand perm = {.storage = 384, .stride = {1, 2, 4, 8, 16, 32, 64, 128}};
    operand bc = {.storage = 48, .stride = {24, 0, 12, 0, 6, 0, 3, 1}};
    for (int t = 0; t < 3; t++) {
        operand in[3] = {perm, bc, o};
        check_map(FLOAT_DTS[t], HFT_MAP_MUL, 2, 1, false, 8, shape, &o, in, "8 dims");
        check_map(FLOAT_DTS[t], HFT_MAP_DIV_BWD_B, 3, 1, true, 8, shape, &o, in, "8 dims");
    }
}

/* ---------------------------------------------------------------- reduce */

/* One reduction on the CPU and on CUDA, both checked against the exact sum (f64 over the rounded inputs)
 * with the worst-case bound of their summation order: a serial f32 sum of m terms is off by at most
 * (m-1)·u·Σ|x|. CUDA's longest serial chain is 256 (a column chunk; a lane sums 4096/32 = 128) plus 5 tree
 * levels; the CPU's is 4096 (its strided rows) plus 4 tree levels; then the f32 rounding of alpha·total and
 * of the accumulation (2u of the result), and for bf16 / f16 the rounding to the dtype (one unit roundoff
 * of the result). Positive inputs make the bound tight enough to see one element missing or counted twice
 * (1/600 of the total at the longest reduction here, against a bound of 264·u = 1.6e-5). */
static void check_reduce(hft_dtype dt, int ndim, const int64_t *shape, const int64_t *stride,
                         const int64_t *oshape, double alpha, bool acc, double lo, double hi,
                         const char *what_) {
    char what[200];
    snprintf(what, sizeof what, "reduce %s %s alpha %g%s", what_, hft_dtype_name(dt), alpha,
             acc ? " accumulate" : "");
    test_rng r = {0x51ed270b27e3b5a1ull * ++seed_counter};
    int64_t ns = span(ndim, shape, stride), nout = numel(ndim, oshape), ostride[HFT_MAX_DIMS];
    contiguous(ndim, oshape, ostride);
    float *x = host_alloc(sizeof(float) * (size_t)ns), *out0 = host_alloc(sizeof(float) * (size_t)nout);
    float *cpu = host_alloc(sizeof(float) * (size_t)nout), *got = host_alloc(sizeof(float) * (size_t)nout);
    double *exact = calloc((size_t)nout, sizeof(double)), *mag = calloc((size_t)nout, sizeof(double));
    fill_uniform(&r, x, ns, lo, hi);
    host_round(dt, x, ns);
    fill_uniform(&r, out0, nout, -1, 1);
    host_round(dt, out0, nout);
    int64_t n = numel(ndim, shape), idx[HFT_MAX_DIMS] = {0};
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0, o = 0;
        for (int d = 0; d < ndim; d++)
            off += idx[d] * stride[d], o += (oshape[d] == 1 ? 0 : idx[d]) * ostride[d];
        exact[o] += x[off];
        mag[o] += fabs(x[off]);
        for (int d = ndim - 1; d >= 0; d--) {
            if (++idx[d] < shape[d]) break;
            idx[d] = 0;
        }
    }
    memcpy(cpu, out0, sizeof(float) * (size_t)nout);
    hft_reduce_args a = {.alpha = alpha, .accumulate = acc};
    a.in = make_view(x, ndim, shape, stride);
    a.out = make_view(cpu, ndim, oshape, ostride);
    cpu_k->reduce[HFT_F32](&a);
    host_round(dt, cpu, nout);

    void *dx = dev_upload_as(dt, x, ns);
    void *dout = acc ? dev_upload_as(dt, out0, nout) : dev_garbage((size_t)nout * elsize(dt));
    a.in.data = dx;
    a.out.data = dout;
    cuda_k->reduce[dt](&a);
    dev_sync(what);
    dev_download_as(dt, got, dout, nout);

    int bad_gpu = 0, bad_cpu = 0;
    for (int64_t o = 0; o < nout; o++) {
        double want = alpha * exact[o] + (acc ? out0[o] : 0);
        double base = fabs(alpha) * mag[o] * U32, fin = 2 * U32 * (fabs(want) + (acc ? fabs(out0[o]) : 0));
        double low = dt == HFT_F32 ? 0 : dtype_eps(dt) * 1.01;
        double tol_gpu = (256 + 5) * base + fin, tol_cpu = (4096 + 4) * base + fin;
        tol_gpu += low * (fabs(want) + tol_gpu);
        tol_cpu += low * (fabs(want) + tol_cpu);
        if (!(fabs(got[o] - want) <= tol_gpu) && bad_gpu++ < 3)
            CHECK(0, "%s: out[%lld] = %.9g, exact %.9g (tolerance %.3g)", what, (long long)o, got[o], want,
                  tol_gpu);
        if (!(fabs(cpu[o] - want) <= tol_cpu) && bad_cpu++ < 3)
            CHECK(0, "%s: the CPU's out[%lld] = %.9g, exact %.9g", what, (long long)o, cpu[o], want);
    }
    /* the same call again gives the same bits */
    if (!acc) {
        float *again = host_alloc(sizeof(float) * (size_t)nout);
        cuda_k->reduce[dt](&a);
        dev_download_as(dt, again, dout, nout);
        CHECK(memcmp(again, got, sizeof(float) * (size_t)nout) == 0, "%s: a second run differs", what);
        free(again);
    }
    free(x), free(out0), free(cpu), free(got), free(exact), free(mag);
    dev_free(dx);
    dev_free(dout);
}

static void reduce_3d(hft_dtype dt, int64_t A, int64_t B, int64_t C, bool transposed) {
    int64_t shape[3] = {A, B, C}, stride[3];
    if (transposed) /* stored [C, B, A] */
        stride[0] = 1, stride[1] = A, stride[2] = A * B;
    else
        contiguous(3, shape, stride);
    static const int64_t masks[][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 1}, {1, 0, 1}, {0, 1, 1}};
    static const char *names[] = {"leading", "middle", "trailing", "all", "leading+trailing", "trailing two"};
    for (int m = 0; m < 6; m++) {
        int64_t oshape[3];
        for (int d = 0; d < 3; d++) oshape[d] = masks[m][d] ? 1 : shape[d];
        char what[120];
        snprintf(what, sizeof what, "[%lld,%lld,%lld]%s over %s", (long long)A, (long long)B, (long long)C,
                 transposed ? " transposed" : "", names[m]);
        check_reduce(dt, 3, shape, stride, oshape, 1.0, false, 0.5, 1.5, what);
        check_reduce(dt, 3, shape, stride, oshape, -0.5, true, -1, 1, what);
    }
}

TEST(test_reduce_dims) {
    for (int t = 0; t < 3; t++) {
        reduce_3d(FLOAT_DTS[t], 3, 5, 7, false);
        reduce_3d(FLOAT_DTS[t], 3, 5, 7, true);
        reduce_3d(FLOAT_DTS[t], 2, 33, 64, false);
        reduce_3d(FLOAT_DTS[t], 1, 7, 1, false);
    }
}

/* Reductions long enough for several chunks (partials in scratch, then the combining pass): a bias
 * gradient over many rows (columns), a long row (lanes), everything into one value, and the transposes. */
TEST(test_reduce_long) {
    for (int t = 0; t < 3; t++) {
        hft_dtype dt = FLOAT_DTS[t];
        int64_t s1[2] = {600, 5}, st1[2] = {5, 1}, o1[2] = {1, 5};
        check_reduce(dt, 2, s1, st1, o1, 1.0, false, 0.5, 1.5, "bias gradient [600,5] over rows");
        int64_t s2[2] = {2, 9000}, st2[2] = {9000, 1}, o2[2] = {2, 1}, o2all[2] = {1, 1};
        check_reduce(dt, 2, s2, st2, o2, 1.0, false, 0.5, 1.5, "[2,9000] over rows' length");
        check_reduce(dt, 2, s2, st2, o2all, 0.25, true, -1, 1, "[2,9000] over all");
        int64_t s3[2] = {9000, 2}, st3[2] = {1, 9000}, o3[2] = {1, 2}, o3b[2] = {9000, 1};
        check_reduce(dt, 2, s3, st3, o3, 1.0, false, 0.5, 1.5, "[9000,2] transposed over the long dim");
        check_reduce(dt, 2, s3, st3, o3b, 1.0, false, 0.5, 1.5, "[9000,2] transposed over the short dim");
        int64_t s4[3] = {70, 3, 70}, st4[3] = {210, 70, 1}, o4[3] = {1, 3, 1};
        check_reduce(dt, 3, s4, st4, o4, 1.0, false, 0.5, 1.5,
                     "[70,3,70] over dims 0, 2 (lanes, two dims, two chunks)");
        int64_t s5[4] = {300, 3, 2, 4}, st5[4] = {24, 8, 4, 1}, o5[4] = {1, 3, 1, 4};
        check_reduce(dt, 4, s5, st5, o5, 1.0, false, 0.5, 1.5,
                     "[300,3,2,4] over dims 0, 2 (columns, two dims, chunks)");
    }
}

/* Nothing to reduce (out has in's shape): out (+)= alpha·in. */
TEST(test_reduce_identity) {
    int64_t s[2] = {7, 33}, st[2] = {33, 1};
    for (int t = 0; t < 3; t++) {
        check_reduce(FLOAT_DTS[t], 2, s, st, s, 1.5, false, -1, 1, "identity");
        check_reduce(FLOAT_DTS[t], 2, s, st, s, 1.5, true, -1, 1, "identity");
    }
}

/* ---------------------------------------------------------------- copy */

static const hft_dtype COPY_DTS[6] = {HFT_F32, HFT_BF16, HFT_F16, HFT_I32, HFT_I64, HFT_U8};

static bool is_int(hft_dtype t) {
    return t == HFT_I32 || t == HFT_I64 || t == HFT_U8;
}

/* n values of dtype dt from doubles, converted by the CPU's copy (f64 → dt). */
static void *host_values(hft_dtype dt, const double *v, int64_t n) {
    void *p = host_alloc(elsize(dt) * (size_t)n);
    hft_copy_args a = {.dst_dtype = dt, .src_dtype = HFT_F64};
    int64_t shape[1] = {n}, stride[1] = {1};
    a.dst = make_view(p, 1, shape, stride);
    a.src = make_view((void *)v, 1, shape, stride);
    cpu_k->copy(&a);
    return p;
}

/* Values both dtypes of a pair hold: u8 wants [0, 256); integers want no NaN or inf; float pairs also get
 * the edge values (NaN with payloads, infinities, signed zero, subnormals, f16 overflow, rounding ties). */
static void copy_values(test_rng *r, hft_dtype a, hft_dtype b, double *v, int64_t n) {
    bool u8 = a == HFT_U8 || b == HFT_U8, ints = is_int(a) || is_int(b);
    for (int64_t i = 0; i < n; i++) {
        double x = test_uniform(r, u8 ? 0 : -1000, u8 ? 120 : 1000); /* u8 sums stay below 256 */
        v[i] = i % 3 == 0 ? floor(x) : x;
    }
    if (ints) return;
    static const uint32_t edge[] = {0x7fc00000u, 0xffc00000u, 0x7f800001u, 0x7fa12345u, 0x7f800000u,
                                    0xff800000u, 0x80000000u, 0x00000001u, 0x00800000u, 0x33800000u,
                                    0x33c00000u, 0x477ff000u, 0x477fefffu, 0x3f808000u, 0x3f818000u,
                                    0x7f7fffffu, 0x38800000u, 0x387fc000u};
    for (size_t i = 0; i < sizeof edge / sizeof edge[0] && (int64_t)i < n; i++) {
        float f;
        memcpy(&f, &edge[i], 4);
        v[(int64_t)i * 7 % n] = f;
    }
}

/* One copy on the CPU and on CUDA over the same buffers; dst's whole buffer must match bit for bit. */
static void check_copy(hft_dtype dt, hft_dtype st, int ndim, const int64_t *shape, const int64_t *dstride,
                       const int64_t *sstride, int64_t offset, bool acc, const char *layout) {
    char what[160];
    snprintf(what, sizeof what, "copy %s → %s %s%s", hft_dtype_name(st), hft_dtype_name(dt), layout,
             acc ? " accumulate" : "");
    test_rng r = {0x2545f4914f6cdd1dull * ++seed_counter};
    int64_t ns = offset + span(ndim, shape, sstride), nd = offset + span(ndim, shape, dstride);
    double *sv = host_alloc(sizeof(double) * (size_t)ns), *dv = host_alloc(sizeof(double) * (size_t)nd);
    copy_values(&r, st, dt, sv, ns);
    copy_values(&r, dt, st, dv, nd);
    /* accumulating: finite operands only. A sum with a NaN is NaN on both, but its payload is the
     * hardware's (x86 keeps the operand's, a GPU makes the canonical 0x7fffffff), which copy does not
     * promise. */
    for (int64_t i = 0; acc && i < nd; i++) dv[i] = isfinite(dv[i]) ? dv[i] : 1.0;
    for (int64_t i = 0; acc && i < ns; i++) sv[i] = isfinite(sv[i]) ? sv[i] : 1.0;
    void *src = host_values(st, sv, ns), *want = host_values(dt, dv, nd);
    size_t dbytes = elsize(dt) * (size_t)nd;
    void *got = host_alloc(dbytes);
    void *dsrc = dev_upload(src, elsize(st) * (size_t)ns), *ddst = dev_upload(want, dbytes);
    hft_copy_args a = {.dst_dtype = dt, .src_dtype = st, .accumulate = acc};
    a.dst = make_view((char *)want + offset * (int64_t)elsize(dt), ndim, shape, dstride);
    a.src = make_view((char *)src + offset * (int64_t)elsize(st), ndim, shape, sstride);
    cpu_k->copy(&a);
    a.dst.data = (char *)ddst + offset * (int64_t)elsize(dt);
    a.src.data = (char *)dsrc + offset * (int64_t)elsize(st);
    cuda_k->copy(&a);
    dev_sync(what);
    dev_download(got, ddst, dbytes);
    int64_t bad = -1;
    size_t es = elsize(dt);
    for (int64_t i = 0; i < nd && bad < 0; i++)
        if (memcmp((char *)got + i * es, (char *)want + i * es, es) != 0) bad = i;
    if (bad >= 0) {
        uint64_t g = 0, w = 0;
        memcpy(&g, (char *)got + bad * es, es);
        memcpy(&w, (char *)want + bad * es, es);
        CHECK(0, "%s: element %lld is 0x%llx, the CPU's 0x%llx", what, (long long)bad, (unsigned long long)g,
              (unsigned long long)w);
    }
    free(sv), free(dv), free(src), free(want), free(got);
    dev_free(dsrc);
    dev_free(ddst);
}

/* Every pair, contiguous (the memcpy for equal dtypes; the vectorised conversion and its tail), from an
 * unaligned start, and with a transposed source, plain and accumulating. */
TEST(test_copy_pairs) {
    int64_t shape[2] = {5, 7}, dense_st[2] = {7, 1}, tr[2] = {1, 5};
    int64_t n[1] = {303}, unit[1] = {1};
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 6; j++)
            for (int acc = 0; acc < 2; acc++) {
                check_copy(COPY_DTS[i], COPY_DTS[j], 1, n, unit, unit, 0, acc, "contiguous");
                check_copy(COPY_DTS[i], COPY_DTS[j], 1, n, unit, unit, 1, acc, "contiguous, unaligned");
                check_copy(COPY_DTS[i], COPY_DTS[j], 2, shape, dense_st, tr, 0, acc, "transposed source");
            }
}

/* A destination with stride 0 where the source has extent: the source summed into it in the CPU's order,
 * rounded to the destination after each step; a whole array into one element; without accumulate the last
 * value stays. */
TEST(test_copy_summing) {
    static const hft_dtype pairs[][2] = {{HFT_F32, HFT_F32}, {HFT_BF16, HFT_F32}, {HFT_F32, HFT_BF16},
                                         {HFT_F16, HFT_F16}, {HFT_I32, HFT_I32},  {HFT_I64, HFT_F32}};
    int64_t shape[3] = {3, 4, 6}, sst[3] = {24, 6, 1};
    int64_t rows[3] = {4, 1, 0}, one[3] = {0, 0, 0}, mid[3] = {0, 1, 0};
    for (size_t p = 0; p < sizeof pairs / sizeof pairs[0]; p++) {
        check_copy(pairs[p][0], pairs[p][1], 3, shape, rows, sst, 0, true, "into [3,4,1] (stride 0)");
        check_copy(pairs[p][0], pairs[p][1], 3, shape, one, sst, 0, true, "into one element");
        check_copy(pairs[p][0], pairs[p][1], 3, shape, mid, sst, 0, true, "into [1,4,1]");
        check_copy(pairs[p][0], pairs[p][1], 3, shape, rows, sst, 0, false, "into [3,4,1], last wins");
    }
}

/* i64 beyond 2^53 goes through f64 as the CPU's copy does (two roundings to f32, not one). */
TEST(test_copy_big_i64) {
    static const int64_t v[] = {((int64_t)1 << 60) + ((int64_t)1 << 36) + 1, -((int64_t)1 << 55) - 3,
                                ((int64_t)1 << 24) + 1, 9007199254740993LL};
    int64_t n = 4;
    for (int t = 0; t < 3; t++) {
        char buf[32], got[32];
        hft_copy_args a = {.dst_dtype = FLOAT_DTS[t], .src_dtype = HFT_I64};
        int64_t shape[1] = {n}, st[1] = {1};
        a.dst = make_view(buf, 1, shape, st);
        a.src = make_view((void *)v, 1, shape, st);
        cpu_k->copy(&a);
        void *ds = dev_upload(v, sizeof v), *dd = dev_garbage(elsize(FLOAT_DTS[t]) * 4);
        a.dst.data = dd;
        a.src.data = ds;
        cuda_k->copy(&a);
        dev_download(got, dd, elsize(FLOAT_DTS[t]) * 4);
        CHECK(memcmp(got, buf, elsize(FLOAT_DTS[t]) * 4) == 0, "i64 → %s differs from the CPU",
              hft_dtype_name(FLOAT_DTS[t]));
        dev_free(ds);
        dev_free(dd);
    }
}

/* ---------------------------------------------------------------- fill */

/* The value stored as the CPU stores it: its fill for f32, else autograd's fallback (a broadcast copy of
 * one f64), which is what a fill of these dtypes means. Contiguous (memset for a uniform byte pattern, the
 * vectorised kernel otherwise, from an unaligned start too), strided (the gaps keep their values) and
 * broadcast. */
static void check_fill(hft_dtype dt, double value, int ndim, const int64_t *shape, const int64_t *stride,
                       int64_t offset, const char *layout) {
    char what[160];
    snprintf(what, sizeof what, "fill %s with %g, %s", hft_dtype_name(dt), value, layout);
    size_t es = elsize(dt);
    int64_t ns = offset + span(ndim, shape, stride);
    unsigned char *want = host_alloc(es * (size_t)ns), *got = host_alloc(es * (size_t)ns);
    for (size_t i = 0; i < es * (size_t)ns; i++) want[i] = (unsigned char)(i * 37 + 11);
    void *d = dev_upload(want, es * (size_t)ns);
    hft_kview v = make_view(want + offset * (int64_t)es, ndim, shape, stride);
    if (dt == HFT_F32) {
        cpu_k->fill[HFT_F32](&v, value);
    } else {
        double one = value;
        hft_copy_args a = {.dst_dtype = dt, .src_dtype = HFT_F64, .dst = v, .src = v};
        a.src.data = &one;
        for (int k = 0; k < ndim; k++) a.src.stride[k] = 0;
        cpu_k->copy(&a);
    }
    v.data = (char *)d + offset * (int64_t)es;
    cuda_k->fill[dt](&v, value);
    dev_sync(what);
    dev_download(got, d, es * (size_t)ns);
    CHECK(memcmp(got, want, es * (size_t)ns) == 0, "%s: differs from the CPU", what);
    free(want), free(got);
    dev_free(d);
}

TEST(test_fill) {
    static const hft_dtype dts[6] = {HFT_F32, HFT_BF16, HFT_F16, HFT_I32, HFT_I64, HFT_U8};
    static const double values[] = {0.0, 1.5, -2.25, 3.14159, 70000.0, -7.0, 200.0};
    int64_t n1[1] = {1}, n7[1] = {7}, n1000[1] = {1000}, unit[1] = {1};
    int64_t s2[2] = {7, 33}, gap[2] = {70, 2}, bc[2] = {0, 1};
    for (int t = 0; t < 6; t++)
        for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
            double v = values[k];
            if (dts[t] == HFT_U8 && (v < 0 || v > 255)) continue; /* outside u8 the C cast is undefined */
            check_fill(dts[t], v, 1, n1, unit, 0, "one");
            check_fill(dts[t], v, 1, n7, unit, 0, "seven");
            check_fill(dts[t], v, 1, n1000, unit, 0, "1000");
            check_fill(dts[t], v, 1, n1000, unit, 3, "1000 from an unaligned start");
            check_fill(dts[t], v, 2, s2, gap, 0, "every other element");
            check_fill(dts[t], v, 2, s2, bc, 1, "broadcast rows");
        }
}

/* ---------------------------------------------------------------- round_to */

/* Bit for bit with round.c: round to nearest even at the exact ties, NaN kept NaN (payload as dtype.c makes
 * it), infinities, overflow (bf16 past FLT_MAX's rounding point, f16 from 65520), f16 subnormals and their
 * ties, f32 subnormals; in place and from unaligned arrays too. The CPU's f16 path converts blocks of eight
 * with F16C, which keeps a NaN's payload where dtype.c's scalar conversion (the definition, and what the CPU
 * does for the tail) makes it 0x7e00: NaNs with payloads are checked against the scalar conversion. */
static const uint32_t ROUND_EDGE[] = {
    0x00000000u, 0x80000000u, 0x3f800000u, 0xbf800000u,
    0x00800000u, 0x00000001u, 0x807fffffu, /* zeros, subnormals */
    0x7f800000u, 0xff800000u, 0x7fc00000u, 0xffc00000u,
    0x7f800001u, 0x7fa12345u, 0xffbfffffu, /* inf, NaN */
    0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f80ffffu,
    0x7f7fffffu, 0x7f7f8000u, 0x7f7f7fffu, /* bf16 ties */
    0x477fe000u, 0x477fefffu, 0x477ff000u, 0x47800000u,
    0xc77ff000u, 0x3f801000u, 0x3f803000u, /* f16 */
    0x33000000u, 0x33000001u, 0x33800000u, 0x33c00000u,
    0x34200000u, 0x387fe000u, 0x387ff000u, /* f16 sub */
    0x38800000u, 0x387fffffu, 0xb3c00000u, 0x3d4ccccdu,
    0x42f6e979u, 0x4b800001u, 0x4e6e6b28u,
};

static void check_round(hft_dtype low, int64_t n, int64_t offset, bool in_place) {
    char what[120];
    snprintf(what, sizeof what, "round_to %s n %lld offset %lld%s", hft_dtype_name(low), (long long)n,
             (long long)offset, in_place ? " in place" : "");
    test_rng r = {0x1234567ull * ++seed_counter};
    int64_t ne = (int64_t)(sizeof ROUND_EDGE / sizeof ROUND_EDGE[0]);
    float *src = host_alloc(sizeof(float) * (size_t)(n + offset)),
          *cpu = host_alloc(sizeof(float) * (size_t)n);
    float *got = host_alloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        float v = (float)test_uniform(&r, -100, 100);
        if (i % 3 == 0) v = ldexpf(v, (int)test_uniform(&r, -40, 40)); /* wide exponents, f16's tails */
        if (i < ne) memcpy(&v, &ROUND_EDGE[i], 4);
        src[offset + i] = v;
    }
    cpu_k->round_to(low, cpu, src + offset, n);
    void *dsrc = dev_upload(src, sizeof(float) * (size_t)(n + offset));
    void *ddst = in_place ? dsrc : dev_garbage(sizeof(float) * (size_t)(n + offset));
    float *ds = (float *)dsrc + offset, *dd = (float *)ddst + offset;
    cuda_k->round_to(low, dd, ds, n);
    dev_sync(what);
    dev_download(got, dd, sizeof(float) * (size_t)n);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) {
        float x = src[offset + i], want = cpu[i];
        uint32_t g, w, s;
        memcpy(&s, &x, 4);
        if (low == HFT_F16 && x != x &&
            (s & 0x3fffffu) != 0) /* the definition: dtype.c's scalar conversion */
            want = hft_f16_to_f32(hft_f32_to_f16(x));
        memcpy(&g, &got[i], 4);
        memcpy(&w, &want, 4);
        if (g != w && bad++ < 4) CHECK(0, "%s: 0x%08x → 0x%08x, the CPU's 0x%08x", what, s, g, w);
    }
    free(src), free(cpu), free(got);
    dev_free(dsrc);
    if (!in_place) dev_free(ddst);
}

TEST(test_round_to) {
    for (int t = 1; t < 3; t++) {
        hft_dtype low = FLOAT_DTS[t];
        check_round(low, 42, 0, false);
        check_round(low, 1000, 0, false);
        check_round(low, 1000, 1, false);
        check_round(low, 4099, 0, true);
        check_round(low, 1, 0, false);
    }
}

/* ---------------------------------------------------------------- sum, sumsq */

/* Σx and Σx² of the dtype's values. The exact value comes from a compensated long-double sum. CUDA sums in
 * f64 (chunks of 8192: a thread's 32 terms, two 5-level trees, the partials' combination), off by at most
 * ~64·2^-53·Σ|x| (128 allowed). The CPU's sum adds f32 lanes of 256 terms (within 260·2^-24·Σ|x|); its
 * sumsq adds f64 lanes of 512 (within 520·2^-53·Σx²). Two calls give the same bits. */
static void check_sum(hft_dtype dt, int64_t n) {
    test_rng r = {0xabcdefull * ++seed_counter};
    float *x = host_alloc(sizeof(float) * (size_t)n);
    fill_uniform(&r, x, n, -1, 1);
    host_round(dt, x, n);
    long double s = 0, c = 0, q = 0, cq = 0;
    double mag = 0, mag2 = 0;
    for (int64_t i = 0; i < n; i++) {
        long double v = x[i], t = s + v;
        c += fabsl(s) >= fabsl(v) ? (s - t) + v : (v - t) + s;
        s = t;
        long double v2 = v * v, t2 = q + v2;
        cq += q >= v2 ? (q - t2) + v2 : (v2 - t2) + q;
        q = t2;
        mag += fabs(x[i]);
        mag2 += (double)x[i] * x[i];
    }
    double exact = (double)(s + c), exact2 = (double)(q + cq);
    void *d = dev_upload_as(dt, x, n);
    double gs = cuda_k->sum[dt](d, n), gq = cuda_k->sumsq[dt](d, n);
    double gs2 = cuda_k->sum[dt](d, n), gq2 = cuda_k->sumsq[dt](d, n);
    dev_sync("sum");
    double u64 = 1.0 / 9007199254740992.0;
    CHECK(fabs(gs - exact) <= 128 * u64 * mag, "sum %s n %lld: %.17g, exact %.17g", hft_dtype_name(dt),
          (long long)n, gs, exact);
    CHECK(fabs(gq - exact2) <= 128 * u64 * mag2, "sumsq %s n %lld: %.17g, exact %.17g", hft_dtype_name(dt),
          (long long)n, gq, exact2);
    CHECK(memcmp(&gs, &gs2, 8) == 0 && memcmp(&gq, &gq2, 8) == 0, "sum %s n %lld: a second call differs",
          hft_dtype_name(dt), (long long)n);
    double cs = cpu_k->sum[HFT_F32](x, n), cq2 = cpu_k->sumsq[HFT_F32](x, n);
    CHECK(fabs(gs - cs) <= 260 * U32 * mag + 128 * u64 * mag, "sum %s n %lld: %.17g, the CPU's %.17g",
          hft_dtype_name(dt), (long long)n, gs, cs);
    CHECK(fabs(gq - cq2) <= (520 + 128) * u64 * mag2, "sumsq %s n %lld: %.17g, the CPU's %.17g",
          hft_dtype_name(dt), (long long)n, gq, cq2);
    free(x);
    dev_free(d);
}

TEST(test_sum_sumsq) {
    static const int64_t sizes[] = {1, 7, 1000, 100003};
    for (int t = 0; t < 3; t++)
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) check_sum(FLOAT_DTS[t], sizes[k]);
    CHECK(cuda_k->sum[HFT_F32](NULL, 0) == 0.0 && cuda_k->sumsq[HFT_F32](NULL, 0) == 0.0, "empty sums");
}

/* ---------------------------------------------------------------- refusals */

/* What the CUDA family does not take is refused with a message at the next synchronize, never computed. */
TEST(test_refusals) {
    int64_t shape[1] = {4}, st[1] = {1}, zero[1] = {0};
    void *d = dev_zeros(64);
    hft_copy_args c = {.dst_dtype = HFT_F64, .src_dtype = HFT_F32};
    c.dst = make_view(d, 1, shape, st);
    c.src = make_view(d, 1, shape, st);
    cuda_k->copy(&c);
    hft_status s = cuda_k->dev->synchronize();
    CHECK(s == HFT_EUNSUPPORTED, "copy to f64: status %d", (int)s);
    CHECK(strstr(hft_error_message(), "copy") != NULL, "message: %s", hft_error_message());

    hft_map_args m = {.op = HFT_MAP_ADD, .n_in = 2};
    m.out = make_view(d, 1, shape, zero);
    m.in[0] = m.in[1] = make_view(d, 1, shape, st);
    cuda_k->map[HFT_F32](&m);
    s = cuda_k->dev->synchronize();
    CHECK(s == HFT_EUNSUPPORTED, "map into a broadcast out: status %d", (int)s);
    m.out = m.in[0];
    m.n_in = 1;
    cuda_k->map[HFT_F32](&m);
    s = cuda_k->dev->synchronize();
    CHECK(s == HFT_EINVAL, "add with one input: status %d", (int)s);
    cuda_k->round_to(HFT_I32, d, d, 4);
    s = cuda_k->dev->synchronize();
    CHECK(s == HFT_EINVAL, "round_to i32: status %d", (int)s);
    dev_free(d);
    hft_error_clear();
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_map_every_op", test_map_every_op},
        {"test_map_small", test_map_small},
        {"test_map_layouts", test_map_layouts},
        {"test_map_eight_dims", test_map_eight_dims},
        {"test_reduce_dims", test_reduce_dims},
        {"test_reduce_long", test_reduce_long},
        {"test_reduce_identity", test_reduce_identity},
        {"test_copy_pairs", test_copy_pairs},
        {"test_copy_summing", test_copy_summing},
        {"test_copy_big_i64", test_copy_big_i64},
        {"test_fill", test_fill},
        {"test_round_to", test_round_to},
        {"test_sum_sumsq", test_sum_sumsq},
        {"test_refusals", test_refusals},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
