/* Heap tensors on a CUDA device: made zeroed, copied up and down in any layout and dtype, read back with
 * hft_tensor_to_f64, converted in place, freed. Runs on the GPU, and on the host emulator without one. */
#include "tests/cuda_test_util.h"

static const hft_device gpu = {HFT_CUDA, 0};

TEST(test_new_on_is_zero_and_round_trips) {
    int64_t shape[2] = {7, 33};
    hft_tensor *d = hft_tensor_new_on(gpu, HFT_F32, 2, shape);
    CHECK(d && d->device.type == HFT_CUDA, "%s", hft_error_message());
    double back[7 * 33];
    CHECK(hft_tensor_to_f64(d, back) == HFT_OK, "%s", hft_error_message());
    int zeros = 0;
    for (int i = 0; i < 7 * 33; i++)
        zeros += back[i] == 0.0;
    CHECK(zeros == 7 * 33, "new_on left %d values nonzero", 7 * 33 - zeros);
    test_rng r = {11};
    hft_tensor *h = test_random(&r, HFT_F32, 2, shape, -2, 2);
    hft_tensor *u = hft_tensor_to(h, gpu);
    CHECK(u && u->device.type == HFT_CUDA, "%s", hft_error_message());
    double want[7 * 33];
    hft_tensor_to_f64(h, want);
    CHECK(hft_tensor_to_f64(u, back) == HFT_OK, "%s", hft_error_message());
    CHECK(memcmp(back, want, sizeof back) == 0, "the values changed on the way up and down");
    hft_tensor_free(d);
    hft_tensor_free(u);
    hft_tensor_free(h);
}

/* A transposed host view goes up into a contiguous device tensor, and a transposed device view comes down;
 * dtypes convert on the way (f32 -> bf16 up, bf16 -> f32 down), as the CPU copy converts them. */
TEST(test_strided_and_converting_copies) {
    int64_t shape[2] = {5, 9}, tshape[2] = {9, 5};
    test_rng r = {12};
    hft_tensor *h = test_random(&r, HFT_F32, 2, shape, -3, 3);
    hft_tensor *ht = hft_tensor_alias(h, 0, 2, shape);
    ht->shape[0] = 9, ht->shape[1] = 5, ht->stride[0] = 1, ht->stride[1] = 9; /* hᵀ */
    hft_tensor *d = hft_tensor_new_on(gpu, HFT_BF16, 2, tshape);
    CHECK(hft_tensor_copy(d, ht) == HFT_OK, "%s", hft_error_message());
    hft_tensor *want_bf = hft_tensor_new(HFT_BF16, 2, tshape);
    hft_tensor_copy(want_bf, ht);
    double got[45], want[45];
    CHECK(hft_tensor_to_f64(d, got) == HFT_OK, "%s", hft_error_message());
    hft_tensor_to_f64(want_bf, want);
    CHECK(memcmp(got, want, sizeof got) == 0, "f32 -> bf16 upload of a transposed view differs from the CPU's");

    /* down: the device tensor's transpose into an f32 host tensor */
    hft_tensor *dt = hft_tensor_alias(d, 0, 2, tshape);
    dt->shape[0] = 5, dt->shape[1] = 9, dt->stride[0] = 1, dt->stride[1] = 5;
    hft_tensor *back = hft_tensor_new(HFT_F32, 2, shape);
    CHECK(hft_tensor_copy(back, dt) == HFT_OK, "%s", hft_error_message());
    hft_tensor *want_back = hft_tensor_new(HFT_F32, 2, shape);
    hft_tensor *wt = hft_tensor_alias(want_bf, 0, 2, tshape);
    wt->shape[0] = 5, wt->shape[1] = 9, wt->stride[0] = 1, wt->stride[1] = 5;
    hft_tensor_copy(want_back, wt);
    hft_tensor_to_f64(back, got);
    hft_tensor_to_f64(want_back, want);
    CHECK(memcmp(got, want, sizeof got) == 0, "a transposed device view came down wrong");

    /* in place: the device tensor converted to f16 keeps its header and its (rounded) values */
    CHECK(hft_tensor_convert(d, HFT_F16) == HFT_OK && d->dtype == HFT_F16 && d->device.type == HFT_CUDA, "%s",
          hft_error_message());
    hft_tensor *want16 = hft_tensor_new(HFT_F16, 2, tshape);
    hft_tensor_copy(want16, want_bf);
    double g16[45], w16[45];
    hft_tensor_to_f64(d, g16);
    hft_tensor_to_f64(want16, w16);
    CHECK(memcmp(g16, w16, sizeof g16) == 0, "convert on the device differs from the CPU's");
    hft_tensor *list[] = {h, ht, d, want_bf, dt, back, want_back, wt, want16};
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++)
        hft_tensor_free(list[i]);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_new_on_is_zero_and_round_trips", test_new_on_is_zero_and_round_trips},
        {"test_strided_and_converting_copies", test_strided_and_converting_copies},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
