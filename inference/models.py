"""The architecture registry: named constructors a bundle manifest may refer to.

Like timm's registry, a name is all a manifest needs; an unknown name fails loudly
(:class:`UnknownArchitectureError` lists the known ones). Every constructor builds the
network with random weights (torchvision models with ``weights=None``: nothing is ever
downloaded) and a classifier head of ``num_classes`` outputs; the weights come from the
bundle.

Like timm's ``pretrained_cfg``, each entry also carries the input its ImageNet weights
expect: the mean and std (on values scaled to 0–1) and the input size they were trained
at. ``radview train`` writes the mean and std into the bundle's manifest
(:func:`default_normalization`); at run time the manifest's values are the only ones
used, so a bundle keeps working whatever this table says later.

====================  ===================================  ====================  ==========
name                  source                               Grad-CAM layer        parameters
====================  ===================================  ====================  ==========
densenet121           torchvision                          features.denseblock4  6.95 M
densenet169           torchvision                          features.denseblock4  12.49 M
resnet18              torchvision                          layer4                11.18 M
resnet50              torchvision                          layer4                23.51 M
efficientnet_b0       torchvision                          features.8            4.01 M
mobilenet_v3_large    torchvision                          features.16           4.20 M
efficientnet_lite0    :mod:`inference.efficientnet_lite`   features.8            3.37 M
efficientnet_lite1    :mod:`inference.efficientnet_lite`   features.8            4.14 M
efficientnet_lite2    :mod:`inference.efficientnet_lite`   features.8            4.81 M
====================  ===================================  ====================  ==========

Parameters are counted with one output class and a 3-channel stem. Every ImageNet input
is 224 px; the mean/std are torchvision's ImageNet statistics, except for
efficientnet_lite0, whose converted TensorFlow Lite weights expect ``(x - 127) / 128`` on
0–255 values (:data:`inference.efficientnet_lite.IMAGENET_MEAN`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from inference import efficientnet_lite
from inference.efficientnet_lite import EfficientNetLite, EfficientNetLite0
from inference.errors import LayerNotFoundError, UnknownArchitectureError

#: torchvision's ImageNet statistics (values 0–1): the default normalization.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: For a 1-channel model trained from scratch: the mean of ImageNet's channel statistics.
GRAY_MEAN, GRAY_STD = (0.449,), (0.226,)


@dataclass(frozen=True)
class Architecture:
    """One registered architecture.

    Attributes
    ----------
    name
        The name manifests use.
    build
        ``build(num_classes) -> nn.Module`` with random weights.
    cam_layer
        The usual Grad-CAM target layer (the last convolutional feature map); a manifest
        names its own, this is the suggestion training writes.
    head
        Module path of the final ``nn.Linear`` (replaced by :func:`replace_head`).
    stem
        Module path of the first ``nn.Conv2d`` (replaced for 1-channel input).
    description
        One line for listings.
    mean, std
        Input normalization (per channel, values scaled to 0–1) the architecture's
        ImageNet weights expect.
    input_size
        Side in pixels of the square input those weights were trained at.
    """

    name: str
    build: Callable[[int], nn.Module]
    cam_layer: str
    head: str
    stem: str
    description: str = ""
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD
    input_size: int = 224
    #: A stride-8 layer: where ``radview train`` points LayerCAM (sharp maps at the
    #: model's input resolution); None: :attr:`cam_layer`.
    fine_cam_layer: str | None = None
    #: A stride-16 layer: where ``radview train`` attaches the box head
    #: (:mod:`inference.boxes`); None: no default (``--box-layer`` needed).
    box_layer: str | None = None


#: Stride-8 and stride-16 layers of each architecture (issue 14: LayerCAM and box head).
_FINE_LAYERS = {
    "densenet121": ("features.denseblock2", "features.denseblock3"),
    "densenet169": ("features.denseblock2", "features.denseblock3"),
    "resnet18": ("layer2", "layer3"),
    "resnet50": ("layer2", "layer3"),
    "efficientnet_b0": ("features.3", "features.5"),
    "mobilenet_v3_large": ("features.6", "features.12"),
    "efficientnet_lite0": ("features.3", "features.5"),
}


#: Registered architectures by name (see the module table).
ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(arch: Architecture) -> Architecture:
    """Add ``arch`` to :data:`ARCHITECTURES` (a name may be registered once)."""
    if arch.name in ARCHITECTURES:
        raise ValueError(f"architecture {arch.name!r} is already registered")
    ARCHITECTURES[arch.name] = arch
    return arch


def _tv(name: str) -> Callable[[int], nn.Module]:
    def build(num_classes: int) -> nn.Module:
        # torchvision is imported on first use (~3 s, not needed for Lite0 bundles), on the
        # CPU even inside a caller's ``torch.device("meta")`` block, so that nothing it
        # creates at import time lands on the meta device.
        with torch.device("cpu"):
            import torchvision

        return getattr(torchvision.models, name)(weights=None, num_classes=num_classes)

    build.__name__ = f"build_{name}"
    return build


for _name, _cam, _head, _stem, _desc in (
    ("densenet121", "features.denseblock4", "classifier", "features.conv0",
     "DenseNet-121 (Huang et al. 2017), torchvision; the MURA baseline"),
    ("densenet169", "features.denseblock4", "classifier", "features.conv0",
     "DenseNet-169, torchvision; the MURA paper's model"),
    ("resnet18", "layer4", "fc", "conv1", "ResNet-18, torchvision"),
    ("resnet50", "layer4", "fc", "conv1", "ResNet-50, torchvision"),
    ("efficientnet_b0", "features.8", "classifier.1", "features.0.0",
     "EfficientNet-B0, torchvision"),
    ("mobilenet_v3_large", "features.16", "classifier.3", "features.0.0",
     "MobileNetV3-Large, torchvision"),
):
    register_architecture(Architecture(_name, _tv(_name), _cam, _head, _stem, _desc,
                                       fine_cam_layer=_FINE_LAYERS[_name][0],
                                       box_layer=_FINE_LAYERS[_name][1]))

register_architecture(Architecture(
    "efficientnet_lite0", lambda num_classes: EfficientNetLite0(num_classes), "features.8",
    "classifier.1", "features.0.0",
    "EfficientNet-Lite0 (no SE, ReLU6), inference.efficientnet_lite",
    mean=efficientnet_lite.IMAGENET_MEAN, std=efficientnet_lite.IMAGENET_STD,
    fine_cam_layer="features.3", box_layer="features.5"))

for _variant, _params in (("lite1", "4.14"), ("lite2", "4.81")):
    register_architecture(Architecture(
        f"efficientnet_{_variant}",
        (lambda v: lambda num_classes: EfficientNetLite(v, num_classes))(_variant),
        "features.8", "classifier.1", "features.0.0",
        f"EfficientNet-{_variant.title()} (no SE, ReLU6; ~{_params} M parameters), "
        f"inference.efficientnet_lite",
        mean=efficientnet_lite.IMAGENET_MEAN, std=efficientnet_lite.IMAGENET_STD,
        input_size=efficientnet_lite.VARIANTS[_variant][2],
        fine_cam_layer="features.3", box_layer="features.5"))


def architecture(name: str) -> Architecture:
    """The registered architecture called ``name``.

    Raises
    ------
    UnknownArchitectureError
        Naming the known architectures.
    """
    try:
        return ARCHITECTURES[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ARCHITECTURES))
        raise UnknownArchitectureError(
            f"unknown architecture {name!r} (known: {known})") from None


def default_normalization(arch: str, init: str = "imagenet",
                          channels: int = 3) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std (values 0–1) for a new model of ``arch``, from the registry.

    The architecture's own (its ImageNet weights') for ``init="imagenet"``; torchvision's
    ImageNet statistics for 3 channels from scratch; :data:`GRAY_MEAN`/:data:`GRAY_STD` for
    one channel. Training writes the result into the bundle manifest, which is what the
    engine uses from then on.

    Raises
    ------
    UnknownArchitectureError
        For a name that is not registered.
    """
    spec = architecture(arch)
    if channels == 1:
        return GRAY_MEAN, GRAY_STD
    if init == "imagenet":
        return tuple(spec.mean), tuple(spec.std)
    return IMAGENET_MEAN, IMAGENET_STD


