/* test_cuda_context.c: Criterion suite "cuda_context": the CUDA backend's options, status and
   device members (backend.h configure / options / status / clear_status / error_count /
   device_info; kernels/cuda/context.c).
   - configure takes every option of 0 / 1, refuses other values naming the option, and applies
     nothing of a refused set; options() returns what is in force.
   - Once a convolution shape is planned, tf32, conv-algo and deterministic can no longer change
     (the plan keeps what it was built with): configure refuses naming the option; the other
     options still change, and the same conv options are accepted again.
   - The conv options decide the plans: conv-algo=find and deterministic=0 plan and run the same
     convolution as the defaults (cuemu: the same values).
   - device_info: the device's name, a positive peak bandwidth and SM count.
   - status / clear_status / error_count: a failing call is counted and sticky until cleared.
   Without a GPU every test SKIPS (under cuemu they run on the emulated device). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include "util_check.h"
#include "util_fixtures.h"
#include "cuda_hooks.h"

TestSuite(cuda_context, .timeout = 120);

static const sq_backend *gpu(void)
{
    const sq_backend *g = sq_backend_cuda();
    if (!g) cr_skip("no GPU: %s", sq_last_error());
    return g;
}

Test(cuda_context, configure_validates_and_options_reports)
{
    const sq_backend *g = gpu();
    const sq_backend_opts def = SQ_BACKEND_OPTS_DEFAULT;
    cr_expect_eq(memcmp(g->options(), &def, sizeof def), 0, "options before configure are not the defaults");
    sq_backend_opts o = def;
    o.cuda_graph = 0;
    o.stage = 0;
    o.tf32 = 0;
    o.host_profile = 0;
    cr_assert_eq(g->configure(&o), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(memcmp(g->options(), &o, sizeof o), 0, "options() is not what configure applied");
    sq_backend_opts bad = o;
    bad.cuda_graph = 1;
    bad.conv_deterministic = 2;
    cr_expect_eq(g->configure(&bad), SQ_EARG);
    cr_expect(strstr(sq_last_error(), "deterministic") != NULL, "message: %s", sq_last_error());
    cr_expect_eq(memcmp(g->options(), &o, sizeof o), 0, "a refused configure applied something");
}

/* one 3x3 convolution forward on the device; y fetched */
static float *conv_once(const sq_backend *g, const sq_conv_shape *cs, const float *x, const float *w)
{
    size_t nx = (size_t)cs->n * cs->c * cs->h * cs->w, nw = (size_t)cs->k * cs->c * cs->r * cs->s,
           ny = (size_t)cs->n * cs->k * cs->oh * cs->ow;
    float *dx = sqt_dput(g, x, nx * 4), *dw = sqt_dput(g, w, nw * 4), *dy = sqt_dput(g, NULL, ny * 4);
    g->conv2d_fwd(cs, dx, dw, NULL, dy, NULL);
    sqt_gpu_ok(g);
    float *y = sqt_fetch(g, dy, ny, "y");
    g->free((char *)dx - SQT_GUARD);
    g->free((char *)dw - SQT_GUARD);
    return y;
}

Test(cuda_context, conv_options_are_fixed_once_a_shape_is_planned)
{
    const sq_backend *g = gpu();
    sq_backend_opts o = SQ_BACKEND_OPTS_DEFAULT;
    o.tf32 = 0;
    o.conv_find = 1;         /* cudnnFind*AlgorithmEx */
    o.conv_deterministic = 0; /* any algorithm */
    cr_assert_eq(g->configure(&o), SQ_OK, "%s", sq_last_error());
    sq_conv_shape cs;
    cr_assert_eq(sq_conv_shape_init(&cs, 2, 3, 9, 7, 4, 3, 3, 1, 1, 1), SQ_OK);
    float *x = sqt_hrand(2 * 3 * 9 * 7, -1, 1, 11), *w = sqt_hrand(4 * 3 * 9, -1, 1, 12);
    float *y = conv_once(g, &cs, x, w);
    float *ref = sqt_hvec((size_t)2 * 4 * 9 * 7);
    const sq_backend *c = sq_backend_cpu();
    size_t wsb = c->conv_ws_bytes(&cs);
    void *ws = wsb ? malloc(wsb) : NULL;
    c->conv2d_fwd(&cs, x, w, NULL, ref, ws);
    free(ws);
    sqt_expect_close("conv with conv-algo=find, deterministic=0", y, ref, (size_t)2 * 4 * 9 * 7,
                     1e-5 * 27, 1e-4, 11);
    static const char *const names[3] = {"tf32", "conv-algo", "deterministic"};
    for (int k = 0; k < 3; k++) {
        sq_backend_opts p = o;
        if (k == 0) p.tf32 = 1;
        if (k == 1) p.conv_find = 0;
        if (k == 2) p.conv_deterministic = 1;
        cr_expect_eq(g->configure(&p), SQ_EARG, "%s changed after a plan was built", names[k]);
        cr_expect(strstr(sq_last_error(), names[k]) != NULL, "message: %s", sq_last_error());
        cr_expect_eq(memcmp(g->options(), &o, sizeof o), 0, "a refused configure applied something");
    }
    sq_backend_opts q = o; /* the host's options still change */
    q.cuda_graph = 0;
    q.stage = 0;
    q.host_profile = 1;
    cr_expect_eq(g->configure(&q), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(g->options()->host_profile, 1);
    float *y2 = conv_once(g, &cs, x, w); /* profiled: same values */
    sqt_expect_equal("conv with the host profile on", y2, y, (size_t)2 * 4 * 9 * 7);
    free(x); free(w); free(y); free(y2); free(ref);
}

Test(cuda_context, device_info_describes_the_device)
{
    const sq_backend *g = gpu();
    sq_device_info info;
    memset(&info, 0x5a, sizeof info);
    g->device_info(&info);
    cr_expect(memchr(info.name, 0, sizeof info.name) != NULL, "name not terminated");
    cr_expect(info.name[0] != 0, "no device name");
    cr_expect_gt(info.peak_gbps, 0.0, "peak bandwidth %g", info.peak_gbps);
    cr_expect_gt(info.multiprocessors, 0);
    sq_device_info ci;
    sq_backend_cpu()->device_info(&ci);
    cr_expect_str_eq(ci.name, "cpu");
}

Test(cuda_context, status_members_keep_the_first_failure_until_cleared)
{
    const sq_backend *g = gpu();
    g->clear_status();
    const unsigned before = g->error_count();
    cr_assert_eq(g->status(), SQ_OK, "%s", sq_last_error());
    float host[4] = {0};
    g->copy_h2d(NULL, host, sizeof host); /* invalid destination: cudaMemcpy fails at once */
    g->copy_d2h(host, NULL, sizeof host); /* and a second failure */
    cr_expect_eq(g->error_count(), before + 2, "failures counted: %u", g->error_count() - before);
    sq_set_error("something else");
    cr_assert_neq(g->status(), SQ_OK);
    cr_expect(strstr(sq_last_error(), "cudaMemcpy") != NULL, "status() did not restore the first "
              "failure's message: %s", sq_last_error());
    g->clear_status();
    cr_expect_eq(g->status(), SQ_OK);
    cr_expect_eq(g->error_count(), before + 2, "clear_status reset the count");
}
