/* Tensors, views, arenas and the tape: the core contracts, and misuse reported as errors. */
#include "tests/test_util.h"

TEST(views_share_storage_and_strides) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    float v[24];
    for (int i = 0; i < 24; i++) v[i] = (float)i;
    hft_tensor *x = hft_tensor_from_data(HFT_F32, 3, (int64_t[]){2, 3, 4}, v);
    hft_tensor *t = hft_transpose(ctx, x, 0, 2);
    CHECK(t && t->shape[0] == 4 && t->shape[2] == 2 && t->stride[0] == 1 && t->stride[2] == 12,
          "transpose strides");
    CHECK(!hft_tensor_is_contiguous(t), "a transpose is not contiguous");
    hft_tensor *c = hft_contiguous(ctx, t);
    double got[24];
    hft_tensor_to_f64(c, got);
    CHECK(got[1] == 12 && got[2] == 4, "contiguous copy of a transpose: %g %g", got[1], got[2]);
    hft_tensor *r = hft_reshape(ctx, x, 2, (int64_t[]){6, -1});
    CHECK(r && r->shape[1] == 4 && hft_tensor_data(r) == hft_tensor_data(x),
          "reshape of a contiguous tensor is a view");
    hft_tensor *n = hft_narrow(ctx, x, 2, 1, 2);
    hft_tensor_to_f64(n, got);
    CHECK(got[0] == 1 && got[1] == 2 && got[2] == 5, "narrow values %g %g %g", got[0], got[1], got[2]);
    hft_tensor *e =
        hft_expand(ctx, hft_unsqueeze(ctx, hft_narrow(ctx, x, 0, 0, 1), 0), 4, (int64_t[]){5, -1, -1, -1});
    CHECK(e && e->shape[0] == 5 && e->stride[0] == 0, "expand makes a stride-0 dim");
    hft_tensor *pieces[3];
    CHECK(hft_split(ctx, x, 2, 2, NULL, pieces) && pieces[1]->shape[2] == 2, "split in two");
    hft_tensor *rt = hft_reshape(ctx, t, 1, (int64_t[]){24}); /* needs a copy */
    hft_tensor_to_f64(rt, got);
    CHECK(rt && got[1] == 12, "reshape of a transpose copies: %g", got[1]);
    CHECK_OK(hft_ctx_status(ctx), ctx);
    hft_tensor_free(x);
    hft_ctx_free(ctx);
}

TEST(half_precision_conversions_round_to_nearest_even) {
    CHECK(hft_f32_to_bf16(1.0f) == 0x3f80, "bf16(1)");
    CHECK(hft_bf16_to_f32(hft_f32_to_bf16(3.140625f)) == 3.140625f, "bf16 exact value");
    /* 1 + 2^-8 is a tie between 1 and 1 + 2^-7 in bf16: rounds to even (1) */
    CHECK(hft_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 tie to even");
    CHECK(hft_f32_to_f16(1.0f) == 0x3c00 && hft_f16_to_f32(0x3c00) == 1.0f, "f16(1)");
    CHECK(hft_f32_to_f16(65504.0f) == 0x7bff, "f16 max");
    CHECK(hft_f32_to_f16(65520.0f) == 0x7c00, "f16 overflow to inf");
    CHECK(hft_f16_to_f32(hft_f32_to_f16(5.960464477539063e-08f)) == 5.960464477539063e-08f,
          "smallest subnormal");
    CHECK(hft_f32_to_f16(1.00048828125f) == 0x3c00, "f16 tie to even");
}

TEST(philox_matches_the_random123_known_answer) {
    uint32_t out[4];
    hft_philox4x32((const uint32_t[2]){0, 0}, (const uint32_t[4]){0, 0, 0, 0}, out);
    CHECK(out[0] == 0x6627e8d5u && out[1] == 0xe169c58du && out[2] == 0xbc57ac4cu && out[3] == 0x9b00dbd8u,
          "philox(0,0) = %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
    hft_philox4x32((const uint32_t[2]){0xa4093822u, 0x299f31d0u},
                   (const uint32_t[4]){0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}, out);
    CHECK(out[0] == 0xd16cfe09u && out[1] == 0x94fdccebu && out[2] == 0x5001e420u && out[3] == 0x24126ea1u,
          "philox(pi) = %08x %08x %08x %08x", out[0], out[1], out[2], out[3]);
}

TEST(gradients_accumulate_across_backward_calls) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *w = hft_tensor_from_data(HFT_F32, 1, (int64_t[]){3}, (float[]){1, 2, 3});
    hft_tensor_set_requires_grad(w, true);
    for (int step = 0; step < 2; step++) {
        hft_tensor *y = hft_sum(ctx, hft_mul(ctx, w, w), 0, NULL, false);
        CHECK_OK(hft_backward(ctx, y, NULL), ctx);
        hft_ctx_reset(ctx);
    }
    double g[3];
    hft_tensor_to_f64(hft_tensor_grad(w), g);
    CHECK(g[0] == 4 && g[1] == 8 && g[2] == 12, "two backward calls add up: %g %g %g", g[0], g[1], g[2]);
    hft_tensor_zero_grad(w);
    CHECK(hft_tensor_grad(w) == NULL, "zero_grad leaves no gradient to read");
    hft_tensor_free(w);
    hft_ctx_free(ctx);
}

TEST(no_grad_mode_records_nothing) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *w = hft_tensor_from_data(HFT_F32, 1, (int64_t[]){2}, (float[]){1, 2});
    hft_tensor_set_requires_grad(w, true);
    bool prev = hft_set_grad_enabled(ctx, false);
    hft_tensor *y = hft_sum(ctx, hft_exp(ctx, w), 0, NULL, false);
    hft_set_grad_enabled(ctx, prev);
    CHECK(y && !y->requires_grad && !y->grad_fn, "no node recorded in no-grad mode");
    CHECK(hft_backward(ctx, y, NULL) == HFT_ESTATE, "backward from a tensor that needs no grad is an error");
    CHECK(strstr(hft_ctx_error(ctx), "does not require grad") != NULL, "message: %s", hft_ctx_error(ctx));
    hft_tensor_free(w);
    hft_ctx_free(ctx);
}

