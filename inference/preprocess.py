"""Model input from a displayed radiograph, and Grad-CAM maps back onto it.

The model input is defined by the bundle (:class:`InputSpec`: size, channels, mean/std,
resize mode), never by what is on screen: the caller passes the image rendered in its
*default* display window as ``uint8`` (0 black … 255 white).

:func:`prepare_image` does the integer work first and the float work on the small image only:

1. resize the ``uint8`` image with Pillow, bilinear with antialiasing (Pillow's
   ``BILINEAR`` widens its support by the reduction factor when shrinking, so every source
   pixel contributes: no aliasing of trabecular texture or grid lines);
2. for ``"letterbox"``, paste it centred on a black (0) canvas of the model size, keeping
   the aspect ratio; ``"stretch"`` fills the canvas, changing the aspect ratio;
3. one fused float pass over the small ``uint8`` tensor:
   ``x / 255 → (x − mean[c]) / std[c]`` for each of the ``channels`` channels (the gray
   image is replicated).

A float pass over the full-resolution image (≈ 5 M pixels for a 2.5 k × 2 k radiograph)
costs more than the model's own preprocessing; it is never done here.

:func:`cam_to_image` inverts step 1–2 for a Grad-CAM map so that the overlay registers
with the image pixel for pixel: the region of the model input that holds the image
(:func:`placement`) is cropped and resized to the image's own shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:  # torch is imported where tensors are made, so that bundle discovery
    import torch  # (which needs InputSpec) stays light

#: Resize modes a bundle may name.
RESIZE_MODES = ("stretch", "letterbox")


@dataclass(frozen=True)
class InputSpec:
    """What a model expects as input.

    Attributes
    ----------
    size
        ``(height, width)`` of the model input, pixels.
    channels
        1 or 3; the gray image is replicated to each channel before normalization.
    mean, std
        Per-channel normalization of values scaled to 0–1 (one value, or one per channel).
    resize
        ``"stretch"`` (fill the input, aspect ratio not kept) or ``"letterbox"`` (keep the
        aspect ratio, centre, pad with black).
    """

    size: tuple[int, int]
    channels: int = 3
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    resize: str = "stretch"

    def __post_init__(self) -> None:
        if self.resize not in RESIZE_MODES:
            raise ValueError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                raise ValueError(f"{name} needs 1 or {self.channels} values, got {len(values)}")
        if any(not s > 0 for s in self.std):
            raise ValueError(f"std values must be > 0, got {self.std}")


@dataclass(frozen=True)
class Placement:
    """Where the image lies inside the model input, pixels of the model input.

    The image occupies rows ``top … top + height − 1`` and columns
    ``left … left + width − 1``; the rest is letterbox padding.
    """

    top: int
    left: int
    height: int
    width: int


def placement(image_shape: tuple[int, int], spec: InputSpec) -> Placement:
    """The rectangle of the model input that the image fills (see :class:`Placement`).

    Parameters
    ----------
    image_shape
        ``(rows, columns)`` of the original image.
    spec
        The model input.

    Notes
    -----
    Letterbox scale is ``min(h / rows, w / columns)``; the scaled size is rounded to whole
    pixels (at least 1) and centred, the odd padding pixel going to the bottom/right.
    """
    rows, cols = int(image_shape[0]), int(image_shape[1])
    h, w = spec.size
    if spec.resize == "stretch":
        return Placement(0, 0, h, w)
    scale = min(h / rows, w / cols)
    nh = min(h, max(1, round(rows * scale)))
    nw = min(w, max(1, round(cols * scale)))
    return Placement((h - nh) // 2, (w - nw) // 2, nh, nw)


def _check_pixels(pixels: np.ndarray) -> None:
    if not isinstance(pixels, np.ndarray) or pixels.dtype != np.uint8 or pixels.ndim != 2:
        got = (f"{pixels.dtype} array of shape {pixels.shape}"
               if isinstance(pixels, np.ndarray) else type(pixels).__name__)
        raise ValueError(f"expected a 2-D uint8 image (rows, columns), got {got}")
    if pixels.size == 0:
        raise ValueError("expected a non-empty image, got shape " + str(pixels.shape))


def resize_uint8(pixels: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Steps 1–2 of the module notes: the ``uint8`` image at the model's size.

    Parameters
    ----------
    pixels
        ``uint8`` (rows, columns), the image in its default display window.
    spec
        The model input.

    Returns
    -------
    numpy.ndarray
        ``uint8`` of shape ``spec.size``.
    """
    _check_pixels(pixels)
    h, w = spec.size
    place = placement(pixels.shape, spec)
    image = Image.fromarray(np.ascontiguousarray(pixels))
    if (place.height, place.width) != pixels.shape:
        image = image.resize((place.width, place.height), Image.Resampling.BILINEAR)
    if (place.height, place.width) == (h, w):
        return np.array(image)  # a writable copy (torch.from_numpy warns on read-only)
    canvas = np.zeros((h, w), dtype=np.uint8)
    canvas[place.top:place.top + place.height, place.left:place.left + place.width] = image
    return canvas


