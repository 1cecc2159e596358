"""Checks that a build (or a source install) has everything the AI and the loader need.

Run inside the build as ``dist/radview/radview --build-selftest``, from source as
``python packaging/radview_selftest.py``. Prints one JSON object; exits 0 when every check
passed, 1 otherwise. Runs on the CPU unless ``--device cuda``.
"""

from __future__ import annotations

import json
import sys
import time
import traceback


def _check(results: dict, name: str, fn) -> None:
    start = time.perf_counter()
    try:
        info = fn()
        results[name] = {"ok": True, "seconds": round(time.perf_counter() - start, 3),
                         **(info or {})}
    except Exception as exc:  # every failure is reported, none stops the rest
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "traceback": traceback.format_exc(limit=6)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    device = argv[argv.index("--device") + 1] if "--device" in argv else "cpu"
    results: dict = {}

    def paths_check():
        from viewer import paths

        missing = [str(p) for p in (paths.resources_dir(), paths.sample_study(),
                                    paths.icons_dir() / "radview.svg") if not p.exists()]
        if missing:
            raise FileNotFoundError(", ".join(missing))
        return {"frozen": paths.is_frozen(), "icons": len(paths.icon_files()),
                "models_dir": paths.models_dir().is_dir()}

    def torch_check():
        import torch

        x = torch.zeros(1) + 1
        return {"torch": torch.__version__, "cuda_build": torch.version.cuda,
                "cuda_available": torch.cuda.is_available(), "value": float(x[0]),
                "threads": torch.get_num_threads()}

    def resnet_check():
        import torch
        import torchvision

        model = torchvision.models.resnet18(weights=None).eval().to(device)
        with torch.no_grad():
            out = model(torch.rand(1, 3, 224, 224, device=device))
        from torchvision.extension import _has_ops

        # The CPU build has no torchvision C++ ops (nms, roi_align: detection only).
        return {"torchvision": torchvision.__version__, "shape": list(out.shape),
                "torchvision_ops": _has_ops()}

    def gradcam_check():
        import torch
        import torchvision
        from pytorch_grad_cam import GradCAM
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

        model = torchvision.models.resnet18(weights=None).eval().to(device)
        with GradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
            heat = cam(input_tensor=torch.rand(1, 3, 224, 224, device=device),
                       targets=[ClassifierOutputTarget(0)])
        return {"cam_shape": list(heat.shape)}

    def efficientnet_check():
        import torch

        from inference.efficientnet_lite import EfficientNetLite0

        model = EfficientNetLite0(num_classes=1).eval().to(device)
        with torch.no_grad():
            out = model(torch.rand(1, 3, 224, 224, device=device))
        return {"shape": list(out.shape)}

    def dicom_check():
        import pydicom

        from viewer import paths

        decoded = []
        for f in sorted(paths.sample_study().glob("*.dcm")):
            ds = pydicom.dcmread(f)
            decoded.append([ds.file_meta.TransferSyntaxUID.name, list(ds.pixel_array.shape)])
        if not decoded:
            raise FileNotFoundError("no sample DICOM files")
        return {"files": decoded}

    def codecs_check():
        import numpy as np
        import openjpeg
        from pydicom import uid
        from pydicom.pixels import get_decoder

        # pylibjpeg finds its plugins through package metadata (entry points): a build
        # that lost the metadata still imports, but decodes nothing compressed.
        syntaxes = (uid.JPEGLosslessSV1, uid.JPEGLSLossless, uid.JPEG2000Lossless,
                    uid.RLELossless)
        missing = [u.name for u in syntaxes
                   if "pylibjpeg" not in get_decoder(u).available_plugins]
        if missing:
            raise RuntimeError(f"no pylibjpeg decoder for {', '.join(missing)}")
        image = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
        if not np.array_equal(openjpeg.decode(openjpeg.encode(image)), image):
            raise RuntimeError("JPEG 2000 round trip changed the pixels")
        return {"syntaxes": len(syntaxes)}

    for name, fn in (("paths", paths_check), ("torch", torch_check), ("resnet18", resnet_check),
                     ("gradcam", gradcam_check), ("efficientnet_lite0", efficientnet_check),
                     ("dicom", dicom_check), ("codecs", codecs_check)):
        _check(results, name, fn)
    ok = all(r["ok"] for r in results.values())
    print(json.dumps({"ok": ok, "checks": results}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
