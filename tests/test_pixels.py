"""viewer.pixels: header specs and stored-value decoding, on generated files.

Each table row is one messy-DICOM (or image file) case with a comment saying why it is
there; fixtures come from tests/dicom_factory.py. Real files are in test_real_files.py.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import (
    Lut,
    default_pixels,
    make_dicom,
    make_png,
    un_element,
)
from PIL import Image
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

from viewer.model import ImageRef, PixelSpec, Window
from viewer.pixels import (
    PixelError,
    capture_warnings,
    clean_warning,
    decode,
    read_dicom_header,
    sniff_dicom,
    spec_for_image,
    spec_from_dataset,
    to_stored,
)

MPEG4 = UID("1.2.840.10008.1.2.4.102")  # MPEG-4 AVC/H.264: pydicom has no decoder


def spec_of(path: Path, frame: int = 0) -> PixelSpec:
    with capture_warnings():
        return spec_from_dataset(read_dicom_header(path).ds, frame=frame)


def win(spec: PixelSpec) -> list[tuple]:
    """Windows as tuples, NaN as None (NaN != NaN would defeat ==)."""
    def v(x: float) -> float | None:
        return None if math.isnan(x) else x
    return [(v(w.center), v(w.width), w.explanation, w.function) for w in spec.windows]


def dicom_ref(path: Path) -> ImageRef:
    return ImageRef(path=path, kind="dicom")


# ------------------------------------------------------------------------- header specs

SPEC_CASES = [
    # The factory default: 12 bits in 16, unsigned MONOCHROME2, no windows.
    ("plain", {}, {"bits_allocated": 16, "bits_stored": 12, "high_bit": 11,
                   "pixel_representation": 0, "photometric": "MONOCHROME2", "windows": []}),
    # Several windows with explanations and one VOI LUT Function for all (C.11.2.1.3).
    ("multi-window", {"windows": [(40, 400, "SOFT"), (300, 1500, "BONE")],
                      "voi_function": "SIGMOID"},
     {"win": [(40, 400, "SOFT", "SIGMOID"), (300, 1500, "BONE", "SIGMOID")]}),
    # Width 0 is kept as written: display.py leaves it out and says why.
    ("width-0", {"windows": [(100, 0)]}, {"win": [(100, 0, "", "LINEAR")]}),
    # An empty Window Width is kept as NaN, so the window stays visible and is skipped.
    ("width-empty", {"windows": [(100, 200)], "extra": {"WindowWidth": ""}},
     {"win": [(100, None, "", "LINEAR")]}),
    # An unparsable value becomes NaN in place, so center 2 still pairs with width 2.
    ("width-garbage", {"windows": [(1, 2), (3, 4)], "extra": {"WindowWidth": ["x", "4"]}},
     {"win": [(1, None, "", "LINEAR"), (3, 4, "", "LINEAR")]}),
    # Windows written with VR UN (an explicit-VR file from a converter that lost the VR).
    ("window-vr-un", {"extra": {"WindowCenter": un_element("WindowCenter", "-600\\40"),
                                "WindowWidth": un_element("WindowWidth", "1500\\400")}},
     {"win": [(-600, 1500, "", "LINEAR"), (40, 400, "", "LINEAR")]}),
    # Signed CT-like data with a rescale to HU (C.11.1).
    ("rescale", {"signed": True, "rescale": (1, -1024, "HU")},
     {"pixel_representation": 1, "rescale_slope": 1.0, "rescale_intercept": -1024.0,
      "rescale_type": "HU"}),
    # Unparsable rescale values fall back to the identity instead of failing the file.
    ("rescale-garbage", {"rescale": (1, 0), "extra": {"RescaleSlope": "abc"}},
     {"rescale_slope": 1.0, "rescale_intercept": 0.0}),
    # Padding on signed data, written SS (C.7.5.1.1.2): read back signed.
    ("padding-ss", {"signed": True, "padding": (-2000, -1000)},
     {"padding_value": -2000, "padding_range_limit": -1000}),
    # The same padding written as US (63536): the US/SS ambiguity is resolved by Pixel
    # Representation, so it still means -2000.
    ("padding-us-on-signed", {"signed": True, "padding": -2000, "padding_vr": "US"},
     {"padding_value": -2000, "padding_range_limit": None}),
    # Unsigned data: padding 0 (the usual "outside the detector" value) is 0, not None.
    ("padding-unsigned", {"padding": 0}, {"padding_value": 0}),
    # Presentation LUT Shape INVERSE (C.11.6.1) is passed on upper-cased.
    ("plut-inverse", {"presentation_lut_shape": "inverse"},
     {"presentation_lut_shape": "INVERSE"}),
    # Pixel Spacing (row, column) in mm.
    ("spacing", {"pixel_spacing": (0.139, 0.14)}, {"pixel_spacing": (0.139, 0.14)}),
    # Imager Pixel Spacing is the fallback for projection radiographs without it.
    ("imager-spacing", {"extra": {"ImagerPixelSpacing": [0.1, 0.1]}},
     {"pixel_spacing": (0.1, 0.1)}),
    # A header without Photometric Interpretation: MONOCHROME2 assumed.
    ("no-photometric", {"extra": {"PhotometricInterpretation": None}},
     {"photometric": "MONOCHROME2"}),
    # Enhanced objects keep windows and rescale only in the Shared Functional Groups.
    ("enhanced-shared", {"enhanced": "shared", "frames": 2, "windows": [(40, 400, "A")],
                         "rescale": (2, -10)},
     {"win": [(40, 400, "A", "LINEAR")], "rescale_slope": 2.0, "rescale_intercept": -10.0,
      "number_of_frames": 2}),
    # … or only in the Per-Frame Functional Groups (frame 1's item is used for frame 1).
    ("enhanced-per-frame", {"enhanced": "per-frame", "frames": 2,
                            "windows": [(50, 500)], "voi_function": "LINEAR_EXACT",
                            "rescale": (1, -5)},
     {"win": [(50, 500, "", "LINEAR_EXACT")], "rescale_intercept": -5.0}),
    # Number of Frames "1A" (pydicom's badVR style): one frame assumed, no crash.
    ("frames-garbage", {"extra": {"NumberOfFrames": "1A"}}, {"number_of_frames": 1}),
]


@pytest.mark.parametrize("name,kwargs,expected", SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_spec_from_dataset(tmp_path, name, kwargs, expected):
    spec = spec_of(make_dicom(tmp_path / f"{name}.dcm", **kwargs), frame=1 if "per-frame"
                   in name else 0)
    for key, value in expected.items():
        if key == "win":
            assert win(spec) == value
        else:
            assert getattr(spec, key) == value, key


def test_modality_lut_beside_rescale_both_reported(tmp_path):
    # A faulty file with both (C.11.1 says one or the other): both reach the pipeline,
    # which gives the LUT precedence like pydicom's apply_modality_lut.
    data = np.arange(4096) // 2
    path = make_dicom(tmp_path / "mlut.dcm", rescale=(1, -1024),
                      modality_lut=Lut(0, 12, data, "halve", "US"))
    spec = spec_of(path)
    assert (spec.rescale_slope, spec.rescale_intercept) == (1.0, -1024.0)
    lut = spec.modality_lut
    assert (lut.first_mapped, lut.bits, lut.explanation, lut.lut_type) == (0, 12, "halve", "US")
    np.testing.assert_array_equal(lut.data, data)


LUT_CASES = [
    # VOI LUT as a US list.
    ("us-list", Lut(0, 8, np.arange(4096) // 16, "LIN"), 0, 4096),
    # LUT Data as OW bytes (little endian): decoded as 16-bit words.
    ("ow-bytes", Lut(100, 12, np.arange(1000) * 4, vr="OW"), 100, 1000),
    # First LUT Descriptor value 0 means 65536 entries (C.11.2.1.1).
    ("65536-entries", Lut(0, 16, np.arange(65536), vr="OW"), 0, 65536),
    # Signed data: first mapped -2048 written as US 63488 is read back as -2048.
    ("signed-first", Lut(-2048, 10, np.arange(4096) // 4, descriptor_vr="US"), -2048, 4096),
]


@pytest.mark.parametrize("name,lut,first,entries", LUT_CASES, ids=[c[0] for c in LUT_CASES])
def test_voi_lut_sequence(tmp_path, name, lut, first, entries):
    path = make_dicom(tmp_path / f"{name}.dcm", signed=name.startswith("signed"), voi_lut=lut)
    [got] = spec_of(path).voi_luts
    assert got.first_mapped == first
    assert got.bits == lut.bits
    assert got.data.size == entries
    np.testing.assert_array_equal(got.data, np.asarray(lut.data, dtype=np.uint16))


def test_voi_lut_big_endian_ow(tmp_path):
    # OW LUT Data in an Explicit VR Big Endian file is byte-swapped like the pixels.
    lut = Lut(0, 12, np.arange(300) * 7, vr="OW")
    path = make_dicom(tmp_path / "be.dcm", voi_lut=lut, transfer_syntax=ExplicitVRBigEndian)
    np.testing.assert_array_equal(spec_of(path).voi_luts[0].data, np.arange(300) * 7)


def test_window_bytes_from_bare_dataset():
    # pydicom replaces UN by the dictionary VR when it reads a file; a data set built
    # in memory (or with that option off) hands over bytes, decoded here as DS text.
    ds = Dataset()
    ds.Rows, ds.Columns = 8, 8
    ds.add(DataElement(0x00281050, "UN", b"-600\\40 "))
    ds.add(DataElement(0x00281051, "UN", b"1500\\400"))
    ds.add(DataElement(0x00281055, "UN", b"LUNG\\SOFT "))
    ds.add(DataElement(0x00281052, "UN", b"-1024 "))
    ds.add(DataElement(0x00280120, "UN", (63536).to_bytes(2, "little")))
    ds.PixelRepresentation = 1
    spec = spec_from_dataset(ds)
    assert win(spec) == [(-600, 1500, "LUNG", "LINEAR"), (40, 400, "SOFT", "LINEAR")]
    assert spec.rescale_intercept == -1024
    assert spec.padding_value == -2000


def test_spec_needs_rows_and_columns():
    # Without Rows/Columns there is no image: a ValueError the loader turns into a reason.
    with pytest.raises(ValueError, match="Rows/Columns"):
        spec_from_dataset(Dataset())


# ----------------------------------------------------------------------------- to_stored

STORED_CASES = [
    # 12 bits in 16 with garbage in bits 12-15 (overlay bits in old files): cleared.
    ("mask-high-bits", np.array([0xF123, 0x0FFF], np.uint16), 12, 11, False, [0x123, 0xFFF]),
    # Signed 12-bit data written without sign extension: extended here.
    ("sign-extend", np.array([0x0800, 0x0FFF, 0x07FF], np.uint16), 12, 11, True,
     [-2048, -1, 2047]),
    # Signed data already sign-extended by pydicom (int16): unchanged.
    ("already-signed", np.array([-2048, -1, 2047], np.int16), 12, 11, True, [-2048, -1, 2047]),
    # High Bit 15 with 12 bits stored: the value sits in the top bits (PS3.5 8.1.1).
    ("high-bit-15", np.array([0x1230, 0xFFF0], np.uint16), 12, 15, False, [0x123, 0xFFF]),
    # 16-bit signed full range.
    ("int16-full", np.array([-32768, 32767], np.int16), 16, 15, True, [-32768, 32767]),
    # 8-bit data comes back as uint8.
    ("uint8", np.array([0, 255], np.uint8), 8, 7, False, [0, 255]),
]


@pytest.mark.parametrize("name,arr,bits,high,signed,expected", STORED_CASES,
                         ids=[c[0] for c in STORED_CASES])
def test_to_stored(name, arr, bits, high, signed, expected):
    alloc = arr.dtype.itemsize * 8
    spec = PixelSpec(rows=1, columns=len(arr), bits_allocated=alloc, bits_stored=bits,
                     high_bit=high, pixel_representation=int(signed))
    out = to_stored(arr, spec)
    assert out.tolist() == expected
    assert out.dtype == {(8, False): np.uint8, (12, False): np.uint16, (16, False): np.uint16,
                         (12, True): np.int16, (16, True): np.int16}[(bits, signed)]


# ------------------------------------------------------------------------------ decoding

RAMP = default_pixels()  # 64×64, 12-bit ramp 0..4095


DECODE_CASES = [
    # Plain 12-bit MONOCHROME2: the ramp, as uint16.
    ("plain", {}, RAMP, np.uint16),
    # Garbage above Bits Stored is masked off, whatever pydicom returns.
    ("high-bit-garbage", {"pixels": RAMP | 0xF000}, RAMP, np.uint16),
    # Signed 12-bit data stored without sign extension in bits 12-15.
    ("signed-unextended", {"signed": True, "pixels": default_pixels(signed=True) & 0x0FFF},
     default_pixels(signed=True), np.int16),
    # High Bit 15 (value in the top 12 bits): shifted down.
    ("high-bit-15", {"high_bit": 15, "pixels": RAMP << 4}, RAMP, np.uint16),
    # 8-bit data.
    ("8-bit", {"bits_stored": 8}, default_pixels(bits_stored=8), np.uint8),
    # Explicit VR Big Endian (retired, still met): byte order handled.
    ("big-endian", {"transfer_syntax": ExplicitVRBigEndian}, RAMP, np.uint16),
    # No preamble and no File Meta: Implicit VR Little Endian deduced.
    ("no-meta", {"preamble": False, "file_meta": False,
                 "transfer_syntax": ImplicitVRLittleEndian}, RAMP, np.uint16),
    # RLE Lossless and JPEG 2000 Lossless give exactly the native values.
    ("rle", {"transfer_syntax": RLELossless}, RAMP, np.uint16),
    ("j2k-lossless", {"transfer_syntax": JPEG2000Lossless}, RAMP, np.uint16),
    # Signed data through JPEG 2000 (pydicom fixes the J2K signedness to match).
    ("j2k-signed", {"transfer_syntax": JPEG2000Lossless, "signed": True},
     default_pixels(signed=True), np.int16),
    # 1-bit data (Bits Allocated 1, bit-packed): 0/1 as uint8.
    ("1-bit", {"bits_allocated": 1, "bits_stored": 1, "pixels": RAMP % 2}, RAMP % 2, np.uint8),
    # Extra bytes after the pixels: ignored (with a warning, see below).
    ("excess-bytes", {"pixel_bytes": (RAMP.astype("<u2").tobytes() + b"\0" * 64)},
     RAMP, np.uint16),
]


@pytest.mark.parametrize("name,kwargs,expected,dtype", DECODE_CASES,
                         ids=[c[0] for c in DECODE_CASES])
def test_decode_stored_values(tmp_path, name, kwargs, expected, dtype):
    path = make_dicom(tmp_path / name, **kwargs)
    out = decode(dicom_ref(path))
    assert out.stored.dtype == dtype
    np.testing.assert_array_equal(out.stored, expected)


def test_decode_excess_bytes_warns(tmp_path):
    # Pixel data longer than Rows × Columns × frames: shown, with a note saying so.
    path = make_dicom(tmp_path / "x.dcm", pixel_bytes=RAMP.astype("<u2").tobytes() + b"\0" * 64)
    assert any("64 more than the 8192 expected" in w for w in decode(dicom_ref(path)).warnings)


def test_decode_multiframe_reads_the_requested_frame(tmp_path):
    # Frame 2 of 3 is frame 2, not frame 0; the spec still says 3 frames.
    path = make_dicom(tmp_path / "mf.dcm", frames=3)
    out = decode(dicom_ref(path), frame=2)
    np.testing.assert_array_equal(out.stored, default_pixels(frames=3)[2])
    assert out.spec.number_of_frames == 3


COLOUR_CASES = [
    # RGB with distinct channels → BT.601 luminance, with a warning.
    ("rgb", {}, True),
    # RGB planar (R plane, G plane, B plane) decodes the same.
    ("rgb-planar", {"planar_configuration": 1}, True),
    # RGB whose three channels are equal is gray stored as colour: one channel, no warning.
    ("rgb-gray", {"pixels": np.repeat(default_pixels(bits_stored=8)[..., None], 3, axis=-1)},
     False),
]


@pytest.mark.parametrize("name,kwargs,converted", COLOUR_CASES, ids=[c[0] for c in COLOUR_CASES])
def test_decode_colour_to_luminance(tmp_path, name, kwargs, converted):
    path = make_dicom(tmp_path / f"{name}.dcm", samples=3, bits_stored=8, **kwargs)
    out = decode(dicom_ref(path))
    rgb = kwargs.get("pixels", default_pixels(bits_stored=8, samples=3)).astype(float)
    expected = np.rint(rgb @ [0.299, 0.587, 0.114]).astype(np.uint8)
    np.testing.assert_array_equal(out.stored, expected)
    assert out.stored.dtype == np.uint8
    assert (out.spec.photometric, out.spec.samples_per_pixel, out.spec.bits_stored) == (
        "MONOCHROME2", 1, 8)
    assert any("luminance" in w for w in out.warnings) is converted


REFUSE_CASES = [
    # Rows larger than the data: refused with byte counts (never shown padded).
    ("rows-too-large", {"extra": {"Rows": 128}},
     "pixel data is 8192 bytes, expected 16384 for 128×64×16-bit"),
    # A file cut inside the pixel data.
    ("truncated", {"truncate": 1000},
     "file is truncated: Pixel Data declares 8192 bytes but only 7192 remain"),
    # Number of Frames larger than the data.
    ("frames-too-many", {"extra": {"NumberOfFrames": 3}},
     "pixel data is 8192 bytes, expected 24576 for 64×64×16-bit×3 frames"),
    # A transfer syntax pydicom cannot decode at all: named, with its UID.
    ("mpeg4", {"transfer_syntax": MPEG4, "encapsulated_frames": [b"\0\0\0\1" * 8]},
     "unsupported transfer syntax MPEG-4 AVC/H.264 High Profile / Level 4.1 "
     "(1.2.840.10008.1.2.4.102): pydicom has no decoder for it"),
    # Corrupt JPEG 2000 data: the plugins' reasons, the syntax, and what else might read it.
    ("j2k-corrupt", {"transfer_syntax": JPEG2000Lossless,
                     "encapsulated_frames": [b"\xff\x4f\xff\x51" + b"\0" * 60]},
     "JPEG 2000 Image Compression (Lossless Only) (1.2.840.10008.1.2.4.90) pixel data "
     "could not be decoded ("),
    # Photometric Interpretation the viewer does not know.
    ("cmyk", {"photometric": "CMYK"}, "Photometric Interpretation 'CMYK' is not supported"),
]


@pytest.mark.parametrize("name,kwargs,message", REFUSE_CASES, ids=[c[0] for c in REFUSE_CASES])
def test_decode_refuses_with_a_reason(tmp_path, name, kwargs, message):
    path = make_dicom(tmp_path / f"{name}.dcm", **kwargs)
    with pytest.raises(PixelError) as info:
        decode(dicom_ref(path))
    assert info.value.path == path
    assert message in info.value.reason
    assert str(path) in str(info.value)


def test_decode_frame_out_of_range(tmp_path):
    # Asking for frame 1 of a single-frame file is an error, not frame 0.
    path = make_dicom(tmp_path / "one.dcm")
    with pytest.raises(PixelError, match="frame 1 requested"):
        decode(dicom_ref(path), frame=1)


def test_decode_ref_with_error_raises_it(tmp_path):
    # An ImageRef the loader marked unusable is not decoded again.
    ref = ImageRef(path=tmp_path / "x.dcm", kind="dicom", error="above the size limit")
    with pytest.raises(PixelError, match="above the size limit"):
        decode(ref)


def test_missing_codec_says_what_to_install(tmp_path, monkeypatch):
    # A syntax whose plugins all lack dependencies (pydicom's registry) is refused with
    # the packages to install, the way pydicom reports it.
    path = make_dicom(tmp_path / "j2k.dcm", transfer_syntax=JPEG2000Lossless)

    class Unavailable:
        is_available = False
        missing_dependencies = ["gdcm - requires gdcm>=3.0.10",
                                "pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-openjpeg>=2.0"]

    monkeypatch.setattr("viewer.pixels.get_decoder", lambda ts: Unavailable())
    with pytest.raises(PixelError) as info:
        decode(dicom_ref(path))
    reason = info.value.reason
    assert reason.startswith("no decoder installed for JPEG 2000 Image Compression "
                             "(Lossless Only) (1.2.840.10008.1.2.4.90)")
    assert "install python-gdcm" in reason
    assert "pylibjpeg-openjpeg>=2.0" in reason


# ---------------------------------------------------------------------------- image files

IMAGE_CASES = [
    # 8-bit gray PNG: uint8, as stored.
    ("gray.png", {"mode": "L"}, np.uint8, 8, False),
    # 16-bit gray PNG: uint16, Bits Stored 16.
    ("gray16.png", {"mode": "I;16"}, np.uint16, 16, False),
    # 16-bit TIFF, the other common 16-bit container.
    ("gray16.tif", {"mode": "I;16"}, np.uint16, 16, False),
    # Gray saved as RGB (common in MURA): one channel, silently.
    ("rgb-gray.png", {"mode": "RGB", "gray_rgb": True}, np.uint8, 8, False),
    # True colour: luminance with a warning.
    ("colour.png", {"mode": "RGB"}, np.uint8, 8, True),
    # RGBA: alpha ignored, colour converted.
    ("rgba.png", {"mode": "RGBA"}, np.uint8, 8, True),
    # Palette image: expanded, then converted.
    ("palette.png", {"mode": "P"}, np.uint8, 8, True),
    # 1-bit: 0/255.
    ("bilevel.png", {"mode": "1"}, np.uint8, 8, False),
    # BMP is accepted too.
    ("gray.bmp", {"mode": "L"}, np.uint8, 8, False),
]


@pytest.mark.parametrize("name,kwargs,dtype,bits,warns", IMAGE_CASES,
                         ids=[c[0] for c in IMAGE_CASES])
def test_decode_image_files(tmp_path, name, kwargs, dtype, bits, warns):
    path = make_png(tmp_path / name, **kwargs)
    out = decode(ImageRef(path=path, kind="image"))
    assert out.stored.dtype == dtype
    assert out.stored.shape == (32, 48)
    assert (out.spec.bits_stored, out.spec.photometric) == (bits, "MONOCHROME2")
    assert any("luminance" in w for w in out.warnings) is warns
    with Image.open(path) as im:
        if im.mode in ("L", "I;16"):
            np.testing.assert_array_equal(out.stored, np.asarray(im))
        elif im.mode in ("RGB", "RGBA") and not warns:
            np.testing.assert_array_equal(out.stored, np.asarray(im)[..., 0])
        else:
            np.testing.assert_array_equal(out.stored, np.asarray(im.convert("RGBA")
                                                                 .convert("RGB").convert("L")))
    assert spec_for_image(path).bits_stored == bits


def test_exif_orientation_is_applied(tmp_path):
    # EXIF Orientation 6 (rotate 90° clockwise to view): the matrix is the viewed one,
    # and spec_for_image already reports the rotated size.
    pixels = (np.arange(32 * 48).reshape(32, 48) % 256).astype(np.uint8)
    path = make_png(tmp_path / "rot.png", pixels=pixels, exif_orientation=6)
    out = decode(ImageRef(path=path, kind="image"))
    np.testing.assert_array_equal(out.stored, np.rot90(pixels, k=-1))
    spec = spec_for_image(path)
    assert (spec.rows, spec.columns) == (48, 32)


def test_multipage_tiff_page(tmp_path):
    # Page 2 of a multi-page TIFF is decoded on request.
    path = tmp_path / "pages.tif"
    pages = [Image.fromarray(np.full((8, 8), v, np.uint8)) for v in (10, 20, 30)]
    pages[0].save(path, save_all=True, append_images=pages[1:])
    ref = ImageRef(path=path, kind="image")
    assert int(decode(ref, frame=2).stored[0, 0]) == 30
    with pytest.raises(PixelError, match="page 3 requested"):
        decode(ref, frame=3)


def test_truncated_png_is_refused(tmp_path):
    # A PNG cut in its image data: a PixelError naming the file, no partial image.
    path = make_png(tmp_path / "cut.png", rows=200, cols=200,
                    pixels=np.random.default_rng(0).integers(0, 255, (200, 200)))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(PixelError, match="image cannot be decoded"):
        decode(ImageRef(path=path, kind="image"))


# ------------------------------------------------------------------------------- misc

SNIFF_CASES = [
    # Preamble + DICM (PS3.10 7.1).
    ("dicm", b"\0" * 128 + b"DICM" + b"\2\0\1\0", True),
    # Bare Implicit VR data set starting at (0008,0005).
    ("bare-0008", b"\x08\x00\x05\x00\x0a\x00\x00\x00ISO_IR 100", True),
    # Big endian bare data set starting at (0008,0016).
    ("bare-be", b"\x00\x08\x00\x16UI\x00\x1a" + b"1" * 24, True),
    # PNG signature.
    ("png", b"\x89PNG\r\n\x1a\n" + b"\0" * 140, False),
    # Text.
    ("text", b"Hello, this is not DICOM at all." * 5, False),
    # Too short to tell.
    ("short", b"\x08\x00", False),
]


@pytest.mark.parametrize("name,head,expected", SNIFF_CASES, ids=[c[0] for c in SNIFF_CASES])
def test_sniff_dicom(name, head, expected):
    assert sniff_dicom(head) is expected


def test_decode_is_thread_safe(tmp_path):
    # decode() runs in worker threads: concurrent calls give the serial results and no
    # warnings leak (the warning capture is serialized by a lock).
    paths = [make_dicom(tmp_path / f"t{i}.dcm", transfer_syntax=ts, sop_uid=None)
             for i, ts in enumerate([RLELossless, JPEG2000Lossless, ExplicitVRBigEndian] * 3)]
    paths.append(make_dicom(tmp_path / "warn.dcm", extra={"NumberOfFrames": "1A"}))
    expected = {p: decode(dicom_ref(p)) for p in paths}
    results: dict[tuple, object] = {}

    def work(k: int) -> None:
        for p in paths:
            results[(k, p)] = decode(dicom_ref(p))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6 * len(paths)
    for (_, p), out in results.items():
        np.testing.assert_array_equal(out.stored, expected[p].stored)
        assert out.warnings == expected[p].warnings
    assert any("1A" in w for w in expected[paths[-1]].warnings)


CLEAN_CASES = [
    # Numeric VRs keep the bad value (it explains the problem), without the long link.
    ("Invalid value for VR IS: '1A'. Please see <https://dicom.nema.org/x> for allowed "
     "values for each VR.", "Invalid value for VR IS: '1A'"),
    # Text VRs may hold a name or an ID: the value is not repeated.
    ("Invalid value for VR PN: 'Doe^John^^^^^^'. Please see <https://x> for allowed values.",
     "Invalid value for VR PN: (value not shown)"),
    ("Invalid value for VR LO: 'ID 123\n'. Please see <https://x>.",
     "Invalid value for VR LO: (value not shown)"),
    # Anything else is kept, whitespace normalized.
    ("Expected explicit VR, but found implicit VR -\n using implicit VR for reading",
     "Expected explicit VR, but found implicit VR - using implicit VR for reading"),
]


@pytest.mark.parametrize("message,expected", CLEAN_CASES)
def test_clean_warning(message, expected):
    assert clean_warning(message) == expected


def test_pydicom_warnings_become_image_warnings(tmp_path):
    # A header oddity pydicom warns about is recorded on the decoded image (not raised,
    # not printed), in its cleaned form.
    path = make_dicom(tmp_path / "w.dcm", extra={"NumberOfFrames": "1A"})
    assert "pydicom: Invalid value for VR IS: '1A'" in decode(dicom_ref(path)).warnings


def test_default_window_type():
    # Window keeps the model's defaults (guards against silent model changes).
    assert Window(1, 2) == Window(1.0, 2.0, "", "LINEAR")
