#!/usr/bin/python3
"""torch_models.py: PyTorch twins of the sqakd model zoo (method.md section 5), used as the oracle
for golden fixtures (tools/gen_golden.py) and for the PyTorch side of benchmarks
(tools/bench_torch.py).

The state_dict names and shapes are exactly those of our C checkpoints (and of the SQAKD reference
code), e.g. "layer1.0.conv1.weight", "bn2.running_var", "layer2.0.conv2d.bias",
"layer1.0.conv1.uW".

  build_model(arch, in_ch, classes, h, w)   FP model: smallcnn, resnet20, resnet32, vgg8, vgg13
  quantize_model(model, arch, wbits, abits, delta_w, delta_a)
                                            swaps the convs method.md 3.6 quantizes for QConv
                                            ("ewgs" interval quantizer, method.md 3.2)
  quant_init(model, x)                      one train-mode forward that initialises every QConv
  split_params(model)                       (model params, quantizer params) for the two Adams

Run `python3 tools/torch_models.py --count` to print parameter counts and check the four the
method fixes (ResNet-20/10: 269,850; ResNet-32/100: 470,132; VGG-8/10: 3,918,858;
VGG-13/100: 9,462,180)."""
import argparse
import math
import re
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

ARCHS = ("smallcnn", "resnet20", "resnet32", "vgg8", "vgg13")


# ---------------------------------------------------------------- quantizer (method.md 3.1-3.2)
class Discretize(torch.autograd.Function):
    """q = round_half_even(c (L-1)) / (L-1); backward g_c = g_q + delta |g_q| (c - q)
    (delta = 0 is the plain straight-through estimator). delta: float or 0-d tensor (a tensor on
    the input's device keeps the GPU free of host syncs)."""

    @staticmethod
    def forward(ctx, c, levels, delta):
        q = torch.round(c * (levels - 1)) / (levels - 1)
        ctx.save_for_backward(c - q)
        ctx.delta = delta.detach() if torch.is_tensor(delta) else float(delta)
        return q

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved_tensors
        return g + ctx.delta * g.abs() * diff, None, None


def ewgs_weight(w, l, u, bits, delta):
    """W_q = 2 q - 1 with c = clip((w - l)/(u - l), 0, 1) (levels in [-1, 1])."""
    c = ((w - l) / (u - l)).clamp(0, 1)
    return 2 * Discretize.apply(c, 2 ** bits, delta) - 1


def ewgs_act(x, l, u, bits, delta):
    """x_q = q with c = clip((x - l)/(u - l), 0, 1) (levels in [0, 1])."""
    c = ((x - l) / (u - l)).clamp(0, 1)
    return Discretize.apply(c, 2 ** bits, delta)


class QConv(nn.Conv2d):
    """Conv with quantized weight and input: y = |s| (conv(x_q, W_q) + bias).
    Parameters lW, uW, lA, uA, output_scale (scalars); delta is a non-persistent buffer (it is not
    part of the checkpoint, as in our C trainer)."""

    def __init__(self, in_ch, out_ch, k, stride=1, padding=0, groups=1, bias=True, wbits=4,
                 abits=4, delta_w=0.0, delta_a=0.0):
        super().__init__(in_ch, out_ch, k, stride=stride, padding=padding, groups=groups,
                         bias=bias)
        self.wbits, self.abits = wbits, abits
        self.lW = nn.Parameter(torch.tensor(0.0))
        self.uW = nn.Parameter(torch.tensor(0.0))
        self.lA = nn.Parameter(torch.tensor(0.0))
        self.uA = nn.Parameter(torch.tensor(0.0))
        self.output_scale = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("deltaW", torch.tensor(float(delta_w)), persistent=False)
        self.register_buffer("deltaA", torch.tensor(float(delta_a)), persistent=False)
        self.init_pending = False

    def qweight(self):
        return ewgs_weight(self.weight, self.lW, self.uW, self.wbits, self.deltaW)

    def qact(self, x):
        return ewgs_act(x, self.lA, self.uA, self.abits, self.deltaA)

    def _conv(self, x, w):
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)

    @torch.no_grad()
    def initialize(self, x):
        """method.md 3.2: uW = 3 std(w), lW = -3 std(w); uA = 3 std(x)/sqrt(1 - 2/pi),
        lA = min(x); s = mean|conv(x, w) + b| / mean|conv(x_q, W_q) + b|."""
        sw = self.weight.std()
        self.uW.fill_(3 * sw)
        self.lW.fill_(-3 * sw)
        self.uA.fill_(3 * x.std() / math.sqrt(1 - 2 / math.pi))
        self.lA.fill_(x.min())
        fp = self._conv(x, self.weight).abs().mean()
        q = self._conv(self.qact(x), self.qweight()).abs().mean()
        self.output_scale.fill_(fp / q if q > 0 else 1.0)

    def forward(self, x):
        if self.init_pending:
            self.initialize(x)
            self.init_pending = False
        return self._conv(self.qact(x), self.qweight()) * self.output_scale.abs()


