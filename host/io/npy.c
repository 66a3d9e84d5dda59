/* npy.c: NumPy .npy arrays (include/sqakd/onnx.h): a strict reader of C-order little-endian
   float32 / float64 arrays (format versions 1.0, 2.0 and 3.0), a raw reader of the integer and
   float types the npy: data spec takes (sq_npy_read_raw), and a writer of float32 arrays in
   the version 1.0 layout NumPy itself writes (header padded with spaces so the data starts at a
   multiple of 64 bytes). The header is parsed as the Python dict literal NumPy writes, with
   exactly the keys descr, fortran_order and shape, and nothing else accepted. The file reader
   reads the header first and checks the file's size against it before allocating. */
#include "sqakd/onnx.h"
#include "io/atomic_write.h"
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c reads '<f4' data as host memory: a little-endian host is required"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAX_HEADER (1u << 20)   /* NumPy writes a few hundred bytes; anything near this is not one */

#define npy_fail sq_set_error_in

/* what the header says */
typedef struct npy_hdr {
    size_t data_off;   /* bytes before the data */
    sq_npy_dtype dtype;
    size_t esize;      /* bytes per element */
    int f8;            /* '<f8' (float readers: else '<f4') */
    int ndim;
    int64_t dims[SQ_ONNX_MAX_DIMS];
    size_t numel;
} npy_hdr;

/* the length of the preamble (magic, version, header length) and of the header text, from the
   first bytes; 0 when they are not those of a .npy file */
static int npy_preamble(const uint8_t *b, size_t n, const char *what, size_t *pre, size_t *hlen)
{
    if (n < 10 || memcmp(b, NPY_MAGIC, 6)) { npy_fail(what, "not a .npy file (no \\x93NUMPY magic)"); return 0; }
    if (b[6] < 1 || b[6] > 3 || b[7] != 0) {
        npy_fail(what, ".npy format version %u.%u (sqakd reads 1.0, 2.0 and 3.0)", b[6], b[7]);
        return 0;
    }
    if (b[6] == 1) {
        *pre = 10;
        *hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else {
        if (n < 12) { npy_fail(what, "truncated .npy preamble"); return 0; }
        *pre = 12;
        *hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    }
    if (*hlen > NPY_MAX_HEADER) {
        npy_fail(what, ".npy header of %zu bytes (at most %u)", *hlen, NPY_MAX_HEADER);
        return 0;
    }
    return 1;
}

typedef struct cur { const char *p, *end; } cur;

static void skip_ws(cur *c) { while (c->p < c->end && (*c->p == ' ' || *c->p == '\t')) c->p++; }

static int eat(cur *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) { c->p++; return 1; }
    return 0;
}

/* a quoted Python string without escapes into out (cap bytes); 0 if none or too long */
static int quoted(cur *c, char *out, size_t cap)
{
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || (unsigned char)*c->p < 0x20 || n + 1 >= cap) return 0;
        out[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    out[n] = 0;
    return 1;
}

static int word(cur *c, const char *w)
{
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) { c->p += n; return 1; }
    return 0;
}

/* the types sq_npy_read_raw reads, by their descr (one-byte types: '|', as NumPy writes them, or
   '<'); the float readers take the first two */
static const struct { const char *descr, *alt, *name; sq_npy_dtype t; size_t size; } NPY_TYPES[] = {
    {"<f4", NULL, "float32", SQ_NPY_F4, 4}, {"<f8", NULL, "float64", SQ_NPY_F8, 8},
    {"|u1", "<u1", "uint8", SQ_NPY_U1, 1},  {"|i1", "<i1", "int8", SQ_NPY_I1, 1},
    {"|b1", "<b1", "bool", SQ_NPY_BOOL, 1}, {"<u2", NULL, "uint16", SQ_NPY_U2, 2},
    {"<i2", NULL, "int16", SQ_NPY_I2, 2},   {"<u4", NULL, "uint32", SQ_NPY_U4, 4},
    {"<i4", NULL, "int32", SQ_NPY_I4, 4},   {"<u8", NULL, "uint64", SQ_NPY_U8, 8},
    {"<i8", NULL, "int64", SQ_NPY_I8, 8},
};

