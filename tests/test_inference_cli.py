"""``radview predict`` and viewer.analysis: the JSON/CSV contracts on generated studies.

Runs in-process (``viewer.cli.predict.main``) so torch is imported once; bundles are tiny ResNet-18
ones with random weights, the shipped and user bundle folders are redirected to empty
temporary ones so that a bundle installed on the machine never leaks in.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_factory import make_bundle, rewrite_manifest
from dicom_factory import DEFAULT_MURA_LAYOUT, make_dicom, make_mura_tree, uid_for
from PIL import Image

import inference.bundle as bundle_mod
from viewer import cli, loader
from viewer.analysis import build_inputs, model_input
from viewer.cli.predict import CSV_COLUMNS
from viewer.cli.predict import main as predict_main
from viewer.display import DisplayPipeline
from viewer.pixels import decode

# The routing keys (body_part_uncertain, router_*) and the study flag / doubt band /
# aggregation and per-image level / boxes (issue 14) were added to the schema.
STUDY_KEYS = {"study", "body_part", "body_part_source", "supported", "reason", "model",
              "score", "label", "threshold", "flags", "images", "body_part_uncertain",
              "router_part", "router_confidence", "flag", "flag_text", "doubt_threshold",
              "aggregation"}
IMAGE_KEYS = {"path", "body_part", "probability", "cam", "level", "boxes"}


@pytest.fixture(autouse=True)
def no_installed_bundles(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setattr(bundle_mod, "shipped_models_dir",
                        lambda: tmp_path_factory.mktemp("shipped"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("bundle") / "b")


@pytest.fixture
def mura(tmp_path) -> Path:
    # The default MURA layout (4 studies, 5 images) plus one broken PNG in a study.
    root = make_mura_tree(tmp_path / "mura", rows=48, cols=40)
    broken = root / "train/XR_WRIST/patient00001/study1_positive/image9.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    return root


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = predict_main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_matches_the_contract(mura, bundle, capsys):
    code, out, err = run(capsys, str(mura), "--bundle", str(bundle.path))
    assert code == 0
    doc = json.loads(out)
    assert set(doc) == {"schema", "bundle", "studies", "errors"}
    assert doc["schema"] == "radview-predict/1"
    assert doc["bundle"] == {"name": "test-bundle", "version": "0.0.1"}
    assert len(doc["studies"]) == len(DEFAULT_MURA_LAYOUT)
    for study in doc["studies"]:
        assert set(study) == STUDY_KEYS
        assert study["supported"] is True and study["reason"] is None
        assert study["body_part_source"] == "path"
        assert Path(study["study"]).is_dir()  # image studies are named by their folder
        probs = [im["probability"] for im in study["images"]]
        assert all(set(im) == IMAGE_KEYS and 0 <= im["probability"] <= 1
                   and im["cam"] is None for im in study["images"])
        assert study["score"] == pytest.approx(np.mean(probs), abs=1e-5)
        assert study["label"] in ("abnormal", "normal") and study["threshold"] == 0.5
    parts = sorted(s["body_part"] for s in doc["studies"])
    assert parts == ["FINGER", "HAND", "WRIST", "WRIST"]
    # The broken file is reported, with the reason, and did not stop the batch.
    assert len(doc["errors"]) == 1
    assert doc["errors"][0]["path"].endswith("image9.png")
    assert "PNG" in doc["errors"][0]["error"]
    assert err == ""  # stderr is not a terminal: no progress line


def test_csv_one_row_per_image(mura, bundle, capsys):
    code, out, err = run(capsys, str(mura), "--bundle", str(bundle.path), "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == sum(DEFAULT_MURA_LAYOUT.values())
    wrist = [r for r in rows if "study1_positive" in r["study"]]
    assert len(wrist) == 2 and wrist[0]["score"] == wrist[1]["score"]  # study repeated
    assert all(r["supported"] == "true" and r["cam"] == "" for r in rows)
    assert "image9.png" in err  # errors go to stderr in CSV mode


def test_cams_are_written_as_colour_overlays(mura, bundle, tmp_path, capsys):
    cams = tmp_path / "cams"
    code, out, _ = run(capsys, str(mura), "--bundle", str(bundle.path), "--cams", str(cams))
    assert code == 0
    images = [im for s in json.loads(out)["studies"] for im in s["images"]]
    written = sorted(cams.glob("*.png"))
    assert len(written) == len(images) == 5
    for im in images:
        with Image.open(im["cam"]) as png:
            assert png.mode == "RGB" and png.size == (40, 48)  # the image's own size
    assert not list(cams.glob(".*"))  # no temporary files left


def test_no_bundle_exits_2_with_the_search_path(mura, capsys):
    code, out, err = run(capsys, str(mura))
    assert code == 2 and out == ""
    assert "no model bundle found; pass --bundle DIR (searched: " in err


def test_refused_bundle_exits_2(mura, bundle, tmp_path, capsys):
    import shutil

    path = shutil.copytree(bundle.path, tmp_path / "b")
    rewrite_manifest(path, lambda d: d["abnormality_models"]["mura"].update(sha256="1" * 64))
    code, out, err = run(capsys, str(mura), "--bundle", str(path))
    assert code == 2 and "refused" in err and "sha256 mismatch" in err


def test_default_bundle_from_the_user_folder(mura, bundle, capsys, monkeypatch, tmp_path):
    import shutil

    data = tmp_path / "userdata"
    shutil.copytree(bundle.path, data / "models" / "installed")
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(data))
    code, out, _ = run(capsys, str(mura))
    assert code == 0 and json.loads(out)["bundle"]["name"] == "test-bundle"


def test_nothing_scored_exits_1(tmp_path, bundle, capsys):
    # A chest study: found and read, but not covered by the bundle; no score anywhere.
    make_dicom(tmp_path / "chest" / "1.dcm", body_part="CHEST")
    code, out, _ = run(capsys, str(tmp_path / "chest"), "--bundle", str(bundle.path))
    assert code == 1
    (study,) = json.loads(out)["studies"]
    assert study["supported"] is False and study["score"] is None and study["label"] is None
    assert study["reason"].startswith("not supported by this model: CHEST")
    assert study["images"][0]["probability"] is None
    # Nothing readable at all.
    (tmp_path / "empty").mkdir()
    assert run(capsys, str(tmp_path / "empty"), "--bundle", str(bundle.path))[0] == 1


def test_dispatch_from_the_radview_command(tmp_path, bundle, capsys):
    make_dicom(tmp_path / "d" / "1.dcm", body_part="THUMB")
    code = cli.main(["predict", str(tmp_path / "d"), "--bundle", str(bundle.path),
                     "--no-progress"])
    assert code == 0
    study = json.loads(capsys.readouterr().out)["studies"][0]
    assert (study["body_part"], study["body_part_source"]) == ("FINGER", "tag")


def test_bad_arguments_exit_2(capsys):
    assert predict_main(["--format", "xml", "x"]) == 2
    assert predict_main([]) == 2


# --------------------------------------------------------------------- viewer.analysis


def test_model_input_is_the_default_display_window(tmp_path):
    # MONOCHROME1 with a file window: the model sees what the viewer opens the image with
    # (inverted, file window), not the stored values.
    pixels = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    path = make_dicom(tmp_path / "m1.dcm", photometric="MONOCHROME1", pixels=pixels,
                      windows=[(1024, 2048, "BONE")])
    (ref,) = loader.scan([path]).images
    decoded = decode(ref)
    pipeline = DisplayPipeline(decoded.stored, decoded.spec)
    expected = pipeline.render_preset(pipeline.default_preset)
    got = model_input(decoded)
    assert got.dtype == np.uint8 and got.shape == (64, 64)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(model_input(pipeline), expected)
    assert got[0, 0] == 255  # stored 0 is white in MONOCHROME1


def test_build_inputs_parts_and_errors(tmp_path):
    # A DICOM with a tag inside a MURA folder keeps both parts; an unreadable image is an
    # error with its reason, not an exception.
    study_dir = tmp_path / "XR_HAND" / "patient00001" / "study1"
    make_dicom(study_dir / "a.dcm", body_part="WRIST", sop_uid=uid_for("a"))
    make_dicom(study_dir / "b.dcm", sop_uid=uid_for("b"), instance_number=2,
               pixel_bytes=b"\0" * 10)
    (study,) = loader.scan([study_dir]).studies
    inputs, errors = build_inputs(study)
    assert [(i.tag_part, i.path_part) for i in inputs] == [("WRIST", "HAND")]
    assert len(errors) == 1 and errors[0].path.name == "b.dcm" and errors[0].reason


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_exits_2(mura, bundle, capsys):
    code, out, err = run(capsys, str(mura), "--bundle", str(bundle.path), "--device", "cuda")
    assert code == 2 and out == "" and "no CUDA device is available" in err
