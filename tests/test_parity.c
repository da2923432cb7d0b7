/* Op-by-op parity with PyTorch: every case in tests/fixtures/ops/ops.safetensors (written by
 * tests/fixtures/make_op_fixtures.py from torch and transformers in f32) runs through hft in f32, forward
 * and backward with the fixture's upstream gradient, and its output and input gradients are compared. */
#include <cJSON.h>
#include <stdarg.h>

#include "nn/nn.h"
#include "tests/test_util.h"

#define FIXTURE    "tests/fixtures/ops/ops.safetensors"
#define MAX_INPUTS 8

/* Tolerances are policy: rtol, and an absolute tolerance of the same factor times max|reference|.
 * Element-wise ops (and copies) are held to 1e-5; anything that sums (reductions, GEMMs, softmax, norms,
 * losses, attention, the embedding's scatter-add) to 1e-4, since hft and torch sum in different orders. */
// clang-format off
static const char *const elementwise_ops[] = {
    "add", "sub", "mul", "div", "scale", "neg", "exp", "log", "sqrt", "pow", "relu", "gelu", "silu", "tanh",
    "sigmoid", "concat", "rope"};
/* Every op the runner knows; the fixture must have cases for each, so coverage cannot shrink unseen. */
static const char *const known_ops[] = {
    "add", "sub", "mul", "div", "scale", "neg", "exp", "log", "sqrt", "pow", "relu", "gelu", "silu", "tanh",
    "sigmoid", "sum", "mean", "concat", "matmul", "linear", "softmax", "log_softmax", "layer_norm",
    "rms_norm", "embedding", "cross_entropy", "linear_cross_entropy", "mse", "rope", "attention"};
// clang-format on
#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

typedef struct parity_case {
    const char *name, *op;
    const cJSON *params;
    int n_in;
    const char *role[MAX_INPUTS];
    hft_tensor *in[MAX_INPUTS];  /* heap tensors as stored */
    hft_tensor *arg[MAX_INPUTS]; /* what the op is given: the input, or its transposed view */
    bool grad[MAX_INPUTS];
    char why[512]; /* set when the case fails outside a value comparison */
} parity_case;

static int fail(parity_case *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(parity_case *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    test_failures++;
    return 0;
}

/* ---------------------------------------------------------------- params */

static double p_num(const parity_case *c, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->params, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}
static bool p_bool(const parity_case *c, const char *key) {
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->params, key));
}
static const char *p_str(const parity_case *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->params, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}
static int p_ints(const parity_case *c, const char *key, int *out, int max) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->params, key), *e;
    int n = 0;
    cJSON_ArrayForEach(e, v) if (n < max && cJSON_IsNumber(e)) out[n++] = e->valueint;
    return n;
}
/* The op argument with a given role, or NULL when the case has none (optional inputs). */
static hft_tensor *role_arg(const parity_case *c, const char *role) {
    for (int i = 0; i < c->n_in; i++)
        if (strcmp(c->role[i], role) == 0) return c->arg[i];
    return NULL;
}
static hft_xent_opts xent_opts(const parity_case *c) {
    hft_xent_opts o = HFT_XENT_DEFAULTS;
    o.ignore_index = (int64_t)p_num(c, "ignore_index", -100);
    o.label_smoothing = p_num(c, "label_smoothing", 0.0);
    return o;
}
static int64_t count_targets(const hft_tensor *t, int64_t ignore_index) {
    const int64_t *v = hft_tensor_data(t);
    int64_t n = 0;
    for (int64_t i = 0; i < hft_tensor_numel(t); i++) n += v[i] != ignore_index;
    return n;
}

/* ---------------------------------------------------------------- the op of a case */

typedef hft_tensor *(*unary_fn)(hft_ctx *, hft_tensor *);
typedef hft_tensor *(*binary_fn)(hft_ctx *, hft_tensor *, hft_tensor *);