static int npy_dtype_of(const char *descr)
{
    for (int k = 0; k < (int)(sizeof NPY_TYPES / sizeof NPY_TYPES[0]); k++)
        if (!strcmp(descr, NPY_TYPES[k].descr) || (NPY_TYPES[k].alt && !strcmp(descr, NPY_TYPES[k].alt))) return k;
    return -1;
}

const char *sq_npy_dtype_name(sq_npy_dtype t)
{
    for (size_t k = 0; k < sizeof NPY_TYPES / sizeof NPY_TYPES[0]; k++)
        if (NPY_TYPES[k].t == t) return NPY_TYPES[k].name;
    return "?";
}

/* the float readers' refusal of the other types, as before they existed */
static sq_status npy_need_float(const npy_hdr *h, const char *what)
{
    if (h->dtype == SQ_NPY_F4 || h->dtype == SQ_NPY_F8) return SQ_OK;
    const char *descr = "?";
    for (size_t k = 0; k < sizeof NPY_TYPES / sizeof NPY_TYPES[0]; k++)
        if (NPY_TYPES[k].t == h->dtype) descr = NPY_TYPES[k].descr;
    npy_fail(what, "data type '%s' (%s); sqakd reads '<f4' (float32) and '<f8' (float64) arrays here", descr,
             sq_npy_dtype_name(h->dtype));
    return SQ_EFORMAT;
}

