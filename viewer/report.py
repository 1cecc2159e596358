"""What a PDF report shows, gathered without Qt: :func:`gather` → :class:`ReportData`.

The report is the reviewer's deliverable: the study's identity, the AI result, every view
as it was displayed (window/level, inversion, rotation and flip as the reviewer set them;
zoom and pan are a matter of the screen and are not applied) beside the same view with its
Grad-CAM heat map, the reviewer's impression and agreement with the AI, the model bundle
and the sha256 of every input file. :mod:`viewer.qt.report_pdf` paints it; this module
decides *what* is shown, so that de-identification and the image geometry are tested
without Qt.

De-identification
-----------------
With ``deidentify=True`` the patient's name, ID, birth date, the accession number and the
institution are left out, file names and folders are replaced by "image 1", "image 2",
…, and every free text that is shown (study description, impression, flags, warnings) is
scrubbed of those identifiers (case-insensitive; :func:`identifiers` lists them). Study
date, sex and body part are kept. Pixel data cannot be cleaned: when a DICOM file's
Burned In Annotation (0028,0301) is not ``NO`` (or the file is not DICOM), a caveat says
the pixels may contain burned-in identifiers.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from viewer import __version__
from viewer.display import DisplayPipeline
from viewer.model import MURA_PARTS, ImageRef, Patient, Study
from viewer.overlay import COLORMAPS, blend
from viewer.viewstate import ViewState

if TYPE_CHECKING:  # inference.bundle imports torch: only where a bundle is read
    from inference.bundle import Manifest

log = logging.getLogger(__name__)

#: The reviewer's agreement with the AI result.
AGREE, DISAGREE, NOT_REVIEWED = "agree", "disagree", "not reviewed"
AGREEMENTS = (AGREE, DISAGREE, NOT_REVIEWED)
AGREEMENT_TEXT = {
    AGREE: "Agree with the AI result",
    DISAGREE: "Disagree with the AI result",
    NOT_REVIEWED: "Not reviewed",
}

#: Where the study's body part came from, in words.
SOURCE_TEXT = {
    "tag": "DICOM tag (Body Part Examined)",
    "path": "folder name",
    "router": "router model",
    "override": "reviewer override",
}

#: Default longest side (pixels) of the images handed to the painter; the painter asks
#: for what its layout needs at ~200 dpi (:func:`viewer.qt.report_pdf.image_max_side`).
MAX_SIDE = 1000

#: Shown instead of an identifier found inside a free text when de-identifying.
REMOVED = "[removed]"

#: Words that are never treated as a name component when scrubbing free text (a patient
#: called "Demo^Hand" must not erase the body part HAND from the report).
_VOCABULARY = frozenset({*MURA_PARTS, "OTHER", "CHEST", "KNEE", "FOOT", "ANKLE", "HIP",
                         "SPINE", "PELVIS", "SKULL", "LEFT", "RIGHT"})


# ----------------------------------------------------------------------------- errors


class ReportError(Exception):
    """The report could not be written.

    Attributes
    ----------
    path
        The target file.
    reason
        What went wrong, in words (no identifiers: safe for the log and the status bar).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# ----------------------------------------------------------------------------- inputs


@dataclass
class ViewSnapshot:
    """One view as the reviewer left it (what the report needs from a view).

    Attributes
    ----------
    ref
        The image.
    pipeline
        Its display pipeline, or None when it could not be decoded.
    state
        Window/level, inversion, rotation and flip (zoom and pan are ignored); None
        means the default display (what ``radview report`` uses).
    cam
        Grad-CAM map, float (rows, columns) in [0, 1] on the image's pixel grid, or None.
    message
        Why the view shows no image (decoding error), when ``pipeline`` is None.
    """

    ref: ImageRef
    pipeline: DisplayPipeline | None
    state: ViewState | None = None
    cam: np.ndarray | None = None
    message: str | None = None


# ---------------------------------------------------------------------------- outputs


