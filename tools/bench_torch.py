#!/usr/bin/python3
"""bench_torch.py: the PyTorch side of sqakd's training-step benchmarks (same machine, same thread
count, synthetic data: throughput does not depend on pixel values).

  --mode train   FP step: forward (train mode), mean cross-entropy, backward,
                 SGD (lr 0.1, momentum 0.9, weight decay 5e-4)
  --mode sqakd   method.md section 4 step: teacher (FP, eval mode, no_grad) forward, student
                 (ewgs-quantized, train mode, --wbits/--abits) forward, KL loss (T = 4, alpha = 1),
                 backward, Adam on model parameters (lr 1e-3, L2 wd 1e-4) and Adam on quantizer
                 parameters (lr 1e-5, no wd)

Examples:
  OMP_NUM_THREADS=2 /usr/bin/python3 tools/bench_torch.py --model resnet20 --batch 128 --threads 2
  /usr/bin/python3 tools/bench_torch.py --mode sqakd --wbits 2 --abits 2 --json
--json prints ONE JSON object (img_per_s, ms_per_step, ms_median, peak_rss_mb, threads, batch,
...); otherwise one human-readable line. --profile then runs --steps more steps under
torch.profiler and prints PyTorch's operators by their own CPU time per step (self time: an
operator's children are not counted twice), the counterpart of `sqakd bench step --profile`."""
import argparse
import copy
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

DEFAULT_INPUT = {"smallcnn": "1x28x28"}


def parse_input(s):
    try:
        c, h, w = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input expects CxHxW (e.g. 3x32x32), got {s!r}")
    if min(c, h, w) <= 0:
        raise argparse.ArgumentTypeError(f"--input dimensions must be positive, got {s!r}")
    return c, h, w


def kl_loss(zs, zt, T=4.0, alpha=1.0):
    """method.md section 2: alpha T^2 / B sum KL(P_T || P_S)"""
    log_ps = F.log_softmax(zs / T, dim=1)
    log_pt = F.log_softmax(zt / T, dim=1)
    return alpha * T * T * (log_pt.exp() * (log_pt - log_ps)).sum() / zs.shape[0]


def make_step(args, dev, x, y):
    """Returns a closure doing one training step, and the model(s) for reporting."""
    c, h, w = args.input
    teacher = tm.build_model(args.model, c, args.classes, h, w).to(dev)
    if args.mode == "train":
        model = teacher.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)

        fwd = torch.compile(model) if args.compile else model

        def step():
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(fwd(x), y)
            loss.backward()
            opt.step()
            return loss
        return step, model

    student = copy.deepcopy(teacher)
    tm.quantize_model(student, args.model, args.wbits, args.abits)
    student.to(dev)
    tm.quant_init(student, x)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    mp, qp = tm.split_params(student)
    opt_m = torch.optim.Adam(mp, lr=1e-3, weight_decay=1e-4)
    opt_q = torch.optim.Adam(qp, lr=1e-5, weight_decay=0.0)
    student.train()
    # --compile: torch.compile of both networks (the optimizers stay eager), PyTorch's default mode
    t_fwd = torch.compile(teacher) if args.compile else teacher
    s_fwd = torch.compile(student) if args.compile else student

    def step():
        opt_m.zero_grad(set_to_none=True)
        opt_q.zero_grad(set_to_none=True)
        with torch.no_grad():
            zt = t_fwd(x)
        loss = kl_loss(s_fwd(x), zt, T=4.0, alpha=1.0)
        loss.backward()
        opt_m.step()
        opt_q.step()
        return loss
    return step, student


def main():
    ap = argparse.ArgumentParser(description="PyTorch training-step throughput (see header)")
    ap.add_argument("--mode", choices=("train", "sqakd"), default="train")
    ap.add_argument("--model", choices=tm.ARCHS, default="resnet20")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--abits", type=int, default=4)
    ap.add_argument("--input", type=parse_input, default=None, help="CxHxW (default 3x32x32; "
                    "smallcnn 1x28x28)")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the networks (the compilation happens in the warm-up steps)")
    ap.add_argument("--profile", action="store_true",
                    help="after the timed steps, --steps more under torch.profiler: operators by self CPU time per step")
    ap.add_argument("--cudnn-benchmark", action="store_true",
                    help="torch.backends.cudnn.benchmark = True (default: PyTorch's default, off)")
    args = ap.parse_args()
    if args.input is None:
        args.input = parse_input(DEFAULT_INPUT.get(args.model, "3x32x32"))
    for flag in ("batch", "threads", "steps", "classes"):
        if getattr(args, flag) < 1:
            ap.error(f"--{flag} must be >= 1")
    if not (1 <= args.wbits <= 8 and 1 <= args.abits <= 8):
        ap.error("--wbits and --abits must be 1..8")
    if args.device == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda: torch sees no GPU")

    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    c, h, w = args.input
    x = torch.randn(args.batch, c, h, w, device=dev)
    y = torch.randint(0, args.classes, (args.batch,), device=dev)
    step, model = make_step(args, dev, x, y)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(args.warmup):
        step()
    sync()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    loss = None
    if dev.type == "cuda":
        # as `sqakd bench step` does: queue every step, synchronise once at the end (a sync per
        # step would drain the launch queue and bill PyTorch for idle GPU time)
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        sync()
        times = [(time.perf_counter() - t0) / args.steps] * args.steps
    else:
        for _ in range(args.steps):
            t0 = time.perf_counter()
            loss = step()
            sync()
            times.append(time.perf_counter() - t0)
    total = sum(times)
    ms_step = 1e3 * total / len(times)
    res = {
        "tool": "bench_torch",
        "mode": args.mode,
        "model": args.model,
        "device": args.device,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "input": "x".join(map(str, args.input)),
        "classes": args.classes,
        "wbits": args.wbits if args.mode == "sqakd" else 32,
        "abits": args.abits if args.mode == "sqakd" else 32,
        "compiled": bool(args.compile),
        "steps": args.steps,
        "warmup": args.warmup,
        "ms_per_step": round(ms_step, 3),
        "ms_median": round(1e3 * sorted(times)[len(times) // 2], 3),
        "img_per_s": round(args.batch * len(times) / total, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "params": sum(p.numel() for p in model.parameters()),
        "last_loss": round(float(loss.detach()), 6),
        "torch": torch.__version__,
        "cudnn_benchmark": args.cudnn_benchmark,
    }
    if dev.type == "cuda":
        res["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)
        res["gpu"] = torch.cuda.get_device_name()
    if args.profile:
        from torch.profiler import profile, ProfilerActivity
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(args.steps):
                step()
            sync()
        ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
        res["profile"] = [{"op": e.key, "calls_per_step": e.count / args.steps,
                           "self_ms_per_step": round(e.self_cpu_time_total / 1e3 / args.steps, 4)}
                          for e in ops if e.self_cpu_time_total / 1e3 / args.steps >= 0.01]
        if not args.json:
            print("PyTorch operators by self CPU time, ms per step (torch.profiler):")
            for r in res["profile"]:
                print(f"  {r['op']:<44} {r['self_ms_per_step']:10.3f}  ({r['calls_per_step']:g} calls)")
    if args.json:
        print(json.dumps(res))
    else:
        print(f"torch {res['torch']} {args.mode} {args.model} {args.device} batch {args.batch} "
              f"{'cudnn.benchmark ' if args.cudnn_benchmark else ''}"
              f"threads {res['threads']}: {res['ms_per_step']:.1f} ms/step (median "
              f"{res['ms_median']:.1f}), {res['img_per_s']:.1f} img/s, peak RSS "
              f"{res['peak_rss_mb']:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
