"""Real DICOM files from pydicom's test data and pydicom-data, through loader, pixels and
the display pipeline, cross-checked with pydicom itself and with DCMTK.

No network: files come from the installed ``pydicom`` and ``pydicom-data`` packages
(``get_testdata_file(..., download=False)``); a missing file fails with the reason.
DCMTK's ``dcmj2pnm`` is the independent reference where a test says so (uncompressed
files only: free DCMTK has no JPEG 2000 decoder, and the J2K files are compared with their
uncompressed twins instead); those tests are skipped, with the reason, when it is not
installed (the CI installs it).
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array

from viewer.loader import scan
from viewer.model import ImageRef
from viewer.pixels import PixelError, decode

DCMJ2PNM = shutil.which("dcmj2pnm")
needs_dcmtk = pytest.mark.skipif(DCMJ2PNM is None,
                                 reason="DCMTK's dcmj2pnm is not installed (the CI has it)")


def data_file(name: str) -> Path:
    """Path of a pydicom / pydicom-data test file, never downloaded."""
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.fail(f"{name} is not available locally: install pydicom-data "
                    f"(pip install pydicom-data); tests never download")
    return Path(path)


def ref_of(name: str) -> ImageRef:
    result = scan([data_file(name)])
    assert result.errors == [], result.errors
    [ref] = result.images
    return ref


def stored(name: str, frame: int = 0) -> np.ndarray:
    return decode(ref_of(name), frame).stored


def display():
    """viewer.display, written concurrently: skip cleanly until it exists."""
    return pytest.importorskip("viewer.display", reason="viewer/display.py not written yet")


def dcmtk(tmp_path: Path, name: str, *options: str) -> np.ndarray:
    """Render ``name`` with dcmj2pnm to PGM and return the array."""
    out = tmp_path / f"{Path(name).stem}{len(options)}.pgm"
    run = subprocess.run([DCMJ2PNM, *options, str(data_file(name)), str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    with Image.open(out) as im:
        return np.asarray(im).astype(np.int64)


# ------------------------------------------------------------------------------ headers

HEADER_CASES = [
    # Chest CR, 15 bits stored, MONOCHROME1 (pydicom-data RG1).
    ("RG1_UNCR.dcm", (1955, 1841, 15, "MONOCHROME1", 1, False), "Explicit VR Little Endian"),
    # The same image JPEG 2000 lossless.
    ("RG1_J2KR.dcm", (1955, 1841, 15, "MONOCHROME1", 1, False),
     "JPEG 2000 Image Compression (Lossless Only)"),
    # Extremity (leg) CR, 10 bits stored, MONOCHROME1 (pydicom-data RG3).
    ("RG3_UNCR.dcm", (1760, 1760, 10, "MONOCHROME1", 1, False), "Explicit VR Little Endian"),
    ("RG3_J2KR.dcm", (1760, 1760, 10, "MONOCHROME1", 1, False),
     "JPEG 2000 Image Compression (Lossless Only)"),
    # Signed CT with rescale to HU.
    ("CT_small.dcm", (128, 128, 16, "MONOCHROME2", 1, True), "Explicit VR Little Endian"),
    # Multi-frame MR (10 frames).
    ("emri_small.dcm", (64, 64, 12, "MONOCHROME2", 10, False), "Explicit VR Little Endian"),
    # RGB secondary capture.
    ("SC_rgb.dcm", (100, 100, 8, "RGB", 1, False), "Explicit VR Little Endian"),
    # 12-bit JPEG Extended: fine at scan time (plugins claim it), see the decode test.
    ("JPEG-lossy.dcm", (1024, 256, 12, "MONOCHROME2", 1, False),
     "JPEG Extended (Process 2 and 4)"),
    # Palette colour, no File Meta Information (Implicit VR deduced).
    ("OT-PAL-8-face.dcm", (480, 640, 8, "PALETTE COLOR", 1, False),
     "Implicit VR Little Endian"),
    # Big endian multi-frame.
    ("emri_small_big_endian.dcm", (64, 64, 12, "MONOCHROME2", 10, False),
     "Explicit VR Big Endian"),
]


@pytest.mark.parametrize("name,dims,ts_name", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_headers(name, dims, ts_name):
    ref = ref_of(name)
    spec = ref.spec
    assert (spec.rows, spec.columns, spec.bits_stored, spec.photometric,
            spec.number_of_frames, spec.signed) == dims
    assert ref.transfer_syntax_name == ts_name
    assert ref.ok


def test_header_details():
    # Values the display pipeline depends on, read from real headers.
    ct = ref_of("CT_small.dcm").spec
    assert (ct.rescale_slope, ct.rescale_intercept) == (1.0, -1024.0)
    rg1 = ref_of("RG1_UNCR.dcm")
    assert [(w.center, w.width) for w in rg1.spec.windows] == [(15000, 30000)]
    assert (rg1.body_part, rg1.body_part_source) == ("CHEST", "tag")  # not a MURA part
    assert [(w.center, w.width) for w in ref_of("RG3_UNCR.dcm").spec.windows] == [(550, 1024)]
    # A real Modality LUT Sequence with a signed first value (SS -2048).
    mlut = ref_of("mlut_18.dcm").spec.modality_lut
    assert (mlut.first_mapped, mlut.bits, mlut.data.size) == (-2048, 16, 4096)
    # A real VOI LUT Sequence: 256 entries of 16 bits.
    [vlut] = ref_of("vlut_04.dcm").spec.voi_luts
    assert (vlut.first_mapped, vlut.bits, vlut.data.size) == (0, 16, 256)
    # Warnings said at scan time.
    assert "multi-frame: frame 1 of 10 shown" in ref_of("emri_small.dcm").warnings
    assert "colour image (RGB): shown as grayscale" in ref_of("SC_rgb.dcm").warnings
    assert ("no File Meta Information: transfer syntax taken to be Implicit VR Little Endian"
            in ref_of("OT-PAL-8-face.dcm").warnings)


FILE_ERROR_CASES = [
    # Comprehensive SR: no pixel data, named by SOP Class.
    ("test-SR.dcm", "no pixel data (SR document: Comprehensive SR Storage)"),
    # RT Plan.
    ("rtplan.dcm", "no pixel data (radiotherapy object: RT Plan Storage)"),
    # ECG waveform.
    ("waveform_ecg.dcm", "no pixel data (waveform: 12-lead ECG Waveform Storage)"),
]


@pytest.mark.parametrize("name,reason", FILE_ERROR_CASES, ids=[c[0] for c in FILE_ERROR_CASES])
def test_files_without_pixels(name, reason):
    result = scan([data_file(name)])
    assert result.images == []
    assert [e.reason for e in result.errors] == [reason]


def test_truncated_real_file():
    # pydicom's MR_truncated.dcm ends 62 bytes early inside the pixel data: refused at
    # scan time, and decode() gives the same reason.
    ref = ref_of("MR_truncated.dcm")
    assert ref.error == ("file is truncated: Pixel Data declares 8192 bytes but only 8130 "
                         "remain in the file")
    with pytest.raises(PixelError, match="file is truncated"):
        decode(ref)


@pytest.mark.skipif(importlib.util.find_spec("gdcm") is not None,
                    reason="GDCM is installed here, so JPEG-lossy.dcm decodes")
def test_12bit_jpeg_extended_gives_a_codec_message():
    # pydicom's 12-bit JPEG Extended file: Pillow cannot read 12-bit JPEG and
    # pylibjpeg-libjpeg fails on this file, although both claim the syntax. The failure
    # names the file, the syntax and UID, each plugin's reason, and what would decode it.
    ref = ref_of("JPEG-lossy.dcm")
    assert ref.ok  # precondition: the registry says a decoder is available
    with pytest.raises(PixelError) as info:
        decode(ref)
    message = str(info.value)
    assert message.startswith(str(data_file("JPEG-lossy.dcm")))
    assert "JPEG Extended (Process 2 and 4) (1.2.840.10008.1.2.4.51)" in message
    assert "pillow: Pillow does not support 'JPEG Extended' for samples with 12-bit" in message
    assert "install python-gdcm" in message


# ------------------------------------------------------------------------ stored values

LOSSLESS_PAIRS = [
    # Chest, 15-bit, JPEG 2000 lossless vs uncompressed.
    ("RG1_J2KR.dcm", "RG1_UNCR.dcm", 0),
    # Extremity, 10-bit.
    ("RG3_J2KR.dcm", "RG3_UNCR.dcm", 0),
    # 12-bit MR.
    ("MR2_J2KR.dcm", "MR2_UNCR.dcm", 0),
    # Signed 14-bit: J2K signedness handled.
    ("693_J2KR.dcm", "693_UNCR.dcm", 0),
    # Multi-frame through J2K, RLE, JPEG-LS and big endian: frame 5 everywhere.
    ("emri_small_jpeg_2k_lossless.dcm", "emri_small.dcm", 5),
    ("emri_small_RLE.dcm", "emri_small.dcm", 5),
    ("emri_small_jpeg_ls_lossless.dcm", "emri_small.dcm", 5),
    ("emri_small_big_endian.dcm", "emri_small.dcm", 5),
    # Signed 16-bit, implicit VR and RLE.
    ("MR_small_implicit.dcm", "MR_small.dcm", 0),
    ("MR_small_RLE.dcm", "MR_small.dcm", 0),
    # Colour J2K (YBR_RCT) vs RGB: identical luminance.
    ("US1_J2KR.dcm", "US1_UNCR.dcm", 0),
]


@pytest.mark.parametrize("compressed,reference,frame", LOSSLESS_PAIRS,
                         ids=[c[0] for c in LOSSLESS_PAIRS])
def test_lossless_equals_uncompressed(compressed, reference, frame):
    a, b = stored(compressed, frame), stored(reference, frame)
    assert a.dtype == b.dtype
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_J2KR.dcm", "CT_small.dcm",
                                  "693_UNCR.dcm", "emri_small.dcm", "MR2_UNCR.dcm"])
def test_stored_values_match_pydicom(name):
    # Where the header is clean, our masking agrees with pydicom's own correction.
    expected = pixel_array(str(data_file(name)), index=0, raw=True)
    np.testing.assert_array_equal(stored(name), expected)


def test_bits_stored_masking_on_real_data():
    # mlut_18.dcm: signed 12-bit data whose unused high bits are not sign extension
    # (raw values up to 4095). Precondition, then: ours equals the corrected values.
    path = str(data_file("mlut_18.dcm"))
    raw = pixel_array(path, raw=True, correct_unused_bits=False)
    corrected = pixel_array(path, raw=True)
    assert int(raw.max()) == 4095 and not np.array_equal(raw, corrected)
    out = stored("mlut_18.dcm")
    assert (int(out.min()), int(out.max())) == (-2048, 2047)
    np.testing.assert_array_equal(out, corrected)


def test_multiframe_frame_index():
    # Frame 7 of emri_small is pydicom's frame 7, decoded alone.
    expected = pixel_array(str(data_file("emri_small.dcm")), index=7, raw=True)
    np.testing.assert_array_equal(stored("emri_small.dcm", 7), expected)


@needs_dcmtk
@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm"])  # DCMTK reads no J2K
def test_stored_values_match_dcmtk(tmp_path, name):
    # DCMTK's unwindowed 16-bit output is a linear map of the stored values (inverted for
    # MONOCHROME1): fit it; a residual below one output step means every pixel agrees.
    ours = stored(name).astype(float).ravel()
    theirs = dcmtk(tmp_path, name, "--write-16-bit-pnm", "--no-windowing").astype(float).ravel()
    design = np.vstack([ours, np.ones_like(ours)]).T
    coef = np.linalg.lstsq(design, theirs, rcond=None)[0]
    slope, residual = coef[0], np.abs(design @ coef - theirs).max()
    assert slope < 0  # MONOCHROME1: DCMTK shows low values white
    assert residual < min(1.0, abs(slope) / 2)


# --------------------------------------------------------------------------- rendering

def render(name: str, preset_kind: str | None = None) -> tuple[np.ndarray, object]:
    dp = display()
    out = decode(ref_of(name))
    pipeline = dp.DisplayPipeline(out.stored, out.spec)
    if preset_kind is None:
        return pipeline.render(), pipeline
    preset = next(p for p in pipeline.presets if p.kind == preset_kind)
    return pipeline.render_preset(preset), pipeline


def test_rg3_bone_brighter_than_background():
    # MONOCHROME1 is inverted for display: the tibia shaft (high attenuation, low stored
    # values) is bright, the open-field air beside the leg dark, the collimated border
    # (stored 0) white, as on film.
    image, pipeline = render("RG3_UNCR.dcm")
    assert pipeline.default_preset.label == "Window 1"  # the file's 550/1024
    bone = image[400:800, 820:880].mean()
    air = image[300:700, 480:560].mean()
    assert bone > air + 100
    assert image[:100, :100].min() == 255


def test_rg1_spine_brighter_than_lungs():
    # The chest: mediastinum/spine bright, lungs darker.
    image, _ = render("RG1_UNCR.dcm")
    spine = image[400:1000, 830:900].mean()
    lungs = (image[400:700, 380:520].mean() + image[400:700, 1240:1380].mean()) / 2
    assert spine > lungs + 40


@needs_dcmtk
@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "RG3_UNCR.dcm"])  # DCMTK reads no J2K
def test_file_window_matches_dcmtk(tmp_path, name):
    # The default (the file's first window) against dcmj2pnm +Wi 1: at most 1 grey level
    # apart (rounding).
    image, _ = render(name)
    reference = dcmtk(tmp_path, name, "+Wi", "1")
    assert np.abs(image.astype(np.int64) - reference).max() <= 1


@needs_dcmtk
def test_voi_lut_matches_dcmtk(tmp_path):
    # vlut_04.dcm's VOI LUT Sequence against dcmj2pnm +Wl 1: identical.
    image, _ = render("vlut_04.dcm", "lut")
    np.testing.assert_array_equal(image, dcmtk(tmp_path, "vlut_04.dcm", "+Wl", "1"))


@needs_dcmtk
def test_modality_lut_matches_dcmtk(tmp_path):
    # mlut_18.dcm's Modality LUT (first value -2048), full range, against dcmj2pnm's
    # unwindowed output (min–max of the LUT output): at most 1 grey level apart.
    image, _ = render("mlut_18.dcm", "full")
    reference = dcmtk(tmp_path, "mlut_18.dcm", "--no-windowing")
    assert np.abs(image.astype(np.int64) - reference).max() <= 1
