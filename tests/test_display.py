"""Tests of the grayscale display pipeline (viewer.display).

Each table row is a real case from the DICOM standard (PS3.3 C.11) or from files seen in
practice, with a comment saying why it is there. Tests assert their preconditions first,
then exact display values.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from viewer.display import (
    AUTO_PERCENTILES,
    DisplayPipeline,
    Preset,
    window_for_drag,
    window_problem,
)
from viewer.model import LutData, PixelSpec, Window

# ----------------------------------------------------------------------------- helpers


def make_spec(stored: np.ndarray, bits_stored: int = 12, **kwargs) -> PixelSpec:
    """A PixelSpec for ``stored`` (signedness from its dtype)."""
    signed = stored.dtype.kind == "i"
    allocated = max(8, stored.dtype.itemsize * 8)
    return PixelSpec(
        rows=stored.shape[0],
        columns=stored.shape[1],
        bits_allocated=allocated,
        bits_stored=bits_stored,
        high_bit=bits_stored - 1,
        pixel_representation=1 if signed else 0,
        **kwargs,
    )


def display_of(values, window=None, voi_lut=None, invert=False, dtype=np.uint16, **spec_kw):
    """Render a one-row image holding ``values``; return {stored value: display value}."""
    stored = np.asarray([values], dtype=dtype)
    pipeline = DisplayPipeline(stored, make_spec(stored, **spec_kw))
    image = pipeline.render(window, voi_lut, invert=invert)
    return dict(zip(stored[0].tolist(), image[0].tolist(), strict=True))


def reference_display(stored, spec: PixelSpec, window: Window, invert: bool = False):
    """Straightforward float64 per-pixel implementation of PS3.3 C.11, for comparison.

    Modality (rescale) → window formula of the standard on every pixel → inversion →
    rounding. No LUT, no precomputation; deliberately written from the standard's text.
    """
    x = stored.astype(np.float64) * spec.rescale_slope + spec.rescale_intercept
    c, w = float(window.center), float(window.width)
    if window.function == "SIGMOID":  # C.11.2.1.3.1
        with np.errstate(over="ignore"):
            y = 255.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    elif window.function == "LINEAR_EXACT":  # C.11.2.1.3.2
        y = ((x - c) / w + 0.5) * 255.0
        y[x <= c - w / 2] = 0.0
        y[x > c + w / 2] = 255.0
    else:  # LINEAR, C.11.2.1.2.1
        with np.errstate(divide="ignore", invalid="ignore"):
            y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0
        y[x <= c - 0.5 - (w - 1) / 2] = 0.0
        y[x > c - 0.5 + (w - 1) / 2] = 255.0
    y = np.clip(np.round(y), 0, 255)
    inverted = spec.photometric == "MONOCHROME1" or spec.presentation_lut_shape == "INVERSE"
    if inverted != invert:
        y = 255.0 - y
    return y


def radiograph(shape=(240, 200), bits=12, seed=0) -> np.ndarray:
    """Synthetic radiograph-like stored values: smooth gradients plus noise."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    top = (1 << bits) - 1
    smooth = 0.3 + 0.4 * np.sin(rows / shape[0] * 3) * np.cos(cols / shape[1] * 2)
    noisy = smooth * top + rng.normal(0, top * 0.02, shape)
    return np.clip(np.rint(noisy), 0, top).astype(np.uint16)