/* Parses the header text (hlen bytes at t). */
static sq_status npy_parse(const char *t, size_t hlen, const char *what, npy_hdr *h)
{
    cur c = { t, t + hlen };
    char key[32], descr[32], pk[64];
    int have_descr = 0, have_fo = 0, have_shape = 0, fortran = 0;
    if (!hlen || t[hlen - 1] != '\n') { npy_fail(what, ".npy header does not end in a newline"); return SQ_EFORMAT; }
    c.end--;
    if (!eat(&c, '{')) { npy_fail(what, ".npy header is not a dict ('{' expected)"); return SQ_EFORMAT; }
    for (;;) {
        if (eat(&c, '}')) break;
        if (!quoted(&c, key, sizeof key) || !eat(&c, ':')) {
            npy_fail(what, ".npy header: a quoted key and ':' expected at byte %zu", (size_t)(c.p - t));
            return SQ_EFORMAT;
        }
        if (!strcmp(key, "descr")) {
            if (have_descr++ || !quoted(&c, descr, sizeof descr)) goto bad_value;
        } else if (!strcmp(key, "fortran_order")) {
            if (have_fo++) goto bad_value;
            if (word(&c, "True")) fortran = 1;
            else if (word(&c, "False")) fortran = 0;
            else goto bad_value;
        } else if (!strcmp(key, "shape")) {
            if (have_shape++ || !eat(&c, '(')) goto bad_value;
            int n = 0, commas = 0;
            for (;;) {
                skip_ws(&c);
                if (eat(&c, ')')) break;
                if (c.p >= c.end || *c.p < '0' || *c.p > '9') goto bad_value;
                uint64_t v = 0;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    v = v * 10 + (uint64_t)(*c.p++ - '0');
                    if (v > (uint64_t)INT64_MAX / 16) goto bad_value;
                }
                if (n >= SQ_ONNX_MAX_DIMS) {
                    npy_fail(what, ".npy shape has more than %d dimensions", SQ_ONNX_MAX_DIMS);
                    return SQ_EFORMAT;
                }
                h->dims[n++] = (int64_t)v;
                if (eat(&c, ',')) { commas++; continue; }
                if (eat(&c, ')')) break;
                goto bad_value;
            }
            if (n == 1 && commas == 0) goto bad_value;   /* "(5)" is an int in Python, not a tuple */
            h->ndim = n;
        } else {
            npy_fail(what, ".npy header has unknown key '%s'", sq_printable(key, pk, sizeof pk));
            return SQ_EFORMAT;
        }
        if (eat(&c, ',')) continue;
        if (eat(&c, '}')) break;
        npy_fail(what, ".npy header: ',' or '}' expected at byte %zu", (size_t)(c.p - t));
        return SQ_EFORMAT;
    bad_value:
        npy_fail(what, ".npy header: bad or repeated value for '%s'", sq_printable(key, pk, sizeof pk));
        return SQ_EFORMAT;
    }
    skip_ws(&c);
    if (c.p != c.end) { npy_fail(what, ".npy header has text after the dict"); return SQ_EFORMAT; }
    if (!have_descr || !have_fo || !have_shape) {
        npy_fail(what, ".npy header lacks '%s'", !have_descr ? "descr" : !have_fo ? "fortran_order" : "shape");
        return SQ_EFORMAT;
    }
    char pd[64];
    int k = npy_dtype_of(descr);
    if (k < 0) {
        char le[32];
        snprintf(le, sizeof le, "<%s", descr + 1);
        if (descr[0] == '>' && npy_dtype_of(le) >= 0) {
            npy_fail(what, "big-endian data ('%s'); sqakd reads little-endian arrays (save with"
                     " arr.astype(arr.dtype.newbyteorder('<')))", descr);
            return SQ_EFORMAT;
        }
        npy_fail(what, "data type '%s'; sqakd reads '<f4' (float32) and '<f8' (float64) arrays, and for data"
                 " (npy: spec) uint8, int8, bool and little-endian 16/32/64-bit integers",
                 sq_printable(descr, pd, sizeof pd));
        return SQ_EFORMAT;
    }
    h->dtype = NPY_TYPES[k].t;
    h->esize = NPY_TYPES[k].size;
    h->f8 = h->dtype == SQ_NPY_F8;
    if (fortran) {
        npy_fail(what, "Fortran-order array; sqakd reads C order (save np.ascontiguousarray(arr))");
        return SQ_EFORMAT;
    }
    size_t numel = 1;
    for (int d = 0; d < h->ndim; d++)
        if (__builtin_mul_overflow(numel, (size_t)h->dims[d], &numel) || numel > SQ_ONNX_MAX_NUMEL) {
            npy_fail(what, ".npy array of more than %zu elements", SQ_ONNX_MAX_NUMEL);
            return SQ_EFORMAT;
        }
    h->numel = numel;
    return SQ_OK;
}

static void convert(const uint8_t *src, size_t n, int f8, float *dst)
{
    if (!f8) { memcpy(dst, src, n * 4); return; }
    for (size_t k = 0; k < n; k++) {
        double x;
        memcpy(&x, src + 8 * k, 8);
        dst[k] = (float)x;
    }
}

static void fill_out(const npy_hdr *h, int *ndim, int64_t dims[SQ_ONNX_MAX_DIMS])
{
    *ndim = h->ndim;
    for (int d = 0; d < SQ_ONNX_MAX_DIMS; d++) dims[d] = d < h->ndim ? h->dims[d] : 0;
}

static int check_out(float **data, int *ndim, int64_t *dims)
{
    if (!data || !ndim || !dims) { sq_set_error("sq_npy_read: NULL output"); return 0; }
    *data = NULL;
    return 1;
}

