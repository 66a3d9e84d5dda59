/* test_onnx_io.c: Criterion suite "onnx_io": the ONNX reader on real models and tensors of ONNX's
   backend tests (Debian's libonnx-testdata; skipped visibly when absent), with values computed by
   onnx.numpy_helper; crafted protobuf files the reader must refuse with one line; the writer's
   round trip and its validity for the onnx package's checker; .npy reading and writing, against
   files NumPy writes. Files go under a per-test scratch directory (sqt_scratch_dir). */
#include <criterion/criterion.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "sqakd/onnx.h"
#include "util_fixtures.h"

#define PYTHON "/usr/bin/python3"
#define TESTDATA "/usr/share/libonnx-testdata/data"

static void setup(void)
{
    cr_assert(sqt_mkdtemp(sqt_scratch_dir, sizeof sqt_scratch_dir, "sqakd_onnx"), "mkdtemp: %s", strerror(errno));
}

static void teardown(void) { sqt_rmtree(sqt_scratch_dir); }

TestSuite(onnx_io, .init = setup, .fini = teardown);

/* skips the test (visibly) when the backend-test data is not installed */
static void need_testdata(void)
{
    if (access(TESTDATA "/node/test_conv_with_strides_padding/model.onnx", R_OK))
        cr_skip_test("libonnx-testdata is not installed (make deps installs it)");
}

/* 1 when /usr/bin/python3 imports every module of the comma-separated list */
static int have_python(const char *mods)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, PYTHON " -c 'import %s' >/dev/null 2>&1", mods);
    return system(cmd) == 0;
}

/* ---------------------------------------------------------------- a tiny protobuf encoder */

typedef struct pb { unsigned char b[4096]; size_t n; } pb;

