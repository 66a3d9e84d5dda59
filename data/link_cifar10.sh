#!/usr/bin/env bash
# Links a directory of CIFAR-10 binary files (data_batch_1..5.bin, test_batch.bin) to
# data/cache/cifar10, where the data spec `cifar10` (no directory) looks for them.
#   data/link_cifar10.sh            links ../shared/data/cifar10 (relative to the repository root)
#   data/link_cifar10.sh DIR        links DIR (it may also hold cifar-10-batches-bin/)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
src="${1:-$root/../shared/data/cifar10}"
if [ ! -d "$src" ]; then
  echo "link_cifar10: '$src' is not a directory; pass the folder that holds data_batch_1.bin" >&2
  exit 1
fi
src="$(cd "$src" && pwd)"
[ -f "$src/data_batch_1.bin" ] || { [ -f "$src/cifar-10-batches-bin/data_batch_1.bin" ] && src="$src/cifar-10-batches-bin"; }
missing=()
for f in data_batch_1.bin data_batch_2.bin data_batch_3.bin data_batch_4.bin data_batch_5.bin test_batch.bin; do
  [ -f "$src/$f" ] || missing+=("$f")
done
if [ ${#missing[@]} -eq 6 ]; then
  echo "link_cifar10: no CIFAR-10 binary files in '$src' (see data/README.md)" >&2
  exit 1
fi
[ ${#missing[@]} -gt 0 ] && echo "link_cifar10: warning: '$src' lacks ${missing[*]}" >&2
mkdir -p "$root/data/cache"
dst="$root/data/cache/cifar10"
if [ -e "$dst" ] && [ ! -L "$dst" ]; then
  echo "link_cifar10: '$dst' exists and is not a symlink; remove it first" >&2
  exit 1
fi
ln -sfn "$src" "$dst"
echo "data/cache/cifar10 -> $src"
