"""Model bundles: a folder with ``manifest.json`` and safetensors weights ("models as data").

A bundle carries everything needed to run and to judge its models: architecture, input
spec, labels, thresholds, temperature, Grad-CAM target layer, sha256 of every weights
file, license, training data and intended use. Nothing about a model is hard-coded in
radview.

Layout
------
::

    my-bundle/
        manifest.json
        router.safetensors
        mura.safetensors

Manifest (schema ``radview-bundle/1``)
--------------------------------------
::

    {
      "schema": "radview-bundle/1",
      "name": "mura-densenet169", "version": "1.0.0",
      "intended_use": "Research use only. Not for diagnosis.",
      "license": "CC-BY-NC-4.0",
      "training_data": {"description": "MURA v1.1 train split", "citation": "Rajpurkar …"},
      "metrics": {"valid_auc": 0.93},                      # optional, free
      "init": {"weights": "imagenet", "license": "…"},     # optional: how training began
      "router": {                                          # optional (null: no router)
        "architecture": "mobilenet_v3_large",
        "input_size": 224,                                 # or [height, width]
        "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "channels": 3, "resize": "stretch",                # or "letterbox"
        "class_names": ["ELBOW", "FINGER", …, "OTHER"],
        "weights": "router.safetensors", "sha256": "…64 hex…",
        "confidence_threshold": 0.6,                       # a part needs this much
        "other_threshold": 0.8,                            # optional: OTHER needs this much
        "class_bias": {"WRIST": 1.1, "HAND": -0.4}         # optional: added to the logits
      },                                                   # before the softmax
      "fallback_model": "mura",                            # optional: an upper-limb study
                                                           # whose part is uncertain
      "abnormality_models": {
        "mura": {
          "architecture": "densenet169", "input_size": 320,
          "normalization": {…}, "channels": 3, "resize": "letterbox",
          "weights": "mura.safetensors", "sha256": "…",
          "threshold": 0.5,              # probability; score >= threshold → positive
          "temperature": 1.0,            # p = sigmoid(logit / temperature)
          "cam_target_layer": "features.denseblock4",
          "positive_label": "abnormal",
          "negative_label": "normal",    # optional; default "normal" for "abnormal",
                                         # else "no <positive_label>"
          "description": "…",            # optional
          "doubt_threshold": 0.2,        # optional (≤ threshold): a study or view at or
                                         # above it and below threshold is DOUBT
          "aggregation": "max",          # optional: "mean" | "max" | "noisy_or"
                                         # (default: the bundle's, else "mean")
          "cam_method": "layercam",      # optional: "gradcam" (default) | "layercam"
          "box_head": {                  # optional: a dense fracture-heatmap head
            "kind": "dense_heatmap", "layer": "features.3", "channels": 40,
            "hidden": 64, "weights": "mura-boxes.safetensors", "sha256": "…",
            "threshold": 0.5,            # a box's peak heat → "fracture"
            "doubt_threshold": 0.3,      # a box's peak heat → "doubt" (boxes start here)
            "score_weight": 0.9,         # optional (≥ 0, default 0): the model's logit is
            "score_offset": -0.4         # the classifier's + weight × the view's largest
                                         # heat logit + offset (default 0)
          }
        }
      },
      "aggregation": "mean",                               # optional: the default study
                                                           # score (see inference.aggregate)
      "routing": {"ELBOW": "mura", "FINGER": "mura", …}   # body part → model
    }

Abnormality models are binary with one output logit. Routing keys are body parts,
normalized with :func:`inference.bodyparts.normalize_body_part` (``THUMB`` → ``FINGER``).

Validation (:func:`load_manifest`)
----------------------------------
Strict: unknown keys, missing keys, wrong types or ranges, a schema other than
:data:`SCHEMA`, an unknown architecture, a routing entry naming an undefined model, a
weights file that is missing, outside the bundle, not ``.safetensors``, not a safetensors
file (e.g. a pickle), whose sha256 differs from the manifest, whose tensors do not fit
the architecture, or a Grad-CAM layer the architecture lacks: each refuses the bundle with
a :class:`~inference.errors.BundleError` naming the file and field. Pickle-based formats
(``.pt``, ``.pth``, ``.bin``, ``.ckpt``, ``.pkl``) are refused by name and by content
(a zip or pickle signature) and are never opened with an unpickler.

Weights are read with :mod:`safetensors` only, from the same bytes whose sha256 was just
checked (:meth:`Bundle.state_dict`), so a file changed after validation cannot slip in.
fp16-stored weights are cast to float32 on load.

Where bundles are found (:func:`discover_bundles`, in this order)
-----------------------------------------------------------------
1. folders passed explicitly (``extra``, e.g. ``radview predict --bundle``);
2. the user data folder ``<user data dir>/models`` (``platformdirs.user_data_dir
   ("radview")``; the environment variable ``RADVIEW_DATA_DIR`` replaces the data dir,
   for tests);
3. the shipped ``resources/models`` (next to the packages in a source checkout,
   ``sys._MEIPASS/resources/models`` in a frozen build).

Each folder may be a bundle itself or hold bundles one level down; a bundle the user
named or installed wins over the shipped one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import secrets
import shutil
import struct
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from inference.aggregate import AGGREGATIONS
from inference.bodyparts import normalize_body_part
from inference.errors import BundleError, NoBundleError, UnknownArchitectureError
from inference.preprocess import RESIZE_MODES, InputSpec

log = logging.getLogger(__name__)

#: Manifest schema this version of radview reads.
SCHEMA = "radview-bundle/1"
MANIFEST = "manifest.json"

#: Suffixes of pickle-based checkpoints, refused by name.
PICKLE_SUFFIXES = frozenset({".pt", ".pth", ".bin", ".ckpt", ".pkl", ".pickle", ".tar"})

#: Largest safetensors JSON header accepted (the format's own limit is 100 MB).
MAX_HEADER_BYTES = 100_000_000
#: Largest model input side accepted, pixels.
MAX_INPUT_SIDE = 4096

_TOP_REQUIRED = {"schema", "name", "version", "intended_use", "license", "training_data",
                 "abnormality_models", "routing"}
_TOP_OPTIONAL = {"metrics", "router", "init", "description", "fallback_model",
                 "aggregation"}
_INPUT_KEYS = {"architecture", "input_size", "normalization", "channels", "resize",
               "weights", "sha256"}
_ROUTER_REQUIRED = _INPUT_KEYS | {"class_names", "confidence_threshold"}
_ROUTER_OPTIONAL = {"other_threshold", "class_bias"}
#: Largest |class bias| a manifest may give a router class (a log-odds shift; e^8 ≈ 3000).
MAX_CLASS_BIAS = 8.0
_MODEL_REQUIRED = _INPUT_KEYS | {"threshold", "temperature", "cam_target_layer",
                                 "positive_label"}
_MODEL_OPTIONAL = {"negative_label", "description", "doubt_threshold", "aggregation",
                   "cam_method", "box_head"}
_BOX_REQUIRED = {"kind", "layer", "channels", "hidden", "weights", "sha256", "threshold",
                 "doubt_threshold"}
_BOX_OPTIONAL = {"score_weight", "score_offset"}
#: Largest ``score_weight`` / |``score_offset``| a box head may declare (log-odds units).
MAX_SCORE_TERM = 20.0
#: Grad-CAM flavours a manifest may name (pytorch-grad-cam's GradCAM, LayerCAM).
CAM_METHODS = ("gradcam", "layercam")
_INIT_WEIGHTS = ("imagenet", "scratch")


# ------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class TrainingData:
    """Where a bundle's training data came from."""

    description: str
    citation: str = ""


