"""Augmentations for training, and the stress transforms the router is measured under.

Two training recipes act on the cached ``uint8`` image (``(1, h, w)`` tensors, h = w =
the model input):

* :class:`Augment` — the MURA paper's: horizontal flip and rotation (the default);
* :class:`DomainRandomize` — ``--augment domain``: films from other hospitals look unlike
  FracAtlas (tight crops, L/R lead markers, rulers, casts, two views on one film, other
  processing, JPEG artefacts, borders, inverted films). Each transform fires with its own
  probability; their parameters are drawn from a NumPy generator seeded from torch's RNG, so
  a seeded run is repeatable (torch seeds each DataLoader worker).

:data:`STRESS_TRANSFORMS` are fixed-strength versions of those transforms plus four that
training never uses (``held_out=True``); ``bench``-style stress measurement applies each to
every validation film and counts how often the routing decision changes.

All functions take and return 2-D ``uint8`` arrays of the same shape.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter, ImageFont

Array = np.ndarray
Rng = np.random.Generator


# ----------------------------------------------------------------------------- pieces


def _fit(img: Array, h: int, w: int) -> Array:
    """Resize ``img`` to (h, w) keeping its aspect ratio, centred on black."""
    ih, iw = img.shape
    scale = min(h / ih, w / iw)
    nh, nw = max(1, round(ih * scale)), max(1, round(iw * scale))
    small = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((h, w), np.uint8)
    y, x = (h - nh) // 2, (w - nw) // 2
    out[y:y + nh, x:x + nw] = small
    return out


def content_box(img: Array, level: int = 12) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1) of the pixels above ``level`` (the letterboxed film), or the whole
    image when it is all dark."""
    ys = np.flatnonzero(img.max(axis=1) > level)
    xs = np.flatnonzero(img.max(axis=0) > level)
    if ys.size == 0 or xs.size == 0:
        return 0, img.shape[0], 0, img.shape[1]
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def crop_zoom(img: Array, rng: Rng, scale: float) -> Array:
    """A crop of ``scale`` × the film's extent (``scale`` < 1: tight, like MURA's crops),
    placed at random within the film, resized back to the image size."""
    h, w = img.shape
    y0, y1, x0, x1 = content_box(img)
    ch, cw = max(8, int((y1 - y0) * scale)), max(8, int((x1 - x0) * scale))
    cy = int(rng.integers(y0, max(y0 + 1, y1 - ch + 1)))
    cx = int(rng.integers(x0, max(x0 + 1, x1 - cw + 1)))
    return _fit(img[cy:cy + ch, cx:cx + cw], h, w)


def zoom_out(img: Array, rng: Rng, scale: float, fill: int = 0) -> Array:
    """The film shrunk to ``scale`` (< 1) of the frame at a random place: a loose
    collimation with a wide border."""
    h, w = img.shape
    nh, nw = max(8, int(h * scale)), max(8, int(w * scale))
    small = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
    out = np.full((h, w), fill, np.uint8)
    y = int(rng.integers(0, h - nh + 1))
    x = int(rng.integers(0, w - nw + 1))
    out[y:y + nh, x:x + nw] = small
    return out


def two_up(img: Array, rng: Rng) -> Array:
    """Two views of the part side by side on one film (the second a shifted, possibly
    mirrored copy), with a thin separator."""
    h, w = img.shape
    a = crop_zoom(img, rng, float(rng.uniform(0.75, 1.0)))
    b = crop_zoom(img, rng, float(rng.uniform(0.75, 1.0)))
    if rng.random() < 0.5:
        b = b[:, ::-1]
    half = w // 2
    left, right = _fit(a, h, half), _fit(b, h, w - half)
    out = np.concatenate([left, right], axis=1)
    if rng.random() < 0.5:
        out[:, half - 1:half + 1] = int(rng.integers(0, 256))
    return out


_FONT_CACHE: dict[int, ImageFont.ImageFont] = {}


def _font(size: int) -> ImageFont.ImageFont:
    if size not in _FONT_CACHE:
        try:
            _FONT_CACHE[size] = ImageFont.load_default(size=size)
        except TypeError:  # Pillow without FreeType sizes
            _FONT_CACHE[size] = ImageFont.load_default()
    return _FONT_CACHE[size]


