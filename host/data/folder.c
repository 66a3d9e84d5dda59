/* folder.c: the folder:DIR dataset. Collects *.png / *.jpg / *.jpeg files (case-insensitive,
   hidden entries skipped) recursively. If DIR/train is a directory, DIR/train and DIR/test are the
   splits; otherwise DIR is the train split and there is no test split. If a split directory holds
   no image files directly but has subdirectories, each subdirectory is a class (classes = the
   sorted subdirectory names of the train split) and its images, at any depth, get that label;
   otherwise the data is unlabeled. Samples are ordered by (class, path) with strcmp, so the order
   never depends on the file system. All images must share one size and channel count. Symbolic
   links are followed, but a directory reached twice in one split (a link loop, or two links to one
   folder) is an error: the walk never repeats work, so a few links cannot make it exponential.
   Names read from the disk are quoted in errors through sq_printable. */
#include "data/data_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct entry {
    char *path;
    int label;
} entry;

typedef struct list {
    entry *v;
    int n, cap;
} list;

typedef struct names {
    char **v;
    int n, cap;
} names;

/* realloc that exits like sq_xmalloc on a genuine out-of-memory of the small path tables. */
static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (!q) {
        fprintf(stderr, "sqakd: out of host memory (%zu bytes)\n", n);
        exit(3);
    }
    return q;
}

static void list_push(list *l, char *path, int label)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = xrealloc(l->v, (size_t)l->cap * sizeof *l->v);
    }
    l->v[l->n].path = path;
    l->v[l->n].label = label;
    l->n++;
}

static void names_push(names *s, const char *name)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 16;
        s->v = xrealloc(s->v, (size_t)s->cap * sizeof *s->v);
    }
    size_t len = strlen(name) + 1;
    s->v[s->n] = sq_xmalloc(len);
    memcpy(s->v[s->n++], name, len);
}

static void names_free(names *s)
{
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
}

static void list_free(list *l)
{
    for (int i = 0; i < l->n; i++) free(l->v[i].path);
    free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->label != y->label) return x->label < y->label ? -1 : 1;
    return strcmp(x->path, y->path);
}

static int is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") ||
                   !strcasecmp(dot, ".jpeg"));
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = sq_xmalloc(la + lb + 2);
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

static int is_dir(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* Directories already walked in one split, by device and inode (open addressing, at most half
   full), with the path they were first reached by. */
typedef struct seen_ent {
    dev_t dev;
    ino_t ino;
    char *path;   /* NULL: free slot */
} seen_ent;

typedef struct seen_set {
    seen_ent *v;
    size_t cap, n;
} seen_set;

static size_t seen_slot(const seen_set *s, dev_t dev, ino_t ino)
{
    uint64_t h = ((uint64_t)dev * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)ino * 0xBF58476D1CE4E5B9ull);
    size_t i = (size_t)(h ^ (h >> 29)) & (s->cap - 1);
    while (s->v[i].path && !(s->v[i].dev == dev && s->v[i].ino == ino)) i = (i + 1) & (s->cap - 1);
    return i;
}

/* Records dir; returns NULL when it is new, else the path it was first reached by. */
static const char *seen_add(seen_set *s, dev_t dev, ino_t ino, const char *path)
{
    if (2 * (s->n + 1) > s->cap) {
        seen_set g = {sq_xcalloc(s->cap ? 2 * s->cap : 64, sizeof *g.v), s->cap ? 2 * s->cap : 64, s->n};
        for (size_t i = 0; i < s->cap; i++)
            if (s->v[i].path) g.v[seen_slot(&g, s->v[i].dev, s->v[i].ino)] = s->v[i];
        free(s->v);
        *s = g;
    }
    seen_ent *e = &s->v[seen_slot(s, dev, ino)];
    if (e->path) return e->path;
    size_t len = strlen(path) + 1;
    *e = (seen_ent){dev, ino, sq_xmalloc(len)};
    memcpy(e->path, path, len);
    s->n++;
    return NULL;
}

