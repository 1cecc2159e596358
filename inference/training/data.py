"""Training data: MURA-v1.1, a generic CSV manifest and FracAtlas; splits; the image cache.

Formats (:func:`load_samples`)
------------------------------
``mura``
    MURA-v1.1 exactly as distributed (Rajpurkar et al. 2017): ``train_image_paths.csv``,
    ``train_labeled_studies.csv``, ``valid_image_paths.csv``, ``valid_labeled_studies.csv``,
    no header rows, paths starting with ``MURA-v1.1/``, study rows such as
    ``MURA-v1.1/train/XR_SHOULDER/patient00001/study1_positive/,1`` (trailing slash; label
    1 = abnormal). The body part comes from ``XR_<PART>``, the patient from
    ``patientNNNNN``, the split from the file (MURA's own ``valid`` split is kept). The
    data path may be the folder holding ``MURA-v1.1/`` or ``MURA-v1.1/`` itself.
``csv``
    A manifest with a header row; columns (any order, extra columns ignored):

    ==============  =========  ==============================================================
    column          required   meaning
    ==============  =========  ==============================================================
    ``path``        yes        image file, relative to the CSV's folder (or absolute)
    ``label``       yes        1 abnormal, 0 normal; may be empty for router-only data
    ``body_part``   yes        body part (normalized: ``THUMB`` → ``FINGER``, ``KNEE`` kept)
    ``study_id``    yes        images of one study share it
    ``patient_id``  no         splits keep a patient's studies together
    ``split``       no         ``train`` or ``valid``: a fixed split instead of a random one
    ``confidence``  no         ``H``, ``M`` or ``L``: how sure the body-part label is
    ==============  =========  ==============================================================
``fracatlas``
    ``manifest.csv`` of the FracAtlas subset (``file``, ``image_id``, ``fractured``,
    ``body_part``, ``body_part_confidence`` …). There are no patient or study ids: each
    image is its own study, and splits keep blocks of consecutive image ids together
    (``IMG0000000`` … ``IMG0000049`` is block 0 with ``block_size=50``), since
    consecutive ids often come from one patient or visit.

Splits (:func:`split_samples`)
------------------------------
Never image by image: the unit is the sample's :attr:`Sample.group` (the patient where
known, else the study, else the id block). A group goes to validation when a hash of
``(seed, group)`` falls below the validation fraction, so a group's side does not depend
on which other images are present (``--limit`` or ``--parts`` never move an image across
the split, and ``radview evaluate`` re-derives the same split). MURA and CSVs with a
``split`` column keep their fixed split. ``holdout`` carves a *selection* split out of
the training groups the same way: model selection, temperature and thresholds are then
fitted on it, and the validation split is touched only for the reported metrics.

Files listed but missing raise one :class:`MissingFilesError` listing the first few and
the count. Images that exist but cannot be decoded are logged, skipped and counted
(:class:`CacheInfo.errors`), never silently dropped.

Image cache (:func:`build_cache`)
---------------------------------
Decoded images, converted to 8-bit grayscale and resized to the model input with the
same code the engine uses (:func:`inference.preprocess.resize_uint8`), are kept in one
``uint8`` ``.npy`` file of shape ``(N, height, width)`` under the cache folder, memory
mapped while training. Its name is a hash of every file's path, size and modification
time plus the size and resize mode, so a changed file or another size makes a new cache
and epochs after the first never decode an image again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import os
import re
import secrets
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from inference.bodyparts import MURA_PARTS, normalize_body_part
from inference.errors import InferenceError
from inference.preprocess import InputSpec, resize_uint8

log = logging.getLogger(__name__)

FORMATS = ("mura", "csv", "fracatlas")
#: ``--parts upper``: the MURA parts plus FracAtlas's ARM (most of an upper limb).
UPPER_LIMB = (*MURA_PARTS, "ARM")
#: The router class for anything that is not an upper-limb part.
OTHER = "OTHER"
MURA_DIR = "MURA-v1.1"
MURA_FILES = ("train_image_paths.csv", "train_labeled_studies.csv",
              "valid_image_paths.csv", "valid_labeled_studies.csv")
CSV_REQUIRED = ("path", "label", "body_part", "study_id")
CSV_OPTIONAL = ("patient_id", "split", "confidence")
CONFIDENCES = ("H", "M", "L")
SPLITS = ("train", "valid")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp"})
#: Missing files named in the error message (the rest are counted).
LIST_LIMIT = 10
#: Version of the cache layout (part of the cache key).
CACHE_VERSION = 1

MURA_CITATION = ("Rajpurkar P, Irvin J, Bagul A, et al. MURA: Large Dataset for Abnormality "
                 "Detection in Musculoskeletal Radiographs. arXiv:1712.06957 (2017).")
FRACATLAS_CITATION = ("Abedeen I, Rahman MA, Prottyasha FZ, et al. FracAtlas: A Dataset for "
                      "Fracture Classification, Localization and Segmentation of "
                      "Musculoskeletal Radiographs. Scientific Data 10, 521 (2023). "
                      "https://doi.org/10.1038/s41597-023-02432-4 (CC BY 4.0)")


class DataError(InferenceError):
    """The training or evaluation data cannot be used; the message says which file and why."""


class MissingFilesError(DataError):
    """Files the data lists that do not exist.

    Attributes
    ----------
    missing
        Every missing path.
    """

    def __init__(self, source: str | Path, missing: Sequence[Path]) -> None:
        self.missing = list(missing)
        shown = "\n".join(f"  {p}" for p in self.missing[:LIST_LIMIT])
        more = (f"\n  … and {len(self.missing) - LIST_LIMIT} more"
                if len(self.missing) > LIST_LIMIT else "")
        super().__init__(f"{source}: {len(self.missing)} listed image file(s) do not exist:\n"
                         f"{shown}{more}")


@dataclass(frozen=True)
class Sample:
    """One image of the data.

    Attributes
    ----------
    path
        The image file (absolute).
    study
        Study id; images of one study are scored together (mean probability).
    part
        Body part, upper case: a MURA part, FracAtlas's ``ARM``, ``OTHER``, or any other
        normalized name from a CSV.
    group
        The unit splits keep together: patient, else study, else id block.
    abnormal
        1 abnormal (fractured), 0 normal, None unknown.
    patient
        Patient id, when known.
    confidence
        How sure the body-part label is (``H``, ``M``, ``L``), when given.
    split
        A fixed split (``train``/``valid``) from the data, or None for a random one.
    """

    path: Path
    study: str
    part: str
    group: str
    abnormal: int | None = None
    patient: str | None = None
    confidence: str | None = None
    split: str | None = None


@dataclass
class LoadedData:
    """Samples and what the data is."""

    samples: list[Sample]
    format: str
    root: Path
    description: str
    citation: str = ""
    license: str = ""


@dataclass
class Splits:
    """Train, selection (model selection and calibration) and validation samples.

    ``select`` is ``valid`` itself unless a holdout was carved out of train.
    """

    train: list[Sample]
    select: list[Sample]
    valid: list[Sample]

    @property
    def select_is_valid(self) -> bool:
        return self.select is self.valid

    def named(self, name: str) -> list[Sample]:
        """``"train"``, ``"select"``, ``"valid"`` or ``"all"``."""
        if name == "all":
            seen: dict[Path, Sample] = {}
            for s in (*self.train, *self.select, *self.valid):
                seen.setdefault(s.path, s)
            return list(seen.values())
        return {"train": self.train, "select": self.select, "valid": self.valid}[name]


# ------------------------------------------------------------------------- formats


def load_samples(path: str | os.PathLike[str], fmt: str, *,
                 block_size: int = 50, check_files: bool = True) -> LoadedData:
    """Read a dataset's listing (no image is decoded here).

    Parameters
    ----------
    path
        ``mura``: the folder holding ``MURA-v1.1/`` or that folder; ``csv``: the CSV file;
        ``fracatlas``: the folder holding ``manifest.csv`` (or the file).
    fmt
        One of :data:`FORMATS`.
    block_size
        FracAtlas: consecutive image ids per split block (≥ 1).
    check_files
        Raise :class:`MissingFilesError` when listed images do not exist.

    Returns
    -------
    LoadedData

    Raises
    ------
    DataError
        For an unreadable or malformed listing (the message names the file, row and
        column), or :class:`MissingFilesError`.
    """
    path = Path(path)
    if fmt == "mura":
        data = _load_mura(path)
    elif fmt == "csv":
        data = _load_csv(path)
    elif fmt == "fracatlas":
        data = _load_fracatlas(path, block_size)
    else:
        raise DataError(f"unknown data format {fmt!r} (known: {', '.join(FORMATS)})")
    if not data.samples:
        raise DataError(f"{path}: the {fmt} listing names no images")
    if check_files:
        missing = [s.path for s in data.samples if not s.path.is_file()]
        if missing:
            raise MissingFilesError(path, missing)
    counts = Counter(s.part for s in data.samples)
    log.info("%s data at %s: %d images, %d studies (%s)", fmt, path, len(data.samples),
             len({s.study for s in data.samples}),
             ", ".join(f"{p} {n}" for p, n in sorted(counts.items())))
    return data


def _read_rows(path: Path) -> list[list[str]]:
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return [row for row in csv.reader(f) if row and any(c.strip() for c in row)]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: cannot be read ({exc})") from None


def mura_root(path: Path) -> Path:
    """The folder holding MURA's four CSV files (``--data`` may name its parent)."""
    for candidate in (path / MURA_DIR, path):
        if (candidate / MURA_FILES[0]).is_file():
            return candidate
    raise DataError(f"{path}: not a MURA-v1.1 folder: expected {MURA_FILES[0]} in it or in "
                    f"{path / MURA_DIR}")


