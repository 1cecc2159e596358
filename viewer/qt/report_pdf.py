"""The PDF report, painted with Qt's own PDF writer, and the export dialog.

:func:`render_pdf` paints a :class:`viewer.report.ReportData` with :class:`QPainter` on a
:class:`QPdfWriter` (A4, 300 device units per inch, PDF/A-1b): text stays vector text with
embedded font subsets; images are embedded by Qt (JPEG or Flate, whichever it picks) at
about 200 dpi of the size they are drawn at (:func:`image_max_side`; never below 150 dpi
unless the source itself has fewer pixels). Layout, top to bottom:

1. header (title, generation time, app version), "research use only" banner, identity;
2. the AI result box and a table of the views (thumbnail, body part, probability);
3. the reviewer's assessment and impression;
4. every view as displayed beside the same view with its Grad-CAM heat map and a
   colormap legend (two views per page), or a grid of the views when there is no map;
5. the model bundle, the sha256 of each input file, and notes (de-identification,
   burned-in annotations).

Every page has a running header (after the first), and a footer with "Research use only —
not for diagnosis" and "Page N of M". The page count is known before painting: the layout
runs twice, first measuring only.

:func:`write_pdf` writes the bytes to a hidden temporary file beside the target and
renames it into place (:func:`os.replace`), so a failure never leaves a partial report or
damages an existing one.

Metadata: title, author, creator (``radview <version>``), Qt's producer, a creation date,
and XMP with the same values plus the subject (``dc:description``) and the PDF/A-1b
identification. Qt writes the Info dictionary's date itself, so the XMP written here must
carry the same second: the paint is repeated (at most twice more) in the rare case the
clock ticked between the two.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import math
import os
import re
import secrets
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMarginsF, QRectF, Qt, QUuid
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontMetricsF,
    QGuiApplication,
    QImage,
    QPagedPaintDevice,
    QPageLayout,
    QPageSize,
    QPainter,
    QPdfWriter,
    QPen,
)
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from viewer.overlay import colormap
from viewer.report import (
    AGREE,
    DISAGREE,
    ReportData,
    ReportError,
    ReportImage,
    ViewSnapshot,
    default_filename,
    gather,
)

log = logging.getLogger(__name__)

#: Device units per inch of the writer.
RESOLUTION = 300
#: Images are embedded at about this many pixels per inch of their drawn size.
TARGET_DPI = 200
#: Effective resolution images keep at least (unless the source is smaller).
MIN_DPI = 150

# Page geometry, millimetres (A4 portrait).
PAGE_W, PAGE_H = 210.0, 297.0
MARGIN_X, MARGIN_TOP, MARGIN_BOTTOM = 16.0, 13.0, 17.0
CONTENT_W = PAGE_W - 2 * MARGIN_X
CELL_GAP = 6.0
CELL_W = (CONTENT_W - CELL_GAP) / 2
CELL_H = 92.0
THUMB = 14.0

TEXT = QColor(28, 30, 34)
MUTED = QColor(96, 102, 112)
ACCENT = QColor(28, 66, 116)
RULE = QColor(188, 194, 204)
BOX_BG = QColor(243, 245, 248)
HEAD_BG = QColor(226, 231, 238)
BANNER_BG = QColor(251, 234, 231)
BANNER_FG = QColor(135, 24, 24)
POSITIVE = QColor(168, 36, 30)
NEGATIVE = QColor(28, 112, 58)
NEUTRAL = QColor(112, 116, 124)
AMBER = QColor(150, 96, 0)

SANS = ["DejaVu Sans", "Helvetica", "Arial", "Liberation Sans", "Noto Sans"]
MONO = ["DejaVu Sans Mono", "Menlo", "Consolas", "Liberation Mono", "Courier New"]

_LEFT = Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop
_RIGHT = Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignTop
_CENTER = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
_WRAP = Qt.TextFlag.TextWordWrap
_WRAP_ANY = Qt.TextFlag.TextWrapAnywhere


def ensure_application() -> QGuiApplication:
    """The running QGuiApplication, or a new one for headless use (``radview report``);
    Qt's offscreen platform when there is no display (Linux without ``DISPLAY`` or
    ``WAYLAND_DISPLAY``)."""
    app = QGuiApplication.instance()
    if app is not None:
        return app
    if (sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM")
            and not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY")):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    return QGuiApplication(["radview-report"])


def image_max_side() -> int:
    """Longest side (pixels) the layout needs for a view image at :data:`TARGET_DPI`."""
    return math.ceil(max(CELL_W, CELL_H) / 25.4 * TARGET_DPI)


@dataclass
class PlacedImage:
    """Where an image was drawn: page (1-based), what, rectangle in mm, effective dpi."""

    page: int
    kind: str  # "displayed", "overlay" or "thumbnail"
    number: int  # the view's number
    rect_mm: tuple[float, float, float, float]  # x, y, width, height from the top left
    dpi: float


@dataclass
class PdfResult:
    """What :func:`write_pdf` wrote."""

    path: Path | None
    pages: int
    size: int
    images: list[PlacedImage] = field(default_factory=list)


def _font(size: float, bold: bool = False, mono: bool = False,
          italic: bool = False) -> QFont:
    font = QFont()
    font.setFamilies(MONO if mono else SANS)
    font.setStyleHint(QFont.StyleHint.Monospace if mono else QFont.StyleHint.SansSerif)
    font.setPointSizeF(size)
    font.setBold(bold)
    font.setItalic(italic)
    # No ligatures: text copied or searched in the PDF reads "fi", not "ﬁ".
    for tag in ("liga", "clig", "dlig"):
        font.setFeature(QFont.Tag(tag), 0)
    return font


def _qimage(array: np.ndarray) -> QImage:
    """A QImage that owns a copy of a uint8 gray (H, W) or RGB (H, W, 3) array."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    h, w = a.shape[:2]
    if a.ndim == 2:
        return QImage(a.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    return QImage(a.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def _stamp(when: dt.datetime) -> str:
    """``2026-01-02 14:05 CET (UTC+01:00)``, or ``… 14:05 UTC``."""
    text = when.strftime("%Y-%m-%d %H:%M")
    name, offset = when.strftime("%Z"), when.strftime("%z")
    if name in ("UTC", "GMT") or (not name and offset in ("+0000", "")):
        return f"{text} UTC"
    zone = f"UTC{offset[:3]}:{offset[3:5]}" if offset else ""
    if name and not name.lstrip("+-").isdigit():
        return f"{text} {name}" + (f" ({zone})" if zone else "")
    return f"{text} {zone}".strip()


def _fmt_prob(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


class _Layout:
    """Lays out and paints the report; with ``painter=None`` it only measures.

    Coordinates are device units (1/300 inch) from the page's top left; ``mm()`` converts.
    """

    def __init__(self, writer: QPdfWriter, painter: QPainter | None, data: ReportData,
                 total_pages: int) -> None:
        self.writer = writer
        self.p = painter
        self.data = data
        self.total = total_pages
        self.unit = writer.resolution() / 25.4
        self.page = 1
        self.left = self.mm(MARGIN_X)
        self.width = self.mm(CONTENT_W)
        self.top = self.mm(MARGIN_TOP)
        self.bottom = self.mm(PAGE_H - MARGIN_BOTTOM)
        self.y = self.top
        self.placed: list[PlacedImage] = []
        self._metrics: dict[tuple, QFontMetricsF] = {}
        self._images: dict[tuple, QImage] = {}

    # -- units and primitives ----------------------------------------------------------
    def mm(self, value: float) -> float:
        return value * self.unit

    def _fm(self, font: QFont) -> QFontMetricsF:
        key = (font.pointSizeF(), font.bold(), font.italic(), tuple(font.families()))
        if key not in self._metrics:
            self._metrics[key] = QFontMetricsF(font, self.writer)
        return self._metrics[key]

    def text(self, x: float, y: float, w: float, text: str, font: QFont,
             color: QColor = TEXT, align=_LEFT, wrap=_WRAP, draw: bool = True) -> float:
        """Draw wrapped text in a column of width ``w``; returns the height used."""
        if not text:
            return 0.0
        flags = align | wrap
        rect = self._fm(font).boundingRect(QRectF(0, 0, w, 1e7), flags, text)
        height = rect.height()
        if draw and self.p is not None:
            self.p.setFont(font)
            self.p.setPen(color)
            self.p.drawText(QRectF(x, y, w, height + self.mm(1)), flags, text)
        return height

    def line_height(self, font: QFont) -> float:
        return self._fm(font).height()

    def rule(self, y: float, color: QColor = RULE, width_mm: float = 0.25,
             x0: float | None = None, x1: float | None = None) -> None:
        if self.p is None:
            return
        self.p.setPen(QPen(color, self.mm(width_mm)))
        self.p.drawLine(int(x0 if x0 is not None else self.left), int(y),
                        int(x1 if x1 is not None else self.left + self.width), int(y))

    def box(self, rect: QRectF, fill: QColor | None, border: QColor | None = None,
            width_mm: float = 0.25) -> None:
        if self.p is None:
            return
        if fill is not None:
            self.p.fillRect(rect, fill)
        if border is not None:
            self.p.setPen(QPen(border, self.mm(width_mm)))
            self.p.setBrush(Qt.BrushStyle.NoBrush)
            self.p.drawRect(rect)

    def qimage(self, im: ReportImage, kind: str, min_size: tuple[int, int]) -> QImage:
        """The view's image as a QImage, smoothly enlarged to at least ``min_size`` (a
        source too small for :data:`MIN_DPI` at its printed size; PDF viewers and printers
        often enlarge without interpolating)."""
        key = (im.number, kind, min_size)
        if key not in self._images:
            array = {"overlay": im.overlay, "marked": im.marked}.get(kind, im.displayed)
            image = _qimage(array)
            if image.width() < min_size[0] or image.height() < min_size[1]:
                image = image.scaled(min_size[0], min_size[1],
                                     Qt.AspectRatioMode.KeepAspectRatio,
                                     Qt.TransformationMode.SmoothTransformation)
            self._images[key] = image
        return self._images[key]

    def fitted(self, im: ReportImage, width: float, height: float) -> tuple[float, float]:
        """Size (device units) of the view's image fitted into width × height."""
        if im.displayed is None:
            return width, min(height, self.mm(40))
        h, w = im.displayed.shape[:2]
        scale = min(width / w, height / h)
        return w * scale, h * scale

    def image(self, rect: QRectF, im: ReportImage, kind: str, record: str) -> None:
        """Draw a view's image fitted (aspect kept) and centred in ``rect``."""
        array = {"overlay": im.overlay, "marked": im.marked}.get(kind, im.displayed)
        if array is None:
            return
        h, w = array.shape[:2]
        scale = min(rect.width() / w, rect.height() / h)
        tw, th = w * scale, h * scale
        target = QRectF(rect.x() + (rect.width() - tw) / 2, rect.y() + (rect.height() - th) / 2,
                        tw, th)
        inches = tw / self.writer.resolution()
        need = (math.ceil(inches * MIN_DPI), math.ceil(th / self.writer.resolution() * MIN_DPI))
        embedded = max(w, need[0])
        self.placed.append(PlacedImage(self.page, record, im.number,
                                       tuple(v / self.unit for v in (target.x(), target.y(),
                                                                     tw, th)),
                                       embedded / inches))
        if self.p is not None:
            self.p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            self.p.drawImage(target, self.qimage(im, kind, need if w < need[0] else (0, 0)))

    # -- pages -------------------------------------------------------------------------
    def need(self, height: float) -> None:
        """Start a new page unless ``height`` still fits on this one."""
        if self.y + height > self.bottom and self.y > self.top + self.mm(12):
            self.new_page()

    def new_page(self) -> None:
        self.footer()
        if self.p is not None:
            self.writer.newPage()
        self.page += 1
        self.y = self.top
        self.running_header()

    def running_header(self) -> None:
        font = _font(7.5)
        h = self.text(self.left, self.y, self.width * 0.75,
                      f"Radiograph AI report · {self.data.running_header}", font, MUTED)
        self.text(self.left, self.y, self.width, f"radview {self.data.app_version}", font,
                  MUTED, _RIGHT)
        self.y += h + self.mm(1.2)
        self.rule(self.y)
        self.y += self.mm(5)

    def footer(self) -> None:
        y = self.mm(PAGE_H - MARGIN_BOTTOM + 5)
        self.rule(y)
        font = _font(7.5)
        bold = _font(7.5, bold=True)
        y += self.mm(1.5)
        self.text(self.left, y, self.width * 0.6,
                  "Research use only — not for diagnosis.", bold, BANNER_FG)
        middle = "De-identified" if self.data.deidentified else ""
        stamp = self.data.generated.strftime("%Y-%m-%d %H:%M")
        self.text(self.left, y, self.width,
                  " · ".join(x for x in (middle, f"generated {stamp}") if x), font, MUTED,
                  _CENTER)
        self.text(self.left, y, self.width, f"Page {self.page} of {self.total}", font, MUTED,
                  _RIGHT)

    # -- blocks --------------------------------------------------------------------------
    def section(self, title: str, keep_with: float = 0.0) -> None:
        font = _font(11.5, bold=True)
        h = self.line_height(font)
        self.need(h + self.mm(3) + keep_with)
        self.y += self.mm(2)
        self.text(self.left, self.y, self.width, title, font, ACCENT)
        self.y += h + self.mm(0.8)
        self.rule(self.y, ACCENT, 0.35)
        self.y += self.mm(2.5)

    def header(self) -> None:
        d = self.data
        small = _font(8.5, bold=True)
        self.text(self.left, self.y, self.width, "RADVIEW", small, ACCENT)
        meta = _font(8)
        stamp = _stamp(d.generated)
        right = [f"Generated {stamp}", f"radview {d.app_version}"]
        ry = self.y
        for line in right:
            ry += self.text(self.left, ry, self.width, line, meta, MUTED, _RIGHT)
        self.y += self.line_height(small)
        title = _font(18, bold=True)
        self.y += self.text(self.left, self.y, self.width * 0.7, "Radiograph AI report", title)
        self.y = max(self.y, ry) + self.mm(1.5)
        self.rule(self.y, ACCENT, 0.6)
        self.y += self.mm(2.5)
        banner = _font(8.5, bold=True)
        text = ("RESEARCH USE ONLY — NOT FOR DIAGNOSIS. The AI result has not been "
                "validated for clinical use and must not guide patient care.")
        pad = self.mm(2)
        h = self.text(0, 0, self.width - 2 * pad, text, banner, draw=False) + 2 * pad
        self.box(QRectF(self.left, self.y, self.width, h), BANNER_BG)
        self.text(self.left + pad, self.y + pad, self.width - 2 * pad, text, banner, BANNER_FG,
                  _CENTER)
        self.y += h + self.mm(4)

    def _kv_rows(self, x: float, y: float, w: float, rows: list[tuple[str, str]],
                 label_w: float, draw: bool) -> float:
        label_font, value_font = _font(8), _font(9.5)
        start = y
        for label, value in rows:
            lh = self.text(x, y + self.mm(0.4), label_w, label, label_font, MUTED, draw=draw)
            vh = self.text(x + label_w, y, w - label_w, value, value_font, draw=draw)
            y += max(lh, vh) + self.mm(1.2)
        return y - start

    def identity(self) -> None:
        d = self.data
        pad = self.mm(3.5)
        col_w = (self.width - 3 * pad) / 2
        head = _font(8, bold=True)
        hh = self.line_height(head) + self.mm(1.5)
        label_w = self.mm(27)
        heights = [self._kv_rows(0, 0, col_w, rows, label_w, False)
                   for rows in (d.patient_rows, d.study_rows)]
        height = 2 * pad + hh + max(heights)
        self.need(height)
        self.box(QRectF(self.left, self.y, self.width, height), BOX_BG, RULE)
        for i, (title, rows) in enumerate((("PATIENT", d.patient_rows),
                                           ("STUDY", d.study_rows))):
            x = self.left + pad + i * (col_w + pad)
            self.text(x, self.y + pad, col_w, title, head, ACCENT)
            self._kv_rows(x, self.y + pad + hh, col_w, rows, label_w, True)
        self.y += height + self.mm(3)

    def ai_box(self) -> None:
        ai = self.data.ai
        pad = self.mm(4)
        stripe = self.mm(2.2)
        x = self.left + stripe + pad
        w = self.width - stripe - 2 * pad
        big, body, small = _font(17, bold=True), _font(9.5), _font(8)
        if ai.scored:
            color = POSITIVE if ai.positive else NEGATIVE
            headline = (ai.label or "").upper()
        else:
            color, headline = NEUTRAL, "No AI result"
        lines: list[tuple[str, QFont, QColor]] = []
        if not ai.scored:
            lines.append((f"Reason: {ai.reason}", body, TEXT))
        if ai.body_part:
            src = f" — from {ai.source_text}" if ai.source_text else ""
            lines.append((f"Body part: {ai.body_part}{src}", body, TEXT))
        if ai.model:
            bundle = self.data.bundle
            where = f" · bundle {bundle.name} {bundle.version}" if bundle else ""
            lines.append((f"Model: {ai.model}{where}", body, TEXT))
        for flag in ai.flags:
            lines.append((f"Check: {flag}", body, AMBER))
        if ai.scored:
            lines.append((ai.rule_text, small, MUTED))

        def content(draw: bool, y0: float) -> float:
            y = y0
            score_w = self.mm(62)
            hb = self.text(x, y, w - score_w, headline, big, color, draw=draw)
            if ai.scored:
                label = _font(8)
                yy = y
                yy += self.text(x, yy, w, "STUDY SCORE", label, MUTED, _RIGHT, draw=draw)
                yy += self.text(x, yy, w, f"{ai.score:.3f}", big, color, _RIGHT, draw=draw)
                yy += self.text(x, yy, w, f"threshold {ai.threshold:.2f}", label, MUTED,
                                _RIGHT, draw=draw)
                hb = max(hb, yy - y)
            y += hb + self.mm(1.5)
            for text, font, col in lines:
                y += self.text(x, y, w - (self.mm(62) if y - y0 < hb else 0), text, font, col,
                               draw=draw) + self.mm(0.8)
            return y - y0

        height = content(False, 0) + 2 * pad
        self.need(height)
        rect = QRectF(self.left, self.y, self.width, height)
        self.box(rect, BOX_BG, RULE)
        self.box(QRectF(self.left, self.y, stripe, height), color)
        content(True, self.y + pad)
        self.y += height + self.mm(4)

    def _cell(self, x: float, y: float, wd: float, value: object, align, draw: bool) -> float:
        """One table cell: text, ``("mono", text)``, ``("color", QColor, text)`` or
        ``("thumb", ReportImage)``; returns its height."""
        cell_font, mono = _font(8.5), _font(7.2, mono=True)
        pad = self.mm(1.4)
        if isinstance(value, tuple) and value[0] == "thumb":
            im = value[1]
            size = self.mm(THUMB)
            if draw and im.displayed is not None:
                fw, fh = self.fitted(im, size, size)
                r = QRectF(x + pad + (size - fw) / 2, y + pad + (size - fh) / 2, fw, fh)
                self.image(r, im, "displayed", "thumbnail")
                self.box(r, None, RULE, 0.2)
            return size + 2 * pad
        if isinstance(value, tuple) and value[0] == "mono":
            return self.text(x + pad, y + pad, wd - 2 * pad, value[1], mono, TEXT, align,
                             _WRAP_ANY, draw) + 2 * pad
        if isinstance(value, tuple) and value[0] == "color":
            return self.text(x + pad, y + pad, wd - 2 * pad, value[2], cell_font, value[1],
                             align, _WRAP, draw) + 2 * pad
        text = str(value)
        wrap = _WRAP_ANY if ("/" in text or "\\" in text) else _WRAP
        return self.text(x + pad, y + pad, wd - 2 * pad, text, cell_font, TEXT, align, wrap,
                         draw) + 2 * pad

    def _table_rows(self, columns, rows) -> tuple[float, list[float]]:
        head_font = _font(8, bold=True)
        pad = self.mm(1.4)
        widths = [self.mm(c[1]) for c in columns]
        head = max(self.text(0, 0, wd - 2 * pad, c[0], head_font, draw=False)
                   for c, wd in zip(columns, widths, strict=True)) + 2 * pad
        heights = [max(self._cell(0, 0, wd, v, c[2], False)
                       for v, wd, c in zip(row, widths, columns, strict=True)) for row in rows]
        return head, heights

    def table_height(self, columns, rows) -> float:
        head, heights = self._table_rows(columns, rows)
        return head + sum(heights)

    def table(self, columns: list[tuple[str, float, object]], rows: list[list[object]]) -> None:
        """A table (cells as in :meth:`_cell`); ``columns`` are ``(title, width in mm,
        alignment)``. The header is repeated after a page break."""
        head_font = _font(8, bold=True)
        pad = self.mm(1.4)
        widths = [self.mm(c[1]) for c in columns]
        head, heights = self._table_rows(columns, rows)

        def header_row() -> None:
            self.box(QRectF(self.left, self.y, self.width, head), HEAD_BG)
            x = self.left
            for (title, _, align), wd in zip(columns, widths, strict=True):
                self.text(x + pad, self.y + pad, wd - 2 * pad, title, head_font, TEXT, align)
                x += wd
            self.y += head

        for i, (row, h) in enumerate(zip(rows, heights, strict=True)):
            if i == 0:
                self.need(head + h)
                header_row()
            elif self.y + h > self.bottom:
                self.new_page()
                header_row()
            x = self.left
            for v, wd, c in zip(row, widths, columns, strict=True):
                self._cell(x, self.y, wd, v, c[2], True)
                x += wd
            self.y += h
            self.rule(self.y)
        self.y += self.mm(3)

    def views_table(self) -> None:
        d = self.data
        rows = []
        for im in d.images:
            view = im.label + (f"\n{im.description}" if im.description else "")
            if im.error:
                view += f"\nnot shown: {im.error}"
            part = im.body_part or "—"
            src = {"tag": "DICOM tag", "path": "folder", "router": "router",
                   "override": "override"}.get(im.body_part_source or "", "")
            if src:
                part += f" ({src})"
            if im.probability is None:
                verdict: object = "—"
            elif d.threshold is not None and im.probability >= d.threshold:
                verdict = ("color", POSITIVE, f"≥ {d.threshold:.2f}")
            else:
                verdict = ("color", NEGATIVE, f"< {d.threshold:.2f}" if d.threshold is not None
                           else "—")
            rows.append([str(im.number), ("thumb", im), view, part, _fmt_prob(im.probability),
                         verdict])
        columns = [("#", 8, _CENTER), ("Image", THUMB + 4, _LEFT), ("File and view", 62, _LEFT),
                   ("Body part", 40, _LEFT), ("Probability", 24, _RIGHT),
                   ("vs threshold", CONTENT_W - 8 - THUMB - 4 - 62 - 40 - 24, _RIGHT)]
        self.table(columns, rows)

    def reviewer(self, draw: bool = True) -> float:
        """The reviewer's assessment, impression and signature lines; with ``draw=False``
        only its height (to keep it on one page with its heading)."""
        d = self.data
        body, bold, small = _font(9.5), _font(9.5, bold=True), _font(8)
        color = {AGREE: NEGATIVE, DISAGREE: POSITIVE}.get(d.agreement, NEUTRAL)
        label = "Reviewer's assessment:"
        label_w = self._fm(bold).horizontalAdvance(label) + self.mm(3)
        pad = self.mm(2.5)
        text = d.impression or "No impression entered."
        font = body if d.impression else _font(9.5, italic=True)
        h_assess = self.text(0, 0, self.width - label_w, d.agreement_text, bold, draw=False)
        h_label = self.line_height(bold) + self.mm(0.8)
        box_h = max(self.mm(18), self.text(0, 0, self.width - 2 * pad, text, font,
                                           draw=False) + 2 * pad)
        sign_h = self.mm(8) + self.line_height(small) + self.mm(3)
        total = h_assess + self.mm(2) + h_label + box_h + sign_h
        if not draw:
            return total
        self.need(min(total, self.mm(80)))
        self.text(self.left, self.y, label_w, label, bold)
        self.text(self.left + label_w, self.y, self.width - label_w, d.agreement_text, bold,
                  color)
        self.y += h_assess + self.mm(2)
        self.text(self.left, self.y, self.width, "Impression", bold)
        self.y += h_label
        if self.y + box_h > self.bottom:
            self.new_page()
        self.box(QRectF(self.left, self.y, self.width, box_h), None, RULE)
        self.text(self.left + pad, self.y + pad, self.width - 2 * pad, text, font,
                  TEXT if d.impression else MUTED)
        self.y += box_h + self.mm(8)
        self.need(sign_h - self.mm(8))
        for x0, x1, words in ((0, 95, "Reviewer (name, signature)"), (110, CONTENT_W, "Date")):
            self.rule(self.y, TEXT, 0.25, self.left + self.mm(x0), self.left + self.mm(x1))
            self.text(self.left + self.mm(x0), self.y + self.mm(0.8), self.mm(x1 - x0), words,
                      small, MUTED)
        self.y += sign_h - self.mm(8)
        return total

    def legend(self, x: float, y: float, w: float) -> float:
        """A horizontal colour bar, low → high, with its labels; returns the height."""
        small = _font(7)
        bar_h = self.mm(2.6)
        lw = self._fm(small).horizontalAdvance("high") + self.mm(1.5)
        if self.p is not None:
            table = colormap(self.data.cmap)
            steps = 64
            x0, x1 = x + lw, x + w - lw
            for i in range(steps):
                r, g, b = table[int(round(i / (steps - 1) * 255))]
                sx = x0 + (x1 - x0) * i / steps
                self.p.fillRect(QRectF(sx, y, (x1 - x0) / steps + 1, bar_h),
                                QColor(int(r), int(g), int(b)))
            self.p.setPen(QPen(RULE, self.mm(0.2)))
            self.p.setBrush(Qt.BrushStyle.NoBrush)
            self.p.drawRect(QRectF(x0, y, x1 - x0, bar_h))
        fh = self.line_height(small)
        ty = y + (bar_h - fh) / 2
        self.text(x, ty, lw, "low", small, MUTED)
        self.text(x, ty, w, "high", small, MUTED, _RIGHT)
        return max(bar_h, fh)

    def cell(self, x: float, y: float, im: ReportImage, kind: str, height: float) -> None:
        """One view image in a column of width :data:`CELL_W` (centred), or why not."""
        w = self.mm(CELL_W)
        fw, fh = self.fitted(im, w, height)
        rect = QRectF(x + (w - fw) / 2, y, fw, fh)
        array = im.overlay if kind == "overlay" else im.displayed
        if array is not None:
            self.image(rect, im, kind, kind)
            self.box(rect, None, RULE, 0.2)
            return
        self.box(rect, BOX_BG, RULE, 0.2)
        if kind == "overlay":
            text = "No Grad-CAM heat map for this view"
            if not self.data.ai.scored:
                text += f" ({self.data.ai.reason})"
        else:
            text = f"Not shown: {im.error or 'not decoded'}"
        pad = self.mm(5)
        th = self.text(0, 0, fw - 2 * pad, text, _font(8.5), draw=False)
        self.text(rect.x() + pad, rect.y() + (fh - th) / 2, fw - 2 * pad, text, _font(8.5),
                  MUTED, _CENTER)

    def caption(self, im: ReportImage) -> str:
        parts = [f"{im.number}. {im.label}"]
        if im.description:
            parts.append(im.description)
        if im.probability is not None:
            parts.append(f"probability {im.probability:.3f}")
        return " · ".join(parts)

    def shown_text(self, im: ReportImage) -> str:
        if im.displayed is None:
            return ""
        w, h = im.source_size
        return f"As displayed: {im.window_text}; {im.orientation_text}; {w}×{h} px"

    def view_pair(self, im: ReportImage) -> None:
        bold, small = _font(9.5, bold=True), _font(7.5)
        cap_h = self.text(0, 0, self.width, self.caption(im), bold, draw=False)
        sub_w = self.mm(CELL_W)
        _, cell_h = self.fitted(im, sub_w, self.mm(CELL_H))
        sub_h = max(self.text(0, 0, sub_w, self.shown_text(im), small, draw=False),
                    self.line_height(small))
        legend_h = self.mm(3.2) + self.line_height(small) if im.overlay is not None else 0.0
        notes = "; ".join(im.notes)
        notes_h = self.text(0, 0, self.width, notes, small, draw=False)
        height = (cap_h + self.mm(1.5) + cell_h + self.mm(1.5) + max(sub_h, legend_h)
                  + notes_h + self.mm(6))
        self.need(height)
        self.text(self.left, self.y, self.width, self.caption(im), bold)
        self.y += cap_h + self.mm(1.5)
        right = self.left + self.mm(CELL_W + CELL_GAP)
        self.cell(self.left, self.y, im, "displayed", self.mm(CELL_H))
        self.cell(right, self.y, im, "overlay", self.mm(CELL_H))
        self.y += cell_h + self.mm(1.5)
        self.text(self.left, self.y, sub_w, self.shown_text(im), small, MUTED)
        if im.overlay is not None:
            lh = self.legend(right, self.y, sub_w)
            self.text(right, self.y + lh + self.mm(0.6), sub_w,
                      f"Grad-CAM heat map ({self.data.cmap}, opacity "
                      f"{self.data.opacity * 100:.0f}%)", small, MUTED, _CENTER)
        self.y += max(sub_h, legend_h)
        if notes:
            self.y += self.text(self.left, self.y, self.width, notes, small, AMBER)
        self.y += self.mm(6)

    def view_grid_row(self, row: list[ReportImage]) -> None:
        bold, small = _font(9.5, bold=True), _font(7.5)
        w = self.mm(CELL_W)
        cap_h = max(self.text(0, 0, w, self.caption(im), bold, draw=False) for im in row)
        cell_h = max(self.fitted(im, w, self.mm(CELL_H))[1] for im in row)
        sub_h = max(self.text(0, 0, w, self.shown_text(im), small, draw=False)
                    + self.text(0, 0, w, "; ".join(im.notes), small, draw=False)
                    for im in row)
        height = cap_h + self.mm(1.5) + cell_h + self.mm(1.5) + sub_h + self.mm(6)
        self.need(height)
        for i, im in enumerate(row):
            x = self.left + i * self.mm(CELL_W + CELL_GAP)
            self.text(x, self.y, w, self.caption(im), bold)
            self.cell(x, self.y + cap_h + self.mm(1.5), im, "displayed", self.mm(CELL_H))
            yy = self.y + cap_h + self.mm(1.5) + cell_h + self.mm(1.5)
            yy += self.text(x, yy, w, self.shown_text(im), small, MUTED)
            self.text(x, yy, w, "; ".join(im.notes), small, AMBER)
        self.y += height

    def images(self) -> None:
        d = self.data
        if not d.images:
            return
        self.new_page()
        if d.has_overlays:
            intro = ("Left: each view as displayed in radview (the reviewer's window/level, "
                     "inversion, rotation and flip; zoom and pan are not applied). Right: the "
                     f"same view with the Grad-CAM heat map ({d.cmap} colours, low → high), "
                     "which shows the regions that most influenced the model's probability; "
                     "it is not a localisation of findings. Boxes, where drawn, come from "
                     "the model's fracture box head: solid = fracture, dotted = doubt.")
        else:
            reason = "" if d.ai.scored else f": {d.ai.reason}"
            intro = ("Each view as displayed in radview (the reviewer's window/level, "
                     "inversion, rotation and flip; zoom and pan are not applied). No "
                     f"Grad-CAM heat maps{reason}.")
        small = _font(8)
        self.section("Images", self.text(0, 0, self.width, intro, small, draw=False))
        self.y += self.text(self.left, self.y, self.width, intro, small, MUTED) + self.mm(3)
        if d.has_overlays:
            for im in d.images:
                self.view_pair(im)
        else:
            for i in range(0, len(d.images), 2):
                self.view_grid_row(d.images[i:i + 2])

    def reading(self) -> None:
        """Key images (drawn with their measurements) and the measurement table."""
        d = self.data
        keys = [im for im in d.images if (im.key or im.marked is not None)
                and im.displayed is not None]
        if not keys and not d.measurements:
            return
        small = _font(8)
        if d.measurements:
            columns = [("Image", 45, _LEFT), ("Tool", 30, _LEFT),
                       ("Value (unit and calibration as shown)", CONTENT_W - 75, _LEFT)]
            rows = [list(r) for r in d.measurements]
            self.section("Measurements", min(self.table_height(columns, rows),
                                             self.mm(60)))
            self.table(columns, rows)
        for im in keys:
            height = self.mm(110)
            self.section(f"{'Key image' if im.key else 'Image'} {im.number}: {im.label}",
                         height)
            rect = QRectF(self.left, self.y, self.width, height - self.mm(8))
            self.image(rect, im, "marked" if im.marked is not None else "displayed",
                       "key" if im.key else "marked")
            self.y += height - self.mm(8)
            caption = " · ".join(x for x in (im.description, im.window_text,
                                             im.orientation_text) if x)
            self.y += self.text(self.left, self.y + self.mm(1), self.width, caption, small,
                                MUTED) + self.mm(4)

    def bundle(self) -> None:
        d = self.data
        b = d.bundle
        if b is None:
            self.section("Model bundle", self.mm(8))
            self.y += self.text(self.left, self.y, self.width,
                                f"No model bundle: {d.bundle_note}.", _font(9.5)) + self.mm(3)
            return
        rows: list[list[object]] = [
            ["Bundle", f"{b.name} {b.version}" + (f" (folder {b.folder})" if b.folder else "")],
            ["Intended use", b.intended_use], ["License", b.license],
            ["Training data", b.training_data + (f"\n{b.citation}" if b.citation else "")]]
        if b.description:
            rows.append(["Description", b.description])
        if b.models:
            rows.append(["Models", "\n".join(f"{k}: {v}" for k, v in b.models)])
        rows.append(["Headline metrics",
                     "\n".join(f"{k} = {v}" for k, v in b.metrics) or "none stated"])
        for file, sha in b.weights:
            rows.append([f"Weights {file}", ("mono", f"sha256 {sha}")])
        columns = [("Item", 38, _LEFT), ("Value", CONTENT_W - 38, _LEFT)]
        height = self.table_height(columns, rows)
        # Kept on one page with its heading when it fits on a page at all.
        self.section("Model bundle", height if height < self.mm(150) else self.mm(20))
        self.table(columns, rows)

    def files(self) -> None:
        d = self.data
        if not d.files:
            return
        intro = f"Folder: {d.files_folder}" if d.files_folder else ""
        self.section("Input files", self.mm(14))
        if intro:
            self.y += self.text(self.left, self.y, self.width, intro, _font(8), MUTED,
                                wrap=_WRAP_ANY) + self.mm(1.5)
        rows = [[str(i), label, ("mono", sha)] for i, (label, sha) in enumerate(d.files, 1)]
        self.table([("#", 8, _CENTER), ("File", 68, _LEFT), ("SHA-256", CONTENT_W - 76, _LEFT)],
                   rows)

    def notes(self) -> None:
        d = self.data
        notes = list(d.caveats) + [
            "Images are embedded at about 200 dpi of their printed size; zoom and pan are "
            "not part of the report. The reader's measurements and annotations are drawn "
            "on the key and measured images only.",
            "AI results come from research software and models; they are not a diagnosis. "
            f"Generated by radview {d.app_version}."]
        font = _font(8)
        self.section("Notes", self.mm(10))
        for note in notes:
            h = self.text(0, 0, self.width - self.mm(4), note, font, draw=False)
            self.need(h)
            self.text(self.left, self.y, self.mm(4), "•", font, MUTED)
            self.y += self.text(self.left + self.mm(4), self.y, self.width - self.mm(4), note,
                                font, AMBER if "burned-in" in note else TEXT) + self.mm(1.2)

    def run(self) -> int:
        self.header()
        self.identity()
        self.section("AI result", self.mm(30))
        self.ai_box()
        if self.data.images:
            self.views_table()
        self.section("Reviewer", min(self.reviewer(draw=False), self.mm(80)))
        self.reviewer()
        self.reading()
        self.images()
        self.bundle()
        self.files()
        self.notes()
        self.footer()
        return self.page


# ------------------------------------------------------------------------------ writing


def _xmp(title: str, author: str, creator: str, subject: str, producer: str,
         stamp: dt.datetime, document_id: str) -> bytes:
    """XMP packet with the Info dictionary's values, the subject and PDF/A-1b ids."""
    e = html.escape
    date = stamp.isoformat(timespec="seconds")
    return (
        "<?xpacket begin='' id='W5M0MpCehiHzreSzNTczkc9d'?>"
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        "   <dc:format>application/pdf</dc:format>\n"
        f'   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">{e(title)}</rdf:li></rdf:Alt>'
        "</dc:title>\n"
        f"   <dc:creator><rdf:Seq><rdf:li>{e(author)}</rdf:li></rdf:Seq></dc:creator>\n"
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{e(subject)}</rdf:li>'
        "</rdf:Alt></dc:description>\n"
        "  </rdf:Description>\n"
        '  <rdf:Description rdf:about="" xmlns:pdf="http://ns.adobe.com/pdf/1.3/"'
        f' pdf:Producer="{e(producer)}" pdf:Trapped="False"/>\n'
        '  <rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
        f' xmp:CreatorTool="{e(creator)}" xmp:CreateDate="{date}" xmp:ModifyDate="{date}"'
        f' xmp:MetadataDate="{date}"/>\n'
        '  <rdf:Description rdf:about="" xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"'
        f' xmpMM:DocumentID="uuid:{document_id}" xmpMM:VersionID="1"'
        ' xmpMM:RenditionClass="default"/>\n'
        '  <rdf:Description rdf:about="" xmlns:pdfaid="http://www.aiim.org/pdfa/ns/id/"'
        ' pdfaid:part="1" pdfaid:conformance="B"/>\n'
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        "<?xpacket end='w'?>").encode()


def _writer(buffer: QBuffer, data: ReportData, stamp: dt.datetime) -> QPdfWriter:
    from PySide6.QtCore import qVersion

    writer = QPdfWriter(buffer)
    writer.setPdfVersion(QPagedPaintDevice.PdfVersion.PdfVersion_A1b)
    writer.setResolution(RESOLUTION)
    writer.setPageLayout(QPageLayout(QPageSize(QPageSize.PageSizeId.A4),
                                     QPageLayout.Orientation.Portrait,
                                     QMarginsF(0, 0, 0, 0), QPageLayout.Unit.Millimeter))
    creator = f"radview {data.app_version}"
    author = "radview"
    writer.setTitle(data.title)
    writer.setCreator(creator)
    writer.setAuthor(author)
    doc_id = str(uuid.uuid4())
    writer.setDocumentId(QUuid(doc_id))
    writer.setDocumentXmpMetadata(QByteArray(_xmp(
        data.title, author, creator, data.subject, f"Qt {qVersion()}", stamp, doc_id)))
    return writer


_INFO_DATE = re.compile(rb"/CreationDate \(D:(\d{14})")


def render_pdf(data: ReportData) -> tuple[bytes, PdfResult]:
    """Paint the report; returns the PDF's bytes and where its images went.

    Needs a :class:`QGuiApplication` (fonts). Raises :class:`viewer.report.ReportError`
    when Qt cannot paint.
    """
    if QGuiApplication.instance() is None:
        raise RuntimeError("painting a PDF report needs a QGuiApplication")
    for _attempt in range(3):
        now = dt.datetime.now().astimezone()
        if now.microsecond > 850_000:  # let the second tick before Qt reads the clock
            time.sleep((1_000_000 - now.microsecond) / 1e6 + 0.02)
            now = dt.datetime.now().astimezone()
        stamp = now.replace(microsecond=0)
        buffer = QBuffer()
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        writer = _writer(buffer, data, stamp)
        total = _Layout(writer, None, data, 1).run()
        painter = QPainter()
        if not painter.begin(writer):
            raise RuntimeError("Qt could not start the PDF writer")
        try:
            layout = _Layout(writer, painter, data, total)
            pages = layout.run()
        finally:
            painter.end()
        content = bytes(buffer.data())
        buffer.close()
        if pages != total:
            log.warning("report: %d pages painted, %d measured", pages, total)
        found = _INFO_DATE.search(content)
        if found is None or found.group(1).decode() == stamp.strftime("%Y%m%d%H%M%S"):
            return content, PdfResult(None, pages, len(content), layout.placed)
        log.info("report: the clock ticked while writing the metadata; painting again")
    return content, PdfResult(None, pages, len(content), layout.placed)


def write_pdf(data: ReportData, target: str | os.PathLike[str]) -> PdfResult:
    """Paint the report and write it to ``target`` atomically.

    The PDF goes to a hidden temporary file in the target's folder, is flushed to disk,
    and is renamed over ``target`` only when complete.

    Raises
    ------
    viewer.report.ReportError
        The folder does not exist or is not writable, the target is a folder, or writing
        failed; nothing is left behind and an existing ``target`` is untouched.
    """
    target = Path(target)
    folder = target.parent
    if not folder.is_dir():
        raise ReportError(target, "the folder does not exist" if not folder.exists()
                          else "the parent is not a folder")
    if target.is_dir():
        raise ReportError(target, "is a folder")
    if not os.access(folder, os.W_OK):
        raise ReportError(target, "the folder is not writable (permission denied)")
    try:
        content, result = render_pdf(data)
    except RuntimeError as exc:
        raise ReportError(target, f"the PDF could not be painted ({exc})") from exc
    _atomic_write(target, content)
    result.path = target
    return result


def _atomic_write(target: Path, content: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        _remove(tmp)
        raise ReportError(target, f"cannot be written ({exc.strerror or type(exc).__name__})"
                          ) from exc
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("report: temporary file not removed (%s)", exc.strerror)


# ------------------------------------------------------------------------------ the GUI


def window_snapshots(window) -> list[ViewSnapshot]:
    """One :class:`~viewer.report.ViewSnapshot` per view of the open study (never the
    prior's views that "Compare with prior" adds to the grid)."""
    views = getattr(window, "_views", None) or window.grid.views
    return [ViewSnapshot(v.ref, v.pipeline if v.has_image else None, v.state,
                         v.cam if v.has_image else None, None if v.has_image else v.message)
            for v in views]


def window_report_data(window, deidentify: bool = False) -> ReportData:
    """Gather the open study of a :class:`~viewer.qt.main_window.MainWindow`."""
    if window.study is None:
        raise ReportError("report.pdf", "no study is open")
    ai = window.ai
    reason = None
    if window.ai_result is None:
        if not ai.available:
            reason = f"AI off: {ai.off_reason}"
        elif window.session.ai.status == "running":
            reason = "the analysis was still running when the report was exported"
        else:
            reason = "the study was not analysed, or its analysis failed"
    bundle = ai.bundle.path if ai.bundle is not None else None
    note = None if bundle is not None else f"AI off: {ai.off_reason}"
    results = window.results
    data = gather(
        window.study, window.patient, window_snapshots(window), ai_result=window.ai_result,
        ai_reason=reason, bundle=bundle, bundle_note=note, impression=results.impression,
        agreement=results.agreement, deidentify=deidentify,
        cmap=results.cmap_combo.currentText(), opacity=results.opacity_slider.value() / 100,
        max_side=image_max_side())
    from viewer.qt.report_marks import add_reading

    add_reading(window, data, deidentify)  # key images, measurements (issue 16)
    return data


def export_window_report(window, path: str | os.PathLike[str],
                         deidentify: bool = False) -> Path:
    """Write the main window's report to ``path`` (see :func:`write_pdf`)."""
    data = window_report_data(window, deidentify)
    result = write_pdf(data, path)
    log.info("report written: %d pages, %d bytes", result.pages, result.size)
    return Path(path)


class ExportDialog(QDialog):
    """File → Export report…: target file, de-identification, then export."""

    def __init__(self, window, parent: QWidget | None = None) -> None:
        super().__init__(parent or window)
        self.window_ = window
        self.setWindowTitle("Export report")
        self.setMinimumWidth(560)
        lay = QVBoxLayout(self)
        study = window.study
        views = len(window.grid.views)
        if window.ai_result is None:
            ai = "no AI result"
        elif not window.ai_result.supported:
            ai = "AI: not supported"
        else:
            ai = f"AI: {window.ai_result.label} ({window.ai_result.score:.2f})"
        lay.addWidget(QLabel(f"A PDF with {views} view(s), {ai}, the reviewer's impression and "
                             "the input files' sha256."))
        row = QHBoxLayout()
        self.path_edit = QLineEdit()
        row.addWidget(self.path_edit, 1)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._on_browse)
        row.addWidget(browse)
        lay.addLayout(row)
        self.deidentify_box = QCheckBox("De-identify: leave out the patient's name, ID, birth "
                                        "date, accession, institution and file names")
        self.deidentify_box.toggled.connect(self._on_deidentify_toggled)
        lay.addWidget(self.deidentify_box)
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #e05a4a;")
        lay.addWidget(self.error_label)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.export)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        folder = self._last_folder()
        self.path_edit.setText(str(folder / default_filename(study, window.patient, False)))
        self.written: Path | None = None

    def _last_folder(self) -> Path:
        settings = self.window_.settings
        value = settings.value("report/folder", "") if settings is not None else ""
        folder = Path(str(value)) if value else Path.home()
        return folder if folder.is_dir() else Path.home()

    def _on_deidentify_toggled(self, on: bool) -> None:
        w = self.window_
        current = Path(self.path_edit.text())
        old = default_filename(w.study, w.patient, not on)
        if current.name == old or not current.name:
            self.path_edit.setText(str(current.with_name(default_filename(w.study, w.patient,
                                                                          on))))

    def _on_browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export report", self.path_edit.text(),
                                              "PDF (*.pdf)")
        if path:
            self.path_edit.setText(path if path.lower().endswith(".pdf") else path + ".pdf")

    def export(self) -> None:
        """Write the report; on failure say why here and in the status bar, stay open."""
        text = self.path_edit.text().strip()
        if not text:
            self.error_label.setText("Choose a file name.")
            return
        path = Path(text).expanduser()
        if path.exists() and not path.is_dir() and QMessageBox.question(
                self, "Export report", f"{path.name} exists. Replace it?"
        ) != QMessageBox.StandardButton.Yes:
            return
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            written = self.window_.export_report(path, self.deidentify_box.isChecked())
        except ReportError as exc:
            self.error_label.setText(f"The report was not written: {exc.reason}.")
            self.window_.show_error(f"Report not written: {exc.reason}")
            return
        finally:
            QApplication.restoreOverrideCursor()
        self.written = written
        settings = self.window_.settings
        if settings is not None:
            settings.setValue("report/folder", str(written.parent))
        self.window_.statusBar().showMessage(f"Report written: {written}", 15000)
        self.accept()
