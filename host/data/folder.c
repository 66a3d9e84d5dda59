/* folder.c: the folder:DIR dataset. Collects *.png / *.jpg / *.jpeg files (case-insensitive,
   hidden entries skipped) recursively. Layouts, tried in this order:
   - Tiny-ImageNet: DIR/wnids.txt and DIR/val/val_annotations.txt are files and DIR/train is a
     directory. Class k is line k of wnids.txt (its order, not sorted). The train split is
     DIR/train/<wnid>/images/ for every wnid (a train/ subfolder wnids.txt does not list, or a
     listed wnid without one, is an error); the test split is DIR/val/images/, each file labelled
     by its line "FILE<TAB>WNID<TAB>x0<TAB>y0<TAB>x1<TAB>y1" of val_annotations.txt (the box is
     not used; a file without a line, a line without a file, a repeated file or an unknown wnid is
     an error naming the line). DIR/test/ (unlabeled) is not read.
   - If DIR/train is a directory, DIR/train and DIR/test are the splits; otherwise DIR is the
     train split and there is no test split. If a split directory holds no image files directly
     but has subdirectories, each subdirectory is a class (classes = the sorted subdirectory names
     of the train split) and its images, at any depth, get that label; otherwise the data is
     unlabeled.
   Samples are ordered by (class, path) with strcmp, so the order never depends on the file
   system. The dataset is streamed: at open only each file's header is read (size and colour, on
   opts->threads threads), to fix the dataset's shape: C = 1 when every image is greyscale, else 3
   (greyscale images are then replicated); without a resize every image must have the first one's
   size (the error names the first that differs and says to resize). Pixels are decoded when a
   batch needs them (sq_image_list_fetch). Symbolic links are followed, but a directory reached
   twice in one split (a link loop, or two links to one folder) is an error: the walk never repeats
   work, so a few links cannot make it exponential. Names read from the disk are quoted in errors
   through sq_printable. */
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

static int is_file(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
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

/* ---------------------------------------------------------------- Tiny-ImageNet */

#define TIN_MAX_TEXT ((long)64 << 20) /* wnids.txt, val_annotations.txt: 64 MiB at most */

/* The whole text file (NUL-terminated, malloc'ed) into *text. */
static sq_status read_text(const char *path, char **text)
{
    char pp[512];
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        sq_set_error("folder: cannot open '%s': %s", sq_printable(path, pp, sizeof pp), strerror(errno));
        return SQ_EIO;
    }
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len < 0 || len > TIN_MAX_TEXT || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        sq_set_error("folder: '%s' is unreadable or larger than %ld bytes", sq_printable(path, pp, sizeof pp),
                     TIN_MAX_TEXT);
        return SQ_EFORMAT;
    }
    char *t = sq_xmalloc((size_t)len + 1);
    size_t got = fread(t, 1, (size_t)len, f);
    fclose(f);
    if (got != (size_t)len) {
        free(t);
        sq_set_error("folder: cannot read '%s'", sq_printable(path, pp, sizeof pp));
        return SQ_EIO;
    }
    t[len] = 0;
    if (memchr(t, 0, (size_t)len)) {
        free(t);
        sq_set_error("folder: '%s' holds a NUL byte: not a text file", sq_printable(path, pp, sizeof pp));
        return SQ_EFORMAT;
    }
    *text = t;
    return SQ_OK;
}

/* Splits the next line off *p (modifying the text): returns it without its line end, or NULL at
   the end of the text. */
static char *next_line(char **p)
{
    if (!**p) return NULL;
    char *line = *p, *nl = strchr(line, '\n');
    if (nl) {
        *nl = 0;
        *p = nl + 1;
    } else {
        *p = line + strlen(line);
    }
    size_t n = strlen(line);
    if (n && line[n - 1] == '\r') line[n - 1] = 0;
    return line;
}

/* the next field of a line (separated by tabs or spaces), NUL-terminated in place; NULL when none */
static char *next_field(char **p)
{
    char *s = *p;
    while (*s == ' ' || *s == '\t') s++;
    if (!*s) return NULL;
    char *e = s;
    while (*e && *e != ' ' && *e != '\t') e++;
    if (*e) *e++ = 0;
    *p = e;
    return s;
}

