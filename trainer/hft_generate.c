/* hft-generate MODEL_DIR_OR_CHECKPOINT [--prompt TEXT | --file PROMPTS.jsonl | --perplexity TEXT_FILE]
 * [--base DIR] [--device cpu|cuda|cuda:N] [key=value ...]: continues a prompt with a model folder, a run's
 * checkpoint or a LoRA adapter on its base, streaming the text as it comes and saying the speed; or answers
 * a JSONL file of prompts with JSONL; or measures a text's perplexity with transformers' sliding window, on
 * the CPU or a GPU. Decoding settings come from the folder's generation_config.json, then from key=value. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "data/data.h"
#include "nn/nn.h"
#include "trainer/fsutil.h"

static int usage(void) {
    fprintf(
        stderr,
        "usage: hft-generate MODEL_DIR_OR_CHECKPOINT [--prompt TEXT | --file PROMPTS.jsonl |\n"
        "                    --perplexity TEXT_FILE] [--chat] [--base BASE_DIR] [--device DEV] [key=value "
        "...]\n"
        "  --device: cpu (the default), cuda or cuda:N: the model, its KV cache and every forward pass "
        "there\n"
        "  --chat: the prompt is a user message (in --file, a row may give \"messages\"), rendered with the\n"
        "  tokenizer's chat template and its generation prompt\n"
        "  keys (transformers' names; defaults from generation_config.json): max_new_tokens, do_sample,\n"
        "  temperature, top_k, top_p, min_p, repetition_penalty, seed, stop_strings=A,B;\n"
        "  perplexity: max_length, stride\n"
        "  --file: one JSON object a line with \"prompt\"; writes one a line with \"completion\" added\n"
        "  a LoRA adapter folder runs on its base (adapter_config.json's, or --base)\n");
    return 2;
}

typedef struct stream {
    const hft_tokenizer *tok;
    int32_t *ids;
    int64_t n;
    size_t printed; /* bytes of the decoded text already written */
    bool quiet;     /* --file: nothing printed as it comes */
} stream;

/* stop_strings (generation_config.json's, or stop_strings=a,b): generation ends once the text holds one, as
 * transformers' StopStringCriteria ends it (the stop string stays in the text). */
static char *stop_strings[16];
static int n_stop;

static void add_stop_strings(const char *list) {
    char *copy = strdup(list);
    for (char *save = NULL, *tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && n_stop < 16;
         tok = strtok_r(NULL, ",", &save))
        if (*tok) stop_strings[n_stop++] = strdup(tok);
    free(copy);
}

/* Prints what the new token adds to the decoded text (a token can end inside a character: decoding the
 * whole continuation again keeps the output whole). */
static bool on_token(int64_t token, void *user) {
    stream *s = user;
    s->ids[s->n++] = (int32_t)token;
    char *text = NULL;
    size_t len = 0;
    bool go_on = true;
    if (hft_tokenizer_decode(s->tok, s->ids, s->n, true, &text, &len) == HFT_OK) {
        if (len > s->printed && !s->quiet) {
            fwrite(text + s->printed, 1, len - s->printed, stdout);
            fflush(stdout);
        }
        s->printed = len;
        for (int i = 0; i < n_stop && go_on; i++)
            go_on = !memmem(text, len, stop_strings[i], strlen(stop_strings[i]));
    }
    free(text);
    return go_on;
}

/* generation_config.json's settings over transformers' defaults. */
static void read_generation_config(const char *dir, hft_generate_options *o, int64_t *eos, int *n_eos) {
    char *path = hft_path_join(dir, "generation_config.json");
    char *text = path ? hft_read_text(path, NULL) : NULL;
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    const cJSON *x;
    if ((x = cJSON_GetObjectItem(j, "do_sample")) && cJSON_IsBool(x)) o->do_sample = cJSON_IsTrue(x);
    if ((x = cJSON_GetObjectItem(j, "temperature")) && cJSON_IsNumber(x)) o->temperature = x->valuedouble;
    if ((x = cJSON_GetObjectItem(j, "top_k")) && cJSON_IsNumber(x)) o->top_k = x->valueint;
    if ((x = cJSON_GetObjectItem(j, "top_p")) && cJSON_IsNumber(x)) o->top_p = x->valuedouble;
    if ((x = cJSON_GetObjectItem(j, "min_p")) && cJSON_IsNumber(x)) o->min_p = x->valuedouble;
    if ((x = cJSON_GetObjectItem(j, "repetition_penalty")) && cJSON_IsNumber(x))
        o->repetition_penalty = x->valuedouble;
    if ((x = cJSON_GetObjectItem(j, "max_new_tokens")) && cJSON_IsNumber(x)) o->max_new_tokens = x->valueint;
    const cJSON *e;
    if ((x = cJSON_GetObjectItem(j, "stop_strings")) && cJSON_IsString(x)) add_stop_strings(x->valuestring);
    if (x && cJSON_IsArray(x))
        cJSON_ArrayForEach(e, x) if (cJSON_IsString(e) && n_stop < 16) stop_strings[n_stop++] =
            strdup(e->valuestring);
    if ((x = cJSON_GetObjectItem(j, "eos_token_id"))) {
        if (cJSON_IsNumber(x)) eos[(*n_eos)++] = x->valueint;
        if (cJSON_IsArray(x))
            cJSON_ArrayForEach(e, x) if (cJSON_IsNumber(e) && *n_eos < 8) eos[(*n_eos)++] = e->valueint;
    }
    cJSON_Delete(j);
    free(text), free(path);
}

