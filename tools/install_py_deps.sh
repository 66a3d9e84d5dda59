#!/usr/bin/env bash
# Installs the Python side of the ONNX import/export tests (issue 18) and of the PyTorch twins
# (make test-torch: torch and numpy) for Debian's /usr/bin/python3,
# only what is missing; silent when all is present, safe to run again.
#   apt:  python3-torch python3-torchvision python3-numpy python3-onnx python3-pip, python3-pil (the
#         folder resize compared with torchvision, tests/test_data_pil.c), and for the sqakd
#         Python package (python/, make test-py) python3-pytest python3-venv python3-setuptools python3-wheel
#   PyPI: onnxruntime (Debian 12 does not package it), onnx 1.16.2 and ml_dtypes (see below);
#         tensorboard (make test-tb)
# If PyPI cannot be reached, one warning line and exit 0: the tests that need onnxruntime then skip
# with a reason. Any other failure is an error (one line, non-zero exit).
set -euo pipefail
PY=/usr/bin/python3
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

need=(python3 python3-torch python3-torchvision python3-numpy python3-onnx python3-pip python3-pil
      python3-pytest python3-venv python3-setuptools python3-wheel)   # the last four: the Python package (test-py)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "sqakd: installing missing packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# tensorboard (make test-tb reads sqakd's event files back with it), from PyPI: numpy pinned to the
# version installed, as below; unreachable PyPI is a warning (the test then skips, saying why)
if ! "$PY" -c 'import tensorboard.backend.event_processing.event_accumulator' 2>/dev/null; then
  echo "sqakd: installing tensorboard from PyPI for $PY"
  tblog=$(mktemp); tbcons=$(mktemp)
  "$PY" -c 'import numpy; print(f"numpy=={numpy.__version__}")' >"$tbcons"
  if ! $SUDO "$PY" -m pip install --quiet --break-system-packages --disable-pip-version-check \
       --root-user-action=ignore --timeout 20 --retries 1 -c "$tbcons" tensorboard >"$tblog" 2>&1; then
    if grep -qiE 'NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection (refused|reset)|timed out|ProxyError|SSLError|Could not fetch URL' "$tblog"; then
      echo "sqakd: warning: PyPI unreachable, tensorboard not installed; make test-tb will skip" >&2
    else
      echo "sqakd: pip could not install tensorboard: $(grep -E 'ERROR|error' "$tblog" | tail -1)" >&2
      rm -f "$tblog" "$tbcons"
      exit 1
    fi
  fi
  rm -f "$tblog" "$tbcons"
fi

# NCCL for the CUDA backend's gradient all-reduce (data-parallel runs, docs/scaling.md), where nvcc
# is and no NCCL is (the CUDA toolkit's own or Debian's libnccl-dev, which the Makefile looks for
# first): PyPI's nvidia-nccl-cuXX for the CUDA major version nvcc reports; unreachable PyPI is a
# warning (the build then all-reduces through host memory)
NVCC=$(command -v nvcc || { [ -x /usr/local/cuda/bin/nvcc ] && echo /usr/local/cuda/bin/nvcc; } || true)
if [ -n "$NVCC" ] && [ ! -e /usr/local/cuda/include/nccl.h ] && [ ! -e /usr/include/nccl.h ] &&
   ! "$PY" -c 'import nvidia.nccl, os, sys; d = os.path.dirname(nvidia.nccl.__file__); sys.exit(not os.path.exists(d + "/include/nccl.h"))' 2>/dev/null; then
  cuda_major=$("$NVCC" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p' | head -1)
  if [ -n "$cuda_major" ]; then
    echo "sqakd: installing nvidia-nccl-cu$cuda_major from PyPI for $PY"
    nlog=$(mktemp)
    if ! $SUDO "$PY" -m pip install --quiet --break-system-packages --disable-pip-version-check \
         --root-user-action=ignore --timeout 20 --retries 1 "nvidia-nccl-cu$cuda_major" >"$nlog" 2>&1; then
      if grep -qiE 'NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection (refused|reset)|timed out|ProxyError|SSLError|Could not fetch URL' "$nlog"; then
        echo "sqakd: warning: PyPI unreachable, NCCL not installed; the CUDA build all-reduces through host memory" >&2
      else
        echo "sqakd: pip could not install nvidia-nccl-cu$cuda_major: $(grep -E 'ERROR|error' "$nlog" | tail -1)" >&2
        rm -f "$nlog"
        exit 1
      fi
    fi
    rm -f "$nlog"
  fi
fi

# onnxruntime.quantization (the QDQ stand-in of tools/ort_bench.py) needs ml_dtypes and onnx >= 1.13
# (onnx.reference); Debian 12's python3-onnx is 1.12, so onnx 1.16.2 from PyPI shadows it (in
# /usr/local): the newest that needs no numpy 2. onnxruntime itself needs protobuf >= 4.25, so pip
# also brings a newer protobuf into /usr/local, shadowing Debian's 3.21 (Debian's torch 1.13 and
# onnx 1.12 work with it). numpy is pinned to the version installed (Debian's 1.24): pip must never
# replace it under Debian's torch; a package that would need a newer one fails here instead.
"$PY" -c 'import onnxruntime.quantization' 2>/dev/null && exit 0
echo "sqakd: installing onnxruntime, onnx 1.16.2, ml_dtypes from PyPI for $PY"
log=$(mktemp); cons=$(mktemp); trap 'rm -f "$log" "$cons"' EXIT
"$PY" -c 'import numpy; print(f"numpy=={numpy.__version__}")' >"$cons"
if $SUDO "$PY" -m pip install --quiet --break-system-packages --disable-pip-version-check \
     --root-user-action=ignore --timeout 20 --retries 1 -c "$cons" \
     onnxruntime "onnx==1.16.2" "ml_dtypes>=0.5,<0.6" >"$log" 2>&1 \
   && "$PY" -c 'import onnxruntime.quantization' 2>/dev/null; then
  exit 0
fi
if grep -qiE 'NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection (refused|reset)|timed out|ProxyError|SSLError|Could not fetch URL' "$log"; then
  echo "sqakd: warning: PyPI unreachable, onnxruntime not installed; the ONNX tests that need it will skip" >&2
  exit 0
fi
echo "sqakd: pip could not install onnxruntime/onnx/ml_dtypes: $(grep -E 'ERROR|error' "$log" | tail -1)" >&2
exit 1
