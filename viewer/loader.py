"""Scan files, folders and DICOMDIRs into a :class:`viewer.model.LoadResult` (Qt-free).

Only headers are read: DICOM with pydicom's ``stop_before_pixels`` (the pixel data element
is located but not read, see :func:`viewer.pixels.read_dicom_header`), image files with
Pillow's lazy ``Image.open``. Pixels are decoded later by :func:`viewer.pixels.decode`.

What is accepted
----------------
* A DICOM file (PS3.10), with or without preamble and File Meta Information, any name.
* A folder, recursively: every file is examined whatever its name or extension (DICOM
  files are recognised by content, :func:`viewer.pixels.sniff_dicom`). Hidden files and
  folders (name starting with ``.``) are skipped, and so are files that are obviously not
  images (:data:`SKIP_SUFFIXES`, :data:`SKIP_NAMES`); symbolic links to folders are not
  followed.
* A DICOMDIR (PS3.10 8.2, PS3.3 F.3): every Referenced File ID (0004,1500) in its
  Directory Record Sequence is loaded. A reference that is absolute, contains ``..`` or
  resolves (through symbolic links) outside the DICOMDIR's folder is refused with a
  :class:`FileError` naming the record. When a folder being walked contains a file named
  ``DICOMDIR``, that DICOMDIR decides what its folder tree holds: the files it references
  are loaded and the rest of that subtree is *not* scanned (no double loading; files a
  media creator left unreferenced are ignored, as a DICOM media reader would).
* Image files: PNG, JPEG, TIFF, BMP (by extension, or by content for files without a
  known one).

Grouping
--------
Patient → study → series → image by Patient ID, Study Instance UID and Series Instance
UID (PS3.3 C.7.1.1, C.7.2.1, C.7.3.1). Series are ordered by Series Number, images by
Instance Number, then file name (natural order: ``IM2`` before ``IM10``). A missing Study
or Series Instance UID groups the file with the others of its folder under a generated
``radview:`` key (and a warning); a missing Patient ID keeps the study under a patient
of its own. A second file with an already seen SOP Instance UID is dropped: the first in
path order is kept, logged at INFO, and noted in its ``warnings``.

A folder of plain images is one study (``uid`` = the folder path) with one series; its
patient is the MURA ``patientNNNNN`` parent folder when there is one, else the folder.

MURA layout
-----------
``…/XR_<PART>/patientNNNNN/studyN_<positive|negative>/imageK.png`` (Rajpurkar et al.,
MURA, 2017). The root the user opens may be the dataset root, an ``XR_*`` folder, a
patient or a study folder: the ancestors of every file are examined. ``XR_<PART>`` gives
the body part (``body_part_source="path"``, used for DICOM files only when Body Part
Examined is absent), the study folder suffix the label; a study folder without suffix is
unlabelled (``label=None``, not negative).

Errors and warnings
-------------------
Files that cannot be used at all become :class:`FileError` (not DICOM and not an image;
empty or truncated before the pixel data; DICOM without pixel data such as SR, key object
selection or presentation states, named by SOP Class). Images that are found but cannot
be shown keep an :class:`ImageRef` with ``error`` set: unsupported transfer syntax (the
message names it and what would decode it), pixel data shorter than declared (refused,
see :mod:`viewer.pixels`), a matrix above :data:`MAX_PIXELS` / :data:`MAX_DIMENSION`,
unsupported photometric interpretation or bit depths. Images shown with caveats get
``warnings``: colour shown as grayscale, multi-frame (frame 1 of N), a guessed transfer
syntax, pydicom's header warnings.

radview's own AI objects (:mod:`viewer.dicom_results`): its structured reports are not
errors but listed in ``LoadResult.ai_reports``; its secondary captures are images with
``ai_capture`` set, shown but never given to the model as views.

Every file is examined inside its own guard: whatever pydicom, Pillow or a decoder
raises for one file (an unknown VR in a patient name, a panic in a Rust codec) becomes
that file's :class:`FileError`, and the scan goes on with the next file.

Patient names and IDs never go to the log file, nor do file and folder names (they may
carry them: ``DOE_JANE.dcm``): log messages name paths by :func:`viewer.logs.file_ref`.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, MediaStorageDirectoryStorage

from inference.bodyparts import normalize_body_part
from viewer.dicom_results import is_radview_capture, is_radview_sr
from viewer.logs import file_ref, register_identifiers
from viewer.measure import spacing_from_dataset
from viewer.model import (
    FileError,
    ImageRef,
    LoadResult,
    Patient,
    PixelSpec,
    Series,
    Study,
)
from viewer.pixels import (
    COLOUR,
    IMAGE_FORMATS,
    PixelError,
    capture_warnings,
    check_pixel_data,
    failure_text,
    header_problem,
    int_value,
    is_recoverable,
    read_dicom_header,
    sniff_dicom,
    spec_for_image,
    spec_from_dataset,
    text,
)

log = logging.getLogger(__name__)

#: Largest pixel matrix accepted: 50 megapixels (Rows × Columns), i.e. 100 MB per 16-bit
#: frame; the largest radiography detectors are about 43 × 43 cm at 0.1 mm (≈ 18 MP).
MAX_PIXELS = 50_000_000
#: Largest Rows or Columns accepted.
MAX_DIMENSION = 30_000

#: Plain image extensions (lower case).
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
#: Extensions skipped without a message while walking folders (never images or DICOM).
SKIP_SUFFIXES = frozenset({
    ".txt", ".csv", ".tsv", ".json", ".xml", ".htm", ".html", ".css", ".js", ".md", ".rst",
    ".pdf", ".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".rtf", ".py", ".pyc",
    ".sh", ".bat", ".cmd", ".exe", ".dll", ".so", ".dylib", ".jar", ".inf", ".ini", ".cfg",
    ".yaml", ".yml", ".toml", ".log", ".db", ".sqlite", ".zip", ".gz", ".tgz", ".bz2",
    ".xz", ".7z", ".rar", ".tar", ".iso", ".mp3", ".mp4", ".avi", ".mov", ".wav", ".ico",
    ".svg", ".lnk", ".url", ".pt", ".pth", ".safetensors", ".npy", ".npz",
})
#: File names (lower case) skipped without a message while walking folders.
SKIP_NAMES = frozenset({"readme", "license", "licence", "copying", "lockfile", "version",
                        "thumbs.db", "desktop.ini", "autorun.inf"})

_PART_DIR = re.compile(r"^XR_(.+)$", re.IGNORECASE)
_PATIENT_DIR = re.compile(r"^patient\d+$", re.IGNORECASE)
_STUDY_DIR = re.compile(r"^study\d*(?:_(positive|negative))?$", re.IGNORECASE)


@dataclass(frozen=True)
class PathHints:
    """What a file's folders say about it (MURA layout).

    Attributes
    ----------
    body_part
        Normalized part from the nearest ``XR_<PART>`` ancestor, or None.
    label
        ``"positive"``/``"negative"`` from a ``studyN_<label>`` parent folder, or None.
    patient_dir
        The nearest ``patientNNNNN`` ancestor, or None.
    study_dir
        The parent folder when it is named ``studyN[_label]``, or None.
    """

    body_part: str | None = None
    label: str | None = None
    patient_dir: Path | None = None
    study_dir: Path | None = None


def path_hints(path: str | os.PathLike[str]) -> PathHints:
    """Examine the ancestors of ``path`` for the MURA layout (see the module notes)."""
    path = Path(os.path.abspath(path))
    parent = path.parent
    label = None
    study_dir = None
    match = _STUDY_DIR.match(parent.name)
    if match:
        study_dir = parent
        label = match.group(1).lower() if match.group(1) else None
    patient_dir = None
    body_part = None
    for ancestor in parent.parents if study_dir else [parent, *parent.parents]:
        if patient_dir is None and _PATIENT_DIR.match(ancestor.name):
            patient_dir = ancestor
        part = _PART_DIR.match(ancestor.name)
        if part:
            body_part = normalize_body_part(part.group(1))
            break
    return PathHints(body_part, label, patient_dir, study_dir)


def _natural(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _path_key(path: Path) -> list[object]:
    return [_natural(part) for part in path.parts]


@dataclass
class _Candidate:
    path: Path
    via: Path | None = None  # the DICOMDIR that listed it


@dataclass
class _Found:
    """One readable image and where it belongs."""

    ref: ImageRef
    patient_key: tuple[str, str]
    patient: Patient
    study_key: str
    study: Study
    series_key: str
    series: Series
    label: str | None = None


@dataclass
class _Scan:
    errors: list[FileError] = field(default_factory=list)
    candidates: list[_Candidate] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    cancelled: Callable[[], bool] = lambda: False

    def add(self, path: Path, via: Path | None = None) -> None:
        key = os.path.realpath(path)
        if key in self.seen:
            return
        self.seen.add(key)
        self.candidates.append(_Candidate(path, via))


def scan(
    paths: Sequence[str | os.PathLike[str]],
    *,
    progress: Callable[[int, int], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> LoadResult:
    """Find and group the images in files, folders and DICOMDIRs (headers only).

    Parameters
    ----------
    paths
        Files, folders, DICOMDIRs, in the order the user gave them.
    progress
        Called as ``progress(done, total)`` with the number of files examined so far,
        first with ``done=0`` once the files are listed, then after each file.
    cancelled
        Polled while listing and between files; when it returns True the scan stops and
        returns what was found so far.

    Returns
    -------
    LoadResult
        Patients → studies → series → images, and per-file errors (see the module
        notes for the rules).

    Notes
    -----
    Size limit: an image whose matrix has more than :data:`MAX_PIXELS` = 50 000 000
    pixels (50 megapixels, Rows × Columns) or a side longer than :data:`MAX_DIMENSION` =
    30 000 pixels is listed with ``error`` set and never decoded. Only headers are read
    here, so a forged header cannot make the scan allocate pixel memory.
    """
    state = _Scan(cancelled=cancelled or (lambda: False))
    for raw in paths:
        if state.cancelled():
            break
        path = Path(raw)
        if not os.path.lexists(path):
            state.errors.append(FileError(path, "no such file or folder"))
        elif path.is_dir():
            _walk(path, state)
        elif path.name.upper() == "DICOMDIR" or _is_dicomdir(path):
            _expand_dicomdir(path, state)
        else:
            state.add(path)

    found: list[_Found] = []
    reports: list[Path] = []
    states: list[Path] = []
    if progress:
        progress(0, len(state.candidates))
    done = 0
    while done < len(state.candidates):  # a DICOMDIR found by content adds candidates
        if state.cancelled():
            log.info("scan cancelled after %d of %d files", done, len(state.candidates))
            break
        cand = state.candidates[done]
        done += 1
        result = _examine_guarded(cand)
        if isinstance(result, _DicomDirFound):
            _expand_dicomdir(cand.path, state)
        elif isinstance(result, _AIReport):
            reports.append(result.path)
        elif isinstance(result, _PresentationState):
            states.append(result.path)
        elif isinstance(result, FileError):
            log.debug("%s: %s", file_ref(result.path), result.reason)
            state.errors.append(result)
        else:
            found.append(result)
        if progress:
            progress(done, len(state.candidates))
    total = done
    out = _assemble(found, state.errors)
    out.ai_reports = reports
    out.presentation_states = states
    log.info("scan: %d files, %d images in %d studies, %d errors", total,
             len(out.images), len(out.studies), len(out.errors))
    return out


# --------------------------------------------------------------------------- listing


def _walk(root: Path, state: _Scan) -> None:
    def on_error(exc: OSError) -> None:
        state.errors.append(FileError(Path(exc.filename or root),
                                      f"folder cannot be read ({exc.strerror})"))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
        if state.cancelled():
            return
        folder = Path(dirpath)
        dirnames[:] = sorted((d for d in dirnames if not d.startswith(".")), key=_natural)
        dicomdir = next((f for f in sorted(filenames) if f.upper() == "DICOMDIR"), None)
        if dicomdir is not None:
            # The DICOMDIR governs this subtree; unreferenced files are not scanned.
            log.info("%s: using its DICOMDIR, not walking the folder", file_ref(folder))
            dirnames[:] = []
            _expand_dicomdir(folder / dicomdir, state)
            continue
        for name in sorted(filenames, key=_natural):
            if name.startswith("."):
                continue
            suffix = os.path.splitext(name)[1].lower()
            if suffix in SKIP_SUFFIXES or name.lower() in SKIP_NAMES:
                log.debug("%s: skipped (not an image)", file_ref(folder / name))
                continue
            state.add(folder / name)


def _is_dicomdir(path: Path) -> bool:
    """True for a DICOMDIR under another name (Media Storage SOP Class, PS3.10 7.1)."""
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    if len(head) < 132 or head[128:132] != b"DICM":
        return False
    # The whole read is guarded: a mangled meta group (an unknown VR in (0002,0002), a
    # wrong length) makes pydicom raise while reading *or* while converting the value.
    try:
        with capture_warnings():
            meta = read_file_meta_info(path)
            return text(meta, "MediaStorageSOPClassUID") == MediaStorageDirectoryStorage
    except Exception as exc:
        log.debug("%s: file meta not readable (%s)", file_ref(path), type(exc).__name__)
        return False


def _expand_dicomdir(dicomdir: Path, state: _Scan) -> None:
    """Add the files a DICOMDIR references, refusing references outside its folder."""
    try:
        with capture_warnings(), dicomdir.open("rb") as f:
            ds = dcmread(f, force=True)
            records = list(ds.get("DirectoryRecordSequence") or [])
            refs = [(number, text(rec, "DirectoryRecordType") or "?",
                     _file_id(rec))
                    for number, rec in enumerate(records, start=1)
                    if isinstance(rec, Dataset) and 0x00041500 in rec]
    except Exception as exc:
        state.errors.append(FileError(dicomdir, f"DICOMDIR cannot be read ({exc})"))
        return
    if not records:
        state.errors.append(FileError(dicomdir, "DICOMDIR lists no directory records"))
        return
    if not refs:
        state.errors.append(FileError(
            dicomdir, f"DICOMDIR has {len(records)} directory records but references no "
                      f"files"))
        return
    root = dicomdir.parent
    real_root = Path(os.path.realpath(root))
    for number, kind, parts in refs:
        shown = "\\".join(parts)
        where = f"DICOMDIR record {number} ({kind}) references '{shown}'"
        if not parts or any(p in ("", ".", "..") or "/" in p or "\\" in p or ":" in p
                            for p in parts):
            state.errors.append(FileError(
                dicomdir, f"{where}, a path outside the DICOMDIR's folder; refused"))
            continue
        target = _find_case_insensitive(root, parts)
        if target is None:
            state.errors.append(FileError(
                root.joinpath(*parts), f"{where}, but the file is missing"))
            continue
        real = Path(os.path.realpath(target))
        if not real.is_relative_to(real_root):
            state.errors.append(FileError(
                dicomdir, f"{where}, which leads outside the DICOMDIR's folder "
                          f"(symbolic link); refused"))
            continue
        state.add(target, via=dicomdir)


def _file_id(record: Dataset) -> list[str]:
    value = record[0x00041500].value
    if isinstance(value, bytes | bytearray):
        value = bytes(value).decode("latin-1")
    if isinstance(value, str):
        return [p.strip() for p in value.split("\\")]
    return [str(p).strip() for p in value]


def _find_case_insensitive(root: Path, parts: list[str]) -> Path | None:
    """``root/parts…``, matching each component case-insensitively when the exact name
    does not exist (File IDs are upper case, PS3.10 8.5; copies may be lower case)."""
    current = root
    for part in parts:
        exact = current / part
        if os.path.lexists(exact):
            current = exact
            continue
        try:
            names = os.listdir(current)
        except OSError:
            return None
        match = next((n for n in sorted(names) if n.upper() == part.upper()), None)
        if match is None:
            return None
        current = current / match
    return current if current.is_file() else None


# ------------------------------------------------------------------------- examining


class _DicomDirFound:
    """:func:`_examine` found a DICOMDIR by its SOP Class: expand it."""


#: Grayscale Softcopy Presentation State Storage (PS3.4 B.5).
GSPS_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"


@dataclass(frozen=True)
class _PresentationState:
    """:func:`_examine` found a grayscale presentation state (applied to the images it
    references when their study opens, see :mod:`viewer.gsps`)."""

    path: Path


def _read_geometry(ds: Dataset, ref: ImageRef) -> None:
    """Calibration attributes and Patient Orientation (guarded: a bad value is left out)."""
    try:
        ref.spacing = spacing_from_dataset(ds)
    except Exception as exc:  # malformed values: measure in pixels
        log.debug("%s: pixel spacing unreadable (%s)", file_ref(ref.path), type(exc).__name__)
    try:
        value = ds.get("PatientOrientation")
        if value is not None and not isinstance(value, str | bytes):
            letters = tuple(str(v).strip().upper() for v in value)
        else:
            letters = tuple(str(value or "").strip().upper().split("\\"))
        if len(letters) == 2 and all(letters) and all(
                set(v) <= set("LRAPHF") for v in letters):
            ref.patient_orientation = letters
    except Exception as exc:
        log.debug("%s: Patient Orientation unreadable (%s)", file_ref(ref.path),
                  type(exc).__name__)


@dataclass(frozen=True)
class _AIReport:
    """:func:`_examine` found radview's own AI structured report (listed, not an error)."""

    path: Path


