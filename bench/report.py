"""Export time of the PDF report for a 4-view 2k study, and the report's size.

Usage::

    python bench/report.py [--repeats 3]

Uses (building it once under ``bench/out/``) the benchmarks' 4-image study of 2500×2048,
12-bit stored radiograph-like DICOM frames, decodes it and gives each view a synthetic
Grad-CAM map (a smooth blob, as the engine returns: float32 on the image grid), then times
what **File → Export report…** does after the study is open and scored:

- ``gather_ms``: :func:`viewer.report.gather` (each view rendered in its window, downscaled
  to what the page needs, heat map blended, sha256 of the four files, Burned In Annotation);
- ``paint_write_ms``: :func:`viewer.qt.report_pdf.write_pdf` (two layout passes, painting,
  Qt's image compression, the atomic write);
- ``export_ms``: the two together — the median over ``--repeats`` runs is the headline
  (target: ≤ 2000 ms on a 2-core CPU).

Also printed: ``size_bytes`` and ``pages`` of the report, the effective resolution of the
view images (``dpi_min``/``dpi_max``), and the machine's CPU count. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from synthetic import COLS, ROWS, write_study

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"


def synthetic_cam(rows: int, cols: int, seed: int) -> np.ndarray:
    """A Grad-CAM-like map in [0, 1]: one soft blob, placed by ``seed``."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    y = np.linspace(0, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, cols, dtype=np.float32)[None, :]
    return np.exp(-(((x - cx) / 0.18) ** 2 + ((y - cy) / 0.18) ** 2)).astype(np.float32)


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--repeats", type=int, default=3)
    opts = args.parse_args(argv)

    sys.path.insert(0, str(HERE.parent))
    from viewer.qt.report_pdf import ensure_application, image_max_side, write_pdf

    ensure_application()
    from inference.engine import ImageResult, StudyResult
    from viewer import loader, pixels
    from viewer.display import DisplayPipeline
    from viewer.report import ViewSnapshot, gather

    folder = write_study(OUT / "study_uncompressed", 4, body_part="HAND")
    scan = loader.scan([folder])
    study = scan.studies[0]
    patient = scan.patients[0]
    snaps = []
    for i, ref in enumerate(study.images):
        decoded = pixels.decode(ref)
        h, w = decoded.stored.shape
        snaps.append(ViewSnapshot(ref, DisplayPipeline(decoded.stored, decoded.spec),
                                  cam=synthetic_cam(h, w, i)))
    probs = [0.31, 0.62, 0.74, 0.55]
    result = StudyResult("HAND", "tag", True, None, "mura", float(np.mean(probs)), "abnormal",
                         0.5, [], [ImageResult(str(s.ref.path), "HAND", "tag", None, p, s.cam)
                                   for s, p in zip(snaps, probs, strict=True)])

    gathers, paints, totals = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(os.environ.get("RADVIEW_BENCH_REPORT", Path(tmp) / "report.pdf"))
        for _ in range(max(1, opts.repeats)):
            t0 = time.perf_counter()
            data = gather(study, patient, snaps, ai_result=result,
                          impression="Benchmark impression.", max_side=image_max_side())
            t1 = time.perf_counter()
            written = write_pdf(data, target)
            t2 = time.perf_counter()
            gathers.append((t1 - t0) * 1000)
            paints.append((t2 - t1) * 1000)
            totals.append((t2 - t0) * 1000)
        views = [p.dpi for p in written.images if p.kind in ("displayed", "overlay")]
        out = {
            "study": f"4 × {ROWS}×{COLS} 12-bit DICOM, synthetic CAMs",
            "repeats": len(totals),
            "export_ms": round(statistics.median(totals), 1),
            "gather_ms": round(statistics.median(gathers), 1),
            "paint_write_ms": round(statistics.median(paints), 1),
            "export_ms_all": [round(t, 1) for t in totals],
            "target_ms": 2000,
            "size_bytes": written.size,
            "pages": written.pages,
            "dpi_min": round(min(views), 1),
            "dpi_max": round(max(views), 1),
            "cpus": os.cpu_count(),
        }
    print(json.dumps(out, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
