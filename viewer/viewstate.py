"""Qt-free state and geometry of one image view.

A :class:`ViewState` holds what the reader changed on a view: window/level, invert, zoom,
pan, rotation and flip. Widgets subscribe with :meth:`ViewState.subscribe` and redraw when
it changes; nothing here knows about Qt, so the maths is tested headless.

Geometry
--------
Image coordinates ``(x, y)`` are pixel centres at integer positions, ``x`` along columns,
``y`` along rows; the image spans ``[-0.5, w - 0.5] × [-0.5, h - 0.5]``. The widget shows
image point :attr:`ViewState.center` at the widget centre, scaled by :attr:`zoom` screen
pixels per image pixel, after flipping (in image space) and rotating clockwise by
:attr:`rotation` degrees (a multiple of 90)::

    p = widget_size / 2 + zoom * R @ F @ (q - center)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from viewer.model import LutData, Window

#: Zoom limits, in screen pixels per image pixel.
MIN_ZOOM = 0.02
MAX_ZOOM = 64.0


def _orientation_matrix(rotation: int, flip_h: bool, flip_v: bool) -> np.ndarray:
    """2×2 matrix ``R @ F``: flip in image space, then rotate clockwise on screen."""
    f = np.diag([-1.0 if flip_h else 1.0, -1.0 if flip_v else 1.0])
    quarter = (rotation // 90) % 4
    # Clockwise on screen (y grows downwards) is the usual counter-clockwise matrix.
    c, s = [(1, 0), (0, 1), (-1, 0), (0, -1)][quarter]
    r = np.array([[c, -s], [s, c]], dtype=float)
    return r @ f


@dataclass
class ViewState:
    """What the reader set on one view. ``zoom=None`` means "fit to the widget"."""

    image_size: tuple[int, int] = (1, 1)  # (width, height) in image pixels
    window: Window | None = None  # None → the image's default preset
    voi_lut: LutData | None = None
    preset_label: str = ""
    invert: bool = False
    zoom: float | None = None
    center: tuple[float, float] | None = None  # None → image centre
    rotation: int = 0
    flip_h: bool = False
    flip_v: bool = False
    _listeners: list[Callable[[str], None]] = field(default_factory=list, repr=False)

    # -- events -----------------------------------------------------------------------
    def subscribe(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(what)`` after each change; ``what`` is "voi" or "geometry"."""
        self._listeners.append(callback)

    def _emit(self, what: str) -> None:
        for cb in list(self._listeners):
            cb(what)

    # -- window / level ---------------------------------------------------------------
    def set_window(self, window: Window | None, label: str = "") -> None:
        self.window, self.voi_lut, self.preset_label = window, None, label
        self._emit("voi")

    def set_voi_lut(self, lut: LutData, label: str = "") -> None:
        self.window, self.voi_lut, self.preset_label = None, lut, label
        self._emit("voi")

    def set_invert(self, invert: bool) -> None:
        self.invert = bool(invert)
        self._emit("voi")

    # -- geometry ---------------------------------------------------------------------
    @property
    def image_center(self) -> tuple[float, float]:
        w, h = self.image_size
        return (w - 1) / 2.0, (h - 1) / 2.0

    def rotated_size(self) -> tuple[int, int]:
        w, h = self.image_size
        return (h, w) if (self.rotation // 90) % 2 else (w, h)

    def fit_zoom(self, widget_size: tuple[float, float]) -> float:
        rw, rh = self.rotated_size()
        ww, wh = widget_size
        return max(MIN_ZOOM, min(ww / max(rw, 1), wh / max(rh, 1)))

    def effective_zoom(self, widget_size: tuple[float, float]) -> float:
        return self.zoom if self.zoom is not None else self.fit_zoom(widget_size)

    def matrix(self, widget_size: tuple[float, float]) -> np.ndarray:
        """3×3 affine matrix mapping image coordinates to widget coordinates."""
        s = self.effective_zoom(widget_size)
        a = s * _orientation_matrix(self.rotation, self.flip_h, self.flip_v)
        c = np.array(self.center if self.center is not None else self.image_center)
        half = np.array(widget_size, dtype=float) / 2.0
        m = np.eye(3)
        m[:2, :2] = a
        m[:2, 2] = half - a @ c
        return m

    def to_image(self, point: tuple[float, float], widget_size: tuple[float, float]):
        """Widget point → image coordinates (floats)."""
        inv = np.linalg.inv(self.matrix(widget_size))
        x, y, _ = inv @ np.array([point[0], point[1], 1.0])
        return float(x), float(y)

    def to_widget(self, point: tuple[float, float], widget_size: tuple[float, float]):
        x, y, _ = self.matrix(widget_size) @ np.array([point[0], point[1], 1.0])
        return float(x), float(y)

    def zoom_about(self, factor: float, anchor: tuple[float, float], widget_size) -> None:
        """Multiply the zoom by ``factor`` keeping the image point under ``anchor`` fixed."""
        old = self.effective_zoom(widget_size)
        new = min(MAX_ZOOM, max(MIN_ZOOM, old * factor))
        q = np.array(self.to_image(anchor, widget_size))
        a = _orientation_matrix(self.rotation, self.flip_h, self.flip_v)
        half = np.array(widget_size, dtype=float) / 2.0
        c = q - np.linalg.inv(a) @ (np.array(anchor, dtype=float) - half) / new
        self.zoom, self.center = new, (float(c[0]), float(c[1]))
        self._emit("geometry")

    def set_zoom(self, zoom: float | None) -> None:
        """Set an absolute zoom (1.0 = one screen pixel per image pixel); None fits."""
        self.zoom = None if zoom is None else min(MAX_ZOOM, max(MIN_ZOOM, zoom))
        if zoom is None:
            self.center = None
        self._emit("geometry")

    def pan(self, dx: float, dy: float, widget_size) -> None:
        """Move the image by a widget-space delta (pixels)."""
        s = self.effective_zoom(widget_size)
        a = _orientation_matrix(self.rotation, self.flip_h, self.flip_v)
        c = np.array(self.center if self.center is not None else self.image_center)
        c = c - np.linalg.inv(a) @ np.array([dx, dy]) / s
        self.zoom = s
        self.center = (float(c[0]), float(c[1]))
        self._emit("geometry")

    def rotate(self, degrees: int) -> None:
        if degrees % 90:
            raise ValueError(f"rotation must be a multiple of 90°, got {degrees}")
        self.rotation = (self.rotation + degrees) % 360
        self._emit("geometry")

    def flip(self, horizontal: bool = True) -> None:
        """Flip as seen on screen (left↔right when ``horizontal``)."""
        # A screen-horizontal flip is an image-horizontal flip unless rotated by 90/270.
        image_h = horizontal != bool((self.rotation // 90) % 2)
        if image_h:
            self.flip_h = not self.flip_h
        else:
            self.flip_v = not self.flip_v
        self._emit("geometry")

    def reset(self) -> None:
        """Back to the default window, no inversion, fitted, unrotated, unflipped."""
        self.window = self.voi_lut = None
        self.preset_label = ""
        self.invert = False
        self.zoom = self.center = None
        self.rotation = 0
        self.flip_h = self.flip_v = False
        self._emit("voi")
        self._emit("geometry")


def zoom_step(wheel_degrees: float) -> float:
    """Zoom factor for a wheel turn: 15° (one notch) zooms by 2^(1/4) ≈ 1.19."""
    return math.pow(2.0, wheel_degrees / 15.0 / 4.0)
