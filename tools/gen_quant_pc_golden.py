#!/usr/bin/python3
"""gen_quant_pc_golden.py: golden values for PER-CHANNEL weight quantizers (issue 20 item 4),
computed with PyTorch autograd on a (C, K) weight whose parameters have shape (C, 1) and broadcast
over each row, independent of the C code (which runs each channel as a tensor of its own). Run:
  /usr/bin/python3 tools/gen_quant_pc_golden.py [out=tests/data/quant_pc_golden.bin]

The discretizer, clip and gradient-scale functions are tools/gen_quant_golden.py's; per channel c (row c):
  ewgs   c = clip((w - l_c)/(u_c - l_c)), y = 2q - 1
  lsq    signed grid, v = clip(w/s_c, -Qn, Qp), y = (q K - Qn) s_c, s_c through a gradient scale
         gs = 1/sqrt(K * max(Qp, 1)) with K the elements per channel (the channel's numel)
  dorefa (and pact weights) M_c = max over row c of |tanh(w)| (a constant), c = t/(2 M_c) + 1/2
and the initial parameters from the same weight, per row: EWGS l_c = -3 std_c, u_c = 3 std_c
(unbiased), LSQ s_c = 2 mean_c|w| / sqrt(Qp).

File format (little-endian):
  char magic[8] = "SQQPCGD1"; uint32 version = 1; uint32 count;
  count times: int32 kind (1 ewgs, 2 pact, 3 lsq, 4 dorefa), int32 bits, float32 delta,
               uint32 C, uint32 K, float32 qp[2 C] (parameter j of channel c at j C + c; unused 0),
               float32 w[C K], gy[C K], y[C K], gw[C K], float32 gqp[2 C], float32 init[2 C]
  where the loss is sum(gy * y).
"""
import struct
import sys

import numpy as np
import torch

from gen_quant_golden import ClipIncl, Disc, GradScale

MAGIC = b"SQQPCGD1"
VERSION = 1
EWGS, PACT, LSQ, DOREFA = 1, 2, 3, 4
C, K = 5, 36


def lsq_bounds(bits):
    return float(2 ** (bits - 1)), float(2 ** (bits - 1) - 1)


def steps_of(kind, bits, qp, w):
    """c (L-1) before rounding (float64), per element, for boundary avoidance"""
    L = 2 ** bits
    if kind == EWGS:
        l, u = qp[0][:, None], qp[1][:, None]
        return np.clip((w - l) / (u - l), 0, 1) * (L - 1)
    if kind == LSQ:
        qn, qpp = lsq_bounds(bits)
        return np.clip(w / qp[0][:, None], -qn, qpp) + qn
    t = np.tanh(w)
    return (t / (2 * np.abs(t).max(axis=1, keepdims=True)) + 0.5) * (L - 1)


def run_case(kind, bits, delta, qp, w, gy):
    L = 2 ** bits
    wt = torch.tensor(w, dtype=torch.float32, requires_grad=True)
    p = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in qp]
    if kind == EWGS:
        l, u = p[0][:, None], p[1][:, None]
        c = ClipIncl.apply((wt - l) / (u - l), 0.0, 1.0)
        y = 2 * Disc.apply(c, L, delta) - 1
    elif kind == LSQ:
        qn, qpp = lsq_bounds(bits)
        k = qn + qpp
        gs = 1.0 / np.sqrt(K * max(qpp, 1.0))
        s = GradScale.apply(p[0], float(gs))[:, None]
        v = ClipIncl.apply(wt / s, -qn, qpp)
        y = (Disc.apply((v + qn) / k, L, delta) * k - qn) * s
    else:  # dorefa weights, pact weights
        t = torch.tanh(wt)
        m = t.detach().abs().amax(dim=1, keepdim=True)
        y = 2 * Disc.apply(t / (2 * m) + 0.5, L, delta) - 1
    (y * torch.tensor(gy, dtype=torch.float32)).sum().backward()
    gqp = np.zeros(2 * C, dtype=np.float32)
    for j, t in enumerate(p):
        gqp[j * C:(j + 1) * C] = t.grad.numpy()
    return y.detach().numpy(), wt.grad.numpy(), gqp


def init_params(kind, bits, w):
    out = np.zeros(2 * C, dtype=np.float32)
    wd = w.astype(np.float64)
    if kind == EWGS:
        sd = wd.std(axis=1, ddof=1)
        out[:C], out[C:] = -3 * sd, 3 * sd
    elif kind == LSQ:
        _, qpp = lsq_bounds(bits)
        out[:C] = 2 * np.abs(wd).mean(axis=1) / np.sqrt(max(qpp, 1.0))
    return out


def make_inputs(rng, kind, bits):
    """rows of very different scales (what per-channel is for); parameters near their init,
    perturbed per channel so that some elements clip"""
    scale = np.array([0.05, 0.2, 0.5, 1.0, 2.5])[:, None]
    w = (rng.normal(0, 1, (C, K)) * scale).astype(np.float32)
    if kind == EWGS:
        sd = w.std(axis=1, ddof=1)
        qp = [(-2.2 * sd * rng.uniform(0.8, 1.2, C)), (2.0 * sd * rng.uniform(0.8, 1.2, C))]
    elif kind == LSQ:
        _, qpp = lsq_bounds(bits)
        qp = [0.7 * 2 * np.abs(w).mean(axis=1) / np.sqrt(max(qpp, 1.0)) * rng.uniform(0.8, 1.2, C)]
    else:
        qp = []
    qp = [np.asarray(v, dtype=np.float32) for v in qp]
    for _ in range(100):
        u = steps_of(kind, bits, [v.astype(np.float64) for v in qp], w.astype(np.float64))
        bad = np.abs(u - np.floor(u) - 0.5) < 1e-3
        if not bad.any():
            break
        w[bad] = (w[bad] * 1.01 + 1e-3).astype(np.float32)
    return w, qp


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/quant_pc_golden.bin"
    rng = np.random.default_rng(20261207)
    cases = [(kind, bits, delta) for kind in (EWGS, PACT, LSQ, DOREFA) for bits in (1, 2, 4, 8)
             for delta in (0.0, 0.5)]
    blob = bytearray(MAGIC + struct.pack("<II", VERSION, len(cases)))
    for kind, bits, delta in cases:
        w, qp = make_inputs(rng, kind, bits)
        gy = rng.normal(0, 1, (C, K)).astype(np.float32)
        y, gw, gqp = run_case(kind, bits, delta, qp, w, gy)
        qpf = np.zeros(2 * C, dtype=np.float32)
        for j, v in enumerate(qp):
            qpf[j * C:(j + 1) * C] = v
        blob += struct.pack("<iifII", kind, bits, delta, C, K)
        for arr in (qpf, w, gy, y, gw, gqp, init_params(kind, bits, w)):
            blob += np.asarray(arr, dtype="<f4").tobytes()
    with open(out, "wb") as f:
        f.write(blob)
    print(f"wrote {out}: {len(cases)} cases, {len(blob)} bytes")


if __name__ == "__main__":
    main()
