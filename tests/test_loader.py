"""viewer.loader: scanning files, folders, DICOMDIRs and MURA trees into a LoadResult.

Every fixture is generated (tests/dicom_factory.py); each table row or test is one real
situation with a comment saying why it matters. Real public files: test_real_files.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dicom_factory import (
    BASIC_TEXT_SR,
    make_dicom,
    make_dicomdir,
    make_mura_tree,
    make_png,
    set_referenced_file_id,
    uid_for,
    un_element,
)
from pydicom.uid import JPEG2000Lossless

from viewer.loader import MAX_DIMENSION, MAX_PIXELS, normalize_body_part, path_hints, scan
from viewer.model import MURA_PARTS, LoadResult

MPEG4 = "1.2.840.10008.1.2.4.102"


def reasons(result: LoadResult) -> dict[str, str]:
    return {e.path.name: e.reason for e in result.errors}


def names(result: LoadResult) -> list[str]:
    return [im.path.name for im in result.images]


# ----------------------------------------------------------------------- body parts

BODY_PART_CASES = [
    # The seven MURA parts map to themselves, whatever the case.
    *[(part.lower(), part) for part in MURA_PARTS],
    # Plurals and synonyms seen in Body Part Examined and folder names.
    ("THUMB", "FINGER"),
    ("Fingers", "FINGER"),
    ("HANDS", "HAND"),
    ("UPPERARM", "HUMERUS"),
    ("upper arm", "HUMERUS"),
    ("UPPER_ARM", "HUMERUS"),
    ("ARM", "HUMERUS"),  # the DICOM Body Part Examined term for the upper arm
    ("LOWERARM", "FOREARM"),
    ("lower-arm", "FOREARM"),
    ("  wrist  ", "WRIST"),
    # Other DICOM parts come back upper-cased so callers see a non-MURA part.
    ("chest", "CHEST"),
    ("Knee", "KNEE"),
    ("PELVIS", "PELVIS"),
    # Empty or absent: None.
    ("", None),
    ("   ", None),
    (None, None),
]


@pytest.mark.parametrize("text,expected", BODY_PART_CASES)
def test_normalize_body_part(text, expected):
    assert normalize_body_part(text) == expected


PATH_CASES = [
    # The full MURA layout: part, label, patient, study.
    ("MURA/train/XR_WRIST/patient00001/study1_positive/image1.png",
     ("WRIST", "positive", "patient00001", "study1_positive")),
    ("MURA/valid/XR_HUMERUS/patient11200/study2_negative/image3.png",
     ("HUMERUS", "negative", "patient11200", "study2_negative")),
    # A study folder with neither suffix is unlabelled (None), not negative.
    ("MURA/valid/XR_FINGER/patient11185/study1/image1.png",
     ("FINGER", None, "patient11185", "study1")),
    # Body part from an XR_ folder even without the patient/study levels.
    ("data/XR_SHOULDER/image1.png", ("SHOULDER", None, None, None)),
    # No MURA structure at all.
    ("home/user/xrays/scan.png", (None, None, None, None)),
]


@pytest.mark.parametrize("rel,expected", PATH_CASES, ids=[c[0] for c in PATH_CASES])
def test_path_hints(tmp_path, rel, expected):
    hints = path_hints(tmp_path / rel)
    got = (hints.body_part, hints.label, hints.patient_dir and hints.patient_dir.name,
           hints.study_dir and hints.study_dir.name)
    assert got == expected


# ---------------------------------------------------------------------- single files

def test_single_dicom_file_fields(tmp_path):
    # Everything the viewer and `radview info` show comes from the header.
    path = make_dicom(tmp_path / "a.dcm", body_part="Thumb", view_position="PA",
                      laterality="L", series_description="Hand PA", windows=[(2048, 4096)],
                      extra={"ImageComments": "test"})
    result = scan([path])
    assert result.errors == []
    [patient] = result.patients
    assert (patient.id, patient.name, patient.sex, patient.birth_date) == (
        "RV-TEST-001", "Test^Radview", "O", "19700101")
    [study] = patient.studies
    assert (study.date, study.time, study.description, study.accession, study.institution) == (
        "20240102", "101500", "XR test study", "ACC0001", "Radview Test Hospital")
    assert (study.body_part, study.body_part_source) == ("FINGER", "tag")
    [series] = study.series
    assert (series.number, series.description, series.modality) == (1, "Hand PA", "DX")
    [im] = series.images
    assert im.ok and im.kind == "dicom" and im.warnings == []
    assert (im.instance_number, im.modality, im.view_position, im.laterality,
            im.image_comments) == (1, "DX", "PA", "L", "test")
    assert (im.transfer_syntax, im.transfer_syntax_name) == (
        "1.2.840.10008.1.2.1", "Explicit VR Little Endian")
    assert (im.spec.rows, im.spec.columns, im.spec.bits_stored) == (64, 64, 12)


SCAN_ONE_CASES = [
    # No preamble, no File Meta: still DICOM; the guessed transfer syntax is noted.
    ("no-meta", {"preamble": False, "file_meta": False,
                 "transfer_syntax": "1.2.840.10008.1.2"},
     None, "no File Meta Information: transfer syntax taken to be Implicit VR Little Endian"),
    # Preamble-less file that still has File Meta (written by some converters).
    ("no-preamble", {"preamble": False}, None, None),
    # Colour is shown as grayscale, said up front.
    ("rgb", {"samples": 3, "bits_stored": 8}, None, "colour image (RGB): shown as grayscale"),
    # Multi-frame: the first frame is shown.
    ("multiframe", {"frames": 4}, None, "multi-frame: frame 1 of 4 shown"),
    # Windows only in the Shared Functional Groups (enhanced objects) reach the spec.
    ("enhanced", {"enhanced": "shared", "windows": [(40, 400)]}, None, None),
    # Rows larger than the pixel data: refused at scan time with byte counts.
    ("rows-too-large", {"extra": {"Rows": 128}},
     "pixel data is 8192 bytes, expected 16384 for 128×64×16-bit", None),
    # A file cut inside the pixel data: refused at scan time.
    ("cut-in-pixels", {"truncate": 500},
     "file is truncated: Pixel Data declares 8192 bytes but only 7692 remain in the file",
     None),
    # Size limit: one side above MAX_DIMENSION (a fake header, no real pixels needed).
    ("too-tall", {"extra": {"Rows": MAX_DIMENSION + 1, "Columns": 10}},
     f"image matrix {MAX_DIMENSION + 1}×10", None),
    # Size limit: 8000 × 8000 = 64 MP > MAX_PIXELS.
    ("too-many-pixels", {"extra": {"Rows": 8000, "Columns": 8000}},
     "is above radview's limit of 50 megapixels", None),
    # A transfer syntax pydicom cannot decode: found, listed, marked unusable.
    ("mpeg4", {"transfer_syntax": MPEG4, "encapsulated_frames": [b"\0\0\0\1" * 4]},
     "unsupported transfer syntax MPEG-4 AVC/H.264 High Profile / Level 4.1 "
     "(1.2.840.10008.1.2.4.102)", None),
    # Float Pixel Data cannot be shown.
    ("float", {"pixel_data": False,
               "extra": {"Rows": 4, "Columns": 4, "BitsAllocated": 32, "SamplesPerPixel": 1,
                         "PhotometricInterpretation": "MONOCHROME2",
                         "FloatPixelData": b"\0" * 64}},
     "Float Pixel Data (floating-point pixels) is not supported", None),
]


@pytest.mark.parametrize("name,kwargs,error,warning", SCAN_ONE_CASES,
                         ids=[c[0] for c in SCAN_ONE_CASES])
def test_scan_one_file(tmp_path, name, kwargs, error, warning):
    path = make_dicom(tmp_path / name, **kwargs)
    result = scan([path])
    assert result.errors == []
    [im] = result.images
    if error is None:
        assert im.error is None
    else:
        assert error in im.error
    if warning is not None:
        assert warning in im.warnings
    assert MAX_PIXELS == 50_000_000


def test_enhanced_and_un_windows_reach_the_spec(tmp_path):
    # The loader's spec is spec_from_dataset's: enhanced groups and VR UN both work.
    a = make_dicom(tmp_path / "enh.dcm", enhanced="per-frame", frames=2,
                   windows=[(40, 400, "SOFT")])
    b = make_dicom(tmp_path / "un.dcm", sop_uid=uid_for("un"),
                   extra={"WindowCenter": un_element("WindowCenter", "300"),
                          "WindowWidth": un_element("WindowWidth", "1500")})
    specs = {im.path.name: im.spec for im in scan([a, b]).images}
    assert [(w.center, w.width, w.explanation) for w in specs["enh.dcm"].windows] == [
        (40, 400, "SOFT")]
    assert [(w.center, w.width) for w in specs["un.dcm"].windows] == [(300, 1500)]


FILE_ERROR_CASES = [
    # Structured report: DICOM without pixel data, named by its SOP Class.
    ("sr.dcm", lambda p: make_dicom(p, pixel_data=False, sop_class_uid=BASIC_TEXT_SR,
                                    modality="SR"),
     "no pixel data (SR document: Basic Text SR Storage)"),
    # Key object selection (a grayscale presentation state is no error: it is listed in
    # LoadResult.presentation_states, tests/test_gsps.py).
    ("kos.dcm", lambda p: make_dicom(p, pixel_data=False, modality="KO",
                                     sop_class_uid="1.2.840.10008.5.1.4.1.1.88.59"),
     "no pixel data (key object selection: Key Object Selection Document Storage)"),
    # A header describing an image but ending before the pixel data: truncated.
    ("cut-header.dcm", lambda p: make_dicom(p, truncate=8192 + 12),
     "file is truncated: the header describes an image but the file ends before its "
     "Pixel Data"),
    # Cut right after the preamble: nothing readable.
    ("stub.dcm", lambda p: p.write_bytes(b"\0" * 128 + b"DICM"),
     "truncated or empty DICOM file"),
    # Random bytes with no DICOM signature.
    ("garbage.bin", lambda p: p.write_bytes(bytes(range(256)) * 4),
     "not a DICOM file or a supported image (PNG, JPEG, TIFF, BMP)"),
    # Text with a .dcm name: content decides, not the extension.
    ("notes.dcm", lambda p: p.write_text("patient notes, not DICOM\n" * 20),
     "not a DICOM file or a supported image"),
    # An empty file.
    ("empty.dcm", lambda p: p.write_bytes(b""), "empty file"),
    # A .png that is not a PNG.
    ("fake.png", lambda p: p.write_bytes(b"not really a png" * 20), "not a readable PNG image"),
    # A GIF: an image Pillow reads, but not a format radview accepts.
    ("anim.gif", lambda p: __import__("PIL.Image").Image.new("L", (4, 4)).save(p),
     "GIF images are not supported"),
]


@pytest.mark.parametrize("name,make,reason", FILE_ERROR_CASES,
                         ids=[c[0] for c in FILE_ERROR_CASES])
def test_unusable_files_become_file_errors(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    result = scan([path])
    assert result.images == []
    [err] = result.errors
    assert err.path == path
    assert reason in err.reason


def test_missing_path_is_an_error(tmp_path):
    # A path that does not exist is reported, not ignored.
    result = scan([tmp_path / "nope"])
    assert reasons(result) == {"nope": "no such file or folder"}


# --------------------------------------------------------------------------- grouping

def test_grouping_patients_studies_series(tmp_path):
    # Two patients; patient A has two studies, the first with two series. Series are
    # ordered by Series Number, studies by date, patients by first appearance.
    st1, st2, st3 = uid_for("st1"), uid_for("st2"), uid_for("st3")
    se = {k: uid_for("se", k) for k in ("a1", "a2", "b1", "c1")}
    make_dicom(tmp_path / "f1", patient_id="A", study_uid=st1, series_uid=se["a2"],
               series_number=2, study_date="20240105")
    make_dicom(tmp_path / "f2", patient_id="A", study_uid=st1, series_uid=se["a1"],
               series_number=1, study_date="20240105")
    make_dicom(tmp_path / "f3", patient_id="A", study_uid=st2, series_uid=se["b1"],
               study_date="20230101")
    make_dicom(tmp_path / "f4", patient_id="B", patient_name="Other^Person", study_uid=st3,
               series_uid=se["c1"])
    result = scan([tmp_path])
    assert [p.id for p in result.patients] == ["A", "B"]
    a = result.patients[0]
    assert [s.uid for s in a.studies] == [st2, st1]  # 2023 before 2024
    assert [s.uid for s in a.studies[1].series] == [se["a1"], se["a2"]]
    assert result.patients[1].name == "Other^Person"
    assert len(result.images) == 4


def test_instance_number_order(tmp_path):
    # Images follow Instance Number, not file names; equal numbers fall back to natural
    # file order (IM2 before IM10); a missing number goes last.
    for name, number in [("IM10", 1), ("IM1", 3), ("IM2", 2), ("IM3", None), ("IM20", 2)]:
        make_dicom(tmp_path / name, instance_number=number)
    assert names(scan([tmp_path])) == ["IM10", "IM2", "IM20", "IM1", "IM3"]


def test_duplicate_sop_instance_uid_dropped(tmp_path):
    # The same instance twice (a copy in another folder): the first by path order is
    # kept, the second dropped, and the kept one says where the duplicate was.
    uid = uid_for("dup")
    make_dicom(tmp_path / "a" / "first.dcm", sop_uid=uid)
    make_dicom(tmp_path / "b" / "copy.dcm", sop_uid=uid)
    result = scan([tmp_path])
    [im] = result.images
    assert im.path.name == "first.dcm"
    assert im.warnings == ["duplicate SOP Instance UID also in copy.dcm"]
    assert result.errors == []


def test_same_file_twice_is_loaded_once(tmp_path):
    # Opening a folder and a file inside it does not duplicate the file.
    path = make_dicom(tmp_path / "a.dcm")
    result = scan([tmp_path, path])
    assert len(result.images) == 1
    assert result.images[0].warnings == []


def test_missing_uids_grouped_by_folder(tmp_path):
    # Files without Study/Series Instance UID (anonymizer damage) are grouped per folder
    # and say so; no crash.
    make_dicom(tmp_path / "x" / "1", study_uid=None, series_uid=None, patient_id=None)
    make_dicom(tmp_path / "x" / "2", study_uid=None, series_uid=None, patient_id=None,
               instance_number=2)
    make_dicom(tmp_path / "y" / "1", study_uid=None, series_uid=None, patient_id=None)
    result = scan([tmp_path])
    assert len(result.studies) == 2
    assert [len(st.images) for st in result.studies] == [2, 1]
    assert all(p.id == "" for p in result.patients)
    assert "no Study Instance UID: grouped with the other files of its folder" in \
        result.images[0].warnings


def test_body_part_from_tag_path_and_disagreement(tmp_path):
    # Tag beats path; path used when the tag is absent; a study whose images disagree
    # has no study-level part (the AI routing then asks).
    mura = tmp_path / "XR_WRIST" / "patient00001" / "study1_positive"
    make_dicom(mura / "tagged.dcm", body_part="HAND", instance_number=1)
    make_dicom(mura / "untagged.dcm", instance_number=2)
    result = scan([tmp_path])
    by_name = {im.path.name: im for im in result.images}
    assert (by_name["tagged.dcm"].body_part, by_name["tagged.dcm"].body_part_source) == (
        "HAND", "tag")
    assert (by_name["untagged.dcm"].body_part, by_name["untagged.dcm"].body_part_source) == (
        "WRIST", "path")
    [study] = result.studies
    assert study.body_part is None
    assert study.label == "positive"  # DICOM files in a labelled folder get the label too


# ----------------------------------------------------------------------------- folders

def test_recursive_folder_any_names(tmp_path):
    # DICOM files are found by content: no extension, odd extensions, nested folders.
    # Hidden files/folders and obvious non-images are skipped silently.
    make_dicom(tmp_path / "IMG0001", instance_number=1)
    make_dicom(tmp_path / "deep" / "er" / "scan.IMA", instance_number=2)
    make_dicom(tmp_path / "deep" / "x.dicom", instance_number=3)
    make_dicom(tmp_path / ".hidden" / "secret", instance_number=4)
    make_dicom(tmp_path / ".DS_Store_like", instance_number=5)
    (tmp_path / "README.txt").write_text("readme")
    (tmp_path / "index.html").write_text("<html/>")
    (tmp_path / "junk").write_bytes(b"\x01\x02" * 100)
    result = scan([tmp_path])
    assert names(result) == ["IMG0001", "scan.IMA", "x.dicom"]
    assert list(reasons(result)) == ["junk"]  # reported: a file radview could not use


def test_progress_and_cancel(tmp_path):
    # progress(done, total) from 0 to total; cancelled() stops between files and what
    # was found so far is returned.
    for i in range(5):
        make_dicom(tmp_path / f"f{i}", instance_number=i)
    calls: list[tuple[int, int]] = []
    scan([tmp_path], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 5) for i in range(6)]
    seen: list[int] = []
    result = scan([tmp_path], progress=lambda d, t: seen.append(d),
                  cancelled=lambda: len(seen) > 2)
    assert len(result.images) == 2


# ---------------------------------------------------------------------------- DICOMDIR

@pytest.fixture
def fileset(tmp_path) -> Path:
    """A DICOMDIR file-set of three images (two series), plus an unreferenced file."""
    src = tmp_path / "src"
    files = [make_dicom(src / f"s{i}", instance_number=i, series_uid=uid_for("dd", i % 2),
                        series_number=i % 2 + 1, sop_uid=uid_for("dd-sop", i))
             for i in range(3)]
    dicomdir = make_dicomdir(tmp_path / "cd", files)
    make_dicom(tmp_path / "cd" / "UNLISTED", sop_uid=uid_for("unlisted"))
    return dicomdir


def test_dicomdir_explicit(fileset):
    # A DICOMDIR opened directly: its references are loaded, the unlisted file is not.
    result = scan([fileset])
    assert result.errors == []
    assert len(result.images) == 3
    assert "UNLISTED" not in names(result)
    assert [s.number for s in result.studies[0].series] == [1, 2]


def test_dicomdir_found_in_folder_not_scanned_twice(fileset):
    # Opening the folder uses its DICOMDIR: the same three images, each once, and the
    # rest of the folder is not walked (the unlisted file is ignored, as documented).
    result = scan([fileset.parent])
    assert len(result.images) == 3
    assert result.errors == []


def test_dicomdir_lower_case_copy(fileset):
    # A CD copied to a case-preserving disk with lower-case names still resolves.
    root = fileset.parent
    for path in sorted(root.rglob("*"), key=lambda p: -len(p.parts)):
        if path.name not in ("DICOMDIR", "UNLISTED"):
            path.rename(path.with_name(path.name.lower()))
    assert len(scan([fileset]).images) == 3


REFUSED_CASES = [
    # A relative path climbing out of the file-set.
    ("dotdot", ["..", "src", "s0"]),
    # An absolute path (empty first component after a leading backslash).
    ("absolute", ["", "etc", "passwd"]),
    # A component smuggling a separator.
    ("separator", ["PT000000/../../src", "s0"]),
    # A drive letter.
    ("drive", ["C:", "Windows"]),
]


@pytest.mark.parametrize("name,components", REFUSED_CASES, ids=[c[0] for c in REFUSED_CASES])
def test_dicomdir_reference_outside_is_refused(fileset, name, components):
    # Media from elsewhere must not make radview read files outside the file-set.
    set_referenced_file_id(fileset, 0, components)
    result = scan([fileset])
    assert len(result.images) == 2
    [err] = result.errors
    assert err.path == fileset
    assert err.reason.startswith("DICOMDIR record 4 (IMAGE) references")
    assert err.reason.endswith("a path outside the DICOMDIR's folder; refused")


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_dicomdir_symlink_out_is_refused(fileset, tmp_path):
    # A referenced name that is a symbolic link to a file outside the file-set.
    target = make_dicom(tmp_path / "outside" / "x.dcm", sop_uid=uid_for("outside"))
    link = fileset.parent / "LINK"
    try:
        link.symlink_to(target)
    except OSError:
        pytest.skip("cannot create symbolic links here")
    set_referenced_file_id(fileset, 0, ["LINK"])
    result = scan([fileset])
    [err] = result.errors
    assert "(symbolic link); refused" in err.reason
    assert len(result.images) == 2


def test_dicomdir_missing_reference(fileset):
    # A listed file that is gone: an error on that path naming the record.
    set_referenced_file_id(fileset, 1, ["NOFILE"])
    result = scan([fileset])
    [err] = result.errors
    assert err.path.name == "NOFILE"
    assert "references 'NOFILE', but the file is missing" in err.reason


# ------------------------------------------------------------------------ image trees

def test_mura_tree_from_dataset_root(tmp_path):
    # The MURA layout: part from XR_*, label from the study folder, patient from the
    # patientNNNNN folder; one study per folder, images in natural order.
    root = make_mura_tree(tmp_path / "MURA")
    result = scan([root])
    assert result.errors == []
    studies = {Path(st.uid).name + "@" + Path(st.uid).parent.name: st for st in result.studies}
    st = studies["study1_positive@patient00001"]
    assert (st.body_part, st.body_part_source, st.label) == ("WRIST", "path", "positive")
    assert [im.path.name for im in st.images] == ["image1.png", "image2.png"]
    assert all(im.kind == "image" and im.spec.bits_stored == 8 for im in st.images)
    assert studies["study2_negative@patient00001"].label == "negative"
    # Unlabelled is None, never "negative".
    assert studies["study1@patient11185"].label is None
    assert studies["study1@patient11185"].body_part == "FINGER"
    # patient00001's two studies belong to one patient.
    patient = next(p for p in result.patients if p.id == "patient00001")
    assert len(patient.studies) == 2


@pytest.mark.parametrize("start", [
    "train/XR_WRIST",  # an XR_* folder
    "train/XR_WRIST/patient00001",  # a patient folder
    "train/XR_WRIST/patient00001/study1_positive",  # a study folder
    "train/XR_WRIST/patient00001/study1_positive/image1.png",  # one image
])
def test_mura_detected_from_any_root(tmp_path, start):
    # Whatever level the user opens, the ancestors give part and label.
    root = make_mura_tree(tmp_path / "MURA")
    result = scan([root / start])
    st = next(s for s in result.studies if s.uid.endswith("study1_positive"))
    assert (st.body_part, st.label) == ("WRIST", "positive")
    assert next(p for p in result.patients if st in p.studies).id == "patient00001"


def test_plain_image_folder(tmp_path):
    # A non-MURA folder of images: one study named after the folder, its patient the
    # folder; 16-bit PNGs keep 16 bits; a corrupt PNG is a FileError, the rest load.
    folder = tmp_path / "xrays"
    make_png(folder / "a10.png")
    make_png(folder / "a2.png", mode="I;16")
    make_png(folder / "c.jpg", mode="RGB")
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 50)
    result = scan([folder])
    [patient] = result.patients
    assert patient.id == "xrays"
    [study] = patient.studies
    assert (study.uid, study.label, study.body_part) == (str(folder), None, None)
    assert [im.path.name for im in study.images] == ["a2.png", "a10.png", "c.jpg"]
    assert study.images[0].spec.bits_stored == 16
    assert list(reasons(result)) == ["bad.png"]


def test_image_size_limit(tmp_path):
    # A huge PNG header is refused by the same limit, without decoding it.
    path = tmp_path / "huge.png"
    from PIL import Image

    Image.new("1", (MAX_DIMENSION + 10, 2)).save(path)
    [im] = scan([path]).images
    assert "is above radview's limit" in im.error


def test_dicom_without_extension_next_to_pngs(tmp_path):
    # Mixed content: DICOM and PNG in one folder are both found, in separate studies.
    make_dicom(tmp_path / "IM0")
    make_png(tmp_path / "photo.png")
    result = scan([tmp_path])
    assert sorted(im.kind for im in result.images) == ["dicom", "image"]
    assert len(result.studies) == 2


def test_j2k_file_is_usable_at_scan_time(tmp_path):
    # A compressed syntax with an installed decoder is not flagged at scan time.
    [im] = scan([make_dicom(tmp_path / "j.dcm", transfer_syntax=JPEG2000Lossless)]).images
    assert im.ok and im.transfer_syntax_name == "JPEG 2000 Image Compression (Lossless Only)"
    assert np.isfinite(im.spec.rescale_slope)
