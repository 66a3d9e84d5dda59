#!/usr/bin/env bash
# crash_campaign.sh: random kill -9 points (make test-crash). For train, distill and a
# multi-student distill: an uninterrupted reference run, then KILLS runs (default 20) each killed
# with SIGKILL after a random delay within 80 % of the reference's wall time, resumed with --resume (or
# started again when no epoch was committed), and compared byte for byte with the reference (last,
# best and state files of every run directory, one metrics.jsonl line per epoch, no temporary file
# left). Prints one line per command and exits non-zero on the first difference.
set -euo pipefail
BIN=${SQAKD_BIN:-build/sqakd}
KILLS=${KILLS:-20}
EPOCHS=${EPOCHS:-3}
[ -x "$BIN" ] || { echo "crash_campaign: $BIN not built (make)" >&2; exit 2; }
W=$(mktemp -d /tmp/sqakd_crash_XXXXXX)
trap 'rm -rf "$W"' EXIT
python3 - "$W" <<'PY'
import random, struct, sys
w = sys.argv[1]; n = 320; random.seed(7)
with open(f"{w}/img.idx", "wb") as f, open(f"{w}/lab.idx", "wb") as g:
    f.write(struct.pack(">IIII", 0x803, n, 16, 16)); g.write(struct.pack(">II", 0x801, n))
    for i in range(n):
        f.write(bytes((160 if p % 3 == i % 3 else 40) + random.randrange(64) for p in range(256))); g.write(bytes([i % 3]))
PY
common="--epochs $EPOCHS --batch 32 --threads 2 --holdout 0.2 --quiet"
"$BIN" train --model smallcnn --data "idx:$W/img.idx,$W/lab.idx" --epochs 1 --batch 32 --holdout 0.2 --quiet --out "$W/teacher"
declare -A ARGS SUBS
ARGS[train]="train --model smallcnn --data idx:$W/img.idx,$W/lab.idx --lr 0.05 $common"
SUBS[train]="."
ARGS[distill]="distill --teacher $W/teacher/last.safetensors --data idx:$W/img.idx --quantizer ewgs --wbits 2 --abits 2 $common"
SUBS[distill]="."
ARGS[multi]="distill --teacher $W/teacher/last.safetensors --data idx:$W/img.idx --students ewgs:w2a2,lsq:4,pact:w4a4 $common"
SUBS[multi]="ewgs_w2a2 lsq_w4a4 pact_w4a4"
fail=0
for name in train distill multi; do
  args=${ARGS[$name]}
  t0=$(date +%s%N)
  # shellcheck disable=SC2086
  "$BIN" $args --out "$W/${name}_ref"
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  resumed=0 restarted=0 finished=0
  for k in $(seq 1 "$KILLS"); do
    d="$W/${name}_$k"
    delay=$(python3 -c "import random; print(random.uniform(0, 0.8 * $ms / 1000.0))")  # runs get faster as the machine quietens
    # shellcheck disable=SC2086
    "$BIN" $args --out "$d" & pid=$!
    sleep "$delay"
    if kill -9 "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; else wait "$pid" || true; finished=$((finished + 1)); fi
    state=0
    for s in ${SUBS[$name]}; do [ -e "$d/$s/last.state.safetensors" ] && state=1; done
    if [ $state = 1 ]; then "$BIN" "${args%% *}" --resume "$d" --quiet; resumed=$((resumed + 1))
    else
      # shellcheck disable=SC2086
      "$BIN" $args --out "$d"; restarted=$((restarted + 1))
    fi
    for s in ${SUBS[$name]}; do
      for f in last.safetensors best.safetensors last.state.safetensors; do
        cmp -s "$W/${name}_ref/$s/$f" "$d/$s/$f" || { echo "crash_campaign: $name kill $k (after ${delay}s): $s/$f differs" >&2; fail=1; }
      done
      [ "$(grep -c '^{"epoch":' "$d/$s/metrics.jsonl")" = "$EPOCHS" ] || { echo "crash_campaign: $name kill $k: $s/metrics.jsonl has the wrong lines" >&2; fail=1; }
      if ls "$d/$s" | grep -q '\.tmp\.'; then echo "crash_campaign: $name kill $k: temporary file left in $s" >&2; fail=1; fi
    done
    rm -rf "$d"
  done
  echo "crash_campaign: $name: $KILLS random kill -9 points over a ${ms} ms run: $resumed resumed, $restarted started again ($finished ended before the kill); $([ $fail = 0 ] && echo 'every final file byte-identical' || echo DIFFERENCES)"
  [ $fail = 0 ] || exit 1
done