# ---------------------------------------------------------------- models
class SmallCNN(nn.Module):
    def __init__(self, in_ch=1, classes=10, h=28, w=28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 32, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.conv3 = nn.Conv2d(64, 64, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(64)
        self.fc = nn.Linear(64 * (h // 4) * (w // 4), classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(torch.flatten(x, 1))


def shortcut_a(x, planes):
    """option A: x[:, :, ::2, ::2] zero-padded with planes//4 channels on each side"""
    p = planes // 4
    return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))


class BasicBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.planes = planes
        self.down = stride != 1 or in_planes != planes

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        sc = shortcut_a(x, self.planes) if self.down else x
        return F.relu(out + sc)


class ResNetCifar(nn.Module):
    def __init__(self, nblocks, in_ch=3, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        in_planes = 16
        for s in range(3):
            planes = 16 << s
            blocks = []
            for b in range(nblocks):
                blocks.append(BasicBlock(in_planes, planes, 2 if (s > 0 and b == 0) else 1))
                in_planes = planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*blocks))
        self.bn2 = nn.BatchNorm1d(64)
        self.gap = nn.AdaptiveAvgPool2d(1)   # a module (no state) so tools/torch_quant.py can swap it
        self.linear = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)   # fan_in, gain sqrt(2)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = self.gap(x).flatten(1)
        return self.linear(self.bn2(x))


class VGGBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv2d = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x):
        return F.relu(self.bn(self.conv2d(x)))


VGG_CFG = {"vgg8": [[64], [128], [256], [512], [512]],
           "vgg13": [[64, 64], [128, 128], [256, 256], [512, 512], [512, 512]]}


class VGGCifar(nn.Module):
    def __init__(self, cfg, in_ch=3, classes=10):
        super().__init__()
        for j, stage in enumerate(cfg):
            blocks = []
            for v in stage:
                blocks.append(VGGBlock(in_ch, v))
                in_ch = v
            setattr(self, f"layer{j}", nn.Sequential(*blocks))
        self.gap = nn.AdaptiveAvgPool2d(1)   # a module (no state) so tools/torch_quant.py can swap it
        self.classifier = nn.Linear(512, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.data.normal_(0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1]
                                                          * m.out_channels)))
                if m.bias is not None:
                    m.bias.data.zero_()
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
                m.bias.data.zero_()

    def forward(self, x):
        h = x.shape[2]
        x = F.max_pool2d(self.layer0(x), 2)
        x = F.max_pool2d(self.layer1(x), 2)
        x = F.max_pool2d(self.layer2(x), 2)
        x = self.layer3(x)
        if h >= 64:  # host/model/zoo.c: a 4th pooling for inputs of 64 rows or more
            x = F.max_pool2d(x, 2)
        x = self.gap(self.layer4(x)).flatten(1)
        return self.classifier(x)


