"""The reader's marks as a DICOM Grayscale Softcopy Presentation State (Qt-free).

radview saves an image's measurements, annotations, window/level, inversion, rotation
and flip as a GSPS (PS3.3 A.33.1), built with highdicom
(:class:`highdicom.pr.GrayscaleSoftcopyPresentationState`), written atomically beside
the image (:func:`save_gsps`), and applies it again when the study is opened
(:func:`read_gsps`, :func:`latest_states`). Presentation states written by other systems
are applied the same way: their graphic and text annotations are shown (not measured),
their VOI and spatial transformation set the view.

Encoding
--------
Graphic Data is in PIXEL units (PS3.3 C.10.5.1.2): the top left corner of the top left
pixel is 0\\0, so a radview image point ``(x, y)`` (pixel centres at integers) is
``(x + 0.5, y + 0.5)``. Each radview measurement becomes the graphic objects any GSPS
viewer draws (a POLYLINE per line, an ELLIPSE by its axes, a closed POLYLINE for a
rectangle) plus a text object with the value as radview displayed it, in the graphic
layer ``RADVIEW``. Tracking ID (0062,0020) ``radview:<kind>:<id>`` (and, for a
calibration line, ``:<mm>``) lets radview read its own measurements back as editable
tools; the value labels (``radview:label:<id>``) are recomputed instead of read.

Spatial transformation (C.10.6): Image Rotation (0070,0042) and Image Horizontal Flip
(0070,0041), applied flip first, like :class:`viewer.viewstate.ViewState`. A vertical
flip is written as a horizontal flip plus 180°.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import generate_uid

from viewer import __version__
from viewer.atomicio import write_bytes_atomic
from viewer.logs import file_ref
from viewer.measure import (
    ANGLE,
    ARROW,
    CALIBRATION,
    COBB,
    ELLIPSE,
    GRAPHIC,
    LENGTH,
    POINTS,
    RECTANGLE,
    TEXT,
    Annotation,
    Calibration,
    measure,
    new_id,
)
from viewer.model import ImageRef, LoadResult, Window

log = logging.getLogger(__name__)

GSPS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
LAYER = "RADVIEW"
PREFIX = "radview:"
#: File name of radview's presentation state for an image (beside the image).
FILE_PATTERN = "radview-pr-{uid}.dcm"


@dataclass
class PresentationState:
    """What a GSPS says about the images it references.

    Attributes
    ----------
    annotations
        SOP Instance UID → annotations on that image (image coordinates).
    windows
        SOP Instance UID → window; ``""`` keys one that applies to every image.
    """

    path: Path
    sop_instance_uid: str = ""
    created: str = ""  # PresentationCreationDate + Time, for choosing the latest
    label: str = ""
    images: set[str] = field(default_factory=set)
    annotations: dict[str, list[Annotation]] = field(default_factory=dict)
    windows: dict[str, Window] = field(default_factory=dict)
    rotation: int = 0
    flip_h: bool = False
    presentation_lut_shape: str = ""
    radview: bool = False  # written by radview
    notes: list[str] = field(default_factory=list)

    def window_for(self, sop_uid: str) -> Window | None:
        return self.windows.get(sop_uid, self.windows.get(""))

    def invert_for(self, photometric: str) -> bool | None:
        """The view's inversion (relative to the image's own display), or None."""
        if self.presentation_lut_shape not in ("IDENTITY", "INVERSE"):
            return None
        return (self.presentation_lut_shape == "INVERSE") != (photometric == "MONOCHROME1")


# ============================================================================= writing


def _dicom_points(points: Iterable[tuple[float, float]]) -> np.ndarray:
    return np.array([[x + 0.5, y + 0.5] for x, y in points], dtype=np.float64)


def _objects(ann: Annotation, label: str, size: tuple[int, int]):
    """highdicom graphic and text objects for one annotation."""
    import highdicom as hd

    pts = ann.points
    tid = f"{PREFIX}{ann.kind}:{ann.id}"
    if ann.kind == CALIBRATION and ann.length_mm is not None:
        tid += f":{ann.length_mm:.6g}"

    def graphic(kind: str, data: Sequence[tuple[float, float]], tracking: str = tid):
        return hd.pr.GraphicObject(
            graphic_type=kind, graphic_data=_dicom_points(data),
            units=hd.pr.AnnotationUnitsValues.PIXEL, tracking_id=tracking,
            tracking_uid=generate_uid())

    graphics = []
    if ann.kind in (LENGTH, CALIBRATION, ARROW):
        graphics.append(graphic("POLYLINE", pts[:2]))
    elif ann.kind == ANGLE:
        graphics.append(graphic("POLYLINE", pts[:3]))
    elif ann.kind == COBB:
        graphics += [graphic("POLYLINE", pts[:2]), graphic("POLYLINE", pts[2:4])]
    elif ann.kind == RECTANGLE:
        (x0, y0), (x1, y1) = pts[:2]
        graphics.append(graphic("POLYLINE", [(x0, y0), (x1, y0), (x1, y1), (x0, y1),
                                             (x0, y0)]))
    elif ann.kind == ELLIPSE:
        (x0, y0), (x1, y1) = pts[:2]
        cx, cy, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
        horizontal = [(cx - rx, cy), (cx + rx, cy)]
        vertical = [(cx, cy - ry), (cx, cy + ry)]
        axes = horizontal + vertical if rx >= ry else vertical + horizontal
        graphics.append(graphic("ELLIPSE", axes))
    texts = []
    text = ann.text if ann.kind == ARROW else label.replace("\n", "  ")
    if text:
        anchor = pts[1] if ann.kind in (ARROW, ELLIPSE, RECTANGLE) else pts[-1]
        w, h = size
        ax = min(max(anchor[0] + 0.5, 0.0), float(w))
        ay = min(max(anchor[1] + 0.5, 0.0), float(h))
        texts.append(hd.pr.TextObject(
            text_value=text[:1024], units=hd.pr.AnnotationUnitsValues.PIXEL,
            anchor_point=(ax, ay), anchor_point_visible=ann.kind == ARROW,
            tracking_id=f"{PREFIX}label:{ann.id}", tracking_uid=generate_uid()))
    return graphics, texts


def build_gsps(source: Dataset, annotations: Sequence[Annotation], *,
               calibration: Calibration, window: Window | None = None, invert: bool = False,
               rotation: int = 0, flip_h: bool = False, flip_v: bool = False,
               stored: np.ndarray | None = None,
               modality: Callable[[float], float] | None = None, modality_unit: str = "",
               series_uid: str | None = None, instance_number: int = 1) -> Dataset:
    """A GSPS for one image (``source``: its header, pixels not needed).

    Parameters
    ----------
    annotations
        radview's annotations (foreign :data:`~viewer.measure.GRAPHIC` and
        :data:`~viewer.measure.TEXT` ones are written back as they were read).
    calibration, stored, modality, modality_unit
        Used for the value labels (:func:`viewer.measure.measure`).
    window, invert, rotation, flip_h, flip_v
        The view's state (:class:`viewer.viewstate.ViewState`); ``invert`` is relative
        to the image's own display (MONOCHROME1 is already shown inverted).
    """
    import highdicom as hd

    rows, cols = int(source.Rows), int(source.Columns)
    graphic_objects, text_objects = [], []
    for ann in annotations:
        if ann.kind in POINTS:
            label = measure(ann, calibration, stored, modality, modality_unit).label
            if ann.kind == CALIBRATION:
                label = f"calibration {ann.length_mm:g} mm" if ann.length_mm else ""
            g, t = _objects(ann, label, (cols, rows))
        elif ann.kind == GRAPHIC:
            g = [hd.pr.GraphicObject(graphic_type=ann.graphic_type or "POLYLINE",
                                     graphic_data=_dicom_points(ann.points),
                                     units=hd.pr.AnnotationUnitsValues.PIXEL,
                                     is_filled=ann.filled)]
            t = []
        elif ann.kind == TEXT and ann.points:
            x, y = ann.points[0]
            g, t = [], [hd.pr.TextObject(
                text_value=ann.text[:1024] or " ", units=hd.pr.AnnotationUnitsValues.PIXEL,
                anchor_point=(min(max(x + 0.5, 0.0), cols), min(max(y + 0.5, 0.0), rows)),
                anchor_point_visible=False)]
        else:
            continue
        graphic_objects += g
        text_objects += t

    layer = hd.pr.GraphicLayer(layer_name=LAYER, order=1,
                               description="radview measurements and annotations")
    graphic_annotations = []
    if graphic_objects or text_objects:
        graphic_annotations.append(hd.pr.GraphicAnnotation(
            referenced_images=[source], graphic_layer=layer,
            graphic_objects=graphic_objects or None, text_objects=text_objects or None))
    voi = None
    if window is not None and math.isfinite(window.center) and window.width >= 1:
        # Lists: highdicom 0.28 splits a plain explanation string into characters.
        voi = [hd.pr.SoftcopyVOILUTTransformation(
            window_center=[float(window.center)], window_width=[float(window.width)],
            window_explanation=[(window.explanation or "radview")[:64]],
            voi_lut_function=window.function if window.function in (
                "LINEAR", "LINEAR_EXACT", "SIGMOID") else None)]
    mono1 = str(source.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
    shape = "INVERSE" if invert != mono1 else "IDENTITY"
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[source],
        series_instance_uid=series_uid or generate_uid(),
        series_number=9901,
        sop_instance_uid=generate_uid(),
        instance_number=instance_number,
        manufacturer="radview",
        manufacturer_model_name="radview",
        software_versions=__version__,
        device_serial_number="0",
        content_label="RADVIEW",
        content_description="radview reading: measurements, annotations, window/level",
        graphic_annotations=graphic_annotations or None,
        graphic_layers=[layer] if graphic_annotations else None,
        voi_lut_transformations=voi,
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            presentation_lut_shape=shape),
    )
    rotation = rotation % 360
    if flip_v:  # F_v = R180 · F_h(opposite)
        rotation, flip_h = (rotation + 180) % 360, not flip_h
    gsps.ImageRotation = rotation
    gsps.ImageHorizontalFlip = "Y" if flip_h else "N"
    return gsps


def gsps_path(ref: ImageRef, folder: str | os.PathLike[str] | None = None) -> Path:
    """Where radview keeps an image's presentation state: beside the image."""
    uid = ref.sop_instance_uid or ref.path.stem
    safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in uid)[:120]
    return Path(folder if folder is not None else ref.path.parent) / FILE_PATTERN.format(
        uid=safe)


