"""What the image view must say over an image shown partially or altered (issue 12 §1):
:func:`viewer.display.view_marks`, on real files (Qt-free)."""

from __future__ import annotations

from pathlib import Path

import pytest
from dicom_factory import make_dicom, make_png
from pydicom.data import get_testdata_file

from viewer.display import view_marks
from viewer.loader import scan
from viewer.pixels import decode


def data_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.fail(f"{name} is not available locally: pip install pydicom-data")
    return Path(path)


def marks_of(path: Path) -> tuple[list[str], list[str]]:
    """(marks from the header alone, marks once decoded)."""
    [ref] = scan([path]).images
    return view_marks(ref), view_marks(ref, decode(ref))


CASES = [
    # Multi-frame MR, 10 frames: only frame 1 is shown.
    (lambda tmp: data_file("emri_small.dcm"), ["frame 1 of 10"], ["frame 1 of 10"]),
    # JPEG Baseline (a lossy transfer syntax) whose header gives the ratio, 17.401 (three
    # significant digits shown); YBR colour shown as its luminance.
    (lambda tmp: data_file("SC_rgb_jpeg_dcmtk.dcm"),
     ["LOSSY 17.4:1", "colour shown as grey"], ["LOSSY 17.4:1", "colour shown as grey"]),
    # Lossy Image Compression 01 with its ratio, stored uncompressed (a lossy image that
    # was decompressed since): still marked, with the ratio.
    (lambda tmp: make_dicom(tmp / "lossy.dcm", extra={"LossyImageCompression": "01",
                                                      "LossyImageCompressionRatio": "10"}),
     ["LOSSY 10:1"], ["LOSSY 10:1"]),
    # Two lossy steps: both ratios.
    (lambda tmp: make_dicom(tmp / "lossy2.dcm",
                            extra={"LossyImageCompression": "01",
                                   "LossyImageCompressionRatio": ["10", "2.5"]}),
     ["LOSSY 10:1, 2.5:1"], ["LOSSY 10:1, 2.5:1"]),
    # Lossy Image Compression 00 and a lossless syntax: nothing to say.
    (lambda tmp: make_dicom(tmp / "plain.dcm", extra={"LossyImageCompression": "00"}),
     [], []),
    # A JPEG 2000 *lossless* file: no mark.
    (lambda tmp: data_file("MR_small_jp2klossless.dcm"), [], []),
    # A JPEG file is lossy.
    (lambda tmp: make_png(tmp / "photo.jpg"), ["LOSSY"], ["LOSSY"]),
    # An RGB PNG whose channels differ: grey only once decoded (Pillow's header has no
    # photometric interpretation).
    (lambda tmp: make_png(tmp / "rgb.png", mode="RGB"), [], ["colour shown as grey"]),
    # An RGB file holding a grey image: no conversion, no mark.
    (lambda tmp: make_png(tmp / "gray_rgb.png", mode="RGB", gray_rgb=True), [], []),
]


@pytest.mark.parametrize("make, header_marks, decoded_marks", CASES,
                         ids=["multi-frame", "jpeg-baseline-ybr", "lossy-01-ratio",
                              "lossy-two-steps", "lossless-00", "j2k-lossless", "jpeg-file",
                              "rgb-png", "grey-rgb-png"])
def test_view_marks(tmp_path, make, header_marks, decoded_marks):
    assert marks_of(make(tmp_path)) == (header_marks, decoded_marks)


def test_the_frame_shown_is_named(tmp_path):
    [ref] = scan([data_file("emri_small.dcm")]).images
    assert view_marks(ref, frame=3) == ["frame 4 of 10"]
