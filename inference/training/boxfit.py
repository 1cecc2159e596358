"""The box head after training: heatmaps of a split, its two operating points, its metrics.

* :func:`score_heat` runs the trained model (head attached, :mod:`inference.boxes`) over
  cache rows and keeps the heatmaps (probabilities, the layer's grid);
* :func:`fit_box_thresholds` fits, on the selection split, the peak heat at which a box is
  ``"fracture"`` (Youden's J of the image's peak heat for "has a fracture box" against
  normal films) and ``"doubt"`` (the peak heat reached by ``sensitivity`` of the boxed
  films, never above the fracture level);
* :func:`box_metrics` measures, on the split reported on, what the issue measured for
  Grad-CAM: how often the heat peak lies inside a fracture box, how many boxes a normal
  film gets at each level, and how well the peak heat separates boxed from normal films.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.preprocess import InputSpec, placement
from inference.training.evaluate import auroc, normalize_batch, youden_threshold


def score_heat(model: nn.Module, images: np.ndarray, rows: Sequence[int], spec: InputSpec, *,
               device: torch.device, batch_size: int = 32, amp: bool = False) -> np.ndarray:
    """Heatmaps (probabilities 0–1), float32 ``(len(rows), h', w')``, for cache ``rows``."""
    out = []
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(rows), batch_size):
            chunk = torch.from_numpy(np.stack([np.asarray(images[r]) for r in
                                               rows[i:i + batch_size]]))[:, None]
            x = normalize_batch(chunk.to(device), spec)
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16,
                                                        enabled=amp):
                model(x)
            out.append(torch.sigmoid(model.box_heat.float())[:, 0].cpu().numpy())
            model.box_heat = None
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, 1, 1), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def fit_box_thresholds(peaks: np.ndarray, boxed: np.ndarray, *,
                       sensitivity: float = 0.9) -> tuple[float, float]:
    """``(fracture threshold, doubt threshold)`` on the peak heat of supervised images
    (``boxed`` 1: the film has fracture boxes, 0: a normal film)."""
    peaks = np.asarray(peaks, dtype=np.float64)
    boxed = np.asarray(boxed, dtype=np.int64)
    high = youden_threshold(boxed, peaks) if len(np.unique(boxed)) == 2 else 0.5
    pos = np.sort(peaks[boxed == 1])
    if pos.size == 0:
        return float(high), float(high)
    k = int(math.floor((1.0 - sensitivity) * pos.size + 1e-9))
    low = float(min(high, pos[min(k, pos.size - 1)]))
    return float(high), low


def peak_in_box(heat: np.ndarray, boxes: Sequence[tuple[float, float, float, float]],
                shape: tuple[int, int], spec: InputSpec) -> bool:
    """Whether the hottest cell's centre lies inside one of ``boxes`` (fractions of the
    image), through the letterbox placement of an image of ``shape``."""
    i, j = np.unravel_index(int(np.argmax(heat)), heat.shape)
    h, w = spec.size
    place = placement(shape, spec)
    px = (j + 0.5) * w / heat.shape[1]
    py = (i + 0.5) * h / heat.shape[0]
    fx = (px - place.left) / place.width
    fy = (py - place.top) / place.height
    return any(min(x0, x1) <= fx <= max(x0, x1) and min(y0, y1) <= fy <= max(y0, y1)
               for x0, y0, x1, y1 in boxes)


def box_metrics(heat: np.ndarray, rows: Sequence[int], boxes: dict[int, list],
                shapes: dict[int, tuple[int, int]], supervised: set[int], labels: Sequence[int],
                spec: InputSpec, threshold: float, doubt_threshold: float) -> dict[str, Any]:
    """What the head does on a split (see the module notes); JSON-ready."""
    from inference.boxes import heat_boxes

    peaks = heat.reshape(len(rows), -1).max(axis=1) if len(rows) else np.zeros(0)
    boxed_idx = [k for k, r in enumerate(rows) if r in boxes]
    normal_idx = [k for k, r in enumerate(rows) if r in supervised and r not in boxes
                  and not labels[k]]
    hits = [peak_in_box(heat[k], boxes[rows[k]], shapes[rows[k]], spec) for k in boxed_idx]
    counts = {"fracture": 0, "doubt": 0}
    for k in normal_idx:
        shape = shapes.get(rows[k], spec.size)
        for b in heat_boxes(heat[k], spec, shape, threshold=threshold,
                            doubt_threshold=doubt_threshold):
            counts[b["level"]] += 1
    y = np.array([1] * len(boxed_idx) + [0] * len(normal_idx))
    s = np.concatenate([peaks[boxed_idx], peaks[normal_idx]]) if len(y) else np.zeros(0)
    n_normal = max(len(normal_idx), 1)
    return {
        "images_with_boxes": len(boxed_idx), "normal_images": len(normal_idx),
        "peak_in_box": (round(float(np.mean(hits)), 4) if hits else None),
        "peak_in_box_count": f"{int(sum(hits))}/{len(hits)}",
        "peak_auroc": (round(float(auroc(y, s)), 4) if len(np.unique(y)) == 2 else None),
        "false_boxes_per_normal_image": {lvl: round(c / n_normal, 4)
                                         for lvl, c in counts.items()},
        "threshold": round(threshold, 6), "doubt_threshold": round(doubt_threshold, 6),
    }


def fit_heat_stack(logits: np.ndarray, peaks: np.ndarray, labels: np.ndarray
                   ) -> dict[str, float] | None:
    """Calibration that lets the box head's peak vote: ``p = sigmoid(a·z + b·m + c)``.

    ``z`` is the classifier's logit, ``m`` the largest heat logit of the view (the head's
    peak, before the sigmoid). Logistic regression on the selection split (a 2-feature
    Platt scaling); returned in the form the bundle stores it (:class:`inference.bundle.
    BoxHeadSpec` and the entry's temperature): the model's logit becomes
    ``z + (b/a)·m + c/a`` and the temperature ``1/a``, so ``sigmoid(logit / T)`` is ``p``.

    Returns
    -------
    dict or None
        ``{"temperature", "score_weight", "score_offset"}``; None when there is nothing to
        fit (one class, fewer than 2 positives or negatives) or when the fit does not give
        the head a positive weight over a classifier with a positive slope (then the
        classifier's own calibration stays).
    """
    z = np.asarray(logits, dtype=np.float64).reshape(-1)
    m = np.asarray(peaks, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=np.float64).reshape(-1)
    if min(int(y.sum()), int((1 - y).sum())) < 2:
        return None
    x = torch.as_tensor(np.stack([z, m], axis=1))
    t = torch.as_tensor(y)
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    c = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], lr=0.5, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        # A touch of L2 on the slopes keeps a separable selection split finite.
        loss = (nn.functional.binary_cross_entropy_with_logits(x @ w + c, t)
                + 1e-4 * (w ** 2).sum())
        loss.backward()
        return loss

    opt.step(closure)
    a, b = (float(v) for v in w.detach())
    offset = float(c.detach())
    if not (all(math.isfinite(v) for v in (a, b, offset)) and a > 1e-3 and b > 0):
        return None
    return {"temperature": 1.0 / a, "score_weight": b / a, "score_offset": offset / a}
