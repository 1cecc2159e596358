"""Measurements and annotations on one image, Qt-free: calibration, maths, undo.

Calibration (what one pixel measures) follows DICOM PS3.3: the Basic Pixel Spacing
Calibration macro (10.7.1.3: Pixel Spacing (0028,0030), Pixel Spacing Calibration Type
(0028,0A02) and Description (0028,0A04)) and the projection radiography attributes
Imager Pixel Spacing (0018,1164, at the detector's front plane) and Estimated
Radiographic Magnification Factor (0018,1114, C.8.11.4). Every value radview shows
carries its basis (:attr:`Calibration.basis`):

================================  ====================================================
basis                             when
================================  ====================================================
``"mm, calibrated by user"``      the reader drew a line over an object of known length
``"mm"``                          Pixel Spacing with a calibration type (GEOMETRY or
                                  FIDUCIAL), or Pixel Spacing that differs from Imager
                                  Pixel Spacing (the modality corrected it), or Pixel
                                  Spacing alone (the header says it is in the patient)
``"mm, corrected by ERMF x.xx"``  Imager Pixel Spacing (or an equal Pixel Spacing)
                                  divided by the magnification factor
``"mm at detector"``              Imager Pixel Spacing (or an equal Pixel Spacing), no
                                  magnification factor: objects measure larger than they
                                  are (typically 5–20 % on a radiograph)
``"px"``                          no spacing at all
================================  ====================================================

Image coordinates are those of :mod:`viewer.viewstate`: ``(x, y)`` with pixel centres at
integers, ``x`` along columns. Lengths scale ``x`` by the column spacing (second value of
Pixel Spacing) and ``y`` by the row spacing (first value); angles are measured in that
physical plane, so anisotropic pixels do not distort them.

Annotations are immutable :class:`Annotation` values in an :class:`AnnotationList`
that records every change for undo/redo; :class:`ReadingStore` keeps one list per image
(the reader's input, kept while other studies are looked at) and the key-image marks.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from viewer.model import ImageRef, SpacingInfo

Point = tuple[float, float]

# Annotation kinds.
LENGTH, ANGLE, COBB, ELLIPSE, RECTANGLE, ARROW, CALIBRATION = (
    "length", "angle", "cobb", "ellipse", "rectangle", "arrow", "calibration")
#: Graphics and text from another system's presentation state (shown, not measured).
GRAPHIC, TEXT = "graphic", "text"
#: Points each kind of radview's tools takes.
POINTS = {LENGTH: 2, ANGLE: 3, COBB: 4, ELLIPSE: 2, RECTANGLE: 2, ARROW: 2, CALIBRATION: 2}
#: What the tools are called in menus and the report.
TOOL_NAMES = {LENGTH: "Length", ANGLE: "Angle", COBB: "Cobb angle", ELLIPSE: "Ellipse ROI",
              RECTANGLE: "Rectangle ROI", ARROW: "Text arrow", CALIBRATION: "Calibration",
              GRAPHIC: "Graphic", TEXT: "Text"}

#: Relative tolerance under which Pixel Spacing counts as equal to Imager Pixel Spacing.
SAME_SPACING = 1e-4


# ======================================================================== calibration


@dataclass(frozen=True)
class UserCalibration:
    """The reader's calibration: the segment ``p0``–``p1`` measures ``length_mm``."""

    p0: Point
    p1: Point
    length_mm: float


@dataclass(frozen=True)
class Calibration:
    """What one pixel measures, and how radview knows it.

    Attributes
    ----------
    spacing
        mm per pixel, (row, column) like Pixel Spacing; None when unknown (pixels).
    basis
        The unit text shown after each length (see the module docstring).
    detail
        Where the numbers come from, for tooltips and the report.
    """

    spacing: tuple[float, float] | None
    basis: str
    detail: str = ""

    @property
    def unit(self) -> str:
        """``"mm"`` or ``"px"``."""
        return "px" if self.spacing is None else "mm"

    @property
    def area_unit(self) -> str:
        return "px²" if self.spacing is None else "mm²"

    @property
    def scale(self) -> tuple[float, float]:
        """(x, y) multipliers from pixels to the unit (1 for pixels)."""
        if self.spacing is None:
            return 1.0, 1.0
        return self.spacing[1], self.spacing[0]