static void seen_free(seen_set *s)
{
    for (size_t i = 0; i < s->cap; i++) free(s->v[i].path);
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Marks dir as walked; an error naming both paths when it was walked before. */
static sq_status visit(const char *dir, seen_set *seen)
{
    struct stat sb;
    char p1[512], p2[512];
    if (stat(dir, &sb) != 0) {
        sq_set_error("folder: cannot open directory '%s': %s", sq_printable(dir, p1, sizeof p1),
                     strerror(errno));
        return SQ_EIO;
    }
    const char *first = seen_add(seen, sb.st_dev, sb.st_ino, dir);
    if (first) {
        sq_set_error("folder: '%s' is the directory '%s' again (symbolic links); a directory may be "
                     "reached only once", sq_printable(dir, p1, sizeof p1),
                     sq_printable(first, p2, sizeof p2));
        return SQ_EFORMAT;
    }
    return SQ_OK;
}

/* Subdirectory names (sorted) and count of image files directly in dir. */
static sq_status scan_top(const char *dir, names *subdirs, int *nimages)
{
    char pd[512];
    DIR *d = opendir(dir);
    if (!d) {
        sq_set_error("folder: cannot open directory '%s': %s", sq_printable(dir, pd, sizeof pd),
                     strerror(errno));
        return SQ_EIO;
    }
    struct dirent *e;
    *nimages = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = join(dir, e->d_name);
        if (is_dir(p)) names_push(subdirs, e->d_name);
        else if (is_image_name(e->d_name)) (*nimages)++;
        free(p);
    }
    closedir(d);
    if (subdirs->n > 1) qsort(subdirs->v, (size_t)subdirs->n, sizeof *subdirs->v, cmp_str);
    return SQ_OK;
}

static sq_status walk(const char *dir, int label, int depth, list *out, seen_set *seen)
{
    char pd[512];
    if (depth > 64) {
        sq_set_error("folder: directories nested deeper than 64 under '%s'",
                     sq_printable(dir, pd, sizeof pd));
        return SQ_EFORMAT;
    }
    sq_status st = visit(dir, seen);
    if (st) return st;
    DIR *d = opendir(dir);
    if (!d) {
        sq_set_error("folder: cannot open directory '%s': %s", sq_printable(dir, pd, sizeof pd),
                     strerror(errno));
        return SQ_EIO;
    }
    struct dirent *e;
    while (st == SQ_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char *p = join(dir, e->d_name);
        if (is_dir(p)) {
            st = walk(p, label, depth + 1, out, seen);
            free(p);
        } else if (is_image_name(e->d_name)) {
            list_push(out, p, label);
        } else {
            free(p);
        }
    }
    closedir(d);
    return st;
}

/* Fills files (and classes) for one split directory. classes: names from the train split. */
static sq_status collect(const char *splitdir, const names *classes, int labeled, list *files)
{
    seen_set seen = {0};
    sq_status st;
    if (!labeled) {
        st = walk(splitdir, -1, 0, files, &seen);
        seen_free(&seen);
        return st;
    }
    names sub = {0};
    int nimg = 0;
    char p1[512], p2[512];
    st = visit(splitdir, &seen);
    if (!st) st = scan_top(splitdir, &sub, &nimg);
    for (int i = 0; st == SQ_OK && i < sub.n; i++) {
        int lab = -1;
        for (int k = 0; k < classes->n; k++)
            if (strcmp(classes->v[k], sub.v[i]) == 0) lab = k;
        if (lab < 0) {
            sq_set_error("folder: class folder '%s/%s' has no counterpart in the train split; "
                         "test classes must be a subset of train classes",
                         sq_printable(splitdir, p1, sizeof p1), sq_printable(sub.v[i], p2, sizeof p2));
            st = SQ_EFORMAT;
            break;
        }
        char *p = join(splitdir, sub.v[i]);
        st = walk(p, lab, 1, files, &seen);
        free(p);
    }
    names_free(&sub);
    seen_free(&seen);
    return st;
}

/* Decodes the images into out (C, H, W each). The pixel buffer grows (doubling) as images are
   decoded, from at most 64 MiB or one image: memory follows what the files really hold, never the
   file count times the size the first header declares. */
