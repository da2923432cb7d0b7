/* Decoding as transformers' generate does it: the logits of the last position go through the processors in
 * its order — repetition penalty, then (sampling) temperature, top-k, top-p, min-p — and the next token is
 * the argmax (greedy) or a draw from the softmax (sampling, from a Philox stream keyed on the seed: the same
 * seed gives the same text, though not the one torch's generator would give). */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

hft_generate_options hft_generate_defaults(void) {
    /* transformers' GenerationConfig defaults (max_length 20 becomes max_new_tokens here) */
    return (hft_generate_options){.max_new_tokens = 20,
                                  .temperature = 1.0,
                                  .top_k = 50,
                                  .top_p = 1.0,
                                  .min_p = 0.0,
                                  .repetition_penalty = 1.0};
}

static int by_score_desc(const void *a, const void *b, void *scores) {
    const float *s = scores;
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    return s[i] > s[j] ? -1 : s[i] < s[j] ? 1 : (i > j) - (i < j);
}

/* The processors, in transformers' order, on the scores of one row (in place). */
static void process(float *s, int64_t V, const int64_t *seen, int64_t n_seen, const hft_generate_options *o,
                    int64_t *order) {
    if (o->repetition_penalty != 1.0)
        for (int64_t i = 0; i < n_seen; i++) {
            float *x =
                &s[seen[i]]; /* a token seen twice is penalised once: transformers gathers, then scatters */
            bool done = false;
            for (int64_t j = 0; j < i && !done; j++) done = seen[j] == seen[i];
            if (!done) *x = *x < 0 ? *x * (float)o->repetition_penalty : *x / (float)o->repetition_penalty;
        }
    if (!o->do_sample) return;
    if (o->temperature != 1.0)
        for (int64_t v = 0; v < V; v++) s[v] = s[v] / (float)o->temperature;
    for (int64_t v = 0; v < V; v++) order[v] = v;
    qsort_r(order, (size_t)V, sizeof *order, by_score_desc, s);
    if (o->top_k > 0 && o->top_k < V) { /* keep those not below the k-th score (ties at it stay, as torch) */
        float kth = s[order[o->top_k - 1]];
        for (int64_t v = 0; v < V; v++)
            if (s[v] < kth) s[v] = -INFINITY;
    }
    if (o->top_p < 1.0) { /* the smallest set whose probability reaches top_p, at least one token */
        double max = s[order[0]], total = 0, cum = 0;
        for (int64_t v = 0; v < V; v++) total += exp((double)s[v] - max);
        /* transformers sorts ascending and drops while the cumulative probability <= 1 - top_p */
        int64_t keep = V;
        for (int64_t r = V - 1; r >= 1; r--) {
            cum += exp((double)s[order[r]] - max) / total;
            if (cum <= 1.0 - o->top_p)
                keep = r;
            else
                break;
        }
        for (int64_t r = keep; r < V; r++) s[order[r]] = -INFINITY;
    }
    if (o->min_p > 0) { /* drop tokens below min_p times the top token's probability */
        double max = s[order[0]];
        for (int64_t v = 0; v < V; v++)
            if (exp((double)s[v] - max) < o->min_p) s[v] = -INFINITY;
    }
}

hft_status hft_process_logits(float *scores, int64_t V, const int64_t *seen, int64_t n_seen,
                              const hft_generate_options *o) {
    int64_t *order = malloc(sizeof *order * (size_t)(V > 0 ? V : 1));
    if (!order) return hft_error(HFT_ENOMEM, "out of memory");
    process(scores, V, seen, n_seen, o, order);
    free(order);
    return HFT_OK;
}

static int64_t argmax(const float *s, int64_t V) {
    int64_t best = 0;
    for (int64_t v = 1; v < V; v++)
        if (s[v] > s[best]) best = v; /* the first of equal maxima, as torch.argmax */
    return best;
}

static int64_t draw(const float *s, int64_t V, uint64_t seed, uint32_t step) {
    double max = s[argmax(s, V)], total = 0;
    for (int64_t v = 0; v < V; v++) total += exp((double)s[v] - max);
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32) ^ 0x67656e65u}, ctr[4] = {step, 0, 0, 0}, r[4];
    hft_philox4x32(key, ctr, r);
    double u = ((double)r[0] + (double)r[1] / 4294967296.0) / 4294967296.0 * total;
    int64_t last = 0;
    for (int64_t v = 0; v < V; v++) {
        if (s[v] == -INFINITY) continue;
        last = v;
        if ((u -= exp((double)s[v] - max)) <= 0) return v;
    }
    return last;
}

static bool is_eos(int64_t t, const hft_generate_options *o) {
    for (int i = 0; i < o->n_eos; i++)
        if (o->eos[i] == t) return true;
    return false;
}

