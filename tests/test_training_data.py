"""Training data: MURA-v1.1 as distributed, CSV manifests, FracAtlas, splits, the cache.

The MURA tree is generated (MURA is not redistributable) with the four CSVs exactly as
Stanford ships them: no header row, ``MURA-v1.1/`` prefixes, study rows with a trailing
slash. The FracAtlas cases copy a few real images of the shared subset.
"""

from __future__ import annotations

import csv
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import make_png
from training_factory import FRACATLAS, make_csv, make_fracatlas, make_mura

from inference.preprocess import InputSpec, resize_uint8
from inference.training import data as data_module
from inference.training.data import (
    DataError,
    MissingFilesError,
    Sample,
    build_cache,
    check_disjoint,
    decode_gray,
    filter_parts,
    limit_samples,
    load_samples,
    other_samples,
    parse_confidence_weights,
    parse_parts,
    part_class_weights,
    split_samples,
)


@pytest.fixture(scope="module")
def mura(tmp_path_factory) -> Path:
    return make_mura(tmp_path_factory.mktemp("mura"))


# ------------------------------------------------------------------------------ MURA


def test_mura_as_distributed(mura):
    # The generated tree has no header rows and trailing slashes, like the real CSVs.
    assert not mura.joinpath("train_image_paths.csv").read_text().startswith("path")
    assert mura.joinpath("valid_labeled_studies.csv").read_text().splitlines()[0].endswith("/,1")
    data = load_samples(mura, "mura")
    train = [s for s in data.samples if s.split == "train"]
    valid = [s for s in data.samples if s.split == "valid"]
    assert len(train) == len(mura.joinpath("train_image_paths.csv").read_text().splitlines())
    assert len(valid) == len(mura.joinpath("valid_image_paths.csv").read_text().splitlines())
    first = train[0]
    assert first.part == "WRIST" and first.patient == "patient00001"
    assert first.abnormal == 1 and first.study.endswith("patient00001/study1_positive")
    assert first.path == mura / "train/XR_WRIST/patient00001/study1_positive/image1.png"
    # Labels come from the labeled-studies CSV and agree with the folder names.
    assert all((s.abnormal == 1) == s.study.endswith("_positive") for s in data.samples)


def test_mura_root_may_be_parent_or_the_folder(mura):
    # --data may name the folder holding MURA-v1.1/ or MURA-v1.1/ itself.
    a = load_samples(mura.parent, "mura").samples
    b = load_samples(mura, "mura").samples
    assert a == b


@pytest.mark.parametrize("edit, message", [
    # A header row is not MURA's format: refused with the row quoted.
    (lambda t: "path\n" + t, "expected a path like"),
    # A study listed for images but missing from the labels file.
    (lambda t: t + "MURA-v1.1/train/XR_HAND/patient99999/study1_positive/image1.png\n",
     "is not in train_labeled_studies.csv"),
])
def test_mura_malformed_listing(tmp_path, edit, message):
    root = make_mura(tmp_path, patients={"train": 2, "valid": 1})
    f = root / "train_image_paths.csv"
    f.write_text(edit(f.read_text()))
    with pytest.raises(DataError, match=message):
        load_samples(root, "mura")


def test_missing_files_one_error_listing_them(tmp_path):
    # 12 listed images deleted → one error naming the first 10 and the count.
    root = make_mura(tmp_path, patients={"train": 6, "valid": 2})
    listed = root.joinpath("train_image_paths.csv").read_text().splitlines()
    for line in listed[:12]:
        (root.parent / line).unlink()
    with pytest.raises(MissingFilesError) as err:
        load_samples(root, "mura")
    assert len(err.value.missing) == 12
    text = str(err.value)
    assert "12 listed image file(s) do not exist" in text and "… and 2 more" in text
    assert str(root.parent / listed[0]) in text


