/* Strided copies with dtype conversion, and adds into strided views: what contiguous(), casts,
 * concatenation and gradient accumulation into views are made of. */
#include "kernels/cpu/cpu_internal.h"

#include <string.h>

static double load_as_double(hft_dtype dt, const char *p) {
    switch (dt) {
    case HFT_F32:
        return *(const float *)p;
    case HFT_F64:
        return *(const double *)p;
    case HFT_BF16:
        return hft_bf16_to_f32(*(const uint16_t *)p);
    case HFT_F16:
        return hft_f16_to_f32(*(const uint16_t *)p);
    case HFT_I32:
        return *(const int32_t *)p;
    case HFT_I64:
        return (double)*(const int64_t *)p;
    case HFT_U8:
        return *(const uint8_t *)p;
    default:
        return 0;
    }
}

static void store_from_double(hft_dtype dt, char *p, double v) {
    switch (dt) {
    case HFT_F32:
        *(float *)p = (float)v;
        break;
    case HFT_F64:
        *(double *)p = v;
        break;
    case HFT_BF16:
        *(uint16_t *)p = hft_f32_to_bf16((float)v);
        break;
    case HFT_F16:
        *(uint16_t *)p = hft_f32_to_f16((float)v);
        break;
    case HFT_I32:
        *(int32_t *)p = (int32_t)v;
        break;
    case HFT_I64:
        *(int64_t *)p = (int64_t)v;
        break;
    case HFT_U8:
        *(uint8_t *)p = (uint8_t)v;
        break;
    default:
        break;
    }
}

/* One row of `n` elements; strides in elements of each side. */
static void copy_row(const hft_copy_args *a, char *dst, int64_t ds, const char *src, int64_t ss, int64_t n) {
    hft_dtype dt = a->dst_dtype, st = a->src_dtype;
    size_t des = hft_dtype_size(dt), ses = hft_dtype_size(st);
    if (a->accumulate) {
        if (dt == HFT_F32 && st == HFT_F32) {
            float *d = (float *)dst;
            const float *s = (const float *)src;
            if (ds == 1 && ss == 1)
                for (int64_t i = 0; i < n; i++) d[i] += s[i];
            else
                for (int64_t i = 0; i < n; i++) d[i * ds] += s[i * ss];
        } else if (dt == HFT_F64 && st == HFT_F64) {
            double *d = (double *)dst;
            const double *s = (const double *)src;
            for (int64_t i = 0; i < n; i++) d[i * ds] += s[i * ss];
        } else {
            for (int64_t i = 0; i < n; i++) {
                char *dp = dst + (size_t)(i * ds) * des;
                store_from_double(dt, dp,
                                  load_as_double(dt, dp) + load_as_double(st, src + (size_t)(i * ss) * ses));
            }
        }
        return;
    }
    if (dt == st) {
        if (ds == 1 && ss == 1) {
            memcpy(dst, src, (size_t)n * des);
            return;
        }
        switch (des) {
        case 1:
            for (int64_t i = 0; i < n; i++) dst[i * ds] = src[i * ss];
            return;
        case 2:
            for (int64_t i = 0; i < n; i++) ((uint16_t *)dst)[i * ds] = ((const uint16_t *)src)[i * ss];
            return;
        case 4:
            for (int64_t i = 0; i < n; i++) ((uint32_t *)dst)[i * ds] = ((const uint32_t *)src)[i * ss];
            return;
        default:
            for (int64_t i = 0; i < n; i++) ((uint64_t *)dst)[i * ds] = ((const uint64_t *)src)[i * ss];
            return;
        }
    }
    if (dt == HFT_BF16 && st == HFT_F32) {
        for (int64_t i = 0; i < n; i++)
            ((uint16_t *)dst)[i * ds] = hft_f32_to_bf16(((const float *)src)[i * ss]);
        return;
    }
    if (dt == HFT_F32 && st == HFT_BF16) {
        for (int64_t i = 0; i < n; i++)
            ((float *)dst)[i * ds] = hft_bf16_to_f32(((const uint16_t *)src)[i * ss]);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        store_from_double(dt, dst + (size_t)(i * ds) * des, load_as_double(st, src + (size_t)(i * ss) * ses));
}

typedef struct copy_job {
    const hft_copy_args *a;
    int nd;
    int64_t shape[HFT_MAX_DIMS], st[2][HFT_MAX_DIMS];
    size_t des, ses;
    int64_t chunk;
} copy_job;

/* One long row cut into chunks: tasks [t0, t1). */
static void copy_chunks(int64_t t0, int64_t t1, void *p) {
    const copy_job *j = p;
    int64_t inner = j->shape[0];
    for (int64_t t = t0; t < t1; t++) {
        int64_t i0 = t * j->chunk, m = inner - i0 < j->chunk ? inner - i0 : j->chunk;
        copy_row(j->a, (char *)j->a->dst.data + (size_t)(i0 * j->st[0][0]) * j->des, j->st[0][0],
                 (const char *)j->a->src.data + (size_t)(i0 * j->st[1][0]) * j->ses, j->st[1][0], m);
    }
}

static void copy_rows(int64_t r0, int64_t r1, void *p) {
    const copy_job *j = p;
    int nd = j->nd;
    for (int64_t r = r0; r < r1; r++) {
        int64_t doff = 0, soff = 0, rem = r;
        for (int d = nd - 2; d >= 0; d--) {
            int64_t i = rem % j->shape[d];
            rem /= j->shape[d];
            doff += i * j->st[0][d];
            soff += i * j->st[1][d];
        }
        copy_row(j->a, (char *)j->a->dst.data + (size_t)doff * j->des, j->st[0][nd - 1],
                 (const char *)j->a->src.data + (size_t)soff * j->ses, j->st[1][nd - 1], j->shape[nd - 1]);
    }
}

void KFN(cpu_copy)(const hft_copy_args *a) {
    copy_job j = {
        .a = a, .des = hft_dtype_size(a->dst_dtype), .ses = hft_dtype_size(a->src_dtype), .chunk = 65536};
    const hft_kview *views[2] = {&a->dst, &a->src};
    cpu_coalesce(2, views, &j.nd, j.shape, j.st);
    int64_t inner = j.shape[j.nd - 1], rows = 1;
    for (int d = 0; d < j.nd - 1; d++) rows *= j.shape[d];
    if (rows == 1) {
        int64_t tasks = (inner + j.chunk - 1) / j.chunk;
        hft_parallel_range(tasks, tasks > 1, copy_chunks, &j);
        return;
    }
    hft_parallel_range(rows, rows * inner > 65536, copy_rows, &j);
}
