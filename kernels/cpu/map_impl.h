/* Element-wise maps for one dtype (included by map.c with T and SFX defined): one tight inner loop per
 * op over unit-stride arrays, which the compiler vectorises, and a strided driver that gathers
 * non-unit-stride operands into small tiles. */

typedef void (*FN(map_inner_fn))(int64_t n, T *restrict o, const T *restrict a, const T *restrict b,
                                 const T *restrict c, T alpha, int acc);

#define DEF_MAP(NAME, EXPR)                                                                                  \
    static void FN(NAME)(int64_t n, T *restrict o, const T *restrict a, const T *restrict b,                 \
                         const T *restrict c, T alpha, int acc) {                                            \
        (void)a, (void)b, (void)c, (void)alpha;                                                              \
        if (acc) {                                                                                           \
            for (int64_t i = 0; i < n; i++) o[i] += (EXPR);                                                  \
        } else {                                                                                             \
            for (int64_t i = 0; i < n; i++) o[i] = (EXPR);                                                   \
        }                                                                                                    \
    }

#define A a[i]
#define B b[i]
#define C c[i]
DEF_MAP(map_add, A + B)
DEF_MAP(map_sub, A - B)
DEF_MAP(map_mul, A *B)
DEF_MAP(map_div, A / B)
DEF_MAP(map_copy, A)
DEF_MAP(map_scale, alpha *A)
DEF_MAP(map_neg, -A)
DEF_MAP(map_exp, EXPT(A))
DEF_MAP(map_log, LOGT(A))
DEF_MAP(map_sqrt, SQRTT(A))
DEF_MAP(map_pow, POWT(A, alpha))
DEF_MAP(map_square, A *A)
DEF_MAP(map_relu, A < (T)0 ? (T)0 : A)
DEF_MAP(map_gelu_tanh, (T)0.5 * A * ((T)1 + TANHT((T)HFT_SQRT_2_OVER_PI * (A + (T)0.044715 * A * A * A))))
DEF_MAP(map_gelu_erf, A *CDFT(A))
DEF_MAP(map_silu, A *SIGT(A))
DEF_MAP(map_tanh, TANHT(A))
DEF_MAP(map_sigmoid, SIGT(A))
/* backward: A = upstream gradient, B = x or y, C = third operand */
DEF_MAP(map_exp_bwd, A *B)
DEF_MAP(map_log_bwd, A / B)
DEF_MAP(map_sqrt_bwd, A / ((T)2 * B))
DEF_MAP(map_pow_bwd, A *alpha *POWT(B, alpha - (T)1))
DEF_MAP(map_square_bwd, A *(T)2 * B)
DEF_MAP(map_relu_bwd, B > (T)0 ? A : (T)0)
DEF_MAP(map_tanh_bwd, A *((T)1 - B * B))
DEF_MAP(map_sigmoid_bwd, A *B *((T)1 - B))
DEF_MAP(map_div_bwd_b, -A *B / C)
#undef A
#undef B
#undef C

static void FN(map_gelu_tanh_bwd)(int64_t n, T *restrict o, const T *restrict g, const T *restrict x,
                                  const T *restrict c, T alpha, int acc) {
    (void)c, (void)alpha;
    const T k = (T)HFT_SQRT_2_OVER_PI, k3 = (T)0.044715;
    for (int64_t i = 0; i < n; i++) {
        T v = x[i];
        T t = TANHT(k * (v + k3 * v * v * v));
        T d = (T)0.5 * ((T)1 + t) + (T)0.5 * v * ((T)1 - t * t) * k * ((T)1 + (T)3 * k3 * v * v);
        T r = g[i] * d;
        o[i] = acc ? o[i] + r : r;
    }
}

static void FN(map_gelu_erf_bwd)(int64_t n, T *restrict o, const T *restrict g, const T *restrict x,
                                 const T *restrict c, T alpha, int acc) {
    (void)c, (void)alpha;
    for (int64_t i = 0; i < n; i++) {
        T v = x[i];
        T d = CDFT(v) + v * (T)HFT_INV_SQRT_2PI * EXPT((T)-0.5 * v * v);
        T r = g[i] * d;
        o[i] = acc ? o[i] + r : r;
    }
}

