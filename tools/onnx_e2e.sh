#!/usr/bin/env bash
# onnx_e2e.sh: the ONNX round trips checked by a real runtime (issue 18), run by `make test-onnx`
# (part of `make test`):
#   1. ONNX's own backend node tests (libonnx-testdata) for every op the importer claims, through
#      `sqakd infer` on the CPU backend (tools/onnx_node_tests.py: per-op table, skips with reasons);
#   2. real architectures (torchvision resnet18, mobilenet_v2, shufflenet_v2_x1_0, squeezenet1_1 at
#      3x64x64 with 200 classes, and the zoo's vgg13; each exported with BatchNorm folded and kept,
#      tools/onnx_models.py): imported logits against onnxruntime's (max error 1e-4 of the logits'
#      scale), a few label-free distillation steps on the CPU backend, the student exported and
#      run in onnxruntime against `sqakd infer` of its checkpoint, the teacher's import -> export
#      -> import round trip;
#   3. with SQAKD_CUDA_BIN (a build with the CUDA backend: on a GPU, or the cuemu build that `make
#      test` passes, build/cuemu/sqakd), the node tests, the same imports on the CUDA backend
#      against onnxruntime and one label-free step of each model there.
# Prints one line per check and ends with "N passed, M failed"; exit 1 when anything failed.
# Skips (with the reason, exit 0) only when onnxruntime, torch or the ONNX test data cannot be
# installed on this machine.
set -uo pipefail
BIN=${SQAKD_BIN:-build/sqakd}
OUT=${ONNX_E2E_DIR:-build/onnx}
PY=/usr/bin/python3
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "  ok    $*"; }
bad() { fail=$((fail + 1)); echo "  FAIL  $*"; }

if ! $PY -c "import onnxruntime, torch, torchvision, onnx, numpy" 2>/dev/null; then
  echo "onnx e2e: SKIPPED: onnxruntime / torch / torchvision / onnx cannot be imported by $PY (make deps-py installs them)"
  exit 0
fi
if [ ! -d /usr/share/libonnx-testdata/data/node ]; then
  echo "onnx e2e: SKIPPED: libonnx-testdata is not installed (make deps installs it)"
  exit 0
fi
[ -x "$BIN" ] || { echo "onnx e2e: $BIN is not built"; exit 2; }
mkdir -p "$OUT"

# ---- 1. ONNX's node tests ----
OPS=Conv,BatchNormalization,Relu,Clip,Add,Sub,Mul,Div,MaxPool,AveragePool,GlobalAveragePool,ReduceMean,Flatten
OPS=$OPS,Reshape,Transpose,Gemm,MatMul,Concat,Split,Slice,Dropout,Identity,Constant
# node_tests BIN DEVICE LOG WHAT: the claimed ops' node tests through BIN's infer on DEVICE
node_tests() {
  if $PY tools/onnx_node_tests.py --ops "$OPS" --cmd "$1 infer {model} {inputs} --out {out} --device $2" > "$3" 2>&1; then
    ok "$4: $(tail -1 "$3")"
  else
    bad "$4: $(tail -1 "$3") (see $3)"
    grep -E "^  failed" "$3" | head -20
  fi
}
echo "== ONNX backend node tests through 'sqakd infer' (CPU)"
node_tests "$BIN" cpu "$OUT/node_tests.txt" "node tests"
sed -n '/^| op /,/^[0-9]* passed/p' "$OUT/node_tests.txt"

# ---- 2. real architectures ----
echo "== real architectures"
if ! $PY tools/onnx_models.py --out "$OUT" > "$OUT/models.txt" 2>&1; then
  bad "tools/onnx_models.py failed: $(tail -1 "$OUT/models.txt")"
  echo "$pass passed, $fail failed"
  exit 1
fi
# 64x64 images for the distillation steps: CIFAR-10 test images (shared/data) upscaled, else noise
IMG64="$OUT/img64"
IMG32="$OUT/img32"
if [ ! -d "$IMG64" ] || [ ! -d "$IMG32" ]; then
  $PY - "$OUT" <<'EOF' || { bad "could not make the image folders"; }
import os, sys, numpy as np
from PIL import Image
out = sys.argv[1]
src = None
for cand in ("../shared/data/cifar10", "../../shared/data/cifar10", "/work/shared/data/cifar10"):
    for name in ("test_batch.bin", "cifar-10-batches-bin/test_batch.bin"):
        p = os.path.join(cand, name)
        if os.path.exists(p):
            src = p
            break
    if src:
        break
n = 48
if src:
    raw = np.fromfile(src, dtype=np.uint8, count=n * 3073).reshape(n, 3073)
    imgs = raw[:, 1:].reshape(n, 3, 32, 32).transpose(0, 2, 3, 1)