def _examine_guarded(cand: _Candidate) -> _Found | FileError | _DicomDirFound:
    """:func:`_examine`, with anything a library raises for this file made its error."""
    try:
        return _examine(cand)
    except BaseException as exc:
        if not is_recoverable(exc):
            raise
        log.debug("%s: examining failed (%s)", file_ref(cand.path), type(exc).__name__)
        return FileError(cand.path, f"cannot be read: {failure_text(exc)}")


def _examine(cand: _Candidate) -> _Found | FileError | _DicomDirFound:
    path = cand.path
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(132)
    except OSError as exc:
        return FileError(path, f"cannot be read ({exc.strerror or exc})")
    if size == 0:
        return FileError(path, "empty file")
    if sniff_dicom(head):
        return _examine_dicom(path)
    return _examine_image(path)


def _size_problem(spec: PixelSpec) -> str | None:
    pixels = spec.rows * spec.columns
    if pixels > MAX_PIXELS or max(spec.rows, spec.columns) > MAX_DIMENSION:
        return (f"image matrix {spec.rows}×{spec.columns} ({pixels / 1e6:.1f} megapixels) "
                f"is above radview's limit of {MAX_PIXELS // 1_000_000} megapixels and "
                f"{MAX_DIMENSION} pixels per side")
    return None


