"""Issue 14: study scores that do not hide a view, the DOUBT band, honest heat maps.

* :mod:`inference.aggregate`: mean / max / noisy-OR, and the flag rule (any view at or
  above a threshold flags the study, whatever the aggregate);
* the manifest's optional ``doubt_threshold`` / ``aggregation`` / ``cam_method`` (old
  bundles keep working: mean, no doubt band, Grad-CAM);
* the engine: ``flag``, per-image ``level``, the label following the flag, and maps scaled
  by the view's probability and hidden below the doubt band.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from bundle_factory import make_bundle, rewrite_manifest

from inference.aggregate import aggregate, decision_statistic, flag_text, level, study_flag
from inference.bundle import Bundle, load_manifest
from inference.engine import Engine, ImageInput
from inference.errors import BundleError


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# ------------------------------------------------------------------------ aggregation

AGGREGATES = [
    # (probabilities, method, expected score)
    ([0.93, 0.15, 0.18], "mean", 0.42),            # the study: the mean hides it
    ([0.93, 0.15, 0.18], "max", 0.93),             # the most suspicious view
    ([0.93, 0.15, 0.18], "noisy_or", 1 - 0.07 * 0.85 * 0.82),  # at least one positive
    ([0.3], "mean", 0.3),                          # one view: every method agrees
    ([0.3], "max", 0.3),
    ([0.3], "noisy_or", 0.3),
    ([0.0, 0.0], "noisy_or", 0.0),                 # nothing anywhere stays nothing
]


@pytest.mark.parametrize(("probs", "method", "expected"), AGGREGATES)
def test_aggregate(probs, method, expected):
    assert aggregate(probs, method) == pytest.approx(expected, abs=1e-9)


def test_aggregate_refuses_unknown_and_empty():
    with pytest.raises(ValueError, match="aggregation must be one of"):
        aggregate([0.5], "median")
    with pytest.raises(ValueError, match="at least one"):
        aggregate([], "mean")


FLAGS = [
    # (probabilities, threshold, doubt, method, flag)
    ([0.93, 0.15, 0.18], 0.5, 0.2, "mean", "positive"),   # one view ≥ t flags the study
    ([0.40, 0.10], 0.5, 0.3, "mean", "doubt"),            # a view in the doubt band
    ([0.15, 0.15], 0.5, 0.25, "noisy_or", "doubt"),       # noisy-OR 0.28: doubt, no view is
    ([0.45, 0.45], 0.5, 0.3, "noisy_or", "positive"),     # noisy-OR 0.70 ≥ t though no view
    ([0.10, 0.05], 0.5, 0.3, "max", "negative"),          # nothing reaches the doubt band
    ([0.5], 0.5, 0.3, "mean", "positive"),                # exactly at the threshold
    ([0.3], 0.5, 0.3, "mean", "doubt"),                   # exactly at the doubt threshold
    ([0.4], 0.5, None, "mean", "negative"),               # old bundle: no doubt band
]


@pytest.mark.parametrize(("probs", "threshold", "doubt", "method", "flag"), FLAGS)
def test_study_flag(probs, threshold, doubt, method, flag):
    score, got = study_flag(probs, threshold, doubt, method)
    assert got == flag
    assert score == pytest.approx(aggregate(probs, method))
    assert (decision_statistic(probs, method) >= threshold) == (flag == "positive")


def test_flag_text_and_levels():
    assert flag_text("positive", "fracture", "no fracture") == "FRACTURE"
    assert flag_text("doubt", "fracture", "no fracture") == "DOUBT"
    assert flag_text("negative", "fracture", "no fracture") == "NO FRACTURE"
    assert [level(p, 0.5, 0.2) for p in (0.6, 0.3, 0.1)] == ["positive", "doubt", "negative"]


# ------------------------------------------------------------------------- manifest


def test_old_bundle_defaults(tmp_path):
    # A bundle without the new fields: mean, no doubt band, Grad-CAM, no box head.
    m = make_bundle(tmp_path / "old", router_classes=None).manifest
    spec = m.abnormality_models["mura"]
    assert (m.aggregation, spec.aggregation, spec.doubt_threshold, spec.cam_method,
            spec.box_head) == ("mean", None, None, "gradcam", None)
    assert m.aggregation_of(spec) == "mean"


BAD_FIELDS = [
    # (where, key, value, message): each refused with the field named
    ("model", "doubt_threshold", 0.7, "doubt_threshold"),   # above the threshold (0.5)
    ("model", "aggregation", "median", "aggregation"),      # unknown aggregation
    ("model", "cam_method", "scorecam", "cam_method"),      # unknown CAM method
    ("top", "aggregation", "sum", "aggregation"),            # unknown bundle default
]


@pytest.mark.parametrize(("where", "key", "value", "message"), BAD_FIELDS)
def test_new_fields_are_validated(tmp_path, where, key, value, message):
    bundle = make_bundle(tmp_path / "b", router_classes=None)

    def change(m):
        (m["abnormality_models"]["mura"] if where == "model" else m)[key] = value

    rewrite_manifest(bundle.path, change)
    with pytest.raises(BundleError, match=message):
        load_manifest(bundle.path)


# --------------------------------------------------------------------------- engine


@pytest.fixture(scope="module")
def flagged(tmp_path_factory):
    """A bundle with a doubt band (0.2), threshold 0.5, mean aggregation."""
    root = tmp_path_factory.mktemp("flag")
    bundle = make_bundle(root / "b", router_classes=None)

    def change(m):
        m["abnormality_models"]["mura"]["doubt_threshold"] = 0.2
        m["aggregation"] = "mean"

    rewrite_manifest(bundle.path, change)
    return Bundle.load(bundle.path)


def scripted(engine: Engine, probabilities):
    """Make the engine's model give these probabilities (and flat maps of 1) in order."""
    logits = iter([logit(p) for p in probabilities])

    def score(name, spec, model, runner, batch):
        values = np.array([next(logits) for _ in batch], dtype=np.float32)
        maps = None if runner is None else np.ones((len(batch), *spec.input.size),
                                                   dtype=np.float32)
        return values, maps, None

    engine._score = score  # type: ignore[method-assign]


