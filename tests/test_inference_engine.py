"""The engine end to end on tiny bundles: routing, scoring, Grad-CAM, cancellation, errors.

Models are ResNet-18 at 64 px with seeded random weights, edited where a test needs a
known answer: a zero classifier with a chosen bias gives a known logit for every image; a
router with a one-hot bias always answers one class; convolution kernels made left–right
symmetric give a network that commutes with horizontal flips (at an odd input size, where
every stride-2 stage keeps the sampling grid symmetric).
"""

from __future__ import annotations

import math
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from bundle_factory import ROUTER_CLASSES, make_bundle, rewrite_manifest
from torch import nn

from inference.bundle import Bundle
from inference.engine import Engine, ImageInput, resolve_device
from inference.errors import BundleError, Cancelled, InferenceError
from inference.gradcam import CamRunner
from inference.models import ARCHITECTURES, Architecture, get_layer


def constant_logit(value: float):
    """Model edit: every image gets logit ``value`` (zero weights, bias = value)."""
    def edit(model: nn.Module) -> None:
        model.fc.weight.zero_()
        model.fc.bias.fill_(value)
    return edit


def router_says(cls: str | None):
    """Router edit: always ``cls`` with probability ≈ 1; None: uniform (1/8 each)."""
    def edit(model: nn.Module) -> None:
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        if cls is not None:
            model.fc.bias[ROUTER_CLASSES.index(cls)] = 20.0
    return edit


def router_probs(**probs: float):
    """Router edit: these class probabilities for every image (the rest ≈ 0)."""
    def edit(model: nn.Module) -> None:
        model.fc.weight.zero_()
        model.fc.bias.fill_(-30.0)
        for cls, p in probs.items():
            model.fc.bias[ROUTER_CLASSES.index(cls)] = math.log(p)
    return edit


