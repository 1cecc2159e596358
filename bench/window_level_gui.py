"""Benchmark: window/level drag through the real image views, offscreen, end to end.

Run ``python bench/window_level_gui.py``; it prints one JSON object. Qt draws offscreen
(``QT_QPA_PLATFORM=offscreen``, set here unless already set).

What is measured: real :class:`viewer.qt.image_view.ImageView` widgets in a
:class:`viewer.qt.grid.ViewGrid` of 1600 × 1000, each showing a 2500 × 2048 12-bit
synthetic radiograph (``bench/synthetic.py``). One update is a mouse-move event sent to the
first view while its left button is held (the path a real drag takes: ``mouseMoveEvent`` →
``drag_window`` → ``window_dragged``, which the other views follow with ``drag_window``
when linked, as the main window does) plus a synchronous ``repaint()`` of the grid, so
every view that changed is painted before the clock stops. Each drag is ``--steps`` such
updates, pressed and released like a real one; drags alternate between the two paint
paths so background load hits both alike.

``one_view`` / ``four_linked_views``
    One view, or four linked views in the 2 × 2 grid (799 × 499 each), with
    ``naive_median_ms`` / ``naive_p90_ms`` (every paint from the full-resolution image with
    smooth scaling, as before issue 11 §3: ``ImageView.fast_paint = False``),
    ``new_median_ms`` / ``new_p90_ms`` (reduced-resolution drag preview, cached layer at
    rest), ``speedup`` (naive median / new median), ``naive_cpu_median_ms`` /
    ``new_cpu_median_ms`` (process CPU time per update, both threads: less sensitive to
    other load on the machine than wall time), ``target_ms`` (60 fps budget from the
    issue), ``preview_factor`` (reduction used at the views' fit zoom), ``first_update_ms``
    (the new path's first update on a fresh image: it builds the reduced image once),
    ``rest_ms`` (release → full-resolution repaint of every view, new path) and
    ``paints_per_update`` (paint events per update per view; must be 1).
``rest_pixels_identical``
    Whether, after the same drag, the views drawn by the new path at rest equal those of
    the naive path pixel for pixel (whole grid, corner text included).
``none_references_lost_per_pyside_call``
    0 on a sound PySide6; 1 on PySide6 6.12.0 with CPython 3.11, which drops a reference to
    None on every void call and to True on every signal emitted. The benchmark then holds
    spare references so that it can finish; an application on that combination aborts
    after a few hundred paints.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent, QPainter
from PySide6.QtWidgets import QApplication
from synthetic import COLS, ROWS, radiograph_frame

from viewer.display import DisplayPipeline
from viewer.model import ImageRef, PixelSpec, Window
from viewer.qt.grid import ViewGrid
from viewer.qt.image_view import ImageView, preview_factor

VIEWPORT = (1600, 1000)
TARGETS_MS = {"one_view": 8.0, "four_linked_views": 16.0}


def none_references_lost_per_call() -> float:
    """References to None that one void-returning PySide6 call drops (0 when correct).

    PySide6 6.12.0 on CPython 3.11 returns None from void methods without taking a
    reference (correct only from 3.12, where None is immortal): each ``QPainter`` call
    releases one, and after a few thousand the interpreter aborts ("none_dealloc").
    ``Signal.emit`` does the same with True ("bool_dealloc"). 6.11.3 is not affected.
    """
    image = QImage(4, 4, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    before = sys.getrefcount(None)
    for _ in range(100):
        painter.setOpacity(1.0)
    lost = (before - sys.getrefcount(None)) / 100
    painter.end()
    return lost


class CountingView(ImageView):
    """An ImageView that counts its paint events (to prove every update was drawn)."""

    paints = 0

    def paintEvent(self, event) -> None:
        self.paints += 1
        super().paintEvent(event)


def make_views(count: int) -> tuple[ViewGrid, list[CountingView]]:
    """A shown 1600×1000 grid of ``count`` linked views, each with its own 12-bit frame."""
    spec = PixelSpec(rows=ROWS, columns=COLS, bits_allocated=16, bits_stored=12, high_bit=11,
                     windows=[Window(2048.0, 4096.0, "FILE")])
    views = []
    for i in range(count):
        stored = radiograph_frame(i)
        view = CountingView(ImageRef(path=Path(f"bench_{i + 1}.dcm"), kind="dicom"))
        view.set_pipeline(stored, DisplayPipeline(stored, spec))
        views.append(view)
    grid = ViewGrid()
    grid.set_views(views)
    grid.resize(*VIEWPORT)
    grid.show()
    QApplication.processEvents()

    def follow(source: ImageView, dx: float, dy: float) -> None:  # linked W/L
        for other in views:
            if other is not source:
                other.drag_window(dx, dy)

    def finished(source: ImageView) -> None:
        for other in views:
            if other is not source:
                other.finish_window_drag()

    for view in views:
        view.window_dragged.connect(follow)
        view.window_drag_finished.connect(finished)
    return grid, views


def mouse(view: ImageView, kind: QEvent.Type, pos: QPointF, held: bool) -> None:
    left = Qt.MouseButton.LeftButton
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else left
    buttons = left if held else Qt.MouseButton.NoButton
    QApplication.sendEvent(view, QMouseEvent(kind, pos, view.mapToGlobal(pos), button,
                                             buttons, Qt.KeyboardModifier.NoModifier))


def drag(grid: ViewGrid, views: list[CountingView], steps: int, fast: bool,
         direction: float) -> tuple[list[float], list[float], float, int]:
    """One W/L drag of ``steps`` updates.

    Returns per-update wall ms, per-update process CPU ms, release-to-rest ms and the
    number of paint events during the updates.
    """
    for view in views:
        view.fast_paint = fast
    view = views[0]
    grid.repaint()
    start_paints = sum(v.paints for v in views)
    pos = QPointF(view.width() / 2, view.height() / 2)
    mouse(view, QEvent.Type.MouseButtonPress, pos, True)
    times, cpu = [], []
    for step in range(steps):
        # A diagonal zig-zag, as bench/window_level.py's drag: width and level both move.
        pos = pos + QPointF(3.0 if step % 2 else -2.0, 1.5 * direction)
        t0, c0 = time.perf_counter(), time.process_time()
        mouse(view, QEvent.Type.MouseMove, pos, True)
        grid.repaint()
        times.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    paints = sum(v.paints for v in views) - start_paints
    t0 = time.perf_counter()
    mouse(view, QEvent.Type.MouseButtonRelease, pos, False)
    grid.repaint()
    rest_ms = (time.perf_counter() - t0) * 1e3
    return times, cpu, rest_ms, paints


def grab_pixels(grid: ViewGrid) -> np.ndarray:
    image = grid.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    return np.frombuffer(image.constBits(), np.uint32, image.sizeInBytes() // 4).copy()


def run_config(count: int, steps: int, rounds: int) -> tuple[dict, bool]:
    grid, views = make_views(count)
    size = (views[0].width(), views[0].height())
    factor = preview_factor(views[0].state.effective_zoom(size))
    # First update on fresh images: the new path builds the reduced images here.
    first = drag(grid, views, 1, True, 1.0)[0]
    naive, new, naive_cpu, new_cpu, rests, paints = [], [], [], [], [], 0
    for r in range(rounds):
        direction = 1.0 if r % 2 else -1.0  # up and down, so the window stays sensible
        times, cpu, _, p = drag(grid, views, steps, False, direction)
        naive += times
        naive_cpu += cpu
        times, cpu, rest, p2 = drag(grid, views, steps, True, -direction)
        new += times
        new_cpu += cpu
        rests.append(rest)
        paints += p + p2
    # Same drag through both paths from the same window: identical pixels at rest?
    start = [(v.state.window, v.state.preset_label) for v in views]
    drag(grid, views, 10, False, 1.0)
    naive_pixels = grab_pixels(grid)
    for v, (window, label) in zip(views, start, strict=True):
        v.fast_paint = True
        v.state.set_window(window, label)
    drag(grid, views, 10, True, 1.0)
    identical = bool(np.array_equal(naive_pixels, grab_pixels(grid)))
    grid.close()
    grid.deleteLater()
    QApplication.processEvents()
    naive_med, new_med = float(np.median(naive)), float(np.median(new))
    name = "one_view" if count == 1 else "four_linked_views"
    return {
        "views": count,
        "view_size": list(size),
        "preview_factor": factor,
        "updates": len(new),
        "naive_median_ms": round(naive_med, 2),
        "naive_p90_ms": round(float(np.percentile(naive, 90)), 2),
        "new_median_ms": round(new_med, 2),
        "new_p90_ms": round(float(np.percentile(new, 90)), 2),
        "speedup": round(naive_med / new_med, 1),
        "naive_cpu_median_ms": round(float(np.median(naive_cpu)), 2),
        "new_cpu_median_ms": round(float(np.median(new_cpu)), 2),
        "target_ms": TARGETS_MS[name],
        "first_update_ms": round(first[0], 2),
        "rest_ms": round(float(np.median(rests)), 2),
        "paints_per_update": round(paints / (2 * rounds * steps * count), 2),
    }, identical


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="updates per drag")
    parser.add_argument("--rounds", type=int, default=3, help="drags per path")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication([])
    lost = none_references_lost_per_call()
    if lost > 0:
        # Keep the run alive on an affected PySide6 (~20 references to None lost per
        # paint, one to True per signal emitted): spare references for this benchmark's
        # calls, in a list that is never freed (freeing it would release them all).
        spare = [None, True, False] * 1_000_000
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(spare))
    result: dict = {"image": [ROWS, COLS], "bits_stored": 12, "viewport": list(VIEWPORT),
                    "platform": app.platformName(),
                    "none_references_lost_per_pyside_call": lost}
    identical = True
    for count in (1, 4):
        name = "one_view" if count == 1 else "four_linked_views"
        result[name], same = run_config(count, args.steps, args.rounds)
        identical = identical and same
    result["rest_pixels_identical"] = identical
    print(json.dumps(result))  # the benchmark's output is this one JSON line


if __name__ == "__main__":
    main()
