"""AI results as DICOM (viewer.dicom_results): SR + SC built with highdicom, validated by
dciodvfy (dicom3tools), read back by DCMTK's dsrdump and by radview's own loader."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from bundle_factory import make_bundle
from dicom_factory import make_dicom
from dicom_peers import dciodvfy_errors, need
from pydicom import dcmread

from viewer import loader
from viewer.analysis import build_inputs
from viewer.dicom_results import (
    BANNER,
    SC_SERIES_NUMBER,
    SR_SERIES_NUMBER,
    ExportError,
    burn_in,
    findings_for,
    outcome_from,
    read_sr,
    write_results,
)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A two-view HAND study scored by a tiny random bundle, with one box on view 1."""
    from inference.engine import Engine

    root = tmp_path_factory.mktemp("results")
    for i in range(2):
        make_dicom(root / "src" / f"IM{i + 1}.dcm", rows=96, cols=80, body_part="HAND",
                   instance_number=i + 1, windows=[(2048, 4096)], laterality="L",
                   pixels=(np.arange(96 * 80).reshape(96, 80) * (i + 1)) % 4096)
    bundle = make_bundle(root / "bundle")
    study = loader.scan([root / "src"]).studies[0]
    inputs, errors = build_inputs(study)
    assert not errors and len(inputs) == 2
    result = Engine(bundle, "cpu").analyze(inputs, cams=True)
    assert result.supported
    outcome = outcome_from(study, inputs, result, bundle,
                           boxes={inputs[0].key: [(5.0, 6.0, 40.0, 50.0)]})
    paths = write_results(outcome, root / "out")
    return root, study, outcome, paths


def test_files_written_atomically_sr_first(scored):
    root, study, outcome, paths = scored
    assert [p.name[:3] for p in paths] == ["SR_", "SC_", "SC_"]
    assert all(p.parent.name == study.uid for p in paths)
    # no temporary file is left behind
    assert not [p for p in (root / "out").rglob("*") if p.name.startswith(".")]


def test_sr_is_same_patient_and_study_new_series(scored):
    _, study, outcome, paths = scored
    sr = dcmread(paths[0])
    src = outcome.views[0].source
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert (sr.PatientID, sr.StudyInstanceUID) == (src.PatientID, src.StudyInstanceUID)
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID
    assert sr.SeriesNumber == SR_SERIES_NUMBER and sr.Manufacturer == "radview"
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"


@pytest.mark.parametrize("index", [0, 1, 2], ids=["SR", "SC view 1", "SC view 2"])
def test_dciodvfy_finds_no_error(scored, index):
    # dicom3tools checks every module of the IOD; warnings (our private 99RADVIEW codes,
    # an empty type 2 attribute) are allowed, errors are not.
    assert dciodvfy_errors(scored[3][index]) == []


def test_dsrdump_reads_the_report(scored):
    _, _, outcome, paths = scored
    out = subprocess.run([need("dsrdump"), str(paths[0])], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    # device observer = radview + bundle name/version, algorithm identification with sha256
    assert '"Device Observer Name")="radview"' in text
    assert '"Device Observer Model Name")="test-bundle"' in text
    assert '"Algorithm Version")="0.0.1"' in text
    assert "weights sha256" in text and "Research use only" in text
    # per view probability + operating point + label, the box as a POLYLINE on view 1
    assert text.count('"Probability of abnormal")') == 3  # 2 views + study
    assert text.count('"Operating point (decision threshold)")') == 3
    assert "SCOORD" in text and "POLYLINE" in text


def test_sr_read_back_matches_the_engine(scored):
    _, _, outcome, paths = scored
    finding = read_sr(paths[0])
    assert finding.study_uid == outcome.study_uid
    assert finding.score == pytest.approx(outcome.score, abs=1e-6)
    assert finding.label == outcome.label and finding.threshold == outcome.threshold
    first = finding.views[outcome.views[0].source.SOPInstanceUID]
    assert first.probability == pytest.approx(outcome.views[0].probability, abs=1e-6)
    assert first.boxes == [[(5, 6), (40, 6), (40, 50), (5, 50), (5, 6)]]  # closed
    assert finding.views[outcome.views[1].source.SOPInstanceUID].boxes == []


def test_sc_is_derived_rgb_with_banner(scored):
    _, _, outcome, paths = scored
    sc = dcmread(paths[1])
    src = outcome.views[0].source
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert list(sc.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert sc.BurnedInAnnotation == "YES" and sc.SeriesNumber == SC_SERIES_NUMBER
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert sc.StudyInstanceUID == src.StudyInstanceUID
    assert (sc.Rows, sc.Columns, sc.SamplesPerPixel) == (96, 80, 3)
    px = sc.pixel_array
    # the box outline is yellow at its left edge, mid-height (below the banner)
    assert tuple(px[45, 5]) == (255, 255, 0)


def test_burn_in_banner_is_drawn_in_red():
    gray = np.full((400, 600), 200, np.uint8)
    rgb = burn_in(gray, None)
    band = rgb[:20]
    assert (band[..., 0] > 200).sum() > 50 and (band[..., 1] < 120).sum() > 50  # red text
    assert BANNER.startswith("RESEARCH USE ONLY")
    assert (rgb[200:] == 200).all()  # below the banner: the image untouched


def test_reopening_shows_findings_and_never_scores_a_capture(scored, tmp_path):
    # A folder holding the sources, radview's SR and its SCs, as after a PACS retrieval.
    import shutil

    root, _, outcome, paths = scored
    shutil.copytree(root / "src", tmp_path / "study")
    for p in paths:
        shutil.copy(p, tmp_path / "study" / p.name)
    result = loader.scan([tmp_path / "study"])
    assert result.errors == []  # the SR is not an error: it is listed as a report
    assert [p.name for p in result.ai_reports] == [paths[0].name]
    study = result.studies[0]
    assert sorted(im.ai_capture for im in study.images) == [False, False, True, True]
    inputs, _ = build_inputs(study)
    assert len(inputs) == 2  # the captures are never new views
    findings = findings_for(result)[study.uid]
    for im in study.images:
        if not im.ai_capture:
            assert findings.views[im.sop_instance_uid].label == outcome.view_label(
                next(v for v in outcome.views if v.path.name == im.path.name))
    assert "research use only" in findings.summary()


def test_plain_images_cannot_be_exported(tmp_path):
    from PIL import Image

    from inference.engine import Engine

    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "XR_HAND_a.png")
    bundle = make_bundle(tmp_path / "bundle", parts=["HAND"])
    study = loader.scan([tmp_path / "XR_HAND_a.png"]).studies[0]
    inputs, _ = build_inputs(study)
    result = Engine(bundle, "cpu").analyze(inputs, override_part="HAND")
    with pytest.raises(ExportError, match="only DICOM images"):
        outcome_from(study, inputs, result, bundle)
