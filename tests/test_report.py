"""The PDF report: what it shows, de-identification, metadata, images, failure paths.

The Qt-free part (:mod:`viewer.report`) is tested on its data; the PDF itself
(:mod:`viewer.qt.report_pdf`) is read back with poppler (``pdftotext``, ``pdfinfo``,
``pdftoppm``) and as raw bytes, the way a reader and a leak-hunter would see it.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from bundle_factory import make_bundle
from dicom_factory import make_dicom, make_png, uid_for

from viewer import __version__, loader, pixels
from viewer.display import DisplayPipeline
from viewer.model import Patient, PixelSpec, Study, Window
from viewer.report import (
    AGREEMENTS,
    DISAGREE,
    NOT_REVIEWED,
    REMOVED,
    ReportError,
    ViewSnapshot,
    default_filename,
    gather,
    headline_metrics,
    identifiers,
    orient,
    scrub,
)
from viewer.viewstate import ViewState

REPO = Path(__file__).resolve().parent.parent

# A fictitious patient whose every identifier is a word found nowhere else in a report.
NAME, PID, BIRTH = "Quuxley^Zorbina", "PID-73519", "19610304"
ACCESSION, INSTITUTION = "ACC-55231", "Saint Elsewhere Clinic"
FORBIDDEN = ["Quuxley", "Zorbina", PID, BIRTH, "1961-03-04", ACCESSION, INSTITUTION,
             "Elsewhere"]


# ------------------------------------------------------------------------------ helpers


def need_poppler() -> None:
    if shutil.which("pdftotext") is None or shutil.which("pdftoppm") is None:
        pytest.skip("poppler-utils (pdftotext, pdfinfo, pdftoppm) is not installed")


def pdf_text(path: Path) -> str:
    """The text a reader copies out of the PDF, pages separated by form feeds."""
    need_poppler()
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True,
                         text=True, check=True, timeout=60)
    return out.stdout


def pdf_info(path: Path, *extra: str) -> str:
    need_poppler()
    return subprocess.run(["pdfinfo", *extra, str(path)], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def pdf_bytes_text(path: Path) -> str:
    """Everything in the file's bytes as text: raw, every Flate stream inflated, and both
    read as Latin-1 and as UTF-16 (the Info dictionary's strings are UTF-16BE)."""
    data = Path(path).read_bytes()
    blobs = [data]
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            blobs.append(zlib.decompress(match.group(1)))
        except zlib.error:
            pass  # DCT (JPEG) image data, not compressed text
    blob = b"\n".join(blobs)
    return "\n".join([blob.decode("latin-1"), blob.decode("utf-16-be", errors="ignore"),
                      blob[1:].decode("utf-16-be", errors="ignore")])


def render_pages(path: Path, out: Path, dpi: int = 50) -> list[np.ndarray]:
    """Each page as an RGB array, rendered by poppler."""
    need_poppler()
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(path), str(out / "page")],
                   check=True, timeout=120)
    pages = sorted(out.glob("page-*.png"))
    return [np.asarray(Image.open(p).convert("RGB")) for p in pages]


def heat_pixels(rgb: np.ndarray) -> int:
    """Pixels in heat-map colours (dark red … yellow) blended over gray: red well above
    blue, green not above red. Gray (and JPEG's faint chroma noise on it) never counts."""
    r, g, b = (rgb[..., i].astype(int) for i in range(3))
    return int(np.count_nonzero((r - b > 40) & (r >= g)))


def crop_mm(page: np.ndarray, rect_mm, dpi: int = 50, inset: int = 2) -> np.ndarray:
    x, y, w, h = (v / 25.4 * dpi for v in rect_mm)
    return page[int(y) + inset:int(y + h) - inset, int(x) + inset:int(x + w) - inset]


