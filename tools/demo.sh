#!/usr/bin/env bash
# make demo: trains (or reuses) a full-precision Fashion-MNIST teacher with labels, then distills
# W4A4 and W2A2 students from it WITHOUT labels (SQAKD), and prints a results table.
# Environment: SQAKD_DEMO_DIR (default runs/demo), THREADS (default: all cores),
#              TEACHER_EPOCHS (default 6), STUDENT_EPOCHS (default 2).
set -euo pipefail
BIN=${SQAKD_BIN:-build/sqakd}
DIR=${SQAKD_DEMO_DIR:-runs/demo}
THREADS=${THREADS:-$(nproc)}
TE=${TEACHER_EPOCHS:-6}
SE=${STUDENT_EPOCHS:-2}
mkdir -p "$DIR"
T="$DIR/teacher/best.safetensors"
if [ -f "$T" ]; then
  echo "== reusing teacher $T"
else
  echo "== training the full-precision teacher (smallcnn, Fashion-MNIST, $TE epochs, labels)"
  "$BIN" train --model smallcnn --data fashion-mnist --epochs "$TE" --batch 128 --lr 0.05 --wd 5e-4 \
    --augment flip --threads "$THREADS" --seed 1 --out "$DIR/teacher"
fi
row() { # name json seconds
  /usr/bin/env python3 - "$@" <<'PY'
import json, sys
name, js, secs = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
f = lambda v, p: "-" if v is None else f"{v:.{p}f}"
bits = "W32A32" if js["quantizer"] == "none" else f"W{js['wbits']}A{js['abits']}"
print(f"| {name:<17} | {bits:<6} | {js['quantizer']:<6} | {f(js.get('top1'),2):>8} | {f(js.get('agreement'),2):>9} | {f(js.get('kl'),4):>7} | {secs:>7.0f} |")
PY
}
results=()
teacher_json=$("$BIN" eval "$T" --data fashion-mnist --teacher "$T" --json --threads "$THREADS")
results+=("$(row teacher "$teacher_json" 0)")
for wa in 4 2; do
  S="$DIR/ewgs_w${wa}a${wa}"
  echo "== SQAKD: ewgs W${wa}A${wa} student, no labels ($SE epochs)"
  t0=$(date +%s)
  "$BIN" distill --teacher "$T" --data fashion-mnist --quantizer ewgs --wbits "$wa" --abits "$wa" \
    --epochs "$SE" --batch 128 --threads "$THREADS" --seed 1 --out "$S"
  t1=$(date +%s)
  js=$("$BIN" eval "$S/last.safetensors" --data fashion-mnist --teacher "$T" --json --threads "$THREADS")
  results+=("$(row "SQAKD (no labels)" "$js" $((t1 - t0)))")
done
echo
echo "| model             | bits   | quant  | test acc | agreement | KL      | time s  |"
echo "|-------------------|--------|--------|----------|-----------|---------|---------|"
printf '%s\n' "${results[@]}"
echo
echo "checkpoints under $DIR/ (safetensors; 'sqakd info FILE' shows them)"
