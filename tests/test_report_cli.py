"""``radview report``: the headless report on the shipped sample study, with a tiny test
bundle, without any bundle, de-identified, and its failure exits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from bundle_factory import make_bundle
from test_report import pdf_bytes_text, pdf_info, pdf_text

from viewer.cli import main
from viewer.report import sha256_file

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "resources" / "samples" / "upper_limb_dicom"
# The sample's fictitious patient (resources/samples/README.md).
SAMPLE_IDS = ["DEMO^HAND", "DEMO, HAND", "DEMO HAND", "RV-DEMO-0001", "19800101", "1980-01-01",
              "DEMO0001", "radview demo (FracAtlas", "IM0001.dcm", "upper_limb_dicom"]


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cli_bundle") / "tiny"
    make_bundle(d, extra={"metrics": {"valid_auc": 0.5}})
    return d


@pytest.fixture
def no_bundles(tmp_path, monkeypatch):
    """No user and no shipped bundles: default_bundle() finds nothing."""
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("inference.bundle.shipped_models_dir", lambda: tmp_path / "none")


def test_sample_study_with_a_bundle(qapp, tiny_bundle, tmp_path, capsys):
    # The shipped two-view hand study, scored by a tiny bundle: identity, score, both
    # views, heat maps, the bundle and the files' sha256.
    out = tmp_path / "report.pdf"
    rc = main(["report", str(SAMPLE), "-o", str(out), "--bundle", str(tiny_bundle),
               "--impression", "No acute fracture.", "--agreement", "agree"])
    assert rc == 0
    stdout = capsys.readouterr().out
    assert f"wrote {out}" in stdout and "2 views" in stdout
    text = " ".join(pdf_text(out).split())
    for expected in ["DEMO, HAND", "RV-DEMO-0001", "1980-01-01", "DEMO0001", "2026-01-01",
                     "XR HAND 2 VIEWS", "Body part: HAND — from DICOM tag",
                     "STUDY SCORE", "threshold 0.50", "IM0001.dcm", "IM0002.dcm",
                     "Agree with the AI result", "No acute fracture.", "test-bundle 0.0.1",
                     "Grad-CAM heat map", "valid_auc = 0.5"]:
        assert expected in text, expected
    for f in sorted(SAMPLE.glob("*.dcm")):
        assert sha256_file(f) in text
    assert "Title: Radiograph AI report — DEMO, HAND (RV-DEMO-0001)" in " ".join(
        pdf_info(out).split())


def test_sample_study_deidentified(qapp, tiny_bundle, tmp_path):
    out = tmp_path / "anon.pdf"
    assert main(["report", str(SAMPLE), "-o", str(out), "--bundle", str(tiny_bundle),
                 "--deidentify"]) == 0
    text, raw = pdf_text(out).lower(), pdf_bytes_text(out).lower()
    meta = (pdf_info(out) + pdf_info(out, "-meta")).lower()
    for item in SAMPLE_IDS:
        for where, blob in (("text", text), ("bytes", raw), ("metadata", meta)):
            assert item.lower() not in blob, f"{item} in the {where}"
    # The sample says BurnedInAnnotation NO: no burned-in caveat; the study is still there.
    assert "burned-in" not in text and "image 1" in text and "hand" in text


def test_no_bundle_available_still_exports_the_views(qapp, no_bundles, tmp_path):
    out = tmp_path / "r.pdf"
    assert main(["report", str(SAMPLE), "-o", str(out)]) == 0
    text = " ".join(pdf_text(out).split())
    assert "No AI result" in text and "no model bundle found" in text
    assert "IM0001.dcm" in text and "As displayed: W" in text


def test_headless_subprocess_without_display(tmp_path):
    # A real process with no display and no QT_QPA_PLATFORM: it must go offscreen itself.
    env = {k: v for k, v in os.environ.items()
           if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    out = tmp_path / "r.pdf"
    proc = subprocess.run([sys.executable, "-m", "viewer.cli", "report", str(SAMPLE), "-o",
                           str(out), "--no-ai"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "AI not requested (--no-ai)" in " ".join(pdf_text(out).split())


@pytest.mark.parametrize("args, code, message", [
    # The target's folder does not exist: exit 2 before any work, nothing written.
    (["-o", "{tmp}/missing/r.pdf", "--no-ai"], 2, "the folder does not exist"),
    # A bundle named on the command line that is not a bundle: exit 2.
    (["-o", "{tmp}/r.pdf", "--bundle", "{tmp}"], 2, "manifest.json"),
    # Wrong arguments: argparse's exit 2.
    (["--agreement", "maybe", "-o", "{tmp}/r.pdf"], 2, "invalid choice"),
])
def test_failures_exit_2_with_a_message(qapp, tmp_path, capsys, args, code, message):
    argv = ["report", str(SAMPLE), *(a.format(tmp=tmp_path) for a in args)]
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.pdf"))


def test_nothing_readable_exits_1(qapp, tmp_path, capsys):
    (tmp_path / "junk.dcm").write_bytes(b"not an image at all" * 10)
    assert main(["report", str(tmp_path), "-o", str(tmp_path / "r.pdf"), "--no-ai"]) == 1
    assert "no study with a readable image" in capsys.readouterr().err
    assert not (tmp_path / "r.pdf").exists()