def burn_text(img: Array, rng: Rng, text: str | None = None, boxed: bool | None = None) -> Array:
    """A bright lead marker ("L", "R", "PA", "LAT"…) or a line of text burned in near an
    edge, optionally inside a bright box."""
    h, w = img.shape
    pil = Image.fromarray(img)
    draw = ImageDraw.Draw(pil)
    if text is None:
        text = str(rng.choice(["L", "R", "L", "R", "PA", "LAT", "OBL", "AP", "DX", "SX",
                               "12:04", "HOSP 3", "R  PA", "ERECT"]))
    size = int(h * rng.uniform(0.05, 0.12))
    font = _font(max(6, size))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    tw, th = x1 - x0, y1 - y0
    corner_x = [int(w * 0.04), max(0, w - tw - int(w * 0.06))]
    corner_y = [int(h * 0.04), max(0, h - th - int(h * 0.08))]
    x = int(rng.choice(corner_x)) + int(rng.integers(-4, 5))
    y = int(rng.choice(corner_y)) + int(rng.integers(-4, 5))
    shade = int(rng.integers(200, 256))
    if boxed if boxed is not None else rng.random() < 0.4:
        pad = max(2, size // 5)
        draw.rectangle((x - pad, y - pad, x + tw + pad, y + th + 2 * pad),
                       outline=shade, width=max(1, size // 10))
    draw.text((x - x0, y - y0), text, fill=shade, font=font)
    return np.asarray(pil).copy()


def ruler(img: Array, rng: Rng) -> Array:
    """A radiopaque ruler (a bright strip with tick marks) along one edge."""
    out = img.copy()
    h, w = out.shape
    vertical = rng.random() < 0.5
    length = h if vertical else w
    thick = max(4, int(length * rng.uniform(0.03, 0.06)))
    pos = int(rng.integers(0, max(1, (w if vertical else h) - thick)))
    if rng.random() < 0.7:  # near an edge, as usual
        pos = int(rng.choice([int(0.02 * length), (w if vertical else h) - thick - 2]))
    base = int(rng.integers(120, 200))
    tick = int(rng.integers(220, 256))
    strip = np.full((length, thick), base, np.uint8)
    step = max(3, int(length / rng.uniform(25, 60)))
    for i, t in enumerate(range(0, length, step)):
        strip[t:t + 1, : thick // (1 if i % 5 == 0 else 2)] = tick
    if vertical:
        out[:, pos:pos + thick] = strip[:, : out[:, pos:pos + thick].shape[1]]
    else:
        seg = out[pos:pos + thick, :]
        out[pos:pos + thick, :] = strip.T[: seg.shape[0], :]
    return out


def cast(img: Array, rng: Rng) -> Array:
    """A plaster or fibreglass cast: a smooth, denser band over the middle of the film that
    adds grey and lowers bone contrast, with a mesh texture now and then."""
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cy, cx = h * rng.uniform(0.3, 0.7), w * rng.uniform(0.3, 0.7)
    angle = rng.uniform(0, np.pi)
    half_width = min(h, w) * rng.uniform(0.18, 0.35)
    d = np.abs((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle))
    along = np.abs((yy - cy) * np.sin(angle) + (xx - cx) * np.cos(angle))
    band = np.clip((half_width - d) / (0.15 * half_width), 0, 1)
    band *= np.clip((max(h, w) * rng.uniform(0.25, 0.5) - along) / (0.1 * max(h, w)), 0, 1)
    density = rng.uniform(40, 110)
    texture = 0.0
    if rng.random() < 0.4:
        period = rng.uniform(4, 10)
        texture = 12 * (np.sin(xx / period) * np.sin(yy / period) > 0.3)
    x = img.astype(np.float32)
    x = x * (1 - 0.35 * band) + band * (density + texture)
    return np.clip(x, 0, 255).astype(np.uint8)


def gamma(img: Array, g: float) -> Array:
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** g, 0, 255).astype(np.uint8)
    return lut[img]


def contrast(img: Array, low: float, high: float) -> Array:
    """Stretch the grey range [low, high] (fractions of 255) to 0–255."""
    lo, hi = 255 * low, max(255 * high, 255 * low + 1)
    lut = np.clip((np.arange(256) - lo) * 255.0 / (hi - lo), 0, 255).astype(np.uint8)
    return lut[img]


def unsharp(img: Array, radius: float, percent: int) -> Array:
    pil = Image.fromarray(img).filter(ImageFilter.UnsharpMask(radius, percent, 2))
    return np.asarray(pil).copy()


def blur(img: Array, radius: float) -> Array:
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius))).copy()