def _mura_relative(root: Path, listed: str) -> Path:
    # Listed paths start with "MURA-v1.1/": drop that first component, whatever the folder
    # is called on disk now.
    parts = [p for p in listed.strip().replace("\\", "/").split("/") if p]
    if parts and parts[0] not in SPLITS:
        parts = parts[1:]
    return root.joinpath(*parts)


_MURA_STUDY = re.compile(r"(?:^|/)(train|valid)/XR_([A-Z]+)/(patient\d+)/(study\d+[^/]*)/?$")


def _load_mura(path: Path) -> LoadedData:
    root = mura_root(path)
    samples: list[Sample] = []
    for split in SPLITS:
        studies: dict[str, int] = {}
        labels_file = root / f"{split}_labeled_studies.csv"
        for n, row in enumerate(_read_rows(labels_file), start=1):
            if len(row) != 2 or row[1].strip() not in ("0", "1"):
                raise DataError(f"{labels_file}: row {n}: expected 'study folder/,0|1' "
                                f"(MURA has no header row), got {','.join(row)!r}")
            studies[row[0].strip().rstrip("/")] = int(row[1])
        images_file = root / f"{split}_image_paths.csv"
        for n, row in enumerate(_read_rows(images_file), start=1):
            listed = row[0].strip()
            study_key = listed.rsplit("/", 1)[0]
            m = _MURA_STUDY.search(study_key)
            if len(row) != 1 or m is None:
                raise DataError(f"{images_file}: row {n}: expected a path like MURA-v1.1/"
                                f"{split}/XR_WRIST/patient00001/study1_positive/image1.png, "
                                f"got {','.join(row)!r}")
            if study_key not in studies:
                raise DataError(f"{images_file}: row {n}: study {study_key}/ is not in "
                                f"{labels_file.name}")
            part = normalize_body_part(m.group(2)) or m.group(2)
            samples.append(Sample(path=_mura_relative(root, listed), study=study_key,
                                  part=part, group=f"mura:{m.group(3)}",
                                  abnormal=studies[study_key], patient=m.group(3),
                                  split=split))
    return LoadedData(samples, "mura", root, "MURA v1.1 (Stanford ML Group)", MURA_CITATION,
                      "MURA Research Use Agreement (non-commercial research use)")


