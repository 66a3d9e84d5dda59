#!/usr/bin/python3
"""gen_quant_golden.py: golden values for the fake quantizers (method.md section 3), computed with
PyTorch autograd from the template formulas (normalize/clip -> discretize -> map back), independent
of the C code. Run:  /usr/bin/python3 tools/gen_quant_golden.py [out=tests/data/quant_golden.bin]

The discretizer is an autograd.Function: forward q = round_half_even(c (L-1)) / (L-1), backward
g_c = g_q + delta |g_q| (c - q). Clips use an inclusive mask (0 <= v <= 1 is inside). Everything
else is plain autograd:
  ewgs  weight: c = clip((w-l)/(u-l)), y = 2q-1;  act: c = clip((x-l)/(u-l)), y = q
  pact  act: xc = clip(x, 0, alpha) (d xc/d alpha = 1[x > alpha]), c = xc/alpha, y = alpha q with
        alpha held constant in c and in the map back (PACT paper STE); weight: DoReFa weight
  lsq   v = clip(x/s, -Qn, Qp), c = (v+Qn)/K, K = Qn+Qp, L = K+1, y = (q K - Qn) s; s passes a
        gradient-scale function (forward identity, backward * gs), gs = 1/sqrt(n * max(Qp, 1)),
        i.e. grad_numel = n for every case here
  dorefa weight: t = tanh(w), M = max|t| (constant), c = t/(2M) + 1/2, y = 2q-1;
        act: c = clip(x, 0, 1), y = q
  none  y = x
Inputs are resampled where c (L-1) lies within 1e-3 of a rounding boundary, so float32 ulp
differences between libm and PyTorch cannot flip a level.

File format (little-endian):
  char magic[8] = "SQQGOLD1"; uint32 version = 1; uint32 count;
  count times: int32 kind (0 none, 1 ewgs, 2 pact, 3 lsq, 4 dorefa), int32 role (0 weight, 1 act),
               int32 bits, int32 is_signed, float32 delta, float32 qp[2] (unused slots 0),
               uint32 n, float32 x[n], gy[n], y[n], gx[n], float32 gqp[2] (d loss/d qp; 0 unused)
  where the loss is sum(gy * y).
"""
import struct
import sys

import numpy as np
import torch

MAGIC = b"SQQGOLD1"
VERSION = 1
N = 48
NONE, EWGS, PACT, LSQ, DOREFA = 0, 1, 2, 3, 4
WEIGHT, ACT = 0, 1


class Disc(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c, levels, delta):
        q = torch.round(c * (levels - 1)) / (levels - 1)
        ctx.save_for_backward(c - q)
        ctx.delta = delta
        return q

    @staticmethod
    def backward(ctx, g):
        (d,) = ctx.saved_tensors
        return g + ctx.delta * g.abs() * d, None, None


class ClipIncl(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v, lo, hi):
        ctx.save_for_backward(((v >= lo) & (v <= hi)).to(v.dtype))
        return v.clamp(lo, hi)

    @staticmethod
    def backward(ctx, g):
        (m,) = ctx.saved_tensors
        return g * m, None, None


class GradScale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s, gs):
        ctx.gs = gs
        return s.clone()

    @staticmethod
    def backward(ctx, g):
        return g * ctx.gs, None


def lsq_bounds(bits, signed):
    if signed:
        return float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)
    return 0.0, float(2 ** bits - 1)


def normalized(kind, role, bits, signed, qp, x):
    """c before rounding, in units of steps (c (L-1)), for boundary avoidance; None: no rounding"""
    L = 2 ** bits
    if kind == EWGS:
        return np.clip((x - qp[0]) / (qp[1] - qp[0]), 0, 1) * (L - 1)
    if kind == PACT and role == ACT:
        return np.clip(x, 0, qp[0]) / qp[0] * (L - 1)
    if kind == LSQ:
        qn, qpp = lsq_bounds(bits, signed)
        return np.clip(x / qp[0], -qn, qpp) + qn
    if kind in (PACT, DOREFA) and role == WEIGHT:
        t = np.tanh(x)
        return (t / (2 * np.abs(t).max()) + 0.5) * (L - 1)
    if kind == DOREFA:
        return np.clip(x, 0, 1) * (L - 1)
    return None


def run_case(kind, role, bits, signed, delta, qp, x, gy):
    xt = torch.tensor(x, dtype=torch.float32, requires_grad=True)
    p = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in qp]
    y = fake_quant(kind, role, bits, signed, delta, p, xt)
    (y * torch.tensor(gy, dtype=torch.float32)).sum().backward()
    gqp = [0.0, 0.0]
    for i, t in enumerate(p):
        gqp[i] = float(t.grad) if t.grad is not None else 0.0
    return y.detach().numpy(), xt.grad.numpy(), gqp