@dataclass
class ReportImage:
    """One view of the report.

    Attributes
    ----------
    number
        1-based position in the study.
    label
        The file name, or ``"Image N"`` when de-identified.
    description
        Body part, view position and laterality (e.g. ``"HAND PA L"``).
    displayed
        uint8 (rows, columns): the view as displayed (window/level, inversion,
        orientation), downscaled so that its longest side is at most ``max_side``;
        None when the image could not be decoded.
    overlay
        uint8 (rows, columns, 3): ``displayed`` with the Grad-CAM heat map blended over
        it, same geometry; None without a CAM.
    source_size
        (width, height) of the original image, pixels.
    window_text, orientation_text
        How it was displayed, in words.
    probability
        The model's probability for this view (0–1), or None.
    body_part, body_part_source
        What this view says about its part (from the AI result, else the loader).
    error
        Why there is no image.
    notes
        Loader notes about what is shown (e.g. "multi-frame: frame 1 of 12 shown").
    """

    number: int
    label: str
    description: str
    displayed: np.ndarray | None
    overlay: np.ndarray | None
    source_size: tuple[int, int]
    window_text: str = ""
    orientation_text: str = ""
    probability: float | None = None
    body_part: str | None = None
    body_part_source: str | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    #: Marked as a key image by the reader (issue 16).
    key: bool = False
    #: uint8 (rows, columns, 3): ``displayed`` with the reader's measurements and
    #: annotations drawn as in the view (:mod:`viewer.qt.report_marks`); None without.
    marked: np.ndarray | None = None


@dataclass
class AiSummary:
    """The AI section. ``scored`` is False when there is no score; ``reason`` says why."""

    scored: bool
    reason: str | None = None
    body_part: str | None = None
    body_part_source: str | None = None
    score: float | None = None
    threshold: float | None = None
    label: str | None = None
    positive: bool | None = None
    model: str | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def source_text(self) -> str:
        src = self.body_part_source or ""
        return SOURCE_TEXT.get(src, src)

    @property
    def rule_text(self) -> str:
        """How this study's label follows from its score, in the direction that applies
        (``""`` when not scored): a score at or above the threshold gives the positive
        label, a score below it the negative one (:mod:`inference.engine`)."""
        if not self.scored or self.score is None or self.threshold is None:
            return ""
        where = "at or above" if self.positive else "below"
        return (f"The study score is the mean of the views' probabilities; it is {where} "
                f"the threshold ({self.score:.2f} vs {self.threshold:.2f}), so the study "
                f"is labelled {self.label}.")


@dataclass
class BundleSummary:
    """The model bundle section (from the bundle's manifest)."""

    name: str
    version: str
    folder: str
    license: str
    intended_use: str
    training_data: str
    citation: str = ""
    description: str = ""
    metrics: list[tuple[str, str]] = field(default_factory=list)
    models: list[tuple[str, str]] = field(default_factory=list)
    weights: list[tuple[str, str]] = field(default_factory=list)  # (file, sha256)


@dataclass
class ReportData:
    """Everything the PDF shows, ready to paint (see the module notes).

    Attributes
    ----------
    title, subject
        Document title and subject (PDF metadata); no identifiers when de-identified.
    running_header
        One line repeated on every page (patient and study, or "De-identified …").
    generated
        When the report was made (local time, with its UTC offset).
    app_version
        ``viewer.__version__``.
    deidentified
        Whether identifiers were left out (see the module notes).
    patient_rows, study_rows
        ``(label, value)`` lines of the identity block.
    ai
        The AI section.
    bundle
        The bundle section, or None with ``bundle_note`` saying why.
    images
        One per view, in the study's order.
    threshold
        The model's threshold, or None (for marking view probabilities).
    impression, agreement
        The reviewer's text and one of :data:`AGREEMENTS`.
    cmap, opacity
        Colormap (one of :data:`viewer.overlay.COLORMAPS`) and opacity (0–1) of the
        heat maps, for the legend.
    files
        ``(label, sha256 or reason)`` of every input file; ``files_folder`` is their
        common folder (empty when de-identified).
    caveats
        Notes printed at the end (de-identification, burned-in annotations).
    default_filename
        The file name the GUI proposes (``radview_<patient id>_<date>.pdf``, or
        ``radview_report_<date>.pdf`` when de-identified or without an ID).
    """

    title: str
    subject: str
    running_header: str
    generated: dt.datetime
    app_version: str
    deidentified: bool
    patient_rows: list[tuple[str, str]]
    study_rows: list[tuple[str, str]]
    ai: AiSummary
    bundle: BundleSummary | None
    bundle_note: str | None
    images: list[ReportImage]
    threshold: float | None
    impression: str
    agreement: str
    cmap: str
    opacity: float
    files: list[tuple[str, str]]
    files_folder: str
    caveats: list[str]
    default_filename: str
    #: ``(image, tool, value)`` rows of the reader's measurements (issue 16).
    measurements: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def agreement_text(self) -> str:
        return AGREEMENT_TEXT[self.agreement]

    @property
    def has_overlays(self) -> bool:
        return any(im.overlay is not None for im in self.images)


