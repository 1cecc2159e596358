"""AI engine timings: a 3-view 2k study through DenseNet-169 at 320 px, and ``radview predict``.

Usage::

    python bench/ai_study.py [--repeats 3] [--skip-predict]

Builds once under ``bench/out/`` a 3-image study (2500 × 2048, 12 bits stored,
radiograph-like, Body Part Examined WRIST) and a bundle with a DenseNet-169 abnormality
model at 320 × 320, letterbox, random weights (timing does not depend on the weights).
Then, in this process, it reports as JSON:

- ``cold_ms``: first analysis with a new :class:`inference.engine.Engine`: open the
  study (scan, decode, default-window render), model load (sha256, safetensors, build),
  Grad-CAM set-up, probabilities and CAMs on the image grid. The imports of torch and
  pytorch-grad-cam are not included (``gradcam_import_ms`` is reported apart: the engine
  imports it on the first CAM, the viewer can do it at start-up in the background).
- ``warm_ms``: the same with the model loaded (median of ``--repeats``), with its parts
  ``open_ms`` (scan + decode + render), ``probabilities_ms`` (open → every probability
  known) and the rest (CAMs mapped back to 2500 × 2048).
- ``naive_ms``: the naive pipeline, same work, in the same run: model built and loaded per
  request, the full-resolution image normalised and resized in float with torch, one
  forward pass for the probabilities, then a new ``GradCAM`` object per image (used as a
  context manager) with a full backward pass, CAM resized with cv2.
- ``speedup`` = naive / warm. Targets: warm ≤ 1500 ms on a 2-core CPU, speedup ≥ 2.

``--bundle DIR``: the same study through a real bundle (e.g. the default one) instead of
the random DenseNet-169: its router, its model at its own input size, the LayerCAM/Grad-CAM
it names and its box head. So that the maps and boxes are timed on every view (the engine
skips both below the doubt band, and the synthetic films score low), the bench lowers each
model's doubt band to 0 in memory; the box head's own thresholds are kept. ``warm_ms`` of
the default bundle is the figure of the fracture-model issue (target ≤ 300 ms), and
``boxes`` counts the boxes found.

``predict``: ``radview predict`` in a fresh process on 12 images (3 MURA-layout studies of
4 PNGs, 512 × 416) with an EfficientNet-Lite0 bundle at 224 px and ``--cams``:
``images_per_s`` over the whole command (start-up included) and over the scoring loop
alone, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
INPUT = 320
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # bundle_factory
sys.path.insert(0, str(REPO / "bench"))  # synthetic

from synthetic import COLS, ROWS, radiograph_frame, write_study  # noqa: E402


def build_study() -> Path:
    return write_study(OUT / "inference_study", 3, body_part="WRIST")


def build_bundle(name: str, arch: str, size: int, resize: str):
    from bundle_factory import make_bundle

    from inference.bundle import Bundle, BundleError

    path = OUT / name
    try:
        return Bundle.load(path)
    except BundleError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
    return make_bundle(path, arch=arch, input_size=size, resize=resize, router_classes=None,
                       name=name)


def open_study(folder: Path):
    """Scan, decode and render every image in its default window (what the viewer does)."""
    from viewer import loader
    from viewer.analysis import build_inputs

    (study,) = loader.scan([folder]).studies
    inputs, errors = build_inputs(study)
    assert not errors, errors
    return inputs


def engine_run(engine, folder: Path) -> dict:
    t0 = time.perf_counter()
    inputs = open_study(folder)
    t_open = time.perf_counter()
    marks: dict[str, float] = {}

    def progress(done, total, message):
        if message.startswith("mapping") and "probabilities" not in marks:
            marks["probabilities"] = time.perf_counter()

    result = engine.analyze(inputs, cams=True, progress=progress)
    t_end = time.perf_counter()
    # A view below the doubt band has no map (issue 14): None is an answer too.
    assert result.supported and all(r.cam is None or r.cam.shape == (ROWS, COLS)
                                    for r in result.images)
    return {"total_ms": (t_end - t0) * 1e3, "open_ms": (t_open - t0) * 1e3,
            "probabilities_ms": (marks["probabilities"] - t0) * 1e3,
            "probabilities": [r.probability for r in result.images],
            "maps": sum(r.cam is not None for r in result.images),
            "boxes": sum(len(r.boxes or []) for r in result.images)}


def naive_run(bundle, folder: Path) -> dict:
    """The straightforward pipeline (see the module notes)."""
    import cv2
    import pydicom
    import torch
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from safetensors.torch import load_file

    from inference.models import build_model, get_layer

    spec = bundle.manifest.abnormality_models[bundle.manifest.routing["WRIST"]]
    size = spec.input.size[0]
    t0 = time.perf_counter()
    model = build_model(spec.architecture, 1)
    model.load_state_dict(load_file(bundle.path / spec.weights))  # box head: apart
    model.eval()
    mean = torch.tensor(spec.input.mean).view(3, 1, 1)
    std = torch.tensor(spec.input.std).view(3, 1, 1)
    tensors = []
    for path in sorted(folder.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        arr = torch.from_numpy(ds.pixel_array.astype(np.float32))
        center, width = float(ds.WindowCenter), float(ds.WindowWidth)
        img = ((arr - (center - 0.5)) / (width - 1) + 0.5).clamp(0, 1)  # full-res float
        h, w = img.shape
        scale = size / max(h, w)
        nh, nw = round(h * scale), round(w * scale)
        small = torch.nn.functional.interpolate(img[None, None], (nh, nw), mode="bilinear",
                                                antialias=True)[0, 0]
        canvas = torch.zeros(size, size)
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[top:top + nh, left:left + nw] = small
        tensors.append(((canvas.expand(3, -1, -1) - mean) / std, (h, w, top, left, nh, nw)))
    with torch.no_grad():
        logits = model(torch.stack([t for t, _ in tensors]))
    probs = torch.sigmoid(logits[:, 0] / spec.temperature).tolist()
    for x, (h, w, top, left, nh, nw) in tensors:
        with GradCAM(model=model, target_layers=[get_layer(model, spec.cam_target_layer)]) as cam:
            grayscale = cam(input_tensor=x[None], targets=[ClassifierOutputTarget(0)])[0]
        cv2.resize(grayscale[top:top + nh, left:left + nw], (w, h))
    return {"total_ms": (time.perf_counter() - t0) * 1e3, "probabilities": probs}


def bench_predict() -> dict:
    from PIL import Image

    root = OUT / "predict_mura"
    if len(list(root.rglob("*.png"))) != 12:
        for s in range(3):
            study = root / "valid" / "XR_WRIST" / f"patient{s + 1:05d}" / "study1_positive"
            study.mkdir(parents=True, exist_ok=True)
            for k in range(4):
                frame = radiograph_frame(10 * s + k, 512, 416)
                Image.fromarray((frame >> 4).astype(np.uint8)).save(study / f"image{k + 1}.png")
    bundle = build_bundle("bench_lite0_224", "efficientnet_lite0", 224, "stretch")
    cams = OUT / "predict_cams"
    # The child reports its own peak RSS (VmHWM of its fresh address space): the parent's
    # rusage would count the pages it shared at fork time.
    child = ("import sys\nfrom viewer.cli import main\ncode = main(sys.argv[1:])\n"
             "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
             "print('PEAK_RSS_KB', hwm[0].split()[1] if hwm else 0, file=sys.stderr)\n"
             "sys.exit(code)")
    cmd = [sys.executable, "-c", child, "predict", str(root), "--bundle", str(bundle.path),
           "--cams", str(cams), "--no-progress", "-v"]
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"radview predict failed ({res.returncode}):\n{res.stderr}")
    peak = re.search(r"PEAK_RSS_KB (\d+)", res.stderr)
    rss = int(peak.group(1)) / 1024 if peak else float("nan")
    match = re.search(r"scored (\d+) of (\d+) studies \((\d+) images\) in ([\d.]+) s",
                      res.stderr)
    images = int(match.group(3))
    loop = float(match.group(4))
    return {"images": images, "model": "efficientnet_lite0 @ 224 px, random weights, --cams",
            "image_size": [512, 416], "wall_s": round(wall, 2),
            "images_per_s": round(images / wall, 2),
            "scoring_loop_s": loop, "images_per_s_scoring": round(images / max(loop, 1e-9), 2),
            "peak_rss_mb": round(rss, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-predict", action="store_true")
    parser.add_argument("--bundle", help="time this bundle instead of a random DenseNet-169")
    args = parser.parse_args()

    import torch

    from inference.engine import Engine

    folder = build_study()
    from inference.bundle import Bundle

    if args.bundle:
        import dataclasses

        bundle = Bundle.load(args.bundle)
        models = bundle.manifest.abnormality_models
        for key, spec in list(models.items()):  # maps and boxes on every view (see notes)
            models[key] = dataclasses.replace(spec, doubt_threshold=0.0)
        spec = models[bundle.manifest.routing["WRIST"]]
        label = (f"{bundle.manifest.name} {bundle.manifest.version}: {spec.architecture} @ "
                 f"{spec.input.size[0]} px, {spec.cam_method}"
                 + (", box head" if spec.box_head else ""))
    else:
        bundle = build_bundle("bench_densenet169_320", "densenet169", INPUT, "letterbox")
        label = f"densenet169 @ {INPUT}x{INPUT} letterbox, random weights"

    t0 = time.perf_counter()
    import pytorch_grad_cam  # noqa: F401 - imported lazily by the engine; timed apart

    gradcam_import_ms = (time.perf_counter() - t0) * 1e3
    t0 = time.perf_counter()
    # validation (sha256) counted as cold
    engine = Engine(bundle if args.bundle else Bundle.load(bundle.path), "cpu")
    engine_run(engine, folder)
    cold_ms = (time.perf_counter() - t0) * 1e3
    warm = [engine_run(engine, folder) for _ in range(args.repeats)]
    naive = [naive_run(bundle, folder) for _ in range(args.repeats)]
    warm_ms = statistics.median(r["total_ms"] for r in warm)
    target_ms = 300 if args.bundle else 1500  # the fracture-model issue's figure for a bundle
    naive_ms = statistics.median(r["total_ms"] for r in naive)
    diff = max(abs(a - b) for a, b in zip(warm[0]["probabilities"], naive[0]["probabilities"],
                                          strict=True))
    report = {
        "device": str(engine.device), "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "study": {"images": 3, "size": [ROWS, COLS], "bits_stored": 12},
        "model": label,
        "maps": warm[0]["maps"], "boxes": warm[0]["boxes"],
        "cold_ms": round(cold_ms, 1),
        "gradcam_import_ms": round(gradcam_import_ms, 1),
        "warm_ms": round(warm_ms, 1),
        "warm_open_ms": round(statistics.median(r["open_ms"] for r in warm), 1),
        "warm_probabilities_ms": round(statistics.median(r["probabilities_ms"] for r in warm), 1),
        "naive_ms": round(naive_ms, 1),
        "speedup": round(naive_ms / warm_ms, 2),
        "max_probability_difference_vs_naive": round(diff, 4),
        "targets": {"warm_ms_max": target_ms, "speedup_min": 2.0,
                    "met": warm_ms <= target_ms and naive_ms / warm_ms >= 2.0},
    }
    if not args.skip_predict:
        report["predict"] = bench_predict()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