def fallback_folder(study_uid: str) -> Path:
    """Where a presentation state goes when the image's folder is not writable: the DICOM
    inbox's folder of the study when the inbox exists (``<user data>/inbox/<study UID>``),
    else ``<user data>/presentation_states/<study UID>``."""
    from viewer import paths

    safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in study_uid)[:120] or "_"
    inbox = paths.user_data_dir() / "inbox"
    if inbox.is_dir():
        return inbox / safe
    return paths.user_data_dir() / "presentation_states" / safe


def known_paths(ref: ImageRef, study_uid: str) -> list[Path]:
    """radview's presentation-state files for an image that exist (beside it, fallback)."""
    out = []
    for folder in (None, fallback_folder(study_uid)):
        path = gsps_path(ref, folder)
        if path.is_file():
            out.append(path)
    return out


def save_gsps(ref: ImageRef, annotations: Sequence[Annotation], *,
              folder: str | os.PathLike[str] | None = None, **kwargs) -> Path:
    """Build (:func:`build_gsps`) and write an image's presentation state atomically.

    The file is ``radview-pr-<SOP Instance UID>.dcm`` beside the image (or in
    ``folder``); an earlier one is replaced whole (a reader never sees a partial
    file). Raises OSError when the folder is not writable, ValueError for an image that
    is not DICOM.
    """
    if ref.kind != "dicom":
        raise ValueError(f"{ref.name} is not a DICOM image: no presentation state")
    source = dcmread(ref.path, stop_before_pixels=True)
    ds = build_gsps(source, annotations, **kwargs)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    try:
        path = write_bytes_atomic(gsps_path(ref, folder), buf.getvalue())
    except OSError:
        if folder is not None:
            raise
        fallback = fallback_folder(str(source.get("StudyInstanceUID", "")))
        path = write_bytes_atomic(gsps_path(ref, fallback), buf.getvalue())
    log.info("presentation state written: %s", file_ref(path))
    return path