static int64_t ppl_max_length, ppl_stride = 512; /* the perplexity guide's stride */

static bool set_key(hft_generate_options *o, const char *kv) {
    const char *eq = strchr(kv, '=');
    size_t n = (size_t)(eq - kv);
    const char *v = eq + 1;
    char *end = NULL;
    double d = strtod(v, &end);
    bool num = end && end != v && *end == '\0';
#define KEY(name) (n == strlen(name) && strncmp(kv, name, n) == 0)
    if (KEY("do_sample") && (strcmp(v, "true") == 0 || strcmp(v, "false") == 0))
        o->do_sample = v[0] == 't';
    else if (KEY("max_new_tokens") && num && d >= 0)
        o->max_new_tokens = (int64_t)d;
    else if (KEY("temperature") && num)
        o->temperature = d;
    else if (KEY("top_k") && num && d >= 0)
        o->top_k = (int64_t)d;
    else if (KEY("top_p") && num)
        o->top_p = d;
    else if (KEY("min_p") && num)
        o->min_p = d;
    else if (KEY("repetition_penalty") && num)
        o->repetition_penalty = d;
    else if (KEY("seed") && num && d >= 0)
        o->seed = (uint64_t)d;
    else if (KEY("max_length") && num && d >= 2)
        ppl_max_length = (int64_t)d;
    else if (KEY("stride") && num && d >= 1)
        ppl_stride = (int64_t)d;
    else if (KEY("stop_strings") && *v)
        add_stop_strings(v);
    else
        return false;
#undef KEY
    return true;
}

/* --device: where the model, the KV cache and the forward passes run; contexts are made for it. */
static hft_device device = {HFT_CPU, 0};

static hft_ctx *new_ctx(void) {
    return hft_ctx_new(&(hft_ctx_options){.device = device});
}

