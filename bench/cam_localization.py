"""How often the Grad-CAM peak and the top fracture box fall inside a FracAtlas fracture box.

Usage::

    python bench/cam_localization.py --bundle resources/models/fracatlas-lite0-384 \
        [--data ../shared/datasets/fracatlas] [--parts upper] [--seed 0]

For every fractured validation image (the same split ``radview train`` used: FracAtlas
id blocks, the seed and validation fraction recorded in the bundle) that has boxes in
``fracture_boxes.csv``, the image goes through the viewer's path (default display of an
8-bit image, the engine with the bundle's routing and Grad-CAM), and the CAM's maximum
is tested against the boxes (normalized coordinates). Prints JSON: the strict hit rate
(peak inside a box) and the pointing-game rate (Zhang et al., 2016: peak within 15 px of a
box, here in model-input pixels, since a CAM's grid is 32× coarser than the input), each
with a bootstrap 95% interval, and what a uniformly random point would get.

With a box head (issue 14) it also reports, over every fractured film with boxes, how often
the engine's top box (best score, any level) has its centre inside a true box — a film
with no box shown counts as a miss — and how often any box, and a "fracture"-level box,
is shown. The pointing game is reported both over the films that show a map and over all
films (no map = miss).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from inference.bundle import Bundle  # noqa: E402
from inference.engine import Engine, ImageInput  # noqa: E402
from inference.training.data import load_samples, parse_parts, split_samples  # noqa: E402


def _boxes(path: Path) -> dict[str, list[tuple[float, float, float, float]]]:
    out: dict[str, list] = defaultdict(list)
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out[row["image_id"]].append(
                tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1")))
    return out


def _inside(px: float, py: float, boxes) -> bool:
    """Whether the point (fractions of the image) lies in one of ``boxes``."""
    return any(x0 <= px <= x1 and y0 <= py <= y1 for x0, y0, x1, y1 in boxes)


def _split_settings(bundle: Bundle) -> tuple[int, float]:
    """Seed and validation fraction the bundle was trained with (defaults 0, 0.2)."""
    raw = json.loads((bundle.path / "manifest.json").read_text(encoding="utf-8"))
    found: dict = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("seed", "val_fraction") and isinstance(v, (int, float)):
                    found.setdefault(k, v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(raw)
    return int(found.get("seed", 0)), float(found.get("val_fraction", 0.2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "datasets" / "fracatlas"))
    ap.add_argument("--parts", default="upper")
    ap.add_argument("--limit", type=int, default=0, help="at most N images (0: all)")
    args = ap.parse_args()

    bundle = Bundle.load(args.bundle)
    seed, val_fraction = _split_settings(bundle)
    data = load_samples(args.data, "fracatlas")
    splits = split_samples(data.samples, val_fraction=val_fraction, seed=seed)
    parts = parse_parts(args.parts)
    boxes = _boxes(Path(args.data) / "fracture_boxes.csv")
    chosen = [s for s in splits.valid if s.abnormal == 1 and s.path.name in boxes
              and (parts is None or s.part in parts)]
    if args.limit:
        chosen = chosen[: args.limit]
    engine = Engine(bundle, device="cpu")
    first = next(iter(bundle.manifest.abnormality_models.values()))
    spec_size = float(max(first.input.size))
    hits, near, chance, chance_near, skipped = [], [], [], [], 0
    top_hits, any_box, fracture_box = [], [], []
    tolerance = 15.0  # pixels at the model input
    t0 = time.perf_counter()
    for s in chosen:
        gray = np.asarray(Image.open(s.path).convert("L"))
        # The viewer shows an 8-bit image "as saved": that is the model input too.
        result = engine.analyze([ImageInput(key=str(s.path), pixels=gray)],
                                override_part=s.part if s.part != "ARM" else None)
        cam = result.images[0].cam
        boxes_shown = (result.images[0].boxes or []) if result.supported else []
        rows_, cols_ = gray.shape
        if boxes_shown:
            b0 = boxes_shown[0]
            cx, cy = (b0["x0"] + b0["x1"]) / 2 / cols_, (b0["y0"] + b0["y1"]) / 2 / rows_
            top_hits.append(_inside(cx, cy, boxes[s.path.name]))
        else:
            top_hits.append(False)
        any_box.append(bool(boxes_shown))
        fracture_box.append(any(b["level"] == "fracture" for b in boxes_shown))
        if not result.supported or cam is None:
            # Since issue 14 the engine shows no map below the doubt band (the threshold
            # for bundles without one): such films count here, as "no map shown".
            skipped += 1
            continue
        y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
        fx, fy = (x + 0.5) / cam.shape[1], (y + 0.5) / cam.shape[0]
        bs = boxes[s.path.name]
        hits.append(_inside(fx, fy, bs))
        # Distance to the nearest box in model-input pixels (the long side maps to size).
        h_, w_ = cam.shape
        scale = spec_size / max(h_, w_)

        def dist(px: float, py: float, bs=bs, w_=w_, h_=h_, scale=scale) -> float:
            return min(np.hypot(max(x0 - px, 0, px - x1) * w_, max(y0 - py, 0, py - y1) * h_)
                       for x0, y0, x1, y1 in bs) * scale

        near.append(dist(fx, fy) <= tolerance)
        gy, gx = np.mgrid[0:40, 0:40]
        grid = [((i + 0.5) / 40, (j + 0.5) / 40) for i, j in zip(gx.ravel(), gy.ravel(),
                                                                   strict=True)]
        inside = [_inside(px, py, bs) for px, py in grid]
        chance.append(float(np.mean(inside)))
        chance_near.append(float(np.mean([dist(px, py) <= tolerance for px, py in grid])))
    h = np.array(hits, float)
    n_ = np.array(near, float)
    n_all = np.concatenate([n_, np.zeros(skipped)])
    tb = np.array(top_hits, float)
    rng = np.random.default_rng(0)

    def ci(a: np.ndarray) -> list[float]:
        if not a.size:
            return [float("nan")] * 2
        boot = [rng.choice(a, a.size).mean() for _ in range(1000)]
        return [round(float(np.percentile(boot, 2.5)), 3),
                round(float(np.percentile(boot, 97.5)), 3)]

    print(json.dumps({
        "bundle": f"{bundle.manifest.name} {bundle.manifest.version}",
        "split": {"seed": seed, "val_fraction": val_fraction, "parts": args.parts},
        "images": int(h.size), "skipped_not_supported_or_no_map": skipped,
        "peak_in_box_rate": round(float(h.mean()), 3) if h.size else None,
        "peak_in_box_ci95": ci(h),
        "random_point_in_box_rate": round(float(np.mean(chance)), 3) if chance else None,
        "pointing_game_tolerance_px": tolerance,
        "pointing_game_rate": round(float(n_.mean()), 3) if n_.size else None,
        "pointing_game_ci95": ci(n_),
        "random_point_pointing_rate": round(float(np.mean(chance_near)), 3)
        if chance_near else None,
        "pointing_game_rate_all_films": round(float(n_all.mean()), 3) if n_all.size else None,
        "pointing_game_all_films_ci95": ci(n_all),
        "box_films": int(tb.size),
        "top_box_centre_in_box_rate": round(float(tb.mean()), 3) if tb.size else None,
        "top_box_centre_in_box_ci95": ci(tb),
        "any_box_shown_rate": round(float(np.mean(any_box)), 3) if any_box else None,
        "fracture_box_shown_rate": round(float(np.mean(fracture_box)), 3)
        if fracture_box else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }, indent=2))


if __name__ == "__main__":
    main()