def _no_pixel_reason(ds: Dataset) -> str:
    """'no pixel data (SR document: Comprehensive SR Storage)' from the SOP Class."""
    uid = text(ds, "SOPClassUID")
    if not uid:
        return "no pixel data (no SOP Class UID)"
    name = UID(uid).name
    if name == uid:
        return f"no pixel data (SOP Class {uid})"
    kinds = [("SR Storage", "SR document"), ("Key Object Selection", "key object selection"),
             ("Presentation State", "presentation state"), ("Waveform", "waveform"),
             ("ECG", "waveform"), ("Encapsulated", "encapsulated document"),
             ("RT ", "radiotherapy object"), ("Segmentation", "segmentation")]
    kind = next((k for needle, k in kinds if needle in name), "DICOM object")
    return f"no pixel data ({kind}: {name})"


def _examine_dicom(path: Path) -> _Found | FileError | _DicomDirFound:
    with capture_warnings() as caught:
        try:
            header = read_dicom_header(path)
        except PixelError as exc:
            return FileError(path, exc.reason)
        except OSError as exc:
            return FileError(path, f"cannot be read ({exc.strerror or exc})")
        ds = header.ds
        if text(ds, "SOPClassUID") == MediaStorageDirectoryStorage:
            # A DICOMDIR under another name, or one whose file meta lacks (0002,0002):
            # its references are loaded (and missing ones listed) like any DICOMDIR's.
            log.info("%s: a DICOMDIR found by its SOP Class", file_ref(path))
            return _DicomDirFound()
        if header.pixel is None:
            if is_radview_sr(ds):
                return _AIReport(path)  # type: ignore[return-value]
            if text(ds, "SOPClassUID") == GSPS_SOP_CLASS:
                return _PresentationState(path)  # type: ignore[return-value]
            if 0x00280010 in ds:
                return FileError(path, "file is truncated: the header describes an image but "
                                       "the file ends before its Pixel Data")
            return FileError(path, _no_pixel_reason(ds))
        ts = header.transfer_syntax
        ref = ImageRef(
            path=path,
            kind="dicom",
            sop_instance_uid=text(ds, "SOPInstanceUID"),
            instance_number=int_value(ds, "InstanceNumber"),
            transfer_syntax=str(ts),
            transfer_syntax_name=ts.name if ts.name != str(ts) else "unknown",
            modality=text(ds, "Modality"),
            view_position=text(ds, "ViewPosition"),
            laterality=text(ds, "ImageLaterality") or text(ds, "Laterality"),
            image_comments=text(ds, "ImageComments"),
            ai_capture=is_radview_capture(ds),
        )
        ref.lossy, ref.lossy_ratios = _lossy(ds, ts)
        _read_geometry(ds, ref)
        hints = path_hints(path)
        part = normalize_body_part(text(ds, "BodyPartExamined"))
        if part:
            ref.body_part, ref.body_part_source = part, "tag"
        elif hints.body_part:
            ref.body_part, ref.body_part_source = hints.body_part, "path"
        if not header.transfer_syntax_from_meta:
            ref.warnings.append(f"no File Meta Information: transfer syntax taken to be "
                                f"{ref.transfer_syntax_name}")
        try:
            spec = spec_from_dataset(ds)
        except ValueError as exc:
            spec = None
            ref.error = str(exc)
        if spec is not None:
            ref.spec = spec
            if 0x00280004 not in ds:
                ref.warnings.append(f"Photometric Interpretation missing: {spec.photometric} "
                                    f"assumed")
            ref.error = header_problem(spec) or _size_problem(spec)
            if ref.error is None:
                ref.error, notes = check_pixel_data(header, spec)
                ref.warnings += notes
            if spec.photometric in COLOUR:
                ref.warnings.append(f"colour image ({spec.photometric}): shown as grayscale")
            if spec.number_of_frames > 1:
                ref.warnings.append(f"multi-frame: frame 1 of {spec.number_of_frames} shown")
        found = _group_dicom(ds, ref, hints)
    ref.warnings += [f"pydicom: {m}" for m in caught]
    return found


