#!/usr/bin/env bash
# Build the desktop application if needed (packaging/build.sh), then check the build:
# `radview info` on the sample study, the GUI offscreen for 2 s, the torch/torchvision/
# Grad-CAM/codec self-test, and tests/test_packaging.py (which includes all of these).
#
#   packaging/smoke.sh            build only when dist/radview/radview is missing
#   RADVIEW_REBUILD=1 packaging/smoke.sh    always rebuild first
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${RADVIEW_REBUILD:-0}" = 1 ] || [ ! -x dist/radview/radview ]; then
  packaging/build.sh
fi
exe=dist/radview/radview
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export QT_QPA_PLATFORM=offscreen RADVIEW_CONFIG_DIR=$tmp/config RADVIEW_STATE_DIR=$tmp/state

step() { printf '[smoke] %s\n' "$*" >&2; }
step "radview info on the sample study"
"$exe" info resources/samples/upper_limb_dicom > "$tmp/info.txt"
grep -q "2 images (2 usable)" "$tmp/info.txt"

step "GUI offscreen for 2 s"
start=$(date +%s.%N)
"$exe" --quit-after 2000 --screenshot "$tmp/window.png"
test -s "$tmp/window.png"
step "GUI ran $(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo '?') s, exit 0"

step "self-test: torch, torchvision, Grad-CAM, DICOM codecs inside the build"
"$exe" --build-selftest > "$tmp/selftest.json" || { cat "$tmp/selftest.json"; exit 1; }

step "tests/test_packaging.py"
python=.venv/bin/python
[ -x "$python" ] || python=python3
"$python" -m pytest tests/test_packaging.py -q -p no:cacheprovider