sq_status sq_npy_read_mem(const void *buf, size_t len, const char *what, float **data, int *ndim,
                          int64_t dims[SQ_ONNX_MAX_DIMS])
{
    if (!check_out(data, ndim, dims)) return SQ_EARG;
    what = what ? what : "(memory)";
    const uint8_t *b = buf;
    size_t pre, hlen;
    if (!b && len) { npy_fail(what, "NULL buffer"); return SQ_EARG; }
    if (!npy_preamble(b, len, what, &pre, &hlen)) return SQ_EFORMAT;
    if (len - pre < hlen) {
        npy_fail(what, "truncated .npy header (%zu of %zu bytes)", len - pre, hlen);
        return SQ_EFORMAT;
    }
    npy_hdr h = { 0 };
    sq_status st = npy_parse((const char *)b + pre, hlen, what, &h);
    if (st != SQ_OK || (st = npy_need_float(&h, what)) != SQ_OK) return st;
    size_t es = h.esize, off = pre + hlen;
    if (len - off != h.numel * es) {
        npy_fail(what, ".npy data is %zu bytes but the header's shape needs %zu", len - off, h.numel * es);
        return SQ_EFORMAT;
    }
    float *out = malloc((h.numel ? h.numel : 1) * sizeof *out);
    if (!out) { npy_fail(what, "out of memory for %zu elements", h.numel); return SQ_ENOMEM; }
    convert(b + off, h.numel, h.f8, out);
    *data = out;
    fill_out(&h, ndim, dims);
    return SQ_OK;
}

/* reads exactly n bytes at the file's current position */
static int read_all(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return 0;
        got += (size_t)r;
    }
    return 1;
}

/* Opens path, reads and checks its header and that the file holds exactly the data it promises:
   *fd is left at the start of the data (the caller closes it). */
static sq_status npy_file_open(const char *path, const char *pp, int *fd_out, npy_hdr *h)
{
    *fd_out = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { sq_set_error("%s: cannot open .npy file: %s", pp, strerror(errno)); return SQ_EIO; }
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        sq_set_error("%s: not a regular file", pp);
        close(fd);
        return SQ_EIO;
    }
    size_t fsize = (size_t)sb.st_size, pre, hlen;
    uint8_t head[12];
    size_t nh = fsize < 12 ? fsize : 12;
    sq_status st = SQ_EFORMAT;
    char *text = NULL;
    if (!read_all(fd, head, nh)) { sq_set_error("%s: read failed: %s", pp, strerror(errno)); st = SQ_EIO; goto done; }
    if (!npy_preamble(head, nh, path, &pre, &hlen)) goto done;
    if (fsize - pre < hlen) {
        npy_fail(path, "truncated .npy header (%zu of %zu bytes)", fsize - pre, hlen);
        goto done;
    }
    text = sq_xmalloc(hlen + 1);
    if (lseek(fd, (off_t)pre, SEEK_SET) < 0 || !read_all(fd, text, hlen)) {
        sq_set_error("%s: read failed: %s", pp, strerror(errno));
        st = SQ_EIO;
        goto done;
    }
    if ((st = npy_parse(text, hlen, path, h)) != SQ_OK) goto done;
    size_t off = pre + hlen;
    if (fsize - off != h->numel * h->esize) {
        npy_fail(path, ".npy data is %zu bytes but the header's shape needs %zu", fsize - off, h->numel * h->esize);
        st = SQ_EFORMAT;
        goto done;
    }
    h->data_off = off;
    st = SQ_OK;
done:
    free(text);
    if (st) close(fd);
    else *fd_out = fd;
    return st;
}

static sq_status npy_read_failed(const char *pp)
{
    sq_set_error("%s: read failed in the .npy data: %s", pp, errno ? strerror(errno) : "file shrank");
    return SQ_EIO;
}

sq_status sq_npy_read(const char *path, float **data, int *ndim, int64_t dims[SQ_ONNX_MAX_DIMS])
{
    if (!check_out(data, ndim, dims)) return SQ_EARG;
    if (!path) { sq_set_error("sq_npy_read: NULL path"); return SQ_EARG; }
    char pp[512];
    sq_printable(path, pp, sizeof pp);
    int fd;
    npy_hdr h = { 0 };
    sq_status st = npy_file_open(path, pp, &fd, &h);
    if (st) return st;
    float *out = NULL;
    if ((st = npy_need_float(&h, path)) != SQ_OK) goto done;
    out = malloc((h.numel ? h.numel : 1) * sizeof *out);
    if (!out) { npy_fail(path, "out of memory for %zu elements", h.numel); st = SQ_ENOMEM; goto done; }
    errno = 0;
    if (!h.f8) {
        if (!read_all(fd, out, h.numel * 4)) { st = npy_read_failed(pp); goto done; }
    } else {   /* float64: through a bounce buffer, converted chunk by chunk */
        enum { CH = 1 << 16 };
        double *tmp = sq_xmalloc(CH * sizeof *tmp);
        for (size_t k = 0; k < h.numel; k += CH) {
            size_t n = h.numel - k < CH ? h.numel - k : CH;
            if (!read_all(fd, tmp, n * 8)) { free(tmp); st = npy_read_failed(pp); goto done; }
            for (size_t j = 0; j < n; j++) out[k + j] = (float)tmp[j];
        }
        free(tmp);
    }
    *data = out;
    out = NULL;
    fill_out(&h, ndim, dims);
done:
    free(out);
    close(fd);
    return st;
}

