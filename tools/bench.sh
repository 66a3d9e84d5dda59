#!/usr/bin/env bash
# make bench: throughput figures (never assertions). Runs our step benchmark and, when Debian's
# PyTorch is installed, the same step in PyTorch on the same machine and threads, then prints the
# ratio. THREADS (default 2), BATCH (default 128), MODEL (default resnet20).
set -euo pipefail
BIN=${SQAKD_BIN:-build/sqakd}
THREADS=${THREADS:-2}; BATCH=${BATCH:-128}; MODEL=${MODEL:-resnet20}; STEPS=${STEPS:-10}
py() { /usr/bin/python3 -c "import json,sys; print(json.loads(sys.stdin.read())['img_per_s'])"; }
echo "== kernels"
"$BIN" bench kernels --device cpu --sizes 1M,4M
for mode in fp sqakd; do
  flag=""; [ $mode = fp ] && flag="--fp"
  ours=$("$BIN" bench step --model "$MODEL" --batch "$BATCH" --threads "$THREADS" --steps "$STEPS" $flag --json)
  echo "sqakd $mode: $ours"
  if /usr/bin/python3 -c "import torch" 2>/dev/null; then
    tmode=$([ $mode = fp ] && echo train || echo sqakd)
    theirs=$(/usr/bin/python3 tools/bench_torch.py --mode $tmode --model "$MODEL" --batch "$BATCH" \
             --threads "$THREADS" --steps "$STEPS" --json)
    echo "torch $mode: $theirs"
    a=$(echo "$ours" | py); b=$(echo "$theirs" | py)
    /usr/bin/python3 -c "print('ratio $mode (sqakd / pytorch images/s): %.2f' % ($a / $b))"
  else
    echo "(PyTorch not installed: 'apt-get install python3-torch' for the comparison)"
  fi
done