# ------------------------------------------------------------------------------ VOI


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        # The standard's 12-bit full window 2048/4096 (C.11.2.1.2.1): 0 is the last value
        # at y_min, 4095 the first at y_max; 2047/2048 straddle the middle 127.5.
        (Window(2048, 4096), {0: 0, 1: 0, 2047: 127, 2048: 128, 4094: 255, 4095: 255}),
        # Width 1 is the smallest LINEAR width: a step between c - 1 and c.
        (Window(100, 1), {0: 0, 99: 0, 100: 255, 4095: 255}),
        # Soft-tissue CT window 40/400 on modality values: the ramp runs over
        # (-160, 239.5]; -160 is still black and 240 already white.
        (Window(1064, 400), {864: 0, 865: 1, 1064: 128, 1263: 255, 1264: 255}),
        # LINEAR_EXACT (C.11.2.1.3.2): x <= c - w/2 black, x > c + w/2 white, exact ramp
        # in between (no 0.5 / w-1 offsets); 100 is exactly mid-grey 127.5 → 128.
        (
            Window(100, 50, function="LINEAR_EXACT"),
            {75: 0, 76: 5, 100: 128, 125: 255, 126: 255},
        ),
        # LINEAR_EXACT allows widths below 1 (only > 0 is required).
        (Window(100, 0.5, function="LINEAR_EXACT"), {99: 0, 100: 128, 101: 255}),
        # SIGMOID (C.11.2.1.3.1): 255 / (1 + exp(-4 (x - c) / w)); at x = c output is
        # 127.5; half a width above gives 255 / (1 + e^-2) = 224.6; far values saturate.
        (Window(100, 50, function="SIGMOID"), {0: 0, 100: 128, 125: 225, 4095: 255}),
        # Function names are case-insensitive in practice (files say "linear").
        (Window(2048, 4096, function="linear"), {0: 0, 2048: 128, 4095: 255}),
    ],
)
def test_window_functions_exact_values(window, expected):
    assert window_problem(window) is None  # precondition: a valid window
    shown = display_of(sorted(expected), window)
    assert shown == expected


def test_sigmoid_midpoint_is_half_scale():
    # The standard's SIGMOID passes through 127.5 at the center, whatever the width.
    for width in (1.0, 37.0, 4096.0):
        shown = display_of([500], Window(500, width, function="SIGMOID"))
        assert abs(shown[500] - 127.5) <= 1


@pytest.mark.parametrize(
    ("window", "words"),
    [
        # LINEAR needs width >= 1 (C.11.2.1.2.1): 0 and 0.5 are invalid.
        (Window(40, 0), "width 0"),
        (Window(40, 0.5), "width 0.5"),
        # Negative widths appear in corrupted headers.
        (Window(40, -400), "width -400"),
        # An empty DS parsed as NaN by the loader.
        (Window(math.nan, math.nan), "numeric"),
        (Window(40, math.inf), "numeric"),
        # SIGMOID / LINEAR_EXACT need width > 0.
        (Window(40, 0, function="SIGMOID"), "SIGMOID"),
    ],
)
def test_window_problem_names_the_fault(window, words):
    problem = window_problem(window)
    assert problem is not None
    assert words in problem


# ------------------------------------------------------------------- modality LUT


def test_ct_rescale_air_black_bone_white():
    # CT: signed int16 stored values with Rescale Intercept -1024 (HU = stored - 1024);
    # soft-tissue window 40/400 shows air black and bone white.
    stored = np.array([[0, 1064, 2024, -1000]], dtype=np.int16)  # air, 40 HU, bone, outside
    spec = make_spec(stored, bits_stored=16, rescale_intercept=-1024.0, rescale_type="HU")
    pipeline = DisplayPipeline(stored, spec)
    assert pipeline.modality_value(0) == -1024.0  # precondition: air is -1024 HU
    assert pipeline.modality_range == (-2024.0, 1000.0)
    image = pipeline.render(Window(40, 400, "SOFT TISSUE"))
    assert image.tolist() == [[0, 128, 255, 0]]


