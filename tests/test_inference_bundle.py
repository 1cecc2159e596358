"""Model bundles: strict manifest validation, safetensors only, sha256, discovery, writing.

Bundles are written here with random weights (tests/bundle_factory.py); each refusal case
is a row that breaks one thing and names the words the user must see.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch
from bundle_factory import make_bundle, manifest_dict, random_state, rewrite_manifest

import inference.bundle as bundle_mod
from inference.bundle import (
    SCHEMA,
    Bundle,
    default_bundle,
    discover_bundles,
    load_manifest,
    sha256_file,
    write_bundle,
)
from inference.errors import BundleError, InferenceError, NoBundleError


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Bundle:
    # MobileNetV3 keeps the weights small (17 MB per file) for the many copies below.
    return make_bundle(tmp_path_factory.mktemp("bundles") / "good", arch="mobilenet_v3_large")


def clone(bundle: Bundle, dest: Path) -> Path:
    """A copy of ``bundle`` whose weights are hard links (cheap), manifest a real copy."""
    dest.mkdir()
    for item in bundle.path.iterdir():
        if item.suffix == ".safetensors":
            try:
                os.link(item, dest / item.name)
            except OSError:
                shutil.copy2(item, dest / item.name)
        else:
            shutil.copy2(item, dest / item.name)
    return dest


def test_written_bundle_loads_and_fills_sha256(good):
    # write_bundle fills the sha256 of every file and the result validates.
    m = load_manifest(good.path)
    assert m.schema == SCHEMA and m.name == "test-bundle"
    assert m.router is not None and m.router.class_names[-1] == "OTHER"
    model = m.abnormality_models["mura"]
    assert model.sha256 == sha256_file(good.path / "mura.safetensors")
    assert model.negative_label == "normal"  # default for positive "abnormal"
    assert m.parts == ("ELBOW", "FINGER", "FOREARM", "HAND", "HUMERUS", "SHOULDER", "WRIST")
    assert not list(good.path.parent.glob(".good.partial-*"))  # temp folder gone


def _set(path: str, value):
    def change(data):
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return change


def _delete(path: str):
    def change(data):
        node = data
        keys = path.split(".")
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]
    return change


M = "abnormality_models.mura"

# (case, manifest change, words the message must contain)
REFUSED_MANIFESTS = [
    # A newer schema must not be half-understood.
    ("schema version", _set("schema", "radview-bundle/2"), "unsupported schema"),
    # Every bundle states its license.
    ("missing license", _delete("license"), "license: missing"),
    # A typo must not silently drop a setting.
    ("unknown key", _set("treshold", 0.4), "treshold: unknown key"),
    ("unknown model key", _set(f"{M}.treshold", 0.4), "mura.treshold: unknown key"),
    # Probabilities live in [0, 1].
    ("threshold out of range", _set(f"{M}.threshold", 1.5),
     "mura.threshold: must be a number in [0, 1]"),
    # Temperature divides the logit.
    ("zero temperature", _set(f"{M}.temperature", 0), "temperature: must be a number in (0"),
    ("boolean threshold", _set(f"{M}.threshold", True), "threshold: must be a number"),
    ("two channels", _set(f"{M}.channels", 2), "mura.channels: must be 1 or 3"),
    ("unknown resize", _set(f"{M}.resize", "crop"), "resize: must be one of stretch"),
    ("zero std", _set(f"{M}.normalization.std", [0.2, 0.0, 0.2]), "normalization.std"),
    ("two means for three channels", _set(f"{M}.normalization.mean", [0.1, 0.2]),
     "normalization.mean"),
    ("input size too small", _set(f"{M}.input_size", 4), "input_size"),
    # The registry refuses what it does not know, and says what it knows.
    ("unknown architecture", _set(f"{M}.architecture", "vgg16"),
     "unknown architecture 'vgg16' (known: densenet121"),
    # Routing to a model that is not defined.
    ("undefined model", _set("routing.WRIST", "wrist-v2"),
     "routing.WRIST: routes to undefined model 'wrist-v2'"),
    # THUMB means FINGER: two entries for one part must agree.
    ("conflicting synonyms", lambda d: (d["abnormality_models"].update(
        other=dict(d["abnormality_models"]["mura"])), d["routing"].update(THUMB="other")),
     "'THUMB' means FINGER, already routed"),
    ("duplicate router classes", _set("router.class_names", ["HAND", "hand", "OTHER"]),
     "router.class_names"),
    ("router threshold", _set("router.confidence_threshold", -0.1),
     "router.confidence_threshold"),
    # A weights file must stay inside the bundle.
    ("weights outside", _set(f"{M}.weights", "../elsewhere.safetensors"),
     "must be a file inside the bundle"),
    ("absolute weights", _set(f"{M}.weights", "/etc/passwd.safetensors"),
     "must be a file inside the bundle"),
    # Pickle checkpoints are refused by name, before any file is opened.
    ("pt weights", _set(f"{M}.weights", "mura.pt"), "pickle-based PyTorch checkpoint"),
    ("ckpt weights", _set(f"{M}.weights", "mura.ckpt"), "never unpickles"),
    ("npz weights", _set(f"{M}.weights", "mura.npz"), "must be a .safetensors file"),
    ("bad sha format", _set(f"{M}.sha256", "abc"), "sha256: must be 64 hexadecimal"),
    ("no models", _set("abnormality_models", {}), "abnormality_models: must be a non-empty"),
    ("init weights", _set("init", {"weights": "random"}), "init.weights: must be one of"),
    # The file's digest no longer matches: changed or corrupted.
    ("sha256 mismatch", _set(f"{M}.sha256", "0" * 64), "sha256 mismatch"),
    # A missing file is named.
    ("missing file", lambda d: (d["abnormality_models"]["mura"].update(
        weights="gone.safetensors")), "gone.safetensors: missing"),
    # Grad-CAM must be able to find its layer.
    ("cam layer missing", _set(f"{M}.cam_target_layer", "features.99"),
     "cam_target_layer: layer 'features.99' not found"),
    # The tensors must fit the architecture (same file, other network).
    ("weights do not fit", _set(f"{M}.architecture", "efficientnet_lite0"),
     "tensors of efficientnet_lite0 missing"),
    # A 1-channel model needs a 1-channel stem.
    ("channels do not fit", lambda d: d["abnormality_models"]["mura"].update(
        channels=1, normalization={"mean": [0.5], "std": [0.25]}), "has shape"),
]


@pytest.mark.parametrize("case,change,words", REFUSED_MANIFESTS,
                         ids=[row[0] for row in REFUSED_MANIFESTS])
def test_refused_manifests(good, tmp_path, case, change, words):
    path = clone(good, tmp_path / "b")
    rewrite_manifest(path, change)
    with pytest.raises(BundleError) as info:
        load_manifest(path)
    assert words in str(info.value)
    assert str(path) in str(info.value)  # which bundle
    assert isinstance(info.value, InferenceError)  # the viewer catches one type


@pytest.mark.parametrize("content,words", [
    # Not JSON at all.
    ("{not json", "not valid JSON"),
    # JSON, but not an object.
    ("[1, 2]", "must be an object"),
])
def test_manifest_not_an_object(tmp_path, content, words):
    (tmp_path / "manifest.json").write_text(content, encoding="utf-8")
    with pytest.raises(BundleError, match=words):
        load_manifest(tmp_path)


def test_no_manifest_and_no_folder(tmp_path):
    # Both name what is missing.
    with pytest.raises(BundleError, match="no manifest.json"):
        load_manifest(tmp_path)
    with pytest.raises(BundleError, match="no such folder"):
        load_manifest(tmp_path / "nope")


def test_several_problems_are_listed_together(good, tmp_path):
    # One message with every problem, so the author fixes them in one go.
    path = clone(good, tmp_path / "b")
    rewrite_manifest(path, lambda d: (_set(f"{M}.threshold", 2)(d),
                                      _set("router.channels", 5)(d)))
    with pytest.raises(BundleError) as info:
        load_manifest(path)
    assert len(info.value.problems) == 2
    assert "2 problems" in str(info.value)


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything tries to unpickle."""
    def forbidden(*args, **kwargs):
        pytest.fail("an unpickler was called")

    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", forbidden)
    monkeypatch.setattr(torch, "load", forbidden)