#: Transfer syntaxes that are always lossy (PS3.5 A.4, 8.2): JPEG Baseline and Extended,
#: JPEG-LS near-lossless, and the video syntaxes (MPEG-2, MPEG-4, HEVC).
LOSSY_TRANSFER_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
    *(f"1.2.840.10008.1.2.4.{n}" for n in range(100, 109)),
})
#: Transfer syntaxes that may be lossy or lossless (JPEG 2000, HTJ2K): lossy unless Lossy
#: Image Compression (0028,2110) says ``00``.
MAYBE_LOSSY_TRANSFER_SYNTAXES = frozenset({"1.2.840.10008.1.2.4.91",
                                           "1.2.840.10008.1.2.4.203"})


def _lossy(ds: Dataset, ts: UID) -> tuple[bool, list[float]]:
    """(lossy, ratios): whether the pixels went through lossy compression, and Lossy Image
    Compression Ratio (0028,2112) where given (PS3.3 C.7.6.1.1.5).

    Lossy when Lossy Image Compression (0028,2110) is ``01`` (the image was lossy
    compressed at some point, whatever its transfer syntax now), or the transfer syntax
    is lossy (:data:`LOSSY_TRANSFER_SYNTAXES`, or :data:`MAYBE_LOSSY_TRANSFER_SYNTAXES`
    without ``00``).
    """
    flag = text(ds, "LossyImageCompression")
    lossy = (flag == "01" or str(ts) in LOSSY_TRANSFER_SYNTAXES
             or (str(ts) in MAYBE_LOSSY_TRANSFER_SYNTAXES and flag != "00"))
    if not lossy:
        return False, []
    ratios = []
    for part in text(ds, "LossyImageCompressionRatio").split("\\"):
        try:
            value = float(part)
        except ValueError:
            continue
        if math.isfinite(value) and value > 0:
            ratios.append(value)
    return True, ratios


