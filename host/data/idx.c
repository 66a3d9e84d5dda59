/* idx.c: IDX reader (uint8 images 0x00000803 / uint8 labels 0x00000801, big-endian dims, raw or
   gzip detected by magic bytes) and the dataset specs built on it: fashion-mnist[:DIR],
   mnist:DIR and idx:IMAGES[,LABELS]. Every header field and the exact payload length are
   checked; errors name the file and the byte offset (of the decompressed stream for gzip).

   gzip goes through zlib's inflate (not gzread, which silently ignores whatever follows the gzip
   data and does not report a stream cut inside its 8-byte trailer). A gzip file is a series of
   members (RFC 1952 2.2; `cat a.gz b.gz` is valid and gzip -d accepts it), so a member may be
   followed by another; anything else after the last member, zero padding included, is refused,
   as is a member without its complete trailer (CRC-32 and length, both checked by inflate). The
   payload buffer of a gzip file grows as data is decompressed: a small file declaring a huge
   size fails at its real end instead of making the reader allocate the declared size. */
#include "data/data_internal.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#define IDX_MAGIC_IMAGES 0x00000803u
#define IDX_MAGIC_LABELS 0x00000801u
#define IDX_MAX_PAYLOAD ((uint64_t)1 << 36) /* 64 GiB: anything larger is a corrupt header */
#define IDX_GZ_CHUNK (1u << 18)             /* compressed bytes read at a time */
#define IDX_GROW_FIRST ((size_t)64 << 20)   /* first payload buffer of a gzip file: 64 MiB */
#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

typedef struct idx_file {
    const char *path;
    FILE *f;           /* the file (raw data, or compressed data when is_gz) */
    int is_gz;
    z_stream z;        /* is_gz: inflate state over in[] */
    unsigned char *in; /* is_gz: compressed input buffer */
    int in_member;     /* is_gz: inside a member (0 between members and at the end) */
    int at_end;        /* is_gz: the last member ended and only the end of the file followed */
    uint64_t raw_off;  /* is_gz: compressed bytes consumed (file offset of z.next_in) */
    uint64_t off;      /* bytes delivered (decompressed for gzip) */
    char msg[160];     /* is_gz: the reader message about trailing garbage */
} idx_file;

static uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static sq_status idx_fopen(idx_file *r, const char *path)
{
    memset(r, 0, sizeof *r);
    r->path = path;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sq_set_error("cannot open IDX file '%s': %s", path, strerror(errno));
        return SQ_EIO;
    }
    unsigned char m[2] = {0, 0};
    size_t k = fread(m, 1, 2, f);
    rewind(f);
    r->f = f;
    if (k == 2 && m[0] == 0x1f && m[1] == 0x8b) {
        r->is_gz = 1;
        r->in = sq_xmalloc(IDX_GZ_CHUNK);
        r->z.next_in = r->in; /* empty so far; gz_fill reads */
        if (inflateInit2(&r->z, 15 + 16) != Z_OK) { /* 16: gzip wrapper only */
            sq_set_error("cannot open gzip IDX file '%s': zlib initialisation failed", path);
            free(r->in);
            fclose(f);
            r->f = NULL;
            return SQ_ENOMEM;
        }
        r->in_member = 1;
    }
    return SQ_OK;
}

static void idx_fclose(idx_file *r)
{
    if (r->is_gz) {
        inflateEnd(&r->z);
        free(r->in);
    }
    if (r->f) fclose(r->f);
    r->f = NULL;
    r->in = NULL;
    r->is_gz = 0;
}

/* Keeps at least `need` compressed bytes available in z (fewer only at the end of the file);
   returns -1 on a read error. */
static int gz_fill(idx_file *r, unsigned need)
{
    if (r->z.avail_in >= need) return 0;
    memmove(r->in, r->z.next_in, r->z.avail_in);
    r->z.next_in = r->in;
    size_t k = fread(r->in + r->z.avail_in, 1, IDX_GZ_CHUNK - r->z.avail_in, r->f);
    r->z.avail_in += (uInt)k;
    return ferror(r->f) ? -1 : 0;
}

