/* The CUDA embedding, dropout and rotary embedding against their CPU twins (cpu_k): embedding forward and
 * backward and the dropout mask and values are exact (f32 bit-identical; bf16 / f16 the CPU's f32 value
 * rounded once, as the kernel rounds it); rope within a few f32 roundings of the rotated value. */
#include "tests/cuda_test_util.h"

#include <stdint.h>

static const hft_dtype dtypes[] = {HFT_F32, HFT_BF16, HFT_F16};

/* Exact equality, NaN matching NaN whatever its payload (the GPU's arithmetic makes canonical NaNs). */
static int same_f32(const char *what, const float *got, const float *want, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        if (isnan(got[i]) && isnan(want[i])) continue;
        if (memcmp(&got[i], &want[i], 4) != 0) {
            CHECK(0, "%s: element %lld is %.9g, want %.9g", what, (long long)i, got[i], want[i]);
            return 0;
        }
    }
    return 1;
}

/* The value a dev_garbage buffer of dtype dt reads as (0xA5 bytes). */
static float garbage_value(hft_dtype dt) {
    if (dt == HFT_BF16) return hft_bf16_to_f32(0xA5A5);
    if (dt == HFT_F16) return hft_f16_to_f32(0xA5A5);
    uint32_t u = 0xA5A5A5A5u;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ids of dtype idt on the host (i32 or i64) from int64 values. */
static void *host_ids(hft_dtype idt, const int64_t *v, int64_t n) {
    void *p = malloc((size_t)(n ? n : 1) * 8);
    for (int64_t i = 0; i < n; i++) {
        if (idt == HFT_I32)
            ((int32_t *)p)[i] = (int32_t)v[i];
        else
            ((int64_t *)p)[i] = v[i];
    }
    return p;
}

/* ---------------------------------------------------------------- embedding */

/* n ids over a vocabulary of V, with duplicates (V small next to n), some padding_idx and some outside
 * [0, V) (forward: zero rows; backward: skipped; the op rejects them before, the kernels must not fault). */
static void random_ids(test_rng *r, int64_t *ids, int64_t n, int64_t V, int64_t pad) {
    for (int64_t i = 0; i < n; i++) {
        double u = test_uniform(r, 0, 1);
        if (u < 0.06)
            ids[i] = -1 - (int64_t)test_uniform(r, 0, 3);
        else if (u < 0.12)
            ids[i] = V + (int64_t)test_uniform(r, 0, 3);
        else if (u < 0.2 && pad >= 0)
            ids[i] = pad;
        else
            ids[i] = (int64_t)test_uniform(r, 0, (double)V);
    }
}

TEST(test_embedding_fwd) {
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 33}, {64, 17, 64}, {33, 9, 257}, {5, 300, 128}};
    test_rng r = {11};
    for (int di = 0; di < 3; di++) {
        hft_dtype dt = dtypes[di];
        for (int s = 0; s < 5; s++) {
            for (int it = 0; it < 2; it++) {
                hft_dtype idt = it ? HFT_I64 : HFT_I32;
                int64_t n = shapes[s][0], V = shapes[s][1], D = shapes[s][2];
                float *w = malloc(sizeof(float) * (size_t)(V * D));
                fill_uniform(&r, w, V * D, -2, 2);
                host_round(dt, w, V * D);
                int64_t *idv = malloc(sizeof(int64_t) * (size_t)n);
                random_ids(&r, idv, n, V, -1);
                void *ids = host_ids(idt, idv, n);
                /* the CPU's bf16 / f16 kernels read the table in its dtype, as the device does */
                uint16_t *wh = malloc(sizeof(uint16_t) * (size_t)(V * D));
                if (dt != HFT_F32) host_to_half(dt, wh, w, V * D);
                float *want = malloc(sizeof(float) * (size_t)(n * D)),
                      *got = malloc(sizeof(float) * (size_t)(n * D));
                hft_embedding_args a = {.n = n,
                                        .vocab = V,
                                        .dim = D,
                                        .id_dtype = idt,
                                        .ids = ids,
                                        .weight = dt == HFT_F32 ? (void *)w : (void *)wh,
                                        .out = want,
                                        .padding_idx = -1};
                cpu_k->embedding_fwd[dt](&a);
                void *d_ids = dev_upload(ids, (size_t)n * hft_dtype_size(idt));
                void *d_w = dev_upload_as(dt, w, V * D);
                void *d_out = dev_garbage(sizeof(float) * (size_t)(n * D));
                a.ids = d_ids, a.weight = d_w, a.out = d_out;
                cuda_k->embedding_fwd[dt](&a);
                dev_sync("embedding_fwd");
                dev_download(got, d_out, sizeof(float) * (size_t)(n * D));
                char what[96];
                snprintf(what, sizeof what, "embedding_fwd %s ids %s n %lld V %lld D %lld",
                         hft_dtype_name(dt), hft_dtype_name(idt), (long long)n, (long long)V, (long long)D);
                same_f32(what, got, want, n * D); /* a gather: exact */
                dev_free(d_ids), dev_free(d_w), dev_free(d_out);
                free(w), free(wh), free(idv), free(ids), free(want), free(got);
            }
        }
    }
}

