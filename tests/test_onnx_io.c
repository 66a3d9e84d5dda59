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
