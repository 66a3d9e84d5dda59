#!/usr/bin/env bash
# Installs the Python side of the ONNX import/export tests (issue 18) for Debian's /usr/bin/python3,
# only what is missing; silent when all is present, safe to run again.
#   apt:  python3-torch python3-torchvision python3-numpy python3-onnx python3-pip
#   PyPI: onnxruntime (Debian 12 does not package it)
# If PyPI cannot be reached, one warning line and exit 0: the tests that need onnxruntime then skip
# with a reason. Any other failure is an error (one line, non-zero exit).
set -euo pipefail
PY=/usr/bin/python3
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

need=(python3 python3-torch python3-torchvision python3-numpy python3-onnx python3-pip)
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

"$PY" -c 'import onnxruntime' 2>/dev/null && exit 0
echo "sqakd: installing onnxruntime from PyPI for $PY"
log=$(mktemp); trap 'rm -f "$log"' EXIT
if $SUDO "$PY" -m pip install --quiet --break-system-packages --disable-pip-version-check \
     --root-user-action=ignore --timeout 20 --retries 1 onnxruntime >"$log" 2>&1 \
   && "$PY" -c 'import onnxruntime' 2>/dev/null; then
  exit 0
fi
if grep -qiE 'NewConnectionError|Max retries exceeded|Temporary failure in name resolution|Name or service not known|Network is unreachable|Connection (refused|reset)|timed out|ProxyError|SSLError|Could not fetch URL' "$log"; then
  echo "sqakd: warning: PyPI unreachable, onnxruntime not installed; the ONNX tests that need it will skip" >&2
  exit 0
fi
echo "sqakd: pip could not install onnxruntime: $(grep -E 'ERROR|error' "$log" | tail -1)" >&2
exit 1