/* Backward adds into dweight (the caller zeroes it or not); every element sums its tokens in the order of
 * the ids on both sides, so f32 is bit-identical. Many duplicates (V small), runs of one id, padding. */
TEST(test_embedding_bwd) {
    static const int64_t shapes[][3] = {{1, 1, 1},     {7, 3, 33},   {64, 5, 64},   {33, 9, 7},
                                        {257, 17, 40}, {300, 2, 33}, {1000, 50, 96}};
    test_rng r = {12};
    for (int s = 0; s < 7; s++) {
        for (int it = 0; it < 2; it++) {
            hft_dtype idt = it ? HFT_I64 : HFT_I32;
            int64_t n = shapes[s][0], V = shapes[s][1], D = shapes[s][2];
            int64_t pad = s % 2 ? V / 2 : -1;
            int64_t *idv = malloc(sizeof(int64_t) * (size_t)n);
            random_ids(&r, idv, n, V, pad);
            if (n >= 16) /* a run of one id, across a window boundary */
                for (int64_t i = 5; i < 13; i++) idv[i] = 1 % V;
            void *ids = host_ids(idt, idv, n);
            float *dout = malloc(sizeof(float) * (size_t)(n * D));
            fill_uniform(&r, dout, n * D, -1, 1);
            float *want = malloc(sizeof(float) * (size_t)(V * D)),
                  *got = malloc(sizeof(float) * (size_t)(V * D));
            fill_uniform(&r, want, V * D, -1, 1); /* accumulated into */
            void *d_ids = dev_upload(ids, (size_t)n * hft_dtype_size(idt));
            void *d_dout = dev_upload(dout, sizeof(float) * (size_t)(n * D));
            void *d_dw = dev_upload(want, sizeof(float) * (size_t)(V * D));
            hft_embedding_args a = {.n = n,
                                    .vocab = V,
                                    .dim = D,
                                    .id_dtype = idt,
                                    .ids = ids,
                                    .dout = dout,
                                    .dweight = want,
                                    .padding_idx = pad};
            cpu_k->embedding_bwd[HFT_F32](&a);
            a.ids = d_ids, a.dout = d_dout, a.dweight = d_dw;
            cuda_k->embedding_bwd[HFT_F32](&a);
            dev_sync("embedding_bwd");
            dev_download(got, d_dw, sizeof(float) * (size_t)(V * D));
            char what[96];
            snprintf(what, sizeof what, "embedding_bwd ids %s n %lld V %lld D %lld pad %lld",
                     hft_dtype_name(idt), (long long)n, (long long)V, (long long)D, (long long)pad);
            same_f32(what, got, want, V * D);
            dev_free(d_ids), dev_free(d_dout), dev_free(d_dw);
            free(idv), free(ids), free(dout), free(want), free(got);
        }
    }
}

/* ---------------------------------------------------------------- dropout */

/* The CPU's f32 kernel on the rounded inputs, its output rounded to dt: the device computes the same f32
 * value (same mask, same f32 scale, one multiply, one add) and rounds it once, so every dtype is exact. */
