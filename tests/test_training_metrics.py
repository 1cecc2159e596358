"""Metrics, bootstrap intervals, temperature scaling and thresholds against values worked
out by hand (each case says how)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inference.preprocess import InputSpec, to_tensor
from inference.training.data import Sample
from inference.training.evaluate import (
    abnormality_report,
    auroc,
    bootstrap_intervals,
    cohen_kappa,
    expected_calibration_error,
    fit_temperature,
    fit_thresholds,
    kappa_normal_interval,
    normalize_batch,
    router_report,
    sensitivity_specificity,
    sigmoid,
    youden_threshold,
)
from inference.training.train import _loss


@pytest.mark.parametrize("y, s, expected", [
    # Perfect ranking, reversed ranking.
    ([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 1.0),
    ([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1], 0.0),
    # Pairs (pos, neg): (.35,.1) win, (.35,.4) loss, (.8,.1) win, (.8,.4) win → 3/4.
    ([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.75),
    # A tie counts one half.
    ([0, 1], [0.5, 0.5], 0.5),
    # Pairs: (.5 vs .5) tie ½, (.5 vs .2) win, (.9 vs both) win → 3.5/4.
    ([0, 0, 1, 1], [0.5, 0.2, 0.5, 0.9], 0.875),
])
def test_auroc(y, s, expected):
    assert auroc(y, s) == pytest.approx(expected)


def test_auroc_undefined_with_one_class():
    assert math.isnan(auroc([1, 1], [0.2, 0.3]))


def test_weighted_auroc_is_auroc_of_replicated_data():
    # Bootstrap multiplicities as weights must equal the AUROC of the repeated rows.
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    s = np.round(rng.random(50), 1)  # many ties
    w = rng.integers(0, 4, 50)
    assert auroc(y, s, w) == pytest.approx(auroc(np.repeat(y, w), np.repeat(s, w)))


def test_auroc_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.random(300) + 0.3 * y, 2)
    assert auroc(y, s) == pytest.approx(metrics.roc_auc_score(y, s))


# Hand-counted table: tp 3, fn 1, tn 4, fp 2 (n 10).
Y = [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
D = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1]


def test_sensitivity_specificity():
    assert sensitivity_specificity(Y, D) == pytest.approx((3 / 4, 4 / 6))


def test_kappa_by_hand():
    # p_o = 7/10; margins: truth 4 pos / 6 neg, decisions 5 / 5 → p_e = (4·5 + 6·5)/100
    # = 0.5; kappa = (0.7 − 0.5) / (1 − 0.5) = 0.4.
    assert cohen_kappa(Y, D) == pytest.approx(0.4)
    # Perfect agreement, and agreement no better than chance.
    assert cohen_kappa([0, 1, 1], [0, 1, 1]) == pytest.approx(1.0)
    assert cohen_kappa([0, 1, 0, 1], [0, 0, 1, 1]) == pytest.approx(0.0)


def test_kappa_normal_interval_uses_the_square_root():
    # SE = sqrt(p_o (1 − p_o) / (n (1 − p_e)²)) = sqrt(0.21 / 2.5) = 0.28983, not the
    # variance 0.084 that MURA's scoring script used as if it were the SE.
    lo, hi, se = kappa_normal_interval(Y, D)
    assert se == pytest.approx(math.sqrt(0.084))
    assert (lo, hi) == pytest.approx((0.4 - 1.959964 * se, 0.4 + 1.959964 * se))


def test_kappa_agrees_with_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    y, d = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    assert cohen_kappa(y, d) == pytest.approx(metrics.cohen_kappa_score(y, d))


def _study_data(n_studies: int = 120, seed: int = 0):
    rng = np.random.default_rng(seed)
    samples, logits = [], []
    for k in range(n_studies):
        label = int(rng.random() < 0.4)
        part = ("WRIST", "HAND", "ELBOW")[k % 3]
        for i in range(1 + k % 3):
            samples.append(Sample(Path(f"/s{k}_{i}.png"), f"s{k}", part, f"p{k}", label))
            logits.append(rng.normal(1.2 * label - 0.5, 1.0))
    return samples, np.array(logits)


def test_bootstrap_interval_contains_point_and_is_seeded():
    # Percentile intervals over studies: they contain the estimate, the same seed gives
    # the same interval, another seed another one.
    samples, logits = _study_data()
    y = np.array([s.abnormal for s in samples])
    point = auroc(y, logits)
    index = np.array([int(s.study[1:]) for s in samples])

    def metric(counts):
        return {"auroc": auroc(y, logits, counts[index])}

    a = bootstrap_intervals(metric, 120, resamples=300, seed=7)["auroc"]
    b = bootstrap_intervals(metric, 120, resamples=300, seed=7)["auroc"]
    c = bootstrap_intervals(metric, 120, resamples=300, seed=8)["auroc"]
    assert a[0] < point < a[1]
    assert a == b != c
    assert 0.05 < a[1] - a[0] < 0.4


def test_abnormality_report():
    samples, logits = _study_data()
    report = abnormality_report(samples, logits, temperature=2.0, threshold=0.4,
                                part_thresholds={"WRIST": 0.6}, resamples=200, seed=1)
    o = report["overall"]
    assert o["n_studies"] == 120 and o["n_images"] == len(samples)
    for level in ("image", "study"):
        for name in ("auroc", "sensitivity", "specificity", "kappa"):
            m = o[level][name]
            assert m["ci"][0] <= m["value"] <= m["ci"][1], (level, name)
    # Study score = mean probability of its images; the part's own threshold applies.
    wrist = report["parts"]["WRIST"]
    assert wrist["threshold"] == 0.6 and report["parts"]["HAND"]["threshold"] == 0.4
    probs = sigmoid(logits / 2.0)
    idx = [i for i, s in enumerate(samples) if s.part == "WRIST"]
    studies: dict[str, list[float]] = {}
    for i in idx:
        studies.setdefault(samples[i].study, []).append(probs[i])
    labels = {samples[i].study: samples[i].abnormal for i in idx}
    tp = sum(np.mean(v) >= 0.6 for k, v in studies.items() if labels[k])
    assert wrist["study"]["sensitivity"]["value"] == pytest.approx(
        tp / sum(labels.values()), abs=1e-6)
    assert o["study"]["kappa"]["normal_se"] > 0


def test_router_report():
    samples = [Sample(Path(f"/{i}"), f"s{i}", "WRIST", f"g{i}", None, confidence=c)
               for i, c in enumerate("HHMLHMLL")]
    y = [0, 0, 1, 1, 2, 2, 0, 1]
    logits = np.eye(3)[[0, 1, 1, 0, 2, 2, 0, 1]] * 5  # wrong on rows 1 and 3
    r = router_report(samples, logits, ["A", "B", "C"], y, resamples=50)
    assert r["accuracy"]["value"] == pytest.approx(6 / 8)
    assert r["confusion"] == [[2, 1, 0], [1, 2, 0], [0, 0, 2]]
    assert r["recall"] == pytest.approx({"A": 2 / 3, "B": 2 / 3, "C": 1.0})
    # H/M-confidence rows 0, 1, 2, 4, 5: wrong on row 1 → 4/5.
    assert r["accuracy_confidence_hm"] == pytest.approx(0.8)


# ------------------------------------------------------------- calibration, thresholds


def test_temperature_scaling_recovers_a_known_temperature():
    # Labels drawn from sigmoid(z); the model reports 3·z → the fitted T is 3.
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < sigmoid(z)).astype(int)
    assert fit_temperature(3.0 * z, y) == pytest.approx(3.0, rel=0.05)
    # Under-confident logits (z / 2) give T = 0.5.
    assert fit_temperature(z / 2.0, y) == pytest.approx(0.5, rel=0.05)


def test_temperature_scaling_multiclass():
    rng = np.random.default_rng(1)
    z = rng.normal(0, 2, (20000, 4))
    p = torch.softmax(torch.from_numpy(z), 1).numpy()
    y = np.array([rng.choice(4, p=row) for row in p])
    assert fit_temperature(0.5 * z, y) == pytest.approx(0.5, rel=0.05)


def test_youden_threshold_by_hand():
    # Cuts (descending): 0.9 → J 1/3; 0.7 → 2/3; 0.6 → 1/3; 0.4 → 2/3; … The highest cut
    # with the best J is 0.7; halfway to the next lower score (0.6) gives 0.65.
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.6, 0.4, 0.7, 0.9]
    t = youden_threshold(y, s)
    assert t == pytest.approx(0.65)
    d = (np.array(s) >= t).astype(int)
    assert sensitivity_specificity(y, d) == pytest.approx((2 / 3, 1.0))


@pytest.mark.parametrize("y", [[1, 1, 1], [0, 0]])
def test_youden_threshold_one_class(y):
    # Nothing to separate: the neutral 0.5.
    assert youden_threshold(y, [0.2, 0.9, 0.4][:len(y)]) == 0.5


def test_thresholds_per_part_need_enough_studies():
    samples, logits = _study_data(90)
    overall, per_part = fit_thresholds(samples, sigmoid(logits), min_studies=25)
    assert 0 < overall < 1 and set(per_part) == {"WRIST", "HAND", "ELBOW"}
    # 30 studies per part: with 31 required there is no part threshold.
    assert fit_thresholds(samples, sigmoid(logits), min_studies=31)[1] == {}


def test_expected_calibration_error_by_hand():
    # Bin 0.1: mean 0.1, frequency 1/2 → 2/4·0.4; bin 0.9: 0.9 vs 1 → 2/4·0.1 → 0.25.
    assert expected_calibration_error([0.1, 0.1, 0.9, 0.9], [0, 1, 1, 1]) == pytest.approx(0.25)


# ------------------------------------------------------------------------ training


def test_normalize_batch_matches_the_engine():
    # Training normalizes on the device; it must be the engine's arithmetic exactly.
    x = np.random.default_rng(0).integers(0, 256, (2, 8, 8), dtype=np.uint8)
    spec = InputSpec((8, 8), channels=3, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25))
    got = normalize_batch(torch.from_numpy(x)[:, None], spec)
    assert torch.equal(got, to_tensor(x, spec))


def test_weighted_bce_loss():
    # Per-image BCE times the image's weight (part class weight × confidence weight).
    logits = torch.tensor([[0.0], [2.0]])
    target = torch.tensor([1.0, 0.0])
    weight = torch.tensor([0.25, 0.75])
    expected = [0.25 * math.log(2), 0.75 * math.log(1 + math.e ** 2)]
    assert _loss("abnormality", logits, target, weight, 0.0).tolist() == pytest.approx(expected)


def test_plots_without_both_classes(tmp_path):
    # A validation split with positives only has no ROC curve: the plot says so instead
    # of warning (warnings are errors here) or failing.
    from inference.training.evaluate import plot_reliability, plot_roc

    samples = [Sample(Path(f"/{i}"), f"s{i}", "WRIST", f"g{i}", 1) for i in range(4)]
    plot_roc(samples, np.array([0.2, 0.4, 0.6, 0.8]), tmp_path / "roc.png")
    plot_reliability(np.zeros(4), np.ones(4), 1.0, tmp_path / "rel.png")
    assert (tmp_path / "roc.png").stat().st_size > 1000
