/* The CUDA fused attention against the CPU's f32 op (cpu_k->attn_fwd / attn_bwd[HFT_F32]): causal and not,
 * Tq == Tk and Tq < Tk (decode-like Tq = 1), GQA and MQA, padded keys, packed sequences (segment ids), rows
 * with no visible key, dropout (the same mask as the CPU), head dims 5, 16, 24, 64, 65 and 128, q/k/v as
 * views into a fused qkv buffer or head-major, gradients into padded or fused buffers, accumulate, and each
 * gradient on its own, no keys at all, arguments refused; bf16 and f16 on inputs rounded to the dtype; every
 * result the same bits run to run.
 *
 * Every case runs the CUDA forward and compares o and lse with the CPU's; then both backwards run on the
 * same inputs, the CUDA forward's o and lse included (so the only differences are f32 rounding and, for
 * bf16/f16, the final rounding of each gradient), and dq, dk, dv are compared. Elements of an output buffer
 * outside the views must keep their bytes, and none inside may keep the 0xA5 garbage it was allocated with
 * where the reference is 0 (as a value, 0xA5A5A5A5 is -2.9e-16, within any tolerance of the zeros that a row
 * with no visible key gets).
 *
 * Tolerances (each relative to the largest |reference| of the array, and to each element's own magnitude).
 * Both sides compute in f32. An output passes through n = D + Tk roundings (the D-term dot product of its
 * scores, the Tk-term sums of the normaliser and of P·V), so each side is within n·u32 (Higham's γ_n) of the
 * exact value times the magnitudes summed, which are of the output's scale (p <= 1, Σp = 1, |v| <= 1) except
 * the scores: exp turns a score's absolute error into a relative error of p, so their magnitude, a few units
 * here (q, k in [-2, 2], scale 1/√D: s has standard deviation 4/3), multiplies its share. Two sides × a
 * factor 4 for the scores: 8·(D + Tk)·u32 for o and lse. The backward adds the D-term dO·Vᵀ and rowsum
 * (dO∘O), and its sums run over every key (dQ) or every query of every head of the group (dK, dV):
 * 8·(D + Tk + rep·Tq)·u32. (Observed errors are 1-3% of these: rounding errors of random sign cancel.)
 * bf16/f16 outputs are rounded once more, on the GPU side only: + 1·u_dt relative, since dtype_eps is the
 * unit roundoff and rounding to nearest stays within it. lse is f32 for every dtype, so it keeps the f32
 * tolerance. */
#include "tests/cuda_test_util.h"

#include <math.h>

static const double u32 = 1.0 / 16777216;

enum { SEPARATE = 0, HEAD_MAJOR, FUSED };           /* how q, k, v (and dq, dk, dv) lie in their buffer */
enum { G_DQ = 1, G_DK = 2, G_DV = 4, G_ALL = 7 };   /* the gradients asked for */
enum { M_NONE = 0, M_PAD, M_SEGMENTS, M_DEAD_ROW }; /* masking beyond causal */

typedef struct acase {
    const char *name;
    int64_t B, Tq, Tk, Hq, Hkv, D;
    bool causal;
    int mask;
    double dropout;
    int in_layout, grad_layout;
    int grads;
    bool accumulate;
} acase;

/* A [B, T, H, D] view inside a buffer: element (b, t, h, d) at off + b·sb + t·st + h·sh + d. */
typedef struct view {
    int64_t off, sb, st, sh;
} view;

/* The three views (q-shaped, k-shaped, v-shaped) of one buffer in a layout, and the buffer's size. A padded
 * SEPARATE layout (pad > 0) leaves gaps between heads and batch rows. */
static int64_t layout3(const acase *c, int layout, int64_t pad, view v[3]) {
    const int64_t D = c->D;
    if (layout == FUSED) { /* [B, T, Hq + 2 Hkv, D], T = Tq = Tk */
        int64_t st = (c->Hq + 2 * c->Hkv) * D;
        for (int i = 0; i < 3; i++) v[i].sb = c->Tq * st, v[i].st = st, v[i].sh = D;
        v[0].off = 0, v[1].off = c->Hq * D, v[2].off = (c->Hq + c->Hkv) * D;
        return c->B * c->Tq * st;
    }
    int64_t T[3] = {c->Tq, c->Tk, c->Tk}, H[3] = {c->Hq, c->Hkv, c->Hkv}, off = 0;
    for (int i = 0; i < 3; i++) {
        if (layout == HEAD_MAJOR) /* [B, H, T, D] */
            v[i].sh = T[i] * D, v[i].st = D, v[i].sb = H[i] * T[i] * D;
        else
            v[i].sh = D + pad, v[i].st = H[i] * (D + pad), v[i].sb = T[i] * H[i] * (D + pad) + pad;
        v[i].off = off;
        off += c->B * v[i].sb + pad;
    }
    return off;
}

