/* training_state.h5 (see train_state.h): scalars as attributes of the root group, optimizer tensors as
 * float32 datasets under /optimizer/<state>/<parameter name>, and a CRC-32 (zlib) over the scalars' text
 * and every tensor's name and bytes, checked before anything is used. */
#include "trainer/train_state.h"

#include <hdf5.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define FORMAT  "hft training state"
#define VERSION 1

/* HDF5's error stack as one message. */
static herr_t collect(unsigned n, const H5E_error2_t *e, void *buf) {
    char *msg = buf;
    size_t len = strlen(msg);
    if (n < 3 && len < 400) snprintf(msg + len, 512 - len, "%s%s", len ? "; " : "", e->desc);
    return 0;
}

static hft_status h5_fail(const char *path, const char *what) {
    char msg[512] = "";
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_DOWNWARD, collect, msg);
    H5Eclear2(H5E_DEFAULT);
    return hft_error(HFT_EIO, "%s: %s%s%s", path, what, *msg ? ": " : "", msg);
}

static void quiet_hdf5(void) {
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static hid_t file_access(void) {
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_file_locking(fapl, 0, 1);
    return fapl;
}

/* The scalars in a fixed text form: what the checksum covers of them. */
static void scalars_text(const train_state *s, char *buf, size_t size) {
    snprintf(buf, size,
             "%" PRId64 " %.17g %" PRId64 " %" PRId64 " %" PRId64 " %.17g %" PRId64 " %" PRId64 " %" PRId64
             " %" PRId64 " %.17g %.17g %" PRId64 " %" PRId64 " %" PRId64 " %s %s %s",
             s->global_step, s->epoch, s->cursor.epoch, s->cursor.offset, s->tokens_seen, s->total_flos,
             s->seed, s->data_seed, s->world_size, s->optimizer_steps, s->schedule.multiplier,
             s->schedule.best, s->schedule.num_bad_epochs, s->schedule.cooldown_counter,
             s->schedule.last_epoch, s->model_fingerprint, s->recipe_fingerprint, s->base_digest);
    if (s->scaler_scale != 0 || s->skipped_steps != 0) { /* fp16 runs; older files have neither */
        size_t n = strlen(buf);
        snprintf(buf + n, size - n, " %.17g %" PRId64 " %" PRId64, s->scaler_scale, s->scaler_growth_tracker,
                 s->skipped_steps);
    }
}

typedef struct attr {
    const char *name;
    bool is_double;
    size_t off;
} attr;

#define A(name, dbl, field)                                                                                  \
    { name, dbl, offsetof(train_state, field) }
static const attr attrs[] = {
    A("global_step", false, global_step),
    A("epoch", true, epoch),
    A("cursor_epoch", false, cursor.epoch),
    A("cursor_offset", false, cursor.offset),
    A("tokens_seen", false, tokens_seen),
    A("total_flos", true, total_flos),
    A("seed", false, seed),
    A("data_seed", false, data_seed),
    A("world_size", false, world_size),
    A("optimizer_steps", false, optimizer_steps),
    A("schedule_multiplier", true, schedule.multiplier),
    A("schedule_best", true, schedule.best),
    A("schedule_num_bad_epochs", false, schedule.num_bad_epochs),
    A("schedule_cooldown_counter", false, schedule.cooldown_counter),
    A("schedule_last_epoch", false, schedule.last_epoch),
};
static const attr optional[] = {
    A("scaler_scale", true, scaler_scale),
    A("scaler_growth_tracker", false, scaler_growth_tracker),
    A("skipped_steps", false, skipped_steps),
};
#undef A
#define N_ATTRS    ((int)(sizeof attrs / sizeof attrs[0]))
#define N_OPTIONAL ((int)(sizeof optional / sizeof optional[0]))

static bool write_attr(hid_t obj, const char *name, hid_t type, const void *v) {
    hid_t space = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    bool ok = a >= 0 && H5Awrite(a, type, v) >= 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(space);
    return ok;
}

static bool write_string_attr(hid_t obj, const char *name, const char *v) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(v) + 1);
    bool ok = write_attr(obj, name, type, v);
    H5Tclose(type);
    return ok;
}

