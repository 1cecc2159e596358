"""The router's two thresholds, fitted on the selection split, and routing metrics.

A router decides whether a study is scored at all, so its thresholds are chosen for what
they cost (see :mod:`inference.routing`):

* ``other_threshold`` — the study-mean probability of ``OTHER`` needed to refuse a study.
  Chosen as the lowest value that sends at most ``max_upper_to_other`` of the selection
  split's upper-limb films to ``OTHER`` (dropping a fracture is the worst error), so that
  as many non-upper-limb films as possible are still refused;
* ``class_bias`` (optional, :func:`fit_class_bias`, fitted first) — one log-odds shift
  per class added to the logits before the softmax, chosen to maximise the mean recall of
  the parts (ARM and HUMERUS one part) on the selection split, with an L2 penalty that
  keeps the shifts small. It undoes the prior the network learned from unequal, fuzzy
  classes (rare WRIST and SHOULDER films were called HAND and HUMERUS);
* ``confidence_threshold`` — the probability an upper-limb part needs to be taken as sure.
  Below it the study is still scored, with the bundle's general upper-limb threshold, and
  flagged "body part uncertain". Chosen as the lowest value at which the sure decisions
  are right for at least ``sure_accuracy`` of the selection split's upper-limb films
  (labels of H and M confidence only: L labels are judgment calls).

:func:`routing_report` gives the figures the model card shows: per-class recall with
bootstrap 95 % CIs, accuracy on H/M labels, OTHER recall, upper-limb films refused, and
how often "uncertain" fires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from inference.bodyparts import normalize_body_part
from inference.routing import OTHER, StudyPart, study_part
from inference.training.evaluate import bootstrap_intervals


def part_of(label: str) -> str:
    """A class or label name as the routing table names it (``ARM`` → ``HUMERUS``)."""
    return normalize_body_part(label) or label


def decide(probs: np.ndarray, class_names: Sequence[str], confidence: float,
           other: float) -> list[StudyPart]:
    """One routing decision per film (each film its own study), as the engine makes it."""
    out = []
    for row in np.asarray(probs, dtype=np.float64):
        p = {c: float(v) for c, v in zip(class_names, row, strict=True)}
        out.append(study_part([], router_threshold=confidence, other_threshold=other,
                              router_probs=[p]))
    return out


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def mean_part_recall(probs: np.ndarray, class_names: Sequence[str], labels: Sequence[str],
                     *, min_films: int = 5) -> float:
    """Mean recall over the parts with at least ``min_films`` films, the part of a film
    being the argmax of its class probabilities summed per part (as the engine votes)."""
    parts = sorted({part_of(c) for c in class_names})
    cols = np.array([[part_of(c) == q for c in class_names] for q in parts], dtype=float)
    pred = np.array(parts, dtype=object)[(np.asarray(probs) @ cols.T).argmax(axis=1)]
    truth = np.array([part_of(x) for x in labels], dtype=object)
    recalls = [float(np.mean(pred[truth == q] == q)) for q in parts
               if int(np.sum(truth == q)) >= min_films]
    return float(np.mean(recalls)) if recalls else 0.0


def fit_class_bias(logits: np.ndarray, class_names: Sequence[str], labels: Sequence[str], *,
                   penalty: float = 0.02, span: float = 2.0, steps: int = 41,
                   sweeps: int = 4, min_films: int = 5) -> dict[str, float]:
    """Per-class logit shifts (see the notes): coordinate search over ``[-span, span]``
    (``steps`` values) maximising :func:`mean_part_recall` − ``penalty`` · Σ shift², a few
    ``sweeps`` over the classes. Returns ``{class: shift}`` for the non-zero shifts."""
    z = np.asarray(logits, dtype=np.float64)
    bias = np.zeros(len(class_names))

    def score(b: np.ndarray) -> float:
        return (mean_part_recall(_softmax(z + b), class_names, labels, min_films=min_films)
                - penalty * float(np.sum(b ** 2)))

    best = score(bias)
    for _ in range(sweeps):
        moved = False
        for j in range(len(class_names)):
            for v in np.linspace(-span, span, steps):
                trial = bias.copy()
                trial[j] = v
                value = score(trial)
                if value > best + 1e-9:
                    best, bias, moved = value, trial, True
        if not moved:
            break
    return {c: round(float(b), 4) for c, b in zip(class_names, bias, strict=True) if b != 0}


def fit_router_thresholds(probs: np.ndarray, class_names: Sequence[str],
                          labels: Sequence[str], confidences: Sequence[str | None] = (),
                          *, max_upper_to_other: float = 0.01,
                          sure_accuracy: float = 0.95) -> dict[str, float]:
    """``{"other_threshold", "confidence_threshold"}`` fitted on one split (see the notes).

    Parameters
    ----------
    probs
        (n, classes) softmax probabilities (after temperature).
    class_names
        The router's classes, in ``probs`` column order.
    labels
        True class names per film (``OTHER`` or a part; ``ARM`` counts as ``HUMERUS``).
    confidences
        Label confidence per film (``H``/``M``/``L`` or None); L labels are left out of
        the accuracy target.
    """
    probs = np.asarray(probs, dtype=np.float64)
    truth = [part_of(x) for x in labels]
    upper = np.array([t != OTHER for t in truth])
    other_col = [i for i, c in enumerate(class_names) if part_of(c) == OTHER]
    p_other = probs[:, other_col].sum(axis=1) if other_col else np.zeros(len(probs))
    # OTHER: the lowest cut keeping upper-limb refusals within budget.
    up = np.sort(p_other[upper])[::-1]
    allowed = int(np.floor(max_upper_to_other * len(up)))
    if len(up) == 0:
        other_thr = 0.5
    else:
        # refuse only above the (allowed+1)-th highest upper-limb P(OTHER)
        other_thr = float(min(0.999, max(0.5, up[allowed] + 1e-6 if allowed < len(up)
                                          else 0.5)))
    conf = list(confidences) or [None] * len(truth)
    keep = np.array([u and c != "L" for u, c in zip(upper, conf, strict=True)])
    best_conf = 0.95
    for c_thr in np.round(np.arange(0.30, 0.951, 0.025), 3):
        decisions = decide(probs[keep], class_names, float(c_thr), other_thr)
        sure = [(d.part, t) for d, t in zip(decisions, np.array(truth, dtype=object)[keep],
                                            strict=True) if not d.uncertain and d.part != OTHER]
        if sure and np.mean([p == t for p, t in sure]) >= sure_accuracy:
            best_conf = float(c_thr)
            break
    return {"other_threshold": round(other_thr, 6), "confidence_threshold": best_conf}


def _stat(values: Sequence[bool], resamples: int, seed: int) -> dict[str, Any]:
    """Mean of ``values`` with its percentile-bootstrap 95 % CI over films
    (:func:`inference.training.evaluate.bootstrap_intervals`)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"value": None, "ci": [None, None], "n": 0}
    lo, hi = bootstrap_intervals(lambda counts: {"mean": float(counts @ v / counts.sum())},
                                 len(v), resamples=resamples, seed=seed)["mean"]
    return {"value": round(float(v.mean()), 4), "ci": [round(lo, 4), round(hi, 4)],
            "n": int(len(v))}


