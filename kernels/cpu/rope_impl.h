/* RoPE kernel for one dtype (included by rope.c with T and SFX defined). As transformers'
 * apply_rotary_pos_emb: θ_i = float(pos)·inv_freq[i] in T, cos and sin of θ repeated over both halves
 * and scaled by attention_scaling, out = x·cos + rotate_half(x)·sin with rotate_half(x) = cat(-x2, x1). */

#define RP_CHUNK 64 /* angle pairs held at once; D/2 is usually 32 or 64 */

static void FN(rp_angles)(const T *restrict inv_freq, int64_t pos, T scaling, int64_t i0, int64_t m,
                          T *restrict cs, T *restrict sn) {
    for (int64_t i = 0; i < m; i++) {
        T th = (T)pos * inv_freq[i0 + i];
#if defined(T_IS_F32)
        float s, c;
        sincosf(th, &s, &c);
#else
        double s, c;
        sincos(th, &s, &c);
#endif
        cs[i] = c * scaling;
        sn[i] = s * scaling;
    }
}

/* One head's slice [i0, i0 + m) of both halves. Forward: o1 = x1 c - x2 s, o2 = x2 c + x1 s; inverse
 * (the transpose): o1 = x1 c + x2 s, o2 = x2 c - x1 s. */
static void FN(rp_apply)(const T *restrict x1, const T *restrict x2, T *restrict o1, T *restrict o2,
                         const T *restrict cs, const T *restrict sn, int64_t m, bool inverse, bool acc) {
    if (!inverse && !acc) {
        for (int64_t i = 0; i < m; i++) {
            T a = x1[i], b = x2[i];
            o1[i] = a * cs[i] - b * sn[i];
            o2[i] = b * cs[i] + a * sn[i];
        }
    } else if (!inverse) {
        for (int64_t i = 0; i < m; i++) {
            T a = x1[i], b = x2[i];
            o1[i] += a * cs[i] - b * sn[i];
            o2[i] += b * cs[i] + a * sn[i];
        }
    } else if (!acc) {
        for (int64_t i = 0; i < m; i++) {
            T a = x1[i], b = x2[i];
            o1[i] = a * cs[i] + b * sn[i];
            o2[i] = b * cs[i] - a * sn[i];
        }
    } else {
        for (int64_t i = 0; i < m; i++) {
            T a = x1[i], b = x2[i];
            o1[i] += a * cs[i] + b * sn[i];
            o2[i] += b * cs[i] - a * sn[i];
        }
    }
}

/* Positions [p0, p1) of the flattened (batch, time): cos/sin once per position, applied to every head. */
static void FN(rope_positions)(int64_t p0, int64_t p1, void *job) {
    const hft_rope_args *a = job;
    int64_t S = a->seq, H = a->heads, half = a->dim / 2;
    const T *x = (const T *)a->x, *inv_freq = (const T *)a->inv_freq;
    T *out = (T *)a->out;
    T scaling = (T)a->scaling;
    for (int64_t bt = p0; bt < p1; bt++) {
        int64_t b = bt / S, t = bt % S;
        const T *xbt = x + b * a->x_stride_b + t * a->x_stride_t;
        T *obt = out + b * a->out_stride_b + t * a->out_stride_t;
        T cs[RP_CHUNK], sn[RP_CHUNK];
        for (int64_t i0 = 0; i0 < half; i0 += RP_CHUNK) {
            int64_t m = half - i0 < RP_CHUNK ? half - i0 : RP_CHUNK;
            FN(rp_angles)(inv_freq, a->pos[bt], scaling, i0, m, cs, sn);
            for (int64_t h = 0; h < H; h++) {
                const T *xh = xbt + h * a->x_stride_h;
                T *oh = obt + h * a->out_stride_h;
                FN(rp_apply)
                (xh + i0, xh + half + i0, oh + i0, oh + half + i0, cs, sn, m, a->inverse, a->accumulate);
            }
        }
    }
}

static void FN(rope)(const hft_rope_args *a) {
    int64_t n = a->batch * a->seq;
    hft_parallel_range(n, n * a->heads * a->dim > 32768, FN(rope_positions), (void *)a);
}

#undef RP_CHUNK