static hft_status use_device(const char *name, hft_model *m) {
    if (strcmp(name, "cpu") == 0) return HFT_OK;
    if (strncmp(name, "cuda", 4) != 0 || (name[4] && name[4] != ':'))
        return hft_error(HFT_EINVAL, "--device %s: expected cpu, cuda or cuda:N", name);
    const hft_kernels *k = hft_cuda_load();
    if (!k) return hft_error(hft_error_status(), "--device %s: %s", name, hft_error_message());
    int index = name[4] == ':' ? atoi(name + 5) : 0, n = k->dev->device_count();
    if (index < 0 || index >= n)
        return hft_error(HFT_EDEVICE, "--device %s: this machine has %d GPU%s", name, n, n == 1 ? "" : "s");
    HFT_TRY(k->dev->set_device(index));
    device = (hft_device){HFT_CUDA, index};
    return hft_model_to_device(m, device);
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* The model (and the folder its tokenizer is in): a model folder or checkpoint, or an adapter on its base. */
static hft_status load(const char *dir, const char *base, hft_model **m, char **tok_dir) {
    char *cfg = hft_path_join(dir, "adapter_config.json");
    bool adapter = cfg && fs_exists(cfg);
    free(cfg);
    if (!adapter) {
        *tok_dir = strdup(dir);
        return hft_model_load(dir, &(hft_load_options){.hold_as_stored = false}, m);
    }
    char *named = NULL;
    if (!base) {
        char *path = hft_path_join(dir, "adapter_config.json"), *text = hft_read_text(path, NULL);
        cJSON *j = text ? cJSON_Parse(text) : NULL;
        const cJSON *b = cJSON_GetObjectItem(j, "base_model_name_or_path");
        named = cJSON_IsString(b) ? strdup(b->valuestring) : NULL;
        cJSON_Delete(j);
        free(text), free(path);
        base = named;
    }
    if (!base || !fs_is_dir(base)) {
        hft_status st =
            hft_error(HFT_EIO, "%s: a LoRA adapter whose base %s is not here: give it with --base DIR", dir,
                      base ? base : "(unnamed)");
        free(named);
        return st;
    }
    hft_status st = hft_model_load(base, &(hft_load_options){.hold_as_stored = true}, m);
    if (st == HFT_OK) st = hft_lora_load(*m, dir);
    char *tj = hft_path_join(dir, "tokenizer.json");
    *tok_dir = strdup(tj && fs_exists(tj) ? dir : base);
    free(tj), free(named);
    return st;
}

/* --chat: prompts are user messages (or, in --file, a row's "messages"), rendered with the tokenizer's chat
 * template and the generation prompt, as apply_chat_template(..., add_generation_prompt=True) renders them.
 */
static bool chat;

static hft_status render_chat(const hft_tokenizer *tok, const char *messages_json, char **text) {
    const char *src = hft_tokenizer_chat_template(tok);
    if (!src) return hft_error(HFT_EINVAL, "--chat: the tokenizer has no chat_template");
    hft_chat_template *t = NULL;
    HFT_TRY(hft_chat_template_parse(src, "the tokenizer's chat_template", &t));
    hft_special_tokens sp = hft_tokenizer_specials(tok);
    hft_status st = hft_chat_template_render(
        t, messages_json, sp.bos >= 0 ? hft_tokenizer_id_to_token(tok, sp.bos) : NULL,
        sp.eos >= 0 ? hft_tokenizer_id_to_token(tok, sp.eos) : NULL, true, text);
    hft_chat_template_free(t);
    return st;
}

/* A user message as a one-message conversation, in JSON. */
static char *user_message(const char *text) {
    cJSON *a = cJSON_CreateArray(), *m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "role", "user");
    cJSON_AddStringToObject(m, "content", text);
    cJSON_AddItemToArray(a, m);
    char *json = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    return json;
}

/* The ids of a text as the tokenizer encodes it with its special tokens (what tokenizer(text) gives); with
 * --chat, of the rendered conversation, encoded without added special tokens (the template wrote them). */
static hft_status encode_as(const hft_tokenizer *tok, const char *text, bool add_special, int64_t **ids,
                            int64_t *n) {
    hft_encoding enc = {0};
    HFT_TRY(hft_tokenizer_encode(tok, text, strlen(text), NULL, 0, add_special, &enc));
    *ids = malloc(sizeof **ids * (size_t)(enc.n + 1));
    if (!*ids) return hft_error(HFT_ENOMEM, "out of memory");
    for (int64_t i = 0; i < enc.n; i++) (*ids)[i] = enc.ids[i];
    *n = enc.n;
    if (*n == 0) { /* an empty prompt starts from the beginning-of-text token */
        hft_special_tokens sp = hft_tokenizer_specials(tok);
        (*ids)[(*n)++] = sp.bos >= 0 ? sp.bos : (sp.eos >= 0 ? sp.eos : 0);
    }
    hft_encoding_free(&enc);
    return HFT_OK;
}

static hft_status encode(const hft_tokenizer *tok, const char *text, int64_t **ids, int64_t *n) {
    return encode_as(tok, text, true, ids, n);
}

/* A prompt's ids: the text itself, or with --chat the conversation (a user message, or messages_json). */
static hft_status prompt_ids(const hft_tokenizer *tok, const char *text, const char *messages_json,
                             int64_t **ids, int64_t *n) {
    if (!chat) return encode(tok, text, ids, n);
    char *json = messages_json ? strdup(messages_json) : user_message(text), *rendered = NULL;
    hft_status st = json ? render_chat(tok, json, &rendered) : hft_error(HFT_ENOMEM, "out of memory");
    if (st == HFT_OK) st = encode_as(tok, rendered, false, ids, n);
    free(json), free(rendered);
    return st;
}

static hft_status perplexity(hft_model *m, const hft_tokenizer *tok, const char *path) {
    char *text = hft_read_text(path, NULL);
    if (!text) return hft_error(HFT_EIO, "%s: cannot read", path);
    int64_t *ids = NULL, n = 0, tokens = 0;
    hft_status st = encode(tok, text, &ids, &n);
    free(text);
    int64_t max_length = ppl_max_length ? ppl_max_length : hft_model_max_positions(m);
    if (max_length <= 0) max_length = 1024;
    int64_t stride = ppl_stride < max_length ? ppl_stride : max_length;
    hft_ctx *ctx = st == HFT_OK ? new_ctx() : NULL;
    double ppl = 0;
    if (ctx) st = hft_perplexity(ctx, m, ids, n, max_length, stride, &ppl, &tokens);
    if (st == HFT_OK)
        printf(
            "%s: perplexity %.4f over %lld tokens (windows of %lld, stride %lld, as transformers' guide)\n",
            path, ppl, (long long)tokens, (long long)max_length, (long long)stride);
    hft_ctx_free(ctx);
    free(ids);
    return st;
}

