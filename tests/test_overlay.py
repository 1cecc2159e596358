"""Heatmap colouring (Qt-free)."""

from __future__ import annotations

import numpy as np
import pytest

from viewer.overlay import COLORMAPS, FADE_BELOW, blend, colormap, heatmap_rgba


@pytest.mark.parametrize("name", COLORMAPS)
def test_colormaps_have_256_entries(name):
    table = colormap(name)
    assert table.shape == (256, 3) and table.dtype == np.uint8


@pytest.mark.parametrize("name", ["viridis", "hot"])
def test_sequential_colormaps_run_dark_to_bright(name):
    # Perceptual maps: luminance grows with attention (jet, a rainbow, does not).
    lum = colormap(name).astype(float) @ np.array([0.299, 0.587, 0.114])
    assert np.all(np.diff(lum) > -1.0) and lum[-1] > lum[0] + 100


def test_jet_runs_blue_to_red():
    table = colormap("jet")
    assert table[0, 2] > table[0, 0]  # blue end
    assert table[-1, 0] > table[-1, 2]  # red end


def test_unknown_colormap_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="viridis"):
        colormap("rainbow-unicorn")


@pytest.mark.parametrize("value, opacity, alpha", [
    (0.0, 0.5, 0),  # no attention: fully transparent, anatomy untouched
    (FADE_BELOW / 2, 1.0, 128),  # half-way up the fade ramp
    (FADE_BELOW, 0.5, 128),  # full chosen opacity from the fade point on
    (1.0, 1.0, 255),
    (np.nan, 1.0, 0),  # NaN counts as no attention
    (2.0, 1.0, 255),  # out-of-range values are clipped, not wrapped
])
def test_alpha_follows_value_and_opacity(value, opacity, alpha):
    rgba = heatmap_rgba(np.array([[value]], dtype=np.float32), "jet", opacity)
    assert rgba.shape == (1, 1, 4)
    assert rgba[0, 0, 3] == pytest.approx(alpha, abs=1)


def test_blend_keeps_gray_where_cam_is_zero_and_colours_hot_spots():
    gray = np.full((4, 4), 100, np.uint8)
    cam = np.zeros((4, 4), np.float32)
    cam[0, 0] = 1.0
    out = blend(gray, cam, "jet", 1.0)
    assert out.shape == (4, 4, 3)
    assert tuple(out[3, 3]) == (100, 100, 100)
    assert tuple(out[0, 0]) == tuple(colormap("jet")[255])
