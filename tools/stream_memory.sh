#!/usr/bin/env bash
# stream_memory.sh: peak memory of training on an image folder against the folder's size, for the
# streamed folder: dataset (data/README.md's figure). For each N it writes N JPEG images of
# 32x32 (two class folders; PIL from Debian's python3-pil), then runs
#   sqakd train --model smallcnn --data folder:DIR --epochs 1 --batch 8 --lr 0.01 --max-steps 50 --holdout 0.01
# with one compute thread and two loader threads, and prints one row: N, the folder's bytes on
# disk (du), its decoded size (N x 3 x 32 x 32: the pixels an in-memory loader holds, at the
# model's resolution), and the peak resident size of the process (GNU time's %M). With a second
# executable (an older sqakd that decodes folders into memory) its peak is printed alongside.
#   usage: tools/stream_memory.sh [SQAKD [OLD_SQAKD]]     (N list: $SIZES, default 1000 4000 16000 32000)
# Needs /usr/bin/time (Debian's time) and python3-pil. Writes under a mktemp directory, removed
# at the end. Not a test: the figure it prints goes into data/README.md.
set -euo pipefail
BIN=${1:-build/sqakd}
OLD=${2:-}
SIZES=${SIZES:-"1000 4000 16000 32000"}
PY=/usr/bin/python3
[ -x "$BIN" ] || { echo "stream_memory.sh: $BIN is not an executable (build it: make)" >&2; exit 1; }
[ -z "$OLD" ] || [ -x "$OLD" ] || { echo "stream_memory.sh: $OLD is not an executable" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "stream_memory.sh: /usr/bin/time missing (apt-get install time)" >&2; exit 1; }
"$PY" -c 'import PIL, numpy' 2>/dev/null || { echo "stream_memory.sh: $PY needs python3-pil and python3-numpy" >&2; exit 1; }
work=$(mktemp -d /tmp/sqakd_stream_mem_XXXXXX)
trap 'rm -rf "$work"' EXIT

# peak RSS in KiB of one training run on folder $2 by executable $1 (extra flags after), or "fail"
peak() {
  local bin=$1 dir=$2; shift 2
  local out
  if out=$(OPENBLAS_NUM_THREADS=1 /usr/bin/time -f 'PEAK %M' "$bin" train --model smallcnn --data "folder:$dir" \
        --epochs 1 --batch 8 --lr 0.01 --max-steps 50 --holdout 0.01 --threads 1 --quiet "$@" 2>&1); then
    echo "$out" | sed -n 's/^PEAK //p'
  else
    echo fail
  fi
}

# KiB (or "fail") as MiB with one decimal
mib() { [ "$1" = fail ] && echo fail || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

printf '%8s %12s %14s %16s' images "disk MiB" "decoded MiB" "peak RSS MiB"
[ -n "$OLD" ] && printf ' %22s' "in-memory peak MiB"
printf '\n'
for n in $SIZES; do
  dir="$work/f$n"
  "$PY" - "$dir" "$n" <<'EOF'
import os, sys
import numpy as np
from PIL import Image
d, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(n)
y, x = np.mgrid[0:32, 0:32]
base = np.stack([x * 6.0, y * 6.0, (x + y) * 3.0], -1)
for c in "ab":
    os.makedirs(os.path.join(d, c), exist_ok=True)
for i in range(n):
    px = np.clip(base + (i % 2) * 60 + rng.normal(0, 12, (32, 32, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(px).save(os.path.join(d, "ab"[i % 2], "%06d.jpg" % i), quality=75)
EOF
  disk=$(du -sk "$dir" | cut -f1)
  new=$(peak "$BIN" "$dir" --loader-threads 2)
  printf '%8d %12s %14s %16s' "$n" "$(mib "$disk")" "$(awk -v n="$n" 'BEGIN { printf "%.1f", n * 3072 / 1048576 }')" \
    "$(mib "$new")"
  if [ -n "$OLD" ]; then
    old=$(peak "$OLD" "$dir")
    printf ' %22s' "$(mib "$old")"
  fi
  printf '\n'
  rm -rf "$dir"
done
