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


#: Box colours (RGB): a "fracture" box solid, a "doubt" box dotted.
BOX_COLORS = {"fracture": (255, 48, 48), "doubt": (255, 200, 0)}
#: Dot and gap length of a "doubt" box outline, pixels of the image.
BOX_DOT = 6


def box_style(level: str) -> tuple[tuple[int, int, int], bool]:
    """``(rgb, dotted)`` of a box of ``level`` (``"fracture"`` solid, ``"doubt"`` dotted)."""
    return BOX_COLORS.get(level, BOX_COLORS["doubt"]), level != "fracture"


def draw_boxes(rgb: np.ndarray, boxes: list[dict], width: int | None = None) -> np.ndarray:
    """Draw box outlines on an (H, W, 3) uint8 image (a copy is returned).

    Parameters
    ----------
    rgb
        The image, e.g. from :func:`blend`.
    boxes
        ``{x0, y0, x1, y1, level}`` in the image's pixels (``x1``/``y1`` exclusive), as the
        engine gives them; ``"fracture"`` boxes are solid, ``"doubt"`` boxes dotted
        (:data:`BOX_COLORS`). Weakest first, so the best box is drawn on top.
    width
        Line width in pixels; default about 0.4 % of the image's larger side (at least 2).
    """
    out = np.array(rgb, dtype=np.uint8, copy=True)
    rows, cols = out.shape[:2]
    w = width or max(2, round(max(rows, cols) * 0.004))
    dot = max(BOX_DOT, 3 * w)
    for box in reversed(boxes):
        color, dotted = box_style(str(box.get("level")))
        x0, y0 = max(0, int(box["x0"])), max(0, int(box["y0"]))
        x1, y1 = min(cols, int(box["x1"])), min(rows, int(box["y1"]))
        if x1 <= x0 or y1 <= y0:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        mask[:w, :] = mask[-w:, :] = True
        mask[:, :w] = mask[:, -w:] = True
        if dotted:
            yy, xx = np.mgrid[y0:y1, x0:x1]
            mask &= ((xx + yy) // dot) % 2 == 0
        out[y0:y1, x0:x1][mask] = color
    return out
