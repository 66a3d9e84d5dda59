/* fuzz_folder.c: libFuzzer harness of the folder:DIR dataset (sq_folder_open through
   sq_dataset_open): directory walking, class subfolders, train/test splits, and the PNG/JPEG
   files in them. The input builds a small tree under a fresh directory:
     byte 0            bit 0: open the test split; bit 1: read labels; bit 2: resize to 5x7;
                       bit 3: two threads
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
    sq_data_opts o = {.resize_h = flags & 4 ? 5 : 0, .resize_w = flags & 4 ? 7 : 0, .threads = flags & 8 ? 2 : 1};
    fz_clear_error();
    if (sq_dataset_open_ex(spec, flags & 1 ? SQ_SPLIT_TEST : SQ_SPLIT_TRAIN, (flags >> 1) & 1, &o, &ds) == SQ_OK) {
        if ((ds.c != 1 && ds.c != 3) || ds.n <= 0 || ds.h <= 0 || ds.w <= 0 || !ds.stream) abort();
        if ((flags & 4) && (ds.h != 5 || ds.w != 7)) abort();
        /* streamed: every sample decoded again (each was decoded once for the statistics) */
        uint8_t *px = malloc((size_t)ds.c * ds.h * ds.w);
        unsigned sum = 0;
        for (int i = 0; i < ds.n; i++) {
            fz_clear_error();
            if (sq_dataset_fetch(&ds, i, px) != SQ_OK) {
                fz_check_error_line();
                continue;
            }
            for (size_t k = 0; k < (size_t)ds.c * ds.h * ds.w; k++) sum += px[k];
        }
        free(px);
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
