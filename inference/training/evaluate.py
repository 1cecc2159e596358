"""Honest metrics: AUROC, sensitivity, specificity and Cohen's kappa with bootstrap intervals,
calibration (temperature scaling), thresholds, and plots.

Metrics (:func:`abnormality_report`)
------------------------------------
Per body part and overall, at two levels:

* **image**: each image's temperature-scaled probability;
* **study**: the mean of its images' probabilities (the MURA protocol and what
  :class:`inference.engine.Engine` reports); a study's label is the highest of its
  images' labels (MURA labels studies, so they agree there).

AUROC is the Mann–Whitney statistic (ties count one half). Sensitivity, specificity and
kappa use the decision ``score >= threshold`` with the threshold of the study's body part
(as the engine applies it). Cohen's kappa is ``(p_o - p_e) / (1 - p_e)``.

Intervals are 95 % percentile bootstrap intervals over **studies** (images of a study
are resampled together, so image-level intervals are honest about within-study
correlation): ``resamples`` draws of the studies with replacement from a generator
seeded with ``seed`` (and the part), the 2.5th and 97.5th percentiles of the metric over
the draws where it is defined (both classes present). The study-level kappa also gets
the large-sample normal interval ``kappa ± 1.96·SE`` with
``SE = sqrt(p_o (1 - p_o) / (n (1 - p_e)²))`` (Cohen 1960). The standard error is the
*square root* of that variance: the scoring script distributed with MURA's evaluation
omitted the square root, giving intervals of the wrong width.

Calibration and thresholds (fitted on the selection split by training)
------------------------------------------------------------------------
* :func:`fit_temperature`: one temperature ``T`` minimizing the negative log likelihood
  of ``sigmoid(logit / T)`` (softmax for the router), by L-BFGS on ``log T`` (so ``T``
  stays positive), clamped to [0.01, 100]. Reliability diagrams and the expected
  calibration error (10 equal-width bins) before (``T = 1``) and after are reported.
* :func:`youden_threshold`: the study-score threshold maximizing Youden's J
  (sensitivity + specificity − 1); among equal J the highest threshold (fewer false
  alarms); the threshold is placed halfway between the chosen score and the next lower
  one, so ``score >= threshold`` reproduces the chosen cut. Fitted per body part where the
  part has at least ``min_studies`` selection studies of both classes, else the overall
  threshold is used.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from inference.bodyparts import normalize_body_part
from inference.preprocess import InputSpec
from inference.training.data import Sample

log = logging.getLogger(__name__)

#: Bootstrap resamples by default.
RESAMPLES = 1000
#: Bins of the reliability diagram and the ECE.
CALIBRATION_BINS = 10
TEMPERATURE_RANGE = (0.01, 100.0)


# --------------------------------------------------------------------------- metrics


def _ranks(scores: np.ndarray) -> tuple[np.ndarray, int]:
    _, inverse = np.unique(np.asarray(scores, dtype=np.float64), return_inverse=True)
    return inverse.ravel(), int(inverse.max()) + 1 if inverse.size else 0


def _auroc_ranked(inverse: np.ndarray, groups: int, y: np.ndarray, w: np.ndarray) -> float:
    pos = np.bincount(inverse, weights=w * y, minlength=groups)
    neg = np.bincount(inverse, weights=w * (1 - y), minlength=groups)
    p, n = pos.sum(), neg.sum()
    if p <= 0 or n <= 0:
        return math.nan
    below = np.cumsum(neg) - neg
    return float((pos * (below + 0.5 * neg)).sum() / (p * n))


def auroc(y: Sequence[int], scores: Sequence[float],
          weights: Sequence[float] | None = None) -> float:
    """Area under the ROC curve (Mann–Whitney; ties count one half).

    Parameters
    ----------
    y
        Labels, 1 positive, 0 negative.
    scores
        Higher means more likely positive (any scale).
    weights
        Non-negative weights (bootstrap multiplicities); default 1.

    Returns
    -------
    float
        In [0, 1]; NaN when one class is absent.
    """
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    inverse, groups = _ranks(np.asarray(scores))
    return _auroc_ranked(inverse, groups, y, w)


def roc_curve(y: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray,
                                                                  np.ndarray]:
    """``(fpr, tpr, thresholds)`` for the decisions ``score >= threshold``, from
    ``(0, 0)`` (threshold +inf) to ``(1, 1)``."""
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    cuts = np.unique(s)[::-1]
    p, n = max(int(y.sum()), 1), max(int((1 - y).sum()), 1)
    tpr = [0.0] + [float(((s >= c) & (y == 1)).sum()) / p for c in cuts]
    fpr = [0.0] + [float(((s >= c) & (y == 0)).sum()) / n for c in cuts]
    return np.array(fpr), np.array(tpr), np.concatenate([[np.inf], cuts])


def _confusion(y: np.ndarray, d: np.ndarray, w: np.ndarray) -> tuple[float, float, float,
                                                                      float]:
    """Weighted (tn, fp, fn, tp)."""
    c = np.bincount((2 * y + d).astype(np.int64), weights=w, minlength=4)
    return float(c[0]), float(c[1]), float(c[2]), float(c[3])


def sensitivity_specificity(y: Sequence[int], decisions: Sequence[int],
                            weights: Sequence[float] | None = None) -> tuple[float, float]:
    """``(tp / (tp + fn), tn / (tn + fp))``; NaN where a class is absent."""
    y = np.asarray(y, dtype=np.int64)
    d = np.asarray(decisions, dtype=np.int64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    tn, fp, fn, tp = _confusion(y, d, w)
    return (tp / (tp + fn) if tp + fn > 0 else math.nan,
            tn / (tn + fp) if tn + fp > 0 else math.nan)


def cohen_kappa(y: Sequence[int], decisions: Sequence[int],
                weights: Sequence[float] | None = None, classes: int | None = None) -> float:
    """Cohen's kappa ``(p_o - p_e) / (1 - p_e)`` between labels and decisions.

    Parameters
    ----------
    y, decisions
        Integer classes ``0 … classes − 1`` (binary: 0/1).
    weights
        Non-negative weights; default 1.
    classes
        Number of classes; default ``max + 1``.

    Returns
    -------
    float
        In [−1, 1]; NaN when ``p_e == 1`` (both raters constant on one class).
    """
    y = np.asarray(y, dtype=np.int64)
    d = np.asarray(decisions, dtype=np.int64)
    w = np.ones(len(y)) if weights is None else np.asarray(weights, dtype=np.float64)
    k = classes or int(max(y.max(initial=0), d.max(initial=0))) + 1
    m = np.bincount(y * k + d, weights=w, minlength=k * k).reshape(k, k)
    n = m.sum()
    if n <= 0:
        return math.nan
    po = np.trace(m) / n
    pe = float((m.sum(axis=1) * m.sum(axis=0)).sum()) / n**2
    return math.nan if pe >= 1.0 else float((po - pe) / (1.0 - pe))


def kappa_normal_interval(y: Sequence[int], decisions: Sequence[int],
                          z: float = 1.959964) -> tuple[float, float, float]:
    """Large-sample interval of Cohen's kappa: ``(low, high, SE)``.

    ``SE = sqrt(p_o (1 − p_o) / (n (1 − p_e)²))`` — the square root of the variance (see
    the module notes).
    """
    y = np.asarray(y, dtype=np.int64)
    d = np.asarray(decisions, dtype=np.int64)
    n = len(y)
    kappa = cohen_kappa(y, d, classes=2)
    if n == 0 or math.isnan(kappa):
        return math.nan, math.nan, math.nan
    po = float((y == d).mean())
    pe = float(y.mean() * d.mean() + (1 - y.mean()) * (1 - d.mean()))
    se = math.sqrt(po * (1 - po) / (n * (1 - pe) ** 2))
    return kappa - z * se, kappa + z * se, se


def expected_calibration_error(probs: Sequence[float], y: Sequence[int],
                               bins: int = CALIBRATION_BINS) -> float:
    """Σ over equal-width bins of (bin share) × |mean probability − observed frequency|."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if not len(p):
        return math.nan
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    conf = np.bincount(index, weights=p, minlength=bins)
    freq = np.bincount(index, weights=y, minlength=bins)
    used = count > 0
    return float(np.abs(conf[used] - freq[used]).sum() / len(p))


