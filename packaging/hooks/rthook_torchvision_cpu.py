"""PyInstaller runtime hook for the CPU build: lets torchvision import without its C++ ops.

PyPI has no CPU build of torchvision: its compiled ops (``torchvision/_C.so``) link the
CUDA build of libtorch, so next to a CPU-only torch they cannot load. torchvision copes
with that for most ops, but ``torchvision/_meta_registrations.py`` registers fake kernels
for ``torchvision::nms`` and ``torchvision::qnms`` unconditionally, and that fails with
"operator torchvision::nms does not exist", so ``import torchvision`` fails.

This hook waits (without importing torch: radview starts faster when torch is imported
only when the AI first runs) until torchvision is about to import that module, and then
defines those two operator schemas when the C++ ops did not load. Calling them still
fails (no kernel); radview's classification models and Grad-CAM do not use them.
"""

import importlib.abc
import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)


class _DefineTorchvisionOps(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torchvision._meta_registrations":
            sys.meta_path.remove(self)
            _define_missing_ops()
        return None  # let the normal finders import the module


def _define_missing_ops():
    import torch

    extension = sys.modules.get("torchvision.extension")
    if extension is None or extension._has_ops():
        return
    lib = torch.library.Library("torchvision", "DEF")
    for schema in _SCHEMAS:
        name = schema.split("(", 1)[0]
        if not hasattr(torch.ops.torchvision, name):
            lib.define(schema)
    extension._radview_cpu_op_schemas = lib  # the definitions live as long as this object


sys.meta_path.insert(0, _DefineTorchvisionOps())
