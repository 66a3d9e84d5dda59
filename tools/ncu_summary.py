#!/usr/bin/env python3
"""ncu_summary.py: GPU time per kernel from an Nsight Compute CSV of gpu__time_duration.sum.

  ncu --clock-control none --metrics gpu__time_duration.sum --launch-skip S --launch-count N \
      --csv ./build/gpu/sqakd bench step --device cuda ... > ncu.csv
  python3 tools/ncu_summary.py ncu.csv [steps | auto]

Prints the total GPU time of the profiled launches (divided by `steps`, when given, for a per-step
figure) and the kernels sorted by their share. With `auto` it keeps whole SQAKD steps only: the
launches from the first KL kernel (one per step) up to the last one, excluded, which is
(number of KL launches - 1) steps, however many launches a step makes. ncu serialises kernels, so the total is the sum of
kernel times with no overlap and no launch gaps: a lower bound of the step's GPU time."""
import csv
import io
import re
import sys
from collections import defaultdict


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: ncu_summary.py NCU.csv [steps]")
    auto = len(sys.argv) > 2 and sys.argv[2] == "auto"
    steps = float(sys.argv[2]) if len(sys.argv) > 2 and not auto else 1.0
    text = open(sys.argv[1], errors="replace").read()
    start = text.find('"ID"')
    if start < 0:
        sys.exit("ncu_summary.py: no CSV header (\"ID\", ...) in " + sys.argv[1])
    rows = list(csv.DictReader(io.StringIO(text[start:])))
    scale = {"nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3, "second": 1e6}
    rows = [r for r in rows if r.get("Metric Name") == "gpu__time_duration.sum"]
    if auto:
        kl = [i for i, r in enumerate(rows) if re.match(r"kl_(tile|rows|wide)_kernel", r.get("Kernel Name", ""))]
        if len(kl) < 2:
            sys.exit(f"ncu_summary.py: {len(kl)} KL launches in the profile: less than one whole "
                     "step (profile more launches)")
        rows = rows[kl[0]:kl[-1]]
        steps = float(len(kl) - 1)
    tot = defaultdict(float)
    cnt = defaultdict(int)
    for r in rows:
        try:
            v = float(r["Metric Value"].replace(",", ""))
        except ValueError:
            continue
        us = v * scale.get(r.get("Metric Unit", "nsecond"), 1e-3)
        name = re.sub(r"\(.*", "", r.get("Kernel Name", "?"))[:70]
        tot[name] += us
        cnt[name] += 1
    total = sum(tot.values())
    print(f"ncu: {sum(cnt.values())} launches, {total / 1e3:.3f} ms of kernel time"
          f" ({total / 1e3 / steps:.3f} ms per step over {steps:g} steps)")
    for name, us in sorted(tot.items(), key=lambda kv: -kv[1])[:30]:
        print(f"  {100 * us / total:5.1f}%  {us / steps:9.1f} us/step  {cnt[name] / steps:6.1f}x  {name}")


if __name__ == "__main__":
    main()