def noise(img: Array, rng: Rng, sigma: float) -> Array:
    x = img.astype(np.float32) + rng.normal(0, sigma, img.shape).astype(np.float32)
    return np.clip(x, 0, 255).astype(np.uint8)


def jpeg(img: Array, quality: int) -> Array:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert("L")).copy()


def rotate(img: Array, degrees: float) -> Array:
    return np.asarray(Image.fromarray(img).rotate(degrees, Image.BILINEAR, fillcolor=0)).copy()


def border(img: Array, rng: Rng, fraction: float, fill: int) -> Array:
    """Bars of ``fill`` over ``fraction`` of the frame on one or two sides (letterboxing,
    collimator shadows)."""
    out = img.copy()
    h, w = out.shape
    sides = rng.choice(4, size=int(rng.integers(1, 3)), replace=False)
    for side in sides:
        n = max(1, int((h if side < 2 else w) * fraction * rng.uniform(0.5, 1.0)))
        if side == 0:
            out[:n] = fill
        elif side == 1:
            out[h - n:] = fill
        elif side == 2:
            out[:, :n] = fill
        else:
            out[:, w - n:] = fill
    return out


def equalize(img: Array) -> Array:
    hist = np.bincount(img.ravel(), minlength=256).astype(np.float64)
    cdf = hist.cumsum()
    cdf = (cdf - cdf.min()) / max(cdf.max() - cdf.min(), 1.0)
    return (cdf * 255).astype(np.uint8)[img]


# ---------------------------------------------------------------------- the recipe


class DomainRandomize:
    """``--augment domain``: the MURA recipe's flip and rotation plus everything that makes
    films from other hospitals look different (see the module notes).

    Parameters
    ----------
    hflip, rotate
        As for :class:`inference.training.train.Augment`.
    strength
        Multiplies every transform's probability (0: flip/rotation only).
    """

    def __init__(self, hflip: float = 0.5, rotate: float = 30.0, strength: float = 1.0) -> None:
        self.hflip, self.rotate, self.strength = float(hflip), float(rotate), float(strength)

    def _p(self, rng: Rng, p: float) -> bool:
        return rng.random() < min(1.0, p * self.strength)

    def apply(self, img: Array, rng: Rng) -> Array:
        """One random draw of the recipe on a 2-D ``uint8`` image."""
        x = img
        # geometry: framing first (as a different collimation would), then view layout
        r = rng.random()
        if r < 0.35 * self.strength:
            x = crop_zoom(x, rng, float(rng.uniform(0.45, 0.85)))
        elif r < 0.55 * self.strength:
            x = zoom_out(x, rng, float(rng.uniform(0.6, 0.9)))
        if self._p(rng, 0.15):
            x = two_up(x, rng)
        if self._p(rng, 0.12):
            x = np.rot90(x, k=int(rng.choice([1, 3]))).copy()
        if rng.random() < self.hflip:
            x = x[:, ::-1].copy()
        if self.rotate > 0:
            x = rotate(x, float(rng.uniform(-self.rotate, self.rotate)))
        # things in the film
        if self._p(rng, 0.15):
            x = cast(x, rng)
        if self._p(rng, 0.15):
            x = ruler(x, rng)
        for _ in range(int(rng.integers(0, 3)) if self._p(rng, 0.6) else 0):
            x = burn_text(x, rng)
        if self._p(rng, 0.25):
            x = border(x, rng, 0.12, int(rng.choice([0, 0, 255, int(rng.integers(0, 256))])))
        # processing
        if self._p(rng, 0.5):
            x = gamma(x, float(np.exp(rng.uniform(np.log(0.55), np.log(1.8)))))
        if self._p(rng, 0.35):
            x = contrast(x, float(rng.uniform(0, 0.2)), float(rng.uniform(0.75, 1.0)))
        if self._p(rng, 0.25):
            x = unsharp(x, float(rng.uniform(1, 4)), int(rng.integers(60, 200)))
        elif self._p(rng, 0.15):
            x = blur(x, float(rng.uniform(0.5, 1.5)))
        if self._p(rng, 0.1):
            x = equalize(x)
        if self._p(rng, 0.3):
            x = noise(x, rng, float(rng.uniform(2, 10)))
        if self._p(rng, 0.3):
            x = jpeg(x, int(rng.integers(20, 85)))
        if self._p(rng, 0.08):
            x = 255 - x
        return x

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        rng = np.random.default_rng(seed)
        out = self.apply(x[0].numpy(), rng)
        return torch.from_numpy(np.ascontiguousarray(out))[None]