def _load_csv(path: Path) -> LoadedData:
    if path.is_dir():
        raise DataError(f"{path}: --format csv needs the CSV file, not a folder")
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path}: empty CSV")
    header = [h.strip().lower() for h in rows[0]]
    missing = [c for c in CSV_REQUIRED if c not in header]
    if missing:
        looks_like_data = any(Path(h).suffix.lower() in IMAGE_SUFFIXES for h in header)
        hint = (" (the first row looks like data: a header row is required)"
                if looks_like_data else "")
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}{hint}; the header "
                        f"has {', '.join(rows[0])}; required: {', '.join(CSV_REQUIRED)}, "
                        f"optional: {', '.join(CSV_OPTIONAL)}")
    col = {name: header.index(name) for name in (*CSV_REQUIRED, *CSV_OPTIONAL)
           if name in header}
    base = path.parent
    samples = []
    problems = []
    for n, row in enumerate(rows[1:], start=2):
        def get(name: str, row: list[str] = row) -> str:
            i = col.get(name)
            return row[i].strip() if i is not None and i < len(row) else ""

        where = f"row {n}"
        image, label, part, study = get("path"), get("label"), get("body_part"), get("study_id")
        if not image or not study or not part:
            problems.append(f"{where}: path, body_part and study_id must not be empty")
            continue
        if label not in ("", "0", "1"):
            problems.append(f"{where}: label must be 0, 1 or empty, got {label!r}")
            continue
        split = get("split").lower() or None
        if split is not None and split not in SPLITS:
            problems.append(f"{where}: split must be train or valid, got {split!r}")
            continue
        confidence = get("confidence").upper() or None
        if confidence is not None and confidence not in CONFIDENCES:
            problems.append(f"{where}: confidence must be H, M or L, got {confidence!r}")
            continue
        patient = get("patient_id") or None
        p = Path(image)
        samples.append(Sample(path=p if p.is_absolute() else base / p, study=study,
                              part=normalize_body_part(part) or part.upper(),
                              group=f"patient:{patient}" if patient else f"study:{study}",
                              abnormal=int(label) if label else None, patient=patient,
                              confidence=confidence, split=split))
    if problems:
        shown = "\n".join(f"  {p}" for p in problems[:LIST_LIMIT])
        more = f"\n  … and {len(problems) - LIST_LIMIT} more" if len(problems) > LIST_LIMIT else ""
        raise DataError(f"{path}: {len(problems)} bad row(s):\n{shown}{more}")
    return LoadedData(samples, "csv", base, f"CSV manifest {path.name}")


