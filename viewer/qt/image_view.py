"""One image view: draws a decoded image through the display pipeline.

Mouse (the convention of most clinical viewers):

- left drag: window/level (horizontal = width, vertical = level);
- middle drag, or Ctrl/Shift + left drag: pan;
- right drag: zoom (up = in);
- wheel: zoom about the cursor;
- double-click: maximise / restore the view in the grid.

Painting (issue 11 §3): at rest the view shows the full-resolution display image exactly
as it always has (8-bit image drawn with the view's transform, smooth below 200 %), but
draws it once into a widget-sized layer that later paints only copy, until the transform,
size, window or overlay changes. While a window/level drag is in progress
(:meth:`ImageView.drag_window`) it instead applies the LUT to a box-reduced copy of the
stored pixels (:meth:`viewer.display.DisplayPipeline.reduced_index`, the largest
power-of-two reduction that keeps at least one pixel per screen pixel, cropped to what is
on screen) and draws that: a few ms per update instead of ~15. The full-resolution image
comes back at release (:meth:`ImageView.finish_window_drag`) or after
:data:`REST_DELAY_MS` without a drag step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QImage, QPainter, QPalette, QPen, QTransform
from PySide6.QtWidgets import QSizePolicy, QWidget

from viewer.display import DisplayPipeline, Preset, window_for_drag
from viewer.model import ImageRef, Patient, Study
from viewer.overlay import colormap, heatmap_rgba
from viewer.qt.annotate import AnnotationOverlay
from viewer.viewstate import ViewState, zoom_step

#: Milliseconds without a W/L drag step after which a view that shows the reduced-resolution
#: drag preview draws the full-resolution image again (a mouse release does it at once).
REST_DELAY_MS = 150

#: Largest reduction used for the drag preview.
MAX_PREVIEW_FACTOR = 64


def preview_factor(zoom: float) -> int:
    """Reduction for the W/L drag preview at ``zoom`` screen pixels per image pixel.

    The largest power of two ``r`` with ``zoom * r <= 1``: the reduced image still has at
    least one pixel per screen pixel, so the preview loses no detail the screen could show.
    1 (full resolution) from zoom 1/2 up.
    """
    if not (zoom > 0 and math.isfinite(zoom)):
        return 1
    factor = 1
    while factor < MAX_PREVIEW_FACTOR and zoom * factor * 2 <= 1.0 + 1e-9:
        factor *= 2
    return factor


@dataclass
class CursorInfo:
    """What the status bar shows for the pixel under the cursor."""

    x: int
    y: int
    stored: float
    modality: float
    unit: str = ""
    #: What a pixel measures here, e.g. "0.143 mm/px (mm at detector)"; "" uncalibrated.
    scale: str = ""


class ImageView(QWidget):
    """Draws one image; owns a :class:`ViewState` and listens to it."""

    activated = Signal(object)  # self, on mouse press
    maximise_requested = Signal(object)  # self, on double-click
    cursor_moved = Signal(object)  # CursorInfo or None
    window_changed = Signal(object)  # self, while dragging/after any W/L change
    window_dragged = Signal(object, float, float)  # self, dx, dy (for linked W/L)
    window_drag_finished = Signal(object)

    def __init__(self, ref: ImageRef, study: Study | None = None,
                 patient: Patient | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ref = ref
        self.study = study
        self.patient = patient
        self.state = ViewState()
        self.state.subscribe(self._on_state_changed)
        self.pipeline: DisplayPipeline | None = None
        self._stored: np.ndarray | None = None
        self._qimage: QImage | None = None
        self._buffer: np.ndarray | None = None
        self._message = "Loading…" if ref.ok else ref.error
        self._is_error = not ref.ok
        self._active = False
        self._view_marks: list[str] = []  # "frame 1 of 10", "LOSSY 10:1" (set_view_marks)
        self._corner_text = True
        self._drag_button = None
        self._drag_last: QPointF | None = None
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.setMinimumSize(80, 80)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAutoFillBackground(False)
        self.setAcceptDrops(False)
        # AI overlay: a CAM on this image's pixel grid, drawn with the image's transform.
        self._cam: np.ndarray | None = None
        self._cam_rgba: np.ndarray | None = None
        self._cam_qimage: QImage | None = None
        self.overlay_enabled = True  # per view (toggled from the results panel)
        self.overlay_global = True  # the global toggle
        self.overlay_opacity = 0.45
        self.overlay_cmap = "jet"
        self.ai_text = ""  # e.g. "AI 0.83" drawn at the top centre
        # Painting caches (see the module docstring). False paints every frame from the
        # full-resolution image as before issue 11 (bench/window_level_gui.py's baseline).
        self.fast_paint = True
        self._interactive = False  # a W/L drag preview is shown
        self._in_drag_step = False  # inside drag_window's state change
        self._full_dirty = False  # _buffer/_qimage lag behind the state (during a drag)
        self._rest_timer = QTimer(self)
        self._rest_timer.setSingleShot(True)
        self._rest_timer.setInterval(REST_DELAY_MS)
        self._rest_timer.timeout.connect(self.finish_window_drag)
        self._preview_lut: np.ndarray | None = None  # uint32 RGB32 table, None = rebuild
        self._preview_key: tuple | None = None
        self._preview_buffer: np.ndarray | None = None
        self._preview_qimage: QImage | None = None
        self._cam_levels: dict[int, QImage] = {}
        self._layer: QImage | None = None  # the scene at rest, widget-sized
        self._layer_key: tuple | None = None
        self._content_version = 0  # bumped whenever what the layer shows changes
        # Measurements and annotations (issue 16), drawn over the scene in image space.
        self.marks = AnnotationOverlay(self)

    # -- content ------------------------------------------------------------------------
    def set_pipeline(self, stored: np.ndarray, pipeline: DisplayPipeline,
                     warnings: list[str] | None = None) -> None:
        """Show a decoded image (called on the GUI thread when decoding finished)."""
        self._stored = stored
        self.pipeline = pipeline
        self._message = None
        self._is_error = False
        h, w = stored.shape[:2]
        self.state.image_size = (w, h)
        self._warnings = list(warnings or [])
        self._interactive = False
        self._rest_timer.stop()
        self._preview_key = self._preview_buffer = self._preview_qimage = None
        self._cam_levels = {}
        self._render()
        self.update()

    # -- AI overlay -------------------------------------------------------------------
    def set_cam(self, cam: np.ndarray | None) -> None:
        """Set the Grad-CAM map (float, image shape, [0, 1]) or clear it with None."""
        if cam is not None and self._stored is not None and cam.shape != self._stored.shape:
            raise ValueError(f"CAM shape {cam.shape} does not match image {self._stored.shape}")
        self._cam = cam
        self._rebuild_overlay()
        self.update()

    @property
    def cam(self) -> np.ndarray | None:
        return self._cam

    def set_boxes(self, boxes: list[dict] | None) -> None:
        """Set the AI boxes of this image (``{x0, y0, x1, y1, level}`` in image pixels,
        ``level`` ``"fracture"`` drawn solid, ``"doubt"`` dotted), or clear them with None.
        They follow the image's transform and the global overlay toggle."""
        self._boxes = list(boxes or [])
        self.update()

    @property
    def boxes(self) -> list[dict]:
        return list(getattr(self, "_boxes", []))

    def _draw_boxes(self, p: QPainter) -> None:
        from viewer.overlay import box_style

        p.save()
        p.setTransform(self._qtransform())
        for box in reversed(self._boxes):  # best on top
            (r, g, b), dotted = box_style(str(box.get("level")))
            pen = QPen(QColor(r, g, b), 2)
            pen.setCosmetic(True)  # 2 screen pixels at any zoom
            pen.setStyle(Qt.PenStyle.DotLine if dotted else Qt.PenStyle.SolidLine)
            p.setPen(pen)
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(box["x0"] - 0.5, box["y0"] - 0.5, box["x1"] - box["x0"],
                              box["y1"] - box["y0"]))
        p.restore()

    def set_overlay_style(self, *, cmap: str | None = None, opacity: float | None = None,
                          enabled: bool | None = None, global_on: bool | None = None) -> None:
        if cmap is not None and cmap != self.overlay_cmap:
            self.overlay_cmap = cmap
            self._rebuild_overlay()
        if opacity is not None:
            self.overlay_opacity = float(opacity)
        if enabled is not None:
            self.overlay_enabled = bool(enabled)
        if global_on is not None:
            self.overlay_global = bool(global_on)
        self._content_version += 1
        self.update()

    @property
    def overlay_shown(self) -> bool:
        return (self._cam_qimage is not None and self.overlay_enabled and self.overlay_global
                and self._qimage is not None)

    def set_view_marks(self, marks: list[str]) -> None:
        """Marks that say the view is partial or altered ("frame 1 of 10", "LOSSY 10:1",
        "colour shown as grey"; :func:`viewer.display.view_marks`): always drawn, corner
        text on or off."""
        self._view_marks = list(marks)
        self.update()

    def view_mark_texts(self) -> list[str]:
        return list(self._view_marks)

    def _draw_view_marks(self, p: QPainter) -> None:
        font = QFont(self.font())
        font.setBold(True)
        font.setPointSizeF(max(7.5, min(10.0, self.height() / 45)))
        p.setFont(font)
        fm = p.fontMetrics()
        y = self.height() - 8
        for text in reversed(self._view_marks):
            tw = fm.horizontalAdvance(text)
            box = QRectF((self.width() - tw) / 2 - 6, y - fm.height() - 2, tw + 12,
                         fm.height() + 4)
            p.fillRect(box, QColor(0, 0, 0, 170))
            p.setPen(QPen(QColor(255, 191, 0), 1))
            p.drawRect(box)
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, text)
            y -= fm.height() + 8

    def set_ai_text(self, text: str) -> None:
        self.ai_text = text
        self.update()

    def _rebuild_overlay(self) -> None:
        self._cam_levels = {}
        self._content_version += 1
        if self._cam is None:
            self._cam_rgba = self._cam_qimage = None
            return
        # Full opacity here; the chosen opacity is applied when painting, so dragging the
        # opacity slider never recolours the map.
        self._cam_rgba = np.ascontiguousarray(heatmap_rgba(self._cam, self.overlay_cmap, 1.0))
        h, w = self._cam_rgba.shape[:2]
        self._cam_qimage = QImage(self._cam_rgba.data, w, h, w * 4,
                                  QImage.Format.Format_RGBA8888)

    def set_error(self, message: str) -> None:
        self._message = message
        self._is_error = True
        self.pipeline = None
        self._qimage = None
        self._interactive = False
        self._rest_timer.stop()
        self._layer = self._preview_qimage = self._preview_buffer = None
        self._content_version += 1
        self.update()

    @property
    def has_image(self) -> bool:
        return self.pipeline is not None

    @property
    def message(self) -> str | None:
        return self._message

    def current_window(self):
        """The window in effect (the default preset's when the reader set none)."""
        if self.pipeline is None:
            return None
        if self.state.window is not None or self.state.voi_lut is not None:
            return self.state.window
        return self.pipeline.default_preset.window

    def current_label(self) -> str:
        if self.pipeline is None:
            return ""
        if self.state.window is None and self.state.voi_lut is None:
            return self.pipeline.default_preset.label
        return self.state.preset_label

    def apply_preset(self, preset: Preset) -> None:
        if preset.voi_lut is not None:
            self.state.set_voi_lut(preset.voi_lut, preset.label)
        else:
            self.state.set_window(preset.window, preset.label)

    def drag_window(self, dx: float, dy: float) -> None:
        """Apply a W/L drag delta in screen pixels to this view's window.

        This is one step of a drag (the "changed" of pyqtgraph's levels): the view shows a
        reduced-resolution preview until :meth:`finish_window_drag` is called or
        :data:`REST_DELAY_MS` pass without another step. A linked view that follows a
        drag should get the same calls.
        """
        if self.pipeline is None:
            return
        current = self.current_window()
        if current is None:  # a VOI LUT is active: start from the automatic window
            current = self.pipeline.auto_window
        new = window_for_drag(current, dx, dy, self.pipeline.modality_range)
        if self.fast_paint:
            self._interactive = True
            self._rest_timer.start()
        self._in_drag_step = True
        try:
            self.state.set_window(new, "Custom")
        finally:
            self._in_drag_step = False

    def finish_window_drag(self) -> None:
        """End a W/L drag (the "finished" of pyqtgraph's levels): draw at full resolution.

        Called on mouse release in the dragged view, and by the rest timer; a window that
        links views calls it on every view that followed the drag (on the dragged view's
        :attr:`window_drag_finished`) so they all sharpen at release. Idempotent.
        """
        self._rest_timer.stop()
        if not self._interactive:
            return
        self._interactive = False
        if self._full_dirty:
            self._render()
        self._preview_qimage = None  # the buffer is kept for the next drag
        self._preview_key = None
        self.update()

    def set_active(self, active: bool) -> None:
        self._active = active
        self.update()

    def set_corner_text(self, visible: bool) -> None:
        self._corner_text = visible
        self.update()

    # -- rendering ----------------------------------------------------------------------
    def _on_state_changed(self, what: str) -> None:
        if what == "voi":
            if self._in_drag_step and self._interactive:
                # Drawn at the next paint, from the reduced image; full resolution later.
                self._full_dirty = True
                self._preview_lut = None
            else:
                self._interactive = False
                self._rest_timer.stop()
                self._render()
            self.window_changed.emit(self)
        self.update()

    def _render(self) -> None:
        self._full_dirty = False
        self._preview_lut = None
        self._content_version += 1
        if self.pipeline is None:
            return
        st = self.state
        if st.voi_lut is not None:
            buf = self.pipeline.render(voi_lut=st.voi_lut, invert=st.invert)
        else:
            buf = self.pipeline.render(window=st.window, invert=st.invert)
        self._buffer = np.ascontiguousarray(buf)
        h, w = self._buffer.shape
        # QImage does not own the numpy buffer: keep self._buffer alive alongside it.
        self._qimage = QImage(self._buffer.data, w, h, w, QImage.Format.Format_Grayscale8)

    def displayed_array(self) -> np.ndarray | None:
        """The 8-bit image as the pipeline produced it (before geometry), full resolution."""
        if self._full_dirty:
            self._render()
        return self._buffer

    def _qtransform(self) -> QTransform:
        m = self.state.matrix((self.width(), self.height()))
        return QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2])

    def _draw_scene(self, p: QPainter) -> None:
        """Black background, the full-resolution image and the AI overlay, transformed."""
        p.fillRect(self.rect(), QColor(0, 0, 0))
        if self._qimage is not None:
            p.save()
            p.setTransform(self._qtransform())
            zoom = self.state.effective_zoom((self.width(), self.height()))
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, zoom < 2.0)
            w, h = self.state.image_size
            p.drawImage(QRectF(-0.5, -0.5, w, h), self._qimage)
            if self.overlay_shown:
                p.setOpacity(self.overlay_opacity)
                p.drawImage(QRectF(-0.5, -0.5, w, h), self._cam_qimage)
                p.setOpacity(1.0)
            p.restore()

    def _scene_layer(self) -> QImage:
        """:meth:`_draw_scene` drawn into a widget-sized image, redrawn only on change.

        Painting a 2500 × 2048 image with smooth scaling costs ~8 ms; copying this layer
        ~0.2 ms. The pixels are those :meth:`_draw_scene` draws on the widget directly.
        """
        dpr = self.devicePixelRatioF()
        m = self.state.matrix((self.width(), self.height()))
        key = (self.width(), self.height(), dpr, tuple(m.flat), self._content_version)
        if self._layer is None or key != self._layer_key:
            width, height = max(1, round(self.width() * dpr)), max(1, round(self.height() * dpr))
            if self._layer is None or self._layer.size().toTuple() != (width, height):
                self._layer = QImage(width, height, QImage.Format.Format_ARGB32_Premultiplied)
            self._layer.setDevicePixelRatio(dpr)
            lp = QPainter(self._layer)
            self._draw_scene(lp)
            lp.end()
            self._layer_key = key
        return self._layer

    def _preview_table(self) -> np.ndarray:
        """The current LUT as opaque RGB32 pixels (0xFFgggggg), for the drag preview."""
        if self._preview_lut is None:
            st = self.state
            if st.voi_lut is not None:
                lut = self.pipeline.build_lut(voi_lut=st.voi_lut, invert=st.invert)
            else:
                lut = self.pipeline.build_lut(window=st.window, invert=st.invert)
            self._preview_lut = lut.astype(np.uint32) * np.uint32(0x010101) + np.uint32(
                0xFF000000)
        return self._preview_lut

    def _draw_preview(self, p: QPainter) -> None:
        """The W/L drag preview: the LUT applied to the reduced image, cropped to the view."""
        p.fillRect(self.rect(), QColor(0, 0, 0))
        size = (self.width(), self.height())
        zoom = self.state.effective_zoom(size)
        factor = preview_factor(zoom)
        w, h = self.state.image_size
        level_h, level_w = -(-h // factor), -(-w // factor)
        # Image-space bounding box of the widget, in reduced pixels, plus a margin so that
        # smooth sampling at the widget's edge sees real neighbours.
        m = self.state.matrix(size)
        corners = np.linalg.inv(m) @ np.array(
            [[0, size[0], 0, size[0]], [0, 0, size[1], size[1]], [1, 1, 1, 1]], dtype=float)
        xs, ys = corners[0], corners[1]
        c0 = max(0, math.floor((xs.min() + 0.5) / factor) - 2)
        c1 = min(level_w, math.floor((xs.max() + 0.5) / factor) + 3)
        r0 = max(0, math.floor((ys.min() + 0.5) / factor) - 2)
        r1 = min(level_h, math.floor((ys.max() + 0.5) / factor) + 3)
        p.save()
        p.setTransform(QTransform(m[0, 0], m[1, 0], m[0, 1], m[1, 1], m[0, 2], m[1, 2]))
        if c1 > c0 and r1 > r0:
            key = (factor, r0, r1, c0, c1)
            if self._preview_qimage is None or key != self._preview_key or (
                    self._preview_lut is None):
                shape = (r1 - r0, c1 - c0)
                out = self._preview_buffer
                if out is None or out.size < shape[0] * shape[1]:
                    out = self._preview_buffer = np.empty(shape[0] * shape[1], np.uint32)
                view = out[: shape[0] * shape[1]].reshape(shape)
                self.pipeline.apply_lut_reduced(self._preview_table(), factor,
                                                (r0, r1, c0, c1), out=view)
                self._preview_qimage = QImage(view.data, shape[1], shape[0], shape[1] * 4,
                                              QImage.Format.Format_RGB32)
                self._preview_key = key
            # The reduced block covers image pixels [c0*f, c1*f); the last one may reach
            # past the image edge (its padding), so only the part inside is drawn.
            x0, y0 = c0 * factor, r0 * factor
            x1, y1 = min(c1 * factor, w), min(r1 * factor, h)
            target = QRectF(x0 - 0.5, y0 - 0.5, x1 - x0, y1 - y0)
            source = QRectF(0, 0, (x1 - x0) / factor, (y1 - y0) / factor)
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, zoom * factor < 2.0)
            p.drawImage(target, self._preview_qimage, source)
        if self.overlay_shown:
            p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, zoom < 2.0)
            p.setOpacity(self.overlay_opacity)
            p.drawImage(QRectF(-0.5, -0.5, w, h), self._cam_level(factor))
            p.setOpacity(1.0)
        p.restore()

    def _cam_level(self, factor: int) -> QImage:
        """The overlay as premultiplied ARGB, reduced by ``factor`` (cached per factor)."""
        image = self._cam_levels.get(factor)
        if image is None:
            image = self._cam_qimage.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
            if factor > 1:
                w, h = self.state.image_size
                image = image.scaled(max(1, round(w / factor)), max(1, round(h / factor)),
                                     Qt.AspectRatioMode.IgnoreAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
            self._cam_levels[factor] = image
        return image

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        if not self.fast_paint or self.pipeline is None:
            if self._full_dirty:
                self._render()
            self._draw_scene(p)
        elif self._interactive:
            self._draw_preview(p)
        else:
            if self._full_dirty:
                self._render()
            p.drawImage(QPointF(0, 0), self._scene_layer())
        if self._qimage is not None:
            if getattr(self, "_boxes", None) and self.overlay_global:
                self._draw_boxes(p)
            if self.overlay_shown:
                self._draw_legend(p)
            if self.ai_text:
                self._draw_ai_text(p)
            self.marks.paint(p)
        if self._view_marks:
            self._draw_view_marks(p)
        if self._message:
            p.setPen(QColor(255, 120, 100) if self._is_error else QColor(200, 200, 200))
            p.drawText(self.rect().adjusted(12, 12, -12, -12),
                       Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       f"{self.ref.name}\n{self._message}")
        if self._corner_text and self._qimage is not None:
            self._draw_corner_text(p)
        if self._active:
            p.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 2))
            p.drawRect(self.rect().adjusted(1, 1, -1, -1))
        else:
            p.setPen(QPen(QColor(60, 60, 60), 1))
            p.drawRect(self.rect().adjusted(0, 0, -1, -1))
        p.end()

    def _draw_legend(self, p: QPainter) -> None:
        """A vertical colour bar at the right edge: Grad-CAM low (bottom) → high (top)."""
        table = colormap(self.overlay_cmap)
        bar_h = max(60, min(200, self.height() // 3))
        x = self.width() - 22
        y0 = (self.height() - bar_h) // 2
        for i in range(bar_h):
            r, g, b = table[int(round((bar_h - 1 - i) / max(bar_h - 1, 1) * 255))]
            p.setPen(QColor(int(r), int(g), int(b)))
            p.drawLine(x, y0 + i, x + 10, y0 + i)
        p.setPen(QColor(200, 200, 200))
        p.drawRect(x, y0, 10, bar_h)
        font = QFont(self.font())
        font.setPointSizeF(7.5)
        p.setFont(font)
        fm = p.fontMetrics()
        for text, yy in (("high", y0 - 4), ("low", y0 + bar_h + fm.ascent() + 2)):
            p.drawText(QPointF(self.width() - 6 - fm.horizontalAdvance(text), yy), text)

    def _draw_ai_text(self, p: QPainter) -> None:
        font = QFont(self.font())
        font.setBold(True)
        p.setFont(font)
        fm = p.fontMetrics()
        tw = fm.horizontalAdvance(self.ai_text)
        x = (self.width() - tw) / 2
        y = 6 + fm.ascent()
        p.setPen(QColor(0, 0, 0))
        p.drawText(QPointF(x + 1, y + 1), self.ai_text)
        p.setPen(QColor(120, 220, 255))
        p.drawText(QPointF(x, y), self.ai_text)

    def corner_texts(self) -> dict[str, list[str]]:
        """The four corner annotations (also used by tests and the report)."""
        ref, st, pt = self.ref, self.study, self.patient
        tl, tr, bl, br = [], [], [], []
        if pt is not None:
            tl += [x for x in (pt.name.replace("^", " ").strip(), pt.id) if x]
            demo = " ".join(x for x in (pt.sex, _fmt_date(pt.birth_date)) if x)
            if demo:
                tl.append(demo)
        if st is not None:
            tr += [x for x in (_fmt_date(st.date), st.description, st.institution) if x]
            if st.accession:
                tr.append(f"Acc {st.accession}")
            if st.label:
                tr.append(f"Label (path): {st.label}")
        laterality = ref.laterality if ref.laterality not in ("U", "B") else ""
        view = " ".join(x for x in (ref.body_part or "", ref.view_position, laterality) if x)
        bl += [x for x in (view, ref.name) if x]
        if ref.instance_number is not None:
            bl.append(f"Im {ref.instance_number}")
        w, h = self.state.image_size
        bl.append(f"{w}×{h}")
        win = self.current_window()
        if win is not None:
            br.append(f"W {win.width:.0f}  L {win.center:.0f}")
        elif self.state.voi_lut is not None:
            br.append("VOI LUT")
        label = self.current_label()
        if label:
            br.append(label)
        zoom = self.state.effective_zoom((self.width(), self.height()))
        br.append(f"Zoom {zoom * 100:.0f}%")
        geo = []
        if self.state.rotation:
            geo.append(f"Rot {self.state.rotation}°")
        if self.state.flip_h or self.state.flip_v:
            geo.append("Flipped")
        if self.state.invert:
            geo.append("Inverted")
        if geo:
            br.append(" ".join(geo))
        for wmsg in getattr(self, "_warnings", []):
            bl.append(f"⚠ {wmsg}")
        return {"tl": tl, "tr": tr, "bl": bl, "br": br}

    def _draw_corner_text(self, p: QPainter) -> None:
        font = QFont(self.font())
        font.setPointSizeF(max(7.0, min(10.0, self.height() / 45)))
        p.setFont(font)
        fm = p.fontMetrics()
        lh = fm.height()
        margin = 6
        texts = self.corner_texts()
        for key, lines in texts.items():
            for i, line in enumerate(lines):
                tw = fm.horizontalAdvance(line)
                top = key[0] == "t"
                left = key[1] == "l"
                x = margin if left else self.width() - margin - tw
                y = margin + fm.ascent() + i * lh if top else (
                    self.height() - margin - (len(lines) - 1 - i) * lh - fm.descent())
                p.setPen(QColor(0, 0, 0))
                p.drawText(QPointF(x + 1, y + 1), line)
                p.setPen(QColor(235, 220, 120))
                p.drawText(QPointF(x, y), line)

    # -- interaction --------------------------------------------------------------------
    def _widget_size(self) -> tuple[float, float]:
        return float(self.width()), float(self.height())

    def mousePressEvent(self, event) -> None:
        self.activated.emit(self)
        if self.marks.mouse_press(event):
            event.accept()
            return
        self._drag_button = event.button()
        self._drag_last = event.position()
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        pos = event.position()
        if self.marks.mouse_move(event):
            self.cursor_moved.emit(self.cursor_info(pos))
            return
        if self._drag_last is not None and self._drag_button is not None:
            dx = pos.x() - self._drag_last.x()
            dy = pos.y() - self._drag_last.y()
            self._drag_last = pos
            mods = event.modifiers()
            panning = self._drag_button == Qt.MouseButton.MiddleButton or (
                self._drag_button == Qt.MouseButton.LeftButton
                and mods & (Qt.KeyboardModifier.ControlModifier
                            | Qt.KeyboardModifier.ShiftModifier))
            if panning:
                self.state.pan(dx, dy, self._widget_size())
            elif self._drag_button == Qt.MouseButton.LeftButton:
                self.drag_window(dx, dy)
                self.window_dragged.emit(self, dx, dy)
            elif self._drag_button == Qt.MouseButton.RightButton:
                self.state.zoom_about(zoom_step(-dy), (self.width() / 2, self.height() / 2),
                                      self._widget_size())
        self.cursor_moved.emit(self.cursor_info(pos))

    def mouseReleaseEvent(self, event) -> None:
        if self.marks.mouse_release(event):
            return
        if self._drag_button == Qt.MouseButton.LeftButton:
            self.finish_window_drag()
            self.window_drag_finished.emit(self)
        self._drag_button = None
        self._drag_last = None

    def mouseDoubleClickEvent(self, event) -> None:
        self.maximise_requested.emit(self)

    def wheelEvent(self, event) -> None:
        if self.pipeline is None:
            return
        degrees = event.angleDelta().y() / 8.0
        pos = event.position()
        self.state.zoom_about(zoom_step(degrees), (pos.x(), pos.y()), self._widget_size())
        event.accept()

    def leaveEvent(self, event) -> None:
        self.cursor_moved.emit(None)

    def cursor_info(self, pos: QPointF) -> CursorInfo | None:
        """Stored and modality value of the image pixel under a widget point."""
        if self._stored is None or self.pipeline is None:
            return None
        x, y = self.state.to_image((pos.x(), pos.y()), self._widget_size())
        xi, yi = int(round(x)), int(round(y))
        h, w = self._stored.shape[:2]
        if not (0 <= xi < w and 0 <= yi < h):
            return None
        stored = float(self._stored[yi, xi])
        unit = "HU" if self.pipeline.spec.rescale_type.upper() == "HU" else ""
        cal = self.marks.calibration()
        scale = ""
        if cal.spacing is not None:
            sy, sx = cal.spacing
            size = f"{sx:.4g}" if abs(sx - sy) <= 1e-9 * max(sx, sy) else f"{sx:.4g}×{sy:.4g}"
            scale = f"{size} mm/px ({cal.basis})"
        return CursorInfo(xi, yi, stored, float(self.pipeline.modality_value(stored)), unit,
                          scale)


def _fmt_date(d: str) -> str:
    """DICOM DA (YYYYMMDD) → YYYY-MM-DD; other strings unchanged."""
    if len(d) == 8 and d.isdigit():
        return f"{d[:4]}-{d[4:6]}-{d[6:]}"
    return d