/* Inflates up to n bytes into buf; see idx_read. */
static size_t gz_read(idx_file *r, unsigned char *buf, size_t n, const char **why)
{
    size_t got = 0;
    while (got < n && !r->at_end) {
        if (!r->in_member) {
            /* between members: the end of the file, or the magic bytes of another member */
            if (gz_fill(r, 2)) { *why = strerror(errno); break; }
            if (r->z.avail_in == 0) { r->at_end = 1; break; }
            if (r->z.avail_in < 2 || r->z.next_in[0] != 0x1f || r->z.next_in[1] != 0x8b) {
                struct stat sb;
                unsigned long long left = r->z.avail_in;
                if (fstat(fileno(r->f), &sb) == 0 && (uint64_t)sb.st_size > r->raw_off)
                    left = (unsigned long long)sb.st_size - r->raw_off;
                snprintf(r->msg, sizeof r->msg, "%llu bytes of trailing garbage after the gzip data, "
                         "from file byte %llu", left, (unsigned long long)r->raw_off);
                *why = r->msg;
                break;
            }
            inflateReset(&r->z);
            r->in_member = 1;
        }
        if (r->z.avail_in == 0) {
            if (gz_fill(r, 1)) { *why = strerror(errno); break; }
            if (r->z.avail_in == 0) { *why = "unexpected end of file"; break; }   /* inside a member */
        }
        size_t want = n - got;
        r->z.next_out = buf + got;
        r->z.avail_out = want > UINT_MAX ? UINT_MAX : (uInt)want;
        uInt before_in = r->z.avail_in, before_out = r->z.avail_out;
        int ret = inflate(&r->z, Z_NO_FLUSH);
        r->raw_off += before_in - r->z.avail_in;
        got += before_out - r->z.avail_out;
        if (ret == Z_STREAM_END) {
            r->in_member = 0;   /* the CRC-32 and length in the trailer matched */
        } else if (ret != Z_OK) {   /* Z_BUF_ERROR cannot happen with input and output room */
            *why = r->z.msg ? r->z.msg : "corrupt gzip data";
            break;
        }
    }
    return got;
}

/* Reads up to n bytes and returns the count; *why gets a reader message on an I/O or
   decompression error, trailing garbage after gzip data or a cut gzip stream (NULL on a clean
   end of data). */
static size_t idx_read(idx_file *r, void *buf, size_t n, const char **why)
{
    size_t got;
    *why = NULL;
    if (r->is_gz) {
        got = gz_read(r, buf, n, why);
    } else {
        got = fread(buf, 1, n, r->f);
        if (ferror(r->f)) *why = strerror(errno);
    }
    r->off += got;
    return got;
}

static const char *gz_note(const idx_file *r) { return r->is_gz ? " of the decompressed data" : ""; }

/* Reads the payload (want bytes) into a new buffer. Raw files were checked against their size, so
   the buffer is allocated at once; for gzip it grows from IDX_GROW_FIRST bytes as data arrives. */
static uint8_t *read_payload(idx_file *r, size_t want, size_t *got, const char **why, int *nomem)
{
    size_t cap = r->is_gz && want > IDX_GROW_FIRST ? IDX_GROW_FIRST : want;
    uint8_t *buf = malloc(cap ? cap : 1);
    *got = 0;
    *why = NULL;
    *nomem = !buf;
    while (buf) {
        size_t k = idx_read(r, buf + *got, cap - *got, why);
        *got += k;
        if (*why || *got < cap || cap == want) break;
        size_t ncap = cap > want / 2 ? want : 2 * cap;
        uint8_t *grown = realloc(buf, ncap);
        if (!grown) {
            *nomem = 1;
            free(buf);
            return NULL;
        }
        buf = grown;
        cap = ncap;
    }
    return buf;
}

/* Loads one IDX file: magic must match, ndims big-endian dims (all > 0) follow, then exactly
   prod(dims) bytes. *data is malloc'ed. */
