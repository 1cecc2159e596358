"""Multi-frame navigation: decode throughput and display rate of a 100-frame series.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/frames_cine.py [--frames 100]

A 100-frame 512×512 12-bit DICOM (uncompressed) is opened in the main window offscreen.
Reported (JSON): the time until every frame is decoded in the worker pool (frames are
decoded off the GUI thread, :class:`viewer.frames.FrameSet`); the longest GUI-thread
stall while that happens (a 1 ms timer's largest gap); and the display rate when
stepping through the frames with a synchronous repaint of the window's one view — the work one
cine tick does on the GUI thread (LUT applied to the frame, the scene drawn, the
measurements and marks on top). Issue 16 asks for ≥ 30 fps.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import numpy as np
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QApplication


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    from dicom_factory import make_dicom

    from viewer.qt.frames import show_frame
    from viewer.qt.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    n, side = args.frames, args.size
    rng = np.random.default_rng(0)
    arr = (rng.integers(0, 4096, (n, side, side), dtype=np.uint16))
    folder = Path(tempfile.mkdtemp(prefix="radview-cine-"))
    path = make_dicom(folder / "cine.dcm", rows=side, cols=side, frames=n, pixels=arr,
                      bits_stored=12, modality="XA", windows=[(2048, 4096)])

    win = MainWindow(None, discover=False)
    win.resize(1200, 900)
    win.set_layout((1, 1))
    win.show()
    done = []
    win.study_loaded.connect(lambda _s: done.append(True))
    win.open_paths([str(path)])
    while not done:
        app.processEvents()
    view = win.grid.views[0]
    tools = win.frame_tools

    # Decode every frame in the background; watch the GUI thread's responsiveness.
    gaps, last = [], [time.perf_counter()]

    def beat() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now

    timer = QTimer()
    timer.timeout.connect(beat)
    timer.start(1)
    t0 = time.perf_counter()
    fs = tools.frame_set(view)
    fs.prefetch()
    while len(fs.frames) < n and not fs.failed:
        app.processEvents()
    decode_s = time.perf_counter() - t0
    timer.stop()

    # Display rate: one cine tick's GUI work per frame, painted synchronously.
    clock = QElapsedTimer()
    per = []
    for k in range(1, 2 * n + 1):
        clock.start()
        show_frame(view, fs.get(k % n))
        view.repaint()
        per.append(clock.nsecsElapsed() / 1e6)
    per_ms = np.array(per)
    out = {
        "frames": n, "size": f"{side}x{side}", "view": f"{view.width()}x{view.height()}",
        "decode_all_s": round(decode_s, 3),
        "decode_fps": round(n / decode_s, 1),
        "gui_max_stall_ms": round(1000 * max(gaps, default=0.0), 1),
        "display_ms_median": round(float(np.median(per_ms)), 2),
        "display_ms_p95": round(float(np.percentile(per_ms, 95)), 2),
        "display_fps": round(1000.0 / float(np.median(per_ms)), 1),
        "display_fps_p95": round(1000.0 / float(np.percentile(per_ms, 95)), 1),
        "cpu_count": os.cpu_count(),
    }
    print(json.dumps(out))
    win.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
