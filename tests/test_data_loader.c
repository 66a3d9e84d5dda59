/* test_data_loader.c: Criterion suite "data" (declared with its fixture in
   test_data_idx_cifar.c): the deterministic hold-out split and the background loader (each index
   once per epoch, determinism, drop_last, skip and restart, exact flips, crop values independent
   of the batch size, exact normalization) on synthetic in-memory datasets. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqakd/data.h"

/* ---------------------------------------------------------------- holdout */

static sq_dataset make_ds(int n, int c, int h, int w, int labeled)
{
    sq_dataset ds;
    memset(&ds, 0, sizeof ds);
    ds.n = n, ds.c = c, ds.h = h, ds.w = w;
    ds.images = malloc((size_t)n * c * h * w);
    for (size_t i = 0; i < (size_t)n * c * h * w; i++) ds.images[i] = (uint8_t)(i / ((size_t)c * h * w));
    if (labeled) {
        ds.labels = malloc((size_t)n * sizeof(int32_t));
        for (int i = 0; i < n; i++) ds.labels[i] = i;
    }
    for (int k = 0; k < 4; k++) ds.mean[k] = 0.0f, ds.std[k] = 1.0f;
    snprintf(ds.name, sizeof ds.name, "synthetic");
    return ds;
}

Test(data, holdout_deterministic)
{
    sq_dataset ds = make_ds(50, 1, 2, 2, 1), r1, h1, r2, h2, r3, h3;
    ds.mean[0] = 0.25f;
    cr_assert_eq(sq_dataset_holdout(&ds, 0.2f, 7, &r1, &h1), SQ_OK);
    cr_assert_eq(sq_dataset_holdout(&ds, 0.2f, 7, &r2, &h2), SQ_OK);
    cr_assert_eq(sq_dataset_holdout(&ds, 0.2f, 8, &r3, &h3), SQ_OK);
    cr_assert_eq(r1.n, 40);
    cr_assert_eq(h1.n, 10);
    int seen[50] = {0}, same = 1, diff = 0;
    for (int i = 0; i < 40; i++) seen[r1.labels[i]]++;
    for (int i = 0; i < 10; i++) {
        seen[h1.labels[i]]++;
        same &= h1.labels[i] == h2.labels[i];
        diff |= h1.labels[i] != h3.labels[i];
        cr_expect_eq(h1.images[4 * i], (uint8_t)h1.labels[i], "image follows its label");
    }
    for (int i = 0; i < 50; i++) cr_expect_eq(seen[i], 1, "sample %d appears %d times", i, seen[i]);
    cr_expect(same, "same seed -> same split");
    cr_expect(diff, "another seed -> another split");
    cr_expect(h1.images != ds.images && r1.images != ds.images, "copies");
    cr_expect_eq(h1.mean[0], 0.25f, "normalization carried over");
    cr_expect_eq(sq_dataset_holdout(&ds, 0.0f, 7, &r2, &h2), SQ_EARG);
    cr_expect_eq(sq_dataset_holdout(&ds, 1.0f, 7, &r2, &h2), SQ_EARG);
    sq_dataset_free(&r1), sq_dataset_free(&h1), sq_dataset_free(&r2), sq_dataset_free(&h2);
    sq_dataset_free(&r3), sq_dataset_free(&h3), sq_dataset_free(&ds);
}

/* ---------------------------------------------------------------- loader */

static sq_loader *mk_loader(const sq_dataset *ds, int batch, int shuffle, int pad, int flip,
                            int drop_last, uint64_t seed)
{
    sq_loader_opts o = {.batch = batch, .shuffle = shuffle, .crop_pad = pad, .flip = flip,
                        .drop_last = drop_last, .seed = seed};
    sq_loader *l = NULL;
    cr_assert_eq(sq_loader_create(ds, &o, &l), SQ_OK, "%s", sq_last_error());
    return l;
}