static void FN(map_silu_bwd)(int64_t n, T *restrict o, const T *restrict g, const T *restrict x,
                             const T *restrict c, T alpha, int acc) {
    (void)c, (void)alpha;
    for (int64_t i = 0; i < n; i++) {
        T s = SIGT(x[i]);
        T r = g[i] * s * ((T)1 + x[i] * ((T)1 - s));
        o[i] = acc ? o[i] + r : r;
    }
}

static FN(map_inner_fn) FN(map_inner_for)(hft_map_op op, double alpha) {
    switch (op) {
    case HFT_MAP_ADD:
        return FN(map_add);
    case HFT_MAP_SUB:
        return FN(map_sub);
    case HFT_MAP_MUL:
        return FN(map_mul);
    case HFT_MAP_DIV:
        return FN(map_div);
    case HFT_MAP_COPY:
        return FN(map_copy);
    case HFT_MAP_SCALE:
        return FN(map_scale);
    case HFT_MAP_NEG:
        return FN(map_neg);
    case HFT_MAP_EXP:
        return FN(map_exp);
    case HFT_MAP_LOG:
        return FN(map_log);
    case HFT_MAP_SQRT:
        return FN(map_sqrt);
    case HFT_MAP_POW:
        return alpha == 2.0 ? FN(map_square) : FN(map_pow);
    case HFT_MAP_RELU:
        return FN(map_relu);
    case HFT_MAP_GELU_TANH:
        return FN(map_gelu_tanh);
    case HFT_MAP_GELU_ERF:
        return FN(map_gelu_erf);
    case HFT_MAP_SILU:
        return FN(map_silu);
    case HFT_MAP_TANH:
        return FN(map_tanh);
    case HFT_MAP_SIGMOID:
        return FN(map_sigmoid);
    case HFT_MAP_EXP_BWD_Y:
        return FN(map_exp_bwd);
    case HFT_MAP_LOG_BWD_X:
        return FN(map_log_bwd);
    case HFT_MAP_SQRT_BWD_Y:
        return FN(map_sqrt_bwd);
    case HFT_MAP_POW_BWD_X:
        return alpha == 2.0 ? FN(map_square_bwd) : FN(map_pow_bwd);
    case HFT_MAP_RELU_BWD_X:
        return FN(map_relu_bwd);
    case HFT_MAP_GELU_TANH_BWD_X:
        return FN(map_gelu_tanh_bwd);
    case HFT_MAP_GELU_ERF_BWD_X:
        return FN(map_gelu_erf_bwd);
    case HFT_MAP_SILU_BWD_X:
        return FN(map_silu_bwd);
    case HFT_MAP_TANH_BWD_Y:
        return FN(map_tanh_bwd);
    case HFT_MAP_SIGMOID_BWD_Y:
        return FN(map_sigmoid_bwd);
    case HFT_MAP_DIV_BWD_B:
        return FN(map_div_bwd_b);
    case HFT_MAP_OP_COUNT:
        break;
    }
    return NULL;
}

#define MAP_TILE 256

/* One row of the iteration: `n` elements at the given base pointers and inner strides. */
static void FN(map_row)(FN(map_inner_fn) fn, int n_in, int64_t n, T *o, int64_t os, const T *const in[3],
                        const int64_t is[3], T alpha, int acc) {
    int direct = os == 1;
    for (int k = 0; k < n_in; k++) direct &= is[k] == 1;
    if (direct) {
        fn(n, o, in[0], n_in > 1 ? in[1] : NULL, n_in > 2 ? in[2] : NULL, alpha, acc);
        return;
    }
    T tile[3][MAP_TILE], otile[MAP_TILE];
    for (int64_t i0 = 0; i0 < n; i0 += MAP_TILE) {
        int64_t m = n - i0 < MAP_TILE ? n - i0 : MAP_TILE;
        const T *p[3] = {NULL, NULL, NULL};
        for (int k = 0; k < n_in; k++) {
            if (is[k] == 1) {
                p[k] = in[k] + i0;
            } else {
                const T *src = in[k] + i0 * is[k];
                for (int64_t i = 0; i < m; i++) tile[k][i] = src[i * is[k]];
                p[k] = tile[k];
            }
        }
        if (os == 1) {
            fn(m, o + i0, p[0], p[1], p[2], alpha, acc);
        } else {
            T *dst = o + i0 * os;
            if (acc)
                for (int64_t i = 0; i < m; i++) otile[i] = dst[i * os];
            fn(m, otile, p[0], p[1], p[2], alpha, acc);
            for (int64_t i = 0; i < m; i++) dst[i * os] = otile[i];
        }
    }
}