/* --file: a JSON object a line with "prompt"; the same objects back with "completion" added, one a line.
 * Prompts go through in batches of FILE_BATCH (left-padded, as transformers batches them); with stop strings,
 * one at a time, so that each can stop at its own. */
#define FILE_BATCH 8

typedef struct file_row {
    cJSON *json;
    int64_t *ids, n;
} file_row;

static hft_status answer_rows(hft_ctx *ctx, hft_model *m, const hft_tokenizer *tok,
                              const hft_generate_options *o, file_row *rows, int n_rows) {
    int64_t K = o->max_new_tokens, n_out[FILE_BATCH] = {0}, lengths[FILE_BATCH];
    const int64_t *prompts[FILE_BATCH];
    int64_t *out = malloc(sizeof *out * (size_t)(FILE_BATCH * (K + 1)));
    int32_t *out32 = malloc(sizeof *out32 * (size_t)(K + 1));
    hft_status st = out && out32 ? HFT_OK : hft_error(HFT_ENOMEM, "out of memory");
    for (int r = 0; r < n_rows; r++) prompts[r] = rows[r].ids, lengths[r] = rows[r].n;
    if (st == HFT_OK && n_stop == 0) {
        hft_special_tokens sp = hft_tokenizer_specials(tok);
        st = hft_generate_batch(ctx, m, prompts, lengths, n_rows,
                                sp.pad >= 0   ? sp.pad
                                : sp.eos >= 0 ? sp.eos
                                              : 0,
                                o, out, n_out);
    }
    for (int r = 0; r < n_rows && st == HFT_OK; r++) {
        int64_t *row = out + (size_t)r * (size_t)K;
        stream s = {.tok = tok, .ids = out32, .quiet = true};
        if (n_stop > 0) st = hft_generate(ctx, m, prompts[r], lengths[r], o, row, &n_out[r], on_token, &s);
        for (int64_t i = 0; i < n_out[r]; i++) out32[i] = (int32_t)row[i];
        char *text = NULL;
        size_t len = 0;
        if (st == HFT_OK) st = hft_tokenizer_decode(tok, out32, n_out[r], true, &text, &len);
        if (st == HFT_OK) {
            char *completion = strndup(text, len);
            cJSON_AddStringToObject(rows[r].json, "completion", completion);
            cJSON_AddNumberToObject(rows[r].json, "completion_tokens", (double)n_out[r]);
            char *line = cJSON_PrintUnformatted(rows[r].json);
            printf("%s\n", line);
            fflush(stdout);
            free(line), free(completion);
        }
        free(text);
    }
    free(out), free(out32);
    return st;
}

