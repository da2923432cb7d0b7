/* Tests of nn/safetensors.c: round trips of every dtype and layout, files written by PyTorch's
 * safetensors (tests/fixtures/safetensors, made by make_safetensors_fixtures.py), malformed files built
 * byte by byte, and atomic saving. HFT_SAFETENSORS_KEEP=path keeps the round-trip file there, to load it
 * with the reference: make_safetensors_fixtures.py --check path. */
#include "tests/test_util.h"

#include "nn/nn.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIXTURES "tests/fixtures/safetensors"

static char tmpdir[256];

static void tmp_path(char *buf, size_t size, const char *name) {
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

/* Files in tmpdir whose name starts with `prefix`. */
static int count_files(const char *prefix) {
    DIR *d = opendir(tmpdir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    if (d) closedir(d);
    return n;
}

/* A tensor of `dtype` with pseudo-random values that the dtype represents exactly. */
static hft_tensor *make_tensor(test_rng *r, hft_dtype dtype, int ndim, const int64_t *shape) {
    hft_tensor *t = hft_tensor_new(dtype, ndim, shape);
    int64_t n = hft_tensor_numel(t);
    void *p = hft_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        double v = test_uniform(r, -4, 4);
        switch (dtype) {
        case HFT_F32:
            ((float *)p)[i] = (float)v;
            break;
        case HFT_F64:
            ((double *)p)[i] = v;
            break;
        case HFT_BF16:
            ((uint16_t *)p)[i] = hft_f32_to_bf16((float)v);
            break;
        case HFT_F16:
            ((uint16_t *)p)[i] = hft_f32_to_f16((float)v);
            break;
        case HFT_I32:
            ((int32_t *)p)[i] = (int32_t)(v * 5e8);
            break;
        case HFT_I64:
            ((int64_t *)p)[i] = (int64_t)(v * 1e15);
            break;
        case HFT_U8:
            ((uint8_t *)p)[i] = (uint8_t)((v + 4) * 31);
            break;
        default:
            break;
        }
    }
    return t;
}

/* The tensor's values gathered in row-major order, independently of the library's copy kernel. */
static void *gather(const hft_tensor *t) {
    size_t es = hft_dtype_size(t->dtype);
    int64_t n = hft_tensor_numel(t);
    char *out = malloc(n ? (size_t)n * es : 1);
    const char *base = hft_tensor_data(t);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0, rem = i;
        for (int d = t->ndim - 1; d >= 0; d--) {
            off += (rem % t->shape[d]) * t->stride[d];
            rem /= t->shape[d];
        }
        memcpy(out + (size_t)i * es, base + (size_t)off * es, es);
    }
    return out;
}

static bool same_shape(const hft_st_entry *e, const hft_tensor *t) {
    if (e->ndim != t->ndim) return false;
    for (int d = 0; d < e->ndim; d++)
        if (e->shape[d] != t->shape[d]) return false;
    return true;
}

static const char *st_name(hft_dtype d) {
    static const char *const names[] = {"F32", "F64", "BF16", "F16", "I32", "I64", "U8"};
    return names[d];
}

static uint64_t header_len(const char *path) {
    uint64_t n = 0;
    FILE *fp = fopen(path, "rb");
    if (fp && fread(&n, 8, 1, fp) != 1) n = 0;
    if (fp) fclose(fp);
    return n;
}

/* Saves `n` named tensors, reopens the file and checks every entry's dtype, shape, order and bytes. */
static void check_round_trip(const char *file, int n, const char *const *names, hft_tensor *const *ts,
                             const char *keep) {
    char path[512];
    tmp_path(path, sizeof path, file);
    hft_st_writer *w = hft_st_writer_new();
    for (int i = 0; i < n; i++) CHECK_OK(hft_st_writer_add(w, names[i], ts[i]), NULL);
    CHECK_OK(hft_st_writer_metadata(w, "format", "pt"), NULL);
    CHECK_OK(hft_st_writer_save(w, path), NULL);
    if (keep) CHECK_OK(hft_st_writer_save(w, keep), NULL);
    hft_st_writer_free(w);

    hft_safetensors *f = NULL;
    CHECK_OK(hft_safetensors_open(path, &f), NULL);
    if (!f) return;
    CHECK(hft_safetensors_count(f) == n, "count %d, expected %d", hft_safetensors_count(f), n);
    CHECK(strcmp(hft_safetensors_path(f), path) == 0, "path %s", hft_safetensors_path(f));
    size_t covered = 0;
    for (int i = 0; i < n && i < hft_safetensors_count(f); i++) {
        const hft_st_entry *e = hft_safetensors_entry(f, i);
        CHECK(strcmp(e->name, names[i]) == 0, "entry %d is '%s', expected '%s' (insertion order)", i, e->name,
              names[i]);
        CHECK(hft_safetensors_find(f, names[i]) != NULL, "find '%s'", names[i]);
        const hft_tensor *t = ts[i];
        CHECK(strcmp(e->st_dtype, st_name(t->dtype)) == 0 && e->dtype == (int)t->dtype, "'%s': dtype %s / %d",
              e->name, e->st_dtype, e->dtype);
        CHECK(same_shape(e, t), "'%s': shape differs", e->name);
        CHECK(e->nbytes == hft_tensor_nbytes(t), "'%s': %zu bytes, expected %zu", e->name, e->nbytes,
              hft_tensor_nbytes(t));
        CHECK((uintptr_t)e->data % hft_dtype_size(t->dtype) == 0, "'%s': data misaligned for zero-copy",
              e->name);
        covered += e->nbytes;
        hft_tensor *back = NULL;
        CHECK_OK(hft_safetensors_load(f, names[i], t->dtype, false, &back), NULL);
        if (!back) continue;
        void *want = gather(t);
        CHECK(hft_tensor_is_contiguous(back) && same_shape(e, back) &&
                  memcmp(hft_tensor_data(back), want, hft_tensor_nbytes(t)) == 0,
              "'%s': values differ after the round trip", e->name);
        free(want);
        hft_tensor_free(back);
    }
    struct stat sb;
    stat(path, &sb);
    CHECK(8 + header_len(path) + covered == (size_t)sb.st_size, "the tensors cover the data buffer");
    hft_safetensors_close(f);
}

