/* Placeholder until the bert family lands. */
#include "nn/nn_internal.h"

static hft_status bert_build(hft_model *m) {
    return hft_error(HFT_EUNSUPPORTED, "%s: the bert family is not implemented yet", m->architecture);
}

const nn_family nn_family_bert = {
    .name = "bert",
    .architectures = (const char *const[]){"BertModel", "BertForSequenceClassification", "BertForMaskedLM", NULL},
    .build = bert_build,
};