def test_modality_lut_sequence_wins_over_rescale(caplog):
    # A file with both a Modality LUT Sequence and Rescale Slope/Intercept: PS3.3 C.11.1
    # makes them mutually exclusive; the LUT is used. Inputs below First Mapped take the
    # first entry, above the table the last (C.11.1.1.1).
    lut = LutData(first_mapped=10, bits=16, data=np.arange(100, dtype=np.uint16) * 10)
    stored = np.array([[5, 10, 50, 109, 500]], dtype=np.uint16)
    spec = make_spec(stored, rescale_slope=2.0, rescale_intercept=-1000.0, modality_lut=lut)
    with caplog.at_level(logging.INFO, logger="viewer.display"):
        pipeline = DisplayPipeline(stored, spec)
    assert "LUT is used" in caplog.text
    assert pipeline.modality_value(50) == 400.0  # LUT: (50 - 10) * 10, not 2 * 50 - 1000
    assert pipeline.modality_value(5) == 0.0
    assert pipeline.modality_value(500) == 990.0
    assert pipeline.modality_range == (0.0, 990.0)
    image = pipeline.render(Window(495.5, 991))  # maps 0..990 exactly onto 0..255
    assert image.tolist() == [[0, 0, 103, 255, 255]]


# ------------------------------------------------------------------------ VOI LUT


@pytest.mark.parametrize(
    ("lut", "spec_kw", "expected"),
    [
        # 8-bit VOI LUT starting at 100: below First Mapped → first entry; beyond the
        # table → last entry (C.11.2.1.1).
        (
            LutData(first_mapped=100, bits=8, data=np.arange(256, dtype=np.uint16)),
            {},
            {50: 0, 100: 0, 227: 127, 355: 255, 4000: 255},
        ),
        # 12-bit entries are scaled by the descriptor's bits, 4095 → 255.
        (
            LutData(first_mapped=0, bits=12, data=np.arange(4096, dtype=np.uint16)),
            {},
            {0: 0, 2048: 128, 4095: 255},
        ),
        # The VOI LUT input is the modality value: with intercept -1024, stored 1124 is
        # modality 100, the first mapped value.
        (
            LutData(first_mapped=100, bits=8, data=np.arange(256, dtype=np.uint16)),
            {"rescale_intercept": -1024.0},
            {1124: 0, 1251: 127, 4000: 255},
        ),
    ],
)
def test_voi_lut_sequence(lut, spec_kw, expected):
    shown = display_of(sorted(expected), voi_lut=lut, **spec_kw)
    assert shown == expected


def test_voi_lut_only_file_defaults_to_its_lut():
    # CR files often carry only a VOI LUT Sequence: it is the default, no fallback.
    stored = radiograph()
    lut = LutData(0, 12, np.arange(4096, dtype=np.uint16)[::-1].copy(), explanation="NORMAL")
    pipeline = DisplayPipeline(stored, make_spec(stored, voi_luts=[lut]))
    assert [p.label for p in pipeline.presets] == ["NORMAL", "Automatic", "Full range"]
    assert pipeline.default_preset.voi_lut is lut
    assert pipeline.default_reason is None


# ------------------------------------------------------------------------- presets


def test_presets_in_file_order_with_explanations():
    # CT files carry several windows (VM > 1) with explanations; menus keep file order,
    # unnamed ones get "Window N" by position; VOI LUTs follow, then the computed ones.
    stored = (radiograph().astype(np.int16) - 1024).astype(np.int16)
    windows = [
        Window(40, 400, "SOFT TISSUE"),
        Window(300, 1500),
        Window(-600, 1500, "LUNG"),
    ]
    luts = [LutData(0, 8, np.arange(256, dtype=np.uint16))]
    spec = make_spec(stored, windows=windows, voi_luts=luts)
    pipeline = DisplayPipeline(stored, spec)
    assert [(p.label, p.kind) for p in pipeline.presets] == [
        ("SOFT TISSUE", "file"),
        ("Window 2", "file"),
        ("LUNG", "file"),
        ("VOI LUT 1", "lut"),
        ("Automatic", "auto"),
        ("Full range", "full"),
    ]
    assert pipeline.presets[1].window is windows[1]
    assert pipeline.default_preset == pipeline.presets[0]
    assert pipeline.default_reason is None
    for preset in pipeline.presets:  # every preset renders
        assert pipeline.render_preset(preset).shape == stored.shape


