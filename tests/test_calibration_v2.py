"""Issue 14, "numbers that mean what they say": the fitting done on the selection split.

* :func:`fit_platt` undoes the prior shift of a class-weighted loss (a temperature alone
  cannot);
* :func:`fit_thresholds` on the engine's flag rule (score or any view), and per-part
  thresholds only with enough positive studies;
* :func:`fit_doubt_threshold` and :func:`choose_aggregation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.training.data import Sample
from inference.training.evaluate import (
    choose_aggregation,
    expected_calibration_error,
    fit_doubt_threshold,
    fit_platt,
    fit_temperature,
    fit_thresholds,
    group_studies,
    sigmoid,
)


def samples(studies: list[tuple[str, str, list[int]]]) -> list[Sample]:
    """``(study, part, image labels)`` → one Sample per image."""
    out = []
    for sid, part, labels in studies:
        for k, y in enumerate(labels):
            out.append(Sample(Path(f"/x/{sid}_{k}.png"), sid, part, sid, y))
    return out


def test_platt_undoes_a_prior_shift():
    # True logits z, labels drawn from sigmoid(z); the "model" reports z + 1.5 (a weighted
    # loss pulling a rare class up). Temperature alone leaves the mean too high; Platt
    # recovers the shift and the ECE drops.
    rng = np.random.default_rng(0)
    z = rng.normal(-1.8, 1.5, 4000)
    y = (rng.random(4000) < sigmoid(z)).astype(int)
    reported = z + 1.5
    t_only = fit_temperature(reported, y)
    t, c = fit_platt(reported, y)
    assert c == pytest.approx(-1.5, abs=0.2) and t == pytest.approx(1.0, abs=0.1)
    ece_t = expected_calibration_error(sigmoid(reported / t_only), y)
    ece_p = expected_calibration_error(sigmoid((reported + c) / t), y)
    assert ece_p < 0.02 < ece_t
    assert fit_platt(reported, np.zeros_like(y)) == (1.0, 0.0)  # one class: nothing fitted


STUDIES = samples([
    ("a", "WRIST", [1, 0, 0]),  # one fractured view among normal ones
    ("b", "WRIST", [0, 0]),
    ("c", "HAND", [1]),
    ("d", "HAND", [0]),
])
#: image probabilities in STUDIES order
PROBS = np.array([0.93, 0.15, 0.18, 0.10, 0.20, 0.70, 0.30])


AGG = [
    # (method, expected study scores a, b, c, d)
    ("mean", [0.42, 0.15, 0.70, 0.30]),
    ("max", [0.93, 0.20, 0.70, 0.30]),
    ("noisy_or", [1 - 0.07 * 0.85 * 0.82, 1 - 0.9 * 0.8, 0.70, 0.30]),
]


@pytest.mark.parametrize(("method", "expected"), AGG)
def test_study_scores_by_aggregation(method, expected):
    st = group_studies(STUDIES)
    np.testing.assert_allclose(st.scores(PROBS, method), expected, atol=1e-9)
    # the decision (score or any view) is never below the highest view
    assert (st.decision(PROBS, method) >= st.scores(PROBS, "max") - 1e-12).all()


def test_thresholds_on_the_flag_rule_separate_what_the_mean_hides():
    # On the flag rule (score or any view) the positive studies a (0.93) and c (0.70) lie
    # above b (0.20) and d (0.30): the fitted threshold separates them, and study a's
    # mean (0.42) no longer decides.
    t, _ = fit_thresholds(STUDIES, PROBS, any_view=True)
    assert 0.30 < t <= 0.70
    st = group_studies(STUDIES)
    flagged = st.decision(PROBS) >= t
    assert flagged.tolist() == [True, False, True, False]


def test_part_thresholds_need_enough_positive_studies():
    # 30 WRIST studies, 5 positive: enough studies, too few positives for its own
    # threshold at min_positives=20; allowed at 5.
    many = samples([(f"w{i}", "WRIST", [int(i < 5)]) for i in range(30)])
    probs = np.array([0.8 if i < 5 else 0.2 for i in range(30)])
    assert fit_thresholds(many, probs, min_studies=20, min_positives=20)[1] == {}
    assert set(fit_thresholds(many, probs, min_studies=20, min_positives=5)[1]) == {"WRIST"}


DOUBT = [
    # (positive studies' decision values, sensitivity, threshold, expected doubt threshold)
    ([0.9, 0.8, 0.6, 0.3, 0.1], 0.8, 0.5, 0.3),   # 4 of 5 reach 0.3
    ([0.9, 0.8, 0.6, 0.3, 0.1], 1.0, 0.5, 0.1),   # all of them: the lowest
    ([0.9, 0.8], 0.5, 0.5, 0.5),                  # capped at the threshold
]


@pytest.mark.parametrize(("values", "sensitivity", "threshold", "expected"), DOUBT)
def test_doubt_threshold(values, sensitivity, threshold, expected):
    data = samples([(f"p{i}", "HAND", [1]) for i in range(len(values))]
                   + [("n", "HAND", [0])])
    probs = np.array([*values, 0.05])
    got = fit_doubt_threshold(data, probs, threshold, sensitivity=sensitivity)
    assert got == pytest.approx(expected)


def test_aggregation_is_chosen_on_multi_view_studies():
    # 40 two-view studies, only one view of a positive study shows it: each method is
    # scored (AUROC of the flag rule) and one is chosen; with 5 such studies the mean is
    # kept, with the reason recorded.
    rng = np.random.default_rng(1)
    data, probs = [], []
    for i in range(40):
        pos = i % 2
        data += samples([(f"s{i}", "WRIST", [pos, 0])])
        probs += [rng.uniform(0.6, 0.9) if pos else rng.uniform(0.0, 0.5),
                  rng.uniform(0.0, 0.5)]
    method, info = choose_aggregation(data, np.array(probs))
    assert method in ("mean", "max", "noisy_or") and info["multi_view_studies"] == 40
    assert set(info["auroc"]) == {"mean", "max", "noisy_or"}
    method, info = choose_aggregation(data[:10], np.array(probs[:10]))
    assert method == "mean" and "mean kept" in info["reason"]
