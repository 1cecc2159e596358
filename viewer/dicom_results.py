"""AI results as DICOM (Qt-free): a TID 1500 Measurement Report and secondary captures.

::

    outcome = outcome_from(study, inputs, result, bundle)   # what to export, per view
    paths = write_results(outcome, out_dir)                 # SR + one SC per view, atomic
    finding = read_sr(path)                                 # back: per-view findings

What is written (PS3.3 A.35.13 Comprehensive 3D SR, PS3.16 TID 1500; PS3.3 A.8 SC), all
with highdicom, never hand-assembled:

* **Structured report** (Comprehensive 3D SR Storage), same patient and study as the
  source, a new series (:data:`SR_SERIES_DESCRIPTION`, Series Number
  :data:`SR_SERIES_NUMBER`). Observation context: a device observer named ``radview``,
  model name = the bundle's name, serial number = bundle version. Imaging Measurements:

  - one measurement group per view (TID 1501) with the view as source image: the
    probability of the positive label (NUM, unit ``1``), the operating point (the model's
    threshold, NUM) and the label (CODE); Algorithm Identification = bundle name, version
    and parameters ``weights sha256 …``, ``research use only …``;
  - one planar ROI group (TID 1410) per box, when the model gives boxes: a closed
    POLYLINE SCOORD referencing the source SOP Instance;
  - one study group (no source image) with the study score, threshold and label (the
    study finding).

  Codes with no standard equivalent use the private scheme :data:`SCHEME` (declared in
  the Coding Scheme Identification Sequence).
* **Secondary capture** per view (SC Image Storage, RGB): the view as displayed in its
  default window with the heat map blended (:func:`viewer.overlay.blend`), boxes drawn,
  and a "RESEARCH USE ONLY" banner burned in; new series (:data:`SC_SERIES_NUMBER`),
  Image Type ``DERIVED\\SECONDARY``, Burned In Annotation ``YES``, Source Image Sequence
  and Derivation Description pointing at the source instance.

Recognising radview's own objects (:func:`is_radview_sr`, :func:`is_radview_capture`):
Manufacturer ``radview`` and a Series Description starting with ``radview AI``. The loader
never gives an SC to the model (``ImageRef.ai_capture``) and lists the SRs in
``LoadResult.ai_reports``; :func:`findings_for` maps them onto the source images.

**Research use only — not for diagnosis.**
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from viewer import __version__
from viewer.atomicio import write_atomic
from viewer.overlay import blend

if TYPE_CHECKING:  # pragma: no cover - typing only; these import torch
    from inference.bundle import Bundle
    from inference.engine import ImageInput, StudyResult
    from viewer.model import LoadResult, Study

log = logging.getLogger(__name__)

MANUFACTURER = "radview"
SR_SERIES_DESCRIPTION = "radview AI result (SR) - research use only"
SC_SERIES_DESCRIPTION = "radview AI result (capture) - research use only"
SR_SERIES_NUMBER = 9901
SC_SERIES_NUMBER = 9902
RESEARCH_USE = "Research use only - not for diagnosis."
BANNER = "RESEARCH USE ONLY - NOT FOR DIAGNOSIS"
DERIVATION = "radview AI overlay: default window, heat map and boxes burned in"

SCHEME = "99RADVIEW"
_UNITLESS = Code("1", "UCUM", "no units")
_PROCEDURE = Code("363680008", "SCT", "Radiographic imaging procedure")
CODE_PROBABILITY = "RV-PROB"
CODE_THRESHOLD = "RV-THRESH"
CODE_LABEL = "RV-LABEL"
CODE_POSITIVE = "RV-POS"
CODE_NEGATIVE = "RV-NEG"
CODE_FINDING = "RV-FINDING"
STUDY_TRACKING = "study finding"

SR_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
})
SC_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
})


class ExportError(ValueError):
    """An analysis that cannot be exported as DICOM (the message says why)."""


@dataclass
class ViewOutcome:
    """One analysed view.

    Attributes
    ----------
    source
        The source image's header (pixels not needed), read from ``path``.
    display
        ``uint8`` (rows, columns): the view in its default display window (the model
        input, :func:`viewer.analysis.model_input`).
    probability
        Probability of the positive label, 0–1, or None (not scored).
    cam
        float (rows, columns) in [0, 1] or None.
    boxes
        ``(x0, y0, x1, y1)`` in image pixel coordinates (column, row; PS3.3 C.18.6.1.1
        2D coordinates), when the model gives boxes.
    """

    path: Path
    source: Dataset
    display: np.ndarray
    probability: float | None
    cam: np.ndarray | None = None
    boxes: list[tuple[float, float, float, float]] = field(default_factory=list)


@dataclass
class AIOutcome:
    """What is exported for one analysed study."""

    study_uid: str
    bundle_name: str
    bundle_version: str
    model: str
    weights_sha256: str
    positive_label: str
    negative_label: str
    threshold: float
    score: float
    label: str
    body_part: str | None
    flags: list[str]
    views: list[ViewOutcome]

    def view_label(self, view: ViewOutcome) -> str | None:
        if view.probability is None:
            return None
        return self.positive_label if view.probability >= self.threshold else self.negative_label


def outcome_from(study: Study, inputs: Sequence[ImageInput], result: StudyResult,
                 bundle: Bundle, *, boxes: dict[str, list] | None = None) -> AIOutcome:
    """Gather what :func:`write_results` needs from a scored study.

    Parameters
    ----------
    study
        The study as scanned; only its DICOM images are exported.
    inputs, result
        What :func:`viewer.analysis.build_inputs` gave the engine and what it returned
        (matched by image key; radview captures are never exported as views).
    bundle
        The bundle that scored it (name, version, weights sha256).
    boxes
        Image key → list of ``(x0, y0, x1, y1)``; default: the boxes the engine gave
        (``ImageResult.boxes`` from a bundle with a box head), else none.

    Raises
    ------
    ExportError
        Not supported / not scored, or no DICOM source image (plain image files have no
        patient and study to attach a DICOM object to).
    """
    if not result.supported or result.score is None or result.model is None:
        raise ExportError(f"study {study.uid} was not scored ({result.reason or 'no score'}); "
                          f"nothing to export")
    spec = bundle.manifest.abnormality_models[result.model]
    refs = {str(ref.path): ref for ref in study.images}
    scores = {r.key: r for r in result.images}
    views: list[ViewOutcome] = []
    for im in inputs:
        ref, res = refs.get(im.key), scores.get(im.key)
        if ref is None or res is None or ref.kind != "dicom" or ref.ai_capture:
            continue
        try:
            header = dcmread(ref.path, stop_before_pixels=True)
        except Exception as exc:
            raise ExportError(f"{ref.path}: cannot be read again for export ({exc})") from exc
        if boxes is not None:
            view_boxes = list(boxes.get(im.key, []))
        else:  # the model's box head, when it has one: {x0, y0, x1, y1, score, level}
            view_boxes = [(float(b["x0"]), float(b["y0"]), float(b["x1"]), float(b["y1"]))
                          for b in (getattr(res, "boxes", None) or [])]
        views.append(ViewOutcome(path=ref.path, source=header, display=im.pixels,
                                 probability=res.probability, cam=res.cam, boxes=view_boxes))
    if not views:
        raise ExportError("only DICOM images can carry a DICOM result: this study has "
                          "none (plain image files have no patient or study)")
    return AIOutcome(
        study_uid=study.uid, bundle_name=bundle.manifest.name,
        bundle_version=bundle.manifest.version, model=result.model,
        weights_sha256=spec.sha256, positive_label=spec.positive_label,
        negative_label=spec.negative_label, threshold=float(result.threshold or 0.5),
        score=float(result.score), label=str(result.label), body_part=result.body_part,
        flags=list(result.flags), views=views)


def export_study_result(study: Study, result: StudyResult, bundle: Bundle,
                        out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write a scored study's SR and SCs (the GUI's File ▸ Export AI result as DICOM…).

    The views are decoded again in their default window (what the model saw); call it
    from a worker thread. Raises :class:`ExportError` or OSError.
    """
    from viewer.analysis import build_inputs

    inputs, _errors = build_inputs(study)
    return write_results(outcome_from(study, inputs, result, bundle), out_dir)


