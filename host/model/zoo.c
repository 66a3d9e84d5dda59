/* zoo.c: built-in architectures (method.md section 5) with PyTorch state_dict names of the
   reference models, plus the small CNN used by the Fashion-MNIST demo. */
#include "model_internal.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int conv_bn_relu(sq_model *m, int x, const char *conv, const char *bn, int cout, int bias)
{
    x = sq_b_conv(m, x, conv, cout, 3, 1, 1, 1, bias);
    x = sq_b_bn(m, x, bn);
    return sq_b_act(m, x, SQ_ACT_RELU);
}

/* smallcnn: conv(32)-bn-relu-pool2-conv(64)-bn-relu-pool2-conv(64)-bn-relu-flatten-fc */
static sq_status build_smallcnn(sq_model *m)
{
    if (m->in_h % 4 || m->in_w % 4) {
        sq_set_error("smallcnn needs input height and width divisible by 4 (got %dx%d)", m->in_h, m->in_w);
        return SQ_EARG;
    }
    int x = sq_b_input(m, m->in_c, m->in_h, m->in_w);
    x = conv_bn_relu(m, x, "conv1", "bn1", 32, 0);
    m->nodes[x - 2].first_or_last = 1;
    x = sq_b_pool(m, x, SQ_POOL_MAX, 2, 2, 0);
    x = conv_bn_relu(m, x, "conv2", "bn2", 64, 0);
    m->nodes[x - 2].quantizable = 1;
    x = sq_b_pool(m, x, SQ_POOL_MAX, 2, 2, 0);
    x = conv_bn_relu(m, x, "conv3", "bn3", 64, 0);
    m->nodes[x - 2].quantizable = 1;
    x = sq_b_flatten(m, x);
    x = sq_b_linear(m, x, "fc", m->classes, 1);
    m->nodes[x].first_or_last = 1;
    return SQ_OK;
}

static sq_status build_resnet(sq_model *m, int nblocks)
{
    int x = sq_b_input(m, m->in_c, m->in_h, m->in_w);
    x = sq_b_conv(m, x, "conv1", 16, 3, 1, 1, 1, 0);
    m->nodes[x].first_or_last = 1;
    x = sq_b_bn(m, x, "bn1");
    x = sq_b_act(m, x, SQ_ACT_RELU);
    int planes_in = 16;
    for (int s = 0; s < 3; s++) {
        int planes = 16 << s;
        for (int b = 0; b < nblocks; b++) {
            int stride = (s > 0 && b == 0) ? 2 : 1;
            char pre[48], nm[80];
            snprintf(pre, sizeof pre, "layer%d.%d", s + 1, b);
            int in = x;
            snprintf(nm, sizeof nm, "%s.conv1", pre);
            int y = sq_b_conv(m, in, nm, planes, 3, stride, 1, 1, 0);
            m->nodes[y].quantizable = 1;
            snprintf(nm, sizeof nm, "%s.bn1", pre);
            y = sq_b_bn(m, y, nm);
            y = sq_b_act(m, y, SQ_ACT_RELU);
            snprintf(nm, sizeof nm, "%s.conv2", pre);
            y = sq_b_conv(m, y, nm, planes, 3, 1, 1, 1, 0);
            m->nodes[y].quantizable = 1;
            snprintf(nm, sizeof nm, "%s.bn2", pre);
            y = sq_b_bn(m, y, nm);
            int sc = in;
            if (stride != 1 || planes_in != planes) sc = sq_b_shortcut_a(m, in, planes);
            y = sq_b_add(m, y, sc);
            x = sq_b_act(m, y, SQ_ACT_RELU);
            planes_in = planes;
        }
    }
    x = sq_b_gap(m, x);
    x = sq_b_bn(m, x, "bn2");
    x = sq_b_linear(m, x, "linear", m->classes, 1);
    m->nodes[x].first_or_last = 1;
    return SQ_OK;
}

static sq_status build_vgg(sq_model *m, int units)
{
    static const int widths[5] = {64, 128, 256, 512, 512};
    if (m->in_h < 8 || m->in_w < 8) {
        sq_set_error("vgg needs inputs of at least 8x8 (got %dx%d)", m->in_h, m->in_w);
        return SQ_EARG;
    }
    int x = sq_b_input(m, m->in_c, m->in_h, m->in_w);
    for (int s = 0; s < 5; s++) {
        for (int u = 0; u < units; u++) {
            char conv[48], bn[48];
            snprintf(conv, sizeof conv, "layer%d.%d.conv2d", s, u);
            snprintf(bn, sizeof bn, "layer%d.%d.bn", s, u);
            x = conv_bn_relu(m, x, conv, bn, widths[s], 1);
            sq_node *cv = &m->nodes[x - 2];
            if (s == 0) cv->first_or_last = (u == 0); else cv->quantizable = 1;
        }
        if (s <= 2 || (s == 3 && m->in_h >= 64)) x = sq_b_pool(m, x, SQ_POOL_MAX, 2, 2, 0);
    }
    x = sq_b_gap(m, x);
    x = sq_b_linear(m, x, "classifier", m->classes, 1);
    m->nodes[x].first_or_last = 1;
    return SQ_OK;
}

typedef struct { const char *name, *desc; } zoo_entry;
static const zoo_entry g_zoo[] = {
    {"smallcnn", "3 conv (32-64-64) + fc, for 28x28 inputs: the Fashion-MNIST demo model"},
    {"resnet20", "CIFAR ResNet-20 (3x3 BasicBlocks, option-A shortcuts, BN1d head)"},
    {"resnet32", "CIFAR ResNet-32"},
    {"vgg8", "CIFAR VGG-8 with BN, no hidden FC"},
    {"vgg13", "CIFAR VGG-13 with BN, no hidden FC"},
};

int sq_model_zoo_count(void) { return (int)(sizeof g_zoo / sizeof g_zoo[0]); }
const char *sq_model_zoo_name(int i) { return g_zoo[i].name; }
const char *sq_model_zoo_desc(int i) { return g_zoo[i].desc; }

sq_status sq_model_create(const char *arch, int c, int h, int w, int classes, sq_model **out)
{
    *out = NULL;
    if (c <= 0 || h <= 0 || w <= 0 || classes < 2 || c > 4096 || h > 4096 || w > 4096) {
        sq_set_error("bad model input shape %dx%dx%d or class count %d", c, h, w, classes);
        return SQ_EARG;
    }
    sq_model *m = sq_xcalloc(1, sizeof *m);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->in_c = c; m->in_h = h; m->in_w = w; m->classes = classes;
    sq_status st;
    if (!strcmp(arch, "smallcnn")) st = build_smallcnn(m);
    else if (!strcmp(arch, "resnet20")) st = build_resnet(m, 3);
    else if (!strcmp(arch, "resnet32")) st = build_resnet(m, 5);
    else if (!strcmp(arch, "vgg8")) st = build_vgg(m, 1);
    else if (!strcmp(arch, "vgg13")) st = build_vgg(m, 2);
    else {
        sq_set_error("unknown model '%s' (run 'sqakd models' for the list)", arch);
        st = SQ_EARG;
    }
    if (st != SQ_OK) { sq_model_free(m); return st; }
    *out = m;
    return SQ_OK;
}

size_t sq_model_param_count(const sq_model *m)
{
    size_t n = 0;
    for (int i = 0; i < m->nparams; i++)
        if (m->params[i].kind == SQ_PT_TRAIN) n += m->params[i].numel;
    return n;
}