static int index_of(const names *s, const char *name)
{
    for (int k = 0; k < s->n; k++)
        if (!strcmp(s->v[k], name)) return k;
    return -1;
}

/* wnids.txt: one class name per line, in class order; blank lines skipped */
static sq_status read_wnids(const char *path, names *wnids)
{
    char *text, pp[512], pn[256];
    sq_status st = read_text(path, &text);
    if (st) return st;
    char *p = text, *line;
    int lineno = 0;
    while (st == SQ_OK && (line = next_line(&p))) {
        lineno++;
        char *q = line, *name = next_field(&q);
        if (!name) continue;
        if (next_field(&q) || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
            sq_set_error("folder: %s line %d: '%s' is not a class name (one wnid per line, such as n01443537)",
                         sq_printable(path, pp, sizeof pp), lineno, sq_printable(line, pn, sizeof pn));
            st = SQ_EFORMAT;
        } else if (index_of(wnids, name) >= 0) {
            sq_set_error("folder: %s line %d: class '%s' is listed twice", sq_printable(path, pp, sizeof pp), lineno,
                         sq_printable(name, pn, sizeof pn));
            st = SQ_EFORMAT;
        } else if (wnids->n == SQ_MAX_CLASSES) {
            sq_set_error("folder: %s lists more than %d classes", sq_printable(path, pp, sizeof pp), SQ_MAX_CLASSES);
            st = SQ_EFORMAT;
        } else {
            names_push(wnids, name);
        }
    }
    free(text);
    if (!st && wnids->n == 0) {
        sq_set_error("folder: %s lists no class", sq_printable(path, pp, sizeof pp));
        st = SQ_EFORMAT;
    }
    return st;
}

/* the train split: train/<wnid>/images/ of every wnid, labelled by its line of wnids.txt */
static sq_status tin_train(const char *dir, const names *wnids, list *files)
{
    char p1[512], p2[256];
    char *train = join(dir, "train");
    names sub = {0};
    int nimg = 0;
    sq_status st = scan_top(train, &sub, &nimg);
    for (int i = 0; st == SQ_OK && i < sub.n; i++)
        if (index_of(wnids, sub.v[i]) < 0) {
            sq_set_error("folder: Tiny-ImageNet layout: '%s/%s' is not a class of wnids.txt",
                         sq_printable(train, p1, sizeof p1), sq_printable(sub.v[i], p2, sizeof p2));
            st = SQ_EFORMAT;
        }
    seen_set seen = {0};
    for (int k = 0; st == SQ_OK && k < wnids->n; k++) {
        char *cls = join(train, wnids->v[k]), *img = join(cls, "images");
        if (!is_dir(img)) {
            sq_set_error("folder: Tiny-ImageNet layout: wnids.txt line %d lists '%s' but '%s' is not a directory",
                         k + 1, sq_printable(wnids->v[k], p2, sizeof p2), sq_printable(img, p1, sizeof p1));
            st = SQ_EFORMAT;
        } else {
            st = walk(img, k, 1, files, &seen);
        }
        free(cls);
        free(img);
    }
    seen_free(&seen);
    names_free(&sub);
    free(train);
    return st;
}

typedef struct annot {
    const char *file; /* into the annotations' text */
    int label, line;
    int used;
} annot;

static int cmp_annot(const void *a, const void *b)
{
    return strcmp(((const annot *)a)->file, ((const annot *)b)->file);
}

