#!/usr/bin/env bash
# Distills one student per configuration from one teacher and prints a Markdown table row per run
# (bits, quantizer, loss, test accuracy, agreement, KL, seconds). Used for docs/results.md.
#   tools/students.sh TEACHER DATA EPOCHS OUTDIR CONFIG...     CONFIG = quantizer:wbits:abits:loss
#   e.g. tools/students.sh runs/t/best.safetensors fashion-mnist 1 runs/fm ewgs:4:4:kl ewgs:4:4:ce
# Environment: SQAKD_BIN (build/sqakd), THREADS (2), BATCH (128), EXTRA (more distill flags).
set -euo pipefail
BIN=${SQAKD_BIN:-build/sqakd}; THREADS=${THREADS:-2}; BATCH=${BATCH:-128}
T=$1 DATA=$2 EPOCHS=$3 OUT=$4; shift 4
mkdir -p "$OUT"
echo "| bits | quantizer | training | test acc % | agreement % | KL | time s |"
echo "|---|---|---|---|---|---|---|"
for cfg in "$@"; do
  IFS=: read -r q w a loss <<<"$cfg"
  dir="$OUT/${q}_w${w}a${a}_${loss}"
  t0=$(date +%s.%N)
  if ! "$BIN" distill --teacher "$T" --data "$DATA" --quantizer "$q" --wbits "$w" --abits "$a" --loss "$loss" \
       --epochs "$EPOCHS" --batch "$BATCH" --threads "$THREADS" --seed 1 --out "$dir" ${EXTRA:-} \
       >"$dir.log" 2>&1; then
    echo "| W${w}A${a} | $q | $loss | failed: $(tail -1 "$dir.log") | | | |"; continue
  fi
  t1=$(date +%s.%N)
  js=$("$BIN" eval "$dir/last.safetensors" --data "$DATA" --teacher "$T" --json --threads "$THREADS")
  /usr/bin/env python3 - "$js" "$q" "$w" "$a" "$loss" "$t0" "$t1" <<'PY'
import json, sys
j = json.loads(sys.argv[1]); q, w, a, loss = sys.argv[2:6]; dt = float(sys.argv[7]) - float(sys.argv[6])
name = "SQAKD (KL, no labels)" if loss == "kl" else "QAT (CE, labels)"
top1 = "-" if j.get("top1") is None else f"{j['top1']:.2f}"
print(f"| W{w}A{a} | {q} | {name} | {top1} | {j['agreement']:.2f} | {j['kl']:.4f} | {dt:.0f} |")
PY
done