_IMAGE_NUMBER = re.compile(r"(\d+)")


def _load_fracatlas(path: Path, block_size: int) -> LoadedData:
    if block_size < 1:
        raise DataError(f"block size must be at least 1, got {block_size}")
    manifest = path / "manifest.csv" if path.is_dir() else path
    rows = _read_rows(manifest)
    if not rows:
        raise DataError(f"{manifest}: empty")
    header = [h.strip() for h in rows[0]]
    needed = ("file", "image_id", "fractured", "body_part", "body_part_confidence")
    missing = [c for c in needed if c not in header]
    if missing:
        raise DataError(f"{manifest}: missing FracAtlas column(s) {', '.join(missing)} "
                        f"(header: {', '.join(header)})")
    col = {c: header.index(c) for c in needed}
    samples = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < len(header):
            raise DataError(f"{manifest}: row {n}: {len(row)} fields, the header has "
                            f"{len(header)}")
        image_id = row[col["image_id"]].strip()
        number = _IMAGE_NUMBER.search(image_id)
        fractured = row[col["fractured"]].strip()
        confidence = row[col["body_part_confidence"]].strip().upper() or None
        if number is None or fractured not in ("0", "1") or (
                confidence is not None and confidence not in CONFIDENCES):
            raise DataError(f"{manifest}: row {n}: bad image_id {image_id!r}, fractured "
                            f"{fractured!r} or body_part_confidence {confidence!r}")
        block = int(number.group(1)) // block_size
        samples.append(Sample(path=manifest.parent / row[col["file"]].strip(),
                              study=f"fracatlas:{Path(image_id).stem}",
                              part=row[col["body_part"]].strip().upper(),
                              group=f"block:{block}", abnormal=int(fractured),
                              confidence=confidence))
    return LoadedData(samples, "fracatlas", manifest.parent,
                      "FracAtlas subset (changes made: see the dataset README)",
                      FRACATLAS_CITATION, "CC-BY-4.0")


