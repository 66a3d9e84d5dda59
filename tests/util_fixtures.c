/* util_fixtures.c: shared test fixtures (see util_fixtures.h). */
#include "util_fixtures.h"
#include "io/atomic_write.h"
#include "util_check.h"
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>
#include <jpeglib.h>
#include <png.h>

void sqt_tiny_dataset(sq_dataset *ds, int n)
{
    memset(ds, 0, sizeof *ds);
    ds->n = n; ds->c = 1; ds->h = 8; ds->w = 8; ds->classes = 3;
    ds->images = malloc((size_t)n * 64);
    ds->labels = malloc(n * sizeof(int32_t));
    sqt_rng r;
    sqt_rng_seed(&r, 99);
    for (int i = 0; i < n; i++) {
        ds->labels[i] = i % 3;
        for (int j = 0; j < 64; j++)
            ds->images[i * 64 + j] = (uint8_t)((sqt_rng_next(&r) & 63) + 60 * ds->labels[i] * (j % 2));
    }
    ds->mean[0] = 0.3f; ds->std[0] = 0.3f;
    snprintf(ds->name, sizeof ds->name, "tiny");
}

const char *sqt_bin(void)
{
    const char *b = getenv("SQAKD_BIN");
    return b ? b : "build/sqakd";
}

int sqt_vrun(char *out, size_t cap, const char *fmt, va_list ap)
{
    char args[4096], cmd[8192];
    vsnprintf(args, sizeof args, fmt, ap);
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", sqt_bin(), args);
    out[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return 128;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

void sqt_write_be32(FILE *f, uint32_t v)
{
    unsigned char b[4] = {v >> 24, v >> 16, v >> 8, v};
    fwrite(b, 1, 4, f);
}

char *sqt_mkdtemp(char *buf, size_t cap, const char *prefix)
{
    snprintf(buf, cap, "/tmp/%s_XXXXXX", prefix);
    return mkdtemp(buf);
}

int sqt_rmtree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd);
}

/* ---------------------------------------------------------------- scratch directory, files */

char sqt_scratch_dir[512];

const char *sqt_tpath(const char *name)
{
    static char buf[8][1024];
    static int k;
    char *p = buf[k++ & 7];
    snprintf(p, sizeof buf[0], "%s/%s", sqt_scratch_dir, name);
    return p;
}

void sqt_path_in(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", sqt_scratch_dir, name); }

void sqt_tmkdir(const char *name) { cr_assert_eq(mkdir(sqt_tpath(name), 0755), 0, "mkdir %s", name); }

void sqt_write_bytes(const char *path, const void *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f, "gzopen %s", path);
        if (n) cr_assert_eq(gzwrite(f, data, (unsigned)n), (int)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f, "fopen %s", path);
        if (n) cr_assert_eq(fwrite(data, 1, n, f), n);
        fclose(f);
    }
}

void sqt_expect_error_has(const char *what)
{
    cr_expect(strstr(sq_last_error(), what) != NULL, "error message '%s' should contain '%s'",
              sq_last_error(), what);
}

void sqt_expect_error_printable(void)
{
    const unsigned char *e = (const unsigned char *)sq_last_error();
    for (size_t i = 0; e[i]; i++)
        cr_expect(e[i] >= 0x20 && e[i] != 0x7f && !(e[i] == 0xc2 && e[i + 1] >= 0x80 && e[i + 1] <= 0x9f),
                  "error message holds control byte 0x%02x at %zu", e[i], i);
}

long sqt_vm_peak_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmPeak:", 7)) kb = strtol(line + 7, NULL, 10);
    if (f) fclose(f);
    return kb;
}

long sqt_max_rss_kb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

int sqt_count_entries(const char *dir, char *first, size_t n)
{
    DIR *d = opendir(dir);
    int c = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        if (!c && first) snprintf(first, n, "%s", e->d_name);
        c++;
    }
    closedir(d);
    return c;
}

unsigned char *sqt_slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "open %s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    cr_assert_eq(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* ---------------------------------------------------------------- sample safetensors checkpoint */