/* the test split: val/images/, labelled by val/val_annotations.txt */
static sq_status tin_val(const char *dir, const names *wnids, list *files)
{
    char pa[512], p1[512], p2[256];
    char *val = join(dir, "val"), *ann = join(val, "val_annotations.txt"), *imgdir = join(val, "images");
    char *text = NULL;
    annot *a = NULL;
    int na = 0, cap = 0;
    sq_status st = read_text(ann, &text);
    sq_printable(ann, pa, sizeof pa);
    char *p = text, *line;
    int lineno = 0;
    while (st == SQ_OK && (line = next_line(&p))) {
        lineno++;
        char *q = line, *file = next_field(&q);
        if (!file) continue;
        char *wnid = next_field(&q);
        int lab = wnid ? index_of(wnids, wnid) : -1;
        if (!wnid || strchr(file, '/')) {
            sq_set_error("folder: %s line %d: expected 'FILE WNID x0 y0 x1 y1' with a plain file name", pa, lineno);
            st = SQ_EFORMAT;
        } else if (lab < 0) {
            sq_set_error("folder: %s line %d: class '%s' is not in wnids.txt", pa, lineno,
                         sq_printable(wnid, p2, sizeof p2));
            st = SQ_EFORMAT;
        } else {
            if (na == cap) {
                cap = cap ? 2 * cap : 1024;
                a = xrealloc(a, (size_t)cap * sizeof *a);
            }
            a[na++] = (annot){file, lab, lineno, 0};
        }
    }
    if (na > 1) qsort(a, (size_t)na, sizeof *a, cmp_annot);
    for (int i = 1; st == SQ_OK && i < na; i++)
        if (!strcmp(a[i].file, a[i - 1].file)) {
            int l1 = a[i].line < a[i - 1].line ? a[i].line : a[i - 1].line;
            int l2 = a[i].line < a[i - 1].line ? a[i - 1].line : a[i].line;
            sq_set_error("folder: %s lines %d and %d both label '%s'", pa, l1, l2,
                         sq_printable(a[i].file, p2, sizeof p2));
            st = SQ_EFORMAT;
        }
    DIR *d = NULL;
    if (st == SQ_OK && !(d = opendir(imgdir))) {
        sq_set_error("folder: Tiny-ImageNet layout: cannot open directory '%s': %s",
                     sq_printable(imgdir, p1, sizeof p1), strerror(errno));
        st = SQ_EIO;
    }
    struct dirent *e;
    while (st == SQ_OK && (e = readdir(d))) {
        if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
        annot key = {.file = e->d_name};
        annot *hit = na ? bsearch(&key, a, (size_t)na, sizeof *a, cmp_annot) : NULL;
        char *path = join(imgdir, e->d_name);
        if (!hit) {
            sq_set_error("folder: '%s' has no line in %s", sq_printable(path, p1, sizeof p1), pa);
            st = SQ_EFORMAT;
            free(path);
            break;
        }
        hit->used = 1;
        list_push(files, path, hit->label);
    }
    if (d) closedir(d);
    for (int i = 0; st == SQ_OK && i < na; i++)
        if (!a[i].used) {
            sq_set_error("folder: %s line %d names '%s', which is not an image in %s", pa, a[i].line,
                         sq_printable(a[i].file, p2, sizeof p2), sq_printable(imgdir, p1, sizeof p1));
            st = SQ_EFORMAT;
        }
    free(a);
    free(text);
    free(val);
    free(ann);
    free(imgdir);
    return st;
}

/* ---------------------------------------------------------------- headers and the stream */

typedef struct probe_ctx {
    const list *files;
    int *h, *w, *c;
} probe_ctx;

static sq_status probe_one(void *ctx, int i, int worker)
{
    probe_ctx *p = ctx;
    (void)worker;
    return sq_image_probe(p->files->v[i].path, &p->h[i], &p->w[i], &p->c[i]);
}

/* Reads every file's header and makes out a streamed dataset of them (the paths move into the
   stream). */