static void pb_varint(pb *p, uint64_t v)
{
    do {
        cr_assert_lt(p->n, sizeof p->b);
        p->b[p->n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}

static void pb_int(pb *p, int field, int64_t v) { pb_varint(p, (uint64_t)field << 3); pb_varint(p, (uint64_t)v); }

static void pb_bytes(pb *p, int field, const void *d, size_t n)
{
    pb_varint(p, (uint64_t)field << 3 | 2);
    pb_varint(p, n);
    cr_assert_leq(p->n + n, sizeof p->b);
    memcpy(p->b + p->n, d, n);
    p->n += n;
}

static void pb_str(pb *p, int field, const char *s) { pb_bytes(p, field, s, strlen(s)); }
static void pb_msg(pb *p, int field, const pb *m) { pb_bytes(p, field, m->b, m->n); }

/* a float TensorProto "t" of the given dims with raw_data of nraw bytes (values 0, 1, 2, ...) */
static pb tensor_raw(int ndim, const int64_t *dims, size_t nraw)
{
    pb t = { .n = 0 };
    for (int d = 0; d < ndim; d++) pb_int(&t, 1, dims[d]);
    pb_int(&t, 2, SQ_ONNX_FLOAT);
    pb_str(&t, 8, "t");
    float v[64];
    for (int k = 0; k < 64; k++) v[k] = (float)k;
    cr_assert_leq(nraw, sizeof v);
    pb_bytes(&t, 9, v, nraw);
    return t;
}

/* a model with one Identity node whose single initializer is `init` */
static pb model_with_init(const pb *init)
{
    pb node = { .n = 0 }, g = { .n = 0 }, opset = { .n = 0 }, m = { .n = 0 };
    pb_str(&node, 1, "t");
    pb_str(&node, 2, "y");
    pb_str(&node, 4, "Identity");
    pb_msg(&g, 1, &node);
    pb_str(&g, 2, "g");
    pb_msg(&g, 5, init);
    pb_int(&opset, 2, 13);
    pb_int(&m, 1, 8);
    pb_msg(&m, 8, &opset);
    pb_msg(&m, 7, &g);
    return m;
}

static void expect_refused(const pb *m, const char *what, const char *needle)
{
    sq_onnx_graph *g = (sq_onnx_graph *)1;
    sq_status st = sq_onnx_read_mem(m->b, m->n, what, &g);
    cr_expect_eq(st, SQ_EFORMAT, "%s: status %d (%s)", needle, st, sq_last_error());
    cr_expect_null(g);
    sqt_expect_error_has(what);
    sqt_expect_error_has(needle);
    sqt_expect_error_printable();
}

/* ---------------------------------------------------------------- real models */

Test(onnx_io, reads_conv_backend_test_model)
{
    need_testdata();
    sq_onnx_graph *g = NULL;
    cr_assert_eq(sq_onnx_read(TESTDATA "/node/test_conv_with_strides_padding/model.onnx", &g), SQ_OK, "%s",
                 sq_last_error());
    cr_expect_eq(g->ir_version, 6);
    cr_expect_eq(g->opset, 11);
    cr_expect_str_eq(g->producer, "backend-test");
    cr_expect_str_eq(g->name, "test_conv_with_strides_padding");
    cr_assert_eq(g->nnode, 1);
    const sq_onnx_node *n = &g->node[0];
    cr_expect_str_eq(n->op, "Conv");
    cr_expect_str_eq(n->domain, "");
    cr_assert_eq(n->nin, 2);
    cr_expect_str_eq(n->in[0], "x");
    cr_expect_str_eq(n->in[1], "W");
    cr_assert_eq(n->nout, 1);
    cr_expect_str_eq(n->out[0], "y");
    static const char *const names[] = { "kernel_shape", "pads", "strides" };
    static const int64_t want[3][4] = { { 3, 3 }, { 1, 1, 1, 1 }, { 2, 2 } };
    static const int wn[3] = { 2, 4, 2 };
    for (int a = 0; a < 3; a++) {
        const sq_onnx_attr *at = sq_onnx_attr_find(n, names[a]);
        cr_assert_not_null(at, "%s", names[a]);
        cr_expect_eq(at->type, SQ_ONNX_ATTR_INTS);
        cr_assert_eq(at->n, wn[a], "%s", names[a]);
        for (int k = 0; k < wn[a]; k++) cr_expect_eq(at->ints[k], want[a][k], "%s[%d]", names[a], k);
    }
    cr_expect_null(sq_onnx_attr_find(n, "dilations"));
    cr_expect_eq(g->ninit, 0);
    cr_assert_eq(g->ninput, 2);   /* x and W are both real inputs here */
    cr_expect_str_eq(g->input[0].name, "x");
    cr_expect_eq(g->input[0].dtype, SQ_ONNX_FLOAT);
    cr_assert_eq(g->input[0].ndim, 4);
    static const int64_t xd[4] = { 1, 1, 7, 5 };
    for (int d = 0; d < 4; d++) cr_expect_eq(g->input[0].dims[d], xd[d]);
    cr_expect_null(g->input[0].dim_param[0]);
    cr_assert_eq(g->noutput, 1);
    cr_expect_str_eq(g->output[0].name, "y");
    static const int64_t yd[4] = { 1, 1, 4, 3 };
    for (int d = 0; d < 4; d++) cr_expect_eq(g->output[0].dims[d], yd[d]);
    sq_onnx_free(g);
}

Test(onnx_io, reads_backend_test_tensors)
{
    need_testdata();
    const char *dir = TESTDATA "/node/test_conv_with_strides_padding/test_data_set_0/";
    char p[512];
    sq_onnx_tensor t;
    snprintf(p, sizeof p, "%sinput_0.pb", dir);
    cr_assert_eq(sq_onnx_read_tensor(p, &t), SQ_OK, "%s", sq_last_error());
    cr_expect_str_eq(t.name, "x");
    cr_expect_eq(t.dtype, SQ_ONNX_FLOAT);
    cr_assert_eq(t.ndim, 4);
    static const int64_t xd[4] = { 1, 1, 7, 5 };
    for (int d = 0; d < 4; d++) cr_expect_eq(t.dims[d], xd[d]);
    cr_assert_eq(t.numel, 35);
    cr_assert_not_null(t.f);
    cr_expect_null(t.i);
    double s = 0;
    for (size_t k = 0; k < t.numel; k++) {
        cr_expect_eq(t.f[k], (float)k);   /* numpy: np.arange(35) */
        s += t.f[k];
    }
    cr_expect_eq(s, 595.0);
    sq_onnx_tensor_clear(&t);
    cr_expect_null(t.f);

    snprintf(p, sizeof p, "%soutput_0.pb", dir);
    cr_assert_eq(sq_onnx_read_tensor(p, &t), SQ_OK, "%s", sq_last_error());
    static const float y0[6] = { 12, 27, 24, 63, 108, 81 };
    cr_assert_eq(t.numel, 12);
    for (int k = 0; k < 6; k++) cr_expect_eq(t.f[k], y0[k]);
    s = 0;
    for (size_t k = 0; k < t.numel; k++) s += t.f[k];
    cr_expect_eq(s, 1190.0);
    sq_onnx_tensor_clear(&t);
}

/* tensors of other element types, values from onnx.numpy_helper.to_array */
Test(onnx_io, reads_tensors_of_every_integer_and_float_type)
{
    need_testdata();
    sq_onnx_tensor t;
    /* float16 (raw_data): a float32 cast of 0.158935546875 ... */
    cr_assert_eq(sq_onnx_read_tensor(TESTDATA "/node/test_cast_DOUBLE_to_FLOAT16/test_data_set_0/output_0.pb", &t),
                 SQ_OK, "%s", sq_last_error());
    cr_expect_eq(t.dtype, SQ_ONNX_FLOAT16);
    cr_assert_eq(t.numel, 12);
    cr_expect_eq(t.f[0], 0.158935546875f);
    cr_expect_eq(t.f[1], 0.1103515625f);
    cr_expect_eq(t.f[2], 0.65625f);
    double s = 0;
    for (size_t k = 0; k < t.numel; k++) s += t.f[k];
    cr_expect_eq(s, 4.92608642578125);
    sq_onnx_tensor_clear(&t);
    /* double, converted to float */
    cr_assert_eq(sq_onnx_read_tensor(TESTDATA "/node/test_cast_DOUBLE_to_FLOAT16/test_data_set_0/input_0.pb", &t), SQ_OK);
    cr_expect_eq(t.dtype, SQ_ONNX_DOUBLE);
    cr_expect_eq(t.f[0], (float)0.15896958364551972);
    sq_onnx_tensor_clear(&t);
    /* uint8 3x4x5, sum 668 */
    cr_assert_eq(sq_onnx_read_tensor(TESTDATA "/node/test_add_uint8/test_data_set_0/input_0.pb", &t), SQ_OK);
    cr_expect_eq(t.dtype, SQ_ONNX_UINT8);
    cr_assert_eq(t.numel, 60);
    cr_assert_not_null(t.i);
    cr_expect_null(t.f);
    static const int64_t u0[5] = { 12, 10, 12, 15, 10 };
    for (int k = 0; k < 5; k++) cr_expect_eq(t.i[k], u0[k]);
    int64_t si = 0;
    for (size_t k = 0; k < t.numel; k++) si += t.i[k];
    cr_expect_eq(si, 668);
    sq_onnx_tensor_clear(&t);
    /* int8 [-1, 0, 1] */
    cr_assert_eq(sq_onnx_read_tensor(TESTDATA "/node/test_clip_default_int8_inbounds/test_data_set_0/input_0.pb", &t), SQ_OK);
    cr_expect_eq(t.dtype, SQ_ONNX_INT8);
    cr_assert_eq(t.numel, 3);
    cr_expect_eq(t.i[0], -1);
    cr_expect_eq(t.i[1], 0);
    cr_expect_eq(t.i[2], 1);
    sq_onnx_tensor_clear(&t);
    /* int16 [3, 2, 1], uint64 [16, 4, 1], bool 3x4 with 9 true */
    cr_assert_eq(sq_onnx_read_tensor(TESTDATA "/node/test_max_int16/test_data_set_0/input_0.pb", &t), SQ_OK);
    cr_expect_eq(t.dtype, SQ_ONNX_INT16);
    cr_expect(t.i[0] == 3 && t.i[1] == 2 && t.i[2] == 1);
    sq_onnx_tensor_clear(&t);
    cr_assert_eq(sq_onnx_read_tensor(TESTDATA "/node/test_bitshift_left_uint64/test_data_set_0/input_0.pb", &t), SQ_OK);
    cr_expect_eq(t.dtype, SQ_ONNX_UINT64);
    cr_expect(t.i[0] == 16 && t.i[1] == 4 && t.i[2] == 1);
    sq_onnx_tensor_clear(&t);
    cr_assert_eq(sq_onnx_read_tensor(TESTDATA "/node/test_and2d/test_data_set_0/input_0.pb", &t), SQ_OK);
    cr_expect_eq(t.dtype, SQ_ONNX_BOOL);
    si = 0;
    for (size_t k = 0; k < t.numel; k++) {
        cr_expect(t.i[k] == 0 || t.i[k] == 1);
        si += t.i[k];
    }
    cr_expect_eq(si, 9);
    sq_onnx_tensor_clear(&t);
}

/* IR 3 (PyTorch 0.3): weights listed as graph inputs too, which the reader leaves out */
Test(onnx_io, initializers_are_not_graph_inputs)
{
    need_testdata();
    sq_onnx_graph *g = NULL;
    cr_assert_eq(sq_onnx_read(TESTDATA "/pytorch-converted/test_Conv2d/model.onnx", &g), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(g->ir_version, 3);
    cr_expect_eq(g->opset, 6);
    cr_expect_str_eq(g->producer, "pytorch 0.3");
    cr_assert_eq(g->ninput, 1);
    cr_expect_str_eq(g->input[0].name, "0");
    static const int64_t xd[4] = { 2, 3, 7, 5 };
    for (int d = 0; d < 4; d++) cr_expect_eq(g->input[0].dims[d], xd[d]);
    cr_assert_eq(g->ninit, 2);
    const sq_onnx_tensor *w = sq_onnx_init_find(g, "1"), *b = sq_onnx_init_find(g, "2");
    cr_assert(w && b);
    cr_expect_null(sq_onnx_init_find(g, "0"));
    cr_assert_eq(w->ndim, 4);
    static const int64_t wd[4] = { 4, 3, 3, 2 };
    for (int d = 0; d < 4; d++) cr_expect_eq(w->dims[d], wd[d]);
    cr_assert_eq(w->numel, 72);
    cr_expect_eq(w->f[0], -0.1429409235715866f);
    cr_expect_eq(w->f[1], -0.08505815267562866f);
    cr_expect_eq(w->f[71], -0.10345208644866943f);
    double s = 0;
    for (size_t k = 0; k < w->numel; k++) s += w->f[k];
    cr_expect_float_eq(s, -1.4300735518336296, 1e-6);
    static const float bv[4] = { -0.17454391717910767f, 0.09345827996730804f, 0.04685764014720917f,
                                 0.18244947493076324f };
    cr_assert_eq(b->numel, 4);
    for (int k = 0; k < 4; k++) cr_expect_eq(b->f[k], bv[k]);
    const sq_onnx_node *n = &g->node[0];
    const sq_onnx_attr *grp = sq_onnx_attr_find(n, "group");
    cr_assert_not_null(grp);
    cr_expect_eq(grp->type, SQ_ONNX_ATTR_INT);
    cr_expect_eq(grp->i, 1);
    const sq_onnx_attr *ks = sq_onnx_attr_find(n, "kernel_shape");
    cr_assert(ks && ks->n == 2 && ks->ints[0] == 3 && ks->ints[1] == 2);
    sq_onnx_free(g);
}

/* a TENSOR attribute (int64 [0] of ConstantOfShape) and a symbolic dimension */
Test(onnx_io, tensor_attributes_and_symbolic_dims)
{
    need_testdata();
    sq_onnx_graph *g = NULL;
    cr_assert_eq(sq_onnx_read(TESTDATA "/node/test_constantofshape_int_shape_zero/model.onnx", &g), SQ_OK, "%s",
                 sq_last_error());
    const sq_onnx_attr *v = sq_onnx_attr_find(&g->node[0], "value");
    cr_assert_not_null(v);
    cr_expect_eq(v->type, SQ_ONNX_ATTR_TENSOR);
    cr_assert_not_null(v->t);
    cr_expect_eq(v->t->dtype, SQ_ONNX_INT32);
    cr_assert_eq(v->t->numel, 1);
    cr_expect_eq(v->t->i[0], 0);
    sq_onnx_free(g);
    cr_assert_eq(sq_onnx_read(TESTDATA "/node/test_sequence_map_identity_1_sequence_1_tensor/model.onnx", &g), SQ_OK,
                 "%s", sq_last_error());
    int found = 0;
    for (int k = 0; k < g->ninput; k++)
        for (int d = 0; d < g->input[k].ndim; d++)
            if (g->input[k].dim_param[d]) {
                cr_expect_str_eq(g->input[k].dim_param[d], "M");
                cr_expect_eq(g->input[k].dims[d], -1);
                found++;
            }
    cr_expect_geq(found, 1);
    sq_onnx_free(g);
}

/* ---------------------------------------------------------------- refusals */

Test(onnx_io, crafted_model_reads)
{
    const int64_t dims[2] = { 2, 3 };
    pb t = tensor_raw(2, dims, 24), m = model_with_init(&t);
    sq_onnx_graph *g = NULL;
    cr_assert_eq(sq_onnx_read_mem(m.b, m.n, "crafted", &g), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(g->opset, 13);
    cr_assert_eq(g->ninit, 1);
    cr_assert_eq(g->init[0].numel, 6);
    for (int k = 0; k < 6; k++) cr_expect_eq(g->init[0].f[k], (float)k);
    cr_expect_str_eq(g->node[0].op, "Identity");
    sq_onnx_free(g);
}

Test(onnx_io, refuses_truncated_and_garbage_files)
{
    const int64_t dims[2] = { 2, 3 };
    pb t = tensor_raw(2, dims, 24), m = model_with_init(&t);
    for (size_t cut = 1; cut < m.n; cut++) {
        sq_onnx_graph *g = (sq_onnx_graph *)1;
        sq_status st = sq_onnx_read_mem(m.b, cut, "cut.onnx", &g);
        cr_expect_neq(st, SQ_OK, "cut at %zu of %zu read", cut, m.n);
        cr_expect_null(g);
        sqt_expect_error_has("cut.onnx");
        sqt_expect_error_printable();
    }
    /* the truncated file on disk, through sq_onnx_read */
    sqt_write_bytes(sqt_tpath("trunc.onnx"), m.b, m.n - 5, 0);
    sq_onnx_graph *g = NULL;
    cr_expect_eq(sq_onnx_read(sqt_tpath("trunc.onnx"), &g), SQ_EFORMAT);
    sqt_expect_error_has("trunc.onnx");
    sqt_expect_error_has("does not parse");
    /* garbage with an escape sequence in the name */
    const char junk[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff garbage";
    sqt_write_bytes(sqt_tpath("bad\x1b[31m.onnx"), junk, sizeof junk, 0);
    cr_expect_eq(sq_onnx_read(sqt_tpath("bad\x1b[31m.onnx"), &g), SQ_EFORMAT);
    sqt_expect_error_has("bad\\x1b[31m.onnx");
    sqt_expect_error_printable();
    /* empty, missing, a directory */
    sqt_write_bytes(sqt_tpath("empty.onnx"), "", 0, 0);
    cr_expect_eq(sq_onnx_read(sqt_tpath("empty.onnx"), &g), SQ_EFORMAT);
    sqt_expect_error_has("empty");
    cr_expect_eq(sq_onnx_read(sqt_tpath("missing.onnx"), &g), SQ_EIO);
    sqt_expect_error_has("missing.onnx");
    cr_expect_eq(sq_onnx_read(sqt_scratch_dir, &g), SQ_EIO);
    sqt_expect_error_has("not a regular file");
    cr_expect_null(g);
    /* a protobuf message without a graph */
    pb only = { .n = 0 };
    pb_int(&only, 1, 8);
    expect_refused(&only, "nograph.onnx", "no graph");
}

Test(onnx_io, refuses_external_data)
{
    const int64_t dims[1] = { 4 };
    pb t = { .n = 0 }, kv = { .n = 0 };
    pb_int(&t, 1, dims[0]);
    pb_int(&t, 2, SQ_ONNX_FLOAT);
    pb_str(&t, 8, "weight");
    pb_str(&kv, 1, "location");
    pb_str(&kv, 2, "weights.bin");
    pb_msg(&t, 13, &kv);
    pb_int(&t, 14, 1);   /* data_location EXTERNAL */
    pb m = model_with_init(&t);
    expect_refused(&m, "ext.onnx", "external");
    sqt_expect_error_has("'weight'");
    sqt_expect_error_has("re-export with the weights embedded");
    /* external_data entries alone are enough */
    pb t2 = { .n = 0 };
    pb_int(&t2, 1, 4);
    pb_int(&t2, 2, SQ_ONNX_FLOAT);
    pb_msg(&t2, 13, &kv);
    pb m2 = model_with_init(&t2);
    expect_refused(&m2, "ext2.onnx", "external");
}

Test(onnx_io, refuses_tensors_whose_data_does_not_match_dims)
{
    const int64_t dims[2] = { 2, 3 };
    pb t = tensor_raw(2, dims, 20), m = model_with_init(&t);   /* 5 floats for 6 */
    expect_refused(&m, "short.onnx", "raw_data holds 20 bytes but its dims need 24");
    sqt_expect_error_has("initializer 0");
    t = tensor_raw(2, dims, 28);
    m = model_with_init(&t);
    expect_refused(&m, "long.onnx", "raw_data holds 28 bytes");
    /* typed field with too few values */
    pb tf = { .n = 0 };
    pb_int(&tf, 1, 3);
    pb_int(&tf, 2, SQ_ONNX_FLOAT);
    float v[2] = { 1, 2 };
    pb_bytes(&tf, 4, v, sizeof v);
    m = model_with_init(&tf);
    expect_refused(&m, "typed.onnx", "float_data holds 2 values but its dims need 3");
    /* no data at all */
    pb tn = { .n = 0 };
    pb_int(&tn, 1, 3);
    pb_int(&tn, 2, SQ_ONNX_INT64);
    m = model_with_init(&tn);
    expect_refused(&m, "nodata.onnx", "int64_data holds 0 values");
    /* negative dim, too many dims, numel overflow, a type sqakd does not read */
    const int64_t neg[2] = { 2, -3 };
    t = tensor_raw(2, neg, 24);
    m = model_with_init(&t);
    expect_refused(&m, "neg.onnx", "negative dimension (-3 at axis 1)");
    const int64_t many[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
    t = tensor_raw(9, many, 4);
    m = model_with_init(&t);
    expect_refused(&m, "many.onnx", "9 dimensions");
    const int64_t huge[3] = { 1 << 20, 1 << 20, 1 << 20 };
    t = tensor_raw(3, huge, 4);
    m = model_with_init(&t);
    expect_refused(&m, "huge.onnx", "more than");
    pb ts = { .n = 0 };
    pb_int(&ts, 2, SQ_ONNX_STRING);
    pb_str(&ts, 6, "text");
    m = model_with_init(&ts);
    expect_refused(&m, "str.onnx", "STRING");
    /* the same checks through the single-tensor reader */
    t = tensor_raw(2, dims, 20);
    sq_onnx_tensor x;
    cr_expect_eq(sq_onnx_read_tensor_mem(t.b, t.n, "x.pb", &x), SQ_EFORMAT);
    sqt_expect_error_has("x.pb");
    sqt_expect_error_has("raw_data holds 20 bytes");
    cr_expect_null(x.f);
    cr_expect_eq(sq_onnx_read_tensor_mem("", 0, "empty.pb", &x), SQ_EFORMAT);
    sqt_expect_error_has("no data type");
}

Test(onnx_io, refuses_negative_graph_input_dims_and_deep_nesting)
{
    /* graph input x: tensor_type { elem_type 1, shape { dim { dim_value -2 } } } */
    pb dim = { .n = 0 }, shape = { .n = 0 }, tt = { .n = 0 }, type = { .n = 0 }, vi = { .n = 0 }, g = { .n = 0 },
       m = { .n = 0 };
    pb_int(&dim, 1, -2);
    pb_msg(&shape, 1, &dim);
    pb_int(&tt, 1, 1);
    pb_msg(&tt, 2, &shape);
    pb_msg(&type, 1, &tt);
    pb_str(&vi, 1, "x");
    pb_msg(&vi, 2, &type);
    pb_msg(&g, 11, &vi);
    pb_msg(&m, 7, &g);
    expect_refused(&m, "negin.onnx", "graph input 0 ('x') has a negative dimension");
    /* TypeProto chains nested 200 deep (sequence_type { elem_type { sequence_type ... } }) */
    static unsigned char deep[8192];
    size_t n = 0;
    const int levels = 200;
    /* each level: TypeProto field 4 (sequence_type), Sequence field 1 (elem_type); lengths are
       filled from the inside out */
    size_t len = 0;
    unsigned char buf[8192];
    for (int l = 0; l < levels; l++) {
        /* wrap: Sequence{ elem_type(1) = <cur> } then TypeProto{ sequence_type(4) = <that> } */
        unsigned char hdr[24];
        size_t h = 0, inner = len;
        for (int w = 0; w < 2; w++) {
            h = 0;
            hdr[h++] = w == 0 ? (1 << 3 | 2) : (4 << 3 | 2);
            size_t v = inner;
            do { hdr[h++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
            memmove(buf + h, buf, inner);
            memcpy(buf, hdr, h);
            inner += h;
        }
        len = inner;
        cr_assert_lt(len + 64, sizeof buf);
    }
    /* ValueInfoProto { name "x", type = <buf> } inside graph.input inside model.graph */
    pb v2 = { .n = 0 }, g2 = { .n = 0 };
    pb_str(&v2, 1, "x");
    pb_bytes(&v2, 2, buf, len);
    pb_msg(&g2, 11, &v2);
    n = 0;
    deep[n++] = 7 << 3 | 2;
    size_t v = g2.n;
    do { deep[n++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0)); v >>= 7; } while (v);
    memcpy(deep + n, g2.b, g2.n);
    n += g2.n;
    sq_onnx_graph *gr = (sq_onnx_graph *)1;
    cr_expect_eq(sq_onnx_read_mem(deep, n, "deep.onnx", &gr), SQ_EFORMAT);
    sqt_expect_error_has("nested more than");
    cr_expect_null(gr);
}

/* 20000 empty initializers: 2 bytes of input each, a ~200-byte struct each once unpacked */
Test(onnx_io, refuses_files_that_unpack_to_far_more_memory)
{
    size_t n = 20000, glen = 2 * n, len = 0;
    unsigned char *b = malloc(glen + 16);
    b[len++] = 7 << 3 | 2;   /* ModelProto.graph, length as a varint */
    for (size_t v = glen; ; v >>= 7) {
        b[len++] = (unsigned char)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        if (v <= 0x7f) break;
    }
    for (size_t k = 0; k < n; k++) b[len++] = 5 << 3 | 2, b[len++] = 0;   /* GraphProto.initializer {} */
    sq_onnx_graph *g = (sq_onnx_graph *)1;
    cr_expect_eq(sq_onnx_read_mem(b, len, "empties.onnx", &g), SQ_EFORMAT);
    sqt_expect_error_has("empties.onnx");
    sqt_expect_error_has("bytes of memory");
    cr_expect_null(g);
    free(b);
}

/* ---------------------------------------------------------------- writer */

static const float k_w[18] = { 0.5f, -1.25f, 2, 0, 1e-3f, -7, 3.5f, 0.125f, 9, -0.5f, 1.5f, 2.25f, -3, 4, 0.75f,
                               -0.25f, 6, 1 };

/* A valid opset-13 graph with every attribute kind the writer has (INT, INTS, FLOAT, FLOATS,
   STRING, TENSOR) and FLOAT, INT8, UINT8, INT32 and INT64 initializers:
   y = LeakyRelu(Conv(x, W, B)) * Reshape(DQ(q8) + DQ(qu8) + Constant + Constant(floats), shp) */
static sq_onnx_graph *sample_graph(void)
{
    sq_onnx_graph *g = sq_onnx_new("sample", 13);
    const int64_t xd[4] = { -1, 1, 5, 5 }, wd[4] = { 2, 1, 3, 3 }, bd[1] = { 2 }, two[1] = { 2 };
    const int64_t yd[4] = { -1, 2, 5, 5 };
    sq_onnx_add_input(g, "x", SQ_ONNX_FLOAT, 4, xd);
    cr_assert_not_null(sq_onnx_add_init(g, "W", SQ_ONNX_FLOAT, 4, wd, k_w));
    const float b[2] = { 0.25f, -0.75f };
    cr_assert_not_null(sq_onnx_add_init(g, "B", SQ_ONNX_FLOAT, 1, bd, b));
    const int64_t q8[2] = { -128, 127 }, qu8[2] = { 0, 255 }, zp8 = -3, zpu8 = 200, shp[4] = { 1, 2, 1, 1 };
    const int64_t i32[3] = { -2147483647 - 1, 0, 2147483647 };
    const float sc = 0.5f;
    cr_assert_not_null(sq_onnx_add_init(g, "q8", SQ_ONNX_INT8, 1, two, q8));
    cr_assert_not_null(sq_onnx_add_init(g, "qu8", SQ_ONNX_UINT8, 1, two, qu8));
    cr_assert_not_null(sq_onnx_add_init(g, "s", SQ_ONNX_FLOAT, 0, NULL, &sc));
    cr_assert_not_null(sq_onnx_add_init(g, "zp8", SQ_ONNX_INT8, 0, NULL, &zp8));
    cr_assert_not_null(sq_onnx_add_init(g, "zpu8", SQ_ONNX_UINT8, 0, NULL, &zpu8));
    const int64_t four[1] = { 4 }, three[1] = { 3 };
    cr_assert_not_null(sq_onnx_add_init(g, "shp", SQ_ONNX_INT64, 1, four, shp));
    cr_assert_not_null(sq_onnx_add_init(g, "unused_i32", SQ_ONNX_INT32, 1, three, i32));

    const char *cin[3] = { "x", "W", "B" }, *cout[1] = { "c" };
    sq_onnx_node *n = sq_onnx_add_node(g, "Conv", "conv0", 3, cin, 1, cout);
    cr_assert_not_null(n);
    const int64_t ks[2] = { 3, 3 }, pads[4] = { 1, 1, 1, 1 }, st[2] = { 1, 1 };
    sq_onnx_attr_ints(n, "kernel_shape", 2, ks);
    sq_onnx_attr_ints(n, "pads", 4, pads);
    sq_onnx_attr_ints(n, "strides", 2, st);
    sq_onnx_attr_int(n, "group", 7);
    sq_onnx_attr_int(n, "group", 1);   /* replaces */
    sq_onnx_attr_string(n, "auto_pad", "NOTSET");
    const char *rin[1] = { "c" }, *rout[1] = { "r" };
    n = sq_onnx_add_node(g, "LeakyRelu", "", 1, rin, 1, rout);
    sq_onnx_attr_float(n, "alpha", 0.1f);
    const char *d8in[3] = { "q8", "s", "zp8" }, *d8out[1] = { "dq8" };
    sq_onnx_add_node(g, "DequantizeLinear", "dq8", 3, d8in, 1, d8out);
    const char *du8in[3] = { "qu8", "s", "zpu8" }, *du8out[1] = { "dqu8" };
    sq_onnx_add_node(g, "DequantizeLinear", "dqu8", 3, du8in, 1, du8out);
    const char *kout[1] = { "k" }, *kfout[1] = { "kf" };
    n = sq_onnx_add_node(g, "Constant", "k", 0, NULL, 1, kout);
    const float kv[2] = { 1.5f, -2.5f };
    cr_assert_eq(sq_onnx_attr_tensor(n, "value", SQ_ONNX_FLOAT, 1, two, kv), SQ_OK);
    n = sq_onnx_add_node(g, "Constant", "kf", 0, NULL, 1, kfout);
    const float kfv[2] = { 0.125f, 3 };
    sq_onnx_attr_floats(n, "value_floats", 2, kfv);
    const char *a1in[2] = { "dq8", "dqu8" }, *a1out[1] = { "a1" }, *a2in[2] = { "a1", "k" }, *a2out[1] = { "a2" };
    const char *a3in[2] = { "a2", "kf" }, *a3out[1] = { "a3" }, *rsin[2] = { "a3", "shp" }, *rsout[1] = { "a4" };
    const char *min[2] = { "r", "a4" }, *mout[1] = { "y" };
    sq_onnx_add_node(g, "Add", "", 2, a1in, 1, a1out);
    sq_onnx_add_node(g, "Add", "", 2, a2in, 1, a2out);
    sq_onnx_add_node(g, "Add", "", 2, a3in, 1, a3out);
    sq_onnx_add_node(g, "Reshape", "", 2, rsin, 1, rsout);
    sq_onnx_add_node(g, "Mul", "", 2, min, 1, mout);
    sq_onnx_add_output(g, "y", SQ_ONNX_FLOAT, 4, yd);
    return g;
}

static void expect_sample(const sq_onnx_graph *g)
{
    cr_expect_eq(g->ir_version, 8);
    cr_expect_eq(g->opset, 13);
    cr_expect_str_eq(g->producer, "sqakd");
    cr_expect_str_eq(g->name, "sample");
    cr_assert_eq(g->nnode, 11);
    cr_assert_eq(g->ninit, 9);
    cr_assert_eq(g->ninput, 1);
    cr_assert_eq(g->noutput, 1);
    const sq_onnx_value *x = &g->input[0];
    cr_expect_str_eq(x->name, "x");
    cr_expect_eq(x->dtype, SQ_ONNX_FLOAT);
    cr_assert_eq(x->ndim, 4);
    cr_expect_eq(x->dims[0], -1);
    cr_assert_not_null(x->dim_param[0]);
    cr_expect_str_eq(x->dim_param[0], "N");
    cr_expect_eq(x->dims[3], 5);
    cr_expect_null(x->dim_param[3]);
    cr_expect_str_eq(g->output[0].name, "y");
    cr_expect_eq(g->output[0].dims[1], 2);

    const sq_onnx_node *c = &g->node[0];
    cr_expect_str_eq(c->op, "Conv");
    cr_expect_str_eq(c->name, "conv0");
    cr_assert_eq(c->nin, 3);
    cr_expect_str_eq(c->in[2], "B");
    cr_assert_eq(c->nattr, 5);
    const sq_onnx_attr *a = sq_onnx_attr_find(c, "pads");
    cr_assert(a && a->type == SQ_ONNX_ATTR_INTS && a->n == 4 && a->ints[0] == 1 && a->ints[3] == 1);
    a = sq_onnx_attr_find(c, "group");
    cr_assert(a && a->type == SQ_ONNX_ATTR_INT && a->i == 1);
    a = sq_onnx_attr_find(c, "auto_pad");
    cr_assert(a && a->type == SQ_ONNX_ATTR_STRING);
    cr_expect_str_eq(a->s, "NOTSET");
    a = sq_onnx_attr_find(&g->node[1], "alpha");
    cr_assert(a && a->type == SQ_ONNX_ATTR_FLOAT);
    cr_expect_eq(a->f, 0.1f);
    cr_expect_str_eq(g->node[1].name, "");
    a = sq_onnx_attr_find(&g->node[4], "value");
    cr_assert(a && a->type == SQ_ONNX_ATTR_TENSOR && a->t);
    cr_expect_eq(a->t->dtype, SQ_ONNX_FLOAT);
    cr_assert_eq(a->t->numel, 2);
    cr_expect(a->t->f[0] == 1.5f && a->t->f[1] == -2.5f);
    a = sq_onnx_attr_find(&g->node[5], "value_floats");
    cr_assert(a && a->type == SQ_ONNX_ATTR_FLOATS && a->n == 2);
    cr_expect(a->floats[0] == 0.125f && a->floats[1] == 3);

    const sq_onnx_tensor *t = sq_onnx_init_find(g, "W");
    cr_assert(t && t->dtype == SQ_ONNX_FLOAT && t->ndim == 4 && t->numel == 18 && t->f);
    for (int k = 0; k < 18; k++) cr_expect_eq(t->f[k], k_w[k], "W[%d]", k);
    t = sq_onnx_init_find(g, "q8");
    cr_assert(t && t->dtype == SQ_ONNX_INT8 && t->numel == 2 && t->i);
    cr_expect(t->i[0] == -128 && t->i[1] == 127);
    t = sq_onnx_init_find(g, "qu8");
    cr_assert(t && t->dtype == SQ_ONNX_UINT8 && t->i);
    cr_expect(t->i[0] == 0 && t->i[1] == 255);
    t = sq_onnx_init_find(g, "zp8");
    cr_assert(t && t->ndim == 0 && t->numel == 1 && t->i[0] == -3);
    t = sq_onnx_init_find(g, "zpu8");
    cr_assert(t && t->i[0] == 200);
    t = sq_onnx_init_find(g, "s");
    cr_assert(t && t->ndim == 0 && t->f && t->f[0] == 0.5f);
    t = sq_onnx_init_find(g, "shp");
    cr_assert(t && t->dtype == SQ_ONNX_INT64 && t->numel == 4 && t->i[1] == 2);
    t = sq_onnx_init_find(g, "unused_i32");
    cr_assert(t && t->dtype == SQ_ONNX_INT32 && t->i[0] == INT32_MIN && t->i[2] == INT32_MAX);
}

Test(onnx_io, write_read_round_trip)
{
    sq_onnx_graph *g = sample_graph();
    const char *path = sqt_tpath("sample.onnx");
    cr_assert_eq(sq_onnx_write(g, path), SQ_OK, "%s", sq_last_error());
    sq_onnx_graph *r = NULL;
    cr_assert_eq(sq_onnx_read(path, &r), SQ_OK, "%s", sq_last_error());
    expect_sample(r);
    /* encoding what was read gives the same bytes */
    void *b1, *b2;
    size_t n1, n2;
    cr_assert_eq(sq_onnx_encode(g, &b1, &n1), SQ_OK);
    cr_assert_eq(sq_onnx_encode(r, &b2, &n2), SQ_OK, "%s", sq_last_error());
    size_t nf;
    unsigned char *file = sqt_slurp(path, &nf);
    cr_expect_eq(n1, nf);
    cr_expect_eq(memcmp(b1, file, nf), 0);
    cr_expect_eq(n1, n2);
    cr_expect_eq(memcmp(b1, b2, n1), 0, "re-encoding a read graph changed it");
    free(file);
    free(b1);
    free(b2);
    sq_onnx_free(r);
    sq_onnx_free(g);
    /* nothing but the file is left (the atomic writer's temporary is gone) */
    cr_expect_eq(sqt_count_entries(sqt_scratch_dir, NULL, 0), 1);
}

Test(onnx_io, written_model_passes_the_onnx_checker)
{
    if (!have_python("onnx, numpy")) cr_skip_test("python3-onnx is not installed: the onnx checker cannot run");
    sq_onnx_graph *g = sample_graph();
    const char *path = sqt_tpath("checked.onnx");
    cr_assert_eq(sq_onnx_write(g, path), SQ_OK, "%s", sq_last_error());
    sq_onnx_free(g);
    /* the checker with shape inference, then the values as onnx.numpy_helper reads them */
    char cmd[2048], out[4096] = "";
    snprintf(cmd, sizeof cmd,
             PYTHON " -c \"import onnx, sys; from onnx import numpy_helper as nh\n"
             "m = onnx.load(sys.argv[1]); onnx.checker.check_model(m, full_check=True)\n"
             "i = {t.name: nh.to_array(t) for t in m.graph.initializer}\n"
             "print(m.ir_version, m.opset_import[0].version, m.producer_name, i['W'].shape, '%%.9g' %% i['W'].astype('float64').sum(),"
             " i['q8'].dtype, i['q8'].tolist(), i['qu8'].dtype, i['qu8'].tolist(), int(i['zp8']),"
             " m.graph.input[0].type.tensor_type.shape.dim[0].dim_param,"
             " [a.name for a in m.graph.node[0].attribute])\" '%s' 2>&1",
             path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int rc = pclose(p);
    cr_assert_eq(rc, 0, "onnx.checker refused the file:\n%s", out);
    double s = 0;
    for (int k = 0; k < 18; k++) s += k_w[k];
    char want[1024];
    snprintf(want, sizeof want,
             "8 13 sqakd (2, 1, 3, 3) %.9g int8 [-128, 127] uint8 [0, 255] -3 N ['kernel_shape', 'pads',"
             " 'strides', 'group', 'auto_pad']\n", s);
    cr_expect_str_eq(out, want);
}

Test(onnx_io, writer_refuses_bad_arguments)
{
    sq_onnx_graph *g = sq_onnx_new("bad", 13);
    const int64_t d1[1] = { 2 }, dn[1] = { -2 };
    const int64_t big[2] = { 1, 300 };
    cr_expect_null(sq_onnx_add_init(g, "u8", SQ_ONNX_UINT8, 1, d1, big));
    sqt_expect_error_has("does not fit UINT8");
    const float f[2] = { 1, 2 };
    cr_expect_null(sq_onnx_add_init(g, "neg", SQ_ONNX_FLOAT, 1, dn, f));
    sqt_expect_error_has("negative");
    cr_expect_null(sq_onnx_add_init(g, "str", SQ_ONNX_STRING, 1, d1, f));
    cr_expect_null(sq_onnx_add_init(g, "nodata", SQ_ONNX_FLOAT, 1, d1, NULL));
    cr_expect_null(sq_onnx_add_node(g, "", "x", 0, NULL, 0, NULL));
    cr_expect_eq(g->ninit, 0);
    cr_expect_eq(g->nnode, 0);
    /* an attribute kind the writer cannot encode */
    const char *o[1] = { "y" };
    sq_onnx_node *n = sq_onnx_add_node(g, "Constant", "c", 0, NULL, 1, o);
    cr_assert_not_null(n);
    sq_onnx_attr_int(n, "v", 1);
    n->attr[0].type = SQ_ONNX_ATTR_OTHER;
    void *buf = (void *)1;
    size_t len = 1;
    cr_expect_eq(sq_onnx_encode(g, &buf, &len), SQ_EARG);
    cr_expect_null(buf);
    sqt_expect_error_has("attribute 'v' of node 0 ('c', Constant)");
    cr_expect_eq(sq_onnx_write(g, sqt_tpath("bad.onnx")), SQ_EARG);
    cr_expect_eq(access(sqt_tpath("bad.onnx"), F_OK), -1);
    g->opset = 0;
    n->attr[0].type = SQ_ONNX_ATTR_INT;
    cr_expect_eq(sq_onnx_encode(g, &buf, &len), SQ_EARG);
    sqt_expect_error_has("no opset");
    sq_onnx_free(g);
    /* a directory that does not exist: the atomic writer's error names the path */
    g = sq_onnx_new("ok", 13);
    cr_expect_eq(sq_onnx_write(g, sqt_tpath("no/such/dir/m.onnx")), SQ_EIO);
    sqt_expect_error_has("no/such/dir/m.onnx");
    sq_onnx_free(g);
}

/* ---------------------------------------------------------------- .npy */

/* runs a python snippet (argv[1] = path); 0 on success */
static int run_python(const char *code, const char *path)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, PYTHON " -c \"%s\" '%s' 2>&1", code, path);
    return system(cmd);
}

Test(onnx_io, npy_round_trip_and_numpy_layout)
{
    const int64_t dims[3] = { 2, 3, 4 };
    float v[24];
    for (int k = 0; k < 24; k++) v[k] = (float)k * 0.5f - 3;
    const char *path = sqt_tpath("a.npy");
    cr_assert_eq(sq_npy_write(path, v, 3, dims), SQ_OK, "%s", sq_last_error());
    size_t n;
    unsigned char *b = sqt_slurp(path, &n);
    cr_assert_eq(n, 128 + 24 * 4);   /* header padded to 64 bytes, as NumPy 1.24 writes */
    cr_expect_eq(memcmp(b, "\x93NUMPY\x01\x00\x76\x00{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4), }", 70), 0);
    cr_expect_eq(b[127], '\n');
    free(b);
    float *r = NULL;
    int nd = -1;
    int64_t rd[SQ_ONNX_MAX_DIMS];
    cr_assert_eq(sq_npy_read(path, &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_assert_eq(nd, 3);
    for (int d = 0; d < 3; d++) cr_expect_eq(rd[d], dims[d]);
    for (int k = 0; k < 24; k++) cr_expect_eq(r[k], v[k]);
    free(r);
    /* a scalar () and a vector (n,) */
    const float one = 7.25f;
    cr_assert_eq(sq_npy_write(sqt_tpath("s.npy"), &one, 0, NULL), SQ_OK);
    cr_assert_eq(sq_npy_read(sqt_tpath("s.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_expect_eq(nd, 0);
    cr_expect_eq(r[0], 7.25f);
    free(r);
    const int64_t five[1] = { 5 };
    cr_assert_eq(sq_npy_write(sqt_tpath("v.npy"), v, 1, five), SQ_OK);
    cr_assert_eq(sq_npy_read(sqt_tpath("v.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_expect(nd == 1 && rd[0] == 5 && r[4] == v[4]);
    free(r);
    if (!have_python("numpy")) cr_skip_test("python3-numpy is not installed: NumPy's side not checked");
    /* NumPy reads what was written, and writes the same bytes for the same array */
    cr_expect_eq(run_python("import numpy as np, sys; a = np.load(sys.argv[1]);"
                            " assert a.dtype == np.float32 and a.shape == (2, 3, 4), a.shape;"
                            " assert (a.ravel() == np.arange(24, dtype=np.float32) * 0.5 - 3).all();"
                            " np.save(sys.argv[1] + '.np.npy', a)", path), 0);
    char np_path[1024];
    snprintf(np_path, sizeof np_path, "%s.np.npy", path);
    size_t n2;
    b = sqt_slurp(path, &n);
    unsigned char *b2 = sqt_slurp(np_path, &n2);
    cr_expect_eq(n, n2);
    cr_expect_eq(memcmp(b, b2, n), 0, "sq_npy_write and np.save differ");
    free(b);
    free(b2);
}

Test(onnx_io, npy_reads_what_numpy_writes)
{
    if (!have_python("numpy")) cr_skip_test("python3-numpy is not installed");
    const char *dir = sqt_scratch_dir;
    cr_assert_eq(run_python("import numpy as np, sys; d = sys.argv[1];"
                            " np.save(d + '/f8.npy', np.linspace(-1, 1, 15).reshape(3, 5));"
                            " np.save(d + '/f4.npy', np.arange(6, dtype=np.float32).reshape(1, 2, 3) / 8);"
                            " np.save(d + '/sc.npy', np.float32(2.5));"
                            " np.save(d + '/empty.npy', np.zeros((0, 3), np.float32));"
                            " np.lib.format.write_array(open(d + '/v2.npy', 'wb'), np.ones(4, np.float32), version=(2, 0));"
                            " np.lib.format.write_array(open(d + '/v3.npy', 'wb'), np.ones(2, np.float32), version=(3, 0));"
                            " np.save(d + '/be.npy', np.ones(3, '>f4'));"
                            " np.save(d + '/fo.npy', np.asfortranarray(np.ones((2, 3), np.float32)));"
                            " np.save(d + '/i4.npy', np.ones(3, np.int32))", dir), 0);
    float *r;
    int nd;
    int64_t rd[SQ_ONNX_MAX_DIMS];
    cr_assert_eq(sq_npy_read(sqt_tpath("f8.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_assert(nd == 2 && rd[0] == 3 && rd[1] == 5);
    for (int k = 0; k < 15; k++) cr_expect_eq(r[k], (float)(-1 + k * (2.0 / 14)), "f8[%d] = %g", k, r[k]);
    free(r);
    cr_assert_eq(sq_npy_read(sqt_tpath("f4.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_assert(nd == 3 && rd[0] == 1 && rd[1] == 2 && rd[2] == 3);
    for (int k = 0; k < 6; k++) cr_expect_eq(r[k], k / 8.0f);
    free(r);
    cr_assert_eq(sq_npy_read(sqt_tpath("sc.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_expect(nd == 0 && r[0] == 2.5f);
    free(r);
    cr_assert_eq(sq_npy_read(sqt_tpath("empty.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_expect(nd == 2 && rd[0] == 0 && rd[1] == 3 && r);
    free(r);
    cr_assert_eq(sq_npy_read(sqt_tpath("v2.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_expect(nd == 1 && rd[0] == 4 && r[3] == 1);
    free(r);
    cr_assert_eq(sq_npy_read(sqt_tpath("v3.npy"), &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_expect(nd == 1 && rd[0] == 2 && r[1] == 1);
    free(r);
    r = (float *)1;
    cr_expect_eq(sq_npy_read(sqt_tpath("be.npy"), &r, &nd, rd), SQ_EFORMAT);
    cr_expect_null(r);
    sqt_expect_error_has("be.npy");
    sqt_expect_error_has("big-endian");
    cr_expect_eq(sq_npy_read(sqt_tpath("fo.npy"), &r, &nd, rd), SQ_EFORMAT);
    sqt_expect_error_has("Fortran");
    cr_expect_eq(sq_npy_read(sqt_tpath("i4.npy"), &r, &nd, rd), SQ_EFORMAT);
    sqt_expect_error_has("'<i4'");
}

/* a v1.0 file with header text h (padded to 64 bytes) and nd data bytes */
static size_t npy_craft(unsigned char *b, const char *h, size_t nd)
{
    size_t hl = strlen(h), total = (10 + hl + 1 + 63) & ~(size_t)63;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)((total - 10) & 0xff);
    b[9] = (unsigned char)((total - 10) >> 8);
    memcpy(b + 10, h, hl);
    memset(b + 10 + hl, ' ', total - 10 - hl - 1);
    b[total - 1] = '\n';
    memset(b + total, 0, nd);
    return total + nd;
}

Test(onnx_io, npy_refuses_bad_headers_and_short_data)
{
    static unsigned char b[1024];
    float *r = (float *)1;
    int nd;
    int64_t rd[SQ_ONNX_MAX_DIMS];
    size_t n = npy_craft(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24);
    cr_assert_eq(sq_npy_read_mem(b, n, "ok", &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    free(r);
    /* the same with double quotes and no trailing comma, keys in another order */
    n = npy_craft(b, "{\"shape\": (6,), \"fortran_order\": False, \"descr\": \"<f4\"}", 24);
    cr_assert_eq(sq_npy_read_mem(b, n, "ok2", &r, &nd, rd), SQ_OK, "%s", sq_last_error());
    cr_expect(nd == 1 && rd[0] == 6);
    free(r);
    static const struct { const char *h; size_t nd; const char *err; } bad[] = {
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20, "data is 20 bytes but the header's shape needs 24" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28, "data is 28 bytes" },
        { "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", 24, "big-endian" },
        { "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24, "Fortran" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (6), }", 24, "bad or repeated value for 'shape'" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (-6,), }", 24, "'shape'" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}", 24, "unknown key 'x'" },
        { "{'descr': '<f4', 'shape': (2, 3), }", 24, "lacks 'fortran_order'" },
        { "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 24, "repeated" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), } x", 24, "after the dict" },
        { "{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }", 24, "'fortran_order'" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", 4, "more than 8" },
        { "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", 0, "more than" },
        { "['descr']", 0, "not a dict" },
        { "{'descr': '<f\x1b[2J', 'fortran_order': False, 'shape': (), }", 4, "bad or repeated value for 'descr'" },
        { "{'descr': '<f\xc2\x9b" "2J', 'fortran_order': False, 'shape': (), }", 4, "data type '<f\\x" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        n = npy_craft(b, bad[k].h, bad[k].nd);
        r = (float *)1;
        cr_expect_eq(sq_npy_read_mem(b, n, "crafted.npy", &r, &nd, rd), SQ_EFORMAT, "case %zu read", k);
        cr_expect_null(r);
        sqt_expect_error_has("crafted.npy");
        sqt_expect_error_has(bad[k].err);
        sqt_expect_error_printable();
    }
    /* magic, version, truncation, and the file reader's own checks */
    n = npy_craft(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8);
    cr_expect_eq(sq_npy_read_mem(b, 40, "cut.npy", &r, &nd, rd), SQ_EFORMAT);
    sqt_expect_error_has("truncated .npy header");
    b[6] = 4;
    cr_expect_eq(sq_npy_read_mem(b, n, "v4.npy", &r, &nd, rd), SQ_EFORMAT);
    sqt_expect_error_has("version 4.0");
    b[6] = 1;
    b[0] = 'x';
    cr_expect_eq(sq_npy_read_mem(b, n, "magic.npy", &r, &nd, rd), SQ_EFORMAT);
    sqt_expect_error_has("not a .npy file");
    b[0] = 0x93;
    sqt_write_bytes(sqt_tpath("short.npy"), b, n - 3, 0);
    cr_expect_eq(sq_npy_read(sqt_tpath("short.npy"), &r, &nd, rd), SQ_EFORMAT);
    sqt_expect_error_has("short.npy");
    sqt_expect_error_has("data is 5 bytes but the header's shape needs 8");
    sqt_write_bytes(sqt_tpath("tiny.npy"), b, 5, 0);
    cr_expect_eq(sq_npy_read(sqt_tpath("tiny.npy"), &r, &nd, rd), SQ_EFORMAT);
    sqt_expect_error_has("not a .npy file");
    cr_expect_eq(sq_npy_read(sqt_tpath("none.npy"), &r, &nd, rd), SQ_EIO);
    sqt_expect_error_has("none.npy");
    const int64_t neg[1] = { -1 };
    cr_expect_eq(sq_npy_write(sqt_tpath("neg.npy"), (const float *)b, 1, neg), SQ_EARG);
    cr_expect_eq(access(sqt_tpath("neg.npy"), F_OK), -1);
}