def symmetric_kernels(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.weight.copy_((m.weight + m.weight.flip(-1)) / 2)


def image(seed: int, shape=(96, 80)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root = tmp_path_factory.mktemp("engine")
    return {
        # Random weights, router always says ELBOW.
        "random": make_bundle(root / "random", router_edit=router_says("ELBOW")),
        # Known logit 2.0 for every image; router uncertain (uniform).
        "logit2": make_bundle(root / "logit2", model_edit=constant_logit(2.0),
                              router_edit=router_says(None)),
        # Router always says OTHER (not an upper-extremity radiograph).
        "other": make_bundle(root / "other", model_edit=constant_logit(0.0),
                             router_edit=router_says("OTHER")),
    }


@pytest.fixture(scope="module")
def engine(bundles) -> Engine:
    return Engine(bundles["random"], "cpu")


# ------------------------------------------------------------------------- routing


def test_routing_precedence_through_the_engine(engine):
    # Tag beats folder; folder beats router; the router still sees every image, and when it
    # confidently names another part the study is flagged with both opinions.
    images = [ImageInput("a.dcm", image(1), tag_part="WRIST", path_part="HAND"),
              ImageInput("b.png", image(2), path_part="WRIST"),
              ImageInput("c.png", image(3))]
    result = engine.analyze(images, cams=False)
    parts = [(r.body_part, r.body_part_source) for r in result.images]
    assert parts == [("WRIST", "tag"), ("WRIST", "path"), ("ELBOW", "router")]
    assert all(r.router_probs is not None for r in result.images)
    assert result.images[2].router_probs["ELBOW"] > 0.99
    assert (result.body_part, result.body_part_source) == ("WRIST", "tag")
    assert result.flags == ["body part disputed: the DICOM tag says WRIST, the router says "
                            "ELBOW (1.00)"]
    assert (result.router_part, result.part_uncertain) == ("ELBOW", False)
    assert result.supported and result.model == "mura"


def test_synonym_in_the_tag(engine):
    # Body Part Examined "THUMB" is a finger study.
    result = engine.analyze([ImageInput("t.dcm", image(4), tag_part="THUMB")], cams=False)
    assert (result.body_part, result.body_part_source, result.supported) == (
        "FINGER", "tag", True)


@pytest.mark.parametrize("tag,part", [
    # A chest radiograph: the bundle covers the upper extremity only.
    ("CHEST", "CHEST"),
    # A knee.
    ("KNEE", "KNEE"),
])
def test_unsupported_part_gives_no_score(bundles, tag, part):
    # Never a silent score: no probability, no label, no CAM, and the model never loads.
    engine = Engine(bundles["random"], "cpu")
    result = engine.analyze([ImageInput("x.dcm", image(5), tag_part=tag)])
    assert not result.supported
    assert result.reason.startswith(f"not supported by this model: {part} (this bundle "
                                    f"covers: ELBOW, FINGER, FOREARM, HAND, HUMERUS, SHOULDER, "
                                    f"WRIST)")
    assert (result.score, result.label, result.model, result.threshold) == (None,) * 4
    assert all(r.probability is None and r.cam is None for r in result.images)
    assert engine.loaded == ["router"]  # the router cross-checked; the model never loaded


def test_router_other_is_not_supported(bundles):
    # An image the router calls OTHER (not an upper-extremity radiograph) is refused.
    result = Engine(bundles["other"], "cpu").analyze([ImageInput("p.png", image(6))])
    assert not result.supported and "not supported by this model: OTHER" in result.reason
    assert result.body_part_source == "router" and result.score is None


def test_uncertain_router_still_scores_and_says_so(bundles):
    # A uniform router (1/8 per class) is below the bundle's 0.5 confidence threshold: the
    # study is not dropped but scored under the best guess and flagged "uncertain".
    result = Engine(bundles["logit2"], "cpu").analyze([ImageInput("u.png", image(7))],
                                                      cams=False)
    assert result.supported and result.part_uncertain and result.body_part == "ELBOW"
    assert result.flags == ["body part uncertain: ELBOW 0.12, FINGER 0.12, FOREARM 0.12",
                            "scored with the ELBOW threshold (best guess)"]
    assert result.body_part_source == "router"


@pytest.mark.parametrize("probs,part,uncertain,supported", [
    # A sure part: its own model and threshold.
    ({"HUMERUS": 0.7, "SHOULDER": 0.3}, "HUMERUS", False, True),
    # A weak OTHER (below other_threshold 0.8) never drops an upper-limb film: scored,
    # with the fallback (general upper-limb) model, and flagged uncertain.
    ({"OTHER": 0.6, "WRIST": 0.25, "HAND": 0.15}, "WRIST", True, True),
    # A confident OTHER refuses the study.
    ({"OTHER": 0.9, "HAND": 0.1}, "OTHER", False, False),
    # Hand and wrist split the vote: upper limb for sure, part uncertain → fallback.
    ({"HAND": 0.45, "WRIST": 0.4, "OTHER": 0.15}, "HAND", True, True),
])
def test_router_decisions_with_a_fallback_model(tmp_path, probs, part, uncertain, supported):
    def change(m):
        m["router"]["other_threshold"] = 0.8
        m["abnormality_models"]["upper"] = dict(m["abnormality_models"]["mura"],
                                                threshold=0.3)
        m["fallback_model"] = "upper"

    b = make_bundle(tmp_path / "b", model_edit=constant_logit(0.0),
                    router_edit=router_probs(**probs))
    rewrite_manifest(b.path, change)
    result = Engine(Bundle.load(b.path), "cpu").analyze([ImageInput("x.png", image(70))],
                                                        cams=False)
    assert (result.body_part, result.part_uncertain, result.supported) == (
        part, uncertain, supported)
    if uncertain:
        assert result.model == "upper" and result.threshold == 0.3
        assert "scored with the general upper-limb threshold" in result.flags


def test_a_knee_in_a_shoulder_folder_is_flagged(bundles):
    # The folder says SHOULDER, the router is sure it is not an upper limb: both shown.
    result = Engine(bundles["other"], "cpu").analyze(
        [ImageInput("k.png", image(71), path_part="SHOULDER")], cams=False)
    assert (result.body_part, result.body_part_source, result.router_part) == (
        "SHOULDER", "path", "OTHER")
    assert result.flags == ["body part disputed: the folder says SHOULDER, the router says "
                            "OTHER (1.00)"]


def test_override_replaces_routing(engine):
    # The user says HAND: tags, folders and router are all ignored.
    images = [ImageInput("x.dcm", image(8), tag_part="CHEST"), ImageInput("y.png", image(9))]
    result = engine.analyze(images, override_part="hands", cams=False)
    assert (result.body_part, result.body_part_source, result.supported) == (
        "HAND", "override", True)
    assert all(r.body_part_source == "override" and r.router_probs is None
               for r in result.images)
    assert result.flags == []


# ------------------------------------------------------------------------- scoring


def test_study_score_is_the_mean_and_batching_changes_nothing(bundles):
    # MURA protocol: the study score is the mean of its images' probabilities; scoring in
    # one batch, in batches of 2, or one image at a time gives the same numbers.
    images = [ImageInput(f"{i}.png", image(10 + i, (90 + 7 * i, 70)), path_part="WRIST")
              for i in range(3)]
    batched = Engine(bundles["random"], "cpu").analyze(images, cams=False)
    probs = [r.probability for r in batched.images]
    assert len(set(probs)) == 3  # distinct images, distinct probabilities
    assert batched.score == pytest.approx(np.mean(probs), abs=1e-12)
    small = Engine(bundles["random"], "cpu", max_batch=2).analyze(images, cams=False)
    assert [r.probability for r in small.images] == pytest.approx(probs, abs=1e-5)
    single = Engine(bundles["random"], "cpu")
    for im, p in zip(images, probs, strict=True):
        assert single.analyze([im], cams=False).score == pytest.approx(p, abs=1e-5)
    assert batched.label == ("abnormal" if batched.score >= 0.5 else "normal")


@pytest.mark.parametrize("temperature,expected", [
    (1.0, 1 / (1 + math.exp(-2.0))),   # plain sigmoid(2)
    (2.0, 1 / (1 + math.exp(-1.0))),   # logit / T = 1
    (0.5, 1 / (1 + math.exp(-4.0))),   # sharper
])
def test_temperature_scaling(bundles, tmp_path, temperature, expected):
    # p = sigmoid(logit / temperature) with the model's logit fixed at 2.0.
    path = shutil.copytree(bundles["logit2"].path, tmp_path / "b")
    rewrite_manifest(path, lambda d: d["abnormality_models"]["mura"].update(
        temperature=temperature))
    result = Engine(Bundle.load(path), "cpu").analyze(
        [ImageInput("a.png", image(20), path_part="HAND")], cams=False)
    assert result.images[0].probability == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("threshold,positive,label", [
    # A score exactly at the threshold is positive (score >= threshold).
    (0.5, "abnormal", "abnormal"),
    # Just above the score: negative.
    (0.5000001, "abnormal", "normal"),
    # The manifest's own labels; the default negative of "fracture" is "no fracture".
    (0.5, "fracture", "fracture"),
    (0.6, "fracture", "no fracture"),
])
def test_threshold_edge(bundles, tmp_path, threshold, positive, label):
    path = shutil.copytree(bundles["other"].path, tmp_path / "b")  # logit 0 → p = 0.5
    rewrite_manifest(path, lambda d: d["abnormality_models"]["mura"].update(
        threshold=threshold, positive_label=positive))
    result = Engine(Bundle.load(path), "cpu").analyze(
        [ImageInput("a.png", image(21), path_part="ELBOW")], cams=False)
    assert result.score == 0.5
    assert (result.label, result.threshold) == (label, threshold)


# ------------------------------------------------------------------------- Grad-CAM


def test_cam_is_on_the_original_pixel_grid(engine):
    # One CAM per image, same shape as the image, float32 in [0, 1].
    shapes = [(96, 80), (50, 130), (200, 64)]
    images = [ImageInput(f"{i}.png", image(30 + i, s), path_part="HAND")
              for i, s in enumerate(shapes)]
    result = engine.analyze(images)
    for r, shape in zip(result.images, shapes, strict=True):
        assert r.cam.shape == shape and r.cam.dtype == np.float32
        assert 0.0 <= r.cam.min() and r.cam.max() <= 1.0
    assert all(r.cam is None for r in engine.analyze(images, cams=False).images)


def test_cams_do_not_change_probabilities(engine):
    # The Grad-CAM pass is the scoring pass: same probabilities with and without CAMs.
    images = [ImageInput(f"{i}.png", image(40 + i), path_part="HAND") for i in range(2)]
    with_cams = [r.probability for r in engine.analyze(images).images]
    without = [r.probability for r in engine.analyze(images, cams=False).images]
    assert with_cams == pytest.approx(without, abs=1e-6)


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
def test_cam_of_flipped_image_is_the_flipped_cam(tmp_path, resize):
    # Registration: with a flip-symmetric network, explaining the mirrored image must give
    # the mirrored map, pixel for pixel, on the original grid. A transposed, shifted or
    # mis-scaled mapping fails this.
    bundle = make_bundle(tmp_path / "sym", input_size=65, resize=resize, router_classes=None,
                         model_edit=symmetric_kernels)
    engine = Engine(bundle, "cpu")
    pixels = image(50, (90, 130))
    mirrored = np.ascontiguousarray(pixels[:, ::-1])
    a, b = engine.analyze([ImageInput("a.png", pixels, path_part="HAND"),
                           ImageInput("b.png", mirrored, path_part="HAND")]).images
    assert a.probability == pytest.approx(b.probability, abs=1e-5)
    assert a.cam.std() > 0.05  # a map with structure, not a constant
    np.testing.assert_allclose(b.cam, a.cam[:, ::-1], atol=1e-3)


class _Brightness(nn.Module):
    """A 'model' whose Grad-CAM is the image brightness: 1×1 conv (positive weights),
    ReLU, global average, linear (positive weights)."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, num_classes)
        with torch.no_grad():
            self.features[0].weight.fill_(0.5)
            self.features[0].bias.zero_()
            self.fc.weight.fill_(1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


@pytest.fixture
def brightness_arch(monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "test_brightness", Architecture(
        "test_brightness", _Brightness, "features", "fc", "features.0"))


@pytest.mark.parametrize("shape,spot", [
    # Landscape: letterboxed into a band; the spot is right of centre, low.
    ((60, 120), (40, 92)),
    # Portrait: letterboxed into a column; the spot is near the top left.
    ((150, 50), (20, 12)),
])
def test_letterbox_cam_puts_the_hot_spot_back(tmp_path, brightness_arch, shape, spot):
    bundle = make_bundle(tmp_path / "bright", arch="test_brightness", router_classes=None,
                         resize="letterbox")
    pixels = np.zeros(shape, np.uint8)
    r, c = spot
    pixels[r - 5:r + 6, c - 5:c + 6] = 255
    cam = Engine(bundle, "cpu").analyze([ImageInput("s.png", pixels, path_part="HAND")]
                                        ).images[0].cam
    assert cam.shape == shape
    hot = np.argwhere(cam > 0.5)
    centre = hot.mean(axis=0)
    assert abs(centre[0] - r) <= 2 and abs(centre[1] - c) <= 2
    assert cam[pixels == 0].mean() < 0.1


def test_one_cam_runner_per_model_reused(bundles):
    # Created once, hooks registered once, whatever the number of studies.
    engine = Engine(bundles["random"], "cpu")
    images = [ImageInput("a.png", image(60), path_part="HAND")]
    engine.analyze(images)
    layer = get_layer(engine.model("mura"), "layer4")
    hooks = len(layer._forward_hooks)
    assert len(engine._runners) == 1
    (runner,) = engine._runners.values()
    engine.analyze(images)
    engine.analyze(images)
    assert list(engine._runners.values()) == [runner]
    assert len(layer._forward_hooks) == hooks
    assert not engine.model("mura").training
    engine.close()
    assert len(layer._forward_hooks) == 0


def test_cam_runner_restores_mode_and_surfaces_index_error():
    # pytorch-grad-cam's __exit__ would swallow IndexError; the runner never does.
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(2, 1))
    model.train()
    runner = CamRunner(model, "0")
    assert model.training  # GradCAM's constructor put it in eval; restored
    logits, cams = runner(torch.randn(2, 3, 16, 16))
    assert logits.shape == (2, 1) and cams.shape == (2, 16, 16) and model.training

    def boom(module, args):
        raise IndexError("index 7 is out of bounds")

    handle = model[4].register_forward_pre_hook(boom)
    with pytest.raises(IndexError, match="index 7"):
        runner(torch.randn(1, 3, 16, 16))
    handle.remove()
    assert model.training
    runner.close()


def test_cam_layer_not_reached_is_named():
    # A target layer outside the forward path: say so, instead of a NoneType error.
    class Skips(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.used = nn.Conv2d(3, 2, 3)
            self.unused = nn.Conv2d(2, 2, 1)
            self.fc = nn.Linear(2, 1)

        def forward(self, x):
            return self.fc(self.used(x).mean((2, 3)))

    with pytest.raises(InferenceError, match="'unused' was not used"):
        CamRunner(Skips().eval(), "unused")(torch.randn(1, 3, 8, 8))


# ------------------------------------------------------------------ failures, control


@pytest.mark.parametrize("error", [RuntimeError("boom in a layer"), IndexError("boom index")])
@pytest.mark.parametrize("cams", [True, False])
def test_a_failing_model_raises_inference_error(bundles, error, cams):
    # One clear exception naming the model and images, the original chained.
    engine = Engine(bundles["random"], "cpu")

    def fail(module, args):
        raise error

    engine.model("mura").layer3.register_forward_pre_hook(fail)
    with pytest.raises(InferenceError) as info:
        engine.analyze([ImageInput("/data/a.png", image(70), path_part="HAND")], cams=cams)
    text = str(info.value)
    assert "model 'mura' (resnet18) failed on a.png" in text and "boom" in text
    assert info.value.__cause__ is error


def test_cancellation_between_steps(bundles):
    engine = Engine(bundles["random"], "cpu")
    images = [ImageInput(f"{i}.png", image(80 + i), path_part="HAND") for i in range(3)]
    seen = []

    def progress(done, total, message):
        seen.append((done, total, message))

    with pytest.raises(Cancelled):
        engine.analyze(images, progress=progress, cancelled=lambda: len(seen) >= 2)
    assert len(seen) == 2  # stopped before the third step
    # Cancelled before anything: nothing runs at all.
    with pytest.raises(Cancelled):
        engine.analyze(images, cancelled=lambda: True)
    # The engine is still usable afterwards.
    seen.clear()
    result = engine.analyze(images, progress=progress)
    assert result.supported
    done = [d for d, _, _ in seen]
    assert done == sorted(done) and seen[-1] == (seen[-1][1], seen[-1][1], "done")


def test_models_load_lazily_and_once(bundles, monkeypatch):
    calls = []
    real = Bundle.load_model

    def counting(self, spec, device="cpu"):
        calls.append(spec.weights)
        return real(self, spec, device)

    monkeypatch.setattr(Bundle, "load_model", counting)
    engine = Engine(bundles["random"], "cpu")
    assert calls == [] and engine.loaded == []  # nothing at start-up
    images = [ImageInput("a.png", image(90), path_part="HAND")]
    engine.analyze(images)
    engine.analyze(images)
    assert calls == ["router.safetensors", "mura.safetensors"]  # each loaded once
    engine.analyze([ImageInput("b.png", image(91))])
    assert calls == ["router.safetensors", "mura.safetensors"]


def test_engine_never_unpickles(bundles, monkeypatch):
    # Weights come from safetensors only.
    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    engine = Engine(Bundle.load(bundles["random"].path), "cpu")
    assert engine.analyze([ImageInput("a.png", image(92))]).supported


def test_tampered_weights_are_refused_when_loaded(bundles, tmp_path):
    # Validated at start-up, changed before first use: the lazy load refuses it.
    path = shutil.copytree(bundles["random"].path, tmp_path / "b")
    engine = Engine(Bundle.load(path), "cpu")
    with open(path / "mura.safetensors", "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        engine.analyze([ImageInput("a.png", image(93), path_part="HAND")])


def test_empty_study_and_bad_pixels(engine):
    result = engine.analyze([])
    assert not result.supported and result.reason == "no images to analyze"
    with pytest.raises(ValueError, match="2-D uint8"):
        engine.analyze([ImageInput("a.dcm", np.zeros((8, 8), np.uint16))])


def test_threads_leave_a_core_to_the_gui(engine):
    assert engine.threads == max(1, (os.cpu_count() or 2) - 1) == torch.get_num_threads()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_without_cuda_is_a_clear_error(bundles):
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(InferenceError, match="no CUDA device is available"):
        Engine(bundles["random"], "cuda")


def test_entries_sharing_a_weights_file_share_one_network(tmp_path):
    # Per-part thresholds are separate manifest entries over the same weights file: the
    # engine must load that network once, not once per body part.
    import json

    from bundle_factory import make_bundle

    from inference.bundle import Bundle, write_bundle

    b = make_bundle(tmp_path / "src", arch="resnet18", input_size=32)
    raw = json.loads((b.path / "manifest.json").read_text())
    (name, entry), = raw["abnormality_models"].items()
    raw["abnormality_models"] = {"a": dict(entry, threshold=0.3),
                                 "b": dict(entry, threshold=0.7)}
    raw["routing"] = {"HAND": "a", "WRIST": "b"}
    from safetensors.torch import load_file

    state = load_file(str(b.path / entry["weights"]))
    states = {entry["weights"]: state}
    if raw.get("router"):
        states[raw["router"]["weights"]] = load_file(str(b.path / raw["router"]["weights"]))
    write_bundle(tmp_path / "shared", raw, states)
    engine = Engine(Bundle.load(tmp_path / "shared"), device="cpu")
    assert engine.model("a") is engine.model("b")


@pytest.mark.parametrize("bias,part", [
    # No bias: the network's own vote, HAND 0.55 over WRIST 0.45.
    (None, "HAND"),
    # The fitted prior correction lifts WRIST by e^0.5 (0.45·1.65 > 0.55): WRIST wins.
    ({"WRIST": 0.5}, "WRIST"),
    # A shift of HAND down does the same from the other side.
    ({"HAND": -0.5}, "WRIST"),
    # A shift too small to change the order changes nothing.
    ({"WRIST": 0.1}, "HAND"),
])
def test_router_class_bias_is_added_before_the_softmax(tmp_path, bias, part):
    def change(m):
        if bias is not None:
            m["router"]["class_bias"] = bias

    b = make_bundle(tmp_path / "b", model_edit=constant_logit(0.0),
                    router_edit=router_probs(HAND=0.55, WRIST=0.45))
    rewrite_manifest(b.path, change)
    result = Engine(Bundle.load(b.path), "cpu").analyze([ImageInput("x.png", image(72))],
                                                        cams=False)
    assert result.body_part == part and result.body_part_source == "router"


@pytest.mark.parametrize("bias,problem", [
    # A class the router does not have: a typo must not be ignored silently.
    ({"WRISTS": 1.0}, "router.class_bias"),
    # Not a number.
    ({"WRIST": "1"}, "router.class_bias.WRIST"),
    # A shift so large it would overrule the network whatever it sees.
    ({"WRIST": 50.0}, "router.class_bias.WRIST"),
    # A list instead of an object keyed by class.
    ([0.0, 1.0], "router.class_bias"),
])
def test_a_bad_class_bias_is_refused_with_its_path(tmp_path, bias, problem):
    b = make_bundle(tmp_path / "b")
    rewrite_manifest(b.path, lambda m: m["router"].__setitem__("class_bias", bias))
    with pytest.raises(BundleError) as err:
        Bundle.load(b.path)
    assert problem in str(err.value)