/* Marks the elements of view v ([B, T, H, D]) in sel with `tag`. */
static void mark(uint8_t *sel, view v, int64_t B, int64_t T, int64_t H, int64_t D, uint8_t tag) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++)
                for (int64_t d = 0; d < D; d++) sel[v.off + b * v.sb + t * v.st + h * v.sh + d] = tag;
}

/* got against want over the elements with sel[i] == tag: exact where want is ±inf, else within
 * atol_scale·max|want| + rtol·|want|. Returns whether all passed (a failure is counted and printed). */
static int compare(const char *what, const float *got, const float *want, const uint8_t *sel, uint8_t tag,
                   int64_t n, double rtol, double atol_scale) {
    double ref = 0;
    for (int64_t i = 0; i < n; i++)
        if ((!sel || sel[i] == tag) && isfinite(want[i]) && fabs(want[i]) > ref) ref = fabs(want[i]);
    int64_t bad = 0, worst = -1;
    double worst_excess = -1;
    for (int64_t i = 0; i < n; i++) {
        if (sel && sel[i] != tag) continue;
        double excess;
        if (!isfinite(want[i]))
            excess = got[i] == want[i] ? -1 : INFINITY;
        else
            excess = fabs((double)got[i] - want[i]) - (atol_scale * ref + rtol * fabs(want[i]));
        if (!(excess <= 0)) bad++;
        if (!(excess <= worst_excess)) worst_excess = excess, worst = i;
    }
    if (bad) {
        test_failures++;
        fprintf(stderr,
                "[%s] %s: %lld values beyond rtol %g, atol %g x max|ref| %g; worst at %lld: got %.9g, want "
                "%.9g\n",
                test_current, what, (long long)bad, rtol, atol_scale, ref, (long long)worst, got[worst],
                want[worst]);
    }
    return bad == 0;
}

/* How many of the n elements (es bytes each) with sel[i] == tag (all when sel is NULL) still hold the
 * 0xA5 bytes of dev_garbage where the reference is 0: the one place the value comparison cannot tell an
 * unwritten element (elsewhere 0xA5A5 as f16, -0.022, fails it, and as f32 or bf16, -2.9e-16, would need a
 * reference that small; a legitimate f16 result can have those bytes). */
static int64_t unwritten(const void *bytes, size_t es, const float *want, const uint8_t *sel, uint8_t tag,
                         int64_t n) {
    static const unsigned char garbage[4] = {0xA5, 0xA5, 0xA5, 0xA5};
    int64_t k = 0;
    for (int64_t i = 0; i < n; i++)
        if ((!sel || sel[i] == tag) && want[i] == 0 &&
            memcmp((const char *)bytes + (size_t)i * es, garbage, es) == 0)
            k++;
    return k;
}

static void *xmalloc(size_t n) {
    void *p = calloc(n ? n : 1, 1);
    if (!p) abort();
    return p;
}

/* Whether two device buffers hold the same bytes. */
static bool same_bytes(const void *a, const void *b, size_t n) {
    char *ha = xmalloc(n), *hb = xmalloc(n);
    dev_download(ha, a, n);
    dev_download(hb, b, n);
    bool same = memcmp(ha, hb, n) == 0;
    free(ha), free(hb);
    return same;
}

/* A dtype's bytes of an f32 array (malloc'd). */
static void *raw_of(hft_dtype dt, const float *x, int64_t n) {
    void *r = xmalloc((size_t)n * hft_dtype_size(dt));
    if (dt == HFT_F32)
        memcpy(r, x, (size_t)n * 4);
    else
        host_to_half(dt, r, x, n);
    return r;
}

