#!/usr/bin/env bash
# Interleaved, repeated kernel benchmark, ours (`sqakd bench kernels`) vs PyTorch eager
# (tools/bench_kernels_torch.py), same device, sizes, bits, role and threads: prints, per
# fake-quant / KL row, the median times and the speedup (PyTorch's time / ours). A benchmark,
# not a test. DEVICE=cpu|cuda (cpu), SIZES (cpu 1M,4M; cuda 16M,256M), BITS (4), ROLE (act),
# REPS (3), THREADS (2, cpu), MIN_TIME (0.2), PY (the Python with torch: /usr/bin/python3, Debian's;
# on a GPU machine, python3).
set -euo pipefail
BIN=${SQAKD_BIN:-build/sqakd}; DEVICE=${DEVICE:-cpu}; BITS=${BITS:-4}; ROLE=${ROLE:-act}
REPS=${REPS:-3}; THREADS=${THREADS:-2}; MIN_TIME=${MIN_TIME:-0.2}; PY=${PY:-/usr/bin/python3}
if [ "$DEVICE" = cpu ]; then SIZES=${SIZES:-1M,4M}; else SIZES=${SIZES:-16M,256M}; fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for r in $(seq "$REPS"); do
  "$BIN" bench kernels --device "$DEVICE" --sizes "$SIZES" --bits "$BITS" --role "$ROLE" \
    --threads "$THREADS" --min-time "$MIN_TIME" --json >"$tmp/ours.$r"
  "$PY" tools/bench_kernels_torch.py --device "$DEVICE" --sizes "$SIZES" --bits "$BITS" \
    --role "$ROLE" --threads "$THREADS" --min-time "$MIN_TIME" --json >"$tmp/torch.$r"
  echo "rep $r done" >&2
done
"$PY" - "$tmp" "$REPS" <<'PY'
import json, statistics, sys
d, reps = sys.argv[1], int(sys.argv[2])
def key(row):
    return (row["op"], row.get("kind", ""), row.get("role", ""), row.get("bits", 0), row.get("classes", 0), row["elements"])
times = {"ours": {}, "torch": {}}
meta = {}
for who in times:
    for r in range(1, reps + 1):
        j = json.load(open(f"{d}/{who}.{r}"))
        meta[who] = (j.get("backend", ""), j.get("device", ""))
        for row in j["results"]:
            times[who].setdefault(key(row), []).append(row["ms"])
print(f"ours: {meta['ours'][0]} on {meta['ours'][1]}; theirs: {meta['torch'][0]} on {meta['torch'][1]}; "
      f"medians of {reps} alternated runs")
print(f"{'op':<14} {'what':<22} {'elements':>10} {'ours ms':>10} {'torch ms':>10} {'speedup':>8}")
for k in times["ours"]:
    if k not in times["torch"] or k[0] == "copy_d2d":
        continue
    o, t = statistics.median(times["ours"][k]), statistics.median(times["torch"][k])
    what = f"{k[1]} {k[2]} {k[3]}-bit" if k[1] else f"K={k[4]}"
    print(f"{k[0]:<14} {what:<22} {k[5] / 1048576:9.1f}M {o:10.3f} {t:10.3f} {t / o:7.1f}x")
PY
