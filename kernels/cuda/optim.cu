// The element-wise optimizer steps on CUDA (Adam/AdamW with amsgrad, SGD with momentum, Lion), f32 masters
// with f32 gradients and state. Each step is ONE launch over the flat gradient range that updates every
// parameter of the set: a block takes CHUNK consecutive flat elements, finds the first slice that meets them
// by binary search over the slice table, and walks the slices of its chunk, 16 bytes per access where the
// parameter and the flat buffers share their alignment.
//
// The arithmetic is the CPU's (kernels/cpu/optim_impl.h, AVX2/AVX-512 paths) operation for operation: the
// per-slice and per-step scalars are computed on the host by the same double expressions and rounded to f32
// once, fmaf where the CPU writes FMAT, and every other product, quotient and square root spelled with an
// explicit round-to-nearest intrinsic, so nvcc cannot contract a product into a following add
// (-fmad=true would turn AdamW's p·decay + step into one FMA) and no fast-math flag can swap in an
// approximate division or sqrt. Results therefore agree with the CPU bit for bit.
//
// The slice table lives on the host (its param pointers are device pointers). Each call writes it, with the
// f32 scalars, into a slot of a pinned staging ring and queues an async copy to a module-owned device table,
// so the entry returns without waiting. A slot is reused only after the event recorded behind its copy has
// fired; the single device table is safe without a ring because the copy that overwrites it is queued on
// the same stream after the kernel that reads it.
#include "kernels/cuda/cuda_internal.cuh"
#include "kernels/cuda/ieee.cuh"