/* The masks of a case: key_mask [B, Tk], segment ids [B, Tq] / [B, Tk] (NULL where unused). */
typedef struct masks {
    uint8_t *key_mask;
    int32_t *qseg, *kseg;
} masks;

static masks make_masks(const acase *c) {
    masks m = {0};
    if (c->mask == M_PAD || c->mask == M_DEAD_ROW) {
        m.key_mask = xmalloc((size_t)(c->B * c->Tk));
        for (int64_t b = 0; b < c->B; b++)
            for (int64_t j = 0; j < c->Tk; j++) {
                /* batch row 0: the last 5 keys are padding; row 1: two left-padded keys and a hole; with
                 * M_DEAD_ROW, batch row 1 has no key at all (every query row of it sees nothing) */
                bool pad = b == 0 ? j >= c->Tk - 5 : (j < 2 || j == c->Tk / 2);
                if (c->mask == M_DEAD_ROW && b == 1) pad = true;
                m.key_mask[b * c->Tk + j] = pad ? 0 : 1;
            }
    }
    if (c->mask == M_SEGMENTS) { /* packed sequences of lengths 7, 13, 1, 20, ... */
        static const int lens[] = {7, 13, 1, 20, 9, 30};
        m.qseg = xmalloc(sizeof(int32_t) * (size_t)(c->B * c->Tq));
        m.kseg = xmalloc(sizeof(int32_t) * (size_t)(c->B * c->Tk));
        for (int64_t b = 0; b < c->B; b++) {
            int seg = 0, left = lens[b % 6];
            for (int64_t t = 0; t < c->Tk; t++) {
                if (left-- == 0) seg++, left = lens[(seg + b) % 6] - 1;
                m.kseg[b * c->Tk + t] = seg + 100 * (int)b;
            }
            /* queries are the last Tq positions of the keys (bottom-right aligned) */
            for (int64_t t = 0; t < c->Tq; t++)
                m.qseg[b * c->Tq + t] = m.kseg[b * c->Tk + (c->Tk - c->Tq) + t];
        }
    }
    return m;
}

static void free_masks(masks *m) {
    free(m->key_mask), free(m->qseg), free(m->kseg);
}

static void fill_args(hft_attn_args *a, const acase *c, const masks *mk, const view in[3]) {
    memset(a, 0, sizeof *a);
    a->batch = c->B, a->tq = c->Tq, a->tk = c->Tk, a->hq = c->Hq, a->hkv = c->Hkv, a->dim = c->D;
    a->scale = 1.0 / sqrt((double)c->D);
    a->causal = c->causal;
    a->key_mask = mk->key_mask;
    a->q_segments = mk->qseg, a->k_segments = mk->kseg;
    a->dropout_p = c->dropout;
    a->dropout_key = (hft_rng_key){.seed = 0x123456789abcdefull, .step = 7, .micro_step = 3, .site = 11};
    a->sample0 = 5;
    a->q_sb = in[0].sb, a->q_st = in[0].st, a->q_sh = in[0].sh;
    a->k_sb = in[1].sb, a->k_st = in[1].st, a->k_sh = in[1].sh;
    a->v_sb = in[2].sb, a->v_st = in[2].st, a->v_sh = in[2].sh;
}

static void set_grad_views(hft_attn_args *a, const view g[3]) {
    a->dq_sb = g[0].sb, a->dq_st = g[0].st, a->dq_sh = g[0].sh;
    a->dk_sb = g[1].sb, a->dk_st = g[1].st, a->dk_sh = g[1].sh;
    a->dv_sb = g[2].sb, a->dv_st = g[2].st, a->dv_sh = g[2].sh;
}

/* Copies the masks to the device (the kernels read them there). */
static masks upload_masks(const acase *c, const masks *m) {
    masks d = {0};
    if (m->key_mask) d.key_mask = dev_upload(m->key_mask, (size_t)(c->B * c->Tk));
    if (m->qseg) d.qseg = dev_upload(m->qseg, sizeof(int32_t) * (size_t)(c->B * c->Tq));
    if (m->kseg) d.kseg = dev_upload(m->kseg, sizeof(int32_t) * (size_t)(c->B * c->Tk));
    return d;
}

static void free_dev_masks(masks *m) {
    if (m->key_mask) dev_free(m->key_mask);
    if (m->qseg) dev_free(m->qseg);
    if (m->kseg) dev_free(m->kseg);
}

