"""Where: a dense fracture-heatmap head on the backbone, and boxes from its heatmap.

Why a heatmap head and not a torchvision detector
-------------------------------------------------
FracAtlas has 922 boxes on ~700 fractured films. A detector (RetinaNet, FCOS, Faster
R-CNN) brings anchors or centre-ness, an FPN, NMS and its own training loop and input
transform, and roughly doubles the parameters of an EfficientNet-Lite0. The heatmap head
is two 3 × 3 convolutions and one 1 × 1 on the features of one backbone layer (stride 8
or 16), trained with a per-cell binary cross-entropy against the box masks, next to the
image classifier in the same forward pass: same input, same cache, same loader, same
augmentation (the masks are rotated and flipped with the image), and a film without
boxes simply has no heat loss. Boxes come from the heatmap by threshold and connected
components (scipy), so a box's score is the head's own calibrated-on-validation peak heat,
and there is no NMS to tune. The price: adjacent fractures may merge into one box, and
box edges are quantized to the layer's stride (8–16 model-input pixels, about 1–3 % of a
film at 512 px).

Pieces
------
* :class:`DenseHeatmapHead`, built by :func:`build_box_head` from the manifest's
  ``box_head`` (``kind``, ``channels``, ``hidden``);
* :func:`attach_box_head`: runs the head on a layer's output in a forward hook and keeps
  the logits of the last forward pass (``model.box_heat``); the classifier's forward,
  Grad-CAM and DistributedDataParallel see the same model as without a head. The head's
  parameters are a submodule ``box_head`` of the model, so training checkpoints carry it;
  the bundle stores them in their own safetensors file (:func:`split_state`);
* :func:`box_masks` renders normalized boxes into model-input masks (training);
* :func:`heat_boxes` turns a heatmap into ``{x0, y0, x1, y1, score, level}`` boxes in
  image pixels, best first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.models import get_layer
from inference.preprocess import InputSpec, placement

#: Head kinds a manifest may name.
BOX_KINDS = ("dense_heatmap",)
#: State-dict prefix of the head inside a model it is attached to.
PREFIX = "box_head."
#: Box levels, strongest first.
LEVELS = ("fracture", "doubt")


class DenseHeatmapHead(nn.Module):
    """``conv3×3(channels→hidden) → ReLU → conv3×3 → ReLU → conv1×1(→1)``: one heat logit
    per cell of the backbone layer's grid."""

    def __init__(self, channels: int, hidden: int = 64) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1), nn.ReLU(inplace=True))
        self.out = nn.Conv2d(hidden, 1, 1)
        # Start with a low prior (RetinaNet's trick: p = 0.01 at init), so the rare
        # positive cells do not drown in a flood of early false heat.
        nn.init.constant_(self.out.bias, -4.595)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.body(x))


def build_box_head(kind: str, channels: int, hidden: int) -> nn.Module:
    """The head a manifest's ``box_head`` names.

    Raises
    ------
    ValueError
        For an unknown kind.
    """
    if kind != "dense_heatmap":
        raise ValueError(f"unknown box head kind {kind!r} (known: {', '.join(BOX_KINDS)})")
    return DenseHeatmapHead(channels, hidden)


def layer_channels(model: nn.Module, layer: str, channels: int = 3,
                   size: int = 64) -> tuple[int, int]:
    """``(channels, stride)`` of ``layer``'s output, from one small forward pass."""
    seen: dict[str, Any] = {}

    def hook(module: nn.Module, args: Any, out: Any) -> None:
        seen.setdefault("shape", tuple(out.shape))

    handle = get_layer(model, layer).register_forward_hook(hook)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, channels, size, size, device=next(model.parameters()).device))
    finally:
        handle.remove()
        model.train(was_training)
    shape = seen["shape"]
    return int(shape[1]), int(round(size / shape[2]))