@pytest.mark.parametrize("kind,words", [
    # torch.save's zip format, renamed to .safetensors to slip past the name check.
    ("torch.save", "zip archive"),
    # A raw pickle (protocol 4) renamed .safetensors.
    ("pickle", "Python pickle"),
    # Random bytes.
    ("garbage", "not a safetensors file"),
])
def test_pickle_disguised_as_safetensors_is_refused_unopened(good, tmp_path, no_unpickling,
                                                              kind, words):
    path = clone(good, tmp_path / "b")
    target = path / "mura.safetensors"
    target.unlink()
    state = {"w": torch.zeros(3)}
    if kind == "torch.save":
        torch.save(state, target)
    elif kind == "pickle":
        target.write_bytes(pickle.dumps(state, protocol=4))
    else:
        target.write_bytes(os.urandom(4096))
    digest = sha256_file(target)  # the manifest matches: only the format is wrong
    rewrite_manifest(path, _set(f"{M}.sha256", digest))
    with pytest.raises(BundleError) as info:
        load_manifest(path)
    assert words in str(info.value) and "never unpickles" in str(info.value)
    # And reading the weights directly (bypassing validation) refuses them too.
    bundle = Bundle(path, load_manifest(good.path))
    with pytest.raises(BundleError, match=words):
        bundle.state_dict("mura.safetensors", digest)