def test_rgb_and_gray_images_decode_alike(mura):
    # MURA stores 8-bit images as grayscale or RGB with equal channels: both decode to
    # the same gray values.
    from PIL import Image

    data = load_samples(mura, "mura")
    modes = {}
    for s in data.samples[:6]:
        with Image.open(s.path) as im:
            modes[im.mode] = s.path
    assert set(modes) == {"L", "RGB"}
    for path in modes.values():
        with Image.open(path) as im:
            expected = np.asarray(im.convert("RGB"))[..., 0]
        assert np.array_equal(decode_gray(path), expected)


# ------------------------------------------------------------------------------- CSV

ROWS = [
    {"path": "img/a b.png", "label": "1", "body_part": "wrist", "study_id": "s1",
     "patient_id": "p1"},
    {"path": "img/c.png", "label": "0", "body_part": "Thumb", "study_id": "s2",
     "patient_id": "p2"},
    {"path": "img/d.png", "label": "", "body_part": "knee", "study_id": "s3",
     "patient_id": ""},
]


def test_csv_manifest(tmp_path):
    # Paths with spaces, relative to the CSV; parts normalized (Thumb → FINGER); an
    # empty label is allowed (router data); no patient → the study is the split group.
    path = make_csv(tmp_path, ROWS)
    samples = load_samples(path, "csv").samples
    assert samples[0].path == tmp_path / "img/a b.png" and samples[0].abnormal == 1
    assert [s.part for s in samples] == ["WRIST", "FINGER", "KNEE"]
    assert samples[2].abnormal is None
    assert [s.group for s in samples] == ["patient:p1", "patient:p2", "study:s3"]


@pytest.mark.parametrize("header, rows, message", [
    # A required column missing: named, with the header found.
    (("path", "label", "study_id"), ROWS, "missing column(s) body_part"),
    # No header row at all: the first data row is taken as a header and the hint says so.
    ((), ROWS, "a header row is required"),
    # A label that is not 0/1: the row number is given.
    (("path", "label", "body_part", "study_id"),
     [{**ROWS[0], "label": "yes"}], "row 2: label must be 0, 1 or empty"),
    # A split value other than train/valid.
    (("path", "label", "body_part", "study_id", "split"),
     [{**ROWS[0], "split": "test"}], "split must be train or valid"),
])
def test_csv_refused(tmp_path, header, rows, message):
    path = make_csv(tmp_path, rows, header=header)
    if not header:  # rows only: write them without a header
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            for r in rows:
                w.writerow([r["path"], r["label"], r["body_part"], r["study_id"]])
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_samples(path, "csv")


def test_csv_missing_files_listed(tmp_path):
    # Files named in the CSV but absent: one error with every missing path.
    path = make_csv(tmp_path, ROWS, images=False)
    with pytest.raises(MissingFilesError) as err:
        load_samples(path, "csv")
    assert len(err.value.missing) == 3
    assert "a b.png" in str(err.value)


def test_corrupt_image_reported_and_skipped(tmp_path, caplog):
    # A truncated PNG is not silently dropped: logged with its path, listed in the cache
    # errors, its row marked unreadable; the other images are cached.
    path = make_csv(tmp_path, ROWS)
    bad = tmp_path / "img/c.png"
    bad.write_bytes(bad.read_bytes()[:40])
    samples = load_samples(path, "csv").samples
    with caplog.at_level(logging.WARNING, logger="inference.training.data"):
        info = build_cache(samples, InputSpec((16, 16)), tmp_path / "cache")
    assert info.ok.tolist() == [True, False, True]
    assert [e[0] for e in info.errors] == [str(bad)]
    assert f"unreadable image skipped: {bad}" in caplog.text


# -------------------------------------------------------------------------- FracAtlas