else:
    imgs = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
for size, d in ((64, "img64"), (32, "img32")):
    for split, lo, hi in (("train", 0, 32), ("test", 32, 48)):
        os.makedirs(os.path.join(out, d, split), exist_ok=True)
        for i in range(lo, hi):
            im = Image.fromarray(imgs[i])
            if size != 32:
                im = im.resize((size, size), Image.BILINEAR)
            im.save(os.path.join(out, d, split, f"{i:03d}.png"))
print("images from", src or "noise")
EOF
fi

for m in resnet18 mobilenet_v2 shufflenet_v2_x1_0 squeezenet1_1 vgg13; do
  data="folder:$IMG64"; [ $m = vgg13 ] && data="folder:$IMG32"
  for v in "" _bn; do
    f="$OUT/$m$v.onnx"
    [ -f "$f" ] || { bad "$m$v: $f missing"; continue; }
    if ! "$BIN" infer "$f" --input "$OUT/$m.input.npy" --out "$OUT/$m$v.sqakd.npy" 2> "$OUT/$m$v.err"; then
      bad "$m$v import: $(head -1 "$OUT/$m$v.err")"
      continue
    fi
    scale=$($PY -c "import numpy as np; print(1e-4 * float(np.abs(np.load('$OUT/$m.ort.npy')).max()))")
    if r=$($PY tools/ort_run.py --compare "$OUT/$m$v.sqakd.npy" "$OUT/$m.ort.npy" --rtol 1e-4 --atol "$scale"); then
      ok "$m$v: imported logits vs onnxruntime: $r"
    else
      bad "$m$v: imported logits vs onnxruntime: $r"
    fi
  done
  # a few label-free distillation steps on the CPU backend, from the folded export
  run="$OUT/run_$m"
  if "$BIN" distill --teacher "$OUT/$m.onnx" --data "$data" --epochs 1 --max-steps 2 --batch 8 --wbits 4 --abits 4 \
       --device cpu --out "$run" --overwrite --quiet > "$OUT/$m.distill.txt" 2>&1 && [ -f "$run/last.safetensors" ]; then
    ok "$m: 2 label-free W4A4 distillation steps (CPU) -> $run/last.safetensors"
  else
    bad "$m: distillation: $(grep -m1 sqakd "$OUT/$m.distill.txt")"
    continue
  fi
  # the student exported and run in onnxruntime against sqakd's own forward of its checkpoint
  if "$BIN" export --help > /dev/null 2>&1; then
    if ! "$BIN" export "$run/last.safetensors" --onnx "$run/student.onnx" > "$OUT/$m.export.txt" 2>&1; then
      bad "$m: export: $(grep -m1 sqakd "$OUT/$m.export.txt")"
      continue
    fi
    "$BIN" infer "$run/last.safetensors" --input "$OUT/$m.input.npy" --out "$run/student.sqakd.npy" 2> "$OUT/$m.err" &&
      $PY tools/ort_run.py "$run/student.onnx" --input "$OUT/$m.input.npy" --out "$run/student.ort.npy" 2>> "$OUT/$m.err"
    if r=$($PY tools/ort_run.py --compare "$run/student.ort.npy" "$run/student.sqakd.npy" --rtol 1e-3 --atol 1e-3 2>&1); then
      ok "$m: exported W4A4 student in onnxruntime vs sqakd: $r"
    else
      bad "$m: exported W4A4 student in onnxruntime vs sqakd: $r $(head -1 "$OUT/$m.err")"
    fi
    # the teacher: import -> export -> import keeps the logits
    if "$BIN" import "$OUT/$m.onnx" --out "$run/teacher.safetensors" > /dev/null 2> "$OUT/$m.err" &&
       "$BIN" export "$run/teacher.safetensors" --onnx "$run/teacher_rt.onnx" > /dev/null 2>> "$OUT/$m.err" &&
       "$BIN" infer "$run/teacher_rt.onnx" --input "$OUT/$m.input.npy" --out "$run/teacher_rt.npy" 2>> "$OUT/$m.err"; then
      if r=$($PY tools/ort_run.py --compare "$run/teacher_rt.npy" "$OUT/$m.sqakd.npy" --rtol 1e-5 --atol "$scale"); then
        ok "$m: import -> export -> import keeps the logits: $r"
      else
        bad "$m: import -> export -> import: $r"
      fi
    else
      bad "$m: import -> export -> import: $(head -1 "$OUT/$m.err")"
    fi
  fi