# ------------------------------------------------------------------------ recognising


def _text(ds: Dataset, keyword: str) -> str:
    return str(ds.get(keyword, "") or "").strip()


def is_radview_object(ds: Dataset) -> bool:
    """True for an object radview wrote (Manufacturer and Series Description)."""
    return (_text(ds, "Manufacturer") == MANUFACTURER
            and _text(ds, "SeriesDescription").startswith("radview AI"))


def is_radview_sr(ds: Dataset) -> bool:
    """True for a radview AI structured report."""
    return _text(ds, "SOPClassUID") in SR_CLASSES and is_radview_object(ds)


def is_radview_capture(ds: Dataset) -> bool:
    """True for a radview AI secondary capture (never to be scored as a view)."""
    return _text(ds, "SOPClassUID") in SC_CLASSES and is_radview_object(ds)


# --------------------------------------------------------------------------- building


def _local(value: str, meaning: str) -> Code:
    return Code(value, SCHEME, meaning[:64])


def _algorithm(outcome: AIOutcome):
    import highdicom as hd

    return hd.sr.AlgorithmIdentification(
        name=outcome.bundle_name[:64], version=outcome.bundle_version[:64],
        parameters=[f"model {outcome.model}", f"weights sha256 {outcome.weights_sha256}",
                    RESEARCH_USE])