sq_status sq_npy_read_raw(const char *path, sq_npy_dtype *dtype, void **data, int *ndim,
                          int64_t dims[SQ_ONNX_MAX_DIMS])
{
    if (!path || !dtype || !data || !ndim || !dims) { sq_set_error("sq_npy_read_raw: NULL argument"); return SQ_EARG; }
    *data = NULL;
    char pp[512];
    sq_printable(path, pp, sizeof pp);
    int fd;
    npy_hdr h = { 0 };
    sq_status st = npy_file_open(path, pp, &fd, &h);
    if (st) return st;
    size_t bytes = h.numel * h.esize;
    void *out = malloc(bytes ? bytes : 1);
    if (!out) {
        npy_fail(path, "out of memory for %zu elements", h.numel);
        close(fd);
        return SQ_ENOMEM;
    }
    errno = 0;
    if (!read_all(fd, out, bytes)) {
        free(out);
        close(fd);
        return npy_read_failed(pp);
    }
    close(fd);
    *dtype = h.dtype;
    *data = out;
    fill_out(&h, ndim, dims);
    return SQ_OK;
}

sq_status sq_npy_write(const char *path, const float *data, int ndim, const int64_t *dims)
{
    char pp[512];
    sq_printable(path, pp, sizeof pp);
    if (!path || ndim < 0 || ndim > SQ_ONNX_MAX_DIMS || (ndim && !dims)) {
        sq_set_error("writing %s: invalid arguments (%d dims)", pp, ndim);
        return SQ_EARG;
    }
    size_t numel = 1;
    char shape[256];
    int sl = 0;
    shape[sl++] = '(';
    for (int d = 0; d < ndim; d++) {
        if (dims[d] < 0 || __builtin_mul_overflow(numel, (size_t)dims[d], &numel) ||
            __builtin_mul_overflow(numel, (size_t)4, &(size_t){ 0 })) {
            sq_set_error("writing %s: dimension %d (%lld) is negative or the size overflows", pp, d, (long long)dims[d]);
            return SQ_EARG;
        }
        sl += snprintf(shape + sl, sizeof shape - (size_t)sl, "%s%lld", d ? ", " : "", (long long)dims[d]);
    }
    if (ndim == 1) shape[sl++] = ',';   /* Python's one-element tuple */
    shape[sl++] = ')';
    shape[sl] = 0;
    if (numel && !data) { sq_set_error("writing %s: NULL data", pp); return SQ_EARG; }
    /* the dict as NumPy writes it, then spaces up to a 64-byte boundary minus the newline */
    char hdr[512];
    int n = snprintf(hdr + 10, sizeof hdr - 10, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t total = 10 + (size_t)n + 1;
    total = (total + 63) & ~(size_t)63;
    memset(hdr + 10 + n, ' ', total - 10 - (size_t)n - 1);
    hdr[total - 1] = '\n';
    memcpy(hdr, NPY_MAGIC "\x01\x00", 8);
    hdr[8] = (char)((total - 10) & 0xff);
    hdr[9] = (char)((total - 10) >> 8);
    sq_io_seg segs[2] = { { hdr, total }, { data, numel * sizeof(float) } };
    return sq_io_write_atomic(path, segs, 2);
}