done
# multi-student runs, sweeps and fine-tuning with labels take an imported graph as they take the zoo's
m=squeezenet1_1
if "$BIN" distill --teacher "$OUT/$m.onnx" --data "folder:$IMG64" --students ewgs:4,lsq:2 --epochs 1 --max-steps 1 \
     --batch 8 --out "$OUT/multi_$m" --overwrite --quiet > "$OUT/multi.txt" 2>&1 &&
   [ -f "$OUT/multi_$m/ewgs_w4a4/last.safetensors" ] && [ -f "$OUT/multi_$m/lsq_w2a2/last.safetensors" ]; then
  ok "$m: a 2-student run (ewgs W4A4, lsq W2A2) from one teacher pass"
else
  bad "$m: 2-student run: $(grep -m1 sqakd "$OUT/multi.txt")"
fi
rm -rf "$OUT/sweep_$m"
if "$BIN" sweep --teacher "$OUT/$m.onnx" --data "folder:$IMG64" --quantizers lsq,ewgs --bits 4 --epochs 1 --max-steps 1 \
     --batch 8 --out "$OUT/sweep_$m" --quiet > "$OUT/sweep.txt" 2>&1 && "$BIN" report "$OUT/sweep_$m" --quiet >> "$OUT/sweep.txt" 2>&1 &&
   [ "$(grep -c '^| [a-z]*_w4a4_s1 | graph ' "$OUT/sweep_$m/report.md")" = 2 ]; then
  ok "$m: a sweep (lsq, ewgs at W4A4) and its report"
else
  bad "$m: sweep: $(grep -m1 sqakd "$OUT/sweep.txt")"
fi
mkdir -p "$OUT/lab64/train/a" "$OUT/lab64/train/b"
for f in "$IMG64"/train/*.png; do n=$(basename "$f" .png); ln -sf "$(cd "$(dirname "$f")" && pwd)/$n.png" "$OUT/lab64/train/$([ $((10#$n % 2)) = 0 ] && echo a || echo b)/$n.png"; done
if "$BIN" train --init "$OUT/$m.onnx" --data "folder:$OUT/lab64" --epochs 1 --max-steps 2 --batch 8 --lr 0.001 \
     --out "$OUT/finetune_$m" --overwrite --quiet > "$OUT/finetune.txt" 2>&1 && [ -f "$OUT/finetune_$m/last.safetensors" ]; then
  ok "$m: fine-tuned with labels from the ONNX file (train --init)"
else
  bad "$m: train --init: $(grep -m1 sqakd "$OUT/finetune.txt")"
fi

# ---- 3. the CUDA backend (a GPU, or cuemu: the CUDA code run on the CPU emulation) ----
CUDA_BIN=${SQAKD_CUDA_BIN:-}
if [ -n "$CUDA_BIN" ] && [ -x "$CUDA_BIN" ]; then
  echo "== the CUDA backend ($CUDA_BIN)"
  node_tests "$CUDA_BIN" cuda "$OUT/node_tests_cuda.txt" "node tests on the CUDA backend"
  for m in resnet18 mobilenet_v2 shufflenet_v2_x1_0 squeezenet1_1 vgg13; do
    data="folder:$IMG64"; [ $m = vgg13 ] && data="folder:$IMG32"
    scale=$($PY -c "import numpy as np; print(1e-4 * float(np.abs(np.load('$OUT/$m.ort.npy')).max()))")
    if "$CUDA_BIN" infer "$OUT/${m}_bn.onnx" --input "$OUT/$m.input.npy" --out "$OUT/$m.cuda.npy" --device cuda \
         2> "$OUT/$m.err" &&
       r=$($PY tools/ort_run.py --compare "$OUT/$m.cuda.npy" "$OUT/$m.ort.npy" --rtol 1e-4 --atol "$scale"); then
      ok "$m: imported logits on the CUDA backend vs onnxruntime: $r"
    else
      bad "$m: imported logits on the CUDA backend: ${r:-$(head -1 "$OUT/$m.err")}"
    fi
    if "$CUDA_BIN" distill --teacher "$OUT/$m.onnx" --data "$data" --epochs 1 --max-steps 1 --batch 2 --wbits 4 --abits 4 \
         --device cuda --out "$OUT/cuda_$m" --overwrite --quiet > "$OUT/$m.cuda.txt" 2>&1 &&
       [ -f "$OUT/cuda_$m/last.safetensors" ]; then
      ok "$m: a label-free W4A4 distillation step on the CUDA backend"
    else
      bad "$m: distillation on the CUDA backend: $(grep -m1 sqakd "$OUT/$m.cuda.txt")"
    fi
  done
elif [ -n "$CUDA_BIN" ]; then
  echo "  (the CUDA backend: $CUDA_BIN is not built, skipped)"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
