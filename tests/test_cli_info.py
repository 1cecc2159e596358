"""`radview info` and `radview render` (viewer.cli.info, viewer.cli.render), called as functions.

Output is captured with capsys; JSON is parsed; PNGs are read back and probed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from dicom_factory import (
    BASIC_TEXT_SR,
    default_pixels,
    make_dicom,
    make_mura_tree,
    make_png,
    uid_for,
)
from PIL import Image

from viewer.cli.info import main as info_main
from viewer.cli.render import main as render_main
from viewer.cli.render import parse_wl

MPEG4 = "1.2.840.10008.1.2.4.102"


def linear(x: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window to 0..255 (the reference for probes)."""
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * 255
    return np.clip(y, 0, 255)


# --------------------------------------------------------------------------------- info

@pytest.fixture
def mixed(tmp_path):
    """A folder with a DICOM study, a MURA tree, an SR document and garbage."""
    make_dicom(tmp_path / "dicom" / "IM1", body_part="WRIST", windows=[(2048, 4096, "FULL")])
    make_dicom(tmp_path / "dicom" / "IM2", instance_number=2, frames=2, sop_uid=uid_for("2"))
    make_dicom(tmp_path / "dicom" / "SR", pixel_data=False, sop_class_uid=BASIC_TEXT_SR,
               sop_uid=uid_for("sr"))
    make_mura_tree(tmp_path / "MURA", {"valid/XR_ELBOW/patient11186/study1_positive": 1})
    (tmp_path / "garbage").write_bytes(bytes(range(200)))
    return tmp_path