@pytest.mark.skipif(not FRACATLAS.is_dir(), reason="shared FracAtlas subset not present")
def test_fracatlas_subset(tmp_path):
    # Real FracAtlas rows: each image is a study, split groups are blocks of consecutive
    # ids, confidences kept, ARM and OTHER kept as parts, --parts upper drops OTHER.
    folder = make_fracatlas(tmp_path / "fa", 30)
    data = load_samples(folder, "fracatlas", block_size=10)
    assert len(data.samples) == 30 and data.license == "CC-BY-4.0"
    s = data.samples[0]
    assert s.study == "fracatlas:IMG0000000" and s.group == "block:0"
    assert {x.confidence for x in data.samples} <= {"H", "M", "L"}
    with open(folder / "manifest.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    # The shared subset has gaps in its ids: a block is id // block_size, not a row count.
    blocks = {f"block:{int(r['image_id'][3:10]) // 10}" for r in rows}
    assert {x.group for x in data.samples} == blocks and len(blocks) < 30
    assert [x.abnormal for x in data.samples] == [int(r["fractured"]) for r in rows]
    upper = filter_parts(data.samples, parse_parts("upper"))
    assert all(x.part != "OTHER" for x in upper)


def test_other_images_for_the_router(tmp_path):
    # --other DIR: every image file below it is router class OTHER, its own study, grouped
    # by folder for the split; other files are ignored; an empty folder is refused.
    for rel in ("knee/a.png", "knee/b.jpg", "chest/c.png"):
        make_png(tmp_path / "other" / rel)
    (tmp_path / "other" / "notes.txt").write_text("not an image")
    samples = other_samples(tmp_path / "other")
    assert [s.part for s in samples] == ["OTHER"] * 3
    assert [s.group for s in samples] == ["other:chest", "other:knee", "other:knee"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        other_samples(tmp_path / "empty")


# ----------------------------------------------------------------------------- splits


def _samples(groups: int, per_group: int = 3, patient: bool = True) -> list[Sample]:
    out = []
    for g in range(groups):
        for k in range(per_group):
            out.append(Sample(Path(f"/x/{g}_{k}.png"), study=f"st{g}_{k // 2}", part="WRIST",
                              group=f"patient:{g}" if patient else f"study:st{g}_{k // 2}",
                              abnormal=(g + k) % 2, patient=f"p{g}" if patient else None))
    return out


def test_split_never_leaks_a_patient_or_study():
    # 40 patients × 3 images: no patient and no study in two splits, also with a holdout.
    samples = _samples(40)
    splits = split_samples(samples, val_fraction=0.25, holdout=0.2, seed=3)
    check_disjoint({"train": splits.train, "select": splits.select, "valid": splits.valid})
    seen = [{s.patient for s in part} for part in (splits.train, splits.select, splits.valid)]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    studies = [{s.study for s in part} for part in (splits.train, splits.valid)]
    assert not studies[0] & studies[1]
    assert len(splits.train) + len(splits.select) + len(splits.valid) == len(samples)
    assert 0.1 < len(splits.valid) / len(samples) < 0.4


def test_split_is_stable_under_filtering():
    # A group's side depends only on (seed, group): dropping other images (--limit,
    # --parts) never moves an image across the split.
    samples = _samples(60)
    full = split_samples(samples, val_fraction=0.3, seed=1)
    subset = split_samples(samples[::2], val_fraction=0.3, seed=1)
    valid_groups = {s.group for s in full.valid}
    assert {s.group for s in subset.valid} <= valid_groups
    assert not {s.group for s in subset.train} & valid_groups


def test_fixed_split_kept_and_checked():
    # MURA / CSV split columns are kept; a patient in both fixed splits is refused.
    samples = [Sample(Path("/a"), "s1", "WRIST", "patient:p1", 1, "p1", split="train"),
               Sample(Path("/b"), "s2", "WRIST", "patient:p2", 0, "p2", split="valid")]
    splits = split_samples(samples, val_fraction=0.5)
    assert splits.train == samples[:1] and splits.valid == samples[1:]
    leaky = [*samples, Sample(Path("/c"), "s3", "WRIST", "patient:p1", 0, "p1", split="valid")]
    with pytest.raises(DataError, match="patient:p1 is in both"):
        split_samples(leaky)


def test_limit_takes_whole_studies_seeded():
    samples = _samples(20)
    a = limit_samples(samples, 10, seed=0)
    assert a == limit_samples(samples, 10, seed=0) != limit_samples(samples, 10, seed=1)
    assert len(a) >= 10
    chosen = {s.study for s in a}
    assert [s for s in samples if s.study in chosen] == a  # complete studies, input order


# ------------------------------------------------------------------ weights, options


def _part_samples(spec: dict[str, tuple[int, int]]) -> list[Sample]:
    out = []
    for part, (abnormal, normal) in spec.items():
        for i in range(abnormal + normal):
            out.append(Sample(Path(f"/{part}{i}"), f"{part}{i}", part, part,
                              int(i < abnormal)))
    return out


@pytest.mark.parametrize("part, counts, expected", [
    # MURA: abnormal weight N/(A+N), normal weight A/(A+N), per part.
    ("WRIST", (3, 1), (0.25, 0.75)),
    ("HAND", (2, 2), (0.5, 0.5)),
    ("ELBOW", (1, 9), (0.9, 0.1)),
    # One class only: the formula would zero its only class; 0.5/0.5 instead.
    ("FINGER", (0, 4), (0.5, 0.5)),
])
def test_weighted_bce_weights_per_part(part, counts, expected):
    weights = part_class_weights(_part_samples({part: counts, "OTHER": (1, 1)}))
    assert weights[part] == pytest.approx(expected)


@pytest.mark.parametrize("text, expected", [
    ("H=1,M=0.7,L=0.3", {"H": 1.0, "M": 0.7, "L": 0.3}),
    ("l=0", {"H": 1.0, "M": 1.0, "L": 0.0}),  # unnamed levels weigh 1
    ("", None),
])
def test_confidence_weights(text, expected):
    assert parse_confidence_weights(text) == expected


@pytest.mark.parametrize("text", ["H=x", "X=1", "H=-1", "H"])
def test_confidence_weights_refused(text):
    with pytest.raises(DataError, match="confidence-weights"):
        parse_confidence_weights(text)


def test_parse_parts():
    assert parse_parts("wrist, hand") == ("WRIST", "HAND")
    assert parse_parts("upper")[-1] == "ARM" and len(parse_parts("upper")) == 8
    assert parse_parts(None) is None


# ------------------------------------------------------------------------------ cache


def test_cache_built_once_and_matches_the_engine_resize(mura, tmp_path, monkeypatch):
    # The cache holds exactly what the engine's resize gives; the second build of the
    # same files decodes nothing.
    samples = load_samples(mura, "mura").samples[:8]
    spec = InputSpec((24, 20), resize="letterbox")
    info = build_cache(samples, spec, tmp_path)
    images = info.open()
    assert images.shape == (8, 24, 20) and images.dtype == np.uint8 and not info.hit
    for i, s in enumerate(samples):
        assert np.array_equal(images[i], resize_uint8(decode_gray(s.path), spec))

    def fail(path):
        raise AssertionError("decoded again")

    monkeypatch.setattr(data_module, "decode_gray", fail)
    again = build_cache(samples, spec, tmp_path)
    assert again.hit and again.path == info.path
    # Another size is another cache.
    monkeypatch.undo()
    other = build_cache(samples, InputSpec((16, 16)), tmp_path)
    assert other.path != info.path


def test_cache_key_follows_file_changes(tmp_path):
    path = make_csv(tmp_path, ROWS)
    samples = load_samples(path, "csv").samples
    key = data_module.cache_key(samples, InputSpec((16, 16)))
    shutil.copy(tmp_path / "img/d.png", tmp_path / "img/c.png")  # content changed
    assert data_module.cache_key(samples, InputSpec((16, 16))) != key
