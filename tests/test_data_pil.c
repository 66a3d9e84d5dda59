/* test_data_pil.c: Criterion suite "data" (declared with its fixture in test_data_idx_cifar.c):
   folder images decoded, converted to RGB and resized as torchvision does. tests/pil_resize_ref.py
   writes PNG and JPEG images of every colour kind (RGB, greyscale, grey + alpha, palette, RGBA,
   greyscale and CMYK JPEG) with PIL and the result of
   Compose([Resize(min(H, W)), CenterCrop((H, W))])(Image.open(f).convert("RGB")) for several
   targets (down- and upscaling, non-square crops both ways, and each image's own size, where only
   the colour conversion is left); the folder dataset opened with that resize must give the same
   bytes. The tolerance is 0: the resize reproduces PIL's fixed-point arithmetic, and PIL decodes
   JPEG with the same libjpeg. SKIPS, visibly, when /usr/bin/python3 lacks PIL, numpy or
   torchvision. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sqakd/data.h"
#include "util_fixtures.h"

#define PYTHON "/usr/bin/python3"

Test(data, resize_and_colour_match_torchvision, .timeout = 180)
{
    if (system(PYTHON " -c 'import PIL, numpy, torchvision' >/dev/null 2>&1"))
        cr_skip_test("/usr/bin/python3 cannot import PIL, numpy and torchvision (make deps-py): not compared");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, PYTHON " tests/pil_resize_ref.py %s 2>&1", sqt_scratch_dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    FILE *tf = fopen(sqt_tpath("targets.txt"), "r");
    cr_assert_not_null(tf);
    char spec[600];
    snprintf(spec, sizeof spec, "folder:%s", sqt_tpath("img"));
    int th, tw, ntargets = 0, nimages = 0;
    long compared = 0;
    while (fscanf(tf, "%d %d", &th, &tw) == 2) {
        sq_data_opts o = {.resize_h = th, .resize_w = tw, .threads = 2};
        sq_dataset ds;
        cr_assert_eq(sq_dataset_open_ex(spec, SQ_SPLIT_TRAIN, 0, &o, &ds), SQ_OK, "%s", sq_last_error());
        cr_assert(ds.c == 3 && ds.h == th && ds.w == tw, "%dx%dx%d for %dx%d", ds.c, ds.h, ds.w, th, tw);
        const size_t sample = (size_t)3 * th * tw;
        uint8_t *got = malloc(sample);
        for (int i = 0; i < ds.n; i++) {
            cr_assert_eq(sq_dataset_fetch(&ds, i, got), SQ_OK, "%s", sq_last_error());
            const char *base = strrchr(sq_dataset_path(&ds, i), '/') + 1;
            char exp[300];
            snprintf(exp, sizeof exp, "exp/%s.%dx%d.raw", base, th, tw);
            size_t n;
            unsigned char *want = sqt_slurp(sqt_tpath(exp), &n);
            cr_assert_eq(n, sample, "%s: %zu bytes", exp, n);
            int maxd = 0, ndiff = 0, at = -1;
            for (size_t k = 0; k < sample; k++) {
                int d = abs((int)got[k] - (int)want[k]);
                if (d) ndiff++;
                if (d > maxd) maxd = d, at = (int)k;
            }
            cr_expect_eq(maxd, 0, "%s at %dx%d: %d of %zu values differ, at most by %d (value %d: %d, torchvision %d)",
                         base, th, tw, ndiff, sample, maxd, at, at >= 0 ? got[at] : 0, at >= 0 ? want[at] : 0);
            compared += (long)sample;
            free(want);
        }
        nimages = ds.n;
        free(got);
        sq_dataset_free(&ds);
        ntargets++;
    }
    fclose(tf);
    cr_expect_eq(nimages, 9);
    cr_expect_geq(ntargets, 6 + 8, "the fixed targets and the images' own sizes");
    cr_log_info("compared %ld values over %d targets x %d images", compared, ntargets, nimages);
}