def _label_code(outcome: AIOutcome, label: str) -> Code:
    value = CODE_POSITIVE if label == outcome.positive_label else CODE_NEGATIVE
    return _local(value, label)


def _scores(outcome: AIOutcome, probability: float, label: str):
    import highdicom as hd

    measurements = [
        hd.sr.Measurement(name=_local(CODE_PROBABILITY, f"Probability of {outcome.positive_label}"),
                          value=round(float(probability), 6), unit=_UNITLESS),
        hd.sr.Measurement(name=_local(CODE_THRESHOLD, "Operating point (decision threshold)"),
                          value=round(float(outcome.threshold), 6), unit=_UNITLESS),
    ]
    evaluations = [hd.sr.QualitativeEvaluation(name=_local(CODE_LABEL, "AI label"),
                                               value=_label_code(outcome, label))]
    return measurements, evaluations


def build_sr(outcome: AIOutcome, *, series_uid: str | None = None,
             sop_uid: str | None = None):
    """The TID 1500 Measurement Report (``highdicom.sr.Comprehensive3DSR``)."""
    import highdicom as hd

    finding = _local(CODE_FINDING, outcome.positive_label)
    algorithm = _algorithm(outcome)
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="radview", manufacturer_name=MANUFACTURER,
            model_name=outcome.bundle_name[:64], serial_number=outcome.bundle_version[:64]))
    context = hd.sr.ObservationContext(observer_device_context=observer)
    groups: list[Any] = []
    for number, view in enumerate(outcome.views, start=1):
        label = outcome.view_label(view)
        if label is None or view.probability is None:
            continue
        ds = view.source
        source = hd.sr.SourceImageForMeasurementGroup(
            referenced_sop_class_uid=ds.SOPClassUID,
            referenced_sop_instance_uid=ds.SOPInstanceUID)
        measurements, evaluations = _scores(outcome, view.probability, label)
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(
                uid=generate_uid(), identifier=f"view {number}"),
            finding_type=finding, algorithm_id=algorithm, source_images=[source],
            measurements=measurements, qualitative_evaluations=evaluations))
        for box_no, (x0, y0, x1, y1) in enumerate(view.boxes, start=1):
            polyline = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]],
                                dtype=float)
            region = hd.sr.ImageRegion(
                graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=polyline,
                source_image=hd.sr.SourceImageForRegion(
                    referenced_sop_class_uid=ds.SOPClassUID,
                    referenced_sop_instance_uid=ds.SOPInstanceUID))
            groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"view {number} box {box_no}"),
                referenced_region=region, finding_type=finding, algorithm_id=algorithm))
    measurements, evaluations = _scores(outcome, outcome.score, outcome.label)
    groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(),
                                                     identifier=STUDY_TRACKING),
        finding_type=finding, algorithm_id=algorithm, measurements=measurements,
        qualitative_evaluations=evaluations))
    try:  # the Image Library needs descriptors (e.g. Patient Orientation for DX)
        report = hd.sr.MeasurementReport(
            observation_context=context, procedure_reported=_PROCEDURE,
            imaging_measurements=groups, referenced_images=[v.source for v in outcome.views])
    except (AttributeError, ValueError, TypeError) as exc:
        log.info("SR without an Image Library: %s", exc)
        report = hd.sr.MeasurementReport(
            observation_context=context, procedure_reported=_PROCEDURE,
            imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[v.source for v in outcome.views], content=report,
        series_instance_uid=series_uid or generate_uid(), series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_uid or generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description=SR_SERIES_DESCRIPTION,
        coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
            designator=SCHEME, name="radview local codes",
            responsible_organization="radview")])
    _copy_study_text(outcome.views[0].source, sr)
    sr.ManufacturerModelName = outcome.bundle_name[:64]
    sr.SoftwareVersions = [f"radview {__version__}", f"bundle {outcome.bundle_version}"[:64]]
    return sr


