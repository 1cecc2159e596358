"""Issue 14, "say where": the dense heatmap box head from masks to boxes to the bundle.

* :func:`inference.boxes.box_masks` / :func:`heat_targets`: normalized boxes → model-input
  masks → cell targets, through the letterbox placement;
* :func:`inference.boxes.heat_boxes`: a heatmap → boxes in image pixels, best first, with
  levels; padding never becomes a box;
* the manifest's ``box_head`` (its own safetensors file, sha256, tensors checked) and the
  engine's per-image ``boxes``;
* the head's score terms: the model's logit plus ``score_weight`` × the peak heat logit plus
  ``score_offset`` (``box_head.score_*``), the same through :meth:`Bundle.load_model` and
  the engine, with maps; their fit (:func:`inference.training.boxfit.fit_heat_stack`);
* a tiny ``radview train`` run with FracAtlas boxes makes a bundle with a box head that
  ``radview predict``'s engine loads (the path end to end).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from bundle_factory import manifest_dict, random_state
from training_factory import FRACATLAS, make_fracatlas

from inference.boxes import (
    DenseHeatmapHead,
    attach_box_head,
    box_masks,
    heat_boxes,
    heat_targets,
    split_state,
)
from inference.bundle import Bundle, load_manifest, write_bundle
from inference.engine import Engine, ImageInput
from inference.errors import BundleError
from inference.models import build_model
from inference.preprocess import InputSpec
from inference.training.boxfit import fit_heat_stack

SQUARE = InputSpec(size=(64, 64), resize="letterbox")

MASKS = [
    # (image shape, box fractions, expected (rows, cols) slice of the 64 × 64 mask)
    ((100, 100), (0.25, 0.5, 0.5, 0.75), (slice(32, 48), slice(16, 32))),  # no padding
    ((100, 200), (0.0, 0.0, 1.0, 1.0), (slice(16, 48), slice(0, 64))),     # wide: bands
    ((200, 100), (0.5, 0.0, 1.0, 0.5), (slice(0, 32), slice(32, 48))),     # tall: bands
]


@pytest.mark.parametrize(("shape", "box", "where"), MASKS)
def test_box_masks_follow_the_letterbox(shape, box, where):
    mask = box_masks([[box]], [shape], SQUARE)[0]
    expected = np.zeros((64, 64), dtype=np.uint8)
    expected[where] = 255
    np.testing.assert_array_equal(mask, expected)


def test_heat_targets_mark_every_cell_a_box_touches():
    mask = box_masks([[(0.25, 0.5, 0.5, 0.75)]], [(100, 100)], SQUARE)
    t = heat_targets(torch.from_numpy(mask), (8, 8))[0, 0].numpy()
    assert t.shape == (8, 8)
    np.testing.assert_array_equal(np.argwhere(t), [[r, c] for r in (4, 5) for c in (2, 3)])


def _blobs() -> np.ndarray:
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[1:3, 1:3] = 0.9     # strong: "fracture"
    heat[5, 5:7] = 0.35      # weak: "doubt"
    heat[7, 0] = 0.1         # below the doubt level: nothing
    return heat


BOXES = [
    # (image shape, expected boxes (x0, y0, x1, y1, level)) for the two blobs of _blobs()
    ((64, 64), [(8, 8, 24, 24, "fracture"), (40, 40, 56, 48, "doubt")]),         # 1:1
    ((128, 128), [(16, 16, 48, 48, "fracture"), (80, 80, 112, 96, "doubt")]),    # × 2
]


@pytest.mark.parametrize(("shape", "expected"), BOXES)
def test_heat_boxes_in_image_pixels_best_first(shape, expected):
    boxes = heat_boxes(_blobs(), SQUARE, shape, threshold=0.5, doubt_threshold=0.3)
    assert [(b["x0"], b["y0"], b["x1"], b["y1"], b["level"]) for b in boxes] == expected
    assert [b["score"] for b in boxes] == pytest.approx([0.9, 0.35], abs=1e-4)


CORES = [
    # (heat cells (row, col, heat) on an 8 × 8 map, expected box (x0, y0, x1, y1) on 64 × 64)
    # A peak with a long weak tail at the doubt level: the box is the core around the peak
    # (cells ≥ half the peak), not the whole tail.
    # Centroid column (0.9·2.5 + 0.8·3.5) / 1.7 = 2.97 cells, two cells wide: 15.8–31.8 px.
    ([(2, 2, 0.9), (2, 3, 0.8), (2, 4, 0.35), (2, 5, 0.35), (2, 6, 0.35)], (15, 16, 32, 24)),
    # A core of unequal cells leans towards the hotter one: centroid column
    # (0.9·1.5 + 0.45·2.5) / 1.35 = 1.83 cells, two cells wide: 6.7–22.7 px.
    ([(4, 1, 0.9), (4, 2, 0.45)], (6, 32, 23, 40)),
    # Uniform heat: the core is the whole component (the extent, as before).
    ([(5, 5, 0.6), (5, 6, 0.6), (6, 5, 0.6), (6, 6, 0.6)], (40, 40, 56, 56)),
]


@pytest.mark.parametrize(("cells", "expected"), CORES)
def test_a_box_is_the_core_of_its_component(cells, expected):
    heat = np.zeros((8, 8), dtype=np.float32)
    for r, c, v in cells:
        heat[r, c] = v
    (b,) = heat_boxes(heat, SQUARE, (64, 64), threshold=0.5, doubt_threshold=0.3)
    assert (b["x0"], b["y0"], b["x1"], b["y1"]) == expected


def test_heat_in_letterbox_padding_is_no_box():
    # A 32 × 64 image fills rows 16–47 of the 64 × 64 input: heat in rows 0–15 is padding.
    heat = np.zeros((8, 8), dtype=np.float32)
    heat[0, 3] = 0.9
    heat[4, 4] = 0.8
    boxes = heat_boxes(heat, SQUARE, (32, 64), threshold=0.5, doubt_threshold=0.3)
    assert [(b["x0"], b["y0"], b["x1"], b["y1"]) for b in boxes] == [(32, 16, 40, 24)]


def test_mask_to_boxes_round_trip():
    # A box drawn as a target heatmap comes back as a box covering it (cell-quantized).
    shape, box = (300, 200), (0.3, 0.4, 0.6, 0.7)
    mask = box_masks([[box]], [shape], SQUARE)
    heat = heat_targets(torch.from_numpy(mask), (16, 16))[0, 0].numpy()
    (found,) = heat_boxes(heat, SQUARE, shape, threshold=0.5, doubt_threshold=0.5)
    x0, y0, x1, y1 = box[0] * 200, box[1] * 300, box[2] * 200, box[3] * 300
    assert found["x0"] <= x0 and found["y0"] <= y0 and found["x1"] >= x1 and found["y1"] >= y1
    assert found["x1"] - found["x0"] <= (x1 - x0) + 2 * 300 / 16  # within a cell each side


# ---------------------------------------------------------------- bundle and engine


def _bundle_with_head(root: Path, *, head_bias: float = 3.0, break_head: bool = False,
                      score: dict | None = None):
    data = manifest_dict(router_classes=None, threshold=0.0)
    model = data["abnormality_models"]["mura"]
    model["doubt_threshold"] = 0.0
    model["box_head"] = {"kind": "dense_heatmap", "layer": "layer3", "channels": 256,
                         "hidden": 8, "weights": "mura-boxes.safetensors",
                         "sha256": "0" * 64, "threshold": 0.5, "doubt_threshold": 0.3,
                         **(score or {})}
    torch.manual_seed(0)
    head = DenseHeatmapHead(256 if not break_head else 128, 8)
    with torch.no_grad():
        head.out.weight.zero_()
        head.out.bias.fill_(head_bias)  # heat sigmoid(3) ≈ 0.95 everywhere: one box
    states = {"mura.safetensors": random_state("resnet18", 1),
              "mura-boxes.safetensors": head.state_dict()}
    return write_bundle(root, data, states)


def test_engine_returns_boxes_from_the_head(tmp_path):
    bundle = _bundle_with_head(tmp_path / "b")
    spec = bundle.manifest.abnormality_models["mura"]
    assert spec.box_head is not None and spec.box_head.layer == "layer3"
    assert ("mura-boxes.safetensors", spec.box_head.sha256) in bundle.manifest.weights_files
    pixels = np.random.default_rng(0).integers(0, 256, (80, 60), dtype=np.uint8)
    result = Engine(bundle, "cpu").analyze([ImageInput("a.png", pixels, path_part="HAND")],
                                           cams=False)
    (b,) = result.images[0].boxes
    # Heat everywhere: one box over the whole image (letterbox padding excluded).
    assert (b["x0"], b["y0"], b["x1"], b["y1"], b["level"]) == (0, 0, 60, 80, "fracture")


def test_box_head_file_is_checked(tmp_path):
    # Tensors that do not fit the declared head are refused by name.
    with pytest.raises(BundleError, match="do not fit a dense_heatmap head"):
        _bundle_with_head(tmp_path / "bad", break_head=True)
    # A changed box-head file fails its sha256.
    bundle = _bundle_with_head(tmp_path / "ok")
    data = (bundle.path / "mura-boxes.safetensors").read_bytes()
    (bundle.path / "mura-boxes.safetensors").write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        load_manifest(bundle.path)


def test_attached_head_travels_in_the_state_dict_and_splits_off():
    model = build_model("resnet18", 1)
    attach_box_head(model, "layer3", DenseHeatmapHead(256, 8))
    model(torch.zeros(2, 3, 64, 64))
    assert model.box_heat.shape == (2, 1, 4, 4)  # stride 16
    main, head = split_state(model.state_dict())
    assert set(head) == set(DenseHeatmapHead(256, 8).state_dict())
    build_model("resnet18", 1).load_state_dict(main, strict=True)


SCORE_TERMS = [
    # (box_head score fields, expected addition to the classifier's logit, or an error)
    ({}, 0.0),                                         # absent: the classifier alone
    ({"score_weight": 0.5, "score_offset": -1.0}, 0.5),  # 0.5 × peak 3.0 − 1.0
    ({"score_offset": 0.25}, 0.25),                    # an offset alone applies too
    ({"score_weight": -0.5}, "score_weight"),          # a head that votes against: refused
    ({"score_offset": 50.0}, "score_offset"),          # past the log-odds bound: refused
    ({"score_weight": "1"}, "score_weight"),           # a string is not a number
]


@pytest.mark.parametrize("score,expected", SCORE_TERMS)
def test_head_score_terms_enter_the_logit(tmp_path, score, expected):
    if isinstance(expected, str):
        with pytest.raises(BundleError, match=f"box_head.{expected}"):
            _bundle_with_head(tmp_path / "b", score=score)
        return
    bundle = _bundle_with_head(tmp_path / "b", score=score)
    spec = bundle.manifest.abnormality_models["mura"]
    bare = dataclasses.replace(spec, box_head=dataclasses.replace(
        spec.box_head, score_weight=0.0, score_offset=0.0))
    x = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype("f4"))
    with torch.inference_mode():
        plain = bundle.load_model(bare, "cpu")(x)[:, 0]
        stacked = bundle.load_model(spec, "cpu")(x)[:, 0]
    # The head's heat logit is its bias (3.0) in every cell, so the peak is 3.0.
    torch.testing.assert_close(stacked - plain, torch.full((2,), expected), atol=1e-5,
                               rtol=0)
    # The engine's probability is sigmoid(stacked logit / T), with maps and boxes too.
    pixels = np.random.default_rng(0).integers(0, 256, (80, 60), dtype=np.uint8)
    result = Engine(bundle, "cpu").analyze([ImageInput("a.png", pixels, path_part="HAND")],
                                           cams=True)
    with torch.inference_mode():
        from inference.preprocess import prepare_batch

        z = float(bundle.load_model(spec, "cpu")(prepare_batch([pixels], spec.input))[0, 0])
    assert result.images[0].probability == pytest.approx(
        1 / (1 + np.exp(-z / spec.temperature)), abs=1e-6)
    assert result.images[0].cam is not None and result.images[0].boxes


def _stack_data(n: int, a: float, b: float, c: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    z, m = rng.normal(0, 2, n), rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(a * z + b * m + c)))).astype(int)
    return z, m, y


def test_fit_heat_stack_recovers_the_generating_model():
    # 20,000 films drawn from p = sigmoid(0.5·z + 0.8·m − 1): the fit returns it in the
    # bundle's form (T = 1/a, weight b/a, offset c/a) within sampling error.
    fit = fit_heat_stack(*_stack_data(20_000, 0.5, 0.8, -1.0))
    assert fit["temperature"] == pytest.approx(2.0, rel=0.08)
    assert fit["score_weight"] == pytest.approx(1.6, rel=0.08)
    assert fit["score_offset"] == pytest.approx(-2.0, rel=0.1)


STACK_REFUSED = [
    # (why the classifier's own calibration stays, data)
    ("one class only", (np.zeros(50), np.zeros(50), np.zeros(50, int))),
    ("a single positive", (np.arange(50.0), np.arange(50.0), np.eye(1, 50, 49, int)[0])),
    ("the peak votes against fractures", _stack_data(5_000, 0.8, -0.7, 0.0)),
]


@pytest.mark.parametrize("why,data", STACK_REFUSED, ids=[w for w, _ in STACK_REFUSED])
def test_fit_heat_stack_declines(why, data):
    assert fit_heat_stack(*data) is None


# ------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def fracatlas_with_boxes(tmp_path_factory) -> Path:
    if not FRACATLAS.is_dir():
        pytest.skip("shared FracAtlas subset not present")
    with open(FRACATLAS / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    with open(FRACATLAS / "fracture_boxes.csv", newline="") as f:
        boxes = list(csv.DictReader(f))
    boxed = {b["image_id"] for b in boxes}
    upper = [r for r in rows if r["body_part"] != "OTHER"]
    chosen = ([r for r in upper if r["image_id"] in boxed][:16]
              + [r for r in upper if r["fractured"] == "0"][:24])
    folder = make_fracatlas(tmp_path_factory.mktemp("fab"), rows=chosen)
    ids = {r["image_id"] for r in chosen}
    with open(folder / "fracture_boxes.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image_id", "x0", "y0", "x1", "y1"])
        w.writeheader()
        w.writerows(b for b in boxes if b["image_id"] in ids)
    return folder


def test_tiny_training_with_boxes_end_to_end(fracatlas_with_boxes, tmp_path):
    # radview train with FracAtlas boxes (auto) → a bundle with a box head, LayerCAM on
    # the stride-8 layer, a doubt band and an aggregation → the engine returns boxes.
    from viewer.cli.train import main as train_main

    out = tmp_path / "bundle"
    assert train_main([
        "--data", str(fracatlas_with_boxes), "--format", "fracatlas", "--cache-dir",
        str(tmp_path / "cache"), "--block-size", "5", "--val-fraction", "0.3", "--holdout",
        "0.3", "--arch", "efficientnet_lite0", "--init", "scratch", "--size", "64",
        "--epochs", "1", "--bootstrap", "20", "--no-progress", "--out", str(out)]) == 0
    bundle = Bundle.load(out)
    spec = bundle.manifest.abnormality_models["fracture"]
    assert spec.box_head is not None and spec.box_head.layer == "features.5"
    assert (spec.cam_method, spec.cam_target_layer) == ("layercam", "features.3")
    assert spec.doubt_threshold is not None and spec.doubt_threshold <= spec.threshold
    assert spec.aggregation in ("mean", "max", "noisy_or")
    report = json.loads((out / "metrics" / "fracture.json").read_text())
    assert report["selection_split"] == "holdout of train"
    assert report["boxes"]["fitted_on"] == "select" and "peak_in_box" in report["boxes"]
    assert "ece_after" in report["calibration"] and "doubt" in report
    card = (out / "MODEL_CARD.md").read_text()
    assert "**Boxes**" in card and "**Study score**" in card
    image = next((fracatlas_with_boxes / "images").glob("*.jpg"))
    from viewer.training_input import read_model_input

    result = Engine(bundle, "cpu").analyze(
        [ImageInput(str(image), read_model_input(image), path_part="HAND")])
    r = result.images[0]
    assert isinstance(r.boxes, list) and result.flag in ("positive", "doubt", "negative")
    for b in r.boxes:
        assert set(b) == {"x0", "y0", "x1", "y1", "score", "level"}
        assert b["level"] in ("fracture", "doubt")