static hft_tensor *run_op(hft_ctx *ctx, parity_case *c) {
    static const struct {
        const char *op;
        unary_fn fn;
    } unary[] = {{"neg", hft_neg},   {"exp", hft_exp},   {"log", hft_log},   {"sqrt", hft_sqrt},
                 {"relu", hft_relu}, {"silu", hft_silu}, {"tanh", hft_tanh}, {"sigmoid", hft_sigmoid}};
    static const struct {
        const char *op;
        binary_fn fn;
    } binary[] = {{"add", hft_add}, {"sub", hft_sub}, {"mul", hft_mul}, {"div", hft_div}};
    hft_tensor **a = c->arg;
    const char *op = c->op;
    for (int i = 0; i < COUNT(unary); i++)
        if (strcmp(op, unary[i].op) == 0) return unary[i].fn(ctx, a[0]);
    for (int i = 0; i < COUNT(binary); i++)
        if (strcmp(op, binary[i].op) == 0) return binary[i].fn(ctx, a[0], a[1]);

    if (strcmp(op, "scale") == 0) return hft_scale(ctx, a[0], p_num(c, "alpha", 1.0));
    if (strcmp(op, "pow") == 0) return hft_pow(ctx, a[0], p_num(c, "exponent", 1.0));
    if (strcmp(op, "gelu") == 0) {
        const char *approx = p_str(c, "approximate");
        if (strcmp(approx, "none") != 0 && strcmp(approx, "tanh") != 0)
            return fail(c, "gelu: unknown approximate '%s'", approx), NULL;
        return hft_gelu(ctx, a[0], strcmp(approx, "tanh") == 0 ? HFT_GELU_TANH : HFT_GELU_ERF);
    }
    if (strcmp(op, "sum") == 0 || strcmp(op, "mean") == 0) {
        int dims[HFT_MAX_DIMS];
        int n = p_ints(c, "dims", dims, HFT_MAX_DIMS);
        return (op[0] == 's' ? hft_sum : hft_mean)(ctx, a[0], n, dims, p_bool(c, "keepdim"));
    }
    if (strcmp(op, "concat") == 0) return hft_concat(ctx, c->n_in, a, (int)p_num(c, "dim", 0));
    if (strcmp(op, "matmul") == 0) return hft_matmul(ctx, a[0], a[1]);
    if (strcmp(op, "linear") == 0) return hft_linear(ctx, a[0], a[1], role_arg(c, "bias"));
    if (strcmp(op, "softmax") == 0) return hft_softmax(ctx, a[0], (int)p_num(c, "dim", -1));
    if (strcmp(op, "log_softmax") == 0) return hft_log_softmax(ctx, a[0], (int)p_num(c, "dim", -1));
    if (strcmp(op, "layer_norm") == 0)
        return hft_layer_norm(ctx, a[0], role_arg(c, "weight"), role_arg(c, "bias"), p_num(c, "eps", 1e-5));
    if (strcmp(op, "rms_norm") == 0)
        return hft_rms_norm(ctx, a[0], role_arg(c, "weight"), p_num(c, "eps", 1e-6));
    if (strcmp(op, "embedding") == 0)
        return hft_embedding(ctx, a[0], a[1], (int64_t)p_num(c, "padding_idx", -1));
    if (strcmp(op, "cross_entropy") == 0 || strcmp(op, "linear_cross_entropy") == 0) {
        hft_xent_opts o = xent_opts(c);
        hft_tensor *targets = role_arg(c, "targets");
        int64_t count = -1;
        hft_tensor *y;
        if (op[0] == 'l')
            y = hft_linear_cross_entropy(ctx, a[0], a[1], role_arg(c, "bias"), targets, o, &count);
        else if (strcmp(p_str(c, "reduction"), "mean") == 0)
            return hft_cross_entropy_mean(ctx, a[0], targets, o);
        else
            y = hft_cross_entropy(ctx, a[0], targets, o, &count);
        int64_t want = count_targets(targets, o.ignore_index);
        if (y && count != want)
            return fail(c, "%s: count of non-ignored targets is %lld, want %lld", op, (long long)count,
                        (long long)want),
                   NULL;
        return y;
    }
    if (strcmp(op, "mse") == 0)
        return hft_mse(ctx, a[0], a[1],
                       strcmp(p_str(c, "reduction"), "sum") == 0 ? HFT_REDUCE_SUM : HFT_REDUCE_MEAN);
    if (strcmp(op, "rope") == 0)
        return hft_rope(ctx, a[0], role_arg(c, "positions"), role_arg(c, "inv_freq"),
                        p_num(c, "scaling", 1.0));
    if (strcmp(op, "attention") == 0) {
        hft_attn_opts o = {.causal = p_bool(c, "causal"),
                           .scale = p_num(c, "scale", 0.0),
                           .key_mask = role_arg(c, "key_mask"),
                           .q_segments = role_arg(c, "q_segments"),
                           .k_segments = role_arg(c, "k_segments")};
        return hft_attention(ctx, role_arg(c, "q"), role_arg(c, "k"), role_arg(c, "v"), &o);
    }
    return fail(c, "unknown op '%s' (the runner and tests/fixtures/make_op_fixtures.py disagree)", op), NULL;
}