def routing_report(probs: np.ndarray, class_names: Sequence[str], labels: Sequence[str],
                   confidences: Sequence[str | None], thresholds: Mapping[str, float], *,
                   resamples: int = 1000, seed: int = 0) -> dict[str, Any]:
    """Routing figures on one split (bootstrap 95 % CIs over films)."""
    truth = [part_of(x) for x in labels]
    decisions = decide(probs, class_names, thresholds["confidence_threshold"],
                       thresholds["other_threshold"])
    upper = [t != OTHER for t in truth]
    hm = [c != "L" for c in confidences]
    parts = sorted({t for t in truth})
    recall = {}
    for part in parts:
        rows = [d.part == part for d, t in zip(decisions, truth, strict=True) if t == part]
        recall[part] = _stat(rows, resamples, seed)
    routed_other = [d.part == OTHER for d, u in zip(decisions, upper, strict=True) if u]
    return {
        "thresholds": dict(thresholds),
        "n_films": len(truth),
        "n_upper": int(sum(upper)),
        "recall": recall,
        "upper_accuracy_hm": _stat([d.part == t for d, t, u, h in zip(
            decisions, truth, upper, hm, strict=True) if u and h], resamples, seed),
        "upper_accuracy_all": _stat([d.part == t for d, t, u in zip(
            decisions, truth, upper, strict=True) if u], resamples, seed),
        "other_recall": _stat([d.part == OTHER for d, t in zip(decisions, truth, strict=True)
                               if t == OTHER], resamples, seed),
        "upper_routed_to_other": _stat(routed_other, resamples, seed),
        "upper_uncertain": _stat([d.uncertain for d, u in zip(decisions, upper, strict=True)
                                  if u], resamples, seed),
        "predicted_parts": {p: int(sum(d.part == p for d in decisions))
                            for p in sorted({d.part for d in decisions if d.part})},
    }


def decision_key(d: StudyPart) -> str:
    """What the routing decision means for scoring: refused, or which part's model
    (uncertain studies all go to the general upper-limb model)."""
    if d.part == OTHER:
        return OTHER
    return "UPPER (uncertain)" if d.uncertain else str(d.part)