def to_tensor(small: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Step 3: ``uint8`` (N, h, w) → normalized float32 (N, channels, h, w), one pass."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(small)).unsqueeze(1)  # (N, 1, h, w) uint8
    c = spec.channels
    mean = torch.tensor(spec.mean * (c if len(spec.mean) == 1 else 1), dtype=torch.float32)
    std = torch.tensor(spec.std * (c if len(spec.std) == 1 else 1), dtype=torch.float32)
    scale = (1.0 / (255.0 * std)).view(1, c, 1, 1)
    offset = (-mean / std).view(1, c, 1, 1)
    return torch.addcmul(offset, t.to(torch.float32), scale)  # (x/255 - mean) / std


def prepare_image(pixels: np.ndarray, spec: InputSpec) -> torch.Tensor:
    """Model input for one image.

    Parameters
    ----------
    pixels
        ``uint8`` (rows, columns): the image in its default display window, 0 black.
    spec
        The model input (from the bundle manifest).

    Returns
    -------
    torch.Tensor
        float32 of shape ``(1, spec.channels, *spec.size)``, normalized with the spec's
        mean and std.

    Raises
    ------
    ValueError
        When ``pixels`` is not a non-empty 2-D ``uint8`` array.
    """
    return to_tensor(resize_uint8(pixels, spec)[None], spec)


def prepare_batch(images: Sequence[np.ndarray], spec: InputSpec) -> torch.Tensor:
    """:func:`prepare_image` for several images: float32 ``(N, channels, *spec.size)``."""
    if not images:
        raise ValueError("no images to prepare")
    return to_tensor(np.stack([resize_uint8(p, spec) for p in images]), spec)


def cam_to_image(cam: np.ndarray, spec: InputSpec, image_shape: tuple[int, int]) -> np.ndarray:
    """Map a CAM over the model input back onto the original pixel grid.

    Parameters
    ----------
    cam
        float (h', w'), values in [0, 1], covering the whole model input (any resolution:
        the model input's own ``spec.size`` or the target layer's coarser grid).
    spec
        The model input the CAM was computed for.
    image_shape
        ``(rows, columns)`` of the original image.

    Returns
    -------
    numpy.ndarray
        float32 of shape ``image_shape`` in [0, 1]: the part of the CAM that lies over the
        image (letterbox padding dropped), resized bilinearly so that model-input pixel
        centres land on the image pixels they came from.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"expected a 2-D CAM, got shape {cam.shape}")
    rows, cols = int(image_shape[0]), int(image_shape[1])
    place = placement((rows, cols), spec)
    h, w = spec.size
    sy, sx = cam.shape[0] / h, cam.shape[1] / w
    box = (place.left * sx, place.top * sy, (place.left + place.width) * sx,
           (place.top + place.height) * sy)
    if all(abs(v - round(v)) < 1e-6 for v in box):
        # The usual case (CAM at the model's size): crop, then one bilinear resize with
        # pixel centres aligned (align_corners=False), ~10x faster than Pillow's "F" mode.
        x0, y0, x1, y1 = (round(v) for v in box)
        import torch

        crop = torch.from_numpy(np.ascontiguousarray(cam[y0:y1, x0:x1]))[None, None]
        out = torch.nn.functional.interpolate(crop, size=(rows, cols), mode="bilinear",
                                              align_corners=False)[0, 0].numpy()
    else:
        image = Image.fromarray(np.ascontiguousarray(cam))  # float32 → mode "F"
        out = np.array(image.resize((cols, rows), Image.Resampling.BILINEAR, box=box))
    np.clip(out, 0.0, 1.0, out=out)
    return out