def reliability_curve(probs: Sequence[float], y: Sequence[int],
                      bins: int = CALIBRATION_BINS) -> tuple[np.ndarray, np.ndarray,
                                                             np.ndarray]:
    """Per non-empty bin: ``(mean probability, observed frequency, count)``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    index = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    used = count > 0
    conf = np.bincount(index, weights=p, minlength=bins)[used] / count[used]
    freq = np.bincount(index, weights=y, minlength=bins)[used] / count[used]
    return conf, freq, count[used]


# ------------------------------------------------------------------------- bootstrap


def bootstrap_intervals(metrics: Callable[[np.ndarray], Mapping[str, float]],
                        n_units: int, *, resamples: int = RESAMPLES, seed: int = 0,
                        level: float = 0.95) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals over resampled units (studies).

    Parameters
    ----------
    metrics
        ``f(counts) -> {name: value}``: the metrics when unit ``i`` is drawn ``counts[i]``
        times (``counts`` is an integer array of length ``n_units``; all ones is the data
        itself). A NaN value (metric undefined in that draw) is left out.
    n_units
        Number of units (studies).
    resamples
        Bootstrap draws.
    seed
        Seed of the draws (the same seed gives the same intervals).
    level
        Coverage (0.95: the 2.5th and 97.5th percentiles).

    Returns
    -------
    dict
        Name → ``(low, high)``; NaN when fewer than 10 draws gave a defined value.
    """
    rng = np.random.default_rng(seed)
    values: dict[str, list[float]] = {}
    for _ in range(resamples if n_units else 0):
        counts = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
        for name, v in metrics(counts).items():
            bucket = values.setdefault(name, [])
            if not math.isnan(v):
                bucket.append(v)
    alpha = (1.0 - level) / 2.0
    out = {}
    for name, vs in values.items():
        if len(vs) < 10:
            out[name] = (math.nan, math.nan)
        else:
            lo, hi = np.quantile(np.array(vs), [alpha, 1.0 - alpha])
            out[name] = (float(lo), float(hi))
    return out