static sq_status idx_load(const char *path, uint32_t magic, int ndims, uint32_t *dims,
                          uint8_t **data)
{
    const char *what = ndims == 3 ? "images" : "labels";
    idx_file r;
    sq_status st = idx_fopen(&r, path);
    if (st) return st;
    unsigned char hdr[16];
    size_t hlen = 4 + 4 * (size_t)ndims;
    const char *why;
    size_t got = idx_read(&r, hdr, hlen, &why);
    if (got < hlen) {
        sq_set_error("IDX %s file '%s' is truncated: data ends at byte %zu%s inside the %zu-byte "
                     "header%s%s; re-download it", what, path, got, gz_note(&r), hlen,
                     why ? ": " : "", why ? why : "");
        idx_fclose(&r);
        return SQ_EFORMAT;
    }
    uint32_t m = be32(hdr);
    if (m != magic) {
        sq_set_error("'%s' is not an IDX %s file: magic 0x%08x at byte 0, expected 0x%08x (uint8, "
                     "%d dims)", path, what, m, magic, ndims);
        idx_fclose(&r);
        return SQ_EFORMAT;
    }
    uint64_t payload = 1;
    for (int i = 0; i < ndims; i++) {
        dims[i] = be32(hdr + 4 + 4 * i);
        if (dims[i] == 0 || (i == 0 && dims[i] > INT_MAX)) {
            sq_set_error("IDX %s file '%s': dimension %d (at byte %d) is %u; it must be in 1..%d",
                         what, path, i, 4 + 4 * i, dims[i], INT_MAX);
            idx_fclose(&r);
            return SQ_EFORMAT;
        }
        payload *= dims[i];
        if (payload > IDX_MAX_PAYLOAD) {
            sq_set_error("IDX %s file '%s': header dims give more than %llu bytes; the header is "
                         "corrupt", what, path, (unsigned long long)IDX_MAX_PAYLOAD);
            idx_fclose(&r);
            return SQ_EFORMAT;
        }
    }
    uint64_t want = hlen + payload;
    if (!r.is_gz) { /* raw file: check the length before allocating */
        struct stat sb;
        if (fstat(fileno(r.f), &sb) == 0 && (uint64_t)sb.st_size != want) {
            if ((uint64_t)sb.st_size < want)
                sq_set_error("IDX %s file '%s' is truncated: data ends at byte %llu, the header "
                             "promises %llu bytes; re-download it", what, path,
                             (unsigned long long)sb.st_size, (unsigned long long)want);
            else
                sq_set_error("IDX %s file '%s' has %llu trailing bytes after byte %llu (header "
                             "promises exactly %llu bytes); the file is corrupt", what, path,
                             (unsigned long long)(sb.st_size - want), (unsigned long long)want,
                             (unsigned long long)want);
            idx_fclose(&r);
            return SQ_EFORMAT;
        }
    }
    int nomem;
    uint8_t *buf = read_payload(&r, (size_t)payload, &got, &why, &nomem);
    if (nomem) {
        sq_set_error("out of memory reading '%s' (%llu bytes)", path, (unsigned long long)payload);
        idx_fclose(&r);
        return SQ_ENOMEM;
    }
    if (got < payload) {
        sq_set_error("IDX %s file '%s' is truncated: data ends at byte %llu%s, the header promises "
                     "%llu bytes%s%s%s; re-download it", what, path, (unsigned long long)r.off,
                     gz_note(&r), (unsigned long long)want, why ? " (" : "", why ? why : "",
                     why ? ")" : "");
        free(buf);
        idx_fclose(&r);
        return SQ_EFORMAT;
    }
    uint64_t extra = 0;
    unsigned char tmp[4096];
    for (;;) {
        size_t k = idx_read(&r, tmp, sizeof tmp, &why);
        extra += k;
        if (!k || why) break;
    }
    if (extra) {
        sq_set_error("IDX %s file '%s' has %llu trailing bytes after byte %llu%s (header promises "
                     "exactly %llu bytes); the file is corrupt", what, path,
                     (unsigned long long)extra, (unsigned long long)want, gz_note(&r),
                     (unsigned long long)want);
        free(buf);
        idx_fclose(&r);
        return SQ_EFORMAT;
    }
    if (why) { /* after the payload: garbage after the gzip data, a cut trailer, a bad CRC */
        sq_set_error("IDX %s file '%s': %s, after the %llu bytes the header promises; the file is "
                     "corrupt or truncated", what, path, why, (unsigned long long)want);
        free(buf);
        idx_fclose(&r);
        return SQ_EFORMAT;
    }
    idx_fclose(&r);
    *data = buf;
    return SQ_OK;
}

