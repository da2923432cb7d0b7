/* Pre-tokenized data in HDF5 (names in data/README.md): a 1-D "tokens" stream with "doc_offsets", or a
 * 2-D "input_ids" [N, T] (with an optional "attention_mask"), each with optional "labels". Read into
 * memory as int32 through the HDF5 C library, with file locking off (it fails on NFS and Lustre). HDF5's
 * own error text goes into the message. */
#include "data/dataset_internal.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>

/* The innermost (most specific) HDF5 error description. Every HDF5 call clears the error stack on entry,
 * so this is read right after the failing call. */
static herr_t h5_walk(unsigned n, const H5E_error2_t *err, void *data) {
    (void)n;
    char *buf = data;
    if (!buf[0] && err->desc && err->desc[0]) snprintf(buf, 256, "%s", err->desc);
    return 0;
}

static void h5_detail(char detail[256]) {
    detail[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk, detail);
    H5Eclear2(H5E_DEFAULT);
}

static hft_status h5_fail(const char *path, const char *what, const char *detail) {
    return hft_error(HFT_EIO, "%s: %s%s%s", path, what, detail[0] ? ": HDF5: " : "", detail);
}

typedef struct h5_array {
    int ndim;
    hsize_t dims[2];
    bool is_int, is_float;
} h5_array;

/* Shape and class of a dataset; false when absent. */
static bool h5_probe(hid_t file, const char *name, h5_array *a) {
    memset(a, 0, sizeof *a);
    if (H5Lexists(file, name, H5P_DEFAULT) <= 0) return false;
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return false;
    hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
    a->ndim = H5Sget_simple_extent_ndims(sp);
    if (a->ndim >= 1 && a->ndim <= 2) H5Sget_simple_extent_dims(sp, a->dims, NULL);
    H5T_class_t cls = H5Tget_class(ty);
    a->is_int = cls == H5T_INTEGER;
    a->is_float = cls == H5T_FLOAT;
    H5Tclose(ty);
    H5Sclose(sp);
    H5Dclose(d);
    return true;
}

/* Reads a whole dataset converted to `mem_type` into a new buffer. */
static hft_status h5_read(const char *path, hid_t file, const char *name, hid_t mem_type, size_t elem,
                          uint64_t n, void **out) {
    *out = malloc(elem * (n ? n : 1));
    if (!*out)
        return hft_error(HFT_ENOMEM, "%s: out of memory for \"%s\" (%llu values)", path, name,
                         (unsigned long long)n);
    char detail[256] = "";
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    herr_t rc = d < 0 ? -1 : (n ? H5Dread(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, *out) : 0);
    if (rc < 0) h5_detail(detail);
    if (d >= 0) H5Dclose(d);
    if (rc < 0) {
        free(*out);
        *out = NULL;
        char what[160];
        snprintf(what, sizeof what, "cannot read \"%s\"", name);
        return h5_fail(path, what, detail);
    }
    return HFT_OK;
}

