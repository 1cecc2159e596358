"""Let the box head's peak vote in a FracAtlas bundle's fracture probability.

    python resources/models/fit_stack.py BUNDLE_DIR [--data ../shared/datasets/fracatlas]
                                         [--model fracture] [--parts upper|all]
                                         [--version X.Y.Z]

A model with a box head gives two views of one film: the classifier's logit ``z`` and the
head's largest heat logit ``m`` (its peak). On FracAtlas the peak alone separates fractured
films about as well as the classifier, and the two disagree enough that together they
separate better. This script fits ``p = sigmoid(a·z + b·m + c)`` by logistic regression
(:func:`inference.training.boxfit.fit_heat_stack`) on the upper-limb films (``--parts
upper``, the default: the only films the bundle's routing scores) of the split the model's
other thresholds were fitted on — the selection split (the holdout carved out of training)
when it was trained with ``--holdout``; FracAtlas id blocks of 50 with the seed, validation
fraction and holdout recorded in the manifest — and writes it into the manifest:
``box_head.score_weight`` = b/a and ``score_offset`` = c/a (the model's logit becomes
``z + (b/a)·m + c/a``, :func:`inference.boxes.attach_box_head`) and ``temperature`` = 1/a,
in every entry that shares the model's weights. Then, on the same films, the model's
threshold (Youden's J on the engine's flag rule; per-part thresholds only where a part has
20 positive studies, as ``radview train``) and its DOUBT edge (95 % of the positive studies
at least DOUBT). The headline figures in ``metrics.<model>`` are measured again on the
validation split (all regions, as ``radview train`` reports them) and the full report is
written to ``metrics/<model>-stack.json``; the fit itself goes to
``metrics.<model>.calibration_stack``. Run ``fit_fallback.py`` afterwards (the general
upper-limb entry copies the model's calibration). Prints JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from inference.training.boxfit import fit_heat_stack
from inference.training.data import decode_gray, load_samples, split_samples
from inference.training.evaluate import (
    abnormality_report,
    auroc,
    expected_calibration_error,
    fit_doubt_threshold,
    fit_thresholds,
    sigmoid,
)
from inference.training.export import abnormality_figures


def _scores(model, spec, samples) -> tuple[np.ndarray, np.ndarray]:
    """Classifier logits and peak heat logits of ``samples`` (the model without score terms)."""
    z, m = [], []
    with torch.inference_mode():
        for i in range(0, len(samples), 16):
            batch = prepare_batch([decode_gray(s.path) for s in samples[i:i + 16]], spec.input)
            z.append(model(batch).float()[:, 0].numpy())
            m.append(model.box_heat.float().flatten(1).amax(1).numpy())
            model.box_heat = None
    return np.concatenate(z), np.concatenate(m)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("bundle")
    p.add_argument("--data", default="../shared/datasets/fracatlas")
    p.add_argument("--model", default="fracture")
    p.add_argument("--parts", choices=("upper", "all"), default="upper")
    p.add_argument("--doubt-sensitivity", type=float, default=0.95)
    p.add_argument("--min-part-positives", type=int, default=20)
    p.add_argument("--version", help="also set the bundle's version (its calibration changed)")
    args = p.parse_args()
    torch.manual_seed(0)
    bundle = Bundle.load(args.bundle)
    spec = bundle.manifest.abnormality_models[args.model]
    if spec.box_head is None:
        print(f"{args.model}: no box head, nothing to stack", file=sys.stderr)
        return 2
    bare = dataclasses.replace(spec, box_head=dataclasses.replace(
        spec.box_head, score_weight=0.0, score_offset=0.0))
    model = bundle.load_model(bare, "cpu")
    metrics = bundle.manifest.metrics.get(args.model, {})
    split = metrics.get("split", {})
    holdout = float(split.get("holdout") or 0.0)
    data = load_samples(args.data, "fracatlas", block_size=int(split.get("block_size", 50)))
    splits = split_samples(data.samples, val_fraction=float(split.get("val_fraction", 0.2)),
                           holdout=holdout, seed=int(split.get("seed", 0)))
    fit_on = splits.select if holdout > 0 else splits.valid
    if args.parts == "upper":
        fit_on = [s for s in fit_on if (normalize_body_part(s.part) or s.part) != OTHER]
    y = np.array([int(s.abnormal) for s in fit_on])
    z, m = _scores(model, spec, fit_on)
    fit = fit_heat_stack(z, m, y)
    if fit is None:
        print("the fit gives the box head no positive weight; manifest unchanged",
              file=sys.stderr)
        return 1
    t, w, c = fit["temperature"], fit["score_weight"], fit["score_offset"]
    probs = sigmoid((z + w * m + c) / t)
    aggregation = bundle.manifest.aggregation_of(spec)
    threshold, part_thresholds = fit_thresholds(
        fit_on, probs, aggregation=aggregation, any_view=True,
        min_positives=args.min_part_positives)
    doubt = fit_doubt_threshold(fit_on, probs, threshold, sensitivity=args.doubt_sensitivity,
                                aggregation=aggregation)

    valid = splits.valid
    zv, mv = _scores(model, spec, valid)
    report = abnormality_report(valid, zv + w * mv + c, temperature=t, threshold=threshold,
                                part_thresholds=part_thresholds, seed=0,
                                aggregation=aggregation, any_view=True, doubt_threshold=doubt)

    path = Path(args.bundle) / "manifest.json"
    raw = json.loads(path.read_text(encoding="utf-8"))
    if args.version:
        raw["version"] = args.version
    for entry in raw["abnormality_models"].values():
        if entry["weights"] == spec.weights and isinstance(entry.get("box_head"), dict):
            entry["box_head"]["score_weight"] = w
            entry["box_head"]["score_offset"] = c
            entry["temperature"] = t
    entry = raw["abnormality_models"][args.model]
    entry["threshold"] = threshold
    entry["doubt_threshold"] = doubt
    for part, value in part_thresholds.items():
        name = f"{args.model}-{part.lower()}"
        if name in raw["abnormality_models"]:
            raw["abnormality_models"][name]["threshold"] = value
    # The classifier's own calibration before the first stack fit (kept across re-runs).
    previous_t = float(metrics.get("calibration_stack", {}).get("previous_temperature",
                                                                spec.temperature))
    before = sigmoid(z / previous_t)
    y_valid = np.array([int(s.abnormal) for s in valid])
    stack = {
        "method": "logistic regression on the classifier logit and the box head's peak "
                  "heat logit (inference.training.boxfit.fit_heat_stack)",
        "fitted_on": f"{'select' if holdout > 0 else 'valid'} ({args.parts})",
        "n_images": len(fit_on), "n_positive": int(y.sum()),
        "temperature": round(t, 6), "score_weight": round(w, 6), "score_offset": round(c, 6),
        "threshold": round(threshold, 6), "doubt_threshold": round(doubt, 6),
        "fit_auroc_before": round(float(auroc(y, before)), 4),
        "fit_auroc_after": round(float(auroc(y, probs)), 4),
        "fit_ece_before": round(expected_calibration_error(before, y), 4),
        "fit_ece_after": round(expected_calibration_error(probs, y), 4),
        "previous_temperature": previous_t,
        "valid_ece_previous": round(expected_calibration_error(sigmoid(zv / previous_t),
                                                               y_valid), 4),
    }
    mt = raw.setdefault("metrics", {}).setdefault(args.model, {})
    figures = abnormality_figures(report)
    del figures["ece_before"]  # the training's "before" (the network as trained) stays
    mt.update({**figures, "calibration_stack": stack})
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    out = Path(args.bundle) / "metrics" / f"{args.model}-stack.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"calibration_stack": stack, "valid": report}, indent=2,
                              default=float) + "\n", encoding="utf-8")
    print(json.dumps({**stack, "valid_study_auroc": report["overall"]["study"]["auroc"],
                      "valid_ece_after": report["calibration"]["ece_after"]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