def test_info_json(mixed, capsys):
    # The JSON report: stable keys, values from the headers and paths, per-file errors.
    assert info_main([str(mixed), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "radview-info/1"
    assert doc["summary"] == {"patients": 2, "studies": 2, "series": 2, "images": 3,
                              "usable_images": 3, "errors": 2}
    by_id = {p["id"]: p for p in doc["patients"]}
    dcm = by_id["RV-TEST-001"]
    assert (dcm["name"], dcm["sex"], dcm["birth_date"]) == ("Test^Radview", "O", "19700101")
    [study] = dcm["studies"]
    assert (study["body_part"], study["body_part_source"], study["label"]) == (
        "WRIST", "tag", None)
    [series] = study["series"]
    assert (series["number"], series["modality"]) == (1, "DX")
    first, second = series["images"]
    assert set(first) == {
        "path", "kind", "sop_instance_uid", "instance_number", "modality", "view_position",
        "laterality", "body_part", "body_part_source", "rows", "columns", "bits_allocated",
        "bits_stored", "signed", "photometric", "frames", "transfer_syntax_uid",
        "transfer_syntax_name", "windows", "usable", "warnings", "error"}
    assert (first["rows"], first["columns"], first["bits_stored"], first["photometric"]) == (
        64, 64, 12, "MONOCHROME2")
    assert (first["transfer_syntax_uid"], first["transfer_syntax_name"]) == (
        "1.2.840.10008.1.2.1", "Explicit VR Little Endian")
    assert first["windows"] == [{"center": 2048.0, "width": 4096.0, "explanation": "FULL",
                                 "function": "LINEAR"}]
    assert second["frames"] == 2 and second["warnings"] == ["multi-frame: frame 1 of 2 shown"]
    mura = by_id["patient11186"]["studies"][0]
    assert (mura["body_part"], mura["body_part_source"], mura["label"]) == (
        "ELBOW", "path", "positive")
    errors = {e["path"].rsplit("/", 1)[-1]: e["reason"] for e in doc["errors"]}
    assert errors["SR"] == "no pixel data (SR document: Basic Text SR Storage)"
    assert "garbage" in errors


def test_info_text(mixed, capsys):
    # The human-readable report names everything the JSON has, in words.
    assert info_main([str(mixed)]) == 0
    out = capsys.readouterr().out
    assert "Patient RV-TEST-001  Test^Radview  sex O  born 1970-01-01" in out
    assert "body part WRIST (tag)" in out
    assert "64×64, 12 bits stored, MONOCHROME2, 2 frames, Explicit VR Little Endian " \
           "(1.2.840.10008.1.2.1)" in out
    assert "warning: multi-frame: frame 1 of 2 shown" in out
    assert "label positive (path)" in out
    assert "Files not used:" in out
    assert "no pixel data (SR document: Basic Text SR Storage)" in out
    assert out.strip().endswith("3 images (3 usable) in 2 studies of 2 patients; "
                                "2 files not used.")


EXIT_CASES = [
    # Only garbage: nothing could be read → 2.
    ("garbage", lambda d: (d / "g").write_bytes(b"\1" * 300), 2),
    # Only an image that cannot be shown (unsupported codec) → 2, and it is listed.
    ("codec", lambda d: make_dicom(d / "m", transfer_syntax=MPEG4,
                                   encapsulated_frames=[b"\0" * 16]), 2),
    # One usable image among errors → 0.
    ("one-good", lambda d: (make_dicom(d / "ok"), (d / "g").write_bytes(b"\1" * 300)), 0),
    # An empty folder → 2.
    ("empty", lambda d: None, 2),
]


@pytest.mark.parametrize("name,make,code", EXIT_CASES, ids=[c[0] for c in EXIT_CASES])
def test_info_exit_status(tmp_path, capsys, name, make, code):
    make(tmp_path)
    assert info_main([str(tmp_path), "--json"]) == code
    doc = json.loads(capsys.readouterr().out)
    if name == "codec":
        [im] = [im for p in doc["patients"] for st in p["studies"] for se in st["series"]
                for im in se["images"]]
        assert im["usable"] is False
        assert "MPEG-4 AVC/H.264" in im["error"] and MPEG4 in im["error"]


def test_info_json_has_no_nan(tmp_path, capsys):
    # An empty Window Width is NaN inside; the JSON says null (NaN is not JSON).
    make_dicom(tmp_path / "a", windows=[(40, 400)], extra={"WindowWidth": ""})
    info_main([str(tmp_path), "--json"])
    out = capsys.readouterr().out
    assert "NaN" not in out
    im = json.loads(out)["patients"][0]["studies"][0]["series"][0]["images"][0]
    assert im["windows"] == [{"center": 40.0, "width": None, "explanation": "",
                              "function": "LINEAR"}]


def test_info_bad_arguments(capsys):
    # No path: argparse's usage message and status 2, returned (no SystemExit).
    assert info_main([]) == 2
    assert "usage: radview info" in capsys.readouterr().err


# ------------------------------------------------------------------------------- render

def read_png(path):
    with Image.open(path) as im:
        assert im.mode == "L"
        return np.asarray(im)


def test_render_file_window(tmp_path, capsys):
    # Default preset = the file's first window: probe pixels against PS3.3's formula.
    src = make_dicom(tmp_path / "a.dcm", windows=[(1000, 1001, "MID")])
    out = tmp_path / "out.png"
    assert render_main([str(src), "-o", str(out)]) == 0
    got = read_png(out).astype(int)
    assert got.shape == (64, 64)
    expected = linear(default_pixels().astype(float), 1000, 1001)
    assert np.abs(got - expected).max() <= 1
    assert "default preset 'MID'" in capsys.readouterr().out


def test_render_wl_invert_and_negative_center(tmp_path):
    # --wl in modality units (after rescale); a negative center written both ways; --invert
    # flips the result.
    src = make_dicom(tmp_path / "ct.dcm", signed=True, rescale=(1, -1024, "HU"))
    hu = default_pixels(signed=True).astype(float) - 1024
    for args in (["--wl=-600,1500"], ["--wl", "-600,1500"]):
        out = tmp_path / f"out{len(args)}.png"
        assert render_main([str(src), "-o", str(out), *args]) == 0
        assert np.abs(read_png(out).astype(int) - linear(hu, -600, 1500)).max() <= 1
    inv = tmp_path / "inv.png"
    assert render_main([str(src), "-o", str(inv), "--wl=-600,1500", "--invert"]) == 0
    np.testing.assert_array_equal(read_png(inv), 255 - read_png(tmp_path / "out1.png"))


def test_render_png_as_saved(tmp_path):
    # A plain 8-bit PNG renders as saved (identity), so the output equals the input.
    src = make_png(tmp_path / "in.png")
    out = tmp_path / "out.png"
    assert render_main([str(src), "-o", str(out)]) == 0
    np.testing.assert_array_equal(read_png(out), read_png(src))


def test_render_preset_and_frame(tmp_path):
    # --preset picks by label (case-insensitive); --frame is 1-based.
    src = make_dicom(tmp_path / "mf.dcm", frames=3, windows=[(2048, 4096, "FULL")])
    out = tmp_path / "f3.png"
    assert render_main([str(src), "-o", str(out), "--frame", "3", "--preset", "full"]) == 0
    expected = linear(default_pixels(frames=3)[2].astype(float), 2048, 4096)
    assert np.abs(read_png(out).astype(int) - expected).max() <= 1


RENDER_FAIL_CASES = [
    # Bad --wl: argparse message naming the expected form.
    ("bad-wl", ["--wl", "abc"], "expected CENTER,WIDTH such as 40,400"),
    # Zero width makes no window.
    ("zero-width", ["--wl", "40,0"], "window width must be positive"),
    # --wl and --preset together are ambiguous.
    ("both", ["--wl", "40,400", "--preset", "Automatic"], "not allowed with argument"),
    # Unknown preset: the available labels are listed.
    ("preset", ["--preset", "nope"], "no preset 'nope'; available: 'Automatic', 'Full range'"),
    # Frame out of range.
    ("frame", ["--frame", "2"], "frame 2 requested; the file has 1 frame (1..1)"),
]


@pytest.mark.parametrize("name,args,message", RENDER_FAIL_CASES,
                         ids=[c[0] for c in RENDER_FAIL_CASES])
def test_render_failures(tmp_path, capsys, name, args, message):
    src = make_dicom(tmp_path / "a.dcm")
    out = tmp_path / "out.png"
    assert render_main([str(src), "-o", str(out), *args]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_render_unreadable_file_names_it(tmp_path, capsys):
    # An unsupported codec: the message names the file, the syntax and its UID.
    src = make_dicom(tmp_path / "m.dcm", transfer_syntax=MPEG4,
                     encapsulated_frames=[b"\0" * 16])
    assert render_main([str(src), "-o", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"radview render: {src}: unsupported transfer syntax MPEG-4")


def test_render_is_atomic(tmp_path, capsys):
    # A failed render leaves an existing output untouched and no temporary files behind;
    # a missing output folder is an error, not a traceback.
    out = tmp_path / "out.png"
    out.write_bytes(b"previous")
    garbage = tmp_path / "g.dcm"
    garbage.write_bytes(b"\1" * 400)
    assert render_main([str(garbage), "-o", str(out)]) == 2
    assert out.read_bytes() == b"previous"
    assert render_main([str(make_dicom(tmp_path / "a.dcm")), "-o",
                        str(tmp_path / "missing" / "o.png")]) == 2
    assert "the output folder does not exist" in capsys.readouterr().err
    assert render_main([str(tmp_path / "a.dcm"), "-o", str(out)]) == 0
    assert read_png(out).shape == (64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.dcm", "g.dcm", "out.png"]


@pytest.mark.parametrize("text,expected", [
    ("40,400", (40.0, 400.0)),  # the usual form
    ("-600,1500", (-600.0, 1500.0)),  # negative center (lung window)
    ("0.5,1.5", (0.5, 1.5)),  # decimals
])
def test_parse_wl(text, expected):
    assert parse_wl(text) == expected


def test_info_and_render_print_width_by_height(tmp_path, capsys):
    # A 32-row, 48-column image: the GUI's corner text says 48×32 (width×height); `info`
    # printed rows×columns (32×48). One convention everywhere.
    path = make_dicom(tmp_path / "wide.dcm", rows=32, cols=48)
    assert info_main([str(path)]) == 0
    assert "      48×32, 12 bits stored" in capsys.readouterr().out
    assert render_main([str(path), "-o", str(tmp_path / "wide.png")]) == 0
    assert "(48×32, " in capsys.readouterr().out
