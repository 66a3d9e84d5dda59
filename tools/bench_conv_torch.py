#!/usr/bin/python3
"""bench_conv_torch.py: PyTorch CPU reference timings for ResNet-20's conv shapes at batch 128
(forward, backward (grad of input and weight, no bias), fwd+bwd), to compare with tools/bench_conv.c.
Run:  OMP_NUM_THREADS=2 /usr/bin/python3 tools/bench_conv_torch.py [reps] [cpu]
"cpu" times process CPU seconds (use with OMP_NUM_THREADS=1, see tools/bench_conv.c).
Prints one line per shape: name, fwd ms, bwd ms, total ms, each the best of reps after 2 warm-ups
(the best, not the median: the 2 cores are shared, so slower samples measure the neighbours)."""
import os
import sys
import time

import torch
import torch.nn.functional as F

SHAPES = [  # (name, c, h, k, stride)
    ("stem 3->16 @32", 3, 32, 16, 1),
    ("16->16 @32", 16, 32, 16, 1),
    ("16->32 s2 @32", 16, 32, 32, 2),
    ("32->32 @16", 32, 16, 32, 1),
    ("32->64 s2 @16", 32, 16, 64, 2),
    ("64->64 @8", 64, 8, 64, 1),
]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    cpu_clock = len(sys.argv) > 2 and sys.argv[2] == "cpu"
    clock = time.process_time if cpu_clock else time.perf_counter
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n = 128
    print(f"torch {torch.__version__} threads={torch.get_num_threads()} batch={n} reps={reps} "
          f"clock={'process cpu' if cpu_clock else 'wall'}")
    tot_f = tot_b = 0.0
    for name, c, h, k, stride in SHAPES:
        x = torch.randn(n, c, h, h, requires_grad=True)
        w = torch.randn(k, c, 3, 3, requires_grad=True) * 0.1
        w = w.detach().requires_grad_(True)
        gy = None
        tf, tb = [], []
        for it in range(reps + 2):
            t0 = clock()
            y = F.conv2d(x, w, None, stride, 1)
            t1 = clock()
            if gy is None:
                gy = torch.randn_like(y)
            gx, gw = torch.autograd.grad(y, (x, w), gy)
            t2 = clock()
            if it >= 2:
                tf.append((t1 - t0) * 1e3)
                tb.append((t2 - t1) * 1e3)
        f, b = min(tf), min(tb)
        tot_f += f
        tot_b += b
        print(f"{name:16s} fwd {f:8.2f} ms  bwd {b:8.2f} ms  total {f + b:8.2f} ms")
    print(f"{'sum':16s} fwd {tot_f:8.2f} ms  bwd {tot_b:8.2f} ms  total {tot_f + tot_b:8.2f} ms")


if __name__ == "__main__":
    main()