def other_samples(folder: str | os.PathLike[str]) -> list[Sample]:
    """Out-of-scope images (any image file under ``folder``) as router class ``OTHER``.

    Each image is its own study; images in one folder form one split group.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: --other must be a folder of images")
    files = sorted(p for p in folder.rglob("*")
                   if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"{folder}: no image files (png, jpg, tif, bmp) found")
    return [Sample(path=p, study=f"other:{p.relative_to(folder).as_posix()}", part=OTHER,
                   group=f"other:{p.parent.relative_to(folder).as_posix()}") for p in files]


# -------------------------------------------------------------------------- subsets


def parse_parts(text: str | None) -> tuple[str, ...] | None:
    """``--parts``: comma-separated part names, ``upper`` for :data:`UPPER_LIMB`."""
    if not text:
        return None
    out: list[str] = []
    for item in text.split(","):
        name = item.strip().upper().replace(" ", "_")
        if not name:
            continue
        if name == "UPPER":
            out += [p for p in UPPER_LIMB if p not in out]
        elif name not in out:
            out.append(name)
    return tuple(out) or None


def filter_parts(samples: Sequence[Sample], parts: Sequence[str] | None) -> list[Sample]:
    """The samples whose :attr:`Sample.part` is one of ``parts`` (all when None)."""
    if not parts:
        return list(samples)
    wanted = set(parts)
    kept = [s for s in samples if s.part in wanted]
    if not kept:
        found = ", ".join(sorted({s.part for s in samples}))
        raise DataError(f"no images of part(s) {', '.join(parts)} (the data has: {found})")
    return kept


def limit_samples(samples: Sequence[Sample], limit: int | None, seed: int) -> list[Sample]:
    """A seeded random subset of about ``limit`` images, whole studies at a time (debugging).

    Studies are drawn in a random order until ``limit`` images are reached; the result
    keeps the input order.
    """
    if not limit or limit >= len(samples):
        return list(samples)
    by_study: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_study.setdefault(s.study, []).append(i)
    studies = sorted(by_study)
    order = np.random.default_rng(seed).permutation(len(studies))
    chosen: list[int] = []
    for k in order:
        if len(chosen) >= limit:
            break
        chosen += by_study[studies[k]]
    return [samples[i] for i in sorted(chosen)]


def _unit(seed: int, salt: str, group: str) -> float:
    digest = hashlib.sha256(f"{seed}\0{salt}\0{group}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _carve(samples: Sequence[Sample], fraction: float, seed: int,
           salt: str) -> tuple[list[Sample], list[Sample]]:
    """(kept, carved): groups whose hash falls below ``fraction`` are carved out; at least
    one group on each side when there are two or more groups."""
    groups = sorted({s.group for s in samples})
    carved = {g for g in groups if _unit(seed, salt, g) < fraction}
    if fraction > 0 and len(groups) >= 2:
        by_hash = sorted(groups, key=lambda g: _unit(seed, salt, g))
        if not carved:
            carved = {by_hash[0]}
        elif len(carved) == len(groups):
            carved.discard(by_hash[-1])
    return ([s for s in samples if s.group not in carved],
            [s for s in samples if s.group in carved])


def split_samples(samples: Sequence[Sample], *, val_fraction: float = 0.2,
                  holdout: float = 0.0, seed: int = 0) -> Splits:
    """Split by :attr:`Sample.group` (see the module notes), never by image.

    Parameters
    ----------
    samples
        All samples; those with a fixed :attr:`Sample.split` keep it.
    val_fraction
        Share of groups (0–1) sent to validation, for samples without a fixed split.
    holdout
        Share of the training groups (0–1) carved out as the selection split; 0: select on
        the validation split.
    seed
        Changes which groups go where.

    Returns
    -------
    Splits

    Raises
    ------
    DataError
        When a split comes out empty or a group would straddle two splits.
    """
    if not 0.0 <= val_fraction < 1.0 or not 0.0 <= holdout < 1.0:
        raise DataError(f"validation fraction and holdout must be in [0, 1), got "
                        f"{val_fraction} and {holdout}")
    fixed = [s for s in samples if s.split is not None]
    free = [s for s in samples if s.split is None]
    train = [s for s in fixed if s.split == "train"]
    valid = [s for s in fixed if s.split == "valid"]
    if free:
        kept, carved = _carve(free, val_fraction, seed, "valid")
        train += kept
        valid += carved
    select = valid
    if holdout > 0:
        train, select = _carve(train, holdout, seed, "select")
    check_disjoint({"train": train, "select": select, "valid": valid}
                   if select is not valid else {"train": train, "valid": valid})
    for name, part in (("training", train), ("validation", valid), ("selection", select)):
        if not part:
            raise DataError(f"the {name} split is empty ({len(samples)} images in "
                            f"{len({s.group for s in samples})} split groups): use more data "
                            f"or another --val-fraction/--holdout")
    return Splits(train, select, valid)


def check_disjoint(splits: dict[str, Sequence[Sample]]) -> None:
    """Raise :class:`DataError` when a group, study or patient is in two splits."""
    for attr in ("group", "study", "patient"):
        owner: dict[str, str] = {}
        for name, items in splits.items():
            for s in items:
                key = getattr(s, attr)
                if key is None:
                    continue
                if owner.setdefault(key, name) != name:
                    raise DataError(f"{attr} {key} is in both the {owner[key]} and the {name} "
                                    f"split (a fixed split column that splits a "
                                    f"{attr}?)")


def fingerprint(samples: Iterable[Sample], root: Path) -> str:
    """A short hash of the listing (paths relative to ``root``, parts, labels, studies)."""
    digest = hashlib.sha256()
    for s in sorted(samples, key=lambda s: str(s.path)):
        try:
            rel = s.path.relative_to(root).as_posix()
        except ValueError:
            rel = s.path.as_posix()
        digest.update(f"{rel}\0{s.part}\0{s.abnormal}\0{s.study}\n".encode())
    return digest.hexdigest()[:16]


def part_class_weights(samples: Sequence[Sample]) -> dict[str, tuple[float, float]]:
    """MURA's per-part weighted BCE weights from the training images.

    Returns
    -------
    dict
        Part → ``(w_abnormal, w_normal)`` with ``w_abnormal = N / (A + N)`` and
        ``w_normal = A / (A + N)``, where A and N count the part's abnormal and normal
        training *images* (Rajpurkar et al. 2017). A part with only one class gets
        ``(0.5, 0.5)`` (the formula would give its only class weight 0), with a warning.
    """
    counts: dict[str, list[int]] = {}
    for s in samples:
        if s.abnormal is None:
            continue
        c = counts.setdefault(s.part, [0, 0])
        c[s.abnormal] += 1
    weights = {}
    for part, (normal, abnormal) in sorted(counts.items()):
        if normal == 0 or abnormal == 0:
            log.warning("part %s has %d normal and %d abnormal training images: class "
                        "weights 0.5/0.5", part, normal, abnormal)
            weights[part] = (0.5, 0.5)
        else:
            total = normal + abnormal
            weights[part] = (normal / total, abnormal / total)
    return weights


def parse_confidence_weights(text: str | None) -> dict[str, float] | None:
    """``"H=1,M=0.7,L=0.3"`` → ``{"H": 1.0, "M": 0.7, "L": 0.3}``; None when empty."""
    if not text:
        return None
    out = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().upper()
        try:
            number = float(value)
        except ValueError:
            number = float("nan")
        if not sep or key not in CONFIDENCES or not (math.isfinite(number) and number >= 0):
            raise DataError(f"--confidence-weights: expected H=1,M=0.7,L=0.3 (non-negative "
                            f"numbers), got {text!r}")
        out[key] = number
    for key in CONFIDENCES:
        out.setdefault(key, 1.0)
    return out


def router_class(part: str) -> str:
    """The router class of a part: itself for :data:`UPPER_LIMB`, else ``OTHER``."""
    return part if part in UPPER_LIMB else OTHER


class Progress:
    """A small progress bar on stderr (one line, redrawn at most 5 times a second; on a
    non-terminal one line per 10 %)."""

    def __init__(self, total: int, desc: str, enabled: bool = True) -> None:
        self.total, self.desc, self.enabled = max(int(total), 0), desc, enabled
        self.done = 0
        self.start = self._last = time.perf_counter()
        self._tty = sys.stderr.isatty()
        self._decile = -1
        self.postfix = ""

    def update(self, done: int | None = None, postfix: str = "") -> None:
        self.done = self.done + 1 if done is None else done
        self.postfix = postfix or self.postfix
        if not self.enabled:
            return
        now = time.perf_counter()
        if self._tty:
            if now - self._last >= 0.2 or self.done >= self.total:
                self._last = now
                sys.stderr.write("\r" + self._line(now) + "\x1b[K")
                sys.stderr.flush()
        else:
            decile = (10 * self.done // self.total) if self.total else 10
            if decile != self._decile:
                self._decile = decile
                sys.stderr.write(self._line(now) + "\n")
                sys.stderr.flush()

    def __call__(self, done: int, total: int | None = None) -> None:
        """``progress(done, total)`` callbacks (:func:`build_cache`, ``score_samples``)."""
        if total is not None:
            self.total = total
        self.update(done)

    def _line(self, now: float) -> str:
        elapsed = now - self.start
        frac = self.done / self.total if self.total else 1.0
        bar = "#" * int(20 * frac) + "-" * (20 - int(20 * frac))
        eta = elapsed / frac - elapsed if frac > 0 else 0.0
        return (f"{self.desc} [{bar}] {self.done}/{self.total} {elapsed:.0f}s "
                f"(eta {eta:.0f}s) {self.postfix}").rstrip()

    def close(self) -> None:
        if self.enabled and self._tty:
            sys.stderr.write("\r" + self._line(time.perf_counter()) + "\x1b[K\n")
            sys.stderr.flush()


# --------------------------------------------------------------------------- images


def decode_gray(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as ``uint8`` grayscale, as the viewer shows it.

    EXIF orientation is applied; colour is converted to luminance (Pillow ``"L"``, ITU-R
    601-2; RGB files with equal channels come out unchanged); 16-bit and float images
    are scaled from their own minimum–maximum to 0–255.

    Raises
    ------
    OSError, ValueError
        When the file cannot be decoded.
    """
    with Image.open(path) as im:
        im.load()
        im = ImageOps.exif_transpose(im)
        if im.mode in ("I", "F") or im.mode.startswith("I;16"):
            arr = np.asarray(im, dtype=np.float64)
            lo, hi = float(arr.min()), float(arr.max())
            return np.rint((arr - lo) / ((hi - lo) or 1.0) * 255.0).astype(np.uint8)
        if im.mode in ("P", "PA", "LA", "RGBA"):
            im = im.convert("RGB")
        return np.asarray(im.convert("L"), dtype=np.uint8)


