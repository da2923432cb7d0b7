/* Optimizer steps on the CPU (Adam/AdamW, SGD, Lion, Adafactor) and the ordered sum of squares behind
 * gradient norms, for f32 and f64. The element-wise optimizers make one fused pass over the flat buffers,
 * split into fixed ranges over the threads, so the result never depends on the thread count. */
#include <math.h>

#include "kernels/cpu/cpu_internal.h"

/* Elements of the flat buffers per task: 128 KB of each stream, large enough that a task's cost is the
 * memory traffic, small enough that two threads' shares stay balanced. */
#define OPT_CHUNK ((int64_t)1 << 15)
/* Below this many elements a step runs on the calling thread. */
#define OPT_PARALLEL_MIN ((int64_t)1 << 15)
/* Elements per partial sum of the ordered sums of squares. */
#define SUMSQ_BLOCK 4096
/* Adafactor's column means: columns per task. */
#define AFAC_CB 64

/* Calls fn(slice, lo, hi, job) for the part [lo, hi) (slice-local indices) of every slice that meets the
 * flat range [begin, end). */
typedef void (*slice_fn)(const hft_optim_slice *s, int64_t lo, int64_t hi, const void *job);

static void walk_slices(const hft_optim_slice *sl, int ns, int64_t begin, int64_t end, slice_fn fn,
                        const void *job) {
    int lo = 0, hi = ns; /* first slice whose end lies past `begin` */
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sl[mid].offset + sl[mid].n <= begin)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int i = lo; i < ns && sl[i].offset < end; i++) {
        int64_t a = begin > sl[i].offset ? begin - sl[i].offset : 0;
        int64_t b = end < sl[i].offset + sl[i].n ? end - sl[i].offset : sl[i].n;
        if (a < b) fn(&sl[i], a, b, job);
    }
}

typedef struct slices_job {
    const hft_optim_slice *slices;
    int n_slices;
    int64_t start, end;
    slice_fn fn;
    const void *job;
} slices_job;

static void slices_range(int64_t t0, int64_t t1, void *p) {
    const slices_job *j = p;
    int64_t begin = j->start + t0 * OPT_CHUNK, end = j->start + t1 * OPT_CHUNK;
    walk_slices(j->slices, j->n_slices, begin, end < j->end ? end : j->end, j->fn, j->job);
}

/* One pass of fn over every slice, the flat range cut into OPT_CHUNK tasks. */
static void for_slices(const hft_optim_slice *sl, int ns, slice_fn fn, const void *job) {
    if (ns <= 0) return;
    slices_job j = {.slices = sl, .n_slices = ns, .start = sl[0].offset, .fn = fn, .job = job};
    int64_t total = 0;
    for (int i = 0; i < ns; i++) total += sl[i].n;
    j.end = sl[ns - 1].offset + sl[ns - 1].n;
    int64_t tasks = (j.end - j.start + OPT_CHUNK - 1) / OPT_CHUNK;
    hft_parallel_range(tasks, tasks > 1 && total >= OPT_PARALLEL_MIN, slices_range, &j);
}

#define HFT_TEMPLATE "kernels/cpu/optim_impl.h"
#include "kernels/cpu/instantiate.h"

void KFN(cpu_register_optim)(hft_kernels *t) {
    t->adam_step[HFT_F32] = FN2(adam_step, f32);
    t->adam_step[HFT_F64] = FN2(adam_step, f64);
    t->sgd_step[HFT_F32] = FN2(sgd_step, f32);
    t->sgd_step[HFT_F64] = FN2(sgd_step, f64);
    t->lion_step[HFT_F32] = FN2(lion_step, f32);
    t->lion_step[HFT_F64] = FN2(lion_step, f64);
    t->adafactor_step[HFT_F32] = FN2(adafactor_step, f32);
    t->adafactor_step[HFT_F64] = FN2(adafactor_step, f64);
    t->sumsq[HFT_F32] = FN2(sumsq, f32);
    t->sumsq[HFT_F64] = FN2(sumsq, f64);
}