def _group_dicom(ds: Dataset, ref: ImageRef, hints: PathHints) -> _Found:
    folder = str(Path(os.path.abspath(ref.path)).parent)
    study_uid = text(ds, "StudyInstanceUID")
    if not study_uid:
        study_uid = f"radview:no-study-uid:{folder}"
        ref.warnings.append("no Study Instance UID: grouped with the other files of its "
                            "folder")
    series_uid = text(ds, "SeriesInstanceUID")
    if not series_uid:
        series_uid = f"radview:no-series-uid:{folder}"
        ref.warnings.append("no Series Instance UID: grouped with the other files of its "
                            "folder")
    patient_id = text(ds, "PatientID")
    patient_key = ("dicom", patient_id) if patient_id else ("dicom-no-id", study_uid)
    patient = Patient(
        id=patient_id,
        name=text(ds, "PatientName"),
        sex=text(ds, "PatientSex"),
        birth_date=text(ds, "PatientBirthDate"),
    )
    # Keep these out of the log file and stderr, should any message ever quote them.
    register_identifiers([patient.name, patient.id, patient.birth_date,
                          text(ds, "AccessionNumber"), text(ds, "OtherPatientIDs")])
    study = Study(
        uid=study_uid,
        date=text(ds, "StudyDate"),
        time=text(ds, "StudyTime"),
        description=text(ds, "StudyDescription"),
        accession=text(ds, "AccessionNumber"),
        institution=text(ds, "InstitutionName"),
        referring_physician=text(ds, "ReferringPhysicianName"),
        source=Path(folder),
    )
    series = Series(
        uid=series_uid,
        number=int_value(ds, "SeriesNumber"),
        description=text(ds, "SeriesDescription"),
        modality=text(ds, "Modality"),
    )
    return _Found(ref, patient_key, patient, study_uid, study, series_uid, series,
                  hints.label)


