"""Tiny model bundles with random weights, written inside the tests (nothing shipped).

:func:`make_bundle` writes a complete bundle with :func:`inference.bundle.write_bundle`
(the same code training uses): a router over the MURA parts plus ``OTHER`` and one
abnormality model routed from every covered part. Defaults keep models small and fast
(ResNet-18 at 64 × 64 px, seeded); each keyword changes one aspect so that a test says
exactly what it is about.

>>> bundle = make_bundle(tmp_path / "b", arch="efficientnet_lite0", resize="letterbox")
>>> manifest = manifest_dict(arch="resnet18")      # the dict, to break on purpose
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from inference.bodyparts import MURA_PARTS
from inference.bundle import MANIFEST, Bundle, write_bundle
from inference.models import ARCHITECTURES, build_model

ROUTER_CLASSES = (*MURA_PARTS, "OTHER")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def manifest_dict(
    *,
    arch: str = "resnet18",
    input_size: int | list[int] = 64,
    parts: Sequence[str] = MURA_PARTS,
    router_classes: Sequence[str] | None = ROUTER_CLASSES,
    router_arch: str | None = None,
    router_threshold: float = 0.5,
    threshold: float = 0.5,
    temperature: float = 1.0,
    resize: str = "stretch",
    channels: int = 3,
    cam_layer: str | None = None,
    positive_label: str = "abnormal",
    model_name: str = "mura",
    name: str = "test-bundle",
    version: str = "0.0.1",
) -> dict[str, Any]:
    """A valid manifest dict (sha256 left empty: :func:`write_bundle` fills it in)."""
    mean = IMAGENET_MEAN if channels == 3 else [0.5]
    std = IMAGENET_STD if channels == 3 else [0.25]
    model = {
        "architecture": arch, "input_size": input_size,
        "normalization": {"mean": mean, "std": std}, "channels": channels,
        "resize": resize, "weights": f"{model_name}.safetensors", "sha256": "0" * 64,
        "threshold": threshold, "temperature": temperature,
        "cam_target_layer": cam_layer or ARCHITECTURES[arch].cam_layer,
        "positive_label": positive_label, "description": "random weights (tests)",
    }
    data: dict[str, Any] = {
        "schema": "radview-bundle/1", "name": name, "version": version,
        "intended_use": "Tests only. Random weights; not for diagnosis.",
        "license": "Apache-2.0",
        "training_data": {"description": "none (random weights)", "citation": ""},
        "metrics": {},
        "abnormality_models": {model_name: model},
        "routing": {part: model_name for part in parts},
    }
    if router_classes is not None:
        data["router"] = {
            "architecture": router_arch or arch, "input_size": input_size,
            "normalization": {"mean": mean, "std": std}, "channels": channels,
            "resize": "stretch", "class_names": list(router_classes),
            "weights": "router.safetensors", "sha256": "0" * 64,
            "confidence_threshold": router_threshold,
        }
    return data


def random_state(arch: str, num_classes: int, *, channels: int = 3, seed: int = 0,
                 edit: Callable[[torch.nn.Module], None] | None = None) -> dict[str, Any]:
    """State dict of ``arch`` with seeded random weights; ``edit(model)`` may change it."""
    torch.manual_seed(seed)
    model = build_model(arch, num_classes, in_channels=channels).eval()
    if edit is not None:
        with torch.no_grad():
            edit(model)
    return model.state_dict()


def make_bundle(
    directory: str | Path,
    *,
    seed: int = 0,
    fp16: bool = False,
    model_edit: Callable[[torch.nn.Module], None] | None = None,
    router_edit: Callable[[torch.nn.Module], None] | None = None,
    extra: Mapping[str, Any] | None = None,
    **manifest_kwargs: Any,
) -> Bundle:
    """Write a bundle with random weights and return it (see :func:`manifest_dict` for the
    manifest keywords; ``extra`` updates the manifest's top level)."""
    data = manifest_dict(**manifest_kwargs)
    if extra:
        data.update(copy.deepcopy(dict(extra)))
    states = {}
    for model_name, spec in data["abnormality_models"].items():
        states[spec["weights"]] = random_state(spec["architecture"], 1,
                                               channels=spec["channels"], seed=seed,
                                               edit=model_edit)
        del model_name
    if data.get("router"):
        r = data["router"]
        states[r["weights"]] = random_state(r["architecture"], len(r["class_names"]),
                                            channels=r["channels"], seed=seed + 1,
                                            edit=router_edit)
    return write_bundle(directory, data, states, fp16=fp16)


def rewrite_manifest(bundle_dir: str | Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Load ``manifest.json``, let ``change`` edit the dict, write it back."""
    path = Path(bundle_dir) / MANIFEST
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
