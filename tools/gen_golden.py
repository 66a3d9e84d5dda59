#!/usr/bin/python3
"""gen_golden.py: PyTorch oracle that writes the golden fixtures under tests/data/.

  python3 tools/gen_golden.py                   -> tests/data/ops_golden.bin    (op-level cases)
  python3 tools/gen_golden.py --model resnet20  -> tests/data/resnet20_golden.bin (whole model)

File format ("SQGOLD01", version 1; reader: tests/util_golden.c), all little endian:
    char     magic[8]   = "SQGOLD01"
    uint32   version    = 1
    uint32   count      number of tensors
    count x {
        uint32  name_len;  char name[name_len]        (no terminating NUL)
        uint32  ndim;      int64 dims[ndim]
        float32 data[prod(dims)]                      (row-major; ndim 0 = one scalar)
    }

Every value is computed in float64 from inputs that are first rounded to float32 (so the C side
sees exactly the oracle's inputs), then stored as float32.

Op cases are named "<case>.<tensor>". Each case has "<case>.cfg", a 1-D tensor of its integer or
scalar attributes (listed per op family below); inputs and outputs use the names of
include/sqakd/backend.h: x, w, b, y, gy (random upstream gradient), gx, gw, gb, ... Backward
values are what autograd gives for the stored gy (the C ops accumulate them into zeroed buffers).
  conv_*     cfg [n, c, h, w, k, r, s, stride, pad, groups, has_bias]: x w [b] y gy gx gw [gb]
  bn2d_train, bn1d_train  cfg [n, c, hw, momentum, eps]: x gamma beta rm rv (running stats
             before) y save_mean save_invstd rm_new rv_new gy gx ggamma gbeta
  bn2d_eval  cfg [n, c, hw, eps]: x gamma beta rm rv y
  relu, relu6 cfg [n]: x y gy gx   (no element on a kink: the backends may differ there)
  maxpool_*, avgpool_* cfg [n, c, h, w, k, stride, pad]: x y gy gx (avg: count_include_pad)
  gap        cfg [n, c, hw]: x y gy gx
  linear*    cfg [n, in, out, has_bias]: x w [b] y gy gx gw [gb]
  shortcut_* cfg [n, c, h, w, k]: x y gy gx
  concat     cfg [n, c1, c2, hw]: a b y gy ga gb
  shuffle_*  cfg [n, c, hw, groups]: x y gy gx
  ce         cfg [n, k]: logits labels (as float) loss glogits  (mean over the batch, scale 1)
  kl_*       cfg [n, k, T, alpha]: zt zs loss gzs  (method.md section 2)
  sgd        cfg [lr, momentum, wd, steps]: p0 g1..g3 p1..p3 (torch.optim.SGD)
  adam       cfg [lr, beta1, beta2, eps, wd, steps]: p0 g1..g3 p1..p3 (torch.optim.Adam, L2)
  fq_ewgs_*  cfg [role (0 weight, 1 act), bits, delta]: x qp (l, u) y gy gx gqp (method.md 3.2)
  absscale   cfg [n]: s z y gy gz gs

Model fixture (--model ARCH): the fixed-seed FP model's state_dict under its exact PyTorch names
(num_batches_tracked skipped; BN affine and running statistics perturbed away from 1/0 so they are
exercised), "input.x", "input.labels" (as float), train-mode "out.logits", mean cross-entropy
"out.loss", "grad.<param>" for every parameter and "after.<bn>.running_mean/var" after the forward.
"""
import argparse
import copy
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

MAGIC = b"SQGOLD01"
VERSION = 1
DT = torch.float64


