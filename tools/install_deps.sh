#!/usr/bin/env bash
# Installs the Debian packages sqakd needs, only those missing; silent when all are present.
set -euo pipefail
need=(build-essential python3 libcriterion-dev libopenblas-dev zlib1g-dev libpng-dev libjpeg-dev
      dataset-fashion-mnist slurm-wlm clang libclang-rt-dev libomp-dev
      libprotobuf-c-dev protobuf-c-compiler python3-onnx libonnx-testdata libcairo2-dev fonts-dejavu-core
      python3-numpy python3-pip python3-setuptools python3-wheel python3-venv   # these five: the Python package
      libopenmpi-dev openmpi-bin)   # data-parallel runs (mpirun, host/dist) and their tests
[ "${SQAKD_WITH_TORCH:-0}" = 1 ] && need+=(python3-torch python3-numpy)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "sqakd: installing missing packages: ${missing[*]}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