TEST(round_trip_every_dtype_with_0d_empty_and_strided_tensors) {
    test_rng r = {7};
    hft_ctx *ctx = hft_ctx_new(NULL);
    const char *names[32];
    hft_tensor *ts[32], *owned[32];
    char name_buf[32][32];
    int n = 0, n_owned = 0;
    int64_t s23[2] = {2, 3}, s04[2] = {0, 4};
    for (int d = 0; d < HFT_DTYPE_COUNT; d++) {
        const char *kinds[3] = {"matrix", "scalar", "empty"};
        for (int k = 0; k < 3; k++) {
            hft_tensor *t = k == 0   ? make_tensor(&r, (hft_dtype)d, 2, s23)
                            : k == 1 ? make_tensor(&r, (hft_dtype)d, 0, NULL)
                                     : make_tensor(&r, (hft_dtype)d, 2, s04);
            snprintf(name_buf[n], sizeof name_buf[n], "%s.%s", kinds[k], hft_dtype_name((hft_dtype)d));
            names[n] = name_buf[n];
            ts[n++] = owned[n_owned++] = t;
        }
    }
    /* strided inputs: a transpose, and a narrowed bf16 view with a storage offset */
    int64_t s57[2] = {5, 7}, s46[2] = {4, 6};
    hft_tensor *a = make_tensor(&r, HFT_F32, 2, s57), *b = make_tensor(&r, HFT_BF16, 2, s46);
    owned[n_owned++] = a;
    owned[n_owned++] = b;
    names[n] = "transposed.f32";
    ts[n++] = hft_transpose(ctx, a, 0, 1);
    names[n] = "narrowed.bf16";
    ts[n++] = hft_narrow(ctx, b, 1, 1, 3);
    CHECK(!hft_tensor_is_contiguous(ts[n - 2]) && !hft_tensor_is_contiguous(ts[n - 1]), "inputs are strided");
    check_round_trip("round_trip.safetensors", n, names, ts, getenv("HFT_SAFETENSORS_KEEP"));
    for (int i = 0; i < n_owned; i++) hft_tensor_free(owned[i]);
    hft_ctx_free(ctx);
}

TEST(large_strided_tensors_are_written_in_blocks) {
    /* 4.4 MB views: more than the writer's 4 MB block, along the outer dim and along the last dim */
    test_rng r = {8};
    hft_ctx *ctx = hft_ctx_new(NULL);
    int64_t s1[2] = {1100, 1024}, s2[2] = {1100000, 2};
    hft_tensor *a = make_tensor(&r, HFT_F32, 2, s1), *b = make_tensor(&r, HFT_F32, 2, s2);
    const char *names[2] = {"rows", "columns"};
    hft_tensor *ts[2] = {hft_transpose(ctx, a, 0, 1), hft_transpose(ctx, b, 0, 1)};
    check_round_trip("large.safetensors", 2, names, ts, NULL);
    hft_tensor_free(a);
    hft_tensor_free(b);
    hft_ctx_free(ctx);
}