static hft_status load_stream(const char *path, hid_t file, const hft_data_spec *spec, const h5_array *tok,
                              hft_dataset *ds) {
    uint64_t n = tok->dims[0];
    int32_t *tokens = NULL;
    int64_t *off = NULL;
    HFT_TRY(h5_read(path, file, "tokens", H5T_NATIVE_INT32, 4, n, (void **)&tokens));
    ds->tokens = ds->own[0] = tokens;
    ds->token_bytes = 4;
    ds->n_tokens = (int64_t)n;
    h5_array oa;
    if (h5_probe(file, "doc_offsets", &oa)) {
        if (oa.ndim != 1 || !oa.is_int)
            return hft_error(HFT_EFORMAT, "%s: \"doc_offsets\" must be a 1-D integer dataset", path);
        uint64_t m = oa.dims[0];
        HFT_TRY(h5_read(path, file, "doc_offsets", H5T_NATIVE_INT64, 8, m, (void **)&off));
        ds->doc_off = ds->own[3] = off;
        /* Boundaries (n_docs + 1, ending at the token count) or starts (n_docs): both are accepted. */
        if (m == 0 || off[m - 1] != (int64_t)n) {
            int64_t *grown = realloc(off, sizeof *off * (size_t)(m + 1));
            if (!grown) return hft_error(HFT_ENOMEM, "out of memory");
            ds->doc_off = ds->own[3] = off = grown;
            off[m++] = (int64_t)n;
        }
        ds->n_docs = (int64_t)m - 1;
        if (off[0] != 0)
            return hft_error(HFT_EFORMAT, "%s: doc_offsets[0] is %lld; expected 0", path, (long long)off[0]);
        for (uint64_t i = 1; i < m; i++)
            if (off[i] < off[i - 1] || off[i] > (int64_t)n)
                return hft_error(HFT_EFORMAT,
                                 "%s: doc_offsets[%llu] is %lld after %lld; expected a value in [%lld, %lld]",
                                 path, (unsigned long long)i, (long long)off[i], (long long)off[i - 1],
                                 (long long)off[i - 1], (long long)n);
    } else {
        off = malloc(2 * sizeof *off);
        if (!off) return hft_error(HFT_ENOMEM, "out of memory");
        off[0] = 0;
        off[1] = (int64_t)n;
        ds->doc_off = ds->own[3] = off;
        ds->n_docs = 1;
    }
    h5_array la;
    if (!h5_probe(file, "labels", &la)) return HFT_OK;
    if (la.ndim != 1 || !(la.is_int || la.is_float))
        return hft_error(HFT_EFORMAT, "%s: \"labels\" beside 1-D \"tokens\" must be 1-D numbers", path);
    uint64_t want = spec->task == HFT_DATA_CLASSIFICATION ? (uint64_t)ds->n_docs : n;
    if (la.dims[0] != want)
        return hft_error(HFT_EFORMAT, "%s: \"labels\" has %llu values; expected %llu (one per %s)", path,
                         (unsigned long long)la.dims[0], (unsigned long long)want,
                         spec->task == HFT_DATA_CLASSIFICATION ? "document" : "token");
    if (spec->task != HFT_DATA_CLASSIFICATION) {
        int32_t *lab;
        HFT_TRY(h5_read(path, file, "labels", H5T_NATIVE_INT32, 4, n, (void **)&lab));
        ds->labels = ds->own[1] = lab;
    } else if (spec->num_labels == 1) {
        float *v;
        HFT_TRY(h5_read(path, file, "labels", H5T_NATIVE_FLOAT, 4, want, (void **)&v));
        ds->class_value = ds->own[5] = v;
    } else {
        int64_t *c;
        HFT_TRY(h5_read(path, file, "labels", H5T_NATIVE_INT64, 8, want, (void **)&c));
        ds->class_label = ds->own[4] = c;
    }
    return HFT_OK;
}

/* Rows of a 2-D [N, T] "input_ids": each row is a document of the tokens its attention_mask marks (all of
 * them without one), compacted into the stream. */