static void check_dropout(hft_dtype dt, int64_t samples, int64_t per, int64_t sample0, double p, bool acc,
                          int64_t offset, test_rng *r) {
    int64_t n = samples * per;
    float *x = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n),
          *got = malloc(sizeof(float) * (size_t)n);
    fill_uniform(r, x, n, -3, 3);
    if (n > 3) x[1] = NAN, x[2] = INFINITY; /* dropped: x·0 = NaN, as torch */
    host_round(dt, x, n);
    if (acc) {
        fill_uniform(r, want, n, -1, 1);
        host_round(dt, want, n);
    } else {
        for (int64_t i = 0; i < n; i++) want[i] = garbage_value(dt);
    }
    size_t es = hft_dtype_size(dt);
    /* `offset` elements in front: the device buffers start off the 16-byte vector alignment when odd */
    float *pad_x = calloc((size_t)(n + offset), sizeof(float)),
          *pad_y = calloc((size_t)(n + offset), sizeof(float));
    memcpy(pad_x + offset, x, sizeof(float) * (size_t)n);
    memcpy(pad_y + offset, want, sizeof(float) * (size_t)n);
    char *d_x = dev_upload_as(dt, pad_x, n + offset), *d_y = dev_upload_as(dt, pad_y, n + offset);
    hft_dropout_args a = {.samples = samples,
                          .per_sample = per,
                          .sample0 = sample0,
                          .key = {.seed = 0x123456789abcdef1ull, .step = 7, .micro_step = 3, .site = 5},
                          .p = p,
                          .x = x,
                          .y = want,
                          .accumulate = acc};
    cpu_k->dropout[HFT_F32](&a);
    host_round(dt, want, n);
    a.x = d_x + offset * (int64_t)es, a.y = d_y + offset * (int64_t)es;
    cuda_k->dropout[dt](&a);
    dev_sync("dropout");
    dev_download_as(dt, pad_y, d_y, n + offset);
    char what[128];
    snprintf(what, sizeof what, "dropout %s [%lld, %lld] sample0 %lld p %g acc %d offset %lld",
             hft_dtype_name(dt), (long long)samples, (long long)per, (long long)sample0, p, (int)acc,
             (long long)offset);
    same_f32(what, pad_y + offset, want, n);
    dev_free(d_x), dev_free(d_y);
    free(x), free(want), free(got), free(pad_x), free(pad_y);
}

TEST(test_dropout) {
    static const int64_t shapes[][2] = {{1, 1}, {3, 7}, {2, 64}, {5, 33}, {2, 257}, {1, 1030}, {3, 4100}};
    static const double ps[] = {0, 0.1, 0.5};
    test_rng r = {13};
    for (int di = 0; di < 3; di++)
        for (int s = 0; s < 7; s++)
            for (int pi = 0; pi < 3; pi++) {
                int64_t sample0 = (s + pi) % 3 == 0 ? 0 : (s % 2 ? 5 : 1000003);
                bool acc = (s + pi + di) % 2;
                check_dropout(dtypes[di], shapes[s][0], shapes[s][1], sample0, ps[pi], acc, 0, &r);
            }
    /* off the vector alignment, p = 1 (everything dropped), both forms */
    for (int di = 0; di < 3; di++) {
        check_dropout(dtypes[di], 3, 64, 2, 0.3, false, 1, &r);
        check_dropout(dtypes[di], 3, 64, 2, 0.3, true, 3, &r);
        check_dropout(dtypes[di], 2, 20, 9, 1.0, false, 0, &r);
    }
}

/* The mask alone, on a larger tensor: keep rate near 1 - p and equal to the CPU's mask (x = 1). */
TEST(test_dropout_mask_rate) {
    int64_t samples = 4, per = 4096, n = samples * per;
    float *ones = malloc(sizeof(float) * (size_t)n), *want = malloc(sizeof(float) * (size_t)n),
          *got = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) ones[i] = 1.0f;
    hft_dropout_args a = {.samples = samples,
                          .per_sample = per,
                          .sample0 = 17,
                          .key = {.seed = 42, .step = 1, .micro_step = 0, .site = 2},
                          .p = 0.25,
                          .x = ones,
                          .y = want};
    cpu_k->dropout[HFT_F32](&a);
    void *d_x = dev_upload(ones, sizeof(float) * (size_t)n), *d_y = dev_garbage(sizeof(float) * (size_t)n);
    a.x = d_x, a.y = d_y;
    cuda_k->dropout[HFT_F32](&a);
    dev_sync("dropout mask");
    dev_download(got, d_y, sizeof(float) * (size_t)n);
    same_f32("dropout mask", got, want, n);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; i++) kept += got[i] != 0;
    double rate = (double)kept / (double)n; /* binomial: sd = sqrt(0.75·0.25 / 16384) ≈ 0.0034 */
    CHECK(fabs(rate - 0.75) < 0.02, "keep rate %.4f, want about 0.75", rate);
    dev_free(d_x), dev_free(d_y);
    free(ones), free(want), free(got);
}

/* ---------------------------------------------------------------- rope */

typedef struct rope_case {
    int64_t B, T, H, D;
    bool strided; /* x a head slice of a packed [B, T, 3, H, D] projection; out with gaps between heads */
} rope_case;