def test_tampered_after_validation_is_refused_at_load(good, tmp_path):
    # Validation passed, then a byte changed: the engine's lazy load must refuse it.
    path = clone(good, tmp_path / "b")
    bundle = Bundle.load(path)
    target = path / "mura.safetensors"
    data = bytearray(target.read_bytes())
    target.unlink()  # break the hard link: never touch the shared fixture
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="sha256 mismatch"):
        bundle.load_model(bundle.manifest.abnormality_models["mura"])


def test_fp16_weights_are_half_the_size_and_load_as_float32(tmp_path):
    # fp16 storage halves the files; the engine still computes in float32.
    full = make_bundle(tmp_path / "fp32", arch="efficientnet_lite0", router_classes=None)
    half = make_bundle(tmp_path / "fp16", arch="efficientnet_lite0", router_classes=None,
                       fp16=True)
    size32 = (full.path / "mura.safetensors").stat().st_size
    size16 = (half.path / "mura.safetensors").stat().st_size
    assert size16 < 0.55 * size32
    spec = half.manifest.abnormality_models["mura"]
    state = half.state_dict(spec.weights, spec.sha256)
    floats = [t for t in state.values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float32 for t in floats)
    model16 = half.load_model(spec)
    model32 = full.load_model(full.manifest.abnormality_models["mura"])
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model16(x), model32(x), atol=2e-2)


def test_write_bundle_refuses_existing_folder_and_bad_manifest(good, tmp_path):
    # Never overwrite by accident; a failed write leaves nothing behind.
    with pytest.raises(BundleError, match="already exists"):
        write_bundle(good.path, manifest_dict(), {})
    data = manifest_dict(arch="resnet18", router_classes=None)
    data["abnormality_models"]["mura"]["threshold"] = 3.0
    states = {"mura.safetensors": random_state("resnet18", 1)}
    with pytest.raises(BundleError, match="threshold"):
        write_bundle(tmp_path / "bad", data, states)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BundleError, match="no state dict"):
        write_bundle(tmp_path / "bad", data, {})


def test_write_bundle_overwrite_replaces_atomically(tmp_path):
    # overwrite=True swaps the folder in one rename; the old one is gone afterwards.
    first = make_bundle(tmp_path / "b", arch="resnet18", router_classes=None, version="1")
    data = manifest_dict(arch="resnet18", router_classes=None, version="2")
    second = write_bundle(first.path, data, {"mura.safetensors": random_state("resnet18", 1)},
                          overwrite=True)
    assert second.manifest.version == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