static bool read_attr(hid_t obj, const char *name, hid_t type, void *v) {
    if (H5Aexists(obj, name) <= 0) return false;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    bool ok = a >= 0 && H5Aread(a, type, v) >= 0;
    if (a >= 0) H5Aclose(a);
    return ok;
}

static bool read_string_attr(hid_t obj, const char *name, char *buf, size_t size) {
    if (H5Aexists(obj, name) <= 0) return false;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t ft = H5Aget_type(a);
    size_t n = H5Tget_size(ft);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    char *tmp = calloc(1, n + 1);
    bool ok = tmp && H5Aread(a, mt, tmp) >= 0;
    if (ok) snprintf(buf, size, "%s", tmp);
    free(tmp);
    H5Tclose(mt);
    H5Tclose(ft);
    H5Aclose(a);
    return ok;
}

static uLong crc_tensor(uLong crc, const char *name, const hft_tensor *t) {
    crc = crc32(crc, (const Bytef *)name, (uInt)strlen(name));
    const Bytef *p = hft_tensor_data(t);
    size_t n = hft_tensor_nbytes(t);
    while (n > 0) { /* crc32 takes 32-bit lengths */
        uInt chunk = n > (1u << 30) ? (1u << 30) : (uInt)n;
        crc = crc32(crc, p, chunk);
        p += chunk;
        n -= chunk;
    }
    return crc;
}

/* Named state i as a view of the optimizer's own flat buffer (unsharded: the buffer is whole), or fetched
 * whole from the ranks (sharded). Free it. */
static hft_status state_values(hft_optimizer *opt, const state_fetch *fetch, int i,
                               hft_optim_state_info *info, hft_tensor **out) {
    *out = NULL;
    HFT_TRY(hft_optimizer_state_info(opt, i, info));
    if (fetch) return fetch->values(fetch->user, info, out);
    hft_tensor *buf;
    int64_t lo = 0;
    HFT_TRY(hft_optimizer_state_buffer(opt, info->buffer, &buf, &lo));
    if (!buf || lo != 0)
        return hft_error(HFT_ESTATE, "optimizer state '%s': the optimizer is sharded and nothing gathers it",
                         info->name);
    *out = hft_tensor_alias(buf, info->offset, info->ndim, info->shape);
    return *out ? HFT_OK : hft_error_status();
}

/* Values read from the file for named state i (host, its whole shape) into the optimizer: the part that
 * lies in its shard (all of it when unsharded). */
static hft_status state_store(hft_optimizer *opt, const hft_optim_state_info *info, hft_tensor *host) {
    hft_tensor *part;
    int64_t from;
    HFT_TRY(hft_optimizer_state_part(opt, info, &part, &from));
    if (!part) return HFT_OK; /* another rank's */
    hft_tensor *src = hft_tensor_alias(host, from, 1, part->shape);
    hft_status st = src ? hft_tensor_copy(part, src) : hft_error_status();
    hft_tensor_free(src);
    hft_tensor_free(part);
    return st;
}