/* ---------------------------------------------------------------- comparing */

/* Loads the fixture tensor `<case>/<what>` as f64 values, checking its shape against `t`'s. */
static double *load_ref(const hft_safetensors *f, parity_case *c, const char *what, const hft_tensor *t) {
    char key[256];
    snprintf(key, sizeof key, "%s/%s", c->name, what);
    hft_tensor *ref = NULL;
    if (hft_safetensors_load(f, key, HFT_F32, false, &ref) != HFT_OK)
        return fail(c, "%s: %s", key, hft_error_message()), NULL;
    bool same = ref->ndim == t->ndim;
    for (int d = 0; same && d < t->ndim; d++) same = ref->shape[d] == t->shape[d];
    double *v = NULL;
    if (!same) {
        char got[128], want[128];
        fail(c, "%s: hft gives %s, torch %s", what, hft_tensor_describe(t, got, sizeof got),
             hft_tensor_describe(ref, want, sizeof want));
    } else {
        v = malloc(sizeof(double) * (size_t)(hft_tensor_numel(ref) ? hft_tensor_numel(ref) : 1));
        hft_tensor_to_f64(ref, v);
    }
    hft_tensor_free(ref);
    return v;
}

/* Compares one tensor; tracks the largest error relative to max|reference| for the case's line. */
static int compare(const hft_safetensors *f, parity_case *c, const char *what, const char *label,
                   const hft_tensor *t, double rtol, double *worst) {
    double *want = load_ref(f, c, what, t);
    if (!want) return 0;
    long n = (long)hft_tensor_numel(t);
    double *got = malloc(sizeof(double) * (size_t)(n ? n : 1)), ref_max = 0, err_max = 0;
    hft_tensor_to_f64(t, got);
    for (long i = 0; i < n; i++) {
        ref_max = fmax(ref_max, fabs(want[i]));
        err_max = fmax(err_max, fabs(got[i] - want[i]));
    }
    double rel = ref_max > 0 ? err_max / ref_max : err_max;
    if (rel > *worst || isnan(rel)) *worst = rel;
    int ok = test_close(label, got, want, n, rtol, rtol);
    if (!ok && !c->why[0])
        snprintf(c->why, sizeof c->why,
                 "%s differs: max|err|/max|ref| %.2g, rtol %g (worst element on stderr)", label, rel, rtol);
    free(got);
    free(want);
    return ok;
}

/* ---------------------------------------------------------------- one case */

static double tolerance(const char *op) {
    for (int i = 0; i < COUNT(elementwise_ops); i++)
        if (strcmp(op, elementwise_ops[i]) == 0) return 1e-5;
    return 1e-4;
}

