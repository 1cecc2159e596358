"""Open-to-first-image and open-to-all-images for a 4-image 2k study, and peak memory.

Usage::

    python bench/open_study.py [--repeats 3]

Builds (once, under ``bench/out/``) a 4-image study of 2500×2048, 12-bit stored radiograph-
like frames, uncompressed and as JPEG 2000 lossless; then, for each, opens it in a fresh
process through the real GUI (offscreen MainWindow: scan → background decode → drawn view)
and reports, as JSON:

- ``first_image_ms``: from ``open_paths`` to the first view drawn with pixels;
- ``all_images_ms``: to every view decoded (``study_loaded``);
- ``peak_rss_mb``: the process's peak resident memory (``ru_maxrss``), Qt and numpy included;
- the same for the naive way in the same run: read every file with ``pydicom.dcmread`` and
  ``pixel_array`` plus pydicom's float modality/VOI pipeline, sequentially, before showing
  anything (``naive_first_ms`` = ``naive_all_ms`` since nothing shows before all are read).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from synthetic import COLS, ROWS, write_study

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def build(kind: str) -> Path:
    """Write the study once; ``kind`` is "uncompressed" or "j2k"."""
    from pydicom.uid import JPEG2000Lossless

    return write_study(OUT / f"study_{kind}", 4, body_part="HAND",
                       compress=JPEG2000Lossless if kind == "j2k" else None)


_CHILD_GUI = r"""
import json, os, resource, sys, time
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication
from viewer.qt.main_window import MainWindow
app = QApplication([])
win = MainWindow(QSettings(sys.argv[2], QSettings.Format.IniFormat))
win.resize(1400, 900); win.show(); app.processEvents()
t = {}
def first():
    if "first" not in t and any(v.has_image for v in win.grid.views):
        t["first"] = time.perf_counter()
def done(_):
    first(); t["all"] = time.perf_counter()
t0 = time.perf_counter()
win.study_loaded.connect(done)
win.open_paths([sys.argv[1]])
while "all" not in t:
    app.processEvents(); first(); time.sleep(0.001)
    if time.perf_counter() - t0 > 120: raise SystemExit("timeout")
# Draw once, so the cost of painting is inside the measurement's memory.
for v in win.grid.views: v.grab()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first_ms": (t["first"] - t0) * 1e3, "all_ms": (t["all"] - t0) * 1e3,
                  "peak_rss_mb": rss}))
win.close()
"""

_CHILD_NAIVE = r"""
import json, resource, sys, time
from pathlib import Path
import numpy as np, pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut
t0 = time.perf_counter()
out = []
for f in sorted(Path(sys.argv[1]).iterdir()):
    ds = pydicom.dcmread(f)
    arr = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    lo, hi = float(arr.min()), float(arr.max())
    out.append(((arr - lo) / max(hi - lo, 1) * 255).astype(np.uint8))
t1 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"first_ms": (t1 - t0) * 1e3, "all_ms": (t1 - t0) * 1e3, "peak_rss_mb": rss}))
"""


def _run(code: str, folder: Path) -> dict:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    ini = str(OUT / "bench_settings.ini")
    res = subprocess.run([sys.executable, "-c", code, str(folder), ini], capture_output=True,
                         text=True, env=env, cwd=HERE.parent, timeout=600)
    if res.returncode != 0:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    report: dict = {"rows": ROWS, "columns": COLS, "images": 4, "bits_stored": 12,
                    "repeats": args.repeats, "cpu_count": os.cpu_count()}
    for kind in ("uncompressed", "j2k"):
        t = time.perf_counter()
        folder = build(kind)
        build_s = time.perf_counter() - t
        gui = [_run(_CHILD_GUI, folder) for _ in range(args.repeats)]
        naive = [_run(_CHILD_NAIVE, folder) for _ in range(args.repeats)]
        med = lambda rows, k: round(statistics.median(r[k] for r in rows), 1)  # noqa: E731
        report[kind] = {
            "file_mb": round(sum(f.stat().st_size for f in folder.iterdir()) / 2**20, 1),
            "first_image_ms": med(gui, "first_ms"),
            "all_images_ms": med(gui, "all_ms"),
            "peak_rss_mb": med(gui, "peak_rss_mb"),
            "naive_first_ms": med(naive, "first_ms"),
            "naive_all_ms": med(naive, "all_ms"),
            "naive_peak_rss_mb": med(naive, "peak_rss_mb"),
            "build_s": round(build_s, 1),
        }
        r = report[kind]
        r["first_image_speedup_vs_naive"] = round(r["naive_first_ms"] / r["first_image_ms"], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