/* ---------------------------------------------------------------- perplexity */

hft_status hft_perplexity(hft_ctx *ctx, hft_model *m, const int64_t *ids, int64_t n, int64_t max_length,
                          int64_t stride, double *ppl, int64_t *tokens) {
    *ppl = NAN;
    *tokens = 0;
    if (n < 2 || max_length < 2 || stride < 1)
        return hft_error(HFT_EINVAL,
                         "perplexity: %lld tokens, max_length %lld, stride %lld; expected at least 2, 2, 1",
                         (long long)n, (long long)max_length, (long long)stride);
    int64_t *labels = malloc(sizeof *labels * (size_t)max_length);
    if (!labels) return hft_error(HFT_ENOMEM, "out of memory");
    double nll_sum = 0;
    int64_t n_tokens = 0, prev_end = 0;
    bool prev = hft_set_grad_enabled(ctx, false);
    hft_status st = HFT_OK;
    for (int64_t begin = 0; begin < n && st == HFT_OK; begin += stride) {
        int64_t end = begin + max_length < n ? begin + max_length : n, len = end - begin,
                trg = end - prev_end;
        for (int64_t i = 0; i < len; i++) labels[i] = i < len - trg ? -100 : ids[begin + i];
        hft_batch b = {.input_ids = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, len}, ids + begin),
                       .labels = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){1, len}, labels)};
        int64_t count = 0;
        hft_tensor *sum = hft_model_loss(ctx, m, &b, false, &count);
        if (!sum) {
            st = hft_error(hft_ctx_status(ctx), "perplexity: %s", hft_ctx_error(ctx));
            break;
        }
        /* the guide weights each window's mean loss by its valid labels minus one (its "internal label
         * shift") */
        double total = 0; /* read back from the context's device, where it may be */
        if (hft_tensor_to_f64(sum, &total) != HFT_OK) {
            st = hft_error(HFT_EDEVICE, "perplexity: reading the loss: %s", hft_error_message());
            break;
        }
        double mean = count ? total / (double)count : 0;
        nll_sum += mean * (double)(trg - 1);
        n_tokens += trg - 1;
        hft_ctx_reset(ctx);
        prev_end = end;
        if (end == n) break;
    }
    hft_set_grad_enabled(ctx, prev);
    free(labels);
    if (st == HFT_OK && n_tokens > 0) {
        *ppl = exp(nll_sum / (double)n_tokens);
        *tokens = n_tokens;
    }
    return st;
}

/* ---------------------------------------------------------------- several prompts at once */

/* Rows of prompts left-padded to one length, decoded together with one KV cache (one row is a batch of
 * one, with no padding); on_token, when given, hears each new token of row 0 and can stop the generation. */
/* One row of scores (V logits from `at`, in `logits`' memory) into host memory: read back from a device. */
static hft_status read_scores(const hft_tensor *logits, const float *at, float *s, int64_t V) {
    if (logits->device.type == HFT_CPU) {
        memcpy(s, at, sizeof *s * (size_t)V);
        return HFT_OK;
    }
    hft_status st =
        hft_kernels_for(logits->device.type)->dev->copy(s, at, sizeof *s * (size_t)V, HFT_COPY_D2H);
    return st == HFT_OK
               ? HFT_OK
               : hft_error(st, "generate: reading the logits from the device: %s", hft_error_message());
}