namespace {

constexpr int OPT_THREADS = 256;
constexpr int64_t OPT_CHUNK = 2048; // flat elements per block: 2 vectors of 4 per thread
constexpr int OPT_RING = 4;         // optimizer steps that may be queued before a call waits

// A slice as the kernel reads it: hft_optim_slice with its f32 scalars already rounded on the host.
struct dev_slice {
    float *param;
    int64_t offset, n;
    float s0, s1, s2; // per op: see adam_op / sgd_op / lion_op (set by the entries' fill)
    int flags;        // bits 0-1: the op's mode; SLICE_VEC: vector accesses allowed
};
constexpr int SLICE_VEC = 4;

// The flat buffers every slice indexes with offset + i.
struct flat_bufs {
    const float *grad;
    float *st[3];
};

struct alignas(16) vec4 {
    float v[4];
};

// ---------------------------------------------------------------- the updates, one element at a time

enum { ADAM_PLAIN = 0, ADAM_L2 = 1, ADAM_DECOUPLED = 2 };

// s0 = weight_decay, s1 = 1 - lr·weight_decay, s2 = -lr / bias_correction1; state: m, v (, v̂).
template <int NS> struct adam_op {
    static constexpr int nstate = NS;
    float coeff, b2, c2, bc2s, eps;
    int small;
    HFT_DEVICE void operator()(const dev_slice &s, float &p, float g, float *st) const {
        int mode = s.flags & 3;
        float gi = g, pi = p;
        if (mode == ADAM_L2) gi = fmaf(pi, s.s0, gi);
        if (mode == ADAM_DECOUPLED) pi = mul_rn(pi, s.s1);
        // torch's lerp: m + w·(g - m) for a small weight, g - (1 - w)·(g - m) otherwise
        float mi = fmaf(coeff, gi - st[0], small ? st[0] : gi);
        float vi = fmaf(mul_rn(c2, gi), gi, mul_rn(st[1], b2));
        float top = vi;
        if constexpr (NS == 3) {
            top = st[2] > vi ? st[2] : vi;
            st[2] = top;
        }
        float den = div_rn(sqrt_rn(top), bc2s) + eps;
        p = pi + div_rn(mul_rn(s.s2, mi), den);
        st[0] = mi;
        st[1] = vi;
    }
};

// s0 = weight_decay, s1 = -lr; mode bit 0: weight decay applies; state: the momentum buffer when NS = 1.
template <int NS> struct sgd_op {
    static constexpr int nstate = NS;
    float mom, damp;
    int first, nesterov;
    HFT_DEVICE void operator()(const dev_slice &s, float &p, float g, float *st) const {
        float gi = (s.flags & 1) ? fmaf(p, s.s0, g) : g;
        if (NS == 1) {
            float bi = first ? gi : fmaf(gi, damp, mul_rn(st[0], mom)); // first step: the buffer is g
            st[0] = bi;
            gi = nesterov ? fmaf(bi, mom, gi) : bi;
        }
        p = fmaf(gi, s.s1, p);
    }
};

// s0 = 1 - lr·weight_decay, s1 = -lr; state: m.
struct lion_op {
    static constexpr int nstate = 1;
    float b1, c1, b2, c2;
    HFT_DEVICE void operator()(const dev_slice &s, float &p, float g, float *st) const {
        float pi = mul_rn(p, s.s0), mi = st[0];
        float c = fmaf(g, c1, mul_rn(mi, b1));
        float sign = (float)(c > 0.0f) - (float)(c < 0.0f);
        p = fmaf(sign, s.s1, pi);
        st[0] = fmaf(g, c2, mul_rn(mi, b2));
    }
};

// ---------------------------------------------------------------- the fused multi-tensor kernel

// Flat elements [start + CHUNK·blockIdx, + CHUNK) ∩ [start, end): every slice piece in it, each piece as a
// scalar head up to 16-byte alignment, a vector body and a scalar tail (all scalar where the slice's
// parameter is aligned differently from the flat buffers).
template <class Op>
__global__ void __launch_bounds__(OPT_THREADS)
    optim_kernel(const dev_slice *sl, int ns, int64_t start, int64_t end, flat_bufs b, Op op) {
    constexpr int NS = Op::nstate;
    int64_t begin = start + (int64_t)blockIdx.x * OPT_CHUNK;
    int64_t cend = begin + OPT_CHUNK < end ? begin + OPT_CHUNK : end;
    int lo = 0, hi = ns; // the first slice whose end lies past `begin` (same loads in every thread)
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (sl[mid].offset + sl[mid].n <= begin)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (int i = lo; i < ns; i++) {
        const dev_slice s = sl[i];
        if (s.offset >= cend) break;
        int64_t a = begin > s.offset ? begin : s.offset;
        int64_t e = cend < s.offset + s.n ? cend : s.offset + s.n;
        if (a >= e) continue;
        float *p = s.param - s.offset; // indexed by flat position, like the flat buffers
        int64_t head = e - a, nvec = 0;
        if (s.flags & SLICE_VEC) {
            int64_t mis = (int64_t)(((uintptr_t)(b.grad + a) >> 2) & 3u);
            head = (4 - mis) & 3;
            if (head > e - a) head = e - a;
            nvec = (e - a - head) / 4;
        }
        int64_t nscalar = (e - a) - 4 * nvec;
        for (int64_t k = threadIdx.x; k < nscalar; k += OPT_THREADS) {
            int64_t f = k < head ? a + k : a + 4 * nvec + k;
            float st[NS > 0 ? NS : 1];
            HFT_UNROLL
            for (int j = 0; j < NS; j++) st[j] = b.st[j][f];
            float pv = p[f];
            op(s, pv, b.grad[f], st);
            p[f] = pv;
            HFT_UNROLL
            for (int j = 0; j < NS; j++) b.st[j][f] = st[j];
        }
        for (int64_t k = threadIdx.x; k < nvec; k += OPT_THREADS) {
            int64_t f = a + head + 4 * k;
            vec4 pv = *reinterpret_cast<const vec4 *>(p + f);
            vec4 gv = *reinterpret_cast<const vec4 *>(b.grad + f);
            vec4 sv[NS > 0 ? NS : 1];
            HFT_UNROLL
            for (int j = 0; j < NS; j++) sv[j] = *reinterpret_cast<const vec4 *>(b.st[j] + f);
            HFT_UNROLL
            for (int l = 0; l < 4; l++) {
                float st[NS > 0 ? NS : 1];
                HFT_UNROLL
                for (int j = 0; j < NS; j++) st[j] = sv[j].v[l];
                op(s, pv.v[l], gv.v[l], st);
                HFT_UNROLL
                for (int j = 0; j < NS; j++) sv[j].v[l] = st[j];
            }
            *reinterpret_cast<vec4 *>(p + f) = pv;
            HFT_UNROLL
            for (int j = 0; j < NS; j++) *reinterpret_cast<vec4 *>(b.st[j] + f) = sv[j];
        }
    }
}

// ---------------------------------------------------------------- the slice table: pinned ring, device copy

struct table_ring {
    char *host = nullptr; // OPT_RING slots of `cap` bytes, pinned
    size_t cap = 0;
    cudaEvent_t ev[OPT_RING] = {};
    bool pending[OPT_RING] = {};
    int next = 0, device = -1;
};
table_ring ring;

bool ring_wait(int slot) {
    if (!ring.pending[slot]) return true;
    ring.pending[slot] = false;
    cudaError_t e = cudaEventSynchronize(ring.ev[slot]);
    if (e != cudaSuccess) hft_cuda_fail(HFT_EDEVICE, "optimizer step", "%s", cudaGetErrorString(e));
    return e == cudaSuccess;
}

bool ring_wait_all(void) {
    bool ok = true;
    for (int i = 0; i < OPT_RING; i++) ok = ring_wait(i) && ok;
    return ok;
}

// A staging slot of at least `bytes` that no queued copy still reads; NULL (the failure recorded) on error.
char *ring_acquire(size_t bytes, int *slot_out) {
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess) device = 0;
    if (device != ring.device) { // events belong to a device: make them anew after set_device
        if (!ring_wait_all()) return nullptr;
        for (int i = 0; i < OPT_RING; i++) {
            if (ring.ev[i]) (void)cudaEventDestroy(ring.ev[i]);
            ring.ev[i] = nullptr;
        }
        for (int i = 0; i < OPT_RING; i++) {
            cudaError_t e = cudaEventCreateWithFlags(&ring.ev[i], cudaEventDisableTiming);
            if (e != cudaSuccess) {
                hft_cuda_fail(HFT_EDEVICE, "optimizer step", "creating an event: %s", cudaGetErrorString(e));
                return nullptr;
            }
        }
        ring.device = device;
    }
    if (bytes > ring.cap) { // grow every slot; the old buffer may still feed queued copies
        if (!ring_wait_all()) return nullptr;
        if (ring.host) (void)cudaFreeHost(ring.host);
        ring.host = nullptr;
        ring.cap = 0;
        size_t cap = (bytes + bytes / 4 + 255) & ~(size_t)255;
        void *h = nullptr;
        if (cudaMallocHost(&h, cap * OPT_RING) != cudaSuccess) {
            (void)cudaGetLastError();
            hft_cuda_fail(HFT_ENOMEM, "optimizer step", "cannot allocate %zu bytes of pinned memory",
                          cap * OPT_RING);
            return nullptr;
        }
        ring.host = static_cast<char *>(h);
        ring.cap = cap;
    }
    int slot = ring.next;
    ring.next = (slot + 1) % OPT_RING;
    if (!ring_wait(slot)) return nullptr;
    *slot_out = slot;
    return ring.host + (size_t)slot * ring.cap;
}

