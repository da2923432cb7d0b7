/* Linear modules as transformers names them: declaring a projection's parameters, and applying it with
 * the LoRA branch an adapter may have attached. */
#include "nn/nn_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool remember(hft_model *m, nn_linear *lin) {
    if (m->n_linears == m->linears_cap) {
        int cap = m->linears_cap ? 2 * m->linears_cap : 64;
        nn_linear **l = realloc(m->linears, (size_t)cap * sizeof *l);
        if (!l) return false;
        m->linears = l;
        m->linears_cap = cap;
    }
    m->linears[m->n_linears++] = lin;
    return true;
}

bool nn_linear_decl(hft_model *m, nn_linear *lin, nn_init w_init, const nn_init *b_init, bool head,
                    bool conv1d, int64_t in, int64_t out, const char *module_fmt, ...) {
    if (m->status != HFT_OK) return false;
    char module[240];
    va_list ap;
    va_start(ap, module_fmt);
    vsnprintf(module, sizeof module, module_fmt, ap);
    va_end(ap);
    *lin = (nn_linear){.conv1d = conv1d, .in = in, .out = out};
    lin->module = strdup(module);
    if (!lin->module || !remember(m, lin)) {
        free(lin->module);
        lin->module = NULL;
        m->status = hft_error(HFT_ENOMEM, "out of memory");
        return false;
    }
    int64_t wshape[2] = {conv1d ? in : out, conv1d ? out : in};
    lin->weight = nn_param(m, w_init, 0, head, 2, wshape, "%s.weight", module);
    if (b_init) lin->bias = nn_param(m, *b_init, HFT_PARAM_NO_DECAY, head, 1, &out, "%s.bias", module);
    return m->status == HFT_OK;
}

void nn_linears_free(hft_model *m) {
    for (int i = 0; i < m->n_linears; i++) {
        free(m->linears[i]->module);
        m->linears[i]->module = NULL;
    }
    free(m->linears);
    m->linears = NULL;
    m->n_linears = m->linears_cap = 0;
}

hft_tensor *nn_linear_forward(hft_ctx *ctx, const nn_linear *lin, hft_tensor *x, bool train) {
    /* Conv1D computes x W + b with W [in, out]: linear takes [out, in], so it gets the transposed view (no
     * copy; the weight gradient is written transposed) */
    hft_tensor *w = lin->conv1d ? hft_transpose(ctx, lin->weight, 0, 1) : lin->weight;
    const nn_lora *l = &lin->lora;
    if (!l->a) return hft_linear(ctx, x, w, lin->bias);
    hft_tensor *xd = train && l->dropout > 0 ? hft_dropout(ctx, x, l->dropout, l->site) : x;
    return hft_lora_linear(ctx, x, w, lin->bias, xd, l->a, l->b, l->scaling);
}