TEST(metadata_comes_first_and_the_header_is_padded_to_8_bytes) {
    char path[512];
    tmp_path(path, sizeof path, "meta.safetensors");
    int64_t shape[1] = {3};
    float vals[3] = {1, 2, 3};
    hft_tensor *t = hft_tensor_from_data(HFT_F32, 1, shape, vals);
    hft_st_writer *w = hft_st_writer_new();
    CHECK_OK(hft_st_writer_add(w, "w", t), NULL);
    CHECK_OK(hft_st_writer_metadata(w, "format", "np"), NULL);
    CHECK_OK(hft_st_writer_metadata(w, "quote\"and\nnewline", "caf\xc3\xa9"), NULL);
    CHECK_OK(hft_st_writer_metadata(w, "format", "pt"), NULL); /* replaces, keeps its place */
    CHECK_OK(hft_st_writer_save(w, path), NULL);
    hft_st_writer_free(w);

    FILE *fp = fopen(path, "rb");
    char head[256] = {0};
    size_t got = fp ? fread(head, 1, sizeof head - 1, fp) : 0;
    if (fp) fclose(fp);
    uint64_t n;
    memcpy(&n, head, 8);
    const char *want =
        "{\"__metadata__\":{\"format\":\"pt\",\"quote\\\"and\\nnewline\":\"caf\xc3\xa9\"},\"w\":{\"dtype\":"
        "\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    size_t wl = strlen(want);
    CHECK(got >= 8 + n && n % 8 == 0 && n >= wl && n < wl + 8, "header length %llu for %zu bytes of JSON",
          (unsigned long long)n, wl);
    CHECK(strncmp(head + 8, want, wl) == 0, "header %.*s", (int)n, head + 8);
    bool spaces = true;
    for (size_t i = 8 + wl; i < 8 + n && i < got; i++) spaces &= head[i] == ' ';
    CHECK(spaces, "padding is spaces");

    hft_safetensors *f = NULL;
    CHECK_OK(hft_safetensors_open(path, &f), NULL);
    if (f) {
        CHECK(strcmp(hft_safetensors_metadata(f, "format"), "pt") == 0, "format");
        CHECK(strcmp(hft_safetensors_metadata(f, "quote\"and\nnewline"), "caf\xc3\xa9") == 0, "escaped key");
        CHECK(hft_safetensors_metadata(f, "missing") == NULL, "missing key");
        hft_safetensors_close(f);
    }
    hft_tensor_free(t);
}

/* A file made of header length, header (padded to 8 bytes) and data, written to tmpdir/name; returns
 * its path. */
static const char *write_raw(const char *name, const char *header, const void *data, size_t ndata) {
    static char path[512];
    tmp_path(path, sizeof path, name);
    FILE *fp = fopen(path, "wb");
    uint64_t len = strlen(header), n = (len + 7) / 8 * 8;
    fwrite(&n, 8, 1, fp);
    fwrite(header, 1, len, fp);
    for (uint64_t i = len; i < n; i++) fputc(' ', fp);
    if (ndata) fwrite(data, 1, ndata, fp);
    fclose(fp);
    return path;
}

TEST(zero_copy_wraps_the_mapping_and_misaligned_data_is_copied) {
    char path[512];
    tmp_path(path, sizeof path, "zc.safetensors");
    test_rng r = {9};
    int64_t shape[2] = {3, 4};
    hft_tensor *t = make_tensor(&r, HFT_F32, 2, shape);
    hft_st_writer *w = hft_st_writer_new();
    CHECK_OK(hft_st_writer_add(w, "t", t), NULL);
    CHECK_OK(hft_st_writer_save(w, path), NULL);
    hft_st_writer_free(w);
    hft_safetensors *f = NULL;
    CHECK_OK(hft_safetensors_open(path, &f), NULL);
    if (f) {
        const hft_st_entry *e = hft_safetensors_find(f, "t");
        hft_tensor *z = NULL, *c = NULL;
        CHECK_OK(hft_safetensors_load(f, "t", HFT_F32, true, &z), NULL);
        CHECK_OK(hft_safetensors_load(f, "t", HFT_F32, false, &c), NULL);
        CHECK(z && hft_tensor_data(z) == e->data, "zero-copy data %p is the mapping's %p",
              z ? hft_tensor_data(z) : NULL, e->data);
        CHECK(c && hft_tensor_data(c) != e->data, "a copy when zero_copy is false");
        CHECK(z && c && memcmp(hft_tensor_data(z), hft_tensor_data(t), 48) == 0 &&
                  memcmp(hft_tensor_data(c), hft_tensor_data(t), 48) == 0,
              "values");
        hft_tensor_free(z);
        hft_tensor_free(c);
        hft_safetensors_close(f);
    }
    hft_tensor_free(t);

    /* an F32 at byte 2 of the (8-aligned) data buffer: misaligned, so zero-copy gives a copy */
    float vals[2] = {1.5f, -2.25f};
    uint8_t data[10] = {7, 9};
    memcpy(data + 2, vals, 8);
    const char *mis = write_raw("misaligned.safetensors",
                                "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[2,10]}}",
                                data, sizeof data);
    CHECK_OK(hft_safetensors_open(mis, &f), NULL);
    if (f) {
        const hft_st_entry *e = hft_safetensors_find(f, "b");
        CHECK((uintptr_t)e->data % 4 != 0, "the test's tensor is misaligned");
        hft_tensor *z = NULL, *d = NULL;
        CHECK_OK(hft_safetensors_load(f, "b", HFT_F32, true, &z), NULL);
        CHECK_OK(hft_safetensors_load(f, "b", HFT_F64, false, &d), NULL);
        CHECK(z && hft_tensor_data(z) != e->data && (uintptr_t)hft_tensor_data(z) % 4 == 0 &&
                  memcmp(hft_tensor_data(z), vals, 8) == 0,
              "misaligned zero-copy load copies");
        CHECK(d && ((double *)hft_tensor_data(d))[0] == 1.5 && ((double *)hft_tensor_data(d))[1] == -2.25,
              "misaligned converted load");
        hft_tensor_free(z);
        hft_tensor_free(d);
        hft_safetensors_close(f);
    }
}