static hft_status load_rows(const char *path, hid_t file, const hft_data_spec *spec, const h5_array *ids,
                            hft_dataset *ds) {
    uint64_t N = ids->dims[0], T = ids->dims[1];
    if (T && N > (UINT64_C(1) << 40) / T)
        return hft_error(HFT_EFORMAT, "%s: \"input_ids\" is implausibly large", path);
    int32_t *tok = NULL, *mask = NULL, *lab = NULL;
    int64_t *off = NULL;
    hft_status st = h5_read(path, file, "input_ids", H5T_NATIVE_INT32, 4, N * T, (void **)&tok);
    h5_array ma, la;
    if (st == HFT_OK && h5_probe(file, "attention_mask", &ma)) {
        if (ma.ndim != 2 || ma.dims[0] != N || ma.dims[1] != T || !ma.is_int)
            st = hft_error(HFT_EFORMAT,
                           "%s: \"attention_mask\" must be integers shaped as input_ids [%llu, %llu]", path,
                           (unsigned long long)N, (unsigned long long)T);
        else
            st = h5_read(path, file, "attention_mask", H5T_NATIVE_INT32, 4, N * T, (void **)&mask);
    }
    bool per_token = false;
    if (st == HFT_OK && h5_probe(file, "labels", &la)) {
        per_token = la.ndim == 2;
        bool ok = (per_token && la.dims[0] == N && la.dims[1] == T && la.is_int) ||
                  (la.ndim == 1 && la.dims[0] == N && spec->task == HFT_DATA_CLASSIFICATION);
        if (!ok)
            st = hft_error(
                HFT_EFORMAT,
                "%s: \"labels\" must be [%llu, %llu] integers (per token) or, for classification, [%llu]",
                path, (unsigned long long)N, (unsigned long long)T, (unsigned long long)N);
        else if (per_token)
            st = h5_read(path, file, "labels", H5T_NATIVE_INT32, 4, N * T, (void **)&lab);
        else if (spec->num_labels == 1)
            st = h5_read(path, file, "labels", H5T_NATIVE_FLOAT, 4, N, (void **)&ds->own[5]);
        else
            st = h5_read(path, file, "labels", H5T_NATIVE_INT64, 8, N, (void **)&ds->own[4]);
        ds->class_value = ds->own[5];
        ds->class_label = ds->own[4];
    }
    if (st == HFT_OK && !(off = malloc(sizeof *off * (size_t)(N + 1))))
        st = hft_error(HFT_ENOMEM, "out of memory");
    if (st != HFT_OK) {
        free(tok);
        free(mask);
        free(lab);
        free(off);
        return st;
    }
    /* Compaction in place: the write position never passes the read position. */
    int64_t k = 0;
    off[0] = 0;
    for (uint64_t r = 0; r < N; r++) {
        for (uint64_t t = 0; t < T; t++) {
            uint64_t i = r * T + t;
            if (mask && !mask[i]) continue;
            tok[k] = tok[i];
            if (lab) lab[k] = lab[i];
            k++;
        }
        off[r + 1] = k;
    }
    free(mask);
    ds->tokens = ds->own[0] = tok;
    ds->token_bytes = 4;
    ds->n_tokens = k;
    ds->labels = ds->own[1] = lab;
    ds->doc_off = ds->own[3] = off;
    ds->n_docs = (int64_t)N;
    return HFT_OK;
}

hft_status ds_load_hdf5(const hft_data_spec *spec, hft_dataset *ds) {
    const char *path = spec->path;
    H5E_auto2_t old_fn;
    void *old_data;
    H5Eget_auto2(H5E_DEFAULT, &old_fn, &old_data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* errors become statuses, not prints */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    H5Pset_file_locking(fapl, false, true);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    char detail[256] = "";
    if (file < 0) h5_detail(detail);
    H5Pclose(fapl);
    hft_status st;
    h5_array a;
    if (file < 0) {
        st = h5_fail(path, "cannot open as HDF5", detail);
    } else if (h5_probe(file, "input_ids", &a)) {
        if (a.ndim != 2 || !a.is_int)
            st =
                hft_error(HFT_EFORMAT,
                          "%s: \"input_ids\" must be a 2-D integer dataset [examples, tokens] (it is %d-D%s)",
                          path, a.ndim, a.is_int ? "" : ", not integers");
        else
            st = load_rows(path, file, spec, &a, ds);
    } else if (h5_probe(file, "tokens", &a)) {
        if (a.ndim != 1 || !a.is_int)
            st = hft_error(HFT_EFORMAT, "%s: \"tokens\" must be a 1-D integer dataset (it is %d-D%s)", path,
                           a.ndim, a.is_int ? "" : ", not integers");
        else
            st = load_stream(path, file, spec, &a, ds);
    } else {
        st = hft_error(
            HFT_EFORMAT,
            "%s: no \"tokens\" (1-D, with \"doc_offsets\") or \"input_ids\" (2-D) dataset at the root", path);
    }
    if (file >= 0) H5Fclose(file);
    H5Eset_auto2(H5E_DEFAULT, old_fn, old_data);
    return st;
}
