"""Routing figures and the router stress test, as JSON.

    python bench/router_stress.py --bundle DIR [--data ../shared/datasets/fracatlas]
                                  [--fit] [--fit-bias] [--transforms N] [--out FILE.json]

1. Scores the selection split (a holdout of the training groups: seed 0, validation
   fraction 0.2, holdout 0.15, FracAtlas id blocks of 50 — the splits ``radview train
   --holdout 0.15`` uses) and, with ``--fit``, fits the router's ``other_threshold`` and
   ``confidence_threshold`` there (:mod:`inference.training.router_fit`) and writes them
   into the bundle's manifest; with ``--fit-bias`` also (first) the router's
   ``class_bias``, a per-class logit shift (:func:`~inference.training.router_fit.fit_class_bias`).
2. Reports routing on the validation split, never used for fitting: per-class recall with
   bootstrap 95 % CIs, accuracy on H/M labels, OTHER recall, upper-limb films refused,
   "uncertain" rate.
3. Stress test: every validation film at the router's input, transformed by each of
   :data:`inference.training.augment.STRESS_TRANSFORMS` (fixed strength; four of them never
   used in training); the share of films whose routing decision (refused / which part's
   model / uncertain → general model) changes, per transform, for upper-limb and OTHER
   films, and whether a scored upper-limb film becomes refused. Also the share whose
   **scoring** does not change: refused or not, and when scored, the same weights,
   calibration, threshold and DOUBT edge (the bundle's routing table and fallback entry
   decide; two parts that share an entry score a film identically, so a HAND↔WRIST flip
   changes the part shown, not the probability or the flag).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.bundle import Bundle
from inference.preprocess import resize_uint8, to_tensor
from inference.routing import OTHER, scoring_model
from inference.training.augment import STRESS_TRANSFORMS
from inference.training.data import decode_gray, load_samples, split_samples
from inference.training.router_fit import (
    decide,
    decision_key,
    fit_class_bias,
    fit_router_thresholds,
    part_of,
    routing_report,
)


def _logits(model, spec, arrays: list[np.ndarray], batch: int = 32) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for i in range(0, len(arrays), batch):
            x = to_tensor(np.stack(arrays[i:i + batch]), spec)
            out.append(model(x).float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", default="../shared/datasets/fracatlas")
    p.add_argument("--fit", action="store_true", help="fit thresholds on select, write them")
    p.add_argument("--fit-bias", action="store_true",
                   help="with --fit: fit the router's class_bias on select first")
    p.add_argument("--transforms", type=int, default=len(STRESS_TRANSFORMS))
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args()
    torch.manual_seed(0)
    started = time.perf_counter()
    bundle = Bundle.load(args.bundle)
    spec = bundle.manifest.router
    if spec is None:
        print("the bundle has no router", file=sys.stderr)
        return 2
    model = bundle.load_model(spec, "cpu")

    def softmax(logits: np.ndarray) -> np.ndarray:
        """Router probabilities as the engine computes them (class bias included)."""
        return torch.softmax(spec.adjust_logits(torch.from_numpy(logits)), dim=1).numpy()

    def _probs(arrays: list[np.ndarray]) -> np.ndarray:
        return softmax(_logits(model, spec.input, arrays))

    data = load_samples(args.data, "fracatlas", block_size=50)
    splits = split_samples(data.samples, val_fraction=0.2, holdout=0.15, seed=0)
    classes = list(spec.class_names)

    def films(samples):
        arrays = [resize_uint8(decode_gray(s.path), spec.input) for s in samples]
        labels = [s.part for s in samples]
        conf = [s.confidence for s in samples]
        return arrays, labels, conf

    out: dict = {"bundle": f"{bundle.manifest.name} {bundle.manifest.version}",
                 "router_input": list(spec.input.size)}
    thresholds = {"confidence_threshold": spec.confidence_threshold,
                  "other_threshold": spec.other_threshold if spec.other_threshold is not None
                  else spec.confidence_threshold}
    if args.fit:
        arrays, labels, conf = films(splits.select)
        select_logits = _logits(model, spec.input, arrays)  # scored once, used three times
        path = Path(args.bundle) / "manifest.json"
        m = json.loads(path.read_text(encoding="utf-8"))
        if args.fit_bias:
            fitted_bias = fit_class_bias(select_logits, classes, labels)
            spec = dataclasses.replace(spec, class_bias=tuple(
                fitted_bias.get(c, 0.0) for c in classes) if fitted_bias else None)
            if fitted_bias:
                m["router"]["class_bias"] = fitted_bias
            else:
                m["router"].pop("class_bias", None)
            out["class_bias"] = fitted_bias
        select_probs = softmax(select_logits)
        fitted = fit_router_thresholds(select_probs, classes, labels, conf)
        thresholds = fitted
        m["router"]["confidence_threshold"] = fitted["confidence_threshold"]
        m["router"]["other_threshold"] = fitted["other_threshold"]
        path.write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
        out["fitted_on_select"] = {"n_films": len(labels), **fitted}
        out["select"] = routing_report(select_probs, classes, labels, conf, fitted)

    arrays, labels, conf = films(splits.valid)
    clean = _probs(arrays)
    out["valid"] = routing_report(clean, classes, labels, conf, thresholds)
    clean_decided = decide(clean, classes, thresholds["confidence_threshold"],
                           thresholds["other_threshold"])
    base = [decision_key(d) for d in clean_decided]
    manifest = bundle.manifest

    def scoring_key(d) -> tuple:
        """What scores the film, as the engine picks it: nothing (refused), else the
        entry's weights, calibration, threshold and DOUBT edge."""
        name, _ = scoring_model(d, manifest.routing, manifest.fallback_model)
        if name is None:
            return ("not scored",)
        e = manifest.abnormality_models[name]
        return (e.sha256, e.box_head, e.temperature, e.threshold, e.doubt_threshold)

    base_scoring = [scoring_key(d) for d in clean_decided]
    upper = np.array([part_of(x) != OTHER for x in labels])
    rows = []
    changed_upper_any = np.zeros(len(arrays), bool)
    pairs_upper, pairs_upper_changed = 0, 0
    scoring_changed_any = np.zeros(len(arrays), bool)
    pairs_upper_rescored = 0
    for i, t in enumerate(STRESS_TRANSFORMS[: args.transforms]):
        rng = np.random.default_rng(1000 + i)
        moved = [t.fn(a, rng) for a in arrays]
        probs = _probs(moved)
        decided = decide(probs, classes, thresholds["confidence_threshold"],
                         thresholds["other_threshold"])
        keys = [decision_key(d) for d in decided]
        changed = np.array([a != b for a, b in zip(base, keys, strict=True)])
        rescored = np.array([a != scoring_key(d) for a, d in
                             zip(base_scoring, decided, strict=True)])
        scoring_changed_any |= rescored & upper
        pairs_upper_rescored += int((rescored & upper).sum())
        dropped = np.array([b != OTHER and k == OTHER for b, k in zip(base, keys, strict=True)])
        changed_upper_any |= changed & upper
        pairs_upper += int(upper.sum())
        pairs_upper_changed += int((changed & upper).sum())
        rows.append({
            "transform": t.name, "held_out": t.held_out,
            "upper_unchanged": round(1 - float(changed[upper].mean()), 4),
            "upper_newly_refused": round(float(dropped[upper].mean()), 4),
            "upper_scoring_unchanged": round(1 - float(rescored[upper].mean()), 4),
            "other_unchanged": round(1 - float(changed[~upper].mean()), 4),
        })
    out["stress"] = {
        "transforms": rows,
        "upper_pairs_unchanged": round(1 - pairs_upper_changed / max(pairs_upper, 1), 4),
        "upper_films_unchanged_under_all": round(1 - float(changed_upper_any[upper].mean()), 4),
        "upper_pairs_scoring_unchanged": round(1 - pairs_upper_rescored / max(pairs_upper, 1),
                                               4),
        "upper_films_scoring_unchanged_under_all": round(
            1 - float(scoring_changed_any[upper].mean()), 4),
        "n_upper_films": int(upper.sum()),
    }
    out["seconds"] = round(time.perf_counter() - started, 1)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