# ============================================================================= reading


def _image_uids(item: Dataset) -> list[str]:
    return [str(r.get("ReferencedSOPInstanceUID", "")) for r in
            item.get("ReferencedImageSequence", []) or []]


def _tracking(obj: Dataset) -> tuple[str, str, str] | None:
    tid = str(obj.get("TrackingID", "") or "")
    if not tid.startswith(PREFIX):
        return None
    parts = tid[len(PREFIX):].split(":")
    if len(parts) < 2:
        return None
    return parts[0], parts[1], parts[2] if len(parts) > 2 else ""


class _Area:
    """Maps DISPLAY units (fractions of the displayed area) to image coordinates."""

    def __init__(self, ds: Dataset, rows: int, cols: int) -> None:
        self.tl, self.br = (1.0, 1.0), (float(cols), float(rows))
        for item in ds.get("DisplayedAreaSelectionSequence", []) or []:
            tl = item.get("DisplayedAreaTopLeftHandCorner")
            br = item.get("DisplayedAreaBottomRightHandCorner")
            if tl is not None and br is not None and len(tl) == 2 and len(br) == 2:
                self.tl, self.br = (float(tl[0]), float(tl[1])), (float(br[0]), float(br[1]))
                break

    def point(self, u: float, v: float, units: str) -> tuple[float, float]:
        if units == "DISPLAY":
            x = self.tl[0] - 1 + u * (self.br[0] - self.tl[0] + 1)
            y = self.tl[1] - 1 + v * (self.br[1] - self.tl[1] + 1)
            return x - 0.5, y - 0.5
        return float(u) - 0.5, float(v) - 0.5