def images(n):
    rng = np.random.default_rng(0)
    return [ImageInput(f"{i}.png", rng.integers(0, 256, (40, 30), dtype=np.uint8),
                       path_part="WRIST") for i in range(n)]


STUDIES = [
    # (view probabilities, flag, label, levels)
    ([0.93, 0.15, 0.18], "positive", "abnormal",    # the study: mean 0.42, but
     ["positive", "negative", "negative"]),          # one view is clearly positive
    ([0.27, 0.10], "doubt", "normal", ["doubt", "negative"]),   # a view in the band
    ([0.12, 0.10], "negative", "normal", ["negative", "negative"]),
]


@pytest.mark.parametrize(("probs", "flag", "label", "levels"), STUDIES)
def test_engine_flags_the_study(flagged, probs, flag, label, levels):
    engine = Engine(flagged, "cpu")
    scripted(engine, probs)
    result = engine.analyze(images(len(probs)), cams=False)
    assert result.score == pytest.approx(np.mean(probs), abs=1e-6)
    assert (result.flag, result.label, result.aggregation) == (flag, label, "mean")
    assert result.doubt_threshold == 0.2
    assert [r.level for r in result.images] == levels
    assert result.flag_text == {"positive": "ABNORMAL", "doubt": "DOUBT",
                                "negative": "NORMAL"}[flag]


def test_maps_are_scaled_by_probability_and_hidden_below_doubt(flagged):
    # p = 0.27 (in the doubt band): its map peaks at 0.27, not at full intensity; p = 0.93
    # peaks at 0.93; p = 0.15 (below the doubt band) gets no map at all.
    engine = Engine(flagged, "cpu")
    scripted(engine, [0.27, 0.93, 0.15])
    a, b, c = engine.analyze(images(3)).images
    assert a.cam.max() == pytest.approx(0.27, abs=1e-4)
    assert b.cam.max() == pytest.approx(0.93, abs=1e-4)
    assert c.cam is None


def test_old_bundle_hides_maps_below_its_threshold(tmp_path):
    # Without a doubt band the threshold is the line: a p = 0.27 view gets no map.
    bundle = make_bundle(tmp_path / "old", router_classes=None)
    engine = Engine(bundle, "cpu")
    scripted(engine, [0.27, 0.8])
    a, b = engine.analyze(images(2)).images
    assert a.cam is None and b.cam.max() == pytest.approx(0.8, abs=1e-4)


@pytest.mark.parametrize(("method", "score"), [("max", 0.93),
                                               ("noisy_or", 1 - 0.07 * 0.85 * 0.82)])
def test_bundle_aggregation_is_used(tmp_path, method, score):
    bundle = make_bundle(tmp_path / method, router_classes=None)
    rewrite_manifest(bundle.path,
                     lambda m: m["abnormality_models"]["mura"].update(aggregation=method))
    engine = Engine(Bundle.load(bundle.path), "cpu")
    scripted(engine, [0.93, 0.15, 0.18])
    result = engine.analyze(images(3), cams=False)
    assert result.score == pytest.approx(score, abs=1e-6)
    assert result.aggregation == method


def test_layercam_runs_on_a_stride_8_layer(tmp_path):
    # A bundle asking for LayerCAM on ResNet-18's layer2 (stride 8): real maps, the shape
    # of the image, at most the view's probability.
    bundle = make_bundle(tmp_path / "lc", router_classes=None, cam_layer="layer2")
    rewrite_manifest(bundle.path, lambda m: m["abnormality_models"]["mura"].update(
        cam_method="layercam", threshold=0.0))
    engine = Engine(Bundle.load(bundle.path), "cpu")
    torch.manual_seed(0)
    (r,) = engine.analyze(images(1)).images
    assert r.cam is not None and r.cam.shape == (40, 30)
    assert r.cam.max() <= r.probability + 1e-6
    assert r.cam.std() > 0  # a map with structure