def attach_box_head(model: nn.Module, layer: str, head: nn.Module, *,
                    score_weight: float = 0.0, score_offset: float = 0.0) -> list[Any]:
    """Make ``head`` a submodule ``box_head`` of ``model`` run on ``layer``'s output.

    After each forward pass ``model.box_heat`` holds the head's logits (N, 1, h', w')
    over the whole model input (h' = input / stride). With a non-zero ``score_weight`` or
    ``score_offset`` the model's output logit becomes

        classifier logit + score_weight · max over cells of the heat logits + score_offset

    so that the box head's peak votes in the probability (:func:`stacked_logit`; fitted on
    a selection split by :func:`inference.training.boxfit.fit_heat_stack`). Returns the
    hook handles.
    """
    model.box_head = head
    model.box_heat = None

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        model.box_heat = model.box_head(output)

    handles = [get_layer(model, layer).register_forward_hook(hook)]
    if score_weight or score_offset:
        def stack(module: nn.Module, args: Any, output: Any) -> Any:
            if model.box_heat is None:
                raise RuntimeError(f"the box head on {layer!r} did not run")
            return stacked_logit(output, model.box_heat, score_weight, score_offset)

        handles.append(model.register_forward_hook(stack))
    return handles


def stacked_logit(logits: torch.Tensor, heat: torch.Tensor, weight: float,
                  offset: float) -> torch.Tensor:
    """``logits`` (N, 1) + ``weight`` · the largest heat logit of each image + ``offset``."""
    peak = heat.flatten(1).amax(dim=1, keepdim=True).to(logits.dtype)
    return logits + weight * peak + offset


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor],
                                                         dict[str, torch.Tensor]]:
    """``(classifier state, head state)`` of a model with an attached head."""
    main = {k: v for k, v in state.items() if not k.startswith(PREFIX)}
    head = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    return main, head


# ------------------------------------------------------------------------- training


def box_masks(boxes: Sequence[Sequence[tuple[float, float, float, float]]],
              image_shapes: Sequence[tuple[int, int]], spec: InputSpec) -> np.ndarray:
    """``uint8`` (N, h, w) masks (255 inside a box) over the model input.

    Parameters
    ----------
    boxes
        Per image, boxes ``(x0, y0, x1, y1)`` as fractions (0–1) of the image's width and
        height (FracAtlas ``fracture_boxes.csv``).
    image_shapes
        ``(rows, columns)`` of each original image (for the letterbox placement).
    spec
        The model input.
    """
    h, w = spec.size
    out = np.zeros((len(boxes), h, w), dtype=np.uint8)
    for i, (items, shape) in enumerate(zip(boxes, image_shapes, strict=True)):
        place = placement(shape, spec)
        for x0, y0, x1, y1 in items:
            c0 = place.left + int(np.floor(min(x0, x1) * place.width))
            c1 = place.left + int(np.ceil(max(x0, x1) * place.width))
            r0 = place.top + int(np.floor(min(y0, y1) * place.height))
            r1 = place.top + int(np.ceil(max(y0, y1) * place.height))
            out[i, max(r0, 0):max(r1, r0 + 1), max(c0, 0):max(c1, c0 + 1)] = 255
    return out