static bool parse_case(const cJSON *j, parity_case *c) {
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name"),
                *op = cJSON_GetObjectItemCaseSensitive(j, "op");
    const cJSON *inputs = cJSON_GetObjectItemCaseSensitive(j, "inputs"), *e;
    c->name = cJSON_IsString(name) ? name->valuestring : "?";
    c->op = cJSON_IsString(op) ? op->valuestring : "?";
    c->params = cJSON_GetObjectItemCaseSensitive(j, "params");
    if (!cJSON_IsString(name) || !cJSON_IsString(op) || !cJSON_IsArray(inputs) ||
        cJSON_GetArraySize(inputs) > MAX_INPUTS)
        return fail(c, "malformed case entry in the fixture's metadata"), false;
    c->n_in = 0;
    cJSON_ArrayForEach(e, inputs) {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(e, "name");
        c->role[c->n_in++] = cJSON_IsString(role) ? role->valuestring : "";
    }
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "grad")) {
        if (!cJSON_IsNumber(e) || e->valueint < 0 || e->valueint >= c->n_in)
            return fail(c, "grad index out of range"), false;
        c->grad[e->valueint] = true;
    }
    return true;
}

static int run_case(hft_ctx *ctx, const hft_safetensors *f, const cJSON *j, parity_case *c) {
    int before = test_failures;
    double worst = 0;
    if (!parse_case(j, c)) return 0;
    test_current = c->name;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "inputs"), *e;
    int i = 0;
    cJSON_ArrayForEach(e, dt) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(e, "dtype");
        hft_dtype dtype = cJSON_IsString(d) && strcmp(d->valuestring, "i64") == 0 ? HFT_I64 : HFT_F32;
        char key[256];
        snprintf(key, sizeof key, "%s/in%d", c->name, i);
        if (hft_safetensors_load(f, key, dtype, false, &c->in[i]) != HFT_OK)
            return fail(c, "%s: %s", key, hft_error_message());
        hft_tensor_set_requires_grad(c->in[i], c->grad[i]);
        i++;
    }

    hft_ctx_reset(ctx);
    for (i = 0; i < c->n_in; i++) c->arg[i] = c->in[i];
    int tr[MAX_INPUTS];
    int n_tr = p_ints(c, "transpose", tr, MAX_INPUTS);
    for (int k = 0; k < n_tr; k++)
        if (tr[k] >= 0 && tr[k] < c->n_in) c->arg[tr[k]] = hft_transpose(ctx, c->in[tr[k]], -2, -1);

    double rtol = tolerance(c->op);
    hft_tensor *out = run_op(ctx, c);
    if (!out) {
        if (test_failures != before) return 0; /* run_op said why */
        return fail(c, "forward: %s: %s", hft_status_name(hft_ctx_status(ctx)), hft_ctx_error(ctx));
    }
    compare(f, c, "out", "out", out, rtol, &worst);

    bool any_grad = false;
    for (i = 0; i < c->n_in; i++) any_grad |= c->grad[i];
    if (any_grad && test_failures == before) {
        char key[256];
        snprintf(key, sizeof key, "%s/grad_out", c->name);
        hft_tensor *grad_out = NULL;
        if (hft_safetensors_load(f, key, HFT_F32, false, &grad_out) != HFT_OK)
            return fail(c, "%s: %s", key, hft_error_message());
        hft_status st = hft_backward(ctx, out, grad_out);
        hft_tensor_free(grad_out);
        if (st != HFT_OK)
            return fail(c, "backward: %s: %s", hft_status_name(st),
                        hft_ctx_status(ctx) != HFT_OK ? hft_ctx_error(ctx) : hft_error_message());
        for (i = 0; i < c->n_in; i++) {
            if (!c->grad[i]) continue;
            char what[32], label[96];
            snprintf(what, sizeof what, "grad_in%d", i);
            snprintf(label, sizeof label, "grad of in%d (%s)", i, c->role[i]);
            const hft_tensor *g = hft_tensor_grad(c->in[i]);
            if (!g) {
                fail(c, "%s: no gradient computed", label);
                continue;
            }
            compare(f, c, what, label, g, rtol, &worst);
        }
    }
    if (test_failures == before)
        snprintf(c->why, sizeof c->why, "max|err|/max|ref| %.2g (rtol %g)", worst, rtol);
    return test_failures == before;
}

