/* The CUDA module: it loads (the GPU module, or the host emulator), reports its device, moves memory both
 * ways, refuses a device that is not there, and fills every slot of the op table the CPU table fills. */
#include "tests/cuda_test_util.h"

TEST(test_memory_round_trip) {
    float h[1000], back[1000];
    for (int i = 0; i < 1000; i++) h[i] = (float)i * 0.25f - 7.0f;
    float *a = dev_upload(h, sizeof h);
    float *b = dev_garbage(sizeof h);
    CHECK(cuda_k->dev->copy(b, a, sizeof h, HFT_COPY_D2D) == HFT_OK, "%s", hft_error_message());
    dev_download(back, b, sizeof back);
    CHECK(memcmp(back, h, sizeof h) == 0, "device to device copy changed the data");
    CHECK(cuda_k->dev->zero(b, sizeof h) == HFT_OK, "%s", hft_error_message());
    dev_download(back, b, sizeof back);
    int zeros = 0;
    for (int i = 0; i < 1000; i++) zeros += back[i] == 0.0f;
    CHECK(zeros == 1000, "zero left %d values", 1000 - zeros);
    dev_sync("round trip");
    dev_free(a);
    dev_free(b);
}

TEST(test_missing_device_is_named) {
    int n = cuda_k->dev->device_count();
    CHECK(n >= 1, "no devices");
    CHECK(cuda_k->dev->set_device(n + 3) != HFT_OK, "device %d accepted", n + 3);
    CHECK(strstr(hft_error_message(), "has") != NULL, "message: %s", hft_error_message());
    CHECK(cuda_k->dev->set_device(0) == HFT_OK, "%s", hft_error_message());
}

/* Every op slot the CPU table fills for f32 is filled for f32 on CUDA too (f64 is the CPU's gradient-check
 * dtype and has no CUDA twin; Adafactor is CPU-only, as its row/column statistics are). */
TEST(test_table_complete) {
#define SLOT(field)                                                                                          \
    CHECK(!cpu_k->field[HFT_F32] || cuda_k->field[HFT_F32], "CUDA table lacks %s[f32]", #field)
    SLOT(gemm);
    SLOT(map);
    SLOT(reduce);
    SLOT(fill);
    SLOT(softmax_fwd);
    SLOT(softmax_bwd);
    SLOT(norm_fwd);
    SLOT(norm_bwd);
    SLOT(embedding_fwd);
    SLOT(embedding_bwd);
    SLOT(dropout);
    SLOT(xent_fwd);
    SLOT(xent_bwd);
    SLOT(rope);
    SLOT(attn_fwd);
    SLOT(attn_bwd);
    SLOT(sum);
    SLOT(adam_step);
    SLOT(sgd_step);
    SLOT(lion_step);
    SLOT(adafactor_step);
    SLOT(sumsq);
#undef SLOT
    CHECK(cuda_k->copy && cuda_k->round_to && cuda_k->norm_scratch_bytes && cuda_k->attn_scratch_bytes,
          "CUDA table lacks copy, round_to or a scratch-size function");
    CHECK(cuda_k->gemm[HFT_BF16] && cuda_k->gemm[HFT_F16], "CUDA table lacks the bf16/f16 GEMMs");
    CHECK(cuda_k->attn_fwd[HFT_BF16] && cuda_k->attn_bwd[HFT_BF16], "CUDA table lacks bf16 attention");
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"test_memory_round_trip", test_memory_round_trip},
        {"test_missing_device_is_named", test_missing_device_is_named},
        {"test_table_complete", test_table_complete},
    };
    return cuda_test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
}
