"""Grad-CAM (Selvaraju et al. 2017) with pytorch-grad-cam, made reusable and loud.

:class:`CamRunner` wraps one ``pytorch_grad_cam.GradCAM`` per model, created once and
reused for every study (its hooks stay on the target layer). One call does one forward
pass over a batch and one backward pass, and returns both the logits (the probabilities
need no second forward) and one CAM per image.

What the wrapper adds
---------------------
* **Errors surface.** ``GradCAM.__exit__`` swallows ``IndexError`` (and prints), so the
  object is never used as a context manager: activations and gradients are cleared in a
  ``finally`` and every exception propagates. A target layer that the forward pass never
  reached is reported by name instead of as an obscure ``NoneType`` error.
* **Only the head is differentiated.** The model's parameters do not require gradients; a
  forward hook (registered before pytorch-grad-cam's) makes the target layer's output a
  fresh tensor that requires them. Autograd then records only the layers after the target
  layer, so the backward pass costs a few milliseconds instead of a full backward pass
  through the network, and Grad-CAM needs nothing more: its weights are the gradients of
  the target logit with respect to that output. The output is cloned so that in-place
  operations after the layer (DenseNet's final ReLU) are allowed.
* **Batches.** The backward pass of the sum of the images' target logits gives each image
  its own gradients (in eval mode no layer mixes images), so a study's CAMs come from one
  forward and one backward pass.
* **Mode restored.** The model runs in eval mode (``GradCAM``'s constructor also sets it);
  the mode it had before is restored after construction and after each call.

Methods
-------
``method="gradcam"`` (default, old bundles): channel weights are the spatially averaged
gradients, so the map is as coarse as the layer (stride 32 for the usual last layer).
``method="layercam"`` (Jiang et al. 2021, pytorch-grad-cam's ``LayerCAM``): each position
weighted by its own positive gradient, which stays faithful at shallow layers; with a
stride-8 layer the map has model-input detail (bundles trained by this version use
``features.3`` of EfficientNet-Lite0, stride 8).

Not thread-safe (the hooks keep per-call state): use one runner from one thread, as the
engine does from its worker thread.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.errors import InferenceError
from inference.models import get_layer

log = logging.getLogger(__name__)


class CamRunner:
    """Logits and Grad-CAM maps for batches of model inputs.

    Parameters
    ----------
    model
        The classifier, on its device.
    target_layer
        Module path of the layer whose activations are weighted (e.g.
        ``"features.denseblock4"``); resolved with :func:`inference.models.get_layer`.
    output_index
        The logit explained (0 for a binary model with one logit).
    method
        ``"gradcam"`` or ``"layercam"`` (see the module notes).
    """

    def __init__(self, model: nn.Module, target_layer: str, output_index: int = 0, *,
                 method: str = "gradcam") -> None:
        self.model = model
        self.target_layer = target_layer
        self.output_index = output_index
        self.method = method
        # Imported here: pytorch-grad-cam pulls in cv2, scipy, matplotlib and torchvision
        # (seconds of start-up), only needed once a CAM is asked for.
        from pytorch_grad_cam import GradCAM, LayerCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        methods = {"gradcam": GradCAM, "layercam": LayerCAM}
        if method not in methods:
            raise ValueError(f"CAM method must be one of {', '.join(methods)}, got {method!r}")

        self._target_class = ClassifierOutputTarget
        layer = get_layer(model, target_layer)
        self._reached = False  # the target layer ran in the current call
        self._finished = False  # the model's forward pass completed in the current call
        was_training = model.training
        self._grad_hook = layer.register_forward_hook(self._start_graph_here)
        self._done_hook = model.register_forward_hook(self._forward_done)
        try:
            self._cam = methods[method](model=model, target_layers=[layer])
        except BaseException:
            self._grad_hook.remove()
            self._done_hook.remove()
            raise
        finally:
            model.train(was_training)

    def _forward_done(self, module: nn.Module, args: Any, output: Any) -> None:
        self._finished = True

    def _start_graph_here(self, module: nn.Module, args: Any, output: Any) -> Any:
        self._reached = True
        if torch.is_grad_enabled() and isinstance(output, torch.Tensor):
            return output.detach().requires_grad_(True).clone()
        return None

    def __call__(self, batch: torch.Tensor) -> tuple[torch.Tensor, np.ndarray]:
        """Run ``batch`` (N, C, H, W) through the model with Grad-CAM.

        Returns
        -------
        logits
            (N, outputs) float tensor on the CPU, detached.
        cams
            float32 (N, H, W) in [0, 1], each CAM min–max scaled by pytorch-grad-cam and
            resized to the input size (H, W).

        Raises
        ------
        InferenceError
            When the target layer was not reached by the forward pass.
        Exception
            Whatever the model or pytorch-grad-cam raised, unchanged.
        """
        was_training = self.model.training
        self._reached = self._finished = False
        targets = [self._target_class(self.output_index)] * batch.shape[0]
        self.model.eval()  # batch norm on running statistics: images stay independent
        try:
            with torch.enable_grad():
                try:
                    cams = self._cam(input_tensor=batch, targets=targets)
                except Exception:
                    if self._finished and not self._reached:
                        raise InferenceError(
                            f"Grad-CAM target layer {self.target_layer!r} was not used by "
                            f"the model's forward pass") from None
                    raise
            logits = self._cam.outputs.detach().to("cpu")
        finally:
            self._cam.outputs = None  # drops the autograd graph
            self._cam.activations_and_grads.clear()
            self.model.train(was_training)
        return logits, np.asarray(cams, dtype=np.float32)

    def close(self) -> None:
        """Remove the hooks from the model (the runner cannot be used afterwards)."""
        self._grad_hook.remove()
        self._done_hook.remove()
        self._cam.activations_and_grads.release()

    def __enter__(self) -> CamRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # never swallows the exception