@dataclass
class CacheInfo:
    """A built image cache.

    Attributes
    ----------
    path
        The ``.npy`` file, ``uint8`` of shape ``(len(ok), height, width)``.
    ok
        Per sample, whether it decoded; failed rows are zeros.
    errors
        ``(file, reason)`` of every image that could not be decoded.
    hit
        The cache existed already (nothing was decoded).
    """

    path: Path
    ok: np.ndarray
    errors: list[tuple[str, str]] = field(default_factory=list)
    hit: bool = False
    #: ``(rows, columns)`` of each decoded image before resizing (None: failed, or a
    #: cache written before the shapes were recorded).
    shapes: list[tuple[int, int] | None] | None = None

    def open(self) -> np.ndarray:
        """The cached images, memory mapped read-only."""
        return np.load(self.path, mmap_mode="r")


#: ``reader(path) -> uint8 (rows, columns)``: a file as the model sees it before resizing.
ImageReader = Callable[[Path], np.ndarray]


def reader_tag(reader: ImageReader | None) -> str:
    """A reader's name in cache keys: its ``cache_tag`` attribute, else its qualified name
    (:func:`decode_gray` for None). A new way of reading files makes a new cache."""
    if reader is None:
        return "decode_gray"
    tag = getattr(reader, "cache_tag", None)
    if isinstance(tag, str) and tag:
        return tag
    return f"{getattr(reader, '__module__', '?')}.{getattr(reader, '__qualname__', repr(reader))}"


