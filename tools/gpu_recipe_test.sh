#!/bin/bash
# gpu_recipe_test.sh BIN DEVICE DIR: tools/gpu_recipe.sh with a tiny budget (96 random images as
# .npy, one epoch of 2 steps per phase) on BIN, checking what it printed and wrote: both phases ran,
# each printed its time split, the result table names the teacher and both students with their
# agreement, and every run directory was committed. `make test-recipe` runs it on the CUDA backend
# under cuemu (the CUDA code on the CPU emulation), or on the CPU backend where cuemu is not built.
set -u -o pipefail
BIN=$1 DEVICE=$2 DIR=$3
fail() { echo "gpu_recipe_test: FAIL: $*"; exit 1; }
rm -rf -- "$DIR" && mkdir -p -- "$DIR" || fail "cannot create $DIR"
/usr/bin/python3 -c "
import numpy as np, sys
r = np.random.default_rng(0)
np.save(sys.argv[1] + '/x.npy', r.random((96, 3, 32, 32), dtype=np.float32))
np.save(sys.argv[1] + '/y.npy', (np.arange(96) % 10).astype(np.int64))" "$DIR" || fail "numpy could not write the data"
out=$(tools/gpu_recipe.sh --bin "$BIN" --device "$DEVICE" --data "npy:$DIR/x.npy,$DIR/y.npy" --holdout 0.25 \
      --teacher-epochs 1 --student-epochs 1 --max-steps 2 --batch 16 --out "$DIR/out" 2>&1)
rc=$?
echo "$out" | sed 's/^/  /'
[ $rc = 0 ] || fail "gpu_recipe.sh exited $rc"
[ "$(echo "$out" | grep -c '^wall time [0-9.]* s: waiting for data')" = 2 ] || fail "expected the time split of both phases"
echo "$out" | grep -Eq '^teacher: [0-9.]+ s, best top-1 [0-9.]+ %' || fail "no teacher line with its time and top-1"
for s in ewgs_w4a4 ewgs_w2a2; do
  echo "$out" | grep -Eq "^$s .*agreement with the teacher [0-9.]+ %" || fail "no result row for $s"
  [ -f "$DIR/out/students/$s/last.state.safetensors" ] || fail "$s was not committed"
  [ "$(grep -c '"epoch":1,' "$DIR/out/students/$s/metrics.jsonl")" = 1 ] || fail "$s: expected one metrics line"
done
[ -f "$DIR/out/teacher/best.safetensors" ] || fail "the teacher was not committed"
echo "$out" | grep -Eq '^wall time: teacher [0-9.]+ s, students [0-9.]+ s, total [0-9.]+ s' || fail "no total line"
tools/gpu_recipe.sh --bin "$BIN" --batch 0x > /dev/null 2>&1 && fail "a bad --batch was accepted"
echo "gpu_recipe_test: ok ($DEVICE)"