static void run_case(const acase *c, hft_dtype dt) {
    char what[160];
    const size_t es = hft_dtype_size(dt);
    const int64_t D = c->D, nO = c->B * c->Tq * c->Hq * D, nL = c->B * c->Hq * c->Tq;
    const int64_t rep = c->Hq / c->Hkv;
    const double tol_f = 8.0 * (double)(D + c->Tk) * u32,
                 tol_b = 8.0 * (double)(D + c->Tk + rep * c->Tq) * u32;
    const double u_dt = dt == HFT_F32 ? 0 : dtype_eps(dt);
    test_rng rng = {0x5eed0000ull + (unsigned long long)(c->D * 131 + c->Tq * 7 + c->Tk)};

    /* inputs: q, k in [-2, 2] (scores of a few units, so the softmax is far from flat), v in [-1, 1] */
    view in[3];
    const int64_t n_in = layout3(c, c->in_layout, 3, in);
    float *x = xmalloc(sizeof(float) * (size_t)n_in);
    fill_uniform(&rng, x, n_in, -2, 2);
    for (int64_t b = 0; b < c->B; b++) /* v values in [-1, 1] */
        for (int64_t t = 0; t < c->Tk; t++)
            for (int64_t h = 0; h < c->Hkv; h++)
                for (int64_t d = 0; d < D; d++)
                    x[in[2].off + b * in[2].sb + t * in[2].st + h * in[2].sh + d] *= 0.5f;
    host_round(dt, x, n_in);
    masks mk = make_masks(c), dmk = upload_masks(c, &mk);

    /* the CPU forward */
    hft_attn_args ca, ga;
    fill_args(&ca, c, &mk, in);
    ca.q = x + in[0].off, ca.k = x + in[1].off, ca.v = x + in[2].off;
    float *o_cpu = xmalloc(sizeof(float) * (size_t)nO), *lse_cpu = xmalloc(sizeof(float) * (size_t)nL);
    ca.o = o_cpu, ca.lse = lse_cpu;
    void *cscr = xmalloc(cpu_k->attn_scratch_bytes(&ca, 4, true));
    ca.scratch = cscr;
    cpu_k->attn_fwd[HFT_F32](&ca);

    /* the CUDA forward */
    char *dx = dev_upload_as(dt, x, n_in);
    fill_args(&ga, c, &dmk, in);
    ga.q = dx + in[0].off * es, ga.k = dx + in[1].off * es, ga.v = dx + in[2].off * es;
    void *d_o = dev_garbage((size_t)nO * es), *d_lse = dev_garbage((size_t)nL * 4);
    ga.o = d_o, ga.lse = d_lse;
    cuda_k->attn_fwd[dt](&ga);
    dev_sync("attn_fwd");
    float *o_gpu = xmalloc(sizeof(float) * (size_t)nO), *lse_gpu = xmalloc(sizeof(float) * (size_t)nL);
    void *o_bytes = xmalloc((size_t)nO * es);
    dev_download(o_bytes, d_o, (size_t)nO * es);
    if (dt == HFT_F32)
        memcpy(o_gpu, o_bytes, (size_t)nO * 4);
    else
        host_from_half(dt, o_gpu, o_bytes, nO);
    dev_download(lse_gpu, d_lse, (size_t)nL * 4);
    CHECK(unwritten(o_bytes, es, o_cpu, NULL, 0, nO) == 0, "%s %s: o has unwritten elements", c->name,
          hft_dtype_name(dt));
    CHECK(unwritten(lse_gpu, 4, lse_cpu, NULL, 0, nL) == 0, "%s %s: lse has unwritten elements", c->name,
          hft_dtype_name(dt));
    free(o_bytes);
    snprintf(what, sizeof what, "%s %s o", c->name, hft_dtype_name(dt));
    compare(what, o_gpu, o_cpu, NULL, 0, nO, tol_f + u_dt, tol_f);
    snprintf(what, sizeof what, "%s %s lse", c->name, hft_dtype_name(dt));
    compare(what, lse_gpu, lse_cpu, NULL, 0, nL, tol_f, tol_f);

    /* the backward, both sides from the CUDA forward's o and lse */
    float *dout = xmalloc(sizeof(float) * (size_t)nO);
    fill_uniform(&rng, dout, nO, -1, 1);
    host_round(dt, dout, nO);
    view gv[3];
    const int64_t n_g = layout3(c, c->grad_layout, 2, gv);
    uint8_t *sel = xmalloc((size_t)n_g); /* 1, 2, 3: the element belongs to dq, dk, dv; 0: a gap */
    mark(sel, gv[0], c->B, c->Tq, c->Hq, D, 1);
    mark(sel, gv[1], c->B, c->Tk, c->Hkv, D, 2);
    mark(sel, gv[2], c->B, c->Tk, c->Hkv, D, 3);
    float *g_init = xmalloc(sizeof(float) * (size_t)n_g), *g_cpu = xmalloc(sizeof(float) * (size_t)n_g);
    fill_uniform(&rng, g_init, n_g, -1, 1);
    host_round(dt, g_init, n_g);
    memcpy(g_cpu, g_init, sizeof(float) * (size_t)n_g);
    void *g_bytes0; /* the CUDA buffer's bytes before the backward */
    char *dg;
    if (c->accumulate) {
        g_bytes0 = raw_of(dt, g_init, n_g);
        dg = dev_upload(g_bytes0, (size_t)n_g * es);
    } else {
        g_bytes0 = xmalloc((size_t)n_g * es);
        memset(g_bytes0, 0xA5, (size_t)n_g * es);
        dg = dev_garbage((size_t)n_g * es);
    }

    ca.o = o_gpu, ca.lse = lse_gpu, ca.dout = dout;
    set_grad_views(&ca, gv);
    ca.dq = c->grads & G_DQ ? g_cpu + gv[0].off : NULL;
    ca.dk = c->grads & G_DK ? g_cpu + gv[1].off : NULL;
    ca.dv = c->grads & G_DV ? g_cpu + gv[2].off : NULL;
    ca.accumulate_dq = ca.accumulate_dk = ca.accumulate_dv = c->accumulate;
    cpu_k->attn_bwd[HFT_F32](&ca);

    void *d_dout = dev_upload_as(dt, dout, nO);
    set_grad_views(&ga, gv);
    ga.dout = d_dout;
    ga.dq = c->grads & G_DQ ? dg + gv[0].off * es : NULL;
    ga.dk = c->grads & G_DK ? dg + gv[1].off * es : NULL;
    ga.dv = c->grads & G_DV ? dg + gv[2].off * es : NULL;
    ga.accumulate_dq = ga.accumulate_dk = ga.accumulate_dv = c->accumulate;
    void *d_scr = dev_garbage(cuda_k->attn_scratch_bytes(&ga, es, true) + 1);
    ga.scratch = d_scr;
    cuda_k->attn_bwd[dt](&ga);
    dev_sync("attn_bwd");

    char *g_bytes = xmalloc((size_t)n_g * es);
    dev_download(g_bytes, dg, (size_t)n_g * es);
    float *g_gpu = xmalloc(sizeof(float) * (size_t)n_g);
    if (dt == HFT_F32)
        memcpy(g_gpu, g_bytes, (size_t)n_g * 4);
    else
        host_from_half(dt, g_gpu, (const uint16_t *)g_bytes, n_g);
    int64_t touched = 0;
    for (int64_t i = 0; i < n_g; i++) {
        int wanted = (sel[i] == 1 && (c->grads & G_DQ)) || (sel[i] == 2 && (c->grads & G_DK)) ||
                     (sel[i] == 3 && (c->grads & G_DV));
        if (!wanted) touched += memcmp(g_bytes + (size_t)i * es, (char *)g_bytes0 + (size_t)i * es, es) != 0;
    }
    CHECK(touched == 0, "%s %s: %lld elements outside the wanted gradients changed", c->name,
          hft_dtype_name(dt), (long long)touched);
    static const char *names[3] = {"dq", "dk", "dv"};
    for (int gi = 0; gi < 3; gi++) {
        if (!(c->grads & (1 << gi))) continue;
        snprintf(what, sizeof what, "%s %s %s", c->name, hft_dtype_name(dt), names[gi]);
        if (!c->accumulate)
            CHECK(unwritten(g_bytes, es, g_cpu, sel, (uint8_t)(gi + 1), n_g) == 0, "%s: unwritten elements",
                  what);
        compare(what, g_gpu, g_cpu, sel, (uint8_t)(gi + 1), n_g, tol_b + u_dt, tol_b);
    }

    /* run to run: the same bits (no atomics, every sum in a fixed order) */
    void *o2 = dev_garbage((size_t)nO * es), *lse2 = dev_garbage((size_t)nL * 4);
    void *g2 = dev_upload(g_bytes0, (size_t)n_g * es);
    ga.o = o2, ga.lse = lse2;
    cuda_k->attn_fwd[dt](&ga);
    ga.o = d_o, ga.lse = d_lse; /* the backward again from the first forward's outputs */
    ga.dq = ga.dq ? (char *)g2 + gv[0].off * es : NULL;
    ga.dk = ga.dk ? (char *)g2 + gv[1].off * es : NULL;
    ga.dv = ga.dv ? (char *)g2 + gv[2].off * es : NULL;
    cuda_k->attn_bwd[dt](&ga);
    dev_sync("attn again");
    CHECK(same_bytes(o2, d_o, (size_t)nO * es) && same_bytes(lse2, d_lse, (size_t)nL * 4),
          "%s %s: forward differs run to run", c->name, hft_dtype_name(dt));
    CHECK(same_bytes(g2, dg, (size_t)n_g * es), "%s %s: backward differs run to run", c->name,
          hft_dtype_name(dt));
    dev_free(o2), dev_free(lse2), dev_free(g2);

    dev_free(dx), dev_free(d_o), dev_free(d_lse), dev_free(d_dout), dev_free(dg), dev_free(d_scr);
    free_dev_masks(&dmk);
    free_masks(&mk);
    free(x), free(o_cpu), free(lse_cpu), free(cscr), free(o_gpu), free(lse_gpu), free(dout), free(sel);
    free(g_init), free(g_cpu), free(g_bytes0), free(g_bytes), free(g_gpu);
}