# ----------------------------------------------------------------------- discovery


@pytest.fixture
def search_dirs(tmp_path, monkeypatch):
    data = tmp_path / "data"
    shipped = tmp_path / "shipped"
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(data))
    monkeypatch.setattr(bundle_mod, "shipped_models_dir", lambda: shipped)
    return data / "models", shipped


def test_discovery_order_and_errors(good, tmp_path, search_dirs):
    # Explicit folders first, then the user's, then the shipped ones; broken ones listed
    # with the reason instead of hidden.
    user, shipped = search_dirs
    user.mkdir(parents=True)
    shipped.mkdir()
    clone(good, user / "b-good")
    broken = clone(good, user / "a-broken")
    rewrite_manifest(broken, _set("schema", "other/9"))
    clone(good, shipped / "shipped")
    extra = clone(good, tmp_path / "mine")  # a bundle folder given directly
    found = discover_bundles([extra])
    assert [b.path for b in found] == [extra, broken, user / "b-good", shipped / "shipped"]
    assert [b.ok for b in found] == [True, False, True, True]
    assert "unsupported schema" in found[1].error and found[1].name == "test-bundle"
    assert default_bundle([extra]).path == extra
    assert default_bundle().path == user / "b-good"  # the broken one is skipped


def test_no_bundle_lists_where_it_looked(search_dirs):
    user, shipped = search_dirs
    with pytest.raises(NoBundleError) as info:
        default_bundle()
    text = str(info.value)
    assert "no model bundle found; pass --bundle DIR" in text
    assert str(user) in text and str(shipped) in text


def test_user_dir_override_and_frozen_shipped_dir(tmp_path, monkeypatch):
    # RADVIEW_DATA_DIR replaces the platform data folder (tests never touch the real one);
    # a frozen build finds its resources under sys._MEIPASS.
    monkeypatch.setenv("RADVIEW_DATA_DIR", str(tmp_path))
    assert bundle_mod.user_models_dir() == tmp_path / "models"
    monkeypatch.setenv("RADVIEW_SHIPPED_MODELS_DIR", str(tmp_path / "elsewhere"))
    assert bundle_mod.shipped_models_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv("RADVIEW_SHIPPED_MODELS_DIR")
    repo = Path(bundle_mod.__file__).resolve().parent.parent
    assert bundle_mod.shipped_models_dir() == repo / "resources" / "models"
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path / "frozen"), raising=False)
    assert bundle_mod.shipped_models_dir() == tmp_path / "frozen" / "resources" / "models"


def test_manifest_on_disk_is_plain_json(good):
    # The manifest is meant to be read by people: indented JSON with the schema first.
    text = (good.path / "manifest.json").read_text(encoding="utf-8")
    assert text.startswith('{\n  "schema": "radview-bundle/1"')
    assert json.loads(text)["abnormality_models"]["mura"]["sha256"] == sha256_file(
        good.path / "mura.safetensors")


def test_failed_swap_restores_the_old_bundle(tmp_path, monkeypatch):
    # The second rename (new folder into place) fails, e.g. a full disk or a permission
    # change: the old bundle was left hidden under .NAME.old-… and NAME was gone. It is
    # renamed back, and nothing else is left in the folder.
    from inference import bundle as bundle_module

    target = tmp_path / "models" / "mybundle"
    target.mkdir(parents=True)
    (target / "manifest.json").write_text("old")
    staged = tmp_path / "models" / ".mybundle.partial"
    staged.mkdir()
    (staged / "manifest.json").write_text("new")
    real_replace = os.replace
    calls = []

    def replace(src, dst):
        calls.append((Path(src).name, Path(dst).name))
        if Path(src) == staged:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(bundle_module.os, "replace", replace)
    with pytest.raises(OSError, match="No space left"):
        bundle_module.replace_folder(staged, target)
    assert (target / "manifest.json").read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == [".mybundle.partial",
                                                              "mybundle"]
    assert len(calls) == 3  # aside, the failed move, and back
