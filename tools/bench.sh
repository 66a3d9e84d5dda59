#!/usr/bin/env bash
# make bench: throughput figures (never assertions). Fake-quant/KL kernel bandwidth on the CPU
# backend (against PyTorch eager's when Debian's PyTorch is installed), then one training step (full precision, and SQAKD W4A4) against the same step in
# PyTorch on the same machine and threads when Debian's PyTorch is installed
# (SQAKD_WITH_TORCH=1 make deps). THREADS (2), BATCH (128), MODEL (resnet20), REPS (3).
# With a usable GPU, also the CUDA kernels and the GPU step (resnet20, vgg8, batch 256) against
# PyTorch on the GPU (python3's torch, when it sees the GPU).
set -euo pipefail
export SQAKD_BIN=${SQAKD_BIN:-build/sqakd}
echo "== kernels (CPU backend)"
"$SQAKD_BIN" bench kernels --device cpu --sizes 1M,4M
if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  echo "== fake-quant and KL kernels, sqakd vs PyTorch eager (interleaved)"
  REPS=${REPS:-3} bash tools/bench_kernels_ratio.sh
  for mode in fp sqakd; do
    echo "== $mode training step, sqakd vs PyTorch (interleaved)"
    MODE=$mode REPS=${REPS:-3} bash tools/bench_ratio.sh
  done
else
  echo "(PyTorch not installed: 'SQAKD_WITH_TORCH=1 make deps' for the comparison)"
  "$SQAKD_BIN" bench step --fp --model "${MODEL:-resnet20}" --batch "${BATCH:-128}" --threads "${THREADS:-2}"
  "$SQAKD_BIN" bench step --model "${MODEL:-resnet20}" --batch "${BATCH:-128}" --threads "${THREADS:-2}"
fi
# GPU figures when a usable CUDA device is present (docs/gpu-validation.md has the full set:
# tools/gpu_validate.sh)
if "$SQAKD_BIN" bench step --device cuda --batch 8 --steps 1 --warmup 0 >/dev/null 2>&1; then
  echo "== kernels (CUDA backend)"
  "$SQAKD_BIN" bench kernels --device cuda --sizes 16M,256M
  if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    echo "== fake-quant and KL kernels on the GPU, sqakd vs PyTorch eager (interleaved)"
    DEVICE=cuda PY=python3 REPS=2 bash tools/bench_kernels_ratio.sh
  fi
  for m in resnet20 vgg8; do
    echo "== SQAKD step on the GPU, $m batch 256: sqakd eager, sqakd with the step as a CUDA graph (the default), PyTorch eager"
    SQAKD_CUDA_GRAPH=0 "$SQAKD_BIN" bench step --device cuda --model $m --batch 256 --steps 200 --warmup 20
    SQAKD_CUDA_GRAPH=1 "$SQAKD_BIN" bench step --device cuda --model $m --batch 256 --steps 200 --warmup 20
    if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
      python3 tools/bench_torch.py --device cuda --mode sqakd --model $m --batch 256 --steps 50 --warmup 10
    fi
  done
else
  echo "(no usable GPU: CUDA figures skipped)"
fi