typedef struct FN(map_job) {
    FN(map_inner_fn) fn;
    int n_in, n_ops, ndim;
    int64_t shape[HFT_MAX_DIMS], strides[4][HFT_MAX_DIMS];
    T *out;
    const T *in[3];
    int64_t os, is[3], inner, chunk;
    T alpha;
    int acc;
} FN(map_job);

/* One long row cut into chunks: tasks [t0, t1). */
static void FN(map_chunks)(int64_t t0, int64_t t1, void *p) {
    const FN(map_job) *j = p;
    for (int64_t t = t0; t < t1; t++) {
        int64_t i0 = t * j->chunk, m = j->inner - i0 < j->chunk ? j->inner - i0 : j->chunk;
        const T *in[3];
        for (int k = 0; k < 3; k++) in[k] = j->in[k] ? j->in[k] + i0 * j->is[k] : NULL;
        FN(map_row)(j->fn, j->n_in, m, j->out + i0 * j->os, j->os, in, j->is, j->alpha, j->acc);
    }
}

/* Rows [r0, r1) of the coalesced iteration space. */
static void FN(map_rows)(int64_t r0, int64_t r1, void *p) {
    const FN(map_job) *j = p;
    for (int64_t r = r0; r < r1; r++) {
        int64_t off[4] = {0, 0, 0, 0}, rem = r;
        for (int d = j->ndim - 2; d >= 0; d--) {
            int64_t idx = rem % j->shape[d];
            rem /= j->shape[d];
            for (int k = 0; k < j->n_ops; k++) off[k] += idx * j->strides[k][d];
        }
        const T *in[3];
        for (int k = 0; k < 3; k++) in[k] = j->in[k] ? j->in[k] + off[k + 1] : NULL;
        FN(map_row)(j->fn, j->n_in, j->inner, j->out + off[0], j->os, in, j->is, j->alpha, j->acc);
    }
}

static void FN(map)(const hft_map_args *args) {
    FN(map_job)
    j = {.fn = FN(map_inner_for)(args->op, args->alpha),
         .n_in = args->n_in,
         .n_ops = 1 + args->n_in,
         .alpha = (T)args->alpha,
         .acc = args->accumulate,
         .out = (T *)args->out.data};
    const hft_kview *views[4] = {&args->out, &args->in[0], &args->in[1], &args->in[2]};
    cpu_coalesce(j.n_ops, views, &j.ndim, j.shape, j.strides);
    j.inner = j.shape[j.ndim - 1];
    int64_t rows = 1;
    for (int d = 0; d < j.ndim - 1; d++) rows *= j.shape[d];
    for (int k = 0; k < args->n_in; k++) {
        j.in[k] = (const T *)args->in[k].data;
        j.is[k] = j.strides[k + 1][j.ndim - 1];
    }
    j.os = j.strides[0][j.ndim - 1];
    if (rows == 1) { /* one long row: chunks, one task each */
        j.chunk = 16384;
        int64_t tasks = (j.inner + j.chunk - 1) / j.chunk;
        hft_parallel_range(tasks, tasks > 1, FN(map_chunks), &j);
        return;
    }
    hft_parallel_range(rows, rows * j.inner > 32768, FN(map_rows), &j);
}