static hft_status generate_rows(hft_ctx *ctx, hft_model *m, const int64_t *const *prompts,
                                const int64_t *lengths, int rows, int64_t pad_id,
                                const hft_generate_options *o, int64_t *out, int64_t *n_out,
                                hft_token_fn on_token, void *user) {
    int64_t L = 0, K = o->max_new_tokens > 0 ? o->max_new_tokens : 0, V = m->vocab_size;
    for (int r = 0; r < rows; r++) {
        n_out[r] = 0;
        if (lengths[r] < 1)
            return hft_error(HFT_EINVAL, "generate: prompt %d is empty (give at least one token, e.g. BOS)",
                             r);
        if (lengths[r] > L) L = lengths[r];
    }
    if (o->do_sample && !(o->temperature > 0))
        return hft_error(HFT_EINVAL, "generate: temperature %g; sampling needs a temperature > 0",
                         o->temperature);
    if (!(o->top_p > 0 && o->top_p <= 1) || o->min_p < 0 || o->min_p > 1 || !(o->repetition_penalty > 0))
        return hft_error(HFT_EINVAL,
                         "generate: top_p %g, min_p %g, repetition_penalty %g; expected top_p in (0, 1], "
                         "min_p in [0, 1], repetition_penalty > 0",
                         o->top_p, o->min_p, o->repetition_penalty);
    hft_kv_cache *cache = NULL;
    HFT_TRY(hft_kv_cache_new(m, rows, L + K, &cache));
    size_t R = (size_t)rows;
    int64_t *ids = malloc(sizeof *ids * R * (size_t)L), *mask = malloc(sizeof *mask * R * (size_t)(L + K)),
            *pos = malloc(sizeof *pos * R * (size_t)L), *seen = malloc(sizeof *seen * R * (size_t)(L + K)),
            *n_seen = calloc(R, sizeof *n_seen), *order = malloc(sizeof *order * (size_t)V);
    float *s = malloc(sizeof *s * (size_t)V);
    int64_t *mask_now = malloc(sizeof *mask_now * R * (size_t)(L + K));
    bool *done = calloc(R, sizeof *done);
    hft_status st = ids && mask && mask_now && pos && seen && n_seen && order && s && done
                        ? HFT_OK
                        : hft_error(HFT_ENOMEM, "out of memory");
    for (int r = 0; r < rows && st == HFT_OK; r++) { /* left padding; positions count the real tokens */
        int64_t pad = L - lengths[r], count = 0;
        for (int64_t t = 0; t < L; t++) {
            bool real = t >= pad;
            ids[r * L + t] = real ? prompts[r][t - pad] : pad_id;
            mask[r * (L + K) + t] = real;
            pos[r * L + t] = real ? count++ : 1; /* transformers: cumsum - 1, padding filled with 1 */
            if (real) seen[r * (L + K) + n_seen[r]++] = ids[r * L + t];
        }
    }
    int64_t T = L, len = 0;
    for (int64_t i = 0; i < K && st == HFT_OK; i++) {
        len += T;
        for (int r = 0; r < rows; r++) /* the mask so far, rows packed (made on the host: a GPU's too) */
            memcpy(mask_now + (size_t)r * (size_t)len, mask + (size_t)r * (size_t)(L + K),
                   sizeof *mask * (size_t)len);
        hft_tensor *x = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){rows, T}, ids);
        hft_tensor *mk = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){rows, len}, mask_now);
        hft_tensor *ps = hft_from_data(ctx, HFT_I64, 2, (int64_t[]){rows, T}, pos);
        hft_tensor *logits = x && mk && ps ? hft_model_decode_masked(ctx, m, cache, x, mk, ps) : NULL;
        if (!logits) {
            st = hft_error(hft_ctx_status(ctx), "generate: %s", hft_ctx_error(ctx));
            break;
        }
        bool all_done = true;
        for (int r = 0; r < rows; r++) {
            const float *last = (const float *)hft_tensor_data(logits) + ((int64_t)r * T + T - 1) * V;
            if ((st = read_scores(logits, last, s, V)) != HFT_OK) break;
            int64_t next = pad_id;
            if (!done[r]) { /* a finished row goes on with padding, as generate's unfinished_sequences */
                process(s, V, seen + (size_t)r * (size_t)(L + K), n_seen[r], o, order);
                next = o->do_sample ? draw(s, V, o->seed + (uint64_t)r, (uint32_t)i) : argmax(s, V);
                out[r * K + n_out[r]++] = next;
                seen[r * (L + K) + n_seen[r]++] = next;
                done[r] = is_eos(next, o);
            }
            all_done &= done[r];
            ids[r] = next;
            mask[r * (L + K) + len] = 1;
            pos[r] = pos[r * T + T - 1] + 1;
        }
        hft_ctx_reset(ctx);
        if (st != HFT_OK) break;
        T = 1;
        if (on_token && !on_token(out[n_out[0] - 1], user))
            break; /* before the end token stops it, as it hears that too */
        if (all_done) break;
    }
    free(ids), free(mask), free(mask_now), free(pos), free(seen), free(n_seen), free(order), free(s),
        free(done);
    hft_kv_cache_free(cache);
    return st;
}

hft_status hft_generate(hft_ctx *ctx, hft_model *m, const int64_t *prompt, int64_t n,
                        const hft_generate_options *o, int64_t *out, int64_t *n_out, hft_token_fn on_token,
                        void *user) {
    return generate_rows(ctx, m, &prompt, &n, 1, 0, o, out, n_out, on_token, user);
}

hft_status hft_generate_batch(hft_ctx *ctx, hft_model *m, const int64_t *const *prompts,
                              const int64_t *lengths, int rows, int64_t pad_id, const hft_generate_options *o,
                              int64_t *out, int64_t *n_out) {
    return generate_rows(ctx, m, prompts, lengths, rows, pad_id, o, out, n_out, NULL, NULL);
}