static void run_cases(const acase *cases, int n, hft_dtype dt) {
    for (int i = 0; i < n; i++) run_case(&cases[i], dt);
}

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

/* name, B, Tq, Tk, Hq, Hkv, D, causal, mask, dropout, in_layout, grad_layout, grads, accumulate */
TEST(test_attention_plain) {
    const acase cases[] = {
        {"full", 2, 33, 33, 2, 2, 16, false, M_NONE, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"causal two tiles", 1, 70, 70, 2, 2, 24, true, M_NONE, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"decode", 2, 1, 37, 4, 2, 64, true, M_NONE, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"prefix causal", 2, 20, 45, 4, 1, 24, true, M_NONE, 0, HEAD_MAJOR, SEPARATE, G_ALL, false},
    };
    run_cases(cases, N_OF(cases), HFT_F32);
}

TEST(test_attention_masks) {
    const acase cases[] = {
        {"padded keys gqa", 2, 40, 40, 4, 2, 16, false, M_PAD, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"padded keys causal mqa", 2, 30, 45, 4, 1, 24, true, M_PAD, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"segments", 2, 50, 50, 2, 2, 16, true, M_SEGMENTS, 0, SEPARATE, SEPARATE, G_ALL, false},
        /* the queries continue the keys' last segments; k_segments differ from q_segments */
        {"segments prefix", 2, 20, 45, 2, 1, 16, true, M_SEGMENTS, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"dead rows", 2, 21, 21, 2, 1, 16, true, M_DEAD_ROW, 0, SEPARATE, SEPARATE, G_ALL, false},
        /* Tq > Tk, causal: the first Tq - Tk query rows see no key */
        {"more queries than keys", 1, 30, 20, 2, 2, 16, true, M_NONE, 0, SEPARATE, SEPARATE, G_ALL, false},
    };
    run_cases(cases, N_OF(cases), HFT_F32);
}