def build_model(arch: str, num_classes: int, in_channels: int = 3) -> nn.Module:
    """Build a registered architecture with random weights.

    Parameters
    ----------
    arch
        A name in :data:`ARCHITECTURES`.
    num_classes
        Outputs of the classifier head (1 for a binary abnormality model).
    in_channels
        3 (grayscale replicated to RGB, the usual case) or 1 (the stem convolution is
        replaced by a 1-channel one).

    Returns
    -------
    torch.nn.Module
        In training mode, as PyTorch constructs it.

    Raises
    ------
    UnknownArchitectureError
        For a name that is not registered.
    """
    spec = architecture(arch)
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    model = spec.build(num_classes)
    if in_channels != 3:
        _replace_stem(model, spec, in_channels)
    return model


def replace_head(model: nn.Module, arch: str, num_classes: int) -> nn.Module:
    """Replace the final linear layer of ``model`` (e.g. ImageNet's 1000 classes) by a new
    randomly initialised one with ``num_classes`` outputs; returns ``model``."""
    spec = architecture(arch)
    parent_path, _, leaf = spec.head.rpartition(".")
    parent = get_layer(model, parent_path) if parent_path else model
    old = get_layer(model, spec.head)
    if not isinstance(old, nn.Linear):
        raise TypeError(f"{arch}: {spec.head} is {type(old).__name__}, expected Linear")
    setattr(parent, leaf, nn.Linear(old.in_features, num_classes, bias=old.bias is not None))
    return model