# ---------------------------------------------------------------------- stress set


@dataclass(frozen=True)
class StressTransform:
    """A fixed-strength transform for the stress test; ``held_out`` when training never
    sees it."""

    name: str
    fn: Callable[[Array, Rng], Array]
    held_out: bool = False


def _low_resolution(img: Array, rng: Rng) -> Array:
    h, w = img.shape
    small = Image.fromarray(img).resize((w // 3, h // 3), Image.BOX)
    return np.asarray(small.resize((w, h), Image.NEAREST)).copy()


def _vignette(img: Array, rng: Rng) -> Array:
    h, w = img.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    gx = (xx / w - rng.uniform(0.3, 0.7)) * rng.choice([-1, 1])
    x = img.astype(np.float32) * (0.65 + 0.6 * np.clip(gx + 0.5, 0, 1))
    return np.clip(x, 0, 255).astype(np.uint8)


def _salt_pepper(img: Array, rng: Rng) -> Array:
    out = img.copy()
    mask = rng.random(img.shape)
    out[mask < 0.01] = 0
    out[mask > 0.99] = 255
    return out


def _grid_lines(img: Array, rng: Rng) -> Array:
    """An anti-scatter grid's line pattern (stationary-grid artefact)."""
    h, w = img.shape
    period = float(rng.uniform(2.5, 4.0))
    lines = (np.sin(np.arange(w) * 2 * np.pi / period) > 0.6).astype(np.float32) * 18
    return np.clip(img.astype(np.float32) - lines[None, :], 0, 255).astype(np.uint8)


STRESS_TRANSFORMS: tuple[StressTransform, ...] = (
    StressTransform("tight crop 0.6", lambda x, r: crop_zoom(x, r, 0.6)),
    StressTransform("loose frame 0.7", lambda x, r: zoom_out(x, r, 0.7)),
    StressTransform("two views on one film", two_up),
    StressTransform("L/R lead markers", lambda x, r: burn_text(burn_text(x, r, "R", True), r,
                                                               "PA")),
    StressTransform("ruler", ruler),
    StressTransform("cast", cast),
    StressTransform("gamma 0.6", lambda x, r: gamma(x, 0.6)),
    StressTransform("gamma 1.7", lambda x, r: gamma(x, 1.7)),
    StressTransform("unsharp mask", lambda x, r: unsharp(x, 3.0, 150)),
    StressTransform("noise σ 8", lambda x, r: noise(x, r, 8.0)),
    StressTransform("JPEG q 25", lambda x, r: jpeg(x, 25)),
    StressTransform("rotated 90°", lambda x, r: np.rot90(x).copy()),
    StressTransform("rotated 15°", lambda x, r: rotate(x, 15.0)),
    StressTransform("black borders", lambda x, r: border(x, r, 0.15, 0)),
    StressTransform("inverted", lambda x, r: (255 - x).astype(np.uint8)),
    StressTransform("equalized", lambda x, r: equalize(x)),
    StressTransform("low resolution ÷3", _low_resolution, held_out=True),
    StressTransform("vignetting", _vignette, held_out=True),
    StressTransform("salt and pepper", _salt_pepper, held_out=True),
    StressTransform("grid lines", _grid_lines, held_out=True),
)