TEST(misuse_returns_errors_not_crashes) {
    hft_ctx *ctx = hft_ctx_new(NULL);
    hft_tensor *a = hft_tensor_new(HFT_F32, 2, (int64_t[]){2, 3});
    hft_tensor *b = hft_tensor_new(HFT_F32, 2, (int64_t[]){4, 5});
    hft_tensor *d = hft_tensor_new(HFT_F64, 2, (int64_t[]){2, 3});
    CHECK(hft_add(ctx, a, b) == NULL && hft_ctx_status(ctx) == HFT_EINVAL, "shape mismatch");
    CHECK(strstr(hft_ctx_error(ctx), "do not broadcast"), "message: %s", hft_ctx_error(ctx));
    /* the error is sticky: later ops return NULL and keep the first message */
    CHECK(hft_exp(ctx, hft_add(ctx, a, b)) == NULL && strstr(hft_ctx_error(ctx), "broadcast"),
          "sticky error");
    hft_ctx_clear_error(ctx);
    CHECK(hft_add(ctx, a, d) == NULL && strstr(hft_ctx_error(ctx), "dtypes differ"), "dtype mismatch: %s",
          hft_ctx_error(ctx));
    hft_ctx_clear_error(ctx);
    CHECK(hft_matmul(ctx, a, a) == NULL && strstr(hft_ctx_error(ctx), "inner dims"), "matmul shapes: %s",
          hft_ctx_error(ctx));
    hft_ctx_clear_error(ctx);
    hft_tensor *stale = hft_exp(ctx, a);
    hft_ctx_reset(ctx);
    CHECK(hft_exp(ctx, stale) == NULL && hft_ctx_status(ctx) == HFT_ESTATE,
          "an op on a released arena's tensor");
    CHECK(strstr(hft_ctx_error(ctx), "reset"), "message: %s", hft_ctx_error(ctx));
    hft_ctx_reset(ctx);
    CHECK(hft_add(ctx, a, NULL) == NULL && hft_ctx_status(ctx) == HFT_EINVAL, "NULL input");
    hft_ctx_reset(ctx);
    CHECK(hft_transpose(ctx, a, 0, 5) == NULL && strstr(hft_ctx_error(ctx), "out of range"), "bad dim");
    hft_ctx_reset(ctx);
    hft_tensor *x = hft_exp(ctx, a);
    CHECK(hft_backward(ctx, x, NULL) == HFT_ESTATE, "backward without requires_grad");
    hft_tensor_free(a);
    hft_tensor_free(b);
    hft_tensor_free(d);
    hft_ctx_free(ctx);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"views_share_storage_and_strides", views_share_storage_and_strides},
        {"half_precision_conversions_round_to_nearest_even",
         half_precision_conversions_round_to_nearest_even},
        {"philox_matches_the_random123_known_answer", philox_matches_the_random123_known_answer},
        {"gradients_accumulate_across_backward_calls", gradients_accumulate_across_backward_calls},
        {"no_grad_mode_records_nothing", no_grad_mode_records_nothing},
        {"misuse_returns_errors_not_crashes", misuse_returns_errors_not_crashes},
    };
    return test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