@pytest.mark.parametrize(
    ("windows", "luts", "kind", "reason_words"),
    [
        # Width 0: seen in files written by broken modality software.
        ([Window(40, 0)], [], "auto", "width 0"),
        # NaN: an empty Window Width value.
        ([Window(math.nan, math.nan)], [], "auto", "numeric"),
        # A CT window on data without its rescale (0..~2900): 40/400 shows nothing.
        ([Window(-2000, 400)], [], "auto", "lies outside the data"),
        # Same bad window, but the file has a VOI LUT: that is the next best choice.
        ([Window(40, 0)], [LutData(0, 12, np.arange(4096, dtype=np.uint16))], "lut", "VOI LUT"),
        # No window and no VOI LUT at all (many DX files): automatic, said at INFO.
        ([], [], "auto", "no window"),
    ],
)
def test_default_window_fallback_with_reason(caplog, windows, luts, kind, reason_words):
    stored = radiograph()
    spec = make_spec(stored, windows=windows, voi_luts=luts)
    with caplog.at_level(logging.INFO, logger="viewer.display"):
        pipeline = DisplayPipeline(stored, spec)
    assert pipeline.default_preset.kind == kind
    assert pipeline.default_reason is not None
    assert reason_words in pipeline.default_reason
    assert pipeline.default_reason in caplog.text
    assert all(p.kind != "file" or window_problem(p.window) is None for p in pipeline.presets)
    # render() with no arguments shows the default preset
    expected = pipeline.render_preset(pipeline.default_preset)
    assert np.array_equal(pipeline.render(), expected)


def test_outside_window_reason_names_the_ranges():
    stored = np.array([[2000, 2500, 3000]], dtype=np.uint16)
    pipeline = DisplayPipeline(stored, make_spec(stored, windows=[Window(40, 400)]))
    assert pipeline.default_reason == (
        "file window 40/400 lies outside the data (2000..3000); automatic window used"
    )


# ------------------------------------------------------------------------ inversion


@pytest.mark.parametrize(
    ("photometric", "shape", "invert", "low_shown_as"),
    [
        # MONOCHROME2: minimum is black.
        ("MONOCHROME2", "", False, 0),
        # MONOCHROME1 (C.7.6.3.1.2): minimum is white.
        ("MONOCHROME1", "", False, 255),
        # Presentation LUT Shape INVERSE on MONOCHROME2 (C.11.6.1): inverted.
        ("MONOCHROME2", "INVERSE", False, 255),
        # DX requires INVERSE with MONOCHROME1 (C.8.11.3): the same inversion, not two.
        ("MONOCHROME1", "INVERSE", False, 255),
        # IDENTITY is the explicit no-op.
        ("MONOCHROME2", "IDENTITY", False, 0),
        # The user's invert toggle flips whatever the header asked for.
        ("MONOCHROME2", "", True, 255),
        ("MONOCHROME1", "", True, 0),
        ("MONOCHROME1", "INVERSE", True, 0),
    ],
)
def test_inversion(photometric, shape, invert, low_shown_as):
    shown = display_of(
        [0, 2048, 4095],
        Window(2048, 4096),
        invert=invert,
        photometric=photometric,
        presentation_lut_shape=shape,
    )
    assert shown == {0: low_shown_as, 2048: abs(low_shown_as - 128), 4095: 255 - low_shown_as}


# -------------------------------------------------------------------------- padding


def ct_with_padding(padding: int) -> tuple[np.ndarray, np.ndarray]:
    """Signed CT-like data with the outside of a circular field of view set to padding."""
    body = (radiograph(bits=12).astype(np.int16) - 1024).astype(np.int16)
    rows, cols = np.mgrid[0 : body.shape[0], 0 : body.shape[1]]
    outside = (rows - 120) ** 2 + (cols - 100) ** 2 > 90**2
    padded = body.copy()
    padded[outside] = padding
    return padded, ~outside


