"""AI boxes in an image view and in the CAM PNGs / report copies (issue 14), probed in pixels.

``ImageView.set_boxes`` draws "fracture" boxes solid and "doubt" boxes dotted, with the
image's transform; :func:`viewer.overlay.draw_boxes` does the same on arrays.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from viewer.overlay import BOX_COLORS, draw_boxes

pytest.importorskip("pytestqt")

from PySide6.QtGui import QImage

from viewer.display import DisplayPipeline
from viewer.model import ImageRef, PixelSpec, Window
from viewer.qt.image_view import ImageView

ROWS, COLS = 200, 200


def _rgb(view: ImageView) -> np.ndarray:
    image = view.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h, stride = image.width(), image.height(), image.bytesPerLine()
    flat = np.frombuffer(image.constBits(), np.uint8, stride * h).reshape(h, stride)
    return flat[:, :w * 3].reshape(h, w, 3)


@pytest.fixture
def view(qtbot) -> ImageView:
    spec = PixelSpec(rows=ROWS, columns=COLS, bits_allocated=8, bits_stored=8, high_bit=7,
                     windows=[Window(128.0, 256.0, "FILE")])
    stored = np.full((ROWS, COLS), 60, dtype=np.uint8)
    v = ImageView(ImageRef(path=Path("boxes.png"), kind="image"))
    qtbot.addWidget(v)
    v.resize(200, 200)  # fit: 1 image pixel ≈ 1 widget pixel
    v.show()
    qtbot.waitExposed(v)
    v.set_pipeline(stored, DisplayPipeline(stored, spec))
    return v


def _is(color, px) -> bool:
    return all(abs(int(a) - int(b)) <= 40 for a, b in zip(color, px, strict=True))


def test_fracture_box_solid_doubt_box_dotted(view):
    view.set_boxes([{"x0": 20, "y0": 20, "x1": 90, "y1": 90, "score": 0.9, "level": "fracture"},
                    {"x0": 110, "y0": 110, "x1": 180, "y1": 180, "score": 0.4,
                     "level": "doubt"}])
    rgb = _rgb(view)
    red, yellow = BOX_COLORS["fracture"], BOX_COLORS["doubt"]
    # The solid box's top edge is coloured all along; the dotted one only in places.
    top = [rgb[r, c] for c in range(30, 80) for r in range(17, 24)]
    solid_cols = {c for c in range(30, 80) if any(_is(red, rgb[r, c]) for r in range(17, 24))}
    assert len(solid_cols) == 50 and any(_is(red, px) for px in top)
    dotted_cols = {c for c in range(120, 170)
                   if any(_is(yellow, rgb[r, c]) for r in range(107, 114))}
    assert 5 < len(dotted_cols) < 50
    # Inside a box the image is untouched (boxes are outlines, not fills).
    assert not _is(red, rgb[55, 55]) and not _is(yellow, rgb[145, 145])
    view.set_boxes(None)
    assert not any(_is(red, rgb2) for rgb2 in _rgb(view)[17:24, 30:80].reshape(-1, 3))


def test_overlay_toggle_hides_boxes(view):
    view.set_boxes([{"x0": 20, "y0": 20, "x1": 90, "y1": 90, "score": 0.9,
                     "level": "fracture"}])
    view.set_overlay_style(global_on=False)
    rgb = _rgb(view)
    assert not any(_is(BOX_COLORS["fracture"], px) for px in rgb[15:26, 30:80].reshape(-1, 3))


DRAWN = [
    # (level, box, expected share of the outline pixels coloured)
    ("fracture", (10, 10, 50, 40), 1.0),   # solid
    ("doubt", (10, 10, 50, 40), 0.5),      # dotted: about half
]


@pytest.mark.parametrize(("level", "box", "share"), DRAWN)
def test_draw_boxes_on_arrays(level, box, share):
    base = np.zeros((60, 60, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    out = draw_boxes(base, [{"x0": x0, "y0": y0, "x1": x1, "y1": y1, "level": level}],
                     width=2)
    assert not base.any()  # a copy
    edge = out[y0:y0 + 2, x0:x1].reshape(-1, 3)
    coloured = np.mean([tuple(px) == BOX_COLORS[level] for px in edge])
    assert coloured == pytest.approx(share, abs=0.2)
    assert not out[y0 + 5:y1 - 5, x0 + 5:x1 - 5].any()  # inside untouched