@dataclass(frozen=True)
class RouterSpec:
    """The body-part router: a classifier over :attr:`class_names` (softmax).

    A part needs a study-mean probability of :attr:`confidence_threshold` to be taken as
    sure; ``OTHER`` needs :attr:`other_threshold` (None: the same) to refuse a study (see
    :mod:`inference.routing`). :attr:`class_bias` (one number per class, in
    :attr:`class_names` order; None: none) is added to the logits before the softmax: a
    prior correction fitted after training, so that rare classes are not swallowed by
    their neighbours (``bench/router_stress.py --fit-bias``).
    """

    architecture: str
    input: InputSpec
    class_names: tuple[str, ...]
    weights: str
    sha256: str
    confidence_threshold: float
    other_threshold: float | None = None
    class_bias: tuple[float, ...] | None = None

    def adjust_logits(self, logits: Any) -> Any:
        """``logits`` (N, classes; a torch tensor or a numpy array) plus :attr:`class_bias`."""
        if not self.class_bias:
            return logits
        if hasattr(logits, "new_tensor"):  # torch
            return logits + logits.new_tensor(self.class_bias)
        import numpy as np

        return np.asarray(logits) + np.asarray(self.class_bias, dtype=np.float64)


@dataclass(frozen=True)
class BoxHeadSpec:
    """A dense heatmap head on one backbone layer (:mod:`inference.boxes`): its weights
    file, and the peak heat at which a box is ``"doubt"`` and ``"fracture"``."""

    kind: str
    layer: str
    channels: int
    hidden: int
    weights: str
    sha256: str
    threshold: float
    doubt_threshold: float
    #: The model's logit is the classifier's logit + ``score_weight`` × the largest heat
    #: logit of the view + ``score_offset`` (:func:`inference.boxes.attach_box_head`): the
    #: box head's peak votes in the probability. 0, 0: the classifier alone.
    score_weight: float = 0.0
    score_offset: float = 0.0


@dataclass(frozen=True)
class ModelSpec:
    """One binary abnormality model (one output logit).

    ``probability = sigmoid(logit / temperature)`` (the logit includes the box head's
    score terms when :attr:`box_head` has them); a study is :attr:`positive_label`
    when its score (mean probability) is ``>= threshold``.
    """

    name: str
    architecture: str
    input: InputSpec
    weights: str
    sha256: str
    threshold: float
    temperature: float
    cam_target_layer: str
    positive_label: str
    negative_label: str
    description: str = ""
    #: DOUBT band lower edge (≤ threshold); None: no doubt band (old bundles).
    doubt_threshold: float | None = None
    #: Study score (:mod:`inference.aggregate`); None: the bundle's.
    aggregation: str | None = None
    cam_method: str = "gradcam"
    box_head: BoxHeadSpec | None = None


