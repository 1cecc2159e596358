"""The router's training side: domain randomization, stress transforms, threshold fitting."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.training.augment import STRESS_TRANSFORMS, DomainRandomize, content_box
from inference.training.router_fit import (
    decide,
    decision_key,
    fit_class_bias,
    fit_router_thresholds,
    mean_part_recall,
    routing_report,
)
from inference.training.train import balanced_weights


def film(seed: int = 0, size: int = 96) -> np.ndarray:
    """A letterboxed "film": dark borders, a bright bone-like bar in the middle."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), np.uint8)
    img[:, 16:80] = rng.integers(40, 90, (size, 64))
    img[10:86, 40:56] = 200
    return img


@pytest.mark.parametrize("transform", STRESS_TRANSFORMS, ids=lambda t: t.name)
def test_stress_transforms_keep_shape_and_type(transform):
    # Every stress transform must give a same-size uint8 film (the router input).
    out = transform.fn(film(), np.random.default_rng(0))
    assert out.shape == (96, 96) and out.dtype == np.uint8


def test_held_out_transforms_exist():
    # The stress test must include transforms training never saw.
    assert sum(t.held_out for t in STRESS_TRANSFORMS) >= 3


def test_domain_randomize_is_seeded_and_varied():
    # Same torch seed → same film (resumable, repeatable runs); different draws differ.
    aug = DomainRandomize()
    x = torch.from_numpy(film())[None]
    torch.manual_seed(3)
    a = aug(x)
    torch.manual_seed(3)
    b = aug(x)
    assert torch.equal(a, b) and a.shape == x.shape and a.dtype == torch.uint8
    draws = {aug(x).numpy().tobytes() for _ in range(8)}
    assert len(draws) > 4


def test_strength_zero_is_flip_and_rotation_only():
    # strength 0 turns off every domain transform: the film's grey levels survive.
    aug = DomainRandomize(hflip=0.0, rotate=0.0, strength=0.0)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(aug.apply(film(), rng), film())


def test_content_box_finds_the_film_inside_its_letterbox():
    assert content_box(film()) == (0, 96, 16, 80)


def test_balanced_weights_favour_rare_classes():
    # sqrt: a class 4× rarer is drawn 2× more often per film; class: equal per class.
    targets = [0] * 8 + [1] * 2
    w = balanced_weights(targets, "sqrt")
    assert w[9] / w[0] == pytest.approx(2.0)
    w = balanced_weights(targets, "class")
    assert sum(w[:8]) == pytest.approx(sum(w[8:]))


CLASSES = ["HAND", "WRIST", "OTHER"]


def test_fit_keeps_upper_limb_refusals_within_budget():
    # 100 upper-limb films, a few with a high P(OTHER); 100 OTHER films.
    rng = np.random.default_rng(0)
    p_other_upper = np.concatenate([rng.uniform(0.0, 0.4, 95), [0.6, 0.7, 0.8, 0.85, 0.9]])
    upper = np.stack([(1 - p_other_upper) * 0.8, (1 - p_other_upper) * 0.2, p_other_upper], 1)
    p_other = rng.uniform(0.75, 1.0, 100)
    other = np.stack([(1 - p_other) / 2, (1 - p_other) / 2, p_other], 1)
    probs = np.concatenate([upper, other])
    labels = ["HAND"] * 100 + ["OTHER"] * 100
    fitted = fit_router_thresholds(probs, CLASSES, labels, max_upper_to_other=0.01)
    # at most 1 of 100 upper-limb films refused
    assert fitted["other_threshold"] > 0.85
    report = routing_report(probs, CLASSES, labels, ["H"] * 200, fitted, resamples=50)
    assert report["upper_routed_to_other"]["value"] <= 0.01
    assert report["recall"]["HAND"]["value"] >= 0.99


def test_uncertain_decisions_go_to_the_general_model():
    probs = np.array([[0.45, 0.40, 0.15], [0.9, 0.05, 0.05], [0.05, 0.05, 0.9]])
    keys = [decision_key(d) for d in decide(probs, CLASSES, 0.5, 0.8)]
    assert keys == ["UPPER (uncertain)", "HAND", "OTHER"]


def test_class_bias_recovers_a_swallowed_rare_class():
    # 60 HAND films (HAND logit +2) and 12 WRIST films the network also leans HAND on
    # (HAND +1.0, WRIST +0.6): unbiased, every WRIST film is called HAND (mean part
    # recall 0.5). A positive WRIST shift (or a negative HAND one) separates them.
    rng = np.random.default_rng(0)
    hand = np.stack([2 + rng.normal(0, 0.1, 60), rng.normal(0, 0.1, 60), np.full(60, -3.0)], 1)
    wrist = np.stack([1 + rng.normal(0, 0.1, 12), 0.6 + rng.normal(0, 0.1, 12),
                      np.full(12, -3.0)], 1)
    logits = np.concatenate([hand, wrist])
    labels = ["HAND"] * 60 + ["WRIST"] * 12
    soft = torch.softmax(torch.from_numpy(logits), 1).numpy()
    assert mean_part_recall(soft, CLASSES, labels) == pytest.approx(0.5)
    bias = fit_class_bias(logits, CLASSES, labels)
    shifted = logits + np.array([bias.get(c, 0.0) for c in CLASSES])
    soft = torch.softmax(torch.from_numpy(shifted), 1).numpy()
    assert mean_part_recall(soft, CLASSES, labels) == pytest.approx(1.0)
    assert bias.get("WRIST", 0.0) - bias.get("HAND", 0.0) > 0.4


def test_class_bias_stays_zero_when_the_router_is_already_right():
    # Well separated classes: any shift only adds penalty, so none is written.
    logits = np.array([[3.0, 0.0, -3.0]] * 20 + [[0.0, 3.0, -3.0]] * 20 + [[-3, -3, 3.0]] * 20)
    labels = ["HAND"] * 20 + ["WRIST"] * 20 + ["OTHER"] * 20
    assert fit_class_bias(logits, CLASSES, labels) == {}