def build_model(arch, in_ch=3, classes=10, h=32, w=32):
    if arch == "smallcnn":
        return SmallCNN(in_ch, classes, h, w)
    if arch in ("resnet20", "resnet32"):
        return ResNetCifar(3 if arch == "resnet20" else 5, in_ch, classes)
    if arch in VGG_CFG:
        return VGGCifar(VGG_CFG[arch], in_ch, classes)
    raise ValueError(f"unknown arch {arch!r}; known: {', '.join(ARCHS)}")


# ---------------------------------------------------------------- quantized student
QUANT_LAYERS = {  # method.md 3.6: module names of the convs the recipe quantizes
    "smallcnn": r"conv[23]",
    "resnet20": r"layer\d\.\d+\.conv[12]",
    "resnet32": r"layer\d\.\d+\.conv[12]",
    "vgg8": r"layer[1-4]\.\d+\.conv2d",
    "vgg13": r"layer[1-4]\.\d+\.conv2d",
}


def quantize_model(model, arch, wbits=4, abits=4, delta_w=0.0, delta_a=0.0):
    """Replaces (in place) every conv that method.md 3.6 quantizes with a QConv holding the same
    weight and bias. Returns the model and the list of replaced module names."""
    pat = re.compile(QUANT_LAYERS[arch] + "$")
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d) and pat.match(n)]
    for name in names:
        old = model.get_submodule(name)
        q = QConv(old.in_channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                  old.groups, old.bias is not None, wbits, abits, delta_w, delta_a)
        with torch.no_grad():
            q.weight.copy_(old.weight)
            if old.bias is not None:
                q.bias.copy_(old.bias)
        parent, _, leaf = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, leaf, q)
    return model, names


def quant_init(model, x):
    """Initialises every QConv from one batch in train mode, layer by layer in forward order (each
    layer sees the output of the already-quantized layers before it); BN running statistics update
    once with this batch, as in method.md 3.2."""
    model.train()
    for m in model.modules():
        if isinstance(m, QConv):
            m.init_pending = True
    with torch.no_grad():
        model(x)


QUANT_PARAM_LEAVES = ("lW", "uW", "lA", "uA", "output_scale")


def split_params(model):
    """(model parameters, quantizer parameters) for the two optimizers of method.md section 4."""
    mp, qp = [], []
    for name, p in model.named_parameters():
        (qp if name.rpartition(".")[2] in QUANT_PARAM_LEAVES else mp).append(p)
    return mp, qp


def count_params(model):
    """Trainable parameters as the method counts them (FP model)."""
    return sum(p.numel() for p in model.parameters())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", action="store_true", help="print and check parameter counts")
    ap.add_argument("--names", metavar="ARCH", help="print state_dict names and shapes of ARCH")
    ap.add_argument("--classes", type=int, default=10)
    args = ap.parse_args()
    if args.names:
        m = build_model(args.names, classes=args.classes)
        for k, v in m.state_dict().items():
            print(k, tuple(v.shape))
        return 0
    if not args.count:
        ap.print_help()
        return 0
    expect = {("resnet20", 10): 269850, ("resnet32", 100): 470132,
              ("vgg8", 10): 3918858, ("vgg13", 100): 9462180}
    print(f"{'smallcnn (1x28x28, 10)':28s} {count_params(build_model('smallcnn', 1, 10, 28, 28)):>10,d}")
    ok = True
    for (arch, k), n in expect.items():
        got = count_params(build_model(arch, 3, k))
        flag = "ok" if got == n else f"MISMATCH (expected {n:,d})"
        ok &= got == n
        print(f"{arch + f' (3x32x32, {k})':28s} {got:>10,d}  {flag}")
    assert ok, "parameter counts differ from method.md section 5"
    return 0


if __name__ == "__main__":
    sys.exit(main())