@pytest.mark.parametrize(
    ("padding_value", "range_limit"),
    [
        # The classic CT case: Pixel Padding Value -2000 on signed data.
        (-2000, None),
        # The same value read as US because the VR was ambiguous (0xF830 = 63536).
        (63536, None),
        # Pixel Padding Range Limit (C.7.5.1.1.2): every value between the two is padding,
        # whichever order they come in.
        (-2000, -1500),
        (-1500, -2000),
    ],
)
def test_padding_excluded_from_statistics_and_black(padding_value, range_limit):
    padded, inside = ct_with_padding(-2000)
    body_only = padded[inside].reshape(1, -1)
    spec = make_spec(
        padded,
        bits_stored=16,
        padding_value=padding_value,
        padding_range_limit=range_limit,
        photometric="MONOCHROME1",  # padding stays black even when inverted
    )
    pipeline = DisplayPipeline(padded, spec)
    reference = DisplayPipeline(body_only, make_spec(body_only, bits_stored=16))
    assert (padded == -2000).sum() > padded.size / 4  # precondition: lots of padding
    assert pipeline.modality_range == reference.modality_range
    assert pipeline.auto_window == reference.auto_window
    assert pipeline.full_window == reference.full_window
    for invert in (False, True):
        image = pipeline.render(invert=invert)
        assert (image[~inside] == 0).all()
        assert image[inside].max() > 0


def test_padding_range_includes_values_between():
    # Values strictly between Pixel Padding Value and Range Limit are padding too.
    stored = np.array([[0, 50, 100, 101, 4095]], dtype=np.uint16)
    spec = make_spec(stored, padding_value=100, padding_range_limit=0)
    pipeline = DisplayPipeline(stored, spec)
    assert pipeline.modality_range == (101.0, 4095.0)
    assert pipeline.render(Window(2048, 4096), invert=True).tolist() == [[0, 0, 0, 249, 0]]


def test_without_padding_tag_minimum_counts():
    # Precondition for the padding tests: without the tag, -2000 drags the range down.
    padded, _ = ct_with_padding(-2000)
    pipeline = DisplayPipeline(padded, make_spec(padded, bits_stored=16))
    assert pipeline.modality_range[0] == -2000.0


# ---------------------------------------------------------------- plain (PNG) images


def test_plain_8bit_image_shown_as_saved():
    # A PNG/JPEG decoded to 8-bit MONOCHROME2 with no windows: identity, so it looks
    # exactly as saved even when it does not span 0..255.
    stored = np.arange(20, 220, dtype=np.uint8).reshape(10, 20)
    spec = PixelSpec(rows=10, columns=20)
    pipeline = DisplayPipeline(stored, spec)
    assert pipeline.default_preset.kind == "identity"
    assert pipeline.default_reason is None
    assert [p.label for p in pipeline.presets] == ["As saved", "Automatic", "Full range"]
    assert np.array_equal(pipeline.render(), stored)
    full = pipeline.render_preset(pipeline.presets[-1])  # full range stretches instead
    assert full.min() == 0
    assert full.max() == 255


def test_plain_16bit_image_gets_automatic_window():
    # A 16-bit PNG usually holds a 12-bit radiograph: as saved it would be nearly black.
    stored = radiograph()
    rows, columns = stored.shape
    spec = PixelSpec(rows, columns, bits_allocated=16, bits_stored=16, high_bit=15)
    pipeline = DisplayPipeline(stored, spec)
    assert pipeline.default_preset.kind == "auto"


# ------------------------------------------------------- LUT path equals the reference


