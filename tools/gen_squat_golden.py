#!/usr/bin/python3
"""gen_squat_golden.py: golden values for the SQuaT feature loss (issue 20, docs/squat.md), computed
with PyTorch autograd, independent of the C code. Run:
    /usr/bin/python3 tools/gen_squat_golden.py [out=tests/data/squat_golden.bin]

For each activation quantizer (ewgs, pact, lsq unsigned and signed, dorefa) and bit-width: the
student's feature x_s and the teacher's x_t at a tap, the quantizer's parameters p;
    y_s = Q(x_s; p)                       (the student's quantized feature: gradients to x_s and p)
    t   = Q(x_t; p.detach()), no_grad     (the teacher's feature quantized alike: no gradient)
    loss = G * mean((y_s - t)^2)           (torch.nn.functional.mse_loss, mean reduction)
and the gradients d loss / d x_s and d loss / d p, through the quantizer's backward (the twins of
tools/gen_quant_golden.py, whose inputs avoid rounding boundaries, here for x_t as well).

File format (little-endian):
  char magic[8] = "SQSQGLD1"; uint32 version = 1; uint32 count;
  count times: int32 kind, int32 bits, int32 is_signed, float32 weight G, float32 qp[2] (unused 0),
               uint32 n, float32 xs[n], xt[n], ys[n], t[n], gxs[n], float32 gqp[2], float32 loss
"""
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

from gen_quant_golden import ACT, DOREFA, EWGS, LSQ, PACT, fake_quant, make_inputs, normalized

MAGIC = b"SQSQGLD1"
VERSION = 1


def nudge(kind, bits, signed, qp, x):
    """moves x off rounding boundaries under the parameters qp"""
    for _ in range(100):
        u = normalized(kind, ACT, bits, signed, qp, x.astype(np.float64))
        bad = np.abs(u - np.floor(u) - 0.5) < 1e-3
        if not bad.any():
            break
        x[bad] = (x[bad] * 1.01 + 1e-3).astype(np.float32)
    return x


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "tests/data/squat_golden.bin"
    rng = np.random.default_rng(20261207)
    cases = []
    for kind, signed in ((EWGS, 0), (PACT, 0), (LSQ, 0), (LSQ, 1), (DOREFA, 0)):
        for bits in (1, 2, 4, 8):
            cases.append((kind, bits, signed, float(np.float32(0.75 if bits % 2 else 1.5))))
    blob = bytearray(MAGIC + struct.pack("<II", VERSION, len(cases)))
    for kind, bits, signed, weight in cases:
        xs, qp = make_inputs(rng, kind, ACT, bits, signed)
        # the teacher's feature: the student's perturbed (so that many levels agree and some differ)
        xt = (xs + rng.normal(0, 0.3, len(xs))).astype(np.float32)
        xt = nudge(kind, bits, signed, qp, xt)
        xs_t = torch.tensor(xs, requires_grad=True)
        p = [torch.tensor(v, dtype=torch.float32, requires_grad=True) for v in qp]
        ys = fake_quant(kind, ACT, bits, signed, 0.0, p, xs_t)
        with torch.no_grad():
            t = fake_quant(kind, ACT, bits, signed, 0.0, [v.detach() for v in p], torch.tensor(xt))
        loss = weight * F.mse_loss(ys, t)
        loss.backward()
        gqp = [float(v.grad) if v.grad is not None else 0.0 for v in p] + [0.0, 0.0]
        qp2 = (qp + [0.0, 0.0])[:2]
        blob += struct.pack("<iiif2fI", kind, bits, signed, weight, *qp2, len(xs))
        for arr in (xs, xt, ys.detach().numpy(), t.numpy(), xs_t.grad.numpy()):
            blob += np.asarray(arr, dtype="<f4").tobytes()
        blob += struct.pack("<3f", gqp[0], gqp[1], float(loss))
    with open(out, "wb") as f:
        f.write(blob)
    print(f"wrote {out}: {len(cases)} cases, {len(blob)} bytes")


if __name__ == "__main__":
    main()
