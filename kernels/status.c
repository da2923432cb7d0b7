/* Status codes and the per-thread last-error message (the SQLite/errno pattern: a code returned, the
 * words kept for whoever reports it). */
#include "kernels/kernels.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_text[1024];
static _Thread_local hft_status error_code = HFT_OK;

hft_status hft_error(hft_status status, const char *fmt, ...) {
    /* formatted apart first: callers wrap the last message ("%s: %s", where, hft_error_message()) */
    char text[sizeof error_text];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(error_text, text, sizeof text);
    error_code = status;
    return status;
}

const char *hft_error_message(void) {
    return error_text;
}
hft_status hft_error_status(void) {
    return error_code;
}

void hft_error_clear(void) {
    error_text[0] = '\0';
    error_code = HFT_OK;
}

const char *hft_status_name(hft_status status) {
    switch (status) {
    case HFT_OK:
        return "ok";
    case HFT_EINVAL:
        return "invalid argument";
    case HFT_EIO:
        return "I/O error";
    case HFT_EFORMAT:
        return "malformed file";
    case HFT_EUNSUPPORTED:
        return "not supported";
    case HFT_ENOMEM:
        return "out of memory";
    case HFT_EDEVICE:
        return "device error";
    case HFT_EDIST:
        return "distributed error";
    case HFT_ESTATE:
        return "invalid state";
    case HFT_ENUMERIC:
        return "non-finite value";
    }
    return "unknown status";
}
