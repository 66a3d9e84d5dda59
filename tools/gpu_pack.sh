#!/bin/bash
# gpu_pack.sh: prepares, on the development machine, everything tools/gpu_validate.sh needs on a
# lent GPU machine, which has CUDA, cuDNN and PyTorch but neither Criterion nor OpenBLAS and
# cannot install anything:
#   - the binaries, built here: $BIN/sqakd and $BIN/sqakd_cuda_tests (BIN default build/gpu), and
#     the kernel lab's $BIN/lab/lab_tests and $BIN/lab/lab_bench (kernels/lab);
#   - .gpu/libs.tar.xz: the non-system libraries they link. main/ goes first on LD_LIBRARY_PATH;
#     extra/ is used only where the machine has none of its own;
#   - .gpu/teacher.safetensors (a smallcnn Fashion-MNIST teacher: runs/demo's when present,
#     else one epoch trained here) and the Fashion-MNIST t10k IDX files, for the end-to-end
#     distill check.
# .gpu/ is listed in .git/info/exclude, so it travels only when `carry` names it. Then print the
# device tool's carry list. Usage: tools/gpu_pack.sh [BIN]
# BASE=<git revision>: also build that revision's sqakd into build/gpu-base (from a temporary
# git worktree), for gpu_validate.sh's A/B section: the same benchmarks, old and new binary,
# on the same GPU in the same run. KLROWS=1: also build build/gpu-klrows/sqakd with
# -DSQ_KL_ROWS_MAX_K=512 (the old split: K = 1000 through the wide KL kernel instead of the
# register-row one, the default since run 4).
set -euo pipefail
BIN=${1:-${BIN:-build/gpu}}
FM=/usr/share/datasets/fashion-mnist
make --no-print-directory BUILD="$BIN" CI=1 -j"$(nproc)" "$BIN/sqakd" "$BIN/sqakd_cuda_tests" \
    "$BIN/lab/lab_tests" "$BIN/lab/lab_bench"
mkdir -p .gpu
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/main" "$tmp/extra"
# every library the two binaries resolve, minus glibc, the compiler runtime and CUDA's own
ldd "$BIN/sqakd_cuda_tests" "$BIN/sqakd" | awk '/=> \// {print $3}' | sort -u | while read -r lib; do
    base=$(basename "$lib")
    case "$lib" in /usr/local/cuda*) continue ;; esac
    case "$base" in
        libc.so.*|libm.so.*|libdl.so.*|librt.so.*|libpthread.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*) ;;
        libgomp.so.*|libz.so.*|libcrypto.so.*|libresolv.so.*) cp -L "$lib" "$tmp/extra/" ;;
        *) cp -L "$lib" "$tmp/main/" ;;
    esac
done
tar -C "$tmp" -cJf .gpu/libs.tar.xz main extra
CARRY="\"$BIN/sqakd\", \"$BIN/sqakd_cuda_tests\", \"$BIN/lab\", \".gpu\""
if [ -n "${BASE:-}" ]; then
    wt="$tmp/base"
    git worktree add --detach "$wt" "$BASE" >/dev/null
    make --no-print-directory -C "$wt" BUILD=build/gpu CI=1 -j"$(nproc)" build/gpu/sqakd >/dev/null
    mkdir -p build/gpu-base
    cp "$wt/build/gpu/sqakd" build/gpu-base/sqakd
    git -C "$wt" rev-parse --short HEAD >build/gpu-base/REVISION
    git worktree remove --force "$wt"
    echo "build/gpu-base/sqakd: $(cat build/gpu-base/REVISION)"
    CARRY="$CARRY, \"build/gpu-base\""
fi
if [ "${KLROWS:-0}" = 1 ]; then
    nv=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
    make --no-print-directory BUILD=build/gpu-klrows CI=1 NVCC="$nv -DSQ_KL_ROWS_MAX_K=512" \
        -j"$(nproc)" build/gpu-klrows/sqakd >/dev/null
    CARRY="$CARRY, \"build/gpu-klrows/sqakd\""
fi
if [ ! -f .gpu/teacher.safetensors ]; then
    if [ -f runs/demo/teacher/best.safetensors ]; then
        cp runs/demo/teacher/best.safetensors .gpu/teacher.safetensors
    else
        "$BIN/sqakd" train --model smallcnn --data fashion-mnist --epochs 1 --batch 128 --lr 0.05 \
            --device cpu --seed 1 --quiet --out "$tmp/teacher"
        cp "$tmp/teacher/best.safetensors" .gpu/teacher.safetensors
    fi
fi
cp "$FM"/t10k-images-idx3-ubyte.gz "$FM"/t10k-labels-idx1-ubyte.gz .gpu/
du -sh .gpu "$BIN/sqakd" "$BIN/sqakd_cuda_tests"
echo "carry: [$CARRY]"
echo "run:   export OUT=\$OUT BIN=$BIN DEADLINE=420; bash tools/gpu_validate.sh 2>&1"