static sq_status make_stream(list *files, const sq_data_opts *o, sq_dataset *out)
{
    const int n = files->n;
    probe_ctx p = {files, sq_xmalloc((size_t)n * sizeof(int)), sq_xmalloc((size_t)n * sizeof(int)),
                   sq_xmalloc((size_t)n * sizeof(int))};
    sq_status st = sq_data_parallel(n, o->threads, probe_one, &p);
    int c = o->channels == 3 ? 3 : 1, resize = o->resize_h > 0 && o->resize_w > 0;
    char p1[512], p2[512];
    for (int i = 0; st == SQ_OK && i < n; i++) {
        if (p.c[i] == 3 && o->channels == 1) {
            sq_set_error("folder: image '%s' is in colour, but the other split's images are all greyscale; "
                         "convert it, or add colour images to the other split",
                         sq_printable(files->v[i].path, p1, sizeof p1));
            st = SQ_EFORMAT;
            break;
        }
        if (p.c[i] == 3) c = 3;
        if (!resize && (p.h[i] != p.h[0] || p.w[i] != p.w[0])) {
            sq_set_error("folder: image '%s' is %dx%d (HxW) but the first image '%s' is %dx%d; images of "
                         "different sizes need a resize to one size (--resize HxW: the shorter side to "
                         "min(H, W), then a centre crop, as torchvision's Resize + CenterCrop)",
                         sq_printable(files->v[i].path, p1, sizeof p1), p.h[i], p.w[i],
                         sq_printable(files->v[0].path, p2, sizeof p2), p.h[0], p.w[0]);
            st = SQ_EFORMAT;
        }
    }
    if (st == SQ_OK) {
        sq_image_list *l = sq_xcalloc(1, sizeof *l);
        l->refs = 1;
        l->n = n;
        l->paths = sq_xmalloc((size_t)n * sizeof(char *));
        for (int i = 0; i < n; i++) {
            l->paths[i] = files->v[i].path;
            files->v[i].path = NULL;
        }
        l->c = c;
        l->h = resize ? o->resize_h : p.h[0];
        l->w = resize ? o->resize_w : p.w[0];
        l->resize = resize;
        out->stream = l;
        out->n = n;
        out->c = l->c;
        out->h = l->h;
        out->w = l->w;
        out->threads = o->threads > 0 ? o->threads : 1;
    }
    free(p.h);
    free(p.w);
    free(p.c);
    return st;
}

sq_status sq_folder_open(const char *dir, sq_split split, int with_labels, const sq_data_opts *opts,
                         sq_dataset *out)
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
    char *wnids_path = join(dir, "wnids.txt"), *ann = join(dir, "val/val_annotations.txt");
    int has_split = is_dir(train);
    int tiny = has_split && is_file(wnids_path) && is_file(ann);
    const char *traindir = has_split ? train : dir;
    const char *splitdir = split == SQ_SPLIT_TRAIN ? traindir : test;
    names classes = {0};
    list files = {0};
    int nimg = 0, labeled;
    sq_status st = SQ_OK;
    if (tiny) {
        char *val = join(dir, "val");
        st = read_wnids(wnids_path, &classes);
        if (!st) st = split == SQ_SPLIT_TRAIN ? tin_train(dir, &classes, &files) : tin_val(dir, &classes, &files);
        sq_data_strlcpy(p2, split == SQ_SPLIT_TRAIN ? train : val, sizeof p2);
        splitdir = p2;
        labeled = 1;
        free(val);
    } else {
        if (split == SQ_SPLIT_TEST && (!has_split || !is_dir(test))) {
            sq_printable(dir, p1, sizeof p1);
            sq_set_error("folder '%s' has no test split (no %s/train and %s/test subfolders); hold "
                         "out part of the train split instead (sq_dataset_holdout)", p1, p1, p1);
            st = SQ_EARG;
        }
        if (!st) st = scan_top(traindir, &classes, &nimg);
        labeled = !st && nimg == 0 && classes.n > 0;
        if (!st && labeled && classes.n > SQ_MAX_CLASSES) {
            sq_set_error("folder '%s' has %d class subfolders, more than %d",
                         sq_printable(traindir, p1, sizeof p1), classes.n, SQ_MAX_CLASSES);
            st = SQ_EFORMAT;
        }
        if (!st) st = collect(splitdir, &classes, labeled, &files);
    }
    if (!st && files.n == 0) {
        sq_set_error("folder: no .png/.jpg/.jpeg images under '%s'",
                     sq_printable(splitdir, p1, sizeof p1));
        st = SQ_EFORMAT;
    }
    if (!st) {
        qsort(files.v, (size_t)files.n, sizeof *files.v, cmp_entry);
        if (labeled && with_labels) {
            out->labels = sq_xmalloc((size_t)files.n * sizeof(int32_t));
            for (int i = 0; i < files.n; i++) out->labels[i] = files.v[i].label;
        }
        st = make_stream(&files, opts, out);
    }
    if (!st) {
        sq_data_strlcpy(out->name, tiny ? "tiny-imagenet" : "folder", sizeof out->name);
        sq_data_strlcpy(out->source, splitdir, sizeof out->source);
        out->classes = labeled ? classes.n : 0;
    }
    list_free(&files);
    names_free(&classes);
    free(train);
    free(test);
    free(wnids_path);
    free(ann);
    return st;
}