@dataclass(frozen=True)
class Manifest:
    """A validated bundle manifest (see the module notes for the fields)."""

    schema: str
    name: str
    version: str
    intended_use: str
    license: str
    training_data: TrainingData
    abnormality_models: dict[str, ModelSpec]
    routing: dict[str, str]
    router: RouterSpec | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    init: dict[str, Any] | None = None
    description: str = ""
    fallback_model: str | None = None
    aggregation: str = "mean"

    def aggregation_of(self, spec: ModelSpec) -> str:
        """The study aggregation of ``spec``: its own, else the bundle's."""
        return spec.aggregation or self.aggregation

    @property
    def parts(self) -> tuple[str, ...]:
        """The body parts this bundle covers, sorted."""
        return tuple(sorted(self.routing))

    @property
    def weights_files(self) -> list[tuple[str, str]]:
        """``(file, sha256)`` of every weights file, router first, box heads last; each
        file once (per-part entries share their model's file)."""
        out = [(self.router.weights, self.router.sha256)] if self.router else []
        out += [(m.weights, m.sha256) for m in self.abnormality_models.values()]
        out += [(m.box_head.weights, m.box_head.sha256)
                for m in self.abnormality_models.values() if m.box_head is not None]
        return list(dict.fromkeys(out))


class _Problems:
    """Collects validation problems, each prefixed with the field path."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.items: list[str] = []

    def add(self, path: str, text: str) -> None:
        self.items.append(f"{self.where}: {path}: {text}" if path else f"{self.where}: {text}")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _obj(p: _Problems, path: str, value: Any, required: set[str],
         optional: set[str] = frozenset()) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        p.add(path, f"must be an object, got {_kind(value)}")
        return None
    for key in sorted(required - set(value)):
        p.add(f"{path}.{key}" if path else key, "missing")
    for key in sorted(set(value) - required - optional):
        allowed = ", ".join(sorted(required | optional))
        p.add(f"{path}.{key}" if path else key, f"unknown key (allowed: {allowed})")
    return value


def _text(p: _Problems, path: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        p.add(path, f"must be a {'' if empty else 'non-empty '}string, got {_kind(value)}"
              + (f" {value!r}" if isinstance(value, str) else ""))
        return ""
    return value


def _number(p: _Problems, path: str, value: Any, low: float, high: float, *,
            low_open: bool = False) -> float:
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
          and math.isfinite(value) and (value > low if low_open else value >= low)
          and value <= high)
    if not ok:
        bracket = "(" if low_open else "["
        upper = "∞)" if math.isinf(high) else f"{high:g}]"
        p.add(path, f"must be a number in {bracket}{low:g}, {upper}, got {value!r}")
        return float("nan")
    return float(value)


def _input_spec(p: _Problems, path: str, entry: dict[str, Any]) -> InputSpec | None:
    ok = True
    size = entry.get("input_size")
    if isinstance(size, int) and not isinstance(size, bool):
        size = [size, size]
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool)
                    and 8 <= v <= MAX_INPUT_SIDE for v in size)):
        p.add(f"{path}.input_size", f"must be an integer or [height, width] of integers in "
                                    f"[8, {MAX_INPUT_SIDE}], got {entry.get('input_size')!r}")
        ok = False
    channels = entry.get("channels")
    if channels not in (1, 3) or isinstance(channels, bool):
        p.add(f"{path}.channels", f"must be 1 or 3, got {channels!r}")
        ok = False
    resize = entry.get("resize")
    if resize not in RESIZE_MODES:
        p.add(f"{path}.resize", f"must be one of {', '.join(RESIZE_MODES)}, got {resize!r}")
        ok = False
    norm = _obj(p, f"{path}.normalization", entry.get("normalization"), {"mean", "std"})
    values: dict[str, tuple[float, ...]] = {}
    if norm is None:
        ok = False
    else:
        for key in ("mean", "std"):
            raw = norm.get(key)
            lengths = {1, channels} if channels in (1, 3) else {1, 3}
            good = (isinstance(raw, list) and len(raw) in lengths
                    and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                            and math.isfinite(v) for v in raw)
                    and (key == "mean" or all(v > 0 for v in raw)))
            if not good:
                what = "positive numbers" if key == "std" else "numbers"
                p.add(f"{path}.normalization.{key}",
                      f"must be a list of {' or '.join(map(str, sorted(lengths)))} {what} "
                      f"(for values scaled to 0–1), got {raw!r}")
                ok = False
            else:
                values[key] = tuple(float(v) for v in raw)
    if not ok:
        return None
    return InputSpec(size=(size[0], size[1]), channels=channels, mean=values["mean"],
                     std=values["std"], resize=resize)


def _architecture(p: _Problems, path: str, value: Any) -> str:
    from inference.models import architecture

    name = _text(p, path, value)
    if name:
        try:
            architecture(name)
        except UnknownArchitectureError as exc:
            p.add(path, str(exc))
            return ""
    return name


def _sha(p: _Problems, path: str, value: Any) -> str:
    if not (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value.lower())):
        p.add(path, f"must be 64 hexadecimal digits (SHA-256), got {value!r}")
        return ""
    return value.lower()


def _weights_name(p: _Problems, path: str, value: Any) -> str:
    name = _text(p, path, value)
    if not name:
        return ""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or ":" in name:
        p.add(path, f"must be a file inside the bundle (relative, no '..'), got {name!r}")
        return ""
    suffix = pure.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        p.add(path, f"{name!r} is a pickle-based PyTorch checkpoint ({suffix}); radview "
                    f"never unpickles weights: convert it to .safetensors "
                    f"(safetensors.torch.save_file)")
        return ""
    if suffix != ".safetensors":
        p.add(path, f"must be a .safetensors file, got {name!r}")
        return ""
    return name


def _box_head(p: _Problems, path: str, value: Any) -> BoxHeadSpec | None:
    from inference.boxes import BOX_KINDS

    b = _obj(p, path, value, _BOX_REQUIRED, _BOX_OPTIONAL)
    if b is None:
        return None
    before = len(p.items)
    kind = b.get("kind")
    if kind not in BOX_KINDS:
        p.add(f"{path}.kind", f"must be one of {', '.join(BOX_KINDS)}, got {kind!r}")
    layer = _text(p, f"{path}.layer", b.get("layer"))
    sizes = []
    for key in ("channels", "hidden"):
        v = b.get(key)
        if not (isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 8192):
            p.add(f"{path}.{key}", f"must be an integer in [1, 8192], got {v!r}")
            v = 0
        sizes.append(v)
    weights = _weights_name(p, f"{path}.weights", b.get("weights"))
    sha = _sha(p, f"{path}.sha256", b.get("sha256"))
    high = _number(p, f"{path}.threshold", b.get("threshold"), 0.0, 1.0)
    low = _number(p, f"{path}.doubt_threshold", b.get("doubt_threshold"), 0.0,
                  high if not math.isnan(high) else 1.0)
    weight = _number(p, f"{path}.score_weight", b.get("score_weight", 0.0), 0.0,
                     MAX_SCORE_TERM)
    offset = _number(p, f"{path}.score_offset", b.get("score_offset", 0.0), -MAX_SCORE_TERM,
                     MAX_SCORE_TERM)
    if len(p.items) != before:
        return None
    return BoxHeadSpec(kind, layer, sizes[0], sizes[1], weights, sha, high, low, weight,
                       offset)


def _parse(raw: Any, where: str) -> tuple[Manifest | None, list[str]]:
    p = _Problems(where)
    top = _obj(p, "", raw, _TOP_REQUIRED, _TOP_OPTIONAL)
    if top is None:
        return None, p.items
    schema = top.get("schema")
    if schema != SCHEMA:
        hint = ("this radview reads only " + SCHEMA) if isinstance(schema, str) else SCHEMA
        p.add("schema", f"unsupported schema {schema!r} ({hint})")
        return None, p.items
    name = _text(p, "name", top.get("name"))
    version = _text(p, "version", top.get("version"))
    intended = _text(p, "intended_use", top.get("intended_use"))
    license_ = _text(p, "license", top.get("license"))
    description = _text(p, "description", top.get("description", ""), empty=True)
    training = None
    td = _obj(p, "training_data", top.get("training_data"), {"description", "citation"})
    if td is not None:
        training = TrainingData(_text(p, "training_data.description", td.get("description")),
                                _text(p, "training_data.citation", td.get("citation"),
                                      empty=True))
    metrics = top.get("metrics", {})
    if not isinstance(metrics, dict):
        p.add("metrics", f"must be an object, got {_kind(metrics)}")
        metrics = {}
    init = top.get("init")
    if init is not None:
        init_obj = _obj(p, "init", init, {"weights"}, {"license", "source"})
        if init_obj is not None and init_obj.get("weights") not in _INIT_WEIGHTS:
            p.add("init.weights", f"must be one of {', '.join(_INIT_WEIGHTS)}, got "
                                  f"{init_obj.get('weights')!r}")

    router = None
    if top.get("router") is not None:
        r = _obj(p, "router", top["router"], _ROUTER_REQUIRED, _ROUTER_OPTIONAL)
        if r is not None:
            spec = _input_spec(p, "router", r)
            arch = _architecture(p, "router.architecture", r.get("architecture"))
            weights = _weights_name(p, "router.weights", r.get("weights"))
            sha = _sha(p, "router.sha256", r.get("sha256"))
            names = r.get("class_names")
            if not (isinstance(names, list) and len(names) >= 2
                    and all(isinstance(n, str) and n.strip() for n in names)
                    and len({n.strip().upper() for n in names}) == len(names)):
                p.add("router.class_names", f"must be a list of at least 2 distinct non-empty "
                                            f"strings, got {names!r}")
                names = None
            conf = _number(p, "router.confidence_threshold", r.get("confidence_threshold"),
                           0.0, 1.0)
            other = None
            if r.get("other_threshold") is not None:
                other = _number(p, "router.other_threshold", r.get("other_threshold"), 0.0,
                                1.0)
            bias, bias_ok = None, True
            raw_bias = r.get("class_bias")
            if raw_bias is not None and names:
                known = [n.strip().upper() for n in names]
                if not (isinstance(raw_bias, dict) and all(
                        isinstance(k, str) and k.strip().upper() in known
                        for k in raw_bias)):
                    p.add("router.class_bias", f"must be an object of router class → number "
                                               f"(classes: {', '.join(known)}), got "
                                               f"{raw_bias!r}")
                    bias_ok = False
                else:
                    by = {k.strip().upper(): _number(p, f"router.class_bias.{k}", v,
                                                     -MAX_CLASS_BIAS, MAX_CLASS_BIAS)
                          for k, v in raw_bias.items()}
                    bias_ok = not any(math.isnan(v) for v in by.values())
                    bias = tuple(by.get(n, 0.0) for n in known)
            if (spec and arch and weights and sha and names and not math.isnan(conf)
                    and not (other is not None and math.isnan(other)) and bias_ok):
                router = RouterSpec(arch, spec, tuple(n.strip().upper() for n in names),
                                    weights, sha, conf, other,
                                    bias if bias and any(bias) else None)

    models: dict[str, ModelSpec] = {}
    am = top.get("abnormality_models")
    if not isinstance(am, dict) or not am:
        p.add("abnormality_models", f"must be a non-empty object of models, got {am!r}")
        am = {}
    for key, entry in am.items():
        path = f"abnormality_models.{key}"
        m = _obj(p, path, entry, _MODEL_REQUIRED, _MODEL_OPTIONAL)
        if m is None:
            continue
        before = len(p.items)
        spec = _input_spec(p, path, m)
        arch = _architecture(p, f"{path}.architecture", m.get("architecture"))
        weights = _weights_name(p, f"{path}.weights", m.get("weights"))
        sha = _sha(p, f"{path}.sha256", m.get("sha256"))
        threshold = _number(p, f"{path}.threshold", m.get("threshold"), 0.0, 1.0)
        temperature = _number(p, f"{path}.temperature", m.get("temperature"), 0.0,
                              math.inf, low_open=True)
        layer = _text(p, f"{path}.cam_target_layer", m.get("cam_target_layer"))
        positive = _text(p, f"{path}.positive_label", m.get("positive_label"))
        default_negative = "normal" if positive == "abnormal" else f"no {positive}"
        negative = _text(p, f"{path}.negative_label", m.get("negative_label", default_negative))
        desc = _text(p, f"{path}.description", m.get("description", ""), empty=True)
        doubt = None
        if m.get("doubt_threshold") is not None:
            doubt = _number(p, f"{path}.doubt_threshold", m.get("doubt_threshold"), 0.0,
                            threshold if not math.isnan(threshold) else 1.0)
        aggregation = m.get("aggregation")
        if aggregation is not None and aggregation not in AGGREGATIONS:
            p.add(f"{path}.aggregation", f"must be one of {', '.join(AGGREGATIONS)}, got "
                                         f"{aggregation!r}")
        cam_method = m.get("cam_method", "gradcam")
        if cam_method not in CAM_METHODS:
            p.add(f"{path}.cam_method", f"must be one of {', '.join(CAM_METHODS)}, got "
                                        f"{cam_method!r}")
        box = _box_head(p, f"{path}.box_head", m["box_head"]) if m.get("box_head") else None
        if len(p.items) == before and spec is not None:
            models[key] = ModelSpec(key, arch, spec, weights, sha, threshold, temperature,
                                    layer, positive, negative, desc, doubt, aggregation,
                                    cam_method, box)

    routing: dict[str, str] = {}
    rt = top.get("routing")
    if not isinstance(rt, dict) or not rt:
        p.add("routing", f"must be a non-empty object (body part → model), got {rt!r}")
        rt = {}
    for part, target in rt.items():
        norm = normalize_body_part(part) if isinstance(part, str) else None
        if not norm:
            p.add(f"routing.{part}", "body part must be a non-empty string")
            continue
        if not isinstance(target, str) or target not in am:
            defined = ", ".join(sorted(am)) or "none"
            p.add(f"routing.{part}", f"routes to undefined model {target!r} (defined: "
                                     f"{defined})")
            continue
        if norm in routing and routing[norm] != target:
            p.add(f"routing.{part}", f"{part!r} means {norm}, already routed to "
                                     f"{routing[norm]!r}")
            continue
        routing[norm] = target

    fallback = top.get("fallback_model")
    if fallback is not None and (not isinstance(fallback, str) or fallback not in am):
        defined = ", ".join(sorted(am)) or "none"
        p.add("fallback_model", f"must name a defined model (defined: {defined}), got "
                                f"{fallback!r}")
    aggregation = top.get("aggregation", "mean")
    if aggregation not in AGGREGATIONS:
        p.add("aggregation", f"must be one of {', '.join(AGGREGATIONS)}, got {aggregation!r}")
    if p.items or training is None:
        return None, p.items
    return Manifest(schema=schema, name=name, version=version, intended_use=intended,
                    license=license_, training_data=training, abnormality_models=models,
                    routing=routing, router=router, metrics=dict(metrics),
                    init=dict(init) if isinstance(init, dict) else None,
                    description=description, fallback_model=fallback,
                    aggregation=aggregation), []


# ----------------------------------------------------------------------------- files


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a file, lowercase hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _format_problem(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return "a zip archive (a PyTorch .pt/.pth checkpoint?), not safetensors"
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle, not safetensors"
    return "not a safetensors file"


def safetensors_header(path: Path) -> dict[str, Any]:
    """Read and check the JSON header of a safetensors file without loading tensors.

    Raises
    ------
    ValueError
        When the file is not safetensors (with a hint when it is a pickle or a zip-based
        PyTorch checkpoint). Nothing is unpickled.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(_format_problem(head))
        (length,) = struct.unpack("<Q", head)
        if not 2 <= length <= min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(_format_problem(head))
        raw = f.read(length)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ValueError(_format_problem(head)) from None
    if not isinstance(header, dict):
        raise ValueError(_format_problem(head))
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not (isinstance(entry, dict) and {"dtype", "shape", "data_offsets"} <= set(entry)):
            raise ValueError(f"not a valid safetensors header (entry {key!r})")
    return header