def _examine_image(path: Path) -> _Found | FileError:
    suffix = path.suffix.lower()
    with capture_warnings() as caught:
        try:
            with Image.open(path) as im:
                fmt = im.format or "unknown"
                if fmt not in IMAGE_FORMATS:
                    return FileError(path, f"{fmt} images are not supported "
                                           f"(PNG, JPEG, TIFF, BMP)")
                spec = spec_for_image(im)
        except UnidentifiedImageError:
            if suffix in IMAGE_SUFFIXES:
                return FileError(path, f"not a readable {suffix[1:].upper()} image")
            return FileError(path, "not a DICOM file or a supported image (PNG, JPEG, TIFF, "
                                   "BMP)")
        except Image.DecompressionBombError as exc:
            return FileError(path, f"image is too large to open ({exc})")
        except (OSError, ValueError, SyntaxError) as exc:
            return FileError(path, f"image cannot be read ({exc})")
    ref = ImageRef(path=path, kind="image", spec=spec, lossy=fmt == "JPEG")
    hints = path_hints(path)
    if hints.body_part:
        ref.body_part, ref.body_part_source = hints.body_part, "path"
    ref.error = _size_problem(spec)
    if spec.number_of_frames > 1:
        ref.warnings.append(f"multi-page image: page 1 of {spec.number_of_frames} shown")
    ref.warnings += [f"Pillow: {m}" for m in caught]

    folder = Path(os.path.abspath(path)).parent
    patient_dir = folder.parent if _PATIENT_DIR.match(folder.parent.name) else folder
    patient = Patient(id=patient_dir.name)
    study = Study(uid=str(folder), description=folder.name, source=folder)
    series = Series(uid=str(folder))
    return _Found(ref, ("path", str(patient_dir)), patient, str(folder), study, str(folder),
                  series, hints.label)


