/* Typed reads from config.json with errors that name the file and the key. */
#include "nn/nn_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

hft_status nn_cfg_fail(nn_cfg *c, hft_status status, const char *key, const char *fmt, ...) {
    if (c->status != HFT_OK) return c->status;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->status = hft_error(status, "%s: '%s': %s", c->path, key, msg);
    return c->status;
}

static const cJSON *get(const nn_cfg *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

bool nn_cfg_has(const nn_cfg *c, const char *key) {
    return get(c, key) != NULL;
}

/* What a JSON value looks like, for messages. */
static void describe(const cJSON *v, char *buf, size_t size) {
    if (cJSON_IsString(v))
        snprintf(buf, size, "\"%.60s\"", v->valuestring);
    else if (cJSON_IsNumber(v))
        snprintf(buf, size, "%.17g", v->valuedouble);
    else if (cJSON_IsBool(v))
        snprintf(buf, size, "%s", cJSON_IsTrue(v) ? "true" : "false");
    else
        snprintf(buf, size, "%s", cJSON_IsArray(v) ? "a list" : "an object");
}

int64_t nn_cfg_int(nn_cfg *c, const char *key, int64_t def) {
    const cJSON *v = get(c, key);
    if (!v || c->status != HFT_OK) return def;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9.0e15) {
        char b[96];
        describe(v, b, sizeof b);
        nn_cfg_fail(c, HFT_EFORMAT, key, "expected an integer, got %s", b);
        return def;
    }
    return (int64_t)d;
}

int64_t nn_cfg_int_alias(nn_cfg *c, const char *key, const char *alias, int64_t def) {
    if (!nn_cfg_has(c, key) && alias && nn_cfg_has(c, alias)) return nn_cfg_int(c, alias, def);
    return nn_cfg_int(c, key, def);
}

int64_t nn_cfg_pos_int(nn_cfg *c, const char *key, const char *alias, int64_t def) {
    const char *used = (!nn_cfg_has(c, key) && alias && nn_cfg_has(c, alias)) ? alias : key;
    int64_t v = nn_cfg_int(c, used, def);
    if (c->status == HFT_OK && v < 1)
        nn_cfg_fail(c, HFT_EFORMAT, used, "expected a positive integer, got %lld", (long long)v);
    return v;
}

double nn_cfg_num(nn_cfg *c, const char *key, double def) {
    const cJSON *v = get(c, key);
    if (!v || c->status != HFT_OK) return def;
    if (!cJSON_IsNumber(v)) {
        char b[96];
        describe(v, b, sizeof b);
        nn_cfg_fail(c, HFT_EFORMAT, key, "expected a number, got %s", b);
        return def;
    }
    return v->valuedouble;
}

bool nn_cfg_bool(nn_cfg *c, const char *key, bool def) {
    const cJSON *v = get(c, key);
    if (!v || c->status != HFT_OK) return def;
    if (!cJSON_IsBool(v)) {
        char b[96];
        describe(v, b, sizeof b);
        nn_cfg_fail(c, HFT_EFORMAT, key, "expected true or false, got %s", b);
        return def;
    }
    return cJSON_IsTrue(v);
}

const char *nn_cfg_str(nn_cfg *c, const char *key, const char *def) {
    const cJSON *v = get(c, key);
    if (!v || c->status != HFT_OK) return def;
    if (!cJSON_IsString(v)) {
        char b[96];
        describe(v, b, sizeof b);
        nn_cfg_fail(c, HFT_EFORMAT, key, "expected a string, got %s", b);
        return def;
    }
    return v->valuestring;
}

const cJSON *nn_cfg_obj(nn_cfg *c, const char *key) {
    const cJSON *v = get(c, key);
    if (!v || c->status != HFT_OK) return NULL;
    if (!cJSON_IsObject(v)) {
        char b[96];
        describe(v, b, sizeof b);
        nn_cfg_fail(c, HFT_EFORMAT, key, "expected an object, got %s", b);
        return NULL;
    }
    return v;
}