# ------------------------------------------------------------------ calibration, cuts


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature ``T`` minimizing the NLL of ``logits / T`` (see the module notes).

    Parameters
    ----------
    logits
        ``(N,)`` binary logits, or ``(N, C)`` class logits.
    labels
        ``(N,)``: 0/1, or class indices.

    Returns
    -------
    float
        ``T`` in [0.01, 100]; 1.0 when there is nothing to fit.
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels))
    if z.shape[0] == 0:
        return 1.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    if z.ndim == 1:
        y = y.to(torch.float64)

        def nll(t: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.binary_cross_entropy_with_logits(z / t, y)
    else:
        y = y.to(torch.int64)

        def nll(t: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.cross_entropy(z / t, y)

    lo, hi = (math.log(v) for v in TEMPERATURE_RANGE)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll(torch.exp(log_t.clamp(lo, hi)))
        loss.backward()
        return loss

    opt.step(closure)
    t = float(torch.exp(log_t.detach().clamp(lo, hi)))
    return t if math.isfinite(t) else 1.0


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Temperature and logit shift ``(T, c)`` minimizing the NLL of ``(logit + c) / T``.

    The per-part class-weighted BCE trains a binary model towards balanced classes, so its
    probabilities sit too high for rare positives (FracAtlas: mean predicted 0.38 for a
    prevalence of 0.18); a temperature alone cannot move them down. The shift ``c`` can:
    training folds it into the classifier's bias (the manifest keeps ``temperature`` as
    the only calibration field), so the engine's ``sigmoid(logit / T)`` is calibrated.

    Returns
    -------
    tuple
        ``(T in [0.01, 100], c)``; ``(1.0, 0.0)`` when there is nothing to fit or one class
        only (a shift would then run off to infinity).
    """
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64).reshape(-1)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.float64).reshape(-1)
    if z.shape[0] == 0 or len(torch.unique(y)) < 2:
        return 1.0, 0.0
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    shift = torch.zeros((), dtype=torch.float64, requires_grad=True)
    lo, hi = (math.log(v) for v in TEMPERATURE_RANGE)
    opt = torch.optim.LBFGS([log_t, shift], lr=0.5, max_iter=300,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        t = torch.exp(log_t.clamp(lo, hi))
        loss = torch.nn.functional.binary_cross_entropy_with_logits((z + shift) / t, y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(torch.exp(log_t.detach().clamp(lo, hi)))
    c = float(shift.detach())
    if not (math.isfinite(t) and math.isfinite(c)):
        return 1.0, 0.0
    return t, c


def youden_threshold(y: Sequence[int], scores: Sequence[float]) -> float:
    """Threshold on ``scores`` (0–1) maximizing Youden's J (see the module notes).

    Returns
    -------
    float
        In [0, 1]; 0.5 when one class is absent.
    """
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    if len(np.unique(y)) < 2:
        return 0.5
    fpr, tpr, cuts = roc_curve(y, s)
    j = tpr[1:] - fpr[1:]
    best = int(np.flatnonzero(j >= j.max() - 1e-12)[0])  # cuts descend: highest first
    cut = cuts[1:][best]
    lower = s[s < cut]
    threshold = (cut + lower.max()) / 2.0 if lower.size else cut
    return float(min(max(threshold, 0.0), 1.0))


# ------------------------------------------------------------------ studies, reports


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=np.float64)
    return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))),
                    np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))


@dataclass
class Studies:
    """Images grouped into studies (in order of first appearance)."""

    ids: list[str]
    index: np.ndarray         #: study index of each image
    parts: list[str]          #: part of each study (of its first image)
    labels: np.ndarray        #: study label: the highest image label

    def scores(self, probs: np.ndarray, method: str = "mean") -> np.ndarray:
        """Study score per study: the image probabilities aggregated by ``method``
        (:func:`inference.aggregate.aggregate`; default the mean, MURA's protocol)."""
        probs = np.asarray(probs, dtype=np.float64)
        count = np.bincount(self.index, minlength=len(self.ids))
        if method == "mean":
            total = np.bincount(self.index, weights=probs, minlength=len(self.ids))
            return total / count
        if method == "max":
            out = np.zeros(len(self.ids))
            np.maximum.at(out, self.index, probs)
            return out
        if method == "noisy_or":
            logs = np.bincount(self.index, weights=np.log1p(-np.clip(probs, 0.0, 1 - 1e-12)),
                               minlength=len(self.ids))
            return 1.0 - np.exp(logs)
        raise ValueError(f"unknown aggregation {method!r}")

    def decision(self, probs: np.ndarray, method: str = "mean") -> np.ndarray:
        """``max(score, max view)`` per study: the study is flagged at level ``t`` exactly
        when this is ``>= t`` (:func:`inference.aggregate.decision_statistic`)."""
        return np.maximum(self.scores(probs, method), self.scores(probs, "max"))

    @property
    def sizes(self) -> np.ndarray:
        """Images per study."""
        return np.bincount(self.index, minlength=len(self.ids))


def group_studies(samples: Sequence[Sample]) -> Studies:
    """Group images into studies (see :class:`Studies`)."""
    ids: dict[str, int] = {}
    parts: list[str] = []
    index = np.empty(len(samples), dtype=np.int64)
    for i, s in enumerate(samples):
        k = ids.setdefault(s.study, len(ids))
        if k == len(parts):
            parts.append(s.part)
        index[i] = k
    labels = np.zeros(len(ids), dtype=np.int64)
    np.maximum.at(labels, index, np.array([s.abnormal or 0 for s in samples], dtype=np.int64))
    return Studies(list(ids), index, parts, labels)


def fit_thresholds(samples: Sequence[Sample], probs: np.ndarray, *,
                   min_studies: int = 20, aggregation: str = "mean", any_view: bool = False,
                   min_positives: int = 0) -> tuple[float, dict[str, float]]:
    """Overall and per-part study thresholds (Youden's J) on calibrated probabilities.

    Parts are the routing keys (:func:`inference.bodyparts.normalize_body_part`; FracAtlas
    ARM counts as HUMERUS, as the engine routes it).

    Parameters
    ----------
    aggregation
        The study score (:meth:`Studies.scores`).
    any_view
        Fit on the engine's flag rule: a study is positive when its score **or any of
        its views** reaches the threshold (:meth:`Studies.decision`).
    min_positives
        Fewest positive studies for a part's own threshold (``radview train``: 20).

    Returns
    -------
    tuple
        ``(overall threshold, {part: threshold})``, parts with fewer than ``min_studies``
        studies, fewer than ``min_positives`` positive studies, or one class only left
        out (they use the overall threshold).
    """
    st = group_studies(samples)
    scores = st.decision(probs, aggregation) if any_view else st.scores(probs, aggregation)
    overall = youden_threshold(st.labels, scores)
    keys = np.array([normalize_body_part(p) or p for p in st.parts])
    per_part = {}
    for part in sorted(set(keys)):
        m = keys == part
        labels = st.labels[m]
        if (m.sum() >= min_studies and 0 < labels.sum() < m.sum()
                and labels.sum() >= min_positives):
            per_part[str(part)] = youden_threshold(labels, scores[m])
    return overall, per_part


def fit_doubt_threshold(samples: Sequence[Sample], probs: np.ndarray, threshold: float, *,
                        sensitivity: float = 0.95, aggregation: str = "mean") -> float:
    """The DOUBT band's lower edge: the highest value at which at least ``sensitivity`` of
    the positive studies are flagged (DOUBT or positive) by the engine's rule, never
    above ``threshold``. ``threshold`` itself when there are no positive studies."""
    st = group_studies(samples)
    stats = np.sort(st.decision(probs, aggregation)[st.labels == 1])
    if stats.size == 0:
        return float(threshold)
    k = int(math.floor((1.0 - sensitivity) * stats.size + 1e-9))
    return float(min(threshold, stats[min(k, stats.size - 1)]))


def choose_aggregation(samples: Sequence[Sample], probs: np.ndarray, *,
                       min_studies: int = 20) -> tuple[str, dict[str, Any]]:
    """Pick the study aggregation on studies with several views (selection split).

    Each of :data:`inference.aggregate.AGGREGATIONS` is scored by the study AUROC of the
    engine's decision (score or any view) on the studies with at least two views; the
    best wins, ties going to the first (mean, then max, then noisy-OR). With fewer than
    ``min_studies`` such studies, or one class only, the mean is kept (MURA's protocol).

    Returns
    -------
    tuple
        ``(aggregation, {"multi_view_studies", "auroc": {method: value}, "reason"})``.
    """
    from inference.aggregate import AGGREGATIONS

    st = group_studies(samples)
    multi = st.sizes >= 2
    info: dict[str, Any] = {"multi_view_studies": int(multi.sum()), "auroc": {}}
    labels = st.labels[multi]
    if multi.sum() < min_studies or len(np.unique(labels)) < 2:
        info["reason"] = (f"{int(multi.sum())} selection studies with several views "
                          f"(need {min_studies} of both classes): mean kept")
        return "mean", info
    best, best_auc = "mean", -1.0
    for method in AGGREGATIONS:
        auc = auroc(labels, st.decision(probs, method)[multi])
        info["auroc"][method] = _value(auc)
        if math.isfinite(auc) and auc > best_auc + 1e-9:
            best, best_auc = method, auc
    info["reason"] = f"highest study AUROC on {int(multi.sum())} multi-view selection studies"
    return best, info


def _value(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else round(float(v), 6)


def _metric(value: float, ci: tuple[float, float]) -> dict[str, Any]:
    return {"value": _value(value), "ci": [_value(ci[0]), _value(ci[1])]}


def _level_metrics(y_img, p_img, d_img, st_index, y_st, s_st, d_st, resamples, seed):
    """Image- and study-level metrics of one subset, with bootstrap intervals."""
    inv_i, g_i = _ranks(p_img)
    inv_s, g_s = _ranks(s_st)
    y_img = y_img.astype(np.float64)
    y_st_f = y_st.astype(np.float64)

    def fns(counts: np.ndarray) -> dict[str, float]:
        wi = counts[st_index].astype(np.float64)
        ws = counts.astype(np.float64)
        sens_i, spec_i = sensitivity_specificity(y_img.astype(int), d_img, wi)
        sens_s, spec_s = sensitivity_specificity(y_st, d_st, ws)
        return {"image.auroc": _auroc_ranked(inv_i, g_i, y_img, wi),
                "image.sensitivity": sens_i, "image.specificity": spec_i,
                "image.kappa": cohen_kappa(y_img.astype(int), d_img, wi, classes=2),
                "study.auroc": _auroc_ranked(inv_s, g_s, y_st_f, ws),
                "study.sensitivity": sens_s, "study.specificity": spec_s,
                "study.kappa": cohen_kappa(y_st, d_st, ws, classes=2)}

    n = len(y_st)
    point = fns(np.ones(n, dtype=np.int64))
    cis = bootstrap_intervals(fns, n, resamples=resamples, seed=seed)
    out: dict[str, Any] = {"image": {}, "study": {}}
    for k, value in point.items():
        level, name = k.split(".")
        out[level][name] = _metric(value, cis.get(k, (math.nan, math.nan)))
    lo, hi, se = kappa_normal_interval(y_st, d_st)
    out["study"]["kappa"]["normal_ci"] = [_value(lo), _value(hi)]
    out["study"]["kappa"]["normal_se"] = _value(se)
    return out


def abnormality_report(samples: Sequence[Sample], logits: np.ndarray, *, temperature: float,
                       threshold: float, part_thresholds: Mapping[str, float] | None = None,
                       resamples: int = RESAMPLES, seed: int = 0, aggregation: str = "mean",
                       any_view: bool = False,
                       doubt_threshold: float | None = None) -> dict[str, Any]:
    """Metrics of a binary model on labelled samples (see the module notes).

    ``aggregation`` is the study score; with ``any_view`` a study is called positive as
    the engine does (score **or any view** at or above the threshold); with
    ``doubt_threshold`` the report adds what the DOUBT band catches (``doubt``).

    Parameters
    ----------
    samples
        The images (labels in :attr:`~inference.training.data.Sample.abnormal`).
    logits
        ``(N,)`` raw logits, in the order of ``samples``.
    temperature
        ``p = sigmoid(logit / temperature)``.
    threshold, part_thresholds
        Study-score threshold overall and per routing part (the part's own is used when
        present).
    resamples, seed
        Bootstrap draws and their seed.

    Returns
    -------
    dict
        JSON-ready: ``overall`` and ``parts`` → ``{"n_images", "n_studies",
        "n_abnormal_studies", "threshold", "image": {...}, "study": {...}}`` where each
        metric is ``{"value", "ci": [low, high]}``; plus calibration (ECE before/after).
    """
    part_thresholds = dict(part_thresholds or {})
    logits = np.asarray(logits, dtype=np.float64).reshape(-1)
    y = np.array([s.abnormal or 0 for s in samples], dtype=np.int64)
    probs = sigmoid(logits / temperature)
    st = group_studies(samples)
    scores = st.scores(probs, aggregation)

    def cut(part: str) -> float:
        return part_thresholds.get(normalize_body_part(part) or part, threshold)

    study_cut = np.array([cut(p) for p in st.parts])
    d_img = (probs >= study_cut[st.index]).astype(np.int64)
    decision = st.decision(probs, aggregation) if any_view else scores
    d_st = (decision >= study_cut).astype(np.int64)
    report: dict[str, Any] = {
        "task": "abnormality", "n_images": len(samples), "n_studies": len(st.ids),
        "temperature": _value(temperature), "threshold": _value(threshold),
        "part_thresholds": {k: _value(v) for k, v in sorted(part_thresholds.items())},
        "calibration": {"ece_before": _value(expected_calibration_error(sigmoid(logits), y)),
                        "ece_after": _value(expected_calibration_error(probs, y)),
                        "bins": CALIBRATION_BINS},
        "bootstrap": {"resamples": resamples, "seed": seed, "unit": "study",
                      "method": "percentile", "level": 0.95},
        "aggregation": aggregation, "any_view_flags": bool(any_view),
    }
    if doubt_threshold is not None:
        # What the DOUBT band adds: studies flagged at least DOUBT, by true class.
        doubt_cut = np.minimum(doubt_threshold, study_cut)
        flagged = decision >= doubt_cut
        pos = st.labels == 1
        report["doubt_threshold"] = _value(doubt_threshold)
        report["doubt"] = {
            "sensitivity": _value(flagged[pos].mean() if pos.any() else math.nan),
            "flagged_negatives": _value(flagged[~pos].mean() if (~pos).any() else math.nan),
            "flags": {"positive": int(d_st.sum()),
                      "doubt": int((flagged & (d_st == 0)).sum()),
                      "negative": int((~flagged).sum())}}
    subsets = [("overall", np.ones(len(st.ids), dtype=bool))]
    subsets += [(p, np.array([q == p for q in st.parts])) for p in sorted(set(st.parts))]
    parts: dict[str, Any] = {}
    for k, (name, smask) in enumerate(subsets):
        ids = np.flatnonzero(smask)
        local = np.full(len(st.ids), -1, dtype=np.int64)
        local[ids] = np.arange(len(ids))
        imask = smask[st.index]
        entry = {"n_images": int(imask.sum()), "n_studies": len(ids),
                 "n_abnormal_studies": int(st.labels[ids].sum()),
                 "threshold": None if name == "overall" else _value(cut(name))}
        entry.update(_level_metrics(y[imask], probs[imask], d_img[imask], local[st.index[imask]],
                                    st.labels[ids], scores[ids], d_st[ids], resamples,
                                    seed * 1000 + k))
        if name == "overall":
            report["overall"] = entry
        else:
            parts[name] = entry
    report["parts"] = parts
    return report


def router_report(samples: Sequence[Sample], logits: np.ndarray, class_names: Sequence[str],
                  labels: Sequence[int], *, resamples: int = RESAMPLES,
                  seed: int = 0) -> dict[str, Any]:
    """Metrics of the body-part router.

    Parameters
    ----------
    samples
        The images (confidence of the part label in ``confidence``, when known).
    logits
        ``(N, C)`` class logits.
    class_names
        The C classes.
    labels
        True class index of each image.

    Returns
    -------
    dict
        JSON-ready: accuracy (with a bootstrap interval over studies), kappa, per-class
        recall, the confusion matrix (rows: true class, columns: predicted, in
        ``class_names`` order), and the accuracy on labels of confidence H or M when
        confidences are known.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    pred = logits.argmax(axis=1) if len(logits) else np.zeros(0, dtype=np.int64)
    k = len(class_names)
    cm = np.bincount(y * k + pred, minlength=k * k).reshape(k, k)
    st = group_studies(samples)
    correct = (pred == y).astype(np.float64)

    def acc(counts: np.ndarray) -> float:
        w = counts[st.index].astype(np.float64)
        return float((w * correct).sum() / w.sum()) if w.sum() else math.nan

    ci = bootstrap_intervals(lambda c: {"accuracy": acc(c)}, len(st.ids),
                             resamples=resamples, seed=seed).get("accuracy", (math.nan,
                                                                              math.nan))
    report: dict[str, Any] = {
        "task": "router", "n_images": len(samples), "n_studies": len(st.ids),
        "class_names": list(class_names),
        "accuracy": _metric(float(correct.mean()) if len(correct) else math.nan, ci),
        "kappa": _value(cohen_kappa(y, pred, classes=k)),
        "recall": {c: _value(cm[i, i] / cm[i].sum() if cm[i].sum() else math.nan)
                   for i, c in enumerate(class_names)},
        "support": {c: int(cm[i].sum()) for i, c in enumerate(class_names)},
        "confusion": cm.tolist(),
        "bootstrap": {"resamples": resamples, "seed": seed, "unit": "study",
                      "method": "percentile", "level": 0.95},
    }
    conf = np.array([s.confidence or "" for s in samples])
    if (conf != "").any():
        sure = np.isin(conf, ["H", "M"])
        report["accuracy_confidence_hm"] = _value(correct[sure].mean() if sure.any()
                                                  else math.nan)
        report["n_confidence_hm"] = int(sure.sum())
    return report


# ------------------------------------------------------------------------ prediction


def normalize_batch(x: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """``uint8`` ``(N, 1, h, w)`` → normalized float32 ``(N, channels, h, w)``, on
    ``x``'s device; the same arithmetic as :func:`inference.preprocess.to_tensor`."""
    c = spec.channels
    mean = torch.tensor(spec.mean * (c if len(spec.mean) == 1 else 1), dtype=torch.float32,
                        device=x.device)
    std = torch.tensor(spec.std * (c if len(spec.std) == 1 else 1), dtype=torch.float32,
                       device=x.device)
    scale = (1.0 / (255.0 * std)).view(1, c, 1, 1)
    offset = (-mean / std).view(1, c, 1, 1)
    return torch.addcmul(offset, x.to(torch.float32), scale)


def score_samples(model: torch.nn.Module, images: np.ndarray, rows: Sequence[int],
                  spec: InputSpec, *, device: torch.device, batch_size: int = 32, amp: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Logits of ``model`` for cached images (training and evaluation; the viewer's
    scoring is :class:`inference.engine.Engine`).

    Parameters
    ----------
    images
        ``uint8`` ``(N, h, w)`` (the memory-mapped cache).
    rows
        Rows of ``images`` to score, in output order.
    spec
        The model input (normalization, channels).
    device, batch_size, amp
        Where and how (``amp``: float16 autocast on CUDA).

    Returns
    -------
    numpy.ndarray
        float32 ``(len(rows), outputs)``.
    """
    was_training = model.training
    model.eval()
    out = []
    rows = list(rows)
    try:
        with torch.inference_mode():
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                x = torch.from_numpy(np.stack([images[r] for r in chunk]))[:, None]
                x = normalize_batch(x.to(device, non_blocking=True), spec)
                with torch.autocast(device.type, dtype=torch.float16,
                                    enabled=amp and device.type == "cuda"):
                    out.append(model(x).float().cpu())
                if progress is not None:
                    progress(start + len(chunk), len(rows))
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, 1), dtype=np.float32)
    return torch.cat(out).numpy().reshape(len(rows), -1)


# ----------------------------------------------------------------------------- plots


def _figure(width: float = 5.0, height: float = 4.0):
    """A matplotlib figure on the Agg canvas (no GUI backend, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_history(history: Sequence[Mapping[str, Any]], out_dir: Path,
                 task: str) -> list[Path]:
    """``loss.png`` (training and validation loss per epoch) and ``auroc.png`` (validation
    AUROC per epoch; ``accuracy.png`` for the router)."""
    if not history:
        return []
    epochs = [h["epoch"] for h in history]
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(epochs, [h["train_loss"] for h in history], "o-", label="training")
    ax.plot(epochs, [h["val_loss"] for h in history], "o-", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="Loss per epoch")
    ax.legend()
    paths = [out_dir / "loss.png"]
    fig.savefig(paths[0])
    fig = _figure()
    ax = fig.add_subplot()
    if task == "router":
        ax.plot(epochs, [h.get("val_accuracy") for h in history], "o-")
        ax.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy", ylim=(0, 1))
        paths.append(out_dir / "accuracy.png")
    else:
        ax.plot(epochs, [h.get("val_image_auroc") for h in history], "o-", label="image")
        ax.plot(epochs, [h.get("val_study_auroc") for h in history], "o-", label="study")
        ax.set(xlabel="epoch", ylabel="AUROC", title="Validation AUROC", ylim=(0, 1))
        ax.legend()
        paths.append(out_dir / "auroc.png")
    fig.savefig(paths[1])
    return paths


def plot_roc(samples: Sequence[Sample], probs: np.ndarray, out: Path) -> Path:
    """Study-level ROC curves, one per body part and overall, AUROC in the legend."""
    st = group_studies(samples)
    scores = st.scores(probs)
    fig = _figure(5.5, 5.0)
    ax = fig.add_subplot()
    parts = np.array(st.parts)
    for name in ["overall", *sorted(set(st.parts))]:
        m = np.ones(len(parts), dtype=bool) if name == "overall" else parts == name
        y = st.labels[m]
        if len(np.unique(y)) < 2:
            continue
        fpr, tpr, _ = roc_curve(y, scores[m])
        ax.plot(fpr, tpr, lw=2.5 if name == "overall" else 1.2,
                label=f"{name} ({auroc(y, scores[m]):.3f}, n={int(m.sum())})")
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title="Study-level ROC",
           xlim=(-0.01, 1.01), ylim=(-0.01, 1.01))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.text(0.5, 0.5, "no subset has both classes", ha="center", va="center")
    fig.savefig(out)
    return out


def plot_reliability(logits: np.ndarray, y: np.ndarray, temperature: float, out: Path) -> Path:
    """Reliability diagram of image probabilities before (T = 1) and after scaling."""
    fig = _figure()
    ax = fig.add_subplot()
    for t, label in ((1.0, "before"), (temperature, f"after (T = {temperature:.2f})")):
        p = sigmoid(np.asarray(logits, dtype=np.float64) / t)
        conf, freq, _ = reliability_curve(p, y)
        ece = expected_calibration_error(p, y)
        ax.plot(conf, freq, "o-", label=f"{label}, ECE {ece:.3f}")
    ax.plot([0, 1], [0, 1], ":", color="gray")
    ax.set(xlabel="predicted probability", ylabel="observed frequency",
           title="Reliability (images)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    fig.savefig(out)
    return out


def plot_confusion(cm: Sequence[Sequence[int]], class_names: Sequence[str], out: Path) -> Path:
    """Router confusion matrix (rows true, columns predicted), counts in the cells."""
    m = np.asarray(cm)
    k = len(class_names)
    fig = _figure(1.6 + 0.55 * k, 1.2 + 0.5 * k)
    ax = fig.add_subplot()
    norm = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="Router confusion")
    fig.savefig(out)
    return out


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)



# ---------------------------------------------------------------- radview evaluate


def _model_groups(manifest: Any) -> dict[str, list[str]]:
    """Abnormality entries grouped by weights file: ``{base key: [entry keys]}`` where the
    base key is the entry named after the weights file (else the first)."""
    by_weights: dict[str, list[str]] = {}
    for key, spec in manifest.abnormality_models.items():
        by_weights.setdefault(spec.weights, []).append(key)
    out = {}
    for weights, keys in by_weights.items():
        stem = Path(weights).stem
        out[stem if stem in keys else keys[0]] = keys
    return out


def evaluate_bundle(bundle_dir: str | os.PathLike[str], data_path: str | os.PathLike[str],
                    fmt: str, out_dir: str | os.PathLike[str], *,
                    models: Sequence[str] | None = None, split: str = "valid",
                    parts: Sequence[str] | None = None, limit: int | None = None,
                    cache_dir: str | os.PathLike[str] | None = None, device: str = "auto",
                    batch_size: int = 32, resamples: int = RESAMPLES, seed: int | None = None,
                    val_fraction: float | None = None, holdout: float | None = None,
                    block_size: int | None = None, progress: bool = True,
                    reader: Any = None) -> dict[str, Any]:
    """Score a dataset split with a bundle's models; write ``metrics.json`` and plots.

    Parameters
    ----------
    bundle_dir
        The bundle (validated by :meth:`inference.bundle.Bundle.load`).
    data_path, fmt
        The data, as for training (:func:`inference.training.data.load_samples`).
    out_dir
        Where ``metrics.json`` and ``<model>/*.png`` go (created).
    models
        Model names to evaluate (``router`` for the router); default every model.
    split
        ``valid`` (default), ``select``, ``train`` or ``all``. The split is re-derived with
        the parameters recorded at training (``seed``, ``val_fraction``, ``holdout``,
        ``block_size``, ``parts``, ``limit``) unless given here; MURA keeps its own split.
    resamples
        Bootstrap draws for the intervals.
    reader
        How a file becomes the model's ``uint8`` image (see
        :func:`inference.training.data.build_cache`); ``radview evaluate`` passes the
        viewer's, as ``radview train`` does.

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``{"bundle", "data", "format", "split", "models":
        {name: report}}``.

    Raises
    ------
    DataError, BundleError
        With a message naming the file and problem.
    """
    from inference.bundle import Bundle
    from inference.engine import resolve_device
    from inference.training.data import (
        DataError,
        Progress,
        build_cache,
        default_cache_dir,
        filter_parts,
        limit_samples,
        load_samples,
        router_class,
        split_samples,
    )

    bundle = Bundle.load(bundle_dir)
    manifest = bundle.manifest
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    groups = _model_groups(manifest)
    available = (["router"] if manifest.router else []) + list(groups)
    chosen_models = list(models) if models else available
    unknown = [m for m in chosen_models if m not in available]
    if unknown:
        raise DataError(f"no model {', '.join(unknown)} in {bundle_dir} (it has: "
                        f"{', '.join(available)})")
    result: dict[str, Any] = {"bundle": str(bundle_dir), "bundle_name": manifest.name,
                              "bundle_version": manifest.version, "data": str(data_path),
                              "format": fmt, "split": split, "models": {}}
    for key in chosen_models:
        recorded = (manifest.metrics.get(key) or {}).get("split") or {}
        s = recorded.get("seed", 0) if seed is None else seed
        data = load_samples(data_path, fmt, block_size=block_size or recorded.get(
            "block_size") or 50)
        wanted = parts if parts is not None else recorded.get("parts")
        samples = filter_parts(data.samples, wanted)
        samples = limit_samples(samples, limit if limit is not None else recorded.get("limit"),
                                s)
        splits = split_samples(samples, seed=s,
                               val_fraction=val_fraction if val_fraction is not None
                               else recorded.get("val_fraction", 0.2),
                               holdout=holdout if holdout is not None
                               else recorded.get("holdout", 0.0))
        chosen = splits.named(split)
        if key == "router":
            spec_entry = manifest.router
            classes = list(spec_entry.class_names)
            kept = [x for x in chosen if router_class(x.part) in classes]
        else:
            spec_entry = manifest.abnormality_models[key]
            kept = [x for x in chosen if x.abnormal is not None]
        if len(kept) < len(chosen):
            log.warning("%s: %d image(s) without a usable label for this model left out",
                        key, len(chosen) - len(kept))
        if not kept:
            raise DataError(f"{key}: no labelled images in the {split} split")
        cache = build_cache(kept, spec_entry.input, cache_dir or default_cache_dir(),
                            reader=reader)
        images = cache.open()
        rows = [i for i in range(len(kept)) if cache.ok[i]]
        scored = [kept[i] for i in rows]
        model = bundle.load_model(spec_entry, dev)
        bar = Progress(len(rows), f"scoring {key}", progress)
        logits = score_samples(model, images, rows, spec_entry.input, device=dev,
                               batch_size=batch_size, progress=bar)
        bar.close()
        model_dir = out_dir / key
        model_dir.mkdir(exist_ok=True)
        if key == "router":
            labels = [classes.index(router_class(x.part)) for x in scored]
            logits = manifest.router.adjust_logits(logits)  # the class bias, as the engine
            report = router_report(scored, logits, classes, labels, resamples=resamples,
                                   seed=s)
            plot_confusion(report["confusion"], classes, model_dir / "confusion.png")
        else:
            entries = groups[key]
            part_thresholds = {p: manifest.abnormality_models[m].threshold
                               for p, m in manifest.routing.items() if m in entries}
            report = abnormality_report(scored, logits[:, 0],
                                        temperature=spec_entry.temperature,
                                        threshold=spec_entry.threshold,
                                        part_thresholds=part_thresholds,
                                        resamples=resamples, seed=s,
                                        aggregation=manifest.aggregation_of(spec_entry),
                                        any_view=True,
                                        doubt_threshold=spec_entry.doubt_threshold)
            probs = sigmoid(logits[:, 0] / spec_entry.temperature)
            plot_roc(scored, probs, model_dir / "roc.png")
            plot_reliability(logits[:, 0], np.array([x.abnormal for x in scored]),
                             spec_entry.temperature, model_dir / "reliability.png")
        report["skipped_images"] = [{"file": f, "reason": r} for f, r in cache.errors]
        report["split"] = split
        # Training curves travel in the bundle; copy them next to the new plots.
        for png in sorted((Path(bundle_dir) / "plots" / key).glob("*.png")):
            if not (model_dir / png.name).exists():
                (model_dir / png.name).write_bytes(png.read_bytes())
        result["models"][key] = report
    write_json(out_dir / "metrics.json", result)
    return result
