/* fuzz_idx_gz.c: libFuzzer harness of gzip IDX files. The input is byte 0 (a mode) then the
   decompressed IDX images file; the harness gzips it (one member, or two members split where byte
   0 says, or with bytes appended after the gzip data, or cut short) and reads both the raw and
   the gzip file with sq_dataset_open("idx:..."). The two must agree (same status, same pixels),
   except that bytes after the gzip data must be refused and so must a cut stream. */
#include "fuzz_util.h"
#include "sqakd/data.h"
#include <zlib.h>

/* appends one gzip member of d[0..n) to out (capacity checked by the caller) */
static size_t gzip_member(const uint8_t *d, size_t n, uint8_t *out, size_t cap)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) abort();
    z.next_in = (Bytef *)d;
    z.avail_in = (uInt)n;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    if (deflate(&z, Z_FINISH) != Z_STREAM_END) abort();
    size_t k = z.total_out;
    deflateEnd(&z);
    return k;
}

static int open_idx(const char *path, sq_dataset *ds)
{
    char spec[700];
    snprintf(spec, sizeof spec, "idx:%s", path);
    fz_clear_error();
    int st = sq_dataset_open(spec, SQ_SPLIT_TRAIN, 0, ds);
    if (st) fz_check_error_line();
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int mode = data[0];
    const uint8_t *idx = data + 1;
    size_t n = size - 1;
    size_t cap = 2 * n + 256;
    uint8_t *gz = malloc(cap);
    size_t len;
    int extra = 0, cut = 0;
    if ((mode & 3) == 1) {   /* two members, split at mode / 256 of the data */
        size_t at = n * (size_t)mode / 256;
        len = gzip_member(idx, at, gz, cap);
        len += gzip_member(idx + at, n - at, gz + len, cap - len);
    } else {
        len = gzip_member(idx, n, gz, cap);
    }
    if ((mode & 3) == 2) {   /* 1..8 bytes after the gzip data: a zero pad or garbage */
        extra = 1 + (mode >> 5);
        for (int i = 0; i < extra; i++) gz[len++] = (uint8_t)(mode & 4 ? 0 : 0xA5 + i);
    } else if ((mode & 3) == 3) {   /* the stream cut short by 1..64 bytes */
        cut = 1 + (mode >> 2);
        len = len > (size_t)cut ? len - (size_t)cut : 0;
    }
    char rp[600], gp[600];
    fz_path(rp, sizeof rp, "raw");
    fz_path(gp, sizeof gp, "gz");
    fz_write(rp, idx, n);
    fz_write(gp, gz, len);
    free(gz);
    sq_dataset a, b;
    int sa = open_idx(rp, &a), sb = open_idx(gp, &b);
    if (extra || cut) {
        if (sb == SQ_OK) {
            fz_fail("a gzip IDX file with %d bytes appended, %d cut, was accepted", extra, cut);
        }
    } else if (n >= 2 && idx[0] == 0x1f && idx[1] == 0x8b) {
        /* the raw file looks like gzip itself: only the gzip file's result is defined */
    } else if (sa != sb) {
        fz_fail("raw IDX gives status %d, its gzip copy %d", sa, sb);
    } else if (sa == SQ_OK) {
        size_t px = (size_t)a.n * a.c * a.h * a.w;
        if (a.n != b.n || a.h != b.h || a.w != b.w || memcmp(a.images, b.images, px)) abort();
    }
    if (sa == SQ_OK) sq_dataset_free(&a);
    if (sb == SQ_OK) sq_dataset_free(&b);
    unlink(rp);
    unlink(gp);
    return 0;
}