static sq_status load_images(const list *files, sq_dataset *out)
{
    uint8_t *pix = NULL;
    int h0 = 0, w0 = 0, c0 = 0;
    size_t sample = 0, cap = 0;   /* bytes per image; images the buffer holds */
    char p1[512], p2[512];
    for (int i = 0; i < files->n; i++) {
        int h, w, c;
        sq_status st = sq_image_decode(files->v[i].path, &pix, &h, &w, &c);
        if (st) return st;
        if (i == 0) {
            h0 = h, w0 = w, c0 = c;
            sample = (size_t)c * h * w;
        } else if (h != h0 || w != w0 || c != c0) {
            sq_set_error("folder: image '%s' is %dx%dx%d (HxWxC) but the first image '%s' is "
                         "%dx%dx%d; all images must share one size (resize them first)",
                         sq_printable(files->v[i].path, p1, sizeof p1), h, w, c,
                         sq_printable(files->v[0].path, p2, sizeof p2), h0, w0, c0);
            free(pix);
            return SQ_EFORMAT;
        }
        if ((size_t)i == cap) {
            size_t ncap = cap ? 2 * cap : ((size_t)64 << 20) / sample;
            if (ncap < 1) ncap = 1;
            if (ncap > (size_t)files->n) ncap = (size_t)files->n;
            uint8_t *grown = realloc(out->images, ncap * sample);
            if (!grown) {
                free(pix);
                sq_set_error("folder: out of memory for %zu images of %dx%dx%d", ncap, h, w, c);
                return SQ_ENOMEM;
            }
            out->images = grown;
            cap = ncap;
        }
        uint8_t *dst = out->images + (size_t)i * sample;
        for (int ch = 0; ch < c; ch++) /* (H, W, C) -> (C, H, W) */
            for (int p = 0; p < h * w; p++) dst[(size_t)ch * h * w + p] = pix[(size_t)p * c + ch];
        free(pix);
    }
    out->n = files->n, out->c = c0, out->h = h0, out->w = w0;
    return SQ_OK;
}

sq_status sq_folder_open(const char *dir, sq_split split, int with_labels, sq_dataset *out)
{
    if (!dir || !*dir) {
        sq_set_error("data spec 'folder:' needs a directory: folder:DIR");
        return SQ_EARG;
    }
    char p1[512], p2[512];
    if (!is_dir(dir)) {
        sq_set_error("folder: '%s' is not a directory", sq_printable(dir, p1, sizeof p1));
        return SQ_EIO;
    }
    char *train = join(dir, "train"), *test = join(dir, "test");
    int has_split = is_dir(train);
    const char *traindir = has_split ? train : dir;
    const char *splitdir = split == SQ_SPLIT_TRAIN ? traindir : test;
    names classes = {0};
    list files = {0};
    int nimg = 0;
    sq_status st = SQ_OK;
    if (split == SQ_SPLIT_TEST && (!has_split || !is_dir(test))) {
        sq_printable(dir, p1, sizeof p1);
        sq_set_error("folder '%s' has no test split (no %s/train and %s/test subfolders); hold "
                     "out part of the train split instead (sq_dataset_holdout)", p1, p1, p1);
        st = SQ_EARG;
    }
    if (!st) st = scan_top(traindir, &classes, &nimg);
    int labeled = !st && nimg == 0 && classes.n > 0;
    if (!st && labeled && classes.n > SQ_MAX_CLASSES) {
        sq_set_error("folder '%s' has %d class subfolders, more than %d",
                     sq_printable(traindir, p1, sizeof p1), classes.n, SQ_MAX_CLASSES);
        st = SQ_EFORMAT;
    }
    if (!st) st = collect(splitdir, &classes, labeled, &files);
    if (!st && files.n == 0) {
        sq_set_error("folder: no .png/.jpg/.jpeg images under '%s'",
                     sq_printable(splitdir, p2, sizeof p2));
        st = SQ_EFORMAT;
    }
    if (!st) {
        qsort(files.v, (size_t)files.n, sizeof *files.v, cmp_entry);
        st = load_images(&files, out);
    }
    if (!st) {
        sq_data_strlcpy(out->name, "folder", sizeof out->name);
        sq_data_strlcpy(out->source, splitdir, sizeof out->source);
        out->classes = labeled ? classes.n : 0;
        if (labeled && with_labels) {
            out->labels = sq_xmalloc((size_t)files.n * sizeof(int32_t));
            for (int i = 0; i < files.n; i++) out->labels[i] = files.v[i].label;
        }
    }
    list_free(&files);
    names_free(&classes);
    free(train);
    free(test);
    return st;
}
