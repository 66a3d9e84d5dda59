#!/usr/bin/env bash
# Interleaved, repeated measurement of one training step, ours vs PyTorch, same machine and threads;
# prints every sample and the ratio of the medians. MODE=fp|sqakd, REPS (5), MODEL, BATCH, THREADS.
set -euo pipefail
BIN=${SQAKD_BIN:-build/sqakd}; MODE=${MODE:-sqakd}; REPS=${REPS:-5}
MODEL=${MODEL:-resnet20}; BATCH=${BATCH:-128}; THREADS=${THREADS:-2}
ours=(); theirs=()
ip() { /usr/bin/python3 -c "import json,sys; j=json.loads(sys.stdin.read()); print(j['img_per_s'], j['peak_rss_mb'])"; }
for r in $(seq "$REPS"); do
  if [ "$MODE" = fp ]; then
    a=$("$BIN" bench step --fp --model "$MODEL" --batch "$BATCH" --threads "$THREADS" --steps 10 --warmup 2 --json | ip)
    b=$(/usr/bin/python3 tools/bench_torch.py --mode train --model "$MODEL" --batch "$BATCH" --threads "$THREADS" --steps 10 --json | ip)
  else
    a=$("$BIN" bench step --model "$MODEL" --wbits 4 --abits 4 --batch "$BATCH" --threads "$THREADS" --steps 10 --warmup 2 --json | ip)
    b=$(/usr/bin/python3 tools/bench_torch.py --mode sqakd --model "$MODEL" --wbits 4 --abits 4 --batch "$BATCH" --threads "$THREADS" --steps 10 --json | ip)
  fi
  echo "rep $r  sqakd: $a   pytorch: $b   (img/s, peak RSS MiB)"
  ours+=("${a%% *}"); theirs+=("${b%% *}")
done
/usr/bin/python3 - "${ours[*]}" "${theirs[*]}" <<'PY'
import statistics, sys
o = [float(x) for x in sys.argv[1].split()]; t = [float(x) for x in sys.argv[2].split()]
mo, mt = statistics.median(o), statistics.median(t)
print(f"median img/s: sqakd {mo:.1f}  pytorch {mt:.1f}  ratio {mo / mt:.2f}")
PY