def cache_key(samples: Sequence[Sample], spec: InputSpec,
              reader: ImageReader | None = None) -> str:
    """Hash of every file's path, size and mtime, plus the input size, resize mode and the
    image reader (:func:`reader_tag`)."""
    tag = "" if reader is None else f" {reader_tag(reader)}"  # old caches stay valid
    digest = hashlib.sha256(f"v{CACHE_VERSION} {spec.size} {spec.resize}{tag}\n".encode())
    for s in samples:
        st = s.path.stat()
        digest.update(f"{s.path.resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def default_cache_dir() -> Path:
    """``RADVIEW_CACHE_DIR`` or ``<user cache dir>/radview/train``."""
    override = os.environ.get("RADVIEW_CACHE_DIR")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("radview")) / "train"


def build_cache(samples: Sequence[Sample], spec: InputSpec, cache_dir: str | os.PathLike[str],
                *, workers: int | None = None,
                progress: Callable[[int, int], None] | None = None,
                reader: ImageReader | None = None) -> CacheInfo:
    """Decode and resize every sample once into a ``uint8`` memmap (see the module notes).

    Parameters
    ----------
    samples
        The images, in the order of the cache rows.
    spec
        Size and resize mode of the model input (mean/std are not used: the cache holds
        ``uint8``).
    cache_dir
        Folder of cache files (created).
    workers
        Decoding threads (Pillow releases the GIL); default the CPU count.
    progress
        ``progress(done, total)`` while decoding.
    reader
        Turns a file into the ``uint8`` image the model sees before resizing. ``radview
        train``/``evaluate`` pass the viewer's own (:func:`viewer.training_input.read_model_input`:
        DICOM too, the default display window exactly as the viewer and ``radview predict``
        hand it to the engine); None uses :func:`decode_gray` (image files only). It may
        raise ``OSError`` or ``ValueError`` for an unreadable file.

    Returns
    -------
    CacheInfo
        Unreadable images are logged with the reason and listed in ``errors``.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    h, w = spec.size
    key = cache_key(samples, spec, reader)
    target = cache_dir / f"{key}-{h}x{w}-{spec.resize}.npy"
    sidecar = target.with_suffix(".json")
    if target.is_file() and sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))
            ok = np.array(meta["ok"], dtype=bool)
            errors = [tuple(e) for e in meta["errors"]]
            shapes = meta.get("shapes")
            if ok.shape == (len(samples),):
                _report(errors)
                log.info("image cache hit: %s (%d images)", target, len(samples))
                return CacheInfo(target, ok, errors, hit=True,
                                 shapes=[tuple(x) if x else None for x in shapes]
                                 if isinstance(shapes, list) else None)
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("image cache %s is damaged: rebuilding it", sidecar)
    tmp = cache_dir / f".{target.name}.partial-{secrets.token_hex(4)}"
    array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8,
                                      shape=(len(samples), h, w))
    ok = np.zeros(len(samples), dtype=bool)
    errors: list[tuple[str, str]] = []
    shapes: list[tuple[int, int] | None] = [None] * len(samples)
    small = replace(spec, channels=1, mean=(0.0,), std=(1.0,))

    def work(i: int) -> np.ndarray | str:
        try:
            pixels = (reader or decode_gray)(samples[i].path)
            shapes[i] = (int(pixels.shape[0]), int(pixels.shape[1]))
            return resize_uint8(pixels, small)
        except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError,
                SyntaxError) as exc:
            return f"{type(exc).__name__}: {exc}"

    try:
        with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
            for i, result in enumerate(pool.map(work, range(len(samples)))):
                if isinstance(result, str):
                    errors.append((str(samples[i].path), result))
                else:
                    array[i] = result
                    ok[i] = True
                if progress is not None:
                    progress(i + 1, len(samples))
        array.flush()
        del array
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sidecar.write_text(json.dumps({"ok": ok.tolist(), "errors": errors,
                                   "shapes": [list(x) if x else None for x in shapes]}),
                       encoding="utf-8")
    _report(errors)
    log.info("image cache built: %s (%d images, %d unreadable)", target, len(samples),
             len(errors))
    return CacheInfo(target, ok, errors, shapes=shapes)


# ---------------------------------------------------------------------------- boxes

#: Normalized box ``(x0, y0, x1, y1)``: fractions (0–1) of the image's width and height.
Box = tuple[float, float, float, float]


def load_boxes(path: str | os.PathLike[str]) -> dict[str, list[Box]]:
    """Fracture boxes from a CSV such as FracAtlas's ``fracture_boxes.csv``.

    Columns ``image_id`` (the image's file name; ``path`` is accepted too, matched by its
    file name) and ``x0, y0, x1, y1`` as fractions (0–1) of the width and height; several
    rows per image are several boxes.

    Returns
    -------
    dict
        file name → boxes.

    Raises
    ------
    DataError
        For a missing file, missing columns or values outside 0–1, naming the row.
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the boxes ({exc.strerror or exc})") from None
    out: dict[str, list[Box]] = {}
    for n, row in enumerate(rows, start=2):
        name = (row.get("image_id") or row.get("path") or "").strip()
        try:
            box = tuple(float(row[k]) for k in ("x0", "y0", "x1", "y1"))
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{path}:{n}: needs image_id, x0, y0, x1, y1 (fractions 0–1)"
                            ) from None
        if not name or not all(0.0 <= v <= 1.0 for v in box):
            raise DataError(f"{path}:{n}: image_id and x0, y0, x1, y1 in 0–1 needed, got "
                            f"{row}")
        out.setdefault(Path(name).name, []).append(box)  # type: ignore[arg-type]
    return out


def _report(errors: Sequence[tuple[str, str]]) -> None:
    for file, reason in errors:
        log.warning("unreadable image skipped: %s (%s)", file, reason)
    if errors:
        log.warning("%d unreadable image(s) skipped (listed above)", len(errors))
