"""Measurement and annotation tools drawn over one :class:`~viewer.qt.image_view.ImageView`.

The annotations live in the session's :class:`viewer.measure.ReadingStore` (one
:class:`~viewer.measure.AnnotationList` per image) in image coordinates; this overlay maps
them through the view's :class:`~viewer.viewstate.ViewState` at every paint, so they
follow zoom, pan, rotation and flip. Text stays upright and unscaled.

Mouse, with a tool chosen (main window ▸ Measure):

- length, ellipse, rectangle, text arrow, calibration: press at one end, drag, release
  (the arrow: press at its tip, release where the text goes);
- angle: drag the first arm (from its end to the vertex), then click the end of the
  second arm;
- Cobb angle: drag one line, then drag the other;
- in any mode, a handle (the small squares of the selected annotation, or any end point)
  can be dragged; a press on an annotation selects it and dragging moves it; a
  press elsewhere falls through to the view (window/level, pan, zoom).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QPainter, QPainterPath, QPen, QPolygonF

from viewer import measure as ms
from viewer.orientation import edge_letters

#: Screen distance (px) within which a press grabs a handle or an annotation.
GRAB = 7.0
#: A drag shorter than this (screen px) does not create an annotation.
MIN_DRAG = 3.0

LINE = QColor(255, 210, 60)
SELECTED = QColor(90, 220, 255)
FOREIGN = QColor(120, 255, 140)
CALIB = QColor(255, 140, 60)


def _dist_to_segment(p: tuple[float, float], a: tuple[float, float],
                     b: tuple[float, float]) -> float:
    ax, ay = a
    bx, by = b
    dx, dy = bx - ax, by - ay
    n = dx * dx + dy * dy
    t = 0.0 if n == 0 else max(0.0, min(1.0, ((p[0] - ax) * dx + (p[1] - ay) * dy) / n))
    return math.hypot(p[0] - ax - t * dx, p[1] - ay - t * dy)


class AnnotationOverlay:
    """Draws one view's annotations and turns tool-mode mouse events into edits.

    Attributes
    ----------
    tool
        The drawing tool (:data:`viewer.measure.LENGTH` …), or None: navigate (the view's
        own window/level, pan and zoom; annotations can still be edited).
    ask_text
        ``ask_text(title, label) -> str | None`` for the arrow's text (a dialog in the
        app; tests set a function).
    ask_length
        ``ask_length() -> float | None``: the known length in mm of a calibration line.
    """

    def __init__(self, view) -> None:
        self.view = view
        self.annotations = ms.AnnotationList()
        self.tool: str | None = None
        self.selected: str | None = None
        self.ask_text: Callable[[str, str], str | None] = lambda _t, _l: None
        self.ask_length: Callable[[], float | None] = lambda: None
        self.show_orientation = True
        self.key_image = False
        self.frame_text = ""
        #: A line at the top (e.g. "PRIOR 2020-05-06" in a comparison), or "".
        self.banner = ""
        self._draft: ms.Annotation | None = None
        self._draft_phase = 0  # angle: 1 = waiting for the third point; cobb: 1 = line 2
        self._live: ms.Annotation | None = None  # an annotation being dragged
        self._grab: tuple[str, int] | None = None  # (id, point index or -1 = move)
        self._grab_origin: tuple[float, float] | None = None
        self._cache: dict[ms.Annotation, ms.Measurement] = {}
        self._cal_key: object = None

    # -- model ----------------------------------------------------------------------
    def set_list(self, annotations: ms.AnnotationList) -> None:
        """Show (and edit) ``annotations``, the view's image's list in the store."""
        self.annotations.unsubscribe(self._on_changed)
        self.annotations = annotations
        annotations.subscribe(self._on_changed)
        self._on_changed()

    def _on_changed(self) -> None:
        self._cache.clear()
        if self.selected is not None and self.annotations.get(self.selected) is None:
            self.selected = None
        try:
            self.view.update()
        except RuntimeError:  # the view was deleted without detaching: stop listening
            self.detach()

    def detach(self) -> None:
        self.annotations.unsubscribe(self._on_changed)

    def calibration(self) -> ms.Calibration:
        return self.annotations.calibration(self.view.ref.spacing)

    def modality_unit(self) -> str:
        pipe = self.view.pipeline
        if pipe is not None and pipe.spec.rescale_type.upper() == "HU":
            return "HU"
        return ""

    def measurement(self, ann: ms.Annotation, cal: ms.Calibration | None = None
                    ) -> ms.Measurement:
        cal = cal or self.calibration()
        if cal != self._cal_key:
            self._cache.clear()
            self._cal_key = cal
        m = self._cache.get(ann)
        if m is None:
            pipe = self.view.pipeline
            stored = getattr(self.view, "_stored", None)
            m = ms.measure(ann, cal, stored, pipe.modality_value if pipe else None,
                          self.modality_unit())
            if len(self._cache) > 256:
                self._cache.clear()
            self._cache[ann] = m
        return m

    def set_tool(self, tool: str | None) -> None:
        self.cancel()
        self.tool = tool
        self.view.setCursor(Qt.CursorShape.CrossCursor if tool else Qt.CursorShape.ArrowCursor)

    def cancel(self) -> None:
        """Drop a drawing in progress."""
        self._draft = None
        self._draft_phase = 0
        self._live = None
        self._grab = None
        self.view.update()

    def delete_selected(self) -> bool:
        if self.selected is None:
            return False
        self.annotations.remove(self.selected)
        self.selected = None
        return True

    # -- geometry -------------------------------------------------------------------
    def _size(self) -> tuple[float, float]:
        return float(self.view.width()), float(self.view.height())

    def to_widget(self, p: tuple[float, float]) -> QPointF:
        x, y = self.view.state.to_widget(p, self._size())
        return QPointF(x, y)

    def to_image(self, pos: QPointF) -> tuple[float, float]:
        return self.view.state.to_image((pos.x(), pos.y()), self._size())

    def _items(self) -> list[ms.Annotation]:
        items = [self._live if self._live is not None and a.id == self._live.id else a
                 for a in self.annotations]
        if self._draft is not None:
            items.append(self._draft)
        return items

    def _hit(self, pos: QPointF) -> tuple[str, int] | None:
        """(annotation id, point index) of a handle under ``pos``, else (id, -1) for a
        press on an annotation's outline, else None."""
        p = (pos.x(), pos.y())
        best: tuple[float, tuple[str, int]] | None = None
        for ann in reversed(self.annotations.items):
            if not ann.editable:
                continue
            for i, q in enumerate(ann.points):
                w = self.to_widget(q)
                d = math.hypot(w.x() - p[0], w.y() - p[1])
                if d <= GRAB and (best is None or d < best[0]):
                    best = (d, (ann.id, i))
        if best is not None:
            return best[1]
        for ann in reversed(self.annotations.items):
            if not ann.editable:
                continue
            for a, b in self._segments(ann):
                if _dist_to_segment(p, a, b) <= GRAB:
                    return ann.id, -1
        return None

    def _segments(self, ann: ms.Annotation) -> list[tuple[tuple[float, float], ...]]:
        w = [self.to_widget(q) for q in ann.points]
        pts = [(q.x(), q.y()) for q in w]
        if ann.kind in (ms.ELLIPSE, ms.RECTANGLE) and len(pts) >= 2:
            (x0, y0), (x1, y1) = pts[0], pts[1]
            return [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)),
                    ((x0, y1), (x0, y0))]
        if ann.kind == ms.COBB:
            return [(pts[0], pts[1]), (pts[2], pts[3])] if len(pts) >= 4 else []
        return list(zip(pts, pts[1:], strict=False))

    # -- mouse ----------------------------------------------------------------------
    def mouse_press(self, event) -> bool:
        """Handle a press; True when the overlay took it (the view must not)."""
        if self.view.pipeline is None or event.button() != Qt.MouseButton.LeftButton:
            return False
        pos = event.position()
        q = self.to_image(pos)
        if self._draft is not None and self._draft_phase == 1:
            if self._draft.kind == ms.ANGLE:  # the third point
                self._finish(self._draft.moved(2, q))
                return True
            if self._draft.kind == ms.COBB:  # start of the second line
                pts = self._draft.points[:2] + (q, q)
                self._draft = ms.Annotation(ms.COBB, pts, id=self._draft.id)
                self._draft_phase = 2
                return True
        hit = self._hit(pos)
        if hit is not None:
            self.selected = hit[0]
            self._grab = hit
            self._grab_origin = q
            self._live = self.annotations.get(hit[0])
            self.view.update()
            return True
        self.selected = None
        if self.tool is None:
            self.view.update()
            return False
        n = ms.POINTS[self.tool]
        pts = (q,) * (2 if n == 4 else min(n, 2))
        if self.tool == ms.ANGLE:
            pts = (q, q, q)
        self._draft = ms.Annotation(self.tool, pts)
        self._draft_phase = 0
        self._press_pos = pos
        self.view.update()
        return True

    def mouse_move(self, event) -> bool:
        """Handle a move; True when the overlay took it."""
        pos = event.position()
        q = self.to_image(pos)
        if self._grab is not None and self._live is not None:
            ann_id, index = self._grab
            if index >= 0:
                self._live = self._live.moved(index, q)
            else:
                ox, oy = self._grab_origin
                self._live = self._live.translated(q[0] - ox, q[1] - oy)
                self._grab_origin = q
            self.view.update()
            return True
        if self._draft is None:
            return False
        d = self._draft
        if d.kind == ms.ANGLE:
            self._draft = d.moved(1 if self._draft_phase == 0 else 2, q)
            if self._draft_phase == 0:
                self._draft = self._draft.moved(2, q)
        elif d.kind == ms.COBB and self._draft_phase == 2:
            self._draft = d.moved(3, q)
        elif d.kind == ms.COBB and self._draft_phase == 1:
            return True  # waiting for the second line
        else:
            self._draft = d.moved(1, q)
        self.view.update()
        return True

    def mouse_release(self, event) -> bool:
        """Handle a release; True when the overlay took it."""
        if self._grab is not None:
            live, self._live, self._grab = self._live, None, None
            old = self.annotations.get(live.id) if live is not None else None
            if live is not None and old is not None and live.points != old.points:
                self.annotations.update(live)
            self.view.update()
            return True
        if self._draft is None:
            return False
        d = self._draft
        if d.kind == ms.ANGLE and self._draft_phase == 0:
            if self._too_short(d.points[0], d.points[1]):
                self.cancel()
            else:
                self._draft_phase = 1
            return True
        if d.kind == ms.COBB and self._draft_phase == 0:
            if self._too_short(d.points[0], d.points[1]):
                self.cancel()
            else:
                self._draft_phase = 1
            return True
        if d.kind == ms.COBB and self._draft_phase == 2:
            if self._too_short(d.points[2], d.points[3]):
                self._draft = ms.Annotation(ms.COBB, d.points[:2], id=d.id)
                self._draft_phase = 1
                return True
            self._finish(d)
            return True
        if d.kind in (ms.ANGLE, ms.COBB):
            return True
        if self._too_short(d.points[0], d.points[1]):
            self.cancel()
            return True
        self._finish(d)
        return True

    def _too_short(self, a, b) -> bool:
        wa, wb = self.to_widget(a), self.to_widget(b)
        return math.hypot(wa.x() - wb.x(), wa.y() - wb.y()) < MIN_DRAG

    def _finish(self, ann: ms.Annotation) -> None:
        self._draft = None
        self._draft_phase = 0
        if ann.kind == ms.ARROW:
            text = self.ask_text("Text arrow", "Text:")
            if text is None:
                self.view.update()
                return
            ann = ms.Annotation(ann.kind, ann.points, text=text, id=ann.id)
        elif ann.kind == ms.CALIBRATION:
            mm = self.ask_length()
            if mm is None or not (mm > 0):
                self.view.update()
                return
            ann = ms.Annotation(ann.kind, ann.points, id=ann.id, length_mm=float(mm))
        self.annotations.add(ann)

    def add(self, ann: ms.Annotation) -> ms.Annotation:
        """Add an annotation programmatically (scripts, tests)."""
        return self.annotations.add(ann)

    # -- painting -------------------------------------------------------------------
    def paint(self, p: QPainter) -> None:
        """Draw the annotations, the orientation letters and the marks of the view."""
        p.save()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        font = QFont(self.view.font())
        font.setPointSizeF(max(7.5, min(10.5, self.view.height() / 42)))
        font.setBold(True)
        p.setFont(font)
        cal = self.calibration()
        for ann in self._items():
            try:
                self._paint_one(p, ann, cal)
            except (ValueError, IndexError, OverflowError):
                continue  # a degenerate shape in a foreign file: skip it
        fm = p.fontMetrics()
        line = 1
        for text, colour in ((self.banner, QColor(120, 220, 255)),
                             ("★ KEY IMAGE" if self.key_image else "", QColor(255, 200, 0))):
            if text:
                self._text(p, QPointF((self.view.width() - fm.horizontalAdvance(text)) / 2,
                                      self._top_line(fm, line)), text, colour)
                line += 1
        self._top_used = line
        if self.show_orientation:
            self._paint_orientation(p)
        if self.frame_text:
            fm = p.fontMetrics()
            self._text(p, QPointF((self.view.width() - fm.horizontalAdvance(
                self.frame_text)) / 2, self.view.height() - 8 - fm.descent()),
                self.frame_text, QColor(235, 220, 120))
        p.restore()

    def _top_line(self, fm, index: int) -> float:
        """Baseline of the ``index``-th line under the view's AI text (line 0)."""
        first = 6 + fm.ascent() + (fm.height() + 2 if self.view.ai_text else 0)
        return first + (index - 1) * (fm.height() + 2)

    def _pen(self, color: QColor, width: float = 1.6, style=Qt.PenStyle.SolidLine) -> QPen:
        pen = QPen(color, width, style)
        pen.setCosmetic(True)
        return pen

    def _text(self, p: QPainter, at: QPointF, text: str, color: QColor) -> None:
        fm = p.fontMetrics()
        for i, line in enumerate(text.split("\n")):
            pt = QPointF(at.x(), at.y() + i * fm.height())
            p.setPen(QColor(0, 0, 0))
            p.drawText(pt + QPointF(1, 1), line)
            p.setPen(color)
            p.drawText(pt, line)

    def _label_pos(self, p: QPainter, anchor: QPointF, text: str) -> QPointF:
        """Beside ``anchor``, kept inside the view."""
        fm = p.fontMetrics()
        lines = text.split("\n")
        tw = max(fm.horizontalAdvance(line) for line in lines)
        th = fm.height() * len(lines)
        x = anchor.x() + 10
        y = anchor.y() - 6
        x = min(max(4.0, x), self.view.width() - tw - 4)
        y = min(max(fm.ascent() + 4.0, y), self.view.height() - th + fm.ascent() - 4)
        return QPointF(x, y)

    def _paint_one(self, p: QPainter, ann: ms.Annotation, cal: ms.Calibration) -> None:
        selected = ann.id == self.selected or ann is self._draft
        color = (SELECTED if selected else FOREIGN if not ann.editable
                 else CALIB if ann.kind == ms.CALIBRATION else LINE)
        p.setPen(self._pen(color))
        p.setBrush(Qt.BrushStyle.NoBrush)
        w = [self.to_widget(q) for q in ann.points]
        label = ""
        anchor = w[-1] if w else QPointF()
        kind = ann.kind
        if kind in (ms.LENGTH, ms.CALIBRATION) and len(w) >= 2:
            p.drawLine(w[0], w[1])
            self._ticks(p, w[0], w[1])
            label = self.measurement(ann, cal).label
            if kind == ms.CALIBRATION:  # often edge to edge: label at the middle
                anchor = QPointF((w[0].x() + w[1].x()) / 2, (w[0].y() + w[1].y()) / 2)
        elif kind == ms.ANGLE and len(w) >= 3:
            p.drawPolyline(QPolygonF(w[:3]))
            if ann is not self._draft or self._draft_phase == 1:
                label = self.measurement(ann, cal).label
            anchor = w[1]
        elif kind == ms.COBB:
            p.drawLine(w[0], w[1])
            if len(w) >= 4:
                p.drawLine(w[2], w[3])
                label = self.measurement(ann, cal).label
                anchor = QPointF((w[2].x() + w[3].x()) / 2, (w[2].y() + w[3].y()) / 2)
        elif kind in (ms.ELLIPSE, ms.RECTANGLE) and len(w) >= 2:
            rect = QRectF(w[0], w[1]).normalized()
            if kind == ms.ELLIPSE:
                p.drawEllipse(rect)
            else:
                p.drawRect(rect)
            if ann is not self._draft:
                label = self.measurement(ann, cal).label
            anchor = QPointF(rect.right(), rect.top())
        elif kind == ms.ARROW and len(w) >= 2:
            self._arrow(p, w[1], w[0])
            label = ann.text
            anchor = w[1]
        elif kind == ms.GRAPHIC:
            self._graphic(p, ann, w)
        elif kind == ms.TEXT and w:
            self._text(p, w[0], ann.text, FOREIGN)
        if label:
            self._text(p, self._label_pos(p, anchor, label), label, color)
        if selected and ann.editable:
            p.setPen(self._pen(SELECTED, 1.0))
            for q in w:
                p.drawRect(QRectF(q.x() - 3.5, q.y() - 3.5, 7, 7))

    def _ticks(self, p: QPainter, a: QPointF, b: QPointF) -> None:
        dx, dy = b.x() - a.x(), b.y() - a.y()
        n = math.hypot(dx, dy)
        if n == 0:
            return
        nx, ny = -dy / n * 5, dx / n * 5
        for q in (a, b):
            p.drawLine(QPointF(q.x() - nx, q.y() - ny), QPointF(q.x() + nx, q.y() + ny))

    def _arrow(self, p: QPainter, tail: QPointF, tip: QPointF) -> None:
        p.drawLine(tail, tip)
        dx, dy = tip.x() - tail.x(), tip.y() - tail.y()
        n = math.hypot(dx, dy)
        if n == 0:
            return
        ux, uy = dx / n, dy / n
        size = 11.0
        left = QPointF(tip.x() - size * ux + size * 0.45 * uy,
                       tip.y() - size * uy - size * 0.45 * ux)
        right = QPointF(tip.x() - size * ux - size * 0.45 * uy,
                        tip.y() - size * uy + size * 0.45 * ux)
        path = QPainterPath(tip)
        path.lineTo(left)
        path.lineTo(right)
        path.closeSubpath()
        p.fillPath(path, p.pen().color())

    def _graphic(self, p: QPainter, ann: ms.Annotation, w: list[QPointF]) -> None:
        gtype = ann.graphic_type or "POLYLINE"
        if gtype in ("POLYLINE", "INTERPOLATED") and len(w) >= 2:
            p.drawPolyline(QPolygonF(w))
        elif gtype == "POINT":
            for q in w:
                p.drawLine(QPointF(q.x() - 4, q.y()), QPointF(q.x() + 4, q.y()))
                p.drawLine(QPointF(q.x(), q.y() - 4), QPointF(q.x(), q.y() + 4))
        elif gtype == "CIRCLE" and len(w) >= 2:
            r = math.hypot(w[1].x() - w[0].x(), w[1].y() - w[0].y())
            p.drawEllipse(w[0], r, r)
        elif gtype == "ELLIPSE" and len(w) >= 4:
            c = QPointF((w[0].x() + w[1].x()) / 2, (w[0].y() + w[1].y()) / 2)
            a = ((w[1].x() - w[0].x()) / 2, (w[1].y() - w[0].y()) / 2)
            b = ((w[3].x() - w[2].x()) / 2, (w[3].y() - w[2].y()) / 2)
            poly = QPolygonF([QPointF(c.x() + math.cos(t) * a[0] + math.sin(t) * b[0],
                                      c.y() + math.cos(t) * a[1] + math.sin(t) * b[1])
                              for t in (i * 2 * math.pi / 72 for i in range(73))])
            p.drawPolyline(poly)

    def _paint_orientation(self, p: QPainter) -> None:
        st = self.view.state
        letters = edge_letters(self.view.ref.patient_orientation, st.rotation, st.flip_h,
                               st.flip_v)
        if not letters:
            return
        fm = p.fontMetrics()
        w, h = self.view.width(), self.view.height()
        color = QColor(235, 220, 120)
        for edge, text in letters.items():
            tw = fm.horizontalAdvance(text)
            if edge == "left":
                at = QPointF(8, h / 2 + fm.ascent() / 2)
            elif edge == "right":
                at = QPointF(w - 8 - tw, h / 2 + fm.ascent() / 2)
            elif edge == "top":
                at = QPointF((w - tw) / 2, self._top_line(fm, getattr(self, "_top_used", 1)))
            else:
                at = QPointF((w - tw) / 2, h - 8 - fm.descent()
                             - (fm.height() if self.frame_text else 0))
            self._text(p, at, text, color)