class Fixture:
    def __init__(self):
        self.items = []
        self.names = set()

    def add(self, name, t):
        assert name not in self.names, name
        self.names.add(name)
        t = torch.as_tensor(t).detach().to(torch.float32).contiguous()
        self.items.append((name, t))

    def write(self, path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<II", VERSION, len(self.items)))
            for name, t in self.items:
                nb = name.encode()
                f.write(struct.pack("<I", len(nb)) + nb + struct.pack("<I", t.dim()))
                f.write(struct.pack(f"<{t.dim()}q", *t.shape))
                f.write(t.numpy().astype("<f4").tobytes())
        os.replace(tmp, path)
        return os.path.getsize(path)


GEN = torch.Generator().manual_seed(20240311)


def rnd(*shape, scale=1.0, shift=0.0):
    """float64 normal values that are exactly representable in float32"""
    return (torch.randn(*shape, dtype=DT, generator=GEN) * scale + shift).float().to(DT)


def leaf(t):
    return t.clone().requires_grad_(True)


# ---------------------------------------------------------------- op families
CONV_CASES = [  # name, n, c, h, w, k, r, stride, pad, groups, bias
    ("conv_s1p1", 2, 4, 7, 7, 6, 3, 1, 1, 1, 1),
    ("conv_s2p1", 2, 4, 8, 8, 6, 3, 2, 1, 1, 0),
    ("conv_s1p0", 2, 3, 6, 5, 4, 3, 1, 0, 1, 1),
    ("conv_s2p0", 2, 3, 7, 7, 4, 3, 2, 0, 1, 0),
    ("conv_k1s1", 2, 8, 5, 5, 6, 1, 1, 0, 1, 1),
    ("conv_k1s2", 2, 8, 6, 6, 4, 1, 2, 0, 1, 0),
    ("conv_g2", 2, 4, 6, 6, 6, 3, 1, 1, 2, 1),
    ("conv_dw", 2, 6, 6, 6, 6, 3, 1, 1, 6, 0),
    ("conv_dw_s2", 2, 6, 7, 7, 6, 3, 2, 1, 6, 1),
    ("conv_dw_m2", 2, 4, 5, 5, 8, 3, 1, 1, 4, 0),
]


def gen_conv(fx):
    for name, n, c, h, w, k, r, stride, pad, groups, bias in CONV_CASES:
        x = leaf(rnd(n, c, h, w))
        wt = leaf(rnd(k, c // groups, r, r, scale=0.3))
        b = leaf(rnd(k, scale=0.5)) if bias else None
        y = F.conv2d(x, wt, b, stride, pad, 1, groups)
        gy = rnd(*y.shape)
        y.backward(gy)
        fx.add(f"{name}.cfg", [n, c, h, w, k, r, r, stride, pad, groups, bias])
        fx.add(f"{name}.x", x)
        fx.add(f"{name}.w", wt)
        if bias:
            fx.add(f"{name}.b", b)
        fx.add(f"{name}.y", y)
        fx.add(f"{name}.gy", gy)
        fx.add(f"{name}.gx", x.grad)
        fx.add(f"{name}.gw", wt.grad)
        if bias:
            fx.add(f"{name}.gb", b.grad)


def gen_bn(fx):
    momentum, eps = 0.1, 1e-5
    for name, shape in (("bn2d_train", (4, 3, 5, 5)), ("bn1d_train", (6, 5))):
        n, c = shape[0], shape[1]
        hw = shape[2] * shape[3] if len(shape) == 4 else 1
        x = leaf(rnd(*shape, scale=2.0, shift=0.5))
        gamma = leaf(rnd(c, scale=0.3, shift=1.0))
        beta = leaf(rnd(c, scale=0.3))
        rm0, rv0 = rnd(c, scale=0.2), rnd(c, scale=0.2, shift=1.0).abs()
        rm, rv = rm0.clone(), rv0.clone()
        y = F.batch_norm(x, rm, rv, gamma, beta, True, momentum, eps)
        gy = rnd(*y.shape)
        y.backward(gy)
        dims = [0] + list(range(2, len(shape)))
        mean = x.detach().mean(dim=dims)
        var = x.detach().var(dim=dims, unbiased=False)
        fx.add(f"{name}.cfg", [n, c, hw, momentum, eps])
        for k, v in (("x", x), ("gamma", gamma), ("beta", beta), ("rm", rm0), ("rv", rv0),
                     ("y", y), ("save_mean", mean), ("save_invstd", 1 / torch.sqrt(var + eps)),
                     ("rm_new", rm), ("rv_new", rv), ("gy", gy), ("gx", x.grad),
                     ("ggamma", gamma.grad), ("gbeta", beta.grad)):
            fx.add(f"{name}.{k}", v)
    n, c, h, w = 3, 4, 3, 3
    x, gamma, beta = rnd(n, c, h, w, scale=2.0), rnd(c, shift=1.0), rnd(c)
    rm, rv = rnd(c, scale=0.5), rnd(c, scale=0.3, shift=1.5).abs()
    y = F.batch_norm(x, rm, rv, gamma, beta, False, momentum, eps)
    fx.add("bn2d_eval.cfg", [n, c, h * w, eps])
    for k, v in (("x", x), ("gamma", gamma), ("beta", beta), ("rm", rm), ("rv", rv), ("y", y)):
        fx.add(f"bn2d_eval.{k}", v)


def away_from(x, points, margin=1e-3):
    for p in points:
        close = (x - p).abs() < margin
        x = torch.where(close, x + 4 * margin, x)
    return x


def gen_act(fx):
    for name, fn, scale, shift, kinks in (("relu", F.relu, 2.0, 0.0, (0.0,)),
                                          ("relu6", F.relu6, 4.0, 2.0, (0.0, 6.0))):
        n = 120
        x = leaf(away_from(rnd(n, scale=scale, shift=shift), kinks))
        y = fn(x)
        gy = rnd(n)
        y.backward(gy)
        fx.add(f"{name}.cfg", [n])
        for k, v in (("x", x), ("y", y), ("gy", gy), ("gx", x.grad)):
            fx.add(f"{name}.{k}", v)


POOL_CASES = [  # name, n, c, h, w, k, stride, pad
    ("maxpool_k2s2", 2, 3, 6, 6, 2, 2, 0),
    ("maxpool_k3s2p1", 2, 3, 7, 7, 3, 2, 1),
    ("avgpool_k2s2", 2, 3, 6, 6, 2, 2, 0),
    ("avgpool_k3s2p1", 2, 3, 7, 7, 3, 2, 1),
]


def gen_pool(fx):
    for name, n, c, h, w, k, stride, pad in POOL_CASES:
        x = leaf(rnd(n, c, h, w))
        if name.startswith("max"):
            y = F.max_pool2d(x, k, stride, pad)
        else:
            y = F.avg_pool2d(x, k, stride, pad, count_include_pad=True)
        gy = rnd(*y.shape)
        y.backward(gy)
        fx.add(f"{name}.cfg", [n, c, h, w, k, stride, pad])
        for kk, v in (("x", x), ("y", y), ("gy", gy), ("gx", x.grad)):
            fx.add(f"{name}.{kk}", v)
    n, c, h, w = 2, 3, 4, 5
    x = leaf(rnd(n, c, h, w))
    y = x.mean(dim=(2, 3))
    gy = rnd(n, c)
    y.backward(gy)
    fx.add("gap.cfg", [n, c, h * w])
    for kk, v in (("x", x), ("y", y), ("gy", gy), ("gx", x.grad)):
        fx.add(f"gap.{kk}", v)


def gen_linear(fx):
    for name, n, nin, nout, bias in (("linear", 3, 7, 5, 1), ("linear_nb", 4, 6, 3, 0)):
        x = leaf(rnd(n, nin))
        w = leaf(rnd(nout, nin, scale=0.4))
        b = leaf(rnd(nout)) if bias else None
        y = F.linear(x, w, b)
        gy = rnd(n, nout)
        y.backward(gy)
        fx.add(f"{name}.cfg", [n, nin, nout, bias])
        for kk, v in (("x", x), ("w", w), ("b", b), ("y", y), ("gy", gy), ("gx", x.grad),
                      ("gw", w.grad), ("gb", b.grad if bias else None)):
            if v is not None:
                fx.add(f"{name}.{kk}", v)


def gen_struct(fx):
    for name, n, c, h, w, k in (("shortcut_a", 2, 4, 6, 6, 8), ("shortcut_a_odd", 2, 4, 5, 5, 8)):
        x = leaf(rnd(n, c, h, w))
        y = tm.shortcut_a(x, k)
        gy = rnd(*y.shape)
        y.backward(gy)
        fx.add(f"{name}.cfg", [n, c, h, w, k])
        for kk, v in (("x", x), ("y", y), ("gy", gy), ("gx", x.grad)):
            fx.add(f"{name}.{kk}", v)
    n, c1, c2, hw = 2, 3, 5, 6
    a, b = leaf(rnd(n, c1, hw)), leaf(rnd(n, c2, hw))
    y = torch.cat([a, b], 1)
    gy = rnd(*y.shape)
    y.backward(gy)
    fx.add("concat.cfg", [n, c1, c2, hw])
    for kk, v in (("a", a), ("b", b), ("y", y), ("gy", gy), ("ga", a.grad), ("gb", b.grad)):
        fx.add(f"concat.{kk}", v)
    for name, n, c, hw, g in (("shuffle_g2", 2, 6, 4, 2), ("shuffle_g3", 2, 6, 3, 3)):
        x = leaf(rnd(n, c, hw))
        y = x.view(n, g, c // g, hw).transpose(1, 2).reshape(n, c, hw)
        gy = rnd(*y.shape)
        y.backward(gy)
        fx.add(f"{name}.cfg", [n, c, hw, g])
        for kk, v in (("x", x), ("y", y), ("gy", gy), ("gx", x.grad)):
            fx.add(f"{name}.{kk}", v)


def kl_loss(zs, zt, T, alpha):
    """method.md section 2: alpha T^2 / B sum KL(P_T || P_S)"""
    log_ps = F.log_softmax(zs / T, dim=1)
    log_pt = F.log_softmax(zt / T, dim=1)
    return alpha * T * T * (log_pt.exp() * (log_pt - log_ps)).sum() / zs.shape[0]


def gen_loss(fx):
    n, k = 5, 7
    logits = leaf(rnd(n, k, scale=2.0))
    labels = torch.randint(0, k, (n,), generator=GEN)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    fx.add("ce.cfg", [n, k])
    for kk, v in (("logits", logits), ("labels", labels), ("loss", loss.reshape(1)),
                  ("glogits", logits.grad)):
        fx.add(f"ce.{kk}", v)
    cases = [("kl", rnd(n, k, scale=3.0), rnd(n, k, scale=3.0), 4.0, 1.0),
             ("kl_t2a3", rnd(n, k, scale=3.0), rnd(n, k, scale=3.0), 2.0, 3.0),
             ("kl_vec", torch.tensor([[0.0, 0.0]], dtype=DT), torch.tensor([[4.0, 0.0]], dtype=DT),
              4.0, 1.0)]
    for name, zt, zs0, T, alpha in cases:
        zs = leaf(zs0)
        loss = kl_loss(zs, zt, T, alpha)
        loss.backward()
        fx.add(f"{name}.cfg", [zs.shape[0], zs.shape[1], T, alpha])
        for kk, v in (("zt", zt), ("zs", zs), ("loss", loss.reshape(1)), ("gzs", zs.grad)):
            fx.add(f"{name}.{kk}", v)


def gen_optim(fx):
    n, steps = 10, 3
    for name in ("sgd", "adam"):
        p = leaf(rnd(n))
        if name == "sgd":
            cfg = [0.1, 0.9, 1e-4, steps]
            opt = torch.optim.SGD([p], lr=cfg[0], momentum=cfg[1], weight_decay=cfg[2])
        else:
            cfg = [1e-2, 0.9, 0.999, 1e-8, 1e-4, steps]
            opt = torch.optim.Adam([p], lr=cfg[0], betas=(cfg[1], cfg[2]), eps=cfg[3],
                                   weight_decay=cfg[4])
        fx.add(f"{name}.cfg", cfg)
        fx.add(f"{name}.p0", p)
        for t in range(1, steps + 1):
            g = rnd(n)
            p.grad = g.clone()
            opt.step()
            fx.add(f"{name}.g{t}", g)
            fx.add(f"{name}.p{t}", p)


FQ_CASES = [  # name, role, bits, delta, data scale, data shift, l, u
    ("fq_ewgs_w2", 0, 2, 0.0, 0.1, 0.0, -0.15, 0.12),
    ("fq_ewgs_w3d", 0, 3, 0.5, 0.1, 0.0, -0.2, 0.18),
    ("fq_ewgs_a2", 1, 2, 0.0, 1.0, 0.0, 0.0, 1.5),
    ("fq_ewgs_a4d", 1, 4, 0.25, 1.0, 0.3, -0.1, 1.7),
]


def gen_fakequant(fx):
    n = 96
    for name, role, bits, delta, scale, shift, l0, u0 in FQ_CASES:
        levels = 2 ** bits
        lf, uf = float(torch.tensor(l0).float()), float(torch.tensor(u0).float())
        x = rnd(n, scale=scale, shift=shift)
        if role == 1:
            x = F.relu(x)   # post-ReLU input: exact zeros, inside when l = 0
        # keep every element away from rounding ties and clip edges (float32 vs float64 decisions)
        for _ in range(100):
            u = (x - lf) / (uf - lf) * (levels - 1)
            frac = u - torch.floor(u)
            bad = ((frac - 0.5).abs() < 1e-3) | (((u.abs() < 1e-3) | ((u - levels + 1).abs() < 1e-3))
                                                & (x != 0))
            if not bad.any():
                break
            x = torch.where(bad, rnd(n, scale=scale, shift=shift), x)
        assert not bad.any()
        xl = leaf(x)
        lp, up = leaf(torch.tensor(lf, dtype=DT)), leaf(torch.tensor(uf, dtype=DT))
        fn = tm.ewgs_weight if role == 0 else tm.ewgs_act
        y = fn(xl, lp, up, bits, delta)
        gy = rnd(n)
        y.backward(gy)
        fx.add(f"{name}.cfg", [role, bits, delta])
        for kk, v in (("x", xl), ("qp", torch.stack([lp, up])), ("y", y), ("gy", gy),
                      ("gx", xl.grad), ("gqp", torch.stack([lp.grad, up.grad]))):
            fx.add(f"{name}.{kk}", v)
    n = 20
    s, z = leaf(torch.tensor([-0.7], dtype=DT)), leaf(rnd(n))
    y = s.abs() * z
    gy = rnd(n)
    y.backward(gy)
    fx.add("absscale.cfg", [n])
    for kk, v in (("s", s), ("z", z), ("y", y), ("gy", gy), ("gz", z.grad), ("gs", s.grad)):
        fx.add(f"absscale.{kk}", v)


def gen_ops(path):
    fx = Fixture()
    for fn in (gen_conv, gen_bn, gen_act, gen_pool, gen_linear, gen_struct, gen_loss, gen_optim,
               gen_fakequant):
        fn(fx)
    size = fx.write(path)
    print(f"{path}: {len(fx.items)} tensors, {size} bytes")


# ---------------------------------------------------------------- whole model
MODEL_INPUT = {"smallcnn": (1, 28, 28), "resnet20": (3, 16, 16)}
DRAWS = 300


def gen_model(arch, path, batch=4, classes=10):
    torch.manual_seed(1234)
    c, h, w = MODEL_INPUT.get(arch, (3, 32, 32))
    model = tm.build_model(arch, c, classes, h, w)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=GEN))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=GEN))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=GEN))
                m.running_var.copy_(1 + 0.2 * torch.rand(m.running_var.shape, generator=GEN))
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.float())
    model = model.to(DT).train()
    fx = Fixture()
    for k, v in model.state_dict().items():
        if not k.endswith("num_batches_tracked"):
            fx.add(k, v)
    # Of DRAWS inputs, the one whose ReLU inputs stay farthest from the kink: a value near 0 can
    # fall on the other side in fp32 (our forward differs from fp64 by up to ~3e-5 depending on
    # the compiler's instruction choice) and flip that ReLU's gradient mask, which moves every
    # earlier gradient by ~0.5 % (seen with an AddressSanitizer build at |v| = 4e-6).
    relu, margin = F.relu, [float("inf")]

    def watched_relu(t, *a, **k):
        margin[0] = min(margin[0], t.detach().abs().min().item())
        return relu(t, *a, **k)

    probe = copy.deepcopy(model)  # train-mode forwards move running statistics
    best_x, best = None, -1.0
    F.relu = watched_relu
    try:
        for _ in range(DRAWS):
            x = rnd(batch, c, h, w)
            margin[0] = float("inf")
            with torch.no_grad():
                probe(x)
            if margin[0] > best:
                best_x, best = x, margin[0]
    finally:
        F.relu = relu
    x = best_x
    print(f"best of {DRAWS} inputs: smallest |ReLU input| {best:.3g}")
    labels = torch.randint(0, classes, (batch,), generator=GEN)
    logits = model(x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    fx.add("input.x", x)
    fx.add("input.labels", labels)
    fx.add("out.logits", logits)
    fx.add("out.loss", loss.reshape(1))
    for k, p in model.named_parameters():
        fx.add(f"grad.{k}", p.grad)
    for k, v in model.state_dict().items():
        if k.endswith(("running_mean", "running_var")):
            fx.add(f"after.{k}", v)
    size = fx.write(path)
    print(f"{path}: {len(fx.items)} tensors, {size} bytes, loss {loss.item():.6f}")


def main():
    ap = argparse.ArgumentParser(description="write golden fixtures (format in this file's header)")
    ap.add_argument("--model", choices=tm.ARCHS, help="write the whole-model fixture of ARCH")
    ap.add_argument("--out", help="output path (default tests/data/ops_golden.bin or "
                    "tests/data/<arch>_golden.bin)")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.model:
        gen_model(args.model, args.out or os.path.join(root, "tests", "data",
                                                       f"{args.model}_golden.bin"))
    else:
        gen_ops(args.out or os.path.join(root, "tests", "data", "ops_golden.bin"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