TEST(test_attention_dropout) {
    const acase cases[] = {
        {"dropout causal gqa", 2, 37, 37, 4, 2, 16, true, M_NONE, 0.1, SEPARATE, SEPARATE, G_ALL, false},
        {"dropout padded decode", 2, 3, 45, 2, 1, 24, true, M_PAD, 0.1, SEPARATE, SEPARATE, G_ALL, true},
    };
    run_cases(cases, N_OF(cases), HFT_F32);
}

TEST(test_attention_layouts) {
    const acase cases[] = {
        {"fused qkv", 2, 21, 21, 2, 2, 16, true, M_NONE, 0, FUSED, FUSED, G_ALL, false},
        {"fused gqa accumulate", 1, 25, 25, 4, 2, 24, false, M_PAD, 0, FUSED, FUSED, G_ALL, true},
        {"dq only", 1, 30, 30, 2, 1, 16, true, M_NONE, 0, SEPARATE, FUSED, G_DQ, false},
        {"dk dv only", 1, 30, 30, 2, 1, 16, true, M_NONE, 0, SEPARATE, FUSED, G_DK | G_DV, true},
        {"dv only", 1, 18, 18, 2, 2, 16, false, M_NONE, 0.1, SEPARATE, SEPARATE, G_DV, false},
    };
    run_cases(cases, N_OF(cases), HFT_F32);
}