/* ---------------------------------------------------------------- main */

static bool wanted(int argc, char **argv, const char *name, const char *op) {
    if (argc <= 1) return true;
    for (int a = 1; a < argc; a++)
        if (strcmp(argv[a], name) == 0 || strcmp(argv[a], op) == 0) return true;
    return false;
}

int main(int argc, char **argv) {
    if (hft_runtime_init() != HFT_OK) {
        fprintf(stderr, "runtime: %s\n", hft_error_message());
        return 1;
    }
    hft_safetensors *f = NULL;
    if (hft_safetensors_open(FIXTURE, &f) != HFT_OK) {
        fprintf(stderr,
                "%s (run from the repository root; regenerate with tests/fixtures/make_op_fixtures.py)\n",
                hft_error_message());
        return 1;
    }
    const char *meta = hft_safetensors_metadata(f, "cases");
    cJSON *cases = meta ? cJSON_Parse(meta) : NULL;
    if (!cJSON_IsArray(cases)) {
        fprintf(stderr, "%s: __metadata__ \"cases\" is %s\n", FIXTURE, meta ? "not a JSON list" : "missing");
        cJSON_Delete(cases);
        hft_safetensors_close(f);
        return 1;
    }
    hft_ctx *ctx = hft_ctx_new(NULL);
    int run = 0, passed = 0, per_op[COUNT(known_ops)] = {0};
    const cJSON *j;
    cJSON_ArrayForEach(j, cases) {
        const cJSON *op = cJSON_GetObjectItemCaseSensitive(j, "op");
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
        const char *op_s = cJSON_IsString(op) ? op->valuestring : "";
        for (int k = 0; k < COUNT(known_ops); k++) per_op[k] += strcmp(op_s, known_ops[k]) == 0;
        if (!wanted(argc, argv, cJSON_IsString(name) ? name->valuestring : "", op_s)) continue;
        /* The fused classifier makes its logits a block of rows at a time; a second pass with 4-row blocks
         * (HFT_LCE_BLOCK_ROWS, ops_loss.c) checks that the blocking, not only the one-block path, matches. */
        int passes = strcmp(op_s, "linear_cross_entropy") == 0 ? 2 : 1;
        for (int pass = 0; pass < passes; pass++) {
            parity_case c = {0};
            if (pass == 1) setenv("HFT_LCE_BLOCK_ROWS", "4", 1);
            int ok = run_case(ctx, f, j, &c);
            if (pass == 1) unsetenv("HFT_LCE_BLOCK_ROWS");
            for (int i = 0; i < c.n_in; i++) hft_tensor_free(c.in[i]);
            hft_ctx_reset(ctx);
            hft_ctx_clear_error(ctx);
            run++;
            passed += ok;
            char label[160];
            snprintf(label, sizeof label, "%s%s", c.name, pass ? " (4-row blocks)" : "");
            printf("%s %-42s %-20s %s\n", ok ? "ok  " : "FAIL", label, c.op, c.why);
            fflush(stdout);
        }
    }
    if (argc <= 1)
        for (int k = 0; k < COUNT(known_ops); k++)
            if (per_op[k] == 0) {
                test_failures++;
                printf("FAIL the fixture has no case for op '%s'\n", known_ops[k]);
            }
    printf("%d cases, %d passed, %d failed\n", run, passed, run - passed);
    hft_ctx_free(ctx);
    cJSON_Delete(cases);
    hft_safetensors_close(f);
    return test_failures || run == 0 ? 1 : 0;
}