PIXELS = Calibration(None, "px", "no pixel spacing in the header: lengths in pixels")


def _pair(value: Any) -> tuple[float, float] | None:
    try:
        values = [float(v) for v in value][:2]
    except (TypeError, ValueError):
        return None
    if len(values) == 2 and all(math.isfinite(v) and v > 0 for v in values):
        return values[0], values[1]
    return None


def _same(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return all(abs(x - y) <= SAME_SPACING * max(abs(x), abs(y)) for x, y in zip(a, b,
                                                                               strict=True))


def spacing_from_dataset(ds: Any) -> SpacingInfo | None:
    """Read the calibration attributes from a pydicom data set (headers only).

    Pixel Spacing is taken from the top level, else the Shared, else the first Per-Frame
    Functional Groups item's Pixel Measures (PS3.3 C.7.6.16.2.1). Unusable values (not two
    positive numbers) count as absent. Returns None when the data set has none of them.
    """
    def get(source: Any, keyword: str) -> Any:
        try:
            return source.get(keyword) if source is not None else None
        except Exception:  # a malformed value pydicom cannot convert
            return None

    def first(source: Any, keyword: str) -> Any:
        seq = get(source, keyword)
        try:
            return seq[0] if seq else None
        except (TypeError, IndexError):
            return None

    ps = _pair(get(ds, "PixelSpacing") or ())
    if ps is None:
        for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
            measures = first(first(ds, groups), "PixelMeasuresSequence")
            ps = _pair(get(measures, "PixelSpacing") or ())
            if ps is not None:
                break
    ips = _pair(get(ds, "ImagerPixelSpacing") or ())
    try:
        ermf = float(get(ds, "EstimatedRadiographicMagnificationFactor"))
    except (TypeError, ValueError):
        ermf = None
    if ermf is not None and not (math.isfinite(ermf) and ermf > 0):
        ermf = None
    cal_type = str(get(ds, "PixelSpacingCalibrationType") or "").strip().upper()
    cal_desc = str(get(ds, "PixelSpacingCalibrationDescription") or "").strip()
    if ps is None and ips is None:
        return None
    return SpacingInfo(ps, ips, ermf, cal_type, cal_desc)


def _fmt_spacing(s: tuple[float, float]) -> str:
    return f"{s[0]:g}\\{s[1]:g} mm"


def calibration_for(info: SpacingInfo | None, user: UserCalibration | None = None
                    ) -> Calibration:
    """The calibration of an image (see the module docstring for the rules).

    Parameters
    ----------
    info
        The image's header values (:attr:`viewer.model.ImageRef.spacing`), or None.
    user
        The reader's calibration, which wins over the header.
    """
    base = _header_calibration(info)
    if user is None:
        return base
    dx, dy = user.p1[0] - user.p0[0], user.p1[1] - user.p0[1]
    # Keep the header's pixel aspect ratio (square pixels without one).
    sy, sx = base.spacing if base.spacing is not None else (1.0, 1.0)
    reference = math.hypot(dx * sx, dy * sy)
    if reference <= 0 or not (math.isfinite(user.length_mm) and user.length_mm > 0):
        return base
    k = user.length_mm / reference
    spacing = (sy * k, sx * k)
    return Calibration(spacing, "mm, calibrated by user",
                       f"calibrated by the reader: a line of {math.hypot(dx, dy):.1f} px "
                       f"measures {user.length_mm:g} mm ({spacing[0]:.4g} mm per pixel)")


def _header_calibration(info: SpacingInfo | None) -> Calibration:
    if info is None:
        return PIXELS
    ps, ips, ermf = info.pixel_spacing, info.imager_pixel_spacing, info.magnification
    if ps is not None and info.calibration_type:
        desc = f": {info.calibration_description}" if info.calibration_description else ""
        return Calibration(ps, "mm", f"Pixel Spacing {_fmt_spacing(ps)}, calibrated "
                                     f"({info.calibration_type}{desc})")
    at_detector = ps is None or (ips is not None and _same(ps, ips))
    if not at_detector:
        if ips is None:
            return Calibration(ps, "mm", f"Pixel Spacing {_fmt_spacing(ps)} (in the patient)")
        if ermf is not None and _same(ps, (ips[0] / ermf, ips[1] / ermf)):
            return Calibration(ps, f"mm, corrected by ERMF {ermf:.2f}",
                               f"Pixel Spacing {_fmt_spacing(ps)} = Imager Pixel Spacing "
                               f"{_fmt_spacing(ips)} / magnification {ermf:g}")
        return Calibration(ps, "mm", f"Pixel Spacing {_fmt_spacing(ps)}, corrected by the "
                                     f"modality from Imager Pixel Spacing {_fmt_spacing(ips)}")
    detector = ips if ips is not None else ps
    if ermf is not None:
        spacing = (detector[0] / ermf, detector[1] / ermf)
        return Calibration(spacing, f"mm, corrected by ERMF {ermf:.2f}",
                           f"Imager Pixel Spacing {_fmt_spacing(detector)} / Estimated "
                           f"Radiographic Magnification Factor {ermf:g}")
    return Calibration(detector, "mm at detector",
                       f"Imager Pixel Spacing {_fmt_spacing(detector)}: at the detector, "
                       "not corrected for magnification")


# ============================================================================== maths


def length(p0: Point, p1: Point, cal: Calibration = PIXELS) -> float:
    """Distance between two image points in the calibration's unit."""
    sx, sy = cal.scale
    return math.hypot((p1[0] - p0[0]) * sx, (p1[1] - p0[1]) * sy)


def _vector(a: Point, b: Point, cal: Calibration) -> tuple[float, float]:
    sx, sy = cal.scale
    return (b[0] - a[0]) * sx, (b[1] - a[1]) * sy


def angle(a: Point, vertex: Point, b: Point, cal: Calibration = PIXELS) -> float:
    """Angle at ``vertex`` between the arms to ``a`` and ``b``, degrees in [0, 180]."""
    u, v = _vector(vertex, a, cal), _vector(vertex, b, cal)
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return float("nan")
    c = max(-1.0, min(1.0, (u[0] * v[0] + u[1] * v[1]) / (nu * nv)))
    return math.degrees(math.acos(c))


def line_angle(l1: tuple[Point, Point], l2: tuple[Point, Point],
               cal: Calibration = PIXELS) -> float:
    """Angle between two lines drawn independently (Cobb), degrees in [0, 90].

    Lines have no direction, so the angle is the acute one between them, however each
    was drawn (left to right or right to left).
    """
    u, v = _vector(*l1, cal), _vector(*l2, cal)
    nu, nv = math.hypot(*u), math.hypot(*v)
    if nu == 0 or nv == 0:
        return float("nan")
    c = min(1.0, abs(u[0] * v[0] + u[1] * v[1]) / (nu * nv))
    return math.degrees(math.acos(c))


@dataclass(frozen=True)
class RoiStats:
    """Statistics of the pixels whose centres lie inside a region, in modality units."""

    count: int
    mean: float
    sd: float
    minimum: float
    maximum: float
    area: float  # of the shape, in the calibration's area unit


def roi_mask(kind: str, p0: Point, p1: Point, shape: tuple[int, int]
             ) -> tuple[np.ndarray, tuple[int, int]]:
    """Boolean mask of the pixels (centres) inside an ellipse or rectangle.

    The shape is the one inscribed in (or equal to) the axis-aligned box with corners
    ``p0`` and ``p1`` (image coordinates). Returns the mask over the box's pixel bounds
    and the (row, column) offset of its first element.
    """
    x0, x1 = sorted((p0[0], p1[0]))
    y0, y1 = sorted((p0[1], p1[1]))
    h, w = shape
    c0, c1 = max(0, math.ceil(x0)), min(w - 1, math.floor(x1))
    r0, r1 = max(0, math.ceil(y0)), min(h - 1, math.floor(y1))
    if c1 < c0 or r1 < r0:
        return np.zeros((0, 0), bool), (0, 0)
    ys, xs = np.mgrid[r0:r1 + 1, c0:c1 + 1]
    if kind == ELLIPSE:
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        ax, ay = (x1 - x0) / 2, (y1 - y0) / 2
        if ax <= 0 or ay <= 0:
            return np.zeros((0, 0), bool), (0, 0)
        mask = ((xs - cx) / ax) ** 2 + ((ys - cy) / ay) ** 2 <= 1.0 + 1e-12
    else:
        mask = np.ones(xs.shape, bool)
    return mask, (r0, c0)


def roi_stats(kind: str, p0: Point, p1: Point, stored: np.ndarray,
              modality: Callable[[float], float], cal: Calibration = PIXELS) -> RoiStats:
    """Mean, SD (population), min and max of the modality values inside a region.

    Parameters
    ----------
    kind
        :data:`ELLIPSE` or :data:`RECTANGLE`.
    stored
        The stored values (rows, columns).
    modality
        Stored value → modality value, e.g.
        :meth:`viewer.display.DisplayPipeline.modality_value` (rescale or Modality LUT,
        PS3.3 C.11.1); applied once per distinct value.
    """
    mask, (r0, c0) = roi_mask(kind, p0, p1, stored.shape[:2])
    sx, sy = cal.scale
    wx, wy = abs(p1[0] - p0[0]) * sx, abs(p1[1] - p0[1]) * sy
    area = math.pi * wx * wy / 4 if kind == ELLIPSE else wx * wy
    if not mask.any():
        nan = float("nan")
        return RoiStats(0, nan, nan, nan, nan, area)
    block = stored[r0:r0 + mask.shape[0], c0:c0 + mask.shape[1]][mask]
    values, inverse = np.unique(block, return_inverse=True)
    mapped = np.array([modality(float(v)) for v in values], dtype=np.float64)[inverse]
    return RoiStats(int(mapped.size), float(mapped.mean()), float(mapped.std()),
                    float(mapped.min()), float(mapped.max()), area)


# ======================================================================== annotations


def new_id() -> str:
    return uuid.uuid4().hex[:12]


@dataclass(frozen=True)
class Annotation:
    """One measurement or annotation on one image, in image coordinates.

    Attributes
    ----------
    kind
        :data:`LENGTH`, :data:`ANGLE` (points a, vertex, b), :data:`COBB` (two lines:
        points 0–1 and 2–3), :data:`ELLIPSE` / :data:`RECTANGLE` (opposite corners of
        the bounding box), :data:`ARROW` (tip, then where the text sits),
        :data:`CALIBRATION` (a line of ``length_mm``), or, from another system's
        presentation state, :data:`GRAPHIC` / :data:`TEXT`.
    text
        The arrow's text, or a foreign text object's.
    graphic_type
        For :data:`GRAPHIC`: POLYLINE, INTERPOLATED, CIRCLE, ELLIPSE or POINT (PS3.3
        C.10.5.1.2).
    """

    kind: str
    points: tuple[Point, ...]
    text: str = ""
    id: str = field(default_factory=new_id)
    length_mm: float | None = None
    graphic_type: str = ""
    filled: bool = False

    @property
    def editable(self) -> bool:
        return self.kind in POINTS

    def moved(self, index: int, point: Point) -> Annotation:
        pts = list(self.points)
        pts[index] = (float(point[0]), float(point[1]))
        return replace(self, points=tuple(pts))

    def translated(self, dx: float, dy: float) -> Annotation:
        return replace(self, points=tuple((x + dx, y + dy) for x, y in self.points))


@dataclass(frozen=True)
class Measurement:
    """What an annotation measures: ``value`` in ``unit`` (None for text), and its label."""

    value: float | None
    unit: str
    label: str
    stats: RoiStats | None = None


def measure(ann: Annotation, cal: Calibration = PIXELS, stored: np.ndarray | None = None,
            modality: Callable[[float], float] | None = None, modality_unit: str = ""
            ) -> Measurement:
    """The value of one annotation and the text drawn beside it.

    Lengths carry the calibration's basis (``"42.3 mm at detector"``); ROI statistics
    need ``stored`` and ``modality`` (else only the area is given).
    """
    pts = ann.points
    mu = f" {modality_unit}" if modality_unit else ""
    if ann.kind in (LENGTH, CALIBRATION) and len(pts) >= 2:
        value = length(pts[0], pts[1], cal)
        digits = 0 if cal.spacing is None else 1
        label = f"{value:.{digits}f} {cal.basis}"
        if ann.kind == CALIBRATION and ann.length_mm is not None:
            label = f"calibration: {ann.length_mm:g} mm"
        return Measurement(value, cal.unit, label)
    if ann.kind == ANGLE and len(pts) >= 3:
        value = angle(pts[0], pts[1], pts[2], cal)
        return Measurement(value, "°", f"{value:.1f}°")
    if ann.kind == COBB and len(pts) >= 4:
        value = line_angle((pts[0], pts[1]), (pts[2], pts[3]), cal)
        return Measurement(value, "°", f"Cobb {value:.1f}°")
    if ann.kind in (ELLIPSE, RECTANGLE) and len(pts) >= 2:
        if stored is not None and modality is not None:
            st = roi_stats(ann.kind, pts[0], pts[1], stored, modality, cal)
        else:
            sx, sy = cal.scale
            wx, wy = abs(pts[1][0] - pts[0][0]) * sx, abs(pts[1][1] - pts[0][1]) * sy
            area = math.pi * wx * wy / 4 if ann.kind == ELLIPSE else wx * wy
            st = RoiStats(0, math.nan, math.nan, math.nan, math.nan, area)
        digits = 0 if cal.spacing is None else 1
        area_text = f"area {st.area:.{digits}f} {cal.area_unit}"
        if cal.spacing is not None and cal.basis != "mm":
            area_text += f" ({cal.basis.removeprefix('mm').strip(', ')})"
        if st.count:
            label = (f"mean {st.mean:.1f}{mu}  SD {st.sd:.1f}\n"
                     f"min {st.minimum:g}  max {st.maximum:g}{mu}\n{area_text}")
        else:
            label = area_text
        return Measurement(st.mean if st.count else None, modality_unit, label, st)
    return Measurement(None, "", ann.text)


class AnnotationList:
    """The annotations of one image, with undo/redo and a user calibration.

    Every change goes through :meth:`add`, :meth:`update`, :meth:`remove`,
    :meth:`set_calibration` or :meth:`clear`, which records the previous state; listeners
    registered with :meth:`subscribe` are called with no argument after each change.
    """

    def __init__(self) -> None:
        self.items: tuple[Annotation, ...] = ()
        self._undo: list[tuple[Annotation, ...]] = []
        self._redo: list[tuple[Annotation, ...]] = []
        self._listeners: list[Callable[[], None]] = []
        #: Changed since the last :meth:`mark_saved` (or since loading).
        self.dirty = False

    # -- events ---------------------------------------------------------------------
    def subscribe(self, callback: Callable[[], None]) -> None:
        self._listeners.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _emit(self) -> None:
        for cb in list(self._listeners):
            cb()

    def _commit(self, items: Sequence[Annotation]) -> None:
        self._undo.append(self.items)
        self._redo.clear()
        self.items = tuple(items)
        self.dirty = True
        self._emit()

    # -- queries --------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def get(self, ann_id: str) -> Annotation | None:
        return next((a for a in self.items if a.id == ann_id), None)

    @property
    def user_calibration(self) -> UserCalibration | None:
        """From the last :data:`CALIBRATION` annotation, if any."""
        cal = next((a for a in reversed(self.items) if a.kind == CALIBRATION
                    and a.length_mm is not None and len(a.points) >= 2), None)
        if cal is None:
            return None
        return UserCalibration(cal.points[0], cal.points[1], float(cal.length_mm))

    def calibration(self, info: SpacingInfo | None) -> Calibration:
        return calibration_for(info, self.user_calibration)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    # -- changes --------------------------------------------------------------------
    def add(self, ann: Annotation) -> Annotation:
        items = list(self.items)
        if ann.kind == CALIBRATION:  # one calibration per image: the new one replaces it
            items = [a for a in items if a.kind != CALIBRATION]
        self._commit([*items, ann])
        return ann

    def update(self, ann: Annotation) -> None:
        """Replace the annotation with the same id."""
        if self.get(ann.id) is None:
            raise KeyError(ann.id)
        self._commit([ann if a.id == ann.id else a for a in self.items])

    def remove(self, ann_id: str) -> None:
        if self.get(ann_id) is not None:
            self._commit([a for a in self.items if a.id != ann_id])

    def clear(self) -> None:
        if self.items:
            self._commit([])

    def replace_all(self, items: Sequence[Annotation]) -> None:
        """Load annotations (from a presentation state): no undo step, not dirty."""
        self.items = tuple(items)
        self._undo.clear()
        self._redo.clear()
        self.dirty = False
        self._emit()

    def undo(self) -> bool:
        if not self._undo:
            return False
        self._redo.append(self.items)
        self.items = self._undo.pop()
        self.dirty = True
        self._emit()
        return True

    def redo(self) -> bool:
        if not self._redo:
            return False
        self._undo.append(self.items)
        self.items = self._redo.pop()
        self.dirty = True
        self._emit()
        return True

    def mark_saved(self) -> None:
        self.dirty = False


def image_key(ref: ImageRef) -> str:
    """The key of an image in a :class:`ReadingStore`: its SOP Instance UID, else path."""
    return ref.sop_instance_uid or str(ref.path)


class ReadingStore:
    """The reader's marks on images, kept for the whole session (Qt-free).

    One :class:`AnnotationList` per image (:func:`image_key`), and the set of key images.
    """

    def __init__(self) -> None:
        self._lists: dict[str, AnnotationList] = {}
        self.key_images: set[str] = set()
        self.key_listeners: list[Callable[[str, bool], None]] = []

    def annotations(self, ref: ImageRef) -> AnnotationList:
        return self._lists.setdefault(image_key(ref), AnnotationList())

    def has(self, ref: ImageRef) -> bool:
        lst = self._lists.get(image_key(ref))
        return lst is not None and len(lst) > 0

    def is_key(self, ref: ImageRef) -> bool:
        return image_key(ref) in self.key_images

    def set_key(self, ref: ImageRef, key: bool) -> None:
        k = image_key(ref)
        if key == (k in self.key_images):
            return
        if key:
            self.key_images.add(k)
        else:
            self.key_images.discard(k)
        for cb in list(self.key_listeners):
            cb(k, key)


def measurement_rows(ref: ImageRef, annotations: AnnotationList, stored: np.ndarray | None
                     = None, modality: Callable[[float], float] | None = None,
                     modality_unit: str = "") -> list[tuple[str, str, str]]:
    """Rows ``(image, tool, value)`` for the report's measurement table."""
    cal = annotations.calibration(ref.spacing)
    rows = []
    for ann in annotations:
        if ann.kind in (GRAPHIC,):
            continue
        m = measure(ann, cal, stored, modality, modality_unit)
        text = m.label.replace("\n", "; ") if ann.kind != TEXT else ann.text
        if ann.kind == ARROW:
            text = ann.text or "(arrow)"
        rows.append((ref.name, TOOL_NAMES.get(ann.kind, ann.kind), text))
    return rows