TEST(test_attention_head_dims) {
    const acase cases[] = {
        {"d64 causal", 1, 66, 66, 2, 1, 64, true, M_PAD, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"d128", 1, 40, 40, 2, 2, 128, true, M_NONE, 0.1, SEPARATE, SEPARATE, G_ALL, false},
        {"d odd", 1, 9, 13, 2, 2, 5, false, M_NONE, 0, SEPARATE, SEPARATE, G_ALL, false},
        {"d 65", 1, 9, 13, 1, 1, 65, true, M_NONE, 0, SEPARATE, SEPARATE, G_ALL, false},
    };
    run_cases(cases, N_OF(cases), HFT_F32);
}

/* No keys at all: every row outputs zeros with lse -inf, and dq is zero. */
TEST(test_attention_no_keys) {
    const acase cases[] = {
        {"no keys", 1, 5, 0, 2, 1, 16, false, M_NONE, 0, SEPARATE, SEPARATE, G_ALL, false},
    };
    run_cases(cases, N_OF(cases), HFT_F32);
}

/* What the kernels do not take is refused (reported by the next synchronize), never computed wrong. */
TEST(test_attention_refuses) {
    float *buf = dev_zeros(4096);
    hft_attn_args a = {.batch = 1, .tq = 2, .tk = 2, .hq = 1, .hkv = 1, .dim = 130, .scale = 1};
    a.q = a.k = a.v = buf, a.o = buf, a.lse = buf;
    a.q_st = a.k_st = a.v_st = 130;
    cuda_k->attn_fwd[HFT_F32](&a);
    CHECK(cuda_k->dev->synchronize() == HFT_EUNSUPPORTED, "head dim 130 accepted: %s", hft_error_message());
    CHECK(strstr(hft_error_message(), "head dim") != NULL, "message: %s", hft_error_message());
    a.dim = 8, a.hq = 3, a.hkv = 2;
    cuda_k->attn_fwd[HFT_F32](&a);
    CHECK(cuda_k->dev->synchronize() == HFT_EINVAL, "hq 3 over hkv 2 accepted: %s", hft_error_message());
    dev_free(buf);
}

/* bf16 and f16: masks, dropout, GQA and a fused layout in one go, at D 64 and 128. */
TEST(test_attention_low_precision) {
    const acase cases[] = {
        {"low gqa dropout", 2, 35, 35, 4, 2, 64, true, M_PAD, 0.1, FUSED, SEPARATE, G_ALL, true},
        {"low d128 segments", 1, 33, 33, 2, 1, 128, true, M_SEGMENTS, 0, SEPARATE, FUSED, G_ALL, false},
        {"low two tiles", 2, 70, 70, 2, 2, 16, true, M_DEAD_ROW, 0, HEAD_MAJOR, SEPARATE, G_DQ | G_DV, false},
    };
    run_cases(cases, N_OF(cases), HFT_BF16);
    run_cases(cases, N_OF(cases), HFT_F16);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_attention_plain", test_attention_plain},
        {"test_attention_masks", test_attention_masks},
        {"test_attention_dropout", test_attention_dropout},
        {"test_attention_layouts", test_attention_layouts},
        {"test_attention_head_dims", test_attention_head_dims},
        {"test_attention_no_keys", test_attention_no_keys},
        {"test_attention_refuses", test_attention_refuses},
        {"test_attention_low_precision", test_attention_low_precision},
    };
    return cuda_test_main(argc, argv, cases, N_OF(cases));
}
