#!/usr/bin/python3
"""bench_kernels_torch.py: the PyTorch side of `sqakd bench kernels`: fake-quant forward and
backward (method.md section 3, written as a PyTorch user writes them: autograd through the
normalisation, custom Functions for the discretizer and for PACT, the usual LSQ grad_scale /
round_pass) and the KL loss with its gradient (method.md section 2), in eager mode, on the same
data, sizes and quantizer parameters as `sqakd bench kernels`, with the same byte accounting
(forward 8 B per element, 12 B for DoReFa weights, which read x twice; backward 16 B; KL 12 B),
so that the two tools' GB/s compare as times. The backward is timed as forward + backward minus
the forward. tools/bench_kernels_ratio.sh alternates both tools and prints the ratios.

  /usr/bin/python3 tools/bench_kernels_torch.py --device cpu --sizes 1M,4M --bits 4 --threads 2
  /usr/bin/python3 tools/bench_kernels_torch.py --device cuda --sizes 16M,256M --json

A benchmark, not a test: nothing asserts."""
import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

KINDS = ("ewgs", "pact", "lsq", "dorefa")


class PactAct(torch.autograd.Function):
    """PACT activations (method.md 3.3): y = alpha q(clip(x, 0, alpha) / alpha), G_x = g 1[0 <= x
    <= alpha], G_alpha = sum g 1[x > alpha] (the PACT paper's straight-through form)"""

    @staticmethod
    def forward(ctx, x, alpha, levels):
        c = torch.minimum(x.clamp(min=0), alpha) / alpha
        ctx.save_for_backward(x, alpha)
        return alpha * (torch.round(c * (levels - 1)) / (levels - 1))

    @staticmethod
    def backward(ctx, g):
        x, alpha = ctx.saved_tensors
        inside = (x >= 0) & (x <= alpha)
        return g * inside, (g * (x > alpha)).sum().reshape(alpha.shape), None


def lsq(x, s, bits, signed, numel):
    """LSQ (method.md 3.4) as in Esser et al.'s code: grad_scale on s, round_pass on v"""
    qn, qp = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    gs = 1.0 / math.sqrt(numel * max(qp, 1))
    s_g = (s - s * gs).detach() + s * gs
    v = (x / s_g).clamp(-qn, qp)
    return ((v.round() - v).detach() + v) * s_g


def dorefa_weight(w, bits):
    """DoReFa weights (method.md 3.5): t = tanh(w), c = t / (2 max|t|) + 1/2 (max constant)"""
    t = torch.tanh(w)
    c = t / (2 * t.abs().max().detach()) + 0.5
    return 2 * tm.Discretize.apply(c, 2 ** bits, 0.0) - 1


def bench_params(kind, weight, bits):
    """the quantizer parameters of `sqakd bench kernels` (cmd_bench_kernels.c bench_qp)"""
    if kind == "ewgs":
        return [-1.0 if weight else 0.0, 1.5]
    if kind == "pact":
        return [1.5]
    if kind == "lsq":
        levels = 2 ** (bits - 1) if weight else 2 ** bits - 1
        return [1.5 / max(levels, 1)]
    return []


def make_fq(kind, weight, bits, x, params):
    """the forward as a closure of x and the parameter tensors"""
    L = 2 ** bits
    if kind == "ewgs":
        l, u = params
        f = tm.ewgs_weight if weight else tm.ewgs_act
        return lambda: f(x, l, u, bits, 0.0)
    if kind == "pact":
        if weight:  # PACT weights are DoReFa weights
            return lambda: dorefa_weight(x, bits)
        (alpha,) = params
        return lambda: PactAct.apply(x, alpha, L)
    if kind == "lsq":
        (s,) = params
        return lambda: lsq(x, s, bits, weight, x.numel())
    if weight:
        return lambda: dorefa_weight(x, bits)
    return lambda: tm.Discretize.apply(x.clamp(0, 1), L, 0.0)


def kl_loss(zs, zt, T=4.0, alpha=1.0):
    """method.md section 2, as tools/bench_torch.py: alpha T^2 / B sum KL(P_T || P_S)"""
    log_ps = F.log_softmax(zs / T, dim=1)
    log_pt = F.log_softmax(zt / T, dim=1)
    return alpha * T * T * (log_pt.exp() * (log_pt - log_ps)).sum() / zs.shape[0]


def parse_sizes(s):
    out = []
    for tok in s.split(","):
        tok = tok.strip().upper()
        mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(tok[-1:], 1)
        num = tok[:-1] if mult > 1 else tok
        if not num.isdigit() or int(num) < 1:
            raise argparse.ArgumentTypeError(f"--sizes: '{tok}' is not a positive count such as 16M")
        out.append(int(num) * mult)
    return out