def _pairs(values: Sequence[float]) -> list[tuple[float, float]]:
    vals = [float(v) for v in values]
    return [(vals[i], vals[i + 1]) for i in range(0, len(vals) - 1, 2)]


def read_gsps(path: str | os.PathLike[str], image_sizes: dict[str, tuple[int, int]] | None
              = None) -> PresentationState:
    """Read a Grayscale Softcopy Presentation State.

    Parameters
    ----------
    image_sizes
        SOP Instance UID → (rows, columns) of the referenced images, for DISPLAY-unit
        annotations (without it the displayed area must be in the file).

    Raises
    ------
    ValueError
        Not a GSPS.
    """
    path = Path(path)
    ds = dcmread(path)
    if str(ds.get("SOPClassUID", "")) != GSPS_SOP_CLASS:
        raise ValueError(f"{path.name} is not a grayscale softcopy presentation state")
    state = PresentationState(
        path=path, sop_instance_uid=str(ds.get("SOPInstanceUID", "")),
        created=f"{ds.get('PresentationCreationDate', '')}{ds.get('PresentationCreationTime', '')}",
        label=str(ds.get("ContentLabel", "")),
        radview=str(ds.get("Manufacturer", "")) == "radview")
    for series in ds.get("ReferencedSeriesSequence", []) or []:
        state.images.update(_image_uids(series))
    image_sizes = image_sizes or {}

    for item in ds.get("GraphicAnnotationSequence", []) or []:
        targets = _image_uids(item) or sorted(state.images)
        found: list[Annotation] = []
        grouped: dict[str, list[tuple[str, str, list[tuple[float, float]]]]] = {}
        rows, cols = image_sizes.get(targets[0], (int(ds.get("Rows", 0) or 0),
                                                  int(ds.get("Columns", 0) or 0))) if (
            targets) else (0, 0)
        area = _Area(ds, rows, cols)
        for obj in item.get("GraphicObjectSequence", []) or []:
            units = str(obj.get("GraphicAnnotationUnits", "PIXEL")).upper()
            pts = [area.point(u, v, units) for u, v in _pairs(obj.get("GraphicData", []))]
            gtype = str(obj.get("GraphicType", "POLYLINE")).upper()
            tag = _tracking(obj)
            if tag is not None and tag[0] in POINTS:
                grouped.setdefault(tag[1], []).append((tag[0], tag[2], pts))
                continue
            if pts:
                found.append(Annotation(GRAPHIC, tuple(pts), graphic_type=gtype,
                                        filled=str(obj.get("GraphicFilled", "N")) == "Y"))
        for ann_id, parts in grouped.items():
            ann = _radview_annotation(ann_id, parts)
            if ann is not None:
                found.append(ann)
        for obj in item.get("TextObjectSequence", []) or []:
            tag = _tracking(obj)
            text = str(obj.get("UnformattedTextValue", ""))
            if tag is not None and tag[0] == "label":
                continue  # radview's own value label: recomputed
            if tag is not None and tag[0] == ARROW:
                continue
            anchor = obj.get("AnchorPoint")
            if anchor is not None and len(anchor) == 2:
                units = str(obj.get("AnchorPointAnnotationUnits", "PIXEL")).upper()
                pos = area.point(anchor[0], anchor[1], units)
            else:
                tl = obj.get("BoundingBoxTopLeftHandCorner")
                if tl is None or len(tl) != 2:
                    continue
                units = str(obj.get("BoundingBoxAnnotationUnits", "PIXEL")).upper()
                pos = area.point(tl[0], tl[1], units)
            found.append(Annotation(TEXT, (pos,), text=text))
        # The arrow's text is a label object of its own id: attach it back.
        labels = {}
        for obj in item.get("TextObjectSequence", []) or []:
            tag = _tracking(obj)
            if tag is not None and tag[0] == "label":
                labels[tag[1]] = str(obj.get("UnformattedTextValue", ""))
        found = [Annotation(a.kind, a.points, text=labels.get(a.id, ""), id=a.id)
                 if a.kind == ARROW else a for a in found]
        for uid in targets:
            state.annotations.setdefault(uid, []).extend(found)

    for item in ds.get("SoftcopyVOILUTSequence", []) or []:
        center, width = item.get("WindowCenter"), item.get("WindowWidth")
        if center is None or width is None:
            if item.get("VOILUTSequence") is not None:
                state.notes.append("a VOI LUT in the presentation state is not applied")
            continue
        try:
            c = float(center[0] if isinstance(center, Sequence | np.ndarray) and not
                      isinstance(center, str) else center)
            w = float(width[0] if isinstance(width, Sequence | np.ndarray) and not
                      isinstance(width, str) else width)
        except (TypeError, ValueError, IndexError):
            continue
        expl = item.get("WindowCenterWidthExplanation", "") or "Presentation state"
        if isinstance(expl, list | tuple | MultiValue):
            expl = str(expl[0]) if len(expl) else "Presentation state"
        expl = str(expl)
        fn = str(item.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
        window = Window(c, w, expl, fn)
        for uid in _image_uids(item) or [""]:
            state.windows[uid] = window

    try:
        state.rotation = int(ds.get("ImageRotation", 0) or 0) % 360
    except (TypeError, ValueError):
        state.rotation = 0
    if state.rotation % 90:
        state.notes.append(f"rotation {state.rotation}° is not a multiple of 90: ignored")
        state.rotation = 0
    state.flip_h = str(ds.get("ImageHorizontalFlip", "N")).upper() == "Y"
    state.presentation_lut_shape = str(ds.get("PresentationLUTShape", "") or "").upper()
    return state


def _radview_annotation(ann_id: str, parts: list[tuple[str, str, list]]) -> Annotation | None:
    kind, extra, _ = parts[0]
    pts = [p for _k, _e, ps in parts for p in ps]
    if kind in (LENGTH, ARROW, CALIBRATION) and len(pts) >= 2:
        length_mm = None
        if kind == CALIBRATION:
            try:
                length_mm = float(extra)
            except ValueError:
                return None
        return Annotation(kind, tuple(pts[:2]), id=ann_id, length_mm=length_mm)
    if kind == ANGLE and len(pts) >= 3:
        return Annotation(kind, tuple(pts[:3]), id=ann_id)
    if kind == COBB and len(pts) >= 4:
        return Annotation(kind, tuple(pts[:4]), id=ann_id)
    if kind == RECTANGLE and len(pts) >= 3:
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        return Annotation(kind, ((min(xs), min(ys)), (max(xs), max(ys))), id=ann_id)
    if kind == ELLIPSE and len(pts) >= 4:
        xs, ys = [p[0] for p in pts[:4]], [p[1] for p in pts[:4]]
        return Annotation(kind, ((min(xs), min(ys)), (max(xs), max(ys))), id=ann_id)
    return None


def latest_states(result: LoadResult, refs: Iterable[ImageRef] | None = None,
                  extra: Iterable[Path] = ()) -> dict[str, PresentationState]:
    """SOP Instance UID → the newest presentation state that references that image.

    Unreadable files are logged and skipped. ``refs`` limits the images considered (and
    gives their sizes for DISPLAY-unit annotations); default: every image of ``result``.
    ``extra``: more files to consider (radview's own in the fallback folder,
    :func:`known_paths`).
    """
    refs = list(result.images if refs is None else refs)
    sizes = {r.sop_instance_uid: (r.spec.rows, r.spec.columns) for r in refs
             if r.sop_instance_uid and r.spec is not None}
    wanted = set(sizes) | {r.sop_instance_uid for r in refs if r.sop_instance_uid}
    best: dict[str, PresentationState] = {}
    candidates = list(dict.fromkeys([*result.presentation_states, *extra]))
    for path in candidates:
        try:
            state = read_gsps(path, sizes)
        except Exception as exc:  # a broken file from elsewhere must not stop the study
            log.warning("%s: presentation state not applied (%s)", file_ref(path),
                        type(exc).__name__)
            continue
        for uid in state.images & wanted:
            old = best.get(uid)
            if old is None or state.created >= old.created:
                best[uid] = state
    return best


__all__ = ["PresentationState", "build_gsps", "gsps_path", "latest_states", "new_id",
           "read_gsps", "save_gsps"]
