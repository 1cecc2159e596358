"""Model input from a displayed image, and CAMs back onto the image's own pixel grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.preprocess import (
    InputSpec,
    Placement,
    cam_to_image,
    placement,
    prepare_batch,
    prepare_image,
    resize_uint8,
)

GRAY = InputSpec((64, 64), channels=1, mean=(0.5,), std=(0.25,))


@pytest.mark.parametrize("shape,resize,expected", [
    # Same aspect ratio: letterbox fills the input like stretch.
    ((128, 128), "letterbox", Placement(0, 0, 64, 64)),
    # Landscape 1:2 → a 32-row band centred vertically.
    ((60, 120), "letterbox", Placement(16, 0, 32, 64)),
    # Portrait 3:1 → 21 columns (21.33 rounded), odd padding pixel on the right.
    ((300, 100), "letterbox", Placement(0, 21, 64, 21)),
    # Stretch ignores the aspect ratio.
    ((60, 120), "stretch", Placement(0, 0, 64, 64)),
    # A one-pixel-high strip keeps at least one row (63 padding rows: 31 above, 32 below).
    ((1, 500), "letterbox", Placement(31, 0, 1, 64)),
])
def test_placement(shape, resize, expected):
    spec = InputSpec((64, 64), resize=resize)
    assert placement(shape, spec) == expected


@pytest.mark.parametrize("value,channels,mean,std", [
    # Black and white through ImageNet normalization, per channel.
    (0, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    (255, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    # Mid gray, one channel.
    (128, 1, (0.5,), (0.25,)),
    # One mean/std for three channels.
    (200, 3, (0.5,), (0.5,)),
])
def test_normalization_of_known_values(value, channels, mean, std):
    spec = InputSpec((16, 24), channels=channels, mean=mean, std=std)
    x = prepare_image(np.full((40, 50), value, np.uint8), spec)
    assert x.shape == (1, channels, 16, 24) and x.dtype == torch.float32
    for c in range(channels):
        expected = (value / 255.0 - mean[c % len(mean)]) / std[c % len(std)]
        assert torch.allclose(x[0, c], torch.full((16, 24), expected), atol=1e-5)


def test_letterbox_pads_with_black():
    # The padding is black before normalization, like the image's own black.
    spec = InputSpec((64, 64), channels=1, mean=(0.0,), std=(1.0,), resize="letterbox")
    x = prepare_image(np.full((60, 120), 255, np.uint8), spec)[0, 0]
    assert torch.all(x[:16] == 0) and torch.all(x[48:] == 0)
    assert torch.allclose(x[16:48], torch.ones(32, 64))


def test_resize_is_antialiased():
    # A one-pixel checkerboard shrunk 8x must become flat gray, not aliased stripes.
    board = (np.indices((512, 512)).sum(0) % 2 * 255).astype(np.uint8)
    small = resize_uint8(board, GRAY)
    assert small.std() < 2 and abs(small.mean() - 127.5) < 2


def test_batch_equals_single():
    # Batching must not change any image's input.
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (50 + 10 * i, 70), dtype=np.uint8) for i in range(3)]
    batch = prepare_batch(images, GRAY)
    for i, im in enumerate(images):
        assert torch.equal(batch[i:i + 1], prepare_image(im, GRAY))


@pytest.mark.parametrize("bad", [
    np.zeros((10, 10), np.uint16),      # stored values, not the displayed image
    np.zeros((10, 10, 3), np.uint8),    # colour
    np.zeros((0, 10), np.uint8),        # empty
])
def test_refuses_what_is_not_a_displayed_gray_image(bad):
    with pytest.raises(ValueError, match="uint8|non-empty"):
        prepare_image(bad, GRAY)


@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
@pytest.mark.parametrize("shape", [(60, 120), (300, 100), (64, 64)])
def test_cam_registers_with_the_image(resize, shape):
    # A hot spot put into the model input where an image feature lands must come back
    # on that feature in the original pixel grid.
    spec = InputSpec((64, 64), resize=resize)
    rows, cols = shape
    r0, c0 = int(rows * 0.7), int(cols * 0.25)  # feature position in the image
    image = np.zeros(shape, np.uint8)
    image[r0, c0] = 255
    small = resize_uint8(image, spec).astype(np.float32)
    cam = small / small.max()  # the feature, as the model input sees it
    back = cam_to_image(cam, spec, shape)
    assert back.shape == shape and back.dtype == np.float32
    assert 0.0 <= back.min() and back.max() <= 1.0
    peak = np.unravel_index(np.argmax(back), shape)
    tolerance = max(rows, cols) / 64 + 1  # one model-input pixel
    assert abs(peak[0] - r0) <= tolerance and abs(peak[1] - c0) <= tolerance


def test_cam_at_coarse_resolution_maps_too():
    # A CAM at the target layer's 8×8 grid (not upsampled) covers the same model input.
    spec = InputSpec((64, 64), resize="letterbox")
    cam = np.zeros((8, 8), np.float32)
    cam[2:6, 6] = 1.0  # right-hand side of the letterboxed band
    back = cam_to_image(cam, spec, (60, 120))
    assert back.shape == (60, 120)
    assert back[:, 90:].mean() > 5 * back[:, :60].mean()


def test_cam_values_stay_in_range():
    spec = InputSpec((64, 64))
    cam = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    back = cam_to_image(cam, spec, (200, 150))
    assert back.min() >= 0.0 and back.max() <= 1.0