static void check_rope(hft_dtype dt, rope_case c, double scaling, bool inverse, bool acc, test_rng *r) {
    int64_t B = c.B, T = c.T, H = c.H, D = c.D, half = D / 2;
    /* strides of x and out; x starts one head block in (the k slice of q, k, v), out has 2 spare per head */
    int64_t xsh = D, xst = c.strided ? 3 * H * D : H * D, xsb = T * xst + (c.strided ? 5 : 0);
    int64_t osh = c.strided ? D + 2 : D, ost = H * osh, osb = T * ost + (c.strided ? 3 : 0);
    int64_t x0 = c.strided ? H * D : 0;
    int64_t nx = x0 + B * xsb, no = B * osb;
    float *x = malloc(sizeof(float) * (size_t)nx), *init = malloc(sizeof(float) * (size_t)no),
          *want = malloc(sizeof(float) * (size_t)no), *got = malloc(sizeof(float) * (size_t)no);
    float *inv = malloc(sizeof(float) * (size_t)half);
    int64_t *pos = malloc(sizeof(int64_t) * (size_t)(B * T));
    fill_uniform(r, x, nx, -2, 2);
    host_round(dt, x, nx);
    if (acc) {
        fill_uniform(r, init, no, -1, 1);
        host_round(dt, init, no);
    } else {
        for (int64_t i = 0; i < no; i++) init[i] = garbage_value(dt);
    }
    memcpy(want, init, sizeof(float) * (size_t)no);
    for (int64_t i = 0; i < half; i++) inv[i] = (float)pow(10000.0, -2.0 * (double)i / (double)D);
    host_round(dt, inv, half);
    /* positions up to 128k: large angles, where an inaccurate sine would show */
    for (int64_t i = 0; i < B * T; i++) pos[i] = i % 3 == 0 ? (int64_t)test_uniform(r, 0, 131072) : i;
    hft_rope_args a = {.batch = B,
                       .seq = T,
                       .heads = H,
                       .dim = D,
                       .x = x + x0,
                       .x_stride_b = xsb,
                       .x_stride_t = xst,
                       .x_stride_h = xsh,
                       .pos = pos,
                       .inv_freq = inv,
                       .scaling = scaling,
                       .out = want,
                       .inverse = inverse,
                       .accumulate = acc,
                       .out_stride_b = osb,
                       .out_stride_t = ost,
                       .out_stride_h = osh};
    cpu_k->rope[HFT_F32](&a);
    size_t es = hft_dtype_size(dt);
    char *d_x = dev_upload_as(dt, x, nx);
    void *d_out = dev_upload_as(dt, init, no), *d_inv = dev_upload_as(dt, inv, half);
    void *d_pos = dev_upload(pos, sizeof(int64_t) * (size_t)(B * T));
    a.x = d_x + x0 * (int64_t)es, a.pos = d_pos, a.inv_freq = d_inv, a.out = d_out;
    cuda_k->rope[dt](&a);
    dev_sync("rope");
    dev_download_as(dt, got, d_out, no);
    /* Tolerance per element, in f32 unit roundoffs u = 2^-24 of S·(|x1| + |x2|), S = |scaling|: CUDA's
     * sincosf is within 2 ulp, the CPU's libm within 1, each side rounds cos·S and sin·S (1 each), and the
     * two products and their difference round on each side, either of which may fuse them into an FMA
     * (≤ 3): 8u in all. Accumulate adds one rounding of the sum (2u·|want|). bf16 / f16: the device rounds
     * its f32 value once to the dtype, eps(dt)·|value|. */
    double u = dtype_eps(HFT_F32), S = fabs(scaling), worst = 0;
    int64_t bad = -1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t i = 0; i < D; i++) {
                    const float *xh = x + x0 + b * xsb + t * xst + h * xsh;
                    int64_t o = b * osb + t * ost + h * osh + i;
                    double mag = fabs(xh[i % half]) + fabs(xh[half + i % half]);
                    double tol = 8 * u * S * mag + (acc ? 2 * u * fabs(want[o]) : 0) +
                                 (dt == HFT_F32 ? 0 : dtype_eps(dt) * fabs(want[o]) * (1 + 1e-3));
                    double err = fabs((double)got[o] - (double)want[o]);
                    if (!(err <= tol) && (bad < 0 || err - tol > worst)) worst = err - tol, bad = o;
                }
    char what[160];
    snprintf(what, sizeof what, "rope %s [%lld, %lld, %lld, %lld] strided %d scaling %g inverse %d acc %d",
             hft_dtype_name(dt), (long long)B, (long long)T, (long long)H, (long long)D, (int)c.strided,
             scaling, (int)inverse, (int)acc);
    CHECK(bad < 0, "%s: element %lld is %.9g, want %.9g", what, (long long)bad, bad < 0 ? 0 : got[bad],
          bad < 0 ? 0 : want[bad]);
    /* elements outside the view (gaps between heads and batches) are left alone: want keeps init there */
    int64_t touched_gap = -1;
    for (int64_t o = 0; o < no; o++) {
        int64_t b = o / osb, rem = o % osb, t = rem / ost, rh = rem % ost, i = rh % osh;
        bool in_view = t < T && i < D;
        if (!in_view && memcmp(&got[o], &init[o], 4) != 0) touched_gap = o;
        (void)b;
    }
    CHECK(touched_gap < 0, "%s: element %lld outside the view was written", what, (long long)touched_gap);
    dev_free(d_x), dev_free(d_out), dev_free(d_inv), dev_free(d_pos);
    free(x), free(init), free(want), free(got), free(inv), free(pos);
}