/* Reads images (and labels unless labels_path is NULL) into out. classes 0: max label + 1. */
static sq_status idx_dataset(const char *images_path, const char *labels_path, int classes,
                             sq_dataset *out)
{
    uint32_t d[3];
    sq_status st = idx_load(images_path, IDX_MAGIC_IMAGES, 3, d, &out->images);
    if (st) return st;
    out->n = (int)d[0];
    out->c = 1;
    out->h = (int)d[1];
    out->w = (int)d[2];
    out->classes = classes;
    snprintf(out->source, sizeof out->source, "%s%s%s", images_path, labels_path ? "," : "",
             labels_path ? labels_path : "");
    if (!labels_path) return SQ_OK;
    uint32_t nl;
    uint8_t *lab = NULL;
    st = idx_load(labels_path, IDX_MAGIC_LABELS, 1, &nl, &lab);
    if (st) return st;
    if ((int)nl != out->n) {
        sq_set_error("IDX label file '%s' holds %u labels but image file '%s' holds %d images; "
                     "they must match", labels_path, nl, images_path, out->n);
        free(lab);
        return SQ_EFORMAT;
    }
    out->labels = sq_xmalloc((size_t)nl * sizeof(int32_t));
    int maxl = 0;
    for (uint32_t i = 0; i < nl; i++) {
        if (classes > 0 && lab[i] >= classes) {
            sq_set_error("IDX label file '%s': label %u at byte %u is out of range 0..%d", labels_path,
                         lab[i], 8 + i, classes - 1);
            free(lab);
            return SQ_EFORMAT;
        }
        out->labels[i] = lab[i];
        if (lab[i] > maxl) maxl = lab[i];
    }
    free(lab);
    if (classes == 0) out->classes = maxl + 1;
    return SQ_OK;
}

static int file_exists(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* DIR/{train,t10k}-KIND-ubyte, raw or with .gz appended; 0 when neither exists. */
static int mnist_path(char *buf, size_t n, const char *dir, sq_split split, const char *kind)
{
    const char *pre = split == SQ_SPLIT_TRAIN ? "train" : "t10k";
    snprintf(buf, n, "%s/%s-%s-ubyte", dir, pre, kind);
    if (file_exists(buf)) return 1;
    snprintf(buf, n, "%s/%s-%s-ubyte.gz", dir, pre, kind);
    return file_exists(buf);
}

sq_status sq_idx_open(const char *kind, const char *arg, sq_split split, int with_labels,
                      sq_dataset *out)
{
    char ipath[1024], lpath[1024];
    if (strcmp(kind, "idx") == 0) {
        if (split != SQ_SPLIT_TRAIN) {
            sq_set_error("data spec 'idx:%s' has no test split; hold out part of it instead "
                         "(sq_dataset_holdout)", arg);
            return SQ_EARG;
        }
        const char *comma = strchr(arg, ',');
        size_t ilen = comma ? (size_t)(comma - arg) : strlen(arg);
        if (ilen == 0 || ilen >= sizeof ipath || (comma && (comma[1] == 0 ||
                                                             strlen(comma + 1) >= sizeof lpath))) {
            sq_set_error("bad data spec 'idx:%s'; use idx:IMAGES[,LABELS]", arg);
            return SQ_EARG;
        }
        memcpy(ipath, arg, ilen);
        ipath[ilen] = 0;
        if (comma) snprintf(lpath, sizeof lpath, "%s", comma + 1);
        sq_data_strlcpy(out->name, "idx", sizeof out->name);
        return idx_dataset(ipath, comma && with_labels ? lpath : NULL, 0, out);
    }
    int fashion = strcmp(kind, "fashion-mnist") == 0;
    const char *dir = arg && *arg ? arg : (fashion ? FASHION_DIR : NULL);
    if (!dir) {
        sq_set_error("data spec 'mnist' needs a directory: mnist:DIR");
        return SQ_EARG;
    }
    int have_i = mnist_path(ipath, sizeof ipath, dir, split, "images-idx3");
    int have_l = !with_labels || mnist_path(lpath, sizeof lpath, dir, split, "labels-idx1");
    if (!have_i || !have_l) {
        const char *pre = split == SQ_SPLIT_TRAIN ? "train" : "t10k";
        const char *k = !have_i ? "images-idx3" : "labels-idx1";
        if (fashion && !(arg && *arg))
            sq_set_error("Fashion-MNIST not found: %s/%s-%s-ubyte.gz is missing; install it with "
                         "`apt-get install dataset-fashion-mnist` (or `make deps`)", dir, pre, k);
        else
            sq_set_error("%s: neither %s/%s-%s-ubyte nor its .gz exists", kind, dir, pre, k);
        return SQ_EIO;
    }
    sq_data_strlcpy(out->name, fashion ? "fashion-mnist" : "mnist", sizeof out->name);
    return idx_dataset(ipath, with_labels ? lpath : NULL, 10, out);
}