/* Reads one epoch of labels (sample ids) into ids; returns the count. */
static int epoch_ids(sq_loader *l, int epoch, int *ids, int *sizes)
{
    sq_loader_start_epoch(l, epoch);
    const float *x;
    const int32_t *y;
    int n, k = 0, b = 0;
    while ((n = sq_loader_next(l, &x, &y)) > 0) {
        if (sizes) sizes[b] = n;
        b++;
        for (int i = 0; i < n; i++) {
            cr_assert_eq(x[i], (float)y[i] / 255.0f, "pixel follows label %d", y[i]); /* mean 0 std 1 */
            ids[k++] = y[i];
        }
    }
    return k;
}

Test(data, loader_each_index_once_and_deterministic)
{
    sq_dataset ds = make_ds(37, 1, 1, 1, 1);
    sq_loader *a = mk_loader(&ds, 8, 1, 0, 0, 0, 42), *b = mk_loader(&ds, 8, 1, 0, 0, 0, 42);
    cr_assert_eq(sq_loader_batches(a), 5);
    int ia[37], ib[37], ic[37], sizes[5];
    for (int e = 0; e < 3; e++) {
        cr_assert_eq(epoch_ids(a, e, ia, sizes), 37);
        cr_expect_eq(sizes[4], 5, "last partial batch kept without drop_last");
        int seen[37] = {0};
        for (int i = 0; i < 37; i++) seen[ia[i]]++;
        for (int i = 0; i < 37; i++) cr_expect_eq(seen[i], 1, "epoch %d index %d seen %d times", e, i, seen[i]);
        cr_assert_eq(epoch_ids(b, e, ib, NULL), 37);
        for (int i = 0; i < 37; i++) cr_expect_eq(ia[i], ib[i], "epoch %d pos %d: %d vs %d", e, i, ia[i], ib[i]);
    }
    epoch_ids(a, 0, ia, NULL);
    epoch_ids(a, 1, ic, NULL);
    int differ = 0;
    for (int i = 0; i < 37; i++) differ |= ia[i] != ic[i];
    cr_expect(differ, "epochs 0 and 1 must have different orders");
    sq_loader_free(a);
    sq_loader_free(b);
    sq_dataset_free(&ds);
}

Test(data, loader_drop_last_counts)
{
    sq_dataset ds = make_ds(37, 1, 1, 1, 1);
    sq_loader *l = mk_loader(&ds, 8, 0, 0, 0, 1, 1);
    cr_expect_eq(sq_loader_batches(l), 4);
    int ids[37], sizes[8] = {0};
    cr_expect_eq(epoch_ids(l, 0, ids, sizes), 32);
    for (int b = 0; b < 4; b++) cr_expect_eq(sizes[b], 8, "batch %d size %d", b, sizes[b]);
    for (int i = 0; i < 32; i++) cr_expect_eq(ids[i], i, "no shuffle keeps order");
    const float *x;
    cr_expect_eq(sq_loader_next(l, &x, NULL), 0, "still 0 after the end");
    sq_loader_free(l);
    sq_loader_opts o = {.batch = 64, .drop_last = 1};
    cr_expect_eq(sq_loader_create(&ds, &o, &l), SQ_EARG, "fewer samples than one batch");
    sq_dataset_free(&ds);
}

Test(data, loader_skip_and_restart)
{
    sq_dataset ds = make_ds(40, 1, 1, 1, 1);
    sq_loader *l = mk_loader(&ds, 4, 1, 0, 0, 1, 9);
    int full[40];
    epoch_ids(l, 3, full, NULL);
    cr_expect_eq(sq_loader_skip(l, 11), SQ_EARG, "out of range");
    sq_loader_start_epoch(l, 3);
    const float *x;
    const int32_t *y;
    cr_assert_eq(sq_loader_next(l, &x, &y), 4);
    cr_assert_eq(sq_loader_next(l, &x, &y), 4);
    /* restart mid-epoch: the epoch begins again from batch 0 */
    sq_loader_start_epoch(l, 3);
    cr_assert_eq(sq_loader_next(l, &x, &y), 4);
    for (int i = 0; i < 4; i++) cr_expect_eq(y[i], full[i], "restart pos %d", i);
    cr_assert_eq(sq_loader_skip(l, 7), SQ_OK, "%s", sq_last_error());
    int k = 28, n;
    while ((n = sq_loader_next(l, &x, &y)) > 0)
        for (int i = 0; i < n; i++, k++) cr_expect_eq(y[i], full[k], "after skip pos %d: %d vs %d", k, y[i], full[k]);
    cr_expect_eq(k, 40);
    sq_loader_free(l);
    l = mk_loader(&ds, 4, 1, 0, 0, 1, 9);
    cr_expect_eq(sq_loader_skip(l, 1), SQ_EARG, "skip before start_epoch");
    sq_loader_free(l);
    sq_dataset_free(&ds);
}

