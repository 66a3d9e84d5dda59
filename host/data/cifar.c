/* cifar.c: CIFAR-10 / CIFAR-100 binary readers. CIFAR-10 records are <label><3072 pixels>
   (data_batch_1..5.bin = train, test_batch.bin = test); CIFAR-100 records are <coarse><fine><3072
   pixels> (train.bin / test.bin) and the fine label (100 classes) is used. Pixels are already
   planar R, G, B (32x32 each), i.e. (C, H, W). */
#include "data/data_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CIFAR_PIXELS 3072
#define CIFAR_CHUNK 1024 /* records per fread */

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Reads one file's records into images/labels starting at record `base`. */
static sq_status cifar_read_file(const char *path, int nrec, int lab_bytes, int classes,
                                 int with_labels, uint8_t *images, int32_t *labels)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sq_set_error("cannot open CIFAR file '%s': %s", path, strerror(errno));
        return SQ_EIO;
    }
    size_t rec = (size_t)lab_bytes + CIFAR_PIXELS;
    uint8_t *buf = sq_xmalloc(rec * CIFAR_CHUNK);
    for (int r0 = 0; r0 < nrec; r0 += CIFAR_CHUNK) {
        int k = nrec - r0 < CIFAR_CHUNK ? nrec - r0 : CIFAR_CHUNK;
        size_t got = fread(buf, 1, rec * (size_t)k, f);
        if (got < rec * (size_t)k) {
            sq_set_error("CIFAR file '%s' is truncated: data ends at byte %llu, expected %llu "
                         "(%d records of %zu bytes)", path,
                         (unsigned long long)(rec * (size_t)r0 + got),
                         (unsigned long long)(rec * (size_t)nrec), nrec, rec);
            free(buf);
            fclose(f);
            return SQ_EFORMAT;
        }
        for (int i = 0; i < k; i++) {
            const uint8_t *p = buf + rec * (size_t)i;
            if (with_labels) {
                int lab = p[lab_bytes - 1];
                if (lab >= classes) {
                    sq_set_error("CIFAR file '%s': label %d at byte %llu is out of range 0..%d; is "
                                 "this the right CIFAR variant?", path, lab,
                                 (unsigned long long)(rec * (size_t)(r0 + i) + lab_bytes - 1),
                                 classes - 1);
                    free(buf);
                    fclose(f);
                    return SQ_EFORMAT;
                }
                labels[r0 + i] = lab;
            }
            memcpy(images + (size_t)(r0 + i) * CIFAR_PIXELS, p + lab_bytes, CIFAR_PIXELS);
        }
    }
    free(buf);
    fclose(f);
    return SQ_OK;
}

sq_status sq_cifar_open(int classes, const char *dir, sq_split split, int with_labels,
                        sq_dataset *out)
{
    const int c100 = classes == 100;
    const char *tag = c100 ? "cifar100" : "cifar10";
    const char *names10[] = {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin",
                             "data_batch_4.bin", "data_batch_5.bin"};
    const char *names_test10[] = {"test_batch.bin"};
    const char *names_train100[] = {"train.bin"};
    const char *names_test100[] = {"test.bin"};
    const char **names;
    int nfiles;
    if (c100) {
        names = split == SQ_SPLIT_TRAIN ? names_train100 : names_test100;
        nfiles = 1;
    } else {
        names = split == SQ_SPLIT_TRAIN ? names10 : names_test10;
        nfiles = split == SQ_SPLIT_TRAIN ? 5 : 1;
    }
    char base[768], path[1024];
    if (!dir || !*dir) dir = c100 ? "data/cache/cifar100" : "data/cache/cifar10";
    snprintf(base, sizeof base, "%s", dir);
    snprintf(path, sizeof path, "%s/%s", base, names[0]);
    if (!is_file(path)) { /* also accept the directory that holds the extracted official tarball */
        char alt[768];
        snprintf(alt, sizeof alt, "%s/%s", dir, c100 ? "cifar-100-binary" : "cifar-10-batches-bin");
        snprintf(path, sizeof path, "%s/%s", alt, names[0]);
        if (is_file(path)) snprintf(base, sizeof base, "%s", alt);
    }
    const int lab_bytes = c100 ? 2 : 1;
    const size_t rec = (size_t)lab_bytes + CIFAR_PIXELS;
    int counts[5];
    long long total = 0;
    for (int i = 0; i < nfiles; i++) {
        snprintf(path, sizeof path, "%s/%s", base, names[i]);
        struct stat sb;
        if (stat(path, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            sq_set_error("%s: file '%s' is missing (the %s split needs %s); see data/README.md "
                         "(CIFAR-10: data/link_cifar10.sh)", tag, path,
                         split == SQ_SPLIT_TRAIN ? "train" : "test",
                         c100 ? names[0] : (split == SQ_SPLIT_TRAIN ? "data_batch_1..5.bin"
                                                                    : "test_batch.bin"));
            return SQ_EIO;
        }
        unsigned long long sz = (unsigned long long)sb.st_size;
        if (sz == 0 || sz % rec != 0) {
            sq_set_error("%s file '%s' has %llu bytes, not a whole number of %zu-byte records: "
                         "the record starting at byte %llu is incomplete; re-download it", tag,
                         path, sz, rec, sz - sz % rec);
            return SQ_EFORMAT;
        }
        if (sz / rec > (unsigned long long)(1 << 30)) {
            sq_set_error("%s file '%s' is implausibly large (%llu bytes)", tag, path, sz);
            return SQ_EFORMAT;
        }
        counts[i] = (int)(sz / rec);
        total += counts[i];
    }
    if (total > (1 << 30)) {
        sq_set_error("%s: %lld records are too many", tag, total);
        return SQ_EFORMAT;
    }
    out->n = (int)total;
    out->c = 3;
    out->h = 32;
    out->w = 32;
    out->classes = classes;
    sq_data_strlcpy(out->name, tag, sizeof out->name);
    out->images = malloc((size_t)total * CIFAR_PIXELS);
    if (!out->images) {
        sq_set_error("out of memory loading %s (%lld images)", tag, total);
        return SQ_ENOMEM;
    }
    if (with_labels) out->labels = sq_xmalloc((size_t)total * sizeof(int32_t));
    int at = 0;
    size_t slen = 0;
    for (int i = 0; i < nfiles; i++) {
        snprintf(path, sizeof path, "%s/%s", base, names[i]);
        sq_status st = cifar_read_file(path, counts[i], lab_bytes, classes, with_labels,
                                       out->images + (size_t)at * CIFAR_PIXELS,
                                       out->labels ? out->labels + at : NULL);
        if (st) return st;
        at += counts[i];
        if (slen < sizeof out->source - 1)
            slen += (size_t)snprintf(out->source + slen, sizeof out->source - slen, "%s%s",
                                     i ? "," : "", path);
    }
    return SQ_OK;
}