TEST(test_rope) {
    static const rope_case cases[] = {
        {1, 1, 1, 2, false}, {2, 3, 5, 8, true},   {1, 7, 3, 66, false},
        {2, 5, 4, 64, true}, {1, 3, 2, 128, true},
    };
    test_rng r = {14};
    for (int di = 0; di < 3; di++)
        for (int ci = 0; ci < 5; ci++)
            for (int mode = 0; mode < 4; mode++) {
                bool inverse = mode & 1, acc = mode & 2;
                double scaling = (ci + mode) % 2 ? 0.7 : 1.0;
                check_rope(dtypes[di], cases[ci], scaling, inverse, acc, &r);
            }
}

/* What the kernels do not support is reported at the next synchronize, not computed wrong. */
TEST(test_unsupported) {
    int64_t ids[2] = {0, 1};
    float w[4] = {1, 2, 3, 4};
    void *d_ids = dev_upload(ids, sizeof ids), *d_w = dev_upload(w, sizeof w), *d_out = dev_garbage(sizeof w);
    hft_embedding_args e = {
        .n = 2, .vocab = 2, .dim = 2, .id_dtype = HFT_U8, .ids = d_ids, .weight = d_w, .out = d_out};
    cuda_k->embedding_fwd[HFT_F32](&e);
    CHECK(cuda_k->dev->synchronize() != HFT_OK, "embedding with u8 ids accepted");
    CHECK(strstr(hft_error_message(), "ids") != NULL, "message: %s", hft_error_message());
    int64_t pos = 0;
    void *d_pos = dev_upload(&pos, sizeof pos);
    hft_rope_args r = {.batch = 1,
                       .seq = 1,
                       .heads = 1,
                       .dim = 3,
                       .x = d_w,
                       .x_stride_b = 3,
                       .x_stride_t = 3,
                       .x_stride_h = 3,
                       .pos = d_pos,
                       .inv_freq = d_w,
                       .scaling = 1,
                       .out = d_out,
                       .out_stride_b = 3,
                       .out_stride_t = 3,
                       .out_stride_h = 3};
    cuda_k->rope[HFT_F32](&r);
    CHECK(cuda_k->dev->synchronize() != HFT_OK, "rope with an odd head_dim accepted");
    hft_error_clear();
    dev_free(d_ids), dev_free(d_w), dev_free(d_out), dev_free(d_pos);
}

/* Every dtype the table promises is there; embedding backward is f32 only (a bf16 / f16 table is frozen). */
TEST(test_slots) {
    for (int di = 0; di < 3; di++) {
        hft_dtype dt = dtypes[di];
        CHECK(cuda_k->embedding_fwd[dt] && cuda_k->dropout[dt] && cuda_k->rope[dt], "%s slot missing",
              hft_dtype_name(dt));
    }
    CHECK(cuda_k->embedding_bwd[HFT_F32] != NULL, "embedding_bwd[f32] missing");
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_slots", test_slots},
        {"test_embedding_fwd", test_embedding_fwd},
        {"test_embedding_bwd", test_embedding_bwd},
        {"test_dropout", test_dropout},
        {"test_dropout_mask_rate", test_dropout_mask_rate},
        {"test_rope", test_rope},
        {"test_unsupported", test_unsupported},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