hft_status train_state_save(const char *path, const train_state *s, hft_optimizer *opt,
                            const state_fetch *fetch) {
    quiet_hdf5();
    hid_t fapl = file_access();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (f < 0) return h5_fail(path, "cannot create");
    hft_status st = HFT_OK;
    char text[1024];
    scalars_text(s, text, sizeof text);
    uLong crc = crc32(0L, (const Bytef *)text, (uInt)strlen(text));
    int version = VERSION;
    bool ok = write_string_attr(f, "format", FORMAT) && write_attr(f, "version", H5T_NATIVE_INT, &version) &&
              write_string_attr(f, "model_fingerprint", s->model_fingerprint) &&
              write_string_attr(f, "recipe_fingerprint", s->recipe_fingerprint) &&
              write_string_attr(f, "base_digest", s->base_digest) &&
              write_string_attr(f, "source_dtype", s->source_dtype);
    for (int i = 0; i < N_ATTRS && ok; i++)
        ok = write_attr(f, attrs[i].name, attrs[i].is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64,
                        (const char *)s + attrs[i].off);
    for (int i = 0; i < N_OPTIONAL && ok; i++)
        ok = write_attr(f, optional[i].name, optional[i].is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64,
                        (const char *)s + optional[i].off);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    int n = hft_optimizer_state_count(opt);
    for (int i = 0; i < n && ok; i++) {
        hft_optim_state_info info;
        hft_tensor *host = NULL, *t = NULL; /* state on a GPU is written from a host copy */
        if ((st = state_values(opt, fetch, i, &info, &t)) != HFT_OK ||
            (t->device.type != HFT_CPU && !(host = hft_tensor_to(t, (hft_device){HFT_CPU, 0})))) {
            if (st == HFT_OK) st = hft_error_status();
            hft_tensor_free(t);
            ok = false;
            break;
        }
        const char *name = info.name;
        hft_tensor *view = t;
        if (host) t = host;
        hsize_t dims[HFT_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) dims[d] = (hsize_t)t->shape[d];
        hid_t space = t->ndim ? H5Screate_simple(t->ndim, dims, NULL) : H5Screate(H5S_SCALAR);
        char dpath[600];
        snprintf(dpath, sizeof dpath, "optimizer/%s", name);
        hid_t ds = H5Dcreate2(f, dpath, H5T_NATIVE_FLOAT, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        ok = ds >= 0 && t->dtype == HFT_F32 && hft_tensor_is_contiguous(t) &&
             H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, hft_tensor_data(t)) >= 0;
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(space);
        crc = crc_tensor(crc, name, t);
        hft_tensor_free(host);
        hft_tensor_free(view);
    }
    if (ok && s->rank_positions) { /* not in the checksum: information, derived again on resume */
        hsize_t dims[1] = {(hsize_t)s->world_size};
        hid_t space = H5Screate_simple(1, dims, NULL);
        hid_t ds =
            H5Dcreate2(f, "ranks/next_sample", H5T_NATIVE_INT64, space, lcpl, H5P_DEFAULT, H5P_DEFAULT);
        ok = ds >= 0 && H5Dwrite(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->rank_positions) >= 0;
        if (ds >= 0) H5Dclose(ds);
        H5Sclose(space);
    }
    H5Pclose(lcpl);
    char hex[17];
    snprintf(hex, sizeof hex, "%08lx", (unsigned long)crc);
    if (ok) ok = write_string_attr(f, "checksum", hex);
    if (!ok && st == HFT_OK) st = h5_fail(path, "cannot write");
    if (H5Fclose(f) < 0 && st == HFT_OK) st = h5_fail(path, "cannot close");
    return st;
}

static hft_status read_scalars(hid_t f, const char *path, train_state *s) {
    char format[64] = "";
    int version = 0;
    if (!read_string_attr(f, "format", format, sizeof format) || strcmp(format, FORMAT) != 0)
        return hft_error(HFT_EFORMAT, "%s: not an hft training state (format '%s')", path, format);
    read_attr(f, "version", H5T_NATIVE_INT, &version);
    if (version != VERSION)
        return hft_error(HFT_EFORMAT, "%s: training state version %d, this hft reads version %d", path,
                         version, VERSION);
    memset(s, 0, sizeof *s);
    for (int i = 0; i < N_ATTRS; i++)
        if (!read_attr(f, attrs[i].name, attrs[i].is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64,
                       (char *)s + attrs[i].off))
            return hft_error(HFT_EFORMAT, "%s: the attribute '%s' is missing", path, attrs[i].name);
    for (int i = 0; i < N_OPTIONAL; i++) /* written since mixed precision: absent in older checkpoints */
        read_attr(f, optional[i].name, optional[i].is_double ? H5T_NATIVE_DOUBLE : H5T_NATIVE_INT64,
                  (char *)s + optional[i].off);
    read_string_attr(f, "model_fingerprint", s->model_fingerprint, sizeof s->model_fingerprint);
    read_string_attr(f, "recipe_fingerprint", s->recipe_fingerprint, sizeof s->recipe_fingerprint);
    read_string_attr(f, "base_digest", s->base_digest, sizeof s->base_digest);
    read_string_attr(f, "source_dtype", s->source_dtype, sizeof s->source_dtype);
    return HFT_OK;
}

static hid_t open_file(const char *path) {
    quiet_hdf5();
    hid_t fapl = file_access();
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    H5Pclose(fapl);
    return f;
}