# ---------------------------------------------------------------------- small helpers


def format_date(value: str) -> str:
    """DICOM DA ``YYYYMMDD`` → ``YYYY-MM-DD`` (other text unchanged)."""
    value = (value or "").strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value


def _format_time(value: str) -> str:
    value = (value or "").strip()
    if len(value) >= 4 and value[:4].isdigit():
        return f"{value[:2]}:{value[2:4]}"
    return ""


def format_name(name: str) -> str:
    """DICOM PN ``Family^Given^Middle`` → ``Family, Given Middle``."""
    first = (name or "").split("=")[0]
    parts = [p.strip() for p in first.split("^")]
    family, given = parts[0], " ".join(p for p in parts[1:3] if p)
    if family and given:
        return f"{family}, {given}"
    return family or given


_SEX = {"M": "male", "F": "female", "O": "other"}


def identifiers(patient: Patient | None, study: Study | None) -> list[str]:
    """The strings a de-identified report must not contain (longest first).

    Patient name (as stored, with spaces, as "Family, Given", each component of three or
    more letters that is not an anatomy word), patient ID, birth date (as stored and as
    ``YYYY-MM-DD``), accession number, institution, and for image folders the study
    folder's name.
    """
    found: list[str] = []
    if patient is not None:
        name = patient.name or ""
        if name.strip():
            found += [name, name.replace("^", " "), format_name(name),
                      " ".join(p for p in reversed(name.split("=")[0].split("^")) if p)]
            for group in name.split("="):
                for part in re.split(r"[\^\s,]+", group):
                    if len(part) >= 3 and part.upper() not in _VOCABULARY:
                        found.append(part)
        found += [patient.id, patient.birth_date, format_date(patient.birth_date)]
    if study is not None:
        found += [study.accession, study.institution]
        if study.images and all(im.kind == "image" for im in study.images):
            if study.source is not None:
                found.append(study.source.name)
    out: set[str] = set()
    for text in found:
        text = " ".join((text or "").split())
        if len(text) >= 2:
            out.add(text)
    return sorted(out, key=lambda s: (-len(s), s))


def scrub(text: str, forbidden: Sequence[str]) -> str:
    """``text`` with every identifier in ``forbidden`` replaced by :data:`REMOVED`
    (case-insensitive, whitespace-insensitive)."""
    if not text or not forbidden:
        return text
    alternatives = []
    for item in sorted(forbidden, key=len, reverse=True):
        words = r"\s+".join(re.escape(w) for w in item.split())
        # A short identifier (an ID like "12") only as a whole token, not inside a date.
        alternatives.append(rf"(?<![\w./:-]){words}(?![\w./:-])" if len(item) < 4
                            else words)
    return re.sub("|".join(alternatives), REMOVED, text, flags=re.IGNORECASE)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def burned_in_annotation(ref: ImageRef) -> str:
    """Burned In Annotation (0028,0301) of a DICOM file: ``"YES"``, ``"NO"``, or ``""``
    when absent, unreadable or not DICOM (then the pixels may hold identifiers)."""
    if ref.kind != "dicom":
        return ""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from viewer.pixels import capture_warnings

    try:
        with capture_warnings():
            ds = pydicom.dcmread(ref.path, stop_before_pixels=True,
                                 specific_tags=[(0x0028, 0x0301)])
        return str(ds.get("BurnedInAnnotation", "") or "").strip().upper()
    except (OSError, ValueError, InvalidDicomError) as exc:
        log.info("Burned In Annotation not readable: %s", type(exc).__name__)
        return ""


