"""One model input: training reads a file exactly as the viewer and ``radview predict`` do.

The training cache (:func:`inference.training.data.build_cache`) is given the viewer's
reader (:func:`viewer.training_input.read_model_input`) by ``radview train``/``evaluate``;
the GUI and ``radview predict`` go through :func:`viewer.loader.scan` →
:func:`viewer.analysis.build_inputs`. Both must give the same ``uint8`` image, and the same
tensor after :func:`inference.preprocess.prepare_image`, for every kind of file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_dicom, make_png

from inference.preprocess import InputSpec, prepare_image, resize_uint8
from viewer import loader
from viewer.analysis import build_inputs
from viewer.training_input import CACHE_TAG, UnreadableImageError, read_model_input


def _ramp(rows: int, cols: int, high: int) -> np.ndarray:
    yy, xx = np.mgrid[:rows, :cols]
    return ((yy * cols + xx) * high // (rows * cols - 1)).astype(np.int64)


def _dicom_mono1(path: Path) -> Path:
    # 12-bit MONOCHROME1 without a window: automatic percentile window, then inverted.
    return make_dicom(path, rows=48, cols=40, bits_stored=12, photometric="MONOCHROME1",
                      pixels=_ramp(48, 40, 4095).astype(np.uint16))


def _dicom_windowed(path: Path) -> Path:
    # 12-bit MONOCHROME2 with a window in the file: the file's first window is the default.
    return make_dicom(path, rows=48, cols=40, bits_stored=12, windows=[(1500, 2000)],
                      pixels=_ramp(48, 40, 4095).astype(np.uint16))


def _png8(path: Path) -> Path:
    return make_png(path, rows=40, cols=52, mode="L")


def _png16(path: Path) -> Path:
    # The case that differed by ~30 grey levels: training stretched min–max, the viewer
    # windows by percentile. A few outliers make min–max and percentiles disagree.
    px = (_ramp(40, 52, 20000) + 20000).astype(np.uint16)
    px[0, :3] = 65535
    px[-1, -3:] = 0
    return make_png(path, rows=40, cols=52, mode="I;16", pixels=px)


def _jpeg(path: Path) -> Path:
    return make_png(path, rows=40, cols=52, mode="L")


def _tiff16(path: Path) -> Path:
    px = (_ramp(40, 52, 3000) + 1000).astype(np.uint16)
    return make_png(path, rows=40, cols=52, mode="I;16", pixels=px)


FILES = [
    # (name, writer): one row per kind of file the viewer opens
    ("mono1.dcm", _dicom_mono1),       # DICOM 12-bit MONOCHROME1, percentile window, inverted
    ("windowed.dcm", _dicom_windowed),  # DICOM 12-bit with a window in the header
    ("eight.png", _png8),               # 8-bit PNG: shown as stored
    ("sixteen.png", _png16),            # 16-bit PNG: percentile window (not min–max)
    ("photo.jpg", _jpeg),               # JPEG (lossy, 8-bit)
    ("sixteen.tif", _tiff16),           # 16-bit TIFF
]

SPECS = [
    InputSpec(size=(32, 32), resize="letterbox"),                 # ImageNet, letterbox
    InputSpec(size=(24, 36), channels=1, mean=(0.449,), std=(0.226,),
              resize="stretch"),                                  # 1 channel, stretch
]


def _viewer_pixels(path: Path) -> np.ndarray:
    result = loader.scan([path])
    assert not result.errors, result.errors
    (study,) = [s for p in result.patients for s in p.studies]
    inputs, errors = build_inputs(study)
    assert not errors and len(inputs) == 1
    return inputs[0].pixels


@pytest.mark.parametrize(("name", "write"), FILES, ids=[f[0] for f in FILES])
def test_training_reader_equals_viewer_input(tmp_path: Path, name, write) -> None:
    path = write(tmp_path / name)
    trained = read_model_input(path)
    shown = _viewer_pixels(path)
    assert trained.dtype == np.uint8 and trained.ndim == 2
    np.testing.assert_array_equal(trained, shown)
    assert trained.max() > trained.min()  # not a blank image: the fixture means something
    for spec in SPECS:
        # the cache stores resize_uint8 of the reader's image; the engine prepare_image
        small = replace_spec(spec)
        np.testing.assert_array_equal(resize_uint8(trained, small), resize_uint8(shown, small))
        a, b = prepare_image(trained, spec), prepare_image(shown, spec)
        assert a.shape == b.shape
        assert bool((a == b).all())


def replace_spec(spec: InputSpec) -> InputSpec:
    from dataclasses import replace

    return replace(spec, channels=1, mean=(0.0,), std=(1.0,))


def test_sixteen_bit_png_is_windowed_not_stretched(tmp_path: Path) -> None:
    # The old training path (decode_gray: min–max) and the viewer's differ on this file;
    # the training path now is the viewer's.
    from inference.training.data import decode_gray

    path = _png16(tmp_path / "sixteen.png")
    old = decode_gray(path).astype(int)
    new = read_model_input(path).astype(int)
    assert np.abs(old - new).mean() > 5


def test_build_cache_uses_the_injected_reader(tmp_path: Path) -> None:
    from inference.training.data import Sample, build_cache, cache_key

    files = [w(tmp_path / n) for n, w in FILES]
    samples = [Sample(path=p, study=p.stem, part="HAND", group=p.stem, abnormal=0)
               for p in files]
    spec = InputSpec(size=(32, 32), resize="letterbox")
    info = build_cache(samples, spec, tmp_path / "cache", workers=1, reader=read_model_input)
    assert info.ok.all() and not info.errors  # DICOM is readable for training now
    cached = info.open()
    small = replace_spec(spec)
    for i, p in enumerate(files):
        np.testing.assert_array_equal(cached[i], resize_uint8(_viewer_pixels(p), small))
    # another reader → another cache file
    assert cache_key(samples, spec, read_model_input) != cache_key(samples, spec)
    assert CACHE_TAG in repr(read_model_input.cache_tag)


def test_unreadable_file_is_a_value_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(UnreadableImageError, match="broken.png"):
        read_model_input(bad)