def smooth_pixels(rows: int, cols: int, seed: int = 0) -> np.ndarray:
    """Radiograph-like 12-bit stored values (a soft blob plus mild noise)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    blob = np.exp(-(((x - cols / 2) / (cols / 3)) ** 2 + ((y - rows / 2) / (rows / 3)) ** 2))
    img = 400 + 3000 * blob + rng.normal(0, 30, (rows, cols))
    return np.clip(img, 0, 4095).astype(np.int64)


def write_study(folder: Path, count: int = 2, *, rows: int = 300, cols: int = 240,
                burned_in: str | None = "NO") -> Path:
    """A DX study of the fictitious patient, in a folder named after the patient (a
    classic way identifiers leak into reports through file paths)."""
    for i in range(1, count + 1):
        extra = {"InstitutionName": INSTITUTION}
        if burned_in is not None:
            extra["BurnedInAnnotation"] = burned_in
        make_dicom(folder / f"Quuxley_Zorbina_{i}.dcm", rows=rows, cols=cols,
                   pixels=smooth_pixels(rows, cols, i), patient_name=NAME, patient_id=PID,
                   patient_birth_date=BIRTH, accession=ACCESSION, body_part="WRIST",
                   view_position="PA", instance_number=i, sop_uid=uid_for("report", i),
                   windows=[(2000, 4000, "BONE")], study_description="XR WRIST Quuxley",
                   extra=extra)
    return folder


def snapshots(folder: Path, *, cams: bool = False, states=None):
    """(study, patient, snapshots) of the first study under ``folder``."""
    result = loader.scan([folder])
    study = result.studies[0]
    patient = next(p for p in result.patients if study in p.studies)
    snaps = []
    for i, ref in enumerate(study.images):
        decoded = pixels.decode(ref)
        pipeline = DisplayPipeline(decoded.stored, decoded.spec)
        cam = None
        if cams:
            h, w = decoded.stored.shape
            cam = np.zeros((h, w), np.float32)
            cam[: h // 2, : w // 2] = 1.0  # hot top-left quarter
        state = states[i] if states else None
        snaps.append(ViewSnapshot(ref, pipeline, state, cam))
    return study, patient, snaps


def fake_result(snaps, probabilities, *, threshold=0.5, supported=True):
    """A StudyResult as the engine makes it, for the views in ``snaps``."""
    from inference.engine import ImageResult, StudyResult

    images = [ImageResult(str(s.ref.path), "WRIST", "tag", None,
                          p if supported else None, s.cam if supported else None)
              for s, p in zip(snaps, probabilities, strict=True)]
    if not supported:
        return StudyResult("CHEST", "tag", False, "not supported by this model: CHEST", None,
                           None, None, None, [], images)
    score = float(np.mean(probabilities))
    label = "abnormal" if score >= threshold else "normal"
    return StudyResult("WRIST", "tag", True, None, "mura", score, label, threshold,
                       ["low router confidence (0.42)"], images)


def all_strings(obj) -> list[str]:
    """Every string inside a (nested) dataclass, list, tuple or dict."""
    if isinstance(obj, str):
        return [obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return [s for f in dataclasses.fields(obj) for s in all_strings(getattr(obj, f.name))]
    if isinstance(obj, dict):
        return [s for k, v in obj.items() for s in all_strings(k) + all_strings(v)]
    if isinstance(obj, (list, tuple)):
        return [s for item in obj for s in all_strings(item)]
    return []


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("report_bundle") / "tiny"
    make_bundle(d, extra={"metrics": {"valid_auc": 0.873, "valid_kappa": 0.61}})
    return d


@pytest.fixture
def study_dir(tmp_path) -> Path:
    return write_study(tmp_path / "Quuxley_Zorbina_PID-73519")


# ---------------------------------------------------------------------- Qt-free parts

_BLOCK_QT = """
import importlib, importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('PySide6', 'shiboken6') or name.startswith('viewer.qt'):
            raise ImportError('blocked in the Qt-free check: ' + name)
        return None