def orient(image: np.ndarray, state: ViewState | None) -> np.ndarray:
    """Apply a view's flip and rotation to an image array (rows, columns[, channels]).

    The viewer flips in image space, then rotates clockwise on screen
    (:mod:`viewer.viewstate`); the result is what the reader saw, unzoomed.
    """
    if state is None:
        return image
    out = image
    if state.flip_h:
        out = out[:, ::-1]
    if state.flip_v:
        out = out[::-1]
    quarter = (state.rotation // 90) % 4
    if quarter:
        out = np.rot90(out, k=-quarter)  # negative k: clockwise
    return np.ascontiguousarray(out)


def _downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average an image (uint8 or float32, 2-D) so that its longest side ≤ max_side."""
    h, w = image.shape[:2]
    factor = max(h, w) / max(1, max_side)
    if factor <= 1:
        return image
    size = (max(1, round(w / factor)), max(1, round(h / factor)))
    source = image if image.dtype == np.uint8 else image.astype(np.float32)
    return np.asarray(Image.fromarray(source).resize(size, Image.Resampling.BOX))


def window_text(pipeline: DisplayPipeline, state: ViewState | None) -> str:
    """The view's window in words: ``"W 4096 / L 2048 (BONE)"``, ``"VOI LUT …"``,
    plus ``", inverted"`` when the reader inverted it."""
    state = state or ViewState()
    label = state.preset_label
    window, lut = state.window, state.voi_lut
    if window is None and lut is None:
        preset = pipeline.default_preset
        window, lut, label = preset.window, preset.voi_lut, preset.label
    if lut is not None:
        text = f"VOI LUT {label or lut.explanation}".strip()
    else:
        assert window is not None
        text = f"W {window.width:g} / L {window.center:g}" + (f" ({label})" if label else "")
    return text + (", inverted" if state.invert else "")


def orientation_text(state: ViewState | None) -> str:
    """``"as acquired"`` or e.g. ``"rotated 90° clockwise, flipped left–right"``."""
    if state is None:
        return "as acquired"
    parts = []
    if state.flip_h:
        parts.append("flipped left–right")
    if state.flip_v:
        parts.append("flipped top–bottom")
    if state.rotation % 360:
        parts.append(f"rotated {state.rotation % 360}° clockwise")
    return ", ".join(parts) if parts else "as acquired"


def _safe_filename_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("._-")[:48]


def default_filename(study: Study, patient: Patient | None, deidentify: bool = False,
                     today: dt.date | None = None) -> str:
    """The file name the GUI proposes: ``radview_<patient id>_<study date>.pdf``, or
    ``radview_report_<study date>.pdf`` when de-identified or without a patient ID (the
    date is today's when the study has none). Only letters, digits, ``.`` and ``-``."""
    date = _safe_filename_part(study.date) or (today or dt.date.today()).strftime("%Y%m%d")
    pid = "" if deidentify or patient is None else _safe_filename_part(patient.id)
    return f"radview_{pid or 'report'}_{date}.pdf"


def _metric_text(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _flatten_metrics(metrics: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten_metrics(value, f"{name}.")
        elif isinstance(value, (list, tuple)):
            rows.append((name, ", ".join(_metric_text(v) for v in value[:8])))
        else:
            rows.append((name, _metric_text(value)))
    return rows


#: Figures a reader looks for first, per model of a bundle's metrics (radview train's keys),
#: in this order; the rest of a model's metrics follow.
_HEADLINE = ("evaluated_on", "study_auroc", "study_sensitivity", "study_specificity",
             "ece_after", "accuracy", "accuracy_confidence_hm", "n_studies", "n_images")


def _with_ci(value: Any) -> str | None:
    """``{"value", "ci": [low, high]}`` as "0.942 (95% CI 0.918–0.963)"; None otherwise."""
    if isinstance(value, dict) and isinstance(value.get("value"), (int, float)):
        ci = value.get("ci")
        text = f"{value['value']:.3f}"
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(
                isinstance(v, (int, float)) for v in ci):
            text += f" (95% CI {ci[0]:.3f}–{ci[1]:.3f})"
        return text
    return None


def headline_metrics(metrics: dict[str, Any], limit: int = 12) -> list[tuple[str, str]]:
    """The report's headline rows: for each model (a dict of radview train's figures), its
    validation figures with their intervals first, then everything else flattened; at most
    ``limit`` rows."""
    rows: list[tuple[str, str]] = []
    rest: list[tuple[str, str]] = []
    for model, figures in metrics.items():
        if not isinstance(figures, dict):
            rest += _flatten_metrics({model: figures})
            continue
        for key in _HEADLINE:
            if key in figures:
                value = figures[key]
                rows.append((f"{model}.{key}", _with_ci(value) or _metric_text(value)))
        rest += _flatten_metrics({k: v for k, v in figures.items() if k not in _HEADLINE},
                                 f"{model}.")
    return (rows + rest)[:limit]


def bundle_summary(manifest: Manifest, folder: str | os.PathLike[str] = "") -> BundleSummary:
    """The report's bundle section from a validated manifest."""
    models: list[tuple[str, str]] = []
    if manifest.router is not None:
        r = manifest.router
        models.append(("router", f"{r.architecture}, {r.input.size[0]}×{r.input.size[1]} px, "
                                 f"{len(r.class_names)} classes"))
    for name, m in manifest.abnormality_models.items():
        models.append((name, f"{m.architecture}, {m.input.size[0]}×{m.input.size[1]} px, "
                             f"threshold {m.threshold:.2f}, {m.positive_label} / "
                             f"{m.negative_label}"))
    td = manifest.training_data
    return BundleSummary(
        name=manifest.name, version=manifest.version,
        folder=Path(folder).name if folder else "",
        license=manifest.license, intended_use=manifest.intended_use,
        training_data=td.description, citation=td.citation,
        description=manifest.description,
        metrics=headline_metrics(dict(manifest.metrics)), models=models,
        weights=list(manifest.weights_files))


# ------------------------------------------------------------------------------ gather


def gather(
    study: Study,
    patient: Patient | None,
    views: Sequence[ViewSnapshot],
    *,
    ai_result: Any = None,
    ai_reason: str | None = None,
    bundle: Manifest | str | os.PathLike[str] | None = None,
    bundle_note: str | None = None,
    impression: str = "",
    agreement: str = NOT_REVIEWED,
    deidentify: bool = False,
    cmap: str = "jet",
    opacity: float = 0.5,
    max_side: int = MAX_SIDE,
    generated: dt.datetime | None = None,
) -> ReportData:
    """Collect what the report shows.

    Parameters
    ----------
    study, patient
        The study (from :func:`viewer.loader.scan`) and its patient (None if unknown).
    views
        One snapshot per view, in the study's order.
    ai_result
        The :class:`inference.engine.StudyResult`, or None when there is none.
    ai_reason
        Why there is no result (e.g. "no model bundle …"); used when ``ai_result`` is
        None.
    bundle
        The bundle's :class:`~inference.bundle.Manifest`, or its folder (the manifest is
        read, not re-hashed: the engine verified the weights when it loaded them), or
        None. ``bundle_note`` says why there is none.
    impression, agreement
        The reviewer's impression (free text) and one of :data:`AGREEMENTS`.
    deidentify
        Leave identifiers out (see the module notes).
    cmap, opacity
        Heat map colours (one of :data:`~viewer.overlay.COLORMAPS`) and opacity (0–1).
    max_side
        Longest side, pixels, of the images in the result (downscaled by area
        averaging; never upscaled).
    generated
        The report's time (default: now, local time zone).

    Returns
    -------
    ReportData

    Raises
    ------
    ValueError
        An unknown ``agreement`` or ``cmap``.
    """
    if agreement not in AGREEMENTS:
        raise ValueError(f"agreement must be one of {', '.join(AGREEMENTS)}, got {agreement!r}")
    if cmap not in COLORMAPS:
        raise ValueError(f"unknown colormap {cmap!r} (known: {', '.join(COLORMAPS)})")
    generated = generated or dt.datetime.now().astimezone()
    # De-identified, file names are not shown either (they often carry names or IDs).
    forbidden = ([*identifiers(patient, study), *(im.name for im in study.images)]
                 if deidentify else [])

    def clean(text: str | None) -> str:
        return scrub(text or "", forbidden) if deidentify else (text or "")

    ai = _ai_summary(ai_result, ai_reason, clean)
    by_key = {im.key: im for im in ai_result.images} if ai_result is not None else {}
    images: list[ReportImage] = []
    for number, snap in enumerate(views, start=1):
        images.append(_report_image(number, snap, by_key.get(str(snap.ref.path)), deidentify,
                                    clean, cmap, opacity, max_side))

    summary, note = None, bundle_note
    if bundle is not None:
        from inference.errors import BundleError

        try:
            summary = _load_bundle_summary(bundle)
        except (BundleError, OSError) as exc:
            note = f"the bundle's manifest could not be read ({exc})"
            log.warning("report: %s", note)
    if summary is None and note is None:
        note = "no model bundle was in use"

    files, folder, burned = _files(study, deidentify)
    caveats: list[str] = []
    if deidentify:
        caveats.append("De-identified report: patient name, patient ID, birth date, accession "
                       "number, institution and file names are left out; study date, sex "
                       "and body part are kept.")
        unsure = [str(i) for i, value in enumerate(burned, start=1) if value != "NO"]
        if unsure:
            caveats.append("Pixel data may contain burned-in identifiers: image(s) "
                           + ", ".join(unsure) + " do not state Burned In Annotation "
                           "(0028,0301) \"NO\"; only the report's text and metadata are "
                           "de-identified.")

    patient_rows, study_rows = _identity(study, patient, views, deidentify, clean)
    date = format_date(study.date)
    name = format_name(patient.name) if patient is not None else ""
    pid = patient.id if patient is not None else ""
    if deidentify:
        title = f"Radiograph AI report (de-identified){' — ' + date if date else ''}"
        running = "De-identified report" + (f" · study {date}" if date else "")
    else:
        who = " ".join(x for x in (name, f"({pid})" if pid else "") if x)
        title = "Radiograph AI report" + (f" — {who}" if who else "") + (
            f" — {date}" if date else "")
        running = " · ".join(x for x in (name, pid, f"study {date}" if date else "") if x)
    subject = ("Musculoskeletal radiograph study as reviewed in radview, with its AI result "
               "(research use only, not for diagnosis)")
    return ReportData(
        title=title, subject=subject, running_header=running or "Radiograph AI report",
        generated=generated, app_version=__version__, deidentified=deidentify,
        patient_rows=patient_rows, study_rows=study_rows, ai=ai, bundle=summary,
        bundle_note=None if summary is not None else note, images=images,
        threshold=ai.threshold, impression=clean(impression.strip()), agreement=agreement,
        cmap=cmap, opacity=float(np.clip(opacity, 0.0, 1.0)), files=files,
        files_folder=folder, caveats=caveats,
        default_filename=default_filename(study, patient, deidentify, generated.date()))


def _load_bundle_summary(bundle: Any) -> BundleSummary:
    if isinstance(bundle, (str, os.PathLike)):
        from inference.bundle import load_manifest

        return bundle_summary(load_manifest(bundle, verify=False), bundle)
    return bundle_summary(bundle)


def _ai_summary(result: Any, reason: str | None, clean) -> AiSummary:
    if result is None:
        return AiSummary(scored=False, reason=clean(reason) or "the study was not analysed")
    common = dict(body_part=result.body_part, body_part_source=result.body_part_source,
                  model=result.model, flags=[clean(f) for f in result.flags])
    if not result.supported or result.score is None:
        return AiSummary(scored=False, reason=clean(result.reason) or "not supported",
                         **common)
    flag = getattr(result, "flag", None)  # any view above the threshold flags the study
    positive = (flag == "positive" if flag is not None
                else result.threshold is not None and result.score >= result.threshold)
    return AiSummary(scored=True, score=float(result.score), threshold=result.threshold,
                     label=getattr(result, "flag_text", None) or result.label,
                     positive=positive, **common)


def _describe(ref: ImageRef) -> str:
    laterality = ref.laterality if ref.laterality not in ("U", "B") else ""
    return " ".join(x for x in (ref.body_part or "", ref.view_position, laterality) if x)


def _report_image(number: int, snap: ViewSnapshot, result: Any, deidentify: bool, clean,
                  cmap: str, opacity: float, max_side: int) -> ReportImage:
    ref = snap.ref
    label = f"Image {number}" if deidentify else ref.name
    part = result.body_part if result is not None else ref.body_part
    source = result.body_part_source if result is not None else ref.body_part_source
    prob = result.probability if result is not None else None
    notes = [clean(n) for n in ref.warnings]
    spec = ref.spec
    size = (spec.columns, spec.rows) if spec is not None else (0, 0)
    if snap.pipeline is None:
        error = clean(snap.message or ref.error or "not decoded")
        return ReportImage(number, label, _describe(ref), None, None, size, probability=prob,
                           body_part=part, body_part_source=source, error=error, notes=notes)
    state = snap.state
    pipeline = snap.pipeline
    if state is not None and state.voi_lut is not None:
        shown = pipeline.render(voi_lut=state.voi_lut, invert=state.invert)
    else:
        shown = pipeline.render(window=state.window if state else None,
                                invert=bool(state and state.invert))
    size = (shown.shape[1], shown.shape[0])
    small = _downscale(shown, max_side)
    overlay = None
    cam = snap.cam
    if cam is not None:
        if cam.shape != shown.shape:
            log.warning("report: CAM shape %s differs from image %s; heat map left out",
                        cam.shape, shown.shape)
        else:
            cam_small = _downscale(np.asarray(cam, dtype=np.float32), max_side)
            overlay = blend(small, cam_small, cmap, opacity)
    boxes = getattr(result, "boxes", None) if result is not None else None
    if boxes:
        # Boxes are in the image's pixels: scale them to the report's copy, solid for
        # "fracture", dotted for "doubt" (viewer.overlay.draw_boxes).
        from viewer.overlay import draw_boxes

        fy, fx = small.shape[0] / shown.shape[0], small.shape[1] / shown.shape[1]
        scaled = [{**b, "x0": b["x0"] * fx, "x1": b["x1"] * fx, "y0": b["y0"] * fy,
                   "y1": b["y1"] * fy} for b in boxes]
        base = overlay if overlay is not None else np.repeat(small[..., None], 3, axis=2)
        overlay = draw_boxes(base, scaled)
    if overlay is not None:
        overlay = orient(overlay, state)
    return ReportImage(
        number, label, _describe(ref), orient(small, state), overlay, size,
        window_text=window_text(pipeline, state), orientation_text=orientation_text(state),
        probability=prob, body_part=part, body_part_source=source, notes=notes)


def _identity(study: Study, patient: Patient | None, views: Sequence[ViewSnapshot],
              deidentify: bool, clean) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    images_only = bool(study.images) and all(im.kind == "image" for im in study.images)
    sex = _SEX.get((patient.sex if patient else "").upper(), patient.sex if patient else "")
    prows: list[tuple[str, str]] = []
    srows: list[tuple[str, str]] = []
    if deidentify:
        prows.append(("Patient", "de-identified"))
        if sex:
            prows.append(("Sex", sex))
    elif images_only:
        prows.append(("Patient folder", patient.id if patient and patient.id else "—"))
    else:
        prows += [("Name", format_name(patient.name) if patient else ""),
                  ("Patient ID", patient.id if patient else ""),
                  ("Sex", sex),
                  ("Birth date", format_date(patient.birth_date) if patient else "")]
    date = format_date(study.date)
    time = _format_time(study.time)
    srows.append(("Study date", " ".join(x for x in (date, time) if x)))
    if images_only:
        srows.append(("Source", "image folder" if deidentify else str(study.source or "")))
    else:
        srows.append(("Description", clean(study.description)))
        if not deidentify:
            srows += [("Accession", study.accession), ("Institution", study.institution)]
    modalities = sorted({im.modality for im in study.images if im.modality})
    if modalities:
        srows.append(("Modality", ", ".join(modalities)))
    if study.label:
        srows.append(("Label (folder name)", study.label))
    srows.append(("Views", str(len(views))))
    return ([(k, v or "—") for k, v in prows], [(k, v or "—") for k, v in srows])


def _files(study: Study, deidentify: bool) -> tuple[list[tuple[str, str]], str, list[str]]:
    """(label, sha256 or reason) per input file, their common folder, Burned In values."""
    refs = study.images
    folder = ""
    if refs and not deidentify:
        try:
            folder = os.path.commonpath([os.path.abspath(r.path.parent) for r in refs])
        except ValueError:  # different drives
            folder = ""
    rows: list[tuple[str, str]] = []
    burned: list[str] = []
    for number, ref in enumerate(refs, start=1):
        if deidentify:
            label = f"Image {number}"
        elif folder:
            label = os.path.relpath(os.path.abspath(ref.path), folder)
        else:
            label = str(ref.path)
        try:
            value = sha256_file(ref.path)
        except OSError as exc:
            value = f"not readable ({exc.strerror or type(exc).__name__})"
        rows.append((label, value))
        burned.append(burned_in_annotation(ref))
    return rows, folder, burned