/* Saves `t`, loads it back as `as`, and returns the loaded tensor (or NULL). */
static hft_tensor *save_and_load(const hft_tensor *t, hft_dtype as) {
    char path[512];
    tmp_path(path, sizeof path, "convert.safetensors");
    hft_st_writer *w = hft_st_writer_new();
    CHECK_OK(hft_st_writer_add(w, "x", t), NULL);
    CHECK_OK(hft_st_writer_save(w, path), NULL);
    hft_st_writer_free(w);
    hft_safetensors *f = NULL;
    hft_tensor *out = NULL;
    CHECK_OK(hft_safetensors_open(path, &f), NULL);
    if (f) CHECK_OK(hft_safetensors_load(f, "x", as, true, &out), NULL);
    hft_safetensors_close(f);
    return out;
}

TEST(converted_loads_are_exact_on_representable_values) {
    test_rng r = {10};
    enum { N = 257 };
    int64_t shape[1] = {N};
    /* f32 values a bf16 (an f16) holds exactly: F32 → BF16 → F32 gives them back bit for bit */
    hft_tensor *fb = hft_tensor_new(HFT_F32, 1, shape), *fh = hft_tensor_new(HFT_F32, 1, shape);
    float *pb = hft_tensor_data(fb), *ph = hft_tensor_data(fh);
    for (int i = 0; i < N; i++) {
        pb[i] = hft_bf16_to_f32(hft_f32_to_bf16((float)test_uniform(&r, -1e4, 1e4)));
        ph[i] = hft_f16_to_f32(hft_f32_to_f16((float)test_uniform(&r, -6e4, 6e4)));
    }
    hft_dtype half[2] = {HFT_BF16, HFT_F16};
    hft_tensor *src[2] = {fb, fh};
    for (int h = 0; h < 2; h++) {
        hft_tensor *low = save_and_load(src[h], half[h]);
        hft_tensor *back = low ? save_and_load(low, HFT_F32) : NULL;
        bool bits = low != NULL, exact = back != NULL;
        const float *want = hft_tensor_data(src[h]);
        for (int i = 0; i < N && bits; i++)
            bits = ((uint16_t *)hft_tensor_data(low))[i] ==
                   (h ? hft_f32_to_f16(want[i]) : hft_f32_to_bf16(want[i]));
        for (int i = 0; i < N && exact; i++) exact = ((float *)hft_tensor_data(back))[i] == want[i];
        CHECK(bits && exact, "F32 -> %s -> F32: bits %d, exact %d", hft_dtype_name(half[h]), bits, exact);
        hft_tensor_free(low);
        hft_tensor_free(back);
    }
    /* f64 ↔ f32 and the integer widths, on values both sides hold */
    hft_tensor *d = save_and_load(fb, HFT_F64);
    bool ok = d != NULL;
    for (int i = 0; i < N && ok; i++) ok = ((double *)hft_tensor_data(d))[i] == pb[i];
    CHECK(ok, "F32 -> F64");
    hft_tensor *i32 = make_tensor(&r, HFT_I32, 1, shape);
    hft_tensor *i64 = save_and_load(i32, HFT_I64), *u8f = NULL;
    ok = i64 != NULL;
    for (int i = 0; i < N && ok; i++)
        ok = ((int64_t *)hft_tensor_data(i64))[i] == ((int32_t *)hft_tensor_data(i32))[i];
    CHECK(ok, "I32 -> I64");
    hft_tensor *u8 = make_tensor(&r, HFT_U8, 1, shape);
    u8f = save_and_load(u8, HFT_F32);
    ok = u8f != NULL;
    for (int i = 0; i < N && ok; i++)
        ok = ((float *)hft_tensor_data(u8f))[i] == ((uint8_t *)hft_tensor_data(u8))[i];
    CHECK(ok, "U8 -> F32");
    hft_tensor *tabs[] = {fb, fh, d, i32, i64, u8, u8f};
    for (size_t i = 0; i < sizeof tabs / sizeof tabs[0]; i++) hft_tensor_free(tabs[i]);
}

