/* fuzz_folder.c: libFuzzer harness of the folder:DIR dataset (sq_folder_open through
   sq_dataset_open): directory walking, class subfolders, train/test splits, and the PNG/JPEG
   files in them. The input builds a small tree under a fresh directory:
     byte 0            bit 0: open the test split; bit 1: read labels
     then records      u8 kind (0, 3: file; 1: directory; 2: symbolic link), u8 name length, name
                       (a relative path, parents created as needed; names holding ".." or
                       starting with '/' are skipped), then for a file u16 LE length and its
                       bytes, for a link u8 length and its target (relative, without "..", so it
                       stays inside the tree)
   at most 64 records. */
#include "fuzz_util.h"
#include "sqakd/data.h"

static int safe_rel(const char *s) { return s[0] && s[0] != '/' && !strstr(s, ".."); }

/* creates the parent directories of root/rel */
static int parents(const char *root, const char *rel)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    return fz_mkdirs(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in in = {data, size};
    int flags = fz_u8(&in);
    char run[600], root[700], path[4096];
    fz_path(run, sizeof run, "folder");
    snprintf(root, sizeof root, "%s/d", run);
    if (fz_mkdirs(root)) abort();
    for (int r = 0; r < 64 && in.n; r++) {
        int kind = fz_u8(&in) & 3;
        size_t k = (size_t)fz_u8(&in);
        const uint8_t *nm = fz_take(&in, &k);
        char name[256];
        for (size_t i = 0; i < k; i++) name[i] = nm[i] ? (char)nm[i] : '_';
        name[k] = 0;
        const uint8_t *body = NULL;
        size_t blen = 0;
        if (kind == 0 || kind == 3) {
            blen = fz_u16(&in);
            body = fz_take(&in, &blen);
        } else if (kind == 2) {
            blen = (size_t)fz_u8(&in);
            body = fz_take(&in, &blen);
        }
        if (!safe_rel(name) || parents(root, name)) continue;
        snprintf(path, sizeof path, "%s/%s", root, name);
        if (kind == 1) {
            fz_mkdirs(path);
        } else if (kind == 2) {
            char target[256];
            for (size_t i = 0; i < blen; i++) target[i] = body[i] ? (char)body[i] : '_';
            target[blen] = 0;
            if (safe_rel(target)) (void)symlink(target, path);
        } else {
            FILE *f = fopen(path, "wb");
            if (!f) continue;
            if (blen) (void)fwrite(body, 1, blen, f);
            fclose(f);
        }
    }
    char spec[800];
    snprintf(spec, sizeof spec, "folder:%s", root);
    sq_dataset ds;
    fz_clear_error();
    if (sq_dataset_open(spec, flags & 1 ? SQ_SPLIT_TEST : SQ_SPLIT_TRAIN, (flags >> 1) & 1, &ds) == SQ_OK) {
        if ((ds.c != 1 && ds.c != 3) || ds.n <= 0 || ds.h <= 0 || ds.w <= 0) abort();
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)ds.n * ds.c * ds.h * ds.w; i++) sum += ds.images[i];
        for (int i = 0; ds.labels && i < ds.n; i++)
            if (ds.labels[i] < 0 || ds.labels[i] >= ds.classes) abort();
        (void)sum;
        sq_dataset_free(&ds);
    } else {
        fz_check_error_line();
    }
    fz_rmtree(run);
    return 0;
}