static hft_status answer_file(hft_model *m, const hft_tokenizer *tok, const char *path,
                              const hft_generate_options *o) {
    FILE *fp = fopen(path, "r");
    if (!fp) return hft_error(HFT_EIO, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    long no = 0;
    hft_ctx *ctx = new_ctx();
    hft_status st = ctx ? HFT_OK : hft_error_status();
    file_row rows[FILE_BATCH];
    int n_rows = 0;
    bool more = true;
    while (st == HFT_OK && more) {
        more = getline(&line, &cap, fp) > 0;
        if (more && strspn(line, " \t\r\n") == strlen(line)) {
            no++;
            continue;
        }
        if (more) {
            no++;
            cJSON *j = cJSON_Parse(line);
            const cJSON *p = cJSON_GetObjectItem(j, "prompt"), *msgs = cJSON_GetObjectItem(j, "messages");
            if (!cJSON_IsString(p) && !(chat && cJSON_IsArray(msgs))) {
                cJSON_Delete(j);
                st = hft_error(HFT_EFORMAT, "%s:%ld: expected a JSON object with a string \"prompt\"%s", path,
                               no, chat ? " or a \"messages\" list" : "");
                break;
            }
            char *mj = cJSON_IsArray(msgs) ? cJSON_PrintUnformatted(msgs) : NULL;
            rows[n_rows] = (file_row){.json = j};
            st = prompt_ids(tok, cJSON_IsString(p) ? p->valuestring : "", mj, &rows[n_rows].ids,
                            &rows[n_rows].n);
            free(mj);
            n_rows++;
        }
        if (st == HFT_OK && n_rows > 0 && (n_rows == FILE_BATCH || !more)) {
            st = answer_rows(ctx, m, tok, o, rows, n_rows);
            for (int r = 0; r < n_rows; r++) cJSON_Delete(rows[r].json), free(rows[r].ids);
            n_rows = 0;
        }
    }
    for (int r = 0; r < n_rows; r++) cJSON_Delete(rows[r].json), free(rows[r].ids);
    free(line);
    hft_ctx_free(ctx);
    fclose(fp);
    return st;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *prompt = "", *base = NULL, *file = NULL, *ppl_file = NULL, *device_name = "cpu";
    hft_generate_options o = hft_generate_defaults();
    int64_t eos[8];
    int n_eos = 0;
    const char *keys[64];
    int n_keys = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--prompt") == 0 && i + 1 < argc)
            prompt = argv[++i];
        else if (strcmp(argv[i], "--file") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--perplexity") == 0 && i + 1 < argc)
            ppl_file = argv[++i];
        else if (strcmp(argv[i], "--chat") == 0)
            chat = true;
        else if (strcmp(argv[i], "--base") == 0 && i + 1 < argc)
            base = argv[++i];
        else if (strcmp(argv[i], "--device") == 0 && i + 1 < argc)
            device_name = argv[++i];
        else if (!dir && argv[i][0] != '-' && fs_is_dir(argv[i]))
            dir = argv[i];
        else if (strchr(argv[i], '=') && n_keys < 64)
            keys[n_keys++] = argv[i];
        else if (argv[i][0] != '-' && !dir)
            dir = argv[i];
        else
            return usage();
    }
    if (!dir) return usage();
    hft_model *m = NULL;
    hft_tokenizer *tok = NULL;
    char *tok_dir = NULL;
    if (hft_runtime_init() != HFT_OK || load(dir, base, &m, &tok_dir) != HFT_OK ||
        use_device(device_name, m) != HFT_OK || hft_tokenizer_load(tok_dir, &tok) != HFT_OK) {
        fprintf(stderr, "hft-generate: %s\n", hft_error_message());
        return 1;
    }
    read_generation_config(tok_dir, &o, eos, &n_eos);
    o.eos = eos, o.n_eos = n_eos;
    for (int i = 0; i < n_keys; i++)
        if (!set_key(&o, keys[i])) {
            fprintf(
                stderr,
                "hft-generate: %s: unknown key or bad value (keys: max_new_tokens, do_sample, temperature, "
                "top_k, top_p, min_p, repetition_penalty, seed, stop_strings, max_length, stride)\n",
                keys[i]);
            return 2;
        }
    if (file || ppl_file) {
        hft_status st = ppl_file ? perplexity(m, tok, ppl_file) : answer_file(m, tok, file, &o);
        if (st != HFT_OK) fprintf(stderr, "hft-generate: %s\n", hft_error_message());
        free(tok_dir);
        hft_tokenizer_free(tok);
        hft_model_free(m);
        return st == HFT_OK ? 0 : 1;
    }
    int64_t *ids = NULL, n = 0, *out = malloc(sizeof *out * (size_t)(o.max_new_tokens + 1));
    hft_status st = prompt_ids(tok, prompt, NULL, &ids, &n);
    stream s = {.tok = tok, .ids = malloc(sizeof(int32_t) * (size_t)(o.max_new_tokens + 1))};
    hft_ctx *ctx = st == HFT_OK ? new_ctx() : NULL;
    int64_t n_out = 0;
    double t0 = now();
    if (!chat) fputs(prompt, stdout); /* a chat answer is printed by itself */
    if (st == HFT_OK && ctx) st = hft_generate(ctx, m, ids, n, &o, out, &n_out, on_token, &s);
    double dt = now() - t0;
    printf("\n");
    fflush(stdout);
    if (st != HFT_OK)
        fprintf(stderr, "hft-generate: %s\n", hft_error_message());
    else
        fprintf(stderr, "%lld tokens in %.2f s: %.1f tokens/s (%s, prompt of %lld tokens)\n",
                (long long)n_out, dt, dt > 0 ? (double)n_out / dt : 0, o.do_sample ? "sampling" : "greedy",
                (long long)n);
    free(ids), free(out), free(s.ids), free(tok_dir);
    hft_ctx_free(ctx);
    hft_tokenizer_free(tok);
    hft_model_free(m);
    return st == HFT_OK ? 0 : 1;
}