static void check_fixture(const char *file, const cJSON *want) {
    char path[512];
    snprintf(path, sizeof path, FIXTURES "/%s", file);
    hft_safetensors *f = NULL;
    CHECK_OK(hft_safetensors_open(path, &f), NULL);
    if (!f) return;
    const cJSON *meta = cJSON_GetObjectItem(want, "metadata"),
                *tensors = cJSON_GetObjectItem(want, "tensors");
    for (const cJSON *m = meta->child; m; m = m->next) {
        const char *got = hft_safetensors_metadata(f, m->string);
        CHECK(got && strcmp(got, m->valuestring) == 0, "%s: metadata %s = %s", file, m->string, got);
    }
    CHECK(hft_safetensors_count(f) == cJSON_GetArraySize(tensors), "%s: %d tensors, expected %d", file,
          hft_safetensors_count(f), cJSON_GetArraySize(tensors));
    for (const cJSON *t = tensors->child; t; t = t->next) {
        const hft_st_entry *e = hft_safetensors_find(f, t->string);
        CHECK(e != NULL, "%s: tensor '%s' missing", file, t->string);
        if (!e) continue;
        const char *dtype = cJSON_GetObjectItem(t, "dtype")->valuestring;
        const cJSON *shape = cJSON_GetObjectItem(t, "shape"), *values = cJSON_GetObjectItem(t, "values");
        CHECK(strcmp(e->st_dtype, dtype) == 0, "'%s': dtype %s, expected %s", e->name, e->st_dtype, dtype);
        bool shape_ok = e->ndim == cJSON_GetArraySize(shape);
        int d = 0;
        for (const cJSON *s = shape->child; s && shape_ok; s = s->next)
            shape_ok = e->shape[d++] == (int64_t)s->valuedouble;
        CHECK(shape_ok, "'%s': shape", e->name);
        int n = cJSON_GetArraySize(values);
        double *ref = malloc(sizeof(double) * (size_t)(n + 1)),
               *got = malloc(sizeof(double) * (size_t)(n + 1));
        int i = 0;
        for (const cJSON *v = values->child; v; v = v->next) ref[i++] = v->valuedouble;
        if (e->dtype < 0) {
            hft_tensor *x = NULL;
            hft_status st = hft_safetensors_load(f, e->name, HFT_F32, false, &x);
            CHECK(st == HFT_EUNSUPPORTED && !x && strstr(hft_error_message(), e->name) &&
                      strstr(hft_error_message(), dtype),
                  "'%s' (%s): status %d: %s", e->name, dtype, (int)st, hft_error_message());
        } else {
            /* in its own dtype (zero-copy where aligned), and converted to f64 */
            hft_tensor *own = NULL, *f64 = NULL;
            CHECK_OK(hft_safetensors_load(f, e->name, (hft_dtype)e->dtype, true, &own), NULL);
            CHECK_OK(hft_safetensors_load(f, e->name, HFT_F64, false, &f64), NULL);
            if (own && hft_tensor_numel(own) == n) {
                hft_tensor_to_f64(own, got);
                test_close(e->name, got, ref, n, 0, 0);
            } else {
                CHECK(0, "'%s': load as %s", e->name, e->st_dtype);
            }
            if (f64 && hft_tensor_numel(f64) == n)
                test_close(e->name, hft_tensor_data(f64), ref, n, 0, 0);
            else
                CHECK(0, "'%s': load as F64", e->name);
            hft_tensor_free(own);
            hft_tensor_free(f64);
        }
        free(ref);
        free(got);
    }
    hft_safetensors_close(f);
}

TEST(files_written_by_pytorch_load_with_their_values) {
    char *text = hft_read_text(FIXTURES "/expected.json", NULL);
    CHECK(text != NULL, "cannot read " FIXTURES "/expected.json (run the tests from the repository root)");
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    const cJSON *files = cJSON_GetObjectItem(root, "files");
    CHECK(cJSON_GetArraySize(files) >= 2, "fixture files listed");
    for (const cJSON *fx = files ? files->child : NULL; fx; fx = fx->next) check_fixture(fx->string, fx);
    cJSON_Delete(root);
    free(text);
}

/* Opens a file made from raw bytes and expects `want`, with a message naming the file and `what`. */
static void expect_refused(const char *name, const void *bytes, size_t n, hft_status want, const char *what,
                           const char *what2) {
    char path[512];
    tmp_path(path, sizeof path, name);
    FILE *fp = fopen(path, "wb");
    if (n) fwrite(bytes, 1, n, fp);
    fclose(fp);
    hft_safetensors *f = NULL;
    hft_status st = hft_safetensors_open(path, &f);
    const char *msg = hft_error_message();
    CHECK(st == want && !f && strstr(msg, path) && strstr(msg, what) && (!what2 || strstr(msg, what2)),
          "%s: status %d (expected %d), message: %s", name, (int)st, (int)want, msg);
    hft_safetensors_close(f);
}

/* Header length + header + data, in `buf`; returns the size. */
static size_t build(uint8_t *buf, const char *header, size_t data_bytes) {
    uint64_t n = strlen(header);
    memcpy(buf, &n, 8);
    memcpy(buf + 8, header, n);
    memset(buf + 8 + n, 0x3c, data_bytes);
    return 8 + n + data_bytes;
}