@pytest.mark.parametrize(
    ("dtype", "slope", "intercept", "photometric"),
    [
        # Unsigned 12-bit radiograph, no rescale.
        (np.uint16, 1.0, 0.0, "MONOCHROME2"),
        # Fractional slope: modality values are not integers.
        (np.uint16, 0.5, -100.0, "MONOCHROME2"),
        # Signed CT-like data with the usual intercept, MONOCHROME1 for good measure.
        (np.int16, 1.0, -1024.0, "MONOCHROME1"),
    ],
)
@pytest.mark.parametrize(
    "window",
    [
        Window(2048, 4096),
        Window(1000, 300),
        Window(-500, 2),
        Window(700, 1),
        Window(1500, 777, function="LINEAR_EXACT"),
        Window(1200, 400, function="SIGMOID"),
    ],
)
def test_lut_matches_float_reference(dtype, slope, intercept, photometric, window):
    rng = np.random.default_rng(12)
    stored = rng.integers(0, 4096, size=(64, 96)).astype(dtype)
    if dtype == np.int16:
        stored = (stored - 2048).astype(np.int16)
    spec = make_spec(
        stored, rescale_slope=slope, rescale_intercept=intercept, photometric=photometric
    )
    pipeline = DisplayPipeline(stored, spec)
    for invert in (False, True):
        image = pipeline.render(window, invert=invert)
        assert image.dtype == np.uint8
        expected = reference_display(stored, spec, window, invert=invert)
        assert np.abs(image.astype(np.int16) - expected).max() <= 1


def test_wide_int32_range_uses_exact_lut():
    # 32-bit data (e.g. RT dose) spanning more than 65536 values: uint32 index, still
    # exact against the reference.
    rng = np.random.default_rng(3)
    stored = rng.integers(-50_000, 150_000, size=(50, 60)).astype(np.int32)
    spec = make_spec(stored, bits_stored=32)
    pipeline = DisplayPipeline(stored, spec)
    window = Window(20_000, 30_000)
    assert pipeline.build_lut(window).size == stored.max() - stored.min() + 1
    expected = reference_display(stored, spec, window)
    assert np.abs(pipeline.render(window).astype(np.int16) - expected).max() <= 1


def test_non_contiguous_input_is_fine():
    # Callers may pass a view (a frame of a multi-frame array, a Fortran-ordered decode).
    stored = np.asfortranarray(radiograph())
    pipeline = DisplayPipeline(stored[::2, 1:], make_spec(stored[::2, 1:]))
    image = pipeline.render(Window(2048, 4096))
    expected = reference_display(stored[::2, 1:], make_spec(stored[::2, 1:]), Window(2048, 4096))
    assert image.flags.c_contiguous
    assert np.abs(image.astype(np.int16) - expected).max() <= 1


# ------------------------------------------------------------------ statistics, API


def test_auto_window_spans_percentiles():
    # 1000 pixels 0..999: the 0.5 % / 99.5 % points are 4 and 994, mapped exactly.
    assert AUTO_PERCENTILES == (0.5, 99.5)
    stored = np.arange(1000, dtype=np.uint16).reshape(20, 50)
    pipeline = DisplayPipeline(stored, make_spec(stored))
    assert pipeline.auto_window == Window(499.5, 991, "Automatic")
    assert pipeline.full_window == Window(500, 1000, "Full range")
    image = pipeline.render_preset(pipeline.presets[-2])
    assert image.flat[4] == 0
    assert image.flat[994] == 255


def test_render_returns_new_array_unless_out_given():
    stored = radiograph()
    pipeline = DisplayPipeline(stored, make_spec(stored))
    first = pipeline.render(Window(2048, 4096))
    second = pipeline.render(Window(1000, 200))
    assert first.shape == stored.shape
    assert first.flags.c_contiguous
    assert not np.shares_memory(first, second)  # the caller may keep what it got
    buffer = np.empty(stored.shape, np.uint8)
    assert pipeline.render(Window(1000, 200), out=buffer) is buffer
    assert np.array_equal(buffer, second)
    with pytest.raises(ValueError, match="C-contiguous uint8"):
        pipeline.render(out=np.empty(stored.shape, np.uint16))