Test(data, loader_flip_mirrors_exactly)
{
    sq_dataset ds = make_ds(200, 2, 3, 4, 0);
    for (int i = 0; i < 200; i++)
        for (int p = 0; p < 24; p++) ds.images[i * 24 + p] = (uint8_t)(p * 10 + 1);
    sq_loader *l = mk_loader(&ds, 50, 0, 0, 1, 0, 5);
    sq_loader_start_epoch(l, 0);
    const float *x;
    int32_t sentinel = -7;
    const int32_t *y = &sentinel;
    int n, nflip = 0, nid = 0;
    while ((n = sq_loader_next(l, &x, &y)) > 0)
        for (int i = 0; i < n; i++) {
            const float *s = x + i * 24;
            int id = 1, fl = 1;
            for (int c = 0; c < 2; c++)
                for (int r = 0; r < 3; r++)
                    for (int q = 0; q < 4; q++) {
                        float v = s[(c * 3 + r) * 4 + q];
                        id &= v == (float)(((c * 3 + r) * 4 + q) * 10 + 1) / 255.0f;
                        fl &= v == (float)(((c * 3 + r) * 4 + (3 - q)) * 10 + 1) / 255.0f;
                    }
            cr_expect(id || fl, "sample %d is neither the image nor its exact mirror", i);
            nflip += fl, nid += id;
        }
    cr_expect(y == &sentinel, "unlabeled data leaves y untouched");
    /* 200 fair coin flips: both outcomes occur (probability of failure 2^-199) */
    cr_expect(nflip > 0 && nid > 0, "flips %d identities %d", nflip, nid);
    cr_expect_eq(nflip + nid, 200);
    sq_loader_free(l);
    sq_dataset_free(&ds);
}

Test(data, loader_crop_values_and_batching_independence)
{
    /* 1000 copies of a 4x5 image with values 1..20 (never 0, so padding is recognisable) */
    const int H = 4, W = 5, P = 2, N = 1000;
    sq_dataset ds = make_ds(N, 1, H, W, 0);
    for (int i = 0; i < N; i++)
        for (int p = 0; p < H * W; p++) ds.images[i * H * W + p] = (uint8_t)(p + 1);
    sq_loader *a = mk_loader(&ds, 100, 0, P, 1, 0, 11), *b = mk_loader(&ds, 7, 0, P, 1, 0, 11);
    sq_loader_start_epoch(a, 2);
    sq_loader_start_epoch(b, 2);
    int combos[5][5][2] = {{{0}}}, k = 0, kb = 0, n, nbat = 0;
    const float *x, *xb = NULL;
    float *all = malloc(sizeof(float) * N * H * W);
    while ((n = sq_loader_next(a, &x, NULL)) > 0)
        for (int i = 0; i < n; i++, k++) memcpy(all + (size_t)k * H * W, x + i * H * W, sizeof(float) * H * W);
    for (int i = 0; i < N; i++) {
        const float *s = all + (size_t)i * H * W;
        int found = 0;
        for (int oy = -P; oy <= P && !found; oy++)
            for (int ox = -P; ox <= P && !found; ox++)
                for (int f = 0; f < 2 && !found; f++) {
                    int ok = 1;
                    for (int y = 0; y < H && ok; y++)
                        for (int xx = 0; xx < W && ok; xx++) {
                            int sy = y + oy, sx = (f ? W - 1 - xx : xx) + ox;
                            int v = (sy >= 0 && sy < H && sx >= 0 && sx < W) ? sy * W + sx + 1 : 0;
                            ok = s[y * W + xx] == (float)v / 255.0f;
                        }
                    if (ok) combos[oy + P][ox + P][f]++, found = 1;
                }
        cr_expect(found, "sample %d is no zero-padded crop/flip of the image", i);
    }
    int distinct = 0;
    for (int i = 0; i < 50; i++) distinct += ((int *)combos)[i] > 0;
    /* 1000 uniform draws over 50 outcomes: all appear (miss probability < 1e-7) */
    cr_expect_eq(distinct, 50, "only %d of 50 crop/flip outcomes seen", distinct);
    /* same seed and epoch with another batch size gives the same per-sample values */
    while ((n = sq_loader_next(b, &xb, NULL)) > 0) {
        nbat++;
        for (int i = 0; i < n * H * W; i++, kb++)
            if (xb[i] != all[kb]) {
                cr_expect_eq(xb[i], all[kb], "batch-7 loader differs at %d", kb);
                break;
            }
    }
    cr_expect_eq(kb, N * H * W);
    cr_expect_eq(nbat, (N + 6) / 7);
    free(all);
    sq_loader_free(a);
    sq_loader_free(b);
    sq_dataset_free(&ds);
}