static void expect_header_refused(const char *name, const char *header, size_t data_bytes, hft_status want,
                                  const char *what, const char *what2) {
    uint8_t buf[1024];
    expect_refused(name, buf, build(buf, header, data_bytes), want, what, what2);
}

static void expect_header_accepted(const char *name, const char *header, size_t data_bytes, int count) {
    uint8_t buf[1024];
    size_t n = build(buf, header, data_bytes);
    char path[512];
    tmp_path(path, sizeof path, name);
    FILE *fp = fopen(path, "wb");
    fwrite(buf, 1, n, fp);
    fclose(fp);
    hft_safetensors *f = NULL;
    CHECK(hft_safetensors_open(path, &f) == HFT_OK && hft_safetensors_count(f) == count, "%s: %s", name,
          f ? "count" : hft_error_message());
    hft_safetensors_close(f);
}

#define T1(name, dtype, shape, off)                                                                          \
    "\"" name "\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":" off "}"

TEST(malformed_files_are_refused_with_a_message_naming_the_problem) {
    uint8_t buf[64] = {1, 0, 0, 0, 0};
    expect_refused("short.st", buf, 5, HFT_EFORMAT, "too short", "5 bytes");
    expect_refused("zero.st", buf, 0, HFT_EFORMAT, "too short", NULL);
    uint64_t big = 100000001;
    memcpy(buf, &big, 8);
    memcpy(buf + 8, "{}", 2);
    expect_refused("header_too_large.st", buf, 10, HFT_EFORMAT, "larger than the limit", "100000001");
    uint64_t past = 64;
    memcpy(buf, &past, 8);
    expect_refused("header_past_end.st", buf, 18, HFT_EFORMAT, "runs past the end of the file", "64");

    expect_header_refused("bad_json.st", "{\"a\":", 0, HFT_EFORMAT, "not valid JSON", NULL);
    expect_header_refused("empty_json.st", "   ", 0, HFT_EFORMAT, "not valid JSON", "empty");
    expect_header_refused("trailing.st", "{} {}", 0, HFT_EFORMAT, "not valid JSON", "trailing");
    expect_header_refused("nul_pad.st", "{}\x01\x01", 0, HFT_EFORMAT, "not valid JSON", NULL);
    expect_header_refused("not_object.st", "[]      ", 0, HFT_EFORMAT, "expected a JSON object", NULL);
    expect_header_refused("bad_utf8.st", "{\"__metadata__\":{\"k\":\"\xff\"}}", 0, HFT_EFORMAT, "UTF-8",
                          NULL);
    expect_header_refused("overlong_utf8.st", "{\"__metadata__\":{\"k\":\"\xc0\xaf\"}}", 0, HFT_EFORMAT,
                          "UTF-8", NULL);
    expect_header_refused("lone_surrogate.st", "{\"__metadata__\":{\"k\":\"\\ud800\"}}", 0, HFT_EFORMAT,
                          "surrogate", NULL);
    expect_header_refused("leading_zero.st", "{" T1("a", "U8", "[01]", "[0,1]") "}", 1, HFT_EFORMAT,
                          "not valid JSON", "leading zero");
    expect_header_refused("huge_number.st", "{" T1("a", "U8", "[1]", "[0,1]") ",\"x\":1e999}", 1, HFT_EFORMAT,
                          "out of range", NULL);
    char deep[400] = "{\"__metadata__\":null,\"x\":";
    for (int i = 0; i < 130; i++) strcat(deep, "[");
    for (int i = 0; i < 130; i++) strcat(deep, "]");
    strcat(deep, "}");
    expect_header_refused("deep.st", deep, 0, HFT_EFORMAT, "nesting", NULL);
    expect_header_refused("nul_name.st", "{" T1("a\\u0000b", "U8", "[1]", "[0,1]") "}", 1, HFT_EUNSUPPORTED,
                          "\\u0000", NULL);
    expect_header_refused("meta_number.st", "{\"__metadata__\":{\"k\":1}}", 0, HFT_EFORMAT, "'k'",
                          "expected a string");

    expect_header_refused("unknown_dtype.st", "{" T1("w", "F31", "[1]", "[0,4]") "}", 4, HFT_EFORMAT,
                          "unknown dtype \"F31\"", "'w'");
    expect_header_refused("negative_dim.st", "{" T1("w", "F32", "[2,-3]", "[0,24]") "}", 24, HFT_EFORMAT,
                          "'w': shape[1] is -3", "non-negative integer");
    expect_header_refused("fraction_dim.st", "{" T1("w", "F32", "[1.5]", "[0,4]") "}", 4, HFT_EFORMAT,
                          "shape[0] is 1.5", NULL);
    expect_header_refused("float_dim.st", "{" T1("w", "F32", "[2.0]", "[0,8]") "}", 8, HFT_EFORMAT,
                          "shape[0] is 2.0", "integer");
    expect_header_refused("missing_field.st", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,0]}}", 0,
                          HFT_EFORMAT, "'w'", "missing field 'shape'");
    expect_header_refused("dup_field.st",
                          "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}}",
                          4, HFT_EFORMAT, "'w'", "'dtype' appears twice");
    expect_header_refused("three_offsets.st", "{" T1("w", "U8", "[1]", "[0,1,1]") "}", 1, HFT_EFORMAT, "'w'",
                          "has 3 elements, expected [begin, end]");
    expect_header_refused("size_mismatch.st", "{" T1("w", "F32", "[2]", "[0,4]") "}", 4, HFT_EFORMAT,
                          "'w': data_offsets [0, 4] hold 4 bytes", "needs 8");
    expect_header_refused("overflow.st", "{" T1("w", "F32", "[4294967296,4294967296]", "[0,0]") "}", 0,
                          HFT_EFORMAT, "'w'", "overflows");
    expect_header_refused("f4_odd.st", "{" T1("w", "F4", "[3]", "[0,1]") "}", 1, HFT_EFORMAT, "'w'",
                          "whole number of bytes");
    expect_header_refused("gap.st",
                          "{" T1("a", "F32", "[1]", "[0,4]") "," T1("b", "F32", "[1]", "[8,12]") "}", 12,
                          HFT_EFORMAT, "'b'", "gap of 4 bytes");
    expect_header_refused("first_not_at_0.st", "{" T1("a", "F32", "[1]", "[4,8]") "}", 8, HFT_EFORMAT, "'a'",
                          "expected 0");
    expect_header_refused("overlap.st",
                          "{" T1("a", "F32", "[2]", "[0,8]") "," T1("b", "F32", "[2]", "[4,12]") "}", 12,
                          HFT_EFORMAT, "'b'", "overlapping the previous tensor 'a'");
    expect_header_refused("reversed.st", "{" T1("a", "U8", "[0]", "[1,0]") "}", 1, HFT_EFORMAT, "'a'", NULL);
    expect_header_refused("not_covered.st", "{" T1("a", "F32", "[1]", "[0,4]") "}", 8, HFT_EFORMAT,
                          "not fully covered", "holds 8 bytes");
    expect_header_refused("duplicate.st",
                          "{" T1("a", "F32", "[1]", "[0,4]") "," T1("a", "F32", "[1]", "[4,8]") "}", 8,
                          HFT_EFORMAT, "'a' appears more than once", NULL);
    expect_header_refused("past_end.st", "{" T1("a", "F32", "[2]", "[0,8]") "}", 4, HFT_EFORMAT, "'a'",
                          "run past the end of the file");
    expect_header_refused("nine_dims.st", "{" T1("a", "U8", "[1,1,1,1,1,1,1,1,1]", "[0,1]") "}", 1,
                          HFT_EUNSUPPORTED, "'a' has 9 dims", "at most 8");
    /* valid for the reference, but beyond hft's int64 shapes */
    expect_header_refused("u64_dim.st", "{" T1("a", "U8", "[0,18446744073709551615]", "[0,0]") "}", 0,
                          HFT_EUNSUPPORTED, "'a'", "2^63 or more");

    /* what the reference accepts */
    expect_header_accepted("empty_header.st", "{}      ", 0, 0);
    expect_header_accepted("whitespace.st", " \r\n\t{\"__metadata__\":null}\n", 0, 0);
    expect_header_accepted("extra_field.st",
                           "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2],\"x\":[1.5]}}", 2,
                           1);
    expect_header_accepted(
        "sub_byte.st", "{" T1("a", "F4", "[2]", "[0,1]") "," T1("b", "F6_E2M3", "[4]", "[1,4]") "}", 4, 2);
    expect_header_accepted(
        "empties.st",
        "{" T1("e", "F32", "[0]", "[0,0]") "," T1("f", "I64", "[3,0]", "[0,0]") "," T1(
            "s", "C64", "[]", "[0,8]") "," T1("z", "U64", "[0,9223372036854775807]", "[8,8]") "}",
        8, 4);
}