sys.meta_path.insert(0, Block())
"""


@pytest.mark.parametrize("module", ["viewer.report", "viewer.cli.report"])
def test_report_modules_import_without_qt(module):
    # The report's data and the CLI's parsing are Qt-free; only painting needs Qt.
    out = subprocess.run([sys.executable, "-c", _BLOCK_QT + f"import {module}; print('ok')"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("rotation, flip_h, flip_v", [
    (0, False, False),   # as acquired: unchanged
    (90, False, False),  # one quarter turn clockwise
    (180, False, False),
    (270, False, False),
    (0, True, False),    # mirror left-right
    (0, False, True),    # mirror top-bottom
    (90, True, False),   # flip first, then rotate (the viewer's order)
    (270, False, True),
])
def test_orient_matches_the_viewers_geometry(rotation, flip_h, flip_v):
    # The report must show what the viewer's transform shows, pixel for pixel: map each
    # pixel centre through ViewState.matrix (zoom 1) and compare.
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    state = ViewState(image_size=(4, 3), rotation=rotation, flip_h=flip_h, flip_v=flip_v,
                      zoom=1.0)
    out = orient(image, state)
    widget = state.rotated_size()
    assert out.shape == (widget[1], widget[0])
    for y in range(3):
        for x in range(4):
            wx, wy = state.to_widget((x, y), widget)
            assert out[int(np.floor(wy)), int(np.floor(wx))] == image[y, x]


def _pipeline(rows=40, cols=60):
    spec = PixelSpec(rows=rows, columns=cols, bits_allocated=16, bits_stored=12,
                     high_bit=11, windows=[Window(2048, 4096, "FULL")])
    stored = np.tile(np.linspace(0, 4095, cols).astype(np.uint16), (rows, 1))
    return DisplayPipeline(stored, spec)


def _ref(tmp_path, name="a.dcm"):
    from viewer.model import ImageRef

    path = tmp_path / name
    path.write_bytes(b"not really dicom, only hashed")
    return ImageRef(path=path, kind="image", spec=PixelSpec(rows=40, columns=60))


def test_views_are_gathered_with_the_readers_window_invert_and_orientation(tmp_path):
    pipeline = _pipeline()
    state = ViewState(image_size=(60, 40))
    state.set_window(Window(1000, 500, "Custom"), "Custom")
    state.set_invert(True)
    state.rotate(90)
    study = Study(uid="s", date="20240102")
    data = gather(study, None, [ViewSnapshot(_ref(tmp_path), pipeline, state)])
    im = data.images[0]
    expected = orient(pipeline.render(window=Window(1000, 500), invert=True), state)
    assert np.array_equal(im.displayed, expected)
    assert im.displayed.shape == (60, 40)  # rotated: rows and columns swap
    assert im.window_text == "W 500 / L 1000 (Custom), inverted"
    assert im.orientation_text == "rotated 90° clockwise"
    assert im.overlay is None  # no CAM, no overlay
    # Without a state: the default preset, as acquired (what `radview report` shows).
    plain = gather(study, None, [ViewSnapshot(_ref(tmp_path), pipeline)]).images[0]
    assert np.array_equal(plain.displayed, pipeline.render())
    assert plain.window_text == "W 4096 / L 2048 (FULL)"
    assert plain.orientation_text == "as acquired"


def test_large_views_are_downscaled_and_the_overlay_keeps_their_geometry(tmp_path):
    # Huge images are area-averaged to what the page needs; the CAM follows exactly.
    pipeline = _pipeline(rows=400, cols=900)
    cam = np.zeros((400, 900), np.float32)
    cam[:, :450] = 1.0  # left half hot
    state = ViewState(image_size=(900, 400), flip_h=True)
    data = gather(Study(uid="s"), None, [ViewSnapshot(_ref(tmp_path), pipeline, state, cam)],
                  max_side=300)
    im = data.images[0]
    assert im.displayed.shape == (133, 300) and im.overlay.shape == (133, 300, 3)
    assert im.source_size == (900, 400)
    r, g, b = (im.overlay[..., i].astype(int) for i in range(3))
    colour = (r - b) > 40
    # Flipped left-right: the hot half is now on the right, the left half stays gray.
    assert colour[:, 160:].mean() > 0.9 and colour[:, :140].mean() < 0.01


@pytest.mark.parametrize("name, expected, absent", [
    # As stored, with spaces, "Family, Given", reversed, and each component.
    ("Quuxley^Zorbina", ["Quuxley^Zorbina", "Quuxley, Zorbina", "Zorbina Quuxley", "Quuxley",
                         "Zorbina"], []),
    # An anatomy word in a name is not scrubbed on its own (the body part must survive).
    ("Demo^Hand", ["Demo^Hand", "Demo"], ["Hand"]),
    # Ideographic groups after "=" are identifiers too.
    ("Yamada^Tarou=山田^太郎", ["Yamada", "Tarou"], []),
])
def test_identifiers_cover_the_forms_a_name_takes(name, expected, absent):
    found = identifiers(Patient(id="P1", name=name, birth_date="19610304"), None)
    for item in [*expected, "P1", "19610304", "1961-03-04"]:
        assert item in found
    for item in absent:
        assert item not in found


@pytest.mark.parametrize("text, result", [
    ("Seen with QUUXLEY today", f"Seen with {REMOVED} today"),  # case-insensitive
    ("Quuxley,   Zorbina: wrist", f"{REMOVED}: wrist"),  # whitespace-insensitive
    ("XR WRIST 2 VIEWS", "XR WRIST 2 VIEWS"),  # nothing to remove
    ("ID 12, seen 2012-12-05", f"ID {REMOVED}, seen 2012-12-05"),  # short: whole tokens
])
def test_scrub_removes_identifiers_from_free_text(text, result):
    patient = Patient(id="12" if "12" in text else PID, name=NAME, birth_date=BIRTH)
    assert scrub(text, identifiers(patient, None)) == result


@pytest.mark.parametrize("study, patient, deidentify, expected", [
    (Study(uid="s", date="20240102"), Patient(id="PID 7/35"), False,
     "radview_PID_7_35_20240102.pdf"),  # unsafe characters become "_"
    (Study(uid="s", date="20240102"), Patient(id="PID-1"), True,
     "radview_report_20240102.pdf"),  # de-identified: no ID in the name
    (Study(uid="s", date=""), None, False, "radview_report_20250607.pdf"),  # no date: today
])
def test_default_file_name(study, patient, deidentify, expected):
    import datetime as dt

    assert default_filename(study, patient, deidentify, dt.date(2025, 6, 7)) == expected


def test_deidentified_data_holds_no_identifier_in_any_text(study_dir):
    study, patient, snaps = snapshots(study_dir, cams=True)
    data = gather(study, patient, snaps, ai_result=fake_result(snaps, [0.7, 0.4]),
                  impression="Discussed with Mrs Zorbina QUUXLEY.", deidentify=True)
    texts = "\n".join(all_strings(data)).lower()
    for item in FORBIDDEN:
        assert item.lower() not in texts, item
    assert data.impression == f"Discussed with Mrs {REMOVED}."  # "Given Family" form
    assert [label for label, _ in data.files] == ["Image 1", "Image 2"]
    assert [im.label for im in data.images] == ["Image 1", "Image 2"]
    assert data.files_folder == ""
    assert data.default_filename == "radview_report_20240102.pdf"
    # Kept: the study date and the body part.
    assert ("Study date", "2024-01-02 10:15") in data.study_rows
    assert data.ai.body_part == "WRIST"


@pytest.mark.parametrize("burned_in, deidentify, caveat", [
    ("NO", True, False),    # the file says there is no burned-in text
    ("YES", True, True),    # it says there is: warn
    (None, True, True),     # it does not say: warn
    ("YES", False, False),  # identified report: nothing to warn about
])
def test_burned_in_annotation_caveat(tmp_path, burned_in, deidentify, caveat):
    folder = write_study(tmp_path / "s", count=1, burned_in=burned_in)
    study, patient, snaps = snapshots(folder)
    data = gather(study, patient, snaps, deidentify=deidentify)
    assert any("burned-in" in c for c in data.caveats) == caveat


def test_ai_summary_without_result_unsupported_and_at_threshold(study_dir):
    study, patient, snaps = snapshots(study_dir)
    # No result: the reason is carried into the report.
    ai = gather(study, patient, snaps, ai_reason="AI off: no bundle").ai
    assert not ai.scored and ai.reason == "AI off: no bundle"
    # Not supported: no score, the engine's reason, the body part still shown.
    ai = gather(study, patient, snaps,
                ai_result=fake_result(snaps, [0, 0], supported=False)).ai
    assert not ai.scored and "not supported" in ai.reason and ai.body_part == "CHEST"
    # A score exactly at the threshold is positive (the engine's rule).
    data = gather(study, patient, snaps, ai_result=fake_result(snaps, [0.4, 0.6]))
    assert data.ai.scored and data.ai.positive and data.ai.label == "abnormal"
    assert [im.probability for im in data.images] == [0.4, 0.6]


def test_unknown_agreement_is_refused(study_dir):
    study, patient, snaps = snapshots(study_dir)
    assert AGREEMENTS == ("agree", "disagree", "not reviewed")
    with pytest.raises(ValueError, match="agreement must be one of"):
        gather(study, patient, snaps, agreement="maybe")


HEADLINES = [
    # (bundle metrics, expected first rows of the report's "Headline metrics")
    # radview train's figures: validation AUROC and the rest with their 95% CIs come
    # before the bookkeeping (task, epochs, …) that used to fill the 12 rows.
    ({"fracture": {"task": "abnormality", "epochs": 7, "evaluated_on": "valid",
                   "study_auroc": {"value": 0.94246, "ci": [0.9176, 0.963]},
                   "ece_after": 0.0224}},
     [("fracture.evaluated_on", "valid"),
      ("fracture.study_auroc", "0.942 (95% CI 0.918–0.963)"),
      ("fracture.ece_after", "0.0224"), ("fracture.task", "abnormality"),
      ("fracture.epochs", "7")]),
    # A hand-written manifest with flat numbers: shown as they are.
    ({"valid_auc": 0.873, "valid_kappa": 0.61},
     [("valid_auc", "0.873"), ("valid_kappa", "0.61")]),
    # A value without an interval is still a number.
    ({"router": {"accuracy": {"value": 0.9234}}}, [("router.accuracy", "0.923")]),
]


@pytest.mark.parametrize(("metrics", "expected"), HEADLINES)
def test_headline_metrics_lead_with_the_validation_figures(metrics, expected):
    assert headline_metrics(metrics)[:len(expected)] == expected


def test_headline_metrics_are_capped():
    # A bundle with many models and figures keeps the report's table short.
    many = {f"m{i}": {"study_auroc": {"value": 0.5, "ci": [0.4, 0.6]}, "n_studies": 10}
            for i in range(10)}
    assert len(headline_metrics(many)) == 12


# --------------------------------------------------------------------------- the PDF


@pytest.fixture
def report_pdf(qapp, study_dir, bundle_dir, tmp_path):
    """Write a report with AI (CAMs), return (path, PdfResult, ReportData)."""
    from viewer.qt.report_pdf import image_max_side, write_pdf

    def write(name="r.pdf", cams=True, **kwargs):
        study, patient, snaps = snapshots(study_dir, cams=cams)
        kwargs.setdefault("ai_result", fake_result(snaps, [0.81, 0.35]))
        kwargs.setdefault("bundle", bundle_dir)
        data = gather(study, patient, snaps, max_side=image_max_side(), **kwargs)
        path = tmp_path / name
        return path, write_pdf(data, path), data

    return write


def test_pdf_shows_identity_ai_views_reviewer_bundle_and_hashes(report_pdf, bundle_dir):
    from inference.bundle import load_manifest
    from viewer.report import sha256_file

    path, result, data = report_pdf(impression="Distal radius intact.", agreement=DISAGREE)
    text = pdf_text(path)
    flat = " ".join(text.split())
    for expected in [
        "Quuxley, Zorbina", PID, "other", "1961-03-04", ACCESSION,
        INSTITUTION, "2024-01-02", "XR WRIST Quuxley",  # identity
        f"radview {__version__}", "Generated",  # generation time and version
        "ABNORMAL", "0.580", "threshold 0.50", "DICOM tag (Body Part Examined)",  # AI box
        "low router confidence", "0.810", "0.350",  # flags, per-view probabilities
        "Quuxley_Zorbina_1.dcm", "Quuxley_Zorbina_2.dcm",
        "Disagree with the AI result", "Distal radius intact.",  # reviewer
        "test-bundle 0.0.1", "none (random weights)", "valid_auc = 0.873",  # bundle
        "Grad-CAM heat map (jet", "W 4000 / L 2000 (BONE)",  # images
    ]:
        assert expected in flat, expected
    for file, sha in load_manifest(bundle_dir).weights_files:
        assert sha in flat and file in flat
    for ref in data.images:
        assert ref.label in flat
    for f in sorted(Path(data.files_folder).glob("*.dcm")):
        assert sha256_file(f) in flat
    assert result.pages == text.count("\f")


def test_every_page_says_research_use_only_and_is_numbered(report_pdf):
    path, result, _ = report_pdf()
    pages = [p for p in pdf_text(path).split("\f") if p.strip()]
    assert len(pages) == result.pages >= 3
    for number, page in enumerate(pages, start=1):
        assert "Research use only — not for diagnosis" in page
        assert f"Page {number} of {result.pages}" in page


def test_metadata_title_creator_producer_pdfa(report_pdf):
    path, _, data = report_pdf()
    info = pdf_info(path)
    assert re.search(r"^Title:\s+Radiograph AI report — Quuxley, Zorbina \(PID-73519\)", info,
                     re.M)
    assert re.search(rf"^Creator:\s+radview {re.escape(__version__)}$", info, re.M)
    assert re.search(r"^Producer:\s+Qt 6", info, re.M)
    assert re.search(r"^PDF version:\s+1\.4$", info, re.M)
    assert re.search(r"^Page size:.*\(A4\)", info, re.M)
    xmp = pdf_info(path, "-meta")
    assert 'pdfaid:part="1"' in xmp and 'pdfaid:conformance="B"' in xmp
    assert "<dc:description>" in xmp and "research use only" in xmp
    # PDF/A: the XMP date is the Info dictionary's date, to the second.
    raw = path.read_bytes()
    info_date = re.search(rb"/CreationDate \(D:(\d{14})", raw).group(1).decode()
    xmp_date = re.search(r'xmp:CreateDate="([^"]+)"', xmp).group(1)
    assert re.sub(r"\D", "", xmp_date)[:14] == info_date


def test_deidentified_pdf_holds_no_identifier_in_text_bytes_or_metadata(report_pdf):
    path, _, data = report_pdf(impression="Called Ms Quuxley.", deidentify=True)
    text = pdf_text(path).lower()
    raw = pdf_bytes_text(path).lower()
    meta = (pdf_info(path) + pdf_info(path, "-meta")).lower()
    for item in FORBIDDEN:
        assert item.lower() not in text, f"{item} in the text"
        assert item.lower() not in raw, f"{item} in the file's bytes"
        assert item.lower() not in meta, f"{item} in the metadata"
    assert "image 1" in text and "de-identified" in text
    assert data.default_filename == "radview_report_20240102.pdf"


def test_heat_colours_appear_only_in_the_overlays(report_pdf, tmp_path):
    path, result, _ = report_pdf()
    pages = render_pages(path, tmp_path / "png")
    assert len(pages) == result.pages
    overlays = [p for p in result.images if p.kind == "overlay"]
    displayed = [p for p in result.images if p.kind == "displayed"]
    assert len(overlays) == len(displayed) == 2
    for placed in overlays:
        crop = crop_mm(pages[placed.page - 1], placed.rect_mm)
        # The CAM is hot in the top-left quarter: heat colours there, none bottom right.
        h, w = crop.shape[:2]
        assert heat_pixels(crop[: h // 2 - 2, : w // 2 - 2]) > 0.5 * (h // 2) * (w // 2)
        assert heat_pixels(crop[h // 2 + 2:, w // 2 + 2:]) == 0
    for placed in displayed:
        assert heat_pixels(crop_mm(pages[placed.page - 1], placed.rect_mm)) == 0


def test_without_cams_no_image_has_heat_colours(report_pdf, tmp_path):
    # No AI: the views are still shown (two per row), in gray only, and the AI section
    # says why there is no result.
    path, result, _ = report_pdf(cams=False, ai_result=None, ai_reason="AI off: no bundle",
                                 bundle=None)
    text = " ".join(pdf_text(path).split())
    assert "No AI result" in text and "Reason: AI off: no bundle" in text
    assert "No model bundle" in text
    pages = render_pages(path, tmp_path / "png")
    assert {p.kind for p in result.images} == {"displayed", "thumbnail"}
    for placed in result.images:
        assert heat_pixels(crop_mm(pages[placed.page - 1], placed.rect_mm, inset=0)) == 0


def test_four_large_views_stay_sharp_and_small(qapp, tmp_path):
    # 4 views of 2000 × 2500 (12-bit): embedded at 150–250 dpi, the file well under 5 MB.
    from viewer.qt.report_pdf import image_max_side, write_pdf

    folder = tmp_path / "big"
    for i in range(1, 5):
        make_dicom(folder / f"im{i}.dcm", rows=2500, cols=2000,
                   pixels=smooth_pixels(2500, 2000, i), sop_uid=uid_for("big", i),
                   instance_number=i, windows=[(2000, 4000)])
    study, patient, snaps = snapshots(folder, cams=True)
    data = gather(study, patient, snaps, ai_result=fake_result(snaps, [0.2, 0.4, 0.6, 0.8]),
                  max_side=image_max_side())
    result = write_pdf(data, tmp_path / "big.pdf")
    views = [p for p in result.images if p.kind in ("displayed", "overlay")]
    assert len(views) == 8
    assert all(150 <= p.dpi <= 250 for p in views), [round(p.dpi) for p in views]
    assert result.size < 5_000_000


def test_small_sources_are_enlarged_to_150_dpi(report_pdf):
    # A 240 × 300 image printed 9 cm tall would be ~85 dpi: it is enlarged smoothly.
    _, result, _ = report_pdf()
    views = [p for p in result.images if p.kind in ("displayed", "overlay")]
    assert views and all(p.dpi >= 150 for p in views)


# -------------------------------------------------------------------------- failures


@pytest.mark.parametrize("target, reason", [
    ("missing/r.pdf", "the folder does not exist"),
    ("a_file/r.pdf", "the parent is not a folder"),
    ("a_folder", "is a folder"),
])
def test_unwritable_target_is_a_clear_error_and_leaves_nothing(report_pdf, tmp_path, target,
                                                               reason):
    from viewer.qt.report_pdf import write_pdf

    (tmp_path / "a_file").write_text("x")
    (tmp_path / "a_folder").mkdir()
    _, _, data = report_pdf("first.pdf")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(ReportError) as err:
        write_pdf(data, tmp_path / target)
    assert err.value.reason == reason
    assert sorted(p.name for p in tmp_path.iterdir()) == before


@pytest.mark.parametrize("where", ["painting", "renaming"])
def test_failure_mid_write_keeps_the_old_report_and_no_temporary_file(
        report_pdf, tmp_path, monkeypatch, where):
    from viewer.qt import report_pdf as module

    path, _, data = report_pdf("report.pdf")
    old = path.read_bytes()
    before = sorted(p.name for p in tmp_path.iterdir())
    if where == "painting":
        def boom(self, im):
            raise ZeroDivisionError("painter failed on purpose")

        monkeypatch.setattr(module._Layout, "view_pair", boom)
        with pytest.raises(ZeroDivisionError):
            module.write_pdf(data, path)
    else:
        def no_rename(src, dst):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(module.os, "replace", no_rename)
        with pytest.raises(ReportError, match="No space left on device"):
            module.write_pdf(data, path)
    assert path.read_bytes() == old
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_image_folder_study_shows_the_folder_and_notes_unknown_burn_in(qapp, tmp_path):
    # PNG studies have no DICOM identity: the folder is their identity; de-identified, the
    # folder goes and the pixels may carry identifiers (nothing says they do not).
    from viewer.qt.report_pdf import write_pdf

    folder = tmp_path / "Quuxley_study"
    for i in (1, 2):
        make_png(folder / f"image{i}.png", rows=60, cols=80)
    study, patient, snaps = snapshots(folder)
    path = tmp_path / "r.pdf"
    write_pdf(gather(study, patient, snaps), path)
    assert str(folder) in "".join(pdf_text(path).split())
    write_pdf(gather(study, patient, snaps, deidentify=True), path)
    text = " ".join(pdf_text(path).split())
    assert "quuxley" not in text.lower() and "quuxley" not in pdf_bytes_text(path).lower()
    assert "image folder" in text and "burned-in identifiers" in text


def test_not_reviewed_is_the_default(report_pdf):
    path, _, data = report_pdf()
    assert data.agreement == NOT_REVIEWED
    text = " ".join(pdf_text(path).split())
    assert "Reviewer's assessment: Not reviewed" in text and "No impression entered." in text



@pytest.mark.parametrize("probabilities, says", [
    # Positive: the score (0.58) is at or above the threshold.
    ([0.81, 0.35], "it is at or above the threshold (0.58 vs 0.50), so the study is "
                   "labelled abnormal."),
    # Negative: the PDF said "labelled normal when the score is at or above the
    # threshold", the rule backwards.
    ([0.30, 0.20], "it is below the threshold (0.25 vs 0.50), so the study is labelled "
                   "normal."),
], ids=["positive", "negative"])
def test_pdf_states_the_labelling_rule_the_right_way_round(qapp, study_dir, bundle_dir,
                                                           tmp_path, probabilities, says):
    from viewer.qt.report_pdf import image_max_side, write_pdf

    study, patient, snaps = snapshots(study_dir)
    data = gather(study, patient, snaps, max_side=image_max_side(), bundle=bundle_dir,
                  ai_result=fake_result(snaps, probabilities))
    assert data.ai.rule_text.endswith(says)
    write_pdf(data, tmp_path / "rule.pdf")
    flat = " ".join(pdf_text(tmp_path / "rule.pdf").split())
    assert says in flat and "when the score is at or above" not in flat