Test(data, loader_normalization_exact)
{
    sq_dataset ds = make_ds(3, 2, 1, 2, 1);
    const uint8_t px[12] = {0, 255, 51, 128, 1, 2, 3, 4, 200, 201, 254, 7};
    memcpy(ds.images, px, 12);
    ds.mean[0] = 0.5f, ds.std[0] = 0.25f, ds.mean[1] = 0.4822f, ds.std[1] = 0.1994f;
    sq_loader *l = mk_loader(&ds, 3, 0, 0, 0, 0, 0);
    sq_loader_start_epoch(l, 0);
    const float *x;
    const int32_t *y;
    cr_assert_eq(sq_loader_next(l, &x, &y), 3);
    for (int i = 0; i < 12; i++) {
        int c = (i / 2) % 2;
        float want = ((float)px[i] / 255.0f - ds.mean[c]) / ds.std[c];
        double ref = (px[i] / 255.0 - ds.mean[c]) / ds.std[c];
        cr_expect_eq(x[i], want, "x[%d] = %.9g, want %.9g", i, x[i], want);
        /* the float formula itself within 3 float ulps of the double reference */
        cr_expect(fabs(x[i] - ref) <= 1e-6 + 4e-7 * fabs(ref), "x[%d] = %.9g, ref %.9g", i, x[i], ref);
    }
    cr_expect_eq(x[0], -2.0f, "(0 - 0.5) / 0.25");
    cr_expect_eq(x[1], 2.0f, "(1 - 0.5) / 0.25");
    sq_loader_free(l);
    /* computed normalization for an unknown dataset: mean and population std per channel */
    sq_dataset_set_default_norm(&ds);
    double m0 = (0 + 255 + 1 + 2 + 200 + 201) / 6.0 / 255.0;
    cr_expect(fabsf(ds.mean[0] - (float)m0) <= 1e-6f, "mean %g want %g", ds.mean[0], m0); /* float rounding */
    sq_dataset_free(&ds);
}

/* ---------------------------------------------------------------- keep and host memory hooks */

static int g_hook_allocs, g_hook_live, g_hook_fail_after = -1;
static void *hook_alloc(size_t bytes)
{
    if (g_hook_fail_after >= 0 && g_hook_allocs >= g_hook_fail_after) {
        sq_set_error("hook: no memory");
        return NULL;
    }
    g_hook_allocs++;
    g_hook_live++;
    return malloc(bytes);
}
static void hook_free(void *p)
{
    if (!p) return;
    g_hook_live--;
    free(p);
}

/* keep = 3 with the allocator hooks: the batches are the hooks' memory, each stays unchanged
   through the next two calls while the producer works ahead, and they equal keep = 1's batches */