#define NSAMPLE 9
static float s_conv[108], s_var[4] = { 1.0f, 0.5f, 2.25f, 1e-3f }, s_after[3] = { -1.5f, 0.0f, 3.75f }, s_empty[1];
static int64_t s_nbt = 123456789012345LL, s_uw[3] = { -(1LL << 40), 7, 1LL << 45 };
static int32_t s_idx[10];
static uint8_t s_mask[7] = { 0, 1, 2, 250, 255, 128, 3 }, s_weird[1] = { 42 };
static sq_st_tensor s_t[NSAMPLE];
static sq_st_kv s_meta[3] = {
    { "arch", "resnet20" },
    { "quote\"key", "back\\slash\nnew\tline" },
    { "unicode", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80" },
};

sq_st_tensor sqt_st_tensor(const char *name, sq_st_dtype dt, int ndim, const int64_t *shape, void *data)
{
    sq_st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = (char *)name;
    t.dtype = dt;
    t.ndim = ndim;
    size_t n = sq_st_dtype_size(dt);
    for (int i = 0; i < ndim; i++) { t.shape[i] = shape[i]; n *= (size_t)shape[i]; }
    t.data = data;
    t.nbytes = n;
    return t;
}

sq_st_file sqt_st_sample(void)
{
    for (int i = 0; i < 108; i++) s_conv[i] = (float)i * 0.25f - 13.0f;
    for (int i = 0; i < 10; i++) s_idx[i] = i - 5;
    int k = 0;
    s_t[k++] = sqt_st_tensor("conv1.weight", SQ_ST_F32, 4, (int64_t[]){ 4, 3, 3, 3 }, s_conv);
    s_t[k++] = sqt_st_tensor("bn1.running_var", SQ_ST_F32, 1, (int64_t[]){ 4 }, s_var);
    s_t[k++] = sqt_st_tensor("bn1.num_batches_tracked", SQ_ST_I64, 0, NULL, &s_nbt);
    s_t[k++] = sqt_st_tensor("mask", SQ_ST_U8, 1, (int64_t[]){ 7 }, s_mask);
    s_t[k++] = sqt_st_tensor("after_mask", SQ_ST_F32, 1, (int64_t[]){ 3 }, s_after);
    s_t[k++] = sqt_st_tensor("layer1.0.conv1.uW", SQ_ST_I64, 1, (int64_t[]){ 3 }, s_uw);
    s_t[k++] = sqt_st_tensor("idx", SQ_ST_I32, 2, (int64_t[]){ 2, 5 }, s_idx);
    s_t[k++] = sqt_st_tensor("empty", SQ_ST_F32, 2, (int64_t[]){ 0, 4 }, s_empty);
    s_t[k++] = sqt_st_tensor("we\"ird\\name\n/\xc3\xa9", SQ_ST_U8, 1, (int64_t[]){ 1 }, s_weird);
    sq_st_file f = { .ntensors = NSAMPLE, .tensors = s_t, .nmeta = 3, .meta = s_meta, .blob = NULL };
    return f;
}

void sqt_st_write_sample(const char *path)
{
    sq_st_file f = sqt_st_sample();
    sq_status st = sq_st_write(path, &f);
    cr_assert_eq(st, SQ_OK, "sq_st_write: %s", sq_last_error());
}

/* ---------------------------------------------------------------- guarded device buffers */

#define SENTINEL 0xA5

const size_t sqt_sizes[SQT_NSIZES] = {1, 7, 31, 257, 1023, 4099, 100003};

void *sqt_dput(const sq_backend *g, const void *host, size_t bytes)
{
    size_t total = bytes + 2 * SQT_GUARD;
    unsigned char *h = malloc(total);
    cr_assert(h);
    memset(h, SENTINEL, total);
    if (host) memcpy(h + SQT_GUARD, host, bytes);
    else memset(h + SQT_GUARD, 0, bytes);
    unsigned char *d = g->alloc(total);
    cr_assert(d, "device alloc of %zu bytes failed: %s", total, sq_last_error());
    g->copy_h2d(d, h, total);
    free(h);
    return d + SQT_GUARD;
}

void sqt_dget_free(const sq_backend *g, void *host, void *d, size_t bytes, const char *what)
{
    size_t total = bytes + 2 * SQT_GUARD;
    unsigned char *h = malloc(total);
    cr_assert(h);
    g->copy_d2h(h, (unsigned char *)d - SQT_GUARD, total);
    size_t bad = 0;
    for (size_t i = 0; i < SQT_GUARD; i++) bad += (h[i] != SENTINEL) + (h[SQT_GUARD + bytes + i] != SENTINEL);
    cr_expect_eq(bad, 0, "%s: %zu guard bytes overwritten around a %zu-byte buffer", what, bad,
                 bytes);
    if (host) memcpy(host, h + SQT_GUARD, bytes);
    free(h);
    g->free((unsigned char *)d - SQT_GUARD);
}

void sqt_gpu_ok(const sq_backend *g)
{
    g->sync();
    sq_status st = g->status();
    cr_assert_eq(st, SQ_OK, "%s backend error: %s", g->name, sq_last_error());
}

float *sqt_hvec(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

float *sqt_hrand(size_t n, float lo, float hi, uint64_t seed)
{
    float *x = sqt_hvec(n);
    sqt_fill_uniform(x, n, lo, hi, seed);
    return x;
}

float *sqt_hdup(const float *x, size_t n)
{
    float *y = sqt_hvec(n);
    memcpy(y, x, n * sizeof(float));
    return y;
}

float *sqt_fetch(const sq_backend *g, float *d, size_t n, const char *what)
{
    float *h = sqt_hvec(n);
    sqt_dget_free(g, h, d, n * sizeof(float), what);
    return h;
}

void sqt_expect_close(const char *what, const float *got, const float *ref, size_t n,
                      double atol, double rtol, uint64_t seed)
{
    size_t bad = sqt_check_close(what, got, ref, n, atol, rtol, seed);
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements differ from the CPU (seed %llu)", what, bad, n,
                 (unsigned long long)seed);
}

void sqt_expect_equal(const char *what, const float *got, const float *ref, size_t n)
{
    size_t bad = sqt_check_equal(what, got, ref, n);
    cr_expect_eq(bad, 0, "%s: %zu of %zu elements not bit-identical to the CPU", what, bad, n);
}

const sq_backend *sqt_cpu_unfused(int no_qconv)
{
    static sq_backend b[2];
    sq_backend *u = &b[no_qconv ? 1 : 0];
    *u = *sq_backend_cpu();
    u->bn_act_fwd_train = NULL;
    u->bn_act_bwd = NULL;
    u->add_act_fwd = NULL;
    u->add_act_bwd = NULL;
    u->bn_add_act_fwd_train = NULL;
    u->bn_add_act_bwd = NULL;
    if (no_qconv) {
        u->qconv2d_fwd = NULL;
        u->qconv2d_bwd = NULL;
    }
    return u;
}

void sqt_fq_params(sq_quant_kind kind, int weight, int bits, float qp[2])
{
    qp[0] = qp[1] = 0.0f;
    if (kind == SQ_QUANT_EWGS) {
        qp[0] = weight ? -0.8f : 0.1f;
        qp[1] = weight ? 0.9f : 1.3f;
    } else if (kind == SQ_QUANT_PACT) {
        qp[0] = 1.1f;
    } else if (kind == SQ_QUANT_LSQ) {
        qp[0] = 1.2f / (float)(weight ? (1 << (bits - 1)) : (1 << bits) - 1);
    }
}

/* ---- a full disk after a number of bytes, through the atomic writer's fault hook ---- */
static long long g_fail_limit = -1;

static int fail_at_hook(sq_io_fault *f, void *ctx)
{
    (void)ctx;
    if (f->ev != SQ_IO_WRITE || g_fail_limit < 0 || f->off + f->n <= (unsigned long long)g_fail_limit) return 0;
    f->allow = (size_t)((unsigned long long)g_fail_limit - f->off);
    return ENOSPC;
}

void sqt_fail_writes_at(long long limit)
{
    g_fail_limit = limit;
    sq_io_set_fault_hook(limit >= 0 ? fail_at_hook : NULL, NULL);
}

void sqt_cli_setup(char *dir, size_t cap, const char *prefix)
{
    if (access(sqt_bin(), X_OK)) cr_skip("sqakd binary %s not built (make test builds it)", sqt_bin());
    cr_assert_not_null(sqt_mkdtemp(dir, cap, prefix));
}

void sqt_write_idx_pattern(const char *img, const char *lab, int n, int side, int classes, uint64_t seed)
{
    FILE *f = fopen(img, "wb"), *g = fopen(lab, "wb");
    cr_assert(f && g, "cannot write %s or %s", img, lab);
    sqt_write_be32(f, 0x803); sqt_write_be32(f, n); sqt_write_be32(f, side); sqt_write_be32(f, side);
    sqt_write_be32(g, 0x801); sqt_write_be32(g, n);
    sqt_rng r;
    sqt_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        for (int p = 0; p < side * side; p++) fputc((int)((p % 3 == i % 3 ? 160 : 40) + (sqt_rng_next(&r) & 63)), f);
        fputc(i % classes, g);
    }
    fclose(f);
    fclose(g);
}

int sqt_run(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sqt_vrun(out, cap, fmt, ap);
    va_end(ap);
    return rc;
}

void sqt_write_png(const char *path, int w, int h, int color, int depth, const uint8_t *px, const void *pal,
                   int npal)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    cr_assert(png && info);
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, (png_const_colorp)pal, npal);
    png_write_info(png, info);
    int ch = color == PNG_COLOR_TYPE_RGB ? 3 : color == PNG_COLOR_TYPE_RGBA ? 4 :
             color == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t stride = (size_t)w * ch * depth / 8;
    for (int y = 0; y < h; y++) png_write_row(png, (png_const_bytep)(px + (size_t)y * stride));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    fclose(f);
}

void sqt_write_jpeg(const char *path, int w, int h, int comps, const uint8_t *px, int quality)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "fopen %s", path);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    fclose(f);
}