TEST(saving_is_atomic) {
    char path[512];
    tmp_path(path, sizeof path, "atomic.safetensors");
    int64_t shape[1] = {4};
    float old_vals[4] = {1, 2, 3, 4};
    hft_tensor *small = hft_tensor_from_data(HFT_F32, 1, shape, old_vals);
    hft_st_writer *w = hft_st_writer_new();
    CHECK_OK(hft_st_writer_add(w, "x", small), NULL);
    CHECK_OK(hft_st_writer_save(w, path), NULL);
    hft_st_writer_free(w);
    CHECK(count_files("atomic.safetensors") == 1, "no temporary left after a successful save (%d files)",
          count_files("atomic.safetensors"));

    /* a save that fails while writing (the file size limit) leaves the old file as it was */
    int64_t big_shape[1] = {1 << 20};
    hft_tensor *big = hft_tensor_new(HFT_F32, 1, big_shape);
    w = hft_st_writer_new();
    CHECK_OK(hft_st_writer_add(w, "x", big), NULL);
    struct rlimit old_limit, limit;
    getrlimit(RLIMIT_FSIZE, &old_limit);
    limit = old_limit;
    limit.rlim_cur = 65536;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    setrlimit(RLIMIT_FSIZE, &limit);
    hft_status st = hft_st_writer_save(w, path);
    setrlimit(RLIMIT_FSIZE, &old_limit);
    signal(SIGXFSZ, old_handler);
    CHECK(st == HFT_EIO && strstr(hft_error_message(), path), "failed save: status %d: %s", (int)st,
          hft_error_message());
    CHECK(count_files("atomic.safetensors") == 1, "no temporary left after a failed save");
    hft_safetensors *f = NULL;
    hft_tensor *back = NULL;
    CHECK_OK(hft_safetensors_open(path, &f), NULL);
    if (f) CHECK_OK(hft_safetensors_load(f, "x", HFT_F32, false, &back), NULL);
    CHECK(back && hft_tensor_numel(back) == 4 && memcmp(hft_tensor_data(back), old_vals, 16) == 0,
          "the old file is intact");
    hft_tensor_free(back);
    hft_safetensors_close(f);

    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/x.safetensors", tmpdir);
    CHECK(hft_st_writer_save(w, bad) == HFT_EIO && strstr(hft_error_message(), "x.safetensors"),
          "save into a missing folder: %s", hft_error_message());
    hft_st_writer_free(w);
    hft_tensor_free(big);
    hft_tensor_free(small);
}

