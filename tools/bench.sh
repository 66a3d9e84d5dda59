#!/usr/bin/env bash
# make bench: throughput figures (never assertions). Fake-quant/KL kernel bandwidth on the CPU
# backend, then one training step (full precision, and SQAKD W4A4) against the same step in
# PyTorch on the same machine and threads when Debian's PyTorch is installed
# (SQAKD_WITH_TORCH=1 make deps). THREADS (2), BATCH (128), MODEL (resnet20), REPS (3).
set -euo pipefail
export SQAKD_BIN=${SQAKD_BIN:-build/sqakd}
echo "== kernels (CPU backend)"
"$SQAKD_BIN" bench kernels --device cpu --sizes 1M,4M
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  for mode in fp sqakd; do
    echo "== $mode training step, sqakd vs PyTorch (interleaved)"
    MODE=$mode REPS=${REPS:-3} bash tools/bench_ratio.sh
  done
else
  echo "(PyTorch not installed: 'SQAKD_WITH_TORCH=1 make deps' for the comparison)"
  "$SQAKD_BIN" bench step --fp --model "${MODEL:-resnet20}" --batch "${BATCH:-128}" --threads "${THREADS:-2}"
  "$SQAKD_BIN" bench step --model "${MODEL:-resnet20}" --batch "${BATCH:-128}" --threads "${THREADS:-2}"
fi