def _check_against_architecture(header: dict[str, Any], arch: str, num_classes: int,
                                channels: int, cam_layer: str | None) -> list[str]:
    """Compare tensor names and shapes with the architecture, built on the meta device
    (no memory, no initialisation cost). Returns problems (empty when it fits)."""
    import torch

    from inference.models import build_model, get_layer

    with torch.device("meta"):
        model = build_model(arch, num_classes, in_channels=channels)
    problems = []
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    stored = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    wrong = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    if missing:
        problems.append(f"{len(missing)} tensors of {arch} missing (e.g. {missing[:3]})")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors not in {arch} (e.g. {unexpected[:3]})")
    for k in wrong[:3]:
        problems.append(f"tensor {k} has shape {list(stored[k])}, {arch} with "
                        f"{num_classes} output(s) and {channels} channel(s) needs "
                        f"{list(expected[k])}")
    if cam_layer is not None:
        try:
            get_layer(model, cam_layer)
        except ValueError as exc:
            problems.append(f"cam_target_layer: {exc}")
    return problems


def _check_box_head(root: Path, field_path: str, m: ModelSpec,
                    hashes: dict[str, str]) -> list[str]:
    """Problems of a model's box head: file, sha256, tensors, backbone layer."""
    import torch

    from inference.boxes import build_box_head
    from inference.models import build_model, get_layer

    b = m.box_head
    path = _resolve_inside(root, b.weights)
    if path is None:
        return [f"{field_path}.weights: {b.weights!r} resolves outside the bundle"]
    if not path.is_file():
        return [f"{b.weights}: missing (named by {field_path}.weights)"]
    try:
        header = safetensors_header(path)
    except ValueError as exc:
        return [f"{b.weights}: {exc}; radview reads weights only from safetensors files"]
    except OSError as exc:
        return [f"{b.weights}: cannot be read ({exc})"]
    if b.weights not in hashes:
        hashes[b.weights] = sha256_file(path)
    if hashes[b.weights] != b.sha256:
        return [f"{b.weights}: sha256 mismatch (manifest {field_path}.sha256 says "
                f"{b.sha256}, the file has {hashes[b.weights]}): the file was changed"]
    with torch.device("meta"):
        head = build_box_head(b.kind, b.channels, b.hidden)
        model = build_model(m.architecture, 1, in_channels=m.input.channels)
    problems = []
    expected = {k: tuple(v.shape) for k, v in head.state_dict().items()}
    stored = {k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"}
    if expected != stored:
        problems.append(f"{b.weights} ({field_path}): tensors do not fit a {b.kind} head "
                        f"of {b.channels} → {b.hidden} channels")
    try:
        get_layer(model, b.layer)
    except ValueError as exc:
        problems.append(f"{field_path}.layer: {exc}")
    return problems


def _resolve_inside(root: Path, name: str) -> Path | None:
    path = (root / name)
    try:
        real = path.resolve()
        if not real.is_relative_to(root.resolve()):
            return None
    except OSError:
        return None
    return path


def load_manifest(directory: str | os.PathLike[str], *, verify: bool = True) -> Manifest:
    """Read and validate a bundle's ``manifest.json`` and check every weights file.

    Parameters
    ----------
    directory
        The bundle folder.
    verify
        Check each weights file: present, inside the bundle, a safetensors file (header
        only; nothing is unpickled), sha256 as in the manifest, tensor names and shapes
        fitting the architecture, Grad-CAM layer present. Only tests turn this off.

    Returns
    -------
    Manifest

    Raises
    ------
    BundleError
        Listing every problem found, each naming the file and field.
    """
    root = Path(directory)
    manifest_path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(root, "not a folder" if root.exists() else "no such folder")
    try:
        text = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BundleError(root, f"no {MANIFEST} in the folder") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(root, f"{MANIFEST}: cannot be read ({exc})") from None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise BundleError(root, f"{MANIFEST}: not valid JSON ({exc})") from None
    manifest, problems = _parse(raw, MANIFEST)
    if manifest is None:
        raise BundleError(root, problems)
    if not verify:
        return manifest

    entries: list[tuple[str, str, str, int, int, str | None]] = []
    if manifest.router:
        r = manifest.router
        entries.append(("router", r.weights, r.sha256, len(r.class_names), r.input.channels,
                        None))
        arch_of = {"router": r.architecture}
    else:
        arch_of = {}
    for key, m in manifest.abnormality_models.items():
        entries.append((f"abnormality_models.{key}", m.weights, m.sha256, 1, m.input.channels,
                        m.cam_target_layer))
        arch_of[f"abnormality_models.{key}"] = m.architecture
    hashes: dict[str, str] = {}
    for field_path, name, sha, classes, channels, cam_layer in entries:
        path = _resolve_inside(root, name)
        if path is None:
            problems.append(f"{field_path}.weights: {name!r} resolves outside the bundle")
            continue
        if not path.is_file():
            problems.append(f"{name}: missing (named by {field_path}.weights)")
            continue
        try:
            header = safetensors_header(path)
        except ValueError as exc:
            problems.append(f"{name}: {exc}; radview reads weights only from safetensors "
                            f"files and never unpickles")
            continue
        except OSError as exc:
            problems.append(f"{name}: cannot be read ({exc})")
            continue
        if name not in hashes:
            hashes[name] = sha256_file(path)
        if hashes[name] != sha:
            problems.append(f"{name}: sha256 mismatch (manifest {field_path}.sha256 says "
                            f"{sha}, the file has {hashes[name]}): the file was changed or "
                            f"corrupted")
            continue
        for text in _check_against_architecture(header, arch_of[field_path], classes,
                                                channels, cam_layer):
            problems.append(f"{name} ({field_path}): {text}")
    for key, m in manifest.abnormality_models.items():
        if m.box_head is not None:
            problems += _check_box_head(root, f"abnormality_models.{key}.box_head", m,
                                        hashes)
    if problems:
        raise BundleError(root, problems)
    return manifest


class Bundle:
    """A validated bundle folder.

    Attributes
    ----------
    path
        The folder.
    manifest
        Its validated :class:`Manifest`.
    """

    def __init__(self, path: str | os.PathLike[str], manifest: Manifest) -> None:
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Bundle:
        """Validate the folder (:func:`load_manifest`) and return the bundle."""
        return cls(path, load_manifest(path))

    def __repr__(self) -> str:
        return f"Bundle({self.manifest.name!r} {self.manifest.version!r} at {self.path})"

    def state_dict(self, weights: str, sha256: str) -> dict[str, Any]:
        """Read one weights file with safetensors; floating tensors as float32.

        The bytes are hashed and decoded from the same read, so what was verified is what
        is loaded.

        Raises
        ------
        BundleError
            When the file is missing, changed since the manifest was written (sha256), or
            not safetensors.
        """
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load as load_safetensors

        path = _resolve_inside(self.path, weights)
        if path is None:
            raise BundleError(self.path, f"{weights}: resolves outside the bundle")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BundleError(self.path, f"{weights}: cannot be read ({exc})") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise BundleError(self.path, f"{weights}: sha256 mismatch (manifest says {sha256}, "
                                         f"the file has {actual}): the file was changed")
        try:
            tensors = load_safetensors(data)
        except (SafetensorError, ValueError) as exc:
            raise BundleError(self.path, f"{weights}: {_format_problem(data[:8])} "
                                         f"({exc})") from None
        return {k: (v.float() if v.is_floating_point() and v.dtype != torch.float32 else v)
                for k, v in tensors.items()}

    def load_model(self, spec: ModelSpec | RouterSpec, device: Any = "cpu"):
        """Build ``spec``'s architecture, load its weights (strict), attach its box head
        (when it has one: the model's logit then includes the head's score terms, and
        ``model.box_heat`` holds the last heat logits), move it to ``device``, and return it
        in eval mode with gradients off for its parameters."""
        import torch

        from inference.models import build_model

        classes = len(spec.class_names) if isinstance(spec, RouterSpec) else 1
        state = self.state_dict(spec.weights, spec.sha256)
        # Built on the meta device (no memory, no random initialisation: ~0.2 s saved for a
        # DenseNet-169), then the loaded tensors are assigned as the parameters.
        with torch.device("meta"):
            model = build_model(spec.architecture, classes, in_channels=spec.input.channels)
        try:
            model.load_state_dict(state, strict=True, assign=True)
        except RuntimeError as exc:
            raise BundleError(self.path, f"{spec.weights}: does not fit {spec.architecture} "
                                         f"({exc})") from None
        unset = [name for name, t in (*model.named_parameters(), *model.named_buffers())
                 if t.is_meta]
        if unset:
            raise BundleError(self.path, f"{spec.weights}: {spec.architecture} has tensors "
                                         f"not in the file: {unset[:3]}")
        box = getattr(spec, "box_head", None)
        if box is not None:
            from inference.boxes import attach_box_head, build_box_head

            head = build_box_head(box.kind, box.channels, box.hidden)
            try:
                head.load_state_dict(self.state_dict(box.weights, box.sha256), strict=True)
            except RuntimeError as exc:
                raise BundleError(self.path, f"{box.weights}: does not fit a {box.kind} head "
                                             f"of {box.channels}→{box.hidden} ({exc})") from None
            attach_box_head(model, box.layer, head, score_weight=box.score_weight,
                            score_offset=box.score_offset)
        model.to(device).eval()
        for param in model.parameters():
            param.requires_grad_(False)
        return model


# ------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class BundleInfo:
    """A bundle found on disk; ``error`` says why it cannot be used (None when it can)."""

    name: str
    version: str
    path: Path
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def shipped_models_dir() -> Path:
    """``resources/models`` of a source checkout, or of a frozen build.

    ``RADVIEW_SHIPPED_MODELS_DIR`` replaces it (the test suite points it at an empty folder
    so that only the bundles a test makes are found).
    """
    override = os.environ.get("RADVIEW_SHIPPED_MODELS_DIR")
    if override:
        return Path(override)
    frozen = getattr(sys, "_MEIPASS", None)
    base = Path(frozen) if frozen else Path(__file__).resolve().parent.parent
    return base / "resources" / "models"


def user_models_dir() -> Path:
    """``<user data dir>/models``; ``RADVIEW_DATA_DIR`` replaces the data dir."""
    override = os.environ.get("RADVIEW_DATA_DIR")
    import platformdirs

    base = Path(override) if override else Path(platformdirs.user_data_dir("radview"))
    return base / "models"


def search_paths(extra: Sequence[str | os.PathLike[str]] = ()) -> list[Path]:
    """Folders searched for bundles, in priority order (see the module notes)."""
    return [*(Path(p) for p in extra), user_models_dir(), shipped_models_dir()]


def _candidates(roots: Sequence[Path]) -> list[Path]:
    seen: set[str] = set()
    out: list[Path] = []
    for root in roots:
        if (root / MANIFEST).is_file():
            found = [root]
        elif root.is_dir():
            try:
                found = sorted(d for d in root.iterdir()
                               if d.is_dir() and not d.name.startswith(".")
                               and (d / MANIFEST).is_file())
            except OSError as exc:
                log.warning("cannot list %s: %s", root, exc)
                found = []
        else:
            found = []
        for path in found:
            key = os.path.realpath(path)
            if key not in seen:
                seen.add(key)
                out.append(path)
    return out


def _peek(path: Path) -> tuple[str, str]:
    try:
        raw = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        return str(raw.get("name") or path.name), str(raw.get("version") or "")
    except (OSError, ValueError, AttributeError):
        return path.name, ""


def discover_bundles(extra: Sequence[str | os.PathLike[str]] = ()) -> list[BundleInfo]:
    """Every bundle in the search folders, valid or not, in priority order.

    Each is fully validated (:func:`load_manifest`, including sha256 of every file);
    invalid ones are listed with ``error`` set so the user sees why.
    """
    infos = []
    for path in _candidates(search_paths(extra)):
        try:
            m = load_manifest(path)
            infos.append(BundleInfo(m.name, m.version, path))
        except BundleError as exc:
            name, version = _peek(path)
            log.info("bundle %s refused: %s", path, exc)
            infos.append(BundleInfo(name, version, path, str(exc)))
    return infos


def default_bundle(extra: Sequence[str | os.PathLike[str]] = ()) -> Bundle:
    """The first valid bundle in the search folders.

    Raises
    ------
    NoBundleError
        When there is none; the message lists the folders searched and why each bundle
        found was refused.
    """
    refused: list[tuple[Path, str]] = []
    for path in _candidates(search_paths(extra)):
        try:
            return Bundle.load(path)
        except BundleError as exc:
            refused.append((path, "; ".join(exc.problems)))
    raise NoBundleError(search_paths(extra), refused)


# --------------------------------------------------------------------------- writing


def replace_folder(staged: Path, target: Path) -> None:
    """Move a completely written folder into place; an existing ``target`` is swapped out
    by rename first and removed only after the new one is in place.

    When moving ``staged`` into place fails after ``target`` was moved aside, the old
    folder is renamed back before the error propagates: ``target`` is then exactly what
    it was (never missing, never hidden under a ``.NAME.old-…`` name), and ``staged`` is
    left for the caller to clean up.
    """
    if not target.exists():
        os.replace(staged, target)
        return
    aside = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
    os.replace(target, aside)
    try:
        os.replace(staged, target)
    except BaseException:
        try:
            os.replace(aside, target)
        except OSError as exc:  # both renames failed: say where the old bundle is
            log.error("bundle swap failed and the old bundle could not be restored; it is "
                      "in %s (%s)", aside, exc.strerror or exc)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def write_bundle(directory: str | os.PathLike[str], manifest: Mapping[str, Any],
                 state_dicts: Mapping[str, Mapping[str, Any]], *, fp16: bool = False,
                 overwrite: bool = False) -> Bundle:
    """Write a bundle atomically: safetensors files, their sha256 in the manifest.

    Parameters
    ----------
    directory
        The bundle folder to create.
    manifest
        The manifest as a dict; ``schema`` is set to :data:`SCHEMA` when absent, and each
        entry's ``sha256`` is filled in from the file its ``weights`` names (any value
        given is replaced).
    state_dicts
        ``{file name: state dict}``; every ``weights`` named in the manifest must be here.
    fp16
        Store floating tensors as float16 (half the size; :meth:`Bundle.state_dict` casts
        them back to float32).
    overwrite
        Replace an existing bundle folder (the old one is moved aside and removed only
        after the new one is in place).

    Returns
    -------
    Bundle
        The written bundle, validated by :func:`load_manifest`.

    Raises
    ------
    BundleError
        When the manifest is invalid, a weights file is not provided, or ``directory``
        exists and ``overwrite`` is false. Nothing is left behind on failure.

    Notes
    -----
    Everything is written to a hidden temporary folder next to ``directory``, validated,
    then renamed into place (a rename within one filesystem is atomic), so a reader never
    sees a half-written bundle.
    """
    import torch
    from safetensors.torch import save_file

    target = Path(directory)
    if target.exists() and not overwrite:
        raise BundleError(target, "already exists (pass overwrite=True to replace it)")
    data = copy.deepcopy(dict(manifest))
    data.setdefault("schema", SCHEMA)
    entries = []
    if isinstance(data.get("router"), dict):
        entries.append(data["router"])
    if isinstance(data.get("abnormality_models"), dict):
        entries += [m for m in data["abnormality_models"].values() if isinstance(m, dict)]
        entries += [m["box_head"] for m in data["abnormality_models"].values()
                    if isinstance(m, dict) and isinstance(m.get("box_head"), dict)]
    for name in state_dicts:
        if PurePosixPath(name).name != name or not name.endswith(".safetensors"):
            raise BundleError(target, f"weights file name must be a plain *.safetensors name, "
                                      f"got {name!r}")
    missing = sorted({e.get("weights") for e in entries} - set(state_dicts), key=str)
    if missing:
        raise BundleError(target, f"no state dict given for weights file(s) {missing}")

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        hashes = {}
        for name, state in state_dicts.items():
            tensors = {}
            for key, value in state.items():
                t = value.detach().to("cpu")
                if fp16 and t.is_floating_point():
                    t = t.to(torch.float16)
                tensors[key] = t.contiguous().clone()  # no shared storage (safetensors rule)
            save_file(tensors, tmp / name, metadata={"format": "pt"})
            hashes[name] = sha256_file(tmp / name)
        for entry in entries:
            entry["sha256"] = hashes[entry["weights"]]
        (tmp / MANIFEST).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        try:
            manifest_obj = load_manifest(tmp)
        except BundleError as exc:
            raise BundleError(target, exc.problems) from None
        replace_folder(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote bundle %s %s to %s", manifest_obj.name, manifest_obj.version, target)
    return Bundle(target, manifest_obj)