def _replace_stem(model: nn.Module, spec: Architecture, in_channels: int) -> None:
    """Give the stem convolution ``in_channels`` inputs (fresh random weights), keeping
    its class and settings (e.g. :class:`~inference.efficientnet_lite.SameConv2d`)."""
    conv = get_layer(model, spec.stem)
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"{spec.name}: {spec.stem} is {type(conv).__name__}, expected Conv2d")
    weight = conv.weight.new_empty((conv.out_channels, in_channels // conv.groups,
                                    *conv.kernel_size))
    nn.init.kaiming_normal_(weight, mode="fan_out", nonlinearity="relu")
    conv.in_channels = in_channels
    conv.weight = nn.Parameter(weight)


def get_layer(model: nn.Module, path: str) -> nn.Module:
    """Resolve a module path such as ``"features.denseblock4"`` or ``"features.7"``.

    Raises
    ------
    LayerNotFoundError
        Naming the first missing component and the children available at that point.
    """
    module = model
    if not path:
        return module
    done: list[str] = []
    for part in path.split("."):
        children = dict(module.named_children())
        if part not in children:
            where = ".".join(done) or "the model"
            names = ", ".join(list(children)[:20]) or "none"
            raise LayerNotFoundError(
                f"layer {path!r} not found in {type(model).__name__}: {where} has no "
                f"{part!r} (its children: {names})")
        module = children[part]
        done.append(part)
    return module


def optimize_for_inference(model: nn.Module, keep: tuple[str, ...] = ()) -> int:
    """Make an eval-mode model faster to run, in place, without changing what it computes.

    * **Batch norm folded into the convolution before it** (``y = γ (conv(x) − μ) / σ + β``
      is one convolution with scaled weights and a bias): every ``Conv2d`` directly
      followed by a ``BatchNorm2d`` inside an ``nn.Sequential`` (the order is then certain)
      is replaced by the fused convolution (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`,
      same class, e.g. :class:`~inference.efficientnet_lite.SameConv2d`) and the norm by
      ``nn.Identity``, so module paths ending at either still resolve.
    * **Channels-last weights**, which oneDNN runs faster on the CPU, the depthwise
      convolutions of EfficientNet most of all.

    On EfficientNet-Lite0 at 384 px this takes a 3-image forward pass from ≈ 240 ms to
    ≈ 180 ms on one core (``bench/ai_study.py``); outputs agree to ~1e-5.

    Left alone: a pair whose convolution is named in ``keep`` (a Grad-CAM or box-head
    layer: its output would change) or that carries hooks, and a model in training mode
    (its norms still learn). Returns the number of pairs folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    if model.training:
        return 0
    folded = 0
    for path, module in list(model.named_modules()):
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module._modules.items())
        for (name, conv), (norm_name, norm) in itertools.pairwise(children):
            where = f"{path}.{name}" if path else name
            if not (isinstance(conv, nn.Conv2d) and type(norm) is nn.BatchNorm2d):
                continue
            hooked = any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks
                         for m in (conv, norm))
            if (hooked or where in keep or conv.training or norm.training
                    or not norm.track_running_stats):
                continue
            module._modules[name] = fuse_conv_bn_eval(conv, norm)
            module._modules[norm_name] = nn.Identity()
            folded += 1
    model.to(memory_format=torch.channels_last)
    return folded
