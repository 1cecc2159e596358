"""Heatmap overlays (Qt-free): colormaps and the RGBA image drawn over a view.

A Grad-CAM map is a float array in [0, 1] on the image's own pixel grid, so the overlay
is drawn with the same transform as the image and stays registered under zoom, pan,
rotation and flip.
"""

from __future__ import annotations

import numpy as np

#: Control points (value, R, G, B) of each colormap, interpolated linearly to 256 entries.
_CONTROL = {
    # The classic rainbow most Grad-CAM figures use (blue → cyan → yellow → red).
    "jet": [(0.0, 0, 0, 128), (0.125, 0, 0, 255), (0.375, 0, 255, 255), (0.625, 255, 255, 0),
            (0.875, 255, 0, 0), (1.0, 128, 0, 0)],
    # Perceptually uniform, colour-blind friendly (matplotlib's viridis, sampled).
    "viridis": [(0.0, 68, 1, 84), (0.111, 72, 40, 120), (0.222, 62, 73, 137),
                (0.333, 49, 104, 142), (0.444, 38, 130, 142), (0.556, 31, 158, 137),
                (0.667, 53, 183, 121), (0.778, 110, 206, 88), (0.889, 181, 222, 43),
                (1.0, 253, 231, 37)],
    # Black-body: dark red → yellow → white.
    "hot": [(0.0, 11, 0, 0), (0.365, 255, 0, 0), (0.746, 255, 255, 0), (1.0, 255, 255, 255)],
}
COLORMAPS = tuple(_CONTROL)

#: Below this CAM value the overlay fades out linearly, so low attention leaves the anatomy
#: visible; at and above it the overlay has the full chosen opacity.
FADE_BELOW = 0.25


def colormap(name: str) -> np.ndarray:
    """(256, 3) uint8 table of colormap ``name``; unknown names raise ValueError."""
    if name not in _CONTROL:
        raise ValueError(f"unknown colormap {name!r}; choose one of {', '.join(COLORMAPS)}")
    pts = np.array(_CONTROL[name], dtype=float)
    x = np.linspace(0.0, 1.0, 256)
    table = np.stack([np.interp(x, pts[:, 0], pts[:, c]) for c in (1, 2, 3)], axis=1)
    return np.round(table).astype(np.uint8)


def heatmap_rgba(cam: np.ndarray, cmap: str = "jet", opacity: float = 0.5) -> np.ndarray:
    """Colour a CAM for drawing over the image.

    Parameters
    ----------
    cam
        float array (H, W), values in [0, 1] (clipped; NaN counts as 0).
    cmap
        One of :data:`COLORMAPS`.
    opacity
        Overlay opacity in [0, 1] where the CAM is at or above :data:`FADE_BELOW`.

    Returns
    -------
    numpy.ndarray
        (H, W, 4) uint8, non-premultiplied RGBA, C-contiguous.
    """
    c = np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0)
    c = np.clip(c, 0.0, 1.0)
    idx = np.round(c * 255).astype(np.uint8)
    rgba = np.empty(c.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = colormap(cmap)[idx]
    alpha = np.clip(c / FADE_BELOW, 0.0, 1.0) * float(np.clip(opacity, 0.0, 1.0)) * 255.0
    rgba[..., 3] = np.round(alpha).astype(np.uint8)
    return rgba


def blend(gray: np.ndarray, cam: np.ndarray, cmap: str = "jet",
          opacity: float = 0.5) -> np.ndarray:
    """Blend a heatmap over an 8-bit grayscale image → (H, W, 3) uint8 RGB.

    Used for CAM PNGs (``radview predict --cams``) and reports; the viewer draws the
    RGBA overlay with Qt instead.
    """
    rgba = heatmap_rgba(cam, cmap, opacity).astype(np.float32)
    a = rgba[..., 3:4] / 255.0
    base = np.repeat(np.asarray(gray, dtype=np.float32)[..., None], 3, axis=2)
    out = base * (1.0 - a) + rgba[..., :3] * a
    return np.round(out).astype(np.uint8)
