"""How an image view paints during and after a W/L drag (issue 11 §3), probed in pixels.

While a left drag changes the window the view draws a reduced-resolution preview; at rest
(release, or :data:`REST_DELAY_MS` without a drag step) it must draw exactly what a view
that was given that window directly draws, and exactly what the pre-issue paint path
(``fast_paint = False``) draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pytestqt")

from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QImage, QMouseEvent
from PySide6.QtWidgets import QApplication

from viewer.display import DisplayPipeline
from viewer.model import ImageRef, PixelSpec, Window
from viewer.qt.image_view import REST_DELAY_MS, ImageView, preview_factor

ROWS, COLS = 500, 600
SIZE = (240, 180)  # widget: fit zoom 0.36 → the drag preview is reduced by 2


def frame() -> np.ndarray:
    """12-bit stored values: a left→right ramp 0..4095 with a faint vertical ripple."""
    x = np.linspace(0, 3900, COLS)[None, :]
    y = 150 * np.sin(np.arange(ROWS) / 17.0)[:, None]
    return np.clip(np.rint(x + y + 100), 0, 4095).astype(np.uint16)


@pytest.fixture
def make_view(qtbot):
    spec = PixelSpec(rows=ROWS, columns=COLS, bits_allocated=16, bits_stored=12,
                     high_bit=11, windows=[Window(2048.0, 4096.0, "FILE")])
    stored = frame()
    pipeline = DisplayPipeline(stored, spec)

    def make(fast: bool = True) -> ImageView:
        view = ImageView(ImageRef(path=Path("paint.dcm"), kind="dicom"))
        view.fast_paint = fast
        qtbot.addWidget(view)
        view.resize(*SIZE)
        view.show()
        qtbot.waitExposed(view)
        view.set_pipeline(stored, pipeline)
        return view

    return make


def pixels(view: ImageView) -> np.ndarray:
    """The whole widget as drawn, (h, w) uint32 RGB32."""
    image = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB32)
    flat = np.frombuffer(image.constBits(), np.uint32, image.sizeInBytes() // 4)
    return flat.reshape(image.height(), -1)[:, : image.width()].copy()


def grey(view: ImageView, ix: float, iy: float) -> int:
    """Grey value drawn where image pixel (ix, iy) lands."""
    x, y = view.state.to_widget((ix, iy), (view.width(), view.height()))
    return int(pixels(view)[int(y), int(x)] & 0xFF)


def mouse(view: ImageView, kind: QEvent.Type, pos: tuple[float, float], held: bool) -> None:
    left = Qt.MouseButton.LeftButton
    point = QPointF(*pos)
    QApplication.sendEvent(view, QMouseEvent(
        kind, point, view.mapToGlobal(point),
        Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else left,
        left if held else Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))


def drag(view: ImageView, dx: float, dy: float, release: bool = True, steps: int = 6) -> None:
    start = (view.width() / 2, view.height() / 2)
    mouse(view, QEvent.Type.MouseButtonPress, start, True)
    for i in range(1, steps + 1):
        mouse(view, QEvent.Type.MouseMove,
              (start[0] + dx * i / steps, start[1] + dy * i / steps), True)
        if not release:
            view.repaint()  # each step drawn, as the event loop would between moves
    if release:
        mouse(view, QEvent.Type.MouseButtonRelease, (start[0] + dx, start[1] + dy), False)


def fresh_view_with(make_view, view: ImageView, fast: bool = True) -> ImageView:
    """A new view given the dragged view's window and geometry directly (no drag)."""
    other = make_view(fast)
    st = view.state
    other.state.rotation, other.state.flip_h, other.state.flip_v = (
        st.rotation, st.flip_h, st.flip_v)
    other.state.zoom, other.state.center = st.zoom, st.center
    other.state.set_window(st.window, st.preset_label)
    return other


GEOMETRIES = [
    # (why, set-up on the view's state)
    ("fitted: the preview is reduced by 2", lambda st: None),
    ("zoomed in past 1:1 and panned: full-resolution, cropped preview",
     lambda st: (st.set_zoom(1.7), st.pan(-30, 12, SIZE))),
    ("rotated and flipped: the layer follows the transform",
     lambda st: (st.rotate(90), st.flip(True))),
]


@pytest.mark.parametrize("why,setup", GEOMETRIES, ids=[g[0].split(":")[0] for g in GEOMETRIES])
def test_pixels_at_rest_after_a_drag_are_those_of_a_fresh_view(make_view, why, setup):
    view = make_view()
    setup(view.state)
    drag(view, 40, 25)  # wider and a higher level
    assert view.state.preset_label == "Custom"
    rest = pixels(view)
    assert np.array_equal(rest, pixels(fresh_view_with(make_view, view))), why
    # ... and exactly what the pre-issue paint path draws for that window.
    assert np.array_equal(rest, pixels(fresh_view_with(make_view, view, fast=False))), why


def test_the_drag_preview_shows_the_new_window_at_reduced_resolution(make_view):
    view = make_view()
    assert preview_factor(view.state.effective_zoom(SIZE)) == 2  # the case under test
    probe = (COLS * 0.5, ROWS * 0.5)
    before = grey(view, *probe)
    drag(view, 0, 60, release=False)  # dragging down raises the level → darker
    during = grey(view, *probe)
    assert during < before - 20
    # The preview is close to the full-resolution result for the same window.
    exact = grey(fresh_view_with(make_view, view), *probe)
    assert abs(during - exact) <= 6
    # Dragging right widens the window: less contrast between two probes.
    left, right = (COLS * 0.3, ROWS * 0.5), (COLS * 0.7, ROWS * 0.5)
    contrast0 = grey(view, *right) - grey(view, *left)
    mouse(view, QEvent.Type.MouseMove, (view.width() / 2 + 150, view.height() / 2 + 60), True)
    assert grey(view, *right) - grey(view, *left) < contrast0 - 5
    mouse(view, QEvent.Type.MouseButtonRelease, (0, 0), False)
    assert np.array_equal(pixels(view), pixels(fresh_view_with(make_view, view)))


def test_a_linked_view_returns_to_full_resolution_by_itself(qtbot, make_view):
    # A view that only follows drag_window calls (linked W/L) sharpens after the rest
    # delay even when nobody calls finish_window_drag.
    view = make_view()
    for _ in range(5):
        view.drag_window(4, 6)
        view.repaint()
    qtbot.wait(REST_DELAY_MS + 150)
    assert np.array_equal(pixels(view), pixels(fresh_view_with(make_view, view)))


def test_full_resolution_array_is_current_during_a_drag(make_view):
    # displayed_array() (used by exports) never returns the stale pre-drag image.
    view = make_view()
    drag(view, 0, 60, release=False)
    expected = view.pipeline.render(window=view.state.window)
    assert np.array_equal(view.displayed_array(), expected)


def test_overlay_is_drawn_during_the_preview_and_at_rest(make_view):
    view = make_view()
    cam = np.zeros((ROWS, COLS), dtype=np.float32)
    cam[150:350, 200:400] = 1.0  # a hot square in the middle
    view.set_cam(cam)
    view.set_overlay_style(opacity=0.8)

    def colourful() -> bool:
        value = int(pixels(view)[int(view.height() / 2), int(view.width() / 2)])
        r, g, b = (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF
        return max(r, g, b) - min(r, g, b) > 60

    assert colourful()
    drag(view, 0, 40, release=False)
    assert colourful()
    mouse(view, QEvent.Type.MouseButtonRelease, (0, 0), False)
    assert colourful()