# ------------------------------------------------------------------------ assembling


def _assemble(found: list[_Found], errors: list[FileError]) -> LoadResult:
    patients: dict[tuple[str, str], Patient] = {}
    studies: dict[tuple, Study] = {}
    series_map: dict[tuple, Series] = {}
    labels: dict[int, list[str | None]] = {}
    order: dict[int, int] = {}
    by_sop: dict[str, ImageRef] = {}
    for item in found:
        ref = item.ref
        uid = ref.sop_instance_uid
        if uid and uid in by_sop:
            kept = by_sop[uid]
            log.info("%s: duplicate SOP Instance UID, already loaded from %s; dropped",
                     file_ref(ref.path), file_ref(kept.path))
            kept.warnings.append(f"duplicate SOP Instance UID also in {ref.path.name}")
            continue
        if uid:
            by_sop[uid] = ref
        patient = patients.setdefault(item.patient_key, item.patient)
        study_key = (item.patient_key, item.study_key)
        study = studies.get(study_key)
        if study is None:
            study = studies[study_key] = item.study
            order[id(study)] = len(order)
            patient.studies.append(study)
        labels.setdefault(id(study), []).append(item.label)
        series_key = (*study_key, item.series_key)
        series = series_map.get(series_key)
        if series is None:
            series = series_map[series_key] = item.series
            order[id(series)] = len(order)
            study.series.append(series)
        series.images.append(ref)

    for patient in patients.values():
        for study in patient.studies:
            for series in study.series:
                series.images.sort(key=lambda r: (r.instance_number is None,
                                                  r.instance_number or 0,
                                                  _path_key(r.path)))
            study.series.sort(key=lambda s: (s.number is None, s.number or 0,
                                             order[id(s)]))
            _summarize_study(study, labels.get(id(study), []))
        patient.studies.sort(key=lambda s: (s.date == "", s.date, s.time, order[id(s)]))
    return LoadResult(patients=list(patients.values()), errors=errors)


def _summarize_study(study: Study, labels: list[str | None]) -> None:
    """Study body part = the images' common part (None if they disagree); label = the
    images' common path label."""
    parts = {im.body_part for im in study.images if im.body_part}
    if len(parts) == 1:
        study.body_part = parts.pop()
        sources = {im.body_part_source for im in study.images if im.body_part}
        study.body_part_source = "tag" if "tag" in sources else "path"
    distinct = set(labels)
    if len(distinct) == 1:
        study.label = distinct.pop()
