"""Tiny training data written inside the tests: a MURA-v1.1 tree exactly as distributed, a
generic CSV manifest and a FracAtlas subset.

Images are small (default 40 × 48 px) so that a whole train → evaluate → export cycle
runs in seconds. Abnormal images carry a bright disc on a noisy background, normal ones
only the noise, so that even one epoch learns something; images are alternately stored
as 8-bit grayscale and as RGB with equal channels, as in MURA.

>>> root = make_mura(tmp_path)               # tmp_path/MURA-v1.1/...
>>> csv_path = make_csv(tmp_path / "csvdata", rows=[...])
>>> fa = make_fracatlas(tmp_path / "fa", 40)  # 40 real FracAtlas images
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from dicom_factory import make_png

FRACATLAS = Path("/work/shared/datasets/fracatlas")

#: Parts of the tiny MURA tree and patients per split.
MURA_PARTS = ("WRIST", "HAND", "ELBOW")


def radiograph(abnormal: bool, seed: int, rows: int = 40, cols: int = 48) -> np.ndarray:
    """uint8 noise, plus a bright disc when ``abnormal``."""
    rng = np.random.default_rng(seed)
    img = rng.normal(70, 20, (rows, cols))
    if abnormal:
        yy, xx = np.mgrid[:rows, :cols]
        cy, cx = rng.integers(10, rows - 10), rng.integers(10, cols - 10)
        img[(yy - cy) ** 2 + (xx - cx) ** 2 < 36] += 140
    return np.clip(img, 0, 255).astype(np.uint8)


def make_mura(root: Path, *, patients: dict[str, int] | None = None,
              parts: Sequence[str] = MURA_PARTS, rows: int = 40, cols: int = 48) -> Path:
    """Write ``root/MURA-v1.1`` with both splits and the four CSVs as distributed.

    Each patient has one study per part: ``study1_positive`` for odd patients,
    ``study1_negative`` for even ones, of 1–3 images (patient-dependent). The CSVs have
    no header, image rows ``MURA-v1.1/<split>/XR_<PART>/patientNNNNN/studyN_x/imageK.png``
    and study rows with a trailing slash and the label.

    Returns
    -------
    pathlib.Path
        ``root / "MURA-v1.1"``.
    """
    patients = patients or {"train": 8, "valid": 4}
    base = root / "MURA-v1.1"
    number = 1
    seed = 0
    for split, count in patients.items():
        image_lines, study_lines = [], []
        for _ in range(count):
            pid = f"patient{number:05d}"
            abnormal = number % 2 == 1
            for part in parts:
                study = f"study1_{'positive' if abnormal else 'negative'}"
                rel = f"{split}/XR_{part}/{pid}/{study}"
                study_lines.append(f"MURA-v1.1/{rel}/,{int(abnormal)}\n")
                for k in range(1, 2 + number % 3):
                    seed += 1
                    px = radiograph(abnormal, seed, rows, cols)
                    mode = "RGB" if seed % 2 else "L"
                    pixels = np.stack([px] * 3, axis=-1) if mode == "RGB" else px
                    make_png(base / rel / f"image{k}.png", rows=rows, cols=cols, mode=mode,
                             pixels=pixels)
                    image_lines.append(f"MURA-v1.1/{rel}/image{k}.png\n")
            number += 1
        (base / f"{split}_image_paths.csv").write_text("".join(image_lines))
        (base / f"{split}_labeled_studies.csv").write_text("".join(study_lines))
    return base


def make_csv(folder: Path, rows: Sequence[dict[str, str]], *,
             header: Sequence[str] = ("path", "label", "body_part", "study_id", "patient_id"),
             images: bool = True, name: str = "manifest.csv") -> Path:
    """Write a CSV manifest (and, with ``images``, a small PNG for every row's path)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        for i, row in enumerate(rows):
            w.writerow([row.get(c, "") for c in header])
            if images and row.get("path"):
                make_png(folder / row["path"], rows=40, cols=48,
                         pixels=radiograph(row.get("label") == "1", i))
    return path


def make_fracatlas(folder: Path, count: int = 40, *,
                   rows: Sequence[dict[str, str]] | None = None) -> Path:
    """Copy real FracAtlas images with their manifest rows into ``folder``: the first
    ``count`` rows of the shared manifest, or the given ``rows`` of it."""
    with open(FRACATLAS / "manifest.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(rows) if rows is not None else list(reader)[:count]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy2(FRACATLAS / r["file"], folder / r["file"])
    with open(folder / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=header)
        w.writeheader()
        w.writerows(rows)
    return folder
