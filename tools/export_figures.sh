#!/usr/bin/env bash
# export_figures.sh: the figures of issue 18 items 3 and 7 on real data (docs/results.md, "ONNX
# export: agreement on CIFAR-10" and "Deployment"), not part of `make test` (tens of minutes on 2
# cores):
#   - a resnet20 teacher trained on CIFAR-10 (EPOCHS epochs), then students distilled from it
#     label-free (ewgs, pact, lsq, dorefa at W8A8, W4A4, W2A2, W1A1; STEPS steps each);
#   - each student's predictions on the CIFAR-10 test split by `sqakd eval --dump-logits` against
#     its exported ONNX model run in onnxruntime (default optimisations) on the same images:
#     agreement and the accuracy of both;
#   - the deployment figure: latency per image at batch 1 and 64 and file size of the W8A8 and W4A4
#     students and of an imported torchvision resnet18 at 64x64 against their FP32 teachers
#     (tools/ort_bench.py, alternated runs, medians), with the ops onnxruntime ran.
# Usage: tools/export_figures.sh [OUTDIR]   (CIFAR10=DIR, EPOCHS=N, STEPS=N, BIN=build/sqakd)
set -euo pipefail
OUT=${1:-build/export_figures}
BIN=${BIN:-build/sqakd}
PY=/usr/bin/python3
CIFAR=${CIFAR10:-../shared/data/cifar10}
EPOCHS=${EPOCHS:-2}
STEPS=${STEPS:-150}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT"
DATA="cifar10:$CIFAR"
T="$OUT/teacher"
if [ ! -f "$T/best.safetensors" ]; then
  "$BIN" train --model resnet20 --data "$DATA" --epochs "$EPOCHS" --batch 128 --out "$T" --overwrite --quiet
fi
# the test split as a tensor: pixels in [0, 1], NCHW, in the split's order (what sqakd eval reads)
if [ ! -f "$OUT/test.npy" ]; then
  $PY - "$CIFAR/test_batch.bin" "$OUT/test.npy" "$OUT/test_labels.npy" <<'EOF'
import sys, numpy as np
raw = np.fromfile(sys.argv[1], dtype=np.uint8).reshape(-1, 3073)
np.save(sys.argv[2], (raw[:, 1:].reshape(-1, 3, 32, 32).astype(np.float32) / 255.0))
np.save(sys.argv[3], raw[:, 0].astype(np.int64))
EOF
fi
"$BIN" export "$T/best.safetensors" --onnx "$OUT/teacher.onnx" > /dev/null
row() {  # sqakd's logits, onnxruntime's, labels, quantizer, bits -> one table row
  $PY - "$@" <<'EOF'
import sys, numpy as np
a, o, y = np.load(sys.argv[1]), np.load(sys.argv[2]), np.load(sys.argv[3])
pa, po = a.argmax(1), o.argmax(1)
print(f"| {sys.argv[4]} | W{sys.argv[5]}A{sys.argv[5]} | {100 * (pa == y).mean():.2f} | {100 * (po == y).mean():.2f} | "
      f"{100 * (pa == po).mean():.2f}% | {np.abs(a - o).max():.3g} |")
EOF
}
echo "| quantizer | bits | sqakd top-1 | onnxruntime top-1 | agreement | max abs logit diff |"
echo "|---|---|---:|---:|---:|---:|"
for q in ewgs pact lsq dorefa; do
  for b in 8 4 2 1; do
    S="$OUT/${q}_w${b}a${b}"
    if [ ! -f "$S/last.safetensors" ]; then
      "$BIN" distill --teacher "$T/best.safetensors" --data "$DATA" --quantizer $q --wbits $b --abits $b --epochs 1 \
        --max-steps "$STEPS" --batch 64 --out "$S" --overwrite --quiet > "$S.log" 2>&1 || { echo "| $q | W${b}A${b} | distill failed |"; continue; }
    fi
    [ -f "$S/sqakd.npy" ] || "$BIN" eval "$S/last.safetensors" --data "$DATA" --dump-logits "$S/sqakd.npy" > "$S/eval.txt"
    if ! "$BIN" export "$S/last.safetensors" --onnx "$S/student.onnx" > "$S/export.txt" 2>&1; then
      echo "| $q | W${b}A${b} | not exported: $(head -1 "$S/export.txt" | cut -c1-120) |"
      continue
    fi
    $PY tools/ort_run.py "$S/student.onnx" --input "$OUT/test.npy" --out "$S/ort.npy"
    row "$S/sqakd.npy" "$S/ort.npy" "$OUT/test_labels.npy" "$q" "$b"
  done
done
echo
echo "lsq exported with --int-kernels (onnxruntime's fused integer kernels):"
for b in 8 4 2; do
  S="$OUT/lsq_w${b}a${b}"
  "$BIN" export "$S/last.safetensors" --onnx "$S/student_int.onnx" --int-kernels > /dev/null
  $PY tools/ort_run.py "$S/student_int.onnx" --input "$OUT/test.npy" --out "$S/ort_int.npy"
  row "$S/sqakd.npy" "$S/ort_int.npy" "$OUT/test_labels.npy" lsq-int "$b"
done
echo
echo "## deployment (onnxruntime on this CPU)"
for b in 8 4; do
  for v in "" _int; do
    echo "### resnet20 CIFAR-10 lsq W${b}A${b}${v:+, --int-kernels}"
    $PY tools/ort_bench.py --fp32 "$OUT/teacher.onnx" --q "$OUT/lsq_w${b}a${b}/student$v.onnx" --batch 1,64 --runs 20
  done
done
# an imported torchvision resnet18 at 3x64x64 (BatchNorm kept; tools/onnx_models.py), lsq students
# distilled a few steps on 64x64 images (R18DIR: onnx_models.py's output with its img64 folder,
# as make test-onnx leaves it in build/onnx)
R18DIR=${R18DIR:-build/onnx}
if [ -f "$R18DIR/resnet18_bn.onnx" ] && [ -d "$R18DIR/img64" ]; then
  "$BIN" import "$R18DIR/resnet18_bn.onnx" --out "$OUT/r18_teacher.safetensors" > /dev/null
  "$BIN" export "$OUT/r18_teacher.safetensors" --onnx "$OUT/r18_teacher.onnx" > /dev/null
  for b in 8 4; do
    R="$OUT/r18_lsq_w${b}a${b}"
    [ -f "$R/last.safetensors" ] || "$BIN" distill --teacher "$R18DIR/resnet18_bn.onnx" --data "folder:$R18DIR/img64" \
      --quantizer lsq --wbits $b --abits $b --epochs 1 --max-steps 4 --batch 8 --out "$R" --overwrite --quiet
    "$BIN" export "$R/last.safetensors" --onnx "$R/student.onnx" > /dev/null
    "$BIN" export "$R/last.safetensors" --onnx "$R/student_int.onnx" --int-kernels > /dev/null
    for v in "" _int; do
      echo "### imported resnet18 3x64x64 lsq W${b}A${b}${v:+, --int-kernels}"
      $PY tools/ort_bench.py --fp32 "$OUT/r18_teacher.onnx" --q "$R/student$v.onnx" --batch 1,64 --runs 10
    done
  done
fi
