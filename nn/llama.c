/* Placeholder until the llama family lands. */
#include "nn/nn_internal.h"

static hft_status llama_build(hft_model *m) {
    return hft_error(HFT_EUNSUPPORTED, "%s: the llama family is not implemented yet", m->architecture);
}

const nn_family nn_family_llama = {
    .name = "llama",
    .architectures = (const char *const[]){"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", NULL},
    .build = llama_build,
};