// Whether the slices' offsets ascend without overlap (what the kernel's binary search needs).
bool slices_ordered(const char *name, const hft_optim_slice *sl, int ns) {
    for (int i = 0; i < ns; i++) {
        if (sl[i].n < 0 || sl[i].offset < 0 || (i > 0 && sl[i].offset < sl[i - 1].offset + sl[i - 1].n)) {
            hft_cuda_fail(HFT_EINVAL, name, "slice %d (offset %lld, %lld elements) is out of order", i,
                          (long long)sl[i].offset, (long long)sl[i].n);
            return false;
        }
    }
    return true;
}

// Vector accesses need the parameter (shifted to flat positions) and every flat buffer to share their
// address modulo 16, all of them f32-aligned.
int vec_flag(const hft_optim_slice &s, const flat_bufs &b, int nstate) {
    uintptr_t base = (uintptr_t)s.param - (uintptr_t)s.offset * 4u, g = (uintptr_t)b.grad;
    if ((g & 3u) || ((base ^ g) & 15u)) return 0;
    for (int j = 0; j < nstate; j++)
        if (((uintptr_t)b.st[j] ^ g) & 15u) return 0;
    return SLICE_VEC;
}

// Writes the device table (fill(i, dev_slice &) sets each slice's scalars and mode), copies it and launches
// the kernel over the slices' flat range.
template <class Op, class Fill>
void run_step(const char *name, const hft_optim_slice *sl, int ns, flat_bufs b, Op op, Fill fill) {
    if (ns <= 0) return;
    if (!slices_ordered(name, sl, ns)) return;
    int64_t start = sl[0].offset, end = sl[ns - 1].offset + sl[ns - 1].n;
    if (end <= start) return;
    int64_t chunks = (end - start + OPT_CHUNK - 1) / OPT_CHUNK;
    if (chunks > 0x7fffffff) {
        hft_cuda_fail(HFT_EUNSUPPORTED, name, "%lld elements is more than one launch covers",
                      (long long)(end - start));
        return;
    }
    size_t bytes = sizeof(dev_slice) * (size_t)ns;
    int slot = 0;
    dev_slice *host = reinterpret_cast<dev_slice *>(ring_acquire(bytes, &slot));
    if (!host) return;
    void *dev = hft_cuda_scratch(HFT_SCRATCH_OPTIM, bytes);
    if (!dev) return;
    for (int i = 0; i < ns; i++) {
        dev_slice d = {};
        d.param = static_cast<float *>(sl[i].param);
        d.offset = sl[i].offset;
        d.n = sl[i].n;
        fill(sl[i], d);
        d.flags |= vec_flag(sl[i], b, Op::nstate);
        host[i] = d;
    }
    cudaStream_t stream = hft_cuda_stream();
    cudaError_t e = cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, stream);
    if (e != cudaSuccess) {
        hft_cuda_fail(HFT_EDEVICE, name, "copying the slice table: %s", cudaGetErrorString(e));
        return;
    }
    HFT_LAUNCH((unsigned)chunks, OPT_THREADS, 0, stream, optim_kernel<Op>)
    (static_cast<const dev_slice *>(dev), ns, start, end, b, op);
    hft_cuda_check_launch(name);
    e = cudaEventRecord(ring.ev[slot], stream);
    if (e != cudaSuccess) {
        hft_cuda_fail(HFT_EDEVICE, name, "recording an event: %s", cudaGetErrorString(e));
        return;
    }
    ring.pending[slot] = true;
}