def fake_quant(kind, role, bits, signed, delta, p, xt):
    """the quantizer's output for the tensor xt with parameters p (tensors), as an autograd graph;
    LSQ's gradient scale counts xt's elements (grad_numel = n)"""
    L = 2 ** bits
    x = xt.detach().numpy()
    if kind == EWGS:
        c = ClipIncl.apply((xt - p[0]) / (p[1] - p[0]), 0.0, 1.0)
        q = Disc.apply(c, L, delta)
        y = 2 * q - 1 if role == WEIGHT else q
    elif kind == PACT and role == ACT:
        a = p[0]
        ad = a.detach()
        above = (xt.detach() > ad).to(torch.float32)
        xc = ClipIncl.apply(xt, 0.0, float(ad)) + (a - ad) * above
        q = Disc.apply(xc / ad, L, delta)
        y = ad * q
    elif kind == LSQ:
        qn, qpp = lsq_bounds(bits, signed)
        k = qn + qpp
        gs = 1.0 / np.sqrt(len(x) * max(qpp, 1.0))
        s = GradScale.apply(p[0], float(gs))
        v = ClipIncl.apply(xt / s, -qn, qpp)
        q = Disc.apply((v + qn) / k, L, delta)
        y = (q * k - qn) * s
    elif kind in (PACT, DOREFA) and role == WEIGHT:
        t = torch.tanh(xt)
        m = t.detach().abs().max()
        q = Disc.apply(t / (2 * m) + 0.5, L, delta)
        y = 2 * q - 1
    elif kind == DOREFA:
        q = Disc.apply(ClipIncl.apply(xt, 0.0, 1.0), L, delta)
        y = q
    else:
        y = xt * 1.0
    return y


def make_inputs(rng, kind, role, bits, signed):
    """inputs and parameters covering inside, both clipped sides and exact boundary values"""
    if kind == EWGS and role == WEIGHT:
        x, qp = rng.normal(0, 0.5, N), [-0.8, 0.9]
    elif kind == EWGS:
        if bits % 2:
            x, qp = np.maximum(rng.normal(0.2, 1.0, N), 0.0), [0.0, 1.7]  # post-ReLU zeros
        else:
            x, qp = rng.normal(0.0, 1.0, N), [-1.2, 2.0]
    elif kind == PACT and role == ACT:
        x, qp = rng.normal(0.5, 1.0, N), [1.7]
    elif kind == LSQ:
        x = rng.normal(0, 0.5, N) if signed else np.maximum(rng.normal(0.3, 1.0, N), 0.0)
        qn, qpp = lsq_bounds(bits, signed)
        qp = [0.7 * 2 * np.abs(x).mean() / np.sqrt(max(qpp, 1.0))]
    elif role == WEIGHT:
        x, qp = rng.normal(0, 0.5, N), []
    elif kind == DOREFA:
        x, qp = rng.uniform(-0.3, 1.3, N), []
    else:
        x, qp = rng.normal(0, 1, N), []
    x = x.astype(np.float32)
    qp = [float(np.float32(v)) for v in qp]
    for _ in range(100):
        u = normalized(kind, role, bits, signed, qp, x.astype(np.float64))
        if u is None:
            break
        bad = np.abs(u - np.floor(u) - 0.5) < 1e-3
        if not bad.any():
            break
        x[bad] = (x[bad] * 1.01 + 1e-3).astype(np.float32)
    return x, qp


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/quant_golden.bin"
    rng = np.random.default_rng(20240311)
    configs = [(EWGS, WEIGHT, 0), (EWGS, ACT, 0), (PACT, WEIGHT, 0), (PACT, ACT, 0),
               (LSQ, WEIGHT, 1), (LSQ, ACT, 0), (LSQ, ACT, 1), (DOREFA, WEIGHT, 0),
               (DOREFA, ACT, 0)]
    cases = []
    for kind, role, signed in configs:
        for bits in (1, 2, 3, 4, 8):
            for delta in (0.0, 0.5):
                cases.append((kind, role, bits, signed, delta))
    cases.append((NONE, ACT, 8, 0, 0.0))
    blob = bytearray(MAGIC + struct.pack("<II", VERSION, len(cases)))
    for kind, role, bits, signed, delta in cases:
        x, qp = make_inputs(rng, kind, role, bits, signed)
        gy = rng.normal(0, 1, N).astype(np.float32)
        y, gx, gqp = run_case(kind, role, bits, signed, delta, qp, x, gy)
        qp2 = (qp + [0.0, 0.0])[:2]
        blob += struct.pack("<iiiif2fI", kind, role, bits, signed, delta, *qp2, N)
        for arr in (x, gy, y, gx):
            blob += np.asarray(arr, dtype="<f4").tobytes()
        blob += struct.pack("<2f", *gqp)
    with open(out, "wb") as f:
        f.write(blob)
    print(f"wrote {out}: {len(cases)} cases, {len(blob)} bytes")


if __name__ == "__main__":
    main()