hft_status train_state_peek(const char *path, train_state *s) {
    hid_t f = open_file(path);
    if (f < 0) return h5_fail(path, "cannot open");
    hft_status st = read_scalars(f, path, s);
    H5Fclose(f);
    return st;
}

bool train_state_rank_positions(const char *path, int64_t world_size, int64_t *out) {
    hid_t f = open_file(path);
    if (f < 0) return false;
    bool ok = false;
    if (H5Lexists(f, "ranks", H5P_DEFAULT) > 0 && H5Lexists(f, "ranks/next_sample", H5P_DEFAULT) > 0) {
        hid_t ds = H5Dopen2(f, "ranks/next_sample", H5P_DEFAULT);
        hid_t space = ds >= 0 ? H5Dget_space(ds) : -1;
        hsize_t dims[1] = {0};
        ok = space >= 0 && H5Sget_simple_extent_ndims(space) == 1 &&
             H5Sget_simple_extent_dims(space, dims, NULL) == 1 && dims[0] == (hsize_t)world_size &&
             H5Dread(ds, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0;
        if (space >= 0) H5Sclose(space);
        if (ds >= 0) H5Dclose(ds);
    }
    H5Fclose(f);
    return ok;
}

hft_status train_state_load(const char *path, train_state *s, hft_optimizer *opt) {
    hid_t f = open_file(path);
    if (f < 0) return h5_fail(path, "cannot open");
    hft_status st = read_scalars(f, path, s);
    char text[1024];
    scalars_text(s, text, sizeof text);
    uLong crc = crc32(0L, (const Bytef *)text, (uInt)strlen(text));
    int n = hft_optimizer_state_count(opt);
    for (int i = 0; i < n && st == HFT_OK; i++) {
        hft_optim_state_info info;
        if ((st = hft_optimizer_state_info(opt, i, &info)) != HFT_OK) break;
        const char *name = info.name;
        char dpath[600];
        snprintf(dpath, sizeof dpath, "optimizer/%s", name);
        hid_t ds = H5Dopen2(f, dpath, H5P_DEFAULT);
        if (ds < 0) {
            H5Eclear2(H5E_DEFAULT);
            st = hft_error(HFT_EFORMAT,
                           "%s: no optimizer state '%s' (the checkpoint is of another model or optimizer)",
                           path, name);
            break;
        }
        hid_t space = H5Dget_space(ds);
        int nd = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
        hsize_t dims[HFT_MAX_DIMS] = {0};
        if (nd >= 0 && nd <= HFT_MAX_DIMS) H5Sget_simple_extent_dims(space, dims, NULL);
        bool same = nd == info.ndim;
        for (int d = 0; same && d < nd; d++) same = dims[d] == (hsize_t)info.shape[d];
        if (!same)
            st = hft_error(HFT_EFORMAT, "%s: optimizer state '%s' has another shape than the model's", path,
                           name);
        /* read whole on the host (one tensor at a time), then the part this optimizer holds goes in */
        hft_tensor *host = st == HFT_OK ? hft_tensor_new(HFT_F32, info.ndim, info.shape) : NULL;
        if (st == HFT_OK && !host) st = hft_error_status();
        if (st == HFT_OK &&
            H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, hft_tensor_data(host)) < 0)
            st = h5_fail(path, "cannot read optimizer state");
        if (space >= 0) H5Sclose(space);
        H5Dclose(ds);
        if (st == HFT_OK) crc = crc_tensor(crc, name, host);
        if (st == HFT_OK) st = state_store(opt, &info, host);
        hft_tensor_free(host);
    }
    char want[17] = "", got[17];
    snprintf(got, sizeof got, "%08lx", (unsigned long)crc);
    if (st == HFT_OK && (!read_string_attr(f, "checksum", want, sizeof want) || strcmp(want, got) != 0))
        st = hft_error(HFT_EFORMAT, "%s: checksum mismatch (stored %s, computed %s): the file is damaged",
                       path, *want ? want : "none", got);
    H5Fclose(f);
    if (st == HFT_OK) hft_optimizer_set_steps(opt, s->optimizer_steps);
    return st;
}