Test(data, loader_keep_holds_batches_in_hook_memory)
{
    enum { N = 61, B = 2, KEEP = 3 };
    sq_dataset ds = make_ds(N, 3, 4, 4, 1);
    const size_t nx = (size_t)B * 3 * 4 * 4;
    g_hook_allocs = g_hook_live = 0;
    g_hook_fail_after = -1;
    sq_loader_opts o = {.batch = B, .shuffle = 1, .crop_pad = 1, .flip = 1, .seed = 5, .keep = KEEP,
                        .host_alloc = hook_alloc, .host_free = hook_free};
    sq_loader *l = NULL, *ref = mk_loader(&ds, B, 1, 1, 1, 0, 5);
    cr_assert_eq(sq_loader_create(&ds, &o, &l), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(g_hook_allocs, 2 * (KEEP + 1), "keep + 1 slots of images and labels from the hook");
    for (int epoch = 0; epoch < 2; epoch++) {
        sq_loader_start_epoch(l, epoch);
        sq_loader_start_epoch(ref, epoch);
        const float *x[KEEP] = {0}, *rx;
        const int32_t *y[KEEP] = {0}, *ry;
        float saved[KEEP][2 * 3 * 4 * 4];
        int32_t saved_y[KEEP][B];
        int n, k = 0;
        while ((n = sq_loader_next(l, &x[k % KEEP], &y[k % KEEP])) > 0) {
            cr_assert_eq(sq_loader_next(ref, &rx, &ry), n);
            cr_assert_eq(memcmp(x[k % KEEP], rx, (size_t)n * nx / B * sizeof(float)), 0, "batch %d differs", k);
            cr_assert_eq(memcmp(y[k % KEEP], ry, (size_t)n * sizeof(int32_t)), 0, "labels of batch %d differ", k);
            memcpy(saved[k % KEEP], x[k % KEEP], nx * sizeof(float));
            memcpy(saved_y[k % KEEP], y[k % KEEP], B * sizeof(int32_t));
            /* the two batches before this one are still intact and in other slots */
            for (int back = 1; back < KEEP && back <= k; back++) {
                int j = (k - back) % KEEP;
                cr_assert_neq(x[j], x[k % KEEP], "batch %d shares a slot with batch %d", k - back, k);
                cr_assert_eq(memcmp(x[j], saved[j], nx * sizeof(float)), 0, "batch %d overwritten at batch %d",
                             k - back, k);
                cr_assert_eq(memcmp(y[j], saved_y[j], B * sizeof(int32_t)), 0, "labels of batch %d overwritten",
                             k - back);
            }
            k++;
        }
        cr_expect_eq(k, (N + B - 1) / B);
    }
    sq_loader_free(l);
    sq_loader_free(ref);
    cr_expect_eq(g_hook_live, 0, "%d hook allocations not given back", g_hook_live);
    sq_dataset_free(&ds);
}

Test(data, loader_keep_and_hooks_are_checked)
{
    sq_dataset ds = make_ds(10, 1, 2, 2, 1);
    sq_loader *l = NULL;
    sq_loader_opts o = {.batch = 2, .keep = -1};
    cr_expect_eq(sq_loader_create(&ds, &o, &l), SQ_EARG);
    o.keep = SQ_LOADER_KEEP_MAX + 1;
    cr_expect_eq(sq_loader_create(&ds, &o, &l), SQ_EARG);
    o.keep = 2;
    o.host_alloc = hook_alloc;
    cr_expect_eq(sq_loader_create(&ds, &o, &l), SQ_EARG, "host_alloc without host_free");
    o.host_free = hook_free;
    g_hook_allocs = g_hook_live = 0;
    g_hook_fail_after = 3; /* the second slot's labels */
    cr_expect_eq(sq_loader_create(&ds, &o, &l), SQ_ENOMEM, "the hook has no memory");
    cr_expect(strstr(sq_last_error(), "hook: no memory") != NULL, "message: %s", sq_last_error());
    cr_expect_eq(g_hook_live, 0, "a failed create kept %d hook allocations", g_hook_live);
    cr_expect_null(l);
    g_hook_fail_after = -1;
    sq_dataset_free(&ds);
}