def parse_bits(s):
    try:
        bits = [int(b) for b in s.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bits must be a comma list of 1..8, got '{s}'")
    if not bits or any(b < 1 or b > 8 for b in bits):
        raise argparse.ArgumentTypeError(f"--bits must be a comma list of 1..8, got '{s}'")
    return bits


def main():
    ap = argparse.ArgumentParser(description="PyTorch eager fake-quant and KL kernels (see header)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--sizes", type=parse_sizes, default=None,
                    help="element counts, K/M/G suffixes (default cpu 1M,4M; cuda 16M,256M)")
    ap.add_argument("--bits", type=parse_bits, default=[4])
    ap.add_argument("--role", choices=("act", "weight"), default="act")
    ap.add_argument("--min-time", type=float, default=0.2, help="seconds per measurement")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (cpu)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.threads < 1 or not (0 < args.min_time <= 60):
        ap.error("--threads must be >= 1 and --min-time in (0, 60]")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no GPU")
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    sizes = args.sizes or ([1 << 20, 4 << 20] if args.device == "cpu" else [16 << 20, 256 << 20])
    weight = args.role == "weight"

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def time_op(fn):
        """seconds per call: batches of calls grown until one lasts min_time (as sqakd does)"""
        fn()
        sync()
        reps = 1
        while True:
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            sync()
            dt = time.perf_counter() - t0
            if dt >= args.min_time or reps >= 65536:
                return dt / reps
            reps = min(65536, max(2 * reps, int(1.2 * args.min_time / max(dt / reps, 1e-9)) + 1))

    devname = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    rows = []

    def report(op, kind, role, bits, k, elems, sec, nbytes):
        row = {"op": op, "elements": elems, "ms": sec * 1e3, "bytes": nbytes, "gbps": nbytes / sec / 1e9}
        if kind:
            row.update(kind=kind, role=role, bits=bits)
        if k:
            row["classes"] = k
        rows.append(row)
        if not args.json:
            what = f"{kind:<6} {role:<6} {bits}-bit" if kind else (f"K={k:<5}" if k else "(reference)")
            print(f"{op:<14} {what:<22} {elems / 1048576.0:7.1f}M elems {sec * 1e3:9.3f} ms "
                  f"{nbytes / sec / 1e9:8.1f} GB/s")

    if not args.json:
        print(f"bench kernels (PyTorch {torch.__version__} eager) on {args.device} ({devname}), "
              f"{torch.get_num_threads()} threads")
    gen = torch.Generator().manual_seed(1234)
    for n in sizes:
        try:
            x = (torch.rand(n, generator=gen) * 3.0 - 1.0).to(dev)
            gy = (torch.rand(n, generator=gen) * 0.02 - 0.01).to(dev)
            y = torch.empty_like(x)
        except RuntimeError as e:
            print(f"bench_kernels_torch: skipping {n >> 20}M elements: {e}".splitlines()[0],
                  file=sys.stderr)
            continue
        report("copy_d2d", None, "ref", 0, 0, n, time_op(lambda: y.copy_(x)), 8 * n)
        xg = x.detach().requires_grad_(True)
        for kind in KINDS:
            for bits in args.bits:
                params = [torch.tensor(v, device=dev, requires_grad=True)
                          for v in bench_params(kind, weight, bits)]
                fwd = make_fq(kind, weight, bits, xg, params)

                def fwd_bwd():
                    xg.grad = None
                    for p in params:
                        p.grad = None
                    fwd().backward(gy)

                maxpass = weight and kind in ("dorefa", "pact")
                tf = time_op(fwd)
                tfb = time_op(fwd_bwd)
                report("fakequant_fwd", kind, args.role, bits, 0, n, tf, (12 if maxpass else 8) * n)
                report("fakequant_bwd", kind, args.role, bits, 0, n, max(tfb - tf, 1e-12), 16 * n)
                report("fakequant_f+b", kind, args.role, bits, 0, n, tfb, (28 if maxpass else 24) * n)
        for k in (10, 100, 1000):
            r = n // k
            if r < 1:
                continue
            zt = x[: r * k].view(r, k)
            zs = gy[: r * k].view(r, k).detach().requires_grad_(True)

            def kl():
                zs.grad = None
                kl_loss(zs, zt).backward()

            report("kl_fwd_bwd", None, None, 0, k, r * k, time_op(kl), 12 * r * k)
        del x, gy, y, xg
    if args.json:
        print(json.dumps({"tool": "bench_kernels_torch", "backend": f"torch {torch.__version__}",
                          "device": devname, "threads": torch.get_num_threads(), "results": rows}))


if __name__ == "__main__":
    main()