def _copy_study_text(source: Dataset, target: Dataset) -> None:
    """Study-level text highdicom does not copy (same study, so the same values)."""
    for keyword in ("StudyDescription", "InstitutionName"):
        if _text(source, keyword) and not _text(target, keyword):
            setattr(target, keyword, source.get(keyword))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow without FreeType
        return ImageFont.load_default()


def burn_in(display: np.ndarray, cam: np.ndarray | None,
            boxes: Sequence[tuple[float, float, float, float]] = (),
            lines: Sequence[str] = (), *, opacity: float = 0.4) -> np.ndarray:
    """The view as displayed: default window, heat map, boxes and a banner burned in.

    Returns (rows, columns, 3) ``uint8`` RGB, same size as ``display``. The banner (a dark
    band across the top) always says :data:`BANNER`, then ``lines``.
    """
    gray = np.asarray(display, dtype=np.uint8)
    rgb = (blend(gray, cam, "jet", opacity) if cam is not None
           else np.repeat(gray[..., None], 3, axis=2))
    image = Image.fromarray(np.ascontiguousarray(rgb), "RGB")
    draw = ImageDraw.Draw(image)
    rows, cols = gray.shape
    width = max(1, round(min(rows, cols) / 250))
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([x0, y0, x1, y1], outline=(255, 255, 0), width=width)
    size = max(8, round(cols / 45))
    font = _font(size)
    texts = [BANNER, *lines]
    band = min(rows, (size + size // 3) * len(texts) + size // 2)
    band_rgb = np.asarray(image)[:band].astype(np.float32) * 0.25
    image.paste(Image.fromarray(band_rgb.astype(np.uint8), "RGB"), (0, 0))
    draw = ImageDraw.Draw(image)
    y = size // 4
    for i, line in enumerate(texts):
        draw.text((size // 2, y), line, fill=(255, 80, 80) if i == 0 else (255, 255, 255),
                  font=font)
        y += size + size // 3
    return np.asarray(image)


def _view_lines(outcome: AIOutcome, view: ViewOutcome, number: int) -> list[str]:
    label = outcome.view_label(view)
    prob = "not scored" if view.probability is None else f"{view.probability:.2f}"
    return [f"radview {outcome.bundle_name} {outcome.bundle_version} - view {number}: "
            f"{outcome.positive_label} probability {prob}, {label or '-'} "
            f"(operating point {outcome.threshold:.2f})",
            f"study: {outcome.label} (score {outcome.score:.2f})"]


def build_captures(outcome: AIOutcome, *, series_uid: str | None = None) -> list[Any]:
    """One ``highdicom.sc.SCImage`` per view (see the module notes)."""
    import highdicom as hd

    series_uid = series_uid or generate_uid()
    out = []
    for number, view in enumerate(outcome.views, start=1):
        ds = view.source
        rgb = burn_in(view.display, view.cam, view.boxes, _view_lines(outcome, view, number))
        orientation = ds.get("PatientOrientation")
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=ds, pixel_array=rgb, photometric_interpretation="RGB",
            bits_allocated=8, coordinate_system="PATIENT", patient_orientation=("L", "F"),
            series_instance_uid=series_uid, series_number=SC_SERIES_NUMBER,
            sop_instance_uid=generate_uid(), instance_number=number,
            manufacturer=MANUFACTURER, series_description=SC_SERIES_DESCRIPTION,
            transfer_syntax_uid="1.2.840.10008.1.2.1")
        # Orientation is the source's, copied verbatim (the capture is not rotated);
        # empty (type 2) when the source has none - never invented.
        sc.PatientOrientation = list(orientation) if orientation else ""
        sc.ImageType = ["DERIVED", "SECONDARY"]
        sc.BurnedInAnnotation = "YES"
        sc.DerivationDescription = DERIVATION
        # General Series Laterality is type 2C: the source's (series or image) or empty.
        sc.Laterality = _text(ds, "Laterality") or _text(ds, "ImageLaterality") or ""
        if _text(ds, "BodyPartExamined"):
            sc.BodyPartExamined = _text(ds, "BodyPartExamined")
        src = Dataset()
        src.ReferencedSOPClassUID = ds.SOPClassUID
        src.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        sc.SourceImageSequence = [src]
        _copy_study_text(ds, sc)
        sc.ManufacturerModelName = outcome.bundle_name[:64]
        sc.SoftwareVersions = [f"radview {__version__}"]
        sc.ImageComments = RESEARCH_USE
        out.append(sc)
    return out


def _safe(uid: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in uid)[:64] or "study"


def write_results(outcome: AIOutcome, out_dir: str | os.PathLike[str], *,
                  captures: bool = True) -> list[Path]:
    """Write the SR and (``captures``) one SC per view under ``out_dir/<study UID>/``,
    each atomically; returns the paths, SR first."""
    folder = Path(out_dir) / _safe(outcome.study_uid)
    sr = build_sr(outcome)
    objects = [("SR", sr)] + ([("SC", sc) for sc in build_captures(outcome)]
                              if captures else [])
    paths = []
    for kind, ds in objects:
        path = folder / f"{kind}_{ds.SOPInstanceUID}.dcm"
        write_atomic(path, lambda f, ds=ds: ds.save_as(f, enforce_file_format=True))
        paths.append(path)
    log.info("wrote %d DICOM result objects for study %s", len(paths), outcome.study_uid)
    return paths


# ---------------------------------------------------------------------------- reading


@dataclass
class ViewFinding:
    """What a radview SR says about one source image."""

    sop_instance_uid: str
    probability: float | None = None
    threshold: float | None = None
    label: str | None = None
    boxes: list[list[tuple[float, float]]] = field(default_factory=list)


@dataclass
class StudyFinding:
    """What a radview SR says about its study (:func:`read_sr`)."""

    path: Path
    study_uid: str
    content_datetime: str
    bundle: str
    version: str
    score: float | None = None
    threshold: float | None = None
    label: str | None = None
    views: dict[str, ViewFinding] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for the study browser / status bar."""
        score = "-" if self.score is None else f"{self.score:.2f}"
        return (f"AI (SR, {self.bundle} {self.version}): {self.label or '-'} "
                f"(score {score}) - research use only")


def _concept(item: Dataset) -> tuple[str, str]:
    seq = item.get("ConceptNameCodeSequence")
    if not seq:
        return "", ""
    return str(seq[0].CodeValue), str(seq[0].CodingSchemeDesignator)


def _walk(items: Sequence[Dataset]):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def _group_values(group: Dataset, finding: ViewFinding | None) -> dict[str, Any]:
    values: dict[str, Any] = {"sop": None, "prob": None, "thr": None, "label": None,
                              "poly": None}
    for item in _walk(group.get("ContentSequence", [])):
        kind = str(item.get("ValueType", ""))
        code = _concept(item)
        if kind == "IMAGE" and item.get("ReferencedSOPSequence"):
            values["sop"] = values["sop"] or str(
                item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        elif kind == "NUM" and code[1] == SCHEME and item.get("MeasuredValueSequence"):
            value = float(item.MeasuredValueSequence[0].NumericValue)
            if code[0] == CODE_PROBABILITY:
                values["prob"] = value
            elif code[0] == CODE_THRESHOLD:
                values["thr"] = value
        elif kind == "CODE" and code == (CODE_LABEL, SCHEME):
            values["label"] = str(item.ConceptCodeSequence[0].CodeMeaning)
        elif kind == "SCOORD" and str(item.get("GraphicType", "")) == "POLYLINE":
            data = [float(v) for v in item.GraphicData]
            values["poly"] = list(zip(data[0::2], data[1::2], strict=True))
            ref = item.get("ContentSequence", [])
            if ref and ref[0].get("ReferencedSOPSequence"):
                values["sop"] = str(ref[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
    return values


def read_sr(path: str | os.PathLike[str]) -> StudyFinding:
    """Read a radview SR back (see :func:`build_sr`); raises ValueError if it is not one."""
    ds = dcmread(path)
    if not is_radview_sr(ds):
        raise ValueError(f"{path}: not a radview AI structured report")
    bundle = _text(ds, "ManufacturerModelName")
    versions = [str(v) for v in (ds.get("SoftwareVersions") or [])]
    if isinstance(ds.get("SoftwareVersions"), str):
        versions = [str(ds.SoftwareVersions)]
    version = next((v.split(" ", 1)[1] for v in versions if v.startswith("bundle ")), "")
    out = StudyFinding(path=Path(path), study_uid=_text(ds, "StudyInstanceUID"),
                       content_datetime=_text(ds, "ContentDate") + _text(ds, "ContentTime"),
                       bundle=bundle, version=version)
    for item in _walk(ds.get("ContentSequence", [])):
        if _concept(item) != ("125007", "DCM"):  # Measurement Group
            continue
        values = _group_values(item, None)
        if values["sop"] is None:
            out.score, out.threshold, out.label = values["prob"], values["thr"], values["label"]
            continue
        view = out.views.setdefault(values["sop"], ViewFinding(values["sop"]))
        if values["poly"] is not None:
            view.boxes.append(values["poly"])
        else:
            view.probability, view.threshold = values["prob"], values["thr"]
            view.label = values["label"]
    return out


def findings_for(result: LoadResult) -> dict[str, StudyFinding]:
    """Study Instance UID → the newest radview SR finding among ``result.ai_reports``.

    The viewer shows ``finding.views[image.sop_instance_uid]`` on each source image and
    ``finding.summary()`` for the study; an unreadable SR is logged and skipped.
    """
    out: dict[str, StudyFinding] = {}
    for path in getattr(result, "ai_reports", []):
        try:
            finding = read_sr(path)
        except Exception as exc:  # a broken file must not stop the others
            log.warning("%s: radview SR cannot be read (%s)", Path(path).name, exc)
            continue
        kept = out.get(finding.study_uid)
        if kept is None or finding.content_datetime > kept.content_datetime:
            out[finding.study_uid] = finding
    return out