def heat_targets(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Cell targets (N, 1, h', w') in {0, 1}: a cell is positive when any of its model-input
    pixels lies in a box (max pooling of the masks)."""
    m = masks.float().unsqueeze(1) if masks.ndim == 3 else masks.float()
    return (nn.functional.adaptive_max_pool2d(m, grid) > 127).float()


def heat_loss(heat: torch.Tensor, targets: torch.Tensor, has_boxes: torch.Tensor,
              pos_weight: float = 10.0) -> torch.Tensor:
    """Per-image mean BCE of the heat logits; 0 for images without box supervision
    (``has_boxes`` 0: a fractured film whose boxes are unknown)."""
    per_cell = nn.functional.binary_cross_entropy_with_logits(
        heat.float(), targets, reduction="none",
        pos_weight=torch.tensor(pos_weight, device=heat.device))
    return per_cell.flatten(1).mean(1) * has_boxes.float()


# ------------------------------------------------------------------------ inference


#: A box is the core of its heat component: the cells at or above this share of the
#: component's peak that connect to the peak; centred on their heat-weighted centroid.
#: Chosen on FracAtlas's selection split among the whole component's extent, the peak cell,
#: the peak of the upsampled heat and cores at 0.5 / 0.7 / 0.85 (top box's centre inside a
#: true box on 48 % of the selection split's boxed films, against 36 % for the extent).
BOX_CORE = 0.5


def heat_boxes(heat: np.ndarray, spec: InputSpec, image_shape: tuple[int, int], *,
               threshold: float, doubt_threshold: float,
               max_boxes: int = 10) -> list[dict[str, Any]]:
    """Boxes from one heatmap (probabilities 0–1 over the whole model input).

    Cells at or above ``doubt_threshold`` are grouped into 8-connected components, one box
    each. A component's box is its core — the cells at or above :data:`BOX_CORE` × its
    peak heat connected to the peak — as wide and tall as the core's cells and centred on
    their heat-weighted centroid (a long weak tail does not drag the box off the peak),
    mapped back through the letterbox placement to the image's pixels and clipped to it;
    its score is the component's peak heat and its level ``"fracture"`` at or above
    ``threshold``, else ``"doubt"``.

    Returns
    -------
    list of dict
        ``{"x0", "y0", "x1", "y1", "score", "level"}`` (pixels of the original image,
        ``x`` columns, ``y`` rows, ``x1``/``y1`` exclusive), best first, at most
        ``max_boxes``.
    """
    from scipy import ndimage

    heat = np.asarray(heat, dtype=np.float32)
    rows, cols = int(image_shape[0]), int(image_shape[1])
    place = placement((rows, cols), spec)
    h, w = spec.size
    sy, sx = h / heat.shape[0], w / heat.shape[1]  # model-input pixels per cell
    eight = np.ones((3, 3))
    labels, count = ndimage.label(heat >= doubt_threshold, structure=eight)
    boxes = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None:
            continue
        part = np.where(labels[sl] == k, heat[sl], 0.0)
        score = float(part.max())
        peak = np.unravel_index(int(part.argmax()), part.shape)
        cores, _ = ndimage.label(part >= BOX_CORE * score, structure=eight)
        core = cores == cores[peak]
        weight = part * core
        ys, xs = np.nonzero(core)
        grid_y, grid_x = np.mgrid[:part.shape[0], :part.shape[1]]
        # centre and half-size in cells of the whole heatmap
        cy = sl[0].start + float((weight * (grid_y + 0.5)).sum() / weight.sum())
        cx = sl[1].start + float((weight * (grid_x + 0.5)).sum() / weight.sum())
        hy, hx = (ys.max() - ys.min() + 1) / 2, (xs.max() - xs.min() + 1) / 2
        # cells → model-input pixels → image pixels
        x0 = ((cx - hx) * sx - place.left) * cols / place.width
        x1 = ((cx + hx) * sx - place.left) * cols / place.width
        y0 = ((cy - hy) * sy - place.top) * rows / place.height
        y1 = ((cy + hy) * sy - place.top) * rows / place.height
        # (a hair of slack so that a centroid's float noise does not widen a box a pixel)
        x0, x1 = max(0, int(np.floor(x0 + 1e-6))), min(cols, int(np.ceil(x1 - 1e-6)))
        y0, y1 = max(0, int(np.floor(y0 + 1e-6))), min(rows, int(np.ceil(y1 - 1e-6)))
        if x1 <= x0 or y1 <= y0:
            continue  # only letterbox padding
        boxes.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "score": round(score, 4),
                      "level": "fracture" if score >= threshold else "doubt"})
    boxes.sort(key=lambda b: -b["score"])
    return boxes[:max_boxes]
