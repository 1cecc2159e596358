#!/usr/bin/env bash
# Build radview as a one-folder Linux application: dist/radview/radview.
#
#   packaging/build.sh            CPU build (default, ~1/6 the size; see packaging/README.md)
#   packaging/build.sh --cuda     CUDA build from the project's .venv (several GB)
#
# Environment:
#   RADVIEW_BUILD_VARIANT=cpu|cuda   same as --cpu / --cuda
#   RADVIEW_CPU_TORCH                pip spec of the CPU torch   (default: torch==2.13.0)
#   RADVIEW_CPU_TORCHVISION          pip spec of its torchvision (default: torchvision==0.28.0)
#   RADVIEW_CPU_INDEX_URL            extra pip index for the CPU torch, e.g.
#                                    https://download.pytorch.org/whl/cpu (not reachable here)
#   PYTHON                           interpreter for the CPU build venv (default: .venv's)
#   RADVIEW_DIST_DIR                 where radview/ goes (default: dist; e.g. dist/cuda)
#
# The CPU build uses its own virtual environment (build/venv-cpu, made once and reused): the
# project's .venv has the CUDA build of torch, whose libraries cannot load without the CUDA
# ones. Output: dist/radview/ (git-ignored) with dist/radview/build-info.json.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

variant=${RADVIEW_BUILD_VARIANT:-cpu}
for arg in "$@"; do
  case $arg in
    --cuda) variant=cuda ;;
    --cpu) variant=cpu ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

log() { printf '[build] %s\n' "$*" >&2; }
start=$(date +%s)

if [ "$variant" = cuda ]; then
  venv=.venv
  [ -x "$venv/bin/python" ] || { echo "build.sh: $venv missing (see README.md)" >&2; exit 2; }
  "$venv/bin/python" -c "import PyInstaller" 2>/dev/null || "$venv/bin/pip" install -q pyinstaller
elif [ "$variant" = cpu ]; then
  venv=build/venv-cpu
  torch_spec=${RADVIEW_CPU_TORCH:-torch==2.13.0}
  tv_spec=${RADVIEW_CPU_TORCHVISION:-torchvision==0.28.0}
  index_args=()
  [ -n "${RADVIEW_CPU_INDEX_URL:-}" ] && index_args=(--extra-index-url "$RADVIEW_CPU_INDEX_URL")
  # Rebuild the venv's contents when the project's dependencies or the torch specs change.
  stamp=$(sha256sum < pyproject.toml | cut -c1-16)-$torch_spec-$tv_spec
  if [ "$(cat "$venv/.radview-stamp" 2>/dev/null)" != "$stamp" ]; then
    if [ ! -x "$venv/bin/python" ]; then
      base=${PYTHON:-}
      if [ -z "$base" ] && [ -f .venv/pyvenv.cfg ]; then
        base=$(sed -n 's/^executable *= *//p' .venv/pyvenv.cfg)
      fi
      log "creating $venv with ${base:-python3}"
      "${base:-python3}" -m venv "$venv"
    fi
    pip=("$venv/bin/pip" install -q --disable-pip-version-check)
    log "installing $torch_spec (CPU) and $tv_spec into $venv"
    "${pip[@]}" "${index_args[@]}" "$torch_spec"
    "$venv/bin/python" - <<'EOF'
import sys
import torch
if torch.version.cuda is not None:
    sys.exit(f"build.sh: {torch.__version__} is a CUDA build of torch; the CPU build needs a "
             "CPU one (set RADVIEW_CPU_TORCH / RADVIEW_CPU_INDEX_URL)")
EOF
    # torchvision from PyPI asks for exactly the torch it was built with: already installed.
    "${pip[@]}" "${index_args[@]}" "$tv_spec"
    # The project's other dependencies, pinned to what .venv has where it has them. Only
    # PySide6-Essentials: radview uses QtCore/QtGui/QtWidgets (and QtSvg for icons).
    "$venv/bin/python" - "$ROOT" > build/requirements-cpu.txt <<'EOF'
import re
import sys
import tomllib
from pathlib import Path

deps = tomllib.loads((Path(sys.argv[1]) / "pyproject.toml").read_text())["project"]["dependencies"]
for dep in deps:
    name = re.split(r"[<>=!~\[; ]", dep, maxsplit=1)[0].lower()
    if name in ("torch", "torchvision"):
        continue
    print(dep.replace("PySide6", "PySide6-Essentials", 1) if name == "pyside6" else dep)
print("pyinstaller")
EOF
    constraints=build/constraints-cpu.txt
    : > "$constraints"
    if [ -x .venv/bin/pip ]; then
      .venv/bin/pip freeze 2>/dev/null \
        | grep -viE '^(-e |radview|torch==|torchvision==|triton|nvidia-|cuda-)' > "$constraints" || true
    fi
    log "installing the other dependencies (see build/requirements-cpu.txt)"
    "${pip[@]}" -r build/requirements-cpu.txt -c "$constraints"
    echo "$stamp" > "$venv/.radview-stamp"
  fi
else
  echo "build.sh: variant must be cpu or cuda, not $variant" >&2; exit 2
fi

dist=${RADVIEW_DIST_DIR:-dist}
log "PyInstaller ($variant build) -> $dist/radview"
RADVIEW_BUILD_VARIANT=$variant "$venv/bin/python" -m PyInstaller --noconfirm \
  --distpath "$dist" --workpath "build/pyinstaller-$variant" packaging/radview.spec
# Links PyInstaller made to libraries the spec left out (CPU build) would dangle.
find "$dist/radview" -xtype l -delete
# The desktop integration travels with the build: dist/radview/linux/install.sh.
mkdir -p "$dist/radview/linux"
cp packaging/linux/install.sh packaging/linux/radview.desktop packaging/linux/radview-mime.xml \
  packaging/linux/io.github.radview.metainfo.xml "$dist/radview/linux/"

seconds=$(( $(date +%s) - start ))
size_mib=$(du -sm "$dist/radview" | cut -f1)
"$venv/bin/python" - "$variant" "$seconds" "$size_mib" > "$dist/radview/build-info.json" <<'EOF'
import datetime
import json
import sys
from importlib.metadata import version

print(json.dumps({
    "variant": sys.argv[1],
    "torch": version("torch"),
    "torchvision": version("torchvision"),
    "pyside6": version("PySide6-Essentials"),
    "python": sys.version.split()[0],
    "build_seconds": int(sys.argv[2]),
    "size_mib": int(sys.argv[3]),
    "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
}, indent=2))
EOF
log "done in ${seconds}s: $dist/radview is ${size_mib} MiB"
cat "$dist/radview/build-info.json"
