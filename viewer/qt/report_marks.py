"""The reader's marks in the PDF report (issue 16): key images drawn with their
measurements as displayed, and the measurement table.

:func:`add_reading` completes the :class:`~viewer.report.ReportData` that
:func:`viewer.qt.report_pdf.window_report_data` gathered from the main window: each
:class:`~viewer.report.ReportImage` of a key image (or of an image with measurements)
gets ``marked``, its displayed image (window/level, inversion, rotation, flip) with the
measurements, annotations and orientation letters painted by the same code as the view
(:class:`viewer.qt.annotate.AnnotationOverlay`), and ``data.measurements`` gets one row
per measurement.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtGui import QFont, QImage, QPainter

from viewer import measure as ms
from viewer.qt.annotate import AnnotationOverlay
from viewer.viewstate import ViewState


class _Canvas:
    """What :class:`AnnotationOverlay` reads from a view, for an image of the report."""

    def __init__(self, view, size: tuple[int, int]) -> None:
        self.ref = view.ref
        self.pipeline = view.pipeline
        self._stored = getattr(view, "_stored", None)
        self.ai_text = ""
        self._size = size
        st = view.state
        self.state = ViewState(image_size=st.image_size, rotation=st.rotation,
                               flip_h=st.flip_h, flip_v=st.flip_v)

    def width(self) -> int:
        return self._size[0]

    def height(self) -> int:
        return self._size[1]

    def font(self) -> QFont:
        font = QFont()
        font.setPixelSize(max(10, round(self._size[1] / 45)))
        return font

    def update(self) -> None:
        pass

    def setCursor(self, _cursor) -> None:
        pass


def marked_image(view, displayed: np.ndarray, key: bool = False) -> np.ndarray:
    """``displayed`` (the report's oriented, downscaled uint8 copy of the view) with the
    view's annotations painted over it, as RGB uint8."""
    a = np.ascontiguousarray(displayed, dtype=np.uint8)
    h, w = a.shape[:2]
    if a.ndim == 2:
        base = QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8)
    else:
        base = QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888)
    image = base.convertToFormat(QImage.Format.Format_RGB888)
    canvas = _Canvas(view, (w, h))
    overlay = AnnotationOverlay(canvas)
    overlay.annotations = view.marks.annotations
    overlay.key_image = key
    p = QPainter(image)
    overlay.paint(p)
    p.end()
    ptr = image.constBits()
    out = np.frombuffer(ptr, np.uint8, count=image.sizeInBytes()).reshape(
        h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3)
    return out.copy()


def add_reading(window, data, deidentify: bool = False) -> None:
    """Key-image flags, marked images and the measurement table from the window's views."""
    store = window.session.reading
    rows: list[tuple[str, str, str]] = []
    for im, view in zip(data.images, window.grid.views, strict=False):
        lst = store.annotations(view.ref)
        im.key = store.is_key(view.ref)
        label = im.label
        if view.has_image and len(lst):
            pipe = view.pipeline
            for _name, tool, value in ms.measurement_rows(
                    view.ref, lst, getattr(view, "_stored", None), pipe.modality_value,
                    view.marks.modality_unit()):
                rows.append((label, tool, value))
        if view.has_image and im.displayed is not None and (im.key or len(lst)):
            im.marked = marked_image(view, im.displayed, im.key)
    data.measurements = rows