TEST(misuse_returns_errors) {
    int64_t shape[1] = {2};
    hft_tensor *t = hft_tensor_new(HFT_F32, 1, shape);
    hft_st_writer *w = hft_st_writer_new();
    CHECK_OK(hft_st_writer_add(w, "a", t), NULL);
    CHECK(hft_st_writer_add(w, "a", t) == HFT_EINVAL && strstr(hft_error_message(), "'a' was already added"),
          "duplicate name: %s", hft_error_message());
    CHECK(hft_st_writer_add(w, "__metadata__", t) == HFT_EINVAL, "reserved name");
    CHECK(hft_st_writer_add(w, "bad\xff", t) == HFT_EINVAL && strstr(hft_error_message(), "UTF-8"),
          "UTF-8 name");
    CHECK(hft_st_writer_metadata(w, "k", "\xc3") == HFT_EINVAL, "UTF-8 metadata");
    char path[512];
    tmp_path(path, sizeof path, "misuse.safetensors");
    CHECK_OK(hft_st_writer_save(w, path), NULL);
    hft_st_writer_free(w);
    hft_safetensors *f = NULL;
    CHECK_OK(hft_safetensors_open(path, &f), NULL);
    hft_tensor *x = NULL;
    if (f) {
        CHECK(hft_safetensors_load(f, "b", HFT_F32, false, &x) == HFT_EINVAL && !x &&
                  strstr(hft_error_message(), "no tensor named 'b'") && strstr(hft_error_message(), path),
              "unknown name: %s", hft_error_message());
        CHECK(hft_safetensors_find(f, "b") == NULL && hft_safetensors_entry(f, 1) == NULL, "lookups");
        hft_safetensors_close(f);
    }
    tmp_path(path, sizeof path, "does_not_exist.safetensors");
    CHECK(hft_safetensors_open(path, &f) == HFT_EIO && !f && strstr(hft_error_message(), path),
          "missing file");
    CHECK(hft_safetensors_open(tmpdir, &f) == HFT_EIO && !f, "a folder");
    hft_tensor_free(t);
}

static void remove_tmpdir(void) {
    DIR *d = opendir(tmpdir);
    char path[512];
    for (struct dirent *e; d && (e = readdir(d));) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        tmp_path(path, sizeof path, e->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(tmpdir);
}

int main(int argc, char **argv) {
    static const test_case cases[] = {
        {"round_trip_every_dtype_with_0d_empty_and_strided_tensors",
         round_trip_every_dtype_with_0d_empty_and_strided_tensors},
        {"large_strided_tensors_are_written_in_blocks", large_strided_tensors_are_written_in_blocks},
        {"metadata_comes_first_and_the_header_is_padded_to_8_bytes",
         metadata_comes_first_and_the_header_is_padded_to_8_bytes},
        {"zero_copy_wraps_the_mapping_and_misaligned_data_is_copied",
         zero_copy_wraps_the_mapping_and_misaligned_data_is_copied},
        {"converted_loads_are_exact_on_representable_values",
         converted_loads_are_exact_on_representable_values},
        {"files_written_by_pytorch_load_with_their_values", files_written_by_pytorch_load_with_their_values},
        {"malformed_files_are_refused_with_a_message_naming_the_problem",
         malformed_files_are_refused_with_a_message_naming_the_problem},
        {"saving_is_atomic", saving_is_atomic},
        {"misuse_returns_errors", misuse_returns_errors},
    };
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/hft_st_XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = test_main(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    remove_tmpdir();
    return rc;
}