def test_build_lut_covers_the_stored_range_present():
    # A 12-bit image using only 1000..1999: 1000 entries, not 4096.
    stored = np.arange(1000, 2000, dtype=np.uint16).reshape(10, 100)
    pipeline = DisplayPipeline(stored, make_spec(stored))
    lut = pipeline.build_lut(Window(1500, 1000))
    assert pipeline.lut_first == 1000
    assert lut.dtype == np.uint8
    assert lut.shape == (1000,)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        # An invalid window given explicitly is a caller error, not silently fixed.
        (lambda p: p.build_lut(Window(40, 0)), ValueError),
        # A window and a VOI LUT at the same time are ambiguous.
        (lambda p: p.build_lut(Window(40, 400), LutData(0, 8, np.arange(256))), ValueError),
        (lambda p: p.render_preset(Preset("empty")), ValueError),
    ],
)
def test_api_misuse_is_loud(call, error):
    stored = radiograph()
    pipeline = DisplayPipeline(stored, make_spec(stored))
    with pytest.raises(error):
        call(pipeline)


@pytest.mark.parametrize(
    ("stored", "error"),
    [
        (np.zeros((2, 3, 4), np.uint16), ValueError),  # a multi-frame block, not a frame
        (np.zeros((2, 3), np.float32), TypeError),  # float data is not stored values
        (np.zeros((0, 3), np.uint16), ValueError),
    ],
)
def test_bad_input_rejected(stored, error):
    with pytest.raises(error):
        DisplayPipeline(stored, PixelSpec(rows=2, columns=3))


# ----------------------------------------------------------------------- mouse drag


@pytest.mark.parametrize(
    ("dx", "dy", "expected"),
    [
        # Range 0..4096 → 8 modality units per screen pixel.
        (10, 0, Window(1000, 580)),  # right: wider, less contrast
        (-10, 0, Window(1000, 420)),  # left: narrower
        (0, 10, Window(1080, 500)),  # down: higher center, darker
        (0, -10, Window(920, 500)),  # up: lower center, brighter
        (-1000, 0, Window(1000, 1)),  # width never drops below 1
    ],
)
def test_window_for_drag_directions(dx, dy, expected):
    start = Window(1000, 500, "BONE")
    assert window_for_drag(start, dx, dy, (0.0, 4096.0)) == expected


def test_drag_down_darkens_the_image():
    stored = radiograph()
    pipeline = DisplayPipeline(stored, make_spec(stored))
    start = pipeline.auto_window
    darker = window_for_drag(start, 0, 40, pipeline.modality_range)
    assert pipeline.render(darker).mean() < pipeline.render(start).mean()


def test_drag_keeps_the_function():
    moved = window_for_drag(Window(0, 10, function="SIGMOID"), 1, 1, (0.0, 0.0))
    assert moved.function == "SIGMOID"
    assert moved.width >= 1


# ------------------------------------------------------------------------- Qt-free


def test_display_imports_without_qt_or_pydicom():
    code = (
        "import sys, viewer.display; "
        "bad = [m for m in ('PySide6', 'pydicom', 'shiboken6') if m in sys.modules]; "
        "sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


def test_large_images_map_in_two_halves_identically():
    # ≥ 1 Mpx frames are gathered in two halves on two threads: every pixel, including
    # both sides of the split, must equal a plain LUT lookup.
    from viewer import display

    rng = np.random.default_rng(7)
    stored = rng.integers(0, 4096, (1100, 1000), dtype=np.uint16)
    assert stored.size >= display._SPLIT_PIXELS
    pipeline = DisplayPipeline(stored, PixelSpec(rows=1100, columns=1000, bits_allocated=16,
                                                 bits_stored=12, high_bit=11))
    window = Window(1500.0, 900.0)
    lut = pipeline.build_lut(window)
    expected = lut[(stored.astype(np.int64) - pipeline.lut_first)]
    assert np.array_equal(pipeline.render(window), expected)