// ---------------------------------------------------------------- the table entries

void adam_f32(const hft_adam_args *a) {
    if (a->n_slices <= 0) return;
    if (a->amsgrad && !a->max_exp_avg_sq) {
        hft_cuda_fail(HFT_EINVAL, "adam_step", "amsgrad without a max_exp_avg_sq buffer");
        return;
    }
    if (!a->exp_avg || !a->exp_avg_sq) {
        hft_cuda_fail(HFT_EINVAL, "adam_step", "no exp_avg / exp_avg_sq buffer");
        return;
    }
    // in f64, as torch computes them, from the step as a float
    double step = (double)a->step;
    double bc1 = 1.0 - pow(a->beta1, step), bc2s = sqrt(1.0 - pow(a->beta2, step));
    float w = (float)(1.0 - a->beta1);
    int small = fabsf(w) < 0.5f;
    flat_bufs b = {static_cast<const float *>(a->grad),
                   {static_cast<float *>(a->exp_avg), static_cast<float *>(a->exp_avg_sq),
                    static_cast<float *>(a->max_exp_avg_sq)}};
    bool decoupled = a->decoupled;
    auto fill = [bc1, decoupled](const hft_optim_slice &s, dev_slice &d) {
        d.s0 = (float)s.weight_decay;
        d.s1 = (float)(1.0 - s.lr * s.weight_decay);
        d.s2 = (float)(-(s.lr / bc1));
        d.flags = s.weight_decay == 0 ? ADAM_PLAIN : decoupled ? ADAM_DECOUPLED : ADAM_L2;
    };
    float coeff = small ? w : w - 1.0f;
    float b2 = (float)a->beta2, c2 = (float)(1.0 - a->beta2), eps = (float)a->eps;
    if (a->amsgrad)
        run_step("adam_step", a->slices, a->n_slices, b, adam_op<3>{coeff, b2, c2, (float)bc2s, eps, small},
                 fill);
    else
        run_step("adam_step", a->slices, a->n_slices, b, adam_op<2>{coeff, b2, c2, (float)bc2s, eps, small},
                 fill);
}

void sgd_f32(const hft_sgd_args *a) {
    flat_bufs b = {static_cast<const float *>(a->grad),
                   {static_cast<float *>(a->momentum_buffer), nullptr, nullptr}};
    auto fill = [](const hft_optim_slice &s, dev_slice &d) {
        d.s0 = (float)s.weight_decay;
        d.s1 = (float)(-s.lr);
        d.flags = s.weight_decay != 0;
    };
    float mom = (float)a->momentum, damp = (float)(1.0 - a->dampening);
    // as the CPU: the buffer's presence, not the momentum's value, selects the momentum update
    if (a->momentum_buffer)
        run_step("sgd_step", a->slices, a->n_slices, b, sgd_op<1>{mom, damp, a->first_step, a->nesterov},
                 fill);
    else
        run_step("sgd_step", a->slices, a->n_slices, b, sgd_op<0>{mom, damp, a->first_step, a->nesterov},
                 fill);
}

void lion_f32(const hft_lion_args *a) {
    if (a->n_slices > 0 && !a->exp_avg) {
        hft_cuda_fail(HFT_EINVAL, "lion_step", "no exp_avg buffer");
        return;
    }
    flat_bufs b = {static_cast<const float *>(a->grad), {static_cast<float *>(a->exp_avg), nullptr, nullptr}};
    auto fill = [](const hft_optim_slice &s, dev_slice &d) {
        d.s0 = (float)(1.0 - s.lr * s.weight_decay);
        d.s1 = (float)(-s.lr);
    };
    lion_op op{(float)a->beta1, (float)(1.0 - a->beta1), (float)a->beta2, (float)(1.0 - a->beta2)};
    run_step("lion_step", a->slices, a->n_slices, b, op, fill);
}

} // namespace

void hft_cuda_register_optim(hft_kernels *t) {
    t->adam_step[HFT_F32] = adam_f32;
    t->sgd_step[HFT_F32] = sgd_f32;
    t->lion_step[HFT_F32] = lion_f32;
    t->adafactor_step[HFT_F32] = hft_cuda_adafactor_f32;
}
