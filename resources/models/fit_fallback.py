"""Add a general upper-limb entry to a FracAtlas bundle: the model for uncertain routing.

    python resources/models/fit_fallback.py BUNDLE_DIR [--data ../shared/datasets/fracatlas]

When the router places a study on the upper limb without being sure of the part, the
engine scores it with the manifest's ``fallback_model`` (see ``inference/routing.py``).
This script adds ``fracture-upper`` — the bundle's ``fracture`` weights and temperature
with a threshold (Youden's J) fitted on every upper-limb study of the split the fracture
model's other thresholds were fitted on — its selection split (the holdout carved out of
training) when it was trained with ``--holdout``, else its validation split; FracAtlas id
blocks of 50 with the seed, validation fraction and holdout recorded in the manifest — and
sets ``fallback_model`` to it. Prints JSON (``split`` says which).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from inference.bodyparts import normalize_body_part
from inference.bundle import Bundle
from inference.preprocess import prepare_batch
from inference.routing import OTHER
from inference.training.data import decode_gray, load_samples, split_samples
from inference.training.evaluate import auroc, sigmoid, youden_threshold


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--data", default="../shared/datasets/fracatlas")
    p.add_argument("--name", default="fracture-upper")
    args = p.parse_args()
    bundle = Bundle.load(args.bundle)
    spec = bundle.manifest.abnormality_models["fracture"]
    model = bundle.load_model(spec, "cpu")
    split = bundle.manifest.metrics.get("fracture", {}).get("split", {})
    holdout = float(split.get("holdout") or 0.0)
    data = load_samples(args.data, "fracatlas", block_size=int(split.get("block_size", 50)))
    splits = split_samples(data.samples, val_fraction=float(split.get("val_fraction", 0.2)),
                           holdout=holdout, seed=int(split.get("seed", 0)))
    fit_on = splits.select if holdout > 0 else splits.valid
    upper = [s for s in fit_on if (normalize_body_part(s.part) or s.part) != OTHER]
    logits = []
    with torch.inference_mode():
        for i in range(0, len(upper), 32):
            batch = prepare_batch([decode_gray(s.path) for s in upper[i:i + 32]], spec.input)
            logits.append(model(batch).float()[:, 0].numpy())
    probs = sigmoid(np.concatenate(logits) / spec.temperature)
    y = np.array([int(s.abnormal) for s in upper])
    threshold = youden_threshold(y, probs)
    path = Path(args.bundle) / "manifest.json"
    m = json.loads(path.read_text(encoding="utf-8"))
    entry = dict(m["abnormality_models"]["fracture"])
    entry["threshold"] = threshold
    entry["description"] = ("general upper-limb threshold: used when the router is not sure "
                            "which upper-limb part a study shows")
    m["abnormality_models"][args.name] = entry
    m["fallback_model"] = args.name
    path.write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
    pred = probs >= threshold
    out = {"model": args.name, "threshold": round(threshold, 6),
           "split": "select" if holdout > 0 else "valid", "n_upper": len(upper),
           "positives": int(y.sum()), "auroc_upper": round(float(auroc(y, probs)), 4),
           "sensitivity": round(float(pred[y == 1].mean()), 4),
           "specificity": round(float((~pred[y == 0]).mean()), 4)}
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
